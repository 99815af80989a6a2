//! The transaction coordinator (Kafka's KIP-98, with the server side of KIP-890 part 1), as
//! events in and decisions out: no sockets, no clocks, no disk.
//!
//! - [`state`]: the states of a transactional id, with Kafka's numbers, names and allowed
//!   transitions.
//! - [`record`]: the `__transaction_state` record layout, Kafka's own (key version 0, value
//!   versions 0 and 1), and which partition of that topic an id lives in.
//! - [`metadata`]: one transactional id: producer id and epoch, the open transaction's
//!   partitions, and Kafka's transitions over them, each prepared, then completed once its
//!   record is durable.
//! - [`coordinator`]: every id of the `__transaction_state` partitions this node leads, and
//!   the entry points for InitProducerId, AddPartitionsToTxn (and its verify-only form),
//!   AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions, plus transaction
//!   markers, timeouts, expiration, and loading a partition when this node becomes its leader.
//!
//! Data flow: a request -> an entry point -> a reply, or a [`PendingWrite`] the runtime makes
//! durable -> [`TransactionCoordinator::apply_written`] -> the reply and the
//! [`MarkerRequest`]s to send -> [`TransactionCoordinator::markers_written`] -> the completion
//! record. The coordinator module's documentation says how a runtime drives it.

pub mod coordinator;
pub mod metadata;
pub mod record;
pub mod state;

/// A partition named by topic and index, as transactions list them.
pub type TopicPartition = (String, i32);

pub use coordinator::{
    coordinator_error_for_append, error_for_client, marker_outcome, Decision, InitDecision,
    LoadOutcome, MarkerOutcome, MarkerRequest, PendingWrite, ProducerReply, Reply,
    TransactionConfig, TransactionCoordinator, TransactionDescription, TransactionList,
    TransactionListing, WriteOutcome,
};
pub use metadata::TransactionMetadata;
pub use record::TRANSACTION_STATE_TOPIC;
pub use state::TransactionState;
