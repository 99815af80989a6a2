"""DeleteRecords and DescribeLogDirs through real clients, on one broker and on a 3-node cluster.

DeleteRecords moves a partition's log start offset (its low watermark) up to the offset asked
for (-1: the high watermark): ListOffsets(EARLIEST) and consumers starting from the earliest
offset move with it, segment files wholly below it are deleted, it survives a restart (the
`log-start-offset-checkpoint` file in the partition directory), and followers take it from the
leader's fetch answers, so it survives a failover too. Beyond the high watermark it is
OFFSET_OUT_OF_RANGE; on a compacted-only topic POLICY_VIOLATION, as Kafka answers.
DescribeLogDirs lists the broker's log directory, each partition's size in bytes and the
filesystem's total and usable bytes (v4).

Clients: confluent-kafka's AdminClient.delete_records, kafka-python's KafkaAdminClient
delete_records and describe_log_dirs, raw DescribeLogDirs at every version, and `strom topic
empty`.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest
from confluent_kafka import KafkaException, TopicPartition
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition as KpTopicPartition

import raw_kafka as rk
from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    cluster_factory,
    require_cluster_info,
)
from kafka_helpers import (
    admin_client,
    consume_range,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)
from strom_broker import STROM_BIN

SEGMENT_BYTES = 10 * 1024
COUNT = 2000  # about 230 KB: over 20 segments of 10 KiB
CHECKPOINT = "log-start-offset-checkpoint"


def produce_segments(bootstrap: str, topic: str, count: int, partition: int = 0, **conf) -> None:
    # Small batches, so the log can roll often: a segment never splits a batch.
    p = producer(bootstrap, **{"batch.size": 2048, "linger.ms": 1, "compression.type": "none"}, **conf)
    records = [{"key": b"k", "value": (b"%06d-" % i) * 16, "partition": partition} for i in range(count)]
    produce_all(p, topic, records)


def delete_records(bootstrap: str, offsets: dict, operation_timeout: float = 20, **conf) -> dict:
    """confluent-kafka's delete_records: {(topic, partition): offset} -> {(topic, partition):
    low watermark, or the error's name}."""
    admin = admin_client(bootstrap, **conf)
    futures = admin.delete_records(
        [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()],
        request_timeout=30, operation_timeout=operation_timeout,
    )
    answers = {}
    for tp, future in futures.items():
        try:
            answers[(tp.topic, tp.partition)] = future.result(timeout=40).low_watermark
        except KafkaException as error:
            answers[(tp.topic, tp.partition)] = error.args[0].name()
    return answers


def segment_bases(directory: pathlib.Path) -> list[int]:
    return sorted(int(p.name[:20]) for p in directory.glob("*.log"))


def assert_segments_below_start_deleted(directory: pathlib.Path, log_start: int) -> None:
    """Kafka's rule: a segment goes once the next one starts at or below the log start."""
    bases = segment_bases(directory)
    assert bases and bases[0] <= log_start, f"{directory.name}: segments {bases[:5]} for log start {log_start}"
    assert len(bases) == 1 or bases[1] > log_start, f"{directory.name}: a segment wholly below {log_start} is left: {bases[:5]}"


def first_offset_from_earliest(bootstrap: str, topic: str, partition: int = 0) -> int:
    c = consumer(bootstrap, **{"auto.offset.reset": "earliest", "group.id": unique("from-earliest")})
    try:
        c.subscribe([topic])
        message = wait_until(lambda: c.poll(0.2), 30, "a record from the earliest offset")
        assert message.error() is None, message.error()
        assert message.partition() == partition
        return message.offset()
    finally:
        c.close()


def run_strom(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STROM_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.mark.timeout(240)
def test_delete_records_moves_the_log_start_deletes_segments_and_survives_restart(start_broker):
    b = start_broker()
    topic = unique("deleted")
    create_topic(b.bootstrap, topic, config={"segment.bytes": str(SEGMENT_BYTES)})
    produce_segments(b.bootstrap, topic, COUNT)
    directory = b.partition_dir(topic, 0)
    segments_before = segment_bases(directory)
    assert len(segments_before) >= 10, f"only {len(segments_before)} segments"

    assert delete_records(b.bootstrap, {(topic, 0): 1000}) == {(topic, 0): 1000}
    assert watermarks(b.bootstrap, topic, 0) == (1000, COUNT)
    assert_segments_below_start_deleted(directory, 1000)
    assert len(segment_bases(directory)) < len(segments_before)
    assert (directory / CHECKPOINT).read_text().split() == ["0", "1000"]
    assert first_offset_from_earliest(b.bootstrap, topic) == 1000
    records = consume_range(b.bootstrap, topic, 0, 1000, COUNT)
    assert [r.offset for r in records] == list(range(1000, COUNT))

    # Lower than the log start: nothing moves, the answer is the current low watermark.
    assert delete_records(b.bootstrap, {(topic, 0): 10}) == {(topic, 0): 1000}
    # Past the high watermark: Kafka's OFFSET_OUT_OF_RANGE, and nothing moves.
    assert delete_records(b.bootstrap, {(topic, 0): COUNT + 1}) == {(topic, 0): "OFFSET_OUT_OF_RANGE"}
    assert watermarks(b.bootstrap, topic, 0) == (1000, COUNT)

    b.stop()
    b.start()
    assert watermarks(b.bootstrap, topic, 0) == (1000, COUNT)
    assert first_offset_from_earliest(b.bootstrap, topic) == 1000

    # -1 (confluent's OFFSET_END): up to the high watermark, emptying the partition.
    assert delete_records(b.bootstrap, {(topic, 0): -1}) == {(topic, 0): COUNT}
    assert watermarks(b.bootstrap, topic, 0) == (COUNT, COUNT)
    (d,) = produce_all(producer(b.bootstrap), topic, [{"value": b"after", "partition": 0}])
    assert d.offset == COUNT
    assert [r.value for r in consume_range(b.bootstrap, topic, 0, COUNT, COUNT + 1)] == [b"after"]


def test_delete_records_errors_as_kafka(start_broker):
    b = start_broker()
    compacted = unique("compacted")
    create_topic(b.bootstrap, compacted, config={"cleanup.policy": "compact"})
    both = unique("compact-delete")
    create_topic(b.bootstrap, both, partitions=2, config={"cleanup.policy": "compact,delete"})
    for topic in (compacted, both):
        produce_all(producer(b.bootstrap), topic, [{"key": b"k", "value": b"v", "partition": 0}] * 3)
    answers = delete_records(b.bootstrap, {(compacted, 0): 1, (both, 0): 2, (both, 1): 1})
    assert answers == {(compacted, 0): "POLICY_VIOLATION", (both, 0): 2, (both, 1): "OFFSET_OUT_OF_RANGE"}


def test_kafka_python_delete_records_and_describe_log_dirs(start_broker):
    b = start_broker()
    topic = unique("kp")
    create_topic(b.bootstrap, topic, partitions=2)
    produce_all(producer(b.bootstrap), topic, [{"value": b"x" * 100, "partition": p} for p in (0, 1) for _ in range(50)])
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=20000)
    try:
        result = admin.delete_records({KpTopicPartition(topic, 0): 30, KpTopicPartition(topic, 1): 50}, timeout_ms=10000)
        low = {tp.partition: answer["low_watermark"] for tp, answer in result.items()}
        assert low == {0: 30, 1: 50}
        assert watermarks(b.bootstrap, topic, 0) == (30, 50)

        (broker,) = admin.describe_log_dirs()
        (log_dir,) = broker["log_dirs"]
        assert log_dir["error_code"] == 0
        assert pathlib.Path(log_dir["log_dir"]).resolve() == b.data_dir.resolve()
        partitions = {
            (t["name"], p["partition_index"]): p for t in log_dir["topics"] for p in t["partitions"]
        }
        for index in (0, 1):
            entry = partitions[(topic, index)]
            on_disk = sum(f.stat().st_size for f in b.partition_dir(topic, index).glob("*.log"))
            assert entry["partition_size"] == on_disk > 0
            assert entry["offset_lag"] == 0 and entry["is_future_key"] is False
    finally:
        admin.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_describe_log_dirs_every_version(start_broker, version):
    b = start_broker()
    topic = unique("dirs")
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [{"value": b"y" * 500, "partition": 0}])
    with rk.connect(b.bootstrap) as sock:
        sock.sendall(rk.describe_log_dirs_request(version, correlation_id=7))
        answer = rk.parse_describe_log_dirs_response(rk.read_response(sock), version)
    assert answer["error_code"] == 0
    (result,) = answer["results"]
    assert result["error_code"] == 0
    assert pathlib.Path(result["log_dir"]).resolve() == b.data_dir.resolve()
    size, lag, future = result["topics"][topic][0]
    assert size > 500 and lag == 0 and future is False
    if version >= 4:
        assert result["total_bytes"] >= result["usable_bytes"] > 0
    else:
        assert result["total_bytes"] == result["usable_bytes"] == -1


def test_strom_topic_empty(start_broker):
    b = start_broker()
    topic = unique("emptied")
    create_topic(b.bootstrap, topic, partitions=3)
    produce_all(producer(b.bootstrap), topic, [{"value": b"z", "partition": p} for p in (0, 1, 2) for _ in range(p * 10)])
    result = run_strom("topic", "empty", topic, "--bootstrap", b.bootstrap)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "partition 0: low watermark 0",
        "partition 1: low watermark 10",
        "partition 2: low watermark 20",
    ]
    assert [watermarks(b.bootstrap, topic, p) for p in (0, 1, 2)] == [(0, 0), (10, 10), (20, 20)]
    described = run_strom("topic", "describe", topic, "--bootstrap", b.bootstrap)
    assert described.returncode == 0, described.stderr
    assert "LOG-START" in described.stdout

    missing = run_strom("topic", "empty", unique("missing"), "--bootstrap", b.bootstrap)
    assert missing.returncode != 0
    assert "panick" not in missing.stderr


# -- a 3-node cluster -----------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_followers_take_the_log_start_and_it_survives_failover(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    topic = unique("replicated")
    cluster.create_topic(topic, partitions=1, replication_factor=3, config={"segment.bytes": str(SEGMENT_BYTES)}, timeout_s=20)
    produce_segments(cluster.bootstrap, topic, COUNT, acks="all")

    # The answer waits until every live replica deleted below 1200 (the low watermark).
    assert delete_records(cluster.bootstrap, {(topic, 0): 1200}) == {(topic, 0): 1200}
    for node in cluster.nodes.values():
        directory = node.partition_dir(topic, 0)
        assert (directory / CHECKPOINT).read_text().split() == ["0", "1200"], node.name
        assert_segments_below_start_deleted(directory, 1200)

    # Each node's DescribeLogDirs shows its own replica, at the size of its files.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20000)
    try:
        described = admin.describe_log_dirs(topic_partitions={topic: [0]})
    finally:
        admin.close()
    assert sorted(entry["broker"] for entry in described) == [1, 2, 3]
    for entry in described:
        node = cluster.node(entry["broker"])
        (log_dir,) = entry["log_dirs"]
        ((name, partition),) = [(t["name"], p) for t in log_dir["topics"] for p in t["partitions"]]
        on_disk = sum(f.stat().st_size for f in node.partition_dir(topic, 0).glob("*.log"))
        assert name == topic and partition["partition_size"] == on_disk

    # A new leader keeps the log start.
    leader = cluster.wait_for_leader(topic, 0)
    cluster.kill(leader)
    cluster.wait_for_leader(topic, 0, exclude=(leader,), timeout_s=30)
    bootstrap = cluster.live_bootstrap(exclude=(leader,))
    assert wait_until(lambda: watermarks(bootstrap, topic, 0), 30, "offsets from the new leader") == (1200, COUNT)
    assert first_offset_from_earliest(bootstrap, topic) == 1200

    # Emptied with the new leader and one follower (the dead node does not count).
    assert delete_records(bootstrap, {(topic, 0): -1}) == {(topic, 0): COUNT}
    for node in cluster.nodes.values():
        if node.node_id != leader:
            text = (node.partition_dir(topic, 0) / CHECKPOINT).read_text()
            assert text.split() == ["0", str(COUNT)], node.name
    # The killed node catches up with the log start when it comes back.
    cluster.start(leader)
    directory = cluster.node(leader).partition_dir(topic, 0)
    wait_until(
        lambda: (directory / CHECKPOINT).read_text().split() == ["0", str(COUNT)],
        60, "the restarted replica took the leader's log start",
    )

    # A live follower that does not fetch (SIGSTOP) holds the low watermark back: the leader
    # moves its own log start, and answers REQUEST_TIMED_OUT after the operation timeout, as
    # Kafka's DelayedDeleteRecords does. Once the follower runs again it catches up.
    cluster.wait_for_isr(topic, 0, 3, timeout_s=60)
    produce_all(producer(cluster.bootstrap, acks="all"), topic, [{"value": b"more", "partition": 0}] * 10)
    leader = cluster.wait_for_leader(topic, 0)
    follower = next(node_id for node_id in cluster.nodes if node_id != leader)
    cluster.pause(follower)
    try:
        answer = delete_records(cluster.node(leader).bootstrap, {(topic, 0): COUNT + 10}, operation_timeout=1)
        assert answer == {(topic, 0): "REQUEST_TIMED_OUT"}
        assert watermarks(cluster.node(leader).bootstrap, topic, 0)[0] == COUNT + 10
    finally:
        cluster.resume(follower)
    directory = cluster.node(follower).partition_dir(topic, 0)
    wait_until(
        lambda: (directory / CHECKPOINT).read_text().split() == ["0", str(COUNT + 10)],
        60, "the resumed follower took the leader's log start",
    )
