//! The state machine as openraft's [`RaftStateMachine`]: committed entries are applied to the
//! [`MetadataImage`] with [`MetadataImage::apply`], and each new image is published on a watch
//! channel. The image itself is not written per entry; it is written as a snapshot
//! (`snapshot.json`: the snapshot's metadata, i.e. last applied log id and last membership,
//! and the image, atomically replaced) every so many entries, and rebuilt on open from the
//! snapshot plus the log.
//!
//! Concurrency: openraft's state machine worker owns the [`StateMachineStore`]; a
//! [`SnapshotBuilder`] holds a copy of the state taken when it was made and may run while the
//! worker applies more entries. Both write `snapshot.json` through [`SnapshotFiles`], which
//! keeps only the newest snapshot.
//!
//! Lifecycle across Raft restarts: when openraft stops on a storage error it drops the store,
//! which parks its applied state in the [`StateMachineHandle`]; the supervisor then resumes a
//! new store from it. The applied state is the committed log applied in order, so it stays
//! true whatever failed, and carrying it over (rather than reopening the snapshot and applying
//! the log again) keeps the published image from going back in time. The snapshot files and
//! the publisher are shared by every store of one node, so watchers of the image never see
//! their channel close, and an older snapshot never replaces a newer one.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::CommandResult;
use crate::image::MetadataImage;
use crate::quorum::error::QuorumError;
use crate::quorum::storage::files::{read_if_present, replace_atomically};
use crate::quorum::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// A snapshot on disk and on the wire: both are these JSON bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub image: MetadataImage,
}

/// The newest snapshot, in memory as the bytes of its file.
#[derive(Clone)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    bytes: Arc<Vec<u8>>,
}

/// `snapshot.json`, shared by the state machine and its snapshot builders.
pub struct SnapshotFiles {
    dir: PathBuf,
    /// Also serializes writers, so an older snapshot never replaces a newer one.
    current: Mutex<Option<CurrentSnapshot>>,
    /// Makes snapshot ids unique within this process.
    counter: AtomicU64,
}

impl SnapshotFiles {
    /// Writes `bytes` as the snapshot unless a newer one is already there; returns whether it
    /// was written.
    fn store(&self, meta: &SnapshotMeta, bytes: Arc<Vec<u8>>) -> std::io::Result<bool> {
        let mut current = self.current.lock().expect("never held across a panic");
        if current
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > meta.last_log_id)
        {
            return Ok(false);
        }
        replace_atomically(&self.dir, SNAPSHOT_FILE, &bytes, true)?;
        *current = Some(CurrentSnapshot {
            meta: meta.clone(),
            bytes,
        });
        Ok(true)
    }

    fn current(&self) -> Option<CurrentSnapshot> {
        self.current
            .lock()
            .expect("never held across a panic")
            .clone()
    }
}

/// The applied state: the image, where it stands in the log, and the membership it saw last.
#[derive(Clone)]
struct Applied {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

/// The metadata image as openraft's state machine.
pub struct StateMachineStore {
    applied: Applied,
    snapshots: Arc<SnapshotFiles>,
    shared: Arc<Shared>,
}

/// What outlives one store.
struct Shared {
    publisher: watch::Sender<Arc<MetadataImage>>,
    /// The applied state of the last store, put here when it was dropped; None while a store
    /// lives, so that at most one store applies entries at a time.
    parked: Mutex<Option<Applied>>,
}

/// Resumes the state machine in a new store once the current one is dropped.
#[derive(Clone)]
pub struct StateMachineHandle {
    snapshots: Arc<SnapshotFiles>,
    shared: Arc<Shared>,
}

impl StateMachineHandle {
    /// A new store with the state of the one dropped last; None while that one still lives
    /// (openraft's state machine worker is still stopping).
    pub fn resume(&self) -> Option<StateMachineStore> {
        let applied = self
            .shared
            .parked
            .lock()
            .expect("never held across a panic")
            .take()?;
        Some(StateMachineStore {
            applied,
            snapshots: self.snapshots.clone(),
            shared: self.shared.clone(),
        })
    }

    /// True once the last store was dropped, so that [`StateMachineHandle::resume`] succeeds.
    pub fn is_parked(&self) -> bool {
        self.shared
            .parked
            .lock()
            .expect("never held across a panic")
            .is_some()
    }

    /// A receiver of every image any store of this state machine publishes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.publisher.subscribe()
    }
}

impl Drop for StateMachineStore {
    fn drop(&mut self) {
        let mut parked = self
            .shared
            .parked
            .lock()
            .expect("never held across a panic");
        *parked = Some(self.applied.clone());
    }
}

/// Builds a snapshot of the state at the time it was made.
pub struct SnapshotBuilder {
    applied: Applied,
    snapshots: Arc<SnapshotFiles>,
}

fn decode_snapshot(path: &Path, bytes: &[u8]) -> Result<SnapshotFile, QuorumError> {
    serde_json::from_slice(bytes).map_err(|e| QuorumError::Corrupt {
        path: path.to_owned(),
        detail: format!("the snapshot does not decode: {e}"),
    })
}

impl StateMachineStore {
    /// Opens the state machine in `dir` (which must exist): the image of the snapshot there,
    /// or an empty one.
    pub fn open(dir: &Path) -> Result<StateMachineStore, QuorumError> {
        let path = dir.join(SNAPSHOT_FILE);
        let found = read_if_present(dir, SNAPSHOT_FILE).map_err(|e| QuorumError::io(&path, e))?;
        let (applied, current) = match found {
            None => (
                Applied {
                    image: Arc::new(MetadataImage::default()),
                    last_applied: None,
                    last_membership: StoredMembership::default(),
                },
                None,
            ),
            Some(bytes) => {
                let file = decode_snapshot(&path, &bytes)?;
                let applied = Applied {
                    image: Arc::new(file.image),
                    last_applied: file.meta.last_log_id,
                    last_membership: file.meta.last_membership.clone(),
                };
                let current = CurrentSnapshot {
                    meta: file.meta,
                    bytes: Arc::new(bytes),
                };
                (applied, Some(current))
            }
        };
        let (publisher, _) = watch::channel(applied.image.clone());
        Ok(StateMachineStore {
            applied,
            snapshots: Arc::new(SnapshotFiles {
                dir: dir.to_owned(),
                current: Mutex::new(current),
                counter: AtomicU64::new(0),
            }),
            shared: Arc::new(Shared {
                publisher,
                parked: Mutex::new(None),
            }),
        })
    }

    /// A receiver of every image this state machine publishes, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.publisher.subscribe()
    }

    /// The handle that resumes this state machine after this store is dropped.
    pub fn handle(&self) -> StateMachineHandle {
        StateMachineHandle {
            snapshots: self.snapshots.clone(),
            shared: self.shared.clone(),
        }
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.image.clone()
    }

    fn publish(&self) {
        self.shared
            .publisher
            .send_replace(self.applied.image.clone());
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let last = self.applied.last_applied;
        let sequence = self.snapshots.counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last {
            Some(id) => format!("{}-{}-{sequence}", id.leader_id.term, id.index),
            None => format!("empty-{sequence}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.applied.last_membership.clone(),
            snapshot_id,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            image: (*self.applied.image).clone(),
        };
        let bytes = Arc::new(serde_json::to_vec(&file).expect("the image serializes"));
        let snapshots = self.snapshots.clone();
        let (stored_meta, stored_bytes) = (meta.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || snapshots.store(&stored_meta, stored_bytes))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new((*bytes).clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((
            self.applied.last_applied,
            self.applied.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let mut image_changed = false;
        for entry in entries {
            assert!(
                self.applied.last_applied < Some(entry.log_id),
                "entries are applied once, in log order"
            );
            self.applied.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Done,
                EntryPayload::Normal(command) => {
                    image_changed = true;
                    Arc::make_mut(&mut self.applied.image).apply(&command)
                }
                EntryPayload::Membership(membership) => {
                    self.applied.last_membership =
                        StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::Done
                }
            };
            results.push(result);
        }
        if image_changed {
            self.publish();
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let path = self.snapshots.dir.join(SNAPSHOT_FILE);
        let file = decode_snapshot(&path, &bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        if file.meta.last_log_id != meta.last_log_id
            || file.meta.last_membership != meta.last_membership
        {
            let detail = format!(
                "the snapshot's bytes describe {:?}, its metadata {:?}",
                file.meta.last_log_id, meta.last_log_id
            );
            return Err(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::error(detail),
            )
            .into());
        }
        let snapshots = self.snapshots.clone();
        let stored_meta = meta.clone();
        let bytes = Arc::new(bytes);
        tokio::task::spawn_blocking(move || snapshots.store(&stored_meta, bytes))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.applied = Applied {
            image: Arc::new(file.image),
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
        };
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.snapshots.current().map(|current| Snapshot {
            meta: current.meta,
            snapshot: Box::new(Cursor::new((*current.bytes).clone())),
        }))
    }
}
