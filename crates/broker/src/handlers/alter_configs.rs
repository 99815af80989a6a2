//! AlterConfigs (the legacy API: a resource's dynamic configs are replaced by the request's)
//! for TOPIC and BROKER resources, and what IncrementalAlterConfigs shares with it: finding the
//! resource, checking the change (`config::alter`), and writing it to the metadata log, unless
//! `validate_only`. Every node applies the log alike: a topic's partitions take the new config
//! as the image arrives, and a broker's effective config is its static one with the image's
//! dynamic broker configs over it (`Broker::effective_config`).
//!
//! A BROKER resource is this broker (its id, the client sends it here) or every broker (the
//! empty name), as in Kafka, whose messages these are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ResponseKind};
use strom_metadata::{CommandResult, ConfigScope, MetadataCommand};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::config::alter::{self, AlterError, Change, Target};
use crate::listener_tls;
use crate::Broker;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

pub fn handle(broker: &Arc<Broker>, request: AlterConfigsRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let repeated = repeated(
            request
                .resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in &request.resources {
            let (kind, name) = (resource.resource_type, resource.resource_name.as_str());
            let outcome = match repeated.contains(&(kind, name.to_owned())) {
                true => Err(once_each()),
                false => {
                    let configs: Vec<(String, Option<String>)> = (resource.configs.iter())
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect();
                    let change =
                        |target, _: &BTreeMap<String, String>| alter::replace(target, &configs);
                    alter_resource(&broker, kind, name, request.validate_only, change).await
                }
            };
            responses.push(response(kind, name, outcome));
        }
        ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
    }))
}

/// The (type, name) pairs named more than once: Kafka refuses every entry of such a resource.
pub fn repeated<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> BTreeSet<(i8, String)> {
    let mut seen = BTreeSet::new();
    resources
        .filter(|(kind, name)| !seen.insert((*kind, *name)))
        .map(|(kind, name)| (kind, name.to_owned()))
        .collect()
}

pub fn once_each() -> AlterError {
    AlterError {
        code: ErrorCode::InvalidRequest,
        message: "Each resource must appear at most once.".to_owned(),
    }
}

fn response(kind: i8, name: &str, outcome: Result<(), AlterError>) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(kind)
        .with_resource_name(str_bytes(name.to_owned()));
    match outcome {
        Ok(()) => response,
        Err(error) => response
            .with_error_code(error.code.code())
            .with_error_message(Some(str_bytes(error.message))),
    }
}

/// Checks and (unless `validate_only`) applies the change `change` computes from a TOPIC or
/// BROKER resource's current dynamic configs.
pub async fn alter_resource(
    broker: &Arc<Broker>,
    kind: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(Target, &BTreeMap<String, String>) -> Result<Change, AlterError>,
) -> Result<(), AlterError> {
    let image = broker.quorum.image();
    let scopes = image.broker_configs.clone();
    let (target, scope, current) = match kind {
        RESOURCE_TOPIC => {
            let topic = image.topics.get(name).ok_or_else(|| AlterError {
                code: ErrorCode::UnknownTopicOrPartition,
                message: format!("The topic '{name}' does not exist."),
            })?;
            (
                Target::Topic,
                ConfigScope::Topic(topic.id),
                topic.configs.clone(),
            )
        }
        RESOURCE_BROKER => {
            let (target, scope) = broker_scope(broker.config.node_id, name)?;
            let key = scope.broker_key().expect("a broker scope");
            let current = image.broker_configs.get(&key).cloned().unwrap_or_default();
            (target, scope, current)
        }
        other => return Err(unknown_type(other)),
    };
    drop(image);
    let change = change(target, &current)?;
    if let Some(key) = scope.broker_key() {
        check_broker_change(broker, &scopes, &key, &change).await?;
    }
    if validate_only {
        return Ok(());
    }
    let command = MetadataCommand::AlterConfigs {
        resource: scope,
        set: change.set,
        delete: change.delete,
        replace: change.replace,
        lists: change.lists,
    };
    match cluster::propose(broker, command).await {
        Ok(CommandResult::Refused(error)) => Err(AlterError {
            code: error.code,
            message: error.message,
        }),
        Ok(_) => Ok(()),
        Err(error) => Err(AlterError {
            code: error.code,
            message: error.message,
        }),
    }
}

/// Checks what a change of dynamic broker configs needs the running broker for: the TLS files
/// of the config it would make load and may replace those the listeners serve (Kafka's
/// `SslFactory.validateReconfiguration`; see `listener_tls`). Refused as Kafka refuses a
/// dynamic config that fails validation: INVALID_REQUEST (KAFKA-13609).
async fn check_broker_change(
    broker: &Arc<Broker>,
    scopes: &BTreeMap<String, BTreeMap<String, String>>,
    key: &str,
    change: &Change,
) -> Result<(), AlterError> {
    let mut scopes = scopes.clone();
    let configs = scopes.entry(key.to_owned()).or_default();
    strom_metadata::image::alter_configs(
        configs,
        &change.set,
        &change.delete,
        change.replace,
        &change.lists,
    );
    let prospective = broker.config.with_dynamic(&scopes);
    let mut keys =
        (change.set.keys().chain(&change.delete)).chain(change.lists.iter().map(|l| &l.key));
    let touched = keys.any(|key| listener_tls::TLS_KEYS.contains(&key.as_str()));
    let checking = broker.clone();
    // Reads and parses files (and may decrypt a key): off the async threads.
    let checked =
        tokio::task::spawn_blocking(move || checking.listener_tls.validate(&prospective, touched))
            .await;
    match checked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ssl_refused(error)),
        Err(error) => Err(ssl_refused(error)),
    }
}

/// Kafka's words for a dynamic SSL update that does not validate (its `SslFactory` error,
/// wrapped by `DynamicBrokerConfig`).
fn ssl_refused(detail: impl std::fmt::Display) -> AlterError {
    const SSL_FACTORY: &str = "Validation of dynamic config update of SSLFactory failed";
    AlterError {
        code: ErrorCode::InvalidRequest,
        message: format!("Invalid dynamic configuration: {SSL_FACTORY}: {detail}"),
    }
}

/// The scope a BROKER resource's name stands for: every broker (empty) or this one.
fn broker_scope(node_id: i32, name: &str) -> Result<(Target, ConfigScope), AlterError> {
    if name.is_empty() {
        return Ok((Target::BrokerDefault, ConfigScope::BrokerDefault));
    }
    let invalid = |message: String| AlterError {
        code: ErrorCode::InvalidRequest,
        message,
    };
    let id: i32 = name
        .parse()
        .map_err(|_| invalid(format!("Node id must be an integer, but it is: {name}")))?;
    if id != node_id {
        return Err(invalid(format!(
            "Unexpected broker id, expected {node_id}, but received {name}"
        )));
    }
    Ok((Target::Broker, ConfigScope::Broker(id)))
}

pub fn unknown_type(kind: i8) -> AlterError {
    AlterError {
        code: ErrorCode::InvalidRequest,
        message: format!("Unknown resource type {kind}"),
    }
}
