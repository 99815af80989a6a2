//! The admin listener: its shared state and its router.

use std::future::Future;
use std::sync::Arc;

use axum::Router;

pub use crate::state::{AdminState, Peer};

/// The admin listener's port when `admin.listen` is not given (Redpanda's admin API port).
pub const ADMIN_PORT_DEFAULT: u16 = 9644;

/// Every route of the admin listener; `/metrics` and `/api/` behind [`crate::auth::guard`].
pub fn router(state: AdminState) -> Router {
    let guarded = Router::new()
        .merge(crate::exposition::routes())
        .nest("/api", crate::api::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ));
    Router::new()
        .merge(guarded)
        .merge(crate::health::routes())
        .merge(crate::console::routes())
        .with_state(state)
}

/// Serves the admin listener on `listener` until `shutdown` resolves: over HTTPS when `tls`
/// is given (`admin.ssl.enable`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let what = "admin (metrics, health, console)";
    crate::listener::serve_router(listener, tls, router(state), what, shutdown).await
}

/// The admin listener's TLS configuration (`admin.ssl.enable`): the broker's keystore, no
/// client certificates (callers log in with HTTP Basic).
pub fn tls_config(
    config: &strom_broker::BrokerConfig,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let security = &config.security;
    let keystore = (security.keystore_location.clone())
        .ok_or_else(|| anyhow::anyhow!("admin.ssl.enable=true needs ssl.keystore.location"))?;
    let files = strom_security::tls::ServerTlsFiles {
        keystore_location: keystore,
        key_password: security.key_password.clone(),
        truststore_location: None,
        client_auth: strom_security::tls::ClientAuth::None,
    };
    let mut config = (*strom_security::tls::server_config(&files)
        .map_err(|error| anyhow::anyhow!("admin listener TLS: {error}"))?)
    .clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub use crate::listener::bind;
