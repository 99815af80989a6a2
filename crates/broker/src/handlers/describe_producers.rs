//! DescribeProducers: the producers a partition led here remembers (id, epoch, last sequence,
//! the first offset of an open transaction), as `kafka-transactions.sh describe-producers`
//! and `strom producers` show them.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use strom_types::PartitionIndex;

use super::str_bytes;
use crate::topics::led_partition;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let image = broker.quorum.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let registered = broker.topics.get(topic.name.as_str());
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    let led = led_partition(
                        &image,
                        topic.name.as_str(),
                        registered.as_deref(),
                        PartitionIndex(*index),
                        None,
                    );
                    match led {
                        Err(error) => response
                            .with_error_code(error.code.code())
                            .with_error_message(Some(str_bytes(error.message))),
                        Ok(partition) => response.with_active_producers(
                            partition
                                .producers()
                                .into_iter()
                                .map(|producer| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(producer.producer_id.0))
                                        .with_producer_epoch(i32::from(producer.producer_epoch.0))
                                        .with_last_sequence(producer.last_sequence)
                                        .with_last_timestamp(-1)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(
                                            producer.txn_first_offset.map_or(-1, |offset| offset.0),
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
