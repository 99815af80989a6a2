//! The one error type of the quorum, split into fatal errors (the disk, its contents or Raft
//! itself failed: the node must stop) and per-request errors (this request failed; retrying
//! later may succeed).

use std::path::PathBuf;

/// Why a quorum operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Fatal: the operating system refused a read, write, fsync or directory operation.
    #[error("I/O error on {path}: {source} (check the disk, free space and permissions)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Fatal: a metadata file is damaged in a way a crash cannot explain (a bad record before
    /// the end of the log, a hole between segments, an unreadable vote or snapshot).
    #[error(
        "the metadata quorum's file {path} is corrupt: {detail} (restore the directory from a \
         replica or remove it to rejoin as a new node)"
    )]
    Corrupt { path: PathBuf, detail: String },

    /// Fatal: the configuration cannot describe a working quorum.
    #[error("invalid metadata quorum configuration: {0}")]
    Config(String),

    /// Fatal: Raft stopped (storage failed or the node shut down).
    #[error("the metadata quorum has stopped: {0}")]
    Stopped(String),

    /// Per request: the operation did not finish in time. A proposal that timed out may still
    /// be committed later.
    #[error("{what} did not finish within {timeout_ms} ms")]
    Timeout { what: String, timeout_ms: u64 },

    /// Per request: no controller leader could be found or reached.
    #[error("no controller leader is reachable: {0}")]
    NoLeader(String),

    /// Per request: the leader stopped leading while the proposal was pending (another node
    /// took over, or its metadata log failed and Raft is restarting). The proposal may or may
    /// not be committed; asking again, later or elsewhere, may succeed.
    #[error("the controller leader stopped leading while the proposal was pending: {0}")]
    Interrupted(String),

    /// Per request: the leader answered, but not with what was asked for.
    #[error("the controller leader failed the request: {0}")]
    Failed(String),
}

impl QuorumError {
    /// True if the node cannot go on (storage or Raft failed); false if only this request did.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            QuorumError::Io { .. }
                | QuorumError::Corrupt { .. }
                | QuorumError::Config(_)
                | QuorumError::Stopped(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> QuorumError {
        QuorumError::Io {
            path: path.into(),
            source,
        }
    }
}
