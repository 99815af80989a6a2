//! The quorum's files, all under `<data_dir>/__cluster_metadata/`:
//!
//! - `<first index>.log`: the Raft log in segments of length-prefixed, CRC-checked serde_json
//!   entries ([`record`], [`log_files`]); appends are fsynced before openraft hears they are
//!   flushed, and a torn tail left by a crash is cut when the log is opened.
//! - `vote.json` and `purged.json`: the vote and the purge point, fsynced and replaced
//!   atomically; `committed.json`: a hint of the commit point ([`log_store`]).
//! - `snapshot.json`: the newest snapshot of the image with its last log id and membership,
//!   replaced atomically ([`state_machine`]).
//!
//! After a write fails, openraft stops; the supervisor then [`reopen`]s the log from disk
//! while the state machine's in-memory state carries over (see [`StateMachineHandle::resume`]).

#[cfg(test)]
pub mod faults;
pub mod files;
pub mod log_files;
pub mod log_store;
pub mod record;
pub mod state_machine;

use std::path::{Path, PathBuf};

pub use log_store::{LogReader, LogStore, StorageContext, WriterThread};
pub use state_machine::{SnapshotBuilder, SnapshotFile, StateMachineHandle, StateMachineStore};

use crate::quorum::error::QuorumError;

/// The directory under a node's data directory that holds the metadata quorum's files, named
/// like Kafka's KRaft metadata log directory.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata";

/// Where the quorum of the node with data directory `data_dir` keeps its files.
pub fn metadata_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(METADATA_DIR_NAME)
}

/// Opens (or creates) the log and the state machine in `dir`.
pub fn open(dir: &Path) -> Result<(LogStore, WriterThread, StateMachineStore), QuorumError> {
    let (log, writer) = LogStore::open(dir)?;
    let state_machine = StateMachineStore::open(dir)?;
    Ok((log, writer, state_machine))
}

/// Opens the log in `dir` again after a failure, once `dir` has shown that it takes a new
/// file and fsyncs it (descriptors and space are back): otherwise Raft would start on it only
/// to stop again at its first write.
pub fn reopen(
    dir: &Path,
    context: StorageContext,
) -> Result<(LogStore, WriterThread), QuorumError> {
    #[cfg(test)]
    context
        .faults
        .check(faults::FaultPoint::Reopen)
        .map_err(|e| QuorumError::io(dir, e))?;
    files::probe_writable(dir).map_err(|e| QuorumError::io(dir, e))?;
    LogStore::open_in(dir, context)
}
