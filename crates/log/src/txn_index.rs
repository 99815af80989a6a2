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
//! The active segment's entries live in memory and are appended to the file at once, without
//! an fsync: the log syncs the file with its segment (see `sync`), and before the segment rolls.
//! Once the segment is inactive its entries leave memory (only their count stays) and reads go
//! to the file, so memory does not grow with the aborted transactions a long retention keeps.
//! The file exists only while the index has entries (Kafka creates it lazily too), so the many
//! segments without aborted transactions cost no file and no syscall. A file that does not hold
//! whole, well-formed entries in ascending marker order is not an index; recovery then rebuilds
//! it from the log (see `txn_recovery`).

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strom_types::Offset;

use crate::error::{IoContext, LogError};
use crate::files::remove_if_exists;

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

/// One segment's aborted-transaction index. The active segment keeps its entries in memory; an
/// inactive one keeps only their count and reads its file when a read needs them, so memory
/// does not grow with the aborted transactions a long retention keeps (Kafka reads its
/// `.txnindex` files on demand too). A segment without aborts has no file and costs no
/// syscall. The file is opened only for the operation at hand, so an index holds no descriptor.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    /// The entries, ascending by marker offset (`last_offset`), while they are in memory.
    loaded: Option<Vec<AbortedTxnEntry>>,
    /// How many entries the index has, in memory or not.
    count: usize,
    /// How many leading entries the file holds. Behind `count` only after a failed write,
    /// which the next [`TxnIndex::write_pending`] retries.
    persisted: usize,
    /// The file must be rewritten whole before anything is appended to it (it was replaced or
    /// cut in memory and the write failed).
    rewrite_pending: bool,
}

impl TxnIndex {
    /// An empty index; its file is created by the first append.
    pub fn new(path: &Path) -> TxnIndex {
        TxnIndex {
            path: path.to_path_buf(),
            loaded: Some(Vec::new()),
            count: 0,
            persisted: 0,
            rewrite_pending: false,
        }
    }

    /// The index stored at `path` (empty if there is no file), in memory. The outer error is
    /// I/O; the inner one says why the file is not an index (its owner then rebuilds it).
    pub fn load(path: &Path) -> Result<Result<TxnIndex, String>, LogError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Ok(TxnIndex::new(path)))
            }
            Err(error) => return Err(error).at(path),
        };
        Ok(decode_entries(&bytes).map(|entries| TxnIndex {
            path: path.to_path_buf(),
            count: entries.len(),
            persisted: entries.len(),
            loaded: Some(entries),
            rewrite_pending: false,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Drops the entries from memory once they are all in the file (the segment went
    /// inactive); reads load them from the file again.
    pub fn unload(&mut self) {
        if self.first_pending_marker().is_none() && !self.rewrite_pending {
            self.loaded = None;
        }
    }

    /// The entries, from memory or read from the file.
    pub fn entries(&self) -> Result<Cow<'_, [AbortedTxnEntry]>, LogError> {
        match &self.loaded {
            Some(entries) => Ok(Cow::Borrowed(entries)),
            None if self.count == 0 => Ok(Cow::Borrowed(&[])),
            None => self.read_file().map(Cow::Owned),
        }
    }

    /// The entries of the file, which must be the ones this index counts (recovery checked it
    /// on open; anything else is damage since).
    fn read_file(&self) -> Result<Vec<AbortedTxnEntry>, LogError> {
        let bytes = std::fs::read(&self.path).at(&self.path)?;
        let entries =
            decode_entries(&bytes).map_err(|reason| LogError::corrupt(&self.path, reason))?;
        if entries.len() != self.count {
            let reason = format!("{} entries, not the {} it had", entries.len(), self.count);
            return Err(LogError::corrupt(&self.path, reason));
        }
        Ok(entries)
    }

    /// The entries in memory, read from the file first if need be (an index without entries
    /// has no file).
    fn loaded_mut(&mut self) -> Result<&mut Vec<AbortedTxnEntry>, LogError> {
        if self.loaded.is_none() {
            let entries = match self.count {
                0 => Vec::new(),
                _ => self.read_file()?,
            };
            self.loaded = Some(entries);
        }
        Ok(self.loaded.as_mut().expect("just loaded"))
    }

    /// Appends an entry (its marker after every entry's) and writes it to the file. If the
    /// write fails the entry stays in memory (readers see it) and the next append or
    /// [`TxnIndex::write_pending`] writes it.
    pub fn append(&mut self, entry: AbortedTxnEntry) -> Result<(), LogError> {
        assert!(
            entry.first_offset <= entry.last_offset,
            "a transaction begins before its marker: {entry:?}"
        );
        let entries = self.loaded_mut()?;
        if let Some(last) = entries.last() {
            assert!(
                entry.last_offset > last.last_offset,
                "aborted transaction markers are indexed in order: {entry:?} after {last:?}"
            );
        }
        entries.push(entry);
        self.count += 1;
        self.write_pending()
    }

    /// Writes what the file lacks: the entries appended since the last successful write, or
    /// everything after a replacement or cut. An empty index has no file.
    pub fn write_pending(&mut self) -> Result<(), LogError> {
        if self.rewrite_pending {
            remove_if_exists(&self.path)?;
            self.persisted = 0;
            self.rewrite_pending = false;
        }
        let Some(entries) = &self.loaded else {
            return Ok(());
        };
        if self.persisted == entries.len() {
            return Ok(());
        }
        let bytes: Vec<u8> = entries[self.persisted..]
            .iter()
            .flat_map(|entry| entry.encode())
            .collect();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)
            .at(&self.path)?;
        let position = (self.persisted * ENTRY_BYTES) as u64;
        if let Err(error) = file.write_all_at(&bytes, position) {
            // A part of an entry on disk would make the file unreadable; cut it off.
            let _ = file.set_len(position);
            return Err(error).at(&self.path);
        }
        self.persisted = entries.len();
        Ok(())
    }

    /// The marker offset of the oldest entry not yet in the file, if any.
    pub fn first_pending_marker(&self) -> Option<Offset> {
        let entries = self.loaded.as_ref()?;
        let first = match self.rewrite_pending {
            true => 0,
            false => self.persisted,
        };
        entries.get(first).map(|entry| entry.last_offset)
    }

    /// Drops the entries whose marker is at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: Offset) -> Result<(), LogError> {
        if self.count == 0 {
            return Ok(());
        }
        let entries = self.loaded_mut()?;
        let keep = entries.partition_point(|entry| entry.last_offset < offset);
        if keep == entries.len() {
            return Ok(());
        }
        entries.truncate(keep);
        self.count = keep;
        if keep == 0 {
            self.rewrite_pending = true;
            return self.write_pending();
        }
        if self.persisted > keep && !self.rewrite_pending {
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .at(&self.path)?;
            file.set_len((keep * ENTRY_BYTES) as u64).at(&self.path)?;
            self.persisted = keep;
        }
        Ok(())
    }

    /// Replaces every entry (recovery's repair) and rewrites the file.
    pub fn replace(&mut self, entries: Vec<AbortedTxnEntry>) -> Result<(), LogError> {
        assert!(
            entries
                .windows(2)
                .all(|pair| pair[0].last_offset < pair[1].last_offset),
            "aborted transaction markers are indexed in order"
        );
        self.count = entries.len();
        self.loaded = Some(entries);
        self.rewrite_pending = true;
        self.write_pending()
    }

    /// Appends to `out` the aborted transactions with records in `from..to` (Kafka's
    /// `collectAbortedTxns`): marker at or after `from`, first offset before `to`. Returns
    /// whether the search is complete: an entry's last stable offset at or past `to` means no
    /// transaction aborted later began before `to`.
    pub fn collect(
        &self,
        from: Offset,
        to: Offset,
        out: &mut Vec<AbortedTxnEntry>,
    ) -> Result<bool, LogError> {
        let entries = self.entries()?;
        let start = entries.partition_point(|entry| entry.last_offset < from);
        for entry in &entries[start..] {
            if entry.first_offset < to {
                out.push(*entry);
            }
            if entry.last_stable_offset >= to {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The entries of an index file, or why the bytes are not one.
fn decode_entries(bytes: &[u8]) -> Result<Vec<AbortedTxnEntry>, String> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(format!(
            "{} bytes is not a whole number of {ENTRY_BYTES}-byte entries",
            bytes.len()
        ));
    }
    let mut entries: Vec<AbortedTxnEntry> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let entry = AbortedTxnEntry::decode(chunk)?;
        if entries
            .last()
            .is_some_and(|last| last.last_offset >= entry.last_offset)
        {
            return Err("entries are not in ascending marker order".to_string());
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An entry whose last stable offset never ends a search early.
    fn entry(producer: i64, first: i64, last: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: producer,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(0),
        }
    }

    fn load(path: &Path) -> TxnIndex {
        TxnIndex::load(path).unwrap().unwrap()
    }

    #[test]
    fn entries_are_written_in_kafkas_layout_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::new(&path);
        assert!(!path.exists(), "no file until the first entry");
        index.append(entry(7, 3, 10)).unwrap();
        index.append(entry(8, 2, 12)).unwrap();
        assert_eq!(index.first_pending_marker(), None);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        assert_eq!(&bytes[0..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let loaded = load(&path);
        assert_eq!(loaded.entries().unwrap(), index.entries().unwrap());
        let mut found = Vec::new();
        loaded.collect(Offset(11), Offset(100), &mut found).unwrap();
        assert_eq!(found, [entry(8, 2, 12)]);
        found.clear();
        loaded.collect(Offset(0), Offset(3), &mut found).unwrap();
        assert_eq!(found, [entry(8, 2, 12)], "producer 7 began at 3");
    }

    #[test]
    fn a_search_is_complete_at_an_entry_whose_last_stable_offset_reaches_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::new(&dir.path().join("0.txnindex"));
        let with_lso = |producer, first, last, lso| AbortedTxnEntry {
            last_stable_offset: Offset(lso),
            ..entry(producer, first, last)
        };
        index.append(with_lso(1, 0, 4, 2)).unwrap();
        index.append(with_lso(2, 2, 6, 7)).unwrap();
        let mut found = Vec::new();
        assert!(!index.collect(Offset(0), Offset(8), &mut found).unwrap());
        assert_eq!(found.len(), 2);
        found.clear();
        assert!(index.collect(Offset(0), Offset(7), &mut found).unwrap());
        assert_eq!(found.len(), 2);
        found.clear();
        assert!(
            !index.collect(Offset(7), Offset(9), &mut found).unwrap(),
            "nothing at or after 7"
        );
        assert!(found.is_empty());
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
        assert_eq!(load(&path).entries().unwrap().as_ref(), [entry(1, 0, 4)]);
        index.append(entry(4, 5, 7)).unwrap();
        assert_eq!(load(&path).entries().unwrap().len(), 2);
        index.truncate_from(Offset(0)).unwrap();
        assert!(!path.exists(), "an empty index has no file");
        index.append(entry(5, 1, 2)).unwrap();
        assert_eq!(load(&path).entries().unwrap().as_ref(), [entry(5, 1, 2)]);
    }

    #[test]
    fn a_replacement_rewrites_the_file_and_an_empty_one_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.txnindex");
        let mut index = TxnIndex::new(&path);
        index.append(entry(1, 0, 4)).unwrap();
        index.append(entry(2, 0, 6)).unwrap();
        index.replace(vec![entry(3, 1, 5)]).unwrap();
        assert_eq!(load(&path).entries().unwrap().as_ref(), [entry(3, 1, 5)]);
        index.replace(Vec::new()).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_failed_write_keeps_the_entry_and_the_next_write_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let path = missing.join("0.txnindex");
        let mut index = TxnIndex::new(&path);
        assert!(
            index.append(entry(1, 0, 4)).is_err(),
            "its directory is missing"
        );
        assert_eq!(index.first_pending_marker(), Some(Offset(4)));
        assert_eq!(
            index.entries().unwrap().as_ref(),
            [entry(1, 0, 4)],
            "readers still see it"
        );
        std::fs::create_dir(&missing).unwrap();
        index.append(entry(2, 5, 6)).unwrap();
        assert_eq!(index.first_pending_marker(), None);
        assert_eq!(
            load(&path).entries().unwrap().as_ref(),
            [entry(1, 0, 4), entry(2, 5, 6)]
        );
    }

    #[test]
    fn an_unloaded_index_reads_its_file_and_loads_it_to_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.txnindex");
        let mut index = TxnIndex::new(&path);
        index.append(entry(1, 0, 4)).unwrap();
        index.append(entry(2, 5, 6)).unwrap();
        index.unload();
        assert!(index.loaded.is_none());
        let mut found = Vec::new();
        index.collect(Offset(5), Offset(7), &mut found).unwrap();
        assert_eq!(found, [entry(2, 5, 6)]);
        index.truncate_from(Offset(6)).unwrap();
        assert_eq!(load(&path).entries().unwrap().as_ref(), [entry(1, 0, 4)]);
        index.unload();
        std::fs::write(&path, b"damaged since it was checked").unwrap();
        assert!(matches!(index.entries(), Err(LogError::Corrupt { .. })));
        let mut empty = TxnIndex::new(&dir.path().join("none.txnindex"));
        empty.unload();
        assert!(empty.entries().unwrap().is_empty(), "no file, no read");
        empty.append(entry(3, 7, 8)).unwrap();
        assert_eq!(empty.entries().unwrap().len(), 1);
    }

    #[test]
    fn damaged_files_are_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut good = entry(1, 0, 4).encode().to_vec();
        std::fs::write(&path, &good[..20]).unwrap();
        assert!(TxnIndex::load(&path).unwrap().is_err(), "a torn entry");
        good.extend_from_slice(&entry(2, 0, 3).encode());
        std::fs::write(&path, &good).unwrap();
        assert!(
            TxnIndex::load(&path).unwrap().is_err(),
            "markers out of order"
        );
        let mut bad_version = entry(1, 0, 4).encode();
        bad_version[1] = 9;
        std::fs::write(&path, bad_version).unwrap();
        assert!(TxnIndex::load(&path).unwrap().is_err());
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
