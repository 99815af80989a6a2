//! The log start offset across the replicas: DeleteRecords on the leader
//! ([`Partition::delete_records`]), the low watermark it waits for (Kafka's
//! `lowWatermarkIfLeader`: the smallest log start among the live replicas, learnt from the
//! followers' fetches) and a follower taking its leader's log start from every fetch answer
//! (Kafka's `maybeIncrementLogStartOffset` with `LeaderOffsetIncremented`).
//!
//! A log start never passes the high watermark: the leader refuses a DeleteRecords beyond it
//! (OFFSET_OUT_OF_RANGE, as Kafka), and a follower caps the leader's at its own.

use strom_types::{BrokerId, Offset};

use crate::error::PartitionError;
use crate::partition::{check_leader, Partition};
use crate::waiters::Waiter;

/// What a DeleteRecords did on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsDeleted {
    /// The log start asked for (the high watermark when the request said -1).
    pub requested: Offset,
    /// The smallest log start among the live replicas right after: the request is done once
    /// it reaches `requested`.
    pub low_watermark: Offset,
}

impl Partition {
    /// DeleteRecords: moves this leader's log start up to `offset` (`None`: the high
    /// watermark), deleting the segments wholly below it. Beyond the high watermark, or
    /// negative, it is OFFSET_OUT_OF_RANGE. `alive` says which brokers count for the low
    /// watermark (Kafka counts the replicas on live brokers).
    pub fn delete_records(
        &self,
        offset: Option<Offset>,
        alive: impl Fn(BrokerId) -> bool,
    ) -> Result<RecordsDeleted, PartitionError> {
        let state = self.state.read();
        check_leader(&state, self.local(), None)?;
        let mut store = self.store.lock();
        let high_watermark = self.high_watermark().min(store.log.log_end_offset());
        let requested = offset.unwrap_or(high_watermark);
        if requested.0 < 0 || requested > high_watermark {
            return Err(PartitionError::BeyondHighWatermark {
                requested,
                high_watermark,
            });
        }
        store.advance_log_start(requested)?;
        let leader_start = store.log.log_start_offset();
        let low_watermark =
            (store.progress).low_watermark(&state.replicas, self.local(), leader_start, alive);
        Ok(RecordsDeleted {
            requested,
            low_watermark,
        })
    }

    /// The smallest log start among this leader and its followers on live brokers.
    pub fn low_watermark(
        &self,
        alive: impl Fn(BrokerId) -> bool,
    ) -> Result<Offset, PartitionError> {
        let state = self.state.read();
        check_leader(&state, self.local(), None)?;
        let store = self.store.lock();
        let leader_start = store.log.log_start_offset();
        Ok((store.progress).low_watermark(&state.replicas, self.local(), leader_start, alive))
    }

    /// Waits until the low watermark reaches `required` (every live replica deleted the
    /// records below it; Kafka's DelayedDeleteRecords) and returns it, or fails when leadership
    /// moves or `deadline` passes (REQUEST_TIMED_OUT).
    pub async fn wait_low_watermark(
        &self,
        required: Offset,
        alive: impl Fn(BrokerId) -> bool,
        deadline: tokio::time::Instant,
    ) -> Result<Offset, PartitionError> {
        let waiter = Waiter::new();
        self.visible_waiters.register(&waiter);
        loop {
            let low_watermark = self.low_watermark(&alive)?;
            if low_watermark >= required {
                return Ok(low_watermark);
            }
            tokio::select! {
                () = waiter.woken() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(PartitionError::ReplicationTimedOut);
                }
            }
        }
    }

    /// On a follower, after a fetch answer: moves the log start up to the leader's, capped at
    /// this replica's high watermark (-1 from the leader means it did not say).
    pub(crate) fn follow_log_start(&self, leader_start: Offset) -> Result<(), PartitionError> {
        let mut store = self.store.lock();
        let to = leader_start
            .min(self.high_watermark())
            .min(store.log.log_end_offset());
        if to > store.log.log_start_offset() {
            store.advance_log_start(to)?;
        }
        Ok(())
    }
}
