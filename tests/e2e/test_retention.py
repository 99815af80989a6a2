"""Time-based retention deletes whole old segments and moves the log start offset.

The broker checks retention every 500 ms (log.retention.check.interval.ms). A topic with 10 KiB
segments and retention.ms=2000 gets many segments; within a bounded wait its old segment files
disappear, the earliest offset (ListOffsets) moves to the base offset of the oldest remaining
segment, and reading from offset 0 is out of range. A topic with default retention on the same
broker keeps everything.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

from kafka_helpers import (
    consume_range,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)

SEGMENT_BYTES = 10 * 1024
RETENTION_MS = 2000


def produce_segments(bootstrap: str, topic: str, count: int) -> None:
    # Small batches, so the log can roll often: a segment never splits a batch.
    p = producer(bootstrap, **{"batch.size": 2048, "linger.ms": 1, "compression.type": "none"})
    records = [{"key": b"k", "value": (b"%06d-" % i) * 16, "partition": 0} for i in range(count)]
    produce_all(p, topic, records)


@pytest.mark.timeout(240)
def test_time_retention_deletes_old_segments(start_broker):
    b = start_broker(settings={"log.retention.check.interval.ms": 500})
    topic = unique("short-lived")
    kept = unique("kept")
    create_topic(b.bootstrap, topic, config={"segment.bytes": str(SEGMENT_BYTES), "retention.ms": str(RETENTION_MS)})
    create_topic(b.bootstrap, kept, config={"segment.bytes": str(SEGMENT_BYTES)})

    count = 2000  # about 230 KB: over 20 segments of 10 KiB
    produce_segments(b.bootstrap, kept, count)
    produced_at = time.monotonic()
    produce_segments(b.bootstrap, topic, count)
    segments_after_produce = b.segment_files(topic, 0)
    assert len(segments_after_produce) >= 10, f"only {len(segments_after_produce)} segments of {SEGMENT_BYTES} bytes"
    for segment in segments_after_produce[:-1]:
        # A roll happens before the segment would outgrow segment.bytes (one batch may be larger).
        assert segment.stat().st_size <= SEGMENT_BYTES + 4096, f"{segment.name}: {segment.stat().st_size} bytes"

    oldest = segments_after_produce[0]
    wait_until(lambda: not oldest.exists(), 60, f"{oldest.name} deleted by retention")

    def settled():
        low, high = watermarks(b.bootstrap, topic, 0)
        remaining = b.segment_files(topic, 0)
        bases = [int(p.name[:20]) for p in remaining]
        # The earliest offset is the base offset of the oldest segment left.
        return low > 0 and bases and low == bases[0] and (low, high, remaining)

    low, high, remaining = wait_until(settled, 60, "earliest offset at the oldest remaining segment")
    assert high == count, "retention must not change the log end offset"
    assert len(remaining) < len(segments_after_produce)
    deleted = {p.name for p in segments_after_produce} - {p.name for p in remaining}
    for name in deleted:
        for suffix in (".index", ".timeindex"):
            assert not (b.partition_dir(topic, 0) / name.replace(".log", suffix)).exists(), (
                f"{name}: its {suffix} outlived the segment"
            )
    print(f"retention deleted {len(deleted)} segments within {time.monotonic() - produced_at:.1f} s; "
          f"earliest offset now {low}")

    # The topic keeps taking records at the old log end. This one is stamped 10 minutes ahead,
    # so that retention leaves its segment alone while the test reads it.
    future_ms = int(time.time() * 1000) + 10 * 60 * 1000
    (d,) = produce_all(producer(b.bootstrap), topic, [{"value": b"new", "partition": 0, "timestamp": future_ms}])
    assert d.offset == count

    # Below the earliest offset: out of range, and a reset to earliest lands on `low` or later.
    c = consumer(b.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        message = wait_until(lambda: c.poll(0.2), 20, "an answer to a fetch from offset 0")
        assert message.error() is not None, f"read offset {message.offset()}, which retention deleted"
        assert message.error().code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE)
    finally:
        c.close()
    c = consumer(b.bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        message = wait_until(lambda: c.poll(0.2), 20, "a record after the reset to earliest")
        assert message.error() is None, message.error()
        assert message.offset() >= low
    finally:
        c.close()

    # What is left is readable.
    low, high = watermarks(b.bootstrap, topic, 0)
    records = consume_range(b.bootstrap, topic, 0, low, high)
    assert [r.offset for r in records] == list(range(low, high))
    assert records[-1].value == b"new"

    # The topic with default retention lost nothing.
    assert watermarks(b.bootstrap, kept, 0) == (0, count)
    assert int(b.segment_files(kept, 0)[0].name[:20]) == 0


@pytest.mark.timeout(240)
def test_retention_survives_restart(start_broker):
    """Segments deleted by retention stay deleted, and the log start offset stays put."""
    b = start_broker(settings={"log.retention.check.interval.ms": 500})
    topic = unique("short-lived")
    create_topic(b.bootstrap, topic, config={"segment.bytes": str(SEGMENT_BYTES), "retention.ms": str(RETENTION_MS)})
    produce_segments(b.bootstrap, topic, 1000)
    low = wait_until(lambda: watermarks(b.bootstrap, topic, 0)[0], 60, "retention moved the earliest offset")
    b.stop()
    b.start()
    low_after, high_after = watermarks(b.bootstrap, topic, 0)
    assert low_after >= low
    assert high_after == 1000
