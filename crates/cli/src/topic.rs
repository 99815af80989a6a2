//! `strom topic create|list|describe|alter|delete|empty`: topic administration over the Kafka
//! protocol.

use strom_client::{
    Client, ConfigResource, ConfigSource, OffsetSpec, PartitionMetadata, TopicMetadata,
};

use crate::common::{
    block_on, connect, existing_topic, parse_key_value, print_table, BootstrapArgs,
};
use crate::config::ChangeArgs;

#[derive(clap::Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the topics, one name per line.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, in-sync replicas, offsets) and the configs
    /// set on it.
    Describe(DescribeArgs),
    /// Change a topic's configs without a restart, or give it more partitions.
    Alter(AlterArgs),
    /// Delete a topic and all its records.
    Delete(DeleteArgs),
    /// Delete every record of a topic, keeping the topic (DeleteRecords up to each partition's
    /// high watermark); prints each partition's new low watermark.
    Empty(EmptyArgs),
}

#[derive(clap::Args)]
struct AlterArgs {
    /// The topic's name.
    name: String,
    /// Grow the topic to this many partitions.
    #[arg(long, short = 'p')]
    partitions: Option<i32>,
    #[command(flatten)]
    changes: ChangeArgs,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The topic's name.
    name: String,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true, hide_default_value = true)]
    partitions: i32,
    /// Replicas per partition (default: the broker's default.replication.factor).
    #[arg(long, short = 'r', default_value_t = -1, allow_negative_numbers = true, hide_default_value = true)]
    replication_factor: i16,
    /// A topic config, KEY=VALUE (for example retention.ms=86400000); repeatable.
    #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Also list internal topics (such as __consumer_offsets).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct DescribeArgs {
    /// The topic's name.
    name: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct DeleteArgs {
    /// The topic's name.
    name: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct EmptyArgs {
    /// The topic's name.
    name: String,
    /// How long each partition's leader waits for its followers to delete the records too.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: i32,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TopicCommand::Create(args) => create(args).await,
            TopicCommand::List(args) => list(args).await,
            TopicCommand::Describe(args) => describe(args).await,
            TopicCommand::Alter(args) => alter(args).await,
            TopicCommand::Delete(args) => delete(args).await,
            TopicCommand::Empty(args) => empty(args).await,
        }
    })?
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let created = client
        .create_topics(
            &args.name,
            args.partitions,
            args.replication_factor,
            args.config,
        )
        .await?;
    let partitions = created
        .partitions
        .map_or_else(|| "default".to_string(), |count| count.to_string());
    let factor = created
        .replication_factor
        .map_or_else(|| "default".to_string(), |factor| factor.to_string());
    println!(
        "created topic '{}' ({partitions} partitions, replication factor {factor})",
        created.name
    );
    Ok(())
}

async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let changes = args.changes.changes();
    if changes.is_empty() && args.partitions.is_none() {
        anyhow::bail!(
            "nothing to change: give --set, --delete, --append, --subtract or --partitions"
        );
    }
    let client = connect(&args.bootstrap, false).await?;
    existing_topic(&client, &args.name).await?;
    let resource = ConfigResource::Topic(args.name.clone());
    if !changes.is_empty() {
        let validate_only = args.changes.validate_only();
        client
            .alter_configs(&resource, &changes, validate_only)
            .await?;
        match validate_only {
            true => println!("the config changes are valid (nothing changed: --validate-only)"),
            false => println!("altered the configs of topic '{}'", args.name),
        }
    }
    if let Some(count) = args.partitions {
        client.create_partitions(&args.name, count).await?;
        println!("topic '{}' now has {count} partitions", args.name);
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let metadata = client.metadata(None).await?;
    let mut names: Vec<&str> = metadata
        .topics
        .iter()
        .filter(|topic| args.all || !(topic.is_internal || topic.name.starts_with("__")))
        .map(|topic| topic.name.as_str())
        .collect();
    names.sort_unstable();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let topic = existing_topic(&client, &args.name).await?;
    let configs = client.describe_configs(&args.name).await?;

    let replication_factor = topic
        .partitions
        .first()
        .map_or(0, |partition| partition.replicas.len());
    println!("topic: {}", topic.name);
    println!("partitions: {}", topic.partitions.len());
    println!("replication factor: {replication_factor}");
    let set_configs: Vec<String> = configs
        .iter()
        .filter(|config| config.source == ConfigSource::Topic)
        .map(|config| {
            format!(
                "{}={}",
                config.name,
                config.value.as_deref().unwrap_or("(sensitive)")
            )
        })
        .collect();
    if set_configs.is_empty() {
        println!("configs: (none set on the topic)");
    } else {
        println!("configs: {}", set_configs.join(", "));
    }
    println!();

    let mut rows = vec![[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "LOG-END",
    ]
    .map(String::from)
    .to_vec()];
    for partition in &topic.partitions {
        let ids = |ids: &[strom_types::BrokerId]| {
            ids.iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        rows.push(vec![
            partition.index.to_string(),
            partition
                .leader
                .map_or_else(|| "none".to_string(), |leader| leader.to_string()),
            ids(&partition.replicas),
            ids(&partition.isr),
            offset_cell(&client, &topic, partition, OffsetSpec::Earliest).await,
            offset_cell(&client, &topic, partition, OffsetSpec::Latest).await,
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// A partition's offset for the table; a partition without a leader (or whose leader does
/// not answer) shows "-" and the rest of the table still prints.
async fn offset_cell(
    client: &Client,
    topic: &TopicMetadata,
    partition: &PartitionMetadata,
    spec: OffsetSpec,
) -> String {
    if partition.leader.is_none() {
        return "-".to_string();
    }
    match client
        .list_offsets(&topic.name, partition.index, spec)
        .await
    {
        Ok(offset) => offset.to_string(),
        Err(error) => {
            tracing::debug!(%error, "list offsets failed");
            "-".to_string()
        }
    }
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    client.delete_topics(&[args.name.as_str()]).await?;
    println!("deleted topic '{}'", args.name);
    Ok(())
}

async fn empty(args: EmptyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.timeout_ms >= 0,
        "--timeout-ms must be 0 or more, not {}",
        args.timeout_ms
    );
    let client = connect(&args.bootstrap, false).await?;
    let topic = existing_topic(&client, &args.name).await?;
    let everything: Vec<_> = (topic.partitions.iter())
        .map(|partition| (partition.index, None))
        .collect();
    let deleted = client
        .delete_records(&args.name, &everything, args.timeout_ms)
        .await?;
    let mut failed = 0;
    for answer in deleted {
        match answer.low_watermark {
            Ok(low_watermark) => println!(
                "partition {}: low watermark {low_watermark}",
                answer.partition
            ),
            Err(error) => {
                failed += 1;
                println!("partition {}: {error}", answer.partition);
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} partition(s) of '{}' were not emptied",
        args.name
    );
    Ok(())
}
