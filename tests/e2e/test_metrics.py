"""The admin listener (issue 14): /metrics after a known workload, health, logs.

* N records of S bytes produced one request each: /metrics shows exactly N records in for the
  topic, at least N*S bytes in, as many Produce latency samples as Produce requests answered
  (N more than before), every bucket ending at the count; a consumer's fetches show as bytes
  out; a group that committed part of each partition has lag high watermark - committed per
  partition, from its coordinator.
* A 3-node cluster: `strom_partitions_under_replicated` (summed over the nodes, each counting
  what it leads) becomes non-zero when a node stops and returns to zero once it is back;
  exactly one node reports `strom_controller_active 1`; the leaderships the stop moved are
  counted as elections by the nodes that took them. A node alone, before its quorum exists,
  is live but not ready, and says why.
* Malformed frames are counted in strom_requests_total{error="MALFORMED_FRAME"} and their
  warnings are rate-limited with a count of those held back; `log.format=json` writes one JSON
  object per line; text logs written to a file carry no ANSI colour codes.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import statistics
import struct
import subprocess
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from cluster import FAST_FAILOVER_SETTINGS, cluster_factory  # noqa: F401 - the fixture
from kafka_helpers import consume_range, create_topic, producer, unique, wait_until, watermarks
from metrics_helpers import get, ready, scrape
from strom_broker import STROM_BIN

RECORDS = 240
RECORD_BYTES = 100
PARTITIONS = 3


def test_a_known_workload_shows_in_the_metrics(broker):
    topic = unique("metrics")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    before = scrape(broker.admin_url)
    produced_before = before.total("strom_requests_total", api="Produce")
    samples_before = before.value("strom_request_latency_seconds_count", api="Produce") or 0

    # linger.ms=0 and a flush after each record: one Produce request per record.
    p = producer(broker.bootstrap, linger_ms=0, batch_num_messages=1)
    for i in range(RECORDS):
        p.produce(topic, key=f"k{i}".encode(), value=bytes([65 + i % 26]) * RECORD_BYTES, partition=i % PARTITIONS)
        p.flush(10)
    assert len(p) == 0

    after = scrape(broker.admin_url)
    assert after.value("strom_topic_records_in_total", topic=topic) == RECORDS
    assert after.value("strom_topic_bytes_in_total", topic=topic) >= RECORDS * RECORD_BYTES
    produce_requests = after.total("strom_requests_total", api="Produce") - produced_before
    assert produce_requests == RECORDS, f"{produce_requests} Produce requests counted"
    assert after.value("strom_requests_total", api="Produce", error="none") >= RECORDS
    samples = after.value("strom_request_latency_seconds_count", api="Produce") - samples_before
    assert samples == produce_requests, f"{samples} latency samples for {produce_requests} requests"
    infinite = after.value("strom_request_latency_seconds_bucket", api="Produce", le="+Inf")
    assert infinite == after.value("strom_request_latency_seconds_count", api="Produce")
    assert after.types["strom_request_latency_seconds"] == "histogram"
    assert after.types["strom_log_flush_latency_seconds"] == "histogram"
    assert after.value("strom_connections", listener="PLAINTEXT") >= 1

    # A consumer reads everything: bytes out, to consumers only.
    for partition in range(PARTITIONS):
        consume_range(broker.bootstrap, topic, partition, 0, RECORDS // PARTITIONS)
    out = scrape(broker.admin_url).value("strom_topic_bytes_out_total", topic=topic)
    assert out >= RECORDS * RECORD_BYTES, out

    # A group commits part of each partition: lag = high watermark - committed, per partition.
    group = unique("metrics-group")
    committed = {0: 5, 1: 40, 2: RECORDS // PARTITIONS}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()], asynchronous=False)
    finally:
        c.close()
    expected = {p: watermarks(broker.bootstrap, topic, p)[1] - o for p, o in committed.items()}
    assert expected[2] == 0 and expected[0] > 0

    def lags():
        metrics = scrape(broker.admin_url)
        found = {p: metrics.value("strom_consumer_group_lag", group=group, topic=topic, partition=p) for p in committed}
        return found if found == expected else None

    wait_until(lags, 10, f"lag {expected} for {group}")
    metrics = scrape(broker.admin_url)
    assert metrics.value("strom_partitions_leader") >= PARTITIONS
    assert metrics.value("strom_partitions_under_replicated") == 0
    assert metrics.value("strom_partitions_offline") == 0
    assert metrics.value("strom_controller_active") == 1
    assert metrics.value("strom_metadata_log_end_offset") > 0
    assert metrics.value("strom_log_size_bytes", topic=topic) >= RECORDS * RECORD_BYTES
    assert metrics.value("strom_disk_free_bytes") > 0
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert name in metrics.names(), name


def test_health_endpoints_and_json_logs(start_broker):
    broker = start_broker(settings={"log.format": "json"})
    status, body = get(f"{broker.admin_url}/v1/health/live")
    assert status == 200 and json.loads(body)["status"] == "live"
    status, body = ready(broker.admin_url)
    assert status == 200, body
    create_topic(broker.bootstrap, unique("json-logs"))
    broker.stop()
    lines = [line for line in broker.run_log().splitlines() if line.strip() and not line.startswith("====")]
    assert lines, "the broker logged nothing"
    for line in lines:
        entry = json.loads(line)
        assert {"timestamp", "level", "fields"} <= set(entry), entry


def test_text_logs_in_a_file_have_no_colour_codes(broker):
    create_topic(broker.bootstrap, unique("plain-logs"))
    assert "INFO" in broker.run_log()
    assert "\x1b[" not in broker.run_log()


def malformed_frame() -> bytes:
    """A frame whose request header names API key 32767, which does not exist."""
    body = struct.pack(">hhi", 32767, 0, 1) + struct.pack(">h", -1)
    return struct.pack(">i", len(body)) + body


def test_malformed_frames_are_counted_and_their_warnings_rate_limited(broker):
    frames = 400
    started = time.monotonic()
    for _ in range(frames):
        with socket.create_connection((broker.host, broker.port), timeout=5) as s:
            s.sendall(malformed_frame())
            s.settimeout(5)
            assert s.recv(1) == b"", "the broker answered a malformed frame instead of closing"
    elapsed = time.monotonic() - started
    metrics = scrape(broker.admin_url)
    assert metrics.value("strom_requests_total", api="unknown", error="MALFORMED_FRAME") >= frames
    warnings = [line for line in broker.run_log().splitlines() if "WARN" in line and "closing connection" in line]
    # At most one a second (plus the first), and they say how many were held back.
    assert 1 <= len(warnings) <= elapsed + 2, f"{len(warnings)} warnings in {elapsed:.1f} s"
    if len(warnings) > 1:
        assert any("suppressed" in line for line in warnings), warnings
    # The broker still serves.
    create_topic(broker.bootstrap, unique("after-malformed"))


def cluster_total(cluster, name: str) -> float:
    return sum(scrape(n.admin_url).total(name) for n in cluster.nodes.values() if n.running)


def test_under_replicated_partitions_follow_a_stopped_node(cluster_factory):
    cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    topic = unique("urp")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    p = producer(cluster.bootstrap, **cluster.client_conf)
    for i in range(30):
        p.produce(topic, value=b"x" * 50, partition=i % 3)
    p.flush(10)
    wait_until(lambda: cluster_total(cluster, "strom_partitions_under_replicated") == 0, 20, "no URP at first")
    assert cluster_total(cluster, "strom_controller_active") == 1
    led_by_3 = [part for part in range(3) if cluster.partition_leader(topic, part) == 3]
    elections_before = cluster_total(cluster, "strom_leader_elections_total")

    cluster.stop(3)
    wait_until(lambda: cluster_total(cluster, "strom_partitions_under_replicated") > 0, 30, "URP after node 3 stopped")
    if led_by_3:
        assert cluster_total(cluster, "strom_leader_elections_total") >= elections_before + len(led_by_3)
    assert sum(scrape(n.admin_url).total("strom_isr_shrinks_total") for n in cluster.nodes.values() if n.running) >= 1

    cluster.start(3)
    wait_until(lambda: cluster_total(cluster, "strom_partitions_under_replicated") == 0, 60, "no URP once node 3 is back")
    assert cluster_total(cluster, "strom_isr_expands_total") >= 1
    assert cluster_total(cluster, "strom_partitions_offline") == 0


def test_lag_of_partitions_hosted_elsewhere_comes_from_their_leaders(cluster_factory):
    """An RF=1 topic spread over 3 nodes: the group's coordinator hosts at most one of its
    partitions, and still reports the lag of all three."""
    cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    topic, group = unique("remote-lag"), unique("remote-lag-group")
    cluster.create_topic(topic, partitions=3, replication_factor=1)
    p = producer(cluster.bootstrap, **cluster.client_conf)
    for i in range(60):
        p.produce(topic, value=b"v" * 20, partition=i % 3)
    p.flush(10)
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, part, part * 5) for part in range(3)], asynchronous=False)
    finally:
        c.close()
    expected = {part: 20 - part * 5 for part in range(3)}

    def lags():
        found = {}
        for node in cluster.nodes.values():
            for sample in scrape(node.admin_url).series("strom_consumer_group_lag", group=group, topic=topic):
                found[int(sample.labels["partition"])] = sample.value
        return found if found == expected else None

    wait_until(lags, 20, f"lag {expected} of {group} across the nodes")


def test_a_node_without_its_quorum_is_live_but_not_ready(cluster_factory):
    cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS, start=False)
    node = cluster.node(1)
    node.spawn()

    def not_ready():
        try:
            status, body = ready(node.admin_url)
        except OSError:
            return None
        return (status, body) if status == 503 else None

    status, body = wait_until(not_ready, 20, "node 1 answering /v1/health/ready with 503")
    assert "quorum" in body["reason"], body
    status, _ = get(f"{node.admin_url}/v1/health/live")
    assert status == 200
    cluster.start_all()
    wait_until(lambda: ready(node.admin_url)[0] == 200, 30, "node 1 ready once its quorum exists")


def bench_produce(bootstrap: str, topic: str, records: int, rate: int) -> dict:
    """`strom bench produce` of `records` at `rate` records/s: its throughput figures."""
    result = subprocess.run(
        [STROM_BIN, "bench", "produce", "--bootstrap", bootstrap, "--topic", topic, "--partitions", "3",
         "--records", str(records), "--rate", str(rate), "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["throughput"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper(threading.Thread):
    """GETs /metrics every second until stopped; counts its scrapes."""

    def __init__(self, admin_url: str):
        super().__init__(daemon=True)
        self.admin_url = admin_url
        self.stopping = threading.Event()
        self.scrapes = 0

    def run(self):
        while not self.stopping.wait(1.0):
            scrape(self.admin_url)
            self.scrapes += 1

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        return self.scrapes


def test_scraping_every_second_costs_under_three_percent_of_produce(broker):
    """`strom bench produce` (acks=all, 3 partitions, 100-byte records) at a fixed offered
    load of 200,000 records/s, run without and with a scraper hitting /metrics every second,
    alternating in this one run (plain, scraped, scraped, plain: the order cancels the drift
    of a broker whose log and page cache grow).

    Asserted: (1) the throughput achieved with scraping is within 3% of the figure without;
    (2) what scraping once a second costs the broker in CPU is under 3% of the CPU it spends
    serving that load. The second is measured directly, as the broker's CPU time over 200
    back-to-back scrapes of its loaded state, over its CPU time a second under the load: the
    per-run CPU of a produce run swings by about 10% between identical runs on this shared
    2-core machine (mostly system time: sockets and fsync), so a with/without comparison of
    CPU per record cannot resolve 3% (it is printed, as is each run's figure). A free-running
    bench is no better: its throughput swung 1.19M to 2.43M records/s between identical runs."""
    topic = unique("metrics-cost")
    records, rate = 600_000, 200_000
    bench_produce(broker.bootstrap, topic, 20_000, 0)  # creates the topic, warms the broker up
    pid = broker.process.pid
    cpu = {"plain": [], "scraped": []}  # broker CPU seconds per run
    seconds = {"plain": [], "scraped": []}  # each run's wall-clock seconds
    throughput = {"plain": [], "scraped": []}
    for _ in range(2):
        for kind in ("plain", "scraped", "scraped", "plain"):
            scraper = Scraper(broker.admin_url) if kind == "scraped" else None
            if scraper:
                scraper.start()
            before = cpu_seconds(pid)
            figures = bench_produce(broker.bootstrap, topic, records, rate)
            cpu[kind].append(cpu_seconds(pid) - before)
            seconds[kind].append(figures["records"] / figures["records_per_s"])
            throughput[kind].append(figures["records_per_s"])
            if scraper:
                assert scraper.stop() >= 2
    before = cpu_seconds(pid)
    for _ in range(200):
        scrape(broker.admin_url)
    per_scrape = (cpu_seconds(pid) - before) / 200
    load_cpu_per_second = sum(cpu["plain"]) / sum(seconds["plain"])
    share = per_scrape / load_cpu_per_second
    achieved = {kind: statistics.mean(figures) for kind, figures in throughput.items()}
    per_million = {kind: sum(cpu[kind]) / (records * len(cpu[kind])) * 1e6 for kind in cpu}
    print(
        f"at {rate} records/s offered: achieved {achieved['plain']:.0f} records/s without scraping, "
        f"{achieved['scraped']:.0f} scraped every second; a scrape costs the broker {per_scrape * 1e3:.2f} ms "
        f"of CPU, {100 * share:.2f}% of the {load_cpu_per_second:.3f} CPU s/s the load takes; "
        f"broker CPU s per million records (noisy) without {per_million['plain']:.3f}, "
        f"scraped {per_million['scraped']:.3f}; per run {cpu}"
    )
    assert achieved["scraped"] >= 0.97 * achieved["plain"], f"throughput with scraping {achieved}"
    assert share <= 0.03, f"a scrape a second costs {100 * share:.1f}% of the broker's CPU under the load"


def test_idle_admin_connections_are_capped_and_kafka_keeps_serving(broker):
    """200 connections that never send a byte: the admin listener holds at most 128 (the rest
    wait in the backlog, taking no descriptor of the broker's), Kafka clients are served
    meanwhile, and once they close the admin listener answers again."""
    fds_before = len(os.listdir(f"/proc/{broker.process.pid}/fd"))
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection((broker.host, broker.admin_port), timeout=5))
        time.sleep(0.5)
        fds_during = len(os.listdir(f"/proc/{broker.process.pid}/fd"))
        assert fds_during - fds_before <= 128 + 8, f"{fds_during - fds_before} descriptors for 200 idle connections"
        create_topic(broker.bootstrap, unique("while-idle-admin"))
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: get(f"{broker.admin_url}/v1/health/live", timeout_s=2)[0] == 200, 20, "the admin listener answering again")
