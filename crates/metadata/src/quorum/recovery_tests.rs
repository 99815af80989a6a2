//! The quorum through metadata log failures, with faults injected into the real storage: the
//! write in hand fails, the node reports itself unhealthy, stops leading, retries, and runs
//! again once the resource is back, without a restart; the log it leaves reopens with every
//! committed entry. Every wait polls with a deadline; the faults decide what fails, not timing.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use strom_types::ErrorCode;
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

use crate::command::{CommandResult, MetadataCommand};
use crate::quorum::health::{Health, WriteKind};
use crate::quorum::storage::faults::{FaultInjector, FaultPoint};
use crate::quorum::storage::StorageContext;
use crate::quorum::{MetadataQuorum, QuorumConfig, QuorumError};

const EIO: i32 = 5;
const EMFILE: i32 = 24;
const ENOSPC: i32 = 28;
const WITHIN: Duration = Duration::from_secs(10);

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
        partitions: 2,
        replication_factor: 1,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn context(faults: &FaultInjector) -> StorageContext {
    StorageContext {
        faults: faults.clone(),
        ..StorageContext::default()
    }
}

fn single_node(dir: &Path) -> QuorumConfig {
    let mut config = QuorumConfig::single_node(1, dir);
    config.election_timeout_ms = 50;
    config.broker_session_timeout_ms = 60_000;
    config
}

fn is_unhealthy(quorum: &MetadataQuorum) -> bool {
    matches!(quorum.health(), Health::Unhealthy { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_recovers_from_a_failed_append_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::default();
    let config = single_node(dir.path());
    let quorum = MetadataQuorum::start_with_faults(config.clone(), None, context(&faults))
        .await
        .unwrap();
    quorum.wait_ready(WITHIN).await.unwrap();
    quorum
        .register_broker(1, "127.0.0.1".into(), 9092, None, Vec::new())
        .await
        .unwrap();
    quorum.propose(create_topic("before")).await.unwrap();
    let mut health = quorum.watch_health();
    assert_eq!(*health.borrow_and_update(), Health::Healthy);

    // The disk is full for this append; then descriptors run out for three reopens.
    faults.fail(FaultPoint::Write(WriteKind::Append), ENOSPC, 1);
    faults.fail(FaultPoint::Reopen, EMFILE, 3);
    let failed = quorum.propose(create_topic("in-hand")).await;
    assert!(
        matches!(failed, Err(QuorumError::Interrupted(_))),
        "{failed:?}"
    );
    assert!(!failed.unwrap_err().is_fatal());
    assert!(is_unhealthy(&quorum));
    assert!(
        quorum.image().topics.contains_key("before"),
        "the image stays"
    );

    eventually("health back", || async { !is_unhealthy(&quorum) }).await;
    assert_eq!(faults.injected(), 4, "one append and three reopens failed");
    quorum.wait_ready(WITHIN).await.unwrap();
    let created = quorum.propose(create_topic("after")).await.unwrap();
    assert!(matches!(created, CommandResult::TopicCreated { .. }));
    let image = quorum.image();
    // The failed append was cut off the log, so it never committed.
    assert!(!image.topics.contains_key("in-hand"));
    assert!(image.topics.contains_key("before") && image.topics.contains_key("after"));
    quorum.shutdown().await;

    // Everything committed is on disk, and the log reopens cleanly.
    let reopened = MetadataQuorum::start(config).await.unwrap();
    reopened.wait_ready(WITHIN).await.unwrap();
    eventually("the image rebuilt from disk", || async {
        reopened.image() == image
    })
    .await;
    reopened.shutdown().await;
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

fn voter_config(id: i32, dir: &Path, voters: &[(i32, String)]) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        data_dir: dir.to_owned(),
        controller_listen: None,
        voters: voters.to_vec(),
        is_voter: true,
        broker_session_timeout_ms: 60_000,
        broker_heartbeat_interval_ms: 1_000,
        election_timeout_ms: 200,
        snapshot_interval_entries: 1_000,
        leader_balance: Default::default(),
        tls: None,
    }
}

/// Proposes from `via` until a proposal succeeds: a failed one may be answered NotLeader or
/// Interrupted while leadership moves.
async fn propose_until_done(via: &MetadataQuorum, command: MetadataCommand) -> CommandResult {
    let deadline = Instant::now() + WITHIN;
    loop {
        match via.propose(command.clone()).await {
            Ok(result) => return result,
            Err(error) => {
                assert!(!error.is_fatal(), "{error}");
                assert!(Instant::now() < deadline, "no proposal succeeded: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_write_stops_leading_and_catches_up_once_it_can() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut voters = Vec::new();
    for id in 1..=3 {
        let (listener, addr) = listener().await;
        listeners.push(listener);
        voters.push((id, addr));
    }
    let faults: Vec<FaultInjector> = (0..3).map(|_| FaultInjector::default()).collect();
    let mut nodes = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let id = index as i32 + 1;
        let config = voter_config(id, dirs[index].path(), &voters);
        let node =
            MetadataQuorum::start_with_faults(config, Some(listener), context(&faults[index]))
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
    propose_until_done(&nodes[0], create_topic("before")).await;
    let leader = nodes[0].leader().unwrap();
    let old = (leader - 1) as usize;
    let via = (old + 1) % 3;

    // The leader's disk fails for good: every write and every reopen.
    faults[old].fail_everything(EIO);
    // The attempt the old leader took may have reached the others before its own write
    // failed, and then commits under the new leader: a retry finds the topic there.
    let created = propose_until_done(&nodes[via], create_topic("failover")).await;
    assert!(
        matches!(&created, CommandResult::TopicCreated { .. })
            || matches!(&created, CommandResult::Refused(e) if e.code == ErrorCode::TopicAlreadyExists),
        "{created:?}"
    );
    assert!(nodes[via].image().topics.contains_key("failover"));
    let new_leader = nodes[via].leader().unwrap();
    assert_ne!(new_leader, leader, "another voter took over");
    assert!(is_unhealthy(&nodes[old]));
    assert_ne!(
        nodes[old].leader(),
        Some(leader),
        "it does not count itself leader"
    );

    // The disk is back: the old leader runs again, follows, and catches up.
    faults[old].clear();
    eventually("the old leader healthy", || async {
        !is_unhealthy(&nodes[old])
    })
    .await;
    propose_until_done(&nodes[old], create_topic("after")).await;
    eventually("every image equal", || async {
        let image = nodes[via].image();
        nodes.iter().all(|node| node.image() == image)
    })
    .await;
    assert!(nodes[old].image().topics.contains_key("failover"));
    for node in nodes {
        node.shutdown().await;
    }
}
