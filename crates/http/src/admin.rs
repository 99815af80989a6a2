//! The admin listener: its shared state and its router.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use strom_broker::Broker;

/// The admin listener's port when `admin.listen` is not given (Redpanda's admin API port).
pub const ADMIN_PORT_DEFAULT: u16 = 9644;

/// What every handler of the admin listener reads: the broker once it serves, and the
/// process's metrics recorder.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set once, when the broker has joined the cluster and opened its listeners.
    broker: OnceLock<Arc<Broker>>,
    prometheus: PrometheusHandle,
    process: metrics_process::Collector,
    /// The console API's own state (its Kafka client), made on first use.
    api: crate::api::ApiState,
}

impl AdminState {
    pub fn new(prometheus: PrometheusHandle) -> AdminState {
        let process = metrics_process::Collector::default();
        process.describe();
        AdminState {
            inner: Arc::new(Inner {
                broker: OnceLock::new(),
                prometheus,
                process,
                api: crate::api::ApiState::default(),
            }),
        }
    }

    /// Hands over the broker once it serves clients.
    pub fn serving(&self, broker: Arc<Broker>) {
        let _ = self.inner.broker.set(broker);
    }

    /// The broker, once it serves.
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.inner.broker.get()
    }

    pub(crate) fn prometheus(&self) -> &PrometheusHandle {
        &self.inner.prometheus
    }

    pub(crate) fn process(&self) -> &metrics_process::Collector {
        &self.inner.process
    }

    pub(crate) fn api(&self) -> &crate::api::ApiState {
        &self.inner.api
    }
}

/// Every route of the admin listener.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .merge(crate::exposition::routes())
        .merge(crate::health::routes())
        .nest("/api", crate::api::routes())
        .merge(crate::console::routes())
        .with_state(state)
}

/// Binds `address`; a clear error when it cannot.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {address} (admin.listen): {error}"))
}

/// Serves the admin listener on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(local) = listener.local_addr() {
        tracing::info!(
            listener = "admin",
            "listening on {local} (metrics, health, console)"
        );
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
