//! Transactions on one partition: the last stable offset, markers, the aborted list, and all
//! of it across restarts and on a follower.

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use strom_log::{LogConfig, Recovery};
use strom_partition::{
    AbortedTxn, Acks, AppendOptions, FetchedData, Partition, PartitionId, ReplicaState,
};
use strom_protocol::control::{Marker, MarkerType};
use strom_types::{
    BrokerId, ErrorCode, LeaderEpoch, Offset, PartitionIndex, ProducerEpoch, ProducerId,
    TimestampMs, TopicName,
};

const LEADER: BrokerId = BrokerId(1);

fn open(dir: &std::path::Path, local: BrokerId) -> Partition {
    let id = PartitionId {
        topic: TopicName::new("t").unwrap(),
        topic_id: uuid::Uuid::from_u64_pair(1, 2),
        index: PartitionIndex(0),
    };
    Partition::open(
        dir,
        id,
        local,
        LogConfig::default(),
        None,
        Recovery::CrashAndSync,
    )
    .unwrap()
}

/// A partition led here, alone in its ISR (the high watermark follows the log end).
fn leader(dir: &std::path::Path, epoch: i32) -> Partition {
    let partition = open(dir, LEADER);
    partition.apply_replica_state(state(&[1], 1, epoch), Instant::now());
    partition
}

fn state(isr: &[i32], leader: i32, epoch: i32) -> ReplicaState {
    ReplicaState {
        replicas: vec![BrokerId(1), BrokerId(2)],
        isr: isr.iter().copied().map(BrokerId).collect(),
        leader: Some(BrokerId(leader)),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: 0,
    }
}

fn options() -> AppendOptions {
    AppendOptions {
        acks: Acks::Leader,
        log_append_time: None,
        min_insync_replicas: 1,
    }
}

fn values(count: usize) -> Vec<Bytes> {
    (0..count).map(|i| Bytes::from(format!("v{i}"))).collect()
}

/// `count` records from transactional producer `id` at sequence `sequence`.
fn txn_batch(id: i64, epoch: i16, sequence: i32, count: usize) -> BytesMut {
    common::transactional_batch_of(&values(count), (id, epoch, sequence))
}

fn write(p: &Partition, mut batch: BytesMut) -> Offset {
    p.append_as_leader(&mut batch, options())
        .unwrap()
        .base_offset
}

fn end(p: &Partition, id: i64, epoch: i16, kind: MarkerType) -> Offset {
    let marker = Marker {
        kind,
        coordinator_epoch: 0,
    };
    p.append_marker(
        ProducerId(id),
        ProducerEpoch(epoch),
        marker,
        TimestampMs(5_000),
        options(),
    )
    .unwrap()
    .base_offset
}

#[test]
fn an_open_transaction_holds_the_last_stable_offset_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), 0);
    write(&p, common::batch_of(&values(2), None));
    assert_eq!(p.last_stable_offset(), Offset(2));
    assert_eq!(write(&p, txn_batch(7, 0, 0, 3)), Offset(2));
    write(&p, common::batch_of(&values(1), None));
    assert_eq!(write(&p, txn_batch(8, 0, 0, 1)), Offset(6));
    assert_eq!(p.high_watermark(), Offset(7));
    assert_eq!(
        p.last_stable_offset(),
        Offset(2),
        "producer 7's transaction began at 2"
    );
    assert_eq!(end(&p, 7, 0, MarkerType::Commit), Offset(7));
    assert_eq!(
        p.last_stable_offset(),
        Offset(6),
        "producer 8's is still open"
    );
    assert_eq!(end(&p, 8, 0, MarkerType::Abort), Offset(8));
    assert_eq!(p.last_stable_offset(), Offset(9));
    assert_eq!(
        p.aborted_transactions(Offset(0), Offset(9)),
        [AbortedTxn {
            producer_id: ProducerId(8),
            first_offset: Offset(6),
            marker_offset: Offset(8),
        }]
    );
    assert!(p.aborted_transactions(Offset(0), Offset(6)).is_empty());
    // The producer's next transaction continues its sequence.
    assert_eq!(write(&p, txn_batch(7, 0, 3, 1)), Offset(9));
    assert_eq!(p.last_stable_offset(), Offset(9));
}

#[test]
fn a_marker_from_an_older_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), 0);
    write(&p, txn_batch(7, 3, 0, 1));
    let marker = Marker {
        kind: MarkerType::Abort,
        coordinator_epoch: 0,
    };
    let refused = p
        .append_marker(
            ProducerId(7),
            ProducerEpoch(2),
            marker,
            TimestampMs(0),
            options(),
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidProducerEpoch);
    assert_eq!(p.last_stable_offset(), Offset(0));
    // A newer epoch (the coordinator fenced the producer) ends it.
    end(&p, 7, 4, MarkerType::Abort);
    assert_eq!(p.last_stable_offset(), Offset(2));
}

#[test]
fn transactions_survive_a_clean_restart_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = leader(dir.path(), 0);
        write(&p, txn_batch(1, 0, 0, 2)); // 0-1, aborted at 2
        end(&p, 1, 0, MarkerType::Abort);
        write(&p, txn_batch(2, 0, 0, 2)); // 3-4, open
        p.close().unwrap(); // snapshot at 5: producer 2's transaction open from 3
    }
    let p = leader(dir.path(), 1);
    assert_eq!(p.last_stable_offset(), Offset(3));
    write(&p, txn_batch(3, 0, 0, 1)); // 5, aborted at 6
    end(&p, 3, 0, MarkerType::Abort);
    drop(p); // a crash: no new snapshot; the batches after 5 are replayed
    let p = leader(dir.path(), 2);
    assert_eq!(p.last_stable_offset(), Offset(3));
    let aborted: Vec<i64> = p
        .aborted_transactions(Offset(3), Offset(7))
        .iter()
        .map(|txn| txn.producer_id.0)
        .collect();
    assert_eq!(aborted, [3]);
    end(&p, 2, 0, MarkerType::Commit);
    assert_eq!(p.last_stable_offset(), Offset(8));
}

#[test]
fn a_follower_keeps_the_leaders_transactions() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l = leader(leader_dir.path(), 0);
    write(&l, txn_batch(5, 0, 0, 2));
    end(&l, 5, 0, MarkerType::Abort);
    write(&l, txn_batch(6, 0, 0, 1));
    let records = l
        .read(Offset(0), 1 << 20, strom_partition::ReadBound::LogEnd)
        .unwrap()
        .records;
    let f = open(follower_dir.path(), BrokerId(2));
    f.apply_replica_state(state(&[1, 2], 1, 0), Instant::now());
    let data = FetchedData {
        error: ErrorCode::None,
        high_watermark: Offset(4),
        log_start_offset: Offset(0),
        diverging_epoch: None,
        records: Some(records),
    };
    f.apply_fetched(LeaderEpoch(0), data).unwrap();
    assert_eq!(f.log_end_offset(), Offset(4));
    assert_eq!(
        f.last_stable_offset(),
        Offset(3),
        "producer 6's transaction is open"
    );
    assert_eq!(f.aborted_transactions(Offset(0), Offset(4)).len(), 1);
}

#[test]
fn read_committed_reads_stop_at_the_last_stable_offset_and_name_the_aborted() {
    use strom_partition::{OffsetSpec, ReadBound};
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), 0);
    write(&p, txn_batch(1, 0, 0, 2)); // 0-1
    end(&p, 1, 0, MarkerType::Abort); // 2
    write(&p, common::batch_of(&values(1), None)); // 3
    write(&p, txn_batch(2, 0, 0, 1)); // 4, open
    let committed = p.read(Offset(0), 1 << 20, ReadBound::LastStable).unwrap();
    assert_eq!(committed.last_stable_offset, Offset(4));
    assert_eq!(committed.high_watermark, Offset(5));
    let last = strom_protocol::batch::Batches::new(&committed.records)
        .last()
        .unwrap()
        .0;
    assert_eq!(
        last.next_offset(),
        Offset(4),
        "nothing of the open transaction"
    );
    let aborted = committed.aborted.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].producer_id, ProducerId(1));
    // At the last stable offset a read_committed consumer waits: nothing, no error.
    let waiting = p.read(Offset(4), 1 << 20, ReadBound::LastStable).unwrap();
    assert!(waiting.records.is_empty());
    let uncommitted = p
        .read(Offset(4), 1 << 20, ReadBound::HighWatermark)
        .unwrap();
    assert!(!uncommitted.records.is_empty());
    assert_eq!(uncommitted.aborted, None);
    let latest = |spec| p.list_offset(spec).unwrap().unwrap().0;
    assert_eq!(latest(OffsetSpec::LatestStable), Offset(4));
    assert_eq!(latest(OffsetSpec::Latest), Offset(5));
}

/// The group coordinator's transactional offset commits (Kafka's AppendOrigin.COORDINATOR):
/// every one carries sequence 0, so sequences are not checked and none is a retry of another;
/// they still open the producer's transaction (the last stable offset waits, the marker is
/// accepted) and an older epoch is refused. The same batches from a client are retries.
#[test]
fn coordinator_batches_skip_sequences_but_open_the_transaction_and_respect_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), 0);
    let coordinator = |epoch: i16| {
        let mut batch = txn_batch(7, epoch, 0, 2);
        p.append_as_coordinator(&mut batch, options())
    };
    assert_eq!(coordinator(1).unwrap().base_offset, Offset(0));
    assert_eq!(
        coordinator(1).unwrap().base_offset,
        Offset(2),
        "sequence 0 again is a new commit, not a retry"
    );
    assert_eq!(p.log_end_offset(), Offset(4));
    assert_eq!(p.last_stable_offset(), Offset(0), "the transaction is open");
    let older = coordinator(0).unwrap_err();
    assert_eq!(older.code(), ErrorCode::InvalidProducerEpoch);
    assert_eq!(end(&p, 7, 1, MarkerType::Commit), Offset(4));
    assert_eq!(p.last_stable_offset(), Offset(5));

    // A client's identical batch is a retry of the first: answered, not written.
    let client = |p: &Partition| {
        p.append_as_leader(&mut txn_batch(8, 0, 0, 2), options())
            .unwrap()
            .base_offset
    };
    assert_eq!(client(&p), Offset(5));
    assert_eq!(client(&p), Offset(5));
    assert_eq!(p.log_end_offset(), Offset(7));
}
