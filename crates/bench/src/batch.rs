//! Record batches for the load, built once, and a walk over fetched ones; free of I/O.
//!
//! Produce: a [`BatchTemplate`] encodes a full v2 batch of same-sized records once, at start.
//! A full batch is then sent as a cheap clone of those bytes; a batch cut short by the linger
//! time is the template's first `n` records (the prefix of an encoded record list is itself a
//! valid record list, since each record's offset delta is its position) with the header
//! patched and the CRC recomputed. The end-to-end bench stamps every record's value with the
//! send time first ([`BatchTemplate::stamped`]). Nothing here allocates per record.
//!
//! Idempotent and transactional producers number their batches: each carries the producer id
//! and epoch and the partition's base sequence ([`ProducerFields`]), which the CRC covers, so
//! no two such batches are the same bytes. [`BatchTemplate::sequenced`] copies the full batch,
//! patches those header fields (and the timestamps) and combines the CRC from the new header's
//! and the records', the latter computed once at build: 40 bytes hashed per batch, not the batch.
//!
//! Consume: [`walk_records`] walks the records of one fetched batch (decompressing it first
//! if need be) without copying them, giving each record's offset and value.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use strom_protocol::batch::{BatchHeader, Compression as BatchCompression, BATCH_HEADER_BYTES};
use strom_types::{ProducerEpoch, ProducerId};

use crate::error::BenchError;

/// Where the fields this module patches sit in a v2 batch header (see `strom_protocol::batch`).
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
const LOG_OVERHEAD_BYTES: usize = 12;

/// The attributes bit of a batch that is part of a transaction.
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;

/// The producer fields of a batch header: who wrote the batch, where it starts in their
/// sequence for the partition, and whether it is part of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: i32,
    pub transactional: bool,
}

impl ProducerFields {
    /// A producer that is neither idempotent nor transactional.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: ProducerId::NONE,
        producer_epoch: ProducerEpoch::NONE,
        base_sequence: -1,
        transactional: false,
    };
}

/// The end-to-end stamp at the front of a value: send time in nanoseconds since the Unix
/// epoch (8 bytes, big-endian), then this marker, so that foreign records are told apart.
pub const STAMP_MARKER: [u8; 4] = *b"strm";
/// Bytes of the stamp; a stamped value must be at least this long.
pub const STAMP_BYTES: usize = 8 + STAMP_MARKER.len();

/// The codec of a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec's id in a batch's attributes.
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// The shape of a template: how many records of what size, with which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateShape {
    pub value_bytes: usize,
    /// Keys to cycle through, one per record; empty for records without a key.
    pub keys: Vec<Vec<u8>>,
    /// Most bytes a batch may take (Kafka's `batch.size`); a batch holds at least one record.
    pub batch_bytes_max: usize,
    pub codec: Codec,
}

/// A full batch of records, encoded once, and what is needed to cut and stamp it.
#[derive(Debug, Clone)]
pub struct BatchTemplate {
    /// The uncompressed batch: header, then the records.
    plain: Vec<u8>,
    /// Where each record ends in `plain`.
    record_ends: Vec<usize>,
    /// Where each record's value starts in `plain`.
    value_starts: Vec<usize>,
    /// Key plus value bytes of each record (all records are the same size but keys may differ).
    payload_bytes: Vec<usize>,
    codec: Codec,
    /// The full batch ready to send (compressed if the codec says so).
    full: Bytes,
    /// The CRC-32C of the full batch's bytes after the header, for [`BatchTemplate::sequenced`].
    full_records_crc: u32,
}

impl BatchTemplate {
    /// Encodes a full batch; values are random capital letters (like Kafka's perf tool), so
    /// that compression has something to do. `seed` varies the contents between templates.
    pub fn build(
        shape: &TemplateShape,
        seed: u64,
        now_ms: i64,
    ) -> Result<BatchTemplate, BenchError> {
        let mut random = XorShift::new(seed);
        let mut plain = Vec::with_capacity(shape.batch_bytes_max.max(BATCH_HEADER_BYTES + 64));
        plain.resize(BATCH_HEADER_BYTES, 0);
        let mut record_ends = Vec::new();
        let mut value_starts = Vec::new();
        let mut payload_bytes = Vec::new();
        let mut value = vec![0u8; shape.value_bytes];
        loop {
            let index = record_ends.len();
            let key =
                (!shape.keys.is_empty()).then(|| shape.keys[index % shape.keys.len()].as_slice());
            random.fill_letters(&mut value);
            let mut record = Vec::with_capacity(value.len() + 32);
            let value_at = encode_record(&mut record, index as i32, key, &value);
            if index > 0 && plain.len() + record.len() > shape.batch_bytes_max {
                break;
            }
            value_starts.push(plain.len() + value_at);
            plain.extend_from_slice(&record);
            record_ends.push(plain.len());
            payload_bytes.push(key.map_or(0, <[u8]>::len) + value.len());
            if record_ends.len() >= RECORDS_PER_BATCH_MAX {
                break;
            }
        }
        let mut template = BatchTemplate {
            plain,
            record_ends,
            value_starts,
            payload_bytes,
            codec: shape.codec,
            full: Bytes::new(),
            full_records_crc: 0,
        };
        let count = template.record_count();
        template.full = template.cut(count, &ProducerFields::NONE, now_ms)?;
        template.full_records_crc = crc32c::crc32c(&template.full[BATCH_HEADER_BYTES..]);
        Ok(template)
    }

    /// Records in a full batch.
    pub fn record_count(&self) -> usize {
        self.record_ends.len()
    }

    /// Key plus value bytes of the first `records` records.
    pub fn payload_bytes(&self, records: usize) -> u64 {
        self.payload_bytes[..records]
            .iter()
            .map(|&bytes| bytes as u64)
            .sum()
    }

    /// The full batch (a reference-counted clone: no copy).
    pub fn full(&self) -> Bytes {
        self.full.clone()
    }

    /// A batch of the first `records` records: the full one when that is all of them.
    pub fn prefix(&self, records: usize, now_ms: i64) -> Result<Bytes, BenchError> {
        if records == self.record_count() {
            return Ok(self.full());
        }
        self.cut(records, &ProducerFields::NONE, now_ms)
    }

    /// A batch of the first `records` records written by an idempotent or transactional
    /// producer. A full one costs a copy and a CRC over the header; a shorter one is cut as
    /// [`BatchTemplate::prefix`] cuts it.
    pub fn sequenced(
        &self,
        records: usize,
        producer: &ProducerFields,
        now_ms: i64,
    ) -> Result<Bytes, BenchError> {
        if records < self.record_count() {
            return self.cut(records, producer, now_ms);
        }
        assert_eq!(records, self.record_count(), "records within the template");
        let mut batch = BytesMut::from(&self.full[..]);
        write_producer_fields(&mut batch, self.codec, producer, now_ms);
        let header_crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..BATCH_HEADER_BYTES]);
        let records_bytes = batch.len() - BATCH_HEADER_BYTES;
        let crc = crc32c::crc32c_combine(header_crc, self.full_records_crc, records_bytes);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(crc, crc32c::crc32c(&batch[ATTRIBUTES_AT..]));
        Ok(batch.freeze())
    }

    /// A batch of the first `records` records, each value starting with the send stamp.
    pub fn stamped(&self, records: usize, send_ns: u64, now_ms: i64) -> Result<Bytes, BenchError> {
        assert!(
            records >= 1 && records <= self.record_count(),
            "records within the template"
        );
        let mut plain = self.plain[..self.record_ends[records - 1]].to_vec();
        for &start in &self.value_starts[..records] {
            plain[start..start + 8].copy_from_slice(&send_ns.to_be_bytes());
            plain[start + 8..start + STAMP_BYTES].copy_from_slice(&STAMP_MARKER);
        }
        self.finish(plain, records, &ProducerFields::NONE, now_ms)
    }

    fn cut(
        &self,
        records: usize,
        producer: &ProducerFields,
        now_ms: i64,
    ) -> Result<Bytes, BenchError> {
        assert!(
            records >= 1 && records <= self.record_count(),
            "records within the template"
        );
        let plain = self.plain[..self.record_ends[records - 1]].to_vec();
        self.finish(plain, records, producer, now_ms)
    }

    /// Compresses the records if need be, then fills in the header and the CRC.
    fn finish(
        &self,
        plain: Vec<u8>,
        records: usize,
        producer: &ProducerFields,
        now_ms: i64,
    ) -> Result<Bytes, BenchError> {
        let mut batch = match self.codec {
            Codec::None => BytesMut::from(&plain[..]),
            codec => {
                let mut batch = BytesMut::with_capacity(plain.len());
                batch.extend_from_slice(&plain[..BATCH_HEADER_BYTES]);
                compress(codec, &plain[BATCH_HEADER_BYTES..], &mut batch)?;
                batch
            }
        };
        write_header(&mut batch, records, self.codec, producer, now_ms);
        Ok(batch.freeze())
    }
}

/// Most records one template holds, whatever the batch size (Kafka's producers stop near here
/// too: librdkafka's `batch.num.messages` is 10,000).
pub const RECORDS_PER_BATCH_MAX: usize = 10_000;

fn put(batch: &mut [u8], at: usize, bytes: &[u8]) {
    batch[at..at + bytes.len()].copy_from_slice(bytes)
}

/// Fills in a v2 header for `records` records over the bytes after it, and the CRC last.
fn write_header(
    batch: &mut [u8],
    records: usize,
    codec: Codec,
    producer: &ProducerFields,
    now_ms: i64,
) {
    let batch_length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    put(batch, 0, &0i64.to_be_bytes());
    put(batch, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
    put(batch, 12, &(-1i32).to_be_bytes()); // partition leader epoch
    batch[16] = 2; // magic
    put(
        batch,
        LAST_OFFSET_DELTA_AT,
        &(records as i32 - 1).to_be_bytes(),
    );
    put(batch, RECORD_COUNT_AT, &(records as i32).to_be_bytes());
    write_producer_fields(batch, codec, producer, now_ms);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    put(batch, CRC_AT, &crc.to_be_bytes());
}

/// Fills in the header fields that differ between batches of one template: attributes,
/// timestamps and the producer's. Leaves the CRC to the caller.
fn write_producer_fields(batch: &mut [u8], codec: Codec, producer: &ProducerFields, now_ms: i64) {
    let transactional = if producer.transactional {
        ATTRIBUTE_TRANSACTIONAL
    } else {
        0
    };
    put(
        batch,
        ATTRIBUTES_AT,
        &(codec.attribute() | transactional).to_be_bytes(),
    );
    put(batch, BASE_TIMESTAMP_AT, &now_ms.to_be_bytes());
    put(batch, MAX_TIMESTAMP_AT, &now_ms.to_be_bytes());
    put(batch, PRODUCER_ID_AT, &producer.producer_id.0.to_be_bytes());
    put(
        batch,
        PRODUCER_EPOCH_AT,
        &producer.producer_epoch.0.to_be_bytes(),
    );
    put(
        batch,
        BASE_SEQUENCE_AT,
        &producer.base_sequence.to_be_bytes(),
    );
}

/// Appends one v2 record (no headers, timestamp delta 0) and returns where its value starts
/// within `out`.
fn encode_record(out: &mut Vec<u8>, offset_delta: i32, key: Option<&[u8]>, value: &[u8]) -> usize {
    let mut body = Vec::with_capacity(value.len() + 24);
    body.push(0); // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, i64::from(offset_delta));
    match key {
        Some(key) => {
            put_varint(&mut body, key.len() as i64);
            body.extend_from_slice(key);
        }
        None => put_varint(&mut body, -1),
    }
    put_varint(&mut body, value.len() as i64);
    let value_in_body = body.len();
    body.extend_from_slice(value);
    put_varint(&mut body, 0); // header count
    put_varint(out, body.len() as i64);
    let value_at = out.len() + value_in_body;
    out.extend_from_slice(&body);
    value_at
}

/// Zig-zag varint, as Kafka's record fields use.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Reads a zig-zag varint at `*at`, moving past it; `None` if the bytes end first or it is
/// longer than a varlong may be.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

fn compress(codec: Codec, records: &[u8], out: &mut BytesMut) -> Result<(), BenchError> {
    let write = |buffer: &mut BytesMut| {
        buffer.put_slice(records);
        Ok(())
    };
    let result = match codec {
        Codec::None => write(out),
        Codec::Gzip => <Gzip as Compressor<BytesMut>>::compress(out, write),
        Codec::Snappy => <Snappy as Compressor<BytesMut>>::compress(out, write),
        Codec::Lz4 => <Lz4 as Compressor<BytesMut>>::compress(out, write),
        Codec::Zstd => <Zstd as Compressor<BytesMut>>::compress(out, write),
    };
    result.map_err(|error| BenchError::Codec(format!("{codec:?}: {error:#}")))
}

fn decompress(codec: BatchCompression, mut compressed: Bytes) -> Result<Bytes, BenchError> {
    let take = |buffer: &mut Bytes| Ok(std::mem::take(buffer));
    let result = match codec {
        BatchCompression::None => Ok(compressed),
        BatchCompression::Gzip => <Gzip as Decompressor<Bytes>>::decompress(&mut compressed, take),
        BatchCompression::Snappy => {
            <Snappy as Decompressor<Bytes>>::decompress(&mut compressed, take)
        }
        BatchCompression::Lz4 => <Lz4 as Decompressor<Bytes>>::decompress(&mut compressed, take),
        BatchCompression::Zstd => <Zstd as Decompressor<Bytes>>::decompress(&mut compressed, take),
    };
    result.map_err(|error| BenchError::Codec(format!("{codec:?}: {error:#}")))
}

/// One record of a walked batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkedRecord<'a> {
    pub offset: i64,
    pub key_bytes: usize,
    /// `None` for a null value.
    pub value: Option<&'a [u8]>,
}

/// Calls `visit` for each record of one whole batch (`batch` is exactly the batch's bytes),
/// decompressing its records first if need be. Returns how many records it visited.
pub fn walk_records(
    header: &BatchHeader,
    batch: &Bytes,
    mut visit: impl FnMut(WalkedRecord<'_>),
) -> Result<usize, BenchError> {
    let codec = header
        .compression()
        .expect("the header parser checks the codec");
    let records = decompress(codec, batch.slice(BATCH_HEADER_BYTES..))?;
    let malformed = |detail: &str| {
        BenchError::Codec(format!(
            "malformed record in the batch at offset {}: {detail}",
            header.base_offset
        ))
    };
    let mut at = 0;
    for _ in 0..header.record_count {
        let length = get_varint(&records, &mut at).ok_or_else(|| malformed("length"))?;
        let end = at
            .checked_add(usize::try_from(length).map_err(|_| malformed("length"))?)
            .filter(|&end| end <= records.len())
            .ok_or_else(|| malformed("length past the end"))?;
        at += 1; // attributes
        get_varint(&records, &mut at).ok_or_else(|| malformed("timestamp"))?;
        let offset_delta = get_varint(&records, &mut at).ok_or_else(|| malformed("offset"))?;
        let key_length = get_varint(&records, &mut at).ok_or_else(|| malformed("key"))?;
        let key_bytes = usize::try_from(key_length).unwrap_or(0);
        at += key_bytes;
        let value_length = get_varint(&records, &mut at).ok_or_else(|| malformed("value"))?;
        let value = match usize::try_from(value_length) {
            Ok(length) if at + length <= end => Some(&records[at..at + length]),
            Ok(_) => return Err(malformed("value past the end")),
            Err(_) => None,
        };
        visit(WalkedRecord {
            offset: header.base_offset.0 + offset_delta,
            key_bytes,
            value,
        });
        at = end;
    }
    Ok(header.record_count as usize)
}

/// Reads the send stamp at the front of a value, if it carries one.
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    if value.len() < STAMP_BYTES || value[8..STAMP_BYTES] != STAMP_MARKER {
        return None;
    }
    Some(u64::from_be_bytes(value[..8].try_into().expect("8 bytes")))
}

/// A small, fast, deterministic generator for record contents (not for anything secret).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `bytes` with random capital letters.
    pub fn fill_letters(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = b'A' + (self.next_u64() % 26) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::records::ProduceRecord;
    use strom_protocol::batch::{validate, Batches};

    fn shape(
        value_bytes: usize,
        keys: usize,
        batch_bytes_max: usize,
        codec: Codec,
    ) -> TemplateShape {
        TemplateShape {
            value_bytes,
            keys: (0..keys)
                .map(|key| format!("key-{key}").into_bytes())
                .collect(),
            batch_bytes_max,
            codec,
        }
    }

    fn walk(batch: &Bytes) -> Vec<(i64, usize, Vec<u8>)> {
        let header = validate(batch).expect("a valid batch");
        let mut seen = Vec::new();
        let count = walk_records(&header, batch, |record| {
            seen.push((
                record.offset,
                record.key_bytes,
                record.value.unwrap().to_vec(),
            ))
        })
        .unwrap();
        assert_eq!(count, seen.len());
        seen
    }

    #[test]
    fn a_full_batch_fills_the_batch_size_and_is_valid() {
        let template = BatchTemplate::build(&shape(100, 0, 16_384, Codec::None), 1, 1_000).unwrap();
        let full = template.full();
        assert!(full.len() <= 16_384, "{}", full.len());
        assert!(
            full.len() > 16_384 - 120,
            "one more record would not fit: {}",
            full.len()
        );
        let header = validate(&full).unwrap();
        assert_eq!(header.record_count as usize, template.record_count());
        assert_eq!(header.base_timestamp.0, 1_000);
        assert_eq!(
            template.payload_bytes(template.record_count()),
            100 * template.record_count() as u64
        );
        let records = walk(&full);
        assert_eq!(records.len(), template.record_count());
        assert!(records
            .iter()
            .enumerate()
            .all(|(i, (offset, key, value))| *offset == i as i64
                && *key == 0
                && value.len() == 100
                && value.iter().all(u8::is_ascii_uppercase)));
    }

    #[test]
    fn the_client_decoder_agrees_with_the_encoder() {
        let template = BatchTemplate::build(&shape(37, 3, 4_000, Codec::None), 7, 5).unwrap();
        let batch = template.prefix(5, 5).unwrap();
        // Decode with kafka-protocol's decoder, through the client's record type.
        let mut bytes = batch.clone();
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(decoded.records.len(), 5);
        let keys: Vec<_> = decoded
            .records
            .iter()
            .map(|record| record.key.clone().unwrap())
            .collect();
        assert_eq!(keys[0], Bytes::from_static(b"key-0"));
        assert_eq!(keys[4], Bytes::from_static(b"key-1"));
        assert_eq!(decoded.records[3].offset, 3);
        let _ = ProduceRecord::default();
    }

    #[test]
    fn a_prefix_is_a_valid_shorter_batch() {
        let template = BatchTemplate::build(&shape(100, 0, 16_384, Codec::None), 1, 1).unwrap();
        for records in [1, 2, 63, 64, 65, template.record_count()] {
            let batch = template.prefix(records, 2).unwrap();
            let header = validate(&batch).unwrap();
            assert_eq!(header.record_count as usize, records);
            assert_eq!(header.last_offset_delta as usize, records - 1);
            assert_eq!(walk(&batch).len(), records);
        }
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let template = BatchTemplate::build(&shape(200, 2, 8_000, codec), 3, 1).unwrap();
            let full = template.full();
            let header = validate(&full).unwrap();
            assert_eq!(
                header.compression().unwrap() as u8,
                codec.attribute() as u8,
                "{codec:?}"
            );
            assert!(full.len() < 8_000, "{codec:?} compresses letters");
            assert_eq!(walk(&full).len(), template.record_count());
            let stamped = template.stamped(3, 42, 1).unwrap();
            let records = walk(&stamped);
            assert_eq!(records.len(), 3);
            assert!(records
                .iter()
                .all(|(_, _, value)| read_stamp(value) == Some(42)));
        }
    }

    #[test]
    fn stamps_are_read_back_and_foreign_values_are_not() {
        let template = BatchTemplate::build(&shape(16, 0, 1_000, Codec::None), 1, 1).unwrap();
        let stamped = template.stamped(4, 1_234_567_890_123, 1).unwrap();
        for (_, _, value) in walk(&stamped) {
            assert_eq!(read_stamp(&value), Some(1_234_567_890_123));
        }
        assert_eq!(read_stamp(b"short"), None);
        assert_eq!(read_stamp(b"0123456789ABCDEF"), None);
        // The template itself is untouched.
        assert!(walk(&template.full())
            .iter()
            .all(|(_, _, value)| read_stamp(value).is_none()));
    }

    #[test]
    fn sequenced_batches_carry_their_producer_and_a_valid_crc() {
        for codec in [Codec::None, Codec::Lz4] {
            let template = BatchTemplate::build(&shape(100, 2, 4_000, codec), 5, 1).unwrap();
            let count = template.record_count();
            for (records, transactional) in [(count, false), (count, true), (count - 1, true)] {
                let producer = ProducerFields {
                    producer_id: ProducerId(7_000_000_001),
                    producer_epoch: ProducerEpoch(3),
                    base_sequence: 1_234,
                    transactional,
                };
                let batch = template.sequenced(records, &producer, 99).unwrap();
                let header = validate(&batch).expect("the CRC covers the patched header");
                assert_eq!(header.producer_id, 7_000_000_001);
                assert_eq!(header.producer_epoch, 3);
                assert_eq!(header.base_sequence, 1_234);
                assert_eq!(header.is_transactional(), transactional, "{codec:?}");
                assert_eq!(header.compression().unwrap() as u8, codec.attribute() as u8);
                assert_eq!(header.record_count as usize, records);
                assert_eq!(header.base_timestamp.0, 99);
                assert_eq!(walk(&batch), walk(&template.prefix(records, 99).unwrap()));
            }
        }
        // The template itself is untouched: its full batch has no producer.
        let template = BatchTemplate::build(&shape(10, 0, 500, Codec::None), 1, 1).unwrap();
        let producer = ProducerFields {
            base_sequence: 0,
            ..ProducerFields::NONE
        };
        template
            .sequenced(template.record_count(), &producer, 2)
            .unwrap();
        assert_eq!(validate(&template.full()).unwrap().base_sequence, -1);
    }

    #[test]
    fn a_record_larger_than_the_batch_size_still_makes_a_batch() {
        let template = BatchTemplate::build(&shape(2_000, 0, 1_000, Codec::None), 1, 1).unwrap();
        assert_eq!(template.record_count(), 1);
        assert_eq!(Batches::new(&template.full()).count(), 1);
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            let mut at = 0;
            assert_eq!(get_varint(&bytes, &mut at), Some(value));
            assert_eq!(at, bytes.len());
        }
        assert_eq!(get_varint(&[0x80], &mut 0), None);
        assert_eq!(get_varint(&[0xff; 11], &mut 0), None);
    }
}
