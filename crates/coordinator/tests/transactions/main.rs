//! The transaction coordinator driven the way a broker's runtime drives it: a fake clock, an
//! in-memory `__transaction_state` that keeps every record made durable (so any test can
//! crash the coordinator and load a new one from it), producer ids from a counter, and
//! transaction markers that are "written" when the test says so.

mod flows;
mod load;
mod simulation;
mod timeouts;

use std::collections::BTreeMap;

use bytes::Bytes;
use strom_coordinator::transactions::{
    Decision, InitDecision, LoadOutcome, MarkerRequest, PendingWrite, ProducerReply, Reply,
    TransactionConfig, TransactionCoordinator, TransactionMetadata, TransactionState, WriteOutcome,
};
use strom_types::{CoordinatorEpoch, ErrorCode, PartitionIndex, ProducerEpoch, ProducerId};

pub const TXN: &str = "txn";
pub const TIMEOUT_MS: i32 = 60_000;
pub const START_MS: i64 = 1_700_000_000_000;
/// Few partitions, so the tests can load them all.
pub const STATE_PARTITIONS: i32 = 3;
pub const OFFSETS_PARTITIONS: i32 = 50;

pub fn config() -> TransactionConfig {
    TransactionConfig {
        state_log_partitions: STATE_PARTITIONS,
        ..TransactionConfig::default()
    }
}

pub fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_owned(), partition)
}

/// A producer as a client holds it after InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: ProducerId,
    pub epoch: ProducerEpoch,
}

impl Producer {
    pub fn from_reply(reply: ProducerReply) -> Producer {
        assert_eq!(reply.error, ErrorCode::None, "{reply:?}");
        Producer {
            id: reply.producer_id,
            epoch: reply.producer_epoch,
        }
    }
}

/// The broker's side: clock, durable log, producer id allocation, markers in flight.
pub struct Runtime {
    pub coordinator: TransactionCoordinator,
    pub config: TransactionConfig,
    pub now_ms: i64,
    /// Every record made durable, by `__transaction_state` partition, oldest first.
    pub log: BTreeMap<PartitionIndex, Vec<(Bytes, Option<Bytes>)>>,
    pub coordinator_epoch: CoordinatorEpoch,
    next_producer_id: i64,
    /// Markers the coordinator asked for and the test has not yet delivered.
    pub markers: Vec<MarkerRequest>,
    /// How many of the next writes fail (NOT_ENOUGH_REPLICAS) instead of becoming durable.
    pub failing_writes: u32,
}

impl Runtime {
    /// A coordinator leading every partition of `__transaction_state`, all empty.
    pub fn new(config: TransactionConfig) -> Runtime {
        let mut runtime = Runtime {
            coordinator: TransactionCoordinator::new(config),
            config,
            now_ms: START_MS,
            log: BTreeMap::new(),
            coordinator_epoch: CoordinatorEpoch(0),
            next_producer_id: 1000,
            markers: Vec::new(),
            failing_writes: 0,
        };
        for partition in 0..config.state_log_partitions {
            let outcome = runtime.coordinator.load(
                PartitionIndex(partition),
                runtime.coordinator_epoch,
                Vec::new(),
                runtime.now_ms,
            );
            assert_eq!(outcome.transactional_ids, 0);
        }
        runtime
    }

    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
    }

    pub fn allocate_producer_id(&mut self) -> ProducerId {
        self.next_producer_id += 1;
        ProducerId(self.next_producer_id)
    }

    pub fn metadata(&self, transactional_id: &str) -> &TransactionMetadata {
        self.coordinator
            .transaction(transactional_id)
            .unwrap_or_else(|| panic!("no metadata for {transactional_id}"))
    }

    pub fn state(&self, transactional_id: &str) -> TransactionState {
        self.metadata(transactional_id).state()
    }

    /// The coordinator crashes; a new one, at the next coordinator epoch, loads every
    /// partition from what was durable. Markers in flight are lost with the old one.
    pub fn restart(&mut self) -> LoadOutcome {
        self.coordinator = TransactionCoordinator::new(self.config);
        self.coordinator_epoch = CoordinatorEpoch(self.coordinator_epoch.0 + 1);
        self.markers.clear();
        let mut total = LoadOutcome::default();
        for partition in 0..self.config.state_log_partitions {
            let partition = PartitionIndex(partition);
            let records = self.log.get(&partition).cloned().unwrap_or_default();
            let outcome =
                self.coordinator
                    .load(partition, self.coordinator_epoch, records, self.now_ms);
            total.transactional_ids += outcome.transactional_ids;
            total.markers.extend(outcome.markers);
            total.writes.extend(outcome.writes);
            total.skipped.extend(outcome.skipped);
        }
        total
    }

    /// Makes a write durable and hands it back; markers go in flight, a follow-up write is
    /// made durable too. Returns the reply, if any.
    pub fn durable(&mut self, write: PendingWrite) -> Option<Reply> {
        if self.failing_writes > 0 {
            self.failing_writes -= 1;
            let outcome = self.fail(write, ErrorCode::NotEnoughReplicas);
            return self.settle(outcome);
        }
        self.log
            .entry(write.partition())
            .or_default()
            .push((write.key().clone(), write.value().cloned()));
        let outcome = self.coordinator.apply_written(write, self.now_ms);
        self.settle(outcome)
    }

    /// Follows up an outcome: markers go in flight, a next write is made durable.
    pub fn settle(&mut self, outcome: WriteOutcome) -> Option<Reply> {
        self.markers.extend(outcome.markers);
        if let Some(next) = outcome.write {
            assert_eq!(self.durable(next), None, "a follow-up write answers nobody");
        }
        outcome.reply
    }

    /// The append fails with `error`.
    pub fn fail(&mut self, write: PendingWrite, error: ErrorCode) -> WriteOutcome {
        self.coordinator.write_failed(write, error)
    }

    /// InitProducerId as far as it goes: allocating a producer id when asked, writing the
    /// record. Returns the reply.
    pub fn init_with(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<Producer>,
    ) -> ProducerReply {
        let (id, epoch) =
            expected.map_or((ProducerId::NONE, ProducerEpoch::NONE), |p| (p.id, p.epoch));
        let mut fresh = None;
        loop {
            let decision = self.coordinator.init_producer_id(
                transactional_id,
                timeout_ms,
                id,
                epoch,
                fresh,
                self.now_ms,
            );
            match decision {
                InitDecision::Reply(reply) => return reply,
                InitDecision::NeedProducerId => {
                    assert!(fresh.is_none(), "asked for a producer id twice");
                    fresh = Some(self.allocate_producer_id());
                }
                InitDecision::Write(write) => match self.durable(write) {
                    Some(Reply::InitProducerId(reply)) => return reply,
                    other => panic!("InitProducerId answered {other:?}"),
                },
            }
        }
    }

    /// A new producer: InitProducerId with no id or epoch, which must succeed.
    pub fn init(&mut self, transactional_id: &str) -> Producer {
        Producer::from_reply(self.init_with(transactional_id, TIMEOUT_MS, None))
    }

    /// AddPartitionsToTxn, its write made durable if there is one.
    pub fn add(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        partitions: &[(&str, i32)],
    ) -> ErrorCode {
        let partitions: Vec<_> = partitions.iter().map(|(t, p)| tp(t, *p)).collect();
        let decision = self.coordinator.add_partitions(
            transactional_id,
            producer.id,
            producer.epoch,
            &partitions,
            self.now_ms,
        );
        self.answer_add(decision)
    }

    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        group: &str,
    ) -> ErrorCode {
        let decision = self.coordinator.add_offsets(
            transactional_id,
            producer.id,
            producer.epoch,
            group,
            OFFSETS_PARTITIONS,
            self.now_ms,
        );
        self.answer_add(decision)
    }

    fn answer_add(&mut self, decision: Decision<ErrorCode>) -> ErrorCode {
        match decision {
            Decision::Reply(error) => error,
            Decision::Write(write) => match self.durable(write) {
                Some(Reply::AddPartitions(error)) => error,
                other => panic!("AddPartitionsToTxn answered {other:?}"),
            },
        }
    }

    /// EndTxn, its prepare record made durable if there is one; the markers stay in flight.
    pub fn end(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        commit: bool,
    ) -> ProducerReply {
        let decision = self.coordinator.end_txn(
            transactional_id,
            producer.id,
            producer.epoch,
            commit,
            self.now_ms,
        );
        match decision {
            Decision::Reply(reply) => reply,
            Decision::Write(write) => match self.durable(write) {
                Some(Reply::EndTxn(reply)) => reply,
                other => panic!("EndTxn answered {other:?}"),
            },
        }
    }

    /// Every marker in flight is written; completion records are made durable.
    pub fn deliver_markers(&mut self) {
        for markers in std::mem::take(&mut self.markers) {
            let done = self
                .coordinator
                .markers_written(&markers, &markers.partitions, self.now_ms);
            if let Some(write) = done {
                assert_eq!(self.durable(write), None);
            }
        }
    }

    /// Ticks, making every write durable. Returns how many writes there were.
    pub fn tick(&mut self) -> usize {
        let writes = self.coordinator.tick(self.now_ms);
        let count = writes.len();
        for write in writes {
            assert_eq!(self.durable(write), None);
        }
        count
    }

    /// A whole committed (or aborted) transaction over `partitions`.
    pub fn transaction(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        partitions: &[(&str, i32)],
        commit: bool,
    ) {
        assert_eq!(
            self.add(transactional_id, producer, partitions),
            ErrorCode::None
        );
        assert_eq!(
            self.end(transactional_id, producer, commit).error,
            ErrorCode::None
        );
        self.deliver_markers();
        let done = if commit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        assert_eq!(self.state(transactional_id), done);
    }
}

/// The write a decision must be.
pub fn expect_write<R: std::fmt::Debug>(decision: Decision<R>) -> PendingWrite {
    match decision {
        Decision::Write(write) => write,
        Decision::Reply(reply) => panic!("expected a write, got {reply:?}"),
    }
}

/// The reply a decision must be.
pub fn expect_reply<R>(decision: Decision<R>) -> R {
    match decision {
        Decision::Reply(reply) => reply,
        Decision::Write(write) => panic!("expected a reply, got a write of {:?}", write.state()),
    }
}
