//! Running a case's load: a `strom bench` command line in this process, the librdkafka script
//! or kcat as child processes. Each returns an [`Outcome`], to which the suite adds what it
//! measured around the load (the broker's CPU and memory, the disk).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use serde::Serialize;
use strom_client::{OffsetSpec, SecurityConfig};

use super::cases::Load;
use super::{SuiteArgs, TransactionFigures};
use crate::error::BenchError;
use crate::report::Report;
use crate::stats::LatencySummary;
use crate::BenchCommand;

/// The librdkafka load script, written next to the run's data when `--librdkafka` is given.
const LIBRDKAFKA_SCRIPT: &str = include_str!("librdkafka_load.py");
/// kcat's producer settings for the suite: librdkafka's defaults but for acks, linger (5 ms,
/// the bench's and the Java client's default) and no compression.
const KCAT_SETTINGS: [&str; 6] = ["-X", "acks=1", "-X", "linger.ms=5", "-z", "none"];
/// Lines the kcat file is written in at a time.
const KCAT_FILE_LINES_PER_WRITE: usize = 10_000;

/// What one case produced, before the suite adds the broker's figures.
pub struct Outcome {
    pub command: String,
    pub records: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub latency_kind: &'static str,
    pub latency: Option<LatencySummary>,
    pub produce_latency: Option<LatencySummary>,
    /// Whether the load ran in this process (so this process's CPU time is the load's).
    pub in_process: bool,
    /// The idle-connections case's memory figures.
    pub idle_connections: Option<ConnectionFigures>,
    /// A transactional load's transactions.
    pub transactions: Option<TransactionFigures>,
}

/// What idle connections cost the broker: its resident memory before they were opened and
/// once all were set up.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionFigures {
    pub connections: usize,
    pub broker_rss_before_mib: f64,
    pub broker_rss_held_mib: f64,
    /// The growth over the connections, per connection.
    pub broker_rss_kib_per_connection: f64,
}

impl ConnectionFigures {
    fn new(connections: usize, rss_before_bytes: u64, rss_held_bytes: u64) -> ConnectionFigures {
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        let growth = rss_held_bytes as f64 - rss_before_bytes as f64;
        ConnectionFigures {
            connections,
            broker_rss_before_mib: mib(rss_before_bytes),
            broker_rss_held_mib: mib(rss_held_bytes),
            broker_rss_kib_per_connection: growth / connections.max(1) as f64 / 1024.0,
        }
    }
}

/// A `strom bench` command line as a parser, to run the suite's cases exactly as a user would.
#[derive(Parser)]
#[command(name = "strom bench")]
pub struct BenchLine {
    #[command(subcommand)]
    pub command: BenchCommand,
}

impl BenchLine {
    /// Parses `words` (after `strom bench`) with `--bootstrap address` and `--command-config`
    /// added. The suite's brokers are its own, and make the only properties files their
    /// listeners need, so a `STROM_COMMAND_CONFIG` in the environment is not for them.
    pub fn parse(
        words: &[String],
        address: &str,
        command_config: Option<&Path>,
    ) -> Result<BenchLine, BenchError> {
        let mut line: Vec<String> = vec!["strom bench".to_string()];
        line.extend(words.iter().cloned());
        line.extend(["--bootstrap".to_string(), address.to_string()]);
        let mut parsed = BenchLine::try_parse_from(&line).map_err(|error| {
            BenchError::InvalidArgument(format!("suite case '{}': {error}", words.join(" ")))
        })?;
        if let Some(common) = parsed.command.common_mut() {
            common.command_config = command_config.map(Path::to_path_buf);
        }
        Ok(parsed)
    }

    /// How to run `words` by hand.
    pub fn command(words: &[String], address: &str, command_config: Option<&Path>) -> String {
        let config = command_config.map_or(String::new(), |path| {
            format!(" --command-config {}", path.display())
        });
        format!(
            "strom bench {} --bootstrap {address}{config}",
            words.join(" ")
        )
    }
}

pub fn run_bench(
    runtime: &tokio::runtime::Runtime,
    words: &[String],
    address: &str,
    command_config: Option<&Path>,
) -> Result<Outcome, BenchError> {
    let parsed = BenchLine::parse(words, address, command_config)?;
    let report: Report = match parsed.command {
        BenchCommand::Produce(args) => runtime.block_on(crate::produce::run(args))?,
        BenchCommand::Consume(args) => runtime.block_on(crate::consume::run(args))?,
        BenchCommand::E2e(args) => runtime.block_on(crate::e2e::run(args))?,
        BenchCommand::IdleFetch(_) | BenchCommand::IdleConnections(_) | BenchCommand::Suite(_) => {
            unreachable!("the suite's loads produce, consume or both")
        }
    };
    let throughput = report
        .throughput
        .expect("every produce, consume and e2e report has a throughput");
    let (latency_kind, latency, produce_latency) = match report.bench {
        "produce" => ("produce", report.produce_latency, None),
        "consume" => ("fetch", report.fetch_latency, None),
        _ => ("e2e", report.end_to_end_latency, report.produce_latency),
    };
    let transactions = report.transactions.map(|transactions| TransactionFigures {
        transactions,
        transactions_per_s: report.transactions_per_s.unwrap_or(0.0),
        commit_latency: report.commit_latency,
        coordinator_retries: report.coordinator_retries.unwrap_or(0),
    });
    Ok(Outcome {
        command: BenchLine::command(words, address, command_config),
        records: throughput.records,
        records_per_s: throughput.records_per_s,
        mb_per_s: throughput.mb_per_s,
        latency_kind,
        latency,
        produce_latency,
        in_process: true,
        idle_connections: None,
        transactions,
    })
}

/// Runs the librdkafka script for a case; the topic is created first, with one partition.
pub fn run_librdkafka(
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
        _ => unreachable!("not a librdkafka load"),
    };
    runtime.block_on(async {
        let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
        crate::cluster::ensure_topic(&client, topic, 1, -1)
            .await
            .map(|_| ())
    })?;
    let output = Command::new(python)
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
        idle_connections: None,
        transactions: None,
    })
}

/// Sets up `connections` idle connections and holds them while `broker_rss_bytes` is read:
/// before they open and once all are set up. Records count the connections set up.
pub fn run_idle_connections(
    runtime: &tokio::runtime::Runtime,
    connections: u32,
    address: &str,
    broker_rss_bytes: impl Fn() -> Result<u64, BenchError>,
) -> Result<Outcome, BenchError> {
    let before = broker_rss_bytes()?;
    let mut held_rss = None;
    let held = runtime.block_on(crate::connections::hold(
        address,
        &SecurityConfig::default(),
        connections as usize,
        || held_rss = Some(broker_rss_bytes()),
        async {},
    ))?;
    let held_rss = held_rss.expect("the connections were held")?;
    let words = [
        "idle-connections",
        "--connections",
        &connections.to_string(),
    ];
    Ok(Outcome {
        command: BenchLine::command(&words.map(String::from), address, None),
        records: held.connections as u64,
        records_per_s: held.connections_per_s(),
        mb_per_s: 0.0,
        latency_kind: "set-up",
        latency: held.setup_latencies.summary(),
        produce_latency: None,
        in_process: true,
        idle_connections: Some(ConnectionFigures::new(held.connections, before, held_rss)),
        transactions: None,
    })
}

/// The file the kcat case sends: `records` lines of `record_bytes` letters each.
pub fn kcat_file(run_dir: &Path, records: u64, record_bytes: u64) -> PathBuf {
    run_dir.join(format!("kcat-{records}x{record_bytes}.txt"))
}

/// Writes the kcat case's file (before the case's figures are taken).
pub fn write_kcat_file(path: &Path, records: u64, record_bytes: u64) -> Result<(), BenchError> {
    let mut line = vec![b'x'; record_bytes as usize];
    line.push(b'\n');
    let chunk = line.repeat(KCAT_FILE_LINES_PER_WRITE);
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::File::create(path).map_err(BenchError::io(context()))?;
    let mut left = records;
    while left > 0 {
        let lines = left.min(KCAT_FILE_LINES_PER_WRITE as u64);
        file.write_all(&chunk[..lines as usize * line.len()])
            .map_err(BenchError::io(context()))?;
        left -= lines;
    }
    Ok(())
}

/// Runs kcat on the case's file; records count as the broker holds them (the topic's end
/// offsets moved by), so nothing lost is counted.
pub fn run_kcat(
    runtime: &tokio::runtime::Runtime,
    kcat: &Path,
    run_dir: &Path,
    load: &Load,
    address: &str,
) -> Result<Outcome, BenchError> {
    let Load::KcatProduce {
        topic,
        records,
        record_bytes,
    } = load
    else {
        unreachable!("not a kcat load")
    };
    let file = kcat_file(run_dir, *records, *record_bytes);
    let before = runtime.block_on(end_offsets_total(address, topic))?;
    let started = Instant::now();
    let output = Command::new(kcat)
        .args(["-P", "-b", address, "-t", topic])
        .args(KCAT_SETTINGS)
        .arg("-l")
        .arg(&file)
        .output()
        .map_err(BenchError::io(format!("running {}", kcat.display())))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(BenchError::Suite(format!(
            "kcat exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let delivered = runtime.block_on(end_offsets_total(address, topic))? - before;
    if delivered != *records {
        eprintln!(
            "  note: kcat sent {records} records, the broker holds {delivered}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Outcome {
        command: format!(
            "kcat -P -b {address} -t {topic} {} -l FILE  (FILE: {records} lines of {record_bytes} bytes)",
            KCAT_SETTINGS.join(" ")
        ),
        records: delivered,
        records_per_s: delivered as f64 / seconds,
        mb_per_s: (delivered * record_bytes) as f64 / seconds / 1e6,
        latency_kind: "-",
        latency: None,
        produce_latency: None,
        in_process: false,
        idle_connections: None,
        transactions: None,
    })
}

/// The sum of a topic's end offsets.
async fn end_offsets_total(address: &str, topic: &str) -> Result<u64, BenchError> {
    let client = crate::cluster::connect(address, &SecurityConfig::default()).await?;
    let layout = crate::cluster::existing_topic(&client, topic).await?;
    let partitions: Vec<_> = layout
        .partitions
        .iter()
        .map(|(partition, _)| *partition)
        .collect();
    let ends = crate::cluster::offsets(&client, topic, &partitions, OffsetSpec::Latest).await?;
    Ok(ends.iter().map(|end| end.0.max(0) as u64).sum())
}

/// The Python for the librdkafka load: --python, else .venv/bin/python, else python3; it must
/// import confluent_kafka.
pub fn find_python(args: &SuiteArgs) -> Result<PathBuf, BenchError> {
    let python = args.python.clone().unwrap_or_else(|| {
        let venv = PathBuf::from(".venv/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    });
    let works = Command::new(&python)
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

/// kcat on the PATH, if it runs.
pub fn find_kcat() -> Option<PathBuf> {
    let kcat = PathBuf::from("kcat");
    Command::new(&kcat)
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success())
        .then_some(kcat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_connects_its_own_brokers_with_its_own_properties() {
        let words = ["produce", "--command-config", "client.properties"].map(String::from);
        let mut line = BenchLine::parse(&words, "127.0.0.1:1", None).unwrap();
        let common = line.command.common_mut().unwrap();
        assert_eq!(common.command_config, None);
        assert_eq!(common.bootstrap, "127.0.0.1:1");
        let suite = Path::new("/suite/SSL.properties");
        let mut line = BenchLine::parse(&words, "127.0.0.1:2", Some(suite)).unwrap();
        let common = line.command.common_mut().unwrap();
        assert_eq!(common.command_config.as_deref(), Some(suite));
        assert_eq!(
            BenchLine::command(&words[..1], "127.0.0.1:2", Some(suite)),
            "strom bench produce --bootstrap 127.0.0.1:2 --command-config /suite/SSL.properties"
        );
    }

    #[test]
    fn the_kcat_file_holds_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = kcat_file(dir.path(), 10_005, 100);
        write_kcat_file(&path, 10_005, 100).unwrap();
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.len(), 10_005 * 101);
        assert!(text
            .split(|byte| *byte == b'\n')
            .all(|line| line.is_empty() || line.len() == 100));
    }
}
