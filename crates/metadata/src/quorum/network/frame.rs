//! Frames on a controller connection: a 4-byte big-endian length, then that many bytes of
//! serde_json. Both directions bound the length by [`FRAME_BYTES_MAX`]. Without TLS the listener
//! is not authenticated, so a reader trusts a size prefix only that far: it reserves at most
//! [`FRAME_BODY_BYTES_UPFRONT`] before the body's bytes arrive and grows the buffer as they do.

use std::io;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::quorum::limits::{FRAME_BODY_BYTES_UPFRONT, FRAME_BYTES_MAX};

/// Serializes `value` into a whole frame (length prefix included), or returns its size if it
/// exceeds the limit.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, usize> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, value).expect("RPC messages serialize to JSON");
    let length = frame.len() - 4;
    if length > FRAME_BYTES_MAX {
        return Err(length);
    }
    let prefix = u32::try_from(length).expect("bounded above");
    frame[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(frame)
}

/// Reads one frame's body. Returns None on a clean end of stream between frames.
///
/// A size prefix above [`FRAME_BYTES_MAX`] is an [`io::ErrorKind::InvalidData`] error (see
/// [`is_oversized`]) and nothing after the prefix is read; a body cut short by the end of the
/// stream is an [`io::ErrorKind::UnexpectedEof`] error. Either way the caller closes the
/// connection: the stream is no longer at a frame boundary.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = body_length(prefix)?;
    let mut body = Vec::new();
    read_body(reader, length, &mut body).await?;
    Ok(Some(body))
}

/// Whether `error` (from [`read`]) is a size prefix over [`FRAME_BYTES_MAX`]: a peer that
/// does not speak this protocol, or a hostile one, rather than a connection that went away.
pub fn is_oversized(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
}

/// The body length a size prefix announces, refused above [`FRAME_BYTES_MAX`].
fn body_length(prefix: [u8; 4]) -> io::Result<usize> {
    let length = u32::from_be_bytes(prefix) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a frame of {length} bytes exceeds the {FRAME_BYTES_MAX}-byte limit \
                 (FRAME_BYTES_MAX)"
            ),
        ));
    }
    Ok(length)
}

/// Reads a body of `length` bytes into `body`, which the caller passes empty. Only
/// [`FRAME_BODY_BYTES_UPFRONT`] is reserved before any byte arrives; past that the buffer grows
/// with the bytes read (doubling, so a large snapshot is copied about once more in all).
async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: usize,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    debug_assert!(body.is_empty(), "read_body appends to an empty buffer");
    body.reserve(length.min(FRAME_BODY_BYTES_UPFRONT));
    let read = (&mut *reader).take(length as u64).read_to_end(body).await?;
    if read < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("a frame cut short: {read} of {length} bytes before the end of the stream"),
        ));
    }
    assert_eq!(read, length, "take() stops at the frame's end");
    Ok(())
}

/// Writes one whole frame made by [`encode`], and flushes it: a TLS stream may still hold the
/// frame's last record when `write_all` returns, and nothing else would send it until the next
/// frame. On plain TCP the flush does nothing.
pub async fn write<W: AsyncWrite + Unpin>(writer: &mut W, frame: &[u8]) -> io::Result<()> {
    writer.write_all(frame).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused() {
        let frame = encode(&vec!["a", "b"]).unwrap();
        let mut bytes = frame.clone();
        bytes.extend_from_slice(&frame);
        let mut reader = &bytes[..];
        for _ in 0..2 {
            let body = read(&mut reader).await.unwrap().unwrap();
            assert_eq!(body, br#"["a","b"]"#);
        }
        assert!(read(&mut reader).await.unwrap().is_none());

        let cut = &frame[..frame.len() - 1];
        assert!(
            read(&mut &cut[..]).await.is_err(),
            "a cut frame is an error"
        );
    }

    #[tokio::test]
    async fn a_size_prefix_over_the_limit_is_refused_before_the_body() {
        for length in [FRAME_BYTES_MAX as u32 + 1, u32::MAX] {
            let mut bytes = length.to_be_bytes().to_vec();
            bytes.extend_from_slice(b"after the prefix");
            let mut reader = &bytes[..];
            let error = read(&mut reader).await.unwrap_err();
            assert!(is_oversized(&error), "{error}");
            assert!(error.to_string().contains("FRAME_BYTES_MAX"), "{error}");
            assert_eq!(
                reader, b"after the prefix",
                "nothing past the prefix is read"
            );
        }
    }

    #[tokio::test]
    async fn a_large_prefix_then_end_of_stream_reserves_little() {
        // A prefix at the limit (accepted) followed by a few bytes and the end of the stream:
        // the reader must fail without having reserved the 64 MiB the prefix claims.
        let mut bytes = (FRAME_BYTES_MAX as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 100]);
        let mut reader = &bytes[..];
        let error = read(&mut reader).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!is_oversized(&error));

        let mut body = Vec::new();
        let error = read_body(&mut &[b'x'; 100][..], FRAME_BYTES_MAX, &mut body)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(body.len(), 100);
        assert!(
            body.capacity() <= FRAME_BODY_BYTES_UPFRONT,
            "reserved {} bytes for 100 that arrived",
            body.capacity()
        );
    }

    #[tokio::test]
    async fn a_body_larger_than_the_upfront_reservation_arrives_whole() {
        let big = "s".repeat(3 * FRAME_BODY_BYTES_UPFRONT);
        let frame = encode(&vec![big.as_str(), "tail"]).unwrap();
        let mut bytes = frame.clone();
        bytes.extend_from_slice(&frame);
        let mut reader = &bytes[..];
        for _ in 0..2 {
            let body = read(&mut reader).await.unwrap().unwrap();
            let decoded: Vec<String> = serde_json::from_slice(&body).unwrap();
            assert_eq!(decoded, [big.as_str(), "tail"]);
        }
        assert!(read(&mut reader).await.unwrap().is_none());
    }
}
