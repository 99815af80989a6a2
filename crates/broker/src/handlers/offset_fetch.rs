//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+), for the named
//! partitions or all of them. A partition with nothing committed answers offset -1. With
//! `require_stable` (v7+, KIP-447; read_committed consumers send it), a partition whose
//! offset a transaction is committing answers UNSTABLE_OFFSET_COMMIT, and the client retries.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use strom_coordinator::offsets::CommittedOffset;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

/// Per topic: each partition's committed offset (None: nothing), or why there is none to give.
type TopicOffsets = BTreeMap<String, Vec<(i32, Result<Option<CommittedOffset>, ErrorCode>)>>;

fn lookup(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> TopicOffsets {
    let wanted: Option<Vec<(String, i32)>> = topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(name, partitions)| partitions.into_iter().map(move |p| (name.clone(), p)))
            .collect()
    });
    let coordinator = broker.groups.coordinator();
    let found: Vec<(String, i32, Result<Option<CommittedOffset>, ErrorCode>)> = match require_stable
    {
        true => coordinator.fetch_stable_offsets(group, wanted.as_deref()),
        false => coordinator
            .fetch_offsets(group, wanted.as_deref())
            .into_iter()
            .map(|(topic, partition, offset)| (topic, partition, Ok(offset)))
            .collect(),
    };
    drop(coordinator);
    let mut by_topic: TopicOffsets = BTreeMap::new();
    for (topic, partition, offset) in found {
        by_topic.entry(topic).or_default().push((partition, offset));
    }
    by_topic
}

/// Offset, leader epoch, metadata and error code of one partition's answer.
fn fields(offset: &Result<Option<CommittedOffset>, ErrorCode>) -> (i64, i32, String, ErrorCode) {
    match offset {
        Ok(Some(o)) => (
            o.offset,
            o.leader_epoch,
            o.metadata.clone(),
            ErrorCode::None,
        ),
        Ok(None) => (-1, -1, String::new(), ErrorCode::None),
        Err(error) => (-1, -1, String::new(), *error),
    }
}

/// The v8+ layout and the older one use twin structs with the same fields.
macro_rules! topic_responses {
    ($offsets:expr, $topic:ty, $partition:ty) => {
        $offsets
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .iter()
                    .map(|(index, offset)| {
                        let (committed, epoch, metadata, error) = fields(offset);
                        <$partition>::default()
                            .with_partition_index(*index)
                            .with_committed_offset(committed)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                            .with_error_code(error.code())
                    })
                    .collect();
                <$topic>::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect()
    };
}

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let require_stable = request.require_stable;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                if !broker.groups.is_coordinator(group.group_id.as_str()) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(group.group_id.0))
                        .with_error_code(ErrorCode::NotCoordinator.code());
                }
                let offsets = lookup(broker, group.group_id.as_str(), wanted, require_stable);
                let topics = topic_responses!(
                    offsets,
                    OffsetFetchResponseTopics,
                    OffsetFetchResponsePartitions
                );
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(group.group_id.0))
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    if !broker.groups.is_coordinator(request.group_id.as_str()) {
        // The top-level error code exists from v2 on; v1 clients see empty offsets.
        return OffsetFetchResponse::default().with_error_code(match version >= 2 {
            true => ErrorCode::NotCoordinator.code(),
            false => 0,
        });
    }
    let offsets = lookup(broker, request.group_id.as_str(), wanted, require_stable);
    OffsetFetchResponse::default().with_topics(topic_responses!(
        offsets,
        OffsetFetchResponseTopic,
        OffsetFetchResponsePartition
    ))
}
