"""Leader elections on a 3-node strom cluster on loopback (issue 13, item 4), and the group
coordinator's NOT_COORDINATOR answers (item 8).

* A failover moves leadership off a partition's preferred replica (the first of its replica
  list); once that replica is back in sync, confluent-kafka's AdminClient.elect_leaders
  (PREFERRED) brings leadership back, as Metadata shows, and a second call (and
  kafka-python's KafkaAdminClient.elect_leaders) answers ELECTION_NOT_NEEDED. Records written before, between and after are all there.
* With `auto.leader.rebalance.enable` and a 2 s `leader.imbalance.check.interval.seconds`, the
  active controller brings leadership back by itself.
* `strom cluster elect-leaders` (whole cluster, one topic, one partition; unknown partitions
  and usage errors).
* UNCLEAN: a partition whose only in-sync replica died is offline until an unclean election
  makes its live, out-of-sync replica leader (with a 4th, broker-only node so the controller
  quorum survives); the old leader then rejoins as a follower. Before that, PREFERRED answers
  PREFERRED_LEADER_NOT_AVAILABLE, and UNCLEAN on a partition that has a leader
  ELECTION_NOT_NEEDED.
* Raw DescribeGroups, ListGroups, DeleteGroups, OffsetDelete, OffsetCommit, LeaveGroup,
  ConsumerGroupHeartbeat and ConsumerGroupDescribe sent to a broker that does not lead the group's `__consumer_offsets`
  partition answer NOT_COORDINATOR (ListGroups leaves the group out instead); the coordinator
  answers them, and confluent-kafka's admin calls (which look the coordinator up) work.

Elections other than the automatic one run with the rebalance off, so that only the call under
test moves leadership.
"""

from __future__ import annotations

import pytest
from confluent_kafka import (
    Consumer, ConsumerGroupTopicPartitions, ElectionType, KafkaError, KafkaException, TopicPartition,
)
from confluent_kafka.admin import NewTopic

from kafka.admin import KafkaAdminClient

import raw_kafka as rk
from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    cluster_factory,
    offsets_partition_for,
    require_cluster_info,
)
from kafka_helpers import admin_request, consume_range, produce_all, producer, unique, wait_until

MANUAL = {**FAST_FAILOVER_SETTINGS, "auto.leader.rebalance.enable": "false", "group.initial.rebalance.delay.ms": 0}
AUTOMATIC = {**FAST_FAILOVER_SETTINGS, "leader.imbalance.check.interval.seconds": 2}
# Each partition prefers another node: [1,2,3], [2,3,1], [3,1,2].
ROTATED = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]
OFFSETS_TOPIC = "__consumer_offsets"
RECORDS_PER_STEP = 20


def started(cluster_factory, settings: dict, size: int = 3, **options) -> Cluster:  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(size, settings=settings, **options)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(size, timeout_s=20)
    return cluster


def create_assigned(cluster: Cluster, topic: str, assignment: list[list[int]]) -> None:
    """CreateTopics with explicit replica lists, then waits for full ISRs."""
    new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment)
    admin_request(cluster.live_bootstrap(), lambda a: a.create_topics([new], request_timeout=30))[topic].result()
    for partition, replicas in enumerate(assignment):
        cluster.wait_for_isr(topic, partition, len(replicas))


def leaders(cluster: Cluster, topic: str, partitions: int) -> dict[int, int] | None:
    """{partition: leader} as every reachable node agrees, else None."""
    states = [cluster.agreed_partition_state(topic, p) for p in range(partitions)]
    return None if None in states else {s.partition: s.leader for s in states}


def wait_led_by_preferred(cluster: Cluster, topic: str, assignment: list[list[int]], timeout_s: float) -> None:
    wanted = {p: replicas[0] for p, replicas in enumerate(assignment)}
    wait_until(lambda: leaders(cluster, topic, len(assignment)) == wanted, timeout_s, f"{topic} led by {wanted}")


def fail_over(cluster: Cluster, topic: str, assignment: list[list[int]], node: int) -> None:
    """Stops `node`, waits until its partitions are led elsewhere, starts it again and waits
    until it is back in every ISR."""
    cluster.stop(node)
    for partition, replicas in enumerate(assignment):
        if replicas[0] == node:
            cluster.wait_for_leader(topic, partition, exclude=(node,))
    cluster.start(node)
    cluster.wait_for_brokers(len(cluster.nodes), timeout_s=30)
    for partition, replicas in enumerate(assignment):
        cluster.wait_for_isr(topic, partition, len(replicas))


def error_name(error) -> str | None:
    """The Kafka name of an elect_leaders result value (None: elected)."""
    if error is None:
        return None
    if isinstance(error, KafkaException):
        error = error.args[0]
    assert isinstance(error, KafkaError), f"unexpected result {error!r}"
    return error.name()


def elect(cluster: Cluster, election: ElectionType, partitions: list[TopicPartition] | None) -> dict:
    """{(topic, partition): error name or None} of AdminClient.elect_leaders. (No timeouts:
    confluent-kafka 2.16.1's elect_leaders fails on any keyword argument, SystemError.)"""
    result = admin_request(cluster.live_bootstrap(), lambda a: a.elect_leaders(election, partitions)).result()
    return {(tp.topic, tp.partition): error_name(error) for tp, error in result.items()}


def produce_step(cluster: Cluster, topic: str, partitions: int, step: str) -> None:
    records = [
        {"value": f"{step}-{i}".encode(), "partition": p} for p in range(partitions) for i in range(RECORDS_PER_STEP)
    ]
    produce_all(producer(cluster.live_bootstrap()), topic, records)


def check_records(cluster: Cluster, topic: str, partitions: int, steps: list[str]) -> None:
    """Every partition holds exactly the records of `steps`, in order."""
    for p in range(partitions):
        end = RECORDS_PER_STEP * len(steps)
        values = [r.value.decode() for r in consume_range(cluster.live_bootstrap(), topic, p, 0, end)]
        assert values == [f"{s}-{i}" for s in steps for i in range(RECORDS_PER_STEP)], f"{topic}[{p}]"


# -- PREFERRED through confluent-kafka -------------------------------------------------------------


@pytest.mark.timeout(180)
def test_preferred_election_brings_leadership_back_after_a_failover(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, MANUAL)
    topic = unique("elect")
    create_assigned(cluster, topic, ROTATED)
    wait_led_by_preferred(cluster, topic, ROTATED, 30)
    produce_step(cluster, topic, 3, "before")

    fail_over(cluster, topic, ROTATED, node=1)
    moved = leaders(cluster, topic, 3)
    assert moved is not None and moved[0] != 1, f"partition 0 should be led elsewhere: {moved}"
    produce_step(cluster, topic, 3, "between")

    asked = [TopicPartition(topic, p) for p in range(3)]
    first = elect(cluster, ElectionType.PREFERRED, asked)
    assert first == {(topic, 0): None, (topic, 1): "ELECTION_NOT_NEEDED", (topic, 2): "ELECTION_NOT_NEEDED"}
    wait_led_by_preferred(cluster, topic, ROTATED, 20)
    second = elect(cluster, ElectionType.PREFERRED, asked)
    assert second == {(topic, p): "ELECTION_NOT_NEEDED" for p in range(3)}
    # kafka-python's admin client, for every partition of the topic (a list of topics).
    admin = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap(), client_id="strom-e2e")
    try:
        response = admin.elect_leaders(0, [topic], raise_errors=False)
    finally:
        admin.close()
    (result,) = response.replica_election_results
    codes = {p.partition_id: p.error_code for p in result.partition_result}
    assert (result.topic, codes) == (topic, {0: 84, 1: 84, 2: 84}), response
    # Unknown partitions and topics are answered per partition.
    unknown = elect(cluster, ElectionType.PREFERRED, [TopicPartition(topic, 7), TopicPartition(unique("none"), 0)])
    assert set(unknown.values()) == {"UNKNOWN_TOPIC_OR_PART"}, unknown  # librdkafka's name

    produce_step(cluster, topic, 3, "after")
    check_records(cluster, topic, 3, ["before", "between", "after"])
    # The whole cluster: nothing left to do, so nothing is listed.
    assert all(error is None for error in elect(cluster, ElectionType.PREFERRED, None).values())
    assert elect(cluster, ElectionType.PREFERRED, None) == {}


# -- the automatic rebalance -----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_the_controller_rebalances_leaders_by_itself(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, AUTOMATIC)
    topic = unique("rebalance")
    create_assigned(cluster, topic, ROTATED)
    wait_led_by_preferred(cluster, topic, ROTATED, 30)
    produce_step(cluster, topic, 3, "before")
    cluster.stop(2)
    cluster.wait_for_leader(topic, 1, exclude=(2,))
    produce_step(cluster, topic, 3, "between")
    cluster.start(2)
    # Back in sync, then preferred again within a few check intervals, without any call.
    wait_led_by_preferred(cluster, topic, ROTATED, 40)
    for partition in range(3):
        cluster.wait_for_isr(topic, partition, 3)
    produce_step(cluster, topic, 3, "after")
    check_records(cluster, topic, 3, ["before", "between", "after"])


# -- strom cluster elect-leaders -------------------------------------------------------------------


def strom_elect(cluster: Cluster, *args: str):
    return cluster.run_cli(["cluster", "elect-leaders", "--bootstrap", cluster.live_bootstrap(), *args])


def rows(output: str, topic: str) -> list[list[str]]:
    """The table rows of `topic`, split into columns."""
    return [line.split(maxsplit=2) for line in output.splitlines() if line.startswith(topic + " ")]


@pytest.mark.timeout(180)
def test_strom_cluster_elect_leaders(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, MANUAL)
    topic = unique("cli-elect")
    create_assigned(cluster, topic, ROTATED)
    wait_led_by_preferred(cluster, topic, ROTATED, 30)
    fail_over(cluster, topic, ROTATED, node=3)

    one = strom_elect(cluster, "--topic", topic, "--partition", "2")
    assert one.returncode == 0, one.stderr
    assert rows(one.stdout, topic) == [[topic, "2", "elected"]], one.stdout
    wait_led_by_preferred(cluster, topic, ROTATED, 20)

    again = strom_elect(cluster, "--topic", topic)
    assert again.returncode == 0, again.stderr
    found = rows(again.stdout, topic)
    assert [row[1] for row in found] == ["0", "1", "2"], again.stdout
    assert all(row[2].startswith("not needed") for row in found), again.stdout

    missing = strom_elect(cluster, "--topic", topic, "--partition", "9")
    assert missing.returncode != 0
    assert "UNKNOWN_TOPIC_OR_PARTITION" in missing.stdout, missing.stdout
    assert "1 partition(s) could not be elected" in missing.stderr, missing.stderr

    unclean = strom_elect(cluster, "--type", "unclean", "--topic", topic, "--partition", "0")
    assert unclean.returncode == 0 and "not needed" in unclean.stdout, unclean.stdout + unclean.stderr

    # The whole cluster (the offsets topic too, whose partitions node 3 also led), then nothing.
    everything = strom_elect(cluster)
    assert everything.returncode == 0, everything.stderr
    assert strom_elect(cluster).stdout.strip() == "No partition needed an election."

    usage = strom_elect(cluster, "--partition", "0")
    assert usage.returncode == 2 and "--partition" in usage.stderr, usage.stderr
    bad_type = strom_elect(cluster, "--type", "sometimes")
    assert bad_type.returncode == 2, bad_type.stderr


# -- UNCLEAN -------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_unclean_election_makes_a_live_out_of_sync_replica_leader(cluster_factory):  # noqa: F811
    # Nodes 1-3 are the controller quorum; node 4 only a broker, so stopping 4 and killing 1
    # leaves a quorum.
    cluster = started(
        cluster_factory, MANUAL, size=4, voters=(1, 2, 3), node_settings={4: {"process.roles": "broker"}}
    )
    topic = unique("unclean")
    create_assigned(cluster, topic, [[1, 4]])
    produce_step(cluster, topic, 1, "both")

    # Node 4 leaves; node 1 goes on alone (ISR [1]) and takes records 4 never sees.
    cluster.stop(4)
    cluster.wait_for_isr(topic, 0, 1)
    produce_step(cluster, topic, 1, "alone")
    healthy = elect(cluster, ElectionType.UNCLEAN, [TopicPartition(topic, 0)])
    assert healthy == {(topic, 0): "ELECTION_NOT_NEEDED"}

    # The last in-sync replica dies: the partition is offline, and stays so when 4 returns.
    cluster.kill(1)
    wait_until(lambda: cluster.partition_state(topic, 0).leader == -1, 30, f"{topic}[0] offline")
    cluster.start(4)
    cluster.wait_for_brokers(3, timeout_s=30)
    assert cluster.partition_state(topic, 0).leader == -1
    preferred = elect(cluster, ElectionType.PREFERRED, [TopicPartition(topic, 0)])
    assert preferred == {(topic, 0): "PREFERRED_LEADER_NOT_AVAILABLE"}

    unclean = elect(cluster, ElectionType.UNCLEAN, [TopicPartition(topic, 0)])
    assert unclean == {(topic, 0): None}
    state = cluster.wait_for_isr(topic, 0, 1)
    assert (state.leader, state.isr) == (4, (4,)), state
    # What 4 has is the partition now: the records node 1 took alone are lost.
    produce_step(cluster, topic, 1, "after")
    check_records(cluster, topic, 1, ["both", "after"])

    # The old leader returns as a follower, drops what only it had, and catches up.
    cluster.start(1)
    cluster.wait_for_isr(topic, 0, 2, timeout_s=40)
    again = elect(cluster, ElectionType.PREFERRED, [TopicPartition(topic, 0)])
    assert again == {(topic, 0): None}
    wait_led_by_preferred(cluster, topic, [[1, 4]], 20)
    check_records(cluster, topic, 1, ["both", "after"])


# -- NOT_COORDINATOR -----------------------------------------------------------------------------


def coordinator_of(cluster: Cluster, group: str) -> int:
    return cluster.wait_for_leader(OFFSETS_TOPIC, offsets_partition_for(group))


@pytest.mark.timeout(180)
def test_group_apis_answer_not_coordinator_on_other_brokers(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, MANUAL)
    topic = unique("groups")
    create_assigned(cluster, topic, ROTATED)
    produce_step(cluster, topic, 3, "records")
    group = unique("coordinated")
    c = Consumer({"bootstrap.servers": cluster.live_bootstrap(), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        c.close()

    coordinator = coordinator_of(cluster, group)
    other = next(n for n in cluster.nodes if n != coordinator)
    at_other, at_coordinator = cluster.node(other).bootstrap, cluster.node(coordinator).bootstrap

    def describe(bootstrap: str) -> tuple[int, str]:
        return rk.parse_describe_groups_response(rk.exchange(bootstrap, rk.describe_groups_request(1, [group])))[group]

    def listed(bootstrap: str) -> list[str]:
        error_code, groups = rk.parse_list_groups_response(rk.exchange(bootstrap, rk.list_groups_request(1)))
        assert error_code == 0
        return groups

    def consumer_describe(bootstrap: str) -> int:
        payload = rk.exchange(bootstrap, rk.consumer_group_describe_request(1, [group]))
        error_code, described = rk.parse_consumer_group_describe_first_error(payload)
        assert described == group
        return error_code

    nc = rk.NOT_COORDINATOR
    assert describe(at_other) == (nc, "")
    assert describe(at_coordinator) == (0, "Empty")
    assert group not in listed(at_other)
    assert group in listed(at_coordinator)
    assert consumer_describe(at_other) == nc
    assert consumer_describe(at_coordinator) == KafkaError.GROUP_ID_NOT_FOUND
    heartbeat = rk.exchange(at_other, rk.consumer_group_heartbeat_request(1, group, [topic]))
    assert rk.parse_consumer_group_heartbeat_response(heartbeat) == (nc, "This is not the correct coordinator.")
    committed = rk.exchange(at_other, rk.offset_commit_request(1, group, topic, 0, 9))
    assert rk.parse_offset_commit_response(committed) == {(topic, 0): nc}
    left = rk.exchange(at_other, rk.leave_group_request(1, group, "someone"))
    assert rk.parse_leave_group_error(left) == nc
    offset_delete = rk.exchange(at_other, rk.offset_delete_request(1, group, topic, [0]))
    assert rk.parse_offset_delete_error(offset_delete) == nc
    deleted = rk.exchange(at_other, rk.delete_groups_request(1, [group]))
    assert rk.parse_delete_groups_response(deleted) == {group: nc}
    assert describe(at_coordinator) == (0, "Empty"), "the refused delete deleted nothing"
    committed_offsets = admin_request(
        at_coordinator,
        lambda a: a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]),
    )[group].result()
    assert committed_offsets.topic_partitions[0].offset == 5, "the refused commit changed nothing"

    # confluent-kafka's admin client finds the coordinator whichever broker it starts from.
    bootstrap = at_other
    listing = admin_request(bootstrap, lambda a: a.list_consumer_groups(request_timeout=15)).result()
    assert group in {g.group_id for g in listing.valid}
    described = admin_request(bootstrap, lambda a: a.describe_consumer_groups([group], request_timeout=15))
    assert described[group].result().group_id == group
    deleted = admin_request(bootstrap, lambda a: a.delete_consumer_groups([group], request_timeout=15))
    deleted[group].result()
    assert describe(at_coordinator) == (0, "Dead")
