//! JoinGroup: member ids (KIP-394), the initial rebalance delay, protocol selection, and the
//! requests the coordinator refuses.

mod common;

use common::*;
use strom_coordinator::{GroupConfig, GroupState, JoinRequest};
use strom_types::ErrorCode;

#[test]
fn member_id_required_hands_out_an_id_and_the_rejoin_with_it_joins() {
    let mut h = Harness::new(config());
    let first = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, "")
    });
    let answer = h.join_answer(first).clone();
    assert_eq!(answer.error, ErrorCode::MemberIdRequired);
    assert_eq!(answer.member_id, "member-001");
    assert_eq!(answer.generation_id, -1);
    assert!(answer.members.is_empty());
    // A pending member is not a member yet: no rebalance starts.
    assert_eq!(h.state(), GroupState::Empty);
    assert!(h.members().is_empty());

    let rejoin = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, "member-001")
    });
    assert!(
        h.is_waiting(rejoin),
        "the initial delay holds the first join"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance_and_tick(INITIAL_DELAY_MS);
    let joined = h.join_answer(rejoin);
    assert_eq!(joined.error, ErrorCode::None);
    assert_eq!(joined.member_id, "member-001");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, "member-001");
    assert_eq!(member_ids(joined), ["member-001"]);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_pending_member_id_that_never_rejoins_expires_after_the_session_timeout() {
    let mut h = Harness::new(config());
    let first = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, "")
    });
    let member = h.join_answer(first).member_id.clone();

    h.advance_and_tick(i64::from(SESSION_TIMEOUT_MS) - 1);
    assert!(
        h.coordinator.group(GROUP).is_some(),
        "the pending id keeps the group"
    );
    h.advance_and_tick(1);
    assert!(
        h.coordinator.group(GROUP).is_none(),
        "an Empty group with no pending ids and no offsets is forgotten"
    );

    let late = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, &member)
    });
    assert_eq!(h.join_error(late), ErrorCode::UnknownMemberId);
}

#[test]
fn a_pending_member_holds_the_rebalance_until_it_expires() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    let pending = h.join(JoinRequest {
        require_known_member_id: true,
        ..join(GROUP, "")
    });
    assert_eq!(h.join_error(pending), ErrorCode::MemberIdRequired);
    assert_eq!(
        h.state(),
        GroupState::Stable,
        "a pending id alone does not rebalance"
    );

    // The leader rejoins (forcing a rebalance): every member has joined, but the pending id
    // might still arrive, so the join waits for it.
    let rejoin = h.join(join(GROUP, &formed.leader));
    assert!(h.is_waiting(rejoin));
    h.advance_and_tick(i64::from(SESSION_TIMEOUT_MS) - 1);
    assert!(h.is_waiting(rejoin));
    h.advance_and_tick(1);
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(member_ids(answer), [formed.leader.as_str()]);
}

#[test]
fn the_first_join_into_an_empty_group_waits_for_the_initial_delay() {
    let mut h = Harness::new(config());
    let first = h.join(join(GROUP, ""));
    assert!(h.is_waiting(first));
    assert_eq!(h.state(), GroupState::PreparingRebalance);

    h.advance_and_tick(INITIAL_DELAY_MS - 1);
    assert!(h.is_waiting(first), "not answered before the delay passes");
    h.advance_and_tick(1);
    let answer = h.join_answer(first);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(answer.leader, answer.member_id);
    assert_eq!(answer.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(answer.protocol_name.as_deref(), Some("range"));
}

#[test]
fn members_joining_within_the_initial_delay_form_one_generation() {
    let mut h = Harness::new(config());
    let a = h.join(JoinRequest {
        protocols: vec![protocol("range", "a-range"), protocol("roundrobin", "a-rr")],
        ..join(GROUP, "")
    });
    h.advance(1_000);
    let b = h.join(JoinRequest {
        protocols: vec![protocol("range", "b-range")],
        ..join(GROUP, "")
    });
    h.advance(1_000);
    let c = h.join(JoinRequest {
        protocols: vec![protocol("roundrobin", "c-rr"), protocol("range", "c-range")],
        ..join(GROUP, "")
    });
    h.advance_and_tick(INITIAL_DELAY_MS - 2_000 - 1);
    assert!(h.is_waiting(a) && h.is_waiting(b) && h.is_waiting(c));
    // Members joined during the delay, so it is extended once more (InitialDelayedJoin).
    h.advance_and_tick(1);
    assert!(h.is_waiting(a) && h.is_waiting(b) && h.is_waiting(c));
    h.advance_and_tick(INITIAL_DELAY_MS);

    let leader = h.join_answer(a).clone();
    assert_eq!(leader.error, ErrorCode::None);
    assert_eq!(leader.generation_id, 1);
    assert_eq!(leader.leader, "member-001");
    assert_eq!(leader.member_id, "member-001");
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        member_ids(&leader),
        ["member-001", "member-002", "member-003"]
    );
    // The leader sees each member's metadata for the chosen protocol.
    assert_eq!(metadata_of(&leader, "member-001").metadata, "a-range");
    assert_eq!(metadata_of(&leader, "member-002").metadata, "b-range");
    assert_eq!(metadata_of(&leader, "member-003").metadata, "c-range");
    for follower in [b, c] {
        let answer = h.join_answer(follower);
        assert_eq!(answer.error, ErrorCode::None);
        assert_eq!(answer.generation_id, 1);
        assert_eq!(answer.leader, "member-001");
        assert_eq!(answer.protocol_name.as_deref(), Some("range"));
        assert!(answer.members.is_empty(), "followers get no member list");
    }
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn members_joining_during_the_initial_delay_extend_it() {
    // Kafka (InitialDelayedJoin): when the delay ends and a member joined during it, the join
    // waits another delay (up to the rebalance timeout), so a fleet starting over several
    // seconds still forms one generation.
    let mut h = Harness::new(config());
    let a = h.join(join(GROUP, ""));
    h.advance(2_500);
    let b = h.join(join(GROUP, ""));
    h.advance_and_tick(500);
    assert!(
        h.is_waiting(a) && h.is_waiting(b),
        "B joined during the delay: the join waits another 3 s"
    );
    h.advance(1_000);
    let c = h.join(join(GROUP, ""));
    h.advance_and_tick(2_000);
    assert!(h.is_waiting(a) && h.is_waiting(b) && h.is_waiting(c));
    h.advance_and_tick(3_000);
    for reply in [a, b, c] {
        assert_eq!(h.join_answer(reply).generation_id, 1);
    }
    assert_eq!(member_ids(h.join_answer(a)).len(), 3);
}

#[test]
fn without_an_initial_delay_the_first_join_completes_at_once() {
    let mut h = Harness::new(config_without_delay());
    let first = h.join(join(GROUP, ""));
    let answer = h.join_answer(first);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn the_protocol_with_most_first_preference_votes_wins() {
    let mut h = Harness::new(config());
    let a = h.join(JoinRequest {
        protocols: protocols(&["range", "roundrobin"]),
        ..join(GROUP, "")
    });
    h.join(JoinRequest {
        protocols: protocols(&["roundrobin", "range"]),
        ..join(GROUP, "")
    });
    h.join(JoinRequest {
        protocols: protocols(&["roundrobin", "range"]),
        ..join(GROUP, "")
    });
    h.advance_and_tick(2 * INITIAL_DELAY_MS); // one delay, extended once: several joined
    let leader = h.join_answer(a);
    assert_eq!(leader.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(
        metadata_of(leader, "member-001").metadata,
        "roundrobin-metadata"
    );
}

#[test]
fn a_protocol_some_member_lacks_is_never_chosen_whatever_its_votes() {
    let mut h = Harness::new(config());
    let a = h.join(JoinRequest {
        protocols: protocols(&["range", "roundrobin"]),
        ..join(GROUP, "")
    });
    h.join(JoinRequest {
        protocols: protocols(&["roundrobin", "sticky"]),
        ..join(GROUP, "")
    });
    h.join(JoinRequest {
        protocols: protocols(&["range", "sticky", "roundrobin"]),
        ..join(GROUP, "")
    });
    h.advance_and_tick(2 * INITIAL_DELAY_MS); // one delay, extended once: several joined
    assert_eq!(
        h.join_answer(a).protocol_name.as_deref(),
        Some("roundrobin")
    );
}

#[test]
fn a_member_without_a_common_protocol_is_refused() {
    let mut h = Harness::new(config());
    h.join(JoinRequest {
        protocols: protocols(&["range"]),
        ..join(GROUP, "")
    });
    let stranger = h.join(JoinRequest {
        protocols: protocols(&["roundrobin", "sticky"]),
        ..join(GROUP, "")
    });
    let answer = h.join_answer(stranger);
    assert_eq!(answer.error, ErrorCode::InconsistentGroupProtocol);
    assert_eq!(answer.generation_id, -1);
    assert_eq!(answer.member_id, "");
    assert_eq!(h.members(), ["member-001"]);
}

#[test]
fn a_member_with_another_protocol_type_is_refused() {
    let mut h = Harness::new(config());
    h.join(join(GROUP, ""));
    let connect = h.join(JoinRequest {
        protocol_type: "connect".to_owned(),
        ..join(GROUP, "")
    });
    assert_eq!(h.join_error(connect), ErrorCode::InconsistentGroupProtocol);
    assert_eq!(h.members(), ["member-001"]);
}

#[test]
fn an_empty_protocol_type_or_protocol_list_is_refused_even_by_an_empty_group() {
    let mut h = Harness::new(config());
    let no_type = h.join(JoinRequest {
        protocol_type: String::new(),
        ..join(GROUP, "")
    });
    let no_protocols = h.join(JoinRequest {
        protocols: Vec::new(),
        ..join(GROUP, "")
    });
    assert_eq!(h.join_error(no_type), ErrorCode::InconsistentGroupProtocol);
    assert_eq!(
        h.join_error(no_protocols),
        ErrorCode::InconsistentGroupProtocol
    );
    assert!(h.members().is_empty());
}

#[test]
fn a_rejoin_that_drops_every_common_protocol_is_refused() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let rejoin = h.join(JoinRequest {
        protocols: protocols(&["sticky"]),
        ..join(GROUP, formed.follower(0))
    });
    assert_eq!(h.join_error(rejoin), ErrorCode::InconsistentGroupProtocol);
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn session_timeouts_outside_the_configured_range_are_refused() {
    let mut h = Harness::new(config());
    let (min, max) = (
        h.coordinator.config().session_timeout_ms_min,
        h.coordinator.config().session_timeout_ms_max,
    );
    assert_eq!((min, max), (6_000, 1_800_000), "Kafka's defaults");
    for session_timeout_ms in [min - 1, max + 1, 0, -1] {
        let reply = h.join(JoinRequest {
            session_timeout_ms,
            ..join(GROUP, "")
        });
        assert_eq!(
            h.join_error(reply),
            ErrorCode::InvalidSessionTimeout,
            "{session_timeout_ms}"
        );
    }
    for session_timeout_ms in [min, max] {
        let reply = h.join(JoinRequest {
            session_timeout_ms,
            ..join(GROUP, "")
        });
        assert!(h.is_waiting(reply), "{session_timeout_ms} is within bounds");
    }
}

#[test]
fn an_empty_group_id_is_invalid() {
    let mut h = Harness::new(config());
    let reply = h.join(join("", ""));
    assert_eq!(h.join_error(reply), ErrorCode::InvalidGroupId);
    assert!(h.coordinator.list().is_empty());
    let reply = h.sync(sync("", "member-001", 1));
    assert_eq!(h.sync_error(reply), ErrorCode::InvalidGroupId);
    assert_eq!(
        h.coordinator.heartbeat("", "member-001", None, 1, h.now_ms),
        ErrorCode::InvalidGroupId
    );
    assert_eq!(
        h.leave_group("", &[("member-001", None)]),
        Err(ErrorCode::InvalidGroupId)
    );
}

#[test]
fn a_full_group_refuses_new_members() {
    let mut h = Harness::new(GroupConfig {
        members_max: 2,
        ..config()
    });
    let formed = h.form_group(2);
    let third = h.join(join(GROUP, ""));
    let answer = h.join_answer(third);
    assert_eq!(answer.error, ErrorCode::GroupMaxSizeReached);
    assert_eq!(answer.member_id, "");
    assert_eq!(h.state(), GroupState::Stable);
    // Members already in the group may still rejoin.
    let rejoin = h.join(join(GROUP, &formed.leader));
    assert!(h.is_waiting(rejoin));
}

#[test]
fn an_unknown_member_id_is_refused() {
    let mut h = Harness::new(config());
    h.form_group(1);
    let stranger = h.join(join(GROUP, "stranger"));
    let answer = h.join_answer(stranger);
    assert_eq!(answer.error, ErrorCode::UnknownMemberId);
    assert_eq!(answer.member_id, "stranger");
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn a_refused_join_does_not_create_the_group() {
    // Kafka's handleJoinGroup checks the session timeout before it looks the group up, and
    // creates a group only for a member without an id (getOrMaybeCreateGroup(groupId,
    // isUnknownMember)); with an id it answers UNKNOWN_MEMBER_ID and the group stays
    // nonexistent. Strom creates an Empty group first, which ListGroups and DescribeGroups
    // show until the next tick.
    let mut h = Harness::new(config());
    let reply = h.join(join("ghost", "member-from-a-previous-life"));
    assert_eq!(h.join_error(reply), ErrorCode::UnknownMemberId);
    let reply = h.join(JoinRequest {
        session_timeout_ms: 1,
        ..join("ghost-too", "")
    });
    assert_eq!(h.join_error(reply), ErrorCode::InvalidSessionTimeout);
    assert!(h.coordinator.list().is_empty());
    assert_eq!(h.coordinator.describe("ghost"), None);
}

#[test]
fn a_follower_rejoining_a_stable_group_unchanged_gets_the_current_generation() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let rejoin = h.join(join(GROUP, formed.follower(0)));
    let answer = h.join_answer(rejoin);
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation);
    assert_eq!(answer.leader, formed.leader);
    assert!(answer.members.is_empty());
    assert_eq!(h.state(), GroupState::Stable, "no rebalance");
}

#[test]
fn a_follower_rejoining_with_new_metadata_starts_a_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let rejoin = h.join(JoinRequest {
        protocols: vec![protocol("range", "new-subscription")],
        ..join(GROUP, formed.follower(0))
    });
    assert!(h.is_waiting(rejoin));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let leader = h.join(join(GROUP, &formed.leader));
    let answer = h.join_answer(leader).clone();
    assert_eq!(answer.generation_id, formed.generation + 1);
    assert_eq!(
        metadata_of(&answer, formed.follower(0)).metadata,
        "new-subscription"
    );
    assert_eq!(h.join_answer(rejoin).generation_id, formed.generation + 1);
}

#[test]
fn the_leader_rejoining_a_stable_group_starts_a_rebalance() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let rejoin = h.join(join(GROUP, &formed.leader));
    assert!(
        h.is_waiting(rejoin),
        "the leader may rejoin to reassign (e.g. topic metadata changed)"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(formed.follower(0), formed.generation),
        ErrorCode::RebalanceInProgress
    );
    let follower = h.join(join(GROUP, formed.follower(0)));
    for reply in [rejoin, follower] {
        let answer = h.join_answer(reply);
        assert_eq!(answer.error, ErrorCode::None);
        assert_eq!(answer.generation_id, formed.generation + 1);
        assert_eq!(answer.leader, formed.leader);
    }
}

#[test]
fn rejoining_unchanged_during_completing_rebalance_repeats_the_join_answer() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let leader = h.join(join(GROUP, &formed.leader));
    let answer = h.join_answer(leader).clone();
    assert_eq!(answer.error, ErrorCode::None);
    assert_eq!(answer.generation_id, formed.generation);
    assert_eq!(member_ids(&answer), formed.members);
    let follower = h.join(join(GROUP, formed.follower(0)));
    let answer = h.join_answer(follower);
    assert_eq!(answer.generation_id, formed.generation);
    assert!(answer.members.is_empty());
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_second_join_from_a_waiting_member_replaces_the_first() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let first = h.join(join(GROUP, &formed.leader));
    let second = h.join(join(GROUP, &formed.leader));
    assert_eq!(h.join_error(first), ErrorCode::RebalanceInProgress);
    assert!(h.is_waiting(second));
    let follower = h.join(join(GROUP, formed.follower(0)));
    assert_eq!(h.join_answer(second).generation_id, formed.generation + 1);
    assert_eq!(h.join_answer(follower).generation_id, formed.generation + 1);
}

#[test]
fn a_new_member_joining_during_completing_rebalance_voids_the_pending_assignment() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let follower_sync = h.sync(sync(GROUP, formed.follower(0), formed.generation));
    assert!(h.is_waiting(follower_sync));
    let newcomer = h.join(join(GROUP, ""));
    assert_eq!(h.sync_error(follower_sync), ErrorCode::RebalanceInProgress);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.is_waiting(newcomer));
}

#[test]
fn generations_keep_counting_after_the_group_empties() {
    let mut h = Harness::new(config());
    // An offset keeps the Empty group (and its generation) from being forgotten.
    h.coordinator.apply_commit(
        GROUP,
        vec![("topic".to_owned(), 0, offset(1, h.now_ms))],
        h.now_ms,
    );
    let formed = h.form_group(1);
    assert_eq!(formed.generation, 1);
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.generation(), 2);
    let again = h.form_group(1);
    assert_eq!(again.generation, 3);
}
