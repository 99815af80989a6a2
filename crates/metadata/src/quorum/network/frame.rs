//! Frames on a controller connection: a 4-byte big-endian length, then that many bytes of
//! serde_json. Both directions bound the length by [`FRAME_BYTES_MAX`].

use std::io;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::quorum::limits::FRAME_BYTES_MAX;

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
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(prefix) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes exceeds the {FRAME_BYTES_MAX}-byte limit"),
        ));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one whole frame made by [`encode`].
pub async fn write<W: AsyncWrite + Unpin>(writer: &mut W, frame: &[u8]) -> io::Result<()> {
    writer.write_all(frame).await
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

        let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
        let error = read(&mut &huge[..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let cut = &frame[..frame.len() - 1];
        assert!(
            read(&mut &cut[..]).await.is_err(),
            "a cut frame is an error"
        );
    }
}
