//! The cleaner checkpoint: the first offset compaction has not yet seen (Kafka's
//! `cleaner-offset-checkpoint`, kept here per partition directory so it moves with the partition).
//!
//! Everything below it was cleaned by an earlier pass, so a pass only needs to map the keys of
//! the "dirty" part above it, and [`Log::dirty_ratio`](crate::Log::dirty_ratio) measures how
//! much of the log that is. Losing the file costs only work: the whole log counts as dirty again.
//!
//! Format, text like Kafka's checkpoints: a version line (`0`), then the offset.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use strom_types::Offset;

use crate::error::{IoContext, LogError};
use crate::files;

pub(crate) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const VERSION: &str = "0";

fn path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// The stored checkpoint; `None` if there is none or it cannot be read as one (logged: the only
/// consequence is a full pass).
pub(crate) fn read(dir: &Path) -> Result<Option<Offset>, LogError> {
    let path = path(dir);
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
        tracing::warn!(path = %path.display(), "ignoring an unreadable cleaner checkpoint; the next compaction reads the whole log");
    }
    Ok(offset.map(Offset))
}

/// Replaces the checkpoint atomically (see [`replace_file`]).
pub(crate) fn write(dir: &Path, offset: Offset) -> Result<(), LogError> {
    replace_file(
        dir,
        CHECKPOINT_FILE,
        format!("{VERSION}\n{}\n", offset.0).as_bytes(),
    )
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
