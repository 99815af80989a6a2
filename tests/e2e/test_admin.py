"""Topic administration, broker configuration, ListOffsets and Fetch edge cases, as Kafka does them.

Clients: confluent-kafka's AdminClient/Producer/Consumer, and kafka-python's admin client where
librdkafka refuses to send a request Kafka would reject (0 partitions).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewTopic, ResourceType

from kafka_helpers import (
    admin_client,
    admin_request,
    consume_range,
    consumer,
    create_topic,
    delete_topic,
    describe_configs,
    flush,
    list_topic_names,
    produce_all,
    producer,
    topic_partitions,
    unique,
    wait_for_topic,
    wait_until,
    watermarks,
)


def create_error(bootstrap: str, topic: NewTopic) -> KafkaError:
    futures = admin_request(bootstrap, lambda a: a.create_topics([topic], request_timeout=20))
    with pytest.raises(KafkaException) as raised:
        futures[topic.topic].result()
    return raised.value.args[0]


def describe_topic_configs(bootstrap: str, topic: str) -> dict:
    return describe_configs(bootstrap, ConfigResource(ResourceType.TOPIC, topic))


def describe_broker_configs(bootstrap: str) -> dict:
    metadata = admin_client(bootstrap).list_topics(timeout=10)
    (broker_id,) = metadata.brokers
    return describe_configs(bootstrap, ConfigResource(ResourceType.BROKER, str(broker_id)))


# -- topics -----------------------------------------------------------------------------


def test_create_list_describe_delete(broker):
    topic = unique("admin")
    create_topic(
        broker.bootstrap,
        topic,
        partitions=3,
        config={"retention.ms": "123456", "segment.bytes": "1048576", "cleanup.policy": "delete"},
    )
    assert topic in list_topic_names(broker.bootstrap)
    partitions = topic_partitions(broker.bootstrap, topic)
    assert sorted(partitions) == [0, 1, 2]
    (broker_id,) = admin_client(broker.bootstrap).list_topics(timeout=10).brokers
    assert set(partitions.values()) == {broker_id}

    configs = describe_topic_configs(broker.bootstrap, topic)
    for name, value in [("retention.ms", "123456"), ("segment.bytes", "1048576"), ("cleanup.policy", "delete")]:
        assert configs[name].value == value, name
        assert configs[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, name
        assert not configs[name].is_default, name
    # A config the topic did not set is described too, with its default.
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["message.timestamp.type"].value == "CreateTime"

    # Every partition directory exists on disk.
    for p in range(3):
        assert broker.partition_dir(topic, p).is_dir()

    delete_topic(broker.bootstrap, topic)
    wait_until(lambda: topic not in list_topic_names(broker.bootstrap), 20, f"{topic} gone from metadata")
    wait_until(
        lambda: not any(broker.partition_dir(topic, p).exists() for p in range(3)),
        20,
        f"{topic} partition directories deleted",
    )


def test_delete_then_recreate_starts_empty(broker):
    topic = unique("recreate")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_all(producer(broker.bootstrap), topic, [{"value": b"old-%d" % i} for i in range(10)])
    assert watermarks(broker.bootstrap, topic, 0) == (0, 10)

    delete_topic(broker.bootstrap, topic)
    wait_until(lambda: topic not in list_topic_names(broker.bootstrap), 20, f"{topic} deleted")

    create_topic(broker.bootstrap, topic, partitions=2)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    (delivery,) = produce_all(producer(broker.bootstrap), topic, [{"value": b"new", "partition": 0}])
    assert delivery.offset == 0
    (record,) = consume_range(broker.bootstrap, topic, 0, 0, 1)
    assert record.value == b"new"


def test_delete_unknown_topic(broker):
    topic = unique("never-created")
    with pytest.raises(KafkaException) as raised:
        delete_topic(broker.bootstrap, topic)
    assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_existing_topic(broker):
    topic = unique("exists")
    create_topic(broker.bootstrap, topic, partitions=2)
    error = create_error(broker.bootstrap, NewTopic(topic, num_partitions=2, replication_factor=1))
    assert error.code() == KafkaError.TOPIC_ALREADY_EXISTS, error
    # The failed create changed nothing.
    assert len(topic_partitions(broker.bootstrap, topic)) == 2


@pytest.mark.parametrize(
    "config",
    [
        {"retention.ms": "not-a-number"},
        {"segment.bytes": "-5"},
        {"cleanup.policy": "shred"},
        {"message.timestamp.type": "SometimesTime"},
        {"no.such.config": "1"},
    ],
    ids=["retention-not-a-number", "negative-segment-bytes", "bad-cleanup-policy", "bad-timestamp-type", "unknown-key"],
)
def test_create_invalid_config(broker, config):
    topic = unique("bad-config")
    error = create_error(broker.bootstrap, NewTopic(topic, num_partitions=1, replication_factor=1, config=config))
    assert error.code() == KafkaError.INVALID_CONFIG, error
    assert topic not in list_topic_names(broker.bootstrap)


@pytest.mark.parametrize("partitions", [0, -7])
def test_create_invalid_partitions(broker, partitions):
    """librdkafka refuses such counts before sending; kafka-python sends them as they are."""
    from kafka.admin import KafkaAdminClient

    topic = unique("bad-partitions")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        result = admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1}}, raise_errors=False
        )
    finally:
        admin.close()
    (topic_result,) = result["topics"]
    assert topic_result["name"] == topic
    # -1 would mean "the broker default"; other non-positive counts are invalid.
    assert topic_result["error_code"] == KafkaError.INVALID_PARTITIONS, topic_result
    assert topic not in list_topic_names(broker.bootstrap)


def test_invalid_topic_name(broker):
    error = create_error(broker.bootstrap, NewTopic("bad/name", num_partitions=1, replication_factor=1))
    assert error.code() == KafkaError.TOPIC_EXCEPTION, error


# -- broker configuration ---------------------------------------------------------------


def test_broker_settings_and_describe(start_broker):
    b = start_broker(settings={"num.partitions": 3, "log.segment.bytes": 2 * 1024 * 1024})
    configs = describe_broker_configs(b.bootstrap)
    assert configs["num.partitions"].value == "3"
    assert configs["log.segment.bytes"].value == str(2 * 1024 * 1024)
    assert configs["auto.create.topics.enable"].value == "true"

    # Auto-created topics take the broker's defaults.
    topic = unique("auto")
    produce_all(producer(b.bootstrap), topic, [{"value": b"x"}])
    wait_for_topic(b.bootstrap, topic, 3)
    assert describe_topic_configs(b.bootstrap, topic)["segment.bytes"].value == str(2 * 1024 * 1024)


def test_config_file(start_broker):
    """Kafka's broker keys in TOML, both as dotted and as quoted keys."""
    b = start_broker(
        config_text='num.partitions = 4\n"log.retention.ms" = 3600000\n',
    )
    configs = describe_broker_configs(b.bootstrap)
    assert configs["num.partitions"].value == "4"
    assert configs["log.retention.ms"].value == "3600000"
    topic = unique("auto")
    wait_until(lambda: len(topic_partitions(b.bootstrap, topic) or {}) == 4, 20, "auto-created with 4 partitions")


def test_broker_configs_list_every_key_with_its_source(start_broker):
    """Broker DescribeConfigs lists every settable key, and tells the given ones from defaults."""
    b = start_broker(settings={"group.max.size": 5, "log.retention.hours": 2, "num.partitions": 1})
    configs = describe_broker_configs(b.bootstrap)
    # Settable keys that DescribeConfigs used to leave out.
    for key in [
        "group.max.size",
        "group.initial.rebalance.delay.ms",
        "group.consumer.max.size",
        "offsets.retention.minutes",
        "offset.metadata.max.bytes",
        "log.retention.hours",
        "log.retention.minutes",
        "broker.id",
        "log.dir",
    ]:
        assert key in configs, key
    static, default = ConfigSource.STATIC_BROKER_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value
    assert (configs["group.max.size"].value, configs["group.max.size"].source) == ("5", static)
    # Given at start, even with the default value, is static, as Kafka reports server.properties.
    assert configs["num.partitions"].source == static
    assert configs["offset.metadata.max.bytes"].source == default
    assert configs["offset.metadata.max.bytes"].is_default
    assert configs["log.retention.minutes"].value is None  # Kafka's null: no default
    # log.retention.ms takes its value from log.retention.hours, and says so.
    retention = configs["log.retention.ms"]
    assert (retention.value, retention.source) == (str(2 * 3600 * 1000), static)
    assert {"log.retention.hours", "log.retention.ms"} <= set(retention.synonyms)
    # Flags are given settings too.
    assert configs["listeners"].source == static
    assert configs["log.dirs"].source == static
    # Topics created afterwards take the broker's value, reported as coming from the broker.
    topic = unique("from-broker")
    create_topic(b.bootstrap, topic)
    topic_retention = describe_topic_configs(b.bootstrap, topic)["retention.ms"]
    assert (topic_retention.value, topic_retention.source) == (str(2 * 3600 * 1000), static)


def test_auto_create_disabled(start_broker):
    b = start_broker(settings={"auto.create.topics.enable": False})
    topic = unique("not-auto")
    assert topic_partitions(b.bootstrap, topic) is None
    p = producer(b.bootstrap, **{"message.timeout.ms": 3000})
    errors = []
    p.produce(topic, value=b"x", on_delivery=lambda error, message: errors.append(error))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert topic not in list_topic_names(b.bootstrap)


def test_describe_cluster_and_advertised_address(start_broker):
    b = start_broker(extra_args=["--advertise", lambda broker: f"localhost:{broker.port}"])
    result = admin_request(b.bootstrap, lambda a: a.describe_cluster(request_timeout=20)).result()
    assert result.cluster_id
    assert len(result.nodes) == 1
    (node,) = result.nodes
    assert (node.host, node.port) == ("localhost", b.port)
    assert result.controller is not None and result.controller.id == node.id
    metadata = admin_client(b.bootstrap).list_topics(timeout=10)
    assert [(m.host, m.port) for m in metadata.brokers.values()] == [("localhost", b.port)]
    # Clients follow the advertised address and still get through.
    topic = unique("advertised")
    create_topic(b.bootstrap, topic)
    (d,) = produce_all(producer(b.bootstrap), topic, [{"value": b"via localhost"}])
    assert consume_range(b.bootstrap, topic, 0, d.offset, d.offset + 1)[0].value == b"via localhost"


# -- produce limits ---------------------------------------------------------------------


def test_max_message_bytes_enforced(broker):
    topic = unique("small-messages")
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "2048"})
    p = producer(broker.bootstrap, **{"compression.type": "none", "linger.ms": 0})
    reports = []
    p.produce(topic, value=b"x" * 4096, partition=0, on_delivery=lambda e, m: reports.append((e, m.offset())))
    flush(p)
    ((error, _),) = reports
    assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error

    # A small record still goes through, and the rejected one took no offset.
    (d,) = produce_all(p, topic, [{"value": b"small", "partition": 0}])
    assert d.offset == 0
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1)


def test_broker_message_max_bytes(start_broker):
    b = start_broker(settings={"message.max.bytes": 2048})
    topic = unique("auto-small")
    p = producer(b.bootstrap, **{"compression.type": "none", "linger.ms": 0})
    reports = []
    p.produce(topic, value=b"y" * 8192, on_delivery=lambda e, m: reports.append(e))
    flush(p)
    assert reports[0] is not None and reports[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports


# -- ListOffsets ------------------------------------------------------------------------


def test_list_offsets(broker):
    topic = unique("list-offsets")
    create_topic(broker.bootstrap, topic)
    t0 = int(time.time() * 1000) - 100_000
    # Two batches of ten records: timestamps t0, t0+1000, ..., then t0+20000, t0+21000, ...
    p = producer(broker.bootstrap, **{"linger.ms": 50})
    produce_all(p, topic, [{"value": b"a%d" % i, "timestamp": t0 + i * 1000, "partition": 0} for i in range(10)])
    produce_all(
        p, topic, [{"value": b"b%d" % i, "timestamp": t0 + 20_000 + i * 1000, "partition": 0} for i in range(10)]
    )
    assert watermarks(broker.bootstrap, topic, 0) == (0, 20)

    c = consumer(broker.bootstrap)
    try:
        cases = {
            t0 - 1: 0,  # before everything: the first record
            t0: 0,
            t0 + 3500: 4,  # inside the first batch: the first record at or after the time
            t0 + 9000: 9,
            t0 + 15_000: 10,  # between the batches
            t0 + 20_000 + 4500: 15,
            t0 + 29_000: 19,
            t0 + 29_001: -1,  # after everything: no offset (OFFSET_END)
            -2: 0,  # EARLIEST
            -1: 20,  # LATEST
        }
        for timestamp, expected in cases.items():
            (result,) = c.offsets_for_times([TopicPartition(topic, 0, timestamp)], timeout=10)
            assert result.error is None, (timestamp, result.error)
            assert result.offset == expected, f"timestamp {timestamp - t0 if timestamp > 0 else timestamp}"
    finally:
        c.close()


def test_list_offsets_unknown_partition(broker):
    topic = unique("one-partition")
    create_topic(broker.bootstrap, topic)
    c = consumer(broker.bootstrap)
    try:
        with pytest.raises(KafkaException):
            c.get_watermark_offsets(TopicPartition(topic, 5), timeout=5, cached=False)
    finally:
        c.close()


# -- Fetch ------------------------------------------------------------------------------


def test_fetch_out_of_range(broker):
    topic = unique("out-of-range")
    create_topic(broker.bootstrap, topic)
    produce_all(producer(broker.bootstrap), topic, [{"value": b"r%d" % i, "partition": 0} for i in range(5)])

    # auto.offset.reset=error: the consumer reports the out-of-range fetch.
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 100)])
        deadline = time.monotonic() + 20
        error = None
        while error is None and time.monotonic() < deadline:
            message = c.poll(0.2)
            if message is not None:
                assert message.error() is not None, f"got a record at offset {message.offset()}"
                error = message.error()
        assert error is not None, "no error within 20 s for a fetch beyond the log end"
        assert error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), error
    finally:
        c.close()

    # auto.offset.reset=earliest: the consumer starts over from offset 0.
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 100)])
        message = wait_until(lambda: c.poll(0.2), 20, "a record after the reset to earliest")
        assert message.error() is None, message.error()
        assert (message.offset(), message.value()) == (0, b"r0")
    finally:
        c.close()


def test_fetch_at_log_end_waits_without_error(broker):
    """Fetching at exactly the log end offset is not out of range: it waits for new records."""
    topic = unique("at-end")
    create_topic(broker.bootstrap, topic)
    produce_all(producer(broker.bootstrap), topic, [{"value": b"r%d" % i, "partition": 0} for i in range(3)])
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "error", "fetch.wait.max.ms": 200})
    try:
        c.assign([TopicPartition(topic, 0, 3)])
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            message = c.poll(0.1)
            assert message is None, (message.error(), message.offset())
        produce_all(producer(broker.bootstrap), topic, [{"value": b"r3", "partition": 0}])
        message = wait_until(lambda: c.poll(0.2), 20, "the record produced at the log end")
        assert message.error() is None, message.error()
        assert (message.offset(), message.value()) == (3, b"r3")
    finally:
        c.close()


def test_fetch_long_poll_wakes_on_produce(broker):
    """A fetch parked on an empty partition (fetch.wait.max.ms=10 s) answers as soon as a
    record arrives, not when its wait expires."""
    topic = unique("long-poll")
    create_topic(broker.bootstrap, topic)
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 10_000, "auto.offset.reset": "error"})
    p = producer(broker.bootstrap, **{"linger.ms": 0})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer connect and park its first fetch; nothing may arrive meanwhile.
        settle_until = time.monotonic() + 1.5
        while time.monotonic() < settle_until:
            message = c.poll(0.1)
            assert message is None, "a record (or error) arrived from an empty partition"
        for round_number in range(3):
            produced_at = time.monotonic()
            produce_all(p, topic, [{"value": b"wake-%d" % round_number, "partition": 0}])
            message = wait_until(lambda: c.poll(0.05), 10, "the produced record")
            latency_s = time.monotonic() - produced_at
            assert message.error() is None, message.error()
            assert (message.offset(), message.value()) == (round_number, b"wake-%d" % round_number)
            assert latency_s < 3.0, f"record delivered {latency_s:.2f} s after produce: long poll not woken"
    finally:
        c.close()


def test_many_partitions_fetch(broker):
    """One consumer assigned to many partitions reads each to its end."""
    topic = unique("wide")
    partitions = 12
    create_topic(broker.bootstrap, topic, partitions=partitions)
    p = producer(broker.bootstrap)
    produce_all(p, topic, [{"value": b"%d-%d" % (i % partitions, i), "partition": i % partitions} for i in range(1200)])
    c = consumer(broker.bootstrap)
    seen: dict[int, list] = {n: [] for n in range(partitions)}
    try:
        c.assign([TopicPartition(topic, n, 0) for n in range(partitions)])
        deadline = time.monotonic() + 30
        while sum(len(v) for v in seen.values()) < 1200:
            assert time.monotonic() < deadline, {n: len(v) for n, v in seen.items()}
            for message in c.consume(1000, 0.2):
                assert message.error() is None, message.error()
                seen[message.partition()].append((message.offset(), message.value()))
    finally:
        c.close()
    for n in range(partitions):
        expected = [b"%d-%d" % (n, i) for i in range(n, 1200, partitions)]
        assert seen[n] == list(enumerate(expected)), f"partition {n}"


def test_fetch_returns_a_batch_larger_than_the_fetch_limits(broker):
    """KIP-74: the first batch of a fetch comes back whole even if it is larger than
    max.partition.fetch.bytes and fetch.max.bytes, so a consumer never gets stuck on it."""
    topic = unique("big-record")
    create_topic(broker.bootstrap, topic)
    big = bytes(range(256)) * 2048  # 512 KiB
    p = producer(broker.bootstrap, **{"compression.type": "none"})
    produce_all(p, topic, [{"value": b"small-0", "partition": 0}, {"value": big, "partition": 0},
                           {"value": b"small-2", "partition": 0}])
    records = consume_range(
        broker.bootstrap, topic, 0, 0, 3,
        **{"fetch.max.bytes": 1024, "message.max.bytes": 1000, "max.partition.fetch.bytes": 1024,
           "receive.message.max.bytes": 2_000_000},
    )
    assert [r.value for r in records] == [b"small-0", big, b"small-2"]
