//! DescribeAcls: the bindings of the metadata image that match the filter, grouped by resource
//! pattern as Kafka answers. (DESCRIBE on the cluster is checked before dispatch.)

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use strom_security::authorizer::AclFilter;
use strom_types::security::{AclOperation, AclPermission, PatternType, ResourceType};
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    let filter = match filter(&request) {
        Ok(filter) => filter,
        Err(message) => {
            return DescribeAclsResponse::default()
                .with_error_code(ErrorCode::InvalidRequest.code())
                .with_error_message(Some(str_bytes(message)))
        }
    };
    let image = broker.quorum.image();
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for binding in image.acls.iter().filter(|binding| filter.matches(binding)) {
        let key = (
            binding.resource_type.code(),
            binding.resource_name.clone(),
            binding.pattern_type.code(),
        );
        resources.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(binding.principal.as_str()))
                .with_host(str_bytes(binding.host.as_str()))
                .with_operation(binding.operation.code())
                .with_permission_type(binding.permission.code()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// The request's filter; v0 has no pattern type (its default, LITERAL, stands).
fn filter(request: &DescribeAclsRequest) -> Result<AclFilter, String> {
    filter_from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_ref().map(|s| s.to_string()),
        request.pattern_type_filter,
        request.principal_filter.as_ref().map(|s| s.to_string()),
        request.host_filter.as_ref().map(|s| s.to_string()),
        request.operation,
        request.permission_type,
    )
}

/// An ACL filter from the wire codes DescribeAcls and DeleteAcls share; an unknown code is
/// an invalid request.
pub(super) fn filter_from_codes(
    resource_type: i8,
    resource_name: Option<String>,
    pattern_type: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    let unknown = |what: &str, code: i8| format!("unknown {what} {code} in the ACL filter");
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type", resource_type))?,
        resource_name,
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| unknown("pattern type", pattern_type))?,
        principal,
        host,
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| unknown("operation", operation))?,
        permission: AclPermission::from_code(permission)
            .ok_or_else(|| unknown("permission type", permission))?,
    })
}
