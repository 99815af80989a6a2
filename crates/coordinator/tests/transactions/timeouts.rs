//! What happens with time: transactions past their timeout are aborted with their producer
//! fenced, idle transactional ids expire, `tick` keeps Kafka's intervals; and what
//! DescribeTransactions and ListTransactions show.

use strom_coordinator::transactions::record::{self, TransactionLogRecord};
use strom_coordinator::transactions::{
    TransactionConfig, TransactionDescription, TransactionListing, TransactionState::*,
};
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::*;

const EXPIRATION_MS: i64 = 7 * 24 * 3_600_000;

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    let started = rt.now_ms;

    // Exactly at the timeout nothing happens (Kafka aborts once start + timeout < now).
    rt.now_ms = started + i64::from(TIMEOUT_MS);
    assert!(rt
        .coordinator
        .abort_timed_out_transactions(rt.now_ms)
        .is_empty());
    rt.advance(1);
    let writes = rt.coordinator.abort_timed_out_transactions(rt.now_ms);
    let [write] = <[_; 1]>::try_from(writes).unwrap();
    assert_eq!(write.state(), PrepareAbort);
    // The record is PrepareAbort at the bumped epoch, with the partitions to mark.
    match record::decode(write.key(), write.value()).unwrap() {
        TransactionLogRecord::Value { value, .. } => {
            assert_eq!(value.producer_epoch, ProducerEpoch(1));
            assert_eq!(value.partitions, Some(vec![("a".to_owned(), vec![0])]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.durable(write), None, "nobody waits for a timeout");
    let markers = rt.markers[0].clone();
    assert!(!markers.commit);
    assert_eq!(markers.producer_epoch, ProducerEpoch(1));

    // The producer that let it time out is fenced.
    assert_eq!(rt.end(TXN, producer, true).error, ErrorCode::ProducerFenced);
    assert_eq!(
        rt.add(TXN, producer, &[("a", 0)]),
        ErrorCode::ProducerFenced
    );
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteAbort);
    assert_eq!(
        rt.end(TXN, producer, false).error,
        ErrorCode::ProducerFenced
    );
    // A new producer gets the epoch after the fenced one.
    let new = rt.init(TXN);
    assert_eq!(new.epoch, ProducerEpoch(2));
}

#[test]
fn a_failed_fence_keeps_its_epoch_for_the_next_try() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    rt.advance(i64::from(TIMEOUT_MS) + 1);
    let [write] =
        <[_; 1]>::try_from(rt.coordinator.abort_timed_out_transactions(rt.now_ms)).unwrap();
    let outcome = rt.fail(write, ErrorCode::NotEnoughReplicas);
    assert!(outcome.reply.is_none() && outcome.markers.is_none());
    // Still Ongoing, but the old producer is fenced already (Kafka bumps in memory first).
    let m = rt.metadata(TXN);
    assert_eq!((m.state(), m.pending_state()), (Ongoing, None));
    assert_eq!(m.producer_epoch(), ProducerEpoch(1));
    assert_eq!(
        rt.add(TXN, producer, &[("b", 0)]),
        ErrorCode::ProducerFenced
    );

    // The next try aborts at the same epoch, not a further one.
    rt.advance(10);
    let [write] =
        <[_; 1]>::try_from(rt.coordinator.abort_timed_out_transactions(rt.now_ms)).unwrap();
    assert_eq!(rt.durable(write), None);
    assert_eq!(rt.markers[0].producer_epoch, ProducerEpoch(1));
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteAbort);
    assert_eq!(rt.init(TXN).epoch, ProducerEpoch(2));
}

#[test]
fn a_failed_fence_on_re_init_is_answered_and_retried_at_the_same_epoch() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    let decision = rt.coordinator.init_producer_id(
        TXN,
        TIMEOUT_MS,
        ProducerId::NONE,
        ProducerEpoch::NONE,
        None,
        rt.now_ms,
    );
    let InitDecision::Write(write) = decision else {
        panic!("{decision:?}");
    };
    let outcome = rt.fail(write, ErrorCode::RequestTimedOut);
    assert_eq!(
        outcome.reply,
        Some(Reply::InitProducerId(ProducerReply::error(
            ErrorCode::CoordinatorNotAvailable
        )))
    );
    assert_eq!(
        rt.init_with(TXN, TIMEOUT_MS, None).error,
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(rt.markers[0].producer_epoch, ProducerEpoch(1));
    rt.deliver_markers();
    assert_eq!(rt.init(TXN).epoch, ProducerEpoch(2));
}

#[test]
fn tick_keeps_kafkas_intervals() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(rt.add(TXN, producer, &[("a", 0)]), ErrorCode::None);
    // The first tick scans at once; the next scan for timeouts is 10 s later.
    assert_eq!(rt.tick(), 0);
    rt.advance(i64::from(TIMEOUT_MS) - 5_000);
    assert_eq!(rt.tick(), 0);
    rt.advance(5_001); // past the timeout, but 4.999 s since the last scan
    assert_eq!(rt.tick(), 0);
    assert_eq!(rt.state(TXN), Ongoing);
    rt.advance(5_000);
    assert_eq!(rt.tick(), 1);
    assert_eq!(rt.state(TXN), PrepareAbort);
    rt.deliver_markers();
    assert_eq!(rt.state(TXN), CompleteAbort);

    // Expiration is scanned hourly.
    let idle_since = rt.now_ms;
    rt.now_ms = idle_since + EXPIRATION_MS;
    assert_eq!(
        rt.tick(),
        1,
        "expired, and an hour has passed since the last scan"
    );
    assert!(rt.coordinator.transaction(TXN).is_none());
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let mut rt = Runtime::new(TransactionConfig {
        transactional_id_expiration_ms: EXPIRATION_MS,
        ..config()
    });
    let empty = rt.init("empty");
    let committed = rt.init("committed");
    rt.transaction("committed", committed, &[("a", 0)], true);
    let aborted = rt.init("aborted");
    rt.transaction("aborted", aborted, &[("a", 0)], false);
    let open = rt.init("open");
    assert_eq!(rt.add("open", open, &[("a", 0)]), ErrorCode::None);
    let prepared = rt.init("prepared");
    assert_eq!(rt.add("prepared", prepared, &[("a", 0)]), ErrorCode::None);
    assert_eq!(rt.end("prepared", prepared, true).error, ErrorCode::None);
    let _ = empty;

    let last_update = rt.now_ms;
    rt.now_ms = last_update + EXPIRATION_MS - 1;
    assert!(rt
        .coordinator
        .expire_transactional_ids(rt.now_ms)
        .is_empty());
    rt.now_ms = last_update + EXPIRATION_MS;
    let writes = rt.coordinator.expire_transactional_ids(rt.now_ms);
    let mut expired: Vec<&str> = writes.iter().map(|w| w.transactional_id()).collect();
    expired.sort();
    assert_eq!(expired, ["aborted", "committed", "empty"]);
    for write in &writes {
        assert_eq!(write.value(), None, "a tombstone");
        assert_eq!(write.state(), Dead);
    }
    // Until the tombstones are durable the ids are pending and still described.
    assert_eq!(rt.metadata("empty").pending_state(), Some(Dead));
    assert_eq!(
        rt.init_with("empty", TIMEOUT_MS, None).error,
        ErrorCode::ConcurrentTransactions
    );

    // One tombstone fails: that id stays, to expire on a later scan.
    let mut writes = writes;
    let failed = writes.remove(
        writes
            .iter()
            .position(|w| w.transactional_id() == "empty")
            .unwrap(),
    );
    let outcome = rt.fail(failed, ErrorCode::NotEnoughReplicas);
    assert!(outcome.reply.is_none());
    for write in writes {
        assert_eq!(rt.durable(write), None);
    }
    for id in ["aborted", "committed"] {
        assert!(rt.coordinator.transaction(id).is_none(), "{id}");
        assert_eq!(
            rt.coordinator.describe(&[id.to_owned()])[0].1,
            Err(ErrorCode::TransactionalIdNotFound)
        );
    }
    assert_eq!(rt.metadata("empty").pending_state(), None);
    assert_eq!(rt.state("open"), Ongoing);
    assert_eq!(rt.state("prepared"), PrepareCommit);

    // A reload agrees: tombstones removed them.
    let outcome = rt.restart();
    assert_eq!(outcome.transactional_ids, 3);
    assert!(rt.coordinator.transaction("committed").is_none());
    // An expired id starts over with a new producer id.
    let again = rt.init("committed");
    assert_ne!(again.id, committed.id);
    assert_eq!(again.epoch, ProducerEpoch(0));
}

#[test]
fn describe_shows_what_kafka_shows() {
    let mut rt = Runtime::new(config());
    let producer = rt.init(TXN);
    assert_eq!(
        rt.add(TXN, producer, &[("b", 1), ("a", 2), ("a", 0)]),
        ErrorCode::None
    );
    let started = rt.now_ms;
    let described = rt
        .coordinator
        .describe(&[TXN.to_owned(), "unknown".to_owned(), String::new()]);
    assert_eq!(
        described[0].1,
        Ok(TransactionDescription {
            state: Ongoing,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timeout_ms: TIMEOUT_MS,
            start_timestamp_ms: started,
            topics: vec![("a".to_owned(), vec![0, 2]), ("b".to_owned(), vec![1])],
        })
    );
    assert_eq!(described[1].1, Err(ErrorCode::TransactionalIdNotFound));
    assert_eq!(described[2].1, Err(ErrorCode::InvalidRequest));
    assert_eq!(Ongoing.name(), "Ongoing");
}

#[test]
fn list_filters_by_state_producer_and_duration() {
    let mut rt = Runtime::new(config());
    let a = rt.init("a");
    let b = rt.init("b");
    let _c = rt.init("c");
    assert_eq!(rt.add("a", a, &[("t", 0)]), ErrorCode::None);
    rt.advance(10_000);
    assert_eq!(rt.add("b", b, &[("t", 0)]), ErrorCode::None);
    rt.advance(1_000);

    let listing = |id: &str, p: ProducerId, state| TransactionListing {
        transactional_id: id.to_owned(),
        producer_id: p,
        state,
    };
    let c = rt.metadata("c").producer_id();
    let all = rt.coordinator.list(&[], &[], -1, rt.now_ms).unwrap();
    assert_eq!(
        all.transactions,
        vec![
            listing("a", a.id, Ongoing),
            listing("b", b.id, Ongoing),
            listing("c", c, Empty)
        ]
    );
    assert!(all.unknown_state_filters.is_empty());

    let states = vec!["Empty".to_owned(), "Bogus".to_owned()];
    let empty = rt.coordinator.list(&states, &[], -1, rt.now_ms).unwrap();
    assert_eq!(empty.transactions, vec![listing("c", c, Empty)]);
    assert_eq!(empty.unknown_state_filters, vec!["Bogus".to_owned()]);

    let by_producer = rt.coordinator.list(&[], &[b.id], -1, rt.now_ms).unwrap();
    assert_eq!(by_producer.transactions, vec![listing("b", b.id, Ongoing)]);

    // Open longer than 5 s: only "a" among the Ongoing ones (b started 1 s ago). Kafka keeps
    // ids with no transaction (start -1) in a duration filter too.
    let ongoing = vec!["Ongoing".to_owned()];
    let old = rt
        .coordinator
        .list(&ongoing, &[], 5_000, rt.now_ms)
        .unwrap();
    assert_eq!(old.transactions, vec![listing("a", a.id, Ongoing)]);
    let long = rt.coordinator.list(&[], &[], 5_000, rt.now_ms).unwrap();
    assert_eq!(long.transactions.len(), 2);
    // Exactly the duration is not longer than it.
    let exact = rt
        .coordinator
        .list(&ongoing, &[], 11_000, rt.now_ms)
        .unwrap();
    assert!(exact.transactions.is_empty());
}
