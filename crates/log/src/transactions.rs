//! The [`Log`]'s aborted transactions: each segment's `.txnindex` (see `txn_index`) written
//! as ABORT markers are stored, and read back for read_committed fetches.
//!
//! The log does not know producers: its owner (the partition, which keeps producer state)
//! works out each aborted transaction's first offset and the last stable offset when the
//! marker is written, and hands the entry over with [`Log::index_aborted_txn`] right after
//! appending the marker (a leader) or from the callback of
//! [`Log::append_as_follower_indexing`] (a follower, run by run, before the log rolls on).
//! Either way the entry goes into the active segment, the one holding its marker.
//!
//! Durability follows the marker's: the entry is written at once (no fsync), the next sync
//! handle covers the file, and a roll fsyncs it first, so an inactive segment's index is as
//! complete as its log even after a power failure (recovery re-reads only the active segment;
//! see `txn_recovery`). A write that fails leaves the entry in memory, where reads see it, and
//! [`Log::flush_txn_index`] retries it; a sync handle never claims durability past it.
//!
//! Truncation drops the entries of the markers it removes, retention and `DeleteRecords`-style
//! deletion drop a segment's file with the segment, and compaction writes the entries of the
//! markers it keeps into the cleaned segment's index.

use strom_types::Offset;

use crate::error::LogError;
use crate::files;
use crate::log::Log;
use crate::sync::SyncTarget;
use crate::txn_index::AbortedTxnEntry;

impl Log {
    /// Indexes an aborted transaction whose ABORT marker (at `entry.last_offset`) was just
    /// written to the active segment. If the file write fails the entry is still listed by
    /// [`Log::aborted_txns`] and written by the next flush or append; the error is returned
    /// so the caller can report the marker's write as failed.
    pub fn index_aborted_txn(&mut self, entry: AbortedTxnEntry) -> Result<(), LogError> {
        let active = self
            .segments
            .last_mut()
            .expect("a log has an active segment");
        assert!(
            entry.last_offset >= active.base_offset && entry.last_offset < active.next_offset,
            "the ABORT marker at {} is not in the active segment {}..{}",
            entry.last_offset,
            active.base_offset,
            active.next_offset
        );
        let created = active.txn_index.is_empty();
        let written = active.txn_index.append(entry);
        let path = active.txn_index.path().to_path_buf();
        self.durability
            .txn_index_written(path, entry.last_offset, created);
        tracing::debug!(dir = %self.dir.display(), ?entry, "indexed an aborted transaction");
        written
    }

    /// The aborted transactions with records in `from..to`, as Kafka's
    /// `collectAbortedTransactions` finds them: from the segment holding `from` on, every
    /// entry whose marker is at or after `from` and whose transaction began before `to`,
    /// stopping at an entry whose last stable offset reaches `to`. Ordered by marker offset.
    /// Inactive segments' entries are read from their files (only those with aborts have one).
    pub fn aborted_txns(&self, from: Offset, to: Offset) -> Result<Vec<AbortedTxnEntry>, LogError> {
        let mut found = Vec::new();
        if from >= to {
            return Ok(found);
        }
        let first = self.segment_holding(from.max(self.segments[0].base_offset));
        for segment in &self.segments[first..] {
            if segment.txn_index.collect(from, to, &mut found)? {
                break;
            }
        }
        Ok(found)
    }

    /// Writes index entries a failed write left in memory only. The partition calls it before
    /// every sync, so what a sync makes durable includes them.
    pub fn flush_txn_index(&mut self) -> Result<(), LogError> {
        self.segments
            .last_mut()
            .expect("a log has an active segment")
            .txn_index
            .write_pending()
    }

    /// The offset a sync handle may not reach or pass: the marker of the oldest index entry
    /// still waiting to be written, whose durability a sync could not promise.
    pub(crate) fn txn_index_sync_bound(&self) -> Option<Offset> {
        self.active().txn_index.first_pending_marker()
    }

    /// Before a roll: writes and fsyncs the active segment's `.txnindex` (and the directory,
    /// which may have just gained it) if entries were added since the last sync, so a segment
    /// never goes inactive with an index less durable than its markers.
    pub(crate) fn sync_txn_index_before_roll(&mut self) -> Result<(), LogError> {
        self.flush_txn_index()?;
        let Some(path) = self.durability.txn_index_unsynced() else {
            return Ok(());
        };
        SyncTarget::Path(path.to_path_buf()).sync()?;
        files::sync_path(&self.dir)?;
        self.durability.txn_index_synced();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use strom_protocol::control::{encode_marker, Marker, MarkerType};
    use strom_types::TimestampMs;

    use super::*;
    use crate::config::LogConfig;
    use crate::test_support::batch;

    fn abort_marker(producer_id: i64) -> Vec<u8> {
        let marker = Marker {
            kind: MarkerType::Abort,
            coordinator_epoch: 0,
        };
        encode_marker(producer_id, 0, marker, TimestampMs(1_000))
    }

    fn entry(producer_id: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    /// Appends an ABORT marker for `producer_id` and indexes it with first offset `first` and
    /// last stable offset `lso` (the marker's offset + 1 if none).
    fn abort(log: &mut Log, producer_id: i64, first: i64, lso: Option<i64>) -> AbortedTxnEntry {
        let marker = log.append(&mut abort_marker(producer_id), None).unwrap();
        let lso = lso.unwrap_or(marker.base_offset.0 + 1);
        let entry = entry(producer_id, first, marker.base_offset.0, lso);
        log.index_aborted_txn(entry).unwrap();
        entry
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 400,
            ..LogConfig::default()
        }
    }

    #[test]
    fn entries_follow_their_markers_into_segments_and_are_found_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small()).unwrap();
        let mut entries = Vec::new();
        for producer in 0..6 {
            let first = log.append(&mut batch(0, 2, 1_000, 100), None).unwrap();
            entries.push(abort(&mut log, producer, first.base_offset.0, None));
        }
        assert!(log.segment_count() > 2, "{} segments", log.segment_count());
        for segment in &log.segments {
            let entries = segment.txn_index.entries().unwrap();
            let mut markers = entries.iter().map(|e| e.last_offset);
            assert!(markers.all(|m| m >= segment.base_offset && m < segment.next_offset));
            assert_eq!(
                segment.txn_index.path().exists(),
                !segment.txn_index.is_empty()
            );
        }
        assert_eq!(
            log.aborted_txns(Offset(0), log.log_end_offset()).unwrap(),
            entries
        );
        assert_eq!(
            log.aborted_txns(Offset(3), Offset(4)).unwrap(),
            [entries[1]]
        );
        assert_eq!(
            log.aborted_txns(Offset(2), Offset(3)).unwrap(),
            [entries[0]]
        );
        assert!(log.aborted_txns(Offset(4), Offset(4)).unwrap().is_empty());
        // The search stops at the first entry whose last stable offset reaches its end...
        assert_eq!(
            log.aborted_txns(Offset(0), Offset(1)).unwrap(),
            [entries[0]]
        );
        // ...which an entry written while an older transaction was open does not.
        let end = log.log_end_offset().0;
        log.append(&mut batch(0, 1, 1_000, 10), None).unwrap(); // the long one's, at end
        log.append(&mut batch(0, 1, 1_000, 10), None).unwrap(); // the short one's
        let short = abort(&mut log, 7, end + 1, Some(end));
        let long = abort(&mut log, 8, end, None);
        assert_eq!(
            log.aborted_txns(Offset(end), Offset(end + 1)).unwrap(),
            [long]
        );
        assert_eq!(
            log.aborted_txns(Offset(end + 1), Offset(end + 2)).unwrap(),
            [short, long]
        );
    }

    #[test]
    fn an_entry_is_synced_before_its_segment_rolls_and_covered_by_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small()).unwrap();
        log.mark_durable(log.sync_handle().sync().unwrap());
        abort(&mut log, 1, 0, None);
        assert!(log.durability.txn_index_unsynced().is_some());
        let handle = log.sync_handle();
        log.mark_durable(handle.sync().unwrap());
        assert!(log.durability.txn_index_unsynced().is_none());
        abort(&mut log, 2, 1, None);
        assert!(log.durability.txn_index_unsynced().is_some());
        log.roll_active().unwrap();
        assert!(
            log.durability.txn_index_unsynced().is_none(),
            "synced by the roll"
        );
    }

    #[test]
    fn a_sync_handle_stops_below_an_entry_not_yet_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small()).unwrap();
        log.append(&mut batch(0, 2, 1_000, 10), None).unwrap();
        let path = log.active().txn_index.path().to_path_buf();
        // A directory where the file should go makes the write fail.
        std::fs::create_dir(&path).unwrap();
        let marker = log.append(&mut abort_marker(1), None).unwrap();
        let entry = entry(1, 0, marker.base_offset.0, 0);
        assert!(log.index_aborted_txn(entry).is_err());
        assert_eq!(
            log.aborted_txns(Offset(0), Offset(3)).unwrap(),
            [entry],
            "listed all the same"
        );
        let handle = log.sync_handle();
        assert_eq!(handle.offset(), Offset(2), "not past the marker");
        std::fs::remove_dir(&path).unwrap();
        log.flush_txn_index().unwrap();
        assert_eq!(log.sync_handle().offset(), Offset(3));
    }
}
