//! The metadata quorum end to end, in one process: a single node that restarts from disk, and
//! a three-voter cluster on loopback that loses its leader, keeps accepting proposals, takes
//! the old leader back (caught up from a snapshot), and lets a broker-only learner follow.
//! Every wait polls with a deadline; nothing sleeps for luck.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::quorum::{MetadataQuorum, QuorumConfig, QuorumRole};
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it holds, failing the test after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create_topic(name: &str, partitions: i32, replication_factor: i16) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn allocate(broker: i32) -> MetadataCommand {
    MetadataCommand::AllocateProducerIds { broker, count: 10 }
}

fn snapshot_written(data_dir: &Path) -> bool {
    data_dir
        .join("__cluster_metadata")
        .join("snapshot.json")
        .exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_quorum_serves_proposals_and_restarts_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuorumConfig::single_node(1, dir.path());
    config.snapshot_interval_entries = 10;
    config.broker_session_timeout_ms = 60_000;
    let quorum = MetadataQuorum::start(config.clone()).await.unwrap();
    quorum.wait_ready(READY_TIMEOUT).await.unwrap();
    assert_eq!(quorum.leader(), Some(1));
    let cluster_id = quorum.image().cluster_id.clone().expect("named");

    let mut images = quorum.watch();
    images.borrow_and_update();
    quorum
        .register_broker(
            1,
            "127.0.0.1".into(),
            9092,
            Some("rack-a".into()),
            Vec::new(),
        )
        .await
        .unwrap();
    let created = quorum.propose(create_topic("orders", 3, 1)).await.unwrap();
    assert!(matches!(created, CommandResult::TopicCreated { .. }));
    // Applied on this node by the time propose returns, and published.
    assert_eq!(quorum.image().topics["orders"].partitions.len(), 3);
    assert!(images.has_changed().unwrap());
    let again = quorum.propose(create_topic("orders", 1, 1)).await.unwrap();
    assert!(matches!(again, CommandResult::Refused(_)), "{again:?}");
    // Enough entries for a snapshot and a purge.
    for _ in 0..25 {
        quorum.propose(allocate(1)).await.unwrap();
    }
    let status = quorum.status();
    assert_eq!(status.role, QuorumRole::Leader);
    assert_eq!(status.voters, vec![1]);
    assert!(status.learners.is_empty());
    assert!(status.last_applied >= Some(28), "{status:?}");
    eventually("a snapshot", READY_TIMEOUT, || async {
        snapshot_written(dir.path()) && quorum.status().snapshot_index.is_some()
    })
    .await;
    let before = quorum.image();
    quorum.shutdown().await;

    let quorum = MetadataQuorum::start(config).await.unwrap();
    quorum.wait_ready(READY_TIMEOUT).await.unwrap();
    eventually("the image rebuilt from disk", READY_TIMEOUT, || async {
        *quorum.image() == *before
    })
    .await;
    assert_eq!(
        quorum.image().cluster_id.as_deref(),
        Some(cluster_id.as_str())
    );
    let more = quorum.propose(allocate(1)).await.unwrap();
    assert_eq!(
        more,
        CommandResult::ProducerIds {
            first: before.next_producer_id,
            count: 10
        }
    );
    quorum.shutdown().await;
}

/// Binds a loopback listener on an ephemeral port.
async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn cluster_config(id: i32, data_dir: &Path, voters: &[(i32, String)]) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        data_dir: data_dir.to_owned(),
        controller_listen: None,
        voters: voters.to_vec(),
        is_voter: voters.iter().any(|(voter, _)| *voter == id),
        broker_session_timeout_ms: 1_500,
        broker_heartbeat_interval_ms: 200,
        election_timeout_ms: 400,
        snapshot_interval_entries: 10,
        leader_balance: Default::default(),
        tls: None,
    }
}

async fn converged(nodes: &[&MetadataQuorum]) -> bool {
    let first: Arc<MetadataImage> = nodes[0].image();
    nodes.iter().all(|node| node.image() == first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_voter_cluster_survives_losing_its_leader() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut voters = Vec::new();
    for id in 1..=3 {
        let (listener, addr) = listener().await;
        listeners.push(listener);
        voters.push((id, addr.to_string()));
    }
    let mut nodes: BTreeMap<i32, MetadataQuorum> = BTreeMap::new();
    for (id, listener) in (1..=3).zip(listeners) {
        let config = cluster_config(id, dirs[id as usize - 1].path(), &voters);
        let node = MetadataQuorum::start_with_listener(config, Some(listener))
            .await
            .unwrap();
        nodes.insert(id, node);
    }
    for node in nodes.values() {
        node.wait_ready(READY_TIMEOUT).await.unwrap();
    }
    for (id, node) in &nodes {
        node.register_broker(*id, "127.0.0.1".into(), 9090 + *id as u16, None, Vec::new())
            .await
            .unwrap();
    }
    // A proposal from a follower is forwarded, and applied there before propose returns.
    let leader = nodes[&1].leader().expect("a leader");
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    let created = nodes[&follower]
        .propose(create_topic("orders", 6, 3))
        .await
        .unwrap();
    assert!(matches!(created, CommandResult::TopicCreated { .. }));
    assert_eq!(
        nodes[&follower].image().topics["orders"].partitions.len(),
        6
    );
    let all: Vec<&MetadataQuorum> = nodes.values().collect();
    eventually("three identical images", READY_TIMEOUT, || converged(&all)).await;
    let status = nodes[&leader].status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert_eq!(status.replication_lag.len(), 2, "{status:?}");

    // The leader goes away: the others elect a new one and keep taking proposals, enough of
    // them for a snapshot and a purge, so the old leader will need the snapshot to catch up.
    let old = nodes.remove(&leader).unwrap();
    old.shutdown().await;
    let survivors: Vec<&MetadataQuorum> = nodes.values().collect();
    eventually("a new leader", READY_TIMEOUT, || async {
        survivors
            .iter()
            .all(|node| node.leader().is_some_and(|l| l != leader))
    })
    .await;
    let created = survivors[0]
        .propose(create_topic("after-failover", 2, 2))
        .await
        .unwrap();
    assert!(
        matches!(created, CommandResult::TopicCreated { .. }),
        "{created:?}"
    );
    for _ in 0..30 {
        survivors[1].propose(allocate(2)).await.unwrap();
    }
    // The old leader's broker stopped heartbeating: the new leader fences it.
    eventually("the silent broker fenced", READY_TIMEOUT, || async {
        survivors
            .iter()
            .all(|node| node.image().brokers[&leader].fenced)
    })
    .await;
    let image = survivors[0].image();
    for partition in &image.topics["orders"].partitions {
        assert_ne!(
            partition.leader, leader,
            "leadership moved off the fenced broker"
        );
    }
    let new_leader = survivors[0].leader().unwrap();
    eventually("a snapshot on the new leader", READY_TIMEOUT, || async {
        snapshot_written(dirs[new_leader as usize - 1].path())
    })
    .await;

    // The old leader restarts on its address and catches up.
    let mut config = cluster_config(leader, dirs[leader as usize - 1].path(), &voters);
    config.controller_listen = Some(voters[leader as usize - 1].1.parse().unwrap());
    let restarted = MetadataQuorum::start(config).await.unwrap();
    restarted.wait_ready(READY_TIMEOUT).await.unwrap();
    restarted
        .register_broker(
            leader,
            "127.0.0.1".into(),
            9090 + leader as u16,
            None,
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(
        !restarted.image().brokers[&leader].fenced,
        "registered again"
    );
    nodes.insert(leader, restarted);
    let all: Vec<&MetadataQuorum> = nodes.values().collect();
    eventually("the restarted node caught up", READY_TIMEOUT, || {
        converged(&all)
    })
    .await;
    assert!(nodes[&leader].image().topics.contains_key("after-failover"));

    // A broker-only node joins as a learner (listening on 0.0.0.0: the leader uses the address
    // the request came from) and follows the log without voting.
    let learner_listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let learner_config = cluster_config(4, dirs[3].path(), &voters);
    let learner = MetadataQuorum::start_with_listener(learner_config, Some(learner_listener))
        .await
        .unwrap();
    learner.wait_ready(READY_TIMEOUT).await.unwrap();
    learner
        .register_broker(4, "127.0.0.1".into(), 9094, None, Vec::new())
        .await
        .unwrap();
    nodes.insert(4, learner);
    let all: Vec<&MetadataQuorum> = nodes.values().collect();
    eventually("the learner caught up", READY_TIMEOUT, || converged(&all)).await;
    let status = nodes[&4].status();
    assert_eq!(status.role, QuorumRole::Learner);
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert_eq!(status.learners, vec![4]);
    assert!(nodes[&4].image().brokers.contains_key(&4));

    // A controlled shutdown fences the broker and moves its leaderships first.
    let id = follower;
    nodes[&id].controlled_shutdown(id).await.unwrap();
    let image = nodes[&id].image();
    assert!(image.brokers[&id].fenced);
    for partition in &image.topics["orders"].partitions {
        assert_ne!(partition.leader, id);
    }
    for (_, node) in nodes {
        node.shutdown().await;
    }
}
