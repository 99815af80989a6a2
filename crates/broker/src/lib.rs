//! Strom's broker: everything between the socket and the partitions.
//!
//! A request's path: [`network::listener`] accepts a connection (within `max.connections`) and
//! hands it to [`network::connection`], which reads size-prefixed frames (checking the size
//! before allocating), decodes them with `strom_protocol`, and calls [`handlers::dispatch`].
//! Handlers run in the connection's reader task in request order, so appends from one
//! connection land in the order they were sent; a handler that must wait (an acks=all
//! produce waiting for its partition's group commit and ISR, a fetch long-polling for data)
//! returns a future instead of a response, and the connection's writer runs those futures in
//! turn while writing responses strictly in request order. Everything about one partition
//! (log, producer state, high watermark, waiters) belongs to its `strom_partition::Partition`;
//! handlers validate requests, call it, and build answers.
//!
//! State: one [`Broker`] per process, shared by `Arc`: the config, this node's part in the
//! metadata quorum ([`cluster`]), the [`topics::TopicRegistry`] (the image's topics and the
//! partitions this node hosts, reconciled on every new image), the [`fetchers`] that follow
//! other leaders, and the [`groups`] runtime around the group coordinator. In the background:
//! [`cluster::follow_image`], [`isr`] (shrinking ISRs and proposing partitions' ISR changes),
//! [`retention`], the [`cleaner`], the group ticker, the [`transactions`] ticker and
//! [`listener_tls::follow`] (the TLS listeners' certificate and trust, reloaded when
//! AlterConfigs changes them). [`resources`] reads (and at start-up raises) the process's
//! open-file limit, which bounds what the broker keeps open.
//!
//! Imports point one way: `network` -> `handlers` -> `cluster`, `groups`, `fetchers`, `isr`
//! -> `topics` -> `config`, `error`; `transactions` -> `cluster`; `cluster` reaches the
//! fetchers, groups and transactions only through the [`Broker`] it is given.

pub mod authorization;
pub mod capacity;
pub mod cleaner;
pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod fetchers;
pub mod groups;
pub mod handlers;
pub mod isr;
pub mod listener_tls;
pub mod log_levels;
pub mod network;
pub mod quotas;
pub mod replication_quota;
pub mod request_quotas;
pub mod resources;
pub mod retention;
pub mod schema_validation;
pub mod security;
pub mod telemetry;
pub mod topics;
pub mod transactions;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_metadata::MetadataQuorum;
use strom_types::ProducerId;
use tokio::sync::watch;

pub use config::{BrokerConfig, ConfigError};

/// The broker's shared state.
pub struct Broker {
    pub config: BrokerConfig,
    /// How many open files and partitions this node may hold (see [`capacity`]).
    pub capacity: capacity::NodeCapacity,
    /// This node's part in the metadata quorum: the image, proposals, broker registration.
    pub quorum: MetadataQuorum,
    pub topics: topics::TopicRegistry,
    pub groups: Arc<groups::GroupRuntime>,
    /// The runtime around the transaction coordinator.
    pub transactions: transactions::TransactionRuntime,
    /// TLS, SASL and the authorizer (see [`security`]).
    pub security: security::SecurityRuntime,
    /// The TLS listeners' configurations, swapped when their files change (see
    /// [`listener_tls`]).
    pub listener_tls: listener_tls::ListenerTls,
    /// The follower side of replication: one fetcher per leader this node follows.
    pub fetchers: fetchers::Fetchers,
    /// The block of producer ids the controller handed this broker: next to hand out, end.
    producer_ids: tokio::sync::Mutex<(ProducerId, ProducerId)>,
    /// Set once shutdown begins; waiting fetches answer at once instead of waiting it out.
    stopping: watch::Sender<bool>,
    /// Set as soon as a shutdown is asked for, while leaderships move away and before
    /// `stopping`: readiness checks answer "not ready" from here.
    draining: std::sync::atomic::AtomicBool,
    /// The effective config for the image's dynamic broker configs it was made from (see
    /// [`Broker::effective_config`]).
    effective: parking_lot::Mutex<EffectiveConfig>,
    /// The produce and fetch rates measured against client quotas.
    pub quota_rates: quotas::QuotaRates,
    /// The replication throttles' rates: bytes this node sent as a leader, and fetched as a
    /// follower, for throttled replicas.
    pub leader_throttle: replication_quota::ReplicationQuota,
    pub follower_throttle: replication_quota::ReplicationQuota,
    /// Registered schema ids, for topics with schema validation on (see
    /// [`schema_validation`]).
    pub schema_validation: schema_validation::SchemaValidation,
}

/// `config` with the dynamic broker configs of `made_from` applied.
struct EffectiveConfig {
    made_from: Arc<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>,
    config: Arc<BrokerConfig>,
}

impl Broker {
    /// The config in force: the one given at start (`config`) with the dynamic broker configs
    /// of the current metadata image applied (AlterConfigs). Recomputed only when those change.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        let dynamic = self.quorum.image().broker_configs.clone();
        let mut effective = self.effective.lock();
        if !Arc::ptr_eq(&effective.made_from, &dynamic) {
            effective.config = Arc::new(self.config.with_dynamic(&dynamic));
            effective.made_from = dynamic;
        }
        effective.config.clone()
    }

    /// Waits until `period` (read from the effective config, in milliseconds) has passed since
    /// `since`, re-reading it whenever the metadata image changes, so that a period shortened
    /// by AlterConfigs takes effect at once rather than after the old one. Returns false when
    /// the metadata quorum stopped.
    pub async fn wait_period(&self, since: Instant, period: fn(&BrokerConfig) -> u64) -> bool {
        let mut images = self.quorum.watch();
        loop {
            let deadline = since + Duration::from_millis(period(&self.effective_config()));
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => return true,
                changed = images.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// How many client connections the listeners admit now: `max.connections` of the
    /// effective config (AlterConfigs changes it at runtime), else the bound derived at start.
    pub fn connections_max(&self) -> usize {
        (self.effective_config().connections_max).unwrap_or(self.capacity.connections)
    }

    /// This node's id.
    pub fn node(&self) -> strom_types::BrokerId {
        strom_types::BrokerId(self.config.node_id)
    }

    /// Where clients of `listener` reach this node (the first listener's address when it has
    /// no listener of that name).
    pub fn advertised(&self, listener: &str) -> (String, u16) {
        let listeners = self.config.client_listeners().unwrap_or_default();
        (listeners.iter().find(|l| l.name == listener))
            .map(|l| l.advertised.clone())
            .unwrap_or_else(|| self.config.advertise.clone())
    }

    /// How this broker connects to the others (replica fetches, transaction markers): the
    /// inter-broker listener's protocol; over TLS it presents its own keystore (so a broker
    /// certificate's principal, a super user, passes the peers' authorizers) and trusts the
    /// truststore: those the listeners serve now, so a keystore changed at runtime is used by
    /// the next connection. SASL between brokers is not offered: use SSL with mutual TLS.
    pub fn inter_broker_security(&self) -> strom_client::SecurityConfig {
        use crate::config::listeners::SecurityProtocol;
        let protocol = (self.config.inter_broker_listener())
            .map(|listener| listener.protocol)
            .unwrap_or(SecurityProtocol::Plaintext);
        let security = (self.listener_tls.in_force())
            .unwrap_or_else(|| listener_tls::TlsSettings::of(&self.config));
        let protocol = match protocol {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                strom_client::SecurityProtocol::Ssl
            }
            _ => strom_client::SecurityProtocol::Plaintext,
        };
        strom_client::SecurityConfig {
            protocol,
            tls: strom_client::TlsConfig {
                ca_location: security.truststore_location,
                certificate_location: security.keystore_location.clone(),
                key_location: security.keystore_location,
                key_password: security.key_password,
                verify_hostname: false,
            },
            sasl: None,
        }
    }

    /// The SASL servers' options (the OAUTHBEARER validator).
    pub fn sasl_options(&self) -> &strom_security::sasl::ServerOptions {
        self.security.sasl_options()
    }

    /// Whether a shutdown has been asked for (leaderships moving away, or stopping).
    pub fn is_shutting_down(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire) || *self.stopping.borrow()
    }

    /// Tells every waiting request that the broker is stopping.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// A receiver that sees [`Broker::begin_shutdown`]; already `true` once it happened.
    pub fn watch_shutdown(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// Starts this node's part in the metadata quorum, waits for a controller leader, registers
/// the broker, opens the logs the image assigns it, binds the listener, and serves until
/// `shutdown` resolves; then moves its leaderships away (in a cluster of several), stops
/// accepting, lets in-flight requests finish, and flushes and closes the logs.
pub async fn run(config: BrokerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with(config, shutdown, |_| {}).await
}

/// [`run`], handing the broker to `serving` once it has joined the cluster, opened its logs
/// and bound its listeners (the admin listener's readiness and metrics start from there).
pub async fn run_with(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
    serving: impl FnOnce(Arc<Broker>),
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    config.validate_listeners()?;
    let security = security::SecurityRuntime::new(&config)?;
    // The listeners' TLS files are read now, so a bad keystore stops the start at once.
    let listener_tls = listener_tls::ListenerTls::new(&config)?;
    let listener_contexts = listener_contexts(&config, &listener_tls)?;
    let capacity = capacity::NodeCapacity::derive(&config);
    strom_log::FilePool::process().set_capacity(capacity.open_files);
    tracing::info!(
        descriptor_limit = capacity.descriptor_limit,
        "capacity: {} open segment files (log.max.open.files), {} partitions per broker (max.broker.partitions), {} connections (max.connections)",
        capacity.open_files,
        capacity.partitions,
        capacity.connections
    );
    let quorum = tokio::select! {
        started = cluster::join(&config) => started?,
        () = &mut shutdown => {
            tracing::info!("stopped before the cluster was ready");
            return Ok(());
        }
    };
    let (proposals, proposed) = isr::proposal_channel();
    let topics = topics::TopicRegistry::new(&config, proposals)?;
    let image = quorum.image();
    let (open_config, topics) = (config.clone(), Arc::new(topics));
    let opening = topics.clone();
    tokio::task::spawn_blocking(move || {
        opening.reconcile(&open_config, &image);
        opening.delete_orphans();
    })
    .await?;
    cluster::ensure_offsets_topic(&config, &quorum, &topics).await?;
    cluster::add_bootstrap_scram(&config, &quorum).await?;
    let (open_config, opening) = (config.clone(), topics.clone());
    let groups = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let groups = groups::GroupRuntime::open(&opening, &open_config, open_config.group)?;
        Ok(Arc::new(groups))
    })
    .await??;
    let topics = Arc::into_inner(topics).expect("the registry is not shared yet");
    topics.finish_start()?;
    let ticker = tokio::spawn(groups.clone().run_ticker());
    let (stopping, _) = watch::channel(false);
    let transactions = transactions::TransactionRuntime::new(&config);
    let effective = EffectiveConfig {
        made_from: Arc::default(),
        config: Arc::new(config.clone()),
    };
    let broker = Arc::new(Broker {
        config,
        capacity,
        quorum,
        topics,
        groups,
        transactions,
        security,
        listener_tls,
        fetchers: fetchers::Fetchers::default(),
        producer_ids: tokio::sync::Mutex::new((ProducerId(0), ProducerId(0))),
        stopping,
        draining: Default::default(),
        effective: parking_lot::Mutex::new(effective),
        quota_rates: quotas::QuotaRates::default(),
        leader_throttle: Default::default(),
        follower_throttle: Default::default(),
        schema_validation: Default::default(),
    });
    broker.fetchers.update(&broker);
    let loading = broker.clone();
    tokio::task::spawn_blocking(move || loading.transactions.follow_leadership(&loading)).await?;
    let transaction_ticker = tokio::spawn(transactions::run_ticker(broker.clone()));
    let follower = tokio::spawn(cluster::follow_image(broker.clone()));
    let proposer = tokio::spawn(isr::run_proposer(broker.clone(), proposed));
    let isr_maintenance = tokio::spawn(isr::run_maintenance(broker.clone()));
    let mut listeners = Vec::new();
    for (address, context) in listener_contexts {
        let socket = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))?;
        let local = socket.local_addr()?;
        tracing::info!(
            listener = context.name,
            protocol = context.protocol.name(),
            "listening on {local}"
        );
        listeners.push(network::listener::BoundListener { socket, context });
    }
    let retention = tokio::spawn(retention::run(broker.clone()));
    let cleaner = tokio::spawn(cleaner::run(broker.clone()));
    let jwks = tokio::spawn(security::refresh_jwks(broker.clone()));
    let tls_follower = tokio::spawn(listener_tls::follow(broker.clone()));
    serving(broker.clone());
    // Like Kafka's controlled shutdown: leaderships move away while this node still serves,
    // so producers and consumers fail over to the new leaders before the listener closes.
    let leaving = broker.clone();
    let shutdown = async move {
        shutdown.await;
        leaving
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        cluster::leave(&leaving).await;
    };
    network::listener::serve(broker.clone(), listeners, shutdown).await;
    retention.abort();
    cleaner.abort();
    jwks.abort();
    tls_follower.abort();
    ticker.abort();
    transaction_ticker.abort();
    follower.abort();
    proposer.abort();
    isr_maintenance.abort();
    broker.fetchers.stop();
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || closing.topics.close()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Each client listener's address and context; SSL listeners share one acceptor, SASL_SSL
/// listeners another (see [`listener_tls::ListenerTls::acceptor`]).
fn listener_contexts(
    config: &BrokerConfig,
    tls: &listener_tls::ListenerTls,
) -> anyhow::Result<
    Vec<(
        std::net::SocketAddr,
        Arc<network::authentication::ListenerContext>,
    )>,
> {
    Ok((config.client_listeners()?.into_iter())
        .map(|listener| {
            let context = network::authentication::ListenerContext {
                tls: tls.acceptor(listener.protocol),
                protocol: listener.protocol,
                connections: telemetry::ListenerConnections::new(&listener.name),
                name: listener.name,
            };
            (listener.address, Arc::new(context))
        })
        .collect())
}
