//! The admin listener: its shared state and its router.

use std::future::Future;
use std::net::SocketAddr;
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

/// Binds `address`; a clear error when it cannot.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {address} (admin.listen): {error}"))
}

/// Serves the admin listener on `listener` until `shutdown` resolves: over HTTPS when `tls`
/// is given (`admin.ssl.enable`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        listener = "admin",
        "listening on {scheme}://{local} (metrics, health, console)"
    );
    let app = router(state).into_make_service_with_connect_info::<Peer>();
    match tls {
        None => {
            let listener = PlainListener(listener);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(config) => {
            let listener = TlsListener::new(listener, config);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
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

/// How long a TLS handshake on the admin listener may take.
const TLS_HANDSHAKE_MS_MAX: u64 = 10_000;
/// Handshakes finished and waiting for the server to take them.
const TLS_READY_MAX: usize = 64;

/// Accepts TCP connections and hands over those whose TLS handshake succeeded; handshakes run
/// as tasks of their own, so a slow or silent client holds up nobody else.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (sender, ready) = tokio::sync::mpsc::channel(TLS_READY_MAX);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "admin listener: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, handover) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let limit = std::time::Duration::from_millis(TLS_HANDSHAKE_MS_MAX);
                    match tokio::time::timeout(limit, acceptor.accept(socket)).await {
                        Ok(Ok(tls)) => {
                            let _ = handover.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "admin listener: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "admin listener: TLS handshake timed out"),
                    }
                });
                if sender.is_closed() {
                    return;
                }
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Peer {
        *stream.remote_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, PlainListener>) -> Peer {
        *stream.remote_addr()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        match self.ready.recv().await {
            Some((io, peer)) => (io, Peer(peer)),
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer(self.local))
    }
}

/// Plain TCP, with the peer as a [`Peer`].
struct PlainListener(tokio::net::TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = tokio::net::TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        let (io, peer) = axum::serve::Listener::accept(&mut self.0).await;
        (io, Peer(peer))
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        self.0.local_addr().map(Peer)
    }
}
