//! What every client command shares: the `--bootstrap` flag, the runtime, connecting,
//! looking topics and partitions up without creating them, and printing tables.

use std::future::Future;

use anyhow::Context;
use strom_client::{Client, ClientConfig, ClientError, TopicMetadata};
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

/// Prints rows as left-aligned columns two spaces apart.
pub(crate) fn print_table(rows: &[Vec<String>]) {
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
