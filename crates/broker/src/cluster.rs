//! The broker's side of the metadata quorum: joining the cluster, proposing metadata changes
//! on behalf of the request handlers, following the committed image, and leaving cleanly.
//!
//! A single-node `strom server` is a cluster of one: the same quorum code with one voter and
//! no controller listener, so there is one way metadata changes, whatever the cluster size.
//!
//! Every proposal returns once the command is committed and applied to this node's image
//! (see [`MetadataQuorum::propose`]); the helpers here then reconcile the topic registry with
//! that image, so a handler that created a topic can use its logs right after.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::{CommandResult, MetadataCommand, MetadataQuorum, QuorumConfig, QuorumError};
use strom_types::{ErrorCode, ProducerId};
use uuid::Uuid;

use strom_coordinator::OFFSETS_TOPIC;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::topics::TopicRegistry;
use crate::Broker;

/// How many producer ids a broker asks the controller for at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// How often a node waiting for the quorum says so.
const WAITING_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a handler waits for the quorum to commit its proposal.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The election timeout of a single-node cluster: nobody competes, so waiting out Kafka's
/// 1 s on every start would only slow restarts down.
const SINGLE_NODE_ELECTION_TIMEOUT_MS: u64 = 100;

/// The quorum settings of this node.
pub fn quorum_config(config: &BrokerConfig) -> QuorumConfig {
    let cluster = &config.cluster;
    let mut quorum = QuorumConfig::single_node(config.node_id, config.data_dir.clone());
    quorum.controller_listen = cluster.controller_listen;
    // Kafka's form: a CONTROLLER listener named in `controller.listener.names`.
    if let Ok(Some(listener)) = config.controller_listener() {
        quorum.controller_listen = Some(listener.address);
    }
    quorum.voters = cluster.voters.clone();
    quorum.is_voter = cluster.controller;
    quorum.broker_session_timeout_ms = cluster.broker_session_timeout_ms;
    quorum.broker_heartbeat_interval_ms = cluster.broker_heartbeat_interval_ms;
    quorum.leader_balance = cluster.leader_balance;
    quorum.election_timeout_ms = match cluster.is_single_node() {
        true => SINGLE_NODE_ELECTION_TIMEOUT_MS.min(cluster.election_timeout_ms),
        false => cluster.election_timeout_ms,
    };
    quorum
}

/// Mutual TLS for the controller transport when the controller listener's protocol is SSL:
/// this node presents its keystore and accepts only peers whose certificates chain to the
/// truststore (whatever `ssl.client.auth` says for client listeners).
fn quorum_tls(config: &BrokerConfig) -> anyhow::Result<Option<strom_metadata::quorum::QuorumTls>> {
    use strom_security::tls::{
        client_config, server_config, ClientAuth, ClientTlsFiles, ServerTlsFiles,
    };
    let Some(listener) = config.controller_listener()? else {
        return Ok(None);
    };
    if !listener.protocol.uses_tls() {
        return Ok(None);
    }
    if listener.protocol.uses_sasl() {
        anyhow::bail!(
            "the controller listener {} must be PLAINTEXT or SSL",
            listener.name
        );
    }
    let security = &config.security;
    let keystore = (security.keystore_location.clone())
        .ok_or_else(|| anyhow::anyhow!("an SSL controller listener needs ssl.keystore.location"))?;
    let truststore = (security.truststore_location.clone()).ok_or_else(|| {
        anyhow::anyhow!("an SSL controller listener needs ssl.truststore.location (mutual TLS)")
    })?;
    let server = server_config(&ServerTlsFiles {
        keystore_location: keystore.clone(),
        key_password: security.key_password.clone(),
        truststore_location: Some(truststore.clone()),
        client_auth: ClientAuth::Required,
    })?;
    let client = client_config(&ClientTlsFiles {
        ca_location: Some(truststore),
        certificate_location: Some(keystore.clone()),
        key_location: Some(keystore),
        key_password: security.key_password.clone(),
        verify_hostname: false,
    })?;
    Ok(Some(strom_metadata::quorum::QuorumTls { server, client }))
}

/// Starts this node's part in the quorum, waits (as long as it takes, saying so every few
/// seconds) until a controller leader is known, and registers the broker.
pub async fn join(config: &BrokerConfig) -> anyhow::Result<MetadataQuorum> {
    let mut settings = quorum_config(config);
    settings.tls = quorum_tls(config)?;
    let quorum = MetadataQuorum::start(settings).await?;
    loop {
        match quorum.wait_ready(WAITING_LOG_INTERVAL).await {
            Ok(()) => break,
            Err(QuorumError::Timeout { .. }) => {
                tracing::info!(voters = ?config.cluster.voters, "waiting for a controller leader (a majority of the voters must be up)")
            }
            Err(error) => return Err(error.into()),
        }
    }
    // Other brokers reach this one on the inter-broker listener; clients on the listener
    // they connected through.
    let (host, port) = config.inter_broker_listener()?.advertised;
    let endpoints: Vec<strom_metadata::Endpoint> = (config.client_listeners()?.into_iter())
        .map(|listener| strom_metadata::Endpoint {
            listener: listener.name,
            host: listener.advertised.0,
            port: listener.advertised.1,
            security_protocol: listener.protocol.id(),
        })
        .collect();
    let rack = config.cluster.rack.clone();
    retry_until_applied("registering with the controller", || {
        let (host, endpoints) = (host.clone(), endpoints.clone());
        quorum.register_broker(config.node_id, host, port, rack.clone(), endpoints)
    })
    .await?;
    tracing::info!(node_id = config.node_id, leader = ?quorum.leader(), cluster_id = ?quorum.image().cluster_id, "joined the cluster");
    Ok(quorum)
}

/// `--add-scram`: creates each credential whose user has none of that mechanism yet (as
/// `kafka-storage format --add-scram` seeds a new cluster), so a restart with the flag still
/// given keeps whatever was set since.
pub async fn add_bootstrap_scram(
    config: &BrokerConfig,
    quorum: &MetadataQuorum,
) -> anyhow::Result<()> {
    let image = quorum.image();
    let upserts: Vec<strom_metadata::ScramUpsert> = (config.security.bootstrap_scram.iter())
        .filter(|wanted| {
            let existing = image.scram_credentials.get(&wanted.user);
            !existing.is_some_and(|credentials| credentials.contains_key(&wanted.mechanism))
        })
        .map(|wanted| strom_metadata::ScramUpsert {
            user: wanted.user.clone(),
            mechanism: wanted.mechanism,
            credential: strom_security::scram::new_credential(
                wanted.mechanism,
                &wanted.password,
                wanted.iterations,
            ),
        })
        .collect();
    if upserts.is_empty() {
        return Ok(());
    }
    let users: Vec<String> = upserts
        .iter()
        .map(|u| format!("{} ({})", u.user, u.mechanism))
        .collect();
    retry_until_applied("adding the --add-scram credentials", || {
        let command = MetadataCommand::AlterScramCredentials {
            upserts: upserts.clone(),
            deletions: Vec::new(),
        };
        async move {
            match quorum.propose(command).await? {
                CommandResult::Refused(error) => Err(QuorumError::Failed(error.to_string())),
                _ => Ok(()),
            }
        }
    })
    .await?;
    tracing::info!(?users, "added SCRAM credentials given with --add-scram");
    Ok(())
}

/// Creates `__consumer_offsets` if the image does not have it yet: compacted, with
/// `offsets.topic.num.partitions` partitions and `offsets.topic.replication.factor` replicas.
/// Like Kafka, a new cluster waits until that many brokers have registered (capped at the
/// number of controller voters, so a single node gets a factor of one) rather than creating
/// an under-replicated offsets topic.
pub async fn ensure_offsets_topic(
    config: &BrokerConfig,
    quorum: &MetadataQuorum,
    topics: &TopicRegistry,
) -> anyhow::Result<()> {
    let factor = config
        .cluster
        .offsets_topic_replication_factor
        .min(config.cluster.voters.len().max(1) as i16);
    let mut images = quorum.watch();
    loop {
        let image = images.borrow_and_update().clone();
        if image.topics.contains_key(OFFSETS_TOPIC) {
            topics.reconcile_latest(config, || quorum.image());
            return Ok(());
        }
        let alive = image.brokers.values().filter(|b| !b.fenced).count();
        if alive >= factor as usize {
            break;
        }
        match tokio::time::timeout(WAITING_LOG_INTERVAL, images.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => anyhow::bail!("the metadata quorum stopped"),
            Err(_) => tracing::info!(
                registered = alive,
                needed = factor,
                "waiting for brokers to register before creating {OFFSETS_TOPIC}"
            ),
        }
    }
    let command = MetadataCommand::CreateTopic {
        name: OFFSETS_TOPIC.to_owned(),
        id: Uuid::new_v4(),
        partitions: config.offsets_topic_partitions,
        replication_factor: factor,
        assignments: None,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    let created = retry_until_applied("creating the offsets topic", || {
        quorum.propose(command.clone())
    })
    .await?;
    match created {
        CommandResult::Refused(error) if error.code != ErrorCode::TopicAlreadyExists => {
            anyhow::bail!("cannot create {OFFSETS_TOPIC}: {error}")
        }
        _ => {}
    }
    topics.reconcile_latest(config, || quorum.image());
    Ok(())
}

/// How long a start-up proposal waits before trying again.
const START_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Runs a start-up proposal until the quorum answers it. A failure that is not fatal (a
/// timeout, no leader yet, or leadership changing while the proposal was pending, as happens
/// when several nodes start together) may or may not have been applied, and every start-up
/// proposal is safe to repeat, so it is repeated; a fatal one (storage) ends the start.
async fn retry_until_applied<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, QuorumError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QuorumError>>,
{
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(error) if !error.is_fatal() => {
                tracing::info!(%error, "{what}; retrying");
                tokio::time::sleep(START_RETRY_BACKOFF).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Applies every new image to the topic registry, for as long as the broker runs; while
/// partitions are offline (their logs could not be opened), applies the current one again
/// when the registry asks, to retry opening them.
pub async fn follow_image(broker: Arc<Broker>) {
    let mut images = broker.quorum.watch();
    loop {
        let reopen_after = broker.topics.reopen_after();
        tokio::select! {
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(reopen_after.unwrap_or_default()), if reopen_after.is_some() => {}
        }
        images.borrow_and_update();
        sync_registry(&broker).await;
    }
}

/// Reconciles the registry with the latest image on a blocking thread (it opens and deletes
/// logs). Several run at once (the image-following task's, proposals'); each applies the image
/// current when its turn comes, never an older one than the last.
async fn sync_registry(broker: &Arc<Broker>) {
    let syncing = broker.clone();
    let reconciled = tokio::task::spawn_blocking(move || {
        let quorum = &syncing.quorum;
        let reconciled = (syncing.topics).reconcile_latest(&syncing.config, || quorum.image());
        if reconciled.leadership_changed {
            // Offsets partitions this node now leads: load what the previous leader committed.
            syncing.groups.follow_leadership(&syncing.topics);
        }
        if reconciled.leadership_changed || reconciled.topics_changed {
            // Transaction state partitions likewise (the topic itself may have just appeared).
            syncing.transactions.follow_leadership(&syncing);
        }
        reconciled
    });
    match reconciled.await {
        Ok(reconciled) if !reconciled.topics_changed => {}
        Ok(_) => broker.fetchers.update(broker),
        // Cancelled: the runtime is shutting down.
        Err(error) if error.is_cancelled() => {}
        Err(error) => {
            tracing::error!(%error, "reconciling the topic registry panicked");
            broker.fetchers.update(broker);
        }
    }
}

/// Proposes `command` and, once it is applied here, brings the registry up to date.
pub async fn propose(
    broker: &Arc<Broker>,
    command: MetadataCommand,
) -> Result<CommandResult, BrokerError> {
    // Refused here, before the metadata log holds a change this node could not carry out.
    broker.capacity.admit(&broker.quorum.image(), &command)?;
    let result = tokio::time::timeout(PROPOSAL_TIMEOUT, broker.quorum.propose(command))
        .await
        .map_err(|_| {
            BrokerError::new(
                ErrorCode::RequestTimedOut,
                "the metadata quorum did not commit the change in time",
            )
        })?
        .map_err(quorum_error)?;
    sync_registry(broker).await;
    match result {
        CommandResult::Refused(error) => Err(BrokerError::new(error.code, error.message)),
        done => Ok(done),
    }
}

/// The Kafka error a client should see for a quorum failure.
fn quorum_error(error: QuorumError) -> BrokerError {
    let code = match &error {
        QuorumError::Timeout { .. } => ErrorCode::RequestTimedOut,
        // Like Kafka's controller when it resigns with a write pending: the client refreshes
        // its metadata and asks again (its retry may find the first attempt committed).
        QuorumError::NoLeader(_) | QuorumError::Interrupted(_) => ErrorCode::NotController,
        _ => ErrorCode::UnknownServerError,
    };
    BrokerError::new(code, error.to_string())
}

/// A producer id never handed out before in the cluster: from this broker's block, asking
/// the controller for the next block when it runs out.
pub async fn allocate_producer_id(broker: &Arc<Broker>) -> Result<ProducerId, BrokerError> {
    let mut ids = broker.producer_ids.lock().await;
    if ids.0 == ids.1 {
        let command = MetadataCommand::AllocateProducerIds {
            broker: broker.config.node_id,
            count: PRODUCER_ID_BLOCK,
        };
        let CommandResult::ProducerIds { first, count } = propose(broker, command).await? else {
            return Err(BrokerError::new(
                ErrorCode::UnknownServerError,
                "the controller answered a producer id request with something else",
            ));
        };
        *ids = (ProducerId(first), ProducerId(first + count));
    }
    let id = ids.0;
    ids.0 = ProducerId(id.0 + 1);
    Ok(id)
}

/// Leaves the cluster on a clean shutdown: in a cluster of several, asks the controller to
/// move this broker's leaderships away first, so clients fail over at once. Then stops the
/// quorum node.
pub async fn leave(broker: &Arc<Broker>) {
    if !broker.config.cluster.is_single_node() {
        let shutdown = broker.quorum.controlled_shutdown(broker.config.node_id);
        match tokio::time::timeout(Duration::from_secs(5), shutdown).await {
            Ok(Ok(())) => tracing::info!("controlled shutdown: leaderships moved"),
            Ok(Err(error)) => tracing::warn!(%error, "controlled shutdown failed"),
            Err(_) => tracing::warn!("controlled shutdown timed out"),
        }
    }
}
