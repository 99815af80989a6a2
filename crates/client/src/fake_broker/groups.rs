//! The fake broker's group coordinator: FindCoordinator, ListGroups, DescribeGroups,
//! ConsumerGroupDescribe, OffsetFetch, OffsetCommit, DeleteGroups and OffsetDelete over
//! in-memory groups, with the
//! rules the client relies on (the admin commit only for groups without members, deletes only
//! of empty groups) and a queue of coordinator errors to inject.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
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
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::{encode, FakeState};

/// One member of a fake group.
#[derive(Debug, Clone, Default)]
pub struct FakeMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub instance_id: Option<String>,
    /// Consumer-protocol assignment bytes (version prefix included), for classic groups.
    pub assignment: Bytes,
    /// The assignment of a KIP-848 group's member: (topic, partitions).
    pub assigned: Vec<(String, Vec<i32>)>,
}

/// One fake group.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<FakeMember>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    /// A KIP-848 consumer group (ConsumerGroupDescribe describes it, DescribeGroups does not).
    pub kip848: bool,
}

impl Default for FakeGroup {
    fn default() -> Self {
        FakeGroup {
            state: "Empty".to_string(),
            protocol_type: "consumer".to_string(),
            protocol: String::new(),
            members: Vec::new(),
            offsets: BTreeMap::new(),
            kip848: false,
        }
    }
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn handle(
    state: &mut FakeState,
    key: i16,
    version: i16,
    mut body: Bytes,
    port: u16,
) -> Option<(BytesMut, i16)> {
    match key {
        10 => {
            let request = FindCoordinatorRequest::decode(&mut body, version).unwrap();
            encode(&find_coordinator(state, request, version, port), version)
        }
        16 => {
            let request = ListGroupsRequest::decode(&mut body, version).unwrap();
            encode(&list_groups(state, request, version), version)
        }
        15 => {
            let request = DescribeGroupsRequest::decode(&mut body, version).unwrap();
            encode(&describe_groups(state, request), version)
        }
        69 => {
            let request = ConsumerGroupDescribeRequest::decode(&mut body, version).unwrap();
            encode(&consumer_group_describe(state, request), version)
        }
        9 => {
            let request = OffsetFetchRequest::decode(&mut body, version).unwrap();
            encode(&offset_fetch(state, request, version), version)
        }
        8 => {
            let request = OffsetCommitRequest::decode(&mut body, version).unwrap();
            encode(&offset_commit(state, request), version)
        }
        42 => {
            let request = DeleteGroupsRequest::decode(&mut body, version).unwrap();
            encode(&delete_groups(state, request), version)
        }
        47 => {
            let request = OffsetDeleteRequest::decode(&mut body, version).unwrap();
            encode(&offset_delete(state, request), version)
        }
        other => panic!("not a group api key: {other}"),
    }
}

fn find_coordinator(
    state: &FakeState,
    request: FindCoordinatorRequest,
    version: i16,
    port: u16,
) -> FindCoordinatorResponse {
    let (node, port) = state.coordinator.unwrap_or((1, port));
    let host = text("127.0.0.1");
    if version < 4 {
        return FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port as i32);
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(node))
                .with_host(host.clone())
                .with_port(port as i32)
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

fn list_groups(state: &FakeState, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let groups = state
        .groups
        .iter()
        .filter(|(_, group)| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(&group.state))
        })
        .map(|(id, group)| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(text(id)))
                .with_protocol_type(text(&group.protocol_type));
            if version >= 4 {
                listed.with_group_state(text(&group.state))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

fn describe_groups(
    state: &mut FakeState,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            if let Some(code) = state.coordinator_errors.pop_front() {
                return described.with_error_code(code);
            }
            let Some(group) = state.groups.get(id.as_str()).filter(|group| !group.kip848) else {
                return described.with_group_state(text("Dead"));
            };
            let members = group
                .members
                .iter()
                .map(|member| {
                    DescribedGroupMember::default()
                        .with_member_id(text(&member.member_id))
                        .with_group_instance_id(member.instance_id.as_deref().map(text))
                        .with_client_id(text(&member.client_id))
                        .with_client_host(text(&member.client_host))
                        .with_member_assignment(member.assignment.clone())
                })
                .collect();
            described
                .with_group_state(text(&group.state))
                .with_protocol_type(text(&group.protocol_type))
                .with_protocol_data(text(&group.protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn consumer_group_describe(
    state: &mut FakeState,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use kafka_protocol::messages::consumer_group_describe_response::{
        Assignment, DescribedGroup, Member, TopicPartitions,
    };
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            if let Some(code) = state.coordinator_errors.pop_front() {
                return described.with_error_code(code);
            }
            let Some(group) = state.groups.get(id.as_str()).filter(|group| group.kip848) else {
                return described.with_error_code(69);
            };
            let members = group
                .members
                .iter()
                .map(|member| {
                    let assigned = member
                        .assigned
                        .iter()
                        .map(|(topic, partitions)| {
                            TopicPartitions::default()
                                .with_topic_name(TopicName(text(topic)))
                                .with_partitions(partitions.clone())
                        })
                        .collect();
                    Member::default()
                        .with_member_id(text(&member.member_id))
                        .with_client_id(text(&member.client_id))
                        .with_client_host(text(&member.client_host))
                        .with_assignment(Assignment::default().with_topic_partitions(assigned))
                })
                .collect();
            described
                .with_group_state(text(&group.state))
                .with_assignor_name(text(&group.protocol))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// The committed offsets for the wanted partitions (all committed ones for `None`), -1 where
/// nothing is committed, by topic.
fn committed(
    state: &FakeState,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<(i32, i64)>)> {
    let offsets = state.groups.get(group).map(|group| &group.offsets);
    let lookup = |topic: &str, partition: i32| {
        offsets
            .and_then(|offsets| offsets.get(&(topic.to_string(), partition)))
            .copied()
            .unwrap_or(-1)
    };
    match wanted {
        Some(wanted) => wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions.iter().map(|&p| (p, lookup(&topic, p))).collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
            for ((topic, partition), offset) in offsets.into_iter().flatten() {
                by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, *offset));
            }
            by_topic.into_iter().collect()
        }
    }
}

fn offset_fetch(
    state: &mut FakeState,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let error_code = state.coordinator_errors.pop_front().unwrap_or(0);
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|wanted| {
                let topics = wanted.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = committed(state, wanted.group_id.as_str(), topics)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, offset)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(text(&topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(wanted.group_id)
                    .with_error_code(error_code)
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
    let topics = committed(state, request.group_id.as_str(), wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset)| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(&topic)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(error_code)
        .with_topics(topics)
}

fn offset_commit(state: &mut FakeState, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let injected = state.coordinator_errors.pop_front();
    let group_id = request.group_id.to_string();
    let admin = request.generation_id_or_member_epoch < 0 && request.member_id.is_empty();
    let has_members = state
        .groups
        .get(&group_id)
        .is_some_and(|group| !group.members.is_empty());
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let known = state
                        .topics
                        .get(topic.name.as_str())
                        .is_some_and(|(ps, _)| (p.partition_index as usize) < ps.len());
                    let error_code = match injected {
                        Some(code) => code,
                        None if !admin => 22,
                        None if has_members => 25,
                        None if !known => 3,
                        None => {
                            let group = state.groups.entry(group_id.clone()).or_default();
                            let key = (topic.name.to_string(), p.partition_index);
                            group.offsets.insert(key, p.committed_offset);
                            0
                        }
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error_code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn delete_groups(state: &mut FakeState, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|id| {
            let error_code = match state.coordinator_errors.pop_front() {
                Some(code) => code,
                None => match state.groups.get(id.as_str()) {
                    None => 69,
                    Some(group) if !group.members.is_empty() => 68,
                    Some(_) => {
                        state.groups.remove(id.as_str());
                        0
                    }
                },
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error_code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

fn offset_delete(state: &mut FakeState, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if let Some(code) = state.coordinator_errors.pop_front() {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let Some(group) = state.groups.get_mut(request.group_id.as_str()) else {
        return OffsetDeleteResponse::default().with_error_code(69);
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let key = (topic.name.to_string(), p.partition_index);
                    group.offsets.remove(&key);
                    OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
