//! Every transactional id of the `__transaction_state` partitions this node leads, and the
//! transaction APIs over them (Kafka's `TransactionCoordinator` and `TransactionStateManager`).
//!
//! # How a runtime drives it
//! Every entry point takes the time as `now_ms` and returns a decision; the coordinator never
//! reads a clock, touches a disk or sends anything.
//! - A [`Decision::Reply`] is answered at once.
//! - A [`Decision::Write`] carries a [`PendingWrite`]: one record for one partition of
//!   `__transaction_state`. The runtime appends it (acks=all, fsynced) and then hands the
//!   write back, exactly once: [`TransactionCoordinator::apply_written`] when it is durable,
//!   [`TransactionCoordinator::write_failed`] with the append's error otherwise. Only then does
//!   the state change, and the [`WriteOutcome`] says what to answer, which
//!   [`MarkerRequest`] to send and which next record to write. Until then the transactional id
//!   has a pending transition and its other requests are answered CONCURRENT_TRANSACTIONS, as
//!   in Kafka.
//! - InitProducerId can also return [`InitDecision::NeedProducerId`]: a new producer id is
//!   needed (new transactional id, or epochs exhausted). Producer ids come from the metadata
//!   quorum, asynchronously, so the runtime allocates one and calls again with it.
//! - A [`MarkerRequest`] asks for WriteTxnMarkers to every partition it lists. As partitions
//!   acknowledge (see [`marker_outcome`] for what each error means) the runtime reports them
//!   with [`TransactionCoordinator::markers_written`]; after the last one it gets the
//!   CompleteCommit/CompleteAbort record to write.
//! - [`TransactionCoordinator::tick`], called every second or so, aborts transactions that
//!   outlived their timeout and expires idle transactional ids, each as records to write.
//! - Leadership: [`TransactionCoordinator::load`] (or `begin_load` + `complete_load` when the
//!   partition is read asynchronously) when this node becomes the leader of a partition of
//!   `__transaction_state`, with the partition's leader epoch as the coordinator epoch;
//!   [`TransactionCoordinator::unload`] when it stops being the leader. A write that comes back
//!   after its partition was unloaded or reloaded changes nothing and answers NOT_COORDINATOR.
//!
//! Idempotent producers without a transactional id do not come here: Kafka's coordinator
//! hands them a new producer id at epoch 0 and keeps no state, which the handler can do alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use strom_types::{CoordinatorEpoch, ErrorCode, PartitionIndex, ProducerEpoch, ProducerId};

use super::metadata::{is_epoch_exhausted, TransactionMetadata, TransitMetadata};
use super::record::{
    self, decode, try_encode_key, try_encode_value, RecordError, TopicPartitions,
    TransactionLogRecord,
};
use super::state::TransactionState::{self, *};
use super::TopicPartition;
use crate::limits::{check_transaction_topic, check_transactional_id};
use crate::OFFSETS_TOPIC;

/// The transaction coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub transaction_timeout_ms_max: i32,
    /// `transactional.id.expiration.ms`: how long an idle transactional id is kept.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// [`TransactionCoordinator::tick`] looks for transactions past their timeout.
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often
    /// [`TransactionCoordinator::tick`] looks for expired transactional ids.
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// `transaction.state.log.num.partitions`: the partitions of `__transaction_state`, which
    /// decide where each transactional id lives. It must never change once ids are stored.
    pub state_log_partitions: i32,
    /// The `transaction.version` feature level, which decides the value version written: 0
    /// writes version 0 records (readable by every Kafka), 1 writes the flexible version 1
    /// (Kafka 4.x, keeps the previous producer id across a coordinator move). Level 2 (a new
    /// epoch per transaction, KIP-890 part 2) is not implemented.
    pub transaction_version: i16,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            transaction_timeout_ms_max: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 3_600_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            state_log_partitions: 50,
            transaction_version: 1,
        }
    }
}

impl TransactionConfig {
    fn value_version(&self) -> i16 {
        self.transaction_version.min(record::VALUE_VERSION_MAX)
    }
}

/// The answer to InitProducerId and EndTxn: an error, or the producer id and epoch to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerReply {
    pub error: ErrorCode,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
}

impl ProducerReply {
    pub fn ok(producer_id: ProducerId, producer_epoch: ProducerEpoch) -> ProducerReply {
        ProducerReply {
            error: ErrorCode::None,
            producer_id,
            producer_epoch,
        }
    }

    /// An error, with Kafka's "no producer" id and epoch (-1, -1).
    pub fn error(error: ErrorCode) -> ProducerReply {
        ProducerReply {
            error,
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
        }
    }
}

/// What an entry point decided.
#[derive(Debug)]
#[must_use = "a reply must be sent, a write must be written and handed back"]
pub enum Decision<R> {
    /// Answer the request with this now.
    Reply(R),
    /// Write this record; the answer comes from [`TransactionCoordinator::apply_written`] or
    /// [`TransactionCoordinator::write_failed`].
    Write(PendingWrite),
}

/// What InitProducerId decided.
#[derive(Debug)]
#[must_use = "a reply must be sent, a write must be written and handed back"]
pub enum InitDecision {
    Reply(ProducerReply),
    Write(PendingWrite),
    /// Allocate a producer id and call again with it.
    NeedProducerId,
}

/// The answer, after its write, to the request that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    InitProducerId(ProducerReply),
    /// To AddPartitionsToTxn or AddOffsetsToTxn.
    AddPartitions(ErrorCode),
    EndTxn(ProducerReply),
}

/// WriteTxnMarkers to send: a commit or abort marker for every partition listed, for this
/// producer id and epoch, stamped with the coordinator epoch so a partition leader can refuse
/// markers from a coordinator that has since been replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    pub transactional_id: String,
    /// The `__transaction_state` partition the transaction lives in; when it is unloaded,
    /// its markers are no longer this node's to send.
    pub state_partition: PartitionIndex,
    pub coordinator_epoch: CoordinatorEpoch,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// What happened once a write came back.
#[derive(Debug, Default)]
#[must_use = "replies must be sent, markers sent and writes written"]
pub struct WriteOutcome {
    /// The answer to the request that caused the write; `None` for the coordinator's own
    /// writes (timeouts, completions, expirations).
    pub reply: Option<Reply>,
    /// Markers to send now.
    pub markers: Option<MarkerRequest>,
    /// A record to write next: the completion of a transaction with no partitions left to
    /// mark, or the same completion again after COORDINATOR_NOT_AVAILABLE.
    pub write: Option<PendingWrite>,
}

/// What loading a partition of `__transaction_state` found.
#[derive(Debug, Default)]
#[must_use = "markers must be sent and writes written"]
pub struct LoadOutcome {
    /// How many transactional ids the partition holds.
    pub transactional_ids: usize,
    /// Transactions found prepared (PrepareCommit or PrepareAbort): their markers are sent
    /// again, as the previous coordinator may not have finished.
    pub markers: Vec<MarkerRequest>,
    /// Completions of prepared transactions with no partitions to mark.
    pub writes: Vec<PendingWrite>,
    /// Records that could not be read, by position in the records given, skipped.
    pub skipped: Vec<(usize, RecordError)>,
}

/// What a WriteTxnMarkers result for one partition means for the transaction (Kafka's
/// `TransactionMarkerRequestCompletionHandler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// The partition has its marker, or never will need one: report it to
    /// [`TransactionCoordinator::markers_written`]. A partition whose topic is gone (no
    /// leader known) counts as this too.
    Written,
    /// Send the marker again, to the partition's current leader.
    Retry,
    /// The producer or coordinator epoch moved on: stop sending this transaction's markers.
    Cancel,
    /// An error Kafka treats as a bug (corrupt marker, bad acks, ...): stop, and log it.
    Unexpected,
}

/// The meaning of a WriteTxnMarkers partition error.
pub fn marker_outcome(error: ErrorCode) -> MarkerOutcome {
    use ErrorCode as E;
    match error {
        E::None | E::UnsupportedForMessageFormat | E::UnsupportedVersion => MarkerOutcome::Written,
        E::UnknownTopicOrPartition
        | E::NotLeaderOrFollower
        | E::NotEnoughReplicas
        | E::NotEnoughReplicasAfterAppend
        | E::RequestTimedOut
        | E::KafkaStorageError
        // The leader could not be reached (dead but not yet fenced, or fenced): send again to
        // whoever leads the partition next, as Kafka's marker channel does after a disconnect.
        | E::NetworkException
        | E::BrokerNotAvailable
        | E::LeaderNotAvailable => MarkerOutcome::Retry,
        E::InvalidProducerEpoch | E::TransactionCoordinatorFenced => MarkerOutcome::Cancel,
        _ => MarkerOutcome::Unexpected,
    }
}

/// The coordinator's error for a failed append to `__transaction_state` (Kafka's
/// `appendTransactionToLog`): the client retries or looks for the coordinator again.
pub fn coordinator_error_for_append(error: ErrorCode) -> ErrorCode {
    use ErrorCode as E;
    match error {
        E::UnknownTopicOrPartition
        | E::NotEnoughReplicas
        | E::NotEnoughReplicasAfterAppend
        | E::RequestTimedOut => E::CoordinatorNotAvailable,
        E::NotLeaderOrFollower | E::KafkaStorageError => E::NotCoordinator,
        E::MessageTooLarge | E::RecordListTooLarge => E::UnknownServerError,
        other => other,
    }
}

/// PRODUCER_FENCED as clients too old to know it expect it: INVALID_PRODUCER_EPOCH. Kafka
/// does this for InitProducerId below version 4 and AddPartitionsToTxn, AddOffsetsToTxn and
/// EndTxn below version 2.
pub fn error_for_client(error: ErrorCode, client_knows_producer_fenced: bool) -> ErrorCode {
    match (error, client_knows_producer_fenced) {
        (ErrorCode::ProducerFenced, false) => ErrorCode::InvalidProducerEpoch,
        (error, _) => error,
    }
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub state: TransactionState,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    /// -1 when no transaction is open.
    pub start_timestamp_ms: i64,
    pub topics: Vec<TopicPartitions>,
}

/// One transaction as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub state: TransactionState,
}

/// ListTransactions' answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionList {
    /// State names in the filter that Kafka does not define.
    pub unknown_state_filters: Vec<String>,
    /// Sorted by transactional id.
    pub transactions: Vec<TransactionListing>,
}

/// Why a record is being written, which decides what happens once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    InitProducerId,
    AddPartitions,
    EndTxn,
    /// The abort of an Ongoing transaction that a new InitProducerId fenced; that request is
    /// answered CONCURRENT_TRANSACTIONS so its producer retries once the abort completes.
    FenceForInit,
    /// The abort of a transaction past its timeout; nobody waits for it.
    FenceForTimeout,
    Complete,
    Expire,
}

/// One record for `__transaction_state`, and what it will change once durable.
///
/// Hand it back exactly once, to [`TransactionCoordinator::apply_written`] or
/// [`TransactionCoordinator::write_failed`]: until then its transactional id stays pending.
#[derive(Debug)]
#[must_use = "a pending write must be written and handed back"]
pub struct PendingWrite {
    partition: PartitionIndex,
    key: Bytes,
    value: Option<Bytes>,
    timestamp_ms: i64,
    transactional_id: String,
    coordinator_epoch: CoordinatorEpoch,
    transit: TransitMetadata,
    purpose: Purpose,
}

impl PendingWrite {
    /// The partition of `__transaction_state` to append to.
    pub fn partition(&self) -> PartitionIndex {
        self.partition
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The record's timestamp.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn coordinator_epoch(&self) -> CoordinatorEpoch {
        self.coordinator_epoch
    }

    /// The state the record says.
    pub fn state(&self) -> TransactionState {
        self.transit.state
    }
}

/// Answers for a write that did not change anything.
fn refused(purpose: Purpose, error: ErrorCode) -> WriteOutcome {
    let reply = match purpose {
        Purpose::InitProducerId | Purpose::FenceForInit => {
            Some(Reply::InitProducerId(ProducerReply::error(error)))
        }
        Purpose::AddPartitions => Some(Reply::AddPartitions(error)),
        Purpose::EndTxn => Some(Reply::EndTxn(ProducerReply::error(error))),
        Purpose::FenceForTimeout | Purpose::Complete | Purpose::Expire => None,
    };
    WriteOutcome {
        reply,
        ..WriteOutcome::default()
    }
}

/// One partition of `__transaction_state`, as this node holds it.
#[derive(Debug)]
enum StatePartition {
    /// Being read; its ids are answered COORDINATOR_LOAD_IN_PROGRESS.
    Loading {
        coordinator_epoch: CoordinatorEpoch,
    },
    Loaded(LoadedPartition),
}

#[derive(Debug)]
struct LoadedPartition {
    index: PartitionIndex,
    coordinator_epoch: CoordinatorEpoch,
    transactions: BTreeMap<String, TransactionMetadata>,
    /// Transactions whose markers are being written, with the completion prepared for when
    /// the last one is (Kafka's `transactionsWithPendingMarkers`).
    completions: HashMap<String, TransitMetadata>,
}

impl LoadedPartition {
    fn write(
        &self,
        transactional_id: &str,
        transit: TransitMetadata,
        purpose: Purpose,
        now_ms: i64,
        value_version: i16,
    ) -> PendingWrite {
        // Ids and topics were checked against the record's limits when they arrived (or were
        // read from a record), so encoding cannot fail.
        let key = try_encode_key(transactional_id).expect("transactional ids are checked");
        let value = match purpose {
            Purpose::Expire => None,
            _ => Some(
                try_encode_value(&transit.log_value(), value_version)
                    .expect("transaction topics are checked"),
            ),
        };
        PendingWrite {
            partition: self.index,
            key,
            value,
            timestamp_ms: now_ms,
            transactional_id: transactional_id.to_owned(),
            coordinator_epoch: self.coordinator_epoch,
            transit,
            purpose,
        }
    }

    /// A transaction's prepare record is durable: prepare its completion and the markers to
    /// write first, or the completion itself if no partition needs a marker.
    fn begin_markers(
        &mut self,
        transactional_id: &str,
        now_ms: i64,
        value_version: i16,
    ) -> WriteOutcome {
        let metadata = self
            .transactions
            .get_mut(transactional_id)
            .expect("the transaction was just prepared");
        let commit = metadata.state() == PrepareCommit;
        let complete = metadata.prepare_complete(now_ms);
        if metadata.partitions().is_empty() {
            let write = self.write(
                transactional_id,
                complete,
                Purpose::Complete,
                now_ms,
                value_version,
            );
            return WriteOutcome {
                write: Some(write),
                ..WriteOutcome::default()
            };
        }
        let markers = MarkerRequest {
            transactional_id: transactional_id.to_owned(),
            state_partition: self.index,
            coordinator_epoch: self.coordinator_epoch,
            producer_id: metadata.producer_id(),
            producer_epoch: metadata.producer_epoch(),
            commit,
            partitions: metadata.partitions().iter().cloned().collect(),
        };
        self.completions
            .insert(transactional_id.to_owned(), complete);
        WriteOutcome {
            markers: Some(markers),
            ..WriteOutcome::default()
        }
    }

    /// The metadata a returning write was prepared against, if it is still waiting for it.
    fn waiting_for(&mut self, write: &PendingWrite) -> Option<&mut TransactionMetadata> {
        if self.coordinator_epoch != write.coordinator_epoch {
            return None;
        }
        self.transactions
            .get_mut(&write.transactional_id)
            .filter(|m| m.pending_state() == Some(write.transit.state))
    }
}

/// Every transactional id this node coordinates, by `__transaction_state` partition.
#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TransactionConfig,
    partitions: BTreeMap<PartitionIndex, StatePartition>,
    next_abort_scan_ms: i64,
    next_expiration_scan_ms: i64,
}

impl TransactionCoordinator {
    pub fn new(config: TransactionConfig) -> TransactionCoordinator {
        assert!(
            config.state_log_partitions > 0,
            "__transaction_state has partitions"
        );
        assert!(
            (0..=1).contains(&config.transaction_version),
            "transaction.version {} is not implemented",
            config.transaction_version
        );
        TransactionCoordinator {
            config,
            partitions: BTreeMap::new(),
            next_abort_scan_ms: i64::MIN,
            next_expiration_scan_ms: i64::MIN,
        }
    }

    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// The `__transaction_state` partition whose leader coordinates this transactional id
    /// (FindCoordinator with key type TRANSACTION).
    pub fn partition_for(&self, transactional_id: &str) -> PartitionIndex {
        record::partition_for(transactional_id, self.config.state_log_partitions)
    }

    /// The coordinator epoch of a partition this node has loaded.
    pub fn coordinator_epoch(&self, partition: PartitionIndex) -> Option<CoordinatorEpoch> {
        match self.partitions.get(&partition) {
            Some(StatePartition::Loaded(loaded)) => Some(loaded.coordinator_epoch),
            _ => None,
        }
    }

    /// A transactional id's metadata, if this node holds it.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        match self.partitions.get(&self.partition_for(transactional_id)) {
            Some(StatePartition::Loaded(loaded)) => loaded.transactions.get(transactional_id),
            _ => None,
        }
    }

    fn loaded_mut(&mut self, partition: PartitionIndex) -> Result<&mut LoadedPartition, ErrorCode> {
        match self.partitions.get_mut(&partition) {
            Some(StatePartition::Loaded(loaded)) => Ok(loaded),
            Some(StatePartition::Loading { .. }) => Err(ErrorCode::CoordinatorLoadInProgress),
            None => Err(ErrorCode::NotCoordinator),
        }
    }

    fn owner_mut(&mut self, transactional_id: &str) -> Result<&mut LoadedPartition, ErrorCode> {
        self.loaded_mut(self.partition_for(transactional_id))
    }

    /// InitProducerId with a transactional id. `producer_id` and `producer_epoch` are the
    /// request's (-1, -1 for a new producer; a producer recovering from an error names its
    /// current ones, KIP-360). `fresh_producer_id` is a newly allocated id, given only after
    /// [`InitDecision::NeedProducerId`].
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        fresh_producer_id: Option<ProducerId>,
        now_ms: i64,
    ) -> InitDecision {
        let refuse = |error| InitDecision::Reply(ProducerReply::error(error));
        if let Err(error) = check_transactional_id(transactional_id) {
            return refuse(error);
        }
        let expected = match (producer_id, producer_epoch) {
            (ProducerId::NONE, ProducerEpoch::NONE) => None,
            (ProducerId::NONE, _) | (_, ProducerEpoch::NONE) => {
                return refuse(ErrorCode::InvalidRequest)
            }
            (id, epoch) => Some((id, epoch)),
        };
        if !(1..=self.config.transaction_timeout_ms_max).contains(&transaction_timeout_ms) {
            return refuse(ErrorCode::InvalidTransactionTimeout);
        }
        let version = self.config.value_version();
        let owner = match self.owner_mut(transactional_id) {
            Ok(owner) => owner,
            Err(error) => return refuse(error),
        };
        if !owner.transactions.contains_key(transactional_id) {
            let Some(fresh) = fresh_producer_id else {
                return InitDecision::NeedProducerId;
            };
            let created =
                TransactionMetadata::new(transactional_id, fresh, transaction_timeout_ms, now_ms);
            owner
                .transactions
                .insert(transactional_id.to_owned(), created);
        }
        let metadata = owner
            .transactions
            .get_mut(transactional_id)
            .expect("present or just created");
        let step = prepare_init(
            metadata,
            transaction_timeout_ms,
            expected,
            fresh_producer_id,
            now_ms,
        );
        match step {
            Err(error) => refuse(error),
            Ok(None) => InitDecision::NeedProducerId,
            Ok(Some((transit, purpose))) => InitDecision::Write(owner.write(
                transactional_id,
                transit,
                purpose,
                now_ms,
                version,
            )),
        }
    }

    /// AddPartitionsToTxn: these partitions join the producer's transaction (starting one if
    /// none is open). The handler has already refused topics that do not exist or that the
    /// client may not write.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Decision<ErrorCode> {
        if transactional_id.is_empty() {
            return Decision::Reply(ErrorCode::InvalidRequest);
        }
        if let Some(error) = partitions
            .iter()
            .find_map(|(topic, _)| check_transaction_topic(topic).err())
        {
            return Decision::Reply(error);
        }
        let version = self.config.value_version();
        let owner = match self.owner_mut(transactional_id) {
            Ok(owner) => owner,
            Err(error) => return Decision::Reply(error),
        };
        let Some(metadata) = owner.transactions.get_mut(transactional_id) else {
            return Decision::Reply(ErrorCode::InvalidProducerIdMapping);
        };
        let added: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let refusal = if metadata.producer_id() != producer_id
            || metadata.producer_epoch() == ProducerEpoch::NONE
        {
            // An id whose first InitProducerId was never written has handed out no epoch:
            // Kafka would fail on the transition (epoch -1) and answer UNKNOWN_SERVER_ERROR.
            Some(ErrorCode::InvalidProducerIdMapping)
        } else if metadata.producer_epoch() != producer_epoch
            || metadata.producer_epoch().0 == i16::MAX
        {
            // The last epoch is only ever a fence's: no producer was given it, and a
            // transaction opened at it could never be fenced.
            Some(ErrorCode::ProducerFenced)
        } else if metadata.has_pending_transition()
            || matches!(metadata.state(), PrepareCommit | PrepareAbort)
        {
            Some(ErrorCode::ConcurrentTransactions)
        } else if metadata.state() == Ongoing && added.is_subset(metadata.partitions()) {
            // Nothing new: answer at once, as Kafka does.
            Some(ErrorCode::None)
        } else {
            None
        };
        if let Some(error) = refusal {
            return Decision::Reply(error);
        }
        let transit = metadata.prepare_add_partitions(&added, now_ms);
        Decision::Write(owner.write(
            transactional_id,
            transit,
            Purpose::AddPartitions,
            now_ms,
            version,
        ))
    }

    /// AddPartitionsToTxn with `verify_only` (KIP-890 part 1, sent by partition leaders before
    /// they accept a transactional produce): whether each partition is in the producer's open
    /// transaction. Writes nothing; a partition not in it is TRANSACTION_ABORTABLE.
    pub fn verify_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let all = |error: ErrorCode| partitions.iter().map(|p| (p.clone(), error)).collect();
        if transactional_id.is_empty() {
            return all(ErrorCode::InvalidRequest);
        }
        let owner = match self.owner_mut(transactional_id) {
            Ok(owner) => owner,
            Err(error) => return all(error),
        };
        let Some(metadata) = owner.transactions.get(transactional_id) else {
            return all(ErrorCode::InvalidProducerIdMapping);
        };
        if metadata.producer_id() != producer_id {
            return all(ErrorCode::InvalidProducerIdMapping);
        }
        if metadata.producer_epoch() != producer_epoch {
            return all(ErrorCode::ProducerFenced);
        }
        if matches!(metadata.state(), PrepareCommit | PrepareAbort) {
            return all(ErrorCode::ConcurrentTransactions);
        }
        partitions
            .iter()
            .map(|p| match metadata.partitions().contains(p) {
                true => (p.clone(), ErrorCode::None),
                false => (p.clone(), ErrorCode::TransactionAbortable),
            })
            .collect()
    }

    /// AddOffsetsToTxn: the `__consumer_offsets` partition of `group_id` joins the
    /// transaction, so the group's transactional offset commits are committed or aborted with
    /// it. `offsets_partitions` is `offsets.topic.num.partitions`.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        group_id: &str,
        offsets_partitions: i32,
        now_ms: i64,
    ) -> Decision<ErrorCode> {
        assert!(offsets_partitions > 0, "__consumer_offsets has partitions");
        let partition = crate::offsets::partition_for(group_id, offsets_partitions);
        let partitions = [(OFFSETS_TOPIC.to_owned(), partition)];
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &partitions,
            now_ms,
        )
    }

    /// EndTxn: commit or abort the producer's open transaction. The answer comes once the
    /// PrepareCommit/PrepareAbort record is durable; the markers follow.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        commit: bool,
        now_ms: i64,
    ) -> Decision<ProducerReply> {
        let refuse = |error| Decision::Reply(ProducerReply::error(error));
        if transactional_id.is_empty() {
            return refuse(ErrorCode::InvalidRequest);
        }
        let version = self.config.value_version();
        let owner = match self.owner_mut(transactional_id) {
            Ok(owner) => owner,
            Err(error) => return refuse(error),
        };
        let Some(metadata) = owner.transactions.get_mut(transactional_id) else {
            return refuse(ErrorCode::InvalidProducerIdMapping);
        };
        if metadata.producer_id() != producer_id {
            return refuse(ErrorCode::InvalidProducerIdMapping);
        }
        if metadata.producer_epoch() != producer_epoch {
            return refuse(ErrorCode::ProducerFenced);
        }
        if metadata.has_pending_transition() {
            return refuse(ErrorCode::ConcurrentTransactions);
        }
        let done = ProducerReply::ok(metadata.producer_id(), metadata.producer_epoch());
        let next = match (metadata.state(), commit) {
            (Ongoing, true) => PrepareCommit,
            (Ongoing, false) => PrepareAbort,
            // A retry of an EndTxn that completed.
            (CompleteCommit, true) | (CompleteAbort, false) => return Decision::Reply(done),
            // A retry of an EndTxn whose markers are still being written.
            (PrepareCommit, true) | (PrepareAbort, false) => {
                return refuse(ErrorCode::ConcurrentTransactions)
            }
            (Dead | PrepareEpochFence, _) => {
                unreachable!("{} is never a current state", metadata.state())
            }
            _ => return refuse(ErrorCode::InvalidTxnState),
        };
        let transit = metadata.prepare_abort_or_commit(next, now_ms);
        Decision::Write(owner.write(transactional_id, transit, Purpose::EndTxn, now_ms, version))
    }

    /// A write is durable: its transition becomes the current state. Returns the answer to
    /// its request, and the markers or record that come next.
    pub fn apply_written(&mut self, write: PendingWrite, now_ms: i64) -> WriteOutcome {
        let version = self.config.value_version();
        let purpose = write.purpose;
        let owner = match self.loaded_mut(write.partition) {
            Ok(owner) => owner,
            Err(error) => return refused(purpose, error),
        };
        let Some(metadata) = owner.waiting_for(&write) else {
            // The partition moved away and back, or the id was reloaded: Kafka answers
            // NOT_COORDINATOR so the client finds the coordinator again.
            return refused(purpose, ErrorCode::NotCoordinator);
        };
        if purpose == Purpose::Expire {
            owner.transactions.remove(&write.transactional_id);
            return WriteOutcome::default();
        }
        metadata.complete_transition(&write.transit);
        let id = write.transactional_id.as_str();
        let reply = match purpose {
            Purpose::InitProducerId => Some(Reply::InitProducerId(ProducerReply::ok(
                write.transit.producer_id,
                write.transit.producer_epoch,
            ))),
            Purpose::AddPartitions => Some(Reply::AddPartitions(ErrorCode::None)),
            Purpose::EndTxn => Some(Reply::EndTxn(ProducerReply::ok(
                metadata.producer_id(),
                metadata.producer_epoch(),
            ))),
            Purpose::FenceForInit => Some(Reply::InitProducerId(ProducerReply::error(
                ErrorCode::ConcurrentTransactions,
            ))),
            Purpose::FenceForTimeout | Purpose::Complete | Purpose::Expire => None,
        };
        let mut outcome = match purpose {
            Purpose::EndTxn | Purpose::FenceForInit | Purpose::FenceForTimeout => {
                owner.begin_markers(id, now_ms, version)
            }
            _ => WriteOutcome::default(),
        };
        outcome.reply = reply;
        outcome
    }

    /// A write could not be made durable; `append_error` is the append's error. The prepared
    /// transition is dropped (a fence keeps its bumped epoch in memory, as in Kafka) and the
    /// request is answered with the coordinator's error for it. A transaction's completion
    /// that failed with COORDINATOR_NOT_AVAILABLE comes back in [`WriteOutcome::write`], to be
    /// written again.
    pub fn write_failed(&mut self, write: PendingWrite, append_error: ErrorCode) -> WriteOutcome {
        assert_ne!(append_error, ErrorCode::None, "a failed write has an error");
        let error = coordinator_error_for_append(append_error);
        let purpose = write.purpose;
        let Ok(owner) = self.loaded_mut(write.partition) else {
            return refused(purpose, error);
        };
        let Some(metadata) = owner.waiting_for(&write) else {
            return refused(purpose, error);
        };
        match purpose {
            Purpose::Complete if error == ErrorCode::CoordinatorNotAvailable => {
                return WriteOutcome {
                    write: Some(write),
                    ..WriteOutcome::default()
                };
            }
            Purpose::FenceForInit | Purpose::FenceForTimeout => metadata.fail_epoch_fence(),
            _ => metadata.clear_pending(),
        }
        refused(purpose, error)
    }

    /// Some of a transaction's markers are written (or need not be: see [`marker_outcome`]).
    /// After the last one, returns the CompleteCommit/CompleteAbort record to write. Reports
    /// for a transaction that has moved on, or a partition no longer loaded, are ignored.
    pub fn markers_written(
        &mut self,
        markers: &MarkerRequest,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Option<PendingWrite> {
        let version = self.config.value_version();
        let owner = self.loaded_mut(markers.state_partition).ok()?;
        if owner.coordinator_epoch != markers.coordinator_epoch
            || !owner.completions.contains_key(&markers.transactional_id)
        {
            return None;
        }
        let metadata = owner.transactions.get_mut(&markers.transactional_id)?;
        if metadata.producer_id() != markers.producer_id
            || metadata.producer_epoch() != markers.producer_epoch
            || !matches!(metadata.state(), PrepareCommit | PrepareAbort)
        {
            return None;
        }
        for partition in partitions {
            metadata.remove_partition(partition);
        }
        if !metadata.partitions().is_empty() {
            return None;
        }
        let id = markers.transactional_id.as_str();
        let complete = owner.completions.remove(id)?;
        Some(owner.write(id, complete, Purpose::Complete, now_ms, version))
    }

    /// Periodic work, on the intervals the config names: aborts transactions past their
    /// timeout and expires idle transactional ids. Returns the records to write.
    pub fn tick(&mut self, now_ms: i64) -> Vec<PendingWrite> {
        let mut writes = Vec::new();
        if now_ms >= self.next_abort_scan_ms {
            self.next_abort_scan_ms =
                now_ms.saturating_add(self.config.abort_timed_out_transaction_cleanup_interval_ms);
            writes.extend(self.abort_timed_out_transactions(now_ms));
        }
        if now_ms >= self.next_expiration_scan_ms {
            self.next_expiration_scan_ms =
                now_ms.saturating_add(self.config.remove_expired_transaction_cleanup_interval_ms);
            writes.extend(self.expire_transactional_ids(now_ms));
        }
        writes
    }

    /// Aborts every Ongoing transaction older than its timeout, fencing its producer (the
    /// epoch is bumped, as Kafka's `abortTimedOutTransactions` does): a PrepareAbort record
    /// each, after which its markers are sent.
    pub fn abort_timed_out_transactions(&mut self, now_ms: i64) -> Vec<PendingWrite> {
        let version = self.config.value_version();
        let mut writes = Vec::new();
        for partition in self.partitions.values_mut() {
            let StatePartition::Loaded(owner) = partition else {
                continue;
            };
            let timed_out: Vec<String> = owner
                .transactions
                .iter()
                .filter(|(_, m)| {
                    !m.has_pending_transition()
                        && m.state() == Ongoing
                        && m.start_timestamp_ms()
                            .saturating_add(i64::from(m.timeout_ms()))
                            < now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in timed_out {
                let metadata = owner.transactions.get_mut(&id).expect("just listed");
                let transit = metadata.prepare_fence_and_abort(now_ms);
                writes.push(owner.write(&id, transit, Purpose::FenceForTimeout, now_ms, version));
            }
        }
        writes
    }

    /// Tombstones for transactional ids that rested (Empty, CompleteCommit, CompleteAbort)
    /// for `transactional.id.expiration.ms` since their last update; each id is removed once
    /// its tombstone is durable.
    pub fn expire_transactional_ids(&mut self, now_ms: i64) -> Vec<PendingWrite> {
        let version = self.config.value_version();
        let expired_before_ms = now_ms.saturating_sub(self.config.transactional_id_expiration_ms);
        let mut writes = Vec::new();
        for partition in self.partitions.values_mut() {
            let StatePartition::Loaded(owner) = partition else {
                continue;
            };
            let expired: Vec<String> = owner
                .transactions
                .iter()
                .filter(|(_, m)| {
                    !m.has_pending_transition()
                        && m.state().is_expiration_allowed()
                        && m.last_update_timestamp_ms() <= expired_before_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                let metadata = owner.transactions.get_mut(&id).expect("just listed");
                let transit = metadata.prepare_dead();
                writes.push(owner.write(&id, transit, Purpose::Expire, now_ms, version));
            }
        }
        writes
    }

    /// Marks a partition of `__transaction_state` as being loaded at `coordinator_epoch` (its
    /// leader epoch): its transactional ids are answered COORDINATOR_LOAD_IN_PROGRESS until
    /// [`TransactionCoordinator::complete_load`].
    pub fn begin_load(&mut self, partition: PartitionIndex, coordinator_epoch: CoordinatorEpoch) {
        self.partitions
            .insert(partition, StatePartition::Loading { coordinator_epoch });
    }

    /// Rebuilds a partition from its records (key, value or `None` for a tombstone; a record
    /// without a key is passed with an empty one), oldest first: the last value of each id
    /// wins and a tombstone removes it. Records that cannot be read are skipped and reported.
    /// Transactions found prepared get their markers sent again. Returns `None`, changing
    /// nothing, if the partition was unloaded or loaded again since `begin_load`.
    pub fn complete_load(
        &mut self,
        partition: PartitionIndex,
        coordinator_epoch: CoordinatorEpoch,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Option<LoadOutcome> {
        match self.partitions.get(&partition) {
            Some(StatePartition::Loading {
                coordinator_epoch: loading,
            }) if *loading == coordinator_epoch => {}
            _ => return None,
        }
        let (transactions, skipped) = replay(records);
        let mut owner = LoadedPartition {
            index: partition,
            coordinator_epoch,
            transactions,
            completions: HashMap::new(),
        };
        let mut outcome = LoadOutcome {
            transactional_ids: owner.transactions.len(),
            skipped,
            ..LoadOutcome::default()
        };
        let prepared: Vec<String> = owner
            .transactions
            .iter()
            .filter(|(_, m)| matches!(m.state(), PrepareCommit | PrepareAbort))
            .map(|(id, _)| id.clone())
            .collect();
        let version = self.config.value_version();
        for id in prepared {
            let next = owner.begin_markers(&id, now_ms, version);
            outcome.markers.extend(next.markers);
            outcome.writes.extend(next.write);
        }
        self.partitions
            .insert(partition, StatePartition::Loaded(owner));
        Some(outcome)
    }

    /// [`TransactionCoordinator::begin_load`] and [`TransactionCoordinator::complete_load`] at
    /// once, for a runtime that reads the partition in one go.
    pub fn load(
        &mut self,
        partition: PartitionIndex,
        coordinator_epoch: CoordinatorEpoch,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> LoadOutcome {
        self.begin_load(partition, coordinator_epoch);
        self.complete_load(partition, coordinator_epoch, records, now_ms)
            .expect("the load just began")
    }

    /// This node no longer leads the partition: its transactional ids are forgotten. Writes
    /// and markers still in flight for it are ignored when they come back.
    pub fn unload(&mut self, partition: PartitionIndex) {
        self.partitions.remove(&partition);
    }

    /// DescribeTransactions: each id's transaction, or why there is none to show.
    pub fn describe(
        &self,
        transactional_ids: &[String],
    ) -> Vec<(String, Result<TransactionDescription, ErrorCode>)> {
        transactional_ids
            .iter()
            .map(|id| (id.clone(), self.describe_one(id)))
            .collect()
    }

    fn describe_one(&self, transactional_id: &str) -> Result<TransactionDescription, ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        let owner = match self.partitions.get(&self.partition_for(transactional_id)) {
            Some(StatePartition::Loaded(owner)) => owner,
            Some(StatePartition::Loading { .. }) => {
                return Err(ErrorCode::CoordinatorLoadInProgress)
            }
            None => return Err(ErrorCode::NotCoordinator),
        };
        let metadata = owner
            .transactions
            .get(transactional_id)
            .ok_or(ErrorCode::TransactionalIdNotFound)?;
        let mut topics: Vec<TopicPartitions> = Vec::new();
        for (topic, partition) in metadata.partitions() {
            match topics.last_mut() {
                Some((last, ids)) if last == topic => ids.push(*partition),
                _ => topics.push((topic.clone(), vec![*partition])),
            }
        }
        Ok(TransactionDescription {
            state: metadata.state(),
            producer_id: metadata.producer_id(),
            producer_epoch: metadata.producer_epoch(),
            timeout_ms: metadata.timeout_ms(),
            start_timestamp_ms: metadata.start_timestamp_ms(),
            topics,
        })
    }

    /// ListTransactions: the transactions in any of `states` (by Kafka's names; all if empty),
    /// of any of `producer_ids` (all if empty), and open longer than `duration_ms_min` if it is
    /// not negative (KIP-994). COORDINATOR_LOAD_IN_PROGRESS while any partition is loading.
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[ProducerId],
        duration_ms_min: i64,
        now_ms: i64,
    ) -> Result<TransactionList, ErrorCode> {
        let loading = self
            .partitions
            .values()
            .any(|p| matches!(p, StatePartition::Loading { .. }));
        if loading {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let mut list = TransactionList::default();
        let mut wanted_states = Vec::new();
        for name in states {
            match TransactionState::from_name(name) {
                Some(state) => wanted_states.push(state),
                None => list.unknown_state_filters.push(name.clone()),
            }
        }
        let included = |m: &TransactionMetadata| {
            m.state() != Dead
                && (producer_ids.is_empty() || producer_ids.contains(&m.producer_id()))
                && (states.is_empty() || wanted_states.contains(&m.state()))
                && (duration_ms_min < 0
                    || now_ms.saturating_sub(m.start_timestamp_ms()) > duration_ms_min)
        };
        for partition in self.partitions.values() {
            let StatePartition::Loaded(owner) = partition else {
                continue;
            };
            list.transactions
                .extend(
                    owner
                        .transactions
                        .values()
                        .filter(|m| included(m))
                        .map(|m| TransactionListing {
                            transactional_id: m.transactional_id().to_owned(),
                            producer_id: m.producer_id(),
                            state: m.state(),
                        }),
                );
        }
        list.transactions
            .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(list)
    }
}

/// Kafka's `prepareInitProducerIdTransit`: the transition an InitProducerId leads to,
/// `Ok(None)` if it needs a fresh producer id first.
fn prepare_init(
    metadata: &mut TransactionMetadata,
    timeout_ms: i32,
    expected: Option<(ProducerId, ProducerEpoch)>,
    fresh_producer_id: Option<ProducerId>,
    now_ms: i64,
) -> Result<Option<(TransitMetadata, Purpose)>, ErrorCode> {
    if metadata.has_pending_transition() {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    // A producer naming an id and epoch is fenced unless the id has no epoch yet (it was just
    // created), the id is the current one (its epoch is checked next), or it is the id before
    // a rotation whose answer the producer may have lost.
    if let Some((id, epoch)) = expected {
        let valid = metadata.producer_epoch() == ProducerEpoch::NONE
            || id == metadata.producer_id()
            || (id == metadata.previous_producer_id() && is_epoch_exhausted(epoch));
        if !valid {
            return Err(ErrorCode::ProducerFenced);
        }
    }
    match metadata.state() {
        PrepareAbort | PrepareCommit => Err(ErrorCode::ConcurrentTransactions),
        CompleteAbort | CompleteCommit | Empty => {
            let rotate = metadata.is_producer_epoch_exhausted()
                && expected.is_none_or(|(_, epoch)| epoch == metadata.producer_epoch());
            if !rotate {
                let expected_epoch = expected.map(|(_, epoch)| epoch);
                let transit = metadata.prepare_increment_producer_epoch(
                    timeout_ms,
                    expected_epoch,
                    now_ms,
                )?;
                return Ok(Some((transit, Purpose::InitProducerId)));
            }
            let Some(fresh) = fresh_producer_id else {
                return Ok(None);
            };
            let transit = metadata.prepare_producer_id_rotation(
                fresh,
                timeout_ms,
                now_ms,
                expected.is_some(),
            );
            Ok(Some((transit, Purpose::InitProducerId)))
        }
        // The open transaction is aborted at a bumped epoch, which is never returned: the
        // producer is told to retry, and its retry bumps again (rotating the producer id if
        // that exhausts the epochs).
        Ongoing => Ok(Some((
            metadata.prepare_fence_and_abort(now_ms),
            Purpose::FenceForInit,
        ))),
        Dead | PrepareEpochFence => unreachable!("{} is never a current state", metadata.state()),
    }
}

/// Replays a partition's records into the ids they leave.
fn replay(
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
) -> (
    BTreeMap<String, TransactionMetadata>,
    Vec<(usize, RecordError)>,
) {
    let mut transactions = BTreeMap::new();
    let mut skipped = Vec::new();
    for (index, (key, value)) in records.into_iter().enumerate() {
        let read = decode(&key, value.as_ref()).and_then(|record| match record {
            TransactionLogRecord::Tombstone { transactional_id } => Ok((transactional_id, None)),
            TransactionLogRecord::Value {
                transactional_id,
                value,
            } => {
                let metadata = TransactionMetadata::from_log_value(&transactional_id, &value)?;
                Ok((transactional_id, Some(metadata)))
            }
        });
        match read {
            Ok((id, Some(metadata))) => {
                transactions.insert(id, metadata);
            }
            Ok((id, None)) => {
                transactions.remove(&id);
            }
            Err(error) => skipped.push((index, error)),
        }
    }
    (transactions, skipped)
}
