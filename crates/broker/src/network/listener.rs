//! Accepts client connections, at most `max.connections` at once, until shutdown; then stops
//! accepting, tells every connection to stop reading, and gives in-flight requests time to
//! finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection;
use crate::Broker;

/// How long shutdown waits for in-flight requests before cutting connections.
const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(broker.config.connections_max));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, limit = broker.config.connections_max, "max.connections reached; refusing connection");
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    connections.spawn(connection::serve(broker.clone(), socket, peer, stopped.clone(), slot));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    if error.is_panic() {
                        tracing::error!(%error, "a connection task panicked; the broker carries on");
                    }
                }
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections, finishing in-flight requests"
    );
    let _ = stop.send(true);
    broker.begin_shutdown();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX), drain)
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing their connections");
        connections.shutdown().await;
    }
}
