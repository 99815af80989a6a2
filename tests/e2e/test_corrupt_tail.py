"""Recovery of a damaged active segment: the broker drops the torn tail and says so.

Records go in as several separate batches; the broker is stopped (SIGTERM, or SIGKILL) and the
tail of the active segment's .log file is damaged by hand. On restart the broker must log what
it dropped (naming the file, or saying it truncated), serve everything before the bad batch,
report the log end offset as the end of the last good batch, continue from there, and leave a
segment file that holds only whole, valid batches.
"""

from __future__ import annotations

import os
import re

import pytest

from kafka_helpers import (
    assert_dense,
    consume_range,
    create_topic,
    produce_all,
    producer,
    unique,
    watermarks,
)
from segment_file import BATCH_HEADER_BYTES, scan_file

BATCHES = 6


def truncate_mid_batch(path, last):
    os.truncate(path, last.position + last.size // 2)


def truncate_in_prefix(path, last):
    os.truncate(path, last.position + 7)  # not even the 12-byte offset + length prefix


def flip_record_byte(path, last):
    # A byte inside the last batch's records: only the CRC can tell.
    position = last.position + BATCH_HEADER_BYTES + (last.size - BATCH_HEADER_BYTES) // 2
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


def huge_length(path, last):
    # The last batch's length field claims far more bytes than the file holds.
    with open(path, "r+b") as f:
        f.seek(last.position + 8)
        f.write((0x7FFFFF00).to_bytes(4, "big"))


def zero_tail(path, last):
    # Zeros after the last batch, as a preallocated or half-flushed file may hold. Nothing is
    # lost, but the zeros are not a batch.
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)


CORRUPTIONS = {
    "truncate-mid-batch": (truncate_mid_batch, True),
    "truncate-in-prefix": (truncate_in_prefix, True),
    "flip-record-byte": (flip_record_byte, True),
    "huge-length": (huge_length, True),
    "zero-tail": (zero_tail, False),
}


@pytest.mark.parametrize("shutdown", ["sigterm", "sigkill"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_tail_is_truncated(broker, corruption, shutdown):
    damage, loses_last_batch = CORRUPTIONS[corruption]
    topic = unique("torn")
    create_topic(broker.bootstrap, topic, partitions=1)
    p = producer(broker.bootstrap, **{"linger.ms": 20})
    produced = []
    for batch in range(BATCHES):
        # One produce_all per batch: librdkafka flushes between them, so each is its own batch.
        records = [{"key": b"b%d" % batch, "value": b"batch-%d-record-%d" % (batch, i) * 3, "partition": 0}
                   for i in range(batch + 2)]
        reports = produce_all(p, topic, records)
        produced += [(r.offset, r.value) for r in reports]
    assert [o for o, _ in produced] == list(range(len(produced)))

    if shutdown == "sigterm":
        broker.stop()
    else:
        broker.kill()
    (segment,) = broker.segment_files(topic, 0)  # default segment size: everything in one file
    before = scan_file(segment)
    assert before.clean, f"segment not clean before the damage: {before}"
    assert len(before.batches) == BATCHES, f"expected {BATCHES} batches on disk, found {len(before.batches)}"
    last = before.batches[-1]
    damage(segment, last)

    broker.start()
    log = broker.run_log()
    assert re.search(re.escape(segment.name) + "|truncat", log, re.IGNORECASE), (
        f"no log line names {segment.name} or says it truncated:\n{broker.run_log_tail()}"
    )

    good_end = last.base_offset if loses_last_batch else last.next_offset
    assert watermarks(broker.bootstrap, topic, 0) == (0, good_end)
    records = consume_range(broker.bootstrap, topic, 0, 0, good_end)
    assert_dense(records)
    assert [(r.offset, r.value) for r in records] == produced[:good_end]

    (d,) = produce_all(producer(broker.bootstrap), topic, [{"value": b"after-recovery", "partition": 0}])
    assert d.offset == good_end
    (record,) = consume_range(broker.bootstrap, topic, 0, good_end, good_end + 1)
    assert record.value == b"after-recovery"

    # On disk: whole, valid batches only, offsets running on without a gap.
    broker.stop()
    after = scan_file(segment)
    assert after.clean, f"segment after recovery holds bad bytes: {after}"
    next_offset = 0
    for batch in after.batches:
        assert batch.base_offset == next_offset
        next_offset = batch.next_offset
    assert next_offset == good_end + 1
    broker.start()
    assert watermarks(broker.bootstrap, topic, 0) == (0, good_end + 1)
