//! [`Log::append_as_follower`]: storing batches fetched from the leader exactly as the leader
//! stored them.
//!
//! A follower's log must be a copy of the leader's, so nothing is rewritten: base offsets,
//! partition leader epochs and timestamps stay as fetched. What is checked instead is that the
//! batches fit after the log: each is whole and passes its CRC, the first starts at or after the
//! log end, and each starts at or after the offset where the previous one ended. Gaps are
//! allowed, since a compacted leader log has them, and so are batches holding fewer records
//! than offsets (compaction keeps a batch's offsets when it removes records from it).
//!
//! One fetch may carry more bytes than a segment holds, so the roll rules are played forward
//! batch by batch, and the batches are written in runs, one write per segment they land in.
//! Everything is checked before the first byte is written, so a refused append changes nothing.
//! [`Log::append_as_follower_indexing`] hands each run to its caller as soon as it is written,
//! and indexes the aborted transactions the caller finds in it while the run's segment is still
//! the active one (see `transactions`).

use std::ops::Range;

use strom_protocol::batch::{BatchError, BatchHeader};
use strom_types::Offset;

use crate::epoch_cache::check_epoch_not_behind;
use crate::error::LogError;
use crate::log::{validated_batches, AppendInfo, Log, RollState};
use crate::txn_index::AbortedTxnEntry;

/// One run of a follower append, as [`Log::append_as_follower_indexing`] hands it over once
/// it is written.
#[derive(Debug, Clone, Copy)]
pub struct FollowerRun<'a> {
    /// The run's batches, as stored.
    pub records: &'a [u8],
    /// The base offset of the segment the log rolled to before writing the run, if it rolled:
    /// everything below it is in the segments before.
    pub rolled_at: Option<Offset>,
}

/// Consecutive batches of one append that go to the same segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    /// Indexes into the append's batches.
    batches: Range<usize>,
    /// Whether the active segment is rolled before the run is written.
    roll_first: bool,
}

impl Log {
    /// Appends batches fetched from the leader, keeping their base offsets and partition leader
    /// epochs (no offsets assigned, nothing stamped; `records` is not modified). The log end
    /// becomes the last batch's last offset + 1, and each leader epoch new to the epoch cache
    /// starts at the base offset of its first batch (batches with epoch -1 add nothing).
    ///
    /// Refused, with nothing written: bytes that are not whole CRC-valid v2 batches
    /// ([`LogError::InvalidBatch`]), a first batch below the log end
    /// ([`LogError::OffsetBehindLogEnd`]), a batch starting before the previous one ended
    /// ([`LogError::NonMonotonicAppend`]), an epoch older than the latest one
    /// ([`LogError::LeaderEpochBehind`]), a single batch larger than a segment
    /// ([`LogError::RecordBatchTooLarge`]), and a gap of more than 2^31 offsets after the
    /// log end ([`LogError::OffsetOverflow`]: segments stay contiguous, and one segment spans
    /// at most 2^31 offsets). A follower whose log end is below the leader's log start should
    /// [`Log::truncate_fully_and_start_at`] the leader's log start before fetching, as Kafka's
    /// does, rather than leave a gap below its first batch.
    pub fn append_as_follower(&mut self, records: &mut [u8]) -> Result<AppendInfo, LogError> {
        self.append_as_follower_indexing(records, |_| Vec::new())
    }

    /// [`Log::append_as_follower`], calling `written` with each run of batches once it is in
    /// the log (a run is what lands in one segment; a fetch spanning a roll has several) and
    /// indexing the aborted transactions it returns, whose markers must be in that run. The
    /// partition records producer state there, so after a failed write it holds exactly the
    /// runs that made it into the log, and snapshots it where a run starts a new segment.
    pub fn append_as_follower_indexing(
        &mut self,
        records: &mut [u8],
        mut written: impl FnMut(FollowerRun<'_>) -> Vec<AbortedTxnEntry>,
    ) -> Result<AppendInfo, LogError> {
        let batches = follower_batches(records)?;
        self.check_follower_batches(&batches)?;
        let runs = self.plan_runs(&batches)?;
        for run in runs {
            let run_batches = &batches[run.batches];
            self.append_run(records, run_batches, run.roll_first)?;
            let bytes = run_batches[0].1.start..run_batches[run_batches.len() - 1].1.end;
            let run = FollowerRun {
                records: &records[bytes],
                rolled_at: run.roll_first.then(|| self.active_segment_base_offset()),
            };
            for entry in written(run) {
                self.index_aborted_txn(entry)?;
            }
        }
        let (first, _) = &batches[0];
        let (last, _) = &batches[batches.len() - 1];
        assert_eq!(
            self.log_end_offset(),
            last.next_offset(),
            "the log end moves past the follower append"
        );
        let max_timestamp = batches
            .iter()
            .map(|(header, _)| header.max_timestamp)
            .max()
            .expect("one batch at least");
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            max_timestamp,
            log_append_time: None,
            bytes: records.len(),
        })
    }

    /// Offsets grow from the log end, epochs never go back, and each batch fits a segment.
    fn check_follower_batches(
        &self,
        batches: &[(BatchHeader, Range<usize>)],
    ) -> Result<(), LogError> {
        let log_end = self.log_end_offset();
        let mut next_offset = log_end;
        let mut latest_epoch = self.latest_epoch();
        let segment_bytes = self.config.segment_bytes_effective();
        for (at, (header, _)) in batches.iter().enumerate() {
            if header.base_offset < next_offset {
                return Err(match at {
                    0 => LogError::OffsetBehindLogEnd {
                        base_offset: header.base_offset,
                        log_end,
                    },
                    _ => LogError::NonMonotonicAppend {
                        base_offset: header.base_offset,
                        previous_next_offset: next_offset,
                    },
                });
            }
            next_offset = header.next_offset();
            let epoch = header.partition_leader_epoch;
            check_epoch_not_behind(epoch, latest_epoch, header.base_offset)?;
            if epoch >= 0 {
                latest_epoch = Some(epoch);
            }
            if header.total_bytes() as u64 > segment_bytes {
                return Err(LogError::RecordBatchTooLarge {
                    bytes: header.total_bytes(),
                    segment_bytes,
                });
            }
        }
        Ok(())
    }

    /// Splits the batches into runs by playing the roll rules forward from the active segment.
    fn plan_runs(&self, batches: &[(BatchHeader, Range<usize>)]) -> Result<Vec<Run>, LogError> {
        let mut segment = RollState::of(self.active());
        let mut next_offset = self.log_end_offset();
        let mut runs = Vec::new();
        let mut start = 0;
        let mut roll_first = false;
        for (at, (header, _)) in batches.iter().enumerate() {
            let bytes = header.total_bytes() as u64;
            if segment.should_roll(
                &self.config,
                bytes,
                header.last_offset(),
                header.max_timestamp,
            ) {
                if at > start {
                    runs.push(Run {
                        batches: start..at,
                        roll_first,
                    });
                }
                start = at;
                roll_first = true;
                segment = RollState::rolled_at(next_offset);
            }
            if header.last_offset().minus(segment.base_offset) > i64::from(i32::MAX) {
                return Err(LogError::OffsetOverflow {
                    last_offset: header.last_offset(),
                    segment_base_offset: segment.base_offset,
                });
            }
            segment.add(header);
            next_offset = header.next_offset();
        }
        runs.push(Run {
            batches: start..batches.len(),
            roll_first,
        });
        Ok(runs)
    }

    /// Writes one run with one write, after recording its epochs (see `leader_epoch`).
    fn append_run(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
        roll_first: bool,
    ) -> Result<(), LogError> {
        if roll_first {
            self.roll()?;
        }
        self.assign_epochs(
            batches
                .iter()
                .map(|(header, _)| (header.partition_leader_epoch, header.base_offset)),
        )?;
        let start = batches[0].1.start;
        let end = batches[batches.len() - 1].1.end;
        let shifted: Vec<(BatchHeader, Range<usize>)> = batches
            .iter()
            .map(|(header, range)| (*header, range.start - start..range.end - start))
            .collect();
        self.write_to_active(&records[start..end], &shifted)
    }
}

/// The batches of a follower append: whole and CRC-valid, with no more records than offsets
/// (compaction leaves fewer; more would be corrupt).
fn follower_batches(records: &[u8]) -> Result<Vec<(BatchHeader, Range<usize>)>, BatchError> {
    let batches = validated_batches(records)?;
    for (header, _) in &batches {
        if i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1 {
            return Err(BatchError::InconsistentCount {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use strom_protocol::batch::{self, Batches};
    use strom_types::Offset;

    use super::*;
    use crate::config::LogConfig;
    use crate::epoch_cache::NO_PARTITION_LEADER_EPOCH;
    use crate::epoch_checkpoint::EPOCH_CHECKPOINT_FILE;
    use crate::rewrite::encode_empty;
    use crate::test_support::{batch, batch_with_epoch};

    fn entries(log: &Log) -> Vec<(i32, i64)> {
        log.epoch_entries().iter().map(|&(e, o)| (e, o.0)).collect()
    }

    fn everything(log: &Log) -> Vec<u8> {
        log.read(log.log_start_offset(), usize::MAX, log.log_end_offset())
            .unwrap()
            .records
            .to_vec()
    }

    /// Batches as a compacted leader stores them: (base offset, records, epoch), gaps between.
    fn leader_batches(batches: &[(i64, usize, i32)]) -> Vec<u8> {
        batches
            .iter()
            .flat_map(|&(base, count, epoch)| {
                batch_with_epoch(base, count, 1_000 + base, 100, epoch)
            })
            .collect()
    }

    #[test]
    fn follower_appends_keep_offsets_epochs_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let mut fetched = leader_batches(&[(0, 3, 1), (5, 2, 1), (10, 1, 2)]);
        let sent = fetched.clone();
        let info = log.append_as_follower(&mut fetched).unwrap();
        assert_eq!(fetched, sent, "nothing is rewritten");
        assert_eq!(
            info,
            AppendInfo {
                base_offset: Offset(0),
                last_offset: Offset(10),
                max_timestamp: strom_types::TimestampMs(1_010),
                log_append_time: None,
                bytes: sent.len(),
            }
        );
        assert_eq!(log.log_end_offset(), Offset(11));
        assert_eq!(everything(&log), sent);
        assert_eq!(entries(&log), [(1, 0), (2, 10)]);
        // A read starting in a gap returns the next batch, as on the leader.
        let from_gap = log.read(Offset(3), usize::MAX, Offset(11)).unwrap();
        assert_eq!(
            Batches::new(&from_gap.records)
                .next()
                .unwrap()
                .0
                .base_offset,
            Offset(5)
        );

        let mut next = leader_batches(&[(11, 1, NO_PARTITION_LEADER_EPOCH), (20, 2, 4)]);
        log.append_as_follower(&mut next).unwrap();
        assert_eq!(
            (log.log_end_offset(), entries(&log)),
            (Offset(22), vec![(1, 0), (2, 10), (4, 20)])
        );
        assert_eq!(log.end_offset_for_epoch(2), Some((2, Offset(20))));
    }

    #[test]
    fn follower_appends_that_do_not_follow_the_log_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append_as_follower(&mut leader_batches(&[(0, 5, 3)]))
            .unwrap();
        let before = (everything(&log), entries(&log));
        let checkpoint = std::fs::read(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap();

        let error = log
            .append_as_follower(&mut leader_batches(&[(4, 2, 3)]))
            .unwrap_err();
        assert!(
            matches!(
                error,
                LogError::OffsetBehindLogEnd {
                    base_offset: Offset(4),
                    log_end: Offset(5)
                }
            ),
            "{error}"
        );
        let error = log
            .append_as_follower(&mut leader_batches(&[(5, 3, 3), (7, 1, 3)]))
            .unwrap_err();
        assert!(
            matches!(
                error,
                LogError::NonMonotonicAppend {
                    base_offset: Offset(7),
                    previous_next_offset: Offset(8)
                }
            ),
            "{error}"
        );
        let error = log
            .append_as_follower(&mut leader_batches(&[(5, 1, 4), (6, 1, 2)]))
            .unwrap_err();
        assert!(
            matches!(
                error,
                LogError::LeaderEpochBehind {
                    epoch: 2,
                    latest_epoch: 4,
                    base_offset: Offset(6)
                }
            ),
            "{error}"
        );
        let mut flipped = leader_batches(&[(5, 1, 3)]);
        flipped[70] ^= 1;
        let mut too_many_records = leader_batches(&[(5, 2, 3)]);
        // Claim one offset for two records, and keep the CRC right so only the count is wrong.
        too_many_records[23..27].copy_from_slice(&0_i32.to_be_bytes());
        let crc = batch::compute_crc(&too_many_records);
        too_many_records[17..21].copy_from_slice(&crc.to_be_bytes());
        for bytes in [&mut flipped, &mut too_many_records, &mut Vec::new()] {
            let error = log.append_as_follower(bytes).unwrap_err();
            assert!(matches!(error, LogError::InvalidBatch(_)), "{error}");
        }
        let error = log.append_as_follower(&mut leader_batches(&[(5, 1, 3), (4, 1, 3)]));
        assert!(matches!(error, Err(LogError::NonMonotonicAppend { .. })));
        assert_eq!((everything(&log), entries(&log)), before);
        assert_eq!(
            std::fs::read(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap(),
            checkpoint
        );
    }

    #[test]
    fn a_fetch_larger_than_a_segment_is_split_across_rolled_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Offsets of two digits throughout, so every batch has the same size (keys hold them).
        let one_batch = batch(10, 2, 1_000, 100).len() as u64;
        let config = LogConfig {
            segment_bytes: 3 * one_batch,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config).unwrap();
        log.append_as_follower(&mut leader_batches(&[(10, 2, 1)]))
            .unwrap();
        let batches: Vec<(i64, usize, i32)> =
            (1..10).map(|n| (10 + n * 4, 2, 1 + n as i32 / 4)).collect();
        let mut fetched = leader_batches(&batches);
        let sent = fetched.clone();
        log.append_as_follower(&mut fetched).unwrap();
        let bases: Vec<i64> = log.segments.iter().map(|s| s.base_offset.0).collect();
        assert_eq!(
            bases,
            [0, 20, 32, 44],
            "three batches per segment, each segment starting where the previous one ended"
        );
        for segment in &log.segments {
            assert!(segment.size_bytes <= 3 * one_batch);
        }
        let stored = everything(&log);
        assert_eq!(&stored[one_batch as usize..], sent.as_slice());
        assert_eq!(log.log_end_offset(), Offset(48));
        assert_eq!(entries(&log), [(1, 10), (2, 26), (3, 42)]);

        let mut huge = batch_with_epoch(48, 10, 1_000, 100, 3);
        let error = log.append_as_follower(&mut huge).unwrap_err();
        assert!(
            matches!(error, LogError::RecordBatchTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_gap_wider_than_a_segment_can_span_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let far = 1 + i64::from(i32::MAX) + 10;
        let mut fetched = leader_batches(&[(0, 1, 1), (5, 1, 1), (far, 1, 2)]);
        let error = log.append_as_follower(&mut fetched).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::OffsetOverflow {
                    segment_base_offset: Offset(6),
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            (log.log_end_offset(), log.size_bytes(), log.segment_count()),
            (Offset(0), 0, 1)
        );
        assert_eq!(entries(&log), []);
    }

    #[test]
    fn a_compacted_batch_with_fewer_records_than_offsets_is_stored_as_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let original = batch_with_epoch(0, 4, 1_000, 10, 2);
        let header = batch::validate(&original).unwrap();
        let mut emptied = encode_empty(&header);
        assert_eq!(batch::validate(&emptied).unwrap().record_count, 0);
        let info = log.append_as_follower(&mut emptied).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(3)));
        assert_eq!(
            (log.log_end_offset(), entries(&log)),
            (Offset(4), vec![(2, 0)])
        );
        // The same batch is refused from a producer, whose batches hold one record per offset.
        let error = log.append(&mut encode_empty(&header), None).unwrap_err();
        assert!(matches!(error, LogError::InvalidBatch(_)), "{error}");
    }
}
