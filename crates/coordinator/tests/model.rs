//! Random sequences of JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and time
//! passing, from a handful of dynamic and static members that behave like (sometimes
//! confused) clients, with invariants checked after every step:
//!
//! - every token handed in is answered at most once, with the right kind of response (the
//!   harness checks each output), and none is left waiting once time has run on long enough;
//! - the generation never decreases;
//! - a successful JoinGroup answer is for the group's current generation, and a leader's
//!   answer lists exactly the members of the generation it completes;
//! - in a Stable group every member holds the assignment its generation's leader gave it;
//! - in CompletingRebalance and Stable the generation's leader is a member.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use strom_coordinator::{GroupConfig, GroupState, JoinRequest, ReplyTo, SyncRequest};
use strom_types::ErrorCode;

const SLOTS: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    Join {
        slot: usize,
        protocols: u8,
        require_known_member_id: bool,
    },
    /// A JoinGroup with an empty member id from a slot that may still be a member: a client
    /// restart (for a static slot, a replacement of its instance).
    Restart {
        slot: usize,
    },
    Sync {
        slot: usize,
        stale: bool,
    },
    Heartbeat {
        slot: usize,
    },
    Leave {
        slot: usize,
        by_instance_only: bool,
    },
    Commit {
        slot: usize,
    },
    Advance {
        ms: i64,
    },
    /// Every idle member acts as a well-behaved client would: sync after a join, heartbeat
    /// otherwise, and rejoin when the heartbeat says so.
    React,
}

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    prop_oneof![
        4 => (slot.clone(), 0u8..3, any::<bool>()).prop_map(|(slot, protocols, require)| {
            Step::Join { slot, protocols, require_known_member_id: require }
        }),
        1 => slot.clone().prop_map(|slot| Step::Restart { slot }),
        4 => (slot.clone(), prop::bool::weighted(0.1))
            .prop_map(|(slot, stale)| Step::Sync { slot, stale }),
        3 => slot.clone().prop_map(|slot| Step::Heartbeat { slot }),
        1 => (slot.clone(), any::<bool>())
            .prop_map(|(slot, by_instance_only)| Step::Leave { slot, by_instance_only }),
        1 => slot.prop_map(|slot| Step::Commit { slot }),
        4 => prop_oneof![Just(0i64), 1i64..2_000, 2_000i64..12_000]
            .prop_map(|ms| Step::Advance { ms }),
        6 => Just(Step::React),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    initial_delay_ms: i64,
    /// Which slots are static members.
    static_slots: [bool; SLOTS],
    session_timeout_ms: [i32; SLOTS],
    rebalance_timeout_ms: [i32; SLOTS],
    steps: Vec<Step>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(0i64), Just(3_000i64)],
        prop::array::uniform4(prop::bool::weighted(0.3)),
        prop::array::uniform4(6_000i32..=15_000),
        prop::array::uniform4(5_000i32..=20_000),
        prop::collection::vec(step(), 1..80),
    )
        .prop_map(
            |(initial_delay_ms, static_slots, session, rebalance, steps)| Case {
                initial_delay_ms,
                static_slots,
                session_timeout_ms: session,
                rebalance_timeout_ms: rebalance,
                steps,
            },
        )
}

/// What one client believes about its membership.
#[derive(Debug, Clone, Default)]
struct Slot {
    member_id: String,
    generation: i32,
    /// The protocols (a choice of three sets) it last joined with.
    protocols: u8,
    /// Whether it has its assignment for `generation`.
    synced: bool,
    /// The members of the generation, if this slot's last successful join made it leader.
    led: Option<Vec<(String, Option<String>)>>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Join,
    Sync,
}

/// The assignment the model's leaders give a member: its generation and identity (the
/// instance id for a static member, which keeps its assignment across restarts).
fn assignment(generation: i32, member_id: &str, instance: Option<&str>) -> Bytes {
    Bytes::from(format!("{generation}:{}", instance.unwrap_or(member_id)))
}

struct Model {
    case: Case,
    h: Harness,
    slots: [Slot; SLOTS],
    waiting: BTreeMap<ReplyTo, (usize, Kind)>,
    highest_generation: i32,
    /// The leader named by the latest successful JoinGroup answer of each generation.
    leaders: BTreeMap<i32, String>,
}

impl Model {
    fn new(case: Case) -> Model {
        let mut h = Harness::new(GroupConfig {
            session_timeout_ms_min: 1_000,
            session_timeout_ms_max: 60_000,
            initial_rebalance_delay_ms: case.initial_delay_ms,
            ..GroupConfig::default()
        });
        // An offset keeps the group (and its generation count) alive while Empty.
        h.coordinator.apply_commit(
            GROUP,
            vec![("topic".to_owned(), 0, offset(0, h.now_ms))],
            h.now_ms,
        );
        Model {
            case,
            h,
            slots: Default::default(),
            waiting: BTreeMap::new(),
            highest_generation: 0,
            leaders: BTreeMap::new(),
        }
    }

    fn instance(&self, slot: usize) -> Option<String> {
        self.case.static_slots[slot].then(|| format!("instance-{slot}"))
    }

    fn join_request(&self, slot: usize, member_id: &str, protocols: u8) -> JoinRequest {
        let protocols = match protocols {
            0 => vec![protocol("range", "r"), protocol("roundrobin", "rr")],
            1 => vec![protocol("roundrobin", "rr"), protocol("range", "r")],
            _ => vec![protocol("range", &format!("r-{slot}"))],
        };
        JoinRequest {
            group_instance_id: self.instance(slot),
            session_timeout_ms: self.case.session_timeout_ms[slot],
            rebalance_timeout_ms: self.case.rebalance_timeout_ms[slot],
            protocols,
            ..join(GROUP, member_id)
        }
    }

    fn forget(&mut self, slot: usize) {
        self.slots[slot] = Slot {
            generation: -1,
            protocols: self.slots[slot].protocols,
            ..Slot::default()
        };
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Join {
                slot,
                protocols,
                require_known_member_id,
            } => {
                let member_id = self.slots[slot].member_id.clone();
                self.slots[slot].protocols = protocols;
                let request = JoinRequest {
                    require_known_member_id,
                    ..self.join_request(slot, &member_id, protocols)
                };
                let reply = self.h.join(request);
                self.waiting.insert(reply, (slot, Kind::Join));
            }
            Step::Restart { slot } => {
                self.forget(slot);
                let protocols = self.slots[slot].protocols;
                let reply = self.h.join(self.join_request(slot, "", protocols));
                self.waiting.insert(reply, (slot, Kind::Join));
            }
            Step::Sync { slot, stale } => self.sync(slot, stale),
            Step::Heartbeat { slot } => {
                let state = &self.slots[slot];
                let instance = self.instance(slot);
                let error = self.h.coordinator.heartbeat(
                    GROUP,
                    &state.member_id,
                    instance.as_deref(),
                    state.generation,
                    self.h.now_ms,
                );
                if matches!(
                    error,
                    ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId
                ) {
                    self.forget(slot);
                }
            }
            Step::Leave {
                slot,
                by_instance_only,
            } => {
                let instance = self.instance(slot);
                let member_id = if by_instance_only && instance.is_some() {
                    String::new()
                } else {
                    self.slots[slot].member_id.clone()
                };
                let result = self
                    .h
                    .leave(&[(member_id.as_str(), instance.as_deref())])
                    .expect("the group is kept alive by its offset");
                assert_eq!(result.len(), 1);
                self.forget(slot);
            }
            Step::Commit { slot } => {
                let state = self.slots[slot].clone();
                let instance = self.instance(slot);
                let now = self.h.now_ms;
                let coordinator = &mut self.h.coordinator;
                if coordinator
                    .validate_commit(
                        GROUP,
                        &state.member_id,
                        instance.as_deref(),
                        state.generation,
                        now,
                    )
                    .is_ok()
                {
                    coordinator.apply_commit(
                        GROUP,
                        vec![("topic".to_owned(), slot as i32, offset(now, now))],
                        now,
                    );
                }
            }
            Step::Advance { ms } => {
                self.h.advance_and_tick(ms);
            }
            Step::React => {
                for slot in 0..SLOTS {
                    self.react(slot);
                }
            }
        }
        self.collect_answers();
        self.check();
    }

    fn react(&mut self, slot: usize) {
        let state = self.slots[slot].clone();
        if state.member_id.is_empty() || self.waiting.values().any(|(s, _)| *s == slot) {
            return;
        }
        if state.generation >= 0 && !state.synced {
            self.sync(slot, false);
            return;
        }
        let instance = self.instance(slot);
        let error = self.h.coordinator.heartbeat(
            GROUP,
            &state.member_id,
            instance.as_deref(),
            state.generation,
            self.h.now_ms,
        );
        match error {
            ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration => {
                let request = self.join_request(slot, &state.member_id, state.protocols);
                let reply = self.h.join(request);
                self.waiting.insert(reply, (slot, Kind::Join));
            }
            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId => self.forget(slot),
            _ => {}
        }
    }

    fn sync(&mut self, slot: usize, stale: bool) {
        let state = self.slots[slot].clone();
        let generation = state.generation - i32::from(stale);
        let assignments = match &state.led {
            Some(members) if !stale => members
                .iter()
                .map(|(id, instance)| (id.clone(), assignment(generation, id, instance.as_deref())))
                .collect(),
            _ => Vec::new(),
        };
        let reply = self.h.sync(SyncRequest {
            group_instance_id: self.instance(slot),
            protocol_type: None,
            assignments,
            ..sync(GROUP, &state.member_id, generation)
        });
        self.waiting.insert(reply, (slot, Kind::Sync));
    }

    /// Applies every answer that arrived to the slot that asked.
    fn collect_answers(&mut self) {
        let answered: Vec<ReplyTo> = self
            .waiting
            .keys()
            .copied()
            .filter(|reply| !self.h.is_waiting(*reply))
            .collect();
        for reply in answered {
            let (slot, kind) = self.waiting.remove(&reply).expect("listed");
            match kind {
                Kind::Join => self.joined(slot, reply),
                Kind::Sync => match self.h.sync_error(reply) {
                    ErrorCode::None => self.slots[slot].synced = true,
                    ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId => self.forget(slot),
                    _ => {}
                },
            }
        }
    }

    fn joined(&mut self, slot: usize, reply: ReplyTo) {
        let answer = self.h.join_answer(reply).clone();
        match answer.error {
            ErrorCode::None => {
                assert_eq!(
                    answer.generation_id,
                    self.h.generation(),
                    "a successful join is for the current generation: {answer:?}"
                );
                self.leaders
                    .insert(answer.generation_id, answer.leader.clone());
                let led = (answer.leader == answer.member_id).then(|| {
                    answer
                        .members
                        .iter()
                        .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
                        .collect::<Vec<_>>()
                });
                if let Some(members) = &led {
                    if self.h.state() == GroupState::CompletingRebalance && !answer.skip_assignment
                    {
                        let mut listed: Vec<&String> = members.iter().map(|(id, _)| id).collect();
                        listed.sort();
                        let actual = self.h.members();
                        assert_eq!(
                            listed,
                            actual.iter().collect::<Vec<_>>(),
                            "the leader's list is the generation's members"
                        );
                    }
                }
                self.slots[slot] = Slot {
                    member_id: answer.member_id,
                    generation: answer.generation_id,
                    led,
                    synced: false,
                    ..self.slots[slot]
                };
            }
            ErrorCode::MemberIdRequired => {
                self.slots[slot] = Slot {
                    member_id: answer.member_id,
                    generation: -1,
                    led: None,
                    synced: false,
                    ..self.slots[slot]
                };
            }
            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId => self.forget(slot),
            // REBALANCE_IN_PROGRESS: a later JoinGroup of the same member took this one's place.
            _ => {}
        }
    }

    fn check(&mut self) {
        let generation = self.h.generation();
        assert!(
            generation >= self.highest_generation,
            "generation went from {} back to {generation}",
            self.highest_generation
        );
        self.highest_generation = generation;

        let description = self.h.describe();
        let state = description.state;
        if state == GroupState::Stable {
            for member in &description.members {
                assert_eq!(
                    member.assignment,
                    assignment(
                        generation,
                        &member.member_id,
                        member.group_instance_id.as_deref()
                    ),
                    "Stable member {} holds generation {generation}'s assignment",
                    member.member_id
                );
            }
        }
        if matches!(state, GroupState::CompletingRebalance | GroupState::Stable) {
            let leader = self
                .leaders
                .get(&generation)
                .expect("a generation in progress was announced to someone");
            assert!(
                description.members.iter().any(|m| &m.member_id == leader),
                "leader {leader} of generation {generation} is a member"
            );
        }
        if state == GroupState::Empty {
            assert!(description.members.is_empty());
        }
    }

    /// Lets time run on with nobody acting: every request still waiting must be answered.
    fn drain(&mut self) {
        for _ in 0..6 {
            self.h.advance_and_tick(3_600_000);
            self.collect_answers();
            self.check();
        }
        assert_eq!(
            self.h.waiting_count(),
            0,
            "requests left unanswered: {:?}",
            self.waiting
        );
        assert_eq!(self.h.state(), GroupState::Empty);
    }
}

proptest! {
    // Integration tests have no lib.rs for proptest to place regressions beside; keep them
    // next to this file (paths are relative to the package root, where cargo runs tests).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/model.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_clients_never_break_the_group_invariants(case in case()) {
        let steps = case.steps.clone();
        let mut model = Model::new(case);
        for step in &steps {
            model.run(step);
        }
        model.drain();
    }
}
