//! Becoming (and ceasing to be) the coordinator of a `__transaction_state` partition:
//! rebuilding from the records, finishing what the previous coordinator prepared, refusing
//! requests while loading or after unloading, and ignoring what comes back too late.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use strom_coordinator::transactions::record::{self, RecordError, TransactionLogValue};
use strom_coordinator::transactions::{
    InitDecision, ProducerReply, Reply, TransactionCoordinator, TransactionState::*,
};
use strom_types::{CoordinatorEpoch, ErrorCode, PartitionIndex, ProducerEpoch, ProducerId};

use super::*;

fn value(state: strom_coordinator::transactions::TransactionState) -> TransactionLogValue {
    TransactionLogValue {
        producer_id: ProducerId(42),
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch: ProducerEpoch(3),
        transaction_timeout_ms: TIMEOUT_MS,
        state,
        partitions: Some(vec![("a".to_owned(), vec![0, 1])]),
        last_update_timestamp_ms: START_MS,
        start_timestamp_ms: START_MS - 100,
        client_transaction_version: 0,
    }
}

fn record(id: &str, value: Option<&TransactionLogValue>) -> (Bytes, Option<Bytes>) {
    (
        record::try_encode_key(id).unwrap(),
        value.map(|v| record::try_encode_value(v, 1).unwrap()),
    )
}

/// Two ids that live in the same partition (of `STATE_PARTITIONS`).
fn same_partition_ids() -> (String, String) {
    let first = "id-0".to_owned();
    let partition = record::partition_for(&first, STATE_PARTITIONS);
    let second = (1..)
        .map(|n| format!("id-{n}"))
        .find(|id| record::partition_for(id, STATE_PARTITIONS) == partition)
        .unwrap();
    (first, second)
}

#[test]
fn a_prepared_commit_is_finished_by_the_next_coordinator() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(
        rt.add(TXN, producer, &[("a", 0), ("b", 1)]),
        ErrorCode::None
    );
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    // The coordinator dies with PrepareCommit durable and no marker written.
    rt.advance(1_000);
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, 1);
    assert!(outcome.skipped.is_empty());
    assert!(outcome.writes.is_empty());
    let [markers] = &outcome.markers[..] else {
        panic!("{:?}", outcome.markers);
    };
    assert!(markers.commit);
    assert_eq!(markers.transactional_id, TXN);
    assert_eq!(markers.coordinator_epoch, CoordinatorEpoch(1));
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (producer.id, producer.epoch)
    );
    assert_eq!(markers.partitions, vec![tp("a", 0), tp("b", 1)]);

    // The producer's retries wait for the markers.
    let m = rt.metadata(TXN);
    assert_eq!(
        (m.state(), m.pending_state()),
        (PrepareCommit, Some(CompleteCommit))
    );
    assert_eq!(
        rt.end(TXN, producer, true).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.add(TXN, producer, &[("a", 0)]),
        ErrorCode::ConcurrentTransactions
    );

    rt.markers = outcome.markers;
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteCommit);
    assert_eq!(
        rt.end(TXN, producer, true),
        ProducerReply::ok(producer.id, producer.epoch)
    );
    // The completion was stamped when the load prepared it.
    assert_eq!(rt.metadata(TXN).last_update_timestamp_ms(), rt.now_ms);
}

#[test]
fn a_prepared_abort_is_finished_and_prepared_empty_transactions_complete_at_once() {
    let (first, second) = same_partition_ids();
    let mut rt = Runtime::new(config());
    let partition = rt.coordinator.partition_for(&first);
    let mut no_partitions = value(PrepareCommit);
    no_partitions.partitions = Some(Vec::new());
    rt.log.insert(
        partition,
        vec![
            record(&first, Some(&value(PrepareAbort))),
            record(&second, Some(&no_partitions)),
        ],
    );
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, 2);
    assert_eq!(outcome.markers.len(), 1);
    assert!(!outcome.markers[0].commit);
    assert_eq!(outcome.markers[0].transactional_id, first);
    let [write] = <[_; 1]>::try_from(outcome.writes).unwrap();
    assert_eq!(write.transactional_id(), second);
    assert_eq!(write.state(), CompleteCommit);
    assert_eq!(rt.durable(write), None);
    assert_eq!(rt.state(&second), CompleteCommit);
    rt.markers = outcome.markers;
    rt.deliver_markers();
    assert_eq!(rt.state(&first), CompleteAbort);
}

#[test]
fn the_last_value_wins_tombstones_delete_and_bad_records_are_skipped() {
    let (first, second) = same_partition_ids();
    let mut rt = Runtime::new(config());
    let partition = rt.coordinator.partition_for(&first);
    let mut dead = value(Empty);
    dead.state = Dead;
    let mut unknown_key = BytesMut::new();
    unknown_key.put_i16(1);
    unknown_key.put_i16(1);
    unknown_key.put_slice(b"x");
    let ongoing = value(Ongoing);
    rt.log.insert(
        partition,
        vec![
            record(&first, Some(&value(Empty))),
            record(&second, Some(&value(CompleteAbort))),
            (Bytes::from_static(&[0xff]), None),
            record(&first, Some(&ongoing)),
            record(&second, None),
            (unknown_key.freeze(), Some(Bytes::from_static(b"whatever"))),
            record("third", Some(&dead)),
            (
                record::try_encode_key("fourth").unwrap(),
                Some(Bytes::from_static(&[0, 1, 2])),
            ),
            (Bytes::new(), None),
        ],
    );
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, 1);
    let skipped: Vec<usize> = outcome.skipped.iter().map(|(index, _)| *index).collect();
    assert_eq!(skipped, vec![2, 5, 6, 7, 8]);
    assert!(matches!(
        outcome.skipped[1].1,
        RecordError::UnknownVersion { what: "key", .. }
    ));
    assert!(matches!(outcome.skipped[2].1, RecordError::Inconsistent(_)));
    let m = rt.metadata(&first);
    assert_eq!(m.state(), Ongoing);
    assert_eq!(m.producer_epoch(), ProducerEpoch(3));
    assert_eq!(m.partitions().len(), 2);
    assert!(rt.coordinator.transaction(&second).is_none());
    assert!(rt.coordinator.transaction("third").is_none());
}

#[test]
fn the_state_after_a_reload_is_the_state_before() {
    let mut rt = Runtime::new(config());
    let ids = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let mut producers = Vec::new();
    for id in ids {
        producers.push(rt.init(id));
        rt.advance(7);
    }
    rt.transaction("alpha", producers[0], &[("a", 0), ("b", 2)], true);
    rt.transaction("beta", producers[1], &[("a", 1)], false);
    assert_eq!(rt.add("gamma", producers[2], &[("c", 0)]), ErrorCode::None);
    assert_eq!(
        rt.add_offsets("gamma", producers[2], "group"),
        ErrorCode::None
    );
    let delta = rt.init("delta");
    rt.transaction("delta", delta, &[("d", 3)], true);
    assert_eq!(rt.add("delta", delta, &[("d", 4)]), ErrorCode::None);

    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let before = rt.coordinator.describe(&ids);
    let updates: Vec<i64> = ids
        .iter()
        .map(|id| rt.metadata(id).last_update_timestamp_ms())
        .collect();
    rt.advance(1_000);
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, ids.len());
    assert!(outcome.markers.is_empty() && outcome.skipped.is_empty());
    assert_eq!(rt.coordinator.describe(&ids), before);
    let after: Vec<i64> = ids
        .iter()
        .map(|id| rt.metadata(id).last_update_timestamp_ms())
        .collect();
    assert_eq!(after, updates);
}

#[test]
fn requests_wait_while_a_partition_loads() {
    let mut coordinator = TransactionCoordinator::new(config());
    let partition = coordinator.partition_for(TXN);
    coordinator.begin_load(partition, CoordinatorEpoch(4));
    let decision = coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        Some(ProducerId(1)),
        START_MS,
    );
    assert!(matches!(
        decision,
        InitDecision::Reply(ProducerReply {
            error: ErrorCode::CoordinatorLoadInProgress,
            ..
        })
    ));
    let add = coordinator.add_partitions(
        TXN,
        ProducerId(1),
        ProducerEpoch(0),
        &[tp("a", 0)],
        START_MS,
    );
    assert_eq!(expect_reply(add), ErrorCode::CoordinatorLoadInProgress);
    assert_eq!(
        coordinator.describe(&[TXN.to_owned()])[0].1,
        Err(ErrorCode::CoordinatorLoadInProgress)
    );
    assert_eq!(
        coordinator.list(&[], &[], -1, START_MS),
        Err(ErrorCode::CoordinatorLoadInProgress)
    );
    // A load for an older epoch, or one unloaded meanwhile, changes nothing.
    assert!(coordinator
        .complete_load(partition, CoordinatorEpoch(3), Vec::new(), START_MS)
        .is_none());
    coordinator.unload(partition);
    assert!(coordinator
        .complete_load(partition, CoordinatorEpoch(4), Vec::new(), START_MS)
        .is_none());
    assert_eq!(coordinator.coordinator_epoch(partition), None);
    let end = coordinator.end_txn(TXN, ProducerId(1), ProducerEpoch(0), true, START_MS);
    assert_eq!(expect_reply(end).error, ErrorCode::NotCoordinator);
    assert_eq!(
        coordinator.describe(&[TXN.to_owned()])[0].1,
        Err(ErrorCode::NotCoordinator)
    );
}

#[test]
fn writes_that_return_after_an_unload_change_nothing() {
    let (first, second) = same_partition_ids();
    let mut rt = Runtime::new(config());
    let (p1, p2) = (rt.init(&first), rt.init(&second));
    let partition = rt.coordinator.partition_for(&first);
    let add = |rt: &mut Runtime, id: &str, p: Producer| {
        expect_write(
            rt.coordinator
                .add_partitions(id, p.id, p.epoch, &[tp("a", 0)], rt.now_ms),
        )
    };
    let landed = add(&mut rt, &first, p1);
    let failed = add(&mut rt, &second, p2);
    rt.coordinator.unload(partition);
    assert!(rt.coordinator.transaction(&first).is_none());
    let outcome = rt.coordinator.apply_written(landed, rt.now_ms);
    assert_eq!(
        outcome.reply,
        Some(Reply::AddPartitions(ErrorCode::NotCoordinator))
    );
    let outcome = rt
        .coordinator
        .write_failed(failed, ErrorCode::NotLeaderOrFollower);
    assert_eq!(
        outcome.reply,
        Some(Reply::AddPartitions(ErrorCode::NotCoordinator))
    );
    assert_eq!(rt.add(&first, p1, &[("a", 0)]), ErrorCode::NotCoordinator);
}

#[test]
fn a_write_from_before_a_reload_is_not_applied() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    let partition = rt.coordinator.partition_for(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    let write =
        expect_write(
            rt.coordinator
                .end_txn(TXN, producer.id, producer.epoch, true, rt.now_ms),
        );
    // Leadership moves away and back before the write returns; the log did not get it.
    let records = rt.log[&partition].clone();
    rt.coordinator.unload(partition);
    let outcome = rt
        .coordinator
        .load(partition, CoordinatorEpoch(9), records, rt.now_ms);
    assert!(outcome.markers.is_empty());
    let outcome = rt.coordinator.apply_written(write, rt.now_ms);
    assert!(matches!(
        outcome.reply,
        Some(Reply::EndTxn(ProducerReply {
            error: ErrorCode::NotCoordinator,
            ..
        }))
    ));
    assert!(outcome.markers.is_none());
    assert_eq!(rt.state(TXN), Ongoing);
    assert_eq!(
        rt.coordinator.coordinator_epoch(partition),
        Some(CoordinatorEpoch(9))
    );
}

#[test]
fn markers_from_an_earlier_coordinator_epoch_are_ignored() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    let old_markers = rt.markers[0].clone();
    let outcome = rt.restart();
    assert!(rt
        .coordinator
        .markers_written(&old_markers, &old_markers.partitions, rt.now_ms)
        .is_none());
    assert_eq!(rt.state(TXN), PrepareCommit);
    rt.markers = outcome.markers;
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteCommit);
}

#[test]
fn only_partitions_this_node_leads_are_answered() {
    let mut coordinator = TransactionCoordinator::new(config());
    let partition = coordinator.partition_for(TXN);
    let other = PartitionIndex((partition.0 + 1) % STATE_PARTITIONS);
    let _ = coordinator.load(other, CoordinatorEpoch(0), Vec::new(), START_MS);
    let decision = coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        None,
        START_MS,
    );
    assert!(matches!(
        decision,
        InitDecision::Reply(ProducerReply {
            error: ErrorCode::NotCoordinator,
            ..
        })
    ));
    assert_eq!(
        coordinator
            .list(&[], &[], -1, START_MS)
            .unwrap()
            .transactions,
        vec![]
    );
}

proptest! {
    #[test]
    fn hostile_records_never_panic_a_load(
        records in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..24),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))),
            0..12),
    ) {
        let mut coordinator = TransactionCoordinator::new(config());
        let records: Vec<(Bytes, Option<Bytes>)> = records
            .into_iter()
            .map(|(key, value)| (Bytes::from(key), value.map(Bytes::from)))
            .collect();
        let count = records.len();
        let outcome = coordinator.load(PartitionIndex(0), CoordinatorEpoch(0), records, START_MS);
        prop_assert!(outcome.skipped.len() <= count);
        let _ = coordinator.tick(START_MS);
    }

    #[test]
    fn mutated_real_records_never_panic_a_load_or_what_follows(
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..4),
    ) {
        let mut values = [value(Ongoing), value(PrepareCommit), value(CompleteAbort), value(Empty)];
        values[3].partitions = None;
        let mut records = Vec::new();
        for (n, v) in values.iter().enumerate() {
            let (key, value) = record(&format!("id-{n}"), Some(v));
            let mut value = BytesMut::from(&value.unwrap()[..]);
            for (at, byte) in &flips {
                let at = at % value.len();
                value[at] = *byte;
            }
            records.push((key, Some(value.freeze())));
        }
        let mut coordinator = TransactionCoordinator::new(TransactionConfig {
            state_log_partitions: 1,
            ..config()
        });
        let outcome = coordinator.load(PartitionIndex(0), CoordinatorEpoch(0), records, START_MS);
        // Whatever loaded can be driven: markers finished, timeouts and expirations run.
        for markers in &outcome.markers {
            if let Some(write) = coordinator.markers_written(markers, &markers.partitions, START_MS) {
                let _ = coordinator.apply_written(write, START_MS);
            }
        }
        for write in outcome.writes {
            let _ = coordinator.apply_written(write, START_MS);
        }
        for write in coordinator.tick(i64::MAX / 2) {
            let outcome = coordinator.apply_written(write, i64::MAX / 2);
            if let Some(markers) = outcome.markers {
                if let Some(write) = coordinator.markers_written(&markers, &markers.partitions, i64::MAX / 2) {
                    let _ = coordinator.apply_written(write, i64::MAX / 2);
                }
            }
        }
        for n in 0..4 {
            let id = format!("id-{n}");
            let _ = coordinator.init_producer_id(&id, TIMEOUT_MS, ProducerId::NONE, ProducerEpoch::NONE, Some(ProducerId(9)), START_MS);
        }
    }
}
