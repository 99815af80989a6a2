"""AlterConfigs v0 and IncrementalAlterConfigs v0 as raw requests, for what the clients will not
send: BROKER_LOGGER in the legacy API, operations Kafka refuses for loggers, a resource named
twice; and over a connection already open (`sock`), when the broker admits no new one."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from confluent_kafka import KafkaError

import raw_kafka as rk

ALTER_CONFIGS = 33
INCREMENTAL_ALTER_CONFIGS = 44


@dataclass
class Result:
    error: str | None
    message: str | None
    resource_type: int
    resource_name: str


def _array(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


def _text(value: str | None) -> bytes:
    return rk.string(None if value is None else value.encode())


def incremental_alter(bootstrap: str, resources: list[tuple[int, str, list[tuple[str, int, str | None]]]],
                      validate_only: bool = False, sock=None) -> list[Result]:
    """resources: (type, name, [(config, operation, value)]); over `sock` when given."""
    body = _array([
        struct.pack(">b", kind) + _text(name)
        + _array([_text(config) + struct.pack(">b", op) + _text(value) for config, op, value in configs])
        for kind, name, configs in resources
    ]) + struct.pack(">?", validate_only)
    return _exchange(bootstrap, INCREMENTAL_ALTER_CONFIGS, body, sock)


def legacy_alter(bootstrap: str, resources: list[tuple[int, str, list[tuple[str, str | None]]]],
                 validate_only: bool = False) -> list[Result]:
    """resources: (type, name, [(config, value)])."""
    body = _array([
        struct.pack(">b", kind) + _text(name) + _array([_text(config) + _text(value) for config, value in configs])
        for kind, name, configs in resources
    ]) + struct.pack(">?", validate_only)
    return _exchange(bootstrap, ALTER_CONFIGS, body)


def _exchange(bootstrap: str, api_key: int, body: bytes, sock=None) -> list[Result]:
    own = sock is None
    sock = rk.connect(bootstrap) if own else sock
    try:
        sock.sendall(rk.request(api_key, 0, 7, body, flexible=False))
        payload = rk.read_response(sock, timeout_s=20)
    finally:
        if own:
            sock.close()
    assert payload is not None, "the broker closed the connection"
    # correlation id, throttle time, then the results.
    position = 8
    (count,) = struct.unpack_from(">i", payload, position)
    position += 4
    results = []
    for _ in range(count):
        (code,) = struct.unpack_from(">h", payload, position)
        message, position = rk.read_string(payload, position + 2)
        (kind,) = struct.unpack_from(">b", payload, position)
        name, position = rk.read_string(payload, position + 1)
        results.append(Result(
            None if code == 0 else KafkaError(code).name(),
            None if message is None else message.decode(),
            kind,
            name.decode(),
        ))
    return results


DESCRIBE_CONFIGS = 32


def describe(bootstrap: str, kind: int, name: str) -> dict[str, tuple[str | None, int]]:
    """DescribeConfigs v1 of one resource: {config: (value, source)}; raises on an error."""
    body = _array([struct.pack(">b", kind) + _text(name) + struct.pack(">i", -1)]) + struct.pack(">?", False)
    sock = rk.connect(bootstrap)
    try:
        sock.sendall(rk.request(DESCRIBE_CONFIGS, 1, 9, body, flexible=False))
        payload = rk.read_response(sock, timeout_s=20)
    finally:
        sock.close()
    assert payload is not None, "the broker closed the connection"
    position = 12  # correlation id, throttle time, one result
    (code,) = struct.unpack_from(">h", payload, position)
    message, position = rk.read_string(payload, position + 2)
    assert code == 0, (KafkaError(code).name(), message)
    _, position = rk.read_string(payload, position + 1)  # type, name
    (count,) = struct.unpack_from(">i", payload, position)
    position += 4
    configs = {}
    for _ in range(count):
        config, position = rk.read_string(payload, position)
        value, position = rk.read_string(payload, position)
        (_, source, _) = struct.unpack_from(">?b?", payload, position)
        position += 3
        (synonyms,) = struct.unpack_from(">i", payload, position)
        position += 4
        for _ in range(synonyms):
            _, position = rk.read_string(payload, position)
            _, position = rk.read_string(payload, position)
            position += 1
        configs[config.decode()] = (None if value is None else value.decode(), source)
    return configs
