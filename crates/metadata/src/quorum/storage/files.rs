//! Small files replaced atomically: written to a temporary name, fsynced, renamed over the old
//! one, and the directory fsynced, so a crash leaves either the old or the new content. And a
//! probe of whether a directory can be written at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file [`probe_writable`] writes and removes again.
const PROBE_FILE: &str = "write-probe.tmp";

/// What [`probe_writable`] writes: a page, as much as a small log append needs.
const PROBE_BYTES: usize = 4096;

/// Replaces `dir/name` with `bytes`. With `durable`, the content and the rename are fsynced
/// before returning; without, only atomicity is promised (the file may be older after a crash).
pub fn replace_atomically(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&temporary, dir.join(name))?;
    if durable {
        sync_directory(dir)?;
    }
    Ok(())
}

/// Makes the directory's entries (created, renamed and removed files) durable.
pub fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads `dir/name`, or None if it does not exist.
pub fn read_if_present(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates a file in `dir`, writes a page to it, fsyncs it and removes it: fails if
/// descriptors or space have run out.
pub fn probe_writable(dir: &Path) -> io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let written = File::create(&path).and_then(|mut file| {
        file.write_all(&[0; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = match fs::remove_file(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    written.and(removed)
}
