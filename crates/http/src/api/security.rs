//! ACLs (CreateAcls, DescribeAcls, DeleteAcls) and users' SCRAM credentials
//! (DescribeUserScramCredentials, AlterUserScramCredentials; the password is salted and hashed
//! by the client, never sent).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{AclFilter, ScramDeletion, ScramUpsertion, SCRAM_ITERATIONS_DEFAULT};
use strom_types::security::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, ScramMechanism, WILDCARD,
};

use super::{body, connected, query, ApiError, ApiResult};
use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/acls", get(list_acls).post(create_acl).delete(delete_acl))
        .route("/users", get(list_users).post(set_user))
        .route("/users/{user}", delete(delete_user))
}

/// An ACL binding as the API reads and writes it, with Kafka's names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Binding {
    resource_type: String,
    resource_name: String,
    #[serde(default = "literal")]
    pattern_type: String,
    principal: String,
    #[serde(default = "wildcard")]
    host: String,
    operation: String,
    #[serde(default = "allow")]
    permission: String,
}

fn literal() -> String {
    "LITERAL".to_owned()
}

fn wildcard() -> String {
    WILDCARD.to_owned()
}

fn allow() -> String {
    "ALLOW".to_owned()
}

impl Binding {
    /// The binding, checked: concrete types only (no ANY or MATCH), a `Type:name` principal.
    fn parse(&self) -> Result<AclBinding, ApiError> {
        let bad = |field: &str, value: &str, valid: &str| {
            ApiError::bad_request(format!("{field} '{value}' is not one of {valid}"))
        };
        let resource_type = ResourceType::parse(&self.resource_type)
            .filter(|t| *t != ResourceType::Any)
            .ok_or_else(|| {
                bad(
                    "resource_type",
                    &self.resource_type,
                    "TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN, USER",
                )
            })?;
        let pattern_type = PatternType::parse(&self.pattern_type)
            .filter(|p| matches!(p, PatternType::Literal | PatternType::Prefixed))
            .ok_or_else(|| bad("pattern_type", &self.pattern_type, "LITERAL, PREFIXED"))?;
        let operation = AclOperation::parse(&self.operation)
            .filter(|o| *o != AclOperation::Any)
            .ok_or_else(|| bad("operation", &self.operation, "ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE"))?;
        let permission = AclPermission::parse(&self.permission)
            .filter(|p| *p != AclPermission::Any)
            .ok_or_else(|| bad("permission", &self.permission, "ALLOW, DENY"))?;
        let principal = self.principal.trim();
        if !principal
            .split_once(':')
            .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
        {
            return Err(ApiError::bad_request(format!(
                "principal '{principal}' is not TYPE:NAME (User:alice, or User:* for every user)"
            )));
        }
        if self.resource_name.trim().is_empty() {
            return Err(ApiError::bad_request(
                "an ACL needs a resource name (* for every resource)",
            ));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: self.resource_name.trim().to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: self.host.trim().to_owned(),
            operation,
            permission,
        })
    }
}

fn binding_json(binding: &AclBinding) -> Value {
    json!({
        "resource_type": binding.resource_type.name(),
        "resource_name": binding.resource_name,
        "pattern_type": binding.pattern_type.name(),
        "principal": binding.principal,
        "host": binding.host,
        "operation": binding.operation.name(),
        "permission": binding.permission.name(),
    })
}

async fn list_acls(State(state): State<AdminState>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let bindings = client.describe_acls(&AclFilter::any()).await?;
    let acls: Vec<Value> = bindings.iter().map(binding_json).collect();
    Ok(Json(json!({ "acls": acls })))
}

async fn create_acl(
    State(state): State<AdminState>,
    binding: Result<Json<Binding>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let binding = body(binding)?.parse()?;
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let results = client.create_acls(std::slice::from_ref(&binding)).await?;
    for result in results {
        result?;
    }
    Ok((StatusCode::CREATED, Json(binding_json(&binding))))
}

async fn delete_acl(
    State(state): State<AdminState>,
    binding: Result<Json<Binding>, JsonRejection>,
) -> ApiResult {
    let binding = body(binding)?.parse()?;
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let results = client.delete_acls(&[AclFilter::exact(&binding)]).await?;
    let mut deleted = Vec::new();
    for result in results {
        let deletion = result?;
        if let Some((_, error)) = deletion.failed.into_iter().next() {
            return Err(error.into());
        }
        deleted.extend(deletion.deleted.iter().map(binding_json));
    }
    if deleted.is_empty() {
        return Err(ApiError::not_found("no ACL matches that binding"));
    }
    Ok(Json(json!({ "deleted": deleted })))
}

async fn list_users(State(state): State<AdminState>) -> ApiResult {
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let mut users = Vec::new();
    for described in client.describe_user_scram_credentials(None).await? {
        let credentials: Vec<Value> = (described.credentials?.iter())
            .map(|c| json!({ "mechanism": c.mechanism.name(), "iterations": c.iterations }))
            .collect();
        users.push(json!({ "user": described.user, "credentials": credentials }));
    }
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    user: String,
    password: String,
    mechanism: Option<String>,
    iterations: Option<u32>,
}

fn mechanism(name: Option<&str>) -> Result<ScramMechanism, ApiError> {
    let name = name.unwrap_or("SCRAM-SHA-256");
    ScramMechanism::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "mechanism '{name}' is not one of SCRAM-SHA-256, SCRAM-SHA-512"
        ))
    })
}

async fn set_user(
    State(state): State<AdminState>,
    credential: Result<Json<NewCredential>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let credential = body(credential)?;
    let user = credential.user.trim();
    if user.is_empty() || credential.password.is_empty() {
        return Err(ApiError::bad_request("a user needs a name and a password"));
    }
    let mechanism = mechanism(credential.mechanism.as_deref())?;
    let upsertion = ScramUpsertion {
        user: user.to_owned(),
        mechanism,
        iterations: credential.iterations.unwrap_or(SCRAM_ITERATIONS_DEFAULT),
        password: credential.password,
    };
    let (_, client) = connected(&state).await?;
    let client = &*client;
    for altered in client
        .alter_user_scram_credentials(&[upsertion], &[])
        .await?
    {
        altered.result?;
    }
    let answer = json!({ "user": user, "mechanism": mechanism.name() });
    Ok((StatusCode::CREATED, Json(answer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Which {
    mechanism: Option<String>,
}

async fn delete_user(
    State(state): State<AdminState>,
    Path(user): Path<String>,
    which: Result<Query<Which>, QueryRejection>,
) -> ApiResult {
    let which = query(which)?;
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let mechanisms = match which.mechanism {
        Some(name) => vec![mechanism(Some(&name))?],
        None => {
            let described = client
                .describe_user_scram_credentials(Some(&[user.as_str()]))
                .await?;
            let mut mechanisms = Vec::new();
            for user in described {
                mechanisms.extend(user.credentials?.iter().map(|c| c.mechanism));
            }
            mechanisms
        }
    };
    if mechanisms.is_empty() {
        return Err(ApiError::not_found(format!(
            "user '{user}' has no SCRAM credentials"
        )));
    }
    let deletions: Vec<ScramDeletion> = (mechanisms.iter())
        .map(|&mechanism| ScramDeletion {
            user: user.clone(),
            mechanism,
        })
        .collect();
    for altered in client.alter_user_scram_credentials(&[], &deletions).await? {
        altered.result?;
    }
    let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
    Ok(Json(json!({ "deleted": user, "mechanisms": names })))
}
