//! `strom bench produce`, and the producer the end-to-end bench and the suite reuse.
//!
//! The work is split into lanes: one per connection, `--connections` per partition leader, each
//! owning a share of the leader's partitions, of the record budget and of the rate. A lane is
//! one task that keeps up to `--in-flight` produce requests outstanding on its connection
//! (pipelined, answered in order by the broker) and fills batches the way Kafka's producers
//! do: records fall due at the rate ([`Schedule`]), go into the open batch of the lane's
//! current partition, and the batch is sent when it is full or its first record has waited
//! `--linger-ms`; then the lane moves to its next partition (the sticky partitioner).
//!
//! Batches come from [`BatchTemplate`]s built before the clock starts, so the hot loop does
//! arithmetic, clones a reference-counted buffer and encodes one request per batch. The
//! latency recorded is a request's: from handing it to the connection to its response.
//!
//! With `--idempotent` or `--transactional` each lane is a producer of its own
//! ([`LaneProducer`]): its batches carry its producer id and per-partition sequences (a copy of
//! the template with the header patched), and a transactional lane stops taking records when
//! its transaction is full, waits for every answer, commits, and starts the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use strom_client::{partition_for_key, Acks, ClientError, Connection};
use strom_types::PartitionIndex;

use crate::args::{acks_name, CommonArgs, Limit, LimitArgs, ProducerArgs, TopicArgs};
use crate::batch::{BatchTemplate, Codec, ProducerFields, TemplateShape};
use crate::cluster::{self, unix_ms, unix_ns, TopicLayout};
use crate::delivery::{Delivery, DeliveryArgs, LaneProducer, TransactionCounts};
use crate::error::BenchError;
use crate::progress::{Counters, Progress};
use crate::rate::{split_count, Schedule};
use crate::report::Report;
use crate::stats::{Latencies, Throughput};

/// How long the broker may take over one produce request (the request's `timeout_ms`), and
/// how long the bench waits for its answer beyond that.
const PRODUCE_TIMEOUT_MS: u64 = 30_000;
/// A load runs this long when neither `--records` nor `--duration` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Bytes in each record's value.
    #[arg(long, short = 's', default_value = "100", value_parser = crate::args::parse_bytes)]
    pub record_size: u64,
    /// Give records keys from a space of this many (fixed-width decimal); partitions follow
    /// Kafka's murmur2 partitioner. Without it, records have no key.
    #[arg(long)]
    pub keys: Option<u64>,
    /// Records per second to offer, spread evenly over time; 0 means as fast as possible.
    #[arg(long, short = 'r', default_value = "0", value_parser = crate::args::parse_rate)]
    pub rate: f64,
    #[command(flatten)]
    pub limit: LimitArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Everything a producer run needs, resolved.
#[derive(Debug, Clone)]
pub struct ProducerPlan {
    pub layout: TopicLayout,
    pub value_bytes: usize,
    pub keys: Option<u64>,
    pub limit: Limit,
    pub schedule: Schedule,
    pub connections: usize,
    pub in_flight: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub acks: Acks,
    pub codec: Codec,
    /// Stamp every record's value with its send time (the end-to-end bench).
    pub stamp: bool,
    pub delivery: Delivery,
}

impl ProducerPlan {
    pub fn new(
        layout: TopicLayout,
        producer: &ProducerArgs,
        value_bytes: u64,
        limit: Limit,
        rate: f64,
    ) -> Result<ProducerPlan, BenchError> {
        if value_bytes > 64 << 20 {
            return Err(BenchError::InvalidArgument(format!(
                "a {value_bytes}-byte record is larger than any broker accepts by default"
            )));
        }
        Ok(ProducerPlan {
            layout,
            value_bytes: value_bytes as usize,
            keys: None,
            limit,
            schedule: Schedule::new(Some(rate)),
            connections: usize::from(producer.connections),
            in_flight: usize::from(producer.in_flight),
            batch_bytes: producer.batch_size.min(u64::from(u32::MAX)) as usize,
            linger: Duration::from_millis(producer.linger_ms),
            acks: producer.acks,
            codec: producer.compression,
            stamp: false,
            delivery: Delivery::Plain,
        })
    }

    /// The same plan with an idempotent or transactional producer, if its settings allow one.
    pub fn with_delivery(mut self, delivery: Delivery) -> Result<ProducerPlan, BenchError> {
        delivery.check(self.acks, self.in_flight)?;
        self.delivery = delivery;
        Ok(self)
    }
}

/// What a producer run did.
#[derive(Clone)]
pub struct ProduceOutcome {
    pub throughput: Throughput,
    /// Produce request latencies (none with acks=0: the broker does not answer).
    pub latencies: Latencies,
    pub requests: u64,
    /// What the transactional lanes did (none for other producers).
    pub transactions: Option<TransactionFigures>,
}

/// A transactional producer run's transactions.
#[derive(Clone)]
pub struct TransactionFigures {
    pub counts: TransactionCounts,
    /// EndTxn (commit) latencies, one per transaction.
    pub commit_latencies: Latencies,
    /// AddPartitionsToTxn latencies, retries included: mostly one per transaction, the first
    /// waiting for the previous transaction's markers.
    pub add_partitions_latencies: Latencies,
}

/// Settings as the report shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerSettings {
    pub record_bytes: usize,
    pub keys: Option<u64>,
    pub partitions: usize,
    pub rate_per_s: Option<f64>,
    pub connections: usize,
    pub in_flight: usize,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    pub acks: &'static str,
    pub compression: Codec,
    /// plain, idempotent or transactional.
    pub delivery: &'static str,
    pub records_per_transaction: Option<u64>,
}

impl ProducerPlan {
    pub fn settings(&self) -> ProducerSettings {
        ProducerSettings {
            record_bytes: self.value_bytes,
            keys: self.keys,
            partitions: self.layout.partitions.len(),
            rate_per_s: self.schedule.rate_per_s(),
            connections: self.connections,
            in_flight: self.in_flight,
            batch_bytes: self.batch_bytes,
            linger_ms: self.linger.as_millis() as u64,
            acks: acks_name(self.acks),
            compression: self.codec,
            delivery: self.delivery.name(),
            records_per_transaction: self.delivery.records_per_transaction(),
        }
    }
}

/// `strom bench produce`.
pub async fn run(args: ProduceArgs) -> Result<Report, BenchError> {
    let client = cluster::connect(&args.common.bootstrap, &args.common.security()?).await?;
    let layout = cluster::ensure_topic(
        &client,
        &args.topic.topic,
        args.topic.partitions,
        args.topic.replication_factor,
    )
    .await?;
    let limit = args.limit.limit_or(Limit::Time(DEFAULT_DURATION));
    let mut plan = ProducerPlan::new(layout, &args.producer, args.record_size, limit, args.rate)?
        .with_delivery(Delivery::of(&args.delivery))?;
    plan.keys = args.keys;
    let progress = Progress::start("produce", Some(limit));
    let outcome = run_producer(&plan, progress.counters()).await;
    progress.finish();
    let outcome = outcome?;
    let mut report = Report::new("produce", &plan.layout.name, &plan.settings());
    report.throughput = Some(outcome.throughput);
    report.produce_latency = outcome.latencies.summary();
    report.produce_requests = Some(outcome.requests);
    if let Some(transactions) = &outcome.transactions {
        let count = transactions.counts.transactions;
        report.transactions = Some(count);
        report.transactions_per_s = Some(count as f64 / outcome.throughput.seconds.max(1e-9));
        report.commit_latency = transactions.commit_latencies.summary();
        report.add_partitions_latency = transactions.add_partitions_latencies.summary();
        report.coordinator_retries = Some(transactions.counts.coordinator_retries);
    }
    Ok(report)
}

/// One lane's share of the work, before it starts.
struct Lane {
    connection: Arc<Connection>,
    /// The lane's partitions, each with the template its batches come from.
    partitions: Vec<(PartitionIndex, Arc<BatchTemplate>)>,
    /// Records this lane produces at most (`None`: until the deadline).
    budget: Option<u64>,
    schedule: Schedule,
    producer: LaneProducer,
}

/// What every lane shares.
struct LaneContext {
    topic: String,
    topic_name: TopicName,
    acks: Acks,
    in_flight: usize,
    linger: Duration,
    stamp: bool,
    start: Instant,
    deadline: Option<Instant>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct LaneOutcome {
    records: u64,
    payload_bytes: u64,
    batch_bytes: u64,
    requests: u64,
    latencies: Latencies,
    last_answer: Option<Instant>,
    transactions: TransactionCounts,
    commit_latencies: Latencies,
    add_partitions_latencies: Latencies,
}

/// Runs a producer to its limit. `counters` see every acknowledged batch (every written one
/// with acks=0).
pub async fn run_producer(
    plan: &ProducerPlan,
    counters: Arc<Counters>,
) -> Result<ProduceOutcome, BenchError> {
    let lanes = plan_lanes(plan).await?;
    let start = Instant::now();
    let context = Arc::new(LaneContext {
        topic: plan.layout.name.clone(),
        topic_name: TopicName(StrBytes::from_string(plan.layout.name.clone())),
        acks: plan.acks,
        in_flight: plan.in_flight,
        linger: plan.linger,
        stamp: plan.stamp,
        start,
        deadline: match plan.limit {
            Limit::Time(duration) => Some(start + duration),
            Limit::Records(_) => None,
        },
        counters,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        tasks.spawn(run_lane(lane, context.clone()));
    }
    let mut total = LaneOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        let lane = joined.expect("producer lanes do not panic")?;
        total.records += lane.records;
        total.payload_bytes += lane.payload_bytes;
        total.batch_bytes += lane.batch_bytes;
        total.requests += lane.requests;
        total.latencies.add(&lane.latencies);
        total.last_answer = total.last_answer.max(lane.last_answer);
        total.transactions.transactions += lane.transactions.transactions;
        total.transactions.coordinator_retries += lane.transactions.coordinator_retries;
        total.commit_latencies.add(&lane.commit_latencies);
        total
            .add_partitions_latencies
            .add(&lane.add_partitions_latencies);
    }
    let elapsed = total.last_answer.unwrap_or(start).duration_since(start);
    Ok(ProduceOutcome {
        throughput: Throughput::new(
            total.records,
            total.payload_bytes,
            total.batch_bytes,
            elapsed,
        ),
        latencies: total.latencies,
        requests: total.requests,
        transactions: matches!(plan.delivery, Delivery::Transactional { .. }).then(|| {
            TransactionFigures {
                counts: total.transactions,
                commit_latencies: total.commit_latencies,
                add_partitions_latencies: total.add_partitions_latencies,
            }
        }),
    })
}

/// Splits the partitions, the budget and the rate over the lanes, opens their connections,
/// builds their templates and sets up their producers.
async fn plan_lanes(plan: &ProducerPlan) -> Result<Vec<Lane>, BenchError> {
    let templates = build_templates(plan)?;
    let mut lanes = Vec::new();
    for (leader, partitions) in plan.layout.by_leader() {
        let partitions: Vec<_> = partitions
            .into_iter()
            .filter_map(|partition| {
                templates
                    .get(&partition)
                    .map(|template| (partition, template.clone()))
            })
            .collect();
        for share in spread(&partitions, plan.connections) {
            let connection = plan.layout.connect_to(leader).await?;
            let producer = LaneProducer::start(
                plan.delivery,
                &connection,
                &plan.layout.security,
                lanes.len(),
                share.len(),
            )
            .await?;
            lanes.push(Lane {
                connection,
                partitions: share,
                budget: None,
                schedule: plan.schedule,
                producer,
            });
        }
    }
    if lanes.is_empty() {
        return Err(BenchError::InvalidArgument(format!(
            "topic '{}' has no partition to produce to (with --keys, no key falls in any partition)",
            plan.layout.name
        )));
    }
    let count = lanes.len();
    if let Limit::Records(records) = plan.limit {
        for (lane, budget) in lanes.iter_mut().zip(split_count(records, count)) {
            lane.budget = Some(budget);
        }
    }
    for lane in &mut lanes {
        lane.schedule = plan.schedule.share(count);
    }
    Ok(lanes)
}

/// Spreads items over `ways` groups round-robin; with fewer items than ways, items are reused
/// so that every group has one (several connections to one partition).
pub fn spread<T: Clone>(items: &[T], ways: usize) -> Vec<Vec<T>> {
    if items.is_empty() {
        return Vec::new();
    }
    let ways = ways.max(1);
    (0..ways)
        .map(|way| {
            let mine: Vec<T> = items.iter().skip(way).step_by(ways).cloned().collect();
            if mine.is_empty() {
                vec![items[way % items.len()].clone()]
            } else {
                mine
            }
        })
        .collect()
}

/// The template for each partition: one shared by all without keys, else one per partition
/// holding the keys that hash to it. Partitions no key hashes to get none.
fn build_templates(
    plan: &ProducerPlan,
) -> Result<BTreeMap<PartitionIndex, Arc<BatchTemplate>>, BenchError> {
    let now_ms = unix_ms();
    let shape = |keys: Vec<Vec<u8>>| TemplateShape {
        value_bytes: plan.value_bytes,
        keys,
        batch_bytes_max: plan.batch_bytes,
        codec: plan.codec,
    };
    let partitions: Vec<PartitionIndex> = plan
        .layout
        .partitions
        .iter()
        .map(|(partition, _)| *partition)
        .collect();
    let Some(key_space) = plan.keys else {
        let template = Arc::new(BatchTemplate::build(&shape(Vec::new()), 1, now_ms)?);
        return Ok(partitions
            .into_iter()
            .map(|partition| (partition, template.clone()))
            .collect());
    };
    let keys_per_partition = plan.batch_bytes / plan.value_bytes.max(1) + 1;
    let by_partition = keys_by_partition(key_space, partitions.len() as i32, keys_per_partition);
    let mut templates = BTreeMap::new();
    for (index, keys) in by_partition.into_iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        let template = BatchTemplate::build(&shape(keys), index as u64 + 1, now_ms)?;
        templates.insert(partitions[index], Arc::new(template));
    }
    Ok(templates)
}

/// The first keys of a space of `key_space` (fixed-width decimal) that hash to each of
/// `partition_count` partitions, at most `keys_max` each.
pub fn keys_by_partition(
    key_space: u64,
    partition_count: i32,
    keys_max: usize,
) -> Vec<Vec<Vec<u8>>> {
    let width = key_space.saturating_sub(1).max(1).to_string().len();
    let mut buckets: Vec<Vec<Vec<u8>>> = vec![Vec::new(); partition_count.max(0) as usize];
    let mut full = 0;
    for key in 0..key_space {
        let bytes = format!("{key:0width$}").into_bytes();
        let bucket = &mut buckets[partition_for_key(&bytes, partition_count).0 as usize];
        if bucket.len() < keys_max {
            bucket.push(bytes);
            if bucket.len() == keys_max {
                full += 1;
                if full == buckets.len() {
                    break;
                }
            }
        }
    }
    buckets
}

/// The batch a lane sends next, and how big it is.
struct Outgoing {
    partition: PartitionIndex,
    batch: bytes::Bytes,
    records: u64,
    payload_bytes: u64,
}

/// A lane: fills batches as records fall due and keeps requests in flight until its share is
/// done; a transactional lane commits each transaction once all its batches are answered.
async fn run_lane(lane: Lane, context: Arc<LaneContext>) -> Result<LaneOutcome, BenchError> {
    let Lane {
        connection,
        partitions,
        budget,
        schedule,
        mut producer,
    } = lane;
    let indexes: Vec<PartitionIndex> = partitions.iter().map(|(index, _)| *index).collect();
    let transactional_id = producer.transactional_id().cloned();
    let start = context.start;
    let mut outcome = LaneOutcome::default();
    let mut in_flight = FuturesUnordered::new();
    // Records the lane will create in all: its budget, or (once the deadline passes) those
    // due by then.
    let mut cap = budget;
    let mut closed = false;
    let mut assigned: u64 = 0;
    let mut next = 0;
    loop {
        let now = Instant::now();
        if !closed && context.deadline.is_some_and(|deadline| now >= deadline) {
            closed = true;
            // The last records are those due before the deadline.
            let last = match (schedule.is_limited(), context.deadline) {
                (true, Some(deadline)) => schedule
                    .due((deadline - start).saturating_sub(Duration::from_nanos(1)))
                    .max(assigned),
                _ => assigned,
            };
            cap = Some(cap.map_or(last, |cap| cap.min(last)));
        }
        let created = schedule.due(now - start).min(cap.unwrap_or(u64::MAX));
        let waiting = created - assigned;
        let all_created = cap.is_some_and(|cap| created >= cap);
        // A full transaction (or the lane's last) takes no more batches, and commits once
        // every one of them is answered.
        let commit_due = producer.commit_due(all_created && waiting == 0);
        if commit_due && in_flight.is_empty() {
            let took = producer.commit().await?;
            outcome.commit_latencies.record(took);
            outcome.transactions.transactions += 1;
            outcome.last_answer = Some(Instant::now());
            continue;
        }
        if !commit_due && waiting > 0 && in_flight.len() < context.in_flight {
            let (partition, template) = &partitions[next];
            let full = template.record_count() as u64;
            let room = producer.room();
            let count = waiting.min(full).min(room);
            let lingered = now >= start + schedule.time_of(assigned) + context.linger;
            if count == full || count == room || lingered || all_created {
                let adding = producer.before_batch(&context.topic, &indexes, next, full);
                if let Some(took) = adding.await? {
                    outcome.add_partitions_latencies.record(took);
                }
                let fields = producer.stamp(next, count);
                let outgoing =
                    build_batch(*partition, template, count as usize, context.stamp, &fields)?;
                let id = transactional_id.clone();
                in_flight.push(send(connection.clone(), context.clone(), outgoing, id));
                assigned += count;
                next = (next + 1) % partitions.len();
                continue;
            }
        }
        if all_created && waiting == 0 && in_flight.is_empty() {
            outcome.transactions.coordinator_retries = producer.coordinator_retries();
            return Ok(outcome);
        }
        // Nothing to send now: wait for an answer, or for the batch to fill or linger out.
        let sending = !commit_due && !all_created && in_flight.len() < context.in_flight;
        let wake = (sending && schedule.is_limited()).then(|| {
            let batch = (partitions[next].1.record_count() as u64).min(producer.room());
            let fills = start + schedule.time_of(assigned + batch - 1);
            let lingers = start + schedule.time_of(assigned) + context.linger;
            let wake = fills.min(lingers);
            match context.deadline {
                Some(deadline) if !closed => wake.min(deadline),
                _ => wake,
            }
        });
        tokio::select! {
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                let answer = answer?;
                outcome.records += answer.records;
                outcome.payload_bytes += answer.payload_bytes;
                outcome.batch_bytes += answer.batch_bytes;
                outcome.requests += 1;
                if context.acks != Acks::None {
                    outcome.latencies.record(answer.latency);
                }
                outcome.last_answer = Some(answer.at);
                context.counters.add(answer.records, answer.payload_bytes);
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(now).into()), if wake.is_some() => {}
            else => unreachable!("a producer lane waits for neither an answer nor a time"),
        }
    }
}

fn build_batch(
    partition: PartitionIndex,
    template: &BatchTemplate,
    records: usize,
    stamp: bool,
    producer: &ProducerFields,
) -> Result<Outgoing, BenchError> {
    let batch = if *producer != ProducerFields::NONE {
        assert!(!stamp, "the end-to-end bench has no idempotent producer");
        template.sequenced(records, producer, unix_ms())?
    } else if stamp {
        template.stamped(records, unix_ns(), unix_ms())?
    } else {
        template.prefix(records, unix_ms())?
    };
    Ok(Outgoing {
        partition,
        batch,
        records: records as u64,
        payload_bytes: template.payload_bytes(records),
    })
}

/// An answered produce request.
struct Answer {
    records: u64,
    payload_bytes: u64,
    batch_bytes: u64,
    latency: Duration,
    at: Instant,
}

async fn send(
    connection: Arc<Connection>,
    context: Arc<LaneContext>,
    outgoing: Outgoing,
    transactional_id: Option<TransactionalId>,
) -> Result<Answer, BenchError> {
    let batch_bytes = outgoing.batch.len() as u64;
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id)
        .with_acks(context.acks.code())
        .with_timeout_ms(PRODUCE_TIMEOUT_MS as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(context.topic_name.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(outgoing.partition.0)
                .with_records(Some(outgoing.batch))])]);
    let sent = Instant::now();
    if context.acks == Acks::None {
        connection.send_without_response(&request).await?;
    } else {
        let response = connection
            .send_with_timeout(&request, 2 * PRODUCE_TIMEOUT_MS)
            .await?;
        check_response(&response, &context.topic, outgoing.partition)?;
    }
    let at = Instant::now();
    Ok(Answer {
        records: outgoing.records,
        payload_bytes: outgoing.payload_bytes,
        batch_bytes,
        latency: at - sent,
        at,
    })
}

/// Fails on a partition error in a produce response, or on a response without the partition.
fn check_response(
    response: &ProduceResponse,
    topic: &str,
    partition: PartitionIndex,
) -> Result<(), BenchError> {
    let result = response
        .responses
        .iter()
        .filter(|response| response.name.as_str() == topic)
        .flat_map(|response| &response.partition_responses)
        .find(|response| response.index == partition.0);
    let Some(result) = result else {
        return Err(BenchError::Broker(format!(
            "the produce response does not mention {topic}-{partition}"
        )));
    };
    if result.error_code != 0 {
        let message = result.error_message.as_deref();
        return Err(ClientError::from_code(
            result.error_code,
            message,
            Some(topic),
            Some(partition),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_connections() {
        let partitions = [0, 1, 2, 3, 4];
        assert_eq!(spread(&partitions, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(spread(&partitions, 1), vec![vec![0, 1, 2, 3, 4]]);
        // More connections than partitions: every connection still gets one.
        assert_eq!(spread(&[7, 8], 3), vec![vec![7], vec![8], vec![7]]);
        assert!(spread::<i32>(&[], 3).is_empty());
    }

    #[test]
    fn keys_land_in_their_murmur2_partitions() {
        let buckets = keys_by_partition(1_000, 4, 10);
        assert_eq!(buckets.len(), 4);
        for (partition, keys) in buckets.iter().enumerate() {
            assert_eq!(keys.len(), 10, "1,000 keys fill 4 buckets of 10");
            for key in keys {
                assert_eq!(key.len(), 3, "fixed width for a space of 1,000");
                assert_eq!(partition_for_key(key, 4).0 as usize, partition);
            }
        }
        // A tiny key space leaves some partitions without keys.
        let buckets = keys_by_partition(2, 8, 10);
        assert_eq!(buckets.iter().map(Vec::len).sum::<usize>(), 2);
        assert_eq!(buckets.iter().filter(|keys| keys.is_empty()).count(), 6);
    }
}
