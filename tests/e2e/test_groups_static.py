"""Static membership (KIP-345): members with a group.instance.id.

librdkafka does not send LeaveGroup when a static member closes: the member stays in the group
until its session times out. If a consumer with the same group.instance.id joins again within
that time, the coordinator hands it the old member's place (a new member id, the same
assignment) without a rebalance: the other members see no revocation, no new assignment and
no new generation. Another consumer joining with an instance id already in use fences the
running one (FENCED_INSTANCE_ID), and a static member that does not come back is removed when
its session expires, or at once by an admin's LeaveGroup naming its instance id.

DescribeGroups carries no generation id, so the generation is read from each consumer
(librdkafka's consumer_group_metadata, see group_helpers.generation_of); describe shows that
the members, their ids and their assignments stay as they were.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from kafka import KafkaAdminClient
from kafka.admin import MemberToRemove

from group_helpers import (
    NO_REBALANCE_DELAY,
    Member,
    assert_partitioned,
    committed_offsets,
    describe_group,
    observe_quietly,
    state_name,
    stop_all,
    wait_until,
)
from kafka_helpers import create_topic, produce_all, producer, unique

PARTITIONS = 6
STATIC_SESSION_TIMEOUT_MS = 10000
HEARTBEAT_INTERVAL_MS = 500


def static_member(broker, group, topic, instance, session_timeout_ms=STATIC_SESSION_TIMEOUT_MS, **conf):
    return Member(broker.bootstrap, group, [topic], name=instance, commit_each=True,
                  group_instance_id=instance, session_timeout_ms=session_timeout_ms,
                  heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS, **conf)


def produce_round(bootstrap: str, topic: str, per_partition: int, tag: str) -> None:
    produce_all(producer(bootstrap), topic, [
        {"value": f"{tag}-{p}-{n}".encode(), "partition": p}
        for n in range(per_partition) for p in range(PARTITIONS)
    ])


def by_instance(description, topic):
    return {m.group_instance_id: {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            for m in description.members}


def wait_stable(broker, group, topic, members, sizes, timeout_s=30):
    """Until describe and every member's callbacks agree, the group is Stable, and all members
    are in one generation; returns that generation."""
    def settled():
        description = describe_group(broker.bootstrap, group)
        owned = {m.name: m.snapshot()[2] for m in members}
        if state_name(description) != "STABLE" or by_instance(description, topic) != owned:
            return None
        generations = {m.generation_now()[0] for m in members}
        if len(generations) != 1:
            return None
        assert_partitioned(owned, PARTITIONS, sizes)
        return generations.pop()

    return wait_until(settled, timeout_s, lambda: f"stable group of {[m.name for m in members]}: "
                      f"{describe_group(broker.bootstrap, group)}; callbacks "
                      f"{ {m.name: m.snapshot()[1] for m in members} }", interval_s=0.2)


def test_static_member_returns_to_its_partitions_without_rebalance(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("static"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_round(broker.bootstrap, topic, 5, "a")
    members = [static_member(broker, group, topic, f"static-{i}").start() for i in range(3)]
    try:
        generation = wait_stable(broker, group, topic, members, [2, 2, 2])
        wait_until(lambda: committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 5 for p in range(PARTITIONS)},
                   30, "the three committed every record")
        others, leaving = members[:2], members[2]
        before = {m.name: (m.snapshot()[1], m.generation_now()) for m in others}
        description = describe_group(broker.bootstrap, group)
        ids_before = {m.group_instance_id: m.member_id for m in description.members}
        owned_before = leaving.snapshot()[2]

        leaving.stop(close=True)  # a static member's close() sends no LeaveGroup
        closed_at = time.monotonic()
        description = describe_group(broker.bootstrap, group)
        assert state_name(description) == "STABLE"
        assert by_instance(description, topic)["static-2"] == owned_before, "the closed static member left"

        produce_round(broker.bootstrap, topic, 3, "b")  # while it is away
        back = static_member(broker, group, topic, "static-2").start()
        members[2] = back
        wait_until(lambda: back.snapshot()[2] == owned_before, 10,
                   lambda: f"the returning member gets {owned_before} back: {back.snapshot()[1]}")
        assert time.monotonic() - closed_at < STATIC_SESSION_TIMEOUT_MS / 1000
        assert back.generation_now()[0] == generation, "the returning member joined a new generation"
        # It resumes at the old member's commits: exactly the records produced while away.
        wait_until(lambda: len(back.snapshot()[0]) == 3 * len(owned_before), 20,
                   lambda: f"read the 3 new records of each of its partitions: {back.snapshot()[0]}")
        assert sorted((p, o) for p, o, _ in back.snapshot()[0]) == sorted(
            (p, o) for p in owned_before for o in range(5, 8))

        # Nothing happens to the others: watch several heartbeat intervals.
        observe_quietly(6 * HEARTBEAT_INTERVAL_MS / 1000)
        for member in others:
            events_before, generation_before = before[member.name]
            assert member.snapshot()[1] == events_before, f"{member.name} was rebalanced: {member.snapshot()[1]}"
            assert member.generation_now() == generation_before
        description = describe_group(broker.bootstrap, group)
        assert state_name(description) == "STABLE"
        assert by_instance(description, topic) == {m.name: m.snapshot()[2] for m in members}
        ids_after = {m.group_instance_id: m.member_id for m in description.members}
        assert {k: ids_after[k] for k in ("static-0", "static-1")} == {k: ids_before[k] for k in ("static-0", "static-1")}
        # The returning consumer has a new member id (Kafka gives it one and fences the old).
        assert ids_after["static-2"] == back.generation_now()[1] != ids_before["static-2"]
        assert not any(m.commit_errors or m.errors for m in members), [(m.name, m.commit_errors, m.errors) for m in members]
    finally:
        stop_all(members)


def test_same_instance_id_fences_the_running_member(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("fence"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    first = static_member(broker, group, topic, "twin").start()
    members = [first]
    try:
        wait_stable(broker, group, topic, [first], [PARTITIONS])
        second = static_member(broker, group, topic, "twin").start()
        members.append(second)
        wait_until(lambda: second.snapshot()[2] == set(range(PARTITIONS)), 20,
                   lambda: f"the second 'twin' takes every partition: {second.snapshot()[1]}")
        # The first learns on its next heartbeat (or commit) that it has been replaced.
        wait_until(lambda: first.fatal is not None, 10,
                   lambda: f"the first 'twin' is fenced: errors {first.errors}")
        assert first.fatal.code() in (KafkaError._FATAL, KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID), first.fatal
        assert "fenced" in first.fatal.str().lower(), first.fatal
        description = describe_group(broker.bootstrap, group)
        assert [(m.group_instance_id, m.member_id) for m in description.members] == [("twin", second.generation_now()[1])]
    finally:
        stop_all(members)


@pytest.mark.timeout(120)
def test_static_member_that_does_not_return_is_removed(start_broker):
    """Closed for good: its partitions move when its session expires (6 s here), not before."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("static-gone"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    session_ms = 6000
    members = [static_member(broker, group, topic, f"s{i}", session_timeout_ms=session_ms).start() for i in range(2)]
    try:
        wait_stable(broker, group, topic, members, [3, 3])
        stayer, leaver = members
        leaver.stop(close=True)
        closed_at = time.monotonic()
        wait_until(lambda: stayer.snapshot()[2] == set(range(PARTITIONS)), session_ms / 1000 + 6,
                   lambda: f"the remaining member gets everything: {stayer.snapshot()[1]}")
        moved_after = time.monotonic() - closed_at
        assert moved_after >= (session_ms - HEARTBEAT_INTERVAL_MS) / 1000 - 1, (
            f"moved {moved_after:.1f} s after close: a static member's close must not remove it")
        description = describe_group(broker.bootstrap, group)
        assert [m.group_instance_id for m in description.members] == ["s0"]
    finally:
        stop_all(members)


def test_admin_removes_static_member_by_instance_id(start_broker):
    """LeaveGroup v3+ naming a group.instance.id (kafka-python's remove_group_members) removes
    the static member at once and rebalances the rest."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("static-removed"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    members = [static_member(broker, group, topic, f"r{i}").start() for i in range(2)]
    try:
        wait_stable(broker, group, topic, members, [3, 3])
        stayer, removed = members
        removed.stop(close=True)  # gone without LeaveGroup, session 10 s
        closed_at = time.monotonic()
        client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
        try:
            result = client.remove_group_members(group, [MemberToRemove(group_instance_id="r1")])
        finally:
            client.close()
        assert [error.__name__ for error in result.values()] == ["NoError"], result
        wait_until(lambda: stayer.snapshot()[2] == set(range(PARTITIONS)), 10,
                   lambda: f"the remaining member gets everything: {stayer.snapshot()[1]}")
        assert time.monotonic() - closed_at < STATIC_SESSION_TIMEOUT_MS / 1000
        description = describe_group(broker.bootstrap, group)
        assert [m.group_instance_id for m in description.members] == ["r0"]
    finally:
        stop_all(members)
