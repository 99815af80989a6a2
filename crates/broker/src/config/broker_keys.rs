//! Every broker setting, declared once: its Kafka name, type, default, accepted values, Kafka's
//! update mode, a sentence of documentation, the `strom server` flag that also sets it, and how
//! its value lands in [`BrokerConfig`]. `BrokerConfig::set`, `BrokerConfig::default`, broker
//! DescribeConfigs and the README's configuration table all read [`BROKER_KEYS`].
//! (Kafka's `ConfigDef` built by `KafkaConfig`, Redpanda's `config::configuration`.)

use std::net::SocketAddr;
use std::path::PathBuf;

use strom_security::authorizer::AuthorizerConfig;
use strom_types::limits::PARTITIONS_PER_TOPIC_MAX;

use super::listeners::{self, STANDARD_AUTHORIZER};
use super::topic_keys::{TopicKey, TOPIC_KEYS};
use super::value::{self, ConfigType, UpdateMode, Validator, Value};
use super::{invalid, BrokerConfig, ConfigError};

/// One broker setting (Kafka's `ConfigDef.ConfigKey`, Redpanda's `config::property`).
pub struct BrokerKey {
    /// Kafka's name for it.
    pub name: &'static str,
    pub config_type: ConfigType,
    /// As Kafka prints it; `None` is Kafka's null (no value unless given).
    pub default: Option<&'static str>,
    pub validator: Validator,
    /// Whether AlterConfigs can change it at runtime: Kafka's update mode where Strom applies
    /// the key without a restart, read-only where it does not (yet).
    pub update_mode: UpdateMode,
    /// One sentence, for DescribeConfigs and the README.
    pub documentation: &'static str,
    /// The `strom server` flag that sets it too.
    pub flag: Option<&'static str>,
    pub access: Access,
}

/// Where a broker setting's value lives.
pub enum Access {
    /// In a field of [`BrokerConfig`]: `apply` lands a checked value there, `read` shows the
    /// current one as DescribeConfigs does.
    Field {
        apply: fn(&mut BrokerConfig, &Value),
        read: fn(&BrokerConfig) -> Option<String>,
    },
    /// In `BrokerConfig::topic_defaults`: the key is the broker-wide default of the topic config
    /// whose `broker_default_key` it is (`log.segment.bytes` for `segment.bytes`).
    TopicDefault,
    /// Another name for the key `of`, in other units or an older spelling
    /// (`log.retention.hours` for `log.retention.ms`). Kafka's precedence: `of` wins over its
    /// synonyms, and a synonym over those listed after it in [`BROKER_KEYS`]. `convert` turns
    /// the value into `of`'s terms. It reads back as given, or as its default.
    Synonym {
        of: &'static str,
        convert: fn(&Value) -> Value,
    },
}

const HOUR_MS: i64 = 3_600_000;
/// Kafka's "no limit" for a rate: `Long.MAX_VALUE`.
const NO_RATE_LIMIT: &str = "9223372036854775807";
const MINUTE_MS: i64 = 60_000;

/// What most keys share: Kafka fixes them at start and no flag sets them. An entry states the
/// rest; a test checks that none is left empty.
const FIXED: BrokerKey = BrokerKey {
    name: "",
    config_type: ConfigType::String,
    default: None,
    validator: Validator::Any,
    update_mode: UpdateMode::ReadOnly,
    documentation: "",
    flag: None,
    access: Access::TopicDefault,
};

/// Every broker setting, in the order the README lists them.
pub const BROKER_KEYS: &[BrokerKey] = &[
    // -- this node ----------------------------------------------------------------------------
    BrokerKey {
        name: "node.id",
        config_type: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(0),
        documentation: "This node's id, unique in the cluster.",
        flag: Some("--node-id"),
        access: Access::Field {
            apply: |c, v| c.node_id = v.number() as i32,
            read: |c| Some(c.node_id.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "broker.id",
        config_type: ConfigType::Int,
        validator: Validator::AtLeast(0),
        documentation: "The older name of `node.id`.",
        access: Access::Synonym {
            of: "node.id",
            convert: Value::clone,
        },
        ..FIXED
    },
    BrokerKey {
        name: "process.roles",
        config_type: ConfigType::List,
        default: Some("broker,controller"),
        validator: Validator::Custom {
            check: |text| parse_roles(text).map(drop),
            valid: "[broker,controller], [broker]",
        },
        documentation: "`broker,controller` for a node that votes in the metadata quorum, \
                        `broker` for one that only follows it (a Raft learner).",
        access: Access::Field {
            apply: |c, v| c.cluster.controller = parse_roles(&v.to_string()).expect("checked"),
            read: |c| {
                let roles = match c.cluster.controller {
                    true => "broker,controller",
                    false => "broker",
                };
                Some(roles.to_owned())
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "listeners",
        config_type: ConfigType::List,
        default: Some("PLAINTEXT://127.0.0.1:9092"),
        validator: Validator::Custom {
            check: |text| listeners::parse_listeners(text).map(drop),
            valid: "NAME://IP:PORT,...",
        },
        update_mode: UpdateMode::ReadOnly,
        documentation: "Where the broker accepts connections: named listeners, each with its \
                        security protocol from `listener.security.protocol.map` (a bare \
                        HOST:PORT is PLAINTEXT).",
        flag: Some("--listen"),
        access: Access::Field {
            apply: |c, v| {
                let listeners = listeners::parse_listeners(&v.to_string()).expect("checked");
                c.listen = listeners[0].1;
                c.listener_settings.listeners = listeners;
            },
            read: |c| {
                let listeners: Vec<String> = (c.listener_settings.listeners.iter())
                    .map(|(name, address)| format!("{name}://{address}"))
                    .collect();
                Some(listeners.join(","))
            },
        },
    },
    BrokerKey {
        name: "advertised.listeners",
        config_type: ConfigType::List,
        validator: Validator::Custom {
            check: |text| listeners::parse_endpoints(text).map(drop),
            valid: "NAME://HOST:PORT,...",
        },
        documentation: "The addresses clients are told to connect to, per listener; a listener \
                        without one advertises its own address, a wildcard host replaced by \
                        loopback.",
        flag: Some("--advertise"),
        access: Access::Field {
            apply: |c, v| {
                let endpoints = listeners::parse_endpoints(&v.to_string()).expect("checked");
                c.advertise = (endpoints[0].1.clone(), endpoints[0].2);
                c.listener_settings.advertised = endpoints;
            },
            read: |c| {
                let advertised = &c.listener_settings.advertised;
                if advertised.is_empty() {
                    let (host, port) = &c.advertise;
                    return Some(format!("PLAINTEXT://{host}:{port}"));
                }
                let endpoints: Vec<String> = (advertised.iter())
                    .map(|(name, host, port)| format!("{name}://{host}:{port}"))
                    .collect();
                Some(endpoints.join(","))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "listener.security.protocol.map",
        config_type: ConfigType::String,
        default: Some(
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ),
        validator: Validator::Custom {
            check: |text| listeners::parse_protocol_map(text).map(drop),
            valid: "NAME:PROTOCOL,...",
        },
        documentation: "Each listener name's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT \
                        or SASL_SSL.",
        access: Access::Field {
            apply: |c, v| {
                c.listener_settings.protocol_map =
                    listeners::parse_protocol_map(v.text()).expect("checked")
            },
            read: |c| {
                let map: Vec<String> = (c.listener_settings.protocol_map.iter())
                    .map(|(name, protocol)| format!("{name}:{}", protocol.name()))
                    .collect();
                Some(map.join(","))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "inter.broker.listener.name",
        config_type: ConfigType::String,
        documentation: "The listener other brokers fetch from and send requests to; without it, \
                        the first listener that is not a controller listener.",
        access: Access::Field {
            apply: |c, v| c.listener_settings.inter_broker = Some(v.text().to_ascii_uppercase()),
            read: |c| c.listener_settings.inter_broker.clone(),
        },
        ..FIXED
    },
    BrokerKey {
        name: "controller.listener.names",
        config_type: ConfigType::List,
        documentation: "The listeners of `listeners` that serve the metadata quorum instead of \
                        clients; the first one's address and protocol are this node's \
                        controller transport (SSL gives it mutual TLS).",
        access: Access::Field {
            apply: |c, v| {
                let Value::List(names) = v else { return };
                c.listener_settings.controller_names =
                    names.iter().map(|name| name.to_ascii_uppercase()).collect();
            },
            read: |c| {
                let names = &c.listener_settings.controller_names;
                (!names.is_empty()).then(|| names.join(","))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "log.dirs",
        config_type: ConfigType::String,
        default: Some("./strom-data"),
        validator: Validator::Custom {
            check: |text| first_dir(text).map(drop),
            valid: "DIR",
        },
        documentation: "The directory of partition logs and metadata (the first of a list: \
                        Strom keeps one).",
        flag: Some("--data-dir"),
        access: Access::Field {
            apply: |c, v| c.data_dir = first_dir(v.text()).expect("checked"),
            read: |c| Some(c.data_dir.display().to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "log.dir",
        config_type: ConfigType::String,
        validator: Validator::Custom {
            check: |text| first_dir(text).map(drop),
            valid: "DIR",
        },
        documentation: "The older, single-directory name of `log.dirs`.",
        access: Access::Synonym {
            of: "log.dirs",
            convert: Value::clone,
        },
        ..FIXED
    },
    // -- the metadata quorum ------------------------------------------------------------------
    BrokerKey {
        name: "controller.quorum.voters",
        config_type: ConfigType::List,
        default: Some(""),
        validator: Validator::Custom {
            check: |text| voters(text).map(drop),
            valid: "ID@HOST:PORT,...",
        },
        documentation: "The metadata quorum's voters; empty makes this node a cluster of its \
                        own.",
        flag: Some("--controller-quorum"),
        access: Access::Field {
            apply: |c, v| c.cluster.voters = voters(&v.to_string()).expect("checked"),
            read: |c| {
                let voters: Vec<String> = (c.cluster.voters.iter())
                    .map(|(id, address)| format!("{id}@{address}"))
                    .collect();
                Some(voters.join(","))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "controller.listeners",
        config_type: ConfigType::String,
        validator: Validator::Custom {
            check: |text| listen_address(text).map(drop),
            valid: "[PLAINTEXT://]IP:PORT",
        },
        documentation: "Where this node serves the other controllers (Strom's key: Kafka \
                        names a CONTROLLER listener in `listeners`).",
        flag: Some("--controller-listen"),
        access: Access::Field {
            apply: |c, v| {
                c.cluster.controller_listen = Some(listen_address(v.text()).expect("checked"))
            },
            read: |c| {
                c.cluster
                    .controller_listen
                    .map(|address| address.to_string())
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "admin.listen",
        config_type: ConfigType::String,
        validator: Validator::Custom {
            check: |text| listen_address(text).map(drop),
            valid: "IP:PORT",
        },
        documentation: "Where the admin listener serves `/metrics`, `/v1/health/live`, \
                        `/v1/health/ready` and the web console (Strom's key). Default: the \
                        first client listener's host, port 9644; a default port already in \
                        use is logged and skipped, a given one stops the start.",
        flag: Some("--admin-listen"),
        access: Access::Field {
            apply: |c, v| c.admin_listen = Some(listen_address(v.text()).expect("checked")),
            read: |c| c.admin_listen.map(|address| address.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "schema.registry.listen",
        config_type: ConfigType::String,
        validator: Validator::Custom {
            check: |text| listen_address(text).map(drop),
            valid: "IP:PORT",
        },
        documentation: "Where the schema registry (Confluent Schema Registry's REST API) is \
                        served (Strom's key). Default: the first client listener's host, port \
                        8081; a default port already in use is logged and skipped, a given one \
                        stops the start.",
        flag: Some("--schema-registry-listen"),
        access: Access::Field {
            apply: |c, v| {
                c.schema_registry_listen = Some(listen_address(v.text()).expect("checked"))
            },
            read: |c| c.schema_registry_listen.map(|address| address.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "admin.ssl.enable",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        validator: Validator::Any,
        documentation: "Serve the admin listener over HTTPS with the broker's keystore \
                        (`ssl.keystore.location`, `ssl.key.password`) (Strom's key).",
        access: Access::Field {
            apply: |c, v| c.admin_ssl = v.boolean(),
            read: |c| Some(c.admin_ssl.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "admin.authentication",
        config_type: ConfigType::String,
        default: Some("auto"),
        validator: Validator::Custom {
            check: |text| match text {
                "auto" | "none" | "basic" => Ok(()),
                _ => Err("must be auto, none or basic".to_owned()),
            },
            valid: "auto, none, basic",
        },
        documentation: "How the admin listener's `/metrics` and `/api/` know who asks: `basic` \
                        (HTTP Basic against the SCRAM users; ACLs apply: DESCRIBE on the \
                        cluster to read, ALTER to change), `none` (anonymous), `auto` (basic \
                        when an authorizer is configured). Health checks and the console's \
                        static pages need no login (Strom's key).",
        access: Access::Field {
            apply: |c, v| c.admin_authentication = v.text().to_owned(),
            read: |c| Some(c.admin_authentication.clone()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "log.format",
        config_type: ConfigType::String,
        default: Some("text"),
        validator: Validator::Custom {
            check: |text| match text {
                "text" | "json" => Ok(()),
                _ => Err("must be text or json".to_owned()),
            },
            valid: "text, json",
        },
        documentation: "How `strom server` writes its log to stderr: `text` (ANSI colours only \
                        on a terminal) or `json` (one object per line). Levels per module come \
                        from `STROM_LOG` and change at runtime through BROKER_LOGGER \
                        (IncrementalAlterConfigs) or `PUT /api/loggers` (Strom's key).",
        access: Access::Field {
            apply: |c, v| c.log_format_json = v.text() == "json",
            read: |c| Some(if c.log_format_json { "json" } else { "text" }.to_owned()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "controller.quorum.election.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("1000"),
        validator: Validator::AtLeast(20),
        documentation: "The metadata quorum's Raft election timeout (a cluster of one node \
                        uses at most 100).",
        access: Access::Field {
            apply: |c, v| c.cluster.election_timeout_ms = v.number() as u64,
            read: |c| Some(c.cluster.election_timeout_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "broker.rack",
        config_type: ConfigType::String,
        documentation: "This node's rack: a partition's replicas are spread over as many racks \
                        as there are.",
        access: Access::Field {
            apply: |c, v| c.cluster.rack = Some(v.text().to_owned()).filter(|r| !r.is_empty()),
            read: |c| c.cluster.rack.clone(),
        },
        ..FIXED
    },
    BrokerKey {
        name: "broker.session.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("9000"),
        validator: Validator::AtLeast(1),
        documentation: "A broker the controller has not heard from for this long is fenced.",
        access: Access::Field {
            apply: |c, v| c.cluster.broker_session_timeout_ms = v.number() as u64,
            read: |c| Some(c.cluster.broker_session_timeout_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "broker.heartbeat.interval.ms",
        config_type: ConfigType::Int,
        default: Some("2000"),
        validator: Validator::AtLeast(1),
        documentation: "How often a broker heartbeats to the controller.",
        access: Access::Field {
            apply: |c, v| c.cluster.broker_heartbeat_interval_ms = v.number() as u64,
            read: |c| Some(c.cluster.broker_heartbeat_interval_ms.to_string()),
        },
        ..FIXED
    },
    // -- topics ---------------------------------------------------------------------------------
    BrokerKey {
        name: "auto.create.topics.enable",
        config_type: ConfigType::Boolean,
        default: Some("true"),
        documentation: "Creates a topic that a Metadata or Produce request names but that does \
                        not exist.",
        access: Access::Field {
            apply: |c, v| c.auto_create_topics = v.boolean(),
            read: |c| Some(c.auto_create_topics.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "delete.topic.enable",
        config_type: ConfigType::Boolean,
        default: Some("true"),
        documentation: "Lets DeleteTopics delete topics.",
        access: Access::Field {
            apply: |c, v| c.delete_topic_enable = v.boolean(),
            read: |c| Some(c.delete_topic_enable.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "num.partitions",
        config_type: ConfigType::Int,
        default: Some("1"),
        validator: Validator::Between(1, PARTITIONS_PER_TOPIC_MAX as i64),
        documentation: "Partitions of an auto-created topic, and of CreateTopics asking for the \
                        default (-1).",
        access: Access::Field {
            apply: |c, v| c.num_partitions = v.number() as i32,
            read: |c| Some(c.num_partitions.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "default.replication.factor",
        config_type: ConfigType::Int,
        default: Some("1"),
        validator: Validator::Between(1, i16::MAX as i64),
        documentation: "Replicas of an auto-created topic (capped at the live brokers), and of \
                        CreateTopics asking for the default (-1).",
        access: Access::Field {
            apply: |c, v| c.default_replication_factor = v.number() as i16,
            read: |c| Some(c.default_replication_factor.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "message.max.bytes",
        config_type: ConfigType::Int,
        default: Some("1048588"),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "The largest record batch a topic accepts.",
        ..FIXED
    },
    BrokerKey {
        name: "log.segment.bytes",
        config_type: ConfigType::Int,
        default: Some("1073741824"),
        validator: Validator::AtLeast(14),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How large a segment file grows before the next one is started.",
        ..FIXED
    },
    BrokerKey {
        name: "log.roll.ms",
        config_type: ConfigType::Long,
        default: Some("604800000"),
        validator: Validator::AtLeast(1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How old a segment's first record may get before the next segment is \
                        started.",
        ..FIXED
    },
    BrokerKey {
        name: "log.roll.hours",
        config_type: ConfigType::Int,
        default: Some("168"),
        validator: Validator::AtLeast(1),
        documentation: "`log.roll.ms` in hours.",
        access: Access::Synonym {
            of: "log.roll.ms",
            convert: |v| Value::Number(v.number() * HOUR_MS),
        },
        update_mode: UpdateMode::ClusterWide,
        ..FIXED
    },
    BrokerKey {
        name: "log.retention.ms",
        config_type: ConfigType::Long,
        default: Some("604800000"),
        validator: Validator::AtLeast(-1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How long a segment is kept once its newest record is this old; -1 \
                        keeps segments forever.",
        ..FIXED
    },
    BrokerKey {
        name: "log.retention.minutes",
        config_type: ConfigType::Int,
        validator: Validator::AtLeast(-1),
        documentation: "`log.retention.ms` in minutes.",
        access: Access::Synonym {
            of: "log.retention.ms",
            convert: |v| Value::Number((v.number() * MINUTE_MS).max(-1)),
        },
        update_mode: UpdateMode::ClusterWide,
        ..FIXED
    },
    BrokerKey {
        name: "log.retention.hours",
        config_type: ConfigType::Int,
        default: Some("168"),
        validator: Validator::AtLeast(-1),
        documentation: "`log.retention.ms` in hours.",
        access: Access::Synonym {
            of: "log.retention.ms",
            convert: |v| Value::Number((v.number() * HOUR_MS).max(-1)),
        },
        update_mode: UpdateMode::ClusterWide,
        ..FIXED
    },
    BrokerKey {
        name: "log.retention.bytes",
        config_type: ConfigType::Long,
        default: Some("-1"),
        validator: Validator::AtLeast(-1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How large a partition may grow before its oldest segments are deleted; \
                        -1 for no limit.",
        ..FIXED
    },
    BrokerKey {
        name: "log.retention.check.interval.ms",
        config_type: ConfigType::Long,
        default: Some("300000"),
        validator: Validator::AtLeast(1),
        documentation: "How often retention looks for segments to delete.",
        access: Access::Field {
            apply: |c, v| c.retention_check_interval_ms = v.number() as u64,
            read: |c| Some(c.retention_check_interval_ms.to_string()),
        },
        update_mode: UpdateMode::ClusterWide,
        ..FIXED
    },
    BrokerKey {
        name: "log.index.interval.bytes",
        config_type: ConfigType::Int,
        default: Some("4096"),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "Bytes of records between two entries of the sparse offset and time \
                        indexes.",
        ..FIXED
    },
    BrokerKey {
        name: "log.message.timestamp.type",
        config_type: ConfigType::String,
        default: Some("CreateTime"),
        validator: Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        update_mode: UpdateMode::ClusterWide,
        documentation: "`CreateTime` keeps the producer's record timestamps, `LogAppendTime` \
                        stamps each batch with the broker's clock as it is appended.",
        ..FIXED
    },
    BrokerKey {
        name: "log.cleanup.policy",
        config_type: ConfigType::List,
        default: Some("delete"),
        validator: Validator::EachOf(&["compact", "delete"]),
        update_mode: UpdateMode::ClusterWide,
        documentation: "`delete` drops old segments by retention, `compact` keeps each key's \
                        latest record (and refuses records without a key); both may be given.",
        ..FIXED
    },
    BrokerKey {
        name: "log.cleaner.backoff.ms",
        config_type: ConfigType::Long,
        default: Some("15000"),
        validator: Validator::AtLeast(1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How often compacted topics are checked for cleaning.",
        access: Access::Field {
            apply: |c, v| c.cleaner_backoff_ms = v.number() as u64,
            read: |c| Some(c.cleaner_backoff_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "log.cleaner.min.cleanable.ratio",
        config_type: ConfigType::Double,
        default: Some("0.5"),
        validator: Validator::Fraction(0.0, 1.0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "The share of a log not yet compacted that starts a compaction.",
        ..FIXED
    },
    BrokerKey {
        name: "log.cleaner.delete.retention.ms",
        config_type: ConfigType::Long,
        default: Some("86400000"),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "How long a tombstone survives compaction, so that readers see the \
                        delete.",
        ..FIXED
    },
    BrokerKey {
        name: "log.cleaner.min.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: Some("0"),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "A record younger than this is not compacted away.",
        ..FIXED
    },
    BrokerKey {
        name: "log.cleaner.max.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "A record older than this makes its log due for compaction whatever \
                        its dirty share.",
        ..FIXED
    },
    BrokerKey {
        name: "compression.type",
        config_type: ConfigType::String,
        default: Some("producer"),
        validator: Validator::Custom {
            check: |text| match text {
                "producer" => Ok(()),
                _ => Err(
                    "only 'producer' (store batches as the producer compressed them) \
                          is supported"
                        .to_owned(),
                ),
            },
            valid: "[producer]",
        },
        update_mode: UpdateMode::ClusterWide,
        documentation: "How batches are stored: `producer` keeps them as the producer \
                        compressed them.",
        ..FIXED
    },
    BrokerKey {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        default: Some("1"),
        validator: Validator::AtLeast(1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "In-sync replicas an acks=all produce needs.",
        ..FIXED
    },
    BrokerKey {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        update_mode: UpdateMode::ClusterWide,
        documentation: "Whether a partition whose in-sync replicas are all down elects a live \
                        out-of-sync one (losing what only the others had). Elections read the \
                        topic's value, else the cluster-wide dynamic default (AlterConfigs on \
                        the empty broker name), not a value given at start.",
        ..FIXED
    },
    // -- replication ----------------------------------------------------------------------------
    BrokerKey {
        name: "replica.lag.time.max.ms",
        config_type: ConfigType::Long,
        default: Some("30000"),
        validator: Validator::AtLeast(1),
        documentation: "A follower not caught up for this long leaves the in-sync replicas.",
        access: Access::Field {
            apply: |c, v| c.cluster.replica_lag_time_max_ms = v.number() as u64,
            read: |c| Some(c.cluster.replica_lag_time_max_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "replica.fetch.wait.max.ms",
        config_type: ConfigType::Int,
        default: Some("500"),
        validator: Validator::AtLeast(0),
        documentation: "How long a follower's fetch waits at the leader for new records.",
        access: Access::Field {
            apply: |c, v| c.cluster.replica_fetch_wait_max_ms = v.number() as u64,
            read: |c| Some(c.cluster.replica_fetch_wait_max_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "replica.fetch.max.bytes",
        config_type: ConfigType::Int,
        default: Some("1048576"),
        validator: Validator::AtLeast(1),
        documentation: "Bytes a follower fetches per partition and request.",
        access: Access::Field {
            apply: |c, v| c.cluster.replica_fetch_max_bytes = v.number() as usize,
            read: |c| Some(c.cluster.replica_fetch_max_bytes.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "leader.replication.throttled.rate",
        config_type: ConfigType::Long,
        default: Some(NO_RATE_LIMIT),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "Bytes per second a leader sends to the replicas its topics list in \
                        leader.replication.throttled.replicas while they are out of sync (a \
                        reassignment's moves).",
        access: Access::Field {
            apply: |c, v| c.cluster.leader_replication_throttled_rate = v.number() as u64,
            read: |c| {
                Some(
                    c.cluster
                        .leader_replication_throttled_rate
                        .min(i64::MAX as u64)
                        .to_string(),
                )
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "follower.replication.throttled.rate",
        config_type: ConfigType::Long,
        default: Some(NO_RATE_LIMIT),
        validator: Validator::AtLeast(0),
        update_mode: UpdateMode::ClusterWide,
        documentation: "Bytes per second a follower fetches for the replicas its topics list \
                        in follower.replication.throttled.replicas while they are out of sync.",
        access: Access::Field {
            apply: |c, v| c.cluster.follower_replication_throttled_rate = v.number() as u64,
            read: |c| {
                Some(
                    c.cluster
                        .follower_replication_throttled_rate
                        .min(i64::MAX as u64)
                        .to_string(),
                )
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "auto.leader.rebalance.enable",
        config_type: ConfigType::Boolean,
        default: Some("true"),
        documentation: "The active controller hands leadership back to preferred replicas \
                        every `leader.imbalance.check.interval.seconds` where a broker's \
                        imbalance exceeds `leader.imbalance.per.broker.percentage`.",
        access: Access::Field {
            apply: |c, v| c.cluster.leader_balance.enabled = v.boolean(),
            read: |c| Some(c.cluster.leader_balance.enabled.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "leader.imbalance.per.broker.percentage",
        config_type: ConfigType::Int,
        default: Some("10"),
        documentation: "The share (in percent) of a broker's preferred partitions that may \
                        be led elsewhere before the controller rebalances them.",
        access: Access::Field {
            apply: |c, v| c.cluster.leader_balance.imbalance_percentage_max = v.number() as i32,
            read: |c| {
                Some(
                    c.cluster
                        .leader_balance
                        .imbalance_percentage_max
                        .to_string(),
                )
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "leader.imbalance.check.interval.seconds",
        config_type: ConfigType::Long,
        default: Some("300"),
        validator: Validator::AtLeast(1),
        documentation: "How often the active controller checks the leaders' balance.",
        access: Access::Field {
            apply: |c, v| {
                c.cluster.leader_balance.check_interval_ms =
                    (v.number() as u64).saturating_mul(1000)
            },
            read: |c| Some((c.cluster.leader_balance.check_interval_ms / 1000).to_string()),
        },
        ..FIXED
    },
    // -- capacity -------------------------------------------------------------------------------
    BrokerKey {
        name: "log.max.open.files",
        config_type: ConfigType::Int,
        validator: Validator::AtLeast(1),
        documentation: "Segment files kept open at once; files beyond it are closed while \
                        idle and reopened on use. Unset: half the process's open-file limit \
                        (raised to its hard limit at start).",
        access: Access::Field {
            apply: |c, v| c.log_open_files_max = Some(v.number() as usize),
            read: |c| c.log_open_files_max.map(|n| n.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "max.broker.partitions",
        config_type: ConfigType::Int,
        validator: Validator::AtLeast(1),
        documentation: "Partition replicas one broker may host (KIP-578); CreateTopics and \
                        CreatePartitions beyond it are refused. Unset: 16 per open file of \
                        `log.max.open.files`, within 256 KiB each of half the memory.",
        access: Access::Field {
            apply: |c, v| c.broker_partitions_max = Some(v.number() as usize),
            read: |c| c.broker_partitions_max.map(|n| n.to_string()),
        },
        ..FIXED
    },
    // -- connections ----------------------------------------------------------------------------
    BrokerKey {
        name: "socket.request.max.bytes",
        config_type: ConfigType::Int,
        default: Some("104857600"),
        validator: Validator::AtLeast(1),
        documentation: "The largest request frame, checked before it is read into memory.",
        access: Access::Field {
            apply: |c, v| c.request_bytes_max = v.number() as usize,
            read: |c| Some(c.request_bytes_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "max.connections",
        config_type: ConfigType::Int,
        validator: Validator::AtLeast(1),
        update_mode: UpdateMode::ClusterWide,
        documentation: "Connections beyond this many are closed at once; lowered at runtime, \
                        it refuses new ones and keeps those open. Unset: the \
                        process's open-file limit less `log.max.open.files` and 256 for the \
                        quorum and files opened briefly.",
        access: Access::Field {
            apply: |c, v| c.connections_max = Some(v.number() as usize),
            read: |c| c.connections_max.map(|n| n.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "connections.max.idle.ms",
        config_type: ConfigType::Long,
        default: Some("600000"),
        validator: Validator::AtLeast(1),
        documentation: "A connection idle this long is closed.",
        access: Access::Field {
            apply: |c, v| c.connection_idle_ms_max = v.number() as u64,
            read: |c| Some(c.connection_idle_ms_max.to_string()),
        },
        ..FIXED
    },
    // -- consumer groups ------------------------------------------------------------------------
    BrokerKey {
        name: "offsets.topic.num.partitions",
        config_type: ConfigType::Int,
        default: Some("50"),
        validator: Validator::Between(1, PARTITIONS_PER_TOPIC_MAX as i64),
        documentation: "Partitions of `__consumer_offsets`, fixed when it is created.",
        access: Access::Field {
            apply: |c, v| c.offsets_topic_partitions = v.number() as i32,
            read: |c| Some(c.offsets_topic_partitions.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "offsets.topic.replication.factor",
        config_type: ConfigType::Short,
        default: Some("3"),
        validator: Validator::AtLeast(1),
        documentation: "Replicas of `__consumer_offsets`, capped at the number of voters when \
                        it is created.",
        access: Access::Field {
            apply: |c, v| c.cluster.offsets_topic_replication_factor = v.number() as i16,
            read: |c| Some(c.cluster.offsets_topic_replication_factor.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "offsets.retention.minutes",
        config_type: ConfigType::Int,
        default: Some("10080"),
        validator: Validator::AtLeast(1),
        documentation: "The committed offsets of a group left empty expire after this long.",
        access: Access::Field {
            apply: |c, v| c.group.offsets_retention_ms = v.number() * MINUTE_MS,
            read: |c| Some((c.group.offsets_retention_ms / MINUTE_MS).to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "offset.metadata.max.bytes",
        config_type: ConfigType::Int,
        default: Some("4096"),
        validator: Validator::AtLeast(0),
        documentation: "The longest metadata string an offset commit may carry.",
        access: Access::Field {
            apply: |c, v| c.group.offset_metadata_bytes_max = v.number() as usize,
            read: |c| Some(c.group.offset_metadata_bytes_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.initial.rebalance.delay.ms",
        config_type: ConfigType::Int,
        default: Some("3000"),
        validator: Validator::AtLeast(0),
        documentation: "How long the first rebalance of an empty group waits for more members.",
        access: Access::Field {
            apply: |c, v| c.group.initial_rebalance_delay_ms = v.number(),
            read: |c| Some(c.group.initial_rebalance_delay_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.min.session.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("6000"),
        validator: Validator::AtLeast(1),
        documentation: "The shortest session timeout a classic-protocol member may ask for.",
        access: Access::Field {
            apply: |c, v| c.group.session_timeout_ms_min = v.number() as i32,
            read: |c| Some(c.group.session_timeout_ms_min.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.max.session.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("1800000"),
        validator: Validator::AtLeast(1),
        documentation: "The longest session timeout a classic-protocol member may ask for.",
        access: Access::Field {
            apply: |c, v| c.group.session_timeout_ms_max = v.number() as i32,
            read: |c| Some(c.group.session_timeout_ms_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.max.size",
        config_type: ConfigType::Int,
        default: Some("2147483647"),
        validator: Validator::AtLeast(1),
        documentation: "The most members a classic-protocol group admits.",
        access: Access::Field {
            apply: |c, v| c.group.members_max = v.number() as usize,
            read: |c| Some(c.group.members_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.consumer.session.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("45000"),
        validator: Validator::AtLeast(1),
        documentation: "A KIP-848 member not heard from for this long leaves its group.",
        access: Access::Field {
            apply: |c, v| c.consumer_group.session_timeout_ms = v.number() as i32,
            read: |c| Some(c.consumer_group.session_timeout_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.consumer.heartbeat.interval.ms",
        config_type: ConfigType::Int,
        default: Some("5000"),
        validator: Validator::AtLeast(1),
        documentation: "How often KIP-848 members are told to heartbeat.",
        access: Access::Field {
            apply: |c, v| c.consumer_group.heartbeat_interval_ms = v.number() as i32,
            read: |c| Some(c.consumer_group.heartbeat_interval_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "group.consumer.max.size",
        config_type: ConfigType::Int,
        default: Some("2147483647"),
        validator: Validator::AtLeast(1),
        documentation: "The most members a KIP-848 group admits.",
        access: Access::Field {
            apply: |c, v| c.consumer_group.members_max = v.number() as usize,
            read: |c| Some(c.consumer_group.members_max.to_string()),
        },
        ..FIXED
    },
    // -- transactions ---------------------------------------------------------------------------
    BrokerKey {
        name: "transaction.state.log.num.partitions",
        config_type: ConfigType::Int,
        default: Some("50"),
        validator: Validator::Between(1, PARTITIONS_PER_TOPIC_MAX as i64),
        documentation: "Partitions of `__transaction_state`, fixed when it is created (on the \
                        first FindCoordinator for a transactional id).",
        access: Access::Field {
            apply: |c, v| c.transaction.state_log_partitions = v.number() as i32,
            read: |c| Some(c.transaction.state_log_partitions.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "transaction.state.log.replication.factor",
        config_type: ConfigType::Short,
        default: Some("3"),
        validator: Validator::AtLeast(1),
        documentation: "Replicas of `__transaction_state`, capped at the number of voters when \
                        it is created.",
        access: Access::Field {
            apply: |c, v| c.cluster.transaction_state_replication_factor = v.number() as i16,
            read: |c| Some(c.cluster.transaction_state_replication_factor.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "transaction.state.log.min.isr",
        config_type: ConfigType::Int,
        default: Some("2"),
        validator: Validator::AtLeast(1),
        documentation: "`min.insync.replicas` of `__transaction_state`, capped at its \
                        replication factor.",
        access: Access::Field {
            apply: |c, v| c.cluster.transaction_state_min_isr = v.number() as i32,
            read: |c| Some(c.cluster.transaction_state_min_isr.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "transaction.max.timeout.ms",
        config_type: ConfigType::Int,
        default: Some("900000"),
        validator: Validator::AtLeast(1),
        documentation: "The longest `transaction.timeout.ms` a producer may ask for; longer \
                        is refused with INVALID_TRANSACTION_TIMEOUT.",
        access: Access::Field {
            apply: |c, v| c.transaction.transaction_timeout_ms_max = v.number() as i32,
            read: |c| Some(c.transaction.transaction_timeout_ms_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "transactional.id.expiration.ms",
        config_type: ConfigType::Int,
        default: Some("604800000"),
        validator: Validator::AtLeast(1),
        documentation: "A transactional id with no transaction open and no request for this \
                        long is forgotten.",
        access: Access::Field {
            apply: |c, v| c.transaction.transactional_id_expiration_ms = v.number(),
            read: |c| Some(c.transaction.transactional_id_expiration_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        config_type: ConfigType::Int,
        default: Some("10000"),
        validator: Validator::AtLeast(1),
        documentation: "How often the coordinator aborts transactions past their timeout.",
        access: Access::Field {
            apply: |c, v| {
                c.transaction
                    .abort_timed_out_transaction_cleanup_interval_ms = v.number()
            },
            read: |c| {
                Some(
                    c.transaction
                        .abort_timed_out_transaction_cleanup_interval_ms
                        .to_string(),
                )
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "transaction.remove.expired.transaction.cleanup.interval.ms",
        config_type: ConfigType::Int,
        default: Some("3600000"),
        validator: Validator::AtLeast(1),
        documentation: "How often the coordinator looks for expired transactional ids.",
        access: Access::Field {
            apply: |c, v| c.transaction.remove_expired_transaction_cleanup_interval_ms = v.number(),
            read: |c| {
                Some(
                    c.transaction
                        .remove_expired_transaction_cleanup_interval_ms
                        .to_string(),
                )
            },
        },
        ..FIXED
    },
    // -- security ------------------------------------------------------------------------------
    BrokerKey {
        name: "ssl.keystore.type",
        default: Some("PEM"),
        validator: Validator::OneOf(&["PEM"]),
        update_mode: UpdateMode::PerBroker,
        documentation: "The keystore's format: Strom reads PEM files (KIP-651), not JKS or \
                        PKCS12.",
        access: Access::Field {
            apply: |_, _| {},
            read: |_| Some("PEM".to_owned()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.keystore.location",
        update_mode: UpdateMode::PerBroker,
        documentation: "A PEM file with this broker's private key and certificate chain, for \
                        SSL and SASL_SSL listeners and inter-broker TLS. Changed at runtime, \
                        new connections get the new certificate.",
        access: Access::Field {
            apply: |c, v| c.security.keystore_location = Some(v.text().into()),
            read: |c| (c.security.keystore_location.as_ref()).map(|p| p.display().to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.key.password",
        config_type: ConfigType::Password,
        update_mode: UpdateMode::PerBroker,
        documentation: "The password of an encrypted (PKCS#8) private key in the keystore.",
        access: Access::Field {
            apply: |c, v| c.security.key_password = Some(v.text().to_owned()),
            read: |c| c.security.key_password.clone(),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.truststore.type",
        default: Some("PEM"),
        validator: Validator::OneOf(&["PEM"]),
        update_mode: UpdateMode::PerBroker,
        documentation: "The truststore's format: PEM CA certificates.",
        access: Access::Field {
            apply: |_, _| {},
            read: |_| Some("PEM".to_owned()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.truststore.location",
        update_mode: UpdateMode::PerBroker,
        documentation: "A PEM file of the CA certificates that client (and peer broker) \
                        certificates must chain to.",
        access: Access::Field {
            apply: |c, v| c.security.truststore_location = Some(v.text().into()),
            read: |c| (c.security.truststore_location.as_ref()).map(|p| p.display().to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.client.auth",
        default: Some("none"),
        validator: Validator::OneOf(&["none", "requested", "required"]),
        documentation: "Whether TLS clients must (required) or may (requested) present a \
                        certificate; its subject DN becomes the principal.",
        access: Access::Field {
            apply: |c, v| c.security.client_auth = v.text().to_owned(),
            read: |c| Some(c.security.client_auth.clone()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.allow.dn.changes",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        documentation: "Lets a keystore changed at runtime hold a certificate of another \
                        subject (DN); otherwise such a change is refused.",
        access: Access::Field {
            apply: |c, v| c.security.allow_dn_changes = v.boolean(),
            read: |c| Some(c.security.allow_dn_changes.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.allow.san.changes",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        documentation: "Lets a keystore changed at runtime hold a certificate without some of \
                        the old one's subject alternative names; otherwise such a change is \
                        refused.",
        access: Access::Field {
            apply: |c, v| c.security.allow_san_changes = v.boolean(),
            read: |c| Some(c.security.allow_san_changes.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "ssl.principal.mapping.rules",
        default: Some("DEFAULT"),
        documentation: "Rules that turn a certificate's subject DN into a user name \
                        (RULE:pattern/replacement/[LU],...,DEFAULT).",
        access: Access::Field {
            apply: |c, v| c.security.principal_mapping_rules = v.text().to_owned(),
            read: |c| Some(c.security.principal_mapping_rules.clone()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "sasl.enabled.mechanisms",
        config_type: ConfigType::List,
        default: Some("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"),
        validator: Validator::EachOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]),
        documentation: "The SASL mechanisms SASL listeners offer; PLAIN checks passwords \
                        against the SCRAM credentials.",
        access: Access::Field {
            apply: |c, v| {
                let Value::List(names) = v else { return };
                c.security.sasl_mechanisms = names.clone();
            },
            read: |c| Some(c.security.sasl_mechanisms.join(",")),
        },
        ..FIXED
    },
    BrokerKey {
        name: "sasl.oauthbearer.jwks.endpoint.url",
        documentation: "Where OAUTHBEARER finds the keys that sign tokens: a JWKS at an \
                        https:// or file:// URL.",
        access: Access::Field {
            apply: |c, v| c.security.oauth_jwks_url = Some(v.text().to_owned()),
            read: |c| c.security.oauth_jwks_url.clone(),
        },
        ..FIXED
    },
    BrokerKey {
        name: "sasl.oauthbearer.expected.audience",
        config_type: ConfigType::List,
        documentation: "Audiences of which a token's `aud` must name one; empty checks none.",
        access: Access::Field {
            apply: |c, v| {
                let Value::List(names) = v else { return };
                c.security.oauth_audience = names.clone();
            },
            read: |c| {
                let audience = &c.security.oauth_audience;
                (!audience.is_empty()).then(|| audience.join(","))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "sasl.oauthbearer.expected.issuer",
        documentation: "The issuer a token's `iss` must be; unset checks none.",
        access: Access::Field {
            apply: |c, v| c.security.oauth_issuer = Some(v.text().to_owned()),
            read: |c| c.security.oauth_issuer.clone(),
        },
        ..FIXED
    },
    BrokerKey {
        name: "sasl.oauthbearer.sub.claim.name",
        default: Some("sub"),
        documentation: "The token claim whose value is the principal's name.",
        access: Access::Field {
            apply: |c, v| c.security.oauth_sub_claim = v.text().to_owned(),
            read: |c| Some(c.security.oauth_sub_claim.clone()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "connections.max.reauth.ms",
        config_type: ConfigType::Long,
        default: Some("0"),
        validator: Validator::AtLeast(0),
        documentation: "How long a SASL session lasts before the client must re-authenticate \
                        (KIP-368); 0 never asks.",
        access: Access::Field {
            apply: |c, v| c.security.reauth_ms_max = v.number() as u64,
            read: |c| Some(c.security.reauth_ms_max.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "connection.failed.authentication.delay.ms",
        config_type: ConfigType::Int,
        default: Some("100"),
        validator: Validator::AtLeast(0),
        documentation: "How long a failed login waits before its answer, to slow password \
                        guessing.",
        access: Access::Field {
            apply: |c, v| c.security.failed_authentication_delay_ms = v.number() as u64,
            read: |c| Some(c.security.failed_authentication_delay_ms.to_string()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "authorizer.class.name",
        config_type: ConfigType::Class,
        default: Some(""),
        validator: Validator::Custom {
            check: |text| match text {
                "" | STANDARD_AUTHORIZER => Ok(()),
                _ => Err(format!("Strom's authorizer is {STANDARD_AUTHORIZER}")),
            },
            valid: "[, org.apache.kafka.metadata.authorizer.StandardAuthorizer]",
        },
        documentation: "Turns ACL authorization on (Kafka's StandardAuthorizer); empty allows \
                        everything.",
        access: Access::Field {
            apply: |c, v| c.security.authorizer = v.text().to_owned(),
            read: |c| Some(c.security.authorizer.clone()),
        },
        ..FIXED
    },
    BrokerKey {
        name: "super.users",
        documentation: "Principals the authorizer allows everything, separated by semicolons \
                        (User:admin;User:CN=broker).",
        validator: Validator::Custom {
            check: |text| AuthorizerConfig::parse_super_users(text).map(drop),
            valid: "TYPE:NAME;...",
        },
        access: Access::Field {
            apply: |c, v| {
                c.security.super_users =
                    AuthorizerConfig::parse_super_users(v.text()).expect("checked")
            },
            read: |c| {
                let users = &c.security.super_users;
                (!users.is_empty()).then(|| users.join(";"))
            },
        },
        ..FIXED
    },
    BrokerKey {
        name: "allow.everyone.if.no.acl.found",
        config_type: ConfigType::Boolean,
        default: Some("false"),
        documentation: "Allows an operation on a resource no ACL names at all.",
        access: Access::Field {
            apply: |c, v| c.security.allow_if_no_acl = v.boolean(),
            read: |c| Some(c.security.allow_if_no_acl.to_string()),
        },
        ..FIXED
    },
];

/// The broker key of this name.
pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|key| key.name == name)
}

impl BrokerKey {
    /// Parses and checks a value for this key; the error names the key.
    pub fn parse(&self, text: &str) -> Result<Value, ConfigError> {
        value::parse(self.config_type, &self.validator, text)
            .map_err(|reason| invalid(self.name, text, reason))
    }

    /// The topic config this key is the broker-wide default of.
    pub fn topic_key(&self) -> Option<&'static TopicKey> {
        TOPIC_KEYS
            .iter()
            .find(|topic| topic.broker_default_key == self.name)
    }

    /// The key this one is a synonym of.
    pub fn synonym_of(&self) -> Option<&'static BrokerKey> {
        match self.access {
            Access::Synonym { of, .. } => {
                Some(broker_key(of).expect("a synonym names a key of the table"))
            }
            _ => None,
        }
    }

    /// This key and its synonyms, in Kafka's order of precedence (the key itself first), or for
    /// a synonym, itself and the synonyms that lose to it.
    pub fn precedence(&self) -> Vec<&'static BrokerKey> {
        let primary = self.synonym_of().map_or(self.name, |primary| primary.name);
        let group = BROKER_KEYS.iter().filter(|key| {
            key.name == primary || matches!(key.access, Access::Synonym { of, .. } if of == primary)
        });
        group.skip_while(|key| key.name != self.name).collect()
    }

    /// The keys whose value wins over this one's: for a synonym, the key it stands for and the
    /// synonyms listed before it; none for other keys.
    pub fn outranked_by(&self) -> Vec<&'static BrokerKey> {
        match self.synonym_of() {
            Some(primary) => (primary.precedence().into_iter())
                .take_while(|stronger| stronger.name != self.name)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Lands a checked value in `config`; for a synonym, in the key it stands for.
    pub(super) fn apply(&self, config: &mut BrokerConfig, value: &Value) {
        match &self.access {
            Access::Field { apply, .. } => apply(config, value),
            Access::TopicDefault => {
                let topic = self.topic_key().expect("a topic default has its topic key");
                (config.topic_defaults).insert(topic.name.to_owned(), value.to_string());
            }
            Access::Synonym { convert, .. } => {
                let primary = self.synonym_of().expect("a synonym");
                primary.apply(config, &convert(value));
            }
        }
    }

    /// The current value as DescribeConfigs shows it; `None` is Kafka's null.
    pub fn read(&self, config: &BrokerConfig) -> Option<String> {
        match &self.access {
            Access::Field { read, .. } => read(config),
            Access::TopicDefault => {
                let topic = self.topic_key().expect("a topic default has its topic key");
                config.topic_defaults.get(topic.name).cloned()
            }
            Access::Synonym { .. } => (config.dynamic.broker.get(self.name))
                .or_else(|| config.dynamic.default.get(self.name))
                .or_else(|| config.given.get(self.name))
                .cloned()
                .or_else(|| self.default.map(str::to_owned)),
        }
    }
}

/// `HOST:PORT` or `PLAINTEXT://HOST:PORT`, the first of a list.
fn host_port(value: &str) -> Result<(String, u16), String> {
    let first = value.split(',').next().unwrap_or_default().trim();
    let address = match first.split_once("://") {
        Some(("PLAINTEXT", address)) => address,
        Some((protocol, _)) => {
            return Err(format!(
                "security protocol {protocol} is not supported yet; use PLAINTEXT"
            ))
        }
        None => first,
    };
    let (host, port) = (address.rsplit_once(':')).ok_or("expected HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| "port must be 0-65535")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_owned(), port))
}

/// A listener to bind: its host must be an IP address (or localhost).
fn listen_address(value: &str) -> Result<SocketAddr, String> {
    let (host, port) = host_port(value)?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        &host
    };
    let ip: std::net::IpAddr = (host.parse())
        .map_err(|_| "the listen host must be an IP address or localhost".to_owned())?;
    Ok(SocketAddr::new(ip, port))
}

fn first_dir(value: &str) -> Result<PathBuf, String> {
    match value.split(',').next().unwrap_or_default().trim() {
        "" => Err("must name a directory".to_owned()),
        dir => Ok(PathBuf::from(dir)),
    }
}

/// `process.roles`: true when the node is a controller too.
fn parse_roles(value: &str) -> Result<bool, String> {
    let mut roles: Vec<&str> = value.split(',').map(str::trim).collect();
    roles.sort_unstable();
    match roles.as_slice() {
        ["broker", "controller"] => Ok(true),
        ["broker"] => Ok(false),
        _ => Err("Strom nodes are 'broker,controller' or 'broker'".to_owned()),
    }
}

/// `controller.quorum.voters`: `ID@HOST:PORT` separated by commas.
fn voters(value: &str) -> Result<Vec<(i32, String)>, String> {
    let mut voters = Vec::new();
    for voter in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, address) =
            (voter.split_once('@')).ok_or_else(|| format!("'{voter}' is not ID@HOST:PORT"))?;
        let id: i32 = (id.parse().ok())
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("'{id}' is not a node id"))?;
        let (host, port) =
            (address.rsplit_once(':')).ok_or_else(|| format!("'{address}' is not HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("'{address}' is not HOST:PORT"));
        }
        voters.push((id, address.to_owned()));
    }
    Ok(voters)
}

/// Parses `HOST:PORT` or Kafka's `PLAINTEXT://HOST:PORT` (the first listener of a list); the
/// error names `key`.
pub fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    host_port(value).map_err(|reason| invalid(key, value, reason))
}

/// Parses `controller.quorum.voters`: `ID@HOST:PORT` separated by commas; the error names `key`.
pub fn parse_voters(key: &str, value: &str) -> Result<Vec<(i32, String)>, ConfigError> {
    voters(value).map_err(|reason| invalid(key, value, reason))
}
