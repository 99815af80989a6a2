//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a TOPIC or BROKER resource's
//! dynamic configs (written to the metadata log as `alter_configs.rs` describes), and on this
//! broker's log levels (BROKER_LOGGER, see `log_levels`), each resource on its own.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};
use strom_types::ErrorCode;

use super::alter_configs::{alter_resource, once_each, repeated, RESOURCE_BROKER_LOGGER};
use super::{str_bytes, Reply};
use crate::config::alter::{self, AlterError, ConfigOp};
use crate::log_levels::{self, LevelChange, LevelError};
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let repeated = repeated(
            (request.resources.iter()).map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in &request.resources {
            let (kind, name) = (resource.resource_type, resource.resource_name.as_str());
            let outcome = match repeated.contains(&(kind, name.to_owned())) {
                true => Err(once_each()),
                false => alter(&broker, resource, request.validate_only).await,
            };
            responses.push(response(kind, name, outcome));
        }
        ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    }))
}

async fn alter(
    broker: &Arc<Broker>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), AlterError> {
    let mut ops = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let op = ConfigOp::from_wire(config.config_operation).ok_or_else(|| AlterError {
            code: ErrorCode::InvalidRequest,
            message: format!("Unknown operations type {}", config.config_operation),
        })?;
        let value = config.value.as_ref().map(|value| value.to_string());
        ops.push((config.name.to_string(), op, value));
    }
    let name = resource.resource_name.as_str();
    if resource.resource_type == RESOURCE_BROKER_LOGGER {
        return alter_loggers(broker.config.node_id, name, &ops, validate_only);
    }
    let change = |target, current: &_| alter::incremental(target, current, &ops);
    alter_resource(broker, resource.resource_type, name, validate_only, change).await
}

/// BROKER_LOGGER: this broker's log levels, checked and changed at once, never written to the
/// metadata log.
fn alter_loggers(
    node_id: i32,
    name: &str,
    ops: &[(String, ConfigOp, Option<String>)],
    validate_only: bool,
) -> Result<(), AlterError> {
    let invalid = |message: String| AlterError {
        code: ErrorCode::InvalidRequest,
        message,
    };
    let id: i32 = name
        .parse()
        .map_err(|_| invalid(format!("Node id must be an integer, but it is: {name}")))?;
    if id != node_id {
        return Err(invalid(format!(
            "Unexpected node id. Expected {node_id}, but received {name}"
        )));
    }
    let mut changes = Vec::with_capacity(ops.len());
    for (logger, op, value) in ops {
        changes.push(match op {
            ConfigOp::Set => LevelChange::Set(logger.clone(), value.clone().unwrap_or_default()),
            ConfigOp::Delete => LevelChange::Unset(logger.clone()),
            ConfigOp::Append | ConfigOp::Subtract => {
                return Err(invalid(format!(
                    "{} operation is not allowed for the BROKER_LOGGER resource",
                    match op {
                        ConfigOp::Append => "APPEND",
                        _ => "SUBTRACT",
                    }
                )))
            }
        });
    }
    log_levels::alter(&changes, validate_only).map_err(|error| match error {
        LevelError::Config(message) => AlterError {
            code: ErrorCode::InvalidConfig,
            message,
        },
        LevelError::Request(message) => AlterError {
            code: ErrorCode::InvalidRequest,
            message,
        },
    })
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
