//! The producers' state on disk, so a restart, a truncation or a crash replays at most one
//! segment to rebuild it (Kafka's `ProducerStateManager` snapshots).
//!
//! Snapshots are files named after the offset they were taken at, `<offset, 20 digits>.snapshot`
//! as in Kafka, each holding the state as of that offset: every batch below it is in it, none at
//! or above. One is written when the active segment rolls (at the new segment's base offset, by
//! leaders and followers alike; not fsynced: a crash may lose it, and the CRC catches a torn
//! file) and one on shutdown (at the log end; fsynced by a lone close, by the node's filesystem
//! sync otherwise). Writing one deletes those it supersedes inside the same segment, so a log
//! keeps about one per segment.
//!
//! The owner (`store`) lists them once when the partition opens and keeps the list. It loads
//! the newest one at or below the log end and replays the batch headers from there; with none
//! usable it replays from the log start, since an open transaction may have begun anywhere.
//! Snapshots beyond the log end (the log lost a torn tail on open, or was truncated) are
//! deleted, as Kafka deletes them: once appends carry the log end past such a snapshot's offset
//! again it would look current to the next open after a crash, which would then answer retries
//! of the lost batches as duplicates at offsets holding other records. So are snapshots below
//! the log start (retention deleted what they describe) and unreadable ones. A truncation
//! deletes those above its offset first, then loads the newest one left.
//!
//! The single `producer-state.snapshot` of earlier versions is read once, renamed after its
//! offset.
//!
//! Layout, big-endian: `STPS` magic, version u16 (2), offset i64, producer count u32, then per
//! producer: id i64, epoch i16, the first offset of its open transaction i64 (-1: none; not in
//! version 1, which is still read), batch count u8, and per batch first sequence i32, last
//! sequence i32, base offset i64, last offset i64; last, a CRC-32C of everything before it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use strom_types::{Offset, ProducerEpoch, ProducerId};

use crate::producers::{BatchSpan, ProducerEntry, ProducerStates};

const SUFFIX: &str = ".snapshot";
/// The one snapshot file of earlier versions.
const LEGACY_FILE_NAME: &str = "producer-state.snapshot";
const MAGIC: &[u8; 4] = b"STPS";
const VERSION: u16 = 2;
/// The version before transactions, read as having none open.
const VERSION_WITHOUT_TRANSACTIONS: u16 = 1;
/// Most producers a snapshot may claim: bounds what a damaged count can make a reader allocate.
const PRODUCERS_MAX: u32 = 10_000_000;

/// The snapshot taken at `offset`.
pub(crate) fn path(dir: &Path, offset: Offset) -> PathBuf {
    assert!(offset.0 >= 0, "a snapshot offset is never negative");
    dir.join(format!("{:020}{SUFFIX}", offset.0))
}

/// The snapshots of one partition directory: which offsets have one, kept in step with the
/// files as they are written and deleted (listed once, when the partition opens).
pub(crate) struct Snapshots {
    dir: PathBuf,
    offsets: BTreeSet<Offset>,
}

impl Snapshots {
    pub fn open(dir: &Path) -> std::io::Result<Snapshots> {
        Ok(Snapshots {
            dir: dir.to_path_buf(),
            offsets: list(dir)?,
        })
    }

    /// Whether there is a snapshot taken at `offset`.
    pub fn contains(&self, offset: Offset) -> bool {
        self.offsets.contains(&offset)
    }

    /// Writes the snapshot of `states` at `offset`, then deletes the ones it supersedes: those
    /// taken after `segment_base`, the base offset of the segment holding them (a roll passes
    /// the segment that just ended). One per segment base is kept for truncations.
    pub fn write(
        &mut self,
        offset: Offset,
        states: &ProducerStates,
        durable: bool,
        segment_base: Offset,
    ) -> std::io::Result<()> {
        write(&self.dir, offset, states, durable)?;
        self.offsets.insert(offset);
        if offset > segment_base.plus(1) {
            let superseded: Vec<Offset> = self
                .offsets
                .range(segment_base.plus(1)..offset)
                .copied()
                .collect();
            self.delete(superseded);
        }
        Ok(())
    }

    /// The newest snapshot within `start..=end` that can be read, with its offset. The ones
    /// outside (see the module docs) and the unreadable ones are deleted.
    pub fn load_newest(&mut self, start: Offset, end: Offset) -> Option<(Offset, ProducerStates)> {
        let outside: Vec<Offset> = self
            .offsets
            .iter()
            .filter(|&&offset| offset < start || offset > end)
            .copied()
            .collect();
        if !outside.is_empty() {
            tracing::info!(dir = %self.dir.display(), ?outside, %start, %end, "deleting producer state snapshots outside the log");
            self.delete(outside);
        }
        while let Some(&offset) = self.offsets.range(start..=end).next_back() {
            match read(&self.dir, offset) {
                Ok(states) => return Some((offset, states)),
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), %offset, %error, "ignoring the producer state snapshot, unusable; deleting it");
                    self.delete([offset]);
                    // Not reading it again, whether or not the deletion worked.
                    self.offsets.remove(&offset);
                }
            }
        }
        None
    }

    /// Deletes every snapshot (the log restarts at another offset).
    pub fn delete_all(&mut self) {
        let all: Vec<Offset> = self.offsets.iter().copied().collect();
        self.delete(all);
    }

    /// Deletes the snapshots taken below `offset` (retention moved the log start there).
    pub fn delete_below(&mut self, offset: Offset) {
        let below: Vec<Offset> = self.offsets.range(..offset).copied().collect();
        self.delete(below);
    }

    fn delete(&mut self, offsets: impl IntoIterator<Item = Offset>) {
        for offset in offsets {
            match delete(&self.dir, offset) {
                Ok(()) => {
                    self.offsets.remove(&offset);
                }
                // Kept in the list, so the next deletion tries again; loud, since it means the
                // directory is not writable, and a stale snapshot beyond the log end is caught
                // only while the log end is below it.
                Err(error) => {
                    tracing::error!(dir = %self.dir.display(), %offset, %error, "cannot delete a producer state snapshot")
                }
            }
        }
    }
}

/// The snapshot's bytes for `states` as of `offset`.
pub(crate) fn encode(offset: Offset, states: &ProducerStates) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + states.len() * 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&offset.0.to_be_bytes());
    out.extend_from_slice(&(states.len() as u32).to_be_bytes());
    for (id, entry) in states.entries() {
        out.extend_from_slice(&id.0.to_be_bytes());
        out.extend_from_slice(&entry.epoch.0.to_be_bytes());
        let txn_first_offset = entry.txn_first_offset.map_or(-1, |offset| offset.0);
        out.extend_from_slice(&txn_first_offset.to_be_bytes());
        out.push(entry.batches.len() as u8);
        for batch in &entry.batches {
            out.extend_from_slice(&batch.first_sequence.to_be_bytes());
            out.extend_from_slice(&batch.last_sequence.to_be_bytes());
            out.extend_from_slice(&batch.base_offset.0.to_be_bytes());
            out.extend_from_slice(&batch.last_offset.0.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is damaged: {0}")]
    Damaged(&'static str),
}

/// Reads the bytes of a snapshot back: its offset and the state.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Offset, ProducerStates), SnapshotError> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or(SnapshotError::Damaged("too short"))?;
    let (body, crc) = bytes.split_at(body_len);
    let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != stored {
        return Err(SnapshotError::Damaged("CRC mismatch"));
    }
    let mut reader = Reader { bytes: body };
    if reader.take(4)? != MAGIC {
        return Err(SnapshotError::Damaged("not a producer state snapshot"));
    }
    let version = reader.u16()?;
    if version != VERSION && version != VERSION_WITHOUT_TRANSACTIONS {
        return Err(SnapshotError::Damaged("unknown version"));
    }
    let offset = Offset(reader.i64()?);
    let count = reader.u32()?;
    if count > PRODUCERS_MAX {
        return Err(SnapshotError::Damaged("implausible producer count"));
    }
    let mut states = ProducerStates::default();
    for _ in 0..count {
        let id = ProducerId(reader.i64()?);
        let epoch = ProducerEpoch(reader.i16()?);
        let txn_first_offset = match version {
            VERSION_WITHOUT_TRANSACTIONS => None,
            _ => Some(reader.i64()?)
                .filter(|&offset| offset >= 0)
                .map(Offset),
        };
        let batch_count = reader.take(1)?[0];
        let mut entry = ProducerEntry {
            epoch,
            batches: Default::default(),
            txn_first_offset,
        };
        for _ in 0..batch_count {
            entry.batches.push_back(BatchSpan {
                first_sequence: reader.i32()?,
                last_sequence: reader.i32()?,
                base_offset: Offset(reader.i64()?),
                last_offset: Offset(reader.i64()?),
            });
        }
        states.insert(id, entry);
    }
    if !reader.bytes.is_empty() {
        return Err(SnapshotError::Damaged("trailing bytes"));
    }
    Ok((offset, states))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() < count {
            return Err(SnapshotError::Damaged("truncated"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}

/// Writes the snapshot of `states` at `offset` in `dir` (replacing one there); with `durable`,
/// fsyncs the file and the directory.
pub(crate) fn write(
    dir: &Path,
    offset: Offset,
    states: &ProducerStates,
    durable: bool,
) -> std::io::Result<()> {
    let bytes = encode(offset, states);
    let temporary = dir.join(format!("{:020}{SUFFIX}.tmp", offset.0));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        if durable {
            file.sync_data()?;
        }
        std::fs::rename(&temporary, path(dir, offset))
    })();
    if written.is_err() {
        // A part-written file would hold on to space a full disk needs back; the next roll or
        // clean close writes a snapshot again.
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The snapshot taken at `offset` in `dir`.
pub(crate) fn read(dir: &Path, offset: Offset) -> Result<ProducerStates, SnapshotError> {
    let (stored, states) = decode(&std::fs::read(path(dir, offset))?)?;
    match stored == offset {
        true => Ok(states),
        false => Err(SnapshotError::Damaged(
            "its offset is not the one it is named after",
        )),
    }
}

/// The offsets of the snapshots in `dir`. A snapshot of an earlier version is renamed after
/// its offset (or deleted if unreadable); temporary files of an interrupted write go.
pub(crate) fn list(dir: &Path) -> std::io::Result<BTreeSet<Offset>> {
    let mut offsets = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(".snapshot.tmp") {
            remove_if_exists(&dir.join(name))?;
        } else if name == LEGACY_FILE_NAME {
            offsets.extend(migrate_legacy(dir)?);
        } else if let Some(stem) = name.strip_suffix(SUFFIX) {
            if stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit()) {
                offsets.insert(Offset(stem.parse().expect("20 digits fit an i64")));
            }
        }
    }
    Ok(offsets)
}

/// Renames the snapshot of an earlier version after its offset, which it returns.
fn migrate_legacy(dir: &Path) -> std::io::Result<Option<Offset>> {
    let legacy = dir.join(LEGACY_FILE_NAME);
    match decode(&std::fs::read(&legacy)?) {
        Ok((offset, _)) if offset.0 >= 0 => {
            std::fs::rename(&legacy, path(dir, offset))?;
            Ok(Some(offset))
        }
        _ => {
            remove_if_exists(&legacy)?;
            Ok(None)
        }
    }
}

/// Deletes the snapshot at `offset` in `dir` (one already gone is not an error).
pub(crate) fn delete(dir: &Path, offset: Offset) -> std::io::Result<()> {
    remove_if_exists(&path(dir, offset))
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::batch::BatchHeader;
    use strom_types::TimestampMs;

    fn header(producer_id: i64, sequence: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: Offset(base_offset),
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 1,
            base_timestamp: TimestampMs(0),
            max_timestamp: TimestampMs(0),
            producer_id,
            producer_epoch: 3,
            base_sequence: sequence,
            record_count: 2,
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_damage_is_caught() {
        let mut states = ProducerStates::default();
        for sequence in (0..20).step_by(2) {
            states.record(&header(7, sequence, sequence as i64));
        }
        states.record(&header(9, 0, 100));
        let bytes = encode(Offset(102), &states);
        let (offset, decoded) = decode(&bytes).unwrap();
        assert_eq!(offset, Offset(102));
        assert_eq!(decoded, states);
        for at in [0, 5, 13, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(
                decode(&damaged).is_err(),
                "a flipped byte at {at} is caught"
            );
        }
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn write_list_read_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, 0));
        write(dir.path(), Offset(2), &states, true).unwrap();
        write(dir.path(), Offset(40), &states, false).unwrap();
        assert!(dir.path().join("00000000000000000040.snapshot").exists());
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(2), Offset(40)]
        );
        assert_eq!(read(dir.path(), Offset(2)).unwrap(), states);
        std::fs::copy(path(dir.path(), Offset(2)), path(dir.path(), Offset(3))).unwrap();
        assert!(
            read(dir.path(), Offset(3)).is_err(),
            "named after another offset"
        );
        delete(dir.path(), Offset(2)).unwrap();
        delete(dir.path(), Offset(2)).unwrap();
        assert!(read(dir.path(), Offset(2)).is_err());
    }

    #[test]
    fn a_new_snapshot_supersedes_the_earlier_ones_of_its_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        let states = ProducerStates::default();
        let mut snapshots = Snapshots::open(dir.path()).unwrap();
        // A roll at 10, shutdowns at 14 and 17 within that segment, a roll at 20.
        snapshots
            .write(Offset(10), &states, false, Offset(0))
            .unwrap();
        snapshots
            .write(Offset(14), &states, false, Offset(10))
            .unwrap();
        snapshots
            .write(Offset(17), &states, false, Offset(10))
            .unwrap();
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(10), Offset(17)]
        );
        snapshots
            .write(Offset(20), &states, false, Offset(10))
            .unwrap();
        // A shutdown right after the roll: at the segment's base itself.
        snapshots
            .write(Offset(20), &states, true, Offset(20))
            .unwrap();
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(10), Offset(20)]
        );
        assert!(snapshots.contains(Offset(20)));
        snapshots.delete_below(Offset(15));
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(20)]
        );
        assert!(
            snapshots.load_newest(Offset(15), Offset(19)).is_none(),
            "the one at 20 is beyond the log end 19"
        );
        assert!(list(dir.path()).unwrap().is_empty(), "and deleted");
    }

    #[test]
    fn a_snapshot_of_an_earlier_version_is_renamed_after_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, 0));
        std::fs::write(
            dir.path().join(LEGACY_FILE_NAME),
            encode(Offset(7), &states),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("00000000000000000009.snapshot.tmp"),
            b"half",
        )
        .unwrap();
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(7)]
        );
        assert_eq!(read(dir.path(), Offset(7)).unwrap(), states);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(dir.path().join(LEGACY_FILE_NAME), b"damaged").unwrap();
        assert_eq!(
            list(dir.path()).unwrap().len(),
            1,
            "an unreadable one is deleted"
        );
        assert!(!dir.path().join(LEGACY_FILE_NAME).exists());
    }
}
