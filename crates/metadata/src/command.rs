//! The commands of the metadata log and their results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strom_types::ErrorCode;
use uuid::Uuid;

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Names the cluster; the first command of a new cluster. Ignored once a cluster id is set.
    Bootstrap {
        cluster_id: String,
    },
    /// A broker starts (or restarts: a new incarnation). It is registered unfenced.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// The controller stopped hearing from a broker: its leaderships move to other in-sync
    /// replicas and it leaves every ISR it was in (but the last one).
    FenceBroker {
        id: i32,
    },
    /// A fenced broker is heard from again.
    UnfenceBroker {
        id: i32,
    },
    /// A broker shuts down cleanly: its leaderships move first, then it is fenced.
    ControlledShutdown {
        id: i32,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        /// Explicit replica lists, one per partition (CreateTopics `assignments`).
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        id: Uuid,
    },
    CreatePartitions {
        id: Uuid,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
    },
    AlterTopicConfigs {
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition). Refused unless the leader
    /// and epoch match the image.
    AlterIsr {
        topic: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// Hands out the next block of producer ids.
    AllocateProducerIds {
        broker: i32,
        count: i64,
    },
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct MetadataError {
    pub code: ErrorCode,
    pub message: String,
}

impl MetadataError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> MetadataError {
        MetadataError {
            code,
            message: message.into(),
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    TopicCreated { id: Uuid },
    ProducerIds { first: i64, count: i64 },
    Refused(MetadataError),
}
