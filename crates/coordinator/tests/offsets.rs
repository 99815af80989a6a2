//! Committed offsets: who may commit, what a fetch returns, replay of `__consumer_offsets`,
//! and expiry of an Empty group's offsets.

mod common;

use bytes::Bytes;
use common::*;
use strom_coordinator::offsets::{self, OffsetsRecord};
use strom_coordinator::{GroupConfig, GroupState};
use strom_types::ErrorCode;

const RETENTION_MS: i64 = 3_600_000;

fn config_with_retention() -> GroupConfig {
    GroupConfig {
        offsets_retention_ms: RETENTION_MS,
        ..config()
    }
}

fn commit(h: &mut Harness, group: &str, topic: &str, partition: i32, at: i64) {
    h.coordinator.apply_commit(
        group,
        vec![(topic.to_owned(), partition, offset(at, h.now_ms))],
        h.now_ms,
    );
}

fn partitions(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

#[test]
fn a_standalone_consumer_commits_to_a_group_nobody_joined() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.coordinator
            .validate_commit("standalone", "", None, -1, h.now_ms),
        Ok(())
    );
    commit(&mut h, "standalone", "topic", 0, 42);
    let fetched = h
        .coordinator
        .fetch_offsets("standalone", Some(&partitions(&[("topic", 0)])));
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].2.as_ref().map(|o| o.offset), Some(42));
    let listing = h.coordinator.list();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].group_id, "standalone");
    assert_eq!(listing[0].state, GroupState::Empty);
    assert_eq!(listing[0].protocol_type, "");
}

#[test]
fn a_commit_from_outside_the_group_is_refused_while_it_has_members() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    assert_eq!(
        h.coordinator.validate_commit(GROUP, "", None, -1, h.now_ms),
        Err(ErrorCode::UnknownMemberId)
    );
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(
        h.coordinator.validate_commit(GROUP, "", None, -1, h.now_ms),
        Ok(()),
        "an admin tool may reset offsets of an Empty group"
    );
}

#[test]
fn members_commit_with_their_current_generation() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let (leader, generation, now) = (formed.leader.clone(), formed.generation, h.now_ms);

    assert_eq!(
        h.coordinator
            .validate_commit(GROUP, &leader, None, generation, now),
        Err(ErrorCode::RebalanceInProgress),
        "CompletingRebalance: the assignment is not known yet"
    );
    h.sync(leader_sync(GROUP, &leader, generation, &formed.members));
    assert_eq!(h.state(), GroupState::Stable);
    let coordinator = &mut h.coordinator;
    assert_eq!(
        coordinator.validate_commit(GROUP, &leader, None, generation, now),
        Ok(())
    );
    assert_eq!(
        coordinator.validate_commit(GROUP, &leader, None, generation - 1, now),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        coordinator.validate_commit(GROUP, &leader, None, -1, now),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        coordinator.validate_commit(GROUP, "stranger", None, generation, now),
        Err(ErrorCode::UnknownMemberId)
    );

    // PreparingRebalance: members still own their partitions until they rejoin, so their
    // commits are accepted (Kafka relies on the heartbeat to tell them to rejoin).
    h.join(join(GROUP, ""));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.coordinator
            .validate_commit(GROUP, formed.follower(0), None, generation, now),
        Ok(())
    );
}

#[test]
fn a_commit_with_a_generation_to_an_unknown_group_is_illegal() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.coordinator
            .validate_commit("no-such-group", "member", None, 3, h.now_ms),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.coordinator.validate_commit("", "", None, -1, h.now_ms),
        Err(ErrorCode::InvalidGroupId)
    );
}

#[test]
fn fetch_returns_named_partitions_with_none_for_missing_and_all_in_order() {
    let mut h = Harness::new(config());
    commit(&mut h, GROUP, "b-topic", 1, 10);
    commit(&mut h, GROUP, "a-topic", 2, 20);
    commit(&mut h, GROUP, "a-topic", 0, 30);
    commit(&mut h, GROUP, "a-topic", 0, 31);

    let named = h.coordinator.fetch_offsets(
        GROUP,
        Some(&partitions(&[
            ("a-topic", 0),
            ("missing", 0),
            ("b-topic", 1),
        ])),
    );
    let named: Vec<_> = named
        .into_iter()
        .map(|(t, p, o)| (t, p, o.map(|o| o.offset)))
        .collect();
    assert_eq!(
        named,
        [
            ("a-topic".to_owned(), 0, Some(31)),
            ("missing".to_owned(), 0, None),
            ("b-topic".to_owned(), 1, Some(10)),
        ]
    );

    let all: Vec<_> = h
        .coordinator
        .fetch_offsets(GROUP, None)
        .into_iter()
        .map(|(t, p, o)| (t, p, o.unwrap().offset))
        .collect();
    assert_eq!(
        all,
        [
            ("a-topic".to_owned(), 0, 31),
            ("a-topic".to_owned(), 2, 20),
            ("b-topic".to_owned(), 1, 10),
        ]
    );
}

#[test]
fn a_fetch_keeps_the_committed_metadata_epoch_and_timestamp() {
    let mut h = Harness::new(config());
    let committed = strom_coordinator::offsets::CommittedOffset {
        offset: 99,
        leader_epoch: 4,
        metadata: "checkpoint".to_owned(),
        commit_timestamp_ms: 1_234,
    };
    h.coordinator.apply_commit(
        GROUP,
        vec![("t".to_owned(), 3, committed.clone())],
        h.now_ms,
    );
    let fetched = h.coordinator.fetch_offsets(GROUP, None);
    assert_eq!(fetched, [("t".to_owned(), 3, Some(committed))]);
}

#[test]
fn fetching_from_an_unknown_group_finds_nothing() {
    let h = Harness::new(config());
    assert!(h.coordinator.fetch_offsets("nobody", None).is_empty());
    assert_eq!(
        h.coordinator
            .fetch_offsets("nobody", Some(&partitions(&[("t", 0)]))),
        [("t".to_owned(), 0, None)]
    );
}

#[test]
fn replay_rebuilds_offsets_from_commit_and_delete_records() {
    let mut h = Harness::new(config());
    let records = [
        (key("g1", "t", 0), Some(offset(5, 100))),
        (key("g1", "t", 1), Some(offset(6, 100))),
        (key("g1", "t", 0), Some(offset(7, 200))),
        (key("g1", "t", 1), None),
        (key("g2", "u", 0), Some(offset(1, 100))),
        (key("g2", "u", 0), None),
        (key("never-committed", "t", 0), None),
    ];
    for (record_key, value) in records {
        let encoded_value = value.as_ref().map(offsets::encode_value);
        let record =
            offsets::decode(&offsets::encode_key(&record_key), encoded_value.as_ref()).unwrap();
        h.coordinator.replay(record, h.now_ms);
    }
    // A group metadata record (key version 2) is skipped.
    let group_metadata_key = Bytes::from_static(&[0, 2, 0, 2, b'g', b'1']);
    let record = offsets::decode(&group_metadata_key, None).unwrap();
    assert_eq!(record, OffsetsRecord::GroupMetadata);
    h.coordinator.replay(record, h.now_ms);

    assert_eq!(
        h.coordinator.fetch_offsets("g1", None),
        [("t".to_owned(), 0, Some(offset(7, 200)))]
    );
    assert!(
        h.coordinator.group("g2").is_none(),
        "the tombstone of its last offset removes an Empty group"
    );
    assert!(h.coordinator.group("never-committed").is_none());
    let groups: Vec<_> = h
        .coordinator
        .list()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(groups, ["g1"]);
}

#[test]
fn remove_offsets_drops_them_and_an_empty_group_left_with_none() {
    let mut h = Harness::new(config());
    commit(&mut h, GROUP, "t", 0, 1);
    commit(&mut h, GROUP, "t", 1, 1);
    h.coordinator
        .remove_offsets(GROUP, &partitions(&[("t", 0), ("absent", 9)]));
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None).len(), 1);
    h.coordinator
        .remove_offsets(GROUP, &partitions(&[("t", 1)]));
    assert!(h.coordinator.group(GROUP).is_none());
}

#[test]
fn offsets_of_an_empty_group_expire_after_the_retention_time() {
    let mut h = Harness::new(config_with_retention());
    let formed = h.form_group(1);
    commit(&mut h, GROUP, "t", 1, 10);
    commit(&mut h, GROUP, "t", 0, 10);
    commit(&mut h, GROUP, "s", 0, 10);
    h.advance(60_000 - 1);
    h.heartbeat(&formed.leader, formed.generation);
    h.advance(1);
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.state(), GroupState::Empty);

    assert!(h.advance_and_tick(RETENTION_MS - 1).is_empty());
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None).len(), 3);
    let expired = h.advance_and_tick(1);
    assert_eq!(
        expired,
        [key(GROUP, "s", 0), key(GROUP, "t", 0), key(GROUP, "t", 1)]
    );
    assert!(h.coordinator.fetch_offsets(GROUP, None).is_empty());
    assert_eq!(
        h.state(),
        GroupState::Dead,
        "nothing left: the group is forgotten"
    );
    assert!(h.advance_and_tick(RETENTION_MS).is_empty(), "expired once");
}

#[test]
fn offsets_of_a_group_with_members_never_expire() {
    let mut h = Harness::new(config_with_retention());
    let formed = h.form_group(1);
    commit(&mut h, GROUP, "t", 0, 10);
    for _ in 0..(3 * RETENTION_MS / 5_000) {
        h.advance(5_000);
        assert_eq!(
            h.heartbeat(&formed.leader, formed.generation),
            ErrorCode::None
        );
        assert!(h.tick().is_empty());
    }
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None).len(), 1);
}

#[test]
fn a_standalone_group_keeps_offsets_for_the_retention_time() {
    let mut h = Harness::new(config_with_retention());
    commit(&mut h, "standalone", "t", 0, 1);
    assert!(h.advance_and_tick(RETENTION_MS - 1).is_empty());
    assert_eq!(h.advance_and_tick(1), [key("standalone", "t", 0)]);
    assert!(h.coordinator.group("standalone").is_none());
}

#[test]
fn a_standalone_group_expires_each_offset_by_its_last_commit() {
    // Kafka's removeExpiredOffsets: a group with no protocol type (a standalone consumer
    // using assign() and commitSync()) expires an offset when the retention time has passed
    // since that offset's commit, so a consumer committing every second keeps its offsets.
    let mut h = Harness::new(config_with_retention());
    commit(&mut h, "standalone", "t", 0, 1);
    h.advance(RETENTION_MS - 1_000);
    commit(&mut h, "standalone", "t", 1, 2);
    let expired = h.advance_and_tick(1_000);
    assert_eq!(expired, [key("standalone", "t", 0)]);
    let kept = h.coordinator.fetch_offsets("standalone", None);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, 1);
}

#[test]
fn the_retention_time_counts_from_when_the_group_became_empty() {
    let mut h = Harness::new(config_with_retention());
    let formed = h.form_group(1);
    commit(&mut h, GROUP, "t", 0, 10);
    // Stay a member for longer than the retention time, then leave.
    for _ in 0..(2 * RETENTION_MS / 5_000) {
        h.advance(5_000);
        h.heartbeat(&formed.leader, formed.generation);
        h.tick();
    }
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert!(h.advance_and_tick(RETENTION_MS - 1).is_empty());
    assert_eq!(h.advance_and_tick(1), [key(GROUP, "t", 0)]);
}

#[test]
fn replayed_offsets_keep_their_age() {
    // Kafka expires a standalone group's offset retention after its commit timestamp (and an
    // emptied consumer group's after the time it became Empty, which it stores in the group
    // metadata record). Strom's replay creates the group as Empty *now*, and expiry counts
    // from max(empty since, commit time): every restart gives every idle group's offsets a
    // whole new retention period. A broker restarted more often than
    // `offsets.retention.minutes` (7 days) never expires an abandoned group's offsets, and
    // `__consumer_offsets` has no compaction to bound them.
    let mut h = Harness::new(config_with_retention());
    let committed_at = h.now_ms - RETENTION_MS + 1_000;
    let record = OffsetsRecord::Commit(key("standalone", "t", 0), offset(5, committed_at));
    h.coordinator.replay(record, h.now_ms);
    assert_eq!(h.advance_and_tick(1_000), [key("standalone", "t", 0)]);
}
