"""Conformance of Strom's schema registry to Confluent Schema Registry's REST API, as a table.

Each row is one request (method, path, query, body) and what Confluent's API reference and its
usage examples say the answer is: the exact HTTP status, and the named JSON fields (exact values
where the documentation gives them; ids by relation: "the id row N got", "an id other than
row N's"). The rows run in order against one fresh broker, so later rows see what earlier rows
did, like the documented walkthrough: register, look up, read by id and by version, check
compatibility, configs, modes, IMPORT with explicit ids, references, soft and permanent deletes,
and every documented error code on the way (40401-40409, 409, 42201-42206).

Every row is a test of its own (named by its number and request); a row whose answer depends on
a failed one says so. Errors must have Confluent's body shape, {"error_code": N, "message": "..."}.
Facts were written from the documentation and Confluent's resources, not copied.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from google.protobuf import descriptor_pb2

from registry_helpers import CONTENT_TYPE, INCOMPATIBLE_CODES, Registry, compact, proto_text, wait_for_registry

# -- matchers -----------------------------------------------------------------------------


class Matcher:
    def check(self, actual: Any, state: dict) -> str | None:
        """None when `actual` matches, else why not."""
        raise NotImplementedError


@dataclass
class Same(Matcher):
    """Equal to the value an earlier row captured."""

    name: str

    def check(self, actual, state):
        if self.name not in state:
            return f"depends on {self.name!r}, which an earlier (failed) row did not capture"
        return None if actual == state[self.name] else f"{actual!r} != {self.name} ({state[self.name]!r})"


@dataclass
class Other(Matcher):
    """An int other than the values earlier rows captured under these names."""

    names: tuple

    def __init__(self, *names):
        self.names = names

    def check(self, actual, state):
        if not isinstance(actual, int) or isinstance(actual, bool):
            return f"{actual!r} is not an int"
        clashes = [n for n in self.names if state.get(n) == actual]
        return f"{actual} equals {clashes}" if clashes else None


@dataclass
class OneOf(Matcher):
    values: tuple

    def __init__(self, *values):
        self.values = values

    def check(self, actual, state):
        return None if actual in self.values else f"{actual!r} not one of {self.values}"


@dataclass
class Unordered(Matcher):
    """The same items in any order (listings whose order Confluent does not document)."""

    items: list

    def check(self, actual, state):
        if not isinstance(actual, list):
            return f"{actual!r} is not a list"
        key = lambda x: json.dumps(x, sort_keys=True)  # noqa: E731
        return None if sorted(map(key, actual)) == sorted(map(key, self.items)) else f"{actual!r} != {self.items!r} (any order)"


@dataclass
class Has(Matcher):
    """A list that contains these items and none of `absent`."""

    present: list = field(default_factory=list)
    absent: list = field(default_factory=list)

    def check(self, actual, state):
        if not isinstance(actual, list):
            return f"{actual!r} is not a list"
        missing = [x for x in self.present if x not in actual]
        extra = [x for x in self.absent if x in actual]
        if missing or extra:
            return f"{actual!r}: missing {missing}, should not have {extra}"
        return None


@dataclass
class JsonText(Matcher):
    """A string holding JSON equal to `value` (a schema text compared as JSON)."""

    value: Any

    def check(self, actual, state):
        try:
            parsed = json.loads(actual)
        except (TypeError, ValueError):
            return f"{actual!r} is not JSON text"
        return None if parsed == self.value else f"{parsed!r} != {self.value!r}"


@dataclass
class Pred(Matcher):
    what: str
    fn: Callable[[Any, dict], bool]

    def check(self, actual, state):
        try:
            ok = self.fn(actual, state)
        except Exception as error:  # noqa: BLE001 - reported as the mismatch
            return f"{self.what}: {error!r} on {actual!r}"
        return None if ok else f"{actual!r} is not {self.what}"


def match(expected: Any, actual: Any, state: dict, where: str) -> list[str]:
    if isinstance(expected, Matcher):
        why = expected.check(actual, state)
        return [f"{where}: {why}"] if why else []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing in {actual!r}")
            else:
                problems += match(value, actual[key], state, f"{where}.{key}")
        return problems
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


# -- schemas --------------------------------------------------------------------------------

PAYMENT = {
    "type": "record",
    "name": "Payment",
    "namespace": "conf",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}],
}
PAYMENT_V2 = {**PAYMENT, "fields": PAYMENT["fields"] + [{"name": "currency", "type": "string", "default": "EUR"}]}
PAYMENT_BAD = {**PAYMENT, "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "string"}]}
UNRELATED = {"type": "record", "name": "Unrelated", "namespace": "conf", "fields": [{"name": "x", "type": "int"}]}
ADDRESS = {"type": "record", "name": "Address", "namespace": "conf", "fields": [{"name": "street", "type": "string"}]}
PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "conf",
    "fields": [{"name": "name", "type": "string"}, {"name": "home", "type": "conf.Address"}],
}
JSON_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}
JSON_ADDED = {**JSON_SCHEMA, "properties": {**JSON_SCHEMA["properties"], "m": {"type": "string"}}}
JSON_RETYPED = {**JSON_SCHEMA, "properties": {"n": {"type": "string"}}}
JSON_OPEN = {"type": "object", "properties": {"n": {"type": "integer"}}}
JSON_OPEN_ADDED = {"type": "object", "properties": {"n": {"type": "integer"}, "m": {"type": "string"}}}
PROTO = proto_text("conf", "User", [("name", 1, "string"), ("age", 2, "int32")])
PROTO_ADDED = proto_text("conf", "User", [("name", 1, "string"), ("age", 2, "int32"), ("email", 3, "string")])
PROTO_RETYPED = proto_text("conf", "User", [("name", 1, "int32"), ("age", 2, "int32")])

METADATA = {"properties": {"owner": "e2e", "tier": "gold"}}
WITH_METADATA = {"type": "record", "name": "Meta", "namespace": "conf", "fields": [{"name": "m", "type": "int"}]}


def schema_of(schema: dict, **extra) -> dict:
    return {"schema": compact(schema), **extra}


def serialized_descriptor_with(message: str):
    def check(actual, _state):
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(base64.b64decode(actual["schema"], validate=True))
        return [m.name for m in proto.message_type] == [message]

    return Pred(f"a base64 FileDescriptorProto with message {message}", check)


ERROR = "error"  # marker: expect[ERROR] = code(s)


@dataclass
class Row:
    name: str
    method: str
    path: str
    status: int
    expect: Any = None  # dict of fields, a whole body, or {ERROR: code}
    body: Any = None
    params: dict | None = None
    capture: dict = field(default_factory=dict)  # state name -> body field ("." = whole body)
    content_type: str = CONTENT_TYPE


def err(code) -> dict:
    return {ERROR: code}


ROWS: list[Row] = [
    # The root, the types, an empty registry.
    Row("root answers an empty object", "GET", "/", 200, {}),
    Row("schema types", "GET", "/schemas/types", 200, ["JSON", "PROTOBUF", "AVRO"]),
    Row("no subjects yet", "GET", "/subjects", 200, []),
    Row("no schemas yet", "GET", "/schemas", 200, []),
    Row("the default context", "GET", "/contexts", 200, ["."]),
    Row("global compatibility is BACKWARD", "GET", "/config", 200, {"compatibilityLevel": "BACKWARD"}),
    Row("global mode is READWRITE", "GET", "/mode", 200, {"mode": "READWRITE"}),
    Row("unknown schema id", "GET", "/schemas/ids/424242", 404, err(40403)),
    Row("unknown subject's versions", "GET", "/subjects/orders-value/versions", 404, err(40401)),
    # Registration and reads.
    Row("register the first schema", "POST", "/subjects/orders-value/versions", 200, {"id": Pred("an int", lambda v, s: isinstance(v, int))},
        body=schema_of(PAYMENT), capture={"id1": "id"}),
    Row("registering it again answers the same id", "POST", "/subjects/orders-value/versions", 200, {"id": Same("id1")},
        body=schema_of(PAYMENT)),
    Row("the same text under another subject gets the same id", "POST", "/subjects/payments-copy/versions", 200,
        {"id": Same("id1")}, body=schema_of(PAYMENT)),
    Row("?normalize=true finds the same schema", "POST", "/subjects/orders-value/versions", 200, {"id": Same("id1")},
        body=schema_of(PAYMENT), params={"normalize": "true"}),
    Row("?normalize=False (Java-style boolean) is accepted", "POST", "/subjects/orders-value/versions", 200,
        {"id": Same("id1")}, body=schema_of(PAYMENT), params={"normalize": "False"}),
    Row("a request body as application/json is accepted", "POST", "/subjects/orders-value/versions", 200,
        {"id": Same("id1")}, body=schema_of(PAYMENT), content_type="application/json"),
    Row("both subjects listed", "GET", "/subjects", 200, Unordered(["orders-value", "payments-copy"])),
    Row("one version", "GET", "/subjects/orders-value/versions", 200, [1]),
    Row("version 1", "GET", "/subjects/orders-value/versions/1", 200,
        {"subject": "orders-value", "version": 1, "id": Same("id1"), "schema": JsonText(PAYMENT)}),
    Row("version latest", "GET", "/subjects/orders-value/versions/latest", 200, {"version": 1, "id": Same("id1")}),
    Row("version -1 is latest", "GET", "/subjects/orders-value/versions/-1", 200, {"version": 1, "id": Same("id1")}),
    Row("a version's bare schema", "GET", "/subjects/orders-value/versions/1/schema", 200, PAYMENT),
    Row("schema by id", "GET", "/schemas/ids/{id1}", 200, {"schema": JsonText(PAYMENT)}),
    Row("schema by id with ?subject=", "GET", "/schemas/ids/{id1}", 200, {"schema": JsonText(PAYMENT)},
        params={"subject": "orders-value"}),
    Row("bare schema by id", "GET", "/schemas/ids/{id1}/schema", 200, PAYMENT),
    Row("subjects of an id", "GET", "/schemas/ids/{id1}/subjects", 200, Unordered(["orders-value", "payments-copy"])),
    Row("subject-versions of an id", "GET", "/schemas/ids/{id1}/versions", 200,
        Unordered([{"subject": "orders-value", "version": 1}, {"subject": "payments-copy", "version": 1}])),
    Row("all schemas", "GET", "/schemas", 200,
        Pred("a list with orders-value v1", lambda v, s: any(
            x.get("subject") == "orders-value" and x.get("version") == 1 and x.get("id") == s["id1"] for x in v))),
    Row("unknown version", "GET", "/subjects/orders-value/versions/7", 404, err(40402)),
    Row("a version that is not a number", "GET", "/subjects/orders-value/versions/abc", 422, err(42202)),
    Row("version 0 is invalid", "GET", "/subjects/orders-value/versions/0", 422, err(42202)),
    Row("an invalid Avro schema", "POST", "/subjects/orders-value/versions", 422, err(42201),
        body={"schema": '{"type": "record", "name": '}),
    Row("an unknown schemaType", "POST", "/subjects/orders-value/versions", 422, err(42201),
        body={"schema": compact(PAYMENT), "schemaType": "XML"}),
    Row("metadata and a rule set are accepted with a schema", "POST", "/subjects/meta-value/versions", 200,
        {"id": Other("id1")}, body=schema_of(WITH_METADATA, metadata=METADATA, ruleSet={"domainRules": []})),
    Row("the metadata is kept", "GET", "/subjects/meta-value/versions/1", 200, {"metadata": METADATA}),
    # Lookup.
    Row("lookup finds a registered schema", "POST", "/subjects/orders-value", 200,
        {"subject": "orders-value", "version": 1, "id": Same("id1"), "schema": JsonText(PAYMENT)}, body=schema_of(PAYMENT)),
    Row("lookup with ?normalize=true", "POST", "/subjects/orders-value", 200, {"version": 1, "id": Same("id1")},
        body=schema_of(PAYMENT), params={"normalize": "true"}),
    Row("lookup of an unregistered schema", "POST", "/subjects/orders-value", 404, err(40403), body=schema_of(UNRELATED)),
    Row("lookup in an unknown subject", "POST", "/subjects/no-such-subject", 404, err(40401), body=schema_of(PAYMENT)),
    # Compatibility.
    Row("a field with a default is compatible with latest", "POST", "/compatibility/subjects/orders-value/versions/latest",
        200, {"is_compatible": True}, body=schema_of(PAYMENT_V2)),
    Row("a changed type is not", "POST", "/compatibility/subjects/orders-value/versions/latest", 200,
        {"is_compatible": False}, body=schema_of(PAYMENT_BAD)),
    Row("?verbose=true says why", "POST", "/compatibility/subjects/orders-value/versions/latest", 200,
        {"is_compatible": False, "messages": Pred("a non-empty list of strings", lambda v, s: v and all(isinstance(m, str) for m in v))},
        body=schema_of(PAYMENT_BAD), params={"verbose": "true"}),
    Row("compatible with all versions", "POST", "/compatibility/subjects/orders-value/versions", 200,
        {"is_compatible": True}, body=schema_of(PAYMENT_V2)),
    Row("compatibility with version 1 by number", "POST", "/compatibility/subjects/orders-value/versions/1", 200,
        {"is_compatible": True}, body=schema_of(PAYMENT_V2)),
    Row("compatibility with an unknown version", "POST", "/compatibility/subjects/orders-value/versions/9", 404,
        err(40402), body=schema_of(PAYMENT_V2)),
    Row("compatibility against latest of an unknown subject is vacuous", "POST",
        "/compatibility/subjects/no-such-subject/versions/latest", 200, {"is_compatible": True}, body=schema_of(PAYMENT)),
    Row("registering an incompatible schema is refused with 409", "POST", "/subjects/orders-value/versions", 409,
        err(INCOMPATIBLE_CODES), body=schema_of(PAYMENT_BAD)),
    Row("a compatible evolution registers as version 2", "POST", "/subjects/orders-value/versions", 200,
        {"id": Other("id1")}, body=schema_of(PAYMENT_V2), capture={"id2": "id"}),
    Row("two versions", "GET", "/subjects/orders-value/versions", 200, [1, 2]),
    Row("latest is version 2", "GET", "/subjects/orders-value/versions/latest", 200, {"version": 2, "id": Same("id2")}),
    Row("an explicit version that is the next one is taken", "POST", "/subjects/versioned/versions", 200,
        {"id": Same("id1")}, body=schema_of(PAYMENT, version=1)),
    Row("an explicit version that skips ahead is refused outside IMPORT", "POST", "/subjects/versioned/versions", 422,
        err(42201), body=schema_of(PAYMENT_V2, version=5)),
    Row("the explicit version is the one stored", "GET", "/subjects/versioned/versions", 200, [1]),
    # Configs.
    Row("set the global level", "PUT", "/config", 200, {"compatibility": "FULL"}, body={"compatibility": "FULL"}),
    Row("read the global level", "GET", "/config", 200, {"compatibilityLevel": "FULL"}),
    Row("an unknown level", "PUT", "/config", 422, err(42203), body={"compatibility": "SIDEWAYS"}),
    Row("a subject without its own level", "GET", "/config/orders-value", 404, err(40408)),
    Row("?defaultToGlobal=true falls back to the global level", "GET", "/config/orders-value", 200,
        {"compatibilityLevel": "FULL"}, params={"defaultToGlobal": "true"}),
    Row("set a subject's level", "PUT", "/config/orders-value", 200, {"compatibility": "NONE"}, body={"compatibility": "NONE"}),
    Row("an unknown level for a subject", "PUT", "/config/orders-value", 422, err(42203), body={"compatibility": "MOSTLY"}),
    Row("read a subject's level", "GET", "/config/orders-value", 200, {"compatibilityLevel": "NONE"}),
    Row("NONE accepts the incompatible schema", "POST", "/subjects/orders-value/versions", 200, {"id": Other("id1", "id2")},
        body=schema_of(PAYMENT_BAD), capture={"id3": "id"}),
    Row("delete a subject's level answers what it was", "DELETE", "/config/orders-value", 200, {"compatibilityLevel": "NONE"}),
    Row("the subject's level is gone", "GET", "/config/orders-value", 404, err(40408)),
    Row("deleting a level that is not set", "DELETE", "/config/orders-value", 404, err(40401)),
    Row("delete the global level answers what it was", "DELETE", "/config", 200, {"compatibilityLevel": "FULL"}),
    Row("the global level is BACKWARD again", "GET", "/config", 200, {"compatibilityLevel": "BACKWARD"}),
    # Modes.
    Row("an unknown mode", "PUT", "/mode", 422, err(42204), body={"mode": "SIDEWAYS"}),
    Row("a subject without its own mode", "GET", "/mode/orders-value", 404, err(40409)),
    Row("?defaultToGlobal=true falls back to the global mode", "GET", "/mode/orders-value", 200, {"mode": "READWRITE"},
        params={"defaultToGlobal": "true"}),
    Row("make a subject read-only", "PUT", "/mode/orders-value", 200, {"mode": "READONLY"}, body={"mode": "READONLY"}),
    Row("read the subject's mode", "GET", "/mode/orders-value", 200, {"mode": "READONLY"}),
    Row("a read-only subject refuses registration", "POST", "/subjects/orders-value/versions", 422, err(42205),
        body=schema_of(UNRELATED)),
    Row("a read-only subject still serves reads", "GET", "/subjects/orders-value/versions", 200, [1, 2, 3]),
    Row("delete the subject's mode answers what it was", "DELETE", "/mode/orders-value", 200, {"mode": "READONLY"}),
    Row("the subject's mode is gone", "GET", "/mode/orders-value", 404, err(40409)),
    Row("an explicit id outside IMPORT mode", "POST", "/subjects/imported/versions", 422, err(42205),
        body=schema_of(UNRELATED, id=100000, version=1)),
    Row("IMPORT while subjects exist needs force", "PUT", "/mode", 422, err(42205), body={"mode": "IMPORT"}),
    Row("IMPORT with ?force=true", "PUT", "/mode", 200, {"mode": "IMPORT"}, body={"mode": "IMPORT"}, params={"force": "true"}),
    Row("import with an explicit id and version", "POST", "/subjects/imported/versions", 200, {"id": 100000},
        body=schema_of(UNRELATED, id=100000, version=5)),
    Row("IMPORT refuses registration without an id", "POST", "/subjects/imported2/versions", 422, err(42205),
        body=schema_of(ADDRESS)),
    Row("back to READWRITE", "PUT", "/mode", 200, {"mode": "READWRITE"}, body={"mode": "READWRITE"}),
    Row("the imported id resolves", "GET", "/schemas/ids/100000", 200, {"schema": JsonText(UNRELATED)}),
    Row("the imported version is the one given", "GET", "/subjects/imported/versions", 200, [5]),
    # Other formats.
    Row("register a JSON schema", "POST", "/subjects/json-value/versions", 200, {"id": Other("id1", "id2", "id3")},
        body=schema_of(JSON_SCHEMA, schemaType="JSON"), capture={"json_id": "id"}),
    Row("a JSON schema's type is JSON", "GET", "/subjects/json-value/versions/1", 200,
        {"schemaType": "JSON", "id": Same("json_id"), "schema": JsonText(JSON_SCHEMA)}),
    Row("register an open-model JSON schema", "POST", "/subjects/json-open/versions", 200, {"id": Other("json_id")},
        body=schema_of(JSON_OPEN, schemaType="JSON")),
    Row("register a Protobuf schema", "POST", "/subjects/proto-value/versions", 200, {"id": Other("id1", "id2", "json_id")},
        body={"schema": PROTO, "schemaType": "PROTOBUF"}, capture={"proto_id": "id"}),
    Row("a Protobuf schema's type is PROTOBUF", "GET", "/schemas/ids/{proto_id}", 200,
        {"schemaType": "PROTOBUF", "schema": Pred("proto text with message User", lambda v, s: "message User" in v)}),
    Row("?format=serialized answers a FileDescriptorProto", "GET", "/schemas/ids/{proto_id}", 200,
        serialized_descriptor_with("User"), params={"format": "serialized"}),
    Row("Protobuf: a new field is compatible", "POST", "/compatibility/subjects/proto-value/versions/latest", 200,
        {"is_compatible": True}, body={"schema": PROTO_ADDED, "schemaType": "PROTOBUF"}),
    Row("Protobuf: string -> int32 is not", "POST", "/compatibility/subjects/proto-value/versions/latest", 200,
        {"is_compatible": False}, body={"schema": PROTO_RETYPED, "schemaType": "PROTOBUF"}),
    Row("JSON: an optional property added to a closed model is compatible", "POST",
        "/compatibility/subjects/json-value/versions/latest", 200, {"is_compatible": True},
        body=schema_of(JSON_ADDED, schemaType="JSON")),
    Row("JSON: a property's type changed is not", "POST", "/compatibility/subjects/json-value/versions/latest", 200,
        {"is_compatible": False}, body=schema_of(JSON_RETYPED, schemaType="JSON")),
    Row("JSON: a property added to an open model is not", "POST", "/compatibility/subjects/json-open/versions/latest",
        200, {"is_compatible": False}, body=schema_of(JSON_OPEN_ADDED, schemaType="JSON")),
    Row("an invalid Protobuf schema", "POST", "/subjects/proto-value/versions", 422, err(42201),
        body={"schema": "message {", "schemaType": "PROTOBUF"}),
    Row("an invalid JSON schema", "POST", "/subjects/json-value/versions", 422, err(42201),
        body={"schema": '{"type": 12}', "schemaType": "JSON"}),
    # References.
    Row("register a referenced type", "POST", "/subjects/ref-address/versions", 200, {"id": Pred("an int", lambda v, s: isinstance(v, int))},
        body=schema_of(ADDRESS), capture={"address_id": "id"}),
    Row("register a schema using it by reference", "POST", "/subjects/ref-person/versions", 200,
        {"id": Other("address_id")},
        body=schema_of(PERSON, references=[{"name": "conf.Address", "subject": "ref-address", "version": 1}]),
        capture={"person_id": "id"}),
    Row("the referring version lists its references", "GET", "/subjects/ref-person/versions/1", 200,
        {"references": [{"name": "conf.Address", "subject": "ref-address", "version": 1}]}),
    Row("the referenced version is referenced by it", "GET", "/subjects/ref-address/versions/1/referencedby", 200,
        Pred("[person id]", lambda v, s: v == [s["person_id"]])),
    Row("a referenced version cannot be deleted", "DELETE", "/subjects/ref-address/versions/1", 422, err(42206)),
    Row("a reference to a missing subject", "POST", "/subjects/ref-broken/versions", 422, err(42201),
        body=schema_of(PERSON, references=[{"name": "conf.Address", "subject": "no-such-subject", "version": 1}])),
    Row("?subjectPrefix= filters subjects", "GET", "/subjects", 200, Unordered(["ref-address", "ref-person"]),
        params={"subjectPrefix": "ref-"}),
    # Deletes of versions.
    Row("permanent delete needs a soft delete first", "DELETE", "/subjects/orders-value/versions/1", 404, err(40407),
        params={"permanent": "true"}),
    Row("soft delete a version answers its number", "DELETE", "/subjects/orders-value/versions/1", 200, 1),
    Row("the deleted version is not listed", "GET", "/subjects/orders-value/versions", 200, [2, 3]),
    Row("?deleted=true lists it", "GET", "/subjects/orders-value/versions", 200, [1, 2, 3], params={"deleted": "true"}),
    Row("a soft-deleted version is not found", "GET", "/subjects/orders-value/versions/1", 404, err(40402)),
    Row("?deleted=true reads it", "GET", "/subjects/orders-value/versions/1", 200, {"version": 1, "id": Same("id1")},
        params={"deleted": "true"}),
    Row("lookup ignores soft-deleted versions", "POST", "/subjects/orders-value", 404, err(40403),
        body=schema_of(PAYMENT)),
    Row("lookup with ?deleted=true finds them", "POST", "/subjects/orders-value", 200, {"version": 1, "id": Same("id1")},
        body=schema_of(PAYMENT), params={"deleted": "true"}),
    Row("a soft-deleted version's id still resolves", "GET", "/schemas/ids/{id1}", 200, {"schema": JsonText(PAYMENT)}),
    Row("soft deleting it again", "DELETE", "/subjects/orders-value/versions/1", 404, err(40406)),
    Row("permanent delete after the soft one", "DELETE", "/subjects/orders-value/versions/1", 200, 1,
        params={"permanent": "true"}),
    Row("gone even with ?deleted=true", "GET", "/subjects/orders-value/versions", 200, [2, 3], params={"deleted": "true"}),
    Row("deleting a version of an unknown subject", "DELETE", "/subjects/no-such-subject/versions/1", 404, err(40401)),
    Row("deleting an invalid version", "DELETE", "/subjects/orders-value/versions/zero", 422, err(42202)),
    # Deletes of subjects.
    Row("permanent subject delete needs a soft delete first", "DELETE", "/subjects/payments-copy", 404, err(40405),
        params={"permanent": "true"}),
    Row("soft delete a subject answers its versions", "DELETE", "/subjects/payments-copy", 200, [1]),
    Row("the subject is not listed", "GET", "/subjects", 200, Has(["orders-value"], ["payments-copy"])),
    Row("?deleted=true lists the subject", "GET", "/subjects", 200, Has(["orders-value", "payments-copy"]),
        params={"deleted": "true"}),
    Row("a soft-deleted subject's versions are not found", "GET", "/subjects/payments-copy/versions", 404, err(40401)),
    Row("soft deleting the subject again", "DELETE", "/subjects/payments-copy", 404, err(40404)),
    Row("permanent delete of the subject", "DELETE", "/subjects/payments-copy", 200, [1], params={"permanent": "true"}),
    Row("gone from ?deleted=true too", "GET", "/subjects", 200, Has(["orders-value"], ["payments-copy"]),
        params={"deleted": "true"}),
    Row("a live version's id resolves after the deletes", "GET", "/schemas/ids/{id2}", 200, {"schema": JsonText(PAYMENT_V2)}),
    Row("deleting an unknown subject", "DELETE", "/subjects/no-such-subject", 404, err(40401)),
    # Associations: none exist.
    Row("no associations for a topic", "GET", "/associations/resources/-/orders", 404, None),
]


def row_id(row: Row) -> str:
    return f"{ROWS.index(row) + 1:03d}-{row.method} {row.path} {row.name}"


@pytest.fixture(scope="module")
def conformance(start_module_broker):
    """One fresh broker for the whole table, and the values rows capture (ids)."""
    broker = start_module_broker(name="conformance")
    wait_for_registry(broker.registry_url)
    return Registry(broker.registry_url), {}


def test_the_table_has_at_least_forty_rows_covering_every_endpoint():
    assert len(ROWS) >= 40
    covered = {(r.method, r.path.split("/")[1]) for r in ROWS}
    for needed in [("GET", ""), ("GET", "schemas"), ("GET", "subjects"), ("POST", "subjects"), ("DELETE", "subjects"),
                   ("POST", "compatibility"), ("GET", "config"), ("PUT", "config"), ("DELETE", "config"),
                   ("GET", "mode"), ("PUT", "mode"), ("DELETE", "mode"), ("GET", "contexts"), ("GET", "associations")]:
        assert needed in covered, f"no row for {needed}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_conformance_row(conformance, row: Row):
    registry, state = conformance
    try:
        path = row.path.format(**state)
    except KeyError as missing:
        pytest.fail(f"depends on {missing}, which an earlier (failed) row did not capture")
    reply = registry.request(row.method, path, row.body, content_type=row.content_type, params=row.params)
    where = f"{row.method} {path}{'?' + str(row.params) if row.params else ''}"
    assert reply.status == row.status, f"{where}: expected HTTP {row.status}, got {reply.describe()}"
    if 200 <= reply.status < 300:
        content_type = reply.headers.get("content-type", "")
        assert content_type.startswith(CONTENT_TYPE) or content_type.startswith("application/json"), (
            f"{where}: content type {content_type!r}"
        )
    problems: list[str] = []
    if isinstance(row.expect, dict) and ERROR in row.expect:
        codes = row.expect[ERROR]
        codes = codes if isinstance(codes, tuple) else (codes,)
        if not isinstance(reply.body, dict):
            problems.append(f"error body is not an object: {reply.text[:300]!r}")
        else:
            if reply.body.get("error_code") not in codes:
                problems.append(f"error_code {reply.body.get('error_code')!r}, expected one of {codes}")
            if not isinstance(reply.body.get("message"), str):
                problems.append(f"no message: {reply.body!r}")
    elif row.expect is not None:
        problems += match(row.expect, reply.body, state, "body")
    elif reply.status >= 400:
        if not (isinstance(reply.body, dict) and "error_code" in reply.body):
            problems.append(f"error body is not Confluent's: {reply.text[:300]!r}")
    assert not problems, f"{where} ({row.name}):\n  " + "\n  ".join(problems) + f"\nwhole reply: {reply.describe()}"
    for name, key in row.capture.items():
        state[name] = reply.body if key == "." else reply.body[key]
