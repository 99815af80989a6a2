"""librdkafka (confluent-kafka) as the load for `strom bench suite --librdkafka`.

Run by the suite with the project's venv Python; prints one JSON object on stdout.

    python librdkafka_load.py produce BOOTSTRAP TOPIC RECORD_BYTES ACKS SECONDS
    python librdkafka_load.py e2e BOOTSTRAP TOPIC RECORD_BYTES RATE SECONDS WARMUP_SECONDS

produce: a librdkafka producer with its default settings (apart from acks) sends as fast as
Python can hand it records for SECONDS, then flushes. Records are counted as the broker holds
them (the partition's high watermark moved by), so nothing lost is counted.

e2e: a producer process at RATE records/s (linger.ms=0, acks=all) stamps each value with
time.time_ns() at produce(); this process consumes with librdkafka's default consumer
settings (fetch.wait.max.ms=500, fetch.min.bytes=1) and reports the latency percentiles of
the records stamped after WARMUP_SECONDS.
"""

import json
import multiprocessing
import random
import string
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

WATERMARK_TIMEOUT_S = 10
FLUSH_TIMEOUT_S = 120


def letters(size: int) -> bytes:
    return "".join(random.choice(string.ascii_uppercase) for _ in range(size)).encode()


def high_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "strom-bench-watermarks"})
    try:
        metadata = consumer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)
        total = 0
        for partition in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S
            )
            total += high
        return total
    finally:
        consumer.close()


def produce(bootstrap: str, topic: str, record_bytes: int, acks: str, seconds: float) -> dict:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks})
    producer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)  # creates it, learns the leader
    before = high_watermark(bootstrap, topic)
    value = letters(record_bytes)
    started = time.perf_counter()
    deadline = started + seconds
    sent = 0
    while True:
        for _ in range(1000):
            try:
                producer.produce(topic, value)
                sent += 1
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
        if time.perf_counter() >= deadline:
            break
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    records = high_watermark(bootstrap, topic) - before
    return {
        "records": records,
        "sent": sent,
        "undelivered": remaining,
        "seconds": elapsed,
        "records_per_s": records / elapsed,
        "mb_per_s": records * record_bytes / elapsed / 1e6,
    }


def e2e_producer(bootstrap: str, topic: str, record_bytes: int, rate: float, seconds: float, ready):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    producer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)
    padding = letters(max(0, record_bytes - 8))
    ready.wait()
    started = time.perf_counter()
    index = 0
    while True:
        due = started + index / rate
        now = time.perf_counter()
        if due - now > 0:
            time.sleep(due - now)
        if due - started >= seconds:
            break
        producer.produce(topic, time.time_ns().to_bytes(8, "big") + padding)
        producer.poll(0)
        index += 1
    producer.flush(FLUSH_TIMEOUT_S)


def percentile(sorted_values: list, quantile: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(quantile * len(sorted_values) + 0.999999) - 1))
    return sorted_values[index]


def e2e(bootstrap: str, topic: str, record_bytes: int, rate: float, seconds: float, warmup: float) -> dict:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"strom-bench-e2e-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)
    partitions = []
    for partition in metadata.topics[topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S)
        partitions.append(TopicPartition(topic, partition, high))
    consumer.assign(partitions)
    ready = multiprocessing.Event()
    producer = multiprocessing.Process(
        target=e2e_producer, args=(bootstrap, topic, record_bytes, rate, seconds, ready)
    )
    producer.start()
    # Let the consumer connect and park its first fetch before the load starts.
    consumer.poll(1.0)
    ready.set()
    warm_from = time.time_ns() + int(warmup * 1e9)
    expected = int(rate * seconds)
    latencies_ms = []
    received = 0
    deadline = time.monotonic() + seconds + 60
    while received < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        arrived = time.time_ns()
        received += 1
        stamp = int.from_bytes(message.value()[:8], "big")
        if stamp >= warm_from:
            latencies_ms.append((arrived - stamp) / 1e6)
    producer.join()
    consumer.close()
    latencies_ms.sort()
    return {
        "records": received,
        "expected": expected,
        "seconds": seconds,
        "records_per_s": received / seconds,
        "mb_per_s": received * record_bytes / seconds / 1e6,
        "latency": {
            "samples": len(latencies_ms),
            "mean_ms": sum(latencies_ms) / len(latencies_ms) if latencies_ms else float("nan"),
            "p50_ms": percentile(latencies_ms, 0.50),
            "p99_ms": percentile(latencies_ms, 0.99),
            "p999_ms": percentile(latencies_ms, 0.999),
            "max_ms": latencies_ms[-1] if latencies_ms else float("nan"),
        },
    }


def main(argv: list) -> None:
    mode = argv[1]
    if mode == "produce":
        _, _, bootstrap, topic, size, acks, seconds = argv
        result = produce(bootstrap, topic, int(size), acks, float(seconds))
    elif mode == "e2e":
        _, _, bootstrap, topic, size, rate, seconds, warmup = argv
        result = e2e(bootstrap, topic, int(size), float(rate), float(seconds), float(warmup))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
