//! One client connection: a reader that decodes requests and runs handlers in request order,
//! and a writer that sends the responses back in that same order.
//!
//! The reader hands the writer, through a channel bounded by the in-flight limit, either an
//! encoded response or a task that will produce one (acks=all produce, long-poll fetch). The
//! writer awaits each in turn, so responses keep request order while waiting requests overlap.
//! Bad input never reaches a handler: an unacceptable size prefix, a truncated frame, an
//! unknown API key or a body that does not decode closes this connection (as Kafka does) and
//! nothing else; an ApiVersions request of an unknown version is answered with the v0
//! fallback so the client can retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use strom_protocol::{decode_request, encode_response, frame, DecodeError};
use strom_types::limits::IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use crate::handlers::{self, Reply};
use crate::Broker;

/// The first allocation for a frame body; it grows only as bytes actually arrive.
const FRAME_BUFFER_BYTES_INITIAL: usize = 64 * 1024;

/// A response, or the task that will produce it.
enum Outgoing {
    Ready(Bytes),
    Pending(JoinHandle<Option<Bytes>>),
}

pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    tracing::debug!(%peer, "connection opened");
    let (reader, writer) = socket.into_split();
    let (outgoing, queue) = mpsc::channel(IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX);
    let writer = tokio::spawn(write_responses(writer, queue, peer));
    read_requests(&broker, reader, outgoing, stop, peer).await;
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

async fn read_requests(
    broker: &Arc<Broker>,
    reader: OwnedReadHalf,
    outgoing: mpsc::Sender<Outgoing>,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
) {
    let idle = Duration::from_millis(broker.config.connection_idle_ms_max);
    let mut reader = BufReader::with_capacity(FRAME_BUFFER_BYTES_INITIAL, reader);
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => return,
            read = tokio::time::timeout(idle, read_frame(&mut reader, broker.config.request_bytes_max)) => match read {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    return;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return,
                Ok(Err(reason)) => {
                    tracing::warn!(%peer, "closing connection: {reason}");
                    return;
                }
            },
        };
        let Some(next) = handle_frame(broker, frame, peer) else {
            return;
        };
        if let Some(next) = next {
            if outgoing.send(next).await.is_err() {
                return;
            }
        }
    }
}

/// Reads one size-prefixed frame. `Ok(None)` is a clean end of stream between frames.
async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    request_bytes_max: usize,
) -> Result<Option<Bytes>, String> {
    let mut prefix = [0u8; frame::SIZE_PREFIX_BYTES];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    let size = frame::request_size(prefix, request_bytes_max).map_err(|error| error.to_string())?;
    let mut body = Vec::with_capacity(size.min(FRAME_BUFFER_BYTES_INITIAL));
    let read = (&mut *reader)
        .take(size as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|error| error.to_string())?;
    if read != size {
        return Err(format!(
            "truncated frame: {read} of {size} bytes before end of stream"
        ));
    }
    Ok(Some(Bytes::from(body)))
}

/// Decodes and handles one frame. `None` closes the connection; `Some(None)` sends nothing.
fn handle_frame(broker: &Arc<Broker>, frame: Bytes, peer: SocketAddr) -> Option<Option<Outgoing>> {
    let request = match decode_request(frame) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            version,
        }) => {
            tracing::debug!(%peer, version, "ApiVersions version unsupported; answering with the v0 fallback");
            let response = strom_protocol::codec::unsupported_api_versions_response(correlation_id);
            return Some(Some(Outgoing::Ready(response)));
        }
        Err(error) => {
            tracing::warn!(%peer, "closing connection: {error}");
            return None;
        }
    };
    let (correlation_id, api_key, version) =
        (request.correlation_id, request.api_key, request.api_version);
    let encode = move |body| match encode_response(correlation_id, api_key, version, &body) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::error!(%peer, "{error}");
            None
        }
    };
    match handlers::dispatch(broker, request, peer) {
        Reply::Now(body) => encode(body).map(|bytes| Some(Outgoing::Ready(bytes))),
        Reply::Later(future) => Some(Some(Outgoing::Pending(tokio::spawn(async move {
            encode(future.await)
        })))),
        Reply::Silent => Some(None),
    }
}

async fn write_responses(
    writer: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    let mut writer = BufWriter::with_capacity(FRAME_BUFFER_BYTES_INITIAL, writer);
    while let Some(next) = queue.recv().await {
        let bytes = match next {
            Outgoing::Ready(bytes) => bytes,
            Outgoing::Pending(task) => match task.await {
                Ok(Some(bytes)) => bytes,
                Ok(None) | Err(_) => break,
            },
        };
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
        // Flush when nothing else is queued: pipelined responses leave in one write.
        if queue.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    if let Err(error) = writer.flush().await {
        tracing::debug!(%peer, %error, "final flush failed");
    }
}
