//! The Raft log's segment files, synchronous and free of Raft types: records (see
//! [`record`](super::record)) numbered by position. A segment is named after the index of its
//! first record, `<index, 20 digits>.log`; record `i` of segment `base` holds index `base + i`,
//! and each segment starts where the previous one ends, so the log never has a hole.
//!
//! Lifecycle: [`LogFiles::open`] scans every segment, cuts a torn tail off the last one, and
//! finishes an interrupted purge; then only the log writer thread touches the files (appends,
//! fsyncs, truncations, purges), one operation at a time.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::quorum::error::QuorumError;
use crate::quorum::limits::LOG_SEGMENT_BYTES_MAX;
use crate::quorum::storage::files::sync_directory;
use crate::quorum::storage::record::{self, Decoded};

const SEGMENT_SUFFIX: &str = ".log";

/// One segment file: where each of its records starts, and its length.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    positions: Vec<u64>,
    bytes: u64,
}

impl Segment {
    /// The index after this segment's last record.
    fn end(&self, base: u64) -> u64 {
        base + self.positions.len() as u64
    }
}

/// What [`LogFiles::open`] found.
#[derive(Debug)]
pub struct OpenedLog {
    pub files: LogFiles,
    /// (index, payload) of every record after the purge point, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Set when a torn tail was cut from the last segment: what was wrong with it.
    pub torn_tail: Option<String>,
}

/// The segment files of one Raft log directory.
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    /// By first index.
    segments: BTreeMap<u64, Segment>,
    /// The last segment, opened for appending (`O_APPEND`, so that writes land at its end
    /// even after it is cut shorter). None before the first append and after a failure.
    active: Option<File>,
    /// The index the next append must carry; None for a log that never held anything.
    next_index: Option<u64>,
    /// A segment was created or removed since the directory was last fsynced.
    directory_dirty: bool,
}

fn segment_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

fn corrupt(path: &Path, detail: impl Into<String>) -> QuorumError {
    QuorumError::Corrupt {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

impl LogFiles {
    /// Opens the log in `dir` (which must exist). Records up to `purged` (inclusive) are
    /// dropped, and segments holding nothing else are removed.
    pub fn open(dir: &Path, purged: Option<u64>) -> Result<OpenedLog, QuorumError> {
        let mut bases = Vec::new();
        let listing = fs::read_dir(dir).map_err(|e| QuorumError::io(dir, e))?;
        for item in listing {
            let item = item.map_err(|e| QuorumError::io(dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
                let base = stem
                    .parse::<u64>()
                    .map_err(|_| corrupt(&item.path(), "not a segment name"))?;
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut files = LogFiles {
            dir: dir.to_owned(),
            segments: BTreeMap::new(),
            active: None,
            next_index: purged.map(|p| p + 1),
            directory_dirty: false,
        };
        let mut records = Vec::new();
        let mut torn_tail = None;
        for (position, base) in bases.iter().enumerate() {
            let last = position + 1 == bases.len();
            let path = dir.join(segment_name(*base));
            if let Some(expected) = files.segments.iter().next_back().map(|(b, s)| s.end(*b)) {
                if expected != *base {
                    return Err(corrupt(
                        &path,
                        format!("the previous segment ends at index {expected}: a hole"),
                    ));
                }
            }
            let (segment, found, torn) = scan_segment(&path, *base, last)?;
            torn_tail = torn_tail.or(torn);
            records.extend(found.into_iter().filter(|(i, _)| purged < Some(*i)));
            files.segments.insert(*base, segment);
        }
        if let Some((base, segment)) = files.segments.iter().next_back() {
            files.next_index = Some(segment.end(*base).max(files.next_index.unwrap_or(0)));
        }
        if let Some(purged) = purged {
            files
                .remove_purged(purged)
                .map_err(|e| QuorumError::io(dir, e))?;
            files.flush().map_err(|e| QuorumError::io(dir, e))?;
        }
        files.open_active().map_err(|e| QuorumError::io(dir, e))?;
        Ok(OpenedLog {
            files,
            records,
            torn_tail,
        })
    }

    /// The index the next append must carry (None: any, the log never held anything).
    pub fn next_index(&self) -> Option<u64> {
        self.next_index
    }

    /// The segment files' first indexes, oldest first (for tests and tooling).
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Writes `(index, payload)` records after the last one, rolling to a new segment when the
    /// active one is full. Nothing is durable until [`LogFiles::flush`].
    pub fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let mut buffer = Vec::new();
        for (index, payload) in records {
            if let Some(next) = self.next_index {
                assert_eq!(*index, next, "log indexes must be consecutive");
            }
            let full = self
                .segments
                .values()
                .next_back()
                .is_none_or(|s| s.bytes >= LOG_SEGMENT_BYTES_MAX);
            if full || self.active.is_none() {
                self.write_active(&buffer)?;
                buffer.clear();
                self.roll(*index)?;
            }
            let segment = self.segments.values_mut().next_back().expect("rolled");
            let start = buffer.len();
            record::encode(payload, &mut buffer);
            segment.positions.push(segment.bytes);
            segment.bytes += (buffer.len() - start) as u64;
            self.next_index = Some(index + 1);
        }
        self.write_active(&buffer)
    }

    /// Makes every append (and every segment created or removed) durable.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(active) = &self.active {
            active.sync_data()?;
        }
        if self.directory_dirty {
            sync_directory(&self.dir)?;
            self.directory_dirty = false;
        }
        Ok(())
    }

    /// Removes the records from index `since` on, durably. Later segments go first, so a crash
    /// midway leaves a shorter log, never one with a hole. A segment that is cut keeps its
    /// descriptor if it is the active one: this also cuts a failed append off again, when
    /// descriptors may have run out.
    pub fn truncate(&mut self, since: u64) -> io::Result<()> {
        while let Some((&base, _)) = self.segments.iter().next_back() {
            if base < since {
                break;
            }
            // The active segment is the last one, so it goes first.
            self.active = None;
            let segment = self.segments.remove(&base).expect("exists");
            fs::remove_file(&segment.path)?;
            self.directory_dirty = true;
        }
        if let Some((&base, segment)) = self.segments.iter_mut().next_back() {
            let keep = usize::try_from(since - base).expect("fits");
            if keep < segment.positions.len() {
                segment.bytes = segment.positions[keep];
                segment.positions.truncate(keep);
                let file = match self.active.take() {
                    Some(active) => active,
                    None => OpenOptions::new().append(true).open(&segment.path)?,
                };
                file.set_len(segment.bytes)?;
                file.sync_all()?;
                self.active = Some(file);
            }
        }
        if self.next_index.is_some_and(|next| next > since) {
            self.next_index = Some(since);
        }
        self.flush()?;
        if self.active.is_none() {
            self.open_active()?;
        }
        Ok(())
    }

    /// Removes the segments holding nothing after index `upto`, durably. The caller records
    /// the purge point first; records up to it that share a segment with later ones stay on
    /// disk and are skipped when the log is opened.
    pub fn purge(&mut self, upto: u64) -> io::Result<()> {
        self.remove_purged(upto)?;
        if self.next_index.is_none_or(|next| next <= upto) {
            self.next_index = Some(upto + 1);
        }
        self.flush()?;
        self.open_active()
    }

    fn remove_purged(&mut self, upto: u64) -> io::Result<()> {
        while let Some((&base, segment)) = self.segments.iter().next() {
            if segment.end(base) > upto + 1 {
                break;
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            let segment = self.segments.remove(&base).expect("exists");
            fs::remove_file(&segment.path)?;
            self.directory_dirty = true;
        }
        Ok(())
    }

    /// Starts a new segment whose first record will be `base`. The full segment is fsynced
    /// first: only the active segment is fsynced by [`LogFiles::flush`]. The new file is
    /// opened before the full one is let go, so that when descriptors run out the append fails
    /// with the active segment still open to cut it back.
    fn roll(&mut self, base: u64) -> io::Result<()> {
        let path = self.dir.join(segment_name(base));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Empties a file left by a roll that a crash cut short.
        file.set_len(0)?;
        self.segments.insert(
            base,
            Segment {
                path,
                positions: Vec::new(),
                bytes: 0,
            },
        );
        self.directory_dirty = true;
        match self.active.replace(file) {
            Some(full) => full.sync_data(),
            None => Ok(()),
        }
    }

    fn open_active(&mut self) -> io::Result<()> {
        self.active = match self.segments.values().next_back() {
            Some(segment) => Some(OpenOptions::new().append(true).open(&segment.path)?),
            None => None,
        };
        Ok(())
    }

    fn write_active(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.active
            .as_mut()
            .expect("a segment is active after a roll")
            .write_all(bytes)
    }
}

/// Reads one segment. A bad record in the last segment is a torn write from a crash: the file
/// is cut there. Anywhere else it is corruption.
#[allow(clippy::type_complexity)]
fn scan_segment(
    path: &Path,
    base: u64,
    last: bool,
) -> Result<(Segment, Vec<(u64, Vec<u8>)>, Option<String>), QuorumError> {
    let bytes = fs::read(path).map_err(|e| QuorumError::io(path, e))?;
    let mut positions = Vec::new();
    let mut records = Vec::new();
    let mut offset = 0usize;
    let torn = loop {
        match record::decode(&bytes[offset..]) {
            Decoded::End => break None,
            Decoded::Record {
                payload,
                record_bytes,
            } => {
                positions.push(offset as u64);
                records.push((base + records.len() as u64, payload.to_vec()));
                offset += record_bytes;
            }
            Decoded::Invalid(reason) => break Some(reason),
        }
    };
    if let Some(reason) = &torn {
        if !last {
            return Err(corrupt(path, format!("{reason} at byte {offset}")));
        }
        tracing::warn!(
            path = %path.display(),
            offset,
            "cutting a torn tail off the metadata log: {reason}"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| QuorumError::io(path, e))?;
        file.set_len(offset as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| QuorumError::io(path, e))?;
    }
    let segment = Segment {
        path: path.to_owned(),
        positions,
        bytes: offset as u64,
    };
    Ok((segment, records, torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(index: u64) -> Vec<u8> {
        format!("{{\"entry\":{index}}}").into_bytes()
    }

    fn records(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, payload(i))).collect()
    }

    fn reopen(dir: &Path, purged: Option<u64>) -> OpenedLog {
        LogFiles::open(dir, purged).expect("opens")
    }

    fn indexes(opened: &OpenedLog) -> Vec<u64> {
        opened.records.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn appended_records_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        assert_eq!(log.next_index(), None);
        log.append(&records(0..10)).unwrap();
        log.flush().unwrap();
        drop(log);
        let opened = reopen(dir.path(), None);
        assert_eq!(opened.records, records(0..10));
        assert_eq!(opened.torn_tail, None);
        let mut log = opened.files;
        assert_eq!(log.next_index(), Some(10));
        log.append(&records(10..12)).unwrap();
        log.flush().unwrap();
        assert_eq!(reopen(dir.path(), None).records, records(0..12));
    }

    #[test]
    fn truncation_removes_the_tail_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        log.append(&records(1..20)).unwrap();
        log.flush().unwrap();
        log.truncate(15).unwrap();
        assert_eq!(log.next_index(), Some(15));
        log.append(&[(15, b"replaced".to_vec())]).unwrap();
        log.flush().unwrap();
        let opened = reopen(dir.path(), None);
        let mut expected = records(1..15);
        expected.push((15, b"replaced".to_vec()));
        assert_eq!(opened.records, expected);
        let mut log = opened.files;
        log.truncate(1).unwrap();
        assert_eq!(log.next_index(), Some(1));
        assert!(reopen(dir.path(), None).records.is_empty());
    }

    #[test]
    fn an_unflushed_append_cut_off_again_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        log.append(&records(0..3)).unwrap();
        log.flush().unwrap();
        // Cut within the active segment: its descriptor is kept, and appends after the cut
        // land at the new end, not where the cut bytes were.
        log.append(&records(3..6)).unwrap();
        log.truncate(3).unwrap();
        assert_eq!(log.next_index(), Some(3));
        log.append(&records(3..4)).unwrap();
        log.flush().unwrap();
        // Cut across segments a failed append had rolled into (records of about 3 MiB).
        let bases = log.segment_bases();
        let big: Vec<(u64, Vec<u8>)> = (4..10).map(|i| (i, vec![b'z'; 3 << 20])).collect();
        log.append(&big).unwrap();
        assert!(log.segment_bases().len() > bases.len(), "rolled");
        log.truncate(4).unwrap();
        assert_eq!(log.segment_bases(), bases);
        log.append(&records(4..6)).unwrap();
        log.flush().unwrap();
        drop(log);
        let opened = reopen(dir.path(), None);
        assert_eq!(opened.records, records(0..6));
        assert_eq!(opened.torn_tail, None);
    }

    #[test]
    fn segments_roll_and_purging_removes_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        // Records of about 1 MiB: eight fill a segment.
        let big = |i: u64| (i, vec![b'x'; 1024 * 1024]);
        for i in 0..20 {
            log.append(&[big(i)]).unwrap();
        }
        log.flush().unwrap();
        let bases = log.segment_bases();
        assert!(bases.len() >= 2, "rolled: {bases:?}");
        assert_eq!(bases[0], 0);
        // Purge inside the second segment: only the first goes.
        let upto = bases[1] + 1;
        log.purge(upto).unwrap();
        assert_eq!(log.segment_bases()[0], bases[1]);
        drop(log);
        let opened = reopen(dir.path(), Some(upto));
        assert_eq!(indexes(&opened), (upto + 1..20).collect::<Vec<_>>());
        // Truncating across a segment boundary removes the later segments.
        let mut log = opened.files;
        log.truncate(bases[1] + 3).unwrap();
        assert_eq!(log.segment_bases(), vec![bases[1]]);
        assert_eq!(
            indexes(&reopen(dir.path(), Some(upto))),
            (upto + 1..bases[1] + 3).collect::<Vec<_>>()
        );
    }

    #[test]
    fn purging_past_the_end_restarts_the_log_after_the_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        log.append(&records(0..5)).unwrap();
        log.flush().unwrap();
        log.purge(100).unwrap();
        assert!(log.segment_bases().is_empty());
        assert_eq!(log.next_index(), Some(101));
        log.append(&records(101..103)).unwrap();
        log.flush().unwrap();
        let opened = reopen(dir.path(), Some(100));
        assert_eq!(opened.records, records(101..103));
        assert_eq!(opened.files.next_index(), Some(103));
    }

    #[test]
    fn an_interrupted_purge_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        log.append(&records(0..5)).unwrap();
        log.flush().unwrap();
        drop(log);
        // The purge point was recorded, then the process died before removing the segment.
        let opened = reopen(dir.path(), Some(7));
        assert!(opened.records.is_empty());
        assert!(opened.files.segment_bases().is_empty());
        assert_eq!(opened.files.next_index(), Some(8));
    }

    #[test]
    fn a_torn_tail_is_cut_at_every_possible_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        log.append(&records(0..3)).unwrap();
        log.flush().unwrap();
        drop(log);
        let path = dir.path().join(segment_name(0));
        let whole = fs::read(&path).unwrap();
        let two_records = {
            let scratch = tempfile::tempdir().unwrap();
            let mut log = reopen(scratch.path(), None).files;
            log.append(&records(0..2)).unwrap();
            log.flush().unwrap();
            fs::read(scratch.path().join(segment_name(0)))
                .unwrap()
                .len()
        };
        for cut in two_records + 1..whole.len() {
            fs::write(&path, &whole[..cut]).unwrap();
            let opened = reopen(dir.path(), None);
            assert_eq!(opened.records, records(0..2), "cut at {cut}");
            assert!(opened.torn_tail.is_some());
            assert_eq!(fs::metadata(&path).unwrap().len(), two_records as u64);
            let mut log = opened.files;
            assert_eq!(log.next_index(), Some(2));
            log.append(&records(2..3)).unwrap();
            log.flush().unwrap();
            drop(log);
            assert_eq!(reopen(dir.path(), None).records, records(0..3));
        }
        // Garbage after the last record is cut too.
        let mut garbage = whole.clone();
        garbage.extend_from_slice(&[0xff; 13]);
        fs::write(&path, &garbage).unwrap();
        assert_eq!(reopen(dir.path(), None).records, records(0..3));
    }

    #[test]
    fn damage_before_the_last_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), None).files;
        for i in 0..12 {
            log.append(&[(i, vec![b'y'; 1024 * 1024])]).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        let first = dir.path().join(segment_name(0));
        let mut bytes = fs::read(&first).unwrap();
        bytes[100] ^= 1;
        fs::write(&first, &bytes).unwrap();
        match LogFiles::open(dir.path(), None) {
            Err(QuorumError::Corrupt { path, .. }) => assert_eq!(path, first),
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
