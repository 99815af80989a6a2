"""Transactional offset commits (TxnOffsetCommit, KIP-98 / KIP-447) and OffsetFetch with
require_stable, against the real broker.

Two parts:
- Raw requests (kafka-python's protocol classes, Kafka's own message specs): every advertised
  TxnOffsetCommit version is answered with Kafka's per-partition errors, and a partition whose
  offset a transaction is committing answers UNSTABLE_OFFSET_COMMIT to a require_stable fetch
  (what read_committed consumers send), also after a restart (replayed from
  `__consumer_offsets`). Their transactions are opened with raw InitProducerId and
  AddOffsetsToTxn and never ended within the test; a TxnOffsetCommit outside any transaction
  is refused with INVALID_TXN_STATE (KIP-890).
- confluent-kafka's `send_offsets_to_transaction`: the consume-transform-produce loop's offsets
  commit atomically with its output, and an abort leaves them where they were (as the admin
  API lists them, and after a restart); a read_committed consumer's `committed()` waits while a
  transaction holds the group's offset and returns it once committed.
"""

from __future__ import annotations

import struct

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer.transaction import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)

import raw_kafka as rk
from group_helpers import committed_offsets, group_config
from kafka_helpers import create_topic, produce_all, producer, unique, wait_until

TXN_OFFSET_COMMIT = 28
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
INIT_PRODUCER_ID = 22
ADD_OFFSETS_TO_TXN = 25
RETRIABLE = {14, 15, 16, 51}  # load in progress, not available, not coordinator, concurrent
INVALID_TXN_STATE = 48
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
INVALID_GROUP_ID = 24
INVALID_PRODUCER_ID_MAPPING = 49
UNSTABLE_OFFSET_COMMIT = 88
CLASSES = {
    TXN_OFFSET_COMMIT: (TxnOffsetCommitRequest, TxnOffsetCommitResponse),
    OFFSET_FETCH: (OffsetFetchRequest, OffsetFetchResponse),
    FIND_COORDINATOR: (FindCoordinatorRequest, FindCoordinatorResponse),
    INIT_PRODUCER_ID: (InitProducerIdRequest, InitProducerIdResponse),
    ADD_OFFSETS_TO_TXN: (AddOffsetsToTxnRequest, AddOffsetsToTxnResponse),
}


class Connection:
    """One raw connection that sends kafka-python request objects and decodes the answers."""

    def __init__(self, bootstrap: str):
        self.sock = rk.connect(bootstrap, timeout_s=10)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def call(self, api_key: int, version: int, request):
        _, response_class = CLASSES[api_key]
        self.correlation_id += 1
        request.with_header(correlation_id=self.correlation_id, client_id="strom-e2e")
        self.sock.sendall(bytes(request.encode(version=version, header=True, framed=True)))
        payload = rk.read_response(self.sock, timeout_s=10)
        assert payload is not None, "the broker closed the connection instead of answering"
        (correlation_id,) = struct.unpack_from(">i", payload, 0)
        assert correlation_id == self.correlation_id
        position = 4
        flexible = response_class.flexible_version_q(version)
        if flexible:
            position = rk.skip_tagged_fields(payload, position)
        body = memoryview(payload)[position:]
        decode = response_class._struct.compiled_decode_from(
            version, compact=flexible, tagged=flexible, data_class=response_class[None]
        )
        response, end = decode(body, 0)
        assert end == len(body), f"{len(body) - end} bytes left over in the v{version} response"
        return response


def advertised_versions(bootstrap: str, api_key: int) -> tuple[int, int]:
    with rk.connect(bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        payload = rk.read_response(sock)
    versions = rk.parse_api_versions_response(payload, 0)["api_keys"]
    assert api_key in versions, f"api key {api_key} is not advertised"
    return versions[api_key]


def retried(call, what: str):
    """Calls until the answer's error is not a retriable coordinator one."""
    answer = None
    def done():
        nonlocal answer
        answer = call()
        return answer.error_code not in RETRIABLE
    wait_until(done, 30, what, interval_s=0.1)
    assert answer.error_code == NONE, f"{what}: error {answer.error_code}"
    return answer


def partition_of(group: str, partitions: int = 50) -> int:
    """The `__consumer_offsets` partition of a group: Java's String.hashCode, made positive."""
    h = 0
    for ch in group.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= (1 << 31) else h
    return (h & 0x7FFFFFFF) % partitions


def open_transaction(conn: Connection, group: str) -> tuple[str, int, int]:
    """A transactional id with a transaction that holds `group`'s offsets partition (what
    AddOffsetsToTxn does before send_offsets_to_transaction): (id, producer id, epoch). The
    one broker is the coordinator; nothing ends the transaction before its 5-minute timeout."""
    transactional_id = unique("e2e-txn")
    retried(lambda: conn.call(FIND_COORDINATOR, 1, FindCoordinatorRequest(key=transactional_id, key_type=1)),
            "FindCoordinator for a transactional id")
    init = retried(lambda: conn.call(INIT_PRODUCER_ID, 1, InitProducerIdRequest(
        transactional_id=transactional_id, transaction_timeout_ms=300_000)), "InitProducerId")
    retried(lambda: conn.call(ADD_OFFSETS_TO_TXN, 1, AddOffsetsToTxnRequest(
        transactional_id=transactional_id, producer_id=init.producer_id, producer_epoch=init.producer_epoch,
        group_id=group)), "AddOffsetsToTxn")
    return transactional_id, init.producer_id, init.producer_epoch


def txn_offset_commit(conn: Connection, version: int, group: str, topics: dict, txn=("e2e-txn", 4242, 0),
                      producer_id: int | None = None, member_id: str = "", generation_id: int = -1) -> dict:
    """Sends TxnOffsetCommit for transaction `txn` (id, producer id, epoch); returns
    {(topic, partition): error code}."""
    Topic = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    Partition = Topic.TxnOffsetCommitRequestPartition
    transactional_id, txn_producer_id, producer_epoch = txn
    request = TxnOffsetCommitRequest(
        transactional_id=transactional_id,
        group_id=group,
        producer_id=txn_producer_id if producer_id is None else producer_id,
        producer_epoch=producer_epoch,
        generation_id=generation_id,
        member_id=member_id,
        group_instance_id=None,
        topics=[
            Topic(name=name, partitions=[
                Partition(partition_index=p, committed_offset=offset, committed_leader_epoch=-1,
                          committed_metadata="m")
                for p, offset in partitions.items()
            ])
            for name, partitions in topics.items()
        ],
    )
    response = conn.call(TXN_OFFSET_COMMIT, version, request)
    return {(t.name, p.partition_index): p.error_code for t in response.topics for p in t.partitions}


def offset_fetch(conn: Connection, group: str, topic: str, partitions: list[int], require_stable: bool,
                 version: int = 7) -> dict:
    """OffsetFetch v7 (the first with require_stable); returns {partition: (offset, error)}."""
    Topic = OffsetFetchRequest.OffsetFetchRequestTopic
    request = OffsetFetchRequest(group_id=group, topics=[Topic(name=topic, partition_indexes=partitions)],
                                 require_stable=require_stable)
    response = conn.call(OFFSET_FETCH, version, request)
    assert response.error_code == NONE
    return {p.partition_index: (p.committed_offset, p.error_code) for t in response.topics for p in t.partitions}


def offset_fetch_groups(conn: Connection, group: str, topic: str, partitions: list[int],
                        require_stable: bool) -> dict:
    """OffsetFetch v8 (one or more groups per request); returns {partition: (offset, error)}."""
    Group = OffsetFetchRequest.OffsetFetchRequestGroup
    Topics = Group.OffsetFetchRequestTopics
    request = OffsetFetchRequest(groups=[Group(group_id=group, member_id=None, member_epoch=-1,
                                               topics=[Topics(name=topic, partition_indexes=partitions)])],
                                 require_stable=require_stable)
    response = conn.call(OFFSET_FETCH, 8, request)
    (g,) = response.groups
    assert (g.group_id, g.error_code) == (group, NONE)
    return {p.partition_index: (p.committed_offset, p.error_code) for t in g.topics for p in t.partitions}


def test_every_version_answers_with_kafkas_per_partition_errors(broker):
    low, high = advertised_versions(broker.bootstrap, TXN_OFFSET_COMMIT)
    assert (low, high) == (0, 3), "librdkafka and kafka-python send v3 at most"
    topic = unique("txn-input")
    create_topic(broker.bootstrap, topic, partitions=2)
    conn = Connection(broker.bootstrap)
    try:
        for version in range(low, high + 1):
            group = unique(f"txn-group-v{version}")
            txn = open_transaction(conn, group)
            # KIP-890: the group's offsets partition must be in the producer's transaction.
            other = next(g for g in (unique("txn-other") for _ in range(100)) if partition_of(g) != partition_of(group))
            assert txn_offset_commit(conn, version, other, {topic: {0: 5}}, txn=txn) == {(topic, 0): INVALID_TXN_STATE}
            errors = txn_offset_commit(conn, version, group, {topic: {0: 5, 1: 6, 7: 1}, "no-such-topic": {0: 1}},
                                       txn=txn)
            assert errors == {
                (topic, 0): NONE,
                (topic, 1): NONE,
                (topic, 7): UNKNOWN_TOPIC_OR_PARTITION,
                ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION,
            }, f"v{version}"
            assert txn_offset_commit(conn, version, "", {topic: {0: 1}}) == {(topic, 0): INVALID_GROUP_ID}
            assert txn_offset_commit(conn, version, group, {topic: {0: 1}}, txn=txn, producer_id=-1) == {
                (topic, 0): INVALID_PRODUCER_ID_MAPPING
            }
        # v3 (KIP-447) names the member: a generation for a group nobody joined is illegal.
        assert txn_offset_commit(conn, 3, unique("nobody"), {topic: {0: 1}}, member_id="m", generation_id=4) == {
            (topic, 0): ILLEGAL_GENERATION
        }
    finally:
        conn.close()
    broker.assert_running()


def test_require_stable_fetches_see_offsets_a_transaction_is_committing(broker):
    topic = unique("txn-input")
    create_topic(broker.bootstrap, topic, partitions=2)
    group = unique("txn-group")
    conn = Connection(broker.bootstrap)
    try:
        txn = open_transaction(conn, group)
        assert txn_offset_commit(conn, 3, group, {topic: {0: 42}}, txn=txn) == {(topic, 0): NONE}
        # No marker comes while the transaction stays open: the offset stays pending.
        assert offset_fetch(conn, group, topic, [0, 1], require_stable=True) == {
            0: (-1, UNSTABLE_OFFSET_COMMIT),
            1: (-1, NONE),
        }
        assert offset_fetch(conn, group, topic, [0, 1], require_stable=False) == {0: (-1, NONE), 1: (-1, NONE)}
        assert offset_fetch_groups(conn, group, topic, [0, 1], require_stable=True) == {
            0: (-1, UNSTABLE_OFFSET_COMMIT),
            1: (-1, NONE),
        }
    finally:
        conn.close()

    # Replayed from __consumer_offsets after a restart: still pending, not committed.
    broker.stop()
    broker.start()
    conn = Connection(broker.bootstrap)
    try:
        assert offset_fetch(conn, group, topic, [0], require_stable=True) == {0: (-1, UNSTABLE_OFFSET_COMMIT)}
        assert offset_fetch(conn, group, topic, [0], require_stable=False) == {0: (-1, NONE)}
    finally:
        conn.close()
    broker.assert_running()


# -- confluent-kafka's transactional producer (needs the transaction coordinator) ---------------


def copy_in_a_transaction(bootstrap: str, group: str, source: str, sink: str, count: int, commit: bool) -> dict:
    """One consume-transform-produce transaction over `count` records of `source` (1 partition):
    reads them with a read_committed group consumer, writes them upper-cased to `sink`, sends
    the consumer's positions to the transaction and commits or aborts. Returns the positions."""
    consumer = Consumer(group_config(bootstrap, group, isolation_level="read_committed"))
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("copier"),
                    "transaction.timeout.ms": 30000})
    try:
        consumer.assign([TopicPartition(source, 0)])
        txn.init_transactions(30)
        txn.begin_transaction()
        read = 0
        def polled():
            nonlocal read
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                txn.produce(sink, key=message.key(), value=message.value().upper())
                read += 1
            return read >= count
        wait_until(polled, 30, f"{count} records read from {source}")
        positions = consumer.position([TopicPartition(source, 0)])
        txn.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        if commit:
            txn.commit_transaction(30)
        else:
            txn.abort_transaction(30)
        return {tp.partition: tp.offset for tp in positions}
    finally:
        consumer.close()


def test_send_offsets_to_transaction_commits_the_offsets_with_the_output(broker):
    source, sink, group = unique("txn-source"), unique("txn-sink"), unique("txn-copier")
    create_topic(broker.bootstrap, source)
    create_topic(broker.bootstrap, sink)
    produce_all(producer(broker.bootstrap), source, [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(20)])

    # Aborted: neither the output (to read_committed) nor the offsets move.
    copy_in_a_transaction(broker.bootstrap, group, source, sink, 10, commit=False)
    assert committed_offsets(broker.bootstrap, group, source, 1) == {0: -1001}

    # Committed: the offsets become the group's, together with the output.
    positions = copy_in_a_transaction(broker.bootstrap, group, source, sink, 10, commit=True)
    assert positions == {0: 10}
    assert committed_offsets(broker.bootstrap, group, source, 1) == {0: 10}

    # A read_committed group consumer (require_stable) resumes from them.
    consumer = Consumer(group_config(broker.bootstrap, group, isolation_level="read_committed"))
    try:
        consumer.assign([TopicPartition(source, 0)])
        (tp,) = consumer.committed([TopicPartition(source, 0)], timeout=10)
        assert tp.offset == 10
    finally:
        consumer.close()
    broker.stop()
    broker.start()
    assert committed_offsets(broker.bootstrap, group, source, 1) == {0: 10}, "replayed after a restart"


def test_a_read_committed_consumer_waits_for_an_open_transactions_offsets(broker):
    """librdkafka's committed() with read_committed sends require_stable and retries on
    UNSTABLE_OFFSET_COMMIT: while a transaction holding the group's offsets is open it times
    out; once committed it returns the transaction's offset."""
    source, sink, group = unique("txn-source"), unique("txn-sink"), unique("txn-open")
    create_topic(broker.bootstrap, source)
    create_topic(broker.bootstrap, sink)
    produce_all(producer(broker.bootstrap), source, [{"value": b"v%d" % i} for i in range(5)])
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique("open")})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(sink, value=b"x")
    metadata_source = Consumer(group_config(broker.bootstrap, group))
    try:
        txn.send_offsets_to_transaction([TopicPartition(source, 0, 3)], metadata_source.consumer_group_metadata(), 30)
    finally:
        metadata_source.close()
    reader = Consumer(group_config(broker.bootstrap, group, isolation_level="read_committed"))
    try:
        with pytest.raises(KafkaException):
            reader.committed([TopicPartition(source, 0)], timeout=3)
        txn.commit_transaction(30)
        (tp,) = reader.committed([TopicPartition(source, 0)], timeout=10)
        assert tp.offset == 3
    finally:
        reader.close()
