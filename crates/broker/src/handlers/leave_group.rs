//! LeaveGroup: one member (v0-2) or several, by member id or group instance id (v3+). A broker
//! that does not coordinate the group answers NOT_COORDINATOR.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if !broker.groups.is_coordinator(request.group_id.as_str()) {
        return LeaveGroupResponse::default().with_error_code(ErrorCode::NotCoordinator.code());
    }
    let members: Vec<(String, Option<String>)> = if version < 3 {
        vec![(request.member_id.to_string(), None)]
    } else {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|id| id.to_string()),
                )
            })
            .collect()
    };
    let groups = &broker.groups;
    let result = groups
        .coordinator()
        .leave(request.group_id.as_str(), &members, groups.now_ms());
    match result {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.code()),
        Ok((results, outputs)) => {
            groups.deliver(outputs);
            if version < 3 {
                return LeaveGroupResponse::default().with_error_code(results[0].code());
            }
            let responses = members
                .into_iter()
                .zip(results)
                .map(|((member_id, instance_id), error)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance_id.map(str_bytes))
                        .with_error_code(error.code())
                })
                .collect();
            LeaveGroupResponse::default()
                .with_error_code(ErrorCode::None.code())
                .with_members(responses)
        }
    }
}
