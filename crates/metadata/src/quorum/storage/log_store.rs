//! The Raft log and vote as openraft's [`RaftLogStorage`]: entries are kept in memory (the log
//! is bounded by snapshots and purges) and written by one writer thread that owns the files.
//!
//! Lifecycle and concurrency: [`LogStore::open`] reads everything and starts the writer thread.
//! openraft's core owns the `LogStore` and calls it one write at a time; replication tasks
//! read through [`LogReader`]s that share the in-memory cache behind a mutex. Every write is
//! applied to the cache first (so readers see it at once, as openraft requires) and then
//! queued, in call order, to the writer thread. The thread batches queued appends into one
//! fsync (group commit) before reporting them flushed. It stops when the store is dropped.
//!
//! Failures: a write that fails (descriptors or disk space ran out, an I/O error) fails only
//! itself, and leaves the files as they were before it: a failed append is cut off again, the
//! vote and purge point are replaced atomically. openraft stops on any storage error, so the
//! store is then dropped and reopened from disk by the supervisor
//! ([`node`](crate::quorum::node)), never written again in memory. Each failure, and each
//! later success of the same kind of write, is reported to the [`HealthMonitor`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::quorum::error::QuorumError;
use crate::quorum::health::{HealthMonitor, Problem, WriteKind};
use crate::quorum::limits::LOG_WRITER_QUEUE_DEPTH_MAX;
#[cfg(test)]
use crate::quorum::storage::faults::{FaultInjector, FaultPoint};
use crate::quorum::storage::files::{read_if_present, replace_atomically};
use crate::quorum::storage::log_files::LogFiles;
use crate::quorum::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
/// The last committed log id: a hint that lets a restarted node re-apply its committed entries
/// before it hears from a leader. Written atomically but not fsynced; an older value is safe.
const COMMITTED_FILE: &str = "committed.json";

/// What the writer thread is asked to do, in order.
enum WriteOp {
    Append {
        records: Vec<(u64, Vec<u8>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    Truncate {
        since: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveCommitted {
        committed: Option<LogId>,
    },
}

/// The log as openraft sees it, in memory.
#[derive(Debug, Default)]
struct LogCache {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl LogCache {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.last_purged)
    }
}

/// Who hears how the log's writes go and, in tests, which of them fail.
#[derive(Debug, Clone, Default)]
pub struct StorageContext {
    pub health: Arc<HealthMonitor>,
    #[cfg(test)]
    pub faults: FaultInjector,
}

/// The on-disk Raft log and vote of one node.
pub struct LogStore {
    cache: Arc<Mutex<LogCache>>,
    writer: mpsc::Sender<WriteOp>,
    dir: PathBuf,
}

/// A reader of the log for openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    cache: Arc<Mutex<LogCache>>,
}

/// The writer thread, which closes its files and stops when its [`LogStore`] is dropped.
pub struct WriterThread {
    handle: JoinHandle<()>,
}

impl WriterThread {
    /// True once the thread has stopped and its files are closed.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

fn lock(cache: &Mutex<LogCache>) -> MutexGuard<'_, LogCache> {
    cache
        .lock()
        .expect("the log cache lock is never held across a panic")
}

fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, QuorumError> {
    let path = dir.join(name);
    match read_if_present(dir, name).map_err(|e| QuorumError::io(&path, e))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| QuorumError::Corrupt {
                path,
                detail: e.to_string(),
            }),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Raft types serialize to JSON")
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<(LogStore, WriterThread), QuorumError> {
        LogStore::open_in(dir, StorageContext::default())
    }

    /// Like [`LogStore::open`], reporting to (and injecting faults from) `context`.
    pub fn open_in(
        dir: &Path,
        context: StorageContext,
    ) -> Result<(LogStore, WriterThread), QuorumError> {
        std::fs::create_dir_all(dir).map_err(|e| QuorumError::io(dir, e))?;
        let vote: Option<Vote> = read_json(dir, VOTE_FILE)?;
        let last_purged: Option<LogId> = read_json(dir, PURGED_FILE)?;
        // The committed hint is not fsynced: a crash may leave it unreadable, which only means
        // the node re-applies less before it hears from a leader.
        let committed: Option<LogId> = read_json(dir, COMMITTED_FILE).unwrap_or_default();
        let opened = LogFiles::open(dir, last_purged.map(|p| p.index))?;
        let mut entries = BTreeMap::new();
        for (index, payload) in opened.records {
            let entry: Entry =
                serde_json::from_slice(&payload).map_err(|e| QuorumError::Corrupt {
                    path: dir.to_owned(),
                    detail: format!("the entry at index {index} does not decode: {e}"),
                })?;
            if entry.log_id.index != index {
                return Err(QuorumError::Corrupt {
                    path: dir.to_owned(),
                    detail: format!(
                        "the record at index {index} holds entry {}",
                        entry.log_id.index
                    ),
                });
            }
            entries.insert(index, entry);
        }
        let cache = LogCache {
            entries,
            last_purged,
            vote,
            committed,
        };
        let (writer, queue) = mpsc::channel(LOG_WRITER_QUEUE_DEPTH_MAX);
        let thread_writer = Writer {
            files: opened.files,
            dir: dir.to_owned(),
            context,
            broken: None,
        };
        let handle = std::thread::Builder::new()
            .name("metadata-log-writer".into())
            .spawn(move || write_loop(thread_writer, queue))
            .map_err(|e| QuorumError::io(dir, e))?;
        let store = LogStore {
            cache: Arc::new(Mutex::new(cache)),
            writer,
            dir: dir.to_owned(),
        };
        Ok((store, WriterThread { handle }))
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn submit(
        &self,
        op: impl FnOnce(oneshot::Sender<io::Result<()>>) -> WriteOp,
    ) -> io::Result<()> {
        let (done, finished) = oneshot::channel();
        self.writer
            .send(op(done))
            .await
            .map_err(|_| io::Error::other("the metadata log writer thread has stopped"))?;
        finished
            .await
            .map_err(|_| io::Error::other("the metadata log writer thread has stopped"))?
    }
}

fn read_range<RB: RangeBounds<u64>>(cache: &Mutex<LogCache>, range: RB) -> Vec<Entry> {
    lock(cache)
        .entries
        .range(range)
        .map(|(_, entry)| entry.clone())
        .collect()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.cache, range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.cache, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let cache = lock(&self.cache);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: cache.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.submit(|done| WriteOp::SaveVote { vote, done })
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        lock(&self.cache).vote = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.cache).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        lock(&self.cache).committed = committed;
        self.writer
            .send(WriteOp::SaveCommitted { committed })
            .await
            .map_err(|_| StorageIOError::write(AnyError::error("the log writer has stopped")))?;
        Ok(())
    }

    /// Returns the saved committed log id only if this log still holds that very entry (or
    /// purged it): a torn tail cut on open may have removed it, and re-applying an entry that is
    /// not there would be wrong.
    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let cache = lock(&self.cache);
        let Some(committed) = cache.committed else {
            return Ok(None);
        };
        let purged = cache.last_purged.is_some_and(|p| committed <= p);
        let present = cache
            .entries
            .get(&committed.index)
            .is_some_and(|e| e.log_id == committed);
        Ok((purged || present).then_some(committed))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        flushed: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        {
            let mut cache = lock(&self.cache);
            for entry in entries {
                let index = entry.log_id.index;
                if let Some(last) = cache.last_log_id() {
                    assert_eq!(index, last.index + 1, "appends must not leave a hole");
                }
                records.push((index, to_json(&entry)));
                cache.entries.insert(index, entry);
            }
        }
        self.writer
            .send(WriteOp::Append { records, flushed })
            .await
            .map_err(|_| {
                StorageIOError::write_logs(AnyError::error("the log writer has stopped"))
            })?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        lock(&self.cache).entries.split_off(&log_id.index);
        let since = log_id.index;
        self.submit(|done| WriteOp::Truncate { since, done })
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut cache = lock(&self.cache);
            assert!(
                cache.last_purged <= Some(log_id),
                "the purge point only moves forward"
            );
            let kept = cache.entries.split_off(&(log_id.index + 1));
            cache.entries = kept;
            cache.last_purged = Some(log_id);
        }
        self.submit(|done| WriteOp::Purge { upto: log_id, done })
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }
}

/// The writer thread's side: the files, and what it reports to.
struct Writer {
    files: LogFiles,
    dir: PathBuf,
    context: StorageContext,
    /// Set when a failure left the files in a state this writer cannot vouch for (a
    /// truncation or purge cut short, or a failed append it could not cut back): every later
    /// write is refused. openraft stops on the failure anyway, and the supervisor reopens the
    /// log from disk, which repairs what a crash at that point would have left.
    broken: Option<String>,
}

/// Runs queued operations in order until every sender is gone.
fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<WriteOp>) {
    let mut stashed: Option<WriteOp> = None;
    loop {
        let Some(op) = stashed.take().or_else(|| queue.blocking_recv()) else {
            return;
        };
        match op {
            WriteOp::Append { records, flushed } => {
                // Group commit: every append already queued shares this fsync.
                let mut batch = vec![(records, flushed)];
                while let Ok(next) = queue.try_recv() {
                    match next {
                        WriteOp::Append { records, flushed } => batch.push((records, flushed)),
                        other => {
                            stashed = Some(other);
                            break;
                        }
                    }
                }
                let result = writer.append(batch.iter().map(|(records, _)| records.as_slice()));
                for (_, flushed) in batch {
                    flushed.log_io_completed(clone_result(&result));
                }
            }
            WriteOp::Truncate { since, done } => {
                let _ = done.send(writer.truncate(since));
            }
            WriteOp::Purge { upto, done } => {
                let _ = done.send(writer.purge(upto));
            }
            WriteOp::SaveVote { vote, done } => {
                let result = writer.perform(WriteKind::Vote, |writer| {
                    writer.inject(WriteKind::Vote)?;
                    replace_atomically(&writer.dir, VOTE_FILE, &to_json(&vote), true)
                });
                let _ = done.send(result);
            }
            WriteOp::SaveCommitted { committed } => {
                // Nobody waits for the hint: a failure only leaves an older one, which is
                // safe, and the next commit writes it again.
                let _ = writer.perform(WriteKind::CommitHint, |writer| {
                    writer.inject(WriteKind::CommitHint)?;
                    replace_atomically(&writer.dir, COMMITTED_FILE, &to_json(&committed), false)
                });
            }
        }
    }
}

impl Writer {
    /// Writes and fsyncs a batch of appends, all or nothing: on failure the records the batch
    /// wrote are cut off again (durably), so the files hold exactly what was flushed before,
    /// never an unsynced record or a torn one that a later append would follow.
    fn append<'a>(
        &mut self,
        batch: impl Iterator<Item = &'a [(u64, Vec<u8>)]> + Clone,
    ) -> io::Result<()> {
        let first = batch.clone().flatten().next().map(|(index, _)| *index);
        self.perform(WriteKind::Append, |writer| {
            let written = writer.write_and_flush(batch);
            if let (Err(error), Some(first)) = (&written, first) {
                if let Err(cut) = writer.files.truncate(first) {
                    writer.broken = Some(format!(
                        "appending failed ({error}) and cutting the append off failed too ({cut})"
                    ));
                }
            }
            written
        })
    }

    fn write_and_flush<'a>(
        &mut self,
        batch: impl Iterator<Item = &'a [(u64, Vec<u8>)]>,
    ) -> io::Result<()> {
        for records in batch {
            self.files.append(records)?;
        }
        self.inject(WriteKind::Append)?;
        self.files.flush()
    }

    fn truncate(&mut self, since: u64) -> io::Result<()> {
        self.perform(WriteKind::Truncate, |writer| {
            let truncated = writer
                .inject(WriteKind::Truncate)
                .and_then(|()| writer.files.truncate(since));
            truncated.inspect_err(|error| {
                writer.broken = Some(format!("truncating the log failed: {error}"));
            })
        })
    }

    /// Records the purge point first, so a purge cut short is finished when the log is opened.
    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        self.perform(WriteKind::Purge, |writer| {
            replace_atomically(&writer.dir, PURGED_FILE, &to_json(&upto), true)?;
            let purged = writer
                .inject(WriteKind::Purge)
                .and_then(|()| writer.files.purge(upto.index));
            purged.inspect_err(|error| {
                writer.broken = Some(format!("purging the log failed: {error}"));
            })
        })
    }

    /// Runs one write unless the files are broken, and reports how it went.
    fn perform(
        &mut self,
        kind: WriteKind,
        write: impl FnOnce(&mut Writer) -> io::Result<()>,
    ) -> io::Result<()> {
        let result = match &self.broken {
            Some(reason) => Err(io::Error::other(format!(
                "the metadata log's files are in an unknown state ({reason}) and are written \
                 again only after they are reopened"
            ))),
            None => write(self),
        };
        match &result {
            Ok(()) => self.context.health.resolve(Problem::Write(kind)),
            Err(error) => {
                let reason = format!(
                    "a write to the metadata log in {} ({kind:?}) failed: {error}",
                    self.dir.display()
                );
                self.context.health.report(Problem::Write(kind), reason);
            }
        }
        result
    }

    /// Fails here when a test injects a fault into this kind of write: where the real
    /// operation fails (an append's after its records are written, a purge's after the purge
    /// point is recorded), so that the same recovery runs.
    #[cfg(test)]
    fn inject(&self, kind: WriteKind) -> io::Result<()> {
        self.context.faults.check(FaultPoint::Write(kind))
    }

    #[cfg(not(test))]
    fn inject(&self, _kind: WriteKind) -> io::Result<()> {
        Ok(())
    }
}

fn clone_result(result: &io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::log_id;
    use openraft::EntryPayload;

    use super::*;
    use crate::quorum::health::Health;

    const EIO: i32 = 5;
    const EMFILE: i32 = 24;

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: log_id(1, 1, index),
            payload: EntryPayload::Blank,
        }
    }

    fn open(dir: &Path, context: &StorageContext) -> (LogStore, WriterThread) {
        LogStore::open_in(dir, context.clone()).expect("opens")
    }

    async fn indexes(log: &mut LogStore) -> Vec<u64> {
        let entries = log.try_get_log_entries(0..).await.unwrap();
        entries.iter().map(|e| e.log_id.index).collect()
    }

    fn is_unhealthy(context: &StorageContext) -> bool {
        matches!(context.health.health(), Health::Unhealthy { .. })
    }

    #[tokio::test]
    async fn a_failed_append_fails_alone_and_leaves_the_files_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let context = StorageContext::default();
        let (mut log, _writer) = open(dir.path(), &context);
        log.blocking_append((1..=3).map(blank)).await.unwrap();
        context
            .faults
            .fail(FaultPoint::Write(WriteKind::Append), EIO, 1);
        let failed = log.blocking_append((4..=5).map(blank)).await;
        assert!(failed.is_err(), "the append in hand fails");
        assert!(is_unhealthy(&context));
        // openraft stops here and the log is reopened: the records written before the failed
        // fsync were cut off again (whole records, which opening would not cut).
        drop(log);
        let (mut log, _writer) = open(dir.path(), &context);
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3]);
        log.blocking_append([blank(4)]).await.unwrap();
        assert_eq!(context.health.health(), Health::Healthy);
        drop(log);
        let (mut log, _writer) = open(dir.path(), &context);
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_failed_vote_keeps_the_old_one_and_a_failed_hint_only_marks_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let context = StorageContext::default();
        let (mut log, _writer) = open(dir.path(), &context);
        log.save_vote(&Vote::new(1, 1)).await.unwrap();
        context
            .faults
            .fail(FaultPoint::Write(WriteKind::Vote), EMFILE, 1);
        assert!(log.save_vote(&Vote::new(2, 1)).await.is_err());
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 1)));

        context
            .faults
            .fail(FaultPoint::Write(WriteKind::CommitHint), EMFILE, 1);
        log.blocking_append((1..=2).map(blank)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 1))).await.unwrap();
        // Queued in order: once this append is flushed, the hint before it was tried.
        log.blocking_append([blank(3)]).await.unwrap();
        assert!(is_unhealthy(&context), "the vote and the hint failed");
        log.save_vote(&Vote::new(2, 1)).await.unwrap();
        assert!(is_unhealthy(&context), "the hint is still failing");
        log.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
        log.blocking_append([blank(4)]).await.unwrap();
        assert_eq!(context.health.health(), Health::Healthy);
        drop(log);
        let (mut log, _writer) = open(dir.path(), &context);
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 2)));
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn after_a_failed_truncation_the_writer_refuses_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let context = StorageContext::default();
        let (mut log, writer) = open(dir.path(), &context);
        log.blocking_append((1..=5).map(blank)).await.unwrap();
        context
            .faults
            .fail(FaultPoint::Write(WriteKind::Truncate), EIO, 1);
        assert!(log.truncate(log_id(1, 1, 4)).await.is_err());
        let refused = log.save_vote(&Vote::new(1, 1)).await.unwrap_err();
        assert!(refused.to_string().contains("unknown state"), "{refused}");
        drop(log);
        while !writer.is_finished() {
            tokio::task::yield_now().await;
        }
        let (mut log, _writer) = open(dir.path(), &context);
        log.truncate(log_id(1, 1, 4)).await.unwrap();
        assert_eq!(indexes(&mut log).await, vec![1, 2, 3]);
    }
}
