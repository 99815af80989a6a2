//! The topics this broker knows, and the partitions it hosts.
//!
//! The metadata image (from the Raft metadata quorum, `strom_metadata`) is the truth about
//! which topics exist, their configs, and each partition's replicas, leader, ISR and epochs.
//! [`TopicRegistry::reconcile`] makes this node match an image: it opens (creating if needed)
//! every partition this node is a replica of, hands each its replica state
//! ([`Partition::apply_replica_state`]), and deletes the logs of topics the image no longer
//! has. The broker calls it on every new image, and right after its own proposals (so a
//! CreateTopics answer comes after the logs exist). Images share every topic a command did not
//! change (`Arc<TopicImage>`), and a topic whose part is the same `Arc` as last time is skipped,
//! so applying an image costs what changed, not the cluster: one ISR change on a node hosting
//! 20,000 partitions walks that partition's topic only. Topics' configs are the image's
//! overrides over this node's effective broker config (the static one with the image's dynamic
//! broker configs applied): when the image's dynamic broker configs change, every topic is
//! walked and each partition whose effective log config changed gets the new one.
//!
//! A partition whose log cannot be opened (no descriptors left, a full or failing disk) is
//! *offline* here: requests for it are answered KAFKA_STORAGE_ERROR, as Kafka answers for a
//! replica in an offline log directory, its directory is never taken for an orphan, and the
//! open is tried again on the next reconcile. The task that applies images runs one after
//! [`TopicRegistry::reopen_after`] even when no image comes, backing off while the opens keep
//! failing, so the partition comes back by itself once the resource does.
//!
//! A partition directory is `<topic>-<index>` with a `partition.metadata` file naming the topic
//! id, as in Kafka: a directory left by an older topic of the same name is recognised and
//! deleted rather than adopted.
//!
//! Concurrency: the topic map is behind a `RwLock` taken briefly to look topics up; reconciling
//! is serialised by its own mutex. Everything about one partition is its [`Partition`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use strom_log::Recovery;
use strom_metadata::image::PartitionState;
use strom_metadata::{MetadataImage, TopicImage};
use strom_partition::{Partition, PartitionId, ProposalSender, ReplicaState, StateChange};
use strom_types::{BrokerId, ErrorCode, LeaderEpoch, PartitionIndex, TopicName};
use uuid::Uuid;

use crate::config::{BrokerConfig, TopicConfig};
use crate::error::BrokerError;

/// A topic: its id, the partitions this node hosts, its config overrides and the effective
/// config.
#[derive(Clone)]
pub struct Topic {
    pub name: TopicName,
    pub id: Uuid,
    /// How many partitions the topic has in the whole cluster.
    pub partition_count: i32,
    /// The partitions this node hosts, by ascending index.
    pub partitions: Vec<Arc<Partition>>,
    /// The partitions this node is a replica of but could not open (see the module docs),
    /// ascending.
    offline: Vec<PartitionIndex>,
    pub overrides: BTreeMap<String, String>,
    pub config: TopicConfig,
    /// For each index of the topic, where its partition stands here: a lookup without
    /// touching the partitions themselves (a binary search over 1,000 of them cost 9% of the
    /// broker's CPU under 200 idle long-polling consumers, in cache misses).
    slots: Vec<Slot>,
    /// The topic's part of the image this was made from: a later image sharing it (the same
    /// `Arc`) changed nothing here, and reconciling skips the topic.
    image: Arc<TopicImage>,
    /// Records and bytes produced and consumed here, kept across the topic's reconciles.
    pub traffic: Arc<crate::telemetry::TopicTraffic>,
}

/// Where one partition of a topic stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// This node holds no replica of it.
    Elsewhere,
    /// Hosted here, at this position of `partitions`.
    Hosted(u32),
    /// A replica here whose log could not be opened.
    Offline,
}

impl Topic {
    /// The partition `index`, if this node hosts it.
    pub fn partition(&self, index: PartitionIndex) -> Option<&Arc<Partition>> {
        match self.slot(index) {
            Slot::Hosted(at) => Some(&self.partitions[at as usize]),
            Slot::Elsewhere | Slot::Offline => None,
        }
    }

    /// Whether this node is a replica of partition `index` but could not open its log.
    pub fn is_offline(&self, index: PartitionIndex) -> bool {
        self.slot(index) == Slot::Offline
    }

    fn slot(&self, index: PartitionIndex) -> Slot {
        usize::try_from(index.0)
            .ok()
            .and_then(|at| self.slots.get(at).copied())
            .unwrap_or(Slot::Elsewhere)
    }

    /// The partitions this node should host, opened or not.
    fn replica_indexes(&self) -> impl Iterator<Item = PartitionIndex> + '_ {
        let hosted = self.partitions.iter().map(|partition| partition.index());
        hosted.chain(self.offline.iter().copied())
    }
}

/// Counts what a partition's new state says for `/metrics`: a leadership this node won in a
/// new epoch (unclean when it was not in the ISR before), or, as its leader, an ISR that shrank
/// or grew within the epoch (Kafka's IsrShrinksPerSec and IsrExpandsPerSec).
fn count_change(node: BrokerId, before: &ReplicaState, after: &ReplicaState, change: StateChange) {
    match change {
        StateChange::BecameLeader => {
            crate::telemetry::leadership_won(!before.isr.contains(&node));
        }
        StateChange::ReplicasChanged if after.is_led_by(node) => {
            // Sets, not sizes: one replica leaving as another joins is a shrink and an expand.
            if before
                .isr
                .iter()
                .any(|replica| !after.isr.contains(replica))
            {
                crate::telemetry::isr_changed(true);
            }
            if after
                .isr
                .iter()
                .any(|replica| !before.isr.contains(replica))
            {
                crate::telemetry::isr_changed(false);
            }
        }
        _ => {}
    }
}

/// Where each partition stands here, by partition index.
fn slots(
    partition_count: i32,
    partitions: &[Arc<Partition>],
    offline: &[PartitionIndex],
) -> Vec<Slot> {
    let mut slots = vec![Slot::Elsewhere; partition_count.max(0) as usize];
    for (at, partition) in partitions.iter().enumerate() {
        if let Some(slot) = slots.get_mut(partition.index().0 as usize) {
            *slot = Slot::Hosted(at as u32);
        }
    }
    for index in offline {
        if let Some(slot) = slots.get_mut(index.0 as usize) {
            *slot = Slot::Offline;
        }
    }
    slots
}

/// What a reconcile changed that the caller acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Some partition's leader epoch changed here: fetchers and coordinators follow.
    pub leadership_changed: bool,
    /// Some topic changed here (created, deleted, or its part of the image changed): when
    /// false, the image changed nothing this node hosts.
    pub topics_changed: bool,
}

/// The file in a partition directory that names the topic id it belongs to.
const PARTITION_METADATA: &str = "partition.metadata";
/// Threads opening one topic's partitions at most, and partitions per thread at least.
const OPENING_THREADS_MAX: usize = 4;
const OPENS_PER_THREAD_MIN: usize = 64;

/// Written in the data directory once a shutdown closed every partition and synced the
/// filesystem (Kafka's `.kafka_cleanshutdown`); removed as the next start begins.
const CLEAN_SHUTDOWN_FILE: &str = ".strom_cleanshutdown";

/// How long after a reconcile that left partitions offline the next one tries to open them
/// again: the first wait, doubled after each attempt that still fails, up to the last. A brief
/// shortage is over within a second; a lasting one (a disk that stays full) costs an attempt,
/// and a log line, every ten seconds.
const REOPEN_BACKOFF_FIRST: Duration = Duration::from_millis(500);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The topics of the current image, with the partitions this node hosts.
pub struct TopicRegistry {
    data_dir: PathBuf,
    node_id: BrokerId,
    topics: RwLock<BTreeMap<TopicName, Arc<Topic>>>,
    /// Serialises [`TopicRegistry::reconcile`].
    reconciling: Mutex<()>,
    /// After a reconcile that left partitions offline, how long until the next should try
    /// again, and since when; `None` while every partition is open.
    reopen_after: Mutex<Option<(Duration, Instant)>>,
    /// Where this node's partitions send ISR proposals.
    proposals: ProposalSender,
    /// How the logs found at start are recovered, until [`TopicRegistry::finish_start`]; a
    /// log opened later is opened alone (checked and fsynced before it serves).
    start_recovery: Mutex<Option<Recovery>>,
    /// The image's dynamic broker configs the last reconcile applied (see the module docs).
    dynamic_configs: Mutex<Arc<BTreeMap<String, BTreeMap<String, String>>>>,
}

fn partition_dir(data_dir: &Path, topic: &TopicName, index: PartitionIndex) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

/// A partition's replica state as the image has it.
pub fn replica_state(state: &PartitionState) -> ReplicaState {
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    ReplicaState {
        replicas: ids(&state.replicas),
        isr: ids(&state.isr),
        leader: (state.leader >= 0).then_some(BrokerId(state.leader)),
        leader_epoch: LeaderEpoch(state.leader_epoch),
        partition_epoch: state.partition_epoch,
    }
}

impl TopicRegistry {
    /// An empty registry over `config.data_dir`; [`TopicRegistry::reconcile`] fills it.
    pub fn new(config: &BrokerConfig, proposals: ProposalSender) -> anyhow::Result<TopicRegistry> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot create data directory {}: {error}",
                data_dir.display()
            )
        })?;
        // Every log is checked alike either way (see `strom_log::Recovery`); the marker tells
        // the operator whether the last shutdown finished its flush.
        let clean = take_clean_shutdown_marker(&data_dir)?;
        tracing::info!(data_dir = %data_dir.display(), "opening partition logs as after a {} shutdown", match clean {
            true => "clean",
            false => "possibly unclean",
        });
        Ok(TopicRegistry {
            data_dir,
            node_id: BrokerId(config.node_id),
            topics: RwLock::new(BTreeMap::new()),
            reconciling: Mutex::new(()),
            reopen_after: Mutex::new(None),
            proposals,
            start_recovery: Mutex::new(Some(Recovery::Crash)),
            dynamic_configs: Mutex::new(Arc::default()),
        })
    }

    /// Ends start-up: makes what recovery found durable with one sync of the filesystem (the
    /// logs opened at start fsynced nothing; see `strom_log::Recovery`). Call before serving.
    pub fn finish_start(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        strom_log::sync_filesystem(&self.data_dir)?;
        *self.start_recovery.lock() = None;
        tracing::info!(
            partitions = self.partitions().len(),
            sync_ms = started.elapsed().as_millis() as u64,
            "partition logs open and synced"
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .values()
            .find(|topic| topic.id == id)
            .cloned()
    }

    /// The partition `index` of the topic with id `topic_id`, if this node hosts it.
    pub fn partition_by_id(&self, topic_id: Uuid, index: PartitionIndex) -> Option<Arc<Partition>> {
        self.get_by_id(topic_id)?.partition(index).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Every partition this node hosts.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|topic| topic.partitions.iter().cloned())
            .collect()
    }

    /// Makes this node match `image`: see the module docs. A partition whose log cannot be
    /// opened is offline until a later reconcile opens it; the rest of the image still applies.
    pub fn reconcile(&self, config: &BrokerConfig, image: &MetadataImage) -> Reconciled {
        let _reconciling = self.reconciling.lock();
        self.reconcile_locked(config, image)
    }

    /// Reconciles with the image `latest` returns once no other reconcile runs: the image
    /// read then is at least as new as any applied before, so reconciles started out of order
    /// (the image-following task's and a proposal's) never take this node back to an older
    /// image: no leader epoch goes back, no deleted log comes back.
    pub fn reconcile_latest(
        &self,
        config: &BrokerConfig,
        latest: impl FnOnce() -> Arc<MetadataImage>,
    ) -> Reconciled {
        let _reconciling = self.reconciling.lock();
        self.reconcile_locked(config, &latest())
    }

    fn reconcile_locked(&self, config: &BrokerConfig, image: &MetadataImage) -> Reconciled {
        let dynamic_changed = {
            let mut applied = self.dynamic_configs.lock();
            let changed = !Arc::ptr_eq(&applied, &image.broker_configs);
            *applied = image.broker_configs.clone();
            changed
        };
        let effective;
        let config = match image.broker_configs.is_empty() {
            true => config,
            false => {
                effective = config.with_dynamic(&image.broker_configs);
                &effective
            }
        };
        let current = self.topics.read().clone();
        let mut next = BTreeMap::new();
        let mut reconciled = Reconciled::default();
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
            // What changed costs work, not the whole cluster: an image applies one command to
            // the one topic it changes and shares every other topic with the image before.
            if let Some(topic) = existing.filter(|topic| {
                Arc::ptr_eq(&topic.image, topic_image)
                    && topic.offline.is_empty()
                    && !dynamic_changed
            }) {
                next.insert(name, topic.clone());
                continue;
            }
            reconciled.topics_changed = true;
            let topic = self.reconcile_topic(config, &name, topic_image, existing, &mut reconciled);
            next.insert(name, topic);
        }
        for (name, topic) in &current {
            if !next.contains_key(name) {
                reconciled.topics_changed = true;
                self.delete_logs(topic);
                tracing::info!(topic = %name, "deleted topic");
            }
        }
        let offline: usize = next.values().map(|topic| topic.offline.len()).sum();
        *self.topics.write() = next;
        self.schedule_reopen(offline);
        reconciled
    }

    /// How long until a reconcile should run to open the partitions that are offline, even if
    /// no new image comes; `None` when none is.
    pub fn reopen_after(&self) -> Option<Duration> {
        let reopen_after = *self.reopen_after.lock();
        reopen_after.map(|(wait, since)| wait.saturating_sub(since.elapsed()))
    }

    /// Backs the next attempt off after one that left `offline` partitions unopened. Only an
    /// attempt made once the wait was over doubles it: images applied in a row (as at
    /// start-up) count as one attempt.
    fn schedule_reopen(&self, offline: usize) {
        let mut reopen_after = self.reopen_after.lock();
        let previous = *reopen_after;
        *reopen_after = (offline > 0).then(|| match previous {
            None => (REOPEN_BACKOFF_FIRST, Instant::now()),
            Some((wait, since)) if since.elapsed() < wait => (wait, since),
            Some((wait, _)) => ((wait * 2).min(REOPEN_BACKOFF_MAX), Instant::now()),
        });
        match (previous, *reopen_after) {
            (Some(previous), Some(next)) if previous == next => {}
            (_, Some((wait, _))) => {
                tracing::warn!(partitions = offline, retry_in_ms = wait.as_millis() as u64, "partition logs this node hosts cannot be opened; they answer KAFKA_STORAGE_ERROR until they can")
            }
            (Some(_), None) => tracing::info!("every partition log this node hosts is open again"),
            (None, None) => {}
        }
    }

    fn reconcile_topic(
        &self,
        config: &BrokerConfig,
        name: &TopicName,
        image: &Arc<TopicImage>,
        existing: Option<&Arc<Topic>>,
        reconciled: &mut Reconciled,
    ) -> Arc<Topic> {
        let topic_config = config.topic_config(&image.configs);
        let now = Instant::now();
        let mut partitions = Vec::new();
        let to_open: Vec<PartitionIndex> = image
            .partitions
            .iter()
            .filter(|state| state.replicas.contains(&self.node_id.0))
            .map(|state| PartitionIndex(state.index))
            .filter(|&index| existing.and_then(|topic| topic.partition(index)).is_none())
            .collect();
        let mut opened_logs = self.open_partitions(&topic_config, name, image.id, &to_open);
        let mut offline = Vec::new();
        for state in &image.partitions {
            if !state.replicas.contains(&self.node_id.0) {
                continue;
            }
            let index = PartitionIndex(state.index);
            let hosted = existing.and_then(|topic| topic.partition(index));
            let partition = match hosted {
                Some(partition) => partition.clone(),
                None => match opened_logs.remove(&index) {
                    Some(Ok(partition)) => {
                        if existing.is_some_and(|topic| topic.is_offline(index)) {
                            tracing::info!(topic = %name, partition = %index, "opened a partition log that could not be opened before");
                        }
                        Arc::new(partition)
                    }
                    Some(Err(error)) => {
                        if existing.is_some_and(|topic| topic.is_offline(index)) {
                            tracing::debug!(topic = %name, partition = %index, %error, "still cannot open partition log");
                        } else {
                            tracing::error!(topic = %name, partition = %index, %error, "cannot open partition log; retrying");
                        }
                        offline.push(index);
                        continue;
                    }
                    None => continue,
                },
            };
            let replica = replica_state(state);
            let (leader, epoch, isr) = (replica.leader, replica.leader_epoch, replica.isr.clone());
            let before = partition.replica_state();
            let opened = before.leader_epoch == LeaderEpoch::UNKNOWN;
            let change = partition.apply_replica_state(replica, now);
            if !opened {
                count_change(self.node_id, &before, &partition.replica_state(), change);
            }
            if matches!(
                change,
                StateChange::BecameLeader | StateChange::BecameFollower
            ) {
                reconciled.leadership_changed = true;
                if !opened {
                    tracing::info!(topic = %name, partition = %index, leader = ?leader.map(|id| id.0), leader_epoch = %epoch, ?isr, "partition leadership changed");
                }
            }
            partitions.push(partition);
        }
        partitions.sort_by_key(|partition| partition.index());
        if existing.is_some_and(|topic| self.drop_moved_away(topic, image, now)) {
            // Coordinators leave the partitions they were loaded from.
            reconciled.leadership_changed = true;
        }
        if let Some(topic) = existing {
            let unchanged = topic.overrides == image.configs
                && topic.config == topic_config
                && topic.partition_count == image.partitions.len() as i32
                && topic.partitions.len() == partitions.len()
                && topic.offline == offline;
            if unchanged {
                // Kept, but with the new image, so that the images after it skip the topic.
                return Arc::new(Topic {
                    image: image.clone(),
                    ..Topic::clone(topic)
                });
            }
            if topic.config.log != topic_config.log {
                for partition in &partitions {
                    partition.set_log_config(topic_config.log.clone());
                }
            }
        } else {
            tracing::info!(topic = %name, partitions = image.partitions.len(), hosted = partitions.len(), "created topic");
        }
        let partition_count = image.partitions.len() as i32;
        Arc::new(Topic {
            name: name.clone(),
            id: image.id,
            partition_count,
            slots: slots(partition_count, &partitions, &offline),
            partitions,
            offline,
            overrides: image.configs.clone(),
            config: topic_config,
            image: image.clone(),
            traffic: existing.map_or_else(
                || crate::telemetry::TopicTraffic::new(name.as_str()),
                |topic| topic.traffic.clone(),
            ),
        })
    }

    /// Stops hosting the partitions of `topic` that a reassignment moved off this node (they
    /// are no longer replicas here in `image`) and deletes their logs. A partition this node
    /// led takes the image's state first, so that produces and fetches waiting on it are woken
    /// and answered NOT_LEADER_OR_FOLLOWER (the client goes to the new leader) rather than
    /// left to time out. Returns whether a hosted partition was dropped.
    fn drop_moved_away(&self, topic: &Topic, image: &TopicImage, now: Instant) -> bool {
        let mut dropped = false;
        let node = self.node_id.0;
        let moved_away = |index: PartitionIndex| {
            let state = usize::try_from(index.0)
                .ok()
                .and_then(|at| image.partitions.get(at));
            state.filter(|state| !state.replicas.contains(&node))
        };
        for index in topic.replica_indexes() {
            let Some(state) = moved_away(index) else {
                continue;
            };
            if let Some(partition) = topic.partition(index) {
                partition.apply_replica_state(replica_state(state), now);
                dropped = true;
            }
            let dir = partition_dir(&self.data_dir, &topic.name, index);
            tracing::info!(topic = %topic.name, partition = %index, replicas = ?state.replicas, "deleting the log of a partition moved off this node");
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not delete partition directory");
            }
        }
        dropped
    }

    /// Opens `indexes` of one topic, on several threads when there are many: opening reads
    /// and creates files, so a start or a large CreateTopics waits on the disk less this way.
    fn open_partitions(
        &self,
        config: &TopicConfig,
        name: &TopicName,
        topic_id: Uuid,
        indexes: &[PartitionIndex],
    ) -> HashMap<PartitionIndex, anyhow::Result<Partition>> {
        let open =
            |&index: &PartitionIndex| (index, self.open_partition(config, name, topic_id, index));
        in_parallel(indexes, open).into_iter().collect()
    }

    /// Opens (recovering, or creating) one partition, first deleting a directory that belongs
    /// to an older topic of the same name.
    fn open_partition(
        &self,
        config: &TopicConfig,
        name: &TopicName,
        topic_id: Uuid,
        index: PartitionIndex,
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
        let id = PartitionId {
            topic: name.clone(),
            topic_id,
            index,
        };
        let proposals = Some(self.proposals.clone());
        let recovery = self.start_recovery.lock().unwrap_or(Recovery::CrashAndSync);
        let partition = Partition::open(
            &dir,
            id,
            self.node_id,
            config.log.clone(),
            proposals,
            recovery,
        )
        .map_err(|error| anyhow::anyhow!("cannot open partition log {}: {error}", dir.display()))?;
        if read_partition_metadata(&marker) != Some(topic_id) {
            write_partition_metadata(&marker, topic_id)?;
        }
        Ok(partition)
    }

    fn delete_logs(&self, topic: &Topic) {
        for index in topic.replica_indexes() {
            let dir = partition_dir(&self.data_dir, &topic.name, index);
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not delete partition directory");
            }
        }
    }

    /// Deletes partition directories that no topic of the registry owns: left by a topic
    /// deleted while this node was down (or crashed part-way through deleting it). Call after
    /// reconciling with an image that is up to date. The directory of a partition that is
    /// offline here is owned too: its log is only waiting to be opened.
    pub fn delete_orphans(&self) {
        let topics = self.topics.read();
        let owned: BTreeSet<PathBuf> = topics
            .values()
            .flat_map(|topic| {
                topic
                    .replica_indexes()
                    .map(|index| partition_dir(&self.data_dir, &topic.name, index))
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

    /// Writes out every partition's indexes and producer state snapshot, syncs the filesystem
    /// once, and then marks the shutdown clean, so the next start trusts the files; called once
    /// on graceful shutdown. Any failure leaves the marker out: the next start recovers fully.
    pub fn close(&self) {
        let started = Instant::now();
        let close = |partition: &Arc<Partition>| match partition.close_unsynced() {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(topic = %partition.topic(), partition = %partition.index(), %error, "flush on shutdown failed");
                false
            }
        };
        let mut clean = in_parallel(&self.partitions(), close)
            .into_iter()
            .all(|closed| closed);
        if let Err(error) = strom_log::sync_filesystem(&self.data_dir) {
            tracing::error!(%error, "syncing the data directory on shutdown failed");
            clean = false;
        }
        if clean {
            if let Err(error) = write_clean_shutdown_marker(&self.data_dir) {
                tracing::warn!(%error, "cannot mark the shutdown clean; the next start checks every log in full");
            }
        }
        tracing::info!(
            clean,
            ms = started.elapsed().as_millis() as u64,
            "closed partition logs"
        );
    }
}

/// `work` applied to every item, on up to [`OPENING_THREADS_MAX`] threads when there are many:
/// opening and closing partitions read and write a few small files each, so a start, a large
/// CreateTopics or a shutdown waits on the disk less this way. Results are in `items`' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, OPENING_THREADS_MAX);
    if items.len() < OPENS_PER_THREAD_MIN * 2 || threads == 1 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .expect("opening or closing a partition does not panic")
            })
            .collect()
    })
}

/// Whether the last shutdown was clean, removing the marker (durably, before any log is
/// opened) so that a crash from here on is not taken for a clean shutdown.
fn take_clean_shutdown_marker(data_dir: &Path) -> anyhow::Result<bool> {
    let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => anyhow::bail!("cannot remove {}: {error}", marker.display()),
    }
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| anyhow::anyhow!("cannot sync {}: {error}", data_dir.display()))?;
    Ok(true)
}

fn write_clean_shutdown_marker(data_dir: &Path) -> std::io::Result<()> {
    std::fs::File::create(data_dir.join(CLEAN_SHUTDOWN_FILE))?.sync_all()?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// The topic id in a `partition.metadata` file (Kafka's layout: `version: 0`, `topic_id: ID`).
fn read_partition_metadata(path: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

/// Written by rename, so a reader sees the whole file or none, but not fsynced: creating a
/// partition then costs no fsync (the log's first sync makes the directory durable), and a
/// file lost or left empty by a crash reads as `None` and is written again on the next open.
fn write_partition_metadata(path: &Path, topic_id: Uuid) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(
            &mut out,
            format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
        )?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| {
        // Part-written, it would hold on to space a full disk needs back.
        let _ = std::fs::remove_file(&temporary);
        anyhow::anyhow!("cannot write {}: {error}", path.display())
    })
}

/// The partition `index` of topic `name` if this node leads it, or the Kafka error a client
/// should act on: UNKNOWN_TOPIC_OR_PARTITION if the image has no such partition,
/// KAFKA_STORAGE_ERROR if this node's replica is offline (its log could not be opened; the
/// client retries), NOT_LEADER_OR_FOLLOWER if another broker leads it (the client refreshes
/// its metadata), and for a request that names the leader epoch it knows, FENCED_LEADER_EPOCH
/// if that epoch is older than ours and UNKNOWN_LEADER_EPOCH if newer. Kafka's
/// `ReplicaManager.getPartitionOrError` answers the same way.
pub fn led_partition<'a>(
    image: &MetadataImage,
    name: &str,
    topic: Option<&'a Topic>,
    index: PartitionIndex,
    requested_epoch: Option<LeaderEpoch>,
) -> Result<&'a Arc<Partition>, BrokerError> {
    let exists = image
        .topics
        .get(name)
        .is_some_and(|topic| index.0 >= 0 && (index.0 as usize) < topic.partitions.len());
    if !exists {
        return Err(BrokerError::new(
            ErrorCode::UnknownTopicOrPartition,
            "this server does not host this topic-partition",
        ));
    }
    if topic.is_some_and(|topic| topic.is_offline(index)) {
        return Err(BrokerError::new(
            ErrorCode::KafkaStorageError,
            "this broker's replica of the partition is offline: its log could not be opened \
             (see the broker's log); it is opened again once the disk or descriptors allow",
        ));
    }
    let partition = topic
        .and_then(|topic| topic.partition(index))
        .ok_or_else(|| {
            BrokerError::new(
                ErrorCode::NotLeaderOrFollower,
                "this broker is not a replica of the partition",
            )
        })?;
    partition.check_leader(requested_epoch)?;
    Ok(partition)
}

/// A leader epoch a request names: Kafka sends -1 for "not given".
pub fn requested_epoch(epoch: i32) -> Option<LeaderEpoch> {
    (epoch >= 0).then_some(LeaderEpoch(epoch))
}

#[cfg(test)]
mod tests {
    use strom_metadata::image::PartitionState;

    use super::*;

    const TOPIC_ID: Uuid = Uuid::from_u64_pair(3, 4);

    /// Topic `t` with two partitions, both led by this node.
    fn image(node: i32) -> MetadataImage {
        let partition = |index| PartitionState {
            index,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        };
        let topic = TopicImage {
            name: "t".to_owned(),
            id: TOPIC_ID,
            configs: BTreeMap::new(),
            partitions: vec![partition(0), partition(1)],
        };
        MetadataImage {
            topics: BTreeMap::from([("t".to_owned(), Arc::new(topic))]),
            ..MetadataImage::default()
        }
    }

    #[test]
    fn a_partition_that_cannot_be_opened_is_offline_until_a_later_reconcile_opens_it() {
        let data = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::default();
        config.data_dir = data.path().to_path_buf();
        let registry = TopicRegistry::new(&config, crate::isr::proposal_channel().0).unwrap();
        // Partition 1's log has a segment missing in its middle: it cannot be opened.
        let dir = data.path().join("t-1");
        std::fs::create_dir(&dir).unwrap();
        write_partition_metadata(&dir.join(PARTITION_METADATA), TOPIC_ID).unwrap();
        let stray = dir.join("00000000000000000005.log");
        for segment in ["00000000000000000000.log", "00000000000000000005.log"] {
            std::fs::write(dir.join(segment), b"").unwrap();
        }
        let image = image(config.node_id);

        registry.reconcile(&config, &image);
        let topic = registry.get("t").unwrap();
        assert!(topic.partition(PartitionIndex(0)).is_some());
        assert!(topic.is_offline(PartitionIndex(1)));
        let led =
            |topic: &Topic, index| led_partition(&image, "t", Some(topic), index, None).map(|_| ());
        assert_eq!(
            led(&topic, PartitionIndex(1)).unwrap_err().code,
            ErrorCode::KafkaStorageError,
            "an offline replica answers a retriable storage error"
        );
        let wait = |registry: &TopicRegistry| registry.reopen_after.lock().map(|(wait, _)| wait);
        assert_eq!(wait(&registry), Some(REOPEN_BACKOFF_FIRST));
        registry.delete_orphans();
        assert!(
            stray.exists(),
            "an offline partition's log is not an orphan"
        );

        registry.reconcile(&config, &image);
        assert_eq!(
            wait(&registry),
            Some(REOPEN_BACKOFF_FIRST),
            "another image applied before the wait is over is the same attempt"
        );
        // The wait is over (moved back in time rather than slept through).
        if let Some((_, since)) = registry.reopen_after.lock().as_mut() {
            *since -= REOPEN_BACKOFF_FIRST;
        }
        assert_eq!(registry.reopen_after(), Some(Duration::ZERO));
        registry.reconcile(&config, &image);
        assert_eq!(wait(&registry), Some(REOPEN_BACKOFF_FIRST * 2));

        std::fs::remove_file(stray).unwrap();
        registry.reconcile(&config, &image);
        let topic = registry.get("t").unwrap();
        assert!(!topic.is_offline(PartitionIndex(1)));
        assert!(led(&topic, PartitionIndex(1)).is_ok());
        assert_eq!(registry.reopen_after(), None);
    }

    #[test]
    fn reconciling_skips_topics_whose_part_of_the_image_is_shared_with_the_last_one() {
        let data = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::default();
        config.data_dir = data.path().to_path_buf();
        let registry = TopicRegistry::new(&config, crate::isr::proposal_channel().0).unwrap();
        let first = image(config.node_id);
        assert!(registry.reconcile(&config, &first).topics_changed);
        let before = registry.get("t").unwrap();

        // Another topic is created: `t` is the same `Arc` in the new image, and is skipped.
        let mut second = first.clone();
        let mut other = TopicImage::clone(&second.topics["t"]);
        other.name = "u".to_owned();
        other.id = Uuid::from_u64_pair(5, 6);
        second.topics.insert("u".to_owned(), Arc::new(other));
        assert!(registry.reconcile(&config, &second).topics_changed);
        assert!(Arc::ptr_eq(&registry.get("t").unwrap(), &before));
        assert!(registry.get("u").is_some());
        assert!(!registry.reconcile(&config, &second).topics_changed);

        // A new leader epoch for t-1 is a new `Arc` for `t`: it is walked and applied.
        let mut third = second.clone();
        Arc::make_mut(third.topics.get_mut("t").unwrap()).partitions[1].leader_epoch = 4;
        let reconciled = registry.reconcile(&config, &third);
        assert!(reconciled.topics_changed);
        let after = registry.get("t").unwrap();
        let epoch = |topic: &Topic, index| {
            topic
                .partition(PartitionIndex(index))
                .unwrap()
                .leader_epoch()
        };
        assert_eq!(epoch(&after, 1), LeaderEpoch(4));
        assert_eq!(epoch(&after, 0), LeaderEpoch(0));
        assert!(Arc::ptr_eq(&after.image, &third.topics["t"]));
        assert!(!registry.reconcile(&config, &third).topics_changed);
    }
}
