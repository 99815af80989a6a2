"""The consumer from the project's seed article reads what the seed's producer produced.

The seed's consumer (shared/seeds/000_*.txt, "Example Code for a Kafka Consumer in Python")
subscribes with a group.id and auto.offset.reset=earliest, so it goes through the whole group
protocol: FindCoordinator, JoinGroup (twice: MEMBER_ID_REQUIRED), SyncGroup, OffsetFetch,
then Fetch. Its code is copied as written; the only changes: bootstrap.servers points at the
test's broker instead of localhost:9092, and the endless `while True:` loop is bounded by a
deadline and ends after the first message. The broker keeps its default settings, including
the 3 s initial rebalance delay, as a user's would.
"""

from __future__ import annotations

import subprocess
import sys
import time

from group_helpers import describe_group, state_name, wait_until
from kafka_helpers import create_topic

# The seed's code, kept once in test_seed_example.py (which runs it on localhost:9092).
from test_seed_example import EXPECTED_VALUE, SEED_CONSUMER, SEED_PRODUCER  # noqa: E402


def pointed_at(code: str, bootstrap: str) -> str:
    assert code.count("'localhost:9092'") == 1
    return code.replace("'localhost:9092'", repr(bootstrap))


def run_python(code: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)


def test_seed_consumer_reads_what_the_seed_producer_produced(broker):
    produced = run_python(pointed_at(SEED_PRODUCER, broker.bootstrap))
    assert produced.returncode == 0, produced.stderr

    started = time.monotonic()
    result = run_python(pointed_at(SEED_CONSUMER, broker.bootstrap))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"Received: {EXPECTED_VALUE}"], result.stderr[-3000:]
    # One join round with the default 3 s initial delay, not a session timeout or worse.
    assert elapsed < 30, f"the seed consumer took {elapsed:.1f} s to get its first message"

    # The broker knows the group the seed consumer joined, subscribed to 'orders'. The
    # consumer exited without close(), so its member stays until its session times out.
    description = describe_group(broker.bootstrap, "consumer_group_1")
    assert description.group_id == "consumer_group_1"
    assert not description.is_simple_consumer_group
    assert [
        {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} for m in description.members
    ] == [{("orders", 0)}]


def test_seed_consumer_gets_a_record_produced_after_it_joined(broker):
    """The seed's consumer starts on an empty 'orders' topic, joins, and only then does the
    seed's producer run: the record still arrives (a fetch long-poll at the group's position)."""
    create_topic(broker.bootstrap, "orders", partitions=1)
    consumer = subprocess.Popen(
        [sys.executable, "-c", pointed_at(SEED_CONSUMER, broker.bootstrap)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def joined():
            description = describe_group(broker.bootstrap, "consumer_group_1")
            return state_name(description) == "STABLE" and [
                [tp.partition for tp in m.assignment.topic_partitions] for m in description.members
            ] == [[0]]

        wait_until(joined, 30, "the seed consumer is the one stable member of consumer_group_1")
        assert consumer.poll() is None, "the seed consumer exited before anything was produced"
        assert run_python(pointed_at(SEED_PRODUCER, broker.bootstrap)).returncode == 0
        out, err = consumer.communicate(timeout=90)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    assert out.splitlines() == [f"Received: {EXPECTED_VALUE}"], err[-3000:]
