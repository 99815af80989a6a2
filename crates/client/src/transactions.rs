//! The producer's side of idempotence and transactions (KIP-98), for a producer that builds
//! its own record batches (the bench does): the calls it makes to the cluster, and the
//! bookkeeping the batches need. No batch is built here.
//!
//! - [`init_producer_id`]: an idempotent producer's id and epoch (InitProducerId without a
//!   transactional id), from any broker.
//! - [`next_sequence`]: where a partition's next batch starts in the producer's sequence (it
//!   wraps after `i32::MAX`, as Kafka's producers wrap it).
//! - [`TransactionalProducer`]: one transactional id. [`TransactionalProducer::init`] finds its
//!   coordinator through a [`Client`] (FindCoordinator, key type TRANSACTION:
//!   [`Client::find_transaction_coordinator`]) and gets its producer id and epoch there (InitProducerId with the transactional id, which fences any older producer of the id
//!   and ends its transaction); then, for each transaction,
//!   [`TransactionalProducer::add_partitions`] (AddPartitionsToTxn, v3 or lower: v4 and up are
//!   the brokers' verify form) before the first produce to a partition, and
//!   [`TransactionalProducer::commit`] or [`TransactionalProducer::abort`] (EndTxn) once every
//!   produce of the transaction has been answered.
//!
//! The caller stamps each batch with the producer id, the epoch, the partition's base sequence
//! and, inside a transaction, the transactional attribute, and names the transactional id in
//! its produce requests; a partition leader checks the sequences, and (KIP-890 part 1) asks the
//! coordinator whether a transactional batch's partition is in the transaction.
//!
//! Retries: the coordinator answers "not now" while it is being created or loaded
//! (`COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`: the first transactional call to
//! a cluster creates `__transaction_state`), when it moved (`NOT_COORDINATOR`: looked up again),
//! and while the previous transaction's markers are still being written
//! (`CONCURRENT_TRANSACTIONS`: an AddPartitionsToTxn right after a commit gets it). Those, and a
//! lost connection to the coordinator, are retried after a backoff that starts at
//! [`limits::TRANSACTION_RETRY_BACKOFF_MS`] and doubles, for at most
//! [`limits::TRANSACTION_RETRY_MS_MAX`]; every other error is the caller's (`PRODUCER_FENCED`:
//! another producer took the transactional id).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, InitProducerIdRequest,
    ProducerId as WireProducerId, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use strom_types::{ErrorCode, PartitionIndex, ProducerEpoch, ProducerId};
use tokio::time::Instant;

use crate::client::topic_name;
use crate::error::Subject;
use crate::{limits, Client, ClientError, Connection};

/// AddPartitionsToTxn versions above this are the brokers' batched, verify-only form.
const ADD_PARTITIONS_TO_TXN_CLIENT_VERSION_MAX: i16 = 3;

/// Who a producer is to the brokers: the id and epoch every batch it writes carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
}

/// The base sequence of the batch after one of `records` records starting at `sequence`:
/// sequences count records per partition and wrap to 0 after `i32::MAX`, as Kafka's do.
pub fn next_sequence(sequence: i32, records: i32) -> i32 {
    assert!(
        sequence >= 0 && records > 0,
        "sequences and batches count up"
    );
    let room = i32::MAX - sequence;
    if records <= room {
        sequence + records
    } else {
        records - room - 1
    }
}

/// An idempotent producer's id and epoch: InitProducerId without a transactional id, to any
/// broker.
pub async fn init_producer_id(connection: &Connection) -> Result<ProducerIdentity, ClientError> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(WireProducerId(-1))
        .with_producer_epoch(-1);
    let mut backoff = Backoff::new();
    loop {
        let error = match connection.send(&request).await {
            Ok(response) if response.error_code == 0 => {
                return Ok(ProducerIdentity {
                    producer_id: ProducerId(response.producer_id.0),
                    producer_epoch: ProducerEpoch(response.producer_epoch),
                })
            }
            Ok(response) => ClientError::kafka(response.error_code, None, Subject::default()),
            Err(error) => error,
        };
        // A lost connection is not retried: the caller's connection is gone.
        if !is_not_now(&error) || !backoff.wait().await {
            return Err(error);
        }
    }
}

/// A transactional producer's state as the cluster sees it: its transactional id, producer id
/// and epoch, its coordinator, and the partitions of the transaction it has open.
///
/// Lifecycle: [`TransactionalProducer::init`] once; then any number of transactions, each
/// opened by its first [`TransactionalProducer::add_partitions`] and ended by
/// [`TransactionalProducer::commit`] or [`TransactionalProducer::abort`]. One task drives it
/// (every call takes `&mut self`).
pub struct TransactionalProducer {
    transactional_id: String,
    transaction_timeout_ms: i32,
    /// Finds the coordinator and holds the connection to it.
    client: Arc<Client>,
    /// The coordinator's connection, once found; forgotten when the coordinator moves or the
    /// connection is lost.
    coordinator: Option<Arc<Connection>>,
    identity: ProducerIdentity,
    /// The open transaction's partitions; empty when none is open.
    added: BTreeSet<(String, PartitionIndex)>,
    /// "Not now" answers and lost connections retried so far.
    retries: u64,
}

impl TransactionalProducer {
    /// Finds the coordinator of `transactional_id` and gets the producer id and epoch there;
    /// any older producer of the id is fenced and its transaction ended. The coordinator's
    /// connection is `client`'s to that broker, so a client should serve one producer at a
    /// time: a broker answers a connection's requests in order, and one producer's
    /// AddPartitionsToTxn waiting for a write would hold up another's EndTxn.
    pub async fn init(
        client: Arc<Client>,
        transactional_id: &str,
        transaction_timeout_ms: i32,
    ) -> Result<TransactionalProducer, ClientError> {
        if transactional_id.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a transactional id cannot be empty".to_string(),
            ));
        }
        let mut producer = TransactionalProducer {
            transactional_id: transactional_id.to_string(),
            transaction_timeout_ms,
            client,
            coordinator: None,
            identity: ProducerIdentity {
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
            },
            added: BTreeSet::new(),
            retries: 0,
        };
        let id = producer.wire_id();
        let timeout_ms = producer.transaction_timeout_ms;
        let response = producer
            .call(
                |_| {
                    InitProducerIdRequest::default()
                        .with_transactional_id(Some(id.clone()))
                        .with_transaction_timeout_ms(timeout_ms)
                        .with_producer_id(WireProducerId(-1))
                        .with_producer_epoch(-1)
                },
                None,
                |response| response.error_code,
            )
            .await?;
        producer.identity = ProducerIdentity {
            producer_id: ProducerId(response.producer_id.0),
            producer_epoch: ProducerEpoch(response.producer_epoch),
        };
        assert!(
            producer.identity.producer_id.0 >= 0 && producer.identity.producer_epoch.0 >= 0,
            "InitProducerId answered without error gives an id and an epoch"
        );
        Ok(producer)
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// Whether a transaction is open (some partition was added since the last commit or
    /// abort).
    pub fn in_transaction(&self) -> bool {
        !self.added.is_empty()
    }

    /// Whether the partition is in the open transaction.
    pub fn is_added(&self, topic: &str, partition: PartitionIndex) -> bool {
        self.added.contains(&(topic.to_string(), partition))
    }

    /// "Not now" answers and lost connections retried so far.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Adds partitions to the open transaction (opening one if none is), those not in it
    /// already; a produce to a partition must wait for this.
    pub async fn add_partitions(
        &mut self,
        topic: &str,
        partitions: &[PartitionIndex],
    ) -> Result<(), ClientError> {
        let mut new: Vec<i32> = partitions
            .iter()
            .filter(|&&partition| !self.is_added(topic, partition))
            .map(|partition| partition.0)
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        let (id, identity) = (self.wire_id(), self.identity);
        let topics = vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(new.clone())];
        self.call(
            |_| {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(id.clone())
                    .with_v3_and_below_producer_id(WireProducerId(identity.producer_id.0))
                    .with_v3_and_below_producer_epoch(identity.producer_epoch.0)
                    .with_v3_and_below_topics(topics.clone())
            },
            Some(ADD_PARTITIONS_TO_TXN_CLIENT_VERSION_MAX),
            add_partitions_error,
        )
        .await?;
        for partition in new {
            self.added
                .insert((topic.to_string(), PartitionIndex(partition)));
        }
        Ok(())
    }

    /// Commits the open transaction: answered once the coordinator has durably decided, the
    /// markers follow in the background. Every produce of the transaction must have been
    /// answered first. Nothing is sent when no transaction is open.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        self.end(true).await
    }

    /// Aborts the open transaction; nothing is sent when none is open.
    pub async fn abort(&mut self) -> Result<(), ClientError> {
        self.end(false).await
    }

    async fn end(&mut self, committed: bool) -> Result<(), ClientError> {
        if !self.in_transaction() {
            return Ok(());
        }
        let (id, identity) = (self.wire_id(), self.identity);
        self.call(
            |_| {
                EndTxnRequest::default()
                    .with_transactional_id(id.clone())
                    .with_producer_id(WireProducerId(identity.producer_id.0))
                    .with_producer_epoch(identity.producer_epoch.0)
                    .with_committed(committed)
            },
            None,
            |response| response.error_code,
        )
        .await?;
        self.added.clear();
        Ok(())
    }

    fn wire_id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.transactional_id.clone()))
    }

    /// Sends a request to the coordinator (found first if need be) at the highest version
    /// both sides speak (at most `version_max`), retrying "not now" answers and lost
    /// connections; `error_of` reads the answer's error code.
    async fn call<Req: Request>(
        &mut self,
        build: impl Fn(i16) -> Req,
        version_max: Option<i16>,
        error_of: impl Fn(&Req::Response) -> i16,
    ) -> Result<Req::Response, ClientError> {
        let mut backoff = Backoff::new();
        loop {
            let error = match self.try_call(&build, version_max).await {
                Ok(response) => match error_of(&response) {
                    0 => return Ok(response),
                    code => self.error(code),
                },
                Err(error) => error,
            };
            // A lost connection is opened again, to the coordinator found afresh.
            let lost = error.is_connection_failure();
            let moved = error.is_coordinator_refreshable() || lost;
            if !(is_not_now(&error) || lost) || !backoff.wait().await {
                return Err(error);
            }
            if moved {
                self.coordinator = None;
            }
            self.retries += 1;
            tracing::debug!(transactional_id = %self.transactional_id, %error, "retrying");
        }
    }

    async fn try_call<Req: Request>(
        &mut self,
        build: &impl Fn(i16) -> Req,
        version_max: Option<i16>,
    ) -> Result<Req::Response, ClientError> {
        let coordinator = self.coordinator().await?;
        let mut version = coordinator.version::<Req>()?;
        if let Some(max) = version_max {
            version = version.min(max);
        }
        let timeout_ms = self.client.request_timeout_ms();
        coordinator
            .send_versioned(&build(version), version, timeout_ms)
            .await
    }

    /// The coordinator's connection, looked up and opened if need be.
    async fn coordinator(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some(connection) = self.coordinator.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let coordinator = (self.client)
            .find_transaction_coordinator(&self.transactional_id)
            .await?;
        let connection = self.client.node_connection(coordinator).await?;
        self.coordinator = Some(connection.clone());
        Ok(connection)
    }

    /// A coordinator's error, naming the transactional id.
    fn error(&self, code: i16) -> ClientError {
        let about = ErrorCode::from_code(code).map_or_else(
            || format!("error code {code}"),
            |known| known.message().to_string(),
        );
        let message = format!("transactional id '{}': {about}", self.transactional_id);
        ClientError::kafka(code, Some(&message), Subject::default())
    }
}

/// The error of an AddPartitionsToTxn answer (v3 or lower): the first partition's that is not
/// OPERATION_NOT_ATTEMPTED (what the others get when one partition fails), else that.
fn add_partitions_error(response: &AddPartitionsToTxnResponse) -> i16 {
    let codes = response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|topic| &topic.results_by_partition)
        .map(|partition| partition.partition_error_code)
        .filter(|&code| code != 0);
    let not_attempted = ErrorCode::OperationNotAttempted.code();
    let mut first = 0;
    for code in codes {
        if code != not_attempted {
            return code;
        }
        first = code;
    }
    first
}

/// Whether the coordinator said "not now": it is being created, loaded or moved, or the last
/// transaction is still completing.
fn is_not_now(error: &ClientError) -> bool {
    error.is_coordinator_refreshable()
        || error.error_code() == Some(ErrorCode::ConcurrentTransactions)
}

/// The pause before each retry of a coordinator call, and the time left for them.
struct Backoff {
    next_ms: u64,
    deadline: Instant,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next_ms: limits::TRANSACTION_RETRY_BACKOFF_MS,
            deadline: Instant::now() + Duration::from_millis(limits::TRANSACTION_RETRY_MS_MAX),
        }
    }

    /// Waits out the next pause; false (without waiting) once it would end past the deadline.
    async fn wait(&mut self) -> bool {
        let until = Instant::now() + Duration::from_millis(self.next_ms);
        if until > self.deadline {
            return false;
        }
        tokio::time::sleep_until(until).await;
        self.next_ms = (self.next_ms * 2).min(limits::TRANSACTION_RETRY_BACKOFF_MS_MAX);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };

    #[test]
    fn sequences_count_records_and_wrap_after_i32_max() {
        assert_eq!(next_sequence(0, 1), 1);
        assert_eq!(next_sequence(10, 140), 150);
        assert_eq!(next_sequence(i32::MAX - 5, 5), i32::MAX);
        // Kafka's DefaultRecordBatch.incrementSequence: past i32::MAX it starts again at 0.
        assert_eq!(next_sequence(i32::MAX - 5, 6), 0);
        assert_eq!(next_sequence(i32::MAX - 5, 10), 4);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
    }

    #[test]
    #[should_panic(expected = "count up")]
    fn an_empty_batch_has_no_next_sequence() {
        next_sequence(3, 0);
    }

    fn add_response(codes: &[i16]) -> AddPartitionsToTxnResponse {
        let partitions = codes
            .iter()
            .enumerate()
            .map(|(index, &code)| {
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(index as i32)
                    .with_partition_error_code(code)
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic_name("t"))
                .with_results_by_partition(partitions),
        ])
    }

    #[test]
    fn an_add_partitions_answer_names_the_partition_that_failed() {
        let not_attempted = ErrorCode::OperationNotAttempted.code();
        let concurrent = ErrorCode::ConcurrentTransactions.code();
        assert_eq!(add_partitions_error(&add_response(&[0, 0])), 0);
        assert_eq!(
            add_partitions_error(&add_response(&[not_attempted, concurrent, not_attempted])),
            concurrent
        );
        assert_eq!(
            add_partitions_error(&add_response(&[not_attempted])),
            not_attempted
        );
    }

    #[test]
    fn not_now_answers_are_the_retriable_ones() {
        let error = |code: ErrorCode| ClientError::kafka(code.code(), None, Subject::default());
        for code in [
            ErrorCode::ConcurrentTransactions,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::NotCoordinator,
        ] {
            assert!(is_not_now(&error(code)), "{code:?}");
        }
        for code in [
            ErrorCode::ProducerFenced,
            ErrorCode::InvalidProducerEpoch,
            ErrorCode::InvalidTxnState,
        ] {
            assert!(!is_not_now(&error(code)), "{code:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_its_cap_and_stops_at_its_deadline() {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut pauses = Vec::new();
        let mut last = started;
        while backoff.wait().await {
            pauses.push((Instant::now() - last).as_millis() as u64);
            last = Instant::now();
        }
        assert_eq!(pauses[0], limits::TRANSACTION_RETRY_BACKOFF_MS);
        assert_eq!(pauses[1], 2 * limits::TRANSACTION_RETRY_BACKOFF_MS);
        assert_eq!(
            *pauses.last().unwrap(),
            limits::TRANSACTION_RETRY_BACKOFF_MS_MAX
        );
        let waited = (Instant::now() - started).as_millis() as u64;
        assert!(waited <= limits::TRANSACTION_RETRY_MS_MAX, "{waited}");
        assert!(
            waited + limits::TRANSACTION_RETRY_BACKOFF_MS_MAX > limits::TRANSACTION_RETRY_MS_MAX,
            "{waited}"
        );
    }
}
