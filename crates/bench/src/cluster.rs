//! The cluster as the bench sees it: the topic (created if missing), each partition's leader,
//! connections of the bench's own (secured as `--command-config` says), and offsets.
//!
//! The bench routes by the metadata it reads once at start; a leader that moves during a run
//! fails the run (with the broker's error) rather than being followed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_client::{
    Client, ClientConfig, ClientError, Connection, ConnectionOptions, OffsetSpec, SecurityConfig,
};
use strom_types::{BrokerId, ErrorCode, Offset, PartitionIndex};

use crate::error::BenchError;

/// The client id the bench sends; brokers log it.
pub const CLIENT_ID: &str = "strom-bench";
/// How long a newly created topic may take until every partition has a leader.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
const TOPIC_READY_POLL: Duration = Duration::from_millis(100);

/// A topic's partitions, where their leaders are and how to reach them.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    pub name: String,
    /// Every partition, by index, with its leader.
    pub partitions: Vec<(PartitionIndex, BrokerId)>,
    /// HOST:PORT of each leader.
    pub addresses: BTreeMap<BrokerId, String>,
    /// How the client that read the layout connects; the bench's own connections to the
    /// leaders connect the same way.
    pub security: SecurityConfig,
}

impl TopicLayout {
    /// The partitions grouped by leader, in index order.
    pub fn by_leader(&self) -> BTreeMap<BrokerId, Vec<PartitionIndex>> {
        let mut groups: BTreeMap<BrokerId, Vec<PartitionIndex>> = BTreeMap::new();
        for &(partition, leader) in &self.partitions {
            groups.entry(leader).or_default().push(partition);
        }
        groups
    }

    pub fn address(&self, leader: BrokerId) -> &str {
        &self.addresses[&leader]
    }

    /// A connection of the bench's own to a leader.
    pub async fn connect_to(&self, leader: BrokerId) -> Result<Arc<Connection>, BenchError> {
        open_connection(self.address(leader), &self.security).await
    }
}

/// Connects the bench's client (used for metadata, topic creation and offsets).
pub async fn connect(bootstrap: &str, security: &SecurityConfig) -> Result<Client, BenchError> {
    let mut config = ClientConfig::default();
    config.connection.client_id = CLIENT_ID.to_string();
    config.connection.security = security.clone();
    config.allow_auto_topic_creation = false;
    Ok(Client::connect(bootstrap, config).await?)
}

/// A connection of the bench's own to one broker, not shared with the client's.
pub async fn open_connection(
    address: &str,
    security: &SecurityConfig,
) -> Result<Arc<Connection>, BenchError> {
    let options = ConnectionOptions {
        client_id: CLIENT_ID.to_string(),
        security: security.clone(),
        ..ConnectionOptions::default()
    };
    Ok(Arc::new(Connection::connect(address, &options).await?))
}

/// The topic's layout, creating the topic with `partitions` partitions if it is missing.
/// An existing topic is used as it is (a note on stderr says so when its partition count
/// differs from the one asked for).
pub async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<TopicLayout, BenchError> {
    if let Some((_, count)) = lookup(client, topic).await? {
        if count != partitions as usize {
            eprintln!("note: topic '{topic}' exists with {count} partitions; using them (not {partitions})");
        }
        return wait_for_leaders(client, topic).await;
    }
    match client
        .create_topics(topic, partitions, replication_factor, Vec::new())
        .await
    {
        Ok(_) => {}
        Err(error) if error.error_code() == Some(ErrorCode::TopicAlreadyExists) => {}
        Err(error) => return Err(error.into()),
    }
    wait_for_leaders(client, topic).await
}

/// The layout of a topic that must exist already.
pub async fn existing_topic(client: &Client, topic: &str) -> Result<TopicLayout, BenchError> {
    match lookup(client, topic).await? {
        Some(_) => wait_for_leaders(client, topic).await,
        None => Err(ClientError::from_code(
            ErrorCode::UnknownTopicOrPartition.code(),
            None,
            Some(topic),
            None,
        )
        .into()),
    }
}

/// The topic's layout as the metadata says now, and how many partitions it has in all
/// (partitions without a leader yet are left out of the layout); `None` if the topic does not
/// exist.
async fn lookup(client: &Client, topic: &str) -> Result<Option<(TopicLayout, usize)>, BenchError> {
    let metadata = client.metadata(Some(&[topic])).await?;
    let Some(found) = metadata.topic(topic) else {
        return Ok(None);
    };
    match ErrorCode::from_code(found.error_code) {
        Some(ErrorCode::None) => {}
        Some(ErrorCode::UnknownTopicOrPartition) => return Ok(None),
        // Leaders not elected yet: the topic exists.
        Some(ErrorCode::LeaderNotAvailable) => {}
        _ => return Err(ClientError::from_code(found.error_code, None, Some(topic), None).into()),
    }
    let brokers: BTreeMap<BrokerId, String> = metadata
        .brokers
        .iter()
        .map(|broker| (broker.id, broker.address()))
        .collect();
    let mut layout = TopicLayout {
        name: topic.to_string(),
        partitions: Vec::new(),
        addresses: BTreeMap::new(),
        security: client.config().connection.security.clone(),
    };
    for partition in &found.partitions {
        let Some((leader, address)) = partition
            .leader
            .and_then(|leader| brokers.get_key_value(&leader))
        else {
            continue;
        };
        layout.partitions.push((partition.index, *leader));
        layout.addresses.insert(*leader, address.clone());
    }
    layout.partitions.sort();
    Ok(Some((layout, found.partitions.len())))
}

/// Polls the metadata until every partition of the topic has a leader.
async fn wait_for_leaders(client: &Client, topic: &str) -> Result<TopicLayout, BenchError> {
    let started = Instant::now();
    loop {
        if let Some((layout, count)) = lookup(client, topic).await? {
            if count > 0 && layout.partitions.len() == count {
                return Ok(layout);
            }
        }
        if started.elapsed() > TOPIC_READY_TIMEOUT {
            return Err(BenchError::Broker(format!(
                "topic '{topic}' still has partitions without a leader after {} s",
                TOPIC_READY_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(TOPIC_READY_POLL).await;
    }
}

/// The offset `spec` names in each of the given partitions, in their order.
pub async fn offsets(
    client: &Client,
    topic: &str,
    partitions: &[PartitionIndex],
    spec: OffsetSpec,
) -> Result<Vec<Offset>, BenchError> {
    let mut offsets = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        offsets.push(client.list_offsets(topic, partition, spec).await?);
    }
    Ok(offsets)
}

/// Nanoseconds since the Unix epoch, the clock end-to-end stamps use.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Milliseconds since the Unix epoch, for batch timestamps.
pub fn unix_ms() -> i64 {
    (unix_ns() / 1_000_000) as i64
}
