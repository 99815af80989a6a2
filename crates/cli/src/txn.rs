//! `strom txn list|describe|abort` and `strom producers`: transaction administration over the
//! Kafka protocol, after Kafka's `kafka-transactions.sh` (list, describe, describe-producers,
//! abort of a hanging transaction).
//!
//! `abort` takes what `kafka-transactions.sh abort` takes: the partition and the start offset
//! of the hanging transaction (the producer is found with DescribeProducers), or the producer
//! id, epoch and coordinator epoch directly.

use strom_client::{AbortSpec, ProducerListing};

use crate::common::{
    block_on, check_partition, connect, existing_topic, print_table, BootstrapArgs,
};

#[derive(clap::Args)]
pub struct TxnArgs {
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(clap::Subcommand)]
enum TxnCommand {
    /// List the transactions every coordinator knows: id, coordinator, producer id, state.
    List(ListArgs),
    /// Show a transactional id's transaction: state, producer, timeout, partitions.
    Describe(DescribeArgs),
    /// Write the ABORT marker of a hanging transaction into one partition.
    Abort(AbortArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    /// Only transactions in this state (Empty, Ongoing, PrepareCommit, PrepareAbort,
    /// CompleteCommit, CompleteAbort, PrepareEpochFence); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only transactions of this producer id; repeatable.
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct DescribeArgs {
    /// The transactional id.
    transactional_id: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct AbortArgs {
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// The first offset of the hanging transaction in the partition (the LSO a read_committed
    /// consumer is stuck at); its producer is looked up with DescribeProducers.
    #[arg(long, conflicts_with_all = ["producer_id", "producer_epoch"])]
    start_offset: Option<i64>,
    #[arg(long, requires = "producer_epoch")]
    producer_id: Option<i64>,
    #[arg(long, requires = "producer_id")]
    producer_epoch: Option<i16>,
    #[arg(long, default_value = "-1", allow_negative_numbers = true)]
    coordinator_epoch: i32,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
pub struct ProducersArgs {
    /// The partition, as TOPIC:PARTITION, or TOPIC for every partition.
    #[arg(value_name = "TOPIC[:P]")]
    target: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: TxnArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TxnCommand::List(args) => list(args).await,
            TxnCommand::Describe(args) => describe(args).await,
            TxnCommand::Abort(args) => abort(args).await,
        }
    })?
}

pub fn run_producers(args: ProducersArgs) -> anyhow::Result<()> {
    block_on(producers(args))?
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let listed = client
        .list_transactions(&args.states, &args.producer_ids)
        .await?;
    let mut rows = vec![["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]
        .map(String::from)
        .to_vec()];
    for listing in listed {
        rows.push(vec![
            listing.transactional_id,
            listing.coordinator.to_string(),
            listing.producer_id.to_string(),
            listing.state,
        ]);
    }
    print_table(&rows);
    Ok(())
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let described = client.describe_transaction(&args.transactional_id).await?;
    let partitions: Vec<String> = described
        .topics
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| format!("{topic}-{p}")))
        .collect();
    let rows = vec![
        [
            "TRANSACTIONAL-ID",
            "COORDINATOR",
            "PRODUCER-ID",
            "PRODUCER-EPOCH",
            "STATE",
            "TIMEOUT-MS",
            "START-TIME-MS",
            "PARTITIONS",
        ]
        .map(String::from)
        .to_vec(),
        vec![
            described.transactional_id,
            described.coordinator.to_string(),
            described.producer_id.to_string(),
            described.producer_epoch.to_string(),
            described.state,
            described.timeout_ms.to_string(),
            if described.start_time_ms < 0 {
                "-".to_owned()
            } else {
                described.start_time_ms.to_string()
            },
            if partitions.is_empty() {
                "-".to_owned()
            } else {
                partitions.join(",")
            },
        ],
    ];
    print_table(&rows);
    Ok(())
}

async fn abort(args: AbortArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let topic = existing_topic(&client, &args.topic).await?;
    let partition = check_partition(&topic, args.partition)?;
    let spec = match (args.start_offset, args.producer_id, args.producer_epoch) {
        (Some(start), _, _) => {
            let producers = client.describe_producers(&args.topic, partition).await?;
            let Some(found) = producers
                .iter()
                .find(|producer| producer.current_txn_start_offset == start)
            else {
                anyhow::bail!(
                    "no open transaction starts at offset {start} of {}-{}; `strom producers {}:{}` lists the open ones",
                    args.topic,
                    args.partition,
                    args.topic,
                    args.partition
                );
            };
            AbortSpec {
                topic: args.topic.clone(),
                partition,
                producer_id: found.producer_id,
                producer_epoch: i16::try_from(found.producer_epoch).map_err(|_| {
                    anyhow::anyhow!("producer epoch {} out of range", found.producer_epoch)
                })?,
                coordinator_epoch: found.coordinator_epoch,
            }
        }
        (None, Some(producer_id), Some(producer_epoch)) => AbortSpec {
            topic: args.topic.clone(),
            partition,
            producer_id,
            producer_epoch,
            coordinator_epoch: args.coordinator_epoch,
        },
        _ => anyhow::bail!("give --start-offset, or --producer-id and --producer-epoch"),
    };
    client.abort_transaction(&spec).await?;
    println!(
        "aborted the transaction of producer {} (epoch {}) in {}-{}",
        spec.producer_id, spec.producer_epoch, spec.topic, spec.partition
    );
    Ok(())
}

async fn producers(args: ProducersArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let (name, wanted) = match args.target.rsplit_once(':') {
        Some((name, partition)) => {
            let partition: i32 = partition
                .parse()
                .map_err(|_| anyhow::anyhow!("'{partition}' is not a partition number"))?;
            (name.to_owned(), Some(partition))
        }
        None => (args.target.clone(), None),
    };
    let topic = existing_topic(&client, &name).await?;
    let partitions = match wanted {
        Some(partition) => vec![check_partition(&topic, partition)?],
        None => topic.partitions.iter().map(|p| p.index).collect(),
    };
    let mut rows = vec![[
        "PARTITION",
        "PRODUCER-ID",
        "EPOCH",
        "LAST-SEQUENCE",
        "TXN-START-OFFSET",
    ]
    .map(String::from)
    .to_vec()];
    for partition in partitions {
        let producers: Vec<ProducerListing> = client.describe_producers(&name, partition).await?;
        for producer in producers {
            rows.push(vec![
                partition.to_string(),
                producer.producer_id.to_string(),
                producer.producer_epoch.to_string(),
                producer.last_sequence.to_string(),
                if producer.current_txn_start_offset < 0 {
                    "-".to_owned()
                } else {
                    producer.current_txn_start_offset.to_string()
                },
            ]);
        }
    }
    print_table(&rows);
    Ok(())
}
