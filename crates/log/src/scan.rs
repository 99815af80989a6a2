//! Walking the batches stored in a segment file.
//!
//! Recovery reads every byte of a segment and re-checks each batch's CRC ([`Check::Crc`], in
//! chunks of [`SCAN_CHUNK_BYTES`]); lookups and index repair only need the headers
//! ([`Check::Headers`], in chunks of [`HEADER_CHUNK_BYTES`]). Either way a walk stops at the first batch
//! that is torn, malformed, or starts below the offset where the previous batch ended, and
//! reports why: the caller decides whether that is a torn tail to cut off or damage to refuse.
//!
//! A batch may start *above* the expected offset: compaction removes whole batches and leaves
//! the gap (as Kafka does), and a follower copying a compacted leader stores the same gaps. What
//! must never happen is an offset going backwards, so that stays damage.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use strom_protocol::batch::{verify_crc, BatchHeader, BATCH_HEADER_BYTES};
use strom_types::Offset;

use crate::error::{IoContext, LogError};

/// Bytes read at a time when a walk checks CRCs.
pub(crate) const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes read at a time when a walk reads headers only: enough to cover the batches between two
/// index entries (4 KiB apart by default) with one read.
pub(crate) const HEADER_CHUNK_BYTES: usize = 8 * 1024;

/// How much of each batch a walk reads and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Header fields and lengths only.
    Headers,
    /// Headers, lengths and the CRC-32C of the whole batch.
    Crc,
}

/// The segment file a walk reads: its handle, its name for errors, and how many bytes count.
#[derive(Clone, Copy)]
pub(crate) struct SegmentFile<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    pub size_bytes: u64,
}

/// Where a walk starts: the position of a batch and the base offset it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkStart {
    pub position: u64,
    pub next_offset: Offset,
}

/// Where a walk ended: after the last good batch it accepted (or at the batch the visitor stopped
/// on), and why it stopped early, if the bytes there were not a good batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalkEnd {
    pub position: u64,
    pub next_offset: Offset,
    pub damage: Option<String>,
    pub stopped: bool,
}

/// Reads a segment through a buffer, so a CRC walk issues one read per chunk, not per batch.
struct ChunkReader<'a> {
    segment: SegmentFile<'a>,
    chunk_bytes: usize,
    buffer: Vec<u8>,
    buffer_position: u64,
}

impl ChunkReader<'_> {
    /// The `length` bytes at `position`; the caller has checked they lie inside the segment.
    fn bytes(&mut self, position: u64, length: usize) -> Result<&[u8], LogError> {
        let buffer_end = self.buffer_position + self.buffer.len() as u64;
        let held = position >= self.buffer_position && position + length as u64 <= buffer_end;
        if !held {
            let remaining = self.segment.size_bytes - position;
            let want = length
                .max(self.chunk_bytes)
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.buffer.resize(want, 0);
            self.segment
                .file
                .read_exact_at(&mut self.buffer, position)
                .at(self.segment.path)?;
            self.buffer_position = position;
        }
        let at =
            usize::try_from(position - self.buffer_position).expect("buffer offset fits usize");
        Ok(&self.buffer[at..at + length])
    }
}

/// Walks the batches of `segment` from `start`, calling `visit` with each good batch's header and
/// position until the end of the segment, the first bad batch, or `visit` breaking.
pub(crate) fn walk(
    segment: SegmentFile<'_>,
    start: WalkStart,
    check: Check,
    mut visit: impl FnMut(&BatchHeader, u64) -> ControlFlow<()>,
) -> Result<WalkEnd, LogError> {
    walk_with(segment, start, check, |_, header, position| {
        Ok(visit(header, position))
    })
}

/// Like [`walk`] with CRC checks, but also hands `visit` the bytes of each batch (already in the
/// walk's buffer), and lets it fail; for compaction, which decodes and copies batches.
pub(crate) fn walk_batches(
    segment: SegmentFile<'_>,
    start: WalkStart,
    mut visit: impl FnMut(&BatchHeader, u64, &[u8]) -> Result<ControlFlow<()>, LogError>,
) -> Result<WalkEnd, LogError> {
    walk_with(segment, start, Check::Crc, |reader, header, position| {
        let bytes = reader.bytes(position, header.total_bytes())?;
        visit(header, position, bytes)
    })
}

fn walk_with(
    segment: SegmentFile<'_>,
    start: WalkStart,
    check: Check,
    mut visit: impl FnMut(&mut ChunkReader<'_>, &BatchHeader, u64) -> Result<ControlFlow<()>, LogError>,
) -> Result<WalkEnd, LogError> {
    let chunk_bytes = match check {
        Check::Crc => SCAN_CHUNK_BYTES,
        Check::Headers => HEADER_CHUNK_BYTES,
    };
    let mut reader = ChunkReader {
        segment,
        chunk_bytes,
        buffer: Vec::new(),
        buffer_position: 0,
    };
    let mut end = WalkEnd {
        position: start.position,
        next_offset: start.next_offset,
        damage: None,
        stopped: false,
    };
    while end.position < segment.size_bytes {
        let header = match next_batch(&mut reader, end.position, end.next_offset, check)? {
            Ok(header) => header,
            Err(damage) => {
                end.damage = Some(damage);
                break;
            }
        };
        if visit(&mut reader, &header, end.position)?.is_break() {
            end.stopped = true;
            break;
        }
        end.position += header.total_bytes() as u64;
        end.next_offset = header.next_offset();
    }
    Ok(end)
}

/// Reads and checks the batch at `position`. The outer error is I/O, the inner one damage.
fn next_batch(
    reader: &mut ChunkReader<'_>,
    position: u64,
    expected_offset: Offset,
    check: Check,
) -> Result<Result<BatchHeader, String>, LogError> {
    let remaining = reader.segment.size_bytes - position;
    if remaining < BATCH_HEADER_BYTES as u64 {
        return Ok(Err(format!(
            "{remaining} bytes remain, fewer than a batch header ({BATCH_HEADER_BYTES})"
        )));
    }
    let header = match BatchHeader::parse(reader.bytes(position, BATCH_HEADER_BYTES)?) {
        Ok(header) => header,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let total = header.total_bytes();
    if total as u64 > remaining {
        return Ok(Err(format!(
            "a batch of {total} bytes is torn: only {remaining} bytes remain"
        )));
    }
    if check == Check::Crc {
        if let Err(error) = verify_crc(reader.bytes(position, total)?, &header) {
            return Ok(Err(error.to_string()));
        }
    }
    // Forward gaps are compaction's (see the module docs); backwards is damage.
    if header.base_offset < expected_offset {
        return Ok(Err(format!(
            "the batch has base offset {}, but offset {expected_offset} comes next",
            header.base_offset
        )));
    }
    Ok(Ok(header))
}

/// The header of the batch at `position`, which must hold a good batch (the caller knows one is
/// there); damage is reported as corruption of the segment.
pub(crate) fn header_at(segment: SegmentFile<'_>, position: u64) -> Result<BatchHeader, LogError> {
    let mut bytes = [0u8; BATCH_HEADER_BYTES];
    if position + BATCH_HEADER_BYTES as u64 > segment.size_bytes {
        return Err(LogError::corrupt(
            segment.path,
            format!("no whole batch header at byte {position}"),
        ));
    }
    segment
        .file
        .read_exact_at(&mut bytes, position)
        .at(segment.path)?;
    BatchHeader::parse(&bytes).map_err(|error| {
        LogError::corrupt(segment.path, format!("batch at byte {position}: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::batch;

    fn segment_file(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        (file, bytes.len() as u64)
    }

    fn three_batches() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (base, count) in [(0, 2), (2, 3), (5, 1)] {
            starts.push(bytes.len());
            bytes.extend(batch(base, count, 1000 + base, 50));
        }
        (bytes, starts)
    }

    #[test]
    fn a_crc_walk_visits_every_good_batch_and_stops_at_a_flipped_byte() {
        let (mut bytes, starts) = three_batches();
        let (file, size) = segment_file(&bytes);
        let handle = File::open(file.path()).unwrap();
        let segment = SegmentFile {
            file: &handle,
            path: file.path(),
            size_bytes: size,
        };
        let start = WalkStart {
            position: 0,
            next_offset: Offset(0),
        };
        let mut seen = Vec::new();
        let end = walk(segment, start, Check::Crc, |header, position| {
            seen.push((header.base_offset, position));
            ControlFlow::Continue(())
        })
        .unwrap();
        let expected: Vec<_> = [0, 2, 5]
            .into_iter()
            .zip(&starts)
            .map(|(o, &p)| (Offset(o), p as u64))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(
            end,
            WalkEnd {
                position: size,
                next_offset: Offset(6),
                damage: None,
                stopped: false
            }
        );

        bytes[starts[1] + 70] ^= 0xff;
        std::fs::write(file.path(), &bytes).unwrap();
        let end = walk(segment, start, Check::Crc, |_, _| ControlFlow::Continue(())).unwrap();
        assert_eq!(
            (end.position, end.next_offset),
            (starts[1] as u64, Offset(2))
        );
        assert!(end.damage.unwrap().contains("CRC mismatch"));
        // A header walk does not read the records, so it does not notice.
        let end = walk(segment, start, Check::Headers, |_, _| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(end.damage, None);
    }

    #[test]
    fn walks_report_torn_tails_and_offset_gaps() {
        let (bytes, starts) = three_batches();
        let (file, _) = segment_file(&bytes);
        let handle = File::open(file.path()).unwrap();
        let torn = SegmentFile {
            file: &handle,
            path: file.path(),
            size_bytes: bytes.len() as u64 - 5,
        };
        let end = walk(
            torn,
            WalkStart {
                position: 0,
                next_offset: Offset(0),
            },
            Check::Crc,
            |_, _| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!(end.position, starts[2] as u64);
        assert!(end.damage.unwrap().contains("torn"));

        let whole = SegmentFile {
            size_bytes: bytes.len() as u64,
            ..torn
        };
        let gap = WalkStart {
            position: starts[1] as u64,
            next_offset: Offset(3),
        };
        let end = walk(whole, gap, Check::Headers, |_, _| ControlFlow::Continue(())).unwrap();
        assert!(end
            .damage
            .unwrap()
            .contains("base offset 2, but offset 3 comes next"));
    }

    #[test]
    fn a_gap_left_by_compaction_is_walked_over_and_batch_bytes_are_handed_out() {
        let mut bytes = batch(0, 2, 1_000, 50);
        let second = bytes.len();
        bytes.extend(batch(7, 3, 1_007, 50));
        let (file, size) = segment_file(&bytes);
        let handle = File::open(file.path()).unwrap();
        let segment = SegmentFile {
            file: &handle,
            path: file.path(),
            size_bytes: size,
        };
        let start = WalkStart {
            position: 0,
            next_offset: Offset(0),
        };
        let mut seen = Vec::new();
        let end = walk_batches(segment, start, |header, position, batch| {
            assert_eq!(batch.len(), header.total_bytes());
            assert_eq!(batch, &bytes[position as usize..][..batch.len()]);
            seen.push(header.base_offset);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(seen, [Offset(0), Offset(7)]);
        assert_eq!((end.next_offset, end.damage), (Offset(10), None));
        assert_eq!(second as u64, size - batch(7, 3, 1_007, 50).len() as u64);
    }

    #[test]
    fn a_visitor_can_stop_the_walk_on_a_batch() {
        let (bytes, starts) = three_batches();
        let (file, size) = segment_file(&bytes);
        let handle = File::open(file.path()).unwrap();
        let segment = SegmentFile {
            file: &handle,
            path: file.path(),
            size_bytes: size,
        };
        let start = WalkStart {
            position: 0,
            next_offset: Offset(0),
        };
        let end = walk(segment, start, Check::Headers, |header, _| {
            if header.last_offset() >= Offset(3) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(
            (end.position, end.next_offset, end.stopped),
            (starts[1] as u64, Offset(2), true)
        );
        assert_eq!(
            header_at(segment, starts[2] as u64).unwrap().base_offset,
            Offset(5)
        );
        assert!(header_at(segment, size - 10).is_err());
    }
}
