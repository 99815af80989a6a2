//! The [`Log`]'s leader epoch cache: queries for replication, and keeping the cache and its
//! checkpoint in step with appends, truncation, retention and recovery.
//!
//! The invariant: every entry starts at the base offset of a stored batch carrying that epoch
//! (or at the log start, after retention), below the log end. Appends replace the checkpoint
//! *before* the batches are written but without an fsync (Kafka's KAFKA-15046): the first
//! record of a new epoch would otherwise cost two fsyncs, and the first record to each of
//! 20,000 new partitions 40,000. A crash may therefore lose entries for batches of the active
//! segment, so recovery re-reads the active segment's batch headers and assigns their epochs;
//! every older segment's epochs are durable because the checkpoint is fsynced before a roll.
//! A crash can also leave an entry past the log end; recovery removes entries at or past the
//! log end and below the log start. Truncation and retention write the checkpoint durably. Full
//! truncation deletes the checkpoint first, so a crash part-way makes recovery rebuild the
//! cache from the batches that are left.

use std::ops::ControlFlow;

use strom_types::Offset;

use crate::epoch_cache::{EpochCache, NO_PARTITION_LEADER_EPOCH};
use crate::epoch_checkpoint;
use crate::error::LogError;
use crate::log::Log;
use crate::scan::{self, Check, WalkStart};
use crate::segment::Segment;

impl Log {
    /// The epoch of the newest leader that appended to this log, if any batch carried one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The (leader epoch, start offset) entries, ascending in both; for tests and tooling.
    pub fn epoch_entries(&self) -> &[(i32, Offset)] {
        self.epochs.entries()
    }

    /// The answer to OffsetForLeaderEpoch for `epoch`, exactly as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` gives it: the largest epoch at or below `epoch` and
    /// the offset it ended at (the log end for the latest epoch; for an epoch below the first
    /// entry, `epoch` itself and the first entry's start offset). `None` stands for Kafka's
    /// (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`): `epoch` is -1 or above the latest epoch,
    /// or no batch carried an epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, Offset)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Records the epochs of batches about to be written, persisting the cache if it changed.
    /// Called before the write (see the module docs); batches without an epoch are skipped.
    pub(crate) fn assign_epochs(
        &mut self,
        starts: impl IntoIterator<Item = (i32, Offset)>,
    ) -> Result<(), LogError> {
        let before = self.epochs.clone();
        let mut changed = false;
        for (epoch, start_offset) in starts {
            if epoch != NO_PARTITION_LEADER_EPOCH {
                changed |= self.epochs.assign(epoch, start_offset);
            }
        }
        if !changed {
            return Ok(());
        }
        // A checkpoint that cannot be written (a full disk) fails the append, and the cache goes
        // back to what the checkpoint still says: kept, the new entry would not be written again
        // by the next append of the same epoch, and the checkpoint would lack it for good.
        self.persist_epochs_unsynced()
            .inspect_err(|_| self.epochs = before)
    }

    /// Before a roll: makes the checkpoint durable if an append replaced it without an fsync,
    /// since recovery re-reads only the active segment's epochs.
    pub(crate) fn sync_epochs_before_roll(&mut self) -> Result<(), LogError> {
        match self.epochs_unsynced {
            true => self.persist_epochs(),
            false => Ok(()),
        }
    }

    /// After a failed write: drops entries for batches that did not make it into the log. The
    /// write's error is what the caller reports; if the checkpoint cannot be rewritten either,
    /// recovery drops those entries on the next open.
    pub(crate) fn forget_epochs_past_log_end(&mut self) {
        if self.epochs.truncate_from_end(self.log_end_offset()) {
            if let Err(error) = self.persist_epochs_unsynced() {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot rewrite the leader epoch checkpoint after a failed append");
            }
        }
    }

    /// Removes entries at or past the (new) log end, after truncation.
    pub(crate) fn truncate_epochs_from_end(&mut self) -> Result<(), LogError> {
        match self.epochs.truncate_from_end(self.log_end_offset()) {
            true => self.persist_epochs(),
            false => Ok(()),
        }
    }

    /// Moves the cache's start up to the (new) log start, after retention.
    pub(crate) fn truncate_epochs_from_start(&mut self) -> Result<(), LogError> {
        match self.epochs.truncate_from_start(self.log_start_offset) {
            true => self.persist_epochs(),
            false => Ok(()),
        }
    }

    /// Empties the cache for a full truncation: the checkpoint goes first, so a crash before the
    /// log is emptied leads to a rebuild rather than to stale entries.
    pub(crate) fn forget_all_epochs(&mut self) -> Result<(), LogError> {
        epoch_checkpoint::remove(&self.dir)?;
        self.epochs.clear();
        Ok(())
    }

    /// Replaces the checkpoint durably.
    pub(crate) fn persist_epochs(&mut self) -> Result<(), LogError> {
        tracing::debug!(dir = %self.dir.display(), entries = ?self.epochs.entries(), "writing the leader epoch checkpoint");
        epoch_checkpoint::write(&self.dir, self.epochs.entries())?;
        self.epochs_unsynced = false;
        Ok(())
    }

    /// Replaces the checkpoint, leaving it to the operating system to write out (see the
    /// module docs).
    fn persist_epochs_unsynced(&mut self) -> Result<(), LogError> {
        tracing::debug!(dir = %self.dir.display(), entries = ?self.epochs.entries(), "writing the leader epoch checkpoint (no fsync)");
        epoch_checkpoint::write_unsynced(&self.dir, self.epochs.entries())?;
        self.epochs_unsynced = true;
        Ok(())
    }

    /// Loads the cache on open: from the checkpoint plus the epochs of the active segment's
    /// batches (an append may have replaced the checkpoint without an fsync), or rebuilt from
    /// the batch headers of every segment when it is missing or unreadable; then cut to the
    /// recovered log's bounds and written back (without an fsync) if anything changed.
    pub(crate) fn recover_epochs(&mut self) -> Result<(), LogError> {
        let stored = epoch_checkpoint::read(&self.dir)?;
        let mut cache = match &stored {
            Some(entries) => {
                let mut cache = EpochCache::from_entries(entries.iter().copied());
                // Entries past the log end go first: an epoch at or below the latest entry
                // would not be assigned.
                cache.truncate_from_end(self.log_end_offset());
                let active = self.segments.last().expect("a log has an active segment");
                assign_segment_epochs(active, &mut cache, Epochs::NewerOnly)?;
                cache
            }
            None => self.rebuild_epochs()?,
        };
        cache.truncate_from_end(self.log_end_offset());
        cache.truncate_from_start(self.log_start_offset);
        // No checkpoint and no epochs (a new log) is already what the files say.
        let changed = match &stored {
            Some(entries) => entries.as_slice() != cache.entries(),
            None => !cache.entries().is_empty(),
        };
        self.epochs = cache;
        match changed {
            true => self.persist_epochs_unsynced(),
            false => Ok(()),
        }
    }

    fn rebuild_epochs(&self) -> Result<EpochCache, LogError> {
        let mut cache = EpochCache::default();
        for segment in &self.segments {
            assign_segment_epochs(segment, &mut cache, Epochs::All)?;
        }
        if cache.entries().is_empty() {
            // A new or epoch-less log: nothing worth reporting.
            tracing::debug!(dir = %self.dir.display(), "no leader epochs in the batches");
        } else {
            tracing::info!(dir = %self.dir.display(), entries = ?cache.entries(), "rebuilt the leader epoch cache from the batches");
        }
        Ok(cache)
    }
}

/// Which batches' epochs [`assign_segment_epochs`] records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Epochs {
    /// Every batch's: rebuilding the cache from nothing.
    All,
    /// Only epochs above the cache's latest: completing a checkpoint that may lack the newest
    /// entries. Older epochs are already in it, and assigning one would drop the newer entries.
    NewerOnly,
}

/// Assigns the epochs of the batches in `segment` (headers only), in offset order.
fn assign_segment_epochs(
    segment: &Segment,
    cache: &mut EpochCache,
    which: Epochs,
) -> Result<(), LogError> {
    let start = WalkStart {
        position: 0,
        next_offset: segment.base_offset,
    };
    let file = segment.file.get()?;
    let end = scan::walk(
        segment.segment_file(&file),
        start,
        Check::Headers,
        |header, _| {
            let epoch = header.partition_leader_epoch;
            let wanted = match which {
                Epochs::All => epoch >= 0,
                Epochs::NewerOnly => {
                    cache.latest_epoch().is_none_or(|latest| epoch > latest) && epoch >= 0
                }
            };
            if wanted {
                cache.assign(epoch, header.base_offset);
            }
            ControlFlow::Continue(())
        },
    )?;
    match end.damage {
        Some(damage) => Err(LogError::corrupt(
            &segment.path,
            format!(
                "at byte {} while reading leader epochs: {damage}",
                end.position
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use strom_protocol::batch::{self, Batches};
    use strom_types::TimestampMs;

    use super::*;
    use crate::config::LogConfig;
    use crate::epoch_checkpoint::EPOCH_CHECKPOINT_FILE;
    use crate::test_support::{batch, batch_with_epoch};

    fn entries(log: &Log) -> Vec<(i32, i64)> {
        log.epoch_entries().iter().map(|&(e, o)| (e, o.0)).collect()
    }

    fn checkpoint_text(log: &Log) -> String {
        std::fs::read_to_string(log.dir().join(EPOCH_CHECKPOINT_FILE)).unwrap()
    }

    /// The (base offset, partition leader epoch) of every stored batch, CRCs checked.
    fn stored_epochs(log: &Log) -> Vec<(i64, i32)> {
        let read = log
            .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
            .unwrap();
        Batches::new(&read.records)
            .map(|(header, range)| {
                batch::validate(&read.records[range]).expect("stored batches keep their CRC");
                (header.base_offset.0, header.partition_leader_epoch)
            })
            .collect()
    }

    /// Three 3-record batches led by epochs 1, 1, 4 then one plain append: offsets 0, 3, 6, 9.
    fn log_with_epochs(dir: &std::path::Path, config: LogConfig) -> Log {
        let mut log = Log::open(dir, config).unwrap();
        for epoch in [1, 1, 4] {
            log.append_with_epoch(&mut batch(0, 3, 1_000, 100), None, epoch)
                .unwrap();
        }
        log.append(&mut batch(0, 3, 1_000, 100), None).unwrap();
        log
    }

    #[test]
    fn append_with_epoch_stamps_every_batch_and_records_where_each_epoch_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.latest_epoch(), None);
        assert!(
            !log.dir().join(EPOCH_CHECKPOINT_FILE).exists(),
            "a new log has no epochs to write down"
        );
        let mut two = batch(0, 2, 1_000, 10);
        two.extend(batch(0, 2, 1_002, 10));
        let info = log
            .append_with_epoch(&mut two, Some(TimestampMs(5_000)), 3)
            .unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(3)));
        log.append_with_epoch(&mut batch(0, 1, 1_004, 10), None, 3)
            .unwrap();
        log.append_with_epoch(&mut batch(0, 1, 1_005, 10), None, 5)
            .unwrap();
        assert_eq!(stored_epochs(&log), [(0, 3), (2, 3), (4, 3), (5, 5)]);
        assert_eq!(entries(&log), [(3, 0), (5, 5)]);
        assert_eq!(log.latest_epoch(), Some(5));
        assert_eq!(checkpoint_text(&log), "0\n2\n3 0\n5 5\n");
    }

    #[test]
    fn plain_appends_store_no_epoch_whatever_the_producer_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch_with_epoch(0, 2, 1_000, 10, 7), None)
            .unwrap();
        log.append_with_epoch(&mut batch(0, 1, 1_000, 10), None, 2)
            .unwrap();
        log.append(&mut batch_with_epoch(0, 1, 1_000, 10, 9), None)
            .unwrap();
        assert_eq!(
            stored_epochs(&log),
            [
                (0, NO_PARTITION_LEADER_EPOCH),
                (2, 2),
                (3, NO_PARTITION_LEADER_EPOCH)
            ]
        );
        assert_eq!(entries(&log), [(2, 2)]);
        assert_eq!(log.end_offset_for_epoch(2), Some((2, Offset(4))));
    }

    #[test]
    fn an_append_with_an_older_epoch_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_epochs(dir.path(), LogConfig::default());
        let size_bytes = log.size_bytes();
        let error = log
            .append_with_epoch(&mut batch(0, 1, 1_000, 10), None, 3)
            .unwrap_err();
        assert!(
            matches!(
                error,
                LogError::LeaderEpochBehind {
                    epoch: 3,
                    latest_epoch: 4,
                    base_offset: Offset(12)
                }
            ),
            "{error}"
        );
        assert!(!error.is_fatal());
        assert_eq!(
            (log.log_end_offset(), log.size_bytes()),
            (Offset(12), size_bytes)
        );
        assert_eq!(entries(&log), [(1, 0), (4, 6)]);
    }

    #[test]
    #[should_panic(expected = "a leader appends with a real epoch")]
    fn appending_with_a_negative_epoch_is_a_caller_bug() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let _ = log.append_with_epoch(&mut batch(0, 1, 1_000, 10), None, -1);
    }

    #[test]
    fn end_offsets_for_epochs_answer_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_epochs(dir.path(), LogConfig::default());
        log.append_with_epoch(&mut batch(0, 2, 1_000, 10), None, 6)
            .unwrap();
        // Entries (1, 0), (4, 6), (6, 12); the log end is 14.
        assert_eq!(log.end_offset_for_epoch(6), Some((6, Offset(14))));
        assert_eq!(log.end_offset_for_epoch(5), Some((4, Offset(12))));
        assert_eq!(log.end_offset_for_epoch(4), Some((4, Offset(12))));
        assert_eq!(log.end_offset_for_epoch(2), Some((1, Offset(6))));
        assert_eq!(log.end_offset_for_epoch(0), Some((0, Offset(0))));
        assert_eq!(log.end_offset_for_epoch(7), None);
        assert_eq!(log.end_offset_for_epoch(-1), None);
    }

    #[test]
    fn truncation_drops_the_epochs_it_removes_and_full_truncation_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_epochs(dir.path(), LogConfig::default());
        log.truncate_to(Offset(7)).unwrap();
        assert_eq!(
            entries(&log),
            [(1, 0)],
            "the batch holding 7 started epoch 4"
        );
        assert_eq!(checkpoint_text(&log), "0\n1\n1 0\n");
        log.append_with_epoch(&mut batch(0, 1, 1_000, 10), None, 5)
            .unwrap();
        assert_eq!(entries(&log), [(1, 0), (5, 6)]);
        log.truncate_fully_and_start_at(Offset(50)).unwrap();
        assert_eq!(
            (entries(&log), checkpoint_text(&log)),
            (vec![], "0\n0\n".into())
        );
        log.append_with_epoch(&mut batch(0, 1, 1_000, 10), None, 2)
            .unwrap();
        assert_eq!(entries(&log), [(2, 50)], "a fresh start accepts any epoch");
        log.truncate_to(Offset(10)).unwrap();
        assert_eq!(
            (log.log_start_offset(), entries(&log)),
            (Offset(10), vec![])
        );
    }

    #[test]
    fn retention_moves_the_first_epoch_up_to_the_new_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let one_batch = batch(0, 3, 1_000, 100).len() as u64;
        let config = LogConfig {
            segment_bytes: one_batch,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let mut log = log_with_epochs(dir.path(), config.clone());
        assert_eq!(log.segment_count(), 4);
        log.set_config(LogConfig {
            retention_bytes: (2 * one_batch) as i64,
            ..config
        });
        let info = log.apply_retention(TimestampMs(0)).unwrap();
        assert_eq!(info.log_start_offset, Offset(6));
        assert_eq!(entries(&log), [(4, 6)]);
        let other_dir = tempfile::tempdir().unwrap();
        let mut log = log_with_epochs(other_dir.path(), LogConfig::default());
        log.apply_retention(TimestampMs(0)).unwrap();
        assert_eq!(
            entries(&log),
            [(1, 0), (4, 6)],
            "nothing deleted, nothing moved"
        );
        // A log start inside an epoch (a future DeleteRecords) moves that epoch's start up.
        log.log_start_offset = Offset(4);
        log.truncate_epochs_from_start().unwrap();
        assert_eq!(entries(&log), [(1, 4), (4, 6)]);
        assert_eq!(checkpoint_text(&log), "0\n2\n1 4\n4 6\n");
    }

    #[test]
    fn open_rebuilds_a_missing_or_unreadable_checkpoint_from_the_batches() {
        let dir = tempfile::tempdir().unwrap();
        let one_batch = batch(0, 3, 1_000, 100).len() as u64;
        let config = LogConfig {
            segment_bytes: 2 * one_batch,
            ..LogConfig::default()
        };
        log_with_epochs(dir.path(), config.clone()).close().unwrap();
        let checkpoint = dir.path().join(EPOCH_CHECKPOINT_FILE);
        for damage in [None, Some("0\n2\n1 0\n"), Some("garbage")] {
            match damage {
                None => std::fs::remove_file(&checkpoint).unwrap(),
                Some(text) => std::fs::write(&checkpoint, text).unwrap(),
            }
            let log = Log::open(dir.path(), config.clone()).unwrap();
            assert_eq!(log.segment_count(), 2);
            assert_eq!(entries(&log), [(1, 0), (4, 6)], "{damage:?}");
            assert_eq!(checkpoint_text(&log), "0\n2\n1 0\n4 6\n");
        }
    }

    #[test]
    fn open_drops_entries_past_the_recovered_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_epochs(dir.path(), LogConfig::default());
        let active = log.active().path.clone();
        let size_bytes = log.size_bytes();
        drop(log);
        // A crash after the checkpoint named a new epoch but before its batch was written whole.
        let checkpoint = dir.path().join(EPOCH_CHECKPOINT_FILE);
        std::fs::write(&checkpoint, "0\n3\n1 0\n4 6\n9 12\n").unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap();
        file.set_len(size_bytes - 5).unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), Offset(9));
        assert_eq!(entries(&log), [(1, 0), (4, 6)]);
        assert_eq!(checkpoint_text(&log), "0\n2\n1 0\n4 6\n");
        // A torn batch that started an epoch takes the epoch with it.
        let mut log = log;
        log.append_with_epoch(&mut batch(0, 3, 1_000, 100), None, 5)
            .unwrap();
        let size_bytes = log.size_bytes();
        drop(log);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap();
        file.set_len(size_bytes - 5).unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            (log.log_end_offset(), entries(&log)),
            (Offset(9), vec![(1, 0), (4, 6)])
        );
    }

    #[test]
    fn open_restores_epochs_of_the_active_segment_that_an_unsynced_checkpoint_lost() {
        let dir = tempfile::tempdir().unwrap();
        let one_batch = batch(0, 3, 1_000, 100).len() as u64;
        let config = LogConfig {
            segment_bytes: 2 * one_batch,
            ..LogConfig::default()
        };
        // Epoch 1 fills the first segment; epoch 4 starts the second, so the roll in between
        // made the checkpoint "1 0" durable and the append of epoch 4 replaced it unsynced.
        let mut log = log_with_epochs(dir.path(), config.clone());
        assert_eq!(log.segment_count(), 2);
        assert!(log.epochs_unsynced);
        drop(log);
        // A power cut kept the checkpoint as it was at the roll.
        let checkpoint = dir.path().join(EPOCH_CHECKPOINT_FILE);
        std::fs::write(&checkpoint, "0\n1\n1 0\n").unwrap();
        log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(entries(&log), [(1, 0), (4, 6)]);
        assert_eq!(checkpoint_text(&log), "0\n2\n1 0\n4 6\n");
        // An intact checkpoint is left alone: the active segment's older epochs change nothing.
        drop(log);
        log = Log::open(dir.path(), config).unwrap();
        assert!(!log.epochs_unsynced, "nothing to rewrite");
        assert_eq!(entries(&log), [(1, 0), (4, 6)]);
        // A roll makes an unsynced checkpoint durable first.
        log.append_with_epoch(&mut batch(0, 3, 1_000, 100), None, 6)
            .unwrap();
        assert!(log.epochs_unsynced);
        assert!(log.roll_active().unwrap());
        assert!(!log.epochs_unsynced);
        assert_eq!(checkpoint_text(&log), "0\n3\n1 0\n4 6\n6 12\n");
    }
}
