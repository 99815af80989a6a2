//! The `leader-epoch-checkpoint` file: the leader epoch cache on disk, in Kafka's text format so
//! Kafka's tooling habits carry over:
//!
//! ```text
//! 0            version
//! 2            number of entries
//! 0 0          epoch start_offset
//! 3 1500
//! ```
//!
//! It is replaced atomically whenever the cache changes. A new epoch's first append replaces it
//! without an fsync (as Kafka does since KAFKA-15046): the first record to each of 20,000 new
//! partitions would otherwise cost 40,000 fsyncs. That is safe because recovery re-reads the
//! epochs of the active segment's batches, and the file is made durable before a segment
//! rolls, after truncation and after retention (see `leader_epoch`). A missing or unreadable
//! file is not an error: recovery rebuilds the cache from the batches.

use std::path::Path;

use strom_types::Offset;

use crate::checkpoint::{replace_file, replace_file_unsynced};
use crate::error::{IoContext, LogError};
use crate::files;

pub(crate) const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";

/// The stored entries; `None` if there is no file or it is not a well-formed checkpoint of
/// ascending entries (logged: recovery then rebuilds the cache from the batches).
pub(crate) fn read(dir: &Path) -> Result<Option<Vec<(i32, Offset)>>, LogError> {
    let path = dir.join(EPOCH_CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => String::new(),
        Err(error) => return Err(error).at(&path),
    };
    let entries = parse(&text);
    if let Err(reason) = &entries {
        tracing::warn!(path = %path.display(), %reason, "ignoring an unreadable leader epoch checkpoint; rebuilding it from the batches");
    }
    Ok(entries.ok())
}

fn parse(text: &str) -> Result<Vec<(i32, Offset)>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(format!("the first line is not version {VERSION}"));
    }
    let count: usize = lines
        .next()
        .and_then(|line| line.parse().ok())
        .ok_or("the second line is not an entry count")?;
    let entries = lines
        .map(parse_entry)
        .collect::<Result<Vec<(i32, Offset)>, String>>()?;
    if entries.len() != count {
        return Err(format!(
            "{count} entries announced, {} found",
            entries.len()
        ));
    }
    let ascending = entries
        .windows(2)
        .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1);
    if !ascending {
        return Err("entries are not ascending in epoch and offset".to_string());
    }
    Ok(entries)
}

fn parse_entry(line: &str) -> Result<(i32, Offset), String> {
    let mut fields = line.split(' ');
    let epoch = fields.next().and_then(|field| field.parse::<i32>().ok());
    let start_offset = fields.next().and_then(|field| field.parse::<i64>().ok());
    match (epoch, start_offset, fields.next()) {
        (Some(epoch), Some(start_offset), None) if epoch >= 0 && start_offset >= 0 => {
            Ok((epoch, Offset(start_offset)))
        }
        _ => Err(format!("{line:?} is not an `epoch start_offset` entry")),
    }
}

/// Replaces the checkpoint atomically with `entries`, durably.
pub(crate) fn write(dir: &Path, entries: &[(i32, Offset)]) -> Result<(), LogError> {
    replace_file(dir, EPOCH_CHECKPOINT_FILE, format(entries).as_bytes())
}

/// Replaces the checkpoint atomically with `entries`, leaving it to the operating system to
/// write out (see the module docs for why a crash cannot lose an epoch this way).
pub(crate) fn write_unsynced(dir: &Path, entries: &[(i32, Offset)]) -> Result<(), LogError> {
    replace_file_unsynced(dir, EPOCH_CHECKPOINT_FILE, format(entries).as_bytes())
}

fn format(entries: &[(i32, Offset)]) -> String {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (epoch, start_offset) in entries {
        text.push_str(&format!("{epoch} {}\n", start_offset.0));
    }
    text
}

/// Deletes the checkpoint, so that a crash before the next write makes recovery rebuild the
/// cache from the batches instead of trusting entries the log no longer matches.
pub(crate) fn remove(dir: &Path) -> Result<(), LogError> {
    crate::files::remove_if_exists(&dir.join(EPOCH_CHECKPOINT_FILE))?;
    files::sync_path(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &[]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(vec![]));
        let entries = [(0, Offset(0)), (3, Offset(1500))];
        write(dir.path(), &entries).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap(),
            "0\n2\n0 0\n3 1500\n"
        );
        assert_eq!(read(dir.path()).unwrap(), Some(entries.to_vec()));
        remove(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn malformed_checkpoints_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        for garbage in [
            "",
            "1\n0\n",
            "0\n",
            "0\ntwo\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 -5\n",
            "0\n2\n3 10\n2 20\n",
            "0\n2\n2 10\n3 10\n",
        ] {
            std::fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), garbage).unwrap();
            assert_eq!(read(dir.path()).unwrap(), None, "{garbage:?}");
        }
    }
}
