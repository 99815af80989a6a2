//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455).
//!
//! A reassignment is one metadata command: the image starts (or cancels) each partition's move
//! when it applies it, with Kafka's checks and answers per partition (INVALID_REPLICA_ASSIGNMENT,
//! UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS, and KIP-860's
//! INVALID_REPLICATION_FACTOR). The move itself needs no coordinator: the new replicas find
//! themselves in the partition's replica list, open an empty log and fetch from the leader;
//! the leader adds each to the ISR once it caught up, and the image completes the move when
//! it applies the ISR change that brings the last target replica in sync. Every step is in
//! the metadata log, so a move survives the failover of the controller and of any replica.
//!
//! ListPartitionReassignments answers from this node's image: every partition with a move in
//! progress, or those of the partitions asked for.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};
use strom_metadata::image::PartitionState;
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage, TopicOutcomes};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::error::BrokerError;
use crate::Broker;

pub fn alter(broker: &Arc<Broker>, request: AlterPartitionReassignmentsRequest) -> Reply {
    let partitions = (request.topics.iter())
        .map(|topic| {
            let changes = (topic.partitions.iter())
                .map(|partition| {
                    let target = (partition.replicas.as_ref())
                        .map(|replicas| replicas.iter().map(|id| id.0).collect());
                    (partition.partition_index, target)
                })
                .collect();
            (topic.name.to_string(), changes)
        })
        .collect();
    let command = MetadataCommand::AlterPartitionReassignments {
        partitions,
        allow_replication_factor_change: request.allow_replication_factor_change,
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let response = match cluster::propose(&broker, command).await {
            Ok(CommandResult::Reassignments(topics)) => altered(topics),
            Ok(other) => {
                let message = format!("the metadata quorum answered a reassignment with {other:?}");
                let error = BrokerError::new(ErrorCode::UnknownServerError, message);
                failed(&request, &error)
            }
            Err(error) => failed(&request, &error),
        };
        ResponseKind::AlterPartitionReassignments(
            response.with_allow_replication_factor_change(request.allow_replication_factor_change),
        )
    }))
}

/// The response carrying what the image decided for each partition.
fn altered(topics: Vec<TopicOutcomes>) -> AlterPartitionReassignmentsResponse {
    let responses = (topics.into_iter())
        .map(|topic| {
            let partitions = (topic.partitions.into_iter())
                .map(|partition| {
                    ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition)
                        .with_error_code(partition.error.code())
                        .with_error_message(partition.message.map(str_bytes))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(str_bytes(topic.topic).into())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

/// A request-wide failure (the quorum did not commit): at the top and on every partition.
fn failed(
    request: &AlterPartitionReassignmentsRequest,
    error: &BrokerError,
) -> AlterPartitionReassignmentsResponse {
    let message = Some(str_bytes(error.message.clone()));
    let responses = (request.topics.iter())
        .map(|topic| {
            let partitions = (topic.partitions.iter())
                .map(|partition| {
                    ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error.code.code())
                        .with_error_message(message.clone())
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_error_code(error.code.code())
        .with_error_message(message)
        .with_responses(responses)
}

pub fn list(broker: &Arc<Broker>, request: ListPartitionReassignmentsRequest) -> Reply {
    let image = broker.quorum.image();
    Reply::Now(ResponseKind::ListPartitionReassignments(ongoing(
        &image, &request,
    )))
}

/// The moves in progress, of every partition or of those asked for (unknown topics and
/// partitions are left out, as Kafka does).
fn ongoing(
    image: &MetadataImage,
    request: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let described = |partition: &PartitionState| {
        let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
        OngoingPartitionReassignment::default()
            .with_partition_index(partition.index)
            .with_replicas(ids(&partition.replicas))
            .with_adding_replicas(ids(&partition.adding))
            .with_removing_replicas(ids(&partition.removing))
    };
    let topics = match &request.topics {
        None => (image.topics.values())
            .map(|topic| {
                let moving = (topic.partitions.iter())
                    .filter(|partition| partition.is_reassigning())
                    .map(described)
                    .collect();
                (topic.name.clone(), moving)
            })
            .collect(),
        Some(wanted) => (wanted.iter())
            .filter_map(|topic| {
                let image = image.topics.get(topic.name.as_str())?;
                let moving = (topic.partition_indexes.iter())
                    .filter_map(|index| image.partitions.get(usize::try_from(*index).ok()?))
                    .filter(|partition| partition.is_reassigning())
                    .map(described)
                    .collect();
                Some((image.name.clone(), moving))
            })
            .collect::<Vec<(String, Vec<OngoingPartitionReassignment>)>>(),
    };
    let topics = (topics.into_iter())
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(str_bytes(name).into())
                .with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::TopicName;
    use strom_metadata::TopicImage;
    use uuid::Uuid;

    use super::*;

    fn image() -> MetadataImage {
        let partition = |index, adding: Vec<i32>| PartitionState {
            index,
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            removing: adding.iter().map(|_| 1).take(1).collect(),
            adding,
        };
        let topic = TopicImage {
            name: "t".into(),
            id: Uuid::from_u128(1),
            configs: BTreeMap::new(),
            partitions: vec![partition(0, vec![]), partition(1, vec![3])],
        };
        let mut image = MetadataImage::default();
        image.topics.insert("t".into(), Arc::new(topic));
        image
    }

    #[test]
    fn only_partitions_being_moved_are_listed() {
        let image = image();
        let all = ongoing(&image, &ListPartitionReassignmentsRequest::default());
        assert_eq!(all.topics.len(), 1);
        let moving = &all.topics[0].partitions;
        assert_eq!(moving.len(), 1);
        assert_eq!(moving[0].partition_index, 1);
        assert_eq!(moving[0].adding_replicas, vec![BrokerId(3)]);
        assert_eq!(moving[0].removing_replicas, vec![BrokerId(1)]);

        let asked = |name: &str, indexes: Vec<i32>| {
            ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partition_indexes(indexes),
            ]))
        };
        assert!(ongoing(&image, &asked("t", vec![0, 7])).topics.is_empty());
        assert!(ongoing(&image, &asked("nope", vec![1])).topics.is_empty());
        assert_eq!(ongoing(&image, &asked("t", vec![1])).topics.len(), 1);
    }
}
