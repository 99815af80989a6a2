"""Brokers joining and leaving (issue 13, item 5) on a 3-then-4-node cluster on loopback.

* A fourth (broker-only) node joins a 3-node cluster holding an RF=2 topic with records:
  `strom cluster rebalance` shows a plan and moves nothing; with `--execute` the replicas and
  preferred leaders spread evenly over the four brokers (within one), every partition keeps two
  distinct in-sync replicas, and every record is still there.
* `strom cluster decommission 3` moves every replica off node 3 (still running: it is told to
  stop it first, and UnregisterBroker refuses a live broker); once stopped, `strom cluster
  unregister 3` removes it: DescribeCluster no longer lists it, its partition directories are
  gone, and the records are all there. An unknown broker id is BROKER_ID_NOT_REGISTERED.
"""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka.admin import NewTopic

from confluent_kafka import Consumer, TopicPartition

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
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

    # Decommission node 3 while it runs: every replica moves off; it must be stopped first.
    out = cli(cluster, "cluster", "decommission", "3", "--execute", "--timeout", "90")
    assert "still runs" in out.stdout, out.stdout
    for replicas in layout(cluster).values():
        assert 3 not in replicas, layout(cluster)
    wait_until(lambda: partition_dirs(cluster, 3, topic) == [], 20, "node 3's partition directories deleted")
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
