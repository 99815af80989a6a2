//! A group id longer than a `__consumer_offsets` record can hold (flexible request versions
//! let a client send one) is refused with INVALID_GROUP_ID by every group API that could keep
//! it as state or write it, and leaves no trace in the coordinator.

mod common;

use common::*;
use strom_coordinator::consumer_group::ConsumerHeartbeat;
use strom_coordinator::limits::GROUP_ID_BYTES_MAX;
use strom_types::ErrorCode;

/// 40,000 bytes: over the 32,767 a record's i16 length holds.
fn long_group() -> String {
    "g".repeat(40_000)
}

fn assert_no_trace(h: &Harness, group: &str) {
    assert!(
        !h.coordinator.exists(group),
        "the refused group id left state behind"
    );
    assert!(h.coordinator.list().is_empty());
    assert!(h.coordinator.list_consumer().is_empty());
}

#[test]
fn join_sync_heartbeat_and_leave_refuse_it() {
    let mut h = Harness::new(config_without_delay());
    let group = long_group();

    let reply = h.join(join(&group, ""));
    let answer = h.join_answer(reply);
    assert_eq!(answer.error, ErrorCode::InvalidGroupId);

    let reply = h.sync(sync(&group, "member-001", 1));
    assert_eq!(h.sync_answer(reply).error, ErrorCode::InvalidGroupId);

    let now = h.now_ms;
    assert_eq!(
        h.coordinator.heartbeat(&group, "member-001", None, 1, now),
        ErrorCode::InvalidGroupId
    );
    assert_eq!(
        h.leave_group(&group, &[("member-001", None)]),
        Err(ErrorCode::InvalidGroupId)
    );
    assert_no_trace(&h, &group);
}

#[test]
fn offset_commits_refuse_it_before_anything_is_written() {
    let mut h = Harness::new(config());
    let group = long_group();
    let now = h.now_ms;
    // An admin commit (no member, generation -1) to a group that does not exist yet: the
    // path that creates a group for any other id.
    assert_eq!(
        h.coordinator.validate_commit(&group, "", None, -1, now),
        Err(ErrorCode::InvalidGroupId)
    );
    // The runtime then applies what was written: nothing, which must not create a group.
    h.coordinator.apply_commit(&group, Vec::new(), now);
    assert_no_trace(&h, &group);
}

#[test]
fn deletes_refuse_it() {
    let h = Harness::new(config());
    let group = long_group();
    assert_eq!(
        h.coordinator.prepare_delete(&group),
        Err(ErrorCode::InvalidGroupId)
    );
    assert_eq!(
        h.coordinator.check_offset_delete(&group, "topic"),
        Err(ErrorCode::InvalidGroupId)
    );
    // Kafka still answers DeleteGroups for the empty id (old clients): not found, not invalid.
    assert_eq!(
        h.coordinator.prepare_delete(""),
        Err(ErrorCode::GroupIdNotFound)
    );
}

#[test]
fn consumer_group_heartbeats_refuse_it_with_a_message() {
    let mut h = Harness::new(config());
    let group = long_group();
    let request = ConsumerHeartbeat {
        group_id: group.clone(),
        member_id: "m".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..Default::default()
    };
    let now = h.now_ms;
    let answer = h
        .coordinator
        .consumer_heartbeat(request, "fresh".into(), &|_| Some(1), now);
    assert_eq!(answer.error, ErrorCode::InvalidGroupId);
    let message = answer.error_message.unwrap_or_default();
    assert!(message.contains("40000 bytes"), "{message}");
    assert_no_trace(&h, &group);
}

#[test]
fn the_longest_group_id_a_record_holds_still_works() {
    let mut h = Harness::new(config_without_delay());
    let group = "g".repeat(GROUP_ID_BYTES_MAX);
    let reply = h.join(join(&group, ""));
    assert_eq!(h.join_answer(reply).error, ErrorCode::None);
    let now = h.now_ms;
    assert_eq!(
        h.coordinator.validate_commit(&group, "", None, -1, now),
        Err(ErrorCode::UnknownMemberId)
    );
    assert!(h.coordinator.exists(&group));
}
