//! What the coordinator refuses from clients before it keeps or writes anything, as pure
//! checks that each group API's entry point calls first.
//!
//! The bound that matters is the record format: `__consumer_offsets` stores the group id, the
//! topic and the commit metadata as Kafka `string`s, with a 16-bit length. Requests of flexible
//! versions (OffsetCommit v8+, JoinGroup v6+, ...) carry strings with a varint length, so a
//! client can send longer ones; Kafka's generated request readers refuse any string over
//! 0x7fff bytes while parsing, Strom's decoder does not, so the coordinator refuses them here
//! with the API's own error. The record encoder (`offsets::try_encode_key`) checks again and
//! returns an error rather than panic, should a string ever get past these checks.
//!
//! `__transaction_state` has the same bound: its records are keyed by the transactional id
//! and list the transaction's topics as `string`s, so the transaction coordinator checks both
//! with [`check_transactional_id`] and [`check_transaction_topic`].

use strom_types::ErrorCode;

/// The longest string a `__consumer_offsets` record can carry (Kafka's `string`: i16 length).
pub const RECORD_STRING_BYTES_MAX: usize = i16::MAX as usize;

/// The longest group id: every record a group writes is keyed by it.
pub const GROUP_ID_BYTES_MAX: usize = RECORD_STRING_BYTES_MAX;

/// A group id the coordinator can key state and records by. The empty id passes: Kafka still
/// accepts it from old clients in OffsetCommit, OffsetFetch, DescribeGroups and DeleteGroups.
pub fn check_group_id(group_id: &str) -> Result<(), ErrorCode> {
    match group_id.len() > GROUP_ID_BYTES_MAX {
        true => Err(ErrorCode::InvalidGroupId),
        false => Ok(()),
    }
}

/// [`check_group_id`], and not empty: what JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
/// OffsetDelete, TxnOffsetCommit and ConsumerGroupHeartbeat need (Kafka's
/// `GroupCoordinatorService.isGroupIdNotEmpty`, answered with INVALID_GROUP_ID).
pub fn check_group_id_not_empty(group_id: &str) -> Result<(), ErrorCode> {
    match group_id.is_empty() {
        true => Err(ErrorCode::InvalidGroupId),
        false => check_group_id(group_id),
    }
}

/// The longest transactional id: every `__transaction_state` record is keyed by it.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = RECORD_STRING_BYTES_MAX;

/// A transactional id the transaction coordinator can key state and records by. Kafka answers
/// INVALID_REQUEST for the empty id; an id too long for a record never parses in Kafka, and is
/// answered INVALID_REQUEST here too.
pub fn check_transactional_id(transactional_id: &str) -> Result<(), ErrorCode> {
    match transactional_id.is_empty() || transactional_id.len() > TRANSACTIONAL_ID_BYTES_MAX {
        true => Err(ErrorCode::InvalidRequest),
        false => Ok(()),
    }
}

/// A topic a transaction can list in its record. Kafka's handler answers a topic that does
/// not exist with UNKNOWN_TOPIC_OR_PARTITION before the coordinator sees it, and no topic name
/// is that long, so one that gets this far is answered the same way.
pub fn check_transaction_topic(topic: &str) -> Result<(), ErrorCode> {
    match topic.len() > RECORD_STRING_BYTES_MAX {
        true => Err(ErrorCode::UnknownTopicOrPartition),
        false => Ok(()),
    }
}

/// One committed offset's topic and metadata, before it is written. Metadata is bounded by
/// `offset.metadata.max.bytes` (`metadata_bytes_max`) and never beyond what a record holds,
/// whatever that setting says. A topic too long for a record cannot exist (Kafka's topic names
/// are at most 249 bytes), so it is answered as unknown, like any topic that does not exist.
pub fn check_offset(
    topic: &str,
    metadata: &str,
    metadata_bytes_max: usize,
) -> Result<(), ErrorCode> {
    if metadata.len() > metadata_bytes_max.min(RECORD_STRING_BYTES_MAX) {
        return Err(ErrorCode::OffsetMetadataTooLarge);
    }
    if topic.len() > RECORD_STRING_BYTES_MAX {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_up_to_the_record_limit_pass() {
        assert_eq!(check_group_id(""), Ok(()));
        assert_eq!(check_group_id("g"), Ok(()));
        assert_eq!(check_group_id(&"g".repeat(GROUP_ID_BYTES_MAX)), Ok(()));
        assert_eq!(
            check_group_id(&"g".repeat(GROUP_ID_BYTES_MAX + 1)),
            Err(ErrorCode::InvalidGroupId)
        );
        assert_eq!(
            check_group_id(&"g".repeat(40_000)),
            Err(ErrorCode::InvalidGroupId)
        );
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        // 'é' is two bytes in UTF-8: 16,384 of them are 32,768 bytes, one over.
        let accented = "é".repeat(GROUP_ID_BYTES_MAX / 2 + 1);
        assert!(accented.chars().count() < GROUP_ID_BYTES_MAX);
        assert_eq!(check_group_id(&accented), Err(ErrorCode::InvalidGroupId));
    }

    #[test]
    fn the_empty_group_id_is_refused_where_kafka_refuses_it() {
        assert_eq!(check_group_id_not_empty(""), Err(ErrorCode::InvalidGroupId));
        assert_eq!(check_group_id_not_empty("g"), Ok(()));
        assert_eq!(
            check_group_id_not_empty(&"g".repeat(GROUP_ID_BYTES_MAX + 1)),
            Err(ErrorCode::InvalidGroupId)
        );
    }

    #[test]
    fn transactional_ids_must_be_set_and_fit_a_record() {
        assert_eq!(check_transactional_id("txn"), Ok(()));
        assert_eq!(check_transactional_id(""), Err(ErrorCode::InvalidRequest));
        assert_eq!(
            check_transactional_id(&"t".repeat(TRANSACTIONAL_ID_BYTES_MAX)),
            Ok(())
        );
        assert_eq!(
            check_transactional_id(&"t".repeat(TRANSACTIONAL_ID_BYTES_MAX + 1)),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(check_transaction_topic("orders"), Ok(()));
        assert_eq!(
            check_transaction_topic(&"t".repeat(RECORD_STRING_BYTES_MAX + 1)),
            Err(ErrorCode::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn offsets_with_metadata_or_topics_too_long_for_a_record_are_refused() {
        assert_eq!(check_offset("t", "", 4096), Ok(()));
        assert_eq!(check_offset("t", &"m".repeat(4096), 4096), Ok(()));
        assert_eq!(
            check_offset("t", &"m".repeat(4097), 4096),
            Err(ErrorCode::OffsetMetadataTooLarge)
        );
        // A setting above the record's limit does not lift it.
        assert_eq!(
            check_offset("t", &"m".repeat(RECORD_STRING_BYTES_MAX), usize::MAX),
            Ok(())
        );
        assert_eq!(
            check_offset("t", &"m".repeat(RECORD_STRING_BYTES_MAX + 1), usize::MAX),
            Err(ErrorCode::OffsetMetadataTooLarge)
        );
        assert_eq!(
            check_offset(&"t".repeat(RECORD_STRING_BYTES_MAX + 1), "", 4096),
            Err(ErrorCode::UnknownTopicOrPartition)
        );
    }
}
