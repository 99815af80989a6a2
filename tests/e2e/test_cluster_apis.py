"""CreatePartitions and OffsetForLeaderEpoch on one broker, and across a leader change on three.

CreatePartitions is driven by the two admin clients people use (confluent-kafka's AdminClient
on librdkafka, kafka-python's KafkaAdminClient): a topic grows from 1 to 3 partitions and
producers and consumers use the new ones; refusals (shrinking, unknown topic, bad replica
assignments) come back with Kafka's codes and messages; validate_only changes nothing.

OffsetForLeaderEpoch is asked on a raw connection at every advertised version, with requests
and responses encoded by kafka-python's classes (generated from Kafka's message specs). After
the leader of a 3-node cluster shuts down, the next leader has a new epoch with nothing written
in it yet, which is where KIP-320 clients ask: the test checks the answers there, and that a
librdkafka consumer that was reading before the change carries on without resetting.
"""

from __future__ import annotations

import struct
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import CreatePartitionsRequest, CreatePartitionsResponse
from kafka.protocol.consumer import OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

import raw_kafka as rk
from cluster import FAST_FAILOVER_SETTINGS, cluster_factory, require_cluster_info  # noqa: F401 - fixture
from kafka_helpers import (
    admin_request,
    consume_range,
    consumer,
    create_topic,
    produce_all,
    producer,
    topic_partitions,
    unique,
    wait_for_topic,
    wait_until,
)

OFFSET_FOR_LEADER_EPOCH = 23
CREATE_PARTITIONS = 37
METADATA = 3

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PARTITIONS = 37
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75

TIMEOUT_S = 30.0


# -- raw requests -------------------------------------------------------------------------


def advertised(bootstrap: str) -> dict:
    with rk.connect(bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        payload = rk.read_response(sock)
    assert payload is not None
    return rk.parse_api_versions_response(payload, 0)["api_keys"]


class Connection:
    """A raw connection that sends kafka-python request objects and decodes the responses,
    checking the correlation id and that nothing is left over."""

    def __init__(self, bootstrap: str):
        self.sock = rk.connect(bootstrap, timeout_s=10)
        self.correlation_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def call(self, request, response_class, version: int):
        self.correlation_id += 1
        request.with_header(correlation_id=self.correlation_id, client_id="strom-e2e")
        self.sock.sendall(bytes(request.encode(version=version, header=True, framed=True)))
        payload = rk.read_response(self.sock, timeout_s=TIMEOUT_S)
        assert payload is not None, "the broker closed the connection instead of answering"
        (answered,) = struct.unpack_from(">i", payload, 0)
        assert answered == self.correlation_id
        position = 4
        flexible = response_class.flexible_version_q(version)
        if flexible:
            tagged, position = rk.read_uvarint(payload, position)
            assert tagged == 0
        body = memoryview(payload)[position:]
        decode = response_class._struct.compiled_decode_from(
            version, compact=flexible, tagged=flexible, data_class=response_class[None]
        )
        response, end = decode(body, 0)
        assert end == len(body), f"{len(body) - end} bytes left over in the v{version} response"
        return response


def offset_for_leader_epoch(
    conn: Connection, version: int, asks: list[tuple[str, int, int, int]], replica_id: int = -1
) -> dict:
    """Asks for (topic, partition, current_leader_epoch, leader_epoch) each; returns
    {(topic, partition): (error_code, leader_epoch, end_offset)}."""
    topics: dict[str, list] = {}
    for topic, partition, current, epoch in asks:
        topics.setdefault(topic, []).append(
            OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition(
                partition=partition, current_leader_epoch=current, leader_epoch=epoch
            )
        )
    request = OffsetForLeaderEpochRequest(
        replica_id=replica_id,
        topics=[
            OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic=name, partitions=partitions)
            for name, partitions in topics.items()
        ],
    )
    response = conn.call(request, OffsetForLeaderEpochResponse, version)
    return {
        (t.topic, p.partition): (p.error_code, p.leader_epoch, p.end_offset)
        for t in response.topics
        for p in t.partitions
    }


def leader_epoch(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The partition's leader epoch from a Metadata v9 response."""
    with Connection(bootstrap) as conn:
        request = MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
            allow_auto_topic_creation=False,
        )
        response = conn.call(request, MetadataResponse, 9)
    (t,) = response.topics
    (p,) = [p for p in t.partitions if p.partition_index == partition]
    assert p.error_code == 0
    return p.leader_epoch


def produce_values(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> list[int]:
    p = producer(bootstrap)
    reports = produce_all(p, topic, [{"value": v, "partition": partition} for v in values])
    return [r.offset for r in reports]


# -- CreatePartitions: confluent-kafka ------------------------------------------------------


def create_partitions(bootstrap: str, new: NewPartitions, **options):
    """The CreatePartitions outcome for one topic: None, or the KafkaError."""
    result = admin_request(
        bootstrap, lambda a: a.create_partitions([new], request_timeout=20, **options)
    )[new.topic]
    try:
        result.result()
    except KafkaException as error:
        return error.args[0]
    return None


def test_confluent_admin_grows_a_topic_and_clients_use_the_new_partitions(broker):
    topic = unique("grow")
    create_topic(broker.bootstrap, topic, partitions=1)
    # A producer that knew the topic with one partition picks up the new ones.
    p = producer(broker.bootstrap, topic_metadata_refresh_interval_ms=200)
    produce_all(p, topic, [{"key": b"before", "value": b"before"}])

    assert create_partitions(broker.bootstrap, NewPartitions(topic, 3)) is None
    wait_for_topic(broker.bootstrap, topic, 3)

    def sees_three():
        return len(p.list_topics(topic, timeout=5).topics[topic].partitions) == 3

    wait_until(sees_three, TIMEOUT_S, "the producer's metadata shows 3 partitions")
    records = [{"key": b"key-%d" % i, "value": b"value-%d" % i} for i in range(60)]
    reports = produce_all(p, topic, records)
    used = {r.partition for r in reports}
    assert used == {0, 1, 2}, f"60 keys went to partitions {used} only"

    by_partition: dict[int, list] = {0: [b"before"], 1: [], 2: []}
    for report in reports:
        by_partition[report.partition].append(report.value)
    for partition, values in by_partition.items():
        read = consume_range(broker.bootstrap, topic, partition, 0, len(values))
        assert [r.value for r in read] == values, f"partition {partition}"
        assert [r.offset for r in read] == list(range(len(values)))


def test_confluent_admin_refusals_carry_kafkas_codes_and_messages(broker):
    topic = unique("refuse")
    create_topic(broker.bootstrap, topic, partitions=2)

    shrink = create_partitions(broker.bootstrap, NewPartitions(topic, 1))
    assert shrink is not None and shrink.code() == INVALID_PARTITIONS, shrink
    assert shrink.str() == f"The topic {topic} currently has 2 partition(s); 1 would not be an increase."

    same = create_partitions(broker.bootstrap, NewPartitions(topic, 2))
    assert same is not None and same.code() == INVALID_PARTITIONS, same
    assert same.str() == "Topic already has 2 partition(s)."

    missing = create_partitions(broker.bootstrap, NewPartitions(unique("missing"), 3))
    assert missing is not None and missing.code() == UNKNOWN_TOPIC_OR_PARTITION, missing

    too_few = create_partitions(broker.bootstrap, NewPartitions(topic, 4, replica_assignment=[[1]]))
    assert too_few is not None and too_few.code() == INVALID_REPLICA_ASSIGNMENT, too_few
    assert too_few.str() == (
        "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
    )
    unknown_broker = create_partitions(broker.bootstrap, NewPartitions(topic, 3, replica_assignment=[[7]]))
    assert unknown_broker is not None and unknown_broker.code() == INVALID_REPLICA_ASSIGNMENT
    assert unknown_broker.str() == (
        "The manual partition assignment includes broker 7, but no such broker is registered."
    )
    assert len(topic_partitions(broker.bootstrap, topic)) == 2, "a refusal changes nothing"
    broker.assert_running()


def test_explicit_assignments_place_the_new_partitions(broker):
    topic = unique("assigned")
    create_topic(broker.bootstrap, topic, partitions=1)
    assert create_partitions(broker.bootstrap, NewPartitions(topic, 3, replica_assignment=[[1], [1]])) is None
    wait_for_topic(broker.bootstrap, topic, 3)
    assert topic_partitions(broker.bootstrap, topic) == {0: 1, 1: 1, 2: 1}
    assert produce_values(broker.bootstrap, topic, [b"on-2"], partition=2) == [0]


def test_validate_only_checks_and_changes_nothing(broker):
    topic = unique("validate")
    create_topic(broker.bootstrap, topic, partitions=1)
    assert create_partitions(broker.bootstrap, NewPartitions(topic, 4), validate_only=True) is None
    refused = create_partitions(broker.bootstrap, NewPartitions(topic, 1), validate_only=True)
    assert refused is not None and refused.code() == INVALID_PARTITIONS, refused
    assert topic_partitions(broker.bootstrap, topic) == {0: 1}
    # Still growable afterwards, to the count that was only validated.
    assert create_partitions(broker.bootstrap, NewPartitions(topic, 4)) is None
    wait_for_topic(broker.bootstrap, topic, 4)


def test_the_offsets_topic_does_not_grow(broker):
    # Groups are placed by hashing over its partition count.
    offsets = wait_until(
        lambda: topic_partitions(broker.bootstrap, "__consumer_offsets"), TIMEOUT_S, "__consumer_offsets exists"
    )
    refused = create_partitions(broker.bootstrap, NewPartitions("__consumer_offsets", len(offsets) + 1))
    assert refused is not None and refused.code() == INVALID_PARTITIONS, refused
    assert len(topic_partitions(broker.bootstrap, "__consumer_offsets")) == len(offsets)


# -- CreatePartitions: kafka-python and every version -------------------------------------


def test_kafka_python_admin_creates_partitions(broker):
    topic = unique("kp-grow")
    create_topic(broker.bootstrap, topic, partitions=1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="strom-e2e")
    try:
        checked = admin.create_partitions({topic: 3}, validate_only=True)
        assert [(r.name, r.error_code) for r in checked.results] == [(topic, NONE)]
        assert topic_partitions(broker.bootstrap, topic) == {0: 1}

        grown = admin.create_partitions({topic: 3})
        assert [(r.name, r.error_code, r.error_message) for r in grown.results] == [(topic, NONE, None)]
        wait_for_topic(broker.bootstrap, topic, 3)

        shrunk = admin.create_partitions({topic: 2}, raise_errors=False)
        ((name, code, message),) = [(r.name, r.error_code, r.error_message) for r in shrunk.results]
        assert (name, code) == (topic, INVALID_PARTITIONS)
        assert message == f"The topic {topic} currently has 3 partition(s); 2 would not be an increase."
    finally:
        admin.close()
    assert produce_values(broker.bootstrap, topic, [b"a", b"b"], partition=2) == [0, 1]


def test_raw_create_partitions_at_every_advertised_version(broker):
    versions = advertised(broker.bootstrap)
    assert CREATE_PARTITIONS in versions, "CreatePartitions is not advertised"
    low, high = versions[CREATE_PARTITIONS]
    assert (low, high) == (0, 3)
    Topic = CreatePartitionsRequest.CreatePartitionsTopic
    with Connection(broker.bootstrap) as conn:
        for version in range(low, high + 1):
            topic = unique(f"raw-grow-v{version}")
            create_topic(broker.bootstrap, topic, partitions=1)
            request = CreatePartitionsRequest(
                topics=[
                    Topic(name=topic, count=2, assignments=None),
                    Topic(name=f"{topic}-missing", count=2, assignments=None),
                    # A name given twice is refused once, and neither entry is acted on.
                    Topic(name=f"{topic}-twice", count=2, assignments=None),
                    Topic(name=f"{topic}-twice", count=3, assignments=None),
                ],
                timeout_ms=10000,
                validate_only=False,
            )
            response = conn.call(request, CreatePartitionsResponse, version)
            results = {r.name: (r.error_code, r.error_message) for r in response.results}
            assert results == {
                topic: (NONE, None),
                f"{topic}-missing": (UNKNOWN_TOPIC_OR_PARTITION, None),
                f"{topic}-twice": (INVALID_REQUEST, "Duplicate topic name."),
            }, f"v{version}"
            wait_for_topic(broker.bootstrap, topic, 2)
    broker.assert_running()


# -- OffsetForLeaderEpoch ------------------------------------------------------------------


def test_raw_offset_for_leader_epoch_at_every_advertised_version(broker):
    versions = advertised(broker.bootstrap)
    assert OFFSET_FOR_LEADER_EPOCH in versions, "OffsetForLeaderEpoch is not advertised"
    low, high = versions[OFFSET_FOR_LEADER_EPOCH]
    assert (low, high) == (2, 4)
    topic, empty = unique("epochs"), unique("epochs-empty")
    create_topic(broker.bootstrap, topic)
    create_topic(broker.bootstrap, empty)
    assert produce_values(broker.bootstrap, topic, [b"%d" % i for i in range(5)]) == list(range(5))
    assert leader_epoch(broker.bootstrap, topic) == 0
    with Connection(broker.bootstrap) as conn:
        for version in range(low, high + 1):
            asks = [
                (topic, 0, -1, 0),  # no fencing: the current epoch ends at the log end
                (empty, 0, 0, 0),  # nothing written yet: still the log end, 0
                (topic, 7, -1, 0),
                ("no-such-topic", 0, -1, 0),
            ]
            answers = offset_for_leader_epoch(conn, version, asks)
            assert answers == {
                (topic, 0): (NONE, 0, 5),
                (empty, 0): (NONE, 0, 0),
                (topic, 7): (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                ("no-such-topic", 0): (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            }, f"v{version}"
            # An epoch this leader has not reached: undefined, not an error.
            assert offset_for_leader_epoch(conn, version, [(topic, 0, 0, 3)]) == {
                (topic, 0): (NONE, -1, -1)
            }, f"v{version}"
            # A client that knows a newer leader epoch than the broker's.
            assert offset_for_leader_epoch(conn, version, [(topic, 0, 1, 0)]) == {
                (topic, 0): (UNKNOWN_LEADER_EPOCH, -1, -1)
            }, f"v{version}"
            if version >= 3:
                # A follower (replica_id >= 0) is answered by the leader as well.
                assert offset_for_leader_epoch(conn, version, [(topic, 0, 0, 0)], replica_id=2) == {
                    (topic, 0): (NONE, 0, 5)
                }, f"v{version}"
    broker.assert_running()


def test_after_a_leader_change_old_epochs_end_at_the_log_end_and_stale_ones_are_fenced(
    cluster_factory,  # noqa: F811
):
    """Three nodes: the leader of a fully replicated partition shuts down, and the next leader
    (epoch 1, nothing written in it yet) answers for both epochs. A librdkafka consumer that
    was reading follows the leader change, validates its position with OffsetForLeaderEpoch
    (KIP-320) and carries on: a wrong answer would make it detect log truncation and reset
    (an error here, with auto.offset.reset=error)."""
    require_cluster_info()
    cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    topic = unique("epochs-failover")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    first = cluster.partition_leader(topic, 0)
    assert leader_epoch(cluster.node(first).bootstrap, topic) == 0
    produce_values(cluster.bootstrap, topic, [b"first-%d" % i for i in range(5)])

    c = consumer(cluster.bootstrap, topic_metadata_refresh_interval_ms=500)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert [m.offset() for m in read(c, 5)] == list(range(5))

        cluster.stop(first)
        second = cluster.wait_for_leader(topic, 0, exclude=(first,))
        bootstrap = cluster.node(second).bootstrap
        epoch = leader_epoch(bootstrap, topic)
        assert epoch > 0
        high = advertised(bootstrap)[OFFSET_FOR_LEADER_EPOCH][1]
        with Connection(bootstrap) as conn:
            # Epoch 0 wrote 0..4 and ended where the current epoch starts: at the log end.
            assert offset_for_leader_epoch(conn, high, [(topic, 0, epoch, 0)]) == {(topic, 0): (NONE, 0, 5)}
            # The current epoch, with nothing written in it yet, ends at the log end too.
            assert offset_for_leader_epoch(conn, high, [(topic, 0, epoch, epoch)]) == {
                (topic, 0): (NONE, epoch, 5)
            }
            # A client still on the old epoch is fenced.
            assert offset_for_leader_epoch(conn, high, [(topic, 0, 0, 0)]) == {
                (topic, 0): (FENCED_LEADER_EPOCH, -1, -1)
            }

        produce_values(cluster.live_bootstrap(exclude=(first,)), topic, [b"second-%d" % i for i in range(5)])
        assert [(m.offset(), m.value()) for m in read(c, 5)] == [(5 + i, b"second-%d" % i) for i in range(5)]
        with Connection(bootstrap) as conn:
            assert offset_for_leader_epoch(conn, high, [(topic, 0, epoch, 0)]) == {(topic, 0): (NONE, 0, 5)}
            assert offset_for_leader_epoch(conn, high, [(topic, 0, epoch, epoch)]) == {
                (topic, 0): (NONE, epoch, 10)
            }
    finally:
        c.close()


def read(c, count: int) -> list:
    """`count` messages from `c`. Any consumer error fails at once, except transport errors
    while a broker goes away, which librdkafka retries by itself."""
    messages: list = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(messages) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} messages in {TIMEOUT_S} s"
        for message in c.consume(num_messages=count - len(messages), timeout=0.2):
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                raise KafkaException(error)
    return messages
