//! TxnOffsetCommit (KIP-98, KIP-447 from v3): a transactional producer commits a consumer
//! group's offsets as part of its transaction (`send_offsets_to_transaction`). The offsets
//! are written to the group's `__consumer_offsets` partition in one transactional batch of
//! the producer and stay pending until the producer's marker there commits or aborts them.
//!
//! Checks in Kafka's order (KafkaApis and the group coordinator): each topic and partition
//! must exist (UNKNOWN_TOPIC_OR_PARTITION for those alone); then, for the rest, a non-empty
//! group id (INVALID_GROUP_ID), this node coordinating the group (NOT_COORDINATOR), the
//! member and generation when given (`validate_txn_commit`), and per partition the metadata
//! size (OFFSET_METADATA_TOO_LARGE). A producer id or epoch that no producer can have is
//! refused before anything is written. Then, as KIP-890 part 1 has it, the transaction
//! coordinator must have the group's offsets partition in the producer's transaction.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ResponseKind, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use strom_coordinator::offsets::CommittedOffset;
use strom_coordinator::{limits, offsets, OFFSETS_TOPIC};
use strom_types::{ErrorCode, PartitionIndex, ProducerEpoch, ProducerId};

use super::Reply;
use crate::{transactions, Broker};

/// Per topic, in request order: each partition and its answer so far.
type Results = Vec<(TopicName, Vec<(i32, ErrorCode)>)>;

pub fn handle(broker: &Arc<Broker>, request: TxnOffsetCommitRequest, _version: i16) -> Reply {
    let groups = broker.groups.clone();
    let group_id = request.group_id.to_string();
    let producer_id = ProducerId(request.producer_id.0);
    let producer_epoch = ProducerEpoch(request.producer_epoch);
    let now = groups.now_ms();
    let refusal = request_error(broker, &request);
    let metadata_max = groups.coordinator().config().offset_metadata_bytes_max;
    let image = broker.quorum.image();
    let mut results: Results = Vec::with_capacity(request.topics.len());
    let mut entries = Vec::new();
    for topic in &request.topics {
        // Like Kafka, the partition must exist in the cluster, wherever its replicas are.
        let partition_count = image
            .topics
            .get(topic.name.as_str())
            .map_or(0, |topic| topic.partitions.len() as i32);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                if !(0..partition_count).contains(&p.partition_index) {
                    return (p.partition_index, ErrorCode::UnknownTopicOrPartition);
                }
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let checked = refusal.and_then(|()| {
                    limits::check_offset(topic.name.as_str(), &metadata, metadata_max)
                });
                if let Err(error) = checked {
                    return (p.partition_index, error);
                }
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                };
                entries.push((topic.name.to_string(), p.partition_index, offset));
                (p.partition_index, ErrorCode::None)
            })
            .collect();
        results.push((topic.name.clone(), partitions));
    }
    let transactional_id = request.transactional_id.to_string();
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let verified = match entries.is_empty() {
            true => Ok(()),
            false => {
                verify(
                    &broker,
                    &transactional_id,
                    &group_id,
                    producer_id,
                    producer_epoch,
                )
                .await
            }
        };
        let written = match verified {
            Ok(()) => {
                groups
                    .write_txn_offsets(&group_id, producer_id, producer_epoch, &entries)
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::info!(group = %group_id, producer = producer_id.0, %error, "transactional offset commit not written");
        }
        ResponseKind::TxnOffsetCommit(response(results, &written))
    }))
}

/// KIP-890 part 1, as Kafka checks TxnOffsetCommit: unless the producer already has a
/// transaction open in the group's offsets partition, the transaction coordinator must have
/// that partition in the producer's transaction (AddOffsetsToTxn), or the offsets would be
/// written in a transaction nobody will end and the group would answer UNSTABLE_OFFSET_COMMIT
/// for ever.
async fn verify(
    broker: &Arc<Broker>,
    transactional_id: &str,
    group_id: &str,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
) -> Result<(), ErrorCode> {
    let Some(topic) = broker.topics.get(OFFSETS_TOPIC) else {
        return Err(ErrorCode::NotCoordinator);
    };
    let index = offsets::partition_for(group_id, topic.partition_count);
    let open = (topic.partition(PartitionIndex(index)))
        .is_some_and(|partition| partition.in_transaction(producer_id, producer_epoch));
    if open {
        return Ok(());
    }
    let partition = (OFFSETS_TOPIC.to_owned(), index);
    let verdicts = transactions::verify(
        broker,
        transactional_id,
        producer_id,
        producer_epoch,
        std::slice::from_ref(&partition),
    )
    .await;
    match verdicts.get(&partition).copied() {
        Some(ErrorCode::None) => Ok(()),
        // Coordinator trouble is retriable for the client; anything else aborts.
        Some(error) if transactions::coordinator_unavailable(error) => {
            Err(ErrorCode::CoordinatorLoadInProgress)
        }
        Some(ErrorCode::TransactionAbortable) | None => Err(ErrorCode::InvalidTxnState),
        Some(other) => Err(other),
    }
}

/// What refuses the whole request for every partition that exists, if anything.
fn request_error(broker: &Broker, request: &TxnOffsetCommitRequest) -> Result<(), ErrorCode> {
    let group_id = request.group_id.as_str();
    limits::check_group_id_not_empty(group_id)?;
    if !broker.groups.is_coordinator(group_id) {
        return Err(ErrorCode::NotCoordinator);
    }
    if request.producer_id.0 < 0 {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if request.producer_epoch < 0 {
        return Err(ErrorCode::InvalidProducerEpoch);
    }
    broker.groups.coordinator().validate_txn_commit(
        group_id,
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|id| id.as_str()),
        request.generation_id,
    )
}

fn response(results: Results, written: &Result<(), ErrorCode>) -> TxnOffsetCommitResponse {
    let topics = results
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, error)| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(super::after_write(written, error).code())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
