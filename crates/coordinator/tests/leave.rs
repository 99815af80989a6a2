//! LeaveGroup: v0-2 (one member, by id) and v3+ (a batch, by member id or group instance id).

mod common;

use common::*;
use strom_coordinator::{GroupState, JoinRequest};
use strom_types::ErrorCode;

#[test]
fn a_single_member_leaving_rebalances_the_rest() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let results = h.leave(&[(formed.leader.as_str(), None)]);
    assert_eq!(results, Ok(vec![ErrorCode::None]));
    assert_eq!(h.members(), [formed.follower(0).to_owned()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(formed.follower(0), formed.generation),
        ErrorCode::RebalanceInProgress
    );

    let rejoin = h.join(join(GROUP, formed.follower(0)));
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(
        answer.leader,
        formed.follower(0),
        "the remaining member leads"
    );
    assert_eq!(member_ids(answer), [formed.follower(0).to_owned()]);
}

#[test]
fn a_batch_leave_answers_each_member() {
    let mut h = Harness::new(config());
    let formed = h.form_group(3);
    let results = h.leave(&[
        (formed.follower(0), None),
        ("stranger", None),
        (formed.follower(1), None),
        (formed.follower(0), None),
    ]);
    assert_eq!(
        results,
        Ok(vec![
            ErrorCode::None,
            ErrorCode::UnknownMemberId,
            ErrorCode::None,
            ErrorCode::UnknownMemberId,
        ])
    );
    assert_eq!(h.members(), [formed.leader.as_str()]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn static_members_leave_by_group_instance_id() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        static_join(GROUP, "", "instance-a"),
        static_join(GROUP, "", "instance-b"),
        join(GROUP, ""),
    ]);
    let results = h.leave(&[
        ("", Some("instance-b")),
        ("", Some("no-such-instance")),
        ("wrong-member-id", Some("instance-a")),
    ]);
    assert_eq!(
        results,
        Ok(vec![
            ErrorCode::None,
            ErrorCode::UnknownMemberId,
            ErrorCode::FencedInstanceId,
        ])
    );
    assert_eq!(
        h.members(),
        [formed.members[0].clone(), formed.members[2].clone()]
    );
    // Both ids together are accepted.
    let results = h.leave(&[(formed.members[0].as_str(), Some("instance-a"))]);
    assert_eq!(results, Ok(vec![ErrorCode::None]));
    assert_eq!(h.members(), [formed.members[2].clone()]);
    // The instance is forgotten: a new incarnation is a new member, not a replacement.
    let back = h.join(static_join(GROUP, "", "instance-a"));
    assert!(h.is_waiting(back));
}

#[test]
fn the_last_member_leaving_makes_the_group_empty() {
    let mut h = Harness::new(config());
    h.coordinator.apply_commit(
        GROUP,
        vec![("topic".to_owned(), 0, offset(7, h.now_ms))],
        h.now_ms,
    );
    let formed = h.form_group(2);
    let results = h.leave(&[(formed.leader.as_str(), None), (formed.follower(0), None)]);
    assert_eq!(results, Ok(vec![ErrorCode::None, ErrorCode::None]));
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.generation(), formed.generation + 1);
    let description = h.describe();
    assert!(description.members.is_empty());
    assert_eq!(description.protocol_name, "");
    // Without offsets, an Empty group is forgotten at the next tick.
    h.coordinator
        .remove_offsets(GROUP, &[("topic".to_owned(), 0)]);
    assert_eq!(h.state(), GroupState::Dead);
}

#[test]
fn the_last_member_leaving_a_group_without_offsets_drops_it_at_the_next_tick() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.state(), GroupState::Empty);
    h.tick();
    assert_eq!(h.state(), GroupState::Dead);
    assert!(h.coordinator.list().is_empty());
}

#[test]
fn a_departure_completes_a_join_that_waited_only_for_the_departed() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let rejoin = h.join(join(GROUP, &formed.leader));
    assert!(h.is_waiting(rejoin));
    h.leave(&[(formed.follower(0), None)]).unwrap();
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(answer), [formed.leader.as_str()]);
}

#[test]
fn a_departure_during_completing_rebalance_tells_waiting_syncs_to_rejoin() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, ""), join(GROUP, "")]);
    let waiting = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    h.leave(&[(formed.follower(1), None)]).unwrap();
    assert_eq!(h.sync_error(waiting), ErrorCode::RebalanceInProgress);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_member_leaving_while_its_join_waits_gets_that_join_answered() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let newcomer = h.join(join(GROUP, ""));
    let rejoin = h.join(join(GROUP, formed.follower(0)));
    assert!(h.is_waiting(rejoin), "the leader has not rejoined yet");
    h.leave(&[(formed.follower(0), None)]).unwrap();
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::UnknownMemberId);
    assert!(h.is_waiting(newcomer));
    assert_eq!(
        h.members(),
        [formed.leader.clone(), "member-003".to_owned()]
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_pending_member_may_leave_and_stops_holding_the_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    let pending = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, "")
    });
    let pending_id = h.join_answer(pending).member_id.clone();
    let rejoin = h.join(join(GROUP, &formed.leader));
    assert!(h.is_waiting(rejoin), "the pending id may still join");
    assert_eq!(
        h.leave(&[(pending_id.as_str(), None)]),
        Ok(vec![ErrorCode::None])
    );
    assert_eq!(h.join_answer(rejoin).generation_id, formed.generation + 1);
}

#[test]
fn a_leave_from_an_unknown_group_is_refused_per_member_and_creates_nothing() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.leave_group("no-such-group", &[("member", None)]),
        Ok(vec![ErrorCode::UnknownMemberId])
    );
    assert!(h.coordinator.group("no-such-group").is_none());
}

#[test]
fn a_batch_leave_from_an_unknown_group_answers_each_member() {
    // Kafka's handleLeaveGroup: for a group it does not know, the response has error NONE and
    // UNKNOWN_MEMBER_ID for each member (a v0-2 response then hoists that one member's error).
    // Strom's `leave` returns Err(UNKNOWN_MEMBER_ID) for the whole request, which the handler
    // sends as a top-level error with no member list, so AdminClient's
    // removeMembersFromConsumerGroup fails as a whole instead of per member.
    let mut h = Harness::new(config());
    assert_eq!(
        h.leave_group("no-such-group", &[("a", None), ("", Some("instance"))]),
        Ok(vec![ErrorCode::UnknownMemberId, ErrorCode::UnknownMemberId])
    );
}
