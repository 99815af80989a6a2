//! [`Log`]: one partition's segments, appended to at the end and read from anywhere.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use strom_protocol::batch::{self, BatchError, BatchHeader, Batches, BATCH_HEADER_BYTES};
use strom_types::{Offset, TimestampMs};

use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch_cache::{check_epoch_not_behind, EpochCache, NO_PARTITION_LEADER_EPOCH};
use crate::error::{IoContext, LogError};
use crate::files::{self, FilePool};
use crate::segment::Segment;
use crate::sync::{Durability, SyncHandle, SyncTarget};

/// One partition's log.
///
/// Lifecycle: [`Log::open`] recovers the directory; the broker then owns the `Log` inside a
/// mutex until [`Log::close`] (shutdown) or [`Log::delete`] (topic deletion). Appends,
/// truncation, retention, compaction and configuration changes take `&mut self`; reads,
/// timestamp lookups and [`Log::sync_handle`] take `&self`, so with a read-write lock they may
/// run concurrently with each other but never with a write. The only work meant to run outside
/// the lock is [`SyncHandle::sync`]; a compaction pass holds the lock for all of its I/O.
pub struct Log {
    pub(crate) dir: PathBuf,
    /// Where the segment files are opened (see `files`): the node's one bound on descriptors.
    pub(crate) pool: FilePool,
    pub(crate) config: LogConfig,
    /// Ascending, contiguous (each base offset is the previous segment's next offset), never
    /// empty; the last one is the active segment. Within a compacted segment batches may be
    /// separated by gaps; a cleaned segment keeps its last batch, so segments never are. A
    /// follower copying a compacted leader rolls at its log end as well, so its gaps fall
    /// inside segments too (a segment's first batch may start above its base offset).
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: Offset,
    /// The cleaner checkpoint: compaction has seen everything below it (see `checkpoint`). At
    /// most the log end; truncation lowers it with the log end.
    pub(crate) first_dirty_offset: Offset,
    pub(crate) durability: Durability,
    /// Which leader epoch started where, mirrored in `leader-epoch-checkpoint` (see
    /// `leader_epoch`). Every entry starts below the log end and at or after the log start.
    pub(crate) epochs: EpochCache,
    /// The checkpoint was last replaced without an fsync: it must be made durable before the
    /// active segment rolls, since recovery re-reads the epochs of the active segment only.
    pub(crate) epochs_unsynced: bool,
}

/// What an append stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The largest batch max timestamp appended (the append time when one was stamped).
    pub max_timestamp: TimestampMs,
    pub log_append_time: Option<TimestampMs>,
    pub bytes: usize,
}

/// Whole batches read from the log, exactly as stored, with the log's bounds at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInfo {
    pub records: Bytes,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

impl Log {
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.size_bytes).sum()
    }

    /// How many segments the log has (the active one included).
    /// The base offset of the active (last) segment: where the most recent batches start.
    pub fn active_segment_base_offset(&self) -> Offset {
        self.segments
            .last()
            .expect("a log always has a segment")
            .base_offset
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding the log's directory (a root, for a log opened at `/`).
    fn parent_dir(&self) -> PathBuf {
        self.dir
            .parent()
            .map_or_else(|| self.dir.clone(), Path::to_path_buf)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies new topic settings; they take effect from the next append or retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Appends whole v2 batches: assigns their offsets (rewriting each base offset in place),
    /// stamps `log_append_time` into them when given, rolls the active segment if needed, and
    /// writes all the bytes with one write (no fsync; see [`Log::sync_handle`]).
    ///
    /// The batches' partitionLeaderEpoch is set to -1 (`NO_PARTITION_LEADER_EPOCH`) and the
    /// epoch cache is left alone: this log was not told which leader wrote them, and what the
    /// producer put there means nothing. Leaders that know their epoch use
    /// [`Log::append_with_epoch`].
    pub fn append(
        &mut self,
        records: &mut [u8],
        log_append_time: Option<TimestampMs>,
    ) -> Result<AppendInfo, LogError> {
        self.append_as_leader(records, log_append_time, NO_PARTITION_LEADER_EPOCH)
    }

    /// [`Log::append`] for a leader of epoch `leader_epoch`: stamps it into every batch's
    /// partitionLeaderEpoch (bytes 12..16, outside the CRC) and records in the epoch cache that
    /// the epoch starts here if it is new, writing `leader-epoch-checkpoint` before the batches.
    /// An epoch older than [`Log::latest_epoch`] is refused with
    /// [`LogError::LeaderEpochBehind`]; a negative one is a caller bug and panics.
    pub fn append_with_epoch(
        &mut self,
        records: &mut [u8],
        log_append_time: Option<TimestampMs>,
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        assert!(
            leader_epoch >= 0,
            "a leader appends with a real epoch, not {leader_epoch}"
        );
        self.append_as_leader(records, log_append_time, leader_epoch)
    }

    fn append_as_leader(
        &mut self,
        records: &mut [u8],
        log_append_time: Option<TimestampMs>,
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        let ranges = checked_batches(records)?;
        let segment_bytes = self.config.segment_bytes_effective();
        if records.len() as u64 > segment_bytes {
            return Err(LogError::RecordBatchTooLarge {
                bytes: records.len(),
                segment_bytes,
            });
        }
        let log_end_offset = self.log_end_offset();
        check_epoch_not_behind(leader_epoch, self.latest_epoch(), log_end_offset)?;
        let stamp = Stamp {
            log_append_time,
            leader_epoch,
        };
        let batches = assign_offsets(records, ranges, log_end_offset, stamp);
        let base_offset = batches[0].0.base_offset;
        let last_offset = batches[batches.len() - 1].0.last_offset();
        let max_timestamp = batches
            .iter()
            .map(|(header, _)| header.max_timestamp)
            .max()
            .expect("one batch at least");
        if self.should_roll(records.len() as u64, last_offset, max_timestamp) {
            self.roll()?;
        }
        let active_base_offset = self.active().base_offset;
        if last_offset.minus(active_base_offset) > i64::from(i32::MAX) {
            return Err(LogError::OffsetOverflow {
                last_offset,
                segment_base_offset: active_base_offset,
            });
        }
        self.assign_epochs([(leader_epoch, base_offset)])?;
        self.write_to_active(records, &batches)?;
        assert_eq!(
            self.log_end_offset(),
            last_offset.plus(1),
            "the log end moves past the append"
        );
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            log_append_time,
            bytes: records.len(),
        })
    }

    /// Writes batches to the active segment; if that fails, forgets the epoch entries that were
    /// recorded for them.
    pub(crate) fn write_to_active(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
    ) -> Result<(), LogError> {
        let index_interval_bytes = self.config.index_interval_bytes;
        let written = self
            .active_mut()
            .append(records, batches, index_interval_bytes);
        if written.is_err() {
            self.forget_epochs_past_log_end();
        }
        written
    }

    /// Kafka's roll rules, checked before an append of `bytes` ending at `last_offset`.
    fn should_roll(&self, bytes: u64, last_offset: Offset, max_timestamp: TimestampMs) -> bool {
        RollState::of(self.active()).should_roll(&self.config, bytes, last_offset, max_timestamp)
    }

    /// Rolls the active segment now if it holds anything, so its records become inactive and
    /// so compactable (Kafka rolls once `max.compaction.lag.ms` has passed). Returns whether it
    /// rolled.
    pub fn roll_active(&mut self) -> Result<bool, LogError> {
        if self.active().is_empty() {
            return Ok(false);
        }
        self.roll()?;
        Ok(true)
    }

    /// Makes a new, empty segment at the log end the active one.
    pub(crate) fn roll(&mut self) -> Result<(), LogError> {
        self.sync_epochs_before_roll()?;
        self.sync_txn_index_before_roll()?;
        let next_offset = self.log_end_offset();
        let old = self.active_mut();
        old.deactivate()?;
        let old_files = old.files();
        let segment = Segment::create(&self.dir, next_offset, &self.pool)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = %next_offset, "rolled to a new segment");
        self.segments.push(segment);
        self.durability.rolled(next_offset, old_files);
        Ok(())
    }

    /// Reads whole batches from the one holding `start`, up to `max_bytes` (but at least one
    /// batch if any is below `upper_bound`, as KIP-74 asks), never a batch reaching `upper_bound`.
    pub fn read(
        &self,
        start: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> Result<ReadInfo, LogError> {
        self.check_in_range(start)?;
        let mut records = Vec::new();
        let mut from = start;
        for segment in &self.segments[self.segment_holding(start)..] {
            let budget = max_bytes.saturating_sub(records.len());
            let reached_end =
                segment.read_into(from, upper_bound, budget, records.is_empty(), &mut records)?;
            if !reached_end {
                break;
            }
            from = segment.next_offset;
        }
        Ok(ReadInfo {
            records: Bytes::from(records),
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        })
    }

    pub(crate) fn check_in_range(&self, offset: Offset) -> Result<(), LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        Ok(())
    }

    /// The index of the segment whose range holds `offset` (the last one starting at or
    /// before it); `offset` must not be below the first segment.
    pub(crate) fn segment_holding(&self, offset: Offset) -> usize {
        let after = self
            .segments
            .partition_point(|segment| segment.base_offset <= offset);
        after
            .checked_sub(1)
            .expect("offset is not below the first segment")
    }

    /// Removes every record at and after `offset` (a batch holding `offset` goes whole). Below
    /// the log start it empties the log and restarts it at `offset`. Synced before returning.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        assert!(offset.0 >= 0, "cannot truncate to negative offset {offset}");
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let keep = self.segment_holding(offset);
        // Newest first, so a crash part-way leaves a dense prefix of the log.
        while self.segments.len() > keep + 1 {
            let segment = self.segments.pop().expect("more segments than kept");
            segment.delete_files()?;
        }
        let old_end = self.log_end_offset();
        self.active_mut().truncate_to(offset)?;
        tracing::info!(dir = %self.dir.display(), %offset, %old_end, new_end = %self.log_end_offset(), "truncated log");
        self.sync_everything()?;
        self.truncate_epochs_from_end()?;
        // Records appended from here on are new: compaction must map them (Kafka lowers its
        // cleaner checkpoint on truncation the same way).
        self.lower_first_dirty_offset(self.log_end_offset())
    }

    /// Moves the cleaner checkpoint down to `offset` if it is above, on disk too.
    pub(crate) fn lower_first_dirty_offset(&mut self, offset: Offset) -> Result<(), LogError> {
        if self.first_dirty_offset <= offset {
            return Ok(());
        }
        checkpoint::write(&self.dir, offset)?;
        self.first_dirty_offset = offset;
        Ok(())
    }

    /// fsyncs every file with pending writes, the active segment and the directory, under the
    /// caller's lock; only for rare operations (truncation) that must be durable when they return.
    fn sync_everything(&mut self) -> Result<(), LogError> {
        self.flush_txn_index()?;
        let mut files = self.durability.rolled_files();
        files.push(SyncTarget::Pooled(self.active().file.clone()));
        if !self.active().txn_index.is_empty() {
            files.push(SyncTarget::Path(
                self.active().txn_index.path().to_path_buf(),
            ));
        }
        for file in files {
            file.sync()?;
        }
        files::sync_path(&self.dir)?;
        self.durability.synced_everything(self.log_end_offset());
        Ok(())
    }

    /// Deletes every segment and restarts the log, empty, at `offset` (below or above the old
    /// bounds): a follower whose log end is below the leader's log start starts over this way.
    /// The leader epoch cache is emptied too. Synced before returning.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<(), LogError> {
        assert!(
            offset.0 >= 0,
            "cannot restart the log at negative offset {offset}"
        );
        self.forget_all_epochs()?;
        // First: a crash part-way then opens at the old segments' start or at this one (the
        // larger of the first segment's base and the checkpoint), never in between.
        checkpoint::write_log_start(&self.dir, offset)?;
        while let Some(segment) = self.segments.pop() {
            segment.delete_files()?;
        }
        self.segments
            .push(Segment::create(&self.dir, offset, &self.pool)?);
        files::sync_path(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), %offset, "emptied log and restarted it at a new offset");
        self.log_start_offset = offset;
        self.durability = Durability::new(offset);
        checkpoint::write(&self.dir, offset)?;
        self.first_dirty_offset = offset;
        self.persist_epochs()
    }

    /// The files with writes not yet known to be durable, and the log end offset they cover
    /// (short of an ABORT marker whose index entry could not be written yet; see
    /// [`Log::flush_txn_index`]).
    pub fn sync_handle(&self) -> SyncHandle {
        let end = self.log_end_offset();
        self.durability.handle(
            self.txn_index_sync_bound()
                .map_or(end, |bound| bound.min(end)),
            SyncTarget::Pooled(self.active().file.clone()),
            SyncTarget::Path(self.dir.clone()),
            SyncTarget::Path(self.parent_dir()),
        )
    }

    /// Records that a [`SyncHandle`] completed: everything below `offset` is durable.
    pub fn mark_durable(&mut self, offset: Offset) {
        let log_end_offset = self.log_end_offset();
        self.durability.mark_durable(offset, log_end_offset);
    }

    /// Everything below this offset is on stable storage.
    pub fn durable_offset(&self) -> Offset {
        self.durability.durable_offset()
    }

    /// Writes out the active segment's indexes (they are rebuilt on open regardless, so this is
    /// only for tools that read the files of a running broker).
    pub fn flush_indexes(&mut self) -> Result<(), LogError> {
        self.active_mut().flush_indexes()
    }

    /// Writes the active segment's indexes and fsyncs every file with pending writes and the
    /// directory; for graceful shutdown.
    pub fn close(mut self) -> Result<(), LogError> {
        self.active_mut().deactivate()?;
        let mut files = self.durability.rolled_files();
        files.extend(self.active().files());
        if self.durability.directory_is_new() {
            files.push(SyncTarget::Path(self.parent_dir()));
        }
        for file in files {
            file.sync()?;
        }
        files::sync_path(&self.dir)
    }

    /// Deletes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).at(&dir)?;
        tracing::info!(dir = %dir.display(), "deleted partition log");
        Ok(())
    }
}

/// The byte ranges of the whole, valid batches `records` consists of, or why it is not that.
/// Producers' batches hold one record per offset, so their count must match their offsets.
fn checked_batches(records: &[u8]) -> Result<Vec<Range<usize>>, BatchError> {
    let batches = validated_batches(records)?;
    for (header, _) in &batches {
        if i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1 {
            return Err(BatchError::InconsistentCount {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
    }
    Ok(batches.into_iter().map(|(_, range)| range).collect())
}

/// The headers and byte ranges of the whole, CRC-valid batches `records` consists of (at least
/// one), or why it is not that.
pub(crate) fn validated_batches(
    records: &[u8],
) -> Result<Vec<(BatchHeader, Range<usize>)>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Truncated {
            available: 0,
            needed: BATCH_HEADER_BYTES,
        });
    }
    let mut walk = Batches::new(records);
    let ranges: Vec<Range<usize>> = walk.by_ref().map(|(_, range)| range).collect();
    if let Some(error) = walk.error() {
        return Err(error.clone());
    }
    ranges
        .into_iter()
        .map(|range| {
            // The one CRC check of an append (the produce handler leaves it to the log); it
            // pairs with recovery's on open and the partition's on read back in debug builds.
            let header = batch::validate(&records[range.clone()])?;
            Ok((header, range))
        })
        .collect()
}

/// What the roll rules look at in the active segment; the follower append also plays them
/// forward over the batches it is about to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RollState {
    pub base_offset: Offset,
    pub size_bytes: u64,
    pub first_batch_timestamp: Option<TimestampMs>,
    pub opened_at: TimestampMs,
}

impl RollState {
    pub fn of(segment: &Segment) -> RollState {
        RollState {
            base_offset: segment.base_offset,
            size_bytes: segment.size_bytes,
            first_batch_timestamp: segment.first_batch_timestamp,
            opened_at: segment.opened_at,
        }
    }

    /// A new, empty segment starting at `base_offset`, as a roll makes it.
    pub fn rolled_at(base_offset: Offset) -> RollState {
        RollState {
            base_offset,
            size_bytes: 0,
            first_batch_timestamp: None,
            opened_at: TimestampMs::now(),
        }
    }

    /// Accounts for a batch written to the segment.
    pub fn add(&mut self, header: &BatchHeader) {
        self.size_bytes += header.total_bytes() as u64;
        self.first_batch_timestamp
            .get_or_insert(header.max_timestamp);
    }

    /// Kafka's roll rules, checked before writing `bytes` ending at `last_offset`: never for an
    /// empty segment; otherwise when the bytes would not fit, the offsets would not fit an index
    /// entry, or the segment is older than `segment.ms`.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        bytes: u64,
        last_offset: Offset,
        max_timestamp: TimestampMs,
    ) -> bool {
        if self.size_bytes == 0 {
            return false;
        }
        let full = self.size_bytes + bytes > config.segment_bytes_effective();
        let offsets_exhausted = last_offset.minus(self.base_offset) > i64::from(i32::MAX);
        // Like Kafka, age is measured from the first batch's timestamp to the incoming one's,
        // falling back to the wall clock when the first batch has no timestamp.
        let age_ms = match self.first_batch_timestamp {
            Some(first) if first.0 >= 0 => max_timestamp.0.saturating_sub(first.0),
            _ => TimestampMs::now().0.saturating_sub(self.opened_at.0),
        };
        let old = u64::try_from(age_ms).is_ok_and(|age_ms| age_ms > config.segment_ms);
        full || offsets_exhausted || old
    }
}

/// What a leader stamps into every batch besides its offsets.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    log_append_time: Option<TimestampMs>,
    leader_epoch: i32,
}

/// Rewrites each batch's base offset (from `next_offset` on), its partition leader epoch and,
/// when given, its append time; returns each batch's header as stored and its range.
fn assign_offsets(
    records: &mut [u8],
    ranges: Vec<Range<usize>>,
    mut next_offset: Offset,
    stamp: Stamp,
) -> Vec<(BatchHeader, Range<usize>)> {
    let mut batches = Vec::with_capacity(ranges.len());
    for range in ranges {
        let bytes = &mut records[range.clone()];
        batch::set_base_offset(bytes, next_offset);
        batch::set_partition_leader_epoch(bytes, stamp.leader_epoch);
        if let Some(now) = stamp.log_append_time {
            batch::set_log_append_time(bytes, now);
        }
        let header =
            BatchHeader::parse(bytes).expect("a validated batch still parses after rewriting");
        next_offset = header.next_offset();
        batches.push((header, range));
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::batch;

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 200,
            ..LogConfig::default()
        }
    }

    /// The (base offset, last offset) of each batch in `bytes`, checking each one's CRC.
    fn offsets_of(bytes: &[u8]) -> Vec<(i64, i64)> {
        let mut walk = Batches::new(bytes);
        let offsets = walk
            .by_ref()
            .map(|(header, range)| {
                batch::validate(&bytes[range]).expect("stored batches keep a valid CRC");
                (header.base_offset.0, header.last_offset().0)
            })
            .collect();
        assert!(walk.error().is_none(), "reads return whole batches only");
        offsets
    }

    #[test]
    fn appends_get_dense_offsets_and_reads_return_the_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(0), Offset(0))
        );
        let mut first = batch(999, 3, 1_000, 10);
        let info = log.append(&mut first, None).unwrap();
        assert_eq!(
            info,
            AppendInfo {
                base_offset: Offset(0),
                last_offset: Offset(2),
                max_timestamp: TimestampMs(1_002),
                log_append_time: None,
                bytes: first.len(),
            }
        );
        let mut two = batch(0, 2, 2_000, 10);
        two.extend(batch(0, 4, 3_000, 10));
        let info = log.append(&mut two, None).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(3), Offset(8)));
        assert_eq!(log.log_end_offset(), Offset(9));
        assert_eq!(log.size_bytes(), (first.len() + two.len()) as u64);

        let read = log.read(Offset(0), usize::MAX, Offset(9)).unwrap();
        assert_eq!(
            read.records.as_ref(),
            [first.as_slice(), two.as_slice()].concat().as_slice()
        );
        assert_eq!(offsets_of(&read.records), vec![(0, 2), (3, 4), (5, 8)]);
        assert_eq!(
            (read.log_start_offset, read.log_end_offset),
            (Offset(0), Offset(9))
        );
    }

    #[test]
    fn log_append_time_is_stamped_into_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let mut records = batch(0, 2, 1_000, 10);
        records.extend(batch(0, 2, 5_000, 10));
        let info = log.append(&mut records, Some(TimestampMs(42_000))).unwrap();
        assert_eq!(
            (info.max_timestamp, info.log_append_time),
            (TimestampMs(42_000), Some(TimestampMs(42_000)))
        );
        let read = log.read(Offset(0), usize::MAX, Offset(4)).unwrap();
        for (header, _) in Batches::new(&read.records) {
            assert!(header.is_log_append_time());
            assert_eq!(header.max_timestamp, TimestampMs(42_000));
        }
        assert_eq!(offsets_of(&read.records).len(), 2);
    }

    #[test]
    fn bytes_that_are_not_whole_valid_batches_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let good = batch(0, 2, 1_000, 10);
        let mut torn = good[..good.len() - 1].to_vec();
        let mut flipped = good.clone();
        flipped[70] ^= 1;
        let mut trailing = good.clone();
        trailing.extend([0u8; 5]);
        for bytes in [&mut Vec::new(), &mut torn, &mut flipped, &mut trailing] {
            let error = log.append(bytes, None).unwrap_err();
            assert!(matches!(error, LogError::InvalidBatch(_)), "{error}");
            assert!(!error.is_fatal());
        }
        assert_eq!((log.log_end_offset(), log.size_bytes()), (Offset(0), 0));
        assert!(matches!(
            log.append(&mut good.clone(), None),
            Ok(AppendInfo {
                base_offset: Offset(0),
                ..
            })
        ));
    }

    #[test]
    fn an_append_larger_than_a_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(
            dir.path(),
            LogConfig {
                segment_bytes: 100,
                ..LogConfig::default()
            },
        )
        .unwrap();
        let mut big = batch(0, 5, 1_000, 100);
        let error = log.append(&mut big, None).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::RecordBatchTooLarge {
                    segment_bytes: 100,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(log.log_end_offset(), Offset(0));
    }

    #[test]
    fn full_segments_roll_and_reads_span_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        let mut stored = Vec::new();
        for round in 0..20 {
            let mut records = batch(0, 2, 1_000 + round, 150);
            log.append(&mut records, None).unwrap();
            stored.extend(records);
        }
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        for segment in &log.segments {
            assert!(segment.size_bytes <= 1024);
            assert!(segment
                .path
                .ends_with(format!("{:020}.log", segment.base_offset.0)));
        }
        let all = log.read(Offset(0), usize::MAX, Offset(40)).unwrap();
        assert_eq!(all.records.as_ref(), stored.as_slice());
        let from_middle = log.read(Offset(13), usize::MAX, Offset(40)).unwrap();
        assert_eq!(offsets_of(&from_middle.records)[0], (12, 13));
        assert_eq!(offsets_of(&from_middle.records).last(), Some(&(38, 39)));
    }

    #[test]
    fn a_segment_rolls_once_records_are_segment_ms_newer_than_its_first_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(
            dir.path(),
            LogConfig {
                segment_ms: 1_000,
                ..LogConfig::default()
            },
        )
        .unwrap();
        log.append(&mut batch(0, 1, 10_000, 10), None).unwrap();
        log.append(&mut batch(0, 1, 11_000, 10), None).unwrap();
        assert_eq!(
            log.segment_count(),
            1,
            "exactly segment.ms newer does not roll"
        );
        log.append(&mut batch(0, 1, 11_001, 10), None).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.active().base_offset, Offset(2));
    }

    #[test]
    fn reads_honour_max_bytes_upper_bound_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let mut sizes = Vec::new();
        for _ in 0..4 {
            let mut records = batch(0, 3, 1_000, 20);
            sizes.push(records.len());
            log.append(&mut records, None).unwrap();
        }
        // KIP-74: one whole batch even when it alone exceeds max_bytes.
        assert_eq!(
            offsets_of(&log.read(Offset(4), 1, Offset(12)).unwrap().records),
            vec![(3, 5)]
        );
        let two = sizes[0] + sizes[1];
        assert_eq!(
            offsets_of(&log.read(Offset(0), two + 10, Offset(12)).unwrap().records),
            vec![(0, 2), (3, 5)]
        );
        // A batch reaching the upper bound is not returned, even partly below it.
        assert_eq!(
            offsets_of(&log.read(Offset(0), usize::MAX, Offset(7)).unwrap().records),
            vec![(0, 2), (3, 5)]
        );
        assert!(log
            .read(Offset(7), usize::MAX, Offset(7))
            .unwrap()
            .records
            .is_empty());
        assert!(log
            .read(Offset(12), usize::MAX, Offset(12))
            .unwrap()
            .records
            .is_empty());
        let error = log.read(Offset(13), usize::MAX, Offset(12)).unwrap_err();
        assert!(matches!(
            error,
            LogError::OffsetOutOfRange {
                requested: Offset(13),
                log_end: Offset(12),
                ..
            }
        ));
    }

    #[test]
    fn truncation_removes_whole_batches_and_appends_continue_densely() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        for round in 0..20 {
            log.append(&mut batch(0, 2, 1_000 + round, 150), None)
                .unwrap();
        }
        let segments_before = log.segment_count();
        // Two 2-record batches per segment: offsets 20..24 are the fifth segment.
        assert_eq!(log.segments[5].base_offset, Offset(20));
        log.truncate_to(Offset(23)).unwrap();
        assert_eq!(
            log.log_end_offset(),
            Offset(22),
            "the batch holding 23 goes whole"
        );
        assert_eq!(log.segment_count(), 6);
        assert!(log.segment_count() < segments_before);
        assert_eq!(
            log.active().max_timestamp,
            Some((TimestampMs(1_011), Offset(20)))
        );
        let info = log.append(&mut batch(0, 1, 5_000, 10), None).unwrap();
        assert_eq!(info.base_offset, Offset(22));
        let read = log.read(Offset(20), usize::MAX, Offset(25)).unwrap();
        assert_eq!(offsets_of(&read.records), vec![(20, 21), (22, 22)]);

        let boundary = log.segments[1].base_offset;
        log.truncate_to(boundary).unwrap();
        assert_eq!((log.segment_count(), log.log_end_offset()), (2, boundary));
        assert!(log.active().is_empty());

        log.truncate_to(Offset(0)).unwrap();
        assert_eq!(
            (log.segment_count(), log.log_end_offset(), log.size_bytes()),
            (1, Offset(0), 0)
        );
        assert_eq!(
            log.append(&mut batch(0, 1, 1, 10), None)
                .unwrap()
                .base_offset,
            Offset(0)
        );
    }

    #[test]
    fn truncating_below_the_log_start_restarts_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch(0, 5, 1, 10), None).unwrap();
        log.truncate_to(Offset(0)).unwrap();
        log.truncate_fully_and_start_at(Offset(100)).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(100), Offset(100))
        );
        assert_eq!(
            log.append(&mut batch(0, 1, 1, 10), None)
                .unwrap()
                .base_offset,
            Offset(100)
        );
        let error = log.read(Offset(0), 100, Offset(101)).unwrap_err();
        assert!(matches!(
            error,
            LogError::OffsetOutOfRange {
                log_start: Offset(100),
                ..
            }
        ));
    }

    #[test]
    fn sync_handles_cover_unsynced_writes_until_marked_durable() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("t-0");
        let log = Log::open(&partition, small_config()).unwrap();
        let handle = log.sync_handle();
        assert_eq!(
            (handle.is_empty(), handle.offset()),
            (false, Offset(0)),
            "a new log's directory, its entry and its segment wait for the first sync"
        );
        let mut log = log;
        log.mark_durable(handle.sync().unwrap());
        assert!(log.sync_handle().is_empty());
        drop(log);
        let mut log = Log::open(&partition, small_config()).unwrap();
        assert!(log.sync_handle().is_empty(), "a reopened log is durable");
        log.append(&mut batch(0, 2, 1, 150), None).unwrap();
        let handle = log.sync_handle();
        assert!(!handle.is_empty());
        log.append(&mut batch(0, 2, 1, 150), None).unwrap();
        assert_eq!(handle.sync().unwrap(), Offset(2));
        log.mark_durable(Offset(2));
        assert_eq!(log.durable_offset(), Offset(2));
        for _ in 0..10 {
            log.append(&mut batch(0, 2, 1, 150), None).unwrap();
        }
        assert!(log.segment_count() > 1);
        let handle = log.sync_handle();
        let offset = handle.sync().unwrap();
        log.mark_durable(offset);
        assert_eq!(log.durable_offset(), log.log_end_offset());
        assert!(log.sync_handle().is_empty());
    }

    #[test]
    fn close_writes_indexes_and_delete_removes_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("orders-0");
        let mut log = Log::open(&partition, small_config()).unwrap();
        for round in 0..6 {
            log.append(&mut batch(0, 2, 1_000 + round, 150), None)
                .unwrap();
        }
        let entries = log.active().offset_index.entries().len();
        log.close().unwrap();
        let index = partition.join("00000000000000000000.index");
        assert!(entries >= 1);
        assert!(std::fs::metadata(&index).unwrap().len() >= 8);
        let log = Log::open(&partition, small_config()).unwrap();
        assert_eq!(log.log_end_offset(), Offset(12));
        log.delete().unwrap();
        assert!(!partition.exists());
    }

    #[test]
    fn a_log_can_be_shared_between_threads_behind_a_lock() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Log>();
        shareable::<SyncHandle>();
    }

    #[test]
    fn index_entries_are_added_every_interval_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            index_interval_bytes: 1000,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config).unwrap();
        let mut positions = Vec::new();
        let mut position = 0;
        for round in 0..12 {
            let mut records = batch(0, 1, 1_000 + round, 250);
            positions.push(position);
            position += records.len() as u32;
            log.append(&mut records, None).unwrap();
        }
        let size = positions[1];
        let expected_every = 1000_u32.div_ceil(size) as usize;
        let entries = log.active().offset_index.entries();
        assert_eq!(entries[0].position, 0);
        assert_eq!(entries[1].relative_offset as usize, expected_every);
        assert_eq!(entries[1].position, positions[expected_every]);
        assert_eq!(log.active().time_index.entries().len(), entries.len());
    }
}
