//! `/metrics`: the process's Prometheus recorder, and the gauges read off the broker at each
//! scrape.
//!
//! Two kinds of series, rendered one after the other in Prometheus' text format by
//! `metrics-exporter-prometheus`: what the broker counts as it works (requests, latencies,
//! traffic, ISR changes, elections, connections, fsyncs), held by the process's recorder made
//! in [`install`]; and what describes state now (partitions under-replicated or offline, log
//! sizes, consumer lag), set on a recorder made afresh for each scrape, so that a topic or a
//! group that is gone leaves no stale series behind. Per-partition series exist only for
//! consumer lag, as the issue asks, so a node of 10,000 partitions stays scrapeable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strom_broker::telemetry as names;
use strom_broker::Broker;
use strom_types::PartitionIndex;

use crate::state::AdminState;

/// Request latencies from 100 µs to 30 s (a produce with acks=1 is well under a millisecond
/// here, a long-poll fetch waits up to its max_wait_ms, 500 ms by default).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// fsync latencies from 50 µs to 10 s.
const FLUSH_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

const FLUSH_LATENCY: &str = strom_log::FLUSH_LATENCY_METRIC;

/// How often histogram samples are folded into their buckets when nobody scrapes (the
/// recorder keeps samples until then).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Makes the process's Prometheus recorder and installs it as the `metrics` facade's global
/// recorder; call it before the broker starts, so the handles it registers count here.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::REQUEST_LATENCY.into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(FLUSH_LATENCY.into()), FLUSH_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    describe_counted();
    strom_broker::telemetry::register_all();
    Ok(handle)
}

/// Folds histogram samples into buckets every few seconds, scraped or not.
pub async fn run_upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

fn describe_counted() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        "Requests answered, by API and the error the answer carries (none, or Kafka's error name; MALFORMED_FRAME for frames refused before any handler)."
    );
    describe_histogram!(
        names::REQUEST_LATENCY,
        "Time from a request's arrival to its response being ready, by API."
    );
    describe_counter!(
        names::TOPIC_RECORDS_IN,
        "Records producers appended, by topic."
    );
    describe_counter!(
        names::TOPIC_BYTES_IN,
        "Record batch bytes producers appended, by topic."
    );
    describe_counter!(
        names::TOPIC_BYTES_OUT,
        "Record bytes sent to consumers, by topic."
    );
    describe_counter!(
        names::REPLICATION_BYTES_OUT,
        "Record bytes sent to followers."
    );
    describe_counter!(
        names::ISR_SHRINKS,
        "ISR shrinks of partitions this node leads."
    );
    describe_counter!(
        names::ISR_EXPANDS,
        "ISR expansions of partitions this node leads."
    );
    describe_counter!(
        names::LEADER_ELECTIONS,
        "Leaderships this node took in a new leader epoch (sum over the nodes for the cluster)."
    );
    describe_counter!(
        names::UNCLEAN_LEADER_ELECTIONS,
        "Leaderships this node took without being in the ISR."
    );
    describe_gauge!(names::CONNECTIONS, "Open client connections, by listener.");
    describe_histogram!(FLUSH_LATENCY, "Time each group commit's fsyncs took.");
}

pub fn routes() -> Router<AdminState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AdminState>) -> impl IntoResponse {
    state.process().collect();
    let mut text = state.prometheus().render();
    if let Some(broker) = state.broker().cloned() {
        match render_current(broker).await {
            Ok(current) => text.push_str(&current),
            Err(error) => tracing::error!(%error, "reading the broker's state for /metrics failed"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The state gauges: groups and partitions are read off the async threads (they walk every
/// hosted partition); high watermarks of partitions hosted elsewhere are asked of their
/// leaders.
async fn render_current(broker: Arc<Broker>) -> Result<String, tokio::task::JoinError> {
    let reading = broker.clone();
    let groups = tokio::task::spawn_blocking(move || coordinated_groups(&reading)).await?;
    let remote = remote_high_watermarks(&broker, &groups).await;
    tokio::task::spawn_blocking(move || render_state(&broker, &groups, &remote)).await
}

/// The gauges that describe the broker's state now, rendered from a recorder of their own.
pub fn render_state(broker: &Broker, groups: &Groups, remote: &HighWatermarks) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        partition_gauges(broker);
        node_gauges(broker);
        group_gauges(broker, groups, remote);
    });
    handle.render()
}

pub const PARTITIONS_UNDER_REPLICATED: &str = "strom_partitions_under_replicated";
pub const PARTITIONS_UNDER_MIN_ISR: &str = "strom_partitions_under_min_isr";
pub const PARTITIONS_OFFLINE: &str = "strom_partitions_offline";
pub const PARTITIONS_LEADER: &str = "strom_partitions_leader";
pub const CONTROLLER_ACTIVE: &str = "strom_controller_active";
pub const METADATA_LOG_END_OFFSET: &str = "strom_metadata_log_end_offset";
pub const LOG_SIZE: &str = "strom_log_size_bytes";
pub const DISK_FREE: &str = "strom_disk_free_bytes";
pub const GROUP_LAG: &str = "strom_consumer_group_lag";
pub const GROUP_MEMBERS: &str = "strom_consumer_group_members";

/// Kafka's per-leader partition gauges (each partition is counted by its leader, so the
/// cluster's figure is the sum over the nodes), the offline count from the active controller
/// only (as Kafka's OfflinePartitionsCount), and log sizes per topic.
fn partition_gauges(broker: &Broker) {
    use metrics::{describe_gauge, gauge};
    let node = broker.node();
    let image = broker.quorum.image();
    let (mut under_replicated, mut under_min_isr, mut leader) = (0u64, 0u64, 0u64);
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for topic in broker.topics.all() {
        let size = sizes.entry(topic.name.to_string()).or_default();
        *size += topic.partitions.iter().map(|p| p.size_bytes()).sum::<u64>();
        let Some(state) = image.topics.get(topic.name.as_str()) else {
            continue;
        };
        for partition in state.partitions.iter().filter(|p| p.leader == node.0) {
            leader += 1;
            // Kafka's rule: replicas a reassignment is still adding do not count as missing.
            let replicas = partition.replicas.len() - partition.adding.len();
            under_replicated += u64::from(partition.isr.len() < replicas);
            under_min_isr +=
                u64::from((partition.isr.len() as i32) < topic.config.min_insync_replicas);
        }
    }
    let active = broker.quorum.leader() == Some(node.0);
    let offline = match active {
        true => (image.topics.values())
            .flat_map(|topic| topic.partitions.iter())
            .filter(|partition| partition.leader < 0)
            .count(),
        false => 0,
    };
    describe_gauge!(
        PARTITIONS_UNDER_REPLICATED,
        "Partitions this node leads whose ISR is smaller than their replica set."
    );
    describe_gauge!(
        PARTITIONS_UNDER_MIN_ISR,
        "Partitions this node leads whose ISR is below min.insync.replicas (acks=all produces fail)."
    );
    describe_gauge!(
        PARTITIONS_OFFLINE,
        "Partitions without a leader, reported by the active controller (0 on other nodes)."
    );
    describe_gauge!(PARTITIONS_LEADER, "Partitions this node leads.");
    describe_gauge!(
        LOG_SIZE,
        "Bytes of the logs of a topic's partitions this node hosts."
    );
    gauge!(PARTITIONS_UNDER_REPLICATED).set(under_replicated as f64);
    gauge!(PARTITIONS_UNDER_MIN_ISR).set(under_min_isr as f64);
    gauge!(PARTITIONS_OFFLINE).set(offline as f64);
    gauge!(PARTITIONS_LEADER).set(leader as f64);
    for (topic, bytes) in sizes {
        gauge!(LOG_SIZE, "topic" => topic).set(bytes as f64);
    }
}

fn node_gauges(broker: &Broker) {
    use metrics::{describe_gauge, gauge};
    let active = broker.quorum.leader() == Some(broker.node().0);
    let status = broker.quorum.status();
    describe_gauge!(
        CONTROLLER_ACTIVE,
        "1 on the metadata quorum's leader, else 0."
    );
    describe_gauge!(
        METADATA_LOG_END_OFFSET,
        "Index of the last entry in this node's metadata log."
    );
    describe_gauge!(
        DISK_FREE,
        "Bytes free for the broker on the data directory's filesystem."
    );
    gauge!(CONTROLLER_ACTIVE).set(if active { 1.0 } else { 0.0 });
    gauge!(METADATA_LOG_END_OFFSET).set(status.last_log_index.unwrap_or(0) as f64);
    match rustix::fs::statvfs(&broker.config.data_dir) {
        Ok(stats) => {
            gauge!(DISK_FREE).set((stats.f_bavail as f64) * (stats.f_frsize as f64));
        }
        Err(error) => tracing::debug!(%error, "statvfs of the data directory failed"),
    }
}

/// What this node coordinates: committed offsets as (group, topic, partition, offset), and
/// member counts, of the groups whose offsets partition it leads (each group is reported by
/// its coordinator alone).
#[derive(Default)]
pub struct Groups {
    committed: Vec<(String, String, i32, i64)>,
    members: Vec<(String, usize)>,
}

/// High watermarks by (topic, partition).
pub type HighWatermarks = BTreeMap<(String, i32), i64>;

/// How long a scrape waits for the leaders of partitions hosted elsewhere.
const REMOTE_HIGH_WATERMARKS_MS_MAX: u64 = 2_000;

fn coordinated_groups(broker: &Broker) -> Groups {
    let (committed, members): (Vec<_>, Vec<_>) = {
        let coordinator = broker.groups.coordinator();
        let committed = (coordinator.committed_offsets())
            .map(|(group, topic, partition, offset)| {
                (group.to_owned(), topic.to_owned(), partition, offset)
            })
            .collect();
        let members = (coordinator.member_counts().into_iter())
            .map(|(group, count)| (group.to_owned(), count))
            .collect();
        (committed, members)
    };
    let mut coordinated: BTreeMap<String, bool> = BTreeMap::new();
    let mut is_coordinator = |group: &str| {
        *coordinated
            .entry(group.to_owned())
            .or_insert_with(|| broker.groups.is_coordinator(group))
    };
    Groups {
        committed: (committed.into_iter())
            .filter(|(group, ..)| is_coordinator(group))
            .collect(),
        members: (members.into_iter())
            .filter(|(group, _)| is_coordinator(group))
            .collect(),
    }
}

/// A partition's high watermark if this node hosts it (a follower's trails its leader's by
/// a fetch at most).
fn local_high_watermark(broker: &Broker, topic: &str, partition: i32) -> Option<i64> {
    let hosted = broker.topics.get(topic)?;
    let high_watermark = hosted
        .partition(PartitionIndex(partition))?
        .high_watermark()
        .0;
    (high_watermark >= 0).then_some(high_watermark)
}

/// The high watermarks of the committed partitions this node does not host, asked of their
/// leaders with one ListOffsets each (over the inter-broker connections the transaction
/// runtime keeps); a leader that does not answer in time leaves its partitions out.
async fn remote_high_watermarks(broker: &Arc<Broker>, groups: &Groups) -> HighWatermarks {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId as WireBrokerId, ListOffsetsRequest, TopicName};
    let image = broker.quorum.image();
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (_, topic, partition, _) in &groups.committed {
        if local_high_watermark(broker, topic, *partition).is_some() {
            continue;
        }
        let leader = (image.topics.get(topic))
            .and_then(|t| t.partitions.iter().find(|p| p.index == *partition))
            .map(|p| p.leader)
            .filter(|&leader| leader >= 0 && leader != broker.node().0);
        if let Some(leader) = leader {
            let partitions = by_leader.entry(leader).or_default().entry(topic.clone());
            let partitions = partitions.or_default();
            if !partitions.contains(partition) {
                partitions.push(*partition);
            }
        }
    }
    // Every leader at once, under one deadline: a scrape waits 2 s at most, however many
    // leaders do not answer.
    let mut asking = tokio::task::JoinSet::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(WireBrokerId(-1))
            .with_topics(
                (topics.into_iter())
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(topic.into()))
                            .with_partitions(
                                (partitions.into_iter())
                                    .map(|index| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(index)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let broker = broker.clone();
        asking.spawn(async move {
            let connection = broker.transactions.peer(&broker, leader).await.ok()?;
            connection.send(&request).await.ok()
        });
    }
    let mut found = HighWatermarks::new();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(REMOTE_HIGH_WATERMARKS_MS_MAX);
    while let Ok(Some(answered)) = tokio::time::timeout_at(deadline, asking.join_next()).await {
        let Ok(Some(response)) = answered else {
            continue;
        };
        for topic in response.topics {
            for partition in topic.partitions {
                if partition.error_code == 0 && partition.offset >= 0 {
                    let key = (topic.name.to_string(), partition.partition_index);
                    found.insert(key, partition.offset);
                }
            }
        }
    }
    if !asking.is_empty() {
        tracing::debug!(
            leaders = asking.len(),
            "no high watermarks in time from some leaders for consumer lag"
        );
    }
    found
}

/// Lag (high watermark minus committed offset, per partition) and members of the groups this
/// node coordinates.
fn group_gauges(broker: &Broker, groups: &Groups, remote: &HighWatermarks) {
    use metrics::{describe_gauge, gauge};
    describe_gauge!(
        GROUP_LAG,
        "Records between a group's committed offset and the partition's high watermark, from the group's coordinator."
    );
    describe_gauge!(
        GROUP_MEMBERS,
        "Members of a group, from the group's coordinator."
    );
    for (group, topic, partition, offset) in &groups.committed {
        let high_watermark = local_high_watermark(broker, topic, *partition)
            .or_else(|| remote.get(&(topic.clone(), *partition)).copied());
        let Some(high_watermark) = high_watermark.filter(|_| *offset >= 0) else {
            continue;
        };
        let lag = (high_watermark - offset).max(0);
        gauge!(GROUP_LAG, "group" => group.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
            .set(lag as f64);
    }
    for (group, count) in &groups.members {
        gauge!(GROUP_MEMBERS, "group" => group.clone()).set(*count as f64);
    }
}
