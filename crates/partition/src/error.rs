//! The partition's one error type, and the one mapping from log errors to Kafka error codes.

use strom_log::LogError;
use strom_types::{ErrorCode, LeaderEpoch};

/// Why a partition operation failed; [`PartitionError::code`] is what a client is told.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("broker {0} is not a replica of this partition")]
    NotAReplica(i32),
    #[error("the request's leader epoch {requested} is older than the partition's {current}")]
    FencedLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("the request's leader epoch {requested} is newer than the partition's {current}")]
    UnknownLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("the ISR has {isr} replica(s), fewer than min.insync.replicas ({min})")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error("the ISR shrank below min.insync.replicas ({min}) after the append")]
    NotEnoughReplicasAfterAppend { min: i32 },
    #[error("leadership moved before the records were replicated")]
    LeadershipMoved,
    /// DeleteRecords past the high watermark (or at a negative offset).
    #[error(
        "cannot delete records up to offset {requested}: the high watermark is {high_watermark}"
    )]
    BeyondHighWatermark {
        requested: strom_types::Offset,
        high_watermark: strom_types::Offset,
    },
    #[error("the in-sync replicas did not all confirm the records in time")]
    ReplicationTimedOut,
    /// An idempotent producer's batch was refused (sequence, epoch).
    #[error("{message}")]
    Producer { code: ErrorCode, message: String },
    /// An fsync of this partition failed earlier: the kernel may have dropped the pages it
    /// could not write, so nothing more is acknowledged until a restart recovers the log.
    #[error("an fsync of this partition failed; it acknowledges nothing more until a restart")]
    StoragePoisoned,
    /// The leader answered a follower's fetch with an error the next metadata change resolves.
    #[error("the leader refused the fetch with {0}")]
    FetchRefused(ErrorCode),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl PartitionError {
    /// The Kafka error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            PartitionError::NotLeader | PartitionError::NotAReplica(_) => {
                ErrorCode::NotLeaderOrFollower
            }
            PartitionError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
            PartitionError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend { .. } => {
                ErrorCode::NotEnoughReplicasAfterAppend
            }
            PartitionError::LeadershipMoved => ErrorCode::NotLeaderOrFollower,
            PartitionError::ReplicationTimedOut => ErrorCode::RequestTimedOut,
            PartitionError::BeyondHighWatermark { .. } => ErrorCode::OffsetOutOfRange,
            PartitionError::Producer { code, .. } => *code,
            PartitionError::StoragePoisoned => ErrorCode::KafkaStorageError,
            PartitionError::FetchRefused(code) => *code,
            PartitionError::Log(error) => log_error_code(error),
        }
    }

    /// Whether the partition's storage failed (as opposed to one request being refused).
    pub fn is_fatal(&self) -> bool {
        match self {
            PartitionError::StoragePoisoned => true,
            PartitionError::Log(error) => error.is_fatal(),
            _ => false,
        }
    }
}

/// The Kafka error code for a log error: the one place this mapping lives.
pub fn log_error_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::Io { .. } | LogError::Corrupt { .. } => ErrorCode::KafkaStorageError,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::RecordBatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
        LogError::InvalidBatch(_) | LogError::UndecodableRecords { .. } => {
            ErrorCode::CorruptMessage
        }
        LogError::LeaderEpochBehind { .. } => ErrorCode::FencedLeaderEpoch,
        LogError::OffsetOverflow { .. } => ErrorCode::InvalidRecord,
        LogError::OffsetBehindLogEnd { .. } | LogError::NonMonotonicAppend { .. } => {
            ErrorCode::OffsetOutOfRange
        }
        LogError::Uncompactable { .. } => ErrorCode::UnknownServerError,
    }
}
