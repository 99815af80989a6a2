"""Committed offsets survive restarting the consumers and restarting the broker.

A group's committed offsets are records in `__consumer_offsets`, replayed when the broker
starts. Each test commits synchronously (the commit has returned, so the broker answered it),
then restarts the consumer or the broker (SIGTERM, and SIGKILL right after the commit
returned), and checks the offsets two ways: Consumer.committed() (OffsetFetch), and a new
member of the group whose first record on each partition is exactly at the committed offset.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from group_helpers import (
    NO_REBALANCE_DELAY,
    committed_offsets,
    describe_group,
    group_consumer,
    wait_until,
)
from kafka_helpers import admin_request, create_topic, produce_all, producer, unique

PARTITIONS = 3


def produce_per_partition(bootstrap: str, topic: str, count: int, tag: str) -> None:
    """`count` records on every partition, value b"tag-partition-n"."""
    produce_all(
        producer(bootstrap),
        topic,
        [{"value": f"{tag}-{p}-{n}".encode(), "partition": p} for n in range(count) for p in range(PARTITIONS)],
    )


def committed(consumer, topic: str) -> dict[int, tuple[int, str | None]]:
    """{partition: (offset, metadata)} from Consumer.committed() (an OffsetFetch)."""
    result = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=20)
    out = {}
    for tp in result:
        assert tp.error is None, tp
        out[tp.partition] = (tp.offset, tp.metadata)
    return out


def read_from_group(bootstrap: str, group: str, topic: str, expect: dict[int, int], timeout_s: float = 30):
    """A new member of the group subscribes and reads until it has `expect[p]` records from
    each partition; returns {partition: [offsets]} in the order read."""
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    read: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    try:
        deadline = time.monotonic() + timeout_s
        while any(len(read[p]) < expect[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"read only {read} within {timeout_s} s, expected {expect}"
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            read[message.partition()].append(message.offset())
    finally:
        consumer.close()
    return read


def test_new_consumer_resumes_at_committed_offset(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("resume"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_per_partition(broker.bootstrap, topic, 30, "a")

    # The first consumer reads 10 records of each partition, then commits what it processed.
    first = group_consumer(broker.bootstrap, group)
    first.subscribe([topic])
    processed = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 30
    while any(len(offsets) < 10 for offsets in processed.values()):
        assert time.monotonic() < deadline, processed
        message = first.poll(0.2)
        if message is None:
            continue
        assert message.error() is None, message.error()
        if len(processed[message.partition()]) < 10:
            processed[message.partition()].append(message.offset())
    assert processed == {p: list(range(10)) for p in range(PARTITIONS)}
    # Different positions per partition, one with metadata.
    to_commit = [TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 4, metadata="batch-17"),
                 TopicPartition(topic, 2, 30)]
    result = first.commit(offsets=to_commit, asynchronous=False)
    assert all(tp.error is None for tp in result), result
    # librdkafka shows an empty metadata string as None.
    assert committed(first, topic) == {0: (10, None), 1: (4, "batch-17"), 2: (30, None)}
    first.close()

    # Once the first left, a new member gets every partition and starts at the commits.
    wait_until(lambda: describe_group(broker.bootstrap, group).state.name == "EMPTY", 10,
               "the group is empty after the first consumer closed")
    checker = group_consumer(broker.bootstrap, group)
    try:
        assert {p: o for p, (o, _) in committed(checker, topic).items()} == {0: 10, 1: 4, 2: 30}
    finally:
        checker.close()
    produce_per_partition(broker.bootstrap, topic, 2, "b")  # partition 2 gets offsets 30, 31
    read = read_from_group(broker.bootstrap, group, topic, {0: 22, 1: 28, 2: 2})
    assert read == {0: list(range(10, 32)), 1: list(range(4, 32)), 2: [30, 31]}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart(start_broker, how):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("durable"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_per_partition(broker.bootstrap, topic, 60, "a")

    member = group_consumer(broker.bootstrap, group)
    member.subscribe([topic])
    wait_until(lambda: member.poll(0.1) is not None and len(member.assignment()) == PARTITIONS, 30,
               "the only member is assigned every partition and reads")
    # Many synchronous commits, each a little further; the broker is stopped right after the
    # last one returned, so that one must be durable.
    for step in range(1, 41):
        offsets = [TopicPartition(topic, p, step + p, metadata=f"step-{step}") for p in range(PARTITIONS)]
        result = member.commit(offsets=offsets, asynchronous=False)
        assert all(tp.error is None for tp in result), result
    expected = {p: (40 + p, "step-40") for p in range(PARTITIONS)}
    if how == "sigkill":
        broker.kill()
    else:
        broker.stop()
    member.close()  # its LeaveGroup cannot reach the stopped broker; that is fine
    broker.start()

    checker = group_consumer(broker.bootstrap, group)
    try:
        assert wait_until(lambda: committed(checker, topic) == expected, 20,
                          lambda: f"committed after restart: {committed(checker, topic)}, expected {expected}")
    finally:
        checker.close()
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: o for p, (o, _) in expected.items()}
    read = read_from_group(broker.bootstrap, group, topic, {p: 60 - (40 + p) for p in range(PARTITIONS)})
    assert read == {p: list(range(40 + p, 60)) for p in range(PARTITIONS)}


def test_consumer_commits_across_a_broker_kill_and_resumes(start_broker):
    """A member that lives through a broker kill -9 rejoins, and its later commits count."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("live"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_per_partition(broker.bootstrap, topic, 10, "a")

    member = group_consumer(broker.bootstrap, group)
    member.subscribe([topic])
    try:
        seen = set()

        def read_all(count):
            message = member.poll(0.1)
            if message is not None and message.error() is None:
                seen.add((message.partition(), message.offset()))
            return len(seen) >= count

        wait_until(lambda: read_all(10 * PARTITIONS), 30, lambda: f"read 30 records, got {len(seen)}")
        member.commit(asynchronous=False)  # the positions: 10 on every partition
        broker.kill()
        broker.start()
        produce_per_partition(broker.bootstrap, topic, 5, "b")
        # It reads the new records (offsets 10..14) from where it was, after rejoining a group
        # the restarted broker no longer had in memory, and commits them.
        wait_until(lambda: read_all(15 * PARTITIONS), 60, lambda: f"read 45 records, got {len(seen)}")
        assert seen == {(p, o) for p in range(PARTITIONS) for o in range(15)}

        def commit_positions():
            result = member.commit(asynchronous=False)
            return all(tp.error is None for tp in result) and \
                {tp.partition: tp.offset for tp in result} == {p: 15 for p in range(PARTITIONS)}

        wait_until(commit_positions, 20, "a commit of positions 15 after the restart")
    finally:
        member.close()
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 15 for p in range(PARTITIONS)}
    broker.stop()
    broker.start()
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 15 for p in range(PARTITIONS)}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_deleted_group_stays_deleted_after_restart(start_broker, how):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic = unique("deleted")
    gone, kept = unique("gone"), unique("kept")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_per_partition(broker.bootstrap, topic, 5, "a")
    for group in (gone, kept):
        c = group_consumer(broker.bootstrap, group)
        result = c.commit(offsets=[TopicPartition(topic, p, 3) for p in range(PARTITIONS)], asynchronous=False)
        assert all(tp.error is None for tp in result), result
        c.close()
    admin_request(broker.bootstrap, lambda a: a.delete_consumer_groups([gone], request_timeout=20))[gone].result()
    assert committed_offsets(broker.bootstrap, gone, topic, PARTITIONS) == {p: -1001 for p in range(PARTITIONS)}

    if how == "sigkill":
        broker.kill()
    else:
        broker.stop()
    broker.start()
    assert committed_offsets(broker.bootstrap, gone, topic, PARTITIONS) == {p: -1001 for p in range(PARTITIONS)}
    assert committed_offsets(broker.bootstrap, kept, topic, PARTITIONS) == {p: 3 for p in range(PARTITIONS)}
