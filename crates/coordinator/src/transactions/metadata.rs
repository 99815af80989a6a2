//! One transactional id's state and Kafka's transitions over it (`TransactionMetadata.scala`).
//!
//! Every change is two steps, because nothing may be believed before it is durable:
//! 1. a `prepare_*` method checks the transition is allowed, marks the metadata with a
//!    *pending state* (which makes every other request wait, answered with
//!    CONCURRENT_TRANSACTIONS) and returns a [`TransitMetadata`]: the state the record will say;
//! 2. once the record holding it is durable in `__transaction_state`,
//!    [`TransactionMetadata::complete_transition`] makes it the current state; if the write
//!    failed, [`TransactionMetadata::clear_pending`] drops it.
//!
//! Only [`super::coordinator::TransactionCoordinator`] drives these, and only after the checks
//! Kafka's coordinator makes; calling a `prepare_*` method against its preconditions is a bug
//! and panics, as Kafka throws `IllegalStateException`. Metadata read back from the topic is
//! checked by [`TransactionMetadata::from_log_value`] first, so records a hostile or damaged
//! log holds cannot reach those panics.
//!
//! KIP-890 part 2 (`transaction.version` 2: a new epoch for every transaction, with the next
//! producer id chosen at EndTxn) is not implemented: epochs change only at InitProducerId and
//! when a producer is fenced.

use std::collections::BTreeSet;

use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::record::{RecordError, TopicPartitions, TransactionLogValue};
use super::state::TransactionState::{self, *};
use super::TopicPartition;

/// Whether a producer id has used up its epochs. The last epoch, `i16::MAX`, is never handed to
/// a client, so the coordinator can always fence the producer holding the one before it.
pub fn is_epoch_exhausted(epoch: ProducerEpoch) -> bool {
    epoch.0 >= i16::MAX - 1
}

/// The state a transition leads to, as its record says it; applied once the record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitMetadata {
    pub producer_id: ProducerId,
    pub previous_producer_id: ProducerId,
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub last_producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    pub state: TransactionState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
}

impl TransitMetadata {
    /// The value of the record that makes this transition durable (Kafka's `valueToBytes`:
    /// an Empty state's partitions are null; partitions are grouped by topic).
    pub fn log_value(&self) -> TransactionLogValue {
        assert!(
            self.state != Empty || self.partitions.is_empty(),
            "an Empty transaction has no partitions"
        );
        let partitions = (self.state != Empty).then(|| group_by_topic(&self.partitions));
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: 0,
        }
    }
}

fn group_by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut grouped: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in partitions {
        match grouped.last_mut() {
            Some((last, ids)) if last == topic => ids.push(*partition),
            _ => grouped.push((topic.clone(), vec![*partition])),
        }
    }
    grouped
}

/// One transactional id: its producer id and epoch, and its current transaction.
///
/// Lifecycle: created by the first InitProducerId (or read from `__transaction_state` when
/// this node becomes the coordinator of its partition), changed only by transitions that the
/// coordinator prepares and completes, dropped when its partition is unloaded or when its
/// expiration tombstone is durable. Only the coordinator that owns it touches it; it is not
/// shared between threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    transactional_id: String,
    producer_id: ProducerId,
    /// The producer id this one replaced, so that a retried InitProducerId whose answer was
    /// lost across a rotation is recognised (KIP-360).
    previous_producer_id: ProducerId,
    next_producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    /// The epoch before the last bump; lets a retried InitProducerId get the same answer. It is
    /// not stored in the topic, so it is -1 after a load, as in Kafka.
    last_producer_epoch: ProducerEpoch,
    timeout_ms: i32,
    state: TransactionState,
    partitions: BTreeSet<TopicPartition>,
    /// When the current transaction's first partition was added; -1 if none.
    start_timestamp_ms: i64,
    /// When a transition last completed; what expiration counts from.
    last_update_timestamp_ms: i64,
    /// The state a prepared transition is waiting to reach; `None` when nothing is in flight.
    pending_state: Option<TransactionState>,
    /// A fencing write failed after the epoch was bumped in memory: the next fence reuses that
    /// epoch instead of bumping again (the bumped epoch was never returned to a client).
    has_failed_epoch_fence: bool,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: Empty, with a fresh producer id and no
    /// epoch yet (its first InitProducerId makes the epoch 0).
    pub fn new(
        transactional_id: &str,
        producer_id: ProducerId,
        timeout_ms: i32,
        now_ms: i64,
    ) -> TransactionMetadata {
        TransactionMetadata {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            previous_producer_id: ProducerId::NONE,
            next_producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            last_producer_epoch: ProducerEpoch::NONE,
            timeout_ms,
            state: Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now_ms,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    /// Metadata as a record of `__transaction_state` left it (Kafka's `readTxnRecordValue`),
    /// refusing values Kafka never writes and the transitions could not handle: the Dead and
    /// PrepareEpochFence states, negative producer ids or epochs, an Ongoing epoch that could
    /// not be fenced, and an open transaction without a start time.
    pub fn from_log_value(
        transactional_id: &str,
        value: &TransactionLogValue,
    ) -> Result<TransactionMetadata, RecordError> {
        let invalid = |reason| Err(RecordError::Inconsistent(reason));
        if !value.state.is_stored() {
            return invalid("its state is never written");
        }
        if value.producer_id.0 < 0 || value.producer_epoch.0 < 0 {
            return invalid("its producer id or epoch is negative");
        }
        if value.state == Ongoing && value.producer_epoch.0 == i16::MAX {
            return invalid("an ongoing transaction at the last epoch cannot be fenced");
        }
        if value.state != Empty && value.start_timestamp_ms < 0 {
            return invalid("a transaction that started has no start time");
        }
        let mut partitions = BTreeSet::new();
        if value.state != Empty {
            for (topic, ids) in value.partitions.iter().flatten() {
                partitions.extend(ids.iter().map(|id| (topic.clone(), *id)));
            }
        }
        Ok(TransactionMetadata {
            transactional_id: transactional_id.to_owned(),
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: ProducerEpoch::NONE,
            timeout_ms: value.transaction_timeout_ms,
            state: value.state,
            partitions,
            start_timestamp_ms: value.start_timestamp_ms,
            last_update_timestamp_ms: value.last_update_timestamp_ms,
            pending_state: None,
            has_failed_epoch_fence: false,
        })
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn producer_id(&self) -> ProducerId {
        self.producer_id
    }

    pub fn previous_producer_id(&self) -> ProducerId {
        self.previous_producer_id
    }

    pub fn producer_epoch(&self) -> ProducerEpoch {
        self.producer_epoch
    }

    pub fn last_producer_epoch(&self) -> ProducerEpoch {
        self.last_producer_epoch
    }

    pub fn timeout_ms(&self) -> i32 {
        self.timeout_ms
    }

    pub fn state(&self) -> TransactionState {
        self.state
    }

    pub fn partitions(&self) -> &BTreeSet<TopicPartition> {
        &self.partitions
    }

    pub fn start_timestamp_ms(&self) -> i64 {
        self.start_timestamp_ms
    }

    pub fn last_update_timestamp_ms(&self) -> i64 {
        self.last_update_timestamp_ms
    }

    pub fn pending_state(&self) -> Option<TransactionState> {
        self.pending_state
    }

    /// Whether a prepared transition is waiting for its record to be durable.
    pub fn has_pending_transition(&self) -> bool {
        self.pending_state.is_some()
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// InitProducerId for an id with no open transaction: the next epoch (KIP-360: a producer
    /// that names its current epoch keeps going with the next one; one that names the epoch
    /// before it is retrying a bump that succeeded and gets the current epoch again; any
    /// other epoch is fenced).
    ///
    /// Kafka checks for an exhausted epoch before anything else; here only a transition that
    /// actually bumps is refused for it, so the retry above still gets its answer (Kafka
    /// throws there). The coordinator rotates the producer id before an exhausted epoch
    /// would be bumped.
    pub fn prepare_increment_producer_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<ProducerEpoch>,
        now_ms: i64,
    ) -> Result<TransitMetadata, ErrorCode> {
        let bumped = ProducerEpoch(self.producer_epoch.0.wrapping_add(1));
        let (epoch, last_epoch) = match expected_epoch {
            None => (bumped, ProducerEpoch::NONE),
            Some(expected)
                if self.producer_epoch == ProducerEpoch::NONE
                    || expected == self.producer_epoch =>
            {
                (bumped, self.producer_epoch)
            }
            Some(expected) if expected == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(ErrorCode::ProducerFenced),
        };
        assert!(
            epoch == self.producer_epoch || !self.is_producer_epoch_exhausted(),
            "cannot bump the exhausted epoch of producer id {}",
            self.producer_id
        );
        Ok(self.prepare_transition(Transition {
            last_producer_epoch: last_epoch,
            timeout_ms,
            previous_producer_id: self.producer_id,
            ..self.transition(Empty, epoch, BTreeSet::new(), -1, now_ms)
        }))
    }

    /// InitProducerId when the epochs of the producer id are used up: a new producer id at
    /// epoch 0. `record_last_epoch` keeps the old epoch as the last one, so that a producer
    /// that named it can retry (KIP-360).
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: ProducerId,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> TransitMetadata {
        assert!(
            !self.state.has_pending_transaction(),
            "cannot rotate producer ids while a transaction is {}",
            self.state
        );
        let last_epoch = match record_last_epoch {
            true => self.producer_epoch,
            false => ProducerEpoch::NONE,
        };
        self.prepare_transition(Transition {
            producer_id: new_producer_id,
            previous_producer_id: self.producer_id,
            last_producer_epoch: last_epoch,
            timeout_ms,
            ..self.transition(Empty, ProducerEpoch(0), BTreeSet::new(), -1, now_ms)
        })
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: Ongoing, with these partitions too; the
    /// transaction starts now unless one is already open.
    pub fn prepare_add_partitions(
        &mut self,
        added: &BTreeSet<TopicPartition>,
        now_ms: i64,
    ) -> TransitMetadata {
        let start_ms = match self.state {
            Empty | CompleteAbort | CompleteCommit => now_ms,
            _ => self.start_timestamp_ms,
        };
        let partitions = self.partitions.union(added).cloned().collect();
        let epoch = self.producer_epoch;
        let transition = self.transition(Ongoing, epoch, partitions, start_ms, now_ms);
        self.prepare_transition(transition)
    }

    /// EndTxn: PrepareCommit or PrepareAbort, with the same epoch and partitions.
    pub fn prepare_abort_or_commit(
        &mut self,
        state: TransactionState,
        now_ms: i64,
    ) -> TransitMetadata {
        assert!(
            matches!(state, PrepareCommit | PrepareAbort),
            "EndTxn leads to PrepareCommit or PrepareAbort, not {state}"
        );
        let (epoch, partitions) = (self.producer_epoch, self.partitions.clone());
        let start_ms = self.start_timestamp_ms;
        let transition = self.transition(state, epoch, partitions, start_ms, now_ms);
        self.prepare_transition(transition)
    }

    /// Every marker is written: CompleteCommit or CompleteAbort, with no partitions left.
    pub fn prepare_complete(&mut self, now_ms: i64) -> TransitMetadata {
        let state = match self.state {
            PrepareCommit => CompleteCommit,
            PrepareAbort => CompleteAbort,
            state => panic!("only a prepared transaction completes, not one {state}"),
        };
        // The prepare record is durable, so a fence that failed earlier has been written since.
        self.has_failed_epoch_fence = false;
        let (epoch, start_ms) = (self.producer_epoch, self.start_timestamp_ms);
        let transition = self.transition(state, epoch, BTreeSet::new(), start_ms, now_ms);
        self.prepare_transition(Transition {
            last_producer_epoch: self.producer_epoch,
            ..transition
        })
    }

    /// `transactional.id.expiration.ms` has passed: the id is to be removed by a tombstone. The
    /// last update time stays, so the write is recognisable as this expiration.
    pub fn prepare_dead(&mut self) -> TransitMetadata {
        let (epoch, start_ms) = (self.producer_epoch, self.start_timestamp_ms);
        let update_ms = self.last_update_timestamp_ms;
        let transition = self.transition(Dead, epoch, BTreeSet::new(), start_ms, update_ms);
        self.prepare_transition(transition)
    }

    /// The first half of fencing an Ongoing transaction's producer (on a new InitProducerId or
    /// a timeout): the epoch it will be aborted with, one past the current one, or the same
    /// one if a previous fence already bumped it in memory but failed to write it.
    pub fn prepare_fence_producer_epoch(&mut self) -> TransitMetadata {
        let epoch = match self.has_failed_epoch_fence {
            true => self.producer_epoch,
            false => {
                assert!(
                    self.producer_epoch.0 < i16::MAX,
                    "cannot fence producer id {} at epoch {}",
                    self.producer_id,
                    self.producer_epoch
                );
                ProducerEpoch(self.producer_epoch.0 + 1)
            }
        };
        let (partitions, start_ms) = (self.partitions.clone(), self.start_timestamp_ms);
        let update_ms = self.last_update_timestamp_ms;
        let transition = self.transition(PrepareEpochFence, epoch, partitions, start_ms, update_ms);
        self.prepare_transition(Transition {
            last_producer_epoch: ProducerEpoch::NONE,
            ..transition
        })
    }

    /// The second half of a fence (Kafka's `endTransaction` with `isEpochFence`): the fenced
    /// epoch becomes the current one in memory at once, so the old producer's requests are
    /// refused from now on, and the transaction moves to PrepareAbort at that epoch.
    pub fn prepare_abort_after_fence(
        &mut self,
        fence: &TransitMetadata,
        now_ms: i64,
    ) -> TransitMetadata {
        assert_eq!(self.pending_state, Some(PrepareEpochFence));
        assert_eq!(fence.state, PrepareEpochFence);
        self.pending_state = None;
        self.producer_epoch = fence.producer_epoch;
        self.last_producer_epoch = ProducerEpoch::NONE;
        self.prepare_abort_or_commit(PrepareAbort, now_ms)
    }

    /// Fences the producer and prepares the abort of its transaction, both halves at once.
    pub fn prepare_fence_and_abort(&mut self, now_ms: i64) -> TransitMetadata {
        let fence = self.prepare_fence_producer_epoch();
        self.prepare_abort_after_fence(&fence, now_ms)
    }

    /// The record of a fencing abort could not be written. The bumped epoch stays in memory
    /// (it was never given to a client) and is reused by the next fence.
    pub fn fail_epoch_fence(&mut self) {
        self.has_failed_epoch_fence = true;
        self.pending_state = None;
    }

    /// The record of a prepared transition could not be written: nothing changes.
    pub fn clear_pending(&mut self) {
        self.pending_state = None;
    }

    /// A partition has its transaction marker (or no longer needs one).
    pub fn remove_partition(&mut self, partition: &TopicPartition) {
        assert!(
            matches!(self.state, PrepareCommit | PrepareAbort),
            "markers are written only for a prepared transaction, not one {}",
            self.state
        );
        self.partitions.remove(partition);
    }

    /// The record of `transit` is durable: it becomes the current state, after Kafka's checks
    /// that it is the transition that was prepared (a mismatch is a bug, and panics).
    pub fn complete_transition(&mut self, transit: &TransitMetadata) {
        let pending = self.pending_state.unwrap_or_else(|| {
            panic!(
                "{}: completing {} with no pending state",
                self.transactional_id, transit.state
            )
        });
        let fail = |why: &str| -> ! {
            panic!(
                "{}: cannot complete the transition from {} to {transit:?}: {why}",
                self.transactional_id, self.state
            )
        };
        if pending != transit.state {
            fail("it is not the pending state");
        }
        let same_producer = transit.producer_id == self.producer_id
            && transit.producer_epoch == self.producer_epoch;
        match transit.state {
            Empty => {
                let bump = i32::from(transit.producer_epoch.0)
                    == i32::from(self.producer_epoch.0) + 1
                    || (transit.producer_epoch.0 == 0 && transit.producer_id != self.producer_id);
                if (transit.producer_epoch != self.producer_epoch && !bump)
                    || !transit.partitions.is_empty()
                    || transit.start_timestamp_ms != -1
                {
                    fail("not an epoch bump of an empty transaction");
                }
                self.timeout_ms = transit.timeout_ms;
                self.producer_epoch = transit.producer_epoch;
                self.last_producer_epoch = transit.last_producer_epoch;
                self.producer_id = transit.producer_id;
                self.previous_producer_id = transit.previous_producer_id;
                // Kafka keeps the last transaction's start time here until the id is loaded
                // again; its record says -1, and so does the metadata here, at once.
                self.start_timestamp_ms = transit.start_timestamp_ms;
            }
            Ongoing => {
                if !same_producer
                    || !self.partitions.is_subset(&transit.partitions)
                    || self.timeout_ms != transit.timeout_ms
                {
                    fail("partitions may only be added, by the same producer");
                }
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.extend(transit.partitions.iter().cloned());
            }
            PrepareCommit | PrepareAbort => {
                if !same_producer
                    || self.partitions != transit.partitions
                    || self.timeout_ms != transit.timeout_ms
                    || self.start_timestamp_ms != transit.start_timestamp_ms
                {
                    fail("the transaction changed while it was being ended");
                }
            }
            CompleteCommit | CompleteAbort => {
                if !same_producer
                    || self.timeout_ms != transit.timeout_ms
                    || transit.start_timestamp_ms == -1
                {
                    fail("not the completion of this transaction");
                }
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.clear();
            }
            PrepareEpochFence | Dead => fail("this state is never completed"),
        }
        self.last_update_timestamp_ms = transit.last_update_timestamp_ms;
        self.pending_state = None;
        self.state = transit.state;
    }

    /// A transition to `state` that keeps what it does not name (Kafka's `prepareTransitionTo`
    /// arguments, the rest filled from the current metadata).
    fn transition(
        &self,
        state: TransactionState,
        producer_epoch: ProducerEpoch,
        partitions: BTreeSet<TopicPartition>,
        start_timestamp_ms: i64,
        now_ms: i64,
    ) -> Transition {
        Transition {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state,
            partitions,
            start_timestamp_ms,
            last_update_timestamp_ms: now_ms,
        }
    }

    /// Checks a transition and marks it pending.
    fn prepare_transition(&mut self, t: Transition) -> TransitMetadata {
        if let Some(pending) = self.pending_state {
            panic!(
                "{}: preparing {} while {pending} is pending",
                self.transactional_id, t.state
            );
        }
        assert!(
            t.producer_id.0 >= 0,
            "illegal producer id {}",
            t.producer_id
        );
        assert!(
            t.state == Dead || t.producer_epoch.0 >= 0,
            "illegal producer epoch {}",
            t.producer_epoch
        );
        assert!(
            self.state.can_transition_to(t.state),
            "{}: {} may not follow {}",
            self.transactional_id,
            t.state,
            self.state
        );
        self.pending_state = Some(t.state);
        TransitMetadata {
            producer_id: t.producer_id,
            previous_producer_id: t.previous_producer_id,
            next_producer_id: ProducerId::NONE,
            producer_epoch: t.producer_epoch,
            last_producer_epoch: t.last_producer_epoch,
            timeout_ms: t.timeout_ms,
            state: t.state,
            partitions: t.partitions,
            start_timestamp_ms: t.start_timestamp_ms,
            last_update_timestamp_ms: t.last_update_timestamp_ms,
        }
    }
}

/// The arguments of a transition before it is checked.
struct Transition {
    producer_id: ProducerId,
    previous_producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    last_producer_epoch: ProducerEpoch,
    timeout_ms: i32,
    state: TransactionState,
    partitions: BTreeSet<TopicPartition>,
    start_timestamp_ms: i64,
    last_update_timestamp_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT_MS: i32 = 60_000;
    const T0: i64 = 1_000_000;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_owned(), partition)
    }

    fn set(list: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
        list.iter().map(|(t, p)| tp(t, *p)).collect()
    }

    /// An id initialised once: Empty at epoch 0.
    fn initialised() -> TransactionMetadata {
        let mut m = TransactionMetadata::new("txn", ProducerId(7), TIMEOUT_MS, T0);
        let t = m
            .prepare_increment_producer_epoch(TIMEOUT_MS, None, T0)
            .unwrap();
        m.complete_transition(&t);
        m
    }

    fn ongoing(now_ms: i64) -> TransactionMetadata {
        let mut m = initialised();
        let t = m.prepare_add_partitions(&set(&[("a", 0), ("b", 1)]), now_ms);
        m.complete_transition(&t);
        m
    }

    #[test]
    fn first_init_gives_epoch_zero() {
        let m = initialised();
        assert_eq!(m.state(), Empty);
        assert_eq!(m.producer_id(), ProducerId(7));
        assert_eq!(m.producer_epoch(), ProducerEpoch(0));
        assert_eq!(m.last_producer_epoch(), ProducerEpoch::NONE);
        assert_eq!(m.start_timestamp_ms(), -1);
        assert_eq!(m.pending_state(), None);
    }

    #[test]
    fn increment_epoch_follows_kip_360() {
        let mut m = initialised();
        // A producer naming its current epoch moves on to the next, remembering the old one.
        let t = m
            .prepare_increment_producer_epoch(TIMEOUT_MS, Some(ProducerEpoch(0)), T0 + 1)
            .unwrap();
        assert_eq!(
            (t.producer_epoch, t.last_producer_epoch),
            (ProducerEpoch(1), ProducerEpoch(0))
        );
        assert_eq!(m.pending_state(), Some(Empty));
        m.complete_transition(&t);
        // Its retry (the answer was lost) names the old epoch and gets the same epoch again.
        let t = m
            .prepare_increment_producer_epoch(TIMEOUT_MS, Some(ProducerEpoch(0)), T0 + 2)
            .unwrap();
        assert_eq!(
            (t.producer_epoch, t.last_producer_epoch),
            (ProducerEpoch(1), ProducerEpoch(0))
        );
        m.complete_transition(&t);
        // Any other epoch is a zombie.
        assert_eq!(
            m.prepare_increment_producer_epoch(TIMEOUT_MS, Some(ProducerEpoch(5)), T0 + 3),
            Err(ErrorCode::ProducerFenced)
        );
        assert_eq!(m.pending_state(), None);
        // A new producer (no epoch named) bumps and forgets the last epoch.
        let t = m
            .prepare_increment_producer_epoch(30_000, None, T0 + 4)
            .unwrap();
        assert_eq!(
            (t.producer_epoch, t.last_producer_epoch),
            (ProducerEpoch(2), ProducerEpoch::NONE)
        );
        m.complete_transition(&t);
        assert_eq!(m.timeout_ms(), 30_000);
        assert_eq!(m.last_update_timestamp_ms(), T0 + 4);
    }

    #[test]
    fn rotation_gives_a_new_producer_id_at_epoch_zero() {
        let mut m = initialised();
        m.producer_epoch = ProducerEpoch(i16::MAX - 1);
        assert!(m.is_producer_epoch_exhausted());
        let t = m.prepare_producer_id_rotation(ProducerId(8), TIMEOUT_MS, T0 + 1, true);
        assert_eq!(t.producer_id, ProducerId(8));
        assert_eq!(t.previous_producer_id, ProducerId(7));
        assert_eq!(t.producer_epoch, ProducerEpoch(0));
        assert_eq!(t.last_producer_epoch, ProducerEpoch(i16::MAX - 1));
        m.complete_transition(&t);
        assert_eq!(m.producer_id(), ProducerId(8));
        assert_eq!(m.previous_producer_id(), ProducerId(7));
        assert!(!m.is_producer_epoch_exhausted());
    }

    #[test]
    fn add_partitions_starts_a_transaction_once() {
        let mut m = ongoing(T0 + 10);
        assert_eq!(m.state(), Ongoing);
        assert_eq!(m.start_timestamp_ms(), T0 + 10);
        assert_eq!(m.partitions(), &set(&[("a", 0), ("b", 1)]));
        let t = m.prepare_add_partitions(&set(&[("c", 0)]), T0 + 20);
        assert_eq!(
            t.start_timestamp_ms,
            T0 + 10,
            "an open transaction keeps its start"
        );
        m.complete_transition(&t);
        assert_eq!(m.partitions().len(), 3);
        assert_eq!(m.last_update_timestamp_ms(), T0 + 20);
    }

    #[test]
    fn commit_then_complete() {
        let mut m = ongoing(T0);
        let t = m.prepare_abort_or_commit(PrepareCommit, T0 + 5);
        assert_eq!(t.partitions, set(&[("a", 0), ("b", 1)]));
        m.complete_transition(&t);
        assert_eq!(m.state(), PrepareCommit);
        let complete = m.prepare_complete(T0 + 6);
        assert_eq!(complete.state, CompleteCommit);
        assert!(complete.partitions.is_empty());
        assert_eq!(m.pending_state(), Some(CompleteCommit));
        m.remove_partition(&tp("a", 0));
        m.remove_partition(&tp("b", 1));
        m.complete_transition(&complete);
        assert_eq!(m.state(), CompleteCommit);
        assert!(m.partitions().is_empty());
        assert_eq!(m.start_timestamp_ms(), T0);
        // A new transaction may start right away, with a new start time.
        let t = m.prepare_add_partitions(&set(&[("a", 0)]), T0 + 7);
        assert_eq!(t.start_timestamp_ms, T0 + 7);
    }

    #[test]
    fn abort_then_complete_then_init_again() {
        let mut m = ongoing(T0);
        let t = m.prepare_abort_or_commit(PrepareAbort, T0 + 5);
        m.complete_transition(&t);
        let t = m.prepare_complete(T0 + 6);
        m.complete_transition(&t);
        assert_eq!(m.state(), CompleteAbort);
        let t = m
            .prepare_increment_producer_epoch(TIMEOUT_MS, None, T0 + 7)
            .unwrap();
        m.complete_transition(&t);
        assert_eq!((m.state(), m.producer_epoch()), (Empty, ProducerEpoch(1)));
        assert_eq!(m.start_timestamp_ms(), -1, "as the record says");
    }

    #[test]
    fn fencing_bumps_the_epoch_once_even_if_the_write_fails() {
        let mut m = ongoing(T0);
        let abort = m.prepare_fence_and_abort(T0 + 5);
        assert_eq!(abort.state, PrepareAbort);
        assert_eq!(abort.producer_epoch, ProducerEpoch(1));
        assert_eq!(
            m.producer_epoch(),
            ProducerEpoch(1),
            "fenced in memory at once"
        );
        assert_eq!(m.pending_state(), Some(PrepareAbort));
        m.fail_epoch_fence();
        assert_eq!((m.state(), m.pending_state()), (Ongoing, None));
        // The retry reuses the bumped epoch rather than bumping again.
        let abort = m.prepare_fence_and_abort(T0 + 6);
        assert_eq!(abort.producer_epoch, ProducerEpoch(1));
        m.complete_transition(&abort);
        let complete = m.prepare_complete(T0 + 7);
        assert!(!m.has_failed_epoch_fence);
        m.complete_transition(&complete);
        assert_eq!(
            (m.state(), m.producer_epoch()),
            (CompleteAbort, ProducerEpoch(1))
        );
    }

    #[test]
    fn dead_keeps_the_last_update_time() {
        let mut m = initialised();
        let t = m.prepare_dead();
        assert_eq!(t.state, Dead);
        assert_eq!(t.last_update_timestamp_ms, T0);
        assert_eq!(m.pending_state(), Some(Dead));
        m.clear_pending();
        assert_eq!(m.pending_state(), None);
    }

    #[test]
    #[should_panic(expected = "may not follow")]
    fn commit_from_empty_is_a_bug() {
        initialised().prepare_abort_or_commit(PrepareCommit, T0);
    }

    #[test]
    #[should_panic(expected = "is pending")]
    fn two_pending_transitions_are_a_bug() {
        let mut m = ongoing(T0);
        m.prepare_abort_or_commit(PrepareCommit, T0);
        m.prepare_add_partitions(&set(&[("c", 0)]), T0);
    }

    #[test]
    #[should_panic(expected = "not the pending state")]
    fn completing_another_transition_is_a_bug() {
        let mut m = ongoing(T0);
        let mut t = m.prepare_abort_or_commit(PrepareCommit, T0);
        t.state = PrepareAbort;
        m.complete_transition(&t);
    }

    #[test]
    fn log_values_round_trip_through_metadata() {
        let mut m = ongoing(T0);
        let t = m.prepare_abort_or_commit(PrepareCommit, T0 + 1);
        let value = t.log_value();
        assert_eq!(
            value.partitions,
            Some(vec![("a".to_owned(), vec![0]), ("b".to_owned(), vec![1])])
        );
        let loaded = TransactionMetadata::from_log_value("txn", &value).unwrap();
        assert_eq!(loaded.state(), PrepareCommit);
        assert_eq!(loaded.partitions(), &set(&[("a", 0), ("b", 1)]));
        assert_eq!(loaded.last_producer_epoch(), ProducerEpoch::NONE);
        // Empty values have null partitions.
        let mut fresh = TransactionMetadata::new("txn", ProducerId(1), TIMEOUT_MS, T0);
        let t = fresh
            .prepare_increment_producer_epoch(TIMEOUT_MS, None, T0)
            .unwrap();
        assert_eq!(t.log_value().partitions, None);
    }

    #[test]
    fn values_kafka_never_writes_are_refused_on_load() {
        let base = ongoing(T0)
            .prepare_abort_or_commit(PrepareCommit, T0 + 1)
            .log_value();
        let cases: [fn(&mut TransactionLogValue); 6] = [
            |v| v.state = Dead,
            |v| v.state = PrepareEpochFence,
            |v| v.producer_id = ProducerId(-5),
            |v| v.producer_epoch = ProducerEpoch(-1),
            |v| {
                v.state = Ongoing;
                v.producer_epoch = ProducerEpoch(i16::MAX);
            },
            |v| v.start_timestamp_ms = -1,
        ];
        for change in cases {
            let mut value = base.clone();
            change(&mut value);
            assert!(matches!(
                TransactionMetadata::from_log_value("txn", &value),
                Err(RecordError::Inconsistent(_))
            ));
        }
    }
}
