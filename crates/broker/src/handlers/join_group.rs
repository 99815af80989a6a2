//! JoinGroup: hands the request to the coordinator and waits for the rebalance to answer it.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use strom_coordinator::{JoinRequest, JoinResponse, Protocol};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::groups::GroupReply;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> Reply {
    let join = JoinRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: client_id.to_owned(),
        client_host: client_host.to_owned(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout then.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    // Kafka's member ids: the client id, a dash, and a random UUID.
    let fresh_member_id = format!("{client_id}-{}", uuid::Uuid::new_v4());
    let groups = broker.groups.clone();
    if !groups.is_coordinator(&join.group_id) {
        let response = JoinResponse::error(ErrorCode::NotCoordinator, &join.member_id);
        return Reply::Now(ResponseKind::JoinGroup(encode(response, version)));
    }
    let (reply, answer) = groups.register();
    let outputs = groups
        .coordinator()
        .join(reply, join, fresh_member_id, groups.now_ms());
    groups.deliver(outputs);
    Reply::Later(Box::pin(async move {
        let response = match answer.await {
            Ok(GroupReply::Join(response)) => response,
            _ => JoinResponse::error(ErrorCode::UnknownServerError, ""),
        };
        ResponseKind::JoinGroup(encode(response, version))
    }))
}

fn encode(response: JoinResponse, version: i16) -> JoinGroupResponse {
    let members = response
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(response.error.code())
        .with_generation_id(response.generation_id)
        .with_protocol_type(response.protocol_type.map(str_bytes))
        .with_protocol_name(
            response
                .protocol_name
                .map(str_bytes)
                .or_else(|| (version < 7).then(|| str_bytes(""))),
        )
        .with_leader(str_bytes(response.leader))
        .with_skip_assignment(response.skip_assignment && version >= 9)
        .with_member_id(str_bytes(response.member_id))
        .with_members(members)
}
