//! The many-partitions case (issue 10): one node under a small open-file limit (`ulimit -n`)
//! hosts thousands of partitions, through a clean restart and a kill -9.
//!
//! The case starts a broker of its own ([`OwnBroker`]), creates the topics, writes one record
//! (acks=all) to every partition and reads every one back; reads the broker's memory and, while
//! nothing is asked of it, its CPU time from `/proc`; stops it with SIGTERM and starts it again,
//! kills it with SIGKILL and starts it again, reading every record back after each start. Last
//! it counts the lines of the broker's logs that say "Too many open files". A thread counts the
//! broker's open descriptors all along, so that a peak between two steps (a start opens many
//! files at once, before it listens) is seen too.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use strom_client::{
    Acks, Client, Compression, FetchOptions, FetchPosition, FetchedPartition, ProduceRecord,
    SecurityConfig,
};
use strom_types::{Offset, PartitionIndex};

use super::broker::{open_descriptors, process_cpu_seconds, OwnBroker};
use super::cases::{thousands, Case, Load};
use super::{CaseResult, RunContext};
use crate::error::BenchError;
use crate::stats::Latencies;

/// Produce requests (one record to one partition each) in flight at once.
const PRODUCE_IN_FLIGHT: usize = 256;
/// Partitions asked for in one fetch request.
const FETCH_PARTITIONS_MAX: usize = 1_000;
/// How long one fetch waits when none of its partitions has a record to return (yet).
const FETCH_WAIT_MS: u32 = 100;
/// How long created topics may take until every partition has a leader.
const LEADERS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a started broker may take until it has served every partition's record.
const SERVING_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the metadata is asked whether every partition has a leader: each answer lists
/// every partition, which costs the broker more than a fetch round.
const LEADERS_POLL: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(50);
const DESCRIPTOR_POLL: Duration = Duration::from_millis(100);
/// How EMFILE reads in a log line (Rust's `io::Error` says "Too many open files (os error
/// 24)").
pub const TOO_MANY_OPEN_FILES: &str = "Too many open files";

/// What the many-partitions case measured.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionFigures {
    pub topics: u32,
    /// Partitions in all, one record written to each.
    pub partitions: u32,
    /// The broker's open-file limit, soft and hard.
    pub open_files_limit: u64,
    /// From the CreateTopics requests until the metadata lists every partition with a leader.
    pub create_s: f64,
    /// One record (acks=all) to every partition.
    pub produce_s: f64,
    /// Every record fetched back.
    pub consume_s: f64,
    /// From SIGTERM until the broker exited, after the records were read back.
    pub shutdown_s: f64,
    pub after_clean_shutdown: RestartFigures,
    pub after_kill: RestartFigures,
    /// The largest resident memory (VmRSS) read: after the records were read back, after the
    /// idle time, and once each restart served every partition.
    pub rss_mib: f64,
    /// The broker's CPU time while nothing was asked of it, in percent of one core.
    pub idle_cpu_percent: f64,
    /// The most descriptors the broker held open at once, over all its starts.
    pub max_open_descriptors: usize,
    /// Lines of the broker's logs (every start) that say "Too many open files".
    pub too_many_open_files_lines: usize,
}

impl PartitionFigures {
    /// The figures on one line, for the suite's progress.
    pub fn summary(&self) -> String {
        format!(
            "create {:.1} s, produce {:.1} s, read back {:.1} s, SIGTERM to exit {:.1} s; start to \
             listening / serving: {:.1} / {:.1} s after SIGTERM, {:.1} / {:.1} s after SIGKILL; \
             RSS {:.0} MiB, idle CPU {:.1}%, at most {} of {} descriptors, {} '{TOO_MANY_OPEN_FILES}'",
            self.create_s,
            self.produce_s,
            self.consume_s,
            self.shutdown_s,
            self.after_clean_shutdown.start_to_listening_s,
            self.after_clean_shutdown.start_to_serving_s,
            self.after_kill.start_to_listening_s,
            self.after_kill.start_to_serving_s,
            self.rss_mib,
            self.idle_cpu_percent,
            self.max_open_descriptors,
            self.open_files_limit,
            self.too_many_open_files_lines
        )
    }
}

/// How long one start took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RestartFigures {
    /// From starting the process until it accepted connections.
    pub start_to_listening_s: f64,
    /// From starting the process until every partition had returned its record.
    pub start_to_serving_s: f64,
}

/// The case's topics and partitions.
struct Layout {
    topics: Vec<String>,
    partitions_per_topic: i32,
}

impl Layout {
    fn new(topics: u32, partitions_per_topic: i32) -> Layout {
        Layout {
            topics: (0..topics)
                .map(|topic| format!("suite-partitions-{topic}"))
                .collect(),
            partitions_per_topic,
        }
    }

    /// "20 topics x 1,000 partitions".
    fn describe(&self) -> String {
        format!(
            "{} topics x {} partitions",
            self.topics.len(),
            thousands(self.partitions_per_topic.unsigned_abs())
        )
    }

    fn partitions(&self) -> usize {
        self.topics.len() * self.partitions_per_topic.unsigned_abs() as usize
    }

    /// Every partition, from offset 0.
    fn positions(&self) -> Vec<FetchPosition> {
        self.topics
            .iter()
            .flat_map(|topic| {
                (0..self.partitions_per_topic).map(|partition| FetchPosition {
                    topic: topic.clone(),
                    partition: PartitionIndex(partition),
                    offset: Offset(0),
                })
            })
            .collect()
    }
}

/// The one record each partition holds: its own name, so that a record read from the wrong
/// partition shows.
fn value(topic: &str, partition: PartitionIndex) -> String {
    format!("{topic}-{partition}")
}

/// What the broker's starts used: CPU summed over them, memory the most of any.
#[derive(Default)]
struct Usage {
    cpu_s: f64,
    system_cpu_s: f64,
    peak_rss_bytes: u64,
    rss_bytes_max: u64,
}

impl Usage {
    /// Reads the running broker's resident memory now.
    fn read_rss(&mut self, broker: &OwnBroker) -> Result<(), BenchError> {
        self.rss_bytes_max = self.rss_bytes_max.max(broker.rss_bytes()?);
        Ok(())
    }

    /// Adds what the running broker used over its life; call it right before it ends.
    fn add_life(&mut self, broker: &OwnBroker) -> Result<(), BenchError> {
        self.cpu_s += broker.cpu_seconds()?;
        self.system_cpu_s += broker.system_cpu_seconds()?;
        self.peak_rss_bytes = self.peak_rss_bytes.max(broker.peak_rss_bytes()?);
        Ok(())
    }
}

/// Counts the open descriptors of the broker process it follows, on a thread of its own every
/// [`DESCRIPTOR_POLL`] and whenever asked, and keeps the most seen. The thread ends when the
/// watch is finished or dropped.
struct DescriptorWatch {
    /// The process followed; 0 for none.
    pid: Arc<AtomicU32>,
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DescriptorWatch {
    fn start() -> DescriptorWatch {
        let pid = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (pid, most, stop) = (pid.clone(), most.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    count(&pid, &most);
                    std::thread::sleep(DESCRIPTOR_POLL);
                }
            }
        });
        DescriptorWatch {
            pid,
            most,
            stop,
            thread: Some(thread),
        }
    }

    /// Follows the process `pid` from now on.
    fn follow(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
        self.count_now();
    }

    fn count_now(&self) {
        count(&self.pid, &self.most);
    }

    /// Stops counting; the most descriptors seen.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the descriptor count does not panic");
        }
        self.most.load(Ordering::Relaxed)
    }
}

impl Drop for DescriptorWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Counts the descriptors of process `pid` (none while it is 0 or gone) into `most`.
fn count(pid: &AtomicU32, most: &AtomicUsize) {
    let pid = pid.load(Ordering::Relaxed);
    if pid == 0 {
        return;
    }
    if let Ok(open) = open_descriptors(pid) {
        most.fetch_max(open, Ordering::Relaxed);
    }
}

/// Runs the many-partitions case on a broker of its own, in `run_dir/partitions`.
pub fn run_case(context: &RunContext, case: &Case) -> Result<CaseResult, BenchError> {
    let Load::Partitions {
        topics,
        partitions_per_topic,
        open_files_limit,
        idle,
    } = case.load
    else {
        unreachable!("not a many-partitions load")
    };
    let layout = Layout::new(topics, partitions_per_topic);
    let dir = context.run_dir.join("partitions");
    let mut broker = OwnBroker::new(&context.tools.binary, &dir, open_files_limit)?;
    let own_stat = "/proc/self/stat";
    let bench_before = process_cpu_seconds(own_stat, context.clock_ticks_per_s)?;
    let measured = measure(context, &mut broker, &layout, idle).map_err(|error| {
        BenchError::Suite(format!(
            "case '{}' failed: {error}\nbroker log tail:\n{}",
            case.name,
            broker.log_tail()
        ))
    })?;
    let bench_cpu_s = process_cpu_seconds(own_stat, context.clock_ticks_per_s)? - bench_before;
    let Measured {
        figures,
        usage,
        produce_latencies,
        payload_bytes,
    } = measured;
    let records = layout.partitions() as u64;
    let per_million = |seconds: f64| seconds / records.max(1) as f64 * 1e6;
    Ok(CaseResult {
        case: case.name.clone(),
        run: context.run,
        command: format!(
            "ulimit -n {open_files_limit}; strom server --listen {} --data-dir {}; {}, one record \
             (acks=all) to each, all read back; SIGTERM, start, all read back; SIGKILL, start, all \
             read back (the suite's own steps; tests/e2e/test_scale.py takes them with librdkafka)",
            broker.address(),
            dir.join("data").display(),
            layout.describe()
        ),
        records,
        records_per_s: records as f64 / figures.produce_s,
        mb_per_s: payload_bytes as f64 / figures.produce_s / 1e6,
        latency_kind: "produce",
        latency: produce_latencies.summary(),
        produce_latency: None,
        idle_consumers: None,
        idle_connections: None,
        transactions: None,
        broker_cpu_s: usage.cpu_s,
        broker_cpu_s_per_million: per_million(usage.cpu_s),
        broker_system_cpu_share: if usage.cpu_s > 0.0 {
            usage.system_cpu_s / usage.cpu_s
        } else {
            0.0
        },
        bench_cpu_s_per_million: Some(per_million(bench_cpu_s)),
        broker_peak_rss_mib: mib(usage.peak_rss_bytes),
        disk_synced_mb_per_s: None,
        partitions: Some(figures),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// What [`measure`] found.
struct Measured {
    figures: PartitionFigures,
    usage: Usage,
    produce_latencies: Latencies,
    payload_bytes: u64,
}

/// The case's steps, in order, on `broker`.
fn measure(
    context: &RunContext,
    broker: &mut OwnBroker,
    layout: &Layout,
    idle: Duration,
) -> Result<Measured, BenchError> {
    let runtime = &context.runtime;
    let descriptors = DescriptorWatch::start();
    let mut usage = Usage::default();
    descriptors.follow(broker.spawn("start")?);
    broker.wait_until_accepting()?;
    let create_s = runtime.block_on(create_topics(broker.address(), layout))?;
    descriptors.count_now();
    eprintln!("    created {} in {create_s:.1} s", layout.describe());
    let produced = runtime.block_on(produce_to_every_partition(broker.address(), layout))?;
    descriptors.count_now();
    let reading = Instant::now();
    runtime.block_on(read_back(broker.address(), layout))?;
    let consume_s = reading.elapsed().as_secs_f64();
    descriptors.count_now();
    usage.read_rss(broker)?;
    let idle_cpu_percent = idle_cpu_percent(broker, idle)?;
    usage.read_rss(broker)?;
    usage.add_life(broker)?;
    let stopping = Instant::now();
    broker.stop()?;
    let shutdown_s = stopping.elapsed().as_secs_f64();
    eprintln!(
        "    one record to each in {:.1} s, read back in {consume_s:.1} s; idle CPU \
         {idle_cpu_percent:.1}% of a core; SIGTERM to exit {shutdown_s:.1} s",
        produced.seconds
    );
    let after_clean_shutdown = restart(context, broker, layout, "SIGTERM", &descriptors)?;
    usage.read_rss(broker)?;
    usage.add_life(broker)?;
    broker.kill()?;
    let after_kill = restart(context, broker, layout, "SIGKILL", &descriptors)?;
    usage.read_rss(broker)?;
    usage.add_life(broker)?;
    broker.stop()?;
    let figures = PartitionFigures {
        topics: layout.topics.len() as u32,
        partitions: layout.partitions() as u32,
        open_files_limit: broker.open_files_limit(),
        create_s,
        produce_s: produced.seconds,
        consume_s,
        shutdown_s,
        after_clean_shutdown,
        after_kill,
        rss_mib: mib(usage.rss_bytes_max),
        idle_cpu_percent,
        max_open_descriptors: descriptors.finish(),
        too_many_open_files_lines: broker.log_lines_containing(TOO_MANY_OPEN_FILES)?,
    };
    Ok(Measured {
        figures,
        usage,
        produce_latencies: produced.latencies,
        payload_bytes: produced.payload_bytes,
    })
}

/// Starts the broker again over its data, after it ended by `signal`, and reads every record
/// back.
fn restart(
    context: &RunContext,
    broker: &mut OwnBroker,
    layout: &Layout,
    signal: &str,
    descriptors: &DescriptorWatch,
) -> Result<RestartFigures, BenchError> {
    let spawned = Instant::now();
    descriptors.follow(broker.spawn(&format!("start-after-{}", signal.to_lowercase()))?);
    broker.wait_until_accepting()?;
    let listening = spawned.elapsed().as_secs_f64();
    context
        .runtime
        .block_on(read_back(broker.address(), layout))?;
    let serving = spawned.elapsed().as_secs_f64();
    descriptors.count_now();
    eprintln!(
        "    start after {signal}: listening in {listening:.1} s, every record read back in {serving:.1} s"
    );
    Ok(RestartFigures {
        start_to_listening_s: listening,
        start_to_serving_s: serving,
    })
}

/// The broker's CPU time over `idle` while nothing is asked of it, in percent of one core.
fn idle_cpu_percent(broker: &OwnBroker, idle: Duration) -> Result<f64, BenchError> {
    let before = broker.cpu_seconds()?;
    let started = Instant::now();
    std::thread::sleep(idle);
    let cpu_s = broker.cpu_seconds()? - before;
    Ok(100.0 * cpu_s / started.elapsed().as_secs_f64())
}

/// Sends a CreateTopics request for every topic, all in flight together (as one admin call
/// would send them), and waits until the metadata lists each partition with a leader; returns
/// the seconds that took.
async fn create_topics(address: &str, layout: &Layout) -> Result<f64, BenchError> {
    let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
    let started = Instant::now();
    let creates = layout
        .topics
        .iter()
        .map(|topic| client.create_topics(topic, layout.partitions_per_topic, 1, Vec::new()));
    let created: Vec<_> = stream::iter(creates)
        .buffer_unordered(layout.topics.len())
        .collect()
        .await;
    for result in created {
        result?;
    }
    let names: Vec<&str> = layout.topics.iter().map(String::as_str).collect();
    loop {
        let metadata = client.metadata(Some(&names)).await?;
        let led: usize = metadata
            .topics
            .iter()
            .map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter(|partition| partition.leader.is_some())
                    .count()
            })
            .sum();
        if led == layout.partitions() {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > LEADERS_TIMEOUT {
            return Err(BenchError::Broker(format!(
                "{led} of {} partitions have a leader {} s after CreateTopics",
                layout.partitions(),
                LEADERS_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(LEADERS_POLL).await;
    }
}

/// What writing one record to every partition took.
struct Produced {
    seconds: f64,
    latencies: Latencies,
    payload_bytes: u64,
}

/// Writes each partition its one record, acks=all, [`PRODUCE_IN_FLIGHT`] requests at a time.
async fn produce_to_every_partition(
    address: &str,
    layout: &Layout,
) -> Result<Produced, BenchError> {
    let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
    let client = &client;
    let started = Instant::now();
    let sends = layout.positions().into_iter().map(|position| async move {
        let value = value(&position.topic, position.partition);
        let bytes = value.len() as u64;
        let record = ProduceRecord::new(None, Some(Bytes::from(value)));
        let sent = Instant::now();
        client
            .produce(
                &position.topic,
                position.partition,
                std::slice::from_ref(&record),
                Acks::All,
                Compression::None,
            )
            .await?;
        Ok::<_, BenchError>((sent.elapsed(), bytes))
    });
    let mut answers = stream::iter(sends).buffer_unordered(PRODUCE_IN_FLIGHT);
    let mut latencies = Latencies::default();
    let mut payload_bytes = 0;
    while let Some(answer) = answers.next().await {
        let (latency, bytes) = answer?;
        latencies.record(latency);
        payload_bytes += bytes;
    }
    Ok(Produced {
        seconds: started.elapsed().as_secs_f64(),
        latencies,
        payload_bytes,
    })
}

/// Fetches every partition from offset 0 until each has returned its record, retrying those
/// the broker does not serve yet (one just started may still be opening them). A record other
/// than the one written fails at once; one still missing after [`SERVING_TIMEOUT`] fails then.
async fn read_back(address: &str, layout: &Layout) -> Result<(), BenchError> {
    let started = Instant::now();
    let client = connect_within(address, started + SERVING_TIMEOUT).await?;
    let options = FetchOptions {
        max_wait_ms: FETCH_WAIT_MS,
        ..FetchOptions::default()
    };
    let mut waiting = layout.positions();
    let mut last_problem = String::new();
    loop {
        let mut left = Vec::new();
        for chunk in waiting.chunks(FETCH_PARTITIONS_MAX) {
            let results = client.fetch_many(chunk, &options).await;
            for (position, result) in chunk.iter().zip(results) {
                let problem = match result {
                    Ok(fetched) if check_record(position, &fetched)? => continue,
                    Ok(_) => "no record yet".to_string(),
                    Err(error) => error.to_string(),
                };
                if left.is_empty() {
                    last_problem = format!("{}-{}: {problem}", position.topic, position.partition);
                }
                left.push(position.clone());
            }
        }
        waiting = left;
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() > SERVING_TIMEOUT {
            return Err(BenchError::Broker(format!(
                "{} of {} partitions did not return their record within {} s; the first, {last_problem}",
                waiting.len(),
                layout.partitions(),
                SERVING_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Connects to `address`, trying again until `deadline`.
async fn connect_within(address: &str, deadline: Instant) -> Result<Client, BenchError> {
    loop {
        match crate::cluster::connect(address, &SecurityConfig::default()).await {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Whether a fetch from offset 0 returned the partition's record (`false`: nothing yet); an
/// error if it returned anything else.
fn check_record(position: &FetchPosition, fetched: &FetchedPartition) -> Result<bool, BenchError> {
    let name = format!("{}-{}", position.topic, position.partition);
    let [record] = fetched.records.as_slice() else {
        if fetched.records.is_empty() {
            return Ok(false);
        }
        return Err(BenchError::Broker(format!(
            "{name} returned {} records, not the one written",
            fetched.records.len()
        )));
    };
    let expected = value(&position.topic, position.partition);
    let found = record.value.as_deref().unwrap_or_default();
    if record.offset != Offset(0)
        || found != expected.as_bytes()
        || fetched.high_watermark != Offset(1)
    {
        return Err(BenchError::Broker(format!(
            "{name} holds '{}' at offset {} (high watermark {}), not the one record written ('{expected}' at 0)",
            String::from_utf8_lossy(found),
            record.offset,
            fetched.high_watermark
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::{FetchedRecord, TimestampType};
    use strom_types::TimestampMs;

    fn fetched(values: &[&str], high_watermark: i64) -> FetchedPartition {
        FetchedPartition {
            records: (0..)
                .zip(values)
                .map(|(offset, value)| FetchedRecord {
                    offset: Offset(offset),
                    timestamp: TimestampMs(0),
                    timestamp_type: TimestampType::Creation,
                    key: None,
                    value: Some(Bytes::from(value.to_string())),
                    headers: Vec::new(),
                })
                .collect(),
            high_watermark: Offset(high_watermark),
            last_stable_offset: Offset(high_watermark),
            log_start_offset: Offset(0),
            next_offset: Offset(values.len() as i64),
        }
    }

    #[test]
    fn every_partition_is_read_back_for_its_own_record() {
        let layout = Layout::new(2, 3);
        assert_eq!(layout.partitions(), 6);
        let positions = layout.positions();
        assert_eq!(positions.len(), 6);
        let position = &positions[4];
        assert_eq!(position.topic, "suite-partitions-1");
        assert_eq!(position.partition, PartitionIndex(1));
        assert_eq!(
            value(&position.topic, position.partition),
            "suite-partitions-1-1"
        );
        assert!(check_record(position, &fetched(&["suite-partitions-1-1"], 1)).unwrap());
        assert!(
            !check_record(position, &fetched(&[], 0)).unwrap(),
            "not yet"
        );
        let wrong = check_record(position, &fetched(&["suite-partitions-1-2"], 1)).unwrap_err();
        assert!(
            wrong.to_string().contains("holds 'suite-partitions-1-2'"),
            "{wrong}"
        );
        let twice = fetched(&["suite-partitions-1-1", "suite-partitions-1-1"], 2);
        assert!(check_record(position, &twice).is_err());
        assert!(check_record(position, &fetched(&["suite-partitions-1-1"], 2)).is_err());
    }
}
