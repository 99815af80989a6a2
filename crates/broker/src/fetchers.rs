//! The follower side of Kafka's ISR replication: one fetcher task per leader broker this node
//! follows partitions of, fetching all of them in one long-polling Fetch request (replica id
//! set, v12 for KIP-320's diverging epoch). Each answer is applied by the partition
//! (`Partition::apply_fetched`: truncate a divergent tail, or append and fsync) before the next
//! fetch, so the fetch offset a follower reports tells the leader what it holds on disk. A
//! replica held back by the follower's replication throttle (`replication_quota`) is left out
//! of the next fetch while the throttled bytes fetched are over the rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use strom_client::connection::{Connection, ConnectionOptions};
use strom_partition::Applied;
use strom_partition::{FetchedData, Partition};
use strom_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, PartitionIndex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Broker;

/// The Fetch version followers speak: v12 carries `last_fetched_epoch` and the diverging
/// epoch (KIP-320) and still names topics (v13 switched to topic ids).
const REPLICA_FETCH_VERSION: i16 = 12;
/// How long a fetcher waits before retrying after an error.
const FETCH_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a fetcher whose every partition is throttled waits before looking again.
const THROTTLE_WAIT_MAX: Duration = Duration::from_secs(1);

/// A running fetcher and the channel that hands it its partitions.
type Fetcher = (JoinHandle<()>, watch::Sender<Vec<Arc<Partition>>>);

/// The follower fetchers: one task per leader broker this node follows partitions of.
#[derive(Default)]
pub struct Fetchers {
    tasks: Mutex<HashMap<BrokerId, Fetcher>>,
}

impl Fetchers {
    /// Points the fetchers at the partitions this node now follows: starts a task for a new
    /// leader, hands each task its partitions, stops tasks with nothing left to fetch.
    pub fn update(&self, broker: &Arc<Broker>) {
        let node = BrokerId(broker.config.node_id);
        let mut by_leader: BTreeMap<BrokerId, Vec<Arc<Partition>>> = BTreeMap::new();
        for partition in broker.topics.partitions() {
            match partition.replica_state().leader {
                Some(leader) if leader != node => {
                    by_leader.entry(leader).or_default().push(partition)
                }
                _ => {}
            }
        }
        let mut tasks = self.tasks.lock();
        tasks.retain(|leader, (task, _)| {
            let keep = by_leader.contains_key(leader) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (leader, partitions) in by_leader {
            match tasks.get(&leader) {
                Some((_, assigned)) => {
                    assigned.send_if_modified(|current| {
                        let same = current.len() == partitions.len()
                            && current
                                .iter()
                                .zip(&partitions)
                                .all(|(a, b)| Arc::ptr_eq(a, b));
                        if !same {
                            *current = partitions;
                        }
                        !same
                    });
                }
                None => {
                    let (assigned, receiver) = watch::channel(partitions);
                    let task = tokio::spawn(fetch_from(broker.clone(), leader, receiver));
                    tasks.insert(leader, (task, assigned));
                }
            }
        }
    }

    pub fn stop(&self) {
        for (_, (task, _)) in self.tasks.lock().drain() {
            task.abort();
        }
    }
}

/// One leader's fetcher: fetches every assigned partition from `leader` in one request,
/// long-polling, until aborted.
async fn fetch_from(
    broker: Arc<Broker>,
    leader: BrokerId,
    mut assigned: watch::Receiver<Vec<Arc<Partition>>>,
) {
    let mut options = ConnectionOptions {
        client_id: format!("strom-replica-fetcher-{}", broker.config.node_id),
        ..ConnectionOptions::default()
    };
    let mut connection: Option<Connection> = None;
    loop {
        let partitions = assigned.borrow_and_update().clone();
        if partitions.is_empty() {
            if assigned.changed().await.is_err() {
                return;
            }
            continue;
        }
        if connection.as_ref().is_none_or(Connection::is_closed) {
            let Some(address) = broker_address(&broker, leader) else {
                tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
                continue;
            };
            // Read at each connect: a keystore changed at runtime serves the next one.
            options.security = broker.inter_broker_security();
            match Connection::connect(&address, &options).await {
                Ok(connected) => connection = Some(connected),
                Err(error) => {
                    tracing::debug!(leader = %leader, %error, "cannot reach the leader to fetch from");
                    tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let conn = connection.as_ref().expect("connected above");
        let (request, sent) = fetch_request(&broker, &partitions);
        if sent.is_empty() {
            // Every partition is held back by the follower's replication throttle.
            let limit = follower_throttle_rate(&broker);
            let wait = broker.follower_throttle.wait(limit, Instant::now());
            tokio::time::sleep(wait.clamp(FETCH_RETRY_BACKOFF, THROTTLE_WAIT_MAX)).await;
            continue;
        }
        let wait_ms = broker.config.cluster.replica_fetch_wait_max_ms;
        let timeout_ms = wait_ms + 10_000;
        let response = tokio::select! {
            response = conn.send_versioned(&request, REPLICA_FETCH_VERSION, timeout_ms) => response,
            _ = assigned.changed() => {
                // New partitions to follow: fetch them now. Not on this connection, where the
                // leader answers in request order and so would hold the new fetch behind the
                // abandoned long poll for up to replica.fetch.wait.max.ms (the first acks=all
                // produces to a new topic waited 200-560 ms for it); on a new one.
                connection = None;
                continue;
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(leader = %leader, %error, "replica fetch failed");
                connection = None;
                tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
                continue;
            }
        };
        let mut answers = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                let key = (
                    topic.topic.to_string(),
                    PartitionIndex(data.partition_index),
                );
                if let Some((partition, epoch, throttled)) = sent.get(&key) {
                    if *throttled {
                        let bytes = data.records.as_ref().map_or(0, |records| records.len());
                        broker.follower_throttle.record(bytes, Instant::now());
                    }
                    answers.push((partition.clone(), *epoch, data));
                }
            }
        }
        let applying = tokio::task::spawn_blocking(move || {
            let mut backoff = false;
            for (partition, epoch, data) in answers {
                backoff |= !apply(&partition, epoch, data);
            }
            backoff
        });
        let backoff = match applying.await {
            Ok(backoff) => backoff,
            // A panic applying fetched data is a bug: let it fail the task loudly (the next
            // metadata change starts a new fetcher) rather than carry on as if it backed off.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => return,
        };
        if backoff {
            tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
        }
    }
}

/// Applies one partition's answer; false when the fetcher should back off (an error the next
/// metadata change will resolve).
fn apply(partition: &Partition, epoch: LeaderEpoch, data: PartitionData) -> bool {
    match partition.apply_fetched(epoch, fetched_data(data)) {
        Ok(Applied::Fetched | Applied::Truncated | Applied::Stale) => true,
        Err(error) if error.is_fatal() => {
            tracing::error!(topic = %partition.topic(), partition = %partition.index(), %error, "cannot apply fetched records");
            false
        }
        Err(error) => {
            tracing::debug!(topic = %partition.topic(), partition = %partition.index(), %error, "replica fetch not applied");
            false
        }
    }
}

fn broker_address(broker: &Broker, id: BrokerId) -> Option<String> {
    let image = broker.quorum.image();
    let registration = image.brokers.get(&id.0)?;
    Some(format!("{}:{}", registration.host, registration.port))
}

/// The partitions a fetch asked for, by topic name and index, with the leader epoch each was
/// fetched in and whether the follower's replication throttle counts its bytes.
type Sent = HashMap<(String, PartitionIndex), (Arc<Partition>, LeaderEpoch, bool)>;

fn follower_throttle_rate(broker: &Broker) -> u64 {
    (broker.effective_config().cluster).follower_replication_throttled_rate
}

/// Whether this node's replica of `partition` is throttled as a follower: listed in its
/// topic's `follower.replication.throttled.replicas` and out of the ISR.
fn follower_throttled(broker: &Broker, partition: &Partition) -> bool {
    let node = broker.config.node_id;
    let listed = (broker.topics.get(partition.topic().as_str()))
        .is_some_and(|topic| (topic.config.follower_throttled).includes(partition.index().0, node));
    listed && !partition.replica_state().isr.contains(&BrokerId(node))
}

/// The Fetch request for `partitions`, and what it asked for.
fn fetch_request(broker: &Broker, partitions: &[Arc<Partition>]) -> (FetchRequest, Sent) {
    let config = &broker.config.cluster;
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let mut sent = HashMap::with_capacity(partitions.len());
    // Without a follower replication rate nothing is throttled: no topic is looked up.
    let limit = follower_throttle_rate(broker);
    let held_back = broker.follower_throttle.exceeded(limit, Instant::now());
    for partition in partitions {
        let throttled = held_back.is_some() && follower_throttled(broker, partition);
        if throttled && held_back == Some(true) {
            continue;
        }
        // A partition whose fsync failed stops fetching: what it reports would not be on disk.
        let Some((position, log_start_offset, epoch)) = partition.follower_position() else {
            continue;
        };
        let fetch = FetchPartition::default()
            .with_partition(partition.index().0)
            .with_current_leader_epoch(epoch.0)
            .with_fetch_offset(position.fetch_offset.0)
            .with_last_fetched_epoch(position.last_fetched_epoch.map_or(-1, |epoch| epoch.0))
            .with_log_start_offset(log_start_offset.0)
            .with_partition_max_bytes(config.replica_fetch_max_bytes as i32);
        let topic = partition.topic().to_string();
        topics.entry(topic.clone()).or_default().push(fetch);
        sent.insert(
            (topic, partition.index()),
            (partition.clone(), epoch, throttled),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(broker.config.node_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, sent)
}

/// One partition's part of a fetch answer, in the partition's terms.
fn fetched_data(data: PartitionData) -> FetchedData {
    let diverging = &data.diverging_epoch;
    let diverging_epoch = (diverging.epoch >= 0 || diverging.end_offset >= 0)
        .then_some((LeaderEpoch(diverging.epoch), Offset(diverging.end_offset)));
    FetchedData {
        error: ErrorCode::from_code(data.error_code).unwrap_or(ErrorCode::UnknownServerError),
        high_watermark: Offset(data.high_watermark),
        log_start_offset: Offset(data.log_start_offset),
        diverging_epoch,
        records: data.records,
    }
}
