"""Idempotent producers across restarts: a retry is answered with the original offset and never
written twice, whether the broker stopped cleanly or was killed, and whatever became of the
producer state snapshot.

Produce requests are built by hand (`raw_kafka`, `segment_file.build_batch`) so that the test
sets the producer id, epoch and sequence of every batch. Producer P gets its id from
InitProducerId and bumps its epoch once (to 1, so that an older epoch exists), then writes
3-record batches at sequences 0, 3, 6 among batches without a producer id. The broker is
stopped or killed, its files are checked (or damaged), and it is started again. Then:
- a retry of a batch P wrote (same id, epoch, sequences, bytes) is answered with error 0 and
  the ORIGINAL base offset, and the log end offset does not move;
- sequence 9 is appended at the log end; sequence 20 is refused with
  OUT_OF_ORDER_SEQUENCE_NUMBER (45), the older epoch with INVALID_PRODUCER_EPOCH (47);
- InitProducerId hands out a new id, not P's;
- the partition read back holds every record written, once each, in order.

Cases: a clean stop with P's batches in older segments than the active one (only the
producer state snapshot written on close, `<offset>.snapshot` as in Kafka, can know them);
kill -9 with no snapshot at all (the state is rebuilt from the log) and with P's last batch
written after a roll's snapshot; a damaged snapshot (ignored and logged; rebuilt from the log; replaced on the next
clean stop); a snapshot left beyond the log end by a torn tail, which a later kill -9 must not
bring back as if it were current.
"""

from __future__ import annotations

import os
import time

import pytest

import raw_kafka as rk
from kafka_helpers import consume_range, create_topic, unique, watermarks
from segment_file import build_batch, scan_file

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
PRODUCE_VERSION = 8
RECORDS_PER_BATCH = 3
# Small segments, and fillers big enough that two do not fit in one: P's batches can be left
# in an older segment than the active one.
SMALL_SEGMENTS = {"segment.bytes": "1024"}
FILLER_VALUE_BYTES = 150
ROLLS_MAX = 20


class Writer:
    """Producer P and the fillers on one partition, over a raw connection; keeps what the
    partition must hold (`values`, one per offset) and where each of P's batches went."""

    def __init__(self, broker, topic: str):
        self.broker = broker
        self.topic = topic
        self.correlation_id = 0
        self.sock = rk.connect(broker.bootstrap, timeout_s=10)
        self.values: list[bytes] = []
        self.fillers = 0
        # (epoch, sequence) -> the batch's bytes, so that a retry is byte for byte the first try.
        self.sent: dict[tuple[int, int], bytes] = {}
        self.offsets: dict[int, int] = {}  # P's sequence -> base offset of its batch
        self.producer_id, epoch = self.init_producer_id(version=0)
        assert epoch == 0
        # A v3+ InitProducerId naming the current id and epoch bumps the epoch.
        bumped = self.init_producer_id(version=3, producer_id=self.producer_id, epoch=0)
        assert bumped == (self.producer_id, 1)
        self.epoch = 1

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = rk.connect(self.broker.bootstrap, timeout_s=10)

    def close(self) -> None:
        self.sock.close()

    def _call(self, frame_of) -> bytes:
        self.correlation_id += 1
        self.sock.sendall(frame_of(self.correlation_id))
        payload = rk.read_response(self.sock, timeout_s=15)
        assert payload is not None, "the broker closed the connection instead of answering"
        return payload

    def init_producer_id(self, version: int, producer_id: int = -1, epoch: int = -1) -> tuple[int, int]:
        payload = self._call(lambda c: rk.init_producer_id_request(version, c, producer_id, epoch))
        response = rk.parse_init_producer_id_response(payload, version)
        assert response["correlation_id"] == self.correlation_id
        assert response["error_code"] == 0, response
        return response["producer_id"], response["producer_epoch"]

    def produce(self, batch: bytes) -> dict:
        payload = self._call(lambda c: rk.produce_request(PRODUCE_VERSION, c, self.topic, 0, batch, acks=-1))
        response = rk.parse_produce_response(payload, PRODUCE_VERSION)
        assert response["correlation_id"] == self.correlation_id
        (partition,) = response["partitions"]
        assert (partition["topic"], partition["partition"]) == (self.topic, 0)
        return partition

    # -- what goes in -------------------------------------------------------------------

    def _appended(self, response: dict, values: list[bytes]) -> int:
        assert response["error_code"] == 0, response
        assert response["base_offset"] == len(self.values), (
            f"appended at {response['base_offset']}, the log end was {len(self.values)}: {response}"
        )
        self.values += values
        return response["base_offset"]

    def filler(self) -> int:
        """One batch of records without a producer id; its base offset."""
        values = []
        for _ in range(RECORDS_PER_BATCH):
            values.append(b"filler-%04d-" % self.fillers + b"x" * FILLER_VALUE_BYTES)
            self.fillers += 1
        batch = build_batch([(None, v) for v in values], int(time.time() * 1000))
        return self._appended(self.produce(batch), values)

    @staticmethod
    def p_values(sequence: int) -> list[bytes]:
        return [b"p-%d" % (sequence + i) for i in range(RECORDS_PER_BATCH)]

    def send(self, sequence: int, epoch: int | None = None) -> dict:
        """P's batch at `sequence` (the same bytes every time it is sent); the answer."""
        epoch = self.epoch if epoch is None else epoch
        batch = self.sent.get((epoch, sequence))
        if batch is None:
            records = [(None, v) for v in self.p_values(sequence)]
            batch = build_batch(records, int(time.time() * 1000), self.producer_id, epoch, sequence)
            self.sent[(epoch, sequence)] = batch
        return self.produce(batch)

    def write(self, sequence: int) -> int:
        """P's batch at `sequence`, which must be appended at the log end; its base offset."""
        base_offset = self._appended(self.send(sequence), self.p_values(sequence))
        self.offsets[sequence] = base_offset
        return base_offset

    def retry(self, sequence: int) -> None:
        """Sends P's batch at `sequence` again: answered with its original offset."""
        response = self.send(sequence)
        assert response["error_code"] == 0, f"retry of sequence {sequence}: {response}"
        assert response["base_offset"] == self.offsets[sequence], (
            f"retry of sequence {sequence} answered with offset {response['base_offset']}, "
            f"the original is at {self.offsets[sequence]}: {response}"
        )

    def refused(self, sequence: int, error_code: int, epoch: int | None = None) -> None:
        response = self.send(sequence, epoch)
        assert response["error_code"] == error_code, (
            f"sequence {sequence} epoch {epoch}: expected error {error_code}, got {response}"
        )
        assert response["base_offset"] == -1, response

    # -- what the broker holds ----------------------------------------------------------

    def log_end(self) -> int:
        low, high = watermarks(self.broker.bootstrap, self.topic, 0)
        assert low == 0
        return high

    def segment_bases(self) -> list[int]:
        return [int(path.name[:20]) for path in self.broker.segment_files(self.topic, 0)]

    def segment_of(self, offset: int) -> int:
        return max(base for base in self.segment_bases() if base <= offset)

    def active_segment(self) -> int:
        return max(self.segment_bases())

    def fill_until_rolled_past(self, offset: int) -> None:
        """Fillers until `offset` is in an older segment than the active one."""
        for _ in range(ROLLS_MAX):
            if self.active_segment() > offset:
                return
            self.filler()
        raise AssertionError(f"no roll past offset {offset} after {ROLLS_MAX} fillers: {self.segment_bases()}")

    def snapshot_path(self):
        """The newest producer state snapshot (`<offset, 20 digits>.snapshot`, one per roll and
        one on a clean stop), or a path that does not exist when there is none."""
        directory = self.broker.partition_dir(self.topic, 0)
        snapshots = sorted(directory.glob("*.snapshot"))
        return snapshots[-1] if snapshots else directory / "none.snapshot"

    def check_read_back(self) -> None:
        """The partition holds exactly what was appended, once each, in order."""
        end = self.log_end()
        assert end == len(self.values)
        records = consume_range(self.broker.bootstrap, self.topic, 0, 0, end)
        assert [r.offset for r in records] == list(range(end))
        assert [r.value for r in records] == self.values
        p_values = [r.value for r in records if r.value.startswith(b"p-")]
        assert len(p_values) == len(set(p_values)), "a record of P was written twice"


def check_after_restart(w: Writer, retried: list[int]) -> None:
    """The scenario's common end: every batch of `retried` is deduplicated, the sequence goes
    on from 9, a gap and an older epoch are refused, and the partition reads back clean."""
    end = w.log_end()
    assert end == len(w.values), "the restart changed the log end"
    for sequence in retried:
        w.retry(sequence)
    assert w.log_end() == end, "a retry was written again"
    w.write(9)
    w.retry(9)
    w.refused(20, OUT_OF_ORDER_SEQUENCE_NUMBER)
    w.refused(12, INVALID_PRODUCER_EPOCH, epoch=w.epoch - 1)
    assert w.log_end() == end + RECORDS_PER_BATCH
    # Producer ids are not handed out twice, restart or not.
    new_id, new_epoch = w.init_producer_id(version=0)
    assert new_id != w.producer_id and new_epoch == 0
    w.check_read_back()


def ignored_snapshot_lines(broker) -> list[str]:
    return [line for line in broker.run_log().splitlines() if "ignoring the producer state snapshot" in line]


def test_clean_stop_keeps_producer_state_of_old_segments(start_broker):
    """P's batches all lie in segments older than the active one; after a clean stop only the
    snapshot knows them."""
    broker = start_broker()
    topic = unique("idem-clean")
    create_topic(broker.bootstrap, topic, config=SMALL_SEGMENTS)
    w = Writer(broker, topic)
    w.write(0)
    w.filler()
    w.write(3)
    w.filler()
    w.write(6)
    w.fill_until_rolled_past(w.offsets[6] + RECORDS_PER_BATCH - 1)
    assert w.segment_of(w.offsets[0]) < w.active_segment()
    w.retry(6)  # before any restart, too

    broker.stop()
    assert w.snapshot_path().is_file(), "no producer state snapshot after a clean stop"
    broker.start()
    w.reconnect()
    assert not ignored_snapshot_lines(broker)
    check_after_restart(w, retried=[6, 0, 3])
    w.close()


@pytest.mark.parametrize("layout", ["one-segment", "after-roll"])
def test_kill_9_rebuilds_producer_state(start_broker, layout):
    """one-segment: no roll, so no snapshot was ever written; the state comes from the active
    segment's batch headers. after-roll: P's first batches are in an older segment, known from
    the snapshot the roll wrote; its last batch is in the active segment, after that snapshot."""
    broker = start_broker()
    topic = unique("idem-kill")
    create_topic(broker.bootstrap, topic, config=SMALL_SEGMENTS if layout == "after-roll" else {})
    w = Writer(broker, topic)
    w.write(0)
    w.filler()
    w.write(3)
    if layout == "after-roll":
        w.fill_until_rolled_past(w.offsets[3] + RECORDS_PER_BATCH - 1)
    else:
        w.filler()
    w.write(6)
    assert w.segment_of(w.offsets[6]) == w.active_segment()
    if layout == "after-roll":
        assert w.segment_of(w.offsets[0]) < w.active_segment()

    broker.kill()
    assert w.snapshot_path().is_file() == (layout == "after-roll")
    broker.start()
    w.reconnect()
    assert not ignored_snapshot_lines(broker)
    check_after_restart(w, retried=[6, 3, 0])
    w.close()


def test_damaged_snapshot_is_ignored_and_replaced(start_broker):
    broker = start_broker()
    topic = unique("idem-damaged")
    create_topic(broker.bootstrap, topic, config=SMALL_SEGMENTS)
    w = Writer(broker, topic)
    w.write(0)
    w.fill_until_rolled_past(w.offsets[0] + RECORDS_PER_BATCH - 1)
    w.write(3)
    w.write(6)
    assert w.segment_of(w.offsets[3]) == w.active_segment()

    broker.stop()
    path = w.snapshot_path()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3] = bytes(b ^ 0xFF for b in data[middle : middle + 3])
    path.write_bytes(bytes(data))
    broker.start()
    w.reconnect()
    lines = ignored_snapshot_lines(broker)
    assert lines and all(f"{topic}-0" in line for line in lines), broker.run_log_tail()
    # Rebuilt from the active segment, which holds P's batches at 3 and 6.
    check_after_restart(w, retried=[6, 3])

    # The next clean stop writes a good snapshot over the damaged one.
    broker.stop()
    broker.start()
    w.reconnect()
    assert not ignored_snapshot_lines(broker)
    end = w.log_end()
    w.retry(9)
    w.retry(6)
    assert w.log_end() == end
    w.check_read_back()
    w.close()


def test_snapshot_beyond_a_torn_tail_stays_unused(start_broker):
    """A clean stop writes the snapshot as of offset 9; the tail of the segment is then torn
    inside P's batch at sequence 6 (offsets 6-8), so the log restarts at 6 and the snapshot,
    beyond it, is rightly ignored. Other records then take offsets 6-11 and the broker is
    killed. On the next start the snapshot's offset lies inside the log again, but what it
    describes is not what the log holds: it must not be used. P's batch at 6, which the log no
    longer has, must then be written, not answered as a duplicate at offset 6 (where the
    fillers are) and lost."""
    broker = start_broker()
    topic = unique("idem-stale")
    create_topic(broker.bootstrap, topic)
    w = Writer(broker, topic)
    w.write(0)
    w.write(3)
    w.write(6)
    assert w.offsets[6] == 6

    broker.stop()
    assert w.snapshot_path().is_file()
    (segment,) = broker.segment_files(topic, 0)
    last = scan_file(segment).batches[-1]
    assert last.base_offset == w.offsets[6]
    os.truncate(segment, last.position + last.size // 2)
    del w.values[w.offsets.pop(6) :]

    broker.start()
    w.reconnect()
    assert w.log_end() == 6
    w.filler()
    w.filler()
    assert w.log_end() == 12
    broker.kill()

    broker.start()
    w.reconnect()
    response = w.send(6)
    assert response["error_code"] == 0, response
    assert response["base_offset"] == 12, (
        f"P's batch at sequence 6 (not in the log) was answered with offset {response['base_offset']}, "
        f"not appended at the log end 12: the stale snapshot was used"
    )
    w.values += w.p_values(6)
    w.offsets[6] = 12
    w.retry(6)
    w.check_read_back()
    w.close()
