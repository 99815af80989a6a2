//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn, as clients see them:
//! epochs, fencing, what waits for what, and every error Kafka answers.

use strom_coordinator::offsets;
use strom_coordinator::transactions::record::{self, TransactionLogRecord};
use strom_coordinator::transactions::{
    coordinator_error_for_append, error_for_client, marker_outcome, InitDecision, MarkerOutcome,
    ProducerReply, Reply, TransactionConfig, TransactionState::*,
};
use strom_coordinator::OFFSETS_TOPIC;
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::*;

#[test]
fn a_new_transactional_id_needs_a_producer_id_and_starts_at_epoch_zero() {
    let mut rt = Runtime::new(config());
    let first = rt.coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        None,
        rt.now_ms,
    );
    assert!(matches!(first, InitDecision::NeedProducerId));
    assert!(
        rt.coordinator.transaction(TXN).is_none(),
        "nothing kept before the id"
    );

    let producer = rt.init(TXN);
    assert_eq!(producer.epoch, ProducerEpoch(0));
    let m = rt.metadata(TXN);
    assert_eq!((m.state(), m.producer_id()), (Empty, producer.id));
    assert_eq!(m.timeout_ms(), TIMEOUT_MS);

    // The record is Kafka's: the id as key, an Empty value with null partitions.
    let partition = rt.coordinator.partition_for(TXN);
    let (key, value) = rt.log[&partition].last().unwrap().clone();
    match record::decode(&key, value.as_ref()).unwrap() {
        TransactionLogRecord::Value {
            transactional_id,
            value,
        } => {
            assert_eq!(transactional_id, TXN);
            assert_eq!(value.state, Empty);
            assert_eq!(value.producer_id, producer.id);
            assert_eq!(value.producer_epoch, ProducerEpoch(0));
            assert_eq!(value.partitions, None);
            assert_eq!(value.start_timestamp_ms, -1);
            assert_eq!(value.last_update_timestamp_ms, rt.now_ms);
        }
        other => panic!("{other:?}"),
    }
    // Version 1 (the default transaction.version) starts the value.
    assert_eq!(&value.unwrap()[..2], &[0, 1]);
}

#[test]
fn transaction_version_0_writes_version_0_values() {
    let mut rt = Runtime::new(TransactionConfig {
        transaction_version: 0,
        ..config()
    });
    rt.init(TXN);
    let partition = rt.coordinator.partition_for(TXN);
    let (_, value) = rt.log[&partition].last().unwrap();
    assert_eq!(&value.as_ref().unwrap()[..2], &[0, 0]);
}

#[test]
fn a_second_producer_fences_the_first() {
    let mut rt = Runtime::new(config());
    let zombie = rt.init(TXN);
    let producer = rt.init(TXN);
    assert_eq!(producer.id, zombie.id, "same producer id");
    assert_eq!(producer.epoch, ProducerEpoch(1), "next epoch");

    // The zombie is refused everywhere; the new producer goes ahead.
    assert_eq!(rt.add(TXN, zombie, &[("t", 0)]), ErrorCode::ProducerFenced);
    assert_eq!(
        rt.add_offsets(TXN, zombie, "group"),
        ErrorCode::ProducerFenced
    );
    assert_eq!(rt.end(TXN, zombie, true).error, ErrorCode::ProducerFenced);
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, Some(zombie)).error,
        ErrorCode::ProducerFenced
    );
    rt.transaction(TXN, producer, &[("t", 0)], true);

    // Old clients hear INVALID_PRODUCER_EPOCH instead.
    assert_eq!(
        error_for_client(ErrorCode::ProducerFenced, false),
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(
        error_for_client(ErrorCode::ProducerFenced, true),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        error_for_client(ErrorCode::ConcurrentTransactions, false),
        ErrorCode::ConcurrentTransactions
    );
}

#[test]
fn requests_for_unknown_ids_or_producers_are_refused() {
    let mut rt = Runtime::new(config());
    let stranger = Producer {
        id: ProducerId(5),
        epoch: ProducerEpoch(0),
    };
    assert_eq!(
        rt.add(TXN, stranger, &[("t", 0)]),
        ErrorCode::InvalidProducerIdMapping
    );
    assert_eq!(
        rt.end(TXN, stranger, true).error,
        ErrorCode::InvalidProducerIdMapping
    );
    let producer = rt.init(TXN);
    assert_eq!(
        rt.add(TXN, stranger, &[("t", 0)]),
        ErrorCode::InvalidProducerIdMapping
    );
    assert_eq!(
        rt.end(TXN, stranger, false),
        ProducerReply::error(ErrorCode::InvalidProducerIdMapping)
    );

    // The empty transactional id is an invalid request everywhere.
    assert_eq!(
        rt.init_with("", TIMEOUT_MS, None).error,
        ErrorCode::InvalidRequest
    );
    assert_eq!(rt.add("", producer, &[("t", 0)]), ErrorCode::InvalidRequest);
    assert_eq!(rt.end("", producer, true).error, ErrorCode::InvalidRequest);
    // So is one too long for a record, and a producer id without an epoch.
    let long = "x".repeat(40_000);
    assert_eq!(
        rt.init_with(&long, TIMEOUT_MS, None).error,
        ErrorCode::InvalidRequest
    );
    let decision = rt.coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        producer.id,
        ProducerEpoch::NONE,
        None,
        rt.now_ms,
    );
    assert!(matches!(
        decision,
        InitDecision::Reply(ProducerReply {
            error: ErrorCode::InvalidRequest,
            ..
        })
    ));
    // A topic no record could hold never exists.
    assert_eq!(
        rt.add(TXN, producer, &[(&"t".repeat(40_000), 0)]),
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(rt.state(TXN), Empty);
}

#[test]
fn the_transaction_timeout_is_bounded_by_the_broker() {
    let mut rt = Runtime::new(config());
    let max = rt.config.transaction_timeout_ms_max;
    assert_eq!(max, 900_000);
    for timeout in [0, -1, max + 1] {
        assert_eq!(
            rt.init_with(TXN, timeout, None).error,
            ErrorCode::InvalidTransactionTimeout
        );
    }
    assert!(rt.coordinator.transaction(TXN).is_none());
    assert_eq!(rt.init_with(TXN, max, None).error, ErrorCode::None);
    assert_eq!(rt.metadata(TXN).timeout_ms(), max);
}

#[test]
fn a_committed_transaction_end_to_end() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    let started = rt.now_ms;
    assert_eq!(
        rt.add(TXN, producer, &[("a", 0), ("b", 1)]),
        ErrorCode::None
    );
    assert_eq!(rt.state(TXN), Ongoing);
    assert_eq!(rt.metadata(TXN).start_timestamp_ms(), started);

    // Partitions already in the transaction are answered at once, without a record.
    let records = rt.log.values().map(Vec::len).sum::<usize>();
    rt.advance(10);
    let decision =
        rt.coordinator
            .add_partitions(TXN, producer.id, producer.epoch, &[tp("a", 0)], rt.now_ms);
    assert_eq!(expect_reply(decision), ErrorCode::None);
    assert_eq!(rt.log.values().map(Vec::len).sum::<usize>(), records);

    // More partitions and a group's offsets join; the start time stays.
    assert_eq!(rt.add(TXN, producer, &[("c", 2)]), ErrorCode::None);
    assert_eq!(rt.add_offsets(TXN, producer, "group"), ErrorCode::None);
    let offsets_partition = offsets::partition_for("group", OFFSETS_PARTITIONS);
    let m = rt.metadata(TXN);
    assert_eq!(m.start_timestamp_ms(), started);
    assert!(m
        .partitions()
        .contains(&tp(OFFSETS_TOPIC, offsets_partition)));
    assert_eq!(m.partitions().len(), 4);

    // EndTxn is answered once PrepareCommit is durable, and asks for every marker.
    rt.advance(10);
    let reply = rt.end(TXN, producer, true);
    assert_eq!(reply, ProducerReply::ok(producer.id, producer.epoch));
    assert_eq!(rt.state(TXN), PrepareCommit);
    assert_eq!(rt.markers.len(), 1);
    let markers = rt.markers[0].clone();
    assert!(markers.commit);
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (producer.id, producer.epoch)
    );
    assert_eq!(markers.coordinator_epoch, rt.coordinator_epoch);
    assert_eq!(markers.state_partition, rt.coordinator.partition_for(TXN));
    assert_eq!(
        markers.partitions,
        vec![
            tp("__consumer_offsets", offsets_partition),
            tp("a", 0),
            tp("b", 1),
            tp("c", 2)
        ]
    );

    // While the markers are written, everything waits.
    assert_eq!(
        rt.add(TXN, producer, &[("d", 0)]),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.end(TXN, producer, true).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.end(TXN, producer, false).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, Some(producer)).error,
        ErrorCode::ConcurrentTransactions
    );

    // Markers arrive partition by partition; the last one brings the completion record.
    let done = rt
        .coordinator
        .markers_written(&markers, &markers.partitions[..2], rt.now_ms);
    assert!(done.is_none());
    assert_eq!(rt.metadata(TXN).partitions().len(), 2);
    let complete = rt
        .coordinator
        .markers_written(&markers, &markers.partitions[2..], rt.now_ms)
        .expect("the completion record");
    assert_eq!(complete.state(), CompleteCommit);
    assert_eq!(rt.durable(complete), None);
    rt.markers.clear();
    let m = rt.metadata(TXN);
    assert_eq!((m.state(), m.pending_state()), (CompleteCommit, None));
    assert!(m.partitions().is_empty());

    // A retried EndTxn(commit) succeeds without a record; an abort is in the wrong state.
    let records = rt.log.values().map(Vec::len).sum::<usize>();
    assert_eq!(
        rt.end(TXN, producer, true),
        ProducerReply::ok(producer.id, producer.epoch)
    );
    assert_eq!(
        rt.end(TXN, producer, false).error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(rt.log.values().map(Vec::len).sum::<usize>(), records);

    // The next transaction starts afresh with the same epoch.
    rt.advance(100);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    assert_eq!(rt.metadata(TXN).start_timestamp_ms(), rt.now_ms);
    assert_eq!(rt.metadata(TXN).partitions().len(), 1);
}

#[test]
fn an_aborted_transaction_and_ends_in_the_wrong_state() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    // Nothing to end yet.
    assert_eq!(
        rt.end(TXN, producer, true).error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(
        rt.end(TXN, producer, false).error,
        ErrorCode::InvalidTxnState
    );

    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    assert_eq!(rt.end(TXN, producer, false).error, ErrorCode::None);
    assert_eq!(rt.state(TXN), PrepareAbort);
    assert!(!rt.markers[0].commit);
    // A commit of a transaction being aborted is in the wrong state, once nothing is pending.
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteAbort);
    assert_eq!(
        rt.end(TXN, producer, true).error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(rt.end(TXN, producer, false).error, ErrorCode::None);

    // The producer may start again at once, or re-init.
    rt.transaction(TXN, producer, &[("a", 0)], true);
    let again = rt.init(TXN);
    assert_eq!(again.epoch, ProducerEpoch(1));
    assert_eq!(rt.state(TXN), Empty);
}

#[test]
fn a_write_in_flight_makes_other_requests_wait() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    let write = expect_write(rt.coordinator.add_partitions(
        TXN,
        producer.id,
        producer.epoch,
        &[tp("a", 0)],
        rt.now_ms,
    ));
    assert_eq!(write.state(), Ongoing);
    assert_eq!(rt.state(TXN), Empty, "not applied before it is durable");
    assert_eq!(rt.metadata(TXN).pending_state(), Some(Ongoing));
    assert_eq!(
        rt.add(TXN, producer, &[("b", 0)]),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.end(TXN, producer, true).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, None).error,
        ErrorCode::ConcurrentTransactions
    );
    // Nothing times out or expires under a pending write.
    rt.advance(rt.config.transactional_id_expiration_ms + 1);
    assert_eq!(rt.coordinator.expire_transactional_ids(rt.now_ms).len(), 0);

    assert_eq!(
        rt.durable(write),
        Some(Reply::AddPartitions(ErrorCode::None))
    );
    assert_eq!(rt.state(TXN), Ongoing);
}

#[test]
fn a_failed_write_changes_nothing_and_maps_the_error() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    let cases = [
        (
            ErrorCode::NotEnoughReplicas,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (
            ErrorCode::RequestTimedOut,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (ErrorCode::NotLeaderOrFollower, ErrorCode::NotCoordinator),
        (ErrorCode::KafkaStorageError, ErrorCode::NotCoordinator),
        (ErrorCode::MessageTooLarge, ErrorCode::UnknownServerError),
        (ErrorCode::InvalidRequest, ErrorCode::InvalidRequest),
    ];
    for (append, answered) in cases {
        assert_eq!(coordinator_error_for_append(append), answered);
        let write = expect_write(rt.coordinator.add_partitions(
            TXN,
            producer.id,
            producer.epoch,
            &[tp("a", 0)],
            rt.now_ms,
        ));
        let outcome = rt.fail(write, append);
        assert_eq!(outcome.reply, Some(Reply::AddPartitions(answered)));
        let m = rt.metadata(TXN);
        assert_eq!((m.state(), m.pending_state()), (Empty, None));
        assert!(m.partitions().is_empty());
    }
    // A failed EndTxn leaves the transaction open, to be ended again.
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    let write =
        expect_write(
            rt.coordinator
                .end_txn(TXN, producer.id, producer.epoch, true, rt.now_ms),
        );
    let outcome = rt.fail(write, ErrorCode::NotEnoughReplicas);
    assert_eq!(
        outcome.reply,
        Some(Reply::EndTxn(ProducerReply::error(
            ErrorCode::CoordinatorNotAvailable
        )))
    );
    assert!(outcome.markers.is_none());
    assert_eq!(rt.state(TXN), Ongoing);
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    // A failed InitProducerId for a new id leaves the id without an epoch, as in Kafka.
    let write = match rt.coordinator.init_producer_id(
        "other",
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        Some(ProducerId(77)),
        rt.now_ms,
    ) {
        InitDecision::Write(write) => write,
        other => panic!("{other:?}"),
    };
    let outcome = rt.fail(write, ErrorCode::NotLeaderOrFollower);
    assert_eq!(
        outcome.reply,
        Some(Reply::InitProducerId(ProducerReply::error(
            ErrorCode::NotCoordinator
        )))
    );
    assert_eq!(rt.metadata("other").producer_epoch(), ProducerEpoch::NONE);
    // A client guessing that id, with no epoch, opens nothing.
    let guess = Producer {
        id: ProducerId(77),
        epoch: ProducerEpoch::NONE,
    };
    assert_eq!(
        rt.add("other", guess, &[("a", 0)]),
        ErrorCode::InvalidProducerIdMapping
    );
    assert_eq!(
        rt.end("other", guess, true).error,
        ErrorCode::InvalidTxnState
    );
    // Its retry uses the id already chosen, without asking for another.
    let producer = rt.init("other");
    assert_eq!(
        (producer.id, producer.epoch),
        (ProducerId(77), ProducerEpoch(0))
    );
}

#[test]
fn a_completion_that_cannot_be_written_is_retried() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    let markers = rt.markers.pop().unwrap();
    let complete = rt
        .coordinator
        .markers_written(&markers, &markers.partitions, rt.now_ms)
        .unwrap();
    let outcome = rt.fail(complete, ErrorCode::NotEnoughReplicas);
    assert!(outcome.reply.is_none());
    let again = outcome.write.expect("written again");
    assert_eq!(rt.metadata(TXN).pending_state(), Some(CompleteCommit));
    assert_eq!(rt.durable(again), None);
    assert_eq!(rt.state(TXN), CompleteCommit);
    // A second report of the same markers is ignored.
    assert!(rt
        .coordinator
        .markers_written(&markers, &markers.partitions, rt.now_ms)
        .is_none());
}

#[test]
fn re_init_during_an_ongoing_transaction_aborts_it_first() {
    let mut rt = Runtime::new(config());
    let old = rt.init(TXN);
    assert_eq!(rt.add(TXN, old, &[("a", 0), ("b", 0)]), ErrorCode::None);

    // The new producer's InitProducerId writes PrepareAbort at a bumped epoch and is told to
    // retry; the bumped epoch is never handed out.
    rt.advance(5);
    let write = match rt.coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        None,
        rt.now_ms,
    ) {
        InitDecision::Write(write) => write,
        other => panic!("{other:?}"),
    };
    assert_eq!(write.state(), PrepareAbort);
    // The old producer is fenced as soon as the abort is prepared.
    assert_eq!(rt.metadata(TXN).producer_epoch(), ProducerEpoch(1));
    assert_eq!(rt.add(TXN, old, &[("c", 0)]), ErrorCode::ProducerFenced);
    assert_eq!(
        rt.durable(write),
        Some(Reply::InitProducerId(ProducerReply::error(
            ErrorCode::ConcurrentTransactions
        )))
    );
    let markers = rt.markers[0].clone();
    assert!(!markers.commit);
    assert_eq!(markers.producer_epoch, ProducerEpoch(1));
    assert_eq!(markers.partitions, vec![tp("a", 0), tp("b", 0)]);

    // Retries wait for the abort, then get the epoch after the fenced one.
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, None).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(rt.end(TXN, old, true).error, ErrorCode::ProducerFenced);
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteAbort);
    let new = rt.init(TXN);
    assert_eq!((new.id, new.epoch), (old.id, ProducerEpoch(2)));
    assert_eq!(rt.state(TXN), Empty);
    rt.transaction(TXN, new, &[("a", 0)], true);
}

#[test]
fn kip_360_a_producer_recovers_with_its_own_epoch() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    rt.transaction(TXN, producer, &[("a", 0)], false);

    // The producer names its id and epoch: it gets the next epoch.
    let bumped = Producer::from_reply(rt.init_with(TXN, TIMEOUT_MS, Some(producer)));
    assert_eq!((bumped.id, bumped.epoch), (producer.id, ProducerEpoch(1)));
    assert_eq!(rt.metadata(TXN).last_producer_epoch(), ProducerEpoch(0));
    // Its retry (the answer was lost) names the old epoch and gets the same answer.
    let retried = Producer::from_reply(rt.init_with(TXN, TIMEOUT_MS, Some(producer)));
    assert_eq!(retried, bumped);
    // An epoch that is neither is a zombie.
    let zombie = Producer {
        id: producer.id,
        epoch: ProducerEpoch(7),
    };
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, Some(zombie)).error,
        ErrorCode::ProducerFenced
    );
    // So is another producer id.
    let other = Producer {
        id: ProducerId(1),
        epoch: ProducerEpoch(1),
    };
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, Some(other)).error,
        ErrorCode::ProducerFenced
    );
    // A new producer (no epoch named) forgets the last epoch.
    let fresh = rt.init(TXN);
    assert_eq!(fresh.epoch, ProducerEpoch(2));
    assert_eq!(rt.metadata(TXN).last_producer_epoch(), ProducerEpoch::NONE);
}

#[test]
fn a_recovering_producer_of_an_unknown_id_gets_a_new_one() {
    // KIP-360: a producer whose id the coordinator no longer has (expired) names its old id
    // and epoch; the new metadata has no epoch yet, so it is accepted.
    let mut rt = Runtime::new(config());
    let old = Producer {
        id: ProducerId(3),
        epoch: ProducerEpoch(9),
    };
    let reply = rt.init_with(TXN, TIMEOUT_MS, Some(old));
    let producer = Producer::from_reply(reply);
    assert_ne!(producer.id, old.id);
    assert_eq!(producer.epoch, ProducerEpoch(0));
}

/// Loads `TXN` as a coordinator left it: Empty at `epoch` of producer id 500.
fn runtime_at_epoch(epoch: i16) -> Runtime {
    let mut rt = Runtime::new(config());
    let value = record::TransactionLogValue {
        producer_id: ProducerId(500),
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch: ProducerEpoch(epoch),
        transaction_timeout_ms: TIMEOUT_MS,
        state: CompleteCommit,
        partitions: Some(Vec::new()),
        last_update_timestamp_ms: START_MS,
        start_timestamp_ms: START_MS - 10,
        client_transaction_version: 0,
    };
    let partition = rt.coordinator.partition_for(TXN);
    rt.log.entry(partition).or_default().push((
        record::try_encode_key(TXN).unwrap(),
        Some(record::try_encode_value(&value, 1).unwrap()),
    ));
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, 1);
    rt
}

#[test]
fn epoch_exhaustion_rotates_the_producer_id() {
    let mut rt = runtime_at_epoch(i16::MAX - 2);
    let last = rt.init(TXN);
    assert_eq!(
        (last.id, last.epoch),
        (ProducerId(500), ProducerEpoch(i16::MAX - 1))
    );
    assert!(rt.metadata(TXN).is_producer_epoch_exhausted());

    // The next InitProducerId needs a new producer id, at epoch 0.
    let decision = rt
        .coordinator
        .init_producer_id(TXN, TIMEOUT_MS, last.id, last.epoch, None, rt.now_ms);
    assert!(matches!(decision, InitDecision::NeedProducerId));
    assert_eq!(
        rt.metadata(TXN).pending_state(),
        None,
        "nothing prepared yet"
    );
    let rotated = Producer::from_reply(rt.init_with(TXN, TIMEOUT_MS, Some(last)));
    assert_ne!(rotated.id, last.id);
    assert_eq!(rotated.epoch, ProducerEpoch(0));
    let m = rt.metadata(TXN);
    assert_eq!(m.previous_producer_id(), ProducerId(500));
    assert_eq!(m.last_producer_epoch(), last.epoch);

    // A retry with the old id and its exhausted epoch gets the same answer (KIP-360).
    let retried = Producer::from_reply(rt.init_with(TXN, TIMEOUT_MS, Some(last)));
    assert_eq!(retried, rotated);
    rt.transaction(TXN, rotated, &[("a", 0)], true);
}

#[test]
fn a_rotation_survives_a_coordinator_move_but_its_retry_does_not() {
    let mut rt = runtime_at_epoch(i16::MAX - 1);
    let last = Producer {
        id: ProducerId(500),
        epoch: ProducerEpoch(i16::MAX - 1),
    };
    let rotated = Producer::from_reply(rt.init_with(TXN, TIMEOUT_MS, Some(last)));
    assert_eq!(rotated.epoch, ProducerEpoch(0));
    // Value version 1 keeps the previous producer id; the last epoch is not stored, so (as in
    // Kafka) a retry that spans the move is fenced and the producer starts over.
    let _ = rt.restart();
    let m = rt.metadata(TXN);
    assert_eq!(m.previous_producer_id(), ProducerId(500));
    assert_eq!(m.last_producer_epoch(), ProducerEpoch::NONE);
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, Some(last)).error,
        ErrorCode::ProducerFenced
    );
    let again = rt.init(TXN);
    assert_eq!((again.id, again.epoch), (rotated.id, ProducerEpoch(1)));
}

#[test]
fn a_new_producer_rotates_an_exhausted_id_without_keeping_the_last_epoch() {
    let mut rt = runtime_at_epoch(i16::MAX - 1);
    let producer = rt.init(TXN);
    assert_eq!(producer.epoch, ProducerEpoch(0));
    assert_ne!(producer.id, ProducerId(500));
    assert_eq!(rt.metadata(TXN).last_producer_epoch(), ProducerEpoch::NONE);
}

#[test]
fn fencing_at_the_last_usable_epoch_leads_to_a_rotation() {
    // The producer holds the last epoch handed out; a new producer fences it (the abort uses
    // i16::MAX, never given to a client), and its retry gets a new producer id.
    let mut rt = runtime_at_epoch(i16::MAX - 2);
    let old = rt.init(TXN);
    assert_eq!(old.epoch, ProducerEpoch(i16::MAX - 1));
    assert_eq!(rt.add(TXN, old, &[("a", 0)]), ErrorCode::None);
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, None).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(rt.markers[0].producer_epoch, ProducerEpoch(i16::MAX));
    rt.deliver_markers();
    // Nobody was given the fence's epoch; a client claiming it opens nothing.
    let claimed = Producer {
        id: old.id,
        epoch: ProducerEpoch(i16::MAX),
    };
    assert_eq!(rt.add(TXN, claimed, &[("a", 0)]), ErrorCode::ProducerFenced);
    let new = rt.init(TXN);
    assert_eq!(new.epoch, ProducerEpoch(0));
    assert_ne!(new.id, old.id);
}

#[test]
fn verify_only_answers_per_partition_and_writes_nothing() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    let records = rt.log.values().map(Vec::len).sum::<usize>();
    let asked = [tp("a", 0), tp("a", 1)];
    let verify = |rt: &mut Runtime, producer: Producer| {
        rt.coordinator
            .verify_partitions(TXN, producer.id, producer.epoch, &asked)
    };
    assert_eq!(
        verify(&mut rt, producer),
        vec![
            (tp("a", 0), ErrorCode::None),
            (tp("a", 1), ErrorCode::TransactionAbortable)
        ]
    );
    let all = |error| vec![(tp("a", 0), error), (tp("a", 1), error)];
    let stale = Producer {
        epoch: ProducerEpoch(9),
        ..producer
    };
    assert_eq!(verify(&mut rt, stale), all(ErrorCode::ProducerFenced));
    let stranger = Producer {
        id: ProducerId(1),
        ..producer
    };
    assert_eq!(
        verify(&mut rt, stranger),
        all(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        rt.coordinator
            .verify_partitions("", producer.id, producer.epoch, &asked),
        all(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        rt.coordinator
            .verify_partitions("nobody", producer.id, producer.epoch, &asked),
        all(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(rt.log.values().map(Vec::len).sum::<usize>(), records);
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    assert_eq!(
        verify(&mut rt, producer),
        all(ErrorCode::ConcurrentTransactions)
    );
}

#[test]
fn marker_errors_mean_what_kafka_says() {
    let cases = [
        (ErrorCode::None, MarkerOutcome::Written),
        (
            ErrorCode::UnsupportedForMessageFormat,
            MarkerOutcome::Written,
        ),
        (ErrorCode::UnsupportedVersion, MarkerOutcome::Written),
        (ErrorCode::NotLeaderOrFollower, MarkerOutcome::Retry),
        (ErrorCode::UnknownTopicOrPartition, MarkerOutcome::Retry),
        (ErrorCode::NotEnoughReplicas, MarkerOutcome::Retry),
        (
            ErrorCode::NotEnoughReplicasAfterAppend,
            MarkerOutcome::Retry,
        ),
        (ErrorCode::RequestTimedOut, MarkerOutcome::Retry),
        (ErrorCode::KafkaStorageError, MarkerOutcome::Retry),
        (ErrorCode::NetworkException, MarkerOutcome::Retry),
        (ErrorCode::BrokerNotAvailable, MarkerOutcome::Retry),
        (ErrorCode::LeaderNotAvailable, MarkerOutcome::Retry),
        (ErrorCode::InvalidProducerEpoch, MarkerOutcome::Cancel),
        (
            ErrorCode::TransactionCoordinatorFenced,
            MarkerOutcome::Cancel,
        ),
        (ErrorCode::CorruptMessage, MarkerOutcome::Unexpected),
        (ErrorCode::InvalidRequiredAcks, MarkerOutcome::Unexpected),
    ];
    for (error, outcome) in cases {
        assert_eq!(marker_outcome(error), outcome, "{error}");
    }
}

#[test]
fn a_transaction_with_no_partitions_completes_without_markers() {
    // AddPartitionsToTxn with no partitions opens a transaction with none (Kafka allows it);
    // ending it needs no marker.
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[]), ErrorCode::None);
    assert_eq!(rt.state(TXN), Ongoing);
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::None);
    assert!(rt.markers.is_empty());
    assert_eq!(rt.state(TXN), CompleteCommit);
}
