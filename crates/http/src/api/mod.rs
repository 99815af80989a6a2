//! The console's JSON API under `/api/`.
//!
//! It speaks to the cluster the way any Kafka tool does, through the Kafka protocol with a
//! [`strom_client::Client`] connected to this node's own client listener, so what the console
//! shows is what clients see (and what the authorizer lets this node's principal see); only
//! the log levels ([`loggers`]) and the traffic counters ([`cluster`]) are read in-process.
//!
//! Every answer is JSON. A failure is `{"error": "..."}` with 400 (bad JSON body, a bad query
//! parameter, a config value or topic name the broker refuses), 404 (no such topic or group),
//! 409 (the topic exists, the group has members), 403 (the authorizer said no), 502 (the
//! cluster answered with an error that is not the caller's) or 503 (the broker is starting,
//! or its listener does not answer).
//!
//! Endpoints (bodies and answers in brief; names are Kafka's):
//! - `GET /api/cluster`: `{cluster_id, node_id, controller_id, brokers: [{id, address, rack,
//!   fenced}], quorum: {leader_id, leader_epoch, high_watermark, voters: [{id,
//!   log_end_offset}], observers: [...]}, partitions: {total, under_replicated, offline},
//!   totals: {records_in, bytes_in, bytes_out}, time_ms}`. Totals are this node's counters
//!   since it started; the page polls and charts their differences.
//! - `GET /api/topics?search=S`: `{topics: [{name, internal, partitions, replication_factor,
//!   under_replicated, offline}]}`, names containing S (any case).
//! - `POST /api/topics` `{name, partitions?, replication_factor?, configs?: {key: value}}`
//!   -> 201 `{name, partitions, replication_factor}`.
//! - `GET /api/topics/{name}`: `{name, internal, partitions: [{partition, leader, replicas,
//!   isr, offline_replicas, log_start_offset, high_watermark, size_bytes}], configs: [{name,
//!   value, source, read_only, sensitive}]}`; sizes from DescribeLogDirs to each leader.
//! - `DELETE /api/topics/{name}` -> `{deleted}`.
//! - `PUT /api/topics/{name}/configs` `{key: "value" | null}` (null: back to the default),
//!   IncrementalAlterConfigs -> `{configs: [...]}` as in the topic's description.
//! - `GET /api/topics/{name}/messages?partition=P&start=earliest|offset|timestamp|newest
//!   &offset=O&timestamp_ms=T&limit=N&key=K&value=V&header=H`: see [`messages`] for the answer
//!   and how far one request reads.
//! - `POST /api/topics/{name}/messages` `{key?, value?, headers?: [{key, value}],
//!   partition?}` -> `{partition, offset}`.
//! - `GET /api/groups`: `{groups: [{group_id, state, protocol_type}]}`.
//! - `GET /api/groups/{id}`: `{group_id, type, state, protocol_type, protocol, members:
//!   [{member_id, instance_id, client_id, client_host, assignment: [{topic, partitions}]}],
//!   offsets: [{topic, partition, committed_offset, end_offset, lag, member_id}], total_lag}`.
//! - `POST /api/groups/{id}/reset-offsets` `{topic, to: earliest|latest|offset|timestamp,
//!   offset?, timestamp_ms?, partitions?}` -> `{group_id, topic, offsets: [{partition,
//!   offset}]}`; only for a group without members (409 otherwise), as Kafka's tool.
//! - `DELETE /api/groups/{id}` -> `{deleted}`.
//! - `GET /api/acls` -> `{acls: [binding]}` where a binding is `{resource_type,
//!   resource_name, pattern_type, principal, host, operation, permission}` (Kafka's names:
//!   TOPIC, LITERAL, READ, ALLOW...); `POST /api/acls` a binding; `DELETE /api/acls` a binding
//!   as the body -> `{deleted: [binding]}`.
//! - `GET /api/users` -> `{users: [{user, credentials: [{mechanism, iterations}]}]}`;
//!   `POST /api/users` `{user, password, mechanism?: "SCRAM-SHA-256", iterations?}`;
//!   `DELETE /api/users/{user}?mechanism=M` (every mechanism the user has without one).
//! - `GET /api/loggers` -> `{loggers: [{logger, level}], levels: [...]}`; `PUT /api/loggers`
//!   `{logger: "LEVEL" | null}` (null: inherit the parent's).

mod cluster;
mod groups;
mod loggers;
mod messages;
mod security;
mod topics;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use strom_broker::Broker;
use strom_client::{Client, ClientError};
use strom_types::ErrorCode;

use crate::state::{AdminState, Login, LOGIN};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .merge(cluster::routes())
        .merge(topics::routes())
        .merge(messages::routes())
        .merge(groups::routes())
        .merge(security::routes())
        .merge(loggers::routes())
}

/// The broker, once it serves, and the client to ask it with: logged in as the request's
/// user (HTTP Basic, see the auth module) on a SASL listener when the request has a login and
/// the node has one, so the broker's ACLs judge it as that user's; else the console's own.
pub(crate) async fn connected(state: &AdminState) -> Result<(&Broker, Arc<Client>), ApiError> {
    let broker = state.broker().ok_or_else(starting)?;
    if let Ok(login) = LOGIN.try_with(Login::clone) {
        if let Some(client) = user_client(state, broker, &login).await? {
            return Ok((broker, client));
        }
    }
    let client = (state.console_client())
        .get_or_try_init(|| async {
            (crate::node_client::connect(broker, None).await)
                .map(Arc::new)
                .map_err(ApiError::from)
        })
        .await?;
    Ok((broker, client.clone()))
}

/// The client logged in as `login`'s user, made on first use and kept; `None` when the node
/// has no SASL listener offering the login's SCRAM mechanism.
async fn user_client(
    state: &AdminState,
    broker: &Broker,
    login: &Login,
) -> Result<Option<Arc<Client>>, ApiError> {
    if let Some(client) = state.user_client(login) {
        return Ok(Some(client));
    }
    let mechanism = login.mechanism.name();
    let offered = (broker.config.security.sasl_mechanisms.iter()).any(|m| m == mechanism);
    if !offered {
        return Ok(None);
    }
    let sasl = strom_client::SaslConfig {
        mechanism: mechanism.to_owned(),
        username: login.user.clone(),
        password: login.password.clone(),
        token: None,
    };
    match crate::node_client::connect(broker, Some(sasl))
        .await
        .map_err(ApiError::from)
    {
        Ok(client) => {
            let client = Arc::new(client);
            state.keep_user_client(login, client.clone());
            Ok(Some(client))
        }
        Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE => Ok(None),
        Err(error) => Err(error),
    }
}

/// The broker, once it serves (for what is read in-process).
pub(crate) fn serving(state: &AdminState) -> Result<&Broker, ApiError> {
    state
        .broker()
        .map(|broker| broker.as_ref())
        .ok_or_else(starting)
}

fn starting() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the broker is starting: it has not joined the cluster yet",
    )
}

/// A failed request: its status and what to tell the person.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<crate::node_client::ConnectError> for ApiError {
    fn from(error: crate::node_client::ConnectError) -> ApiError {
        match error {
            crate::node_client::ConnectError::NoListener(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            crate::node_client::ConnectError::Client(error) => ApiError::from(error),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> ApiError {
        let status = match &error {
            ClientError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ClientError::Connect { .. } | ClientError::Disconnected { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ClientError::Kafka { .. } => error
                .error_code()
                .map_or(StatusCode::BAD_GATEWAY, status_of),
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The status a Kafka error answers with: the caller's mistakes are 4xx, the cluster's 502.
fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        UnknownTopicOrPartition | GroupIdNotFound | ResourceNotFound => StatusCode::NOT_FOUND,
        TopicAlreadyExists | NonEmptyGroup | UnknownMemberId | DuplicateResource => {
            StatusCode::CONFLICT
        }
        InvalidTopicException
        | InvalidPartitions
        | InvalidReplicationFactor
        | InvalidConfig
        | InvalidRequest
        | PolicyViolation
        | InvalidTimestamp
        | UnsupportedSaslMechanism
        | SecurityDisabled => StatusCode::BAD_REQUEST,
        TopicAuthorizationFailed
        | GroupAuthorizationFailed
        | ClusterAuthorizationFailed
        | TransactionalIdAuthorizationFailed => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::bad_request(format!(
            "the body is not what was expected: {}",
            rejection.body_text()
        ))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

/// A handler's answer: JSON, or an [`ApiError`].
pub(crate) type ApiResult = Result<Json<serde_json::Value>, ApiError>;

/// A body a handler takes: a rejected one becomes a 400 in JSON, not axum's plain text.
pub(crate) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body).map_err(ApiError::from)
}

/// The same for a query string.
pub(crate) fn query<T>(
    query: Result<axum::extract::Query<T>, QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|axum::extract::Query(query)| query)
        .map_err(ApiError::from)
}
