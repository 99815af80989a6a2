//! The controller transport over mutual TLS. The listener serves a peer whose certificate the
//! cluster's CA signed and refuses one from another CA, one without TLS, and one that stalls
//! its handshake (after the limit, without holding anyone else up); a three-voter quorum elects
//! a leader and commits over it; a node with a certificate from another CA cannot join, while
//! the quorum carries on and a node with a good certificate joins. Certificates are made here,
//! in memory, for 127.0.0.1. Every wait polls with a deadline; nothing sleeps for luck.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::command::{CommandResult, MetadataCommand};
use crate::quorum::limits::TLS_HANDSHAKE_TIMEOUT_MS;
use crate::quorum::network::rpc::{Request, Response};
use crate::quorum::network::{serve, CallError, Handler, Peers};
use crate::quorum::{MetadataQuorum, QuorumConfig, QuorumError, QuorumTls};

const WITHIN: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A certificate authority made for one test.
struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Authority { certificate, key }
    }

    /// The TLS settings of a node whose certificate (for 127.0.0.1, good for both ends of a
    /// connection) this authority signs, and which trusts the certificates `trusted` signs.
    /// The listener requires a client certificate, as the broker's does.
    fn node_tls(&self, node: &str, trusted: &Authority) -> QuorumTls {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, node);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        let chain = vec![certificate.der().clone()];
        let private_key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(trusted.certificate.der().clone()).unwrap();
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .unwrap();
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private_key.clone_key())
            .unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private_key)
            .unwrap();
        QuorumTls {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }
}

/// Answers every request alike, so the transport tests need no Raft.
struct Answering;

impl Handler for Answering {
    async fn handle(&self, _request: Request, _from: SocketAddr) -> Response {
        Response::LearnerAdded
    }
}

/// A controller listener on an ephemeral loopback port, served with `tls`.
async fn listen(tls: &QuorumTls) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve(
        listener,
        Some(tls.server.clone()),
        Arc::new(Answering),
    ));
    (addr, server)
}

async fn heartbeat(peers: &Peers, addr: &str) -> Result<Response, CallError> {
    let request = Request::BrokerHeartbeat {
        id: 1,
        incarnation: Uuid::nil(),
    };
    peers.call(addr, request, CALL_TIMEOUT).await
}

/// A refused connection fails the call at once: not sent (a handshake the client saw fail),
/// or lost (TLS 1.3 lets the client finish before the server refuses its certificate), never
/// a wait for the timeout.
fn assert_refused(result: Result<Response, CallError>, who: &str) {
    match result {
        Err(CallError::Unreachable { .. } | CallError::Lost { .. }) => {}
        other => panic!("{who} got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_its_own_ca_and_refuses_everyone_else() {
    let cluster = Authority::new("cluster CA");
    let other = Authority::new("other CA");
    let (addr, server) = listen(&cluster.node_tls("node 1", &cluster)).await;

    let trusted = Peers::new(Some(cluster.node_tls("node 2", &cluster).client));
    let answered = heartbeat(&trusted, &addr).await.unwrap();
    assert!(matches!(answered, Response::LearnerAdded), "{answered:?}");

    // It trusts the cluster's CA, but its own certificate comes from another.
    let foreign = Peers::new(Some(other.node_tls("node 4", &cluster).client));
    assert_refused(heartbeat(&foreign, &addr).await, "a foreign certificate");
    let plain = Peers::new(None);
    assert_refused(heartbeat(&plain, &addr).await, "plain TCP");
    // Its certificate is good, but it does not trust the listener's: the client refuses.
    let distrusting = Peers::new(Some(cluster.node_tls("node 3", &other).client));
    match heartbeat(&distrusting, &addr).await {
        Err(error @ CallError::Unreachable { .. }) => {
            assert!(error.not_sent());
            assert!(
                error.to_string().contains("TLS handshake failed"),
                "{error}"
            );
        }
        other => panic!("a client distrusting the listener got {other:?}"),
    }

    // The refusals cost the listener nothing: the trusted peer is still served, on its
    // connection and on a new one.
    assert!(heartbeat(&trusted, &addr).await.is_ok());
    let another = Peers::new(Some(cluster.node_tls("node 5", &cluster).client));
    assert!(heartbeat(&another, &addr).await.is_ok());
    server.abort();
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_after_the_limit_and_holds_up_nobody() {
    let cluster = Authority::new("cluster CA");
    let (addr, server) = listen(&cluster.node_tls("node 1", &cluster)).await;
    let connected = Instant::now();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();

    // Accepted after the stalled one, and served while it waits.
    let trusted = Peers::new(Some(cluster.node_tls("node 2", &cluster).client));
    assert!(heartbeat(&trusted, &addr).await.is_ok());

    // With the clock paused, time jumps to the handshake's deadline once nothing else can
    // happen; the listener then closes the stalled connection.
    tokio::time::pause();
    let read = stalled.read(&mut [0u8; 1]).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
        "closed after {waited:?}"
    );
    tokio::time::resume();
    assert!(heartbeat(&trusted, &addr).await.is_ok());
    server.abort();
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WITHIN;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create_topic(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::new_v4(),
        partitions: 3,
        replication_factor: 1,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn node_config(id: i32, dir: &Path, voters: &[(i32, String)], tls: QuorumTls) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        data_dir: dir.to_owned(),
        controller_listen: None,
        voters: voters.to_vec(),
        is_voter: voters.iter().any(|(voter, _)| *voter == id),
        broker_session_timeout_ms: 60_000,
        broker_heartbeat_interval_ms: 1_000,
        election_timeout_ms: 300,
        snapshot_interval_entries: 1_000,
        leader_balance: Default::default(),
        tls: Some(tls),
    }
}

/// Nodes 1 to 3, the voters, each with a certificate from `cluster`: ready once each knows the
/// leader and has registered its broker (a topic needs one). Returns them with the voter list.
async fn start_voters(
    cluster: &Authority,
    dirs: &[tempfile::TempDir],
) -> (Vec<MetadataQuorum>, Vec<(i32, String)>) {
    let mut listeners = Vec::new();
    let mut voters = Vec::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.push((id, listener.local_addr().unwrap().to_string()));
        listeners.push(listener);
    }
    let mut nodes = Vec::new();
    for (id, listener) in (1..=3).zip(listeners) {
        let tls = cluster.node_tls(&format!("node {id}"), cluster);
        let config = node_config(id, dirs[id as usize - 1].path(), &voters, tls);
        let node = MetadataQuorum::start_with_listener(config, Some(listener))
            .await
            .unwrap();
        nodes.push(node);
    }
    for (id, node) in (1..).zip(&nodes) {
        node.wait_ready(WITHIN).await.unwrap();
        node.register_broker(id, "127.0.0.1".into(), 9090 + id as u16, None, Vec::new())
            .await
            .unwrap();
    }
    (nodes, voters)
}

/// A broker-only node `id` that tries to join `voters` as a learner with `tls`.
async fn start_learner(
    id: i32,
    dir: &Path,
    voters: &[(i32, String)],
    tls: QuorumTls,
) -> MetadataQuorum {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = node_config(id, dir, voters, tls);
    MetadataQuorum::start_with_listener(config, Some(listener))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_voter_quorum_over_mutual_tls_elects_a_leader_and_commits() {
    let cluster = Authority::new("cluster CA");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (nodes, _) = start_voters(&cluster, &dirs).await;
    let leader = nodes[0].leader().expect("a leader");
    assert!(nodes.iter().all(|node| node.leader() == Some(leader)));

    // Proposed on a follower: forwarded to the leader, replicated, applied everywhere.
    let follower = nodes
        .iter()
        .find(|node| node.leader() != Some(node.status().node_id))
        .unwrap();
    let created = follower.propose(create_topic("orders")).await.unwrap();
    assert!(
        matches!(created, CommandResult::TopicCreated { .. }),
        "{created:?}"
    );
    eventually("the topic on every voter", || async {
        nodes
            .iter()
            .all(|node| node.image().topics.contains_key("orders"))
    })
    .await;
    let status = nodes[leader as usize - 1].status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert_eq!(status.replication_lag.len(), 2, "{status:?}");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() {
    let cluster = Authority::new("cluster CA");
    let other = Authority::new("other CA");
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let (nodes, voters) = start_voters(&cluster, &dirs).await;

    // It trusts the voters' certificates, but its own comes from another CA.
    let rogue_tls = other.node_tls("node 4", &cluster);
    let rogue = start_learner(4, dirs[3].path(), &voters, rogue_tls).await;
    let refused = rogue.propose(create_topic("from-rogue")).await;
    assert!(
        matches!(
            refused,
            Err(QuorumError::Failed(_) | QuorumError::NoLeader(_))
        ),
        "{refused:?}"
    );

    // The quorum carries on, and a learner with a good certificate joins and follows.
    let created = nodes[0].propose(create_topic("orders")).await.unwrap();
    assert!(
        matches!(created, CommandResult::TopicCreated { .. }),
        "{created:?}"
    );
    let learner_tls = cluster.node_tls("node 5", &cluster);
    let learner = start_learner(5, dirs[4].path(), &voters, learner_tls).await;
    eventually("the good learner caught up", || async {
        learner.image().topics.contains_key("orders")
    })
    .await;

    // By now the rogue has had as long as the good learner to join, and has not.
    let leader = nodes[0].leader().expect("a leader");
    let status = nodes[leader as usize - 1].status();
    assert_eq!(status.learners, vec![5], "{status:?}");
    assert_eq!(rogue.leader(), None);
    assert!(rogue.image().topics.is_empty());
    for node in nodes.into_iter().chain([rogue, learner]) {
        node.shutdown().await;
    }
}
