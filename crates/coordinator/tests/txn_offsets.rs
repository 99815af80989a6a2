//! Transactional offset commits (TxnOffsetCommit, KIP-98 and KIP-447): who may commit, how
//! the offsets wait for their producer's marker, what OffsetFetch with require_stable sees,
//! and how replay, tombstones, group deletion, expiry and leadership changes treat them.

mod common;

use common::*;
use strom_coordinator::consumer_group::ConsumerHeartbeat;
use strom_coordinator::offsets::{self, CommittedOffset, OffsetsRecord};
use strom_coordinator::{GroupConfig, GroupState};
use strom_types::{ErrorCode, Offset, PartitionIndex, ProducerId};

/// `offsets.topic.num.partitions`.
const PARTITIONS: i32 = 50;
const PRODUCER: ProducerId = ProducerId(1_000);

fn index_of(group: &str) -> PartitionIndex {
    PartitionIndex(offsets::partition_for(group, PARTITIONS))
}

/// A group id other than `group` whose `__consumer_offsets` partition differs from its.
fn group_elsewhere(group: &str) -> String {
    (0..)
        .map(|n| format!("other-{n}"))
        .find(|other| index_of(other) != index_of(group))
        .unwrap()
}

fn entries(list: &[(&str, i32, i64)], now_ms: i64) -> Vec<(String, i32, CommittedOffset)> {
    list.iter()
        .map(|(topic, partition, at)| (topic.to_string(), *partition, offset(*at, now_ms)))
        .collect()
}

/// A TxnOffsetCommit whose batch became durable at `record_offset`.
fn txn_commit(
    h: &mut Harness,
    group: &str,
    producer: ProducerId,
    list: &[(&str, i32, i64)],
    record_offset: i64,
) {
    let offsets = entries(list, h.now_ms);
    h.coordinator.begin_txn_offsets(group, producer, &offsets);
    let staged =
        h.coordinator
            .stage_txn_offsets(group, producer, &offsets, Offset(record_offset), h.now_ms);
    assert_eq!(staged, offsets.len());
}

fn end(h: &mut Harness, group: &str, producer: ProducerId, commit: bool) -> usize {
    h.coordinator
        .complete_transaction(index_of(group), PARTITIONS, producer, commit, h.now_ms)
}

fn committed(h: &Harness, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let wanted = [(topic.to_owned(), partition)];
    h.coordinator.fetch_offsets(group, Some(&wanted))[0]
        .2
        .as_ref()
        .map(|o| o.offset)
}

fn stable(h: &Harness, group: &str, topic: &str, partition: i32) -> Result<Option<i64>, ErrorCode> {
    let wanted = [(topic.to_owned(), partition)];
    let fetched = h.coordinator.fetch_stable_offsets(group, Some(&wanted));
    fetched[0].2.clone().map(|o| o.map(|o| o.offset))
}

#[test]
fn a_producer_outside_the_group_commits_without_member_or_generation() {
    let mut h = Harness::new(config());
    let formed = h.form_group(2);
    let validate = |h: &Harness, member: &str, instance: Option<&str>, generation: i32| {
        h.coordinator
            .validate_txn_commit(GROUP, member, instance, generation)
    };
    // Versions 0-2 carry no member: accepted while the group has members, unlike OffsetCommit.
    assert_eq!(validate(&h, "", None, -1), Ok(()));
    assert_eq!(
        h.coordinator.validate_commit(GROUP, "", None, -1, h.now_ms),
        Err(ErrorCode::UnknownMemberId)
    );
    // v3+ (KIP-447): a named member must be current, in its current generation.
    assert_eq!(
        validate(&h, &formed.leader, None, formed.generation),
        Ok(())
    );
    assert_eq!(
        validate(&h, &formed.leader, None, formed.generation - 1),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        validate(&h, &formed.leader, None, -1),
        Err(ErrorCode::IllegalGeneration),
        "a member id with no generation"
    );
    assert_eq!(
        validate(&h, "gone", None, formed.generation),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.coordinator.validate_txn_commit("", "", None, -1),
        Err(ErrorCode::InvalidGroupId)
    );
}

#[test]
fn a_commit_during_completing_rebalance_is_accepted_for_transactions() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(
        h.coordinator
            .validate_commit(GROUP, &formed.leader, None, formed.generation, h.now_ms),
        Err(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(
        h.coordinator
            .validate_txn_commit(GROUP, &formed.leader, None, formed.generation),
        Ok(())
    );
}

#[test]
fn unknown_groups_take_commits_without_a_generation_only() {
    let h = Harness::new(config());
    assert_eq!(
        h.coordinator.validate_txn_commit("fresh", "", None, -1),
        Ok(())
    );
    assert_eq!(
        h.coordinator.validate_txn_commit("fresh", "m", None, 3),
        Err(ErrorCode::IllegalGeneration)
    );
    assert!(!h.coordinator.exists("fresh"), "validation creates nothing");
}

#[test]
fn a_static_member_replaced_by_another_is_fenced() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![static_join(GROUP, "", "instance-1")]);
    let validate = |member: &str| {
        h.coordinator
            .validate_txn_commit(GROUP, member, Some("instance-1"), formed.generation)
    };
    assert_eq!(validate(&formed.leader), Ok(()));
    assert_eq!(validate("someone-else"), Err(ErrorCode::FencedInstanceId));
}

#[test]
fn a_kip848_member_with_a_stale_epoch_is_an_illegal_generation() {
    let mut h = Harness::new(config());
    let heartbeat = ConsumerHeartbeat {
        group_id: "modern".into(),
        member_id: String::new(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["input".into()]),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned: Some(Default::default()),
    };
    let joined =
        h.coordinator
            .consumer_heartbeat(heartbeat, "member-1".into(), &|_| Some(1), h.now_ms);
    assert_eq!(joined.error, ErrorCode::None);
    let epoch = joined.member_epoch;
    let validate = |epoch| {
        h.coordinator
            .validate_txn_commit("modern", "member-1", None, epoch)
    };
    assert_eq!(validate(epoch), Ok(()));
    assert_eq!(validate(epoch - 1), Err(ErrorCode::IllegalGeneration));
    assert_eq!(validate(epoch + 1), Err(ErrorCode::FencedMemberEpoch));
    assert_eq!(
        h.coordinator.validate_txn_commit("modern", "", None, -1),
        Ok(())
    );
}

#[test]
fn staged_offsets_are_unstable_until_the_commit_marker_makes_them_committed() {
    let mut h = Harness::new(config());
    let group = "eos";
    txn_commit(
        &mut h,
        group,
        PRODUCER,
        &[("input", 0, 10), ("input", 1, 20)],
        5,
    );
    assert_eq!(committed(&h, group, "input", 0), None, "not visible yet");
    assert_eq!(
        stable(&h, group, "input", 0),
        Err(ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(
        stable(&h, group, "input", 2),
        Ok(None),
        "other partitions are stable"
    );
    assert!(h.coordinator.has_pending_txn_offset(group, "input", 1));
    let listing = h.coordinator.list();
    assert_eq!(listing.len(), 1, "the commit created a simple group");
    assert_eq!(listing[0].state, GroupState::Empty);

    assert_eq!(end(&mut h, group, PRODUCER, true), 2);
    assert_eq!(stable(&h, group, "input", 0), Ok(Some(10)));
    assert_eq!(committed(&h, group, "input", 1), Some(20));
    assert_eq!(end(&mut h, group, PRODUCER, true), 0, "a retried marker");
}

#[test]
fn the_abort_marker_drops_them_and_keeps_what_was_committed() {
    let mut h = Harness::new(config());
    let group = "eos";
    h.coordinator
        .apply_commit_written(group, entries(&[("input", 0, 7)], 0), Offset(1), h.now_ms);
    txn_commit(&mut h, group, PRODUCER, &[("input", 0, 10)], 5);
    assert_eq!(committed(&h, group, "input", 0), Some(7));
    assert_eq!(end(&mut h, group, PRODUCER, false), 0);
    assert_eq!(stable(&h, group, "input", 0), Ok(Some(7)));
}

#[test]
fn a_marker_ends_only_its_producer_in_its_offsets_partition() {
    let mut h = Harness::new(config());
    let (here, there) = ("eos".to_owned(), group_elsewhere("eos"));
    let other_producer = ProducerId(2_000);
    txn_commit(&mut h, &here, PRODUCER, &[("input", 0, 10)], 5);
    txn_commit(&mut h, &there, PRODUCER, &[("input", 0, 11)], 6);
    txn_commit(&mut h, &here, other_producer, &[("input", 1, 12)], 7);
    assert_eq!(end(&mut h, &here, PRODUCER, true), 1);
    assert_eq!(committed(&h, &here, "input", 0), Some(10));
    assert_eq!(
        stable(&h, &there, "input", 0),
        Err(ErrorCode::UnstableOffsetCommit),
        "its own partition's marker has not come"
    );
    assert_eq!(
        stable(&h, &here, "input", 1),
        Err(ErrorCode::UnstableOffsetCommit),
        "another producer's transaction"
    );
    assert_eq!(end(&mut h, &there, PRODUCER, true), 1);
    assert_eq!(committed(&h, &there, "input", 0), Some(11));
}

#[test]
fn a_later_plain_commit_wins_over_the_transaction_an_earlier_one_does_not() {
    let mut h = Harness::new(config());
    let group = "mixed";
    h.coordinator
        .apply_commit_written(group, entries(&[("input", 0, 1)], 0), Offset(3), h.now_ms);
    txn_commit(
        &mut h,
        group,
        PRODUCER,
        &[("input", 0, 50), ("input", 1, 60)],
        10,
    );
    // A plain OffsetCommit of partition 1 written after the transaction's records.
    h.coordinator.apply_commit_written(
        group,
        entries(&[("input", 1, 99)], 0),
        Offset(12),
        h.now_ms,
    );
    assert_eq!(end(&mut h, group, PRODUCER, true), 1);
    assert_eq!(committed(&h, group, "input", 0), Some(50), "record 10 > 3");
    assert_eq!(committed(&h, group, "input", 1), Some(99), "record 12 > 11");
}

#[test]
fn a_marker_during_the_write_ends_the_offsets_in_flight() {
    let mut h = Harness::new(config());
    let group = "racy";
    let offsets = entries(&[("input", 0, 10)], h.now_ms);
    // Committed: the record precedes the marker, so the offset applies.
    h.coordinator.begin_txn_offsets(group, PRODUCER, &offsets);
    assert_eq!(
        stable(&h, group, "input", 0),
        Err(ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(end(&mut h, group, PRODUCER, true), 1);
    let staged = h
        .coordinator
        .stage_txn_offsets(group, PRODUCER, &offsets, Offset(4), h.now_ms);
    assert_eq!(staged, 0, "the marker took it");
    assert_eq!(stable(&h, group, "input", 0), Ok(Some(10)));

    // Aborted (a timed-out transaction): dropped, and the late write does not bring it back.
    let offsets = entries(&[("input", 0, 20)], h.now_ms);
    h.coordinator.begin_txn_offsets(group, PRODUCER, &offsets);
    assert_eq!(end(&mut h, group, PRODUCER, false), 0);
    let staged = h
        .coordinator
        .stage_txn_offsets(group, PRODUCER, &offsets, Offset(8), h.now_ms);
    assert_eq!(staged, 0);
    assert_eq!(stable(&h, group, "input", 0), Ok(Some(10)));
}

#[test]
fn a_failed_write_leaves_nothing_pending_and_creates_no_group() {
    let mut h = Harness::new(config());
    let offsets = entries(&[("input", 0, 10)], h.now_ms);
    h.coordinator
        .begin_txn_offsets("failed", PRODUCER, &offsets);
    h.coordinator
        .abandon_txn_offsets("failed", PRODUCER, &offsets);
    assert_eq!(stable(&h, "failed", "input", 0), Ok(None));
    assert!(!h.coordinator.exists("failed"));
    assert_eq!(end(&mut h, "failed", PRODUCER, true), 0);
    assert_eq!(committed(&h, "failed", "input", 0), None);
}

#[test]
fn replay_stages_transactional_records_until_their_marker() {
    let mut h = Harness::new(config());
    let group = "replayed";
    let (committer, aborter, open) = (ProducerId(1), ProducerId(2), ProducerId(3));
    let record = |topic: &str, partition: i32, at: i64| {
        OffsetsRecord::Commit(key(group, topic, partition), offset(at, 0))
    };
    let now = h.now_ms;
    let c = &mut h.coordinator;
    c.replay_at(record("input", 0, 5), Offset(0), None, now);
    c.replay_at(record("input", 0, 10), Offset(1), Some(committer), now);
    c.replay_at(record("input", 1, 11), Offset(2), Some(aborter), now);
    c.replay_at(record("input", 2, 12), Offset(3), Some(open), now);
    assert_eq!(committed(&h, group, "input", 0), Some(5));
    end(&mut h, group, committer, true);
    end(&mut h, group, aborter, false);
    assert_eq!(stable(&h, group, "input", 0), Ok(Some(10)));
    assert_eq!(stable(&h, group, "input", 1), Ok(None));
    assert_eq!(
        stable(&h, group, "input", 2),
        Err(ErrorCode::UnstableOffsetCommit),
        "a transaction open at the log end stays pending"
    );
    // A tombstone in the log after a transactional record drops it, as it would live.
    h.coordinator.replay_at(
        OffsetsRecord::Delete(key(group, "input", 2)),
        Offset(5),
        None,
        h.now_ms,
    );
    assert_eq!(stable(&h, group, "input", 2), Ok(None));
    assert_eq!(end(&mut h, group, open, true), 0);
    assert_eq!(committed(&h, group, "input", 2), None);
}

#[test]
fn deleting_offsets_drops_their_pending_commits_for_good() {
    let mut h = Harness::new(config());
    let group = "deleted-offsets";
    txn_commit(
        &mut h,
        group,
        PRODUCER,
        &[("input", 0, 10), ("input", 1, 11)],
        5,
    );
    h.coordinator
        .remove_offsets(group, &[("input".to_owned(), 0)]);
    assert_eq!(stable(&h, group, "input", 0), Ok(None));
    assert_eq!(end(&mut h, group, PRODUCER, true), 1);
    assert_eq!(committed(&h, group, "input", 0), None, "not resurrected");
    assert_eq!(committed(&h, group, "input", 1), Some(11));
}

#[test]
fn deleting_a_group_writes_tombstones_for_pending_partitions_and_forgets_them() {
    let mut h = Harness::new(config());
    let group = "deleted";
    h.coordinator
        .apply_commit_written(group, entries(&[("input", 0, 1)], 0), Offset(0), h.now_ms);
    txn_commit(
        &mut h,
        group,
        PRODUCER,
        &[("input", 0, 10), ("input", 1, 11)],
        5,
    );
    let tombstones = h.coordinator.prepare_delete(group).unwrap();
    let partitions: Vec<(String, i32)> = tombstones
        .iter()
        .map(|k| (k.topic.clone(), k.partition))
        .collect();
    assert_eq!(
        partitions,
        [("input".to_owned(), 0), ("input".to_owned(), 1)]
    );
    h.coordinator.forget(group);
    assert!(!h.coordinator.exists(group));
    assert_eq!(end(&mut h, group, PRODUCER, true), 0);
    assert!(
        !h.coordinator.exists(group),
        "the marker brings nothing back"
    );

    // A group with nothing but pending offsets can be deleted too.
    txn_commit(&mut h, "pending-only", PRODUCER, &[("input", 0, 3)], 9);
    assert_eq!(
        h.coordinator.prepare_delete("pending-only").unwrap().len(),
        1
    );
}

#[test]
fn pending_commits_hold_off_expiry_and_keep_the_group() {
    let retention_ms = 60_000;
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: retention_ms,
        ..config()
    });
    let group = "slow";
    h.coordinator.apply_commit_written(
        group,
        entries(&[("input", 0, 1), ("input", 1, 2)], h.now_ms),
        Offset(0),
        h.now_ms,
    );
    txn_commit(&mut h, group, PRODUCER, &[("input", 0, 10)], 5);
    txn_commit(&mut h, "only-pending", PRODUCER, &[("input", 0, 3)], 6);
    let expired = h.advance_and_tick(retention_ms + 1);
    assert_eq!(
        expired,
        [key(group, "input", 1)],
        "partition 0 waits for its transaction"
    );
    assert!(h.coordinator.exists("only-pending"), "kept for its marker");
    assert!(h.coordinator.group("only-pending").is_some());

    end(&mut h, group, PRODUCER, false);
    end(&mut h, "only-pending", PRODUCER, false);
    assert_eq!(h.advance_and_tick(1), [key(group, "input", 0)]);
    assert!(!h.coordinator.exists(group));
    assert!(!h.coordinator.exists("only-pending"));
}

#[test]
fn losing_leadership_forgets_the_partitions_pending_offsets_and_a_reload_keeps_writes_in_flight() {
    let mut h = Harness::new(config());
    let (here, there) = ("eos".to_owned(), group_elsewhere("eos"));
    txn_commit(&mut h, &here, PRODUCER, &[("input", 0, 10)], 5);
    txn_commit(&mut h, &there, PRODUCER, &[("input", 0, 11)], 6);
    h.coordinator
        .forget_transactions(index_of(&here), PARTITIONS);
    assert_eq!(stable(&h, &here, "input", 0), Ok(None));
    assert_eq!(
        stable(&h, &there, "input", 0),
        Err(ErrorCode::UnstableOffsetCommit)
    );

    // Before a replay, written offsets go (the replay brings them back); in-flight ones stay.
    let in_flight = entries(&[("input", 1, 12)], h.now_ms);
    h.coordinator.begin_txn_offsets(&here, PRODUCER, &in_flight);
    txn_commit(&mut h, &here, PRODUCER, &[("input", 0, 10)], 7);
    h.coordinator
        .forget_written_transactions(index_of(&here), PARTITIONS);
    assert_eq!(stable(&h, &here, "input", 0), Ok(None));
    let staged = h
        .coordinator
        .stage_txn_offsets(&here, PRODUCER, &in_flight, Offset(9), h.now_ms);
    assert_eq!(staged, 1);
    assert_eq!(end(&mut h, &here, PRODUCER, true), 1);
    assert_eq!(committed(&h, &here, "input", 1), Some(12));
}
