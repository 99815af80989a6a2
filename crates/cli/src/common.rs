//! What every client command shares: the `--bootstrap` and `--command-config` flags, the
//! runtime, connecting, looking topics and partitions up without creating them, and printing
//! tables.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use strom_client::{
    Client, ClientConfig, ClientError, CommandConfig, SecurityConfig, TopicMetadata,
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
    /// A Kafka client.properties file: security.protocol, sasl.* and ssl.* settings (the Java
    /// client's or librdkafka's names), as kafka-acls.sh --command-config takes it.
    #[arg(long, env = "STROM_COMMAND_CONFIG", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// The security settings of `--command-config`, PLAINTEXT without one. What the file has that
/// Strom ignores is noted on stderr, as Kafka's tools warn of unused configs.
pub(crate) fn security_config(command_config: Option<&Path>) -> anyhow::Result<SecurityConfig> {
    let Some(path) = command_config else {
        return Ok(SecurityConfig::default());
    };
    let read = CommandConfig::read(path)
        .with_context(|| format!("--command-config {}", path.display()))?;
    for note in &read.notes {
        eprintln!("note: {}: {note}", path.display());
    }
    Ok(read.security)
}

/// Runs a command's async body on a small runtime of its own.
pub(crate) fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Connects to the cluster, secured as `--command-config` says. `auto_create` says whether
/// looking a topic up may create it (when the broker auto-creates topics).
pub(crate) async fn connect(
    bootstrap: &BootstrapArgs,
    auto_create: bool,
) -> anyhow::Result<Client> {
    let mut config = ClientConfig::default();
    config.connection.client_id = "strom-cli".to_string();
    config.connection.security = security_config(bootstrap.command_config.as_deref())?;
    config.allow_auto_topic_creation = auto_create;
    Ok(Client::connect(&bootstrap.bootstrap, config).await?)
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
