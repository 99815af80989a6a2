//! `strom topic create|list|describe|delete`: topic administration over the Kafka protocol.
//!
//! Also home, for now, of what every client command shares: the `--bootstrap` flag, the
//! runtime, and connecting.

use std::future::Future;

use anyhow::Context;
use strom_client::{
    Client, ClientConfig, ClientError, ConfigSource, OffsetSpec, PartitionMetadata, TopicMetadata,
};
use strom_types::{ErrorCode, PartitionIndex};

/// Where to find the cluster; every client command takes it.
#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapArgs {
    /// A broker to bootstrap from: HOST:PORT, or several separated by commas.
    #[arg(
        long,
        env = "STROM_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap: String,
}

/// Runs a command's async body on a small runtime of its own.
pub(crate) fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Connects to the cluster. `auto_create` says whether looking a topic up may create it
/// (when the broker auto-creates topics).
pub(crate) async fn connect(
    bootstrap: &BootstrapArgs,
    auto_create: bool,
) -> Result<Client, ClientError> {
    let mut config = ClientConfig::default();
    config.connection.client_id = "strom-cli".to_string();
    config.allow_auto_topic_creation = auto_create;
    Client::connect(&bootstrap.bootstrap, config).await
}

/// Looks a topic up without creating it, failing at once (no retries) if it does not exist.
pub(crate) async fn existing_topic(
    client: &Client,
    topic: &str,
) -> Result<TopicMetadata, ClientError> {
    let metadata = client.metadata(Some(&[topic])).await?;
    let found = metadata.topic(topic).cloned().ok_or_else(|| {
        ClientError::from_code(
            ErrorCode::UnknownTopicOrPartition.code(),
            None,
            Some(topic),
            None,
        )
    })?;
    if found.error_code != 0 {
        return Err(ClientError::from_code(
            found.error_code,
            None,
            Some(topic),
            None,
        ));
    }
    Ok(found)
}

/// Checks that a partition given on the command line exists.
pub(crate) fn check_partition(
    topic: &TopicMetadata,
    partition: i32,
) -> Result<PartitionIndex, ClientError> {
    let count = topic.partitions.len();
    if partition >= 0 && (partition as usize) < count {
        return Ok(PartitionIndex(partition));
    }
    let message = format!(
        "topic '{}' has {count} partitions (0 to {}); there is no partition {partition}",
        topic.name,
        count as i64 - 1
    );
    Err(ClientError::from_code(
        ErrorCode::UnknownTopicOrPartition.code(),
        Some(&message),
        Some(&topic.name),
        Some(PartitionIndex(partition)),
    ))
}

/// Parses KEY=VALUE.
pub(crate) fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

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
    /// Delete a topic and all its records.
    Delete(DeleteArgs),
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

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TopicCommand::Create(args) => create(args).await,
            TopicCommand::List(args) => list(args).await,
            TopicCommand::Describe(args) => describe(args).await,
            TopicCommand::Delete(args) => delete(args).await,
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

/// Prints rows as left-aligned columns two spaces apart.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    client.delete_topics(&[args.name.as_str()]).await?;
    println!("deleted topic '{}'", args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_key_value("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
    }
}
