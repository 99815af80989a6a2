//! The partition's behaviour through its public methods: the high watermark's rules, group
//! commit, acknowledgements woken by their own partition, per-partition waiters, producer
//! state across restarts, and the invariants it asserts.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strom_log::{LogConfig, Recovery};
use strom_partition::{
    Acknowledgement, Acks, AppendOptions, FetchedData, FollowerPosition, FollowerRead, Partition,
    PartitionError, PartitionId, ReadBound, ReplicaState, StateChange, WaitFor, Waiter,
};
use strom_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, PartitionIndex, TopicName};

const LEADER: BrokerId = BrokerId(1);

/// One v2 batch of `count` records; with `producer`, from that idempotent producer.
fn batch(count: usize, producer: Option<common::ProducerFields>) -> BytesMut {
    let values: Vec<Bytes> = (0..count)
        .map(|index| Bytes::from(format!("value-{index}")))
        .collect();
    common::batch_of(&values, producer)
}

fn open(dir: &std::path::Path, local: BrokerId, config: LogConfig) -> Partition {
    let id = PartitionId {
        topic: TopicName::new("t").unwrap(),
        topic_id: uuid::Uuid::from_u64_pair(1, 2),
        index: PartitionIndex(0),
    };
    Partition::open(dir, id, local, config, None, Recovery::CrashAndSync).unwrap()
}

fn state(isr: &[i32], leader: i32, epoch: i32) -> ReplicaState {
    ReplicaState {
        replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        isr: isr.iter().copied().map(BrokerId).collect(),
        leader: Some(BrokerId(leader)),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: 0,
    }
}

fn leader_with(dir: &std::path::Path, isr: &[i32], records: usize) -> Partition {
    let partition = open(dir, LEADER, LogConfig::default());
    let change = partition.apply_replica_state(state(isr, 1, 0), Instant::now());
    assert_eq!(change, StateChange::BecameLeader);
    for _ in 0..records {
        partition
            .append_as_leader(&mut batch(1, None), options(Acks::Leader, 1))
            .unwrap();
    }
    partition
}

fn options(acks: Acks, min_insync_replicas: i32) -> AppendOptions {
    AppendOptions {
        acks,
        log_append_time: None,
        min_insync_replicas,
    }
}

fn fetch(partition: &Partition, follower: i32, offset: i64, now: Instant) -> FollowerRead {
    let position = FollowerPosition {
        fetch_offset: Offset(offset),
        last_fetched_epoch: None,
        log_start_offset: Offset(0),
    };
    partition
        .read_for_follower(BrokerId(follower), position, 1 << 20, now)
        .unwrap()
}

#[test]
fn the_high_watermark_is_the_smallest_log_end_in_the_isr_and_never_falls() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), &[1, 2, 3], 10);
    let now = Instant::now();
    assert_eq!(p.high_watermark(), Offset(0), "no follower has fetched yet");
    fetch(&p, 2, 7, now);
    assert_eq!(p.high_watermark(), Offset(0), "follower 3 still unknown");
    fetch(&p, 3, 4, now);
    assert_eq!(p.high_watermark(), Offset(4));
    fetch(&p, 3, 10, now);
    assert_eq!(p.high_watermark(), Offset(7));
    // A follower that restarted lower does not pull the high watermark back.
    fetch(&p, 2, 3, now);
    assert_eq!(p.high_watermark(), Offset(7));
}

#[test]
fn a_leader_alone_in_the_isr_has_its_log_end_as_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), &[1], 3);
    assert_eq!(p.high_watermark(), Offset(3));
    assert_eq!(p.log_end_offset(), Offset(3));
}

#[test]
fn replicas_outside_the_isr_do_not_hold_the_high_watermark_back_and_rejoin_when_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut proposals) = tokio::sync::mpsc::unbounded_channel();
    let id = PartitionId {
        topic: TopicName::new("t").unwrap(),
        topic_id: uuid::Uuid::from_u64_pair(1, 2),
        index: PartitionIndex(0),
    };
    let p = Partition::open(
        dir.path(),
        id,
        LEADER,
        LogConfig::default(),
        Some(sender),
        Recovery::CrashAndSync,
    )
    .unwrap();
    p.apply_replica_state(state(&[1, 2], 1, 0), Instant::now());
    for _ in 0..5 {
        p.append_as_leader(&mut batch(1, None), options(Acks::Leader, 1))
            .unwrap();
    }
    fetch(&p, 2, 5, Instant::now());
    assert_eq!(p.high_watermark(), Offset(5));
    fetch(&p, 3, 4, Instant::now());
    assert!(
        proposals.try_recv().is_err(),
        "3 is behind the high watermark"
    );
    fetch(&p, 3, 5, Instant::now());
    let proposal = proposals
        .try_recv()
        .expect("3 caught up: a rejoin is proposed");
    assert_eq!(proposal.isr, vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
    fetch(&p, 3, 5, Instant::now());
    assert!(
        proposals.try_recv().is_err(),
        "one proposal in flight at a time"
    );
    p.isr_proposal_finished();
    fetch(&p, 3, 5, Instant::now());
    assert!(
        proposals.try_recv().is_ok(),
        "another once the first is answered"
    );
}

#[test]
fn lagging_followers_are_proposed_out_of_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut proposals) = tokio::sync::mpsc::unbounded_channel();
    let id = PartitionId {
        topic: TopicName::new("t").unwrap(),
        topic_id: uuid::Uuid::from_u64_pair(1, 2),
        index: PartitionIndex(0),
    };
    let p = Partition::open(
        dir.path(),
        id,
        LEADER,
        LogConfig::default(),
        Some(sender),
        Recovery::CrashAndSync,
    )
    .unwrap();
    let start = Instant::now();
    p.apply_replica_state(state(&[1, 2, 3], 1, 0), start);
    p.append_as_leader(&mut batch(3, None), options(Acks::Leader, 1))
        .unwrap();
    fetch(&p, 2, 3, start + Duration::from_millis(150));
    let lag = Duration::from_millis(100);
    assert!(p.shrink_isr_if_lagging(start + Duration::from_millis(150), lag));
    let proposal = proposals.try_recv().unwrap();
    assert_eq!(proposal.isr, vec![BrokerId(1), BrokerId(2)]);
    assert_eq!(proposal.leader_epoch, LeaderEpoch(0));
}

#[test]
fn appends_check_leadership_and_the_isr_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), LEADER, LogConfig::default());
    let refused = p.append_as_leader(&mut batch(1, None), options(Acks::All, 1));
    assert!(
        matches!(refused, Err(PartitionError::NotLeader)),
        "{refused:?}"
    );
    p.apply_replica_state(state(&[1], 1, 0), Instant::now());
    let refused = p.append_as_leader(&mut batch(1, None), options(Acks::All, 2));
    assert_eq!(refused.unwrap_err().code(), ErrorCode::NotEnoughReplicas);
    p.append_as_leader(&mut batch(1, None), options(Acks::Leader, 2))
        .unwrap();
    assert!(matches!(
        p.check_leader(Some(LeaderEpoch(1))),
        Err(PartitionError::UnknownLeaderEpoch { .. })
    ));
    p.apply_replica_state(state(&[1], 1, 2), Instant::now());
    assert!(matches!(
        p.check_leader(Some(LeaderEpoch(1))),
        Err(PartitionError::FencedLeaderEpoch { .. })
    ));
}

#[test]
#[should_panic(expected = "leader epoch went back")]
fn a_leader_epoch_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), LEADER, LogConfig::default());
    p.apply_replica_state(state(&[1], 1, 3), Instant::now());
    p.apply_replica_state(state(&[1], 1, 2), Instant::now());
}

/// Many writers on several threads, each appending and then waiting: every wait ends, each
/// only once its own records are durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acks_all_waiters_all_end_durable() {
    let dir = tempfile::tempdir().unwrap();
    let partition = Arc::new(leader_with(dir.path(), &[1], 0));
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let partition = partition.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let appended = partition
                        .append_as_leader(&mut batch(1, None), options(Acks::All, 1))
                        .unwrap();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    partition
                        .wait_acknowledged(&appended.ack, deadline)
                        .await
                        .unwrap();
                    assert!(partition.durable_offset() >= appended.ack.end);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(partition.durable_offset(), Offset(16 * 20));
}

/// With the clock paused, a waiter that is not woken would sleep until its deadline and time
/// out: this proves the acknowledgement is woken by the follower's fetch moving the high
/// watermark, with no re-check poll.
#[tokio::test(start_paused = true)]
async fn an_acks_all_answer_is_woken_when_the_high_watermark_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let partition = Arc::new(leader_with(dir.path(), &[1, 2], 0));
    let appended = partition
        .append_as_leader(&mut batch(5, None), options(Acks::All, 2))
        .unwrap();
    let started = tokio::time::Instant::now();
    let waiting = {
        let partition = partition.clone();
        let ack = appended.ack;
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            partition.wait_acknowledged(&ack, deadline).await
        })
    };
    tokio::time::sleep(Duration::from_millis(3)).await;
    assert!(!waiting.is_finished(), "follower 2 has not fetched yet");
    fetch(&partition, 2, 5, Instant::now());
    waiting.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn an_acks_all_answer_fails_when_leadership_moves() {
    let dir = tempfile::tempdir().unwrap();
    let partition = Arc::new(leader_with(dir.path(), &[1, 2], 0));
    let appended = partition
        .append_as_leader(&mut batch(1, None), options(Acks::All, 2))
        .unwrap();
    let waiting = {
        let partition = partition.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            partition.wait_acknowledged(&appended.ack, deadline).await
        })
    };
    tokio::time::sleep(Duration::from_millis(3)).await;
    partition.apply_replica_state(state(&[2], 2, 1), Instant::now());
    let outcome = waiting.await.unwrap();
    assert_eq!(outcome.unwrap_err().code(), ErrorCode::NotLeaderOrFollower);
}

#[tokio::test(start_paused = true)]
async fn an_acks_all_answer_times_out_without_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let partition = leader_with(dir.path(), &[1, 2], 0);
    let appended = partition
        .append_as_leader(&mut batch(1, None), options(Acks::All, 2))
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    let outcome = partition.wait_acknowledged(&appended.ack, deadline).await;
    assert_eq!(outcome.unwrap_err().code(), ErrorCode::RequestTimedOut);
    assert!(matches!(
        partition.acknowledgement(&appended.ack),
        Acknowledgement::Pending
    ));
}

/// A fetch waits on the partitions it reads: appends elsewhere do not wake it.
#[tokio::test(start_paused = true)]
async fn waiters_are_woken_only_by_their_own_partition() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = leader_with(a_dir.path(), &[1], 0);
    let b = leader_with(b_dir.path(), &[1], 0);
    let waiter = Waiter::new();
    a.wait_for(&waiter, WaitFor::Visible);
    for _ in 0..100 {
        b.append_as_leader(&mut batch(1, None), options(Acks::Leader, 1))
            .unwrap();
    }
    let woken = tokio::time::timeout(Duration::from_secs(1), waiter.woken()).await;
    assert!(
        woken.is_err(),
        "100 appends to another partition woke the waiter"
    );
    a.append_as_leader(&mut batch(1, None), options(Acks::Leader, 1))
        .unwrap();
    tokio::time::timeout(Duration::from_millis(1), waiter.woken())
        .await
        .expect("an append to its own partition wakes it");
}

#[test]
fn consumers_read_below_the_high_watermark_and_followers_to_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), &[1, 2], 4);
    fetch(&p, 2, 2, Instant::now());
    let consumer = p
        .read(Offset(0), 1 << 20, ReadBound::HighWatermark)
        .unwrap();
    assert_eq!(consumer.high_watermark, Offset(2));
    let offsets: Vec<Offset> = strom_protocol::batch::Batches::new(&consumer.records)
        .map(|(header, _)| header.base_offset)
        .collect();
    assert_eq!(offsets, vec![Offset(0), Offset(1)]);
    let above = p
        .read(Offset(3), 1 << 20, ReadBound::HighWatermark)
        .unwrap();
    assert!(
        above.records.is_empty(),
        "above the HW but in the log: nothing yet"
    );
    let error = p
        .read(Offset(9), 1 << 20, ReadBound::HighWatermark)
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::OffsetOutOfRange);
    let FollowerRead::Records(follower) = fetch(&p, 2, 2, Instant::now()) else {
        panic!("records expected");
    };
    assert_eq!(
        strom_protocol::batch::Batches::new(&follower.records).count(),
        2,
        "a follower reads to the log end"
    );
}

/// An idempotent producer's retry is recognised after a clean restart, even when its batch
/// is in an older segment (the snapshot carries the state; the old rebuild read only the
/// active segment), and after a crash within the active segment (rebuilt from the log).
#[test]
fn producer_state_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let producer = (77, 0, 0);
    {
        let p = open(dir.path(), LEADER, config.clone());
        p.apply_replica_state(state(&[1], 1, 0), Instant::now());
        p.append_as_leader(&mut batch(2, Some(producer)), options(Acks::Leader, 1))
            .unwrap();
        for _ in 0..10 {
            p.append_as_leader(&mut batch(3, None), options(Acks::Leader, 1))
                .unwrap();
        }
        p.close().unwrap();
    }
    let p = open(dir.path(), LEADER, config);
    p.apply_replica_state(state(&[1], 1, 1), Instant::now());
    let retry = p
        .append_as_leader(&mut batch(2, Some(producer)), options(Acks::Leader, 1))
        .unwrap();
    assert_eq!(
        retry.base_offset,
        Offset(0),
        "the retry is answered with the original"
    );
    assert_eq!(p.log_end_offset(), Offset(32), "and not written again");
    let next = p
        .append_as_leader(&mut batch(1, Some((77, 0, 5))), options(Acks::Leader, 1))
        .unwrap_err();
    assert_eq!(next.code(), ErrorCode::OutOfOrderSequenceNumber);
}

/// A follower truncating its divergent tail forgets the producers' batches that went with it.
#[test]
fn truncation_rebuilds_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), BrokerId(2), LogConfig::default());
    p.apply_replica_state(state(&[1, 2], 2, 0), Instant::now());
    p.append_as_leader(&mut batch(1, Some((5, 0, 0))), options(Acks::Leader, 1))
        .unwrap();
    p.append_as_leader(&mut batch(1, Some((5, 0, 1))), options(Acks::Leader, 1))
        .unwrap();
    p.close().unwrap();
    // Leadership moves to 1, whose log diverged at offset 1: truncate there.
    p.apply_replica_state(state(&[1, 2], 1, 1), Instant::now());
    let data = FetchedData {
        error: ErrorCode::None,
        high_watermark: Offset(1),
        log_start_offset: Offset(0),
        diverging_epoch: Some((LeaderEpoch(0), Offset(1))),
        records: None,
    };
    p.apply_fetched(LeaderEpoch(1), data).unwrap();
    assert_eq!(p.log_end_offset(), Offset(1));
    // Back as leader: sequence 1 is new again, not a duplicate of the truncated batch.
    p.apply_replica_state(state(&[2], 2, 2), Instant::now());
    let again = p
        .append_as_leader(&mut batch(1, Some((5, 0, 1))), options(Acks::Leader, 1))
        .unwrap();
    assert_eq!(again.base_offset, Offset(1));
}

/// A snapshot beyond the log end (the log lost a torn tail on open) is not used, and not
/// kept either: once appends carry the log end past its offset, the next open after a crash
/// would take it for current and answer a retry of a lost batch as a duplicate, at offsets that
/// hold other records, writing nothing.
#[test]
fn a_snapshot_beyond_a_torn_tail_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let append = |p: &Partition, producer| {
        p.append_as_leader(&mut batch(3, producer), options(Acks::Leader, 1))
            .unwrap()
            .base_offset
    };
    {
        let p = open(dir.path(), LEADER, LogConfig::default());
        p.apply_replica_state(state(&[1], 1, 0), Instant::now());
        assert_eq!(append(&p, Some((9, 0, 0))), Offset(0));
        assert_eq!(append(&p, Some((9, 0, 3))), Offset(3));
        p.close().unwrap(); // the snapshot, as of offset 6
    }
    // Tear the last batch (offsets 3-5): the log restarts at 3, below the snapshot.
    let segment = dir.path().join("00000000000000000000.log");
    let bytes = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(bytes - 10).unwrap();
    {
        let p = open(dir.path(), LEADER, LogConfig::default());
        p.apply_replica_state(state(&[1], 1, 1), Instant::now());
        assert_eq!(p.log_end_offset(), Offset(3));
        assert_eq!(append(&p, None), Offset(3));
        assert_eq!(append(&p, None), Offset(6));
        // Dropped without close: a crash, no new snapshot.
    }
    let p = open(dir.path(), LEADER, LogConfig::default());
    p.apply_replica_state(state(&[1], 1, 2), Instant::now());
    assert_eq!(
        append(&p, Some((9, 0, 3))),
        Offset(9),
        "the batch the torn tail lost is written, not taken for a duplicate at offset 3"
    );
    assert_eq!(p.log_end_offset(), Offset(12));
}

/// A shutdown writes the producer snapshot only when something was appended since the one on
/// disk was written or loaded: at 20,000 partitions rewriting them all cost seconds.
#[test]
fn a_shutdown_rewrites_the_producer_snapshot_only_when_the_log_moved() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // Snapshots are named after their offset (Kafka's `<offset>.snapshot`).
    let snapshot = |offset: i64| dir.path().join(format!("{offset:020}.snapshot"));
    // Replacing the file renames a new one into place: a new inode.
    let inode = || std::fs::metadata(snapshot(3)).unwrap().ino();
    let p = open(dir.path(), LEADER, LogConfig::default());
    p.apply_replica_state(state(&[1], 1, 0), Instant::now());
    p.append_as_leader(&mut batch(3, Some((9, 0, 0))), options(Acks::Leader, 1))
        .unwrap();
    p.close_unsynced().unwrap();
    let first = inode();
    p.close_unsynced().unwrap();
    assert_eq!(inode(), first, "nothing appended: the snapshot is current");
    drop(p);
    let p = open(dir.path(), LEADER, LogConfig::default());
    p.close_unsynced().unwrap();
    assert_eq!(
        inode(),
        first,
        "a loaded snapshot at the log end is current too"
    );
    p.apply_replica_state(state(&[1], 1, 1), Instant::now());
    p.append_as_leader(&mut batch(3, Some((9, 0, 3))), options(Acks::Leader, 1))
        .unwrap();
    p.close_unsynced().unwrap();
    assert!(snapshot(6).exists(), "an append makes the snapshot stale");
    assert!(!snapshot(3).exists(), "and the new one supersedes it");
    drop(p);
    let p = open(dir.path(), LEADER, LogConfig::default());
    p.apply_replica_state(state(&[1], 1, 2), Instant::now());
    let duplicate = p
        .append_as_leader(&mut batch(3, Some((9, 0, 3))), options(Acks::Leader, 1))
        .unwrap();
    assert_eq!(
        duplicate.base_offset,
        Offset(3),
        "the snapshot knew the retried batch"
    );
    assert_eq!(p.log_end_offset(), Offset(6));
}

/// DeleteRecords on the leader: refused past the high watermark, the log start moves, and the
/// low watermark waits for every live follower to report a log start that far; a follower
/// takes the leader's log start from a fetch answer, capped at its own high watermark.
#[test]
fn delete_records_moves_the_log_start_and_the_low_watermark_follows_the_followers() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), &[1, 2], 10);
    let now = Instant::now();
    let fetched = |offset, log_start| FollowerPosition {
        fetch_offset: Offset(offset),
        last_fetched_epoch: None,
        log_start_offset: Offset(log_start),
    };
    p.read_for_follower(BrokerId(2), fetched(6, 0), 1 << 20, now)
        .unwrap();
    assert_eq!(p.high_watermark(), Offset(6));
    let alive = |broker: BrokerId| broker != BrokerId(3);
    match p.delete_records(Some(Offset(7)), alive) {
        Err(error) => assert_eq!(error.code(), ErrorCode::OffsetOutOfRange),
        Ok(deleted) => panic!("deleted past the high watermark: {deleted:?}"),
    }
    let deleted = p.delete_records(None, alive).unwrap();
    assert_eq!(
        (
            deleted.requested,
            deleted.low_watermark,
            p.log_start_offset()
        ),
        (Offset(6), Offset(0), Offset(6))
    );
    // The follower reports its new log start with its next fetch.
    p.read_for_follower(BrokerId(2), fetched(6, 6), 1 << 20, now)
        .unwrap();
    assert_eq!(p.low_watermark(alive).unwrap(), Offset(6));
    // Replica 3 (out of the ISR) counts once its broker is alive: it never fetched.
    assert_eq!(p.low_watermark(|_| true).unwrap(), Offset(-1));

    let follower_dir = tempfile::tempdir().unwrap();
    let f = open(follower_dir.path(), BrokerId(2), LogConfig::default());
    f.apply_replica_state(state(&[1, 2], 1, 0), Instant::now());
    let below_start = p.read_for_follower(BrokerId(2), fetched(0, 0), 1 << 20, now);
    assert!(
        matches!(below_start, Ok(FollowerRead::OutOfRange { .. })),
        "a fetch below the log start is out of range: {below_start:?}"
    );
    let data = |high_watermark, log_start_offset, records| FetchedData {
        error: ErrorCode::None,
        high_watermark: Offset(high_watermark),
        log_start_offset: Offset(log_start_offset),
        diverging_epoch: None,
        records,
    };
    let first_ten = Some(batch(10, None).freeze());
    f.apply_fetched(LeaderEpoch(0), data(4, 6, first_ten))
        .unwrap();
    assert_eq!(
        (f.log_start_offset(), f.high_watermark()),
        (Offset(4), Offset(4)),
        "capped at the follower's own high watermark"
    );
    f.apply_fetched(LeaderEpoch(0), data(8, 6, None)).unwrap();
    assert_eq!(f.log_start_offset(), Offset(6));
}

/// Kafka's DelayedDeleteRecords: the wait ends when the last live follower reports the new
/// log start in a fetch, and with REQUEST_TIMED_OUT at the deadline when it does not.
#[tokio::test(start_paused = true)]
async fn a_delete_records_wait_is_woken_by_the_followers_fetch_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let partition = Arc::new(leader_with(dir.path(), &[1, 2], 8));
    let fetched = |log_start| FollowerPosition {
        fetch_offset: Offset(8),
        last_fetched_epoch: None,
        log_start_offset: Offset(log_start),
    };
    let now = Instant::now();
    partition
        .read_for_follower(BrokerId(2), fetched(0), 1 << 20, now)
        .unwrap();
    let alive = |broker: BrokerId| broker != BrokerId(3);
    let deleted = partition.delete_records(Some(Offset(5)), alive).unwrap();
    assert_eq!(deleted.low_watermark, Offset(0));

    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let timed_out = partition
        .wait_low_watermark(Offset(5), alive, deadline)
        .await
        .unwrap_err();
    assert_eq!(timed_out.code(), ErrorCode::RequestTimedOut);

    let waiting = {
        let partition = partition.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            partition
                .wait_low_watermark(Offset(5), alive, deadline)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(3)).await;
    assert!(!waiting.is_finished(), "follower 2 still reports 0");
    partition
        .read_for_follower(BrokerId(2), fetched(5), 1 << 20, now)
        .unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), Offset(5));
}
