//! Protobuf schemas, the way Confluent Schema Registry's `protobuf-provider` treats them.
//!
//! A schema arrives either as `.proto` source or, from confluent-kafka's Python serializer, as a
//! base64-encoded serialized `FileDescriptorProto`; Confluent accepts both, and so do we. Either
//! way it is compiled with protox (from memory: the schema, its [`Dependency`]s by import path,
//! Google's well-known types and Confluent's own `confluent/meta.proto` and
//! `confluent/type/decimal.proto`) into a resolved descriptor, and everything else is derived
//! from that descriptor:
//!
//! - [`ProtobufSchema::canonical`] renders it back to `.proto` text in the layout of Confluent's
//!   `ProtobufSchemaUtils.toString` (what `canonicalString()` returns), with type names fully
//!   qualified as Confluent prints schemas registered as descriptors;
//! - [`ProtobufSchema::normalized`] is the same printer in Confluent's normalizing mode (sorted
//!   fields, constants, reserved ranges, options and imports);
//! - [`ProtobufSchema::incompatibilities_reading`] carries over Confluent's `diff` package;
//! - [`ProtobufSchema::serialized`] and [`ProtobufSchema::decode`] serve `?format=serialized`
//!   and the web console.
//!
//! Hostile input: the text is scanned for bracket depth before the (recursive) parser sees it,
//! descriptors are decoded by prost (which stops at 100 levels of nesting), and every walk over a
//! schema below is bounded by [`NESTING_MAX`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use prost::Message;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, SerializeOptions, Syntax,
};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::{Dependency, InvalidSchema, NESTING_MAX, SCHEMA_BYTES_MAX};

/// The name the schema's own file gets in the descriptor pool and in [`ProtobufSchema::serialized`]:
/// Confluent names it `default` too (`ProtobufSchema.DEFAULT_NAME`).
const MAIN_FILE_NAME: &str = "default";

/// Largest field number; a reserved or extension range reaching it is printed `to max`.
const FIELD_NUMBER_MAX: i32 = 536_870_911;

/// Base64 as Python's `base64.b64encode` writes it, tolerating missing padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Confluent's own imports, which its registry resolves without a reference
/// (`ProtobufSchema.KNOWN_DEPENDENCIES`); Google's well-known types come with protox.
const CONFLUENT_META_PROTO: &str = r#"syntax = "proto3";
package confluent;

import "google/protobuf/descriptor.proto";

option java_package = "io.confluent.protobuf";
option java_outer_classname = "MetaProto";

message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
  repeated Rule rules = 4;
}
message Rule {
  string name = 1;
  string doc = 2;
  string expr = 3;
  string sql = 4;
}

extend google.protobuf.FileOptions {
  Meta file_meta = 1088;
}
extend google.protobuf.MessageOptions {
  Meta message_meta = 1088;
}
extend google.protobuf.FieldOptions {
  Meta field_meta = 1088;
}
extend google.protobuf.EnumOptions {
  Meta enum_meta = 1088;
}
extend google.protobuf.EnumValueOptions {
  Meta enum_value_meta = 1088;
}
"#;

const CONFLUENT_DECIMAL_PROTO: &str = r#"syntax = "proto3";
package confluent.type;

option java_package = "io.confluent.protobuf.type";
option java_multiple_files = true;
option java_outer_classname = "DecimalProto";

message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#;

/// A compiled Protobuf schema: its own file's descriptor, resolved against its dependencies.
/// Shared behind an `Arc`: it is immutable, and a `Schema` holding it stays small.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    compiled: std::sync::Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    /// Every file the schema needs (its own, its dependencies, the well-known types).
    pool: DescriptorPool,
    /// The schema's own file, named [`MAIN_FILE_NAME`], without source info.
    file: FileDescriptorProto,
    /// Whether the schema arrived as a descriptor: message indexes then count map entries,
    /// as Confluent's do for such schemas (and as the Python client computes them).
    from_descriptor: bool,
    canonical: String,
    normalized: String,
}

impl ProtobufSchema {
    /// Parses `.proto` source or a base64 `FileDescriptorProto`, with `dependencies` (import
    /// path and text, each itself source or base64) available to its imports.
    pub fn parse(
        text: &str,
        dependencies: &[Dependency<'_>],
    ) -> Result<ProtobufSchema, InvalidSchema> {
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(InvalidSchema::new(format!(
                "the schema is {} bytes, more than the {SCHEMA_BYTES_MAX} allowed",
                text.len()
            )));
        }
        let mut files = HashMap::new();
        for dependency in dependencies {
            files.insert(
                dependency.name.to_string(),
                Source::read(dependency.schema)?,
            );
        }
        let main = Source::read(text)?;
        let from_descriptor = matches!(main, Source::Descriptor(_));
        files.insert(MAIN_FILE_NAME.to_string(), main);
        for (name, text) in [
            ("confluent/meta.proto", CONFLUENT_META_PROTO),
            ("confluent/type/decimal.proto", CONFLUENT_DECIMAL_PROTO),
        ] {
            files
                .entry(name.to_string())
                .or_insert_with(|| Source::Text(text.to_string()));
        }

        let mut resolver = ChainFileResolver::new();
        resolver.add(MemoryResolver { files });
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler
            .open_file(MAIN_FILE_NAME)
            .map_err(|error| InvalidSchema::new(format!("invalid Protobuf schema: {error}")))?;
        let pool = compiler.descriptor_pool();
        let mut file = pool
            .get_file_by_name(MAIN_FILE_NAME)
            .ok_or_else(|| InvalidSchema::new("invalid Protobuf schema: the file did not compile"))?
            .file_descriptor_proto()
            .clone();
        file.source_code_info = None;
        let canonical = Printer::new(&file, false).file();
        let normalized = Printer::new(&file, true).file();
        Ok(ProtobufSchema {
            compiled: std::sync::Arc::new(Compiled {
                pool,
                file,
                from_descriptor,
                canonical,
                normalized,
            }),
        })
    }

    /// The `.proto` text the registry stores and returns (Confluent's `canonicalString()`).
    pub fn canonical(&self) -> String {
        self.compiled.canonical.clone()
    }

    /// The text `normalize=true` registers and looks up.
    pub fn normalized(&self) -> String {
        self.compiled.normalized.clone()
    }

    /// Base64 of the serialized `FileDescriptorProto` (`?format=serialized`), the form
    /// confluent-kafka's Python deserializer asks for.
    pub fn serialized(&self) -> String {
        BASE64.encode(self.compiled.file.encode_to_vec())
    }

    /// What keeps a reader using `self` from reading data written with `older`: the
    /// incompatible differences of Confluent's `SchemaDiff.compare(older, self)`, each in
    /// Confluent's text, with the reader called "new" and the writer "old".
    pub fn incompatibilities_reading(&self, older: &ProtobufSchema) -> Vec<String> {
        self.differences_from(older)
            .into_iter()
            .filter(|difference| !difference.kind.is_compatible())
            .map(|difference| difference.to_string())
            .collect()
    }

    /// Every difference (compatible or not) from `older` to `self`, in Confluent's terms.
    pub fn differences_from(&self, older: &ProtobufSchema) -> Vec<Difference> {
        let (Some(original), Some(update)) = (older.main_file(), self.main_file()) else {
            return Vec::new();
        };
        let mut diff = Diff::default();
        diff.files(&original, &update);
        diff.differences
    }

    /// The full name of the message that Confluent's message indexes select: one index per
    /// level, counting the messages declared at that level; empty means the first message.
    pub fn message_name(&self, indexes: &[i32]) -> Option<String> {
        self.message_at(indexes)
            .map(|message| message.full_name().to_string())
    }

    /// Decodes a record value written by a Confluent Protobuf serializer, given the bytes after
    /// the 5-byte header (magic byte and schema id): the message indexes (a zigzag varint count,
    /// then that many zigzag varints; a count of 0 means the first message), then the message.
    /// Returns the message as Protobuf JSON, with default values shown.
    pub fn decode(&self, payload: &[u8]) -> Result<serde_json::Value, String> {
        let mut rest = payload;
        let count = read_zigzag(&mut rest)?;
        // Each index takes at least one byte, so a count past the bytes left is a lie.
        if count < 0 || count as usize > rest.len() {
            return Err(format!("invalid message index count {count}"));
        }
        let mut indexes = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let index = read_zigzag(&mut rest)?;
            indexes
                .push(i32::try_from(index).map_err(|_| format!("invalid message index {index}"))?);
        }
        let message = self
            .message_at(&indexes)
            .ok_or_else(|| format!("no message at indexes {indexes:?} in the schema"))?;
        let decoded = DynamicMessage::decode(message, rest)
            .map_err(|error| format!("invalid Protobuf message: {error}"))?;
        let options = SerializeOptions::new().skip_default_fields(false);
        decoded
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|error| format!("cannot render the message as JSON: {error}"))
    }

    fn main_file(&self) -> Option<FileDescriptor> {
        self.compiled.pool.get_file_by_name(MAIN_FILE_NAME)
    }

    fn message_at(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let indexes = if indexes.is_empty() {
            &[0][..]
        } else {
            indexes
        };
        let counted =
            |message: &MessageDescriptor| self.compiled.from_descriptor || !message.is_map_entry();
        let file = self.main_file()?;
        let first = usize::try_from(indexes[0]).ok()?;
        let mut message = file.messages().filter(counted).nth(first)?;
        for &index in &indexes[1..] {
            let index = usize::try_from(index).ok()?;
            let child = message.child_messages().filter(counted).nth(index)?;
            message = child;
        }
        Some(message)
    }
}

/// Reads one zigzag-encoded varint (Confluent writes message indexes with `ByteUtils.writeVarint`).
fn read_zigzag(buf: &mut &[u8]) -> Result<i64, String> {
    let raw =
        prost::encoding::decode_varint(buf).map_err(|_| "truncated message indexes".to_string())?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

// ---------------------------------------------------------------------------------------------
// Reading and compiling

/// One file's text as given: `.proto` source, or the bytes of a serialized descriptor.
enum Source {
    Text(String),
    Descriptor(Vec<u8>),
}

impl Source {
    /// Tells the two forms apart as Confluent does (source first, then base64), refusing
    /// source nested deeper than [`NESTING_MAX`] before any recursive parser sees it.
    fn read(text: &str) -> Result<Source, InvalidSchema> {
        if let Some(bytes) = descriptor_bytes(text) {
            return Ok(Source::Descriptor(bytes));
        }
        let depth = bracket_depth(text);
        if depth > NESTING_MAX {
            return Err(InvalidSchema::new(format!(
                "invalid Protobuf schema: nested {depth} levels deep, more than the {NESTING_MAX} allowed"
            )));
        }
        Ok(Source::Text(text.to_string()))
    }
}

/// The bytes of a base64 `FileDescriptorProto`, if `text` is one. `.proto` source always has
/// a character outside the base64 alphabet (a space, `;` or `{`), so it never decodes.
fn descriptor_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let bytes = BASE64.decode(text).ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    Some(bytes)
}

/// The deepest nesting of brackets (`{`, `[`, `(`, `<`) in `.proto` source, outside string
/// literals and comments: messages, enums, oneofs and option literals all nest this way.
fn bracket_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'/' if bytes.get(at + 1) == Some(&b'/') => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at += 2;
                while at < bytes.len() && !(bytes[at] == b'*' && bytes.get(at + 1) == Some(&b'/')) {
                    at += 1;
                }
                at += 1;
            }
            quote @ (b'"' | b'\'') => {
                at += 1;
                while at < bytes.len() && bytes[at] != quote && bytes[at] != b'\n' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' | b'<' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// Serves the schema, its dependencies and Confluent's imports from memory.
struct MemoryResolver {
    files: HashMap<String, Source>,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            None => Err(protox::Error::file_not_found(name)),
            Some(Source::Text(text)) => File::from_source(name, text),
            Some(Source::Descriptor(bytes)) => {
                // A descriptor names itself; the import path it is known by wins. Appending
                // the name field overrides the one inside (the last value of a field wins)
                // and keeps the rest, custom options included, byte for byte.
                let mut bytes = bytes.clone();
                FileDescriptorProto {
                    name: Some(name.to_string()),
                    ..Default::default()
                }
                .encode(&mut bytes)
                .map_err(protox::Error::new)?;
                File::decode_file_descriptor_proto(bytes.as_slice()).map_err(|error| {
                    protox::Error::new(format!("{name} is not a valid descriptor: {error}"))
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Printing: Confluent's ProtobufSchemaUtils.toString over the elements it builds from a
// FileDescriptorProto (ProtobufSchema.toProtoFile), with maps written as `map<K, V>` so that the
// text compiles back to the same descriptor.

struct Printer<'a> {
    file: &'a FileDescriptorProto,
    normalize: bool,
    proto3: bool,
}

/// An option as printed: its name and its value already formatted.
type OptionText = (String, String);

impl<'a> Printer<'a> {
    fn new(file: &'a FileDescriptorProto, normalize: bool) -> Printer<'a> {
        Printer {
            file,
            normalize,
            proto3: file.syntax() == "proto3",
        }
    }

    fn file(&self) -> String {
        let file = self.file;
        let mut out = String::new();
        match file.syntax() {
            "proto3" => out.push_str("syntax = \"proto3\";\n"),
            "proto2" if !self.normalize => out.push_str("syntax = \"proto2\";\n"),
            _ => {}
        }
        if !file.package().is_empty() {
            out.push_str(&format!("package {};\n", file.package()));
        }
        self.imports(&mut out);
        let options = self.sorted(file_options(file));
        if !options.is_empty() {
            out.push('\n');
            for option in &options {
                out.push_str(&option_statement(option));
            }
        }
        let scope = package_scope(file.package());
        if !file.message_type.is_empty() || !file.enum_type.is_empty() {
            out.push('\n');
            for message in &file.message_type {
                out.push_str(&self.message(message, &scope));
            }
            for enumeration in &file.enum_type {
                out.push_str(&self.enumeration(enumeration));
            }
        }
        if !file.extension.is_empty() {
            out.push('\n');
            out.push_str(&self.extends(&file.extension));
        }
        if !file.service.is_empty() {
            out.push('\n');
            for service in &file.service {
                out.push_str(&self.service(service));
            }
        }
        out
    }

    fn imports(&self, out: &mut String) {
        let file = self.file;
        let mut plain = Vec::new();
        let mut public = Vec::new();
        let mut weak = Vec::new();
        for (index, name) in file.dependency.iter().enumerate() {
            let index = index as i32;
            if file.public_dependency.contains(&index) {
                public.push(name.as_str());
            } else if file.weak_dependency.contains(&index) {
                weak.push(name.as_str());
            } else {
                plain.push(name.as_str());
            }
        }
        if plain.is_empty() && public.is_empty() && weak.is_empty() {
            return;
        }
        out.push('\n');
        for (kind, mut names) in [("", plain), ("public ", public), ("weak ", weak)] {
            if self.normalize {
                names.sort_unstable();
                names.dedup();
            }
            for name in names {
                out.push_str(&format!("import {kind}\"{}\";\n", escape(name)));
            }
        }
    }

    /// A message; `scope` is the fully qualified name of what encloses it, with a leading dot.
    fn message(&self, message: &DescriptorProto, scope: &str) -> String {
        let full_name = format!("{scope}.{}", message.name());
        let mut out = format!("message {} {{", message.name());
        self.reserved(
            &mut out,
            message
                .reserved_range
                .iter()
                .map(|range| (range.start(), range.end() - 1)),
            &message.reserved_name,
        );
        let options = self.sorted(message_options(message));
        if !options.is_empty() {
            out.push('\n');
            for option in &options {
                append_indented(&mut out, &option_statement(option));
            }
        }
        let in_real_oneof =
            |field: &FieldDescriptorProto| field.oneof_index.is_some() && !field.proto3_optional();
        let mut fields: Vec<&FieldDescriptorProto> =
            message.field.iter().filter(|f| !in_real_oneof(f)).collect();
        if self.normalize {
            fields.sort_by_key(|field| field.number());
        }
        if !fields.is_empty() {
            out.push('\n');
            for field in fields {
                append_indented(
                    &mut out,
                    &self.field(field, Some(message), &full_name, false),
                );
            }
        }
        self.oneofs(&mut out, message, &full_name);
        self.extension_ranges(&mut out, message);
        if !message.extension.is_empty() {
            out.push('\n');
            append_indented(&mut out, &self.extends(&message.extension));
        }
        let nested: Vec<&DescriptorProto> = message
            .nested_type
            .iter()
            .filter(|nested| !is_map_entry(nested))
            .collect();
        if !nested.is_empty() || !message.enum_type.is_empty() {
            out.push('\n');
            for nested in nested {
                append_indented(&mut out, &self.message(nested, &full_name));
            }
            for enumeration in &message.enum_type {
                append_indented(&mut out, &self.enumeration(enumeration));
            }
        }
        out.push_str("}\n");
        out
    }

    fn oneofs(&self, out: &mut String, message: &DescriptorProto, full_name: &str) {
        let mut oneofs: Vec<(&str, Vec<&FieldDescriptorProto>)> = message
            .oneof_decl
            .iter()
            .enumerate()
            .map(|(index, oneof)| {
                let members = message
                    .field
                    .iter()
                    .filter(|field| {
                        field.oneof_index == Some(index as i32) && !field.proto3_optional()
                    })
                    .collect();
                (oneof.name(), members)
            })
            .filter(|(_, members): &(&str, Vec<_>)| !members.is_empty())
            .collect();
        if oneofs.is_empty() {
            return;
        }
        if self.normalize {
            for (_, members) in &mut oneofs {
                members.sort_by_key(|field| field.number());
            }
            oneofs.sort_by_key(|(_, members)| members[0].number());
        }
        out.push('\n');
        for (name, members) in oneofs {
            let mut text = format!("oneof {name} {{\n");
            for field in members {
                append_indented(
                    &mut text,
                    &self.field(field, Some(message), full_name, true),
                );
            }
            text.push_str("}\n");
            append_indented(out, &text);
        }
    }

    fn extension_ranges(&self, out: &mut String, message: &DescriptorProto) {
        let mut ranges: Vec<(i32, i32)> = message
            .extension_range
            .iter()
            .map(|range| (range.start(), range.end() - 1))
            .collect();
        if ranges.is_empty() {
            return;
        }
        if self.normalize {
            ranges.sort_unstable();
        }
        out.push('\n');
        for range in ranges {
            append_indented(out, &format!("extensions {};\n", self.range(range)));
        }
    }

    /// `extend` blocks, one per extended message in order of first appearance.
    fn extends(&self, extensions: &[FieldDescriptorProto]) -> String {
        let mut extendees: Vec<(&str, Vec<&FieldDescriptorProto>)> = Vec::new();
        for field in extensions {
            match extendees
                .iter_mut()
                .find(|(name, _)| *name == field.extendee())
            {
                Some((_, fields)) => fields.push(field),
                None => extendees.push((field.extendee(), vec![field])),
            }
        }
        let mut out = String::new();
        for (extendee, mut fields) in extendees {
            if self.normalize {
                fields.sort_by_key(|field| field.number());
            }
            out.push_str(&format!("extend {extendee} {{\n"));
            for field in fields {
                append_indented(&mut out, &self.field(field, None, "", false));
            }
            out.push_str("}\n");
        }
        out
    }

    /// A field; `message` (with its full name) is where map entries are looked up.
    fn field(
        &self,
        field: &FieldDescriptorProto,
        message: Option<&DescriptorProto>,
        full_name: &str,
        in_oneof: bool,
    ) -> String {
        let map_entry = message.and_then(|message| {
            let entry_name = field
                .type_name()
                .strip_prefix(full_name)?
                .strip_prefix('.')?;
            message
                .nested_type
                .iter()
                .find(|nested| nested.name() == entry_name && is_map_entry(nested))
        });
        let mut out = String::new();
        match map_entry {
            Some(entry) => {
                let key = entry.field.iter().find(|f| f.number() == 1);
                let value = entry.field.iter().find(|f| f.number() == 2);
                let (Some(key), Some(value)) = (key, value) else {
                    return String::new();
                };
                out.push_str(&format!("map<{}, {}>", type_name(key), type_name(value)));
            }
            None => {
                if let Some(label) = self.label(field, in_oneof) {
                    out.push_str(label);
                    out.push(' ');
                }
                out.push_str(&type_name(field));
            }
        }
        out.push_str(&format!(" {} = {}", field.name(), field.number()));
        let mut options = field_options(field);
        if !self.proto3 {
            if let Some(default) = &field.default_value {
                let value = match field.r#type() {
                    Type::String => format!("\"{}\"", escape(default)),
                    // Kept as the descriptor has it: C-escaped already.
                    Type::Bytes => format!("\"{default}\""),
                    _ => default.clone(),
                };
                options.push(("default".to_string(), value));
            }
        }
        if let Some(json_name) = &field.json_name {
            // protoc and protox fill json_name in on every field; only one set explicitly,
            // different from the name protoc derives, is worth printing.
            if *json_name != default_json_name(field.name()) {
                options.push((
                    "json_name".to_string(),
                    format!("\"{}\"", escape(json_name)),
                ));
            }
        }
        let options = self.sorted(options);
        if !options.is_empty() {
            out.push(' ');
            out.push_str(&bracketed(&options));
        }
        out.push_str(";\n");
        out
    }

    /// Confluent's `ProtobufSchema.label`: proto3 prints only `repeated` and `optional`.
    fn label(&self, field: &FieldDescriptorProto, in_oneof: bool) -> Option<&'static str> {
        if in_oneof {
            return None;
        }
        if field.proto3_optional() {
            return Some("optional");
        }
        match field.label() {
            Label::Repeated => Some("repeated"),
            Label::Required if !self.proto3 => Some("required"),
            Label::Optional if !self.proto3 => Some("optional"),
            _ => None,
        }
    }

    fn enumeration(&self, enumeration: &EnumDescriptorProto) -> String {
        let mut out = format!("enum {} {{", enumeration.name());
        let has_reserved =
            !enumeration.reserved_range.is_empty() || !enumeration.reserved_name.is_empty();
        self.reserved(
            &mut out,
            enumeration
                .reserved_range
                .iter()
                .map(|range| (range.start(), range.end())),
            &enumeration.reserved_name,
        );
        let options = self.sorted(enum_options(enumeration));
        if !has_reserved && (!options.is_empty() || !enumeration.value.is_empty()) {
            out.push('\n');
        }
        for option in &options {
            append_indented(&mut out, &option_statement(option));
        }
        let mut values: Vec<_> = enumeration.value.iter().collect();
        if self.normalize {
            values.sort_by(|a, b| (a.number(), a.name()).cmp(&(b.number(), b.name())));
        }
        for value in values {
            let mut line = format!("{} = {}", value.name(), value.number());
            let mut options = Vec::new();
            if let Some(deprecated) = value.options.as_ref().and_then(|o| o.deprecated) {
                options.push(("deprecated".to_string(), deprecated.to_string()));
            }
            if !options.is_empty() {
                line.push(' ');
                line.push_str(&bracketed(&options));
            }
            line.push_str(";\n");
            append_indented(&mut out, &line);
        }
        out.push_str("}\n");
        out
    }

    /// `reserved` statements: one per range and per name as Confluent builds them, split
    /// and sorted when normalizing. `ranges` are inclusive.
    fn reserved(
        &self,
        out: &mut String,
        ranges: impl Iterator<Item = (i32, i32)>,
        names: &[String],
    ) {
        let mut items: Vec<(i32, String)> = ranges
            .map(|range| (range.0, self.range(range)))
            .chain(names.iter().map(|name| (i32::MAX, format!("\"{name}\""))))
            .collect();
        if items.is_empty() {
            return;
        }
        if self.normalize {
            items.sort();
        }
        out.push('\n');
        for (_, item) in items {
            append_indented(out, &format!("reserved {item};\n"));
        }
    }

    /// An inclusive range as Confluent prints it (`5`, `5 to 9`, `5 to max`).
    fn range(&self, (start, end): (i32, i32)) -> String {
        if start == end {
            start.to_string()
        } else if end >= FIELD_NUMBER_MAX {
            format!("{start} to max")
        } else {
            format!("{start} to {end}")
        }
    }

    fn service(&self, service: &ServiceDescriptorProto) -> String {
        let mut out = format!("service {} {{", service.name());
        let options = self.sorted(
            service
                .options
                .as_ref()
                .and_then(|o| o.deprecated)
                .map(|d| ("deprecated".to_string(), d.to_string()))
                .into_iter()
                .collect(),
        );
        if !options.is_empty() {
            out.push('\n');
            for option in &options {
                append_indented(&mut out, &option_statement(option));
            }
        }
        if !service.method.is_empty() {
            out.push('\n');
            for method in &service.method {
                let stream = |yes: bool| if yes { "stream " } else { "" };
                let mut line = format!(
                    "rpc {} ({}{}) returns ({}{})",
                    method.name(),
                    stream(method.client_streaming()),
                    method.input_type(),
                    stream(method.server_streaming()),
                    method.output_type()
                );
                let mut options = Vec::new();
                if let Some(options_proto) = &method.options {
                    if let Some(deprecated) = options_proto.deprecated {
                        options.push(("deprecated".to_string(), deprecated.to_string()));
                    }
                    if options_proto.idempotency_level.is_some() {
                        options.push((
                            "idempotency_level".to_string(),
                            options_proto.idempotency_level().as_str_name().to_string(),
                        ));
                    }
                }
                let options = self.sorted(options);
                if !options.is_empty() {
                    line.push_str(" {\n");
                    for option in &options {
                        append_indented(&mut line, &option_statement(option));
                    }
                    line.push('}');
                }
                line.push_str(";\n");
                append_indented(&mut out, &line);
            }
        }
        out.push_str("}\n");
        out
    }

    /// Options in Confluent's order, or sorted by name when normalizing.
    fn sorted(&self, mut options: Vec<OptionText>) -> Vec<OptionText> {
        if self.normalize {
            options.sort_by(|a, b| a.0.cmp(&b.0));
        }
        options
    }
}

fn package_scope(package: &str) -> String {
    if package.is_empty() {
        String::new()
    } else {
        format!(".{package}")
    }
}

fn is_map_entry(message: &DescriptorProto) -> bool {
    message.options.as_ref().and_then(|o| o.map_entry) == Some(true)
}

/// A field's type as Confluent's `dataType` gives it: the (fully qualified) type name for
/// messages and enums, the scalar's name otherwise.
fn type_name(field: &FieldDescriptorProto) -> String {
    if let Some(name) = &field.type_name {
        return name.clone();
    }
    match field.r#type() {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
    .to_string()
}

/// The JSON name protoc derives from a field name (`ToJsonName`): underscores dropped, the
/// letter after each one upper-cased.
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn string_option(name: &str, value: &Option<String>) -> Option<OptionText> {
    value
        .as_ref()
        .map(|value| (name.to_string(), format!("\"{}\"", escape(value))))
}

fn bool_option(name: &str, value: Option<bool>) -> Option<OptionText> {
    value.map(|value| (name.to_string(), value.to_string()))
}

/// File options in the order of Confluent's `toProtoFile`.
fn file_options(file: &FileDescriptorProto) -> Vec<OptionText> {
    let Some(o) = &file.options else {
        return Vec::new();
    };
    [
        string_option("java_package", &o.java_package),
        string_option("java_outer_classname", &o.java_outer_classname),
        bool_option("java_multiple_files", o.java_multiple_files),
        #[allow(deprecated)]
        bool_option(
            "java_generate_equals_and_hash",
            o.java_generate_equals_and_hash,
        ),
        bool_option("java_string_check_utf8", o.java_string_check_utf8),
        o.optimize_for.map(|_| {
            (
                "optimize_for".to_string(),
                o.optimize_for().as_str_name().to_string(),
            )
        }),
        string_option("go_package", &o.go_package),
        bool_option("cc_generic_services", o.cc_generic_services),
        bool_option("java_generic_services", o.java_generic_services),
        bool_option("py_generic_services", o.py_generic_services),
        bool_option("deprecated", o.deprecated),
        bool_option("cc_enable_arenas", o.cc_enable_arenas),
        string_option("objc_class_prefix", &o.objc_class_prefix),
        string_option("csharp_namespace", &o.csharp_namespace),
        string_option("swift_prefix", &o.swift_prefix),
        string_option("php_class_prefix", &o.php_class_prefix),
        string_option("php_namespace", &o.php_namespace),
        string_option("php_metadata_namespace", &o.php_metadata_namespace),
        string_option("ruby_package", &o.ruby_package),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn message_options(message: &DescriptorProto) -> Vec<OptionText> {
    let Some(o) = &message.options else {
        return Vec::new();
    };
    [
        bool_option("message_set_wire_format", o.message_set_wire_format),
        bool_option(
            "no_standard_descriptor_accessor",
            o.no_standard_descriptor_accessor,
        ),
        bool_option("deprecated", o.deprecated),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn field_options(field: &FieldDescriptorProto) -> Vec<OptionText> {
    let Some(o) = &field.options else {
        return Vec::new();
    };
    [
        o.ctype
            .map(|_| ("ctype".to_string(), o.ctype().as_str_name().to_string())),
        bool_option("packed", o.packed),
        o.jstype
            .map(|_| ("jstype".to_string(), o.jstype().as_str_name().to_string())),
        bool_option("lazy", o.lazy),
        bool_option("deprecated", o.deprecated),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn enum_options(enumeration: &EnumDescriptorProto) -> Vec<OptionText> {
    let Some(o) = &enumeration.options else {
        return Vec::new();
    };
    [
        bool_option("allow_alias", o.allow_alias),
        bool_option("deprecated", o.deprecated),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn option_statement((name, value): &OptionText) -> String {
    format!("option {name} = {value};\n")
}

/// Field and enum value options: `[a = 1]`, or one per line when there are several.
fn bracketed(options: &[OptionText]) -> String {
    if let [(name, value)] = options {
        return format!("[{name} = {value}]");
    }
    let mut out = String::from("[\n");
    for (index, (name, value)) in options.iter().enumerate() {
        let separator = if index + 1 < options.len() { "," } else { "" };
        append_indented(&mut out, &format!("{name} = {value}{separator}"));
    }
    out.push(']');
    out
}

/// Confluent's `appendIndented`: every line of `value` indented by two spaces (Java's
/// `split("\n")`, which drops trailing empty lines).
fn append_indented(out: &mut String, value: &str) {
    for line in value.trim_end_matches('\n').split('\n') {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Confluent's `escapeChars` for string literals.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Compatibility: Confluent's protobuf-provider `diff` package (SchemaDiff, MessageSchemaDiff,
// FieldSchemaDiff, EnumSchemaDiff), over resolved descriptors instead of parsed elements.

/// Confluent's `Difference.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DifferenceKind {
    PackageChanged,
    MessageAdded,
    MessageRemoved,
    MessageMoved,
    EnumAdded,
    EnumRemoved,
    EnumConstAdded,
    EnumConstChanged,
    EnumConstRemoved,
    FieldAdded,
    FieldRemoved,
    FieldNameChanged,
    FieldKindChanged,
    FieldScalarKindChanged,
    FieldNamedTypeChanged,
    FieldNumericLabelChanged,
    FieldStringOrBytesLabelChanged,
    RequiredFieldAdded,
    RequiredFieldRemoved,
    OneofAdded,
    OneofRemoved,
    OneofFieldAdded,
    OneofFieldRemoved,
    OneofFieldMovedToTopLevel,
    MultipleFieldsMovedToOneof,
    FieldMovedToExistingOneof,
}

impl DifferenceKind {
    /// Confluent's `SchemaDiff.COMPATIBLE_CHANGES`.
    pub fn is_compatible(self) -> bool {
        use DifferenceKind::*;
        matches!(
            self,
            MessageAdded
                | MessageMoved
                | EnumAdded
                | EnumRemoved
                | EnumConstAdded
                | EnumConstChanged
                | EnumConstRemoved
                | FieldAdded
                | FieldRemoved
                | FieldNameChanged
                | FieldStringOrBytesLabelChanged
                | OneofAdded
                | OneofRemoved
                | OneofFieldAdded
                | OneofFieldMovedToTopLevel
        )
    }

    pub fn name(self) -> &'static str {
        use DifferenceKind::*;
        match self {
            PackageChanged => "PACKAGE_CHANGED",
            MessageAdded => "MESSAGE_ADDED",
            MessageRemoved => "MESSAGE_REMOVED",
            MessageMoved => "MESSAGE_MOVED",
            EnumAdded => "ENUM_ADDED",
            EnumRemoved => "ENUM_REMOVED",
            EnumConstAdded => "ENUM_CONST_ADDED",
            EnumConstChanged => "ENUM_CONST_CHANGED",
            EnumConstRemoved => "ENUM_CONST_REMOVED",
            FieldAdded => "FIELD_ADDED",
            FieldRemoved => "FIELD_REMOVED",
            FieldNameChanged => "FIELD_NAME_CHANGED",
            FieldKindChanged => "FIELD_KIND_CHANGED",
            FieldScalarKindChanged => "FIELD_SCALAR_KIND_CHANGED",
            FieldNamedTypeChanged => "FIELD_NAMED_TYPE_CHANGED",
            FieldNumericLabelChanged => "FIELD_NUMERIC_LABEL_CHANGED",
            FieldStringOrBytesLabelChanged => "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
            RequiredFieldAdded => "REQUIRED_FIELD_ADDED",
            RequiredFieldRemoved => "REQUIRED_FIELD_REMOVED",
            OneofAdded => "ONEOF_ADDED",
            OneofRemoved => "ONEOF_REMOVED",
            OneofFieldAdded => "ONEOF_FIELD_ADDED",
            OneofFieldRemoved => "ONEOF_FIELD_REMOVED",
            OneofFieldMovedToTopLevel => "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
            MultipleFieldsMovedToOneof => "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            FieldMovedToExistingOneof => "FIELD_MOVED_TO_EXISTING_ONEOF",
        }
    }
}

/// One difference between two schemas, at a path like `#/Outer/Inner/3` (message names, oneof
/// names and field numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub path: String,
}

impl std::fmt::Display for Difference {
    /// Confluent's `Difference.toString()`, with its `%s`s filled in as its `canReadStrategy`
    /// does: the reader is "new", the writer "old".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use DifferenceKind::*;
        let path = &self.path;
        let description = match self.kind {
            PackageChanged => format!(
                "The package at '{path}' in the new schema does not match the package in the old schema"
            ),
            MessageRemoved => format!(
                "The new schema is missing a MESSAGE type at path '{path}' in the old schema"
            ),
            FieldKindChanged => format!(
                "The type of a field at path '{path}' in the new schema does not match the old schema"
            ),
            FieldScalarKindChanged => format!(
                "The kind of a SCALAR field at path '{path}' in the new schema does not match its kind in the old schema"
            ),
            FieldNamedTypeChanged => format!(
                "The type of a MESSAGE field at path '{path}' in the new schema does not match its type in the old schema"
            ),
            FieldNumericLabelChanged => format!(
                "The label for a NUMERIC field at path '{path}' in the new schema does not match its label in the old schema"
            ),
            RequiredFieldAdded => format!(
                "A required field  at path '{path}' in the new schema is missing in the old schema"
            ),
            RequiredFieldRemoved => format!(
                "The new schema is missing a required field at path: '{path}' in the old schema"
            ),
            OneofFieldRemoved => format!(
                "The new schema is missing a oneof field at path '{path}' in the old schema"
            ),
            OneofFieldMovedToTopLevel => format!(
                "The oneof field at path '{path}' in the new schema was moved out of its oneof to a top-level field in the old schema"
            ),
            MultipleFieldsMovedToOneof => format!(
                "Multiple fields in the oneof at path '{path}' in the new schema are outside a oneof in the old schema"
            ),
            FieldMovedToExistingOneof => format!(
                "A field in the oneof at path '{path}' in the new schema is outside an existing oneof in the old schema"
            ),
            _ => String::new(),
        };
        write!(
            f,
            "{{errorType:\"{}\", description:\"{description}\"}}",
            self.kind.name()
        )
    }
}

/// What a field holds, as `FieldSchemaDiff` classifies it.
enum FieldType {
    Scalar(&'static str),
    Enum,
    Message(MessageDescriptor),
    Map(Box<FieldType>, Box<FieldType>),
}

impl FieldType {
    fn of(kind: Kind) -> FieldType {
        match kind {
            Kind::Message(message) if message.is_map_entry() => FieldType::Map(
                Box::new(FieldType::of(message.map_entry_key_field().kind())),
                Box::new(FieldType::of(message.map_entry_value_field().kind())),
            ),
            Kind::Message(message) => FieldType::Message(message),
            Kind::Enum(_) => FieldType::Enum,
            Kind::Double => FieldType::Scalar("double"),
            Kind::Float => FieldType::Scalar("float"),
            Kind::Int32 => FieldType::Scalar("int32"),
            Kind::Int64 => FieldType::Scalar("int64"),
            Kind::Uint32 => FieldType::Scalar("uint32"),
            Kind::Uint64 => FieldType::Scalar("uint64"),
            Kind::Sint32 => FieldType::Scalar("sint32"),
            Kind::Sint64 => FieldType::Scalar("sint64"),
            Kind::Fixed32 => FieldType::Scalar("fixed32"),
            Kind::Fixed64 => FieldType::Scalar("fixed64"),
            Kind::Sfixed32 => FieldType::Scalar("sfixed32"),
            Kind::Sfixed64 => FieldType::Scalar("sfixed64"),
            Kind::Bool => FieldType::Scalar("bool"),
            Kind::String => FieldType::Scalar("string"),
            Kind::Bytes => FieldType::Scalar("bytes"),
        }
    }

    /// `FieldSchemaDiff.Kind`: enums count as scalars.
    fn kind(&self) -> u8 {
        match self {
            FieldType::Scalar(_) | FieldType::Enum => 0,
            FieldType::Map(..) => 1,
            FieldType::Message(_) => 2,
        }
    }

    /// `FieldSchemaDiff.ScalarKind`: the groups of scalars whose encodings are interchangeable.
    fn scalar_kind(&self) -> &'static str {
        match self {
            FieldType::Enum => "GENERAL_NUMBER",
            FieldType::Scalar(name) => match *name {
                "int32" | "int64" | "uint32" | "uint64" | "bool" => "GENERAL_NUMBER",
                "sint32" | "sint64" => "SIGNED_NUMBER",
                "string" | "bytes" => "STRING_OR_BYTES",
                "fixed32" | "sfixed32" => "FIXED32",
                "fixed64" | "sfixed64" => "FIXED64",
                "float" => "FLOAT",
                _ => "DOUBLE",
            },
            _ => "ANY",
        }
    }
}

/// A field's label as Confluent's elements carry it: none for plain proto3 fields and oneof
/// members, so that only two explicit labels can differ.
fn field_label(field: &FieldDescriptor) -> Option<Cardinality> {
    if field
        .containing_oneof()
        .is_some_and(|oneof| !oneof.is_synthetic())
    {
        return None;
    }
    if field.field_descriptor_proto().proto3_optional() {
        return Some(Cardinality::Optional);
    }
    match (field.parent_file().syntax(), field.cardinality()) {
        (_, Cardinality::Repeated) => Some(Cardinality::Repeated),
        (Syntax::Proto3, _) => None,
        (_, cardinality) => Some(cardinality),
    }
}

fn is_required(field: &FieldDescriptor) -> bool {
    field.field_descriptor_proto().label() == Label::Required
}

/// The comparison's state: Confluent's `diff.Context`.
#[derive(Default)]
struct Diff {
    path: Vec<String>,
    differences: Vec<Difference>,
    /// Original messages being compared, so that recursive types end (`SchemaScope`).
    comparing: HashSet<String>,
    /// Messages being compared, nested or through fields into other files: bounded, so that
    /// a long chain of types cannot exhaust the stack.
    depth: usize,
}

impl Diff {
    fn add(&mut self, kind: DifferenceKind) {
        self.differences.push(Difference {
            kind,
            path: format!("#/{}", self.path.join("/")),
        });
    }

    fn add_at(&mut self, segments: &[&str], kind: DifferenceKind) {
        let depth = self.path.len();
        self.path.extend(segments.iter().map(|s| s.to_string()));
        self.add(kind);
        self.path.truncate(depth);
    }

    fn files(&mut self, original: &FileDescriptor, update: &FileDescriptor) {
        if original.package_name() != update.package_name() {
            self.add(DifferenceKind::PackageChanged);
        }
        self.types(
            original.messages().collect(),
            original.enums().collect(),
            update.messages().collect(),
            update.enums().collect(),
        );
    }

    /// `SchemaDiff.compareTypeElements`: the messages and enums declared at one level.
    fn types(
        &mut self,
        original_messages: Vec<MessageDescriptor>,
        original_enums: Vec<prost_reflect::EnumDescriptor>,
        update_messages: Vec<MessageDescriptor>,
        update_enums: Vec<prost_reflect::EnumDescriptor>,
    ) {
        let by_name =
            |messages: Vec<MessageDescriptor>| -> BTreeMap<String, (usize, MessageDescriptor)> {
                messages
                    .into_iter()
                    .filter(|message| !message.is_map_entry())
                    .enumerate()
                    .map(|(index, message)| (message.name().to_string(), (index, message)))
                    .collect()
            };
        let original = by_name(original_messages);
        let update = by_name(update_messages);
        let names: BTreeSet<&String> = original.keys().chain(update.keys()).collect();
        for name in names {
            self.path.push(name.clone());
            match (original.get(name), update.get(name)) {
                (Some(_), None) => self.add(DifferenceKind::MessageRemoved),
                (None, Some(_)) => self.add(DifferenceKind::MessageAdded),
                (Some((original_index, original)), Some((update_index, update))) => {
                    self.messages(original, update);
                    if original_index != update_index {
                        self.add(DifferenceKind::MessageMoved);
                    }
                }
                (None, None) => {}
            }
            self.path.pop();
        }

        let enums_by_name = |enums: Vec<prost_reflect::EnumDescriptor>| {
            enums
                .into_iter()
                .map(|e| (e.name().to_string(), e))
                .collect::<BTreeMap<_, _>>()
        };
        let original = enums_by_name(original_enums);
        let update = enums_by_name(update_enums);
        let names: BTreeSet<&String> = original.keys().chain(update.keys()).collect();
        for name in names {
            self.path.push(name.clone());
            match (original.get(name), update.get(name)) {
                (Some(_), None) => self.add(DifferenceKind::EnumRemoved),
                (None, Some(_)) => self.add(DifferenceKind::EnumAdded),
                (Some(original), Some(update)) => {
                    let numbers = |e: &prost_reflect::EnumDescriptor| {
                        e.values()
                            .map(|v| (v.number(), v.name().to_string()))
                            .collect::<BTreeMap<_, _>>()
                    };
                    let (original, update) = (numbers(original), numbers(update));
                    let all: BTreeSet<&i32> = original.keys().chain(update.keys()).collect();
                    for number in all {
                        let kind = match (original.get(number), update.get(number)) {
                            (Some(_), None) => DifferenceKind::EnumConstRemoved,
                            (None, Some(_)) => DifferenceKind::EnumConstAdded,
                            (Some(a), Some(b)) if a != b => DifferenceKind::EnumConstChanged,
                            _ => continue,
                        };
                        self.add_at(&[&number.to_string()], kind);
                    }
                }
                (None, None) => {}
            }
            self.path.pop();
        }
    }

    /// `MessageSchemaDiff.compare`: fields by number wherever they sit (top level or oneof).
    fn messages(&mut self, original: &MessageDescriptor, update: &MessageDescriptor) {
        if self.depth >= NESTING_MAX || !self.comparing.insert(original.full_name().into()) {
            return;
        }
        self.depth += 1;
        let original_fields = FieldIndex::of(original);
        let update_fields = FieldIndex::of(update);

        // A oneof gone by name with none of its members left anywhere was deleted whole,
        // which Confluent lets pass; a partial removal is reported field by field below.
        let deleted_oneofs: HashSet<&str> = original_fields
            .oneofs
            .iter()
            .filter(|(name, _)| !update_fields.oneofs.contains_key(*name))
            .filter(|(_, members)| {
                !members
                    .iter()
                    .any(|number| update_fields.fields.contains_key(number))
            })
            .map(|(name, _)| name.as_str())
            .collect();

        // Fields that were independent and now share a oneof: writing one clears the others.
        for oneof in update.oneofs().filter(|oneof| !oneof.is_synthetic()) {
            let mut origins = HashSet::new();
            let mut moved_in = 0;
            for field in oneof.fields() {
                let number = field.number();
                if let Some(name) = original_fields.oneof_of.get(&number) {
                    origins.insert(format!("oneof:{name}"));
                } else if original_fields.fields.contains_key(&number) {
                    origins.insert(format!("field:{number}"));
                    moved_in += 1;
                }
            }
            if origins.len() > 1 {
                let kind = if moved_in > 1 {
                    DifferenceKind::MultipleFieldsMovedToOneof
                } else {
                    DifferenceKind::FieldMovedToExistingOneof
                };
                self.add_at(&[oneof.name()], kind);
            }
        }

        let oneof_names: BTreeSet<&String> = original_fields
            .oneofs
            .keys()
            .chain(update_fields.oneofs.keys())
            .collect();
        for name in oneof_names {
            if !update_fields.oneofs.contains_key(name) {
                self.add_at(&[name], DifferenceKind::OneofRemoved);
            } else if !original_fields.oneofs.contains_key(name) {
                self.add_at(&[name], DifferenceKind::OneofAdded);
            }
        }

        let numbers: BTreeSet<&u32> = original_fields
            .fields
            .keys()
            .chain(update_fields.fields.keys())
            .collect();
        for number in numbers {
            let tag = number.to_string();
            let original_oneof = original_fields.oneof_of.get(number);
            let update_oneof = update_fields.oneof_of.get(number);
            match (
                original_fields.fields.get(number),
                update_fields.fields.get(number),
            ) {
                (Some(original_field), None) => match original_oneof {
                    Some(oneof) if deleted_oneofs.contains(oneof.as_str()) => {}
                    Some(oneof) => self.add_at(&[oneof, &tag], DifferenceKind::OneofFieldRemoved),
                    None if is_required(original_field) => {
                        self.add_at(&[&tag], DifferenceKind::RequiredFieldRemoved)
                    }
                    None => self.add_at(&[&tag], DifferenceKind::FieldRemoved),
                },
                (None, Some(update_field)) => match update_oneof {
                    Some(oneof) => self.add_at(&[oneof, &tag], DifferenceKind::OneofFieldAdded),
                    None if is_required(update_field) => {
                        self.add_at(&[&tag], DifferenceKind::RequiredFieldAdded)
                    }
                    None => self.add_at(&[&tag], DifferenceKind::FieldAdded),
                },
                (Some(original_field), Some(update_field)) => {
                    if original_oneof.is_some() && update_oneof.is_none() {
                        self.add_at(&[&tag], DifferenceKind::OneofFieldMovedToTopLevel);
                    }
                    let depth = self.path.len();
                    if let Some(oneof) = update_oneof {
                        self.path.push(oneof.clone());
                    }
                    self.path.push(tag);
                    self.fields(original_field, update_field);
                    self.path.truncate(depth);
                }
                (None, None) => {}
            }
        }

        self.types(
            original.child_messages().collect(),
            original.child_enums().collect(),
            update.child_messages().collect(),
            update.child_enums().collect(),
        );
        self.comparing.remove(original.full_name());
        self.depth -= 1;
    }

    /// `FieldSchemaDiff.compare`.
    fn fields(&mut self, original: &FieldDescriptor, update: &FieldDescriptor) {
        if original.name() != update.name() {
            self.add(DifferenceKind::FieldNameChanged);
        }
        self.labels_and_types(
            field_label(original),
            field_label(update),
            &FieldType::of(original.kind()),
            &FieldType::of(update.kind()),
        );
    }

    fn labels_and_types(
        &mut self,
        original_label: Option<Cardinality>,
        update_label: Option<Cardinality>,
        original: &FieldType,
        update: &FieldType,
    ) {
        if original.kind() != update.kind() {
            self.add(DifferenceKind::FieldKindChanged);
            return;
        }
        match (original, update) {
            (FieldType::Map(original_key, original_value), FieldType::Map(key, value)) => {
                self.labels_and_types(None, None, original_key, key);
                self.labels_and_types(None, None, original_value, value);
            }
            (FieldType::Message(original), FieldType::Message(update)) => {
                self.message_types(original, update)
            }
            _ => {
                let kind = original.scalar_kind();
                if kind != update.scalar_kind() {
                    self.add(DifferenceKind::FieldScalarKindChanged);
                } else if let (Some(a), Some(b)) = (original_label, update_label) {
                    if a != b {
                        self.add(if kind == "STRING_OR_BYTES" {
                            DifferenceKind::FieldStringOrBytesLabelChanged
                        } else {
                            DifferenceKind::FieldNumericLabelChanged
                        });
                    }
                }
            }
        }
    }

    /// `FieldSchemaDiff.compareMessageTypes`: the same name relative to its package, and, for
    /// a type from another file, compatible contents.
    fn message_types(&mut self, original: &MessageDescriptor, update: &MessageDescriptor) {
        let local = |message: &MessageDescriptor| {
            let package = message.package_name();
            let name = message.full_name();
            match name.strip_prefix(package).and_then(|n| n.strip_prefix('.')) {
                Some(local) if !package.is_empty() => local.to_string(),
                _ => name.to_string(),
            }
        };
        let (original_local, update_local) = (local(original), local(update));
        if original_local != update_local {
            self.add(DifferenceKind::FieldNamedTypeChanged);
            return;
        }
        // Types of the schemas' own files are compared where they are declared; Confluent
        // skips a reference to the same subject and version, which here is the same file
        // with the same contents.
        let (original_file, update_file) = (original.parent_file(), update.parent_file());
        let both_main =
            original_file.name() == MAIN_FILE_NAME && update_file.name() == MAIN_FILE_NAME;
        let same_dependency = original_file.name() == update_file.name()
            && original_file.file_descriptor_proto() == update_file.file_descriptor_proto();
        if both_main || same_dependency {
            return;
        }
        let mut nested = Diff {
            path: original_local.split('.').map(str::to_string).collect(),
            differences: Vec::new(),
            comparing: std::mem::take(&mut self.comparing),
            depth: self.depth,
        };
        nested.messages(original, update);
        self.comparing = nested.comparing;
        let incompatible = nested
            .differences
            .iter()
            .any(|difference| !difference.kind.is_compatible());
        self.differences.append(&mut nested.differences);
        if incompatible {
            self.add(DifferenceKind::FieldNamedTypeChanged);
        }
    }
}

/// A message's fields by number, with the (real) oneof each belongs to.
struct FieldIndex {
    fields: HashMap<u32, FieldDescriptor>,
    oneof_of: HashMap<u32, String>,
    oneofs: BTreeMap<String, Vec<u32>>,
}

impl FieldIndex {
    fn of(message: &MessageDescriptor) -> FieldIndex {
        let mut index = FieldIndex {
            fields: HashMap::new(),
            oneof_of: HashMap::new(),
            oneofs: BTreeMap::new(),
        };
        for field in message.fields() {
            let number = field.number();
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                index.oneof_of.insert(number, oneof.name().to_string());
                index
                    .oneofs
                    .entry(oneof.name().to_string())
                    .or_default()
                    .push(number);
            }
            index.fields.insert(number, field);
        }
        index
    }
}
