//! What DescribeConfigs reports of the broker's and a topic's configs, read from the tables:
//! each key's value, where the value comes from, its synonyms, type and documentation.

use std::collections::BTreeMap;

use super::broker_keys::{BrokerKey, BROKER_KEYS};
use super::topic_keys::TOPIC_KEYS;
use super::value::{ConfigType, UpdateMode};
use super::BrokerConfig;

/// Where a config value comes from, with Kafka's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs).
    DynamicTopic = 1,
    /// Set at runtime for this broker (AlterConfigs).
    DynamicBroker = 2,
    /// Set at runtime for every broker (AlterConfigs with the empty broker name).
    DynamicDefaultBroker = 3,
    /// Given at start: the config file, `--set`, or a flag.
    StaticBroker = 4,
    /// The built-in default.
    Default = 5,
    /// A logger's level (BROKER_LOGGER).
    DynamicBrokerLogger = 6,
}

/// One place a config's value could come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One config as DescribeConfigs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: &'static str,
    /// `None` is Kafka's null: no value, or a sensitive one.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub read_only: bool,
    pub sensitive: bool,
    pub documentation: &'static str,
    /// The keys that could supply the value, in Kafka's order of precedence, each with its
    /// value at its source; the first is where the value comes from.
    pub synonyms: Vec<ConfigSynonym>,
}

impl BrokerConfig {
    /// Every broker setting of [`BROKER_KEYS`] with its current value, for broker
    /// DescribeConfigs of this broker. A key is read-only when its update mode is.
    pub fn describe(&self) -> Vec<DescribedConfig> {
        BROKER_KEYS
            .iter()
            .map(|key| {
                let read_only = key.update_mode == UpdateMode::ReadOnly;
                described(key.name, key.read(self), key, self.synonyms(key), read_only)
            })
            .collect()
    }

    /// The cluster-wide dynamic defaults, for DescribeConfigs of the BROKER resource with the
    /// empty name: as Kafka answers it, only the keys set there, each with that value.
    pub fn describe_broker_defaults(&self) -> Vec<DescribedConfig> {
        BROKER_KEYS
            .iter()
            .filter_map(|key| {
                let value = self.dynamic.default.get(key.name)?;
                let synonyms = (self.synonyms(key).into_iter())
                    .filter(|synonym| synonym.source != ConfigSource::DynamicBroker)
                    .collect();
                let mut config = described(key.name, Some(value.clone()), key, synonyms, false);
                config.source = ConfigSource::DynamicDefaultBroker;
                Some(config)
            })
            .collect()
    }

    /// Every topic config of [`TOPIC_KEYS`] for a topic with `overrides`, for topic
    /// DescribeConfigs (and CreateTopics v5+).
    pub fn describe_topic(&self, overrides: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
        TOPIC_KEYS
            .iter()
            .map(|topic| {
                let broker = topic.broker_key();
                let value = (overrides.get(topic.name))
                    .or_else(|| self.topic_defaults.get(topic.name))
                    .cloned();
                let set_on_topic = overrides.get(topic.name).map(|value| ConfigSynonym {
                    name: topic.name,
                    value: Some(value.clone()),
                    source: ConfigSource::DynamicTopic,
                });
                let synonyms = set_on_topic.into_iter().chain(self.synonyms(broker));
                described(topic.name, value, broker, synonyms.collect(), false)
            })
            .collect()
    }

    /// Where a broker key's value could come from, as Kafka lists it: the key and its
    /// synonyms set for this broker at runtime, then those set for every broker, then those
    /// given at start, then those with a default, each group in order of precedence.
    fn synonyms(&self, key: &BrokerKey) -> Vec<ConfigSynonym> {
        let precedence = key.precedence();
        let layer = |values: &BTreeMap<String, String>, source: ConfigSource| {
            (precedence.iter())
                .filter_map(|key| {
                    Some(ConfigSynonym {
                        name: key.name,
                        value: Some(values.get(key.name)?.clone()),
                        source,
                    })
                })
                .collect::<Vec<_>>()
        };
        let mut synonyms = layer(&self.dynamic.broker, ConfigSource::DynamicBroker);
        synonyms.extend(layer(
            &self.dynamic.default,
            ConfigSource::DynamicDefaultBroker,
        ));
        synonyms.extend((precedence.iter()).filter_map(|key| {
            let value = self.given.get(key.name)?;
            Some(ConfigSynonym {
                name: key.name,
                value: Some(value.clone()),
                source: ConfigSource::StaticBroker,
            })
        }));
        // A value unlike the default that nothing set was written into its field at start
        // (`strom server --data-dir`): static all the same.
        let value = key.read(self);
        if synonyms.is_empty() && key.default.is_some() && value.as_deref() != key.default {
            synonyms.push(ConfigSynonym {
                name: key.name,
                value,
                source: ConfigSource::StaticBroker,
            });
        }
        synonyms.extend(precedence.iter().filter_map(|key| {
            Some(ConfigSynonym {
                name: key.name,
                value: Some(key.default?.to_owned()),
                source: ConfigSource::Default,
            })
        }));
        synonyms
    }
}

fn described(
    name: &'static str,
    value: Option<String>,
    key: &BrokerKey,
    synonyms: Vec<ConfigSynonym>,
    read_only: bool,
) -> DescribedConfig {
    // Kafka never shows a password, wherever it comes from.
    let sensitive = key.config_type == ConfigType::Password;
    let shown = |value: Option<String>| value.filter(|_| !sensitive);
    DescribedConfig {
        name,
        value: shown(value),
        source: synonyms
            .first()
            .map_or(ConfigSource::Default, |synonym| synonym.source),
        config_type: key.config_type,
        read_only,
        sensitive,
        documentation: key.documentation,
        synonyms: (synonyms.into_iter())
            .map(|synonym| ConfigSynonym {
                value: shown(synonym.value),
                ..synonym
            })
            .collect(),
    }
}
