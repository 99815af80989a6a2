"""Brokers joining and leaving (issue 13, item 5) on a 3-then-4-node cluster on loopback.

* A fourth (broker-only) node joins a 3-node cluster holding an RF=2 topic with records:
  `strom cluster rebalance` shows a plan and moves nothing; with `--execute` the replicas and
  preferred leaders spread evenly over the four brokers (within one), every partition keeps two
  distinct in-sync replicas, and every record is still there.
* `strom cluster decommission 3` moves every replica off node 3 under an acks=all idempotent
  producer and a consumer (the cluster keeps acknowledging; the log is exactly what was
  acknowledged). Node 3 still runs, so it is told to stop it first, and UnregisterBroker
  refuses a live broker; once stopped, `strom cluster unregister 3` removes it: DescribeCluster
  no longer lists it, its partition directories are gone, and the records are all there. An
  unknown broker id is BROKER_ID_NOT_REGISTERED. Groups on every `__consumer_offsets`
  partition commit and read back their offsets after each step, wherever the moves put their
  coordinator.
"""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka.admin import NewTopic

from confluent_kafka import Consumer, TopicPartition

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    ContinuousConsumer,
    SteadyProducer,
    cluster_factory,
    offsets_partition_for,
    require_cluster_info,
)
from kafka_helpers import admin_client, admin_request, consume_range, produce_all, producer, unique, wait_until

SETTINGS = {
    **FAST_FAILOVER_SETTINGS,
    "auto.leader.rebalance.enable": "false",
    "offsets.topic.num.partitions": 3,
}
PARTITIONS = 6
RECORDS_PER_PARTITION = 40


def cli(cluster: Cluster, *args: str, check: bool = True):
    result = cluster.run_cli([*args, "--bootstrap", cluster.live_bootstrap()], timeout_s=120)
    assert "panicked" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, f"strom {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def layout(cluster: Cluster) -> dict[tuple[str, int], tuple[int, ...]]:
    """{(topic, partition): replicas} of every topic, from Metadata."""
    metadata = admin_client(cluster.live_bootstrap()).list_topics(timeout=10)
    return {
        (name, p): tuple(state.replicas)
        for name, topic in metadata.topics.items()
        for p, state in topic.partitions.items()
    }


def check_records(cluster: Cluster, topic: str) -> None:
    for partition in range(PARTITIONS):
        records = consume_range(cluster.live_bootstrap(), topic, partition, 0, RECORDS_PER_PARTITION)
        values = [r.value for r in records]
        assert values == [f"{partition}-{i}".encode() for i in range(RECORDS_PER_PARTITION)], partition


def check_group_commits(cluster: Cluster, topic: str) -> None:
    """A group on every `__consumer_offsets` partition commits an offset and reads it back:
    whichever node the moves made its coordinator serves it."""
    partitions = int(SETTINGS["offsets.topic.num.partitions"])
    groups: dict[int, str] = {}
    n = 0
    while len(groups) < partitions:
        name = f"moved-group-{n}"
        groups.setdefault(offsets_partition_for(name, partitions), name)
        n += 1
    for offsets_partition, group in sorted(groups.items()):
        consumer = Consumer({"bootstrap.servers": cluster.live_bootstrap(), "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 7 + offsets_partition)], asynchronous=False)
            (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=20)
            assert committed.offset == 7 + offsets_partition, (group, committed)
        finally:
            consumer.close()


def partition_dirs(cluster: Cluster, node: int, topic: str) -> list[str]:
    return sorted(d.name for d in cluster.node(node).data_dir.iterdir() if d.name.startswith(topic + "-"))


@pytest.mark.timeout(240)
def test_rebalance_onto_a_new_broker_then_decommission_one(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(4, settings=SETTINGS, voters=(1, 2, 3), node_settings={4: {"process.roles": "broker"}})
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(4, timeout_s=20)
    topic = unique("spread")
    # Everything on nodes 1-3 first, as if node 4 had just joined.
    assignment = [[1, 2], [2, 3], [3, 1], [1, 3], [2, 1], [3, 2]]
    new = NewTopic(topic, num_partitions=PARTITIONS, replica_assignment=assignment)
    admin_request(cluster.live_bootstrap(), lambda a: a.create_topics([new], request_timeout=30))[topic].result()
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(topic, partition, 2)
    records = [
        dict(partition=p, key=f"k{i}".encode(), value=f"{p}-{i}".encode())
        for i in range(RECORDS_PER_PARTITION)
        for p in range(PARTITIONS)
    ]
    produce_all(producer(cluster.live_bootstrap(), acks="all"), topic, records)
    assert partition_dirs(cluster, 4, topic) == []

    # The plan alone moves nothing.
    before = layout(cluster)
    shown = cli(cluster, "cluster", "rebalance")
    assert "Run again with --execute" in shown.stdout, shown.stdout
    assert layout(cluster) == before

    done = cli(cluster, "cluster", "rebalance", "--execute", "--timeout", "90")
    assert "Every move completed." in done.stdout, done.stdout
    after = layout(cluster)
    counts = Counter(r for replicas in after.values() for r in replicas)
    leaders = Counter(replicas[0] for replicas in after.values())
    assert set(counts) == {1, 2, 3, 4}, counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    assert max(leaders.values()) - min(leaders.values()) <= 1, leaders
    assert partition_dirs(cluster, 4, topic), "node 4 took no replica of the topic"
    for partition in range(PARTITIONS):
        state = cluster.wait_for_isr(topic, partition, 2)
        assert len(set(state.replicas)) == 2 and set(state.isr) == set(state.replicas), state
        # The preferred election after the moves: the first replica leads.
        wait_until(lambda: cluster.partition_state(topic, partition).leader == state.replicas[0], 20, "preferred leader")
    check_records(cluster, topic)
    # __consumer_offsets moved too (node 4 now coordinates some groups): commits work anywhere.
    assert any(4 in replicas for (name, _), replicas in after.items() if name == "__consumer_offsets"), after
    check_group_commits(cluster, topic)
    again = cli(cluster, "cluster", "rebalance")
    assert "nothing to move" in again.stdout, again.stdout

    # Decommission node 3 while it runs, under an acks=all producer and a consumer on a topic
    # every partition of which has a replica on node 3: every replica moves off, the cluster
    # keeps serving; node 3 must be stopped before it can be unregistered.
    busy = unique("busy")
    busy_assignment = [[3, 1], [2, 3], [3, 4], [4, 3]]
    new = NewTopic(busy, num_partitions=len(busy_assignment), replica_assignment=busy_assignment)
    admin_request(cluster.live_bootstrap(), lambda a: a.create_topics([new], request_timeout=30))[busy].result()
    for partition in range(len(busy_assignment)):
        cluster.wait_for_isr(busy, partition, 2)
    consumer = ContinuousConsumer(cluster.live_bootstrap(), busy, len(busy_assignment)).start()
    load = SteadyProducer(
        cluster.live_bootstrap(), busy, len(busy_assignment), rate=200, tag="busy", enable_idempotence=True
    ).start()
    try:
        load.wait_for_acks(100, 20, "before the decommission")
        acked_before = load.acked_count()
        out = cli(cluster, "cluster", "decommission", "3", "--execute", "--timeout", "90")
        load.wait_for_acks(load.acked_count() + 100, 20, "after the decommission")
        load.stop()
    except BaseException:
        load._stop = True
        consumer.stop()
        raise
    assert "still runs" in out.stdout, out.stdout
    assert load.errors == [], load.describe()
    assert load.acked_count() > acked_before + 100
    high_watermarks = {p: cluster.high_watermark(busy, p) for p in range(len(busy_assignment))}
    consumer.wait_until_caught_up(high_watermarks, 30)
    consumer.stop()
    for p in range(len(busy_assignment)):
        # Nothing lost, nothing twice: the log is exactly the acknowledged records.
        values = [r.value for r in consume_range(cluster.live_bootstrap(), busy, p, 0, high_watermarks[p])]
        by_offset = {d.offset: d.value for d in load.acknowledged if d.partition == p}
        assert dict(enumerate(values)) == by_offset, f"{busy}[{p}]: the log differs from what was acknowledged"
    for replicas in layout(cluster).values():
        assert 3 not in replicas, layout(cluster)
    wait_until(lambda: partition_dirs(cluster, 3, topic) == [], 20, "node 3's partition directories deleted")
    wait_until(lambda: partition_dirs(cluster, 3, busy) == [], 20, "node 3's partition directories deleted")
    refused = cli(cluster, "cluster", "unregister", "3", check=False)
    assert refused.returncode != 0 and "alive" in refused.stderr, refused.stderr
    unknown = cli(cluster, "cluster", "unregister", "9", check=False)
    assert unknown.returncode != 0 and "BROKER_ID_NOT_REGISTERED" in unknown.stderr, unknown.stderr

    cluster.stop(3)
    wait_until(
        lambda: cli(cluster, "cluster", "unregister", "3", check=False).returncode == 0,
        30,
        "node 3 unregistered once fenced",
    )
    info = cluster.cluster_info()
    assert sorted(b["id"] for b in info["brokers"]) == [1, 2, 4], info["brokers"]
    for partition in range(PARTITIONS):
        cluster.wait_for_isr(topic, partition, 2)
    check_records(cluster, topic)
    check_group_commits(cluster, topic)
