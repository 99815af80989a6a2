//! What the metadata image says about a partition (its replicas, in-sync replicas, leader and
//! epochs), and the one thing a partition asks of the controller in return: an ISR change.

use strom_types::{BrokerId, LeaderEpoch, PartitionIndex};
use uuid::Uuid;

/// A partition's replica state, as the metadata image last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// `None` when the partition has no leader (offline).
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

impl ReplicaState {
    /// The state of a partition opened before any image reached it.
    pub fn unknown() -> ReplicaState {
        ReplicaState {
            replicas: Vec::new(),
            isr: Vec::new(),
            leader: None,
            leader_epoch: LeaderEpoch::UNKNOWN,
            partition_epoch: -1,
        }
    }

    pub fn is_led_by(&self, broker: BrokerId) -> bool {
        self.leader == Some(broker)
    }
}

/// What applying a new replica state changed, for the caller's logs and fetchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Unchanged,
    /// Same leader epoch; the ISR or the replica list changed.
    ReplicasChanged,
    /// A new leader epoch in which this broker leads.
    BecameLeader,
    /// A new leader epoch in which another broker (or none) leads.
    BecameFollower,
}

/// An ISR change a partition's leader asks the controller for (Kafka's AlterPartition): a
/// follower fell behind for `replica.lag.time.max.ms`, or one outside the ISR caught up.
/// The partition sends at most one at a time; the proposer reports back with
/// `Partition::isr_proposal_finished`, and a new replica state clears it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub topic_id: Uuid,
    pub partition: PartitionIndex,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<BrokerId>,
}

/// Where a partition sends its proposals: a channel to whoever talks to the controller, so a
/// partition never calls up the stack.
pub type ProposalSender = tokio::sync::mpsc::UnboundedSender<IsrProposal>;
