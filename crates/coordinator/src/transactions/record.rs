//! The records of `__transaction_state`, in Kafka's own layout (`TransactionLogKey.json`,
//! `TransactionLogValue.json`), so Kafka's tools read what Strom writes and Strom reads what
//! Kafka wrote.
//!
//! Key, version 0 (never flexible): `version: i16 = 0`, `transactional_id: string`.
//!
//! Value, a version `i16` then:
//! - version 0: `producer_id: i64`, `producer_epoch: i16`, `transaction_timeout_ms: i32`,
//!   `transaction_status: i8`, `transaction_partitions: [topic: string, partition_ids: [i32]]`
//!   (nullable, i32 counts, -1 for null), `transaction_last_update_timestamp_ms: i64`,
//!   `transaction_start_timestamp_ms: i64`.
//! - version 1 (flexible, KIP-890, written by Kafka once `transaction.version` >= 1): the same
//!   fields with compact strings and arrays (unsigned varint length + 1, 0 for null), a tagged
//!   field section after each partition entry, and a tagged field section at the end holding
//!   `previous_producer_id` (tag 0, i64, default -1), `next_producer_id` (tag 1, i64, default -1)
//!   and `client_transaction_version` (tag 2, i16, default 0). A tagged field is written only
//!   when it differs from its default, as Kafka's generated writers do; unknown tags are
//!   skipped on read.
//!
//! A record with a null value (tombstone) removes the transactional id. An Empty state's value
//! has null partitions; on read they are ignored for Empty, as Kafka's `readTxnRecordValue`
//! does.
//!
//! Decoding never panics: every length is checked against what is left, and a bad record is a
//! [`RecordError`] value, so hostile bytes in the topic cost a skipped record, not the broker.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_types::{PartitionIndex, ProducerEpoch, ProducerId};

use super::state::TransactionState;
use crate::limits::RECORD_STRING_BYTES_MAX;

/// The internal topic that stores every transactional id's state; its partition's leader
/// coordinates the ids that hash to it.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The only key version Kafka defines.
pub const KEY_VERSION: i16 = 0;

/// The newest value version this module reads and writes.
pub const VALUE_VERSION_MAX: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// One `transaction_partitions` entry: a topic and its partitions.
pub type TopicPartitions = (String, Vec<i32>);

/// A transactional id's state as one `__transaction_state` value holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: ProducerId,
    /// Version 1 only (tag 0): the producer id before the last rotation; -1 if none.
    pub previous_producer_id: ProducerId,
    /// Version 1 only (tag 1): KIP-890 part 2's next producer id; -1 if none.
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub transaction_timeout_ms: i32,
    pub state: TransactionState,
    /// The partitions in the transaction, by topic; `None` is the null array.
    pub partitions: Option<Vec<TopicPartitions>>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// Version 1 only (tag 2): the client's `transaction.version`; 0 by default.
    pub client_transaction_version: i16,
}

/// What one record of `__transaction_state` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionLogRecord {
    /// The latest state of a transactional id.
    Value {
        transactional_id: String,
        value: TransactionLogValue,
    },
    /// A tombstone: the transactional id expired and is gone.
    Tombstone { transactional_id: String },
}

/// Why a record of `__transaction_state` could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("transaction state record is truncated")]
    Truncated,
    #[error("transaction state record has a string that is not UTF-8")]
    NotUtf8,
    #[error("transaction state record has unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("transaction state record has unknown transaction status {0}")]
    UnknownState(i8),
    #[error("transaction state record has a null {field}, which may not be null")]
    Null { field: &'static str },
    #[error("transaction state record has a {field} of {length} bytes, over the 32767-byte limit")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("transaction state record has a varint longer than five bytes")]
    VarintTooLong,
    #[error("transaction state record has tagged field {tag} with {size} bytes, not {expected}")]
    TaggedFieldSize { tag: u32, size: u32, expected: u32 },
    #[error(
        "the {field} of a transaction state record has {bytes} bytes; a record holds at most \
         {RECORD_STRING_BYTES_MAX}"
    )]
    StringTooLong { field: &'static str, bytes: usize },
    #[error("transaction state record is not one Kafka writes: {0}")]
    Inconsistent(&'static str),
}

/// Kafka's choice of `__transaction_state` partition for a transactional id:
/// `Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions`, with Java's
/// `String.hashCode` over UTF-16 code units (the same rule as a group's offsets partition).
pub fn partition_for(transactional_id: &str, partitions: i32) -> PartitionIndex {
    assert!(partitions > 0, "a topic has at least one partition");
    PartitionIndex(crate::offsets::partition_for(transactional_id, partitions))
}

/// The record key for a transactional id, or [`RecordError::StringTooLong`] for one a record
/// cannot hold.
pub fn try_encode_key(transactional_id: &str) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, "transactional id", transactional_id)?;
    Ok(buf.freeze())
}

/// The record value at `version` (0 or 1). Version 0 has no tagged fields: the previous and
/// next producer ids and the client transaction version are left out of it.
pub fn try_encode_value(value: &TransactionLogValue, version: i16) -> Result<Bytes, RecordError> {
    let flexible = match version {
        0 => false,
        1 => true,
        version => {
            return Err(RecordError::UnknownVersion {
                what: "value",
                version,
            })
        }
    };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(version);
    buf.put_i64(value.producer_id.0);
    buf.put_i16(value.producer_epoch.0);
    buf.put_i32(value.transaction_timeout_ms);
    buf.put_i8(value.state.id());
    put_partitions(&mut buf, value.partitions.as_deref(), flexible)?;
    buf.put_i64(value.last_update_timestamp_ms);
    buf.put_i64(value.start_timestamp_ms);
    if flexible {
        put_value_tags(&mut buf, value);
    }
    Ok(buf.freeze())
}

fn put_partitions(
    buf: &mut BytesMut,
    partitions: Option<&[TopicPartitions]>,
    flexible: bool,
) -> Result<(), RecordError> {
    let Some(partitions) = partitions else {
        match flexible {
            true => put_unsigned_varint(buf, 0),
            false => buf.put_i32(-1),
        }
        return Ok(());
    };
    put_array_length(buf, partitions.len(), flexible);
    for (topic, ids) in partitions {
        match flexible {
            true => put_compact_string(buf, "topic", topic)?,
            false => put_string(buf, "topic", topic)?,
        }
        put_array_length(buf, ids.len(), flexible);
        for id in ids {
            buf.put_i32(*id);
        }
        if flexible {
            put_unsigned_varint(buf, 0); // the entry's tagged fields: none
        }
    }
    Ok(())
}

fn put_value_tags(buf: &mut BytesMut, value: &TransactionLogValue) {
    let previous = (value.previous_producer_id != ProducerId::NONE).then_some(value);
    let next = (value.next_producer_id != ProducerId::NONE).then_some(value);
    let client_version = (value.client_transaction_version != 0).then_some(value);
    let count = [previous.is_some(), next.is_some(), client_version.is_some()]
        .iter()
        .filter(|present| **present)
        .count();
    put_unsigned_varint(buf, count as u32);
    if let Some(value) = previous {
        put_unsigned_varint(buf, TAG_PREVIOUS_PRODUCER_ID);
        put_unsigned_varint(buf, 8);
        buf.put_i64(value.previous_producer_id.0);
    }
    if let Some(value) = next {
        put_unsigned_varint(buf, TAG_NEXT_PRODUCER_ID);
        put_unsigned_varint(buf, 8);
        buf.put_i64(value.next_producer_id.0);
    }
    if let Some(value) = client_version {
        put_unsigned_varint(buf, TAG_CLIENT_TRANSACTION_VERSION);
        put_unsigned_varint(buf, 2);
        buf.put_i16(value.client_transaction_version);
    }
}

/// Reads one record's key and (possibly null) value.
pub fn decode(key: &Bytes, value: Option<&Bytes>) -> Result<TransactionLogRecord, RecordError> {
    let mut reader = Reader(key.clone());
    let version = reader.i16()?;
    if version != KEY_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "key",
            version,
        });
    }
    let transactional_id = reader.string("transactional id")?;
    match value {
        None => Ok(TransactionLogRecord::Tombstone { transactional_id }),
        Some(value) => Ok(TransactionLogRecord::Value {
            transactional_id,
            value: decode_value(value)?,
        }),
    }
}

/// Reads a record value of version 0 or 1.
pub fn decode_value(value: &Bytes) -> Result<TransactionLogValue, RecordError> {
    let mut reader = Reader(value.clone());
    let version = reader.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        version => {
            return Err(RecordError::UnknownVersion {
                what: "value",
                version,
            })
        }
    };
    let producer_id = ProducerId(reader.i64()?);
    let producer_epoch = ProducerEpoch(reader.i16()?);
    let transaction_timeout_ms = reader.i32()?;
    let status = reader.i8()?;
    let state = TransactionState::from_id(status).ok_or(RecordError::UnknownState(status))?;
    let partitions = reader.partitions(flexible)?;
    let last_update_timestamp_ms = reader.i64()?;
    let start_timestamp_ms = reader.i64()?;
    let mut value = TransactionLogValue {
        producer_id,
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch,
        transaction_timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms,
        start_timestamp_ms,
        client_transaction_version: 0,
    };
    if flexible {
        reader.value_tags(&mut value)?;
    }
    Ok(value)
}

/// Writes a Kafka `string` (i16 length); `field` names it in the error.
fn put_string(buf: &mut BytesMut, field: &'static str, text: &str) -> Result<(), RecordError> {
    let length = checked_string_length(field, text)?;
    buf.put_i16(length as i16);
    buf.put_slice(text.as_bytes());
    Ok(())
}

/// Writes a Kafka `compact string` (unsigned varint length + 1).
fn put_compact_string(
    buf: &mut BytesMut,
    field: &'static str,
    text: &str,
) -> Result<(), RecordError> {
    let length = checked_string_length(field, text)?;
    put_unsigned_varint(buf, length + 1);
    buf.put_slice(text.as_bytes());
    Ok(())
}

/// Kafka refuses strings over 0x7fff bytes in either form.
fn checked_string_length(field: &'static str, text: &str) -> Result<u32, RecordError> {
    match text.len() > RECORD_STRING_BYTES_MAX {
        true => Err(RecordError::StringTooLong {
            field,
            bytes: text.len(),
        }),
        false => Ok(text.len() as u32),
    }
}

fn put_array_length(buf: &mut BytesMut, length: usize, flexible: bool) {
    let length = u32::try_from(length).expect("an array in a record fits a 32-bit length");
    assert!(length < i32::MAX as u32, "an array in a record fits an i32");
    match flexible {
        true => put_unsigned_varint(buf, length + 1),
        false => buf.put_i32(length as i32),
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Reads Kafka's primitive types from a record, refusing anything that runs past the end.
struct Reader(Bytes);

impl Reader {
    fn take<T>(
        &mut self,
        bytes: usize,
        read: impl FnOnce(&mut Bytes) -> T,
    ) -> Result<T, RecordError> {
        match self.0.remaining() < bytes {
            true => Err(RecordError::Truncated),
            false => Ok(read(&mut self.0)),
        }
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        self.take(1, |buf| buf.get_i8())
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        self.take(2, |buf| buf.get_i16())
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        self.take(4, |buf| buf.get_i32())
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        self.take(8, |buf| buf.get_i64())
    }

    /// Kafka's unsigned varint: at most five bytes, at most 32 bits.
    fn unsigned_varint(&mut self) -> Result<u32, RecordError> {
        let mut value: u64 = 0;
        for index in 0..5 {
            let byte = self.take(1, |buf| buf.get_u8())?;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| RecordError::VarintTooLong);
            }
        }
        Err(RecordError::VarintTooLong)
    }

    fn bytes(&mut self, length: usize) -> Result<Bytes, RecordError> {
        self.take(length, |buf| buf.split_to(length))
    }

    fn utf8(&mut self, length: usize) -> Result<String, RecordError> {
        String::from_utf8(self.bytes(length)?.to_vec()).map_err(|_| RecordError::NotUtf8)
    }

    /// A non-nullable `string` (i16 length).
    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.i16()?;
        if length < 0 {
            return Err(RecordError::Null { field });
        }
        self.utf8(length as usize)
    }

    /// A non-nullable `compact string` (unsigned varint length + 1).
    fn compact_string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = i64::from(self.unsigned_varint()?) - 1;
        if length < 0 {
            return Err(RecordError::Null { field });
        }
        if length > RECORD_STRING_BYTES_MAX as i64 {
            return Err(RecordError::InvalidLength { field, length });
        }
        self.utf8(length as usize)
    }

    /// An array's element count, `None` for null; a count larger than the bytes left could
    /// hold (`element_bytes_min` each) is a truncated record, not an allocation.
    fn array_length(
        &mut self,
        flexible: bool,
        element_bytes_min: usize,
    ) -> Result<Option<usize>, RecordError> {
        let length = match flexible {
            true => i64::from(self.unsigned_varint()?) - 1,
            false => i64::from(self.i32()?),
        };
        if length < 0 {
            return Ok(None);
        }
        let length = length as usize;
        match length.saturating_mul(element_bytes_min) > self.0.remaining() {
            true => Err(RecordError::Truncated),
            false => Ok(Some(length)),
        }
    }

    fn partitions(&mut self, flexible: bool) -> Result<Option<Vec<TopicPartitions>>, RecordError> {
        // Each entry holds at least a topic length and a partition count.
        let Some(count) = self.array_length(flexible, 2)? else {
            return Ok(None);
        };
        let mut partitions = Vec::with_capacity(count);
        for _ in 0..count {
            let topic = match flexible {
                true => self.compact_string("topic")?,
                false => self.string("topic")?,
            };
            let ids_count = self.array_length(flexible, 4)?.ok_or(RecordError::Null {
                field: "partition ids",
            })?;
            let mut ids = Vec::with_capacity(ids_count);
            for _ in 0..ids_count {
                ids.push(self.i32()?);
            }
            if flexible {
                self.skip_tags()?;
            }
            partitions.push((topic, ids));
        }
        Ok(Some(partitions))
    }

    /// A tagged field section whose tags are all unknown to this struct.
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let _tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            self.bytes(size as usize)?;
        }
        Ok(())
    }

    fn value_tags(&mut self, value: &mut TransactionLogValue) -> Result<(), RecordError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            let expected = match tag {
                TAG_PREVIOUS_PRODUCER_ID | TAG_NEXT_PRODUCER_ID => 8,
                TAG_CLIENT_TRANSACTION_VERSION => 2,
                _ => {
                    self.bytes(size as usize)?;
                    continue;
                }
            };
            if size != expected {
                return Err(RecordError::TaggedFieldSize {
                    tag,
                    size,
                    expected,
                });
            }
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => value.previous_producer_id = ProducerId(self.i64()?),
                TAG_NEXT_PRODUCER_ID => value.next_producer_id = ProducerId(self.i64()?),
                _ => value.client_transaction_version = self.i16()?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(state: TransactionState) -> TransactionLogValue {
        TransactionLogValue {
            producer_id: ProducerId(1000),
            previous_producer_id: ProducerId::NONE,
            next_producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch(3),
            transaction_timeout_ms: 60_000,
            state,
            partitions: Some(vec![("orders".to_owned(), vec![0, 2])]),
            last_update_timestamp_ms: 1_700_000_000_123,
            start_timestamp_ms: 1_700_000_000_000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn java_string_hash_partitioning() {
        // Java: "".hashCode() == 0, "hello".hashCode() == 99162322,
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("", 50), PartitionIndex(0));
        assert_eq!(partition_for("hello", 50), PartitionIndex(99_162_322 % 50));
        assert_eq!(partition_for("polygenelubricants", 50), PartitionIndex(0));
        // "Aa" and "BB" collide in Java (2112).
        assert_eq!(partition_for("Aa", 50), PartitionIndex(2112 % 50));
        assert_eq!(partition_for("BB", 50), PartitionIndex(2112 % 50));
        // A character outside the BMP counts as its two UTF-16 surrogates: 0xD83D * 31 + 0xDE00.
        assert_eq!(partition_for("😀", 50), PartitionIndex(1_772_899 % 50));
        // Negative hashes are made positive: Java's "my-txn".hashCode() is -1061187895.
        assert_eq!(
            partition_for("my-txn", 50),
            PartitionIndex(1_061_187_895 % 50)
        );
    }

    #[test]
    fn version_0_value_has_kafkas_layout() {
        let bytes = try_encode_value(&value(TransactionState::Ongoing), 0).unwrap();
        let mut expected = BytesMut::new();
        expected.put_i16(0); // version
        expected.put_i64(1000); // producer id
        expected.put_i16(3); // epoch
        expected.put_i32(60_000); // timeout
        expected.put_i8(1); // Ongoing
        expected.put_i32(1); // one topic
        expected.put_i16(6);
        expected.put_slice(b"orders");
        expected.put_i32(2);
        expected.put_i32(0);
        expected.put_i32(2);
        expected.put_i64(1_700_000_000_123);
        expected.put_i64(1_700_000_000_000);
        assert_eq!(bytes, expected.freeze());
    }

    #[test]
    fn version_1_value_has_kafkas_flexible_layout() {
        let mut v = value(TransactionState::PrepareCommit);
        v.previous_producer_id = ProducerId(999);
        let bytes = try_encode_value(&v, 1).unwrap();
        let mut expected = BytesMut::new();
        expected.put_i16(1);
        expected.put_i64(1000);
        expected.put_i16(3);
        expected.put_i32(60_000);
        expected.put_i8(2); // PrepareCommit
        expected.put_u8(2); // compact array: 1 topic + 1
        expected.put_u8(7); // compact string: 6 + 1
        expected.put_slice(b"orders");
        expected.put_u8(3); // two partitions + 1
        expected.put_i32(0);
        expected.put_i32(2);
        expected.put_u8(0); // the entry's tagged fields
        expected.put_i64(1_700_000_000_123);
        expected.put_i64(1_700_000_000_000);
        expected.put_u8(1); // one tagged field
        expected.put_u8(0); // tag 0: previous producer id
        expected.put_u8(8);
        expected.put_i64(999);
        assert_eq!(bytes, expected.freeze());
    }

    #[test]
    fn key_has_kafkas_layout_and_tombstones_decode() {
        let key = try_encode_key("txn").unwrap();
        assert_eq!(&key[..], &[0, 0, 0, 3, b't', b'x', b'n']);
        assert_eq!(
            decode(&key, None),
            Ok(TransactionLogRecord::Tombstone {
                transactional_id: "txn".to_owned()
            })
        );
    }

    #[test]
    fn null_partitions_and_unknown_tags_read_like_kafka() {
        let mut empty = value(TransactionState::Empty);
        empty.partitions = None;
        for version in [0, 1] {
            let bytes = try_encode_value(&empty, version).unwrap();
            assert_eq!(decode_value(&bytes), Ok(empty.clone()));
        }
        // A future tag (7, three bytes) is skipped; the known one after it is still read.
        let bytes = try_encode_value(&empty, 1).unwrap();
        let mut with_unknown = BytesMut::from(&bytes[..bytes.len() - 1]);
        with_unknown.put_slice(&[2, 1, 8]);
        with_unknown.put_i64(42);
        with_unknown.put_slice(&[7, 3, 1, 2, 3]);
        let decoded = decode_value(&with_unknown.freeze()).unwrap();
        assert_eq!(decoded.next_producer_id, ProducerId(42));
    }

    #[test]
    fn hostile_values_are_errors() {
        let good = try_encode_value(&value(TransactionState::Ongoing), 1).unwrap();
        for cut in 0..good.len() {
            assert!(decode_value(&good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut unknown_state = BytesMut::from(&good[..]);
        unknown_state[16] = 9;
        assert_eq!(
            decode_value(&unknown_state.freeze()),
            Err(RecordError::UnknownState(9))
        );
        let mut version = BytesMut::from(&good[..]);
        version[1] = 2;
        assert_eq!(
            decode_value(&version.freeze()),
            Err(RecordError::UnknownVersion {
                what: "value",
                version: 2
            })
        );
        // A v0 array claiming two billion topics in a few bytes is truncated, not allocated.
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        huge.put_i64(1);
        huge.put_i16(0);
        huge.put_i32(1);
        huge.put_i8(1);
        huge.put_i32(i32::MAX);
        assert_eq!(decode_value(&huge.freeze()), Err(RecordError::Truncated));
        // A varint that never ends.
        let mut endless = BytesMut::from(&good[..17]);
        endless.put_slice(&[0xff; 6]);
        assert_eq!(
            decode_value(&endless.freeze()),
            Err(RecordError::VarintTooLong)
        );
        // A null topic in version 0.
        let mut null_topic = BytesMut::from(&good[..17]);
        null_topic[1] = 0;
        null_topic.put_i32(1);
        null_topic.put_i16(-1);
        assert_eq!(
            decode_value(&null_topic.freeze()),
            Err(RecordError::Null { field: "topic" })
        );
        // A known tag with the wrong size.
        let mut bad_tag = BytesMut::from(&good[..good.len() - 1]);
        bad_tag.put_slice(&[1, 0, 4, 0, 0, 0, 0]);
        assert_eq!(
            decode_value(&bad_tag.freeze()),
            Err(RecordError::TaggedFieldSize {
                tag: 0,
                size: 4,
                expected: 8
            })
        );
    }

    #[test]
    fn hostile_keys_are_errors() {
        assert_eq!(
            decode(&Bytes::from_static(&[0]), None),
            Err(RecordError::Truncated)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0, 1, 0, 0]), None),
            Err(RecordError::UnknownVersion {
                what: "key",
                version: 1
            })
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0, 0, 0xff, 0xff]), None),
            Err(RecordError::Null {
                field: "transactional id"
            })
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0, 0, 0, 2, 0xc3, 0x28]), None),
            Err(RecordError::NotUtf8)
        );
    }

    #[test]
    fn strings_a_record_cannot_hold_are_errors() {
        let long = "x".repeat(RECORD_STRING_BYTES_MAX + 1);
        assert_eq!(
            try_encode_key(&long),
            Err(RecordError::StringTooLong {
                field: "transactional id",
                bytes: long.len()
            })
        );
        let mut v = value(TransactionState::Ongoing);
        v.partitions = Some(vec![(long.clone(), vec![0])]);
        for version in [0, 1] {
            assert!(matches!(
                try_encode_value(&v, version),
                Err(RecordError::StringTooLong { field: "topic", .. })
            ));
        }
        assert!(try_encode_key(&"y".repeat(RECORD_STRING_BYTES_MAX)).is_ok());
    }

    fn any_state() -> impl Strategy<Value = TransactionState> {
        proptest::sample::select(TransactionState::ALL.to_vec())
    }

    fn any_value() -> impl Strategy<Value = TransactionLogValue> {
        let partitions = proptest::option::of(proptest::collection::vec(
            (".{0,12}", proptest::collection::vec(any::<i32>(), 0..5)),
            0..4,
        ));
        (
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i16>()),
            (any::<i32>(), any_state(), partitions),
            (any::<i64>(), any::<i64>(), any::<i16>()),
        )
            .prop_map(
                |(
                    (id, previous, next, epoch),
                    (timeout, state, partitions),
                    (update, start, client),
                )| {
                    TransactionLogValue {
                        producer_id: ProducerId(id),
                        previous_producer_id: ProducerId(previous),
                        next_producer_id: ProducerId(next),
                        producer_epoch: ProducerEpoch(epoch),
                        transaction_timeout_ms: timeout,
                        state,
                        partitions,
                        last_update_timestamp_ms: update,
                        start_timestamp_ms: start,
                        client_transaction_version: client,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn version_1_round_trips(id in ".{0,40}", v in any_value()) {
            let key = try_encode_key(&id).unwrap();
            let bytes = try_encode_value(&v, 1).unwrap();
            prop_assert_eq!(
                decode(&key, Some(&bytes)).unwrap(),
                TransactionLogRecord::Value { transactional_id: id.clone(), value: v }
            );
            prop_assert_eq!(
                decode(&key, None).unwrap(),
                TransactionLogRecord::Tombstone { transactional_id: id }
            );
        }

        #[test]
        fn version_0_round_trips_without_tagged_fields(v in any_value()) {
            let bytes = try_encode_value(&v, 0).unwrap();
            let expected = TransactionLogValue {
                previous_producer_id: ProducerId::NONE,
                next_producer_id: ProducerId::NONE,
                client_transaction_version: 0,
                ..v
            };
            prop_assert_eq!(decode_value(&bytes).unwrap(), expected);
        }

        #[test]
        fn random_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..40),
                                    value in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&Bytes::from(key), Some(&Bytes::from(value)));
        }

        #[test]
        fn mutated_records_never_panic(v in any_value(), version in 0i16..2,
                                       flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut bytes = BytesMut::from(&try_encode_value(&v, version).unwrap()[..]);
            for (at, byte) in flips {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let _ = decode_value(&bytes.freeze());
        }
    }
}
