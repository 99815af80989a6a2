"""Rebalancing a classic consumer group while records flow, with librdkafka consumers.

The main test runs each consumer in its own process (group_helpers.Worker) so that one can be
SIGKILLed: no close(), no LeaveGroup, no last commit. A producer thread produces steadily to
a 6-partition topic, each record's value carrying its partition and a per-partition sequence
number. Each consumer processes a record by logging (partition, offset) to its own file, then
commits offset + 1 synchronously, and logs the commit once it returned.

    3 consumers       -> 2 partitions each (on_assign callbacks and describe_consumer_groups agree)
    a 4th joins       -> sizes 2/2/1/1, every partition owned by exactly one member
    one is SIGKILLed  -> its partitions move to the other three once its session (6 s) expires
    producer stops    -> the group drains to the end of every partition

Then the processing logs must show: every produced offset processed (nothing skipped), and
nothing processed twice, except records the killed consumer processed after its last
successful commit of that partition (those may be processed again by the new owner).

A second test keeps the broker's default 3 s initial rebalance delay and checks that three
consumers starting together form one generation: one assignment each, no revocation.
"""

from __future__ import annotations

import collections
import threading
import time

import pytest

from group_helpers import (
    NO_REBALANCE_DELAY,
    Member,
    Worker,
    assert_partitioned,
    committed_offsets,
    describe_group,
    group_assignment,
    observe_quietly,
    state_name,
    stop_all,
    wait_until,
)
from kafka_helpers import create_topic, produce_all, producer, unique, watermarks

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
# Slack on top of the session timeout for the coordinator's timer, the rebalance that follows
# and the remaining members' rejoin.
MOVE_SLACK_S = 5.0
# About 100 records a second in all.
PRODUCE_INTERVAL_S = 0.01


class SteadyProducer:
    """Produces to partitions 0..PARTITIONS-1 in turn from a thread until stop(); the value of
    the n-th record of partition p is b"p:n". Keeps {partition: {offset: value}} from the
    delivery reports."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = producer(bootstrap, enable_idempotence=True, linger_ms=2)
        self.delivered: dict[int, dict[int, str]] = collections.defaultdict(dict)
        self.errors: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def _on_delivery(self, error, message):
        if error is not None:
            self.errors.append(str(error))
        else:
            self.delivered[message.partition()][message.offset()] = message.value().decode()

    def _run(self):
        sequence = collections.Counter()
        next_send = time.monotonic()
        while not self._stop.is_set():
            partition = self.sent % PARTITIONS
            value = f"{partition}:{sequence[partition]}"
            self.producer.produce(self.topic, value=value.encode(), partition=partition,
                                  on_delivery=self._on_delivery)
            sequence[partition] += 1
            self.sent += 1
            next_send += PRODUCE_INTERVAL_S
            # poll() returns early when it serves a delivery report: pace by the clock.
            while (remaining := next_send - time.monotonic()) > 0:
                self.producer.poll(remaining)
            self.producer.poll(0)
        remaining = self.producer.flush(30)
        if remaining:
            self.errors.append(f"{remaining} records undelivered at the end")

    def start(self) -> "SteadyProducer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(40)
        assert not self.thread.is_alive(), "producer thread did not finish"
        assert not self.errors, self.errors[:5]
        assert sum(len(d) for d in self.delivered.values()) == self.sent


def wait_for_assignment(bootstrap, group, topic, workers, sizes, timeout_s, what):
    """Waits until the broker (describe) and each worker's callbacks agree on an assignment
    in which every partition has one owner and the owners' counts are `sizes`. Returns
    {worker name: partitions}."""
    last = {}

    def settled():
        description = describe_group(bootstrap, group)
        by_member = group_assignment(description, topic)
        last["describe"] = (state_name(description), by_member)
        if state_name(description) != "STABLE" or len(by_member) != len(workers):
            return None
        by_worker = {w.name: w.assignment() for w in workers}
        last["callbacks"] = by_worker
        ids = {w.name: w.member_id() for w in workers}
        if set(ids.values()) != set(by_member):
            return None
        if any(by_member[ids[name]] != parts for name, parts in by_worker.items()):
            return None
        assert_partitioned(by_worker, PARTITIONS, sizes)
        return by_worker

    return wait_until(settled, timeout_s, lambda: f"{what}: last seen {last}", interval_s=0.2)


def check_processing(workers, killed: Worker, delivered: dict[int, dict[int, str]], ends: dict[int, int]):
    """Nothing skipped; duplicates only of the killed worker's uncommitted records."""
    processed = collections.defaultdict(list)  # (partition, offset) -> [(worker, uncommitted?)]
    for worker in workers:
        events = worker.events()
        # The highest offset this worker committed per partition (by the end of its life).
        last_commit = collections.defaultdict(lambda: -1)
        for event in events:
            if event["e"] == "commit":
                last_commit[event["p"]] = max(last_commit[event["p"]], event["o"])
            elif event["e"] in ("error", "commit_error"):
                if worker is not killed:
                    raise AssertionError(f"{worker.name}: {event}")
        for event in events:
            if event["e"] != "rec":
                continue
            partition, offset = event["p"], event["o"]
            assert event["v"] == delivered[partition].get(offset), (
                f"{worker.name} read {event['v']!r} at {partition}/{offset}, produced "
                f"{delivered[partition].get(offset)!r}"
            )
            uncommitted = worker is killed and offset >= last_commit[partition]
            processed[(partition, offset)].append((worker.name, uncommitted))

    for partition in range(PARTITIONS):
        assert ends[partition] == len(delivered[partition]) > 0, (partition, ends[partition])
        missing = [o for o in range(ends[partition]) if (partition, o) not in processed]
        assert not missing, f"partition {partition}: {len(missing)} offsets never processed, first {missing[:10]}"

    duplicates = {}
    for key, by in processed.items():
        if len(by) > 1 and sum(1 for _, uncommitted in by if not uncommitted) > 1:
            duplicates[key] = by
        elif len(by) > 1 and all(uncommitted for _, uncommitted in by):
            duplicates[key] = by  # the killed worker processed it twice itself
    assert not duplicates, (
        f"{len(duplicates)} records processed twice outside the killed consumer's uncommitted "
        f"tail, e.g. {sorted(duplicates.items())[:10]}"
    )
    allowed = sum(1 for by in processed.values() if len(by) > 1)
    return allowed


@pytest.mark.timeout(150)
def test_rebalance_join_and_kill_without_leave(start_broker, tmp_path):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("rebalance"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    conf = {"session_timeout_ms": SESSION_TIMEOUT_MS, "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS}

    steady = SteadyProducer(broker.bootstrap, topic).start()
    workers: list[Worker] = []

    def spawn(name):
        worker = Worker(name, broker.bootstrap, group, topic, tmp_path / f"{name}.log", **conf)
        workers.append(worker)
        return worker

    try:
        for name in ("c1", "c2", "c3"):
            spawn(name)
        three = wait_for_assignment(broker.bootstrap, group, topic, workers, [2, 2, 2], 45,
                                    "three consumers with two partitions each")

        spawn("c4")
        four = wait_for_assignment(broker.bootstrap, group, topic, workers, [2, 2, 1, 1], 45,
                                   "four consumers with 2/2/1/1 partitions")
        assert four != three

        # Kill one that owns two partitions, once it has committed in its current assignment.
        victim = next(w for w in workers if len(four[w.name]) == 2)
        victim_parts = four[victim.name]
        wait_until(
            lambda: {e["p"] for e in victim.events() if e["e"] == "commit"} >= victim_parts,
            20,
            f"{victim.name} committed on each of its partitions {victim_parts}",
        )
        victim.kill()
        killed_at, killed_at_wall = time.monotonic(), time.time()
        survivors = [w for w in workers if w is not victim]
        # The dead member's partitions move only when its session expires: Kafka does not
        # drop a member because its connection closed.
        moved = wait_for_assignment(broker.bootstrap, group, topic, survivors, [2, 2, 2],
                                    SESSION_TIMEOUT_MS / 1000 + MOVE_SLACK_S + 1,
                                    "the killed consumer's partitions moved to the other three")
        moved_after_s = time.monotonic() - killed_at
        assert moved_after_s <= SESSION_TIMEOUT_MS / 1000 + MOVE_SLACK_S, moved_after_s
        assert set().union(*(moved[w.name] for w in survivors)) == set(range(PARTITIONS))
        # Not before its session can have expired (last heartbeat at most one interval back).
        assert moved_after_s >= (SESSION_TIMEOUT_MS - HEARTBEAT_INTERVAL_MS) / 1000 - 1.0, (
            f"partitions moved {moved_after_s:.1f} s after the kill, before the 6 s session expired"
        )

        # The new owners of the killed consumer's partitions process and commit there, then
        # the producer stops and the group drains.
        def committed_by_survivors():
            return victim_parts <= {e["p"] for w in survivors for e in w.events()
                                    if e["e"] == "commit" and e["t"] > killed_at_wall}

        wait_until(committed_by_survivors, 20, f"the survivors committed on {victim_parts}")
        steady.stop()
        ends = {p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)}

        def drained():
            return committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == ends

        wait_until(drained, 30, lambda: f"group committed up to the ends {ends}: "
                   f"{committed_offsets(broker.bootstrap, group, topic, PARTITIONS)}")
        for worker in survivors:
            worker.stop()
    finally:
        for worker in workers:
            worker.ensure_dead()
        if steady.thread.is_alive():
            steady._stop.set()

    allowed_duplicates = check_processing(workers, victim, steady.delivered, ends)
    print(f"moved after {moved_after_s:.1f} s; {allowed_duplicates} records reprocessed after the kill; "
          f"{steady.sent} produced")


def test_initial_delay_forms_one_generation(start_broker):
    """Default settings (group.initial.rebalance.delay.ms=3000): three consumers that start
    together are all in the first generation; nobody is assigned twice or revoked."""
    broker = start_broker()
    topic, group = unique("delay"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    members = [Member(broker.bootstrap, group, [topic], name=f"m{i}") for i in range(3)]
    started = time.monotonic()
    for member in members:
        member.start()
    try:
        wait_until(lambda: all(len(m.snapshot()[2]) == 2 for m in members), 30,
                   lambda: f"two partitions each: {[m.snapshot()[1] for m in members]}")
        first_assignment_s = min(m.snapshot()[1][0][0] for m in members) - started
        generations = {m.generation_now()[0] for m in members}
        description = describe_group(broker.bootstrap, group)
        assert state_name(description) == "STABLE"
        assert_partitioned(group_assignment(description, topic), PARTITIONS, [2, 2, 2])
        # A later rebalance would show up as more callbacks: watch a few heartbeats' time.
        observe_quietly(1.5)
        for member in members:
            _, events, _ = member.snapshot()
            assert [kind for _, kind, _ in events] == ["assign"], f"{member.name}: {events}"
        assert len(generations) == 1, generations
        (generation,) = generations
        assert generation >= 1
        assert {m.generation_now()[0] for m in members} == {generation}
        # The first assignment waited for the delay (it was not an immediate one-member group).
        assert first_assignment_s >= 2.5, f"first assignment after {first_assignment_s:.1f} s"
    finally:
        stop_all(members)


def test_session_timeout_outside_the_broker_limits_is_refused(start_broker):
    """group.min.session.timeout.ms (6000 by default) bounds what a member may ask for."""
    broker = start_broker(settings={**NO_REBALANCE_DELAY, "group.max.session.timeout.ms": 20000})
    topic, group = unique("session"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=1)
    members = [
        Member(broker.bootstrap, group, [topic], name="too-short", session_timeout_ms=3000).start(),
        Member(broker.bootstrap, group, [topic], name="too-long", session_timeout_ms=30000).start(),
    ]
    try:
        for member in members:
            wait_until(lambda: any("INVALID_SESSION_TIMEOUT" in e for e in member.errors), 15,
                       lambda: f"{member.name}: INVALID_SESSION_TIMEOUT, got {member.errors[:3]}")
            assert member.snapshot()[2] == set()
        assert describe_group(broker.bootstrap, group).members == []
    finally:
        stop_all(members)


def test_group_max_size(start_broker):
    """With group.max.size=2 a third member is refused (GROUP_MAX_SIZE_REACHED); the other two
    share the topic undisturbed."""
    broker = start_broker(settings={**NO_REBALANCE_DELAY, "group.max.size": 2})
    topic, group = unique("max-size"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=4)
    members = [Member(broker.bootstrap, group, [topic], name=f"m{i}").start() for i in range(2)]
    try:
        wait_until(lambda: all(len(m.snapshot()[2]) == 2 for m in members), 30, "two partitions each")
        third = Member(broker.bootstrap, group, [topic], name="third").start()
        members.append(third)
        wait_until(lambda: any("GROUP_MAX_SIZE_REACHED" in e for e in third.errors), 15,
                   lambda: f"the third member is refused: {third.errors[:3]}")
        assert third.snapshot()[2] == set()
        description = describe_group(broker.bootstrap, group)
        assert state_name(description) == "STABLE"
        assert sorted(m.client_id for m in description.members) == ["m0", "m1"]
        assert_partitioned(group_assignment(description, topic), 4, [2, 2])
    finally:
        stop_all(members)


def test_commit_in_revoke_callback_hands_over_exact_positions(start_broker):
    """The eager protocol's usual pattern: commit positions in on_revoke. The commit arrives
    while the group prepares a rebalance and must be accepted (Kafka takes commits of the
    current generation then), so the partition's next owner starts exactly there."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("revoke-commit"), unique("group")
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions=partitions)
    produce_all(producer(broker.bootstrap), topic,
                [{"value": b"a", "partition": n % partitions} for n in range(40 * partitions)])
    first = Member(broker.bootstrap, group, [topic], name="first", commit_on_revoke=True).start()
    members = [first]
    try:
        wait_until(lambda: len(first.snapshot()[0]) == 40 * partitions, 30, "the first member read everything")
        second = Member(broker.bootstrap, group, [topic], name="second", commit_on_revoke=True).start()
        members.append(second)
        wait_until(lambda: len(first.snapshot()[2]) == 2 and len(second.snapshot()[2]) == 2, 30,
                   lambda: f"two partitions each: {first.snapshot()[1]}, {second.snapshot()[1]}")
        assert first.commit_errors == [], first.commit_errors
        assert first.revoke_commits[:1] == [[(p, 40) for p in range(partitions)]]
        produce_all(producer(broker.bootstrap), topic,
                    [{"value": b"b", "partition": n % partitions} for n in range(10 * partitions)])
        wait_until(lambda: len(first.snapshot()[0]) + len(second.snapshot()[0]) == 50 * partitions, 30,
                   lambda: f"the 40 new records read: {len(first.snapshot()[0])} + {len(second.snapshot()[0])}")
        # The second member read only the new records of its partitions: nothing twice.
        assert sorted((p, o) for p, o, _ in second.snapshot()[0]) == sorted(
            (p, o) for p in second.snapshot()[2] for o in range(40, 50))
    finally:
        stop_all(members)


def test_clean_close_hands_partitions_over_at_once(start_broker):
    """close() sends LeaveGroup: the others get its partitions without waiting for a session
    timeout (30 s here, so waiting for it would fail the test)."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("leave"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    members = [Member(broker.bootstrap, group, [topic], name=f"m{i}", session_timeout_ms=30000).start()
               for i in range(3)]
    try:
        wait_until(lambda: all(len(m.snapshot()[2]) == 2 for m in members), 30, "two partitions each")
        leaving = members.pop()
        leaving.stop(close=True)
        left_at = time.monotonic()
        wait_until(lambda: all(len(m.snapshot()[2]) == 3 for m in members), 10,
                   lambda: f"three partitions each after the leave: {[m.snapshot()[1] for m in members]}")
        assert time.monotonic() - left_at < 10
        description = describe_group(broker.bootstrap, group)
        assert sorted(m.client_id for m in description.members) == ["m0", "m1"]
        assert_partitioned(group_assignment(description, topic), PARTITIONS, [3, 3])
    finally:
        stop_all(members)
