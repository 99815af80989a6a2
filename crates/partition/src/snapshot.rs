//! The idempotent producers' state on disk, so a restart does not rescan the log to rebuild it
//! (Kafka's `ProducerStateManager` snapshots).
//!
//! One file per partition directory, `producer-state.snapshot`, replaced atomically (written
//! to a temporary name, then renamed). It holds the state as of an offset: every batch below
//! that offset is in it, none at or above. On open the partition loads it when that offset
//! lies within the log and reads the batch headers from there to the log end; when it does not
//! (the log was truncated or cleaned past it, or the file is missing or damaged) the state is
//! rebuilt from the headers of the active segment instead, as it was before snapshots, and the
//! unusable file is deleted: one beyond a log end that later grows past it again would
//! otherwise pass for current on the next open.
//!
//! Written on a clean close (fsynced: the next start reads nothing) and when the active segment
//! rolls (not fsynced: a crash may lose it, and the CRC and the offset check catch a torn or
//! stale file). A truncation below the snapshot's offset deletes it first, since the records it
//! describes are gone.
//!
//! Layout, big-endian: `STPS` magic, version u16 (2), offset i64, producer count u32, then per
//! producer: id i64, epoch i16, the first offset of its open transaction i64 (-1: none; not in
//! version 1, which is still read), batch count u8, and per batch first sequence i32, last
//! sequence i32, base offset i64, last offset i64; last, a CRC-32C of everything before it.

use std::io::Write;
use std::path::{Path, PathBuf};

use strom_types::{Offset, ProducerEpoch, ProducerId};

use crate::producers::{BatchSpan, ProducerEntry, ProducerStates};

const FILE_NAME: &str = "producer-state.snapshot";
const MAGIC: &[u8; 4] = b"STPS";
const VERSION: u16 = 2;
/// The version before transactions, read as having none open.
const VERSION_WITHOUT_TRANSACTIONS: u16 = 1;
/// Most producers a snapshot may claim: bounds what a damaged count can make a reader allocate.
const PRODUCERS_MAX: u32 = 10_000_000;

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
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

/// Replaces the snapshot in `dir`; with `durable`, fsyncs the file and the directory.
pub(crate) fn write(
    dir: &Path,
    offset: Offset,
    states: &ProducerStates,
    durable: bool,
) -> std::io::Result<()> {
    let bytes = encode(offset, states);
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        if durable {
            file.sync_data()?;
        }
        std::fs::rename(&temporary, path(dir))
    })();
    if written.is_err() {
        // A part-written file would hold on to space a full disk needs back; the next roll or
        // clean close writes the snapshot again.
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The snapshot in `dir`, if there is one.
pub(crate) fn read(dir: &Path) -> Result<Option<(Offset, ProducerStates)>, SnapshotError> {
    match std::fs::read(path(dir)) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Deletes the snapshot in `dir` (before a truncation below it).
pub(crate) fn delete(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir)) {
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
    fn write_read_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let mut states = ProducerStates::default();
        states.record(&header(1, 0, 0));
        write(dir.path(), Offset(2), &states, true).unwrap();
        let (offset, read_back) = read(dir.path()).unwrap().unwrap();
        assert_eq!((offset, read_back), (Offset(2), states));
        delete(dir.path()).unwrap();
        delete(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }
}
