"""Assignment strategies and clients other than librdkafka's default eager one.

- cooperative-sticky (KIP-429, done by the clients over the classic protocol): when a second
  member joins, the first gives up only the partitions that move, keeping the rest throughout.
- kafka-python's KafkaConsumer with group_id + subscribe consumes and commits, and its commits
  are the group's for every client.
- librdkafka and kafka-python members in one group agree on a protocol and split the topic.
- two groups on one topic each get every record.
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from group_helpers import (
    NO_REBALANCE_DELAY,
    Member,
    assert_partitioned,
    committed_offsets,
    describe_group,
    group_assignment,
    state_name,
    stop_all,
    wait_until,
)
from kafka_helpers import create_topic, produce_all, producer, unique

PARTITIONS = 6


def produce_numbered(bootstrap: str, topic: str, count: int, partitions: int, start: int = 0) -> None:
    produce_all(
        producer(bootstrap),
        topic,
        [{"value": b"n-%d" % n, "partition": n % partitions} for n in range(start, start + count)],
    )


def test_cooperative_sticky_revokes_only_what_moves(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("coop"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_numbered(broker.bootstrap, topic, 60, PARTITIONS)
    conf = {"partition_assignment_strategy": "cooperative-sticky"}

    first = Member(broker.bootstrap, group, [topic], name="first", **conf).start()
    members = [first]
    try:
        wait_until(lambda: first.snapshot()[2] == set(range(PARTITIONS)), 30,
                   lambda: f"the first member owns every partition: {first.snapshot()[1]}")
        wait_until(lambda: len(first.snapshot()[0]) == 60, 30, "the first member read all 60 records")
        _, events_before, _ = first.snapshot()

        second = Member(broker.bootstrap, group, [topic], name="second", **conf).start()
        members.append(second)

        def split():
            description = describe_group(broker.bootstrap, group)
            by_member = group_assignment(description, topic)
            mine = {first.name: first.snapshot()[2], second.name: second.snapshot()[2]}
            return (state_name(description) == "STABLE" and len(by_member) == 2
                    and sorted(map(sorted, by_member.values())) == sorted(map(sorted, mine.values()))
                    and all(len(parts) == 3 for parts in mine.values()))

        wait_until(split, 30, lambda: f"3 partitions each: first {first.snapshot()[1:]}, "
                   f"second {second.snapshot()[1:]}; {describe_summary(broker.bootstrap, group)}")
        assert_partitioned({m.name: m.snapshot()[2] for m in members}, PARTITIONS, [3, 3])
        description = describe_group(broker.bootstrap, group)
        assert description.partition_assignor == "cooperative-sticky"

        _, events, kept = first.snapshot()
        new_events = events[len(events_before):]
        revoked = [set(parts) for _, kind, parts in new_events if kind == "revoke"]
        assert revoked, f"the first member was never asked to give partitions up: {new_events}"
        # Only a subset was revoked, never everything at once, and nothing was lost.
        assert all(0 < len(parts) < PARTITIONS for parts in revoked), new_events
        assert set().union(*revoked) == set(range(PARTITIONS)) - kept
        assert not [e for e in new_events if e[1] == "lost"], new_events
        # What it kept, it never gave back: no revoke of a kept partition, no re-assignment.
        assert not any(parts & kept for parts in revoked)
        reassigned = [set(parts) for _, kind, parts in new_events if kind == "assign"]
        assert not any(parts & kept for parts in reassigned), new_events
        # The second member got exactly what the first gave up.
        assert second.snapshot()[2] == set(range(PARTITIONS)) - kept
        assert not [e for e in second.snapshot()[1] if e[1] in ("revoke", "lost")]

        # Both keep consuming after the incremental rebalance.
        produce_numbered(broker.bootstrap, topic, 60, PARTITIONS, start=60)
        def new_records(member):
            return {(p, o) for p, o, _ in member.snapshot()[0] if o >= 10}

        moved = set(range(PARTITIONS)) - kept
        wait_until(lambda: len(new_records(first) | new_records(second)) == 60, 30,
                   lambda: f"the new records are read: {sorted(new_records(first) | new_records(second))}")
        assert new_records(first) == {(p, o) for p in kept for o in range(10, 20)}
        assert new_records(second) == {(p, o) for p in moved for o in range(10, 20)}
    finally:
        stop_all(members)


def kafka_python_consumer(bootstrap: str, group: str, **conf) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        request_timeout_ms=20000,
        **conf,
    )


# kafka-python 3.0.12 loses a join that completes after poll(timeout_ms) gave up waiting for
# it: the next poll sees no need to rejoin and never applies the assignment, so the member
# owns nothing for good (seen on a loaded machine: the JoinGroup waits for the other members
# to rejoin). Until it has an assignment, a member therefore polls with a long timeout (poll
# still returns as soon as records arrive).
KAFKA_PYTHON_JOIN_POLL_MS = 10000


def kafka_python_poll(consumer: KafkaConsumer):
    timeout_ms = 100 if consumer.assignment() else KAFKA_PYTHON_JOIN_POLL_MS
    return consumer.poll(timeout_ms=timeout_ms)


def read_kafka_python(consumer: KafkaConsumer, count: int, timeout_s: float = 30) -> list[tuple[int, int, bytes]]:
    records = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        assert time.monotonic() < deadline, f"read {len(records)} of {count} within {timeout_s} s"
        for tp, batch in kafka_python_poll(consumer).items():
            records.extend((r.partition, r.offset, r.value) for r in batch)
    return records


def test_kafka_python_group_consumes_and_commits(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("kp"), unique("group")
    partitions = 2
    create_topic(broker.bootstrap, topic, partitions=partitions)
    produce_numbered(broker.bootstrap, topic, 40, partitions)

    first = kafka_python_consumer(broker.bootstrap, group)
    first.subscribe([topic])
    try:
        records = read_kafka_python(first, 40)
        assert sorted((p, o) for p, o, _ in records) == [(p, o) for p in range(partitions) for o in range(20)]
        assert {v for _, _, v in records} == {b"n-%d" % n for n in range(40)}
        assert first.assignment() == {KpTopicPartition(topic, p) for p in range(partitions)}
        first.commit()  # synchronous, the positions: 20 on each partition
        assert {p: first.committed(KpTopicPartition(topic, p)) for p in range(partitions)} == {0: 20, 1: 20}
        # It also commits explicit offsets (kafka-python's OffsetAndMetadata has a leader epoch).
        from kafka.structs import OffsetAndMetadata

        first.commit({KpTopicPartition(topic, 1): OffsetAndMetadata(15, "kp-meta", -1)})
        assert first.committed(KpTopicPartition(topic, 1), metadata=True).offset == 15
        assert first.committed(KpTopicPartition(topic, 1), metadata=True).metadata == "kp-meta"
    finally:
        first.close()

    # librdkafka sees the same commits.
    assert committed_offsets(broker.bootstrap, group, topic, partitions) == {0: 20, 1: 15}
    # A new kafka-python member resumes at the commits: partition 0 from 20, partition 1 from 15.
    produce_numbered(broker.bootstrap, topic, 4, partitions, start=40)
    second = kafka_python_consumer(broker.bootstrap, group)
    second.subscribe([topic])
    try:
        records = read_kafka_python(second, 2 + 7)
        assert sorted((p, o) for p, o, _ in records) == [(0, 20), (0, 21)] + [(1, o) for o in range(15, 22)]
    finally:
        second.close()


def describe_summary(bootstrap: str, group: str) -> str:
    description = describe_group(bootstrap, group)
    members = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
               for m in description.members}
    return f"{state_name(description)} {description.partition_assignor!r} {members}"


class KafkaPythonMember:
    """A kafka-python group member polled in its own thread."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        self.consumer = kafka_python_consumer(bootstrap, group, client_id="kafka-python-member")
        self.consumer.subscribe([topic])
        self.records: list[tuple[int, int]] = []
        self.assignment: set[int] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                for _, batch in kafka_python_poll(self.consumer).items():
                    self.records.extend((r.partition, r.offset) for r in batch)
                self.assignment = {tp.partition for tp in self.consumer.assignment()}
        finally:
            self.consumer.close()

    def stop(self):
        self._stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_librdkafka_and_kafka_python_share_a_group(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("mixed"), unique("group")
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions=partitions)
    produce_numbered(broker.bootstrap, topic, 40, partitions)

    librdkafka = Member(broker.bootstrap, group, [topic], name="librdkafka-member").start()
    kafka_python = KafkaPythonMember(broker.bootstrap, group, topic)
    try:
        def split():
            description = describe_group(broker.bootstrap, group)
            by_client = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions}
                         for m in description.members}
            return (state_name(description) == "STABLE"
                    and by_client.get("librdkafka-member") == librdkafka.snapshot()[2]
                    and by_client.get("kafka-python-member") == kafka_python.assignment
                    and sorted(len(v) for v in by_client.values()) == [2, 2]
                    and by_client)

        by_client = wait_until(split, 45, lambda: f"2 partitions each: {describe_summary(broker.bootstrap, group)}; "
                               f"librdkafka callbacks {librdkafka.snapshot()[1]} errors {librdkafka.errors[:3]}; "
                               f"kafka-python assignment {kafka_python.assignment}")
        assert_partitioned(by_client, partitions, [2, 2])
        # Both speak "range" (each client's default list includes it); the broker picked it.
        assert describe_group(broker.bootstrap, group).partition_assignor == "range"
        produce_numbered(broker.bootstrap, topic, 40, partitions, start=40)
        everything = {(p, o) for p in range(partitions) for o in range(20)}

        def all_read():
            read = {(p, o) for p, o, _ in librdkafka.snapshot()[0]} | set(kafka_python.records)
            return everything <= read

        wait_until(all_read, 30, "every record read by one of the two members")
        # Each partition's records after the split came through its owner.
        for member_parts, read in ((librdkafka.snapshot()[2], {(p, o) for p, o, _ in librdkafka.snapshot()[0]}),
                                   (kafka_python.assignment, set(kafka_python.records))):
            assert {(p, o) for p in member_parts for o in range(10, 20)} <= read
    finally:
        kafka_python.stop()
        stop_all([librdkafka])


def test_two_groups_each_get_every_record(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic = unique("fanout")
    partitions = 3
    create_topic(broker.bootstrap, topic, partitions=partitions)
    produce_numbered(broker.bootstrap, topic, 90, partitions)
    groups = [unique("group-a"), unique("group-b")]
    members = [Member(broker.bootstrap, g, [topic], name=g, commit_each=True).start() for g in groups]
    try:
        produce_numbered(broker.bootstrap, topic, 30, partitions, start=90)  # some while they run
        wait_until(lambda: all(len(m.snapshot()[0]) >= 120 for m in members), 45,
                   lambda: f"both groups read 120 records: {[len(m.snapshot()[0]) for m in members]}")
        expected = sorted((n % partitions, n // partitions, b"n-%d" % n) for n in range(120))
        for member in members:
            records, _, _ = member.snapshot()
            assert sorted(records) == expected, member.name
            assert not member.commit_errors, member.commit_errors
        for g in groups:
            wait_until(lambda: committed_offsets(broker.bootstrap, g, topic, partitions) == {p: 40 for p in range(partitions)},
                       10, f"{g} committed 40 on every partition")
    finally:
        stop_all(members)
