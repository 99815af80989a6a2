//! `strom bench idle-connections`: many client connections that, once set up, send nothing.
//!
//! Each connection is opened and negotiates API versions (one ApiVersions request, as every
//! Kafka client's connection does first), then stays idle until the end. Held by the
//! thousands, they show what an idle connection costs a broker: watch its resident memory
//! (the suite's idle-connections case reads it before they open and while they are held) and
//! check that it serves other clients meanwhile. At most `OPENING_MAX` are being set up at
//! once; all close together at the end. This process needs a descriptor per connection: the
//! `strom` binary raises its soft open-file limit to the hard one first.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use strom_client::{Connection, SecurityConfig};
use tokio::task::JoinSet;

use crate::args::{parse_seconds, CommonArgs};
use crate::cluster::open_connection;
use crate::error::BenchError;
use crate::report::Report;
use crate::stats::Latencies;

/// Connections being set up at once: enough to keep a broker's accept loop busy, few enough
/// not to overflow its listen backlog.
const OPENING_MAX: usize = 64;

#[derive(clap::Args, Debug, Clone)]
pub struct IdleConnectionsArgs {
    /// Connections to open (to the first bootstrap address) and hold.
    #[arg(long, short = 'c', default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections: u32,
    /// How long to hold them once all are set up.
    #[arg(long, short = 'd', default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Settings as the report shows them.
#[derive(Serialize)]
struct IdleConnectionsSettings {
    connections: u32,
    hold_s: f64,
}

/// What opening and holding the connections took.
pub struct HeldConnections {
    pub connections: usize,
    /// From connecting to the ApiVersions answer, per connection.
    pub setup_latencies: Latencies,
    /// From the first connect to the last connection set up.
    pub opening: Duration,
}

impl HeldConnections {
    pub fn connections_per_s(&self) -> f64 {
        self.connections as f64 / self.opening.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// `strom bench idle-connections`.
pub async fn run(args: IdleConnectionsArgs) -> Result<Report, BenchError> {
    let duration = args.duration;
    let held = hold(
        &args.common.bootstrap,
        &args.common.security()?,
        args.connections as usize,
        || {},
        tokio::time::sleep(duration),
    )
    .await?;
    let settings = IdleConnectionsSettings {
        connections: args.connections,
        hold_s: duration.as_secs_f64(),
    };
    let mut report = Report::new("idle-connections", "", &settings);
    report.connections = Some(held.connections as u64);
    report.connections_per_s = Some(held.connections_per_s());
    report.connection_setup_latency = held.setup_latencies.summary();
    Ok(report)
}

/// Opens `count` connections to the first address of `bootstrap`, calls `held` once all are
/// set up, keeps them open until `until` completes, then closes them.
pub async fn hold(
    bootstrap: &str,
    security: &SecurityConfig,
    count: usize,
    held: impl FnOnce(),
    until: impl Future<Output = ()>,
) -> Result<HeldConnections, BenchError> {
    let address = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
    let started = Instant::now();
    let (connections, setup_latencies) = open(address, security, count).await?;
    let opening = started.elapsed();
    held();
    until.await;
    drop(connections);
    Ok(HeldConnections {
        connections: count,
        setup_latencies,
        opening,
    })
}

/// `count` connections to `address`, each set up, and how long each took.
async fn open(
    address: &str,
    security: &SecurityConfig,
    count: usize,
) -> Result<(Vec<Arc<Connection>>, Latencies), BenchError> {
    let mut connections = Vec::with_capacity(count);
    let mut setup_latencies = Latencies::default();
    let mut opening = JoinSet::new();
    let mut started = 0;
    while connections.len() < count {
        while started < count && opening.len() < OPENING_MAX {
            let address = address.to_string();
            let security = security.clone();
            opening.spawn(async move {
                let connecting = Instant::now();
                let connection = open_connection(&address, &security).await?;
                Ok::<_, BenchError>((connection, connecting.elapsed()))
            });
            started += 1;
        }
        let opened = opening
            .join_next()
            .await
            .expect("connections are being opened")
            .expect("opening a connection does not panic");
        let (connection, took) = opened.map_err(|error| {
            BenchError::Broker(format!(
                "connection {} of {count} to {address} failed (a connection limit such as \
                 max.connections?): {error}",
                connections.len() + 1
            ))
        })?;
        setup_latencies.record(took);
        connections.push(connection);
    }
    Ok((connections, setup_latencies))
}
