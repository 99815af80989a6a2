//! Every group this node coordinates, and the offset and admin operations over them.
//!
//! Offset commits are two steps so that nothing is acknowledged before it is durable: the
//! runtime asks [`GroupCoordinator::validate_commit`] (and [`crate::limits::check_offset`] per
//! partition), writes the records to `__consumer_offsets`, waits for the fsync, then calls
//! [`GroupCoordinator::apply_commit`].
//!
//! Transactional offset commits (TxnOffsetCommit) take the same two steps and a third: the
//! runtime asks [`GroupCoordinator::validate_txn_commit`], registers the offsets with
//! [`GroupCoordinator::begin_txn_offsets`], writes them in one transactional batch, and
//! reports the outcome with [`GroupCoordinator::stage_txn_offsets`] (durable) or
//! [`GroupCoordinator::abandon_txn_offsets`] (failed). They stay pending (see
//! [`crate::txn_offsets`]) until the producer's marker in that `__consumer_offsets` partition
//! ends the transaction: [`GroupCoordinator::complete_transaction`].
//!
//! Every request that can create a group or lead to a record (join, sync, heartbeats, leave,
//! commits, deletes) has its group id checked with [`crate::limits`] before anything else, so a
//! group id no record could hold never becomes state or a record; look-ups (describe, fetch)
//! need no check, since such an id is never found.

use std::collections::{BTreeMap, HashMap};

use bytes::{Buf, Bytes};
use strom_types::{ErrorCode, Offset, PartitionIndex, ProducerId};

use crate::assignors::Assignment;
use crate::consumer_group::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerHeartbeat, ConsumerHeartbeatResponse,
};
use crate::group::{
    Group, GroupState, JoinRequest, JoinResponse, Limits, Output, ReplyTo, SyncRequest,
    SyncResponse,
};
use crate::limits::{self, check_group_id, check_group_id_not_empty};
use crate::offsets::{self, CommittedOffset, OffsetKey, OffsetsRecord};
use crate::txn_offsets::{PendingOffset, PendingTxnOffsets};

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

/// A committed offset and where its record is in `__consumer_offsets`, when known: a
/// transaction's offsets become committed only if no later record committed that partition
/// meanwhile (Kafka's rule; replaying the partition decides the same way).
#[derive(Debug, Clone)]
struct StoredOffset {
    offset: CommittedOffset,
    record_offset: Option<Offset>,
}

/// Committed offsets of one group id, by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), StoredOffset>;

/// A group's offsets to commit: (topic, partition, offset).
pub type OffsetCommits = Vec<(String, i32, CommittedOffset)>;

/// A KIP-848 group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// Every group this node coordinates: classic groups, KIP-848 consumer groups, and the
/// committed offsets of both, kept by group id.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    config: GroupConfig,
    consumer_config: ConsumerGroupConfig,
    groups: HashMap<String, Group>,
    consumer_groups: HashMap<String, ConsumerGroup>,
    offsets: HashMap<String, GroupOffsets>,
    /// Transactional offsets waiting for their producer's marker.
    pending_txn: PendingTxnOffsets,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator::with_consumer_config(config, ConsumerGroupConfig::default())
    }

    pub fn with_consumer_config(
        config: GroupConfig,
        consumer_config: ConsumerGroupConfig,
    ) -> GroupCoordinator {
        GroupCoordinator {
            config,
            consumer_config,
            groups: HashMap::new(),
            consumer_groups: HashMap::new(),
            offsets: HashMap::new(),
            pending_txn: PendingTxnOffsets::default(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn consumer_group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.consumer_groups.get(group_id)
    }

    /// Whether any kind of group, committed offsets or pending transactional offsets exist
    /// under `group_id`.
    pub fn exists(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
            || self.consumer_groups.contains_key(group_id)
            || self.offsets.contains_key(group_id)
            || self.pending_txn.has_group(group_id)
    }

    /// Handles a JoinGroup; `fresh_member_id` is used if the member is new.
    pub fn join(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        fresh_member_id: String,
        now_ms: i64,
    ) -> Vec<Output> {
        if let Err(error) = check_group_id_not_empty(&request.group_id) {
            return vec![Output::Join(
                reply,
                JoinResponse::error(error, &request.member_id),
            )];
        }
        if self
            .consumer_groups
            .get(&request.group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            return vec![Output::Join(
                reply,
                JoinResponse::error(ErrorCode::InconsistentGroupProtocol, &request.member_id),
            )];
        }
        let limits = self.config.limits();
        if !self.groups.contains_key(&request.group_id) {
            // Refusals that need no group must not create one (Kafka creates a group only for
            // a member without an id, after checking the session timeout).
            let timeout_ok = (limits.session_timeout_ms_min..=limits.session_timeout_ms_max)
                .contains(&request.session_timeout_ms);
            let refusal = if !timeout_ok {
                Some(ErrorCode::InvalidSessionTimeout)
            } else if !request.member_id.is_empty() {
                Some(ErrorCode::UnknownMemberId)
            } else {
                None
            };
            if let Some(error) = refusal {
                return vec![Output::Join(
                    reply,
                    JoinResponse::error(error, &request.member_id),
                )];
            }
        }
        self.consumer_groups.remove(&request.group_id);
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id, now_ms));
        group.join(reply, request, fresh_member_id, &limits, now_ms)
    }

    pub fn sync(&mut self, reply: ReplyTo, request: SyncRequest, now_ms: i64) -> Vec<Output> {
        if let Err(error) = check_group_id_not_empty(&request.group_id) {
            return vec![Output::Sync(reply, SyncResponse::error(error))];
        }
        match self.groups.get_mut(&request.group_id) {
            Some(group) => group.sync(reply, request, now_ms),
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
        if let Err(error) = check_group_id_not_empty(group_id) {
            return error;
        }
        match self.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation_id, now_ms),
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
        check_group_id_not_empty(group_id)?;
        let limits = self.config.limits();
        let Some(group) = self.groups.get_mut(group_id) else {
            // Kafka answers each member, not the request as a whole.
            return Ok((vec![ErrorCode::UnknownMemberId; members.len()], Vec::new()));
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

    /// Handles a ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &mut self,
        request: ConsumerHeartbeat,
        fresh_member_id: String,
        partition_count: &dyn Fn(&str) -> Option<i32>,
        now_ms: i64,
    ) -> ConsumerHeartbeatResponse {
        let group_id = request.group_id.clone();
        if let Err(error) = check_group_id_not_empty(&group_id) {
            let message = match group_id.is_empty() {
                true => "the group id is empty".to_owned(),
                false => format!(
                    "the group id has {} bytes, more than the {}-byte limit",
                    group_id.len(),
                    limits::GROUP_ID_BYTES_MAX
                ),
            };
            return ConsumerHeartbeatResponse::error(error, message, &request.member_id);
        }
        if let Some(classic) = self.groups.get(&group_id) {
            if !classic.is_idle() {
                let message =
                    "the group is a classic group with members; stop them or use another group id";
                return ConsumerHeartbeatResponse::error(
                    ErrorCode::GroupIdNotFound,
                    message,
                    &request.member_id,
                );
            }
            // An idle classic group (offsets only) becomes a consumer group; offsets stay.
            self.groups.remove(&group_id);
        }
        let config = self.consumer_config;
        let group = self
            .consumer_groups
            .entry(group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(&group_id, now_ms));
        group.heartbeat(request, fresh_member_id, partition_count, &config, now_ms)
    }

    /// Applies timeouts. Returns responses to send and offsets that expired (to be deleted
    /// from `__consumer_offsets` with tombstones).
    pub fn tick(&mut self, now_ms: i64) -> (Vec<Output>, Vec<OffsetKey>) {
        let limits = self.config.limits();
        let mut outputs = Vec::new();
        for group in self.groups.values_mut() {
            outputs.extend(group.tick(now_ms, &limits));
        }
        for group in self.consumer_groups.values_mut() {
            group.tick(now_ms);
        }
        let expired = self.expire_offsets(now_ms);
        // A group with an open transaction's offsets stays, as in Kafka, so that the marker
        // commits them into a group that still exists.
        let (offsets, pending) = (&self.offsets, &self.pending_txn);
        let keep = |id: &String| offsets.contains_key(id) || pending.has_group(id);
        self.groups.retain(|id, group| !group.is_idle() || keep(id));
        self.consumer_groups
            .retain(|id, group| !group.members.is_empty() || keep(id));
        (outputs, expired)
    }

    /// `offsets.retention.minutes`: a group without members loses its offsets that long after
    /// it became empty; offsets committed outside any group expire that long after the commit.
    /// An offset with a transactional commit pending does not expire until the transaction
    /// ends (Kafka's `cleanupExpiredOffsets`).
    fn expire_offsets(&mut self, now_ms: i64) -> Vec<OffsetKey> {
        let retention_ms = self.config.offsets_retention_ms;
        let mut expired = Vec::new();
        for (group_id, offsets) in self.offsets.iter_mut() {
            let empty_since = match (
                self.groups.get(group_id),
                self.consumer_groups.get(group_id),
            ) {
                (Some(group), _) if group.is_idle() => group.empty_since_ms,
                (_, Some(group)) if group.members.is_empty() => Some(group.empty_since_ms),
                (None, None) => None,
                _ => continue,
            };
            let pending = &self.pending_txn;
            offsets.retain(|(topic, partition), stored| {
                let committed_ms = stored.offset.commit_timestamp_ms;
                let since = empty_since.unwrap_or(committed_ms).max(committed_ms);
                let keep = now_ms - since < retention_ms
                    || pending.is_pending(group_id, topic, *partition);
                if !keep {
                    expired.push(OffsetKey {
                        group: group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    });
                }
                keep
            });
        }
        self.offsets.retain(|_, offsets| !offsets.is_empty());
        expired
    }

    /// Checks that a member may commit offsets now (OffsetCommit). A generation of -1 with no
    /// member id is a commit from outside any group generation (a standalone consumer or an
    /// admin tool), allowed only while the group has no members. For a KIP-848 group the
    /// generation is the member epoch.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        check_group_id_not_empty(group_id)?;
        if let Some(group) = self.consumer_groups.get(group_id) {
            if generation_id < 0 && member_id.is_empty() {
                return if group.members.is_empty() {
                    Ok(())
                } else {
                    Err(ErrorCode::UnknownMemberId)
                };
            }
            return group.validate_commit(member_id, generation_id);
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

    /// Records offsets that are now durable. A group id with offsets but no group yet is an
    /// Empty classic group, as in Kafka, so that it shows in ListGroups. A commit none of whose
    /// partitions was written (all refused) changes nothing: it must not create a group.
    pub fn apply_commit(&mut self, group_id: &str, offsets: OffsetCommits, now_ms: i64) {
        let stored = offsets.into_iter().map(|(topic, partition, offset)| {
            let stored = StoredOffset {
                offset,
                record_offset: None,
            };
            (topic, partition, stored)
        });
        self.store_commits(group_id, stored.collect(), now_ms);
    }

    /// [`GroupCoordinator::apply_commit`] for offsets written as one batch whose first record
    /// is at `first_record_offset` in `__consumer_offsets` (the others follow in order).
    pub fn apply_commit_written(
        &mut self,
        group_id: &str,
        offsets: OffsetCommits,
        first_record_offset: Offset,
        now_ms: i64,
    ) {
        let stored = offsets
            .into_iter()
            .enumerate()
            .map(|(index, (topic, partition, offset))| {
                let stored = StoredOffset {
                    offset,
                    record_offset: Some(first_record_offset.plus(index as i64)),
                };
                (topic, partition, stored)
            });
        self.store_commits(group_id, stored.collect(), now_ms);
    }

    fn store_commits(
        &mut self,
        group_id: &str,
        offsets: Vec<(String, i32, StoredOffset)>,
        now_ms: i64,
    ) {
        if offsets.is_empty() {
            return;
        }
        self.ensure_group(group_id, now_ms);
        let stored = self.offsets.entry(group_id.to_owned()).or_default();
        for (topic, partition, offset) in offsets {
            stored.insert((topic, partition), offset);
        }
    }

    /// Offsets need a group: an Empty classic group unless a KIP-848 group has the id.
    fn ensure_group(&mut self, group_id: &str, now_ms: i64) {
        assert_eq!(
            check_group_id(group_id),
            Ok(()),
            "validate_commit and validate_txn_commit refuse group ids no record can hold"
        );
        if !self.consumer_groups.contains_key(group_id) {
            self.groups
                .entry(group_id.to_owned())
                .or_insert_with(|| Group::new(group_id, now_ms));
        }
    }

    /// Applies one record replayed from `__consumer_offsets` on start.
    pub fn replay(&mut self, record: OffsetsRecord, now_ms: i64) {
        match record {
            OffsetsRecord::Commit(key, offset) => {
                self.apply_commit(&key.group, vec![(key.topic, key.partition, offset)], now_ms)
            }
            OffsetsRecord::Delete(key) => {
                self.remove_offsets(&key.group, &[(key.topic, key.partition)])
            }
            OffsetsRecord::GroupMetadata => {}
        }
    }

    /// Applies one record replayed from `__consumer_offsets` at `record_offset`; `producer_id`
    /// is the producer of the transactional batch that holds it, if it is in one. A
    /// transactional commit is pending until that producer's marker
    /// ([`GroupCoordinator::complete_transaction`]); a tombstone applies at once, in a
    /// transaction or not, as in Kafka.
    pub fn replay_at(
        &mut self,
        record: OffsetsRecord,
        record_offset: Offset,
        producer_id: Option<ProducerId>,
        now_ms: i64,
    ) {
        match (record, producer_id) {
            (OffsetsRecord::Commit(key, offset), None) => self.apply_commit_written(
                &key.group,
                vec![(key.topic, key.partition, offset)],
                record_offset,
                now_ms,
            ),
            (OffsetsRecord::Commit(key, offset), Some(producer_id)) => {
                self.ensure_group(&key.group, now_ms);
                let pending = PendingOffset {
                    offset,
                    record_offset: Some(record_offset),
                };
                let partition_key = (key.topic, key.partition);
                self.pending_txn
                    .put(&key.group, producer_id, partition_key, pending);
            }
            (record, _) => self.replay(record, now_ms),
        }
    }

    /// Checks that a transactional producer may commit offsets for this group now
    /// (TxnOffsetCommit; Kafka's `validateTransactionalOffsetCommit`). Unlike OffsetCommit:
    /// a request without member id, generation and instance id (versions 0-2 carry none) is
    /// accepted even while the group has members, since the producer may not be one, and a
    /// group in CompletingRebalance takes the commit. With a member (v3+, KIP-447) the member
    /// and its generation must be current, so a zombie consumer's offsets are refused. For a
    /// KIP-848 group the generation is the member epoch; a stale one is ILLEGAL_GENERATION.
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ErrorCode> {
        check_group_id_not_empty(group_id)?;
        let anonymous = generation_id < 0 && member_id.is_empty() && instance_id.is_none();
        if let Some(group) = self.consumer_groups.get(group_id) {
            if anonymous || (generation_id < 0 && group.members.is_empty()) {
                return Ok(());
            }
            return match group.validate_commit(member_id, generation_id) {
                Err(ErrorCode::StaleMemberEpoch) => Err(ErrorCode::IllegalGeneration),
                checked => checked,
            };
        }
        let Some(group) = self.groups.get(group_id) else {
            // Kafka creates a "simple" group for such a commit; ours appears once durable.
            return match generation_id < 0 {
                true => Ok(()),
                false => Err(ErrorCode::IllegalGeneration),
            };
        };
        match group.state() {
            GroupState::Dead => return Err(ErrorCode::CoordinatorNotAvailable),
            GroupState::Empty if generation_id < 0 => return Ok(()),
            _ if anonymous => return Ok(()),
            _ => {}
        }
        if let Some(error) = group.fencing_error(member_id, instance_id) {
            return Err(error);
        }
        if generation_id != group.generation_id() {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    /// Registers a transactional producer's offsets for `group_id` just before their batch is
    /// appended, so that a marker ending the transaction during the write ends them too. The
    /// runtime then calls [`GroupCoordinator::stage_txn_offsets`] once the batch is durable or
    /// [`GroupCoordinator::abandon_txn_offsets`] if the write failed. Until the transaction
    /// ends, OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for them.
    pub fn begin_txn_offsets(
        &mut self,
        group_id: &str,
        producer_id: ProducerId,
        offsets: &[(String, i32, CommittedOffset)],
    ) {
        assert_eq!(
            check_group_id_not_empty(group_id),
            Ok(()),
            "validate_txn_commit refuses group ids no record can hold"
        );
        for (topic, partition, offset) in offsets {
            let pending = PendingOffset {
                offset: offset.clone(),
                record_offset: None,
            };
            self.pending_txn
                .put(group_id, producer_id, (topic.clone(), *partition), pending);
        }
    }

    /// The batch of [`GroupCoordinator::begin_txn_offsets`] is durable, its first record at
    /// `first_record_offset` (the others follow in order): its offsets wait for the producer's
    /// marker. An offset the marker (or a tombstone) already took is not staged again. Creates
    /// the group (Empty) if there is none, as Kafka does for such a commit. Returns how many
    /// offsets were staged.
    pub fn stage_txn_offsets(
        &mut self,
        group_id: &str,
        producer_id: ProducerId,
        offsets: &[(String, i32, CommittedOffset)],
        first_record_offset: Offset,
        now_ms: i64,
    ) -> usize {
        let mut staged = 0;
        for (index, (topic, partition, offset)) in offsets.iter().enumerate() {
            let key = (topic.clone(), *partition);
            let record_offset = first_record_offset.plus(index as i64);
            staged += usize::from(self.pending_txn.mark_written(
                group_id,
                producer_id,
                &key,
                offset,
                record_offset,
            ));
        }
        if staged > 0 {
            self.ensure_group(group_id, now_ms);
        }
        staged
    }

    /// The batch of [`GroupCoordinator::begin_txn_offsets`] was not written (or not made
    /// durable): its offsets are no longer pending. The client is told and retries or aborts.
    pub fn abandon_txn_offsets(
        &mut self,
        group_id: &str,
        producer_id: ProducerId,
        offsets: &[(String, i32, CommittedOffset)],
    ) {
        for (topic, partition, offset) in offsets {
            let key = (topic.clone(), *partition);
            self.pending_txn
                .drop_in_flight(group_id, producer_id, &key, offset);
        }
    }

    /// The producer's COMMIT (`commit`) or ABORT marker is durable in `__consumer_offsets`
    /// partition `offsets_partition` (of `offsets_partition_count`): every group of that
    /// partition with offsets of that producer pending commits them, or drops them. A
    /// committed one replaces the group's committed offset unless that was written by a later
    /// record (a plain OffsetCommit after the transaction's), as in Kafka. Returns how many
    /// offsets became committed.
    pub fn complete_transaction(
        &mut self,
        offsets_partition: PartitionIndex,
        offsets_partition_count: i32,
        producer_id: ProducerId,
        commit: bool,
        now_ms: i64,
    ) -> usize {
        let in_partition = |group: &str| {
            offsets::partition_for(group, offsets_partition_count) == offsets_partition.0
        };
        let ended = self.pending_txn.take_producer(producer_id, in_partition);
        if !commit {
            return 0;
        }
        let mut committed = 0;
        for (group_id, pending) in ended {
            self.ensure_group(&group_id, now_ms);
            let stored = self.offsets.entry(group_id).or_default();
            for (key, pending) in pending {
                let superseded = match (stored.get(&key), pending.record_offset) {
                    (
                        Some(StoredOffset {
                            record_offset: Some(current),
                            ..
                        }),
                        Some(record_offset),
                    ) => *current > record_offset,
                    _ => false,
                };
                if !superseded {
                    let offset = StoredOffset {
                        offset: pending.offset,
                        record_offset: pending.record_offset,
                    };
                    stored.insert(key, offset);
                    committed += 1;
                }
            }
        }
        committed
    }

    /// This node no longer leads `__consumer_offsets` partition `offsets_partition`: its
    /// groups' pending transactional offsets are the new leader's to complete. Without this, a
    /// marker written there would leave them pending here for good.
    pub fn forget_transactions(
        &mut self,
        offsets_partition: PartitionIndex,
        offsets_partition_count: i32,
    ) {
        self.pending_txn.remove_groups(
            |group| offsets::partition_for(group, offsets_partition_count) == offsets_partition.0,
            false,
        );
    }

    /// Before replaying `__consumer_offsets` partition `offsets_partition`: drops its groups'
    /// pending offsets whose records are written, since the replay stages them again from the
    /// log (with the markers that ended them meanwhile). Offsets whose write is under way stay
    /// for that write to stage.
    pub fn forget_written_transactions(
        &mut self,
        offsets_partition: PartitionIndex,
        offsets_partition_count: i32,
    ) {
        self.pending_txn.remove_groups(
            |group| offsets::partition_for(group, offsets_partition_count) == offsets_partition.0,
            true,
        );
    }

    /// Committed offsets of a group: for the named partitions (None where nothing is
    /// committed), or every committed one.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let stored = self.offsets.get(group_id);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partition)| {
                    let found = stored
                        .and_then(|o| o.get(&(topic.clone(), *partition)))
                        .map(|stored| stored.offset.clone());
                    (topic.clone(), *partition, found)
                })
                .collect(),
            None => stored
                .map(|o| {
                    o.iter()
                        .map(|((topic, partition), stored)| {
                            (topic.clone(), *partition, Some(stored.offset.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// [`GroupCoordinator::fetch_offsets`] for a fetch with `require_stable` (KIP-447,
    /// OffsetFetch v7+; read_committed consumers send it): a partition with a transactional
    /// commit pending answers UNSTABLE_OFFSET_COMMIT, and the client retries until the
    /// transaction ends, so it never starts from an offset that is about to change.
    pub fn fetch_stable_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Result<Option<CommittedOffset>, ErrorCode>)> {
        self.fetch_offsets(group_id, partitions)
            .into_iter()
            .map(|(topic, partition, offset)| {
                let result = match self.pending_txn.is_pending(group_id, &topic, partition) {
                    true => Err(ErrorCode::UnstableOffsetCommit),
                    false => Ok(offset),
                };
                (topic, partition, result)
            })
            .collect()
    }

    /// Whether a transaction's commit of (`topic`, `partition`) is pending in `group_id`.
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.is_pending(group_id, topic, partition)
    }

    /// A classic group for DescribeGroups (None if there is none under this id).
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

    /// A KIP-848 group for ConsumerGroupDescribe.
    pub fn describe_consumer(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let group = self.consumer_groups.get(group_id)?;
        let members = group
            .members
            .values()
            .map(|m| ConsumerMemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.member_epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topics: m.subscribed.clone(),
                assignment: m.assigned.clone(),
                target_assignment: group.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(ConsumerGroupDescription {
            state: group.state_name(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor(),
            members,
        })
    }

    /// Every committed offset, as (group, topic, partition, offset): what consumer lag is
    /// measured from.
    pub fn committed_offsets(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> + '_ {
        self.offsets.iter().flat_map(|(group, offsets)| {
            (offsets.iter()).map(move |((topic, partition), stored)| {
                (
                    group.as_str(),
                    topic.as_str(),
                    *partition,
                    stored.offset.offset,
                )
            })
        })
    }

    /// Each group's member count (classic and KIP-848 groups), groups with none included.
    pub fn member_counts(&self) -> Vec<(&str, usize)> {
        let classic = (self.groups.iter()).map(|(id, group)| (id.as_str(), group.members.len()));
        let consumer =
            (self.consumer_groups.iter()).map(|(id, group)| (id.as_str(), group.members.len()));
        classic.chain(consumer).collect()
    }

    /// Classic groups, sorted by id.
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

    /// KIP-848 groups as (group id, state name), sorted by id.
    pub fn list_consumer(&self) -> Vec<(String, &'static str)> {
        let mut listings: Vec<(String, &'static str)> = self
            .consumer_groups
            .values()
            .map(|g| (g.id.clone(), g.state_name()))
            .collect();
        listings.sort();
        listings
    }

    /// Checks that a group may be deleted and returns the offsets whose tombstones must be
    /// written; [`GroupCoordinator::forget`] removes it once they are durable.
    pub fn prepare_delete(&self, group_id: &str) -> Result<Vec<OffsetKey>, ErrorCode> {
        // Kafka accepts DeleteGroups for the empty group id (old clients); it is simply not found.
        check_group_id(group_id)?;
        let idle = match (
            self.groups.get(group_id),
            self.consumer_groups.get(group_id),
        ) {
            (Some(group), _) => group.state == GroupState::Empty,
            (_, Some(group)) => group.members.is_empty(),
            (None, None) if self.exists(group_id) => true,
            (None, None) => return Err(ErrorCode::GroupIdNotFound),
        };
        if !idle {
            return Err(ErrorCode::NonEmptyGroup);
        }
        // Tombstones for the pending transactional offsets too (Kafka's deleteAllOffsets), so
        // that a replay drops them as the delete does and the marker brings nothing back.
        let mut partitions = self.pending_txn.partitions_of(group_id);
        if let Some(committed) = self.offsets.get(group_id) {
            partitions.extend(committed.keys().cloned());
        }
        Ok(partitions
            .into_iter()
            .map(|(topic, partition)| OffsetKey {
                group: group_id.to_owned(),
                topic,
                partition,
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
        if self
            .consumer_groups
            .get(group_id)
            .is_some_and(|g| g.members.is_empty())
        {
            self.consumer_groups.remove(group_id);
        }
        self.offsets.remove(group_id);
        for key in self.pending_txn.partitions_of(group_id) {
            self.pending_txn.remove_partition(group_id, &key);
        }
    }

    /// OffsetDelete: a group may drop offsets of topics none of its members subscribe to.
    pub fn check_offset_delete(&self, group_id: &str, topic: &str) -> Result<(), ErrorCode> {
        check_group_id_not_empty(group_id)?;
        if let Some(group) = self.consumer_groups.get(group_id) {
            if group
                .members
                .values()
                .any(|m| m.subscribed.iter().any(|t| t == topic))
            {
                return Err(ErrorCode::GroupSubscribedToTopic);
            }
            return Ok(());
        }
        let Some(group) = self.groups.get(group_id) else {
            return if self.offsets.contains_key(group_id) {
                Ok(())
            } else {
                Err(ErrorCode::GroupIdNotFound)
            };
        };
        if group.state == GroupState::Empty {
            return Ok(());
        }
        // Kafka's handleDeleteOffsets: only a consumer group's subscriptions can be known; a
        // live group of any other protocol type is simply not empty.
        if group.protocol_type.as_deref() != Some("consumer") {
            return Err(ErrorCode::NonEmptyGroup);
        }
        // And when the subscriptions are not known (no protocol chosen yet, or metadata that
        // does not parse), assume the topic is consumed.
        let Some(protocol) = group.protocol_name.as_deref() else {
            return Err(ErrorCode::GroupSubscribedToTopic);
        };
        for member in group.members.values() {
            match subscribed_topics(&member.metadata_for(protocol)) {
                Some(topics) if !topics.iter().any(|t| t == topic) => {}
                _ => return Err(ErrorCode::GroupSubscribedToTopic),
            }
        }
        Ok(())
    }

    /// Removes offsets whose tombstones are durable (or replayed): committed ones, and the
    /// pending transactional commits of those partitions, as Kafka's replay of a tombstone.
    pub fn remove_offsets(&mut self, group_id: &str, partitions: &[(String, i32)]) {
        if let Some(stored) = self.offsets.get_mut(group_id) {
            for key in partitions {
                stored.remove(key);
            }
            if stored.is_empty() {
                self.offsets.remove(group_id);
            }
        }
        for key in partitions {
            self.pending_txn.remove_partition(group_id, key);
        }
        if !self.offsets.contains_key(group_id) && !self.pending_txn.has_group(group_id) {
            if self.groups.get(group_id).is_some_and(|g| g.is_idle()) {
                self.groups.remove(group_id);
            }
            if self
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| g.members.is_empty())
            {
                self.consumer_groups.remove(group_id);
            }
        }
    }
}

/// The topics in a consumer-protocol subscription (version, then an array of strings; the
/// layout is the same in every version's prefix); `None` if the metadata does not parse.
fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 6 {
        return None;
    }
    let _version = buf.get_i16();
    let count = usize::try_from(buf.get_i32()).ok()?;
    let mut topics = Vec::with_capacity(count.min(buf.remaining() / 2));
    for _ in 0..count {
        if buf.remaining() < 2 {
            return None;
        }
        let length = usize::try_from(buf.get_i16()).ok()?;
        if buf.remaining() < length {
            return None;
        }
        topics.push(String::from_utf8(buf.split_to(length).to_vec()).ok()?);
    }
    Some(topics)
}
