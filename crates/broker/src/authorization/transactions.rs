//! The transaction APIs: InitProducerId (WRITE on the transactional id; an idempotent
//! producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic), AddPartitionsToTxn
//! (WRITE on the id and the topics; the brokers' v4+ verification needs CLUSTER_ACTION),
//! AddOffsetsToTxn (WRITE on the id, READ on the group), TxnOffsetCommit (READ on the group,
//! WRITE on the id, READ on the topics), EndTxn (WRITE on the id), WriteTxnMarkers
//! (CLUSTER_ACTION), DescribeTransactions and ListTransactions (DESCRIBE on the id),
//! DescribeProducers (READ on the topic).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeTransactionsRequest,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, RequestKind, ResponseKind, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use strom_types::security::{AclOperation, ResourceType};
use strom_types::ErrorCode;

use super::{patch_of, take_refused, Access, Checked};

const ID_DENIED: ErrorCode = ErrorCode::TransactionalIdAuthorizationFailed;

pub fn init_producer_id(access: &Access, request: InitProducerIdRequest) -> Checked {
    let allowed = match &request.transactional_id {
        Some(id) => access.allows_transactional_id(AclOperation::Write, id),
        None => {
            access.allows_cluster(AclOperation::IdempotentWrite)
                || access.allows_any(AclOperation::Write, ResourceType::Topic)
        }
    };
    if allowed {
        return Checked::Allowed(RequestKind::InitProducerId(request), None);
    }
    let code = match request.transactional_id {
        Some(_) => ID_DENIED,
        None => ErrorCode::ClusterAuthorizationFailed,
    };
    let response = InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    Checked::Refused(ResponseKind::InitProducerId(response))
}

pub fn add_partitions_to_txn(
    access: &Access,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> Checked {
    if version >= 4 {
        if access.allows_cluster(AclOperation::ClusterAction) {
            return Checked::Allowed(RequestKind::AddPartitionsToTxn(request), None);
        }
        let response = AddPartitionsToTxnResponse::default()
            .with_error_code(ErrorCode::ClusterAuthorizationFailed.code());
        return Checked::Refused(ResponseKind::AddPartitionsToTxn(response));
    }
    let Some(transaction) = request.transactions.first() else {
        return Checked::Allowed(RequestKind::AddPartitionsToTxn(request), None);
    };
    let id_allowed =
        access.allows_transactional_id(AclOperation::Write, &transaction.transactional_id);
    let denied_topics: Vec<bool> = (transaction.topics.iter())
        .map(|topic| !access.allows_topic(AclOperation::Write, &topic.name))
        .collect();
    if id_allowed && !denied_topics.contains(&true) {
        return Checked::Allowed(RequestKind::AddPartitionsToTxn(request), None);
    }
    // Kafka: the refused topics get their error, the others OPERATION_NOT_ATTEMPTED.
    let topic_results = (transaction.topics.iter().zip(denied_topics))
        .map(|(topic, denied)| {
            let code = match (id_allowed, denied) {
                (false, _) => ID_DENIED,
                (true, true) => ErrorCode::TopicAuthorizationFailed,
                (true, false) => ErrorCode::OperationNotAttempted,
            };
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    (topic.partitions.iter())
                        .map(|index| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*index)
                                .with_partition_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect();
    let result = AddPartitionsToTxnResult::default()
        .with_transactional_id(transaction.transactional_id.clone())
        .with_topic_results(topic_results);
    let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![result]);
    Checked::Refused(ResponseKind::AddPartitionsToTxn(response))
}

pub fn add_offsets_to_txn(access: &Access, request: AddOffsetsToTxnRequest) -> Checked {
    let code = if !access.allows_transactional_id(AclOperation::Write, &request.transactional_id) {
        ID_DENIED
    } else if !access.allows_group(AclOperation::Read, &request.group_id) {
        ErrorCode::GroupAuthorizationFailed
    } else {
        return Checked::Allowed(RequestKind::AddOffsetsToTxn(request), None);
    };
    let response = AddOffsetsToTxnResponse::default().with_error_code(code.code());
    Checked::Refused(ResponseKind::AddOffsetsToTxn(response))
}

pub fn txn_offset_commit(access: &Access, mut request: TxnOffsetCommitRequest) -> Checked {
    let errors = |topics: &[kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic],
                  code: ErrorCode| {
        (topics.iter())
            .map(|topic| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        (topic.partitions.iter())
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect::<Vec<_>>()
    };
    let whole = if !access.allows_group(AclOperation::Read, &request.group_id) {
        Some(ErrorCode::GroupAuthorizationFailed)
    } else if !access.allows_transactional_id(AclOperation::Write, &request.transactional_id) {
        Some(ID_DENIED)
    } else {
        None
    };
    if let Some(code) = whole {
        let response =
            TxnOffsetCommitResponse::default().with_topics(errors(&request.topics, code));
        return Checked::Refused(ResponseKind::TxnOffsetCommit(response));
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|topic| access.allows_topic(AclOperation::Read, &topic.name));
    request.topics = allowed;
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::TxnOffsetCommit(request), None);
    }
    let refused = errors(&refused, ErrorCode::TopicAuthorizationFailed);
    let patch = patch_of(move |response| {
        let ResponseKind::TxnOffsetCommit(response) = response else {
            return;
        };
        response.topics.extend(refused);
    });
    Checked::Allowed(RequestKind::TxnOffsetCommit(request), patch)
}

pub fn end_txn(access: &Access, request: EndTxnRequest) -> Checked {
    if access.allows_transactional_id(AclOperation::Write, &request.transactional_id) {
        return Checked::Allowed(RequestKind::EndTxn(request), None);
    }
    let response = EndTxnResponse::default()
        .with_error_code(ID_DENIED.code())
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    Checked::Refused(ResponseKind::EndTxn(response))
}

pub fn write_txn_markers(access: &Access, request: WriteTxnMarkersRequest) -> Checked {
    if access.allows_cluster(AclOperation::ClusterAction) {
        return Checked::Allowed(RequestKind::WriteTxnMarkers(request), None);
    }
    let code = ErrorCode::ClusterAuthorizationFailed.code();
    let markers = (request.markers.iter())
        .map(|marker| {
            let topics = (marker.topics.iter())
                .map(|topic| {
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_partitions(
                            (topic.partition_indexes.iter())
                                .map(|index| {
                                    WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(*index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics)
        })
        .collect();
    let response = WriteTxnMarkersResponse::default().with_markers(markers);
    Checked::Refused(ResponseKind::WriteTxnMarkers(response))
}

pub fn describe_transactions(access: &Access, mut request: DescribeTransactionsRequest) -> Checked {
    let refused: Vec<_> = take_refused(&mut request.transactional_ids, |id| {
        access.allows_transactional_id(AclOperation::Describe, id)
    });
    // Kafka also leaves out topics the principal may not DESCRIBE: filter the answer too.
    let visible = access.filter(AclOperation::Describe, ResourceType::Topic);
    let patch = patch_of(move |response| {
        let ResponseKind::DescribeTransactions(response) = response else {
            return;
        };
        for state in &mut response.transaction_states {
            state.topics.retain(|topic| visible(&topic.topic));
        }
        for id in refused {
            response.transaction_states.push(
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ID_DENIED.code())
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            );
        }
    });
    Checked::Allowed(RequestKind::DescribeTransactions(request), patch)
}

pub fn list_transactions(access: &Access, request: ListTransactionsRequest) -> Checked {
    let visible = access.filter(AclOperation::Describe, ResourceType::TransactionalId);
    let patch = patch_of(move |response| {
        let ResponseKind::ListTransactions(response) = response else {
            return;
        };
        (response.transaction_states).retain(|state| visible(&state.transactional_id));
    });
    Checked::Allowed(RequestKind::ListTransactions(request), patch)
}

pub fn describe_producers(access: &Access, mut request: DescribeProducersRequest) -> Checked {
    let refused: Vec<_> = take_refused(&mut request.topics, |topic| {
        access.allows_topic(AclOperation::Read, &topic.name)
    })
    .into_iter()
    .map(|topic| (topic.name.clone(), topic.partition_indexes.clone()))
    .collect();
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::DescribeProducers(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::DescribeProducers(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    PartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                })
                .collect();
            response.topics.push(
                TopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::DescribeProducers(request), patch)
}
