//! JSON Schema, with Confluent Schema Registry's rules.
//!
//! A schema is parsed twice over. Its JSON text gives [`JsonSchema::canonical`] (Jackson's
//! compact `toString()`, keys in the order written) and [`JsonSchema::normalized`] (the same
//! with every object's keys sorted, as Confluent's `normalize()` re-reads the text through a
//! sorting node factory). Its meaning is loaded into a graph of typed nodes the way the Everit
//! loader Confluent uses does it (a `type` becomes a string, number, object... node; several
//! applicable keyword groups become a synthetic `allOf`; a list of types an `anyOf`), and the
//! compatibility check walks two such graphs with the rules of Confluent's `json.diff` package
//! (see [`diff`]): every difference found has a type, and a change is compatible only when all
//! of its differences are in Confluent's STRICT compatible set, the policy the registry uses
//! unless told otherwise.
//!
//! `$ref`s are resolved while loading: `#...` within the document (JSON pointers, `#/$defs/x`
//! also finding `#/definitions/x` as Confluent bridges the two, and plain-name anchors), any
//! other URL against the names of the schema's [`Dependency`]s. A reference to nothing known
//! is an invalid schema, as it is for Confluent now that it refuses to fetch remote URLs. The
//! graph may be cyclic (a recursive type); loading never recurses through a `$ref` (they are
//! resolved from a work list afterwards) and the comparison memoises pairs of nodes, so cycles
//! terminate. A `$ref` cycle that never reaches a schema (`a -> b -> a`) is refused.
//!
//! Keyword structure is checked as the loader reads it (types of `type`, `properties`,
//! `required`, `items`, `enum`, `$ref`, the numeric limits...), not by validating against the
//! meta-schema: Confluent does not validate against the meta-schema either (its loaders refuse
//! what they cannot read and ignore unknown keywords), and a meta-schema validator crate would
//! bring an HTTP client or a large build for checks the loader makes anyway.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use crate::{Dependency, InvalidSchema, NESTING_MAX};

/// Largest message payload [`JsonSchema::decode`] parses, in bytes.
pub const DATUM_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most pairs of nodes one compatibility check compares (each pair at most once per pass,
/// memoised): `anyOf`s compare every branch with every branch, so two hostile schemas could
/// otherwise ask for billions of comparisons. Past it the check reports an incompatibility.
pub const COMPARISONS_MAX: usize = 200_000;

/// Deepest chain of nested comparisons (schema inside schema, through `$ref`s): a chain of
/// thousands of definitions each referring to the next would otherwise overflow the stack.
const COMPARISON_DEPTH_MAX: usize = 4 * NESTING_MAX;

/// Largest compiled `patternProperties` regex, in bytes.
const REGEX_BYTES_MAX: usize = 1 << 20;

/// A parsed JSON Schema: its stored texts and the graph its compatibility is checked on.
#[derive(Clone)]
pub struct JsonSchema {
    canonical: String,
    normalized: String,
    graph: Arc<Graph>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSchema")
            .field("canonical", &self.canonical)
            .field("nodes", &self.graph.nodes.len())
            .finish()
    }
}

impl JsonSchema {
    /// Parses `text` (a JSON object or boolean) as a JSON Schema, resolving `$ref`s that name
    /// one of `dependencies` to that dependency's schema.
    pub fn parse(text: &str, dependencies: &[Dependency<'_>]) -> Result<JsonSchema, InvalidSchema> {
        let root = parse_document(text, None)?;
        let canonical = compact(&root.value);
        let normalized = compact(&sorted(&root.value));
        let mut documents = vec![root];
        for dependency in dependencies {
            documents.push(parse_document(dependency.schema, Some(dependency.name))?);
        }
        let graph = Loader::load(&documents)?;
        Ok(JsonSchema {
            canonical,
            normalized,
            graph: Arc::new(graph),
        })
    }

    /// Confluent's `canonicalString()`: compact JSON, keys in the order given.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// Confluent's `normalize()`: compact JSON with every object's keys sorted (by UTF-16 code
    /// units, as Java's `TreeMap` of strings sorts them).
    pub fn normalized(&self) -> String {
        self.normalized.clone()
    }

    /// What keeps a reader using `self` from reading data written with `older`, in Confluent's
    /// words with `self` as the "new" schema and `older` as the "old" one.
    pub fn incompatibilities_reading(&self, older: &JsonSchema) -> Vec<String> {
        self.incompatibilities_labelled(older, "new", "old")
    }

    /// [`JsonSchema::incompatibilities_reading`] naming the two schemas as the caller sees
    /// them: Confluent's messages say "the new schema" and "the old schema", and which of the
    /// two reads depends on the compatibility level (FORWARD has the old one read the new).
    pub fn incompatibilities_labelled(
        &self,
        older: &JsonSchema,
        reader: &str,
        writer: &str,
    ) -> Vec<String> {
        match diff::differences(&older.graph, &self.graph) {
            Ok(differences) => differences
                .iter()
                .filter(|difference| !difference.kind.is_compatible())
                .map(|difference| difference.message(reader, writer))
                .collect(),
            Err(diff::TooLarge) => vec![format!(
                "the {reader} and {writer} schemas are too large or too deeply nested to compare \
                 (more than {COMPARISONS_MAX} comparisons or {COMPARISON_DEPTH_MAX} levels)"
            )],
        }
    }

    /// Every difference from `older` to `self`, compatible or not, as `TYPE #/path` (the
    /// form Confluent's own tests list them in): for diagnostics.
    pub fn differences(&self, older: &JsonSchema) -> Result<Vec<String>, String> {
        match diff::differences(&older.graph, &self.graph) {
            Ok(differences) => Ok(differences
                .iter()
                .map(|difference| format!("{} {}", difference.kind.name(), difference.path))
                .collect()),
            Err(diff::TooLarge) => Err("too large to compare".to_string()),
        }
    }

    /// Parses a message payload written with this schema for display: JSON text, after the
    /// 5-byte header (magic byte 0 and the schema id) when `datum` still starts with it (JSON
    /// text never starts with a zero byte).
    pub fn decode(&self, datum: &[u8]) -> Result<Value, String> {
        let payload = match datum {
            [0, _, _, _, _, rest @ ..] => rest,
            [0, ..] => return Err("the payload is shorter than its 5-byte header".to_string()),
            _ => datum,
        };
        if payload.len() > DATUM_BYTES_MAX {
            return Err(format!(
                "the payload is {} bytes, more than the {DATUM_BYTES_MAX} decoded",
                payload.len()
            ));
        }
        // serde_json refuses nesting deeper than 128 levels with an error, not a stack overflow.
        serde_json::from_slice(payload).map_err(|error| format!("the payload is not JSON: {error}"))
    }
}

/// The JSON Schema drafts Confluent accepts, chosen by `$schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Draft {
    Draft4,
    Draft6,
    Draft7,
    Draft2019,
    Draft2020,
}

impl Draft {
    /// Confluent's `SpecificationVersion.getFromUrl`: exact URLs, a trailing `#` ignored.
    fn from_url(url: &str) -> Option<Draft> {
        let url = url.strip_suffix('#').unwrap_or(url);
        let path = url
            .strip_prefix("http://json-schema.org/")
            .or_else(|| url.strip_prefix("https://json-schema.org/"))?;
        match path {
            "draft-04/schema" | "schema" => Some(Draft::Draft4),
            "draft-06/schema" => Some(Draft::Draft6),
            "draft-07/schema" => Some(Draft::Draft7),
            "draft/2019-09/schema" => Some(Draft::Draft2019),
            "draft/2020-12/schema" => Some(Draft::Draft2020),
            _ => None,
        }
    }

    fn id_keyword(self) -> &'static str {
        if self == Draft::Draft4 {
            "id"
        } else {
            "$id"
        }
    }
}

/// One JSON document a schema's `$ref`s can reach: the schema itself or a dependency.
struct Document {
    /// Boxed so that its address, the key nodes are memoised under, stays put.
    value: Box<Value>,
    draft: Draft,
    /// The dependency name it is referred to by (None for the schema being parsed).
    name: Option<String>,
}

fn parse_document(text: &str, name: Option<&str>) -> Result<Document, InvalidSchema> {
    let context = |message: String| match name {
        None => InvalidSchema::new(message),
        Some(name) => InvalidSchema::new(format!("the referenced schema '{name}': {message}")),
    };
    // serde_json refuses more than 128 levels of nesting (NESTING_MAX) with an error, and lone
    // surrogate escapes such as "\ud800", which no Rust string can hold.
    let value: Value = serde_json::from_str(text)
        .map_err(|error| context(format!("Invalid JSON schema: not valid JSON: {error}")))?;
    if nesting(&value) > NESTING_MAX {
        return Err(context(format!(
            "Invalid JSON schema: nested more than {NESTING_MAX} levels deep"
        )));
    }
    let draft = match &value {
        Value::Object(map) => match map.get("$schema") {
            None => Draft::Draft7,
            Some(Value::String(url)) => Draft::from_url(url).ok_or_else(|| {
                context(format!(
                    "Invalid JSON schema: unknown $schema '{url}' (expected the URL of draft-04, \
                     draft-06, draft-07, 2019-09 or 2020-12)"
                ))
            })?,
            Some(_) => {
                return Err(context(
                    "Invalid JSON schema: $schema must be a string".into(),
                ))
            }
        },
        Value::Bool(_) => Draft::Draft7,
        other => {
            return Err(context(format!(
                "Invalid JSON schema: expected an object or boolean at the root, found {}",
                node_type(other)
            )))
        }
    };
    Ok(Document {
        value: Box::new(value),
        draft,
        name: name.map(str::to_string),
    })
}

/// Jackson's name for a node's type, as Confluent's message gives it.
fn node_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOLEAN",
        Value::Number(_) => "NUMBER",
        Value::String(_) => "STRING",
        Value::Array(_) => "ARRAY",
        Value::Object(_) => "OBJECT",
    }
}

/// How deeply `value` nests, counted without recursion.
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Compact JSON, as Jackson's `writeValueAsString` writes a tree.
fn compact(value: &Value) -> String {
    // Serialising a Value to a String cannot fail: its keys are strings.
    serde_json::to_string(value).unwrap_or_default()
}

/// `value` with every object's keys sorted by UTF-16 code units (Java's `String` order).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The graph: Everit's schema classes, as nodes.

type NodeId = usize;

/// A schema graph: nodes index one another; `root` is the schema parsed.
struct Graph {
    nodes: Vec<Node>,
    root: NodeId,
}

impl Graph {
    /// Follows `$ref`s to the schema they name (loading refused cycles of bare `$ref`s).
    fn resolve(&self, mut id: NodeId) -> NodeId {
        while let Kind::Reference { target } = self.nodes[id].kind {
            id = target;
        }
        id
    }
}

struct Node {
    meta: Meta,
    kind: Kind,
    /// A hash of what the node describes, to collapse equal branches of an `anyOf` as
    /// Confluent does by putting them in a set.
    fingerprint: u64,
}

/// The annotations every schema class has, which the comparison reports changes of.
#[derive(Default)]
struct Meta {
    id: Option<String>,
    title: Option<String>,
    description: Option<String>,
    default: Option<Value>,
    /// Kafka Connect's `connect.type`: two `bytes` are equivalent whatever their types.
    connect_type: Option<String>,
}

/// `additionalProperties` / `additionalItems`: absent or true, false, or a schema.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Additional {
    Permitted,
    Forbidden,
    Schema(NodeId),
}

impl Additional {
    fn permits(self) -> bool {
        self != Additional::Forbidden
    }

    fn schema(self) -> Option<NodeId> {
        match self {
            Additional::Schema(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Criterion {
    All,
    Any,
    One,
}

impl Criterion {
    fn keyword(self) -> &'static str {
        match self {
            Criterion::All => "allOf",
            Criterion::Any => "anyOf",
            Criterion::One => "oneOf",
        }
    }
}

#[derive(Default)]
struct ObjectKind {
    properties: Vec<(String, NodeId)>,
    required: Vec<String>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    additional: Option<Additional>,
    /// Pattern, its regex when Rust's engine can compile it (else it matches nothing), schema.
    pattern_properties: Vec<(String, Option<Regex>, NodeId)>,
    property_dependencies: Vec<(String, Vec<String>)>,
    schema_dependencies: Vec<(String, NodeId)>,
    unevaluated: Option<NodeId>,
}

#[derive(Default)]
struct ArrayKind {
    all_items: Option<NodeId>,
    item_schemas: Vec<NodeId>,
    additional: Option<Additional>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    min_contains: Option<u64>,
    max_contains: Option<u64>,
    unevaluated: Option<NodeId>,
}

#[derive(Default)]
struct NumberKind {
    integer: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<Decimal>,
}

#[derive(Default)]
struct StringKind {
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<String>,
}

enum Kind {
    /// `{}` or `true`: anything.
    Empty,
    /// `false`: nothing.
    False,
    Null,
    Boolean,
    String(StringKind),
    Number(NumberKind),
    Object(Box<ObjectKind>),
    Array(Box<ArrayKind>),
    Combined {
        criterion: Criterion,
        subschemas: Vec<NodeId>,
    },
    /// `enum`, its values as compact JSON (a set, as Everit keeps them).
    Enum(Vec<String>),
    Const(String),
    Not(NodeId),
    /// `if`/`then`/`else`: loaded (so checked) but, as in Confluent, not compared.
    Conditional,
    Reference {
        target: NodeId,
    },
}

impl Kind {
    /// Everit's schema class: what `schemaTypesEqual` compares.
    fn class(&self) -> u8 {
        match self {
            Kind::Empty => 0,
            Kind::False => 1,
            Kind::Null => 2,
            Kind::Boolean => 3,
            Kind::String(_) => 4,
            Kind::Number(_) => 5,
            Kind::Object(_) => 6,
            Kind::Array(_) => 7,
            Kind::Combined { .. } => 8,
            Kind::Enum(_) => 9,
            Kind::Const(_) => 10,
            Kind::Not(_) => 11,
            Kind::Conditional => 12,
            Kind::Reference { .. } => 13,
        }
    }
}

/// A decimal number, mantissa times ten to the exponent, for `multipleOf` (which Confluent
/// compares as `BigDecimal`s: `0.3` is a multiple of `0.1`, as binary floats would not have).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Decimal {
    mantissa: i128,
    exponent: i32,
}

impl Decimal {
    fn parse(number: &serde_json::Number) -> Option<Decimal> {
        let text = number.to_string();
        let (digits, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
            None => (text.as_str(), 0),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
        let exponent = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
        Some(Decimal { mantissa, exponent })
    }

    fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Both mantissas at the smaller exponent, or None if that overflows.
    fn aligned(self, other: Decimal) -> Option<(i128, i128)> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |d: Decimal| -> Option<i128> {
            let shift = u32::try_from(d.exponent - exponent).ok()?;
            d.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((scale(self)?, scale(other)?))
    }

    fn equals(self, other: Decimal) -> bool {
        self.aligned(other).is_some_and(|(a, b)| a == b)
    }

    /// Whether `self` is a whole multiple of `other` (false when it cannot tell).
    fn is_multiple_of(self, other: Decimal) -> bool {
        !other.is_zero() && self.aligned(other).is_some_and(|(a, b)| a % b == 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading: JSON documents into the graph, as Everit's `SchemaLoader` reads them.

const NUMBER_KEYWORDS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern", "format"];

fn object_keywords(draft: Draft) -> &'static [&'static str] {
    const KEYWORDS: &[&str] = &[
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "dependencies",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
    ];
    match draft {
        Draft::Draft4 => &KEYWORDS[..7],
        Draft::Draft6 | Draft::Draft7 => &KEYWORDS[..8],
        Draft::Draft2019 | Draft::Draft2020 => KEYWORDS,
    }
}

fn array_keywords(draft: Draft) -> &'static [&'static str] {
    const KEYWORDS: &[&str] = &[
        "items",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "prefixItems",
        "unevaluatedItems",
        "minContains",
        "maxContains",
    ];
    match draft {
        Draft::Draft4 => &KEYWORDS[..5],
        Draft::Draft6 | Draft::Draft7 => &KEYWORDS[..6],
        Draft::Draft2019 | Draft::Draft2020 => KEYWORDS,
    }
}

/// The keyword groups a schema's `type` or its keywords select, in Everit's sniffing order.
#[derive(Clone, Copy)]
enum Group {
    Array,
    Object,
    Number,
    String,
}

/// Marks a `$ref` node whose target is not loaded yet.
const PENDING: NodeId = NodeId::MAX;

struct Loader<'d> {
    documents: &'d [Document],
    nodes: Vec<Node>,
    /// Nodes already loaded, by document and address of their JSON value: each JSON value is
    /// loaded once, which bounds the graph by the input and lets `$ref`s share nodes.
    loaded: HashMap<(usize, *const Value), NodeId>,
    /// `$ref` nodes to resolve once the tree is loaded: node, document, reference.
    pending: Vec<(NodeId, usize, String)>,
    /// Where the loader is, for error messages: document and JSON pointer tokens.
    document: usize,
    path: Vec<String>,
}

type Loaded<T> = Result<T, InvalidSchema>;

impl<'d> Loader<'d> {
    fn load(documents: &'d [Document]) -> Loaded<Graph> {
        let mut loader = Loader {
            documents,
            nodes: Vec::new(),
            loaded: HashMap::new(),
            pending: Vec::new(),
            document: 0,
            path: Vec::new(),
        };
        let root = loader.schema(0, &documents[0].value)?;
        while let Some((node, document, reference)) = loader.pending.pop() {
            loader.document = document;
            loader.path = vec![format!("$ref({reference})")];
            let target = match loader.locate(document, &reference)? {
                Some((target_document, value)) => {
                    loader.document = target_document;
                    loader.schema(target_document, value)?
                }
                None => loader.push(Kind::Empty),
            };
            loader.nodes[node].kind = Kind::Reference { target };
        }
        loader.refuse_reference_cycles()?;
        Ok(Graph {
            nodes: loader.nodes,
            root,
        })
    }

    fn error(&self, message: impl fmt::Display) -> InvalidSchema {
        let document = match &self.documents[self.document].name {
            Some(name) => format!(" in the referenced schema '{name}'"),
            None => String::new(),
        };
        InvalidSchema::new(format!(
            "Invalid JSON schema at #/{}{document}: {message}",
            self.path.join("/")
        ))
    }

    fn push(&mut self, kind: Kind) -> NodeId {
        let fingerprint = self.fingerprint(&kind);
        self.nodes.push(Node {
            meta: Meta::default(),
            kind,
            fingerprint,
        });
        self.nodes.len() - 1
    }

    /// Gives `node` the annotations of the JSON object it was loaded from.
    fn annotate(&mut self, node: NodeId, meta: Meta) -> NodeId {
        let mut hasher = DefaultHasher::new();
        self.nodes[node].fingerprint.hash(&mut hasher);
        meta.id.hash(&mut hasher);
        meta.title.hash(&mut hasher);
        meta.description.hash(&mut hasher);
        meta.default.as_ref().map(compact).hash(&mut hasher);
        meta.connect_type.hash(&mut hasher);
        self.nodes[node].fingerprint = hasher.finish();
        self.nodes[node].meta = meta;
        node
    }

    fn fingerprint(&self, kind: &Kind) -> u64 {
        let mut hasher = DefaultHasher::new();
        kind.class().hash(&mut hasher);
        let child = |id: &NodeId| self.nodes[*id].fingerprint;
        let additional = |a: &Option<Additional>| match a {
            Some(Additional::Schema(id)) => Some(Some(child(id))),
            Some(Additional::Forbidden) => Some(None),
            Some(Additional::Permitted) | None => None,
        };
        match kind {
            Kind::Empty | Kind::False | Kind::Null | Kind::Boolean | Kind::Conditional => {}
            Kind::Reference { .. } => {}
            Kind::String(s) => (s.min_length, s.max_length, &s.pattern).hash(&mut hasher),
            Kind::Number(n) => {
                n.integer.hash(&mut hasher);
                for limit in [
                    n.minimum,
                    n.maximum,
                    n.exclusive_minimum,
                    n.exclusive_maximum,
                ] {
                    limit.map(f64::to_bits).hash(&mut hasher);
                }
                n.multiple_of
                    .map(|d| (d.mantissa, d.exponent))
                    .hash(&mut hasher);
            }
            Kind::Object(o) => {
                for (name, id) in &o.properties {
                    (name, child(id)).hash(&mut hasher);
                }
                (&o.required, o.min_properties, o.max_properties).hash(&mut hasher);
                additional(&o.additional).hash(&mut hasher);
                for (pattern, _, id) in &o.pattern_properties {
                    (pattern, child(id)).hash(&mut hasher);
                }
                o.property_dependencies.hash(&mut hasher);
                for (name, id) in &o.schema_dependencies {
                    (name, child(id)).hash(&mut hasher);
                }
                o.unevaluated.as_ref().map(child).hash(&mut hasher);
            }
            Kind::Array(a) => {
                a.all_items.as_ref().map(child).hash(&mut hasher);
                for id in &a.item_schemas {
                    child(id).hash(&mut hasher);
                }
                additional(&a.additional).hash(&mut hasher);
                (a.min_items, a.max_items, a.unique_items).hash(&mut hasher);
                (a.min_contains, a.max_contains).hash(&mut hasher);
                a.unevaluated.as_ref().map(child).hash(&mut hasher);
            }
            Kind::Combined {
                criterion,
                subschemas,
            } => {
                criterion.hash(&mut hasher);
                for id in subschemas {
                    child(id).hash(&mut hasher);
                }
            }
            Kind::Enum(values) => values.hash(&mut hasher),
            Kind::Const(value) => value.hash(&mut hasher),
            Kind::Not(id) => child(id).hash(&mut hasher),
        }
        hasher.finish()
    }

    /// Loads the schema `value` of `document` (once: later calls return the same node).
    fn schema(&mut self, document: usize, value: &'d Value) -> Loaded<NodeId> {
        let key = (document, value as *const Value);
        if let Some(&id) = self.loaded.get(&key) {
            return Ok(id);
        }
        let id = match value {
            Value::Bool(true) => self.push(Kind::Empty),
            Value::Bool(false) => self.push(Kind::False),
            Value::Object(map) => self.object(document, map)?,
            other => {
                return Err(self.error(format!(
                    "a schema must be an object or a boolean, found {}",
                    node_type(other)
                )))
            }
        };
        self.loaded.insert(key, id);
        Ok(id)
    }

    /// Loads `value`, a schema found under `keyword` (path tokens for error messages).
    fn child(&mut self, document: usize, keyword: &[&str], value: &'d Value) -> Loaded<NodeId> {
        let depth = self.path.len();
        self.path
            .extend(keyword.iter().map(|token| token.to_string()));
        let id = self.schema(document, value);
        self.path.truncate(depth);
        id
    }

    /// Everit's `loadSchemaObject`: each applicable extractor contributes a part; one part is
    /// the schema, several are a synthetic `allOf`.
    fn object(&mut self, document: usize, map: &'d Map<String, Value>) -> Loaded<NodeId> {
        let draft = self.documents[document].draft;
        let meta = self.meta(draft, map)?;
        let mut parts = Vec::new();
        if let Some(reference) = map.get("$ref") {
            let Value::String(reference) = reference else {
                return Err(self.error("$ref must be a string"));
            };
            let node = self.push(Kind::Reference { target: PENDING });
            let mut hasher = DefaultHasher::new();
            reference.hash(&mut hasher);
            self.nodes[node].fingerprint = hasher.finish();
            self.pending.push((node, document, reference.clone()));
            // Up to draft-07 a $ref replaces its siblings; from 2019-09 it is one more keyword.
            if draft < Draft::Draft2019 {
                return Ok(self.annotate(node, meta));
            }
            parts.push(node);
        }
        if let Some(values) = map.get("enum") {
            let Value::Array(values) = values else {
                return Err(self.error("enum must be an array"));
            };
            let mut values: Vec<String> = values.iter().map(compact).collect();
            values.sort_unstable();
            values.dedup();
            parts.push(self.push(Kind::Enum(values)));
        }
        for criterion in [Criterion::All, Criterion::Any, Criterion::One] {
            if let Some(subschemas) = map.get(criterion.keyword()) {
                parts.push(self.combined(document, criterion, subschemas)?);
            }
        }
        if let Some(not) = map.get("not") {
            let inner = self.child(document, &["not"], not)?;
            parts.push(self.push(Kind::Not(inner)));
        }
        if let Some(value) = map.get("const").filter(|_| draft != Draft::Draft4) {
            parts.push(self.push(Kind::Const(compact(value))));
        }
        let mut consumed = [false; 4];
        if let Some(types) = map.get("type") {
            parts.push(self.typed(document, map, types, &mut consumed)?);
        }
        for group in [Group::Array, Group::Object, Group::Number, Group::String] {
            let keywords = match group {
                Group::Array => array_keywords(draft),
                Group::Object => object_keywords(draft),
                Group::Number => NUMBER_KEYWORDS,
                Group::String => STRING_KEYWORDS,
            };
            if !consumed[group as usize] && keywords.iter().any(|k| map.contains_key(*k)) {
                parts.push(self.group(document, map, group, false)?);
            }
        }
        if draft >= Draft::Draft7 && ["if", "then", "else"].iter().any(|k| map.contains_key(*k)) {
            for keyword in ["if", "then", "else"] {
                if let Some(value) = map.get(keyword) {
                    self.child(document, &[keyword], value)?;
                }
            }
            parts.push(self.push(Kind::Conditional));
        }
        let node = match parts.len() {
            0 => self.push(Kind::Empty),
            1 => parts[0],
            _ => self.push(Kind::Combined {
                criterion: Criterion::All,
                subschemas: parts,
            }),
        };
        Ok(self.annotate(node, meta))
    }

    fn meta(&self, draft: Draft, map: &Map<String, Value>) -> Loaded<Meta> {
        let text = |keyword: &str| -> Loaded<Option<String>> {
            match map.get(keyword) {
                None => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(self.error(format!("{keyword} must be a string"))),
            }
        };
        Ok(Meta {
            id: text(draft.id_keyword())?,
            title: text("title")?,
            description: text("description")?,
            default: map.get("default").cloned(),
            connect_type: map
                .get("connect.type")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn combined(
        &mut self,
        document: usize,
        criterion: Criterion,
        subschemas: &'d Value,
    ) -> Loaded<NodeId> {
        let keyword = criterion.keyword();
        let Value::Array(values) = subschemas else {
            return Err(self.error(format!("{keyword} must be an array of schemas")));
        };
        if values.is_empty() {
            return Err(self.error(format!("{keyword} must not be empty")));
        }
        let mut subschemas = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            subschemas.push(self.child(document, &[keyword, &index.to_string()], value)?);
        }
        Ok(self.push(Kind::Combined {
            criterion,
            subschemas,
        }))
    }

    /// Everit's `TypeBasedSchemaExtractor`: a type, or an `anyOf` of one per listed type.
    fn typed(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        types: &Value,
        consumed: &mut [bool; 4],
    ) -> Loaded<NodeId> {
        match types {
            Value::String(name) => self.explicit_type(document, map, name, consumed),
            Value::Array(names) => {
                let mut subschemas = Vec::with_capacity(names.len());
                for name in names {
                    let Value::String(name) = name else {
                        return Err(self.error("type must be a string or an array of strings"));
                    };
                    subschemas.push(self.explicit_type(document, map, name, consumed)?);
                }
                Ok(self.push(Kind::Combined {
                    criterion: Criterion::Any,
                    subschemas,
                }))
            }
            _ => Err(self.error("type must be a string or an array of strings")),
        }
    }

    fn explicit_type(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        name: &str,
        consumed: &mut [bool; 4],
    ) -> Loaded<NodeId> {
        let group = match name {
            "boolean" => return Ok(self.push(Kind::Boolean)),
            "null" => return Ok(self.push(Kind::Null)),
            "string" => Group::String,
            "integer" | "number" => Group::Number,
            "array" => Group::Array,
            "object" => Group::Object,
            other => return Err(self.error(format!("unknown type: [{other}]"))),
        };
        consumed[group as usize] = true;
        self.group(document, map, group, name == "integer")
    }

    fn group(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        group: Group,
        integer: bool,
    ) -> Loaded<NodeId> {
        let draft = self.documents[document].draft;
        let kind = match group {
            Group::String => Kind::String(self.string_kind(map)?),
            Group::Number => Kind::Number(self.number_kind(draft, map, integer)?),
            Group::Object => Kind::Object(Box::new(self.object_kind(document, map)?)),
            Group::Array => Kind::Array(Box::new(self.array_kind(document, map)?)),
        };
        Ok(self.push(kind))
    }

    /// A non-negative integer keyword (`minLength`, `maxItems`...).
    fn count(&self, map: &Map<String, Value>, keyword: &str) -> Loaded<Option<u64>> {
        match map.get(keyword) {
            None => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(count), _) => Ok(Some(count)),
                // Jackson reads 2.0 as a decimal that is still a valid count.
                (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(63) => {
                    Ok(Some(f as u64))
                }
                _ => Err(self.error(format!("{keyword} must be a non-negative integer"))),
            },
            Some(_) => Err(self.error(format!("{keyword} must be a non-negative integer"))),
        }
    }

    fn number(&self, map: &Map<String, Value>, keyword: &str) -> Loaded<Option<f64>> {
        match map.get(keyword) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(self.error(format!("{keyword} must be a number"))),
        }
    }

    fn string_kind(&self, map: &Map<String, Value>) -> Loaded<StringKind> {
        for keyword in ["pattern", "format"] {
            if map.get(keyword).is_some_and(|v| !v.is_string()) {
                return Err(self.error(format!("{keyword} must be a string")));
            }
        }
        Ok(StringKind {
            min_length: self.count(map, "minLength")?,
            max_length: self.count(map, "maxLength")?,
            pattern: map
                .get("pattern")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn number_kind(
        &self,
        draft: Draft,
        map: &Map<String, Value>,
        integer: bool,
    ) -> Loaded<NumberKind> {
        let mut number = NumberKind {
            integer,
            minimum: self.number(map, "minimum")?,
            maximum: self.number(map, "maximum")?,
            ..NumberKind::default()
        };
        if draft == Draft::Draft4 {
            // Draft-04's exclusive limits are flags on minimum and maximum, which Confluent's
            // comparison does not look at.
            for keyword in ["exclusiveMinimum", "exclusiveMaximum"] {
                if map.get(keyword).is_some_and(|v| !v.is_boolean()) {
                    return Err(self.error(format!("{keyword} must be a boolean in draft-04")));
                }
            }
        } else {
            number.exclusive_minimum = self.number(map, "exclusiveMinimum")?;
            number.exclusive_maximum = self.number(map, "exclusiveMaximum")?;
        }
        if let Some(multiple_of) = map.get("multipleOf") {
            let Value::Number(multiple_of) = multiple_of else {
                return Err(self.error("multipleOf must be a number"));
            };
            let decimal = Decimal::parse(multiple_of)
                .ok_or_else(|| self.error("multipleOf is out of range"))?;
            if decimal.is_zero() {
                return Err(self.error("multipleOf should not be 0"));
            }
            number.multiple_of = Some(decimal);
        }
        Ok(number)
    }

    /// An object of schemas (`properties`, `patternProperties`, `dependentSchemas`...).
    fn schema_map(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        keyword: &str,
    ) -> Loaded<Vec<(String, NodeId)>> {
        let Some(value) = map.get(keyword) else {
            return Ok(Vec::new());
        };
        let Value::Object(entries) = value else {
            return Err(self.error(format!("{keyword} must be an object of schemas")));
        };
        let mut schemas = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            schemas.push((name.clone(), self.child(document, &[keyword, name], value)?));
        }
        Ok(schemas)
    }

    fn strings(&self, value: &Value, keyword: &str) -> Loaded<Vec<String>> {
        let error = || self.error(format!("{keyword} must be an array of strings"));
        let Value::Array(items) = value else {
            return Err(error());
        };
        items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(error))
            .collect()
    }

    fn additional(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        keyword: &str,
    ) -> Loaded<Option<Additional>> {
        Ok(match map.get(keyword) {
            None => None,
            Some(Value::Bool(true)) => Some(Additional::Permitted),
            Some(Value::Bool(false)) => Some(Additional::Forbidden),
            Some(value) => Some(Additional::Schema(self.child(
                document,
                &[keyword],
                value,
            )?)),
        })
    }

    fn optional_child(
        &mut self,
        document: usize,
        map: &'d Map<String, Value>,
        keyword: &str,
    ) -> Loaded<Option<NodeId>> {
        match map.get(keyword) {
            None => Ok(None),
            Some(value) => Ok(Some(self.child(document, &[keyword], value)?)),
        }
    }

    fn object_kind(&mut self, document: usize, map: &'d Map<String, Value>) -> Loaded<ObjectKind> {
        let draft = self.documents[document].draft;
        let mut object = ObjectKind {
            properties: self.schema_map(document, map, "properties")?,
            min_properties: self.count(map, "minProperties")?,
            max_properties: self.count(map, "maxProperties")?,
            additional: self.additional(document, map, "additionalProperties")?,
            ..ObjectKind::default()
        };
        if let Some(required) = map.get("required") {
            object.required = self.strings(required, "required")?;
        }
        for (pattern, schema) in self.schema_map(document, map, "patternProperties")? {
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(REGEX_BYTES_MAX)
                .build()
                .ok();
            object.pattern_properties.push((pattern, regex, schema));
        }
        if let Some(dependencies) = map.get("dependencies") {
            let Value::Object(dependencies) = dependencies else {
                return Err(self.error("dependencies must be an object"));
            };
            for (name, value) in dependencies {
                if value.is_array() {
                    let names = self.strings(value, &format!("dependencies/{name}"))?;
                    object.property_dependencies.push((name.clone(), names));
                } else {
                    let schema = self.child(document, &["dependencies", name], value)?;
                    object.schema_dependencies.push((name.clone(), schema));
                }
            }
        }
        if draft >= Draft::Draft6 {
            self.optional_child(document, map, "propertyNames")?;
        }
        if draft >= Draft::Draft2019 {
            if let Some(Value::Object(required)) = map.get("dependentRequired") {
                for (name, value) in required {
                    let names = self.strings(value, &format!("dependentRequired/{name}"))?;
                    object.property_dependencies.push((name.clone(), names));
                }
            } else if map.contains_key("dependentRequired") {
                return Err(self.error("dependentRequired must be an object"));
            }
            let schemas = self.schema_map(document, map, "dependentSchemas")?;
            object.schema_dependencies.extend(schemas);
            object.unevaluated = self.optional_child(document, map, "unevaluatedProperties")?;
        }
        for (_, names) in &mut object.property_dependencies {
            names.sort_unstable();
            names.dedup();
        }
        Ok(object)
    }

    fn array_kind(&mut self, document: usize, map: &'d Map<String, Value>) -> Loaded<ArrayKind> {
        let draft = self.documents[document].draft;
        let mut array = ArrayKind {
            min_items: self.count(map, "minItems")?,
            max_items: self.count(map, "maxItems")?,
            ..ArrayKind::default()
        };
        match map.get("uniqueItems") {
            None => {}
            Some(Value::Bool(unique)) => array.unique_items = *unique,
            Some(_) => return Err(self.error("uniqueItems must be a boolean")),
        }
        match (draft, map.get("items")) {
            // 2020-12's items is what follows prefixItems: Confluent's translation makes
            // false forbid additional items, ignores true, and makes a schema the schema of
            // every item, or of those after prefixItems when there are some.
            (Draft::Draft2020, Some(Value::Bool(false))) => {
                array.additional = Some(Additional::Forbidden)
            }
            (Draft::Draft2020, Some(Value::Bool(true)) | None) => {}
            (Draft::Draft2020, Some(items)) if !items.is_array() => {
                let id = self.child(document, &["items"], items)?;
                if map.contains_key("prefixItems") {
                    array.additional = Some(Additional::Schema(id));
                } else {
                    array.all_items = Some(id);
                }
            }
            (_, Some(Value::Array(items))) => {
                for (index, item) in items.iter().enumerate() {
                    let id = self.child(document, &["items", &index.to_string()], item)?;
                    array.item_schemas.push(id);
                }
                array.additional = self.additional(document, map, "additionalItems")?;
            }
            (_, items) => {
                if let Some(items) = items {
                    array.all_items = Some(self.child(document, &["items"], items)?);
                }
                array.additional = self.additional(document, map, "additionalItems")?;
            }
        }
        if draft == Draft::Draft2020 {
            if let Some(prefix) = map.get("prefixItems") {
                let Value::Array(prefix) = prefix else {
                    return Err(self.error("prefixItems must be an array of schemas"));
                };
                for (index, item) in prefix.iter().enumerate() {
                    let id = self.child(document, &["prefixItems", &index.to_string()], item)?;
                    array.item_schemas.push(id);
                }
            }
        }
        if draft >= Draft::Draft6 {
            self.optional_child(document, map, "contains")?;
        }
        if draft >= Draft::Draft2019 {
            array.min_contains = self.count(map, "minContains")?;
            array.max_contains = self.count(map, "maxContains")?;
            array.unevaluated = self.optional_child(document, map, "unevaluatedItems")?;
        } else {
            // Before 2019-09 these are unknown keywords, which Everit keeps as they are and
            // Confluent still compares when they are numbers.
            let number = |k: &str| map.get(k).and_then(Value::as_u64);
            array.min_contains = number("minContains");
            array.max_contains = number("maxContains");
        }
        Ok(array)
    }
}

// ---------------------------------------------------------------------------------------------
// Resolving `$ref`s.

impl<'d> Loader<'d> {
    /// The document and value a `$ref` found in `document` names; None for a JSON Schema
    /// meta-schema, which Confluent resolves from bundled copies and which describes any schema.
    fn locate(&self, document: usize, reference: &str) -> Loaded<Option<(usize, &'d Value)>> {
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if base.is_empty() {
            document
        } else if Draft::from_url(base).is_some() || base.starts_with("https://json-schema.org/") {
            return Ok(None);
        } else {
            self.document_named(base).ok_or_else(|| {
                self.error(format!(
                    "the $ref '{reference}' names no schema this one references (its \
                     references must name each schema a $ref points to)"
                ))
            })?
        };
        let root: &'d Value = &self.documents[target].value;
        let value = if fragment.is_empty() {
            Some(root)
        } else if fragment.starts_with('/') {
            pointer(root, fragment)
        } else {
            anchor(root, self.documents[target].draft, fragment)
        };
        match value {
            Some(value) => Ok(Some((target, value))),
            None => Err(self.error(format!("the $ref '{reference}' points to nothing"))),
        }
    }

    /// The document a `$ref` URL names: a dependency by its name (Confluent registers each
    /// one under its name, also resolved against the root schema's `$id`), or the root
    /// schema by its own `$id`.
    fn document_named(&self, url: &str) -> Option<usize> {
        let root_id = match &*self.documents[0].value {
            Value::Object(map) => map
                .get(self.documents[0].draft.id_keyword())
                .and_then(Value::as_str),
            _ => None,
        };
        let resolved = |name: &str| resolve_url(root_id, name.trim_start_matches("./"));
        let wanted = resolved(url);
        let found = self.documents[1..].iter().position(|document| {
            document
                .name
                .as_deref()
                .is_some_and(|n| resolved(n) == wanted)
        });
        match found {
            Some(index) => Some(index + 1),
            None if root_id.is_some_and(|id| resolved(id) == wanted) => Some(0),
            None => None,
        }
    }

    /// Refuses `$ref`s that lead only to other `$ref`s, round in a circle: they describe no
    /// schema, and following them would never end. Linear: each node is walked once.
    fn refuse_reference_cycles(&self) -> Loaded<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Unvisited,
            OnPath,
            Done,
        }
        let mut marks = vec![Mark::Unvisited; self.nodes.len()];
        for start in 0..self.nodes.len() {
            let mut chain = Vec::new();
            let mut at = start;
            while let Kind::Reference { target } = self.nodes[at].kind {
                match marks[at] {
                    Mark::Done => break,
                    Mark::OnPath => {
                        return Err(InvalidSchema::new(
                            "Invalid JSON schema: a cycle of $refs never reaches a schema",
                        ))
                    }
                    Mark::Unvisited => {
                        marks[at] = Mark::OnPath;
                        chain.push(at);
                        at = target;
                    }
                }
            }
            for node in chain {
                marks[node] = Mark::Done;
            }
        }
        Ok(())
    }
}

/// `name` resolved against the URL `base` (RFC 3986, for the relative forms schemas use).
fn resolve_url(base: Option<&str>, name: &str) -> String {
    let Some(base) = base else {
        return name.to_string();
    };
    if name.contains("://") || base.is_empty() {
        return name.to_string();
    }
    let base = base.split('#').next().unwrap_or(base);
    match base.rfind('/') {
        Some(slash) if name.starts_with('/') => {
            let authority_end = base
                .find("://")
                .and_then(|scheme| base[scheme + 3..].find('/').map(|at| at + scheme + 3))
                .unwrap_or(slash);
            format!("{}{name}", &base[..authority_end])
        }
        Some(slash) => format!("{}{name}", &base[..=slash]),
        None => name.to_string(),
    }
}

/// The value a JSON pointer fragment (`/a/b~1c/0`, percent-encoded) names in `root`. A
/// pointer into `$defs` that finds nothing there also looks in `definitions`, as Confluent
/// copies a schema's `definitions` into its `$defs` before loading it.
fn pointer<'v>(root: &'v Value, fragment: &str) -> Option<&'v Value> {
    let mut at = root;
    for (index, token) in fragment.split('/').skip(1).enumerate() {
        let token = percent_decode(token)?.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(map) => match map.get(&token) {
                Some(value) => value,
                None if index == 0 && token == "$defs" => map.get("definitions")?,
                None => return None,
            },
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The subschema a plain-name fragment names: `$anchor` (2019-09 on) or an id of `#name`.
fn anchor<'v>(root: &'v Value, draft: Draft, name: &str) -> Option<&'v Value> {
    let with_hash = format!("#{name}");
    let mut stack = vec![root];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                let id = map.get(draft.id_keyword()).and_then(Value::as_str);
                let anchor = map.get("$anchor").and_then(Value::as_str);
                if id == Some(with_hash.as_str()) || anchor == Some(name) {
                    return Some(value);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Comparing: Confluent's `io.confluent.kafka.schemaregistry.json.diff`.

mod diff {
    use super::*;
    use std::rc::Rc;

    macro_rules! difference_types {
        ($($variant:ident = $name:literal,)*) => {
            /// Confluent's `Difference.Type`: what changed between two schemas.
            #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
            pub(super) enum Change { $($variant,)* }

            impl Change {
                /// The name Confluent's messages give it.
                pub(super) fn name(self) -> &'static str {
                    match self { $(Change::$variant => $name,)* }
                }
            }
        };
    }

    difference_types! {
        IdChanged = "ID_CHANGED",
        DescriptionChanged = "DESCRIPTION_CHANGED",
        TitleChanged = "TITLE_CHANGED",
        DefaultChanged = "DEFAULT_CHANGED",
        SchemaAdded = "SCHEMA_ADDED",
        SchemaRemoved = "SCHEMA_REMOVED",
        TypeExtended = "TYPE_EXTENDED",
        TypeNarrowed = "TYPE_NARROWED",
        TypeChanged = "TYPE_CHANGED",
        MaxLengthAdded = "MAX_LENGTH_ADDED",
        MaxLengthRemoved = "MAX_LENGTH_REMOVED",
        MaxLengthIncreased = "MAX_LENGTH_INCREASED",
        MaxLengthDecreased = "MAX_LENGTH_DECREASED",
        MinLengthAdded = "MIN_LENGTH_ADDED",
        MinLengthRemoved = "MIN_LENGTH_REMOVED",
        MinLengthIncreased = "MIN_LENGTH_INCREASED",
        MinLengthDecreased = "MIN_LENGTH_DECREASED",
        PatternAdded = "PATTERN_ADDED",
        PatternRemoved = "PATTERN_REMOVED",
        PatternChanged = "PATTERN_CHANGED",
        MaximumAdded = "MAXIMUM_ADDED",
        MaximumRemoved = "MAXIMUM_REMOVED",
        MaximumIncreased = "MAXIMUM_INCREASED",
        MaximumDecreased = "MAXIMUM_DECREASED",
        MinimumAdded = "MINIMUM_ADDED",
        MinimumRemoved = "MINIMUM_REMOVED",
        MinimumIncreased = "MINIMUM_INCREASED",
        MinimumDecreased = "MINIMUM_DECREASED",
        ExclusiveMaximumAdded = "EXCLUSIVE_MAXIMUM_ADDED",
        ExclusiveMaximumRemoved = "EXCLUSIVE_MAXIMUM_REMOVED",
        ExclusiveMaximumIncreased = "EXCLUSIVE_MAXIMUM_INCREASED",
        ExclusiveMaximumDecreased = "EXCLUSIVE_MAXIMUM_DECREASED",
        ExclusiveMinimumAdded = "EXCLUSIVE_MINIMUM_ADDED",
        ExclusiveMinimumRemoved = "EXCLUSIVE_MINIMUM_REMOVED",
        ExclusiveMinimumIncreased = "EXCLUSIVE_MINIMUM_INCREASED",
        ExclusiveMinimumDecreased = "EXCLUSIVE_MINIMUM_DECREASED",
        MultipleOfAdded = "MULTIPLE_OF_ADDED",
        MultipleOfRemoved = "MULTIPLE_OF_REMOVED",
        MultipleOfExpanded = "MULTIPLE_OF_EXPANDED",
        MultipleOfReduced = "MULTIPLE_OF_REDUCED",
        MultipleOfChanged = "MULTIPLE_OF_CHANGED",
        RequiredAttributeAdded = "REQUIRED_ATTRIBUTE_ADDED",
        RequiredAttributeWithDefaultAdded = "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        RequiredAttributeRemoved = "REQUIRED_ATTRIBUTE_REMOVED",
        MaxPropertiesAdded = "MAX_PROPERTIES_ADDED",
        MaxPropertiesRemoved = "MAX_PROPERTIES_REMOVED",
        MaxPropertiesIncreased = "MAX_PROPERTIES_INCREASED",
        MaxPropertiesDecreased = "MAX_PROPERTIES_DECREASED",
        MinPropertiesAdded = "MIN_PROPERTIES_ADDED",
        MinPropertiesRemoved = "MIN_PROPERTIES_REMOVED",
        MinPropertiesIncreased = "MIN_PROPERTIES_INCREASED",
        MinPropertiesDecreased = "MIN_PROPERTIES_DECREASED",
        AdditionalPropertiesAdded = "ADDITIONAL_PROPERTIES_ADDED",
        AdditionalPropertiesRemoved = "ADDITIONAL_PROPERTIES_REMOVED",
        AdditionalPropertiesExtended = "ADDITIONAL_PROPERTIES_EXTENDED",
        AdditionalPropertiesNarrowed = "ADDITIONAL_PROPERTIES_NARROWED",
        DependencyArrayAdded = "DEPENDENCY_ARRAY_ADDED",
        DependencyArrayRemoved = "DEPENDENCY_ARRAY_REMOVED",
        DependencyArrayExtended = "DEPENDENCY_ARRAY_EXTENDED",
        DependencyArrayNarrowed = "DEPENDENCY_ARRAY_NARROWED",
        DependencyArrayChanged = "DEPENDENCY_ARRAY_CHANGED",
        DependencySchemaAdded = "DEPENDENCY_SCHEMA_ADDED",
        DependencySchemaRemoved = "DEPENDENCY_SCHEMA_REMOVED",
        RequiredPropertyAddedToOpenContentModel = "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        RequiredPropertyWithDefaultAddedToOpenContentModel =
            "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL",
        OptionalPropertyAddedToOpenContentModel = "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        PropertyWithEmptySchemaAddedToOpenContentModel =
            "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        RequiredPropertyAddedToUnopenContentModel =
            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        RequiredPropertyWithDefaultAddedToUnopenContentModel =
            "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        OptionalPropertyAddedToUnopenContentModel =
            "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        PropertyRemovedFromOpenContentModel = "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        PropertyWithFalseRemovedFromClosedContentModel =
            "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        PropertyRemovedFromClosedContentModel = "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        PropertyRemovedIsCoveredByPartiallyOpenContentModel =
            "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        PropertyRemovedNotCoveredByPartiallyOpenContentModel =
            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        PropertyAddedIsCoveredByPartiallyOpenContentModel =
            "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        PropertyAddedNotCoveredByPartiallyOpenContentModel =
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        UnevaluatedPropertiesAdded = "UNEVALUATED_PROPERTIES_ADDED",
        UnevaluatedPropertiesRemoved = "UNEVALUATED_PROPERTIES_REMOVED",
        UnevaluatedPropertiesExtended = "UNEVALUATED_PROPERTIES_EXTENDED",
        UnevaluatedPropertiesNarrowed = "UNEVALUATED_PROPERTIES_NARROWED",
        MaxItemsAdded = "MAX_ITEMS_ADDED",
        MaxItemsRemoved = "MAX_ITEMS_REMOVED",
        MaxItemsIncreased = "MAX_ITEMS_INCREASED",
        MaxItemsDecreased = "MAX_ITEMS_DECREASED",
        MinItemsAdded = "MIN_ITEMS_ADDED",
        MinItemsRemoved = "MIN_ITEMS_REMOVED",
        MinItemsIncreased = "MIN_ITEMS_INCREASED",
        MinItemsDecreased = "MIN_ITEMS_DECREASED",
        MaxContainsAdded = "MAX_CONTAINS_ADDED",
        MaxContainsRemoved = "MAX_CONTAINS_REMOVED",
        MaxContainsIncreased = "MAX_CONTAINS_INCREASED",
        MaxContainsDecreased = "MAX_CONTAINS_DECREASED",
        MinContainsAdded = "MIN_CONTAINS_ADDED",
        MinContainsRemoved = "MIN_CONTAINS_REMOVED",
        MinContainsIncreased = "MIN_CONTAINS_INCREASED",
        MinContainsDecreased = "MIN_CONTAINS_DECREASED",
        UniqueItemsAdded = "UNIQUE_ITEMS_ADDED",
        UniqueItemsRemoved = "UNIQUE_ITEMS_REMOVED",
        AdditionalItemsAdded = "ADDITIONAL_ITEMS_ADDED",
        AdditionalItemsRemoved = "ADDITIONAL_ITEMS_REMOVED",
        AdditionalItemsExtended = "ADDITIONAL_ITEMS_EXTENDED",
        AdditionalItemsNarrowed = "ADDITIONAL_ITEMS_NARROWED",
        UnevaluatedItemsAdded = "UNEVALUATED_ITEMS_ADDED",
        UnevaluatedItemsRemoved = "UNEVALUATED_ITEMS_REMOVED",
        UnevaluatedItemsExtended = "UNEVALUATED_ITEMS_EXTENDED",
        UnevaluatedItemsNarrowed = "UNEVALUATED_ITEMS_NARROWED",
        ItemAddedToOpenContentModel = "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
        ItemWithEmptySchemaAddedToOpenContentModel =
            "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        ItemAddedToClosedContentModel = "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        ItemRemovedFromOpenContentModel = "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        ItemWithFalseRemovedFromClosedContentModel =
            "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        ItemRemovedFromClosedContentModel = "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        ItemRemovedIsCoveredByPartiallyOpenContentModel =
            "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        ItemRemovedNotCoveredByPartiallyOpenContentModel =
            "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        ItemAddedIsCoveredByPartiallyOpenContentModel =
            "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        ItemAddedNotCoveredByPartiallyOpenContentModel =
            "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        EnumArrayExtended = "ENUM_ARRAY_EXTENDED",
        EnumArrayNarrowed = "ENUM_ARRAY_NARROWED",
        EnumArrayChanged = "ENUM_ARRAY_CHANGED",
        CombinedTypeExtended = "COMBINED_TYPE_EXTENDED",
        CombinedTypeChanged = "COMBINED_TYPE_CHANGED",
        ProductTypeExtended = "PRODUCT_TYPE_EXTENDED",
        ProductTypeNarrowed = "PRODUCT_TYPE_NARROWED",
        SumTypeExtended = "SUM_TYPE_EXTENDED",
        SumTypeNarrowed = "SUM_TYPE_NARROWED",
        CombinedTypeSubschemasChanged = "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
        NotTypeExtended = "NOT_TYPE_EXTENDED",
        NotTypeNarrowed = "NOT_TYPE_NARROWED",
    }

    use Change::*;

    impl Change {
        /// Confluent's `SchemaDiff.COMPATIBLE_CHANGES_STRICT`, the default policy.
        pub(super) fn is_compatible(self) -> bool {
            matches!(
                self,
                IdChanged
                    | DescriptionChanged
                    | TitleChanged
                    | DefaultChanged
                    | SchemaRemoved
                    | TypeExtended
                    | MaxLengthIncreased
                    | MaxLengthRemoved
                    | MinLengthDecreased
                    | MinLengthRemoved
                    | PatternRemoved
                    | MaximumIncreased
                    | MaximumRemoved
                    | MinimumDecreased
                    | MinimumRemoved
                    | ExclusiveMaximumIncreased
                    | ExclusiveMaximumRemoved
                    | ExclusiveMinimumDecreased
                    | ExclusiveMinimumRemoved
                    | MultipleOfReduced
                    | MultipleOfRemoved
                    | RequiredAttributeWithDefaultAdded
                    | RequiredAttributeRemoved
                    | DependencyArrayNarrowed
                    | DependencyArrayRemoved
                    | DependencySchemaRemoved
                    | MaxPropertiesIncreased
                    | MaxPropertiesRemoved
                    | MinPropertiesDecreased
                    | MinPropertiesRemoved
                    | AdditionalPropertiesAdded
                    | AdditionalPropertiesExtended
                    | UnevaluatedPropertiesAdded
                    | UnevaluatedPropertiesExtended
                    | PropertyWithEmptySchemaAddedToOpenContentModel
                    | RequiredPropertyWithDefaultAddedToUnopenContentModel
                    | OptionalPropertyAddedToUnopenContentModel
                    | PropertyWithFalseRemovedFromClosedContentModel
                    | PropertyRemovedFromOpenContentModel
                    | PropertyAddedIsCoveredByPartiallyOpenContentModel
                    | PropertyRemovedIsCoveredByPartiallyOpenContentModel
                    | MaxItemsIncreased
                    | MaxItemsRemoved
                    | MinItemsDecreased
                    | MinItemsRemoved
                    | MaxContainsIncreased
                    | MaxContainsRemoved
                    | MinContainsDecreased
                    | MinContainsRemoved
                    | UniqueItemsRemoved
                    | AdditionalItemsAdded
                    | AdditionalItemsExtended
                    | UnevaluatedItemsAdded
                    | UnevaluatedItemsExtended
                    | ItemWithEmptySchemaAddedToOpenContentModel
                    | ItemAddedToClosedContentModel
                    | ItemWithFalseRemovedFromClosedContentModel
                    | ItemRemovedFromOpenContentModel
                    | ItemAddedIsCoveredByPartiallyOpenContentModel
                    | ItemRemovedIsCoveredByPartiallyOpenContentModel
                    | EnumArrayExtended
                    | CombinedTypeExtended
                    | ProductTypeNarrowed
                    | SumTypeExtended
                    | NotTypeNarrowed
            )
        }
    }

    /// A difference at a JSON path (`#/properties/a`) of the schemas compared.
    #[derive(Clone, Debug, PartialEq)]
    pub(super) struct Difference {
        pub(super) kind: Change,
        pub(super) path: String,
    }

    impl Difference {
        /// Confluent's `Difference.toString()` with its `%s`s filled in by the registry's
        /// `formatErrorMessages` (reader first, writer second). The closing `'}` after a `"`
        /// is Confluent's text as it is.
        pub(super) fn message(&self, reader: &str, writer: &str) -> String {
            format!(
                "{{errorType:\"{}\", description:\"{}'}}",
                self.kind.name(),
                self.description(reader, writer)
            )
        }

        fn description(&self, reader: &str, writer: &str) -> String {
            let path = &self.path;
            match self.kind {
                MaximumAdded
                | MinimumAdded
                | ExclusiveMaximumAdded
                | ExclusiveMinimumAdded
                | MultipleOfAdded
                | MaxLengthAdded
                | MinLengthAdded
                | PatternAdded
                | RequiredAttributeAdded
                | MaxPropertiesAdded
                | MinPropertiesAdded
                | DependencyArrayAdded
                | DependencySchemaAdded
                | MaxItemsAdded
                | MinItemsAdded
                | MaxContainsAdded
                | MinContainsAdded
                | UniqueItemsAdded
                | AdditionalItemsRemoved
                | AdditionalPropertiesRemoved
                | UnevaluatedPropertiesRemoved
                | UnevaluatedItemsRemoved => format!(
                    "The keyword at path '{path}' in the {reader} schema is not present in the \
                     {writer} schema"
                ),
                MinLengthIncreased
                | MinimumIncreased
                | ExclusiveMinimumIncreased
                | MinPropertiesIncreased
                | MultipleOfExpanded
                | MinItemsIncreased
                | MinContainsIncreased => format!(
                    "The value at path '{path}' in the {reader} schema is more than its value in \
                     the {writer} schema"
                ),
                MaxLengthDecreased
                | MaximumDecreased
                | MaxItemsDecreased
                | MaxContainsDecreased
                | ExclusiveMaximumDecreased
                | MaxPropertiesDecreased => {
                    format!(
                        "The value at path '{path}' in the {reader} schema is less than its value \
                         in the {writer} schema"
                    )
                }
                PatternChanged | MultipleOfChanged | DependencyArrayChanged => format!(
                    "The value at path '{path}' is different between the {reader} and {writer} \
                     schema"
                ),
                AdditionalItemsNarrowed
                | EnumArrayNarrowed
                | SumTypeNarrowed
                | AdditionalPropertiesNarrowed
                | UnevaluatedPropertiesNarrowed
                | UnevaluatedItemsNarrowed => format!(
                    "An array or combined type at path '{path}' has fewer elements in the \
                     {reader} schema than the {writer} schema"
                ),
                DependencyArrayExtended
                | ProductTypeExtended
                | SumTypeExtended
                | NotTypeExtended => format!(
                    "An array or combined type at path '{path}' has more elements in the \
                     {reader} schema than the {writer} schema"
                ),
                TypeChanged
                | TypeNarrowed
                | CombinedTypeChanged
                | CombinedTypeSubschemasChanged
                | EnumArrayChanged => format!(
                    "A type at path '{path}' is different between the {reader} schema and the \
                     {writer} schema"
                ),
                RequiredPropertyAddedToOpenContentModel
                | RequiredPropertyWithDefaultAddedToOpenContentModel
                | OptionalPropertyAddedToOpenContentModel
                | ItemAddedToOpenContentModel => format!(
                    "The {reader} schema has an open content model and has a property or item at \
                     path '{path}' which is missing in the {writer} schema"
                ),
                RequiredPropertyAddedToUnopenContentModel => format!(
                    "The {reader} schema has an unopen content model and has a required property \
                     at path '{path}' which is missing in the {writer} schema"
                ),
                PropertyRemovedFromClosedContentModel | ItemRemovedFromClosedContentModel => {
                    format!(
                        "The {reader} has a closed content model and is missing a property or \
                         item present at path '{path}' in the {writer} schema"
                    )
                }
                PropertyRemovedNotCoveredByPartiallyOpenContentModel
                | ItemRemovedNotCoveredByPartiallyOpenContentModel => format!(
                    "A property or item is missing in the {reader} schema but present at path \
                     '{path}' in the {writer} schema and is not covered by its partially open \
                     content model"
                ),
                PropertyAddedNotCoveredByPartiallyOpenContentModel
                | ItemAddedNotCoveredByPartiallyOpenContentModel => format!(
                    "The {reader} schema has a property or item at path '{path}' which is missing \
                     in the {writer} schema and is not covered by its partially open content model"
                ),
                _ => String::new(),
            }
        }
    }

    /// The comparison gave up: see [`COMPARISONS_MAX`] and [`COMPARISON_DEPTH_MAX`].
    #[derive(Debug)]
    pub(super) struct TooLarge;

    /// Confluent's `SchemaDiff.compare(original, update)`: every difference from `original`
    /// (the schema data was written with) to `update` (the schema reading it).
    ///
    /// Cycles through recursive types are cut by assuming a pair already being compared is
    /// compatible; as a pair can then be memoised as compatible under an assumption that later
    /// proves wrong, the comparison is repeated with the pairs found incompatible fed back,
    /// until that set stops growing (Confluent's greatest-fixed-point iteration).
    pub(super) fn differences(
        original: &Graph,
        update: &Graph,
    ) -> Result<Vec<Difference>, TooLarge> {
        let mut seed: HashMap<Pair, Rc<[Difference]>> = HashMap::new();
        let mut work = 0;
        loop {
            let mut comparison = Comparison {
                graphs: [original, update],
                memo: HashMap::new(),
                in_progress: HashSet::new(),
                seed: &seed,
                optimism_used: false,
                work: &mut work,
                depth: 0,
                too_large: false,
            };
            let mut context = Context::default();
            let roots = (
                At::new(Side::Original, original.root),
                At::new(Side::Update, update.root),
            );
            comparison.compare(&mut context, Some(roots.0), Some(roots.1));
            if comparison.too_large {
                return Err(TooLarge);
            }
            let incompatible: HashMap<Pair, Rc<[Difference]>> = comparison
                .memo
                .iter()
                .filter(|(_, differences)| differences.iter().any(|d| !d.kind.is_compatible()))
                .map(|(pair, differences)| (*pair, differences.clone()))
                .collect();
            let same = incompatible.len() == seed.len()
                && incompatible.keys().all(|pair| seed.contains_key(pair));
            if !comparison.optimism_used || same {
                return Ok(context.differences);
            }
            seed = incompatible;
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    enum Side {
        Original = 0,
        Update = 1,
    }

    /// A node of one of the two graphs compared (a `not` swaps them round).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    struct At {
        side: Side,
        id: NodeId,
    }

    impl At {
        fn new(side: Side, id: NodeId) -> At {
            At { side, id }
        }

        /// Another node of the same graph.
        fn to(self, id: NodeId) -> At {
            At {
                side: self.side,
                id,
            }
        }
    }

    type Pair = (At, At);

    /// Confluent's `Context`: where the comparison is, and what it found there.
    #[derive(Default)]
    struct Context {
        path: Vec<String>,
        differences: Vec<Difference>,
    }

    impl Context {
        /// A context at the same path that collects its differences apart.
        fn sub(&self) -> Context {
            Context {
                path: self.path.clone(),
                differences: Vec::new(),
            }
        }

        fn path(&self) -> String {
            format!("#/{}", self.path.join("/"))
        }

        fn add(&mut self, kind: Change) {
            let path = self.path();
            self.differences.push(Difference { kind, path });
        }

        fn add_at(&mut self, attribute: &str, kind: Change) {
            self.path.push(attribute.to_string());
            self.add(kind);
            self.path.pop();
        }

        fn is_compatible(&self) -> bool {
            self.differences.iter().all(|d| d.kind.is_compatible())
        }

        /// Adds differences found from a pair compared at the root, moved under this path.
        fn add_rebased(&mut self, relative: &[Difference]) {
            if self.path.is_empty() {
                self.differences.extend_from_slice(relative);
                return;
            }
            let prefix = self.path();
            for difference in relative {
                let path = match difference.path.get(2..) {
                    Some(rest) if !rest.is_empty() => format!("{prefix}/{rest}"),
                    _ => prefix.clone(),
                };
                self.differences.push(Difference {
                    kind: difference.kind,
                    path,
                });
            }
        }

        fn limit<T: PartialOrd>(
            &mut self,
            attribute: &str,
            original: Option<T>,
            update: Option<T>,
            [added, removed, increased, decreased]: [Change; 4],
        ) {
            match (original, update) {
                (None, Some(_)) => self.add_at(attribute, added),
                (Some(_), None) => self.add_at(attribute, removed),
                (Some(o), Some(u)) if o < u => self.add_at(attribute, increased),
                (Some(o), Some(u)) if o > u => self.add_at(attribute, decreased),
                _ => {}
            }
        }
    }

    struct Comparison<'g, 's> {
        graphs: [&'g Graph; 2],
        /// Differences of each pair compared, relative to the pair.
        memo: HashMap<Pair, Rc<[Difference]>>,
        /// Pairs being compared further up the stack: meeting one again is a cycle.
        in_progress: HashSet<Pair>,
        /// Pairs a previous pass found incompatible.
        seed: &'s HashMap<Pair, Rc<[Difference]>>,
        optimism_used: bool,
        work: &'s mut usize,
        depth: usize,
        too_large: bool,
    }

    impl<'g> Comparison<'g, '_> {
        fn node(&self, at: At) -> &'g Node {
            &self.graphs[at.side as usize].nodes[at.id]
        }

        fn resolve(&self, at: At) -> At {
            at.to(self.graphs[at.side as usize].resolve(at.id))
        }

        /// Confluent's `SchemaDiff.compare(ctx, original, update)`.
        fn compare(&mut self, context: &mut Context, original: Option<At>, update: Option<At>) {
            let (original, update) = match (original, update) {
                (None, None) => return,
                (None, Some(_)) => return context.add(SchemaAdded),
                (Some(_), None) => return context.add(SchemaRemoved),
                (Some(original), Some(update)) => (original, update),
            };
            *self.work += 1;
            if self.too_large || *self.work > COMPARISONS_MAX {
                self.too_large = true;
                return;
            }
            let pair = (self.resolve(original), self.resolve(update));
            if let Some(known) = self.memo.get(&pair).cloned() {
                return context.add_rebased(&known);
            }
            if !self.in_progress.insert(pair) {
                match self.seed.get(&pair) {
                    Some(known) => context.add_rebased(known),
                    None => self.optimism_used = true,
                }
                return;
            }
            self.depth += 1;
            if self.depth > COMPARISON_DEPTH_MAX {
                self.too_large = true;
            } else {
                let mut relative = Context::default();
                self.compare_types(&mut relative, pair.0, pair.1);
                let differences: Rc<[Difference]> = relative.differences.into();
                context.add_rebased(&differences);
                self.memo.insert(pair, differences);
            }
            self.depth -= 1;
            self.in_progress.remove(&pair);
        }

        /// Compares `original` with each branch of the combined `update` (or the other way
        /// round): the first compatible one is the whole comparison's result.
        fn compare_with_branches(
            &mut self,
            context: &mut Context,
            original: At,
            update: At,
        ) -> bool {
            let (original_node, update_node) = (self.node(original), self.node(update));
            let (combined, single, original_is_combined) =
                match (&original_node.kind, &update_node.kind) {
                    (Kind::Combined { .. }, Kind::Combined { .. }) => return false,
                    (
                        _,
                        Kind::Combined {
                            criterion,
                            subschemas,
                        },
                    ) => ((criterion, subschemas, update), original, false),
                    (
                        Kind::Combined {
                            criterion,
                            subschemas,
                        },
                        _,
                    ) => ((criterion, subschemas, original), update, true),
                    _ => return false,
                };
            let (criterion, subschemas, combined_at) = combined;
            let wanted = if original_is_combined {
                Criterion::All
            } else {
                Criterion::Any
            };
            let applies = subschemas.len() == 1
                || *criterion == wanted
                || (!original_is_combined && *criterion == Criterion::One);
            if !applies {
                return false;
            }
            for &branch in subschemas {
                let branch = combined_at.to(branch);
                let mut sub = context.sub();
                if original_is_combined {
                    self.compare(&mut sub, Some(branch), Some(single));
                } else {
                    self.compare(&mut sub, Some(single), Some(branch));
                }
                if sub.is_compatible() {
                    context.differences.extend(sub.differences);
                    if subschemas.len() > 1 {
                        context.add(if original_is_combined {
                            ProductTypeNarrowed
                        } else {
                            SumTypeExtended
                        });
                    }
                    return true;
                }
            }
            false
        }

        /// Confluent's `SchemaDiff.compareTypes`.
        fn compare_types(&mut self, context: &mut Context, original: At, update: At) {
            if self.compare_with_branches(context, original, update) {
                return;
            }
            let (o, u) = (self.node(original), self.node(update));
            if o.kind.class() != u.kind.class() {
                let bytes = |n: &Node| n.meta.connect_type.as_deref() == Some("bytes");
                // Anything reads as an empty schema, nothing was written with `false`.
                let widened = matches!(o.kind, Kind::False) || matches!(u.kind, Kind::Empty);
                // Two Connect `bytes` are the same whatever their types (a decimal fix).
                let both_bytes = bytes(o) && bytes(u);
                if !(widened || both_bytes) {
                    context.add(TypeChanged);
                }
                return;
            }
            if o.meta.id != u.meta.id {
                context.add(IdChanged);
            }
            if o.meta.title != u.meta.title {
                context.add(TitleChanged);
            }
            if o.meta.description != u.meta.description {
                context.add(DescriptionChanged);
            }
            if o.meta.default != u.meta.default {
                context.add(DefaultChanged);
            }
            match (&o.kind, &u.kind) {
                (Kind::String(o), Kind::String(u)) => compare_strings(context, o, u),
                (Kind::Number(o), Kind::Number(u)) => compare_numbers(context, o, u),
                (Kind::Enum(o), Kind::Enum(u)) => compare_enums(context, o, u),
                (Kind::Const(o), Kind::Const(u)) if o != u => {
                    context.add_at("const", EnumArrayChanged)
                }
                (
                    Kind::Combined {
                        criterion: oc,
                        subschemas: os,
                    },
                    Kind::Combined {
                        criterion: uc,
                        subschemas: us,
                    },
                ) => self.compare_combined(context, (original, *oc, os), (update, *uc, us)),
                (Kind::Not(o), Kind::Not(u)) => {
                    context.path.push("not".to_string());
                    let mut sub = context.sub();
                    // Whatever the original refused, the update must refuse: compare reversed.
                    self.compare(&mut sub, Some(update.to(*u)), Some(original.to(*o)));
                    context.add(if sub.is_compatible() {
                        NotTypeNarrowed
                    } else {
                        NotTypeExtended
                    });
                    context.path.pop();
                }
                (Kind::Object(o), Kind::Object(u)) => {
                    self.compare_objects(context, (original, o), (update, u))
                }
                (Kind::Array(o), Kind::Array(u)) => {
                    self.compare_arrays(context, (original, o), (update, u))
                }
                _ => {}
            }
        }
    }

    fn compare_strings(context: &mut Context, o: &StringKind, u: &StringKind) {
        use Change::*;
        context.limit(
            "maxLength",
            o.max_length,
            u.max_length,
            [
                MaxLengthAdded,
                MaxLengthRemoved,
                MaxLengthIncreased,
                MaxLengthDecreased,
            ],
        );
        context.limit(
            "minLength",
            o.min_length,
            u.min_length,
            [
                MinLengthAdded,
                MinLengthRemoved,
                MinLengthIncreased,
                MinLengthDecreased,
            ],
        );
        match (&o.pattern, &u.pattern) {
            (None, Some(_)) => context.add_at("pattern", PatternAdded),
            (Some(_), None) => context.add_at("pattern", PatternRemoved),
            (Some(a), Some(b)) if a != b => context.add_at("pattern", PatternChanged),
            _ => {}
        }
    }

    fn compare_numbers(context: &mut Context, o: &NumberKind, u: &NumberKind) {
        context.limit(
            "maximum",
            o.maximum,
            u.maximum,
            [
                MaximumAdded,
                MaximumRemoved,
                MaximumIncreased,
                MaximumDecreased,
            ],
        );
        context.limit(
            "minimum",
            o.minimum,
            u.minimum,
            [
                MinimumAdded,
                MinimumRemoved,
                MinimumIncreased,
                MinimumDecreased,
            ],
        );
        context.limit(
            "exclusiveMaximum",
            o.exclusive_maximum,
            u.exclusive_maximum,
            [
                ExclusiveMaximumAdded,
                ExclusiveMaximumRemoved,
                ExclusiveMaximumIncreased,
                ExclusiveMaximumDecreased,
            ],
        );
        context.limit(
            "exclusiveMinimum",
            o.exclusive_minimum,
            u.exclusive_minimum,
            [
                ExclusiveMinimumAdded,
                ExclusiveMinimumRemoved,
                ExclusiveMinimumIncreased,
                ExclusiveMinimumDecreased,
            ],
        );
        match (o.multiple_of, u.multiple_of) {
            (None, None) => {}
            (None, Some(_)) => context.add_at("multipleOf", MultipleOfAdded),
            (Some(_), None) => context.add_at("multipleOf", MultipleOfRemoved),
            (Some(o), Some(u)) if o.equals(u) => {}
            (Some(o), Some(u)) if u.is_multiple_of(o) => {
                context.add_at("multipleOf", MultipleOfExpanded)
            }
            (Some(o), Some(u)) if o.is_multiple_of(u) => {
                context.add_at("multipleOf", MultipleOfReduced)
            }
            _ => context.add_at("multipleOf", MultipleOfChanged),
        }
        if o.integer != u.integer {
            context.add(if o.integer {
                TypeExtended
            } else {
                TypeNarrowed
            });
        }
    }

    /// Enum values are sets (sorted and deduplicated when loaded).
    fn compare_enums(context: &mut Context, o: &[String], u: &[String]) {
        if o == u {
            return;
        }
        let contains_all =
            |a: &[String], b: &[String]| b.iter().all(|v| a.binary_search(v).is_ok());
        if contains_all(u, o) {
            context.add_at("enum", EnumArrayExtended);
        } else if contains_all(o, u) {
            context.add_at("enum", EnumArrayNarrowed);
        } else {
            context.add_at("enum", EnumArrayChanged);
        }
    }

    impl Comparison<'_, '_> {
        /// Confluent's `CombinedSchemaDiff`: the criteria, then a maximum matching of
        /// compatible branch pairs that must cover the smaller side.
        fn compare_combined(
            &mut self,
            context: &mut Context,
            (original, o_criterion, o_subschemas): (At, Criterion, &[NodeId]),
            (update, u_criterion, u_subschemas): (At, Criterion, &[NodeId]),
        ) {
            let singleton = |subschemas: &[NodeId]| subschemas.len() == 1;
            if o_criterion != u_criterion {
                let extended = u_criterion == Criterion::Any
                    || (singleton(o_subschemas) && singleton(u_subschemas))
                    || (singleton(o_subschemas) && u_criterion == Criterion::One)
                    || (singleton(u_subschemas) && o_criterion == Criterion::All);
                if !extended {
                    return context.add(CombinedTypeChanged);
                }
                context.add(CombinedTypeExtended);
            }
            let o_branches = self.distinct(original, o_subschemas);
            let u_branches = self.distinct(update, u_subschemas);
            if o_branches.len() < u_branches.len() {
                context.add(if u_criterion == Criterion::All {
                    ProductTypeExtended
                } else {
                    SumTypeExtended
                });
            } else if o_branches.len() > u_branches.len() {
                context.add(if o_criterion == Criterion::All {
                    ProductTypeNarrowed
                } else {
                    SumTypeNarrowed
                });
            }
            // compatible[i] lists (j, differences) for each update branch j original branch i
            // can become.
            let mut compatible: Vec<Vec<(usize, Vec<Difference>)>> = Vec::new();
            for (index, &o_branch) in o_branches.iter().enumerate() {
                context
                    .path
                    .push(format!("{}/{index}", o_criterion.keyword()));
                let mut edges = Vec::new();
                for (j, &u_branch) in u_branches.iter().enumerate() {
                    if self.too_large {
                        return;
                    }
                    let mut sub = context.sub();
                    self.compare(&mut sub, Some(o_branch), Some(u_branch));
                    if sub.is_compatible() {
                        edges.push((j, sub.differences));
                    }
                }
                context.path.pop();
                compatible.push(edges);
            }
            let matching = maximum_matching(&compatible, u_branches.len());
            for &(i, edge) in &matching {
                context
                    .differences
                    .extend_from_slice(&compatible[i][edge].1);
            }
            if matching.len() < o_branches.len().min(u_branches.len()) {
                context.add(CombinedTypeSubschemasChanged);
            }
        }

        /// The branches of a combined schema with equal ones collapsed, as Confluent puts
        /// them in a set.
        fn distinct(&self, combined: At, subschemas: &[NodeId]) -> Vec<At> {
            let mut seen = HashSet::new();
            subschemas
                .iter()
                .map(|&id| combined.to(id))
                .filter(|&at| seen.insert(self.node(at).fingerprint))
                .collect()
        }

        /// Confluent's `ObjectSchemaDiff`.
        fn compare_objects(
            &mut self,
            context: &mut Context,
            (original, o): (At, &ObjectKind),
            (update, u): (At, &ObjectKind),
        ) {
            let required =
                |object: &ObjectKind, name: &str| object.required.iter().any(|r| r == name);
            fn property_index(object: &ObjectKind) -> HashMap<&str, NodeId> {
                object
                    .properties
                    .iter()
                    .map(|(n, id)| (n.as_str(), *id))
                    .collect()
            }
            let (o_properties, u_properties) = (property_index(o), property_index(u));

            context.path.push("required".to_string());
            for (name, _) in &o.properties {
                if let Some(&u_property) = u_properties.get(name.as_str()) {
                    let (was, is) = (required(o, name), required(u, name));
                    if was && !is {
                        context.add_at(name, RequiredAttributeRemoved);
                    } else if !was && is {
                        let with_default = self.node(update.to(u_property)).meta.default.is_some();
                        context.add_at(
                            name,
                            if with_default {
                                RequiredAttributeWithDefaultAdded
                            } else {
                                RequiredAttributeAdded
                            },
                        );
                    }
                }
            }
            context.path.pop();

            context.path.push("properties".to_string());
            let names = o.properties.iter().map(|(n, _)| n).chain(
                u.properties
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| !o_properties.contains_key(n.as_str())),
            );
            for name in names {
                if self.too_large {
                    break;
                }
                context.path.push(name.clone());
                match (
                    o_properties.get(name.as_str()),
                    u_properties.get(name.as_str()),
                ) {
                    (Some(&o_property), None) => {
                        self.property_removed(context, original.to(o_property), (update, u), name)
                    }
                    (None, Some(&u_property)) => {
                        self.property_added(context, (original, o), (update, u), u_property, name)
                    }
                    (Some(&o_property), Some(&u_property)) => self.compare(
                        context,
                        Some(original.to(o_property)),
                        Some(update.to(u_property)),
                    ),
                    (None, None) => {}
                }
                context.path.pop();
            }
            context.path.pop();

            self.compare_dependencies(context, (original, o), (update, u));

            context.path.push("additionalProperties".to_string());
            let (o_additional, u_additional) = (
                o.additional.unwrap_or(Additional::Permitted),
                u.additional.unwrap_or(Additional::Permitted),
            );
            if o_additional.permits() != u_additional.permits() {
                context.add(if u_additional.permits() {
                    AdditionalPropertiesAdded
                } else {
                    AdditionalPropertiesRemoved
                });
            } else {
                match (o_additional.schema(), u_additional.schema()) {
                    (None, Some(_)) => context.add(AdditionalPropertiesNarrowed),
                    (Some(_), None) => context.add(AdditionalPropertiesExtended),
                    (o_schema, u_schema) => self.compare(
                        context,
                        o_schema.map(|id| original.to(id)),
                        u_schema.map(|id| update.to(id)),
                    ),
                }
            }
            context.path.pop();

            let (o_unevaluated, u_unevaluated) = (
                o.unevaluated.map(|id| original.to(id)),
                u.unevaluated.map(|id| update.to(id)),
            );
            self.compare_unevaluated(
                context,
                "unevaluatedProperties",
                o_unevaluated,
                u_unevaluated,
                [
                    UnevaluatedPropertiesAdded,
                    UnevaluatedPropertiesRemoved,
                    UnevaluatedPropertiesExtended,
                    UnevaluatedPropertiesNarrowed,
                ],
            );

            context.limit(
                "maxProperties",
                o.max_properties,
                u.max_properties,
                [
                    MaxPropertiesAdded,
                    MaxPropertiesRemoved,
                    MaxPropertiesIncreased,
                    MaxPropertiesDecreased,
                ],
            );
            context.limit(
                "minProperties",
                o.min_properties,
                u.min_properties,
                [
                    MinPropertiesAdded,
                    MinPropertiesRemoved,
                    MinPropertiesIncreased,
                    MinPropertiesDecreased,
                ],
            );
        }

        /// A property of the original is not in the update: only the update's content model
        /// decides, as only it must accept what the original wrote.
        fn property_removed(
            &mut self,
            context: &mut Context,
            o_property: At,
            (update, u): (At, &ObjectKind),
            name: &str,
        ) {
            if is_open_object(self, update, u) {
                return context.add(PropertyRemovedFromOpenContentModel);
            }
            if let Some(partial) = self.partially_open_object(update, u, Some(name)) {
                let mut sub = context.sub();
                self.compare(&mut sub, Some(o_property), Some(partial));
                let covered = sub.is_compatible();
                context.differences.extend(sub.differences);
                return context.add(if covered {
                    PropertyRemovedIsCoveredByPartiallyOpenContentModel
                } else {
                    PropertyRemovedNotCoveredByPartiallyOpenContentModel
                });
            }
            if matches!(self.node(o_property).kind, Kind::False) {
                context.add(PropertyWithFalseRemovedFromClosedContentModel)
            } else {
                context.add(PropertyRemovedFromClosedContentModel)
            }
        }

        /// A property of the update is not in the original: only the original's content model
        /// decides, as only it could have written that property under another schema.
        fn property_added(
            &mut self,
            context: &mut Context,
            (original, o): (At, &ObjectKind),
            (update, u): (At, &ObjectKind),
            u_property: NodeId,
            name: &str,
        ) {
            let u_node = self.node(update.to(u_property));
            let required = u.required.iter().any(|r| r == name);
            let with_default = u_node.meta.default.is_some();
            if is_open_object(self, original, o) {
                return context.add(if matches!(u_node.kind, Kind::Empty) {
                    PropertyWithEmptySchemaAddedToOpenContentModel
                } else if required && with_default {
                    RequiredPropertyWithDefaultAddedToOpenContentModel
                } else if required {
                    RequiredPropertyAddedToOpenContentModel
                } else {
                    OptionalPropertyAddedToOpenContentModel
                });
            }
            if let Some(partial) = self.partially_open_object(original, o, Some(name)) {
                let mut sub = context.sub();
                self.compare(&mut sub, Some(partial), Some(update.to(u_property)));
                let covered = sub.is_compatible();
                context.differences.extend(sub.differences);
                context.add(if covered {
                    PropertyAddedIsCoveredByPartiallyOpenContentModel
                } else {
                    PropertyAddedNotCoveredByPartiallyOpenContentModel
                });
            }
            context.add(match (required, with_default) {
                (true, true) => RequiredPropertyWithDefaultAddedToUnopenContentModel,
                (true, false) => RequiredPropertyAddedToUnopenContentModel,
                (false, _) => OptionalPropertyAddedToUnopenContentModel,
            });
        }

        /// The schema a partially open object gives a property it does not list: the first
        /// `patternProperties` matching it, else `additionalProperties`, else (when that is
        /// absent) an `unevaluatedProperties` that is neither true nor false.
        fn partially_open_object(
            &self,
            at: At,
            object: &ObjectKind,
            name: Option<&str>,
        ) -> Option<At> {
            if let Some(name) = name {
                let matching = object
                    .pattern_properties
                    .iter()
                    .find(|(_, regex, _)| regex.as_ref().is_some_and(|regex| regex.is_match(name)));
                if let Some((_, _, schema)) = matching {
                    return Some(at.to(*schema));
                }
            }
            let additional = object.additional.unwrap_or(Additional::Permitted);
            if let Some(schema) = additional.schema() {
                return Some(at.to(schema));
            }
            if additional == Additional::Permitted {
                let unevaluated = object.unevaluated?;
                if !matches!(
                    self.node(at.to(unevaluated)).kind,
                    Kind::False | Kind::Empty
                ) {
                    return Some(at.to(unevaluated));
                }
            }
            None
        }

        fn compare_dependencies(
            &mut self,
            context: &mut Context,
            (original, o): (At, &ObjectKind),
            (update, u): (At, &ObjectKind),
        ) {
            context.path.push("dependencies".to_string());
            let find = |list: &'_ [(String, Vec<String>)], name: &str| {
                list.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, names)| names.clone())
            };
            let o_names = o.property_dependencies.iter().map(|(n, _)| n.clone());
            let u_names = u.property_dependencies.iter().map(|(n, _)| n.clone());
            for name in union(o_names, u_names) {
                let (was, is) = (
                    find(&o.property_dependencies, &name),
                    find(&u.property_dependencies, &name),
                );
                let kind = match (was, is) {
                    (_, None) => Some(DependencyArrayRemoved),
                    (None, Some(_)) => Some(DependencyArrayAdded),
                    (Some(was), Some(is)) if was == is => None,
                    (Some(was), Some(is)) if was.iter().all(|n| is.contains(n)) => {
                        Some(DependencyArrayExtended)
                    }
                    (Some(was), Some(is)) if is.iter().all(|n| was.contains(n)) => {
                        Some(DependencyArrayNarrowed)
                    }
                    _ => Some(DependencyArrayChanged),
                };
                if let Some(kind) = kind {
                    context.add_at(&name, kind);
                }
            }
            let find = |list: &'_ [(String, NodeId)], name: &str| {
                list.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
            };
            let o_names = o.schema_dependencies.iter().map(|(n, _)| n.clone());
            let u_names = u.schema_dependencies.iter().map(|(n, _)| n.clone());
            for name in union(o_names, u_names) {
                match (
                    find(&o.schema_dependencies, &name),
                    find(&u.schema_dependencies, &name),
                ) {
                    (_, None) => context.add_at(&name, DependencySchemaRemoved),
                    (None, Some(_)) => context.add_at(&name, DependencySchemaAdded),
                    (Some(was), Some(is)) => {
                        context.path.push(name);
                        self.compare(context, Some(original.to(was)), Some(update.to(is)));
                        context.path.pop();
                    }
                }
            }
            context.path.pop();
        }

        /// `unevaluatedProperties` / `unevaluatedItems`, which only 2019-09 on load.
        fn compare_unevaluated(
            &mut self,
            context: &mut Context,
            keyword: &str,
            original: Option<At>,
            update: Option<At>,
            [added, removed, extended, narrowed]: [Change; 4],
        ) {
            if original.is_none() && update.is_none() {
                return;
            }
            let is = |comparison: &Self, at: Option<At>, f: fn(&Kind) -> bool| {
                at.is_some_and(|at| f(&comparison.node(at).kind))
            };
            let is_false = |k: &Kind| matches!(k, Kind::False);
            let is_empty = |k: &Kind| matches!(k, Kind::Empty);
            let (o_false, u_false) = (is(self, original, is_false), is(self, update, is_false));
            let (o_empty, u_empty) = (is(self, original, is_empty), is(self, update, is_empty));
            context.path.push(keyword.to_string());
            match (original, update) {
                (None, _) => context.add(if u_false { removed } else { narrowed }),
                (_, None) => context.add(if o_false { added } else { extended }),
                _ if o_false && !u_false => context.add(added),
                _ if !o_false && u_false => context.add(removed),
                _ if o_empty && !u_empty => context.add(narrowed),
                _ if !o_empty && u_empty => context.add(extended),
                _ => self.compare(context, original, update),
            }
            context.path.pop();
        }

        /// Confluent's `ArraySchemaDiff`.
        fn compare_arrays(
            &mut self,
            context: &mut Context,
            (original, o): (At, &ArrayKind),
            (update, u): (At, &ArrayKind),
        ) {
            context.path.push("items".to_string());
            self.compare(
                context,
                o.all_items.map(|id| original.to(id)),
                u.all_items.map(|id| update.to(id)),
            );
            context.path.pop();

            let shared = o.item_schemas.len().min(u.item_schemas.len());
            for index in 0..o.item_schemas.len().max(u.item_schemas.len()) {
                context.path.push(format!("items/{index}"));
                let o_item = o.item_schemas.get(index).map(|id| original.to(*id));
                let u_item = u.item_schemas.get(index).map(|id| update.to(*id));
                match (o_item, u_item) {
                    _ if index < shared => self.compare(context, o_item, u_item),
                    (Some(o_item), None) => self.item_removed(context, o_item, (update, u)),
                    (None, Some(u_item)) => self.item_added(context, (original, o), u_item),
                    _ => {}
                }
                context.path.pop();
            }

            context.path.push("additionalItems".to_string());
            let (o_additional, u_additional) = (
                o.additional.unwrap_or(Additional::Permitted),
                u.additional.unwrap_or(Additional::Permitted),
            );
            if o_additional.permits() != u_additional.permits() {
                context.add(if o_additional.permits() {
                    AdditionalItemsRemoved
                } else {
                    AdditionalItemsAdded
                });
            } else {
                match (o_additional.schema(), u_additional.schema()) {
                    (None, Some(_)) => context.add(AdditionalItemsNarrowed),
                    (Some(_), None) => context.add(AdditionalItemsExtended),
                    (o_schema, u_schema) => self.compare(
                        context,
                        o_schema.map(|id| original.to(id)),
                        u_schema.map(|id| update.to(id)),
                    ),
                }
            }
            context.path.pop();

            let (o_unevaluated, u_unevaluated) = (
                o.unevaluated.map(|id| original.to(id)),
                u.unevaluated.map(|id| update.to(id)),
            );
            self.compare_unevaluated(
                context,
                "unevaluatedItems",
                o_unevaluated,
                u_unevaluated,
                [
                    UnevaluatedItemsAdded,
                    UnevaluatedItemsRemoved,
                    UnevaluatedItemsExtended,
                    UnevaluatedItemsNarrowed,
                ],
            );

            context.limit(
                "maxItems",
                o.max_items,
                u.max_items,
                [
                    MaxItemsAdded,
                    MaxItemsRemoved,
                    MaxItemsIncreased,
                    MaxItemsDecreased,
                ],
            );
            context.limit(
                "minItems",
                o.min_items,
                u.min_items,
                [
                    MinItemsAdded,
                    MinItemsRemoved,
                    MinItemsIncreased,
                    MinItemsDecreased,
                ],
            );
            if o.unique_items != u.unique_items {
                context.add_at(
                    "uniqueItems",
                    if o.unique_items {
                        UniqueItemsRemoved
                    } else {
                        UniqueItemsAdded
                    },
                );
            }
            context.limit(
                "maxContains",
                o.max_contains,
                u.max_contains,
                [
                    MaxContainsAdded,
                    MaxContainsRemoved,
                    MaxContainsIncreased,
                    MaxContainsDecreased,
                ],
            );
            context.limit(
                "minContains",
                o.min_contains,
                u.min_contains,
                [
                    MinContainsAdded,
                    MinContainsRemoved,
                    MinContainsIncreased,
                    MinContainsDecreased,
                ],
            );
        }

        fn item_removed(
            &mut self,
            context: &mut Context,
            o_item: At,
            (update, u): (At, &ArrayKind),
        ) {
            if is_open_array(self, update, u) {
                return context.add(ItemRemovedFromOpenContentModel);
            }
            if let Some(partial) = self.partially_open_array(update, u) {
                let mut sub = context.sub();
                self.compare(&mut sub, Some(o_item), Some(partial));
                let covered = sub.is_compatible();
                context.differences.extend(sub.differences);
                return context.add(if covered {
                    ItemRemovedIsCoveredByPartiallyOpenContentModel
                } else {
                    ItemRemovedNotCoveredByPartiallyOpenContentModel
                });
            }
            context.add(if matches!(self.node(o_item).kind, Kind::False) {
                ItemWithFalseRemovedFromClosedContentModel
            } else {
                ItemRemovedFromClosedContentModel
            });
        }

        fn item_added(
            &mut self,
            context: &mut Context,
            (original, o): (At, &ArrayKind),
            u_item: At,
        ) {
            if is_open_array(self, original, o) {
                return context.add(if matches!(self.node(u_item).kind, Kind::Empty) {
                    ItemWithEmptySchemaAddedToOpenContentModel
                } else {
                    ItemAddedToOpenContentModel
                });
            }
            let Some(partial) = self.partially_open_array(original, o) else {
                return context.add(ItemAddedToClosedContentModel);
            };
            let mut sub = context.sub();
            self.compare(&mut sub, Some(partial), Some(u_item));
            let covered = sub.is_compatible();
            context.differences.extend(sub.differences);
            context.add(if covered {
                ItemAddedIsCoveredByPartiallyOpenContentModel
            } else {
                ItemAddedNotCoveredByPartiallyOpenContentModel
            });
        }

        fn partially_open_array(&self, at: At, array: &ArrayKind) -> Option<At> {
            let additional = array.additional.unwrap_or(Additional::Permitted);
            if let Some(schema) = additional.schema() {
                return Some(at.to(schema));
            }
            if additional == Additional::Permitted {
                let unevaluated = array.unevaluated?;
                if !matches!(
                    self.node(at.to(unevaluated)).kind,
                    Kind::False | Kind::Empty
                ) {
                    return Some(at.to(unevaluated));
                }
            }
            None
        }
    }

    /// An object any property may be added to: `additionalProperties` absent or true, no
    /// `patternProperties`, and `unevaluatedProperties` absent or true.
    fn is_open_object(comparison: &Comparison<'_, '_>, at: At, object: &ObjectKind) -> bool {
        object.additional.unwrap_or(Additional::Permitted) == Additional::Permitted
            && object.pattern_properties.is_empty()
            && object
                .unevaluated
                .is_none_or(|id| matches!(comparison.node(at.to(id)).kind, Kind::Empty))
    }

    fn is_open_array(comparison: &Comparison<'_, '_>, at: At, array: &ArrayKind) -> bool {
        array.additional.unwrap_or(Additional::Permitted) == Additional::Permitted
            && array
                .unevaluated
                .is_none_or(|id| matches!(comparison.node(at.to(id)).kind, Kind::Empty))
    }

    /// The names of `a` then those of `b` not in `a`.
    fn union(a: impl Iterator<Item = String>, b: impl Iterator<Item = String>) -> Vec<String> {
        let mut names: Vec<String> = a.collect();
        let seen: HashSet<String> = names.iter().cloned().collect();
        names.extend(b.filter(|name| !seen.contains(name)));
        names
    }

    /// A maximum matching of the bipartite graph `edges[left] = [(right, _)...]` (Kuhn's
    /// augmenting paths, iteratively): the (left, index into edges[left]) pairs chosen.
    pub(super) fn maximum_matching<T>(
        edges: &[Vec<(usize, T)>],
        rights: usize,
    ) -> Vec<(usize, usize)> {
        let mut owner: Vec<Option<(usize, usize)>> = vec![None; rights];
        for start in 0..edges.len() {
            let mut visited = vec![false; rights];
            // A depth-first search for an augmenting path, kept on an explicit stack of
            // (left vertex, next edge to try, the right vertex it was reached through).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<(usize, usize)> = Vec::new();
            let mut found = false;
            while let Some(&mut (left, ref mut next)) = stack.last_mut() {
                if *next == edges[left].len() {
                    stack.pop();
                    path.pop();
                    continue;
                }
                let edge = *next;
                *next += 1;
                let right = edges[left][edge].0;
                if visited[right] {
                    continue;
                }
                visited[right] = true;
                path.push((left, edge));
                match owner[right] {
                    None => {
                        found = true;
                        break;
                    }
                    Some((other, _)) => stack.push((other, 0)),
                }
            }
            if found {
                for &(left, edge) in &path {
                    owner[edges[left][edge].0] = Some((left, edge));
                }
            }
        }
        let mut matching: Vec<(usize, usize)> = owner.into_iter().flatten().collect();
        matching.sort_unstable();
        matching
    }
}

#[cfg(test)]
mod tests {
    use super::diff::maximum_matching;
    use super::*;

    fn decimal(text: &str) -> Decimal {
        let number: serde_json::Number = serde_json::from_str(text).unwrap();
        Decimal::parse(&number).unwrap()
    }

    #[test]
    fn decimals_divide_exactly() {
        assert!(decimal("0.3").is_multiple_of(decimal("0.1")));
        assert!(decimal("4").is_multiple_of(decimal("2")));
        assert!(!decimal("3").is_multiple_of(decimal("2")));
        assert!(decimal("1e2").is_multiple_of(decimal("25")));
        assert!(decimal("0.5").equals(decimal("0.50")));
        // Exponents too far apart to align are "cannot tell", not a panic.
        assert!(!decimal("1e300").is_multiple_of(decimal("1e-300")));
    }

    #[test]
    fn matching_is_maximum() {
        // Greedy would match 0-0 and leave 1 unmatched; the augmenting path fixes it.
        let edges = vec![vec![(0, ()), (1, ())], vec![(0, ())]];
        assert_eq!(maximum_matching(&edges, 2).len(), 2);
        let edges: Vec<Vec<(usize, ())>> = vec![vec![(0, ())], vec![(0, ())]];
        assert_eq!(maximum_matching(&edges, 1).len(), 1);
        assert!(maximum_matching::<()>(&[], 3).is_empty());
    }

    #[test]
    fn urls_resolve_against_the_id() {
        let id = Some("http://example.com/a/root.json");
        assert_eq!(resolve_url(id, "b.json"), "http://example.com/a/b.json");
        assert_eq!(resolve_url(id, "/b.json"), "http://example.com/b.json");
        assert_eq!(resolve_url(id, "urn:x"), "http://example.com/a/urn:x");
        assert_eq!(resolve_url(None, "b.json"), "b.json");
        assert_eq!(
            resolve_url(id, "https://other/x.json"),
            "https://other/x.json"
        );
    }

    #[test]
    fn pointers_decode_their_tokens() {
        let value = serde_json::json!({"a/b": {"c~d": [1, {"e f": 2}]}, "definitions": {"x": 3}});
        assert_eq!(
            pointer(&value, "/a~1b/c~0d/1/e%20f"),
            Some(&serde_json::json!(2))
        );
        assert_eq!(pointer(&value, "/$defs/x"), Some(&serde_json::json!(3)));
        assert_eq!(pointer(&value, "/a~1b/c~0d/9"), None);
        assert_eq!(pointer(&value, "/%zz"), None);
    }
}
