//! The one error type of the log, split into fatal errors (the disk or its contents failed) and
//! per-request errors (the caller asked for something the log cannot give).

use std::path::{Path, PathBuf};

use strom_protocol::batch::BatchError;
use strom_types::Offset;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Fatal: the operating system refused a read, write, fsync or directory operation.
    #[error("I/O error on {path}: {source} (check the disk, free space and permissions)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Per request: the offset is below the log start or past the log end.
    #[error(
        "offset {requested} is out of range: this partition holds offsets {log_start} \
         up to (not including) {log_end}"
    )]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },

    /// Per request: the records of one append do not fit in an empty segment.
    #[error(
        "{bytes} bytes of record batches cannot fit in a segment of {segment_bytes} bytes; \
         raise segment.bytes or send smaller batches"
    )]
    RecordBatchTooLarge { bytes: usize, segment_bytes: u64 },

    /// Per request: one append claims more offsets than a segment can address (2^31).
    #[error(
        "an append of records up to offset {last_offset} cannot share a segment with \
         offset {segment_base_offset}: a segment spans at most 2^31 offsets"
    )]
    OffsetOverflow {
        last_offset: Offset,
        segment_base_offset: Offset,
    },

    /// Per request: a follower append starts below the log end; the follower must truncate
    /// (or fetch from its log end) first.
    #[error(
        "a follower append starts at offset {base_offset}, below the log end offset {log_end}; \
         fetch from the log end, or truncate the log first"
    )]
    OffsetBehindLogEnd {
        base_offset: Offset,
        log_end: Offset,
    },

    /// Per request: within a follower append, a batch starts before the previous one ended.
    #[error(
        "batch offsets must grow: a batch at offset {base_offset} follows one that ended \
         before offset {previous_next_offset}"
    )]
    NonMonotonicAppend {
        base_offset: Offset,
        previous_next_offset: Offset,
    },

    /// Per request: a batch carries a leader epoch older than the latest one in the log
    /// (a deposed leader appending, or a follower fetching from a stale leader).
    #[error(
        "the batch at offset {base_offset} has leader epoch {epoch}, older than the log's \
         latest epoch {latest_epoch}"
    )]
    LeaderEpochBehind {
        epoch: i32,
        latest_epoch: i32,
        base_offset: Offset,
    },

    /// Per request (a caller bug): the bytes passed to append are not whole, valid v2 batches.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),

    /// Per request: a stored batch passes its CRC but its records cannot be decoded (the producer
    /// sent malformed records; only timestamp lookups and compaction decode records).
    #[error("the records of the batch at offset {base_offset} cannot be decoded: {reason}")]
    UndecodableRecords { base_offset: Offset, reason: String },

    /// Per request: compaction cannot rewrite a batch or segment (its records do not fit the
    /// batch's offsets, a codec failed, or the cleaned segment would outgrow a segment). The log
    /// is left as it was for everything not yet swapped in; compacting it again fails the same way.
    #[error("cannot compact at offset {base_offset}: {reason}")]
    Uncompactable { base_offset: Offset, reason: String },

    /// Fatal: damage recovery cannot repair, such as a gap between segment base offsets.
    #[error("log damaged beyond automatic repair at {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl LogError {
    /// Whether the partition's storage failed, as opposed to one request being unanswerable.
    /// A fatal error means the partition should be taken offline (Kafka's KAFKA_STORAGE_ERROR).
    pub fn is_fatal(&self) -> bool {
        matches!(self, LogError::Io { .. } | LogError::Corrupt { .. })
    }

    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Attaches the path an I/O error happened on, so every `Io` error names its file.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_their_file_and_fatality_is_classified() {
        let failed: std::io::Result<()> = Err(std::io::Error::other("disk on fire"));
        let error = failed
            .at(Path::new("/data/t-0/00000000000000000000.log"))
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("/data/t-0/00000000000000000000.log"),
            "{text}"
        );
        assert!(text.contains("disk on fire"), "{text}");
        assert!(error.is_fatal());
        let out_of_range = LogError::OffsetOutOfRange {
            requested: Offset(9),
            log_start: Offset(0),
            log_end: Offset(5),
        };
        assert!(!out_of_range.is_fatal());
        assert!(out_of_range
            .to_string()
            .contains("offsets 0 up to (not including) 5"));
    }
}
