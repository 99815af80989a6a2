//! The group coordinator, as events in and decisions out: no sockets, no clocks, no disk.
//!
//! - [`group`]: one consumer group's classic-protocol state machine (Empty,
//!   PreparingRebalance, CompletingRebalance, Stable, Dead), its members and its committed
//!   offsets.
//! - [`consumer_group`]: a KIP-848 consumer group (`group.protocol=consumer`), driven by
//!   ConsumerGroupHeartbeat; the coordinator computes its assignment with one of the
//!   server-side [`assignors`] (`uniform`, `range`).
//! - [`coordinator`]: every group this node coordinates. The broker's runtime calls it with a
//!   request and the current time in milliseconds and gets back the responses to send, which
//!   may answer requests that arrived earlier (a JoinGroup waits for the rebalance, a
//!   SyncGroup for the leader's assignment). Timeouts happen in [`GroupCoordinator::tick`],
//!   which the runtime calls periodically with the time; tests drive it with a fake clock.
//! - [`txn_offsets`]: transactional offset commits (TxnOffsetCommit) pending until their
//!   producer's marker in `__consumer_offsets` commits or aborts them; the coordinator keeps
//!   them and answers OffsetFetch with require_stable from them.
//! - [`offsets`]: the `__consumer_offsets` record format (Kafka's own key and value layout),
//!   so committed offsets are durable and rebuilt on start by replaying that topic.
//! - [`limits`]: what every entry point refuses before it keeps or writes anything: group ids,
//!   transactional ids, topics and metadata longer than a record's 16-bit string length can
//!   hold.
//! - [`transactions`]: the transaction coordinator (KIP-98, KIP-890 part 1): transactional
//!   ids, their producer ids and epochs, and their transactions, kept in
//!   `__transaction_state` in Kafka's record layout. The same shape as the group side: entry
//!   points take the time and return replies, records to write (applied only once durable)
//!   and transaction markers to send; [`TransactionCoordinator::tick`] aborts timed-out
//!   transactions and expires idle ids.
//!
//! Responses to deferred requests are addressed by [`ReplyTo`], an opaque token the runtime
//! chooses per request.

pub mod assignors;
pub mod consumer_group;
pub mod coordinator;
pub mod group;
pub mod limits;
pub mod offsets;
pub mod transactions;
pub mod txn_offsets;

pub use coordinator::{GroupConfig, GroupCoordinator, OffsetCommits};
pub use transactions::{TransactionConfig, TransactionCoordinator, TRANSACTION_STATE_TOPIC};

/// The internal topic that stores committed offsets; its partition's leader coordinates the
/// groups that hash to it.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
pub use group::{
    GroupState, JoinRequest, JoinResponse, Output, Protocol, ReplyTo, SyncRequest, SyncResponse,
};
