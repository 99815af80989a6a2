//! The schema registry's state and its topic, `_schemas`, apart from the HTTP side (the
//! registry module serves it; the console reads it to decode records).
//!
//! - [`topic`]: reading and writing `_schemas`.
//! - [`store`]: the state its records build.
//!
//! [`RegistryError`] is Confluent's error answer, which both sides give.

pub mod store;
pub mod topic;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use strom_schema::{Dependency, Schema, SchemaType};
use tokio::sync::OnceCell;

use store::{Reference, Store, StoredSchema};
use topic::SchemasTopic;

/// `_schemas` in `cell`, opened (the topic created if need be) on first use, through a client
/// of this node's own listener.
pub async fn opened(
    cell: &OnceCell<Arc<SchemasTopic>>,
    broker: &strom_broker::Broker,
) -> Result<Arc<SchemasTopic>, RegistryError> {
    let topic = cell
        .get_or_try_init(|| async {
            let client = crate::node_client::connect(broker, None)
                .await
                .map_err(|e| RegistryError::unavailable(e.to_string()))?;
            let brokers = broker.quorum.image().brokers.len();
            let node = broker.node().0;
            SchemasTopic::open(Arc::new(client), node, brokers)
                .await
                .map(Arc::new)
        })
        .await?;
    Ok(topic.clone())
}

/// Confluent's content type, of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

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

// -- references -----------------------------------------------------------------------

/// Deepest chain of references followed.
const REFERENCE_DEPTH_MAX: usize = 32;

/// The texts `references` name, and theirs, deepest first; a missing one or a cycle is an
/// invalid schema.
fn dependencies(
    store: &Store,
    references: &[Reference],
) -> Result<Vec<(String, String)>, RegistryError> {
    let mut ordered: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeSet<(String, i32)> = BTreeSet::new();
    fn visit(
        store: &Store,
        reference: &Reference,
        depth: usize,
        path: &mut Vec<(String, i32)>,
        seen: &mut BTreeSet<(String, i32)>,
        ordered: &mut Vec<(String, String)>,
    ) -> Result<(), RegistryError> {
        let at = (reference.subject.clone(), reference.version);
        if path.contains(&at) {
            return Err(RegistryError::invalid_schema(format!(
                "the references form a cycle through {} version {}",
                reference.subject, reference.version
            )));
        }
        if depth > REFERENCE_DEPTH_MAX {
            return Err(RegistryError::invalid_schema("references nest too deep"));
        }
        if !seen.insert(at.clone()) {
            return Ok(());
        }
        let version = store
            .version(&reference.subject, reference.version)
            .filter(|v| !v.deleted)
            .ok_or_else(|| {
                RegistryError::invalid_schema(format!(
                    "the reference {} names subject '{}' version {}, which does not exist",
                    reference.name, reference.subject, reference.version
                ))
            })?;
        let schema = store
            .schema(version.id)
            .ok_or_else(|| RegistryError::schema_not_found(Some(version.id)))?;
        path.push(at);
        for inner in &schema.references {
            visit(store, inner, depth + 1, path, seen, ordered)?;
        }
        path.pop();
        ordered.push((reference.name.clone(), schema.schema.clone()));
        Ok(())
    }
    for reference in references {
        visit(
            store,
            reference,
            0,
            &mut Vec::new(),
            &mut seen,
            &mut ordered,
        )?;
    }
    Ok(ordered)
}

pub fn parse_with(
    store: &Store,
    schema_type: SchemaType,
    text: &str,
    references: &[Reference],
) -> Result<Schema, RegistryError> {
    let dependencies = dependencies(store, references)?;
    let dependencies: Vec<Dependency<'_>> = (dependencies.iter())
        .map(|(name, schema)| Dependency { name, schema })
        .collect();
    Schema::parse(schema_type, text, &dependencies).map_err(RegistryError::invalid_schema)
}

pub fn parse_stored(store: &Store, schema: &StoredSchema) -> Result<Schema, RegistryError> {
    parse_with(
        store,
        schema.schema_type,
        &schema.schema,
        &schema.references,
    )
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
                let store = topic.read();
                let stored = store.schema(id)?;
                parse_stored(&store, stored).ok().map(Arc::new)
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
