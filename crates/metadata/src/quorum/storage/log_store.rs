//! The Raft log and vote as openraft's [`RaftLogStorage`]: entries are kept in memory (the log
//! is bounded by snapshots and purges) and written by one writer thread that owns the files.
//!
//! Lifecycle and concurrency: [`LogStore::open`] reads everything and starts the writer thread.
//! openraft's core owns the `LogStore` and calls it one write at a time; replication tasks
//! read through [`LogReader`]s that share the in-memory cache behind a mutex. Every write is
//! applied to the cache first (so readers see it at once, as openraft requires) and then
//! queued, in call order, to the writer thread. The thread batches queued appends into one
//! fsync (group commit) before reporting them flushed. It stops when the last store and reader
//! are dropped.

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
use crate::quorum::limits::LOG_WRITER_QUEUE_DEPTH_MAX;
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

/// The writer thread; [`WriterThread::wait`] returns once its files are closed.
pub struct WriterThread {
    handle: JoinHandle<()>,
}

impl WriterThread {
    /// True once the thread has stopped (every store and reader was dropped).
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
        let thread_dir = dir.to_owned();
        let files = opened.files;
        let handle = std::thread::Builder::new()
            .name("metadata-log-writer".into())
            .spawn(move || write_loop(files, thread_dir, queue))
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

/// The writer thread: runs queued operations in order until every sender is gone. After the
/// first I/O error it fails everything that follows, since the files' state is unknown.
fn write_loop(mut files: LogFiles, dir: PathBuf, mut queue: mpsc::Receiver<WriteOp>) {
    let mut failed: Option<String> = None;
    let mut stashed: Option<WriteOp> = None;
    loop {
        let Some(op) = stashed.take().or_else(|| queue.blocking_recv()) else {
            return;
        };
        let result = match op {
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
                let result = check(&failed).and_then(|()| {
                    for (records, _) in &batch {
                        files.append(records)?;
                    }
                    files.flush()
                });
                for (_, flushed) in batch {
                    flushed.log_io_completed(clone_result(&result));
                }
                result
            }
            WriteOp::Truncate { since, done } => {
                let result = check(&failed).and_then(|()| files.truncate(since));
                let _ = done.send(clone_result(&result));
                result
            }
            WriteOp::Purge { upto, done } => {
                let result = check(&failed).and_then(|()| {
                    replace_atomically(&dir, PURGED_FILE, &to_json(&upto), true)?;
                    files.purge(upto.index)
                });
                let _ = done.send(clone_result(&result));
                result
            }
            WriteOp::SaveVote { vote, done } => {
                let result = check(&failed)
                    .and_then(|()| replace_atomically(&dir, VOTE_FILE, &to_json(&vote), true));
                let _ = done.send(clone_result(&result));
                result
            }
            WriteOp::SaveCommitted { committed } => check(&failed).and_then(|()| {
                replace_atomically(&dir, COMMITTED_FILE, &to_json(&committed), false)
            }),
        };
        if let Err(error) = result {
            tracing::error!(dir = %dir.display(), "the metadata log failed: {error}");
            failed.get_or_insert_with(|| error.to_string());
        }
    }
}

fn check(failed: &Option<String>) -> io::Result<()> {
    match failed {
        None => Ok(()),
        Some(first) => Err(io::Error::other(format!(
            "the metadata log failed earlier and accepts no more writes: {first}"
        ))),
    }
}

fn clone_result(result: &io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
    }
}
