//! Produce: validate each batch's header and CRC (the request's rules), hand the batches to
//! their partition's leader append path (`Partition::append_as_leader`: producer sequences,
//! offsets assigned by rewriting each batch's base offset in place, the high watermark), and
//! answer by `acks`: 0 never, 1 once the bytes are in the OS, -1 (all) once they are fsynced
//! here and every in-sync replica has them (`Partition::wait_acknowledged`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::{OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use strom_partition::{AckWait, Acks, AppendOptions, Partition};
use strom_protocol::batch::{BatchError, Batches};
use strom_types::{ErrorCode, PartitionIndex, ProducerEpoch, ProducerId, TimestampMs};

use super::{str_bytes, Reply};
use crate::config::TimestampType;
use crate::error::BrokerError;
use crate::topics::{led_partition, Topic};
use crate::{schema_validation, transactions, Broker};

/// A partition an acks=all answer waits for.
struct AckWaiter {
    topic_index: usize,
    partition_index: usize,
    partition: Arc<Partition>,
    ack: AckWait,
}

pub fn handle(broker: &Arc<Broker>, request: ProduceRequest, version: i16) -> Reply {
    if names_unknown_schema_ids(broker, &request) {
        // A topic with schema validation names an id this node has not read yet: it may have
        // been registered elsewhere a moment ago. Read `_schemas` to its end first (this
        // connection's later requests wait, so its batches keep their order).
        let broker = broker.clone();
        return Reply::Ordered(Box::pin(async move {
            broker.schema_validation.refresh().await;
            match handle_checked(&broker, request, version) {
                Reply::Ordered(next) => next.await,
                reply => reply,
            }
        }));
    }
    handle_checked(broker, request, version)
}

/// Whether a partition of a topic with schema validation on has a record naming a schema id
/// not known here (records without one are refused by `append` without asking anyone).
fn names_unknown_schema_ids(broker: &Broker, request: &ProduceRequest) -> bool {
    request.topic_data.iter().any(|topic| {
        let Some(registered) = broker.topics.get(topic.name.as_str()) else {
            return false;
        };
        let checked = registered.config.schema_validation;
        checked.any()
            && (topic.partition_data.iter())
                .filter_map(|data| data.records.as_ref())
                .any(
                    |records| match schema_validation::schema_ids(records, checked) {
                        Ok(ids) => {
                            (ids.iter()).any(|(_, id)| !broker.schema_validation.is_registered(*id))
                        }
                        Err(_) => false,
                    },
                )
    })
}

fn handle_checked(broker: &Arc<Broker>, request: ProduceRequest, version: i16) -> Reply {
    match verification(broker, &request) {
        Verification::NotNeeded => respond(broker, request, version, &Verdicts::new()),
        Verification::Local(verdicts) => respond(broker, request, version, &verdicts),
        Verification::Remote(remote) => {
            // The coordinator is elsewhere: this request waits for its answer, and so do the
            // requests behind it on this connection, so the producer's batches still land in
            // the order it sent them (Kafka reads one request per connection at a time).
            let broker = broker.clone();
            Reply::Ordered(Box::pin(async move {
                let verdicts = remote.ask(&broker).await;
                respond(&broker, request, version, &verdicts)
            }))
        }
    }
}

/// The coordinator's answer for partitions a transactional produce opens its transaction in.
type Verdicts = HashMap<(String, i32), ErrorCode>;

/// Whether a produce must ask the transaction coordinator first (KIP-890 part 1): it carries
/// a transactional batch for a partition where its producer has no transaction open yet, which
/// must then be in the producer's transaction (AddPartitionsToTxn), or the batch could be
/// left hanging outside any transaction.
enum Verification {
    NotNeeded,
    /// Answered here: this node is the coordinator.
    Local(Verdicts),
    Remote(RemoteVerification),
}

struct RemoteVerification {
    coordinator: i32,
    transactional_id: String,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partitions: Vec<(String, i32)>,
}

fn verification(broker: &Arc<Broker>, request: &ProduceRequest) -> Verification {
    let Some(transactional_id) = request.transactional_id.as_ref() else {
        return Verification::NotNeeded;
    };
    let mut producer = None;
    let mut partitions = Vec::new();
    for topic in &request.topic_data {
        let registered = broker.topics.get(topic.name.as_str());
        for data in &topic.partition_data {
            let Some(records) = data.records.as_ref() else {
                continue;
            };
            let Some((header, _)) = Batches::new(records).next() else {
                continue;
            };
            if !header.is_transactional() || header.is_control() {
                continue;
            }
            let (id, epoch) = (
                ProducerId(header.producer_id),
                ProducerEpoch(header.producer_epoch),
            );
            let partition =
                (registered.as_ref()).and_then(|topic| topic.partition(PartitionIndex(data.index)));
            let open = partition.is_some_and(|p| !p.is_leader() || p.in_transaction(id, epoch));
            if !open {
                producer = Some((id, epoch));
                partitions.push((topic.name.as_str().to_owned(), data.index));
            }
        }
    }
    let Some((producer_id, producer_epoch)) = producer else {
        return Verification::NotNeeded;
    };
    let transactional_id = transactional_id.as_str().to_owned();
    match transactions::locate(broker, &transactional_id) {
        Err(error) => {
            Verification::Local(partitions.into_iter().map(|p| (p, error.code)).collect())
        }
        Ok(leader) if leader == broker.node() => {
            let verdicts = broker.transactions.coordinator().verify_partitions(
                &transactional_id,
                producer_id,
                producer_epoch,
                &partitions,
            );
            Verification::Local(verdicts.into_iter().collect())
        }
        Ok(leader) => Verification::Remote(RemoteVerification {
            coordinator: leader.0,
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
        }),
    }
}

impl RemoteVerification {
    async fn ask(self, broker: &Arc<Broker>) -> Verdicts {
        transactions::verify_remote(
            broker,
            self.coordinator,
            &self.transactional_id,
            self.producer_id,
            self.producer_epoch,
            &self.partitions,
        )
        .await
    }
}

/// What a producer is told when its partition could not be verified: coordinator trouble is
/// retriable (NOT_ENOUGH_REPLICAS, as Kafka answers, so every client retries); a partition
/// outside the transaction aborts it (TRANSACTION_ABORTABLE from Produce v11, before that
/// INVALID_TXN_STATE).
fn verification_error(error: ErrorCode, version: i16) -> BrokerError {
    let code = match error {
        error if transactions::coordinator_unavailable(error) => ErrorCode::NotEnoughReplicas,
        ErrorCode::TransactionAbortable if version < 11 => ErrorCode::InvalidTxnState,
        other => other,
    };
    BrokerError::new(
        code,
        format!(
            "the transaction coordinator did not confirm this partition is in the producer's \
             transaction: {}",
            error.name()
        ),
    )
}

fn respond(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
    verdicts: &Verdicts,
) -> Reply {
    let transactional = request.transactional_id.is_some();
    let acks = match request.acks {
        0 => Ok(Acks::None),
        1 => Ok(Acks::Leader),
        -1 => Ok(Acks::All),
        other => Err(BrokerError::new(
            ErrorCode::InvalidRequiredAcks,
            format!("acks must be -1, 0 or 1, not {other}"),
        )),
    };
    let timeout_ms = request.timeout_ms.max(0) as u64;
    let mut waiters = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // Topic names are slices of the request's buffer: copied out (they are short), the records
    // are the only references left to it, so the last partition's can be written in place.
    let topic_data: Vec<(TopicName, Vec<PartitionProduceData>)> = request
        .topic_data
        .into_iter()
        .map(|topic| (owned_name(&topic.name), topic.partition_data))
        .collect();
    for (topic_index, (topic_name, partition_data)) in topic_data.into_iter().enumerate() {
        let name = topic_name.as_str();
        let topic = find_topic(broker, name);
        let mut partition_responses = Vec::with_capacity(partition_data.len());
        for (partition_index, data) in partition_data.into_iter().enumerate() {
            let index = data.index;
            let verdict = verdicts.get(&(name.to_owned(), index)).copied();
            let outcome = match verdict {
                Some(error) if error != ErrorCode::None => Err(verification_error(error, version)),
                _ => acks.clone().and_then(|acks| {
                    append(broker, name, topic.as_deref(), data, acks, transactional)
                }),
            };
            match outcome {
                Ok((response, partition, ack)) => {
                    waiters.push(AckWaiter {
                        topic_index,
                        partition_index,
                        partition,
                        ack,
                    });
                    partition_responses.push(response);
                }
                Err(error) => partition_responses.push(error_response(index, error)),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_name)
                .with_partition_responses(partition_responses),
        );
    }
    let response = ProduceResponse::default().with_responses(responses);
    match acks {
        Ok(Acks::None) => Reply::Silent,
        Ok(Acks::All) => Reply::Later(Box::pin(async move {
            ResponseKind::Produce(wait_acknowledged(response, waiters, timeout_ms).await)
        })),
        _ => Reply::Now(ResponseKind::Produce(response)),
    }
}

fn owned_name(name: &TopicName) -> TopicName {
    TopicName(StrBytes::from_string(name.as_str().to_owned()))
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

/// Validates one partition's records and appends them; the answer, the partition, and what
/// its acknowledgement waits for.
fn append(
    broker: &Broker,
    name: &str,
    topic: Option<&Topic>,
    data: PartitionProduceData,
    acks: Acks,
    transactional: bool,
) -> Result<(PartitionProduceResponse, Arc<Partition>, AckWait), BrokerError> {
    if name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC {
        // Only the coordinators write there, in their own record formats.
        return Err(BrokerError::new(
            ErrorCode::InvalidTopicException,
            format!("cannot produce to the internal topic {name}"),
        ));
    }
    let image = broker.quorum.image();
    let partition = led_partition(&image, name, topic, PartitionIndex(data.index), None)?;
    let topic = topic.expect("a led partition has its topic");
    let records = data.records.filter(|records| !records.is_empty());
    let records = records.ok_or_else(|| {
        BrokerError::new(
            ErrorCode::CorruptMessage,
            "the produce request carries no records",
        )
    })?;
    let record_count = validate(&records, topic.config.max_message_bytes, transactional)?;
    if topic.config.cleanup.compact {
        require_keys(&records)?;
    }
    if topic.config.schema_validation.any() {
        require_schema_ids(broker, &records, topic.config.schema_validation)?;
    }
    // Base offsets (and LogAppendTime stamps) are rewritten in place: the request's own buffer
    // when nothing else refers to it (the last partition of a request), else one copy.
    let mut owned = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let options = AppendOptions {
        acks,
        log_append_time: (topic.config.timestamp_type == TimestampType::LogAppendTime)
            .then(TimestampMs::now),
        min_insync_replicas: topic.config.min_insync_replicas,
    };
    let bytes = owned.len() as u64;
    let appended = partition.append_as_leader(&mut owned, options)?;
    if appended.appended {
        topic.traffic.produced(record_count, bytes);
    }
    let response = PartitionProduceResponse::default()
        .with_index(data.index)
        .with_base_offset(appended.base_offset.0)
        .with_log_append_time_ms(appended.log_append_time.map_or(-1, |time| time.0))
        .with_log_start_offset(appended.log_start_offset.0);
    Ok((response, partition.clone(), appended.ack))
}

/// Every batch: a v2 header, not a control batch, transactional only in a request that names
/// its transactional id, a consistent record count, within max.message.bytes. The CRC is
/// checked once, by the log as it appends (`Log::append_with_epoch`): checking it here too cost
/// a tenth of the broker's CPU in a kcat produce profile. Returns how many records they hold.
fn validate(
    records: &Bytes,
    max_message_bytes: usize,
    transactional: bool,
) -> Result<u64, BrokerError> {
    let mut batches = Batches::new(records);
    let mut record_count = 0;
    for (header, _) in batches.by_ref() {
        record_count += header.record_count.max(0) as u64;
        if header.total_bytes() > max_message_bytes {
            return Err(BrokerError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes ({max_message_bytes})",
                    header.total_bytes()
                ),
            ));
        }
        if header.is_control() {
            // Markers come from the transaction coordinator, never from a producer (Kafka's
            // LogValidator refuses them alike).
            return Err(BrokerError::new(
                ErrorCode::InvalidRecord,
                "a producer cannot write control batches".to_owned(),
            ));
        }
        if header.is_transactional() && !transactional {
            return Err(BrokerError::new(
                ErrorCode::InvalidRecord,
                "a transactional batch needs the request's transactional id".to_owned(),
            ));
        }
        if header.record_count != header.last_offset_delta + 1 {
            return Err(BrokerError::new(
                ErrorCode::InvalidRecord,
                format!(
                    "batch holds {} records but its last offset delta is {}",
                    header.record_count, header.last_offset_delta
                ),
            ));
        }
    }
    match batches.error() {
        None => Ok(record_count),
        Some(error @ BatchError::UnsupportedMagic(_)) => Err(BrokerError::new(
            ErrorCode::UnsupportedForMessageFormat,
            error.to_string(),
        )),
        Some(error) => Err(BrokerError::new(
            ErrorCode::CorruptMessage,
            error.to_string(),
        )),
    }
}

/// Compaction keeps each key's latest record, so a compacted topic refuses records without a
/// key, as Kafka does. This decodes the records: compacted topics pay for it, others do not.
fn require_keys(records: &Bytes) -> Result<(), BrokerError> {
    let mut bytes = records.clone();
    let batches =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| {
            BrokerError::new(
                ErrorCode::CorruptMessage,
                format!("records do not decode: {error:#}"),
            )
        })?;
    if batches
        .iter()
        .flat_map(|batch| &batch.records)
        .any(|record| record.key.is_none())
    {
        return Err(BrokerError::new(
            ErrorCode::InvalidRecord,
            "a compacted topic cannot accept records without a key".to_owned(),
        ));
    }
    Ok(())
}

/// Schema validation: every checked key or value names a registered schema id.
fn require_schema_ids(
    broker: &Broker,
    records: &Bytes,
    checked: schema_validation::Checked,
) -> Result<(), BrokerError> {
    let refused = |index: usize, message: String| {
        BrokerError::new(ErrorCode::InvalidRecord, message).at_record(index)
    };
    let ids = schema_validation::schema_ids(records, checked)
        .map_err(|refusal| refused(refusal.index, refusal.message))?;
    match (ids.iter()).find(|(_, id)| !broker.schema_validation.is_registered(*id)) {
        Some((index, id)) => Err(refused(
            *index,
            format!(
                "record {index} names schema id {id}, which is not registered: schema \
                 validation is on for this topic"
            ),
        )),
        None => Ok(()),
    }
}

fn error_response(index: i32, error: BrokerError) -> PartitionProduceResponse {
    let record_errors = (error.record_index.iter())
        .map(|record| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*record as i32)
                .with_batch_index_error_message(Some(str_bytes(error.message.clone())))
        })
        .collect();
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_record_errors(record_errors)
        .with_error_message(Some(str_bytes(error.message)))
}

/// Waits until every acks=all append is on the leader's disk and below the high watermark
/// (every ISR member has it on disk), answering REQUEST_TIMED_OUT after the request's
/// `timeout_ms`, NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile, and
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below `min.insync.replicas`.
async fn wait_acknowledged(
    mut response: ProduceResponse,
    waiters: Vec<AckWaiter>,
    timeout_ms: u64,
) -> ProduceResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    for waiter in waiters {
        if let Err(error) = waiter
            .partition
            .wait_acknowledged(&waiter.ack, deadline)
            .await
        {
            let partition = &mut response.responses[waiter.topic_index].partition_responses
                [waiter.partition_index];
            *partition = error_response(partition.index, error.into());
        }
    }
    response
}
