//! Avro as Confluent Schema Registry does it: the texts Java Avro writes, name resolution with
//! references, the schema resolution rules with Confluent's messages, hostile input, decoding.

use serde_json::json;
use strom_schema::avro::AvroSchema;
use strom_schema::{check, Compatibility, Dependency, Schema, SchemaType, NESTING_MAX};

fn parse(text: &str) -> AvroSchema {
    AvroSchema::parse(text, &[]).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn refused(text: &str) -> String {
    match AvroSchema::parse(text, &[]) {
        Ok(schema) => panic!("accepted {text} as {}", schema.canonical()),
        Err(error) => error.0,
    }
}

fn canonical(text: &str) -> String {
    parse(text).canonical()
}

fn reading(new: &str, old: &str) -> Vec<String> {
    parse(new).incompatibilities_reading(&parse(old))
}

fn avro(text: &str) -> Schema {
    Schema::parse(SchemaType::Avro, text, &[]).unwrap()
}

// --- canonical text -------------------------------------------------------------------------

#[test]
fn primitives_are_written_as_their_names() {
    assert_eq!(canonical(r#""string""#), r#""string""#);
    assert_eq!(canonical(r#"{"type": "int"}"#), r#""int""#);
    assert_eq!(canonical(r#" { "type" : "null" } "#), r#""null""#);
}

#[test]
fn a_primitive_keeps_its_properties_but_not_reserved_attributes() {
    assert_eq!(
        canonical(r#"{"type":"long","logicalType":"timestamp-millis","doc":"dropped"}"#),
        r#"{"type":"long","logicalType":"timestamp-millis"}"#
    );
    assert_eq!(
        canonical(r#"{"type":"bytes","scale":2,"precision":4,"logicalType":"decimal"}"#),
        r#"{"type":"bytes","scale":2,"precision":4,"logicalType":"decimal"}"#
    );
}

#[test]
fn record_attributes_come_in_java_order() {
    // Confluent's AvroSchemaTest.testNormalization.
    let text = r#"{"type":"record","name":"myrecord","doc":"hi\"there","fields":[{"type":"string","name":"f1","doc":"bye\"now"}]}"#;
    let expected = r#"{"type":"record","name":"myrecord","doc":"hi\"there","fields":[{"name":"f1","type":"string","doc":"bye\"now"}]}"#;
    let schema = parse(text);
    assert_eq!(schema.canonical(), expected);
    assert_eq!(schema.normalized(), expected);
}

#[test]
fn field_attributes_and_properties() {
    let text = r#"{
        "fields": [{
            "x-custom": {"b": 1, "a": [true, null]},
            "aliases": ["old", "older", "old"],
            "order": "DESCENDING",
            "default": 5,
            "doc": "",
            "type": "int",
            "name": "n"
        }],
        "aliases": ["Before"],
        "connect.name": "R",
        "name": "R",
        "type": "record"
    }"#;
    assert_eq!(
        canonical(text),
        r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int","doc":"","default":5,"order":"descending","aliases":["old","older"],"x-custom":{"b":1,"a":[true,null]}}],"connect.name":"R","aliases":["Before"]}"#
    );
}

#[test]
fn enums_fixed_arrays_and_maps() {
    let text = r#"{"type":"record","name":"All","namespace":"n","fields":[
        {"name":"e","type":{"type":"enum","name":"Suit","doc":"d","symbols":["A","B"],"default":"A","aliases":["OldSuit"]}},
        {"name":"f","type":{"size":16,"type":"fixed","name":"Id","logicalType":"uuid"}},
        {"name":"a","type":{"type":"array","items":"Suit","x":1}},
        {"name":"m","type":{"values":["null","Id"],"type":"map"}}
    ]}"#;
    assert_eq!(
        canonical(text),
        r#"{"type":"record","name":"All","namespace":"n","fields":[{"name":"e","type":{"type":"enum","name":"Suit","doc":"d","symbols":["A","B"],"default":"A","aliases":["OldSuit"]}},{"name":"f","type":{"type":"fixed","name":"Id","size":16,"logicalType":"uuid"}},{"name":"a","type":{"type":"array","items":"Suit","x":1}},{"name":"m","type":{"type":"map","values":["null","Id"]}}]}"#
    );
}

#[test]
fn named_types_are_defined_once_then_named_relative_to_the_namespace() {
    let text = r#"{"type":"record","name":"Outer","namespace":"com.acme","fields":[
        {"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},
        {"name":"again","type":"Inner"},
        {"name":"full","type":"com.acme.Inner"},
        {"name":"other","type":{"type":"enum","name":"org.E","symbols":["A"]}},
        {"name":"e2","type":"org.E"},
        {"name":"bare","type":{"type":"record","name":"Bare","namespace":"","fields":[]}}
    ]}"#;
    assert_eq!(
        canonical(text),
        r#"{"type":"record","name":"Outer","namespace":"com.acme","fields":[{"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},{"name":"again","type":"Inner"},{"name":"full","type":"Inner"},{"name":"other","type":{"type":"enum","name":"E","namespace":"org","symbols":["A"]}},{"name":"e2","type":"org.E"},{"name":"bare","type":{"type":"record","name":"Bare","namespace":"","fields":[]}}]}"#
    );
}

#[test]
fn a_dotted_name_overrides_the_namespace_attribute() {
    assert_eq!(
        canonical(r#"{"type":"fixed","name":"a.b.F","namespace":"ignored","size":4}"#),
        r#"{"type":"fixed","name":"F","namespace":"a.b","size":4}"#
    );
}

#[test]
fn defaults_are_written_as_parsed_numbers() {
    let text = r#"{"type":"record","name":"D","fields":[
        {"name":"f","type":"float","default":1},
        {"name":"d","type":"double","default":1e3},
        {"name":"s","type":"double","default":"2.5"},
        {"name":"l","type":"long","default":4000000000},
        {"name":"big","type":"double","default":12345678.9},
        {"name":"u","type":["null","string"],"default":null}
    ]}"#;
    let schema = parse(text);
    assert_eq!(
        schema.canonical(),
        r#"{"type":"record","name":"D","fields":[{"name":"f","type":"float","default":1},{"name":"d","type":"double","default":1000.0},{"name":"s","type":"double","default":2.5},{"name":"l","type":"long","default":4000000000},{"name":"big","type":"double","default":1.23456789E7},{"name":"u","type":["null","string"],"default":null}]}"#
    );
    assert_eq!(
        schema.normalized(),
        r#"{"type":"record","name":"D","fields":[{"name":"f","type":"float","default":1.0},{"name":"d","type":"double","default":1000.0},{"name":"s","type":"double","default":2.5},{"name":"l","type":"long","default":4000000000},{"name":"big","type":"double","default":1.23456789E7},{"name":"u","type":["null","string"],"default":null}]}"#
    );
}

#[test]
fn the_canonical_text_parses_back_to_itself() {
    let texts = [
        r#"{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},{"name":"l","type":{"type":"array","items":"E"}},{"name":"n","type":["null",{"type":"record","name":"c.N","fields":[{"name":"r","type":["null","a.b.R"]}]}],"default":null}]}"#,
        r#"["null","string",{"type":"map","values":"long"}]"#,
        r#"{"type":"string","x":{"z":1,"a":2}}"#,
    ];
    for text in texts {
        let once = canonical(text);
        assert_eq!(canonical(&once), once);
        let normalized = parse(text).normalized();
        assert_eq!(parse(&normalized).normalized(), normalized);
    }
}

// --- normalization --------------------------------------------------------------------------

#[test]
fn normalization_keeps_metadata_of_primitive_types() {
    // Confluent's AvroSchemaTest.testNormalizationPreservesMetadataForPrimitiveTypes.
    let text = r#"{"connect.name": "some.scope.Envelope","fields": [{"default": null,"name": "before","type": ["null",{"connect.name": "some.scope.Value","fields": [{"name": "created_at","type": {"connect.name": "io.debezium.time.Timestamp","connect.version": 1,"type": "long"}},{"name":"normal_long","type":"long"}],"name": "Value","type": "record"}]},{"default": null,"name": "after","type": ["null","Value"]}],"name": "Envelope","namespace": "some.scope","type": "record"}"#;
    let expected = r#"{"type":"record","name":"Envelope","namespace":"some.scope","fields":[{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"created_at","type":{"type":"long","connect.name":"io.debezium.time.Timestamp","connect.version":1}},{"name":"normal_long","type":"long"}],"connect.name":"some.scope.Value"}],"default":null},{"name":"after","type":["null","Value"],"default":null}],"connect.name":"some.scope.Envelope"}"#;
    let schema = parse(text);
    assert_eq!(schema.canonical(), expected);
    assert_eq!(schema.normalized(), expected);
}

#[test]
fn normalization_sorts_properties_aliases_and_object_keys() {
    let text = r#"{"type":"record","name":"R","namespace":"ns","doc":"","z":1,"a":{"y":1,"b":2},"aliases":["Zed","Alpha"],"fields":[
        {"name":"f","type":"string","zz":true,"aa":false,"aliases":["y","b"],"default":"s"}]}"#;
    let schema = parse(text);
    assert_eq!(
        schema.canonical(),
        r#"{"type":"record","name":"R","namespace":"ns","doc":"","fields":[{"name":"f","type":"string","default":"s","aliases":["y","b"],"zz":true,"aa":false}],"z":1,"a":{"y":1,"b":2},"aliases":["Zed","Alpha"]}"#
    );
    assert_eq!(
        schema.normalized(),
        r#"{"type":"record","name":"R","namespace":"ns","fields":[{"name":"f","type":"string","default":"s","aliases":["b","y"],"aa":false,"zz":true}],"a":{"b":2,"y":1},"z":1,"aliases":["Alpha","Zed"]}"#
    );
}

#[test]
fn normalization_writes_a_logical_type_first() {
    let schema =
        parse(r#"{"type":"bytes","x-a":1,"scale":2,"precision":4,"logicalType":"decimal"}"#);
    assert_eq!(
        schema.normalized(),
        r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2,"x-a":1}"#
    );
    // An invalid logical type is only a property, sorted with the rest.
    let schema = parse(r#"{"type":"string","zeta":1,"logicalType":"date"}"#);
    assert_eq!(
        schema.normalized(),
        r#"{"type":"string","logicalType":"date","zeta":1}"#
    );
}

#[test]
fn schemas_differing_only_in_layout_normalize_alike() {
    let a = parse(
        r#"{"type":"record","name":"R","b":1,"a":2,"fields":[{"name":"x","type":"double","default":1}]}"#,
    );
    let b = parse(
        r#"{"fields":[{"default":1.0,"type":"double","name":"x"}],"a":2,"b":1,"name":"R","type":"record"}"#,
    );
    assert_ne!(a.canonical(), b.canonical());
    assert_eq!(a.normalized(), b.normalized());
}

#[test]
fn normalization_sorts_keys_of_record_defaults_by_field() {
    let text = r#"{"type":"record","name":"R","fields":[{"name":"p","type":{"type":"record","name":"P","fields":[{"name":"y","type":"float"},{"name":"x","type":"int"}]},"default":{"y":2,"x":1}}]}"#;
    assert!(parse(text)
        .normalized()
        .contains(r#""default":{"x":1,"y":2.0}"#));
}

// --- references -----------------------------------------------------------------------------

const ADDRESS: &str = r#"{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"street","type":"string"},{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["HOME","WORK"]}}]}"#;

fn with_address(text: &str) -> Result<AvroSchema, String> {
    let dependency = Dependency {
        name: "com.acme.Address",
        schema: ADDRESS,
    };
    AvroSchema::parse(text, &[dependency]).map_err(|error| error.0)
}

#[test]
fn a_referenced_type_resolves_and_stays_named() {
    let text = r#"{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"home","type":"Address"},{"name":"work","type":["null","com.acme.Address"],"default":null}]}"#;
    let schema = with_address(text).unwrap();
    assert_eq!(
        schema.canonical(),
        r#"{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"home","type":"Address"},{"name":"work","type":["null","Address"],"default":null}]}"#
    );
    assert_eq!(schema.normalized(), schema.canonical());
}

#[test]
fn a_type_nested_in_a_reference_is_written_out_as_java_does() {
    // Java's toString(referencedSchemas) knows only the references' top-level names.
    let text = r#"{"type":"record","name":"T","fields":[{"name":"k","type":"com.acme.Kind"}]}"#;
    let schema = with_address(text).unwrap();
    assert_eq!(
        schema.canonical(),
        r#"{"type":"record","name":"T","fields":[{"name":"k","type":{"type":"enum","name":"Kind","namespace":"com.acme","symbols":["HOME","WORK"]}}]}"#
    );
}

#[test]
fn a_schema_may_be_just_a_referenced_name() {
    let schema = with_address(r#""com.acme.Address""#).unwrap();
    assert_eq!(schema.canonical(), r#""com.acme.Address""#);
}

#[test]
fn an_unresolved_reference_is_refused() {
    let text = r#"{"type":"record","name":"P","fields":[{"name":"a","type":"com.acme.Address"}]}"#;
    assert!(refused(text).contains("Undefined name"));
    assert!(with_address(text).is_ok());
}

#[test]
fn a_schema_may_not_redefine_a_referenced_name() {
    let error =
        with_address(r#"{"type":"record","name":"com.acme.Address","fields":[]}"#).unwrap_err();
    assert!(error.contains("Can't redefine"), "{error}");
}

#[test]
fn an_invalid_dependency_is_named_in_the_error() {
    let dependency = Dependency {
        name: "broken.avsc",
        schema: "{",
    };
    let error = AvroSchema::parse(r#""int""#, &[dependency]).unwrap_err().0;
    assert!(error.contains("broken.avsc"), "{error}");
}

#[test]
fn references_take_part_in_compatibility() {
    let dependency_v1 = ADDRESS;
    let dependency_v2 = r#"{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"street","type":"string"},{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["HOME","WORK"]}},{"name":"zip","type":"string"}]}"#;
    let person =
        r#"{"type":"record","name":"Person","fields":[{"name":"a","type":"com.acme.Address"}]}"#;
    let old = AvroSchema::parse(
        person,
        &[Dependency {
            name: "com.acme.Address",
            schema: dependency_v1,
        }],
    )
    .unwrap();
    let new = AvroSchema::parse(
        person,
        &[Dependency {
            name: "com.acme.Address",
            schema: dependency_v2,
        }],
    )
    .unwrap();
    assert_eq!(
        new.incompatibilities_reading(&old),
        vec!["{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'zip' at path '/fields/0/type/fields/2' in the new schema has no default value and is missing in the old schema', additionalInfo:'zip'}"]
    );
    assert!(old.incompatibilities_reading(&new).is_empty());
}

// --- refused schemas ------------------------------------------------------------------------

#[test]
fn invalid_json_and_non_schemas_are_refused() {
    assert!(refused("{").contains("JSON"));
    assert!(refused("42").contains("not an Avro schema"));
    assert!(refused(r#"{"name":"x"}"#).contains("No type"));
    assert!(refused(r#"{"type":"record","name":"R"}"#).contains("no fields"));
    assert!(refused(r#"{"type":"array"}"#).contains("items"));
    assert!(refused(r#"{"type":"fixed","name":"F","size":-1}"#).contains("size"));
    assert!(refused(r#"{"type":"fixed","name":"F","size":"4"}"#).contains("size"));
    assert!(
        refused(r#"{"type":"record","name":"R","fields":[{"name":"a"}]}"#)
            .contains("No field type")
    );
}

#[test]
fn unknown_type_names_are_refused() {
    assert!(refused(r#""Nope""#).contains("Undefined name"));
    assert!(refused(r#"{"type":"recrod","name":"R","fields":[]}"#).contains("Undefined name"));
    assert!(
        refused(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"strin"}]}"#)
            .contains("\"strin\"")
    );
}

#[test]
fn invalid_names_are_refused() {
    assert!(refused(r#"{"type":"record","name":"1R","fields":[]}"#)
        .contains("Illegal initial character"));
    assert!(refused(r#"{"type":"record","name":"a-b","fields":[]}"#).contains("Illegal character"));
    assert!(refused(r#"{"type":"record","name":"ns.","fields":[]}"#).contains("Empty name"));
    assert!(
        refused(r#"{"type":"record","name":"R","fields":[{"name":"x y","type":"int"}]}"#)
            .contains("Illegal character")
    );
    assert!(refused(r#"{"type":"enum","name":"E","symbols":["ok","not ok"]}"#).contains("Illegal"));
    assert!(refused(r#"{"type":"enum","name":"E","symbols":["é"]}"#).contains("Illegal"));
    assert!(refused(r#"{"type":"fixed","name":"int","size":1}"#).contains("primitives"));
}

#[test]
fn duplicates_are_refused() {
    assert!(refused(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"long"}]}"#)
        .contains("Duplicate field a"));
    assert!(refused(r#"{"type":"enum","name":"E","symbols":["A","A"]}"#)
        .contains("Duplicate enum symbol"));
    assert!(refused(r#"["int","string","int"]"#).contains("Duplicate in union: int"));
    assert!(
        refused(r#"[{"type":"array","items":"int"},{"type":"array","items":"long"}]"#)
            .contains("Duplicate in union: array")
    );
    assert!(refused(r#"["null",["int"]]"#).contains("Nested union"));
    assert!(refused(
        r#"[{"type":"fixed","name":"F","size":1},{"type":"fixed","name":"F","size":2}]"#
    )
    .contains("Can't redefine: F"));
}

#[test]
fn an_enum_default_must_be_a_symbol() {
    assert!(
        refused(r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#)
            .contains("The Enum Default: B is not in the enum symbol set: [A]")
    );
}

#[test]
fn defaults_are_validated() {
    // Confluent's AvroSchemaTest.testInvalidDefaultDuringNormalize.
    let error = refused(
        r#"{"namespace":"namespace","type":"record","name":"test","fields":[{"name":"string_default","type":"string","default":null}]}"#,
    );
    assert!(
        error.contains("Invalid default for field string_default"),
        "{error}"
    );
    for (kind, default) in [
        ("int", "1.5"),
        ("int", "3000000000"),
        ("long", "\"1\""),
        ("boolean", "0"),
        ("float", "\"fast\""),
        (r#"{"type":"array","items":"int"}"#, r#"["a"]"#),
        (r#"{"type":"map","values":"int"}"#, "[]"),
        (r#"["null","int"]"#, r#""x""#),
    ] {
        let text = format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"f","type":{kind},"default":{default}}}]}}"#
        );
        let text = text.replace(r#""type":int"#, r#""type":"int""#);
        let text = text.replace(r#""type":long"#, r#""type":"long""#);
        let text = text.replace(r#""type":boolean"#, r#""type":"boolean""#);
        let text = text.replace(r#""type":float"#, r#""type":"float""#);
        assert!(refused(&text).contains("Invalid default"), "{text}");
    }
    // Avro 1.12: a union's default may match any branch.
    parse(
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":["null","int"],"default":3}]}"#,
    );
    // A record default may leave out fields that have defaults of their own.
    parse(
        r#"{"type":"record","name":"R","fields":[{"name":"p","type":{"type":"record","name":"P","fields":[{"name":"a","type":"int","default":1}]},"default":{}}]}"#,
    );
}

#[test]
fn a_default_that_defines_itself_is_refused_not_overflowed() {
    let text = r#"{"type":"record","name":"R","fields":[{"name":"me","type":"R","default":{}}]}"#;
    assert!(refused(text).contains("deeper"));
}

#[test]
fn defaults_nested_through_many_records_are_checked_quickly() {
    // R0 has 10 fields of type R1 defaulting to {}, R1 10 fields of R2, ...: checked naively,
    // 10^9 checks.
    let mut types =
        r#"{"type":"record","name":"R9","fields":[{"name":"x","type":"int","default":1}]}"#
            .to_string();
    for level in (0..9).rev() {
        let fields: Vec<String> = (0..10)
            .map(|index| {
                let kind = if index == 0 {
                    types.clone()
                } else {
                    format!(r#""R{}""#, level + 1)
                };
                format!(r#"{{"name":"f{index}","type":{kind},"default":{{}}}}"#)
            })
            .collect();
        types = format!(
            r#"{{"type":"record","name":"R{level}","fields":[{}]}}"#,
            fields.join(",")
        );
    }
    let started = std::time::Instant::now();
    let schema = parse(&types);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(schema
        .normalized()
        .starts_with(r#"{"type":"record","name":"R0""#));
}

// --- hostile input --------------------------------------------------------------------------

#[test]
fn deeply_nested_json_is_refused_before_parsing() {
    let text = "[".repeat(100_000);
    assert!(refused(&text).contains("nests deeper than"));
    let text = format!("{}\"int\"{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(refused(&text).contains("nests deeper than"));
    let nested_arrays = format!(
        "{}\"int\"{}",
        r#"{"type":"array","items":"#.repeat(NESTING_MAX + 1),
        "}".repeat(NESTING_MAX + 1)
    );
    assert!(refused(&nested_arrays).contains("nests deeper than"));
    let allowed = format!(
        "{}\"int\"{}",
        r#"{"type":"array","items":"#.repeat(NESTING_MAX - 1),
        "}".repeat(NESTING_MAX - 1)
    );
    parse(&allowed);
}

#[test]
fn a_ten_mebibyte_schema_is_refused() {
    let text = format!(r#"{{"type":"string","doc":"{}"}}"#, "x".repeat(10 << 20));
    assert!(Schema::parse(SchemaType::Avro, &text, &[]).is_err());
    assert!(refused(&text).contains("bytes"));
}

#[test]
fn a_big_schema_within_the_limit_parses() {
    let text = format!(
        r#"{{"type":"record","name":"R","doc":"{}","fields":[]}}"#,
        "x".repeat(3 << 20)
    );
    assert_eq!(parse(&text).canonical().len(), text.len());
}

#[test]
fn errors_quote_only_an_excerpt() {
    let text = format!(
        r#"{{"type":"record","name":"R","pad":"{}"}}"#,
        "y".repeat(100_000)
    );
    assert!(refused(&text).len() < 1000);
}

#[test]
fn a_record_may_refer_to_itself_through_a_union() {
    let text = r#"{"type":"record","name":"LinkedList","fields":[{"name":"value","type":"int"},{"name":"next","type":["null","LinkedList"],"default":null}]}"#;
    let schema = parse(text);
    assert_eq!(schema.canonical(), text);
    assert!(schema.incompatibilities_reading(&schema).is_empty());
    let datum = [0x02, 0x02, 0x04, 0x00];
    assert_eq!(
        schema.decode(&datum).unwrap(),
        json!({"value": 1, "next": {"value": 2, "next": null}})
    );
}

#[test]
fn mutually_recursive_records_parse_and_compare() {
    let text = r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}]}]}"#;
    let schema = parse(text);
    assert_eq!(schema.canonical(), text);
    assert!(schema.incompatibilities_reading(&schema).is_empty());
}

#[test]
fn a_long_chain_of_references_is_bounded() {
    // Each dependency nests the previous one's type one level deeper than a text can show.
    let mut texts = vec![r#"{"type":"record","name":"T0","fields":[]}"#.to_string()];
    for level in 1..1500 {
        texts.push(format!(
            r#"{{"type":"record","name":"W{level}","fields":[{{"name":"f","type":{{"type":"record","name":"T{level}","fields":[{{"name":"g","type":"T{}"}}]}}}}]}}"#,
            level - 1
        ));
    }
    let names: Vec<String> = (0..texts.len()).map(|level| format!("W{level}")).collect();
    let dependencies: Vec<Dependency<'_>> = texts
        .iter()
        .zip(&names)
        .map(|(schema, name)| Dependency { name, schema })
        .collect();
    let result = AvroSchema::parse(r#""T1499""#, &dependencies);
    assert!(result.unwrap_err().0.contains("deeper"));
}

// --- compatibility: schema resolution -------------------------------------------------------

const PERSON_V1: &str =
    r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"string"}]}"#;

#[test]
fn adding_a_field_with_a_default_is_backward_compatible() {
    let v2 = r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}"#;
    assert!(reading(v2, PERSON_V1).is_empty());
}

#[test]
fn adding_a_field_without_a_default_is_not() {
    let v2 = r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;
    assert_eq!(
        reading(v2, PERSON_V1),
        vec!["{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'age' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'age'}"]
    );
}

#[test]
fn removing_a_field_is_backward_but_not_forward_compatible() {
    let v2 = r#"{"type":"record","name":"Person","fields":[]}"#;
    assert!(reading(v2, PERSON_V1).is_empty());
    assert_eq!(reading(PERSON_V1, v2).len(), 1);
}

#[test]
fn promotions_are_compatible_one_way() {
    let field = |kind: &str| {
        format!(r#"{{"type":"record","name":"R","fields":[{{"name":"x","type":"{kind}"}}]}}"#)
    };
    let promotions = [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ];
    for (writer, reader) in promotions {
        assert!(
            reading(&field(reader), &field(writer)).is_empty(),
            "{writer} -> {reader}"
        );
    }
    for (writer, reader) in [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("int", "string"),
        ("boolean", "int"),
    ] {
        assert_eq!(
            reading(&field(reader), &field(writer)).len(),
            1,
            "{writer} -> {reader}"
        );
    }
}

#[test]
fn a_type_change_reports_confluents_type_mismatch() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#;
    let new = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"string"}]}"#;
    assert_eq!(
        reading(new, old),
        vec!["{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/0/type') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: STRING not compatible with writer type: INT'}"]
    );
}

#[test]
fn enum_symbols() {
    let old = r#"{"type":"enum","name":"E","symbols":["A","B","C","D"]}"#;
    let fewer = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
    assert_eq!(
        reading(fewer, old),
        vec!["{errorType:'MISSING_ENUM_SYMBOLS', description:'The new schema is missing enum symbols '[C, D]' at path '/symbols' in the old schema', additionalInfo:'[C, D]'}"]
    );
    assert!(reading(old, fewer).is_empty());
    let with_default = r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#;
    assert!(reading(with_default, old).is_empty());
}

#[test]
fn names_must_match_or_be_aliased() {
    let old = r#"{"type":"record","name":"ns1.Old","fields":[]}"#;
    let renamed = r#"{"type":"record","name":"New","fields":[]}"#;
    assert_eq!(
        reading(renamed, old),
        vec!["{errorType:'NAME_MISMATCH', description:'The name of the schema has changed (path '/name')', additionalInfo:'expected: ns1.Old'}"]
    );
    let aliased = r#"{"type":"record","name":"New","aliases":["ns1.Old"],"fields":[]}"#;
    assert!(reading(aliased, old).is_empty());
    // Only the simple name counts: moving to another namespace is compatible.
    let moved = r#"{"type":"record","name":"ns2.Old","fields":[]}"#;
    assert!(reading(moved, old).is_empty());
}

#[test]
fn fixed_sizes_must_match() {
    let old = r#"{"type":"fixed","name":"F","size":4}"#;
    let new = r#"{"type":"fixed","name":"F","size":8}"#;
    assert_eq!(
        reading(new, old),
        vec!["{errorType:'FIXED_SIZE_MISMATCH', description:'The size of FIXED type field at path '/size' in the new schema does not match with the old schema', additionalInfo:'expected: 4, found: 8'}"]
    );
}

#[test]
fn unions() {
    let record = |kind: &str| {
        format!(r#"{{"type":"record","name":"R","fields":[{{"name":"u","type":{kind}}}]}}"#)
    };
    // A reader union takes a writer branch it has.
    assert!(reading(&record(r#"["null","string"]"#), &record(r#""string""#)).is_empty());
    // A reader union without the writer's type.
    assert_eq!(
        reading(&record(r#"["null","int"]"#), &record(r#""string""#)),
        vec!["{errorType:'MISSING_UNION_BRANCH', description:'The new schema is missing a type inside a union field at path '/fields/0/type' in the old schema', additionalInfo:'reader union lacking writer type: STRING'}"]
    );
    // A writer union wider than the reader's.
    assert_eq!(
        reading(&record(r#"["null","string"]"#), &record(r#"["null","string","long"]"#)),
        vec!["{errorType:'MISSING_UNION_BRANCH', description:'The new schema is missing a type inside a union field at path '/fields/0/type/2' in the old schema', additionalInfo:'reader union lacking writer type: LONG'}"]
    );
    // A writer union read by a plain type: each branch is checked.
    assert_eq!(
        reading(&record(r#""string""#), &record(r#"["null","string"]"#)),
        vec!["{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/0/type/0') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: STRING not compatible with writer type: NULL'}"]
    );
    // Promotion inside a union.
    assert!(reading(&record(r#"["null","long"]"#), &record(r#"["null","int"]"#)).is_empty());
}

#[test]
fn a_field_renamed_with_an_alias_is_compatible() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"old_name","type":"int"}]}"#;
    let new = r#"{"type":"record","name":"R","fields":[{"name":"new_name","type":"int","aliases":["old_name"]}]}"#;
    assert!(reading(new, old).is_empty());
}

#[test]
fn arrays_and_maps_compare_their_items() {
    let old = r#"{"type":"map","values":{"type":"array","items":"int"}}"#;
    assert!(reading(
        r#"{"type":"map","values":{"type":"array","items":"long"}}"#,
        old
    )
    .is_empty());
    let messages = reading(
        r#"{"type":"map","values":{"type":"array","items":"string"}}"#,
        old,
    );
    assert!(messages[0].contains("path '/values/items'"), "{messages:?}");
}

#[test]
fn every_incompatibility_is_reported() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    let new = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string"},{"name":"c","type":"int"}]}"#;
    assert_eq!(reading(new, old).len(), 3);
}

#[test]
fn compatibility_levels_through_check() {
    let v1 = avro(PERSON_V1);
    let v2 = avro(
        r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}"#,
    );
    // v3 drops the default: it cannot read v1 (no age there), but it can read v2.
    let v3 = avro(
        r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#,
    );
    assert!(check(Compatibility::Backward, &v2, &[(1, &v1)]).is_empty());
    assert!(check(Compatibility::Backward, &v3, &[(1, &v1), (2, &v2)]).is_empty());
    let reasons = check(
        Compatibility::BackwardTransitive,
        &v3,
        &[(1, &v1), (2, &v2)],
    );
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("READER_FIELD_MISSING_DEFAULT_VALUE"));
    assert!(reasons[0].ends_with("(reading data of version 1)"));
    // FORWARD: the old version reads the new one's data; v1 ignores the added field.
    assert!(check(Compatibility::Forward, &v2, &[(1, &v1)]).is_empty());
    assert!(check(Compatibility::Full, &v2, &[(1, &v1)]).is_empty());
    let int_name =
        avro(r#"{"type":"record","name":"Person","fields":[{"name":"name","type":"int"}]}"#);
    assert_eq!(check(Compatibility::Full, &int_name, &[(1, &v1)]).len(), 2);
    assert!(check(Compatibility::None, &int_name, &[(1, &v1)]).is_empty());
}

// --- decoding -------------------------------------------------------------------------------

#[test]
fn a_datum_decodes_to_json() {
    let schema = parse(
        r#"{"type":"record","name":"R","fields":[
        {"name":"id","type":"int"},
        {"name":"name","type":"string"},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"opt","type":["null","long"]},
        {"name":"ok","type":"boolean"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
        {"name":"m","type":{"type":"map","values":"double"}},
        {"name":"raw","type":"bytes"},
        {"name":"f","type":{"type":"fixed","name":"F","size":2}},
        {"name":"x","type":"float"}
    ]}"#,
    );
    let mut datum = vec![
        0x02, 0x04, b'a', b'b', 0x02, 0x02, b'x', 0x00, 0x02, 0xD8, 0x04, 0x01, 0x02,
    ];
    datum.extend([0x02, 0x02, b'k']);
    datum.extend(1.5f64.to_le_bytes());
    datum.push(0x00);
    datum.extend([0x04, 0x00, 0xFF, 0x41, 0x42]);
    datum.extend(0.1f32.to_le_bytes());
    assert_eq!(
        schema.decode(&datum).unwrap(),
        json!({"id": 1, "name": "ab", "tags": ["x"], "opt": 300, "ok": true, "e": "B",
               "m": {"k": 1.5}, "raw": "\u{0}\u{ff}", "f": "AB", "x": 0.1})
    );
}

#[test]
fn blocks_with_byte_sizes_decode() {
    let schema = parse(r#"{"type":"array","items":"int"}"#);
    // A block of -2 items, 2 bytes long, then the end.
    assert_eq!(
        schema.decode(&[0x03, 0x04, 0x02, 0x04, 0x00]).unwrap(),
        json!([1, 2])
    );
}

#[test]
fn malformed_data_is_an_error() {
    let schema = parse(
        r#"{"type":"record","name":"R","fields":[{"name":"s","type":"string"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}]}"#,
    );
    assert!(schema.decode(&[]).is_err());
    assert!(schema
        .decode(&[0x10, b'a'])
        .unwrap_err()
        .contains("ends early"));
    assert!(schema
        .decode(&[0x02, 0xFF, 0x00])
        .unwrap_err()
        .contains("UTF-8"));
    assert!(schema
        .decode(&[0x00, 0x02])
        .unwrap_err()
        .contains("out of range"));
    assert!(schema
        .decode(&[0x00, 0x00, 0x00])
        .unwrap_err()
        .contains("left over"));
    assert!(schema
        .decode(&[0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        .is_err());
    let int = parse(r#""int""#);
    assert!(int
        .decode(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        .unwrap_err()
        .contains("out of range"));
}

#[test]
fn an_endless_array_of_nulls_is_cut_off() {
    let schema = parse(r#"{"type":"array","items":"null"}"#);
    // A count of i64::MAX items, none of which takes a byte.
    let datum = [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    assert!(schema.decode(&datum).unwrap_err().contains("more than"));
}

#[test]
fn deeply_recursive_data_is_cut_off() {
    let schema =
        parse(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#);
    let mut datum = vec![0x02; 100_000];
    datum.push(0x00);
    assert!(schema.decode(&datum).unwrap_err().contains("nests deeper"));
}
