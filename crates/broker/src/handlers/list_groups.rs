//! ListGroups, with the state filter (v4+) and the type filter (v5+: "classic" groups of the
//! JoinGroup protocol, "consumer" groups of KIP-848). As in Kafka, a broker lists the groups
//! of the `__consumer_offsets` partitions it leads: a group is listed by its coordinator only
//! (an admin client asks every broker and merges the answers).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    let coordinator = broker.groups.coordinator();
    // (group id, protocol type, state, type) for every group of either protocol.
    let classic = coordinator
        .list()
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.state.name(), "classic"));
    let consumer = coordinator
        .list_consumer()
        .into_iter()
        .map(|(id, state)| (id, "consumer".to_owned(), state, "consumer"));
    let mut all: Vec<_> = (classic.chain(consumer))
        .filter(|(group_id, ..)| broker.groups.is_coordinator(group_id))
        .collect();
    all.sort();
    let groups = all
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(group_id, protocol_type, state, kind)| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_protocol_type(str_bytes(protocol_type));
            let listed = if version >= 4 {
                listed.with_group_state(str_bytes(state))
            } else {
                listed
            };
            if version >= 5 {
                listed.with_group_type(str_bytes(kind))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
