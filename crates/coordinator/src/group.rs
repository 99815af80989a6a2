//! One consumer group under the classic protocol (KIP-62, KIP-345 static membership, KIP-394
//! member-id-required joins), as Kafka's group coordinator runs it.
//!
//! Lifecycle: a group is Empty until a member joins; a join moves it to PreparingRebalance,
//! where it waits until every known member has (re)joined or the rebalance timeout passes
//! (for an Empty group, `group.initial.rebalance.delay.ms` so that a fleet starting together
//! forms one generation); completing the join bumps the generation, picks the protocol every
//! member supports with the most first-preference votes, names a leader, answers every waiting
//! JoinGroup and moves to CompletingRebalance; the leader's SyncGroup carries the assignment,
//! which answers every waiting SyncGroup and makes the group Stable. A member that leaves,
//! misses its session timeout, or joins with new protocols sends the group back to
//! PreparingRebalance. A group with no members and no offsets is Dead and forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use strom_types::ErrorCode;

/// The token the runtime uses to route a deferred response back to its request.
pub type ReplyTo = u64;

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's admin APIs use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One assignment protocol a member supports, with its opaque metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a member without an id gets one and must join again with it.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ErrorCode) -> SyncResponse {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A response to a request that may have arrived earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Join(ReplyTo, JoinResponse),
    Sync(ReplyTo, SyncResponse),
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) assignment: Bytes,
    awaiting_join: Option<ReplyTo>,
    awaiting_sync: Option<ReplyTo>,
    session_deadline_ms: i64,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// One classic group: membership and generation. Its committed offsets are kept by the
/// coordinator, keyed by group id, whichever protocol the group speaks.
#[derive(Debug)]
pub struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) generation_id: i32,
    pub(crate) leader_id: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with the time they expire unused.
    pending_members: HashMap<String, i64>,
    static_members: HashMap<String, String>,
    /// In PreparingRebalance: when the join completes even if members are missing.
    rebalance_deadline_ms: i64,
    /// In the first rebalance of a group that was Empty: no completion before this
    /// (`group.initial.rebalance.delay.ms`).
    initial_delay_until_ms: i64,
    /// The configured initial delay, and how much more it may be extended, within the
    /// rebalance timeout.
    initial_delay_ms: i64,
    initial_delay_remaining_ms: i64,
    /// A member joined during the current initial delay, which then extends it once more.
    joined_during_initial_delay: bool,
    /// Members of the current generation that have not sent SyncGroup yet; they are dropped
    /// at `sync_deadline_ms` (Kafka's pending-sync expiry, KAFKA-13042).
    pending_sync: HashSet<String>,
    sync_deadline_ms: i64,
    /// When the group last became Empty, for `offsets.retention.minutes`; `None` while it has
    /// had no members since this coordinator started (offsets then expire by commit time).
    pub(crate) empty_since_ms: Option<i64>,
}

/// The group-wide settings that bound member behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    pub initial_rebalance_delay_ms: i64,
    pub members_max: usize,
}

impl Group {
    pub fn new(id: &str, _now_ms: i64) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            initial_delay_ms: 0,
            initial_delay_remaining_ms: 0,
            joined_during_initial_delay: false,
            pending_sync: HashSet::new(),
            sync_deadline_ms: 0,
            empty_since_ms: None,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn is_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Whether a member with `protocol_type` and `protocols` could join.
    fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            })
    }

    /// Handles a JoinGroup. `fresh_member_id` is the id a new member gets.
    pub fn join(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        fresh_member_id: String,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Output> {
        let refuse = |error| {
            vec![Output::Join(
                reply,
                JoinResponse::error(error, &request.member_id),
            )]
        };
        if self.state == GroupState::Dead {
            return refuse(ErrorCode::CoordinatorNotAvailable);
        }
        if !(limits.session_timeout_ms_min..=limits.session_timeout_ms_max)
            .contains(&request.session_timeout_ms)
        {
            return refuse(ErrorCode::InvalidSessionTimeout);
        }
        if !self.supports(&request.protocol_type, &request.protocols) {
            return refuse(ErrorCode::InconsistentGroupProtocol);
        }
        if request.member_id.is_empty() {
            self.join_unknown(reply, request, fresh_member_id, limits, now_ms)
        } else {
            self.join_known(reply, request, limits, now_ms)
        }
    }

    fn join_unknown(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        member_id: String,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Output> {
        if self.members.len() + self.pending_members.len() >= limits.members_max {
            return vec![Output::Join(
                reply,
                JoinResponse::error(ErrorCode::GroupMaxSizeReached, ""),
            )];
        }
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self
                    .replace_static_member(reply, request, old_id, member_id, limits, now_ms);
            }
            return self.add_member_and_rebalance(reply, request, member_id, limits, now_ms);
        }
        if request.require_known_member_id {
            self.pending_members.insert(
                member_id.clone(),
                now_ms + request.session_timeout_ms as i64,
            );
            return vec![Output::Join(
                reply,
                JoinResponse::error(ErrorCode::MemberIdRequired, &member_id),
            )];
        }
        self.add_member_and_rebalance(reply, request, member_id, limits, now_ms)
    }

    fn join_known(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Output> {
        let member_id = request.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(reply, request, member_id, limits, now_ms);
        }
        if let Some(error) = self.fencing_error(&member_id, request.group_instance_id.as_deref()) {
            return vec![Output::Join(reply, JoinResponse::error(error, &member_id))];
        }
        let member = self
            .members
            .get_mut(&member_id)
            .expect("fencing_error checked membership");
        let unchanged = member.protocols == request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_deadline_ms = now_ms + request.session_timeout_ms as i64;
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(self.state == GroupState::Stable && is_leader) =>
            {
                vec![Output::Join(reply, self.current_join_response(&member_id))]
            }
            GroupState::Empty | GroupState::Dead => vec![Output::Join(
                reply,
                JoinResponse::error(ErrorCode::UnknownMemberId, &member_id),
            )],
            _ => {
                let member = self.members.get_mut(&member_id).expect("member exists");
                member.protocols = request.protocols;
                if let Some(previous) = member.awaiting_join.replace(reply) {
                    // A second join from the same member replaces the first, which is told to retry.
                    let mut outputs = vec![Output::Join(
                        previous,
                        JoinResponse::error(ErrorCode::RebalanceInProgress, &member_id),
                    )];
                    outputs.extend(self.prepare_or_complete(now_ms, limits));
                    return outputs;
                }
                self.prepare_or_complete(now_ms, limits)
            }
        }
    }

    /// `Some(error)` if `member_id` may not act for the group (unknown, or fenced by a newer
    /// instance of the same static member).
    pub(crate) fn fencing_error(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ErrorCode> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Some(ErrorCode::FencedInstanceId),
                Some(_) => return None,
                None => {}
            }
        }
        (!self.members.contains_key(member_id)).then_some(ErrorCode::UnknownMemberId)
    }

    fn add_member_and_rebalance(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        member_id: String,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Output> {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let member = Member {
            id: member_id.clone(),
            instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            session_deadline_ms: now_ms + request.session_timeout_ms as i64,
        };
        self.members.insert(member_id, member);
        if self.state == GroupState::PreparingRebalance && now_ms < self.initial_delay_until_ms {
            self.joined_during_initial_delay = true;
        }
        self.prepare_or_complete(now_ms, limits)
    }

    /// A static member rejoined under a new member id: the old id is fenced. In a Stable group
    /// whose protocols are unchanged it keeps its assignment without a rebalance (KIP-345).
    fn replace_static_member(
        &mut self,
        reply: ReplyTo,
        request: JoinRequest,
        old_id: String,
        new_id: String,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Output> {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(request.group_instance_id.as_deref().unwrap_or_default());
            return self.add_member_and_rebalance(reply, request, new_id, limits, now_ms);
        };
        let mut outputs = Vec::new();
        if let Some(waiting) = member.awaiting_join.take() {
            outputs.push(Output::Join(
                waiting,
                JoinResponse::error(ErrorCode::FencedInstanceId, &old_id),
            ));
        }
        if let Some(waiting) = member.awaiting_sync.take() {
            outputs.push(Output::Sync(
                waiting,
                SyncResponse::error(ErrorCode::FencedInstanceId),
            ));
        }
        let unchanged = member.protocols == request.protocols;
        member.id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_deadline_ms = now_ms + request.session_timeout_ms as i64;
        if self.leader_id.as_deref() == Some(old_id.as_str()) {
            self.leader_id = Some(new_id.clone());
        }
        self.static_members.insert(
            request.group_instance_id.clone().unwrap_or_default(),
            new_id.clone(),
        );
        if self.state == GroupState::Stable && unchanged {
            self.members.insert(new_id.clone(), member);
            let mut response = self.current_join_response(&new_id);
            if self.leader_id.as_deref() == Some(new_id.as_str()) {
                // The leader must not reassign: nothing changed (KIP-814).
                response.skip_assignment = true;
            }
            outputs.push(Output::Join(reply, response));
            return outputs;
        }
        member.protocols = request.protocols;
        member.awaiting_join = Some(reply);
        self.members.insert(new_id, member);
        outputs.extend(self.prepare_or_complete(now_ms, limits));
        outputs
    }

    /// The JoinGroup answer for a member of the current generation: the leader also gets the
    /// members and their metadata.
    fn current_join_response(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: ErrorCode::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// Moves to PreparingRebalance if not there yet, then completes the join if it can.
    fn prepare_or_complete(&mut self, now_ms: i64, limits: &Limits) -> Vec<Output> {
        let mut outputs = Vec::new();
        if self.state != GroupState::PreparingRebalance {
            outputs.extend(self.prepare_rebalance(now_ms, limits));
        }
        outputs.extend(self.try_complete_join(now_ms));
        outputs
    }

    pub(crate) fn prepare_rebalance(&mut self, now_ms: i64, limits: &Limits) -> Vec<Output> {
        let mut outputs = Vec::new();
        if self.state == GroupState::CompletingRebalance {
            // The assignment being computed is void; members waiting for it must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiting) = member.awaiting_sync.take() {
                    outputs.push(Output::Sync(
                        waiting,
                        SyncResponse::error(ErrorCode::RebalanceInProgress),
                    ));
                    // It waited without heartbeating; give it a full session to rejoin.
                    member.session_deadline_ms = now_ms + member.session_timeout_ms as i64;
                }
            }
        }
        self.pending_sync.clear();
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        let first_rebalance = self.state == GroupState::Empty;
        self.initial_delay_until_ms = if first_rebalance {
            now_ms + limits.initial_rebalance_delay_ms
        } else {
            0
        };
        self.initial_delay_remaining_ms = if first_rebalance {
            (rebalance_timeout_ms - limits.initial_rebalance_delay_ms).max(0)
        } else {
            0
        };
        self.joined_during_initial_delay = false;
        self.initial_delay_ms = limits.initial_rebalance_delay_ms;
        self.rebalance_deadline_ms = now_ms
            + rebalance_timeout_ms.max(
                limits.initial_rebalance_delay_ms * i64::from(self.state == GroupState::Empty),
            );
        self.state = GroupState::PreparingRebalance;
        outputs
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn try_complete_join(&mut self, now_ms: i64) -> Vec<Output> {
        if self.state != GroupState::PreparingRebalance || now_ms < self.initial_delay_until_ms {
            return Vec::new();
        }
        if self.initial_delay_until_ms > 0 {
            // The initial delay just ended. If someone joined during it, more may be on the
            // way: wait one more delay, within the rebalance timeout (Kafka's
            // InitialDelayedJoin). Otherwise the join completes now.
            if self.joined_during_initial_delay
                && self.initial_delay_remaining_ms > 0
                && self.initial_delay_ms > 0
            {
                let delay = self.initial_delay_remaining_ms.min(self.initial_delay_ms);
                self.initial_delay_until_ms += delay;
                self.initial_delay_remaining_ms -= delay;
                self.joined_during_initial_delay = false;
                if now_ms < self.initial_delay_until_ms {
                    return Vec::new();
                }
            }
            self.initial_delay_until_ms = 0;
            return self.complete_join(now_ms);
        }
        if self.all_joined() || now_ms >= self.rebalance_deadline_ms {
            return self.complete_join(now_ms);
        }
        Vec::new()
    }

    /// Ends PreparingRebalance: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every waiting JoinGroup.
    fn complete_join(&mut self, now_ms: i64) -> Vec<Output> {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        if self.members.is_empty() {
            self.generation_id += 1;
            self.become_empty(now_ms);
            return Vec::new();
        }
        if self.members.values().all(|m| m.awaiting_join.is_none()) {
            // Only static members that have not rejoined remain: no generation without
            // anyone in it. Wait another rebalance timeout; their sessions decide (Kafka).
            let rebalance_timeout_ms = self
                .members
                .values()
                .map(|m| m.rebalance_timeout_ms as i64)
                .max()
                .unwrap_or(0);
            self.rebalance_deadline_ms = now_ms + rebalance_timeout_ms;
            return Vec::new();
        }
        self.generation_id += 1;
        self.protocol_name = self.select_protocol();
        if !self.leader_id.as_ref().is_some_and(|id| {
            self.members
                .get(id)
                .is_some_and(|m| m.awaiting_join.is_some())
        }) {
            self.leader_id = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        self.sync_deadline_ms = now_ms + rebalance_timeout_ms;
        self.pending_sync = self.members.keys().cloned().collect();
        let mut outputs = Vec::new();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.current_join_response(&id);
            let member = self.members.get_mut(&id).expect("listed member");
            member.session_deadline_ms = now_ms + member.session_timeout_ms as i64;
            if let Some(reply) = member.awaiting_join.take() {
                outputs.push(Output::Join(reply, response));
            }
        }
        outputs
    }

    /// The last member is gone. The protocol type stays (a consumer group remains one),
    /// only the protocol name goes, as in Kafka.
    fn become_empty(&mut self, now_ms: i64) {
        self.state = GroupState::Empty;
        self.protocol_name = None;
        self.leader_id = None;
        self.pending_sync.clear();
        self.empty_since_ms = Some(now_ms);
    }

    /// The protocol all members support that most members list first among those.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|p| p.name == *name))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|name| (*name, 0)).collect();
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.name.as_str()))
            {
                if let Some(entry) = votes.iter_mut().find(|(name, _)| *name == choice.name) {
                    entry.1 += 1;
                }
            }
        }
        // Most votes wins; among equals, the earliest candidate.
        let best = votes.iter().map(|(_, count)| *count).max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_owned())
    }

    /// Removes a member, answering its waiting requests with UNKNOWN_MEMBER_ID.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Vec<Output> {
        let mut outputs = Vec::new();
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(waiting) = member.awaiting_join {
                outputs.push(Output::Join(
                    waiting,
                    JoinResponse::error(ErrorCode::UnknownMemberId, member_id),
                ));
            }
            if let Some(waiting) = member.awaiting_sync {
                outputs.push(Output::Sync(
                    waiting,
                    SyncResponse::error(ErrorCode::UnknownMemberId),
                ));
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        outputs
    }

    /// A member left (LeaveGroup) or timed out: remove it and rebalance the rest.
    pub(crate) fn member_departed(
        &mut self,
        member_id: &str,
        now_ms: i64,
        limits: &Limits,
    ) -> Vec<Output> {
        let mut outputs = self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation_id += 1;
                    self.become_empty(now_ms);
                } else {
                    outputs.extend(self.prepare_rebalance(now_ms, limits));
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() && self.pending_members.is_empty() {
                    self.generation_id += 1;
                    self.become_empty(now_ms);
                } else {
                    outputs.extend(self.try_complete_join(now_ms));
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        outputs
    }

    /// Handles a SyncGroup.
    pub fn sync(&mut self, reply: ReplyTo, request: SyncRequest, now_ms: i64) -> Vec<Output> {
        let refuse = |error| vec![Output::Sync(reply, SyncResponse::error(error))];
        if let Some(error) =
            self.fencing_error(&request.member_id, request.group_instance_id.as_deref())
        {
            return refuse(error);
        }
        if request.generation_id != self.generation_id {
            return refuse(ErrorCode::IllegalGeneration);
        }
        let mismatched =
            |given: &Option<String>, current: &Option<String>| given.is_some() && given != current;
        if mismatched(&request.protocol_type, &self.protocol_type)
            || mismatched(&request.protocol_name, &self.protocol_name)
        {
            return refuse(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => refuse(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => refuse(ErrorCode::RebalanceInProgress),
            GroupState::Stable => {
                let member = self
                    .members
                    .get_mut(&request.member_id)
                    .expect("fencing_error checked membership");
                member.session_deadline_ms = now_ms + member.session_timeout_ms as i64;
                let assignment = member.assignment.clone();
                self.pending_sync.remove(&request.member_id);
                vec![Output::Sync(reply, self.sync_response(assignment))]
            }
            GroupState::CompletingRebalance => {
                let member = self
                    .members
                    .get_mut(&request.member_id)
                    .expect("fencing_error checked membership");
                member.session_deadline_ms = now_ms + member.session_timeout_ms as i64;
                let mut outputs = Vec::new();
                if let Some(previous) = member.awaiting_sync.replace(reply) {
                    outputs.push(Output::Sync(
                        previous,
                        SyncResponse::error(ErrorCode::RebalanceInProgress),
                    ));
                }
                self.pending_sync.remove(&request.member_id);
                if self.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    outputs.extend(self.complete_sync(request.assignments, now_ms));
                }
                outputs
            }
        }
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The leader's assignment arrived: store it, go Stable, answer every waiting SyncGroup.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64) -> Vec<Output> {
        let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        let mut outputs = Vec::new();
        let waiting: Vec<(ReplyTo, Bytes)> = self
            .members
            .values_mut()
            .filter_map(|m| {
                let reply = m.awaiting_sync.take()?;
                // It waited without heartbeating: its session starts again now (Kafka's
                // propagateAssignment).
                m.session_deadline_ms = now_ms + m.session_timeout_ms as i64;
                Some((reply, m.assignment.clone()))
            })
            .collect();
        for (reply, assignment) in waiting {
            outputs.push(Output::Sync(reply, self.sync_response(assignment)));
        }
        outputs
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if let Some(error) = self.fencing_error(member_id, instance_id) {
            return error;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => return ErrorCode::UnknownMemberId,
            _ if generation_id != self.generation_id => return ErrorCode::IllegalGeneration,
            _ => {}
        }
        let member = self
            .members
            .get_mut(member_id)
            .expect("fencing_error checked membership");
        member.session_deadline_ms = now_ms + member.session_timeout_ms as i64;
        if self.state == GroupState::PreparingRebalance {
            ErrorCode::RebalanceInProgress
        } else {
            ErrorCode::None
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
        limits: &Limits,
    ) -> (ErrorCode, Vec<Output>) {
        let member_id = match (member_id, instance_id) {
            // v3+: a static member may leave by instance id alone.
            ("", Some(instance)) => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return (ErrorCode::UnknownMemberId, Vec::new()),
            },
            (id, _) => id.to_owned(),
        };
        if self.pending_members.remove(&member_id).is_some() {
            return (ErrorCode::None, self.try_complete_join(now_ms));
        }
        if let Some(error) = self.fencing_error(&member_id, instance_id) {
            return (error, Vec::new());
        }
        (
            ErrorCode::None,
            self.member_departed(&member_id, now_ms, limits),
        )
    }

    /// Applies every deadline that has passed by `now_ms`.
    pub fn tick(&mut self, now_ms: i64, limits: &Limits) -> Vec<Output> {
        let mut outputs = Vec::new();
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.pending_members.len() != before {
            outputs.extend(self.try_complete_join(now_ms));
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms <= now_ms && !self.keeps_alive(m))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            // An earlier departure in this loop may have completed a join that dropped it.
            if self.members.contains_key(&id) {
                outputs.extend(self.member_departed(&id, now_ms, limits));
            }
        }
        match self.state {
            GroupState::PreparingRebalance => outputs.extend(self.try_complete_join(now_ms)),
            GroupState::CompletingRebalance | GroupState::Stable
                if !self.pending_sync.is_empty() && now_ms >= self.sync_deadline_ms =>
            {
                // Members that never sent SyncGroup within the rebalance timeout hold
                // partitions nobody consumes: drop them and start over (KAFKA-13042).
                let unsynced: Vec<String> = self.pending_sync.drain().collect();
                for id in unsynced {
                    outputs.extend(self.remove_member(&id));
                }
                if self.members.is_empty() {
                    self.generation_id += 1;
                    self.become_empty(now_ms);
                } else {
                    outputs.extend(self.prepare_rebalance(now_ms, limits));
                }
            }
            _ => {}
        }
        outputs
    }

    /// A member waiting for its join or sync answer is not expected to heartbeat.
    fn keeps_alive(&self, member: &Member) -> bool {
        (self.state == GroupState::PreparingRebalance && member.awaiting_join.is_some())
            || (self.state == GroupState::CompletingRebalance && member.awaiting_sync.is_some())
    }

    /// Whether the group has no members, joining or pending (its offsets are kept apart).
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.pending_members.is_empty()
    }
}
