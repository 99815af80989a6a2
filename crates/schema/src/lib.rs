//! Schema formats of the schema registry: parsing, the text the registry stores and compares,
//! and compatibility between versions, for Avro, JSON Schema and Protobuf.
//!
//! Nothing here does I/O: the registry (in `strom-http`) resolves a schema's references to
//! the texts they name and hands them over as [`Dependency`]s, deepest first; this crate
//! parses, renders and compares. The rules are Confluent Schema Registry's, so that what its
//! clients and serializers expect holds here:
//!
//! - [`Schema::canonical`] is the text stored in `_schemas` and returned by the API (Confluent's
//!   `canonicalString()`): Avro and JSON Schema as compact JSON, Protobuf as `.proto` text.
//! - [`Schema::normalized`] is the form `?normalize=true` registers and looks up.
//! - [`Schema::incompatibilities_reading`] is one direction of a compatibility check: what stops
//!   a reader using the new schema from reading data written with an older one; [`check`]
//!   applies a [`Compatibility`] level over a subject's versions.

pub mod avro;
pub mod json;
pub mod protobuf;

use serde::{Deserialize, Serialize};

/// The formats the registry accepts (`schemaType`; absent means AVRO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn parse(name: &str) -> Option<SchemaType> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// A schema another one refers to, already registered: the name the referring schema uses
/// for it (an Avro full type name, a JSON Schema `$ref` URL, a Protobuf import path) and its
/// text as stored. A schema's dependencies are the transitive closure of its references,
/// deepest first (a dependency's own dependencies come before it).
#[derive(Debug, Clone, Copy)]
pub struct Dependency<'a> {
    pub name: &'a str,
    pub schema: &'a str,
}

/// Why a schema was refused: the registry answers 42201 (invalid schema) with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchema(pub String);

impl InvalidSchema {
    pub fn new(message: impl Into<String>) -> InvalidSchema {
        InvalidSchema(message.into())
    }
}

/// Largest schema text accepted, in bytes (the registry refuses larger bodies before parsing).
pub const SCHEMA_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Deepest nesting of JSON (objects and arrays) or Protobuf messages a schema may have: the
/// parsers recurse, and a hostile schema must get an error, not a stack overflow.
pub const NESTING_MAX: usize = 128;

/// A parsed schema of any format.
#[derive(Debug, Clone)]
pub enum Schema {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtobufSchema),
}

impl Schema {
    /// Parses `text` as a schema of `kind`, resolving its references against `dependencies`.
    pub fn parse(
        kind: SchemaType,
        text: &str,
        dependencies: &[Dependency<'_>],
    ) -> Result<Schema, InvalidSchema> {
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(InvalidSchema::new(format!(
                "the schema is {} bytes, more than the {SCHEMA_BYTES_MAX} allowed",
                text.len()
            )));
        }
        Ok(match kind {
            SchemaType::Avro => Schema::Avro(avro::AvroSchema::parse(text, dependencies)?),
            SchemaType::Json => Schema::Json(json::JsonSchema::parse(text, dependencies)?),
            SchemaType::Protobuf => {
                Schema::Protobuf(protobuf::ProtobufSchema::parse(text, dependencies)?)
            }
        })
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            Schema::Avro(_) => SchemaType::Avro,
            Schema::Json(_) => SchemaType::Json,
            Schema::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The text the registry stores and returns for this schema, and compares to find one
    /// already registered.
    pub fn canonical(&self) -> String {
        match self {
            Schema::Avro(schema) => schema.canonical(),
            Schema::Json(schema) => schema.canonical(),
            Schema::Protobuf(schema) => schema.canonical(),
        }
    }

    /// The normalized text (`normalize=true`): equal for schemas that differ only in ways that
    /// do not change what they describe.
    pub fn normalized(&self) -> String {
        match self {
            Schema::Avro(schema) => schema.normalized(),
            Schema::Json(schema) => schema.normalized(),
            Schema::Protobuf(schema) => schema.normalized(),
        }
    }

    /// One datum written with this schema (the bytes after Confluent's 5-byte header: magic
    /// byte and schema id) as JSON, for people to read (the console's message browser).
    pub fn decode(&self, datum: &[u8]) -> Result<serde_json::Value, String> {
        match self {
            Schema::Avro(schema) => schema.decode(datum),
            Schema::Json(schema) => schema.decode(datum),
            Schema::Protobuf(schema) => schema.decode(datum),
        }
    }

    /// What keeps a reader using `self` from reading data written with `older` (empty when it
    /// can), in Confluent's terms: BACKWARD checks new against old this way, FORWARD the other
    /// way round. Schemas of different formats are never compatible.
    pub fn incompatibilities_reading(&self, older: &Schema) -> Vec<String> {
        match (self, older) {
            (Schema::Avro(new), Schema::Avro(old)) => new.incompatibilities_reading(old),
            (Schema::Json(new), Schema::Json(old)) => new.incompatibilities_reading(old),
            (Schema::Protobuf(new), Schema::Protobuf(old)) => new.incompatibilities_reading(old),
            _ => vec![format!(
                "the schema type changed from {} to {}",
                older.schema_type().name(),
                self.schema_type().name()
            )],
        }
    }
}

/// Compatibility levels (`compatibilityLevel`), BACKWARD by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(name: &str) -> Option<Compatibility> {
        [
            Compatibility::None,
            Compatibility::Backward,
            Compatibility::BackwardTransitive,
            Compatibility::Forward,
            Compatibility::ForwardTransitive,
            Compatibility::Full,
            Compatibility::FullTransitive,
        ]
        .into_iter()
        .find(|level| level.name().eq_ignore_ascii_case(name))
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

/// Checks `new` against a subject's live versions (`previous`, oldest first) under `level`:
/// the latest only, or every one for the transitive levels. Returns the reasons it is not
/// compatible, each naming the version it fails against; empty when it is.
pub fn check(level: Compatibility, new: &Schema, previous: &[(i32, &Schema)]) -> Vec<String> {
    (failures(level, new, previous).into_iter())
        .map(|failure| match failure.forward {
            false => format!(
                "{} (reading data of version {})",
                failure.message, failure.version
            ),
            true => format!(
                "{} (version {} reading data of the new schema)",
                failure.message, failure.version
            ),
        })
        .collect()
}

/// [`check`]'s answer in Confluent's verbose form: each failing version's messages, then
/// `{oldSchemaVersion: N}`; what the registry puts in a 409 and in `?verbose=true` answers.
pub fn check_verbose(
    level: Compatibility,
    new: &Schema,
    previous: &[(i32, &Schema)],
) -> Vec<String> {
    let mut messages = Vec::new();
    let mut failures = failures(level, new, previous).into_iter().peekable();
    while let Some(failure) = failures.next() {
        let version = failure.version;
        messages.push(failure.message);
        if failures.peek().is_none_or(|next| next.version != version) {
            messages.push(format!("{{oldSchemaVersion: {version}}}"));
        }
    }
    messages
}

/// One incompatibility: the version it is with, whether the old version is the reader
/// (FORWARD), and the format's message.
struct Failure {
    version: i32,
    forward: bool,
    message: String,
}

fn failures(level: Compatibility, new: &Schema, previous: &[(i32, &Schema)]) -> Vec<Failure> {
    let against: &[(i32, &Schema)] = match (level.transitive(), previous.split_last()) {
        (_, None) => &[],
        (true, Some(_)) => previous,
        (false, Some((last, _))) => std::slice::from_ref(last),
    };
    let (backward, forward) = match level {
        Compatibility::None => (false, false),
        Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
        Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
        Compatibility::Full | Compatibility::FullTransitive => (true, true),
    };
    let mut failures = Vec::new();
    for (version, old) in against.iter().rev() {
        if backward {
            for message in new.incompatibilities_reading(old) {
                failures.push(Failure {
                    version: *version,
                    forward: false,
                    message,
                });
            }
        }
        if forward {
            for message in old.incompatibilities_reading(new) {
                failures.push(Failure {
                    version: *version,
                    forward: true,
                    message,
                });
            }
        }
    }
    failures
}
