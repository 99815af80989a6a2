"""Partition reassignment (KIP-455) on loopback strom clusters: AlterPartitionReassignments
v0-1 and ListPartitionReassignments v0 through kafka-python's admin client, `strom cluster
reassign` (`kafka-reassign-partitions.sh`), and a move of every partition under load while the
active controller and a moving replica are killed.

The expectations are Kafka's (KRaft): a move to a target replica list adds `target - current`
and removes `current - target`; while it runs the partition's replicas are the target followed
by the replicas it removes; the added replicas fetch from the leader and join the ISR; once the
ISR holds every target replica the move completes (replicas = target, the removed replicas
leave, and leadership moves to the first in-sync target replica if the leader was removed), and
each removed replica deletes its partition directory (<data dir>/<topic>-<partition>).
Cancelling (replicas None) restores the original replicas (in Kafka's order: the list during
the move without the replicas it was adding, see `reverted`). Errors: NO_REASSIGNMENT_IN_PROGRESS
(85) for a cancel with nothing to cancel, INVALID_REPLICA_ASSIGNMENT (39) for an empty list, a
duplicate or an unregistered broker, UNKNOWN_TOPIC_OR_PARTITION (3) for an unknown topic or
partition, INVALID_REPLICATION_FACTOR (38) from v1 when the replication factor would change
and the request does not allow it. A registered but stopped (fenced) broker is a valid target;
the move then stays in progress until it returns.

* test_moves_complete_with_leader_moves_and_removed_replicas_deleted: kafka-python moves the
  partitions of an RF=2 topic holding records (two of them away from their leader); the list
  empties, Metadata shows the targets with full ISRs and the expected leaders, every record
  reads back, removed replicas' directories are gone, the new replicas are byte-identical.
* test_move_onto_a_stopped_broker_stays_listed_until_cancelled: the target names a stopped
  (registered, fenced) broker: listed with the right adding/removing replicas while producing
  goes on, cancelled, the original replicas are back, and the stopped broker, once back, never
  hosts the partitions.
* test_refused_reassignments_carry_kafkas_error_codes: each error above, per partition, next to
  an accepted partition in the same request.
* test_strom_cluster_reassign_round_trip: `--plan` (with `--output`), `--execute`, `--verify`
  until completed, `--list`, a move onto a stopped broker that `--verify` reports in progress,
  `--list` shows and `--cancel` undoes; bad files and unknown topics are clean errors.
* test_reassignment_survives_kills_of_the_controller_and_a_moving_replica: the issue's fault
  test (see its docstring).

Settings are fast failure detection (FAST_FAILOVER_SETTINGS) and no automatic preferred-leader
rebalance, so that leadership only moves because of the move under test.
"""

from __future__ import annotations

import json
import pathlib
import random
import time

import pytest
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import AlterPartitionReassignmentsRequest

from cluster import (  # noqa: F401 - cluster_factory is the fixture
    CLI_TIMEOUT_S,
    FAST_FAILOVER_SETTINGS,
    Cluster,
    ContinuousConsumer,
    PartitionState,
    SteadyProducer,
    _help,
    cluster_factory,
    require_cluster_info,
)
from confluent_kafka.admin import NewTopic
from kafka_helpers import admin_request, consume_range, produce_all, producer, unique, wait_until
from replica_checker import check_replicas

SETTINGS = {**FAST_FAILOVER_SETTINGS, "auto.leader.rebalance.enable": "false"}
BROKER_ONLY_4 = {"voters": (1, 2, 3), "node_settings": {4: {"process.roles": "broker"}}}

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
NO_REASSIGNMENT_IN_PROGRESS = 85

MOVE_TIMEOUT_S = 30.0
SEED = 455  # KIP-455; the only randomness is the fault test's choice of replica sets


# -- helpers ---------------------------------------------------------------------------------


def started(cluster_factory, size: int, start_only: tuple[int, ...] | None = None, **options) -> Cluster:  # noqa: F811
    """A loopback cluster of `size` nodes with SETTINGS; with `start_only`, only those nodes are
    started (the others stay never-started, e.g. a broker that joins later)."""
    require_cluster_info()
    cluster: Cluster = cluster_factory(size, settings=SETTINGS, start=start_only is None, **options)
    if start_only is not None:
        for node_id in start_only:
            cluster.node(node_id).spawn()
        for node_id in start_only:
            cluster.node(node_id).wait_ready()
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(len(start_only or cluster.nodes), timeout_s=20)
    return cluster


def create_assigned(cluster: Cluster, topic: str, assignment: list[list[int]], config: dict | None = None) -> None:
    """CreateTopics with explicit replica lists, then waits for full ISRs."""
    new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment, config=config or {})
    admin_request(cluster.live_bootstrap(), lambda a: a.create_topics([new], request_timeout=30))[topic].result()
    for partition, replicas in enumerate(assignment):
        cluster.wait_for_isr(topic, partition, len(replicas))


def kafka_admin(cluster: Cluster) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=cluster.live_bootstrap().split(","), client_id="strom-e2e-reassign", request_timeout_ms=15000
    )


def tp(topic: str, partition: int) -> KafkaTopicPartition:
    return KafkaTopicPartition(topic, partition)


def alter(admin: KafkaAdminClient, moves: dict) -> dict:
    """{(topic, partition): error code} of alter_partition_reassignments({TopicPartition:
    replicas or None}); 0 where accepted."""
    result = admin.alter_partition_reassignments(moves)
    return {(t.topic, t.partition): (NONE if error is None else error.errno) for t, error in result.items()}


def alter_raw(admin: KafkaAdminClient, topic: str, replicas_by_partition: dict, allow_rf_change: bool = True) -> dict:
    """AlterPartitionReassignments built by hand, bypassing kafka-python's own checks (it refuses
    an empty list itself); {(topic, partition): error code}."""
    topic_type = AlterPartitionReassignmentsRequest.ReassignableTopic
    partition_type = topic_type.ReassignablePartition
    request = AlterPartitionReassignmentsRequest(
        timeout_ms=15000,
        allow_replication_factor_change=allow_rf_change,
        topics=[
            topic_type(
                name=topic,
                partitions=[partition_type(partition_index=p, replicas=r) for p, r in replicas_by_partition.items()],
            )
        ],
    )
    response = admin._manager.run(admin._send_request_to_controller, request, lambda r: ())
    assert response.error_code == NONE, f"request-wide error {response.error_code}: {response}"
    return {(t.name, p.partition_index): p.error_code for t in response.responses for p in t.partitions}


def ongoing(admin: KafkaAdminClient, topic: str) -> dict[int, dict]:
    """{partition: {'replicas', 'adding_replicas', 'removing_replicas'}} of `topic`'s moves in
    progress, as ListPartitionReassignments (every partition) lists them."""
    return {t.partition: state for t, state in admin.list_partition_reassignments().items() if t.topic == topic}


def wait_reassigned(
    cluster: Cluster, admin: KafkaAdminClient, topic: str, targets: dict[int, list[int]], timeout_s: float = MOVE_TIMEOUT_S
) -> dict[int, PartitionState]:
    """Waits until no move of `topic` is listed and every node's Metadata shows each partition
    with exactly its target replicas (in order), all of them in the ISR, and a leader; returns
    the states."""
    last: dict = {}

    def done():
        last["ongoing"] = ongoing(admin, topic)
        if last["ongoing"]:
            return None
        found = {}
        for partition, target in targets.items():
            state = cluster.agreed_partition_state(topic, partition)
            last[partition] = state
            if state is None or state.replicas != tuple(target) or sorted(state.isr) != sorted(target) or state.leader < 0:
                return None
            found[partition] = state
        return found

    try:
        return wait_until(done, timeout_s, f"{topic} moved to {targets}", interval_s=0.2)
    except AssertionError as error:
        assert_no_panic(cluster)  # the likelier explanation, if there is one
        raise AssertionError(f"{error}; last seen: {last}; nodes {cluster.describe_nodes()}") from None


def during_move(current: list[int], target: list[int]) -> list[int]:
    """The replica list while a move from `current` to `target` runs: the target, then the
    replicas it removes."""
    return list(target) + [r for r in current if r not in target]


def reverted(current: list[int], target: list[int]) -> list[int]:
    """The replica list after cancelling that move, as Kafka's PartitionReassignmentRevert makes
    it: the list during the move without the replicas being added (the original set, not
    necessarily in the original order)."""
    return [r for r in during_move(current, target) if r in current]


def partition_entries(data_dir: pathlib.Path, topic: str, partition: int) -> list[str]:
    """Names in a data dir that belong to the partition: its directory, or a renamed one
    (`<topic>-<partition>.<anything>`) waiting for deletion."""
    name = f"{topic}-{partition}"
    if not data_dir.is_dir():
        return []
    return sorted(e.name for e in data_dir.iterdir() if e.name == name or e.name.startswith(name + "."))


def wait_removed_data_gone(cluster: Cluster, topic: str, removed: dict[int, set[int]], timeout_s: float = 20.0) -> None:
    """Waits until every removed replica {partition: nodes} has no directory of the partition."""

    def left():
        return {
            (p, node): partition_entries(cluster.node(node).data_dir, topic, p)
            for p, nodes in removed.items()
            for node in nodes
            if partition_entries(cluster.node(node).data_dir, topic, p)
        }

    try:
        wait_until(lambda: not left(), timeout_s, "removed replicas' partition directories deleted", interval_s=0.2)
    except AssertionError as error:
        assert_no_panic(cluster)  # the likelier explanation, if there is one
        raise AssertionError(f"{error}; still there {{(partition, node): entries}}: {left()}") from None


def assert_no_panic(cluster: Cluster) -> None:
    """No node logged a panic (Rust's "thread '...' panicked at FILE:LINE"), not even one the
    broker survived (a panicking task whose error is only logged leaves the node running on a
    half-applied state)."""
    for node in cluster.nodes.values():
        log = node.log()
        if "panicked at " in log:
            at = log.index("panicked at ")
            excerpt = log[max(0, log.rfind("\n", 0, at - 200)) : at + 600]
            raise AssertionError(f"{node.name} panicked ({node.log_path}):\n{excerpt}")


def read_partition(cluster: Cluster, topic: str, partition: int, end: int) -> list[bytes]:
    """The values at offsets [0, end) of a partition, read by a fresh consumer; the offsets must
    be dense."""
    records = consume_range(cluster.live_bootstrap(), topic, partition, 0, end)
    assert [r.offset for r in records] == list(range(end)), f"{topic}[{partition}]: offsets not dense in [0, {end})"
    return [r.value for r in records]


# -- CLI helpers -----------------------------------------------------------------------------


def require_reassign_cli() -> str:
    """`strom cluster reassign --help`, or skip while the subcommand does not exist."""
    text = _help("cluster", "reassign")
    if text is None or "--execute" not in text:
        pytest.skip("`strom cluster reassign` not implemented yet")
    return text


def bootstrap_flag() -> str:
    """The reassign command's bootstrap flag: `--bootstrap-server` (Kafka's) or `--bootstrap`
    (Strom's other commands)."""
    text = require_reassign_cli()
    return "--bootstrap-server" if "--bootstrap-server" in text else "--bootstrap"


def reassign(cluster: Cluster, *args: str, timeout_s: float = CLI_TIMEOUT_S):
    return cluster.run_cli(
        ["cluster", "reassign", bootstrap_flag(), cluster.live_bootstrap(), *args, *cluster.cli_args], timeout_s
    )


def show(result) -> str:
    return f"exit {result.returncode}\n--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"


def assert_clean_failure(result, *expected: str) -> None:
    """A non-zero exit with an error message on stderr, no panic, no signal; every `expected`
    text somewhere in the output."""
    output = result.stdout + result.stderr
    assert result.returncode > 0, f"expected a failure: {show(result)}"
    assert result.returncode != 101 and "panicked" not in output and "RUST_BACKTRACE" not in output, (
        f"the CLI panicked: {show(result)}"
    )
    assert "Traceback" not in output, show(result)
    assert result.stderr.strip(), f"no error message on stderr: {show(result)}"
    for text in expected:
        assert text in output, f"{text!r} not in the output: {show(result)}"


def listed_moves(result, topic: str) -> dict[int, tuple[str, str, str]]:
    """{partition: (replicas, adding, removing)} of `topic` in `--list`'s table (columns TOPIC
    PARTITION REPLICAS ADDING REMOVING, lists comma-separated)."""
    assert result.returncode == 0, show(result)
    found = {}
    for line in result.stdout.splitlines():
        columns = line.split()
        if columns and columns[0] == topic:
            while len(columns) < 5:  # an empty ADDING or REMOVING column
                columns.append("")
            found[int(columns[1])] = tuple(columns[2:5])
    return found


def json_after(text: str, heading: str) -> dict:
    """The JSON object printed after `heading`."""
    assert heading in text, f"{heading!r} not printed:\n{text}"
    start = text.index("{", text.index(heading))
    value, _ = json.JSONDecoder().raw_decode(text, start)
    return value


def reassignment_json(topic: str, targets: dict[int, list[int]]) -> str:
    """Kafka's reassignment file."""
    partitions = [
        {"topic": topic, "partition": p, "replicas": list(r), "log_dirs": ["any"] * len(r)}
        for p, r in sorted(targets.items())
    ]
    return json.dumps({"version": 1, "partitions": partitions})


def assignment_of(document: dict, topic: str) -> dict[int, list[int]]:
    """{partition: replicas} of a reassignment JSON document (shape checked)."""
    assert document.get("version") == 1, document
    found = {}
    for entry in document["partitions"]:
        assert entry["topic"] == topic, document
        assert entry["partition"] not in found, f"partition {entry['partition']} twice: {document}"
        assert entry.get("log_dirs", ["any"] * len(entry["replicas"])) == ["any"] * len(entry["replicas"]), entry
        found[entry["partition"]] = list(entry["replicas"])
    return found


def verify_until_complete(cluster: Cluster, path: pathlib.Path, topic: str, partitions: list[int], timeout_s: float):
    """Runs `--verify` until it exits 0 (every move complete); exit 3 (in progress) means try
    again, anything else fails. Returns the last result and how many runs reported progress."""
    in_progress_runs = 0
    deadline = time.monotonic() + timeout_s
    while True:
        result = reassign(cluster, "--verify", str(path))
        if result.returncode == 0:
            for p in partitions:
                line = f"Reassignment of partition {topic}-{p} is completed."
                assert line in result.stdout.splitlines(), f"{line!r} missing: {show(result)}"
            return result, in_progress_runs
        assert result.returncode == 3, f"--verify failed: {show(result)}"
        assert "is still in progress." in result.stdout, show(result)
        in_progress_runs += 1
        assert time.monotonic() < deadline, f"moves not complete after {timeout_s} s: {show(result)}"
        time.sleep(1.0)


# -- 1. moves through kafka-python -------------------------------------------------------------


@pytest.mark.timeout(120)
def test_moves_complete_with_leader_moves_and_removed_replicas_deleted(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, 3)
    topic = unique("move")
    original = [[1, 2], [2, 3], [3, 1]]
    create_assigned(cluster, topic, original)
    before = produce_all(
        producer(cluster.bootstrap), topic,
        [{"key": b"k%d" % i, "value": b"before-%d" % i, "partition": i % 3} for i in range(600)],
    )
    # Partition 0 loses its leader 1 (3 should lead: the first in-sync target replica),
    # partition 1 keeps its leader 2 and swaps follower 3 for 1, partition 2 loses its leader 3
    # (1 should lead).
    targets = {0: [3, 2], 1: [2, 1], 2: [1, 2]}
    expected_leaders = {0: 3, 1: 2, 2: 1}
    removed = {0: {1}, 1: {3}, 2: {3}}
    admin = kafka_admin(cluster)
    try:
        assert ongoing(admin, topic) == {}
        accepted = alter(admin, {tp(topic, p): r for p, r in targets.items()})
        assert accepted == {(topic, p): NONE for p in targets}, accepted
        final = wait_reassigned(cluster, admin, topic, targets)
        assert ongoing(admin, topic) == {}
    finally:
        admin.close()
    leaders = {p: s.leader for p, s in final.items()}
    assert leaders == expected_leaders, f"leaders after the moves {leaders}, expected {expected_leaders}: {final}"

    # The new replica sets take writes (acks=all) and serve every record, old and new.
    after = produce_all(
        producer(cluster.live_bootstrap()), topic,
        [{"key": b"a%d" % i, "value": b"after-%d" % i, "partition": i % 3} for i in range(300)],
    )
    for p in range(3):
        expected = [d.value for d in before + after if d.partition == p]
        assert read_partition(cluster, topic, p, len(expected)) == expected, f"{topic}[{p}] records"
        assert cluster.high_watermark(topic, p) == len(expected)

    wait_removed_data_gone(cluster, topic, removed)
    for p, target in targets.items():
        assert sorted(cluster.partition_dirs(topic, p)) == sorted(target), f"{topic}[{p}] directories"

    high_watermarks = {p: cluster.high_watermark(topic, p) for p in range(3)}
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    report = check_replicas(
        topic, cluster.data_dirs(), before + after, partitions=[0, 1, 2], high_watermarks=high_watermarks,
        leaders=leaders, isr={p: list(s.isr) for p, s in final.items()}, replicas=targets,
    )
    for p, part in report.partitions.items():
        hw = high_watermarks[p]
        assert all(r.startswith(f"node {n}: [0, {hw})") for n, r in part.replicas.items()), report.summary()
    assert_no_panic(cluster)


@pytest.mark.timeout(120)
def test_move_onto_a_stopped_broker_stays_listed_until_cancelled(cluster_factory):  # noqa: F811
    # Nodes 1-3 are the controller quorum, node 4 only a broker: it can be stopped freely.
    cluster = started(cluster_factory, 4, **BROKER_ONLY_4)
    topic = unique("cancel")
    original = {0: [1, 2], 1: [2, 3]}
    create_assigned(cluster, topic, [original[0], original[1]])
    first = produce_all(producer(cluster.bootstrap), topic, [{"value": b"first-%d" % i, "partition": i % 2} for i in range(100)])

    cluster.stop(4)  # registered, now fenced
    cluster.wait_for_brokers(3, timeout_s=20)
    targets = {0: [1, 4], 1: [4, 3]}
    # During the move: target followed by the removed replicas.
    expected = {
        0: {"replicas": [1, 4, 2], "adding_replicas": [4], "removing_replicas": [2]},
        1: {"replicas": [4, 3, 2], "adding_replicas": [4], "removing_replicas": [2]},
    }
    assert all(expected[p]["replicas"] == during_move(original[p], targets[p]) for p in (0, 1))
    admin = kafka_admin(cluster)
    try:
        accepted = alter(admin, {tp(topic, p): r for p, r in targets.items()})
        assert accepted == {(topic, 0): NONE, (topic, 1): NONE}, f"a stopped, registered broker is a valid target: {accepted}"
        assert ongoing(admin, topic) == expected
        only_0 = {t.partition: s for t, s in admin.list_partition_reassignments([tp(topic, 0)]).items()}
        assert only_0 == {0: expected[0]}, f"listing one partition: {only_0}"
        # Metadata shows the replicas during the move; the leaders stay until it completes.
        for p, leader in ((0, 1), (1, 2)):
            state = wait_until(
                lambda: cluster.agreed_partition_state(topic, p), 15, f"{topic}[{p}] agreed by every node"
            )
            assert (list(state.replicas), state.leader, sorted(state.isr)) == (
                expected[p]["replicas"], leader, sorted(original[p])
            ), state
        # The partitions keep working (acks=all) and the moves cannot complete: still listed.
        during = produce_all(
            producer(cluster.live_bootstrap()), topic, [{"value": b"during-%d" % i, "partition": i % 2} for i in range(100)]
        )
        assert ongoing(admin, topic) == expected

        cancelled = alter(admin, {tp(topic, 0): None, tp(topic, 1): None})
        assert cancelled == {(topic, 0): NONE, (topic, 1): NONE}, cancelled
        # The original replicas again, in the order Kafka's revert leaves them: the list during
        # the move without the replicas it was adding ([4, 3, 2] -> [3, 2]).
        back = {p: reverted(original[p], targets[p]) for p in (0, 1)}
        assert back == {0: [1, 2], 1: [3, 2]}
        final = wait_reassigned(cluster, admin, topic, back)
        assert {p: s.leader for p, s in final.items()} == {0: 1, 1: 2}, final
        again = alter(admin, {tp(topic, 0): None})
        assert again == {(topic, 0): NO_REASSIGNMENT_IN_PROGRESS}, again
    finally:
        admin.close()

    # Node 4 returns. Once it leads a partition created after the cancel, it has applied the
    # metadata up to and past the cancel: it must not host the moved partitions.
    cluster.start(4)
    cluster.wait_for_brokers(4, timeout_s=30)
    probe = unique("probe")
    create_assigned(cluster, probe, [[4]])
    assert cluster.wait_for_leader(probe, 0, timeout_s=20) == 4
    for p in (0, 1):
        assert partition_entries(cluster.node(4).data_dir, topic, p) == [], f"node 4 hosts {topic}[{p}]"
        assert sorted(cluster.partition_dirs(topic, p)) == sorted(original[p]), f"{topic}[{p}] directories"
        assert cluster.partition_state(topic, p).replicas == tuple(back[p])
    for p in (0, 1):
        values = [d.value for d in first + during if d.partition == p]
        assert read_partition(cluster, topic, p, len(values)) == values, f"{topic}[{p}] records"
    assert_no_panic(cluster)


@pytest.mark.timeout(90)
def test_refused_reassignments_carry_kafkas_error_codes(cluster_factory):  # noqa: F811
    cluster = started(cluster_factory, 3)
    topic = unique("refused")
    create_assigned(cluster, topic, [[1, 2], [2, 3]])
    missing_topic = unique("no-such-topic")
    admin = kafka_admin(cluster)
    try:
        # One request: every kind of refusal per partition, and a valid move that goes through.
        mixed = alter(admin, {
            tp(topic, 0): [1, 99],          # broker 99 is not registered
            tp(topic, 1): [3, 2],           # a reorder: nothing to copy, done at once
            tp(topic, 7): [1, 2],           # no partition 7
            tp(missing_topic, 0): [1, 2],   # no such topic
        })
        assert mixed == {
            (topic, 0): INVALID_REPLICA_ASSIGNMENT,
            (topic, 1): NONE,
            (topic, 7): UNKNOWN_TOPIC_OR_PARTITION,
            (missing_topic, 0): UNKNOWN_TOPIC_OR_PARTITION,
        }, mixed
        wait_reassigned(cluster, admin, topic, {0: [1, 2], 1: [3, 2]})

        assert alter(admin, {tp(topic, 0): [1, 1]}) == {(topic, 0): INVALID_REPLICA_ASSIGNMENT}, "duplicate broker"
        assert alter(admin, {tp(topic, 0): [3, 3, 1]}) == {(topic, 0): INVALID_REPLICA_ASSIGNMENT}, "duplicate broker"
        assert alter_raw(admin, topic, {0: []}) == {(topic, 0): INVALID_REPLICA_ASSIGNMENT}, "empty replica list"
        assert alter(admin, {tp(topic, 0): None}) == {(topic, 0): NO_REASSIGNMENT_IN_PROGRESS}, "cancel without a move"
        assert alter(admin, {tp(topic, 9): None}) == {(topic, 9): UNKNOWN_TOPIC_OR_PARTITION}, "cancel, no partition"
        # v1: a change of replication factor only where the request allows it.
        refused_rf = alter_raw(admin, topic, {0: [1, 2, 3]}, allow_rf_change=False)
        assert refused_rf == {(topic, 0): INVALID_REPLICATION_FACTOR}, refused_rf

        # Nothing refused changed anything.
        assert ongoing(admin, topic) == {}
        assert ongoing(admin, missing_topic) == {}
        for p, replicas in ((0, (1, 2)), (1, (3, 2))):
            state = cluster.wait_for_isr(topic, p, 2)
            assert state.replicas == replicas, state
        assert sorted(cluster.partition_dirs(topic, 0)) == [1, 2]
    finally:
        admin.close()
    assert_no_panic(cluster)


# -- 2. strom cluster reassign -------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_strom_cluster_reassign_round_trip(cluster_factory, tmp_path):  # noqa: F811
    help_text = require_reassign_cli()
    for flag in ("--plan", "--brokers", "--output", "--execute", "--verify", "--cancel", "--list"):
        assert flag in help_text, f"`strom cluster reassign --help` lacks {flag}:\n{help_text}"
    cluster = started(cluster_factory, 3)
    topic = unique("cli-move")
    original = {0: [1, 2], 1: [2, 1], 2: [1, 2]}
    create_assigned(cluster, topic, [original[p] for p in range(3)])
    records = produce_all(
        producer(cluster.bootstrap), topic, [{"value": b"cli-%d" % i, "partition": i % 3} for i in range(300)]
    )

    # --plan: the current assignment and a proposal on brokers 2 and 3 only (so every partition
    # must leave broker 1).
    topics_file = tmp_path / "topics.json"
    topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
    proposed_file = tmp_path / "proposed.json"
    plan = reassign(cluster, "--plan", str(topics_file), "--brokers", "2,3", "--output", str(proposed_file))
    assert plan.returncode == 0, show(plan)
    current = json_after(plan.stdout, "Current partition replica assignment")
    assert assignment_of(current, topic) == original, show(plan)
    proposal = json_after(plan.stdout, "Proposed partition reassignment configuration")
    proposed = assignment_of(proposal, topic)
    assert sorted(proposed) == [0, 1, 2], show(plan)
    for p, replicas in proposed.items():
        assert sorted(replicas) == [2, 3], f"partition {p}: proposed {replicas} on brokers 2,3 with RF 2: {show(plan)}"
    written = json.loads(proposed_file.read_text())
    assert assignment_of(written, topic) == proposed, f"--output wrote {written}, printed {proposal}"

    # --execute, then --verify until completed.
    executed = reassign(cluster, "--execute", str(proposed_file))
    assert executed.returncode == 0, show(executed)
    # It prints the assignment before the moves, to --execute for a rollback (as Kafka does).
    rollback = json_after(executed.stdout, "Current partition replica assignment")
    assert assignment_of(rollback, topic) == original, show(executed)
    verify_until_complete(cluster, proposed_file, topic, [0, 1, 2], MOVE_TIMEOUT_S)
    listed = reassign(cluster, "--list")
    assert listed_moves(listed, topic) == {} and topic not in listed.stdout, show(listed)
    admin = kafka_admin(cluster)
    try:
        wait_reassigned(cluster, admin, topic, proposed)
    finally:
        admin.close()
    wait_removed_data_gone(cluster, topic, {p: {1} for p in range(3)})
    for p in range(3):
        values = [d.value for d in records if d.partition == p]
        assert read_partition(cluster, topic, p, len(values)) == values, f"{topic}[{p}] after the CLI move"

    # A move onto a stopped broker (1, registered): in progress for --verify (exit 3) and
    # --list, until --cancel.
    cluster.stop(1)
    cluster.wait_for_brokers(2, timeout_s=20)
    onto_stopped = {0: [1, 2]}
    stopped_file = tmp_path / "onto-stopped.json"
    stopped_file.write_text(reassignment_json(topic, onto_stopped))
    executed = reassign(cluster, "--execute", str(stopped_file))
    assert executed.returncode == 0, show(executed)
    pending = reassign(cluster, "--verify", str(stopped_file))
    assert pending.returncode == 3, show(pending)
    assert f"Reassignment of partition {topic}-0 is still in progress." in pending.stdout.splitlines(), show(pending)
    listed = reassign(cluster, "--list")
    during = ",".join(map(str, during_move(proposed[0], onto_stopped[0])))
    assert listed_moves(listed, topic) == {0: (during, "1", "3")}, show(listed)
    cancelled = reassign(cluster, "--cancel", str(stopped_file))
    assert cancelled.returncode == 0, show(cancelled)
    listed = reassign(cluster, "--list")
    assert listed_moves(listed, topic) == {} and topic not in listed.stdout, show(listed)
    admin = kafka_admin(cluster)
    try:
        wait_reassigned(cluster, admin, topic, {0: reverted(proposed[0], onto_stopped[0])})
    finally:
        admin.close()
    cluster.start(1)
    cluster.wait_for_brokers(3, timeout_s=30)

    # Errors: clean messages and non-zero exits, never a panic.
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"version": 1, "partitions": [{"topic": ')
    for action in ("--execute", "--verify", "--cancel"):
        result = reassign(cluster, action, str(bad_json))
        assert_clean_failure(result)
        assert "json" in result.stderr.lower() or "bad.json" in result.stderr, f"{action}: {show(result)}"
    wrong_shape = tmp_path / "wrong-shape.json"
    wrong_shape.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
    assert_clean_failure(reassign(cluster, "--execute", str(wrong_shape)))
    assert_clean_failure(reassign(cluster, "--execute", str(tmp_path / "missing.json")))
    assert_clean_failure(reassign(cluster, "--plan", str(bad_json), "--brokers", "1,2"))

    missing = unique("cli-missing")
    unknown_topics = tmp_path / "unknown-topics.json"
    unknown_topics.write_text(json.dumps({"version": 1, "topics": [{"topic": missing}]}))
    assert_clean_failure(reassign(cluster, "--plan", str(unknown_topics), "--brokers", "1,2,3"), missing)
    unknown_move = tmp_path / "unknown-move.json"
    unknown_move.write_text(reassignment_json(missing, {0: [1, 2]}))
    assert_clean_failure(reassign(cluster, "--execute", str(unknown_move)), "UNKNOWN_TOPIC_OR_PARTITION")
    bad_broker = tmp_path / "bad-broker.json"
    bad_broker.write_text(reassignment_json(topic, {0: [2, 99]}))
    assert_clean_failure(reassign(cluster, "--execute", str(bad_broker)), "INVALID_REPLICA_ASSIGNMENT")
    # Nothing of that moved anything.
    listed = reassign(cluster, "--list")
    assert listed_moves(listed, topic) == {} and missing not in listed.stdout, show(listed)
    assert cluster.partition_state(topic, 0).replicas == tuple(reverted(proposed[0], onto_stopped[0]))
    assert_no_panic(cluster)


# -- 3. under load, with the controller and a moving replica killed ------------------------------------

FAULT_PARTITIONS = 6
PREFILL_PER_PARTITION = 600
PREFILL_VALUE_BYTES = 1000
# Node 4 copies at most this much per partition and fetch (replica.fetch.max.bytes), and the
# prefill is written in batches no larger (batch.size), so that its copy of the ~3.6 MB takes
# many fetches: the test catches it part-way.
COPY_BYTES_PER_FETCH = 8192
PRODUCER_RATE = 150


def copied_bytes(node, topic: str, partitions: range) -> dict[int, int]:
    """{partition: bytes in the node's segment files of it} (files may come and go meanwhile)."""
    found = {}
    for p in partitions:
        try:
            found[p] = sum(f.stat().st_size for f in node.segment_files(topic, p))
        except FileNotFoundError:
            found[p] = 0
    return found


def fault_targets(current: dict[int, tuple[int, ...]]) -> tuple[dict[int, list[int]], dict[int, int]]:
    """New RF=3 replica sets on brokers 1-4 for partitions that are all on 1-3: each partition
    drops one of 1-3 (each of them twice over the six partitions, the partition's leader where
    the seeded shuffle says so) and takes 4, in a seeded random order. Returns ({partition:
    target}, {partition: dropped node})."""
    rng = random.Random(SEED)
    dropped_nodes = [1, 1, 2, 2, 3, 3]
    rng.shuffle(dropped_nodes)
    targets, dropped = {}, {}
    for p in sorted(current):
        assert sorted(current[p]) == [1, 2, 3], current
        target = [n for n in (1, 2, 3, 4) if n != dropped_nodes[p]]
        rng.shuffle(target)
        targets[p], dropped[p] = target, dropped_nodes[p]
    return targets, dropped


@pytest.mark.timeout(180)
def test_reassignment_survives_kills_of_the_controller_and_a_moving_replica(cluster_factory, tmp_path):  # noqa: F811
    """A 4-node cluster (voters 1-3, node 4 broker-only) starts with nodes 1-3; an RF=3 topic of
    six partitions is filled, then written by a steady acks=all idempotent producer and read by a
    consumer. Node 4 joins; every partition is moved (`strom cluster reassign --execute`) to a
    new set that includes node 4. Once node 4 has begun copying, it is frozen (SIGSTOP: the
    moves cannot complete while the test looks, there being no --throttle to slow them) and,
    with moves listed in progress, the active controller and node 4 (adding replica of every
    partition) are killed with SIGKILL, then restarted. `--verify` must report completion; then
    no acknowledged record is lost or duplicated, each record is read once by a fresh consumer,
    every new replica is byte-identical below the high watermark (replica_checker) and every
    removed replica's directory is gone."""
    require_reassign_cli()
    began = time.monotonic()
    timings: list[str] = []

    def mark(what: str) -> None:
        timings.append(f"{time.monotonic() - began:5.1f} s {what}")

    cluster = started(
        cluster_factory, 4, start_only=(1, 2, 3), voters=(1, 2, 3),
        node_settings={4: {"process.roles": "broker", "replica.fetch.max.bytes": COPY_BYTES_PER_FETCH}},
    )
    topic = unique("fault-move")
    cluster.create_topic(topic, partitions=FAULT_PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
    filler = b"x" * (PREFILL_VALUE_BYTES - 16)
    prefill = produce_all(
        producer(cluster.live_bootstrap(), linger_ms=20, batch_size=COPY_BYTES_PER_FETCH, message_timeout_ms=60000),
        topic,
        [
            {"key": b"pre-%d" % i, "value": b"pre-%08d-" % i + filler, "partition": i % FAULT_PARTITIONS}
            for i in range(PREFILL_PER_PARTITION * FAULT_PARTITIONS)
        ],
        timeout_s=60,
    )
    mark(f"{len(prefill)} records prefilled")
    consumer = ContinuousConsumer(cluster.bootstrap, topic, FAULT_PARTITIONS).start()
    load = SteadyProducer(
        cluster.bootstrap, topic, FAULT_PARTITIONS, rate=PRODUCER_RATE, tag="steady", enable_idempotence=True
    ).start()
    try:
        load.wait_for_acks(100, 20, "before the move")
        cluster.start(4)
        cluster.wait_for_brokers(4, timeout_s=30)
        mark("node 4 registered")

        current = {p: cluster.partition_state(topic, p).replicas for p in range(FAULT_PARTITIONS)}
        targets, dropped = fault_targets(current)
        plan = tmp_path / "move.json"
        plan.write_text(reassignment_json(topic, targets))
        executed = reassign(cluster, "--execute", str(plan))
        assert executed.returncode == 0, show(executed)
        mark(f"moves started {targets} (dropping {dropped})")

        # Node 4 copies; freeze it a third of the way, so that the moves are still running
        # when the kills come.
        partitions = range(FAULT_PARTITIONS)
        to_copy = sum(copied_bytes(cluster.node(1), topic, partitions).values())  # 1 holds them all
        wait_until(
            lambda: sum(copied_bytes(cluster.node(4), topic, partitions).values()) >= to_copy // 3, 20,
            f"node 4 a third of the way through copying {to_copy} bytes", interval_s=0.002,
        )
        cluster.pause(4)
        copied = copied_bytes(cluster.node(4), topic, partitions)
        # (`--list` asks the bootstrap brokers, 1-3; kafka-python's admin client would also try
        # the frozen node 4.)
        moving = listed_moves(reassign(cluster, "--list"), topic)
        mark(f"node 4 frozen with {sum(copied.values())} of {to_copy} bytes copied {copied}; {len(moving)} partitions moving")
        assert moving, f"every move finished before node 4 was frozen ({copied} bytes): nothing to kill mid-way"
        for p, (replicas, adding, removing) in moving.items():
            during = ",".join(map(str, during_move(list(current[p]), targets[p])))
            assert (replicas, adding, removing) == (during, "4", str(dropped[p])), (p, moving[p])
        controller = cluster.wait_for_controller_leader(timeout_s=20)
        acked_before = load.acked_count()
        cluster.kill(controller)
        cluster.kill(4)
        mark(f"killed controller {controller} and node 4 with {len(moving)} partitions moving")
        new_controller = cluster.wait_for_controller_leader(timeout_s=20, exclude=(controller,))
        load.wait_for_acks(load.acked_count() + 100, 30, f"with nodes {controller} and 4 down")
        mark(f"controller {new_controller} elected, producer acknowledged {load.acked_count() - acked_before} meanwhile")
        cluster.start(controller)
        cluster.start(4)
        cluster.wait_for_brokers(4, timeout_s=30)
        mark("both restarted")

        verified, in_progress_runs = verify_until_complete(cluster, plan, topic, sorted(targets), 60)
        mark(f"--verify complete ({in_progress_runs} runs in progress before)")
        admin = kafka_admin(cluster)
        try:
            final = wait_reassigned(cluster, admin, topic, targets)
        finally:
            admin.close()
        assert_no_panic(cluster)
        wait_removed_data_gone(cluster, topic, {p: {n} for p, n in dropped.items()})
        mark("targets in Metadata with full ISRs, removed directories gone")
        load.wait_for_acks(load.acked_count() + 100, 30, "after the moves")
        load.stop()
    except BaseException:
        load._stop = True
        consumer.stop()
        print("timings:\n  " + "\n  ".join(timings) + f"\nproducer: {load.describe()}")
        raise
    mark(f"producer stopped: {load.describe()}")
    assert load.errors == [], f"delivery errors (acks=all, idempotent, 60 s timeout): {load.describe()}"

    high_watermarks = {p: cluster.high_watermark(topic, p) for p in range(FAULT_PARTITIONS)}
    consumer.wait_until_caught_up(high_watermarks, 30)
    consumer.stop()
    acked = prefill + load.acknowledged
    # Nothing lost, nothing twice: a fresh consumer reads, per partition, exactly the
    # acknowledged records at their acknowledged offsets (every record sent was acknowledged).
    for p in range(FAULT_PARTITIONS):
        values = read_partition(cluster, topic, p, high_watermarks[p])
        assert len(values) == len(set(values)), f"{topic}[{p}]: a record is in the log twice"
        by_offset = {d.offset: d.value for d in acked if d.partition == p}
        assert len(by_offset) == sum(1 for d in acked if d.partition == p), f"{topic}[{p}]: two acks at one offset"
        assert dict(enumerate(values)) == by_offset, (
            f"{topic}[{p}]: the log differs from the acknowledged records "
            f"(log {len(values)} records, acknowledged {len(by_offset)})"
        )
    mark("every record read once by a fresh consumer")

    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    report = check_replicas(
        topic, cluster.data_dirs(), acked, consumer.seen(), partitions=list(range(FAULT_PARTITIONS)),
        high_watermarks=high_watermarks, leaders={p: s.leader for p, s in final.items()},
        isr={p: list(s.isr) for p, s in final.items()}, replicas=targets,
    )
    for p in range(FAULT_PARTITIONS):
        assert final[p].leader in targets[p], final[p]
        assert partition_entries(cluster.node(dropped[p]).data_dir, topic, p) == [], f"node {dropped[p]} keeps {topic}[{p}]"
        assert sorted(n for n in cluster.nodes if partition_entries(cluster.node(n).data_dir, topic, p)) == sorted(targets[p])
        hw = high_watermarks[p]
        assert all(r.startswith(f"node {n}: [0, {hw})") for n, r in report.partitions[p].replicas.items()), report.summary()
    assert sum(part.acknowledged_checked for part in report.partitions.values()) == len(acked)
    broker_errors = [e for e in consumer.errors if "Broker: " in e]
    assert not broker_errors, f"{len(broker_errors)} broker errors to the consumer, first: {broker_errors[:5]}"
    assert_no_panic(cluster)
    mark("replicas checked")
    print("timings:\n  " + "\n  ".join(timings) + "\n" + report.summary())


# -- 6. replication throttle (--throttle) ------------------------------------------------------

THROTTLE_BYTES_PER_S = 300_000
THROTTLED_PARTITION_BYTES = 1_500_000


def topic_config(cluster: Cluster, topic: str, key: str) -> str | None:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = admin_request(cluster.live_bootstrap(), lambda a: a.describe_configs([resource]))[resource].result()
    entry = described.get(key)
    return entry.value if entry is not None else None


@pytest.mark.timeout(150)
def test_throttled_move_is_held_to_the_rate_and_verify_clears_the_throttle(cluster_factory, tmp_path):  # noqa: F811
    """Two partitions of ~1.5 MB each move from node 1 to node 2 (RF 1): the first with
    `--execute --throttle 300000` takes at least 1.5 MB / 300 kB/s less a burst (> 3 s) and
    longer than twice the unthrottled second; while it runs the topic holds Kafka's throttled
    replica lists and the brokers the rates; `--verify` clears both once it completed."""
    require_reassign_cli()
    cluster = started(cluster_factory, 2)
    topic = unique("throttled")
    create_assigned(cluster, topic, [[1], [1]])
    value = random.Random(SEED).randbytes(10_000)
    records = [dict(partition=p, value=value) for p in (0, 1) for _ in range(THROTTLED_PARTITION_BYTES // len(value))]
    produce_all(producer(cluster.live_bootstrap(), acks="all", **{"linger.ms": 5}), topic, records)

    def timed_move(partition: int, *extra: str) -> float:
        path = tmp_path / f"move-{partition}.json"
        path.write_text(reassignment_json(topic, {partition: [2]}))
        started_at = time.monotonic()
        result = reassign(cluster, "--execute", str(path), *extra)
        assert result.returncode == 0, show(result)
        if extra:
            assert topic_config(cluster, topic, "leader.replication.throttled.replicas") == f"{partition}:1"
            assert topic_config(cluster, topic, "follower.replication.throttled.replicas") == f"{partition}:2"
        verify_until_complete(cluster, path, topic, [partition], timeout_s=60)
        return time.monotonic() - started_at

    throttled = timed_move(0, "--throttle", str(THROTTLE_BYTES_PER_S))
    for key in ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas"):
        assert topic_config(cluster, topic, key) in ("", None), f"{key} not cleared by --verify"
    unthrottled = timed_move(1)
    assert throttled > 3.0, f"the throttled move took {throttled:.1f} s"
    assert throttled > 2 * unthrottled, f"throttled {throttled:.1f} s, unthrottled {unthrottled:.1f} s"
    for partition in (0, 1):
        assert len(read_partition(cluster, topic, partition, len(records) // 2)) == len(records) // 2
    assert_no_panic(cluster)
