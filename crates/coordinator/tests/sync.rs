//! SyncGroup: followers wait for the leader's assignment; stale, unknown and early syncs are
//! refused; a leader that never syncs is dropped.

mod common;

use bytes::Bytes;
use common::*;
use strom_coordinator::{GroupState, JoinRequest, SyncRequest};
use strom_types::ErrorCode;

#[test]
fn followers_wait_for_the_leader_then_each_gets_its_own_assignment() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, ""), join(GROUP, "")]);
    let first = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    let second = h.sync(sync(GROUP, formed.follower(1), formed.generation));
    assert!(h.is_waiting(first) && h.is_waiting(second));
    assert_eq!(h.state(), GroupState::CompletingRebalance);

    let leader = h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(h.state(), GroupState::Stable);
    for (reply, id) in [leader, first, second].into_iter().zip(&formed.members) {
        let answer = h.sync_answer(reply);
        assert_eq!(answer.error, ErrorCode::None);
        assert_eq!(answer.assignment, assignment_for(id), "{id}");
        assert_eq!(answer.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(answer.protocol_name.as_deref(), Some("range"));
    }
    assert_eq!(h.waiting_count(), 0);
}

#[test]
fn a_member_left_out_of_the_assignment_gets_an_empty_one() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let follower = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    let leader = h.sync(SyncRequest {
        assignments: vec![
            (formed.leader.clone(), assignment_for(&formed.leader)),
            ("not-a-member".to_owned(), Bytes::from_static(b"ignored")),
        ],
        ..sync(GROUP, &formed.leader, formed.generation)
    });
    assert_eq!(
        h.sync_answer(leader).assignment,
        assignment_for(&formed.leader)
    );
    let answer = h.sync_answer(follower);
    assert_eq!(answer.error, ErrorCode::None);
    assert!(answer.assignment.is_empty());
    assert_eq!(h.members(), formed.members);
}

#[test]
fn a_follower_syncing_after_the_leader_gets_its_assignment_at_once() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let leader = h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(h.sync_error(leader), ErrorCode::None);
    assert_eq!(h.state(), GroupState::Stable);
    let follower = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    assert_eq!(
        h.sync_answer(follower).assignment,
        assignment_for(formed.follower(0))
    );
    // And again: a Stable group repeats the stored assignment.
    let again = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    assert_eq!(
        h.sync_answer(again).assignment,
        assignment_for(formed.follower(0))
    );
}

#[test]
fn a_sync_for_another_generation_is_illegal() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    for generation in [formed.generation - 1, formed.generation + 1, -1] {
        let reply = h.sync(sync(GROUP, formed.follower(0), generation));
        assert_eq!(
            h.sync_error(reply),
            ErrorCode::IllegalGeneration,
            "{generation}"
        );
    }
    let stale_leader = h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation - 1,
        &formed.members,
    ));
    assert_eq!(h.sync_error(stale_leader), ErrorCode::IllegalGeneration);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_stranger_is_an_unknown_member() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, "")]);
    let reply = h.sync(sync(GROUP, "stranger", formed.generation));
    assert_eq!(h.sync_error(reply), ErrorCode::UnknownMemberId);
    let reply = h.sync(sync("no-such-group", "stranger", 1));
    assert_eq!(h.sync_error(reply), ErrorCode::UnknownMemberId);
    assert!(h.coordinator.group("no-such-group").is_none());
}

#[test]
fn a_sync_during_preparing_rebalance_is_told_to_rejoin() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    h.join(join(GROUP, ""));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let reply = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    assert_eq!(h.sync_error(reply), ErrorCode::RebalanceInProgress);
}

#[test]
fn a_sync_naming_another_protocol_is_inconsistent() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let wrong_name = h.sync(SyncRequest {
        protocol_name: Some("roundrobin".to_owned()),
        ..sync(GROUP, formed.follower(0), formed.generation)
    });
    assert_eq!(
        h.sync_error(wrong_name),
        ErrorCode::InconsistentGroupProtocol
    );
    let wrong_type = h.sync(SyncRequest {
        protocol_type: Some("connect".to_owned()),
        ..sync(GROUP, formed.follower(0), formed.generation)
    });
    assert_eq!(
        h.sync_error(wrong_type),
        ErrorCode::InconsistentGroupProtocol
    );
    let right = h.sync(SyncRequest {
        protocol_name: Some("range".to_owned()),
        ..sync(GROUP, formed.follower(0), formed.generation)
    });
    assert!(h.is_waiting(right));
}

#[test]
fn a_second_sync_from_a_waiting_member_replaces_the_first() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let first = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    let second = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    assert_eq!(h.sync_error(first), ErrorCode::RebalanceInProgress);
    assert!(h.is_waiting(second));
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(
        h.sync_answer(second).assignment,
        assignment_for(formed.follower(0))
    );
}

#[test]
fn a_leader_that_never_syncs_is_dropped_and_the_rest_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, ""), join(GROUP, "")]);
    let waiting: Vec<_> = (0..2)
        .map(|i| h.sync(sync(GROUP, formed.follower(i), formed.generation)))
        .collect();

    // The leader heartbeats (so only the sync deadline can drop it) but never syncs; the
    // followers wait in SyncGroup far longer than their session timeout without heartbeats.
    let rebalance_timeout = i64::from(REBALANCE_TIMEOUT_MS);
    let mut elapsed = 0;
    while elapsed + 5_000 < rebalance_timeout {
        h.advance_and_tick(5_000);
        elapsed += 5_000;
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
    }
    h.advance_and_tick(rebalance_timeout - elapsed - 1);
    assert!(waiting.iter().all(|r| h.is_waiting(*r)));
    assert_eq!(h.state(), GroupState::CompletingRebalance);

    h.advance_and_tick(1);
    for reply in &waiting {
        assert_eq!(h.sync_error(*reply), ErrorCode::RebalanceInProgress);
    }
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.members(), formed.members[1..]);
    assert_eq!(
        h.heartbeat(&formed.leader, formed.generation),
        ErrorCode::UnknownMemberId
    );

    let rejoins: Vec<_> = (0..2)
        .map(|i| h.join(join(GROUP, formed.follower(i))))
        .collect();
    for reply in rejoins {
        let answer = h.join_answer(reply);
        assert_eq!(answer.error, ErrorCode::None);
        assert_eq!(answer.generation_id, formed.generation + 1);
        assert_eq!(answer.leader, formed.follower(0));
    }
}

#[test]
fn when_nobody_syncs_in_time_the_group_empties() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![JoinRequest {
        session_timeout_ms: 60_000,
        ..join(GROUP, "")
    }]);
    h.advance_and_tick(i64::from(REBALANCE_TIMEOUT_MS));
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "the Empty group with nothing in it is forgotten"
    );
    let reply = h.sync(sync(GROUP, &formed.leader, formed.generation));
    assert_eq!(h.sync_error(reply), ErrorCode::UnknownMemberId);
}

#[test]
fn a_follower_that_never_syncs_is_dropped_even_after_the_group_is_stable() {
    // Kafka (GroupCoordinator.onExpirePendingSync, KAFKA-13042): after a join completes, every
    // member must send SyncGroup within the rebalance timeout; in CompletingRebalance *or
    // Stable*, those that have not are removed and the group rebalances. Strom applies the
    // sync deadline only while CompletingRebalance, so once the leader has synced, a follower
    // that heartbeats but never syncs keeps a share of the partitions nobody consumes.
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(h.state(), GroupState::Stable);
    for _ in 0..i64::from(REBALANCE_TIMEOUT_MS) / 5_000 {
        h.advance(5_000);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
        h.heartbeat(formed.follower(0), formed.generation);
        h.tick();
    }
    assert_eq!(h.members(), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_follower_that_waited_long_in_sync_is_not_expired_once_answered() {
    // A member waiting in SyncGroup is not expected to heartbeat. Kafka
    // (GroupCoordinator.propagateAssignment) restarts the session of every member whose
    // SyncGroup it answers, "because if any member's session expired while we were still
    // awaiting the leader sync group ... no future heartbeat expectations will be scheduled".
    // Strom leaves the deadline set when the SyncGroup arrived: a follower whose leader took
    // longer than a session timeout to assign is expired at the first tick after it is handed
    // its assignment, and the group rebalances again.
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let follower = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    for _ in 0..3 {
        h.advance_and_tick(5_000);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
    }
    assert!(
        h.is_waiting(follower),
        "waiting in SyncGroup keeps the follower alive"
    );
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(h.sync_error(follower), ErrorCode::None);
    h.advance_and_tick(100);
    assert_eq!(h.members(), formed.members);
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn followers_told_to_rejoin_after_the_sync_deadline_get_time_to_rejoin() {
    // Same root cause as above, on the path where the leader never syncs: the followers waited
    // the whole rebalance timeout in SyncGroup (longer than their session), are answered
    // REBALANCE_IN_PROGRESS, and unless their JoinGroup beats the runtime's next tick (100 ms)
    // they are expired as if they had vanished. Kafka restarts their sessions when it answers.
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, ""), join(GROUP, "")]);
    let waiting: Vec<_> = (0..2)
        .map(|i| h.sync(sync(GROUP, formed.follower(i), formed.generation)))
        .collect();
    for _ in 0..i64::from(REBALANCE_TIMEOUT_MS) / 5_000 {
        h.advance(5_000);
        h.heartbeat(&formed.leader, formed.generation);
        h.tick();
    }
    for reply in &waiting {
        assert_eq!(h.sync_error(*reply), ErrorCode::RebalanceInProgress);
    }
    h.advance_and_tick(100);
    assert_eq!(h.members(), formed.members[1..]);
    let rejoin = h.join(join(GROUP, formed.follower(0)));
    assert!(
        h.is_waiting(rejoin),
        "still a member: waits for the other follower"
    );
}
