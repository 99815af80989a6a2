"""Network and process faults against a 3-node strom cluster in a network lab (netlab.py: one
namespace per node; needs root, skips with the reason elsewhere).

* test_chaos_loses_no_acknowledged_record: a steady acks=all producer and a continuous consumer
  while, round after round, a partition leader is killed (SIGKILL) and restarted, a node is
  frozen (SIGSTOP) until the controller fences it, and a node is cut off the network until it is
  fenced, then healed. After each fault the cluster must heal (3 brokers, full ISRs) and the
  producer must get acknowledgements again. At the end every replica's files are checked:
  every acknowledged record at its offset, every record the consumer saw still there, replicas
  byte-identical below the high watermark.
* test_minority_leader_cannot_acknowledge_and_truncates_after_heal: the leader of a partition is
  cut off; a producer inside its namespace gets no acknowledgement for acks=all writes while the
  majority elects a new leader that acknowledges a producer on the outside; after the heal the
  old leader drops what it wrote alone and its files match the others.

Failure detection is fast (FAST: fenced after 3 s without heartbeat, out of the ISR after 3 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    ContinuousConsumer,
    SteadyProducer,
    cluster_factory,
    require_cluster_info,
)
from kafka_helpers import produce_all, producer, unique
from replica_checker import check_replicas, read_replica

FAST = FAST_FAILOVER_SETTINGS
CHAOS_SECONDS = 60
RECOVERY_TIMEOUT_S = 30


def netlab_cluster(cluster_factory) -> Cluster:  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3, mode="netlab", settings=FAST)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    return cluster


def wait_healed(cluster: Cluster, topic: str, partitions: int, what: str) -> dict:
    """3 registered brokers and a full ISR on every partition."""
    try:
        cluster.wait_for_brokers(3, timeout_s=RECOVERY_TIMEOUT_S)
        return {p: cluster.wait_for_isr(topic, p, 3, timeout_s=RECOVERY_TIMEOUT_S) for p in range(partitions)}
    except AssertionError as error:
        raise AssertionError(f"cluster not healed {what}: {error}") from None


# -- 5. chaos --------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_chaos_loses_no_acknowledged_record(cluster_factory):  # noqa: F811
    cluster = netlab_cluster(cluster_factory)
    topic = unique("chaos")
    partitions = 3
    cluster.create_topic(topic, partitions=partitions, replication_factor=3, config={"min.insync.replicas": "2"})
    consumer = ContinuousConsumer(cluster.bootstrap, topic, partitions).start()
    load = SteadyProducer(cluster.bootstrap, topic, partitions, rate=300).start()
    faults: list[str] = []
    try:
        load.wait_for_acks(300, 20, "before any fault")
        deadline = time.monotonic() + CHAOS_SECONDS
        round_ = 0
        while time.monotonic() < deadline:
            kind = ("kill", "pause", "cut")[round_ % 3]
            began = time.monotonic()
            acked_before = load.acked_count()
            if kind == "kill":
                partition = (round_ // 3) % partitions
                victim = cluster.partition_leader(topic, partition)
                cluster.kill(victim)
                new_leader = cluster.wait_for_leader(topic, partition, timeout_s=RECOVERY_TIMEOUT_S, exclude=(victim,))
                cluster.start(victim)
                what = f"kill -9 of node {victim} (leader of [{partition}], now {new_leader}) and restart"
            elif kind == "pause":
                victim = (round_ // 3) % 3 + 1
                cluster.pause(victim)
                cluster.wait_for_brokers(2, timeout_s=RECOVERY_TIMEOUT_S)  # frozen past its session
                cluster.resume(victim)
                what = f"SIGSTOP of node {victim} until fenced, SIGCONT"
            else:
                victim = (round_ // 3 + 1) % 3 + 1
                cluster.cut(victim)
                cluster.wait_for_brokers(2, timeout_s=RECOVERY_TIMEOUT_S)  # fenced
                for p in range(partitions):
                    cluster.wait_for_leader(topic, p, timeout_s=RECOVERY_TIMEOUT_S, exclude=(victim,))
                cluster.heal(victim)
                what = f"cut of node {victim} until fenced, heal"
            fault_ended = time.monotonic()
            wait_healed(cluster, topic, partitions, f"after the {what}")
            mark = load.acked_count()
            load.wait_for_acks(mark + 150, RECOVERY_TIMEOUT_S, f"after the {what}")
            faults.append(
                f"{what}: {fault_ended - began:.1f} s, healed +{time.monotonic() - fault_ended:.1f} s, "
                f"{mark - acked_before} acks during the fault"
            )
            round_ += 1
        load.stop()
    except BaseException:
        load._stop = True
        consumer.stop()
        print("faults so far:\n  " + "\n  ".join(faults) + f"\nproducer: {load.describe()}")
        raise
    summary = "faults:\n  " + "\n  ".join(faults) + f"\nproducer: {load.describe()}"
    print(summary)
    assert len(faults) >= 6, summary
    assert load.errors == [], f"delivery errors (acks=all, retries for 60 s): {summary}"

    final = wait_healed(cluster, topic, partitions, "at the end")
    high_watermarks = {p: cluster.high_watermark(topic, p) for p in range(partitions)}
    consumer.wait_until_caught_up(high_watermarks, 30)
    consumer.stop()
    acked = load.acknowledged
    seen = consumer.seen()
    per_partition = {p: [d.offset for d in acked if d.partition == p] for p in range(partitions)}
    for p, offsets in per_partition.items():
        assert len(offsets) == len(set(offsets)), f"[{p}]: two acknowledged records at one offset"
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    report = check_replicas(
        topic, cluster.data_dirs(), acked, seen, partitions=list(range(partitions)),
        high_watermarks=high_watermarks, leaders={p: s.leader for p, s in final.items()},
        isr={p: list(s.isr) for p, s in final.items()},
    )
    print(report.summary())
    assert sum(p.acknowledged_checked for p in report.partitions.values()) == len(acked)
    # Connection errors while nodes are down are expected; an error the broker answered (offset
    # out of range: a leader that lost records a consumer had already read) is not.
    broker_errors = [e for e in consumer.errors if "Broker: " in e]
    assert not broker_errors, f"{len(broker_errors)} broker errors to the consumer, first: {broker_errors[:5]}"


# -- 6. a leader in the minority --------------------------------------------------------------

MINORITY_PRODUCER = r"""
import json, sys, time
from confluent_kafka import Producer
bootstrap, topic, count, timeout_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
reports = []
def on_delivery(error, message):
    reports.append({"offset": message.offset(), "value": message.value().decode(),
                    "error": None if error is None else str(error)})
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
              "message.timeout.ms": timeout_ms, "request.timeout.ms": 2000, "linger.ms": 5})
for i in range(count):
    p.produce(topic, value=f"minority-{i}".encode(), partition=0, on_delivery=on_delivery)
    p.poll(0.01)
left = p.flush(timeout_ms / 1000 + 10)
print(json.dumps({"reports": reports, "undelivered": left}))
"""


@pytest.mark.timeout(150)
def test_minority_leader_cannot_acknowledge_and_truncates_after_heal(cluster_factory, tmp_path):  # noqa: F811
    cluster = netlab_cluster(cluster_factory)
    topic = unique("minority")
    cluster.create_topic(topic, partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})
    baseline = produce_all(producer(cluster.bootstrap), topic, [{"value": b"base-%d" % i} for i in range(100)])
    old = cluster.partition_leader(topic, 0)
    old_node = cluster.node(old)

    cluster.cut(old)
    script = tmp_path / "minority_producer.py"
    script.write_text(MINORITY_PRODUCER)
    inside = cluster.lab.run_in(
        old, [sys.executable, str(script), old_node.bootstrap, topic, "50", "8000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # The majority moves on: a new leader (after the old one's session times out), which
    # acknowledges a producer on this side.
    new = cluster.wait_for_leader(topic, 0, timeout_s=RECOVERY_TIMEOUT_S, exclude=(old,))
    majority = produce_all(
        producer(cluster.live_bootstrap(), message_timeout_ms=20000), topic, [{"value": b"majority-%d" % i} for i in range(100)]
    )
    out, err = inside.communicate(timeout=40)
    assert inside.returncode == 0, f"producer inside node {old}'s namespace failed ({inside.returncode}):\n{err[-3000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    acknowledged_inside = [r for r in result["reports"] if r["error"] is None]
    assert not acknowledged_inside, (
        f"node {old}, cut off from the quorum and its followers, acknowledged acks=all writes: {acknowledged_inside[:5]}"
    )
    assert len(result["reports"]) == 50, result
    errors = sorted({r["error"] for r in result["reports"]})
    # What the cut-off leader wrote alone, beyond what it could commit.
    alone = read_replica(old, old_node.partition_dir(topic, 0), verify_crc=False)
    written_alone = sum(1 for r in alone.records.values() if r.value and r.value.startswith(b"minority-"))
    print(f"old leader {old}, new leader {new}; inside errors {errors}; old leader wrote {written_alone} records alone")

    cluster.heal(old)
    final = wait_healed(cluster, topic, 1, f"after healing node {old}")
    high_watermark = cluster.high_watermark(topic, 0)
    assert high_watermark >= 200, high_watermark
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    acked = baseline + majority
    report = check_replicas(
        topic, cluster.data_dirs(), acked, partitions=[0], high_watermarks={0: high_watermark},
        leaders={0: final[0].leader}, isr={0: list(final[0].isr)},
    )
    print(report.summary())
    for node_id, directory in cluster.data_dirs().items():
        replica = read_replica(node_id, directory / f"{topic}-0")
        kept = sorted(o for o, r in replica.records.items() if r.value and r.value.startswith(b"minority-"))
        assert not kept, f"node {node_id} still has records only the cut-off leader wrote, at offsets {kept[:10]}"
        assert replica.log_end_offset == high_watermark, f"node {node_id}: {replica.describe()}, hw {high_watermark}"
