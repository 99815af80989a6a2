//! DescribeConfigs for topics (every topic config with its effective value and where it comes
//! from) and for this broker (its settings by their Kafka names).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use strom_types::ErrorCode;

use super::str_bytes;
use crate::config::{BrokerConfig, ConfigType, TOPIC_CONFIG_KEYS};
use crate::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Where a config value comes from, with Kafka's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// A topic's configs: (name, value, source, type), every key the broker knows.
pub fn topic_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, ConfigSource, ConfigType)> {
    let builtin = BrokerConfig::default().topic_defaults;
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|key| {
            let (value, source) = match overrides.get(key.name) {
                Some(value) => (value.clone(), ConfigSource::DynamicTopic),
                None => {
                    let value = broker.config.topic_defaults[key.name].clone();
                    let source = if builtin[key.name] == value {
                        ConfigSource::Default
                    } else {
                        ConfigSource::StaticBroker
                    };
                    (value, source)
                }
            };
            (key.name.to_owned(), value, source, key.config_type)
        })
        .collect()
}

fn broker_entries(broker: &Broker) -> Vec<(String, String, ConfigSource, ConfigType)> {
    let builtin: BTreeMap<String, String> =
        BrokerConfig::default().describe().into_iter().collect();
    broker
        .config
        .describe()
        .into_iter()
        .map(|(name, value)| {
            let source = if builtin.get(&name) == Some(&value) {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            let config_type = if value == "true" || value == "false" {
                ConfigType::Boolean
            } else if value.parse::<i64>().is_ok() {
                ConfigType::Long
            } else {
                ConfigType::String
            };
            (name, value, source, config_type)
        })
        .collect()
}

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| describe(broker, resource))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(broker: &Arc<Broker>, resource: DescribeConfigsResource) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let failed = |code: ErrorCode, message: String| {
        result
            .clone()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let name = resource.resource_name.as_str();
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match broker.topics.get(name) {
            Some(topic) => topic_entries(broker, &topic.overrides),
            None => {
                return failed(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )
            }
        },
        RESOURCE_BROKER if name.is_empty() || name == broker.config.node_id.to_string() => {
            broker_entries(broker)
        }
        RESOURCE_BROKER => {
            return failed(
                ErrorCode::InvalidRequest,
                format!("this is broker {}, not '{name}'", broker.config.node_id),
            )
        }
        other => {
            return failed(
                ErrorCode::InvalidRequest,
                format!("config resource type {other} is not supported"),
            )
        }
    };
    let wanted = resource
        .configuration_keys
        .map(|keys| keys.iter().map(|key| key.to_string()).collect::<Vec<_>>());
    let configs = entries
        .into_iter()
        .filter(|(name, ..)| wanted.as_ref().is_none_or(|keys| keys.contains(name)))
        .map(|(name, value, source, config_type)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
                .with_config_type(config_type as i8)
        })
        .collect();
    result.with_configs(configs)
}
