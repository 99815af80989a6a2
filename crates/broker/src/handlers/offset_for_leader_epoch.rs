//! OffsetForLeaderEpoch: where a leader epoch ended in the leader's log (KIP-101, KIP-279).
//!
//! Followers ask it to find where to truncate; consumers (KIP-320) ask it after a leader change
//! to check that their position was not lost in an unclean election. Like Kafka, only the
//! leader answers, whoever asks (`replica_id` only says who is asking).

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strom_types::Offset;

use crate::topics::{led_partition, Topic};
use crate::Broker;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET: the epoch is not known here.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

pub fn handle(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topics.get(wanted.topic.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|partition| lookup(broker, wanted.topic.as_str(), topic.as_deref(), partition))
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(wanted.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn lookup(
    broker: &Broker,
    name: &str,
    topic: Option<&Topic>,
    wanted: &OffsetForLeaderPartition,
) -> EpochEndOffset {
    let response = EpochEndOffset::default()
        .with_partition(wanted.partition)
        .with_leader_epoch(UNDEFINED_EPOCH)
        .with_end_offset(UNDEFINED_EPOCH_OFFSET);
    let image = broker.quorum.image();
    let (node, index) = (broker.config.node_id, wanted.partition);
    let partition = match led_partition(
        &image,
        name,
        topic,
        index,
        node,
        wanted.current_leader_epoch,
    ) {
        Ok(partition) => partition,
        Err(code) => return response.with_error_code(code.code()),
    };
    let leader_epoch = partition.state.read().leader_epoch;
    let log = partition.log.lock();
    let found = end_offset_for(
        wanted.leader_epoch,
        leader_epoch,
        log.latest_epoch(),
        log.end_offset_for_epoch(wanted.leader_epoch),
        log.log_end_offset(),
    );
    match found {
        Some((epoch, end_offset)) => response
            .with_leader_epoch(epoch)
            .with_end_offset(end_offset.0),
        None => response,
    }
}

/// The answer for `requested` on a leader of `leader_epoch`, given what the log's epoch cache
/// says (`latest_cached`, `cached`). Kafka's leader writes (its epoch, log end offset) into the
/// cache when it takes over; this log records an epoch only with its first batch, so until
/// then the handler answers as if that entry were there. Without it, a consumer asking for the
/// current epoch of a leader that has not written yet would get UNDEFINED and reset its
/// position, and one asking for an older epoch would be sent to an offset before the log end.
fn end_offset_for(
    requested: i32,
    leader_epoch: i32,
    latest_cached: Option<i32>,
    cached: Option<(i32, Offset)>,
    log_end_offset: Offset,
) -> Option<(i32, Offset)> {
    let cache_is_current = latest_cached.is_some_and(|latest| latest >= leader_epoch);
    if cache_is_current || requested == UNDEFINED_EPOCH || leader_epoch < 0 {
        return cached;
    }
    match requested.cmp(&leader_epoch) {
        std::cmp::Ordering::Greater => None,
        std::cmp::Ordering::Equal => Some((leader_epoch, log_end_offset)),
        // An answer from the cache ends at a real entry, or at the log end for the latest
        // cached epoch (where the current epoch starts). Past the cache, the current epoch's
        // entry is the first above `requested`.
        std::cmp::Ordering::Less => {
            cached.or(Some((latest_cached.unwrap_or(requested), log_end_offset)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strom_log::{Log, LogConfig};

    /// A log on disk where each `(epoch, records)` leader appended one batch of that size.
    fn log_with(dir: &std::path::Path, writes: &[(i32, usize)]) -> Log {
        let mut log = Log::open(dir, LogConfig::default()).unwrap();
        for &(epoch, count) in writes {
            let records = vec![(Bytes::from_static(b"k"), Some(Bytes::from_static(b"v"))); count];
            let mut batch = crate::groups::encode_batch(records).unwrap();
            log.append_with_epoch(&mut batch, None, epoch).unwrap();
        }
        log
    }

    /// The answer for `requested` on a log written by `writes`, now led at `leader_epoch`.
    fn answer(writes: &[(i32, usize)], leader_epoch: i32, requested: i32) -> (i32, i64) {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), writes);
        end_offset_for(
            requested,
            leader_epoch,
            log.latest_epoch(),
            log.end_offset_for_epoch(requested),
            log.log_end_offset(),
        )
        .map_or((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET), |(epoch, end)| {
            (epoch, end.0)
        })
    }

    #[test]
    fn the_current_epoch_ends_at_the_log_end_even_before_the_leader_writes() {
        assert_eq!(answer(&[], 0, 0), (0, 0));
        assert_eq!(answer(&[(0, 7)], 0, 0), (0, 7));
        assert_eq!(answer(&[(0, 7)], 2, 2), (2, 7));
        assert_eq!(answer(&[(0, 7), (2, 2)], 2, 2), (2, 9));
    }

    #[test]
    fn an_older_epoch_ends_where_the_next_one_starts() {
        // Epoch 0 wrote 0..7, then leadership moved twice without writes.
        assert_eq!(answer(&[(0, 7)], 2, 0), (0, 7));
        assert_eq!(answer(&[(0, 7)], 2, 1), (0, 7));
        // Epochs 1 and 3 wrote; 2 did not.
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 2), (1, 3));
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 1), (1, 3));
        // Below the first entry: the requested epoch, ending where the first epoch starts.
        assert_eq!(answer(&[(1, 3), (3, 4)], 3, 0), (0, 0));
        // Nothing cached: the current epoch's entry, at the log end, is the first above.
        assert_eq!(answer(&[], 1, 0), (0, 0));
    }

    #[test]
    fn unknown_epochs_are_undefined() {
        assert_eq!(answer(&[(0, 7)], 0, 1), (-1, -1));
        assert_eq!(answer(&[(0, 7)], 2, 3), (-1, -1));
        assert_eq!(answer(&[], 0, 1), (-1, -1));
        assert_eq!(answer(&[(0, 7)], 2, -1), (-1, -1));
        assert_eq!(answer(&[], 0, -1), (-1, -1));
    }
}
