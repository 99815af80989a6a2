//! Moving the log start offset forward on request (DeleteRecords on a leader, a leader's log
//! start on a follower), and keeping it across restarts.
//!
//! Retention deletes whole segments, so after it the log start is the first segment's base
//! offset and the files say it. A log start requested by DeleteRecords usually falls inside a
//! segment: the records below it stay on disk until their whole segment is below it, as in
//! Kafka (`deleteLogStartOffsetBreachedSegments`: a segment goes once the next one starts at or
//! below the log start; the active segment stays). So the offset is also kept in
//! `log-start-offset-checkpoint` in the partition directory (Kafka keeps one such file per log
//! directory; here it sits with the cleaner checkpoint, so it moves with the partition).
//!
//! The checkpoint is replaced durably before the log start moves and before any segment is
//! deleted, so a crash leaves the old start with all its segments or the new one. On open the
//! log start is the larger of the first segment's base offset and the checkpoint; a checkpoint
//! past the recovered log end (segment files removed by hand) restarts the log empty there, as
//! Kafka's `LogLoader` does.
//! The file itself is `checkpoint`'s.

use strom_types::Offset;

use crate::checkpoint::{read_log_start, write_log_start};
use crate::error::LogError;
use crate::files;
use crate::log::Log;

/// What moving the log start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStartInfo {
    /// The log start offset after the call.
    pub log_start_offset: Offset,
    /// Whether it moved.
    pub moved: bool,
    /// Whole segments deleted because they now lie below it.
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl Log {
    /// Moves the log start offset up to `offset` (nothing happens if it is not above the
    /// current one) and deletes the segments wholly below it; durable when it returns.
    /// `offset` past the log end is refused with [`LogError::OffsetOutOfRange`]; whether it may
    /// pass the high watermark is the caller's to check (the log does not know it).
    pub fn advance_log_start(&mut self, offset: Offset) -> Result<LogStartInfo, LogError> {
        if offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        if offset <= self.log_start_offset {
            return Ok(LogStartInfo {
                log_start_offset: self.log_start_offset,
                moved: false,
                segments_deleted: 0,
                bytes_deleted: 0,
            });
        }
        write_log_start(&self.dir, offset)?;
        tracing::info!(dir = %self.dir.display(), from = %self.log_start_offset, to = %offset, "advanced the log start offset");
        self.log_start_offset = offset;
        let (segments_deleted, bytes_deleted) = self.delete_segments_below_log_start()?;
        self.truncate_epochs_from_start()?;
        assert!(self.segments[0].base_offset <= self.log_start_offset);
        assert!(self.log_start_offset <= self.log_end_offset());
        Ok(LogStartInfo {
            log_start_offset: self.log_start_offset,
            moved: true,
            segments_deleted,
            bytes_deleted,
        })
    }

    /// Deletes the leading segments whose successor starts at or below the log start: every
    /// record in them is below it. The active segment has no successor and always stays.
    fn delete_segments_below_log_start(&mut self) -> Result<(usize, u64), LogError> {
        let count = self
            .segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= self.log_start_offset)
            .count();
        if count == 0 {
            return Ok((0, 0));
        }
        let mut bytes_deleted = 0;
        for segment in self.segments.drain(..count) {
            tracing::info!(
                path = %segment.path.display(),
                base_offset = %segment.base_offset,
                next_offset = %segment.next_offset,
                bytes = segment.size_bytes,
                "deleting a segment below the log start offset"
            );
            bytes_deleted += segment.size_bytes;
            segment.delete_files()?;
        }
        self.durability.deleted_before(self.segments[0].base_offset);
        files::sync_path(&self.dir)?;
        Ok((count, bytes_deleted))
    }

    /// On open, after the segments are recovered and the epochs loaded: takes the checkpointed
    /// log start if it is above the first segment (see the module docs).
    pub(crate) fn recover_log_start(&mut self) -> Result<(), LogError> {
        let Some(stored) = read_log_start(&self.dir)? else {
            return Ok(());
        };
        if stored <= self.log_start_offset {
            return Ok(());
        }
        if stored > self.log_end_offset() {
            tracing::warn!(dir = %self.dir.display(), log_start = %stored, log_end = %self.log_end_offset(), "the log ends below its checkpointed start (segment files deleted?); restarting it empty at the start");
            return self.truncate_fully_and_start_at(stored);
        }
        self.log_start_offset = stored;
        self.delete_segments_below_log_start()?;
        self.truncate_epochs_from_start()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checkpoint::LOG_START_FILE;
    use crate::config::LogConfig;
    use crate::test_support::batch;

    /// A log of `segments` inactive segments of one 4-record batch each, plus an empty active
    /// one: offsets 0..4*segments.
    fn log_with_segments(dir: &Path, segments: i64) -> Log {
        let config = LogConfig {
            segment_bytes: batch(0, 4, 0, 100).len() as u64,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir, config).unwrap();
        for segment in 0..segments {
            log.append(&mut batch(0, 4, 1_000 * segment, 100), None)
                .unwrap();
        }
        log.roll_active().unwrap();
        log
    }

    fn base_offsets(log: &Log) -> Vec<i64> {
        log.segments.iter().map(|s| s.base_offset.0).collect()
    }

    #[test]
    fn the_start_moves_inside_a_segment_and_only_whole_segments_below_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_segments(dir.path(), 3);
        assert_eq!(base_offsets(&log), [0, 4, 8, 12]);
        let info = log.advance_log_start(Offset(6)).unwrap();
        assert_eq!(
            (info.log_start_offset, info.moved, info.segments_deleted),
            (Offset(6), true, 1)
        );
        assert_eq!(base_offsets(&log), [4, 8, 12]);
        assert!(!dir.path().join("00000000000000000000.log").exists());
        // Reads below the start are out of range; at it they return its batch whole.
        assert!(matches!(
            log.read(Offset(5), usize::MAX, Offset(12)),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        let read = log.read(Offset(6), usize::MAX, Offset(12)).unwrap();
        assert_eq!(read.log_start_offset, Offset(6));
        assert!(!read.records.is_empty());
    }

    #[test]
    fn the_start_never_goes_back_nor_past_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_segments(dir.path(), 2);
        log.advance_log_start(Offset(5)).unwrap();
        let info = log.advance_log_start(Offset(3)).unwrap();
        assert_eq!((info.log_start_offset, info.moved), (Offset(5), false));
        assert!(matches!(
            log.advance_log_start(Offset(9)),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Up to the log end: every inactive segment goes, the empty active one stays.
        let info = log.advance_log_start(Offset(8)).unwrap();
        assert_eq!(
            (info.segments_deleted, log.log_start_offset()),
            (1, Offset(8))
        );
        assert_eq!(base_offsets(&log), [8]);
    }

    #[test]
    fn the_start_survives_a_reopen_and_a_lost_checkpoint_falls_back_to_the_first_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_segments(dir.path(), 3);
        log.advance_log_start(Offset(7)).unwrap();
        let config = log.config().clone();
        log.close().unwrap();
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(7), Offset(12))
        );
        drop(log);
        std::fs::write(dir.path().join(LOG_START_FILE), "garbage").unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(log.log_start_offset(), Offset(4));
    }

    #[test]
    fn a_checkpoint_past_the_log_end_restarts_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_segments(dir.path(), 1);
        let config = log.config().clone();
        log.close().unwrap();
        write_log_start(dir.path(), Offset(40)).unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(40), Offset(40))
        );
    }

    #[test]
    fn retention_and_a_full_truncation_keep_the_checkpoint_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_segments(dir.path(), 3);
        log.advance_log_start(Offset(6)).unwrap();
        log.truncate_fully_and_start_at(Offset(2)).unwrap();
        let config = log.config().clone();
        log.close().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(log.log_start_offset(), Offset(2), "restart lowers it");
    }
}
