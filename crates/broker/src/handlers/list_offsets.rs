//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), or the first offset whose
//! timestamp is at or after a given time (via the time index).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_partition::OffsetSpec;
use strom_types::{ErrorCode, PartitionIndex, TimestampMs};

use crate::topics::{led_partition, requested_epoch, Topic};
use crate::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// `isolation_level` READ_COMMITTED: the latest offset is the last stable offset.
const READ_COMMITTED: i8 = 1;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == READ_COMMITTED;
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
                        read_committed,
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
    read_committed: bool,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default()
        .with_partition_index(wanted.partition_index)
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1);
    let image = broker.quorum.image();
    let index = PartitionIndex(wanted.partition_index);
    let epoch = requested_epoch(wanted.current_leader_epoch);
    let partition = match led_partition(&image, name, topic, index, epoch) {
        Ok(partition) => partition,
        Err(error) => return response.with_error_code(error.code.code()),
    };
    let spec = match wanted.timestamp {
        EARLIEST => OffsetSpec::Earliest,
        LATEST if read_committed => OffsetSpec::LatestStable,
        LATEST => OffsetSpec::Latest,
        MAX_TIMESTAMP => OffsetSpec::MaxTimestamp,
        timestamp if timestamp >= 0 => OffsetSpec::Timestamp(TimestampMs(timestamp)),
        _ => return response.with_error_code(ErrorCode::InvalidRequest.code()),
    };
    match partition.list_offset(spec) {
        Ok(Some((offset, timestamp))) => {
            let epoch = match version >= 4 {
                true => partition.leader_epoch().0,
                false => -1,
            };
            response
                .with_offset(offset.0)
                .with_timestamp(timestamp.0)
                .with_leader_epoch(epoch)
        }
        Ok(None) => response,
        Err(error) => {
            tracing::error!(topic = %partition.topic(), partition = wanted.partition_index, %error, "offset lookup failed");
            response.with_error_code(error.code().code())
        }
    }
}
