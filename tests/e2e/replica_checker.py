"""Proves from the replicas' files that no acknowledged write was lost and the replicas agree.

After a fault test has produced with acks=all (keeping every delivery report), consumed (keeping
every record it saw), healed the cluster and let the ISR fill up again, `check_replicas` reads
every replica's segment files of every partition directly from disk (segment_file.py finds the
batches; this module decodes their records, compressed or not) and checks, per partition:

(a) every acknowledged record is in the leader's log and in every replica whose log reaches its
    offset, at exactly its acknowledged offset, with the same key and value; it is also below
    the high watermark (acks=all is answered only once the high watermark has passed it);
(b) below the high watermark the replicas agree byte for byte: every batch that starts below the
    high watermark (and at or above every checked replica's log start) is on every checked
    replica whose log reaches it, with identical bytes, header included: base offset, the
    partition leader epoch that wrote it, CRC, records. Above the high watermark replicas may
    differ (an uncommitted tail that a former leader truncates later);
(c) every record a consumer saw is still there, at its offset, with its key and value: no
    consumer saw a record that was later lost or replaced.

Also, every replica in the ISR must have a log that reaches the high watermark.

The high watermark comes from the caller (`high_watermarks`), or from ListOffsets latest through
`bootstrap`, or, failing both, is taken as the smallest log end offset among the checked replicas
(noted in the report; the "below the high watermark" parts of (a) and the ISR check are then
skipped). The leader and the ISR likewise come from `leaders` and `isr`, or from Metadata through
`bootstrap`, or are unknown (then (a) and (c) check every replica that reaches the offset, and
that at least one does).

Codecs: none, gzip (zlib), snappy (raw and xerial-framed) and lz4 (frame format) are decoded in
pure Python here; zstd only when the `zstandard` package is installed (kafka-python's codec uses
it). A batch that cannot be decoded is a violation unless `allow_undecodable=True`, in which case
its records are left out of (a) and (c) and it is listed in the report's notes; (b) compares its
bytes either way.

Violations name the topic, partition, offset and replica; `check_replicas` raises an
AssertionError listing them (the first MAX_LISTED), or returns the report when `raise_on_violation`
is false. Read the files while the nodes are stopped or idle: a batch being written at the end of
an active segment reads as a torn tail (reported as a note).
"""

from __future__ import annotations

import gzip
import pathlib
import struct
from dataclasses import dataclass, field

from segment_file import BATCH_HEADER_BYTES, scan

MAX_LISTED = 25
CONTROL_BATCH = 0x20
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class UndecodableBatch(Exception):
    pass


# -- record decoding --------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at pos: (value, position after it)."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _bytes_field(data: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = _varint(data, pos)
    if length < 0:
        return None, pos
    return bytes(data[pos : pos + length]), pos + length


@dataclass(frozen=True)
class StoredRecord:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes | None], ...]
    batch_base_offset: int


def decode_records(records_bytes: bytes, count: int, base_offset: int, base_timestamp: int) -> list[StoredRecord]:
    """The `count` records of an (uncompressed) records section."""
    out = []
    pos = 0
    for _ in range(count):
        length, pos = _varint(records_bytes, pos)
        end = pos + length
        pos += 1  # attributes
        timestamp_delta, pos = _varint(records_bytes, pos)
        offset_delta, pos = _varint(records_bytes, pos)
        key, pos = _bytes_field(records_bytes, pos)
        value, pos = _bytes_field(records_bytes, pos)
        header_count, pos = _varint(records_bytes, pos)
        headers = []
        for _ in range(header_count):
            name, pos = _bytes_field(records_bytes, pos)
            header_value, pos = _bytes_field(records_bytes, pos)
            headers.append(((name or b"").decode(errors="replace"), header_value))
        if pos != end:
            raise UndecodableBatch(f"record at offset delta {offset_delta}: {end - pos} bytes left in its length")
        out.append(
            StoredRecord(base_offset + offset_delta, key, value, base_timestamp + timestamp_delta, tuple(headers), base_offset)
        )
    if pos != len(records_bytes):
        raise UndecodableBatch(f"{len(records_bytes) - pos} bytes after the last of {count} records")
    return out


def snappy_decompress(data: bytes) -> bytes:
    """Snappy, raw or in the xerial framing Java clients use."""
    if data[:8] == b"\x82SNAPPY\x00":
        out = bytearray()
        pos = 16  # magic, version, compatible version
        while pos < len(data):
            (length,) = struct.unpack_from(">i", data, pos)
            out += _snappy_raw(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        return bytes(out)
    return _snappy_raw(data)


def _snappy_raw(data: bytes) -> bytes:
    expected = shift = pos = 0
    while True:
        byte = data[pos]
        pos += 1
        expected |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                width = length - 59
                length = int.from_bytes(data[pos : pos + width], "little")
                pos += width
            length += 1
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            distance = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            distance = int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            distance = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        _copy_match(out, distance, length)
    if len(out) != expected:
        raise UndecodableBatch(f"snappy: {len(out)} bytes decoded, preamble says {expected}")
    return bytes(out)


def _copy_match(out: bytearray, distance: int, length: int) -> None:
    if distance <= 0 or distance > len(out):
        raise UndecodableBatch(f"back reference {distance} beyond {len(out)} decoded bytes")
    start = len(out) - distance
    if length <= distance:
        out += out[start : start + length]
    else:  # overlapping: the last `distance` bytes repeat
        pattern = bytes(out[start:])
        out += (pattern * (length // distance + 1))[:length]


def lz4_frame_decompress(data: bytes) -> bytes:
    """The LZ4 frame format (what Kafka's v2 batches use), checksums not verified."""
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic != 0x184D2204:
        raise UndecodableBatch(f"lz4: frame magic {magic:#x}")
    flags = data[4]
    pos = 6 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0) + 1  # FLG BD [size] [dict] HC
    block_checksums = bool(flags & 0x10)
    out = bytearray()
    while True:
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if size == 0:
            return bytes(out)
        length = size & 0x7FFFFFFF
        block = data[pos : pos + length]
        pos += length + (4 if block_checksums else 0)
        if size & 0x80000000:
            out += block
        else:
            _lz4_block(block, out)  # dependent blocks may refer back into earlier output


def _lz4_block(block: bytes, out: bytearray) -> None:
    pos = 0
    while pos < len(block):
        token = block[pos]
        pos += 1
        literals = token >> 4
        if literals == 15:
            while True:
                byte = block[pos]
                pos += 1
                literals += byte
                if byte != 255:
                    break
        out += block[pos : pos + literals]
        pos += literals
        if pos >= len(block):
            return  # the last sequence has literals only
        distance = block[pos] | (block[pos + 1] << 8)
        pos += 2
        length = token & 15
        if length == 15:
            while True:
                byte = block[pos]
                pos += 1
                length += byte
                if byte != 255:
                    break
        _copy_match(out, distance, length + 4)


def decompress(codec: int, data: bytes) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return gzip.decompress(data)
    if codec == 2:
        return snappy_decompress(data)
    if codec == 3:
        return lz4_frame_decompress(data)
    if codec == 4:
        try:
            from kafka import codec as kafka_codec

            if kafka_codec.has_zstd():
                return kafka_codec.zstd_decode(data)
        except ImportError:
            pass
        raise UndecodableBatch("zstd needs the `zstandard` package, which is not installed")
    raise UndecodableBatch(f"unknown codec {codec}")


# -- one replica's log ------------------------------------------------------------------


@dataclass(frozen=True)
class StoredBatch:
    file: str
    position: int
    base_offset: int
    last_offset: int
    leader_epoch: int
    codec: int
    control: bool
    data: bytes  # the whole batch as stored, prefix included

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


@dataclass
class ReplicaLog:
    """One replica of one partition as read from its directory."""

    node: int
    directory: pathlib.Path
    batches: list[StoredBatch] = field(default_factory=list)
    records: dict[int, StoredRecord] = field(default_factory=dict)
    undecodable: list[str] = field(default_factory=list)
    undecodable_ranges: list[tuple[int, int]] = field(default_factory=list)  # [base, last] offsets
    torn: list[str] = field(default_factory=list)  # files whose tail is not a whole, valid batch

    @property
    def log_start_offset(self) -> int:
        return self.batches[0].base_offset if self.batches else 0

    @property
    def log_end_offset(self) -> int:
        return self.batches[-1].next_offset if self.batches else 0

    def batch_at(self, base_offset: int) -> StoredBatch | None:
        return self._by_base().get(base_offset)

    def _by_base(self) -> dict[int, StoredBatch]:
        if not hasattr(self, "_index"):
            self._index = {b.base_offset: b for b in self.batches}
        return self._index

    def describe(self) -> str:
        return f"node {self.node}: [{self.log_start_offset}, {self.log_end_offset}) in {len(self.batches)} batches"


def segment_files(directory: pathlib.Path) -> list[pathlib.Path]:
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if p.name.endswith(".log") and p.name[:20].isdigit()]
    return sorted(files, key=lambda p: int(p.name[:20]))


def read_replica(node: int, directory: pathlib.Path, verify_crc: bool = True) -> ReplicaLog:
    """Every batch of every segment file of one partition directory, records decoded."""
    replica = ReplicaLog(node, pathlib.Path(directory))
    for path in segment_files(replica.directory):
        data = path.read_bytes()
        found = scan(data, verify_crc=verify_crc)
        if found.valid_bytes != found.file_bytes:
            replica.torn.append(f"{path.name}: {found.file_bytes - found.valid_bytes} bytes after the last valid batch")
        for batch in found.batches:
            if not batch.crc_ok:
                break
            raw = data[batch.position : batch.end]
            (leader_epoch,) = struct.unpack_from(">i", raw, 12)
            stored = StoredBatch(
                path.name, batch.position, batch.base_offset, batch.next_offset - 1, leader_epoch,
                batch.compression, bool(batch.attributes & CONTROL_BATCH), raw,
            )
            replica.batches.append(stored)
            if stored.control:
                continue
            try:
                (base_timestamp,) = struct.unpack_from(">q", raw, 27)
                body = decompress(batch.compression, raw[BATCH_HEADER_BYTES:])
                for record in decode_records(body, batch.record_count, batch.base_offset, base_timestamp):
                    replica.records[record.offset] = record
            except (UndecodableBatch, IndexError, struct.error, OSError, EOFError) as error:
                replica.undecodable_ranges.append((stored.base_offset, stored.last_offset))
                replica.undecodable.append(
                    f"{path.name} batch at offset {batch.base_offset} ({CODEC_NAMES.get(batch.compression)}): {error}"
                )
    return replica


# -- the check --------------------------------------------------------------------------


@dataclass
class PartitionReport:
    partition: int
    high_watermark: int
    leader: int | None
    replicas: dict[int, str]  # node -> "[start, end) in N batches"
    isr: list[int] | None = None
    acknowledged_checked: int = 0
    observed_checked: int = 0
    batches_compared: int = 0


@dataclass
class CheckReport:
    topic: str
    partitions: dict[int, PartitionReport] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [f"replica check of {self.topic}: {len(self.violations)} violation(s)"]
        for p in self.partitions.values():
            lines.append(
                f"  [{p.partition}] hw={p.high_watermark} leader={p.leader} isr={p.isr} acked={p.acknowledged_checked} "
                f"observed={p.observed_checked} batches compared={p.batches_compared}; "
                + "; ".join(p.replicas.values())
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if self.violations:
            listed = "\n".join(f"  {v}" for v in self.violations[:MAX_LISTED])
            more = len(self.violations) - MAX_LISTED
            raise AssertionError(
                f"{self.topic}: {len(self.violations)} replica check violation(s):\n{listed}"
                + (f"\n  ... and {more} more" if more > 0 else "")
                + f"\n{self.summary()}"
            )


def _as_tuple(record) -> tuple[int, int, bytes | None, bytes | None]:
    """(partition, offset, key, value) of a tuple or of anything with those attributes
    (kafka_helpers.Delivery, kafka_helpers.Record)."""
    if isinstance(record, tuple):
        partition, offset, key, value = record
        return partition, offset, key, value
    return record.partition, record.offset, record.key, record.value


def _short(value: bytes | None, limit: int = 40) -> str:
    if value is None:
        return "null"
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def _query_high_watermark(bootstrap: str, topic: str, partition: int) -> int:
    from kafka_helpers import watermarks

    return watermarks(bootstrap, topic, partition)[1]


def _query_leader_and_isr(bootstrap: str, topic: str, partition: int) -> tuple[int | None, list[int] | None]:
    from kafka_helpers import admin_client

    found = admin_client(bootstrap).list_topics(topic=topic, timeout=10).topics.get(topic)
    if found is None or partition not in found.partitions:
        return None, None
    state = found.partitions[partition]
    return (state.leader if state.leader >= 0 else None), list(state.isrs)


def check_replicas(
    topic: str,
    data_dirs: dict[int, pathlib.Path],
    acknowledged=(),
    observed=(),
    partitions: list[int] | None = None,
    high_watermarks: dict[int, int] | None = None,
    leaders: dict[int, int | None] | None = None,
    isr: dict[int, list[int]] | None = None,
    bootstrap: str | None = None,
    replicas: dict[int, list[int]] | None = None,
    allow_undecodable: bool = False,
    verify_crc: bool = True,
    raise_on_violation: bool = True,
) -> CheckReport:
    """Checks (a), (b), (c) of the module docstring for `topic`.

    data_dirs: {node id: data dir}; a replica is `<data dir>/<topic>-<partition>/`.
    acknowledged / observed: (partition, offset, key, value) tuples, or Delivery / Record objects
    (for acknowledged, only those without error count).
    partitions: default every partition found in an acknowledged or observed record or a data dir.
    leaders / isr: {partition: leader node} / {partition: ISR node ids}; default from Metadata
    through `bootstrap` if given, else unknown. Every ISR member must reach the high watermark.
    replicas: {partition: node ids} to check; default every node whose data dir has the
    partition's directory.
    """
    report = CheckReport(topic)
    acked = [_as_tuple(r) for r in acknowledged if getattr(r, "error", None) is None]
    seen = [_as_tuple(r) for r in observed]
    if partitions is None:
        found = {p for p, *_ in acked} | {p for p, *_ in seen}
        for directory in data_dirs.values():
            if pathlib.Path(directory).is_dir():
                for child in pathlib.Path(directory).iterdir():
                    name, _, number = child.name.rpartition("-")
                    if name == topic and number.isdigit() and child.is_dir():
                        found.add(int(number))
        partitions = sorted(found)
    for partition in partitions:
        _check_partition(
            report, topic, partition, data_dirs,
            [r for r in acked if r[0] == partition], [r for r in seen if r[0] == partition],
            (high_watermarks or {}).get(partition), (leaders or {}).get(partition, ...), bootstrap,
            (isr or {}).get(partition, ...), (replicas or {}).get(partition), allow_undecodable, verify_crc,
        )
    if raise_on_violation:
        report.assert_ok()
    return report


def _check_partition(
    report: CheckReport, topic, partition, data_dirs, acked, seen, high_watermark, leader, bootstrap,
    in_sync, nodes, allow_undecodable, verify_crc,
) -> None:
    where = f"{topic}[{partition}]"
    violation = report.violations.append
    if nodes is None:
        nodes = [n for n, d in sorted(data_dirs.items()) if (pathlib.Path(d) / f"{topic}-{partition}").is_dir()]
    logs = {n: read_replica(n, pathlib.Path(data_dirs[n]) / f"{topic}-{partition}", verify_crc) for n in nodes}
    if not logs:
        violation(f"{where}: no replica directory in any data dir ({sorted(data_dirs)})")
        return
    for node, log in logs.items():
        for problem in log.undecodable:
            (report.notes.append if allow_undecodable else violation)(f"{where} replica {node}: undecodable {problem}")
        for problem in log.torn:
            report.notes.append(f"{where} replica {node}: torn tail in {problem}")

    if high_watermark is None and bootstrap is not None:
        high_watermark = _query_high_watermark(bootstrap, topic, partition)
    high_watermark_known = high_watermark is not None
    if high_watermark is None:
        high_watermark = min(log.log_end_offset for log in logs.values())
        report.notes.append(f"{where}: high watermark not given, taken as the smallest log end {high_watermark}")
    if (leader is ... or in_sync is ...) and bootstrap is not None:
        queried_leader, queried_isr = _query_leader_and_isr(bootstrap, topic, partition)
        leader = queried_leader if leader is ... else leader
        in_sync = queried_isr if in_sync is ... else in_sync
    leader = None if leader is ... else leader
    in_sync = None if in_sync is ... else in_sync
    if leader is not None and leader not in logs:
        violation(f"{where}: leader {leader} has no replica directory among the checked nodes {sorted(logs)}")
        leader = None
    summary = PartitionReport(partition, high_watermark, leader, {n: log.describe() for n, log in logs.items()}, in_sync)
    report.partitions[partition] = summary
    # An in-sync replica has everything below the high watermark (that is what in sync means).
    for node in in_sync or []:
        if node not in logs:
            violation(f"{where} replica {node}: in the ISR {sorted(in_sync)} but not among the checked replicas {sorted(logs)}")
        elif high_watermark_known and logs[node].log_end_offset < high_watermark:
            violation(
                f"{where} replica {node}: in the ISR {sorted(in_sync)} but its log ends at "
                f"{logs[node].log_end_offset}, below the high watermark {high_watermark}"
            )

    # (a) and (c): the record is where it was acknowledged / seen, on every replica that reaches it.
    def check_present(kind: str, offset: int, key, value) -> None:
        holders = [n for n, log in logs.items() if log.log_end_offset > offset and log.log_start_offset <= offset]
        required = set(holders) | ({leader} if leader is not None else set())
        if not required:
            replicas = "; ".join(log.describe() for log in logs.values())
            violation(f"{where} offset {offset}: {kind} record on no replica ({replicas})")
            return
        for node in sorted(required):
            log = logs[node]
            record = log.records.get(offset)
            if record is None:
                if any(base <= offset <= last for base, last in log.undecodable_ranges):
                    continue  # in a batch that could not be decoded: reported (or noted) as such
                role = "leader" if node == leader else "replica"
                violation(f"{where} offset {offset} replica {node}: {kind} record missing ({role} {log.describe()})")
            elif (record.key, record.value) != (key, value):
                violation(
                    f"{where} offset {offset} replica {node}: {kind} record key={_short(key)} value={_short(value)} "
                    f"but the replica has key={_short(record.key)} value={_short(record.value)}"
                )

    for _, offset, key, value in acked:
        if high_watermark_known and offset >= high_watermark:
            violation(
                f"{where} offset {offset}: acknowledged (acks=all) but at or above the high watermark {high_watermark}"
            )
        check_present("acknowledged", offset, key, value)
        summary.acknowledged_checked += 1
    for _, offset, key, value in seen:
        check_present("consumed", offset, key, value)
        summary.observed_checked += 1

    # (b): byte-identical batches below the high watermark.
    common_start = max(log.log_start_offset for log in logs.values())
    bases = sorted(
        {b.base_offset for log in logs.values() for b in log.batches if common_start <= b.base_offset < high_watermark}
    )
    for base in bases:
        present = {}
        for node, log in logs.items():
            batch = log.batch_at(base)
            if batch is not None:
                present[node] = batch
            elif log.log_end_offset > base:
                covering = next((b for b in log.batches if b.base_offset <= base <= b.last_offset), None)
                shape = (
                    f"a batch [{covering.base_offset}, {covering.last_offset}] covers it"
                    if covering else "it falls in a gap"
                )
                violation(
                    f"{where} offset {base} replica {node}: no batch starts at {base} below the high watermark "
                    f"{high_watermark} ({shape})"
                )
        if len({b.data for b in present.values()}) > 1:
            reference_node, reference = next(iter(present.items()))
            for node, batch in present.items():
                if batch.data != reference.data:
                    violation(f"{where} offset {base} replica {node}: batch differs from replica {reference_node} "
                              f"below the high watermark {high_watermark}: {_describe_difference(reference, batch)}")
        summary.batches_compared += 1


def _describe_difference(a: StoredBatch, b: StoredBatch) -> str:
    if len(a.data) != len(b.data):
        return (
            f"{len(a.data)} vs {len(b.data)} bytes "
            f"(offsets [{a.base_offset}, {a.last_offset}] vs [{b.base_offset}, {b.last_offset}])"
        )
    first = next(i for i, (x, y) in enumerate(zip(a.data, b.data)) if x != y)
    if a.leader_epoch != b.leader_epoch:
        return f"partition leader epoch {a.leader_epoch} vs {b.leader_epoch}"
    return f"first differing byte at batch position {first} ({a.file}@{a.position} vs {b.file}@{b.position})"
