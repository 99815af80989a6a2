//! CreateTopics: validate name, partition count, replication factor, assignments and configs,
//! then propose the topic to the metadata quorum (or, with `validate_only`, only check it
//! against a copy of the image).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use strom_metadata::{CommandResult, MetadataCommand};
use strom_types::{ErrorCode, TopicName};
use uuid::Uuid;

use super::describe_configs::topic_entries;
use super::{str_bytes, Reply};
use crate::cluster;
use crate::config::validate_topic_config;
use crate::error::BrokerError;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: CreateTopicsRequest, version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let validate_only = request.validate_only;
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            topics.push(create(&broker, topic, validate_only, version).await);
        }
        ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(topics))
    }))
}

async fn create(
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
    if !(1..=strom_types::limits::PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return failed(
            ErrorCode::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {}, not {partitions}",
                strom_types::limits::PARTITIONS_PER_TOPIC_MAX
            ),
        );
    }
    let replication_factor = match (request.replication_factor, request.assignments.len()) {
        (-1, 0) => broker.config.default_replication_factor,
        (factor, 0) => factor,
        (-1, _) => -1,
        (_, _) => {
            return failed(
                ErrorCode::InvalidRequest,
                "give either replication_factor or assignments, not both".to_owned(),
            )
        }
    };
    let mut assignments: Option<Vec<Vec<i32>>> = None;
    if !request.assignments.is_empty() {
        let mut sorted: Vec<_> = request.assignments.iter().collect();
        sorted.sort_by_key(|assignment| assignment.partition_index);
        if sorted
            .iter()
            .enumerate()
            .any(|(at, assignment)| assignment.partition_index != at as i32)
        {
            return failed(
                ErrorCode::InvalidReplicaAssignment,
                "assignments must cover partitions 0..N exactly once".to_owned(),
            );
        }
        assignments = Some(
            sorted
                .iter()
                .map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect())
                .collect(),
        );
    }
    let name = match TopicName::new(request.name.as_str()) {
        Ok(name) => name,
        Err(error) => return failed(ErrorCode::InvalidTopicException, error.to_string()),
    };
    let mut overrides = BTreeMap::new();
    for config in &request.configs {
        let Some(value) = &config.value else { continue };
        match validate_topic_config(config.name.as_str(), value.as_str()) {
            Ok(value) => overrides.insert(config.name.to_string(), value),
            Err(error) => return failed(ErrorCode::InvalidConfig, error.to_string()),
        };
    }
    let command = MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor,
        assignments,
        configs: overrides.clone(),
    };
    let outcome = if validate_only {
        // The same decisions propose and the quorum would make, on a copy of the image.
        let image = broker.quorum.image();
        broker.capacity.admit(&image, &command).and_then(|()| {
            match (*image).clone().apply(&command) {
                CommandResult::Refused(error) => Err(BrokerError::new(error.code, error.message)),
                done => Ok(done),
            }
        })
    } else {
        cluster::propose(broker, command).await
    };
    if let Err(error) = outcome {
        return failed(error.code, error.message);
    }
    let image = broker.quorum.image();
    let (id, factor) = match image.topics.get(name.as_str()) {
        Some(topic) if !validate_only => (
            topic.id,
            topic
                .partitions
                .first()
                .map_or(0, |p| p.replicas.len() as i16),
        ),
        _ => (Uuid::nil(), replication_factor),
    };
    let configs = topic_entries(broker, &overrides)
        .into_iter()
        .map(|(name, value, source, _)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source as i8)
        })
        .collect();
    result
        .with_topic_id(id)
        .with_num_partitions(partitions)
        .with_replication_factor(factor)
        // The configs field exists from v5 on; the encoder refuses it before.
        .with_configs((version >= 5).then_some(configs))
}
