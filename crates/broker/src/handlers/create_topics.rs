//! CreateTopics: validate name, partition count, replication factor, assignments and configs,
//! then create (or, with `validate_only`, only check).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use strom_types::ErrorCode;

use super::describe_configs::topic_entries;
use super::str_bytes;
use crate::config::validate_topic_config;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let validate_only = request.validate_only;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| create(broker, topic, validate_only, version))
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn create(
    broker: &Arc<Broker>,
    request: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default()
        .with_name(request.name.clone())
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let failed = |code: ErrorCode, message: String| {
        result
            .clone()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let partitions = match (request.num_partitions, request.assignments.len()) {
        (-1, 0) => broker.config.num_partitions,
        (-1, assigned) => assigned as i32,
        (count, 0) => count,
        (_, _) => {
            return failed(
                ErrorCode::InvalidRequest,
                "give either num_partitions or assignments, not both".to_owned(),
            )
        }
    };
    let replication_factor = match request.replication_factor {
        -1 => broker.config.default_replication_factor,
        factor => factor,
    };
    if replication_factor < 1 || replication_factor > 1 && request.assignments.is_empty() {
        let message = format!(
            "replication factor {replication_factor} is invalid: this cluster has 1 broker"
        );
        return failed(ErrorCode::InvalidReplicationFactor, message);
    }
    let node = broker.config.node_id;
    for assignment in &request.assignments {
        if assignment.broker_ids.iter().any(|id| id.0 != node) || assignment.broker_ids.len() != 1 {
            return failed(
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "partition {} must be assigned to broker {node} alone",
                    assignment.partition_index
                ),
            );
        }
    }
    let mut overrides = BTreeMap::new();
    for config in &request.configs {
        let Some(value) = &config.value else { continue };
        match validate_topic_config(config.name.as_str(), value.as_str()) {
            Ok(value) => overrides.insert(config.name.to_string(), value),
            Err(error) => return failed(ErrorCode::InvalidConfig, error.to_string()),
        };
    }
    match broker.topics.create(
        &broker.config,
        request.name.as_str(),
        partitions,
        overrides,
        validate_only,
    ) {
        Ok(topic) => {
            let configs = topic_entries(broker, &topic.overrides)
                .into_iter()
                .map(|(name, value, source, _)| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                        .with_config_source(source as i8)
                })
                .collect();
            result
                .with_topic_id(topic.id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                // The configs field exists from v5 on; the encoder refuses it before.
                .with_configs((version >= 5).then_some(configs))
        }
        Err(error) => failed(error.code, error.message),
    }
}
