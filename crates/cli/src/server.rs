//! `strom server`: runs a broker. With no flags: one node on 127.0.0.1:9092, data in
//! ./strom-data. Settings apply in this order, later ones winning: built-in defaults, the
//! `--config` TOML file, `--set KEY=VALUE` overrides, then the dedicated flags.

use std::path::PathBuf;

use strom_broker::{resources, BrokerConfig};

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to accept clients on (Kafka's `listeners`), HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address clients are told to connect to (Kafka's `advertised.listeners`); defaults to --listen.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Directory for partition logs and metadata (Kafka's `log.dirs`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker settings with Kafka's names, e.g. `log.retention.ms = 60000`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One broker setting by its Kafka name; repeatable. Example: --set num.partitions=3
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// This node's id (Kafka's `node.id`), unique in the cluster.
    #[arg(long)]
    node_id: Option<i32>,
    /// Where the admin listener serves /metrics, health and the web console (`admin.listen`),
    /// HOST:PORT. Default: the client listener's host, port 9644.
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<String>,
    /// Where the schema registry (Confluent's REST API) is served (`schema.registry.listen`),
    /// HOST:PORT. Default: the client listener's host, port 8081.
    #[arg(long, value_name = "HOST:PORT")]
    schema_registry_listen: Option<String>,
    /// Where this node serves the other controllers (metadata quorum traffic), HOST:PORT.
    /// Needed in a cluster of several nodes.
    #[arg(long, value_name = "HOST:PORT")]
    controller_listen: Option<String>,
    /// The controller voters (Kafka's `controller.quorum.voters`): ID@HOST:PORT,... Without
    /// it the node is a cluster of one.
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controller_quorum: Option<String>,
    /// A SCRAM credential to create at start when that user has none of that mechanism yet,
    /// as Kafka's `kafka-storage format --add-scram`; repeatable.
    /// Example: --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'
    #[arg(
        long = "add-scram",
        value_name = "MECHANISM=[name=USER,password=PASSWORD]"
    )]
    add_scram: Vec<String>,
}

fn build_config(args: &ServerArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        config.apply_file(path)?;
    }
    for setting in &args.settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set takes KEY=VALUE, not '{setting}'"))?;
        config.set(key.trim(), value.trim())?;
    }
    // Each flag is the key of the same meaning given once more, so it wins and DescribeConfigs
    // reports it as given.
    if let Some(listen) = &args.listen {
        config.set("listeners", listen)?;
    }
    if let Some(advertise) = &args.advertise {
        config.set("advertised.listeners", advertise)?;
    }
    if config.given("advertised.listeners").is_none() {
        // Like Kafka: advertise the listener, with a wildcard host replaced by loopback.
        let host = match config.listen.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            ip => ip.to_string(),
        };
        config.advertise = (host, config.listen.port());
    }
    if let Some(dir) = &args.data_dir {
        // Not through `log.dirs`, which keeps the first of a comma-separated list: the flag
        // takes any path.
        config.data_dir = dir.clone();
    }
    if let Some(node_id) = args.node_id {
        config.set("node.id", &node_id.to_string())?;
    }
    if let Some(listen) = &args.admin_listen {
        config.set("admin.listen", listen)?;
    }
    if let Some(listen) = &args.schema_registry_listen {
        config.set("schema.registry.listen", listen)?;
    }
    if let Some(listen) = &args.controller_listen {
        config.set("controller.listeners", listen)?;
    }
    if let Some(voters) = &args.controller_quorum {
        config.set("controller.quorum.voters", voters)?;
    }
    for credential in &args.add_scram {
        let parsed = strom_broker::config::listeners::parse_add_scram(credential)
            .map_err(|reason| anyhow::anyhow!("--add-scram '{credential}': {reason}"))?;
        config.security.bootstrap_scram.push(parsed);
    }
    config.validate_listeners()?;
    if let Some(listener) = config.controller_listener()? {
        config.cluster.controller_listen = Some(listener.address);
    }
    if !config.cluster.is_single_node() && config.cluster.controller_listen.is_none() {
        anyhow::bail!(
            "a node of a multi-node cluster needs --controller-listen HOST:PORT \
             (its entry in --controller-quorum)"
        );
    }
    Ok(config)
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = build_config(&args)?;
    install_logging(config.log_format_json);
    // Before anything registers a metric: handles made earlier would count nowhere.
    let prometheus = strom_http::exposition::install()?;
    // Before anything opens a file: partitions and connections all take descriptors.
    match resources::raise_open_files_limit() {
        Ok(raised) => tracing::info!("{raised}"),
        Err(error) => tracing::warn!("{error}"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let admin = strom_http::AdminState::new(prometheus.clone(), &config);
        let admin_tls = match config.admin_ssl {
            true => Some(strom_http::admin::tls_config(&config)?),
            false => None,
        };
        let registry_tls = admin_tls.clone();
        let upkeep = tokio::spawn(strom_http::exposition::run_upkeep(prometheus));
        let admin_server = match bind_admin(&config).await? {
            Some(listener) => {
                let serving = admin.clone();
                Some(tokio::spawn(async move {
                    let stopped = std::future::pending::<()>();
                    let served = strom_http::admin::serve(listener, admin_tls, serving, stopped);
                    if let Err(error) = served.await {
                        tracing::error!(%error, "the admin listener stopped");
                    }
                }))
            }
            None => None,
        };
        let registry = strom_http::registry::RegistryState::new(admin.clone());
        let registry_server = match bind_registry(&config).await? {
            Some(listener) => {
                let registry = registry.clone();
                let tls = registry_tls;
                Some(tokio::spawn(async move {
                    let stopped = std::future::pending::<()>();
                    let served = strom_http::registry::serve(listener, tls, registry, stopped);
                    if let Err(error) = served.await {
                        tracing::error!(%error, "the schema registry stopped");
                    }
                }))
            }
            None => None,
        };
        let serving = admin.clone();
        let result = strom_broker::run_with(config, shutdown_signal(), move |broker| {
            registry.serving(&broker);
            serving.serving(broker)
        })
        .await;
        upkeep.abort();
        for server in [admin_server, registry_server].into_iter().flatten() {
            server.abort();
        }
        result
    })
}

/// The admin listener's socket: `admin.listen` as given (failing the start when it cannot be
/// bound), else the client listener's host on port 9644, skipped with a warning when that is
/// taken (a second `strom server` on the same host still starts).
async fn bind_admin(config: &BrokerConfig) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if let Some(address) = config.admin_listen {
        return strom_http::admin::bind(address).await.map(Some);
    }
    let address = std::net::SocketAddr::new(config.listen.ip(), strom_http::ADMIN_PORT_DEFAULT);
    match strom_http::admin::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) => {
            tracing::warn!("no admin listener (metrics, health, console): {error}; choose another address with --admin-listen");
            Ok(None)
        }
    }
}

/// The schema registry's socket, as [`bind_admin`] binds the admin listener's (port 8081 by
/// default).
async fn bind_registry(config: &BrokerConfig) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if let Some(address) = config.schema_registry_listen {
        return strom_http::admin::bind(address).await.map(Some);
    }
    let port = strom_http::registry::REGISTRY_PORT_DEFAULT;
    let address = std::net::SocketAddr::new(config.listen.ip(), port);
    match strom_http::admin::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) => {
            tracing::warn!(
                "no schema registry: {error}; choose another address with --schema-registry-listen"
            );
            Ok(None)
        }
    }
}

/// Logs to stderr, as text (colours only on a terminal: not in log files) or one JSON object
/// per line, through a filter from `STROM_LOG` that IncrementalAlterConfigs on the
/// BROKER_LOGGER resource can replace at runtime (`strom_broker::log_levels`).
fn install_logging(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{reload, EnvFilter, Layer};
    // openraft narrates every election and replication step at info.
    let initial = std::env::var("STROM_LOG").unwrap_or_else(|_| "info,openraft=warn".to_owned());
    let filter =
        EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let (filter, handle) = reload::Layer::new(filter);
    let format = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let format = match json {
        true => format.json().boxed(),
        false => format
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .init();
    strom_broker::log_levels::install(
        &initial,
        Box::new(move |directives| {
            let filter = EnvFilter::try_new(directives).map_err(|error| error.to_string())?;
            handle.reload(filter).map_err(|error| error.to_string())
        }),
    );
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            listen: None,
            advertise: None,
            data_dir: None,
            config: None,
            settings: Vec::new(),
            node_id: None,
            admin_listen: None,
            schema_registry_listen: None,
            controller_listen: None,
            controller_quorum: None,
            add_scram: Vec::new(),
        }
    }

    #[test]
    fn flags_and_the_file_are_given_settings() {
        let file = std::env::temp_dir().join(format!("strom-server-{}.toml", std::process::id()));
        std::fs::write(&file, "advertised.listeners = \"broker.example:9999\"\n").unwrap();
        let config = build_config(&ServerArgs {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:19092".to_owned()),
            node_id: Some(4),
            ..args()
        });
        std::fs::remove_file(&file).unwrap();
        let config = config.unwrap();
        // The file's advertised address stays: only a missing one becomes the listener's.
        assert_eq!(config.advertise, ("broker.example".to_owned(), 9999));
        assert_eq!(config.node_id, 4);
        assert_eq!(config.given("node.id"), Some("4"));
        assert_eq!(config.given("listeners"), Some("127.0.0.1:19092"));

        let config = build_config(&ServerArgs {
            listen: Some("0.0.0.0:19093".to_owned()),
            ..args()
        })
        .unwrap();
        assert_eq!(config.advertise, ("127.0.0.1".to_owned(), 19093));
        assert_eq!(config.given("advertised.listeners"), None);
    }
}
