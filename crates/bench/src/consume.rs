//! `strom bench consume`, and the consumer the end-to-end bench reuses.
//!
//! Like produce, the work is split into lanes: one per connection, `--connections` per
//! partition leader, each owning some of the leader's partitions. A lane keeps one fetch in
//! flight, as Kafka's consumers do, for all its partitions at once, and walks the batches
//! that come back without copying them: it counts the records between its position and the
//! end, adds up their payload and, for the end-to-end bench, reads each value's send stamp.
//! By default it reads from the log start to the end offsets as they were when it started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use strom_client::{ClientError, Connection, OffsetSpec};
use strom_protocol::batch::{verify_crc, BatchError, Batches};
use strom_types::{Offset, PartitionIndex};
use tokio::sync::watch;

use crate::args::{CommonArgs, ConsumerArgs, Limit, LimitArgs};
use crate::batch::{read_stamp, walk_records};
use crate::cluster::{self, unix_ns, TopicLayout};
use crate::error::BenchError;
use crate::produce::spread;
use crate::progress::{Counters, Progress};
use crate::report::Report;
use crate::stats::{Latencies, Throughput};

/// Longest the bench waits for a fetch's answer beyond the wait the fetch asks for.
const FETCH_TIMEOUT_MS: u64 = 30_000;

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// The topic to read; it must exist.
    #[arg(long, short = 't', default_value = "strom-bench")]
    pub topic: String,
    /// Start at the end of each partition and read what arrives (needs --records or
    /// --duration); by default, read from the log start to the end offsets at start.
    #[arg(long)]
    pub from_end: bool,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// TCP connections to each partition leader; partitions are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: u16,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Where each partition's reading stops (exclusive); `None` while not known yet.
pub type Ends = Option<BTreeMap<PartitionIndex, Offset>>;

/// Everything a consumer run needs, resolved.
#[derive(Debug, Clone)]
pub struct ConsumerPlan {
    pub layout: TopicLayout,
    pub starts: BTreeMap<PartitionIndex, Offset>,
    /// Stop after this many records (at least), or this long; `None`: at the ends.
    pub limit: Option<Limit>,
    pub connections: usize,
    pub fetch: ConsumerArgs,
    /// Record end-to-end latencies from value stamps sent at or after this time (Unix ns).
    pub stamps_from_ns: Option<u64>,
}

/// Settings as the report shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerSettings {
    pub partitions: usize,
    pub connections: usize,
    pub fetch_wait_ms: u32,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: u64,
    pub partition_max_bytes: u64,
    pub check_crc: bool,
}

impl ConsumerPlan {
    pub fn settings(&self) -> ConsumerSettings {
        ConsumerSettings {
            partitions: self.layout.partitions.len(),
            connections: self.connections,
            fetch_wait_ms: self.fetch.fetch_wait_ms,
            fetch_min_bytes: self.fetch.fetch_min_bytes,
            fetch_max_bytes: self.fetch.fetch_max_bytes,
            partition_max_bytes: self.fetch.partition_max_bytes,
            check_crc: self.fetch.check_crc,
        }
    }
}

/// What a consumer run did.
#[derive(Clone)]
pub struct ConsumeOutcome {
    pub throughput: Throughput,
    pub fetch_latencies: Latencies,
    pub end_to_end: Latencies,
    /// Records without a send stamp (the end-to-end bench counts them, not their latency).
    pub unstamped: u64,
    pub fetches: u64,
    /// Where each partition's reading stopped.
    pub positions: BTreeMap<PartitionIndex, Offset>,
}

/// `strom bench consume`.
pub async fn run(args: ConsumeArgs) -> Result<Report, BenchError> {
    let client = cluster::connect(&args.common.bootstrap, &args.common.security()?).await?;
    let layout = cluster::existing_topic(&client, &args.topic).await?;
    let partitions: Vec<PartitionIndex> = layout
        .partitions
        .iter()
        .map(|(partition, _)| *partition)
        .collect();
    let limit = args.limit.limit_or_none();
    let (start_spec, ends) = if args.from_end {
        if limit.is_none() {
            return Err(BenchError::InvalidArgument(
                "--from-end reads what arrives: give --records or --duration".to_string(),
            ));
        }
        (OffsetSpec::Latest, None)
    } else {
        let ends = cluster::offsets(&client, &layout.name, &partitions, OffsetSpec::Latest).await?;
        (
            OffsetSpec::Earliest,
            Some(partitions.iter().copied().zip(ends).collect()),
        )
    };
    let starts = cluster::offsets(&client, &layout.name, &partitions, start_spec).await?;
    let plan = ConsumerPlan {
        layout,
        starts: partitions.iter().copied().zip(starts).collect(),
        limit,
        connections: usize::from(args.connections),
        fetch: args.consumer.clone(),
        stamps_from_ns: None,
    };
    let total = match (&ends, limit) {
        (_, Some(limit)) => Some(limit),
        (Some(ends), None) => Some(Limit::Records(records_between(&plan.starts, ends))),
        (None, None) => None,
    };
    let progress = Progress::start("consume", total);
    let (_ends_sender, ends_receiver) = watch::channel(ends);
    let outcome = run_consumer(&plan, ends_receiver, progress.counters()).await;
    progress.finish();
    let outcome = outcome?;
    let mut report = Report::new("consume", &plan.layout.name, &plan.settings());
    report.throughput = Some(outcome.throughput);
    report.fetch_latency = outcome.fetch_latencies.summary();
    report.fetches = Some(outcome.fetches);
    Ok(report)
}

/// Records between the starts and the ends, summed over the partitions.
pub fn records_between(
    starts: &BTreeMap<PartitionIndex, Offset>,
    ends: &BTreeMap<PartitionIndex, Offset>,
) -> u64 {
    starts
        .iter()
        .map(|(partition, start)| {
            ends.get(partition)
                .map_or(0, |end| end.minus(*start).max(0) as u64)
        })
        .sum()
}

impl LimitArgs {
    /// The limit given, if any.
    pub fn limit_or_none(&self) -> Option<Limit> {
        match (self.records, self.duration) {
            (Some(records), _) => Some(Limit::Records(records)),
            (None, Some(duration)) => Some(Limit::Time(duration)),
            (None, None) => None,
        }
    }
}

/// What every consumer lane shares.
struct ConsumerContext {
    topic_name: TopicName,
    topic: String,
    fetch: ConsumerArgs,
    records_max: Option<u64>,
    deadline: Option<Instant>,
    stamps_from_ns: Option<u64>,
    /// Records counted by every lane, for the record limit.
    records: AtomicU64,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct LaneOutcome {
    records: u64,
    payload_bytes: u64,
    batch_bytes: u64,
    unstamped: u64,
    fetches: u64,
    fetch_latencies: Latencies,
    end_to_end: Latencies,
    positions: BTreeMap<PartitionIndex, Offset>,
    last_record: Option<Instant>,
}

/// Runs a consumer until every partition reaches its end (once `ends` holds them), or its
/// limit. `counters` see every fetched batch.
pub async fn run_consumer(
    plan: &ConsumerPlan,
    ends: watch::Receiver<Ends>,
    counters: Arc<Counters>,
) -> Result<ConsumeOutcome, BenchError> {
    // Connect first, so that the clock measures reading only.
    let mut lanes = Vec::new();
    for (leader, partitions) in plan.layout.by_leader() {
        let ways = plan.connections.min(partitions.len());
        for share in spread(&partitions, ways) {
            let connection = plan.layout.connect_to(leader).await?;
            let positions: BTreeMap<PartitionIndex, Offset> = share
                .iter()
                .map(|partition| (*partition, plan.starts[partition]))
                .collect();
            lanes.push((connection, positions));
        }
    }
    let start = Instant::now();
    let context = Arc::new(ConsumerContext {
        topic_name: TopicName(StrBytes::from_string(plan.layout.name.clone())),
        topic: plan.layout.name.clone(),
        fetch: plan.fetch.clone(),
        records_max: match plan.limit {
            Some(Limit::Records(records)) => Some(records),
            _ => None,
        },
        deadline: match plan.limit {
            Some(Limit::Time(duration)) => Some(start + duration),
            _ => None,
        },
        stamps_from_ns: plan.stamps_from_ns,
        records: AtomicU64::new(0),
        counters,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (connection, positions) in lanes {
        tasks.spawn(run_lane(
            connection,
            positions,
            context.clone(),
            ends.clone(),
        ));
    }
    let mut total = LaneOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        let lane = joined.expect("consumer lanes do not panic")?;
        total.records += lane.records;
        total.payload_bytes += lane.payload_bytes;
        total.batch_bytes += lane.batch_bytes;
        total.unstamped += lane.unstamped;
        total.fetches += lane.fetches;
        total.fetch_latencies.add(&lane.fetch_latencies);
        total.end_to_end.add(&lane.end_to_end);
        total.positions.extend(lane.positions);
        total.last_record = total.last_record.max(lane.last_record);
    }
    let elapsed = total.last_record.unwrap_or(start).duration_since(start);
    Ok(ConsumeOutcome {
        throughput: Throughput::new(
            total.records,
            total.payload_bytes,
            total.batch_bytes,
            elapsed,
        ),
        fetch_latencies: total.fetch_latencies,
        end_to_end: total.end_to_end,
        unstamped: total.unstamped,
        fetches: total.fetches,
        positions: total.positions,
    })
}

/// A lane: fetches its partitions until each reaches its end or the limit is hit.
async fn run_lane(
    connection: Arc<Connection>,
    mut positions: BTreeMap<PartitionIndex, Offset>,
    context: Arc<ConsumerContext>,
    ends: watch::Receiver<Ends>,
) -> Result<LaneOutcome, BenchError> {
    let mut outcome = LaneOutcome::default();
    let timeout_ms = FETCH_TIMEOUT_MS + u64::from(context.fetch.fetch_wait_ms);
    loop {
        let known_ends = ends.borrow().clone();
        let wanted: Vec<(PartitionIndex, Offset)> = positions
            .iter()
            .filter(|(partition, position)| {
                known_ends
                    .as_ref()
                    .is_none_or(|ends| ends.get(partition).is_some_and(|end| *position < end))
            })
            .map(|(partition, position)| (*partition, *position))
            .collect();
        let limit_reached = context
            .records_max
            .is_some_and(|max| context.records.load(Ordering::Relaxed) >= max);
        if wanted.is_empty() || limit_reached {
            break;
        }
        let request = fetch_request(&context.topic_name, &wanted, &context.fetch);
        let sent = Instant::now();
        let deadline = context
            .deadline
            .unwrap_or(sent + Duration::from_secs(86_400 * 365));
        let response = tokio::select! {
            response = connection.send_with_timeout(&request, timeout_ms) => response?,
            _ = tokio::time::sleep_until(deadline.into()) => break,
        };
        let arrived = Instant::now();
        let arrived_ns = unix_ns();
        outcome.fetches += 1;
        outcome.fetch_latencies.record(arrived - sent);
        let tally = take_response(
            &response,
            &context,
            &mut positions,
            known_ends.as_ref(),
            arrived_ns,
            &mut outcome.end_to_end,
        )?;
        if tally.records > 0 {
            outcome.last_record = Some(arrived);
        }
        outcome.records += tally.records;
        outcome.payload_bytes += tally.payload_bytes;
        outcome.batch_bytes += tally.batch_bytes;
        outcome.unstamped += tally.unstamped;
        context.records.fetch_add(tally.records, Ordering::Relaxed);
        context.counters.add(tally.records, tally.payload_bytes);
    }
    outcome.positions = positions;
    Ok(outcome)
}

/// A fetch of one topic's partitions from the given positions, with a consumer's settings.
pub fn fetch_request(
    topic_name: &TopicName,
    wanted: &[(PartitionIndex, Offset)],
    fetch: &ConsumerArgs,
) -> FetchRequest {
    let partition_max_bytes = i32::try_from(fetch.partition_max_bytes).unwrap_or(i32::MAX);
    let partitions = wanted
        .iter()
        .map(|(partition, position)| {
            FetchPartition::default()
                .with_partition(partition.0)
                .with_fetch_offset(position.0)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(fetch.fetch_wait_ms).unwrap_or(i32::MAX))
        .with_min_bytes(fetch.fetch_min_bytes)
        .with_max_bytes(i32::try_from(fetch.fetch_max_bytes).unwrap_or(i32::MAX))
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name.clone())
            .with_partitions(partitions)])
}

/// Counts what one fetch response brought, moving the positions on.
fn take_response(
    response: &FetchResponse,
    context: &ConsumerContext,
    positions: &mut BTreeMap<PartitionIndex, Offset>,
    ends: Option<&BTreeMap<PartitionIndex, Offset>>,
    arrived_ns: u64,
    end_to_end: &mut Latencies,
) -> Result<Tally, BenchError> {
    if response.error_code != 0 {
        return Err(
            ClientError::from_code(response.error_code, None, Some(&context.topic), None).into(),
        );
    }
    let mut total = Tally::default();
    for topic in response
        .responses
        .iter()
        .filter(|topic| topic.topic.as_str() == context.topic)
    {
        for data in &topic.partitions {
            let partition = PartitionIndex(data.partition_index);
            let Some(position) = positions.get_mut(&partition) else {
                continue;
            };
            if data.error_code != 0 {
                return Err(ClientError::from_code(
                    data.error_code,
                    None,
                    Some(&context.topic),
                    Some(partition),
                )
                .into());
            }
            let Some(records) = &data.records else {
                continue;
            };
            let end = ends.and_then(|ends| ends.get(&partition).copied());
            let stamps_from_ns = context.stamps_from_ns;
            let tally = tally_batches(records, position, end, context.fetch.check_crc, |stamp| {
                if stamps_from_ns.is_some_and(|from| stamp >= from) {
                    end_to_end.record_us(arrived_ns.saturating_sub(stamp) / 1_000);
                }
            })?;
            total.add(&tally);
        }
    }
    Ok(total)
}

/// What a run of batches held between a position and an end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub payload_bytes: u64,
    pub batch_bytes: u64,
    /// Records counted whose value carries no send stamp.
    pub unstamped: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.records += other.records;
        self.payload_bytes += other.payload_bytes;
        self.batch_bytes += other.batch_bytes;
        self.unstamped += other.unstamped;
    }
}

/// Walks the whole batches in `records` (a partition's part of a fetch response), counting
/// the records at or after `*position` and before `end`, and moves `*position` past the last
/// whole batch. A partial batch at the end (the response was cut at its byte limit) is left
/// for the next fetch. `on_stamp` sees each counted record's send stamp.
pub fn tally_batches(
    records: &Bytes,
    position: &mut Offset,
    end: Option<Offset>,
    check_crc: bool,
    mut on_stamp: impl FnMut(u64),
) -> Result<Tally, BenchError> {
    let mut tally = Tally::default();
    let mut batches = Batches::new(records);
    let end = end.unwrap_or(Offset(i64::MAX));
    for (header, range) in batches.by_ref() {
        if header.next_offset() <= *position {
            continue;
        }
        if *position >= end {
            break;
        }
        let batch = records.slice(range);
        if check_crc {
            verify_crc(&batch, &header).map_err(|error| {
                BenchError::Codec(format!("at offset {}: {error}", header.base_offset))
            })?;
        }
        let from = *position;
        *position = header.next_offset();
        tally.batch_bytes += batch.len() as u64;
        if header.is_control() {
            continue;
        }
        walk_records(&header, &batch, |record| {
            if record.offset < from.0 || record.offset >= end.0 {
                return;
            }
            tally.records += 1;
            let value = record.value.unwrap_or_default();
            tally.payload_bytes += (record.key_bytes + value.len()) as u64;
            match read_stamp(value) {
                Some(stamp) => on_stamp(stamp),
                None => tally.unstamped += 1,
            }
        })?;
    }
    match batches.error() {
        None | Some(BatchError::Truncated { .. }) => Ok(tally),
        Some(error) => Err(BenchError::Codec(format!(
            "after offset {position}: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchTemplate, Codec, TemplateShape};
    use strom_protocol::batch::set_base_offset;

    /// Batches of `records` each as a broker would return them from `base`.
    fn stored(counts: &[usize], base: i64, stamp: Option<u64>) -> Bytes {
        let shape = TemplateShape {
            value_bytes: 20,
            keys: vec![b"k".to_vec()],
            batch_bytes_max: 10_000,
            codec: Codec::Lz4,
        };
        let template = BatchTemplate::build(&shape, 1, 1).unwrap();
        let mut out = Vec::new();
        let mut offset = base;
        for &count in counts {
            let batch = match stamp {
                Some(stamp) => template.stamped(count, stamp, 1).unwrap(),
                None => template.prefix(count, 1).unwrap(),
            };
            let mut batch = batch.to_vec();
            set_base_offset(&mut batch, Offset(offset));
            offset += count as i64;
            out.extend_from_slice(&batch);
        }
        Bytes::from(out)
    }

    #[test]
    fn counts_records_from_the_position_to_the_end() {
        let records = stored(&[10, 10, 10], 100, None);
        let mut position = Offset(105);
        let tally =
            tally_batches(&records, &mut position, Some(Offset(125)), true, |_| {}).unwrap();
        assert_eq!(tally.records, 20, "offsets 105..125");
        assert_eq!(
            tally.payload_bytes,
            20 * 21,
            "one-byte key and 20-byte value each"
        );
        assert_eq!(tally.unstamped, 20);
        assert_eq!(position, Offset(130), "past the last batch touched");
        // Again from there: nothing new before the end.
        let tally =
            tally_batches(&records, &mut position, Some(Offset(125)), false, |_| {}).unwrap();
        assert_eq!(tally.records, 0);
    }

    #[test]
    fn a_cut_batch_waits_and_stamps_are_seen() {
        let records = stored(&[3, 4], 0, Some(7_000));
        let cut = records.slice(..records.len() - 10);
        let mut position = Offset(0);
        let mut stamps = Vec::new();
        let tally =
            tally_batches(&cut, &mut position, None, true, |stamp| stamps.push(stamp)).unwrap();
        assert_eq!((tally.records, position), (3, Offset(3)));
        assert_eq!(stamps, vec![7_000; 3]);
        assert_eq!(tally.unstamped, 0);
    }

    #[test]
    fn a_corrupt_batch_fails_the_crc_check() {
        let mut records = stored(&[5], 0, None).to_vec();
        let last = records.len() - 1;
        records[last] ^= 0x40;
        let records = Bytes::from(records);
        let error = tally_batches(&records, &mut Offset(0), None, true, |_| {}).unwrap_err();
        assert!(error.to_string().contains("CRC"), "{error}");
    }

    #[test]
    fn records_between_sums_partitions() {
        let starts = BTreeMap::from([
            (PartitionIndex(0), Offset(5)),
            (PartitionIndex(1), Offset(0)),
        ]);
        let ends = BTreeMap::from([
            (PartitionIndex(0), Offset(15)),
            (PartitionIndex(1), Offset(7)),
        ]);
        assert_eq!(records_between(&starts, &ends), 17);
    }
}
