//! ACL checks, once per request, before dispatch: what Kafka's `KafkaApis` checks for each API,
//! with its error codes. The handlers never see principals.
//!
//! A check either refuses the whole request (an answer built here, every entry carrying the
//! authorization error), or lets it through, possibly without the entries the principal may
//! not touch (topics of a Produce or Fetch, groups of a DescribeGroups, ...). Those entries'
//! errors are added to the handler's response by a [`Patch`] once it is ready, so a partly
//! authorized request is answered as Kafka answers it: the allowed part done, the rest refused.
//!
//! Files: [`data`] (Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, Metadata),
//! [`groups`] (the group and offset APIs), [`transactions`], [`admin`] (topics, configs,
//! the cluster, ACLs and SCRAM users).

mod admin;
mod data;
mod groups;
mod transactions;

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use strom_types::security::{AclBinding, AclOperation, ResourceType, CLUSTER_RESOURCE_NAME};

use crate::context::RequestContext;
use crate::Broker;

/// Adds the refused entries' errors to the handler's response.
pub type Patch = Box<dyn FnOnce(&mut ResponseKind) + Send>;

/// The outcome of checking one request.
pub enum Checked {
    /// Dispatch this (maybe trimmed) request, then apply the patch to its response.
    Allowed(RequestKind, Option<Patch>),
    /// Answer with this; the handler is not called.
    Refused(ResponseKind),
}

/// What one request's checks need: who asks, and the ACLs of the current image.
pub struct Access<'a> {
    broker: &'a Broker,
    context: &'a RequestContext,
    acls: Arc<BTreeSet<AclBinding>>,
}

impl Access<'_> {
    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        (self.broker.security).authorize(&self.acls, self.context, operation, resource_type, name)
    }

    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    pub fn allows_topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: AclOperation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_transactional_id(&self, operation: AclOperation, id: &str) -> bool {
        self.allows(operation, ResourceType::TransactionalId, id)
    }

    /// `operation` allowed on some resource of the type (Kafka's authorizeByResourceType).
    pub fn allows_any(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        (self.broker.security).authorize_any(&self.acls, self.context, operation, resource_type)
    }

    /// A check that outlives the request, for filtering its response: which resources of
    /// the type the principal may `operation` on (not logged: leaving out what one may not
    /// see is no denial).
    pub fn filter(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> Box<dyn Fn(&str) -> bool + Send> {
        let check = self.broker.security.snapshot(&self.acls, self.context);
        Box::new(move |name| check(operation, resource_type, name))
    }

    pub fn broker(&self) -> &Broker {
        self.broker
    }
}

/// Checks `request` for `context`'s principal; with authorization off, lets everything by.
pub fn check(
    broker: &Broker,
    context: &RequestContext,
    request: RequestKind,
    version: i16,
) -> Checked {
    if !broker.security.enabled() {
        return Checked::Allowed(request, None);
    }
    let access = Access {
        broker,
        context,
        acls: broker.quorum.image().acls.clone(),
    };
    match request {
        RequestKind::Produce(body) => data::produce(&access, body),
        RequestKind::Fetch(body) => data::fetch(&access, body),
        RequestKind::ListOffsets(body) => data::list_offsets(&access, body),
        RequestKind::OffsetForLeaderEpoch(body) => data::offset_for_leader_epoch(&access, body),
        RequestKind::Metadata(body) => data::metadata(&access, body, version),
        RequestKind::FindCoordinator(body) => groups::find_coordinator(&access, body, version),
        RequestKind::JoinGroup(body) => groups::join_group(&access, body),
        RequestKind::SyncGroup(body) => groups::sync_group(&access, body),
        RequestKind::Heartbeat(body) => groups::heartbeat(&access, body),
        RequestKind::LeaveGroup(body) => groups::leave_group(&access, body),
        RequestKind::OffsetCommit(body) => groups::offset_commit(&access, body),
        RequestKind::OffsetFetch(body) => groups::offset_fetch(&access, body, version),
        RequestKind::DescribeGroups(body) => groups::describe_groups(&access, body),
        RequestKind::ListGroups(body) => groups::list_groups(&access, body),
        RequestKind::DeleteGroups(body) => groups::delete_groups(&access, body),
        RequestKind::OffsetDelete(body) => groups::offset_delete(&access, body),
        RequestKind::ConsumerGroupHeartbeat(body) => {
            groups::consumer_group_heartbeat(&access, body)
        }
        RequestKind::ConsumerGroupDescribe(body) => groups::consumer_group_describe(&access, body),
        RequestKind::InitProducerId(body) => transactions::init_producer_id(&access, body),
        RequestKind::AddPartitionsToTxn(body) => {
            transactions::add_partitions_to_txn(&access, body, version)
        }
        RequestKind::AddOffsetsToTxn(body) => transactions::add_offsets_to_txn(&access, body),
        RequestKind::TxnOffsetCommit(body) => transactions::txn_offset_commit(&access, body),
        RequestKind::EndTxn(body) => transactions::end_txn(&access, body),
        RequestKind::WriteTxnMarkers(body) => transactions::write_txn_markers(&access, body),
        RequestKind::DescribeTransactions(body) => {
            transactions::describe_transactions(&access, body)
        }
        RequestKind::ListTransactions(body) => transactions::list_transactions(&access, body),
        RequestKind::DescribeProducers(body) => transactions::describe_producers(&access, body),
        RequestKind::DescribeLogDirs(body) => admin::describe_log_dirs(&access, body, version),
        other => admin::check(&access, other),
    }
}

/// Keeps the entries of `entries` that `allowed` accepts and returns the others, in order:
/// the refused part of a partly authorized request.
pub fn take_refused<T>(entries: &mut Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (kept, refused) = std::mem::take(entries)
        .into_iter()
        .partition(|e| allowed(e));
    *entries = kept;
    refused
}

/// Takes the refused topics out of a request (see [`take_refused`]) and keeps of each what its
/// answer needs: the key `describe` gives (the topic's name) and its partitions' indexes.
pub fn take_refused_partitions<T, K>(
    topics: &mut Vec<T>,
    allowed: impl FnMut(&T) -> bool,
    describe: impl Fn(&T) -> (K, Vec<i32>),
) -> Vec<(K, Vec<i32>)> {
    take_refused(topics, allowed).iter().map(describe).collect()
}

/// A patch from a closure over one response kind; other kinds pass untouched (a handler
/// answers with its own API's kind, so they do not occur).
pub fn patch_of<F>(apply: F) -> Option<Patch>
where
    F: FnOnce(&mut ResponseKind) + Send + 'static,
{
    Some(Box::new(apply))
}
