//! DeleteTopics: by name (all versions) or by topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use strom_metadata::MetadataCommand;
use strom_types::ErrorCode;
use uuid::Uuid;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: DeleteTopicsRequest, _version: i16) -> Reply {
    let mut wanted: Vec<(Option<TopicName>, Uuid)> = request
        .topic_names
        .into_iter()
        .map(|name| (Some(name), Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .into_iter()
            .map(|state| (state.name, state.topic_id)),
    );
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut responses = Vec::with_capacity(wanted.len());
        for (name, id) in wanted {
            responses.push(delete(&broker, name, id).await);
        }
        ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    }))
}

async fn delete(broker: &Arc<Broker>, name: Option<TopicName>, id: Uuid) -> DeletableTopicResult {
    let result = DeletableTopicResult::default()
        .with_name(name.clone())
        .with_topic_id(id);
    let failed = |code: ErrorCode, message: String| {
        result
            .clone()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !broker.config.delete_topic_enable {
        return failed(
            ErrorCode::TopicDeletionDisabled,
            "delete.topic.enable is false on this broker".to_owned(),
        );
    }
    let image = broker.quorum.image();
    let topic = match &name {
        Some(name) => image.topics.get(name.as_str()),
        None => image.topic_by_id(id),
    };
    let Some(topic) = topic else {
        return match name {
            Some(name) => failed(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{}' does not exist", name.as_str()),
            ),
            None => failed(ErrorCode::UnknownTopicId, format!("no topic has id {id}")),
        };
    };
    if topic.name == strom_coordinator::OFFSETS_TOPIC {
        return failed(
            ErrorCode::InvalidTopicException,
            format!("the internal topic {} cannot be deleted", topic.name),
        );
    }
    let command = MetadataCommand::DeleteTopic { id: topic.id };
    match cluster::propose(broker, command).await {
        Ok(_) => result
            .with_name(Some(TopicName(str_bytes(topic.name.as_str()))))
            .with_topic_id(topic.id),
        Err(error) => failed(error.code, error.message),
    }
}
