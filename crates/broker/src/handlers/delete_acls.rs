//! DeleteAcls: for each filter, the bindings of the image it matches; all of them are removed
//! in one metadata command, and each filter's result lists what it removed. (ALTER on the
//! cluster is checked before dispatch.)

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, ResponseKind};
use strom_metadata::MetadataCommand;
use strom_types::security::AclBinding;
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::Broker;
use strom_security::authorizer::AclFilter;

pub fn handle(broker: &Arc<Broker>, request: DeleteAclsRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let image = broker.quorum.image();
        let matched: Vec<Result<Vec<AclBinding>, String>> = (request.filters.iter())
            .map(|wanted| {
                let filter = AclFilter::from_codes(
                    wanted.resource_type_filter,
                    wanted.resource_name_filter.as_ref().map(|s| s.to_string()),
                    wanted.pattern_type_filter,
                    wanted.principal_filter.as_ref().map(|s| s.to_string()),
                    wanted.host_filter.as_ref().map(|s| s.to_string()),
                    wanted.operation,
                    wanted.permission_type,
                )?;
                Ok(image
                    .acls
                    .iter()
                    .filter(|b| filter.matches(b))
                    .cloned()
                    .collect())
            })
            .collect();
        let doomed: BTreeSet<AclBinding> = (matched.iter().flatten().flatten().cloned()).collect();
        let written = match doomed.is_empty() {
            true => Ok(()),
            false => {
                let command = MetadataCommand::DeleteAcls {
                    acls: doomed.into_iter().collect(),
                };
                cluster::propose(&broker, command).await.map(drop)
            }
        };
        let results = matched
            .into_iter()
            .map(|outcome| match (outcome, &written) {
                (Err(message), _) => failure(ErrorCode::InvalidRequest, message),
                (Ok(_), Err(error)) => failure(error.code, error.message.clone()),
                (Ok(bindings), Ok(())) => DeleteAclsFilterResult::default()
                    .with_matching_acls(bindings.iter().map(matching).collect()),
            })
            .collect();
        ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
    }))
}

fn failure(code: ErrorCode, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}

fn matching(binding: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(str_bytes(binding.resource_name.as_str()))
        .with_pattern_type(binding.pattern_type.code())
        .with_principal(str_bytes(binding.principal.as_str()))
        .with_host(str_bytes(binding.host.as_str()))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}
