//! Broker and topic configuration, with Kafka's names, defaults and validation.
//!
//! Every key is declared once, in one table per scope. [`BROKER_KEYS`] (`broker_keys.rs`) gives
//! each broker setting its type, default, accepted values, Kafka's update mode, a sentence of
//! documentation, its `strom server` flag and the field its value lands in; [`TOPIC_KEYS`]
//! (`topic_keys.rs`) names each topic config and the broker key that supplies its default,
//! and with it its type and checks. [`BrokerConfig::set`] parses through the broker table,
//! [`BrokerConfig::default`] is the table's defaults, DescribeConfigs reads both tables
//! (`describe.rs`), and the README's configuration table is rendered from them (`readme.rs`,
//! whose test keeps README.md current). `value.rs` holds what a key declares: its
//! [`ConfigType`], [`Validator`] and [`UpdateMode`], and the parser to a checked [`Value`].
//!
//! Broker settings come from a TOML file whose keys are Kafka's `server.properties` names
//! (`log.retention.ms = 60000` is read as the dotted key it looks like), then from
//! `--set key=value` overrides, then from the dedicated command-line flags. The config remembers
//! which keys were given, so DescribeConfigs can tell a given value from a default. Topic
//! settings (`retention.ms`, `segment.bytes`, ...) are per-topic overrides of the broker's
//! defaults, validated here whether they arrive in CreateTopics or at start-up.

pub mod alter;
mod broker_keys;
mod describe;
pub mod listeners;
mod readme;
mod topic_keys;
mod value;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use strom_coordinator::consumer_group::ConsumerGroupConfig;
use strom_coordinator::transactions::TransactionConfig;
use strom_coordinator::GroupConfig;

pub use broker_keys::{broker_key, parse_listener, parse_voters, Access, BrokerKey, BROKER_KEYS};
pub use describe::{ConfigSource, ConfigSynonym, DescribedConfig};
pub use readme::markdown_table;
pub use topic_keys::{
    topic_key, validate_topic_config, CleanupPolicy, TimestampType, TopicConfig, TopicKey,
    TOPIC_KEYS,
};
pub use value::{ConfigType, UpdateMode, Validator, Value};

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

/// The broker's settings. Field names follow the Kafka keys they are read from; [`BROKER_KEYS`]
/// says which key sets which field.
///
/// Built once at start (defaults, then the file, `--set` and the flags) and read-only after:
/// the broker shares it behind its `Arc<Broker>`.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `listeners`: where the broker accepts clients.
    pub listen: SocketAddr,
    /// `admin.listen`: where the admin listener (metrics, health, console) is served; `None`:
    /// the first client listener's host, port 9644.
    pub admin_listen: Option<SocketAddr>,
    /// `admin.ssl.enable`: HTTPS on the admin listener.
    pub admin_ssl: bool,
    /// `schema.registry.listen`: where the schema registry is served; `None`: the first client
    /// listener's host, port 8081.
    pub schema_registry_listen: Option<SocketAddr>,
    /// `admin.authentication`: auto, none or basic.
    pub admin_authentication: String,
    /// `log.format`: true for one JSON object per line, false for text.
    pub log_format_json: bool,
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
    /// `max.connections`; `None` derives it (see `capacity`).
    pub connections_max: Option<usize>,
    /// `log.max.open.files`; `None` derives it (see `capacity`).
    pub log_open_files_max: Option<usize>,
    /// `max.broker.partitions`; `None` derives it (see `capacity`).
    pub broker_partitions_max: Option<usize>,
    /// `connections.max.idle.ms`
    pub connection_idle_ms_max: u64,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// The group coordinator's settings (`group.*`, `offset.metadata.max.bytes`,
    /// `offsets.retention.minutes`).
    pub group: GroupConfig,
    /// The KIP-848 consumer-group settings (`group.consumer.*`).
    pub consumer_group: ConsumerGroupConfig,
    /// The transaction coordinator's settings (`transaction.*`, `transactional.id.*`).
    pub transaction: TransactionConfig,
    /// Topic defaults (`log.segment.bytes`, `log.retention.ms`, ...), by topic config name.
    pub topic_defaults: BTreeMap<String, String>,
    /// The metadata quorum and replication settings.
    pub cluster: ClusterConfig,
    /// `listeners` and the keys that go with it (see [`listeners`]).
    pub listener_settings: listeners::ListenerSettings,
    /// TLS, SASL and the authorizer.
    pub security: listeners::SecuritySettings,
    /// The keys given through [`BrokerConfig::set`], with their values as given: DescribeConfigs
    /// reports them as static broker configs, the others as defaults.
    given: BTreeMap<&'static str, String>,
    /// The dynamic broker configs applied over the static ones (see
    /// [`BrokerConfig::with_dynamic`]); empty in the config built at start.
    pub dynamic: DynamicConfigs,
}

/// The dynamic broker configs (AlterConfigs on BROKER resources) in force on this node, as the
/// metadata image holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicConfigs {
    /// Set for every broker (the BROKER resource with the empty name).
    pub default: BTreeMap<String, String>,
    /// Set for this broker.
    pub broker: BTreeMap<String, String>,
}

impl DynamicConfigs {
    fn contains(&self, key: &str) -> bool {
        self.broker.contains_key(key) || self.default.contains_key(key)
    }
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
    /// `transaction.state.log.replication.factor` (capped like the offsets topic's).
    pub transaction_state_replication_factor: i16,
    /// `transaction.state.log.min.isr` (capped at the topic's replication factor).
    pub transaction_state_min_isr: i32,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`
    pub replica_fetch_max_bytes: usize,
    /// `leader.replication.throttled.rate`: bytes per second this node sends, as a leader, to
    /// throttled replicas (a reassignment's); `u64::MAX` for no limit.
    pub leader_replication_throttled_rate: u64,
    /// `follower.replication.throttled.rate`: bytes per second this node fetches, as a
    /// follower, for throttled replicas; `u64::MAX` for no limit.
    pub follower_replication_throttled_rate: u64,
    /// `auto.leader.rebalance.enable`, `leader.imbalance.per.broker.percentage`,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_balance: strom_metadata::quorum::LeaderBalanceConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        BrokerConfig::default().cluster
    }
}

impl ClusterConfig {
    /// True when this node is the whole cluster.
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty()
    }
}

impl Default for BrokerConfig {
    /// Every key of [`BROKER_KEYS`] at its default.
    fn default() -> Self {
        let mut config = BrokerConfig {
            node_id: 0,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin_listen: None,
            log_format_json: false,
            admin_ssl: false,
            schema_registry_listen: None,
            admin_authentication: String::new(),
            advertise: (String::new(), 0),
            data_dir: PathBuf::new(),
            auto_create_topics: false,
            delete_topic_enable: false,
            num_partitions: 0,
            default_replication_factor: 0,
            retention_check_interval_ms: 0,
            cleaner_backoff_ms: 0,
            request_bytes_max: 0,
            connections_max: None,
            log_open_files_max: None,
            broker_partitions_max: None,
            connection_idle_ms_max: 0,
            offsets_topic_partitions: 0,
            group: GroupConfig::default(),
            consumer_group: ConsumerGroupConfig::default(),
            transaction: TransactionConfig::default(),
            topic_defaults: BTreeMap::new(),
            cluster: ClusterConfig {
                controller: false,
                controller_listen: None,
                voters: Vec::new(),
                rack: None,
                broker_session_timeout_ms: 0,
                broker_heartbeat_interval_ms: 0,
                election_timeout_ms: 0,
                offsets_topic_replication_factor: 0,
                transaction_state_replication_factor: 0,
                transaction_state_min_isr: 0,
                replica_lag_time_max_ms: 0,
                replica_fetch_wait_max_ms: 0,
                replica_fetch_max_bytes: 0,
                leader_replication_throttled_rate: u64::MAX,
                follower_replication_throttled_rate: u64::MAX,
                leader_balance: Default::default(),
            },
            listener_settings: listeners::ListenerSettings {
                listeners: Vec::new(),
                advertised: Vec::new(),
                protocol_map: Vec::new(),
                inter_broker: None,
                controller_names: Vec::new(),
            },
            security: listeners::SecuritySettings::default(),
            given: BTreeMap::new(),
            dynamic: DynamicConfigs::default(),
        };
        // A synonym's default is its key's, in other terms (`log.retention.hours = 168`).
        for key in BROKER_KEYS.iter().filter(|key| key.synonym_of().is_none()) {
            if let Some(default) = key.default {
                let value = key
                    .parse(default)
                    .expect("a default passes its key's checks");
                key.apply(&mut config, &value);
            }
        }
        for key in topic_keys::TOPIC_ONLY_KEYS {
            let default = key.default.expect("a topic-only key has a default");
            let value = key
                .parse(default)
                .expect("a default passes its key's checks");
            key.apply(&mut config, &value);
        }
        // `advertised.listeners` has no default: clients are told the listener.
        config.advertise = (config.listen.ip().to_string(), config.listen.port());
        config
    }
}

impl BrokerConfig {
    /// Applies one broker setting by its Kafka name, as given at start.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let entry = broker_key(key).ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
        let parsed = entry.parse(value)?;
        // Kafka's precedence among synonyms, whatever the order they are given in:
        // `log.retention.hours` does not override a `log.retention.ms` given before it.
        if !self.outranked(entry) {
            entry.apply(self, &parsed);
        }
        self.given.insert(entry.name, value.trim().to_owned());
        Ok(())
    }

    /// Whether a synonym stronger than `entry` has a value, static or dynamic: Kafka merges
    /// the layers before resolving synonyms, so a dynamic `log.retention.hours` does not
    /// override a static `log.retention.ms`.
    fn outranked(&self, entry: &BrokerKey) -> bool {
        (entry.outranked_by().iter()).any(|stronger| {
            self.given.contains_key(stronger.name) || self.dynamic.contains(stronger.name)
        })
    }

    /// This config (the one built at start) with the dynamic broker configs of `scopes` applied
    /// over it: the metadata image's `broker_configs`, by resource name (empty for every
    /// broker). Kafka's precedence: this broker's, then the cluster-wide default, then static,
    /// then the built-in default. A key no longer alterable, or a value no longer valid (both
    /// checked when it was set), is skipped.
    pub fn with_dynamic(
        &self,
        scopes: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> BrokerConfig {
        let layer = |name: &str| scopes.get(name).cloned().unwrap_or_default();
        let dynamic = DynamicConfigs {
            default: layer(""),
            broker: layer(&self.node_id.to_string()),
        };
        let mut config = self.clone();
        if dynamic.default.is_empty() && dynamic.broker.is_empty() {
            return config;
        }
        config.dynamic = dynamic.clone();
        for (key, value) in dynamic.default.iter().chain(&dynamic.broker) {
            let Some(entry) = broker_key(key).filter(|e| e.update_mode != UpdateMode::ReadOnly)
            else {
                tracing::warn!(
                    key,
                    "ignoring a dynamic broker config that cannot change at runtime"
                );
                continue;
            };
            match entry.parse(value) {
                Ok(parsed) if !config.outranked(entry) => entry.apply(&mut config, &parsed),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "ignoring a dynamic broker config"),
            }
        }
        config
    }

    /// The value given for `key` at start, if it was given.
    pub fn given(&self, key: &str) -> Option<&str> {
        self.given.get(key).map(String::as_str)
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
        // As in Kafka, `log.retention.ms` wins over `log.retention.hours`, given before or after.
        assert_eq!(config.topic_defaults["retention.ms"], "1000");
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

    /// Every key `set` accepted before the key table, with a value it accepted.
    const SETTABLE_BEFORE_THE_TABLE: &[(&str, &str)] = &[
        ("node.id", "2"),
        ("broker.id", "2"),
        ("listeners", "PLAINTEXT://0.0.0.0:19092"),
        ("advertised.listeners", "broker.example:19092"),
        ("log.dirs", "/var/lib/strom"),
        ("log.dir", "/var/lib/strom"),
        ("auto.create.topics.enable", "false"),
        ("delete.topic.enable", "false"),
        ("num.partitions", "3"),
        ("default.replication.factor", "3"),
        ("log.cleaner.backoff.ms", "1000"),
        ("log.retention.check.interval.ms", "1000"),
        ("socket.request.max.bytes", "1048576"),
        ("max.connections", "100"),
        ("connections.max.idle.ms", "1000"),
        ("offsets.topic.num.partitions", "3"),
        ("offsets.topic.replication.factor", "1"),
        ("process.roles", "broker"),
        ("controller.listeners", "127.0.0.1:19093"),
        (
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:19094",
        ),
        ("broker.rack", "r1"),
        ("broker.session.timeout.ms", "3000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("controller.quorum.election.timeout.ms", "300"),
        ("replica.lag.time.max.ms", "5000"),
        ("replica.fetch.wait.max.ms", "100"),
        ("replica.fetch.max.bytes", "65536"),
        ("group.min.session.timeout.ms", "1000"),
        ("group.max.session.timeout.ms", "60000"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.session.timeout.ms", "10000"),
        ("group.consumer.heartbeat.interval.ms", "1000"),
        ("group.consumer.max.size", "10"),
        ("group.max.size", "10"),
        ("offset.metadata.max.bytes", "100"),
        ("offsets.retention.minutes", "60"),
        ("log.retention.hours", "1"),
        ("log.retention.minutes", "30"),
        ("log.roll.hours", "1"),
        ("log.cleanup.policy", "compact,delete"),
        ("compression.type", "producer"),
        ("log.cleaner.delete.retention.ms", "1000"),
        ("log.index.interval.bytes", "1024"),
        ("log.cleaner.max.compaction.lag.ms", "100000"),
        ("message.max.bytes", "2000000"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("log.cleaner.min.cleanable.ratio", "0.1"),
        ("log.cleaner.min.compaction.lag.ms", "10"),
        ("min.insync.replicas", "2"),
        ("log.retention.bytes", "1000000"),
        ("log.retention.ms", "1000"),
        ("log.segment.bytes", "1048576"),
        ("log.roll.ms", "1000"),
        ("unclean.leader.election.enable", "true"),
    ];

    #[test]
    fn keys_settable_before_the_table_still_are() {
        for (key, value) in SETTABLE_BEFORE_THE_TABLE {
            let mut config = BrokerConfig::default();
            config
                .set(key, value)
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            let described = config.describe();
            let entry = described.iter().find(|c| c.name == *key).unwrap();
            assert_eq!(entry.source, ConfigSource::StaticBroker, "{key}");
        }
        // The ones that did not reach DescribeConfigs before are described now.
        for key in [
            "group.max.size",
            "offsets.retention.minutes",
            "offset.metadata.max.bytes",
        ] {
            assert!(BrokerConfig::default()
                .describe()
                .iter()
                .any(|c| c.name == key));
        }
        // Keys added since the table: the capacity bounds of issue 10 and the transaction
        // coordinator's of issue 11, the named listeners and security keys of issue 12, the
        // leader rebalance, the replication throttles and the keystore change rules
        // (`ssl.allow.dn.changes`, `ssl.allow.san.changes`) of issue 13, and the admin
        // listener's and log format's of issue 14, the schema registry's listener of issue 15.
        assert_eq!(
            BROKER_KEYS.len(),
            SETTABLE_BEFORE_THE_TABLE.len() + 2 + 7 + 3 + 17 + 3 + 2 + 2 + 4 + 1
        );
    }

    #[test]
    fn every_broker_key_round_trips_and_is_described() {
        let defaults = BrokerConfig::default();
        let described = defaults.describe();
        let names: Vec<&str> = described.iter().map(|c| c.name).collect();
        let table: Vec<&str> = BROKER_KEYS.iter().map(|key| key.name).collect();
        assert_eq!(
            names, table,
            "describe() lists every key of the table, once"
        );
        for key in BROKER_KEYS {
            let mut config = BrokerConfig::default();
            if let Some(default) = key.default {
                config
                    .set(key.name, default)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(key.read(&config).as_deref(), Some(default), "{}", key.name);
            }
            // What DescribeConfigs shows can be given back and reads the same.
            if let Some(shown) = key.read(&defaults) {
                let mut config = BrokerConfig::default();
                config
                    .set(key.name, &shown)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(key.read(&config), Some(shown), "{}", key.name);
            }
        }
    }

    #[test]
    fn the_tables_hold_together() {
        let mut names: Vec<&str> = BROKER_KEYS.iter().map(|key| key.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            BROKER_KEYS.len(),
            "a broker key is declared twice"
        );
        let defaults = BrokerConfig::default();
        for key in BROKER_KEYS {
            assert!(!key.name.is_empty());
            assert!(
                key.documentation.ends_with('.') && key.documentation.len() > 10,
                "{} needs a sentence of documentation",
                key.name
            );
            match &key.access {
                Access::TopicDefault => {
                    let topic = key.topic_key();
                    assert!(topic.is_some(), "{} is no topic config's default", key.name);
                }
                Access::Synonym { .. } => {
                    let primary = key.synonym_of().unwrap();
                    // Precedence is table order, the key before its synonyms.
                    let position = |name| BROKER_KEYS.iter().position(|k| k.name == name);
                    assert!(position(primary.name) < position(key.name), "{}", key.name);
                    assert!(
                        primary.synonym_of().is_none(),
                        "{}: a synonym of a synonym",
                        key.name
                    );
                    assert!(key.topic_key().is_none());
                }
                Access::Field { .. } => assert!(key.topic_key().is_none(), "{}", key.name),
            }
            // Defaults pass their own checks, and `BrokerConfig::default()` holds them.
            if let Some(default) = key.default {
                key.parse(default).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    key.read(&defaults).as_deref(),
                    Some(default),
                    "{}",
                    key.name
                );
            }
        }
        for topic in TOPIC_KEYS {
            assert!(matches!(topic.broker_key().access, Access::TopicDefault));
            assert!(
                defaults.topic_defaults.contains_key(topic.name),
                "{}",
                topic.name
            );
        }
        assert_eq!(defaults.topic_defaults.len(), TOPIC_KEYS.len());
    }

    #[test]
    fn defaults_agree_with_the_crates_that_own_them() {
        let config = BrokerConfig::default();
        let group = GroupConfig::default();
        assert_eq!(
            config.group.session_timeout_ms_min,
            group.session_timeout_ms_min
        );
        assert_eq!(
            config.group.session_timeout_ms_max,
            group.session_timeout_ms_max
        );
        assert_eq!(
            config.group.initial_rebalance_delay_ms,
            group.initial_rebalance_delay_ms
        );
        assert_eq!(config.group.members_max, group.members_max);
        assert_eq!(
            config.group.offset_metadata_bytes_max,
            group.offset_metadata_bytes_max
        );
        assert_eq!(
            config.group.offsets_retention_ms,
            group.offsets_retention_ms
        );
        let consumer = ConsumerGroupConfig::default();
        assert_eq!(
            config.consumer_group.session_timeout_ms,
            consumer.session_timeout_ms
        );
        assert_eq!(
            config.consumer_group.heartbeat_interval_ms,
            consumer.heartbeat_interval_ms
        );
        assert_eq!(config.consumer_group.members_max, consumer.members_max);
        use strom_types::limits;
        assert_eq!(config.request_bytes_max, limits::REQUEST_BYTES_MAX);
        assert_eq!(
            config.connection_idle_ms_max,
            limits::CONNECTION_IDLE_MS_MAX
        );
        let topic = config.topic_config(&BTreeMap::new());
        assert_eq!(topic.max_message_bytes, limits::MESSAGE_BYTES_MAX);
        assert_eq!(topic.log.index_interval_bytes, limits::INDEX_INTERVAL_BYTES);
        assert_eq!(config.advertise, ("127.0.0.1".to_owned(), 9092));
        assert!(config.cluster.is_single_node() && config.cluster.controller);
    }

    #[test]
    fn synonyms_follow_kafkas_precedence_in_any_order() {
        let retention = |settings: &[(&str, &str)]| {
            let mut config = BrokerConfig::default();
            for (key, value) in settings {
                config.set(key, value).unwrap();
            }
            config.topic_defaults["retention.ms"].clone()
        };
        let ms = ("log.retention.ms", "1000");
        let minutes = ("log.retention.minutes", "2");
        let hours = ("log.retention.hours", "3");
        assert_eq!(retention(&[ms, minutes, hours]), "1000");
        assert_eq!(retention(&[hours, minutes, ms]), "1000");
        assert_eq!(retention(&[hours, minutes]), "120000");
        assert_eq!(retention(&[minutes, hours]), "120000");
        assert_eq!(retention(&[hours]), "10800000");
        assert_eq!(retention(&[("log.retention.hours", "-1")]), "-1");

        let mut config = BrokerConfig::default();
        config.set("broker.id", "7").unwrap();
        assert_eq!(config.node_id, 7);
        config.set("node.id", "8").unwrap();
        config.set("broker.id", "9").unwrap();
        assert_eq!(config.node_id, 8);
    }

    #[test]
    fn describe_tells_given_values_from_defaults() {
        let mut config = BrokerConfig::default();
        // Given, even if equal to the default: static, as Kafka reports a server.properties line.
        config.set("num.partitions", "1").unwrap();
        config.set("log.retention.hours", "2").unwrap();
        config.data_dir = PathBuf::from("/elsewhere");
        let described = config.describe();
        let entry = |name: &str| described.iter().find(|c| c.name == name).unwrap().clone();
        assert_eq!(entry("num.partitions").source, ConfigSource::StaticBroker);
        assert_eq!(entry("log.dirs").source, ConfigSource::StaticBroker);
        assert_eq!(entry("max.connections").source, ConfigSource::Default);
        assert_eq!(entry("log.retention.minutes").value, None);
        assert_eq!(entry("broker.rack").value, None);
        let retention = entry("log.retention.ms");
        assert_eq!(retention.value.as_deref(), Some("7200000"));
        assert_eq!(retention.source, ConfigSource::StaticBroker);
        assert_eq!(retention.config_type, ConfigType::Long);
        assert_eq!(
            retention.synonyms,
            vec![
                synonym("log.retention.hours", "2", ConfigSource::StaticBroker),
                synonym("log.retention.ms", "604800000", ConfigSource::Default),
                synonym("log.retention.hours", "168", ConfigSource::Default),
            ]
        );
        assert_eq!(entry("log.retention.hours").value.as_deref(), Some("2"));

        let overrides = BTreeMap::from([("segment.bytes".to_owned(), "2048".to_owned())]);
        let topic = config.describe_topic(&overrides);
        let topic_entry = |name: &str| topic.iter().find(|c| c.name == name).unwrap().clone();
        let segment = topic_entry("segment.bytes");
        assert_eq!(segment.source, ConfigSource::DynamicTopic);
        assert_eq!(
            segment.synonyms,
            vec![
                synonym("segment.bytes", "2048", ConfigSource::DynamicTopic),
                synonym("log.segment.bytes", "1073741824", ConfigSource::Default),
            ]
        );
        assert_eq!(
            topic_entry("retention.ms").source,
            ConfigSource::StaticBroker
        );
        assert_eq!(
            topic_entry("retention.ms").value.as_deref(),
            Some("7200000")
        );
        assert_eq!(topic_entry("cleanup.policy").source, ConfigSource::Default);
        assert_eq!(topic_entry("cleanup.policy").config_type, ConfigType::List);
        let names: Vec<&str> = topic.iter().map(|c| c.name).collect();
        let table: Vec<&str> = TOPIC_KEYS.iter().map(|key| key.name).collect();
        assert_eq!(names, table);
    }

    #[test]
    fn dynamic_configs_layer_over_static_ones_as_kafka_merges_them() {
        let mut config = BrokerConfig::default();
        config.set("node.id", "3").unwrap();
        config.set("log.retention.hours", "2").unwrap();
        let scopes = |entries: &[(&str, &str, &str)]| {
            let mut scopes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (scope, key, value) in entries {
                scopes
                    .entry(scope.to_string())
                    .or_default()
                    .insert(key.to_string(), value.to_string());
            }
            scopes
        };
        // The default applies; another broker's scope does not.
        let effective = config.with_dynamic(&scopes(&[
            ("", "log.retention.ms", "1000"),
            ("4", "log.retention.ms", "5"),
        ]));
        assert_eq!(effective.topic_defaults["retention.ms"], "1000");
        // This broker's wins over the default.
        let effective = config.with_dynamic(&scopes(&[
            ("", "log.retention.ms", "1000"),
            ("3", "log.retention.ms", "2000"),
            ("3", "log.segment.bytes", "4096"),
        ]));
        assert_eq!(effective.topic_defaults["retention.ms"], "2000");
        assert_eq!(effective.topic_defaults["segment.bytes"], "4096");
        let described = effective.describe();
        let retention = described
            .iter()
            .find(|c| c.name == "log.retention.ms")
            .unwrap();
        assert_eq!(retention.source, ConfigSource::DynamicBroker);
        let sources: Vec<ConfigSource> = retention.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(
            sources,
            vec![
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::StaticBroker,
                ConfigSource::Default,
                ConfigSource::Default,
            ]
        );
        // A synonym does not beat a stronger key set in another layer.
        let effective = config.with_dynamic(&scopes(&[
            ("", "log.retention.ms", "1000"),
            ("3", "log.retention.hours", "5"),
        ]));
        assert_eq!(effective.topic_defaults["retention.ms"], "1000");
        // Read-only keys stored by mistake are skipped.
        let effective = config.with_dynamic(&scopes(&[("", "num.partitions", "9")]));
        assert_eq!(effective.num_partitions, config.num_partitions);
        assert_eq!(
            effective.describe_broker_defaults().len(),
            1,
            "the empty name describes what is set there"
        );
    }

    fn synonym(name: &'static str, value: &str, source: ConfigSource) -> ConfigSynonym {
        ConfigSynonym {
            name,
            value: Some(value.to_owned()),
            source,
        }
    }

    #[test]
    fn topic_configs_are_checked_by_their_broker_keys() {
        assert!(validate_topic_config("segment.bytes", "13").is_err());
        assert!(validate_topic_config("segment.bytes", "2147483648").is_err());
        assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
        assert!(validate_topic_config("compression.type", "gzip").is_err());
        assert!(validate_topic_config("unclean.leader.election.enable", "yes").is_err());
        assert_eq!(validate_topic_config("retention.ms", " -1 ").unwrap(), "-1");
        match validate_topic_config("min.insync.replicas", "0") {
            Err(ConfigError::InvalidValue { key, .. }) => assert_eq!(key, "min.insync.replicas"),
            other => panic!("{other:?}"),
        }
        let mut config = BrokerConfig::default();
        match config.set("log.segment.bytes", "1") {
            Err(ConfigError::InvalidValue { key, reason, .. }) => {
                assert_eq!(
                    (key.as_str(), reason.as_str()),
                    ("log.segment.bytes", "must be at least 14")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
