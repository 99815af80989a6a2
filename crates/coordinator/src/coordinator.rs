//! Every group this node coordinates, and the offset and admin operations over them.
//!
//! Offset commits are two steps so that nothing is acknowledged before it is durable: the
//! runtime asks [`GroupCoordinator::validate_commit`], writes the records to
//! `__consumer_offsets`, waits for the fsync, then calls [`GroupCoordinator::apply_commit`].

use std::collections::HashMap;

use bytes::{Buf, Bytes};
use strom_types::ErrorCode;

use crate::group::{
    Group, GroupState, JoinRequest, JoinResponse, Limits, Output, ReplyTo, SyncRequest,
    SyncResponse,
};
use crate::offsets::{CommittedOffset, OffsetKey, OffsetsRecord};

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`
    pub members_max: usize,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_bytes_max: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: i32::MAX as usize,
            offset_metadata_bytes_max: 4096,
            offsets_retention_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl GroupConfig {
    fn limits(&self) -> Limits {
        Limits {
            session_timeout_ms_min: self.session_timeout_ms_min,
            session_timeout_ms_max: self.session_timeout_ms_max,
            initial_rebalance_delay_ms: self.initial_rebalance_delay_ms,
            members_max: self.members_max,
        }
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

#[derive(Debug, Default)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: HashMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Handles a JoinGroup; `fresh_member_id` is used if the member is new.
    pub fn join(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        fresh_member_id: String,
        now_ms: i64,
    ) -> Vec<Output> {
        if request.group_id.is_empty() {
            return vec![Output::Join(
                reply,
                JoinResponse::error(ErrorCode::InvalidGroupId, &request.member_id),
            )];
        }
        let limits = self.config.limits();
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id, now_ms));
        group.join(reply, request, fresh_member_id, &limits, now_ms)
    }

    pub fn sync(&mut self, reply: ReplyTo, request: SyncRequest, now_ms: i64) -> Vec<Output> {
        match self.groups.get_mut(&request.group_id) {
            Some(group) => group.sync(reply, request, now_ms),
            None if request.group_id.is_empty() => vec![Output::Sync(
                reply,
                SyncResponse::error(ErrorCode::InvalidGroupId),
            )],
            None => vec![Output::Sync(
                reply,
                SyncResponse::error(ErrorCode::UnknownMemberId),
            )],
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> ErrorCode {
        match self.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation_id, now_ms),
            None if group_id.is_empty() => ErrorCode::InvalidGroupId,
            None => ErrorCode::UnknownMemberId,
        }
    }

    /// Handles a LeaveGroup of one or more members: a result per member, plus responses to
    /// requests that the departures completed.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<(Vec<ErrorCode>, Vec<Output>), ErrorCode> {
        let limits = self.config.limits();
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(if group_id.is_empty() {
                ErrorCode::InvalidGroupId
            } else {
                ErrorCode::UnknownMemberId
            });
        };
        let mut outputs = Vec::new();
        let results = members
            .iter()
            .map(|(member_id, instance_id)| {
                let (error, more) = group.leave(member_id, instance_id.as_deref(), now_ms, &limits);
                outputs.extend(more);
                error
            })
            .collect();
        Ok((results, outputs))
    }

    /// Applies timeouts. Returns responses to send and offsets that expired (to be deleted
    /// from `__consumer_offsets` with tombstones).
    pub fn tick(&mut self, now_ms: i64) -> (Vec<Output>, Vec<OffsetKey>) {
        let limits = self.config.limits();
        let retention_ms = self.config.offsets_retention_ms;
        let mut outputs = Vec::new();
        let mut expired = Vec::new();
        for group in self.groups.values_mut() {
            outputs.extend(group.tick(now_ms, &limits));
            if group.state == GroupState::Empty
                && !group.offsets.is_empty()
                && now_ms - group.empty_since_ms >= retention_ms
            {
                let offsets = std::mem::take(&mut group.offsets);
                expired.extend(offsets.into_keys().map(|(topic, partition)| OffsetKey {
                    group: group.id.clone(),
                    topic,
                    partition,
                }));
            }
        }
        self.groups.retain(|_, group| !group.is_disposable());
        (outputs, expired)
    }

    /// Checks that a member may commit offsets now (OffsetCommit). A generation of -1 with no
    /// member id is a commit from outside any group generation (a standalone consumer or an
    /// admin tool), allowed only while the group has no members.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(ErrorCode::IllegalGeneration)
            };
        };
        if generation_id < 0 && member_id.is_empty() {
            return if group.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        if let Some(error) = group.fencing_error(member_id, instance_id) {
            return Err(error);
        }
        if generation_id != group.generation_id() {
            return Err(ErrorCode::IllegalGeneration);
        }
        match group.state() {
            GroupState::CompletingRebalance => return Err(ErrorCode::RebalanceInProgress),
            GroupState::Dead => return Err(ErrorCode::CoordinatorNotAvailable),
            _ => {}
        }
        // A commit counts as a sign of life, like a heartbeat.
        let _ = group.heartbeat(member_id, instance_id, generation_id, now_ms);
        Ok(())
    }

    /// Records offsets that are now durable.
    pub fn apply_commit(
        &mut self,
        group_id: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
        now_ms: i64,
    ) {
        let group = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now_ms));
        for (topic, partition, offset) in offsets {
            group.offsets.insert((topic, partition), offset);
        }
    }

    /// Applies one record replayed from `__consumer_offsets` on start.
    pub fn replay(&mut self, record: OffsetsRecord, now_ms: i64) {
        match record {
            OffsetsRecord::Commit(key, offset) => {
                self.apply_commit(&key.group, vec![(key.topic, key.partition, offset)], now_ms)
            }
            OffsetsRecord::Delete(key) => {
                if let Some(group) = self.groups.get_mut(&key.group) {
                    group.offsets.remove(&(key.topic, key.partition));
                    if group.is_disposable() {
                        self.groups.remove(&key.group);
                    }
                }
            }
            OffsetsRecord::GroupMetadata => {}
        }
    }

    /// Committed offsets of a group: for the named partitions (None where nothing is
    /// committed), or every committed one.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partition)| {
                    let found = group
                        .and_then(|g| g.offsets.get(&(topic.clone(), *partition)))
                        .cloned();
                    (topic.clone(), *partition, found)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((topic, partition), offset)| {
                            (topic.clone(), *partition, Some(offset.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.groups.get(group_id)?;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let stable = group.state == GroupState::Stable;
        let members = group
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol,
            members,
        })
    }

    pub fn list(&self) -> Vec<GroupListing> {
        let mut listings: Vec<GroupListing> = self
            .groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// Checks that a group may be deleted and returns the offsets whose tombstones must be
    /// written; [`GroupCoordinator::forget`] removes it once they are durable.
    pub fn prepare_delete(&self, group_id: &str) -> Result<Vec<OffsetKey>, ErrorCode> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        if group.state != GroupState::Empty {
            return Err(ErrorCode::NonEmptyGroup);
        }
        Ok(group
            .offsets
            .keys()
            .map(|(topic, partition)| OffsetKey {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect())
    }

    pub fn forget(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty)
        {
            self.groups.remove(group_id);
        }
    }

    /// OffsetDelete: a group may drop offsets of topics none of its members subscribe to.
    pub fn check_offset_delete(&self, group_id: &str, topic: &str) -> Result<(), ErrorCode> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        let subscribed = group.protocol_type.as_deref() == Some("consumer")
            && group.members.values().any(|m| {
                subscribed_topics(
                    &m.metadata_for(group.protocol_name.as_deref().unwrap_or_default()),
                )
                .iter()
                .any(|t| t == topic)
            });
        if subscribed {
            return Err(ErrorCode::GroupSubscribedToTopic);
        }
        Ok(())
    }

    pub fn remove_offsets(&mut self, group_id: &str, partitions: &[(String, i32)]) {
        if let Some(group) = self.groups.get_mut(group_id) {
            for key in partitions {
                group.offsets.remove(key);
            }
            if group.is_disposable() {
                self.groups.remove(group_id);
            }
        }
    }
}

/// The topics in a consumer-protocol subscription (version, then an array of strings; the
/// layout is the same in every version's prefix). Unreadable metadata subscribes to nothing.
fn subscribed_topics(metadata: &Bytes) -> Vec<String> {
    let mut buf = metadata.clone();
    let mut topics = Vec::new();
    if buf.remaining() < 6 {
        return topics;
    }
    let _version = buf.get_i16();
    let count = buf.get_i32();
    for _ in 0..count.max(0) {
        if buf.remaining() < 2 {
            break;
        }
        let length = buf.get_i16();
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        if buf.remaining() < length {
            break;
        }
        topics.push(String::from_utf8_lossy(&buf.split_to(length)).into_owned());
    }
    topics
}
