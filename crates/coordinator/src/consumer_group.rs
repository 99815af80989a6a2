//! KIP-848 consumer groups (`group.protocol=consumer`): the coordinator computes the
//! assignment and hands it out through ConsumerGroupHeartbeat; there is no join/sync barrier.
//!
//! Epochs: the group epoch grows whenever membership, subscriptions or the subscribed topics'
//! partition counts change; the target assignment is recomputed for it and takes the same
//! epoch (the assignment epoch). Each member reconciles towards its target on its own
//! heartbeats: first it must revoke what the target takes away (it keeps its epoch until it
//! reports, in `owned`, that it gave them up, or it is fenced after its rebalance timeout);
//! then it moves to the assignment epoch and receives the partitions of its target that no
//! other member still holds. Partitions held by a member that is revoking them are handed on
//! at the new owner's next heartbeat after the release.

use std::collections::{BTreeMap, HashMap};

use strom_types::ErrorCode;

use crate::assignors::{self, Assignment, MemberSubscription, ASSIGNORS};

/// Member epoch values with special meaning in a heartbeat.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The consumer-protocol settings (`group.consumer.*`).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub members_max: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            members_max: i32::MAX as usize,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    pub error: ErrorCode,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None`: the member's assignment has not changed since it was last sent.
    pub assignment: Option<Assignment>,
}

impl ConsumerHeartbeatResponse {
    pub fn error(
        error: ErrorCode,
        message: impl Into<String>,
        member_id: &str,
    ) -> ConsumerHeartbeatResponse {
        ConsumerHeartbeatResponse {
            error,
            error_message: Some(message.into()),
            member_id: member_id.to_owned(),
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) member_epoch: i32,
    previous_member_epoch: i32,
    rebalance_timeout_ms: i32,
    pub(crate) subscribed: Vec<String>,
    server_assignor: Option<String>,
    pub(crate) assigned: Assignment,
    revoking: Assignment,
    session_deadline_ms: i64,
    revocation_deadline_ms: Option<i64>,
    sent: Option<Assignment>,
}

/// One KIP-848 consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    pub(crate) target: BTreeMap<String, Assignment>,
    partition_counts: BTreeMap<String, i32>,
    static_members: HashMap<String, String>,
    pub(crate) empty_since_ms: i64,
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in a {
        let rest: std::collections::BTreeSet<i32> = partitions
            .iter()
            .filter(|p| !b.get(topic).is_some_and(|q| q.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(topic.clone(), rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    minus(a, &minus(a, b))
}

fn holds(assignment: &Assignment, topic: &str, partition: i32) -> bool {
    assignment
        .get(topic)
        .is_some_and(|p| p.contains(&partition))
}

impl ConsumerGroup {
    pub fn new(id: &str, now_ms: i64) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_owned(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            static_members: HashMap::new(),
            empty_since_ms: now_ms,
        }
    }

    /// Kafka's names for a consumer group's states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.member_epoch != self.assignment_epoch
                || !m.revoking.is_empty()
                || Some(&m.assigned) != self.target.get(&m.id)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor in use: the one named by the most members, else the default.
    pub fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member
                .server_assignor
                .as_deref()
                .and_then(|n| ASSIGNORS.iter().find(|a| **a == n))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .map_or(ASSIGNORS[0], |(name, _)| name)
    }

    pub fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.members.get(member_id).map(|m| m.member_epoch)
    }

    /// Handles a ConsumerGroupHeartbeat. `partition_count` resolves a topic name to its
    /// partition count (None for a topic that does not exist).
    pub fn heartbeat(
        &mut self,
        request: ConsumerHeartbeat,
        fresh_member_id: String,
        partition_count: &dyn Fn(&str) -> Option<i32>,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> ConsumerHeartbeatResponse {
        if request.subscribed_topic_regex.is_some() {
            return ConsumerHeartbeatResponse::error(
                ErrorCode::InvalidRequest,
                "regular-expression subscriptions are not supported yet",
                &request.member_id,
            );
        }
        if let Some(assignor) = &request.server_assignor {
            if !ASSIGNORS.contains(&assignor.as_str()) {
                return ConsumerHeartbeatResponse::error(
                    ErrorCode::UnsupportedAssignor,
                    format!("assignor '{assignor}' is not one of {ASSIGNORS:?}"),
                    &request.member_id,
                );
            }
        }
        let (member_id, joined) = match request.member_epoch {
            JOIN_EPOCH => match self.join(&request, fresh_member_id, config, now_ms) {
                Ok(joined) => joined,
                Err(response) => return response,
            },
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(&request, now_ms),
            epoch => match self.check_epoch(&request, epoch) {
                Ok(()) => (request.member_id.clone(), false),
                Err(response) => return response,
            },
        };
        let updated = self.update_member(&member_id, &request, config, now_ms);
        // One heartbeat moves the group epoch at most once, whatever changed.
        self.refresh_target(partition_count, joined || updated);
        self.reconcile(&member_id, request.owned.as_ref(), now_ms);
        let full = request.member_epoch == JOIN_EPOCH || request.owned.is_some();
        let member = self
            .members
            .get_mut(&member_id)
            .expect("member just handled");
        let changed = member.sent.as_ref() != Some(&member.assigned);
        let assignment = (full || changed).then(|| member.assigned.clone());
        if assignment.is_some() {
            member.sent = Some(member.assigned.clone());
        }
        ConsumerHeartbeatResponse {
            error: ErrorCode::None,
            error_message: None,
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment,
        }
    }

    /// Adds the member; returns its id and whether membership changed.
    fn join(
        &mut self,
        request: &ConsumerHeartbeat,
        fresh_member_id: String,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> Result<(String, bool), ConsumerHeartbeatResponse> {
        let member_id = if request.member_id.is_empty() {
            fresh_member_id
        } else {
            request.member_id.clone()
        };
        if request.subscribed_topic_names.is_none() {
            return Err(ConsumerHeartbeatResponse::error(
                ErrorCode::InvalidRequest,
                "the first heartbeat must name the subscribed topics",
                &member_id,
            ));
        }
        let mut inherited = None;
        if let Some(instance) = &request.instance_id {
            if let Some(holder) = self.static_members.get(instance).cloned() {
                let holder_epoch = self
                    .members
                    .get(&holder)
                    .map_or(STATIC_LEAVE_EPOCH, |m| m.member_epoch);
                if holder != member_id && holder_epoch != STATIC_LEAVE_EPOCH {
                    return Err(ConsumerHeartbeatResponse::error(
                        ErrorCode::UnreleasedInstanceId,
                        format!("instance '{instance}' is still held by member {holder}"),
                        &member_id,
                    ));
                }
                // A static member coming back takes over its predecessor's assignment (KIP-848).
                inherited = self.members.remove(&holder);
            }
        }
        if inherited.is_none()
            && !self.members.contains_key(&member_id)
            && self.members.len() >= config.members_max
        {
            return Err(ConsumerHeartbeatResponse::error(
                ErrorCode::GroupMaxSizeReached,
                "the group is full",
                &member_id,
            ));
        }
        // A dynamic member rejoining with epoch 0 starts over.
        self.members.remove(&member_id);
        let (assigned, epoch) = inherited
            .as_ref()
            .map_or((Assignment::new(), JOIN_EPOCH), |m| {
                (m.assigned.clone(), m.previous_member_epoch.max(0))
            });
        if let Some(instance) = &request.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            ConsumerMember {
                id: member_id.clone(),
                instance_id: request.instance_id.clone(),
                rack_id: request.rack_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                member_epoch: epoch,
                previous_member_epoch: epoch,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                subscribed: Vec::new(),
                server_assignor: None,
                assigned,
                revoking: Assignment::new(),
                session_deadline_ms: now_ms + config.session_timeout_ms as i64,
                revocation_deadline_ms: None,
                sent: None,
            },
        );
        Ok((member_id, inherited.is_none()))
    }

    fn leave(&mut self, request: &ConsumerHeartbeat, now_ms: i64) -> ConsumerHeartbeatResponse {
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return ConsumerHeartbeatResponse::error(
                ErrorCode::UnknownMemberId,
                "not a member of this group",
                &request.member_id,
            );
        };
        if request.member_epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            // A static member leaving for a while keeps its partitions until its session expires.
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = STATIC_LEAVE_EPOCH;
        } else {
            self.remove_member(&request.member_id, now_ms);
        }
        ConsumerHeartbeatResponse {
            error: ErrorCode::None,
            error_message: None,
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    fn check_epoch(
        &self,
        request: &ConsumerHeartbeat,
        epoch: i32,
    ) -> Result<(), ConsumerHeartbeatResponse> {
        let Some(member) = self.members.get(&request.member_id) else {
            return Err(ConsumerHeartbeatResponse::error(
                ErrorCode::UnknownMemberId,
                "not a member of this group",
                &request.member_id,
            ));
        };
        if epoch == member.member_epoch {
            return Ok(());
        }
        // The response that moved the member to its current epoch may have been lost: the
        // previous epoch is still fine if the member owns nothing it should not.
        let lost_response = epoch == member.previous_member_epoch
            && request
                .owned
                .as_ref()
                .is_none_or(|owned| minus(owned, &member.assigned).is_empty());
        if lost_response {
            return Ok(());
        }
        Err(ConsumerHeartbeatResponse::error(
            ErrorCode::FencedMemberEpoch,
            format!(
                "member epoch {epoch} is fenced; the current epoch is {}",
                member.member_epoch
            ),
            &request.member_id,
        ))
    }

    /// Applies the heartbeat's fields; returns whether the subscription changed.
    fn update_member(
        &mut self,
        member_id: &str,
        request: &ConsumerHeartbeat,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> bool {
        let member = self.members.get_mut(member_id).expect("member exists");
        member.session_deadline_ms = now_ms + config.session_timeout_ms as i64;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id.clone_from(&request.client_id);
        let mut changed = false;
        if let Some(topics) = &request.subscribed_topic_names {
            let mut topics = topics.clone();
            topics.sort();
            topics.dedup();
            changed |= topics != member.subscribed;
            member.subscribed = topics;
        }
        if request.server_assignor.is_some() && request.server_assignor != member.server_assignor {
            member.server_assignor.clone_from(&request.server_assignor);
            changed = true;
        }
        changed
    }

    /// Bumps the group epoch if `changed` or if subscribed topics changed size, and recomputes
    /// the target assignment when the group epoch moved past it.
    fn refresh_target(&mut self, partition_count: &dyn Fn(&str) -> Option<i32>, mut changed: bool) {
        let mut counts = BTreeMap::new();
        for topic in self.members.values().flat_map(|m| m.subscribed.iter()) {
            if let Some(count) = partition_count(topic) {
                counts.insert(topic.clone(), count);
            }
        }
        if counts != self.partition_counts {
            self.partition_counts = counts;
            changed = true;
        }
        if changed {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
    }

    fn compute_target(&mut self) {
        let assignor = self.assignor();
        let subscriptions: Vec<MemberSubscription<'_>> = self
            .members
            .values()
            .map(|m| MemberSubscription {
                member_id: &m.id,
                topics: &m.subscribed,
                current: self.target.get(&m.id).unwrap_or(&m.assigned),
            })
            .collect();
        self.target = assignors::assign(assignor, &subscriptions, &self.partition_counts);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves a member one step towards its target assignment.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let held_by_others: Assignment = self.members.values().filter(|m| m.id != member_id).fold(
            Assignment::new(),
            |mut held, m| {
                for source in [&m.assigned, &m.revoking] {
                    for (topic, partitions) in source {
                        held.entry(topic.clone())
                            .or_default()
                            .extend(partitions.iter().copied());
                    }
                }
                held
            },
        );
        let member = self.members.get_mut(member_id).expect("member exists");
        if !member.revoking.is_empty() {
            let released = owned.is_some_and(|owned| intersect(owned, &member.revoking).is_empty());
            if !released {
                return;
            }
            member.revoking.clear();
            member.revocation_deadline_ms = None;
        }
        let to_revoke = minus(&member.assigned, &target);
        if !to_revoke.is_empty() {
            member.assigned = intersect(&member.assigned, &target);
            member.revoking = to_revoke;
            member.revocation_deadline_ms = Some(now_ms + member.rebalance_timeout_ms as i64);
            return;
        }
        if member.member_epoch != assignment_epoch {
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
        }
        for (topic, partitions) in &target {
            for partition in partitions {
                if !holds(&held_by_others, topic, *partition) {
                    member
                        .assigned
                        .entry(topic.clone())
                        .or_default()
                        .insert(*partition);
                }
            }
        }
    }

    pub(crate) fn remove_member(&mut self, member_id: &str, now_ms: i64) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            self.target.remove(member_id);
            self.group_epoch += 1;
            if self.members.is_empty() {
                self.empty_since_ms = now_ms;
            }
            // Recompute now so the freed partitions have new owners on the next heartbeats.
            self.compute_target();
        }
    }

    /// Removes members whose session expired or who did not revoke in time.
    pub fn tick(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now_ms
                    || m.revocation_deadline_ms
                        .is_some_and(|deadline| deadline <= now_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now_ms);
        }
    }

    /// OffsetCommit from a member: its epoch must be its current one.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ErrorCode> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member_epoch > member.member_epoch {
            return Err(ErrorCode::FencedMemberEpoch);
        }
        if member_epoch < member.member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn heartbeat(
        member_id: &str,
        epoch: i32,
        topics: Option<&[&str]>,
        owned: Option<Assignment>,
    ) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: member_id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            owned,
            ..Default::default()
        }
    }

    fn six(topic: &str) -> Option<i32> {
        (topic == "t").then_some(6)
    }

    #[test]
    fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
        let config = ConsumerGroupConfig::default();
        let mut group = ConsumerGroup::new("g", 0);
        let a = group.heartbeat(
            heartbeat("a", 0, Some(&["t"]), None),
            String::new(),
            &six,
            &config,
            0,
        );
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment.as_ref().unwrap()["t"].len(), 6);
        let b = group.heartbeat(
            heartbeat("b", 0, Some(&["t"]), None),
            String::new(),
            &six,
            &config,
            10,
        );
        assert_eq!(b.member_epoch, 2);
        assert!(b.assignment.unwrap().is_empty(), "a still holds everything");
        assert_eq!(group.state_name(), "Reconciling");
        // a is told to keep only three.
        let a = group.heartbeat(
            heartbeat("a", 1, None, None),
            String::new(),
            &six,
            &config,
            20,
        );
        assert_eq!(a.member_epoch, 1);
        let kept = a.assignment.unwrap();
        assert_eq!(kept["t"].len(), 3);
        // a confirms; it moves to epoch 2; b then receives the other three.
        let a = group.heartbeat(
            heartbeat("a", 1, None, Some(kept.clone())),
            String::new(),
            &six,
            &config,
            30,
        );
        assert_eq!(a.member_epoch, 2);
        let b = group.heartbeat(
            heartbeat("b", 2, None, None),
            String::new(),
            &six,
            &config,
            40,
        );
        let given = b.assignment.unwrap();
        assert_eq!(given["t"].len(), 3);
        assert!(given["t"].is_disjoint(&kept["t"]));
        assert_eq!(group.state_name(), "Stable");
    }

    #[test]
    fn fenced_and_unknown_members_and_session_expiry() {
        let config = ConsumerGroupConfig::default();
        let mut group = ConsumerGroup::new("g", 0);
        group.heartbeat(
            heartbeat("a", 0, Some(&["t"]), None),
            String::new(),
            &six,
            &config,
            0,
        );
        assert_eq!(
            group
                .heartbeat(
                    heartbeat("a", 7, None, None),
                    String::new(),
                    &six,
                    &config,
                    1
                )
                .error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            group
                .heartbeat(
                    heartbeat("z", 1, None, None),
                    String::new(),
                    &six,
                    &config,
                    1
                )
                .error,
            ErrorCode::UnknownMemberId
        );
        group.tick(config.session_timeout_ms as i64 - 1);
        assert_eq!(group.members.len(), 1);
        group.tick(config.session_timeout_ms as i64);
        assert!(group.members.is_empty());
        assert_eq!(group.state_name(), "Empty");
    }

    #[test]
    fn leaving_frees_partitions_for_the_rest() {
        let config = ConsumerGroupConfig::default();
        let mut group = ConsumerGroup::new("g", 0);
        group.heartbeat(
            heartbeat("a", 0, Some(&["t"]), None),
            String::new(),
            &six,
            &config,
            0,
        );
        group.heartbeat(
            heartbeat("b", 0, Some(&["t"]), None),
            String::new(),
            &six,
            &config,
            0,
        );
        let left = group.heartbeat(
            heartbeat("a", LEAVE_EPOCH, None, None),
            String::new(),
            &six,
            &config,
            5,
        );
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        let b = group.heartbeat(
            heartbeat("b", 2, None, Some(Assignment::new())),
            String::new(),
            &six,
            &config,
            6,
        );
        assert_eq!(
            b.assignment.unwrap()["t"],
            (0..6).collect::<BTreeSet<i32>>()
        );
    }
}
