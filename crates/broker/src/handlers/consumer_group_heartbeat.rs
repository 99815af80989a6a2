//! ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile and leave in one API; the
//! coordinator computes assignments. Topics travel as ids on the wire and as names inside.
//! A broker that does not coordinate the group answers NOT_COORDINATOR, as Kafka's does
//! before looking at the request.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use strom_coordinator::assignors::Assignment;
use strom_coordinator::consumer_group::ConsumerHeartbeat;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: ConsumerGroupHeartbeatRequest,
    _version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    if !broker.groups.is_coordinator(request.group_id.as_str()) {
        let error = ErrorCode::NotCoordinator;
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(error.message())));
    }
    let owned = request.topic_partitions.map(|owned| {
        let mut assignment = Assignment::new();
        for topic in owned {
            // Partitions of a topic deleted meanwhile are simply no longer owned.
            if let Some(found) = broker.topics.get_by_id(topic.topic_id) {
                assignment
                    .entry(found.name.to_string())
                    .or_default()
                    .extend(topic.partitions);
            }
        }
        assignment
    });
    let heartbeat = ConsumerHeartbeat {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|id| id.to_string()),
        rack_id: request.rack_id.map(|id| id.to_string()),
        client_id: client_id.to_owned(),
        client_host: client_host.to_owned(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        // An empty regex (librdkafka sends one with topic names) means no regex.
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .filter(|r| !r.is_empty())
            .map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned,
    };
    // KIP-1082: clients from v1 pick their member id; a v0 client gets one from us.
    let fresh_member_id = uuid::Uuid::new_v4().to_string();
    let partition_count = |topic: &str| broker.topics.get(topic).map(|t| t.partitions.len() as i32);
    let groups = &broker.groups;
    let now = groups.now_ms();
    let response =
        groups
            .coordinator()
            .consumer_heartbeat(heartbeat, fresh_member_id, &partition_count, now);
    let assignment = response.assignment.map(|assignment| {
        let topic_partitions = assignment
            .into_iter()
            .filter_map(|(topic, partitions)| {
                let id = broker.topics.get(&topic)?.id;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect()),
                )
            })
            .collect();
        WireAssignment::default().with_topic_partitions(topic_partitions)
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(response.error.code())
        .with_error_message(response.error_message.map(str_bytes))
        .with_member_id(Some(str_bytes(response.member_id)))
        .with_member_epoch(response.member_epoch)
        .with_heartbeat_interval_ms(response.heartbeat_interval_ms)
        .with_assignment(assignment)
}
