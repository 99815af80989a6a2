//! Serving an axum app on a TCP listener, plain or TLS, holding at most
//! [`CONNECTIONS_MAX`] connections: the admin listener and the schema registry are served
//! this way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::state::Peer;

/// Binds `address`; a clear error when it cannot.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))
}

/// Serves `app` on `listener` until `shutdown` resolves, over HTTPS when `tls` is given,
/// holding at most [`CONNECTIONS_MAX`] connections: the admin listener and the schema
/// registry are served this way.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    what: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("{what}: listening on {scheme}://{local}");
    let app = app.into_make_service_with_connect_info::<Peer>();
    match tls {
        None => {
            let listener = PlainListener {
                listener,
                slots: connection_slots(),
            };
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

/// How long a TLS handshake on the admin listener may take.
const TLS_HANDSHAKE_MS_MAX: u64 = 10_000;
/// Handshakes finished and waiting for the server to take them.
const TLS_READY_MAX: usize = 64;

/// Accepts TCP connections and hands over those whose TLS handshake succeeded; handshakes run
/// as tasks of their own, so a slow or silent client holds up nobody else.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (sender, ready) = tokio::sync::mpsc::channel(TLS_READY_MAX);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = connection_slots();
        tokio::spawn(async move {
            loop {
                let slot = take_slot(&slots).await;
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
                            let _ = handover
                                .send((
                                    Counted {
                                        io: tls,
                                        _slot: slot,
                                    },
                                    peer,
                                ))
                                .await;
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

/// A TLS connection past its handshake, holding its connection slot.
type TlsConnection = Counted<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
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
struct PlainListener {
    listener: tokio::net::TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
}

impl axum::serve::Listener for PlainListener {
    type Io = Counted<tokio::net::TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        let slot = take_slot(&self.slots).await;
        let (io, peer) = axum::serve::Listener::accept(&mut self.listener).await;
        (Counted { io, _slot: slot }, Peer(peer))
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        self.listener.local_addr().map(Peer)
    }
}

/// Connections the admin listener holds open at most (TLS handshakes in progress included):
/// past it, it accepts nothing until one closes, so idle or slow HTTP clients cannot take the
/// descriptors the Kafka listeners need.
const CONNECTIONS_MAX: usize = 128;

fn connection_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX))
}

/// Waits for a free connection slot (the semaphore is never closed).
async fn take_slot(slots: &Arc<tokio::sync::Semaphore>) -> tokio::sync::OwnedSemaphorePermit {
    match slots.clone().acquire_owned().await {
        Ok(slot) => slot,
        Err(_) => std::future::pending().await,
    }
}

/// A connection holding its slot until it is dropped.
struct Counted<S> {
    io: S,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
