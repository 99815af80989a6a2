//! What a partition keeps behind its store lock: the log, the idempotent producers' state
//! (kept with the log, as Kafka's `ProducerStateManager` is) and, on the leader, its followers'
//! progress. Everything here changes together: an append checks and records producer sequences
//! in the same critical section that writes the batches, so a retry can never slip between.

use strom_log::{AbortedTxnEntry, Log, LogError, LogStartInfo, RetentionInfo};
use strom_protocol::batch::Batches;
use strom_types::{Offset, TimestampMs};

use crate::producers::{ProducerStates, TxnEvent};
use crate::progress::FollowerProgress;
use crate::snapshot::Snapshots;
use crate::transactions::Transactions;

/// Bytes read at a time when walking batch headers to rebuild producer state.
const SCAN_READ_BYTES: usize = 1 << 20;

pub(crate) struct Store {
    pub(crate) log: Log,
    pub(crate) producers: ProducerStates,
    /// The transactions open and unstable here, from the producers' batches (the aborted
    /// ones are in the log's index).
    pub(crate) transactions: Transactions,
    pub(crate) progress: FollowerProgress,
    /// The producer state snapshots on disk (see `snapshot`).
    snapshots: Snapshots,
}

impl Store {
    /// A store over a just-opened log, with producer state loaded from the newest snapshot
    /// (or rebuilt; see `snapshot`).
    pub(crate) fn new(log: Log) -> Result<Store, LogError> {
        let dir = log.dir().to_path_buf();
        let mut snapshots =
            Snapshots::open(&dir).map_err(|source| LogError::Io { path: dir, source })?;
        let (producers, transactions) = load_producers(&log, &mut snapshots)?;
        Ok(Store {
            log,
            producers,
            transactions,
            progress: FollowerProgress::default(),
            snapshots,
        })
    }

    /// Rebuilds producer state after the log lost its tail.
    fn rebuild_producers(&mut self) -> Result<(), LogError> {
        (self.producers, self.transactions) = load_producers(&self.log, &mut self.snapshots)?;
        Ok(())
    }

    /// Records batches a leader just wrote (`records`, with their offsets) in the producer
    /// state and the transactions, and indexes the transactions they aborted; `high_watermark`
    /// is the partition's now. `rolled_from`: the append rolled the log, and this was the base
    /// offset of the segment it ended (the state is snapshotted at the new one's first).
    /// An index entry that could not be written stays in memory (see
    /// `Log::index_aborted_txn`) and the error is returned.
    pub(crate) fn record_batches(
        &mut self,
        records: &[u8],
        high_watermark: Offset,
        rolled_from: Option<Offset>,
    ) -> Result<(), LogError> {
        if let Some(previous_base) = rolled_from {
            let base = self.log.active_segment_base_offset();
            snapshot_at_roll(&mut self.snapshots, base, &self.producers, previous_base);
        }
        let aborted = record_batches(
            &mut self.producers,
            &mut self.transactions,
            records,
            high_watermark,
        );
        let mut indexed = Ok(());
        for entry in aborted {
            indexed = indexed.and(self.log.index_aborted_txn(entry));
        }
        indexed
    }

    /// Appends batches fetched from the leader, recording each run written in the producer
    /// state (snapshotted where a run starts a new segment) and indexing the transactions it
    /// aborted before the log rolls on (see `Log::append_as_follower_indexing`).
    pub(crate) fn append_as_follower(
        &mut self,
        records: &mut [u8],
        high_watermark: Offset,
    ) -> Result<(), LogError> {
        let Store {
            log,
            producers,
            transactions,
            snapshots,
            ..
        } = self;
        let mut segment_base = log.active_segment_base_offset();
        log.append_as_follower_indexing(records, |run| {
            if let Some(base) = run.rolled_at {
                snapshot_at_roll(snapshots, base, producers, segment_base);
                segment_base = base;
            }
            record_batches(producers, transactions, run.records, high_watermark)
        })?;
        Ok(())
    }

    /// Writes the producer state as of the log end (see `snapshot` for when).
    pub(crate) fn snapshot_producers(&mut self, durable: bool) -> std::io::Result<()> {
        let offset = self.log.log_end_offset();
        let base = self.log.active_segment_base_offset();
        self.snapshots.write(offset, &self.producers, durable, base)
    }

    /// [`Store::snapshot_producers`] unless there is a snapshot at the log end already
    /// (nothing was appended since it was written or loaded).
    pub(crate) fn snapshot_producers_if_behind(&mut self, durable: bool) -> std::io::Result<()> {
        match self.snapshots.contains(self.log.log_end_offset()) {
            true => Ok(()),
            false => self.snapshot_producers(durable),
        }
    }

    /// Deletes whole old segments by time and size, and the snapshots below the new log start.
    pub(crate) fn apply_retention(&mut self, now: TimestampMs) -> Result<RetentionInfo, LogError> {
        let info = self.log.apply_retention(now)?;
        if info.segments_deleted > 0 {
            self.snapshots.delete_below(info.log_start_offset);
        }
        Ok(info)
    }

    /// Moves the log start up to `offset` (DeleteRecords, or a follower taking its leader's),
    /// deleting the segments and the snapshots below it.
    pub(crate) fn advance_log_start(&mut self, offset: Offset) -> Result<LogStartInfo, LogError> {
        let info = self.log.advance_log_start(offset)?;
        if info.moved {
            self.snapshots.delete_below(info.log_start_offset);
        }
        Ok(info)
    }

    /// Truncates the log to `offset`, then rebuilds producer state from the newest snapshot
    /// left at or below the new log end (those above it are deleted; see `snapshot`).
    pub(crate) fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        if offset >= self.log.log_end_offset() {
            return Ok(());
        }
        if offset < self.log.log_start_offset() {
            // The log restarts empty at `offset`: no snapshot describes that log.
            self.snapshots.delete_all();
        }
        self.log.truncate_to(offset)?;
        self.rebuild_producers()
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's log start).
    pub(crate) fn restart_at(&mut self, offset: Offset) -> Result<(), LogError> {
        self.snapshots.delete_all();
        self.log.truncate_fully_and_start_at(offset)?;
        self.producers = ProducerStates::default();
        self.transactions = Transactions::default();
        Ok(())
    }
}

/// Snapshots `producers` at `base`, where the log just rolled from the segment at
/// `previous_base`: a restart or a truncation then replays from there at most. A snapshot that
/// cannot be written is not an error: those replays start further back.
fn snapshot_at_roll(
    snapshots: &mut Snapshots,
    base: Offset,
    producers: &ProducerStates,
    previous_base: Offset,
) {
    if let Err(error) = snapshots.write(base, producers, false, previous_base) {
        tracing::warn!(%base, %error, "cannot write the producer state snapshot of a roll");
    }
}

/// Producer state for `log`: the newest snapshot within the log, brought up to the log end from
/// the batch headers after it; with none, rebuilt from the log start (an open transaction may
/// have begun anywhere). Also returns the transactions.
fn load_producers(
    log: &Log,
    snapshots: &mut Snapshots,
) -> Result<(ProducerStates, Transactions), LogError> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let (mut states, from) = match snapshots.load_newest(start, end) {
        Some((offset, states)) => (states, offset),
        None => (ProducerStates::default(), start),
    };
    let mut transactions = Transactions::of(&states);
    scan_producers(log, from, &mut states, &mut transactions)?;
    Ok((states, transactions))
}

/// Records into `states` and `transactions` every batch from `from` to the log end.
fn scan_producers(
    log: &Log,
    from: Offset,
    states: &mut ProducerStates,
    transactions: &mut Transactions,
) -> Result<(), LogError> {
    let end = log.log_end_offset();
    let mut offset = from;
    while offset < end {
        let read = log.read(offset, SCAN_READ_BYTES, end)?;
        let Some((last, _)) = Batches::new(&read.records).last() else {
            break;
        };
        // The high watermark is not known yet: every transaction ended in the scan counts as
        // unstable until the partition's high watermark passes its marker. The aborted ones
        // are in the log's index already (recovery checked it against the markers).
        record_batches(states, transactions, &read.records, Offset(0));
        offset = last.next_offset();
    }
    Ok(())
}

/// Records every batch of `records` in `states`, and what that did to transactions in
/// `transactions`; returns the index entries of the transactions aborted. A control batch
/// that is not a readable marker is skipped with a warning: the log's CRC vouched for it, so
/// it is a kind this broker does not know.
fn record_batches(
    states: &mut ProducerStates,
    transactions: &mut Transactions,
    records: &[u8],
    high_watermark: Offset,
) -> Vec<AbortedTxnEntry> {
    let mut aborted = Vec::new();
    for (header, range) in Batches::new(records) {
        let event = match header.is_control() {
            false => states.record(&header),
            // A marker whose record compaction removed, kept for its producer epoch: its
            // transaction had no batch left, so there is nothing to end.
            true if header.record_count == 0 => {
                states.record_epoch(&header);
                None
            }
            true => match strom_protocol::control::read_marker(&header, &records[range]) {
                Ok(marker) => Some(TxnEvent::Ended(states.record_marker(&header, marker))),
                Err(error) => {
                    tracing::warn!(offset = %header.base_offset, %error, "skipping a control batch that is not a transaction marker");
                    None
                }
            },
        };
        if let Some(event) = event {
            aborted.extend(transactions.apply(event, high_watermark));
        }
    }
    aborted
}
