//! The controller listener: accepts connections from other controllers and learners, reads
//! request frames, runs each request on its own task (so a slow one does not hold up the
//! rest), and writes responses back as they finish, tagged with their request's id. With TLS,
//! a connection first completes a handshake (bounded by [`TLS_HANDSHAKE_TIMEOUT_MS`]) on its
//! own task, so a peer that fails or stalls it costs that connection only.
//!
//! Lifecycle: [`serve`] runs until its task is aborted; it owns every connection task, and
//! each connection task owns its request tasks, so aborting `serve` stops them all.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::quorum::limits::{
    SERVER_CONNECTIONS_MAX, SERVER_REQUESTS_IN_FLIGHT_MAX, TLS_HANDSHAKE_TIMEOUT_MS,
};
use crate::quorum::network::frame;
use crate::quorum::network::rpc::{Request, RequestFrame, Response, ResponseFrame};

/// What answers requests: the quorum node.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request that arrived from `from`.
    fn handle(&self, request: Request, from: SocketAddr) -> impl Future<Output = Response> + Send;
}

/// Accepts and serves connections until the task running it is aborted. With `tls`, a
/// connection is served only once its TLS handshake succeeds; `tls` decides whether the peer
/// must present a certificate (the quorum's configuration requires one).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<H>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let connections_free = Arc::new(Semaphore::new(SERVER_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = connections_free
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!("the controller listener failed to accept: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            serve_connection(stream, from, acceptor, handler).await;
            drop(permit);
        });
    }
}

/// Serves one accepted connection: over TLS once the handshake succeeds, else as it is.
async fn serve_connection<H: Handler>(
    stream: TcpStream,
    from: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    handler: Arc<H>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        // Plain TCP keeps its owned halves: no lock between the reader and the writer.
        let (reader, writer) = stream.into_split();
        return serve_frames(reader, writer, from, handler).await;
    };
    let Some(stream) = accept_tls(&acceptor, stream, from).await else {
        return;
    };
    let (reader, writer) = tokio::io::split(stream);
    serve_frames(reader, writer, from, handler).await;
}

/// Runs the server side of the TLS handshake, for at most [`TLS_HANDSHAKE_TIMEOUT_MS`]. A peer
/// that fails it (a certificate from another CA, none at all, or not TLS) or stalls gets one
/// log line and None: the caller drops the connection.
async fn accept_tls(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    from: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let handshake_timeout = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::warn!(%from, "refusing a controller connection: the TLS handshake failed: {error}");
            None
        }
        Err(_) => {
            tracing::warn!(
                %from,
                "refusing a controller connection: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT_MS} ms"
            );
            None
        }
    }
}

/// Reads request frames until the peer stops sending, runs each on its own task, and writes
/// the responses as they finish. Generic over the halves so that plain TCP and TLS share it
/// at no cost to either.
async fn serve_frames<H, R, W>(mut reader: R, mut writer: W, from: SocketAddr, handler: Arc<H>)
where
    H: Handler,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbox, mut queue) = mpsc::channel::<Vec<u8>>(SERVER_REQUESTS_IN_FLIGHT_MAX);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if frame::write(&mut writer, &bytes).await.is_err() {
                break;
            }
        }
    });
    let requests_free = Arc::new(Semaphore::new(SERVER_REQUESTS_IN_FLIGHT_MAX));
    loop {
        while tasks.try_join_next().is_some() {}
        let body = match frame::read(&mut reader).await {
            Ok(Some(body)) => body,
            Ok(None) => break,
            Err(error) if frame::is_oversized(&error) => {
                tracing::warn!(%from, "closing a controller connection: {error}");
                break;
            }
            Err(error) => {
                tracing::debug!(%from, "closing a controller connection: {error}");
                break;
            }
        };
        let Ok(RequestFrame { id, request }) = serde_json::from_slice(&body) else {
            tracing::warn!(%from, "closing a controller connection: undecodable request");
            break;
        };
        let permit = requests_free
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let handler = handler.clone();
        let outbox = outbox.clone();
        tasks.spawn(async move {
            let response = handler.handle(request, from).await;
            let bytes = frame::encode(&ResponseFrame { id, response }).unwrap_or_else(|size| {
                let failed = Response::Failed(format!("a response of {size} bytes is too large"));
                frame::encode(&ResponseFrame {
                    id,
                    response: failed,
                })
                .expect("small")
            });
            let _ = outbox.send(bytes).await;
            drop(permit);
        });
    }
    // The peer stopped sending: let the requests already read finish and be answered.
    drop(outbox);
    while tasks.join_next().await.is_some() {}
}
