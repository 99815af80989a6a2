//! `strom bench`: load for any Kafka-compatible broker, over the Kafka protocol, and the suite
//! that measures Strom against the machine it runs on.
//!
//! A tour, from the bottom up:
//! - [`batch`] builds v2 record batches once (templates the producer cuts and stamps) and
//!   walks fetched ones without copying; [`rate`] says when each record of a rate-limited load
//!   falls due; [`stats`] holds latency histograms, throughput and table formatting. No I/O.
//! - [`delivery`] makes a producer lane idempotent or transactional (`--idempotent`,
//!   `--transactional`): its producer id, sequences and transactions, through
//!   `strom_client::transactions`.
//! - [`cluster`] finds (or creates) the topic and its leaders, opens the bench's own
//!   connections (from `strom-client`) and reads offsets.
//! - [`produce`], [`consume`] and [`e2e`] are the three loads, and [`idle`] the consumers that
//!   long-poll partitions nothing is written to, to run beside them; [`connections`] holds
//!   thousands of connections that send nothing once set up. Each splits its work into
//!   lanes of one connection and one task; a producer lane pipelines requests, a consumer lane
//!   keeps one fetch in flight. Their figures go into a [`report::Report`], printed as a table
//!   or JSON; [`progress`] draws a bar on stderr meanwhile.
//! - [`suite`] starts a fresh `strom server`, measures the machine's limits (loopback, disk,
//!   fsync), runs a fixed set of loads against the broker while reading its CPU time and
//!   memory from `/proc` (then starts a three-node cluster for the replicated case), and
//!   prints one table with the targets beside the figures.
//!
//! Every bound the bench puts on itself is a named constant in the module that uses it.

pub mod args;
pub mod batch;
pub mod cluster;
pub mod connections;
pub mod consume;
pub mod delivery;
pub mod e2e;
pub mod error;
pub mod idle;
pub mod produce;
pub mod progress;
pub mod rate;
pub mod report;
pub mod stats;
pub mod suite;

pub use error::BenchError;

use crate::args::CommonArgs;

/// `strom bench ...`
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce as fast as possible (or at --rate) and report records/s, MB/s and produce
    /// latency percentiles.
    Produce(produce::ProduceArgs),
    /// Read a topic as fast as possible and report records/s, MB/s and fetch latency.
    Consume(consume::ConsumeArgs),
    /// Produce at a fixed rate while consuming, and report end-to-end latency percentiles.
    E2e(e2e::E2eArgs),
    /// Long-poll partitions nothing is written to (idle consumers), to run beside a produce
    /// load to another topic; reports the fetches answered per second and their latency.
    IdleFetch(idle::IdleFetchArgs),
    /// Open many connections, set each up (ApiVersions) and hold them idle, to see what an
    /// idle connection costs the broker; reports how fast they were set up.
    IdleConnections(connections::IdleConnectionsArgs),
    /// Start a fresh broker, measure the machine's limits and run a fixed set of loads.
    Suite(suite::SuiteArgs),
}

impl BenchCommand {
    /// The options every load shares (where the cluster is, how to connect and report); the
    /// suite has none, as it starts its own brokers.
    pub fn common_mut(&mut self) -> Option<&mut CommonArgs> {
        match self {
            BenchCommand::Produce(args) => Some(&mut args.common),
            BenchCommand::Consume(args) => Some(&mut args.common),
            BenchCommand::E2e(args) => Some(&mut args.common),
            BenchCommand::IdleFetch(args) => Some(&mut args.common),
            BenchCommand::IdleConnections(args) => Some(&mut args.common),
            BenchCommand::Suite(_) => None,
        }
    }
}

/// Runs a bench command and prints its figures on stdout.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    match args.command {
        BenchCommand::Produce(args) => {
            let common = args.common.clone();
            print(&common, runtime(&common)?.block_on(produce::run(args))?)?;
        }
        BenchCommand::Consume(args) => {
            let common = args.common.clone();
            print(&common, runtime(&common)?.block_on(consume::run(args))?)?;
        }
        BenchCommand::E2e(args) => {
            let common = args.common.clone();
            print(&common, runtime(&common)?.block_on(e2e::run(args))?)?;
        }
        BenchCommand::IdleFetch(args) => {
            let common = args.common.clone();
            print(&common, runtime(&common)?.block_on(idle::run(args))?)?;
        }
        BenchCommand::IdleConnections(args) => {
            let common = args.common.clone();
            print(&common, runtime(&common)?.block_on(connections::run(args))?)?;
        }
        BenchCommand::Suite(args) => suite::run(args)?,
    }
    Ok(())
}

fn print(common: &CommonArgs, report: report::Report) -> Result<(), BenchError> {
    if common.json {
        write_stdout(&format!("{}\n", report.to_json()))
    } else {
        write_stdout(&report.to_table())
    }
}

/// Writes the figures to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> Result<(), BenchError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(BenchError::Io {
            context: "writing the figures to stdout".to_string(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// The bench's async runtime: one thread unless `--threads` asks for more.
pub fn runtime(common: &CommonArgs) -> Result<tokio::runtime::Runtime, BenchError> {
    let mut builder = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(common.threads));
        builder
    };
    builder
        .enable_all()
        .build()
        .map_err(BenchError::io("cannot start the async runtime"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Bench(BenchArgs),
    }

    fn parse(line: &str) -> Result<BenchCommand, clap::Error> {
        let words = std::iter::once("strom").chain(line.split_whitespace());
        Cli::try_parse_from(words).map(|cli| match cli.command {
            Top::Bench(bench) => bench.command,
        })
    }

    #[test]
    fn produce_defaults_follow_the_kafka_clients() {
        let BenchCommand::Produce(args) = parse("bench produce").unwrap() else {
            panic!("produce")
        };
        assert_eq!(args.topic.topic, "strom-bench");
        assert_eq!(args.topic.partitions, 1);
        assert_eq!(args.record_size, 100);
        assert_eq!(args.rate, 0.0);
        assert_eq!(args.producer.batch_size, 16_384);
        assert_eq!(args.producer.linger_ms, 5);
        assert_eq!(args.producer.in_flight, 5);
        assert_eq!(args.producer.connections, 1);
        assert_eq!(args.producer.acks, strom_client::Acks::All);
        assert_eq!(args.producer.compression, batch::Codec::None);
        assert_eq!(args.common.bootstrap, "127.0.0.1:9092");
        assert_eq!(
            args.limit.limit_or(args::Limit::Records(1)),
            args::Limit::Records(1)
        );
        assert!(!args.common.json);
    }

    #[test]
    fn produce_options_parse() {
        let line = "bench produce --topic t -p 8 --record-size 1KiB --records 5000 --rate 2000 \
                    --connections 3 --in-flight 10 --batch-size 64k --linger-ms 0 --acks 1 \
                    -z zstd --keys 100 --bootstrap h:1 --json --threads 2";
        let BenchCommand::Produce(args) = parse(line).unwrap() else {
            panic!("produce")
        };
        assert_eq!((args.topic.topic.as_str(), args.topic.partitions), ("t", 8));
        assert_eq!(args.record_size, 1024);
        assert_eq!(args.limit.records, Some(5000));
        assert_eq!(args.rate, 2000.0);
        assert_eq!(
            (args.producer.connections, args.producer.in_flight),
            (3, 10)
        );
        assert_eq!(args.producer.batch_size, 65_536);
        assert_eq!(args.producer.linger_ms, 0);
        assert_eq!(args.producer.acks, strom_client::Acks::Leader);
        assert_eq!(args.producer.compression, batch::Codec::Zstd);
        assert_eq!(args.keys, Some(100));
        assert_eq!(args.common.bootstrap, "h:1");
        assert!(args.common.json);
        assert_eq!(args.common.threads, 2);
        let BenchCommand::Produce(args) = parse("bench produce --acks -1 -d 2.5").unwrap() else {
            panic!("produce")
        };
        assert_eq!(args.producer.acks, strom_client::Acks::All);
        assert_eq!(
            args.limit.duration,
            Some(std::time::Duration::from_millis(2_500))
        );
    }

    #[test]
    fn idempotent_and_transactional_options_parse() {
        let BenchCommand::Produce(args) = parse("bench produce").unwrap() else {
            panic!("produce")
        };
        assert_eq!(
            delivery::Delivery::of(&args.delivery),
            delivery::Delivery::Plain
        );
        let BenchCommand::Produce(args) = parse("bench produce --idempotent").unwrap() else {
            panic!("produce")
        };
        assert_eq!(
            delivery::Delivery::of(&args.delivery),
            delivery::Delivery::Idempotent
        );
        let BenchCommand::Produce(args) = parse("bench produce --transactional").unwrap() else {
            panic!("produce")
        };
        assert_eq!(
            delivery::Delivery::of(&args.delivery),
            delivery::Delivery::Transactional {
                records_per_transaction: 1_000
            }
        );
        let line = "bench produce --transactional --transaction-records 50 --idempotent";
        let BenchCommand::Produce(args) = parse(line).unwrap() else {
            panic!("produce")
        };
        assert_eq!(
            delivery::Delivery::of(&args.delivery),
            delivery::Delivery::Transactional {
                records_per_transaction: 50
            }
        );
    }

    #[test]
    fn every_load_takes_a_command_config() {
        let file =
            std::env::temp_dir().join(format!("strom-bench-{}.properties", std::process::id()));
        std::fs::write(&file, "security.protocol=SSL\nssl.ca.location=ca.pem\n").unwrap();
        let path = file.display().to_string();
        for load in [
            "produce",
            "consume",
            "e2e",
            "idle-fetch",
            "idle-connections",
        ] {
            let mut command = parse(&format!("bench {load} --command-config {path}")).unwrap();
            let common = command.common_mut().expect("a load has common options");
            assert_eq!(
                common.command_config.as_deref(),
                Some(file.as_path()),
                "{load}"
            );
            let security = common.security().unwrap();
            assert_eq!(
                security.protocol,
                strom_client::SecurityProtocol::Ssl,
                "{load}"
            );
        }
        std::fs::write(&file, "security.protocol=TLS\n").unwrap();
        let BenchCommand::Produce(args) =
            parse(&format!("bench produce --command-config {path}")).unwrap()
        else {
            panic!("produce")
        };
        let error = args.common.security().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "--command-config {path}: security.protocol (line 1)"
            )),
            "{error}"
        );
        std::fs::remove_file(&file).unwrap();
        let BenchCommand::Produce(args) = parse("bench produce").unwrap() else {
            panic!("produce")
        };
        assert!(!args.common.security().unwrap().protocol.uses_tls());
    }

    #[test]
    fn bad_options_are_refused() {
        for line in [
            "bench produce --records 5 --duration 3",
            "bench produce --acks 2",
            "bench produce --connections 0",
            "bench produce --partitions 0",
            "bench produce --record-size big",
            "bench produce --rate -1",
            "bench consume --fetch-max-bytes 1x",
            "bench e2e --warmup -1",
            "bench suite --runs 0",
            "bench produce --transaction-records 10",
            "bench produce --transactional --transaction-records 0",
        ] {
            assert!(parse(line).is_err(), "{line} should be refused");
        }
    }

    #[test]
    fn idle_fetch_defaults_poll_1000_partitions_over_200_connections() {
        let BenchCommand::IdleFetch(args) = parse("bench idle-fetch").unwrap() else {
            panic!("idle-fetch")
        };
        assert_eq!(args.topic, "strom-bench-idle");
        assert_eq!((args.partitions, args.connections), (1_000, 200));
        assert_eq!(args.consumer.fetch_wait_ms, 500);
        assert_eq!(args.consumer.fetch_min_bytes, 1);
        assert_eq!(args.duration, std::time::Duration::from_secs(10));
        assert!(parse("bench idle-fetch --connections 0").is_err());
    }

    #[test]
    fn consume_and_e2e_defaults() {
        let BenchCommand::Consume(args) = parse("bench consume").unwrap() else {
            panic!("consume")
        };
        assert!(!args.from_end);
        assert_eq!(args.limit.limit_or_none(), None);
        assert_eq!(args.consumer.fetch_wait_ms, 500);
        assert_eq!(args.consumer.fetch_min_bytes, 1);
        assert_eq!(args.consumer.fetch_max_bytes, 50 << 20);
        assert_eq!(args.consumer.partition_max_bytes, 1 << 20);
        let BenchCommand::E2e(args) = parse("bench e2e --warmup 0").unwrap() else {
            panic!("e2e")
        };
        assert_eq!(args.rate, 1000.0);
        assert_eq!(args.warmup, std::time::Duration::ZERO);
        assert_eq!(args.producer.acks, strom_client::Acks::All);
        assert_eq!(args.consumer.fetch_wait_ms, 500);
    }
}
