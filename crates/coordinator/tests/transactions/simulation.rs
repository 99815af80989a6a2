//! Random runs of producers, zombies, timeouts, failed writes and coordinator crashes against
//! the real coordinator; proptest's seed reproduces a run and shrinks it. Checked throughout:
//! - nothing panics;
//! - a zombie (a producer an InitProducerId has replaced) never has a request accepted;
//! - the epochs InitProducerId hands out for a producer id only grow, and a new producer id
//!   starts at epoch 0;
//! - a coordinator loaded from what was durable describes every id as the old one did (the
//!   epoch may be lower: a fence whose write failed bumps it in memory only; an id whose
//!   first InitProducerId failed is not there at all);
//! - in the end, with time, every transaction finishes: none is left open or prepared.

use std::collections::HashMap;

use proptest::prelude::*;
use strom_coordinator::transactions::{ProducerReply, TransactionState::*};
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::*;

const IDS: [&str; 3] = ["one", "two", "three"];

#[derive(Debug, Clone)]
enum Op {
    Init {
        id: usize,
        recover: bool,
    },
    Add {
        id: usize,
        partition: i32,
        zombie: bool,
    },
    AddOffsets {
        id: usize,
    },
    End {
        id: usize,
        commit: bool,
        zombie: bool,
    },
    Advance {
        ms: i64,
    },
    Tick,
    DeliverMarkers,
    FailNextWrites {
        count: u32,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS.len();
    prop_oneof![
        3 => (id.clone(), any::<bool>()).prop_map(|(id, recover)| Op::Init { id, recover }),
        4 => (id.clone(), 0..4i32, prop::bool::weighted(0.2))
            .prop_map(|(id, partition, zombie)| Op::Add { id, partition, zombie }),
        1 => id.clone().prop_map(|id| Op::AddOffsets { id }),
        3 => (id, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(id, commit, zombie)| Op::End { id, commit, zombie }),
        2 => prop_oneof![Just(1_000i64), Just(i64::from(TIMEOUT_MS) / 2), Just(3_600_000)]
            .prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Tick),
        3 => Just(Op::DeliverMarkers),
        1 => (1..3u32).prop_map(|count| Op::FailNextWrites { count }),
        1 => Just(Op::Restart),
    ]
}

/// What the clients hold: every producer InitProducerId handed out, per transactional id.
#[derive(Default)]
struct Clients {
    handed: HashMap<&'static str, Vec<Producer>>,
}

impl Clients {
    fn latest(&self, id: &str) -> Option<Producer> {
        self.handed.get(id).and_then(|all| all.last().copied())
    }

    /// A producer replaced by a later InitProducerId, if there is one.
    fn zombie(&self, id: &str) -> Option<Producer> {
        let all = self.handed.get(id)?;
        let latest = all.last()?;
        all.iter().find(|p| *p != latest).copied()
    }

    fn handed_out(&mut self, id: &'static str, producer: Producer) {
        let all = self.handed.entry(id).or_default();
        match all.iter().rev().find(|p| p.id == producer.id) {
            Some(earlier) => assert!(
                producer.epoch > earlier.epoch,
                "{id}: epoch {} handed out after {}",
                producer.epoch,
                earlier.epoch
            ),
            None => assert_eq!(producer.epoch, ProducerEpoch(0), "{id}: a new producer id"),
        }
        all.push(producer);
    }
}

fn step(rt: &mut Runtime, clients: &mut Clients, op: &Op) {
    match *op {
        Op::Init { id, recover } => {
            let expected = if recover {
                clients.latest(IDS[id])
            } else {
                None
            };
            let reply = rt.init_with(IDS[id], TIMEOUT_MS, expected);
            if reply.error == ErrorCode::None {
                clients.handed_out(IDS[id], Producer::from_reply(reply));
            }
        }
        Op::Add {
            id,
            partition,
            zombie,
        } => {
            let producer = pick(clients, IDS[id], zombie);
            let error = rt.add(IDS[id], producer.0, &[("topic", partition)]);
            assert!(
                !producer.1 || error != ErrorCode::None,
                "zombie added: {op:?}"
            );
        }
        Op::AddOffsets { id } => {
            let (producer, _) = pick(clients, IDS[id], false);
            let _ = rt.add_offsets(IDS[id], producer, "group");
        }
        Op::End { id, commit, zombie } => {
            let producer = pick(clients, IDS[id], zombie);
            let reply = rt.end(IDS[id], producer.0, commit);
            assert!(
                !producer.1 || reply.error != ErrorCode::None,
                "zombie ended: {op:?}"
            );
        }
        Op::Advance { ms } => rt.advance(ms),
        Op::Tick => {
            let _ = rt.tick();
        }
        Op::DeliverMarkers => rt.deliver_markers(),
        Op::FailNextWrites { count } => rt.failing_writes = count,
        Op::Restart => restart_and_compare(rt),
    }
}

/// The producer to use: the latest handed out, or a zombie; and whether it is a zombie.
fn pick(clients: &Clients, id: &str, zombie: bool) -> (Producer, bool) {
    let stranger = Producer {
        id: ProducerId(1),
        epoch: ProducerEpoch(0),
    };
    match (zombie, clients.zombie(id), clients.latest(id)) {
        (true, Some(z), _) => (z, true),
        (_, _, Some(latest)) => (latest, false),
        _ => (stranger, false),
    }
}

fn restart_and_compare(rt: &mut Runtime) {
    let ids: Vec<String> = IDS.iter().map(|id| id.to_string()).collect();
    let before = rt.coordinator.describe(&ids);
    let outcome = rt.restart();
    let after = rt.coordinator.describe(&ids);
    for ((id, was), (_, is)) in before.iter().zip(&after) {
        match (was, is) {
            (Ok(was), Ok(is)) => {
                assert_eq!(
                    (
                        was.state,
                        was.producer_id,
                        &was.topics,
                        was.start_timestamp_ms
                    ),
                    (is.state, is.producer_id, &is.topics, is.start_timestamp_ms),
                    "{id}"
                );
                assert!(is.producer_epoch <= was.producer_epoch, "{id}");
            }
            // An id whose first InitProducerId was never written lives in memory only, at
            // no epoch, as in Kafka.
            (Ok(was), Err(ErrorCode::TransactionalIdNotFound))
                if was.producer_epoch == ProducerEpoch::NONE => {}
            (was, is) => assert_eq!(was, is, "{id}"),
        }
    }
    rt.markers.extend(outcome.markers);
    for write in outcome.writes {
        assert_eq!(rt.durable(write), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut rt = Runtime::new(config());
        let mut clients = Clients::default();
        for op in &ops {
            step(&mut rt, &mut clients, op);
        }
        // With writes working again and time passing, everything finishes.
        rt.failing_writes = 0;
        for _ in 0..3 {
            rt.deliver_markers();
            rt.advance(i64::from(TIMEOUT_MS) + 10_001);
            let _ = rt.tick();
            rt.deliver_markers();
        }
        for id in IDS {
            if let Some(m) = rt.coordinator.transaction(id) {
                prop_assert!(
                    matches!(m.state(), Empty | CompleteCommit | CompleteAbort),
                    "{} left {:?}", id, m.state()
                );
                prop_assert_eq!(m.pending_state(), None);
            }
        }
        // And a new producer can always start over.
        for id in IDS {
            let reply: ProducerReply = rt.init_with(id, TIMEOUT_MS, None);
            prop_assert_eq!(reply.error, ErrorCode::None, "{}", id);
        }
    }
}
