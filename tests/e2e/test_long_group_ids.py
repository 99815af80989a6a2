"""Group ids longer than a `__consumer_offsets` record can hold, on raw sockets.

Flexible request versions encode strings with a varint length, so a client can send a group id
of more than 32,767 bytes, the most a record's 16-bit string length holds. Kafka's generated
request readers refuse such a string while parsing (`string field groupId had invalid length`);
Strom's coordinator refuses it at each group API's entry with INVALID_GROUP_ID (24), before it
becomes a group or a record. The broker keeps serving afterwards, on the same connection too.
"""

from __future__ import annotations

import struct

import raw_kafka as rk
from group_helpers import admin
from kafka_helpers import create_topic, round_trip, unique

OFFSET_COMMIT = 8
JOIN_GROUP = 11
NONE = 0
INVALID_GROUP_ID = 24
NO_TAGS = b"\x00"
LONG_GROUP_ID = b"g" * 40_000
RECORD_STRING_BYTES_MAX = 32_767


class Reader:
    """Reads a flexible response body field by field."""

    def __init__(self, payload: bytes, position: int = 0):
        self.data, self.position = payload, position

    def unpack(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def uvarint(self) -> int:
        value, self.position = rk.read_uvarint(self.data, self.position)
        return value

    def compact_string(self) -> bytes | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        value = self.data[self.position:self.position + length]
        self.position += length
        return value

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.position += self.uvarint()


def flexible_response(payload: bytes, correlation_id: int) -> Reader:
    """A reader past a response header v1 (correlation id, tagged fields)."""
    reader = Reader(payload)
    assert reader.unpack(">i") == correlation_id
    reader.skip_tags()
    return reader


def offset_commit_v8(group_id: bytes, topic: bytes, partitions: list[int], correlation_id: int) -> bytes:
    """An admin-style OffsetCommit v8 (generation -1, no member): offset 5 for each partition."""
    partition_entries = [
        struct.pack(">iqi", index, 5, -1) + rk.compact_string(b"") + NO_TAGS for index in partitions
    ]
    topic_entry = rk.compact_string(topic) + rk.compact_array(partition_entries) + NO_TAGS
    body = (
        rk.compact_string(group_id)
        + struct.pack(">i", -1)  # generation id
        + rk.compact_string(b"")  # member id
        + rk.compact_string(None)  # group instance id
        + rk.compact_array([topic_entry])
        + NO_TAGS
    )
    return rk.request(OFFSET_COMMIT, 8, correlation_id, body, flexible=True)


def offset_commit_errors(payload: bytes, correlation_id: int) -> dict[tuple[bytes, int], int]:
    """{(topic, partition): error code} of an OffsetCommit v8 response."""
    reader = flexible_response(payload, correlation_id)
    reader.unpack(">i")  # throttle time
    errors = {}
    for _ in range(reader.uvarint() - 1):
        name = reader.compact_string()
        for _ in range(reader.uvarint() - 1):
            index, error = reader.unpack(">ih")
            reader.skip_tags()
            errors[(name, index)] = error
        reader.skip_tags()
    return errors


def join_group_v6(group_id: bytes, correlation_id: int) -> bytes:
    """A JoinGroup v6 (the first flexible version) of a new consumer member."""
    subscription = struct.pack(">hi", 0, 0) + struct.pack(">i", -1)  # v0, no topics, no user data
    protocol = rk.compact_string(b"range") + rk.compact_string(subscription) + NO_TAGS
    body = (
        rk.compact_string(group_id)
        + struct.pack(">ii", 10_000, 30_000)  # session and rebalance timeouts
        + rk.compact_string(b"")  # member id
        + rk.compact_string(None)  # group instance id
        + rk.compact_string(b"consumer")
        + rk.compact_array([protocol])
        + NO_TAGS
    )
    return rk.request(JOIN_GROUP, 6, correlation_id, body, flexible=True)


def join_group_error(payload: bytes, correlation_id: int) -> int:
    reader = flexible_response(payload, correlation_id)
    reader.unpack(">i")  # throttle time
    return reader.unpack(">h")


def assert_api_versions_answered(sock, correlation_id: int) -> None:
    sock.sendall(rk.api_versions_request(3, correlation_id))
    payload = rk.read_response(sock, 10.0)
    assert payload is not None, "the connection was closed after the refused request"
    assert rk.parse_api_versions_response(payload, 3)["correlation_id"] == correlation_id


def listed_group_ids(bootstrap: str) -> list[str]:
    result = admin(bootstrap).list_consumer_groups(request_timeout=10).result(timeout=15)
    assert not result.errors, result.errors
    return [group.group_id for group in result.valid]


def test_offset_commit_and_join_group_refuse_a_group_id_over_32_kib(broker):
    topic = unique("long-group-ids")
    create_topic(broker.bootstrap, topic, partitions=2)
    with rk.connect(broker.bootstrap, timeout_s=10.0) as sock:
        # The topic exists, so without the check the commit would reach the record encoder.
        sock.sendall(offset_commit_v8(LONG_GROUP_ID, topic.encode(), [0, 1], correlation_id=1))
        payload = rk.read_response(sock, 10.0)
        assert payload is not None, "the broker closed the connection instead of answering"
        assert offset_commit_errors(payload, 1) == {
            (topic.encode(), 0): INVALID_GROUP_ID,
            (topic.encode(), 1): INVALID_GROUP_ID,
        }

        sock.sendall(join_group_v6(LONG_GROUP_ID, correlation_id=2))
        payload = rk.read_response(sock, 10.0)
        assert payload is not None, "the broker closed the connection instead of answering"
        assert join_group_error(payload, 2) == INVALID_GROUP_ID

        assert_api_versions_answered(sock, correlation_id=3)
    broker.assert_running()
    # Neither request left a group behind (a ListGroups answer could not even carry its id in
    # the versions without compact strings).
    assert all(len(group_id) < RECORD_STRING_BYTES_MAX for group_id in listed_group_ids(broker.bootstrap))
    round_trip(broker.bootstrap)
    broker.assert_running()


def test_the_longest_group_id_a_record_holds_commits(broker):
    """The limit is the record's, not lower: a 32,767-byte group id commits, and the broker,
    which now holds a group by that id, still lists its groups and serves clients."""
    topic = unique("longest-group-id")
    create_topic(broker.bootstrap, topic)
    longest = b"h" * RECORD_STRING_BYTES_MAX
    with rk.connect(broker.bootstrap, timeout_s=10.0) as sock:
        sock.sendall(offset_commit_v8(longest, topic.encode(), [0], correlation_id=7))
        payload = rk.read_response(sock, 10.0)
        assert payload is not None
        assert offset_commit_errors(payload, 7) == {(topic.encode(), 0): NONE}
    assert longest.decode() in listed_group_ids(broker.bootstrap)
    round_trip(broker.bootstrap)
    broker.assert_running()
