"""Log compaction (cleanup.policy=compact) through the real broker and librdkafka.

A compacted topic keeps, below its active segment, only the latest record of each key;
tombstones (null values) delete keys; records without a key are refused; the internal
__consumer_offsets topic is compacted too.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic

from kafka_helpers import admin_request, unique, wait_until

KEYS = 10
ROUNDS = 40


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the start to the end offset seen now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        records = []
        deadline = time.monotonic() + 30
        while (not records or records[-1][0] < high - 1) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            records.append((message.offset(), message.key(), message.value()))
        return records
    finally:
        consumer.close()


def test_compaction_keeps_the_latest_value_of_each_key(start_broker):
    broker = start_broker(settings={"log.cleaner.backoff.ms": "300"})
    topic = unique("compacted")
    configs = {"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "600000"}
    admin_request(broker.bootstrap, lambda a: a.create_topics([NewTopic(topic, 1, 1, config=configs)]))[topic].result()
    # Small batches: a batch larger than segment.bytes is refused (RECORD_LIST_TOO_LARGE), as in
    # Kafka, and librdkafka would otherwise put the tombstone and the fillers in one.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 10})
    failed = []

    def delivered(error, _message):
        if error is not None:
            failed.append(error)

    for round_ in range(ROUNDS):
        for key in range(KEYS):
            producer.produce(topic, key=f"k{key}", value=f"v{round_}", on_delivery=delivered)
        producer.flush(10)
    # Delete one key with a tombstone, then push it out of the active segment.
    producer.produce(topic, key="k0", value=None, on_delivery=delivered)
    producer.flush(10)
    for filler in range(60):
        producer.produce(topic, key=f"filler{filler}", value="x" * 40, on_delivery=delivered)
    assert producer.flush(10) == 0 and not failed, failed
    produced = ROUNDS * KEYS + 1 + 60

    def compacted():
        records = read_all(broker.bootstrap, topic)
        return records if len(records) < produced / 4 else None

    records = wait_until(compacted, 40, "the cleaner compacts the topic")
    latest = {}
    for offset, key, value in records:
        latest[key] = (offset, value)
    for key in range(1, KEYS):
        assert latest[f"k{key}".encode()][1] == f"v{ROUNDS - 1}".encode(), key
    # The tombstone itself stays for delete.retention.ms, so readers learn that k0 is gone.
    assert latest[b"k0"][1] is None, "k0's latest record is its tombstone"
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets kept, in order"
    assert "compacted" in broker.log()


def test_a_compacted_topic_refuses_records_without_a_key(start_broker):
    broker = start_broker()
    topic = unique("keyed")
    admin_request(broker.bootstrap, lambda a: a.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})]))[topic].result()
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    producer.produce(topic, value=b"no key", on_delivery=lambda error, _m: errors.append(error))
    producer.flush(10)
    assert errors and errors[0] is not None and errors[0].name() == "INVALID_RECORD", errors


def test_consumer_offsets_is_compacted(broker):
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
    described = admin_request(broker.bootstrap, lambda a: a.describe_configs([resource]))[resource].result()
    assert described["cleanup.policy"].value == "compact"
    try:
        admin_request(broker.bootstrap, lambda a: a.delete_topics(["__consumer_offsets"]))["__consumer_offsets"].result()
    except KafkaException as error:
        assert error.args[0].code() == 17, error  # INVALID_TOPIC_EXCEPTION (librdkafka: TOPIC_EXCEPTION)
    else:
        raise AssertionError("deleting __consumer_offsets must be refused")
