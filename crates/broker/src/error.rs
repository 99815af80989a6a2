//! The broker's one error type: a Kafka error code for the client and a message that says what
//! to do. Errors from the partition and the log convert with their own code mapping
//! (`strom_partition::log_error_code` is the only map from log errors to codes).

use strom_log::LogError;
use strom_partition::PartitionError;
use strom_types::ErrorCode;

/// Why a request (or one partition or topic of it) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct BrokerError {
    pub code: ErrorCode,
    pub message: String,
    /// The record (its index in the partition's records) a produce was refused for, reported
    /// in Produce's `record_errors`.
    pub record_index: Option<usize>,
}

impl BrokerError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> BrokerError {
        BrokerError {
            code,
            message: message.into(),
            record_index: None,
        }
    }

    pub fn at_record(mut self, index: usize) -> BrokerError {
        self.record_index = Some(index);
        self
    }
}

impl From<PartitionError> for BrokerError {
    fn from(error: PartitionError) -> BrokerError {
        BrokerError::new(error.code(), error.to_string())
    }
}

impl From<LogError> for BrokerError {
    fn from(error: LogError) -> BrokerError {
        PartitionError::from(error).into()
    }
}
