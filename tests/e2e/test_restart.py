"""Graceful restarts: SIGTERM, start again on the same data directory and port.

Everything acknowledged before the stop is read back unchanged at the same offsets, topics keep
their partitions and configs, and new records continue at the old log end.
"""

from __future__ import annotations

import signal
import socket
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from kafka_helpers import (
    delete_topic,
    describe_configs,
    assert_dense,
    consume_range,
    consumer,
    create_topic,
    list_topic_names,
    produce_all,
    producer,
    topic_partitions,
    unique,
    watermarks,
)


def topic_configs(bootstrap: str, topic: str) -> dict:
    result = describe_configs(bootstrap, ConfigResource(ResourceType.TOPIC, topic))
    return {name: entry.value for name, entry in result.items()}


def snapshot(bootstrap: str, topic: str, partitions: int) -> dict:
    """{partition: [(offset, key, value, headers, timestamp)]} read from the broker."""
    result = {}
    for partition in range(partitions):
        low, high = watermarks(bootstrap, topic, partition)
        assert low == 0
        records = consume_range(bootstrap, topic, partition, 0, high)
        assert_dense(records)
        result[partition] = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records]
    return result


def produce_batch(bootstrap: str, topic: str, tag: str, count: int, partitions: int, **conf):
    records = [
        {
            "key": f"k{i % 5}".encode(),
            "value": f"{tag}-{i}".encode(),
            "headers": [("tag", tag.encode())],
            "partition": i % partitions,
        }
        for i in range(count)
    ]
    return produce_all(producer(bootstrap, **conf), topic, records)


def test_restart_keeps_everything(broker):
    topics = {
        unique("plain"): (1, {}),
        unique("configured"): (4, {"retention.ms": "86400000", "segment.bytes": "16384", "max.message.bytes": "65536"}),
    }
    for name, (partitions, config) in topics.items():
        create_topic(broker.bootstrap, name, partitions=partitions, config=config)
    auto_topic = unique("auto")
    produce_all(producer(broker.bootstrap), auto_topic, [{"value": b"auto-%d" % i} for i in range(10)])
    auto_partitions = len(topic_partitions(broker.bootstrap, auto_topic))

    for name, (partitions, _) in topics.items():
        # Enough to roll several 16 KiB segments on the configured topic, in small batches.
        produce_batch(broker.bootstrap, name, "before", 8000, partitions, **{"batch.size": 4096})
    configured = list(topics)[1]
    assert len(broker.segment_files(configured, 0)) > 1, "expected several segments before the restart"

    before = {name: snapshot(broker.bootstrap, name, p) for name, (p, _) in topics.items()}
    before[auto_topic] = snapshot(broker.bootstrap, auto_topic, auto_partitions)
    configs_before = {name: topic_configs(broker.bootstrap, name) for name in topics}

    for restart in range(2):
        broker.stop()
        broker.start()

        assert set(topics) | {auto_topic} <= list_topic_names(broker.bootstrap)
        for name, (partitions, config) in topics.items():
            assert len(topic_partitions(broker.bootstrap, name)) == partitions, name
            configs = topic_configs(broker.bootstrap, name)
            assert configs == configs_before[name], name
            for key, value in config.items():
                assert configs[key] == value
        for name, (partitions, _) in list(topics.items()) + [(auto_topic, (auto_partitions, {}))]:
            assert snapshot(broker.bootstrap, name, partitions) == before[name], f"{name} after restart {restart}"

    # The time index works after the restarts: every partition finds its first record by time.
    c = consumer(broker.bootstrap)
    try:
        for name, (partitions, _) in topics.items():
            for partition in range(partitions):
                first_timestamp = before[name][partition][0][4]
                (found,) = c.offsets_for_times([TopicPartition(name, partition, first_timestamp)], timeout=10)
                assert found.offset == 0, (name, partition)
                (found,) = c.offsets_for_times([TopicPartition(name, partition, 2**62)], timeout=10)
                assert found.offset == -1, (name, partition)
    finally:
        c.close()

    # New records continue at each partition's old log end.
    for name, (partitions, _) in topics.items():
        ends = {p: len(before[name][p]) for p in range(partitions)}
        reports = produce_batch(broker.bootstrap, name, "after", 40, partitions)
        for partition in range(partitions):
            offsets = [r.offset for r in reports if r.partition == partition]
            added = len(range(partition, 40, partitions))
            assert offsets == list(range(ends[partition], ends[partition] + added)), (name, partition)
        after = snapshot(broker.bootstrap, name, partitions)
        for partition in range(partitions):
            assert after[partition][: ends[partition]] == before[name][partition]
            assert [v for _, _, v, _, _ in after[partition][ends[partition]:]] == [
                f"after-{i}".encode() for i in range(partition, 40, partitions)
            ]


def test_restart_empty_topic_and_empty_broker(start_broker):
    b = start_broker()
    b.stop()
    b.start()  # a data directory with nothing in it yet
    topic = unique("empty")
    create_topic(b.bootstrap, topic, partitions=2)
    b.stop()
    b.start()
    assert len(topic_partitions(b.bootstrap, topic)) == 2
    assert watermarks(b.bootstrap, topic, 0) == (0, 0)
    (d,) = produce_all(producer(b.bootstrap), topic, [{"value": b"first", "partition": 1}])
    assert d.offset == 0


def test_deleted_topic_stays_deleted(broker):
    topic = unique("deleted")
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_batch(broker.bootstrap, topic, "x", 10, 2)
    delete_topic(broker.bootstrap, topic)
    broker.stop()
    broker.start()
    assert topic not in list_topic_names(broker.bootstrap)


def test_sigint_is_graceful(broker):
    topic = unique("sigint")
    create_topic(broker.bootstrap, topic)
    produce_batch(broker.bootstrap, topic, "x", 100, 1)
    assert broker.stop(sig=signal.SIGINT) == 0
    broker.start()
    assert watermarks(broker.bootstrap, topic, 0) == (0, 100)


def test_shutdown_does_not_wait_for_clients(broker):
    """SIGTERM ends the process promptly even with a consumer parked in a long poll
    (fetch.wait.max.ms=30 s) and an idle connection open: Kafka completes parked requests
    and closes connections on shutdown rather than waiting them out."""
    topic = unique("parked")
    create_topic(broker.bootstrap, topic)
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 30_000})
    idle = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer connect and park its fetch on the empty partition.
        settle_until = time.monotonic() + 1.5
        while time.monotonic() < settle_until:
            assert c.poll(0.1) is None
        started = time.monotonic()
        broker.stop(timeout_s=30)
        took_s = time.monotonic() - started
        assert took_s < 5.0, f"graceful shutdown took {took_s:.1f} s with a parked fetch and an idle connection"
    finally:
        idle.close()
        c.close()
