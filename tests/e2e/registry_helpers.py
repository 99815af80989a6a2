"""Helpers for the schema registry tests (test_schema_registry*.py).

`Registry` is a thin HTTP client (http.client) over one node's registry (`broker.registry_url`): every call
returns a `Reply` (status, parsed JSON body or None, raw text) and never raises on an HTTP error
status, so tests assert the exact status and Confluent error code themselves. Requests carry
Confluent's content type `application/vnd.schemaregistry.v1+json` unless told otherwise.

Also here: schema texts used by several tests, a Protobuf message class built at run time (no
protoc: a FileDescriptorProto in a fresh DescriptorPool), and the Confluent wire format (magic
byte 0, a 4-byte big-endian schema id, the payload).
"""

from __future__ import annotations

import http.client
import json
import struct
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from strom_broker import port_accepts

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
HTTP_TIMEOUT_S = 30.0


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or None when the body is not JSON
    text: str
    headers: dict

    @property
    def error_code(self) -> int | None:
        return self.body.get("error_code") if isinstance(self.body, dict) else None

    def describe(self) -> str:
        return f"HTTP {self.status}: {self.text[:600]!r}"


class Registry:
    """One registry node, spoken to over plain HTTP (http.client, a connection per request)."""

    def __init__(self, url: str, timeout_s: float = HTTP_TIMEOUT_S):
        parsed = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self.host = parsed.hostname
        self.port = parsed.port
        self.timeout_s = timeout_s

    def close(self) -> None:
        pass

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = CONTENT_TYPE,
        params: dict | None = None,
    ) -> Reply:
        """`body` is sent as JSON; `raw` as the exact bytes given (for hostile input)."""
        headers = {"Accept": CONTENT_TYPE}
        content = None
        if raw is not None:
            content = raw
        elif body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = content_type
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            try:
                connection.request(method, path, body=content, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as error:
                # The server answered (e.g. 413) and closed before the whole body was sent: its
                # answer may still be readable, as an HTTP client reads it after a failed send.
                if connection.sock is None:
                    raise AssertionError(f"{method} {path}: connection closed while sending, no answer: {error!r}")
            try:
                response = connection.getresponse()
                data = response.read()
            except (ConnectionResetError, http.client.RemoteDisconnected) as error:
                raise AssertionError(
                    f"{method} {path} ({len(content or b'')} bytes): the connection was reset and no answer "
                    f"could be read ({error!r}); the server closed without reading the request"
                ) from error
            status, response_headers = response.status, {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        text = data.decode(errors="replace")
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return Reply(status, parsed, text, response_headers)

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Reply:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw) -> Reply:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw) -> Reply:
        return self.request("DELETE", path, **kw)

    # -- the usual calls, asserting success --------------------------------------------

    def register(self, subject: str, schema: str | dict, schema_type: str | None = None, references=None, **extra) -> int:
        """POST /subjects/{subject}/versions; returns the id (fails on anything but 200)."""
        reply = self.post(f"/subjects/{subject}/versions", schema_body(schema, schema_type, references, **extra))
        assert reply.status == 200, f"registering under {subject}: {reply.describe()}"
        assert isinstance(reply.body, dict) and isinstance(reply.body.get("id"), int), reply.describe()
        return reply.body["id"]

    def ok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        """The JSON body of a request that must answer 200."""
        reply = self.request(method, path, body, **kw)
        assert reply.status == 200, f"{method} {path}: {reply.describe()}"
        return reply.body


def schema_body(schema: str | dict, schema_type: str | None = None, references=None, **extra) -> dict:
    """A RegisterSchemaRequest: `schema` as a string (dicts are dumped compactly)."""
    text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
    body: dict = {"schema": text}
    if schema_type is not None:
        body["schemaType"] = schema_type
    if references is not None:
        body["references"] = references
    body.update(extra)
    return body


def assert_error(reply: Reply, status: int, error_codes: int | tuple[int, ...], what: str = "") -> None:
    """The reply is an error with this HTTP status and one of these Confluent error codes, in
    Confluent's body shape {"error_code": N, "message": "..."}."""
    codes = (error_codes,) if isinstance(error_codes, int) else tuple(error_codes)
    prefix = f"{what}: " if what else ""
    assert reply.status == status, f"{prefix}expected HTTP {status} {codes}, got {reply.describe()}"
    assert isinstance(reply.body, dict), f"{prefix}error body is not a JSON object: {reply.describe()}"
    assert reply.body.get("error_code") in codes, f"{prefix}expected error_code in {codes}, got {reply.describe()}"
    assert isinstance(reply.body.get("message"), str) and reply.body["message"], f"{prefix}no message: {reply.describe()}"


# Confluent answers an incompatible schema with HTTP 409; its error_code was 409 in the
# versions its API reference documents and is 40901 in current source (Errors.java).
INCOMPATIBLE_CODES = (409, 40901)


def wait_for_registry(url: str, timeout_s: float = 30.0) -> None:
    """Until the registry's port accepts connections (it may open after the Kafka port the
    harness waits for). Only a TCP connect: no HTTP request is made, so a test can still do
    something before the registry's first request."""
    parsed = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    while not port_accepts(parsed.hostname, parsed.port):
        if time.monotonic() > deadline:
            raise AssertionError(f"schema registry at {url} did not accept connections within {timeout_s} s")
        time.sleep(0.05)


def sr_client(url: str):
    """confluent-kafka's SchemaRegistryClient for one registry URL (no caching between tests)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": url})


# -- wire format ------------------------------------------------------------------------


def framed(schema_id: int, payload: bytes = b"") -> bytes:
    """Confluent's wire format: magic byte 0, the schema id as 4 big-endian bytes, the payload."""
    return b"\x00" + struct.pack(">I", schema_id) + payload


def schema_id_of(message_value: bytes) -> int:
    assert message_value[:1] == b"\x00", f"no magic byte 0: {message_value[:8]!r}"
    return struct.unpack(">I", message_value[1:5])[0]


# -- schemas ----------------------------------------------------------------------------


def avro_record(name: str, fields: list[dict], namespace: str = "e2e") -> dict:
    return {"type": "record", "name": name, "namespace": namespace, "fields": fields}


def compact(schema: dict) -> str:
    return json.dumps(schema, separators=(",", ":"))


PROTO_TYPES = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
}


def proto_message_class(file_name: str, package: str, message: str, fields: list[tuple[str, int, str]]):
    """A generated-message class for `message` with `fields` [(name, number, type)], built from
    a FileDescriptorProto in its own DescriptorPool (so two versions of one file can coexist)."""
    file_proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    msg = file_proto.message_type.add(name=message)
    for name, number, type_name in fields:
        msg.field.add(
            name=name,
            number=number,
            type=PROTO_TYPES[type_name],
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            json_name=name,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return GetMessageClass(pool.FindMessageTypeByName(f"{package}.{message}"))


def proto_text(package: str, message: str, fields: list[tuple[str, int, str]]) -> str:
    """The same message as .proto source text."""
    lines = ['syntax = "proto3";', f"package {package};", "", f"message {message} {{"]
    lines += [f"  {type_name} {name} = {number};" for name, number, type_name in fields]
    return "\n".join(lines + ["}", ""])
