//! What this node can host, decided at start, and the check that refuses metadata changes
//! beyond it before they are written to the metadata log.
//!
//! Two bounds, each a setting that is derived from the machine when not given:
//! - `log.max.open.files`: the segment files kept open at once (`strom_log::FilePool`), by
//!   default half the process's open-file limit up to [`OPEN_FILES_DEFAULT_MAX`], leaving
//!   the rest to client connections, the metadata quorum and files opened for one operation
//!   (indexes, checkpoints, fsyncs).
//! - `max.connections`: client connections, by default what the open-file limit leaves after
//!   the pool and [`DESCRIPTORS_RESERVED`]; beyond it a connection is closed at once, and an
//!   `accept` failing for want of descriptors backs off (see `network::listener`).
//! - `max.broker.partitions` (KIP-578's name): the partition replicas one broker may host. A
//!   partition holds no descriptor while idle, so descriptors do not cap the count outright,
//!   but a node whose partitions far outnumber its open files reopens a file for nearly every
//!   request; by default a broker hosts at most [`PARTITIONS_PER_OPEN_FILE`] partitions per
//!   pooled file and, for memory, [`PARTITION_MEMORY_BUDGET_BYTES`] of RAM per partition
//!   (indexes, producer state and waiters measure well under that) within half the machine's.
//!
//! The partition check applies the change to a copy of the image, as the controller would,
//! and counts every broker's replicas in the result, so CreateTopics, CreatePartitions,
//! auto-created topics and reassignments are refused with a message that says which broker
//! would exceed what.
//! It uses this node's limit for every broker: set `max.broker.partitions` alike on all nodes.

use std::collections::BTreeMap;
use std::path::Path;

use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
use strom_types::ErrorCode;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::resources::open_files_limit;

/// Partitions a broker may host per segment file it may keep open, by default.
pub const PARTITIONS_PER_OPEN_FILE: usize = 16;
/// Memory set aside per hosted partition, by default.
pub const PARTITION_MEMORY_BUDGET_BYTES: u64 = 256 * 1024;
/// Never fewer open files than this, whatever the limit says: the log needs a few to work.
const OPEN_FILES_MIN: usize = 16;
/// The most open files the default takes: more buys little, and a high limit is better
/// spent on connections.
pub const OPEN_FILES_DEFAULT_MAX: usize = 8192;
/// Descriptors neither the pool nor client connections take: the metadata quorum's
/// connections and log, the listeners, and files opened for one operation.
pub const DESCRIPTORS_RESERVED: usize = 256;
/// Never fewer client connections than this by default.
const CONNECTIONS_MIN: usize = 64;

/// This node's bounds, as derived at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// The process's open-file limit (soft) when the bounds were derived.
    pub descriptor_limit: u64,
    /// `log.max.open.files` in effect.
    pub open_files: usize,
    /// `max.connections` in effect.
    pub connections: usize,
    /// `max.broker.partitions` in effect.
    pub partitions: usize,
}

impl NodeCapacity {
    /// The configured bounds, or ones derived from the open-file limit and the machine's
    /// memory where the config leaves them unset.
    pub fn derive(config: &BrokerConfig) -> NodeCapacity {
        NodeCapacity::from_machine(config, open_files_limit(), memory_bytes())
    }

    fn from_machine(config: &BrokerConfig, descriptor_limit: u64, memory: u64) -> NodeCapacity {
        let limit = usize::try_from(descriptor_limit).unwrap_or(usize::MAX);
        let open_files = config
            .log_open_files_max
            .unwrap_or_else(|| (limit / 2).clamp(OPEN_FILES_MIN, OPEN_FILES_DEFAULT_MAX));
        let connections = config.connections_max.unwrap_or_else(|| {
            limit
                .saturating_sub(open_files + DESCRIPTORS_RESERVED)
                .max(CONNECTIONS_MIN)
        });
        let partitions = config.broker_partitions_max.unwrap_or_else(|| {
            let by_files = open_files.saturating_mul(PARTITIONS_PER_OPEN_FILE);
            let by_memory =
                usize::try_from(memory / 2 / PARTITION_MEMORY_BUDGET_BYTES).unwrap_or(usize::MAX);
            by_files.min(by_memory)
        });
        NodeCapacity {
            descriptor_limit,
            open_files,
            connections,
            partitions,
        }
    }

    /// Refuses `command` if, applied to `image`, it would leave some broker hosting more
    /// partition replicas than [`NodeCapacity::partitions`] and more than it hosts today (so a
    /// node already over a lowered limit can still delete and create within it).
    pub fn admit(
        &self,
        image: &MetadataImage,
        command: &MetadataCommand,
    ) -> Result<(), BrokerError> {
        let code = match command {
            MetadataCommand::CreateTopic { .. } => ErrorCode::PolicyViolation,
            MetadataCommand::CreatePartitions { .. } => ErrorCode::InvalidPartitions,
            MetadataCommand::AlterPartitionReassignments { .. } => ErrorCode::PolicyViolation,
            _ => return Ok(()),
        };
        let before = replicas_per_broker(image);
        let mut after = image.clone();
        if let CommandResult::Refused(_) = after.apply(command) {
            // The controller refuses it with its own reason.
            return Ok(());
        }
        for (broker, count) in replicas_per_broker(&after) {
            let had = before.get(&broker).copied().unwrap_or(0);
            if count > self.partitions && count > had {
                let what = match command {
                    MetadataCommand::CreateTopic { .. } => "creating this topic",
                    MetadataCommand::AlterPartitionReassignments { .. } => "this reassignment",
                    _ => "adding these partitions",
                };
                return Err(BrokerError::new(
                    code,
                    format!(
                        "{what} would give broker {broker} {count} partition replicas, more than \
                         the {} it may host (max.broker.partitions; derived from \
                         log.max.open.files = {} and memory when unset); it hosts {had} now",
                        self.partitions, self.open_files
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How many partition replicas each broker hosts in `image`.
fn replicas_per_broker(image: &MetadataImage) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            for &replica in &partition.replicas {
                *counts.entry(replica).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The machine's memory (`MemTotal` of `/proc/meminfo`); 1 GiB if it cannot be read.
fn memory_bytes() -> u64 {
    read_mem_total(Path::new("/proc/meminfo")).unwrap_or(1 << 30)
}

fn read_mem_total(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn unset_bounds_come_from_the_descriptor_limit_and_memory() {
        let config = BrokerConfig::default();
        let small = NodeCapacity::from_machine(&config, 4096, 24 * GIB);
        assert_eq!(small.open_files, 2048);
        assert_eq!(small.connections, 4096 - 2048 - DESCRIPTORS_RESERVED);
        assert_eq!(small.partitions, 2048 * PARTITIONS_PER_OPEN_FILE);
        let here = NodeCapacity::from_machine(&config, 20_000, 24 * GIB);
        assert_eq!(here.open_files, OPEN_FILES_DEFAULT_MAX);
        assert!(here.connections >= 10_000, "{here:?}");
        let tiny_memory = NodeCapacity::from_machine(&config, 1 << 20, GIB);
        assert_eq!(
            tiny_memory.partitions, 2048,
            "half of 1 GiB at 256 KiB each"
        );
        let starved = NodeCapacity::from_machine(&config, 10, 24 * GIB);
        assert_eq!(starved.open_files, OPEN_FILES_MIN);
        assert_eq!(starved.connections, CONNECTIONS_MIN);
    }

    #[test]
    fn given_bounds_win() {
        let mut config = BrokerConfig::default();
        config.set("log.max.open.files", "100").unwrap();
        config.set("max.broker.partitions", "7").unwrap();
        config.set("max.connections", "9").unwrap();
        let capacity = NodeCapacity::from_machine(&config, 4096, 24 * GIB);
        assert_eq!(
            (
                capacity.open_files,
                capacity.partitions,
                capacity.connections
            ),
            (100, 7, 9)
        );
    }

    #[test]
    fn mem_total_is_read_in_kib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, "MemFree: 5 kB\nMemTotal:       2048 kB\n").unwrap();
        assert_eq!(read_mem_total(&path), Some(2 * 1024 * 1024));
        assert!(memory_bytes() > 0);
    }
}
