//! DescribeAcls: the bindings of the metadata image that match the filter, grouped by resource
//! pattern as Kafka answers. (DESCRIBE on the cluster is checked before dispatch.)

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use strom_security::authorizer::AclFilter;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
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
    AclFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_ref().map(|s| s.to_string()),
        request.pattern_type_filter,
        request.principal_filter.as_ref().map(|s| s.to_string()),
        request.host_filter.as_ref().map(|s| s.to_string()),
        request.operation,
        request.permission_type,
    )
}
