//! Kafka's ISR replication: followers fetch from the leader with the Fetch API (replica id
//! set), the leader tracks each follower's log end, advances the high watermark to the
//! smallest log end in the ISR, and asks the controller (AlterIsr) to drop followers that
//! fall behind for `replica.lag.time.max.ms` and to add back those that catch up.
//!
//! - [`Progress`]: per partition, the high watermark (published on a watch channel so acks=all
//!   produces and fetches can wait for it) and, on the leader, each follower's progress.
//! - Leader side: [`record_follower_fetch`] (called by the Fetch handler for replica fetches)
//!   and [`run_isr_maintenance`] (a periodic task that shrinks ISRs).
//! - Follower side: [`Fetchers`], one task per leader broker fetching all the partitions this
//!   node follows from it; each response is appended with `Log::append_as_follower` and fsynced
//!   before the next fetch, so a follower's fetch offset tells the leader what it holds on
//!   disk. A diverging epoch in the response (KIP-320) truncates the follower's divergent tail
//!   first.
//!
//! Durability rule: an acks=all write is acknowledged once it is fsynced on the leader and
//! below the high watermark, i.e. every ISR member has it on disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use strom_client::connection::{Connection, ConnectionOptions};
use strom_metadata::MetadataCommand;
use strom_types::{ErrorCode, Offset};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::topics::Partition;
use crate::Broker;

/// The Fetch version followers speak: v12 carries `last_fetched_epoch` and the diverging
/// epoch (KIP-320) and still names topics (v13 switched to topic ids).
const REPLICA_FETCH_VERSION: i16 = 12;
/// How long a fetcher waits before retrying after an error.
const FETCH_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// A follower as the leader sees it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The follower's log end (its last fetch offset): it holds everything below on disk.
    /// -1 until it fetches in this leader epoch.
    log_end: Offset,
    /// The last time the follower had caught up with the leader's log end.
    caught_up_at: Instant,
    /// When it last fetched, and the leader's log end then (Kafka's rule: a fetch that reaches
    /// the log end seen at the previous fetch means it was caught up at that time).
    fetched_at: Instant,
    leader_end_at_fetch: Offset,
}

#[derive(Default)]
struct LeaderProgress {
    followers: HashMap<i32, Follower>,
    /// An AlterIsr proposal is on its way; do not send another.
    isr_change_in_flight: bool,
}

/// Per-partition replication state.
pub struct Progress {
    high_watermark: watch::Sender<i64>,
    leader: Mutex<LeaderProgress>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            high_watermark: watch::channel(-1).0,
            leader: Mutex::new(LeaderProgress::default()),
        }
    }
}

impl Progress {
    /// The high watermark: consumers see records below it. -1 while unknown.
    pub fn high_watermark(&self) -> Offset {
        Offset(*self.high_watermark.borrow())
    }

    /// A receiver that sees every change of the high watermark.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    fn raise_high_watermark(&self, to: Offset) -> bool {
        self.high_watermark.send_if_modified(|current| {
            let raise = to.0 > *current;
            if raise {
                *current = to.0;
            }
            raise
        })
    }

    /// A follower's high watermark is the leader's, capped at its own log end.
    fn set_high_watermark(&self, to: Offset) {
        self.high_watermark.send_if_modified(|current| {
            let changed = to.0 != *current;
            *current = to.0;
            changed
        });
    }
}

/// The partition's leader epoch changed (new leader, or this node took over): start the
/// leader's view of its followers afresh, every ISR member counted as caught up now.
pub fn on_new_leader_epoch(partition: &Partition, node: i32) {
    on_new_leader_epoch_at(partition, node, Instant::now());
}

/// [`on_new_leader_epoch`] at a given time (the simulation tests run their own clock).
pub fn on_new_leader_epoch_at(partition: &Partition, node: i32, now: Instant) {
    let state = partition.state();
    let mut leader = partition.replication.leader.lock();
    leader.isr_change_in_flight = false;
    leader.followers.clear();
    if state.leader != node {
        return;
    }
    for &replica in state.replicas.iter().filter(|r| **r != node) {
        leader.followers.insert(replica, fresh_follower(now));
    }
    drop(leader);
    let (start, end) = {
        let log = partition.log.lock();
        (log.log_start_offset(), log.log_end_offset())
    };
    if partition.replication.high_watermark().0 < 0 {
        // Nothing is known below which every ISR member has the data; start at the log start
        // and let the followers' fetches move it (at once when the ISR is this node alone).
        partition.replication.set_high_watermark(start);
    }
    advance_high_watermark(partition, node, end);
}

fn fresh_follower(now: Instant) -> Follower {
    Follower {
        log_end: Offset(-1),
        caught_up_at: now,
        fetched_at: now,
        leader_end_at_fetch: Offset(-1),
    }
}

/// The ISR changed within the same leader epoch.
pub fn on_isr_change(partition: &Partition, node: i32) {
    partition.replication.leader.lock().isr_change_in_flight = false;
    if partition.is_led_by(node) {
        let end = partition.log.lock().log_end_offset();
        advance_high_watermark(partition, node, end);
    }
}

/// On the leader: raises the high watermark to the smallest log end among the ISR (the
/// leader's being `leader_end`). Returns whether it moved.
pub fn advance_high_watermark(partition: &Partition, node: i32, leader_end: Offset) -> bool {
    let state = partition.state.read();
    if state.leader != node {
        return false;
    }
    let leader = partition.replication.leader.lock();
    let mut candidate = leader_end;
    for member in state.isr.iter().filter(|member| **member != node) {
        let end = leader
            .followers
            .get(member)
            .map_or(Offset(-1), |follower| follower.log_end);
        candidate = candidate.min(end);
    }
    drop(leader);
    drop(state);
    partition.replication.raise_high_watermark(candidate)
}

/// What the leader makes of a follower's fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerFetch {
    /// KIP-320: the follower's last fetched epoch ends at `end` here, before its fetch offset
    /// (or is an epoch this log does not have): it must truncate first.
    Diverging { epoch: i32, end: Offset },
    /// Serve records from the fetch offset up to `log_end`. `high_watermark_moved` says the
    /// follower's progress raised the high watermark; `rejoin` is the ISR to propose when the
    /// follower has caught up from outside the ISR.
    Serve {
        log_end: Offset,
        high_watermark_moved: bool,
        rejoin: Option<Vec<i32>>,
    },
    /// The fetch offset is outside this log.
    OutOfRange,
}

/// The leader side of a follower's fetch at `fetch_offset` whose last fetched batch was in
/// `last_fetched_epoch`: the divergence check, then the follower's progress (which may move
/// the high watermark) and whether it rejoins the ISR.
pub fn on_follower_fetch(
    partition: &Partition,
    node: i32,
    follower: i32,
    fetch_offset: Offset,
    last_fetched_epoch: i32,
    now: Instant,
) -> FollowerFetch {
    let log = partition.log.lock();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    if last_fetched_epoch >= 0 {
        if let Some((epoch, epoch_end)) = log.end_offset_for_epoch(last_fetched_epoch) {
            if epoch != last_fetched_epoch || epoch_end < fetch_offset {
                return FollowerFetch::Diverging {
                    epoch,
                    end: epoch_end,
                };
            }
        }
    }
    drop(log);
    if fetch_offset < start || fetch_offset > end {
        return FollowerFetch::OutOfRange;
    }
    let high_watermark_moved =
        note_follower_fetch(partition, node, follower, fetch_offset, end, now);
    FollowerFetch::Serve {
        log_end: end,
        high_watermark_moved,
        rejoin: isr_with_rejoined(partition, node, follower, fetch_offset),
    }
}

/// Records a follower's fetch (Kafka's rule for when it was last caught up) and moves the
/// high watermark. Returns whether it moved.
fn note_follower_fetch(
    partition: &Partition,
    node: i32,
    follower: i32,
    fetch_offset: Offset,
    leader_end: Offset,
    now: Instant,
) -> bool {
    {
        let mut leader = partition.replication.leader.lock();
        let entry = leader
            .followers
            .entry(follower)
            .or_insert_with(|| fresh_follower(now));
        if fetch_offset >= leader_end {
            entry.caught_up_at = now;
        } else if fetch_offset >= entry.leader_end_at_fetch && entry.leader_end_at_fetch.0 >= 0 {
            entry.caught_up_at = entry.caught_up_at.max(entry.fetched_at);
        }
        entry.log_end = fetch_offset;
        entry.fetched_at = now;
        entry.leader_end_at_fetch = leader_end;
    }
    advance_high_watermark(partition, node, leader_end)
}

/// The ISR with `follower` added, if it is a replica outside the ISR that has caught up to
/// the high watermark.
fn isr_with_rejoined(
    partition: &Partition,
    node: i32,
    follower: i32,
    fetch_offset: Offset,
) -> Option<Vec<i32>> {
    let state = partition.state();
    let rejoins = state.leader == node
        && state.replicas.contains(&follower)
        && !state.isr.contains(&follower)
        && fetch_offset >= partition.replication.high_watermark();
    rejoins.then(|| {
        let mut isr = state.isr.clone();
        isr.push(follower);
        isr
    })
}

/// The ISR members other than the leader that have not caught up within `lag_max`.
pub(crate) fn lagging_followers(
    partition: &Partition,
    node: i32,
    now: Instant,
    lag_max: Duration,
) -> Vec<i32> {
    let state = partition.state();
    let leader = partition.replication.leader.lock();
    state
        .isr
        .iter()
        .copied()
        .filter(|member| *member != node)
        .filter(|member| {
            leader
                .followers
                .get(member)
                .is_none_or(|follower| now.duration_since(follower.caught_up_at) > lag_max)
        })
        .collect()
}

/// Proposes a new ISR for a partition this node leads, unless a proposal is on its way (a
/// shrink from the ISR maintenance, or a rejoin from [`on_follower_fetch`]).
pub fn propose_isr(broker: &Arc<Broker>, partition: &Arc<Partition>, isr: Vec<i32>) {
    {
        let mut leader = partition.replication.leader.lock();
        if leader.isr_change_in_flight {
            return;
        }
        leader.isr_change_in_flight = true;
    }
    let state = partition.state();
    let command = MetadataCommand::AlterIsr {
        topic: partition.topic_id,
        partition: partition.index.0,
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        isr: isr.clone(),
    };
    tracing::info!(topic = %partition.topic, partition = partition.index.0, old_isr = ?state.isr, new_isr = ?isr, "proposing an ISR change");
    let (broker, partition) = (broker.clone(), partition.clone());
    tokio::spawn(async move {
        if let Err(error) = crate::cluster::propose(&broker, command).await {
            tracing::warn!(topic = %partition.topic, partition = partition.index.0, %error, "ISR change refused");
        }
        partition.replication.leader.lock().isr_change_in_flight = false;
    });
}

/// Every quarter of `replica.lag.time.max.ms`, drops from the ISR of each partition this node
/// leads the followers that have not caught up for that long.
pub async fn run_isr_maintenance(broker: Arc<Broker>) {
    let lag_max = Duration::from_millis(broker.config.cluster.replica_lag_time_max_ms);
    let mut ticker = tokio::time::interval((lag_max / 4).max(Duration::from_millis(50)));
    let node = broker.config.node_id;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        for topic in broker.topics.all() {
            for partition in &topic.partitions {
                let state = partition.state();
                if state.leader != node || state.isr.len() <= 1 {
                    continue;
                }
                let lagging = lagging_followers(partition, node, now, lag_max);
                if !lagging.is_empty() {
                    let isr = state
                        .isr
                        .iter()
                        .copied()
                        .filter(|member| !lagging.contains(member))
                        .collect();
                    propose_isr(&broker, partition, isr);
                }
            }
        }
    }
}

/// A running fetcher and the channel that hands it its partitions.
type Fetcher = (JoinHandle<()>, watch::Sender<Vec<Arc<Partition>>>);

/// The follower fetchers: one task per leader broker this node follows partitions of.
#[derive(Default)]
pub struct Fetchers {
    tasks: Mutex<HashMap<i32, Fetcher>>,
}

impl Fetchers {
    /// Points the fetchers at the partitions this node now follows: starts a task for a new
    /// leader, hands each task its partitions, stops tasks with nothing left to fetch.
    pub fn update(&self, broker: &Arc<Broker>) {
        let node = broker.config.node_id;
        let mut by_leader: BTreeMap<i32, Vec<Arc<Partition>>> = BTreeMap::new();
        for topic in broker.topics.all() {
            for partition in &topic.partitions {
                let state = partition.state();
                if state.leader >= 0 && state.leader != node {
                    by_leader
                        .entry(state.leader)
                        .or_default()
                        .push(partition.clone());
                }
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
    leader: i32,
    mut assigned: watch::Receiver<Vec<Arc<Partition>>>,
) {
    let options = ConnectionOptions {
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
            match Connection::connect(&address, &options).await {
                Ok(connected) => connection = Some(connected),
                Err(error) => {
                    tracing::debug!(leader, %error, "cannot reach the leader to fetch from");
                    tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let conn = connection.as_ref().expect("connected above");
        let (request, sent) = fetch_request(&broker, &partitions);
        let wait_ms = broker.config.cluster.replica_fetch_wait_max_ms;
        let timeout_ms = wait_ms + 10_000;
        let response = tokio::select! {
            response = conn.send_versioned(&request, REPLICA_FETCH_VERSION, timeout_ms) => response,
            _ = assigned.changed() => continue,
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(leader, %error, "replica fetch failed");
                connection = None;
                tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
                continue;
            }
        };
        let mut answers = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                if let Some((partition, epoch)) = sent.iter().find(|(p, _)| {
                    p.topic.as_str() == topic.topic.as_str() && p.index.0 == data.partition_index
                }) {
                    answers.push((partition.clone(), *epoch, data));
                }
            }
        }
        let backoff = tokio::task::spawn_blocking(move || {
            let mut backoff = false;
            for (partition, epoch, data) in answers {
                backoff |= !apply_fetched(&partition, epoch, data);
            }
            backoff
        })
        .await
        .unwrap_or(true);
        if backoff {
            tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
        }
    }
}

fn broker_address(broker: &Broker, id: i32) -> Option<String> {
    let image = broker.quorum.image();
    let registration = image.brokers.get(&id)?;
    Some(format!("{}:{}", registration.host, registration.port))
}

/// The Fetch request for `partitions`, and the leader epoch each was fetched in.
fn fetch_request(
    broker: &Broker,
    partitions: &[Arc<Partition>],
) -> (FetchRequest, Vec<(Arc<Partition>, i32)>) {
    let config = &broker.config.cluster;
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let mut sent = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let epoch = partition.state.read().leader_epoch;
        let log = partition.log.lock();
        let fetch = FetchPartition::default()
            .with_partition(partition.index.0)
            .with_current_leader_epoch(epoch)
            .with_fetch_offset(log.log_end_offset().0)
            .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(log.log_start_offset().0)
            .with_partition_max_bytes(config.replica_fetch_max_bytes as i32);
        drop(log);
        topics
            .entry(partition.topic.to_string())
            .or_default()
            .push(fetch);
        sent.push((partition.clone(), epoch));
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
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, sent)
}

/// Applies one partition's fetch answer on the follower: truncates a divergent tail, or
/// appends and fsyncs the records, then takes the leader's high watermark. Returns false when
/// the fetcher should back off (an error the next metadata change will resolve).
pub(crate) fn apply_fetched(partition: &Partition, epoch: i32, data: PartitionData) -> bool {
    if partition.state.read().leader_epoch != epoch {
        return true; // The partition moved on while the fetch was out; refetch.
    }
    let code = ErrorCode::from_code(data.error_code).unwrap_or(ErrorCode::UnknownServerError);
    let mut log = partition.log.lock();
    match code {
        ErrorCode::None => {}
        ErrorCode::OffsetOutOfRange if data.log_start_offset > log.log_end_offset().0 => {
            // The leader deleted what this follower needs next: start over at its log start.
            let start = Offset(data.log_start_offset);
            tracing::info!(topic = %partition.topic, partition = partition.index.0, %start, "follower behind the leader's log start; restarting its log there");
            if let Err(error) = log.truncate_fully_and_start_at(start) {
                tracing::error!(topic = %partition.topic, partition = partition.index.0, %error, "cannot restart the follower log");
            }
            return true;
        }
        ErrorCode::OffsetOutOfRange if data.high_watermark >= 0 => {
            // Ahead of the leader without a diverging epoch to say where: keep what every ISR
            // member had (the high watermark) and fetch the rest again.
            let to = Offset(data.high_watermark);
            tracing::warn!(topic = %partition.topic, partition = partition.index.0, %to, "follower ahead of the leader; truncating to its high watermark");
            if let Err(error) = log.truncate_to(to) {
                tracing::error!(topic = %partition.topic, partition = partition.index.0, %error, "cannot truncate the follower log");
            }
            return true;
        }
        other => {
            tracing::debug!(topic = %partition.topic, partition = partition.index.0, error = other.name(), "replica fetch refused");
            return false;
        }
    }
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        let leader_epoch = data.diverging_epoch.epoch;
        let leader_end = Offset(data.diverging_epoch.end_offset);
        let to = match log.end_offset_for_epoch(leader_epoch) {
            Some((epoch, end)) if epoch == leader_epoch => end.min(leader_end),
            Some((_, end)) => end,
            None => leader_end.max(Offset(0)).min(log.log_end_offset()),
        };
        tracing::info!(topic = %partition.topic, partition = partition.index.0, leader_epoch, %leader_end, truncate_to = %to, "truncating the follower's divergent tail");
        if let Err(error) = log.truncate_to(to) {
            tracing::error!(topic = %partition.topic, partition = partition.index.0, %error, "cannot truncate the follower log");
            return false;
        }
        let mut producers = partition.producers.lock();
        *producers = crate::producers::ProducerStates::default();
        return true;
    }
    if let Some(records) = data.records.filter(|records| !records.is_empty()) {
        let mut owned = BytesMut::from(&records[..]);
        match log.append_as_follower(&mut owned) {
            Ok(_) => {
                let mut producers = partition.producers.lock();
                for (header, _) in strom_protocol::batch::Batches::new(&owned) {
                    producers.record(&header);
                }
            }
            Err(error) => {
                tracing::warn!(topic = %partition.topic, partition = partition.index.0, %error, "cannot append fetched records");
                return false;
            }
        }
        // On disk before the next fetch tells the leader we have it.
        let handle = log.sync_handle();
        drop(log);
        match handle.sync() {
            Ok(offset) => partition.log.lock().mark_durable(offset),
            Err(error) => {
                tracing::error!(topic = %partition.topic, partition = partition.index.0, %error, "follower fsync failed");
                return false;
            }
        }
        log = partition.log.lock();
    }
    let end = log.log_end_offset();
    drop(log);
    if data.high_watermark >= 0 {
        partition
            .replication
            .set_high_watermark(Offset(data.high_watermark).min(end));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::ReplicaState;
    use strom_log::{Log, LogConfig};
    use strom_types::{PartitionIndex, TopicName};

    const LEADER: i32 = 1;

    fn partition(dir: &std::path::Path, isr: &[i32], records: usize) -> Partition {
        let mut log = Log::open(dir, LogConfig::default()).unwrap();
        for _ in 0..records {
            let record = (
                bytes::Bytes::from_static(b"k"),
                Some(bytes::Bytes::from_static(b"v")),
            );
            let mut batch = crate::groups::encode_batch(vec![record]).unwrap();
            log.append_with_epoch(&mut batch, None, 0).unwrap();
        }
        let partition = Partition {
            topic: TopicName::new("t").unwrap(),
            topic_id: uuid::Uuid::new_v4(),
            index: PartitionIndex(0),
            log: parking_lot::Mutex::new(log),
            producers: Default::default(),
            state: parking_lot::RwLock::new(ReplicaState {
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
                leader: LEADER,
                leader_epoch: 0,
                partition_epoch: 0,
            }),
            replication: Progress::default(),
            sync: Default::default(),
        };
        on_new_leader_epoch(&partition, LEADER);
        partition
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_in_the_isr_and_never_falls() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), &[1, 2, 3], 10);
        let now = Instant::now();
        assert_eq!(
            p.replication.high_watermark(),
            Offset(0),
            "no follower has fetched yet"
        );
        assert!(!note_follower_fetch(
            &p,
            LEADER,
            2,
            Offset(7),
            Offset(10),
            now
        ));
        assert_eq!(
            p.replication.high_watermark(),
            Offset(0),
            "follower 3 still unknown"
        );
        assert!(note_follower_fetch(
            &p,
            LEADER,
            3,
            Offset(4),
            Offset(10),
            now
        ));
        assert_eq!(p.replication.high_watermark(), Offset(4));
        assert!(note_follower_fetch(
            &p,
            LEADER,
            3,
            Offset(10),
            Offset(10),
            now
        ));
        assert_eq!(p.replication.high_watermark(), Offset(7));
        // A follower that restarted lower does not pull the high watermark back.
        note_follower_fetch(&p, LEADER, 2, Offset(3), Offset(10), now);
        assert_eq!(p.replication.high_watermark(), Offset(7));
    }

    #[test]
    fn replicas_outside_the_isr_do_not_hold_the_high_watermark_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), &[1, 2], 5);
        note_follower_fetch(&p, LEADER, 2, Offset(5), Offset(5), Instant::now());
        assert_eq!(p.replication.high_watermark(), Offset(5));
        assert_eq!(
            isr_with_rejoined(&p, LEADER, 3, Offset(4)),
            None,
            "behind the HW"
        );
        assert_eq!(
            isr_with_rejoined(&p, LEADER, 3, Offset(5)),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_leader_alone_in_the_isr_has_its_log_end_as_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), &[1], 3);
        assert_eq!(p.replication.high_watermark(), Offset(3));
        let end = p.log.lock().log_end_offset();
        assert!(!advance_high_watermark(&p, LEADER, end));
        assert!(
            !advance_high_watermark(&p, 2, Offset(9)),
            "only the leader moves it"
        );
    }

    #[test]
    fn followers_that_do_not_catch_up_within_the_lag_leave_the_isr() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), &[1, 2, 3], 10);
        let start = Instant::now();
        let lag = Duration::from_millis(100);
        // 2 keeps reaching the log end seen at its previous fetch; 3 stays behind.
        let at = |ms| start + Duration::from_millis(ms);
        note_follower_fetch(&p, LEADER, 2, Offset(10), Offset(10), at(0));
        note_follower_fetch(&p, LEADER, 3, Offset(2), Offset(10), at(0));
        note_follower_fetch(&p, LEADER, 2, Offset(12), Offset(12), at(80));
        note_follower_fetch(&p, LEADER, 3, Offset(3), Offset(12), at(80));
        let later = at(150);
        note_follower_fetch(&p, LEADER, 2, Offset(12), Offset(14), later);
        note_follower_fetch(&p, LEADER, 3, Offset(4), Offset(14), later);
        assert_eq!(lagging_followers(&p, LEADER, later, lag), vec![3]);
    }
}
