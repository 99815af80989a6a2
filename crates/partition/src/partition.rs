//! [`Partition`]: the one owner of a partition's state on this broker.
//!
//! State and who may touch it: `state` (the replica state from the image) behind a read-write
//! lock, written only by [`Partition::apply_replica_state`]; `store` (the log, producer state,
//! followers' progress) behind a mutex held for one short step at a time (an append, a read, a
//! follower's fetch), never across an fsync or an await; the high watermark, an atomic written
//! only with the store lock held so that its rules (never above the log end, never falling on a
//! leader) are checked where it changes. Lock order: `state`, then `store`, then a waiter list;
//! all three are private to this crate, so the order is kept here and nowhere else.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use strom_log::{
    CompactionConfig, CompactionInfo, FilePool, Log, LogConfig, Recovery, RetentionInfo,
};
use strom_types::{BrokerId, LeaderEpoch, Offset, PartitionIndex, TimestampMs, TopicName};
use uuid::Uuid;

use crate::durability::SyncGate;
use crate::error::PartitionError;
use crate::health::WriteHealth;
use crate::replica::{IsrProposal, ProposalSender, ReplicaState, StateChange};
use crate::store::Store;
use crate::waiters::{WaitFor, Waiter, WaiterList};

/// Which partition this is, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionId {
    pub topic: TopicName,
    pub topic_id: Uuid,
    pub index: PartitionIndex,
}

/// One partition this broker hosts a replica of; see the module docs.
pub struct Partition {
    id: PartitionId,
    /// This broker.
    local: BrokerId,
    pub(crate) state: RwLock<ReplicaState>,
    pub(crate) store: Mutex<Store>,
    /// Consumers see records below it. -1 until known.
    high_watermark: AtomicI64,
    pub(crate) sync: SyncGate,
    /// Whether appends are failing for want of storage, for logging.
    pub(crate) write_health: WriteHealth,
    /// Waiters for records at the log end (followers' fetches).
    pub(crate) log_end_waiters: WaiterList,
    /// Waiters for the high watermark or the replica state to change.
    pub(crate) visible_waiters: WaiterList,
    proposals: Option<ProposalSender>,
}

impl Partition {
    /// Opens (recovering, or creating) the log in `dir` and loads producer state. The replica
    /// state is unknown until [`Partition::apply_replica_state`]. ISR proposals go to
    /// `proposals`; without it (a broker of one, tests) none are made.
    pub fn open(
        dir: &Path,
        id: PartitionId,
        local: BrokerId,
        config: LogConfig,
        proposals: Option<ProposalSender>,
        recovery: Recovery,
    ) -> Result<Partition, PartitionError> {
        // Nothing is fsynced here: see `Log::open_in`; the node syncs its filesystem once.
        let log = Log::open_in(dir, config, FilePool::process(), recovery)?;
        Ok(Partition {
            id,
            local,
            state: RwLock::new(ReplicaState::unknown()),
            store: Mutex::new(Store::new(log)?),
            high_watermark: AtomicI64::new(-1),
            sync: SyncGate::default(),
            write_health: WriteHealth::default(),
            log_end_waiters: WaiterList::default(),
            visible_waiters: WaiterList::default(),
            proposals,
        })
    }

    pub fn id(&self) -> &PartitionId {
        &self.id
    }

    pub fn topic(&self) -> &TopicName {
        &self.id.topic
    }

    pub fn topic_id(&self) -> Uuid {
        self.id.topic_id
    }

    pub fn index(&self) -> PartitionIndex {
        self.id.index
    }

    pub fn replica_state(&self) -> ReplicaState {
        self.state.read().clone()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state.read().leader_epoch
    }

    /// True when the image names this broker the leader.
    pub fn is_leader(&self) -> bool {
        self.state.read().is_led_by(self.local)
    }

    /// Consumers see records below it; -1 while unknown.
    pub fn high_watermark(&self) -> Offset {
        Offset(self.high_watermark.load(Ordering::Acquire))
    }

    pub fn log_start_offset(&self) -> Offset {
        self.store.lock().log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.store.lock().log.log_end_offset()
    }

    /// Everything below it is on stable storage.
    pub fn durable_offset(&self) -> Offset {
        self.store.lock().log.durable_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.store.lock().log.size_bytes()
    }

    /// The leader epoch, if this broker leads the partition and `requested` (the epoch a
    /// client believes current, when it says) is that epoch: FENCED_LEADER_EPOCH for an older
    /// one, UNKNOWN_LEADER_EPOCH for a newer one.
    pub fn check_leader(
        &self,
        requested: Option<LeaderEpoch>,
    ) -> Result<LeaderEpoch, PartitionError> {
        check_leader(&self.state.read(), self.local, requested)
    }

    /// Registers `waiter` to be woken by `what` on this partition; see `waiters`.
    pub fn wait_for(&self, waiter: &Waiter, what: WaitFor) {
        match what {
            WaitFor::LogEnd => self.log_end_waiters.register(waiter),
            WaitFor::Visible => self.visible_waiters.register(waiter),
        }
    }

    /// Takes the replica state the image now has. A new leader epoch in which this broker
    /// leads starts the leader's view of its followers afresh (Kafka's makeLeader); one in
    /// which it follows drops it (makeFollower). Waiters are woken: leadership may have moved
    /// under them. A leader epoch never goes back.
    pub fn apply_replica_state(&self, new: ReplicaState, now: Instant) -> StateChange {
        let mut state = self.state.write();
        assert!(
            new.leader_epoch >= state.leader_epoch,
            "{}-{}: leader epoch went back from {} to {}",
            self.id.topic,
            self.id.index,
            state.leader_epoch,
            new.leader_epoch
        );
        if *state == new {
            return StateChange::Unchanged;
        }
        let new_epoch = new.leader_epoch != state.leader_epoch;
        *state = new;
        let mut store = self.store.lock();
        store.progress.isr_change_in_flight = false;
        let leads = state.is_led_by(self.local);
        let change = match (new_epoch, leads) {
            (true, true) => {
                store
                    .progress
                    .start_leading(&state.replicas, self.local, now);
                if self.high_watermark().0 < 0 {
                    // Nothing is known below which every ISR member has the data: start at the
                    // log start and let the followers' fetches move it.
                    let start = store.log.log_start_offset();
                    self.high_watermark.store(start.0, Ordering::Release);
                }
                self.advance_high_watermark(&state, &store);
                StateChange::BecameLeader
            }
            (true, false) => {
                store.progress.stop_leading();
                StateChange::BecameFollower
            }
            (false, _) => {
                if leads {
                    self.advance_high_watermark(&state, &store);
                }
                StateChange::ReplicasChanged
            }
        };
        drop(store);
        drop(state);
        self.visible_waiters.wake_all();
        self.log_end_waiters.wake_all();
        change
    }

    /// The proposer is done with this partition's ISR proposal (committed or refused): the
    /// partition may send another.
    pub fn isr_proposal_finished(&self) {
        self.store.lock().progress.isr_change_in_flight = false;
    }

    /// Applies new topic settings from the next append or retention pass.
    pub fn set_log_config(&self, config: LogConfig) {
        self.store.lock().log.set_config(config);
    }

    /// Deletes whole old segments by time and size.
    pub fn apply_retention(&self, now: TimestampMs) -> Result<RetentionInfo, PartitionError> {
        Ok(self.store.lock().apply_retention(now)?)
    }

    /// Compacts the log below the last stable offset if it is dirty enough: below the high
    /// watermark nothing a truncation could remove decides what is kept, and below the oldest
    /// open transaction's first offset every transactional batch is known committed or aborted
    /// (Kafka cleans up to the first unstable offset). Holds the store lock for the whole pass
    /// (appends wait).
    pub fn compact(
        &self,
        now: TimestampMs,
        config: &CompactionConfig,
    ) -> Result<Option<CompactionInfo>, PartitionError> {
        let mut store = self.store.lock();
        if !store.log.needs_compaction(now, config)? {
            return Ok(None);
        }
        let high_watermark = self.high_watermark().min(store.log.log_end_offset());
        if high_watermark.0 < 0 {
            return Ok(None);
        }
        let end = store.transactions.last_stable_offset(high_watermark);
        Ok(Some(store.log.compact_below(end, now, config)?))
    }

    /// fsyncs everything appended so far, on this thread; the offset now durable.
    pub fn sync(&self) -> Result<Offset, PartitionError> {
        self.sync.sync_blocking(&self.store)
    }

    /// Flushes and fsyncs the log and writes the producer state snapshot, so the next start
    /// reads nothing to rebuild it. For a graceful shutdown.
    pub fn close(&self) -> Result<(), PartitionError> {
        self.sync()?;
        let mut store = self.store.lock();
        store.log.flush_indexes()?;
        if let Err(error) = store.snapshot_producers(true) {
            // The next start rebuilds the state from the log instead.
            tracing::warn!(topic = %self.id.topic, partition = %self.id.index, %error, "cannot write the producer state snapshot");
        }
        Ok(())
    }

    /// Writes out what a restart reads (the producer state snapshot, unless the one on disk is
    /// current) without fsyncing anything: the caller closes every partition this way, syncs
    /// the filesystem once (`strom_log::sync_filesystem`) and only then marks the shutdown
    /// clean. What was acknowledged is durable already; this is for the next start's speed.
    /// The active segment's indexes are not written: every start rebuilds them while it checks
    /// the segment's CRCs, and at 20,000 partitions writing them cost most of a shutdown.
    pub fn close_unsynced(&self) -> Result<(), PartitionError> {
        let mut store = self.store.lock();
        if let Err(error) = store.snapshot_producers_if_behind(false) {
            tracing::warn!(topic = %self.id.topic, partition = %self.id.index, %error, "cannot write the producer state snapshot");
        }
        Ok(())
    }

    /// Raises the high watermark to `to` if higher. Taking `&Store` proves the store lock is
    /// held, which serialises every change. Returns whether it moved.
    pub(crate) fn raise_high_watermark(&self, store: &Store, to: Offset) -> bool {
        let end = store.log.log_end_offset();
        assert!(to <= end, "high watermark {to} above the log end {end}");
        let current = self.high_watermark();
        if to <= current {
            return false;
        }
        self.high_watermark.store(to.0, Ordering::Release);
        true
    }

    /// A follower's high watermark: the leader's, capped at its own log end. It may fall (a
    /// new leader that had not heard of the old one's latest high watermark).
    pub(crate) fn set_follower_high_watermark(&self, store: &Store, leader: Offset) -> bool {
        let to = leader.min(store.log.log_end_offset());
        self.high_watermark.swap(to.0, Ordering::AcqRel) != to.0
    }

    /// On the leader: raises the high watermark to the smallest log end in the ISR.
    pub(crate) fn advance_high_watermark(&self, state: &ReplicaState, store: &Store) -> bool {
        if !state.is_led_by(self.local) {
            return false;
        }
        let end = store.log.log_end_offset();
        let candidate = store
            .progress
            .high_watermark_candidate(&state.isr, self.local, end);
        self.raise_high_watermark(store, candidate)
    }

    /// Sends an ISR proposal unless one is on its way.
    pub(crate) fn propose_isr(&self, state: &ReplicaState, store: &mut Store, isr: Vec<BrokerId>) {
        let Some(proposals) = &self.proposals else {
            return;
        };
        if store.progress.isr_change_in_flight {
            return;
        }
        tracing::info!(topic = %self.id.topic, partition = %self.id.index, old_isr = ?state.isr, new_isr = ?isr, "proposing an ISR change");
        let proposal = IsrProposal {
            topic_id: self.id.topic_id,
            partition: self.id.index,
            leader: self.local,
            leader_epoch: state.leader_epoch,
            isr,
        };
        store.progress.isr_change_in_flight = proposals.send(proposal).is_ok();
    }

    pub(crate) fn local(&self) -> BrokerId {
        self.local
    }
}

/// [`Partition::check_leader`] on a given state.
pub(crate) fn check_leader(
    state: &ReplicaState,
    local: BrokerId,
    requested: Option<LeaderEpoch>,
) -> Result<LeaderEpoch, PartitionError> {
    if !state.is_led_by(local) {
        return Err(PartitionError::NotLeader);
    }
    let current = state.leader_epoch;
    match requested {
        Some(requested) if requested < current => {
            Err(PartitionError::FencedLeaderEpoch { requested, current })
        }
        Some(requested) if requested > current => {
            Err(PartitionError::UnknownLeaderEpoch { requested, current })
        }
        _ => Ok(current),
    }
}
