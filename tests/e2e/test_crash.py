"""kill -9 in the middle of a steady produce stream loses no acknowledged record.

A librdkafka producer sends records whose values carry a sequence number and keeps every
delivery report. The broker is killed with SIGKILL while records are in flight, restarted on
the same data directory, and the producer carries on. At the end every acknowledged record
must be at its acknowledged offset, each partition's offsets dense from 0, and the whole log
readable to the high watermark with CRC checks on and no error.
"""

from __future__ import annotations

import time

import pytest

from kafka_helpers import (
    DeliveryLog,
    assert_dense,
    consume_range,
    create_topic,
    producer,
    unique,
    watermarks,
)

PARTITIONS = 2
CRASHES = 3
ACKED_BETWEEN_CRASHES = 3000
IN_FLIGHT_MAX = 2000


def produce_one(p, topic, sequence, deliveries):
    value = b"seq-%09d" % sequence
    while True:
        try:
            p.produce(topic, key=b"k%d" % (sequence % 7), value=value, on_delivery=deliveries.callback)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)


def produce_until(p, topic, sequence, deliveries, acknowledged_target, timeout_s=60.0):
    """Streams records until `acknowledged_target` reports are positive; returns the next sequence."""
    deadline = time.monotonic() + timeout_s
    while len(deliveries.acknowledged) < acknowledged_target:
        assert time.monotonic() < deadline, (
            f"only {len(deliveries.acknowledged)} of {acknowledged_target} acknowledged in {timeout_s} s; "
            f"errors: {[str(d.error) for d in deliveries.errors[:3]]}"
        )
        if sequence - len(deliveries.reports) < IN_FLIGHT_MAX:
            produce_one(p, topic, sequence, deliveries)
            sequence += 1
        else:
            p.poll(0.005)
    return sequence


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "acks,config",
    [("all", {}), ("1", {}), ("all", {"segment.bytes": "32768"})],
    ids=["acks-all", "acks-1", "acks-all-small-segments"],
)
def test_kill9_loses_no_acknowledged_record(broker, acks, config):
    topic = unique("crash")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS, config=config)
    deliveries = DeliveryLog()
    p = producer(
        broker.bootstrap,
        **{
            "acks": acks,
            "linger.ms": 2,
            "batch.size": 16384,
            "message.timeout.ms": 90_000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 500,
            "queue.buffering.max.messages": 100_000,
        },
    )
    sequence = 0
    acked_at_kill = []
    for crash in range(CRASHES):
        target = len(deliveries.acknowledged) + ACKED_BETWEEN_CRASHES
        sequence = produce_until(p, topic, sequence, deliveries, target)
        # Mid-stream: more records on their way, then SIGKILL while they are in flight.
        for _ in range(300):
            produce_one(p, topic, sequence, deliveries)
            sequence += 1
        broker.kill()
        acked_at_kill.append(len(deliveries.acknowledged))
        # Records produced while the broker is down wait in the producer and go out later.
        for _ in range(100):
            produce_one(p, topic, sequence, deliveries)
            sequence += 1
        broker.start()
    sequence = produce_until(p, topic, sequence, deliveries, len(deliveries.acknowledged) + 1000)
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} records never got a delivery report"
    print(f"produced {sequence} records, {len(deliveries.acknowledged)} acknowledged, "
          f"{len(deliveries.errors)} failed; acknowledged at each kill: {acked_at_kill}")

    acknowledged = {}
    for d in deliveries.acknowledged:
        position = (d.partition, d.offset)
        assert position not in acknowledged, (
            f"two records acknowledged at {position}: {acknowledged[position]!r} and {d.value!r}"
        )
        acknowledged[position] = d.value

    for partition in range(PARTITIONS):
        low, high = watermarks(broker.bootstrap, topic, partition)
        assert low == 0
        highest_acked = max((o for (pt, o) in acknowledged if pt == partition), default=-1)
        assert high > highest_acked, f"partition {partition}: high watermark {high} <= acked offset {highest_acked}"
        # check.crcs is on: a corrupt batch would surface as a consumer error here.
        records = consume_range(broker.bootstrap, topic, partition, 0, high, timeout_s=120, **{"check.crcs": True})
        assert_dense(records)
        assert len(records) == high
        stored = {r.offset: r.value for r in records}
        for (pt, offset), value in acknowledged.items():
            if pt == partition:
                assert stored[offset] == value, (
                    f"partition {partition} offset {offset}: acknowledged {value!r}, stored {stored[offset]!r}"
                )
        # Whatever else is there (unacknowledged or retried records) is a record this test sent.
        sent = {b"seq-%09d" % s for s in range(sequence)}
        strangers = [r.offset for r in records if r.value not in sent]
        assert not strangers, f"partition {partition}: unknown records at offsets {strangers[:10]}"
