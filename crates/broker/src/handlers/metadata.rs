//! Metadata: brokers, topics and their partitions, auto-creating topics on request
//! (`auto.create.topics.enable`, and the request's `allow_auto_topic_creation` from v4).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use strom_coordinator::TRANSACTION_STATE_TOPIC;
use strom_metadata::image::NO_LEADER;
use strom_metadata::{MetadataCommand, MetadataImage, TopicImage};
use strom_types::ErrorCode;
use uuid::Uuid;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::Broker;

/// `authorized_operations` when the client did not ask for them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// `listener`: the name of the listener the client connected through; brokers are given at
/// their endpoints of that listener.
pub fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
    listener: Arc<str>,
) -> Reply {
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    if all_topics {
        let image = broker.quorum.image();
        let topics = image
            .topics
            .values()
            .map(|topic| describe(&image, topic))
            .collect();
        return Reply::Now(ResponseKind::Metadata(response(
            broker, &image, topics, &listener,
        )));
    }
    let allow_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let requested: Vec<(Option<TopicName>, Uuid)> = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|wanted| (wanted.name, wanted.topic_id))
        .collect();
    let image = broker.quorum.image();
    let missing: Vec<&TopicName> = requested
        .iter()
        .filter_map(|(name, _)| name.as_ref())
        .filter(|name| !image.topics.contains_key(name.as_str()))
        .collect();
    if !allow_create || missing.is_empty() {
        let topics = requested
            .iter()
            .map(|(name, id)| lookup(&image, name.as_ref(), *id))
            .collect();
        return Reply::Now(ResponseKind::Metadata(response(
            broker, &image, topics, &listener,
        )));
    }
    let missing: Vec<TopicName> = missing.into_iter().cloned().collect();
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut refused = BTreeMap::new();
        for name in missing {
            if let Err(code) = auto_create(&broker, name.as_str()).await {
                refused.insert(name, code);
            }
        }
        let image = broker.quorum.image();
        let topics = requested
            .iter()
            .map(
                |(name, id)| match name.as_ref().and_then(|name| refused.get(name)) {
                    Some(code) => error_topic(name.clone(), *id, *code),
                    None => lookup(&image, name.as_ref(), *id),
                },
            )
            .collect();
        ResponseKind::Metadata(response(&broker, &image, topics, &listener))
    }))
}

/// Creates a topic a client asked about (`auto.create.topics.enable`), with the broker's
/// `num.partitions` and `default.replication.factor` (at most the brokers alive).
pub(super) async fn auto_create(broker: &Arc<Broker>, name: &str) -> Result<(), ErrorCode> {
    if strom_types::TopicName::new(name).is_err() {
        return Err(ErrorCode::InvalidTopicException);
    }
    if name == TRANSACTION_STATE_TOPIC {
        // An internal topic gets its own settings, never the defaults: the transaction
        // runtime creates it, and the client asks again meanwhile.
        crate::transactions::ensure_state_topic(broker);
        return Err(ErrorCode::LeaderNotAvailable);
    }
    let alive = broker
        .quorum
        .image()
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .count();
    let factor = broker
        .config
        .default_replication_factor
        .min(alive.max(1) as i16);
    let command = MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions: broker.config.num_partitions,
        replication_factor: factor,
        assignments: None,
        configs: BTreeMap::new(),
    };
    match cluster::propose(broker, command).await {
        Ok(_) => Ok(()),
        // Another request created it first.
        Err(error) if error.code == ErrorCode::TopicAlreadyExists => Ok(()),
        Err(error) => {
            tracing::debug!(topic = name, %error, "auto-creation refused");
            Err(error.code)
        }
    }
}

fn response(
    broker: &Broker,
    image: &MetadataImage,
    topics: Vec<MetadataResponseTopic>,
    listener: &str,
) -> MetadataResponse {
    let mut brokers: Vec<MetadataResponseBroker> = image
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .filter_map(|registration| {
            let (host, port) = registration.endpoint(listener)?;
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(registration.id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(registration.rack.clone().map(str_bytes));
            Some(broker)
        })
        .collect();
    if !brokers.iter().any(|b| b.node_id.0 == broker.config.node_id) {
        // This node serves the request, so clients may always talk to it.
        let (host, port) = &broker.advertised(listener);
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.config.node_id))
                .with_host(str_bytes(host.clone()))
                .with_port(i32::from(*port))
                .with_rack(broker.config.cluster.rack.clone().map(str_bytes)),
        );
    }
    let controller = broker.quorum.leader().unwrap_or(-1);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(image.cluster_id.clone().map(str_bytes))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn lookup(image: &MetadataImage, name: Option<&TopicName>, id: Uuid) -> MetadataResponseTopic {
    let found = match name {
        Some(name) => image.topics.get(name.as_str()),
        None => image.topic_by_id(id),
    };
    match (found, name) {
        (Some(topic), _) => describe(image, topic),
        (None, Some(name)) => {
            error_topic(Some(name.clone()), id, ErrorCode::UnknownTopicOrPartition)
        }
        (None, None) => error_topic(None, id, ErrorCode::UnknownTopicId),
    }
}

fn error_topic(name: Option<TopicName>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn describe(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let ids = |nodes: &[i32]| nodes.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            let offline: Vec<i32> = partition
                .replicas
                .iter()
                .copied()
                .filter(|replica| !image.is_alive(*replica))
                .collect();
            let error = match partition.leader {
                NO_LEADER => ErrorCode::LeaderNotAvailable,
                _ => ErrorCode::None,
            };
            MetadataResponsePartition::default()
                .with_error_code(error.code())
                .with_partition_index(partition.index)
                .with_leader_id(BrokerId(partition.leader))
                .with_leader_epoch(partition.leader_epoch)
                .with_replica_nodes(ids(&partition.replicas))
                .with_isr_nodes(ids(&partition.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    let internal = strom_types::TopicName::new(&topic.name).is_ok_and(|name| name.is_internal());
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
