//! Strom's partition: one owner for everything a broker keeps about one partition it hosts,
//! the way Kafka has `Partition`/`UnifiedLog` and Redpanda `cluster::partition`.
//!
//! # A tour
//! - `partition`: [`Partition`] itself, its state and lock order, leadership checks, the
//!   replica state from the metadata image ([`Partition::apply_replica_state`]: become leader
//!   or follower), the high watermark's rules, retention, compaction and close.
//! - `append`: the leader's append path, one for produce requests and the group
//!   coordinator's offset commits ([`Partition::append_as_leader`]; its transactional offset
//!   commits go through [`Partition::append_as_coordinator`], which checks producers' epochs
//!   but not their sequences), and what an acks=all answer waits for
//!   ([`Partition::wait_acknowledged`]).
//! - `read`: records up to the high watermark (consumers) or the log end (followers),
//!   ListOffsets and OffsetForLeaderEpoch lookups.
//! - `leader`: a follower's fetch as the leader sees it ([`Partition::read_for_follower`]):
//!   divergence, progress, the high watermark, ISR rejoins. `progress` is the pure bookkeeping
//!   behind it (Kafka's rules for caught-up and lagging followers).
//! - `follower`: where this broker fetches from when it follows, and applying the leader's
//!   answer ([`Partition::apply_fetched`]): truncation, append, fsync, high watermark.
//! - `producers` and `snapshot`: idempotent and transactional producers' state, kept with the
//!   log (`store`) and snapshotted at every roll and on shutdown (`<offset>.snapshot`, as
//!   Kafka), so a restart or a truncation replays one segment at most.
//! - `transactions`: the last stable offset, from the producers' transaction events
//!   ([`Partition::last_stable_offset`], [`Partition::append_marker`]), and the entries of the
//!   aborted transactions, which the log keeps in its segments' `.txnindex` files and a
//!   read_committed fetch reads back ([`Partition::aborted_transactions`]).
//! - `log_start`: DeleteRecords on the leader ([`Partition::delete_records`]), the low
//!   watermark it waits for (the smallest log start among the live replicas, from the
//!   followers' fetches) and a follower taking its leader's log start.
//! - `durability`: group commit, one fsync for every acks=all request waiting.
//! - `health`: a failed write (a full disk) leaves the partition writable, unlike a failed
//!   fsync; it is logged once per spell of failures.
//! - `waiters`: per-partition waiter lists (Kafka's purgatory keyed by partition): a long-poll
//!   fetch or an acks=all produce is woken only by its own partitions.
//! - `replica`: the replica state, and the ISR proposals a leader sends up a channel instead
//!   of calling the controller itself.
//! - `error`: [`PartitionError`], and the one mapping from log errors to Kafka error codes.
//!
//! # Data flow
//! produce: handler validates the request's batches -> [`Partition::append_as_leader`] (leader
//! check, producer sequences, `Log::append_with_epoch`, high watermark) -> wakes followers'
//! fetches -> [`Partition::wait_acknowledged`] for acks=all (fsync, then the high watermark on
//! this partition's waiters). Follower: [`Partition::follower_position`] -> Fetch to the leader
//! -> [`Partition::read_for_follower`] there -> [`Partition::apply_fetched`] here.
//!
//! Nothing here knows the network or the metadata quorum: the replica state comes in as a
//! value, proposals go out on a channel, time is passed in.

mod append;
mod durability;
mod error;
mod follower;
mod health;
mod leader;
mod log_start;
mod partition;
mod producers;
mod progress;
mod read;
mod replica;
mod snapshot;
mod store;
#[cfg(test)]
mod test_support;
mod transactions;
mod waiters;

pub use append::{AckWait, Acknowledgement, Acks, AppendOptions, LeaderAppend};
pub use error::{log_error_code, PartitionError};
pub use follower::{Applied, FetchedData};
pub use leader::{FollowerPosition, FollowerRead};
pub use log_start::RecordsDeleted;
pub use partition::{Partition, PartitionId};
pub use producers::{
    ProducerDescription, ProducerStates, SequenceCheck, REMEMBERED_BATCHES_PER_PRODUCER,
};
pub use read::{OffsetSpec, PartitionRead, ReadBound};
pub use replica::{IsrProposal, ProposalSender, ReplicaState, StateChange};
pub use transactions::AbortedTxn;
pub use waiters::{WaitFor, Waiter};
