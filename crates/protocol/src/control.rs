//! Transaction markers: the control batches that end a transaction in a partition (KIP-98).
//!
//! A marker is a v2 batch with the transactional and control attributes set, the producer's id
//! and epoch, base sequence -1 and one record whose key says COMMIT or ABORT and whose value
//! carries the coordinator epoch that wrote it (Kafka's `EndTransactionMarker`):
//!
//! ```text
//! key:   version i16 (0), type i16 (0 = ABORT, 1 = COMMIT)
//! value: version i16 (0), coordinator_epoch i32
//! ```
//!
//! Control batches are never compressed. [`encode_marker`] builds one (offset 0; the log
//! assigns the real one) and [`read_marker`] reads one back from stored bytes; anything that
//! does not parse is an error value, never a panic, since the bytes come from disk or a peer.

use strom_types::TimestampMs;

use crate::batch::{compute_crc, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};

const ATTRIBUTES_TRANSACTIONAL_CONTROL: i16 = 0x10 | 0x20;
const CONTROL_KEY_VERSION: i16 = 0;
const MARKER_VALUE_VERSION: i16 = 0;

/// How a transaction ended in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerType {
    Abort,
    Commit,
}

impl MarkerType {
    fn code(self) -> i16 {
        match self {
            MarkerType::Abort => 0,
            MarkerType::Commit => 1,
        }
    }
}

/// A transaction marker read from a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerType,
    pub coordinator_epoch: i32,
}

/// Why a control batch is not a transaction marker this broker understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the control batch holds {0} records; a transaction marker holds one")]
    RecordCount(i32),
    #[error("the control batch is compressed; control batches never are")]
    Compressed,
    #[error("the control record is malformed: {0}")]
    Malformed(&'static str),
    #[error("control record type {0} is not a transaction marker (0 abort, 1 commit)")]
    UnknownType(i16),
}

/// A marker batch for `producer_id`/`producer_epoch` at offset 0, CRC set.
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    timestamp: TimestampMs,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    key.extend_from_slice(&marker.kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&MARKER_VALUE_VERSION.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut body = vec![0u8]; // record attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varint(&mut body, 0); // headers
    let mut record = Vec::with_capacity(body.len() + 1);
    put_varint(&mut record, body.len() as i64);
    record.extend_from_slice(&body);

    let total = BATCH_HEADER_BYTES + record.len();
    let mut batch = Vec::with_capacity(total);
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&((total - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    batch.extend_from_slice(&ATTRIBUTES_TRANSACTIONAL_CONTROL.to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    batch.extend_from_slice(&timestamp.0.to_be_bytes());
    batch.extend_from_slice(&timestamp.0.to_be_bytes());
    batch.extend_from_slice(&producer_id.to_be_bytes());
    batch.extend_from_slice(&producer_epoch.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&1i32.to_be_bytes()); // record count
    batch.extend_from_slice(&record);
    let crc = compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// The marker in a control batch (`header.is_control()`), from its whole bytes.
pub fn read_marker(header: &BatchHeader, batch: &[u8]) -> Result<Marker, ControlError> {
    if header.record_count != 1 {
        return Err(ControlError::RecordCount(header.record_count));
    }
    if header.compression() != Some(crate::batch::Compression::None) {
        return Err(ControlError::Compressed);
    }
    let mut reader = Reader {
        bytes: batch.get(BATCH_HEADER_BYTES..).unwrap_or_default(),
    };
    let _length = reader.varint()?;
    let _attributes = reader.take(1)?;
    let _timestamp_delta = reader.varint()?;
    let _offset_delta = reader.varint()?;
    let key_length = reader.varint()?;
    if key_length < 4 {
        return Err(ControlError::Malformed("the key is shorter than 4 bytes"));
    }
    let key = reader.take(key_length as usize)?;
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => MarkerType::Abort,
        1 => MarkerType::Commit,
        other => return Err(ControlError::UnknownType(other)),
    };
    let value_length = reader.varint()?;
    if value_length < 6 {
        return Err(ControlError::Malformed("the value is shorter than 6 bytes"));
    }
    let value = reader.take(value_length as usize)?;
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Ok(Marker {
        kind,
        coordinator_epoch,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], ControlError> {
        if self.bytes.len() < count {
            return Err(ControlError::Malformed("the record ends early"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    /// A zig-zag varint of at most 10 bytes.
    fn varint(&mut self) -> Result<i64, ControlError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(ControlError::Malformed("a varint runs past 10 bytes"))
    }
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;
    use kafka_protocol::records::RecordBatchDecoder;
    use proptest::prelude::*;

    #[test]
    fn a_marker_round_trips_and_the_reference_decoder_reads_it() {
        for kind in [MarkerType::Commit, MarkerType::Abort] {
            let marker = Marker {
                kind,
                coordinator_epoch: 7,
            };
            let batch = encode_marker(42, 3, marker, TimestampMs(1_000));
            let header = validate(&batch).expect("a valid batch with its CRC");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!(read_marker(&header, &batch), Ok(marker));
            let mut bytes = bytes::Bytes::from(batch.clone());
            let decoded = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
            let record = &decoded[0].records[0];
            assert!(record.control && record.transactional);
            let key = record.key.as_ref().unwrap();
            assert_eq!(key.as_ref(), [0, 0, 0, kind.code() as u8]);
        }
    }

    proptest! {
        #[test]
        fn damaged_markers_are_errors_not_panics(cut in 0usize..90, flip in 0usize..90, byte: u8) {
            let marker = Marker { kind: MarkerType::Commit, coordinator_epoch: 1 };
            let mut batch = encode_marker(1, 0, marker, TimestampMs(0));
            if flip < batch.len() {
                batch[flip] ^= byte;
            }
            batch.truncate(cut.max(BATCH_HEADER_BYTES));
            if let Ok(header) = BatchHeader::parse(&batch) {
                let _ = read_marker(&header, &batch);
            }
        }
    }
}
