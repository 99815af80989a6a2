//! The registry's endpoints: Confluent Schema Registry's paths, bodies and error codes.
//!
//! Reads first catch up with `_schemas` (so a write acknowledged by any node is seen);
//! writes go through [`SchemasTopic::write`], which decides on caught-up state.

use std::collections::BTreeSet;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_schema::{Compatibility, Schema, SchemaType};

use super::RegistryState;
use crate::registry_store::store::{self, Mode, Reference, Store, StoredSchema};
use crate::registry_store::topic::Write;
use crate::registry_store::{ok, parse_stored, parse_with, RegistryError};

type Answer = Result<Response, RegistryError>;
type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<RegistryState> {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/schemas", get(list_schemas))
        .route(
            "/schemas/types",
            get(|| async { ok(json!(["JSON", "PROTOBUF", "AVRO"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .route("/contexts", get(|| async { ok(json!(["."])) }))
        .route(
            "/associations/resources/{namespace}/{name}",
            get(no_associations),
        )
}

// -- parameters -----------------------------------------------------------------------

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse::<i32>()
        .map_err(|_| RegistryError::schema_not_found(None))
}

/// A version in a path: 1..=i32::MAX, or `latest` / -1.
enum VersionSpec {
    Latest,
    Number(i32),
}

fn parse_version(version: &str) -> Result<VersionSpec, RegistryError> {
    if version.eq_ignore_ascii_case("latest") || version == "-1" {
        return Ok(VersionSpec::Latest);
    }
    match version.parse::<i32>() {
        Ok(number) if number >= 1 => Ok(VersionSpec::Number(number)),
        _ => Err(RegistryError::unprocessable(
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

fn body_json(body: &Bytes) -> Result<Value, RegistryError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|error| {
        RegistryError::bad_request(format!("the request body is not JSON: {error}"))
    })
}

// -- rendering ------------------------------------------------------------------------

fn schema_fields(body: &mut serde_json::Map<String, Value>, schema: &StoredSchema) {
    if schema.schema_type != SchemaType::Avro {
        body.insert("schemaType".into(), schema.schema_type.name().into());
    }
    if !schema.references.is_empty() {
        body.insert("references".into(), json!(schema.references));
    }
}

/// A subject version as `GET /subjects/{s}/versions/{v}` answers it.
fn version_body(store: &Store, subject: &str, version: &store::Version) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("subject".into(), subject.into());
    body.insert("version".into(), version.version.into());
    body.insert("id".into(), version.id.into());
    if let Some(schema) = store.schema(version.id) {
        schema_fields(&mut body, schema);
        body.insert("schema".into(), schema.schema.clone().into());
    }
    if let Some(metadata) = &version.metadata {
        body.insert("metadata".into(), metadata.clone());
    }
    if let Some(rule_set) = &version.rule_set {
        body.insert("ruleSet".into(), rule_set.clone());
    }
    if version.deleted {
        body.insert("deleted".into(), true.into());
    }
    Value::Object(body)
}

/// The schema text a `format` asks for: Protobuf's `serialized` is the base64 descriptor.
fn formatted(
    schema: &StoredSchema,
    store: &Store,
    format: Option<&String>,
) -> Result<String, RegistryError> {
    match (schema.schema_type, format.map(String::as_str)) {
        (SchemaType::Protobuf, Some("serialized")) => match parse_stored(store, schema)? {
            Schema::Protobuf(parsed) => Ok(parsed.serialized()),
            _ => unreachable!("a stored Protobuf schema parses as Protobuf"),
        },
        _ => Ok(schema.schema.clone()),
    }
}

// -- a schema in a request body -------------------------------------------------------

/// What `POST .../versions`, lookups and compatibility checks send.
struct Submitted {
    schema_type: SchemaType,
    text: String,
    references: Vec<Reference>,
    metadata: Option<Value>,
    rule_set: Option<Value>,
    id: Option<i32>,
    version: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubmittedBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    metadata: Option<Value>,
    rule_set: Option<Value>,
    id: Option<i32>,
    version: Option<i32>,
}

fn submitted(body: &Bytes) -> Result<Submitted, RegistryError> {
    let value = body_json(body)?;
    let body: SubmittedBody = serde_json::from_value(value).map_err(|error| {
        RegistryError::unprocessable(422, format!("Unrecognized body: {error}"))
    })?;
    let schema_type = match body.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(name) => SchemaType::parse(name).ok_or_else(|| {
            RegistryError::unprocessable(42201, format!("Invalid schema type {name}"))
        })?,
    };
    let text = body
        .schema
        .ok_or_else(|| RegistryError::unprocessable(42201, "Empty schema"))?;
    if text.len() > strom_schema::SCHEMA_BYTES_MAX {
        return Err(RegistryError::unprocessable(
            42209,
            format!(
                "Schema too large: {} bytes, at most {} allowed",
                text.len(),
                strom_schema::SCHEMA_BYTES_MAX
            ),
        ));
    }
    let null_metadata = body.metadata.as_ref().is_none_or(Value::is_null);
    let null_rules = body.rule_set.as_ref().is_none_or(Value::is_null);
    Ok(Submitted {
        schema_type,
        text,
        references: body.references.unwrap_or_default(),
        metadata: body.metadata.filter(|_| !null_metadata),
        rule_set: body.rule_set.filter(|_| !null_rules),
        id: body.id.filter(|id| *id >= 0),
        version: body.version.filter(|v| *v >= 1),
    })
}

/// The submitted schema parsed, and the text to store and compare: canonical, or normalized.
fn prepare(
    store: &Store,
    submitted: &Submitted,
    normalize: bool,
) -> Result<(Schema, String), RegistryError> {
    let parsed = parse_with(
        store,
        submitted.schema_type,
        &submitted.text,
        &submitted.references,
    )?;
    let text = match normalize {
        true => parsed.normalized(),
        false => parsed.canonical(),
    };
    Ok((parsed, text))
}

// -- /schemas ---------------------------------------------------------------------------

async fn list_schemas(State(state): State<RegistryState>, Query(params): Params) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .unwrap_or("");
    let deleted = flag(&params, "deleted");
    let latest_only = flag(&params, "latestOnly");
    let mut listed = Vec::new();
    for subject in store
        .subjects(deleted)
        .into_iter()
        .filter(|s| s.starts_with(prefix))
    {
        let versions = store.versions(subject).into_iter().flat_map(|v| v.values());
        let versions: Vec<_> = versions.filter(|v| deleted || !v.deleted).collect();
        let chosen = match latest_only {
            true => versions.last().into_iter().copied().collect(),
            false => versions,
        };
        for version in chosen {
            listed.push(version_body(&store, subject, version));
        }
    }
    Ok(ok(Value::Array(listed)))
}

async fn schema_by_id(
    State(state): State<RegistryState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let id = parse_id(&id)?;
    let topic = state.current().await?;
    let store = topic.read();
    let schema = store
        .schema(id)
        .ok_or_else(|| RegistryError::schema_not_found(Some(id)))?;
    let mut body = serde_json::Map::new();
    schema_fields(&mut body, schema);
    body.insert(
        "schema".into(),
        formatted(schema, &store, params.get("format"))?.into(),
    );
    Ok(ok(Value::Object(body)))
}

async fn schema_text_by_id(State(state): State<RegistryState>, Path(id): Path<String>) -> Answer {
    let id = parse_id(&id)?;
    let topic = state.current().await?;
    let store = topic.read();
    let schema = store
        .schema(id)
        .ok_or_else(|| RegistryError::schema_not_found(Some(id)))?;
    Ok(raw_schema(&schema.schema))
}

/// A schema's own text as the body (`.../schema`): JSON schemas as JSON, Protobuf as text.
fn raw_schema(text: &str) -> Response {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => ok(value),
        Err(_) => ok(Value::String(text.to_owned())),
    }
}

async fn subjects_by_id(
    State(state): State<RegistryState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let id = parse_id(&id)?;
    let topic = state.current().await?;
    let store = topic.read();
    let deleted = flag(&params, "deleted");
    let uses = store.uses_of(id);
    let subjects: BTreeSet<&str> = (uses.iter())
        .filter(|(_, v)| deleted || !v.deleted)
        .map(|(s, _)| *s)
        .collect();
    if subjects.is_empty() && store.schema(id).is_none() {
        return Err(RegistryError::schema_not_found(Some(id)));
    }
    Ok(ok(json!(subjects)))
}

async fn versions_by_id(
    State(state): State<RegistryState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Answer {
    let id = parse_id(&id)?;
    let topic = state.current().await?;
    let store = topic.read();
    if store.schema(id).is_none() {
        return Err(RegistryError::schema_not_found(Some(id)));
    }
    let deleted = flag(&params, "deleted");
    let versions: Vec<Value> = (store.uses_of(id).into_iter())
        .filter(|(_, v)| deleted || !v.deleted)
        .map(|(subject, v)| json!({"subject": subject, "version": v.version}))
        .collect();
    Ok(ok(Value::Array(versions)))
}

// -- /subjects --------------------------------------------------------------------------

async fn list_subjects(State(state): State<RegistryState>, Query(params): Params) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .unwrap_or("");
    let subjects: Vec<&str> = (store.subjects(flag(&params, "deleted")).into_iter())
        .filter(|s| s.starts_with(prefix))
        .collect();
    Ok(ok(json!(subjects)))
}

async fn list_versions(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    let deleted = flag(&params, "deleted");
    let versions: Vec<i32> = (store.versions(&subject).into_iter())
        .flat_map(|v| v.values())
        .filter(|v| deleted || !v.deleted)
        .map(|v| v.version)
        .collect();
    if versions.is_empty() {
        return Err(RegistryError::subject_not_found(&subject));
    }
    Ok(ok(json!(versions)))
}

/// The version a path names: `latest` is the newest live one (or newest of all with
/// `deleted`).
fn find_version<'a>(
    store: &'a Store,
    subject: &str,
    spec: &VersionSpec,
    deleted: bool,
) -> Result<&'a store::Version, RegistryError> {
    let versions = store
        .versions(subject)
        .filter(|versions| deleted || versions.values().any(|v| !v.deleted))
        .ok_or_else(|| RegistryError::subject_not_found(subject))?;
    let found = match spec {
        VersionSpec::Latest => versions.values().rev().find(|v| deleted || !v.deleted),
        VersionSpec::Number(number) => versions.get(number).filter(|v| deleted || !v.deleted),
    };
    found.ok_or_else(|| match spec {
        VersionSpec::Latest => RegistryError::version_not_found("latest"),
        VersionSpec::Number(number) => RegistryError::version_not_found(number),
    })
}

async fn get_version(
    State(state): State<RegistryState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    answer_version(state, subject, version, params, false).await
}

async fn get_version_schema(
    State(state): State<RegistryState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    answer_version(state, subject, version, params, true).await
}

/// `GET /subjects/{s}/versions/{v}`, or with `schema_only` its `/schema`: the schema's text
/// alone.
async fn answer_version(
    state: RegistryState,
    subject: String,
    version: String,
    params: HashMap<String, String>,
    schema_only: bool,
) -> Answer {
    let spec = parse_version(&version)?;
    let topic = state.current().await?;
    let store = topic.read();
    let found = find_version(&store, &subject, &spec, flag(&params, "deleted"))?;
    let schema = store
        .schema(found.id)
        .ok_or_else(|| RegistryError::schema_not_found(Some(found.id)))?;
    if schema_only {
        return Ok(raw_schema(&schema.schema));
    }
    let mut body = version_body(&store, &subject, found);
    if let Some(format) = params.get("format") {
        body["schema"] = formatted(schema, &store, Some(format))?.into();
    }
    Ok(ok(body))
}

async fn referenced_by(
    State(state): State<RegistryState>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec = parse_version(&version)?;
    let topic = state.current().await?;
    let store = topic.read();
    let found = find_version(&store, &subject, &spec, false)?;
    Ok(ok(json!(store.referenced_by(&subject, found.version))))
}

/// `POST /subjects/{s}`: is this schema registered under the subject? Its version if so.
async fn lookup(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    let submitted = submitted(&body)?;
    let topic = state.current().await?;
    let store = topic.read();
    let deleted = flag(&params, "deleted");
    let versions = store
        .versions(&subject)
        .filter(|versions| deleted || versions.values().any(|v| !v.deleted))
        .ok_or_else(|| RegistryError::subject_not_found(&subject))?;
    let (_, text) = prepare(&store, &submitted, flag(&params, "normalize"))?;
    let found = (versions.values().rev())
        .filter(|v| deleted || !v.deleted)
        .find(|v| {
            store.schema(v.id).is_some_and(|s| {
                s.schema_type == submitted.schema_type
                    && s.schema == text
                    && s.references == submitted.references
            })
        })
        .ok_or_else(|| RegistryError::schema_not_found(None))?;
    Ok(ok(version_body(&store, &subject, found)))
}

fn check_writable(store: &Store, subject: &str) -> Result<Mode, RegistryError> {
    let mode = store.effective_mode(subject);
    if matches!(mode, Mode::Readonly | Mode::ReadonlyOverride) {
        return Err(RegistryError::unprocessable(
            42205,
            format!("Subject {subject} is in read-only mode"),
        ));
    }
    Ok(mode)
}

/// `POST /subjects/{s}/versions`: registers a schema (or finds it registered) and answers its
/// id.
async fn register(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    let submitted = submitted(&body)?;
    let normalize = flag(&params, "normalize");
    let topic = state.opened().await?;
    let (id, version) = topic
        .write(|store| {
            let mode = check_writable(store, &subject)?;
            if submitted.id.is_none() && mode == Mode::Import {
                return Err(RegistryError::unprocessable(
                    42205,
                    format!("Subject {subject} is in import mode: a schema id must be given"),
                ));
            }
            if submitted.id.is_some() && mode != Mode::Import {
                return Err(RegistryError::unprocessable(
                    42205,
                    format!("Subject {subject} is not in import mode: a schema id cannot be given"),
                ));
            }
            let (parsed, text) = prepare(store, &submitted, normalize)?;
            let versions = store.versions(&subject);
            let live: Vec<&store::Version> = (versions.into_iter())
                .flat_map(|v| v.values())
                .filter(|v| !v.deleted)
                .collect();
            let same = |v: &&store::Version| {
                store.schema(v.id).is_some_and(|s| {
                    s.schema_type == submitted.schema_type
                        && s.schema == text
                        && s.references == submitted.references
                }) && (submitted.id.is_none() || submitted.id == Some(v.id))
            };
            if let Some(existing) = live.iter().rev().find(|v| same(v)) {
                return Ok(((existing.id, existing.version), None));
            }
            if mode != Mode::Import {
                let level = store.compatibility(&subject);
                let previous: Vec<(i32, Schema)> = (live.iter())
                    .filter_map(|v| {
                        let stored = store.schema(v.id)?;
                        Some((v.version, parse_stored(store, stored).ok()?))
                    })
                    .collect();
                let previous: Vec<(i32, &Schema)> = previous.iter().map(|(v, s)| (*v, s)).collect();
                let reasons = strom_schema::check_verbose(level, &parsed, &previous);
                if !reasons.is_empty() {
                    return Err(incompatible(&subject, level, &reasons));
                }
            }
            let known = store.id_of(submitted.schema_type, &text, &submitted.references);
            let id = match (submitted.id, known) {
                (Some(id), _) => {
                    let clash = store.schema(id).is_some_and(|s| {
                        s.schema_type != submitted.schema_type || s.schema != text
                    });
                    if clash {
                        // Confluent: an operation not permitted (42205), not ID_DOES_NOT_MATCH.
                        return Err(RegistryError::unprocessable(
                            42205,
                            format!("Overwrite new schema with id {id} is not permitted."),
                        ));
                    }
                    id
                }
                (None, Some(id)) => id,
                (None, None) => store.next_id(),
            };
            let latest = (versions.into_iter())
                .flat_map(|v| v.keys().next_back())
                .next()
                .copied()
                .unwrap_or(0);
            let version = submitted.version.unwrap_or(latest + 1);
            if mode != Mode::Import && version != latest + 1 {
                return Err(RegistryError::unprocessable(
                    42201,
                    format!("Invalid schema: version {version} is not one more than the previous version {latest}"),
                ));
            }
            if store.version(&subject, version).is_some() {
                return Err(RegistryError::unprocessable(
                    42202,
                    format!("Version {version} of subject {subject} exists already"),
                ));
            }
            let mut value = json!({
                "subject": subject, "version": version, "id": id, "schema": text, "deleted": false,
            });
            if submitted.schema_type != SchemaType::Avro {
                value["schemaType"] = submitted.schema_type.name().into();
            }
            if !submitted.references.is_empty() {
                value["references"] = json!(submitted.references);
            }
            if let Some(metadata) = &submitted.metadata {
                value["metadata"] = metadata.clone();
            }
            if let Some(rule_set) = &submitted.rule_set {
                value["ruleSet"] = rule_set.clone();
            }
            let key =
                json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1});
            Ok((
                (id, version),
                Some(Write {
                    records: vec![(key, Some(value))],
                }),
            ))
        })
        .await?;
    Ok(ok(json!({"id": id, "version": version})))
}

fn incompatible(subject: &str, level: Compatibility, reasons: &[String]) -> RegistryError {
    RegistryError::new(
        StatusCode::CONFLICT,
        409,
        format!(
            "Schema being registered is incompatible with an earlier schema for subject \
             \"{subject}\", details: [{}, {{compatibility: '{}'}}]",
            reasons.join(", "),
            level.name()
        ),
    )
}

async fn delete_subject(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let permanent = flag(&params, "permanent");
    let topic = state.opened().await?;
    let deleted = topic
        .write(|store| {
            check_writable(store, &subject)?;
            let versions = store
                .versions(&subject)
                .ok_or_else(|| RegistryError::subject_not_found(&subject))?;
            let numbers: Vec<i32> = versions.keys().copied().collect();
            let all_deleted = versions.values().all(|v| v.deleted);
            match permanent {
                false if all_deleted => Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    40404,
                    format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"),
                )),
                false => {
                    let in_use = numbers.iter().any(|n| !store.referenced_by(&subject, *n).is_empty());
                    if in_use {
                        return Err(reference_exists(&subject));
                    }
                    let latest = numbers.last().copied().unwrap_or(0);
                    let key = json!({"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0});
                    let value = json!({"subject": subject, "version": latest});
                    let live: Vec<i32> = (versions.values()).filter(|v| !v.deleted).map(|v| v.version).collect();
                    Ok((live, Some(Write { records: vec![(key, Some(value))] })))
                }
                true if !all_deleted => Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    40405,
                    format!("Subject '{subject}' was not deleted first before being permanently deleted"),
                )),
                true => {
                    let in_use = numbers.iter().any(|n| !store.referenced_by(&subject, *n).is_empty());
                    if in_use {
                        return Err(reference_exists(&subject));
                    }
                    let key = json!({"keytype": "CLEAR_SUBJECT", "subject": subject, "magic": 0});
                    let mut records = vec![(key, Some(json!({"subject": subject})))];
                    records.extend(tombstones(versions.values()));
                    Ok((numbers, Some(Write { records })))
                }
            }
        })
        .await?;
    Ok(ok(json!(deleted)))
}

/// Tombstones for every record that wrote these versions, so compaction removes them.
fn tombstones<'a>(
    versions: impl Iterator<Item = &'a store::Version>,
) -> Vec<(Value, Option<Value>)> {
    (versions.flat_map(|v| v.keys.iter()))
        .filter_map(|key| serde_json::from_slice::<Value>(key).ok())
        .map(|key| (key, None))
        .collect()
}

fn reference_exists(subject: &str) -> RegistryError {
    RegistryError::unprocessable(
        42206,
        format!("One or more references exist to the schema {{subject={subject}}}"),
    )
}

async fn delete_version(
    State(state): State<RegistryState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let spec = parse_version(&version)?;
    let permanent = flag(&params, "permanent");
    let topic = state.opened().await?;
    let deleted = topic
        .write(|store| {
            check_writable(store, &subject)?;
            // A numbered version is found soft-deleted too (to say so); `latest` is the newest
            // live one unless deleting permanently.
            let deleted = permanent || matches!(spec, VersionSpec::Number(_));
            let found = find_version(store, &subject, &spec, deleted)?;
            if !store.referenced_by(&subject, found.version).is_empty() {
                return Err(reference_exists(&subject));
            }
            match (permanent, found.deleted) {
                (false, true) => Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    40406,
                    format!("Subject '{subject}' Version {} was soft deleted.Set permanent=true to delete permanently", found.version),
                )),
                (true, false) => Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    40407,
                    format!("Subject '{subject}' Version {} was not deleted first before being permanently deleted", found.version),
                )),
                (true, true) => {
                    let mut records = tombstones(std::iter::once(found));
                    // The first record carries the sequence: a tombstone cannot, so the
                    // change is led by a harmless NOOP.
                    records.insert(0, (json!({"keytype": "NOOP", "magic": 0}), Some(json!({}))));
                    Ok((found.version, Some(Write { records })))
                }
                (false, false) => {
                    let schema = store.schema(found.id);
                    let mut value = json!({
                        "subject": subject, "version": found.version, "id": found.id,
                        "schema": schema.map(|s| s.schema.clone()).unwrap_or_default(),
                        "deleted": true,
                    });
                    if let Some(schema) = schema {
                        if schema.schema_type != SchemaType::Avro {
                            value["schemaType"] = schema.schema_type.name().into();
                        }
                        if !schema.references.is_empty() {
                            value["references"] = json!(schema.references);
                        }
                    }
                    let key = json!({"keytype": "SCHEMA", "subject": subject, "version": found.version, "magic": 1});
                    Ok((found.version, Some(Write { records: vec![(key, Some(value))] })))
                }
            }
        })
        .await?;
    Ok(ok(json!(deleted)))
}

// -- /compatibility -----------------------------------------------------------------------

async fn compatibility_one(
    State(state): State<RegistryState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    let spec = parse_version(&version)?;
    compatibility(state, subject, Some(spec), params, body).await
}

async fn compatibility_all(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    compatibility(state, subject, None, params, body).await
}

async fn compatibility(
    state: RegistryState,
    subject: String,
    version: Option<VersionSpec>,
    params: HashMap<String, String>,
    body: Bytes,
) -> Answer {
    let submitted = submitted(&body)?;
    let topic = state.current().await?;
    let store = topic.read();
    let (parsed, _) = prepare(&store, &submitted, flag(&params, "normalize"))?;
    let level = store.compatibility(&subject);
    let against: Vec<&store::Version> = match &version {
        Some(spec) => match find_version(&store, &subject, spec, false) {
            Ok(found) => vec![found],
            // Nothing to be incompatible with yet.
            Err(error) if error.code == 40401 && matches!(spec, VersionSpec::Latest) => vec![],
            Err(error) => return Err(error),
        },
        None => (store.versions(&subject).into_iter())
            .flat_map(|v| v.values())
            .filter(|v| !v.deleted)
            .collect(),
    };
    let previous: Vec<(i32, Schema)> = (against.iter())
        .filter_map(|v| Some((v.version, parse_stored(&store, store.schema(v.id)?).ok()?)))
        .collect();
    let previous: Vec<(i32, &Schema)> = previous.iter().map(|(v, s)| (*v, s)).collect();
    // Against one named version the level's direction applies to that version alone.
    let level = match (&version, level) {
        (Some(_), Compatibility::BackwardTransitive) => Compatibility::Backward,
        (Some(_), Compatibility::ForwardTransitive) => Compatibility::Forward,
        (Some(_), Compatibility::FullTransitive) => Compatibility::Full,
        (_, level) => level,
    };
    let reasons = strom_schema::check_verbose(level, &parsed, &previous);
    let mut body = json!({"is_compatible": reasons.is_empty()});
    if flag(&params, "verbose") {
        let mut messages: Vec<Value> = reasons.into_iter().map(Value::String).collect();
        if !messages.is_empty() {
            messages.push(format!("{{compatibility: '{}'}}", level.name()).into());
        }
        body["messages"] = Value::Array(messages);
    }
    Ok(ok(body))
}

// -- /config and /mode ------------------------------------------------------------------

fn config_body(config: &store::Config) -> Value {
    let mut body = config.fields.clone();
    body.remove("compatibilityLevel");
    if let Some(level) = config.compatibility {
        body.insert("compatibilityLevel".into(), level.name().into());
    }
    Value::Object(body)
}

async fn get_global_config(State(state): State<RegistryState>) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    Ok(ok(match store.config(None) {
        Some(config) if config.compatibility.is_some() => config_body(config),
        _ => json!({"compatibilityLevel": Compatibility::default().name()}),
    }))
}

async fn get_config(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    if let Some(config) = store.config(Some(&subject)) {
        return Ok(ok(config_body(config)));
    }
    if flag(&params, "defaultToGlobal") {
        let level = store.compatibility(&subject);
        return Ok(ok(json!({"compatibilityLevel": level.name()})));
    }
    Err(RegistryError::new(
        StatusCode::NOT_FOUND,
        40408,
        format!("Subject '{subject}' does not have subject-level compatibility configured"),
    ))
}

async fn put_global_config(State(state): State<RegistryState>, body: Bytes) -> Answer {
    put_config_for(state, None, body).await
}

async fn put_config(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    put_config_for(state, Some(subject), body).await
}

async fn put_config_for(state: RegistryState, subject: Option<String>, body: Bytes) -> Answer {
    let Value::Object(mut fields) = body_json(&body)? else {
        return Err(RegistryError::bad_request(
            "the config is not a JSON object",
        ));
    };
    let level = match fields
        .remove("compatibility")
        .or_else(|| fields.remove("compatibilityLevel"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(Compatibility::parse(&name).ok_or_else(|| {
            RegistryError::unprocessable(42203, format!("Invalid compatibility level {name}"))
        })?),
        Some(other) => {
            return Err(RegistryError::unprocessable(
                42203,
                format!("Invalid compatibility level {other}"),
            ))
        }
    };
    let topic = state.opened().await?;
    let answer = topic
        .write(|store| {
            // Merged over what is set, as Confluent does: a PUT of one field keeps the others.
            let mut merged = (store.config(subject.as_deref()))
                .map(|c| c.fields.clone())
                .unwrap_or_default();
            for (name, value) in &fields {
                merged.insert(name.clone(), value.clone());
            }
            if let Some(level) = level {
                merged.insert("compatibilityLevel".into(), level.name().into());
            }
            let mut answer = merged.clone();
            if let Some(level) = answer.remove("compatibilityLevel") {
                answer.insert("compatibility".into(), level);
            }
            let key = config_key("CONFIG", subject.as_deref());
            let mut value = Value::Object(merged);
            if let Some(subject) = &subject {
                value["subject"] = subject.clone().into();
            }
            Ok((
                Value::Object(answer),
                Some(Write {
                    records: vec![(key, Some(value))],
                }),
            ))
        })
        .await?;
    Ok(ok(answer))
}

fn config_key(keytype: &str, subject: Option<&str>) -> Value {
    match subject {
        Some(subject) => json!({"keytype": keytype, "subject": subject, "magic": 0}),
        None => json!({"keytype": keytype, "magic": 0}),
    }
}

async fn delete_global_config(State(state): State<RegistryState>) -> Answer {
    delete_config_for(state, None).await
}

async fn delete_config(State(state): State<RegistryState>, Path(subject): Path<String>) -> Answer {
    delete_config_for(state, Some(subject)).await
}

/// Deleting a config: a tombstone for the key that set it, after a NOOP that carries the
/// sequence; answers the config that was.
async fn delete_config_for(state: RegistryState, subject: Option<String>) -> Answer {
    let topic = state.opened().await?;
    let answer = topic
        .write(|store| {
            let Some(config) = store.config(subject.as_deref()) else {
                return match &subject {
                    // Confluent answers "subject not found" when there is no level to delete.
                    Some(subject) => Err(RegistryError::subject_not_found(subject)),
                    None => Ok((
                        json!({"compatibilityLevel": Compatibility::default().name()}),
                        None,
                    )),
                };
            };
            let stored_key = store.config_key(subject.as_deref()).unwrap_or_default();
            let key: Value = serde_json::from_slice(stored_key)
                .unwrap_or_else(|_| config_key("CONFIG", subject.as_deref()));
            let records = vec![
                (json!({"keytype": "NOOP", "magic": 0}), Some(json!({}))),
                (key, None),
            ];
            Ok((config_body(config), Some(Write { records })))
        })
        .await?;
    Ok(ok(answer))
}

async fn get_global_mode(State(state): State<RegistryState>) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    let mode = store.mode(None).unwrap_or(Mode::Readwrite);
    Ok(ok(json!({"mode": mode.name()})))
}

async fn get_mode(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Answer {
    let topic = state.current().await?;
    let store = topic.read();
    match store.mode(Some(&subject)) {
        Some(mode) => Ok(ok(json!({"mode": mode.name()}))),
        None if flag(&params, "defaultToGlobal") => {
            Ok(ok(json!({"mode": store.effective_mode(&subject).name()})))
        }
        None => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )),
    }
}

async fn put_global_mode(
    State(state): State<RegistryState>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    put_mode_for(state, None, params, body).await
}

async fn put_mode(
    State(state): State<RegistryState>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    put_mode_for(state, Some(subject), params, body).await
}

async fn put_mode_for(
    state: RegistryState,
    subject: Option<String>,
    params: HashMap<String, String>,
    body: Bytes,
) -> Answer {
    let body = body_json(&body)?;
    let name = body.get("mode").and_then(Value::as_str).unwrap_or_default();
    let mode = Mode::parse(name)
        .ok_or_else(|| RegistryError::unprocessable(42204, format!("Invalid mode {name}")))?;
    let force = flag(&params, "force");
    let topic = state.opened().await?;
    topic
        .write(|store| {
            // Confluent's rule: IMPORT only on an empty registry (or subject), unless forced.
            if mode == Mode::Import && !force {
                let has_schemas = match &subject {
                    Some(subject) => store.versions(subject).is_some(),
                    None => !store.subjects(true).is_empty(),
                };
                if has_schemas {
                    return Err(RegistryError::unprocessable(
                        42205,
                        "Cannot import since found existing subjects",
                    ));
                }
            }
            let key = config_key("MODE", subject.as_deref());
            let mut value = json!({"mode": mode.name()});
            if let Some(subject) = &subject {
                value["subject"] = subject.clone().into();
            }
            Ok((
                (),
                Some(Write {
                    records: vec![(key, Some(value))],
                }),
            ))
        })
        .await?;
    Ok(ok(json!({"mode": mode.name()})))
}

async fn delete_mode(State(state): State<RegistryState>, Path(subject): Path<String>) -> Answer {
    let topic = state.opened().await?;
    let answer = topic
        .write(|store| {
            let Some(mode) = store.mode(Some(&subject)) else {
                return Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    40409,
                    format!("Subject '{subject}' does not have subject-level mode configured"),
                ));
            };
            let stored_key = store.mode_key(Some(&subject)).unwrap_or_default();
            let key: Value = serde_json::from_slice(stored_key)
                .unwrap_or_else(|_| config_key("MODE", Some(&subject)));
            let records = vec![
                (json!({"keytype": "NOOP", "magic": 0}), Some(json!({}))),
                (key, None),
            ];
            Ok((json!({"mode": mode.name()}), Some(Write { records })))
        })
        .await?;
    Ok(ok(answer))
}

async fn no_associations(Path((_, name)): Path<(String, String)>) -> Answer {
    Err(RegistryError::new(
        StatusCode::NOT_FOUND,
        40410,
        format!("Association for '{name}' not found."),
    ))
}
