//! Outgoing controller connections: one per peer address, shared by every caller, with many
//! requests in flight matched to responses by id.
//!
//! Lifecycle: a connection is dialled on first use and replaced when it fails: when its reader
//! or writer hits an error, or when a request gave up waiting and nothing at all has arrived
//! on it for [`CONNECTION_SILENCE_MS_MAX`] since (a paused or cut-off peer).
//! Every call is bounded by its own timeout. A connection's two tasks (a writer draining a
//! bounded queue of whole frames, and a reader completing pending requests) end when the
//! connection is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};

use crate::quorum::limits::{CONNECTION_SILENCE_MS_MAX, CONNECT_TIMEOUT_MS, PEER_QUEUE_DEPTH_MAX};
use crate::quorum::network::frame;
use crate::quorum::network::rpc::{Request, RequestFrame, Response, ResponseFrame};

/// Why a call got no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached; the request was not sent.
    #[error("cannot connect to {addr}: {detail}")]
    Unreachable { addr: String, detail: String },
    /// The request was not sent because it is too large for one frame.
    #[error("a request of {0} bytes is larger than a frame")]
    TooLarge(usize),
    /// No response in time; the peer may or may not have acted on the request.
    #[error("no response from {addr} within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    /// The connection failed after the request was sent; the peer may have acted on it.
    #[error("the connection to {addr} failed while the request was outstanding")]
    Lost { addr: String },
}

impl CallError {
    /// True if the peer certainly did not act on the request, so it is safe to send again.
    pub fn not_sent(&self) -> bool {
        matches!(self, CallError::Unreachable { .. } | CallError::TooLarge(_))
    }
}

/// State shared by a connection and its two tasks.
struct ConnectionState {
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    closed: AtomicBool,
    /// Since when a request has gone unanswered with nothing received after it; cleared by
    /// every response.
    unanswered_since: Mutex<Option<Instant>>,
}

impl ConnectionState {
    fn silent_too_long(&self) -> bool {
        let silence = Duration::from_millis(CONNECTION_SILENCE_MS_MAX);
        self.unanswered_since
            .lock()
            .expect("never held across a panic")
            .is_some_and(|since| since.elapsed() > silence)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropping the senders fails every waiting call at once.
        self.pending
            .lock()
            .expect("never held across a panic")
            .clear();
    }
}

/// One TCP connection to a peer.
struct Connection {
    state: Arc<ConnectionState>,
    outbox: mpsc::Sender<Vec<u8>>,
    next_id: AtomicU64,
    tasks: [AbortHandle; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    async fn dial(addr: &str) -> std::io::Result<Connection> {
        let connect = TcpStream::connect(addr);
        let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        let state = Arc::new(ConnectionState {
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            unanswered_since: Mutex::new(None),
        });
        let (outbox, mut queue) = mpsc::channel::<Vec<u8>>(PEER_QUEUE_DEPTH_MAX);
        let writer_state = state.clone();
        let write_task = tokio::spawn(async move {
            while let Some(bytes) = queue.recv().await {
                if frame::write(&mut writer, &bytes).await.is_err() {
                    break;
                }
            }
            writer_state.close();
        });
        let reader_state = state.clone();
        let read_task = tokio::spawn(async move {
            loop {
                let body = match frame::read(&mut reader).await {
                    Ok(Some(body)) => body,
                    Ok(None) => break,
                    Err(error) if frame::is_oversized(&error) => {
                        tracing::warn!("dropping a controller connection: {error}");
                        break;
                    }
                    Err(error) => {
                        tracing::debug!("dropping a controller connection: {error}");
                        break;
                    }
                };
                let Ok(response) = serde_json::from_slice::<ResponseFrame>(&body) else {
                    tracing::warn!("dropping a controller connection: undecodable response");
                    break;
                };
                *reader_state
                    .unanswered_since
                    .lock()
                    .expect("never held across a panic") = None;
                let waiter = reader_state
                    .pending
                    .lock()
                    .expect("never held across a panic")
                    .remove(&response.id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(response.response);
                }
            }
            reader_state.close();
        });
        Ok(Connection {
            state,
            outbox,
            next_id: AtomicU64::new(1),
            tasks: [write_task.abort_handle(), read_task.abort_handle()],
        })
    }

    fn usable(&self) -> bool {
        !self.state.closed.load(Ordering::Acquire) && !self.state.silent_too_long()
    }
}

/// Removes a call's pending entry however the call ends (answered, timed out, or cancelled by
/// the caller); an unanswered call starts the connection's silence clock.
struct PendingGuard<'a> {
    connection: &'a Connection,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let state = &self.connection.state;
        let unanswered = state
            .pending
            .lock()
            .expect("never held across a panic")
            .remove(&self.id)
            .is_some();
        if unanswered {
            state
                .unanswered_since
                .lock()
                .expect("never held across a panic")
                .get_or_insert_with(Instant::now);
        }
    }
}

/// The connection to one address, dialled again when it fails.
struct Peer {
    addr: String,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl Peer {
    async fn connection(&self) -> Result<Arc<Connection>, CallError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.usable()) {
            return Ok(connection.clone());
        }
        if slot.take().is_some() {
            tracing::debug!(addr = %self.addr, "dialling a controller connection again");
        }
        let connection =
            Connection::dial(&self.addr)
                .await
                .map_err(|e| CallError::Unreachable {
                    addr: self.addr.clone(),
                    detail: e.to_string(),
                })?;
        let connection = Arc::new(connection);
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// Connections to every peer this node talks to, by `HOST:PORT`.
#[derive(Default)]
pub struct Peers {
    peers: Mutex<HashMap<String, Arc<Peer>>>,
}

impl Peers {
    fn peer(&self, addr: &str) -> Arc<Peer> {
        self.peers
            .lock()
            .expect("never held across a panic")
            .entry(addr.to_owned())
            .or_insert_with(|| {
                Arc::new(Peer {
                    addr: addr.to_owned(),
                    connection: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// Sends `request` to `addr` and waits for its response, for at most `timeout`.
    pub async fn call(
        &self,
        addr: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || CallError::Timeout {
            addr: addr.to_owned(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let lost = || CallError::Lost {
            addr: addr.to_owned(),
        };
        let peer = self.peer(addr);
        let connection = timeout_at(deadline, peer.connection())
            .await
            .map_err(|_| CallError::Unreachable {
                addr: addr.to_owned(),
                detail: "no connection within the call's timeout".into(),
            })??;
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode(&RequestFrame { id, request }).map_err(CallError::TooLarge)?;
        let (waiter, response) = oneshot::channel();
        connection
            .state
            .pending
            .lock()
            .expect("never held across a panic")
            .insert(id, waiter);
        let _guard = PendingGuard {
            connection: &connection,
            id,
        };
        match timeout_at(deadline, connection.outbox.send(bytes)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(_)) => return Err(lost()),
            Ok(Ok(())) => {}
        }
        match timeout_at(deadline, response).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(lost()),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Drops every connection (their tasks stop).
    pub fn close_all(&self) {
        self.peers
            .lock()
            .expect("never held across a panic")
            .clear();
    }
}
