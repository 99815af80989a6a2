//! The controller listener: accepts connections from other controllers and learners, reads
//! request frames, runs each request on its own task (so a slow one does not hold up the
//! rest), and writes responses back as they finish, tagged with their request's id.
//!
//! Lifecycle: [`serve`] runs until its task is aborted; it owns every connection task, and
//! each connection task owns its request tasks, so aborting `serve` stops them all.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::quorum::limits::{SERVER_CONNECTIONS_MAX, SERVER_REQUESTS_IN_FLIGHT_MAX};
use crate::quorum::network::frame;
use crate::quorum::network::rpc::{Request, RequestFrame, Response, ResponseFrame};

/// What answers requests: the quorum node.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request that arrived from `from`.
    fn handle(&self, request: Request, from: SocketAddr) -> impl Future<Output = Response> + Send;
}

/// Accepts and serves connections until the task running it is aborted.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) {
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
        connections.spawn(async move {
            serve_connection(stream, from, handler).await;
            drop(permit);
        });
    }
}

async fn serve_connection<H: Handler>(stream: TcpStream, from: SocketAddr, handler: Arc<H>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
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
