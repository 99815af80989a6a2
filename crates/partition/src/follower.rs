//! The follower's side of replication: where to fetch from, and applying what the leader
//! answered. Fetched batches are stored exactly as the leader has them and fsynced before the
//! next fetch, so the fetch offset a follower reports tells the leader what it holds on disk.

use bytes::{Bytes, BytesMut};
use strom_types::{ErrorCode, LeaderEpoch, Offset};

use crate::error::PartitionError;
use crate::leader::FollowerPosition;
use crate::partition::Partition;

/// One partition's part of the leader's fetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedData {
    pub error: ErrorCode,
    /// -1 when the leader did not say.
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    /// KIP-320: the leader's end of the follower's last fetched epoch, when it diverges.
    pub diverging_epoch: Option<(LeaderEpoch, Offset)>,
    pub records: Option<Bytes>,
}

/// What applying a fetch answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Records appended (and fsynced), or nothing new: fetch again.
    Fetched,
    /// The log was truncated or restarted to match the leader: fetch again from its new end.
    Truncated,
    /// The partition's leader epoch moved on while the fetch was out: refetch.
    Stale,
}

impl Partition {
    /// Where this follower fetches from in `leader_epoch`, or `None` when it must not fetch
    /// (an fsync failed: what it reports would not be on disk).
    pub fn follower_position(&self) -> Option<(FollowerPosition, Offset, LeaderEpoch)> {
        if self.sync.is_poisoned() {
            return None;
        }
        let leader_epoch = self.leader_epoch();
        let store = self.store.lock();
        let position = FollowerPosition {
            fetch_offset: store.log.log_end_offset(),
            last_fetched_epoch: store.log.latest_epoch().map(LeaderEpoch),
            log_start_offset: store.log.log_start_offset(),
        };
        Some((position, store.log.log_start_offset(), leader_epoch))
    }

    /// Applies one fetch answer made in `fetched_in` (the leader epoch the fetch named): on a
    /// diverging epoch truncates the divergent tail; on OFFSET_OUT_OF_RANGE restarts at the
    /// leader's log start or truncates to its high watermark; otherwise appends and fsyncs the
    /// records and takes the leader's high watermark. Blocking (fsync): run it off the runtime.
    pub fn apply_fetched(
        &self,
        fetched_in: LeaderEpoch,
        data: FetchedData,
    ) -> Result<Applied, PartitionError> {
        // Held throughout, so the partition cannot become leader (and take appends of its own)
        // while a fetch from the old leader is being written (Kafka's leaderIsrUpdateLock).
        let state = self.state.read();
        if state.leader_epoch != fetched_in || state.is_led_by(self.local()) {
            return Ok(Applied::Stale);
        }
        match data.error {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => return self.recover_out_of_range(&data),
            other => return Err(PartitionError::FetchRefused(other)),
        }
        if let Some((epoch, end)) = data.diverging_epoch {
            self.truncate_divergent(epoch, end)?;
            return Ok(Applied::Truncated);
        }
        if let Some(records) = data.records.filter(|records| !records.is_empty()) {
            self.append_fetched(&records)?;
        }
        if data.high_watermark.0 >= 0 {
            let store = self.store.lock();
            if self.set_follower_high_watermark(&store, data.high_watermark) {
                drop(store);
                self.visible_waiters.wake_all();
            }
        }
        self.follow_log_start(data.log_start_offset)?;
        drop(state);
        Ok(Applied::Fetched)
    }

    /// Truncates the log to `offset` (and rebuilds producer state from what is left); the high
    /// watermark follows it down. Durable when it returns.
    pub fn truncate_to(&self, offset: Offset) -> Result<(), PartitionError> {
        let mut store = self.store.lock();
        store.truncate_to(offset)?;
        let end = store.log.log_end_offset();
        if self.high_watermark() > end {
            self.set_follower_high_watermark(&store, end);
        }
        Ok(())
    }

    fn append_fetched(&self, records: &Bytes) -> Result<(), PartitionError> {
        let mut owned = BytesMut::from(&records[..]);
        // A fetch spanning segments is written one segment at a time, so a failed write (a full
        // disk at a roll) may leave the first runs in the log: producer state records each run
        // as it is written, and the aborted transactions it ends are indexed in its segment.
        let appended = {
            let high_watermark = self.high_watermark();
            self.store
                .lock()
                .append_as_follower(&mut owned, high_watermark)
        };
        match &appended {
            Ok(_) => self.write_health.succeeded(self.topic(), self.index()),
            Err(error) => self.write_health.failed(self.topic(), self.index(), error),
        }
        // On disk before the next fetch tells the leader we have it, whatever part was written.
        self.sync()?;
        appended?;
        crate::append::debug_assert_crcs(&owned);
        self.log_end_waiters.wake_all();
        Ok(())
    }

    fn recover_out_of_range(&self, data: &FetchedData) -> Result<Applied, PartitionError> {
        let mut store = self.store.lock();
        let log_end = store.log.log_end_offset();
        if data.log_start_offset > log_end {
            // The leader deleted what this follower needs next: start over at its log start.
            let start = data.log_start_offset;
            tracing::info!(topic = %self.topic(), partition = %self.index(), %start, "follower behind the leader's log start; restarting its log there");
            store.restart_at(start)?;
            self.set_follower_high_watermark(&store, start);
            return Ok(Applied::Truncated);
        }
        if data.high_watermark.0 >= 0 {
            // Ahead of the leader without a diverging epoch to say where: keep what every ISR
            // member had (the high watermark) and fetch the rest again.
            let to = data.high_watermark;
            tracing::warn!(topic = %self.topic(), partition = %self.index(), %to, "follower ahead of the leader; truncating to its high watermark");
            drop(store);
            self.truncate_to(to)?;
            return Ok(Applied::Truncated);
        }
        Err(PartitionError::FetchRefused(ErrorCode::OffsetOutOfRange))
    }

    fn truncate_divergent(
        &self,
        leader_epoch: LeaderEpoch,
        leader_end: Offset,
    ) -> Result<(), PartitionError> {
        let to = {
            let store = self.store.lock();
            match store.log.end_offset_for_epoch(leader_epoch.0) {
                Some((epoch, end)) if epoch == leader_epoch.0 => end.min(leader_end),
                Some((_, end)) => end,
                None => leader_end.max(Offset(0)).min(store.log.log_end_offset()),
            }
        };
        tracing::info!(topic = %self.topic(), partition = %self.index(), leader_epoch = %leader_epoch, %leader_end, truncate_to = %to, "truncating the follower's divergent tail");
        self.truncate_to(to)
    }
}
