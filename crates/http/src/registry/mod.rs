//! The schema registry: Confluent Schema Registry's REST API, served by every node on
//! `schema.registry.listen` (port 8081 by default), its state kept in the compacted topic
//! `_schemas` in Confluent's record layout.
//!
//! - [`crate::registry_store`]: reading and writing `_schemas` (any node writes; writes are
//!   sequenced by the offset they expect, so ids never collide), and the state the records
//!   build: schemas by id, subjects' versions, configs, modes.
//! - [`routes`]: the endpoints, Confluent's paths, bodies, error codes and content type.
//!
//! Formats, normalization and compatibility are the `strom-schema` crate's.

pub mod client;
pub mod routes;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::registry_store::topic::{self, SchemasTopic};
pub use crate::registry_store::{ok, reply, RegistryError, CONTENT_TYPE};
use crate::state::AdminState;

/// The registry's port when `schema.registry.listen` is not given (Confluent's).
pub const REGISTRY_PORT_DEFAULT: u16 = 8081;

/// How long a read waits to catch up with `_schemas` before answering from what it has.
const CATCH_UP_MS_MAX: u64 = 5_000;

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
    let broker =
        (admin.broker()).ok_or_else(|| RegistryError::unavailable("the broker is starting"))?;
    crate::registry_store::opened(admin.schemas(), broker).await
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
    crate::listener::serve_router(listener, tls, app, "schema registry", shutdown).await
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
            let store = topic.read();
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
