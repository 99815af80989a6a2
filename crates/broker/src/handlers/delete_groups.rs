//! DeleteGroups: an Empty group's committed offsets are deleted with tombstones in
//! `__consumer_offsets`, then the group is forgotten. Groups with members are refused, and
//! groups another broker coordinates are answered NOT_COORDINATOR.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};
use strom_types::ErrorCode;

use super::Reply;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: DeleteGroupsRequest, _version: i16) -> Reply {
    let groups = broker.groups.clone();
    Reply::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group_id in request.groups_names {
            let prepared = match groups.is_coordinator(group_id.as_str()) {
                true => groups.coordinator().prepare_delete(group_id.as_str()),
                false => Err(ErrorCode::NotCoordinator),
            };
            let error = match prepared {
                Err(error) => error,
                Ok(tombstones) => match groups.write_tombstones(&tombstones).await {
                    Ok(()) => {
                        groups.coordinator().forget(group_id.as_str());
                        ErrorCode::None
                    }
                    Err(error) => error,
                },
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(error.code()),
            );
        }
        ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    }))
}
