//! The bench's one error type. Every variant says what failed in words a user can act on.

use strom_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A request to the broker failed, or the broker answered with a Kafka error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An option or a combination of options that cannot work.
    #[error("{0}")]
    InvalidArgument(String),
    /// A record batch could not be compressed, decompressed or walked.
    #[error("record batch: {0}")]
    Codec(String),
    /// The broker's answers do not add up (a missing partition, records lost in transit).
    #[error("{0}")]
    Broker(String),
    /// A local file, socket or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The suite could not start or watch its broker, or a helper it runs failed.
    #[error("{0}")]
    Suite(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}
