//! Group commit: fsync without holding the log's lock.
//!
//! Appends hand bytes to the operating system only. The broker's flusher takes the log's mutex
//! just long enough to call [`Log::sync_handle`], which clones the handles of every file with
//! unsynced writes, releases the mutex, calls [`SyncHandle::sync`] (one fdatasync per file; one
//! call covers every append made before the handle was taken), then takes the mutex again to
//! call [`Log::mark_durable`] with the offset the handle returned.
//!
//! What needs syncing: the active segment's `.log` when the durable offset is behind the log end;
//! the active segment's `.txnindex` when an aborted transaction was indexed since the last sync
//! (so an acknowledged ABORT marker never outlives its index entry); every segment rolled since
//! the last sync (its `.log` tail and its freshly written indexes); and the partition directory
//! after a roll or a first `.txnindex` entry created a file. A rolled segment is forgotten once
//! an offset *past* its end is durable: such a sync handle was taken after the roll, so it
//! included the segment.
//!
//! [`Log::sync_handle`]: crate::Log::sync_handle
//! [`Log::mark_durable`]: crate::Log::mark_durable

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_types::Offset;

use crate::error::{IoContext, LogError};
use crate::files::PooledFile;

/// A file to fsync: a segment file through the pool (open while it is being written, so the
/// sync reuses its descriptor), or an index or directory opened just for the sync.
#[derive(Clone)]
pub(crate) enum SyncTarget {
    Pooled(PooledFile),
    Path(PathBuf),
}

impl SyncTarget {
    /// fdatasync (a directory's entries count as its data). A file deleted meanwhile (by
    /// retention or truncation, after its segment rolled) has nothing left to make durable.
    pub fn sync(&self) -> Result<(), LogError> {
        let (path, file) = match self {
            SyncTarget::Pooled(file) => (file.path(), file.get()),
            SyncTarget::Path(path) => (path.as_path(), File::open(path).map(Arc::new).at(path)),
        };
        match file {
            Ok(file) => file.sync_data().at(path),
            Err(LogError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// How long each group commit's fsyncs took (`strom_log_flush_latency_seconds`, Kafka's
/// LogFlushRateAndTimeMs); the handle is made once, so a sync pays a histogram sample only.
static FLUSH_LATENCY: std::sync::LazyLock<metrics::Histogram> =
    std::sync::LazyLock::new(|| metrics::histogram!(FLUSH_LATENCY_METRIC));

/// The name of the fsync latency histogram (the exporter gives it its buckets by this name).
pub const FLUSH_LATENCY_METRIC: &str = "strom_log_flush_latency_seconds";

/// Registers `strom_log_flush_latency_seconds` now, so that it is scraped (empty) before the
/// first fsync.
pub fn register_metrics() {
    std::sync::LazyLock::force(&FLUSH_LATENCY);
}

/// Files to fsync and the log end offset they make durable; see the module docs.
#[must_use = "a sync handle does nothing until sync() is called"]
pub struct SyncHandle {
    files: Vec<SyncTarget>,
    offset: Offset,
}

impl SyncHandle {
    /// fdatasyncs every file (the caller must not hold the log's lock) and returns the offset
    /// that is now durable, for [`Log::mark_durable`](crate::Log::mark_durable).
    pub fn sync(self) -> Result<Offset, LogError> {
        let started = std::time::Instant::now();
        for file in &self.files {
            file.sync()?;
        }
        if !self.files.is_empty() {
            FLUSH_LATENCY.record(started.elapsed().as_secs_f64());
        }
        Ok(self.offset)
    }

    /// The log end offset when the handle was taken.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// Whether there is nothing to sync (everything written is already durable).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A segment that was rolled while some of its writes may not be synced yet.
struct Rolled {
    /// The offset after the segment's last batch: the base of the segment rolled to.
    next_offset: Offset,
    files: Vec<SyncTarget>,
}

/// What is known to be on stable storage; owned by the `Log`.
pub(crate) struct Durability {
    durable_offset: Offset,
    rolled: Vec<Rolled>,
    /// The base offset of the newest segment whose directory entry may not be synced.
    directory_dirty_since: Option<Offset>,
    /// The log's directory was just created and nothing synced it yet: its own entry in the
    /// parent directory and its first segment's entry are not durable.
    created: bool,
    /// The active segment's `.txnindex` and the newest ABORT marker indexed in it since the
    /// last sync.
    txn_index_unsynced: Option<(PathBuf, Offset)>,
}

impl Durability {
    /// Everything up to `durable_offset` is on stable storage (recovery has just synced it).
    pub fn new(durable_offset: Offset) -> Durability {
        Durability {
            durable_offset,
            rolled: Vec::new(),
            directory_dirty_since: None,
            created: false,
            txn_index_unsynced: None,
        }
    }

    /// A log just created in a new directory, synced by nothing yet: creating a partition costs
    /// no fsync, and the first sync (before anything is acknowledged as durable) makes the
    /// directory, its entry in the parent and the empty segment durable along with the data.
    pub fn for_new_directory() -> Durability {
        Durability {
            created: true,
            ..Durability::new(Offset(0))
        }
    }

    pub fn durable_offset(&self) -> Offset {
        self.durable_offset
    }

    /// A segment ending at `next_offset` was rolled and a new segment's files were created.
    pub fn rolled(&mut self, next_offset: Offset, files: Vec<SyncTarget>) {
        self.rolled.push(Rolled { next_offset, files });
        self.directory_dirty_since = Some(next_offset);
    }

    /// An aborted transaction whose marker is at `marker_offset` was indexed in the active
    /// segment's `.txnindex` at `path`; `created` says the entry created the file.
    pub fn txn_index_written(&mut self, path: PathBuf, marker_offset: Offset, created: bool) {
        if created {
            let since = self
                .directory_dirty_since
                .map_or(marker_offset, |since| since.max(marker_offset));
            self.directory_dirty_since = Some(since);
        }
        self.txn_index_unsynced = Some((path, marker_offset));
    }

    /// The `.txnindex` with entries no sync has covered yet, if any.
    pub fn txn_index_unsynced(&self) -> Option<&Path> {
        self.txn_index_unsynced
            .as_ref()
            .map(|(path, _)| path.as_path())
    }

    /// The `.txnindex` was synced (before its segment rolled).
    pub fn txn_index_synced(&mut self) {
        self.txn_index_unsynced = None;
    }

    /// The handle for the current state: `active` is the active segment's `.log` file and
    /// `directory` the partition directory.
    pub fn handle(
        &self,
        log_end_offset: Offset,
        active: SyncTarget,
        directory: SyncTarget,
        parent: SyncTarget,
    ) -> SyncHandle {
        let mut files = self.rolled_files();
        if self.durable_offset < log_end_offset || self.created {
            files.push(active);
        }
        if let Some((path, _)) = &self.txn_index_unsynced {
            files.push(SyncTarget::Path(path.clone()));
        }
        if self.directory_dirty_since.is_some() || self.created {
            files.push(directory);
        }
        if self.created {
            files.push(parent);
        }
        SyncHandle {
            files,
            offset: log_end_offset,
        }
    }

    /// Records that a sync handle taken at `offset` completed; `log_end_offset` bounds it, in
    /// case the log was truncated while the sync ran.
    pub fn mark_durable(&mut self, offset: Offset, log_end_offset: Offset) {
        let offset = offset.min(log_end_offset);
        self.durable_offset = self.durable_offset.max(offset);
        // Every handle taken since creation synced the directories.
        self.created = false;
        self.rolled.retain(|rolled| offset <= rolled.next_offset);
        if self
            .directory_dirty_since
            .is_some_and(|since| offset > since)
        {
            self.directory_dirty_since = None;
        }
        // A handle covering an offset past the marker was taken after the entry was written.
        if self
            .txn_index_unsynced
            .as_ref()
            .is_some_and(|(_, marker)| offset > *marker)
        {
            self.txn_index_unsynced = None;
        }
    }

    /// The files of every rolled segment not yet known to be synced.
    pub fn rolled_files(&self) -> Vec<SyncTarget> {
        self.rolled
            .iter()
            .flat_map(|rolled| rolled.files.iter().cloned())
            .collect()
    }

    /// Everything the log holds, up to `log_end_offset`, was just synced, directory included
    /// (truncation does this, so it never leaves stale sync state behind).
    pub fn synced_everything(&mut self, log_end_offset: Offset) {
        *self = Durability {
            created: self.created,
            ..Durability::new(log_end_offset)
        };
    }

    /// Whether the log's directory is new and its entry in the parent not yet synced.
    pub fn directory_is_new(&self) -> bool {
        self.created
    }

    /// Segments below `log_start_offset` were deleted by retention: nothing to sync for them.
    pub fn deleted_before(&mut self, log_start_offset: Offset) {
        self.rolled
            .retain(|rolled| rolled.next_offset > log_start_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str) -> SyncTarget {
        let path = dir.path().join(name);
        File::create(&path).unwrap();
        SyncTarget::Path(path)
    }

    #[test]
    fn a_handle_covers_only_what_is_not_yet_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut durability = Durability::new(Offset(10));
        let empty = durability.handle(
            Offset(10),
            file(&dir, "a.log"),
            file(&dir, "dir"),
            file(&dir, "parent"),
        );
        assert!(empty.is_empty());
        assert_eq!(empty.sync().unwrap(), Offset(10));

        let handle = durability.handle(
            Offset(15),
            file(&dir, "a.log"),
            file(&dir, "dir"),
            file(&dir, "parent"),
        );
        assert_eq!((handle.files.len(), handle.offset()), (1, Offset(15)));
        assert_eq!(handle.sync().unwrap(), Offset(15));
        durability.mark_durable(Offset(15), Offset(15));
        assert_eq!(durability.durable_offset(), Offset(15));
    }

    #[test]
    fn a_rolled_segment_is_synced_until_a_handle_taken_after_the_roll_completes() {
        let dir = tempfile::tempdir().unwrap();
        let mut durability = Durability::new(Offset(0));
        // A handle taken before the roll, at the offset the roll then happens at.
        let early = durability.handle(
            Offset(20),
            file(&dir, "a.log"),
            file(&dir, "dir"),
            file(&dir, "parent"),
        );
        durability.rolled(Offset(20), vec![file(&dir, "a.log"), file(&dir, "a.index")]);
        durability.mark_durable(early.sync().unwrap(), Offset(30));
        assert_eq!(durability.durable_offset(), Offset(20));
        let late = durability.handle(
            Offset(30),
            file(&dir, "b.log"),
            file(&dir, "dir"),
            file(&dir, "parent"),
        );
        assert_eq!(
            late.files.len(),
            4,
            "rolled log and index, active log, directory"
        );
        durability.mark_durable(late.sync().unwrap(), Offset(30));
        assert!(durability
            .handle(
                Offset(30),
                file(&dir, "b.log"),
                file(&dir, "dir"),
                file(&dir, "parent")
            )
            .is_empty());
    }

    #[test]
    fn durability_never_passes_the_log_end_nor_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut durability = Durability::new(Offset(50));
        durability.rolled(Offset(60), vec![file(&dir, "a.log")]);
        // Truncated to 40 (and synced) while a sync taken at 70 was running.
        durability.synced_everything(Offset(40));
        assert!(durability
            .handle(
                Offset(40),
                file(&dir, "b.log"),
                file(&dir, "dir"),
                file(&dir, "parent")
            )
            .is_empty());
        durability.mark_durable(Offset(70), Offset(45));
        assert_eq!(durability.durable_offset(), Offset(45));
        durability.mark_durable(Offset(41), Offset(45));
        assert_eq!(
            durability.durable_offset(),
            Offset(45),
            "the durable offset never goes back"
        );
    }
}
