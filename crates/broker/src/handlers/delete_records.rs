//! DeleteRecords: moves each partition's log start offset up to the offset asked for (-1: the
//! high watermark) on its leader, which deletes the segments wholly below it; followers take
//! the new log start from their next fetch. As Kafka's `ReplicaManager.deleteRecords`, the
//! answer waits (DelayedDeleteRecords, up to `timeout_ms`) until the low watermark, the
//! smallest log start among the replicas on live brokers, reaches the offset; a partition
//! still short of it then is answered REQUEST_TIMED_OUT.
//!
//! Per partition, Kafka's errors: UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION for the
//! internal topics, NOT_LEADER_OR_FOLLOWER, POLICY_VIOLATION when the topic's cleanup.policy
//! lacks `delete` (a compacted-only topic), OFFSET_OUT_OF_RANGE beyond the high watermark.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use strom_coordinator::{OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use strom_metadata::MetadataImage;
use strom_partition::{Partition, PartitionError, RecordsDeleted};
use strom_types::{BrokerId, ErrorCode, Offset, PartitionIndex};

use super::Reply;
use crate::topics::{led_partition, Topic};
use crate::Broker;

/// The offset a request sends for "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;
/// Kafka's INVALID_LOW_WATERMARK, in an answer that failed.
const NO_LOW_WATERMARK: i64 = -1;

/// A partition whose low watermark has not reached the offset asked for yet.
struct Pending {
    topic: usize,
    partition: usize,
    leader: Arc<Partition>,
    required: Offset,
}

pub fn handle(broker: &Arc<Broker>, request: DeleteRecordsRequest, _version: i16) -> Reply {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let unanswered = failed_answer(&request, ErrorCode::UnknownServerError);
        // Deleting rewrites a checkpoint, unlinks segments and fsyncs, per partition: not on
        // the threads that serve the connections.
        let deleting = broker.clone();
        let deleted = tokio::task::spawn_blocking(move || delete_all(&deleting, &request)).await;
        let (response, pending) = match deleted {
            Ok(deleted) => deleted,
            Err(error) => {
                tracing::error!(%error, "DeleteRecords panicked");
                return ResponseKind::DeleteRecords(unanswered);
            }
        };
        ResponseKind::DeleteRecords(wait_replicated(&broker, response, pending, deadline).await)
    }))
}

/// Every partition of the request answered with `code`.
fn failed_answer(request: &DeleteRecordsRequest, code: ErrorCode) -> DeleteRecordsResponse {
    let topics = (request.topics.iter())
        .map(|wanted| {
            let partitions = (wanted.partitions.iter())
                .map(|asked| {
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(asked.partition_index)
                        .with_error_code(code.code())
                        .with_low_watermark(NO_LOW_WATERMARK)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Deletes on every partition of the request: the answer so far, and the partitions whose low
/// watermark is still short of the offset asked for.
fn delete_all(
    broker: &Arc<Broker>,
    request: &DeleteRecordsRequest,
) -> (DeleteRecordsResponse, Vec<Pending>) {
    let image = broker.quorum.image();
    let mut pending = Vec::new();
    let topics = (request.topics.iter().enumerate())
        .map(|(topic_at, wanted)| {
            let name = wanted.name.as_str();
            let topic = broker.topics.get(name);
            let partitions = (wanted.partitions.iter().enumerate())
                .map(|(partition_at, asked)| {
                    let answer = DeleteRecordsPartitionResult::default()
                        .with_partition_index(asked.partition_index);
                    match delete(broker, &image, name, topic.as_deref(), asked) {
                        Ok((leader, deleted)) => {
                            if deleted.low_watermark < deleted.requested {
                                pending.push(Pending {
                                    topic: topic_at,
                                    partition: partition_at,
                                    leader,
                                    required: deleted.requested,
                                });
                            }
                            answer.with_low_watermark(deleted.low_watermark.0)
                        }
                        Err(code) => answer
                            .with_error_code(code.code())
                            .with_low_watermark(NO_LOW_WATERMARK),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    (
        DeleteRecordsResponse::default().with_topics(topics),
        pending,
    )
}

/// Deletes on one partition: its leader, and what the leader did.
fn delete(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    name: &str,
    topic: Option<&Topic>,
    asked: &DeleteRecordsPartition,
) -> Result<(Arc<Partition>, RecordsDeleted), ErrorCode> {
    let internal = name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC;
    if internal && image.topics.contains_key(name) {
        return Err(ErrorCode::InvalidTopicException);
    }
    let index = PartitionIndex(asked.partition_index);
    let leader = led_partition(image, name, topic, index, None).map_err(|error| error.code)?;
    if topic.is_some_and(|topic| !topic.config.cleanup.delete) {
        return Err(ErrorCode::PolicyViolation);
    }
    let offset = (asked.offset != HIGH_WATERMARK).then_some(Offset(asked.offset));
    match leader.delete_records(offset, alive(broker)) {
        Ok(deleted) => Ok((leader.clone(), deleted)),
        Err(error) => {
            if error.is_fatal() {
                tracing::error!(topic = name, partition = index.0, %error, "deleting records failed");
            }
            Err(error.code())
        }
    }
}

/// Which brokers count for the low watermark: the live ones, as the current image says.
fn alive(broker: &Arc<Broker>) -> impl Fn(BrokerId) -> bool + Send + Sync + 'static {
    let broker = broker.clone();
    move |id: BrokerId| broker.quorum.image().is_alive(id.0)
}

/// Waits for each pending partition's low watermark (one deadline for all), then answers with
/// it; a partition short of it at the deadline keeps its first low watermark and is answered
/// REQUEST_TIMED_OUT, one whose leadership moved NOT_LEADER_OR_FOLLOWER.
async fn wait_replicated(
    broker: &Arc<Broker>,
    mut response: DeleteRecordsResponse,
    pending: Vec<Pending>,
    deadline: tokio::time::Instant,
) -> DeleteRecordsResponse {
    for wait in pending {
        let answer = &mut response.topics[wait.topic].partitions[wait.partition];
        let reached = (wait.leader)
            .wait_low_watermark(wait.required, alive(broker), deadline)
            .await;
        match reached {
            Ok(low_watermark) => answer.low_watermark = low_watermark.0,
            Err(PartitionError::ReplicationTimedOut) => {
                answer.error_code = ErrorCode::RequestTimedOut.code();
            }
            Err(error) => {
                answer.error_code = error.code().code();
                answer.low_watermark = NO_LOW_WATERMARK;
            }
        }
    }
    response
}
