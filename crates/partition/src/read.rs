//! Reading a partition: records for consumers (up to the high watermark) and followers (up to
//! the log end), offsets by position or time (ListOffsets), and where a leader epoch ends
//! (OffsetForLeaderEpoch).

use bytes::Bytes;
use strom_log::UNDEFINED_EPOCH;
use strom_protocol::batch::Batches;
use strom_types::{LeaderEpoch, Offset, TimestampMs};

use crate::append::debug_assert_crcs;
use crate::error::PartitionError;
use crate::partition::Partition;

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Consumers: records below the high watermark.
    HighWatermark,
    /// read_committed consumers: records below the last stable offset, with the aborted
    /// transactions among them.
    LastStable,
    /// Followers and the group coordinator's replay: everything in the log.
    LogEnd,
}

/// Whole batches as stored, with the partition's offsets at the time of the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    pub records: Bytes,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// For [`ReadBound::LastStable`]: the aborted transactions with records in the range read,
    /// which the consumer drops.
    pub aborted: Option<Vec<crate::AbortedTxn>>,
}

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    /// The high watermark (what a consumer starting at the end sees next).
    Latest,
    /// The last stable offset (what a read_committed consumer starting at the end sees next).
    LatestStable,
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this.
    Timestamp(TimestampMs),
}

impl Partition {
    /// Reads whole batches from the one holding `offset`, up to `max_bytes` (at least one batch
    /// if any is below the bound, as KIP-74 asks). A consumer's offset above the high watermark
    /// but within the log reads nothing yet rather than being out of range.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<PartitionRead, PartitionError> {
        let store = self.store.lock();
        let (start, end) = (store.log.log_start_offset(), store.log.log_end_offset());
        let high_watermark = self.high_watermark().min(end);
        let last_stable_offset = store.transactions.last_stable_offset(high_watermark);
        let mut read = PartitionRead {
            records: Bytes::new(),
            high_watermark,
            last_stable_offset,
            log_start_offset: start,
            aborted: None,
        };
        let upper_bound = match bound {
            ReadBound::HighWatermark if offset > high_watermark && offset <= end => {
                return Ok(read);
            }
            ReadBound::HighWatermark => high_watermark,
            ReadBound::LastStable if offset > last_stable_offset && offset <= end => {
                read.aborted = Some(Vec::new());
                return Ok(read);
            }
            ReadBound::LastStable => last_stable_offset,
            ReadBound::LogEnd => end,
        };
        let records = store.log.read(offset, max_bytes, upper_bound)?.records;
        if bound == ReadBound::LastStable {
            // Kafka's upper bound: the end of what is returned (a transaction beginning after
            // it concerns a later fetch).
            let end = Batches::new(&records)
                .last()
                .map_or(offset, |(last, _)| last.next_offset());
            let aborted = store.log.aborted_txns(offset, end)?;
            read.aborted = Some(aborted.into_iter().map(crate::AbortedTxn::from).collect());
        }
        drop(store);
        debug_assert_crcs(&records);
        Ok(PartitionRead { records, ..read })
    }

    /// The offset (and its timestamp, where one applies) ListOffsets answers; `None` when the
    /// log has no such record (no timestamp at or after the one asked for).
    pub fn list_offset(
        &self,
        spec: OffsetSpec,
    ) -> Result<Option<(Offset, TimestampMs)>, PartitionError> {
        let store = self.store.lock();
        let log = &store.log;
        let found = match spec {
            OffsetSpec::Earliest => Some((log.log_start_offset(), TimestampMs::NONE)),
            OffsetSpec::Latest => {
                let latest = self
                    .high_watermark()
                    .min(log.log_end_offset())
                    .max(log.log_start_offset());
                Some((latest, TimestampMs::NONE))
            }
            OffsetSpec::LatestStable => {
                let high_watermark = self.high_watermark().min(log.log_end_offset());
                let latest = store
                    .transactions
                    .last_stable_offset(high_watermark)
                    .max(log.log_start_offset());
                Some((latest, TimestampMs::NONE))
            }
            OffsetSpec::MaxTimestamp => log.max_timestamp()?,
            OffsetSpec::Timestamp(timestamp) => log.offset_for_timestamp(timestamp)?,
        };
        // A record found below the log start (DeleteRecords moved it inside a segment) is
        // gone for consumers: the first offset they can read from is the log start.
        let start = log.log_start_offset();
        Ok(found.map(|(offset, timestamp)| (offset.max(start), timestamp)))
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `requested` and the offset it ends at
    /// (where the next epoch starts, or the log end for the current one). `None` is Kafka's
    /// UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
    pub fn end_offset_for_epoch(&self, requested: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let leader_epoch = self.leader_epoch();
        let store = self.store.lock();
        let log = &store.log;
        end_offset_for(
            requested.0,
            leader_epoch.0,
            log.latest_epoch(),
            log.end_offset_for_epoch(requested.0),
            log.log_end_offset(),
        )
        .map(|(epoch, end)| (LeaderEpoch(epoch), end))
    }

    /// The latest leader epoch in the log's batches, if any.
    pub fn latest_log_epoch(&self) -> Option<LeaderEpoch> {
        self.store.lock().log.latest_epoch().map(LeaderEpoch)
    }
}

/// A leader answers for its current epoch even before it has written in it: the epoch cache
/// learns an epoch from its first batch, but a follower asking about the current epoch must
/// hear "it ends at the log end", not the previous epoch's end.
fn end_offset_for(
    requested: i32,
    leader_epoch: i32,
    latest_cached: Option<i32>,
    cached: Option<(i32, Offset)>,
    log_end_offset: Offset,
) -> Option<(i32, Offset)> {
    let cache_is_current = latest_cached.is_some_and(|latest| latest >= leader_epoch);
    if cache_is_current || requested == UNDEFINED_EPOCH || leader_epoch < 0 {
        return cached;
    }
    match requested.cmp(&leader_epoch) {
        std::cmp::Ordering::Greater => None,
        std::cmp::Ordering::Equal => Some((leader_epoch, log_end_offset)),
        std::cmp::Ordering::Less => {
            cached.or(Some((latest_cached.unwrap_or(requested), log_end_offset)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::batch;
    use strom_log::{Log, LogConfig};

    fn log_with(dir: &std::path::Path, writes: &[(i32, usize)]) -> Log {
        let mut log = Log::open(dir, LogConfig::default()).unwrap();
        for &(epoch, count) in writes {
            let mut records = batch(&vec!["v"; count]);
            log.append_with_epoch(&mut records, None, epoch).unwrap();
        }
        log
    }

    fn answer(writes: &[(i32, usize)], leader_epoch: i32, requested: i32) -> (i32, i64) {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), writes);
        end_offset_for(
            requested,
            leader_epoch,
            log.latest_epoch(),
            log.end_offset_for_epoch(requested),
            log.log_end_offset(),
        )
        .map_or((-1, -1), |(epoch, end)| (epoch, end.0))
    }

    #[test]
    fn the_current_epoch_ends_at_the_log_end_even_before_the_leader_writes() {
        assert_eq!(answer(&[], 0, 0), (0, 0));
        assert_eq!(answer(&[(0, 7)], 0, 0), (0, 7));
        assert_eq!(answer(&[(0, 7)], 2, 2), (2, 7));
        assert_eq!(answer(&[(0, 7), (2, 2)], 2, 2), (2, 9));
    }

    #[test]
    fn an_older_epoch_ends_where_the_next_one_starts() {
        assert_eq!(answer(&[(0, 7)], 2, 0), (0, 7));
        assert_eq!(answer(&[(0, 7)], 2, 1), (0, 7));
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 2), (1, 3));
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 1), (1, 3));
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 0), (0, 0));
        assert_eq!(answer(&[], 1, 0), (0, 0));
    }

    #[test]
    fn unknown_epochs_are_undefined() {
        assert_eq!(answer(&[(0, 7)], 0, 1), (-1, -1));
        assert_eq!(answer(&[(0, 7)], 2, 3), (-1, -1));
        assert_eq!(answer(&[], 0, 1), (-1, -1));
        assert_eq!(answer(&[(0, 7)], 2, -1), (-1, -1));
        assert_eq!(answer(&[], 0, -1), (-1, -1));
    }
}
