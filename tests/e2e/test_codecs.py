"""Produce and consume 100,000 records per compression codec with librdkafka.

Every record carries a key, headers, an explicit CreateTime timestamp and a per-key sequence
number in its value; reading every partition back from offset 0 with assign() must give each
record exactly once, at the offset its delivery report named, in per-key order, intact.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from kafka_helpers import (
    assert_dense,
    consume_range,
    create_topic,
    flush,
    producer,
    unique,
    watermarks,
)
from segment_file import scan_file

RECORD_COUNT = 100_000
PARTITIONS = 3
KEY_COUNT = 37
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def batches_on_disk(broker, topic: str, partition: int):
    batches = []
    for segment in broker.segment_files(topic, partition):
        result = scan_file(segment, verify_crc=False)
        assert result.valid_bytes == result.file_bytes, f"{segment.name}: bytes after the last whole batch"
        batches += result.batches
    return batches


def make_record(index: int, codec: str, base_timestamp_ms: int) -> dict:
    """Record `index`: key k, sequence number s = its rank among key k's records."""
    key_number = index % KEY_COUNT
    sequence = index // KEY_COUNT
    key = f"key-{key_number:03d}".encode()
    # Half repetitive (so codecs have something to compress), half varying per record.
    filler = f"{index * 2654435761 % 4294967296:010d}" * 3 + "abcdefgh" * 4
    value = f"{key_number}|{sequence}|{index}|{filler}".encode()
    headers = [("index", str(index).encode()), ("codec", codec.encode())]
    if index % 7 == 0:
        headers.append(("null-header", None))
    if index % 11 == 0:
        headers.append(("empty-header", b""))
    return {
        "key": key,
        "value": value,
        "headers": headers,
        "timestamp": base_timestamp_ms + index,
    }


def parse_value(value: bytes) -> tuple[int, int, int]:
    key_number, sequence, index, _ = value.decode().split("|", 3)
    return int(key_number), int(sequence), int(index)


def produce_records(bootstrap: str, topic: str, codec: str, count: int, base_timestamp_ms: int):
    """Produces `count` records, returns {index: (partition, offset)} from the delivery reports."""
    p = producer(
        bootstrap,
        **{
            "compression.type": codec,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2 * count,
            "queue.buffering.max.kbytes": 1_048_576,
            # No retries: without idempotence a retry could reorder batches, and the broker
            # should never make one necessary here.
            "retries": 0,
            "message.timeout.ms": 120_000,
        },
    )
    positions: dict[int, tuple[int, int]] = {}
    errors = []

    def on_delivery(error, message):
        if error is not None:
            errors.append(error)
            return
        _, _, index = parse_value(message.value())
        positions[index] = (message.partition(), message.offset())

    for index in range(count):
        record = make_record(index, codec, base_timestamp_ms)
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery, **record)
                break
            except BufferError:
                p.poll(0.05)
        if index % 1000 == 0:
            p.poll(0)
    flush(p, 120)
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert len(positions) == count
    return positions


@pytest.mark.timeout(420)
@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip(broker, codec):
    topic = unique(f"codec-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    base_timestamp_ms = int(time.time() * 1000) - 10 * 60 * 1000

    started = time.monotonic()
    positions = produce_records(broker.bootstrap, topic, codec, RECORD_COUNT, base_timestamp_ms)
    produced_s = time.monotonic() - started

    per_partition: dict[int, int] = {}
    for partition, _ in positions.values():
        per_partition[partition] = per_partition.get(partition, 0) + 1
    assert len(per_partition) == PARTITIONS, f"keys landed on partitions {sorted(per_partition)} only"
    at_offset = {position: index for index, position in positions.items()}

    seen = 0
    for partition in range(PARTITIONS):
        low, high = watermarks(broker.bootstrap, topic, partition)
        assert (low, high) == (0, per_partition[partition]), f"partition {partition} watermarks"
        records = consume_range(broker.bootstrap, topic, partition, 0, high, timeout_s=120)
        assert_dense(records)
        last_sequence: dict[int, int] = {}
        for record in records:
            key_number, sequence, index = parse_value(record.value)
            assert at_offset[(partition, record.offset)] == index, (
                f"partition {partition} offset {record.offset} holds record {index}, "
                f"delivery report said record {at_offset[(partition, record.offset)]}"
            )
            expected = make_record(index, codec, base_timestamp_ms)
            assert record.key == expected["key"]
            assert record.value == expected["value"]
            assert record.headers == expected["headers"], f"record {index} headers"
            assert (record.timestamp_type, record.timestamp) == (TIMESTAMP_CREATE_TIME, expected["timestamp"])
            assert sequence > last_sequence.get(key_number, -1), (
                f"key {key_number}: sequence {sequence} after {last_sequence.get(key_number)}"
            )
            last_sequence[key_number] = sequence
        seen += len(records)
    assert seen == RECORD_COUNT

    # The broker stores the producer's batches as they came: still compressed with the codec.
    for partition in range(PARTITIONS):
        batches = batches_on_disk(broker, topic, partition)
        assert sum(b.record_count for b in batches) == per_partition[partition]
        # (librdkafka sends LZ4 uncompressed unless the broker advertises FindCoordinator, which
        # it takes as its sign of LZ4 support.)
        assert {b.compression for b in batches} == {CODEC_IDS[codec]}, (
            f"partition {partition}: batches stored with codecs {sorted({b.compression for b in batches})}"
        )
    print(f"{codec}: produced {RECORD_COUNT} records in {produced_s:.1f} s, consumed in "
          f"{time.monotonic() - started - produced_s:.1f} s")


def check_log_append_time(broker, topic: str, codec: str) -> None:
    """Records produced with old CreateTime timestamps come back stamped with broker time."""
    bootstrap = broker.bootstrap
    count = 500
    old_timestamp_ms = int(time.time() * 1000) - 5 * 60 * 1000
    reports = []

    def on_delivery(error, message):
        reports.append((error, message.partition(), message.offset(), message.timestamp()))

    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20})
    window_start_ms = int(time.time() * 1000)
    for index in range(count):
        p.produce(topic, key=b"k", value=f"v{index}".encode(), timestamp=old_timestamp_ms + index,
                  on_delivery=on_delivery)
    flush(p)
    window_end_ms = int(time.time() * 1000) + 1

    assert [r[0] for r in reports if r[0] is not None] == []
    for _, _, offset, (timestamp_type, timestamp) in reports:
        # ProduceResponse carries log_append_time_ms for such topics; librdkafka reports it.
        assert timestamp_type == TIMESTAMP_LOG_APPEND_TIME, f"delivery report of offset {offset}"
        assert window_start_ms <= timestamp <= window_end_ms

    records = consume_range(bootstrap, topic, 0, 0, count)
    assert_dense(records)
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(count)]
    for record in records:
        assert record.timestamp_type == TIMESTAMP_LOG_APPEND_TIME, f"offset {record.offset}"
        assert window_start_ms <= record.timestamp <= window_end_ms, (
            f"offset {record.offset}: timestamp {record.timestamp} outside the produce window "
            f"[{window_start_ms}, {window_end_ms}]"
        )
    # On disk, as in Kafka: each batch flagged LogAppendTime, its max timestamp the append time.
    batches = batches_on_disk(broker, topic, 0)
    assert sum(b.record_count for b in batches) == count
    for batch in batches:
        assert batch.log_append_time, f"batch at offset {batch.base_offset} not flagged LogAppendTime"
        # librdkafka sends a batch uncompressed when compressing would not shrink it (a lone
        # small record, say); the broker stores what it got.
        assert batch.compression in (CODEC_IDS[codec], 0), f"batch at offset {batch.base_offset}"
        assert window_start_ms <= batch.max_timestamp <= window_end_ms
    assert any(batch.compression == CODEC_IDS[codec] for batch in batches), "no batch stored compressed"


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_log_append_time_topic(broker, codec):
    topic = unique("log-append-time")
    create_topic(broker.bootstrap, topic, partitions=1, config={"message.timestamp.type": "LogAppendTime"})
    check_log_append_time(broker, topic, codec)


def test_log_append_time_broker_default(start_broker):
    """log.message.timestamp.type on the broker is the default of auto-created topics."""
    b = start_broker(settings={"log.message.timestamp.type": "LogAppendTime", "num.partitions": 1})
    check_log_append_time(b, unique("auto-created"), "lz4")
