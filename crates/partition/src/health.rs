//! Whether the partition's writes are failing for want of storage (a full disk, an I/O error
//! on write), so that such a spell is logged once when it starts and once when it ends rather
//! than on every produce request a client retries meanwhile.
//!
//! A failed write is not a failed fsync. The log cuts off whatever part of the write reached the
//! file, the append is answered KAFKA_STORAGE_ERROR, nothing of it was acknowledged, and the
//! log, the producer state and the high watermark are as they were before it. So the partition
//! stays writable, and the first append that finds room again succeeds. A failed fsync instead
//! poisons the partition (see `durability`): pages the kernel could not write may be gone.

use std::sync::atomic::{AtomicBool, Ordering};

use strom_log::LogError;

use strom_types::{PartitionIndex, TopicName};

/// See the module docs. Touched by whoever appends (under the store lock, though it does not
/// rely on it); costs one atomic load per successful append.
#[derive(Default)]
pub(crate) struct WriteHealth {
    failing: AtomicBool,
}

impl WriteHealth {
    /// Notes a failed write; logs it if it starts a spell of failures.
    pub(crate) fn failed(&self, topic: &TopicName, index: PartitionIndex, error: &LogError) {
        if !error.is_fatal() {
            return;
        }
        if self.failing.swap(true, Ordering::AcqRel) {
            tracing::debug!(topic = %topic, partition = %index, %error, "append failed again");
        } else {
            tracing::error!(topic = %topic, partition = %index, %error, "append failed; the partition takes writes again once the disk has room (further failures are not logged)");
        }
    }

    /// Notes a successful write; logs the end of a spell of failures.
    pub(crate) fn succeeded(&self, topic: &TopicName, index: PartitionIndex) {
        if self.failing.load(Ordering::Acquire) && self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(topic = %topic, partition = %index, "appends succeed again");
        }
    }
}
