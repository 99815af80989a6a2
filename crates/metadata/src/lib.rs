//! Cluster metadata: what topics, partitions, replicas, leaders, ISRs and brokers exist.
//!
//! - [`command`]: the entries of the metadata log. Each is a deterministic command; the
//!   proposer chooses anything random (topic ids) before proposing.
//! - [`image`]: the metadata image, and [`MetadataImage::apply`], which applies one committed
//!   command and returns its result. Placement and leader election happen here, identically
//!   on every node, because they depend only on the image and the log order; so do
//!   ElectLeaders' preferred and unclean elections ([`PartitionState::elect`]).
//! - [`placement`]: replica assignment across brokers and racks.
//! - [`quorum`]: the Raft quorum that orders the log (openraft), the only part with I/O: its
//!   log and snapshots on disk, the controller transport, broker liveness and the automatic
//!   preferred-leader rebalance on the leader, and
//!   [`MetadataQuorum`], the handle a node uses to propose commands and watch the image.
//!   Combined nodes are voters; broker-only nodes are learners, so every broker applies the
//!   same committed log to its own image and follows it.

pub mod command;
pub mod image;
pub mod placement;
pub mod quorum;

pub use command::{
    CommandResult, ConfigScope, Election, Endpoint, ListChange, MetadataCommand, MetadataError,
    PartitionOutcome, QuotaAlteration, QuotaEntity, ScramUpsert, TopicOutcomes,
};
pub use image::{BrokerRegistration, MetadataImage, PartitionState, TopicImage};
pub use quorum::{Health, MetadataQuorum, QuorumConfig, QuorumError, QuorumStatus};
