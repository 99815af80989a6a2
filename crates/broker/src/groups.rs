//! The runtime around `strom_coordinator`: it owns the clock, the timers, the routing of
//! deferred responses and the `__consumer_offsets` topic; the coordinator owns every decision.
//!
//! Lifecycle: [`GroupRuntime::start`] creates `__consumer_offsets` if missing (50 partitions,
//! `offsets.topic.num.partitions`), replays it into the coordinator, and starts a ticker that
//! applies timeouts every [`TICK_MS`]. Handlers register a oneshot per JoinGroup/SyncGroup
//! under a fresh [`ReplyTo`] and wait on it; whatever the coordinator outputs is delivered to
//! the matching waiter, now or when a later request or tick completes it.
//!
//! The coordinator sits behind one mutex: every group operation is short and in memory. An
//! offset commit is validated under the lock, written without it through the offsets
//! partition's own append path (the one produce requests take), acknowledged once the ISR has
//! it on disk, then applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use strom_coordinator::offsets::{self, CommittedOffset, OffsetKey};
use strom_coordinator::{
    GroupConfig, GroupCoordinator, JoinResponse, Output, ReplyTo, SyncResponse, OFFSETS_TOPIC,
};
use strom_partition::{Acks, AppendOptions, Partition, PartitionError, ReadBound};
use strom_types::{ErrorCode, Offset, PartitionIndex, TimestampMs};
use tokio::sync::oneshot;

use crate::topics::{Topic, TopicRegistry};

/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for the ISR.
const OFFSET_COMMIT_TIMEOUT_MS: u64 = 5_000;
/// How often timeouts (sessions, rebalances, offset expiry) are checked.
pub const TICK_MS: u64 = 100;

/// A deferred JoinGroup or SyncGroup answer.
pub enum GroupReply {
    Join(JoinResponse),
    Sync(SyncResponse),
}

pub struct GroupRuntime {
    coordinator: Mutex<GroupCoordinator>,
    waiting: Mutex<HashMap<ReplyTo, oneshot::Sender<GroupReply>>>,
    next_reply: AtomicU64,
    offsets_topic: Arc<Topic>,
    /// The offsets partitions this node leads and has loaded.
    led: Mutex<std::collections::BTreeSet<PartitionIndex>>,
}

fn now_ms() -> i64 {
    TimestampMs::now().0
}

impl GroupRuntime {
    /// Rebuilds committed offsets from `__consumer_offsets` (created by the cluster at start).
    pub fn open(
        topics: &TopicRegistry,
        broker_config: &crate::BrokerConfig,
        config: GroupConfig,
    ) -> anyhow::Result<GroupRuntime> {
        let topic = topics
            .get(OFFSETS_TOPIC)
            .ok_or_else(|| anyhow::anyhow!("{OFFSETS_TOPIC} is missing from the metadata image"))?;
        let mut coordinator =
            GroupCoordinator::with_consumer_config(config, broker_config.consumer_group);
        let replayed = replay(&topic, &mut coordinator)?;
        let led = topic
            .partitions
            .iter()
            .filter(|partition| partition.is_leader())
            .map(|partition| partition.index())
            .collect();
        tracing::info!(records = replayed, "loaded committed offsets");
        Ok(GroupRuntime {
            coordinator: Mutex::new(coordinator),
            waiting: Mutex::new(HashMap::new()),
            next_reply: AtomicU64::new(1),
            offsets_topic: topic,
            led: Mutex::new(led),
        })
    }

    /// True when this node coordinates `group`: it leads the group's offsets partition.
    /// Handlers answer NOT_COORDINATOR otherwise, and the client finds the new coordinator.
    pub fn is_coordinator(&self, group: &str) -> bool {
        self.offsets_partition(group)
            .is_some_and(|partition| partition.is_leader())
    }

    /// The offsets partition `group` hashes to, if this node hosts it.
    fn offsets_partition(&self, group: &str) -> Option<&Arc<Partition>> {
        let index = offsets::partition_for(group, self.offsets_topic.partition_count);
        self.offsets_topic.partition(PartitionIndex(index))
    }

    /// After a metadata change: replays every offsets partition this node has just become the
    /// leader of, so committed offsets written under the previous leader are served here.
    pub fn follow_leadership(&self) {
        let mut led = self.led.lock();
        for partition in &self.offsets_topic.partitions {
            let leads = partition.is_leader();
            let index = partition.index();
            if leads && !led.contains(&index) {
                let mut coordinator = self.coordinator.lock();
                match replay_partition(partition, &mut coordinator) {
                    Ok(records) => {
                        tracing::info!(
                            partition = %index,
                            records,
                            "coordinating the groups of an offsets partition"
                        )
                    }
                    Err(error) => {
                        tracing::error!(partition = %index, %error, "cannot load an offsets partition")
                    }
                }
                led.insert(index);
            } else if !leads {
                led.remove(&index);
            }
        }
    }

    pub fn coordinator(&self) -> parking_lot::MutexGuard<'_, GroupCoordinator> {
        self.coordinator.lock()
    }

    pub fn now_ms(&self) -> i64 {
        now_ms()
    }

    /// A token for a deferred answer and the receiver it will arrive on.
    pub fn register(&self) -> (ReplyTo, oneshot::Receiver<GroupReply>) {
        let reply = self.next_reply.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiting.lock().insert(reply, sender);
        (reply, receiver)
    }

    /// Sends coordinator outputs to the requests waiting for them.
    pub fn deliver(&self, outputs: Vec<Output>) {
        let mut waiting = self.waiting.lock();
        for output in outputs {
            let (reply, answer) = match output {
                Output::Join(reply, response) => (reply, GroupReply::Join(response)),
                Output::Sync(reply, response) => (reply, GroupReply::Sync(response)),
            };
            if let Some(sender) = waiting.remove(&reply) {
                // The client may have gone; nothing to do then.
                let _ = sender.send(answer);
            }
        }
    }

    /// Applies timeouts forever.
    pub async fn run_ticker(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(TICK_MS));
        loop {
            ticker.tick().await;
            let (outputs, expired) = self.coordinator.lock().tick(now_ms());
            self.deliver(outputs);
            if !expired.is_empty() {
                tracing::info!(
                    offsets = expired.len(),
                    "expiring committed offsets of empty groups"
                );
                if let Err(error) = self.write_tombstones(&expired).await {
                    tracing::error!(%error, "could not write offset tombstones");
                }
            }
        }
    }

    /// Writes committed offsets of one group to `__consumer_offsets` and waits until they are
    /// durable.
    pub async fn write_offsets(
        &self,
        group: &str,
        entries: &[(String, i32, CommittedOffset)],
    ) -> Result<(), ErrorCode> {
        let records = entries
            .iter()
            .map(|(topic, partition, value)| {
                let key = OffsetKey {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                let key = offsets::try_encode_key(&key).map_err(unencodable)?;
                Ok((
                    key,
                    Some(offsets::try_encode_value(value).map_err(unencodable)?),
                ))
            })
            .collect::<Result<_, ErrorCode>>()?;
        self.append(group, records).await
    }

    /// Deletes committed offsets by writing tombstones.
    pub async fn write_tombstones(&self, keys: &[OffsetKey]) -> Result<(), ErrorCode> {
        let mut by_group: BTreeMap<&str, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
        for key in keys {
            by_group
                .entry(key.group.as_str())
                .or_default()
                .push((offsets::try_encode_key(key).map_err(unencodable)?, None));
        }
        for (group, records) in by_group {
            self.append(group, records).await?;
        }
        Ok(())
    }

    /// Placeholder until the txn-offsets branch lands (it replaces this): transactional
    /// offsets are not staged yet, so a marker has nothing to apply.
    pub fn complete_transaction(
        &self,
        _offsets_partition: PartitionIndex,
        _producer_id: strom_types::ProducerId,
        _commit: bool,
    ) {
    }

    async fn append(
        &self,
        group: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ErrorCode> {
        if records.is_empty() {
            return Ok(());
        }
        let partition = self
            .offsets_partition(group)
            .ok_or(ErrorCode::NotCoordinator)?
            .clone();
        let mut batch = encode_batch(records)?;
        // Like Kafka's offsets.commit.required.acks=-1: every ISR member has the commit.
        let options = AppendOptions {
            acks: Acks::All,
            log_append_time: None,
            min_insync_replicas: self.offsets_topic.config.min_insync_replicas,
        };
        let appended = partition
            .append_as_leader(&mut batch, options)
            .map_err(commit_error)?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS);
        partition
            .wait_acknowledged(&appended.ack, deadline)
            .await
            .map_err(commit_error)
    }
}

/// A record the coordinator admitted but the record format cannot hold (a string over 32 KiB):
/// the coordinator's checks should have refused it, so this is a bug, answered, not a panic.
fn unencodable(error: offsets::RecordError) -> ErrorCode {
    tracing::error!(%error, "cannot encode an offsets record the coordinator admitted");
    ErrorCode::UnknownServerError
}

/// What a commit's client is told when the write to `__consumer_offsets` failed: Kafka's
/// translation (GroupMetadataManager), so clients find the coordinator again or retry.
fn commit_error(error: PartitionError) -> ErrorCode {
    if error.is_fatal() {
        tracing::error!(%error, "cannot write to {OFFSETS_TOPIC}");
    }
    match error.code() {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        other => other,
    }
}

pub(crate) fn encode_batch(records: Vec<(Bytes, Option<Bytes>)>) -> Result<BytesMut, ErrorCode> {
    let now = now_ms();
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: index as i32,
            timestamp: now,
            key: Some(key),
            value,
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|error| {
        tracing::error!(%error, "cannot encode an offsets batch");
        ErrorCode::UnknownServerError
    })?;
    Ok(buf)
}

/// Replays every partition of `__consumer_offsets` into the coordinator. Returns the number of
/// records applied; an unreadable record is logged and skipped, never fatal.
fn replay(topic: &Topic, coordinator: &mut GroupCoordinator) -> anyhow::Result<usize> {
    let mut applied = 0;
    for partition in &topic.partitions {
        applied += replay_partition(partition, coordinator)?;
    }
    Ok(applied)
}

/// Replays one partition of `__consumer_offsets`, oldest record first, so the coordinator
/// ends with each key's latest value (or its deletion).
fn replay_partition(
    partition: &Partition,
    coordinator: &mut GroupCoordinator,
) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut applied = 0;
    let end = partition.log_end_offset();
    let mut offset = partition.log_start_offset();
    while offset < end {
        let read = partition.read(offset, REPLAY_READ_BYTES, ReadBound::LogEnd)?;
        let mut bytes = read.records.clone();
        let batches = RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| {
            anyhow::anyhow!(
                "{OFFSETS_TOPIC}-{} is unreadable at offset {offset}: {error}",
                partition.index()
            )
        })?;
        let Some(last) = strom_protocol::batch::Batches::new(&read.records).last() else {
            break;
        };
        for batch in batches {
            for record in batch.records {
                let Some(key) = &record.key else { continue };
                match offsets::decode(key, record.value.as_ref()) {
                    Ok(decoded) => {
                        coordinator.replay(decoded, now);
                        applied += 1;
                    }
                    Err(error) => {
                        tracing::warn!(partition = %partition.index(), offset = record.offset, %error, "skipping unreadable offsets record")
                    }
                }
            }
        }
        offset = Offset(last.0.next_offset().0.max(offset.0 + 1));
    }
    Ok(applied)
}

/// Bytes read at a time when replaying an offsets partition.
const REPLAY_READ_BYTES: usize = 1 << 20;
