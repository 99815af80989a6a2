//! `strom`: the one binary. `strom server` runs a broker; every other subcommand is a client
//! that talks the Kafka protocol to a running broker.

mod acl;
mod acl_bindings;
mod bench;
mod cluster;
mod common;
mod config;
mod consume;
mod elect_leaders;
mod group;
mod produce;
mod quota;
mod reassign;
mod rebalance;
mod schema;
mod server;
mod topic;
mod txn;
mod user;

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
    /// List, describe and abort transactions.
    Txn(txn::TxnArgs),
    /// Show the producers a partition remembers: id, epoch, last sequence, open transaction.
    Producers(txn::ProducersArgs),
    /// Show the cluster (its id, brokers and controller quorum), and elect leaders.
    Cluster(cluster::ClusterArgs),
    /// Describe and change the configs of topics, brokers and loggers at runtime.
    Config(config::ConfigArgs),
    /// Describe and change client quotas (byte rates) of users and client ids.
    Quota(quota::QuotaArgs),
    /// Create, list and delete SCRAM users (their passwords set and kept by the brokers).
    User(user::UserArgs),
    /// Create, list and delete ACLs, with kafka-acls' flags.
    Acl(acl::AclArgs),
    /// The schema registry: list, get, register, delete, check compatibility, configure.
    Schema(schema::SchemaArgs),
    /// Measure any Kafka-compatible broker: produce, consume, end-to-end latency, the suite.
    Bench(bench::BenchArgs),
}

/// Keeps glibc's allocator from giving large buffers back to the kernel after every request.
///
/// Produce and fetch requests carry buffers of up to a few MiB. By default glibc serves each
/// from fresh pages (mmap, or a heap top it trims on free), so every request pays page faults
/// and page clearing: ~15% of the broker's and ~30% of `strom bench`'s CPU in a 1 KiB acks=all
/// profile. Raising the mmap and trim thresholds lets freed buffers be reused. Measured with
/// `strom bench produce -s 1024 --batch-size 1000000 -d 5`, broker and bench both this binary:
/// acks=all 589 -> 865 MB/s, acks=1 804-903 -> 1211-1233 MB/s, peak RSS 26 MiB either way.
/// The trim threshold is 8 MiB and there are at most two arenas: with 64 MiB and glibc's
/// default of one arena per thread (fsyncs run under `block_in_place`, so tasks move between
/// threads), each arena kept up to 64 MiB of freed buffers and a librdkafka acks=all 1 KiB load
/// left the broker at 186 MiB peak RSS; now 104 MiB peak, 60 MiB after, at the same
/// throughput (acks=1 1 KiB 1.31-1.45 GB/s either way).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // The one FFI call in Strom; the workspace denies unsafe code elsewhere.
fn tune_allocator() {
    const MMAP_THRESHOLD: i32 = 32 << 20;
    const TRIM_THRESHOLD: i32 = 8 << 20;
    const ARENAS_MAX: i32 = 2;
    // SAFETY: mallopt only changes allocator parameters; it is called first thing in main,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS_MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Txn(args) => txn::run(args),
        Command::Producers(args) => txn::run_producers(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Config(args) => config::run(args),
        Command::Quota(args) => quota::run(args),
        Command::User(args) => user::run(args),
        Command::Acl(args) => acl::run(args),
        Command::Schema(args) => schema::run(args),
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
