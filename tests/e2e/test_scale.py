"""Many partitions on one node under a small open-file limit (issue 10).

A node started with `ulimit -n 4096` hosts thousands of partitions: each holds no descriptor
while idle (segment files are opened through a bounded pool), so creating them, writing one
record to every one, reading them all back and restarting (cleanly and after kill -9) never
runs out of descriptors. A node whose limit is too small for what is asked refuses the extra
partitions before writing anything to the metadata log, and goes on serving.

CI runs 4 topics x 1,000 partitions (STROM_E2E_SCALE_TOPICS to change; 20 is the issue's full
size, measured in README). Records are produced with acks=1: acks=all costs five fsyncs on a
partition's first write (directory, parent, segment, leader epoch checkpoint), which is what
this test is not about.
"""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

TOPICS = int(os.environ.get("STROM_E2E_SCALE_TOPICS", "4"))
PARTITIONS = 1000
LIMIT = 4096


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024


def create(bootstrap: str, topics: list[NewTopic]) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(topics, request_timeout=120, operation_timeout=120)
    errors = {}
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as error:
            errors[name] = error.args[0]
    return errors


def value(topic: str, partition: int) -> bytes:
    return f"{topic}/{partition}".encode()


def read_one_from_each(bootstrap: str, names: list[str]) -> set:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale", "enable.auto.commit": False})
    consumer.assign([TopicPartition(name, p, 0) for name in names for p in range(PARTITIONS)])
    seen = set()
    deadline = time.monotonic() + 120
    try:
        while len(seen) < len(names) * PARTITIONS and time.monotonic() < deadline:
            for message in consumer.consume(10000, 1.0):
                if message.error():
                    continue
                assert message.value() == value(message.topic(), message.partition())
                seen.add((message.topic(), message.partition()))
    finally:
        consumer.close()
    return seen


@pytest.mark.timeout(600)
def test_thousands_of_partitions_under_4096_descriptors(start_broker):
    broker = start_broker(open_files_limit=LIMIT)
    assert f"{LIMIT // 2} open segment files (log.max.open.files)" in broker.log()
    names = [f"scale-{n}" for n in range(TOPICS)]

    started = time.monotonic()
    assert create(broker.bootstrap, [NewTopic(name, PARTITIONS, 1) for name in names]) == {}
    created_s = time.monotonic() - started
    assert descriptors(broker.pid) < LIMIT

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "1", "linger.ms": 20})
    failures = []
    for name in names:
        for partition in range(PARTITIONS):
            producer.produce(
                name,
                value(name, partition),
                partition=partition,
                on_delivery=lambda error, _: error and failures.append(error),
            )
        producer.poll(0)
    assert producer.flush(180) == 0 and failures == []
    assert descriptors(broker.pid) < LIMIT

    expected = {(name, p) for name in names for p in range(PARTITIONS)}
    assert read_one_from_each(broker.bootstrap, names) == expected

    broker.stop()
    started = time.monotonic()
    broker.start(timeout_s=120)
    clean_restart_s = time.monotonic() - started
    assert "as after a clean shutdown" in broker.run_log()
    assert read_one_from_each(broker.bootstrap, names) == expected

    broker.kill()
    started = time.monotonic()
    broker.start(timeout_s=180)
    crash_restart_s = time.monotonic() - started
    assert "as after a possibly unclean shutdown" in broker.run_log()
    assert read_one_from_each(broker.bootstrap, names) == expected
    assert descriptors(broker.pid) < LIMIT
    assert "Too many open files" not in broker.log()
    print(
        f"{TOPICS * PARTITIONS} partitions: create {created_s:.1f} s, clean restart {clean_restart_s:.1f} s, "
        f"restart after kill -9 {crash_restart_s:.1f} s, RSS {rss_mib(broker.pid)} MiB, "
        f"descriptors {descriptors(broker.pid)}"
    )


@pytest.mark.timeout(120)
def test_a_node_refuses_partitions_beyond_what_it_can_host_and_keeps_serving(start_broker):
    # 256 descriptors: 128 open files, so at most 2,048 partitions (16 per open file).
    broker = start_broker(open_files_limit=256)
    assert "2048 partitions per broker (max.broker.partitions)" in broker.log()

    errors = create(broker.bootstrap, [NewTopic("too-big", 3000, 1)])
    error = errors["too-big"]
    assert error.code() == 44, error  # POLICY_VIOLATION
    assert "max.broker.partitions" in error.str() and "2048" in error.str(), error.str()

    # Nothing reached the metadata log, which still takes writes.
    assert create(broker.bootstrap, [NewTopic("fits", 1000, 1)]) == {}
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert "too-big" not in topics and len(topics["fits"].partitions) == 1000

    future = admin.create_partitions([NewPartitions("fits", 2100)], request_timeout=30)["fits"]
    with pytest.raises(KafkaException) as refused:
        future.result()
    assert refused.value.args[0].code() == 37, refused.value  # INVALID_PARTITIONS

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce("fits", b"still serving", partition=999)
    assert producer.flush(30) == 0
    broker.assert_running()
    assert "Too many open files" not in broker.log()
