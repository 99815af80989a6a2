//! Swapping a cleaned segment in for the group of segments it replaces, so that a crash at any
//! point leaves a directory that [`finish_interrupted`] turns back into a consistent log.
//!
//! Compaction writes the replacement as `<base>.log.cleaned` with `<base>.index.cleaned`,
//! `<base>.timeindex.cleaned` and, if it keeps an aborted transaction, `<base>.txnindex.cleaned`
//! (`base` is the group's first base offset, which the replacement keeps) and fsyncs the files.
//! Then [`commit`]:
//! - for a group of one segment, renames the three files over the old ones and fsyncs the
//!   directory. Renaming the log file is atomic, so it is the commit point;
//! - for a group of several, which must also delete segments:
//!   1. renames `<base>.log.cleaned` to `<base>.log.swap`, fsyncs the directory: the commit
//!      point. Before it the old segments are untouched;
//!   2. deletes the replaced segments after the first, fsyncs the directory;
//!   3. renames `<base>.log.swap` and the two index files over the first segment's, fsyncs.
//!
//! Either way the cleaned `.txnindex` is renamed over the old one last, or, if the cleaned
//! segment has none, the old one is deleted.
//!
//! On open, before the segments are listed, [`finish_interrupted`]:
//! - for each `<base>.log.swap` (committed): reads where its batches end, `end` (a cleaned
//!   segment keeps its group's last batch, so `end` is exactly where the group ended), deletes
//!   every segment whose base offset lies in `(base, end)`, and renames the swap file into place;
//! - deletes every other `.cleaned` or `.swap` file (a swap that never committed), and, for each
//!   base offset that had any, that segment's index files: the renames are not ordered by fsyncs
//!   within a step, so they may belong to the other version of the log file. Recovery rebuilds
//!   them from the log file, the `.txnindex` included: [`finish_interrupted`] returns those base
//!   offsets, since a missing `.txnindex` otherwise means "no aborted transactions".
//!
//! A crash while it runs is finished by the next open the same way.

use std::collections::BTreeSet;
use std::fs::File;
use std::ops::Bound;
use std::path::Path;

use strom_types::Offset;

use crate::config::SEGMENT_BYTES_MAX;
use crate::error::{IoContext, LogError};
use crate::files::{self, remove_if_exists};
use crate::scan::{self, Check, SegmentFile, WalkStart};
use crate::segment::{
    file_path, parse_file_name, suffixed_file_path, EXTENSIONS, INDEX_EXTENSION, LOG_EXTENSION,
    TIME_INDEX_EXTENSION, TXN_INDEX_EXTENSION,
};

/// Suffix of the files a compaction pass is writing.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned log file between the commit point and its final rename.
const SWAP_SUFFIX: &str = ".swap";

fn rename(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::rename(from, to).at(from)
}

/// Swaps in the fsynced `.cleaned` segment at `base` for the segments at `replaced` (the group's
/// base offsets, `base` first); see the module docs.
pub(crate) fn commit(dir: &Path, base: Offset, replaced: &[Offset]) -> Result<(), LogError> {
    assert_eq!(
        replaced.first(),
        Some(&base),
        "a cleaned segment keeps its group's first base offset"
    );
    let sync_dir = || files::sync_path(dir);
    let cleaned = |extension| suffixed_file_path(dir, base, extension, CLEANED_SUFFIX);
    let swap = suffixed_file_path(dir, base, LOG_EXTENSION, SWAP_SUFFIX);
    let log = file_path(dir, base, LOG_EXTENSION);
    if replaced.len() == 1 {
        rename(&cleaned(LOG_EXTENSION), &log)?;
    } else {
        rename(&cleaned(LOG_EXTENSION), &swap)?;
        sync_dir()?;
        for &old in &replaced[1..] {
            for extension in EXTENSIONS {
                remove_if_exists(&file_path(dir, old, extension))?;
            }
        }
        sync_dir()?;
        rename(&swap, &log)?;
    }
    for extension in [INDEX_EXTENSION, TIME_INDEX_EXTENSION] {
        rename(&cleaned(extension), &file_path(dir, base, extension))?;
    }
    let txn_index = file_path(dir, base, TXN_INDEX_EXTENSION);
    match cleaned(TXN_INDEX_EXTENSION).exists() {
        true => rename(&cleaned(TXN_INDEX_EXTENSION), &txn_index)?,
        false => remove_if_exists(&txn_index)?,
    }
    sync_dir()
}

/// Deletes the `.cleaned` files of `base`: a pass that failed before its commit point, or a
/// leftover from one, which must not stop the next pass from creating them.
pub(crate) fn discard_cleaned(dir: &Path, base: Offset) -> Result<(), LogError> {
    for extension in EXTENSIONS {
        remove_if_exists(&suffixed_file_path(dir, base, extension, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// Finishes committed swaps and rolls back the rest; see the module docs. Returns the base
/// offsets whose index files it deleted.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<BTreeSet<Offset>, LogError> {
    let mut logs = BTreeSet::new();
    let mut swaps = BTreeSet::new();
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        match parse_file_name(&path) {
            Some((base, LOG_EXTENSION)) => {
                logs.insert(base);
            }
            Some((base, "log.swap")) => {
                swaps.insert(base);
            }
            Some((base, rest)) if rest.ends_with(CLEANED_SUFFIX) || rest.ends_with(SWAP_SUFFIX) => {
                leftovers.push((base, path))
            }
            _ => {}
        }
    }
    if leftovers.is_empty() && swaps.is_empty() {
        return Ok(BTreeSet::new());
    }
    for &base in &swaps {
        let end = swap_end(dir, base)?;
        for &old in logs.range((Bound::Excluded(base), Bound::Excluded(end))) {
            tracing::warn!(dir = %dir.display(), base_offset = %old, "deleting a segment a committed compaction replaced");
            for extension in EXTENSIONS {
                remove_if_exists(&file_path(dir, old, extension))?;
            }
        }
        let swap = suffixed_file_path(dir, base, LOG_EXTENSION, SWAP_SUFFIX);
        rename(&swap, &file_path(dir, base, LOG_EXTENSION))?;
        tracing::warn!(dir = %dir.display(), base_offset = %base, %end, "finished swapping in a compacted segment after a crash");
    }
    for (_, path) in &leftovers {
        tracing::warn!(path = %path.display(), "deleting a file of an unfinished compaction");
        remove_if_exists(path)?;
    }
    let touched: BTreeSet<Offset> = leftovers
        .iter()
        .map(|(base, _)| *base)
        .chain(swaps)
        .collect();
    for &base in &touched {
        for extension in [INDEX_EXTENSION, TIME_INDEX_EXTENSION, TXN_INDEX_EXTENSION] {
            remove_if_exists(&file_path(dir, base, extension))?;
        }
    }
    File::open(dir).at(dir)?.sync_all().at(dir)?;
    Ok(touched)
}

/// The offset after the last good batch of the swap file at `base`. The file was fsynced before
/// the commit point, so it is whole unless the disk damaged it; then the good prefix counts and
/// recovery deals with the rest as with any damaged segment.
fn swap_end(dir: &Path, base: Offset) -> Result<Offset, LogError> {
    let path = suffixed_file_path(dir, base, LOG_EXTENSION, SWAP_SUFFIX);
    let file = File::open(&path).at(&path)?;
    let size_bytes = file.metadata().at(&path)?.len().min(SEGMENT_BYTES_MAX);
    let segment = SegmentFile {
        file: &file,
        path: &path,
        size_bytes,
    };
    let start = WalkStart {
        position: 0,
        next_offset: base,
    };
    let end = scan::walk(segment, start, Check::Crc, |_, _| {
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(damage) = &end.damage {
        tracing::warn!(path = %path.display(), %damage, "a committed compacted segment is damaged");
    }
    Ok(end.next_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::log::Log;
    use crate::test_support::batch;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1_000,
            index_interval_bytes: 10_000,
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    /// A closed log whose first segment holds batches stamped 5, 100 and 6.
    fn log_with_skewed_timestamps(dir: &Path) {
        let mut log = Log::open(dir, config()).unwrap();
        for timestamp in [5, 100, 6] {
            log.append(&mut batch(0, 1, timestamp, 10), None).unwrap();
        }
        log.roll_active().unwrap();
        log.append(&mut batch(0, 1, 200, 10), None).unwrap();
        log.close().unwrap();
    }

    #[test]
    fn leftovers_of_a_swap_make_recovery_rebuild_that_segments_indexes() {
        let dir = tempfile::tempdir().unwrap();
        log_with_skewed_timestamps(dir.path());
        let time_index = file_path(dir.path(), Offset(0), TIME_INDEX_EXTENSION);
        let good = std::fs::read(&time_index).unwrap();
        // A time index that passes every check but misses the batch stamped 100, as a cleaned
        // segment's would if compaction had dropped that batch; renamed into place before the
        // cleaned log file was (the renames of one step are not ordered).
        let mut stale = Vec::new();
        for (timestamp, relative_offset) in [(5i64, 0u32), (6, 2)] {
            stale.extend(timestamp.to_be_bytes());
            stale.extend(relative_offset.to_be_bytes());
        }
        std::fs::write(&time_index, &stale).unwrap();
        let leftover = suffixed_file_path(dir.path(), Offset(0), LOG_EXTENSION, CLEANED_SUFFIX);
        std::fs::write(&leftover, b"half a cleaned segment").unwrap();

        let log = Log::open(dir.path(), config()).unwrap();
        assert!(!leftover.exists());
        assert_eq!(std::fs::read(&time_index).unwrap(), good);
        let found = log
            .offset_for_timestamp(strom_types::TimestampMs(50))
            .unwrap();
        assert_eq!(found, Some((Offset(1), strom_types::TimestampMs(100))));
    }

    #[test]
    fn a_committed_swap_replaces_the_segments_its_batches_cover() {
        let dir = tempfile::tempdir().unwrap();
        log_with_skewed_timestamps(dir.path());
        // A committed swap for segment 0 (a copy of its bytes stands in for the cleaned ones),
        // and an old segment inside its offsets that the crash left undeleted.
        let log_file = file_path(dir.path(), Offset(0), LOG_EXTENSION);
        let swap = suffixed_file_path(dir.path(), Offset(0), LOG_EXTENSION, SWAP_SUFFIX);
        std::fs::copy(&log_file, &swap).unwrap();
        let stray = file_path(dir.path(), Offset(2), LOG_EXTENSION);
        std::fs::write(&stray, batch(2, 1, 6, 10)).unwrap();
        let log = Log::open(dir.path(), config()).unwrap();
        assert!(!swap.exists() && !stray.exists());
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.log_end_offset(), Offset(4));
    }
}
