//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), or the first offset whose
//! timestamp is at or after a given time (via the time index).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_types::{ErrorCode, TimestampMs};

use crate::topics::{led_partition, Topic};
use crate::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topics.get(wanted.name.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|partition| {
                    lookup(
                        broker,
                        wanted.name.as_str(),
                        topic.as_deref(),
                        partition,
                        version,
                    )
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    broker: &Broker,
    name: &str,
    topic: Option<&Topic>,
    wanted: &ListOffsetsPartition,
    version: i16,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default()
        .with_partition_index(wanted.partition_index)
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1);
    let image = broker.quorum.image();
    let (node, index) = (broker.config.node_id, wanted.partition_index);
    let epoch = wanted.current_leader_epoch;
    let partition = match led_partition(&image, name, topic, index, node, epoch) {
        Ok(partition) => partition,
        Err(code) => return response.with_error_code(code.code()),
    };
    let log = partition.log.lock();
    let found = match wanted.timestamp {
        EARLIEST => Ok(Some((log.log_start_offset(), TimestampMs::NONE))),
        // Consumers see records below the high watermark only.
        LATEST => Ok(Some((
            partition
                .replication
                .high_watermark()
                .min(log.log_end_offset())
                .max(log.log_start_offset()),
            TimestampMs::NONE,
        ))),
        MAX_TIMESTAMP => log.max_timestamp(),
        timestamp if timestamp >= 0 => log.offset_for_timestamp(TimestampMs(timestamp)),
        _ => return response.with_error_code(ErrorCode::InvalidRequest.code()),
    };
    match found {
        Ok(Some((offset, timestamp))) => {
            // The leader epoch field exists from v4 on; the encoder refuses it before.
            let epoch = match version >= 4 {
                true => partition.state.read().leader_epoch,
                false => -1,
            };
            response
                .with_offset(offset.0)
                .with_timestamp(timestamp.0)
                .with_leader_epoch(epoch)
        }
        Ok(None) => response,
        Err(error) => {
            tracing::error!(topic = %partition.topic, partition = wanted.partition_index, %error, "offset lookup failed");
            response.with_error_code(ErrorCode::KafkaStorageError.code())
        }
    }
}
