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
        p.aborted_transactions(Offset(0), Offset(9)).unwrap(),
        [AbortedTxn {
            producer_id: ProducerId(8),
            first_offset: Offset(6),
            marker_offset: Offset(8),
        }]
    );
    assert!(p
        .aborted_transactions(Offset(0), Offset(6))
        .unwrap()
        .is_empty());
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
        .unwrap()
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
    assert_eq!(
        f.aborted_transactions(Offset(0), Offset(4)).unwrap().len(),
        1
    );
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

fn open_with(dir: &std::path::Path, local: BrokerId, config: LogConfig) -> Partition {
    let id = PartitionId {
        topic: TopicName::new("t").unwrap(),
        topic_id: uuid::Uuid::from_u64_pair(1, 2),
        index: PartitionIndex(0),
    };
    Partition::open(dir, id, local, config, None, Recovery::CrashAndSync).unwrap()
}

/// A partition led here with `config`, alone in its ISR.
fn leader_with(dir: &std::path::Path, epoch: i32, config: LogConfig) -> Partition {
    let partition = open_with(dir, LEADER, config);
    partition.apply_replica_state(state(&[1], 1, epoch), Instant::now());
    partition
}

/// Segments of a few batches each, kept forever.
fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn all_aborted(p: &Partition) -> Vec<AbortedTxn> {
    p.aborted_transactions(p.log_start_offset(), p.log_end_offset())
        .unwrap()
}

/// Each producer's next sequence.
#[derive(Default)]
struct Sequences(std::collections::HashMap<i64, i32>);

impl Sequences {
    /// A transactional batch of `count` records from `id`.
    fn txn(&mut self, id: i64, count: usize) -> BytesMut {
        let next = self.0.entry(id).or_insert(0);
        let batch = txn_batch(id, 0, *next, count);
        *next += count as i32;
        batch
    }

    /// A transactional batch of keyed records from `id`.
    fn keyed(&mut self, id: i64, records: &[(&str, &str)]) -> BytesMut {
        let next = self.0.entry(id).or_insert(0);
        let batch = common::keyed_batch_of(records, Some((id, 0, *next)), true);
        *next += records.len() as i32;
        batch
    }
}

/// Rounds of three producers' transactions over many segments: producer 1 aborts every other
/// one, producer 2 always aborts, producer 3 always commits.
fn busy(p: &Partition, sequences: &mut Sequences, rounds: usize) {
    for round in 0..rounds {
        for producer in 1..=3 {
            write(p, sequences.txn(producer, 2));
        }
        write(p, common::batch_of(&values(3), None));
        let abort_1 = match round % 2 {
            0 => MarkerType::Abort,
            _ => MarkerType::Commit,
        };
        end(p, 1, 0, abort_1);
        end(p, 2, 0, MarkerType::Abort);
        end(p, 3, 0, MarkerType::Commit);
    }
}

fn segment_files(dir: &std::path::Path, extension: &str) -> Vec<i64> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(extension)?;
            stem.parse().ok()
        })
        .collect();
    offsets.sort();
    offsets
}

#[test]
fn the_aborted_list_is_the_same_after_a_clean_restart_and_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), 0, small());
    let mut sequences = Sequences::default();
    busy(&p, &mut sequences, 6);
    let before = all_aborted(&p);
    assert_eq!(before.len(), 9);
    assert!(
        segment_files(dir.path(), ".log").len() > 3,
        "spread over segments"
    );
    assert!(!segment_files(dir.path(), ".txnindex").is_empty());
    p.close().unwrap();
    drop(p);
    let p = leader_with(dir.path(), 1, small());
    assert_eq!(all_aborted(&p), before, "a clean restart");
    write(&p, sequences.txn(4, 1));
    drop(p); // a crash
    let p = leader_with(dir.path(), 2, small());
    assert_eq!(all_aborted(&p), before, "a crash");
    assert_eq!(
        p.last_stable_offset(),
        p.log_end_offset().plus(-1),
        "producer 4 is open"
    );
}

#[test]
fn a_transaction_open_across_rolls_survives_a_crash_and_its_abort_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), 0, small());
    let mut sequences = Sequences::default();
    write(&p, common::batch_of(&values(1), None));
    let first = write(&p, sequences.txn(7, 2));
    while segment_files(dir.path(), ".log").len() < 4 {
        write(&p, common::batch_of(&values(4), None));
    }
    assert_eq!(p.last_stable_offset(), first);
    drop(p); // a crash: the snapshot of the last roll knows the transaction
    let p = leader_with(dir.path(), 1, small());
    assert_eq!(p.last_stable_offset(), first);
    drop(p);
    // Without any snapshot the state is rebuilt from the log start, not the active segment.
    for offset in segment_files(dir.path(), ".snapshot") {
        std::fs::remove_file(dir.path().join(format!("{offset:020}.snapshot"))).unwrap();
    }
    let p = leader_with(dir.path(), 2, small());
    assert_eq!(p.last_stable_offset(), first);
    let marker = end(&p, 7, 0, MarkerType::Abort);
    assert_eq!(
        all_aborted(&p),
        [AbortedTxn {
            producer_id: ProducerId(7),
            first_offset: first,
            marker_offset: marker,
        }]
    );
    assert_eq!(p.last_stable_offset(), p.log_end_offset());
}

#[test]
fn a_torn_abort_marker_reopens_its_transaction_until_the_marker_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), 0);
    write(&p, txn_batch(5, 0, 0, 2));
    end(&p, 5, 0, MarkerType::Abort);
    assert_eq!(all_aborted(&p).len(), 1);
    drop(p);
    // Killed while the marker was being written.
    let segment = dir.path().join("00000000000000000000.log");
    let length = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(length - 5).unwrap();
    let p = leader(dir.path(), 1);
    assert!(
        all_aborted(&p).is_empty(),
        "the marker is gone, and its entry"
    );
    assert_eq!(
        p.last_stable_offset(),
        Offset(0),
        "the transaction is open again"
    );
    // The coordinator retries the marker it never got an answer for.
    assert_eq!(end(&p, 5, 0, MarkerType::Abort), Offset(2));
    assert_eq!(
        all_aborted(&p),
        [AbortedTxn {
            producer_id: ProducerId(5),
            first_offset: Offset(0),
            marker_offset: Offset(2),
        }]
    );
}

/// What `leader` holds from `from` on, as a follower fetches it.
fn fetched(leader: &Partition, from: Offset) -> FetchedData {
    let records = leader
        .read(from, 1 << 24, strom_partition::ReadBound::LogEnd)
        .unwrap()
        .records;
    FetchedData {
        error: ErrorCode::None,
        high_watermark: leader.high_watermark(),
        log_start_offset: leader.log_start_offset(),
        diverging_epoch: None,
        records: Some(records),
    }
}

#[test]
fn a_follower_truncating_its_tail_drops_the_tails_aborts_and_keeps_older_transactions() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l = leader_with(leader_dir.path(), 0, small());
    let mut sequences = Sequences::default();
    let first_6 = write(&l, sequences.txn(6, 2));
    busy(&l, &mut sequences, 3);
    let first_7 = write(&l, sequences.txn(7, 1));
    let marker_7 = end(&l, 7, 0, MarkerType::Abort);
    write(&l, common::batch_of(&values(2), None));
    let f = open_with(follower_dir.path(), BrokerId(2), small());
    f.apply_replica_state(state(&[1, 2], 1, 0), Instant::now());
    f.apply_fetched(LeaderEpoch(0), fetched(&l, Offset(0)))
        .unwrap();
    assert_eq!(f.log_end_offset(), l.log_end_offset());
    assert_eq!(
        all_aborted(&f),
        all_aborted(&l),
        "the follower indexed the same"
    );
    // Its segments may end elsewhere (it rolls batch by batch, a leader request by request):
    // every entry is in the segment holding its marker there.
    assert!(!segment_files(follower_dir.path(), ".txnindex").is_empty());
    // The follower restarts: its own index, read back.
    let expected = all_aborted(&l);
    drop(f);
    let f = open_with(follower_dir.path(), BrokerId(2), small());
    assert_eq!(all_aborted(&f), expected);
    // A new leader (broker 3) never had producer 7's transaction: the follower truncates to
    // where it began, which takes the marker and its entry.
    f.apply_replica_state(state(&[1, 2], 3, 1), Instant::now());
    f.truncate_to(first_7).unwrap();
    assert_eq!(all_aborted(&f), expected[..expected.len() - 1]);
    assert!(f
        .aborted_transactions(marker_7, marker_7.plus(1))
        .unwrap()
        .is_empty());
    // Producer 6's transaction, begun segments before the truncation, is still open here: the
    // new leader's ABORT for it is indexed with its first offset.
    let marker = Marker {
        kind: MarkerType::Abort,
        coordinator_epoch: 0,
    };
    let mut bytes = strom_protocol::control::encode_marker(6, 0, marker, TimestampMs(9_000));
    strom_protocol::batch::set_base_offset(&mut bytes, first_7);
    strom_protocol::batch::set_partition_leader_epoch(&mut bytes, 1);
    let data = FetchedData {
        error: ErrorCode::None,
        high_watermark: first_7.plus(1),
        log_start_offset: Offset(0),
        diverging_epoch: None,
        records: Some(Bytes::from(bytes)),
    };
    f.apply_fetched(LeaderEpoch(1), data).unwrap();
    let last = *all_aborted(&f).last().unwrap();
    assert_eq!(
        last,
        AbortedTxn {
            producer_id: ProducerId(6),
            first_offset: first_6,
            marker_offset: first_7,
        }
    );
}

#[test]
fn retention_forgets_the_aborts_and_snapshots_of_the_segments_it_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), 0, small());
    let mut sequences = Sequences::default();
    busy(&p, &mut sequences, 8);
    let before = all_aborted(&p);
    let size = p.size_bytes();
    p.set_log_config(LogConfig {
        retention_bytes: (size / 2) as i64,
        ..small()
    });
    let info = p.apply_retention(TimestampMs(0)).unwrap();
    assert!(info.segments_deleted > 0);
    let start = info.log_start_offset;
    let kept: Vec<AbortedTxn> = before
        .iter()
        .filter(|txn| txn.marker_offset >= start)
        .copied()
        .collect();
    assert_eq!(all_aborted(&p), kept);
    assert!(kept.len() < before.len());
    for files in [".txnindex", ".snapshot"] {
        let offsets = segment_files(dir.path(), files);
        assert!(
            offsets.iter().all(|&offset| offset >= start.0),
            "{files}: {offsets:?}"
        );
    }
    drop(p);
    let p = leader_with(dir.path(), 1, small());
    assert_eq!(all_aborted(&p), kept);
}

/// The (key, value) of every record the partition holds, in offset order.
fn records(p: &Partition) -> Vec<(String, String)> {
    let read = p
        .read(
            p.log_start_offset(),
            1 << 24,
            strom_partition::ReadBound::LogEnd,
        )
        .unwrap();
    let mut bytes = read.records.clone();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        for record in set.records.into_iter().filter(|record| !record.control) {
            let text = |b: Option<Bytes>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            out.push((text(record.key), text(record.value)));
        }
    }
    out
}

fn has(records: &[(String, String)], key: &str, value: &str) -> bool {
    records.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn compaction_drops_aborted_records_keeps_committed_ones_and_waits_for_open_transactions() {
    use strom_log::CompactionConfig;
    let dir = tempfile::tempdir().unwrap();
    let p = leader_with(dir.path(), 0, small());
    let mut sequences = Sequences::default();
    let plain = |records: &[(&str, &str)]| common::keyed_batch_of(records, None, false);
    write(&p, sequences.keyed(1, &[("a", "committed")]));
    write(
        &p,
        sequences.keyed(2, &[("a", "aborted"), ("b", "aborted")]),
    );
    write(&p, plain(&[("c", "plain")]));
    end(&p, 1, 0, MarkerType::Commit);
    end(&p, 2, 0, MarkerType::Abort);
    let filler = |p: &Partition, round: usize| {
        write(p, plain(&[("filler", &format!("{round:0>40}"))]));
    };
    let segments = || segment_files(dir.path(), ".log").len();
    let mut round = 0;
    while segments() < 2 {
        filler(&p, round);
        round += 1;
    }
    // Producer 3's transaction stays open over later records of its key.
    let open = write(&p, sequences.keyed(3, &[("d", "open")]));
    write(&p, plain(&[("d", "later")]));
    write(&p, sequences.keyed(2, &[("e", "again")]));
    end(&p, 2, 0, MarkerType::Commit);
    while segments() < 4 {
        filler(&p, round);
        round += 1;
    }
    assert_eq!(p.last_stable_offset(), open);
    let config = CompactionConfig {
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionConfig::default()
    };
    p.compact(TimestampMs(50_000), &config).unwrap().unwrap();
    let kept = records(&p);
    assert!(has(&kept, "a", "committed"), "{kept:?}");
    assert!(!has(&kept, "a", "aborted") && !has(&kept, "b", "aborted"));
    assert!(has(&kept, "c", "plain"));
    assert!(
        has(&kept, "d", "open"),
        "nothing at or past the last stable offset is cleaned"
    );
    assert_eq!(
        p.last_stable_offset(),
        open,
        "the open transaction is intact"
    );
    // The aborted transaction's entry lasts while its data did, the marker until its horizon.
    assert_eq!(all_aborted(&p).len(), 1);
    p.compact(TimestampMs(60_000), &config).unwrap().unwrap();
    assert!(all_aborted(&p).is_empty());
    // Once producer 3 commits, its record is compacted like any other.
    end(&p, 3, 0, MarkerType::Commit);
    let target = segments() + 2;
    while segments() < target {
        filler(&p, round);
        round += 1;
    }
    p.compact(TimestampMs(61_000), &config).unwrap().unwrap();
    let kept = records(&p);
    assert!(
        !has(&kept, "d", "open") && has(&kept, "d", "later"),
        "{kept:?}"
    );
    assert!(has(&kept, "a", "committed") && has(&kept, "e", "again"));
    // What compaction left reopens the same, producers' state included.
    let (aborted, lso) = (all_aborted(&p), p.last_stable_offset());
    drop(p);
    let p = leader_with(dir.path(), 1, small());
    assert_eq!((records(&p), all_aborted(&p)), (kept, aborted));
    assert_eq!(p.last_stable_offset(), lso);
}
