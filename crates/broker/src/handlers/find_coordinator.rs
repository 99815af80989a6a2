//! FindCoordinator: this node coordinates every group. Transaction coordination does not
//! exist yet, so transactional ids get COORDINATOR_NOT_AVAILABLE with a message saying why.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

const KEY_TYPE_GROUP: i8 = 0;

fn locate(broker: &Broker, key_type: i8) -> Result<(i32, String, i32), (ErrorCode, String)> {
    if key_type != KEY_TYPE_GROUP {
        return Err((
            ErrorCode::CoordinatorNotAvailable,
            "transactions are not supported yet".to_owned(),
        ));
    }
    let (host, port) = &broker.config.advertise;
    Ok((broker.config.node_id, host.clone(), *port as i32))
}

pub fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version < 4 {
        return match locate(broker, request.key_type) {
            Ok((node, host, port)) => FindCoordinatorResponse::default()
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(port),
            Err((code, message)) => FindCoordinatorResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key: StrBytes| match locate(broker, request.key_type) {
            Ok((node, host, port)) => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(port),
            Err((code, message)) => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
