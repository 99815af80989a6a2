//! The commands of the metadata log and their results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strom_types::security::{AclBinding, ScramCredential, ScramMechanism};
use strom_types::ErrorCode;
use uuid::Uuid;

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        /// Every client listener's advertised address (Metadata answers a client with the
        /// endpoints of the listener it connected to); `host`/`port` are the inter-broker one.
        #[serde(default)]
        endpoints: Vec<Endpoint>,
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
    /// UnregisterBroker: a broker that was shut down for good leaves the cluster. It leaves
    /// every ISR and leadership as when fenced, then its registration is removed. Refused for
    /// a broker that is alive (registered and unfenced): it would keep serving unregistered.
    UnregisterBroker {
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
    /// AlterConfigs and IncrementalAlterConfigs: on `resource`, first removes every key not
    /// in `set` when `replace` (the legacy AlterConfigs replaces the whole set), then removes
    /// `delete`, sets `set`, and applies `lists` (APPEND and SUBTRACT). The handler checked
    /// every key and value.
    AlterConfigs {
        resource: ConfigScope,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        replace: bool,
        #[serde(default)]
        lists: Vec<ListChange>,
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
    /// KIP-554's AlterUserScramCredentials: sets and removes SCRAM credentials, all or none.
    AlterScramCredentials {
        upserts: Vec<ScramUpsert>,
        deletions: Vec<(String, ScramMechanism)>,
    },
    /// AlterClientQuotas (KIP-546): for each entity, removes `remove` and sets `set`, all or
    /// none (the handler checked every entity, key and value).
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
    },
    /// CreateAcls: adds these bindings (one already present is left as it is).
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// DeleteAcls: removes exactly these bindings (the handler resolved the filters against
    /// the image it read).
    DeleteAcls {
        acls: Vec<AclBinding>,
    },
    /// ElectLeaders (KIP-460), from a client or from the controller's preferred-leader
    /// rebalance: elects a leader of the given partitions (topic name, partition indexes) by
    /// `election`'s rules, or of every partition when `partitions` is `None`.
    ElectLeaders {
        election: Election,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    },
    /// AlterPartitionReassignments (KIP-455): moves each partition named (topic name,
    /// partition index) to the replicas given, or cancels its reassignment in progress
    /// (`None`). Each partition succeeds or fails alone, as in Kafka. The move completes
    /// when the image applies the ISR change that brings the last target replica in sync.
    AlterPartitionReassignments {
        partitions: Vec<(String, Vec<PartitionTarget>)>,
        /// False refuses a target with another replica count (KIP-860).
        allow_replication_factor_change: bool,
    },
}

/// A partition index and the replicas to move it to, or `None` to cancel its move.
pub type PartitionTarget = (i32, Option<Vec<i32>>);

/// The kinds of ElectLeaders election, with Kafka's `election_type` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// The first replica of the replica list, if it is alive and in sync.
    Preferred,
    /// Any live replica of a partition that has no leader, in sync or not (writes may be lost).
    Unclean,
}

impl Election {
    /// Kafka's `election_type`: 0 preferred, 1 unclean.
    pub fn from_wire(election_type: i8) -> Option<Election> {
        match election_type {
            0 => Some(Election::Preferred),
            1 => Some(Election::Unclean),
            _ => None,
        }
    }
}

/// How a change to one partition ended (an ElectLeaders election, a reassignment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOutcome {
    pub partition: i32,
    /// `ErrorCode::None` when a leader was elected.
    pub error: ErrorCode,
    pub message: Option<String>,
}

/// The outcomes for one topic's partitions, in the order they were asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicOutcomes {
    pub topic: String,
    pub partitions: Vec<PartitionOutcome>,
}

/// A client quota entity: a user, a client id, or both; a `None` name is the entity type's
/// default (`<default>` in Kafka's tools).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

/// One entity's quota changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub set: BTreeMap<String, f64>,
    pub remove: Vec<String>,
}

/// APPEND or SUBTRACT on a LIST config, combined with the value the image holds when the
/// command is applied (`base` when the key has none), so that concurrent changes keep each
/// other's items. A list left empty removes the key (its default applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChange {
    pub key: String,
    pub items: Vec<String>,
    /// True to append the items not in the list yet, false to remove them.
    pub append: bool,
    pub base: String,
}

impl ListChange {
    /// The list `current` (or `base`) with the change applied, comma-separated.
    pub fn apply_to(&self, current: Option<&str>) -> String {
        let current = current.unwrap_or(&self.base);
        let mut list: Vec<&str> = (current.split(',').map(str::trim))
            .filter(|item| !item.is_empty())
            .collect();
        for item in &self.items {
            match self.append {
                true if !list.contains(&item.as_str()) => list.push(item),
                true => {}
                false => list.retain(|existing| existing != item),
            }
        }
        list.join(",")
    }
}

/// Where a dynamic config applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigScope {
    /// One topic's overrides.
    Topic(Uuid),
    /// Every broker (Kafka's BROKER resource with the empty name).
    BrokerDefault,
    /// One broker.
    Broker(i32),
}

impl ConfigScope {
    /// The key of a broker scope in [`crate::MetadataImage::broker_configs`]: Kafka's resource
    /// name, empty for the cluster-wide default.
    pub fn broker_key(&self) -> Option<String> {
        match self {
            ConfigScope::Topic(_) => None,
            ConfigScope::BrokerDefault => Some(String::new()),
            ConfigScope::Broker(id) => Some(id.to_string()),
        }
    }
}

/// One listener of a broker, as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, `CLIENT`, ...).
    pub listener: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id: 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL.
    pub security_protocol: i16,
}

/// A SCRAM credential to set for `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsert {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
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
    TopicCreated {
        id: Uuid,
    },
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// What ElectLeaders did, per topic and partition.
    Elections(Vec<TopicOutcomes>),
    /// What AlterPartitionReassignments did, per topic and partition.
    Reassignments(Vec<TopicOutcomes>),
    Refused(MetadataError),
}
