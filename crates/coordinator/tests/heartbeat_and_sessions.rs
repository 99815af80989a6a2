//! Heartbeats and session timeouts: what a heartbeat answers in each state, and members that
//! go quiet being removed (but never while they wait in JoinGroup or SyncGroup).

mod common;

use common::*;
use strom_coordinator::{GroupState, JoinRequest};
use strom_types::ErrorCode;

const SESSION_MS: i64 = SESSION_TIMEOUT_MS as i64;

#[test]
fn a_heartbeat_answers_by_group_state() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let follower = formed.follower(0).to_owned();
    assert_eq!(
        h.heartbeat(&follower, formed.generation),
        ErrorCode::None,
        "CompletingRebalance: the member has its generation and may heartbeat"
    );
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(h.heartbeat(&follower, formed.generation), ErrorCode::None);
    h.join(join(GROUP, ""));
    assert_eq!(
        h.heartbeat(&follower, formed.generation),
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn heartbeats_with_the_wrong_generation_or_identity_are_refused() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let follower = formed.follower(0);
    assert_eq!(
        h.heartbeat(follower, formed.generation - 1),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        h.heartbeat(follower, formed.generation + 1),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        h.heartbeat("stranger", formed.generation),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.coordinator
            .heartbeat("no-such-group", follower, None, 1, h.now_ms),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.coordinator.heartbeat("", follower, None, 1, h.now_ms),
        ErrorCode::InvalidGroupId
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_at_its_session_deadline() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let quiet = formed.follower(0).to_owned();
    // The leader keeps heartbeating; the follower's last sign of life was its SyncGroup.
    h.advance(5_000);
    assert_eq!(
        h.heartbeat(&formed.leader, formed.generation),
        ErrorCode::None
    );
    h.advance_and_tick(SESSION_MS - 5_000 - 1);
    assert!(h.members().contains(&quiet), "deadline - 1: still a member");
    assert_eq!(h.state(), GroupState::Stable);

    h.advance_and_tick(1);
    assert_eq!(h.members(), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&formed.leader, formed.generation),
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(
        h.heartbeat(&quiet, formed.generation),
        ErrorCode::UnknownMemberId
    );

    let rejoin = h.join(join(GROUP, &formed.leader));
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(answer), [formed.leader.as_str()]);
}

#[test]
fn each_heartbeat_restarts_the_session() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    for _ in 0..10 {
        h.advance_and_tick(SESSION_MS - 1);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
    }
    h.advance_and_tick(SESSION_MS - 1);
    assert_eq!(h.state(), GroupState::Stable);
    h.advance_and_tick(1);
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "the last member expired; nothing is kept"
    );
}

#[test]
fn each_member_has_its_own_session_timeout() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        join(GROUP, ""),
        JoinRequest {
            session_timeout_ms: 20_000,
            ..join(GROUP, "")
        },
    ]);
    h.advance_and_tick(SESSION_MS);
    assert_eq!(h.members(), [formed.follower(0).to_owned()]);
    h.advance_and_tick(20_000 - SESSION_MS);
    assert!(h.members().is_empty());
}

#[test]
fn members_waiting_in_join_are_not_expired() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        JoinRequest {
            rebalance_timeout_ms: 60_000,
            ..join(GROUP, "")
        },
        join(GROUP, ""),
    ]);
    // The leader rejoins and waits 60 s without a heartbeat, far past its 10 s session; the
    // follower heartbeats but never rejoins.
    let rejoin = h.join(JoinRequest {
        rebalance_timeout_ms: 60_000,
        ..join(GROUP, &formed.leader)
    });
    for _ in 0..10 {
        h.advance_and_tick(5_000);
        assert_eq!(
            h.heartbeat(formed.follower(0), formed.generation),
            ErrorCode::RebalanceInProgress
        );
    }
    assert!(h.is_waiting(rejoin));
    assert_eq!(h.members(), formed.members);
    h.advance_and_tick(10_000);
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(answer), [formed.leader.as_str()]);
}

#[test]
fn a_quiet_member_that_did_not_rejoin_expires_and_so_ends_the_wait() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        JoinRequest {
            rebalance_timeout_ms: 60_000,
            ..join(GROUP, "")
        },
        join(GROUP, ""),
    ]);
    // The follower never rejoins and goes quiet: its session, not the 60 s rebalance timeout,
    // ends the leader's wait.
    let rejoin = h.join(join(GROUP, &formed.leader));
    h.advance_and_tick(SESSION_MS - 1);
    assert!(h.is_waiting(rejoin));
    h.advance_and_tick(1);
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(answer), [formed.leader.as_str()]);
}

#[test]
fn members_waiting_in_sync_are_not_expired() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let follower = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    for _ in 0..4 {
        h.advance_and_tick(5_000);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
    }
    assert!(h.is_waiting(follower));
    assert_eq!(h.members(), formed.members);
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(
        h.sync_answer(follower).assignment,
        assignment_for(formed.follower(0))
    );
}

#[test]
fn a_member_that_got_its_join_answer_but_never_syncs_or_heartbeats_expires() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    h.advance_and_tick(SESSION_MS / 2);
    assert_eq!(
        h.heartbeat(&formed.leader, formed.generation),
        ErrorCode::None
    );
    h.advance_and_tick(SESSION_MS / 2 - 1);
    assert_eq!(h.members(), formed.members);
    h.advance_and_tick(1);
    assert_eq!(h.members(), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn when_every_member_expires_the_group_becomes_empty() {
    let mut h = Harness::new(config());
    h.coordinator.apply_commit(
        GROUP,
        vec![("topic".to_owned(), 0, offset(5, h.now_ms))],
        h.now_ms,
    );
    let formed = h.form_group(3);
    h.advance_and_tick(SESSION_MS);
    assert_eq!(h.state(), GroupState::Empty);
    assert!(h.members().is_empty());
    assert_eq!(h.generation(), formed.generation + 1);
    let description = h.describe();
    assert_eq!(description.protocol_name, "");
}

#[test]
fn a_commit_counts_as_a_heartbeat() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    h.advance_and_tick(SESSION_MS - 1);
    assert_eq!(
        h.coordinator
            .validate_commit(GROUP, &formed.leader, None, formed.generation, h.now_ms),
        Ok(())
    );
    h.advance_and_tick(SESSION_MS - 1);
    assert_eq!(h.members(), [formed.leader.as_str()]);
    h.advance_and_tick(1);
    assert!(h.members().is_empty());
}

#[test]
fn members_expiring_together_at_the_rebalance_deadline_do_not_restart_the_rebalance() {
    // Stable group of three. The leader rejoins (a rebalance); the two followers are gone and
    // their sessions end at the same instant as the rebalance timeout. Removing the first
    // expired follower completes the join (the second is dropped as not rejoined), then tick
    // calls member_departed for the second one anyway: it is no longer a member, but the group
    // is now CompletingRebalance, so it is sent back to PreparingRebalance. The leader's
    // fresh generation is void before it can sync. Kafka removes an expired member only if it
    // is still in the group (onExpireHeartbeat checks group.has(memberId)), so the leader
    // syncs generation N+1 and the group is Stable.
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        JoinRequest {
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            ..join(GROUP, "")
        },
        JoinRequest {
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            ..join(GROUP, "")
        },
        JoinRequest {
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            ..join(GROUP, "")
        },
    ]);
    // Followers' sessions and the rebalance both end 10 s from now.
    let rejoin = h.join(JoinRequest {
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        ..join(GROUP, &formed.leader)
    });
    h.advance_and_tick(10_000);
    let answer = h.join_answer(rejoin).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(&answer), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let reply = h.sync(leader_sync(
        GROUP,
        &formed.leader,
        answer.generation_id,
        std::slice::from_ref(&formed.leader),
    ));
    assert_eq!(h.sync_error(reply), ErrorCode::None);
    assert_eq!(h.state(), GroupState::Stable);
}
