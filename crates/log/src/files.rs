//! Open files as a bounded pool: a node hosting 20,000 partitions must not hold 20,000 (or four
//! times that) descriptors when most partitions are idle.
//!
//! Only segment `.log` files are pooled: they are read by every fetch and written by every
//! append, so reopening them each time would cost a syscall pair per request. Everything else a
//! log touches (indexes, the directory, checkpoints) is opened for the one operation that needs
//! it and closed again, since those operations are rare (roll, sync after a roll, close).
//!
//! A [`PooledFile`] opens its file on first use and keeps it while the pool has room. When the
//! pool is full, opening one more file closes the least recently used one first, by the clock
//! algorithm (each use sets a referenced bit; the hand clears bits and closes the first file
//! found unreferenced), so a partition receiving writes keeps its active segment open and an
//! idle one holds nothing. A closed file reopens on its next use. Users get an `Arc<File>`; one
//! that is using the file while it is closed keeps its descriptor alive until it is done, so the
//! pool bounds the descriptors it keeps, and in-flight operations add at most one each.
//!
//! Dirty pages belong to the inode, not the descriptor: closing a file with unsynced writes loses
//! nothing, and an fdatasync through a descriptor opened later flushes them. Linux reports a
//! writeback error to a descriptor opened after it as long as no one has seen it yet.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::error::{IoContext, LogError};

/// How many files the process pool keeps open until [`FilePool::set_capacity`] says otherwise.
pub const DEFAULT_OPEN_FILES: usize = 1024;

/// A bound on the segment files kept open at once; cheap to clone (all clones are one pool).
#[derive(Clone)]
pub struct FilePool {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: AtomicUsize,
    ring: Mutex<Ring>,
    opens: AtomicU64,
    closes: AtomicU64,
}

/// The open files, in the order the clock hand visits them.
struct Ring {
    slots: Vec<Weak<Slot>>,
    hand: usize,
}

/// One pooled file: its path and, while open, its descriptor.
struct Slot {
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
    referenced: AtomicBool,
}

/// What a pool has done, for tests and the node's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub capacity: usize,
    /// Files the pool holds open now.
    pub open: usize,
    /// Files opened (first use or reopen) and closed to make room, since the pool was made.
    pub opens: u64,
    pub closes: u64,
}

impl FilePool {
    pub fn new(capacity: usize) -> FilePool {
        assert!(capacity > 0, "a file pool holds at least one file");
        FilePool {
            shared: Arc::new(Shared {
                capacity: AtomicUsize::new(capacity),
                ring: Mutex::new(Ring {
                    slots: Vec::new(),
                    hand: 0,
                }),
                opens: AtomicU64::new(0),
                closes: AtomicU64::new(0),
            }),
        }
    }

    /// The pool every [`Log`](crate::Log) of this process uses: descriptors are a per-process
    /// resource (`RLIMIT_NOFILE`), so one bound covers them all.
    pub fn process() -> &'static FilePool {
        static POOL: OnceLock<FilePool> = OnceLock::new();
        POOL.get_or_init(|| FilePool::new(DEFAULT_OPEN_FILES))
    }

    /// Changes the bound; files beyond a lowered one close as others open.
    pub fn set_capacity(&self, capacity: usize) {
        assert!(capacity > 0, "a file pool holds at least one file");
        self.shared.capacity.store(capacity, Ordering::Relaxed);
    }

    pub fn stats(&self) -> PoolStats {
        let ring = self.shared.ring.lock();
        let open = ring
            .slots
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|slot| slot.file.lock().is_some())
            .count();
        PoolStats {
            capacity: self.shared.capacity.load(Ordering::Relaxed),
            open,
            opens: self.shared.opens.load(Ordering::Relaxed),
            closes: self.shared.closes.load(Ordering::Relaxed),
        }
    }

    /// Puts a file just created or opened by its owner into the pool.
    pub(crate) fn adopt(&self, path: PathBuf, file: File) -> PooledFile {
        self.make_room();
        let slot = Arc::new(Slot {
            path,
            file: Mutex::new(Some(Arc::new(file))),
            referenced: AtomicBool::new(true),
        });
        self.shared.opens.fetch_add(1, Ordering::Relaxed);
        self.shared.ring.lock().slots.push(Arc::downgrade(&slot));
        PooledFile {
            slot,
            pool: self.clone(),
        }
    }

    /// Closes files until one more fits: the clock hand skips (and clears) recently used files,
    /// drops slots whose owner is gone, and closes the first unreferenced open file it finds.
    fn make_room(&self) {
        let capacity = self.shared.capacity.load(Ordering::Relaxed);
        let mut ring = self.shared.ring.lock();
        // Two turns of the hand clear every bit and then find a file to close; a slot busy in
        // another thread (its lock held) is skipped rather than waited for.
        let mut visits = 2 * ring.slots.len() + 1;
        while ring.slots.len() >= capacity && visits > 0 {
            visits -= 1;
            if ring.hand >= ring.slots.len() {
                ring.hand = 0;
            }
            let hand = ring.hand;
            let Some(slot) = ring.slots[hand].upgrade() else {
                ring.slots.swap_remove(hand);
                continue;
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                ring.hand += 1;
                continue;
            }
            let Some(mut file) = slot.file.try_lock() else {
                ring.hand += 1;
                continue;
            };
            if file.take().is_some() {
                self.shared.closes.fetch_add(1, Ordering::Relaxed);
            }
            ring.slots.swap_remove(hand);
        }
    }
}

/// A segment file that the pool opens on use and may close while idle. Clones share the file.
#[derive(Clone)]
pub(crate) struct PooledFile {
    slot: Arc<Slot>,
    pool: FilePool,
}

impl PooledFile {
    pub fn path(&self) -> &Path {
        &self.slot.path
    }

    /// The open file, reopened (read-write, never created) if the pool closed it. Fails with
    /// the operating system's error if it cannot be opened, e.g. when descriptors ran out.
    pub fn get(&self) -> Result<Arc<File>, LogError> {
        self.slot.referenced.store(true, Ordering::Relaxed);
        if let Some(file) = &*self.slot.file.lock() {
            return Ok(Arc::clone(file));
        }
        self.pool.make_room();
        let mut held = self.slot.file.lock();
        if let Some(file) = &*held {
            // Another thread reopened it meanwhile.
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(open_read_write(&self.slot.path)?);
        *held = Some(Arc::clone(&file));
        drop(held);
        self.pool.shared.opens.fetch_add(1, Ordering::Relaxed);
        self.pool
            .shared
            .ring
            .lock()
            .slots
            .push(Arc::downgrade(&self.slot));
        Ok(file)
    }
}

/// Opens an existing file for reading and writing.
pub(crate) fn open_read_write(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)
}

/// fsyncs a file or directory through a descriptor opened for just that.
pub(crate) fn sync_path(path: &Path) -> Result<(), LogError> {
    File::open(path).at(path)?.sync_all().at(path)
}

/// The size of the filesystem holding `path` and the bytes an unprivileged writer may still
/// use there (`statvfs`: blocks and available blocks times the fragment size), as Java's
/// `FileStore.getTotalSpace` / `getUsableSpace` report them for DescribeLogDirs.
pub fn filesystem_space(path: &Path) -> Result<FilesystemSpace, LogError> {
    let stat = rustix::fs::statvfs(path)
        .map_err(std::io::Error::from)
        .at(path)?;
    Ok(FilesystemSpace {
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        usable_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

/// See [`filesystem_space`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemSpace {
    pub total_bytes: u64,
    pub usable_bytes: u64,
}

/// Deletes a file; one already gone is not an error.
pub(crate) fn remove_if_exists(path: &std::path::Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error).at(path),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    fn files(dir: &Path, pool: &FilePool, count: usize) -> Vec<PooledFile> {
        let first = std::fs::read_dir(dir).unwrap().count();
        (first..first + count)
            .map(|n| {
                let path = dir.join(format!("{n}.log"));
                let mut file = File::create(&path).unwrap();
                file.write_all(format!("file {n}").as_bytes()).unwrap();
                pool.adopt(path.clone(), open_read_write(&path).unwrap())
            })
            .collect()
    }

    fn open_descriptors_to(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.unwrap().path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    #[test]
    fn the_filesystem_space_of_a_directory_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let space = filesystem_space(dir.path()).unwrap();
        assert!(space.total_bytes > 0 && space.usable_bytes <= space.total_bytes);
        assert!(filesystem_space(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_pool_keeps_at_most_its_capacity_open_and_reopens_on_use() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(3);
        let pooled = files(dir.path(), &pool, 10);
        assert_eq!(pool.stats().open, 3);
        assert_eq!(open_descriptors_to(dir.path()), 3);
        for (n, file) in pooled.iter().enumerate() {
            let mut bytes = vec![0; format!("file {n}").len()];
            file.get().unwrap().read_exact_at(&mut bytes, 0).unwrap();
            assert_eq!(bytes, format!("file {n}").as_bytes());
            assert!(open_descriptors_to(dir.path()) <= 3);
        }
        let stats = pool.stats();
        assert_eq!(stats.open, 3);
        assert_eq!(stats.opens - stats.closes, 3);
        drop(pooled);
        assert_eq!(open_descriptors_to(dir.path()), 0, "dropping closes");
    }

    #[test]
    fn a_file_in_constant_use_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(4);
        let pooled = files(dir.path(), &pool, 4);
        let hot = &pooled[0];
        let reopens_before = pool.stats().opens;
        for round in 0..50 {
            hot.get().unwrap();
            // Each round touches one cold file, which must evict another cold one.
            pooled[1 + round % 3].get().unwrap();
            let extra = dir.path().join(format!("extra{round}.log"));
            File::create(&extra).unwrap();
            let cold = pool.adopt(extra.clone(), open_read_write(&extra).unwrap());
            drop(cold);
        }
        let hot_file = hot.slot.file.lock().is_some();
        assert!(hot_file, "the file used every round was never closed");
        assert!(pool.stats().opens > reopens_before);
    }

    #[test]
    fn a_closed_file_in_use_stays_valid_until_its_user_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(1);
        let pooled = files(dir.path(), &pool, 1);
        let in_use = pooled[0].get().unwrap();
        let _other = files(dir.path(), &pool, 2);
        assert!(pooled[0].slot.file.lock().is_none(), "closed by the pool");
        let mut bytes = [0; 6];
        in_use.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(&bytes, b"file 0");
    }

    #[test]
    fn a_lowered_capacity_closes_files_as_others_open() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::new(8);
        let pooled = files(dir.path(), &pool, 8);
        pool.set_capacity(2);
        pooled[0].get().unwrap();
        let _more = files(dir.path(), &pool, 1);
        assert!(pool.stats().open <= 2);
    }
}
