//! Records as callers see them, and their v2 record-batch encoding (free of I/O).
//!
//! Produce: [`encode_batch`] turns [`ProduceRecord`]s into one v2 batch with the
//! `kafka-protocol` encoder. Fetch: [`decode_records`] walks the batches of a fetch response
//! with Strom's batch-header view, decodes each whole batch (which checks its CRC and
//! decompresses it), drops control records and records before the fetch offset, and says
//! where the next fetch should start. A partial batch at the end (the broker cut the
//! response at `max_bytes`) is left for the next fetch.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_protocol::batch::{BatchError, Batches};
use strom_types::{Offset, PartitionIndex, TimestampMs};

use crate::ClientError;

/// A record header: a name and an optional value.
pub type Header = (String, Option<Bytes>);

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Names must be distinct: the encoder keeps one value per name.
    pub headers: Vec<Header>,
    /// The record's create time; `None` stamps it with the wall clock when encoded.
    pub timestamp: Option<TimestampMs>,
}

impl ProduceRecord {
    pub fn new(key: Option<Bytes>, value: Option<Bytes>) -> ProduceRecord {
        ProduceRecord {
            key,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Bytes the record's key, value and headers take; a batch weighs a little more.
    pub fn payload_bytes(&self) -> usize {
        let header_bytes: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, Bytes::len))
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + header_bytes
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: Offset,
    /// Create time, or the broker's append time when `timestamp_type` says so.
    pub timestamp: TimestampMs,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Encodes `records` as one v2 record batch (offsets 0..n, no producer id).
pub fn encode_batch(
    records: &[ProduceRecord],
    compression: Compression,
    now: TimestampMs,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::InvalidArgument(
            "a record batch needs at least one record".to_string(),
        ));
    }
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| to_record(index, record, now))
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options).map_err(|error| {
        ClientError::InvalidArgument(format!("cannot encode the record batch: {error:#}"))
    })?;
    // One batch is what the broker expects per partition; the encoder starts another only
    // when batch-level fields differ between records, which `to_record` never lets happen.
    debug_assert_eq!(Batches::new(&buffer).count(), 1);
    Ok(buffer.freeze())
}

fn to_record(index: usize, record: &ProduceRecord, now: TimestampMs) -> Record {
    let headers: IndexMap<StrBytes, Option<Bytes>> = record
        .headers
        .iter()
        .map(|(name, value)| (StrBytes::from_string(name.clone()), value.clone()))
        .collect();
    let offset = index as i64;
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder keeps records in one batch only while `offset - sequence` stays the
        // same, and writes the first record's sequence as the batch's base sequence: so the
        // sequence counts up from -1 ("no sequence") along with the offset.
        sequence: (offset as i32).wrapping_sub(1),
        timestamp: record.timestamp.unwrap_or(now).0,
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }
}

/// The records of a fetch response, and where to fetch next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedRecords {
    pub records: Vec<FetchedRecord>,
    /// The offset after the last whole batch, if there was one (a batch of only control or
    /// already-seen records moves it on too).
    pub next_offset: Option<Offset>,
}

/// Decodes the record batches of one partition's fetch response.
pub fn decode_records(
    bytes: &Bytes,
    fetch_offset: Offset,
    topic: &str,
    partition: PartitionIndex,
) -> Result<DecodedRecords, ClientError> {
    let corrupt = |detail: String| ClientError::CorruptBatch {
        topic: topic.to_string(),
        partition,
        detail,
    };
    let mut decoded = DecodedRecords::default();
    let mut batches = Batches::new(bytes);
    for (header, range) in &mut batches {
        decoded.next_offset = Some(header.next_offset());
        if header.is_control() || header.last_offset() < fetch_offset {
            continue;
        }
        let mut batch = bytes.slice(range);
        let record_set = RecordBatchDecoder::decode(&mut batch).map_err(|error| {
            corrupt(format!("batch at offset {}: {error:#}", header.base_offset))
        })?;
        for record in record_set.records {
            if record.offset < fetch_offset.0 {
                continue;
            }
            // With LogAppendTime the batch's max timestamp is the append time of every record.
            let timestamp = match record.timestamp_type {
                TimestampType::LogAppend => header.max_timestamp,
                TimestampType::Creation => TimestampMs(record.timestamp),
            };
            decoded.records.push(FetchedRecord {
                offset: Offset(record.offset),
                timestamp,
                timestamp_type: record.timestamp_type,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value))
                    .collect(),
            });
        }
    }
    match batches.error() {
        None => {}
        // A partial batch after whole ones is the cut at max_bytes: fetch it next time.
        Some(BatchError::Truncated { .. }) if decoded.next_offset.is_some() => {}
        Some(BatchError::Truncated { available, needed }) => {
            return Err(corrupt(format!(
                "the response holds {available} bytes of a {needed}-byte batch at offset {fetch_offset}; \
                 fetch with a larger max_bytes"
            )));
        }
        Some(error) => return Err(corrupt(format!("after offset {fetch_offset}: {error}"))),
    }
    if let Some(last) = decoded.records.last() {
        assert!(
            decoded.next_offset.is_some_and(|next| next > last.offset),
            "next offset is past every record"
        );
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::batch;

    fn record(key: &str, value: &str) -> ProduceRecord {
        let mut record = ProduceRecord::new(
            Some(Bytes::from(key.to_string())),
            Some(Bytes::from(value.to_string())),
        );
        record
            .headers
            .push(("h".to_string(), Some(Bytes::from_static(b"v"))));
        record
    }

    /// A batch as the broker would return it: encoded, then given a base offset.
    fn stored_batch(
        records: &[ProduceRecord],
        base_offset: i64,
        compression: Compression,
    ) -> Vec<u8> {
        let mut bytes = encode_batch(records, compression, TimestampMs(1_000))
            .unwrap()
            .to_vec();
        batch::set_base_offset(&mut bytes, Offset(base_offset));
        bytes
    }

    #[test]
    fn one_batch_round_trips_with_every_codec() {
        let records: Vec<_> = (0..50)
            .map(|i| record(&format!("k{i}"), &format!("value {i}")))
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = Bytes::from(stored_batch(&records, 100, compression));
            let header = batch::validate(&bytes).expect("one valid batch");
            assert_eq!(header.record_count, 50);
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.producer_id, -1);
            let decoded = decode_records(&bytes, Offset(100), "t", PartitionIndex(0)).unwrap();
            assert_eq!(decoded.next_offset, Some(Offset(150)));
            assert_eq!(decoded.records.len(), 50);
            let last = &decoded.records[49];
            assert_eq!(last.offset, Offset(149));
            assert_eq!(last.key.as_deref(), Some(&b"k49"[..]));
            assert_eq!(last.value.as_deref(), Some(&b"value 49"[..]));
            assert_eq!(
                last.headers,
                vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
            );
            assert_eq!(last.timestamp, TimestampMs(1_000));
        }
    }

    #[test]
    fn records_before_the_fetch_offset_are_skipped() {
        let records: Vec<_> = (0..10).map(|i| record("k", &i.to_string())).collect();
        let bytes = Bytes::from(stored_batch(&records, 0, Compression::Lz4));
        let decoded = decode_records(&bytes, Offset(7), "t", PartitionIndex(0)).unwrap();
        let offsets: Vec<i64> = decoded
            .records
            .iter()
            .map(|record| record.offset.0)
            .collect();
        assert_eq!(offsets, vec![7, 8, 9]);
    }

    #[test]
    fn a_partial_trailing_batch_waits_for_the_next_fetch() {
        let mut bytes = stored_batch(&[record("a", "1"), record("b", "2")], 0, Compression::None);
        let second = stored_batch(&[record("c", "3")], 2, Compression::None);
        bytes.extend_from_slice(&second[..second.len() - 5]);
        let decoded =
            decode_records(&Bytes::from(bytes), Offset(0), "t", PartitionIndex(0)).unwrap();
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.next_offset, Some(Offset(2)));
    }

    #[test]
    fn a_lone_partial_batch_is_an_error() {
        let bytes = stored_batch(&[record("a", "1")], 0, Compression::None);
        let error = decode_records(
            &Bytes::copy_from_slice(&bytes[..40]),
            Offset(0),
            "t",
            PartitionIndex(3),
        )
        .unwrap_err();
        assert!(error.to_string().contains("larger max_bytes"), "{error}");
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut bytes = stored_batch(&[record("a", "1")], 0, Compression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let error =
            decode_records(&Bytes::from(bytes), Offset(0), "t", PartitionIndex(3)).unwrap_err();
        assert!(matches!(error, ClientError::CorruptBatch { .. }), "{error}");
    }

    #[test]
    fn empty_responses_decode_to_nothing() {
        let decoded = decode_records(&Bytes::new(), Offset(5), "t", PartitionIndex(0)).unwrap();
        assert_eq!(decoded, DecodedRecords::default());
        assert!(encode_batch(&[], Compression::None, TimestampMs(0)).is_err());
    }
}
