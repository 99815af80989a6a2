//! What a node needs to know to run the quorum, and what `strom cluster info` shows of it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::quorum::error::QuorumError;

/// Configuration of one node's part in the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Kafka's `node.id`; also this node's Raft id.
    pub node_id: i32,
    /// The node's data directory; the quorum keeps its files in `__cluster_metadata/` under it.
    pub data_dir: PathBuf,
    /// Where this node listens for other controllers and learners. Needed unless the cluster
    /// is this single node.
    pub controller_listen: Option<SocketAddr>,
    /// The controller voters as (node id, `HOST:PORT`). Empty: a single-node cluster whose only
    /// voter is this node, with no network at all.
    pub voters: Vec<(i32, String)>,
    /// True for a controller (a voter); false for a broker-only node, which joins as a learner
    /// and applies the committed log without voting.
    pub is_voter: bool,
    /// A broker not heard from for this long is fenced by the controller leader.
    pub broker_session_timeout_ms: u64,
    /// How often a broker heartbeats the controller leader.
    pub broker_heartbeat_interval_ms: u64,
    /// The Raft election timeout (the lower bound; the upper bound is twice this). The leader
    /// sends Raft heartbeats every quarter of it.
    pub election_timeout_ms: u64,
    /// A snapshot of the image is written every this many applied entries, and the log before
    /// it is purged.
    pub snapshot_interval_entries: u64,
    /// The controller leader's automatic preferred-leader rebalance.
    pub leader_balance: LeaderBalanceConfig,
    /// Mutual TLS on the controller listener and on this node's connections to the others
    /// (Kafka's `CONTROLLER:SSL` with `ssl.client.auth=required`); None runs plain TCP.
    pub tls: Option<QuorumTls>,
}

/// Kafka's `auto.leader.rebalance.enable`, `leader.imbalance.per.broker.percentage` and
/// `leader.imbalance.check.interval.seconds`: every interval, the controller leader hands
/// leadership back to preferred replicas where a broker leads too few of its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderBalanceConfig {
    pub enabled: bool,
    pub imbalance_percentage_max: i32,
    pub check_interval_ms: u64,
}

impl Default for LeaderBalanceConfig {
    /// Kafka's defaults: on, 10 %, every 300 s.
    fn default() -> Self {
        LeaderBalanceConfig {
            enabled: true,
            imbalance_percentage_max: 10,
            check_interval_ms: 300_000,
        }
    }
}

/// The TLS settings of the controller transport, built by the broker from its keystore and
/// truststore; the quorum only runs the handshakes with them.
///
/// Every node of a cluster must use TLS or none must: a plain connection to a TLS listener
/// fails its handshake, and the other way round.
#[derive(Clone)]
pub struct QuorumTls {
    /// What the controller listener accepts connections with. It must require a client
    /// certificate that the cluster's CA signed: whoever completes a handshake may vote,
    /// replicate and propose.
    pub server: Arc<rustls::ServerConfig>,
    /// What this node dials the others with: it presents this node's certificate and trusts
    /// the cluster's CA. The server name checked is the host of the peer's `HOST:PORT`.
    pub client: Arc<rustls::ClientConfig>,
}

/// Names no key or certificate, so a logged configuration gives nothing away.
impl fmt::Debug for QuorumTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("QuorumTls { .. }")
    }
}

/// rustls configurations cannot be compared, so two are equal when they are the same objects:
/// a configuration rebuilt from the same files counts as a change.
impl PartialEq for QuorumTls {
    fn eq(&self, other: &QuorumTls) -> bool {
        Arc::ptr_eq(&self.server, &other.server) && Arc::ptr_eq(&self.client, &other.client)
    }
}

impl Eq for QuorumTls {}

impl QuorumConfig {
    /// A single-node cluster (one voter, no network) with Kafka's default timings.
    pub fn single_node(node_id: i32, data_dir: impl Into<PathBuf>) -> QuorumConfig {
        QuorumConfig {
            node_id,
            data_dir: data_dir.into(),
            controller_listen: None,
            voters: Vec::new(),
            is_voter: true,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            election_timeout_ms: 1_000,
            snapshot_interval_entries: 1_000,
            leader_balance: LeaderBalanceConfig::default(),
            tls: None,
        }
    }

    /// Refuses configurations that cannot work, with a message naming the setting to fix.
    pub(crate) fn validate(&self) -> Result<(), QuorumError> {
        let fail = |message: String| Err(QuorumError::Config(message));
        if self.node_id < 0 {
            return fail(format!("node.id {} must not be negative", self.node_id));
        }
        if let Some((id, _)) = self.voters.iter().find(|(id, _)| *id < 0) {
            return fail(format!("voter id {id} must not be negative"));
        }
        let mut ids: Vec<i32> = self.voters.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.voters.len() {
            return fail(format!(
                "the voter list {:?} names a node twice",
                self.voters
            ));
        }
        let listed = self.voters.iter().any(|(id, _)| *id == self.node_id);
        if self.is_voter && !self.voters.is_empty() && !listed {
            return fail(format!(
                "node {} is a controller but is not in the voter list {:?}",
                self.node_id, self.voters
            ));
        }
        if !self.is_voter && listed {
            return fail(format!(
                "node {} is in the voter list but is configured as broker-only",
                self.node_id
            ));
        }
        if !self.is_voter && self.voters.is_empty() {
            return fail("a broker-only node needs the controller voters to join".into());
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return fail(format!(
                "broker.session.timeout.ms ({}) must exceed broker.heartbeat.interval.ms ({}), \
                 which must be positive",
                self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
            ));
        }
        if self.election_timeout_ms < 20 {
            return fail(format!(
                "the election timeout {} ms is below 20 ms",
                self.election_timeout_ms
            ));
        }
        if self.leader_balance.check_interval_ms == 0 {
            return fail("leader.imbalance.check.interval.seconds must be at least 1".into());
        }
        if self.snapshot_interval_entries == 0 {
            return fail("the snapshot interval must be at least one entry".into());
        }
        Ok(())
    }
}

/// This node's role in the quorum, as Raft sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// A point-in-time view of the quorum from this node (for `strom cluster info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: i32,
    pub role: QuorumRole,
    pub leader: Option<i32>,
    pub term: u64,
    pub voters: Vec<i32>,
    pub learners: Vec<i32>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to this node's image.
    pub last_applied: Option<u64>,
    /// Index of the last entry covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// On the leader only: how many entries each other node's log is behind the leader's
    /// (None: not known yet).
    pub replication_lag: BTreeMap<i32, Option<u64>>,
}
