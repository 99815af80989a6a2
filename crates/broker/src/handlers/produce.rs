//! Produce: validate each batch's header and CRC, append the bytes as they came (offsets
//! assigned by rewriting each batch's base offset in place), and answer by `acks`: 0 never,
//! 1 once the bytes are in the OS, -1 (all) once they are fsynced by the group commit.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use strom_log::LogError;
use strom_protocol::batch::{BatchError, BatchHeader, Batches};
use strom_types::{ErrorCode, Offset, TimestampMs};

use super::{str_bytes, Reply};
use crate::config::TimestampType;
use crate::durability;
use crate::producers::{ProducerStates, SequenceCheck};
use crate::replication;
use crate::topics::{led_partition, Partition, Topic};
use crate::Broker;

/// A partition an acks=all request must see fsynced up to (exclusive) `offset`.
struct DurabilityWait {
    topic_index: usize,
    partition_index: usize,
    partition: Arc<Partition>,
    offset: Offset,
    /// The leader epoch the records were appended in: a change means leadership moved.
    leader_epoch: i32,
    min_insync_replicas: i32,
}

pub fn handle(broker: &Arc<Broker>, request: ProduceRequest, _version: i16) -> Reply {
    let acks = request.acks;
    let timeout_ms = request.timeout_ms.max(0) as u64;
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (topic_index, topic_data) in request.topic_data.into_iter().enumerate() {
        let topic = find_topic(broker, topic_data.name.as_str());
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for (partition_index, data) in topic_data.partition_data.into_iter().enumerate() {
            let index = data.index;
            let outcome = if ![-1, 0, 1].contains(&acks) {
                Err((
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                ))
            } else {
                append(broker, topic_data.name.as_str(), topic.as_ref(), data, acks)
            };
            match outcome {
                Ok((response, partition, end, leader_epoch)) => {
                    let min_insync_replicas = topic
                        .as_ref()
                        .map_or(1, |topic| topic.config.min_insync_replicas);
                    waits.push(DurabilityWait {
                        topic_index,
                        partition_index,
                        leader_epoch,
                        partition,
                        offset: end,
                        min_insync_replicas,
                    });
                    partition_responses.push(response);
                }
                Err((code, message)) => {
                    partition_responses.push(error_response(index, code, message))
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if !waits.is_empty() {
        broker.notify_appended();
    }
    let response = ProduceResponse::default().with_responses(responses);
    match acks {
        0 => Reply::Silent,
        -1 => Reply::Later(Box::pin(async move {
            ResponseKind::Produce(wait_durable(response, waits, timeout_ms).await)
        })),
        _ => Reply::Now(ResponseKind::Produce(response)),
    }
}

/// The topic, if this node knows it. A missing topic is created in the background when
/// `auto.create.topics.enable` is set; meanwhile the client gets the retriable
/// UNKNOWN_TOPIC_OR_PARTITION and tries again after refreshing its metadata (clients look
/// topics up with Metadata before producing, which creates them synchronously).
fn find_topic(broker: &Arc<Broker>, name: &str) -> Option<Arc<Topic>> {
    if let Some(topic) = broker.topics.get(name) {
        return Some(topic);
    }
    let known = broker.quorum.image().topics.contains_key(name);
    if broker.config.auto_create_topics && !known && strom_types::TopicName::new(name).is_ok() {
        let (broker, name) = (broker.clone(), name.to_owned());
        tokio::spawn(async move { super::metadata::auto_create(&broker, &name).await });
    }
    None
}

/// The answer, the partition, the offset the records end at, and the leader epoch they were
/// appended in; or the error.
type AppendOutcome =
    Result<(PartitionProduceResponse, Arc<Partition>, Offset, i32), (ErrorCode, String)>;

/// Validates and appends one partition's records.
fn append(
    broker: &Broker,
    name: &str,
    topic: Option<&Arc<Topic>>,
    data: PartitionProduceData,
    acks: i16,
) -> AppendOutcome {
    if name == crate::groups::OFFSETS_TOPIC {
        // Only the group coordinator writes there, in its own record format.
        return Err((
            ErrorCode::InvalidTopicException,
            format!("cannot produce to the internal topic {name}"),
        ));
    }
    let image = broker.quorum.image();
    let node = broker.config.node_id;
    let partition = led_partition(&image, name, topic.map(|t| &**t), data.index, node, -1)
        .map_err(|code| (code, not_here(code)))?;
    let topic = topic.expect("a led partition has its topic");
    let records = data.records.filter(|records| !records.is_empty());
    let records = records.ok_or_else(|| {
        (
            ErrorCode::CorruptMessage,
            "the produce request carries no records".to_owned(),
        )
    })?;
    let headers = validate(&records, topic.config.max_message_bytes)?;
    if topic.config.cleanup.compact {
        require_keys(&records)?;
    }
    // One copy, so that base offsets (and LogAppendTime stamps) can be rewritten in place.
    let mut owned = BytesMut::from(&records[..]);
    let append_time =
        (topic.config.timestamp_type == TimestampType::LogAppendTime).then(TimestampMs::now);
    let (leader_epoch, isr_size) = {
        let state = partition.state.read();
        (state.leader_epoch, state.isr.len() as i32)
    };
    if acks == -1 && isr_size < topic.config.min_insync_replicas {
        return Err((
            ErrorCode::NotEnoughReplicas,
            format!(
                "the ISR has {isr_size} replica(s), fewer than min.insync.replicas ({})",
                topic.config.min_insync_replicas
            ),
        ));
    }
    let mut log = partition.log.lock();
    let mut producers = partition.producers.lock();
    let response = PartitionProduceResponse::default()
        .with_index(data.index)
        .with_log_append_time_ms(-1);
    if let Some((base_offset, last_offset)) = check_sequences(&producers, &headers)? {
        // A retry of a batch already written: answer with the original offsets.
        let response = response
            .with_base_offset(base_offset.0)
            .with_log_start_offset(log.log_start_offset().0);
        return Ok((
            response,
            partition.clone(),
            last_offset.plus(1),
            leader_epoch,
        ));
    }
    let info = log
        .append_with_epoch(&mut owned, append_time, leader_epoch)
        .map_err(|error| match error {
        LogError::RecordBatchTooLarge { .. } => (ErrorCode::RecordListTooLarge, error.to_string()),
        LogError::InvalidBatch(_) => (ErrorCode::CorruptMessage, error.to_string()),
        other if !other.is_fatal() => (ErrorCode::InvalidRecord, other.to_string()),
        other => {
            tracing::error!(topic = %topic.name, partition = data.index, error = %other, "append failed");
            (ErrorCode::KafkaStorageError, other.to_string())
        }
    })?;
    if headers.iter().any(|header| header.producer_id >= 0) {
        for (header, _) in Batches::new(&owned) {
            producers.record(&header);
        }
    }
    drop(producers);
    replication::advance_high_watermark(partition, node, log.log_end_offset());
    let response = response
        .with_base_offset(info.base_offset.0)
        .with_log_append_time_ms(info.log_append_time.map_or(-1, |time| time.0))
        .with_log_start_offset(log.log_start_offset().0);
    Ok((
        response,
        partition.clone(),
        info.last_offset.plus(1),
        leader_epoch,
    ))
}

/// Checks idempotent producers' sequences. `Some(span)` means the request is a retry of a
/// batch already written at that span of offsets.
fn check_sequences(
    producers: &ProducerStates,
    headers: &[BatchHeader],
) -> Result<Option<(Offset, Offset)>, (ErrorCode, String)> {
    for header in headers.iter().filter(|header| header.producer_id >= 0) {
        if header.is_transactional() {
            return Err((
                ErrorCode::InvalidRecord,
                "transactional batches are not supported yet".to_owned(),
            ));
        }
        match producers.check(header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } if headers.len() == 1 => {
                return Ok(Some((base_offset, last_offset)));
            }
            SequenceCheck::Duplicate { .. } => {
                return Err((
                    ErrorCode::DuplicateSequenceNumber,
                    "a duplicate batch arrived among others".to_owned(),
                ));
            }
            SequenceCheck::Reject(code, message) => return Err((code, message)),
        }
    }
    Ok(None)
}

/// Every batch: a v2 header, a matching CRC, a consistent record count, within max.message.bytes.
fn validate(
    records: &Bytes,
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, (ErrorCode, String)> {
    let mut headers = Vec::with_capacity(1);
    let mut batches = Batches::new(records);
    for (header, range) in batches.by_ref() {
        if header.total_bytes() > max_message_bytes {
            return Err((
                ErrorCode::MessageTooLarge,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes ({max_message_bytes})",
                    header.total_bytes()
                ),
            ));
        }
        strom_protocol::batch::verify_crc(&records[range], &header)
            .map_err(|error| (ErrorCode::CorruptMessage, error.to_string()))?;
        if header.record_count != header.last_offset_delta + 1 {
            return Err((
                ErrorCode::InvalidRecord,
                format!(
                    "batch holds {} records but its last offset delta is {}",
                    header.record_count, header.last_offset_delta
                ),
            ));
        }
        headers.push(header);
    }
    match batches.error() {
        None => Ok(headers),
        Some(error @ BatchError::UnsupportedMagic(_)) => {
            Err((ErrorCode::UnsupportedForMessageFormat, error.to_string()))
        }
        Some(error) => Err((ErrorCode::CorruptMessage, error.to_string())),
    }
}

/// Compaction keeps each key's latest record, so a compacted topic refuses records without a
/// key, as Kafka does. This decodes the records: compacted topics pay for it, others do not.
fn require_keys(records: &Bytes) -> Result<(), (ErrorCode, String)> {
    let mut bytes = records.clone();
    let batches =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| {
            (
                ErrorCode::CorruptMessage,
                format!("records do not decode: {error:#}"),
            )
        })?;
    if batches
        .iter()
        .flat_map(|batch| &batch.records)
        .any(|record| record.key.is_none())
    {
        return Err((
            ErrorCode::InvalidRecord,
            "a compacted topic cannot accept records without a key".to_owned(),
        ));
    }
    Ok(())
}

fn error_response(index: i32, code: ErrorCode, message: String) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(str_bytes(message)))
}

/// Waits until every acks=all append is on the leader's disk and below the high watermark
/// (every ISR member has it on disk), answering REQUEST_TIMED_OUT after the request's
/// `timeout_ms`, NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile, and
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below `min.insync.replicas`.
async fn wait_durable(
    mut response: ProduceResponse,
    waits: Vec<DurabilityWait>,
    timeout_ms: u64,
) -> ProduceResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    for wait in waits {
        let outcome = match durability::wait_durable(&wait.partition, wait.offset).await {
            Ok(()) => wait_replicated(&wait, deadline).await,
            Err(code) => Err((code, "the records could not be made durable")),
        };
        if let Err((code, message)) = outcome {
            let partition =
                &mut response.responses[wait.topic_index].partition_responses[wait.partition_index];
            *partition = error_response(partition.index, code, message.to_owned());
        }
    }
    response
}

async fn wait_replicated(
    wait: &DurabilityWait,
    deadline: tokio::time::Instant,
) -> Result<(), (ErrorCode, &'static str)> {
    let progress = &wait.partition.replication;
    let mut high_watermark = progress.watch_high_watermark();
    loop {
        let state = wait.partition.state();
        if state.leader_epoch != wait.leader_epoch {
            return Err((
                ErrorCode::NotLeaderOrFollower,
                "leadership moved before the records were replicated",
            ));
        }
        if *high_watermark.borrow_and_update() >= wait.offset.0 {
            if (state.isr.len() as i32) < wait.min_insync_replicas {
                return Err((
                    ErrorCode::NotEnoughReplicasAfterAppend,
                    "the ISR shrank below min.insync.replicas",
                ));
            }
            return Ok(());
        }
        // Leadership changes do not move the high watermark: look again every so often.
        let recheck = tokio::time::Instant::now() + Duration::from_millis(100);
        tokio::select! {
            changed = high_watermark.changed() => if changed.is_err() {
                return Err((ErrorCode::NotLeaderOrFollower, "the partition was closed"));
            },
            _ = tokio::time::sleep_until(recheck.min(deadline)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err((
                ErrorCode::RequestTimedOut,
                "the in-sync replicas did not all confirm the records in time",
            ));
        }
    }
}

/// The message for a partition this node cannot append to.
fn not_here(code: ErrorCode) -> String {
    match code {
        ErrorCode::NotLeaderOrFollower => "this broker is not the partition's leader".to_owned(),
        _ => "this server does not host this topic-partition".to_owned(),
    }
}
