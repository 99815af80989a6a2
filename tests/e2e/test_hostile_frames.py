"""Malformed and hostile frames on raw sockets must never take the broker down.

After each attack the broker process is still alive and a librdkafka producer and consumer on
fresh connections still work. Where Kafka's answer is precise (a frame larger than
socket.request.max.bytes closes the connection; ApiVersions at an unsupported version gets an
ApiVersions v0 response with UNSUPPORTED_VERSION and the supported ranges), the test asserts it.
"""

from __future__ import annotations

import random
import struct
import time

import pytest

import raw_kafka as rk
from kafka_helpers import create_topic, round_trip


def assert_healthy(broker):
    broker.assert_running()
    round_trip(broker.bootstrap)
    broker.assert_running()


def supported_versions(broker) -> dict:
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        payload = rk.read_response(sock)
    assert payload is not None, "ApiVersions v0 got no answer"
    return rk.parse_api_versions_response(payload, 0)["api_keys"]


# -- (a) truncated frames ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00",  # half a length prefix
        struct.pack(">i", 100) + b"\x00\x03\x00\x01",  # a promised 100 bytes, 4 sent
        struct.pack(">i", 30) + rk.request_header(rk.METADATA, 1, 7, flexible=False),  # header, no body
    ],
    ids=["half-prefix", "short-body", "header-only"],
)
def test_truncated_frame_then_close(broker, data):
    for _ in range(3):
        with rk.connect(broker.bootstrap) as sock:
            sock.sendall(data)
    assert_healthy(broker)


def test_truncated_frame_left_open_does_not_block_others(broker):
    """A connection stalled in the middle of a frame holds up nobody else."""
    with rk.connect(broker.bootstrap) as stalled:
        stalled.sendall(struct.pack(">i", 1000) + b"\x00\x12")
        assert_healthy(broker)


# -- (b) absurd length prefixes ---------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0xFFFFFFFB, 100 * 1024 * 1024 + 1, 0],
    ids=["2^31-1", "minus-1", "minus-2^31", "minus-5", "100MiB+1", "zero"],
)
def test_bad_length_prefix_closes_connection(broker, size):
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(struct.pack(">I", size) + b"\x00\x12\x00\x00")
        # Kafka rejects a size that is negative or above socket.request.max.bytes (100 MiB by
        # default) at once and closes; it does not wait for (or allocate) the promised bytes.
        # A zero-length frame has no header to answer.
        assert rk.wait_closed(sock, 5.0), f"connection still open 5 s after a frame of size {size:#x}"
    assert_healthy(broker)


def test_socket_request_max_bytes(start_broker):
    b = start_broker(settings={"socket.request.max.bytes": 4096})
    with rk.connect(b.bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=5))
        assert rk.read_response(sock) is not None, "a small request must still be answered"
        sock.sendall(struct.pack(">i", 4097) + b"\x00" * 16)
        assert rk.wait_closed(sock, 5.0), "a frame above socket.request.max.bytes must close the connection"
    assert_healthy(b)


# -- (c) huge array counts and lengths --------------------------------------------------

NO_TAGS = b"\x00"
HUGE_UVARINT = rk.uvarint(0xFFFFFFFF)

HUGE_COUNT_REQUESTS = {
    # Metadata v1: topics array of 2^31-1 entries, and nothing after.
    "metadata-v1-array": (3, 1, struct.pack(">i", 0x7FFFFFFF)),
    # Metadata v9 (flexible): compact array count 0xffffffff - 1.
    "metadata-v9-compact-array": (3, 9, HUGE_UVARINT),
    "metadata-v9-compact-array-2^31": (3, 9, rk.uvarint(0x80000000)),
    "metadata-v12-compact-array": (3, 12, HUGE_UVARINT),
    # Metadata v1: one topic whose name claims 32767 bytes.
    "metadata-v1-long-name": (3, 1, struct.pack(">ih", 1, 0x7FFF) + b"abc"),
    # ApiVersions v3: client software name claims 4 GiB.
    "api-versions-v3-long-string": (18, 3, HUGE_UVARINT),
    # Produce v3: null transactional id, acks -1, timeout, topics array of 2^31-1.
    "produce-v3-array": (0, 3, struct.pack(">hhii", -1, -1, 1000, 0x7FFFFFFF)),
    # Produce v3: one topic, one partition, records claiming 2^31-1 bytes.
    "produce-v3-records": (
        0, 3,
        struct.pack(">hhii", -1, -1, 1000, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">iii", 1, 0, 0x7FFFFFFF),
    ),
    # Produce v9 (flexible): topics compact array huge.
    "produce-v9-compact-array": (0, 9, b"\x00" + struct.pack(">hi", -1, 1000) + HUGE_UVARINT),
    # Fetch v4: replica id, max wait, min bytes, max bytes, isolation, topics array huge.
    "fetch-v4-array": (1, 4, struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">i", 0x7FFFFFFF)),
    "fetch-v12-compact-array": (
        1, 12, struct.pack(">iiiibii", -1, 100, 1, 1 << 20, 0, 0, -1) + HUGE_UVARINT,
    ),
    # ListOffsets v1: replica id, topics array huge.
    "list-offsets-v1-array": (2, 1, struct.pack(">ii", -1, 0x7FFFFFFF)),
    # CreateTopics v5 (flexible): topics compact array huge.
    "create-topics-v5-compact-array": (19, 5, HUGE_UVARINT),
    "delete-topics-v4-compact-array": (20, 4, HUGE_UVARINT),
    "describe-configs-v4-compact-array": (32, 4, HUGE_UVARINT),
}


@pytest.mark.parametrize("name", list(HUGE_COUNT_REQUESTS))
def test_huge_counts_in_body(broker, name):
    api_key, version, body = HUGE_COUNT_REQUESTS[name]
    flexible = rk.is_flexible(api_key, version)
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(rk.request(api_key, version, 42, body, flexible))
        result = rk.outcome(sock, 5.0)
    # Kafka closes the connection on such a request; an error response is acceptable too.
    # Silence (a request neither answered nor refused) is not.
    assert result in ("closed", "answered"), f"{name}: broker neither answered nor closed within 5 s"
    assert_healthy(broker)


def test_huge_tagged_field_count_in_header(broker):
    header = rk.request_header(rk.METADATA, 9, 43, flexible=False) + HUGE_UVARINT
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(rk.frame(header + b"\x01" + NO_TAGS))
        assert rk.outcome(sock, 5.0) in ("closed", "answered")
    assert_healthy(broker)


# -- (d) unknown api key, (e) unsupported versions --------------------------------------


@pytest.mark.parametrize("api_key", [9999, -1, 32767, 1000])
def test_unknown_api_key(broker, api_key):
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(rk.request(api_key, 0, 44, b"\x00" * 8, flexible=False))
        assert rk.outcome(sock, 5.0) in ("closed", "answered")
    assert_healthy(broker)


def test_unsupported_metadata_version(broker):
    versions = supported_versions(broker)
    assert rk.METADATA in versions
    too_new = versions[rk.METADATA][1] + 1
    for version in (too_new, 99, 32767, -1):
        with rk.connect(broker.bootstrap) as sock:
            sock.sendall(rk.request(rk.METADATA, version, 45, b"\x00\x00\x00\x00", flexible=False))
            assert rk.outcome(sock, 5.0) in ("closed", "answered"), f"Metadata v{version}"
    assert_healthy(broker)


@pytest.mark.parametrize("version", [99, 127, 32767])
def test_api_versions_unsupported_version_answers_v0(broker, version):
    """KIP-511: ApiVersions at a version the broker does not know gets an ApiVersions v0
    response with error UNSUPPORTED_VERSION and the supported ranges, so the client can retry."""
    with rk.connect(broker.bootstrap) as sock:
        # A client that new would send header v2 and a flexible body.
        body = rk.uvarint(4) + b"e2e" + rk.uvarint(2) + b"1" + NO_TAGS
        sock.sendall(rk.request(rk.API_VERSIONS, version, 77, body, flexible=True))
        payload = rk.read_response(sock, 5.0)
        assert payload is not None, "connection closed instead of an UNSUPPORTED_VERSION answer"
        response = rk.parse_api_versions_response(payload, 0)
        assert response["correlation_id"] == 77
        assert response["error_code"] == rk.UNSUPPORTED_VERSION
        keys = response["api_keys"]
        assert rk.API_VERSIONS in keys and keys[rk.API_VERSIONS][0] == 0 and keys[rk.API_VERSIONS][1] >= 3
        for api_key in (0, 1, 2, 3, 19, 20, 32, 60):  # the APIs the broker implements
            assert api_key in keys, f"api key {api_key} missing from {sorted(keys)}"
            low, high = keys[api_key]
            assert 0 <= low <= high, (api_key, low, high)
        # The connection stays usable: the client now retries with a version it knows.
        sock.sendall(rk.api_versions_request(3, correlation_id=78))
        payload = rk.read_response(sock, 5.0)
        assert payload is not None
        retry = rk.parse_api_versions_response(payload, 3)
        assert (retry["correlation_id"], retry["error_code"]) == (78, 0)
        assert retry["api_keys"] == keys
    assert_healthy(broker)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_api_versions_each_version(broker, version):
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(rk.api_versions_request(version, correlation_id=100 + version))
        payload = rk.read_response(sock, 5.0)
    assert payload is not None
    response = rk.parse_api_versions_response(payload, version)
    assert (response["correlation_id"], response["error_code"]) == (100 + version, 0)
    assert response["api_keys"][rk.API_VERSIONS][1] >= 3


def test_pipelined_requests_answered_in_order(broker):
    count = 50
    with rk.connect(broker.bootstrap) as sock:
        sock.sendall(b"".join(rk.api_versions_request(i % 4, correlation_id=1000 + i) for i in range(count)))
        for i in range(count):
            payload = rk.read_response(sock, 10.0)
            assert payload is not None, f"closed after {i} responses"
            response = rk.parse_api_versions_response(payload, i % 4)
            assert response["correlation_id"] == 1000 + i, f"response {i} out of order"


def test_a_ready_answer_is_not_held_behind_a_long_poll(broker):
    """Answers keep request order, but one that is ready leaves at once even when the request
    after it is a fetch that waits out its max_wait_ms."""
    topic = "held-behind-long-poll"
    create_topic(broker.bootstrap, topic)
    name = topic.encode()
    # Fetch v4: replica -1, max_wait 5000 ms, min_bytes 1, max_bytes, read_uncommitted; one
    # topic with partition 0 from offset 0 (the empty log's end: the fetch waits).
    fetch = struct.pack(">iiiib", -1, 5000, 1, 1 << 20, 0)
    fetch += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    with rk.connect(broker.bootstrap) as sock:
        started = time.monotonic()
        sock.sendall(rk.api_versions_request(3, correlation_id=1) + rk.request(1, 4, 2, fetch, flexible=False))
        first = rk.read_response(sock, 10.0)
        first_after = time.monotonic() - started
        second = rk.read_response(sock, 10.0)
        second_after = time.monotonic() - started
    assert first is not None and rk.parse_api_versions_response(first, 3)["correlation_id"] == 1
    assert first_after < 2.5, f"the ApiVersions answer waited {first_after:.1f} s behind the fetch"
    assert second is not None and struct.unpack(">i", second[:4])[0] == 2
    assert second_after > 4.0, f"the fetch answered after {second_after:.1f} s, before its max wait"


def test_request_sent_one_byte_at_a_time(broker):
    data = rk.api_versions_request(3, correlation_id=9)
    with rk.connect(broker.bootstrap) as sock:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(0.002)
        payload = rk.read_response(sock, 5.0)
    assert payload is not None
    assert rk.parse_api_versions_response(payload, 3)["correlation_id"] == 9


# -- (f) random bytes -------------------------------------------------------------------


def random_frames(rng: random.Random, versions: dict, count: int) -> list[bytes]:
    frames = []
    known = sorted(versions.items())
    for _ in range(count):
        kind = rng.random()
        if kind < 0.2:
            # Raw noise, length prefix included.
            frames.append(rng.randbytes(rng.randint(1, 64)))
        elif kind < 0.4:
            # A plausible length, then noise.
            frames.append(rk.frame(rng.randbytes(rng.randint(0, 300))))
        else:
            # A real API at a supported version with a random body: every decoder gets noise.
            api_key, (low, high) = rng.choice(known)
            version = rng.randint(low, high)
            body = rng.randbytes(rng.randint(0, 200))
            if rng.random() < 0.5:
                # Mostly small counts and lengths, so decoding goes deeper before failing.
                body = bytes(b if rng.random() < 0.7 else rng.choice([0, 1, 2, 0xFF]) for b in body)
            frames.append(rk.request(api_key, version, rng.randint(0, 1 << 30), body, rk.is_flexible(api_key, version)))
    return frames


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_frames(broker, seed):
    rng = random.Random(seed)
    versions = supported_versions(broker)
    connections = 5
    frames = random_frames(rng, versions, 100)
    per_connection = len(frames) // connections
    sockets = [rk.connect(broker.bootstrap) for _ in range(connections)]
    try:
        for i, frame in enumerate(frames):
            rk.send_quietly(sockets[(i // per_connection) % connections], frame)
        # Whatever each connection does with its noise, it must end (answer or close) or idle;
        # the broker must not be stuck or gone.
        for sock in sockets:
            rk.outcome(sock, 0.5)
    finally:
        for sock in sockets:
            sock.close()
    assert_healthy(broker)

    # One frame per connection, each connection closed right after its frame.
    for frame in random_frames(rng, versions, 100):
        with rk.connect(broker.bootstrap) as sock:
            rk.send_quietly(sock, frame)
    assert_healthy(broker)
