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
//!
//! Transactional offset commits (TxnOffsetCommit) are written the same way as one
//! transactional batch of the producer ([`GroupRuntime::write_txn_offsets`]) and stay pending
//! in the coordinator until the transaction coordinator's COMMIT or ABORT marker is durable in
//! the same `__consumer_offsets` partition ([`GroupRuntime::complete_transaction`]). Replaying
//! a partition does the same from the log: transactional records wait for their producer's
//! marker, and a transaction still open at the log end stays pending.

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
use strom_partition::{Acks, AppendOptions, LeaderAppend, Partition, PartitionError, ReadBound};
use strom_protocol::batch::Batches;
use strom_protocol::control::{read_marker, MarkerType};
use strom_types::{ErrorCode, Offset, PartitionIndex, ProducerEpoch, ProducerId, TimestampMs};
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
    /// `__consumer_offsets` as this node hosts it, from the registry after each change (a
    /// reassignment adds and removes partitions here).
    offsets_topic: parking_lot::RwLock<Arc<Topic>>,
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
        // Transactions of the partitions led elsewhere are that leader's to complete.
        for partition in topic.partitions.iter().filter(|p| !p.is_leader()) {
            coordinator.forget_transactions(partition.index(), topic.partition_count);
        }
        tracing::info!(records = replayed, "loaded committed offsets");
        Ok(GroupRuntime {
            coordinator: Mutex::new(coordinator),
            waiting: Mutex::new(HashMap::new()),
            next_reply: AtomicU64::new(1),
            offsets_topic: parking_lot::RwLock::new(topic),
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
    fn offsets_partition(&self, group: &str) -> Option<Arc<Partition>> {
        let topic = self.offsets_topic();
        let index = offsets::partition_for(group, topic.partition_count);
        topic.partition(PartitionIndex(index)).cloned()
    }

    fn offsets_topic(&self) -> Arc<Topic> {
        self.offsets_topic.read().clone()
    }

    /// After a metadata change: takes `__consumer_offsets` as the registry now has it, and
    /// replays every offsets partition this node has just become the leader of (also one a
    /// reassignment just brought here), so committed offsets written under the previous leader
    /// are served here; forgets the pending transactions of those it no longer leads (also one
    /// moved off this node).
    pub fn follow_leadership(&self, topics: &TopicRegistry) {
        if let Some(current) = topics.get(OFFSETS_TOPIC) {
            *self.offsets_topic.write() = current;
        }
        let topic = self.offsets_topic();
        let mut led = self.led.lock();
        let count = topic.partition_count;
        let moved_away: Vec<PartitionIndex> = (led.iter().copied())
            .filter(|index| topic.partition(*index).is_none())
            .collect();
        for index in moved_away {
            led.remove(&index);
            self.coordinator.lock().forget_transactions(index, count);
        }
        for partition in &topic.partitions {
            let leads = partition.is_leader();
            let index = partition.index();
            if leads && !led.contains(&index) {
                let mut coordinator = self.coordinator.lock();
                match replay_partition(partition, count, &mut coordinator) {
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
            } else if !leads && led.remove(&index) {
                // The new leader completes these groups' transactions; markers are not
                // written here any more, so what is pending here would never end.
                self.coordinator.lock().forget_transactions(index, count);
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

    /// Writes committed offsets of one group to `__consumer_offsets` as one batch and waits
    /// until they are durable. Returns the offset of the first record (the others follow in
    /// order), or `None` when there was nothing to write.
    pub async fn write_offsets(
        &self,
        group: &str,
        entries: &[(String, i32, CommittedOffset)],
    ) -> Result<Option<Offset>, ErrorCode> {
        let records = offset_records(group, entries)?;
        self.append(group, records).await
    }

    /// Writes a transactional producer's offsets of one group (TxnOffsetCommit) to the group's
    /// `__consumer_offsets` partition as one transactional batch of that producer, with
    /// acks=all, then stages them in the coordinator until the producer's marker there
    /// ([`GroupRuntime::complete_transaction`]). The partition checks the producer's epoch
    /// (a fenced producer gets INVALID_PRODUCER_EPOCH) and opens its transaction, so the last
    /// stable offset waits for the marker.
    ///
    /// The offsets are registered as pending before the append, so that a marker written
    /// while this waits for durability ends them as well. If this future is dropped midway
    /// they stay registered until the marker, which ends them correctly either way: the
    /// record, if it was written, precedes the marker.
    pub async fn write_txn_offsets(
        &self,
        group: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        entries: &[(String, i32, CommittedOffset)],
    ) -> Result<(), ErrorCode> {
        if entries.is_empty() {
            return Ok(());
        }
        let records = offset_records(group, entries)?;
        let mut batch = encode_batch(records, Some((producer_id, producer_epoch)))?;
        let partition = self
            .offsets_partition(group)
            .ok_or(ErrorCode::NotCoordinator)?;
        self.coordinator
            .lock()
            .begin_txn_offsets(group, producer_id, entries);
        let appended = partition
            .append_as_coordinator(&mut batch, self.append_options())
            .map_err(commit_error);
        let written = match appended {
            Ok(appended) => self.acknowledged(&partition, appended).await,
            Err(error) => Err(error),
        };
        let mut coordinator = self.coordinator.lock();
        match written {
            Ok(first) => {
                coordinator.stage_txn_offsets(group, producer_id, entries, first, now_ms());
                Ok(())
            }
            Err(error) => {
                coordinator.abandon_txn_offsets(group, producer_id, entries);
                Err(error)
            }
        }
    }

    /// The transaction coordinator's marker for `producer_id` (COMMIT if `commit`, else
    /// ABORT) is durable in `__consumer_offsets` partition `offsets_partition`: the producer's
    /// pending offsets in that partition's groups become committed, or are dropped. Called by
    /// the WriteTxnMarkers handler; a marker for a producer with nothing pending is a no-op.
    pub fn complete_transaction(
        &self,
        offsets_partition: PartitionIndex,
        producer_id: ProducerId,
        commit: bool,
    ) {
        let count = self.offsets_topic().partition_count;
        let committed = self.coordinator.lock().complete_transaction(
            offsets_partition,
            count,
            producer_id,
            commit,
            now_ms(),
        );
        tracing::debug!(
            partition = %offsets_partition,
            producer = producer_id.0,
            commit,
            committed,
            "transaction ended in an offsets partition"
        );
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

    /// Writes `records` as one batch to `group`'s offsets partition and waits until they are
    /// durable; returns the first record's offset (`None`: nothing to write).
    async fn append(
        &self,
        group: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<Option<Offset>, ErrorCode> {
        if records.is_empty() {
            return Ok(None);
        }
        let partition = self
            .offsets_partition(group)
            .ok_or(ErrorCode::NotCoordinator)?;
        let mut batch = encode_batch(records, None)?;
        let appended = partition
            .append_as_leader(&mut batch, self.append_options())
            .map_err(commit_error)?;
        self.acknowledged(&partition, appended).await.map(Some)
    }

    /// Like Kafka's offsets.commit.required.acks=-1: every ISR member has the commit.
    fn append_options(&self) -> AppendOptions {
        AppendOptions {
            acks: Acks::All,
            log_append_time: None,
            min_insync_replicas: self.offsets_topic().config.min_insync_replicas,
        }
    }

    /// Waits until an append to an offsets partition is durable on the ISR; returns its base
    /// offset.
    async fn acknowledged(
        &self,
        partition: &Partition,
        appended: LeaderAppend,
    ) -> Result<Offset, ErrorCode> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS);
        partition
            .wait_acknowledged(&appended.ack, deadline)
            .await
            .map_err(commit_error)?;
        Ok(appended.base_offset)
    }
}

/// The records of one group's offset commits: key and value per (topic, partition).
fn offset_records(
    group: &str,
    entries: &[(String, i32, CommittedOffset)],
) -> Result<Vec<(Bytes, Option<Bytes>)>, ErrorCode> {
    entries
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
        .collect()
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

/// One v2 batch of `records`; with `producer`, a transactional batch of that producer (base
/// sequence 0, as Kafka's coordinator writes them: see `Partition::append_as_coordinator`).
pub(crate) fn encode_batch(
    records: Vec<(Bytes, Option<Bytes>)>,
    producer: Option<(ProducerId, ProducerEpoch)>,
) -> Result<BytesMut, ErrorCode> {
    let now = now_ms();
    let (producer_id, producer_epoch) = producer.map_or((-1, -1), |(id, epoch)| (id.0, epoch.0));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
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
        applied += replay_partition(partition, topic.partition_count, coordinator)?;
    }
    Ok(applied)
}

/// Replays one partition of `__consumer_offsets`, oldest record first, so the coordinator
/// ends with each key's latest value (or its deletion). Records of a transactional batch wait
/// for their producer's marker (a control batch, never decoded as offset records): COMMIT
/// applies them, ABORT drops them, and a transaction still open at the log end stays pending
/// for the marker the transaction coordinator will write. Pending offsets of this partition
/// that were already written are dropped first, since the log brings them back.
fn replay_partition(
    partition: &Partition,
    partition_count: i32,
    coordinator: &mut GroupCoordinator,
) -> anyhow::Result<usize> {
    let now = now_ms();
    let index = partition.index();
    coordinator.forget_written_transactions(index, partition_count);
    let mut applied = 0;
    let end = partition.log_end_offset();
    let mut offset = partition.log_start_offset();
    while offset < end {
        let read = partition.read(offset, REPLAY_READ_BYTES, ReadBound::LogEnd)?;
        let mut batches = Batches::new(&read.records);
        let mut next = None;
        for (header, range) in batches.by_ref() {
            next = Some(header.next_offset());
            if header.is_control() {
                match read_marker(&header, &read.records[range]) {
                    Ok(marker) => {
                        let producer_id = ProducerId(header.producer_id);
                        let commit = marker.kind == MarkerType::Commit;
                        coordinator.complete_transaction(
                            index,
                            partition_count,
                            producer_id,
                            commit,
                            now,
                        );
                    }
                    Err(error) => {
                        tracing::warn!(partition = %index, offset = %header.base_offset, %error, "skipping a control batch that is not a transaction marker")
                    }
                }
                continue;
            }
            let producer_id = header
                .is_transactional()
                .then_some(ProducerId(header.producer_id));
            let mut bytes = read.records.slice(range);
            let decoded = RecordBatchDecoder::decode(&mut bytes).map_err(|error| {
                anyhow::anyhow!(
                    "{OFFSETS_TOPIC}-{index} is unreadable at offset {}: {error}",
                    header.base_offset
                )
            })?;
            applied += replay_records(coordinator, index, decoded.records, producer_id, now);
        }
        if let Some(error) = batches.error() {
            anyhow::bail!("{OFFSETS_TOPIC}-{index} is unreadable after offset {offset}: {error}");
        }
        let Some(next) = next else { break };
        offset = Offset(next.0.max(offset.0 + 1));
    }
    Ok(applied)
}

/// Applies the records of one data batch; returns how many were readable.
fn replay_records(
    coordinator: &mut GroupCoordinator,
    index: PartitionIndex,
    records: Vec<Record>,
    producer_id: Option<ProducerId>,
    now: i64,
) -> usize {
    let mut applied = 0;
    for record in records {
        let Some(key) = &record.key else { continue };
        match offsets::decode(key, record.value.as_ref()) {
            Ok(decoded) => {
                coordinator.replay_at(decoded, Offset(record.offset), producer_id, now);
                applied += 1;
            }
            Err(error) => {
                tracing::warn!(partition = %index, offset = record.offset, %error, "skipping unreadable offsets record")
            }
        }
    }
    applied
}

/// Bytes read at a time when replaying an offsets partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_metadata::image::PartitionState;
    use strom_metadata::{MetadataImage, TopicImage};
    use strom_protocol::control::Marker;
    use uuid::Uuid;

    use super::*;
    use crate::BrokerConfig;

    /// A `__consumer_offsets` of `partitions` partitions, all led by `node` alone.
    fn image(node: i32, partitions: i32) -> MetadataImage {
        let partition = |index| PartitionState {
            index,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        };
        let topic = TopicImage {
            name: OFFSETS_TOPIC.to_owned(),
            id: Uuid::from_u64_pair(1, 2),
            configs: BTreeMap::new(),
            partitions: (0..partitions).map(partition).collect(),
        };
        MetadataImage {
            topics: BTreeMap::from([(OFFSETS_TOPIC.to_owned(), Arc::new(topic))]),
            ..MetadataImage::default()
        }
    }

    fn open(registry: &TopicRegistry, config: &BrokerConfig) -> GroupRuntime {
        GroupRuntime::open(registry, config, GroupConfig::default()).unwrap()
    }

    fn entry(topic: &str, partition: i32, offset: i64) -> (String, i32, CommittedOffset) {
        let committed = CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1_000,
        };
        (topic.to_owned(), partition, committed)
    }

    /// What a read_committed consumer's OffsetFetch (require_stable) gets for `input-<p>`.
    fn stable(runtime: &GroupRuntime, group: &str, p: i32) -> Result<Option<i64>, ErrorCode> {
        let wanted = [("input".to_owned(), p)];
        let fetched = runtime
            .coordinator()
            .fetch_stable_offsets(group, Some(&wanted));
        fetched[0].2.clone().map(|o| o.map(|o| o.offset))
    }

    /// What the WriteTxnMarkers handler does: the marker, durable, then the runtime told.
    async fn end(runtime: &GroupRuntime, group: &str, producer: i64, epoch: i16, commit: bool) {
        let partition = runtime.offsets_partition(group).unwrap();
        let kind = if commit {
            MarkerType::Commit
        } else {
            MarkerType::Abort
        };
        let marker = Marker {
            kind,
            coordinator_epoch: 0,
        };
        let (producer_id, producer_epoch) = (ProducerId(producer), ProducerEpoch(epoch));
        let appended = partition
            .append_marker(
                producer_id,
                producer_epoch,
                marker,
                TimestampMs(1_000),
                runtime.append_options(),
            )
            .unwrap();
        runtime.acknowledged(&partition, appended).await.unwrap();
        runtime.complete_transaction(partition.index(), producer_id, commit);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactional_offsets_wait_for_their_marker_live_and_after_a_replay() {
        let data = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::default();
        config.data_dir = data.path().to_path_buf();
        let registry = TopicRegistry::new(&config, crate::isr::proposal_channel().0).unwrap();
        registry.reconcile(&config, &image(config.node_id, 3));
        let runtime = open(&registry, &config);
        let group = "eos";
        let offsets_partition = runtime.offsets_partition(group).unwrap();
        let (committer, aborter, open_one) = (7, 8, 9);

        runtime
            .write_txn_offsets(
                group,
                ProducerId(committer),
                ProducerEpoch(0),
                &[entry("input", 0, 10), entry("input", 1, 11)],
            )
            .await
            .unwrap();
        assert_eq!(
            stable(&runtime, group, 0),
            Err(ErrorCode::UnstableOffsetCommit)
        );
        assert_eq!(
            offsets_partition.last_stable_offset(),
            Offset(0),
            "the batch opened the producer's transaction in the offsets partition"
        );
        end(&runtime, group, committer, 0, true).await;
        assert_eq!(stable(&runtime, group, 0), Ok(Some(10)));
        assert_eq!(stable(&runtime, group, 1), Ok(Some(11)));
        assert_eq!(
            offsets_partition.last_stable_offset(),
            offsets_partition.high_watermark()
        );

        let write = |producer, epoch, offset| {
            let runtime = &runtime;
            async move {
                runtime
                    .write_txn_offsets(
                        group,
                        ProducerId(producer),
                        ProducerEpoch(epoch),
                        &[entry("input", 0, offset)],
                    )
                    .await
            }
        };
        write(aborter, 0, 20).await.unwrap();
        end(&runtime, group, aborter, 0, false).await;
        assert_eq!(stable(&runtime, group, 0), Ok(Some(10)), "aborted");
        // The abort fenced the producer with a newer epoch; its older epoch is refused.
        end(&runtime, group, aborter, 1, false).await;
        assert_eq!(
            write(aborter, 0, 21).await,
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(stable(&runtime, group, 0), Ok(Some(10)), "nothing pending");
        write(open_one, 0, 30).await.unwrap();
        assert_eq!(
            stable(&runtime, group, 0),
            Err(ErrorCode::UnstableOffsetCommit)
        );

        // Another coordinator replays the log: the same state, the open transaction pending.
        let replayed = open(&registry, &config);
        assert_eq!(stable(&replayed, group, 1), Ok(Some(11)));
        assert_eq!(
            stable(&replayed, group, 0),
            Err(ErrorCode::UnstableOffsetCommit)
        );
        end(&replayed, group, open_one, 0, true).await;
        assert_eq!(stable(&replayed, group, 0), Ok(Some(30)));

        // So does a replay after leadership comes back, with a plain commit after the
        // transaction's: the later record wins over the transaction committed after it.
        write(open_one, 0, 40).await.unwrap();
        replayed
            .write_offsets(group, &[entry("input", 0, 41)])
            .await
            .unwrap();
        end(&replayed, group, open_one, 0, true).await;
        let again = open(&registry, &config);
        assert_eq!(stable(&again, group, 0), Ok(Some(41)));
        assert_eq!(stable(&again, group, 1), Ok(Some(11)));
    }
}
