//! What a producer lane is to the broker, after Kafka's producer settings: no producer at all
//! (producer id -1, as the bench's plain loads send), an idempotent producer
//! (`enable.idempotence`), or a transactional one (`transactional.id`), and the state each needs
//! while the lane runs.
//!
//! An idempotent lane gets a producer id at start (InitProducerId, before the clock starts) and
//! numbers its batches per partition; a transactional lane also has a transactional id of its
//! own (`strom-bench-<pid>-<lane>`), found a coordinator and fenced any earlier producer of that
//! id at start, and groups its records into transactions of `--transaction-records`: before the
//! first batch of a transaction to a partition it adds the partitions it is about to write
//! (AddPartitionsToTxn), and once the transaction's records are all answered it commits
//! (EndTxn). The protocol itself is `strom_client::transactions`; this module decides when.
//!
//! Kafka's rules for idempotent producers hold here too: acks=all, and at most 5 requests in
//! flight per connection (a broker remembers a producer's last 5 batches per partition to spot
//! a retried one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::TransactionalId;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use strom_client::{
    init_producer_id, next_sequence, Acks, Connection, ProducerIdentity, SecurityConfig,
    TransactionalProducer,
};
use strom_types::PartitionIndex;

use crate::batch::ProducerFields;
use crate::cluster;
use crate::error::BenchError;

/// Requests in flight per connection an idempotent producer may have (Kafka's
/// `max.in.flight.requests.per.connection` bound with `enable.idempotence`).
pub const IDEMPOTENT_IN_FLIGHT_MAX: usize = 5;
/// The `transaction.timeout.ms` a transactional lane asks for (Kafka's producer default).
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// Idempotent and transactional producers (Kafka's `enable.idempotence`, `transactional.id`).
#[derive(clap::Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Produce as an idempotent producer (enable.idempotence): one producer id per connection,
    /// every batch numbered per partition. Needs --acks all and --in-flight 5 or less.
    #[arg(long)]
    pub idempotent: bool,
    /// Produce in transactions (idempotent too): one transactional id per connection
    /// (strom-bench-PID-LANE), each transaction of --transaction-records records committed once
    /// all of them are acknowledged.
    #[arg(long)]
    pub transactional: bool,
    /// Records per transaction, with --transactional.
    #[arg(long, default_value_t = 1_000, requires = "transactional",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub transaction_records: u64,
}

/// What a producer is to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// No producer id: batches are neither numbered nor in transactions.
    Plain,
    Idempotent,
    Transactional {
        records_per_transaction: u64,
    },
}

impl Delivery {
    pub fn of(args: &DeliveryArgs) -> Delivery {
        if args.transactional {
            Delivery::Transactional {
                records_per_transaction: args.transaction_records,
            }
        } else if args.idempotent {
            Delivery::Idempotent
        } else {
            Delivery::Plain
        }
    }

    /// Refuses producer settings Kafka refuses for idempotent producers.
    pub fn check(self, acks: Acks, in_flight: usize) -> Result<(), BenchError> {
        if self == Delivery::Plain {
            return Ok(());
        }
        if acks != Acks::All {
            return Err(BenchError::InvalidArgument(
                "--idempotent and --transactional need --acks all, as Kafka's idempotent producers do"
                    .to_string(),
            ));
        }
        if in_flight > IDEMPOTENT_IN_FLIGHT_MAX {
            return Err(BenchError::InvalidArgument(format!(
                "--idempotent and --transactional allow at most {IDEMPOTENT_IN_FLIGHT_MAX} requests in \
                 flight per connection (Kafka's max.in.flight.requests.per.connection), not {in_flight}"
            )));
        }
        Ok(())
    }

    pub fn name(self) -> &'static str {
        match self {
            Delivery::Plain => "plain",
            Delivery::Idempotent => "idempotent",
            Delivery::Transactional { .. } => "transactional",
        }
    }

    pub fn records_per_transaction(self) -> Option<u64> {
        match self {
            Delivery::Transactional {
                records_per_transaction,
            } => Some(records_per_transaction),
            _ => None,
        }
    }
}

/// The transactional figures of a lane or a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransactionCounts {
    pub transactions: u64,
    /// Coordinator answers "not now" (mostly CONCURRENT_TRANSACTIONS while the last commit's
    /// markers were written) and retried.
    pub coordinator_retries: u64,
}

/// A lane's producer: its identity, the next sequence of each of its partitions, and its
/// transaction. Owned and driven by the lane's one task.
pub struct LaneProducer {
    identity: Option<ProducerIdentity>,
    /// By the lane's partition slot: the next batch's base sequence.
    sequences: Vec<i32>,
    transaction: Option<LaneTransaction>,
}

/// A transactional lane's producer and its open transaction.
struct LaneTransaction {
    producer: TransactionalProducer,
    /// The transactional id as produce requests carry it.
    wire_id: TransactionalId,
    records_per_transaction: u64,
    /// Records put in batches of the open transaction so far.
    records: u64,
}

impl LaneProducer {
    /// Sets a lane's producer up before the clock starts: a producer id (idempotent), or a
    /// transactional id's coordinator, producer id and epoch (transactional).
    pub async fn start(
        delivery: Delivery,
        connection: &Arc<Connection>,
        security: &SecurityConfig,
        lane: usize,
        partitions: usize,
    ) -> Result<LaneProducer, BenchError> {
        let mut producer = LaneProducer {
            identity: None,
            sequences: vec![0; partitions],
            transaction: None,
        };
        match delivery {
            Delivery::Plain => {}
            Delivery::Idempotent => producer.identity = Some(init_producer_id(connection).await?),
            Delivery::Transactional {
                records_per_transaction,
            } => {
                let id = format!("strom-bench-{}-{lane}", std::process::id());
                // A client of the lane's own: its connection to the coordinator carries this
                // lane's transaction calls only.
                let client = Arc::new(cluster::connect(connection.address(), security).await?);
                let transactional =
                    TransactionalProducer::init(client, &id, TRANSACTION_TIMEOUT_MS).await?;
                producer.identity = Some(transactional.identity());
                producer.transaction = Some(LaneTransaction {
                    producer: transactional,
                    wire_id: TransactionalId(StrBytes::from_string(id)),
                    records_per_transaction,
                    records: 0,
                });
            }
        }
        Ok(producer)
    }

    /// The transactional id produce requests name, for a transactional lane.
    pub fn transactional_id(&self) -> Option<&TransactionalId> {
        self.transaction
            .as_ref()
            .map(|transaction| &transaction.wire_id)
    }

    /// Records the open transaction may still take (no bound without transactions).
    pub fn room(&self) -> u64 {
        self.transaction.as_ref().map_or(u64::MAX, |transaction| {
            transaction.records_per_transaction - transaction.records
        })
    }

    /// Whether a transaction is open that should now be committed: it is full, or the lane
    /// has no more records for it (`nothing_left`).
    pub fn commit_due(&self, nothing_left: bool) -> bool {
        self.transaction.as_ref().is_some_and(|transaction| {
            transaction.records > 0
                && (transaction.records == transaction.records_per_transaction || nothing_left)
        })
    }

    /// Before a batch to the lane's partition in `slot` (of `partitions`, visited in turn from
    /// it, `batch_records` a full batch): in a transaction, adds the partitions the rest of the
    /// transaction will write, if this one is not in it yet. One AddPartitionsToTxn per
    /// transaction as long as batches are full; short ones (lingered out) may need another.
    /// Says how long adding took (retries included), when it was needed.
    pub async fn before_batch(
        &mut self,
        topic: &str,
        partitions: &[PartitionIndex],
        slot: usize,
        batch_records: u64,
    ) -> Result<Option<Duration>, BenchError> {
        let Some(transaction) = self.transaction.as_mut() else {
            return Ok(None);
        };
        if transaction.producer.is_added(topic, partitions[slot]) {
            return Ok(None);
        }
        let room = transaction.records_per_transaction - transaction.records;
        let batches = room.div_ceil(batch_records.max(1)) as usize;
        let upcoming: Vec<PartitionIndex> = (0..batches.min(partitions.len()))
            .map(|step| partitions[(slot + step) % partitions.len()])
            .collect();
        let started = Instant::now();
        transaction
            .producer
            .add_partitions(topic, &upcoming)
            .await?;
        Ok(Some(started.elapsed()))
    }

    /// The producer fields of the next batch to the partition in `slot`, of `records`
    /// records; moves that partition's sequence past them.
    pub fn stamp(&mut self, slot: usize, records: u64) -> ProducerFields {
        let Some(identity) = self.identity else {
            return ProducerFields::NONE;
        };
        let count = i32::try_from(records).expect("a batch holds at most 10,000 records");
        let base_sequence = self.sequences[slot];
        self.sequences[slot] = next_sequence(base_sequence, count);
        if let Some(transaction) = self.transaction.as_mut() {
            assert!(
                records <= transaction.records_per_transaction - transaction.records,
                "a batch stays within its transaction"
            );
            transaction.records += records;
        }
        ProducerFields {
            producer_id: identity.producer_id,
            producer_epoch: identity.producer_epoch,
            base_sequence,
            transactional: self.transaction.is_some(),
        }
    }

    /// Commits the open transaction (every produce of it answered) and says how long EndTxn
    /// took.
    pub async fn commit(&mut self) -> Result<Duration, BenchError> {
        let transaction = self
            .transaction
            .as_mut()
            .expect("only a transactional lane commits");
        assert!(transaction.records > 0, "a transaction is open");
        let started = Instant::now();
        transaction.producer.commit().await?;
        transaction.records = 0;
        Ok(started.elapsed())
    }

    /// "Not now" answers the coordinator gave this lane, retried.
    pub fn coordinator_retries(&self) -> u64 {
        self.transaction
            .as_ref()
            .map_or(0, |transaction| transaction.producer.retries())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_rules_for_idempotent_producers() {
        let transactional = Delivery::Transactional {
            records_per_transaction: 1_000,
        };
        for delivery in [Delivery::Idempotent, transactional] {
            assert!(delivery.check(Acks::All, 5).is_ok());
            assert!(delivery.check(Acks::Leader, 5).is_err());
            assert!(delivery.check(Acks::None, 1).is_err());
            assert!(delivery.check(Acks::All, 6).is_err());
        }
        assert!(Delivery::Plain.check(Acks::Leader, 64).is_ok());
        assert_eq!(transactional.records_per_transaction(), Some(1_000));
        assert_eq!(Delivery::Idempotent.records_per_transaction(), None);
        assert_eq!(transactional.name(), "transactional");
    }

    #[test]
    fn a_plain_lane_stamps_no_producer_and_has_no_transaction() {
        let mut producer = LaneProducer {
            identity: None,
            sequences: vec![0; 2],
            transaction: None,
        };
        assert_eq!(producer.stamp(1, 100), ProducerFields::NONE);
        assert_eq!(producer.room(), u64::MAX);
        assert!(!producer.commit_due(true));
        assert!(producer.transactional_id().is_none());
    }

    #[test]
    fn an_idempotent_lane_numbers_each_partition_on_its_own() {
        let identity = ProducerIdentity {
            producer_id: strom_types::ProducerId(42),
            producer_epoch: strom_types::ProducerEpoch(0),
        };
        let mut producer = LaneProducer {
            identity: Some(identity),
            sequences: vec![0; 2],
            transaction: None,
        };
        let sequences: Vec<(i32, bool)> = [(0, 100), (1, 7), (0, 50), (0, 1), (1, 3)]
            .into_iter()
            .map(|(slot, records)| {
                let fields = producer.stamp(slot, records);
                assert_eq!(fields.producer_id, identity.producer_id);
                (fields.base_sequence, fields.transactional)
            })
            .collect();
        assert_eq!(
            sequences,
            vec![
                (0, false),
                (0, false),
                (100, false),
                (150, false),
                (7, false)
            ]
        );
    }
}
