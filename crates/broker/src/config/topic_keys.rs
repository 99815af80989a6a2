//! Every topic config: its name and the broker key that supplies its default. A topic config
//! takes its type, default, accepted values and documentation from that broker key, so the two
//! cannot disagree (`segment.bytes` is checked exactly as `log.segment.bytes` is). CreateTopics
//! and topic DescribeConfigs read [`TOPIC_KEYS`]; [`TopicConfig`] is a topic's effective
//! settings as the log and the handlers use them.

use std::collections::BTreeMap;

use strom_log::{CompactionConfig, LogConfig};

use super::broker_keys::{broker_key, Access, BrokerKey};
use super::value::{ConfigType, UpdateMode, Validator, Value};
use super::{invalid, BrokerConfig, ConfigError};

/// One topic-level config (Kafka's `LogConfig` keys).
pub struct TopicKey {
    pub name: &'static str,
    /// The broker key whose value is the default of this config for every topic.
    pub broker_default_key: &'static str,
}

const fn key(name: &'static str, broker_default_key: &'static str) -> TopicKey {
    TopicKey {
        name,
        broker_default_key,
    }
}

/// Every topic config the broker understands; CreateTopics refuses any other name, as Kafka does.
pub const TOPIC_KEYS: &[TopicKey] = &[
    key("cleanup.policy", "log.cleanup.policy"),
    key("compression.type", "compression.type"),
    key(
        "confluent.key.schema.validation",
        "confluent.key.schema.validation",
    ),
    key(
        "confluent.value.schema.validation",
        "confluent.value.schema.validation",
    ),
    key("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    key("index.interval.bytes", "log.index.interval.bytes"),
    key(
        "leader.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
    ),
    key(
        "follower.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ),
    key("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
    key("max.message.bytes", "message.max.bytes"),
    key("message.timestamp.type", "log.message.timestamp.type"),
    key(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
    ),
    key("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    key("min.insync.replicas", "min.insync.replicas"),
    key("retention.bytes", "log.retention.bytes"),
    key("retention.ms", "log.retention.ms"),
    key("segment.bytes", "log.segment.bytes"),
    key("segment.ms", "log.roll.ms"),
    key(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// Topic configs that have no broker-wide default key in Kafka, each described as a broker key
/// would be (type, default, checks, documentation) but never a broker setting: they are not in
/// `BROKER_KEYS`, so broker AlterConfigs and DescribeConfigs do not know them.
pub const TOPIC_ONLY_KEYS: &[BrokerKey] = &[
    BrokerKey {
        name: "confluent.key.schema.validation",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        validator: Validator::Any,
        update_mode: UpdateMode::ClusterWide,
        documentation: "Produce refuses records whose key does not start with a schema id \
                        registered in the schema registry (magic byte 0, 4-byte id), with \
                        INVALID_RECORD (Confluent Server's name). Null keys pass.",
        flag: None,
        access: Access::TopicDefault,
    },
    BrokerKey {
        name: "confluent.value.schema.validation",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        validator: Validator::Any,
        update_mode: UpdateMode::ClusterWide,
        documentation: "Produce refuses records whose value does not start with a schema id \
                        registered in the schema registry (magic byte 0, 4-byte id), with \
                        INVALID_RECORD (Confluent Server's name). Null values (tombstones) pass.",
        flag: None,
        access: Access::TopicDefault,
    },
    BrokerKey {
        name: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: Some(""),
        validator: THROTTLED_REPLICAS,
        update_mode: UpdateMode::ClusterWide,
        documentation: "The replicas (partition:broker, or * for all) whose leader sends to \
                        out-of-sync followers within leader.replication.throttled.rate.",
        flag: None,
        access: Access::TopicDefault,
    },
    BrokerKey {
        name: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: Some(""),
        validator: THROTTLED_REPLICAS,
        update_mode: UpdateMode::ClusterWide,
        documentation: "The replicas (partition:broker, or * for all) that fetch while out of \
                        sync within follower.replication.throttled.rate.",
        flag: None,
        access: Access::TopicDefault,
    },
];

const THROTTLED_REPLICAS: Validator = Validator::Custom {
    check: |text| match ThrottledReplicas::parse(text) {
        Some(_) => Ok(()),
        None => Err(
            "must be the literal '*' or a list of replicas in the following format: \
                     [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                .to_owned(),
        ),
    },
    valid: "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
};

/// Which replicas of a topic a replication throttle applies to
/// (`leader.replication.throttled.replicas`, `follower.replication.throttled.replicas`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ThrottledReplicas {
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// `partition:broker` pairs.
    Some(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Kafka's forms: empty, `*`, or `partition:broker,...` with non-negative integers.
    pub fn parse(text: &str) -> Option<ThrottledReplicas> {
        let text = text.trim();
        if text.is_empty() {
            return Some(ThrottledReplicas::None);
        }
        if text == "*" {
            return Some(ThrottledReplicas::All);
        }
        let pair = |item: &str| {
            let (partition, broker) = item.trim().split_once(':')?;
            let partition: i32 = partition.trim().parse().ok().filter(|p| *p >= 0)?;
            let broker: i32 = broker.trim().parse().ok().filter(|b| *b >= 0)?;
            Some((partition, broker))
        };
        let pairs: Option<Vec<(i32, i32)>> = (text.split(','))
            .filter(|item| !item.trim().is_empty())
            .map(pair)
            .collect();
        pairs.map(ThrottledReplicas::Some)
    }

    /// Whether the replica of `partition` on `broker` is throttled.
    pub fn includes(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Some(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// The topic config of this name.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|key| key.name == name)
}

impl TopicKey {
    /// The broker key that supplies this config's default, type, validation and documentation.
    pub fn broker_key(&self) -> &'static BrokerKey {
        broker_key(self.broker_default_key)
            .or_else(|| (TOPIC_ONLY_KEYS.iter()).find(|key| key.name == self.broker_default_key))
            .expect("a topic key's broker key is in a table")
    }

    pub fn config_type(&self) -> ConfigType {
        self.broker_key().config_type
    }

    /// Parses and checks a value for this config; the error names the topic config.
    pub fn parse(&self, text: &str) -> Result<Value, ConfigError> {
        let broker = self.broker_key();
        super::value::parse(broker.config_type, &broker.validator, text)
            .map_err(|reason| invalid(self.name, text, reason))
    }
}

/// Checks one topic config value, returning it normalised (trimmed).
pub fn validate_topic_config(key: &str, value: &str) -> Result<String, ConfigError> {
    let entry = topic_key(key).ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
    entry.parse(value)?;
    Ok(value.trim().to_owned())
}

/// How a topic's record timestamps are set (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    fn parse(value: &str) -> Option<TimestampType> {
        match value.trim() {
            "CreateTime" => Some(TimestampType::CreateTime),
            "LogAppendTime" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
}

/// What happens to old records (`cleanup.policy`): deleted by retention, compacted by key, or
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    fn parse(value: &str) -> CleanupPolicy {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        CleanupPolicy {
            delete: parts.contains(&"delete"),
            compact: parts.contains(&"compact"),
        }
    }
}

/// The effective settings of one topic: broker defaults with the topic's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub log: LogConfig,
    pub cleanup: CleanupPolicy,
    pub compaction: CompactionConfig,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    pub min_insync_replicas: i32,
    /// `confluent.key.schema.validation`, `confluent.value.schema.validation`.
    pub schema_validation: crate::schema_validation::Checked,
    /// The replicas whose leader sends within `leader.replication.throttled.rate`.
    pub leader_throttled: ThrottledReplicas,
    /// The replicas that fetch within `follower.replication.throttled.rate`.
    pub follower_throttled: ThrottledReplicas,
}

impl BrokerConfig {
    /// The effective config of a topic with `overrides` (already validated).
    pub fn topic_config(&self, overrides: &BTreeMap<String, String>) -> TopicConfig {
        let value = |key: &str| -> &str {
            overrides
                .get(key)
                .or_else(|| self.topic_defaults.get(key))
                .map(String::as_str)
                .expect("every topic key has a default")
        };
        let number = |key: &str| -> i64 { value(key).trim().parse().expect("validated when set") };
        TopicConfig {
            log: LogConfig {
                segment_bytes: number("segment.bytes") as u64,
                segment_ms: number("segment.ms") as u64,
                retention_ms: number("retention.ms"),
                retention_bytes: number("retention.bytes"),
                index_interval_bytes: number("index.interval.bytes") as u32,
            },
            max_message_bytes: number("max.message.bytes") as usize,
            timestamp_type: TimestampType::parse(value("message.timestamp.type"))
                .expect("validated when set"),
            min_insync_replicas: number("min.insync.replicas") as i32,
            schema_validation: crate::schema_validation::Checked {
                key: value("confluent.key.schema.validation").trim() == "true",
                value: value("confluent.value.schema.validation").trim() == "true",
            },
            leader_throttled: ThrottledReplicas::parse(value(
                "leader.replication.throttled.replicas",
            ))
            .expect("validated when set"),
            follower_throttled: ThrottledReplicas::parse(value(
                "follower.replication.throttled.replicas",
            ))
            .expect("validated when set"),
            cleanup: CleanupPolicy::parse(value("cleanup.policy")),
            compaction: CompactionConfig {
                delete_retention_ms: number("delete.retention.ms"),
                min_compaction_lag_ms: number("min.compaction.lag.ms"),
                max_compaction_lag_ms: number("max.compaction.lag.ms"),
                min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                    .trim()
                    .parse()
                    .expect("validated when set"),
                ..CompactionConfig::default()
            },
        }
    }
}
