//! The topics this broker hosts: their partitions' logs and their metadata, kept on disk.
//!
//! Lifecycle: [`TopicRegistry::open`] reads `metadata/topics.json` from the data directory and
//! opens (recovers) every partition log it names. CreateTopics and auto-creation add a topic by
//! writing the metadata file first (write to a temporary file, fsync, rename, fsync the
//! directory) and then creating the logs; DeleteTopics removes the topic from the metadata
//! file first and then deletes its logs, so a crash in between leaves at worst an orphaned
//! directory, never a topic whose logs are gone.
//!
//! Concurrency: the topic map is behind a `RwLock` taken briefly to look topics up; metadata
//! changes are serialised by `changes`. Each partition's log has its own mutex (see
//! [`Partition`]). Single-node today: the Raft metadata quorum replaces the file in a later
//! issue.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use strom_log::{Log, LogError};
use strom_types::{ErrorCode, PartitionIndex, TopicName};
use uuid::Uuid;

use crate::config::{BrokerConfig, TopicConfig};
use crate::producers::ProducerStates;

/// One partition this broker leads.
///
/// `log` is locked for appends, reads and index lookups, each of which is short; fsync runs
/// outside the lock (see `durability`).
pub struct Partition {
    pub topic: TopicName,
    pub index: PartitionIndex,
    pub log: Mutex<Log>,
    /// Idempotent producers' sequence state. Lock order: `log`, then `producers`.
    pub producers: Mutex<ProducerStates>,
}

/// A topic: its id, its partitions, its config overrides and the effective config.
pub struct Topic {
    pub name: TopicName,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.partitions.get(index))
    }
}

/// Why a topic could not be created or deleted, as a Kafka error plus a message for the client.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct TopicError {
    pub code: ErrorCode,
    pub message: String,
}

impl TopicError {
    fn new(code: ErrorCode, message: impl Into<String>) -> TopicError {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

impl From<LogError> for TopicError {
    fn from(error: LogError) -> TopicError {
        TopicError::new(ErrorCode::KafkaStorageError, error.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct MetadataFile {
    cluster_id: String,
    topics: Vec<TopicRecord>,
    /// Producer ids below this were handed out (or reserved) before; never reuse them.
    #[serde(default)]
    producer_ids_reserved_until: i64,
}

/// Producer ids are reserved on disk this many at a time, so handing one out rarely writes.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Serialize, Deserialize, Clone)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Every topic on this broker.
pub struct TopicRegistry {
    data_dir: PathBuf,
    cluster_id: String,
    topics: RwLock<BTreeMap<TopicName, Arc<Topic>>>,
    /// Serialises metadata changes (create, delete, producer id blocks) and the file writes.
    changes: Mutex<()>,
    /// The next producer id to hand out and the end of the reserved block.
    producer_ids: Mutex<(i64, i64)>,
}

fn metadata_path(data_dir: &Path) -> PathBuf {
    data_dir.join("metadata").join("topics.json")
}

fn partition_dir(data_dir: &Path, topic: &TopicName, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl TopicRegistry {
    /// Reads the metadata file (creating an empty one, with a new cluster id, on first start)
    /// and opens every partition log, recovering each.
    pub fn open(config: &BrokerConfig) -> anyhow::Result<TopicRegistry> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(data_dir.join("metadata")).map_err(|error| {
            anyhow::anyhow!(
                "cannot create data directory {}: {error}",
                data_dir.display()
            )
        })?;
        let path = metadata_path(&data_dir);
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<MetadataFile>(&bytes).map_err(|error| {
                anyhow::anyhow!("metadata file {} is damaged: {error}", path.display())
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let fresh = MetadataFile {
                    cluster_id: new_cluster_id(),
                    topics: Vec::new(),
                    producer_ids_reserved_until: 0,
                };
                write_metadata(&data_dir, &fresh)?;
                fresh
            }
            Err(error) => anyhow::bail!("cannot read metadata file {}: {error}", path.display()),
        };
        let mut topics = BTreeMap::new();
        for record in &file.topics {
            let topic = open_topic(config, record)?;
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        tracing::info!(topics = topics.len(), cluster_id = %file.cluster_id, "opened topics");
        let reserved = file.producer_ids_reserved_until;
        Ok(TopicRegistry {
            data_dir,
            cluster_id: file.cluster_id,
            topics: RwLock::new(topics),
            changes: Mutex::new(()),
            producer_ids: Mutex::new((reserved, reserved)),
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        let name = TopicName::new(name).ok()?;
        self.topics.read().get(&name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .values()
            .find(|topic| topic.id == id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be created).
    pub fn create(
        &self,
        config: &BrokerConfig,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let name = TopicName::new(name).map_err(|error| {
            TopicError::new(ErrorCode::InvalidTopicException, error.to_string())
        })?;
        if !(1..=strom_types::limits::PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(TopicError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "number of partitions must be between 1 and {}, not {partitions}",
                    strom_types::limits::PARTITIONS_PER_TOPIC_MAX
                ),
            ));
        }
        let _changes = self.changes.lock();
        if self.topics.read().contains_key(&name) {
            return Err(TopicError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        if self.topics.read().len() >= strom_types::limits::TOPICS_MAX {
            return Err(TopicError::new(
                ErrorCode::PolicyViolation,
                "the broker holds the most topics it allows",
            ));
        }
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs: overrides,
        };
        if validate_only {
            let topic_config = config.topic_config(&record.configs);
            return Ok(Arc::new(Topic {
                name,
                id: record.id,
                partitions: Vec::new(),
                overrides: record.configs,
                config: topic_config,
            }));
        }
        let mut file = self.metadata_file();
        file.topics.push(record.clone());
        write_metadata(&self.data_dir, &file)
            .map_err(|error| TopicError::new(ErrorCode::KafkaStorageError, error.to_string()))?;
        let topic =
            Arc::new(open_topic(config, &record).map_err(|error| {
                TopicError::new(ErrorCode::KafkaStorageError, error.to_string())
            })?);
        self.topics.write().insert(name.clone(), topic.clone());
        tracing::info!(topic = %name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: forgets it in the metadata file, then deletes its logs.
    pub fn delete(&self, name: &TopicName) -> Result<(), TopicError> {
        let _changes = self.changes.lock();
        let Some(topic) = self.topics.write().remove(name) else {
            return Err(TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        };
        let mut file = self.metadata_file();
        file.topics.retain(|record| record.name != name.as_str());
        write_metadata(&self.data_dir, &file)
            .map_err(|error| TopicError::new(ErrorCode::KafkaStorageError, error.to_string()))?;
        for partition in &topic.partitions {
            let dir = partition_dir(&self.data_dir, name, partition.index.0);
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not delete partition directory");
            }
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    }

    /// A producer id never handed out before, on this broker's whole history.
    pub fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let _changes = self.changes.lock();
        let mut ids = self.producer_ids.lock();
        if ids.0 == ids.1 {
            let reserved_until = ids.1 + PRODUCER_ID_BLOCK;
            let mut file = self.metadata_file_with(reserved_until);
            file.producer_ids_reserved_until = reserved_until;
            write_metadata(&self.data_dir, &file).map_err(|error| {
                TopicError::new(ErrorCode::KafkaStorageError, error.to_string())
            })?;
            ids.1 = reserved_until;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn metadata_file(&self) -> MetadataFile {
        let reserved_until = self.producer_ids.lock().1;
        self.metadata_file_with(reserved_until)
    }

    fn metadata_file_with(&self, producer_ids_reserved_until: i64) -> MetadataFile {
        let topics = self.topics.read();
        MetadataFile {
            producer_ids_reserved_until,
            cluster_id: self.cluster_id.clone(),
            topics: topics
                .values()
                .map(|topic| TopicRecord {
                    name: topic.name.to_string(),
                    id: topic.id,
                    partitions: topic.partitions.len() as i32,
                    configs: topic.overrides.clone(),
                })
                .collect(),
        }
    }

    /// Flushes and fsyncs every log; called once on graceful shutdown.
    pub fn close(&self) {
        for topic in self.all() {
            for partition in &topic.partitions {
                let handle = partition.log.lock().sync_handle();
                match handle.sync() {
                    Ok(offset) => partition.log.lock().mark_durable(offset),
                    Err(error) => {
                        tracing::error!(topic = %topic.name, partition = partition.index.0, %error, "flush on shutdown failed")
                    }
                }
            }
        }
    }
}

fn open_topic(config: &BrokerConfig, record: &TopicRecord) -> anyhow::Result<Topic> {
    let name = TopicName::new(&record.name)?;
    let topic_config = config.topic_config(&record.configs);
    let mut partitions = Vec::with_capacity(record.partitions as usize);
    for index in 0..record.partitions {
        let dir = partition_dir(&config.data_dir, &name, index);
        let log = Log::open(&dir, topic_config.log.clone()).map_err(|error| {
            anyhow::anyhow!("cannot open partition log {}: {error}", dir.display())
        })?;
        let producers = Mutex::new(rebuild_producer_states(&log)?);
        partitions.push(Arc::new(Partition {
            topic: name.clone(),
            index: PartitionIndex(index),
            log: Mutex::new(log),
            producers,
        }));
    }
    Ok(Topic {
        name,
        id: record.id,
        partitions,
        overrides: record.configs.clone(),
        config: topic_config,
    })
}

/// Rebuilds idempotent-producer state from the batch headers of the active segment. Producers
/// whose last batch lies further back are treated as new, which Kafka also does once their
/// state has gone (they may continue at any sequence).
fn rebuild_producer_states(log: &Log) -> anyhow::Result<ProducerStates> {
    let mut states = ProducerStates::default();
    let mut offset = log.active_segment_base_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20, end)?;
        let mut advanced = false;
        for (header, _) in strom_protocol::batch::Batches::new(&read.records) {
            states.record(&header);
            offset = header.next_offset();
            advanced = true;
        }
        if !advanced {
            break;
        }
    }
    Ok(states)
}

fn new_cluster_id() -> String {
    // 128 random bits; clients treat the cluster id as an opaque string.
    use std::fmt::Write;
    Uuid::new_v4()
        .as_bytes()
        .iter()
        .fold(String::new(), |mut id, byte| {
            let _ = write!(id, "{byte:02x}");
            id
        })
}

fn write_metadata(data_dir: &Path, file: &MetadataFile) -> anyhow::Result<()> {
    let path = metadata_path(data_dir);
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(file)?;
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut out, &bytes)?;
        out.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(path.parent().expect("metadata file has a directory"))?.sync_all()
    };
    write()
        .map_err(|error| anyhow::anyhow!("cannot write metadata file {}: {error}", path.display()))
}
