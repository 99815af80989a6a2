//! One segment: a `.log` file of batches stored back to back, with its two sparse indexes and
//! its aborted-transaction index (`.txnindex`, a file only once it has an entry).
//!
//! A segment is *active* while it is the log's last one and takes appends; it becomes inactive
//! when the log rolls ([`Segment::deactivate`] writes a final time-index entry and flushes both
//! indexes). All writes are positional (`write_all_at`) and all reads are `read_at`, so readers
//! need only `&self` and no file cursor is shared.

use std::fs::{File, OpenOptions};
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strom_protocol::batch::{BatchHeader, Batches};
use strom_types::{Offset, TimestampMs};

use crate::config::SEGMENT_BYTES_MAX;
use crate::error::{IoContext, LogError};
use crate::files::{self, remove_if_exists, FilePool, PooledFile};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::scan::{self, Check, SegmentFile, WalkStart};
use crate::sync::SyncTarget;
use crate::txn_index::TxnIndex;

pub(crate) const LOG_EXTENSION: &str = "log";
pub(crate) const INDEX_EXTENSION: &str = "index";
pub(crate) const TIME_INDEX_EXTENSION: &str = "timeindex";
pub(crate) const TXN_INDEX_EXTENSION: &str = "txnindex";
/// The extensions of a segment's files.
pub(crate) const EXTENSIONS: [&str; 4] = [
    LOG_EXTENSION,
    INDEX_EXTENSION,
    TIME_INDEX_EXTENSION,
    TXN_INDEX_EXTENSION,
];

/// `<base offset, 20 digits>.<extension>`, Kafka's file naming.
pub(crate) fn file_path(dir: &Path, base_offset: Offset, extension: &str) -> PathBuf {
    suffixed_file_path(dir, base_offset, extension, "")
}

/// `<base offset, 20 digits>.<extension><suffix>`: a segment file being written by compaction
/// (`.cleaned`) or swapped in (`.swap`).
pub(crate) fn suffixed_file_path(
    dir: &Path,
    base_offset: Offset,
    extension: &str,
    suffix: &str,
) -> PathBuf {
    assert!(
        base_offset.0 >= 0,
        "segment base offset {base_offset} is negative"
    );
    dir.join(format!("{:020}.{extension}{suffix}", base_offset.0))
}

/// `<20 digits>.<rest>` -> (base offset, rest), where rest is an extension with any suffix
/// (`log`, `index.swap`, ...). Names of other files give `None`.
pub(crate) fn parse_file_name(path: &Path) -> Option<(Offset, &str)> {
    let name = path.file_name()?.to_str()?;
    let (stem, rest) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((Offset(stem.parse().ok()?), rest))
}

/// A segment's files and what is known about the batches in them.
pub(crate) struct Segment {
    pub base_offset: Offset,
    /// The offset after the segment's last batch (its base offset while empty).
    pub next_offset: Offset,
    pub path: PathBuf,
    /// The `.log` file, opened on use through the node's pool (the indexes live in memory and
    /// are opened only to be written out).
    pub file: PooledFile,
    /// Bytes of whole batches; anything in the file past this is not part of the log.
    pub size_bytes: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The aborted transactions whose ABORT marker is in this segment (see `txn_index`).
    pub txn_index: TxnIndex,
    /// Bytes of batches since (and including) the one the last index entry points at.
    pub bytes_since_index_entry: u64,
    /// The largest batch max timestamp and the base offset of the first batch that reached it.
    pub max_timestamp: Option<(TimestampMs, Offset)>,
    /// The max timestamp of the first batch, which `segment.ms` is measured from.
    pub first_batch_timestamp: Option<TimestampMs>,
    /// Wall-clock time the segment was created or opened, for `segment.ms` without timestamps.
    pub opened_at: TimestampMs,
}

impl Segment {
    /// Creates the files of a new, empty segment. Fails if its `.log` file already exists.
    pub fn create(dir: &Path, base_offset: Offset, pool: &FilePool) -> Result<Segment, LogError> {
        Segment::create_suffixed(dir, base_offset, "", pool)
    }

    /// Creates a new, empty segment whose file names end in `suffix` (compaction writes
    /// `<base>.log.cleaned` and its indexes this way, then renames them into place).
    pub fn create_suffixed(
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        pool: &FilePool,
    ) -> Result<Segment, LogError> {
        let path = suffixed_file_path(dir, base_offset, LOG_EXTENSION, suffix);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let file = pool.adopt(path.clone(), file);
        let mut segment = Segment::with_file(dir, base_offset, suffix, path, file, 0);
        segment.offset_index.reset();
        segment.time_index.reset();
        Ok(segment)
    }

    /// Opens an existing segment's files. Nothing is known about its batches until recovery
    /// loads or rebuilds its indexes.
    pub fn open(dir: &Path, base_offset: Offset, pool: &FilePool) -> Result<Segment, LogError> {
        let path = file_path(dir, base_offset, LOG_EXTENSION);
        let file = files::open_read_write(&path)?;
        let size_bytes = file.metadata().at(&path)?.len();
        if size_bytes > SEGMENT_BYTES_MAX {
            // Index entries could not address it; this log never writes such a file.
            let reason = format!("the segment is {size_bytes} bytes, more than the {SEGMENT_BYTES_MAX} a segment may hold");
            return Err(LogError::corrupt(&path, reason));
        }
        let file = pool.adopt(path.clone(), file);
        Ok(Segment::with_file(
            dir,
            base_offset,
            "",
            path,
            file,
            size_bytes,
        ))
    }

    fn with_file(
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        path: PathBuf,
        file: PooledFile,
        size_bytes: u64,
    ) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            path,
            file,
            size_bytes,
            offset_index: OffsetIndex::new(&suffixed_file_path(
                dir,
                base_offset,
                INDEX_EXTENSION,
                suffix,
            )),
            time_index: TimeIndex::new(&suffixed_file_path(
                dir,
                base_offset,
                TIME_INDEX_EXTENSION,
                suffix,
            )),
            txn_index: TxnIndex::new(&suffixed_file_path(
                dir,
                base_offset,
                TXN_INDEX_EXTENSION,
                suffix,
            )),
            bytes_since_index_entry: 0,
            max_timestamp: None,
            first_batch_timestamp: None,
            opened_at: TimestampMs::now(),
        }
    }

    /// The segment as a walk reads it, through `file` (from [`PooledFile::get`]).
    pub fn segment_file<'a>(&'a self, file: &'a File) -> SegmentFile<'a> {
        SegmentFile {
            file,
            path: &self.path,
            size_bytes: self.size_bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// `offset` relative to the base offset, as index entries store it.
    pub fn relative(&self, offset: Offset) -> u32 {
        let relative = offset.minus(self.base_offset);
        assert!(
            (0..=i64::from(i32::MAX)).contains(&relative),
            "offset {offset} is outside segment {}",
            self.path.display()
        );
        relative as u32
    }

    /// Writes whole batches, already given their offsets, with one positional write, then
    /// indexes them. `batches` are the headers and ranges of the batches within `records`.
    /// Produce appends are dense (the log asserts that); compaction's rewrites and follower
    /// appends copying a compacted leader may skip offsets.
    pub fn append(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        let (first, _) = batches.first().expect("an append holds at least one batch");
        assert!(
            first.base_offset >= self.next_offset,
            "offsets only grow: batch at {} after offset {}",
            first.base_offset,
            self.next_offset
        );
        let position = self.size_bytes;
        let file = self.file.get()?;
        if let Err(source) = file.write_all_at(records, position) {
            // Cut off a partial write so it is not mistaken for batches; the next append would
            // overwrite it anyway, as writes go to `size_bytes`, and recovery drops a torn tail.
            let _ = file.set_len(position);
            return Err(LogError::Io {
                path: self.path.clone(),
                source,
            });
        }
        for (header, range) in batches {
            self.note_batch(header, position + range.start as u64, index_interval_bytes);
        }
        self.size_bytes += records.len() as u64;
        Ok(())
    }

    /// Accounts for a batch stored at `position`: next offset, timestamps, index entries. Used
    /// both by appends and by recovery, so a rebuilt index is the one appends would have made.
    pub fn note_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u32) {
        // Compaction leaves gaps between batches; offsets still never go back.
        assert!(
            header.base_offset >= self.next_offset,
            "batch offsets only grow: {} after {}",
            header.base_offset,
            self.next_offset
        );
        self.next_offset = header.next_offset();
        self.first_batch_timestamp
            .get_or_insert(header.max_timestamp);
        if self
            .max_timestamp
            .is_none_or(|(max, _)| header.max_timestamp > max)
        {
            self.max_timestamp = Some((header.max_timestamp, header.base_offset));
        }
        if self.offset_index.last().is_none()
            || self.bytes_since_index_entry >= u64::from(index_interval_bytes)
        {
            let position = u32::try_from(position).expect("segment positions fit in 31 bits");
            let relative_offset = self.relative(header.base_offset);
            self.offset_index.push(OffsetEntry {
                relative_offset,
                position,
            });
            self.push_time_entry_if_grown();
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
    }

    fn push_time_entry_if_grown(&mut self) {
        let Some((timestamp, offset)) = self.max_timestamp else {
            return;
        };
        if self
            .time_index
            .last()
            .is_none_or(|last| timestamp > last.timestamp)
        {
            let relative_offset = self.relative(offset);
            self.time_index.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// Called when the segment stops being the active one: records its max timestamp in the
    /// time index (so it is known on reopen without a scan), writes the indexes out, and lets
    /// the aborted-transaction index leave memory.
    pub fn deactivate(&mut self) -> Result<(), LogError> {
        self.push_time_entry_if_grown();
        self.flush_indexes()?;
        self.txn_index.unload();
        Ok(())
    }

    pub fn flush_indexes(&mut self) -> Result<(), LogError> {
        self.offset_index.flush()?;
        self.time_index.flush()?;
        self.txn_index.write_pending()
    }

    /// The header and position of the batch holding `offset`, or `None` past the segment's end.
    pub fn locate(&self, offset: Offset) -> Result<Option<(BatchHeader, u64)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let entry = self
            .offset_index
            .lookup(self.relative(offset))
            .unwrap_or(OffsetEntry {
                relative_offset: 0,
                position: 0,
            });
        self.find_batch(entry, |header| header.last_offset() >= offset)
            .and_then(|found| {
                found.ok_or_else(|| {
                    LogError::corrupt(&self.path, format!("no batch holds offset {offset}"))
                })
            })
            .map(Some)
    }

    /// The first batch at or after the one `entry` points at for which `wanted` holds.
    pub fn find_batch(
        &self,
        entry: OffsetEntry,
        mut wanted: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<(BatchHeader, u64)>, LogError> {
        let start = WalkStart {
            position: u64::from(entry.position),
            next_offset: self.base_offset.plus(i64::from(entry.relative_offset)),
        };
        let mut found = None;
        let file = self.file.get()?;
        let end = scan::walk(
            self.segment_file(&file),
            start,
            Check::Headers,
            |header, position| {
                if wanted(header) {
                    found = Some((*header, position));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )?;
        match end.damage {
            Some(damage) => Err(LogError::corrupt(
                &self.path,
                format!("at byte {}: {damage}", end.position),
            )),
            None => Ok(found),
        }
    }

    /// Appends to `out` whole batches from the one holding `start`: only batches that end below
    /// `upper_bound`, and no more than `budget` bytes unless `take_one` lets the first batch
    /// exceed it. Returns whether it took everything up to the segment's end.
    pub fn read_into(
        &self,
        start: Offset,
        upper_bound: Offset,
        budget: usize,
        take_one: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, LogError> {
        let Some((first, position)) = self.locate(start)? else {
            return Ok(true);
        };
        if first.last_offset() >= upper_bound {
            return Ok(false);
        }
        let available = self.size_bytes - position;
        let mut want = (budget as u64).min(available);
        if take_one {
            want = want.max(first.total_bytes() as u64);
        }
        if want < first.total_bytes() as u64 {
            return Ok(false);
        }
        let old_length = out.len();
        out.resize(
            old_length + usize::try_from(want).expect("read fits in memory"),
            0,
        );
        self.file
            .get()?
            .read_exact_at(&mut out[old_length..], position)
            .at(&self.path)?;
        let (kept, reached_bound) = whole_batches_below(&out[old_length..], upper_bound);
        assert!(
            kept >= first.total_bytes(),
            "the located batch is read whole"
        );
        out.truncate(old_length + kept);
        Ok(!reached_bound && position + kept as u64 == self.size_bytes)
    }

    /// Removes every batch at or after the one holding `offset`; the segment ends where that
    /// batch started. `offset` must lie inside this segment.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        let Some((header, position)) = self.locate(offset)? else {
            return Ok(());
        };
        self.file.get()?.set_len(position).at(&self.path)?;
        self.size_bytes = position;
        let relative_offset = self.relative(header.base_offset);
        self.offset_index.truncate_from(relative_offset)?;
        self.time_index.truncate_from(relative_offset)?;
        self.txn_index.truncate_from(header.base_offset)?;
        self.load_tail()?
            .map_err(|damage| LogError::corrupt(&self.path, damage))
    }

    /// Derives the next offset, max timestamp and index-interval state from the indexes plus a
    /// header walk from the last offset-index entry to the end. Returns why not if the bytes
    /// there are not the batches the index promises.
    pub fn load_tail(&mut self) -> Result<Result<(), String>, LogError> {
        let entry = self.offset_index.last().copied().unwrap_or(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
        let start = WalkStart {
            position: u64::from(entry.position),
            next_offset: self.base_offset.plus(i64::from(entry.relative_offset)),
        };
        let base_offset = self.base_offset;
        let mut max_timestamp = self.time_index.last().map(|last| {
            (
                last.timestamp,
                base_offset.plus(i64::from(last.relative_offset)),
            )
        });
        let mut bytes_since_index_entry = 0;
        let file = self.file.get()?;
        let end = scan::walk(
            self.segment_file(&file),
            start,
            Check::Headers,
            |header, _| {
                if max_timestamp.is_none_or(|(max, _)| header.max_timestamp > max) {
                    max_timestamp = Some((header.max_timestamp, header.base_offset));
                }
                bytes_since_index_entry += header.total_bytes() as u64;
                ControlFlow::Continue(())
            },
        )?;
        if let Some(damage) = end.damage {
            return Ok(Err(format!("at byte {}: {damage}", end.position)));
        }
        self.next_offset = end.next_offset;
        self.max_timestamp = max_timestamp;
        self.bytes_since_index_entry = bytes_since_index_entry;
        self.first_batch_timestamp = match self.is_empty() {
            true => None,
            false => Some(scan::header_at(self.segment_file(&file), 0)?.max_timestamp),
        };
        Ok(Ok(()))
    }

    /// The newest record time in the segment, for retention: the largest batch max timestamp,
    /// or the file's modification time when no batch carries a timestamp (as Kafka does).
    pub fn largest_timestamp(&self) -> Result<TimestampMs, LogError> {
        if let Some((timestamp, _)) = self.max_timestamp.filter(|(timestamp, _)| timestamp.0 >= 0) {
            return Ok(timestamp);
        }
        let modified = std::fs::metadata(&self.path)
            .and_then(|metadata| metadata.modified())
            .at(&self.path)?;
        let since_epoch = modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(TimestampMs(
            i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        ))
    }

    /// The segment's files, for fsync: the `.txnindex` only if it has entries (then it has a
    /// file).
    pub fn files(&self) -> Vec<SyncTarget> {
        let mut files = vec![
            SyncTarget::Pooled(self.file.clone()),
            SyncTarget::Path(self.offset_index.path().to_path_buf()),
            SyncTarget::Path(self.time_index.path().to_path_buf()),
        ];
        if !self.txn_index.is_empty() {
            files.push(SyncTarget::Path(self.txn_index.path().to_path_buf()));
        }
        files
    }

    /// Deletes the segment's files; a file already gone (a `.txnindex` never made) is not an
    /// error.
    pub fn delete_files(self) -> Result<(), LogError> {
        let paths = [
            self.path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.txn_index.path().to_path_buf(),
        ];
        drop(self);
        for path in &paths {
            remove_if_exists(path)?;
        }
        Ok(())
    }
}

/// How many leading bytes of `bytes` are whole batches whose last offset is below
/// `upper_bound`, and whether a batch at or past the bound stopped the count.
fn whole_batches_below(bytes: &[u8], upper_bound: Offset) -> (usize, bool) {
    let mut kept = 0;
    for (header, range) in Batches::new(bytes) {
        if header.last_offset() >= upper_bound {
            return (kept, true);
        }
        kept = range.end;
    }
    (kept, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::recover_active;
    use crate::test_support::batch;
    use strom_protocol::batch::set_base_offset;

    /// A segment at base offset 100 holding `count` 2-record batches of about 300 bytes.
    fn segment_with(dir: &Path, count: i64, index_interval_bytes: u32) -> (Segment, Vec<Vec<u8>>) {
        let mut segment = Segment::create(dir, Offset(100), FilePool::process()).unwrap();
        let mut stored = Vec::new();
        for n in 0..count {
            let mut bytes = batch(0, 2, 1_000 + 10 * n, 120);
            set_base_offset(&mut bytes, Offset(100 + 2 * n));
            let header = BatchHeader::parse(&bytes).unwrap();
            segment
                .append(&bytes, &[(header, 0..bytes.len())], index_interval_bytes)
                .unwrap();
            stored.push(bytes);
        }
        (segment, stored)
    }

    fn state(segment: &Segment) -> impl PartialEq + std::fmt::Debug {
        (
            segment.next_offset,
            segment.size_bytes,
            segment.offset_index.entries().to_vec(),
            segment.time_index.entries().to_vec(),
            segment.bytes_since_index_entry,
            segment.max_timestamp,
            segment.first_batch_timestamp,
        )
    }

    #[test]
    fn files_are_named_by_zero_padded_base_offset() {
        let path = file_path(Path::new("/data/t-0"), Offset(1234), LOG_EXTENSION);
        assert_eq!(path, Path::new("/data/t-0/00000000000000001234.log"));
    }

    #[test]
    fn locate_finds_the_batch_holding_an_offset_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, stored) = segment_with(dir.path(), 10, 500);
        assert!(segment.offset_index.entries().len() > 2);
        let mut position = 0;
        for (n, bytes) in stored.iter().enumerate() {
            for offset in [100 + 2 * n as i64, 101 + 2 * n as i64] {
                let (header, at) = segment.locate(Offset(offset)).unwrap().unwrap();
                assert_eq!(
                    (header.base_offset, at),
                    (Offset(100 + 2 * n as i64), position)
                );
            }
            position += bytes.len() as u64;
        }
        assert!(segment.locate(Offset(120)).unwrap().is_none());
    }

    #[test]
    fn read_into_stops_at_the_budget_the_bound_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, stored) = segment_with(dir.path(), 4, 0);
        let mut out = Vec::new();
        let budget = stored[0].len() + stored[1].len() + 5;
        assert!(!segment
            .read_into(Offset(101), Offset(200), budget, true, &mut out)
            .unwrap());
        assert_eq!(out, [stored[0].clone(), stored[1].clone()].concat());
        out.clear();
        assert!(!segment
            .read_into(Offset(100), Offset(105), usize::MAX, true, &mut out)
            .unwrap());
        assert_eq!(out, [stored[0].clone(), stored[1].clone()].concat());
        out.clear();
        assert!(segment
            .read_into(Offset(104), Offset(200), usize::MAX, false, &mut out)
            .unwrap());
        assert_eq!(out, [stored[2].clone(), stored[3].clone()].concat());
        out.clear();
        assert!(!segment
            .read_into(Offset(104), Offset(200), 10, false, &mut out)
            .unwrap());
        assert!(
            out.is_empty(),
            "without take_one, a batch over budget is left for the next read"
        );
    }

    #[test]
    fn truncation_leaves_the_state_a_rebuild_of_the_remaining_bytes_gives() {
        let dir = tempfile::tempdir().unwrap();
        for cut in [100, 103, 110, 117, 119] {
            let (mut segment, _) = segment_with(dir.path(), 10, 400);
            segment.deactivate().unwrap();
            segment.truncate_to(Offset(cut)).unwrap();
            assert_eq!(segment.next_offset, Offset(cut - (cut - 100) % 2));
            let truncated = state(&segment);
            assert!(!recover_active(&mut segment, 400).unwrap().cut_short);
            assert_eq!(truncated, state(&segment), "cut at {cut}");
            segment.delete_files().unwrap();
        }
    }

    #[test]
    fn load_tail_after_deactivation_restores_what_appends_knew() {
        let dir = tempfile::tempdir().unwrap();
        let (mut segment, _) = segment_with(dir.path(), 9, 700);
        segment.deactivate().unwrap();
        let before = (
            segment.next_offset,
            segment.max_timestamp,
            segment.bytes_since_index_entry,
        );
        let mut reopened = Segment::open(dir.path(), Offset(100), FilePool::process()).unwrap();
        reopened.offset_index.load().unwrap().unwrap();
        reopened.time_index.load().unwrap().unwrap();
        reopened.load_tail().unwrap().unwrap();
        let after = (
            reopened.next_offset,
            reopened.max_timestamp,
            reopened.bytes_since_index_entry,
        );
        assert_eq!(before, after);
        assert_eq!(reopened.first_batch_timestamp, Some(TimestampMs(1_001)));
        assert_eq!(reopened.largest_timestamp().unwrap(), TimestampMs(1_081));
    }
}
