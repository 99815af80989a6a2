//! A zero-copy view of Kafka v2 record-batch headers.
//!
//! The broker never decodes records on the produce or fetch path: it reads the fixed 61-byte
//! batch header, checks the CRC once, rewrites the base offset (and, for `LogAppendTime`, the
//! max timestamp) in place, and stores the bytes exactly as they arrived.
//!
//! Layout of a v2 batch (big-endian):
//! ```text
//!  0 base_offset i64          | not covered by the CRC
//!  8 batch_length i32         | bytes after this field
//! 12 partition_leader_epoch   |
//! 16 magic i8 (= 2)           |
//! 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16, 23 last_offset_delta i32, 27 base_timestamp i64, 35 max_timestamp i64,
//! 43 producer_id i64, 51 producer_epoch i16, 53 base_sequence i32, 57 record_count i32
//! 61 records...
//! ```

use strom_types::{Offset, TimestampMs};

/// Bytes in a v2 record-batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before the `batch_length` field ends: a batch is `LOG_OVERHEAD + batch_length` long.
pub const LOG_OVERHEAD_BYTES: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch is truncated: {available} bytes, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("record batch has magic {0}; only v2 record batches (magic 2) are supported")]
    UnsupportedMagic(i8),
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch declares {record_count} records but a last offset delta of {last_offset_delta}")]
    InconsistentCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("record batch uses unknown compression codec {0}")]
    UnknownCompression(i16),
}

/// The compression codec named in a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The decoded fields of one batch header; the bytes themselves stay where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Bytes after the length field; the whole batch is `LOG_OVERHEAD_BYTES + batch_length`.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: TimestampMs,
    pub max_timestamp: TimestampMs,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`. Checks the magic and the length fields, not
    /// the CRC (see [`verify_crc`]) and not that the whole batch is present (see
    /// [`BatchHeader::total_bytes`]).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            // The magic byte may already be readable: a v0/v1 message set is shorter.
            if bytes.len() > MAGIC && bytes[MAGIC] as i8 != 2 {
                return Err(BatchError::UnsupportedMagic(bytes[MAGIC] as i8));
            }
            return Err(BatchError::Truncated {
                available: bytes.len(),
                needed: BATCH_HEADER_BYTES,
            });
        }
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = read_i32(bytes, BATCH_LENGTH);
        if (batch_length as i64) < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let header = BatchHeader {
            base_offset: Offset(read_i64(bytes, BASE_OFFSET)),
            batch_length,
            partition_leader_epoch: read_i32(bytes, PARTITION_LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes(bytes[CRC..CRC + 4].try_into().expect("4 bytes")),
            attributes: read_i16(bytes, ATTRIBUTES),
            last_offset_delta: read_i32(bytes, LAST_OFFSET_DELTA),
            base_timestamp: TimestampMs(read_i64(bytes, BASE_TIMESTAMP)),
            max_timestamp: TimestampMs(read_i64(bytes, MAX_TIMESTAMP)),
            producer_id: read_i64(bytes, PRODUCER_ID),
            producer_epoch: read_i16(bytes, PRODUCER_EPOCH),
            base_sequence: read_i32(bytes, BASE_SEQUENCE),
            record_count: read_i32(bytes, RECORD_COUNT),
        };
        if header.record_count < 0 || header.last_offset_delta < 0 {
            return Err(BatchError::InconsistentCount {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        if header.compression().is_none() {
            return Err(BatchError::UnknownCompression(
                header.attributes & ATTRIBUTE_COMPRESSION_MASK,
            ));
        }
        Ok(header)
    }

    /// Bytes the whole batch takes, header included.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(self.last_offset_delta as i64)
    }

    /// The offset after the batch's last record.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & ATTRIBUTE_COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTRIBUTE_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
}

/// CRC-32C of the bytes the v2 batch CRC covers (from the attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Checks that `batch` (exactly one whole batch) carries the CRC of its contents.
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Parses and fully validates one whole batch: header, length against `batch.len()`, CRC.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_bytes() != batch.len() {
        return Err(BatchError::Truncated {
            available: batch.len(),
            needed: header.total_bytes(),
        });
    }
    verify_crc(batch, &header)?;
    Ok(header)
}

/// Rewrites the base offset in place. The CRC does not cover it, so nothing else changes.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.0.to_be_bytes());
}

/// Rewrites the partition leader epoch in place (not covered by the CRC either).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamps a batch with the broker's append time (topic `message.timestamp.type=LogAppendTime`):
/// sets the timestamp-type attribute and the max timestamp, then recomputes the CRC, as Kafka
/// does. Record timestamps are left alone; readers use the batch's max timestamp.
pub fn set_log_append_time(batch: &mut [u8], now: TimestampMs) {
    let attributes = read_i16(batch, ATTRIBUTES) | ATTRIBUTE_LOG_APPEND_TIME;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.0.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Walks the whole batches in a byte range (a produce request's records or a segment's
/// contents). Stops at the first malformed or incomplete batch; [`Batches::error`] then says why
/// and [`Batches::position`] where.
pub struct Batches<'a> {
    bytes: &'a [u8],
    position: usize,
    error: Option<BatchError>,
}

impl<'a> Batches<'a> {
    pub fn new(bytes: &'a [u8]) -> Batches<'a> {
        Batches {
            bytes,
            position: 0,
            error: None,
        }
    }

    /// Bytes consumed by the whole batches returned so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Why iteration stopped early, if it did (`None` after a clean end).
    pub fn error(&self) -> Option<&BatchError> {
        self.error.as_ref()
    }
}

impl<'a> Iterator for Batches<'a> {
    /// A header and the byte range of its whole batch within the walked slice.
    type Item = (BatchHeader, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.position..];
        if rest.is_empty() || self.error.is_some() {
            return None;
        }
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(error) => {
                self.error = Some(error);
                return None;
            }
        };
        let needed = header.total_bytes();
        if rest.len() < needed {
            self.error = Some(BatchError::Truncated {
                available: rest.len(),
                needed,
            });
            return None;
        }
        let range = self.position..self.position + needed;
        self.position += needed;
        Some((header, range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    fn encoded_batch(count: usize, compression: Codec) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The reference encoder starts a new batch unless offset - sequence is constant.
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(bytes::Bytes::from(format!("key-{i}"))),
                value: Some(bytes::Bytes::from(vec![b'v'; 10 + i])),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn reads_what_the_reference_encoder_wrote() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let batch = encoded_batch(5, codec);
            let header = validate(&batch).unwrap();
            assert_eq!(header.record_count, 5);
            assert_eq!(header.last_offset_delta, 4);
            assert_eq!(header.max_timestamp, TimestampMs(1_004));
            assert_eq!(header.total_bytes(), batch.len());
            assert!(!header.is_log_append_time());
        }
    }

    #[test]
    fn offset_rewrite_keeps_the_crc_and_append_time_recomputes_it() {
        let mut batch = encoded_batch(3, Codec::None);
        set_base_offset(&mut batch, Offset(42));
        let header = validate(&batch).unwrap();
        assert_eq!(header.base_offset, Offset(42));
        assert_eq!(header.last_offset(), Offset(44));
        set_log_append_time(&mut batch, TimestampMs(99_000));
        let header = validate(&batch).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, TimestampMs(99_000));
    }

    #[test]
    fn corruption_is_detected() {
        let batch = encoded_batch(3, Codec::None);
        let mut flipped = batch.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(
            validate(&flipped),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(matches!(
            validate(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut old_magic = batch.clone();
        old_magic[16] = 1;
        assert_eq!(validate(&old_magic), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn batches_iterator_stops_at_a_torn_tail() {
        let mut bytes = encoded_batch(2, Codec::None);
        let second = encoded_batch(3, Codec::Lz4);
        let first_len = bytes.len();
        bytes.extend_from_slice(&second[..second.len() - 5]);
        let mut batches = Batches::new(&bytes);
        let (header, range) = batches.next().unwrap();
        assert_eq!(header.record_count, 2);
        assert_eq!(range, 0..first_len);
        assert!(batches.next().is_none());
        assert_eq!(batches.position(), first_len);
        assert!(matches!(
            batches.error(),
            Some(BatchError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn header_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(header) = BatchHeader::parse(&bytes) {
                prop_assert!(header.total_bytes() >= BATCH_HEADER_BYTES);
            }
            for _ in Batches::new(&bytes) {}
        }

        #[test]
        fn any_valid_batch_survives_offset_rewrite(count in 1usize..50, base in 0i64..1 << 40) {
            let mut batch = encoded_batch(count, Codec::None);
            set_base_offset(&mut batch, Offset(base));
            let header = validate(&batch).unwrap();
            prop_assert_eq!(header.base_offset, Offset(base));
            prop_assert_eq!(header.next_offset(), Offset(base + count as i64));
        }
    }
}
