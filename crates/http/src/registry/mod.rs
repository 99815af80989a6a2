//! The schema registry: Confluent Schema Registry's REST API, served by every node on
//! `schema.registry.listen` (port 8081 by default), its state kept in the compacted topic
//! `_schemas` in Confluent's record layout.
//!
//! - [`topic`]: reading and writing `_schemas` (any node writes; writes are sequenced by the
//!   offset they expect, so ids never collide).
//! - [`store`]: the state the records build: schemas by id, subjects' versions, configs, modes.
//! - [`routes`]: the endpoints, Confluent's paths, bodies, error codes and content type.
//!
//! Formats, normalization and compatibility are the `strom-schema` crate's.

pub mod client;
pub mod routes;
pub mod store;
pub mod topic;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::state::AdminState;
use topic::SchemasTopic;

/// The registry's port when `schema.registry.listen` is not given (Confluent's).
pub const REGISTRY_PORT_DEFAULT: u16 = 8081;

/// How long a read waits to catch up with `_schemas` before answering from what it has.
const CATCH_UP_MS_MAX: u64 = 1_500;

/// Confluent's content type, of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the registry's handlers share: the admin state (the broker once it serves, the
/// logins the auth guard checked) and `_schemas`, opened on the first request.
#[derive(Clone)]
pub struct RegistryState {
    pub admin: AdminState,
}

impl RegistryState {
    pub fn new(admin: AdminState) -> RegistryState {
        RegistryState { admin }
    }

    /// `_schemas`, caught up with what the cluster acknowledged before this call (a schema
    /// registered on any node is readable here at once). While the partition has no leader
    /// (a failover) reads answer from what this node has after [`CATCH_UP_MS_MAX`], as
    /// Confluent's followers answer from their cache.
    pub async fn current(&self) -> Result<Arc<SchemasTopic>, RegistryError> {
        let topic = self.opened().await?;
        let caught_up = tokio::time::timeout(
            std::time::Duration::from_millis(CATCH_UP_MS_MAX),
            topic.catch_up(),
        )
        .await;
        match caught_up {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(error = %error.message, "serving {} as read so far", topic::TOPIC)
            }
            Err(_) => tracing::debug!(
                "serving {} as read so far: catching up is slow",
                topic::TOPIC
            ),
        }
        Ok(topic)
    }

    /// `_schemas`, opened (created if need be) on first use.
    pub async fn opened(&self) -> Result<Arc<SchemasTopic>, RegistryError> {
        opened(&self.admin).await
    }
}

/// `_schemas`, opened (created if need be) on first use by the registry or the console.
pub async fn opened(admin: &AdminState) -> Result<Arc<SchemasTopic>, RegistryError> {
    {
        let broker = (admin.broker())
            .ok_or_else(|| RegistryError::unavailable("the broker is starting"))?
            .clone();
        let topic = admin
            .schemas()
            .get_or_try_init(|| async {
                let client = crate::api::connect(&broker, None)
                    .await
                    .map_err(|e| RegistryError::unavailable(e.message()))?;
                let brokers = broker.quorum.image().brokers.len();
                let node = broker.node().0;
                SchemasTopic::open(Arc::new(client), node, brokers)
                    .await
                    .map(Arc::new)
            })
            .await?;
        Ok(topic.clone())
    }
}

/// A failed request, as Confluent answers it: an HTTP status and `{error_code, message}`.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub status: StatusCode,
    pub code: i32,
    pub message: String,
}

impl RegistryError {
    pub fn new(status: StatusCode, code: i32, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn subject_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    pub fn version_not_found(version: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    pub fn schema_not_found(id: Option<i32>) -> RegistryError {
        let message = match id {
            Some(id) => format!("Schema {id} not found"),
            None => "Schema not found".to_owned(),
        };
        RegistryError::new(StatusCode::NOT_FOUND, 40403, message)
    }

    pub fn invalid_schema(message: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {message}"),
        )
    }

    pub fn unprocessable(code: i32, message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn bad_request(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::BAD_REQUEST, 400, message)
    }

    pub fn store(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::INTERNAL_SERVER_ERROR, 50001, message)
    }

    pub fn unavailable(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::SERVICE_UNAVAILABLE, 50003, message)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

/// A JSON answer with Confluent's content type.
pub fn reply(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

pub fn ok(body: Value) -> Response {
    reply(StatusCode::OK, body)
}

/// Largest request body: a schema of [`strom_schema::SCHEMA_BYTES_MAX`] bytes escaped in
/// JSON, with room to spare; larger bodies get 413 before they are read whole.
const BODY_BYTES_MAX: usize = 2 * strom_schema::SCHEMA_BYTES_MAX;

/// The registry's routes, behind the admin listener's guard (HTTP Basic and ACLs when
/// `admin.authentication` asks for them).
pub fn router(state: RegistryState) -> axum::Router {
    let admin = state.admin.clone();
    routes::routes()
        .layer(axum::middleware::map_response(confluent_errors))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .route_layer(axum::middleware::from_fn_with_state(
            admin,
            crate::auth::guard,
        ))
        .with_state(state)
}

/// Errors axum answers before a handler runs (a body over the limit: 413; a method a path does
/// not take: 405) in Confluent's JSON form.
async fn confluent_errors(response: Response) -> Response {
    let status = response.status();
    let plain = (response.headers().get(header::CONTENT_TYPE))
        .is_none_or(|kind| kind.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() && plain) {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {BODY_BYTES_MAX} bytes")
        }
        StatusCode::METHOD_NOT_ALLOWED => "HTTP 405 Method Not Allowed".to_owned(),
        StatusCode::NOT_FOUND => "HTTP 404 Not Found".to_owned(),
        other => other.to_string(),
    };
    reply(
        status,
        json!({"error_code": status.as_u16(), "message": message}),
    )
}

/// Serves the registry on `listener` until `shutdown` resolves (HTTPS with `tls`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: RegistryState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(state);
    crate::admin::serve_router(listener, tls, app, "schema registry", shutdown).await
}

impl RegistryState {
    /// Lets the broker check schema ids (topic schema validation) against this registry.
    pub fn serving(&self, broker: &strom_broker::Broker) {
        broker
            .schema_validation
            .install(Arc::new(RegisteredIds(self.clone())));
    }
}

/// The registry's ids as the broker's produce path asks for them.
struct RegisteredIds(RegistryState);

impl strom_broker::schema_validation::SchemaIds for RegisteredIds {
    fn is_registered(&self, id: i32) -> bool {
        (self.0.admin.schemas().get()).is_some_and(|topic| {
            let store = topic.store.read().unwrap_or_else(|p| p.into_inner());
            store.schema(id).is_some()
        })
    }

    fn refresh(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let state = self.0.clone();
        Box::pin(async move {
            if let Err(error) = state.current().await {
                tracing::warn!(error = %error.message, "schema validation: cannot read {}", topic::TOPIC);
            }
        })
    }
}

/// Decodes record keys and values written by Confluent's serializers (magic byte 0, a 4-byte
/// schema id, the datum) with the schemas of this registry, for the console's message browser.
/// Schemas are parsed once per decoder.
pub struct Decoder {
    topic: Arc<SchemasTopic>,
    parsed: std::collections::HashMap<i32, Option<Arc<strom_schema::Schema>>>,
}

impl Decoder {
    pub fn new(topic: Arc<SchemasTopic>) -> Decoder {
        Decoder {
            topic,
            parsed: Default::default(),
        }
    }

    /// `{schema_id, schema_type, decoded}` (or `decode_error`) for bytes that name a
    /// registered schema; `None` for anything else.
    pub fn decode(&mut self, bytes: &[u8]) -> Option<Value> {
        let [0, a, b, c, d, datum @ ..] = bytes else {
            return None;
        };
        let id = i32::from_be_bytes([*a, *b, *c, *d]);
        let topic = &self.topic;
        let schema = self
            .parsed
            .entry(id)
            .or_insert_with(|| {
                let store = topic.store.read().unwrap_or_else(|p| p.into_inner());
                let stored = store.schema(id)?;
                routes::parse_stored(&store, stored).ok().map(Arc::new)
            })
            .clone()?;
        let mut answer = json!({"schema_id": id, "schema_type": schema.schema_type().name()});
        match schema.decode(datum) {
            Ok(decoded) => answer["decoded"] = decoded,
            Err(error) => answer["decode_error"] = error.into(),
        }
        Some(answer)
    }
}
