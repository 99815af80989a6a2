//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use strom_types::ErrorCode;

use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let groups = &broker.groups;
    if !groups.is_coordinator(request.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(ErrorCode::NotCoordinator.code());
    }
    let error = groups.coordinator().heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|id| id.as_str()),
        request.generation_id,
        groups.now_ms(),
    );
    HeartbeatResponse::default().with_error_code(error.code())
}
