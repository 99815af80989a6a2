//! Avro schemas, handled the way Confluent Schema Registry handles them.
//!
//! Confluent parses with Java Avro (1.12), and every text its clients see comes from there:
//! the stored text is `Schema.toString()` with the referenced types written by name,
//! `normalize=true` re-renders through `AvroSchemaUtils.toNormalizedString`, and compatibility
//! is Java's `SchemaCompatibility.checkReaderWriterCompatibility` reported through Confluent's
//! `Difference`. The apache-avro crate renders attributes sorted, drops field properties from
//! its output and reports incompatibilities without a location, so this module keeps its own
//! model: an arena of [`Node`]s in which a named type is one node shared by every place that
//! uses it, as Java shares one `Schema` object.
//!
//! [`AvroSchema::parse`] checks the nesting of the text before any recursive parser sees it,
//! parses the dependencies and then the schema into one arena (Java parses them with one
//! `Schema.Parser`, so a schema may use any type its references define), resolves names,
//! validates defaults, and renders the canonical and normalized texts once. Every walk that
//! follows references is bounded by [`RESOLVED_DEPTH_MAX`]: a chain of references can nest
//! deeper than one text does.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{Dependency, InvalidSchema, NESTING_MAX, SCHEMA_BYTES_MAX};

/// Deepest walk through a schema with its references followed (each named type is entered
/// once per walk). One text nests at most [`NESTING_MAX`] deep; references add to that.
const RESOLVED_DEPTH_MAX: usize = 1024;

/// Deepest nesting of one decoded datum: a recursive record (a linked list) nests as deep as
/// its data says, and decoding recurses.
const DATUM_DEPTH_MAX: usize = 512;

/// Most values one datum may decode to: nulls and empty records take no bytes, so the length
/// of the datum does not bound what an array of them decodes to.
const DATUM_VALUES_MAX: usize = 1_000_000;

/// Longest excerpt of the offending JSON quoted in an error message.
const EXCERPT_CHARS_MAX: usize = 200;

/// Attributes of a type that are not properties (Java's `SCHEMA_RESERVED`).
const SCHEMA_RESERVED: [&str; 10] = [
    "doc",
    "fields",
    "items",
    "name",
    "namespace",
    "size",
    "symbols",
    "values",
    "type",
    "aliases",
];

/// Attributes of a field that are not properties (Java's `FIELD_RESERVED`).
const FIELD_RESERVED: [&str; 6] = ["default", "doc", "name", "order", "type", "aliases"];

/// Java's `Schema.Type` names, which a named type written by its simple name must not be.
const TYPE_NAMES: [&str; 14] = [
    "record", "enum", "array", "map", "union", "fixed", "string", "bytes", "int", "long", "float",
    "double", "boolean", "null",
];

type NodeId = usize;

/// Defaults already checked against a type, by type and the address of the value (every value
/// checked lives in the graph, which does not change while it is checked).
type DefaultMemo = HashMap<(NodeId, *const Value), bool>;

/// Properties (custom attributes) in the order the text gives them: Java keeps that order and
/// writes them back in it.
type Props = Vec<(String, Value)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primitive {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Primitive {
    const ALL: [Primitive; 8] = [
        Primitive::Null,
        Primitive::Boolean,
        Primitive::Int,
        Primitive::Long,
        Primitive::Float,
        Primitive::Double,
        Primitive::Bytes,
        Primitive::String,
    ];

    fn parse(name: &str) -> Option<Primitive> {
        Primitive::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Primitive::Null => "null",
            Primitive::Boolean => "boolean",
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::Bytes => "bytes",
            Primitive::String => "string",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
    Ignore,
}

/// A full name split as Java's `Schema.Name` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    name: String,
    space: Option<String>,
}

impl Name {
    /// A dotted name carries its own namespace (overriding `space`); an empty namespace is none.
    fn new(name: &str, space: Option<&str>) -> Result<Name, InvalidSchema> {
        let (space, simple) = match name.rfind('.') {
            Some(dot) => (Some(&name[..dot]), &name[dot + 1..]),
            None => (space, name),
        };
        validate_name(simple)?;
        Ok(Name {
            name: simple.to_string(),
            space: space.filter(|space| !space.is_empty()).map(str::to_string),
        })
    }

    fn full(&self) -> String {
        match &self.space {
            Some(space) => format!("{space}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Java's `Name.getQualified`: the simple name inside its own namespace, unless the simple
    /// name is a type name (which would read as that type).
    fn qualified(&self, current: Option<&str>) -> String {
        if self.space.is_some()
            && self.space.as_deref() == current
            && !TYPE_NAMES.contains(&self.name.as_str())
        {
            self.name.clone()
        } else {
            self.full()
        }
    }
}

/// What records, enums and fixed types have in common.
#[derive(Debug, Clone)]
struct Named {
    name: Name,
    doc: Option<String>,
    aliases: Vec<Name>,
    props: Props,
}

impl Named {
    /// Java's `getAliases()` strings: full names, with a leading dot for an alias without a
    /// namespace in a type that has one. Compatibility matches writer names against these.
    fn alias_names(&self) -> Vec<String> {
        self.aliases
            .iter()
            .map(|alias| match (&alias.space, &self.name.space) {
                (None, Some(_)) => format!(".{}", alias.name),
                _ => alias.full(),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    node: NodeId,
    doc: Option<String>,
    default: Option<Value>,
    order: Order,
    aliases: Vec<String>,
    props: Props,
}

#[derive(Debug, Clone)]
enum Node {
    Primitive(Primitive, Props),
    Array(NodeId, Props),
    Map(NodeId, Props),
    Union(Vec<NodeId>),
    Record {
        named: Named,
        fields: Vec<Field>,
        error: bool,
    },
    Enum {
        named: Named,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        named: Named,
        size: usize,
    },
    /// A named type used by name: the full names to try in order (the name in the enclosing
    /// namespace, then the name as written). Only exists while parsing: resolution points
    /// every use at the definition instead.
    Reference(Vec<String>),
}

impl Node {
    fn named(&self) -> Option<&Named> {
        match self {
            Node::Record { named, .. } | Node::Enum { named, .. } | Node::Fixed { named, .. } => {
                Some(named)
            }
            _ => None,
        }
    }

    /// Java's `Schema.Type` name, as its compatibility messages print it.
    fn kind(&self) -> &'static str {
        match self {
            Node::Primitive(Primitive::Null, _) => "NULL",
            Node::Primitive(Primitive::Boolean, _) => "BOOLEAN",
            Node::Primitive(Primitive::Int, _) => "INT",
            Node::Primitive(Primitive::Long, _) => "LONG",
            Node::Primitive(Primitive::Float, _) => "FLOAT",
            Node::Primitive(Primitive::Double, _) => "DOUBLE",
            Node::Primitive(Primitive::Bytes, _) => "BYTES",
            Node::Primitive(Primitive::String, _) => "STRING",
            Node::Array(..) => "ARRAY",
            Node::Map(..) => "MAP",
            Node::Union(_) => "UNION",
            Node::Record { .. } => "RECORD",
            Node::Enum { .. } => "ENUM",
            Node::Fixed { .. } => "FIXED",
            Node::Reference(_) => unreachable!("references are resolved when parsing"),
        }
    }

    /// What identifies a branch of a union (Java's `getFullName()`): two branches may not
    /// share it.
    fn union_key(&self) -> String {
        match self.named() {
            Some(named) => named.name.full(),
            None => self.kind().to_ascii_lowercase(),
        }
    }
}

/// A parsed schema with its dependencies' types, references resolved.
#[derive(Debug)]
struct Graph {
    nodes: Vec<Node>,
    root: NodeId,
    /// Full names of the types the dependencies define at their top: written by name, never
    /// inlined (Java's `toString(referencedSchemas)`).
    referenced: Vec<String>,
}

/// A parsed Avro schema: the graph for compatibility checks and decoding, and its two texts.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    graph: Arc<Graph>,
    canonical: String,
    normalized: String,
}

impl AvroSchema {
    /// Parses `text`, whose names may refer to types the `dependencies` define (each a full
    /// Avro schema, deepest first). Refuses what Confluent refuses for a new schema: invalid
    /// JSON or Avro, names that are not `[A-Za-z_][A-Za-z0-9_]*`, undefined names, defaults
    /// that do not match their field's type.
    pub fn parse(text: &str, dependencies: &[Dependency<'_>]) -> Result<AvroSchema, InvalidSchema> {
        let mut parser = Parser::default();
        let mut dependency_roots = Vec::with_capacity(dependencies.len());
        let mut parsed_texts = HashSet::new();
        for dependency in dependencies {
            // The same schema reached through two paths is one set of definitions.
            if !parsed_texts.insert(dependency.schema) {
                continue;
            }
            let root = parser.document(dependency.schema).map_err(|error| {
                InvalidSchema::new(format!(
                    "the referenced schema {} is invalid: {error}",
                    dependency.name
                ))
            })?;
            dependency_roots.push(root);
        }
        let root = parser.document(text)?;
        let graph = parser.finish(root, &dependency_roots)?;
        let canonical = Renderer::render(&graph, false)?;
        let normalized = Renderer::render(&graph, true)?;
        Ok(AvroSchema {
            graph: Arc::new(graph),
            canonical,
            normalized,
        })
    }

    /// Compact JSON as Java Avro's `Schema.toString()` writes it: attributes in Java's order,
    /// properties in the order given, each named type defined where first used and named
    /// after that, the dependencies' types named.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// Confluent's normalized form (`AvroSchema.normalize()` then `canonicalString()`):
    /// properties and aliases sorted, empty docs of named types dropped, defaults of float
    /// and double fields written as floating point, object values with sorted keys.
    pub fn normalized(&self) -> String {
        self.normalized.clone()
    }

    /// What keeps a reader using this schema from reading data written with `older`: Java's
    /// `SchemaCompatibility.checkReaderWriterCompatibility(self, older)`, each incompatibility
    /// as Confluent's `Difference` prints it, with this schema as "new" and `older` as "old".
    pub fn incompatibilities_reading(&self, older: &AvroSchema) -> Vec<String> {
        let mut checker = Checker {
            reader: &self.graph.nodes,
            writer: &older.graph.nodes,
            memo: HashMap::new(),
        };
        let mut location = Vec::new();
        match checker.compatibility("", self.graph.root, older.graph.root, &mut location, 0) {
            Ok(incompatibilities) => incompatibilities.iter().map(difference).collect(),
            Err(error) => vec![format!(
                "Unexpected exception during compatibility check: {error}"
            )],
        }
    }

    /// Decodes one datum in Avro's binary encoding (what follows the 5-byte header of
    /// Confluent's wire format) to JSON for display: bytes and fixed as ISO-8859-1 strings
    /// (Avro's JSON encoding of bytes), a union as its branch's value, an enum as its symbol.
    pub fn decode(&self, datum: &[u8]) -> Result<Value, String> {
        let mut decoder = Decoder {
            nodes: &self.graph.nodes,
            datum,
            position: 0,
            values: 0,
        };
        let value = decoder.value(self.graph.root, 0)?;
        match datum.len() - decoder.position {
            0 => Ok(value),
            left => Err(format!(
                "{left} bytes left over after the datum: it was not written with this schema"
            )),
        }
    }
}

fn invalid(message: impl Into<String>) -> InvalidSchema {
    InvalidSchema::new(message)
}

/// The start of `value` as JSON, for error messages: a hostile schema may be megabytes long.
fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(EXCERPT_CHARS_MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// Confluent validates the names of a new schema strictly (Java's `STRICT_VALIDATOR`).
fn validate_name(name: &str) -> Result<(), InvalidSchema> {
    let mut characters = name.chars();
    match characters.next() {
        None => Err(invalid("Empty name")),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            Err(invalid(format!("Illegal initial character: {name}")))
        }
        Some(_) if !characters.all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err(invalid(format!("Illegal character in: {name}")))
        }
        Some(_) => Ok(()),
    }
}

/// Refuses text nesting objects and arrays deeper than [`NESTING_MAX`], before a recursive
/// parser sees it.
fn check_nesting(text: &str) -> Result<(), InvalidSchema> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > NESTING_MAX {
                    return Err(invalid(format!(
                        "the schema nests deeper than {NESTING_MAX} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep() -> InvalidSchema {
    invalid(format!(
        "the schema, with its references followed, nests deeper than {RESOLVED_DEPTH_MAX} levels"
    ))
}

/// A string attribute; Java's `textValue()` reads anything else as absent.
fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn props(object: &Map<String, Value>, reserved: &[&str]) -> Props {
    object
        .iter()
        .filter(|(key, _)| !reserved.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// An `aliases` attribute: an array of strings, duplicates dropped.
fn alias_strings(object: &Map<String, Value>) -> Result<Vec<String>, InvalidSchema> {
    let Some(aliases) = object.get("aliases") else {
        return Ok(Vec::new());
    };
    let Value::Array(aliases) = aliases else {
        return Err(invalid(format!(
            "aliases not an array: {}",
            excerpt(aliases)
        )));
    };
    let mut strings: Vec<String> = Vec::with_capacity(aliases.len());
    for alias in aliases {
        let Value::String(alias) = alias else {
            return Err(invalid(format!("alias not a string: {}", excerpt(alias))));
        };
        if !strings.contains(alias) {
            strings.push(alias.clone());
        }
    }
    Ok(strings)
}

/// Builds the arena from JSON documents, then resolves names and checks what needs them.
#[derive(Default)]
struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
}

impl Parser {
    fn document(&mut self, text: &str) -> Result<NodeId, InvalidSchema> {
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(invalid(format!(
                "the schema is {} bytes, more than the {SCHEMA_BYTES_MAX} allowed",
                text.len()
            )));
        }
        check_nesting(text)?;
        let json: Value = serde_json::from_str(text).map_err(|error| {
            // serde_json stops one level short of NESTING_MAX: say so the same way.
            if error.to_string().contains("recursion limit") {
                invalid(format!(
                    "the schema nests deeper than {} levels",
                    NESTING_MAX - 1
                ))
            } else {
                invalid(format!("the schema is not valid JSON: {error}"))
            }
        })?;
        self.schema(&json, None)
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn schema(&mut self, json: &Value, space: Option<&str>) -> Result<NodeId, InvalidSchema> {
        match json {
            Value::String(name) => Ok(self.reference(name, space)),
            Value::Object(object) => self.object(json, object, space),
            Value::Array(branches) => {
                let mut ids = Vec::with_capacity(branches.len());
                for branch in branches {
                    ids.push(self.schema(branch, space)?);
                }
                Ok(self.push(Node::Union(ids)))
            }
            other => Err(invalid(format!(
                "not an Avro schema: {}: a schema is a type name, an object or an array (a union)",
                excerpt(other)
            ))),
        }
    }

    fn reference(&mut self, name: &str, space: Option<&str>) -> NodeId {
        if let Some(kind) = Primitive::parse(name) {
            return self.push(Node::Primitive(kind, Vec::new()));
        }
        let mut candidates = Vec::with_capacity(2);
        if let Some(space) = space.filter(|_| !name.contains('.')) {
            candidates.push(format!("{space}.{name}"));
        }
        candidates.push(name.to_string());
        self.push(Node::Reference(candidates))
    }

    fn object(
        &mut self,
        json: &Value,
        object: &Map<String, Value>,
        space: Option<&str>,
    ) -> Result<NodeId, InvalidSchema> {
        let Some(kind) = text(object, "type") else {
            return Err(invalid(format!("No type: {}", excerpt(json))));
        };
        if let Some(primitive) = Primitive::parse(kind) {
            let props = props(object, &SCHEMA_RESERVED);
            return Ok(self.push(Node::Primitive(primitive, props)));
        }
        match kind {
            "record" | "error" => self.record(json, object, space, kind == "error"),
            "enum" => self.enumeration(json, object, space),
            "fixed" => self.fixed(json, object, space),
            "array" | "map" => {
                let key = if kind == "array" { "items" } else { "values" };
                let Some(inner) = object.get(key) else {
                    return Err(invalid(format!("{kind} has no {key}: {}", excerpt(json))));
                };
                let inner = self.schema(inner, space)?;
                let props = props(object, &SCHEMA_RESERVED);
                Ok(self.push(if kind == "array" {
                    Node::Array(inner, props)
                } else {
                    Node::Map(inner, props)
                }))
            }
            // Java 1.11 reads `{"type": "SomeName"}` as a use of a named type.
            name => Ok(self.reference(name, space)),
        }
    }

    fn named(
        &self,
        json: &Value,
        object: &Map<String, Value>,
        space: Option<&str>,
        reserved: &[&str],
    ) -> Result<Named, InvalidSchema> {
        let Some(name) = text(object, "name") else {
            return Err(invalid(format!("No name in schema: {}", excerpt(json))));
        };
        let name = Name::new(name, text(object, "namespace").or(space))?;
        let mut aliases: Vec<Name> = Vec::new();
        for alias in alias_strings(object)? {
            let alias = Name::new(&alias, name.space.as_deref())?;
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }
        Ok(Named {
            doc: text(object, "doc").map(str::to_string),
            props: props(object, reserved),
            name,
            aliases,
        })
    }

    fn define(&mut self, node: Node) -> Result<NodeId, InvalidSchema> {
        let full = node
            .named()
            .map(|named| named.name.full())
            .unwrap_or_default();
        if Primitive::parse(&full).is_some() {
            return Err(invalid(format!(
                "Schemas may not be named after primitives: {full}"
            )));
        }
        if self.names.contains_key(&full) {
            return Err(invalid(format!("Can't redefine: {full}")));
        }
        let id = self.push(node);
        self.names.insert(full, id);
        Ok(id)
    }

    fn record(
        &mut self,
        json: &Value,
        object: &Map<String, Value>,
        space: Option<&str>,
        error: bool,
    ) -> Result<NodeId, InvalidSchema> {
        let named = self.named(json, object, space, &SCHEMA_RESERVED)?;
        let Some(Value::Array(fields_json)) = object.get("fields") else {
            return Err(invalid(format!("Record has no fields: {}", excerpt(json))));
        };
        let mut fields: Vec<Field> = Vec::with_capacity(fields_json.len());
        for field_json in fields_json {
            let field = self.field(field_json, named.name.space.as_deref())?;
            if fields.iter().any(|other| other.name == field.name) {
                return Err(invalid(format!(
                    "Duplicate field {} in record {}",
                    field.name,
                    named.name.full()
                )));
            }
            fields.push(field);
        }
        self.define(Node::Record {
            named,
            fields,
            error,
        })
    }

    fn field(&mut self, json: &Value, space: Option<&str>) -> Result<Field, InvalidSchema> {
        let Value::Object(object) = json else {
            return Err(invalid(format!(
                "a field is not an object: {}",
                excerpt(json)
            )));
        };
        let Some(name) = text(object, "name") else {
            return Err(invalid(format!("No field name: {}", excerpt(json))));
        };
        validate_name(name)?;
        let Some(type_json) = object.get("type") else {
            return Err(invalid(format!("No field type: {}", excerpt(json))));
        };
        let node = self.schema(type_json, space)?;
        let order = match object.get("order") {
            None => Order::Ascending,
            Some(Value::String(order)) => match order.to_ascii_lowercase().as_str() {
                "ascending" => Order::Ascending,
                "descending" => Order::Descending,
                "ignore" => Order::Ignore,
                _ => return Err(invalid(format!("invalid order {order:?} of field {name}"))),
            },
            Some(other) => {
                return Err(invalid(format!(
                    "invalid order {} of field {name}",
                    excerpt(other)
                )))
            }
        };
        let mut default = object.get("default").cloned();
        // Java reads a string default of a float or double field as the number it spells.
        if let (
            Some(Value::String(number)),
            Node::Primitive(Primitive::Float | Primitive::Double, _),
        ) = (&default, &self.nodes[node])
        {
            let parsed = number
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .and_then(serde_json::Number::from_f64)
                .ok_or_else(|| {
                    invalid(format!(
                        "Invalid default for field {name}: {number:?} not a number"
                    ))
                })?;
            default = Some(Value::Number(parsed));
        }
        Ok(Field {
            name: name.to_string(),
            node,
            doc: text(object, "doc").map(str::to_string),
            default,
            order,
            aliases: alias_strings(object)?,
            props: props(object, &FIELD_RESERVED),
        })
    }

    fn enumeration(
        &mut self,
        json: &Value,
        object: &Map<String, Value>,
        space: Option<&str>,
    ) -> Result<NodeId, InvalidSchema> {
        let mut reserved = SCHEMA_RESERVED.to_vec();
        reserved.push("default");
        let named = self.named(json, object, space, &reserved)?;
        let Some(Value::Array(symbols_json)) = object.get("symbols") else {
            return Err(invalid(format!("Enum has no symbols: {}", excerpt(json))));
        };
        let mut symbols: Vec<String> = Vec::with_capacity(symbols_json.len());
        for symbol in symbols_json {
            let Value::String(symbol) = symbol else {
                return Err(invalid(format!(
                    "an enum symbol is not a string: {}",
                    excerpt(symbol)
                )));
            };
            validate_name(symbol)?;
            if symbols.contains(symbol) {
                return Err(invalid(format!("Duplicate enum symbol: {symbol}")));
            }
            symbols.push(symbol.clone());
        }
        let default = text(object, "default").map(str::to_string);
        if let Some(default) = default
            .as_ref()
            .filter(|default| !symbols.contains(default))
        {
            return Err(invalid(format!(
                "The Enum Default: {default} is not in the enum symbol set: [{}]",
                symbols.join(", ")
            )));
        }
        self.define(Node::Enum {
            named,
            symbols,
            default,
        })
    }

    fn fixed(
        &mut self,
        json: &Value,
        object: &Map<String, Value>,
        space: Option<&str>,
    ) -> Result<NodeId, InvalidSchema> {
        let named = self.named(json, object, space, &SCHEMA_RESERVED)?;
        // Java's limit on a byte array: Integer.MAX_VALUE - 8.
        let size = object
            .get("size")
            .and_then(Value::as_i64)
            .filter(|size| (0..=i64::from(i32::MAX - 8)).contains(size))
            .ok_or_else(|| invalid(format!("Invalid or no size: {}", excerpt(json))))?;
        let size = usize::try_from(size).expect("the size was checked to be small");
        self.define(Node::Fixed { named, size })
    }

    /// Points every use of a name at its definition, then checks unions and defaults, which
    /// need the types behind names.
    fn finish(mut self, root: NodeId, dependency_roots: &[NodeId]) -> Result<Graph, InvalidSchema> {
        let mut redirect: Vec<NodeId> = (0..self.nodes.len()).collect();
        for (id, node) in self.nodes.iter().enumerate() {
            if let Node::Reference(candidates) = node {
                redirect[id] = candidates
                    .iter()
                    .find_map(|candidate| self.names.get(candidate).copied())
                    .ok_or_else(|| {
                        invalid(format!(
                            "Undefined name: {:?} is neither a primitive type nor a type \
                             defined in the schema or its references",
                            candidates.last().expect("a reference has a name")
                        ))
                    })?;
            }
        }
        for node in &mut self.nodes {
            match node {
                Node::Array(inner, _) | Node::Map(inner, _) => *inner = redirect[*inner],
                Node::Union(branches) => {
                    for branch in branches {
                        *branch = redirect[*branch];
                    }
                }
                Node::Record { fields, .. } => {
                    for field in fields {
                        field.node = redirect[field.node];
                    }
                }
                _ => {}
            }
        }
        let referenced = dependency_roots
            .iter()
            .filter_map(|&id| self.nodes[redirect[id]].named())
            .map(|named| named.name.full())
            .collect();
        let graph = Graph {
            nodes: self.nodes,
            root: redirect[root],
            referenced,
        };
        graph.check_unions()?;
        graph.check_defaults()?;
        Ok(graph)
    }
}

impl Graph {
    /// A union may not hold a union, nor two branches of one type (or one name).
    fn check_unions(&self) -> Result<(), InvalidSchema> {
        for node in &self.nodes {
            let Node::Union(branches) = node else {
                continue;
            };
            let mut keys = HashSet::with_capacity(branches.len());
            for &branch in branches {
                let branch = &self.nodes[branch];
                if matches!(branch, Node::Union(_)) {
                    return Err(invalid("Nested union: a union may not hold a union"));
                }
                let key = branch.union_key();
                if !keys.insert(key.clone()) {
                    return Err(invalid(format!("Duplicate in union: {key}")));
                }
            }
        }
        Ok(())
    }

    /// Confluent validates defaults for new schemas (`avro.validate.defaults`).
    fn check_defaults(&self) -> Result<(), InvalidSchema> {
        let mut memo = DefaultMemo::new();
        for node in &self.nodes {
            let Node::Record { fields, .. } = node else {
                continue;
            };
            for field in fields {
                let Some(default) = &field.default else {
                    continue;
                };
                if !self.valid_default(field.node, default, 0, &mut memo)? {
                    return Err(invalid(format!(
                        "Invalid default for field {}: {} not a {}",
                        field.name,
                        excerpt(default),
                        self.describe(field.node)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Java's `Schema.isValidDefault` (1.12: a union's default may match any branch).
    /// Remembered per type and value: a record default that leaves fields out takes theirs,
    /// and records of records of such fields would otherwise be checked exponentially often.
    fn valid_default(
        &self,
        id: NodeId,
        value: &Value,
        depth: usize,
        memo: &mut DefaultMemo,
    ) -> Result<bool, InvalidSchema> {
        if depth > RESOLVED_DEPTH_MAX {
            return Err(too_deep());
        }
        let key = (id, std::ptr::from_ref(value));
        if let Some(&valid) = memo.get(&key) {
            return Ok(valid);
        }
        let valid = self.check_default(id, value, depth, memo)?;
        memo.insert(key, valid);
        Ok(valid)
    }

    fn check_default(
        &self,
        id: NodeId,
        value: &Value,
        depth: usize,
        memo: &mut DefaultMemo,
    ) -> Result<bool, InvalidSchema> {
        Ok(match (&self.nodes[id], value) {
            (Node::Primitive(kind, _), value) => match kind {
                Primitive::Null => value.is_null(),
                Primitive::Boolean => value.is_boolean(),
                Primitive::Int => value
                    .as_i64()
                    .is_some_and(|number| i32::try_from(number).is_ok()),
                Primitive::Long => value.is_i64(),
                Primitive::Float | Primitive::Double => value.is_number(),
                Primitive::Bytes | Primitive::String => value.is_string(),
            },
            (Node::Enum { .. } | Node::Fixed { .. }, value) => value.is_string(),
            (Node::Array(items, _), Value::Array(values)) => {
                for value in values {
                    if !self.valid_default(*items, value, depth + 1, memo)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Node::Map(values_id, _), Value::Object(values)) => {
                for value in values.values() {
                    if !self.valid_default(*values_id, value, depth + 1, memo)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Node::Union(branches), value) => {
                for &branch in branches {
                    if self.valid_default(branch, value, depth + 1, memo)? {
                        return Ok(true);
                    }
                }
                false
            }
            (Node::Record { fields, .. }, Value::Object(values)) => {
                for field in fields {
                    // A field the value leaves out takes the field's own default.
                    let Some(value) = values.get(&field.name).or(field.default.as_ref()) else {
                        return Ok(false);
                    };
                    if !self.valid_default(field.node, value, depth + 1, memo)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }

    fn describe(&self, id: NodeId) -> String {
        let node = &self.nodes[id];
        match node.named() {
            Some(named) => format!("{} {}", node.kind().to_ascii_lowercase(), named.name.full()),
            None => node.kind().to_ascii_lowercase(),
        }
    }

    /// The logical type Java recognises on a node (`LogicalTypes.fromSchemaIgnoreInvalid`):
    /// the properties normalization writes first, in order. None for an unknown or invalid
    /// one, whose properties are then sorted with the rest.
    fn logical_keys(&self, id: NodeId) -> Vec<&'static str> {
        let (props, base, fixed_size) = match &self.nodes[id] {
            Node::Primitive(kind, props) => (props, kind.name(), None),
            Node::Fixed { named, size } => (&named.props, "fixed", Some(*size)),
            _ => return Vec::new(),
        };
        let prop = |key: &str| props.iter().find(|(name, _)| name == key).map(|(_, v)| v);
        let Some(Value::String(logical)) = prop("logicalType") else {
            return Vec::new();
        };
        let valid = match logical.as_str() {
            "decimal" => {
                let int = |key| {
                    prop(key)
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok())
                };
                let precision = int("precision").unwrap_or(0);
                let scale = if prop("scale").is_some() {
                    int("scale")
                } else {
                    Some(0)
                };
                let fits = match fixed_size {
                    // Java: the digits of 2^(8 * size - 1) - 1.
                    Some(size) => {
                        let digits = ((8.0 * size as f64 - 1.0) * 2f64.log10()).floor();
                        f64::from(precision) <= digits
                    }
                    None => base == "bytes",
                };
                match scale {
                    Some(scale) if precision > 0 && (0..=precision).contains(&scale) && fits => {
                        let mut keys = vec!["logicalType", "precision"];
                        if scale != 0 {
                            keys.push("scale");
                        }
                        return keys;
                    }
                    _ => false,
                }
            }
            "big-decimal" => base == "bytes",
            "uuid" => base == "string" || fixed_size == Some(16),
            "date" | "time-millis" => base == "int",
            "time-micros"
            | "timestamp-millis"
            | "timestamp-micros"
            | "timestamp-nanos"
            | "local-timestamp-millis"
            | "local-timestamp-micros"
            | "local-timestamp-nanos" => base == "long",
            "duration" => fixed_size == Some(12),
            _ => false,
        };
        if valid {
            vec!["logicalType"]
        } else {
            Vec::new()
        }
    }
}

/// Writes a graph as Java does: `Schema.toString()` (canonical) or the form Confluent's
/// normalization gives once parsed back and written again (normalized).
struct Renderer<'g> {
    graph: &'g Graph,
    normalize: bool,
    /// Named types already written in full: later uses are written by name.
    known: HashSet<String>,
    out: String,
    memo: DefaultMemo,
}

impl<'g> Renderer<'g> {
    fn render(graph: &'g Graph, normalize: bool) -> Result<String, InvalidSchema> {
        let mut renderer = Renderer {
            graph,
            normalize,
            known: graph.referenced.iter().cloned().collect(),
            out: String::new(),
            memo: DefaultMemo::new(),
        };
        renderer.node(graph.root, None, 0)?;
        Ok(renderer.out)
    }

    fn node(&mut self, id: NodeId, space: Option<&str>, depth: usize) -> Result<(), InvalidSchema> {
        if depth > RESOLVED_DEPTH_MAX {
            return Err(too_deep());
        }
        let graph = self.graph;
        match &graph.nodes[id] {
            Node::Primitive(kind, props) if props.is_empty() => {
                write_string(&mut self.out, kind.name())
            }
            Node::Primitive(kind, props) => {
                self.out.push_str("{\"type\":");
                write_string(&mut self.out, kind.name());
                self.props(id, props);
                self.out.push('}');
            }
            Node::Array(inner, props) | Node::Map(inner, props) => {
                let array = matches!(graph.nodes[id], Node::Array(..));
                self.out.push_str(if array {
                    "{\"type\":\"array\",\"items\":"
                } else {
                    "{\"type\":\"map\",\"values\":"
                });
                self.node(*inner, space, depth + 1)?;
                self.props(id, props);
                self.out.push('}');
            }
            Node::Union(branches) => {
                self.out.push('[');
                for (index, &branch) in branches.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.node(branch, space, depth + 1)?;
                }
                self.out.push(']');
            }
            node => self.named(id, node, space, depth)?,
        }
        Ok(())
    }

    fn named(
        &mut self,
        id: NodeId,
        node: &Node,
        space: Option<&str>,
        depth: usize,
    ) -> Result<(), InvalidSchema> {
        let named = node.named().expect("the other kinds are written by node()");
        if !self.known.insert(named.name.full()) {
            write_string(&mut self.out, &named.name.qualified(space));
            return Ok(());
        }
        let kind = match node {
            Node::Record { error: true, .. } => "error",
            Node::Record { .. } => "record",
            Node::Enum { .. } => "enum",
            _ => "fixed",
        };
        let _ = write!(self.out, "{{\"type\":\"{kind}\",\"name\":");
        write_string(&mut self.out, &named.name.name);
        match (&named.name.space, space) {
            (Some(own), current) if Some(own.as_str()) != current => {
                self.out.push_str(",\"namespace\":");
                write_string(&mut self.out, own);
            }
            (None, Some(_)) => self.out.push_str(",\"namespace\":\"\""),
            _ => {}
        }
        // Confluent's normalization leaves out an empty doc of a named type.
        if let Some(doc) = named
            .doc
            .as_ref()
            .filter(|doc| !(self.normalize && doc.is_empty()))
        {
            self.out.push_str(",\"doc\":");
            write_string(&mut self.out, doc);
        }
        match node {
            Node::Record { fields, .. } => {
                self.out.push_str(",\"fields\":[");
                for (index, field) in fields.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.field(field, named.name.space.as_deref(), depth)?;
                }
                self.out.push(']');
            }
            Node::Enum {
                symbols, default, ..
            } => {
                self.out.push_str(",\"symbols\":[");
                for (index, symbol) in symbols.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    write_string(&mut self.out, symbol);
                }
                self.out.push(']');
                if let Some(default) = default {
                    self.out.push_str(",\"default\":");
                    write_string(&mut self.out, default);
                }
            }
            Node::Fixed { size, .. } => {
                let _ = write!(self.out, ",\"size\":{size}");
            }
            _ => unreachable!("only named kinds reach here"),
        }
        self.props(id, &named.props);
        let mut aliases: Vec<(String, &Name)> = named
            .alias_names()
            .into_iter()
            .zip(&named.aliases)
            .collect();
        if !aliases.is_empty() {
            if self.normalize {
                aliases.sort_by(|(a, _), (b, _)| java_order(a, b));
            }
            self.out.push_str(",\"aliases\":[");
            for (index, (_, alias)) in aliases.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                write_string(&mut self.out, &alias.qualified(named.name.space.as_deref()));
            }
            self.out.push(']');
        }
        self.out.push('}');
        Ok(())
    }

    fn field(
        &mut self,
        field: &Field,
        space: Option<&str>,
        depth: usize,
    ) -> Result<(), InvalidSchema> {
        self.out.push_str("{\"name\":");
        write_string(&mut self.out, &field.name);
        self.out.push_str(",\"type\":");
        self.node(field.node, space, depth + 1)?;
        if let Some(doc) = &field.doc {
            self.out.push_str(",\"doc\":");
            write_string(&mut self.out, doc);
        }
        if let Some(default) = &field.default {
            self.out.push_str(",\"default\":");
            if self.normalize {
                self.default(field.node, default, depth + 1)?;
            } else {
                write_json(&mut self.out, default, false);
            }
        }
        match field.order {
            Order::Ascending => {}
            Order::Descending => self.out.push_str(",\"order\":\"descending\""),
            Order::Ignore => self.out.push_str(",\"order\":\"ignore\""),
        }
        if !field.aliases.is_empty() {
            let mut aliases: Vec<&String> = field.aliases.iter().collect();
            if self.normalize {
                aliases.sort_by(|a, b| java_order(a, b));
            }
            self.out.push_str(",\"aliases\":[");
            for (index, alias) in aliases.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                write_string(&mut self.out, alias);
            }
            self.out.push(']');
        }
        self.field_props(&field.props);
        self.out.push('}');
        Ok(())
    }

    /// Properties of a type: as given, or (normalized) the logical type's first, then the
    /// rest sorted by name, object values with sorted keys.
    fn props(&mut self, id: NodeId, props: &Props) {
        if !self.normalize {
            return self.field_props(props);
        }
        let first = self.graph.logical_keys(id);
        let mut ordered: Vec<&(String, Value)> = first
            .iter()
            .filter_map(|key| props.iter().find(|(name, _)| name == key))
            .collect();
        let mut rest: Vec<&(String, Value)> = props
            .iter()
            .filter(|(name, _)| !first.contains(&name.as_str()))
            .collect();
        rest.sort_by(|(a, _), (b, _)| java_order(a, b));
        ordered.extend(rest);
        for (name, value) in ordered {
            self.out.push(',');
            write_string(&mut self.out, name);
            self.out.push(':');
            write_json(&mut self.out, value, true);
        }
    }

    fn field_props(&mut self, props: &Props) {
        let mut ordered: Vec<&(String, Value)> = props.iter().collect();
        if self.normalize {
            ordered.sort_by(|(a, _), (b, _)| java_order(a, b));
        }
        for (name, value) in ordered {
            self.out.push(',');
            write_string(&mut self.out, name);
            self.out.push(':');
            write_json(&mut self.out, value, self.normalize);
        }
    }

    /// A default as Confluent's normalization writes it (`toJsonNode(field.defaultVal())`):
    /// read through the field's type, so a float field's default is a Java float, a double's a
    /// double, and objects have their keys sorted.
    fn default(&mut self, id: NodeId, value: &Value, depth: usize) -> Result<(), InvalidSchema> {
        if depth > RESOLVED_DEPTH_MAX {
            return Err(too_deep());
        }
        let graph = self.graph;
        match (&graph.nodes[id], value) {
            (Node::Union(branches), value) => {
                // The branch the default belongs to (Java takes the first branch, and drops
                // a default that does not match it; keeping it keeps the schema's meaning).
                let branch = branches
                    .iter()
                    .copied()
                    .find(|&branch| {
                        graph
                            .valid_default(branch, value, depth, &mut self.memo)
                            .unwrap_or(false)
                    })
                    .unwrap_or(branches[0]);
                self.default(branch, value, depth + 1)?;
            }
            (Node::Primitive(Primitive::Float, _), Value::Number(number)) => {
                let number = number.as_f64().unwrap_or_default() as f32;
                self.out.push_str(&java_float(number));
            }
            (Node::Primitive(Primitive::Double, _), Value::Number(number)) => {
                self.out
                    .push_str(&java_double(number.as_f64().unwrap_or_default()));
            }
            (Node::Array(items, _), Value::Array(values)) => {
                self.out.push('[');
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.default(*items, value, depth + 1)?;
                }
                self.out.push(']');
            }
            (Node::Map(values_id, _), Value::Object(values)) => {
                self.object(values, |_| Some(*values_id), depth)?;
            }
            (Node::Record { fields, .. }, Value::Object(values)) => {
                let field_node = |key: &str| {
                    fields
                        .iter()
                        .find(|field| field.name == key)
                        .map(|field| field.node)
                };
                self.object(values, field_node, depth)?;
            }
            (_, value) => write_json(&mut self.out, value, true),
        }
        Ok(())
    }

    fn object(
        &mut self,
        values: &Map<String, Value>,
        node_of: impl Fn(&str) -> Option<NodeId>,
        depth: usize,
    ) -> Result<(), InvalidSchema> {
        let mut entries: Vec<(&String, &Value)> = values.iter().collect();
        entries.sort_by(|(a, _), (b, _)| java_order(a, b));
        self.out.push('{');
        for (index, (key, value)) in entries.into_iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            write_string(&mut self.out, key);
            self.out.push(':');
            match node_of(key) {
                Some(node) => self.default(node, value, depth + 1)?,
                None => write_json(&mut self.out, value, true),
            }
        }
        self.out.push('}');
        Ok(())
    }
}

/// Java's `String.compareTo` (UTF-16 code units), which its `TreeMap`s and `TreeSet`s sort by.
fn java_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A JSON string as Jackson writes it: control characters escaped, `\u` escapes in upper
/// case, everything else (non-ASCII included) as is.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// A JSON value as Jackson writes the tree it parsed: integers as given, other numbers as
/// Java doubles; object keys in order, or sorted (Confluent's normalization).
fn write_json(out: &mut String, value: &Value, sorted: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            let _ = write!(out, "{number}");
        }
        Value::Number(number) => out.push_str(&java_double(number.as_f64().unwrap_or_default())),
        Value::String(text) => write_string(out, text),
        Value::Array(values) => {
            out.push('[');
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json(out, value, sorted);
            }
            out.push(']');
        }
        Value::Object(values) => {
            let mut entries: Vec<(&String, &Value)> = values.iter().collect();
            if sorted {
                entries.sort_by(|(a, _), (b, _)| java_order(a, b));
            }
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, value, sorted);
            }
            out.push('}');
        }
    }
}

/// Java's `Double.toString` (JDK 19 and later: the shortest digits that read back the same).
fn java_double(value: f64) -> String {
    java_number(value.is_finite(), &format!("{value:e}"), value)
}

/// Java's `Float.toString`.
fn java_float(value: f32) -> String {
    java_number(value.is_finite(), &format!("{value:e}"), f64::from(value))
}

/// Lays out the shortest digits of `scientific` (Rust's `{:e}`, e.g. `-1.25e-5`) as Java does:
/// plain decimals from 10^-3 up to 10^7, `1.25E-5` style outside, always a digit after the
/// point.
fn java_number(finite: bool, scientific: &str, value: f64) -> String {
    if !finite {
        return if value.is_nan() {
            "NaN".to_string()
        } else if value > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        };
    }
    let (negative, unsigned) = match scientific.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, scientific),
    };
    let (mantissa, exponent) = unsigned.split_once('e').unwrap_or((unsigned, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if digits.bytes().all(|digit| digit == b'0') {
        out.push_str("0.0");
    } else if (-3..7).contains(&exponent) {
        if exponent >= 0 {
            let whole = usize::try_from(exponent).expect("non-negative") + 1;
            if digits.len() <= whole {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', whole - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..whole]);
                out.push('.');
                out.push_str(&digits[whole..]);
            }
        } else {
            out.push_str("0.");
            let zeros = usize::try_from(-exponent - 1).expect("positive");
            out.extend(std::iter::repeat_n('0', zeros));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        let _ = write!(out, "E{exponent}");
    }
    out
}

/// Why a reader cannot read a writer's data, as Java's `SchemaCompatibility.Incompatibility`.
#[derive(Debug, Clone)]
struct Incompatibility {
    kind: IncompatibilityKind,
    /// The path from the root: Java's location, its first (root) token included.
    location: Vec<String>,
    message: String,
}

#[derive(Debug, Clone, Copy)]
enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl IncompatibilityKind {
    fn name(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => {
                "READER_FIELD_MISSING_DEFAULT_VALUE"
            }
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

/// Confluent's `Difference.toString()`, with the reader as "new" and the writer as "old" (as
/// its BACKWARD check fills them in).
fn difference(incompatibility: &Incompatibility) -> String {
    let path = json_pointer(&incompatibility.location);
    let message = &incompatibility.message;
    let description = match incompatibility.kind {
        IncompatibilityKind::FixedSizeMismatch => format!(
            "The size of FIXED type field at path '{path}' in the new schema does not match \
             with the old schema"
        ),
        IncompatibilityKind::TypeMismatch => format!(
            "The type (path '{path}') of a field in the new schema does not match with the old \
             schema"
        ),
        IncompatibilityKind::NameMismatch => {
            format!("The name of the schema has changed (path '{path}')")
        }
        IncompatibilityKind::MissingEnumSymbols => format!(
            "The new schema is missing enum symbols '{message}' at path '{path}' in the old \
             schema"
        ),
        IncompatibilityKind::MissingUnionBranch => format!(
            "The new schema is missing a type inside a union field at path '{path}' in the old \
             schema"
        ),
        IncompatibilityKind::ReaderFieldMissingDefaultValue => format!(
            "The field '{message}' at path '{path}' in the new schema has no default value and \
             is missing in the old schema"
        ),
    };
    format!(
        "{{errorType:'{}', description:'{description}', additionalInfo:'{message}'}}",
        incompatibility.kind.name()
    )
}

/// Java's `Incompatibility.getLocation()`: a JSON pointer, the root token left out.
fn json_pointer(location: &[String]) -> String {
    let tokens: Vec<String> = location
        .iter()
        .skip(1)
        .map(|token| token.replace('~', "~0").replace('/', "~1"))
        .collect();
    format!("/{}", tokens.join("/"))
}

enum Memo {
    InProgress,
    Done(Vec<Incompatibility>),
}

/// Java's `ReaderWriterCompatibilityChecker`: walks reader and writer together, remembering
/// each pair of nodes (a pair met again while in progress is compatible, which ends the walk
/// through recursive types).
struct Checker<'a> {
    reader: &'a [Node],
    writer: &'a [Node],
    memo: HashMap<(NodeId, NodeId), Memo>,
}

type Checked = Result<Vec<Incompatibility>, String>;

impl Checker<'_> {
    fn compatibility(
        &mut self,
        token: &str,
        reader: NodeId,
        writer: NodeId,
        location: &mut Vec<String>,
        depth: usize,
    ) -> Checked {
        if depth > RESOLVED_DEPTH_MAX {
            return Err(format!(
                "the schemas nest deeper than {RESOLVED_DEPTH_MAX} levels"
            ));
        }
        location.push(token.to_string());
        let result = match self.memo.get(&(reader, writer)) {
            Some(Memo::InProgress) => Ok(Vec::new()),
            Some(Memo::Done(incompatibilities)) => Ok(incompatibilities.clone()),
            None => {
                self.memo.insert((reader, writer), Memo::InProgress);
                let result = self.calculate(reader, writer, location, depth);
                if let Ok(incompatibilities) = &result {
                    self.memo
                        .insert((reader, writer), Memo::Done(incompatibilities.clone()));
                }
                result
            }
        };
        location.pop();
        result
    }

    /// Java's `getCompatibility(reader, writer)`: a check of its own, from a fresh location,
    /// used only to learn whether a union branch fits.
    fn fits(&mut self, reader: NodeId, writer: NodeId, depth: usize) -> Result<bool, String> {
        Ok(self
            .compatibility("", reader, writer, &mut Vec::new(), depth + 1)?
            .is_empty())
    }

    fn calculate(
        &mut self,
        reader: NodeId,
        writer: NodeId,
        location: &mut Vec<String>,
        depth: usize,
    ) -> Checked {
        let (reader_node, writer_node) = (&self.reader[reader], &self.writer[writer]);
        if reader_node.kind() == writer_node.kind() {
            return self.same_kind(reader, writer, location, depth);
        }
        if let Node::Union(branches) = writer_node {
            // Every branch the writer may have written must be readable.
            let mut result = Vec::new();
            for (index, &branch) in branches.iter().enumerate() {
                let token = index.to_string();
                result.extend(self.compatibility(&token, reader, branch, location, depth + 1)?);
            }
            return Ok(result);
        }
        let promoted = match (reader_node, writer_node) {
            (Node::Primitive(reader_kind, _), Node::Primitive(writer_kind, _)) => matches!(
                (reader_kind, writer_kind),
                (Primitive::Long, Primitive::Int)
                    | (Primitive::Float, Primitive::Int | Primitive::Long)
                    | (
                        Primitive::Double,
                        Primitive::Int | Primitive::Long | Primitive::Float
                    )
                    | (Primitive::Bytes, Primitive::String)
                    | (Primitive::String, Primitive::Bytes)
            ),
            _ => false,
        };
        if promoted {
            return Ok(Vec::new());
        }
        if let Node::Union(branches) = reader_node {
            for &branch in branches {
                if self.fits(branch, writer, depth)? {
                    return Ok(Vec::new());
                }
            }
            let message = format!("reader union lacking writer type: {}", writer_node.kind());
            return Ok(vec![incompatibility(
                IncompatibilityKind::MissingUnionBranch,
                location,
                message,
            )]);
        }
        let message = format!(
            "reader type: {} not compatible with writer type: {}",
            reader_node.kind(),
            writer_node.kind()
        );
        Ok(vec![incompatibility(
            IncompatibilityKind::TypeMismatch,
            location,
            message,
        )])
    }

    fn same_kind(
        &mut self,
        reader: NodeId,
        writer: NodeId,
        location: &mut Vec<String>,
        depth: usize,
    ) -> Checked {
        let (reader_node, writer_node) = (&self.reader[reader], &self.writer[writer]);
        match (reader_node, writer_node) {
            (Node::Array(reader_items, _), Node::Array(writer_items, _)) => {
                self.compatibility("items", *reader_items, *writer_items, location, depth + 1)
            }
            (Node::Map(reader_values, _), Node::Map(writer_values, _)) => self.compatibility(
                "values",
                *reader_values,
                *writer_values,
                location,
                depth + 1,
            ),
            (
                Node::Fixed {
                    size: reader_size, ..
                },
                Node::Fixed {
                    size: writer_size, ..
                },
            ) => {
                let mut result = check_names(reader_node, writer_node, location);
                if reader_size != writer_size {
                    location.push("size".to_string());
                    result.push(incompatibility(
                        IncompatibilityKind::FixedSizeMismatch,
                        location,
                        format!("expected: {writer_size}, found: {reader_size}"),
                    ));
                    location.pop();
                }
                Ok(result)
            }
            (
                Node::Enum {
                    symbols: reader_symbols,
                    default,
                    ..
                },
                Node::Enum {
                    symbols: writer_symbols,
                    ..
                },
            ) => {
                let mut result = check_names(reader_node, writer_node, location);
                let missing: BTreeSet<&String> = writer_symbols
                    .iter()
                    .filter(|symbol| !reader_symbols.contains(symbol))
                    .collect();
                // A reader with a default reads unknown symbols as the default.
                if !missing.is_empty() && default.is_none() {
                    let missing: Vec<&str> = missing.into_iter().map(String::as_str).collect();
                    location.push("symbols".to_string());
                    result.push(incompatibility(
                        IncompatibilityKind::MissingEnumSymbols,
                        location,
                        format!("[{}]", missing.join(", ")),
                    ));
                    location.pop();
                }
                Ok(result)
            }
            (Node::Record { .. }, Node::Record { .. }) => {
                let mut result = check_names(reader_node, writer_node, location);
                result.extend(self.fields(reader, writer, location, depth)?);
                Ok(result)
            }
            (Node::Union(_), Node::Union(writer_branches)) => {
                let mut result = Vec::new();
                for (index, &branch) in writer_branches.iter().enumerate() {
                    location.push(index.to_string());
                    if !self.fits(reader, branch, depth)? {
                        let message = format!(
                            "reader union lacking writer type: {}",
                            self.writer[branch].kind()
                        );
                        result.push(incompatibility(
                            IncompatibilityKind::MissingUnionBranch,
                            location,
                            message,
                        ));
                    }
                    location.pop();
                }
                Ok(result)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Every reader field must come from a writer field (by name or alias) or have a default.
    fn fields(
        &mut self,
        reader: NodeId,
        writer: NodeId,
        location: &mut Vec<String>,
        depth: usize,
    ) -> Checked {
        let (
            Node::Record {
                fields: reader_fields,
                named,
                ..
            },
            Node::Record {
                fields: writer_fields,
                ..
            },
        ) = (&self.reader[reader], &self.writer[writer])
        else {
            unreachable!("fields() is called with two records");
        };
        let mut result = Vec::new();
        location.push("fields".to_string());
        for (position, field) in reader_fields.iter().enumerate() {
            location.push(position.to_string());
            let matches: Vec<&Field> = std::iter::once(&field.name)
                .chain(&field.aliases)
                .filter_map(|name| writer_fields.iter().find(|other| &other.name == name))
                .collect();
            match matches.as_slice() {
                [] if field.default.is_some() => {}
                [] => match &self.reader[field.node] {
                    // Java's quirk, kept: an enum field with an enum default is compared with
                    // the writer's record itself.
                    Node::Enum {
                        default: Some(_), ..
                    } => result.extend(self.compatibility(
                        "type",
                        field.node,
                        writer,
                        location,
                        depth + 1,
                    )?),
                    _ => result.push(incompatibility(
                        IncompatibilityKind::ReaderFieldMissingDefaultValue,
                        location,
                        field.name.clone(),
                    )),
                },
                [writer_field] => result.extend(self.compatibility(
                    "type",
                    field.node,
                    writer_field.node,
                    location,
                    depth + 1,
                )?),
                _ => {
                    return Err(format!(
                        "Reader record field {} of {} matches multiple fields in the writer",
                        field.name,
                        named.name.full()
                    ))
                }
            }
            location.pop();
        }
        location.pop();
        Ok(result)
    }
}

fn incompatibility(
    kind: IncompatibilityKind,
    location: &[String],
    message: String,
) -> Incompatibility {
    Incompatibility {
        kind,
        location: location.to_vec(),
        message,
    }
}

/// Java's `checkSchemaNames`: the simple names match (namespaces may differ), or the reader
/// has the writer's full name as an alias.
fn check_names(reader: &Node, writer: &Node, location: &mut Vec<String>) -> Vec<Incompatibility> {
    let (Some(reader), Some(writer)) = (reader.named(), writer.named()) else {
        return Vec::new();
    };
    let writer_full = writer.name.full();
    if reader.name.name == writer.name.name || reader.alias_names().contains(&writer_full) {
        return Vec::new();
    }
    location.push("name".to_string());
    let result = vec![incompatibility(
        IncompatibilityKind::NameMismatch,
        location,
        format!("expected: {writer_full}"),
    )];
    location.pop();
    result
}

/// Reads one datum in Avro's binary encoding.
struct Decoder<'a> {
    nodes: &'a [Node],
    datum: &'a [u8],
    position: usize,
    /// Values decoded so far, against [`DATUM_VALUES_MAX`].
    values: usize,
}

impl Decoder<'_> {
    fn value(&mut self, id: NodeId, depth: usize) -> Result<Value, String> {
        if depth > DATUM_DEPTH_MAX {
            return Err(format!(
                "the datum nests deeper than {DATUM_DEPTH_MAX} levels"
            ));
        }
        self.values += 1;
        if self.values > DATUM_VALUES_MAX {
            return Err(format!(
                "the datum holds more than {DATUM_VALUES_MAX} values"
            ));
        }
        let nodes = self.nodes;
        Ok(match &nodes[id] {
            Node::Primitive(kind, _) => self.primitive(*kind)?,
            Node::Fixed { size, .. } => latin1(self.take(*size)?),
            Node::Enum { symbols, .. } => {
                let index = self.long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|index| symbols.get(index))
                    .ok_or_else(|| format!("enum index {index} out of range"))?;
                Value::String(symbol.clone())
            }
            Node::Union(branches) => {
                let index = self.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|index| branches.get(index))
                    .ok_or_else(|| format!("union branch {index} out of range"))?;
                self.value(*branch, depth + 1)?
            }
            Node::Record { fields, .. } => {
                let mut object = Map::with_capacity(fields.len().min(1024));
                for field in fields {
                    let value = self.value(field.node, depth + 1)?;
                    object.insert(field.name.clone(), value);
                }
                Value::Object(object)
            }
            Node::Array(items, _) => {
                let mut values = Vec::new();
                self.blocks(|decoder| {
                    values.push(decoder.value(*items, depth + 1)?);
                    Ok(())
                })?;
                Value::Array(values)
            }
            Node::Map(values_id, _) => {
                let mut object = Map::new();
                self.blocks(|decoder| {
                    let key = decoder.string()?;
                    let value = decoder.value(*values_id, depth + 1)?;
                    object.insert(key, value);
                    Ok(())
                })?;
                Value::Object(object)
            }
            Node::Reference(_) => unreachable!("references are resolved when parsing"),
        })
    }

    fn primitive(&mut self, kind: Primitive) -> Result<Value, String> {
        Ok(match kind {
            Primitive::Null => Value::Null,
            Primitive::Boolean => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => return Err(format!("invalid boolean byte {other}")),
            },
            Primitive::Int => {
                let number = self.long()?;
                let number =
                    i32::try_from(number).map_err(|_| format!("int {number} out of range"))?;
                Value::from(number)
            }
            Primitive::Long => Value::from(self.long()?),
            Primitive::Float => {
                let bytes: [u8; 4] = self.take(4)?.try_into().expect("took 4 bytes");
                let number = f32::from_le_bytes(bytes);
                // Through the float's shortest digits, so 0.1 shows as 0.1.
                let shown: f64 = number.to_string().parse().unwrap_or(f64::NAN);
                float_value(shown)
            }
            Primitive::Double => {
                let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
                float_value(f64::from_le_bytes(bytes))
            }
            Primitive::Bytes => {
                let length = self.length()?;
                latin1(self.take(length)?)
            }
            Primitive::String => Value::String(self.string()?),
        })
    }

    /// Arrays and maps come in blocks: a count (negative: followed by the block's size in
    /// bytes), the items, until a count of zero.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self)?;
            }
        }
    }

    fn take(&mut self, length: usize) -> Result<&[u8], String> {
        let end = self
            .position
            .checked_add(length)
            .filter(|&end| end <= self.datum.len())
            .ok_or_else(|| {
                format!(
                    "the datum ends early: {length} bytes wanted at byte {}",
                    self.position
                )
            })?;
        let bytes = &self.datum[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    /// A zig-zag varint of at most 10 bytes.
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for index in 0..10 {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                let magnitude = i64::try_from(value >> 1).expect("63 bits fit");
                return Ok(if value & 1 == 0 {
                    magnitude
                } else {
                    -magnitude - 1
                });
            }
        }
        Err("a varint longer than 10 bytes".to_string())
    }

    fn length(&mut self) -> Result<usize, String> {
        let length = self.long()?;
        usize::try_from(length).map_err(|_| format!("negative length {length}"))
    }

    fn string(&mut self) -> Result<String, String> {
        let length = self.length()?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not valid UTF-8".to_string())
    }
}

/// Bytes as Avro's JSON encoding writes them: each byte one character, U+0000 to U+00FF.
fn latin1(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|&byte| char::from(byte)).collect())
}

/// JSON has no NaN or infinities: those show as Java prints them.
fn float_value(number: f64) -> Value {
    match serde_json::Number::from_f64(number) {
        Some(number) => Value::Number(number),
        None => Value::String(java_double(number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_layout() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (23.2, "23.2"),
            (12.3, "12.3"),
            (1000.0, "1000.0"),
            (1234567.0, "1234567.0"),
            (1.0e7, "1.0E7"),
            (1.25e10, "1.25E10"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-1.5e-5, "-1.5E-5"),
            (123.456, "123.456"),
            (0.1, "0.1"),
        ];
        for (value, expected) in cases {
            assert_eq!(java_double(value), expected, "{value}");
        }
        assert_eq!(java_float(12.3), "12.3");
        assert_eq!(java_float(16_777_217.0), "1.6777216E7");
        assert_eq!(java_float(0.1), "0.1");
    }

    #[test]
    fn strings_escape_as_jackson_does() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_only() {
        assert!(check_nesting(&format!("\"{}\"", "[".repeat(1000))).is_ok());
        assert!(check_nesting(&"[".repeat(NESTING_MAX)).is_ok());
        assert!(check_nesting(&"[".repeat(NESTING_MAX + 1)).is_err());
        assert!(check_nesting(r#"{"a":"\"[[["}"#).is_ok());
    }

    #[test]
    fn qualified_names_follow_java() {
        let name = Name::new("com.x.Y", None).unwrap();
        assert_eq!(name.qualified(Some("com.x")), "Y");
        assert_eq!(name.qualified(Some("com")), "com.x.Y");
        assert_eq!(name.qualified(None), "com.x.Y");
        let typed = Name::new("com.x.record", None).unwrap();
        assert_eq!(typed.qualified(Some("com.x")), "com.x.record");
    }

    #[test]
    fn locations_are_json_pointers() {
        let location = ["", "fields", "a/b~c"].map(String::from);
        assert_eq!(json_pointer(&location), "/fields/a~1b~0c");
        assert_eq!(json_pointer(&[String::new()]), "/");
    }
}
