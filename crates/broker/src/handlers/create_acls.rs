//! CreateAcls: validates each binding as Kafka does and adds the valid ones to the metadata log
//! in one command; each creation gets its own result. (ALTER on the cluster is checked before
//! dispatch, in `authorization`.)

use std::sync::Arc;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, ResponseKind};
use strom_metadata::MetadataCommand;
use strom_types::security::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: CreateAclsRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let checked: Vec<Result<AclBinding, String>> =
            request.creations.iter().map(binding).collect();
        let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
        let written = match valid.is_empty() {
            true => Ok(()),
            false => cluster::propose(&broker, MetadataCommand::CreateAcls { acls: valid })
                .await
                .map(drop),
        };
        let results = checked
            .into_iter()
            .map(|outcome| match (outcome, &written) {
                (Err(message), _) => failure(ErrorCode::InvalidRequest, message),
                (Ok(_), Err(error)) => failure(error.code, error.message.clone()),
                (Ok(_), Ok(())) => AclCreationResult::default(),
            })
            .collect();
        ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
    }))
}

fn failure(code: ErrorCode, message: String) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}

/// The binding a creation asks for, checked with Kafka's rules.
fn binding(creation: &AclCreation) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_code(creation.resource_type)
        .ok_or_else(|| format!("unknown resource type {}", creation.resource_type))?;
    let pattern_type = PatternType::from_code(creation.resource_pattern_type)
        .ok_or_else(|| format!("unknown pattern type {}", creation.resource_pattern_type))?;
    let operation = AclOperation::from_code(creation.operation)
        .ok_or_else(|| format!("unknown operation {}", creation.operation))?;
    let permission = AclPermission::from_code(creation.permission_type)
        .ok_or_else(|| format!("unknown permission type {}", creation.permission_type))?;
    let binding = AclBinding {
        resource_type,
        resource_name: creation.resource_name.to_string(),
        pattern_type,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation,
        permission,
    };
    strom_security::authorizer::validate_binding(&binding)?;
    Ok(binding)
}
