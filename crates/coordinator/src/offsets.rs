//! The records of `__consumer_offsets`, in Kafka's layout so tools that read the topic
//! understand them: key = version 1 (offset commit), group, topic, partition; value = version 3:
//! offset, leader epoch, metadata, commit timestamp. A record with a null value (tombstone)
//! deletes the key.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::limits::RECORD_STRING_BYTES_MAX;

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;

/// Which committed offset a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// Why a record of `__consumer_offsets` could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("offsets record is truncated")]
    Truncated,
    #[error("offsets record has a string that is not UTF-8")]
    NotUtf8,
    #[error("offsets record has unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error(
        "the {field} of an offsets record has {bytes} bytes; a record holds at most \
         {RECORD_STRING_BYTES_MAX}"
    )]
    StringTooLong { field: &'static str, bytes: usize },
}

/// What one record of `__consumer_offsets` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Commit(OffsetKey, CommittedOffset),
    Delete(OffsetKey),
    /// Group metadata (key version 2), which Strom does not write; skipped on replay.
    GroupMetadata,
}

/// Writes a Kafka `string` (i16 length); `field` names it in the error.
fn put_string(buf: &mut BytesMut, field: &'static str, text: &str) -> Result<(), RecordError> {
    let too_long = RecordError::StringTooLong {
        field,
        bytes: text.len(),
    };
    let length = i16::try_from(text.len()).map_err(|_| too_long)?;
    buf.put_i16(length);
    buf.put_slice(text.as_bytes());
    Ok(())
}

fn get_string(buf: &mut Bytes) -> Result<String, RecordError> {
    if buf.remaining() < 2 {
        return Err(RecordError::Truncated);
    }
    let length = buf.get_i16();
    let length = usize::try_from(length).map_err(|_| RecordError::Truncated)?;
    if buf.remaining() < length {
        return Err(RecordError::Truncated);
    }
    String::from_utf8(buf.split_to(length).to_vec()).map_err(|_| RecordError::NotUtf8)
}

fn get<T>(
    buf: &mut Bytes,
    bytes: usize,
    read: impl FnOnce(&mut Bytes) -> T,
) -> Result<T, RecordError> {
    if buf.remaining() < bytes {
        return Err(RecordError::Truncated);
    }
    Ok(read(buf))
}

/// A record key, or [`RecordError::StringTooLong`] for a group id or topic that a record cannot
/// hold (the coordinator refuses those before it gets here: see [`crate::limits`]).
pub fn try_encode_key(key: &OffsetKey) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::with_capacity(8 + key.group.len() + key.topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, "group id", &key.group)?;
    put_string(&mut buf, "topic", &key.topic)?;
    buf.put_i32(key.partition);
    Ok(buf.freeze())
}

/// A record value, or [`RecordError::StringTooLong`] for metadata that a record cannot hold.
pub fn try_encode_value(value: &CommittedOffset) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::with_capacity(24 + value.metadata.len());
    buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, "metadata", &value.metadata)?;
    buf.put_i64(value.commit_timestamp_ms);
    Ok(buf.freeze())
}

/// [`try_encode_key`] for a key the coordinator produced or accepted: every entry point checks
/// group ids and topics against [`crate::limits`] first, so a key a record cannot hold is a
/// bug here, not a client's doing. Callers that can report an error use `try_encode_key`.
pub fn encode_key(key: &OffsetKey) -> Bytes {
    try_encode_key(key).unwrap_or_else(|error| panic!("{error}: the coordinator admitted it"))
}

/// [`try_encode_value`] for a value the coordinator accepted (see [`encode_key`]).
pub fn encode_value(value: &CommittedOffset) -> Bytes {
    try_encode_value(value).unwrap_or_else(|error| panic!("{error}: the coordinator admitted it"))
}

/// Reads one record's key and (possibly null) value.
pub fn decode(key: &Bytes, value: Option<&Bytes>) -> Result<OffsetsRecord, RecordError> {
    let mut key = key.clone();
    let version = get(&mut key, 2, |buf| buf.get_i16())?;
    match version {
        0 | OFFSET_COMMIT_KEY_VERSION => {}
        GROUP_METADATA_KEY_VERSION => return Ok(OffsetsRecord::GroupMetadata),
        version => {
            return Err(RecordError::UnknownVersion {
                what: "key",
                version,
            })
        }
    }
    let group = get_string(&mut key)?;
    let topic = get_string(&mut key)?;
    let partition = get(&mut key, 4, |buf| buf.get_i32())?;
    let key = OffsetKey {
        group,
        topic,
        partition,
    };
    let Some(value) = value else {
        return Ok(OffsetsRecord::Delete(key));
    };
    let mut value = value.clone();
    let version = get(&mut value, 2, |buf| buf.get_i16())?;
    let offset = get(&mut value, 8, |buf| buf.get_i64())?;
    let leader_epoch = if version >= 3 {
        get(&mut value, 4, |buf| buf.get_i32())?
    } else {
        -1
    };
    let metadata = get_string(&mut value)?;
    let commit_timestamp_ms = get(&mut value, 8, |buf| buf.get_i64())?;
    if !(0..=4).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "value",
            version,
        });
    }
    Ok(OffsetsRecord::Commit(
        key,
        CommittedOffset {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        },
    ))
}

/// Kafka's choice of `__consumer_offsets` partition for a group:
/// `abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode` over UTF-16 units.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(unit as i32)
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_string_hash_partitioning() {
        // "" hashes to 0; "a" to 97; Java's "hello".hashCode() is 99162322.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    }

    #[test]
    fn truncated_and_unknown_records_are_errors() {
        assert_eq!(
            decode(&Bytes::from_static(&[0]), None),
            Err(RecordError::Truncated)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[0, 9, 0, 0]), None),
            Err(RecordError::UnknownVersion {
                what: "key",
                version: 9
            })
        );
    }

    #[test]
    fn strings_a_record_cannot_hold_are_errors_not_panics() {
        let long = "x".repeat(RECORD_STRING_BYTES_MAX + 1);
        let key = |group: &str, topic: &str| OffsetKey {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition: 0,
        };
        assert_eq!(
            try_encode_key(&key(&long, "t")),
            Err(RecordError::StringTooLong {
                field: "group id",
                bytes: long.len()
            })
        );
        assert_eq!(
            try_encode_key(&key("g", &long)),
            Err(RecordError::StringTooLong {
                field: "topic",
                bytes: long.len()
            })
        );
        let value = |metadata: &str| CommittedOffset {
            offset: 1,
            leader_epoch: 0,
            metadata: metadata.to_owned(),
            commit_timestamp_ms: 0,
        };
        let error = try_encode_value(&value(&long)).unwrap_err();
        assert!(error.to_string().contains("metadata"), "{error}");

        // The longest strings a record holds still round-trip.
        let longest = "y".repeat(RECORD_STRING_BYTES_MAX);
        let (key, value) = (key(&longest, &longest), value(&longest));
        let encoded_key = try_encode_key(&key).unwrap();
        let encoded_value = try_encode_value(&value).unwrap();
        assert_eq!(
            decode(&encoded_key, Some(&encoded_value)),
            Ok(OffsetsRecord::Commit(key, value))
        );
    }

    proptest! {
        #[test]
        fn commit_records_round_trip(group in ".{0,20}", topic in "[a-z]{1,20}", partition in 0i32..1000,
                                     offset in 0i64.., epoch in -1i32..100, metadata in ".{0,30}", time in 0i64..) {
            let key = OffsetKey { group, topic, partition };
            let value = CommittedOffset { offset, leader_epoch: epoch, metadata, commit_timestamp_ms: time };
            let decoded = decode(&encode_key(&key), Some(&encode_value(&value))).unwrap();
            prop_assert_eq!(decoded, OffsetsRecord::Commit(key.clone(), value));
            prop_assert_eq!(decode(&encode_key(&key), None).unwrap(), OffsetsRecord::Delete(key));
        }

        #[test]
        fn random_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..40), value in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&Bytes::from(key), Some(&Bytes::from(value)));
        }
    }
}
