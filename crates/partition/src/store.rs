//! What a partition keeps behind its store lock: the log, the idempotent producers' state
//! (kept with the log, as Kafka's `ProducerStateManager` is) and, on the leader, its followers'
//! progress. Everything here changes together: an append checks and records producer sequences
//! in the same critical section that writes the batches, so a retry can never slip between.

use strom_log::{Log, LogError};
use strom_protocol::batch::Batches;
use strom_types::Offset;

use crate::producers::{ProducerStates, TxnEvent};
use crate::progress::FollowerProgress;
use crate::snapshot;
use crate::transactions::Transactions;

/// Bytes read at a time when walking batch headers to rebuild producer state.
const SCAN_READ_BYTES: usize = 1 << 20;

pub(crate) struct Store {
    pub(crate) log: Log,
    pub(crate) producers: ProducerStates,
    /// The transactions open, unstable and aborted here, from the producers' batches.
    pub(crate) transactions: Transactions,
    pub(crate) progress: FollowerProgress,
    /// The log end offset the producer snapshot on disk was taken at, if there is one that
    /// matches the log: a shutdown with nothing appended since writes no new one.
    snapshot_offset: Option<Offset>,
}

impl Store {
    /// A store over a just-opened log, with producer state loaded from the snapshot (or
    /// rebuilt; see `snapshot`).
    pub(crate) fn new(log: Log) -> Result<Store, LogError> {
        let (producers, transactions, snapshot_offset) = load_producers(&log)?;
        Ok(Store {
            log,
            producers,
            transactions,
            progress: FollowerProgress::default(),
            snapshot_offset,
        })
    }

    /// Rebuilds producer state after the log lost its tail.
    pub(crate) fn rebuild_producers(&mut self) -> Result<(), LogError> {
        (self.producers, self.transactions, self.snapshot_offset) = load_producers(&self.log)?;
        Ok(())
    }

    /// Records batches just written (`records`, with their offsets) in the producer state and
    /// the transactions; `high_watermark` is the partition's now.
    pub(crate) fn record_batches(&mut self, records: &[u8], high_watermark: Offset) {
        record_batches(
            &mut self.producers,
            &mut self.transactions,
            records,
            high_watermark,
        );
    }

    /// Writes the producer state as of the log end (see `snapshot` for when).
    pub(crate) fn snapshot_producers(&mut self, durable: bool) -> std::io::Result<()> {
        let offset = self.log.log_end_offset();
        snapshot::write(self.log.dir(), offset, &self.producers, durable)?;
        self.snapshot_offset = Some(offset);
        Ok(())
    }

    /// [`Store::snapshot_producers`] unless the snapshot on disk was taken at the log end
    /// already (nothing was appended since it was written or loaded).
    pub(crate) fn snapshot_producers_if_behind(&mut self, durable: bool) -> std::io::Result<()> {
        match self.snapshot_offset == Some(self.log.log_end_offset()) {
            true => Ok(()),
            false => self.snapshot_producers(durable),
        }
    }

    /// Truncates the log to `offset`, deleting a producer snapshot that lies above it first,
    /// then rebuilds producer state from what is left.
    pub(crate) fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        if offset < self.log.log_end_offset() {
            delete_snapshot(&self.log);
            self.snapshot_offset = None;
        }
        self.log.truncate_to(offset)?;
        self.rebuild_producers()
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's log start).
    pub(crate) fn restart_at(&mut self, offset: Offset) -> Result<(), LogError> {
        delete_snapshot(&self.log);
        self.snapshot_offset = None;
        self.log.truncate_fully_and_start_at(offset)?;
        self.producers = ProducerStates::default();
        self.transactions = Transactions::default();
        Ok(())
    }
}

fn delete_snapshot(log: &Log) {
    if let Err(error) = snapshot::delete(log.dir()) {
        // A stale snapshot left behind is caught on open only if its offset is past the log
        // end; make the failure loud, it means the directory is not writable.
        tracing::error!(dir = %log.dir().display(), %error, "cannot delete the producer state snapshot");
    }
}

/// Producer state for `log`: the snapshot if it lies within the log, brought up to the log end
/// from the batch headers after it; otherwise rebuilt from the active segment's headers.
///
/// A snapshot that is not used is deleted (as Kafka's `ProducerStateManager` deletes snapshots
/// out of range or unreadable): one beyond the log end (the log lost a torn tail on open)
/// describes batches that are gone, and once appends carry the log end past its offset again
/// it would look usable to the next open after a crash, which would then answer retries of the
/// lost batches as duplicates at offsets holding other records.
///
/// Also returns the transactions, and the offset of the snapshot used, if one was.
fn load_producers(log: &Log) -> Result<(ProducerStates, Transactions, Option<Offset>), LogError> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let (mut states, used) = match snapshot::read(log.dir()) {
        Ok(Some((offset, states))) if offset >= start && offset <= end => (states, Some(offset)),
        Ok(Some((offset, _))) => {
            tracing::info!(dir = %log.dir().display(), %offset, %start, %end, "deleting the producer state snapshot, outside the log; rebuilding");
            delete_snapshot(log);
            (ProducerStates::default(), None)
        }
        Ok(None) => (ProducerStates::default(), None),
        Err(error) => {
            tracing::warn!(dir = %log.dir().display(), %error, "ignoring the producer state snapshot; rebuilding");
            delete_snapshot(log);
            (ProducerStates::default(), None)
        }
    };
    let from = used.unwrap_or_else(|| log.active_segment_base_offset());
    let mut transactions = Transactions::of(&states);
    scan_producers(log, from.max(start), &mut states, &mut transactions)?;
    Ok((states, transactions, used))
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
        // unstable until the partition's high watermark passes its marker.
        record_batches(states, transactions, &read.records, Offset(0));
        offset = last.next_offset();
    }
    Ok(())
}

/// Records every batch of `records` in `states`, and what that did to transactions in
/// `transactions`. A control batch that is not a readable marker is skipped with a warning:
/// the log's CRC vouched for it, so it is a kind this broker does not know.
fn record_batches(
    states: &mut ProducerStates,
    transactions: &mut Transactions,
    records: &[u8],
    high_watermark: Offset,
) {
    for (header, range) in Batches::new(records) {
        let event = match header.is_control() {
            false => states.record(&header),
            true => match strom_protocol::control::read_marker(&header, &records[range]) {
                Ok(marker) => Some(TxnEvent::Ended(states.record_marker(&header, marker))),
                Err(error) => {
                    tracing::warn!(offset = %header.base_offset, %error, "skipping a control batch that is not a transaction marker");
                    None
                }
            },
        };
        if let Some(event) = event {
            transactions.apply(event, high_watermark);
        }
    }
}
