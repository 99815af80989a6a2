//! SyncGroup: the leader brings the assignment; every member waits for its share.

use std::sync::Arc;

use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use strom_coordinator::{SyncRequest, SyncResponse};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::groups::GroupReply;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: SyncGroupRequest, _version: i16) -> Reply {
    let sync = SyncRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let groups = broker.groups.clone();
    if !groups.is_coordinator(&sync.group_id) {
        let response = SyncGroupResponse::default()
            .with_error_code(ErrorCode::NotCoordinator.code())
            .with_assignment(Default::default());
        return Reply::Now(ResponseKind::SyncGroup(response));
    }
    let (reply, answer) = groups.register();
    let outputs = groups.coordinator().sync(reply, sync, groups.now_ms());
    groups.deliver(outputs);
    Reply::Later(Box::pin(async move {
        let response = match answer.await {
            Ok(GroupReply::Sync(response)) => response,
            _ => SyncResponse::error(ErrorCode::UnknownServerError),
        };
        ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(response.error.code())
                .with_protocol_type(response.protocol_type.map(str_bytes))
                .with_protocol_name(response.protocol_name.map(str_bytes))
                .with_assignment(response.assignment),
        )
    }))
}
