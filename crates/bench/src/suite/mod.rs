//! `strom bench suite`: a fresh broker, the machine's limits, a fixed set of loads, one table.
//!
//! Each run (`--runs N` repeats the whole set) makes a directory under `--dir`, measures the
//! machine there ([`machine`]), starts `strom server` of this same binary on a free port with
//! its data directory inside ([`broker`]), and runs the cases in order. Every case but the
//! librdkafka ones is an ordinary `strom bench` command line, printed with the results so that
//! any row can be re-run by hand. Around each case the suite reads the broker's CPU time and
//! peak memory from `/proc`, and runs `sync` before it so one case's write-back does not land
//! in the next. [`table`] turns the runs into the table (median and range over the runs) and
//! checks the targets.

mod broker;
mod machine;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::args::parse_seconds;
use crate::error::BenchError;
use crate::report::Report;
use crate::stats::{human_count, LatencySummary};
use crate::BenchCommand;

pub use broker::{process_cpu_seconds, stat_cpu_ticks, status_kib, BrokerProcess};
pub use machine::{MachineLimits, MachineSizes};
pub use table::{check_targets, render, TargetCheck};

/// librdkafka's default `batch.size`.
const LIBRDKAFKA_BATCH_BYTES: u64 = 1_000_000;

/// The librdkafka load script, written next to the run's data when `--librdkafka` is given.
const LIBRDKAFKA_SCRIPT: &str = include_str!("librdkafka_load.py");

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
    /// Also load the broker with librdkafka (confluent-kafka, through --python).
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

/// What a case runs.
#[derive(Debug, Clone, PartialEq)]
enum Load {
    /// A `strom bench` command line (the words after `strom bench`).
    Bench(Vec<String>),
    /// The librdkafka script: produce (record bytes, acks) or e2e (record bytes, rate).
    LibrdkafkaProduce {
        topic: String,
        record_bytes: u64,
        acks: &'static str,
        seconds: f64,
    },
    LibrdkafkaE2e {
        topic: String,
        record_bytes: u64,
        rate: u64,
        seconds: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Case {
    name: String,
    load: Load,
}

impl Case {
    /// The topic the case writes or reads.
    fn topic(&self) -> Option<&str> {
        match &self.load {
            Load::Bench(words) => words
                .iter()
                .position(|word| word == "--topic")
                .and_then(|at| words.get(at + 1))
                .map(String::as_str),
            Load::LibrdkafkaProduce { topic, .. } | Load::LibrdkafkaE2e { topic, .. } => {
                Some(topic)
            }
        }
    }

    /// How long the case writes to disk, for the produce cases: they are compared with the
    /// disk's fdatasync'd bandwidth measured for as long right before and right after them.
    fn disk_probe(&self) -> Option<Duration> {
        let seconds = match &self.load {
            Load::Bench(words)
                if words.first().map(String::as_str) == Some("produce")
                    && !words.iter().any(|word| word == "--rate") =>
            {
                words
                    .iter()
                    .position(|word| word == "--duration")
                    .and_then(|at| words.get(at + 1)?.parse::<f64>().ok())
            }
            Load::LibrdkafkaProduce { seconds, .. } => Some(*seconds),
            _ => None,
        }?;
        Some(Duration::from_secs_f64(seconds))
    }
}

/// The suite's cases, in the order they run.
fn cases(args: &SuiteArgs) -> Vec<Case> {
    let (seconds, e2e_seconds) = if args.quick {
        (1.0, 2.0)
    } else {
        (
            args.case_seconds.as_secs_f64(),
            args.e2e_seconds.as_secs_f64(),
        )
    };
    let bench = |words: String| Load::Bench(words.split_whitespace().map(String::from).collect());
    // Throughput cases batch like librdkafka (batch.size 1,000,000 bytes and at most 10,000
    // records a batch), the load the targets are stated for; the end-to-end cases
    // keep the bench's defaults (the Java client's: 16 KiB batches, linger 5 ms).
    let produce = |topic: &str, bytes: u64, acks: &str, extra: &str| {
        bench(format!(
            "produce --topic {topic} --record-size {bytes} --acks {acks} --duration {seconds} \
             --batch-size {LIBRDKAFKA_BATCH_BYTES} {extra}"
        ))
    };
    let e2e = |topic: &str, bytes: u64, rate: u64| {
        bench(format!(
            "e2e --topic {topic} --record-size {bytes} --rate {rate} --duration {e2e_seconds}"
        ))
    };
    let mut cases = vec![
        Case {
            name: "produce 100 B acks=1".into(),
            load: produce("suite-100", 100, "1", ""),
        },
        Case {
            name: "produce 1 KiB acks=1".into(),
            load: produce("suite-1k", 1024, "1", ""),
        },
        Case {
            name: "consume 100 B".into(),
            load: bench("consume --topic suite-100".into()),
        },
        Case {
            name: "consume 1 KiB".into(),
            load: bench("consume --topic suite-1k".into()),
        },
        Case {
            name: "produce 100 B acks=all".into(),
            load: produce("suite-100-all", 100, "all", ""),
        },
        Case {
            name: "produce 1 KiB acks=all".into(),
            load: produce("suite-1k-all", 1024, "all", ""),
        },
        // Produce latency at a low rate with the bench's defaults (linger 5 ms): acks=all is
        // the target's case, acks=1 the same requests without the fsync, which shows what the
        // request's round trip itself costs at this rate on this machine.
        Case {
            name: "produce 100 B 1k/s acks=1".into(),
            load: bench(format!(
                "produce --topic suite-rate-1 --record-size 100 --acks 1 --rate 1000 --duration {seconds}"
            )),
        },
        Case {
            name: "produce 100 B 1k/s acks=all".into(),
            load: bench(format!(
                "produce --topic suite-rate-all --record-size 100 --acks all --rate 1000 --duration {seconds}"
            )),
        },
        Case {
            name: "e2e 100 B 1k/s acks=all".into(),
            load: e2e("suite-e2e-100-1k", 100, 1_000),
        },
        Case {
            name: "e2e 100 B 10k/s acks=all".into(),
            load: e2e("suite-e2e-100-10k", 100, 10_000),
        },
        Case {
            name: "e2e 1 KiB 1k/s acks=all".into(),
            load: e2e("suite-e2e-1k-1k", 1024, 1_000),
        },
        Case {
            name: "e2e 1 KiB 10k/s acks=all".into(),
            load: e2e("suite-e2e-1k-10k", 1024, 10_000),
        },
    ];
    if args.librdkafka {
        let rd_produce =
            |topic: &str, record_bytes: u64, acks: &'static str| Load::LibrdkafkaProduce {
                topic: topic.to_string(),
                record_bytes,
                acks,
                seconds,
            };
        cases.extend([
            Case {
                name: "librdkafka produce 100 B acks=1".into(),
                load: rd_produce("suite-rd-100", 100, "1"),
            },
            Case {
                name: "librdkafka produce 1 KiB acks=1".into(),
                load: rd_produce("suite-rd-1k", 1024, "1"),
            },
            Case {
                name: "librdkafka produce 1 KiB acks=all".into(),
                load: rd_produce("suite-rd-1k-all", 1024, "all"),
            },
            Case {
                name: "librdkafka e2e 100 B 1k/s acks=all".into(),
                load: Load::LibrdkafkaE2e {
                    topic: "suite-rd-e2e".into(),
                    record_bytes: 100,
                    rate: 1_000,
                    seconds: e2e_seconds,
                },
            },
        ]);
    }
    // Last, so that the broker's peak memory after it covers the whole run.
    cases.push(Case {
        name: "produce 1 KiB acks=1 100 partitions".into(),
        load: produce("suite-100p", 1024, "1", "--partitions 100"),
    });
    cases.retain(|case| {
        args.only.is_empty()
            || args
                .only
                .iter()
                .any(|only| case.name.contains(only.as_str()))
    });
    cases
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
    pub broker_cpu_s: f64,
    pub broker_cpu_s_per_million: f64,
    /// The share of the broker's CPU time spent in the kernel (system time): on a VM, copying
    /// appends into freshly allocated page-cache pages dominates it.
    pub broker_system_cpu_share: f64,
    /// The load generator's own CPU per million records (`None` for librdkafka's).
    pub bench_cpu_s_per_million: Option<f64>,
    /// The broker's peak resident memory (VmHWM) after the case.
    pub broker_peak_rss_mib: f64,
    /// For produce cases: the disk's bandwidth with an fdatasync after each 1 MiB append,
    /// measured for the case's duration right before and right after it (the mean of the
    /// two). The throughput targets compare with this: on a VM whose disk bandwidth comes and
    /// goes with its neighbours and its burst credit, a figure from minutes earlier says little.
    pub disk_synced_mb_per_s: Option<f64>,
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
    let python = args.librdkafka.then(|| find_python(&args)).transpose()?;
    let cases = cases(&args);
    let sizes = if args.quick {
        MachineSizes::QUICK
    } else {
        MachineSizes::FULL
    };
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let run_dir = base.path().join(format!("run{run}"));
        let result = run_once(
            &binary,
            &run_dir,
            run,
            args.runs,
            &cases,
            sizes,
            python.as_deref(),
        );
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

fn run_once(
    binary: &Path,
    run_dir: &Path,
    run: u32,
    runs: u32,
    cases: &[Case],
    sizes: MachineSizes,
    python: Option<&Path>,
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
    let broker = BrokerProcess::start(binary, &run_dir.join("data"), &run_dir.join("broker.log"))?;
    eprintln!("  broker pid {} on {}", broker.pid, broker.address);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("cannot start the async runtime"))?;
    let clock_ticks_per_s = broker::clock_ticks_per_s();
    let mut results = Vec::new();
    // The last probe, while no case has run since it: the next produce case's "before".
    let mut last_probe = None;
    for (index, case) in cases.iter().enumerate() {
        machine::sync_everything();
        let probe = case.disk_probe();
        let disk_before = match probe {
            Some(time) => match last_probe.take() {
                Some(figure) => Some(figure),
                None => Some(probe_disk(run_dir, time)?),
            },
            None => {
                last_probe = None;
                None
            }
        };
        let broker_before = broker.cpu_seconds()?;
        let broker_system_before = broker.system_cpu_seconds()?;
        let bench_before = process_cpu_seconds("/proc/self/stat", clock_ticks_per_s)?;
        let outcome = match &case.load {
            Load::Bench(words) => run_bench(&runtime, words, &broker.address),
            Load::LibrdkafkaProduce { .. } | Load::LibrdkafkaE2e { .. } => {
                let python = python.expect("a Python is found when librdkafka cases exist");
                run_librdkafka(&runtime, python, run_dir, &case.load, &broker.address)
            }
        };
        let outcome = outcome.map_err(|error| {
            BenchError::Suite(format!(
                "case '{}' failed: {error}\nbroker log tail:\n{}",
                case.name,
                broker.log_tail()
            ))
        })?;
        let broker_cpu_s = broker.cpu_seconds()? - broker_before;
        let broker_system_cpu_s = broker.system_cpu_seconds()? - broker_system_before;
        let bench_cpu_s = process_cpu_seconds("/proc/self/stat", clock_ticks_per_s)? - bench_before;
        let peak_rss_bytes = broker.peak_rss_bytes()?;
        let disk_synced_mb_per_s = match (probe, disk_before) {
            (Some(time), Some(before)) => {
                machine::sync_everything();
                let after = probe_disk(run_dir, time)?;
                last_probe = Some(after);
                Some((before + after) / 2.0)
            }
            _ => None,
        };
        let per_million = |seconds: f64| seconds / (outcome.records.max(1) as f64) * 1e6;
        let result = CaseResult {
            case: case.name.clone(),
            run,
            command: outcome.command,
            records: outcome.records,
            records_per_s: outcome.records_per_s,
            mb_per_s: outcome.mb_per_s,
            latency_kind: outcome.latency_kind,
            latency: outcome.latency,
            produce_latency: outcome.produce_latency,
            broker_cpu_s,
            broker_cpu_s_per_million: per_million(broker_cpu_s),
            broker_system_cpu_share: if broker_cpu_s > 0.0 {
                broker_system_cpu_s / broker_cpu_s
            } else {
                0.0
            },
            bench_cpu_s_per_million: outcome.in_process.then(|| per_million(bench_cpu_s)),
            broker_peak_rss_mib: peak_rss_bytes as f64 / (1 << 20) as f64,
            disk_synced_mb_per_s,
        };
        eprintln!(
            "  {:<38} {:>9} rec/s {:>8.1} MB/s  {} p99 {} ms  broker {:.2} CPU s/M{}",
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
                .map_or(String::new(), |disk| format!("  disk {disk:.0} MB/s"))
        );
        results.push(result);
        drop_finished_topics(&runtime, &broker.address, cases, index)?;
    }
    broker.stop()?;
    Ok(RunResult {
        run,
        load_average: (load_before, load_average()),
        machine,
        cases: results,
    })
}

/// Deletes the topic of case `done` unless a later case uses it: a run writes tens of GB,
/// more than a small disk holds at once.
fn drop_finished_topics(
    runtime: &tokio::runtime::Runtime,
    address: &str,
    cases: &[Case],
    done: usize,
) -> Result<(), BenchError> {
    let Some(topic) = cases[done].topic() else {
        return Ok(());
    };
    if cases[done + 1..]
        .iter()
        .any(|later| later.topic() == Some(topic))
    {
        return Ok(());
    }
    runtime.block_on(async {
        let client = crate::cluster::connect(address).await?;
        client
            .delete_topics(&[topic])
            .await
            .map_err(|error| BenchError::Broker(format!("deleting topic {topic}: {error}")))
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

/// What one case produced, before the suite adds the broker's figures.
struct Outcome {
    command: String,
    records: u64,
    records_per_s: f64,
    mb_per_s: f64,
    latency_kind: &'static str,
    latency: Option<LatencySummary>,
    produce_latency: Option<LatencySummary>,
    /// Whether the load ran in this process (so this process's CPU time is the load's).
    in_process: bool,
}

/// A `strom bench` command line as a parser, to run the suite's cases exactly as a user would.
#[derive(Parser)]
#[command(name = "strom bench")]
struct BenchLine {
    #[command(subcommand)]
    command: BenchCommand,
}

fn run_bench(
    runtime: &tokio::runtime::Runtime,
    words: &[String],
    address: &str,
) -> Result<Outcome, BenchError> {
    let mut line: Vec<String> = vec!["strom bench".to_string()];
    line.extend(words.iter().cloned());
    line.extend(["--bootstrap".to_string(), address.to_string()]);
    let parsed = BenchLine::try_parse_from(&line).map_err(|error| {
        BenchError::InvalidArgument(format!("suite case '{}': {error}", words.join(" ")))
    })?;
    let command = format!("strom bench {} --bootstrap {address}", words.join(" "));
    let report: Report = match parsed.command {
        BenchCommand::Produce(args) => runtime.block_on(crate::produce::run(args))?,
        BenchCommand::Consume(args) => runtime.block_on(crate::consume::run(args))?,
        BenchCommand::E2e(args) => runtime.block_on(crate::e2e::run(args))?,
        BenchCommand::Suite(_) => unreachable!("the suite does not run itself"),
    };
    let throughput = report
        .throughput
        .expect("every bench report has a throughput");
    let (latency_kind, latency, produce_latency) = match report.bench {
        "produce" => ("produce", report.produce_latency, None),
        "consume" => ("fetch", report.fetch_latency, None),
        _ => ("e2e", report.end_to_end_latency, report.produce_latency),
    };
    Ok(Outcome {
        command,
        records: throughput.records,
        records_per_s: throughput.records_per_s,
        mb_per_s: throughput.mb_per_s,
        latency_kind,
        latency,
        produce_latency,
        in_process: true,
    })
}

/// Runs the librdkafka script for a case; the topic is created first, with one partition.
fn run_librdkafka(
    runtime: &tokio::runtime::Runtime,
    python: &Path,
    run_dir: &Path,
    load: &Load,
    address: &str,
) -> Result<Outcome, BenchError> {
    let script = run_dir.join("librdkafka_load.py");
    if !script.exists() {
        std::fs::write(&script, LIBRDKAFKA_SCRIPT)
            .map_err(BenchError::io(format!("writing {}", script.display())))?;
    }
    let (topic, words, latency_kind) = match load {
        Load::LibrdkafkaProduce {
            topic,
            record_bytes,
            acks,
            seconds,
        } => {
            let words = [
                "produce",
                address,
                topic,
                &record_bytes.to_string(),
                acks,
                &seconds.to_string(),
            ];
            (topic, words.map(String::from).to_vec(), "-")
        }
        Load::LibrdkafkaE2e {
            topic,
            record_bytes,
            rate,
            seconds,
        } => {
            let words = [
                "e2e",
                address,
                topic,
                &record_bytes.to_string(),
                &rate.to_string(),
                &seconds.to_string(),
                "1",
            ];
            (topic, words.map(String::from).to_vec(), "e2e")
        }
        Load::Bench(_) => unreachable!("not a librdkafka load"),
    };
    runtime.block_on(async {
        let client = crate::cluster::connect(address).await?;
        crate::cluster::ensure_topic(&client, topic, 1, -1)
            .await
            .map(|_| ())
    })?;
    let output = std::process::Command::new(python)
        .arg(&script)
        .args(&words)
        .output()
        .map_err(BenchError::io(format!("running {}", python.display())))?;
    if !output.status.success() {
        return Err(BenchError::Suite(format!(
            "the librdkafka load exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|error| {
        BenchError::Suite(format!("the librdkafka load printed no JSON ({error})"))
    })?;
    let number = |key: &str| result[key].as_f64().unwrap_or(0.0);
    let latency = result.get("latency").and_then(|latency| {
        Some(LatencySummary {
            samples: latency["samples"].as_u64()?,
            mean_ms: latency["mean_ms"].as_f64()?,
            p50_ms: latency["p50_ms"].as_f64()?,
            p99_ms: latency["p99_ms"].as_f64()?,
            p999_ms: latency["p999_ms"].as_f64()?,
            max_ms: latency["max_ms"].as_f64()?,
        })
    });
    Ok(Outcome {
        command: format!(
            "{} librdkafka_load.py {}",
            python.display(),
            words.join(" ")
        ),
        records: number("records") as u64,
        records_per_s: number("records_per_s"),
        mb_per_s: number("mb_per_s"),
        latency_kind,
        latency,
        produce_latency: None,
        in_process: false,
    })
}

/// The Python for the librdkafka load: --python, else .venv/bin/python, else python3; it must
/// import confluent_kafka.
fn find_python(args: &SuiteArgs) -> Result<PathBuf, BenchError> {
    let python = args.python.clone().unwrap_or_else(|| {
        let venv = PathBuf::from(".venv/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    });
    let works = std::process::Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !works {
        return Err(BenchError::InvalidArgument(format!(
            "--librdkafka needs a Python with confluent-kafka; {} has none (run scripts/test once to \
             make .venv, or give --python)",
            python.display()
        )));
    }
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> SuiteArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            suite: SuiteArgs,
        }
        Wrapper::try_parse_from(std::iter::once("suite").chain(line.split_whitespace()))
            .unwrap()
            .suite
    }

    #[test]
    fn every_case_is_a_valid_bench_command_line() {
        for case in cases(&args("--librdkafka")) {
            if let Load::Bench(words) = &case.load {
                let mut line = vec!["strom bench".to_string()];
                line.extend(words.iter().cloned());
                assert!(
                    BenchLine::try_parse_from(&line).is_ok(),
                    "{}: {words:?}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn produce_cases_and_only_they_are_bracketed_by_disk_probes() {
        for case in cases(&args("--librdkafka --case-seconds 7")) {
            let probe = case.disk_probe();
            if case.name.contains("produce") && !case.name.contains("/s") {
                assert_eq!(probe, Some(Duration::from_secs(7)), "{}", case.name);
            } else {
                assert_eq!(probe, None, "{}", case.name);
            }
        }
    }

    #[test]
    fn every_case_names_its_topic_and_the_consume_cases_read_earlier_ones() {
        let cases = cases(&args("--librdkafka"));
        assert!(cases.iter().all(|case| case.topic().is_some()));
        for (index, case) in cases.iter().enumerate() {
            if case.name.starts_with("consume") {
                let topic = case.topic();
                assert!(cases[..index]
                    .iter()
                    .any(|earlier| earlier.topic() == topic));
            }
        }
    }

    #[test]
    fn the_case_list_follows_the_flags() {
        let names: Vec<String> = cases(&args("")).into_iter().map(|case| case.name).collect();
        assert_eq!(names.len(), 13);
        assert!(names.iter().all(|name| !name.starts_with("librdkafka")));
        assert_eq!(names.last().unwrap(), "produce 1 KiB acks=1 100 partitions");
        let with_rd = cases(&args("--librdkafka"));
        assert_eq!(with_rd.len(), 17);
        let only = cases(&args("--only e2e --only consume"));
        assert!(only
            .iter()
            .all(|case| case.name.contains("e2e") || case.name.contains("consume")));
        assert_eq!(only.len(), 6);
        let quick = cases(&args("--quick --case-seconds 30"));
        assert_eq!(
            quick[0].load,
            Load::Bench(
                "produce --topic suite-100 --record-size 100 --acks 1 --duration 1 --batch-size 1000000"
                    .split(' ')
                    .map(String::from)
                    .collect()
            )
        );
    }
}
