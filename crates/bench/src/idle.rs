//! `strom bench idle-fetch`: consumers that long-poll partitions nothing is written to.
//!
//! They cost an efficient broker almost nothing: a fetch waits on its own partitions and is
//! woken only by appends to them. A broker that wakes every waiting fetch on every append pays
//! appends × waiters re-reads instead. Run beside a `strom bench produce` to another topic, they
//! show that cost as the broker's CPU per produced record, with and without them (the suite's
//! idle-consumer cases do exactly this).
//!
//! Each of `--connections` connections (per partition leader) is one idle consumer: it owns its
//! share of the topic's partitions (1,000 partitions over 200 connections: 5 each), starts at
//! their end offsets and keeps one fetch in flight, as Kafka's consumers do. Records that do
//! arrive are counted and read past, so the consumers stay at the end.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use strom_client::{ClientError, Connection, OffsetSpec};
use strom_types::{Offset, PartitionIndex};
use tokio::sync::watch;

use crate::args::{parse_seconds, CommonArgs, ConsumerArgs, Limit};
use crate::cluster::{self, TopicLayout};
use crate::consume::{fetch_request, tally_batches, Tally};
use crate::error::BenchError;
use crate::produce::spread;
use crate::progress::{Counters, Progress};
use crate::report::Report;
use crate::stats::{Latencies, Throughput};

/// Longest the bench waits for a fetch's answer beyond the wait the fetch asks for.
const FETCH_TIMEOUT_MS: u64 = 30_000;

#[derive(clap::Args, Debug, Clone)]
pub struct IdleFetchArgs {
    /// The topic to long-poll; created with --partitions partitions if missing. Produce to
    /// another topic meanwhile, or these consumers are not idle.
    #[arg(long, short = 't', default_value = "strom-bench-idle")]
    pub topic: String,
    /// Partitions, when the bench creates the topic.
    #[arg(long, short = 'p', default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// Replication factor, when the bench creates the topic (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub replication_factor: i16,
    /// Idle consumers (TCP connections) per partition leader; the partitions are spread over
    /// them.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub connections: u16,
    /// How long the consumers poll.
    #[arg(long, short = 'd', default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Settings as the report shows them.
#[derive(Debug, Clone, Serialize)]
struct IdleSettings {
    partitions: usize,
    connections: usize,
    fetch_wait_ms: u32,
    fetch_min_bytes: i32,
}

/// What the idle consumers did while they polled.
#[derive(Clone)]
pub struct IdleOutcome {
    /// The topic's partitions, all polled.
    pub partitions: usize,
    pub connections: usize,
    pub fetches: u64,
    pub fetch_latencies: Latencies,
    /// Records that arrived after all (none, if the topic was left alone).
    pub arrived: Throughput,
    /// From the first fetch sent to the last answered (the fetches in flight at the stop are
    /// neither counted nor timed, as a throughput's last records are those answered).
    pub elapsed: Duration,
}

impl IdleOutcome {
    pub fn fetches_per_s(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.fetches as f64 / seconds
        } else {
            0.0
        }
    }
}

/// `strom bench idle-fetch`.
pub async fn run(args: IdleFetchArgs) -> Result<Report, BenchError> {
    let progress = Progress::start("idle-fetch", Some(Limit::Time(args.duration)));
    let counters = progress.counters();
    // The time starts once the consumers poll, not while the topic is created.
    let duration = args.duration;
    let until = async move { tokio::time::sleep(duration).await };
    let outcome = run_until(&args, counters, || {}, until).await;
    progress.finish();
    let outcome = outcome?;
    let settings = IdleSettings {
        partitions: outcome.partitions,
        connections: outcome.connections,
        fetch_wait_ms: args.consumer.fetch_wait_ms,
        fetch_min_bytes: args.consumer.fetch_min_bytes,
    };
    let mut report = Report::new("idle-fetch", &args.topic, &settings);
    report.consumed = Some(outcome.arrived);
    report.fetch_latency = outcome.fetch_latencies.summary();
    report.fetches = Some(outcome.fetches);
    report.fetches_per_s = Some(outcome.fetches_per_s());
    Ok(report)
}

/// Runs the idle consumers: calls `ready` once every consumer's connection is open and its
/// first fetch is about to leave, then polls until `until` completes.
pub async fn run_until(
    args: &IdleFetchArgs,
    counters: Arc<Counters>,
    ready: impl FnOnce(),
    until: impl Future<Output = ()>,
) -> Result<IdleOutcome, BenchError> {
    let client = cluster::connect(&args.common.bootstrap, &args.common.security()?).await?;
    let layout = cluster::ensure_topic(
        &client,
        &args.topic,
        args.partitions,
        args.replication_factor,
    )
    .await?;
    let lanes = open_lanes(&client, &layout, usize::from(args.connections)).await?;
    let connections = lanes.len();
    let topic_name = TopicName(StrBytes::from_string(layout.name.clone()));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (connection, positions) in lanes {
        tasks.spawn(poll(
            connection,
            positions,
            topic_name.clone(),
            args.consumer.clone(),
            counters.clone(),
            stopped.clone(),
        ));
    }
    let start = Instant::now();
    ready();
    // A consumer that fails ends the run early, with its error.
    let failed = tokio::select! {
        () = until => None,
        Some(joined) = tasks.join_next() => Some(joined.expect("idle consumers do not panic")),
    };
    let _ = stop.send(true);
    let mut total = LaneOutcome::default();
    if let Some(lane) = failed {
        total.add(lane?);
    }
    while let Some(joined) = tasks.join_next().await {
        total.add(joined.expect("idle consumers do not panic")?);
    }
    let elapsed = total.last_answer.unwrap_or(start).duration_since(start);
    Ok(IdleOutcome {
        partitions: layout.partitions.len(),
        connections,
        fetches: total.fetches,
        fetch_latencies: total.fetch_latencies,
        arrived: Throughput::new(
            total.tally.records,
            total.tally.payload_bytes,
            total.tally.batch_bytes,
            elapsed,
        ),
        elapsed,
    })
}

type Lane = (Arc<Connection>, BTreeMap<PartitionIndex, Offset>);

/// Each leader's partitions spread over `connections` connections of their own, each with
/// its partitions' end offsets as the positions to poll at.
async fn open_lanes(
    client: &strom_client::Client,
    layout: &TopicLayout,
    connections: usize,
) -> Result<Vec<Lane>, BenchError> {
    let mut lanes = Vec::new();
    for (leader, partitions) in layout.by_leader() {
        let ends = cluster::offsets(client, &layout.name, &partitions, OffsetSpec::Latest).await?;
        let ends: BTreeMap<PartitionIndex, Offset> = partitions.iter().copied().zip(ends).collect();
        for share in spread(&partitions, connections.min(partitions.len())) {
            let connection = layout.connect_to(leader).await?;
            let positions = share
                .iter()
                .map(|partition| (*partition, ends[partition]))
                .collect();
            lanes.push((connection, positions));
        }
    }
    Ok(lanes)
}

#[derive(Default)]
struct LaneOutcome {
    fetches: u64,
    fetch_latencies: Latencies,
    tally: Tally,
    last_answer: Option<Instant>,
}

impl LaneOutcome {
    fn add(&mut self, other: LaneOutcome) {
        self.fetches += other.fetches;
        self.fetch_latencies.add(&other.fetch_latencies);
        self.tally.add(&other.tally);
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}

/// One idle consumer: a fetch in flight for all its partitions until stopped. The fetch in
/// flight at the stop is abandoned (not counted).
async fn poll(
    connection: Arc<Connection>,
    mut positions: BTreeMap<PartitionIndex, Offset>,
    topic_name: TopicName,
    fetch: ConsumerArgs,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) -> Result<LaneOutcome, BenchError> {
    let mut outcome = LaneOutcome::default();
    let timeout_ms = FETCH_TIMEOUT_MS + u64::from(fetch.fetch_wait_ms);
    while !*stopped.borrow() {
        let wanted: Vec<(PartitionIndex, Offset)> = positions
            .iter()
            .map(|(partition, position)| (*partition, *position))
            .collect();
        let request = fetch_request(&topic_name, &wanted, &fetch);
        let sent = Instant::now();
        let response = tokio::select! {
            response = connection.send_with_timeout(&request, timeout_ms) => response?,
            _ = stopped.changed() => break,
        };
        let answered = Instant::now();
        outcome.fetches += 1;
        outcome.fetch_latencies.record(answered - sent);
        outcome.last_answer = Some(answered);
        let tally = read_past(&response, topic_name.as_str(), &mut positions, &fetch)?;
        counters.add(tally.records, tally.payload_bytes);
        outcome.tally.add(&tally);
    }
    Ok(outcome)
}

/// Counts what a fetch brought (nothing, normally) and moves the positions past it.
fn read_past(
    response: &FetchResponse,
    topic: &str,
    positions: &mut BTreeMap<PartitionIndex, Offset>,
    fetch: &ConsumerArgs,
) -> Result<Tally, BenchError> {
    if response.error_code != 0 {
        return Err(ClientError::from_code(response.error_code, None, Some(topic), None).into());
    }
    let mut total = Tally::default();
    for data in response
        .responses
        .iter()
        .filter(|responses| responses.topic.as_str() == topic)
        .flat_map(|responses| &responses.partitions)
    {
        let partition = PartitionIndex(data.partition_index);
        let Some(position) = positions.get_mut(&partition) else {
            continue;
        };
        if data.error_code != 0 {
            return Err(ClientError::from_code(
                data.error_code,
                None,
                Some(topic),
                Some(partition),
            )
            .into());
        }
        if let Some(records) = &data.records {
            total.add(&tally_batches(
                records,
                position,
                None,
                fetch.check_crc,
                |_| {},
            )?);
        }
    }
    Ok(total)
}
