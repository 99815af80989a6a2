//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition,
//! a transactional id's the leader of its `__transaction_state` partition (that topic is
//! created on the first such request; COORDINATOR_NOT_AVAILABLE until it has leaders).

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strom_types::ErrorCode;

use strom_coordinator::offsets::partition_for;

use super::str_bytes;
use crate::{transactions, Broker};
use strom_coordinator::OFFSETS_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of `group`: the leader of its `__consumer_offsets` partition, as Kafka
/// does, so coordination follows that partition's leadership on failover.
fn locate(
    broker: &Arc<Broker>,
    key_type: i8,
    group: &str,
    listener: &str,
) -> Result<(i32, String, i32), (ErrorCode, String)> {
    let image = broker.quorum.image();
    let unavailable = |why: &str| (ErrorCode::CoordinatorNotAvailable, why.to_owned());
    match key_type {
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            if group.is_empty() {
                return Err((
                    ErrorCode::InvalidRequest,
                    "the transactional id is empty".to_owned(),
                ));
            }
            let leader =
                transactions::locate(broker, group).map_err(|error| (error.code, error.message))?;
            return address(&image, leader.0, listener)
                .ok_or_else(|| unavailable("the transaction coordinator is not available"));
        }
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("unknown coordinator key type {other}"),
            ))
        }
    }
    let topic = image
        .topics
        .get(OFFSETS_TOPIC)
        .ok_or_else(|| unavailable("the offsets topic does not exist yet"))?;
    let index = partition_for(group, topic.partitions.len() as i32);
    let leader = topic
        .partitions
        .get(index as usize)
        .map(|partition| partition.leader)
        .filter(|leader| *leader >= 0)
        .ok_or_else(|| unavailable("the group's offsets partition has no leader"))?;
    address(&image, leader, listener)
        .ok_or_else(|| unavailable("the group's coordinator is not available"))
}

/// A live broker's id, host and port on `listener`.
fn address(
    image: &strom_metadata::MetadataImage,
    id: i32,
    listener: &str,
) -> Option<(i32, String, i32)> {
    let registration = image
        .brokers
        .get(&id)
        .filter(|registration| !registration.fenced)?;
    let (host, port) = registration.endpoint(listener)?;
    Some((id, host.to_owned(), i32::from(port)))
}

pub fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    if version < 4 {
        return match locate(broker, request.key_type, request.key.as_str(), listener) {
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
        .map(
            |key: StrBytes| match locate(broker, request.key_type, key.as_str(), listener) {
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
            },
        )
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
