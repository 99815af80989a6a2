//! ListOffsets by timestamp: the first record at or after a time, and the newest record.
//!
//! The search narrows down without decoding: the first segment whose max timestamp reaches the
//! target, then its time index (the last entry at or below the target: no earlier record can
//! qualify), then its offset index to a file position, then batch headers to the first batch
//! whose max timestamp reaches the target. Only that one batch is decoded (decompressing it if
//! needed) to find the exact record; a `LogAppendTime` batch needs no decoding, since all its
//! records carry the batch's timestamp, unless compaction removed its first record.

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use strom_protocol::batch::BatchHeader;
use strom_types::{Offset, TimestampMs};

use crate::error::{IoContext, LogError};
use crate::index::OffsetEntry;
use crate::log::Log;
use crate::segment::Segment;

impl Log {
    /// The earliest offset whose record timestamp is at least `timestamp`, with that record's
    /// timestamp; `None` if no record is that new.
    pub fn offset_for_timestamp(
        &self,
        timestamp: TimestampMs,
    ) -> Result<Option<(Offset, TimestampMs)>, LogError> {
        for segment in &self.segments {
            if segment.max_timestamp.is_none_or(|(max, _)| max < timestamp) {
                continue;
            }
            if let Some((header, position)) = first_batch_reaching(segment, timestamp)? {
                return exact_record(segment, &header, position, timestamp).map(Some);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp in the log (the first such record when several
    /// share it), for ListOffsets `MAX_TIMESTAMP`; `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(Offset, TimestampMs)>, LogError> {
        let newest = self
            .segments
            .iter()
            .filter_map(|segment| segment.max_timestamp)
            .map(|(max, _)| max)
            .max();
        match newest {
            Some(newest) => self.offset_for_timestamp(newest),
            None => Ok(None),
        }
    }
}

/// The first batch of `segment` whose max timestamp is at least `timestamp`.
fn first_batch_reaching(
    segment: &Segment,
    timestamp: TimestampMs,
) -> Result<Option<(BatchHeader, u64)>, LogError> {
    let start_offset = match segment.time_index.lookup(timestamp) {
        Some(entry) => entry.relative_offset,
        None => 0,
    };
    let entry = segment
        .offset_index
        .lookup(start_offset)
        .unwrap_or(OffsetEntry {
            relative_offset: 0,
            position: 0,
        });
    // A batch compaction emptied keeps its max timestamp but has no record to answer with.
    segment.find_batch(entry, |header| {
        header.max_timestamp >= timestamp && header.record_count > 0
    })
}

/// The first record of the batch at `position` whose timestamp is at least `timestamp`.
fn exact_record(
    segment: &Segment,
    header: &BatchHeader,
    position: u64,
    timestamp: TimestampMs,
) -> Result<(Offset, TimestampMs), LogError> {
    // Every record of a LogAppendTime batch carries the append time, so the first record
    // answers; it sits at the base offset unless compaction removed it.
    let dense = i64::from(header.record_count) == i64::from(header.last_offset_delta) + 1;
    if header.is_log_append_time() && dense {
        return Ok((header.base_offset, header.max_timestamp));
    }
    let mut bytes = vec![0u8; header.total_bytes()];
    segment
        .file
        .get()?
        .read_exact_at(&mut bytes, position)
        .at(&segment.path)?;
    let mut buffer = Bytes::from(bytes);
    let record_set =
        RecordBatchDecoder::decode(&mut buffer).map_err(|error| LogError::UndecodableRecords {
            base_offset: header.base_offset,
            reason: error.to_string(),
        })?;
    if header.is_log_append_time() {
        let first = record_set
            .records
            .first()
            .map_or(header.base_offset.0, |record| record.offset);
        return Ok((Offset(first), header.max_timestamp));
    }
    let found = record_set
        .records
        .iter()
        .find(|record| record.timestamp >= timestamp.0);
    match found {
        Some(record) => Ok((Offset(record.offset), TimestampMs(record.timestamp))),
        // The header's max timestamp promised a record this new; trust the header, as Kafka's
        // batch-level index does, rather than report nothing.
        None => Ok((header.last_offset(), header.max_timestamp)),
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::batch;
    use crate::{Log, LogConfig, LogError};
    use strom_protocol::batch::compute_crc;
    use strom_types::{Offset, TimestampMs};

    #[test]
    fn records_that_cannot_be_decoded_are_reported_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let mut bytes = batch(0, 3, 1_000, 20);
        // Scramble the records but keep the CRC right, as a buggy producer could.
        for byte in &mut bytes[61..] {
            *byte = 0xff;
        }
        let crc = compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&mut bytes, None).unwrap();
        let error = log.offset_for_timestamp(TimestampMs(1_001)).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::UndecodableRecords {
                    base_offset: Offset(0),
                    ..
                }
            ),
            "{error}"
        );
        assert!(!error.is_fatal());
        // Batch-level answers need no decoding.
        assert_eq!(log.offset_for_timestamp(TimestampMs(1_003)).unwrap(), None);
    }
}
