//! Strom's vocabulary, shared by every other crate and free of I/O.
//!
//! - [`ids`]: one type per kind of id or offset, so an offset is never added to an epoch.
//! - [`error_code`]: the Kafka wire error codes, in one table, apart from internal errors.
//! - [`limits`]: every bound the broker enforces, with its unit in its name.
//! - [`topic`]: topic-name validation with Kafka's rules.
//! - [`security`]: ACL bindings and SCRAM credentials, with Kafka's wire codes.

pub mod error_code;
pub mod ids;
pub mod limits;
pub mod security;
pub mod topic;

pub use error_code::ErrorCode;
pub use ids::{
    BrokerId, CoordinatorEpoch, LeaderEpoch, Offset, PartitionIndex, ProducerEpoch, ProducerId,
    TimestampMs,
};
pub use topic::{TopicName, TopicNameError};
