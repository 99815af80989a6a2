"""More loopback cluster tests (issue 4): min.insync.replicas, no unclean leader election,
a broker-only node (Raft observer), rack-aware placement.

Every node is started as cluster.py shows (`strom server --node-id N --listen .. --controller-listen
.. --controller-quorum 1@..,2@..,3@.. --data-dir ..`), with fast failure detection (FAST): a
broker is fenced 3 s after its last heartbeat, a follower leaves the ISR 3 s after it stopped
catching up. The expectations are Kafka's (KRaft, without KIP-966's eligible leader replicas):

* acks=all to a partition whose ISR is smaller than min.insync.replicas is refused with
  NOT_ENOUGH_REPLICAS (19) before the append (the record is not written); acks=1 is not
  affected;
* with unclean.leader.election.enable=false (the default) a partition whose last in-sync replica
  is fenced has no leader (-1, LEADER_NOT_AVAILABLE) and keeps that replica as its ISR; a replica
  outside the ISR coming back does not lead it; the last ISR member coming back does;
* a node with process.roles=broker is a broker and a metadata-quorum observer, never a voter;
* with broker.rack set, a partition's replicas are spread over as many racks as possible.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    cluster_factory,
    require_cluster_info,
)
from kafka_helpers import (
    DeliveryLog,
    admin_request,
    consume_range,
    produce_all,
    producer,
    unique,
    wait_until,
)
from replica_checker import check_replicas, read_replica

FAST = FAST_FAILOVER_SETTINGS


def started(cluster: Cluster, brokers: int) -> Cluster:
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(brokers, timeout_s=20)
    return cluster


def create_assigned(cluster: Cluster, topic: str, assignment: list[list[int]], config: dict | None = None) -> None:
    """CreateTopics with explicit replica assignments (partition i on assignment[i])."""
    new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment, config=config or {})
    result = admin_request(cluster.live_bootstrap(), lambda a: a.create_topics([new], operation_timeout=20, request_timeout=20))
    result[topic].result()


def produce_one(bootstrap: str, topic: str, value: bytes, timeout_s: float = 20.0, **conf):
    """One record to partition 0 with its own producer; returns its delivery report."""
    log = DeliveryLog()
    p = producer(bootstrap, **conf)
    p.produce(topic, value=value, partition=0, on_delivery=log.callback)
    remaining = p.flush(timeout_s)
    assert remaining == 0, f"no delivery report for {value!r} within {timeout_s} s"
    (report,) = log.reports
    return report


def stop_and_check(cluster: Cluster, topic: str, partitions: int, acknowledged, isr_size: int):
    """Full ISRs (agreed by every node), high watermarks; stops every node; checks the replicas'
    files: acknowledged records at their offsets, replicas byte-identical below the HW, every
    replica ending exactly at the high watermark."""
    final = {p: cluster.wait_for_isr(topic, p, isr_size, timeout_s=20) for p in range(partitions)}
    high_watermarks = {p: cluster.high_watermark(topic, p) for p in range(partitions)}
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    report = check_replicas(
        topic, cluster.data_dirs(), acknowledged, partitions=list(range(partitions)),
        high_watermarks=high_watermarks, leaders={p: s.leader for p, s in final.items()},
        isr={p: list(s.isr) for p, s in final.items()},
    )
    for p, part in report.partitions.items():
        assert sorted(part.replicas) == sorted(final[p].replicas), report.summary()
        hw = high_watermarks[p]
        assert all(r.startswith(f"node {n}: [0, {hw})") for n, r in part.replicas.items()), report.summary()
    return report, high_watermarks


# -- 1. min.insync.replicas ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_acks_all_refused_with_not_enough_replicas_while_isr_below_min_insync(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster = started(cluster_factory(3, settings=FAST), 3)
    topic = unique("min-isr")
    cluster.create_topic(topic, partitions=1, replication_factor=3, config={"min.insync.replicas": "3"}, timeout_s=20)
    before = produce_all(producer(cluster.bootstrap), topic, [{"value": b"full-%d" % i, "partition": 0} for i in range(50)])
    leader = cluster.partition_leader(topic, 0)
    follower = next(n for n in cluster.nodes if n != leader)

    cluster.kill(follower)
    shrunk = cluster.wait_for_isr(topic, 0, 2, timeout_s=20)
    assert follower not in shrunk.isr and shrunk.leader == leader, shrunk
    live = cluster.live_bootstrap()

    # acks=all, no retries: the record is refused, NOT_ENOUGH_REPLICAS (19).
    rejected_value = b"refused-acks-all"
    refused = produce_one(live, topic, rejected_value, acks="all", retries=0, message_timeout_ms=10000)
    assert refused.error is not None, f"acks=all acknowledged at offset {refused.offset} with ISR {shrunk.isr} < 3"
    assert refused.error.code() == KafkaError.NOT_ENOUGH_REPLICAS, f"expected NOT_ENOUGH_REPLICAS, got {refused.error}"
    # acks=1 only needs the leader.
    one = produce_one(live, topic, b"acks-one", acks=1, retries=0, message_timeout_ms=10000)
    assert one.error is None and one.offset == 50, one

    # The follower is back: the ISR grows to 3 and acks=all works again.
    cluster.start(follower)
    cluster.wait_for_isr(topic, 0, 3, timeout_s=25)
    after = produce_one(cluster.bootstrap, topic, b"full-again", acks="all", retries=0, message_timeout_ms=10000)
    assert after.error is None and after.offset == 51, after

    # The refused record was never written (Kafka checks the ISR before the append).
    read = consume_range(cluster.bootstrap, topic, 0, 0, 52)
    assert [r.value for r in read] == [d.value for d in before] + [b"acks-one", b"full-again"], [r.value for r in read]
    stop_and_check(cluster, topic, 1, before + [one, after], 3)


# -- 2. no unclean leader election -----------------------------------------------------------


@pytest.mark.timeout(60)
def test_last_isr_member_fenced_partition_offline_until_it_returns(cluster_factory):  # noqa: F811
    """RF=2 on nodes (2, 3) of a 5-voter cluster (so that the quorum survives both being down):
    node 3 dies, node 2 leads alone and acknowledges more; node 2 dies: no leader. Node 3 back
    (not in the ISR): still no leader. Node 2 back: it leads, and every acknowledged record is
    there."""
    require_cluster_info()
    cluster = started(cluster_factory(5, settings=FAST), 5)
    topic = unique("no-unclean")
    create_assigned(cluster, topic, [[2, 3]])
    state = cluster.wait_for_isr(topic, 0, 2, timeout_s=20)
    assert state.replicas == (2, 3) and state.leader == 2, state
    first = produce_all(producer(cluster.bootstrap), topic, [{"value": b"both-%d" % i, "partition": 0} for i in range(40)])

    cluster.kill(3)
    alone = cluster.wait_for_isr(topic, 0, 1, timeout_s=20)
    assert alone.isr == (2,) and alone.leader == 2, alone
    # Acknowledged by node 2 alone (min.insync.replicas=1): only node 2 has these.
    second = produce_all(
        producer(cluster.live_bootstrap()), topic, [{"value": b"only-2-%d" % i, "partition": 0} for i in range(40)]
    )
    assert [d.offset for d in first + second] == list(range(80))

    cluster.kill(2)
    cluster.wait_for_brokers(3, timeout_s=20)  # node 2 fenced

    def offline():
        s = cluster.agreed_partition_state(topic, 0)
        return s if s is not None and s.leader == -1 else None

    gone = wait_until(offline, 15, f"{topic}[0] without a leader after nodes 3 and 2 died")
    assert gone.isr == (2,), f"the ISR should keep its last member 2 (Kafka does): {gone}"
    assert gone.error is not None and "LEADER_NOT_AVAILABLE" in gone.error, gone

    # Node 3 is back and unfenced, but it is not in the ISR: it must not lead (it lacks the
    # 40 records only node 2 acknowledged).
    cluster.start(3)
    cluster.wait_for_brokers(4, timeout_s=20)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        s = cluster.partition_state(topic, 0, node_id=1)
        assert s.leader == -1 and s.isr == (2,), f"unclean election: node 3 (not in the ISR) took over: {s}"
        time.sleep(0.2)
    refused = produce_one(cluster.live_bootstrap(), topic, b"while-offline", acks=1, message_timeout_ms=2000)
    assert refused.error is not None, f"a write was accepted while the partition had no leader: offset {refused.offset}"

    # Node 2, the last ISR member, is back: it leads again and node 3 catches up.
    cluster.start(2)
    assert cluster.wait_for_leader(topic, 0, timeout_s=20) == 2
    cluster.wait_for_isr(topic, 0, 2, timeout_s=25)
    read = consume_range(cluster.bootstrap, topic, 0, 0, 80)
    assert [(r.offset, r.value) for r in read] == [(d.offset, d.value) for d in first + second]
    _, hw = stop_and_check(cluster, topic, 1, first + second, 2)
    assert hw == {0: 80}, hw


# -- 3. a broker-only node -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_broker_only_node_is_an_observer_and_replicates(cluster_factory):  # noqa: F811
    require_cluster_info()
    cluster = cluster_factory(4, settings=FAST, voters=(1, 2, 3), node_settings={4: {"process.roles": "broker"}})
    started(cluster, 4)

    # A broker-only node whose id is in the voter list is refused at start-up.
    misfit = cluster.base_dir / "misfit"
    refused = cluster.run_cli([
        "server", "--node-id", "3", "--listen", "127.0.0.9:0", "--controller-listen", "127.0.0.9:0",
        "--controller-quorum", cluster.quorum, "--data-dir", str(misfit), "--set", "process.roles=broker",
    ])
    assert refused.returncode != 0, f"a broker-only node 3 in the voter list started: {refused.stderr[-500:]}"
    assert "in the voter list but is configured as broker-only" in refused.stdout + refused.stderr, refused
    quorum = cluster.node(4).command()[cluster.node(4).command().index("--controller-quorum") + 1]
    assert sorted(int(v.split("@")[0]) for v in quorum.split(",")) == [1, 2, 3], quorum

    def observed(node_id):
        info = cluster.cluster_info(node_id)
        observers = [o["id"] for o in info["controller"]["observers"]]
        return info if 4 in observers else None

    for node_id in cluster.nodes:
        info = wait_until(lambda: observed(node_id), 15, f"node 4 an observer as node {node_id} reports")
        controller = info["controller"]
        assert sorted(v["id"] for v in controller["voters"]) == [1, 2, 3], info
        assert [o["id"] for o in controller["observers"]] == [4], info
        assert controller["leader"] in (1, 2, 3), info
        assert sorted(b["id"] for b in info["brokers"]) == [1, 2, 3, 4], info
        four = next(b for b in info["brokers"] if b["id"] == 4)
        assert (four["host"], four["port"]) == (cluster.node(4).host, cluster.node(4).port), info

    topic = unique("on-four")
    assignment = [[4, 1, 2], [1, 4, 3]]  # node 4 leads partition 0 and follows partition 1
    create_assigned(cluster, topic, assignment)
    for p, replicas in enumerate(assignment):
        state = cluster.wait_for_isr(topic, p, 3, timeout_s=20)
        assert state.replicas == tuple(replicas) and state.leader == replicas[0], state
    deliveries = produce_all(
        producer(cluster.bootstrap), topic, [{"key": b"k%d" % i, "value": b"four-%d" % i, "partition": i % 2} for i in range(400)]
    )

    # Killing the observer costs the quorum nothing: same controller leader and epoch; node 4's
    # leadership moves to node 1. Back, it catches up and rejoins both ISRs.
    controller = cluster.cluster_info(1)["controller"]
    cluster.kill(4)
    assert cluster.wait_for_leader(topic, 0, timeout_s=20, exclude=(4,)) == 1
    for p in range(2):
        assert 4 not in cluster.wait_for_isr(topic, p, 2, timeout_s=20).isr
    after_kill = cluster.cluster_info(1)["controller"]
    assert (after_kill["leader"], after_kill["leader_epoch"]) == (controller["leader"], controller["leader_epoch"]), (
        controller, after_kill
    )
    more = produce_all(
        producer(cluster.live_bootstrap()), topic, [{"value": b"without-4-%d" % i, "partition": i % 2} for i in range(100)]
    )
    cluster.start(4)
    for p in range(2):
        cluster.wait_for_isr(topic, p, 3, timeout_s=25)
    deliveries += more
    report, hw = stop_and_check(cluster, topic, 2, deliveries, 3)
    assert hw == {0: 250, 1: 250}, hw
    for p in range(2):
        replica = read_replica(4, cluster.node(4).partition_dir(topic, p))
        values = [replica.records[o].value for o in sorted(replica.records)]
        assert values == [d.value for d in deliveries if d.partition == p], f"node 4's copy of partition {p}"
        assert 4 in report.partitions[p].replicas, report.summary()


# -- 4. racks --------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_replicas_spread_over_racks(cluster_factory):  # noqa: F811
    require_cluster_info()
    racks = {1: "a", 2: "a", 3: "b"}
    cluster = cluster_factory(3, settings=FAST, node_settings={n: {"broker.rack": r} for n, r in racks.items()})
    started(cluster, 3)
    info = cluster.cluster_info()
    assert {b["id"]: b["rack"] for b in info["brokers"]} == racks, info

    topic = unique("racks")
    cluster.create_topic(topic, partitions=6, replication_factor=2, timeout_s=20)
    placed = {p: cluster.partition_state(topic, p) for p in range(6)}
    for p, state in placed.items():
        assert len(state.replicas) == 2 and len({racks[r] for r in state.replicas}) == 2, (
            f"partition {p} replicas {state.replicas} on racks {[racks[r] for r in state.replicas]}: {placed}"
        )
    # Leadership is still spread over all three nodes.
    assert {s.leader for s in placed.values()} == {1, 2, 3}, placed
