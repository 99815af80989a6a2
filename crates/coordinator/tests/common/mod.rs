//! Shared builders and a harness for the coordinator's integration tests.
//!
//! The harness plays the broker's runtime: it hands the coordinator a fresh reply token per
//! JoinGroup/SyncGroup, keeps the set of tokens still waiting, and files every answer the
//! coordinator emits under its token, failing the test if a token is answered twice, with the
//! wrong kind of response, or was never handed in. Time is a plain number the test advances;
//! nothing sleeps.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use strom_coordinator::coordinator::GroupDescription;
use strom_coordinator::group::JoinMember;
use strom_coordinator::offsets::{CommittedOffset, OffsetKey};
use strom_coordinator::{
    GroupConfig, GroupCoordinator, GroupState, JoinRequest, JoinResponse, Output, Protocol,
    ReplyTo, SyncRequest, SyncResponse,
};
use strom_types::ErrorCode;

pub const GROUP: &str = "group";
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;
pub const INITIAL_DELAY_MS: i64 = 3_000;

/// Kafka's defaults: sessions of 6 s to 30 min, a 3 s initial rebalance delay.
pub fn config() -> GroupConfig {
    GroupConfig::default()
}

/// Kafka's defaults without the initial rebalance delay, so a lone first member's join
/// completes at once.
pub fn config_without_delay() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

/// A consumer-protocol subscription as the Java client encodes it: version 0, the topics, and
/// null user data.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(topics.len() as i32);
    for topic in topics {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
    }
    buf.put_i32(-1);
    buf.freeze()
}

/// A protocol whose metadata names it, so a test can tell whose metadata it got back.
pub fn protocol(name: &str, metadata: &str) -> Protocol {
    Protocol {
        name: name.to_owned(),
        metadata: Bytes::copy_from_slice(metadata.as_bytes()),
    }
}

/// `names` in preference order, each with metadata `"<name>-metadata"`.
pub fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|name| protocol(name, &format!("{name}-metadata")))
        .collect()
}

/// A JoinGroup of a "consumer" that supports "range" then "roundrobin", with a 10 s session
/// and a 30 s rebalance timeout.
pub fn join(group: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        group_instance_id: None,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        protocol_type: "consumer".to_owned(),
        protocols: protocols(&["range", "roundrobin"]),
        require_known_member_id: false,
    }
}

/// A JoinGroup of a static member.
pub fn static_join(group: &str, member_id: &str, instance_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance_id.to_owned()),
        ..join(group, member_id)
    }
}

/// A SyncGroup without assignments (what a follower sends).
pub fn sync(group: &str, member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_owned()),
        protocol_name: None,
        assignments: Vec::new(),
    }
}

/// The assignment bytes the tests' leaders give `member_id`.
pub fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

/// A leader's SyncGroup assigning [`assignment_for`] to each of `members`.
pub fn leader_sync(
    group: &str,
    leader_id: &str,
    generation_id: i32,
    members: &[String],
) -> SyncRequest {
    SyncRequest {
        assignments: members
            .iter()
            .map(|id| (id.clone(), assignment_for(id)))
            .collect(),
        ..sync(group, leader_id, generation_id)
    }
}

pub fn offset(offset: i64, commit_timestamp_ms: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 0,
        metadata: String::new(),
        commit_timestamp_ms,
    }
}

pub fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    OffsetKey {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
}

/// Member ids of a leader's JoinGroup response, in the order given.
pub fn member_ids(response: &JoinResponse) -> Vec<String> {
    response
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect()
}

pub fn metadata_of<'a>(response: &'a JoinResponse, member_id: &str) -> &'a JoinMember {
    response
        .members
        .iter()
        .find(|m| m.member_id == member_id)
        .unwrap_or_else(|| panic!("{member_id} not in the leader's member list"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Sync,
}

/// A group that reached Stable through [`Harness::form_group`].
#[derive(Debug, Clone)]
pub struct Formed {
    pub generation: i32,
    pub leader: String,
    /// In join order; the first is the leader.
    pub members: Vec<String>,
}

impl Formed {
    pub fn follower(&self, index: usize) -> &str {
        &self.members[index + 1]
    }
}

/// The broker's runtime, minus sockets and clocks.
pub struct Harness {
    pub coordinator: GroupCoordinator,
    pub now_ms: i64,
    next_reply: ReplyTo,
    next_member: u32,
    outstanding: BTreeMap<ReplyTo, Kind>,
    joins: BTreeMap<ReplyTo, JoinResponse>,
    syncs: BTreeMap<ReplyTo, SyncResponse>,
}

impl Harness {
    pub fn new(config: GroupConfig) -> Harness {
        Harness {
            coordinator: GroupCoordinator::new(config),
            now_ms: 1_000_000,
            next_reply: 1,
            next_member: 1,
            outstanding: BTreeMap::new(),
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
        }
    }

    /// The id the next new member gets; ids sort in the order they are handed out.
    pub fn peek_member_id(&self) -> String {
        format!("member-{:03}", self.next_member)
    }

    fn reply(&mut self, kind: Kind) -> ReplyTo {
        let reply = self.next_reply;
        self.next_reply += 1;
        self.outstanding.insert(reply, kind);
        reply
    }

    /// Files outputs under their tokens; a token answered twice or never handed in fails.
    pub fn absorb(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Join(reply, response) => {
                    assert_eq!(
                        self.outstanding.remove(&reply),
                        Some(Kind::Join),
                        "join answer for token {reply} that is not a waiting JoinGroup: {response:?}"
                    );
                    self.joins.insert(reply, response);
                }
                Output::Sync(reply, response) => {
                    assert_eq!(
                        self.outstanding.remove(&reply),
                        Some(Kind::Sync),
                        "sync answer for token {reply} that is not a waiting SyncGroup: {response:?}"
                    );
                    self.syncs.insert(reply, response);
                }
            }
        }
    }

    /// Sends a JoinGroup; a new member gets the next `member-NNN` id.
    pub fn join(&mut self, request: JoinRequest) -> ReplyTo {
        let fresh = self.peek_member_id();
        self.next_member += 1;
        let reply = self.reply(Kind::Join);
        let outputs = self.coordinator.join(reply, request, fresh, self.now_ms);
        self.absorb(outputs);
        reply
    }

    pub fn sync(&mut self, request: SyncRequest) -> ReplyTo {
        let reply = self.reply(Kind::Sync);
        let outputs = self.coordinator.sync(reply, request, self.now_ms);
        self.absorb(outputs);
        reply
    }

    pub fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> ErrorCode {
        self.coordinator
            .heartbeat(GROUP, member_id, None, generation_id, self.now_ms)
    }

    pub fn static_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: &str,
        generation_id: i32,
    ) -> ErrorCode {
        self.coordinator.heartbeat(
            GROUP,
            member_id,
            Some(instance_id),
            generation_id,
            self.now_ms,
        )
    }

    /// A LeaveGroup of `members` (member id, group instance id) from [`GROUP`].
    pub fn leave(&mut self, members: &[(&str, Option<&str>)]) -> Result<Vec<ErrorCode>, ErrorCode> {
        self.leave_group(GROUP, members)
    }

    pub fn leave_group(
        &mut self,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let members: Vec<(String, Option<String>)> = members
            .iter()
            .map(|(id, instance)| (id.to_string(), instance.map(str::to_owned)))
            .collect();
        let (results, outputs) = self.coordinator.leave(group, &members, self.now_ms)?;
        self.absorb(outputs);
        Ok(results)
    }

    /// Runs the coordinator's timers at the current time; returns the expired offsets.
    pub fn tick(&mut self) -> Vec<OffsetKey> {
        let (outputs, expired) = self.coordinator.tick(self.now_ms);
        self.absorb(outputs);
        expired
    }

    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
    }

    /// Advances by `ms` and runs the timers.
    pub fn advance_and_tick(&mut self, ms: i64) -> Vec<OffsetKey> {
        self.advance(ms);
        self.tick()
    }

    pub fn is_waiting(&self, reply: ReplyTo) -> bool {
        self.outstanding.contains_key(&reply)
    }

    pub fn waiting_count(&self) -> usize {
        self.outstanding.len()
    }

    pub fn join_answer(&self, reply: ReplyTo) -> &JoinResponse {
        self.joins
            .get(&reply)
            .unwrap_or_else(|| panic!("JoinGroup {reply} has no answer yet"))
    }

    pub fn sync_answer(&self, reply: ReplyTo) -> &SyncResponse {
        self.syncs
            .get(&reply)
            .unwrap_or_else(|| panic!("SyncGroup {reply} has no answer yet"))
    }

    pub fn join_error(&self, reply: ReplyTo) -> ErrorCode {
        self.join_answer(reply).error
    }

    pub fn sync_error(&self, reply: ReplyTo) -> ErrorCode {
        self.sync_answer(reply).error
    }

    pub fn state(&self) -> GroupState {
        self.coordinator
            .group(GROUP)
            .map_or(GroupState::Dead, |g| g.state())
    }

    pub fn generation(&self) -> i32 {
        self.coordinator
            .group(GROUP)
            .expect("group exists")
            .generation_id()
    }

    pub fn describe(&self) -> GroupDescription {
        self.coordinator.describe(GROUP).expect("group exists")
    }

    /// Member ids of [`GROUP`] as DescribeGroups lists them.
    pub fn members(&self) -> Vec<String> {
        self.coordinator
            .describe(GROUP)
            .map(|d| d.members.into_iter().map(|m| m.member_id).collect())
            .unwrap_or_default()
    }

    /// The group instance id DescribeGroups shows for `member_id`.
    pub fn instance_of(&self, member_id: &str) -> Option<String> {
        self.describe()
            .members
            .into_iter()
            .find(|m| m.member_id == member_id)
            .and_then(|m| m.group_instance_id)
    }

    /// `count` dynamic members join an Empty [`GROUP`] within the initial delay, the group
    /// forms one generation and every member syncs; the leader (the first to join) assigns
    /// [`assignment_for`] to each. Needs a config with an initial rebalance delay.
    pub fn form_group(&mut self, count: usize) -> Formed {
        let requests = (0..count).map(|_| join(GROUP, "")).collect();
        self.form_group_with(requests)
    }

    /// Like [`Harness::form_group`] with the given JoinGroups (member ids left empty).
    pub fn form_group_with(&mut self, requests: Vec<JoinRequest>) -> Formed {
        let formed = self.join_group_with(requests);
        let syncs: Vec<ReplyTo> = formed
            .members
            .iter()
            .map(|id| {
                let request = if *id == formed.leader {
                    leader_sync(GROUP, id, formed.generation, &formed.members)
                } else {
                    sync(GROUP, id, formed.generation)
                };
                let instance = self.instance_of(id);
                // Whatever protocol type the members joined with.
                self.sync(SyncRequest {
                    group_instance_id: instance,
                    protocol_type: None,
                    ..request
                })
            })
            .collect();
        for (id, reply) in formed.members.iter().zip(syncs) {
            let answer = self.sync_answer(reply);
            assert_eq!(answer.error, ErrorCode::None, "sync of {id}");
            assert_eq!(answer.assignment, assignment_for(id));
        }
        assert_eq!(self.state(), GroupState::Stable);
        formed
    }

    /// The join half of [`Harness::form_group_with`]: leaves the group in CompletingRebalance.
    pub fn join_group_with(&mut self, requests: Vec<JoinRequest>) -> Formed {
        let delay = self.coordinator.config().initial_rebalance_delay_ms;
        assert!(
            delay > 0,
            "forming a multi-member group needs the initial delay"
        );
        let replies: Vec<ReplyTo> = requests.into_iter().map(|r| self.join(r)).collect();
        assert!(replies.iter().all(|r| self.is_waiting(*r)));
        // Members that join during the initial delay extend it (Kafka's InitialDelayedJoin),
        // within the rebalance timeout: keep waiting one delay at a time.
        for _ in 0..=i64::from(REBALANCE_TIMEOUT_MS) / delay {
            self.advance_and_tick(delay);
            if !replies.iter().any(|r| self.is_waiting(*r)) {
                break;
            }
        }
        let answers: Vec<JoinResponse> = replies
            .iter()
            .map(|r| self.join_answer(*r).clone())
            .collect();
        let first = &answers[0];
        assert_eq!(first.error, ErrorCode::None);
        for answer in &answers {
            assert_eq!(answer.error, ErrorCode::None);
            assert_eq!(answer.generation_id, first.generation_id);
            assert_eq!(answer.leader, first.leader);
        }
        let members: Vec<String> = answers.iter().map(|a| a.member_id.clone()).collect();
        assert_eq!(first.leader, members[0], "the first member to join leads");
        assert_eq!(self.state(), GroupState::CompletingRebalance);
        Formed {
            generation: first.generation_id,
            leader: first.leader.clone(),
            members,
        }
    }
}
