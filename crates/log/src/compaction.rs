//! Log compaction (`cleanup.policy=compact`): Kafka's log cleaner, for one partition at a time.
//!
//! A pass ([`Log::compact`]) works like Kafka's `Cleaner.doClean`:
//! 1. *Cleanable range.* Every inactive segment, up to (not including) the first one that ends
//!    past the caller's upper bound (the last stable offset: below the high watermark, nothing
//!    a truncation could remove decides what is kept, and below the first offset of every open
//!    transaction, whether a transactional batch was committed or aborted is known) or, when
//!    `min.compaction.lag.ms` is set, the first dirty segment holding a record newer than the
//!    lag (KIP-58). The active segment is never touched. The aborted transactions with
//!    batches in that range are read from the `.txnindex` files.
//! 2. *Offset map.* The key -> highest offset map of the dirty part of that range, from the
//!    cleaner checkpoint up (see `checkpoint`): everything below was cleaned by an earlier pass,
//!    so holds each key once. Aborted transactions' records stay out of it. The map stops
//!    growing after the batch that takes it past `offset_map_bytes_max`; what it covers ends
//!    there (`map_end`) and the next pass goes on.
//! 3. *Cleaning.* Every segment below `map_end`, clean ones included, is rewritten by the rules
//!    of `cleaner` (latest record per key, tombstones until their delete horizon, aborted
//!    transactions' batches removed, markers until theirs), oldest first,
//!    in groups of consecutive segments that together fit in `segment.bytes`: each group becomes
//!    one segment named after its first, written as `.cleaned` files and swapped in by `swap`.
//!    Oldest first matters: a tombstone only goes once every older record of its key has, and
//!    a marker only once every batch of its transaction has. The cleaned segment's `.txnindex`
//!    holds the entries of the ABORT markers it keeps for their data. A group with one segment
//!    that nothing changed in is left as it is.
//! 4. *Checkpoint.* `map_end` becomes the new cleaner checkpoint.
//!
//! Offsets never change: a rewritten batch keeps its base and last offset, an emptied one is
//! dropped (leaving a gap readers skip) unless its header must stay (see `cleaner`).

use std::collections::HashMap;
use std::ops::{ControlFlow, Range};
use std::time::SystemTime;

use strom_protocol::batch::{self, BatchHeader};
use strom_types::{Offset, TimestampMs};

use crate::checkpoint;
use crate::cleaner::{self, AbortedTxns, Kept, OffsetMap, ProducerTail, Rules, TxnPass};
use crate::config::SEGMENT_BYTES_MAX;
use crate::error::{IoContext, LogError};
use crate::index::OffsetEntry;
use crate::log::Log;
use crate::recovery;
use crate::rewrite;
use crate::scan::{self, Check, WalkStart};
use crate::segment::Segment;
use crate::swap::{self, CLEANED_SUFFIX};
use crate::sync::SyncTarget;
use crate::txn_recovery;

/// A compacted topic's settings, with Kafka's names and defaults, plus the cleaner's memory limit.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone stays readable after the pass that first saw
    /// it (its delete horizon), so a consumer reading from the start within that time sees it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records newer than this are not compacted (whole segments are
    /// held back, as in Kafka).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: [`Log::needs_compaction`] says yes once a dirty record is older
    /// than this, whatever the dirty ratio (KIP-354).
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: [`Log::needs_compaction`] says yes above this dirty ratio.
    pub min_cleanable_dirty_ratio: f64,
    /// The offset map's memory limit (Kafka's `log.cleaner.dedupe.buffer.size`); a pass maps at
    /// least one batch, and what does not fit is left for the next pass.
    pub offset_map_bytes_max: u64,
}

impl Default for CompactionConfig {
    fn default() -> CompactionConfig {
        CompactionConfig {
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            offset_map_bytes_max: 128 * 1024 * 1024,
        }
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionInfo {
    /// Segments replaced by cleaned ones (several may merge into one).
    pub segments_cleaned: usize,
    /// Records dropped: older values of a key, expired tombstones, records without a key.
    pub records_removed: u64,
    /// Size of the segments the pass read (those below the mapped range's end), before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The cleaner checkpoint after the pass: where the next pass starts mapping.
    pub first_dirty_offset: Offset,
}

/// Bytes of cleaned batches gathered before one write to the `.cleaned` file.
const CLEANED_WRITE_BYTES: usize = 1024 * 1024;

impl Log {
    /// The cleaner checkpoint: offsets below it have been through compaction.
    pub fn first_dirty_offset(&self) -> Offset {
        self.first_dirty_offset.max(self.log_start_offset)
    }

    /// Bytes of inactive segments not yet cleaned (at or past the cleaner checkpoint) over all
    /// inactive bytes; 0 when there are no inactive segments.
    pub fn dirty_ratio(&self) -> f64 {
        let inactive = &self.segments[..self.segments.len() - 1];
        let (clean, dirty) = self.clean_and_dirty_bytes(inactive);
        match clean + dirty {
            0 => 0.0,
            total => dirty as f64 / total as f64,
        }
    }

    /// Kafka's choice of a log to clean: some cleanable dirty bytes, and either a cleanable dirty
    /// ratio above `min_cleanable_dirty_ratio` (counting only what `min_compaction_lag_ms`
    /// allows) or a dirty record older than `max_compaction_lag_ms`.
    pub fn needs_compaction(
        &self,
        now: TimestampMs,
        config: &CompactionConfig,
    ) -> Result<bool, LogError> {
        let cleanable = self.cleanable_segments(self.log_end_offset(), now, config)?;
        let (clean, dirty) = self.clean_and_dirty_bytes(&self.segments[..cleanable]);
        if dirty == 0 {
            return Ok(false);
        }
        let ratio = dirty as f64 / (clean + dirty) as f64;
        let cutoff = now.0.saturating_sub(config.max_compaction_lag_ms);
        let first_dirty = self.first_dirty_offset();
        let overdue = self.segments[..self.segments.len() - 1]
            .iter()
            .filter(|segment| segment.next_offset > first_dirty)
            .filter_map(|segment| segment.first_batch_timestamp)
            .any(|first| first.0 > 0 && first.0 < cutoff);
        Ok(ratio > config.min_cleanable_dirty_ratio || overdue)
    }

    fn clean_and_dirty_bytes(&self, segments: &[Segment]) -> (u64, u64) {
        let first_dirty = self.first_dirty_offset();
        let dirty: u64 = segments
            .iter()
            .filter(|segment| segment.next_offset > first_dirty)
            .map(|segment| segment.size_bytes)
            .sum();
        let total: u64 = segments.iter().map(|segment| segment.size_bytes).sum();
        (total - dirty, dirty)
    }

    /// One compaction pass over every inactive segment; see the module docs. Same as
    /// [`Log::compact_below`] with the log end as the bound.
    pub fn compact(
        &mut self,
        now: TimestampMs,
        config: &CompactionConfig,
    ) -> Result<CompactionInfo, LogError> {
        self.compact_below(self.log_end_offset(), now, config)
    }

    /// One compaction pass over the inactive segments that end at or below `upper_bound`: the
    /// partition's last stable offset (Kafka's first unstable offset, never above the high
    /// watermark). Transactional batches above it would be taken for committed ones. Segments
    /// already swapped in stay if a later group fails; the log is consistent either way. An I/O
    /// error after a swap's commit point is fatal: reopen the log, and recovery finishes the
    /// swap.
    pub fn compact_below(
        &mut self,
        upper_bound: Offset,
        now: TimestampMs,
        config: &CompactionConfig,
    ) -> Result<CompactionInfo, LogError> {
        let first_dirty = self.first_dirty_offset();
        let mut info = CompactionInfo {
            segments_cleaned: 0,
            records_removed: 0,
            bytes_before: 0,
            bytes_after: 0,
            first_dirty_offset: first_dirty,
        };
        let cleanable = self.cleanable_segments(upper_bound, now, config)?;
        if cleanable == 0 {
            return Ok(info);
        }
        let cleanable_end = self.segments[cleanable - 1].next_offset;
        let aborted = AbortedTxns::new(self.aborted_txns(self.log_start_offset, cleanable_end)?);
        let (map, map_end) = build_offset_map(
            &self.segments[..cleanable],
            first_dirty,
            config.offset_map_bytes_max,
            &aborted,
        )?;
        let producers = self.producer_tails()?;
        let mut txns = TxnPass::new(&aborted);
        let rules = Rules {
            map: &map,
            map_end,
            now,
            delete_retention_ms: config.delete_retention_ms,
        };
        let count =
            self.segments[..cleanable].partition_point(|segment| segment.base_offset < map_end);
        let groups = group_lengths(
            &self.segments[..count],
            self.config.segment_bytes_effective(),
        );
        let mut at = 0;
        for length in groups {
            let group = at..at + length;
            let bytes_before: u64 = self.segments[group.clone()]
                .iter()
                .map(|s| s.size_bytes)
                .sum();
            let (records_removed, replacement) =
                self.clean_group(group.clone(), &rules, &producers, &mut txns)?;
            info.records_removed += records_removed;
            info.bytes_before += bytes_before;
            match replacement {
                Some(segment) => {
                    info.segments_cleaned += length;
                    info.bytes_after += segment.size_bytes;
                    self.segments.splice(group, [segment]);
                    at += 1;
                }
                None => {
                    info.bytes_after += bytes_before;
                    at += length;
                }
            }
        }
        info.first_dirty_offset = map_end.max(first_dirty);
        if info.first_dirty_offset != self.first_dirty_offset {
            checkpoint::write(&self.dir, info.first_dirty_offset)?;
            self.first_dirty_offset = info.first_dirty_offset;
        }
        tracing::info!(dir = %self.dir.display(), keys = map.len(), segments_cleaned = info.segments_cleaned, records_removed = info.records_removed, bytes_before = info.bytes_before, bytes_after = info.bytes_after, first_dirty_offset = %info.first_dirty_offset, "compacted log");
        Ok(info)
    }

    /// How many leading segments a pass may clean; see the module docs.
    fn cleanable_segments(
        &self,
        upper_bound: Offset,
        now: TimestampMs,
        config: &CompactionConfig,
    ) -> Result<usize, LogError> {
        let first_dirty = self.first_dirty_offset();
        // As in Kafka, a lag of 0 holds nothing back, even records stamped in the future.
        let lag_cutoff = (config.min_compaction_lag_ms > 0)
            .then(|| now.0.saturating_sub(config.min_compaction_lag_ms));
        let inactive = &self.segments[..self.segments.len() - 1];
        for (at, segment) in inactive.iter().enumerate() {
            if segment.next_offset > upper_bound {
                return Ok(at);
            }
            if let Some(cutoff) = lag_cutoff {
                if segment.next_offset > first_dirty && segment.largest_timestamp()?.0 > cutoff {
                    return Ok(at);
                }
            }
        }
        Ok(inactive.len())
    }

    /// How each producer's batches in the whole log end (see [`ProducerTail`]): Kafka keeps
    /// the header of a producer's last data batch however many of its records go, since it
    /// carries the sequence number the producer's next batch must follow, and of its last
    /// marker when that carries a newer epoch than any data batch.
    fn producer_tails(&self) -> Result<HashMap<i64, ProducerTail>, LogError> {
        let mut tails: HashMap<i64, ProducerTail> = HashMap::new();
        for segment in &self.segments {
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
                    if header.producer_id >= 0 {
                        let tail = tails.entry(header.producer_id).or_insert(ProducerTail {
                            last_data: None,
                            latest_epoch: header.producer_epoch,
                        });
                        tail.add(header);
                    }
                    ControlFlow::Continue(())
                },
            )?;
            check_walked(segment, end)?;
        }
        Ok(tails)
    }

    /// Writes the cleaned replacement of `segments[group]` and swaps it in. Returns the records
    /// removed and the new segment, or `None` if the group was a single segment nothing changed
    /// in (then nothing was swapped).
    fn clean_group(
        &self,
        group: Range<usize>,
        rules: &Rules<'_>,
        producers: &HashMap<i64, ProducerTail>,
        txns: &mut TxnPass<'_>,
    ) -> Result<(u64, Option<Segment>), LogError> {
        let segments = &self.segments[group];
        let base = segments[0].base_offset;
        let group_end = segments[segments.len() - 1].next_offset;
        swap::discard_cleaned(&self.dir, base)?;
        let mut writer = CleanedWriter {
            segment: Segment::create_suffixed(&self.dir, base, CLEANED_SUFFIX, &self.pool)?,
            pending: Vec::new(),
            batches: Vec::new(),
            index_interval_bytes: self.config.index_interval_bytes,
        };
        let written = write_group(segments, group_end, &mut writer, rules, producers, txns)
            .and_then(|(removed, changed)| match changed || segments.len() > 1 {
                true => writer
                    .finish(latest_modification(segments)?)
                    .map(|()| Some(removed)),
                false => Ok(None),
            });
        let removed = match written {
            Ok(Some(removed)) => removed,
            Ok(None) => {
                drop(writer);
                swap::discard_cleaned(&self.dir, base)?;
                return Ok((0, None));
            }
            Err(error) => {
                drop(writer);
                swap::discard_cleaned(&self.dir, base)?;
                return Err(error);
            }
        };
        assert_eq!(
            writer.segment.next_offset, group_end,
            "a cleaned segment keeps its group's last batch"
        );
        drop(writer);
        let replaced: Vec<Offset> = segments.iter().map(|segment| segment.base_offset).collect();
        swap::commit(&self.dir, base, &replaced)?;
        let mut segment = Segment::open(&self.dir, base, &self.pool)?;
        let readable = txn_recovery::load(&mut segment)?;
        if recovery::load_inactive(&mut segment, self.config.index_interval_bytes)?.cut_short
            || !readable
        {
            return Err(LogError::corrupt(
                &segment.path,
                "the segment compaction just wrote and synced fails its checks",
            ));
        }
        segment.txn_index.unload();
        Ok((removed, Some(segment)))
    }
}

/// The offset map of the dirty part of `segments` (from `first_dirty`), and the offset its
/// coverage ends at: the end of `segments`, or the end of the batch that filled the map.
fn build_offset_map(
    segments: &[Segment],
    first_dirty: Offset,
    bytes_max: u64,
    aborted: &AbortedTxns,
) -> Result<(OffsetMap, Offset), LogError> {
    let mut map = OffsetMap::default();
    for segment in segments
        .iter()
        .filter(|segment| segment.next_offset > first_dirty)
    {
        let mut full_at = None;
        let file = segment.file.get()?;
        let end = scan::walk_batches(
            segment.segment_file(&file),
            walk_start(segment, first_dirty),
            |header, _, bytes| {
                if header.last_offset() < first_dirty || !cleaner::is_compactable(header, aborted) {
                    return Ok(ControlFlow::Continue(()));
                }
                for record in rewrite::decode_records(header, bytes)? {
                    match &record.key {
                        Some(key) if record.offset >= first_dirty.0 => {
                            map.insert(key, Offset(record.offset))
                        }
                        _ => {}
                    }
                }
                if map.bytes() < bytes_max {
                    return Ok(ControlFlow::Continue(()));
                }
                full_at = Some(header.next_offset());
                Ok(ControlFlow::Break(()))
            },
        )?;
        check_walked(segment, end)?;
        if let Some(map_end) = full_at {
            return Ok((map, map_end));
        }
    }
    let end = segments
        .last()
        .expect("a cleanable range has a segment")
        .next_offset;
    Ok((map, end))
}

/// Where to start walking `segment` to reach `offset` (the batch the offset index names, at or
/// before it), or its start.
fn walk_start(segment: &Segment, offset: Offset) -> WalkStart {
    let entry = (offset > segment.base_offset)
        .then(|| segment.offset_index.lookup(segment.relative(offset)))
        .flatten()
        .unwrap_or(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
    WalkStart {
        position: u64::from(entry.position),
        next_offset: segment.base_offset.plus(i64::from(entry.relative_offset)),
    }
}

/// Damage found while compaction reads an inactive segment is corruption: recovery checked it.
fn check_walked(segment: &Segment, end: scan::WalkEnd) -> Result<(), LogError> {
    match end.damage {
        Some(damage) => Err(LogError::corrupt(
            &segment.path,
            format!("at byte {}: {damage}", end.position),
        )),
        None => Ok(()),
    }
}

/// Consecutive segments grouped so each group's old size fits in `bytes_max` and its offsets in
/// one segment's 32-bit relative offsets; the length of each group, in order.
fn group_lengths(segments: &[Segment], bytes_max: u64) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].base_offset;
        let mut bytes = segments[start].size_bytes;
        let mut end = start + 1;
        while let Some(next) = segments.get(end) {
            let fits = bytes + next.size_bytes <= bytes_max
                && next.next_offset.minus(base) <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            bytes += next.size_bytes;
            end += 1;
        }
        lengths.push(end - start);
        start = end;
    }
    lengths
}

/// Runs the cleaner's rules over every batch of the group into `writer`. Returns the records
/// removed and whether anything differs from the stored batches.
fn write_group(
    segments: &[Segment],
    group_end: Offset,
    writer: &mut CleanedWriter,
    rules: &Rules<'_>,
    producers: &HashMap<i64, ProducerTail>,
    txns: &mut TxnPass<'_>,
) -> Result<(u64, bool), LogError> {
    let mut removed = 0;
    let mut changed = false;
    for segment in segments {
        let start = WalkStart {
            position: 0,
            next_offset: segment.base_offset,
        };
        let file = segment.file.get()?;
        let end = scan::walk_batches(segment.segment_file(&file), start, |header, _, bytes| {
            let producer_last = header.producer_id >= 0
                && producers
                    .get(&header.producer_id)
                    .is_some_and(|tail| tail.keeps_header(header));
            let keep_header = producer_last || header.next_offset() == group_end;
            let filtered = cleaner::filter_batch(header, bytes, rules, txns, keep_header)?;
            removed += filtered.records_removed;
            if let Some(entry) = filtered.indexed {
                writer.segment.txn_index.append(entry)?;
            }
            match filtered.kept {
                Kept::Whole => writer.push(bytes)?,
                Kept::Rewritten(rewritten) => {
                    changed = true;
                    writer.push(&rewritten)?;
                }
                Kept::Dropped => changed = true,
            }
            Ok(ControlFlow::Continue(()))
        })?;
        check_walked(segment, end)?;
    }
    let mut indexed_before = Vec::new();
    for segment in segments {
        indexed_before.extend_from_slice(&segment.txn_index.entries()?);
    }
    changed |= indexed_before.as_slice() != writer.segment.txn_index.entries()?.as_ref();
    Ok((removed, changed))
}

/// The newest modification time among `segments`' files, which the cleaned segment takes over
/// (as Kafka does), so time retention of timestamp-less segments does not restart.
fn latest_modification(segments: &[Segment]) -> Result<SystemTime, LogError> {
    let mut latest = SystemTime::UNIX_EPOCH;
    for segment in segments {
        let modified = std::fs::metadata(&segment.path)
            .and_then(|metadata| metadata.modified())
            .at(&segment.path)?;
        latest = latest.max(modified);
    }
    Ok(latest)
}

/// A group's cleaned segment being written, in writes of about [`CLEANED_WRITE_BYTES`].
struct CleanedWriter {
    segment: Segment,
    pending: Vec<u8>,
    batches: Vec<(BatchHeader, Range<usize>)>,
    index_interval_bytes: u32,
}

impl CleanedWriter {
    fn push(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        // Paired with the CRC walk that read the originals: whatever goes out is a valid batch.
        let header = batch::validate(bytes).expect("compaction writes only valid batches");
        let start = self.pending.len();
        self.pending.extend_from_slice(bytes);
        self.batches.push((header, start..self.pending.len()));
        if self.pending.len() >= CLEANED_WRITE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let size_bytes = self.segment.size_bytes + self.pending.len() as u64;
        if size_bytes > SEGMENT_BYTES_MAX {
            return Err(LogError::Uncompactable {
                base_offset: self.segment.base_offset,
                reason: format!(
                    "the cleaned segment would grow to {size_bytes} bytes, more than the \
                     {SEGMENT_BYTES_MAX} a segment may hold"
                ),
            });
        }
        self.segment
            .append(&self.pending, &self.batches, self.index_interval_bytes)?;
        self.pending.clear();
        self.batches.clear();
        Ok(())
    }

    /// Writes what is pending and the indexes, dates the file, and fsyncs all three files (the
    /// log file with its metadata, for the date).
    fn finish(&mut self, modified: SystemTime) -> Result<(), LogError> {
        self.flush()?;
        self.segment.deactivate()?;
        let segment = &self.segment;
        let file = segment.file.get()?;
        file.set_modified(modified).at(&segment.path)?;
        file.sync_all().at(&segment.path)?;
        for index in [segment.offset_index.path(), segment.time_index.path()] {
            SyncTarget::Path(index.to_path_buf()).sync()?;
        }
        if !segment.txn_index.is_empty() {
            SyncTarget::Path(segment.txn_index.path().to_path_buf()).sync()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::test_support::{keyed_batch, keyed_batch_with, Producer};
    use kafka_protocol::records::Compression;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 100,
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    /// Appends one single-record batch per (key, value), at timestamp 1_000 + its offset.
    fn append(log: &mut Log, records: &[(&str, Option<&str>)]) {
        for &(key, value) in records {
            let offset = log.log_end_offset().0;
            let mut bytes = keyed_batch(&[(Some(key), value)], 1_000 + offset);
            log.append(&mut bytes, None).unwrap();
        }
    }

    /// Every record the log serves, as (offset, key, value).
    fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let read = log
            .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
            .unwrap();
        let mut out = Vec::new();
        for (header, range) in batch::Batches::new(&read.records) {
            for record in rewrite::decode_records(&header, &read.records[range]).unwrap() {
                let text = |bytes: &bytes::Bytes| String::from_utf8(bytes.to_vec()).unwrap();
                out.push((
                    record.offset,
                    text(record.key.as_ref().unwrap()),
                    record.value.as_ref().map(text),
                ));
            }
        }
        out
    }

    #[test]
    fn the_latest_value_of_each_key_survives_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let keys = ["a", "b", "c"];
        for round in 0..8 {
            for key in keys {
                let value = format!("{key}{round}");
                append(&mut log, &[(key, Some(&value))]);
            }
        }
        assert!(log.segment_count() > 3);
        let active_base = log.active_segment_base_offset();
        assert!(log.dirty_ratio() == 1.0);
        let info = log
            .compact(TimestampMs(10_000), &CompactionConfig::default())
            .unwrap();
        assert_eq!(info.first_dirty_offset, active_base);
        assert_eq!(log.dirty_ratio(), 0.0);
        let below: Vec<_> = contents(&log)
            .into_iter()
            .filter(|(offset, _, _)| *offset < active_base.0)
            .collect();
        let mut seen: Vec<&str> = below.iter().map(|(_, key, _)| key.as_str()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            below.len(),
            "one record per key below the active segment: {below:?}"
        );
        for (offset, key, value) in &below {
            let round = offset / 3;
            assert_eq!(value.as_deref(), Some(format!("{key}{round}").as_str()));
        }
        assert!(info.bytes_after < info.bytes_before);
        assert_eq!(
            info.records_removed as usize,
            active_base.0 as usize - below.len()
        );
        assert_eq!(log.log_end_offset(), Offset(24));
        assert_eq!(
            log.segments[0].base_offset,
            Offset(0),
            "segments keep their names"
        );
    }

    #[test]
    fn reads_starting_in_a_gap_return_the_next_surviving_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        append(
            &mut log,
            &[
                ("a", Some("1")),
                ("a", Some("2")),
                ("b", Some("1")),
                ("a", Some("3")),
            ],
        );
        append(
            &mut log,
            &[
                ("b", Some("2")),
                ("c", Some("1")),
                ("c", Some("2")),
                ("d", Some("1")),
            ],
        );
        log.roll_active().unwrap();
        log.compact(TimestampMs(10_000), &CompactionConfig::default())
            .unwrap();
        let offsets: Vec<i64> = contents(&log)
            .iter()
            .map(|(offset, _, _)| *offset)
            .collect();
        assert_eq!(offsets, vec![3, 4, 6, 7]);
        for (start, first) in [(0, 3), (1, 3), (3, 3), (4, 4), (5, 6), (7, 7)] {
            let read = log.read(Offset(start), 1, log.log_end_offset()).unwrap();
            let (header, _) = batch::Batches::new(&read.records).next().unwrap();
            assert_eq!(header.base_offset, Offset(first), "read at {start}");
        }
        assert!(log
            .read(Offset(8), 100, Offset(8))
            .unwrap()
            .records
            .is_empty());
    }

    #[test]
    fn tombstones_stay_for_the_delete_retention_after_the_pass_that_saw_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        append(&mut log, &[("a", Some("1")), ("b", Some("1")), ("a", None)]);
        log.roll_active().unwrap();
        let config = CompactionConfig {
            delete_retention_ms: 1_000,
            ..CompactionConfig::default()
        };
        log.compact(TimestampMs(50_000), &config).unwrap();
        let tombstone = (2, "a".to_string(), None);
        assert_eq!(
            contents(&log),
            vec![(1, "b".into(), Some("1".into())), tombstone.clone()]
        );
        log.compact(TimestampMs(50_999), &config).unwrap();
        assert_eq!(
            contents(&log).last(),
            Some(&tombstone),
            "within the retention"
        );
        let info = log.compact(TimestampMs(51_000), &config).unwrap();
        assert_eq!(info.records_removed, 1);
        // The tombstone was the segment's last batch: its header stays, empty.
        assert_eq!(contents(&log), vec![(1, "b".into(), Some("1".into()))]);
        assert_eq!(log.segments[0].next_offset, Offset(3));
    }

    #[test]
    fn segments_newer_than_the_compaction_lag_or_past_the_bound_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        append(&mut log, &[("a", Some("1")), ("a", Some("2"))]); // timestamps 1000, 1001
        log.roll_active().unwrap();
        append(&mut log, &[("a", Some("3")), ("a", Some("4"))]); // 1002, 1003
        log.roll_active().unwrap();
        let lagged = CompactionConfig {
            min_compaction_lag_ms: 500,
            ..CompactionConfig::default()
        };
        // At 1502 only the first segment is old enough.
        let info = log.compact(TimestampMs(1_502), &lagged).unwrap();
        assert_eq!(info.first_dirty_offset, Offset(2));
        let offsets: Vec<i64> = contents(&log)
            .iter()
            .map(|(offset, _, _)| *offset)
            .collect();
        assert_eq!(offsets, vec![1, 2, 3]);
        assert!(!log.needs_compaction(TimestampMs(1_502), &lagged).unwrap());
        assert!(log.needs_compaction(TimestampMs(1_504), &lagged).unwrap());
        // A bound inside the second segment keeps it out too.
        let info = log
            .compact_below(Offset(3), TimestampMs(9_000), &lagged)
            .unwrap();
        assert_eq!(
            (info.segments_cleaned, info.first_dirty_offset),
            (0, Offset(2))
        );
        let info = log
            .compact_below(Offset(4), TimestampMs(9_000), &lagged)
            .unwrap();
        assert_eq!(info.first_dirty_offset, Offset(4));
        let offsets: Vec<i64> = contents(&log)
            .iter()
            .map(|(offset, _, _)| *offset)
            .collect();
        assert_eq!(offsets, vec![3]);
    }

    #[test]
    fn a_full_offset_map_leaves_the_rest_for_the_next_pass() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        for round in 0..3 {
            for key in ["k1", "k2", "k3", "k4"] {
                append(&mut log, &[(key, Some(&format!("{round}")))]);
            }
        }
        log.roll_active().unwrap();
        let tiny = CompactionConfig {
            offset_map_bytes_max: 1,
            ..CompactionConfig::default()
        };
        let first = log.compact(TimestampMs(9_000), &tiny).unwrap();
        assert_eq!(first.first_dirty_offset, Offset(1), "one batch per pass");
        let mut passes = 1;
        while log.first_dirty_offset() < log.active_segment_base_offset() {
            log.compact(TimestampMs(9_000), &tiny).unwrap();
            passes += 1;
        }
        assert_eq!(passes, 12);
        let keys: Vec<_> = contents(&log)
            .into_iter()
            .map(|(offset, key, _)| (offset, key))
            .collect();
        assert_eq!(
            keys,
            vec![
                (8, "k1".into()),
                (9, "k2".into()),
                (10, "k3".into()),
                (11, "k4".into())
            ]
        );
    }

    #[test]
    fn small_cleaned_segments_merge_up_to_the_segment_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        for _ in 0..30 {
            append(&mut log, &[("same", Some("value"))]);
        }
        let before = log.segment_count();
        assert!(before > 4);
        // Groups are sized by the segments' sizes before cleaning, as in Kafka, so the segments
        // the first pass shrank merge on the second.
        let mut counts = Vec::new();
        for _ in 0..3 {
            log.compact(TimestampMs(9_000), &CompactionConfig::default())
                .unwrap();
            counts.push(log.segment_count());
        }
        assert!(counts[0] > counts[1], "{before} -> {counts:?}");
        assert_eq!(
            counts[2], 2,
            "one cleaned segment and the active one: {counts:?}"
        );
        for pair in log.segments.windows(2) {
            assert_eq!(pair[0].next_offset, pair[1].base_offset, "contiguous");
        }
        // Reopening finds the same log.
        let segments = log.segment_count();
        let contents_before = contents(&log);
        drop(log);
        let log = Log::open(dir.path(), config()).unwrap();
        assert_eq!(
            (log.segment_count(), contents(&log)),
            (segments, contents_before)
        );
        assert_eq!(log.first_dirty_offset(), log.active_segment_base_offset());
    }

    #[test]
    fn the_last_batch_of_an_idempotent_producer_keeps_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let producer = Producer {
            id: 42,
            epoch: 0,
            base_sequence: 7,
        };
        let records = [(Some("a"), Some("1")), (Some("b"), Some("1"))];
        let mut bytes = keyed_batch_with(&records, 1_000, Compression::Gzip, Some(producer));
        log.append(&mut bytes, None).unwrap();
        append(
            &mut log,
            &[("a", Some("2")), ("b", Some("2")), ("c", Some("1"))],
        );
        log.roll_active().unwrap();
        log.compact(TimestampMs(9_000), &CompactionConfig::default())
            .unwrap();
        let read = log
            .read(Offset(0), usize::MAX, log.log_end_offset())
            .unwrap();
        let (first, _) = batch::Batches::new(&read.records).next().unwrap();
        assert_eq!(
            (first.base_offset, first.last_offset(), first.record_count),
            (Offset(0), Offset(1), 0)
        );
        assert_eq!((first.producer_id, first.base_sequence), (42, 7));
    }

    #[test]
    fn a_log_append_time_batch_that_lost_its_first_record_answers_with_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let records = [(Some("a"), Some("1")), (Some("b"), Some("1"))];
        let mut bytes = keyed_batch_with(&records, 1_000, Compression::Lz4, None);
        log.append(&mut bytes, Some(TimestampMs(7_000))).unwrap();
        append(&mut log, &[("a", Some("2"))]);
        log.roll_active().unwrap();
        log.compact(TimestampMs(9_000), &CompactionConfig::default())
            .unwrap();
        assert_eq!(
            log.offset_for_timestamp(TimestampMs(6_000)).unwrap(),
            Some((Offset(1), TimestampMs(7_000)))
        );
    }

    #[test]
    fn dirty_ratio_counts_inactive_bytes_past_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        assert_eq!(log.dirty_ratio(), 0.0);
        append(&mut log, &[("a", Some("1")), ("b", Some("1"))]);
        log.roll_active().unwrap();
        log.compact(TimestampMs(9_000), &CompactionConfig::default())
            .unwrap();
        append(&mut log, &[("c", Some("1")), ("d", Some("1"))]);
        log.roll_active().unwrap();
        let sizes: Vec<u64> = log.segments.iter().map(|s| s.size_bytes).collect();
        let expected = sizes[1] as f64 / (sizes[0] + sizes[1]) as f64;
        assert!((log.dirty_ratio() - expected).abs() < 1e-9);
        let config = CompactionConfig::default();
        assert_eq!(
            log.needs_compaction(TimestampMs(9_000), &config).unwrap(),
            expected > 0.5
        );
        // Truncation below the checkpoint makes what follows dirty again.
        log.truncate_to(Offset(1)).unwrap();
        assert_eq!(log.first_dirty_offset(), Offset(1));
        drop(log);
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.first_dirty_offset(), Offset(1));
    }
}
