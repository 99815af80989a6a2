//! Security administration, after Kafka's `kafka-acls.sh` and `kafka-configs.sh
//! --alter --add-config SCRAM-SHA-256=[...]`: create, describe and delete ACLs, and describe,
//! set and delete users' SCRAM credentials.
//!
//! Every request goes to any broker, as Kafka's admin client sends them (a broker forwards
//! the changes to the metadata quorum). A request answers per entry (per ACL, per filter, per
//! user), so the calls do too: the outer `Result` is the request, the inner ones the entries,
//! each with the broker's error code and message.
//!
//! Filters are the authorizer's own [`AclFilter`] (Kafka's `AclBindingFilter`), so a filter
//! means the same on both sides of the wire.
//!
//! A SCRAM password never leaves the client: as Kafka's admin client does, the client draws a
//! random salt and sends only `SaltedPassword` (RFC 5802), from which the broker derives the
//! stored and server keys.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl;
use kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rand::RngCore;
pub use strom_security::authorizer::AclFilter;
use strom_security::scram::{self, ITERATIONS_MAX, ITERATIONS_MIN, SALT_BYTES};
use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, ScramMechanism,
};

use crate::error::{ClientError, Subject};
use crate::Client;

/// What one DeleteAcls filter did.
#[derive(Debug, Clone)]
pub struct AclDeletion {
    /// The bindings it removed.
    pub deleted: Vec<AclBinding>,
    /// Bindings it matched but could not remove, each with the broker's error.
    pub failed: Vec<(AclBinding, ClientError)>,
}

/// One SCRAM credential of a user, as DescribeUserScramCredentials shows it (never the salt
/// or keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
}

/// A user's SCRAM credentials, or the broker's error for that user (RESOURCE_NOT_FOUND for
/// a named user without any).
#[derive(Debug, Clone)]
pub struct UserScramCredentials {
    pub user: String,
    pub credentials: Result<Vec<ScramCredentialInfo>, ClientError>,
}

/// A credential to set: the password is salted and hashed here, never sent.
#[derive(Debug, Clone)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: u32,
    pub password: String,
}

/// A credential to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramDeletion {
    pub user: String,
    pub mechanism: ScramMechanism,
}

/// The broker's answer for one user of an AlterUserScramCredentials request.
#[derive(Debug, Clone)]
pub struct UserAlteration {
    pub user: String,
    pub result: Result<(), ClientError>,
}

impl Client {
    /// Creates ACL bindings; the answer has one result per binding, in order.
    pub async fn create_acls(
        &self,
        bindings: &[AclBinding],
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<CreateAclsRequest>()?;
        let request = CreateAclsRequest::default()
            .with_creations(bindings.iter().map(acl_creation).collect());
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        if response.results.len() != bindings.len() {
            return Err(ClientError::Protocol {
                address: connection.address().to_string(),
                detail: format!(
                    "CreateAcls answered {} results for {} bindings",
                    response.results.len(),
                    bindings.len()
                ),
            });
        }
        Ok(response
            .results
            .iter()
            .map(|result| entry_result(result.error_code, &result.error_message))
            .collect())
    }

    /// The ACL bindings `filter` matches, sorted.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<DescribeAclsRequest>()?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(wire_string))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(wire_string))
            .with_host_filter(filter.host.as_deref().map(wire_string))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        entry_result(response.error_code, &response.error_message)?;
        let mut bindings = Vec::new();
        for resource in &response.resources {
            described_bindings(resource, &mut bindings)
                .map_err(|detail| malformed(connection.address(), "DescribeAcls", detail))?;
        }
        bindings.sort();
        Ok(bindings)
    }

    /// Deletes the ACL bindings each filter matches; the answer has one result per filter,
    /// in order.
    pub async fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Result<AclDeletion, ClientError>>, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<DeleteAclsRequest>()?;
        let request =
            DeleteAclsRequest::default().with_filters(filters.iter().map(delete_filter).collect());
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        if response.filter_results.len() != filters.len() {
            return Err(malformed(
                connection.address(),
                "DeleteAcls",
                format!(
                    "{} results for {} filters",
                    response.filter_results.len(),
                    filters.len()
                ),
            ));
        }
        let mut results = Vec::with_capacity(filters.len());
        for result in &response.filter_results {
            if let Err(error) = entry_result(result.error_code, &result.error_message) {
                results.push(Err(error));
                continue;
            }
            let deletion = acl_deletion(&result.matching_acls)
                .map_err(|detail| malformed(connection.address(), "DeleteAcls", detail))?;
            results.push(Ok(deletion));
        }
        Ok(results)
    }

    /// The SCRAM credentials of the named users, or of every user that has any (`None`).
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<Vec<UserScramCredentials>, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<DescribeUserScramCredentialsRequest>()?;
        let names = users.map(|users| {
            users
                .iter()
                .map(|user| UserName::default().with_name(wire_string(user)))
                .collect()
        });
        let request = DescribeUserScramCredentialsRequest::default().with_users(names);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        entry_result(response.error_code, &response.error_message)?;
        let mut described = response
            .results
            .iter()
            .map(described_user)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|detail| {
                malformed(connection.address(), "DescribeUserScramCredentials", detail)
            })?;
        described.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(described)
    }

    /// Sets and deletes SCRAM credentials in one request; the answer has one result per
    /// user named. Each password is salted with fresh random bytes and hashed here.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: &[ScramUpsertion],
        deletions: &[ScramDeletion],
    ) -> Result<Vec<UserAlteration>, ClientError> {
        let upsertions = upsertions
            .iter()
            .map(credential_upsertion)
            .collect::<Result<Vec<_>, _>>()?;
        let deletions = deletions
            .iter()
            .map(|deletion| {
                ScramCredentialDeletion::default()
                    .with_name(wire_string(&deletion.user))
                    .with_mechanism(deletion.mechanism.code())
            })
            .collect();
        let connection = self.any_connection().await?;
        let version = connection.version::<AlterUserScramCredentialsRequest>()?;
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(upsertions)
            .with_deletions(deletions);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        Ok(response
            .results
            .iter()
            .map(|result| UserAlteration {
                user: result.user.to_string(),
                result: entry_result(result.error_code, &result.error_message),
            })
            .collect())
    }
}

fn wire_string(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// The result of one entry (binding, filter, user) of an answer, with the broker's message.
fn entry_result(error_code: i16, error_message: &Option<StrBytes>) -> Result<(), ClientError> {
    ClientError::check(error_code, error_message.as_deref(), Subject::default())
}

fn malformed(address: &str, api: &str, detail: String) -> ClientError {
    ClientError::Protocol {
        address: address.to_string(),
        detail: format!("{api}: {detail}"),
    }
}

fn acl_creation(binding: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(wire_string(&binding.resource_name))
        .with_resource_pattern_type(binding.pattern_type.code())
        .with_principal(wire_string(&binding.principal))
        .with_host(wire_string(&binding.host))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

fn delete_filter(filter: &AclFilter) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type.code())
        .with_resource_name_filter(filter.resource_name.as_deref().map(wire_string))
        .with_pattern_type_filter(filter.pattern_type.code())
        .with_principal_filter(filter.principal.as_deref().map(wire_string))
        .with_host_filter(filter.host.as_deref().map(wire_string))
        .with_operation(filter.operation.code())
        .with_permission_type(filter.permission.code())
}

/// A wire code read into one of the security enums, or a description of what is wrong.
fn decoded<T>(code: i8, what: &str, from_code: fn(i8) -> Option<T>) -> Result<T, String> {
    from_code(code).ok_or_else(|| format!("unknown {what} code {code}"))
}

/// The bindings of one resource of a DescribeAcls answer, appended to `bindings`.
fn described_bindings(
    resource: &DescribeAclsResource,
    bindings: &mut Vec<AclBinding>,
) -> Result<(), String> {
    let resource_type = decoded(
        resource.resource_type,
        "resource type",
        ResourceType::from_code,
    )?;
    let pattern_type = decoded(
        resource.pattern_type,
        "pattern type",
        PatternType::from_code,
    )?;
    for acl in &resource.acls {
        bindings.push(AclBinding {
            resource_type,
            resource_name: resource.resource_name.to_string(),
            pattern_type,
            principal: acl.principal.to_string(),
            host: acl.host.to_string(),
            operation: decoded(acl.operation, "operation", AclOperation::from_code)?,
            permission: decoded(acl.permission_type, "permission", AclPermission::from_code)?,
        });
    }
    Ok(())
}

/// One matching ACL of a DeleteAcls answer as a binding.
fn matched_binding(acl: &DeleteAclsMatchingAcl) -> Result<AclBinding, String> {
    Ok(AclBinding {
        resource_type: decoded(acl.resource_type, "resource type", ResourceType::from_code)?,
        resource_name: acl.resource_name.to_string(),
        pattern_type: decoded(acl.pattern_type, "pattern type", PatternType::from_code)?,
        principal: acl.principal.to_string(),
        host: acl.host.to_string(),
        operation: decoded(acl.operation, "operation", AclOperation::from_code)?,
        permission: decoded(acl.permission_type, "permission", AclPermission::from_code)?,
    })
}

/// A filter's matching ACLs split into those deleted and those the broker could not delete.
fn acl_deletion(matching: &[DeleteAclsMatchingAcl]) -> Result<AclDeletion, String> {
    let mut deletion = AclDeletion {
        deleted: Vec::new(),
        failed: Vec::new(),
    };
    for acl in matching {
        let binding = matched_binding(acl)?;
        match entry_result(acl.error_code, &acl.error_message) {
            Ok(()) => deletion.deleted.push(binding),
            Err(error) => deletion.failed.push((binding, error)),
        }
    }
    deletion.deleted.sort();
    Ok(deletion)
}

/// One user of a DescribeUserScramCredentials answer; `Err` only for a malformed answer.
fn described_user(
    result: &DescribeUserScramCredentialsResult,
) -> Result<UserScramCredentials, String> {
    let credentials = match entry_result(result.error_code, &result.error_message) {
        Err(error) => Err(error),
        Ok(()) => Ok(credential_infos(&result.credential_infos)?),
    };
    Ok(UserScramCredentials {
        user: result.user.to_string(),
        credentials,
    })
}

fn credential_infos(infos: &[CredentialInfo]) -> Result<Vec<ScramCredentialInfo>, String> {
    infos
        .iter()
        .map(|info| {
            Ok(ScramCredentialInfo {
                mechanism: decoded(info.mechanism, "SCRAM mechanism", ScramMechanism::from_code)?,
                iterations: info.iterations,
            })
        })
        .collect()
}

/// The wire upsertion of a credential: a fresh random salt and the salted password.
fn credential_upsertion(
    upsertion: &ScramUpsertion,
) -> Result<ScramCredentialUpsertion, ClientError> {
    check_iterations(upsertion.iterations)?;
    if upsertion.password.is_empty() {
        return Err(ClientError::InvalidArgument(format!(
            "the password for '{}' is empty",
            upsertion.user
        )));
    }
    let mut salt = vec![0; SALT_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salted = scram::salted_password(
        upsertion.mechanism,
        &upsertion.password,
        &salt,
        upsertion.iterations,
    );
    Ok(ScramCredentialUpsertion::default()
        .with_name(wire_string(&upsertion.user))
        .with_mechanism(upsertion.mechanism.code())
        .with_iterations(upsertion.iterations as i32)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted)))
}

/// Refuses an iteration count the broker would refuse too (Kafka takes 4096 to 16384),
/// before spending the time to hash with it.
fn check_iterations(iterations: u32) -> Result<(), ClientError> {
    if (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Ok(());
    }
    Err(ClientError::InvalidArgument(format!(
        "{iterations} SCRAM iterations: Kafka takes {ITERATIONS_MIN} to {ITERATIONS_MAX}"
    )))
}
