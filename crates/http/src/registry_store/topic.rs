//! `_schemas`: reading it into the [`Store`] and writing to it, through the Kafka protocol
//! like any client (a [`strom_client::Client`] on this node's own listener).
//!
//! Every node reads and writes (no leader to elect, no request to forward). A write is
//! sequenced: under this node's write lock the store catches up with the partition's high
//! watermark, the change is decided against that state, and its record carries `seq`, the
//! offset it must land at. The produce (acks=all) answers with the offset it got: the same,
//! and the write is in; another, and a write from elsewhere came first, so this one is
//! skipped by every reader (see the store module) and the change is decided again on the
//! newer state. Ids never collide: two writes that both chose id N cannot both land where
//! they expected.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_client::{Acks, Client, Compression, OffsetSpec, ProduceRecord};
use strom_types::{Offset, PartitionIndex};
use tokio::sync::Mutex as AsyncMutex;

use super::store::Store;
use super::RegistryError;

/// The topic (Confluent's `kafkastore.topic` default).
pub const TOPIC: &str = "_schemas";
const PARTITION: PartitionIndex = PartitionIndex(0);

/// Largest record of `_schemas` (its `max.message.bytes`).
const RECORD_BYTES_MAX: usize = 3 * strom_schema::SCHEMA_BYTES_MAX;

/// Most bytes one fetch of `_schemas` brings.
const FETCH_BYTES_MAX: i32 = 2 * RECORD_BYTES_MAX as i32;

/// How long one write may keep losing to writes from other nodes before it gives up.
const WRITE_MS_MAX: u64 = 30_000;
/// After a lost round, a write waits a random time up to this, doubling from 5 ms: nodes
/// that collided spread out instead of colliding again.
const LOST_BACKOFF_MS_MAX: u64 = 200;

pub struct SchemasTopic {
    client: Arc<Client>,
    node: i32,
    pub store: std::sync::RwLock<Store>,
    /// One catch-up at a time.
    reading: AsyncMutex<()>,
    /// One write at a time from this node.
    pub writing: AsyncMutex<()>,
}

/// A change to make: the records to write, given the offset the first will land at.
pub struct Write {
    /// (key, value); the first key gets `seq` and `node` added.
    pub records: Vec<(serde_json::Value, Option<serde_json::Value>)>,
}

impl SchemasTopic {
    /// Makes sure the topic exists (compacted, one partition, replicated as widely as the
    /// cluster allows up to 3) and reads it to its end.
    pub async fn open(
        client: Arc<Client>,
        node: i32,
        brokers: usize,
    ) -> Result<SchemasTopic, RegistryError> {
        let replication = brokers.clamp(1, 3) as i16;
        let configs = vec![
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            // A record holds a whole schema (up to SCHEMA_BYTES_MAX, escaped in JSON).
            ("max.message.bytes".to_owned(), RECORD_BYTES_MAX.to_string()),
        ];
        match client.create_topics(TOPIC, 1, replication, configs).await {
            Ok(_) => tracing::info!(replication, "created {TOPIC}"),
            Err(error)
                if error.error_code() == Some(strom_types::ErrorCode::TopicAlreadyExists) => {}
            Err(error) => {
                return Err(RegistryError::store(format!(
                    "cannot create {TOPIC}: {error}"
                )))
            }
        }
        let topic = SchemasTopic {
            client,
            node,
            store: Default::default(),
            reading: AsyncMutex::new(()),
            writing: AsyncMutex::new(()),
        };
        topic.catch_up().await?;
        Ok(topic)
    }

    /// The state as read so far.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads `_schemas` up to its high watermark now: what any node acknowledged before this
    /// call is in the store when it returns.
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
        let end = self
            .client
            .list_offsets(TOPIC, PARTITION, OffsetSpec::Latest)
            .await
            .map_err(|e| RegistryError::store(format!("{TOPIC}: {e}")))?;
        self.read_to(end.0).await
    }

    /// Reads until the store has applied every offset below `end`.
    pub async fn read_to(&self, end: i64) -> Result<(), RegistryError> {
        let _reading = self.reading.lock().await;
        loop {
            let next = self
                .store
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .next_offset;
            if next >= end {
                return Ok(());
            }
            let fetched = self
                .client
                .fetch(TOPIC, PARTITION, Offset(next), 500, 1, FETCH_BYTES_MAX)
                .await
                .map_err(|e| RegistryError::store(format!("{TOPIC}: {e}")))?;
            let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
            for record in fetched.records.iter().filter(|r| r.offset.0 >= next) {
                let key = record.key.as_deref().unwrap_or_default();
                store.apply(record.offset.0, key, record.value.as_deref());
            }
            // A compacted stretch (or a log start moved past us): go on from where the log
            // says the next record is.
            let resume = fetched.next_offset.0.max(fetched.log_start_offset.0);
            if resume > store.next_offset {
                store.next_offset = resume;
            }
            if fetched.records.is_empty() && fetched.high_watermark.0 <= store.next_offset {
                return Ok(());
            }
        }
    }

    /// Makes a change: `decide` looks at the caught-up store and says what to write (or
    /// answers without writing, `Ok(None)`); retried on newer state while writes from other
    /// nodes land first. Returns what `decide` answered with the write made, or the error it
    /// gave. When it returns, this node's store has applied the write.
    pub async fn write<T>(
        &self,
        mut decide: impl FnMut(&Store) -> Result<(T, Option<Write>), RegistryError>,
    ) -> Result<T, RegistryError> {
        let _writing = self.writing.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WRITE_MS_MAX);
        let mut backoff_ms = 5;
        while tokio::time::Instant::now() < deadline {
            self.catch_up().await?;
            let (answer, write, seq) = {
                let store = self.store.read().unwrap_or_else(|p| p.into_inner());
                let (answer, write) = decide(&store)?;
                (answer, write, store.next_offset)
            };
            let Some(write) = write else {
                return Ok(answer);
            };
            let records: Vec<ProduceRecord> = (write.records.into_iter().enumerate())
                .map(|(index, (mut key, value))| {
                    if index == 0 {
                        key["seq"] = seq.into();
                        key["node"] = self.node.into();
                    }
                    ProduceRecord::new(
                        Some(Bytes::from(key.to_string())),
                        value.map(|v| Bytes::from(v.to_string())),
                    )
                })
                .collect();
            let count = records.len() as i64;
            let landed = self
                .client
                .produce(TOPIC, PARTITION, &records, Acks::All, Compression::None)
                .await;
            match landed {
                Ok(Some(offset)) if offset.0 == seq => {
                    self.read_to(seq + count).await?;
                    return Ok(answer);
                }
                Ok(_) => {
                    tracing::debug!(
                        seq,
                        "{TOPIC}: another node's write came first; deciding again"
                    );
                    let pause = rand::random::<u64>() % (backoff_ms + 1);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    backoff_ms = (backoff_ms * 2).min(LOST_BACKOFF_MS_MAX);
                }
                Err(error) if hopeless(&error) => {
                    return Err(RegistryError::store(format!("{TOPIC}: {error}")));
                }
                Err(error) => {
                    // Whether it landed is unknown: the next round reads the log and decides
                    // on what is there (a write that landed makes the change a no-op).
                    tracing::warn!(%error, "{TOPIC}: a write failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Err(RegistryError::store(format!(
            "{TOPIC}: gave up writing after {WRITE_MS_MAX} ms of losing to other nodes' writes"
        )))
    }
}

/// Produce errors no retry can cure: the record is too large or refused, or this node may not
/// write `_schemas`.
fn hopeless(error: &strom_client::ClientError) -> bool {
    use strom_types::ErrorCode::*;
    matches!(
        error.error_code(),
        Some(
            MessageTooLarge
                | RecordListTooLarge
                | InvalidRecord
                | CorruptMessage
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidTopicException
        )
    )
}
