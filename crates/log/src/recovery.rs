//! Opening a partition directory: finishing an interrupted compaction swap, finding the
//! segments, checking or rebuilding their indexes, and cutting off a torn tail.
//!
//! First `swap::finish_interrupted` rolls back a compaction that had not reached its commit
//! point and completes one that had. Inactive segments were written whole and their indexes
//! flushed when they were rolled (or swapped in), so they are trusted after cheap checks: the
//! index files must be well-formed and monotonic, and a header walk from the last offset-index
//! entry must reach the end of the file exactly. One that fails is re-read in full with CRCs. The
//! active segment is always re-read in full: every batch's length, CRC-32C and offset is checked
//! (offsets must grow; compaction's gaps between batches are allowed), the file is cut at the
//! first bad batch, and its indexes are rebuilt. If an inactive segment turns out damaged, it is
//! cut the same way and every later segment is deleted, since segments must stay contiguous. A
//! gap between intact segments is not repairable and fails the open with [`LogError::Corrupt`].
//! Each segment's aborted-transaction index is loaded with it, and checked against the ABORT
//! markers of the segments re-read in full, or rebuilt when it is unreadable or an interrupted
//! swap deleted it (see `txn_recovery`); never fatal.
//! Then the cleaner checkpoint is read and lowered to the log end if recovery cut below it.
//! Last, the leader epoch cache is loaded (see `leader_epoch`): from its checkpoint, or rebuilt
//! from the batch headers of every segment when that is missing or unreadable, then cut to the
//! recovered log's bounds, and the log start is raised to its checkpoint (see `log_start`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

use strom_types::Offset;

use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch_cache::EpochCache;
use crate::error::{IoContext, LogError};
use crate::files::{self, FilePool};
use crate::index::{validate_offset_entries, validate_time_entries};
use crate::log::Log;
use crate::scan::{self, WalkStart};
use crate::segment::{self, Segment, EXTENSIONS, LOG_EXTENSION, TXN_INDEX_EXTENSION};
use crate::swap;
use crate::sync::{Durability, SyncTarget};
use crate::txn_recovery::{self, AbortMarker, TxnRepair};

impl Log {
    /// Opens the log in `dir` (creating the directory if missing) and recovers it; see the
    /// module docs. An empty directory gives an empty log starting at offset 0.
    /// The log is made durable as recovered (its active segment and directory fsynced) before
    /// this returns.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        Log::open_in(dir, config, FilePool::process(), Recovery::CrashAndSync)
    }

    /// [`Log::open`] with the segment files opened through `pool` and `recovery` saying how
    /// far the files are trusted and who fsyncs what recovery found (see [`Recovery`]).
    pub fn open_in(
        dir: &Path,
        config: LogConfig,
        pool: &FilePool,
        recovery: Recovery,
    ) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let swapped = swap::finish_interrupted(dir)?;
        let Listing {
            base_offsets,
            txn_indexes,
        } = list_segments(dir)?;
        let (segments, durability, repairs) = match base_offsets.is_empty() {
            true => (
                vec![Segment::create(dir, Offset(0), pool)?],
                Durability::for_new_directory(),
                Vec::new(),
            ),
            false => {
                let txn_files = TxnFiles {
                    present: &txn_indexes,
                    swapped: &swapped,
                };
                let (segments, repairs) =
                    recover_segments(dir, &base_offsets, &config, pool, txn_files)?;
                let active = segments
                    .last()
                    .expect("recovery keeps at least one segment");
                // The caller makes whatever survived recovery durable before serving.
                let durability = Durability::new(active.next_offset);
                (segments, durability, repairs)
            }
        };
        let active = segments
            .last()
            .expect("recovery keeps at least one segment");
        let log_end_offset = active.next_offset;
        let log_start_offset = segments[0].base_offset;
        tracing::debug!(dir = %dir.display(), %log_start_offset, %log_end_offset, segments = segments.len(), "opened log");
        let first_dirty_offset = checkpoint::read(dir)?.unwrap_or(log_start_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            pool: pool.clone(),
            config,
            segments,
            log_start_offset,
            first_dirty_offset,
            durability,
            epochs: EpochCache::default(),
            epochs_unsynced: false,
        };
        let repaired = log.repair_txn_indexes(repairs)?;
        let inactive = log.segments.len() - 1;
        for segment in &mut log.segments[..inactive] {
            segment.txn_index.unload();
        }
        if recovery == Recovery::CrashAndSync && !base_offsets.is_empty() {
            SyncTarget::Pooled(log.active().file.clone()).sync()?;
            for path in repaired {
                SyncTarget::Path(path).sync()?;
            }
            files::sync_path(dir)?;
        }
        // Recovery may have cut the log below the checkpoint; what is appended next is dirty.
        log.lower_first_dirty_offset(log_end_offset)?;
        log.recover_epochs()?;
        log.recover_log_start()?;
        Ok(log)
    }
}

/// Who makes what [`Log::open_in`] recovered durable. Either way the active segment is re-read
/// in full, every batch's CRC checked, and cut at the first bad one, even after a clean
/// shutdown: Kafka skips that, but a byte damaged while the node was stopped is caught here,
/// and with index resets deferred to the next flush the check is cheap. The log's durable
/// offset starts at its end, so that must be true before the log's owner acknowledges
/// anything: a node opening many logs at start uses `Crash` and then syncs the filesystem
/// once ([`sync_filesystem`]), one call instead of two fsyncs per log; a log opened alone
/// uses `CrashAndSync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing is fsynced: the caller syncs the filesystem before it serves.
    Crash,
    /// As `Crash`, then the active segment and the directory are fsynced before it returns.
    CrashAndSync,
}

/// fsyncs everything written to the filesystem holding `path` (`syncfs`), once for all the
/// logs on it: after opening them at start, and before marking a shutdown clean.
pub fn sync_filesystem(path: &Path) -> Result<(), LogError> {
    let dir = std::fs::File::open(path).at(path)?;
    rustix::fs::syncfs(&dir)
        .map_err(std::io::Error::from)
        .at(path)
}

/// The segments of a directory, as its listing shows them.
struct Listing {
    /// Ascending.
    base_offsets: Vec<Offset>,
    /// The segments with a `.txnindex` file (the others have no aborted transaction).
    txn_indexes: BTreeSet<Offset>,
}

/// The segments in `dir`. Index files without a `.log` file are leftovers of a deletion that
/// was cut short and are removed.
fn list_segments(dir: &Path) -> Result<Listing, LogError> {
    let mut logs = BTreeSet::new();
    let mut txn_indexes = BTreeSet::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let Some((base_offset, extension)) = parse_file_name(&path) else {
            tracing::debug!(path = %path.display(), "ignoring a file that is not a segment file");
            continue;
        };
        match extension {
            LOG_EXTENSION => {
                logs.insert(base_offset);
            }
            TXN_INDEX_EXTENSION => {
                txn_indexes.insert(base_offset);
                indexes.push((base_offset, path));
            }
            _ => indexes.push((base_offset, path)),
        }
    }
    for (base_offset, path) in indexes {
        if !logs.contains(&base_offset) {
            tracing::warn!(path = %path.display(), "deleting an index file whose segment is gone");
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(Listing {
        base_offsets: logs.into_iter().collect(),
        txn_indexes,
    })
}

/// `<20 digits>.log|index|timeindex|txnindex` -> (base offset, extension).
fn parse_file_name(path: &Path) -> Option<(Offset, &'static str)> {
    let (base_offset, extension) = segment::parse_file_name(path)?;
    let extension = EXTENSIONS.into_iter().find(|known| *known == extension)?;
    Some((base_offset, extension))
}

/// What recovery knows of the `.txnindex` files before opening the segments.
#[derive(Clone, Copy)]
struct TxnFiles<'a> {
    /// The segments that have one.
    present: &'a BTreeSet<Offset>,
    /// The segments whose one an interrupted swap deleted.
    swapped: &'a BTreeSet<Offset>,
}

/// Opens and checks every segment in order; see the module docs. Also returns how the
/// segments' aborted-transaction indexes must be repaired.
fn recover_segments(
    dir: &Path,
    base_offsets: &[Offset],
    config: &LogConfig,
    pool: &FilePool,
    txn_files: TxnFiles<'_>,
) -> Result<(Vec<Segment>, Vec<TxnRepair>), LogError> {
    let mut segments: Vec<Segment> = Vec::with_capacity(base_offsets.len());
    let mut repairs = Vec::new();
    for (at, &base_offset) in base_offsets.iter().enumerate() {
        let mut segment = Segment::open(dir, base_offset, pool)?;
        let is_last = at + 1 == base_offsets.len();
        // Only segments with a file are read: most have no aborted transaction, and the
        // listing said so without a syscall each.
        let readable = match txn_files.present.contains(&base_offset) {
            true => txn_recovery::load(&mut segment)?,
            false => true,
        };
        let recovered = match is_last {
            true => recover_active(&mut segment, config.index_interval_bytes)?,
            false => load_inactive(&mut segment, config.index_interval_bytes)?,
        };
        let doubtful = !readable || txn_files.swapped.contains(&base_offset);
        repairs.extend(txn_recovery::check(&segment, recovered.aborts, doubtful)?);
        if let Some(previous) = segments.last() {
            check_dense(previous, &segment)?;
        }
        segments.push(segment);
        if recovered.cut_short && !is_last {
            delete_later_segments(dir, &base_offsets[at + 1..], pool)?;
            break;
        }
    }
    Ok((segments, repairs))
}

fn check_dense(previous: &Segment, segment: &Segment) -> Result<(), LogError> {
    if segment.base_offset == previous.next_offset {
        return Ok(());
    }
    Err(LogError::corrupt(
        &segment.path,
        format!(
            "the segment starts at offset {} but the previous segment ends before offset {}; \
             offsets must be dense, so a segment file is missing or was restored from elsewhere",
            segment.base_offset, previous.next_offset
        ),
    ))
}

fn delete_later_segments(
    dir: &Path,
    base_offsets: &[Offset],
    pool: &FilePool,
) -> Result<(), LogError> {
    // Newest first, so a crash part-way still leaves a dense prefix.
    for &base_offset in base_offsets.iter().rev() {
        let segment = Segment::open(dir, base_offset, pool)?;
        tracing::warn!(
            path = %segment.path.display(),
            bytes = segment.size_bytes,
            "deleting a segment that follows a damaged one; its records are lost"
        );
        segment.delete_files()?;
    }
    Ok(())
}

/// What recovering a segment found.
pub(crate) struct Recovered {
    /// A damaged tail was cut off.
    pub cut_short: bool,
    /// The segment's ABORT markers, when it was re-read in full.
    pub aborts: Option<Vec<AbortMarker>>,
}

/// Loads an inactive segment's indexes, falling back to a full rebuild when they do not hold up.
/// Says whether the rebuild had to cut the segment short.
pub(crate) fn load_inactive(
    segment: &mut Segment,
    index_interval_bytes: u32,
) -> Result<Recovered, LogError> {
    let offset_index = segment.offset_index.load()?;
    let time_index = segment.time_index.load()?;
    let offset_index = offset_index
        .and_then(|()| validate_offset_entries(segment.offset_index.entries(), segment.size_bytes));
    let checked = match offset_index.and(time_index) {
        Ok(()) => segment.load_tail()?,
        Err(reason) => Err(reason),
    };
    let relative_next_offset = segment.next_offset.minus(segment.base_offset) as u64;
    let checked = checked
        .and_then(|()| validate_time_entries(segment.time_index.entries(), relative_next_offset));
    let Err(reason) = checked else {
        return Ok(Recovered {
            cut_short: false,
            aborts: None,
        });
    };
    tracing::warn!(path = %segment.path.display(), %reason, "rebuilding the indexes of an inactive segment");
    let recovered = recover_active(segment, index_interval_bytes)?;
    if !recovered.cut_short {
        segment.deactivate()?;
    }
    Ok(recovered)
}

/// Re-reads every batch of the segment, checking length, CRC and offset, rebuilds the offset
/// and time indexes, notes the ABORT markers, and cuts the file at the first bad batch.
pub(crate) fn recover_active(
    segment: &mut Segment,
    index_interval_bytes: u32,
) -> Result<Recovered, LogError> {
    segment.offset_index.reset();
    segment.time_index.reset();
    segment.next_offset = segment.base_offset;
    segment.max_timestamp = None;
    segment.first_batch_timestamp = None;
    segment.bytes_since_index_entry = 0;
    let start = WalkStart {
        position: 0,
        next_offset: segment.base_offset,
    };
    let file = segment.file.get()?;
    let path = segment.path.clone();
    let segment_file = scan::SegmentFile {
        file: &file,
        path: &path,
        size_bytes: segment.size_bytes,
    };
    let mut aborts = Vec::new();
    let end = scan::walk_batches(segment_file, start, |header, position, bytes| {
        segment.note_batch(header, position, index_interval_bytes);
        aborts.extend(AbortMarker::of(header, bytes));
        Ok(ControlFlow::Continue(()))
    })?;
    assert_eq!(
        end.next_offset, segment.next_offset,
        "the walk and the segment agree on the end"
    );
    let Some(reason) = end.damage else {
        return Ok(Recovered {
            cut_short: false,
            aborts: Some(aborts),
        });
    };
    let dropped_bytes = segment.size_bytes - end.position;
    tracing::warn!(
        path = %segment.path.display(),
        position = end.position,
        dropped_bytes,
        %reason,
        "truncating a torn or damaged segment tail at byte {}: dropping {dropped_bytes} bytes ({reason})",
        end.position
    );
    file.set_len(end.position).at(&segment.path)?;
    segment.size_bytes = end.position;
    Ok(Recovered {
        cut_short: true,
        aborts: Some(aborts),
    })
}

#[cfg(test)]
mod tests {
    use strom_protocol::batch::Batches;

    use super::*;
    use crate::segment::{INDEX_EXTENSION, TIME_INDEX_EXTENSION};
    use crate::test_support::batch_with_epoch;

    /// Batches as a compacted leader stores them: base offsets 10, 14, 18, ... (two records
    /// each, so gaps of two), epoch 1 then 2 from offset 30.
    fn follower_batches(count: i64) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| {
                let base = 10 + 4 * n;
                let epoch = if base < 30 { 1 } else { 2 };
                batch_with_epoch(base, 2, 1_000 + base, 100, epoch)
            })
            .collect()
    }

    fn stored_batches(log: &Log) -> Vec<Vec<u8>> {
        let read = log
            .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
            .unwrap();
        Batches::new(&read.records)
            .map(|(_, range)| read.records[range].to_vec())
            .collect()
    }

    #[test]
    fn a_follower_log_with_gaps_survives_reopening_and_a_torn_tail_is_still_cut() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 3 * follower_batches(1)[0].len() as u64,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let batches = follower_batches(8);
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        log.append_as_follower(&mut batches[..2].concat()).unwrap();
        log.append_as_follower(&mut batches[2..].concat()).unwrap();
        let bases: Vec<Offset> = log.segments.iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, [Offset(0), Offset(20), Offset(32)]);
        log.close().unwrap();

        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(stored_batches(&log), batches, "gaps are not damage");
        assert_eq!(log.log_end_offset(), Offset(40));
        assert_eq!(log.epoch_entries(), [(1, Offset(10)), (2, Offset(30))]);
        log.append_as_follower(&mut batch_with_epoch(50, 1, 1_050, 100, 3))
            .unwrap();
        let active = log.active().path.clone();
        let size_bytes = log.active().size_bytes;
        drop(log);

        // Killed half-way through writing the last batch.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap();
        file.set_len(size_bytes - 7).unwrap();
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(stored_batches(&log), batches, "every whole batch is kept");
        assert_eq!(log.log_end_offset(), Offset(40));
        assert_eq!(log.epoch_entries(), [(1, Offset(10)), (2, Offset(30))]);
        assert_eq!(
            log.active().size_bytes,
            size_bytes - batch_with_epoch(50, 1, 1_050, 100, 3).len() as u64
        );

        // An offset going backwards is still damage: the batch after it is cut too.
        drop(log);
        let mut bytes = std::fs::read(&active).unwrap();
        let last = bytes.len() - batches[7].len();
        bytes[last..last + 8].copy_from_slice(&Offset(33).0.to_be_bytes());
        std::fs::write(&active, &bytes).unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(stored_batches(&log), batches[..7]);
        assert_eq!(log.log_end_offset(), Offset(36));
    }

    #[test]
    fn only_well_named_segment_files_are_recognised() {
        let parse = |name: &str| parse_file_name(Path::new(name));
        assert_eq!(
            parse("00000000000000000042.log"),
            Some((Offset(42), LOG_EXTENSION))
        );
        assert_eq!(
            parse("/d/00000000000000000042.timeindex"),
            Some((Offset(42), TIME_INDEX_EXTENSION))
        );
        assert_eq!(
            parse("00000000000000000042.index"),
            Some((Offset(42), INDEX_EXTENSION))
        );
        assert_eq!(parse("42.log"), None);
        assert_eq!(parse("0000000000000000004x.log"), None);
        assert_eq!(parse("00000000000000000042.log.deleted"), None);
        assert_eq!(parse("leader-epoch-checkpoint"), None);
    }
}
