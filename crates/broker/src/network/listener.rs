//! Accepts client connections on every listener, at most `max.connections` at once in all,
//! until shutdown; then stops
//! accepting, tells every connection to stop reading, and gives in-flight requests time to
//! finish.
//!
//! A connection beyond `max.connections` is closed as soon as it is accepted (Kafka closes
//! those beyond `max.connections.per.ip` the same way). The limit is read from the effective
//! config at each accept, so AlterConfigs changes it at runtime; lowering it closes nothing
//! already open, it refuses new connections until the count is back under it. When `accept` itself fails, most
//! often for want of descriptors (EMFILE, ENFILE), the listener pauses briefly and tries
//! again: the pending connection stays queued, so retrying at once would spin, and the
//! connections already open go on being served meanwhile. Both are logged at most once per
//! `WARNING_INTERVAL` with a count of those not logged, so a flood costs a line a second.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::authentication::ListenerContext;
use super::connection;
use crate::Broker;

/// How long shutdown waits for in-flight requests before cutting connections.
const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;

/// The pause after a failed `accept`: short enough that new clients barely notice once a
/// descriptor is free again, long enough that ten retries a second cost no CPU to speak of.
const ACCEPT_RETRY_MS: u64 = 100;

/// At most one warning of a kind (refused connection, failed accept) this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// A bound listener and what its connections need to know about it.
pub struct BoundListener {
    pub socket: TcpListener,
    pub context: Arc<ListenerContext>,
}

/// One open client connection's place under `max.connections`, given back when dropped.
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
}

impl ConnectionSlot {
    /// A slot if fewer than `limit` are taken. Slots are taken by the accepting task alone,
    /// so the count cannot grow between the check and the increment.
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<ConnectionSlot> {
        if open.load(Ordering::Acquire) >= limit {
            return None;
        }
        open.fetch_add(1, Ordering::AcqRel);
        Some(ConnectionSlot { open: open.clone() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a connection slot given back twice");
    }
}

/// A connection accepted on one of the listeners.
struct Accepted {
    socket: TcpStream,
    peer: std::net::SocketAddr,
    listener: Arc<ListenerContext>,
}

pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<BoundListener>,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut limit = broker.connections_max();
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusals = super::warnings::Throttle::new(WARNING_INTERVAL);
    // One accept loop per listener; they hand connections over here, where the limit and
    // the connection tasks are.
    let (accepted_sender, mut accepted) = mpsc::channel::<Accepted>(64);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        acceptors.spawn(accept_loop(listener, accepted_sender.clone()));
    }
    drop(accepted_sender);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(Accepted { socket, peer, listener }) = accepted.recv() => {
                let now = broker.connections_max();
                if now != limit {
                    tracing::info!(from = limit, to = now, open = open.load(Ordering::Acquire), "max.connections changed");
                    limit = now;
                }
                let Some(slot) = ConnectionSlot::take(&open, limit) else {
                    if let Some(unlogged) = refusals.admit(Instant::now()) {
                        tracing::warn!(%peer, limit, unlogged, "max.connections reached; refusing connections");
                    }
                    continue;
                };
                let _ = socket.set_nodelay(true);
                connections.spawn(connection::serve(broker.clone(), socket, peer, listener, stopped.clone(), slot));
            }
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    if error.is_panic() {
                        tracing::error!(%error, "a connection task panicked; the broker carries on");
                    }
                }
            }
        }
    }
    acceptors.shutdown().await;
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

/// Accepts connections on one listener and hands them over, until the receiver is gone.
async fn accept_loop(listener: BoundListener, accepted: mpsc::Sender<Accepted>) {
    let mut accept_failures = super::warnings::Throttle::new(WARNING_INTERVAL);
    loop {
        match listener.socket.accept().await {
            Ok((socket, peer)) => {
                let context = listener.context.clone();
                let next = Accepted {
                    socket,
                    peer,
                    listener: context,
                };
                if accepted.send(next).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                if let Some(unlogged) = accept_failures.admit(Instant::now()) {
                    tracing::warn!(%error, unlogged, listener = listener.context.name, "accepting a connection failed; retrying in {ACCEPT_RETRY_MS} ms");
                }
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_a_limit_that_changes() {
        let open = Arc::new(AtomicUsize::new(0));
        let first = ConnectionSlot::take(&open, 2).unwrap();
        let second = ConnectionSlot::take(&open, 2).unwrap();
        assert!(ConnectionSlot::take(&open, 2).is_none());
        // Lowered below what is open: nothing is closed, nothing new is admitted.
        assert!(ConnectionSlot::take(&open, 1).is_none());
        drop(first);
        assert!(ConnectionSlot::take(&open, 1).is_none());
        drop(second);
        let third = ConnectionSlot::take(&open, 1).unwrap();
        // Raised: admitted again.
        let fourth = ConnectionSlot::take(&open, 3).unwrap();
        assert_eq!(open.load(Ordering::Acquire), 2);
        drop((third, fourth));
        assert_eq!(open.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_throttle_lets_one_through_per_interval_and_counts_the_rest() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = crate::network::warnings::Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.admit(at(0)), Some(0));
        assert_eq!(throttle.admit(at(10)), None);
        assert_eq!(throttle.admit(at(999)), None);
        assert_eq!(throttle.admit(at(1_000)), Some(2));
        assert_eq!(throttle.admit(at(1_500)), None);
        assert_eq!(throttle.admit(at(5_000)), Some(1));
        assert_eq!(throttle.admit(at(7_000)), Some(0));
    }
}
