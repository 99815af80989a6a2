//! The data path: Produce (WRITE on the topic, and on the transactional id for transactional
//! batches), Fetch (READ on the topic; CLUSTER_ACTION for a follower), ListOffsets and
//! OffsetForLeaderEpoch (DESCRIBE; CLUSTER_ACTION for a follower), Metadata (only topics the
//! principal may DESCRIBE; auto-creation needs CREATE).

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, MetadataRequest, OffsetForLeaderEpochRequest, ProduceRequest,
    RequestKind, ResponseKind,
};
use strom_types::security::{AclOperation, ResourceType};
use strom_types::ErrorCode;

use super::{patch_of, take_refused, take_refused_partitions, Access, Checked};

const TOPIC_DENIED: ErrorCode = ErrorCode::TopicAuthorizationFailed;

pub fn produce(access: &Access, mut request: ProduceRequest) -> Checked {
    let transactional = request.transactional_id.as_ref().map(|id| id.to_string());
    let refused_all =
        transactional.is_some_and(|id| !access.allows_transactional_id(AclOperation::Write, &id));
    let refused = take_refused_partitions(
        &mut request.topic_data,
        |topic| !refused_all && access.allows_topic(AclOperation::Write, &topic.name),
        |topic| {
            (
                topic.name.clone(),
                topic.partition_data.iter().map(|p| p.index).collect(),
            )
        },
    );
    let code = match refused_all {
        true => ErrorCode::TransactionalIdAuthorizationFailed,
        false => TOPIC_DENIED,
    };
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::Produce(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::Produce(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partition_responses = (partitions.into_iter())
                .map(|index| {
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                        .with_log_start_offset(-1)
                        .with_log_append_time_ms(-1)
                })
                .collect();
            response.responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partition_responses),
            );
        }
    });
    Checked::Allowed(RequestKind::Produce(request), patch)
}

pub fn fetch(access: &Access, mut request: FetchRequest) -> Checked {
    let follower = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
    let refused_all = follower && !access.allows_cluster(AclOperation::ClusterAction);
    if follower && !refused_all {
        return Checked::Allowed(RequestKind::Fetch(request), None);
    }
    let refused: Vec<_> = take_refused(&mut request.topics, |topic| {
        !refused_all && access.allows_topic(AclOperation::Read, &topic.topic)
    })
    .into_iter()
    .map(|topic| {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>();
        (topic.topic.clone(), topic.topic_id, partitions)
    })
    .collect();
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::Fetch(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::Fetch(response) = response else {
            return;
        };
        for (name, id, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    PartitionData::default()
                        .with_partition_index(index)
                        .with_error_code(TOPIC_DENIED.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            response.responses.push(
                FetchableTopicResponse::default()
                    .with_topic(name)
                    .with_topic_id(id)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::Fetch(request), patch)
}

pub fn list_offsets(access: &Access, mut request: ListOffsetsRequest) -> Checked {
    let refused = take_refused_partitions(
        &mut request.topics,
        |topic| access.allows_topic(AclOperation::Describe, &topic.name),
        |topic| {
            (
                topic.name.clone(),
                topic.partitions.iter().map(|p| p.partition_index).collect(),
            )
        },
    );
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::ListOffsets(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::ListOffsets(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(TOPIC_DENIED.code())
                        .with_timestamp(-1)
                        .with_offset(-1)
                })
                .collect();
            response.topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::ListOffsets(request), patch)
}

pub fn offset_for_leader_epoch(
    access: &Access,
    mut request: OffsetForLeaderEpochRequest,
) -> Checked {
    let follower = request.replica_id.0 >= 0;
    let refused_all = follower && !access.allows_cluster(AclOperation::ClusterAction);
    if follower && !refused_all {
        return Checked::Allowed(RequestKind::OffsetForLeaderEpoch(request), None);
    }
    let refused = take_refused_partitions(
        &mut request.topics,
        |topic| !refused_all && access.allows_topic(AclOperation::Describe, &topic.topic),
        |topic| {
            (
                topic.topic.clone(),
                topic.partitions.iter().map(|p| p.partition).collect(),
            )
        },
    );
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::OffsetForLeaderEpoch(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::OffsetForLeaderEpoch(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    EpochEndOffset::default()
                        .with_partition(index)
                        .with_error_code(TOPIC_DENIED.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                })
                .collect();
            response.topics.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::OffsetForLeaderEpoch(request), patch)
}

/// Metadata: all topics -> those the principal may DESCRIBE; named topics it may not ->
/// TOPIC_AUTHORIZATION_FAILED; auto-creation only with CREATE on the cluster or the topic.
pub fn metadata(access: &Access, mut request: MetadataRequest, version: i16) -> Checked {
    // v0 asks for every topic with an empty list.
    if version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty) {
        request.topics = None;
    }
    let Some(topics) = &mut request.topics else {
        let allowed: Vec<String> = (access.broker().quorum.image().topics.keys())
            .filter(|name| access.allows_topic(AclOperation::Describe, name))
            .cloned()
            .collect();
        let patch = patch_of(move |response| {
            let ResponseKind::Metadata(response) = response else {
                return;
            };
            (response.topics).retain(|topic| {
                (topic.name.as_ref()).is_some_and(|name| allowed.iter().any(|a| a == name.as_str()))
            });
        });
        return Checked::Allowed(RequestKind::Metadata(request), patch);
    };
    let mut refused = Vec::new();
    topics.retain(|topic| {
        let Some(name) = &topic.name else { return true };
        let allowed = access.allows_topic(AclOperation::Describe, name);
        if !allowed {
            refused.push(name.clone());
        }
        allowed
    });
    if request.allow_auto_topic_creation
        && !access.allows_cluster(AclOperation::Create)
        && !access.allows_any(AclOperation::Create, ResourceType::Topic)
    {
        request.allow_auto_topic_creation = false;
    }
    // Every name refused leaves an empty list: Kafka's "no topics", then the refusals.
    let patch = patch_of(move |response| {
        let ResponseKind::Metadata(response) = response else {
            return;
        };
        for name in refused {
            response.topics.push(
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_error_code(TOPIC_DENIED.code()),
            );
        }
    });
    Checked::Allowed(RequestKind::Metadata(request), patch)
}
