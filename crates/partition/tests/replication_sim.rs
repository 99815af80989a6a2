//! Deterministic simulation of replication and leader election: three replicas of one
//! partition, each a real [`Partition`] with a real `strom_log::Log` on disk, driven through the
//! same methods the broker calls (the leader's `append_as_leader` and `read_for_follower`, the
//! follower's `follower_position` and `apply_fetched`, `apply_replica_state`, ISR shrinks and
//! the proposals partitions send) and the controller's decisions in `MetadataImage::apply`,
//! over a simulated clock and network: messages are delayed, dropped, and lost to network
//! partitions; nodes are cut off and killed. Every run is reproducible from its seed
//! (`STROM_SIM_SEEDS=N` runs more seeds, `STROM_SIM_SEED=S` one).
//!
//! Invariants checked after the faults heal: every write acknowledged with acks=all is in the
//! final leader's log at its acknowledged offset with its value; the in-sync replicas agree
//! byte for byte below the high watermark; and at most one leader per epoch was ever seen.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use strom_log::{LogConfig, Recovery};
use strom_metadata::image::PartitionState;
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
use strom_partition::{
    AckWait, Acknowledgement, Acks, AppendOptions, FetchedData, FollowerPosition, FollowerRead,
    IsrProposal, Partition, PartitionId, ReadBound, ReplicaState,
};
use strom_protocol::batch::Batches;
use strom_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, PartitionIndex, TopicName};
use tokio::sync::mpsc;
use uuid::Uuid;

const NODES: [i32; 3] = [1, 2, 3];
const MIN_INSYNC: i32 = 2;
const SESSION_MS: u64 = 600;
const LAG_MS: u64 = 400;
const RUN_MS: u64 = 6_000;
const QUIET_MS: u64 = 3_000;
const FETCH_BYTES_MAX: usize = 64 * 1024;

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
        from: BrokerId,
        position: FollowerPosition,
        current_epoch: LeaderEpoch,
    },
    FetchAnswer {
        epoch: LeaderEpoch,
        data: Box<FetchedData>,
    },
}

struct Envelope {
    at: u64,
    to: i32,
    from: i32,
    message: Message,
}

/// One replica's process: its partition and where its ISR proposals arrive.
struct Running {
    partition: Arc<Partition>,
    proposals: mpsc::UnboundedReceiver<IsrProposal>,
}

struct Node {
    dir: PathBuf,
    /// None while the process is down.
    running: Option<Running>,
    /// The metadata this node has applied (it lags the controller's).
    version: u64,
    fetch_sent_at: Option<u64>,
    /// acks=all writes waiting: what the acknowledgement waits for, and the value.
    pending: Vec<(AckWait, u64)>,
}

impl Node {
    fn partition(&self) -> Option<Arc<Partition>> {
        self.running
            .as_ref()
            .map(|running| running.partition.clone())
    }
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

fn image_state(image: &MetadataImage) -> &PartitionState {
    &image.topics["sim"].partitions[0]
}

fn state_of(image: &MetadataImage) -> ReplicaState {
    let partition = image_state(image);
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    ReplicaState {
        replicas: ids(&partition.replicas),
        isr: ids(&partition.isr),
        leader: (partition.leader >= 0).then_some(BrokerId(partition.leader)),
        leader_epoch: LeaderEpoch(partition.leader_epoch),
        partition_epoch: partition.partition_epoch,
    }
}

fn start(dir: &Path, topic_id: Uuid, node: i32) -> Running {
    let id = PartitionId {
        topic: TopicName::new("sim").expect("valid name"),
        topic_id,
        index: PartitionIndex(0),
    };
    let (sender, proposals) = mpsc::unbounded_channel();
    let partition = Partition::open(
        dir,
        id,
        BrokerId(node),
        LogConfig::default(),
        Some(sender),
        Recovery::CrashAndSync,
    )
    .expect("the simulated partition opens");
    Running {
        partition: Arc::new(partition),
        proposals,
    }
}

/// One batch holding `value`, as a producer without an id sends it.
fn batch(value: u64) -> BytesMut {
    common::batch_of(&[Bytes::from(value.to_string())], None)
}

/// What the leader's answer to a follower's fetch carries, as the broker's Fetch handler
/// would put it on the wire.
fn answer(read: Result<FollowerRead, strom_partition::PartitionError>) -> FetchedData {
    let nothing = |error: ErrorCode| FetchedData {
        error,
        high_watermark: Offset(-1),
        log_start_offset: Offset(-1),
        diverging_epoch: None,
        records: None,
    };
    match read {
        Ok(FollowerRead::Diverging {
            epoch,
            end_offset,
            high_watermark,
            log_start_offset,
        }) => FetchedData {
            high_watermark,
            log_start_offset,
            diverging_epoch: Some((epoch, end_offset)),
            ..nothing(ErrorCode::None)
        },
        Ok(FollowerRead::Records(read)) => FetchedData {
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            records: Some(read.records),
            ..nothing(ErrorCode::None)
        },
        Ok(FollowerRead::OutOfRange {
            high_watermark,
            log_start_offset,
        }) => FetchedData {
            high_watermark,
            log_start_offset,
            ..nothing(ErrorCode::OffsetOutOfRange)
        },
        Err(error) => nothing(error.code()),
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
                endpoints: Vec::new(),
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
                running: Some(start(&dir, topic_id, id)),
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
        self.nodes[&id].running.is_some()
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
            let state = image_state(&self.image);
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
            let partition = node.partition().expect("up");
            partition.apply_replica_state(state.clone(), now);
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

    /// The ISR proposals partitions sent reach the controller from nodes that can reach it;
    /// either way the proposer reports back, as the broker's does once the quorum answers or
    /// the proposal times out.
    fn proposals(&mut self) {
        for id in NODES {
            let reaches = self.reaches_controller(id);
            let Some(running) = self.nodes.get_mut(&id).and_then(|n| n.running.as_mut()) else {
                continue;
            };
            let mut sent = Vec::new();
            while let Ok(proposal) = running.proposals.try_recv() {
                sent.push(proposal);
            }
            let partition = running.partition.clone();
            for proposal in sent {
                if reaches {
                    self.apply(MetadataCommand::AlterIsr {
                        topic: self.topic_id,
                        partition: proposal.partition.0,
                        leader: proposal.leader.0,
                        leader_epoch: proposal.leader_epoch.0,
                        isr: proposal.isr.iter().map(|id| id.0).collect(),
                    });
                }
                partition.isr_proposal_finished();
            }
        }
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
            node.running = None;
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
            let state = state_of(&self.image);
            let version = self.version;
            let node = self.nodes.get_mut(&id).expect("node exists");
            let running = start(&node.dir, self.topic_id, id);
            running.partition.apply_replica_state(state, now);
            node.running = Some(running);
            node.version = version;
        }
    }

    fn produce(&mut self) {
        if self.now_ms > RUN_MS || !self.rng.chance(300) {
            return;
        }
        let leader = image_state(&self.image).leader;
        if leader < 0 {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.send(0, leader, Message::Produce { value });
    }

    fn fetches(&mut self) {
        for id in NODES {
            let Some(partition) = self.nodes[&id].partition() else {
                continue;
            };
            let state = partition.replica_state();
            let leader = match state.leader {
                Some(leader) if leader != BrokerId(id) => leader,
                _ => continue,
            };
            let outstanding = self.nodes[&id]
                .fetch_sent_at
                .is_some_and(|sent| self.now_ms - sent < 50);
            if outstanding {
                continue;
            }
            let Some((position, _, current_epoch)) = partition.follower_position() else {
                continue;
            };
            self.nodes.get_mut(&id).expect("node exists").fetch_sent_at = Some(self.now_ms);
            let message = Message::Fetch {
                from: BrokerId(id),
                position,
                current_epoch,
            };
            self.send(id, leader.0, message);
        }
    }

    fn isr_maintenance(&mut self) {
        if !self.now_ms.is_multiple_of(100) {
            return;
        }
        let now = self.instant();
        for id in NODES {
            if let Some(partition) = self.nodes[&id].partition() {
                partition.shrink_isr_if_lagging(now, Duration::from_millis(LAG_MS));
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
            let Some(partition) = self.nodes[&envelope.to].partition() else {
                continue;
            };
            if cut {
                continue;
            }
            self.receive(envelope.to, &partition, envelope.message);
        }
    }

    fn receive(&mut self, id: i32, partition: &Arc<Partition>, message: Message) {
        match message {
            Message::Produce { value } => {
                let options = AppendOptions {
                    acks: Acks::All,
                    log_append_time: None,
                    min_insync_replicas: MIN_INSYNC,
                };
                // Refused (not the leader, too few in sync): the client would retry.
                if let Ok(appended) = partition.append_as_leader(&mut batch(value), options) {
                    let node = self.nodes.get_mut(&id).expect("node exists");
                    node.pending.push((appended.ack, value));
                }
            }
            Message::Fetch {
                from,
                position,
                current_epoch,
            } => {
                let data = match partition.check_leader(Some(current_epoch)) {
                    Err(error) => answer(Err(error)),
                    Ok(_) => answer(partition.read_for_follower(
                        from,
                        position,
                        FETCH_BYTES_MAX,
                        self.instant(),
                    )),
                };
                let message = Message::FetchAnswer {
                    epoch: current_epoch,
                    data: Box::new(data),
                };
                self.send(id, from.0, message);
            }
            Message::FetchAnswer { epoch, data } => {
                // Refusals are what a real fetcher backs off from; panics fail the test.
                let _ = partition.apply_fetched(epoch, *data);
                self.nodes.get_mut(&id).expect("node exists").fetch_sent_at = None;
            }
        }
    }

    /// acks=all answers: the group commit's fsync, then each pending write's acknowledgement
    /// as the produce handler would see it.
    fn acknowledge(&mut self) {
        for id in NODES {
            let Some(partition) = self.nodes[&id].partition() else {
                continue;
            };
            if self.nodes[&id].pending.is_empty() {
                continue;
            }
            partition.sync().expect("the simulated fsync succeeds");
            let node = self.nodes.get_mut(&id).expect("node exists");
            let mut acknowledged = Vec::new();
            node.pending
                .retain(|(ack, value)| match partition.acknowledgement(ack) {
                    Acknowledgement::Pending => true,
                    Acknowledgement::Done => {
                        acknowledged.push((Offset(ack.end.0 - 1), *value));
                        false
                    }
                    // NOT_LEADER_OR_FOLLOWER and the like: the client retries, maybe elsewhere.
                    Acknowledgement::Failed(_) => false,
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
        self.proposals();
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

    /// Every record of a replica's log below `end`: (offset, value), and the bytes.
    fn records(partition: &Partition, end: Offset) -> (Vec<(Offset, u64)>, Bytes) {
        let all = partition
            .read(
                partition.log_start_offset(),
                usize::MAX >> 1,
                ReadBound::LogEnd,
            )
            .expect("the whole log reads")
            .records;
        let below = Batches::new(&all)
            .take_while(|(header, _)| header.next_offset() <= end)
            .last()
            .map_or(0, |(_, range)| range.end);
        let bytes = all.slice(..below);
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
        let leader = state
            .leader
            .unwrap_or_else(|| panic!("seed {seed}: no leader after healing: {state:?}"));
        let partition = self.nodes[&leader.0].partition().expect("up");
        let high_watermark = partition.high_watermark();
        let (records, leader_bytes) = Sim::records(&partition, high_watermark);
        let by_offset: BTreeMap<Offset, u64> = records.into_iter().collect();
        for (offset, value) in &self.acknowledged {
            assert_eq!(
                by_offset.get(offset),
                Some(value),
                "seed {seed}: acknowledged value {value} at offset {offset} lost or replaced \
                 (leader {leader}, epoch {}, hw {high_watermark})",
                state.leader_epoch
            );
        }
        for member in &state.isr {
            let replica = self.nodes[&member.0].partition().expect("up");
            let (_, bytes) = Sim::records(&replica, high_watermark);
            assert!(
                bytes == leader_bytes,
                "seed {seed}: replica {member} differs from leader {leader} below the high \
                 watermark {high_watermark}"
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
