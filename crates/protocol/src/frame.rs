//! Length-prefixed framing: every Kafka request and response is a 4-byte big-endian size
//! followed by that many bytes.
//!
//! The size is checked against the limit before a single byte of the frame is allocated, so
//! an absurd or negative length costs the broker nothing but the connection.

/// Bytes in the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// The smallest request: api key, api version, correlation id, and a null client id.
pub const REQUEST_HEADER_BYTES_MIN: usize = 10;

/// Why a frame's size prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size {size} is below the {REQUEST_HEADER_BYTES_MIN}-byte request header")]
    TooSmall { size: usize },
    #[error("frame size {size} exceeds socket.request.max.bytes ({limit})")]
    TooLarge { size: usize, limit: usize },
}

/// Checks a request's size prefix against `request_bytes_max` and returns the body size.
pub fn request_size(
    prefix: [u8; SIZE_PREFIX_BYTES],
    request_bytes_max: usize,
) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size < REQUEST_HEADER_BYTES_MIN {
        return Err(FrameError::TooSmall { size });
    }
    if size > request_bytes_max {
        return Err(FrameError::TooLarge {
            size,
            limit: request_bytes_max,
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_allocation() {
        assert_eq!(request_size(20i32.to_be_bytes(), 100), Ok(20));
        assert_eq!(
            request_size((-1i32).to_be_bytes(), 100),
            Err(FrameError::Negative(-1))
        );
        assert_eq!(
            request_size(3i32.to_be_bytes(), 100),
            Err(FrameError::TooSmall { size: 3 })
        );
        assert_eq!(
            request_size(i32::MAX.to_be_bytes(), 100),
            Err(FrameError::TooLarge {
                size: i32::MAX as usize,
                limit: 100
            })
        );
    }
}
