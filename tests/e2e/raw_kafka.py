"""Just enough of the Kafka wire protocol to hand-craft requests, good and bad, on a raw socket.

A frame is a 4-byte big-endian size, then the request header
(api_key i16, api_version i16, correlation_id i32, client_id nullable string i16-length,
then, in header v2 for flexible versions, tagged fields as an unsigned varint count), then
the body. Responses are a 4-byte size, the correlation id, (tagged fields for flexible
response headers), then the body.
"""

from __future__ import annotations

import socket
import struct
import time

PRODUCE = 0
API_VERSIONS = 18
METADATA = 3
INIT_PRODUCER_ID = 22
DESCRIBE_PRODUCERS = 61
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
DESCRIBE_USER_SCRAM_CREDENTIALS = 50
DESCRIBE_ACLS = 29
DELETE_RECORDS = 21
DESCRIBE_LOG_DIRS = 35
OFFSET_COMMIT = 8
LEAVE_GROUP = 13
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
OFFSET_DELETE = 47
CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
NOT_COORDINATOR = 16
UNSUPPORTED_VERSION = 35
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
CLUSTER_AUTHORIZATION_FAILED = 31
SASL_AUTHENTICATION_FAILED = 58


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def string(value: bytes | None) -> bytes:
    """A (nullable) string of a non-flexible version: i16 length (-1 for null), then the bytes."""
    return struct.pack(">h", -1) if value is None else struct.pack(">h", len(value)) + value


def bytes_field(value: bytes | None) -> bytes:
    """(Nullable) bytes of a non-flexible version: i32 length (-1 for null), then the bytes."""
    return struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value


def read_bytes_field(data: bytes, position: int) -> tuple[bytes | None, int]:
    (length,) = struct.unpack_from(">i", data, position)
    position += 4
    if length < 0:
        return None, position
    return data[position : position + length], position + length


def read_string(data: bytes, position: int) -> tuple[bytes | None, int]:
    (length,) = struct.unpack_from(">h", data, position)
    position += 2
    if length < 0:
        return None, position
    return data[position : position + length], position + length


def compact_string(value: bytes | None) -> bytes:
    """A compact (nullable) string or bytes of a flexible version: unsigned varint length + 1
    (0 for null), then the bytes. Its length is not bounded by 32767 the way a plain string's is."""
    return uvarint(0) if value is None else uvarint(len(value) + 1) + value


def compact_array(items: list[bytes]) -> bytes:
    """A compact array of already encoded items: unsigned varint count + 1, then the items."""
    return uvarint(len(items) + 1) + b"".join(items)


def request_header(api_key: int, api_version: int, correlation_id: int, flexible: bool,
                   client_id: bytes | None = b"strom-e2e") -> bytes:
    header = struct.pack(">hhi", api_key, api_version, correlation_id)
    header += struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    return header


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(api_key: int, api_version: int, correlation_id: int, body: bytes, flexible: bool) -> bytes:
    return frame(request_header(api_key, api_version, correlation_id, flexible) + body)


def api_versions_request(version: int, correlation_id: int) -> bytes:
    if version >= 3:
        body = uvarint(len(b"strom-e2e") + 1) + b"strom-e2e" + uvarint(len(b"1.0") + 1) + b"1.0" + b"\x00"
        return request(API_VERSIONS, version, correlation_id, body, flexible=True)
    return request(API_VERSIONS, version, correlation_id, b"", flexible=False)


def connect(bootstrap: str, timeout_s: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Sends; False if the broker already closed the connection (which it may do)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(count - len(data))
        except socket.timeout as error:
            raise TimeoutError from error
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_response(sock: socket.socket, timeout_s: float = 5.0) -> bytes | None:
    """One response frame's payload, None if the broker closed the connection; raises
    TimeoutError if neither happens within timeout_s."""
    deadline = time.monotonic() + timeout_s
    size_bytes = _recv_exactly(sock, 4, deadline)
    if size_bytes is None:
        return None
    (size,) = struct.unpack(">i", size_bytes)
    assert 0 <= size <= 100 * 1024 * 1024, f"response size {size}"
    return _recv_exactly(sock, size, deadline)


def outcome(sock: socket.socket, timeout_s: float = 5.0) -> str:
    """'closed' or 'answered' (a whole response frame arrived) or 'silent' (neither, in time)."""
    try:
        return "closed" if read_response(sock, timeout_s) is None else "answered"
    except TimeoutError:
        return "silent"


def wait_closed(sock: socket.socket, timeout_s: float = 5.0) -> bool:
    """True once the broker has closed the connection (reads EOF or reset), draining anything
    it sent first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def parse_api_versions_response(payload: bytes, version: int) -> dict:
    """{correlation_id, error_code, api_keys: {key: (min, max)}} of an ApiVersions response
    (its header is always v0: no tagged fields, even for flexible versions)."""
    correlation_id, error_code = struct.unpack_from(">ih", payload, 0)
    position = 6
    api_keys = {}
    if version >= 3:
        count, position = read_uvarint(payload, position)
        count -= 1
    else:
        (count,) = struct.unpack_from(">i", payload, position)
        position += 4
    for _ in range(count):
        key, min_version, max_version = struct.unpack_from(">hhh", payload, position)
        position += 6
        if version >= 3:
            tagged, position = read_uvarint(payload, position)
            assert tagged == 0
        api_keys[key] = (min_version, max_version)
    return {"correlation_id": correlation_id, "error_code": error_code, "api_keys": api_keys}


# The first flexible (tagged-fields, compact encodings) version of each API, from Kafka's
# message specs; a request at or above it uses request header v2.
FIRST_FLEXIBLE_VERSION = {
    0: 9, 1: 12, 2: 6, 3: 9, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4, 13: 4, 14: 4, 15: 5, 16: 3,
    18: 3, 19: 5, 20: 4, 21: 2, 22: 2, 23: 4, 24: 3, 25: 3, 26: 3, 27: 1, 28: 3, 29: 2,
    30: 2, 31: 2, 32: 4, 33: 2, 34: 2, 35: 2, 36: 2, 37: 2, 42: 2, 43: 2, 44: 1,
    48: 1, 49: 1, 50: 0, 51: 0, 60: 0, 61: 0, 65: 0, 66: 0, 67: 0, 68: 0,
}


def is_flexible(api_key: int, api_version: int) -> bool:
    first = FIRST_FLEXIBLE_VERSION.get(api_key)
    return first is not None and api_version >= first


def skip_tagged_fields(data: bytes, position: int) -> int:
    count, position = read_uvarint(data, position)
    for _ in range(count):
        _, position = read_uvarint(data, position)
        size, position = read_uvarint(data, position)
        position += size
    return position


def produce_request(
    version: int,
    correlation_id: int,
    topic: str,
    partition: int,
    records: bytes,
    acks: int = -1,
    timeout_ms: int = 10_000,
) -> bytes:
    """A Produce request (v3..v8, the non-flexible versions with record batches v2) of one
    partition's records."""
    assert 3 <= version <= 8, version
    body = string(None)  # transactional id
    body += struct.pack(">hi", acks, timeout_ms)
    body += struct.pack(">i", 1) + string(topic.encode())
    body += struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(records)) + records
    return request(PRODUCE, version, correlation_id, body, flexible=False)


def parse_produce_response(payload: bytes, version: int) -> dict:
    """{correlation_id, partitions: [{topic, partition, error_code, base_offset,
    log_append_time_ms, log_start_offset, error_message}]} of a Produce v3..v8 response."""
    assert 3 <= version <= 8, version
    (correlation_id,) = struct.unpack_from(">i", payload, 0)
    position = 4
    partitions = []
    (topics,) = struct.unpack_from(">i", payload, position)
    position += 4
    for _ in range(topics):
        name, position = read_string(payload, position)
        (count,) = struct.unpack_from(">i", payload, position)
        position += 4
        for _ in range(count):
            index, error_code, base_offset, log_append_time_ms = struct.unpack_from(">ihqq", payload, position)
            position += 22
            log_start_offset = -1
            if version >= 5:
                (log_start_offset,) = struct.unpack_from(">q", payload, position)
                position += 8
            error_message = None
            if version >= 8:
                (record_errors,) = struct.unpack_from(">i", payload, position)
                position += 4
                for _ in range(max(record_errors, 0)):
                    position += 4  # batch index
                    _, position = read_string(payload, position)
                error_message, position = read_string(payload, position)
            partitions.append({
                "topic": name.decode(),
                "partition": index,
                "error_code": error_code,
                "base_offset": base_offset,
                "log_append_time_ms": log_append_time_ms,
                "log_start_offset": log_start_offset,
                "error_message": None if error_message is None else error_message.decode(errors="replace"),
            })
    position += 4  # throttle time
    assert position == len(payload), f"{len(payload) - position} bytes left over in a Produce v{version} response"
    return {"correlation_id": correlation_id, "partitions": partitions}


def init_producer_id_request(
    version: int,
    correlation_id: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
    transaction_timeout_ms: int = 60_000,
) -> bytes:
    """An InitProducerId request (v0..v4) without a transactional id; from v3 it may name the
    producer's current id and epoch, to be given the next epoch."""
    assert 0 <= version <= 4, version
    flexible = is_flexible(INIT_PRODUCER_ID, version)
    body = compact_string(None) if flexible else string(None)
    body += struct.pack(">i", transaction_timeout_ms)
    if version >= 3:
        body += struct.pack(">qh", producer_id, producer_epoch)
    if flexible:
        body += b"\x00"
    return request(INIT_PRODUCER_ID, version, correlation_id, body, flexible)


def parse_init_producer_id_response(payload: bytes, version: int) -> dict:
    """{correlation_id, error_code, producer_id, producer_epoch} of an InitProducerId response."""
    flexible = is_flexible(INIT_PRODUCER_ID, version)
    (correlation_id,) = struct.unpack_from(">i", payload, 0)
    position = skip_tagged_fields(payload, 4) if flexible else 4
    _, error_code, producer_id, producer_epoch = struct.unpack_from(">ihqh", payload, position)
    position += 16
    if flexible:
        position = skip_tagged_fields(payload, position)
    assert position == len(payload), f"{len(payload) - position} bytes left over in an InitProducerId v{version} response"
    return {
        "correlation_id": correlation_id,
        "error_code": error_code,
        "producer_id": producer_id,
        "producer_epoch": producer_epoch,
    }


def read_compact_string(data: bytes, position: int) -> tuple[bytes | None, int]:
    length, position = read_uvarint(data, position)
    if length == 0:
        return None, position
    return data[position : position + length - 1], position + length - 1


def describe_producers_request(correlation_id: int, topic: str, partitions: list[int]) -> bytes:
    """A DescribeProducers v0 request (flexible) for some partitions of one topic."""
    indexes = compact_array([struct.pack(">i", partition) for partition in partitions])
    body = compact_array([compact_string(topic.encode()) + indexes + b"\x00"]) + b"\x00"
    return request(DESCRIBE_PRODUCERS, 0, correlation_id, body, flexible=True)


def parse_describe_producers_response(payload: bytes) -> dict:
    """{partition: {"error_code", "producers": [{producer_id, producer_epoch, last_sequence,
    current_txn_start_offset}]}} of a DescribeProducers v0 response (one topic)."""
    position = skip_tagged_fields(payload, 4)  # correlation id, then the header's tags
    position += 4  # throttle time
    partitions = {}
    topics, position = read_uvarint(payload, position)
    for _ in range(topics - 1):
        _, position = read_compact_string(payload, position)
        count, position = read_uvarint(payload, position)
        for _ in range(count - 1):
            index, error_code = struct.unpack_from(">ih", payload, position)
            position += 6
            _, position = read_compact_string(payload, position)
            producers = []
            active, position = read_uvarint(payload, position)
            for _ in range(active - 1):
                producer_id, epoch, last_sequence, _, _, txn_start = struct.unpack_from(">qiiqiq", payload, position)
                position = skip_tagged_fields(payload, position + 36)
                producers.append({
                    "producer_id": producer_id,
                    "producer_epoch": epoch,
                    "last_sequence": last_sequence,
                    "current_txn_start_offset": txn_start,
                })
            position = skip_tagged_fields(payload, position)
            partitions[index] = {"error_code": error_code, "producers": producers}
        position = skip_tagged_fields(payload, position)
    position = skip_tagged_fields(payload, position)
    assert position == len(payload), f"{len(payload) - position} bytes left over in a DescribeProducers response"
    return partitions


# -- SASL (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate, KIP-368 session lifetime) -------


def sasl_handshake_request(version: int, correlation_id: int, mechanism: str) -> bytes:
    """A SaslHandshake request (v0 or v1; never flexible) naming one mechanism. After v0 the
    client sends bare SASL tokens (a 4-byte length and the token, no Kafka header); after v1 it
    wraps each in a SaslAuthenticate request."""
    assert version in (0, 1), version
    return request(SASL_HANDSHAKE, version, correlation_id, string(mechanism.encode()), flexible=False)


def parse_sasl_handshake_response(payload: bytes) -> dict:
    """{correlation_id, error_code, mechanisms} of a SaslHandshake v0/v1 response (mechanisms
    are the enabled ones, which the broker lists whatever the error)."""
    correlation_id, error_code = struct.unpack_from(">ih", payload, 0)
    (count,) = struct.unpack_from(">i", payload, 6)
    position = 10
    mechanisms = []
    for _ in range(max(count, 0)):
        name, position = read_string(payload, position)
        mechanisms.append(name.decode())
    assert position == len(payload), f"{len(payload) - position} bytes left over in a SaslHandshake response"
    return {"correlation_id": correlation_id, "error_code": error_code, "mechanisms": mechanisms}


def sasl_authenticate_request(version: int, correlation_id: int, auth_bytes: bytes) -> bytes:
    """A SaslAuthenticate request (v0..v2; v2 is flexible) carrying one SASL token."""
    assert 0 <= version <= 2, version
    flexible = is_flexible(SASL_AUTHENTICATE, version)
    body = (compact_string(auth_bytes) + b"\x00") if flexible else bytes_field(auth_bytes)
    return request(SASL_AUTHENTICATE, version, correlation_id, body, flexible)


def parse_sasl_authenticate_response(payload: bytes, version: int) -> dict:
    """{correlation_id, error_code, error_message, auth_bytes, session_lifetime_ms} of a
    SaslAuthenticate response (session_lifetime_ms from v1: 0 when the broker does not expire
    sessions, i.e. no connections.max.reauth.ms)."""
    flexible = is_flexible(SASL_AUTHENTICATE, version)
    (correlation_id,) = struct.unpack_from(">i", payload, 0)
    position = skip_tagged_fields(payload, 4) if flexible else 4
    (error_code,) = struct.unpack_from(">h", payload, position)
    position += 2
    if flexible:
        message, position = read_compact_string(payload, position)
        auth_bytes, position = read_compact_string(payload, position)
    else:
        message, position = read_string(payload, position)
        auth_bytes, position = read_bytes_field(payload, position)
    session_lifetime_ms = 0
    if version >= 1:
        (session_lifetime_ms,) = struct.unpack_from(">q", payload, position)
        position += 8
    if flexible:
        position = skip_tagged_fields(payload, position)
    assert position == len(payload), f"{len(payload) - position} bytes left over in a SaslAuthenticate v{version} response"
    return {
        "correlation_id": correlation_id,
        "error_code": error_code,
        "error_message": None if message is None else message.decode(errors="replace"),
        "auth_bytes": auth_bytes or b"",
        "session_lifetime_ms": session_lifetime_ms,
    }


def metadata_request(correlation_id: int, topics: list[str] | None = None) -> bytes:
    """A Metadata v1 request (non-flexible): the named topics, or every topic when None."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(string(t.encode()) for t in topics)
    return request(METADATA, 1, correlation_id, body, flexible=False)


def describe_user_scram_credentials_request(correlation_id: int, users: list[str] | None = None) -> bytes:
    """A DescribeUserScramCredentials v0 request (flexible): the named users, or all (None)."""
    if users is None:
        body = uvarint(0)
    else:
        body = compact_array([compact_string(user.encode()) + b"\x00" for user in users])
    return request(DESCRIBE_USER_SCRAM_CREDENTIALS, 0, correlation_id, body + b"\x00", flexible=True)


def parse_describe_user_scram_credentials_error(payload: bytes) -> int:
    """The top-level error code of a DescribeUserScramCredentials v0 response."""
    position = skip_tagged_fields(payload, 4)  # correlation id, then the header's tags
    (error_code,) = struct.unpack_from(">h", payload, position + 4)  # after the throttle time
    return error_code


def describe_acls_request(correlation_id: int) -> bytes:
    """A DescribeAcls v1 request (non-flexible) whose filter matches every ACL: resource type,
    pattern type, operation and permission ANY (1), names, principal and host null."""
    body = struct.pack(">b", 1) + string(None) + struct.pack(">b", 1) + string(None) + string(None)
    return request(DESCRIBE_ACLS, 1, correlation_id, body + struct.pack(">bb", 1, 1), flexible=False)


def parse_describe_acls_error(payload: bytes) -> int:
    """The error code of a DescribeAcls v1 response (after the correlation id and throttle time)."""
    (error_code,) = struct.unpack_from(">h", payload, 8)
    return error_code


def describe_log_dirs_request(version: int, correlation_id: int) -> bytes:
    """A DescribeLogDirs request for every partition (topics null): v1 (non-flexible) or v2-4
    (flexible)."""
    if version >= 2:
        return request(DESCRIBE_LOG_DIRS, version, correlation_id, uvarint(0) + b"\x00", flexible=True)
    return request(DESCRIBE_LOG_DIRS, version, correlation_id, struct.pack(">i", -1), flexible=False)


def parse_describe_log_dirs_response(payload: bytes, version: int) -> dict:
    """error_code (v3+; 0 before) and results: [{error_code, log_dir, topics: {name: {partition:
    (size, offset_lag, is_future)}}, total_bytes, usable_bytes}] (the byte counts -1 before v4)."""
    flexible = version >= 2
    position = skip_tagged_fields(payload, 4) if flexible else 4
    position += 4  # throttle time
    error_code = 0
    if version >= 3:
        (error_code,) = struct.unpack_from(">h", payload, position)
        position += 2

    def array_length(position: int) -> tuple[int, int]:
        if flexible:
            count, position = read_uvarint(payload, position)
            return count - 1, position
        (count,) = struct.unpack_from(">i", payload, position)
        return count, position + 4

    def text(position: int) -> tuple[str, int]:
        value, position = read_compact_string(payload, position) if flexible else read_string(payload, position)
        return value.decode(), position

    results = []
    count, position = array_length(position)
    for _ in range(count):
        (dir_error,) = struct.unpack_from(">h", payload, position)
        log_dir, position = text(position + 2)
        topics = {}
        topic_count, position = array_length(position)
        for _ in range(topic_count):
            name, position = text(position)
            partitions = {}
            partition_count, position = array_length(position)
            for _ in range(partition_count):
                index, size, lag, future = struct.unpack_from(">iqq?", payload, position)
                position += 4 + 8 + 8 + 1
                if flexible:
                    position = skip_tagged_fields(payload, position)
                partitions[index] = (size, lag, future)
            if flexible:
                position = skip_tagged_fields(payload, position)
            topics[name] = partitions
        total_bytes = usable_bytes = -1
        if version >= 4:
            total_bytes, usable_bytes = struct.unpack_from(">qq", payload, position)
            position += 16
        if flexible:
            position = skip_tagged_fields(payload, position)
        results.append({"error_code": dir_error, "log_dir": log_dir, "topics": topics,
                        "total_bytes": total_bytes, "usable_bytes": usable_bytes})
    return {"error_code": error_code, "results": results}
# -- the group APIs, at their oldest versions (enough to read the error codes) -------------------


def describe_groups_request(correlation_id: int, groups: list[str]) -> bytes:
    """A DescribeGroups v0 request (non-flexible)."""
    body = struct.pack(">i", len(groups)) + b"".join(string(g.encode()) for g in groups)
    return request(DESCRIBE_GROUPS, 0, correlation_id, body, flexible=False)


def parse_describe_groups_response(payload: bytes) -> dict[str, tuple[int, str]]:
    """{group id: (error code, state)} from a DescribeGroups v0 response."""
    (count,) = struct.unpack_from(">i", payload, 4)
    position = 8
    groups = {}
    for _ in range(count):
        (error_code,) = struct.unpack_from(">h", payload, position)
        group_id, position = read_string(payload, position + 2)
        state, position = read_string(payload, position)
        _protocol_type, position = read_string(payload, position)
        _protocol, position = read_string(payload, position)
        (members,) = struct.unpack_from(">i", payload, position)
        position += 4
        for _ in range(max(members, 0)):
            for _ in range(3):  # member id, client id, client host
                _, position = read_string(payload, position)
            for _ in range(2):  # metadata, assignment
                _, position = read_bytes_field(payload, position)
        groups[group_id.decode()] = (error_code, (state or b"").decode())
    return groups


def list_groups_request(correlation_id: int) -> bytes:
    """A ListGroups v0 request (non-flexible, no filters)."""
    return request(LIST_GROUPS, 0, correlation_id, b"", flexible=False)


def parse_list_groups_response(payload: bytes) -> tuple[int, list[str]]:
    """(error code, group ids) from a ListGroups v0 response."""
    error_code, count = struct.unpack_from(">hi", payload, 4)
    position = 10
    groups = []
    for _ in range(count):
        group_id, position = read_string(payload, position)
        _protocol_type, position = read_string(payload, position)
        groups.append(group_id.decode())
    return error_code, groups


def delete_groups_request(correlation_id: int, groups: list[str]) -> bytes:
    """A DeleteGroups v0 request (non-flexible)."""
    body = struct.pack(">i", len(groups)) + b"".join(string(g.encode()) for g in groups)
    return request(DELETE_GROUPS, 0, correlation_id, body, flexible=False)


def parse_delete_groups_response(payload: bytes) -> dict[str, int]:
    """{group id: error code} from a DeleteGroups v0 response (after the throttle time)."""
    (count,) = struct.unpack_from(">i", payload, 8)
    position = 12
    results = {}
    for _ in range(count):
        group_id, position = read_string(payload, position)
        (error_code,) = struct.unpack_from(">h", payload, position)
        position += 2
        results[group_id.decode()] = error_code
    return results


def offset_delete_request(correlation_id: int, group: str, topic: str, partitions: list[int]) -> bytes:
    """An OffsetDelete v0 request (non-flexible) for one topic's partitions."""
    topic_entry = string(topic.encode()) + struct.pack(">i", len(partitions))
    topic_entry += b"".join(struct.pack(">i", p) for p in partitions)
    body = string(group.encode()) + struct.pack(">i", 1) + topic_entry
    return request(OFFSET_DELETE, 0, correlation_id, body, flexible=False)


def parse_offset_delete_error(payload: bytes) -> int:
    """The top-level error code of an OffsetDelete v0 response."""
    (error_code,) = struct.unpack_from(">h", payload, 4)
    return error_code


def consumer_group_heartbeat_request(correlation_id: int, group: str, topics: list[str]) -> bytes:
    """A KIP-848 ConsumerGroupHeartbeat v0 (flexible): a new member (empty id, epoch 0) joining
    `group` subscribed to `topics`."""
    body = compact_string(group.encode()) + compact_string(b"") + struct.pack(">i", 0)
    body += uvarint(0) + uvarint(0)  # instance id, rack id: null
    body += struct.pack(">i", 30_000)  # rebalance timeout
    body += compact_array([compact_string(t.encode()) for t in topics])
    body += uvarint(0)  # server assignor: null
    body += compact_array([])  # owned partitions: none
    return request(CONSUMER_GROUP_HEARTBEAT, 0, correlation_id, body + b"\x00", flexible=True)


def parse_consumer_group_heartbeat_response(payload: bytes) -> tuple[int, str | None]:
    """(error code, error message) of a ConsumerGroupHeartbeat v0 response."""
    position = skip_tagged_fields(payload, 4) + 4  # header tags, then the throttle time
    (error_code,) = struct.unpack_from(">h", payload, position)
    message, _ = read_compact_string(payload, position + 2)
    return error_code, message.decode() if message is not None else None


def consumer_group_describe_request(correlation_id: int, groups: list[str]) -> bytes:
    """A KIP-848 ConsumerGroupDescribe v0 (flexible), without authorized operations."""
    body = compact_array([compact_string(g.encode()) for g in groups]) + b"\x00"
    return request(CONSUMER_GROUP_DESCRIBE, 0, correlation_id, body + b"\x00", flexible=True)


def parse_consumer_group_describe_first_error(payload: bytes) -> tuple[int, str]:
    """(error code, group id) of the first group in a ConsumerGroupDescribe v0 response."""
    position = skip_tagged_fields(payload, 4) + 4  # header tags, then the throttle time
    _count, position = read_uvarint(payload, position)
    (error_code,) = struct.unpack_from(">h", payload, position)
    _message, position = read_compact_string(payload, position + 2)
    group_id, _ = read_compact_string(payload, position)
    return error_code, group_id.decode()


def offset_commit_request(correlation_id: int, group: str, topic: str, partition: int, offset: int) -> bytes:
    """An OffsetCommit v2 request (non-flexible) of a simple consumer (generation -1, no member
    id) for one partition."""
    partition_entry = struct.pack(">iq", partition, offset) + string(b"")
    topic_entry = string(topic.encode()) + struct.pack(">i", 1) + partition_entry
    body = string(group.encode()) + struct.pack(">i", -1) + string(b"") + struct.pack(">q", -1)
    body += struct.pack(">i", 1) + topic_entry
    return request(OFFSET_COMMIT, 2, correlation_id, body, flexible=False)


def parse_offset_commit_response(payload: bytes) -> dict[tuple[str, int], int]:
    """{(topic, partition): error code} from an OffsetCommit v2 response."""
    (topics,) = struct.unpack_from(">i", payload, 4)
    position = 8
    results = {}
    for _ in range(topics):
        name, position = read_string(payload, position)
        (partitions,) = struct.unpack_from(">i", payload, position)
        position += 4
        for _ in range(partitions):
            index, error_code = struct.unpack_from(">ih", payload, position)
            position += 6
            results[(name.decode(), index)] = error_code
    return results


def leave_group_request(correlation_id: int, group: str, member_id: str) -> bytes:
    """A LeaveGroup v0 request (non-flexible)."""
    body = string(group.encode()) + string(member_id.encode())
    return request(LEAVE_GROUP, 0, correlation_id, body, flexible=False)


def parse_leave_group_error(payload: bytes) -> int:
    """The error code of a LeaveGroup v0 response."""
    (error_code,) = struct.unpack_from(">h", payload, 4)
    return error_code


def exchange(bootstrap: str, payload: bytes, timeout_s: float = 5.0) -> bytes:
    """Sends one request on a fresh connection and returns the response payload."""
    with connect(bootstrap, timeout_s) as sock:
        sock.sendall(payload)
        response = read_response(sock, timeout_s)
        assert response is not None, f"{bootstrap} closed the connection instead of answering"
        return response
