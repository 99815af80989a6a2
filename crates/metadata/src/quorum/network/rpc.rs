//! The messages of the controller protocol: openraft's three RPCs, and Strom's own requests to
//! the controller leader. Each request carries an id that its response repeats, so one
//! connection carries many requests at once.

use openraft::error::{Fatal, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{CommandResult, MetadataCommand};
use crate::quorum::types::{NodeId, SnapshotMeta, TypeConfig, Vote};

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    pub response: Response,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Raft: replicate entries (or just heartbeat).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: ask for a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one chunk of a snapshot (openraft's chunked transfer; Strom sends whole snapshots
    /// with `FullSnapshot`, but answers this too).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Raft: a whole snapshot in one frame. `data` is the snapshot file's JSON text.
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: String,
    },
    /// A client write, answered by the leader only.
    Propose(MetadataCommand),
    /// A broker is alive; answered by the leader only.
    BrokerHeartbeat { id: i32, incarnation: Uuid },
    /// A broker-only node asks to follow the log as a learner; answered by the leader only.
    /// An unspecified host (`0.0.0.0:PORT`) is replaced by the address the request came from.
    AddLearner { id: i32, addr: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    FullSnapshot(Result<SnapshotResponse<NodeId>, Fatal<NodeId>>),
    /// The command is committed at `log_index` and applied on the leader with this result.
    Proposed {
        result: CommandResult,
        log_index: u64,
    },
    /// The broker's state in the leader's image (true also for an unknown broker or a stale
    /// incarnation).
    Heartbeat {
        fenced: bool,
    },
    LearnerAdded,
    /// This node is not the leader; `leader` is the one it knows of, if any.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The request failed on the node that received it.
    Failed(String),
    /// The leader stopped leading while the proposal was pending (another node took over, or
    /// its Raft stopped on a storage error): it may or may not be committed.
    Interrupted(String),
}
