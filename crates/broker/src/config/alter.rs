//! AlterConfigs and IncrementalAlterConfigs as pure functions: from what a request asks of one
//! resource (a topic, one broker, or every broker) and that resource's current dynamic configs,
//! the change to write to the metadata log, or Kafka's error for it.
//!
//! The checks and their messages are Kafka's (`ConfigAdminManager.preprocess`,
//! `ConfigurationControlManager.incrementalAlterConfigResource`, `DynamicBrokerConfig.validate`):
//! duplicate keys and null values are INVALID_REQUEST; a topic config that is unknown, badly
//! typed or out of range is INVALID_CONFIG; a broker config that is unknown, read-only, per-broker
//! where the cluster-wide default is being set, or invalid is INVALID_REQUEST (Kafka's
//! KAFKA-13609 keeps that code for bad broker values); APPEND and SUBTRACT apply to LIST configs
//! only.

use std::collections::BTreeMap;

use strom_metadata::ListChange;
use strom_types::ErrorCode;

use super::broker_keys::{broker_key, BrokerKey};
use super::topic_keys::topic_key;
use super::value::{ConfigType, UpdateMode};

/// One operation of IncrementalAlterConfigs, with Kafka's numbering on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_wire(op: i8) -> Option<ConfigOp> {
        match op {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConfigOp::Set => "SET",
            ConfigOp::Delete => "DELETE",
            ConfigOp::Append => "APPEND",
            ConfigOp::Subtract => "SUBTRACT",
        }
    }
}

/// The resource whose configs change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Topic,
    /// Every broker: the BROKER resource with the empty name.
    BrokerDefault,
    /// One broker.
    Broker,
}

/// Why a resource's change is refused: the error code and message of its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterError {
    pub code: ErrorCode,
    pub message: String,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> AlterError {
    AlterError {
        code,
        message: message.into(),
    }
}

/// What to write to the metadata log for one resource (`MetadataCommand::AlterConfigs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
    /// Remove every key not in `set` first (the legacy AlterConfigs).
    pub replace: bool,
    /// APPEND and SUBTRACT, combined with the current list when the log applies them (checked
    /// here against this node's view of it).
    pub lists: Vec<ListChange>,
}

/// IncrementalAlterConfigs on one resource whose dynamic configs are `current`: each entry is
/// (name, operation, value).
pub fn incremental(
    target: Target,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp, Option<String>)],
) -> Result<Change, AlterError> {
    no_duplicates(ops.iter().map(|(name, ..)| name))?;
    let nulls: Vec<&str> = (ops.iter())
        .filter(|(_, op, value)| *op != ConfigOp::Delete && value.is_none())
        .map(|(name, ..)| name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(null_values(&nulls));
    }
    let mut change = Change::default();
    for (name, op, value) in ops {
        let value = value.as_deref().unwrap_or_default();
        if let ConfigOp::Append | ConfigOp::Subtract = op {
            let (config_type, default) = list_key(target, name)?;
            if config_type != ConfigType::List {
                return Err(not_a_list(target, *op, name));
            }
            let list = ListChange {
                key: name.clone(),
                items: (value.split(',').map(str::trim))
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect(),
                append: *op == ConfigOp::Append,
                base: default.unwrap_or_default().to_owned(),
            };
            checked(
                target,
                name,
                &list.apply_to(current.get(name).map(String::as_str)),
            )?;
            change.lists.push(list);
            continue;
        }
        let text = match op {
            ConfigOp::Delete => {
                if target != Target::Topic && broker_key(name).is_none() {
                    return Err(unknown(target, name));
                }
                change.delete.push(name.clone());
                continue;
            }
            ConfigOp::Set | ConfigOp::Append | ConfigOp::Subtract => value.to_owned(),
        };
        change
            .set
            .insert(name.clone(), checked(target, name, &text)?);
    }
    let lists = change.lists.iter().map(|list| &list.key);
    refuse_read_only(target, change.set.keys().chain(&change.delete).chain(lists))?;
    Ok(change)
}

/// The legacy AlterConfigs on one resource: `configs` replace its dynamic configs.
pub fn replace(target: Target, configs: &[(String, Option<String>)]) -> Result<Change, AlterError> {
    no_duplicates(configs.iter().map(|(name, _)| name))?;
    let nulls: Vec<&str> = (configs.iter())
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(null_values(&nulls));
    }
    let mut change = Change {
        replace: true,
        ..Change::default()
    };
    for (name, value) in configs {
        let value = value.as_deref().unwrap_or_default();
        change
            .set
            .insert(name.clone(), checked(target, name, value)?);
    }
    refuse_read_only(target, change.set.keys())?;
    Ok(change)
}

fn no_duplicates<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), AlterError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(refused(
                ErrorCode::InvalidRequest,
                "Error due to duplicate config keys",
            ));
        }
    }
    Ok(())
}

fn null_values(names: &[&str]) -> AlterError {
    refused(
        ErrorCode::InvalidRequest,
        format!("Null value not supported for : {}", names.join(", ")),
    )
}

/// A config's type and built-in default, for APPEND and SUBTRACT.
fn list_key(target: Target, name: &str) -> Result<(ConfigType, Option<&'static str>), AlterError> {
    let key = match target {
        Target::Topic => topic_key(name)
            .ok_or_else(|| unknown(target, name))?
            .broker_key(),
        Target::Broker | Target::BrokerDefault => {
            broker_key(name).ok_or_else(|| unknown(target, name))?
        }
    };
    Ok((key.config_type, key.default))
}

fn not_a_list(target: Target, op: ConfigOp, name: &str) -> AlterError {
    match target {
        Target::Topic => refused(
            ErrorCode::InvalidConfig,
            format!(
                "Can't {} to key {name} because its type is not LIST.",
                op.name()
            ),
        ),
        Target::Broker | Target::BrokerDefault => refused(
            ErrorCode::InvalidConfig,
            format!(
                "Config value {} is not allowed for config key: {name}",
                op.name().to_lowercase()
            ),
        ),
    }
}

fn unknown(target: Target, name: &str) -> AlterError {
    match target {
        Target::Topic => refused(
            ErrorCode::InvalidConfig,
            format!("Unknown topic config name: {name}"),
        ),
        Target::Broker | Target::BrokerDefault => refused(
            ErrorCode::InvalidRequest,
            format!("Unknown broker config name: {name}"),
        ),
    }
}

/// Checks one value for its key; returns it as stored (trimmed).
fn checked(target: Target, name: &str, value: &str) -> Result<String, AlterError> {
    match target {
        Target::Topic => {
            let key = topic_key(name).ok_or_else(|| unknown(target, name))?;
            key.parse(value)
                .map_err(|error| refused(ErrorCode::InvalidConfig, error.to_string()))?;
        }
        Target::Broker | Target::BrokerDefault => {
            let key = broker_key(name).ok_or_else(|| unknown(target, name))?;
            key.parse(value)
                .map_err(|error| refused(ErrorCode::InvalidRequest, error.to_string()))?;
        }
    }
    Ok(value.trim().to_owned())
}

/// Refuses broker keys that cannot change at runtime, or not as the cluster-wide default, with
/// Kafka's messages (which print the keys as a Scala `Set`).
fn refuse_read_only<'a>(
    target: Target,
    names: impl Iterator<Item = &'a String> + Clone,
) -> Result<(), AlterError> {
    if target == Target::Topic {
        return Ok(());
    }
    let keys = || names.clone().filter_map(|name| broker_key(name));
    let matching = |wanted: fn(&BrokerKey) -> bool| -> Vec<&'static str> {
        keys()
            .filter(|key| wanted(key))
            .map(|key| key.name)
            .collect()
    };
    let read_only = matching(|key| key.update_mode == UpdateMode::ReadOnly);
    if !read_only.is_empty() {
        return Err(refused(
            ErrorCode::InvalidRequest,
            format!(
                "Cannot update these configs dynamically: Set({})",
                read_only.join(", ")
            ),
        ));
    }
    let per_broker = matching(|key| key.update_mode == UpdateMode::PerBroker);
    if target == Target::BrokerDefault && !per_broker.is_empty() {
        return Err(refused(
            ErrorCode::InvalidRequest,
            format!(
                "Cannot update these configs at default cluster level, broker id must be specified: Set({})",
                per_broker.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, op: ConfigOp, value: Option<&str>) -> (String, ConfigOp, Option<String>) {
        (name.to_owned(), op, value.map(str::to_owned))
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        (entries.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn incremental_set_delete_append_subtract_on_a_topic() {
        let current = map(&[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
        let change = incremental(
            Target::Topic,
            &current,
            &[
                op("segment.bytes", ConfigOp::Set, Some(" 1048576 ")),
                op("retention.ms", ConfigOp::Delete, None),
                op("cleanup.policy", ConfigOp::Append, Some("delete,compact")),
            ],
        )
        .unwrap();
        assert_eq!(change.set, map(&[("segment.bytes", "1048576")]));
        // APPEND is combined with the list the log holds when it applies the change.
        assert_eq!(
            change.lists[0].apply_to(current.get("cleanup.policy").map(String::as_str)),
            "compact,delete"
        );
        assert_eq!(change.lists[0].apply_to(Some("delete")), "delete,compact");
        assert_eq!(change.delete, vec!["retention.ms".to_owned()]);
        assert!(!change.replace);
        // SUBTRACT starts from the built-in default when the topic has no value.
        let change = incremental(
            Target::Topic,
            &BTreeMap::new(),
            &[op("cleanup.policy", ConfigOp::Subtract, Some("delete"))],
        );
        // `delete` was the whole default: an empty list is no valid policy.
        assert_eq!(change.unwrap_err().code, ErrorCode::InvalidConfig);
    }

    #[test]
    fn topic_errors_are_kafkas() {
        let none = BTreeMap::new();
        let error = |ops: &[(String, ConfigOp, Option<String>)]| {
            incremental(Target::Topic, &none, ops).unwrap_err()
        };
        let unknown = error(&[op("no.such", ConfigOp::Set, Some("1"))]);
        assert_eq!(
            (unknown.code, unknown.message.as_str()),
            (
                ErrorCode::InvalidConfig,
                "Unknown topic config name: no.such"
            )
        );
        let not_list = error(&[op("compression.type", ConfigOp::Append, Some("lz4"))]);
        assert_eq!(
            not_list.message,
            "Can't APPEND to key compression.type because its type is not LIST."
        );
        let bad = error(&[op("retention.ms", ConfigOp::Set, Some("soon"))]);
        assert_eq!(bad.code, ErrorCode::InvalidConfig);
        assert!(bad.message.contains("retention.ms"), "{}", bad.message);
        let twice = error(&[
            op("retention.ms", ConfigOp::Set, Some("1")),
            op("retention.ms", ConfigOp::Delete, None),
        ]);
        assert_eq!(
            (twice.code, twice.message.as_str()),
            (
                ErrorCode::InvalidRequest,
                "Error due to duplicate config keys"
            )
        );
        let null = error(&[op("retention.ms", ConfigOp::Set, None)]);
        assert_eq!(null.message, "Null value not supported for : retention.ms");
    }

    #[test]
    fn broker_keys_follow_their_update_mode() {
        let none = BTreeMap::new();
        let change = incremental(
            Target::BrokerDefault,
            &none,
            &[op("log.retention.ms", ConfigOp::Set, Some("60000"))],
        )
        .unwrap();
        assert_eq!(change.set, map(&[("log.retention.ms", "60000")]));
        let read_only = incremental(
            Target::Broker,
            &none,
            &[op("num.partitions", ConfigOp::Set, Some("3"))],
        )
        .unwrap_err();
        assert_eq!(
            (read_only.code, read_only.message.as_str()),
            (
                ErrorCode::InvalidRequest,
                "Cannot update these configs dynamically: Set(num.partitions)"
            )
        );
        let bad = replace(
            Target::Broker,
            &[("log.segment.bytes".to_owned(), Some("1".to_owned()))],
        )
        .unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidRequest);
        let unknown = replace(
            Target::Broker,
            &[("bogus".to_owned(), Some("1".to_owned()))],
        );
        assert_eq!(unknown.unwrap_err().code, ErrorCode::InvalidRequest);
        let legacy = replace(
            Target::Broker,
            &[("log.retention.hours".to_owned(), Some("2".to_owned()))],
        )
        .unwrap();
        assert!(legacy.replace);
    }

    #[test]
    fn tls_files_change_per_broker_and_max_connections_anywhere() {
        let none = BTreeMap::new();
        let tls = [
            op("ssl.keystore.location", ConfigOp::Set, Some("/certs/b.pem")),
            op("ssl.key.password", ConfigOp::Set, Some("secret")),
            op("ssl.truststore.location", ConfigOp::Delete, None),
        ];
        let change = incremental(Target::Broker, &none, &tls).unwrap();
        assert_eq!(
            change.set,
            map(&[
                ("ssl.key.password", "secret"),
                ("ssl.keystore.location", "/certs/b.pem")
            ])
        );
        // Kafka's refusal of per-broker keys as the cluster-wide default, keys sorted.
        let default = incremental(Target::BrokerDefault, &none, &tls).unwrap_err();
        assert_eq!(
            (default.code, default.message.as_str()),
            (
                ErrorCode::InvalidRequest,
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: Set(ssl.key.password, ssl.keystore.location, ssl.truststore.location)"
            )
        );
        let legacy = replace(
            Target::BrokerDefault,
            &[("ssl.keystore.type".to_owned(), Some("PEM".to_owned()))],
        );
        assert_eq!(legacy.unwrap_err().code, ErrorCode::InvalidRequest);
        for target in [Target::Broker, Target::BrokerDefault] {
            let change = incremental(
                target,
                &none,
                &[op("max.connections", ConfigOp::Set, Some("100"))],
            )
            .unwrap();
            assert_eq!(change.set, map(&[("max.connections", "100")]));
        }
        let zero = incremental(
            Target::BrokerDefault,
            &none,
            &[op("max.connections", ConfigOp::Set, Some("0"))],
        );
        assert_eq!(zero.unwrap_err().code, ErrorCode::InvalidRequest);
        // What stays fixed: how clients authenticate, and the store formats Strom reads.
        for (key, value) in [
            ("ssl.client.auth", "required"),
            ("ssl.keystore.type", "JKS"),
        ] {
            let refused = incremental(
                Target::Broker,
                &none,
                &[op(key, ConfigOp::Set, Some(value))],
            );
            assert_eq!(refused.unwrap_err().code, ErrorCode::InvalidRequest);
        }
    }
}
