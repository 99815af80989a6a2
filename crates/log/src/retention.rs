//! Deleting the oldest segments once they are past `retention.ms` or the log is past
//! `retention.bytes`. Only whole inactive segments are deleted, oldest first, so the log stays a
//! dense range of offsets and the log start offset only moves forward.

use strom_types::{Offset, TimestampMs};

use crate::error::LogError;
use crate::files;
use crate::log::Log;

/// What a retention pass deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionInfo {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    /// The log start offset after the pass.
    pub log_start_offset: Offset,
}

impl Log {
    /// Deletes the inactive segments past retention (by time: the segment's newest record is
    /// older than `now - retention_ms`; by size: while the log minus its oldest segment is still
    /// at least `retention_bytes`) and advances the log start offset past them.
    pub fn apply_retention(&mut self, now: TimestampMs) -> Result<RetentionInfo, LogError> {
        let count = self.expired_by_time(now)?.max(self.expired_by_size());
        let mut bytes_deleted = 0;
        for segment in self.segments.drain(..count) {
            tracing::info!(
                path = %segment.path.display(),
                base_offset = %segment.base_offset,
                next_offset = %segment.next_offset,
                bytes = segment.size_bytes,
                "deleting a segment past retention"
            );
            bytes_deleted += segment.size_bytes;
            segment.delete_files()?;
        }
        if count > 0 {
            self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
            self.durability.deleted_before(self.log_start_offset);
            files::sync_path(&self.dir)?;
            self.truncate_epochs_from_start()?;
        }
        Ok(RetentionInfo {
            segments_deleted: count,
            bytes_deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    /// How many leading inactive segments hold only records older than `retention.ms`.
    fn expired_by_time(&self, now: TimestampMs) -> Result<usize, LogError> {
        if self.config.retention_ms < 0 {
            return Ok(0);
        }
        let cutoff = now.0.saturating_sub(self.config.retention_ms);
        let inactive = &self.segments[..self.segments.len() - 1];
        let mut count = 0;
        for segment in inactive {
            if segment.largest_timestamp()?.0 >= cutoff {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// How many leading inactive segments can go while the rest is still `retention.bytes` or more.
    fn expired_by_size(&self) -> usize {
        let Ok(retention_bytes) = u64::try_from(self.config.retention_bytes) else {
            return 0;
        };
        let mut size_bytes = self.size_bytes();
        let inactive = &self.segments[..self.segments.len() - 1];
        inactive
            .iter()
            .take_while(|segment| {
                let fits = size_bytes - segment.size_bytes >= retention_bytes;
                size_bytes -= segment.size_bytes;
                fits
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::test_support::batch;

    /// A log of `segments` segments of one 4-record batch each (timestamps `1000 * n` to
    /// `1000 * n + 3` in segment `n`); the last one is the active segment.
    fn log_with_segments(dir: &std::path::Path, segments: i64) -> (Log, u64) {
        let batch_bytes = batch(0, 4, 0, 100).len() as u64;
        let config = LogConfig {
            segment_bytes: batch_bytes,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir, config).unwrap();
        for segment in 0..segments {
            log.append(&mut batch(0, 4, 1_000 * segment, 100), None)
                .unwrap();
        }
        assert_eq!(log.segment_count() as i64, segments);
        (log, batch_bytes)
    }

    #[test]
    fn nothing_is_deleted_without_limits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = log_with_segments(dir.path(), 5);
        let info = log.apply_retention(TimestampMs(i64::MAX)).unwrap();
        assert_eq!(
            info,
            RetentionInfo {
                segments_deleted: 0,
                bytes_deleted: 0,
                log_start_offset: Offset(0)
            }
        );
        assert_eq!(log.segment_count(), 5);
    }

    #[test]
    fn size_retention_deletes_oldest_segments_while_the_rest_still_meets_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, batch_bytes) = log_with_segments(dir.path(), 6);
        // 6 segments; a limit of 2.5 segments keeps 3 (the rest would drop below the limit).
        let limit = (batch_bytes * 5 / 2) as i64;
        log.set_config(LogConfig {
            retention_bytes: limit,
            ..log.config().clone()
        });
        let info = log.apply_retention(TimestampMs(0)).unwrap();
        assert_eq!(
            info,
            RetentionInfo {
                segments_deleted: 3,
                bytes_deleted: 3 * batch_bytes,
                log_start_offset: Offset(12)
            }
        );
        assert_eq!(
            (log.log_start_offset(), log.segment_count()),
            (Offset(12), 3)
        );
        assert!(!dir.path().join("00000000000000000000.log").exists());
        assert!(!dir.path().join("00000000000000000008.index").exists());
        assert!(!dir.path().join("00000000000000000008.timeindex").exists());
        assert!(dir.path().join("00000000000000000012.log").exists());
        let error = log.read(Offset(11), 100, Offset(24)).unwrap_err();
        assert!(matches!(
            error,
            LogError::OffsetOutOfRange {
                log_start: Offset(12),
                ..
            }
        ));
        assert!(!log
            .read(Offset(12), 100, Offset(24))
            .unwrap()
            .records
            .is_empty());
    }

    #[test]
    fn time_retention_deletes_segments_whose_newest_record_is_too_old_but_never_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = log_with_segments(dir.path(), 4);
        log.set_config(LogConfig {
            retention_ms: 10_000,
            ..log.config().clone()
        });
        // Segment 1's newest record is at 1003: expired when now - 10000 > 1003.
        let info = log.apply_retention(TimestampMs(11_004)).unwrap();
        assert_eq!(
            (info.segments_deleted, info.log_start_offset),
            (2, Offset(8))
        );
        let info = log.apply_retention(TimestampMs(i64::MAX)).unwrap();
        assert_eq!(
            (info.segments_deleted, info.log_start_offset),
            (1, Offset(12))
        );
        assert_eq!(
            log.segment_count(),
            1,
            "the active segment stays, expired or not"
        );
        log.append(&mut batch(0, 1, 1, 10), None).unwrap();
        assert_eq!(log.log_end_offset(), Offset(17));
    }
}
