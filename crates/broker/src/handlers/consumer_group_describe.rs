//! ConsumerGroupDescribe (KIP-848): epochs, assignor, members with their current and target
//! assignments. A group another broker coordinates is answered NOT_COORDINATOR.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use strom_coordinator::assignors::Assignment;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

fn wire(broker: &Broker, assignment: Assignment) -> WireAssignment {
    let topic_partitions = assignment
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let id = broker.topics.get(&topic)?.id;
            Some(
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(str_bytes(topic)))
                    .with_partitions(partitions.into_iter().collect()),
            )
        })
        .collect();
    WireAssignment::default().with_topic_partitions(topic_partitions)
}

pub fn handle(
    broker: &Arc<Broker>,
    request: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let coordinator = broker.groups.coordinator();
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            if !broker.groups.is_coordinator(group_id.as_str()) {
                return described.with_error_code(ErrorCode::NotCoordinator.code());
            }
            let Some(description) = coordinator.describe_consumer(group_id.as_str()) else {
                let message = format!("group '{}' is not a consumer group", group_id.as_str());
                return described
                    .with_error_code(ErrorCode::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(message)));
            };
            let members = description
                .members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_instance_id(m.instance_id.map(str_bytes))
                        .with_rack_id(m.rack_id.map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topics
                                .into_iter()
                                .map(|t| TopicName(str_bytes(t)))
                                .collect(),
                        )
                        .with_assignment(wire(broker, m.assignment))
                        .with_target_assignment(wire(broker, m.target_assignment))
                })
                .collect();
            described
                .with_group_state(str_bytes(description.state))
                .with_group_epoch(description.group_epoch)
                .with_assignment_epoch(description.assignment_epoch)
                .with_assignor_name(str_bytes(description.assignor))
                .with_members(members)
                .with_authorized_operations(i32::MIN)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
