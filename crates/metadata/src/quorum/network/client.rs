//! Outgoing controller connections: one per peer address, shared by every caller, with many
//! requests in flight matched to responses by id.
//!
//! With TLS, dialling includes the client side of the handshake, within the same
//! [`CONNECT_TIMEOUT_MS`]; a handshake that fails makes the call [`CallError::Unreachable`]. In
//! TLS 1.3 the client finishes its handshake before the server has checked its certificate, so
//! a refused certificate shows up instead as the connection closing under the first request
//! ([`CallError::Lost`]).
//!
//! Lifecycle: a connection is dialled on first use and replaced when it fails: when its reader
//! or writer hits an error, or when a request gave up waiting and nothing at all has arrived
//! on it for [`CONNECTION_SILENCE_MS_MAX`] since (a paused or cut-off peer).
//! Every call is bounded by its own timeout. A connection's two tasks (a writer draining a
//! bounded queue of whole frames, and a reader completing pending requests) end when the
//! connection is dropped.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

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
    /// Connects to `addr` (and runs the TLS handshake if `tls` is set), all within
    /// [`CONNECT_TIMEOUT_MS`], and starts the connection's two tasks.
    async fn dial(addr: &str, tls: Option<&TlsConnector>) -> io::Result<Connection> {
        let deadline = Instant::now() + Duration::from_millis(CONNECT_TIMEOUT_MS);
        let stream = timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let Some(connector) = tls else {
            // Plain TCP keeps its owned halves: no lock between the reader and the writer.
            let (reader, writer) = stream.into_split();
            return Ok(Connection::over(reader, writer));
        };
        let stream = handshake(connector, addr, stream, deadline).await?;
        let (reader, writer) = tokio::io::split(stream);
        Ok(Connection::over(reader, writer))
    }

    /// Starts the writer and reader tasks of a connection over these halves. Generic so that
    /// plain TCP and TLS share the code at no cost to either.
    fn over<R, W>(reader: R, writer: W) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnectionState {
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            unanswered_since: Mutex::new(None),
        });
        let (outbox, queue) = mpsc::channel::<Vec<u8>>(PEER_QUEUE_DEPTH_MAX);
        let write_task = tokio::spawn(write_requests(writer, queue, state.clone()));
        let read_task = tokio::spawn(read_responses(reader, state.clone()));
        Connection {
            state,
            outbox,
            next_id: AtomicU64::new(1),
            tasks: [write_task.abort_handle(), read_task.abort_handle()],
        }
    }

    fn usable(&self) -> bool {
        !self.state.closed.load(Ordering::Acquire) && !self.state.silent_too_long()
    }
}

/// Runs the client side of the TLS handshake by `deadline`. Its errors say TLS, so an operator
/// reading "cannot connect" knows to look at certificates rather than at the network.
async fn handshake(
    connector: &TlsConnector,
    addr: &str,
    stream: TcpStream,
    deadline: Instant,
) -> io::Result<TlsStream<TcpStream>> {
    let name = server_name(addr)?;
    match timeout_at(deadline, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(io::Error::new(
            error.kind(),
            format!("the TLS handshake failed: {error}"),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the TLS handshake timed out",
        )),
    }
}

/// The name the peer's certificate must carry: the host of its `HOST:PORT` (brackets around
/// an IPv6 address removed), checked as an IP address if it is one and as a DNS name if not.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned()).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} in {addr:?} is neither an IP address nor a DNS name: {error}"),
        )
    })
}

/// Sends queued frames until the connection is dropped or a write fails, then closes it.
async fn write_requests<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Vec<u8>>,
    state: Arc<ConnectionState>,
) {
    while let Some(bytes) = queue.recv().await {
        if frame::write(&mut writer, &bytes).await.is_err() {
            break;
        }
    }
    state.close();
}

/// Hands each response to the call waiting for it, until the stream ends or carries something
/// that is not a response; then closes the connection, failing the calls still waiting.
async fn read_responses<R: AsyncRead + Unpin>(mut reader: R, state: Arc<ConnectionState>) {
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
        *state
            .unanswered_since
            .lock()
            .expect("never held across a panic") = None;
        let waiter = state
            .pending
            .lock()
            .expect("never held across a panic")
            .remove(&response.id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(response.response);
        }
    }
    state.close();
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
    /// Set when the controller transport runs TLS.
    tls: Option<TlsConnector>,
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
        let connection = Connection::dial(&self.addr, self.tls.as_ref())
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
pub struct Peers {
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    /// Set when the controller transport runs TLS: every connection is dialled with it.
    tls: Option<TlsConnector>,
}

/// Plain TCP.
impl Default for Peers {
    fn default() -> Peers {
        Peers::new(None)
    }
}

impl Peers {
    /// No connections yet. With `tls`, each connection runs a TLS handshake with it (which
    /// presents this node's certificate and checks the peer's); without, plain TCP.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Peers {
        Peers {
            peers: Mutex::new(HashMap::new()),
            tls: tls.map(TlsConnector::from),
        }
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        self.peers
            .lock()
            .expect("never held across a panic")
            .entry(addr.to_owned())
            .or_insert_with(|| {
                Arc::new(Peer {
                    addr: addr.to_owned(),
                    tls: self.tls.clone(),
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        let ip = |ip: IpAddr| ServerName::IpAddress(ip.into());
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(server_name("127.0.0.1:9093").unwrap(), ip(localhost));
        assert_eq!(
            server_name("[::1]:9093").unwrap(),
            ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        let dns = server_name("controller-1.example.com:9093").unwrap();
        assert_eq!(
            dns,
            ServerName::try_from("controller-1.example.com").unwrap()
        );
        assert!(matches!(dns, ServerName::DnsName(_)));
    }

    #[test]
    fn a_host_that_is_no_name_is_refused_without_a_panic() {
        for addr in ["bad host:9093", ":9093", "no!name:1"] {
            let error = server_name(addr).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{addr}");
            assert!(error.to_string().contains(addr), "{error}");
        }
    }
}
