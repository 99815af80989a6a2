//! Reads a connection's size-prefixed request frames, holding no buffer while it is idle.
//!
//! Reads go into one buffer of `READ_BUFFER_BYTES`, so that one `read` takes in many
//! pipelined small requests; each frame is copied out of it whole (the buffer is reused, and a
//! handler that keeps a request's bytes keeps only those). A frame too big for the buffer gets
//! a body of its own, read straight from the socket. When nothing is buffered and the socket
//! has nothing to read, the buffer is let go before waiting: the broker holds thousands of
//! idle connections, and a 64 KiB buffer each was most of what they cost (67 KiB of RSS per
//! idle connection, 10,000 of them; see tests/e2e/test_many_connections.py).
//!
//! Lifecycle of the buffer: empty and unallocated while idle; `READ_BUFFER_BYTES` once bytes
//! are readable; never bigger, whatever size the frames are.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use strom_protocol::frame::{self, FrameError, SIZE_PREFIX_BYTES};
use tokio::io::AsyncReadExt;

use super::stream::ReadSide;

/// The read buffer: a frame up to this size (prefix included) is read through it.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A frame body up to this size is allocated whole when its size prefix arrives (librdkafka's
/// produce requests are up to ~1 MB: growing the buffer as bytes arrive copied each one ~1.5
/// times more); a bigger body grows from here only as its bytes actually arrive, so a size
/// prefix alone cannot make the broker reserve `socket.request.max.bytes`.
const FRAME_BODY_BYTES_UPFRONT: usize = 1 << 20;

/// Why no more frames can be read from a connection.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended inside a frame; both counts include the size prefix.
    #[error("truncated frame: {read} of {size} bytes before end of stream")]
    Truncated { read: usize, size: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub struct FrameReader {
    socket: ReadSide,
    /// Bytes read and not yet handed out as frames; no allocation while the connection idles.
    buffer: BytesMut,
    request_bytes_max: usize,
}

impl FrameReader {
    pub fn new(socket: ReadSide, request_bytes_max: usize) -> FrameReader {
        FrameReader {
            socket,
            buffer: BytesMut::new(),
            request_bytes_max,
        }
    }

    /// Changes the size limit for the frames read from now on (smaller until a SASL
    /// connection has authenticated).
    pub fn set_request_bytes_max(&mut self, request_bytes_max: usize) {
        self.request_bytes_max = request_bytes_max;
    }

    /// The next frame's body. `Ok(None)` is a clean end of stream between frames. The size is
    /// checked against `socket.request.max.bytes` before anything is allocated for the body.
    /// Dropped while it reads a frame bigger than the buffer, it loses that frame's bytes:
    /// the connection is closing then (shutdown, `connections.max.idle.ms`), as it must.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            // The frame's size, prefix included, once its prefix is here.
            let mut whole = SIZE_PREFIX_BYTES;
            if let Some(prefix) = self.buffer.first_chunk::<SIZE_PREFIX_BYTES>() {
                whole += frame::request_size(*prefix, self.request_bytes_max)?;
                if self.buffer.len() >= whole {
                    let body = Bytes::copy_from_slice(&self.buffer[SIZE_PREFIX_BYTES..whole]);
                    self.buffer.advance(whole);
                    return Ok(Some(body));
                }
                if whole > READ_BUFFER_BYTES {
                    self.buffer.advance(SIZE_PREFIX_BYTES);
                    return self
                        .read_big_body(whole - SIZE_PREFIX_BYTES)
                        .await
                        .map(Some);
                }
            }
            if self.fill().await? == 0 {
                return match self.buffer.len() {
                    0 => Ok(None),
                    read => Err(ReadError::Truncated { read, size: whole }),
                };
            }
        }
    }

    /// Reads a body bigger than the buffer into an allocation of its own: what the buffer
    /// holds of it, then the rest straight from the socket.
    async fn read_big_body(&mut self, size: usize) -> Result<Bytes, ReadError> {
        assert!(
            self.buffer.len() < size,
            "a whole frame is taken from the buffer"
        );
        let mut body = Vec::with_capacity(size.min(FRAME_BODY_BYTES_UPFRONT));
        body.extend_from_slice(&self.buffer);
        self.buffer.clear();
        let rest = (size - body.len()) as u64;
        (&mut self.socket).take(rest).read_to_end(&mut body).await?;
        if body.len() != size {
            return Err(ReadError::Truncated {
                read: SIZE_PREFIX_BYTES + body.len(),
                size: SIZE_PREFIX_BYTES + size,
            });
        }
        Ok(Bytes::from(body))
    }

    /// Reads what the socket has into the buffer; returns the bytes read, 0 at end of stream.
    /// Waits for the socket to be readable with the buffer let go if it holds nothing.
    async fn fill(&mut self) -> io::Result<usize> {
        let release_while_idle = |buffer: &mut BytesMut| {
            if buffer.is_empty() {
                *buffer = BytesMut::new();
            }
        };
        (self.socket)
            .fill(&mut self.buffer, Self::make_room, release_while_idle)
            .await
    }

    /// Makes the buffer `READ_BUFFER_BYTES` long from its first unread byte, moving what it
    /// holds (a part of one frame, smaller than the buffer) to the front or into a new one.
    fn make_room(buffer: &mut BytesMut) {
        if buffer.capacity() >= READ_BUFFER_BYTES {
            return;
        }
        let wanted = READ_BUFFER_BYTES - buffer.len();
        if !buffer.try_reclaim(wanted) {
            let mut fresh = BytesMut::with_capacity(READ_BUFFER_BYTES);
            fresh.extend_from_slice(buffer);
            *buffer = fresh;
        }
        debug_assert!(buffer.capacity() >= READ_BUFFER_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::tcp::OwnedWriteHalf;
    use tokio::net::{TcpListener, TcpStream};

    /// A reader on one end of a loopback connection, the write half of that end (dropping it
    /// would shut the socket's sending side), and the other end to write to.
    async fn pair() -> (FrameReader, OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, write) = server.into_split();
        (
            FrameReader::new(ReadSide::Tcp(read), 10 << 20),
            write,
            client,
        )
    }

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    fn body(size: usize, seed: u8) -> Vec<u8> {
        (0..size).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    #[tokio::test]
    async fn frames_of_every_size_come_out_whole_and_in_order() {
        let (mut reader, _write, mut client) = pair().await;
        let sizes = [
            10,
            100,
            70_000,
            11,
            READ_BUFFER_BYTES - 4,
            3 << 20,
            12,
            40_000,
        ];
        let bodies: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(seed, size)| body(*size, seed as u8))
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|body| frame_of(body)).collect();
        let writer = tokio::spawn(async move {
            // Odd-sized writes, so that frames and prefixes straddle the reads.
            for piece in stream.chunks(7_777) {
                client.write_all(piece).await.unwrap();
            }
            client
        });
        for expected in &bodies {
            let frame = reader.next_frame().await.unwrap().unwrap();
            assert_eq!(frame.len(), expected.len());
            assert!(frame[..] == expected[..], "the bytes of the frame");
            assert!(reader.buffer.capacity() <= READ_BUFFER_BYTES);
        }
        drop(writer.await.unwrap());
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut reader, _write, mut client) = pair().await;
        client.write_all(&frame_of(&body(100, 1))).await.unwrap();
        reader.next_frame().await.unwrap().unwrap();
        // The next read finds nothing and waits with the buffer let go (the paused clock moves
        // on to the timeout once it waits).
        let waiting =
            tokio::time::timeout(std::time::Duration::from_secs(1), reader.next_frame()).await;
        assert!(waiting.is_err(), "no frame was sent");
        assert_eq!(reader.buffer.capacity(), 0);
        client.write_all(&frame_of(&body(20, 2))).await.unwrap();
        assert_eq!(reader.next_frame().await.unwrap().unwrap().len(), 20);
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_truncated() {
        let (mut reader, _write, mut client) = pair().await;
        let whole = frame_of(&body(100, 3));
        client.write_all(&whole[..50]).await.unwrap();
        drop(client);
        let error = reader.next_frame().await.unwrap_err();
        assert!(
            matches!(
                error,
                ReadError::Truncated {
                    read: 50,
                    size: 104
                }
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_any_allocation() {
        let (mut reader, _write, mut client) = pair().await;
        client
            .write_all(&(200_i32 << 20).to_be_bytes())
            .await
            .unwrap();
        let error = reader.next_frame().await.unwrap_err();
        assert!(matches!(
            error,
            ReadError::Frame(FrameError::TooLarge { .. })
        ));
    }
}
