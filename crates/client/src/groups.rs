//! Consumer-group administration: finding a group's coordinator, listing and describing
//! groups, reading committed offsets, the "admin commit" that resets them, and deleting
//! offsets and groups.
//!
//! Routing: every group request but ListGroups goes to the group's coordinator, which each
//! attempt looks up afresh with FindCoordinator. An answer saying the coordinator moved or is
//! not ready (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`)
//! makes the call look it up again and retry, with the client's bounded backoff. ListGroups goes
//! to every broker, since each lists only the groups it coordinates.
//!
//! Two kinds of group: classic groups (JoinGroup/SyncGroup), described with DescribeGroups,
//! whose member assignments are bytes opaque to the broker that
//! [`decode_consumer_assignment`] reads as Kafka's `ConsumerProtocolAssignment`; and KIP-848
//! consumer groups, described with ConsumerGroupDescribe, whose assignments the broker computes
//! and reports as topic-partitions. [`Client::describe_groups`] asks ConsumerGroupDescribe first
//! (when the coordinator speaks it) and DescribeGroups for a group that is not a KIP-848 group,
//! as Kafka's admin client does.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as DescribedConsumerGroup;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerProtocolAssignment,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetCommitResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Message, Request, StrBytes};
use strom_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, PartitionIndex};

use crate::client::topic_name;
use crate::error::{is_coordinator_refreshable_code, Subject};
use crate::{BrokerMetadata, Client, ClientError};

/// The protocol type of groups formed by Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// FindCoordinator's key type for transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// FindCoordinator's key type for consumer groups.
const KEY_TYPE_GROUP: i8 = 0;

/// A group's state, as the coordinator names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupState {
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// No members; committed offsets may remain.
    Empty,
    /// Unknown to the coordinator, or being removed.
    Dead,
    /// A KIP-848 consumer group computing a new assignment.
    Assigning,
    /// A KIP-848 consumer group whose members are moving to a new assignment.
    Reconciling,
    /// A state this client does not know.
    Other(String),
}

impl GroupState {
    /// Every state Kafka names, for classic and KIP-848 consumer groups.
    pub const KNOWN: [GroupState; 7] = [
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Empty,
        GroupState::Dead,
        GroupState::Assigning,
        GroupState::Reconciling,
    ];

    /// Reads a state name, ignoring case.
    pub fn parse(name: &str) -> GroupState {
        GroupState::KNOWN
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| GroupState::Other(name.to_string()))
    }

    /// Kafka's name for the state.
    pub fn name(&self) -> &str {
        match self {
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Empty => "Empty",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Other(name) => name,
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// "consumer" for Kafka consumers; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// `None` when the broker's ListGroups version (below 4) does not say.
    pub state: Option<GroupState>,
}

/// A topic and some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<PartitionIndex>,
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: PartitionIndex,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: PartitionIndex) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    /// The static member id (`group.instance.id`), if the member has one.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The partitions assigned to the member; empty while the group rebalances. `None` when
    /// the group does not use the consumer protocol or the bytes do not decode as its
    /// assignment.
    pub assignment: Option<Vec<TopicPartitions>>,
}

/// Which group protocol a group follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// JoinGroup/SyncGroup, the members assign partitions (described with DescribeGroups).
    Classic,
    /// KIP-848: the broker assigns partitions (described with ConsumerGroupDescribe).
    Consumer,
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        })
    }
}

/// What the coordinator says about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub group_type: GroupType,
    /// [`GroupState::Dead`] for a group the coordinator does not know.
    pub state: GroupState,
    /// "consumer" for consumer groups of either type.
    pub protocol_type: String,
    /// The protocol the members agreed on, or the broker's assignor: the assignor's name.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub partition: TopicPartition,
    /// `None` when the group has committed nothing for the partition.
    pub offset: Option<Offset>,
    pub leader_epoch: Option<LeaderEpoch>,
    pub metadata: Option<String>,
}

/// An offset to commit for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: TopicPartition,
    pub offset: Offset,
}

impl Client {
    /// The broker coordinating a group, retrying while the coordinator is not available.
    pub async fn find_coordinator(&self, group: &str) -> Result<BrokerMetadata, ClientError> {
        self.find_coordinator_of(KEY_TYPE_GROUP, group).await
    }

    /// The transaction coordinator of a transactional id (FindCoordinator key type 1).
    pub async fn find_transaction_coordinator(
        &self,
        transactional_id: &str,
    ) -> Result<BrokerMetadata, ClientError> {
        self.find_coordinator_of(KEY_TYPE_TRANSACTION, transactional_id)
            .await
    }

    async fn find_coordinator_of(
        &self,
        key_type: i8,
        key: &str,
    ) -> Result<BrokerMetadata, ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_find_coordinator(key_type, key).await {
                Err(error) if self.retry(&error, &mut attempt, None, true).await => continue,
                result => return result,
            }
        }
    }

    async fn try_find_coordinator(
        &self,
        key_type: i8,
        group: &str,
    ) -> Result<BrokerMetadata, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        }
        .with_key_type(key_type);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        let (error_code, message, node, host, port) = if version >= 4 {
            let found = self.find_in_response(
                response.coordinators,
                "FindCoordinator",
                group,
                |coordinator| coordinator.key.as_str() == group,
            )?;
            let (node, host, port) = (found.node_id, found.host, found.port);
            (found.error_code, found.error_message, node, host, port)
        } else {
            let (node, host, port) = (response.node_id, response.host, response.port);
            (
                response.error_code,
                response.error_message,
                node,
                host,
                port,
            )
        };
        ClientError::check(error_code, message.as_deref(), Subject::group(group))?;
        Ok(BrokerMetadata {
            id: BrokerId(node.0),
            host: host.to_string(),
            port,
            rack: None,
        })
    }

    /// Sends a request built for the connection's version to the group's coordinator, and
    /// retries (finding the coordinator again) while the answer says it is not the
    /// coordinator or not ready. `repeatable` says whether the request may also be repeated
    /// after a lost connection. Returns the response and the version it was sent in.
    async fn send_to_coordinator<Req, Build>(
        &self,
        group: &str,
        repeatable: bool,
        build: Build,
    ) -> Result<(Req::Response, i16), ClientError>
    where
        Req: Request,
        Req::Response: CoordinatorResponse,
        Build: Fn(i16) -> Req,
    {
        let mut attempt = 0;
        loop {
            match self.try_send_to_coordinator(group, &build).await {
                Err(error) if self.retry(&error, &mut attempt, None, repeatable).await => continue,
                result => return result,
            }
        }
    }

    async fn try_send_to_coordinator<Req, Build>(
        &self,
        group: &str,
        build: &Build,
    ) -> Result<(Req::Response, i16), ClientError>
    where
        Req: Request,
        Req::Response: CoordinatorResponse,
        Build: Fn(i16) -> Req,
    {
        let coordinator = self.try_find_coordinator(KEY_TYPE_GROUP, group).await?;
        let connection = self.node_connection(coordinator).await?;
        let version = connection.version::<Req>()?;
        let response = connection
            .send_versioned(&build(version), version, self.request_timeout_ms())
            .await?;
        let coordinator_error = response
            .error_codes()
            .into_iter()
            .find(|&code| is_coordinator_refreshable_code(code));
        if let Some(code) = coordinator_error {
            return Err(ClientError::kafka(code, None, Subject::group(group)));
        }
        Ok((response, version))
    }

    /// Every group on every broker, sorted by id; with `states`, only groups in one of them
    /// (the brokers filter, which needs ListGroups v4).
    pub async fn list_groups(
        &self,
        states: &[GroupState],
    ) -> Result<Vec<GroupListing>, ClientError> {
        let metadata = self.metadata(Some(&[])).await?;
        let mut listed = Vec::new();
        for broker in metadata.brokers {
            listed.extend(self.list_groups_on(broker.id, states).await?);
        }
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(listed)
    }

    async fn list_groups_on(
        &self,
        broker: BrokerId,
        states: &[GroupState],
    ) -> Result<Vec<GroupListing>, ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_list_groups_on(broker, states).await {
                Err(error) if self.retry(&error, &mut attempt, None, true).await => continue,
                result => return result,
            }
        }
    }

    async fn try_list_groups_on(
        &self,
        broker: BrokerId,
        states: &[GroupState],
    ) -> Result<Vec<GroupListing>, ClientError> {
        let connection = self.broker_connection(broker).await?;
        let version = connection.version::<ListGroupsRequest>()?;
        if !states.is_empty() && version < 4 {
            return Err(ClientError::InvalidArgument(format!(
                "{} cannot filter groups by state: it speaks ListGroups v{version}, v4 is needed",
                connection.address()
            )));
        }
        let states_filter = states
            .iter()
            .map(|state| StrBytes::from_string(state.name().to_string()))
            .collect();
        let request = ListGroupsRequest::default().with_states_filter(states_filter);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        ClientError::check(response.error_code, None, Subject::default())?;
        Ok(response
            .groups
            .into_iter()
            .map(|group| GroupListing {
                group_id: group.group_id.to_string(),
                protocol_type: group.protocol_type.to_string(),
                state: (version >= 4).then(|| GroupState::parse(&group.group_state)),
            })
            .collect())
    }

    /// Describes groups, with requests to each group's coordinator: ConsumerGroupDescribe
    /// first, then DescribeGroups for a group that is not a KIP-848 consumer group. A group the
    /// coordinator does not know comes back [`GroupState::Dead`] with no members, as Kafka
    /// reports it.
    pub async fn describe_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<GroupDescription>, ClientError> {
        let mut described = Vec::with_capacity(groups.len());
        for &group in groups {
            let description = match self.describe_consumer_group(group).await? {
                Some(description) => description,
                None => self.describe_classic_group(group).await?,
            };
            described.push(description);
        }
        Ok(described)
    }

    /// A KIP-848 consumer group's description; `None` when the group is not one, or the
    /// coordinator does not speak ConsumerGroupDescribe.
    async fn describe_consumer_group(
        &self,
        group: &str,
    ) -> Result<Option<GroupDescription>, ClientError> {
        let sent = self
            .send_to_coordinator(group, true, |_| {
                ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)])
            })
            .await;
        let response = match sent {
            Ok((response, _)) => response,
            Err(ClientError::UnsupportedVersion { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let found =
            self.find_in_response(response.groups, "ConsumerGroupDescribe", group, |found| {
                found.group_id.as_str() == group
            })?;
        if found.error_code == ErrorCode::GroupIdNotFound.code() {
            return Ok(None);
        }
        ClientError::check(
            found.error_code,
            found.error_message.as_deref(),
            Subject::group(group),
        )?;
        Ok(Some(describe_consumer(found)))
    }

    /// A classic group's description (Dead for a group the coordinator does not know).
    async fn describe_classic_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let (response, _) = self
            .send_to_coordinator(group, true, |_| {
                DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
            })
            .await?;
        let found = self.find_in_response(response.groups, "DescribeGroups", group, |found| {
            found.group_id.as_str() == group
        })?;
        ClientError::check(
            found.error_code,
            found.error_message.as_deref(),
            Subject::group(group),
        )?;
        Ok(describe(found))
    }

    /// A group's committed offsets: for the given partitions (each answered, `offset: None`
    /// where nothing is committed), or for every partition it has committed to (`None`).
    /// Sorted by topic and partition.
    pub async fn offset_fetch(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let topics = partitions.map(|partitions| {
            by_topic(
                partitions
                    .iter()
                    .map(|wanted| (wanted.topic.as_str(), wanted.partition.0)),
            )
        });
        let (response, version) = self
            .send_to_coordinator(group, true, |version| {
                offset_fetch_request(group, topics.as_deref(), version)
            })
            .await?;
        let mut offsets = self.committed_offsets(group, response, version)?;
        offsets.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(offsets)
    }

    fn committed_offsets(
        &self,
        group: &str,
        response: OffsetFetchResponse,
        version: i16,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        // (topic, partition, offset, leader epoch, metadata, error code), whatever the version.
        let mut rows = Vec::new();
        if version >= 8 {
            let found = self.find_in_response(response.groups, "OffsetFetch", group, |found| {
                found.group_id.as_str() == group
            })?;
            ClientError::check(found.error_code, None, Subject::group(group))?;
            for topic in found.topics {
                for p in topic.partitions {
                    let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                    rows.push((
                        topic.name.to_string(),
                        p.partition_index,
                        offset,
                        epoch,
                        p.metadata,
                        p.error_code,
                    ));
                }
            }
        } else {
            ClientError::check(response.error_code, None, Subject::group(group))?;
            for topic in response.topics {
                for p in topic.partitions {
                    let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                    rows.push((
                        topic.name.to_string(),
                        p.partition_index,
                        offset,
                        epoch,
                        p.metadata,
                        p.error_code,
                    ));
                }
            }
        }
        rows.into_iter()
            .map(|(topic, partition, offset, epoch, metadata, error_code)| {
                let partition = PartitionIndex(partition);
                let subject = Subject::group_partition(group, &topic, partition);
                ClientError::check(error_code, None, subject)?;
                Ok(CommittedOffset {
                    partition: TopicPartition::new(topic, partition),
                    offset: (offset >= 0).then_some(Offset(offset)),
                    leader_epoch: (epoch >= 0).then_some(LeaderEpoch(epoch)),
                    metadata: metadata.map(|metadata| metadata.to_string()),
                })
            })
            .collect()
    }

    /// Commits offsets for a group as an administrator: generation -1 and no member id, the
    /// commit Kafka's offset-reset tool makes. The coordinator accepts it only while the group
    /// has no members; otherwise it answers `UNKNOWN_MEMBER_ID`, which comes back saying so.
    pub async fn offset_commit(
        &self,
        group: &str,
        offsets: &[PartitionOffset],
    ) -> Result<(), ClientError> {
        let topics = by_topic(offsets.iter().map(|entry| {
            (
                entry.partition.topic.as_str(),
                (entry.partition.partition, entry.offset),
            )
        }));
        let (response, _) = self
            .send_to_coordinator(group, true, |_| admin_commit_request(group, &topics))
            .await?;
        for topic in &response.topics {
            for p in &topic.partitions {
                let partition = PartitionIndex(p.partition_index);
                let subject = Subject::group_partition(group, topic.name.as_str(), partition);
                if p.error_code == ErrorCode::UnknownMemberId.code() {
                    let message = format!("group '{group}' has active members; stop them first");
                    let hint = format!(
                        "'strom group describe {group}' lists them; offsets can be set only \
                         while a group is empty"
                    );
                    return Err(
                        ClientError::kafka(p.error_code, Some(&message), subject).with_hint(hint)
                    );
                }
                ClientError::check(p.error_code, None, subject)?;
            }
        }
        Ok(())
    }

    /// Deletes a group's committed offsets for some partitions. The coordinator refuses
    /// topics the group's members still subscribe to (`GROUP_SUBSCRIBED_TO_TOPIC`).
    pub async fn offset_delete(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<(), ClientError> {
        let topics = by_topic(
            partitions
                .iter()
                .map(|wanted| (wanted.topic.as_str(), wanted.partition.0)),
        );
        let (response, _) = self
            .send_to_coordinator(group, false, |_| {
                let topics = topics
                    .iter()
                    .map(|(topic, partitions)| {
                        let partitions = partitions
                            .iter()
                            .map(|&index| {
                                OffsetDeleteRequestPartition::default().with_partition_index(index)
                            })
                            .collect();
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetDeleteRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(topics)
            })
            .await?;
        ClientError::check(response.error_code, None, Subject::group(group))?;
        for topic in &response.topics {
            for p in &topic.partitions {
                let partition = PartitionIndex(p.partition_index);
                let subject = Subject::group_partition(group, topic.name.as_str(), partition);
                ClientError::check(p.error_code, None, subject)?;
            }
        }
        Ok(())
    }

    /// Deletes groups with their committed offsets, one request to each group's coordinator;
    /// the first group that could not be deleted (`GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP`)
    /// fails the call.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<(), ClientError> {
        for &group in groups {
            let (response, _) = self
                .send_to_coordinator(group, false, |_| {
                    DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])
                })
                .await?;
            let result =
                self.find_in_response(response.results.iter(), "DeleteGroups", group, |result| {
                    result.group_id.as_str() == group
                })?;
            ClientError::check(result.error_code, None, Subject::group(group))?;
        }
        Ok(())
    }
}

/// Decodes a consumer-protocol member assignment: an i16 version, then the body in that
/// version. A version newer than this client knows is read as the newest it knows, as Kafka
/// does (newer versions only add fields at the end). No bytes at all mean no assignment yet.
pub fn decode_consumer_assignment(mut bytes: Bytes) -> Result<Vec<TopicPartitions>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 2 {
        return Err(format!("a {}-byte assignment has no version", bytes.len()));
    }
    let version = bytes.get_i16();
    if version < ConsumerProtocolAssignment::VERSIONS.min {
        return Err(format!("unknown assignment version {version}"));
    }
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map_err(|error| format!("bad assignment (version {version}): {error:#}"))?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .map(|assigned| TopicPartitions {
            topic: assigned.topic.to_string(),
            partitions: assigned
                .partitions
                .into_iter()
                .map(PartitionIndex)
                .collect(),
        })
        .collect())
}

fn describe(group: DescribedGroup) -> GroupDescription {
    let protocol_type = group.protocol_type.to_string();
    let consumer = protocol_type == CONSUMER_PROTOCOL_TYPE;
    let members = group
        .members
        .into_iter()
        .map(|member| {
            let assignment = consumer
                .then(|| decode_consumer_assignment(member.member_assignment))
                .and_then(|decoded| {
                    decoded
                        .map_err(|error| {
                            tracing::debug!(member = %member.member_id, %error, "undecodable assignment")
                        })
                        .ok()
                });
            GroupMember {
                member_id: member.member_id.to_string(),
                instance_id: member.group_instance_id.map(|id| id.to_string()),
                client_id: member.client_id.to_string(),
                client_host: member.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    GroupDescription {
        group_id: group.group_id.to_string(),
        group_type: GroupType::Classic,
        state: GroupState::parse(&group.group_state),
        protocol_type,
        protocol: group.protocol_data.to_string(),
        members,
    }
}

fn describe_consumer(group: DescribedConsumerGroup) -> GroupDescription {
    let members = group
        .members
        .into_iter()
        .map(|member| {
            let assignment = member
                .assignment
                .topic_partitions
                .into_iter()
                .map(|assigned| TopicPartitions {
                    topic: assigned.topic_name.to_string(),
                    partitions: assigned
                        .partitions
                        .into_iter()
                        .map(PartitionIndex)
                        .collect(),
                })
                .collect();
            GroupMember {
                member_id: member.member_id.to_string(),
                instance_id: member.instance_id.map(|id| id.to_string()),
                client_id: member.client_id.to_string(),
                client_host: member.client_host.to_string(),
                assignment: Some(assignment),
            }
        })
        .collect();
    GroupDescription {
        group_id: group.group_id.to_string(),
        group_type: GroupType::Consumer,
        state: GroupState::parse(&group.group_state),
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
        protocol: group.assignor_name.to_string(),
        members,
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// Gathers (topic, item) pairs by topic, topics in order of first appearance.
fn by_topic<'a, T>(items: impl IntoIterator<Item = (&'a str, T)>) -> Vec<(String, Vec<T>)> {
    let mut topics: Vec<(String, Vec<T>)> = Vec::new();
    let mut positions: BTreeMap<&'a str, usize> = BTreeMap::new();
    for (topic, item) in items {
        let position = *positions.entry(topic).or_insert_with(|| {
            topics.push((topic.to_string(), Vec::new()));
            topics.len() - 1
        });
        topics[position].1.push(item);
    }
    topics
}

fn offset_fetch_request(
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    version: i16,
) -> OffsetFetchRequest {
    if version >= 8 {
        let topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let wanted = OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        return OffsetFetchRequest::default().with_groups(vec![wanted]);
    }
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|(topic, partitions)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.clone())
            })
            .collect()
    });
    OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics)
}

fn admin_commit_request(
    group: &str,
    topics: &[(String, Vec<(PartitionIndex, Offset)>)],
) -> OffsetCommitRequest {
    let topics = topics
        .iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .iter()
                .map(|(partition, offset)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition.0)
                        .with_committed_offset(offset.0)
                        .with_committed_metadata(Some(StrBytes::from_static_str("")))
                })
                .collect();
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(topics)
}

/// Responses from a group coordinator, whose error codes may say "ask the coordinator again".
trait CoordinatorResponse {
    /// Every error code in the response.
    fn error_codes(&self) -> Vec<i16>;
}

impl CoordinatorResponse for DescribeGroupsResponse {
    fn error_codes(&self) -> Vec<i16> {
        self.groups.iter().map(|group| group.error_code).collect()
    }
}

impl CoordinatorResponse for ConsumerGroupDescribeResponse {
    fn error_codes(&self) -> Vec<i16> {
        self.groups.iter().map(|group| group.error_code).collect()
    }
}

impl CoordinatorResponse for OffsetFetchResponse {
    fn error_codes(&self) -> Vec<i16> {
        let groups = self.groups.iter().map(|group| group.error_code);
        std::iter::once(self.error_code).chain(groups).collect()
    }
}

impl CoordinatorResponse for OffsetCommitResponse {
    fn error_codes(&self) -> Vec<i16> {
        self.topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .map(|partition| partition.error_code)
            .collect()
    }
}

impl CoordinatorResponse for OffsetDeleteResponse {
    fn error_codes(&self) -> Vec<i16> {
        vec![self.error_code]
    }
}

impl CoordinatorResponse for DeleteGroupsResponse {
    fn error_codes(&self) -> Vec<i16> {
        self.results
            .iter()
            .map(|result| result.error_code)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as WireAssigned;
    use kafka_protocol::protocol::Encodable;

    fn assignment_bytes(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let assigned = topics
            .iter()
            .map(|(topic, partitions)| {
                WireAssigned::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.to_vec())
            })
            .collect();
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&version.to_be_bytes());
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(assigned)
            .encode(&mut bytes, version.min(3))
            .unwrap();
        bytes.freeze()
    }

    #[test]
    fn assignments_decode_in_every_version() {
        for version in 0..=3 {
            let bytes = assignment_bytes(version, &[("a", &[0, 2]), ("b", &[1])]);
            let decoded = decode_consumer_assignment(bytes).unwrap();
            assert_eq!(
                decoded,
                vec![
                    TopicPartitions {
                        topic: "a".to_string(),
                        partitions: vec![PartitionIndex(0), PartitionIndex(2)],
                    },
                    TopicPartitions {
                        topic: "b".to_string(),
                        partitions: vec![PartitionIndex(1)],
                    },
                ],
                "version {version}"
            );
        }
    }

    #[test]
    fn newer_assignment_versions_read_as_the_newest_known() {
        let mut bytes = BytesMut::from(&assignment_bytes(7, &[("t", &[5])])[..]);
        bytes.extend_from_slice(b"fields a newer version appends");
        let decoded = decode_consumer_assignment(bytes.freeze()).unwrap();
        assert_eq!(decoded[0].partitions, [PartitionIndex(5)]);
    }

    #[test]
    fn empty_or_broken_assignments() {
        assert_eq!(decode_consumer_assignment(Bytes::new()), Ok(Vec::new()));
        assert!(decode_consumer_assignment(Bytes::from_static(&[0])).is_err());
        assert!(decode_consumer_assignment(Bytes::from_static(&[0xff, 0xff, 0, 0])).is_err());
        let truncated = assignment_bytes(1, &[("topic", &[1, 2, 3])]);
        assert!(decode_consumer_assignment(truncated.slice(..truncated.len() - 3)).is_err());
    }

    #[test]
    fn states_parse_ignoring_case() {
        assert_eq!(GroupState::parse("stable"), GroupState::Stable);
        assert_eq!(
            GroupState::parse("PREPARINGREBALANCE"),
            GroupState::PreparingRebalance
        );
        assert_eq!(GroupState::parse("reconciling"), GroupState::Reconciling);
        assert_eq!(
            GroupState::parse("Rebalancing"),
            GroupState::Other("Rebalancing".to_string())
        );
        assert_eq!(GroupState::Empty.to_string(), "Empty");
    }

    #[test]
    fn items_gather_by_topic_in_first_seen_order() {
        let gathered = by_topic([("b", 1), ("a", 2), ("b", 3)]);
        assert_eq!(
            gathered,
            vec![("b".to_string(), vec![1, 3]), ("a".to_string(), vec![2])]
        );
    }
}
