//! Protobuf schemas: parsing (source and base64 descriptors), canonical and normalized text,
//! Confluent's compatibility rules, decoding of Confluent-framed messages and hostile input.

use base64::Engine;
use prost::Message;
use protox::file::{File, FileResolver, GoogleFileResolver};
use strom_schema::protobuf::ProtobufSchema;
use strom_schema::{Dependency, Schema, SchemaType};

fn parse(text: &str) -> ProtobufSchema {
    ProtobufSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_err(text: &str, dependencies: &[Dependency<'_>]) -> String {
    match ProtobufSchema::parse(text, dependencies) {
        Ok(schema) => panic!("accepted:\n{}", schema.canonical()),
        Err(error) => error.0,
    }
}

/// What confluent-kafka's Python serializer registers: base64 of the compiled file's
/// `FileDescriptorProto` (as protoc compiles it: types resolved, json names filled in).
fn base64_descriptor(name: &str, text: &str, others: &[(&str, &str)]) -> String {
    struct Files(Vec<(String, String)>);
    impl FileResolver for Files {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            match self.0.iter().find(|(n, _)| n == name) {
                Some((_, text)) => File::from_source(name, text),
                None => GoogleFileResolver::new().open_file(name),
            }
        }
    }
    let mut files = vec![(name.to_string(), text.to_string())];
    files.extend(others.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    let mut compiler = protox::Compiler::with_file_resolver(Files(files));
    compiler.open_file(name).unwrap();
    let set = compiler.file_descriptor_set();
    let file = set.file.iter().find(|f| f.name() == name).unwrap();
    base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
}

const USER: &str = r#"
syntax = "proto3";
package com.example;

import "google/protobuf/timestamp.proto";

option java_package = "com.example.proto";
option go_package = "example.com/proto";

// A user.
message User {
  string name = 1;
  int32 age = 2;
  google.protobuf.Timestamp created = 3;
  map<string, string> labels = 4;
  repeated Address addresses = 5;
  Kind kind = 6;
  optional string nickname = 7;
  oneof contact {
    string email = 8;
    string phone = 9;
  }
  reserved 20, 30 to 40;
  reserved "old";

  message Address {
    string street = 1 [json_name = "streetName"];
  }
  enum Kind {
    KIND_UNKNOWN = 0;
    KIND_ADMIN = 1;
  }
}
"#;

#[test]
fn proto_source_compiles_and_prints_in_confluent_layout() {
    let schema = parse(USER);
    let expected = r#"syntax = "proto3";
package com.example;

import "google/protobuf/timestamp.proto";

option java_package = "com.example.proto";
option go_package = "example.com/proto";

message User {
  reserved 20;
  reserved 30 to 40;
  reserved "old";

  string name = 1;
  int32 age = 2;
  .google.protobuf.Timestamp created = 3;
  map<string, string> labels = 4;
  repeated .com.example.User.Address addresses = 5;
  .com.example.User.Kind kind = 6;
  optional string nickname = 7;

  oneof contact {
    string email = 8;
    string phone = 9;
  }

  message Address {
    string street = 1 [json_name = "streetName"];
  }
  enum Kind {
    KIND_UNKNOWN = 0;
    KIND_ADMIN = 1;
  }
}
"#;
    assert_eq!(schema.canonical(), expected);
}

#[test]
fn canonical_text_compiles_back_to_the_same_descriptor() {
    for text in [USER, PROTO2] {
        let schema = parse(text);
        let again = parse(&schema.canonical());
        assert_eq!(again.canonical(), schema.canonical());
        assert_eq!(
            again.serialized(),
            schema.serialized(),
            "{}",
            schema.canonical()
        );
    }
}

const PROTO2: &str = r#"
syntax = "proto2";
package legacy;
message Order {
  required int64 id = 1;
  optional string note = 2 [default = "none \"quoted\""];
  optional int32 count = 3 [default = 7, deprecated = true];
  repeated int32 codes = 4 [packed = true];
  optional Status status = 5 [default = OPEN];
  extensions 100 to 199;
  enum Status { OPEN = 1; CLOSED = 2; }
}
extend Order { optional string tag = 100; }
"#;

#[test]
fn proto2_prints_labels_defaults_extensions() {
    let canonical = parse(PROTO2).canonical();
    // protoc and protox leave a proto2 file's syntax unset, and Confluent prints none then.
    assert!(canonical.starts_with("package legacy;\n"), "{canonical}");
    for line in [
        "  required int64 id = 1;\n",
        "  optional string note = 2 [default = \"none \\\"quoted\\\"\"];\n",
        "  optional int32 count = 3 [\n    deprecated = true,\n    default = 7\n  ];\n",
        "  repeated int32 codes = 4 [packed = true];\n",
        "  optional .legacy.Order.Status status = 5 [default = OPEN];\n",
        "  extensions 100 to 199;\n",
        "extend .legacy.Order {\n  optional string tag = 100;\n}\n",
    ] {
        assert!(canonical.contains(line), "missing {line:?} in\n{canonical}");
    }
}

#[test]
fn base64_descriptor_is_accepted_and_printed_as_proto() {
    let encoded = base64_descriptor("user.proto", USER, &[]);
    let from_descriptor = parse(&encoded);
    assert_eq!(from_descriptor.canonical(), parse(USER).canonical());
    // And the serialized form decodes to a descriptor of the same schema.
    assert_eq!(
        parse(&from_descriptor.serialized()).canonical(),
        from_descriptor.canonical()
    );
}

#[test]
fn serialized_is_base64_of_the_file_descriptor() {
    let schema = parse("syntax = \"proto3\"; message A { string a = 1; }");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(schema.serialized())
        .unwrap();
    let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(file.name(), "default");
    assert_eq!(file.message_type[0].name(), "A");
}

#[test]
fn well_known_and_confluent_imports_resolve() {
    let text = r#"
syntax = "proto3";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message A {
  google.protobuf.Any any = 1;
  google.protobuf.Duration d = 2;
  google.protobuf.Struct s = 3;
  google.protobuf.StringValue w = 4;
  google.protobuf.Empty e = 5;
  google.protobuf.FieldMask m = 6;
  confluent.type.Decimal price = 7 [(confluent.field_meta).doc = "a price"];
}
"#;
    let schema = parse(text);
    assert!(schema
        .canonical()
        .contains("  .confluent.type.Decimal price = 7"));
}

#[test]
fn references_resolve_by_import_path_as_source_or_descriptor() {
    let other = "syntax = \"proto3\"; package other; message Thing { string id = 1; }";
    let main = "syntax = \"proto3\"; import \"other.proto\"; message A { other.Thing thing = 1; }";
    let as_source = [Dependency {
        name: "other.proto",
        schema: other,
    }];
    let schema = ProtobufSchema::parse(main, &as_source).unwrap();
    assert!(schema.canonical().contains("import \"other.proto\";\n"));
    assert!(schema.canonical().contains("  .other.Thing thing = 1;\n"));

    let encoded = base64_descriptor("other.proto", other, &[]);
    let as_descriptor = [Dependency {
        name: "other.proto",
        schema: &encoded,
    }];
    let schema2 = ProtobufSchema::parse(main, &as_descriptor).unwrap();
    assert_eq!(schema2.canonical(), schema.canonical());

    // The main schema itself as a descriptor, importing a source dependency.
    let main_encoded = base64_descriptor("main.proto", main, &[("other.proto", other)]);
    let schema3 = ProtobufSchema::parse(&main_encoded, &as_source).unwrap();
    assert_eq!(schema3.canonical(), schema.canonical());
}

#[test]
fn compile_errors_are_invalid_schema() {
    assert!(parse_err("message A { string a = 1 }", &[]).contains("invalid Protobuf schema"));
    let unknown = parse_err("syntax = \"proto3\"; message A { Missing a = 1; }", &[]);
    assert!(unknown.contains("Missing"), "{unknown}");
    let missing = parse_err(
        "syntax = \"proto3\"; import \"nope.proto\"; message A {}",
        &[],
    );
    assert!(missing.contains("nope.proto"), "{missing}");
    let duplicate = parse_err(
        "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }",
        &[],
    );
    assert!(!duplicate.is_empty());
}

#[test]
fn import_cycle_is_refused() {
    let a = "syntax = \"proto3\"; import \"b.proto\"; message A {}";
    let b = "syntax = \"proto3\"; import \"a.proto\"; message B {}";
    let deps = [
        Dependency {
            name: "a.proto",
            schema: a,
        },
        Dependency {
            name: "b.proto",
            schema: b,
        },
    ];
    let error = parse_err(a, &deps);
    assert!(
        error.contains("cycle") || error.contains("circular"),
        "{error}"
    );
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let depth = 100_000;
    let text = "message A { ".repeat(depth) + &"}".repeat(depth);
    let error = parse_err(&text, &[]);
    assert!(error.contains("nested"), "{error}");
    // Nesting in option literals counts too.
    let literal = format!(
        "import \"google/protobuf/descriptor.proto\"; option (x) = {}{};",
        "{ a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    assert!(parse_err(&literal, &[]).contains("nested"));
    // Modest nesting is fine, and braces in strings and comments do not count.
    let text = "syntax = \"proto3\"; ".to_string()
        + &"message A { ".repeat(20)
        + "string s = 1 [json_name = \"{{{{\"]; // {{{{\n"
        + &"}".repeat(20);
    parse(&text);
}

#[test]
fn deep_nesting_in_a_descriptor_is_refused() {
    // A descriptor nested far deeper than prost decodes: its bytes are built by hand.
    let mut message = Vec::new();
    for _ in 0..1000 {
        let mut outer = vec![0x0a, 0x01, b'A']; // name = "A"
        outer.push(0x1a); // nested_type
        prost::encoding::encode_varint(message.len() as u64, &mut outer);
        outer.extend_from_slice(&message);
        message = outer;
    }
    let mut file = vec![0x22]; // message_type
    prost::encoding::encode_varint(message.len() as u64, &mut file);
    file.extend_from_slice(&message);
    let encoded = base64::engine::general_purpose::STANDARD.encode(file);
    parse_err(&encoded, &[]);
}

#[test]
fn huge_and_garbage_input_is_refused() {
    let huge = "x".repeat(10 * 1024 * 1024);
    assert!(Schema::parse(SchemaType::Protobuf, &huge, &[]).is_err());
    let huge_proto = format!("message A {{ {} }}", "int32 a = 1; ".repeat(400_000));
    assert!(ProtobufSchema::parse(&huge_proto, &[]).is_err());
    parse_err("!!!! not base64 ####", &[]);
    parse_err("AAAAAAAA////", &[]);
    parse_err("\u{0}\u{1}\u{2}", &[]);
    // Not a descriptor (a truncated field), and not source either.
    let encoded = base64::engine::general_purpose::STANDARD.encode([0x0a, 0xff, 0x01]);
    assert_eq!(encoded, "Cv8B");
    parse_err(&encoded, &[]);
}

// ---------------------------------------------------------------------------------------------
// Normalization

#[test]
fn normalization_ignores_formatting_comments_and_declaration_order() {
    let a = r#"
syntax = "proto3";
import "google/protobuf/timestamp.proto";
import "google/protobuf/any.proto";
option java_package = "p"; option go_package = "g";
message A {
  int32 b = 2; string a = 1;
  reserved 9, 7;
  oneof o { string y = 4; string x = 3; }
  enum E { Z = 0; B = 2; A = 1; }
  google.protobuf.Timestamp t = 5;
  google.protobuf.Any any = 6;
}
"#;
    let b = r#"
// Same schema, another layout.
syntax = "proto3";
import "google/protobuf/any.proto";
import "google/protobuf/timestamp.proto";
option go_package = "g";
option java_package = "p";
message A {
  reserved 7;
  reserved 9;
  string a = 1;
  oneof o {
    string x = 3;
    string y = 4;
  }
  int32 b = 2;
  .google.protobuf.Timestamp t = 5;
  .google.protobuf.Any any = 6;
  enum E { Z = 0; A = 1; B = 2; }
}
"#;
    let (a, b) = (parse(a), parse(b));
    assert_ne!(a.canonical(), b.canonical());
    assert_eq!(a.normalized(), b.normalized());
    assert!(a.normalized().contains("  string a = 1;\n  int32 b = 2;\n"));
    // The normalized text is itself a schema that normalizes to itself.
    assert_eq!(parse(&a.normalized()).normalized(), a.normalized());
}

#[test]
fn normalization_keeps_message_order() {
    let a = parse("syntax = \"proto3\"; message A {} message B {}");
    let b = parse("syntax = \"proto3\"; message B {} message A {}");
    assert_ne!(a.normalized(), b.normalized());
}

#[test]
fn normalization_drops_the_proto2_syntax_line() {
    let a = parse("syntax = \"proto2\"; message A { optional int32 a = 1; }");
    let b = parse("message A { optional int32 a = 1; }");
    assert_eq!(a.normalized(), b.normalized());
    assert!(!a.normalized().contains("syntax"));
}

// ---------------------------------------------------------------------------------------------
// Compatibility

/// The incompatibilities of `new` reading `old` (BACKWARD), as Confluent's error types.
fn backward(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (parse(old), parse(new));
    new.incompatibilities_reading(&old)
}

fn types(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.split('"').nth(1).unwrap_or_default().to_string())
        .collect()
}

const BASE: &str = "syntax = \"proto3\"; package p; message A { string s = 1; int32 n = 2; }";

#[test]
fn adding_and_removing_fields_is_compatible() {
    let added =
        "syntax = \"proto3\"; package p; message A { string s = 1; int32 n = 2; bool b = 3; }";
    assert!(backward(BASE, added).is_empty());
    assert!(backward(added, BASE).is_empty());
    let renamed = "syntax = \"proto3\"; package p; message A { string t = 1; int32 n = 2; }";
    assert!(backward(BASE, renamed).is_empty());
}

#[test]
fn changing_a_scalar_kind_is_incompatible_both_ways() {
    let changed = "syntax = \"proto3\"; package p; message A { int32 s = 1; int32 n = 2; }";
    let messages = backward(BASE, changed);
    assert_eq!(
        messages,
        vec![
            "{errorType:\"FIELD_SCALAR_KIND_CHANGED\", description:\"The kind of a SCALAR field at \
             path '#/A/1' in the new schema does not match its kind in the old schema\"}"
        ]
    );
    assert_eq!(
        types(&backward(changed, BASE)),
        ["FIELD_SCALAR_KIND_CHANGED"]
    );
}

#[test]
fn wire_compatible_scalar_groups_pass() {
    for (old, new) in [
        ("int32", "int64"),
        ("uint32", "bool"),
        ("int64", "uint64"),
        ("sint32", "sint64"),
        ("string", "bytes"),
        ("fixed32", "sfixed32"),
        ("fixed64", "sfixed64"),
    ] {
        let a = format!("syntax = \"proto3\"; message A {{ {old} f = 1; }}");
        let b = format!("syntax = \"proto3\"; message A {{ {new} f = 1; }}");
        assert!(backward(&a, &b).is_empty(), "{old} -> {new}");
        assert!(backward(&b, &a).is_empty(), "{new} -> {old}");
    }
    for (old, new) in [
        ("int32", "sint32"),
        ("float", "double"),
        ("fixed32", "int32"),
    ] {
        let a = format!("syntax = \"proto3\"; message A {{ {old} f = 1; }}");
        let b = format!("syntax = \"proto3\"; message A {{ {new} f = 1; }}");
        assert_eq!(
            types(&backward(&a, &b)),
            ["FIELD_SCALAR_KIND_CHANGED"],
            "{old} -> {new}"
        );
    }
    // An enum reads as a general number.
    let e = "syntax = \"proto3\"; enum E { Z = 0; } message A { E f = 1; }";
    let i = "syntax = \"proto3\"; enum E { Z = 0; } message A { int32 f = 1; }";
    assert!(backward(e, i).is_empty());
}

#[test]
fn field_kind_and_named_type_changes() {
    let scalar = "syntax = \"proto3\"; message B {} message C {} message A { string f = 1; }";
    let message = "syntax = \"proto3\"; message B {} message C {} message A { B f = 1; }";
    let other = "syntax = \"proto3\"; message B {} message C {} message A { C f = 1; }";
    let map = "syntax = \"proto3\"; message B {} message C {} message A { map<string, B> f = 1; }";
    assert_eq!(types(&backward(scalar, message)), ["FIELD_KIND_CHANGED"]);
    assert_eq!(types(&backward(message, map)), ["FIELD_KIND_CHANGED"]);
    assert_eq!(
        types(&backward(message, other)),
        ["FIELD_NAMED_TYPE_CHANGED"]
    );
    let map2 = "syntax = \"proto3\"; message B {} message C {} message A { map<string, C> f = 1; }";
    assert_eq!(types(&backward(map, map2)), ["FIELD_NAMED_TYPE_CHANGED"]);
    let map3 = "syntax = \"proto3\"; message B {} message C {} message A { map<int32, B> f = 1; }";
    assert_eq!(types(&backward(map, map3)), ["FIELD_SCALAR_KIND_CHANGED"]);
}

#[test]
fn message_removed_and_added() {
    let two = "syntax = \"proto3\"; message A {} message B {}";
    let one = "syntax = \"proto3\"; message A {}";
    let messages = backward(two, one);
    assert_eq!(
        messages,
        ["{errorType:\"MESSAGE_REMOVED\", description:\"The new schema is missing a MESSAGE type \
          at path '#/B' in the old schema\"}"]
    );
    assert!(backward(one, two).is_empty());
    // Reordering messages is compatible (message indexes are per schema id).
    assert!(backward(two, "syntax = \"proto3\"; message B {} message A {}").is_empty());
    // Nested messages too.
    let nested = "syntax = \"proto3\"; message A { message N {} }";
    assert_eq!(types(&backward(nested, one)), ["MESSAGE_REMOVED"]);
}

#[test]
fn package_changed() {
    let other = "syntax = \"proto3\"; package q; message A { string s = 1; int32 n = 2; }";
    let messages = backward(BASE, other);
    assert_eq!(types(&messages), ["PACKAGE_CHANGED"]);
    assert!(messages[0].contains("'#/'"), "{messages:?}");
}

#[test]
fn required_fields_added_and_removed() {
    let base = "syntax = \"proto2\"; message A { optional int32 a = 1; }";
    let with_required =
        "syntax = \"proto2\"; message A { optional int32 a = 1; required int32 b = 2; }";
    assert_eq!(
        types(&backward(base, with_required)),
        ["REQUIRED_FIELD_ADDED"]
    );
    assert_eq!(
        types(&backward(with_required, base)),
        ["REQUIRED_FIELD_REMOVED"]
    );
    let messages = backward(with_required, base);
    assert!(messages[0].contains("at path: '#/A/2'"), "{messages:?}");
}

#[test]
fn labels_of_numbers_and_strings() {
    let optional =
        "syntax = \"proto2\"; message A { optional int32 a = 1; optional string s = 2; }";
    let repeated =
        "syntax = \"proto2\"; message A { repeated int32 a = 1; repeated string s = 2; }";
    // Numbers change label incompatibly; strings and bytes compatibly.
    assert_eq!(
        types(&backward(optional, repeated)),
        ["FIELD_NUMERIC_LABEL_CHANGED"]
    );
    // Proto3 plain fields have no label, so Confluent sees nothing to compare.
    let plain = "syntax = \"proto3\"; message A { int32 a = 1; }";
    let list = "syntax = \"proto3\"; message A { repeated int32 a = 1; }";
    assert!(backward(plain, list).is_empty());
}

#[test]
fn oneof_rules() {
    let base =
        "syntax = \"proto3\"; message A { oneof o { string x = 1; string y = 2; } int32 z = 3; }";
    // Removing one member of a oneof loses data.
    let removed = "syntax = \"proto3\"; message A { oneof o { string x = 1; } int32 z = 3; }";
    let messages = backward(base, removed);
    assert_eq!(types(&messages), ["ONEOF_FIELD_REMOVED"]);
    assert!(messages[0].contains("'#/A/o/2'"), "{messages:?}");
    // Removing a whole oneof is compatible.
    let gone = "syntax = \"proto3\"; message A { int32 z = 3; }";
    assert!(backward(base, gone).is_empty());
    // Adding a member or a new oneof is compatible.
    let added = "syntax = \"proto3\"; message A { oneof o { string x = 1; string y = 2; string w = 4; } int32 z = 3; }";
    assert!(backward(base, added).is_empty());
    // A member moved out to the top level is compatible.
    let out =
        "syntax = \"proto3\"; message A { oneof o { string x = 1; } string y = 2; int32 z = 3; }";
    assert!(backward(base, out).is_empty());
    // A top-level field moved into an existing oneof: newly exclusive.
    let into =
        "syntax = \"proto3\"; message A { oneof o { string x = 1; string y = 2; int32 z = 3; } }";
    assert_eq!(
        types(&backward(base, into)),
        ["FIELD_MOVED_TO_EXISTING_ONEOF"]
    );
    // Several independent fields moved into a new oneof.
    let fields = "syntax = \"proto3\"; message B { int32 a = 1; int32 b = 2; }";
    let oneof = "syntax = \"proto3\"; message B { oneof n { int32 a = 1; int32 b = 2; } }";
    let messages = backward(fields, oneof);
    assert_eq!(types(&messages), ["MULTIPLE_FIELDS_MOVED_TO_ONEOF"]);
    assert!(messages[0].contains("'#/B/n'"), "{messages:?}");
    // A single field wrapped in a new oneof is fine.
    let single = "syntax = \"proto3\"; message B { oneof n { int32 a = 1; } int32 b = 2; }";
    assert!(backward(fields, single).is_empty());
    // A type change inside a oneof is still seen.
    let changed =
        "syntax = \"proto3\"; message A { oneof o { string x = 1; int64 y = 2; } int32 z = 3; }";
    let messages = backward(base, changed);
    assert_eq!(types(&messages), ["FIELD_SCALAR_KIND_CHANGED"]);
    assert!(messages[0].contains("'#/A/o/2'"), "{messages:?}");
}

#[test]
fn enum_changes_are_compatible() {
    let a = "syntax = \"proto3\"; enum E { Z = 0; A = 1; } message M { E e = 1; }";
    let b =
        "syntax = \"proto3\"; enum E { Z = 0; B = 2; } enum F { X = 0; } message M { E e = 1; }";
    assert!(backward(a, b).is_empty());
    assert!(backward(b, a).is_empty());
}

#[test]
fn referenced_message_types_are_compared_through_dependencies() {
    let old_dep = "syntax = \"proto3\"; package d; message T { string s = 1; }";
    let new_dep = "syntax = \"proto3\"; package d; message T { int32 s = 1; }";
    let main = "syntax = \"proto3\"; import \"d.proto\"; message A { d.T t = 1; }";
    let old = ProtobufSchema::parse(
        main,
        &[Dependency {
            name: "d.proto",
            schema: old_dep,
        }],
    )
    .unwrap();
    let new = ProtobufSchema::parse(
        main,
        &[Dependency {
            name: "d.proto",
            schema: new_dep,
        }],
    )
    .unwrap();
    assert_eq!(
        types(&new.incompatibilities_reading(&old)),
        ["FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"]
    );
    assert!(old.incompatibilities_reading(&old).is_empty());
}

#[test]
fn recursive_types_compare_without_looping() {
    let a = "syntax = \"proto3\"; message Node { Node next = 1; string v = 2; }";
    let b = "syntax = \"proto3\"; message Node { Node next = 1; string v = 2; int32 w = 3; }";
    assert!(backward(a, b).is_empty());
}

#[test]
fn schema_check_uses_the_rules() {
    use strom_schema::{check, Compatibility};
    let old = Schema::parse(SchemaType::Protobuf, BASE, &[]).unwrap();
    let added = Schema::parse(
        SchemaType::Protobuf,
        "syntax = \"proto3\"; package p; message A { string s = 1; int32 n = 2; string e = 3; }",
        &[],
    )
    .unwrap();
    assert!(check(Compatibility::Backward, &added, &[(1, &old)]).is_empty());
    let changed = Schema::parse(
        SchemaType::Protobuf,
        "syntax = \"proto3\"; package p; message A { int32 s = 1; int32 n = 2; }",
        &[],
    )
    .unwrap();
    assert_eq!(
        check(Compatibility::Backward, &changed, &[(1, &old)]).len(),
        1
    );
    assert_eq!(check(Compatibility::Full, &changed, &[(1, &old)]).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Decoding Confluent-framed messages

fn zigzag(value: i64, out: &mut Vec<u8>) {
    prost::encoding::encode_varint(((value << 1) ^ (value >> 63)) as u64, out);
}

const DECODE: &str = r#"
syntax = "proto3";
package shop;
message Order {
  string id = 1;
  int64 total = 2;
  map<string, int32> counts = 3;
  message Line { string sku = 1; int32 quantity = 2; }
  repeated Line lines = 4;
}
message Other { bool flag = 1; }
"#;

#[test]
fn decodes_the_first_message_with_index_zero() {
    let schema = parse(DECODE);
    // id = "o1", total = 42, lines { sku: "x", quantity: 3 }
    let mut payload = vec![0]; // the single byte 0: message indexes [0]
    payload.extend_from_slice(&[0x0a, 2, b'o', b'1', 0x10, 42]);
    payload.extend_from_slice(&[0x22, 5, 0x0a, 1, b'x', 0x10, 3]);
    let json = schema.decode(&payload).unwrap();
    assert_eq!(json["id"], "o1");
    assert_eq!(json["total"], "42");
    assert_eq!(json["lines"][0]["sku"], "x");
    assert_eq!(json["lines"][0]["quantity"], 3);
}

#[test]
fn decodes_other_and_nested_messages_by_index() {
    let schema = parse(DECODE);
    assert_eq!(schema.message_name(&[]).as_deref(), Some("shop.Order"));
    assert_eq!(schema.message_name(&[1]).as_deref(), Some("shop.Other"));
    // The map entry is not a message of its own: Line is Order's first.
    assert_eq!(
        schema.message_name(&[0, 0]).as_deref(),
        Some("shop.Order.Line")
    );
    assert_eq!(schema.message_name(&[2]), None);

    let mut payload = Vec::new();
    zigzag(2, &mut payload);
    zigzag(0, &mut payload);
    zigzag(0, &mut payload);
    payload.extend_from_slice(&[0x0a, 1, b'y', 0x10, 9]);
    let json = schema.decode(&payload).unwrap();
    assert_eq!(json, serde_json::json!({"sku": "y", "quantity": 9}));

    let mut payload = Vec::new();
    zigzag(1, &mut payload);
    zigzag(1, &mut payload);
    payload.extend_from_slice(&[0x08, 1]);
    assert_eq!(
        schema.decode(&payload).unwrap(),
        serde_json::json!({"flag": true})
    );
}

#[test]
fn decode_refuses_garbage() {
    let schema = parse(DECODE);
    assert!(schema.decode(&[]).is_err());
    assert!(schema.decode(&[0xff]).is_err());
    let mut payload = Vec::new();
    zigzag(1, &mut payload);
    zigzag(7, &mut payload);
    assert!(schema.decode(&payload).is_err());
    let mut payload = Vec::new();
    zigzag(1_000_000, &mut payload);
    assert!(schema.decode(&payload).is_err());
    assert!(schema.decode(&[0, 0x0a, 50, b'x']).is_err());
    // A recursive message nested past prost's limit.
    let node = parse("syntax = \"proto3\"; message N { N next = 1; }");
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..500 {
        let mut outer = vec![0x0a];
        prost::encoding::encode_varint(inner.len() as u64, &mut outer);
        outer.extend_from_slice(&inner);
        inner = outer;
    }
    let mut payload = vec![0];
    payload.extend_from_slice(&inner);
    assert!(node.decode(&payload).is_err());
}

#[test]
fn a_large_valid_schema_compiles() {
    // About 3.5 MiB: 80,000 fields in 800 messages.
    let mut text = String::from("syntax = \"proto3\";\n");
    for m in 0..800 {
        text.push_str(&format!("message M{m} {{\n"));
        for f in 1..=100 {
            text.push_str(&format!("  string field_number_{f:05}_of_message = {f};\n"));
        }
        text.push_str("}\n");
    }
    assert!(text.len() > 3_000_000 && text.len() < strom_schema::SCHEMA_BYTES_MAX);
    let started = std::time::Instant::now();
    let schema = parse(&text);
    assert!(schema.incompatibilities_reading(&schema).is_empty());
    println!("{} bytes in {:?}", text.len(), started.elapsed());
}
