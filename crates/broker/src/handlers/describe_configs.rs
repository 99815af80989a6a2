//! DescribeConfigs for topics (every topic config with its effective value and where it comes
//! from), for this broker (every setting of the broker key table by its Kafka name), for every
//! broker (the empty name: the cluster-wide dynamic defaults) and for this broker's loggers
//! (BROKER_LOGGER), with
//! synonyms (v1+, when asked), types and documentation (v3+, documentation when asked). The
//! values, sources and synonyms come from `config::describe`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use strom_types::ErrorCode;

use super::str_bytes;
use crate::config::{ConfigSource, ConfigType, DescribedConfig};
use crate::Broker;

use super::alter_configs::{RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC};
use crate::log_levels;

/// A topic's configs as (name, value, source, type), every key the broker knows; CreateTopics
/// v5+ returns them too.
pub fn topic_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, ConfigSource, ConfigType)> {
    (broker
        .effective_config()
        .describe_topic(overrides)
        .into_iter())
    .map(|config| {
        let value = config.value.unwrap_or_default();
        (
            config.name.to_owned(),
            value,
            config.source,
            config.config_type,
        )
    })
    .collect()
}

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| describe(broker, resource, detail))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// What the request asked for beyond each config's value.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

fn describe(
    broker: &Arc<Broker>,
    resource: DescribeConfigsResource,
    detail: Detail,
) -> DescribeConfigsResult {
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
    let node_id = broker.config.node_id;
    let config = broker.effective_config();
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match broker.topics.get(name) {
            Some(topic) => config.describe_topic(&topic.overrides),
            None => {
                return failed(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )
            }
        },
        // As Kafka answers: the empty name is the cluster-wide dynamic defaults alone.
        RESOURCE_BROKER if name.is_empty() => config.describe_broker_defaults(),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if name == node_id.to_string() => {
            match resource.resource_type {
                RESOURCE_BROKER => config.describe(),
                _ => {
                    let wanted = wanted_keys(&resource);
                    let loggers = (log_levels::describe().into_iter())
                        .filter(|(logger, _)| is_wanted(&wanted, logger))
                        .map(|(logger, level)| logger_entry(logger, level))
                        .collect();
                    return result.with_configs(loggers);
                }
            }
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            return failed(
                ErrorCode::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {node_id} or empty string, but received {name}"
                ),
            )
        }
        other => {
            return failed(
                ErrorCode::InvalidRequest,
                format!("Unsupported resource type: {other}"),
            )
        }
    };
    let wanted = wanted_keys(&resource);
    let configs = entries
        .into_iter()
        .filter(|config| is_wanted(&wanted, config.name))
        .map(|config| result_entry(config, detail))
        .collect();
    result.with_configs(configs)
}

/// The keys a resource asks for; `None` for all.
fn wanted_keys(resource: &DescribeConfigsResource) -> Option<Vec<String>> {
    (resource.configuration_keys.as_ref())
        .map(|keys| keys.iter().map(|key| key.to_string()).collect())
}

fn is_wanted(wanted: &Option<Vec<String>>, name: &str) -> bool {
    wanted
        .as_ref()
        .is_none_or(|keys| keys.iter().any(|k| k == name))
}

/// A logger and its level, as Kafka describes BROKER_LOGGER entries.
fn logger_entry(logger: String, level: String) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(logger))
        .with_value(Some(str_bytes(level)))
        .with_read_only(false)
        .with_config_source(ConfigSource::DynamicBrokerLogger as i8)
        .with_is_sensitive(false)
        .with_config_type(ConfigType::String as i8)
}

/// One config on the wire. The encoder leaves out what the request's version lacks
/// (`config_type` and `documentation` before v3).
fn result_entry(config: DescribedConfig, detail: Detail) -> DescribeConfigsResourceResult {
    let synonyms = match detail.synonyms {
        true => (config.synonyms.into_iter())
            .map(|synonym| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(synonym.name))
                    .with_value(synonym.value.map(str_bytes))
                    .with_source(synonym.source as i8)
            })
            .collect(),
        false => Vec::new(),
    };
    let documentation = (detail.documentation).then(|| str_bytes(config.documentation));
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(config.value.map(str_bytes))
        .with_read_only(config.read_only)
        .with_config_source(config.source as i8)
        .with_is_sensitive(config.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(config.config_type as i8)
        .with_documentation(documentation)
}
