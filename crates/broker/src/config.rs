//! Broker and topic configuration, with Kafka's names, defaults and validation.
//!
//! Broker settings come from a TOML file whose keys are Kafka's `server.properties` names
//! (`log.retention.ms = 60000` is read as the dotted key it looks like), then from
//! `--set key=value` overrides, then from the dedicated command-line flags. Topic settings
//! (`retention.ms`, `segment.bytes`, ...) are per-topic overrides of the broker's `log.*`
//! defaults, validated here whether they arrive in CreateTopics or at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strom_coordinator::consumer_group::ConsumerGroupConfig;
use strom_coordinator::GroupConfig;
use strom_log::{CompactionConfig, LogConfig};

/// A configuration problem a user can fix: names the key and what is wrong with the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config '{0}'")]
    UnknownKey(String),
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_long(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let number: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if number < min {
        return Err(invalid(key, value, format!("must be at least {min}")));
    }
    Ok(number)
}

fn parse_int(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let number = parse_long(key, value, min)?;
    if number > i32::MAX as i64 {
        return Err(invalid(key, value, format!("must be at most {}", i32::MAX)));
    }
    Ok(number)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "must be true or false")),
    }
}

/// How a topic's record timestamps are set (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    fn parse(key: &str, value: &str) -> Result<TimestampType, ConfigError> {
        match value.trim() {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            _ => Err(invalid(key, value, "must be CreateTime or LogAppendTime")),
        }
    }
}

/// The kind of a config value, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic-level config: its name, the broker key that supplies its default, its type.
pub struct TopicConfigKey {
    pub name: &'static str,
    pub broker_default_key: &'static str,
    pub config_type: ConfigType,
}

const fn topic_key(
    name: &'static str,
    broker_default_key: &'static str,
    config_type: ConfigType,
) -> TopicConfigKey {
    TopicConfigKey {
        name,
        broker_default_key,
        config_type,
    }
}

/// Every topic config the broker understands; CreateTopics refuses any other name, as Kafka does.
pub const TOPIC_CONFIG_KEYS: &[TopicConfigKey] = &[
    topic_key("cleanup.policy", "log.cleanup.policy", ConfigType::List),
    topic_key("compression.type", "compression.type", ConfigType::String),
    topic_key(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ConfigType::Long,
    ),
    topic_key(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ConfigType::Int,
    ),
    topic_key(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        ConfigType::Long,
    ),
    topic_key("max.message.bytes", "message.max.bytes", ConfigType::Int),
    topic_key(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigType::String,
    ),
    topic_key(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        ConfigType::Double,
    ),
    topic_key(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ConfigType::Long,
    ),
    topic_key(
        "min.insync.replicas",
        "min.insync.replicas",
        ConfigType::Int,
    ),
    topic_key("retention.bytes", "log.retention.bytes", ConfigType::Long),
    topic_key("retention.ms", "log.retention.ms", ConfigType::Long),
    topic_key("segment.bytes", "log.segment.bytes", ConfigType::Int),
    topic_key("segment.ms", "log.roll.ms", ConfigType::Long),
    topic_key(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigType::Boolean,
    ),
];

/// The effective settings of one topic: broker defaults with the topic's overrides applied.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    pub log: LogConfig,
    pub cleanup: CleanupPolicy,
    pub compaction: CompactionConfig,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    pub min_insync_replicas: i32,
}

/// What happens to old records (`cleanup.policy`): deleted by retention, compacted by key, or
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    fn parse(key: &str, value: &str) -> Result<CleanupPolicy, ConfigError> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => {
                    return Err(invalid(
                        key,
                        value,
                        "must be delete, compact, or both separated by a comma",
                    ))
                }
            }
        }
        Ok(policy)
    }
}

/// Checks one topic config value, returning it normalised (trimmed).
pub fn validate_topic_config(key: &str, value: &str) -> Result<String, ConfigError> {
    match key {
        "cleanup.policy" => {
            CleanupPolicy::parse(key, value)?;
        }
        "delete.retention.ms" | "min.compaction.lag.ms" | "max.compaction.lag.ms" => {
            parse_long(key, value, 0)?;
        }
        "min.cleanable.dirty.ratio" => {
            let ratio: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(key, value, "not a number"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid(key, value, "must be between 0 and 1"));
            }
        }
        "compression.type" => {
            if value.trim() != "producer" {
                return Err(invalid(
                    key,
                    value,
                    "only 'producer' (store batches as the producer compressed them) is supported",
                ));
            }
        }
        "index.interval.bytes" | "max.message.bytes" => {
            parse_int(key, value, 0)?;
        }
        "segment.bytes" => {
            parse_int(key, value, 14)?;
        }
        "min.insync.replicas" => {
            parse_int(key, value, 1)?;
        }
        "retention.bytes" | "retention.ms" => {
            parse_long(key, value, -1)?;
        }
        "segment.ms" => {
            parse_long(key, value, 1)?;
        }
        "message.timestamp.type" => {
            TimestampType::parse(key, value)?;
        }
        "unclean.leader.election.enable" => {
            parse_bool(key, value)?;
        }
        _ => return Err(ConfigError::UnknownKey(key.to_owned())),
    }
    Ok(value.trim().to_owned())
}

/// The broker's settings. Field names follow the Kafka keys they are read from.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `listeners`: where the broker accepts clients.
    pub listen: SocketAddr,
    /// `advertised.listeners`: the address clients are told to connect to.
    pub advertise: (String, u16),
    /// `log.dirs`
    pub data_dir: PathBuf,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `delete.topic.enable`
    pub delete_topic_enable: bool,
    /// `num.partitions`
    pub num_partitions: i32,
    /// `default.replication.factor`
    pub default_replication_factor: i16,
    /// `log.retention.check.interval.ms`
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: how often compacted topics are checked for cleaning.
    pub cleaner_backoff_ms: u64,
    /// `socket.request.max.bytes`
    pub request_bytes_max: usize,
    /// `max.connections`
    pub connections_max: usize,
    /// `connections.max.idle.ms`
    pub connection_idle_ms_max: u64,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// The group coordinator's settings (`group.*`, `offset.metadata.max.bytes`,
    /// `offsets.retention.minutes`).
    pub group: GroupConfig,
    /// The KIP-848 consumer-group settings (`group.consumer.*`).
    pub consumer_group: ConsumerGroupConfig,
    /// Topic defaults (`log.segment.bytes`, `log.retention.ms`, ...), by topic config name.
    pub topic_defaults: BTreeMap<String, String>,
    /// The metadata quorum and replication settings.
    pub cluster: ClusterConfig,
}

/// How this node takes part in the cluster. The defaults make a single-node cluster: one
/// combined broker and controller, no controller listener.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `process.roles`: true for `broker,controller` (the default), false for `broker`.
    pub controller: bool,
    /// `controller.listeners` (Strom's name; Kafka puts a CONTROLLER listener in `listeners`):
    /// where this node serves the other controllers.
    pub controller_listen: Option<SocketAddr>,
    /// `controller.quorum.voters`: `ID@HOST:PORT,...`. Empty: a cluster of this node alone.
    pub voters: Vec<(i32, String)>,
    /// `broker.rack`
    pub rack: Option<String>,
    /// `broker.session.timeout.ms`: a broker not heard from this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`
    pub broker_heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`
    pub election_timeout_ms: u64,
    /// `offsets.topic.replication.factor` (capped by the brokers registered when the topic
    /// is created, so a single node still gets its offsets topic).
    pub offsets_topic_replication_factor: i16,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`
    pub replica_fetch_max_bytes: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            controller: true,
            controller_listen: None,
            voters: Vec::new(),
            rack: None,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            election_timeout_ms: 1_000,
            offsets_topic_replication_factor: 3,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1 << 20,
        }
    }
}

impl ClusterConfig {
    /// True when this node is the whole cluster.
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty()
    }
}

/// Parses `controller.quorum.voters`: `ID@HOST:PORT` separated by commas.
pub fn parse_voters(key: &str, value: &str) -> Result<Vec<(i32, String)>, ConfigError> {
    let mut voters = Vec::new();
    for voter in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, address) = voter
            .split_once('@')
            .ok_or_else(|| invalid(key, value, format!("'{voter}' is not ID@HOST:PORT")))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| invalid(key, value, format!("'{id}' is not a node id")))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, format!("'{address}' is not HOST:PORT")))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(invalid(key, value, format!("'{address}' is not HOST:PORT")));
        }
        voters.push((id, address.to_owned()));
    }
    Ok(voters)
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let topic_defaults = [
            ("cleanup.policy", "delete"),
            ("delete.retention.ms", "86400000"),
            ("max.compaction.lag.ms", "9223372036854775807"),
            ("min.cleanable.dirty.ratio", "0.5"),
            ("min.compaction.lag.ms", "0"),
            ("compression.type", "producer"),
            ("index.interval.bytes", "4096"),
            ("max.message.bytes", "1048588"),
            ("message.timestamp.type", "CreateTime"),
            ("min.insync.replicas", "1"),
            ("retention.bytes", "-1"),
            ("retention.ms", "604800000"),
            ("segment.bytes", "1073741824"),
            ("segment.ms", "604800000"),
            ("unclean.leader.election.enable", "false"),
        ];
        BrokerConfig {
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertise: ("127.0.0.1".to_owned(), 9092),
            data_dir: PathBuf::from("./strom-data"),
            auto_create_topics: true,
            delete_topic_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            retention_check_interval_ms: 300_000,
            cleaner_backoff_ms: 15_000,
            request_bytes_max: strom_types::limits::REQUEST_BYTES_MAX,
            connections_max: strom_types::limits::CONNECTIONS_MAX,
            connection_idle_ms_max: strom_types::limits::CONNECTION_IDLE_MS_MAX,
            offsets_topic_partitions: 50,
            group: GroupConfig::default(),
            consumer_group: ConsumerGroupConfig::default(),
            topic_defaults: topic_defaults
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cluster: ClusterConfig::default(),
        }
    }
}

/// Parses `HOST:PORT` or Kafka's `PLAINTEXT://HOST:PORT` (the first listener of a list).
pub fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let first = value.split(',').next().unwrap_or_default().trim();
    let address = match first.split_once("://") {
        Some(("PLAINTEXT", address)) => address,
        Some((protocol, _)) => {
            return Err(invalid(
                key,
                value,
                format!("security protocol {protocol} is not supported yet; use PLAINTEXT"),
            ))
        }
        None => first,
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "port must be 0-65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_owned(), port))
}

fn listener_socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let (host, port) = parse_listener(key, value)?;
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        invalid(
            key,
            value,
            "the listen host must be an IP address or localhost",
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

impl BrokerConfig {
    /// Applies one broker setting by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        const HOUR_MS: i64 = 3_600_000;
        let topic_default =
            |this: &mut BrokerConfig, topic_key: &str, value: String| -> Result<(), ConfigError> {
                let value = validate_topic_config(topic_key, &value).map_err(|_| {
                    invalid(key, &value, "see the topic config of the same meaning")
                })?;
                this.topic_defaults.insert(topic_key.to_owned(), value);
                Ok(())
            };
        match key {
            "node.id" | "broker.id" => self.node_id = parse_int(key, value, 0)? as i32,
            "listeners" => self.listen = listener_socket_addr(key, value)?,
            "advertised.listeners" => self.advertise = parse_listener(key, value)?,
            "log.dirs" | "log.dir" => {
                self.data_dir = PathBuf::from(value.split(',').next().unwrap_or_default().trim())
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(key, value)?,
            "num.partitions" => {
                self.num_partitions = parse_int(key, value, 1)?
                    .min(strom_types::limits::PARTITIONS_PER_TOPIC_MAX as i64)
                    as i32
            }
            "default.replication.factor" => {
                self.default_replication_factor =
                    parse_int(key, value, 1)?.min(i16::MAX as i64) as i16
            }
            "log.cleaner.backoff.ms" => self.cleaner_backoff_ms = parse_long(key, value, 1)? as u64,
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = parse_long(key, value, 1)? as u64
            }
            "socket.request.max.bytes" => {
                self.request_bytes_max = parse_int(key, value, 1)? as usize
            }
            "max.connections" => self.connections_max = parse_int(key, value, 1)? as usize,
            "connections.max.idle.ms" => {
                self.connection_idle_ms_max = parse_long(key, value, 1)? as u64
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_partitions = parse_int(key, value, 1)?
                    .min(strom_types::limits::PARTITIONS_PER_TOPIC_MAX as i64)
                    as i32
            }
            "offsets.topic.replication.factor" => {
                self.cluster.offsets_topic_replication_factor =
                    parse_int(key, value, 1)?.min(i16::MAX as i64) as i16
            }
            "process.roles" => {
                let mut roles: Vec<&str> = value.split(',').map(str::trim).collect();
                roles.sort_unstable();
                self.cluster.controller = match roles.as_slice() {
                    ["broker", "controller"] => true,
                    ["broker"] => false,
                    _ => {
                        return Err(invalid(
                            key,
                            value,
                            "Strom nodes are 'broker,controller' or 'broker'",
                        ))
                    }
                }
            }
            "controller.listeners" => {
                self.cluster.controller_listen = Some(listener_socket_addr(key, value)?)
            }
            "controller.quorum.voters" => self.cluster.voters = parse_voters(key, value)?,
            "broker.rack" => {
                self.cluster.rack = Some(value.trim().to_owned()).filter(|r| !r.is_empty())
            }
            "broker.session.timeout.ms" => {
                self.cluster.broker_session_timeout_ms = parse_int(key, value, 1)? as u64
            }
            "broker.heartbeat.interval.ms" => {
                self.cluster.broker_heartbeat_interval_ms = parse_int(key, value, 1)? as u64
            }
            "controller.quorum.election.timeout.ms" => {
                self.cluster.election_timeout_ms = parse_int(key, value, 20)? as u64
            }
            "replica.lag.time.max.ms" => {
                self.cluster.replica_lag_time_max_ms = parse_long(key, value, 1)? as u64
            }
            "replica.fetch.wait.max.ms" => {
                self.cluster.replica_fetch_wait_max_ms = parse_int(key, value, 0)? as u64
            }
            "replica.fetch.max.bytes" => {
                self.cluster.replica_fetch_max_bytes = parse_int(key, value, 1)? as usize
            }
            "group.min.session.timeout.ms" => {
                self.group.session_timeout_ms_min = parse_int(key, value, 1)? as i32
            }
            "group.max.session.timeout.ms" => {
                self.group.session_timeout_ms_max = parse_int(key, value, 1)? as i32
            }
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = parse_int(key, value, 0)?
            }
            "group.consumer.session.timeout.ms" => {
                self.consumer_group.session_timeout_ms = parse_int(key, value, 1)? as i32
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.consumer_group.heartbeat_interval_ms = parse_int(key, value, 1)? as i32
            }
            "group.consumer.max.size" => {
                self.consumer_group.members_max = parse_int(key, value, 1)? as usize
            }
            "group.max.size" => self.group.members_max = parse_int(key, value, 1)? as usize,
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_bytes_max = parse_int(key, value, 0)? as usize
            }
            "offsets.retention.minutes" => {
                self.group.offsets_retention_ms = parse_int(key, value, 1)? * 60_000
            }
            "log.retention.hours" => topic_default(
                self,
                "retention.ms",
                (parse_long(key, value, -1)? * HOUR_MS).max(-1).to_string(),
            )?,
            "log.retention.minutes" => topic_default(
                self,
                "retention.ms",
                (parse_long(key, value, -1)? * 60_000).max(-1).to_string(),
            )?,
            "log.roll.hours" => topic_default(
                self,
                "segment.ms",
                (parse_long(key, value, 1)? * HOUR_MS).to_string(),
            )?,
            _ => match TOPIC_CONFIG_KEYS
                .iter()
                .find(|k| k.broker_default_key == key)
            {
                Some(topic_key) => {
                    let value =
                        validate_topic_config(topic_key.name, value).map_err(
                            |error| match error {
                                ConfigError::InvalidValue { reason, .. } => {
                                    invalid(key, value, reason)
                                }
                                other => other,
                            },
                        )?;
                    self.topic_defaults.insert(topic_key.name.to_owned(), value);
                }
                None => return Err(ConfigError::UnknownKey(key.to_owned())),
            },
        }
        Ok(())
    }

    /// Reads a TOML file of Kafka broker settings: `log.retention.ms = 1000` (a dotted key) and
    /// `"log.retention.ms" = 1000` (a quoted one) mean the same.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let file_error = |reason: String| ConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| file_error(error.to_string()))?;
        let mut settings = Vec::new();
        flatten("", &toml::Value::Table(table), &mut settings).map_err(file_error)?;
        for (key, value) in settings {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    /// The effective config of a topic with `overrides` (already validated).
    pub fn topic_config(&self, overrides: &BTreeMap<String, String>) -> TopicConfig {
        let value = |key: &str| -> &str {
            overrides
                .get(key)
                .or_else(|| self.topic_defaults.get(key))
                .map(String::as_str)
                .expect("every topic key has a default")
        };
        let number = |key: &str| -> i64 { value(key).parse().expect("validated when set") };
        TopicConfig {
            log: LogConfig {
                segment_bytes: number("segment.bytes") as u64,
                segment_ms: number("segment.ms") as u64,
                retention_ms: number("retention.ms"),
                retention_bytes: number("retention.bytes"),
                index_interval_bytes: number("index.interval.bytes") as u32,
            },
            max_message_bytes: number("max.message.bytes") as usize,
            timestamp_type: TimestampType::parse(
                "message.timestamp.type",
                value("message.timestamp.type"),
            )
            .expect("validated when set"),
            min_insync_replicas: number("min.insync.replicas") as i32,
            cleanup: CleanupPolicy::parse("cleanup.policy", value("cleanup.policy"))
                .expect("validated when set"),
            compaction: CompactionConfig {
                delete_retention_ms: number("delete.retention.ms"),
                min_compaction_lag_ms: number("min.compaction.lag.ms"),
                max_compaction_lag_ms: number("max.compaction.lag.ms"),
                min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                    .parse()
                    .expect("validated when set"),
                ..CompactionConfig::default()
            },
        }
    }

    /// Every broker setting with its current value, for DescribeConfigs on the broker.
    pub fn describe(&self) -> Vec<(String, String)> {
        let (advertise_host, advertise_port) = &self.advertise;
        let mut entries = vec![
            ("node.id".to_owned(), self.node_id.to_string()),
            (
                "listeners".to_owned(),
                format!("PLAINTEXT://{}", self.listen),
            ),
            (
                "advertised.listeners".to_owned(),
                format!("PLAINTEXT://{advertise_host}:{advertise_port}"),
            ),
            ("log.dirs".to_owned(), self.data_dir.display().to_string()),
            (
                "auto.create.topics.enable".to_owned(),
                self.auto_create_topics.to_string(),
            ),
            (
                "delete.topic.enable".to_owned(),
                self.delete_topic_enable.to_string(),
            ),
            ("num.partitions".to_owned(), self.num_partitions.to_string()),
            (
                "default.replication.factor".to_owned(),
                self.default_replication_factor.to_string(),
            ),
            (
                "log.cleaner.backoff.ms".to_owned(),
                self.cleaner_backoff_ms.to_string(),
            ),
            (
                "log.retention.check.interval.ms".to_owned(),
                self.retention_check_interval_ms.to_string(),
            ),
            (
                "socket.request.max.bytes".to_owned(),
                self.request_bytes_max.to_string(),
            ),
            (
                "max.connections".to_owned(),
                self.connections_max.to_string(),
            ),
            (
                "connections.max.idle.ms".to_owned(),
                self.connection_idle_ms_max.to_string(),
            ),
        ];
        let cluster = &self.cluster;
        let voters: Vec<String> = cluster
            .voters
            .iter()
            .map(|(id, address)| format!("{id}@{address}"))
            .collect();
        let roles = match cluster.controller {
            true => "broker,controller",
            false => "broker",
        };
        entries.extend([
            ("process.roles".to_owned(), roles.to_owned()),
            ("controller.quorum.voters".to_owned(), voters.join(",")),
            (
                "controller.listeners".to_owned(),
                cluster
                    .controller_listen
                    .map(|addr| addr.to_string())
                    .unwrap_or_default(),
            ),
            (
                "broker.rack".to_owned(),
                cluster.rack.clone().unwrap_or_default(),
            ),
            (
                "broker.session.timeout.ms".to_owned(),
                cluster.broker_session_timeout_ms.to_string(),
            ),
            (
                "broker.heartbeat.interval.ms".to_owned(),
                cluster.broker_heartbeat_interval_ms.to_string(),
            ),
            (
                "controller.quorum.election.timeout.ms".to_owned(),
                cluster.election_timeout_ms.to_string(),
            ),
            (
                "offsets.topic.num.partitions".to_owned(),
                self.offsets_topic_partitions.to_string(),
            ),
            (
                "offsets.topic.replication.factor".to_owned(),
                cluster.offsets_topic_replication_factor.to_string(),
            ),
            (
                "replica.lag.time.max.ms".to_owned(),
                cluster.replica_lag_time_max_ms.to_string(),
            ),
            (
                "replica.fetch.wait.max.ms".to_owned(),
                cluster.replica_fetch_wait_max_ms.to_string(),
            ),
            (
                "replica.fetch.max.bytes".to_owned(),
                cluster.replica_fetch_max_bytes.to_string(),
            ),
        ]);
        for key in TOPIC_CONFIG_KEYS {
            entries.push((
                key.broker_default_key.to_owned(),
                self.topic_defaults[key.name].clone(),
            ));
        }
        entries
    }
}

fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let joined = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                flatten(&joined(key), inner, out)?;
            }
        }
        toml::Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        toml::Value::Integer(number) => out.push((prefix.to_owned(), number.to_string())),
        toml::Value::Boolean(flag) => out.push((prefix.to_owned(), flag.to_string())),
        toml::Value::Array(items) => {
            let items: Result<Vec<String>, String> = items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    other => Ok(other.to_string()),
                })
                .collect();
            out.push((prefix.to_owned(), items?.join(",")));
        }
        other => {
            return Err(format!(
                "'{prefix}' has a value of unsupported type: {other}"
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_set_broker_settings_and_topic_defaults() {
        let mut config = BrokerConfig::default();
        config.set("num.partitions", "3").unwrap();
        config.set("log.retention.ms", "1000").unwrap();
        config.set("log.retention.hours", "2").unwrap();
        config
            .set("listeners", "PLAINTEXT://127.0.0.1:19092")
            .unwrap();
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.topic_defaults["retention.ms"], "7200000");
        assert_eq!(config.listen.port(), 19092);
        assert!(matches!(
            config.set("num.partitions", "0"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            config.set("no.such.key", "1"),
            Err(ConfigError::UnknownKey(_))
        ));
    }

    #[test]
    fn toml_dotted_and_quoted_keys_mean_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strom.toml");
        std::fs::write(&path, "log.segment.bytes = 20000\n\"log.retention.ms\" = 5000\nauto.create.topics.enable = false\n").unwrap();
        let mut config = BrokerConfig::default();
        config.apply_file(&path).unwrap();
        assert_eq!(config.topic_defaults["segment.bytes"], "20000");
        assert_eq!(config.topic_defaults["retention.ms"], "5000");
        assert!(!config.auto_create_topics);
    }

    #[test]
    fn topic_overrides_win_over_broker_defaults() {
        let config = BrokerConfig::default();
        let overrides = BTreeMap::from([("retention.ms".to_owned(), "10".to_owned())]);
        let topic = config.topic_config(&overrides);
        assert_eq!(topic.log.retention_ms, 10);
        assert_eq!(topic.log.segment_bytes, 1 << 30);
        assert_eq!(topic.timestamp_type, TimestampType::CreateTime);
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert_eq!(
            validate_topic_config("cleanup.policy", "compact, delete").unwrap(),
            "compact, delete"
        );
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        let compacted = config.topic_config(&BTreeMap::from([(
            "cleanup.policy".to_owned(),
            "compact".to_owned(),
        )]));
        assert_eq!(
            compacted.cleanup,
            CleanupPolicy {
                delete: false,
                compact: true
            }
        );
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(matches!(
            validate_topic_config("bogus", "1"),
            Err(ConfigError::UnknownKey(_))
        ));
    }
}
