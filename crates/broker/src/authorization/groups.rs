//! The group APIs: FindCoordinator (DESCRIBE on the group or transactional id), the classic
//! protocol's JoinGroup/SyncGroup/Heartbeat/LeaveGroup and KIP-848's heartbeat (READ on the
//! group), offsets (OffsetCommit: READ on the group and topics; OffsetFetch: DESCRIBE on the
//! group, topics filtered by DESCRIBE; OffsetDelete: DELETE on the group, READ on topics),
//! DescribeGroups / ConsumerGroupDescribe (DESCRIBE), ListGroups (DESCRIBE on the cluster, or
//! only the groups it may DESCRIBE), DeleteGroups (DELETE).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    consumer_group_describe_response, describe_groups_response, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestKind, ResponseKind, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use strom_types::security::{AclOperation, ResourceType};
use strom_types::ErrorCode;

use super::{patch_of, take_refused, take_refused_partitions, Access, Checked};

/// A topic and the partitions a request named in it.
type TopicPartitions = (TopicName, Vec<i32>);

const GROUP_DENIED: ErrorCode = ErrorCode::GroupAuthorizationFailed;
const TOPIC_DENIED: ErrorCode = ErrorCode::TopicAuthorizationFailed;

/// FindCoordinator: key type 0 is a group, 1 a transactional id; v4 asks for several keys.
pub fn find_coordinator(
    access: &Access,
    mut request: FindCoordinatorRequest,
    version: i16,
) -> Checked {
    let transactional = request.key_type == 1;
    let operation_ok = |key: &str| match transactional {
        true => access.allows_transactional_id(AclOperation::Describe, key),
        false => access.allows_group(AclOperation::Describe, key),
    };
    let code = match transactional {
        true => ErrorCode::TransactionalIdAuthorizationFailed,
        false => GROUP_DENIED,
    };
    if version < 4 {
        if operation_ok(&request.key) {
            return Checked::Allowed(RequestKind::FindCoordinator(request), None);
        }
        let response = FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id((-1).into())
            .with_port(-1);
        return Checked::Refused(ResponseKind::FindCoordinator(response));
    }
    let refused: Vec<_> = take_refused(&mut request.coordinator_keys, |key| operation_ok(key));
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::FindCoordinator(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::FindCoordinator(response) = response else {
            return;
        };
        for key in refused {
            response.coordinators.push(
                Coordinator::default()
                    .with_key(key)
                    .with_node_id((-1).into())
                    .with_port(-1)
                    .with_error_code(code.code()),
            );
        }
    });
    Checked::Allowed(RequestKind::FindCoordinator(request), patch)
}

pub fn join_group(access: &Access, request: JoinGroupRequest) -> Checked {
    if access.allows_group(AclOperation::Read, &request.group_id) {
        return Checked::Allowed(RequestKind::JoinGroup(request), None);
    }
    let response = JoinGroupResponse::default()
        .with_error_code(GROUP_DENIED.code())
        .with_generation_id(-1);
    Checked::Refused(ResponseKind::JoinGroup(response))
}

pub fn sync_group(access: &Access, request: SyncGroupRequest) -> Checked {
    if access.allows_group(AclOperation::Read, &request.group_id) {
        return Checked::Allowed(RequestKind::SyncGroup(request), None);
    }
    let response = SyncGroupResponse::default().with_error_code(GROUP_DENIED.code());
    Checked::Refused(ResponseKind::SyncGroup(response))
}

pub fn heartbeat(access: &Access, request: HeartbeatRequest) -> Checked {
    if access.allows_group(AclOperation::Read, &request.group_id) {
        return Checked::Allowed(RequestKind::Heartbeat(request), None);
    }
    let response = HeartbeatResponse::default().with_error_code(GROUP_DENIED.code());
    Checked::Refused(ResponseKind::Heartbeat(response))
}

pub fn leave_group(access: &Access, request: LeaveGroupRequest) -> Checked {
    if access.allows_group(AclOperation::Read, &request.group_id) {
        return Checked::Allowed(RequestKind::LeaveGroup(request), None);
    }
    let response = LeaveGroupResponse::default().with_error_code(GROUP_DENIED.code());
    Checked::Refused(ResponseKind::LeaveGroup(response))
}

pub fn consumer_group_heartbeat(
    access: &Access,
    request: ConsumerGroupHeartbeatRequest,
) -> Checked {
    if access.allows_group(AclOperation::Read, &request.group_id) {
        return Checked::Allowed(RequestKind::ConsumerGroupHeartbeat(request), None);
    }
    let response = ConsumerGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED.code());
    Checked::Refused(ResponseKind::ConsumerGroupHeartbeat(response))
}

/// Each topic's partitions, all with `code`, in OffsetCommit's response shape.
fn commit_errors(topics: Vec<TopicPartitions>, code: ErrorCode) -> Vec<OffsetCommitResponseTopic> {
    (topics.into_iter())
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    (partitions.into_iter())
                        .map(|index| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

pub fn offset_commit(access: &Access, mut request: OffsetCommitRequest) -> Checked {
    let listed =
        |topics: &[kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic]| {
            (topics.iter())
                .map(|t| {
                    (
                        t.name.clone(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect::<Vec<_>>()
        };
    if !access.allows_group(AclOperation::Read, &request.group_id) {
        let topics = commit_errors(listed(&request.topics), GROUP_DENIED);
        let response = OffsetCommitResponse::default().with_topics(topics);
        return Checked::Refused(ResponseKind::OffsetCommit(response));
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|topic| access.allows_topic(AclOperation::Read, &topic.name));
    request.topics = allowed;
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::OffsetCommit(request), None);
    }
    let refused = commit_errors(listed(&refused), TOPIC_DENIED);
    let patch = patch_of(move |response| {
        let ResponseKind::OffsetCommit(response) = response else {
            return;
        };
        response.topics.extend(refused);
    });
    Checked::Allowed(RequestKind::OffsetCommit(request), patch)
}

/// OffsetFetch: v0-7 name one group, v8+ several. A group the principal may not DESCRIBE
/// gets GROUP_AUTHORIZATION_FAILED; named topics it may not DESCRIBE get
/// TOPIC_AUTHORIZATION_FAILED, and "all topics" quietly leaves those out.
pub fn offset_fetch(access: &Access, mut request: OffsetFetchRequest, version: i16) -> Checked {
    if version < 8 {
        return offset_fetch_single(access, request);
    }
    let mut refused_groups = Vec::new();
    let mut refused_topics: Vec<(GroupId, Vec<TopicPartitions>)> = Vec::new();
    let mut hidden: Vec<GroupId> = Vec::new();
    request.groups.retain_mut(|group| {
        if !access.allows_group(AclOperation::Describe, &group.group_id) {
            refused_groups.push(group.group_id.clone());
            return false;
        }
        match &mut group.topics {
            None => hidden.push(group.group_id.clone()),
            Some(topics) => {
                let refused: Vec<_> = take_refused(topics, |topic| {
                    access.allows_topic(AclOperation::Describe, &topic.name)
                })
                .into_iter()
                .map(|topic| (topic.name.clone(), topic.partition_indexes.clone()))
                .collect();
                if !refused.is_empty() {
                    refused_topics.push((group.group_id.clone(), refused));
                }
            }
        }
        true
    });
    let describable: Vec<String> = (access.broker().quorum.image().topics.keys())
        .filter(|name| access.allows_topic(AclOperation::Describe, name))
        .cloned()
        .collect();
    let patch = patch_of(move |response| {
        let ResponseKind::OffsetFetch(response) = response else {
            return;
        };
        for group in &mut response.groups {
            if hidden.contains(&group.group_id) {
                (group.topics).retain(|t| describable.iter().any(|d| d == t.name.as_str()));
            }
            if let Some((_, refused)) = refused_topics.iter().find(|(id, _)| *id == group.group_id)
            {
                for (name, partitions) in refused {
                    group.topics.push(
                        OffsetFetchResponseTopics::default()
                            .with_name(name.clone())
                            .with_partitions(
                                (partitions.iter())
                                    .map(|index| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(*index)
                                            .with_committed_offset(-1)
                                            .with_error_code(TOPIC_DENIED.code())
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
        }
        for group_id in refused_groups {
            response.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(GROUP_DENIED.code()),
            );
        }
    });
    Checked::Allowed(RequestKind::OffsetFetch(request), patch)
}

fn offset_fetch_single(access: &Access, mut request: OffsetFetchRequest) -> Checked {
    if !access.allows_group(AclOperation::Describe, &request.group_id) {
        let response = OffsetFetchResponse::default().with_error_code(GROUP_DENIED.code());
        return Checked::Refused(ResponseKind::OffsetFetch(response));
    }
    let Some(topics) = &mut request.topics else {
        let describable: Vec<String> = (access.broker().quorum.image().topics.keys())
            .filter(|name| access.allows_topic(AclOperation::Describe, name))
            .cloned()
            .collect();
        let patch = patch_of(move |response| {
            let ResponseKind::OffsetFetch(response) = response else {
                return;
            };
            (response.topics).retain(|t| describable.iter().any(|d| d == t.name.as_str()));
        });
        return Checked::Allowed(RequestKind::OffsetFetch(request), patch);
    };
    let refused: Vec<_> = take_refused(topics, |topic| {
        access.allows_topic(AclOperation::Describe, &topic.name)
    })
    .into_iter()
    .map(|topic| (topic.name.clone(), topic.partition_indexes.clone()))
    .collect();
    let patch = patch_of(move |response| {
        let ResponseKind::OffsetFetch(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(-1)
                        .with_error_code(TOPIC_DENIED.code())
                })
                .collect();
            response.topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::OffsetFetch(request), patch)
}

pub fn describe_groups(access: &Access, mut request: DescribeGroupsRequest) -> Checked {
    let refused: Vec<_> = take_refused(&mut request.groups, |group| {
        access.allows_group(AclOperation::Describe, group)
    });
    let patch = (!refused.is_empty()).then(|| -> super::Patch {
        Box::new(move |response| {
            let ResponseKind::DescribeGroups(response) = response else {
                return;
            };
            for group in refused {
                response.groups.push(
                    describe_groups_response::DescribedGroup::default()
                        .with_group_id(group)
                        .with_error_code(GROUP_DENIED.code()),
                );
            }
        })
    });
    Checked::Allowed(RequestKind::DescribeGroups(request), patch)
}

pub fn consumer_group_describe(
    access: &Access,
    mut request: ConsumerGroupDescribeRequest,
) -> Checked {
    let refused: Vec<_> = take_refused(&mut request.group_ids, |group| {
        access.allows_group(AclOperation::Describe, group)
    });
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::ConsumerGroupDescribe(request), None);
    }
    if request.group_ids.is_empty() {
        let groups = (refused.into_iter())
            .map(|group| {
                consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_DENIED.code())
            })
            .collect();
        let response = ConsumerGroupDescribeResponse::default().with_groups(groups);
        return Checked::Refused(ResponseKind::ConsumerGroupDescribe(response));
    }
    let patch = patch_of(move |response| {
        let ResponseKind::ConsumerGroupDescribe(response) = response else {
            return;
        };
        for group in refused {
            response.groups.push(
                consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_DENIED.code()),
            );
        }
    });
    Checked::Allowed(RequestKind::ConsumerGroupDescribe(request), patch)
}

/// ListGroups: everything with DESCRIBE on the cluster, else the groups it may DESCRIBE.
pub fn list_groups(access: &Access, request: ListGroupsRequest) -> Checked {
    if access.allows_cluster(AclOperation::Describe) {
        return Checked::Allowed(RequestKind::ListGroups(request), None);
    }
    let visible = access.filter(AclOperation::Describe, ResourceType::Group);
    let patch = patch_of(move |response| {
        let ResponseKind::ListGroups(response) = response else {
            return;
        };
        (response.groups).retain(|g| visible(&g.group_id));
    });
    Checked::Allowed(RequestKind::ListGroups(request), patch)
}

pub fn delete_groups(access: &Access, mut request: DeleteGroupsRequest) -> Checked {
    let refused: Vec<_> = take_refused(&mut request.groups_names, |group| {
        access.allows_group(AclOperation::Delete, group)
    });
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::DeleteGroups(request), None);
    }
    let results: Vec<DeletableGroupResult> = (refused.into_iter())
        .map(|group| {
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(GROUP_DENIED.code())
        })
        .collect();
    if request.groups_names.is_empty() {
        let response = DeleteGroupsResponse::default().with_results(results);
        return Checked::Refused(ResponseKind::DeleteGroups(response));
    }
    let patch = patch_of(move |response| {
        let ResponseKind::DeleteGroups(response) = response else {
            return;
        };
        response.results.extend(results);
    });
    Checked::Allowed(RequestKind::DeleteGroups(request), patch)
}

pub fn offset_delete(access: &Access, mut request: OffsetDeleteRequest) -> Checked {
    if !access.allows_group(AclOperation::Delete, &request.group_id) {
        let response = OffsetDeleteResponse::default().with_error_code(GROUP_DENIED.code());
        return Checked::Refused(ResponseKind::OffsetDelete(response));
    }
    let refused = take_refused_partitions(
        &mut request.topics,
        |topic| access.allows_topic(AclOperation::Read, &topic.name),
        |topic| {
            (
                topic.name.clone(),
                topic.partitions.iter().map(|p| p.partition_index).collect(),
            )
        },
    );
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::OffsetDelete(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::OffsetDelete(response) = response else {
            return;
        };
        for (name, partitions) in refused {
            let partitions = (partitions.into_iter())
                .map(|index| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(TOPIC_DENIED.code())
                })
                .collect();
            response.topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::OffsetDelete(request), patch)
}
