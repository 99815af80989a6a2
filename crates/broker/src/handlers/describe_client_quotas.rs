//! DescribeClientQuotas (KIP-546): the quota entities of the metadata image that match the
//! request's filter, with their values. A component names an entity type and matches it by
//! exact name (0), as the default entity (1), or with any name (2); with `strict`, an entity may
//! have no other types than the components name.

use std::sync::Arc;

use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use strom_metadata::QuotaEntity;
use strom_types::ErrorCode;

use super::alter_client_quotas::{CLIENT_ID, USER};
use super::str_bytes;
use crate::Broker;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    if let Err(message) = check(&request.components) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None);
    }
    let quotas = broker.quorum.image().client_quotas.clone();
    let entries = (quotas.iter())
        .filter(|(entity, _)| matches(entity, &request.components, request.strict))
        .map(|(entity, values)| {
            let values = (values.iter())
                .map(|(key, value)| {
                    ValueData::default()
                        .with_key(str_bytes(key.clone()))
                        .with_value(*value)
                })
                .collect();
            EntryData::default()
                .with_entity(entity_data(entity))
                .with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn check(components: &[ComponentData]) -> Result<(), String> {
    let mut seen = Vec::new();
    for component in components {
        let entity_type = component.entity_type.as_str();
        if seen.contains(&entity_type) {
            return Err(format!("Duplicate entity type in filter: {entity_type}"));
        }
        seen.push(entity_type);
        match component.match_type {
            MATCH_EXACT if component._match.is_none() => {
                return Err(format!("An exact match of {entity_type} needs a name"))
            }
            MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY => {}
            other => return Err(format!("Unexpected match type {other}")),
        }
    }
    Ok(())
}

/// The entity's part of one type: `None` when it has none, `Some(None)` for the default.
fn part<'a>(entity: &'a QuotaEntity, entity_type: &str) -> Option<&'a Option<String>> {
    match entity_type {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        _ => None,
    }
}

fn matches(entity: &QuotaEntity, components: &[ComponentData], strict: bool) -> bool {
    let each = components.iter().all(|component| {
        let Some(name) = part(entity, component.entity_type.as_str()) else {
            return false;
        };
        match component.match_type {
            MATCH_EXACT => name.as_deref() == component._match.as_deref(),
            MATCH_DEFAULT => name.is_none(),
            _ => true,
        }
    });
    let types = [USER, CLIENT_ID];
    let only_named = types.iter().all(|entity_type| {
        part(entity, entity_type).is_none()
            || components
                .iter()
                .any(|c| c.entity_type.as_str() == *entity_type)
    });
    each && (!strict || only_named)
}

fn entity_data(entity: &QuotaEntity) -> Vec<EntityData> {
    let mut parts = Vec::new();
    for (entity_type, name) in [(USER, &entity.user), (CLIENT_ID, &entity.client_id)] {
        if let Some(name) = name {
            parts.push(
                EntityData::default()
                    .with_entity_type(str_bytes(entity_type.to_owned()))
                    .with_entity_name(name.clone().map(str_bytes)),
            );
        }
    }
    parts
}
