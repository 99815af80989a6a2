//! One TCP connection to one broker, with pipelined requests.
//!
//! Lifecycle: [`Connection::connect`] opens the socket, runs the TLS handshake when
//! `security.protocol` asks for TLS ([`crate::tls`]), starts two tasks, negotiates API versions
//! (ApiVersions v3, or v0 when the broker answers `UNSUPPORTED_VERSION`) and logs in when it
//! asks for SASL (the `sasl` submodule). From then on any number of tasks may call
//! [`Connection::send`] at once, up to the in-flight limit:
//!
//! - the caller encodes its frame, registers a one-shot slot under a fresh correlation id in
//!   the shared `waiting` table and hands the frame to the writer task, which writes frames
//!   whole and in the order received (so a caller giving up half way never tears a frame);
//! - the reader task reads response frames, checks each length against the limit before
//!   allocating, and completes the slot registered under the frame's correlation id.
//!
//! When either task hits an I/O error or a bad frame, the connection is dead: every waiting
//! caller gets the error, later calls fail at once, and [`Connection::is_closed`] says so, so
//! that [`crate::Client`] opens a new one. Dropping the `Connection` stops both tasks and closes
//! the socket.
//!
//! A SASL session may have a lifetime (KIP-368 `session_lifetime_ms`), after which the broker
//! refuses requests until the client authenticates again. This client does not re-authenticate
//! in place: shortly before the end (see [`limits::SASL_SESSION_USED_PERCENT_MAX`]) the
//! connection refuses new requests and counts as closed, so that `Client` (and the broker's
//! fetchers, which check `is_closed` too) open a new connection that logs in afresh. Requests
//! already sent finish on the old one.
//!
//! The tasks are generic over the stream: plaintext uses `TcpStream::into_split` (two halves
//! without a lock between them), TLS `tokio::io::split` of the rustls stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use strom_types::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::Subject;
use crate::frame::{self, LENGTH_PREFIX_BYTES};
use crate::limits;
use crate::versions::{ApiVersionTable, API_VERSIONS_VERSION_FIRST};
use crate::{tls, ClientError};

mod sasl;

/// How a connection behaves; the defaults come from [`crate::limits`].
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent in every request header; brokers log it.
    pub client_id: String,
    pub connect_timeout_ms: u64,
    /// Longest wait for a response beyond any wait the request asks the broker for.
    pub request_timeout_ms: u64,
    pub response_bytes_max: usize,
    pub in_flight_requests_max: usize,
    /// TLS and SASL; the default is PLAINTEXT.
    pub security: crate::SecurityConfig,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            client_id: "strom-client".to_string(),
            connect_timeout_ms: limits::CONNECT_TIMEOUT_MS,
            request_timeout_ms: limits::REQUEST_TIMEOUT_MS,
            response_bytes_max: limits::RESPONSE_BYTES_MAX,
            in_flight_requests_max: limits::IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX,
            security: crate::SecurityConfig::default(),
        }
    }
}

type Slot = oneshot::Sender<Result<Bytes, ClientError>>;

/// State both tasks and all callers share; the lock is held only for map operations.
struct Shared {
    address: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Callers waiting for a response, by correlation id.
    waiting: HashMap<i32, Slot>,
    /// Set once, when the connection dies; every later call fails with it.
    failure: Option<ClientError>,
}

impl Shared {
    fn fail(&self, error: ClientError) {
        let waiting = {
            let mut state = self.state.lock().expect("connection state lock");
            if state.failure.is_none() {
                tracing::debug!(address = %self.address, %error, "connection closed");
                state.failure = Some(error.clone());
            }
            std::mem::take(&mut state.waiting)
        };
        for (_, slot) in waiting {
            let _ = slot.send(Err(error.clone()));
        }
    }

    fn failure(&self) -> Option<ClientError> {
        self.state
            .lock()
            .expect("connection state lock")
            .failure
            .clone()
    }

    fn disconnected(&self, reason: impl ToString) -> ClientError {
        ClientError::Disconnected {
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Removes a caller's slot if the caller gives up (time-out or dropped future) before the
/// response came; a late response then finds no slot and is dropped.
struct SlotGuard<'a> {
    shared: &'a Shared,
    correlation_id: i32,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .expect("connection state lock")
            .waiting
            .remove(&self.correlation_id);
    }
}

/// A frame for the writer, and whom to tell once it is written.
struct Outgoing {
    frame: Bytes,
    written: Option<oneshot::Sender<()>>,
}

/// A connection to one broker. Share it behind an `Arc`; every method takes `&self`.
pub struct Connection {
    shared: Arc<Shared>,
    options: ConnectionOptions,
    versions: ApiVersionTable,
    outgoing: mpsc::Sender<Outgoing>,
    in_flight: Semaphore,
    correlation_id_next: AtomicI32,
    /// When the SASL session is about to end, if it ends: from then on the connection counts
    /// as closed. Set once, by `connect`.
    session_ends_at: Option<Instant>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Connection {
    /// Connects to `address` (HOST:PORT), secures the connection as `options.security` says
    /// (TLS handshake, SASL login) and negotiates API versions.
    pub async fn connect(
        address: &str,
        options: &ConnectionOptions,
    ) -> Result<Connection, ClientError> {
        let stream = open_socket(address, options).await?;
        let security = &options.security;
        let mut connection = if security.protocol.uses_tls() {
            let handshake = tls::handshake(stream, address, &security.tls);
            let stream = within_connect_timeout(address, options, handshake).await??;
            let (read_half, write_half) = tokio::io::split(stream);
            Connection::start(address, options, read_half, write_half)
        } else {
            let (read_half, write_half) = stream.into_split();
            Connection::start(address, options, read_half, write_half)
        };
        connection.versions = connection.negotiate_versions().await?;
        if security.protocol.uses_sasl() {
            let config = security.sasl.as_ref().ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "security.protocol {:?} needs sasl.mechanism and its credentials",
                    security.protocol
                ))
            })?;
            connection.session_ends_at = sasl::authenticate(&connection, config).await?;
        }
        tracing::debug!(address, protocol = ?security.protocol, "connected");
        Ok(connection)
    }

    /// Starts the reader and writer tasks over the two halves of a connected stream.
    fn start<R, W>(
        address: &str,
        options: &ConnectionOptions,
        read_half: R,
        write_half: W,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            address: address.to_string(),
            state: Mutex::default(),
        });
        let (outgoing, outgoing_receiver) = mpsc::channel(options.in_flight_requests_max.max(1));
        let reader = tokio::spawn(read_responses(
            read_half,
            shared.clone(),
            options.response_bytes_max,
        ));
        let writer = tokio::spawn(write_requests(
            write_half,
            outgoing_receiver,
            shared.clone(),
        ));
        Connection {
            shared,
            options: options.clone(),
            versions: ApiVersionTable::default(),
            outgoing,
            in_flight: Semaphore::new(options.in_flight_requests_max.max(1)),
            correlation_id_next: AtomicI32::new(0),
            session_ends_at: None,
            reader,
            writer,
        }
    }

    /// The HOST:PORT this connection was opened to.
    pub fn address(&self) -> &str {
        &self.shared.address
    }

    /// The broker's API version ranges.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// The version of `Req` this connection speaks.
    pub fn version<Req: Request>(&self) -> Result<i16, ClientError> {
        self.versions.select::<Req>(self.address())
    }

    /// Whether the connection has died, or its SASL session is about to end; a closed
    /// connection fails every new call.
    pub fn is_closed(&self) -> bool {
        self.shared.failure().is_some() || self.session_ending()
    }

    /// Whether the SASL session is so near its end that no new request should start.
    fn session_ending(&self) -> bool {
        self.session_ends_at
            .is_some_and(|ends_at| Instant::now() >= ends_at)
    }

    /// The response time-out requests on this connection use by default.
    pub(crate) fn request_timeout_ms(&self) -> u64 {
        self.options.request_timeout_ms
    }

    /// Sends a request at the highest common version and waits for its response.
    pub async fn send<Req: Request>(&self, request: &Req) -> Result<Req::Response, ClientError> {
        self.send_with_timeout(request, self.options.request_timeout_ms)
            .await
    }

    /// Like [`Connection::send`], with a response time-out of `timeout_ms`.
    pub async fn send_with_timeout<Req: Request>(
        &self,
        request: &Req,
        timeout_ms: u64,
    ) -> Result<Req::Response, ClientError> {
        let version = self.version::<Req>()?;
        self.send_versioned(request, version, timeout_ms).await
    }

    /// Sends a request at a given version and waits for its response.
    pub async fn send_versioned<Req: Request>(
        &self,
        request: &Req,
        version: i16,
        timeout_ms: u64,
    ) -> Result<Req::Response, ClientError> {
        let frame = self.exchange(request, version, timeout_ms).await?;
        frame::decode_response::<Req>(frame, version).map_err(|detail| ClientError::Protocol {
            address: self.address().to_string(),
            detail,
        })
    }

    /// Sends a request the broker does not answer (a produce with acks=0) and waits until it
    /// has been written to the socket.
    pub async fn send_without_response<Req: Request>(
        &self,
        request: &Req,
    ) -> Result<(), ClientError> {
        let version = self.version::<Req>()?;
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let correlation_id = self.correlation_id_next.fetch_add(1, Ordering::Relaxed);
        let frame =
            frame::encode_request(request, version, correlation_id, &self.options.client_id)?;
        let (written, was_written) = oneshot::channel();
        self.enqueue(Outgoing {
            frame,
            written: Some(written),
        })
        .await?;
        was_written.await.map_err(|_| self.closed_error())
    }

    /// Sends one request frame and returns its response frame (without the length prefix).
    async fn exchange<Req: Request>(
        &self,
        request: &Req,
        version: i16,
        timeout_ms: u64,
    ) -> Result<Bytes, ClientError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let correlation_id = self.correlation_id_next.fetch_add(1, Ordering::Relaxed);
        let frame =
            frame::encode_request(request, version, correlation_id, &self.options.client_id)?;
        let (slot, response) = oneshot::channel();
        {
            let mut state = self.shared.state.lock().expect("connection state lock");
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            let previous = state.waiting.insert(correlation_id, slot);
            assert!(
                previous.is_none(),
                "correlation id {correlation_id} is already in flight"
            );
        }
        let _guard = SlotGuard {
            shared: &self.shared,
            correlation_id,
        };
        self.enqueue(Outgoing {
            frame,
            written: None,
        })
        .await?;
        match tokio::time::timeout(Duration::from_millis(timeout_ms), response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(ClientError::Timeout {
                address: self.address().to_string(),
                api: frame::api_key::<Req>(),
                timeout_ms,
            }),
        }
    }

    async fn enqueue(&self, outgoing: Outgoing) -> Result<(), ClientError> {
        if self.session_ending() {
            return Err(self.shared.disconnected(
                "the SASL session is about to end (session_lifetime_ms); a new connection logs in again",
            ));
        }
        self.outgoing
            .send(outgoing)
            .await
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ClientError {
        self.shared
            .failure()
            .unwrap_or_else(|| self.shared.disconnected("the connection was closed"))
    }

    /// Asks for the broker's API versions: v3 first, and if the broker does not know v3 it
    /// answers `UNSUPPORTED_VERSION` in v0 with its list, or else we ask again in v0.
    async fn negotiate_versions(&self) -> Result<ApiVersionTable, ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let timeout_ms = self.options.request_timeout_ms;
        let frame = self
            .exchange(&request, API_VERSIONS_VERSION_FIRST, timeout_ms)
            .await?;
        // The ApiVersions response header is always v0 (correlation id only), and the error
        // code comes first in every version of the body.
        let error_code = frame
            .get(4..6)
            .map(|code| i16::from_be_bytes([code[0], code[1]]));
        let response = if error_code == Some(ErrorCode::UnsupportedVersion.code()) {
            let fallback = self.decode_api_versions_v0(frame)?;
            if fallback.api_keys.is_empty() {
                let frame = self.exchange(&request, 0, timeout_ms).await?;
                self.decode_api_versions_v0(frame)?
            } else {
                fallback
            }
        } else {
            frame::decode_response::<ApiVersionsRequest>(frame, API_VERSIONS_VERSION_FIRST)
                .map_err(|detail| ClientError::Protocol {
                    address: self.address().to_string(),
                    detail,
                })?
        };
        if response.error_code != 0 && response.error_code != ErrorCode::UnsupportedVersion.code() {
            return Err(ClientError::kafka(
                response.error_code,
                None,
                Subject::default(),
            ));
        }
        Ok(ApiVersionTable::from_response(&response))
    }

    fn decode_api_versions_v0(&self, mut frame: Bytes) -> Result<ApiVersionsResponse, ClientError> {
        let protocol_error = |detail: String| ClientError::Protocol {
            address: self.address().to_string(),
            detail,
        };
        if frame.len() < 4 {
            return Err(protocol_error(
                "ApiVersions response without a header".to_string(),
            ));
        }
        frame.advance(4);
        ApiVersionsResponse::decode(&mut frame, 0)
            .map_err(|error| protocol_error(format!("bad ApiVersions v0 response: {error:#}")))
    }
}

/// The reader task: response frames in, waiting callers completed.
async fn read_responses<R: AsyncRead + Unpin>(
    read_half: R,
    shared: Arc<Shared>,
    response_bytes_max: usize,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        if let Err(error) = reader.read_exact(&mut prefix).await {
            let reason = match error.kind() {
                std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
                _ => error.to_string(),
            };
            return shared.fail(shared.disconnected(reason));
        }
        let length = match frame::response_length(prefix, response_bytes_max) {
            Ok(length) => length,
            Err(length) if length > response_bytes_max as i64 => {
                return shared.fail(ClientError::FrameTooLarge {
                    address: shared.address.clone(),
                    length: length as u64,
                    limit: response_bytes_max,
                });
            }
            Err(length) => {
                return shared.fail(ClientError::Protocol {
                    address: shared.address.clone(),
                    detail: format!("response frame length {length} is too short"),
                });
            }
        };
        let mut frame = BytesMut::with_capacity(length);
        if let Err(error) = read_frame(&mut reader, &mut frame, length).await {
            return shared
                .fail(shared.disconnected(format!("reading a {length}-byte response: {error}")));
        }
        let correlation_id = frame::correlation_id(&frame).expect("length checked above");
        let slot = shared
            .state
            .lock()
            .expect("connection state lock")
            .waiting
            .remove(&correlation_id);
        match slot {
            Some(slot) => {
                let _ = slot.send(Ok(frame.freeze()));
            }
            None => {
                tracing::debug!(address = %shared.address, correlation_id, "response nobody waits for")
            }
        }
    }
}

/// Reads `length` bytes into `frame` (empty, with that capacity) without zeroing it first.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame: &mut BytesMut,
    length: usize,
) -> std::io::Result<()> {
    use bytes::BufMut;
    while frame.len() < length {
        let wanted = length - frame.len();
        if reader.read_buf(&mut (&mut *frame).limit(wanted)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// The writer task: frames out, whole and in order. Each frame is flushed: TLS may hold
/// the end of a frame back until then (for TCP, flushing does nothing).
async fn write_requests<W: AsyncWrite + Unpin>(
    mut write_half: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(Outgoing { frame, written }) = outgoing.recv().await {
        let result = match write_half.write_all(&frame).await {
            Ok(()) => write_half.flush().await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            return shared.fail(shared.disconnected(error));
        }
        if let Some(written) = written {
            let _ = written.send(());
        }
    }
}

/// A TCP connection to `address`, within the connect time-out, with Nagle off.
async fn open_socket(address: &str, options: &ConnectionOptions) -> Result<TcpStream, ClientError> {
    let stream = within_connect_timeout(address, options, TcpStream::connect(address))
        .await?
        .map_err(|error| connect_error(address, error.to_string()))?;
    stream
        .set_nodelay(true)
        .map_err(|error| connect_error(address, error.to_string()))?;
    Ok(stream)
}

/// Runs a step of connecting (the TCP connect, the TLS handshake) within the connect time-out.
async fn within_connect_timeout<T>(
    address: &str,
    options: &ConnectionOptions,
    step: impl std::future::Future<Output = T>,
) -> Result<T, ClientError> {
    let timeout = Duration::from_millis(options.connect_timeout_ms);
    tokio::time::timeout(timeout, step).await.map_err(|_| {
        connect_error(
            address,
            format!("no answer within {} ms", options.connect_timeout_ms),
        )
    })
}

fn connect_error(address: &str, reason: String) -> ClientError {
    ClientError::Connect {
        address: address.to_string(),
        reason,
    }
}
