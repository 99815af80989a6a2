//! Deterministic simulation of replication and leader election: three replicas of one
//! partition, each a real [`Partition`] with a real `strom_log::Log` on disk, driven by the
//! same code the broker runs (the leader side of a follower fetch, the follower's
//! `apply_fetched`, the high watermark and ISR rules of `replication`, and the controller's
//! decisions in `MetadataImage::apply`), over a simulated clock and network: messages are
//! delayed, dropped, and lost to network partitions; nodes are cut off and killed. Every run
//! is reproducible from its seed (`STROM_SIM_SEEDS=N` runs more seeds, `STROM_SIM_SEED=S` one).
//!
//! Invariants checked after the faults heal: every write acknowledged with acks=all is in the
//! final leader's log at its acknowledged offset with its value; the in-sync replicas agree
//! byte for byte below the high watermark; and at most one leader per epoch was ever seen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::records::RecordBatchDecoder;
use strom_log::{Log, LogConfig};
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
use strom_types::{ErrorCode, Offset, PartitionIndex, TopicName};
use uuid::Uuid;

use crate::replication::{self, FollowerFetch, Progress};
use crate::topics::{Partition, ReplicaState};

const NODES: [i32; 3] = [1, 2, 3];
const MIN_INSYNC: usize = 2;
const SESSION_MS: u64 = 600;
const LAG_MS: u64 = 400;
const RUN_MS: u64 = 6_000;
const QUIET_MS: u64 = 3_000;

/// xorshift64*: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        // One roll per call, so a seed replays the same run.
        self.below(1000) < per_mille
    }
}

enum Message {
    Produce {
        value: u64,
    },
    Fetch {
        from: i32,
        fetch_offset: Offset,
        last_epoch: i32,
        current_epoch: i32,
    },
    FetchAnswer {
        epoch: i32,
        data: Box<PartitionData>,
    },
}

struct Envelope {
    at: u64,
    to: i32,
    from: i32,
    message: Message,
}

struct Node {
    dir: PathBuf,
    /// None while the process is down.
    partition: Option<Arc<Partition>>,
    /// The metadata this node has applied (it lags the controller's).
    version: u64,
    fetch_sent_at: Option<u64>,
    /// acks=all writes waiting: (offset the write needs below the HW, leader epoch, value).
    pending: Vec<(Offset, i32, u64)>,
}

struct Sim {
    rng: Rng,
    now_ms: u64,
    clock: Instant,
    topic_id: Uuid,
    /// The controller's image and its version (bumped on every change).
    image: MetadataImage,
    version: u64,
    nodes: BTreeMap<i32, Node>,
    network: Vec<Envelope>,
    cut_until: BTreeMap<i32, u64>,
    down_until: BTreeMap<i32, u64>,
    last_heartbeat: BTreeMap<i32, u64>,
    acknowledged: Vec<(Offset, u64)>,
    leaders_by_epoch: BTreeMap<i32, i32>,
    next_value: u64,
}

fn state_of(image: &MetadataImage) -> ReplicaState {
    let partition = &image.topics["sim"].partitions[0];
    ReplicaState {
        replicas: partition.replicas.clone(),
        isr: partition.isr.clone(),
        leader: partition.leader,
        leader_epoch: partition.leader_epoch,
        partition_epoch: partition.partition_epoch,
    }
}

fn open_partition(dir: &Path, topic_id: Uuid) -> Partition {
    let log = Log::open(dir, LogConfig::default()).expect("the simulated log opens");
    Partition {
        topic: TopicName::new("sim").expect("valid name"),
        topic_id,
        index: PartitionIndex(0),
        log: parking_lot::Mutex::new(log),
        producers: Default::default(),
        state: parking_lot::RwLock::new(ReplicaState {
            replicas: Vec::new(),
            isr: Vec::new(),
            leader: -1,
            leader_epoch: -1,
            partition_epoch: -1,
        }),
        replication: Progress::default(),
        sync: Default::default(),
    }
}

impl Sim {
    fn new(seed: u64, root: &Path) -> Sim {
        let topic_id = Uuid::from_u64_pair(seed, 7);
        let mut image = MetadataImage::default();
        image.apply(&MetadataCommand::Bootstrap {
            cluster_id: "sim".into(),
        });
        for id in NODES {
            image.apply(&MetadataCommand::RegisterBroker {
                id,
                incarnation: Uuid::from_u64_pair(seed, id as u64),
                host: format!("node{id}"),
                port: 9092,
                rack: None,
            });
        }
        let created = image.apply(&MetadataCommand::CreateTopic {
            name: "sim".into(),
            id: topic_id,
            partitions: 1,
            replication_factor: 3,
            assignments: Some(vec![NODES.to_vec()]),
            configs: BTreeMap::new(),
        });
        assert!(
            matches!(created, CommandResult::TopicCreated { .. }),
            "{created:?}"
        );
        let mut nodes = BTreeMap::new();
        for id in NODES {
            let dir = root.join(format!("node{id}"));
            let node = Node {
                partition: Some(Arc::new(open_partition(&dir, topic_id))),
                dir,
                version: 0,
                fetch_sent_at: None,
                pending: Vec::new(),
            };
            nodes.insert(id, node);
        }
        Sim {
            rng: Rng::new(seed),
            now_ms: 0,
            clock: Instant::now(),
            topic_id,
            image,
            version: 1,
            nodes,
            network: Vec::new(),
            cut_until: BTreeMap::new(),
            down_until: BTreeMap::new(),
            last_heartbeat: NODES.iter().map(|id| (*id, 0)).collect(),
            acknowledged: Vec::new(),
            leaders_by_epoch: BTreeMap::new(),
            next_value: 0,
        }
    }

    fn instant(&self) -> Instant {
        self.clock + Duration::from_millis(self.now_ms)
    }

    fn is_cut(&self, id: i32) -> bool {
        self.cut_until
            .get(&id)
            .is_some_and(|until| *until > self.now_ms)
    }

    fn is_up(&self, id: i32) -> bool {
        self.nodes[&id].partition.is_some()
    }

    /// The controller sits with the majority: a cut-off or dead node cannot reach it.
    fn reaches_controller(&self, id: i32) -> bool {
        self.is_up(id) && !self.is_cut(id)
    }

    fn send(&mut self, from: i32, to: i32, message: Message) {
        if self.rng.chance(30) {
            return; // Dropped.
        }
        let at = self.now_ms + 1 + self.rng.below(15);
        self.network.push(Envelope {
            at,
            to,
            from,
            message,
        });
    }

    fn apply(&mut self, command: MetadataCommand) {
        let before = self.image.clone();
        self.image.apply(&command);
        if self.image != before {
            self.version += 1;
            let state = state_of(&self.image);
            if state.leader >= 0 {
                let previous = self
                    .leaders_by_epoch
                    .insert(state.leader_epoch, state.leader);
                assert!(
                    previous.is_none_or(|leader| leader == state.leader),
                    "two leaders in epoch {}: {previous:?} and {}",
                    state.leader_epoch,
                    state.leader
                );
            }
        }
    }

    /// Metadata reaches every node that can hear the controller (brokers fetch it often).
    fn propagate_metadata(&mut self) {
        let now = self.instant();
        let state = state_of(&self.image);
        for id in NODES {
            if !self.reaches_controller(id) || self.nodes[&id].version == self.version {
                continue;
            }
            let node = self.nodes.get_mut(&id).expect("node exists");
            node.version = self.version;
            let partition = node.partition.as_ref().expect("up").clone();
            let new_epoch = {
                let mut current = partition.state.write();
                let new_epoch = current.leader_epoch != state.leader_epoch;
                *current = state.clone();
                new_epoch
            };
            if new_epoch {
                replication::on_new_leader_epoch_at(&partition, id, now);
            } else {
                replication::on_isr_change(&partition, id);
            }
        }
    }

    fn controller_tick(&mut self) {
        for id in NODES {
            if self.reaches_controller(id) {
                self.last_heartbeat.insert(id, self.now_ms);
            }
            let silent = self.now_ms - self.last_heartbeat[&id] > SESSION_MS;
            let fenced = self.image.brokers[&id].fenced;
            if silent && !fenced {
                self.apply(MetadataCommand::FenceBroker { id });
            } else if !silent && fenced {
                self.apply(MetadataCommand::UnfenceBroker { id });
            }
        }
    }

    fn propose_isr(&mut self, leader: i32, isr: Vec<i32>) {
        if !self.reaches_controller(leader) {
            return;
        }
        let state = self.nodes[&leader].partition.as_ref().expect("up").state();
        self.apply(MetadataCommand::AlterIsr {
            topic: self.topic_id,
            partition: 0,
            leader,
            leader_epoch: state.leader_epoch,
            isr,
        });
    }

    fn faults(&mut self) {
        let faulty = NODES.iter().any(|id| self.is_cut(*id) || !self.is_up(*id));
        if faulty || self.now_ms > RUN_MS {
            return;
        }
        let id = NODES[self.rng.below(3) as usize];
        if self.rng.chance(2) {
            let until = self.now_ms + 200 + self.rng.below(1500);
            self.cut_until.insert(id, until);
        } else if self.rng.chance(2) {
            let node = self.nodes.get_mut(&id).expect("node exists");
            node.partition = None;
            node.pending.clear();
            node.fetch_sent_at = None;
            let until = self.now_ms + 50 + self.rng.below(1000);
            self.down_until.insert(id, until);
        }
    }

    fn restarts(&mut self) {
        let now = self.instant();
        for id in NODES {
            let due = self
                .down_until
                .get(&id)
                .is_some_and(|until| *until <= self.now_ms);
            if !due || self.is_up(id) {
                continue;
            }
            self.down_until.remove(&id);
            let node = self.nodes.get_mut(&id).expect("node exists");
            let partition = Arc::new(open_partition(&node.dir, self.topic_id));
            *partition.state.write() = state_of(&self.image);
            replication::on_new_leader_epoch_at(&partition, id, now);
            node.partition = Some(partition);
            node.version = self.version;
        }
    }

    fn produce(&mut self) {
        if self.now_ms > RUN_MS || !self.rng.chance(300) {
            return;
        }
        let leader = state_of(&self.image).leader;
        if leader < 0 {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.send(0, leader, Message::Produce { value });
    }

    fn fetches(&mut self) {
        for id in NODES {
            let Some(partition) = self.nodes[&id].partition.clone() else {
                continue;
            };
            let state = partition.state();
            if state.leader < 0 || state.leader == id {
                continue;
            }
            let outstanding = self.nodes[&id]
                .fetch_sent_at
                .is_some_and(|sent| self.now_ms - sent < 50);
            if outstanding {
                continue;
            }
            let (fetch_offset, last_epoch) = {
                let log = partition.log.lock();
                (log.log_end_offset(), log.latest_epoch().unwrap_or(-1))
            };
            self.nodes.get_mut(&id).expect("node exists").fetch_sent_at = Some(self.now_ms);
            let message = Message::Fetch {
                from: id,
                fetch_offset,
                last_epoch,
                current_epoch: state.leader_epoch,
            };
            self.send(id, state.leader, message);
        }
    }

    fn isr_maintenance(&mut self) {
        if !self.now_ms.is_multiple_of(100) {
            return;
        }
        let now = self.instant();
        for id in NODES {
            let Some(partition) = self.nodes[&id].partition.clone() else {
                continue;
            };
            let state = partition.state();
            if state.leader != id || state.isr.len() <= 1 {
                continue;
            }
            let lagging =
                replication::lagging_followers(&partition, id, now, Duration::from_millis(LAG_MS));
            if !lagging.is_empty() {
                let isr = state
                    .isr
                    .iter()
                    .copied()
                    .filter(|m| !lagging.contains(m))
                    .collect();
                self.propose_isr(id, isr);
            }
        }
    }

    fn deliver(&mut self) {
        let now_ms = self.now_ms;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|e| e.at <= now_ms);
        self.network = later;
        for envelope in due {
            let cut = self.is_cut(envelope.to) || (envelope.from > 0 && self.is_cut(envelope.from));
            let Some(partition) = self.nodes[&envelope.to].partition.clone() else {
                continue;
            };
            if cut {
                continue;
            }
            self.receive(envelope.to, envelope.from, &partition, envelope.message);
        }
    }

    fn receive(&mut self, id: i32, from: i32, partition: &Arc<Partition>, message: Message) {
        match message {
            Message::Produce { value } => {
                let state = partition.state();
                if state.leader != id || state.isr.len() < MIN_INSYNC {
                    return;
                }
                let key = Bytes::from_static(b"k");
                let record = (key, Some(Bytes::from(value.to_string())));
                let mut batch = crate::groups::encode_batch(vec![record]).expect("encodes");
                let end = {
                    let mut log = partition.log.lock();
                    log.append_with_epoch(&mut batch, None, state.leader_epoch)
                        .expect("the simulated append succeeds");
                    log.log_end_offset()
                };
                replication::advance_high_watermark(partition, id, end);
                let node = self.nodes.get_mut(&id).expect("node exists");
                node.pending.push((end, state.leader_epoch, value));
            }
            Message::Fetch {
                from: follower,
                fetch_offset,
                last_epoch,
                current_epoch,
            } => {
                let state = partition.state();
                let base = PartitionData::default().with_partition_index(0);
                let data = if state.leader != id || state.leader_epoch != current_epoch {
                    base.with_error_code(ErrorCode::NotLeaderOrFollower.code())
                } else {
                    let now = self.instant();
                    match replication::on_follower_fetch(
                        partition,
                        id,
                        follower,
                        fetch_offset,
                        last_epoch,
                        now,
                    ) {
                        FollowerFetch::Diverging { epoch, end } => base
                            .with_high_watermark(partition.replication.high_watermark().0)
                            .with_diverging_epoch(
                                EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end.0),
                            ),
                        FollowerFetch::Serve {
                            log_end, rejoin, ..
                        } => {
                            if let Some(isr) = rejoin {
                                self.propose_isr(id, isr);
                            }
                            let log = partition.log.lock();
                            let read = log
                                .read(fetch_offset, 64 * 1024, log_end)
                                .expect("an in-range read succeeds");
                            base.with_high_watermark(partition.replication.high_watermark().0)
                                .with_log_start_offset(log.log_start_offset().0)
                                .with_records(Some(read.records))
                        }
                        FollowerFetch::OutOfRange => {
                            let log = partition.log.lock();
                            base.with_error_code(ErrorCode::OffsetOutOfRange.code())
                                .with_high_watermark(partition.replication.high_watermark().0)
                                .with_log_start_offset(log.log_start_offset().0)
                        }
                    }
                };
                self.send(
                    id,
                    follower,
                    Message::FetchAnswer {
                        epoch: current_epoch,
                        data: Box::new(data),
                    },
                );
            }
            Message::FetchAnswer { epoch, data } => {
                replication::apply_fetched(partition, epoch, *data);
                self.nodes.get_mut(&id).expect("node exists").fetch_sent_at = None;
                let _ = from;
            }
        }
    }

    /// acks=all answers: a write is acknowledged once it is below the high watermark of a
    /// leader still in the epoch it was appended in.
    fn acknowledge(&mut self) {
        for id in NODES {
            let Some(partition) = self.nodes[&id].partition.clone() else {
                continue;
            };
            let state = partition.state();
            let high_watermark = partition.replication.high_watermark();
            let node = self.nodes.get_mut(&id).expect("node exists");
            let mut acknowledged = Vec::new();
            node.pending.retain(|(end, epoch, value)| {
                if state.leader != id || state.leader_epoch != *epoch {
                    return false; // NOT_LEADER_OR_FOLLOWER: the client retries, maybe elsewhere.
                }
                if high_watermark >= *end {
                    acknowledged.push((Offset(end.0 - 1), *value));
                    return false;
                }
                true
            });
            self.acknowledged.extend(acknowledged);
        }
    }

    fn step(&mut self) {
        self.now_ms += 1;
        self.faults();
        self.restarts();
        self.controller_tick();
        self.propagate_metadata();
        self.produce();
        self.fetches();
        self.deliver();
        self.isr_maintenance();
        self.acknowledge();
    }

    fn run(&mut self) {
        while self.now_ms < RUN_MS + QUIET_MS {
            if self.now_ms == RUN_MS {
                // Heal everything and let the cluster settle.
                self.cut_until.clear();
                for until in self.down_until.values_mut() {
                    *until = (*until).min(RUN_MS);
                }
            }
            self.step();
        }
    }

    /// Every record of a replica's log below `end`: (offset, value).
    fn records(partition: &Partition, end: Offset) -> (Vec<(Offset, u64)>, Bytes) {
        let log = partition.log.lock();
        let bytes = log
            .read(log.log_start_offset(), usize::MAX >> 1, end)
            .expect("the whole log reads")
            .records;
        let mut decoding = bytes.clone();
        let batches = RecordBatchDecoder::decode_all(&mut decoding).expect("batches decode");
        let records = batches
            .iter()
            .flat_map(|batch| &batch.records)
            .map(|record| {
                let value = record.value.as_ref().expect("values are set");
                let value = std::str::from_utf8(value)
                    .expect("utf-8")
                    .parse()
                    .expect("number");
                (Offset(record.offset), value)
            })
            .collect();
        (records, bytes)
    }

    fn check(&self, seed: u64) {
        let state = state_of(&self.image);
        assert!(
            state.leader >= 0,
            "seed {seed}: no leader after healing: {state:?}"
        );
        let leader = self.nodes[&state.leader].partition.as_ref().expect("up");
        let high_watermark = leader.replication.high_watermark();
        let (records, leader_bytes) = Sim::records(leader, high_watermark);
        let by_offset: BTreeMap<Offset, u64> = records.into_iter().collect();
        for (offset, value) in &self.acknowledged {
            assert_eq!(
                by_offset.get(offset),
                Some(value),
                "seed {seed}: acknowledged value {value} at offset {offset} lost or replaced \
                 (leader {}, epoch {}, hw {high_watermark})",
                state.leader,
                state.leader_epoch
            );
        }
        for member in &state.isr {
            let partition = self.nodes[member].partition.as_ref().expect("up");
            let (_, bytes) = Sim::records(partition, high_watermark);
            assert!(
                bytes == leader_bytes,
                "seed {seed}: replica {member} differs from leader {} below the high watermark \
                 {high_watermark}",
                state.leader
            );
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("STROM_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("STROM_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    (1..=count).collect()
}

#[test]
fn acknowledged_writes_survive_faults_and_replicas_agree() {
    let mut faults_seen = 0;
    let mut acknowledged = 0;
    for seed in seeds() {
        let root = tempfile::tempdir().expect("temporary directory");
        let mut sim = Sim::new(seed, root.path());
        sim.run();
        sim.check(seed);
        eprintln!(
            "seed {seed}: {} writes offered, {} acknowledged, leader epochs {:?}, final {:?}",
            sim.next_value,
            sim.acknowledged.len(),
            sim.leaders_by_epoch,
            state_of(&sim.image)
        );
        faults_seen += sim.leaders_by_epoch.len();
        acknowledged += sim.acknowledged.len();
    }
    assert!(acknowledged > 0, "the simulation acknowledged nothing");
    assert!(
        faults_seen > 1,
        "no leader change in any seed: the faults did nothing"
    );
}
