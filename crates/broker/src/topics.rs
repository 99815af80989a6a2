//! The topics this broker knows, and the partition logs it hosts.
//!
//! The metadata image (from the Raft metadata quorum, `strom_metadata`) is the truth about
//! which topics exist, their configs, and each partition's replicas, leader, ISR and epochs.
//! [`TopicRegistry::reconcile`] makes this node match an image: it opens (creating if needed)
//! the log of every partition this node is a replica of, deletes the logs of topics the image
//! no longer has, and copies each partition's replica state next to its log. The broker calls
//! it on every new image, and right after its own proposals (so a CreateTopics answer comes
//! after the logs exist).
//!
//! A partition directory is `<topic>-<index>` with a `partition.metadata` file naming the topic
//! id, as in Kafka: a directory left by an older topic of the same name is recognised and
//! deleted rather than adopted.
//!
//! Concurrency: the topic map is behind a `RwLock` taken briefly to look topics up; reconciling
//! is serialised by its own mutex. Each partition's log has its own mutex (see [`Partition`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_log::{Log, LogError};
use strom_metadata::{MetadataImage, TopicImage};
use strom_types::{ErrorCode, PartitionIndex, TopicName};
use uuid::Uuid;

use crate::config::{BrokerConfig, TopicConfig};
use crate::producers::ProducerStates;

/// A partition's replica state, as the metadata image last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when the partition has no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// One partition this broker hosts a replica of.
///
/// `log` is locked for appends, reads and index lookups, each of which is short; fsync runs
/// outside the lock (see `durability`).
pub struct Partition {
    pub topic: TopicName,
    pub topic_id: Uuid,
    pub index: PartitionIndex,
    pub log: Mutex<Log>,
    /// Idempotent producers' sequence state. Lock order: `log`, then `producers`.
    pub producers: Mutex<ProducerStates>,
    /// Replicas, leader, ISR and epochs from the metadata image.
    pub state: RwLock<ReplicaState>,
    /// Replication progress: the high watermark, and on the leader each follower's.
    pub replication: crate::replication::Progress,
    /// Group commit: at most one fsync at a time, waiters served by the next one.
    pub sync: crate::durability::SyncGate,
}

impl Partition {
    pub fn state(&self) -> ReplicaState {
        self.state.read().clone()
    }

    /// True when the image names `node` this partition's leader.
    pub fn is_led_by(&self, node: i32) -> bool {
        self.state.read().leader == node
    }
}

/// A topic: its id, its partitions, its config overrides and the effective config.
pub struct Topic {
    pub name: TopicName,
    pub id: Uuid,
    /// How many partitions the topic has in the whole cluster.
    pub partition_count: i32,
    /// The partitions this node hosts, by ascending index.
    pub partitions: Vec<Arc<Partition>>,
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
}

impl Topic {
    /// The partition `index`, if this node hosts it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions
            .binary_search_by_key(&index, |partition| partition.index.0)
            .ok()
            .map(|at| &self.partitions[at])
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
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TopicError {
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

/// The file in a partition directory that names the topic id it belongs to.
const PARTITION_METADATA: &str = "partition.metadata";

/// The topics of the current image, with the logs this node hosts.
pub struct TopicRegistry {
    data_dir: PathBuf,
    node_id: i32,
    topics: RwLock<BTreeMap<TopicName, Arc<Topic>>>,
    /// Serialises [`TopicRegistry::reconcile`].
    reconciling: Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &TopicName, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl TopicRegistry {
    /// An empty registry over `config.data_dir`; [`TopicRegistry::reconcile`] fills it.
    pub fn new(config: &BrokerConfig) -> anyhow::Result<TopicRegistry> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot create data directory {}: {error}",
                data_dir.display()
            )
        })?;
        Ok(TopicRegistry {
            data_dir,
            node_id: config.node_id,
            topics: RwLock::new(BTreeMap::new()),
            reconciling: Mutex::new(()),
        })
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

    /// Makes this node match `image`: see the module docs. A partition whose log cannot be
    /// opened is left out (logged); the rest of the image still applies.
    pub fn reconcile(&self, config: &BrokerConfig, image: &MetadataImage) {
        let _reconciling = self.reconciling.lock();
        let current = self.topics.read().clone();
        let mut next = BTreeMap::new();
        for topic_image in image.topics.values() {
            let Ok(name) = TopicName::new(&topic_image.name) else {
                continue;
            };
            let existing = current
                .get(&name)
                .filter(|topic| topic.id == topic_image.id);
            if let Some(old) = current
                .get(&name)
                .filter(|topic| topic.id != topic_image.id)
            {
                self.delete_logs(old);
            }
            let topic = self.reconcile_topic(config, &name, topic_image, existing);
            next.insert(name, topic);
        }
        for (name, topic) in &current {
            if !next.contains_key(name) {
                self.delete_logs(topic);
                tracing::info!(topic = %name, "deleted topic");
            }
        }
        *self.topics.write() = next;
    }

    fn reconcile_topic(
        &self,
        config: &BrokerConfig,
        name: &TopicName,
        image: &TopicImage,
        existing: Option<&Arc<Topic>>,
    ) -> Arc<Topic> {
        let topic_config = config.topic_config(&image.configs);
        let mut partitions = Vec::new();
        for state in &image.partitions {
            if !state.replicas.contains(&self.node_id) {
                continue;
            }
            let replica = ReplicaState {
                replicas: state.replicas.clone(),
                isr: state.isr.clone(),
                leader: state.leader,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
            };
            let hosted = existing.and_then(|topic| topic.partition(state.index));
            let partition = match hosted {
                Some(partition) => partition.clone(),
                None => match self.open_partition(&topic_config, name, image.id, state.index) {
                    Ok(partition) => Arc::new(partition),
                    Err(error) => {
                        tracing::error!(topic = %name, partition = state.index, %error, "cannot open partition log");
                        continue;
                    }
                },
            };
            let change = {
                let mut current = partition.state.write();
                let opened = current.leader_epoch < 0;
                let new_epoch = current.leader_epoch != replica.leader_epoch;
                let changed = *current != replica;
                if !opened && changed && (current.leader != replica.leader || new_epoch) {
                    tracing::info!(topic = %name, partition = state.index, leader = replica.leader, leader_epoch = replica.leader_epoch, isr = ?replica.isr, "partition leadership changed");
                }
                *current = replica;
                (changed, new_epoch)
            };
            match change {
                (true, true) => crate::replication::on_new_leader_epoch(&partition, self.node_id),
                (true, false) => crate::replication::on_isr_change(&partition, self.node_id),
                _ => {}
            }
            partitions.push(partition);
        }
        partitions.sort_by_key(|partition| partition.index.0);
        if let Some(topic) = existing {
            let unchanged = topic.overrides == image.configs
                && topic.partition_count == image.partitions.len() as i32
                && topic.partitions.len() == partitions.len();
            if unchanged {
                return topic.clone();
            }
            if topic.overrides != image.configs {
                for partition in &partitions {
                    partition.log.lock().set_config(topic_config.log.clone());
                }
            }
        } else {
            tracing::info!(topic = %name, partitions = image.partitions.len(), hosted = partitions.len(), "created topic");
        }
        Arc::new(Topic {
            name: name.clone(),
            id: image.id,
            partition_count: image.partitions.len() as i32,
            partitions,
            overrides: image.configs.clone(),
            config: topic_config,
        })
    }

    /// Opens (recovering, or creating) one partition's log, first deleting a directory that
    /// belongs to an older topic of the same name.
    fn open_partition(
        &self,
        config: &TopicConfig,
        name: &TopicName,
        topic_id: Uuid,
        index: i32,
    ) -> anyhow::Result<Partition> {
        let dir = partition_dir(&self.data_dir, name, index);
        let marker = dir.join(PARTITION_METADATA);
        match read_partition_metadata(&marker) {
            Some(id) if id != topic_id => {
                tracing::info!(dir = %dir.display(), old_topic_id = %id, "deleting the log of an older topic of the same name");
                std::fs::remove_dir_all(&dir).map_err(|error| {
                    anyhow::anyhow!("cannot delete old partition {}: {error}", dir.display())
                })?;
            }
            _ => {}
        }
        let log = Log::open(&dir, config.log.clone()).map_err(|error| {
            anyhow::anyhow!("cannot open partition log {}: {error}", dir.display())
        })?;
        if read_partition_metadata(&marker) != Some(topic_id) {
            write_partition_metadata(&marker, topic_id)?;
        }
        let producers = Mutex::new(rebuild_producer_states(&log)?);
        Ok(Partition {
            topic: name.clone(),
            topic_id,
            index: PartitionIndex(index),
            log: Mutex::new(log),
            producers,
            state: RwLock::new(ReplicaState {
                replicas: Vec::new(),
                isr: Vec::new(),
                leader: -1,
                leader_epoch: -1,
                partition_epoch: -1,
            }),
            replication: crate::replication::Progress::default(),
            sync: Default::default(),
        })
    }

    fn delete_logs(&self, topic: &Topic) {
        for partition in &topic.partitions {
            let dir = partition_dir(&self.data_dir, &topic.name, partition.index.0);
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not delete partition directory");
            }
        }
    }

    /// Deletes partition directories that no topic of the registry owns: left by a topic
    /// deleted while this node was down (or crashed part-way through deleting it). Call after
    /// reconciling with an image that is up to date.
    pub fn delete_orphans(&self) {
        let topics = self.topics.read();
        let owned: BTreeSet<PathBuf> = topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| partition_dir(&self.data_dir, &topic.name, partition.index.0))
            })
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_partition = path.join(PARTITION_METADATA).is_file();
            if is_partition && !owned.contains(&path) {
                tracing::info!(dir = %path.display(), "deleting the log of a partition this node no longer hosts");
                if let Err(error) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(dir = %path.display(), %error, "could not delete partition directory");
                }
            }
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

/// The topic id in a `partition.metadata` file (Kafka's layout: `version: 0`, `topic_id: ID`).
fn read_partition_metadata(path: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

fn write_partition_metadata(path: &Path, topic_id: Uuid) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(
            &mut out,
            format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
        )?;
        out.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(path.parent().expect("a partition file has a directory"))?.sync_all()
    };
    write().map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))
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

/// The partition `index` of `topic` if this node is its leader, or the Kafka error a client
/// should act on: UNKNOWN_TOPIC_OR_PARTITION if the image has no such partition,
/// NOT_LEADER_OR_FOLLOWER if another broker leads it (the client refreshes its metadata), and
/// for a request that names the leader epoch it knows (`current_leader_epoch` >= 0),
/// FENCED_LEADER_EPOCH if that epoch is older than ours and UNKNOWN_LEADER_EPOCH if newer.
pub fn led_partition<'a>(
    image: &MetadataImage,
    name: &str,
    topic: Option<&'a Topic>,
    index: i32,
    node: i32,
    current_leader_epoch: i32,
) -> Result<&'a Arc<Partition>, ErrorCode> {
    let exists = image
        .topics
        .get(name)
        .is_some_and(|topic| index >= 0 && (index as usize) < topic.partitions.len());
    if !exists {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    let partition = topic
        .and_then(|topic| topic.partition(index))
        .ok_or(ErrorCode::NotLeaderOrFollower)?;
    let state = partition.state.read();
    if state.leader != node {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    if current_leader_epoch >= 0 && current_leader_epoch < state.leader_epoch {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if current_leader_epoch > state.leader_epoch {
        return Err(ErrorCode::UnknownLeaderEpoch);
    }
    Ok(partition)
}
