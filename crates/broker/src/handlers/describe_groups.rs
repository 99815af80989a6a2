//! DescribeGroups: state, protocol and members (with metadata and assignment when Stable).
//! A group this coordinator does not know is reported Dead, as Kafka does; a group another
//! broker coordinates is answered NOT_COORDINATOR, so the client looks its coordinator up.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let coordinator = broker.groups.coordinator();
    let is_coordinator = |group: &str| broker.groups.is_coordinator(group);
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            if !is_coordinator(group_id.as_str()) {
                return described.with_error_code(ErrorCode::NotCoordinator.code());
            }
            let Some(description) = coordinator.describe(group_id.as_str()) else {
                return described.with_group_state(str_bytes("Dead"));
            };
            let members = description
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(str_bytes))
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            described
                .with_group_state(str_bytes(description.state.name()))
                .with_protocol_type(str_bytes(description.protocol_type))
                .with_protocol_data(str_bytes(description.protocol_name))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
