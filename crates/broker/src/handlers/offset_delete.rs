//! OffsetDelete: drops a group's committed offsets for topics its members do not subscribe to.
//! Only the group's coordinator does; another broker answers NOT_COORDINATOR.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use strom_coordinator::offsets::OffsetKey;
use strom_types::ErrorCode;

use super::Reply;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: OffsetDeleteRequest, _version: i16) -> Reply {
    let groups = broker.groups.clone();
    let group_id = request.group_id.to_string();
    if let Err(error) = strom_coordinator::limits::check_group_id_not_empty(&group_id) {
        let response = OffsetDeleteResponse::default().with_error_code(error.code());
        return Reply::Now(ResponseKind::OffsetDelete(response));
    }
    if !groups.is_coordinator(&group_id) {
        let response =
            OffsetDeleteResponse::default().with_error_code(ErrorCode::NotCoordinator.code());
        return Reply::Now(ResponseKind::OffsetDelete(response));
    }
    if groups.coordinator().group(&group_id).is_none() {
        let response =
            OffsetDeleteResponse::default().with_error_code(ErrorCode::GroupIdNotFound.code());
        return Reply::Now(ResponseKind::OffsetDelete(response));
    }
    // A live group whose subscriptions cannot be known refuses the whole request.
    let any_topic = request
        .topics
        .first()
        .map(|t| t.name.to_string())
        .unwrap_or_default();
    if groups
        .coordinator()
        .check_offset_delete(&group_id, &any_topic)
        == Err(ErrorCode::NonEmptyGroup)
    {
        let response =
            OffsetDeleteResponse::default().with_error_code(ErrorCode::NonEmptyGroup.code());
        return Reply::Now(ResponseKind::OffsetDelete(response));
    }
    let mut deletions = Vec::new();
    let mut topics = Vec::new();
    for topic in request.topics {
        let allowed = groups
            .coordinator()
            .check_offset_delete(&group_id, topic.name.as_str());
        let partitions: Vec<(i32, ErrorCode)> = topic
            .partitions
            .iter()
            .map(|p| match allowed {
                Err(error) => (p.partition_index, error),
                Ok(()) => {
                    deletions.push(OffsetKey {
                        group: group_id.clone(),
                        topic: topic.name.to_string(),
                        partition: p.partition_index,
                    });
                    (p.partition_index, ErrorCode::None)
                }
            })
            .collect();
        topics.push((topic.name, partitions));
    }
    Reply::Later(Box::pin(async move {
        let written = groups.write_tombstones(&deletions).await;
        if written.is_ok() {
            let keys: Vec<(String, i32)> = deletions
                .into_iter()
                .map(|k| (k.topic, k.partition))
                .collect();
            groups.coordinator().remove_offsets(&group_id, &keys);
        }
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let error = super::after_write(&written, error);
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(error.code())
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_topics(topics))
    }))
}
