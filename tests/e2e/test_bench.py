"""`strom bench` against a live broker: its figures come out (`--json`) and its record counts
match what the broker holds, checked with librdkafka's watermarks. No timing thresholds: the
figures are only checked to be there and consistent, never to be fast.
"""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import raw_kafka
from strom_broker import STROM_BIN
from kafka_helpers import consume_all, topic_partitions, unique, wait_until, watermarks

BENCH_TIMEOUT_S = 120


def bench(*args: str, timeout_s: float = BENCH_TIMEOUT_S) -> dict:
    result = subprocess.run(
        [STROM_BIN, "bench", *args, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, (
        f"`strom bench {' '.join(args)}` exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert result.stderr == "", f"no progress bar or notes without a terminal: {result.stderr!r}"
    return json.loads(result.stdout)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (Utils.murmur2), as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def kafka_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafka():
    # Kafka's UtilsTest.testMurmur2 vectors.
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == -985981536 & 0xFFFFFFFF


def assert_latency(summary: dict | None, samples_min: int = 1) -> None:
    assert summary is not None
    assert summary["samples"] >= samples_min
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["p999_ms"] <= summary["max_ms"]


def total_records(bootstrap: str, topic: str) -> int:
    partitions = topic_partitions(bootstrap, topic)
    assert partitions is not None, f"topic {topic} exists"
    total = 0
    for partition in partitions:
        low, high = watermarks(bootstrap, topic, partition)
        assert low == 0
        total += high
    return total


def test_produce_then_consume_counts_match_the_broker(broker):
    bs = broker.bootstrap
    topic = unique("bench")
    produced = bench(
        "produce", "--bootstrap", bs, "--topic", topic, "--partitions", "3",
        "--records", "20000", "--record-size", "200", "--acks", "1", "--connections", "2",
    )
    assert produced["bench"] == "produce"
    assert produced["settings"]["partitions"] == 3
    throughput = produced["throughput"]
    assert throughput["records"] == 20000
    assert throughput["payload_bytes"] == 20000 * 200
    assert throughput["batch_bytes"] > throughput["payload_bytes"]
    assert throughput["records_per_s"] > 0 and throughput["mb_per_s"] > 0
    assert_latency(produced["produce_latency"])
    assert produced["produce_requests"] == produced["produce_latency"]["samples"]
    assert total_records(bs, topic) == 20000

    consumed = bench("consume", "--bootstrap", bs, "--topic", topic, "--check-crc")
    assert consumed["throughput"]["records"] == 20000
    assert consumed["throughput"]["payload_bytes"] == 20000 * 200
    assert_latency(consumed["fetch_latency"])


def test_keys_compression_and_rate(broker):
    bs = broker.bootstrap
    topic = unique("bench-keys")
    produced = bench(
        "produce", "--bootstrap", bs, "--topic", topic, "--partitions", "2", "--records", "3000",
        "--record-size", "50", "--keys", "100", "--compression", "zstd", "--rate", "20000",
        "--linger-ms", "1",
    )
    assert produced["throughput"]["records"] == 3000
    assert produced["settings"]["compression"] == "zstd"
    assert total_records(bs, topic) == 3000
    # Keys are 2-digit decimals, each in the partition Kafka's murmur2 partitioner picks.
    for partition in (0, 1):
        records = consume_all(bs, topic, partition)
        assert records, f"partition {partition} got records"
        for record in records:
            assert len(record.key) == 2 and record.key.isdigit(), record.key
            assert kafka_partition(record.key, 2) == partition, record.key
            assert len(record.value) == 50


def test_end_to_end_reads_back_everything_it_sent(broker):
    bs = broker.bootstrap
    topic = unique("bench-e2e")
    report = bench(
        "e2e", "--bootstrap", bs, "--topic", topic, "--rate", "500", "--records", "1000",
        "--warmup", "0",
    )
    assert report["throughput"]["records"] == 1000
    assert report["consumed"]["records"] == 1000
    assert report["unstamped_records"] == 0
    assert_latency(report["end_to_end_latency"], samples_min=1000)
    assert_latency(report["produce_latency"])
    assert total_records(bs, topic) == 1000


def test_errors_are_reported_not_raised(broker):
    result = subprocess.run(
        [STROM_BIN, "bench", "consume", "--bootstrap", broker.bootstrap, "--topic", unique("missing")],
        capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
    )
    assert result.returncode != 0
    assert "UNKNOWN_TOPIC_OR_PARTITION" in result.stderr, result.stderr


def describe_producers(bootstrap: str, topic: str, partitions: list[int]) -> dict:
    """Each partition's producers as DescribeProducers reports them."""
    sock = raw_kafka.connect(bootstrap)
    try:
        sock.sendall(raw_kafka.describe_producers_request(1, topic, partitions))
        return raw_kafka.parse_describe_producers_response(raw_kafka.read_response(sock, timeout_s=10))
    finally:
        sock.close()


def read_committed(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 30) -> list:
    """The values a read_committed consumer reads from the start of `topic`, once it has
    `expected` of them and nothing more arrives for a second."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("bench-reader"),
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
    })
    try:
        c.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
        values = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and (len(values) < expected or time.monotonic() - quiet_since < 1):
            for message in c.consume(num_messages=10000, timeout=0.2):
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(message.error())
                values.append(message.value())
                quiet_since = time.monotonic()
        return values
    finally:
        c.close()


def lso_and_high_watermark(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """ListOffsets latest as read_committed (the last stable offset) and as read_uncommitted."""
    found = []
    for isolation in ("read_committed", "read_uncommitted"):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-lso"), "isolation.level": isolation})
        try:
            found.append(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1])
        finally:
            c.close()
    return found[0], found[1]


def test_idempotent_produce_numbers_every_batch(broker):
    bs = broker.bootstrap
    topic = unique("bench-idempotent")
    report = bench(
        "produce", "--bootstrap", bs, "--topic", topic, "--partitions", "2", "--connections", "2",
        "--records", "6000", "--record-size", "100", "--idempotent",
    )
    assert report["settings"]["delivery"] == "idempotent"
    assert report["settings"]["acks"] == "all"
    assert report["throughput"]["records"] == 6000
    assert report["transactions"] is None
    assert total_records(bs, topic) == 6000, "records only: no transaction markers"
    producers = describe_producers(bs, topic, [0, 1])
    ids = set()
    for partition in (0, 1):
        assert producers[partition]["error_code"] == 0
        (state,) = producers[partition]["producers"]
        ids.add(state["producer_id"])
        assert state["producer_id"] >= 0 and state["producer_epoch"] == 0
        assert state["last_sequence"] == 3000 - 1, "every record numbered, from 0, in order"
        assert state["current_txn_start_offset"] == -1
    assert len(ids) == 2, "a producer id per connection"


def test_transactional_produce_commits_every_transaction(broker):
    bs = broker.bootstrap
    topic = unique("bench-transactional")
    report = bench(
        "produce", "--bootstrap", bs, "--topic", topic, "--partitions", "3", "--connections", "3",
        "--records", "9000", "--record-size", "100", "--transactional", "--transaction-records", "700",
    )
    assert report["settings"]["delivery"] == "transactional"
    assert report["settings"]["records_per_transaction"] == 700
    assert report["throughput"]["records"] == 9000
    # Three producers of 3,000 records each: four transactions of 700 and one of 200.
    assert report["transactions"] == 15
    assert report["transactions_per_s"] > 0
    assert report["coordinator_retries"] >= 0
    assert_latency(report["commit_latency"], samples_min=15)
    # The coordinator writes the markers after answering the last commit: one per partition
    # per transaction, after which nothing is left open.
    for partition in range(3):
        wait_until(
            lambda: lso_and_high_watermark(bs, topic, partition) == (3005, 3005), 30,
            f"partition {partition}: 3,000 records and 5 commit markers, the last stable offset at the end",
        )
    values = read_committed(bs, topic, 3, expected=9000)
    assert len(values) == 9000 and all(len(value) == 100 for value in values)
    producers = describe_producers(bs, topic, [0, 1, 2])
    for partition in range(3):
        (state,) = producers[partition]["producers"]
        assert state["last_sequence"] == 3000 - 1
        assert state["current_txn_start_offset"] == -1, "no transaction left open"


def test_idempotence_needs_acks_all_and_at_most_five_in_flight(broker):
    for flags in (["--acks", "1"], ["--in-flight", "6"]):
        result = subprocess.run(
            [STROM_BIN, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", unique("bench-refused"),
             "--records", "10", "--transactional", *flags],
            capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
        )
        assert result.returncode != 0
        assert "--idempotent and --transactional" in result.stderr, result.stderr


def test_suite_transactions_case_compares_transactional_with_idempotent_producers(tmp_path):
    result = subprocess.run(
        [STROM_BIN, "bench", "suite", "--quick", "--dir", str(tmp_path), "--only", "transactions", "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    suite = json.loads(result.stdout)
    (run,) = suite["runs"]
    idempotent, transactional = run["cases"]
    assert "idempotent producers, no transactions" in idempotent["case"]
    assert "transactional producers, transactions of 1,000 records" in transactional["case"]
    assert idempotent["records"] > 0 and idempotent["transactions"] is None
    assert transactional["records"] > 0
    figures = transactional["transactions"]
    assert figures["transactions"] >= transactional["records"] / 1000
    assert figures["transactions_per_s"] > 0 and figures["commit_latency"]["samples"] == figures["transactions"]
    (target,) = [check for check in suite["targets"] if "transactional producers" in check["target"]]
    assert "≥ 80% of the idempotent producers' in the same run" in target["target"]
    assert list(tmp_path.iterdir()) == [], "the suite removes its directory"


def test_suite_runs_quickly_and_prints_its_table(tmp_path):
    result = subprocess.run(
        [STROM_BIN, "bench", "suite", "--quick", "--dir", str(tmp_path), "--only", "produce 100 B acks=1",
         "--only", "consume 100 B", "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    suite = json.loads(result.stdout)
    (run,) = suite["runs"]
    assert run["machine"]["loopback_mb_per_s"] > 0
    assert run["machine"]["disk_synced_mb_per_s"] > 0
    assert run["machine"]["fsync_4k"]["samples"] > 0
    cases = {case["case"]: case for case in run["cases"]}
    assert set(cases) == {"produce 100 B acks=1", "consume 100 B"}
    assert cases["consume 100 B"]["records"] == cases["produce 100 B acks=1"]["records"] > 0
    for case in cases.values():
        assert case["broker_cpu_s"] >= 0
        assert case["broker_peak_rss_mib"] > 0
    assert any("broker CPU" in check["target"] for check in suite["targets"])
    assert list(tmp_path.iterdir()) == [], "the suite removes its directory"


def test_suite_security_cases_run_the_plaintext_loads_over_ssl_and_sasl_ssl(tmp_path):
    result = subprocess.run(
        [STROM_BIN, "bench", "suite", "--quick", "--dir", str(tmp_path), "--only", "security", "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    suite = json.loads(result.stdout)
    (run,) = suite["runs"]
    cases = {case["case"]: case for case in run["cases"]}
    assert list(cases) == [
        "produce 1 KiB acks=1", "consume 1 KiB", "consume 1 KiB over SSL",
        "consume 1 KiB over SASL_SSL SCRAM-SHA-512", "produce 1 KiB acks=1 over SSL",
        "produce 1 KiB acks=1 over SASL_SSL SCRAM-SHA-512",
    ]
    written = cases["produce 1 KiB acks=1"]["records"]
    assert written > 0
    for name in ("consume 1 KiB over SSL", "consume 1 KiB over SASL_SSL SCRAM-SHA-512"):
        assert cases[name]["records"] == written, "every consume reads the plaintext producer's records"
    for name, protocol in (("produce 1 KiB acks=1 over SSL", "SSL"),
                           ("produce 1 KiB acks=1 over SASL_SSL SCRAM-SHA-512", "SASL_SSL")):
        assert cases[name]["records"] > 0
        assert f"--command-config {tmp_path}" in cases[name]["command"]
        assert f"{protocol}.properties" in cases[name]["command"]
    (target,) = [check for check in suite["targets"] if "plaintext consume" in check["target"]]
    assert "SASL_SSL" in target["target"] and "≥ 60%" in target["target"]
    assert list(tmp_path.iterdir()) == [], "the suite removes its directory"


def test_suite_many_partitions_case_restarts_its_broker_and_reads_every_record_back(tmp_path):
    result = subprocess.run(
        [STROM_BIN, "bench", "suite", "--quick", "--dir", str(tmp_path), "--only", "ulimit -n", "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    suite = json.loads(result.stdout)
    (run,) = suite["runs"]
    (case,) = run["cases"]
    assert case["case"] == "400 partitions, ulimit -n 4096"
    figures = case["partitions"]
    assert figures["topics"] == 4 and figures["partitions"] == 400
    assert case["records"] == 400, "one record to each partition; the case fails unless every one is read back after each start"
    assert figures["open_files_limit"] == 4096
    assert 0 < figures["max_open_descriptors"] < 4096
    assert figures["too_many_open_files_lines"] == 0
    for start in (figures["after_clean_shutdown"], figures["after_kill"]):
        assert 0 < start["start_to_listening_s"] <= start["start_to_serving_s"]
    assert figures["create_s"] > 0 and figures["produce_s"] > 0 and figures["shutdown_s"] > 0
    assert figures["rss_mib"] > 0 and figures["idle_cpu_percent"] >= 0
    assert case["latency"]["samples"] == 400, "one produce request per partition"
    targets = [check["target"] for check in suite["targets"]]
    for target in ("CreateTopics", "after a clean shutdown", "after kill -9", "RSS", "idle broker CPU",
                   "open descriptors", "Too many open files"):
        assert any(target in text for text in targets), (target, targets)
    met = {check["target"]: check["met"] for check in suite["targets"]}
    assert all(met[text] for text in targets if "descriptors" in text or "Too many" in text), met
    assert list(tmp_path.iterdir()) == [], "the suite removes its directory"
