"""A 3-node strom cluster on loopback (127.0.0.1-3, no root needed): placement, controller
failover, controlled shutdown, and consumer-group offsets across a coordinator failover.

Every node is a combined broker and controller started as the README shows
(`strom server --node-id N --listen H:P --controller-listen H:CP --controller-quorum
1@..,2@..,3@.. --data-dir D`, see cluster.py), with fast failure detection (FAST below): a
broker is fenced 3 s after its last heartbeat, a follower leaves the ISR 3 s after it stopped
catching up. After each test the nodes are stopped and every replica's files are compared by
replica_checker (acknowledged records at their offsets, replicas byte-identical below the high
watermark).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    SteadyProducer,
    cluster_factory,
    offsets_partition_for,
    require_cluster_info,
)
from kafka_helpers import (
    admin_request,
    consume_range,
    delete_topic,
    list_topic_names,
    produce_all,
    producer,
    unique,
    wait_until,
)
from replica_checker import check_replicas

FAST = {**FAST_FAILOVER_SETTINGS, "group.initial.rebalance.delay.ms": 0}
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 50


def fresh_cluster(cluster_factory) -> Cluster:  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3, settings=FAST)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    return cluster


def states(cluster: Cluster, topic: str, partitions: int) -> dict:
    return {p: cluster.partition_state(topic, p) for p in range(partitions)}


def check_cluster_replicas(cluster: Cluster, topic: str, partitions: int, acknowledged, observed=(), full=True):
    """Full ISRs, then high watermarks, leaders and ISRs from Metadata, stop every node, and
    check every replica's files. With `full`, every replica must end exactly at the high
    watermark (nothing in flight when the nodes stopped)."""
    final = {p: cluster.wait_for_isr(topic, p, 3, timeout_s=20) for p in range(partitions)}
    high_watermarks = {p: cluster.high_watermark(topic, p) for p in range(partitions)}
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    report = check_replicas(
        topic, cluster.data_dirs(), acknowledged, observed, partitions=list(range(partitions)),
        high_watermarks=high_watermarks, leaders={p: s.leader for p, s in final.items()},
        isr={p: list(s.isr) for p, s in final.items()},
    )
    for p, part in report.partitions.items():
        assert sorted(part.replicas) == [1, 2, 3], report.summary()
        if full:
            hw = high_watermarks[p]
            assert all(r.startswith(f"node {n}: [0, {hw})") for n, r in part.replicas.items()), report.summary()
    return report


# -- 1. placement and replication ---------------------------------------------------------


def test_three_nodes_one_controller_spread_leaders_identical_replicas(cluster_factory):  # noqa: F811
    cluster = fresh_cluster(cluster_factory)
    for node in cluster.nodes.values():
        command = node.command()
        assert command[1] == "server" and "--controller-quorum" in command and "--node-id" in command, command

    # Exactly one controller leader, the same from every node; three voters and three brokers.
    views = {n: cluster.cluster_info(n) for n in cluster.nodes}
    leaders = {(v["controller"]["leader"], v["controller"]["leader_epoch"]) for v in views.values()}
    assert len(leaders) == 1, f"nodes disagree on the controller leader: {views}"
    ((leader, _epoch),) = leaders
    assert leader in (1, 2, 3), views
    for node_id, view in views.items():
        assert sorted(v["id"] for v in view["controller"]["voters"]) == [1, 2, 3], (node_id, view)
        assert sorted((b["id"], b["host"], b["port"]) for b in view["brokers"]) == sorted(
            (n.node_id, n.host, n.port) for n in cluster.nodes.values()
        ), (node_id, view)

    topic = unique("spread")
    partitions = 6
    cluster.create_topic(topic, partitions=partitions, replication_factor=3, timeout_s=20)
    placed = states(cluster, topic, partitions)
    for p, state in placed.items():
        assert sorted(state.replicas) == [1, 2, 3] and sorted(state.isr) == [1, 2, 3], state
    led = sorted({s.leader for s in placed.values()})
    assert led == [1, 2, 3], f"leaders not spread over the 3 nodes: {placed}"
    # Preferred leaders: each node leads as many partitions as the others.
    counts = [sum(1 for s in placed.values() if s.leader == n) for n in (1, 2, 3)]
    assert counts == [2, 2, 2], f"leaders per node {counts}: {placed}"

    p = producer(cluster.bootstrap)
    records = [{"key": b"k%d" % i, "value": b"value-%d" % i, "partition": i % partitions} for i in range(1200)]
    deliveries = produce_all(p, topic, records)
    for part in range(partitions):
        ours = [d for d in deliveries if d.partition == part]
        assert sorted(d.offset for d in ours) == list(range(200)), f"partition {part} offsets"
        read = consume_range(cluster.bootstrap, topic, part, 0, 200)
        assert [(r.offset, r.value) for r in read] == sorted((d.offset, d.value) for d in ours), f"partition {part}"
    check_cluster_replicas(cluster, topic, partitions, deliveries)


# -- 2. controller failover ----------------------------------------------------------------


def test_controller_leader_killed_new_one_elected_metadata_keeps_working(cluster_factory):  # noqa: F811
    cluster = fresh_cluster(cluster_factory)
    topic = unique("before-kill")
    cluster.create_topic(topic, partitions=3, replication_factor=3, timeout_s=20)
    p = producer(cluster.bootstrap)
    before = produce_all(p, topic, [{"value": b"before-%d" % i, "partition": i % 3} for i in range(300)])

    old = cluster.wait_for_controller_leader(timeout_s=10)
    old_epoch = cluster.cluster_info(old)["controller"]["leader_epoch"]
    cluster.kill(old)
    started = time.monotonic()
    new = cluster.wait_for_controller_leader(timeout_s=20, exclude=(old,))
    elected_in = time.monotonic() - started
    survivors = [n for n in cluster.nodes if n != old]
    info = cluster.cluster_info(survivors[0])
    assert new in survivors and info["controller"]["leader"] == new, info
    assert info["controller"]["leader_epoch"] > old_epoch, (old_epoch, info)
    # The dead node is fenced: two brokers left.
    cluster.wait_for_brokers(2, timeout_s=20)

    # Metadata changes through a surviving node.
    survivor = cluster.node(survivors[0]).bootstrap
    created = unique("during-outage")
    cluster.create_topic(created, partitions=2, replication_factor=2, timeout_s=20)
    for part in range(2):
        state = cluster.partition_state(created, part)
        assert old not in state.replicas and sorted(state.isr) == sorted(survivors), state
    doomed = unique("doomed")
    cluster.create_topic(doomed, partitions=1, replication_factor=2, timeout_s=20)
    delete_topic(survivor, doomed)
    for node_id in survivors:
        wait_until(
            lambda: doomed not in list_topic_names(cluster.node(node_id).bootstrap),
            15, f"deleted topic {doomed} gone from node {node_id}'s metadata",
        )
    assert created in list_topic_names(survivor)
    # Writes go on: the partitions the dead node led moved to survivors.
    more = produce_all(producer(cluster.live_bootstrap()), topic, [{"value": b"after-%d" % i, "partition": i % 3} for i in range(150)])
    during = produce_all(producer(cluster.live_bootstrap()), created, [{"value": b"x%d" % i} for i in range(20)])

    # The killed node rejoins: three brokers, full ISRs again, the deleted topic gone there too.
    cluster.start(old)
    cluster.wait_for_brokers(3, timeout_s=30)
    assert cluster.wait_for_controller_leader(timeout_s=20) in (1, 2, 3)
    for part in range(3):
        cluster.wait_for_isr(topic, part, 3, timeout_s=30)
    wait_until(lambda: doomed not in list_topic_names(cluster.node(old).bootstrap), 15, f"{doomed} gone on node {old}")
    assert created in list_topic_names(cluster.node(old).bootstrap)
    # A topic created now is placed on all three again.
    after = unique("after-rejoin")
    cluster.create_topic(after, partitions=3, replication_factor=3, timeout_s=20)
    print(f"controller {old} killed, {new} elected in {elected_in:.1f} s")
    check_cluster_replicas(cluster, topic, 3, before + more)
    check_replicas(created, cluster.data_dirs(), during, partitions=[0, 1])


# -- 3. controlled shutdown ------------------------------------------------------------------


def test_sigterm_leader_moves_leadership_first_and_producer_sees_no_error(cluster_factory):  # noqa: F811
    cluster = fresh_cluster(cluster_factory)
    topic = unique("controlled")
    cluster.create_topic(topic, partitions=1, replication_factor=3, timeout_s=20)
    leader = cluster.partition_leader(topic, 0)
    survivors = [n for n in cluster.nodes if n != leader]

    with SteadyProducer(cluster.bootstrap, topic, partitions=1, rate=200) as load:
        load.wait_for_acks(200, 20, "before the shutdown")
        assert cluster.stop(leader) == 0
        # Controlled shutdown: the leadership moved before the process exited, so a survivor's
        # Metadata names another ISR member at once (not only after the session timeout).
        state = wait_until(
            lambda: (s := cluster.partition_state(topic, 0, node_id=survivors[0])).leader in survivors and s,
            1.5, f"{topic}[0] led by a survivor right after node {leader} stopped",
        )
        assert leader not in state.isr, state
        assert "controlled shutdown: leaderships moved" in cluster.node(leader).run_log(), cluster.node(leader).run_log_tail(30)
        mark = load.acked_count()
        load.wait_for_acks(mark + 400, 20, f"after node {leader} stopped")
    assert load.errors == [], f"delivery errors through a controlled shutdown: {load.describe()}"
    acked = load.acknowledged
    assert len(acked) == load.sent, load.describe()
    # Every acknowledged record is read back, at its offset; nothing else is there (retries of
    # a record the old leader had written would show as duplicates: allowed, but reported).
    high_watermark = cluster.high_watermark(topic, 0)
    read = consume_range(cluster.live_bootstrap(), topic, 0, 0, high_watermark)
    by_offset = {r.offset: r.value for r in read}
    missing = [d for d in acked if by_offset.get(d.offset) != d.value]
    assert not missing, f"{len(missing)} acknowledged records not read back at their offsets, first {missing[:3]}"
    assert set(by_offset.values()) == {d.value for d in acked}, "records read that were never acknowledged"

    cluster.start(leader)
    check_cluster_replicas(cluster, topic, 1, acked, [(0, r.offset, r.key, r.value) for r in read])


# -- 4. consumer groups across a coordinator failover ----------------------------------------


def group_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "topic.metadata.refresh.interval.ms": 1000,
    })


def consume_n(consumer: Consumer, count: int, timeout_s: float) -> list:
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"read {len(out)} of {count} records within {timeout_s} s")
        for message in consumer.consume(num_messages=count - len(out), timeout=0.2):
            if message.error() is not None:
                raise KafkaException(message.error())
            out.append(message)
    return out


def list_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    result = admin_request(bootstrap, lambda a: a.list_consumer_group_offsets([request], request_timeout=10))
    out = {}
    for tp in result[group].result().topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
        out[tp.partition] = tp.offset
    return out


def test_committed_offsets_survive_a_kill_of_the_group_coordinator(cluster_factory):  # noqa: F811
    cluster = fresh_cluster(cluster_factory)
    topic, group = unique("grouped"), unique("group")
    partitions = 3
    cluster.create_topic(topic, partitions=partitions, replication_factor=3, timeout_s=20)
    deliveries = produce_all(producer(cluster.bootstrap), topic, [{"value": b"g%d" % i, "partition": i % 3} for i in range(600)])

    first = group_consumer(cluster.bootstrap, group)
    first.subscribe([topic])
    read = consume_n(first, 300, 30)
    # Commit the position after each partition's last record read.
    positions = {p: 0 for p in range(partitions)}
    for message in read:
        positions[message.partition()] = max(positions[message.partition()], message.offset() + 1)
    committed = first.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    assert all(tp.error is None for tp in committed), committed
    first.close()

    # The group's coordinator: the leader of its __consumer_offsets partition, which has three
    # in-sync replicas (RF=min(3, voters)).
    offsets_partition = offsets_partition_for(group, OFFSETS_PARTITIONS)
    state = cluster.wait_for_isr(OFFSETS_TOPIC, offsets_partition, 3, timeout_s=20)
    coordinator = state.leader
    described = admin_request(cluster.bootstrap, lambda a: a.describe_consumer_groups([group], request_timeout=10))
    assert described[group].result().coordinator.id == coordinator, (described[group].result(), state)
    assert list_offsets(cluster.bootstrap, group, topic, partitions) == positions

    cluster.kill(coordinator)
    new_coordinator = cluster.wait_for_leader(OFFSETS_TOPIC, offsets_partition, timeout_s=20, exclude=(coordinator,))
    live = cluster.live_bootstrap()
    seen: list = []

    def offsets_back():
        seen[:] = [list_offsets(live, group, topic, partitions)]
        return seen[0] == positions

    try:
        wait_until(offsets_back, 20, f"the committed offsets {positions} served by the new coordinator {new_coordinator}")
    except AssertionError as error:
        raise AssertionError(
            f"{error}; committed {positions} with coordinator {coordinator} (killed), __consumer_offsets[{offsets_partition}] "
            f"now led by {new_coordinator}, which answers {seen[0] if seen else 'nothing'}"
        ) from None

    # A new member resumes exactly at the committed offsets and reads the rest.
    second = group_consumer(live, group)
    second.subscribe([topic])
    rest = consume_n(second, 600 - sum(positions.values()), 40)
    second.close()
    firsts = {}
    for message in rest:
        firsts.setdefault(message.partition(), message.offset())
    assert firsts == {p: o for p, o in positions.items() if o < 200}, f"resumed at {firsts}, committed {positions}"
    assert sorted((m.partition(), m.offset()) for m in read + rest) == [(p, o) for p in range(3) for o in range(200)]

    cluster.start(coordinator)
    check_cluster_replicas(cluster, topic, partitions, deliveries)
