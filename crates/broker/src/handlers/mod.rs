//! One handler per Kafka API. Each takes the decoded request and returns a [`Reply`].
//!
//! Handlers run in the connection's reader task, in request order. Work that must wait
//! (group commit, fetch long-poll) goes into a [`Reply::Later`] future that the connection's
//! writer awaits; everything else answers at once.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_user_scram_credentials;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_reassignments;
mod produce;
mod sync_group;
mod txn_offset_commit;
mod unregister_broker;
mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::RequestFrame;

use crate::authorization::{self, Checked, Patch};
use crate::context::RequestContext;
use crate::Broker;

/// What a handler gives back.
// Moved once per request, straight to the encoder: boxing the large variant would only add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response, ready now.
    Now(ResponseKind),
    /// The response, once the future resolves.
    Later(Pin<Box<dyn Future<Output = ResponseKind> + Send>>),
    /// No response at all (a produce with acks=0).
    Silent,
    /// The reply once the future resolves, and no request after this one on the connection is
    /// handled before then (a transactional produce waiting for its coordinator's check, whose
    /// appends must stay in request order).
    Ordered(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

/// Checks the request against the ACLs (see [`authorization`]), then routes what is allowed
/// to its handler. `context` says who sent it: the principal, the client's address (reported
/// as the member host by the group APIs) and the listener.
pub fn dispatch(
    broker: &Arc<Broker>,
    mut request: RequestFrame,
    context: &RequestContext,
) -> Reply {
    let version = request.api_version;
    let body = std::mem::replace(
        &mut request.body,
        RequestKind::ApiVersions(Default::default()),
    );
    match authorization::check(broker, context, body, version) {
        Checked::Refused(response) => Reply::Now(response),
        Checked::Allowed(body, patch) => {
            request.body = body;
            // Read once: every quota below looks at the same table.
            let quotas = broker.quorum.image().client_quotas.clone();
            let quota = crate::quotas::measure(broker, &quotas, &mut request, context);
            let mutations = crate::request_quotas::limit_mutations(broker, &mut request, context);
            let timer = crate::request_quotas::time(broker, &quotas, &request, context);
            let reply = route(broker, request, context);
            let request_time = timer.and_then(|timer| timer.finish());
            [patch, quota, mutations, request_time]
                .into_iter()
                .flatten()
                .fold(reply, patched)
        }
    }
}

/// `reply` with `patch` applied to its response, whenever that is ready.
fn patched(reply: Reply, patch: Patch) -> Reply {
    match reply {
        Reply::Now(mut response) => {
            patch(&mut response);
            Reply::Now(response)
        }
        Reply::Later(future) => Reply::Later(Box::pin(async move {
            let mut response = future.await;
            patch(&mut response);
            response
        })),
        Reply::Ordered(future) => {
            Reply::Ordered(Box::pin(async move { patched(future.await, patch) }))
        }
        Reply::Silent => Reply::Silent,
    }
}

/// Calls the request's handler.
fn route(broker: &Arc<Broker>, request: RequestFrame, context: &RequestContext) -> Reply {
    // Kafka shows client hosts as "/IP".
    let client_host = format!("/{}", context.peer.ip());
    let version = request.api_version;
    match request.body {
        RequestKind::ApiVersions(body) => Reply::Now(ResponseKind::ApiVersions(
            api_versions::handle(body, version),
        )),
        RequestKind::Metadata(body) => {
            metadata::handle(broker, body, version, context.listener.clone())
        }
        RequestKind::Produce(body) => produce::handle(broker, body, version),
        RequestKind::Fetch(body) => fetch::handle(broker, body, version),
        RequestKind::InitProducerId(body) => init_producer_id::handle(broker, body, version),
        RequestKind::ListOffsets(body) => Reply::Now(ResponseKind::ListOffsets(
            list_offsets::handle(broker, body, version),
        )),
        RequestKind::OffsetForLeaderEpoch(body) => Reply::Now(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, body, version),
        )),
        RequestKind::CreateTopics(body) => create_topics::handle(broker, body, version),
        RequestKind::CreatePartitions(body) => create_partitions::handle(broker, body, version),
        RequestKind::DeleteTopics(body) => delete_topics::handle(broker, body, version),
        RequestKind::AlterClientQuotas(body) => alter_client_quotas::handle(broker, body, version),
        RequestKind::DescribeClientQuotas(body) => Reply::Now(ResponseKind::DescribeClientQuotas(
            describe_client_quotas::handle(broker, body, version),
        )),
        RequestKind::AlterConfigs(body) => alter_configs::handle(broker, body, version),
        RequestKind::IncrementalAlterConfigs(body) => {
            incremental_alter_configs::handle(broker, body, version)
        }
        RequestKind::DeleteRecords(body) => delete_records::handle(broker, body, version),
        RequestKind::DescribeLogDirs(body) => Reply::Now(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(broker, body, version),
        )),
        RequestKind::DescribeConfigs(body) => Reply::Now(ResponseKind::DescribeConfigs(
            describe_configs::handle(broker, body, version),
        )),
        RequestKind::DescribeCluster(body) => Reply::Now(ResponseKind::DescribeCluster(
            describe_cluster::handle(broker, body, version, &context.listener),
        )),
        RequestKind::DescribeQuorum(body) => Reply::Now(ResponseKind::DescribeQuorum(
            describe_quorum::handle(broker, body, version),
        )),
        RequestKind::ElectLeaders(body) => elect_leaders::handle(broker, body, version),
        RequestKind::AlterPartitionReassignments(body) => {
            partition_reassignments::alter(broker, body)
        }
        RequestKind::UnregisterBroker(body) => unregister_broker::handle(broker, body),
        RequestKind::ListPartitionReassignments(body) => {
            partition_reassignments::list(broker, body)
        }
        RequestKind::FindCoordinator(body) => Reply::Now(ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, body, version, &context.listener),
        )),
        RequestKind::JoinGroup(body) => join_group::handle(
            broker,
            body,
            version,
            request.client_id.as_deref().unwrap_or_default(),
            &client_host,
        ),
        RequestKind::SyncGroup(body) => sync_group::handle(broker, body, version),
        RequestKind::Heartbeat(body) => Reply::Now(ResponseKind::Heartbeat(heartbeat::handle(
            broker, body, version,
        ))),
        RequestKind::LeaveGroup(body) => Reply::Now(ResponseKind::LeaveGroup(leave_group::handle(
            broker, body, version,
        ))),
        RequestKind::OffsetCommit(body) => offset_commit::handle(broker, body, version),
        RequestKind::OffsetFetch(body) => Reply::Now(ResponseKind::OffsetFetch(
            offset_fetch::handle(broker, body, version),
        )),
        RequestKind::DescribeGroups(body) => Reply::Now(ResponseKind::DescribeGroups(
            describe_groups::handle(broker, body, version),
        )),
        RequestKind::ListGroups(body) => Reply::Now(ResponseKind::ListGroups(list_groups::handle(
            broker, body, version,
        ))),
        RequestKind::DeleteGroups(body) => delete_groups::handle(broker, body, version),
        RequestKind::OffsetDelete(body) => offset_delete::handle(broker, body, version),
        RequestKind::TxnOffsetCommit(body) => txn_offset_commit::handle(broker, body, version),
        RequestKind::ConsumerGroupHeartbeat(body) => {
            let client_id = request.client_id.as_deref().unwrap_or_default();
            Reply::Now(ResponseKind::ConsumerGroupHeartbeat(
                consumer_group_heartbeat::handle(broker, body, version, client_id, &client_host),
            ))
        }
        RequestKind::ConsumerGroupDescribe(body) => {
            Reply::Now(ResponseKind::ConsumerGroupDescribe(
                consumer_group_describe::handle(broker, body, version),
            ))
        }
        RequestKind::AddPartitionsToTxn(body) => {
            add_partitions_to_txn::handle(broker, body, version)
        }
        RequestKind::AddOffsetsToTxn(body) => add_offsets_to_txn::handle(broker, body, version),
        RequestKind::EndTxn(body) => end_txn::handle(broker, body, version),
        RequestKind::WriteTxnMarkers(body) => write_txn_markers::handle(broker, body, version),
        RequestKind::DescribeTransactions(body) => Reply::Now(ResponseKind::DescribeTransactions(
            describe_transactions::handle(broker, body, version),
        )),
        RequestKind::ListTransactions(body) => Reply::Now(ResponseKind::ListTransactions(
            list_transactions::handle(broker, body, version),
        )),
        RequestKind::DescribeProducers(body) => Reply::Now(ResponseKind::DescribeProducers(
            describe_producers::handle(broker, body, version),
        )),
        RequestKind::CreateAcls(body) => create_acls::handle(broker, body, version),
        RequestKind::DescribeAcls(body) => Reply::Now(ResponseKind::DescribeAcls(
            describe_acls::handle(broker, body, version),
        )),
        RequestKind::DeleteAcls(body) => delete_acls::handle(broker, body, version),
        RequestKind::AlterUserScramCredentials(body) => {
            alter_user_scram_credentials::handle(broker, body, version)
        }
        RequestKind::DescribeUserScramCredentials(body) => {
            Reply::Now(ResponseKind::DescribeUserScramCredentials(
                describe_user_scram_credentials::handle(broker, body, version),
            ))
        }
        // The SASL exchange is the connection's (network::authentication) on SASL listeners;
        // on the others, Kafka answers ILLEGAL_SASL_STATE.
        RequestKind::SaslHandshake(_) => Reply::Now(ResponseKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeResponse::default()
                .with_error_code(strom_types::ErrorCode::IllegalSaslState.code()),
        )),
        RequestKind::SaslAuthenticate(_) => Reply::Now(ResponseKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateResponse::default()
                .with_error_code(strom_types::ErrorCode::IllegalSaslState.code())
                .with_error_message(Some(str_bytes("this listener does not use SASL"))),
        )),
        other => unreachable!(
            "the codec admits only the APIs in strom_protocol::versions, not {other:?}"
        ),
    }
}

/// A partition's answer after a write to `__consumer_offsets`: a failed write turns every
/// per-partition success into that failure.
pub(crate) fn after_write(
    written: &Result<(), strom_types::ErrorCode>,
    error: strom_types::ErrorCode,
) -> strom_types::ErrorCode {
    match (written, error) {
        (Err(failure), strom_types::ErrorCode::None) => *failure,
        (_, error) => error,
    }
}

pub(crate) fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}
