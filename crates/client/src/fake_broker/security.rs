//! The fake broker's security administration: CreateAcls, DescribeAcls, DeleteAcls,
//! DescribeUserScramCredentials and AlterUserScramCredentials over in-memory ACLs and
//! credentials, with the per-entry errors Kafka gives (a principal that is not `User:...`,
//! a user without credentials).
//!
//! Filters are the authorizer's own ([`AclFilter`]), so they match as the broker's do.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_security::authorizer::AclFilter;
use strom_types::security::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};

use super::{encode, FakeState};

/// A stored credential: iterations, salt and salted password, by (user, mechanism code).
pub type FakeCredentials = BTreeMap<(String, i8), (i32, Bytes, Bytes)>;

const INVALID_REQUEST: i16 = 42;
const RESOURCE_NOT_FOUND: i16 = 91;

pub fn handle(
    state: &mut FakeState,
    key: i16,
    version: i16,
    mut body: Bytes,
) -> Option<(BytesMut, i16)> {
    match key {
        30 => {
            let request = CreateAclsRequest::decode(&mut body, version).unwrap();
            encode(&create_acls(&mut state.acls, request), version)
        }
        29 => {
            let request = DescribeAclsRequest::decode(&mut body, version).unwrap();
            encode(&describe_acls(&state.acls, &request), version)
        }
        31 => {
            let request = DeleteAclsRequest::decode(&mut body, version).unwrap();
            encode(&delete_acls(&mut state.acls, request), version)
        }
        50 => {
            let request = DescribeUserScramCredentialsRequest::decode(&mut body, version).unwrap();
            encode(&describe_credentials(&state.credentials, request), version)
        }
        51 => {
            let request = AlterUserScramCredentialsRequest::decode(&mut body, version).unwrap();
            encode(&alter_credentials(&mut state.credentials, request), version)
        }
        other => panic!("not a security api key: {other}"),
    }
}

fn create_acls(acls: &mut BTreeSet<AclBinding>, request: CreateAclsRequest) -> CreateAclsResponse {
    let results = request
        .creations
        .into_iter()
        .map(|creation| {
            if !creation.principal.starts_with("User:") {
                return AclCreationResult::default()
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "principal must be User:NAME",
                    )));
            }
            acls.insert(AclBinding {
                resource_type: ResourceType::from_code(creation.resource_type).unwrap(),
                resource_name: creation.resource_name.to_string(),
                pattern_type: PatternType::from_code(creation.resource_pattern_type).unwrap(),
                principal: creation.principal.to_string(),
                host: creation.host.to_string(),
                operation: AclOperation::from_code(creation.operation).unwrap(),
                permission: AclPermission::from_code(creation.permission_type).unwrap(),
            });
            AclCreationResult::default()
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn describe_acls(
    acls: &BTreeSet<AclBinding>,
    request: &DescribeAclsRequest,
) -> DescribeAclsResponse {
    let filter = AclFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_deref().map(str::to_string),
        request.pattern_type_filter,
        request.principal_filter.as_deref().map(str::to_string),
        request.host_filter.as_deref().map(str::to_string),
        request.operation,
        request.permission_type,
    )
    .unwrap();
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in acls.iter().filter(|acl| filter.matches(acl)) {
        let resource = (
            acl.resource_type.code(),
            acl.resource_name.clone(),
            acl.pattern_type.code(),
        );
        resources.entry(resource).or_default().push(
            AclDescription::default()
                .with_principal(StrBytes::from_string(acl.principal.clone()))
                .with_host(StrBytes::from_string(acl.host.clone()))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn delete_acls(acls: &mut BTreeSet<AclBinding>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let results = request
        .filters
        .iter()
        .map(|wire| {
            if wire.host_filter.as_deref() == Some("refuse") {
                return DeleteAclsFilterResult::default()
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(StrBytes::from_static_str("refused filter")));
            }
            let filter = AclFilter::from_codes(
                wire.resource_type_filter,
                wire.resource_name_filter.as_deref().map(str::to_string),
                wire.pattern_type_filter,
                wire.principal_filter.as_deref().map(str::to_string),
                wire.host_filter.as_deref().map(str::to_string),
                wire.operation,
                wire.permission_type,
            )
            .unwrap();
            let matched: Vec<AclBinding> = acls
                .iter()
                .filter(|acl| filter.matches(acl))
                .cloned()
                .collect();
            let matching = matched
                .iter()
                .map(|acl| {
                    acls.remove(acl);
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(acl.resource_type.code())
                        .with_resource_name(StrBytes::from_string(acl.resource_name.clone()))
                        .with_pattern_type(acl.pattern_type.code())
                        .with_principal(StrBytes::from_string(acl.principal.clone()))
                        .with_host(StrBytes::from_string(acl.host.clone()))
                        .with_operation(acl.operation.code())
                        .with_permission_type(acl.permission.code())
                })
                .collect();
            DeleteAclsFilterResult::default().with_matching_acls(matching)
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn describe_credentials(
    credentials: &FakeCredentials,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let users: Vec<String> = match request.users {
        Some(users) => users
            .into_iter()
            .map(|user| user.name.to_string())
            .collect(),
        None => credentials
            .keys()
            .map(|(user, _)| user.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let results = users
        .into_iter()
        .map(|user| {
            let infos: Vec<CredentialInfo> = credentials
                .iter()
                .filter(|((name, _), _)| *name == user)
                .map(|((_, mechanism), (iterations, _, _))| {
                    CredentialInfo::default()
                        .with_mechanism(*mechanism)
                        .with_iterations(*iterations)
                })
                .collect();
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            if infos.is_empty() {
                return result
                    .with_error_code(RESOURCE_NOT_FOUND)
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    ))));
            }
            result.with_credential_infos(infos)
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn alter_credentials(
    credentials: &mut FakeCredentials,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut results: BTreeMap<String, (i16, Option<String>)> = BTreeMap::new();
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        let outcome = match credentials.remove(&(user.clone(), deletion.mechanism)) {
            Some(_) => (0, None),
            None => (
                RESOURCE_NOT_FOUND,
                Some("Attempt to delete a user credential that does not exist".to_string()),
            ),
        };
        results.insert(user, outcome);
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        credentials.insert(
            (user.clone(), upsertion.mechanism),
            (
                upsertion.iterations,
                upsertion.salt,
                upsertion.salted_password,
            ),
        );
        results.entry(user).or_insert((0, None));
    }
    let results = results
        .into_iter()
        .map(|(user, (error_code, message))| {
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(error_code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
