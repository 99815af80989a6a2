//! The aborted-transaction index of one segment (`<base offset>.txnindex`, Kafka's
//! `TransactionIndex`): one entry per ABORT marker in the segment, so a read_committed fetch
//! can name the aborted transactions in the range it returns without reading the log.
//!
//! Format, big-endian like Kafka's, 34-byte entries:
//! `version i16 (0), producer_id i64, first_offset i64, last_offset i64, last_stable_offset i64`,
//! where `first_offset` is the transaction's first offset in the partition (possibly in an
//! earlier segment), `last_offset` the marker's offset (in this segment) and
//! `last_stable_offset` the partition's last stable offset once the marker was written.
//!
//! Entries live in memory and are appended to the file at once (without an fsync: the file is
//! synced with its segment). A file that does not hold whole, well-formed entries in ascending
//! marker order is reported corrupt, and its owner rebuilds it from the log.
//!
//! Not wired yet: the partition's transactions (issue 11) will write and read it, with the
//! per-segment producer snapshots that recovery needs to rebuild an active segment's index.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strom_types::Offset;

use crate::error::{IoContext, LogError};

const VERSION: i16 = 0;
const ENTRY_BYTES: usize = 34;

/// One aborted transaction, as Kafka's `AbortedTxn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxnEntry {
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The ABORT marker's offset.
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxnEntry {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.0.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.0.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.0.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<AbortedTxnEntry, String> {
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != VERSION {
            return Err(format!("entry version {version}, not {VERSION}"));
        }
        let entry = AbortedTxnEntry {
            producer_id: i64_at(2),
            first_offset: Offset(i64_at(10)),
            last_offset: Offset(i64_at(18)),
            last_stable_offset: Offset(i64_at(26)),
        };
        if entry.producer_id < 0
            || entry.first_offset.0 < 0
            || entry.first_offset > entry.last_offset
        {
            return Err(format!("entry {entry:?} is not an aborted transaction"));
        }
        Ok(entry)
    }
}

/// One segment's aborted-transaction index.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    /// Ascending by marker offset (`last_offset`).
    entries: Vec<AbortedTxnEntry>,
    /// Entries appended since the file was last synced.
    unsynced: bool,
}

impl TxnIndex {
    /// An empty index; its file is created by the first append.
    pub fn new(path: &Path) -> TxnIndex {
        TxnIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            unsynced: false,
        }
    }

    /// The index stored at `path` (empty if there is no file).
    pub fn load(path: &Path) -> Result<TxnIndex, LogError> {
        let mut index = TxnIndex::new(path);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(error) => return Err(error).at(path),
        };
        if bytes.len() % ENTRY_BYTES != 0 {
            return Err(LogError::corrupt(
                path,
                format!(
                    "{} bytes is not a whole number of {ENTRY_BYTES}-byte entries",
                    bytes.len()
                ),
            ));
        }
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            let entry =
                AbortedTxnEntry::decode(chunk).map_err(|reason| LogError::corrupt(path, reason))?;
            if index
                .entries
                .last()
                .is_some_and(|last| last.last_offset >= entry.last_offset)
            {
                return Err(LogError::corrupt(
                    path,
                    "entries are not in ascending marker order",
                ));
            }
            index.entries.push(entry);
        }
        Ok(index)
    }

    /// Appends an entry (its marker after every entry's) and writes it to the file.
    pub fn append(&mut self, entry: AbortedTxnEntry) -> Result<(), LogError> {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.last_offset > last.last_offset,
                "aborted transaction markers are indexed in order: {entry:?} after {last:?}"
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)
            .at(&self.path)?;
        let position = (self.entries.len() * ENTRY_BYTES) as u64;
        file.write_all_at(&entry.encode(), position)
            .at(&self.path)?;
        self.entries.push(entry);
        self.unsynced = true;
        Ok(())
    }

    /// Drops the entries whose marker is at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: Offset) -> Result<(), LogError> {
        let keep = self
            .entries
            .partition_point(|entry| entry.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .at(&self.path)?;
        file.set_len((keep * ENTRY_BYTES) as u64).at(&self.path)?;
        self.unsynced = true;
        Ok(())
    }

    /// The aborted transactions with records in `from..to` (Kafka's `collectAbortedTxns`):
    /// marker at or after `from`, first offset before `to`.
    pub fn collect(&self, from: Offset, to: Offset, out: &mut Vec<AbortedTxnEntry>) {
        let start = self
            .entries
            .partition_point(|entry| entry.last_offset < from);
        out.extend(
            self.entries[start..]
                .iter()
                .filter(|entry| entry.first_offset < to),
        );
    }

    /// The file to fsync if entries were written since the last sync.
    pub fn unsynced_path(&self) -> Option<&Path> {
        self.unsynced.then_some(self.path.as_path())
    }

    /// Records that the file was synced.
    pub fn synced(&mut self) {
        self.unsynced = false;
    }

    pub fn entries(&self) -> &[AbortedTxnEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(producer: i64, first: i64, last: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: producer,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(first),
        }
    }

    #[test]
    fn entries_are_written_in_kafkas_layout_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::new(&path);
        assert!(!path.exists(), "no file until the first entry");
        index.append(entry(7, 3, 10)).unwrap();
        index.append(entry(8, 2, 12)).unwrap();
        assert_eq!(index.unsynced_path(), Some(path.as_path()));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        assert_eq!(&bytes[0..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let loaded = TxnIndex::load(&path).unwrap();
        assert_eq!(loaded.entries(), index.entries());
        let mut found = Vec::new();
        loaded.collect(Offset(11), Offset(100), &mut found);
        assert_eq!(found, [entry(8, 2, 12)]);
        found.clear();
        loaded.collect(Offset(0), Offset(3), &mut found);
        assert_eq!(found, [entry(8, 2, 12)], "producer 7 began at 3");
    }

    #[test]
    fn truncation_drops_markers_at_or_after_the_new_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::new(&path);
        for (producer, last) in [(1, 4), (2, 6), (3, 9)] {
            index.append(entry(producer, 0, last)).unwrap();
        }
        index.truncate_from(Offset(6)).unwrap();
        assert_eq!(TxnIndex::load(&path).unwrap().entries(), [entry(1, 0, 4)]);
        index.append(entry(4, 5, 7)).unwrap();
        assert_eq!(TxnIndex::load(&path).unwrap().entries().len(), 2);
    }

    #[test]
    fn damaged_files_are_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut good = entry(1, 0, 4).encode().to_vec();
        std::fs::write(&path, &good[..20]).unwrap();
        assert!(TxnIndex::load(&path).is_err(), "a torn entry");
        good.extend_from_slice(&entry(2, 0, 3).encode());
        std::fs::write(&path, &good).unwrap();
        assert!(TxnIndex::load(&path).is_err(), "markers out of order");
        let mut bad_version = entry(1, 0, 4).encode();
        bad_version[1] = 9;
        std::fs::write(&path, bad_version).unwrap();
        assert!(TxnIndex::load(&path).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_load_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.txnindex");
            std::fs::write(&path, &bytes).unwrap();
            let _ = TxnIndex::load(&path);
        }
    }
}
