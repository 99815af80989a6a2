//! The leader's side of a follower's fetch: the divergence check (KIP-320), the follower's
//! progress, the high watermark it may move, and a rejoin to the ISR it may earn. A fetch that
//! reports a new log start wakes the visible waiters too: a DeleteRecords may wait for it.

use std::time::Instant;

use strom_types::{BrokerId, LeaderEpoch, Offset};

use crate::error::PartitionError;
use crate::partition::Partition;
use crate::progress::FetchedAt;
use crate::read::{PartitionRead, ReadBound};

/// Where a follower fetches from: its log end, and the epoch of its last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub fetch_offset: Offset,
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// Where the follower's log starts (the leader's low watermark counts it, for
    /// DeleteRecords); -1 when it did not say (Fetch before v5).
    pub log_start_offset: Offset,
}

/// What the leader answers a follower's fetch with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerRead {
    /// The follower's last fetched epoch ends at `end_offset` here, before its fetch offset (or
    /// is an epoch this log does not have): it must truncate first.
    Diverging {
        epoch: LeaderEpoch,
        end_offset: Offset,
        high_watermark: Offset,
        log_start_offset: Offset,
    },
    /// Records from the fetch offset up to the log end.
    Records(PartitionRead),
    /// The fetch offset is outside this log.
    OutOfRange {
        high_watermark: Offset,
        log_start_offset: Offset,
    },
}

impl Partition {
    /// Answers follower `follower`'s fetch at `position` with up to `max_bytes`, after noting
    /// its progress (which may move the high watermark and wake consumers and acks=all
    /// produces) and proposing its return to the ISR if it caught up from outside.
    pub fn read_for_follower(
        &self,
        follower: BrokerId,
        position: FollowerPosition,
        max_bytes: usize,
        now: Instant,
    ) -> Result<FollowerRead, PartitionError> {
        let state = self.state.read();
        crate::partition::check_leader(&state, self.local(), None)?;
        if !state.replicas.contains(&follower) {
            return Err(PartitionError::NotAReplica(follower.0));
        }
        let mut store = self.store.lock();
        let (start, end) = (store.log.log_start_offset(), store.log.log_end_offset());
        let fetch_offset = position.fetch_offset;
        if let Some(last_epoch) = position.last_fetched_epoch {
            if let Some((epoch, epoch_end)) = store.log.end_offset_for_epoch(last_epoch.0) {
                if epoch != last_epoch.0 || epoch_end < fetch_offset {
                    return Ok(FollowerRead::Diverging {
                        epoch: LeaderEpoch(epoch),
                        end_offset: epoch_end,
                        high_watermark: self.high_watermark(),
                        log_start_offset: start,
                    });
                }
            }
        }
        if fetch_offset < start || fetch_offset > end {
            return Ok(FollowerRead::OutOfRange {
                high_watermark: self.high_watermark(),
                log_start_offset: start,
            });
        }
        let fetched_at = FetchedAt {
            fetch_offset,
            log_start: position.log_start_offset,
        };
        let log_start_moved = store.progress.note_fetch(follower, fetched_at, end, now);
        let moved = self.advance_high_watermark(&state, &store) || log_start_moved;
        let rejoins = !state.isr.contains(&follower) && fetch_offset >= self.high_watermark();
        if rejoins {
            let mut isr = state.isr.clone();
            isr.push(follower);
            self.propose_isr(&state, &mut store, isr);
        }
        drop(store);
        drop(state);
        if moved {
            self.visible_waiters.wake_all();
        }
        let read = self.read(fetch_offset, max_bytes, ReadBound::LogEnd)?;
        Ok(FollowerRead::Records(read))
    }
}
