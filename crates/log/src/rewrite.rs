//! Re-encoding a batch after compaction removed some of its records, as Kafka's
//! `MemoryRecords.filterTo` does: the batch keeps its base offset, last offset delta, producer id
//! and epoch, base sequence, partition leader epoch, timestamp type and codec. Only the records,
//! the record count, the max timestamp and the delete horizon change; the CRC is recomputed and
//! the records are compressed again with the batch's own codec.
//!
//! kafka-protocol's `RecordBatchEncoder` cannot write such a batch: it derives the base offset,
//! the last offset delta and the base timestamp from the records it is given. A batch whose
//! first or last record was removed would move its offsets (and an idempotent producer's last
//! sequence with them), and the delete horizon, which KIP-534 stores as the base timestamp with
//! record timestamps relative to it, could not be written at all. So the 61-byte header and the
//! record framing are written here; kafka-protocol decodes the records and provides the codecs.
//! A test checks that a batch re-encoded with nothing removed is byte for byte what
//! `RecordBatchEncoder` makes.
//!
//! Record headers go through kafka-protocol's decoder, which keeps them in a map: a record with
//! two headers of the same key comes out of a rewrite with one (the last value, at the first
//! key's position). Batches nothing is removed from are copied as stored, so this only touches
//! records that compaction rewrites.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use strom_protocol::batch::{compute_crc, BatchHeader, Compression, BATCH_HEADER_BYTES};
use strom_types::{Offset, TimestampMs};

use crate::error::LogError;

/// Attribute bits of a v2 batch (strom-protocol reads them but does not export them).
const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;
/// KIP-534: the base timestamp holds the time after which the batch's tombstones may go.
const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;

/// Where the CRC sits in a batch, and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;

/// The batch's delete horizon, if a cleaner already set one (KIP-534).
pub(crate) fn delete_horizon(header: &BatchHeader) -> Option<TimestampMs> {
    (header.attributes & ATTRIBUTE_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

/// Decodes the records of one stored batch (CRC-checked again by the decoder), and checks they
/// lie within the batch's offsets, which a rewrite keeps.
pub(crate) fn decode_records(header: &BatchHeader, bytes: &[u8]) -> Result<Vec<Record>, LogError> {
    let undecodable = |reason: String| LogError::UndecodableRecords {
        base_offset: header.base_offset,
        reason,
    };
    let mut buffer = Bytes::copy_from_slice(bytes);
    let record_set =
        RecordBatchDecoder::decode(&mut buffer).map_err(|error| undecodable(error.to_string()))?;
    let range = header.base_offset.0..=header.last_offset().0;
    if let Some(stray) = record_set
        .records
        .iter()
        .find(|record| !range.contains(&record.offset))
    {
        return Err(undecodable(format!(
            "a record claims offset {}, outside the batch's offsets {}..={}",
            stray.offset,
            range.start(),
            range.end()
        )));
    }
    Ok(record_set.records)
}

/// The fields a rewrite sets; everything else comes from the original header.
struct NewFields {
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
}

/// `original` with only `records` left (at least one), and `delete_horizon` set if given.
pub(crate) fn encode_retained(
    original: &BatchHeader,
    records: &[Record],
    delete_horizon: Option<TimestampMs>,
) -> Result<Vec<u8>, LogError> {
    let first = records.first().expect("a rewritten batch keeps a record");
    // Kafka's builder: the first record's timestamp, or the horizon when there is one.
    let base_timestamp = delete_horizon.map_or(first.timestamp, |horizon| horizon.0);
    let max_timestamp = match original.is_log_append_time() {
        true => original.max_timestamp.0,
        false => records
            .iter()
            .map(|record| record.timestamp)
            .max()
            .expect("one record"),
    };
    let mut plain = Vec::new();
    let mut scratch = Vec::new();
    for record in records {
        put_record(
            &mut plain,
            &mut scratch,
            record,
            original.base_offset,
            base_timestamp,
        );
    }
    let codec = original
        .compression()
        .expect("a stored batch names a known codec");
    let compressed = compress(codec, plain).map_err(|reason| LogError::Uncompactable {
        base_offset: original.base_offset,
        reason: format!("re-compressing the batch with {codec:?} failed: {reason}"),
    })?;
    let horizon_bit = match delete_horizon {
        Some(_) => ATTRIBUTE_DELETE_HORIZON,
        None => 0,
    };
    let fields = NewFields {
        attributes: (original.attributes & !ATTRIBUTE_DELETE_HORIZON) | horizon_bit,
        base_timestamp,
        max_timestamp,
        record_count: i32::try_from(records.len()).expect("fewer records than the original"),
    };
    write_batch(original, &fields, &compressed)
}

/// `original` as a batch with no records (Kafka's `writeEmptyHeader`): it still spans the same
/// offsets and carries the producer's last sequence, so an idempotent producer's state and the
/// log's offset range survive the removal of every record.
pub(crate) fn encode_empty(original: &BatchHeader) -> Vec<u8> {
    let kept = ATTRIBUTE_LOG_APPEND_TIME | ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL;
    let fields = NewFields {
        attributes: original.attributes & kept,
        base_timestamp: original.max_timestamp.0,
        max_timestamp: original.max_timestamp.0,
        record_count: 0,
    };
    write_batch(original, &fields, &[]).expect("a header-only batch always fits")
}

fn write_batch(
    original: &BatchHeader,
    fields: &NewFields,
    records: &[u8],
) -> Result<Vec<u8>, LogError> {
    debug_assert_eq!(fields.attributes & !0x7f, 0, "only known attribute bits");
    let total = BATCH_HEADER_BYTES + records.len();
    let batch_length = i32::try_from(total - 12).map_err(|_| LogError::Uncompactable {
        base_offset: original.base_offset,
        reason: format!("the rewritten batch would take {total} bytes"),
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&original.base_offset.0.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&fields.attributes.to_be_bytes());
    out.extend_from_slice(&original.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&fields.base_timestamp.to_be_bytes());
    out.extend_from_slice(&fields.max_timestamp.to_be_bytes());
    out.extend_from_slice(&original.producer_id.to_be_bytes());
    out.extend_from_slice(&original.producer_epoch.to_be_bytes());
    out.extend_from_slice(&original.base_sequence.to_be_bytes());
    out.extend_from_slice(&fields.record_count.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(records);
    let crc = compute_crc(&out);
    out[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// One v2 record: its length, then attributes, timestamp and offset deltas, key, value, headers.
fn put_record(
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
    record: &Record,
    base_offset: Offset,
    base_timestamp: i64,
) {
    let offset_delta = i32::try_from(record.offset - base_offset.0)
        .expect("decode_records kept records inside the batch's offsets");
    body.clear();
    body.push(0);
    put_varlong(body, record.timestamp.wrapping_sub(base_timestamp));
    put_varint(body, offset_delta);
    put_nullable_bytes(body, record.key.as_deref());
    put_nullable_bytes(body, record.value.as_deref());
    put_varint(body, field_length(record.headers.len()));
    for (key, value) in &record.headers {
        put_nullable_bytes(body, Some(key.as_bytes()));
        put_nullable_bytes(body, value.as_deref());
    }
    put_varint(out, field_length(body.len()));
    out.extend_from_slice(body);
}

/// Lengths of fields decoded from a stored batch fit the batch's own 32-bit length.
fn field_length(length: usize) -> i32 {
    i32::try_from(length).expect("a field of a stored batch fits i32")
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varint(out, field_length(bytes.len()));
            out.extend_from_slice(bytes);
        }
        None => put_varint(out, -1),
    }
}

fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The records section compressed with `codec` (as the original batch was).
fn compress(codec: Compression, plain: Vec<u8>) -> Result<Vec<u8>, String> {
    fn with<C: Compressor<Vec<u8>, BufMut = BytesMut>>(plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        C::compress(&mut out, |buffer: &mut BytesMut| {
            buffer.extend_from_slice(plain);
            Ok(())
        })
        .map_err(|error| format!("{error:#}"))?;
        Ok(out)
    }
    match codec {
        Compression::None => Ok(plain),
        Compression::Gzip => with::<Gzip>(&plain),
        Compression::Snappy => with::<Snappy>(&plain),
        Compression::Lz4 => with::<Lz4>(&plain),
        Compression::Zstd => with::<Zstd>(&plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression as Codec, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use strom_protocol::batch::validate;

    const CODECS: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn record(offset: i64, value: Option<&str>) -> Record {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("trace"),
            Some(Bytes::from(format!("t{offset}"))),
        );
        headers.insert(StrBytes::from_static_str("empty"), None);
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 7,
            producer_id: 4_000,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 50 + (offset - 100) as i32,
            timestamp: 1_000_000 + offset * 3,
            key: Some(Bytes::from(format!("key-{}", offset % 3))),
            value: value.map(|value| Bytes::from(value.to_string())),
            headers,
        }
    }

    /// A batch at offsets 100..106 as a client library encodes it, with a tombstone at 104.
    fn client_batch(codec: Codec) -> (Vec<u8>, BatchHeader) {
        let records: Vec<Record> = (100..106)
            .map(|offset| record(offset, (offset != 104).then_some("some value")))
            .collect();
        let mut buffer = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buffer, &records, &options).unwrap();
        let header = validate(&buffer).unwrap();
        assert_eq!(header.total_bytes(), buffer.len(), "one batch");
        (buffer.to_vec(), header)
    }

    #[test]
    fn a_batch_rewritten_whole_is_byte_for_byte_what_the_client_encoder_made() {
        for codec in CODECS {
            let (bytes, header) = client_batch(codec);
            let records = decode_records(&header, &bytes).unwrap();
            assert_eq!(records.len(), 6);
            let rewritten = encode_retained(&header, &records, None).unwrap();
            assert!(rewritten == bytes, "{codec:?}");
        }
    }

    #[test]
    fn a_rewritten_batch_keeps_its_offsets_producer_and_codec() {
        for codec in CODECS {
            let (bytes, header) = client_batch(codec);
            let records = decode_records(&header, &bytes).unwrap();
            // Keep 102 and 104 (the tombstone): the first and last records go.
            let kept = [records[2].clone(), records[4].clone()];
            let rewritten = encode_retained(&header, &kept, None).unwrap();
            let new = validate(&rewritten).unwrap();
            assert_eq!(
                (new.base_offset, new.last_offset(), new.record_count),
                (Offset(100), Offset(105), 2)
            );
            assert_eq!(
                (new.producer_id, new.producer_epoch, new.base_sequence),
                (4_000, 3, 50)
            );
            assert_eq!(new.partition_leader_epoch, 7);
            assert_eq!(new.compression(), header.compression());
            assert_eq!(new.max_timestamp, TimestampMs(1_000_000 + 104 * 3));
            assert_eq!(delete_horizon(&new), None);
            let decoded = decode_records(&new, &rewritten).unwrap();
            assert_eq!(decoded, kept, "{codec:?}");
        }
    }

    #[test]
    fn a_delete_horizon_becomes_the_base_timestamp_and_record_times_survive() {
        let (bytes, header) = client_batch(Codec::Lz4);
        let records = decode_records(&header, &bytes).unwrap();
        let horizon = TimestampMs(9_000_000_000);
        let rewritten = encode_retained(&header, &records[3..5], Some(horizon)).unwrap();
        let new = validate(&rewritten).unwrap();
        assert_eq!(delete_horizon(&new), Some(horizon));
        assert_eq!(new.base_timestamp, horizon);
        assert_eq!(new.max_timestamp, TimestampMs(1_000_000 + 104 * 3));
        let decoded = decode_records(&new, &rewritten).unwrap();
        assert_eq!(decoded[0].timestamp, records[3].timestamp);
        assert!(decoded.iter().all(|record| record.delete_horizon));
        // Rewriting again keeps the horizon the first cleaning set.
        let again = encode_retained(&new, &decoded[1..], delete_horizon(&new)).unwrap();
        assert_eq!(delete_horizon(&validate(&again).unwrap()), Some(horizon));
    }

    #[test]
    fn an_emptied_batch_keeps_its_offsets_and_sequence_but_no_records() {
        let (bytes, mut header) = client_batch(Codec::Gzip);
        header.attributes |= ATTRIBUTE_LOG_APPEND_TIME;
        let empty = encode_empty(&header);
        assert_eq!(empty.len(), BATCH_HEADER_BYTES);
        let new = validate(&empty).unwrap();
        assert_eq!(
            (new.base_offset, new.last_offset(), new.record_count),
            (Offset(100), Offset(105), 0)
        );
        assert_eq!((new.producer_id, new.base_sequence), (4_000, 50));
        assert_eq!(new.compression(), Some(Compression::None));
        assert!(new.is_log_append_time());
        assert_eq!(new.base_timestamp, header.max_timestamp);
        assert!(decode_records(&new, &empty).unwrap().is_empty());
        assert!(bytes.len() > empty.len());
    }

    #[test]
    fn records_outside_their_batch_offsets_are_refused() {
        let (bytes, mut header) = client_batch(Codec::None);
        header.last_offset_delta = 2;
        let error = decode_records(&header, &bytes).unwrap_err();
        assert!(
            matches!(error, LogError::UndecodableRecords { .. }),
            "{error}"
        );
    }

    #[test]
    fn varints_are_zigzag_encoded() {
        let encode = |value: i64| {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            out
        };
        assert_eq!(encode(0), [0]);
        assert_eq!(encode(-1), [1]);
        assert_eq!(encode(1), [2]);
        assert_eq!(encode(-64), [0x7f]);
        assert_eq!(encode(64), [0x80, 0x01]);
        assert_eq!(encode(i64::MIN).len(), 10);
        let mut out = Vec::new();
        put_varint(&mut out, i32::MIN);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }
}
