"""Three real clients against one broker: librdkafka (confluent-kafka), kafka-python and kcat.

Each client produces a set of keyed records; every client then reads the whole topic back with
explicit partition assignment and must see exactly those records: offsets dense from 0, per-key
order kept, keys, values and (where the client carries them) headers and timestamps intact.
kcat here is Debian's, linked against its own librdkafka (2.0.2), older than confluent-kafka's.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from kafka_helpers import (
    consume_range,
    create_topic,
    produce_all,
    producer,
    unique,
    watermarks,
)

PARTITIONS = 2
RECORD_COUNT = 300
KCAT_TIMEOUT_S = 60


@dataclass(frozen=True)
class Seen:
    """A record as any of the clients reads it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int | None = None


def sample(producer_name: str, base_timestamp_ms: int) -> list[dict]:
    return [
        {
            "key": f"key-{i % 10}".encode(),
            "value": f"{producer_name}-value-{i}".encode(),
            "headers": (("n", str(i).encode()), ("from", producer_name.encode())),
            "timestamp": base_timestamp_ms + i,
        }
        for i in range(RECORD_COUNT)
    ]


def kcat() -> str:
    path = shutil.which("kcat")
    assert path, "kcat is not installed (scripts/test installs it)"
    return path


# -- producing with each client ---------------------------------------------------------


def produce_confluent(bootstrap, topic, records):
    p = producer(bootstrap)
    reports = produce_all(
        p,
        topic,
        [
            {"key": r["key"], "value": r["value"], "headers": list(r["headers"]), "timestamp": r["timestamp"]}
            for r in records
        ],
    )
    return [(d.partition, d.offset) for d in reports]


def produce_kafka_python(bootstrap, topic, records, compression_type=None):
    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        compression_type=compression_type,
        linger_ms=5,
        request_timeout_ms=20000,
        max_block_ms=20000,
    )
    try:
        futures = [
            p.send(
                topic,
                key=r["key"],
                value=r["value"],
                headers=list(r["headers"]),
                timestamp_ms=r["timestamp"],
            )
            for r in records
        ]
        p.flush(timeout=30)
        metadata = [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)
    return [(m.partition, m.offset) for m in metadata]


def produce_kcat(bootstrap, topic, records):
    """kcat -P reads `key<TAB>value` lines; it cannot set per-record headers or timestamps."""
    lines = b"".join(r["key"] + b"\t" + r["value"] + b"\n" for r in records)
    result = subprocess.run(
        [kcat(), "-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-X", "message.timeout.ms=20000"],
        input=lines,
        capture_output=True,
        timeout=KCAT_TIMEOUT_S,
    )
    # kcat -P exits non-zero when a delivery failed; the readers check the content.
    assert result.returncode == 0, f"kcat -P exited {result.returncode}: {result.stderr.decode()}"
    return None  # kcat does not report offsets


# -- consuming with each client ---------------------------------------------------------


def consume_confluent(bootstrap, topic, partitions):
    seen = []
    for partition in range(partitions):
        low, high = watermarks(bootstrap, topic, partition)
        assert low == 0
        for r in consume_range(bootstrap, topic, partition, 0, high):
            seen.append(Seen(r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp))
    return seen


def consume_kafka_python(bootstrap, topic, partitions, timeout_s=30.0):
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=100,
        request_timeout_ms=20000,
    )
    seen = []
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        ends = c.end_offsets(tps)
        for tp in tps:
            c.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, (
                f"kafka-python read {len(seen)} records within {timeout_s} s; "
                f"positions { {tp.partition: c.position(tp) for tp in tps} }, ends {ends}"
            )
            for tp, batch in c.poll(timeout_ms=200).items():
                for r in batch:
                    seen.append(
                        Seen(r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)
                    )
    finally:
        c.close()
    return seen


def consume_kcat(bootstrap, topic, partitions):
    # -e: exit at the end of every partition. %h prints headers as k=v,k=v.
    fmt = r"%p\t%o\t%k\t%s\t%T\t%h\n"
    result = subprocess.run(
        [kcat(), "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt],
        capture_output=True,
        timeout=KCAT_TIMEOUT_S,
    )
    assert result.returncode == 0, f"kcat -C exited {result.returncode}: {result.stderr.decode()}"
    seen = []
    for line in result.stdout.splitlines():
        partition, offset, key, value, timestamp, headers = line.split(b"\t")
        header_pairs = ()
        if headers:
            header_pairs = tuple(
                (name.decode(), value_) for name, value_ in (h.split(b"=", 1) for h in headers.split(b","))
            )
        seen.append(Seen(int(partition), int(offset), key, value, header_pairs, int(timestamp)))
    return seen


CONSUMERS = {
    "confluent-kafka": consume_confluent,
    "kafka-python": consume_kafka_python,
    "kcat": consume_kcat,
}


def check(seen: list[Seen], records: list[dict], positions, reader: str, with_headers: bool, with_timestamps: bool):
    """seen (by one reader) holds exactly `records`, at `positions` when known."""
    by_partition: dict[int, list[Seen]] = {}
    for s in seen:
        by_partition.setdefault(s.partition, []).append(s)
    assert sum(len(v) for v in by_partition.values()) == len(records), f"{reader}: record count"
    key_partition = {}
    for partition, items in by_partition.items():
        items.sort(key=lambda s: s.offset)
        assert [s.offset for s in items] == list(range(len(items))), f"{reader}: offsets of {partition}"
        for s in items:
            assert key_partition.setdefault(s.key, partition) == partition, f"{reader}: key {s.key} split"
    # Per partition, the records in produce order of the keys it holds.
    for partition, items in by_partition.items():
        expected = [r for r in records if key_partition.get(r["key"]) == partition]
        assert [(s.key, s.value) for s in items] == [(r["key"], r["value"]) for r in expected], (
            f"{reader}: partition {partition} content/order"
        )
        for s, r in zip(items, expected):
            if with_headers:
                assert s.headers == r["headers"], f"{reader}: headers at {partition}/{s.offset}"
            if with_timestamps:
                assert s.timestamp == r["timestamp"], f"{reader}: timestamp at {partition}/{s.offset}"
    if positions is not None:
        got = {(s.partition, s.offset): s.value for s in seen}
        for (partition, offset), r in zip(positions, records):
            assert got.get((partition, offset)) == r["value"], f"{reader}: value at acknowledged {partition}/{offset}"


@pytest.mark.parametrize(
    "producer_name",
    ["confluent-kafka", "kafka-python", "kafka-python-gzip", "kcat"],
)
def test_cross_client(broker, producer_name):
    topic = unique(f"clients-{producer_name}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    records = sample(producer_name, int(time.time() * 1000) - 60_000)
    if producer_name == "confluent-kafka":
        positions = produce_confluent(broker.bootstrap, topic, records)
    elif producer_name == "kafka-python":
        positions = produce_kafka_python(broker.bootstrap, topic, records)
    elif producer_name == "kafka-python-gzip":
        positions = produce_kafka_python(broker.bootstrap, topic, records, compression_type="gzip")
    else:
        positions = produce_kcat(broker.bootstrap, topic, records)
    carries_metadata = producer_name != "kcat"

    for reader, consume in CONSUMERS.items():
        seen = consume(broker.bootstrap, topic, PARTITIONS)
        check(seen, records, positions, reader, with_headers=carries_metadata, with_timestamps=carries_metadata)


def test_kcat_metadata_listing(broker):
    topic = unique("kcat-list")
    create_topic(broker.bootstrap, topic, partitions=3)
    result = subprocess.run(
        [kcat(), "-b", broker.bootstrap, "-L", "-t", topic], capture_output=True, timeout=KCAT_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in out, out
    for partition in range(3):
        assert f"partition {partition}, leader" in out, out


def test_kafka_python_auto_created_topic(broker):
    """kafka-python produces to a topic nobody created: the broker creates it on first use."""
    topic = unique("kp-auto")
    records = sample("kafka-python", int(time.time() * 1000) - 1000)[:20]
    positions = produce_kafka_python(broker.bootstrap, topic, records)
    partitions = 1 + max(p for p, _ in positions)
    low_high = [watermarks(broker.bootstrap, topic, p) for p in range(partitions)]
    assert sum(high for _, high in low_high) == len(records)
