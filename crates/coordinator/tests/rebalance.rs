//! A Stable group rebalancing: who must rejoin, who is dropped, who leads next.

mod common;

use common::*;
use strom_coordinator::{GroupState, JoinRequest};
use strom_types::ErrorCode;

#[test]
fn a_new_member_sends_a_stable_group_back_to_preparing_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let newcomer = h.join(join(GROUP, ""));
    assert!(h.is_waiting(newcomer));
    assert_eq!(h.state(), GroupState::PreparingRebalance);

    // Existing members learn of it from their heartbeats.
    for member in &formed.members {
        assert_eq!(
            h.heartbeat(member, formed.generation),
            ErrorCode::RebalanceInProgress
        );
    }
    let leader = h.join(join(GROUP, &formed.leader));
    assert!(h.is_waiting(leader), "one member has not rejoined yet");
    let follower = h.join(join(GROUP, formed.follower(0)));

    // No initial delay: the group was not Empty.
    let generation = formed.generation + 1;
    let answer = h.join_answer(leader).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, generation);
    assert_eq!(
        answer.leader, formed.leader,
        "the old leader rejoined and keeps leading"
    );
    let mut expected = formed.members.clone();
    expected.push("member-003".to_owned());
    assert_eq!(member_ids(&answer), expected);
    for reply in [follower, newcomer] {
        let answer = h.join_answer(reply);
        assert_eq!(answer.error, ErrorCode::None);
        assert_eq!(answer.generation_id, generation);
        assert_eq!(answer.leader, formed.leader);
        assert!(answer.members.is_empty());
    }
    assert_eq!(h.join_answer(newcomer).member_id, "member-003");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(h.generation(), generation);
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let straggler = formed.follower(0).to_owned();
    let newcomer = h.join(join(GROUP, ""));
    let leader = h.join(join(GROUP, &formed.leader));

    // The straggler keeps heartbeating (so its session stays alive) but never rejoins.
    let rebalance_timeout = i64::from(REBALANCE_TIMEOUT_MS);
    let mut elapsed = 0;
    while elapsed + 5_000 < rebalance_timeout {
        h.advance_and_tick(5_000);
        elapsed += 5_000;
        assert_eq!(
            h.heartbeat(&straggler, formed.generation),
            ErrorCode::RebalanceInProgress
        );
    }
    h.advance_and_tick(rebalance_timeout - elapsed - 1);
    assert!(h.is_waiting(leader) && h.is_waiting(newcomer));
    h.advance_and_tick(1);

    let answer = h.join_answer(leader).clone();
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(
        member_ids(&answer),
        [formed.leader.clone(), "member-003".to_owned()]
    );
    assert_eq!(h.join_answer(newcomer).generation_id, formed.generation + 1);
    assert_eq!(
        h.heartbeat(&straggler, formed.generation + 1),
        ErrorCode::UnknownMemberId
    );
    let late = h.join(join(GROUP, &straggler));
    assert_eq!(h.join_error(late), ErrorCode::UnknownMemberId);
}

#[test]
fn a_leader_that_does_not_rejoin_is_replaced_by_a_member_that_did() {
    let mut h = Harness::new(config());
    let formed = h.form_group(3);
    // A follower's subscription changes: everyone must rejoin, but the leader is gone quiet
    // (still heartbeating).
    let follower = h.join(JoinRequest {
        protocols: vec![protocol("range", "changed")],
        ..join(GROUP, formed.follower(1))
    });
    let other = h.join(join(GROUP, formed.follower(0)));
    for _ in 0..i64::from(REBALANCE_TIMEOUT_MS) / 5_000 {
        h.advance(5_000);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::RebalanceInProgress
        );
        h.tick();
    }

    let answer = h.join_answer(other).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(
        answer.leader,
        formed.follower(0),
        "a member that rejoined leads"
    );
    assert_eq!(
        member_ids(&answer),
        [formed.follower(0).to_owned(), formed.follower(1).to_owned()]
    );
    assert_eq!(h.join_answer(follower).leader, formed.follower(0));
    assert!(!h.members().contains(&formed.leader));
}

#[test]
fn the_rebalance_timeout_is_the_longest_of_the_members() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        join(GROUP, ""),
        JoinRequest {
            rebalance_timeout_ms: 50_000,
            session_timeout_ms: 60_000,
            ..join(GROUP, "")
        },
    ]);
    let leader = h.join(join(GROUP, &formed.leader));
    h.advance_and_tick(i64::from(REBALANCE_TIMEOUT_MS));
    assert!(
        h.is_waiting(leader),
        "the follower's 50 s rebalance timeout applies"
    );
    h.advance_and_tick(50_000 - i64::from(REBALANCE_TIMEOUT_MS));
    assert_eq!(h.join_answer(leader).generation_id, formed.generation + 1);
    assert_eq!(h.members(), [formed.leader.as_str()]);
}

#[test]
fn a_rebalance_completes_as_soon_as_every_member_has_rejoined() {
    let mut h = Harness::new(config());
    let formed = h.form_group(3);
    let replies: Vec<_> = formed
        .members
        .iter()
        .map(|id| h.join(join(GROUP, id)))
        .collect();
    for reply in replies {
        assert_eq!(h.join_answer(reply).generation_id, formed.generation + 1);
    }
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_rebalanced_group_syncs_to_stable_with_the_newcomer() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let newcomer = h.join(join(GROUP, ""));
    let replies: Vec<_> = formed
        .members
        .iter()
        .map(|id| h.join(join(GROUP, id)))
        .collect();
    let generation = formed.generation + 1;
    for reply in replies {
        assert_eq!(h.join_answer(reply).generation_id, generation);
    }
    let mut members = formed.members.clone();
    members.push(h.join_answer(newcomer).member_id.clone());
    let leader_sync = h.sync(leader_sync(GROUP, &formed.leader, generation, &members));
    let follower_sync = h.sync(sync(GROUP, formed.follower(0), generation));
    let newcomer_sync = h.sync(sync(GROUP, &members[2], generation));
    assert_eq!(h.state(), GroupState::Stable);
    for (reply, id) in [leader_sync, follower_sync, newcomer_sync]
        .into_iter()
        .zip(&members)
    {
        assert_eq!(h.sync_answer(reply).assignment, assignment_for(id));
    }
}
