//! The runtime around `strom_coordinator::transactions`: it owns the clock, the timers, the
//! `__transaction_state` topic and the sending of transaction markers; the coordinator owns
//! every decision.
//!
//! - `__transaction_state` is created on the first FindCoordinator for a transactional id, as
//!   Kafka does (`transaction.state.log.num.partitions` partitions, compacted, replication
//!   factor capped at the voters, `min.insync.replicas` capped at that factor).
//! - This node coordinates the transactional ids of the partitions of that topic it leads:
//!   [`follow_leadership`] loads a partition when it becomes its leader (at its leader epoch,
//!   which is the coordinator epoch) and unloads it when it stops being the leader.
//! - A request's [`PendingWrite`] is appended to its partition with acks=all and waited for
//!   ([`write`]), then handed back to the coordinator; what comes out (the reply, markers to
//!   send, the next record) is carried out by [`carry_out`].
//! - Markers ([`send_markers`]) go to every partition of the transaction: written here through
//!   [`begin_marker`] and [`finish_marker`] when this node leads the partition, else by WriteTxnMarkers to its
//!   leader; retried until each is written or the transaction is no longer this node's.
//! - A ticker aborts transactions past their timeout and expires idle transactional ids.
//!
//! The coordinator sits behind one mutex: every operation on it is short and in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;
use strom_client::connection::{Connection, ConnectionOptions};
use strom_coordinator::transactions::{
    marker_outcome, MarkerOutcome, MarkerRequest, PendingWrite, Reply as TxnReply,
    TransactionCoordinator, WriteOutcome,
};
use strom_coordinator::{OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use strom_metadata::{CommandResult, MetadataCommand};
use strom_partition::{AckWait, Acks, AppendOptions, Partition, PartitionError, ReadBound};
use strom_protocol::control::{Marker, MarkerType};
use strom_types::{
    BrokerId, CoordinatorEpoch, ErrorCode, LeaderEpoch, Offset, PartitionIndex, ProducerEpoch,
    ProducerId, TimestampMs,
};
use uuid::Uuid;

use crate::cluster;
use crate::error::BrokerError;
use crate::Broker;

/// How long a write to `__transaction_state` or a marker waits for the ISR (Kafka's
/// `transaction.state.log` appends use the request timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the coordinator's timers are looked at.
const TICK: Duration = Duration::from_millis(1_000);
/// The first and the longest wait before markers are sent again.
const MARKER_RETRY_FIRST: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_millis(1_000);
/// The wait before a completion refused with COORDINATOR_NOT_AVAILABLE is written again.
const REWRITE_BACKOFF: Duration = Duration::from_millis(100);
/// Bytes read at a time when loading a partition of `__transaction_state`.
const LOAD_READ_BYTES: usize = 1 << 20;

pub struct TransactionRuntime {
    coordinator: Mutex<TransactionCoordinator>,
    /// The partitions of `__transaction_state` loaded here, with the leader epoch they were
    /// loaded at.
    loaded: Mutex<BTreeMap<PartitionIndex, LeaderEpoch>>,
    /// Set while this node is proposing `__transaction_state`.
    creating: AtomicBool,
    /// Connections to the other brokers, for markers and KIP-890 verification.
    peers: Mutex<HashMap<i32, Arc<Connection>>>,
}

fn now_ms() -> i64 {
    TimestampMs::now().0
}

impl TransactionRuntime {
    pub fn new(broker_config: &crate::BrokerConfig) -> TransactionRuntime {
        TransactionRuntime {
            coordinator: Mutex::new(TransactionCoordinator::new(broker_config.transaction)),
            loaded: Mutex::new(BTreeMap::new()),
            creating: AtomicBool::new(false),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// After a metadata change: see [`follow_leadership`]. A method so that `cluster`, which
    /// this module imports, reaches it through the broker.
    pub fn follow_leadership(&self, broker: &Arc<Broker>) {
        follow_leadership(broker)
    }

    pub fn coordinator(&self) -> parking_lot::MutexGuard<'_, TransactionCoordinator> {
        self.coordinator.lock()
    }

    pub fn now_ms(&self) -> i64 {
        now_ms()
    }

    /// A connection to broker `id`, made once and kept while it stays open.
    pub async fn peer(&self, broker: &Broker, id: i32) -> Result<Arc<Connection>, ErrorCode> {
        if let Some(connection) = self.peers.lock().get(&id).filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let image = broker.quorum.image();
        let registration = image
            .brokers
            .get(&id)
            .filter(|registration| !registration.fenced)
            .ok_or(ErrorCode::BrokerNotAvailable)?;
        let address = format!("{}:{}", registration.host, registration.port);
        let options = ConnectionOptions {
            client_id: format!("strom-transactions-{}", broker.config.node_id),
            security: broker.inter_broker_security(),
            ..ConnectionOptions::default()
        };
        let connection = Connection::connect(&address, &options)
            .await
            .map_err(|error| {
                tracing::debug!(broker = id, %error, "cannot reach a broker for transactions");
                ErrorCode::NetworkException
            })?;
        let connection = Arc::new(connection);
        self.peers.lock().insert(id, connection.clone());
        Ok(connection)
    }
}

/// Where the coordinator of `transactional_id` is: the leader of its `__transaction_state`
/// partition. Creates the topic (in the background) when it does not exist yet, answering
/// COORDINATOR_NOT_AVAILABLE meanwhile, as Kafka does.
pub fn locate(broker: &Arc<Broker>, transactional_id: &str) -> Result<BrokerId, BrokerError> {
    let unavailable = |why: &str| BrokerError::new(ErrorCode::CoordinatorNotAvailable, why);
    let image = broker.quorum.image();
    let Some(topic) = image.topics.get(TRANSACTION_STATE_TOPIC) else {
        create_state_topic(broker);
        return Err(unavailable("the transaction state topic is being created"));
    };
    let partitions = topic.partitions.len() as i32;
    let index =
        strom_coordinator::transactions::record::partition_for(transactional_id, partitions);
    let leader = topic
        .partitions
        .get(index.0 as usize)
        .map(|partition| partition.leader)
        .filter(|leader| *leader >= 0)
        .ok_or_else(|| unavailable("the transaction state partition has no leader"))?;
    Ok(BrokerId(leader))
}

/// Creates `__transaction_state` in the background if it does not exist yet (a Metadata
/// request naming it, which must not auto-create it as an ordinary topic).
pub fn ensure_state_topic(broker: &Arc<Broker>) {
    if !broker
        .quorum
        .image()
        .topics
        .contains_key(TRANSACTION_STATE_TOPIC)
    {
        create_state_topic(broker);
    }
}

/// Proposes `__transaction_state` unless a proposal is already under way.
fn create_state_topic(broker: &Arc<Broker>) {
    let runtime = &broker.transactions;
    if runtime.creating.swap(true, Ordering::AcqRel) {
        return;
    }
    let broker = broker.clone();
    tokio::spawn(async move {
        if let Err(error) = propose_state_topic(&broker).await {
            tracing::warn!(%error, "cannot create {TRANSACTION_STATE_TOPIC} yet");
        }
        broker.transactions.creating.store(false, Ordering::Release);
        follow_leadership(&broker);
    });
}

async fn propose_state_topic(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let config = &broker.config;
    let factor = config
        .cluster
        .transaction_state_replication_factor
        .min(config.cluster.voters.len().max(1) as i16);
    let alive = (broker.quorum.image().brokers.values())
        .filter(|b| !b.fenced)
        .count();
    if alive < factor as usize {
        // Kafka refuses alike rather than create an under-replicated state topic.
        return Err(BrokerError::new(
            ErrorCode::CoordinatorNotAvailable,
            format!("{alive} brokers are alive, {factor} needed for {TRANSACTION_STATE_TOPIC}"),
        ));
    }
    let min_isr = config
        .cluster
        .transaction_state_min_isr
        .min(i32::from(factor));
    let command = MetadataCommand::CreateTopic {
        name: TRANSACTION_STATE_TOPIC.to_owned(),
        id: Uuid::new_v4(),
        partitions: config.transaction.state_log_partitions,
        replication_factor: factor,
        assignments: None,
        configs: BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("min.insync.replicas".to_owned(), min_isr.to_string()),
            ("segment.bytes".to_owned(), (100 << 20).to_string()),
        ]),
    };
    match cluster::propose(broker, command).await {
        Ok(CommandResult::Refused(error)) if error.code != ErrorCode::TopicAlreadyExists => {
            Err(BrokerError::new(error.code, error.message))
        }
        Err(error) if error.code != ErrorCode::TopicAlreadyExists => Err(error),
        _ => {
            tracing::info!(
                partitions = config.transaction.state_log_partitions,
                factor,
                "created {TRANSACTION_STATE_TOPIC}"
            );
            Ok(())
        }
    }
}

/// After a metadata change: loads the partitions of `__transaction_state` this node has just
/// become the leader of (or leads at a new epoch), and unloads those it no longer leads.
/// Runs on a blocking thread (it reads the partitions) inside the runtime.
pub fn follow_leadership(broker: &Arc<Broker>) {
    let Some(topic) = broker.topics.get(TRANSACTION_STATE_TOPIC) else {
        return;
    };
    let runtime = &broker.transactions;
    let mut loaded = runtime.loaded.lock();
    // A state partition a reassignment moved off this node is no longer in the topic here.
    let moved_away: Vec<PartitionIndex> = (loaded.keys().copied())
        .filter(|index| topic.partition(*index).is_none())
        .collect();
    for index in moved_away {
        loaded.remove(&index);
        runtime.coordinator.lock().unload(index);
        tracing::info!(partition = %index, "no longer coordinating the transactions of a state partition moved off this node");
    }
    let (mut newly_loaded, mut loaded_ids) = (0, 0);
    for partition in &topic.partitions {
        let index = partition.index();
        let epoch = partition.leader_epoch();
        if !partition.is_leader() {
            if loaded.remove(&index).is_some() {
                runtime.coordinator.lock().unload(index);
                tracing::info!(partition = %index, "no longer coordinating the transactions of a state partition");
            }
            continue;
        }
        if loaded.get(&index) == Some(&epoch) {
            continue;
        }
        let coordinator_epoch = CoordinatorEpoch(epoch.0);
        let records = match read_records(partition) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(partition = %index, %error, "cannot load a transaction state partition");
                continue;
            }
        };
        let outcome = runtime
            .coordinator
            .lock()
            .load(index, coordinator_epoch, records, now_ms());
        for (position, error) in &outcome.skipped {
            tracing::warn!(partition = %index, position, %error, "skipping an unreadable transaction state record");
        }
        tracing::debug!(
            partition = %index,
            transactional_ids = outcome.transactional_ids,
            "coordinating the transactions of a state partition"
        );
        loaded_ids += outcome.transactional_ids;
        newly_loaded += 1;
        loaded.insert(index, epoch);
        for markers in outcome.markers {
            tokio::spawn(send_markers(broker.clone(), markers));
        }
        for write in outcome.writes {
            spawn_write(broker.clone(), write, Duration::ZERO);
        }
    }
    if newly_loaded > 0 {
        tracing::info!(
            partitions = newly_loaded,
            transactional_ids = loaded_ids,
            "coordinating the transactions of {TRANSACTION_STATE_TOPIC} partitions"
        );
    }
}

/// Every record of a partition, oldest first: (key, value or `None` for a tombstone).
fn read_records(
    partition: &Partition,
) -> anyhow::Result<Vec<(bytes::Bytes, Option<bytes::Bytes>)>> {
    let mut records = Vec::new();
    let end = partition.log_end_offset();
    let mut offset = partition.log_start_offset();
    while offset < end {
        let read = partition.read(offset, LOAD_READ_BYTES, ReadBound::LogEnd)?;
        let Some(last) = strom_protocol::batch::Batches::new(&read.records).last() else {
            break;
        };
        let mut bytes = read.records.clone();
        let batches = RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| {
            anyhow::anyhow!(
                "{TRANSACTION_STATE_TOPIC}-{} is unreadable at offset {offset}: {error}",
                partition.index()
            )
        })?;
        let data = batches.into_iter().flat_map(|batch| batch.records);
        for record in data.filter(|record| !record.control) {
            records.push((record.key.unwrap_or_default(), record.value));
        }
        offset = Offset(last.0.next_offset().0.max(offset.0 + 1));
    }
    Ok(records)
}

/// Applies timeouts and expirations for as long as the broker runs.
pub async fn run_ticker(broker: Arc<Broker>) {
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        let writes = broker.transactions.coordinator.lock().tick(now_ms());
        for write in writes {
            tracing::info!(
                transactional_id = write.transactional_id(),
                state = %write.state(),
                "transaction coordinator timer"
            );
            spawn_write(broker.clone(), write, Duration::ZERO);
        }
    }
}

/// Appends a record to `__transaction_state` and waits until the ISR has it on disk; hands
/// the write back to the coordinator. Returns what the coordinator made of it.
pub async fn write(broker: &Arc<Broker>, pending: PendingWrite) -> WriteOutcome {
    let appended = append(broker, &pending).await;
    let mut coordinator = broker.transactions.coordinator.lock();
    match appended {
        Ok(()) => coordinator.apply_written(pending, now_ms()),
        Err(error) => {
            tracing::debug!(transactional_id = pending.transactional_id(), %error, "transaction state write failed");
            coordinator.write_failed(pending, error)
        }
    }
}

async fn append(broker: &Arc<Broker>, pending: &PendingWrite) -> Result<(), ErrorCode> {
    let topic = broker
        .topics
        .get(TRANSACTION_STATE_TOPIC)
        .ok_or(ErrorCode::NotLeaderOrFollower)?;
    let partition = topic
        .partition(pending.partition())
        .ok_or(ErrorCode::NotLeaderOrFollower)?
        .clone();
    if partition.leader_epoch().0 != pending.coordinator_epoch().0 {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    let mut batch = crate::groups::encode_batch(
        vec![(pending.key().clone(), pending.value().cloned())],
        None,
    )?;
    let options = AppendOptions {
        acks: Acks::All,
        log_append_time: None,
        min_insync_replicas: topic.config.min_insync_replicas,
    };
    let appended = partition
        .append_as_leader(&mut batch, options)
        .map_err(|error| partition_error(&error))?;
    partition
        .wait_acknowledged(&appended.ack, tokio::time::Instant::now() + WRITE_TIMEOUT)
        .await
        .map_err(|error| partition_error(&error))
}

fn partition_error(error: &PartitionError) -> ErrorCode {
    if error.is_fatal() {
        tracing::error!(%error, "cannot write a transaction record");
    }
    error.code()
}

/// Carries out what a write led to: sends its markers and writes its next record, in the
/// background. Returns the answer for the request that caused it, if any.
pub fn carry_out(broker: &Arc<Broker>, outcome: WriteOutcome) -> Option<TxnReply> {
    follow(broker, outcome, Duration::ZERO)
}

/// [`carry_out`], writing the next record after `next_delay`.
fn follow(broker: &Arc<Broker>, outcome: WriteOutcome, next_delay: Duration) -> Option<TxnReply> {
    if let Some(markers) = outcome.markers {
        tokio::spawn(send_markers(broker.clone(), markers));
    }
    if let Some(next) = outcome.write {
        spawn_write(broker.clone(), next, next_delay);
    }
    outcome.reply
}

/// Writes a record nobody waits for (a completion, a timeout's abort, an expiration), and
/// carries out what follows. A completion the coordinator hands back after a failure is
/// written again after a pause.
fn spawn_write(broker: Arc<Broker>, pending: PendingWrite, delay: Duration) {
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let outcome = write(&broker, pending).await;
        follow(&broker, outcome, REWRITE_BACKOFF);
    });
}

/// Whether a verification's error is the coordinator's trouble (not there, loading, moved,
/// busy, unreachable), which the client should retry, rather than a verdict on the producer.
pub fn coordinator_unavailable(error: ErrorCode) -> bool {
    matches!(
        error,
        ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::NotCoordinator
            | ErrorCode::ConcurrentTransactions
            | ErrorCode::NetworkException
            | ErrorCode::BrokerNotAvailable
    )
}

/// Writes a transaction's markers to every partition it lists, retrying until each is
/// written or the transaction is no longer this coordinator's; then the completion record.
pub async fn send_markers(broker: Arc<Broker>, markers: MarkerRequest) {
    let mut pending = markers.partitions.clone();
    let mut backoff = MARKER_RETRY_FIRST;
    loop {
        let current = broker
            .transactions
            .coordinator
            .lock()
            .coordinator_epoch(markers.state_partition);
        if current != Some(markers.coordinator_epoch) {
            tracing::debug!(transactional_id = %markers.transactional_id, "markers no longer this coordinator's to send");
            return;
        }
        let (written, retry, cancel) = send_markers_once(&broker, &markers, &pending).await;
        if cancel {
            tracing::info!(transactional_id = %markers.transactional_id, "markers cancelled: the producer or coordinator moved on");
            return;
        }
        if !written.is_empty() {
            let completion = broker.transactions.coordinator.lock().markers_written(
                &markers,
                &written,
                now_ms(),
            );
            if let Some(completion) = completion {
                spawn_write(broker.clone(), completion, Duration::ZERO);
            }
        }
        if retry.is_empty() {
            return;
        }
        pending = retry;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MARKER_RETRY_MAX);
    }
}

type TopicPartition = (String, i32);

/// One round of markers: (written, to retry, cancelled).
async fn send_markers_once(
    broker: &Arc<Broker>,
    markers: &MarkerRequest,
    partitions: &[TopicPartition],
) -> (Vec<TopicPartition>, Vec<TopicPartition>, bool) {
    let image = broker.quorum.image();
    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    let mut written = Vec::new();
    let mut retry = Vec::new();
    for (topic, index) in partitions {
        match image.topics.get(topic.as_str()) {
            // A deleted topic needs no marker (Kafka counts it as written).
            None => written.push((topic.clone(), *index)),
            Some(described) => match described.partitions.get(*index as usize) {
                None => written.push((topic.clone(), *index)),
                Some(state) if state.leader < 0 => retry.push((topic.clone(), *index)),
                Some(state) => by_leader
                    .entry(state.leader)
                    .or_default()
                    .push((topic.clone(), *index)),
            },
        }
    }
    let mut cancel = false;
    for (leader, partitions) in by_leader {
        let results = if leader == broker.config.node_id {
            let begun: Vec<_> = partitions
                .into_iter()
                .map(|(topic, index)| {
                    let begun = begin_marker(
                        broker,
                        &topic,
                        PartitionIndex(index),
                        markers.producer_id,
                        markers.producer_epoch,
                        markers.coordinator_epoch,
                        markers.commit,
                    );
                    ((topic, index), begun)
                })
                .collect();
            let mut results = Vec::with_capacity(begun.len());
            for (partition, begun) in begun {
                let error = match begun {
                    Ok(wait) => finish_marker(broker, wait).await,
                    Err(error) => error,
                };
                results.push((partition, error));
            }
            results
        } else {
            send_remote(broker, leader, markers, partitions).await
        };
        for (partition, error) in results {
            match marker_outcome(error) {
                MarkerOutcome::Written => written.push(partition),
                MarkerOutcome::Retry => retry.push(partition),
                MarkerOutcome::Cancel => cancel = true,
                MarkerOutcome::Unexpected => {
                    tracing::error!(
                        transactional_id = %markers.transactional_id,
                        topic = %partition.0,
                        partition = partition.1,
                        error = ?error,
                        "a partition refused a transaction marker; giving up on it"
                    );
                    cancel = true;
                }
            }
        }
    }
    (written, retry, cancel)
}

/// WriteTxnMarkers to another broker for `partitions` it leads.
async fn send_remote(
    broker: &Arc<Broker>,
    leader: i32,
    markers: &MarkerRequest,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, ErrorCode)> {
    let fail = |partitions: Vec<TopicPartition>, error| {
        partitions.into_iter().map(|p| (p, error)).collect()
    };
    let connection = match broker.transactions.peer(broker, leader).await {
        Ok(connection) => connection,
        Err(error) => return fail(partitions, error),
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in &partitions {
        topics.entry(topic.as_str()).or_default().push(*index);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(markers.producer_id.0))
        .with_producer_epoch(markers.producer_epoch.0)
        .with_transaction_result(markers.commit)
        .with_coordinator_epoch(markers.coordinator_epoch.0)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, indexes)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partition_indexes(indexes)
                })
                .collect(),
        );
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let response = match connection.send(&request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(leader, %error, "WriteTxnMarkers failed");
            broker.transactions.peers.lock().remove(&leader);
            return fail(partitions, ErrorCode::RequestTimedOut);
        }
    };
    let mut answered: HashMap<TopicPartition, ErrorCode> = HashMap::new();
    for result in response.markers {
        for topic in result.topics {
            for partition in topic.partitions {
                answered.insert(
                    (topic.name.as_str().to_owned(), partition.partition_index),
                    ErrorCode::from_code(partition.error_code)
                        .unwrap_or(ErrorCode::UnknownServerError),
                );
            }
        }
    }
    partitions
        .into_iter()
        .map(|p| {
            let error = answered
                .get(&p)
                .copied()
                .unwrap_or(ErrorCode::UnknownServerError);
            (p, error)
        })
        .collect()
}

/// Whether `partitions` are in the producer's open transaction (KIP-890 part 1): the
/// coordinator's answer per partition, asked of this node's coordinator or, by AddPartitionsToTxn
/// v5 with `verify_only`, of another broker's.
pub async fn verify(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partitions: &[TopicPartition],
) -> HashMap<TopicPartition, ErrorCode> {
    match locate(broker, transactional_id) {
        Err(error) => partitions.iter().map(|p| (p.clone(), error.code)).collect(),
        Ok(leader) if leader == broker.node() => broker
            .transactions
            .coordinator()
            .verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
            .into_iter()
            .collect(),
        Ok(leader) => {
            verify_remote(
                broker,
                leader.0,
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            )
            .await
        }
    }
}

/// AddPartitionsToTxn v5 with `verify_only`, to the coordinator on broker `coordinator`.
pub async fn verify_remote(
    broker: &Arc<Broker>,
    coordinator: i32,
    transactional_id: &str,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partitions: &[TopicPartition],
) -> HashMap<TopicPartition, ErrorCode> {
    let fail = |error| -> HashMap<TopicPartition, ErrorCode> {
        partitions.iter().map(|p| (p.clone(), error)).collect()
    };
    let connection = match broker.transactions.peer(broker, coordinator).await {
        Ok(connection) => connection,
        Err(error) => return fail(error),
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        topics.entry(topic.as_str()).or_default().push(*index);
    }
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_owned(),
        )))
        .with_producer_id(kafka_protocol::messages::ProducerId(producer_id.0))
        .with_producer_epoch(producer_epoch.0)
        .with_verify_only(true)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
    let response = match connection.send_versioned(&request, 5, 10_000).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "cannot verify a partition with the transaction coordinator");
            return fail(ErrorCode::CoordinatorNotAvailable);
        }
    };
    if response.error_code != 0 {
        return fail(
            ErrorCode::from_code(response.error_code).unwrap_or(ErrorCode::UnknownServerError),
        );
    }
    let mut verdicts = HashMap::new();
    for result in response.results_by_transaction {
        for topic in result.topic_results {
            for partition in topic.results_by_partition {
                verdicts.insert(
                    (topic.name.as_str().to_owned(), partition.partition_index),
                    ErrorCode::from_code(partition.partition_error_code)
                        .unwrap_or(ErrorCode::UnknownServerError),
                );
            }
        }
    }
    verdicts
}

/// A marker appended here, waiting for the ISR.
pub struct MarkerWait {
    topic: String,
    index: PartitionIndex,
    partition: Arc<Partition>,
    ack: AckWait,
    producer_id: ProducerId,
    commit: bool,
}

/// Appends one marker to a partition this node leads (WriteTxnMarkers, or the coordinator's
/// own markers). Markers for several partitions are all appended before any is waited for
/// ([`finish_marker`]), so one group commit covers them.
pub fn begin_marker(
    broker: &Broker,
    topic: &str,
    index: PartitionIndex,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    coordinator_epoch: CoordinatorEpoch,
    commit: bool,
) -> Result<MarkerWait, ErrorCode> {
    let registered = broker
        .topics
        .get(topic)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let partition = registered
        .partition(index)
        .cloned()
        .ok_or(ErrorCode::NotLeaderOrFollower)?;
    if !partition.is_leader() {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    let marker = Marker {
        kind: if commit {
            MarkerType::Commit
        } else {
            MarkerType::Abort
        },
        coordinator_epoch: coordinator_epoch.0,
    };
    let options = AppendOptions {
        acks: Acks::All,
        log_append_time: None,
        min_insync_replicas: registered.config.min_insync_replicas,
    };
    let appended = partition
        .append_marker(
            producer_id,
            producer_epoch,
            marker,
            TimestampMs::now(),
            options,
        )
        .map_err(|error| partition_error(&error))?;
    Ok(MarkerWait {
        topic: topic.to_owned(),
        index,
        partition,
        ack: appended.ack,
        producer_id,
        commit,
    })
}

/// Waits until the ISR has an appended marker on disk. After a marker in
/// `__consumer_offsets`, the group coordinator applies or drops the producer's transactional
/// offsets.
pub async fn finish_marker(broker: &Broker, wait: MarkerWait) -> ErrorCode {
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    if let Err(error) = wait.partition.wait_acknowledged(&wait.ack, deadline).await {
        return partition_error(&error);
    }
    if wait.topic == OFFSETS_TOPIC {
        broker
            .groups
            .complete_transaction(wait.index, wait.producer_id, wait.commit);
    }
    ErrorCode::None
}
