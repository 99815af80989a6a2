//! JSON Schema: parsing, the stored forms, Confluent's compatibility rules, hostile input.

use strom_schema::json::JsonSchema;
use strom_schema::{check, Compatibility, Dependency, Schema, SchemaType, NESTING_MAX};

fn parse(text: &str) -> JsonSchema {
    JsonSchema::parse(text, &[]).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn refused(text: &str) -> String {
    match JsonSchema::parse(text, &[]) {
        Ok(_) => panic!("accepted {text}"),
        Err(error) => error.0,
    }
}

/// The incompatibilities of `new` reading `old`.
fn reading(new: &str, old: &str) -> Vec<String> {
    parse(new).incompatibilities_reading(&parse(old))
}

/// Every difference from `old` to `new`, as `TYPE #/path`, sorted.
fn differences(new: &str, old: &str) -> Vec<String> {
    let mut found = parse(new).differences(&parse(old)).unwrap();
    found.sort();
    found
}

fn error_types(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.split('"').nth(1).unwrap_or_default().to_string())
        .collect()
}

// ----- parsing ---------------------------------------------------------------------------------

#[test]
fn accepts_objects_and_booleans() {
    parse("{}");
    parse("true");
    parse("false");
    parse(r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#);
}

#[test]
fn refuses_other_roots_and_bad_json() {
    assert!(refused("[]").contains("expected an object or boolean at the root, found ARRAY"));
    assert!(refused("12").contains("found NUMBER"));
    assert!(refused("{").contains("not valid JSON"));
    assert!(refused("").contains("not valid JSON"));
    assert!(refused(r#"{"a":1} trailing"#).contains("not valid JSON"));
}

#[test]
fn refuses_badly_typed_keywords() {
    for (text, expected) in [
        (r#"{"type":"strin"}"#, "unknown type: [strin]"),
        (
            r#"{"type":5}"#,
            "type must be a string or an array of strings",
        ),
        (
            r#"{"type":["string",1]}"#,
            "type must be a string or an array of strings",
        ),
        (
            r#"{"properties":[]}"#,
            "properties must be an object of schemas",
        ),
        (
            r#"{"properties":{"a":5}}"#,
            "a schema must be an object or a boolean, found NUMBER",
        ),
        (
            r#"{"required":"a"}"#,
            "required must be an array of strings",
        ),
        (
            r#"{"required":[1]}"#,
            "required must be an array of strings",
        ),
        (
            r#"{"items":"x"}"#,
            "a schema must be an object or a boolean, found STRING",
        ),
        (r#"{"enum":"a"}"#, "enum must be an array"),
        (r#"{"$ref":5}"#, "$ref must be a string"),
        (r#"{"anyOf":{}}"#, "anyOf must be an array of schemas"),
        (r#"{"oneOf":[]}"#, "oneOf must not be empty"),
        (
            r#"{"minLength":-1}"#,
            "minLength must be a non-negative integer",
        ),
        (
            r#"{"maxItems":"3"}"#,
            "maxItems must be a non-negative integer",
        ),
        (r#"{"minimum":"0"}"#, "minimum must be a number"),
        (r#"{"multipleOf":0}"#, "multipleOf should not be 0"),
        (r#"{"title":3}"#, "title must be a string"),
        (r#"{"additionalProperties":3}"#, "found NUMBER"),
        (r#"{"uniqueItems":1}"#, "uniqueItems must be a boolean"),
        (r#"{"$schema":7}"#, "$schema must be a string"),
        (r#"{"$schema":"http://example.com/x"}"#, "unknown $schema"),
    ] {
        let error = refused(text);
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn error_messages_say_where() {
    let error = refused(r#"{"properties":{"a":{"properties":{"b":{"type":"nope"}}}}}"#);
    assert!(error.contains("#/properties/a/properties/b"), "{error}");
}

#[test]
fn drafts_are_chosen_by_schema() {
    // Draft-04: exclusive limits are booleans, and `id` (not `$id`) is the id.
    parse(
        r#"{"$schema":"http://json-schema.org/draft-04/schema#","maximum":3,"exclusiveMaximum":true}"#,
    );
    assert!(refused(
        r#"{"$schema":"http://json-schema.org/draft-04/schema#","exclusiveMaximum":3}"#
    )
    .contains("must be a boolean in draft-04"));
    // Draft-06 on: they are numbers.
    parse(r#"{"$schema":"http://json-schema.org/draft-06/schema#","exclusiveMaximum":3}"#);
    assert!(refused(r#"{"exclusiveMaximum":true}"#).contains("exclusiveMaximum must be a number"));
    parse(
        r#"{"$schema":"https://json-schema.org/draft/2019-09/schema","dependentRequired":{"a":["b"]}}"#,
    );
    parse(
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}],"items":false}"#,
    );
}

#[test]
fn draft_2019_ref_keeps_its_siblings() {
    // Up to draft-07 a $ref replaces its siblings; from 2019-09 they still apply.
    let draft7 = r##"{"definitions":{"s":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/s","maxLength":3}}}"##;
    let draft7_new = r##"{"definitions":{"s":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/s","maxLength":2}}}"##;
    assert!(reading(draft7_new, draft7).is_empty());
    let modern = |max: u32| {
        format!(
            r##"{{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{{"s":{{"type":"string"}}}},"properties":{{"a":{{"$ref":"#/$defs/s","maxLength":{max}}}}}}}"##
        )
    };
    // The synthetic allOf of the $ref and the siblings no longer matches branch for branch.
    assert_eq!(
        error_types(&reading(&modern(2), &modern(3))),
        ["COMBINED_TYPE_SUBSCHEMAS_CHANGED"]
    );
    assert!(reading(&modern(4), &modern(3)).is_empty());
}

#[test]
fn local_refs_resolve() {
    parse(
        r##"{"definitions":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/definitions/a"}}}"##,
    );
    parse(r##"{"$defs":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}}"##);
    // Confluent bridges `definitions` into `$defs`.
    parse(r##"{"definitions":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}}"##);
    // Escaped pointer tokens and plain-name anchors.
    parse(
        r##"{"definitions":{"a/b":{"type":"string"}},"properties":{"x":{"$ref":"#/definitions/a~1b"}}}"##,
    );
    parse(
        r##"{"definitions":{"a":{"$id":"#thing","type":"string"}},"properties":{"x":{"$ref":"#thing"}}}"##,
    );
    // A recursive type: a node whose children are nodes.
    parse(r##"{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#"}}}}"##);
    // Meta-schema references describe any schema.
    parse(r#"{"properties":{"s":{"$ref":"http://json-schema.org/draft-07/schema#"}}}"#);
}

#[test]
fn refs_to_nothing_are_refused() {
    let error = refused(r##"{"properties":{"x":{"$ref":"#/definitions/missing"}}}"##);
    assert!(
        error.contains("the $ref '#/definitions/missing' points to nothing"),
        "{error}"
    );
    let error = refused(r#"{"properties":{"x":{"$ref":"other.json"}}}"#);
    assert!(
        error.contains("names no schema this one references"),
        "{error}"
    );
    assert!(refused(r##"{"$ref":"#nowhere"}"##).contains("points to nothing"));
}

#[test]
fn ref_cycles_terminate() {
    // a -> b -> a with no schema in between is refused rather than followed forever.
    let error = refused(
        r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"}"##,
    );
    assert!(error.contains("cycle of $refs"), "{error}");
    assert!(refused(r##"{"$ref":"#"}"##).contains("cycle of $refs"));
    // A cycle through real schemas is a recursive type, and compares in finite time.
    let tree = |leaf: &str| {
        format!(
            r##"{{"definitions":{{"a":{{"type":"object","properties":{{"b":{{"$ref":"#/definitions/b"}},"leaf":{{"type":"{leaf}"}}}}}},"b":{{"type":"object","properties":{{"a":{{"$ref":"#/definitions/a"}}}}}}}},"$ref":"#/definitions/a"}}"##
        )
    };
    assert!(reading(&tree("string"), &tree("string")).is_empty());
    // Found at the leaf, and again where the cycle comes back to it (as Confluent reports it).
    let found = reading(&tree("integer"), &tree("string"));
    assert!(!found.is_empty());
    assert!(
        error_types(&found).iter().all(|t| t == "TYPE_CHANGED"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|m| m.contains("'#/properties/leaf'")),
        "{found:?}"
    );
}

#[test]
fn dependency_refs_resolve_by_name() {
    let address = r#"{"type":"object","properties":{"street":{"type":"string"}},"definitions":{"zip":{"type":"string"}}}"#;
    let person = r##"{"type":"object","properties":{"home":{"$ref":"address.json"},"zip":{"$ref":"address.json#/definitions/zip"}}}"##;
    let dependencies = [Dependency {
        name: "address.json",
        schema: address,
    }];
    JsonSchema::parse(person, &dependencies).unwrap();
    assert!(JsonSchema::parse(person, &[]).is_err());
    // A dependency's own local refs resolve within it, and it may refer to another one.
    let street = r#"{"type":"string"}"#;
    let address = r##"{"type":"object","properties":{"street":{"$ref":"street.json"},"again":{"$ref":"#/properties/street"}}}"##;
    let dependencies = [
        Dependency {
            name: "street.json",
            schema: street,
        },
        Dependency {
            name: "address.json",
            schema: address,
        },
    ];
    JsonSchema::parse(r#"{"$ref":"address.json"}"#, &dependencies).unwrap();
    // Names are also matched as URLs against the schema's $id.
    let with_id = r#"{"$id":"http://example.com/schemas/person.json","properties":{"a":{"$ref":"http://example.com/schemas/street.json"}}}"#;
    JsonSchema::parse(
        with_id,
        &[Dependency {
            name: "street.json",
            schema: street,
        }],
    )
    .unwrap();
}

#[test]
fn dependency_changes_are_seen_through_refs() {
    let person =
        r#"{"type":"object","properties":{"id":{"$ref":"id.json"}},"additionalProperties":false}"#;
    let old = JsonSchema::parse(
        person,
        &[Dependency {
            name: "id.json",
            schema: r#"{"type":"string"}"#,
        }],
    )
    .unwrap();
    let new = JsonSchema::parse(
        person,
        &[Dependency {
            name: "id.json",
            schema: r#"{"type":"integer"}"#,
        }],
    )
    .unwrap();
    assert_eq!(
        error_types(&new.incompatibilities_reading(&old)),
        ["TYPE_CHANGED"]
    );
}

#[test]
fn invalid_dependency_is_refused_with_its_name() {
    let error = JsonSchema::parse(
        r#"{"$ref":"x.json"}"#,
        &[Dependency {
            name: "x.json",
            schema: "[1]",
        }],
    )
    .unwrap_err();
    assert!(error.0.contains("x.json"), "{error}");
}

// ----- the stored forms --------------------------------------------------------------------------

#[test]
fn canonical_is_compact_in_the_order_given() {
    let schema = parse("{ \"type\" : \"object\",\n  \"properties\": {\"b\": {\"type\":\"string\"}, \"a\": {}},\n \"$id\": \"x\" }");
    assert_eq!(
        schema.canonical(),
        r#"{"type":"object","properties":{"b":{"type":"string"},"a":{}},"$id":"x"}"#
    );
    assert_eq!(parse(" true ").canonical(), "true");
    // Escapes are decoded and written back the way Jackson writes them.
    assert_eq!(
        parse(r#"{"title":"caf\u00e9 \/ \"q\""}"#).canonical(),
        r#"{"title":"café / \"q\""}"#
    );
    // A key given twice keeps its first place and its last value, as Jackson's tree does.
    assert_eq!(
        parse(r#"{"a":1,"b":2,"a":3}"#).canonical(),
        r#"{"a":3,"b":2}"#
    );
}

#[test]
fn normalized_sorts_every_object() {
    let schema = parse(
        r#"{"type":"object","properties":{"b":{"type":"string","maxLength":2},"a":{}},"required":["b","a"]}"#,
    );
    assert_eq!(
        schema.normalized(),
        r#"{"properties":{"a":{},"b":{"maxLength":2,"type":"string"}},"required":["b","a"],"type":"object"}"#
    );
    let reordered = parse(
        r#"{"required":["b","a"],"properties":{"a":{},"b":{"maxLength":2,"type":"string"}},"type":"object"}"#,
    );
    assert_eq!(schema.normalized(), reordered.normalized());
    assert_ne!(schema.canonical(), reordered.canonical());
    // Java orders strings by UTF-16 code units: U+FF61 sorts after U+10000 (a surrogate pair).
    assert_eq!(
        parse("{\"\u{ff61}\":1,\"\u{10000}\":2}").normalized(),
        "{\"\u{10000}\":2,\"\u{ff61}\":1}"
    );
}

#[test]
fn schema_enum_dispatches_to_json() {
    let schema = Schema::parse(SchemaType::Json, r#"{"type":"string"}"#, &[]).unwrap();
    assert_eq!(schema.canonical(), r#"{"type":"string"}"#);
    assert_eq!(schema.normalized(), r#"{"type":"string"}"#);
}

// ----- decode ------------------------------------------------------------------------------------

#[test]
fn decode_reads_json_payloads() {
    let schema = parse("{}");
    let mut framed = vec![0, 0, 0, 0, 7];
    framed.extend_from_slice(br#"{"a":[1,2]}"#);
    assert_eq!(
        schema.decode(&framed).unwrap(),
        serde_json::json!({"a": [1, 2]})
    );
    assert_eq!(schema.decode(b"\"x\"").unwrap(), serde_json::json!("x"));
    assert!(schema
        .decode(&[0, 0, 1])
        .unwrap_err()
        .contains("shorter than its 5-byte header"));
    assert!(schema.decode(b"{nope").unwrap_err().contains("not JSON"));
    assert!(schema.decode(&[0, 0, 0, 0, 1, 0xff, 0xfe]).is_err());
    let deep = "[".repeat(100_000);
    assert!(schema.decode(deep.as_bytes()).is_err());
}

// ----- compatibility: the end-to-end cases ------------------------------------------------------

const CLOSED_V1: &str = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;

#[test]
fn optional_property_added_to_closed_model_is_backward_compatible() {
    let v2 = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;
    assert!(reading(v2, CLOSED_V1).is_empty());
    assert_eq!(
        differences(v2, CLOSED_V1),
        ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/note"]
    );
    // The other way round the closed model has lost a property it wrote.
    assert_eq!(
        error_types(&reading(CLOSED_V1, v2)),
        ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]
    );
}

#[test]
fn required_property_added_is_incompatible() {
    let v2 = r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id","n"],"additionalProperties":false}"#;
    let messages = reading(v2, CLOSED_V1);
    assert_eq!(
        error_types(&messages),
        ["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"]
    );
    assert_eq!(
        messages[0],
        "{errorType:\"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL\", description:\"The new \
         schema has an unopen content model and has a required property at path \
         '#/properties/n' which is missing in the old schema'}"
    );
    // With a default it is compatible.
    let v3 = r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer","default":0}},"required":["id","n"],"additionalProperties":false}"#;
    assert!(reading(v3, CLOSED_V1).is_empty());
}

#[test]
fn property_type_change_is_incompatible() {
    let v2 = r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":false}"#;
    let messages = reading(v2, CLOSED_V1);
    assert_eq!(
        messages,
        ["{errorType:\"TYPE_CHANGED\", description:\"A type at path '#/properties/id' is different \
          between the new schema and the old schema'}"]
    );
}

#[test]
fn required_property_removed_from_closed_model_is_incompatible() {
    let v2 = r#"{"type":"object","properties":{},"additionalProperties":false}"#;
    let messages = reading(v2, CLOSED_V1);
    assert_eq!(
        messages,
        ["{errorType:\"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL\", description:\"The new has a \
          closed content model and is missing a property or item present at path \
          '#/properties/id' in the old schema'}"]
    );
}

#[test]
fn open_content_model_rules() {
    let open_v1 = r#"{"type":"object","properties":{"id":{"type":"string"}}}"#;
    // Adding a property to an open model: old data may hold anything under that name.
    let added = r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"string"}}}"#;
    assert_eq!(
        error_types(&reading(added, open_v1)),
        ["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
    );
    let added_required = r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"string"}},"required":["x"]}"#;
    assert_eq!(
        error_types(&reading(added_required, open_v1)),
        ["REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
    );
    // ...unless its schema accepts anything.
    let added_empty = r#"{"type":"object","properties":{"id":{"type":"string"},"x":{}}}"#;
    assert!(reading(added_empty, open_v1).is_empty());
    // Removing a property from an open model is fine: it is still accepted as additional.
    assert!(reading(r#"{"type":"object","properties":{}}"#, open_v1).is_empty());
    assert_eq!(
        differences(r#"{"type":"object","properties":{}}"#, open_v1),
        ["PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/id"]
    );
}

#[test]
fn partially_open_content_model_rules() {
    let v1 = r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}"#;
    let removed = r#"{"type":"object","properties":{},"additionalProperties":{"type":"string"}}"#;
    assert!(reading(removed, v1).is_empty());
    let removed_not_covered =
        r#"{"type":"object","properties":{},"additionalProperties":{"type":"integer"}}"#;
    let found = error_types(&reading(removed_not_covered, v1));
    assert!(
        found.contains(&"PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL".to_string()),
        "{found:?}"
    );
    let patterned =
        r#"{"type":"object","properties":{},"patternProperties":{"^a":{"type":"string"}}}"#;
    assert_eq!(
        differences(
            patterned,
            r#"{"type":"object","properties":{"ab":{"type":"string"}},"patternProperties":{"^a":{"type":"string"}}}"#
        ),
        ["PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/ab"]
    );
}

#[test]
fn additional_properties_rules() {
    let open = r#"{"type":"object"}"#;
    let closed = r#"{"type":"object","additionalProperties":false}"#;
    assert!(reading(open, closed).is_empty());
    assert_eq!(
        error_types(&reading(closed, open)),
        ["ADDITIONAL_PROPERTIES_REMOVED"]
    );
    let narrowed = r#"{"type":"object","additionalProperties":{"type":"string"}}"#;
    assert_eq!(
        error_types(&reading(narrowed, open)),
        ["ADDITIONAL_PROPERTIES_NARROWED"]
    );
    assert!(reading(open, narrowed).is_empty());
}

#[test]
fn required_attribute_rules() {
    let optional = r#"{"properties":{"a":{"type":"string"}}}"#;
    let required = r#"{"properties":{"a":{"type":"string"}},"required":["a"]}"#;
    assert_eq!(
        error_types(&reading(required, optional)),
        ["REQUIRED_ATTRIBUTE_ADDED"]
    );
    assert!(reading(optional, required).is_empty());
}

// ----- compatibility: keyword by keyword ---------------------------------------------------------

/// (old, new, the difference, whether compatible), each checked both ways where it matters.
const RULES: &[(&str, &str, &str, bool)] = &[
    (
        r#"{"type":"string"}"#,
        r#"{"type":"string","maxLength":5}"#,
        "MAX_LENGTH_ADDED #/maxLength",
        false,
    ),
    (
        r#"{"type":"string","maxLength":5}"#,
        r#"{"type":"string"}"#,
        "MAX_LENGTH_REMOVED #/maxLength",
        true,
    ),
    (
        r#"{"type":"string","maxLength":5}"#,
        r#"{"type":"string","maxLength":6}"#,
        "MAX_LENGTH_INCREASED #/maxLength",
        true,
    ),
    (
        r#"{"type":"string","maxLength":6}"#,
        r#"{"type":"string","maxLength":5}"#,
        "MAX_LENGTH_DECREASED #/maxLength",
        false,
    ),
    (
        r#"{"type":"string","minLength":5}"#,
        r#"{"type":"string","minLength":6}"#,
        "MIN_LENGTH_INCREASED #/minLength",
        false,
    ),
    (
        r#"{"type":"string","minLength":6}"#,
        r#"{"type":"string","minLength":5}"#,
        "MIN_LENGTH_DECREASED #/minLength",
        true,
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"type":"string","pattern":"^a"}"#,
        "PATTERN_ADDED #/pattern",
        false,
    ),
    (
        r#"{"type":"string","pattern":"^a"}"#,
        r#"{"type":"string"}"#,
        "PATTERN_REMOVED #/pattern",
        true,
    ),
    (
        r#"{"type":"string","pattern":"^a"}"#,
        r#"{"type":"string","pattern":"^b"}"#,
        "PATTERN_CHANGED #/pattern",
        false,
    ),
    (
        r#"{"type":"number","maximum":5}"#,
        r#"{"type":"number","maximum":6}"#,
        "MAXIMUM_INCREASED #/maximum",
        true,
    ),
    (
        r#"{"type":"number","maximum":6}"#,
        r#"{"type":"number","maximum":5.5}"#,
        "MAXIMUM_DECREASED #/maximum",
        false,
    ),
    (
        r#"{"type":"number","minimum":5}"#,
        r#"{"type":"number","minimum":4}"#,
        "MINIMUM_DECREASED #/minimum",
        true,
    ),
    (
        r#"{"type":"number"}"#,
        r#"{"type":"number","minimum":4}"#,
        "MINIMUM_ADDED #/minimum",
        false,
    ),
    (
        r#"{"type":"number","exclusiveMaximum":5}"#,
        r#"{"type":"number","exclusiveMaximum":4}"#,
        "EXCLUSIVE_MAXIMUM_DECREASED #/exclusiveMaximum",
        false,
    ),
    (
        r#"{"type":"number","exclusiveMinimum":5}"#,
        r#"{"type":"number"}"#,
        "EXCLUSIVE_MINIMUM_REMOVED #/exclusiveMinimum",
        true,
    ),
    (
        r#"{"type":"number","multipleOf":2}"#,
        r#"{"type":"number","multipleOf":4}"#,
        "MULTIPLE_OF_EXPANDED #/multipleOf",
        false,
    ),
    (
        r#"{"type":"number","multipleOf":0.2}"#,
        r#"{"type":"number","multipleOf":0.1}"#,
        "MULTIPLE_OF_REDUCED #/multipleOf",
        true,
    ),
    (
        r#"{"type":"number","multipleOf":2}"#,
        r#"{"type":"number","multipleOf":3}"#,
        "MULTIPLE_OF_CHANGED #/multipleOf",
        false,
    ),
    (
        r#"{"type":"integer"}"#,
        r#"{"type":"number"}"#,
        "TYPE_EXTENDED #/",
        true,
    ),
    (
        r#"{"type":"number"}"#,
        r#"{"type":"integer"}"#,
        "TYPE_NARROWED #/",
        false,
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"type":"boolean"}"#,
        "TYPE_CHANGED #/",
        false,
    ),
    (r#"{"type":"string"}"#, r#"{}"#, "", true),
    (
        r#"{"type":"object","maxProperties":3}"#,
        r#"{"type":"object","maxProperties":2}"#,
        "MAX_PROPERTIES_DECREASED #/maxProperties",
        false,
    ),
    (
        r#"{"type":"object","minProperties":3}"#,
        r#"{"type":"object"}"#,
        "MIN_PROPERTIES_REMOVED #/minProperties",
        true,
    ),
    (
        r#"{"type":"object","dependencies":{"a":["b"]}}"#,
        r#"{"type":"object","dependencies":{"a":["b","c"]}}"#,
        "DEPENDENCY_ARRAY_EXTENDED #/dependencies/a",
        false,
    ),
    (
        r#"{"type":"object","dependencies":{"a":["b","c"]}}"#,
        r#"{"type":"object","dependencies":{"a":["b"]}}"#,
        "DEPENDENCY_ARRAY_NARROWED #/dependencies/a",
        true,
    ),
    (
        r#"{"type":"object"}"#,
        r#"{"type":"object","dependencies":{"a":{"required":["b"]}}}"#,
        "DEPENDENCY_SCHEMA_ADDED #/dependencies/a",
        false,
    ),
    (
        r#"{"type":"array","maxItems":3}"#,
        r#"{"type":"array","maxItems":4}"#,
        "MAX_ITEMS_INCREASED #/maxItems",
        true,
    ),
    (
        r#"{"type":"array","minItems":3}"#,
        r#"{"type":"array","minItems":4}"#,
        "MIN_ITEMS_INCREASED #/minItems",
        false,
    ),
    (
        r#"{"type":"array"}"#,
        r#"{"type":"array","uniqueItems":true}"#,
        "UNIQUE_ITEMS_ADDED #/uniqueItems",
        false,
    ),
    (
        r#"{"type":"array","uniqueItems":true}"#,
        r#"{"type":"array"}"#,
        "UNIQUE_ITEMS_REMOVED #/uniqueItems",
        true,
    ),
    (
        r#"{"type":"array","items":{"type":"string"}}"#,
        r#"{"type":"array","items":{"type":"integer"}}"#,
        "TYPE_CHANGED #/items",
        false,
    ),
    (
        r#"{"type":"array"}"#,
        r#"{"type":"array","items":{"type":"integer"}}"#,
        "SCHEMA_ADDED #/items",
        false,
    ),
    (
        r#"{"type":"array","items":{"type":"integer"}}"#,
        r#"{"type":"array"}"#,
        "SCHEMA_REMOVED #/items",
        true,
    ),
    (
        r#"{"type":"array","items":[{"type":"string"}],"additionalItems":false}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"string"}],"additionalItems":false}"#,
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL #/items/1",
        true,
    ),
    (
        r#"{"type":"array","items":[{"type":"string"},{"type":"string"}],"additionalItems":false}"#,
        r#"{"type":"array","items":[{"type":"string"}],"additionalItems":false}"#,
        "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL #/items/1",
        false,
    ),
    (
        r#"{"type":"array","items":[{"type":"string"}]}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"string"}]}"#,
        "ITEM_ADDED_TO_OPEN_CONTENT_MODEL #/items/1",
        false,
    ),
    (
        r#"{"type":"array","items":[{"type":"string"},{"type":"string"}]}"#,
        r#"{"type":"array","items":[{"type":"string"}]}"#,
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/1",
        true,
    ),
    (
        r#"{"enum":["a","b"]}"#,
        r#"{"enum":["b","a","c"]}"#,
        "ENUM_ARRAY_EXTENDED #/enum",
        true,
    ),
    (
        r#"{"enum":["a","b"]}"#,
        r#"{"enum":["a"]}"#,
        "ENUM_ARRAY_NARROWED #/enum",
        false,
    ),
    (
        r#"{"enum":["a","b"]}"#,
        r#"{"enum":["a","c"]}"#,
        "ENUM_ARRAY_CHANGED #/enum",
        false,
    ),
    (
        r#"{"const":1}"#,
        r#"{"const":2}"#,
        "ENUM_ARRAY_CHANGED #/const",
        false,
    ),
    (
        r#"{"title":"a"}"#,
        r#"{"title":"b"}"#,
        "TITLE_CHANGED #/",
        true,
    ),
    (
        r#"{"description":"a"}"#,
        r#"{"description":"b"}"#,
        "DESCRIPTION_CHANGED #/",
        true,
    ),
    (r#"{"$id":"a"}"#, r#"{"$id":"b"}"#, "ID_CHANGED #/", true),
    (
        r#"{"type":"string","default":"a"}"#,
        r#"{"type":"string","default":"b"}"#,
        "DEFAULT_CHANGED #/",
        true,
    ),
    (
        r#"{"not":{"type":"string"}}"#,
        r#"{"not":{"type":["string","integer"]}}"#,
        "NOT_TYPE_EXTENDED #/not",
        false,
    ),
    (
        r#"{"type":"string"}"#,
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        "SUM_TYPE_EXTENDED #/",
        true,
    ),
    (
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"type":"string"}"#,
        "TYPE_CHANGED #/",
        false,
    ),
    (
        r#"{"allOf":[{"type":"string"},{"maxLength":3}]}"#,
        r#"{"type":"string"}"#,
        "PRODUCT_TYPE_NARROWED #/",
        true,
    ),
    (
        r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"anyOf":[{"type":"string"},{"type":"integer"},{"type":"null"}]}"#,
        "SUM_TYPE_EXTENDED #/",
        true,
    ),
    (
        r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"anyOf":[{"type":"string"}]}"#,
        "SUM_TYPE_NARROWED #/",
        false,
    ),
    (
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#,
        "COMBINED_TYPE_EXTENDED #/",
        true,
    ),
    (
        r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"allOf":[{"type":"string"},{"type":"integer"}]}"#,
        "COMBINED_TYPE_CHANGED #/",
        false,
    ),
    (
        r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"anyOf":[{"type":"string"},{"type":"boolean"}]}"#,
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED #/",
        false,
    ),
    (
        r#"{"type":"string","connect.type":"bytes"}"#,
        r#"{"type":"number","connect.type":"bytes"}"#,
        "",
        true,
    ),
];

#[test]
fn each_rule_carried_over() {
    for &(old, new, expected, compatible) in RULES {
        let found = differences(new, old);
        if !expected.is_empty() {
            assert!(
                found.iter().any(|f| f == expected),
                "{old} -> {new}: {found:?}"
            );
        }
        assert_eq!(
            reading(new, old).is_empty(),
            compatible,
            "{old} -> {new}: {found:?}"
        );
    }
}

#[test]
fn messages_fill_reader_and_writer() {
    let old = parse(r#"{"type":"string"}"#);
    let new = parse(r#"{"type":"string","maxLength":5}"#);
    assert_eq!(
        new.incompatibilities_reading(&old),
        [
            "{errorType:\"MAX_LENGTH_ADDED\", description:\"The keyword at path '#/maxLength' in \
          the new schema is not present in the old schema'}"
        ]
    );
    let forward = old.incompatibilities_labelled(&new, "old", "new");
    assert!(forward.is_empty());
    // FORWARD has the old schema read the new one's data, and says so.
    let narrowed = parse(r#"{"type":"string","maxLength":4}"#);
    assert_eq!(
        narrowed.incompatibilities_labelled(&new, "old", "new"),
        ["{errorType:\"MAX_LENGTH_DECREASED\", description:\"The value at path '#/maxLength' in \
          the old schema is less than its value in the new schema'}"]
    );
}

// ----- compatibility levels -----------------------------------------------------------------------

fn json(text: &str) -> Schema {
    Schema::parse(SchemaType::Json, text, &[]).unwrap()
}

#[test]
fn levels_apply_the_rules_in_the_right_direction() {
    let v1 = json(CLOSED_V1);
    let v2 = json(
        r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"required":["id"],"additionalProperties":false}"#,
    );
    // New optional property in a closed model: readers of v2 read v1 data...
    assert!(check(Compatibility::Backward, &v2, &[(1, &v1)]).is_empty());
    // ...but v1 readers, closed, cannot read v2 data carrying `note`.
    let forward = check(Compatibility::Forward, &v2, &[(1, &v1)]);
    assert_eq!(forward.len(), 1, "{forward:?}");
    assert!(
        forward[0].contains("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
        "{forward:?}"
    );
    assert!(
        forward[0].ends_with("(version 1 reading data of the new schema)"),
        "{forward:?}"
    );
    assert_eq!(check(Compatibility::Full, &v2, &[(1, &v1)]).len(), 1);
    assert!(check(Compatibility::None, &v2, &[(1, &v1)]).is_empty());
}

#[test]
fn transitive_levels_check_every_version() {
    let v1 = json(
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
    );
    let v2 = json(r#"{"type":"object","properties":{},"additionalProperties":false}"#);
    let v3 = json(
        r#"{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}"#,
    );
    // v3 reads v2 data (no `a` in it), not v1's (a string `a`).
    assert!(check(Compatibility::Backward, &v3, &[(1, &v1), (2, &v2)]).is_empty());
    let transitive = check(
        Compatibility::BackwardTransitive,
        &v3,
        &[(1, &v1), (2, &v2)],
    );
    assert_eq!(transitive.len(), 1, "{transitive:?}");
    assert!(transitive[0].contains("TYPE_CHANGED") && transitive[0].contains("version 1"));
}

#[test]
fn json_never_reads_other_formats() {
    let avro = Schema::parse(SchemaType::Avro, r#""string""#, &[]);
    if let Ok(avro) = avro {
        assert_eq!(json("{}").incompatibilities_reading(&avro).len(), 1);
    }
}

// ----- hostile input ----------------------------------------------------------------------------

#[test]
fn hundred_thousand_levels_of_nesting_are_refused() {
    for text in [
        "[".repeat(100_000),
        "{\"a\":".repeat(100_000),
        format!("{{\"not\":{}", "{\"not\":".repeat(100_000)),
    ] {
        let error = refused(&text);
        assert!(error.contains("Invalid JSON schema"), "{error}");
    }
}

#[test]
fn nesting_at_the_limit_loads_and_compares() {
    // As deep as the parser allows (serde_json stops at 128 open brackets, the innermost
    // `{}` being one), every level a schema of its own.
    let depth = NESTING_MAX - 2;
    let text = format!("{}{{}}{}", "{\"not\":".repeat(depth), "}".repeat(depth));
    let schema = parse(&text);
    assert!(schema.incompatibilities_reading(&schema).is_empty());
    let items = format!("{}{{}}{}", "{\"items\":".repeat(depth), "}".repeat(depth));
    let schema = parse(&items);
    assert!(schema.incompatibilities_reading(&schema).is_empty());
    let too_deep = format!(
        "{}{{}}{}",
        "{\"not\":".repeat(NESTING_MAX + 1),
        "}".repeat(NESTING_MAX + 1)
    );
    assert!(refused(&too_deep).contains("Invalid JSON schema"));
}

#[test]
fn a_ten_mebibyte_schema_is_handled() {
    // Schema::parse refuses it by size before parsing...
    let mut properties = Vec::new();
    let mut size = 0;
    let mut index = 0;
    while size < 10 * 1024 * 1024 {
        let property = format!("\"p{index}\":{{\"type\":\"string\",\"maxLength\":{index}}}");
        size += property.len() + 1;
        properties.push(property);
        index += 1;
    }
    let text = format!(
        "{{\"type\":\"object\",\"properties\":{{{}}}}}",
        properties.join(",")
    );
    let error = Schema::parse(SchemaType::Json, &text, &[]).unwrap_err();
    assert!(error.0.contains("more than"), "{error}");
    // ...and JsonSchema itself still parses it, and compares it in bounded time and memory
    // (its ~200,000 properties are past the comparison budget: one message says so).
    let schema = parse(&text);
    let found = schema.incompatibilities_reading(&schema);
    assert!(found.len() <= 1, "{found:?}");
}

#[test]
fn lone_surrogate_escapes_are_refused() {
    let error = refused(r#"{"title":"\ud800"}"#);
    assert!(error.contains("not valid JSON"), "{error}");
    let error = refused(r#"{"properties":{"\udc00x":{}}}"#);
    assert!(error.contains("not valid JSON"), "{error}");
}

#[test]
fn long_ref_chains_give_up_instead_of_overflowing() {
    // Ten thousand definitions each holding the next: shallow JSON, deep comparison.
    let count = 10_000;
    let mut definitions = Vec::new();
    for index in 0..count {
        definitions.push(format!(
            "\"d{index}\":{{\"type\":\"object\",\"properties\":{{\"next\":{{\"$ref\":\"#/definitions/d{}\"}}}}}}",
            (index + 1) % count
        ));
    }
    let text = format!(
        "{{\"definitions\":{{{}}},\"$ref\":\"#/definitions/d0\"}}",
        definitions.join(",")
    );
    let schema = parse(&text);
    let found = schema.incompatibilities_reading(&schema);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("too large or too deeply nested to compare"),
        "{found:?}"
    );
}

#[test]
fn wide_any_of_stays_within_the_comparison_budget() {
    let branches: Vec<String> = (0..2_000)
        .map(|i| format!("{{\"type\":\"string\",\"maxLength\":{i}}}"))
        .collect();
    let text = format!("{{\"anyOf\":[{}]}}", branches.join(","));
    let schema = parse(&text);
    // 2,000 x 2,000 pairs is past the budget: an answer, not hours of work.
    let found = schema.incompatibilities_reading(&schema);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn recursive_union_compares_in_finite_time() {
    let schema = r##"{"definitions":{"node":{"oneOf":[{"type":"null"},{"type":"object","properties":{"left":{"$ref":"#/definitions/node"},"right":{"$ref":"#/definitions/node"}}}]}},"$ref":"#/definitions/node"}"##;
    assert!(reading(schema, schema).is_empty());
    let changed = schema.replace("\"type\":\"null\"", "\"type\":\"string\"");
    assert!(!reading(&changed, schema).is_empty());
}
