"""Reads Strom's segment .log files: Kafka v2 record batches laid end to end, as on the wire.

Batch layout (big-endian): base offset i64 @0, batch length i32 @8 (bytes after this field),
partition leader epoch i32 @12, magic i8 @16 (= 2), CRC-32C u32 @17 over bytes 21..end,
attributes i16 @21, last offset delta i32 @23, base timestamp i64 @27, max timestamp i64 @35,
producer id i64 @43, producer epoch i16 @51, base sequence i32 @53, record count i32 @57,
records @61.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

BATCH_PREFIX_BYTES = 12  # base offset + batch length
BATCH_HEADER_BYTES = 61


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


@dataclass(frozen=True)
class Batch:
    position: int  # byte position of the batch in the file
    size: int  # bytes, prefix included
    base_offset: int
    last_offset_delta: int
    record_count: int
    max_timestamp: int
    crc_ok: bool
    magic: int
    attributes: int

    @property
    def compression(self) -> int:
        """0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
        return self.attributes & 0x07

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & 0x08)

    @property
    def end(self) -> int:
        return self.position + self.size

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def records_position(self) -> int:
        return self.position + BATCH_HEADER_BYTES


@dataclass(frozen=True)
class Scan:
    batches: list[Batch]
    valid_bytes: int  # bytes up to the end of the last whole batch with a good CRC
    file_bytes: int

    @property
    def clean(self) -> bool:
        return self.valid_bytes == self.file_bytes and all(b.crc_ok for b in self.batches)


def scan(data: bytes, verify_crc: bool = True) -> Scan:
    """Every whole batch in `data`, stopping at the first torn, short or non-v2 one (or, with
    verify_crc, at the first whose CRC-32C does not match; pure Python: slow on megabytes)."""
    batches: list[Batch] = []
    position = 0
    valid_bytes = 0
    while position + BATCH_HEADER_BYTES <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, position)
        size = BATCH_PREFIX_BYTES + length
        if length < BATCH_HEADER_BYTES - BATCH_PREFIX_BYTES or position + size > len(data):
            break
        magic = data[position + 16]
        (crc,) = struct.unpack_from(">I", data, position + 17)
        (attributes,) = struct.unpack_from(">h", data, position + 21)
        (last_offset_delta,) = struct.unpack_from(">i", data, position + 23)
        (max_timestamp,) = struct.unpack_from(">q", data, position + 35)
        (record_count,) = struct.unpack_from(">i", data, position + 57)
        crc_ok = magic == 2 and (not verify_crc or crc32c(data[position + 21 : position + size]) == crc)
        batches.append(
            Batch(position, size, base_offset, last_offset_delta, record_count, max_timestamp, crc_ok, magic, attributes)
        )
        if not crc_ok:
            break
        position += size
        valid_bytes = position
    return Scan(batches, valid_bytes, len(data))


def scan_file(path, verify_crc: bool = True) -> Scan:
    with open(path, "rb") as f:
        return scan(f.read(), verify_crc)


def _zigzag_varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def build_batch(
    records: list[tuple[bytes | None, bytes | None]],
    timestamp_ms: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """An uncompressed v2 record batch (base offset 0) of (key, value) records, as a producer
    sends it: without a producer id by default, or an idempotent producer's batch."""
    body = bytearray()
    for offset_delta, (key, value) in enumerate(records):
        record = bytearray(b"\x00")  # attributes
        record += _zigzag_varint(0)  # timestamp delta
        record += _zigzag_varint(offset_delta)
        for field in (key, value):
            if field is None:
                record += _zigzag_varint(-1)
            else:
                record += _zigzag_varint(len(field)) + field
        record += _zigzag_varint(0)  # headers
        body += _zigzag_varint(len(record)) + record
    after_crc = struct.pack(
        ">hiqqqhii",
        0,
        len(records) - 1,
        timestamp_ms,
        timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    ) + bytes(body)
    after_length = struct.pack(">ib", -1, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length
