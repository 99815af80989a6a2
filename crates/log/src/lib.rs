//! The partition log: one [`Log`] per partition directory, storing Kafka v2 record batches
//! exactly as they arrive on the wire.
//!
//! # A tour
//! - `log`: the [`Log`] itself. [`Log::append`] validates the batches, rewrites their
//!   base offsets (and append time) in place, rolls the active segment when it is full or old,
//!   and hands all the bytes to the OS in one write; [`Log::append_with_epoch`] does the same
//!   for a leader and stamps its epoch into every batch. [`Log::read`] finds the segment holding
//!   an offset, then the position through the offset index, then returns whole batches as stored.
//! - `follower`: [`Log::append_as_follower`] stores batches fetched from the leader unchanged
//!   (offsets, gaps and leader epochs kept), after checking they follow the log end, rolling
//!   segments batch by batch so one fetch may span several; [`Log::append_as_follower_indexing`]
//!   hands each run to the caller ([`FollowerRun`]) to index its aborted transactions.
//! - `epoch_cache`, `epoch_checkpoint`, `leader_epoch`: Kafka's leader epoch cache, which
//!   epoch started at which offset, kept in `leader-epoch-checkpoint` (Kafka's text format,
//!   replaced atomically, written before the batches that start a new epoch). `epoch_cache`
//!   holds the data and its rules (an append whose epoch goes backwards is refused there),
//!   `epoch_checkpoint` the file, and `leader_epoch` wires both to the [`Log`]. Truncation,
//!   retention and recovery keep it within the log's bounds; [`Log::end_offset_for_epoch`]
//!   answers OffsetForLeaderEpoch for followers finding where to truncate.
//! - `segment`: one `<base offset>.log` file and its indexes; appends, reads, truncation.
//! - `index`: the sparse `.index` (offset -> position) and `.timeindex` (timestamp -> offset)
//!   files, kept in memory as `Vec`s and appended to their files on roll, sync and close.
//! - `scan`: walking a segment's batches, by header only or with CRC checks.
//! - `recovery`: [`Log::open`]; checks inactive segments cheaply, re-reads the active one in full
//!   (length, CRC-32C, offsets that only grow: gaps are compaction's or a follower's copy of
//!   them), cuts a torn tail and rebuilds indexes, then loads the leader epoch cache (rebuilt
//!   from the batch headers if its checkpoint is missing or unreadable).
//! - `timestamp`: [`Log::offset_for_timestamp`] and [`Log::max_timestamp`] for ListOffsets; the
//!   only place records are decoded, one batch per lookup.
//! - `retention`: [`Log::apply_retention`] deletes whole old segments by time and size.
//! - `log_start`: [`Log::advance_log_start`] moves the log start offset up on request
//!   (DeleteRecords, or a follower taking its leader's), deleting the segments wholly below it,
//!   and keeps it in `log-start-offset-checkpoint` across restarts.
//! - `compaction`: [`Log::compact`], Kafka's log cleaner for `cleanup.policy=compact`: maps each
//!   key's latest offset, rewrites the inactive segments keeping only those records (and
//!   tombstones until their delete horizon; aborted transactions' batches go, their markers
//!   once the data has and a delete horizon passed), merging small segments. `cleaner` decides per
//!   batch, `rewrite` re-encodes batches keeping their offsets and producer fields, `swap`
//!   swaps cleaned segments in crash-safely (and finishes an interrupted swap on open), and
//!   `checkpoint` stores where the next pass starts. Offsets never change, so a compacted log
//!   has gaps between batches: reads starting in one return the next batch.
//! - `files`: the node's bounded pool of open segment files ([`FilePool`], `log.max.open.files`):
//!   an idle partition holds no descriptor; indexes, directories and checkpoints are opened
//!   only for the operation at hand. [`filesystem_space`] measures the disk under a directory.
//! - `sync`: group commit. [`Log::sync_handle`] collects the files with unsynced writes so the
//!   caller can fsync them outside its lock, then report back with [`Log::mark_durable`].
//! - `txn_index`, `transactions`, `txn_recovery`: each segment's aborted-transaction index
//!   (Kafka's `.txnindex`, one [`AbortedTxnEntry`] per ABORT marker, a file only once it has
//!   one). The partition hands the entries over as markers are written
//!   ([`Log::index_aborted_txn`], [`Log::append_as_follower_indexing`]); read_committed fetches
//!   read them back ([`Log::aborted_txns`]). They are synced with their segment, truncated,
//!   deleted and compacted with it, and checked against the markers (rebuilt if need be) on
//!   open.
//!
//! # Data flow
//! produce: handler checks batch CRCs -> `Log::append` or `Log::append_with_epoch` (offsets
//! assigned, one `pwrite`) -> later `sync_handle().sync()` + `mark_durable` for acks=all.
//! fetch: `Log::read` up to the high watermark -> bytes go out unchanged. replication: the
//! follower asks the leader for `end_offset_for_epoch(latest_epoch)`, `truncate_to`s the answer,
//! then `append_as_follower`s what it fetches. Nothing on either path decodes a record; only the
//! background cleaner (`Log::needs_compaction`, then `Log::compact_below`) does.
//!
//! # Concurrency
//! A `Log` is not internally synchronised: writes take `&mut self`, reads `&self`, and the broker
//! wraps each `Log` in a mutex (or read-write lock). Only [`SyncHandle::sync`] is meant to run
//! without that lock held. No other process may write the directory while a `Log` has it open.

mod checkpoint;
mod cleaner;
mod compaction;
mod config;
mod epoch_cache;
mod epoch_checkpoint;
mod error;
mod files;
mod follower;
mod index;
mod leader_epoch;
mod log;
mod log_start;
mod recovery;
mod retention;
mod rewrite;
mod scan;
mod segment;
mod swap;
mod sync;
#[cfg(test)]
mod test_support;
mod timestamp;
mod transactions;
mod txn_index;
mod txn_recovery;

pub use crate::compaction::{CompactionConfig, CompactionInfo};
pub use crate::config::LogConfig;
pub use crate::epoch_cache::{NO_PARTITION_LEADER_EPOCH, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use crate::error::LogError;
pub use crate::files::{
    filesystem_space, FilePool, FilesystemSpace, PoolStats, DEFAULT_OPEN_FILES,
};
pub use crate::follower::FollowerRun;
pub use crate::log::{AppendInfo, Log, ReadInfo};
pub use crate::log_start::LogStartInfo;
pub use crate::recovery::{sync_filesystem, Recovery};
pub use crate::retention::RetentionInfo;
pub use crate::sync::{register_metrics, SyncHandle, FLUSH_LATENCY_METRIC};
pub use crate::txn_index::AbortedTxnEntry;
