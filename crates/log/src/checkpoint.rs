//! The log's offset checkpoints, text files like Kafka's: a version line (`0`), then the offset.
//!
//! - The cleaner checkpoint: the first offset compaction has not yet seen (Kafka's
//!   `cleaner-offset-checkpoint`, kept here per partition directory so it moves with the
//!   partition). Everything below it was cleaned by an earlier pass, so a pass only needs to map
//!   the keys of the "dirty" part above it, and [`Log::dirty_ratio`](crate::Log::dirty_ratio)
//!   measures how much of the log that is. Losing the file costs only work: the whole log counts
//!   as dirty again.
//! - The log start checkpoint (`log-start-offset-checkpoint`, see `log_start`): where a
//!   DeleteRecords moved the log start inside a segment. Losing it puts the log start back at the
//!   first segment's base offset.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use strom_types::Offset;

use crate::error::{IoContext, LogError};
use crate::files;

pub(crate) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";
const VERSION: &str = "0";

/// The stored cleaner checkpoint; `None` if there is none or it cannot be read as one (logged:
/// the only consequence is a full pass).
pub(crate) fn read(dir: &Path) -> Result<Option<Offset>, LogError> {
    read_offset(
        dir,
        CHECKPOINT_FILE,
        "the next compaction reads the whole log",
    )
}

/// Replaces the cleaner checkpoint atomically (see [`replace_file`]).
pub(crate) fn write(dir: &Path, offset: Offset) -> Result<(), LogError> {
    write_offset(dir, CHECKPOINT_FILE, offset)
}

/// The stored log start; `None` if there is none or it cannot be read as one (logged: the log
/// then starts at its first segment, which holds every record the checkpoint did).
pub(crate) fn read_log_start(dir: &Path) -> Result<Option<Offset>, LogError> {
    read_offset(dir, LOG_START_FILE, "the log starts at its first segment")
}

/// Replaces the log start checkpoint durably (see [`replace_file`]).
pub(crate) fn write_log_start(dir: &Path, offset: Offset) -> Result<(), LogError> {
    write_offset(dir, LOG_START_FILE, offset)
}

/// The offset in checkpoint file `name`; an unreadable one is logged with what `losing_it`
/// costs and read as `None`.
fn read_offset(dir: &Path, name: &str, losing_it: &str) -> Result<Option<Offset>, LogError> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => String::new(),
        Err(error) => return Err(error).at(&path),
    };
    let mut lines = text.lines();
    let offset = match (lines.next(), lines.next(), lines.next()) {
        (Some(VERSION), Some(offset), None) => offset.parse().ok().filter(|&offset| offset >= 0),
        _ => None,
    };
    if offset.is_none() {
        tracing::warn!(path = %path.display(), "ignoring an unreadable checkpoint; {losing_it}");
    }
    Ok(offset.map(Offset))
}

fn write_offset(dir: &Path, name: &str, offset: Offset) -> Result<(), LogError> {
    replace_file(dir, name, format!("{VERSION}\n{}\n", offset.0).as_bytes())
}

/// Replaces the file `name` in `dir` with `contents` so that a crash leaves either the old file
/// or the new one, never a mix: temporary file, fsync, rename, directory fsync.
pub(crate) fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    let path = dir.join(name);
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).at(&temporary)?;
    file.write_all(contents).at(&temporary)?;
    file.sync_all().at(&temporary)?;
    std::fs::rename(&temporary, &path).at(&path)?;
    files::sync_path(dir)
}

/// [`replace_file`] without the fsyncs: a crash keeps the old file or the new one (the rename is
/// atomic), but which one survives a power cut is up to the filesystem. Only for files whose
/// loss recovery repairs from the log itself.
pub(crate) fn replace_file_unsynced(
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<(), LogError> {
    let path = dir.join(name);
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents).at(&temporary)?;
    std::fs::rename(&temporary, &path).at(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_garbage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), Offset(1234)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Offset(1234)));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(),
            "0\n1234\n"
        );
        for garbage in ["", "1\n5\n", "0\nfive\n", "0\n-3\n", "0\n5\n6\n"] {
            std::fs::write(dir.path().join(CHECKPOINT_FILE), garbage).unwrap();
            assert_eq!(read(dir.path()).unwrap(), None, "{garbage:?}");
        }
    }
}
