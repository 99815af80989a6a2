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
use strom_types::{LeaderEpoch, PartitionIndex};

use crate::topics::{led_partition, requested_epoch, Topic};
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
    let index = PartitionIndex(wanted.partition);
    let epoch = requested_epoch(wanted.current_leader_epoch);
    let partition = match led_partition(&image, name, topic, index, epoch) {
        Ok(partition) => partition,
        Err(error) => return response.with_error_code(error.code.code()),
    };
    match partition.end_offset_for_epoch(LeaderEpoch(wanted.leader_epoch)) {
        Some((epoch, end_offset)) => response
            .with_leader_epoch(epoch.0)
            .with_end_offset(end_offset.0),
        None => response,
    }
}
