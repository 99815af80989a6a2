//! Static membership (KIP-345): a restarted member with the same group instance id takes its
//! old place, without a rebalance when nothing changed, and its old member id is fenced.

mod common;

use common::*;
use strom_coordinator::{GroupState, JoinRequest, SyncRequest};
use strom_types::ErrorCode;

/// A Stable group of static members "instance-a" (the leader) and "instance-b".
fn static_group(h: &mut Harness) -> Formed {
    h.form_group_with(vec![
        static_join(GROUP, "", "instance-a"),
        static_join(GROUP, "", "instance-b"),
    ])
}

fn static_sync(member_id: &str, instance_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        group_instance_id: Some(instance_id.to_owned()),
        ..sync(GROUP, member_id, generation_id)
    }
}

#[test]
fn a_restarted_follower_gets_its_assignment_back_without_a_rebalance() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    let old_id = formed.follower(0).to_owned();
    h.advance(5_000);

    let restart = h.join(static_join(GROUP, "", "instance-b"));
    let answer = h.join_answer(restart).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_ne!(answer.member_id, old_id, "a new member id");
    assert_eq!(answer.generation_id, formed.generation, "no new generation");
    assert_eq!(answer.leader, formed.leader);
    assert!(!answer.skip_assignment);
    assert!(answer.members.is_empty());
    assert_eq!(h.state(), GroupState::Stable);

    let reply = h.sync(static_sync(
        &answer.member_id,
        "instance-b",
        formed.generation,
    ));
    let synced = h.sync_answer(reply);
    assert_eq!(synced.error, ErrorCode::None);
    assert_eq!(
        synced.assignment,
        assignment_for(&old_id),
        "the same assignment"
    );

    let description = h.describe();
    let member = description
        .members
        .iter()
        .find(|m| m.group_instance_id.as_deref() == Some("instance-b"))
        .unwrap();
    assert_eq!(member.member_id, answer.member_id);
    assert_eq!(member.assignment, assignment_for(&old_id));
    assert_eq!(h.members().len(), 2);
}

#[test]
fn the_old_member_id_of_a_restarted_static_member_is_fenced() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    let old_id = formed.follower(0).to_owned();
    let restart = h.join(static_join(GROUP, "", "instance-b"));
    assert_eq!(h.join_error(restart), ErrorCode::None);
    let generation = formed.generation;

    assert_eq!(
        h.static_heartbeat(&old_id, "instance-b", generation),
        ErrorCode::FencedInstanceId
    );
    let reply = h.sync(static_sync(&old_id, "instance-b", generation));
    assert_eq!(h.sync_error(reply), ErrorCode::FencedInstanceId);
    assert_eq!(
        h.coordinator
            .validate_commit(GROUP, &old_id, Some("instance-b"), generation, h.now_ms),
        Err(ErrorCode::FencedInstanceId)
    );
    let rejoin = h.join(static_join(GROUP, &old_id, "instance-b"));
    assert_eq!(h.join_error(rejoin), ErrorCode::FencedInstanceId);
    assert_eq!(
        h.leave(&[(old_id.as_str(), Some("instance-b"))]),
        Ok(vec![ErrorCode::FencedInstanceId])
    );
    // Without the instance id the old id is simply unknown.
    assert_eq!(h.heartbeat(&old_id, generation), ErrorCode::UnknownMemberId);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.members().len(), 2);
}

#[test]
fn a_restarted_static_leader_is_told_to_skip_the_assignment() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    let restart = h.join(static_join(GROUP, "", "instance-a"));
    let answer = h.join_answer(restart).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation);
    assert!(
        answer.skip_assignment,
        "KIP-814: nothing changed, do not reassign"
    );
    assert_eq!(
        answer.leader, answer.member_id,
        "it is still the leader, by its new id"
    );
    let mut listed = member_ids(&answer);
    listed.sort();
    let mut expected = vec![answer.member_id.clone(), formed.follower(0).to_owned()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(h.state(), GroupState::Stable);

    let reply = h.sync(static_sync(
        &answer.member_id,
        "instance-a",
        formed.generation,
    ));
    assert_eq!(
        h.sync_answer(reply).assignment,
        assignment_for(&formed.leader)
    );
}

#[test]
fn a_static_member_restarting_with_new_metadata_starts_a_rebalance() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    let restart = h.join(JoinRequest {
        protocols: vec![protocol("range", "new-subscription")],
        ..static_join(GROUP, "", "instance-b")
    });
    assert!(h.is_waiting(restart));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let leader = h.join(static_join(GROUP, &formed.leader, "instance-a"));
    let answer = h.join_answer(leader).clone();
    assert_eq!(answer.generation_id, formed.generation + 1);
    let new_id = h.join_answer(restart).member_id.clone();
    assert_eq!(metadata_of(&answer, &new_id).metadata, "new-subscription");
    assert_eq!(
        metadata_of(&answer, &new_id).group_instance_id.as_deref(),
        Some("instance-b")
    );
}

#[test]
fn a_static_member_restarting_during_completing_rebalance_forces_a_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![
        static_join(GROUP, "", "instance-a"),
        static_join(GROUP, "", "instance-b"),
    ]);
    let old_sync = h.sync(static_sync(
        formed.follower(0),
        "instance-b",
        formed.generation,
    ));
    let restart = h.join(static_join(GROUP, "", "instance-b"));
    // The leader may already be assigning to the old id: start over.
    assert_eq!(h.sync_error(old_sync), ErrorCode::FencedInstanceId);
    assert!(h.is_waiting(restart));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let leader = h.join(static_join(GROUP, &formed.leader, "instance-a"));
    assert_eq!(h.join_answer(leader).generation_id, formed.generation + 1);
    assert_eq!(h.join_answer(restart).generation_id, formed.generation + 1);
}

#[test]
fn a_static_member_restarting_during_preparing_rebalance_takes_over_the_waiting_join() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    h.join(join(GROUP, ""));
    let old_join = h.join(static_join(GROUP, formed.follower(0), "instance-b"));
    assert!(h.is_waiting(old_join));
    let restart = h.join(static_join(GROUP, "", "instance-b"));
    assert_eq!(h.join_error(old_join), ErrorCode::FencedInstanceId);
    assert!(h.is_waiting(restart));
    let leader = h.join(static_join(GROUP, &formed.leader, "instance-a"));
    let answer = h.join_answer(leader);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(answer.members.len(), 3);
    assert_eq!(h.join_error(restart), ErrorCode::None);
}

#[test]
fn static_members_that_do_not_rejoin_are_kept_and_dynamic_ones_dropped() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        static_join(GROUP, "", "instance-a"),
        static_join(GROUP, "", "instance-b"),
        join(GROUP, ""),
    ]);
    let (leader, static_follower, dynamic) = (
        formed.members[0].clone(),
        formed.members[1].clone(),
        formed.members[2].clone(),
    );
    let rejoin = h.join(static_join(GROUP, &leader, "instance-a"));
    for _ in 0..i64::from(REBALANCE_TIMEOUT_MS) / 5_000 {
        h.advance(5_000);
        h.static_heartbeat(&static_follower, "instance-b", formed.generation);
        h.heartbeat(&dynamic, formed.generation);
        h.tick();
    }
    let answer = h.join_answer(rejoin).clone();
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(
        member_ids(&answer),
        [leader.clone(), static_follower.clone()]
    );
    assert_eq!(
        metadata_of(&answer, &static_follower).metadata,
        "range-metadata",
        "the absent static member's last metadata"
    );
    assert_eq!(h.members(), [leader, static_follower]);
}

#[test]
fn a_static_member_that_goes_quiet_expires_and_its_instance_is_forgotten() {
    let mut h = Harness::new(config());
    let formed = static_group(&mut h);
    for _ in 0..2 {
        h.advance_and_tick(i64::from(SESSION_TIMEOUT_MS) / 2);
        h.static_heartbeat(&formed.leader, "instance-a", formed.generation);
    }
    assert_eq!(h.members(), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    // The instance comes back as a new member.
    let back = h.join(static_join(GROUP, "", "instance-b"));
    assert!(h.is_waiting(back));
    let leader = h.join(static_join(GROUP, &formed.leader, "instance-a"));
    assert_eq!(h.join_answer(leader).members.len(), 2);
}

#[test]
fn a_static_member_skips_member_id_required() {
    let mut h = Harness::new(config());
    let reply = h.join(JoinRequest {
        require_known_member_id: true,
        ..static_join(GROUP, "", "instance-a")
    });
    assert!(
        h.is_waiting(reply),
        "static members get their id with the join answer"
    );
    h.advance_and_tick(INITIAL_DELAY_MS);
    let answer = h.join_answer(reply);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, 1);
}

#[test]
fn a_rebalance_nobody_rejoined_waits_without_bumping_the_generation() {
    // Kafka's onCompleteJoin: if no member has rejoined (only absent static members remain),
    // it does not start a generation; it waits another rebalance timeout for them to rejoin
    // or expire. Strom's complete_join increments the generation and returns, still in
    // PreparingRebalance with the deadline behind it, so every following tick increments it
    // again. A static member that heartbeats meanwhile gets ILLEGAL_GENERATION (not
    // REBALANCE_IN_PROGRESS) and its commits are refused.
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![static_join(GROUP, "", "instance-a"), join(GROUP, "")]);
    h.leave(&[(formed.follower(0), None)]).unwrap();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    for _ in 0..10 {
        h.advance_and_tick(5_000);
        assert_eq!(
            h.static_heartbeat(&formed.leader, "instance-a", formed.generation),
            ErrorCode::RebalanceInProgress
        );
    }
    assert_eq!(h.generation(), formed.generation);
    let rejoin = h.join(static_join(GROUP, &formed.leader, "instance-a"));
    assert_eq!(h.join_answer(rejoin).generation_id, formed.generation + 1);
}
