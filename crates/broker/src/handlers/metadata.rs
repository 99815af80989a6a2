//! Metadata: brokers (this node), topics and their partitions, auto-creating topics on request
//! (`auto.create.topics.enable`, and the request's `allow_auto_topic_creation` from v4).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strom_types::ErrorCode;
use uuid::Uuid;

use super::str_bytes;
use crate::topics::Topic;
use crate::Broker;

/// `authorized_operations` when the client did not ask for them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(broker: &Arc<Broker>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let (host, port) = &broker.config.advertise;
    let node = MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.config.node_id))
        .with_host(str_bytes(host.clone()))
        .with_port(*port as i32);
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let topics = if all_topics {
        broker
            .topics
            .all()
            .iter()
            .map(|topic| describe(broker, topic))
            .collect()
    } else {
        let allow_create =
            broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let requested = request.topics.unwrap_or_default();
        requested
            .iter()
            .map(|wanted| lookup(broker, wanted.name.as_ref(), wanted.topic_id, allow_create))
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![node])
        .with_cluster_id(Some(str_bytes(broker.topics.cluster_id())))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn lookup(
    broker: &Arc<Broker>,
    name: Option<&TopicName>,
    id: Uuid,
    allow_create: bool,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        return match broker.topics.get_by_id(id) {
            Some(topic) => describe(broker, &topic),
            None => error_topic(None, id, ErrorCode::UnknownTopicId),
        };
    };
    if let Some(topic) = broker.topics.get(name.as_str()) {
        return describe(broker, &topic);
    }
    if !allow_create {
        return error_topic(Some(name.clone()), id, ErrorCode::UnknownTopicOrPartition);
    }
    let created = broker.topics.create(
        &broker.config,
        name.as_str(),
        broker.config.num_partitions,
        BTreeMap::new(),
        false,
    );
    match created {
        Ok(topic) => describe(broker, &topic),
        // Another request created it between the lookup and the create.
        Err(error) if error.code == ErrorCode::TopicAlreadyExists => {
            match broker.topics.get(name.as_str()) {
                Some(topic) => describe(broker, &topic),
                None => error_topic(Some(name.clone()), id, ErrorCode::UnknownTopicOrPartition),
            }
        }
        Err(error) => {
            tracing::debug!(topic = name.as_str(), %error, "auto-creation refused");
            error_topic(Some(name.clone()), id, error.code)
        }
    }
}

fn error_topic(name: Option<TopicName>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn describe(broker: &Arc<Broker>, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            MetadataResponsePartition::default()
                .with_partition_index(partition.index.0)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.as_str()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
