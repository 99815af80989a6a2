//! AlterClientQuotas (KIP-546): set and remove quota values of user and client-id entities
//! (and their defaults), checked as Kafka's controller checks them, with its messages, then
//! written to the metadata log in one command (unless `validate_only`). Each entry succeeds or
//! fails on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData};
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as ResponseEntity, EntryData as ResponseEntry,
};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ResponseKind};
use strom_metadata::{CommandResult, MetadataCommand, QuotaAlteration, QuotaEntity};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::quotas::QUOTA_KEYS;
use crate::Broker;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub fn handle(broker: &Arc<Broker>, request: AlterClientQuotasRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let checked: Vec<Result<QuotaAlteration, (ErrorCode, String)>> =
            request.entries.iter().map(check).collect();
        let valid: Vec<QuotaAlteration> = checked.iter().flatten().cloned().collect();
        let mut failure = None;
        if !request.validate_only && !valid.is_empty() {
            let command = MetadataCommand::AlterClientQuotas { alterations: valid };
            failure = match cluster::propose(&broker, command).await {
                Ok(CommandResult::Refused(error)) => Some((error.code, error.message)),
                Ok(_) => None,
                Err(error) => Some((error.code, error.message)),
            };
        }
        let entries = (request.entries.iter().zip(checked))
            .map(|(entry, outcome)| {
                let outcome = outcome.map(drop).and_then(|()| match &failure {
                    Some(failure) => Err(failure.clone()),
                    None => Ok(()),
                });
                response_entry(&entry.entity, outcome)
            })
            .collect();
        ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
    }))
}

fn invalid(message: impl Into<String>) -> (ErrorCode, String) {
    (ErrorCode::InvalidRequest, message.into())
}

/// The entity of a request entry, or Kafka's error for it.
pub fn entity_of(
    parts: impl Iterator<Item = (String, Option<String>)>,
) -> Result<QuotaEntity, (ErrorCode, String)> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
    };
    let mut empty = true;
    for (entity_type, name) in parts {
        empty = false;
        let slot = match entity_type.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => {
                return Err(invalid(
                    "IP quotas (connection_creation_rate) are not supported",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "Unhandled client quota entity type: {other}"
                )))
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Invalid client quota entity, duplicate entity entry {entity_type}"
            )));
        }
        *slot = Some(name);
    }
    if empty {
        return Err(invalid("Invalid empty client quota entity"));
    }
    Ok(entity)
}

fn check(entry: &EntryData) -> Result<QuotaAlteration, (ErrorCode, String)> {
    let entity = entity_of((entry.entity.iter()).map(|part| {
        (
            part.entity_type.to_string(),
            part.entity_name.as_ref().map(|n| n.to_string()),
        )
    }))?;
    let mut alteration = QuotaAlteration {
        entity,
        set: BTreeMap::new(),
        remove: Vec::new(),
    };
    for op in &entry.ops {
        let key = op.key.as_str();
        let Some((_, whole)) = QUOTA_KEYS.iter().find(|(name, _)| *name == key) else {
            return Err(invalid(format!("Invalid configuration key {key}")));
        };
        if op.remove {
            alteration.remove.push(key.to_owned());
            continue;
        }
        if op.value <= 0.0 || !op.value.is_finite() {
            return Err(invalid(format!("Quota {key} must be greater than 0")));
        }
        if *whole && op.value.fract() != 0.0 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
        alteration.set.insert(key.to_owned(), op.value);
    }
    Ok(alteration)
}

fn response_entry(
    entity: &[EntityData],
    outcome: Result<(), (ErrorCode, String)>,
) -> ResponseEntry {
    let entity = (entity.iter())
        .map(|part| {
            ResponseEntity::default()
                .with_entity_type(part.entity_type.clone())
                .with_entity_name(part.entity_name.clone())
        })
        .collect();
    let entry = ResponseEntry::default().with_entity(entity);
    match outcome {
        Ok(()) => entry,
        Err((code, message)) => entry
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message))),
    }
}
