"""The schema registry (Confluent Schema Registry's REST API) of one `strom server`, end to end.

* confluent-kafka's own serializers against Strom's registry and Strom's Kafka listener: Avro,
  JSON Schema and Protobuf records produced through Strom read back as equal objects; the
  serializer auto-registered its schema under `<topic>-value` and framed each record with that
  id. Under the default BACKWARD level each format accepts its compatible evolution (Avro: a
  field with a default, read back with the default filled in; JSON: an optional property of a
  closed content model; Protobuf: a new field) and the serializer's registration of an
  incompatible one is refused with HTTP 409 (Avro: a field without default, a changed type;
  JSON: a changed property type; Protobuf: string -> int32).
* References: an Avro type registered under its own subject and used by another subject's schema
  round-trips through the client; the referenced version reports who refers to it and cannot be
  deleted while it is referenced (42206).
* Deletes: soft and permanent deletes of versions and subjects with Confluent's 404 codes
  (40401, 40402, 40404-40407) and the `?deleted=true` listings; version numbers continue after
  deleted ones and a re-registered text keeps its id.
* Modes: READONLY refuses registration with 42205 and still serves reads; IMPORT registers with
  explicit ids and versions (and refuses registration without an id, or with an id another
  text holds); an explicit id outside IMPORT is refused with 42205; IMPORT with subjects present
  needs ?force=true.
* Configs: a subject's NONE overrides the global FULL for that subject only.
* A `_schemas` topic in Confluent's own key/value layout, written before the registry's first
  request (a NOOP, schemas, a config, a version's soft delete, a subject's DELETE_SUBJECT), is
  what the registry serves; new ids never collide with the copied ones.
* What Strom writes to `_schemas` is Confluent's layout (a version's SCHEMA record, its soft
  delete as the same record with deleted=true, a CONFIG record); the whole state (versions,
  soft deletes, configs, modes, ids) survives a graceful restart and a kill -9, and ids
  registered afterwards are new.
* Broker-side validation: with `confluent.value.schema.validation=true` (or `.key.`) Produce
  refuses records without magic byte 0 and a registered schema id with INVALID_RECORD; without
  it nothing is checked.
* Hostile input: a 10 MiB schema, 100,000 levels of nesting in a schema and in the request body,
  invalid UTF-8, a body that is not JSON, an unknown schemaType, missing and cyclic references:
  each gets a clear 4xx (with Confluent's error body, but for a 413), nothing is registered, and
  the registry serves after each.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format

from kafka_helpers import (
    consume_all,
    consume_range,
    create_topic,
    list_topic_names,
    produce_all,
    producer,
    unique,
)
from registry_helpers import (
    INCOMPATIBLE_CODES,
    Registry,
    assert_error,
    avro_record,
    compact,
    framed,
    proto_message_class,
    schema_id_of,
    sr_client,
    wait_for_registry,
)


@pytest.fixture
def registry(broker):
    wait_for_registry(broker.registry_url)
    with Registry(broker.registry_url) as r:
        yield r


def subjects(registry: Registry, **params) -> list:
    return registry.ok("GET", "/subjects", params=params or None)


def versions(registry: Registry, subject: str, **params) -> list:
    return registry.ok("GET", f"/subjects/{subject}/versions", params=params or None)


def round_trip(broker, topic: str, serialized: list[bytes]) -> list:
    """Produces the serialized values to partition 0 of `topic` and returns the consumed records."""
    deliveries = produce_all(producer(broker.bootstrap), topic, [{"value": v, "partition": 0} for v in serialized])
    first = deliveries[0].offset
    records = consume_range(broker.bootstrap, topic, 0, first, first + len(serialized))
    assert [r.value for r in records] == serialized, "Strom returned other bytes than were produced"
    return records


def assert_registered_under(registry: Registry, subject: str, values: list[bytes], expected_versions: list[int]):
    """The subject exists with these versions, and every framed value names the id of one of them."""
    assert subject in subjects(registry), f"{subject} not auto-registered: {subjects(registry)}"
    assert versions(registry, subject) == expected_versions
    ids = {registry.ok("GET", f"/subjects/{subject}/versions/{v}")["id"] for v in expected_versions}
    for value in values:
        assert schema_id_of(value) in ids, f"record framed with id {schema_id_of(value)}, subject has {ids}"


# -- 1. the three formats through confluent-kafka's serializers ---------------------------

AVRO_V1 = avro_record("User", [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}])
AVRO_V2 = avro_record("User", AVRO_V1["fields"] + [{"name": "email", "type": "string", "default": ""}])
AVRO_NO_DEFAULT = avro_record("User", AVRO_V1["fields"] + [{"name": "city", "type": "string"}])
AVRO_TYPE_CHANGED = avro_record("User", [{"name": "name", "type": "string"}, {"name": "age", "type": "string"}])
USERS = [{"name": f"user-{i}", "age": 20 + i} for i in range(5)]


def test_avro_records_round_trip_through_strom_and_the_schema_is_auto_registered(broker, registry):
    topic = unique("sr-avro")
    create_topic(broker.bootstrap, topic)
    client = sr_client(broker.registry_url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [AvroSerializer(client, compact(AVRO_V1))(u, ctx) for u in USERS]
    records = round_trip(broker, topic, values)

    decoded = [AvroDeserializer(sr_client(broker.registry_url))(r.value, ctx) for r in records]
    assert decoded == USERS
    subject = f"{topic}-value"
    assert_registered_under(registry, subject, values, [1])
    stored = registry.ok("GET", f"/subjects/{subject}/versions/1")
    assert stored["subject"] == subject and stored["version"] == 1
    assert stored.get("schemaType", "AVRO") == "AVRO", stored
    assert json.loads(stored["schema"]) == AVRO_V1
    assert json.loads(registry.ok("GET", f"/schemas/ids/{stored['id']}")["schema"]) == AVRO_V1


def test_avro_accepts_a_field_with_a_default_and_refuses_a_field_without_one_or_a_changed_type(broker, registry):
    topic = unique("sr-avro-evolve")
    create_topic(broker.bootstrap, topic)
    client = sr_client(broker.registry_url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    old = [AvroSerializer(client, compact(AVRO_V1))(u, ctx) for u in USERS[:2]]
    users_v2 = [{**u, "email": f"{u['name']}@example.com"} for u in USERS[2:]]
    new = [AvroSerializer(client, compact(AVRO_V2))(u, ctx) for u in users_v2]
    records = round_trip(broker, topic, old + new)
    subject = f"{topic}-value"
    assert_registered_under(registry, subject, old + new, [1, 2])
    assert schema_id_of(old[0]) != schema_id_of(new[0])

    # A reader on v2 reads v1 records with the default filled in, v2 records as written.
    reader = AvroDeserializer(sr_client(broker.registry_url), compact(AVRO_V2))
    decoded = [reader(r.value, ctx) for r in records]
    assert decoded == [{**u, "email": ""} for u in USERS[:2]] + users_v2

    for incompatible, value in ((AVRO_NO_DEFAULT, {**USERS[0], "city": "x"}), (AVRO_TYPE_CHANGED, {"name": "x", "age": "20"})):
        with pytest.raises(SchemaRegistryError) as refused:
            AvroSerializer(sr_client(broker.registry_url), compact(incompatible))(value, ctx)
        assert refused.value.http_status_code == 409, refused.value
        assert refused.value.error_code in INCOMPATIBLE_CODES, refused.value
    assert versions(registry, subject) == [1, 2], "a refused schema was registered anyway"


JSON_V1 = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
    "additionalProperties": False,
}
JSON_V2 = {**JSON_V1, "properties": {**JSON_V1["properties"], "email": {"type": "string"}}}
JSON_TYPE_CHANGED = {**JSON_V1, "properties": {"name": {"type": "string"}, "age": {"type": "string"}}}


def test_json_schema_records_round_trip_and_evolve_by_an_optional_property_of_a_closed_model(broker, registry):
    topic = unique("sr-json")
    create_topic(broker.bootstrap, topic)
    client = sr_client(broker.registry_url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    old = [JSONSerializer(compact(JSON_V1), client)(u, ctx) for u in USERS]
    users_v2 = [{**u, "email": f"{u['name']}@example.com"} for u in USERS[:2]]
    new = [JSONSerializer(compact(JSON_V2), client)(u, ctx) for u in users_v2]
    records = round_trip(broker, topic, old + new)

    deserializer = JSONDeserializer(None, schema_registry_client=sr_client(broker.registry_url))
    assert [deserializer(r.value, ctx) for r in records] == USERS + users_v2
    subject = f"{topic}-value"
    assert_registered_under(registry, subject, old + new, [1, 2])
    stored = registry.ok("GET", f"/subjects/{subject}/versions/1")
    assert stored["schemaType"] == "JSON", stored
    assert json.loads(stored["schema"]) == JSON_V1

    with pytest.raises(SchemaRegistryError) as refused:
        JSONSerializer(compact(JSON_TYPE_CHANGED), sr_client(broker.registry_url))({"name": "x", "age": "1"}, ctx)
    assert refused.value.http_status_code == 409, refused.value
    assert refused.value.error_code in INCOMPATIBLE_CODES, refused.value
    assert versions(registry, subject) == [1, 2]


PROTO_V1 = [("name", 1, "string"), ("age", 2, "int32")]
PROTO_V2 = PROTO_V1 + [("email", 3, "string")]
PROTO_TYPE_CHANGED = [("name", 1, "int32"), ("age", 2, "int32")]


def test_protobuf_records_round_trip_and_evolve_by_a_new_field_but_not_by_string_to_int32(broker, registry):
    topic = unique("sr-proto")
    create_topic(broker.bootstrap, topic)
    v1 = proto_message_class("e2e/user.proto", "e2e", "User", PROTO_V1)
    v2 = proto_message_class("e2e/user.proto", "e2e", "User", PROTO_V2)
    client = sr_client(broker.registry_url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    old_msgs = [v1(name=u["name"], age=u["age"]) for u in USERS]
    new_msgs = [v2(name="v2-user", age=99, email="v2@example.com")]
    old = [ProtobufSerializer(v1, client, {"use.deprecated.format": False})(m, ctx) for m in old_msgs]
    new = [ProtobufSerializer(v2, client, {"use.deprecated.format": False})(m, ctx) for m in new_msgs]
    records = round_trip(broker, topic, old + new)

    read_v1 = ProtobufDeserializer(v1, {"use.deprecated.format": False}, sr_client(broker.registry_url))
    decoded = [read_v1(r.value, ctx) for r in records[: len(old)]]
    assert [json_format.MessageToDict(m) for m in decoded] == [json_format.MessageToDict(m) for m in old_msgs]
    read_v2 = ProtobufDeserializer(v2, {"use.deprecated.format": False}, sr_client(broker.registry_url))
    (latest,) = [read_v2(r.value, ctx) for r in records[len(old):]]
    assert json_format.MessageToDict(latest) == {"name": "v2-user", "age": 99, "email": "v2@example.com"}

    subject = f"{topic}-value"
    assert_registered_under(registry, subject, old + new, [1, 2])
    stored = registry.ok("GET", f"/subjects/{subject}/versions/2")
    assert stored["schemaType"] == "PROTOBUF", stored
    assert "message User" in stored["schema"] and "email" in stored["schema"], stored["schema"]

    bad = proto_message_class("e2e/user.proto", "e2e", "User", PROTO_TYPE_CHANGED)
    with pytest.raises(SchemaRegistryError) as refused:
        ProtobufSerializer(bad, sr_client(broker.registry_url), {"use.deprecated.format": False})(bad(name=1, age=2), ctx)
    assert refused.value.http_status_code == 409, refused.value
    assert refused.value.error_code in INCOMPATIBLE_CODES, refused.value
    assert versions(registry, subject) == [1, 2]


# -- references ---------------------------------------------------------------------------

ADDRESS = avro_record("Address", [{"name": "street", "type": "string"}, {"name": "zip", "type": "string"}])
PERSON = avro_record("Person", [{"name": "name", "type": "string"}, {"name": "home", "type": "e2e.Address"}])


def test_an_avro_type_registered_under_its_own_subject_is_used_by_reference(broker, registry):
    topic = unique("sr-refs")
    create_topic(broker.bootstrap, topic)
    address_subject = unique("address")
    address_id = registry.register(address_subject, ADDRESS)

    client = sr_client(broker.registry_url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    person_schema = Schema(compact(PERSON), "AVRO", [SchemaReference("e2e.Address", address_subject, 1)])
    people = [{"name": f"p{i}", "home": {"street": f"{i} Main St", "zip": f"{10000 + i}"}} for i in range(3)]
    serializer = AvroSerializer(client, person_schema)
    values = [serializer(p, ctx) for p in people]
    records = round_trip(broker, topic, values)
    decoded = [AvroDeserializer(sr_client(broker.registry_url))(r.value, ctx) for r in records]
    assert decoded == people

    subject = f"{topic}-value"
    stored = registry.ok("GET", f"/subjects/{subject}/versions/latest")
    person_id = stored["id"]
    assert person_id != address_id and schema_id_of(values[0]) == person_id
    assert stored["references"] == [{"name": "e2e.Address", "subject": address_subject, "version": 1}], stored
    by_id = registry.ok("GET", f"/schemas/ids/{person_id}")
    assert by_id["references"] == stored["references"], by_id
    assert registry.ok("GET", f"/subjects/{address_subject}/versions/1/referencedby") == [person_id]

    # A referenced version cannot be deleted (42206), soft or as a whole subject.
    assert_error(registry.delete(f"/subjects/{address_subject}/versions/1"), 422, 42206, "delete referenced version")
    assert_error(registry.delete(f"/subjects/{address_subject}"), 422, 42206, "delete referenced subject")
    assert versions(registry, address_subject) == [1]


# -- deletes ------------------------------------------------------------------------------


def three_versions(registry: Registry, subject: str) -> list[int]:
    """Registers three unrelated Avro schemas under `subject` (its level set to NONE first)."""
    registry.ok("PUT", f"/config/{subject}", {"compatibility": "NONE"})
    return [registry.register(subject, avro_record(f"R{i}", [{"name": f"f{i}", "type": "int"}])) for i in range(3)]


def test_soft_and_permanent_deletes_of_versions_answer_confluents_codes(registry):
    subject = unique("del-versions")
    ids = three_versions(registry, subject)
    assert len(set(ids)) == 3

    # Permanent delete needs a soft delete first.
    assert_error(registry.delete(f"/subjects/{subject}/versions/2", params={"permanent": "true"}), 404, 40407)
    assert registry.ok("DELETE", f"/subjects/{subject}/versions/2") == 2
    assert versions(registry, subject) == [1, 3]
    assert versions(registry, subject, deleted="true") == [1, 2, 3]
    assert_error(registry.get(f"/subjects/{subject}/versions/2"), 404, 40402, "soft-deleted version")
    deleted = registry.ok("GET", f"/subjects/{subject}/versions/2", params={"deleted": "true"})
    assert deleted["id"] == ids[1] and deleted["version"] == 2
    # The id of a soft-deleted version still resolves (records written with it stay readable).
    assert json.loads(registry.ok("GET", f"/schemas/ids/{ids[1]}")["schema"])["name"] == "R1"
    assert_error(registry.delete(f"/subjects/{subject}/versions/2"), 404, 40406, "second soft delete")
    assert registry.ok("GET", f"/subjects/{subject}/versions/latest")["version"] == 3

    assert registry.ok("DELETE", f"/subjects/{subject}/versions/2", params={"permanent": "true"}) == 2
    assert versions(registry, subject, deleted="true") == [1, 3]
    assert_error(registry.get(f"/subjects/{subject}/versions/2", params={"deleted": "true"}), 404, 40402)
    assert_error(registry.delete(f"/subjects/{subject}/versions/9"), 404, 40402, "unknown version")
    assert_error(registry.delete("/subjects/no-such-subject/versions/1"), 404, 40401, "unknown subject")

    # Version numbers never go back: the next one is 4, after the deleted 3 too.
    registry.ok("DELETE", f"/subjects/{subject}/versions/3")
    new_id = registry.register(subject, avro_record("R9", [{"name": "f9", "type": "int"}]))
    assert versions(registry, subject) == [1, 4]
    assert registry.ok("GET", f"/subjects/{subject}/versions/4")["id"] == new_id


def test_soft_and_permanent_deletes_of_subjects_answer_confluents_codes(registry):
    subject = unique("del-subject")
    other = unique("del-other")
    ids = three_versions(registry, subject)
    registry.register(other, {"type": "string"})

    assert_error(registry.delete(f"/subjects/{subject}", params={"permanent": "true"}), 404, 40405)
    assert registry.ok("DELETE", f"/subjects/{subject}") == [1, 2, 3]
    assert subject not in subjects(registry) and other in subjects(registry)
    assert subject in subjects(registry, deleted="true")
    assert_error(registry.get(f"/subjects/{subject}/versions"), 404, 40401, "versions of a soft-deleted subject")
    assert_error(registry.get(f"/subjects/{subject}/versions/1"), 404, (40401, 40402))
    assert versions(registry, subject, deleted="true") == [1, 2, 3]
    assert_error(registry.delete(f"/subjects/{subject}"), 404, 40404, "second soft delete")
    for schema_id in ids:
        assert registry.get(f"/schemas/ids/{schema_id}").status == 200, "a soft-deleted subject's id stopped resolving"

    assert registry.ok("DELETE", f"/subjects/{subject}", params={"permanent": "true"}) == [1, 2, 3]
    assert subject not in subjects(registry, deleted="true")
    assert_error(registry.get(f"/subjects/{subject}/versions", params={"deleted": "true"}), 404, 40401)
    assert_error(registry.delete(f"/subjects/{subject}"), 404, 40401, "delete of a gone subject")
    assert_error(registry.delete("/subjects/never-was"), 404, 40401)
    assert other in subjects(registry)


def test_a_soft_deleted_subject_registers_again_from_the_next_version_with_the_same_id(registry):
    subject = unique("del-again")
    ids = three_versions(registry, subject)
    registry.ok("DELETE", f"/subjects/{subject}")
    again = registry.register(subject, avro_record("R0", [{"name": "f0", "type": "int"}]))
    assert again == ids[0], "the same text must keep its id"
    assert versions(registry, subject) == [4]
    assert subject in subjects(registry)


# -- modes --------------------------------------------------------------------------------


def test_readonly_mode_refuses_registration_with_42205_and_still_serves_reads(broker, registry):
    subject = unique("ro")
    first = registry.register(subject, {"type": "string"})
    assert registry.ok("PUT", f"/mode/{subject}", {"mode": "READONLY"}) == {"mode": "READONLY"}
    assert registry.ok("GET", f"/mode/{subject}") == {"mode": "READONLY"}

    with pytest.raises(SchemaRegistryError) as refused:
        sr_client(broker.registry_url).register_schema(subject, Schema(compact(avro_record("X", [])), "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (422, 42205), refused.value
    assert_error(registry.post(f"/subjects/{subject}/versions", {"schema": '"int"'}), 422, 42205)
    assert versions(registry, subject) == [1]
    assert registry.ok("GET", "/schemas/ids/%d" % first)["schema"] == '"string"'
    # Other subjects are not read-only.
    registry.register(unique("rw"), {"type": "int"})

    assert registry.ok("PUT", f"/mode/{subject}", {"mode": "READWRITE"}) == {"mode": "READWRITE"}
    assert registry.register(subject, '"string"') == first, "the same text must answer its id"
    assert versions(registry, subject) == [1]


def test_import_mode_registers_explicit_ids_and_versions(registry):
    existing = registry.register(unique("before-import"), {"type": "string"})
    # IMPORT for the whole registry while subjects exist needs ?force=true.
    assert_error(registry.put("/mode", {"mode": "IMPORT"}), 422, 42205, "IMPORT with subjects present")
    assert registry.ok("GET", "/mode") == {"mode": "READWRITE"}

    subject = unique("imported")
    # An explicit id outside IMPORT mode is refused.
    body = {"schema": compact(avro_record("Imp", [{"name": "a", "type": "int"}])), "id": 5000, "version": 3}
    assert_error(registry.post(f"/subjects/{subject}/versions", body), 422, 42205, "explicit id in READWRITE")

    assert registry.ok("PUT", "/mode", {"mode": "IMPORT"}, params={"force": "true"}) == {"mode": "IMPORT"}
    # (Confluent's answer has the id, and in current versions the version and more.)
    assert registry.ok("POST", f"/subjects/{subject}/versions", body)["id"] == 5000
    imported = registry.ok("GET", f"/subjects/{subject}/versions/3")
    assert (imported["id"], imported["version"], imported["subject"]) == (5000, 3, subject)
    assert versions(registry, subject) == [3]
    assert json.loads(registry.ok("GET", "/schemas/ids/5000")["schema"])["name"] == "Imp"
    # In IMPORT mode a registration without an id is refused.
    assert_error(
        registry.post(f"/subjects/{unique('no-id')}/versions", {"schema": '"bytes"'}), 422, 42205, "no id in IMPORT"
    )
    # An id already taken by another schema cannot be imported with a different text.
    clash = {"schema": '"double"', "id": existing, "version": 1}
    assert_error(registry.post(f"/subjects/{unique('clash')}/versions", clash), 422, 42205, "id taken")

    registry.ok("PUT", "/mode", {"mode": "READWRITE"})
    fresh = [registry.register(unique("after-import"), {"type": "fixed", "name": f"F{i}", "size": i + 1}) for i in range(5)]
    assert 5000 not in fresh and existing not in fresh and len(set(fresh)) == 5, fresh


# -- configs ------------------------------------------------------------------------------


def test_a_subject_config_overrides_the_global_one_for_that_subject_only(broker, registry):
    assert registry.ok("GET", "/config") == {"compatibilityLevel": "BACKWARD"}
    assert registry.ok("PUT", "/config", {"compatibility": "FULL"}) == {"compatibility": "FULL"}
    loose, strict = unique("loose"), unique("strict")
    assert registry.ok("PUT", f"/config/{loose}", {"compatibility": "NONE"}) == {"compatibility": "NONE"}
    for subject in (loose, strict):
        registry.register(subject, AVRO_V1)

    client = sr_client(broker.registry_url)
    assert client.register_schema(loose, Schema(compact(AVRO_TYPE_CHANGED), "AVRO")) > 0
    assert versions(registry, loose) == [1, 2]
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(strict, Schema(compact(AVRO_TYPE_CHANGED), "AVRO"))
    assert refused.value.http_status_code == 409 and refused.value.error_code in INCOMPATIBLE_CODES
    # Under FULL a new field without a default is refused (a new reader cannot fill it in
    # old records); with a default it is accepted.
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(strict, Schema(compact(AVRO_NO_DEFAULT), "AVRO"))
    assert refused.value.http_status_code == 409
    assert client.register_schema(strict, Schema(compact(AVRO_V2), "AVRO")) > 0
    assert versions(registry, strict) == [1, 2]

    assert registry.ok("GET", f"/config/{loose}") == {"compatibilityLevel": "NONE"}
    assert_error(registry.get(f"/config/{strict}"), 404, 40408)
    assert registry.ok("GET", f"/config/{strict}", params={"defaultToGlobal": "true"}) == {"compatibilityLevel": "FULL"}
    assert registry.ok("GET", "/config") == {"compatibilityLevel": "FULL"}


# -- a _schemas topic written by a Confluent registry -------------------------------------

LEGACY_SUBJECT = "legacy-orders-value"
LEGACY_V1 = avro_record("Order", [{"name": "id", "type": "long"}])
LEGACY_V2 = avro_record("Order", [{"name": "id", "type": "long"}, {"name": "note", "type": "string", "default": ""}])
LEGACY_GONE = "legacy-gone-value"
LEGACY_GONE_SCHEMA = avro_record("Gone", [{"name": "g", "type": "int"}])


def confluent_records() -> list[tuple[dict, dict | None]]:
    """(key, value) records as a Confluent registry writes them to `_schemas` (no Strom fields):
    a NOOP, two versions (ids 7 and 9), the subject's config, then version 2 soft-deleted (the
    version's record again with deleted=true); another subject (id 11) soft-deleted as a whole
    (a DELETE_SUBJECT record up to its version 1)."""
    def schema_key(version, subject=LEGACY_SUBJECT):
        return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}

    def schema_value(version, schema_id, schema, deleted, subject=LEGACY_SUBJECT):
        return {"subject": subject, "version": version, "id": schema_id, "schema": compact(schema), "deleted": deleted}

    return [
        ({"keytype": "NOOP", "magic": 0}, None),
        (schema_key(1), schema_value(1, 7, LEGACY_V1, False)),
        (schema_key(2), schema_value(2, 9, LEGACY_V2, False)),
        ({"keytype": "CONFIG", "subject": LEGACY_SUBJECT, "magic": 0}, {"compatibilityLevel": "NONE"}),
        (schema_key(2), schema_value(2, 9, LEGACY_V2, True)),
        (schema_key(1, LEGACY_GONE), schema_value(1, 11, LEGACY_GONE_SCHEMA, False, LEGACY_GONE)),
        ({"keytype": "DELETE_SUBJECT", "subject": LEGACY_GONE, "magic": 0}, {"subject": LEGACY_GONE, "version": 1}),
    ]


def test_a_schemas_topic_copied_from_a_confluent_registry_loads(broker):
    wait_for_registry(broker.registry_url)
    if "_schemas" not in list_topic_names(broker.bootstrap):
        create_topic(broker.bootstrap, "_schemas", config={"cleanup.policy": "compact"})
    records = [
        {"key": compact(k).encode(), "value": None if v is None else compact(v).encode(), "partition": 0}
        for k, v in confluent_records()
    ]
    produce_all(producer(broker.bootstrap), "_schemas", records)

    with Registry(broker.registry_url) as registry:
        assert LEGACY_SUBJECT in subjects(registry)
        assert versions(registry, LEGACY_SUBJECT) == [1]
        assert versions(registry, LEGACY_SUBJECT, deleted="true") == [1, 2]
        v1 = registry.ok("GET", f"/subjects/{LEGACY_SUBJECT}/versions/1")
        assert (v1["id"], v1["version"]) == (7, 1) and json.loads(v1["schema"]) == LEGACY_V1
        assert json.loads(registry.ok("GET", "/schemas/ids/9")["schema"]) == LEGACY_V2
        assert_error(registry.get(f"/subjects/{LEGACY_SUBJECT}/versions/2"), 404, 40402)
        assert registry.ok("GET", f"/config/{LEGACY_SUBJECT}") == {"compatibilityLevel": "NONE"}
        assert LEGACY_GONE not in subjects(registry) and LEGACY_GONE in subjects(registry, deleted="true")
        assert_error(registry.get(f"/subjects/{LEGACY_GONE}/versions"), 404, 40401)
        assert json.loads(registry.ok("GET", "/schemas/ids/11")["schema"]) == LEGACY_GONE_SCHEMA

        # NONE from the copied config: an incompatible schema is accepted, as version 3
        # (after the soft-deleted 2), with an id that collides with neither copied id.
        new_id = registry.register(LEGACY_SUBJECT, avro_record("Order", [{"name": "id", "type": "string"}]))
        assert new_id not in (7, 9, 11)
        assert versions(registry, LEGACY_SUBJECT) == [1, 3]
        # The copied text registered elsewhere keeps its copied id.
        assert registry.register(unique("legacy-copy"), LEGACY_V1) == 7


# -- what Strom writes to _schemas, and restarts --------------------------------------------


def test_strom_writes_schemas_in_confluents_record_layout(broker, registry):
    subject = unique("layout")
    schema_id = registry.register(subject, AVRO_V1)
    registry.ok("PUT", f"/config/{subject}", {"compatibility": "FULL"})
    assert registry.ok("DELETE", f"/subjects/{subject}/versions/1") == 1

    records = consume_all(broker.bootstrap, "_schemas", 0)
    parsed = [(json.loads(r.key), None if r.value is None else json.loads(r.value)) for r in records]
    versions_written = [(k, v) for k, v in parsed if k.get("keytype") == "SCHEMA" and k.get("subject") == subject]
    assert versions_written, f"no SCHEMA record for {subject} in _schemas: {parsed}"
    for key, value in versions_written:
        assert (key["version"], key["magic"]) == (1, 1), key
        assert (value["subject"], value["version"], value["id"]) == (subject, 1, schema_id), value
        assert json.loads(value["schema"]) == AVRO_V1, value
        assert value.get("schemaType", "AVRO") == "AVRO", value
        assert isinstance(value["deleted"], bool), value
    assert versions_written[0][1]["deleted"] is False
    # The soft delete is the version's record again, with deleted=true (as Confluent writes it).
    assert versions_written[-1][1]["deleted"] is True, versions_written
    configs = [(k, v) for k, v in parsed if k.get("keytype") == "CONFIG" and k.get("subject") == subject]
    assert configs, f"no CONFIG record for {subject}: {parsed}"
    assert configs[-1][0]["magic"] == 0 and configs[-1][1]["compatibilityLevel"] == "FULL", configs


def registry_state(registry: Registry, subject: str, readonly: str, ids: list[int]) -> dict:
    return {
        "versions": versions(registry, subject),
        "deleted versions": versions(registry, subject, deleted="true"),
        "global config": registry.ok("GET", "/config"),
        "subject config": registry.ok("GET", f"/config/{subject}"),
        "mode": registry.ok("GET", f"/mode/{readonly}"),
        "readonly versions": versions(registry, readonly),
        "schemas": {i: registry.ok("GET", f"/schemas/ids/{i}")["schema"] for i in ids},
        "latest": registry.ok("GET", f"/subjects/{subject}/versions/latest"),
    }


def test_the_registry_state_survives_a_restart_and_a_kill_9(broker, registry):
    subject, readonly = unique("persist"), unique("persist-ro")
    ids = three_versions(registry, subject)
    assert registry.ok("DELETE", f"/subjects/{subject}/versions/2") == 2
    registry.ok("PUT", "/config", {"compatibility": "FULL"})
    ids.append(registry.register(readonly, '"string"'))
    registry.ok("PUT", f"/mode/{readonly}", {"mode": "READONLY"})
    before = registry_state(registry, subject, readonly, ids)
    assert before["deleted versions"] == [1, 2, 3] and before["mode"] == {"mode": "READONLY"}

    for how in ("SIGTERM", "kill -9"):
        if how == "SIGTERM":
            broker.restart()
        else:
            broker.kill()
            broker.start()
        wait_for_registry(broker.registry_url)
        assert registry_state(registry, subject, readonly, ids) == before, f"after {how}"
        fresh = registry.register(unique("after-restart"), avro_record(f"After{len(ids)}", [{"name": "a", "type": "int"}]))
        assert fresh not in ids, f"after {how}: id {fresh} reused"
        ids.append(fresh)
        before["schemas"][fresh] = registry.ok("GET", f"/schemas/ids/{fresh}")["schema"]


# -- broker-side schema validation --------------------------------------------------------


def produce_one(bootstrap: str, topic: str, value: bytes | None, key: bytes | None = None) -> KafkaError | None:
    """Produces one record (no retries) and returns its delivery error, None if acknowledged."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "retries": 0,
            "linger.ms": 0,
            "message.timeout.ms": 15000,
        }
    )
    outcome = []
    p.produce(topic, value=value, key=key, partition=0, on_delivery=lambda error, _msg: outcome.append(error))
    assert p.flush(20) == 0, "no delivery report within 20 s"
    (error,) = outcome
    return error


def assert_invalid_record(error: KafkaError | None, what: str) -> None:
    assert error is not None, f"{what}: accepted, expected INVALID_RECORD"
    assert error.code() == KafkaError.INVALID_RECORD, f"{what}: {error}"


def test_value_schema_validation_refuses_records_without_a_registered_schema_id(broker, registry):
    topic = unique("validated")
    # Registered under the topic's own subject (TopicNameStrategy), as Confluent's validation expects.
    schema_id = registry.register(f"{topic}-value", {"type": "string"})
    create_topic(broker.bootstrap, topic, config={"confluent.value.schema.validation": "true"})

    assert produce_one(broker.bootstrap, topic, framed(schema_id, b"\x06abc")) is None
    assert produce_one(broker.bootstrap, topic, framed(schema_id, b"\x06abc"), key=b"plain key") is None
    assert_invalid_record(produce_one(broker.bootstrap, topic, b"plain text, no magic byte"), "no magic byte")
    assert_invalid_record(produce_one(broker.bootstrap, topic, framed(schema_id + 100000)), "unknown schema id")
    assert_invalid_record(produce_one(broker.bootstrap, topic, b"\x01" + framed(schema_id)[1:]), "magic byte 1")
    assert_invalid_record(produce_one(broker.bootstrap, topic, b"\x00\x00"), "id cut short")
    # Only the accepted records are in the log.
    records = consume_range(broker.bootstrap, topic, 0, 0, 2)
    assert [r.value for r in records] == [framed(schema_id, b"\x06abc")] * 2


def test_key_schema_validation_checks_keys_and_leaves_values_alone(broker, registry):
    topic = unique("key-validated")
    schema_id = registry.register(f"{topic}-key", {"type": "string"})
    create_topic(broker.bootstrap, topic, config={"confluent.key.schema.validation": "true"})
    assert produce_one(broker.bootstrap, topic, b"any value", key=framed(schema_id, b"\x02k")) is None
    assert_invalid_record(produce_one(broker.bootstrap, topic, b"any value", key=b"plain key"), "plain key")
    assert_invalid_record(produce_one(broker.bootstrap, topic, b"v", key=framed(schema_id + 100000)), "unknown key id")


def test_without_validation_configs_nothing_is_checked(broker, registry):
    topic = unique("unvalidated")
    create_topic(broker.bootstrap, topic)
    for value in (b"plain text", framed(999999), b"\x00", b""):
        assert produce_one(broker.bootstrap, topic, value, key=b"plain key") is None, value


# -- hostile input ------------------------------------------------------------------------

DEPTH = 100_000


def nested_json_schema(depth: int) -> str:
    return '{"type":"object","properties":{"a":' * depth + '{"type":"string"}' + "}}" * depth


HOSTILE = {
    # name: (path, raw body, acceptable (status, error codes) pairs)
    "ten_mib_schema": (
        "/subjects/hostile/versions",
        json.dumps({"schema": '{"type":"string","doc":"' + "x" * (10 * 1024 * 1024) + '"}'}).encode(),
        {413: None, 422: (42201, 42209), 400: None},
    ),
    "deep_avro_schema": (
        "/subjects/hostile/versions",
        json.dumps({"schema": "[" * DEPTH + '"int"' + "]" * DEPTH}).encode(),
        {422: (42201,)},
    ),
    "deep_json_schema": (
        "/subjects/hostile/versions",
        json.dumps({"schema": nested_json_schema(DEPTH), "schemaType": "JSON"}).encode(),
        {422: (42201,)},
    ),
    "deep_request_body": (
        "/subjects/hostile/versions",
        b'{"schema":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"}",
        {400: None, 422: None},
    ),
    "deep_array_body": (
        "/subjects/hostile/versions",
        b"[" * DEPTH + b"]" * DEPTH,
        {400: None, 422: None},
    ),
    "invalid_utf8_body": (
        "/subjects/hostile/versions",
        b'{"schema": "{\\"type\\": \\"string\\", \\"doc\\": \\"\xff\xfe\xc0\x80\\"}"}',
        {400: None, 422: None},
    ),
    "not_json": ("/subjects/hostile/versions", b"this is not JSON {", {400: None, 422: None}),
    "empty_body": ("/subjects/hostile/versions", b"", {400: None, 422: None}),
    "unknown_schema_type": (
        "/subjects/hostile/versions",
        json.dumps({"schema": "<xml/>", "schemaType": "XML"}).encode(),
        {422: (42201,)},
    ),
    "no_schema_field": ("/subjects/hostile/versions", json.dumps({"schemaType": "AVRO"}).encode(), {422: (42201,)}),
    "schema_not_a_string": ("/subjects/hostile/versions", b'{"schema": 17}', {400: None, 422: None}),
    "lookup_not_json": ("/subjects/hostile", b"\x00\x01\x02", {400: None, 422: None}),
    "compatibility_not_json": ("/compatibility/subjects/hostile/versions/latest", b"{{", {400: None, 422: None}),
    "config_deep_body": ("/config", b'{"compatibility":' + b"[" * DEPTH + b"]" * DEPTH + b"}", {400: None, 422: None}),
}


def assert_still_serving(registry: Registry) -> None:
    reply = registry.get("/subjects")
    assert reply.status == 200 and isinstance(reply.body, list), f"GET /subjects after hostile input: {reply.describe()}"
    registry.register(unique("after-hostile"), {"type": "string"})


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_request_gets_a_clear_4xx_and_the_registry_keeps_serving(registry, case):
    path, raw, acceptable = HOSTILE[case]
    method = "PUT" if path == "/config" else "POST"
    reply = registry.request(method, path, raw=raw)
    assert reply.status in acceptable, f"{case}: expected one of {sorted(acceptable)}, got {reply.describe()}"
    codes = acceptable[reply.status]
    if codes is not None:
        assert_error(reply, reply.status, codes, case)
    elif reply.status != 413:
        # Every 400/422 carries Confluent's error body.
        assert isinstance(reply.body, dict) and "error_code" in reply.body and "message" in reply.body, (
            f"{case}: error body not Confluent's: {reply.describe()}"
        )
    assert "hostile" not in subjects(registry), f"{case}: something was registered"
    assert_still_serving(registry)


def test_references_to_missing_subjects_versions_and_cycles_are_refused(registry):
    a, b = unique("ref-a"), unique("ref-b")
    user_of_b = avro_record("A", [{"name": "b", "type": "e2e.B"}])
    missing = [
        ("missing subject", [{"name": "e2e.B", "subject": b, "version": 1}]),
        ("self reference", [{"name": "e2e.B", "subject": a, "version": 1}]),
    ]
    for what, refs in missing:
        reply = registry.post(f"/subjects/{a}/versions", {"schema": compact(user_of_b), "references": refs})
        assert reply.status in (404, 422), f"{what}: {reply.describe()}"
        assert_error(reply, reply.status, (42201,) if reply.status == 422 else (40401, 40402), what)

    b1 = registry.register(b, avro_record("B", [{"name": "x", "type": "int"}]))
    reply = registry.post(
        f"/subjects/{a}/versions",
        {"schema": compact(user_of_b), "references": [{"name": "e2e.B", "subject": b, "version": 2}]},
    )
    assert reply.status in (404, 422), f"missing version: {reply.describe()}"
    assert_error(reply, reply.status, (42201,) if reply.status == 422 else (40402,), "missing version")

    a1 = registry.register(a, user_of_b, references=[{"name": "e2e.B", "subject": b, "version": 1}])
    assert a1 != b1
    # b v2 would define e2e.B again through a reference to a, which already includes e2e.B
    # (b -> a -> b): refused as an invalid schema, not followed forever.
    registry.ok("PUT", f"/config/{b}", {"compatibility": "NONE"})
    cyclic = avro_record("B", [{"name": "a", "type": "e2e.A"}])
    reply = registry.post(
        f"/subjects/{b}/versions",
        {"schema": compact(cyclic), "references": [{"name": "e2e.A", "subject": a, "version": 1}]},
    )
    assert_error(reply, 422, 42201, "cyclic type definition")
    assert versions(registry, b) == [1]
    assert registry.ok("GET", f"/subjects/{b}/versions/1/referencedby") == [a1]
    assert_still_serving(registry)
