//! `strom bench e2e`: a producer at a fixed rate and a consumer, and the time each record
//! takes from one to the other.
//!
//! The consumer starts first, at the end of every partition. The producer stamps each
//! record's value with the time its batch is handed to the connection (Unix nanoseconds, see
//! [`crate::batch::STAMP_BYTES`]), so linger time is not counted, but everything after is: the
//! request on the wire, the broker's append (and fsync with acks=all, if the broker makes
//! records visible only then), the wake-up of the consumer's long-poll fetch and the response.
//! Both sides run in this process on one clock. When the producer is done, the consumer reads
//! on to the end offsets the broker then reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use strom_client::OffsetSpec;
use strom_types::PartitionIndex;
use tokio::sync::watch;

use crate::args::{
    parse_seconds, CommonArgs, ConsumerArgs, Limit, LimitArgs, ProducerArgs, TopicArgs,
};
use crate::batch::STAMP_BYTES;
use crate::cluster::{self, unix_ns};
use crate::consume::{run_consumer, ConsumerPlan};
use crate::error::BenchError;
use crate::produce::{run_producer, ProducerPlan, ProducerSettings, DEFAULT_DURATION};
use crate::progress::{Counters, Progress};
use crate::report::Report;

/// Longest the consumer may take, after the producer is done, to read the last records.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Bytes in each record's value (at least 12: the send stamp).
    #[arg(long, short = 's', default_value = "100", value_parser = crate::args::parse_bytes)]
    pub record_size: u64,
    /// Records per second the producer offers, spread evenly over time.
    #[arg(long, short = 'r', default_value = "1000", value_parser = crate::args::parse_rate)]
    pub rate: f64,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Seconds at the start whose records are left out of the end-to-end latency.
    #[arg(long, default_value = "1", value_parser = parse_warmup)]
    pub warmup: Duration,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn parse_warmup(text: &str) -> Result<Duration, String> {
    if text.trim().trim_end_matches('s').parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

#[derive(Debug, Clone, Serialize)]
struct E2eSettings {
    #[serde(flatten)]
    producer: ProducerSettings,
    fetch_wait_ms: u32,
    fetch_min_bytes: i32,
    warmup_s: f64,
}

/// `strom bench e2e`.
pub async fn run(args: E2eArgs) -> Result<Report, BenchError> {
    if args.record_size < STAMP_BYTES as u64 {
        return Err(BenchError::InvalidArgument(format!(
            "end-to-end records need at least {STAMP_BYTES} bytes for the send stamp"
        )));
    }
    if args.rate <= 0.0 {
        return Err(BenchError::InvalidArgument(
            "the end-to-end bench needs a rate (--rate, records per second)".to_string(),
        ));
    }
    let client = cluster::connect(&args.common.bootstrap, &args.common.security()?).await?;
    let layout = cluster::ensure_topic(
        &client,
        &args.topic.topic,
        args.topic.partitions,
        args.topic.replication_factor,
    )
    .await?;
    let limit = args.limit.limit_or(Limit::Time(DEFAULT_DURATION));
    let mut producer = ProducerPlan::new(
        layout.clone(),
        &args.producer,
        args.record_size,
        limit,
        args.rate,
    )?;
    producer.stamp = true;
    let partitions: Vec<PartitionIndex> = layout
        .partitions
        .iter()
        .map(|(partition, _)| *partition)
        .collect();
    let starts = cluster::offsets(&client, &layout.name, &partitions, OffsetSpec::Latest).await?;
    let consumer = ConsumerPlan {
        layout: layout.clone(),
        starts: partitions.iter().copied().zip(starts).collect(),
        limit: None,
        connections: 1,
        fetch: args.consumer.clone(),
        stamps_from_ns: Some(unix_ns() + args.warmup.as_nanos() as u64),
    };
    let (ends_sender, ends) = watch::channel(None);
    let consumer_task = {
        let consumer = consumer.clone();
        tokio::spawn(
            async move { run_consumer(&consumer, ends, Arc::new(Counters::default())).await },
        )
    };
    let progress = Progress::start("e2e", Some(limit));
    let produced = run_producer(&producer, progress.counters()).await;
    progress.finish();
    let produced = match produced {
        Ok(produced) => produced,
        Err(error) => {
            consumer_task.abort();
            return Err(error);
        }
    };
    let ends = cluster::offsets(&client, &layout.name, &partitions, OffsetSpec::Latest).await?;
    let ends: BTreeMap<_, _> = partitions.iter().copied().zip(ends).collect();
    let _ = ends_sender.send(Some(ends));
    let consumed = match tokio::time::timeout(CATCH_UP_TIMEOUT, consumer_task).await {
        Ok(joined) => joined.expect("the consumer task does not panic")?,
        Err(_) => {
            return Err(BenchError::Broker(format!(
                "the consumer did not reach the end offsets within {} s of the producer finishing",
                CATCH_UP_TIMEOUT.as_secs()
            )))
        }
    };
    let settings = E2eSettings {
        producer: producer.settings(),
        fetch_wait_ms: args.consumer.fetch_wait_ms,
        fetch_min_bytes: args.consumer.fetch_min_bytes,
        warmup_s: args.warmup.as_secs_f64(),
    };
    let mut report = Report::new("e2e", &layout.name, &settings);
    report.throughput = Some(produced.throughput);
    report.produce_latency = produced.latencies.summary();
    report.produce_requests = Some(produced.requests);
    report.consumed = Some(consumed.throughput);
    report.fetch_latency = consumed.fetch_latencies.summary();
    report.fetches = Some(consumed.fetches);
    report.end_to_end_latency = consumed.end_to_end.summary();
    report.unstamped_records = Some(consumed.unstamped);
    Ok(report)
}
