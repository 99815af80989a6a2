//! One record of a Raft log segment: `[payload length: u32 BE][crc32c of payload: u32 BE]
//! [payload]`. The payload is one serde_json entry. Pure: no I/O.
//!
//! A record is checked twice: its CRC is computed when it is encoded and verified when it is
//! read back, so a torn or damaged tail is found on open instead of being replayed.

use crate::quorum::limits::FRAME_BYTES_MAX;

/// Bytes before the payload: the length and the CRC.
pub const RECORD_HEADER_BYTES: usize = 8;

/// The largest payload a record may hold.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX;

/// Appends one record holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "a log record of {} bytes exceeds the {RECORD_PAYLOAD_BYTES_MAX}-byte limit",
        payload.len()
    );
    let length = u32::try_from(payload.len()).expect("bounded above");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// What the bytes at some position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record whose CRC matches; it spans `record_bytes` bytes.
    Record {
        payload: &'a [u8],
        record_bytes: usize,
    },
    /// No bytes left: the clean end of the file.
    End,
    /// Not a valid record: a torn write (cut short) or damaged bytes.
    Invalid(String),
}

/// Reads the record at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    if bytes.is_empty() {
        return Decoded::End;
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Decoded::Invalid(format!("a {}-byte partial header", bytes.len()));
    }
    let length = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if length > RECORD_PAYLOAD_BYTES_MAX {
        return Decoded::Invalid(format!("a record length of {length} bytes"));
    }
    let Some(payload) = bytes.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length) else {
        return Decoded::Invalid(format!(
            "a {length}-byte record cut short at {} bytes",
            bytes.len() - RECORD_HEADER_BYTES
        ));
    };
    if crc32c::crc32c(payload) != crc {
        return Decoded::Invalid("a record whose CRC does not match".into());
    }
    Decoded::Record {
        payload,
        record_bytes: RECORD_HEADER_BYTES + length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_any_cut_is_invalid() {
        let mut bytes = Vec::new();
        encode(b"{\"a\":1}", &mut bytes);
        encode(b"", &mut bytes);
        let Decoded::Record {
            payload,
            record_bytes,
        } = decode(&bytes)
        else {
            panic!("expected a record");
        };
        assert_eq!(payload, b"{\"a\":1}");
        assert_eq!(
            decode(&bytes[record_bytes..]),
            Decoded::Record {
                payload: b"",
                record_bytes: RECORD_HEADER_BYTES
            }
        );
        assert_eq!(decode(&bytes[bytes.len()..]), Decoded::End);
        for cut in 1..record_bytes {
            assert!(
                matches!(decode(&bytes[..cut]), Decoded::Invalid(_)),
                "{cut}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut bytes = Vec::new();
        encode(b"payload", &mut bytes);
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x10;
            assert!(
                !matches!(decode(&damaged), Decoded::Record { payload, .. } if payload == b"payload"),
                "byte {index}"
            );
        }
    }
}
