//! [`MetadataQuorum`]: one node's part in the metadata quorum, and the thin runtime around
//! openraft: it opens the storage, starts Raft and the controller listener, forms a new
//! cluster, routes requests to the leader, and runs the timers (the leader's controller loop,
//! a broker's heartbeats, a learner's join).
//!
//! Lifecycle: [`MetadataQuorum::start`] makes a [`Node`] shared (behind an `Arc`) by the
//! listener's request tasks and the background tasks; [`MetadataQuorum::shutdown`] aborts the
//! tasks, stops Raft, and waits for the log writer to close its files. Raft itself is run by a
//! [`Supervisor`], which starts a new one when a storage error stopped it; every use takes the
//! current one, and waits follow metrics across restarts. While it is down this node does not
//! lead, so requests get NotLeader, and a proposal it was leading gets Interrupted: both
//! retriable. The liveness tracker and the leader balancer are the only mutable state of its
//! own: each lives behind a mutex, made afresh for each term in which this node leads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

use crate::command::{CommandResult, MetadataCommand};
use crate::image::MetadataImage;
use crate::quorum::balance::LeaderBalancer;
use crate::quorum::config::{QuorumConfig, QuorumRole, QuorumStatus};
use crate::quorum::error::QuorumError;
use crate::quorum::health::Health;
use crate::quorum::limits::{
    CONTROLLER_TICK_MS_MAX, LEADER_ATTEMPTS_MAX, LEADER_CALL_TIMEOUT_MS, PROPOSE_TIMEOUT_MS,
    SHUTDOWN_WAIT_MS, SNAPSHOT_SEND_TIMEOUT_MS,
};
use crate::quorum::liveness::BrokerLiveness;
use crate::quorum::network::rpc::{Request, Response};
use crate::quorum::network::{self, Handler, Peers};
use crate::quorum::storage::{self, StorageContext};
use crate::quorum::supervisor::Supervisor;
use crate::quorum::types::{kafka_id, raft_id, NodeId, Raft, Snapshot};

/// One node's handle on the metadata quorum.
pub struct MetadataQuorum {
    node: Arc<Node>,
    /// The listener, the controller loop and (on a learner) the join loop.
    tasks: Vec<JoinHandle<()>>,
    /// The broker heartbeat loop, once the broker is registered.
    heartbeat: Mutex<Option<JoinHandle<()>>>,
}

/// What the request handlers and background tasks share.
struct Node {
    id: NodeId,
    config: QuorumConfig,
    /// The address other nodes reach this one at (empty for a single node).
    own_addr: String,
    supervisor: Supervisor,
    images: watch::Receiver<Arc<MetadataImage>>,
    peers: Arc<Peers>,
    /// The tracker of the term in which this node leads, made on first use in that term.
    liveness: Mutex<Option<(u64, BrokerLiveness)>>,
    /// The preferred-leader balancer of the term in which this node leads, made like
    /// `liveness`; only the controller loop uses it.
    balancer: Mutex<Option<(u64, LeaderBalancer)>>,
}

fn stopped(error: impl std::fmt::Display) -> QuorumError {
    QuorumError::Stopped(error.to_string())
}

impl MetadataQuorum {
    /// Opens the storage under `<data_dir>/__cluster_metadata/`, starts Raft and, if the
    /// cluster has other nodes, the controller listener on `controller_listen`. A voter of a
    /// brand-new cluster initializes it with the whole voter set (every voter does the same,
    /// which openraft allows); a broker-only node asks the leader to add it as a learner.
    pub async fn start(config: QuorumConfig) -> Result<MetadataQuorum, QuorumError> {
        config.validate()?;
        let listener = match config.controller_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| QuorumError::Config(format!("cannot listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        MetadataQuorum::start_with_listener(config, listener).await
    }

    /// Like [`MetadataQuorum::start`], on a listener the caller has bound already (tests bind
    /// port 0 first to learn their ports). `controller_listen` is ignored.
    pub async fn start_with_listener(
        config: QuorumConfig,
        listener: Option<TcpListener>,
    ) -> Result<MetadataQuorum, QuorumError> {
        MetadataQuorum::start_in(config, listener, StorageContext::default()).await
    }

    /// Like [`MetadataQuorum::start_with_listener`], with the storage's faults injected from
    /// `context`.
    #[cfg(test)]
    pub(crate) async fn start_with_faults(
        config: QuorumConfig,
        listener: Option<TcpListener>,
        context: StorageContext,
    ) -> Result<MetadataQuorum, QuorumError> {
        MetadataQuorum::start_in(config, listener, context).await
    }

    async fn start_in(
        config: QuorumConfig,
        listener: Option<TcpListener>,
        context: StorageContext,
    ) -> Result<MetadataQuorum, QuorumError> {
        config.validate()?;
        let single = config.voters.is_empty();
        if !single && listener.is_none() {
            return Err(QuorumError::Config(
                "a node of a multi-node cluster needs a controller listener".into(),
            ));
        }
        let id = raft_id(config.node_id);
        let own_addr = own_address(&config, listener.as_ref())?;
        let dir = storage::metadata_dir(&config.data_dir);
        let peers = Arc::new(Peers::new(
            config.tls.as_ref().map(|tls| tls.client.clone()),
        ));
        let raft_config = raft_config(&config)?;
        let supervisor = Supervisor::start(id, raft_config, peers.clone(), dir, context).await?;
        let images = supervisor.images();
        let node = Arc::new(Node {
            id,
            config,
            own_addr,
            supervisor,
            images,
            peers,
            liveness: Mutex::new(None),
            balancer: Mutex::new(None),
        });
        node.form_cluster().await?;
        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            let tls = node.config.tls.as_ref().map(|tls| tls.server.clone());
            tasks.push(tokio::spawn(network::serve(listener, tls, node.clone())));
        }
        tasks.push(tokio::spawn(node.clone().supervise()));
        tasks.push(tokio::spawn(node.clone().controller_loop()));
        if !node.config.is_voter {
            tasks.push(tokio::spawn(node.clone().join_as_learner()));
        }
        Ok(MetadataQuorum {
            node,
            tasks,
            heartbeat: Mutex::new(None),
        })
    }

    /// The image as of the last entry applied on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.node.image()
    }

    /// Every image this node applies from now on, starting with the current one.
    pub fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.node.images.clone()
    }

    /// Proposes `command` from any node: the leader appends it; this call returns once it is
    /// committed and applied on this node's image, so the caller sees its effect right after.
    /// A proposal that times out may still be committed.
    pub async fn propose(&self, command: MetadataCommand) -> Result<CommandResult, QuorumError> {
        self.node.propose(command).await
    }

    /// The current controller leader, as this node knows it.
    pub fn leader(&self) -> Option<i32> {
        self.node.current_leader().map(kafka_id)
    }

    /// The quorum as this node sees it, for `strom cluster info`.
    pub fn status(&self) -> QuorumStatus {
        status_of(
            &self.node.raft().metrics().borrow(),
            self.node.config.node_id,
        )
    }

    /// Whether this node's metadata log works; Unhealthy while a write keeps failing or Raft
    /// is being restarted after one did. For readiness checks.
    pub fn health(&self) -> Health {
        self.node.supervisor.health().health()
    }

    /// Every change of [`MetadataQuorum::health`] from now on.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.node.supervisor.health().subscribe()
    }

    /// Waits until a leader is known and the cluster has its id.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), QuorumError> {
        let deadline = Instant::now() + timeout;
        let mut metrics = self.node.supervisor.metrics();
        let mut images = self.node.images.clone();
        loop {
            let leader_known = known_leader(&metrics.latest(), self.node.id).is_some();
            let cluster_named = images.borrow_and_update().cluster_id.is_some();
            if leader_known && cluster_named {
                return Ok(());
            }
            let changed = timeout_at(deadline, async {
                tokio::select! {
                    changed = metrics.changed() => changed,
                    changed = images.changed() => changed.is_ok(),
                }
            });
            match changed.await {
                Err(_) => {
                    return Err(QuorumError::Timeout {
                        what: "waiting for a controller leader and a cluster id".into(),
                        timeout_ms: timeout.as_millis() as u64,
                    })
                }
                Ok(false) => return Err(stopped("Raft stopped while starting")),
                Ok(true) => {}
            }
        }
    }

    /// Registers this node as broker `id` (a new incarnation) and starts heartbeating the
    /// controller leader every `broker_heartbeat_interval_ms`.
    pub async fn register_broker(
        &self,
        id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        endpoints: Vec<crate::command::Endpoint>,
    ) -> Result<(), QuorumError> {
        let incarnation = Uuid::new_v4();
        let command = MetadataCommand::RegisterBroker {
            id,
            incarnation,
            host,
            port,
            rack,
            endpoints,
        };
        if let CommandResult::Refused(error) = self.propose(command).await? {
            return Err(QuorumError::Failed(error.to_string()));
        }
        let task = tokio::spawn(self.node.clone().heartbeat_loop(id, incarnation));
        if let Some(previous) = self.lock_heartbeat().replace(task) {
            previous.abort();
        }
        Ok(())
    }

    /// Stops heartbeating and proposes broker `id`'s controlled shutdown, which moves its
    /// leaderships away and fences it. Call before the broker stops serving.
    pub async fn controlled_shutdown(&self, id: i32) -> Result<(), QuorumError> {
        if let Some(task) = self.lock_heartbeat().take() {
            task.abort();
        }
        match self
            .propose(MetadataCommand::ControlledShutdown { id })
            .await?
        {
            CommandResult::Refused(error) => Err(QuorumError::Failed(error.to_string())),
            _ => Ok(()),
        }
    }

    /// Stops this node's part in the quorum and closes its files.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.lock_heartbeat().take() {
            task.abort();
        }
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        self.node
            .supervisor
            .shutdown(Duration::from_millis(SHUTDOWN_WAIT_MS))
            .await;
    }

    fn lock_heartbeat(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.heartbeat.lock().expect("never held across a panic")
    }
}

/// Dropped without [`MetadataQuorum::shutdown`] (a panic, a test failing): the background
/// tasks stop at least. Raft stops once its last handle, held by them, is gone.
impl Drop for MetadataQuorum {
    fn drop(&mut self) {
        if let Some(task) = self.lock_heartbeat().take() {
            task.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The address other nodes reach this one at: its entry in the voter list, else (a learner)
/// the listener's address, else (a single node without a listener) nothing.
fn own_address(
    config: &QuorumConfig,
    listener: Option<&TcpListener>,
) -> Result<String, QuorumError> {
    if let Some((_, addr)) = config.voters.iter().find(|(id, _)| *id == config.node_id) {
        return Ok(addr.clone());
    }
    match listener {
        Some(listener) => listener
            .local_addr()
            .map(|addr| addr.to_string())
            .map_err(|e| QuorumError::Config(format!("the controller listener: {e}"))),
        None => Ok(String::new()),
    }
}

fn raft_config(config: &QuorumConfig) -> Result<openraft::Config, QuorumError> {
    let election = config.election_timeout_ms;
    openraft::Config {
        cluster_name: "strom".into(),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        heartbeat_interval: (election / 4).max(5),
        install_snapshot_timeout: SNAPSHOT_SEND_TIMEOUT_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_interval_entries),
        // Keep one interval of entries behind the snapshot, so a follower that lags a little
        // catches up from the log rather than a whole snapshot.
        max_in_snapshot_log_to_keep: config.snapshot_interval_entries,
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|e| QuorumError::Config(e.to_string()))
}

/// The leader as this node knows it. A node counts itself only once a quorum has acknowledged
/// its leadership: openraft restores a restarted leader as leader at once, before it learns
/// that the others have moved on to a later term.
fn known_leader(metrics: &RaftMetrics<NodeId, BasicNode>, own: NodeId) -> Option<NodeId> {
    match metrics.current_leader {
        Some(leader) if leader == own => (metrics.state == ServerState::Leader
            && metrics.millis_since_quorum_ack.is_some())
        .then_some(leader),
        other => other,
    }
}

fn role_of(metrics: &RaftMetrics<NodeId, BasicNode>) -> QuorumRole {
    match metrics.state {
        ServerState::Leader => QuorumRole::Leader,
        ServerState::Follower => QuorumRole::Follower,
        ServerState::Candidate => QuorumRole::Candidate,
        ServerState::Learner => QuorumRole::Learner,
        ServerState::Shutdown => QuorumRole::Shutdown,
    }
}

fn status_of(metrics: &RaftMetrics<NodeId, BasicNode>, node_id: i32) -> QuorumStatus {
    let membership = metrics.membership_config.membership();
    let last_log_index = metrics.last_log_index;
    let replication_lag = metrics
        .replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != metrics.id)
        .map(|(id, matched)| {
            let lag = matched.map(|m| last_log_index.unwrap_or(0).saturating_sub(m.index));
            (kafka_id(*id), lag)
        })
        .collect();
    QuorumStatus {
        node_id,
        role: role_of(metrics),
        leader: known_leader(metrics, metrics.id).map(kafka_id),
        term: metrics.current_term,
        voters: membership.voter_ids().map(kafka_id).collect(),
        learners: membership.learner_ids().map(kafka_id).collect(),
        last_log_index,
        last_applied: metrics.last_applied.map(|id| id.index),
        snapshot_index: metrics.snapshot.map(|id| id.index),
        replication_lag,
    }
}

/// A cluster id like Kafka's: 16 random bytes in URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut id = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            id.push(ALPHABET[((bits >> held) & 63) as usize] as char);
        }
    }
    if held > 0 {
        id.push(ALPHABET[((bits << (6 - held)) & 63) as usize] as char);
    }
    id
}

impl Node {
    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// The current Raft (see [`Supervisor::raft`]).
    fn raft(&self) -> Raft {
        self.supervisor.raft()
    }

    /// Forms a brand-new cluster (a voter with an empty log initializes it with the voter set),
    /// and makes a lone voter that restarts elect itself at once instead of after a timeout.
    /// Runs again after the supervisor restarts Raft.
    async fn form_cluster(&self) -> Result<(), QuorumError> {
        if !self.config.is_voter {
            return Ok(());
        }
        let raft = self.raft();
        if raft.is_initialized().await.map_err(stopped)? {
            let voters: BTreeSet<NodeId> = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            if voters == BTreeSet::from([self.id]) {
                raft.trigger().elect().await.map_err(stopped)?;
            }
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = if self.config.voters.is_empty() {
            BTreeMap::from([(self.id, BasicNode::new(&self.own_addr))])
        } else {
            self.config
                .voters
                .iter()
                .map(|(id, addr)| (raft_id(*id), BasicNode::new(addr)))
                .collect()
        };
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(stopped(error)),
        }
    }

    fn current_leader(&self) -> Option<NodeId> {
        known_leader(&self.raft().metrics().borrow(), self.id)
    }

    /// The term in which this node leads, if it does (and a quorum has acknowledged it).
    fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        (known_leader(&metrics, self.id) == Some(self.id)).then_some(metrics.current_term)
    }

    fn with_liveness<T>(&self, term: u64, use_it: impl FnOnce(&mut BrokerLiveness) -> T) -> T {
        let mut slot = self.liveness.lock().expect("never held across a panic");
        if slot.as_ref().is_none_or(|(t, _)| *t != term) {
            let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
            *slot = Some((term, BrokerLiveness::new(timeout)));
        }
        use_it(&mut slot.as_mut().expect("just made").1)
    }

    /// This term's balancer, made on its first use in the term.
    fn balance_tick(&self, term: u64, image: &MetadataImage) -> Option<MetadataCommand> {
        let mut slot = self.balancer.lock().expect("never held across a panic");
        if slot.as_ref().is_none_or(|(t, _)| *t != term) {
            *slot = Some((term, LeaderBalancer::new(self.config.leader_balance)));
        }
        let balancer = &mut slot.as_mut().expect("just made").1;
        balancer.tick(std::time::Instant::now(), image)
    }

    /// The controller address of node `id`: from the replicated membership, else the
    /// configured voters.
    fn address_of(&self, id: NodeId) -> Option<String> {
        let from_membership = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone());
        from_membership.filter(|addr| !addr.is_empty()).or_else(|| {
            self.config
                .voters
                .iter()
                .find(|(voter, _)| raft_id(*voter) == id)
                .map(|(_, addr)| addr.clone())
        })
    }

    async fn wait_for_leader(&self, until: Instant) -> Option<NodeId> {
        let mut metrics = self.supervisor.metrics();
        timeout_at(until, async {
            loop {
                if let Some(leader) = known_leader(&metrics.latest(), self.id) {
                    return Some(leader);
                }
                if !metrics.changed().await {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Sends `request` to the controller leader (answering it here if this node leads),
    /// following NotLeader hints and retrying unreachable leaders, a bounded number of times.
    /// With `idempotent` false, a request that may have reached the leader is not sent again.
    async fn call_leader(
        &self,
        request: Request,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<Response, QuorumError> {
        let mut hint: Option<NodeId> = None;
        let mut last_error = String::from("no leader was found in time");
        for attempt in 0..LEADER_ATTEMPTS_MAX {
            if Instant::now() >= deadline {
                break;
            }
            let Some(target) = self.pick_target(hint.take(), attempt, deadline).await else {
                continue;
            };
            let response = if target == self.id {
                self.handle(request.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
            } else {
                let Some(addr) = self.address_of(target) else {
                    last_error = format!("node {target} has no known address");
                    backoff(attempt, deadline).await;
                    continue;
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                let timeout = remaining.min(Duration::from_millis(LEADER_CALL_TIMEOUT_MS));
                match self.peers.call(&addr, request.clone(), timeout).await {
                    Ok(response) => response,
                    Err(error) if idempotent || error.not_sent() => {
                        last_error = error.to_string();
                        backoff(attempt, deadline).await;
                        continue;
                    }
                    Err(error) => return Err(QuorumError::Failed(error.to_string())),
                }
            };
            match response {
                Response::NotLeader { leader } => {
                    last_error = format!("node {target} is not the leader");
                    hint = leader.filter(|leader| *leader != target);
                    if hint.is_none() {
                        backoff(attempt, deadline).await;
                    }
                }
                other => return Ok(other),
            }
        }
        Err(QuorumError::NoLeader(last_error))
    }

    /// Whom to ask next: the hinted leader, the known leader, one that appears shortly, or
    /// else the configured voters in turn.
    async fn pick_target(
        &self,
        hint: Option<NodeId>,
        attempt: u32,
        deadline: Instant,
    ) -> Option<NodeId> {
        if let Some(target) = hint.or_else(|| self.current_leader()) {
            return Some(target);
        }
        let election = Duration::from_millis(self.config.election_timeout_ms * 2);
        let until = deadline.min(Instant::now() + election);
        if let Some(leader) = self.wait_for_leader(until).await {
            return Some(leader);
        }
        let others: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .map(|(id, _)| raft_id(*id))
            .filter(|id| *id != self.id)
            .collect();
        others.get(attempt as usize % others.len().max(1)).copied()
    }

    async fn propose(&self, command: MetadataCommand) -> Result<CommandResult, QuorumError> {
        let deadline = Instant::now() + Duration::from_millis(PROPOSE_TIMEOUT_MS);
        match self
            .call_leader(Request::Propose(command), deadline, false)
            .await?
        {
            Response::Proposed { result, log_index } => {
                self.wait_applied(log_index, deadline).await?;
                Ok(result)
            }
            Response::Failed(message) => Err(QuorumError::Failed(message)),
            Response::Interrupted(message) => Err(QuorumError::Interrupted(message)),
            other => Err(QuorumError::Failed(format!(
                "an unexpected answer to a proposal: {other:?}"
            ))),
        }
    }

    /// Waits until this node has applied the entry at `index`, across Raft restarts.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), QuorumError> {
        let mut metrics = self.supervisor.metrics();
        let applied = timeout_at(deadline, async {
            loop {
                if metrics
                    .latest()
                    .last_applied
                    .is_some_and(|id| id.index >= index)
                {
                    return true;
                }
                if !metrics.changed().await {
                    return false;
                }
            }
        });
        match applied.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(stopped("shutting down")),
            Err(_) => Err(QuorumError::Timeout {
                what: format!("applying log entry {index} on this node"),
                timeout_ms: PROPOSE_TIMEOUT_MS,
            }),
        }
    }

    /// Appends `command` as the leader and waits for it to be applied here. Gives up if this
    /// node stops leading first (openraft may then never answer) or its Raft stops on a
    /// storage error, reporting that the outcome is unknown.
    async fn write_as_leader(&self, command: MetadataCommand) -> Response {
        let deadline = Instant::now() + Duration::from_millis(PROPOSE_TIMEOUT_MS);
        let Some(term) = self.leading_term() else {
            return Response::NotLeader {
                leader: self.current_leader(),
            };
        };
        let raft = self.raft();
        let written = tokio::select! {
            biased;
            written = raft.client_write(command) => written,
            () = self.leadership_lost(term) => {
                return Response::Interrupted(
                    "leadership changed while the proposal was pending".into(),
                )
            }
            () = tokio::time::sleep_until(deadline) => {
                return Response::Failed(format!(
                    "the proposal was not committed within {PROPOSE_TIMEOUT_MS} ms"
                ))
            }
        };
        match written {
            Ok(written) => Response::Proposed {
                result: written.data,
                log_index: written.log_id.index,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Response::NotLeader {
                    leader: forward.leader_id,
                }
            }
            Err(RaftError::Fatal(fatal)) => Response::Interrupted(format!(
                "the leader's Raft stopped while the proposal was pending: {fatal}"
            )),
            Err(error) => Response::Failed(error.to_string()),
        }
    }

    /// Completes when this node no longer leads in `term` (also when its Raft stopped, or a
    /// restarted one runs).
    async fn leadership_lost(&self, term: u64) {
        let mut metrics = self.supervisor.metrics();
        loop {
            {
                let now = metrics.latest();
                if now.current_term != term || now.state != ServerState::Leader {
                    return;
                }
            }
            if !metrics.changed().await {
                return;
            }
        }
    }

    fn heartbeat_as_leader(&self, id: i32, incarnation: Uuid) -> Response {
        let Some(term) = self.leading_term() else {
            return Response::NotLeader {
                leader: self.current_leader(),
            };
        };
        let image = self.image();
        let fenced = match image.brokers.get(&id) {
            Some(broker) if broker.incarnation == incarnation => {
                self.with_liveness(term, |liveness| {
                    liveness.heartbeat(id, std::time::Instant::now())
                });
                broker.fenced
            }
            // An unknown broker, or an older process of a restarted one.
            _ => true,
        };
        Response::Heartbeat { fenced }
    }

    async fn add_learner_as_leader(&self, id: i32, addr: String, from: SocketAddr) -> Response {
        if self.leading_term().is_none() {
            return Response::NotLeader {
                leader: self.current_leader(),
            };
        }
        let addr = match addr.parse::<SocketAddr>() {
            Ok(listen) if listen.ip().is_unspecified() => {
                SocketAddr::new(from.ip(), listen.port()).to_string()
            }
            _ => addr,
        };
        let node_id = raft_id(id);
        let (known, voter) = {
            let metrics = self.raft().metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let known = membership.get_node(&node_id).map(|node| node.addr.clone());
            let voter = membership.voter_ids().any(|voter| voter == node_id);
            (known, voter)
        };
        if known.as_deref() == Some(addr.as_str()) {
            return Response::LearnerAdded;
        }
        if voter {
            return Response::Failed(format!("node {id} is a voter, not a learner"));
        }
        let node = BasicNode::new(&addr);
        let result = match known {
            // A learner that came back at a new address.
            Some(_) => {
                let change = ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)]));
                self.raft().change_membership(change, true).await
            }
            None => self.raft().add_learner(node_id, node, false).await,
        };
        match result {
            Ok(_) => Response::LearnerAdded,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Response::NotLeader {
                    leader: forward.leader_id,
                }
            }
            Err(error) => Response::Failed(error.to_string()),
        }
    }

    /// The leader's loop: names a new cluster, fences and unfences brokers as their
    /// heartbeats stop and resume, and hands leadership back to preferred replicas.
    async fn controller_loop(self: Arc<Node>) {
        let tick_ms =
            (self.config.broker_heartbeat_interval_ms / 2).clamp(10, CONTROLLER_TICK_MS_MAX);
        let mut ticks = tokio::time::interval(Duration::from_millis(tick_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(term) = self.leading_term() else {
                *self.liveness.lock().expect("never held across a panic") = None;
                *self.balancer.lock().expect("never held across a panic") = None;
                continue;
            };
            let image = self.image();
            let commands = if image.cluster_id.is_none() {
                vec![MetadataCommand::Bootstrap {
                    cluster_id: new_cluster_id(),
                }]
            } else {
                let now = std::time::Instant::now();
                let mut commands = self.with_liveness(term, |liveness| liveness.tick(now, &image));
                // Fencing first: a balance decided on an image about to change would only be
                // refused in part.
                if commands.is_empty() {
                    commands.extend(self.balance_tick(term, &image));
                }
                commands
            };
            for command in commands {
                tracing::info!(?command, "the controller leader proposes");
                if let Response::Failed(error) = self.write_as_leader(command).await {
                    tracing::warn!("a controller proposal failed: {error}");
                    break;
                }
            }
        }
    }

    /// Restarts Raft whenever a storage error stops it, for as long as the node runs.
    async fn supervise(self: Arc<Node>) {
        loop {
            self.supervisor.restart_after_failure().await;
            if let Err(error) = self.form_cluster().await {
                tracing::warn!("the restarted Raft did not start an election: {error}");
            }
        }
    }

    /// A broker's loop: heartbeats the controller leader every interval.
    async fn heartbeat_loop(self: Arc<Node>, id: i32, incarnation: Uuid) {
        let interval = Duration::from_millis(self.config.broker_heartbeat_interval_ms);
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let request = Request::BrokerHeartbeat { id, incarnation };
            match self
                .call_leader(request, Instant::now() + interval, true)
                .await
            {
                Ok(Response::Heartbeat { fenced }) => {
                    tracing::trace!(id, fenced, "heartbeat answered");
                }
                Ok(other) => tracing::debug!(id, "a heartbeat was answered with {other:?}"),
                Err(error) => tracing::debug!(id, "a heartbeat failed: {error}"),
            }
        }
    }

    /// A learner's loop: asks the leader to add it until its address is in the membership.
    async fn join_as_learner(self: Arc<Node>) {
        let mut attempt = 0u32;
        loop {
            let deadline = Instant::now() + Duration::from_millis(LEADER_CALL_TIMEOUT_MS);
            let request = Request::AddLearner {
                id: kafka_id(self.id),
                addr: self.own_addr.clone(),
            };
            match self.call_leader(request, deadline, true).await {
                Ok(Response::LearnerAdded) => {
                    tracing::info!(node = self.id, "joined the metadata quorum as a learner");
                    return;
                }
                Ok(other) => tracing::warn!("joining as a learner was answered with {other:?}"),
                Err(error) => tracing::debug!("joining as a learner failed: {error}"),
            }
            attempt = attempt.saturating_add(1);
            backoff(attempt, Instant::now() + Duration::from_secs(1)).await;
        }
    }
}

/// Waits a little longer after each failed attempt (up to half a second), but not past the
/// deadline.
async fn backoff(attempt: u32, deadline: Instant) {
    let wait = Duration::from_millis((50 * u64::from(attempt + 1)).min(500));
    tokio::time::sleep_until(deadline.min(Instant::now() + wait)).await;
}

impl Handler for Node {
    async fn handle(&self, request: Request, from: SocketAddr) -> Response {
        match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft().append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft().vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft().install_snapshot(rpc).await)
            }
            Request::FullSnapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(data.into_bytes())),
                };
                Response::FullSnapshot(self.raft().install_full_snapshot(vote, snapshot).await)
            }
            Request::Propose(command) => self.write_as_leader(command).await,
            Request::BrokerHeartbeat { id, incarnation } => {
                self.heartbeat_as_leader(id, incarnation)
            }
            Request::AddLearner { id, addr } => self.add_learner_as_leader(id, addr, from).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(id, new_cluster_id());
    }
}
