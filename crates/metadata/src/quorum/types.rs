//! openraft's type configuration for Strom: entries carry [`MetadataCommand`]s, applying one
//! yields a [`CommandResult`], nodes are numbered by their Kafka `node.id` and reached at their
//! controller address.

use std::io::Cursor;

use openraft::{BasicNode, TokioRuntime};

use crate::command::{CommandResult, MetadataCommand};

openraft::declare_raft_types!(
    /// The types openraft is instantiated with.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// A node's Raft id: its Kafka `node.id`, which is never negative.
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

/// Converts a Kafka node id to a Raft node id. Configuration rejects negative ids, so a
/// negative id here is a programmer error.
pub fn raft_id(kafka_id: i32) -> NodeId {
    u64::try_from(kafka_id).expect("node ids are validated to be non-negative")
}

/// Converts a Raft node id back to a Kafka node id.
pub fn kafka_id(raft_id: NodeId) -> i32 {
    i32::try_from(raft_id).expect("Raft node ids come from non-negative i32 node ids")
}
