"""Self-tests of the cluster test harness: replica_checker.py and cluster.py.

The replica checker runs on synthetic replicas: segment files this module writes itself (v2
batches with chosen base offsets, leader epochs and contents) in directories laid out like a
cluster's data dirs. Replicas that agree pass; a missing or changed acknowledged record, a
divergent byte or leader epoch below the high watermark, a consumed record that is gone, each
fail with a message naming partition, offset and replica; divergence above the high watermark
and a replica that lags (out of the ISR) pass. Its record decoding is checked on real batches:
librdkafka compresses them with each codec and a single strom broker stores them.

The cluster harness runs today with single-node brokers (cluster_flags=False: each node gets
--node-id and --advertise only) to exercise processes, addresses, pause/resume, kill/restart,
cut/heal in a network lab, and log collection. The tests of the real cluster (3 combined
broker+controller nodes, `strom cluster info`, replication) skip where `strom server` has no
--controller-quorum.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import socket
import struct

import pytest

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    Cluster,
    cluster_factory,
    cluster_info_available,
    require_cluster_flags,
    require_cluster_info,
)
from kafka_helpers import (
    admin_client,
    consume_range,
    create_topic,
    produce_all,
    producer,
    round_trip,
    unique,
)
from replica_checker import check_replicas, read_replica
from segment_file import _zigzag_varint, crc32c

TOPIC = "orders"


# -- synthetic replicas -----------------------------------------------------------------


def make_batch(
    base_offset: int,
    records: list[tuple[bytes | None, bytes | None]],
    leader_epoch: int = 0,
    timestamp_ms: int = 1_700_000_000_000,
    gzipped: bool = False,
    headers: list[tuple[bytes, bytes | None]] = (),
) -> bytes:
    """A v2 batch as a broker stores it: base offset and partition leader epoch set."""
    body = bytearray()
    for delta, (key, value) in enumerate(records):
        record = bytearray(b"\x00") + _zigzag_varint(delta) + _zigzag_varint(delta)
        for item in (key, value):
            record += _zigzag_varint(-1) if item is None else _zigzag_varint(len(item)) + item
        record += _zigzag_varint(len(headers))
        for name, header_value in headers:
            record += _zigzag_varint(len(name)) + name
            record += _zigzag_varint(-1) if header_value is None else _zigzag_varint(len(header_value)) + header_value
        body += _zigzag_varint(len(record)) + record
    payload = gzip.compress(bytes(body)) if gzipped else bytes(body)
    attributes = 1 if gzipped else 0
    after_crc = struct.pack(
        ">hiqqqhii", attributes, len(records) - 1, timestamp_ms, timestamp_ms + len(records) - 1, -1, -1, -1, len(records)
    ) + payload
    after_length = struct.pack(">ib", leader_epoch, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


def records_for(base: int, count: int, tag: bytes = b"") -> list[tuple[bytes, bytes]]:
    return [(b"k%d" % (base + i), b"value-%d%s" % (base + i, tag)) for i in range(count)]


def standard_log(epoch_of_tail: int = 1) -> list[tuple[int, list, int]]:
    """(base offset, records, leader epoch) of a partition: offsets 0..9 in four batches, two
    segments; the last batch was written in a later leader epoch."""
    return [
        (0, records_for(0, 3), 0),
        (3, records_for(3, 2), 0),
        (5, records_for(5, 3), epoch_of_tail),  # second segment starts here
        (8, records_for(8, 2), epoch_of_tail),
    ]


def write_replica(data_dir: pathlib.Path, partition: int, batches, segment_starts=(0, 5)) -> pathlib.Path:
    """(Re)writes the segment files of <data_dir>/<TOPIC>-<partition>/ with batches [(base,
    records, epoch) or raw bytes], a new segment at each base offset in segment_starts."""
    directory = data_dir / f"{TOPIC}-{partition}"
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.log"):
        old.unlink()
    segments: dict[int, bytearray] = {}
    current = None
    for batch in batches:
        raw = batch if isinstance(batch, bytes) else make_batch(batch[0], batch[1], batch[2])
        (base,) = struct.unpack_from(">q", raw, 0)
        if current is None or base in segment_starts:
            current = base
            segments[current] = bytearray()
        segments[current] += raw
    for base, data in segments.items():
        (directory / f"{base:020d}.log").write_bytes(bytes(data))
    (directory / "leader-epoch-checkpoint").write_text("0\n2\n0 0\n1 5\n")
    return directory


def acked_of(batches, partition: int = 0) -> list[tuple[int, int, bytes, bytes]]:
    return [(partition, base + i, k, v) for base, records, _ in batches for i, (k, v) in enumerate(records)]


@pytest.fixture
def replicas(tmp_path) -> dict[int, pathlib.Path]:
    """Three data dirs with identical replicas of partition 0."""
    dirs = {node: tmp_path / f"node{node}" / "data" for node in (1, 2, 3)}
    for d in dirs.values():
        write_replica(d, 0, standard_log())
    return dirs


def test_agreeing_replicas_pass(replicas):
    acked = acked_of(standard_log())
    observed = acked[:6]
    report = check_replicas(TOPIC, replicas, acked, observed, high_watermarks={0: 10}, leaders={0: 1})
    assert report.ok
    part = report.partitions[0]
    assert (part.acknowledged_checked, part.observed_checked, part.batches_compared) == (10, 6, 4), report.summary()
    assert all("[0, 10) in 4 batches" in r for r in part.replicas.values()), report.summary()
    # Delivery-report-like objects work as well as tuples.
    from kafka_helpers import Delivery

    deliveries = [Delivery(p, o, k, v, None) for p, o, k, v in acked]
    assert check_replicas(TOPIC, replicas, deliveries, high_watermarks={0: 10}).ok


def test_records_are_decoded_with_keys_headers_and_gzip(tmp_path):
    batches = [
        make_batch(0, [(None, b"no key"), (b"k", None)], headers=[(b"h1", b"v1"), (b"h2", None)]),
        make_batch(2, records_for(2, 50, b"-zipped" * 20), gzipped=True),
    ]
    directory = write_replica(tmp_path / "n1", 0, batches, segment_starts=(0,))
    log = read_replica(1, directory)
    assert (log.log_start_offset, log.log_end_offset, log.undecodable) == (0, 52, [])
    assert log.records[0].key is None and log.records[0].value == b"no key"
    assert log.records[1].value is None and log.records[1].headers == (("h1", b"v1"), ("h2", None))
    assert log.records[51].value == b"value-51" + b"-zipped" * 20
    assert [b.codec for b in log.batches] == [0, 1]


def test_missing_acknowledged_record_fails(replicas):
    acked = acked_of(standard_log()) + [(0, 10, b"k10", b"value-10")]
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, acked, high_watermarks={0: 11}, leaders={0: 2})
    message = str(failure.value)
    assert "orders[0] offset 10 replica 2: acknowledged record missing (leader node 2: [0, 10)" in message, message


def test_acknowledged_record_with_other_contents_fails(replicas):
    acked = acked_of(standard_log())
    acked[4] = (0, 4, b"k4", b"something else")
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, acked, high_watermarks={0: 10})
    message = str(failure.value)
    for node in (1, 2, 3):
        assert (
            f"orders[0] offset 4 replica {node}: acknowledged record key=b'k4' value=b'something else' "
            f"but the replica has key=b'k4' value=b'value-4'" in message
        ), message


def test_acknowledged_record_above_high_watermark_fails(replicas):
    with pytest.raises(AssertionError, match=r"orders\[0\] offset 9: acknowledged \(acks=all\) but at or above the high watermark 9"):
        check_replicas(TOPIC, replicas, acked_of(standard_log()), high_watermarks={0: 9})


def test_divergent_byte_below_high_watermark_fails(tmp_path, replicas):
    log = standard_log()
    log[2] = (5, records_for(5, 3, b"!"), 1)  # same offsets, one value byte more each
    write_replica(replicas[3], 0, log)
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, high_watermarks={0: 10})
    message = str(failure.value)
    assert "orders[0] offset 5 replica 3: batch differs from replica 1 below the high watermark 10" in message, message
    assert "replica 2" not in message.split("\n")[1], message


def test_same_records_in_another_leader_epoch_below_high_watermark_fails(replicas):
    write_replica(replicas[2], 0, standard_log(epoch_of_tail=2))
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, acked_of(standard_log()), high_watermarks={0: 10})
    message = str(failure.value)
    assert "orders[0] offset 5 replica 2: batch differs from replica 1 below the high watermark 10: partition leader epoch 1 vs 2" in message, message
    assert "orders[0] offset 8 replica 2" in message, message


def test_divergence_above_high_watermark_passes(replicas):
    # Replica 3 was leader in epoch 2 and wrote offsets 8.. that no one else has; the others have
    # another batch at 8 (epoch 1). Committed: [0, 8).
    log = standard_log()
    log[3] = (8, records_for(8, 4, b"-uncommitted"), 2)
    write_replica(replicas[3], 0, log)
    acked = acked_of(standard_log())[:8]
    report = check_replicas(TOPIC, replicas, acked, acked, high_watermarks={0: 8}, leaders={0: 1})
    assert report.ok and report.partitions[0].batches_compared == 3, report.summary()
    # The same divergence is a violation once the high watermark passes it.
    with pytest.raises(AssertionError, match=r"offset 8 replica 3: batch differs"):
        check_replicas(TOPIC, replicas, high_watermarks={0: 10})


def test_lagging_replica_passes_and_a_gap_fails(replicas):
    write_replica(replicas[3], 0, standard_log()[:2])  # out of the ISR: ends at 5
    report = check_replicas(TOPIC, replicas, acked_of(standard_log()), high_watermarks={0: 10}, leaders={0: 1})
    assert "node 3: [0, 5) in 2 batches" in report.partitions[0].replicas[3], report.summary()
    # ... unless it is in the ISR: an in-sync replica reaches the high watermark.
    with pytest.raises(AssertionError, match=r"orders\[0\] replica 3: in the ISR \[1, 2, 3\] but its log ends at 5, below the high watermark 10"):
        check_replicas(TOPIC, replicas, high_watermarks={0: 10}, isr={0: [3, 1, 2]})
    assert check_replicas(TOPIC, replicas, high_watermarks={0: 10}, isr={0: [1, 2]}).ok
    # A replica with a hole below the high watermark is not lagging, it lost data.
    log = standard_log()
    del log[1]
    write_replica(replicas[2], 0, log)
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, acked_of(standard_log()), high_watermarks={0: 10}, leaders={0: 1})
    message = str(failure.value)
    assert "orders[0] offset 3 replica 2: acknowledged record missing (replica node 2: [0, 10) in 3 batches)" in message
    assert "orders[0] offset 3 replica 2: no batch starts at 3 below the high watermark 10 (it falls in a gap)" in message


def test_record_a_consumer_saw_must_still_be_there(replicas):
    observed = [(0, 9, b"k9", b"value-9"), (0, 10, b"k10", b"seen then lost")]
    with pytest.raises(AssertionError) as failure:
        check_replicas(TOPIC, replicas, (), observed, high_watermarks={0: 10}, leaders={0: 3})
    message = str(failure.value)
    assert "orders[0] offset 10 replica 3: consumed record missing (leader node 3: [0, 10) in 4 batches)" in message
    assert "offset 9" not in message, message


def test_partitions_are_found_and_checked_separately(replicas):
    for d in replicas.values():
        write_replica(d, 1, standard_log()[:1])
    report = check_replicas(TOPIC, replicas, acked_of(standard_log()) + acked_of(standard_log()[:1], partition=1))
    assert sorted(report.partitions) == [0, 1]
    assert report.partitions[1].high_watermark == 3 and report.partitions[1].acknowledged_checked == 3
    assert any("high watermark not given" in note for note in report.notes), report.notes


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_codecs_from_a_real_broker_decode(broker, codec):
    """librdkafka's batches, stored by strom, decode to the records produced."""
    topic = unique(f"checker-{codec}")
    create_topic(broker.bootstrap, topic)
    p = producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 50})
    values = [(b"key-%d" % (i % 7), b"value %d " % i + b"abcdefgh" * (i % 40)) for i in range(300)]
    deliveries = produce_all(p, topic, [{"key": k, "value": v} for k, v in values])
    data_dirs = {1: broker.data_dir}
    report = check_replicas(topic, data_dirs, deliveries, allow_undecodable=(codec == "zstd"), bootstrap=broker.bootstrap)
    log = read_replica(1, broker.partition_dir(topic, 0))
    assert log.log_end_offset == 300 and len(log.batches) < 300, report.summary()
    if codec == "zstd" and log.undecodable:
        assert any("zstd needs the `zstandard` package" in n for n in report.notes), report.notes
        pytest.skip("zstd batches not decodable here (no `zstandard` package); byte checks still ran")
    assert len(log.records) == 300 and log.undecodable == []
    assert report.partitions[0].acknowledged_checked == 300 and report.partitions[0].high_watermark == 300


# -- the cluster harness ----------------------------------------------------------------


def metadata_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    try:
        admin_client(bootstrap).list_topics(timeout=timeout_s)
        return True
    except Exception:  # noqa: BLE001 - KafkaException on timeout
        return False


def test_loopback_nodes_pause_kill_restart(cluster_factory):  # noqa: F811 - the fixture
    cluster: Cluster = cluster_factory(3, cluster_flags=False)
    assert [n.host for n in cluster.nodes.values()] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert cluster.bootstrap.count(",") == 2
    for node in cluster.nodes.values():
        metadata = admin_client(node.bootstrap).list_topics(timeout=10)
        assert list(metadata.brokers) == [node.node_id], f"{node.name} says it is broker {list(metadata.brokers)}"
        assert str(metadata.brokers[node.node_id]) == f"{node.host}:{node.port}" or metadata.brokers[node.node_id].port == node.port

    topic = unique("harness")
    node2 = cluster.node(2)
    create_topic(node2.bootstrap, topic)
    state = cluster.partition_state(topic, 0, node_id=2)
    assert (state.leader, state.replicas, state.isr) == (2, (2,), (2,)), state

    cluster.pause(2)
    assert node2.paused and not node2.reachable()
    assert not metadata_answers(node2.bootstrap, 1.0), "a SIGSTOPped node answered"
    assert "2:paused" in cluster.describe_nodes()
    cluster.resume(2)
    assert metadata_answers(node2.bootstrap, 10.0)

    round_trip(node2.bootstrap, topic)
    cluster.kill(2)
    assert not node2.running and not node2.died_unexpectedly()
    cluster.restart(2)
    (record,) = consume_range(node2.bootstrap, topic, 0, 0, 1)
    assert record.key == b"health"

    # A paused node still stops cleanly (stop sends SIGCONT first).
    cluster.pause(3)
    assert cluster.stop(3) == 0
    assert "3:stopped" in cluster.describe_nodes()
    assert "==== e2e: start #2" in cluster.logs() and f"---- node1 (127.0.0.1:{cluster.node(1).port}" in cluster.logs()


def test_netlab_nodes_cut_heal_and_restart_while_cut(cluster_factory):  # noqa: F811 - the fixture
    cluster: Cluster = cluster_factory(3, mode="netlab", cluster_flags=False)
    lab = cluster.lab
    assert [n.bootstrap for n in cluster.nodes.values()] == [f"{lab.address(i)}:9092" for i in (1, 2, 3)]
    node2 = cluster.node(2)
    round_trip(node2.bootstrap)

    cluster.cut(2)
    assert not node2.reachable() and "2:cut" in cluster.describe_nodes()
    assert cluster.live_bootstrap() == f"{lab.address(1)}:9092,{lab.address(3)}:9092"
    with pytest.raises(OSError):
        socket.create_connection((node2.host, node2.port), timeout=1.0).close()
    # Restarted while cut off: start waits for the port from inside the node's namespace.
    cluster.kill(2)
    cluster.restart(2)
    assert node2.running and node2.accepts()
    cluster.heal(2)
    assert metadata_answers(node2.bootstrap, 10.0)
    (record,) = consume_range(node2.bootstrap, "e2e-health", 0, 0, 1)
    assert record.key == b"health"


def test_cut_needs_a_netlab_cluster(cluster_factory):  # noqa: F811 - the fixture
    cluster = cluster_factory(1, cluster_flags=False, start=False)
    with pytest.raises(AssertionError, match="cut needs a netlab cluster"):
        cluster.cut(1)


FAKE_CLI = r"""#!/usr/bin/env python3
# A stand-in for `strom cluster info --json`: answers from a JSON file {first bootstrap: leader}.
import json, pathlib, sys
if "--help" in sys.argv:
    print("Usage: strom cluster info --bootstrap <HOST:PORT> --json")
    sys.exit(0)
bootstrap = sys.argv[sys.argv.index("--bootstrap") + 1].split(",")[0]
leaders = json.loads(pathlib.Path(__file__).with_name("leaders.json").read_text())
leader = leaders.get(bootstrap, leaders.get("*"))
print(json.dumps({
    "cluster_id": "fake",
    "controller": {"leader": leader, "leader_epoch": 3, "high_watermark": 10,
                   "voters": [{"id": 1, "log_end_offset": 10}, {"id": 2, "log_end_offset": 10}], "observers": []},
    "brokers": [{"id": 1, "host": "h", "port": 1, "rack": None}],
}))
"""


def test_controller_waits_against_a_stand_in_cli(cluster_factory, tmp_path, monkeypatch):  # noqa: F811
    """wait_for_controller_leader's logic (agreement, exclusion, deadline, message) with a fake
    `strom cluster info` and two single-node brokers as the reachable nodes."""
    import cluster as cluster_module

    cluster: Cluster = cluster_factory(2, cluster_flags=False)
    fake = tmp_path / "fake-strom"
    fake.write_text(FAKE_CLI)
    fake.chmod(0o755)
    leaders = tmp_path / "leaders.json"
    monkeypatch.setattr(cluster_module, "STROM_BIN", str(fake))
    monkeypatch.setattr(cluster_module, "_help_texts", {})
    one, two = (cluster.node(n).bootstrap for n in (1, 2))

    leaders.write_text(json.dumps({"*": None}))
    with pytest.raises(AssertionError, match=r"timed out after 0.5 s: a controller leader.*\(None, 3\)"):
        cluster.wait_for_controller_leader(timeout_s=0.5)
    leaders.write_text(json.dumps({one: 1, two: 2}))
    with pytest.raises(AssertionError, match=r"last views \(node: \(leader, epoch\)\): \{1: \(1, 3\), 2: \(2, 3\)\}"):
        cluster.wait_for_controller_leader(timeout_s=0.5)
    assert cluster.wait_for_controller_leader(timeout_s=5, agree=False) in (1, 2)
    leaders.write_text(json.dumps({"*": 2}))
    assert cluster.wait_for_controller_leader(timeout_s=5) == 2
    with pytest.raises(AssertionError, match="a controller leader"):
        cluster.wait_for_controller_leader(timeout_s=0.5, exclude=(2,))
    assert cluster.cluster_info(1)["controller"]["voters"][1] == {"id": 2, "log_end_offset": 10}
    assert cluster.wait_for_brokers(1, timeout_s=5)[0]["id"] == 1
    cluster.pause(2)
    assert cluster.wait_for_controller_leader(timeout_s=5) == 2  # a paused node is not asked
    cluster.resume(2)


# -- the real cluster (skips where the cluster flags do not exist) -----------------------


def test_three_node_cluster_elects_one_controller_and_registers_three_brokers(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3)
    leader = cluster.wait_for_controller_leader(timeout_s=30)
    info = cluster.cluster_info()
    assert info["controller"]["leader"] == leader in (1, 2, 3), info
    assert sorted(v["id"] for v in info["controller"]["voters"]) == [1, 2, 3], info
    brokers = cluster.wait_for_brokers(3, timeout_s=30)
    assert sorted((b["id"], b["host"], b["port"]) for b in brokers) == sorted(
        (n.node_id, n.host, n.port) for n in cluster.nodes.values()
    ), brokers
    # Every node names the same leader.
    for node_id in cluster.nodes:
        assert cluster.cluster_info(node_id)["controller"]["leader"] == leader, f"node {node_id} disagrees"
    assert cluster.stop_all() == []


def test_three_node_cluster_replicates_a_topic(cluster_factory):  # noqa: F811
    require_cluster_flags()
    cluster: Cluster = cluster_factory(3)
    if cluster_info_available():
        cluster.wait_for_controller_leader(timeout_s=15)
    topic = unique("replicated")
    cluster.create_topic(topic, partitions=1, replication_factor=3, timeout_s=15)
    state = cluster.wait_for_isr(topic, 0, 3, timeout_s=15)
    assert sorted(state.replicas) == [1, 2, 3], state
    p = producer(cluster.bootstrap)
    deliveries = produce_all(p, topic, [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(100)])
    high_watermark = cluster.high_watermark(topic, 0)
    assert high_watermark == 100
    final = cluster.wait_for_isr(topic, 0, 3, timeout_s=15)
    assert cluster.stop_all() == []
    report = check_replicas(
        topic, cluster.data_dirs(), deliveries,
        high_watermarks={0: high_watermark}, leaders={0: final.leader}, isr={0: list(final.isr)},
    )
    assert all(r.startswith(f"node {n}: [0, 100)") for n, r in report.partitions[0].replicas.items()), report.summary()


def test_netlab_cluster_elects_a_new_controller_when_the_leader_is_cut_off(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3, mode="netlab", settings={"broker.session.timeout.ms": 3000})
    leader = cluster.wait_for_controller_leader(timeout_s=30)
    cluster.cut(leader)
    new_leader = cluster.wait_for_controller_leader(timeout_s=30, exclude=(leader,))
    assert new_leader != leader
    cluster.heal(leader)
    assert cluster.wait_for_controller_leader(timeout_s=30) in (1, 2, 3)
    assert cluster.stop_all() == []
