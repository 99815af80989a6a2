//! `strom bench suite`: a fresh broker, the machine's limits, a fixed set of loads, one table.
//!
//! Each run (`--runs N` repeats the whole set) makes a directory under `--dir`, measures the
//! machine there ([`machine`]), starts `strom server` of this same binary on a free port with
//! its data directory inside ([`broker`]; with an SSL and a SASL_SSL listener beside the
//! PLAINTEXT one, certificates made for the run, when cases connect over them: [`security`]),
//! and runs the cases ([`cases`]) in order; then it stops that broker and starts three nodes
//! (a three-voter cluster) for the replicated cases;
//! last, once those have stopped too, come the cases that start a broker of their own: the
//! many-partitions case ([`partitions`]) starts one under a small open-file limit, restarts it
//! after SIGTERM and after SIGKILL, and reads its memory, descriptors and idle CPU.
//! Every case but the librdkafka, kcat and many-partitions ones is an ordinary `strom bench`
//! command line ([`loads`]), printed with the results so that any row can be re-run by hand;
//! the idle-consumer case runs `strom bench idle-fetch` beside its load ([`beside`]), and the
//! idle-connections case reads the broker's memory while `strom bench idle-connections` holds
//! its connections. Around each case the suite reads the brokers' CPU time and peak memory
//! from `/proc`, and runs `sync` before it so one case's write-back does not land in the next.
//! [`table`] turns the runs into the table (median and range over the runs) and checks the
//! issue's targets.

mod beside;
mod broker;
mod cases;
mod loads;
mod machine;
mod partitions;
mod security;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use strom_client::{Acks, Compression, ProduceRecord, SecurityConfig};

use crate::args::parse_seconds;
use crate::error::BenchError;
use crate::idle::IdleOutcome;
use crate::stats::{human_count, LatencySummary};
use beside::Beside;
use cases::{cases, Case, Load, NewTopic, Nodes};
use loads::{ConnectionFigures, Outcome};
use partitions::PartitionFigures;
use security::Listener;

pub use broker::{process_cpu_seconds, stat_cpu_ticks, status_kib, Brokers};
pub use machine::{MachineLimits, MachineSizes};
pub use table::{check_targets, render, TargetCheck};

#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Where to make the suite's temporary directory (broker data and disk probes: the disk
    /// figures are for this filesystem). Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The strom binary to run as the broker. Default: this one.
    #[arg(long, value_name = "PATH")]
    pub strom_bin: Option<PathBuf>,
    /// Seconds each produce case runs.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub case_seconds: Duration,
    /// Seconds each end-to-end case runs (the first second is warm-up).
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub e2e_seconds: Duration,
    /// Repeat everything this many times, each with a fresh broker, and show the spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Tiny machine probes and 1-second cases: checks that the suite works, measures little.
    #[arg(long)]
    pub quick: bool,
    /// Also load the broker with librdkafka: confluent-kafka through --python, and kcat if it
    /// is on the PATH.
    #[arg(long)]
    pub librdkafka: bool,
    /// The Python with confluent-kafka for --librdkafka. Default: .venv/bin/python if it
    /// exists, else python3.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Run only the cases whose name contains this text; repeatable.
    #[arg(long, value_name = "TEXT")]
    pub only: Vec<String>,
    /// Print everything measured as one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep the suite's directory (broker data and log) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// One case's figures in one run.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub run: u32,
    /// How to run the case by hand (`strom bench ...`), or what the librdkafka load did.
    pub command: String,
    pub records: u64,
    pub records_per_s: f64,
    /// Payload (key + value) megabytes per second.
    pub mb_per_s: f64,
    /// What `latency` measures: produce request, fetch request or end to end.
    pub latency_kind: &'static str,
    pub latency: Option<LatencySummary>,
    /// The end-to-end cases' produce request latency.
    pub produce_latency: Option<LatencySummary>,
    /// What the idle consumers beside the load did, for the cases that have them.
    pub idle_consumers: Option<IdleFigures>,
    /// What the idle connections cost the broker, for the idle-connections case.
    pub idle_connections: Option<ConnectionFigures>,
    /// What the transactional case's producers committed.
    pub transactions: Option<TransactionFigures>,
    /// The broker's CPU seconds during the case (the three-node cases: summed over the nodes;
    /// the many-partitions case: summed over its broker's three starts, each whole).
    pub broker_cpu_s: f64,
    pub broker_cpu_s_per_million: f64,
    /// The share of the broker's CPU time spent in the kernel (system time): on a VM, copying
    /// appends into freshly allocated page-cache pages dominates it.
    pub broker_system_cpu_share: f64,
    /// The load generator's own CPU per million records (`None` for librdkafka's).
    pub bench_cpu_s_per_million: Option<f64>,
    /// The broker's peak resident memory (VmHWM) after the case (the three-node cases: the
    /// largest node's; the many-partitions case: its largest start's).
    pub broker_peak_rss_mib: f64,
    /// For produce cases: the disk's bandwidth with an fdatasync after each 1 MiB append,
    /// measured for the case's duration right before and right after it (the mean of the
    /// two). The throughput targets compare with this: on a VM whose disk bandwidth comes and
    /// goes with its neighbours and its burst credit, a figure from minutes earlier says little.
    pub disk_synced_mb_per_s: Option<f64>,
    /// What the many-partitions case measured: creation, restarts, memory, descriptors.
    pub partitions: Option<PartitionFigures>,
}

/// The idle consumers' figures: they show that the consumers really polled.
#[derive(Debug, Clone, Serialize)]
pub struct IdleFigures {
    pub consumers: usize,
    pub fetches: u64,
    pub fetches_per_s: f64,
    pub fetch_latency: Option<LatencySummary>,
    /// Records that reached the idle partitions after all (none unless something else wrote).
    pub records: u64,
}

impl IdleFigures {
    fn of(outcome: &IdleOutcome) -> IdleFigures {
        IdleFigures {
            consumers: outcome.connections,
            fetches: outcome.fetches,
            fetches_per_s: outcome.fetches_per_s(),
            fetch_latency: outcome.fetch_latencies.summary(),
            records: outcome.arrived.records,
        }
    }
}

/// A transactional case's transactions: they show the load really committed.
#[derive(Debug, Clone, Serialize)]
pub struct TransactionFigures {
    pub transactions: u64,
    pub transactions_per_s: f64,
    /// EndTxn (commit) request latency.
    pub commit_latency: Option<LatencySummary>,
    /// Coordinator answers "not now" retried (CONCURRENT_TRANSACTIONS while a commit's
    /// markers were written, mostly).
    pub coordinator_retries: u64,
}

/// One run: the machine's limits and every case.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub run: u32,
    /// The machine's 1-minute load average when the run started and when it ended: other
    /// work on the machine shows here, and makes every figure noisier.
    pub load_average: (f64, f64),
    pub machine: MachineLimits,
    pub cases: Vec<CaseResult>,
}

/// Everything the suite measured.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    pub runs: Vec<RunResult>,
    pub targets: Vec<TargetCheck>,
}

/// The programs the suite runs besides itself.
struct Tools {
    binary: PathBuf,
    /// For the librdkafka cases (`--librdkafka`).
    python: Option<PathBuf>,
    /// For the kcat case (`--librdkafka`, when kcat is on the PATH).
    kcat: Option<PathBuf>,
}

/// `strom bench suite`.
pub fn run(args: SuiteArgs) -> Result<(), BenchError> {
    let binary = match &args.strom_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(BenchError::io("finding the strom binary"))?,
    };
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let base = tempfile::Builder::new()
        .prefix("strom-bench-suite-")
        .tempdir_in(&parent)
        .map_err(BenchError::io(format!(
            "making a directory in {}",
            parent.display()
        )))?;
    let kcat = args.librdkafka.then(loads::find_kcat).flatten();
    if args.librdkafka && kcat.is_none() {
        eprintln!("note: kcat is not on the PATH; the kcat case is left out");
    }
    let cases = cases(&args, kcat.is_some());
    let needs_python = cases.iter().any(|case| {
        matches!(
            case.load,
            Load::LibrdkafkaProduce { .. } | Load::LibrdkafkaE2e { .. }
        )
    });
    let tools = Tools {
        binary,
        python: needs_python
            .then(|| loads::find_python(&args))
            .transpose()?,
        kcat,
    };
    let sizes = if args.quick {
        MachineSizes::QUICK
    } else {
        MachineSizes::FULL
    };
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let run_dir = base.path().join(format!("run{run}"));
        let result = run_once(&tools, &run_dir, run, args.runs, &cases, sizes);
        if !args.keep {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        runs.push(result?);
    }
    let targets = check_targets(&runs);
    let result = SuiteResult { runs, targets };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("results serialize")
        );
    } else {
        print!("{}", render(&result));
    }
    if args.keep {
        let kept = base.keep();
        eprintln!("kept the suite's directory: {}", kept.display());
    }
    Ok(())
}

/// What every case of a run shares.
struct RunContext<'a> {
    tools: &'a Tools,
    run_dir: &'a Path,
    run: u32,
    runtime: tokio::runtime::Runtime,
    clock_ticks_per_s: f64,
}

fn run_once(
    tools: &Tools,
    run_dir: &Path,
    run: u32,
    runs: u32,
    cases: &[Case],
    sizes: MachineSizes,
) -> Result<RunResult, BenchError> {
    let load_before = load_average();
    eprintln!(
        "run {run}/{runs}: load average {load_before:.2}; measuring the machine in {}",
        run_dir.display()
    );
    let machine = machine::measure(&run_dir.join("probe"), sizes)?;
    eprintln!(
        "  loopback {:.0} MB/s, disk {:.0} MB/s buffered, {:.0} MB/s with fdatasync, 4 KiB fdatasync p99 {:.2} ms back to back, {:.2} ms one per 5 ms",
        machine.loopback_mb_per_s, machine.disk_buffered_mb_per_s, machine.disk_synced_mb_per_s, machine.fsync_4k.p99_ms, machine.fsync_4k_spaced.p99_ms
    );
    let context = RunContext {
        tools,
        run_dir,
        run,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BenchError::io("cannot start the async runtime"))?,
        clock_ticks_per_s: broker::clock_ticks_per_s(),
    };
    let mut results = Vec::new();
    // One phase per kind of brokers, one after the other: the three nodes start only once the
    // single broker has stopped, and the cases with a broker of their own once the three nodes
    // have, so each takes nothing from the others' figures.
    for nodes in [Nodes::One, Nodes::ThreeVoters, Nodes::OwnBroker] {
        let phase: Vec<Case> = cases
            .iter()
            .filter(|case| case.nodes == nodes)
            .cloned()
            .collect();
        if phase.is_empty() {
            continue;
        }
        let brokers = match nodes {
            Nodes::One => {
                let secure = phase
                    .iter()
                    .any(|case| case.listener != Listener::Plaintext);
                Brokers::single(&tools.binary, run_dir, secure)?
            }
            Nodes::ThreeVoters => {
                Brokers::three_voters(&tools.binary, &run_dir.join("cluster"), &context.runtime)?
            }
            Nodes::OwnBroker => {
                results.extend(run_own_broker_cases(&context, &phase)?);
                continue;
            }
        };
        eprintln!("  brokers: {}", brokers.describe());
        results.extend(run_phase(&context, &brokers, &phase)?);
        brokers.stop()?;
    }
    Ok(RunResult {
        run,
        load_average: (load_before, load_average()),
        machine,
        cases: results,
    })
}

/// Runs cases that start, stop and restart a broker of their own, one after the other.
fn run_own_broker_cases(
    context: &RunContext,
    cases: &[Case],
) -> Result<Vec<CaseResult>, BenchError> {
    let mut results = Vec::new();
    for case in cases {
        machine::sync_everything();
        let result = partitions::run_case(context, case)?;
        print_progress(&result);
        results.push(result);
    }
    Ok(results)
}

/// Runs `cases` in order against `brokers`; the produce throughput cases are bracketed by
/// disk probes, one probe serving as the "after" of a case and the "before" of the next.
fn run_phase(
    context: &RunContext,
    brokers: &Brokers,
    cases: &[Case],
) -> Result<Vec<CaseResult>, BenchError> {
    let mut results = Vec::new();
    // The last probe, while no case has run since it: the next produce case's "before".
    let mut last_probe = None;
    for (index, case) in cases.iter().enumerate() {
        prepare(context, brokers, case)?;
        machine::sync_everything();
        let probe = case.disk_probe();
        let disk_before = match probe {
            Some(time) => match last_probe.take() {
                Some(figure) => Some(figure),
                None => Some(probe_disk(context.run_dir, time)?),
            },
            None => {
                last_probe = None;
                None
            }
        };
        let mut result = run_case(context, brokers, case).map_err(|error| {
            BenchError::Suite(format!(
                "case '{}' failed: {error}\nbroker log tail:\n{}",
                case.name,
                brokers.log_tail()
            ))
        })?;
        if let (Some(time), Some(before)) = (probe, disk_before) {
            machine::sync_everything();
            let after = probe_disk(context.run_dir, time)?;
            last_probe = Some(after);
            result.disk_synced_mb_per_s = Some((before + after) / 2.0);
        }
        print_progress(&result);
        results.push(result);
        clean_up(context, case)?;
        drop_finished_topics(&context.runtime, brokers.bootstrap(), cases, index)?;
    }
    Ok(results)
}

/// What a case needs before its figures are taken: its topics, the transaction coordinator's
/// state topic, the kcat case's file.
fn prepare(context: &RunContext, brokers: &Brokers, case: &Case) -> Result<(), BenchError> {
    context
        .runtime
        .block_on(create_topics(brokers.bootstrap(), &case.creates))?;
    if case.is_transactional() {
        context
            .runtime
            .block_on(warm_up_transactions(brokers.bootstrap()))?;
    }
    if let Load::KcatProduce {
        records,
        record_bytes,
        ..
    } = &case.load
    {
        let file = loads::kcat_file(context.run_dir, *records, *record_bytes);
        loads::write_kcat_file(&file, *records, *record_bytes)?;
    }
    Ok(())
}

/// Creates topics a case needs. A replicated one then gets one acks=all write per partition:
/// the first such write waits ~0.4 s for the followers to start fetching (measured on this
/// VM), a start-up cost that would otherwise be the case's produce p99.9.
async fn create_topics(address: &str, creates: &[NewTopic]) -> Result<(), BenchError> {
    if creates.is_empty() {
        return Ok(());
    }
    let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
    for topic in creates {
        let layout = crate::cluster::ensure_topic(
            &client,
            &topic.name,
            topic.partitions,
            topic.replication_factor,
        )
        .await?;
        if topic.replication_factor <= 1 {
            continue;
        }
        let record = ProduceRecord::new(None, Some(Bytes::from_static(b"suite warm-up")));
        for (partition, _) in &layout.partitions {
            client
                .produce(
                    &topic.name,
                    *partition,
                    std::slice::from_ref(&record),
                    Acks::All,
                    Compression::None,
                )
                .await?;
        }
    }
    Ok(())
}

/// Makes the cluster ready for transactions before a transactional case's figures are taken:
/// the first InitProducerId with a transactional id creates `__transaction_state` (50
/// partitions), which costs the broker more than seconds of the load.
async fn warm_up_transactions(address: &str) -> Result<(), BenchError> {
    let client =
        std::sync::Arc::new(crate::cluster::connect(address, &SecurityConfig::default()).await?);
    strom_client::TransactionalProducer::init(client, "strom-bench-suite-warm-up", 60_000).await?;
    Ok(())
}

/// Removes what [`prepare`] wrote that the next cases do not need.
fn clean_up(context: &RunContext, case: &Case) -> Result<(), BenchError> {
    if let Load::KcatProduce {
        records,
        record_bytes,
        ..
    } = &case.load
    {
        let file = loads::kcat_file(context.run_dir, *records, *record_bytes);
        std::fs::remove_file(&file)
            .map_err(BenchError::io(format!("removing {}", file.display())))?;
    }
    Ok(())
}

/// Runs one case's load (and the idle consumers beside it) with the brokers' CPU time read
/// right before and right after.
fn run_case(
    context: &RunContext,
    brokers: &Brokers,
    case: &Case,
) -> Result<CaseResult, BenchError> {
    let address = brokers.bootstrap();
    let beside = case
        .beside
        .as_ref()
        .map(|words| Beside::start(words, address))
        .transpose()?;
    let own_stat = "/proc/self/stat";
    let broker_before = brokers.cpu_seconds()?;
    let broker_system_before = brokers.system_cpu_seconds()?;
    let bench_before = process_cpu_seconds(own_stat, context.clock_ticks_per_s)?;
    let outcome = run_load(context, brokers, case)?;
    let broker_cpu_s = brokers.cpu_seconds()? - broker_before;
    let broker_system_cpu_s = brokers.system_cpu_seconds()? - broker_system_before;
    let bench_cpu_s = process_cpu_seconds(own_stat, context.clock_ticks_per_s)? - bench_before;
    let (idle, command) = match beside {
        Some(beside) => {
            // By hand, the consumers get a head start to connect before the load begins.
            let command = format!("{} & sleep 1; {}", beside.command, outcome.command);
            (Some(IdleFigures::of(&beside.stop()?)), command)
        }
        None => (None, outcome.command.clone()),
    };
    let per_million = |seconds: f64| seconds / (outcome.records.max(1) as f64) * 1e6;
    Ok(CaseResult {
        case: case.name.clone(),
        run: context.run,
        command,
        records: outcome.records,
        records_per_s: outcome.records_per_s,
        mb_per_s: outcome.mb_per_s,
        latency_kind: outcome.latency_kind,
        latency: outcome.latency,
        produce_latency: outcome.produce_latency,
        idle_consumers: idle,
        idle_connections: outcome.idle_connections,
        transactions: outcome.transactions,
        broker_cpu_s,
        broker_cpu_s_per_million: per_million(broker_cpu_s),
        broker_system_cpu_share: if broker_cpu_s > 0.0 {
            broker_system_cpu_s / broker_cpu_s
        } else {
            0.0
        },
        bench_cpu_s_per_million: outcome.in_process.then(|| per_million(bench_cpu_s)),
        broker_peak_rss_mib: brokers.peak_rss_bytes()? as f64 / (1 << 20) as f64,
        disk_synced_mb_per_s: None,
        partitions: None,
    })
}

fn run_load(context: &RunContext, brokers: &Brokers, case: &Case) -> Result<Outcome, BenchError> {
    let runtime = &context.runtime;
    let (address, command_config) = brokers.endpoint(case.listener);
    let load = &case.load;
    assert!(
        command_config.is_none() || matches!(load, Load::Bench(_)),
        "only `strom bench` loads run over SSL"
    );
    match load {
        Load::Bench(words) => loads::run_bench(runtime, words, address, command_config),
        Load::LibrdkafkaProduce { .. } | Load::LibrdkafkaE2e { .. } => {
            let python = context.tools.python.as_deref();
            let python = python.expect("a Python is found when librdkafka cases exist");
            loads::run_librdkafka(runtime, python, context.run_dir, load, address)
        }
        Load::KcatProduce { .. } => {
            let kcat = context.tools.kcat.as_deref();
            let kcat = kcat.expect("kcat is found when the kcat case exists");
            loads::run_kcat(runtime, kcat, context.run_dir, load, address)
        }
        Load::IdleConnections { connections } => {
            loads::run_idle_connections(runtime, *connections, address, || brokers.rss_bytes())
        }
        Load::Partitions { .. } => unreachable!("the many-partitions case has its own broker"),
    }
}

fn print_progress(result: &CaseResult) {
    eprintln!(
        "  {:<38} {:>9} rec/s {:>8.1} MB/s  {} p99 {} ms  broker {:.2} CPU s/M{}{}{}{}",
        result.case,
        human_count(result.records_per_s),
        result.mb_per_s,
        result.latency_kind,
        result
            .latency
            .map_or("-".to_string(), |latency| format!("{:.2}", latency.p99_ms)),
        result.broker_cpu_s_per_million,
        result
            .disk_synced_mb_per_s
            .map_or(String::new(), |disk| format!("  disk {disk:.0} MB/s")),
        result
            .idle_consumers
            .as_ref()
            .map_or(String::new(), |idle| {
                format!(
                    "  {} idle consumers: {:.0} fetches/s",
                    idle.consumers, idle.fetches_per_s
                )
            }),
        result
            .idle_connections
            .as_ref()
            .map_or(String::new(), |held| {
                format!(
                    "  broker RSS {:.1} -> {:.1} MiB: {:.1} KiB per connection",
                    held.broker_rss_before_mib,
                    held.broker_rss_held_mib,
                    held.broker_rss_kib_per_connection
                )
            }),
        result
            .partitions
            .as_ref()
            .map_or(String::new(), |figures| format!(
                "\n  {:<38} {}",
                "",
                figures.summary()
            ))
    );
}

/// Deletes the topics of case `done` that no later case uses: a run writes tens of GB, more
/// than a small disk holds at once.
fn drop_finished_topics(
    runtime: &tokio::runtime::Runtime,
    address: &str,
    cases: &[Case],
    done: usize,
) -> Result<(), BenchError> {
    let finished: Vec<&str> = cases[done]
        .topics()
        .into_iter()
        .filter(|topic| {
            !cases[done + 1..]
                .iter()
                .any(|later| later.topics().contains(topic))
        })
        .collect();
    if finished.is_empty() {
        return Ok(());
    }
    runtime.block_on(async {
        let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
        client
            .delete_topics(&finished)
            .await
            .map_err(|error| BenchError::Broker(format!("deleting topics {finished:?}: {error}")))
    })
}

/// The disk's bandwidth with an fdatasync after each 1 MiB append, written for `time`.
fn probe_disk(run_dir: &Path, time: Duration) -> Result<f64, BenchError> {
    let dir = run_dir.join("probe");
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    machine::disk_write(&dir.join("probe-around"), machine::Amount::Time(time), true)
}

/// The machine's 1-minute load average (0 if /proc/loadavg cannot be read).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
