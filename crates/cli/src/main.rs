//! `strom`: the one binary. `strom server` runs a broker; every other subcommand is a client
//! that talks the Kafka protocol to a running broker.

mod bench;
mod cluster;
mod common;
mod consume;
mod group;
mod produce;
mod server;
mod topic;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "Strom: a Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (single node by default, on 127.0.0.1:9092, data in ./strom-data).
    Server(server::ServerArgs),
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// Produce lines from standard input to a topic.
    Produce(produce::ProduceArgs),
    /// Consume records from a topic and print them.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset the offsets of, and delete consumer groups.
    Group(group::GroupArgs),
    /// Show the cluster: its id, brokers and controller quorum.
    Cluster(cluster::ClusterArgs),
    /// Measure any Kafka-compatible broker: produce, consume, end-to-end latency, the suite.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
