//! The sparse offset and time indexes of one segment.
//!
//! Both live in memory as a `Vec` (a 1 GiB segment with the default 4 KiB interval has 262,144
//! offset entries, 2 MiB) and are appended to their files by [`Index::flush`], which the segment
//! calls when it is rolled, synced or closed. The active segment's indexes are rebuilt from the
//! log on every open, so entries that never reached the file are never missed; the files of
//! inactive segments are checked on open ([`validate_offset_entries`],
//! [`validate_time_entries`]) and rebuilt when they do not hold up.
//!
//! Formats, big-endian like Kafka's:
//! - `.index`: 8-byte entries, relative offset (u32) then file position (u32 < 2^31).
//! - `.timeindex`: 12-byte entries, timestamp (i64) then relative offset (u32).
//!
//! An offset entry names the first batch at or after some point of the log: its relative base
//! offset and the byte position where the batch starts. A time entry says: no record before
//! `relative_offset` has a timestamp of `timestamp` or more, and the batch at `relative_offset`
//! holds a record with exactly that timestamp.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strom_types::TimestampMs;

use crate::error::{IoContext, LogError};

/// One fixed-size entry of an index file.
pub(crate) trait IndexEntry: Copy {
    const BYTES: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    fn relative_offset(&self) -> u32;
}

/// An offset-index entry: the batch starting at `relative_offset` begins at byte `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A time-index entry: the largest timestamp so far and the relative offset where it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: TimestampMs,
    pub relative_offset: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> OffsetEntry {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.0.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> TimeEntry {
        TimeEntry {
            timestamp: TimestampMs(i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"))),
            relative_offset: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        }
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// An index: its entries in memory and the file they are appended to. The file is opened only
/// for the operation at hand (load, flush, truncation), so an index holds no descriptor.
pub(crate) struct Index<E: IndexEntry> {
    path: PathBuf,
    entries: Vec<E>,
    /// How many leading entries are already written to the file.
    persisted: usize,
    /// The entries were reset but the file not yet emptied: the next flush empties it first.
    /// Recovery resets the indexes of every active segment it re-reads, and a truncate per
    /// file made that most of a restart's cost; the file is only read back when its segment
    /// is inactive, which it becomes through a flush.
    reset_pending: bool,
}

pub(crate) type OffsetIndex = Index<OffsetEntry>;
pub(crate) type TimeIndex = Index<TimeEntry>;

impl<E: IndexEntry> Index<E> {
    /// The index stored at `path`, with no entries loaded and nothing opened yet.
    pub fn new(path: &Path) -> Index<E> {
        Index {
            path: path.to_path_buf(),
            entries: Vec::new(),
            persisted: 0,
            reset_pending: false,
        }
    }

    /// Opens the file for one operation, creating it if missing.
    fn open(&self) -> Result<File, LogError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .at(&self.path)
    }

    /// Reads the entries stored in the file (an empty file if it is missing). The outer error is
    /// I/O; the inner one says why the file cannot be an index (its length), in which case the
    /// caller rebuilds it.
    pub fn load(&mut self) -> Result<Result<(), String>, LogError> {
        let file = self.open()?;
        let length = file.metadata().at(&self.path)?.len();
        let length = usize::try_from(length).expect("an index file fits in memory");
        if length % E::BYTES != 0 {
            return Ok(Err(format!(
                "its size {length} is not a multiple of {} bytes",
                E::BYTES
            )));
        }
        let mut bytes = vec![0u8; length];
        file.read_exact_at(&mut bytes, 0).at(&self.path)?;
        self.entries = bytes.chunks_exact(E::BYTES).map(E::decode).collect();
        self.persisted = self.entries.len();
        self.reset_pending = false;
        Ok(Ok(()))
    }

    /// Drops every entry, in memory and in the file, before a rebuild.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.persisted = 0;
        self.reset_pending = true;
    }

    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the entries not yet in the file, with one write.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.reset_pending {
            self.open()?.set_len(0).at(&self.path)?;
            self.reset_pending = false;
        }
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut bytes = vec![0u8; (self.entries.len() - self.persisted) * E::BYTES];
        for (entry, out) in self.entries[self.persisted..]
            .iter()
            .zip(bytes.chunks_exact_mut(E::BYTES))
        {
            entry.encode(out);
        }
        let position = u64::try_from(self.persisted * E::BYTES).expect("index position fits u64");
        self.open()?.write_all_at(&bytes, position).at(&self.path)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Drops the entries for relative offsets at or after `relative_offset`, in memory and file.
    pub fn truncate_from(&mut self, relative_offset: u32) -> Result<(), LogError> {
        let keep = self
            .entries
            .partition_point(|entry| entry.relative_offset() < relative_offset);
        self.entries.truncate(keep);
        if self.persisted > keep {
            let length = u64::try_from(keep * E::BYTES).expect("index length fits u64");
            self.open()?.set_len(length).at(&self.path)?;
            self.persisted = keep;
        }
        Ok(())
    }
}

impl OffsetIndex {
    /// The last entry at or before `relative_offset`: where to start scanning for that offset.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        after.checked_sub(1).map(|at| self.entries[at])
    }
}

impl TimeIndex {
    /// The last entry whose timestamp is at or before `timestamp`: no record before its offset
    /// reaches `timestamp`, so a search for the first record at or after it may start there.
    pub fn lookup(&self, timestamp: TimestampMs) -> Option<TimeEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.timestamp <= timestamp);
        after.checked_sub(1).map(|at| self.entries[at])
    }
}

/// Checks a loaded offset index against its segment's size: entries strictly increasing in both
/// offset and position, the first one for the segment's first batch (at byte 0; after compaction
/// that batch may start above the base offset), every position inside the file. Returns why not,
/// if not.
pub(crate) fn validate_offset_entries(
    entries: &[OffsetEntry],
    segment_bytes: u64,
) -> Result<(), String> {
    match entries.first() {
        None if segment_bytes > 0 => {
            return Err("it has no entry for a non-empty segment".to_string())
        }
        Some(first) if first.position != 0 => {
            return Err(format!(
                "its first entry {first:?} is not for the segment's first batch"
            ));
        }
        _ => {}
    }
    for pair in entries.windows(2) {
        if pair[1].relative_offset <= pair[0].relative_offset
            || pair[1].position <= pair[0].position
        {
            return Err(format!(
                "entries {:?} and {:?} are not increasing",
                pair[0], pair[1]
            ));
        }
    }
    match entries.last() {
        Some(last) if u64::from(last.position) >= segment_bytes => Err(format!(
            "entry {last:?} points past the segment's end at byte {segment_bytes}"
        )),
        _ => Ok(()),
    }
}

/// Checks a loaded time index: at least one entry if the segment has batches (the first batch
/// always makes one), timestamps strictly increasing, offsets never decreasing, every offset
/// below `relative_next_offset` (the segment's next offset minus its base).
pub(crate) fn validate_time_entries(
    entries: &[TimeEntry],
    relative_next_offset: u64,
) -> Result<(), String> {
    if entries.is_empty() && relative_next_offset > 0 {
        return Err("it has no entry for a non-empty segment".to_string());
    }
    for pair in entries.windows(2) {
        if pair[1].timestamp <= pair[0].timestamp
            || pair[1].relative_offset < pair[0].relative_offset
        {
            return Err(format!(
                "entries {:?} and {:?} are not increasing",
                pair[0], pair[1]
            ));
        }
    }
    match entries.last() {
        Some(last) if u64::from(last.relative_offset) >= relative_next_offset => Err(format!(
            "entry {last:?} points past the segment's last offset (relative {relative_next_offset} is next)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    fn time(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp: TimestampMs(timestamp),
            relative_offset,
        }
    }

    #[test]
    fn entries_round_trip_through_the_file_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::new(&path);
        index.push(offset(0, 0));
        index.push(offset(10, 4100));
        index.flush().unwrap();
        index.push(offset(25, 8300));
        index.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        assert_eq!(
            &std::fs::read(&path).unwrap()[8..16],
            &[0, 0, 0, 10, 0, 0, 0x10, 0x04]
        );

        let mut reloaded = OffsetIndex::new(&path);
        reloaded.load().unwrap().unwrap();
        assert_eq!(
            reloaded.entries(),
            &[offset(0, 0), offset(10, 4100), offset(25, 8300)]
        );
        reloaded.truncate_from(10).unwrap();
        assert_eq!(reloaded.entries(), &[offset(0, 0)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }

    #[test]
    fn a_file_of_the_wrong_size_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        std::fs::write(&path, [0u8; 13]).unwrap();
        let mut index = TimeIndex::new(&path);
        let reason = index.load().unwrap().unwrap_err();
        assert!(reason.contains("not a multiple of 12"), "{reason}");
    }

    #[test]
    fn lookups_return_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut offsets = OffsetIndex::new(&dir.path().join("0.index"));
        assert_eq!(offsets.lookup(5), None);
        offsets.push(offset(0, 0));
        offsets.push(offset(10, 4100));
        assert_eq!(offsets.lookup(9), Some(offset(0, 0)));
        assert_eq!(offsets.lookup(10), Some(offset(10, 4100)));
        assert_eq!(offsets.lookup(1000), Some(offset(10, 4100)));

        let mut times = TimeIndex::new(&dir.path().join("0.timeindex"));
        times.push(time(100, 0));
        times.push(time(200, 7));
        assert_eq!(times.lookup(TimestampMs(99)), None);
        assert_eq!(times.lookup(TimestampMs(150)), Some(time(100, 0)));
        assert_eq!(times.lookup(TimestampMs(200)), Some(time(200, 7)));
    }

    #[test]
    fn validation_rejects_damaged_indexes() {
        assert!(validate_offset_entries(&[], 0).is_ok());
        assert!(validate_offset_entries(&[], 10).is_err());
        assert!(validate_offset_entries(&[offset(0, 0), offset(5, 100)], 200).is_ok());
        assert!(validate_offset_entries(&[offset(3, 10)], 200).is_err());
        assert!(
            validate_offset_entries(&[offset(3, 0)], 200).is_ok(),
            "a compacted segment's first batch may start above its base offset"
        );
        assert!(
            validate_offset_entries(&[offset(0, 0), offset(5, 100), offset(4, 150)], 200).is_err()
        );
        assert!(validate_offset_entries(&[offset(0, 0), offset(5, 300)], 200).is_err());

        assert!(validate_time_entries(&[], 0).is_ok());
        assert!(validate_time_entries(&[], 4).is_err());
        assert!(validate_time_entries(&[time(5, 0), time(9, 3)], 4).is_ok());
        assert!(validate_time_entries(&[time(5, 0), time(5, 3)], 4).is_err());
        assert!(validate_time_entries(&[time(5, 2), time(9, 1)], 4).is_err());
        assert!(validate_time_entries(&[time(5, 0), time(9, 4)], 4).is_err());
    }
}
