//! The leader epoch cache, Kafka's `LeaderEpochFileCache` without the file: which leader epoch
//! started at which offset. Pure data and rules; `leader_epoch` persists it and wires it to the
//! [`Log`](crate::Log).
//!
//! Followers use it to find where their log diverged from a new leader's (KIP-101, KIP-279):
//! they ask the leader for the end offset of their latest epoch (OffsetForLeaderEpoch) and
//! truncate to it. Entries are strictly increasing in both epoch and start offset; every rule
//! below keeps that true, the way Kafka's does. [`check_epoch_not_behind`] is the rule appends
//! (as leader and as follower) apply before a batch reaches the cache.

use strom_types::Offset;

use crate::error::LogError;

/// Kafka's `OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `OffsetsForLeaderEpochResponse.UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: Offset = Offset(-1);
/// Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`: a batch that carries no leader epoch.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// (leader epoch, offset of its first batch), ascending in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(i32, Offset)>,
}

impl EpochCache {
    /// A cache holding `entries` as far as they are consistent: each one is assigned in turn, so
    /// an entry that breaks monotonicity drops the earlier ones it conflicts with (as Kafka
    /// does when it loads a checkpoint).
    pub fn from_entries(entries: impl IntoIterator<Item = (i32, Offset)>) -> EpochCache {
        let mut cache = EpochCache::default();
        for (epoch, start_offset) in entries {
            cache.assign(epoch, start_offset);
        }
        cache
    }

    pub fn entries(&self) -> &[(i32, Offset)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`). A batch of the latest
    /// epoch at or after its start changes nothing; anything else becomes the latest entry,
    /// after removing from the end every entry with an epoch or start offset not below the new
    /// one's. Callers refuse appends whose epoch goes backwards before getting here, so that
    /// removal only happens when a checkpoint disagrees with the batches. Returns whether the
    /// cache changed. Negative epochs or offsets are a caller bug.
    pub fn assign(&mut self, epoch: i32, start_offset: Offset) -> bool {
        assert!(
            epoch >= 0 && start_offset.0 >= 0,
            "invalid leader epoch entry ({epoch}, {start_offset})"
        );
        if let Some(&(latest, latest_start)) = self.entries.last() {
            if latest == epoch && start_offset >= latest_start {
                return false;
            }
        }
        let keep = self
            .entries
            .iter()
            .rposition(|&(kept, kept_start)| kept < epoch && kept_start < start_offset)
            .map_or(0, |at| at + 1);
        if keep < self.entries.len() {
            let removed = &self.entries[keep..];
            if removed.len() > 1 || removed[0].1 != start_offset {
                tracing::warn!(epoch, %start_offset, ?removed, "a new leader epoch entry replaces conflicting entries");
            }
            self.entries.truncate(keep);
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Removes the entries starting at or after `end_offset` (Kafka's `truncateFromEnd`), for a
    /// log truncated to `end_offset`. Returns whether anything was removed.
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> bool {
        let keep = self
            .entries
            .partition_point(|&(_, start)| start < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Drops the entries wholly below a new log start and moves the last entry starting at or
    /// below it to start there (Kafka's `truncateFromStart`): the epoch of the first remaining
    /// batch stays known. Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> bool {
        let at_or_below = self
            .entries
            .partition_point(|&(_, start)| start <= start_offset);
        let Some(last_below) = at_or_below.checked_sub(1) else {
            return false;
        };
        let (epoch, start) = self.entries[last_below];
        if last_below == 0 && start == start_offset {
            return false;
        }
        self.entries.drain(..last_below);
        self.entries[0] = (epoch, start_offset);
        true
    }

    /// Removes every entry; returns whether there was one.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset where it
    /// ended, `None` standing for Kafka's (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`).
    /// - the latest epoch: (it, `log_end_offset`), as it is still being written;
    /// - `UNDEFINED_EPOCH`, above the latest epoch, or an empty cache: `None`;
    /// - below the first entry: (`requested`, the first entry's start offset). Kafka's javadoc
    ///   still promises UNDEFINED_EPOCH_OFFSET here (KIP-101's first rule), but its code since
    ///   KIP-279 answers this way, so a follower truncates to where the leader's log begins;
    /// - otherwise: (the largest epoch <= `requested`, start offset of the first epoch above it).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: Offset) -> Option<(i32, Offset)> {
        if requested == UNDEFINED_EPOCH {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self
            .entries
            .partition_point(|&(epoch, _)| epoch <= requested);
        let &(_, end_offset) = self.entries.get(higher)?;
        let epoch = match higher.checked_sub(1) {
            Some(floor) => self.entries[floor].0,
            None => requested,
        };
        Some((epoch, end_offset))
    }
}

/// Refuses a batch whose leader epoch is older than `latest`: leader epochs only grow along a
/// log, so an older one means a deposed leader or a follower fetching from the wrong log.
/// `NO_PARTITION_LEADER_EPOCH` is not an epoch and always passes.
pub(crate) fn check_epoch_not_behind(
    epoch: i32,
    latest: Option<i32>,
    base_offset: Offset,
) -> Result<(), LogError> {
    match latest {
        Some(latest) if epoch != NO_PARTITION_LEADER_EPOCH && epoch < latest => {
            Err(LogError::LeaderEpochBehind {
                epoch,
                latest_epoch: latest,
                base_offset,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache::from_entries(entries.iter().map(|&(e, o)| (e, Offset(o))))
    }

    fn entries(cache: &EpochCache) -> Vec<(i32, i64)> {
        cache.entries().iter().map(|&(e, o)| (e, o.0)).collect()
    }

    #[test]
    fn assign_adds_new_epochs_and_ignores_later_batches_of_the_latest() {
        let mut cache = EpochCache::default();
        assert_eq!(cache.latest_epoch(), None);
        assert!(cache.assign(1, Offset(0)));
        assert!(!cache.assign(1, Offset(5)), "a later batch of epoch 1");
        assert!(cache.assign(3, Offset(10)));
        assert!(!cache.assign(3, Offset(10)));
        assert_eq!(entries(&cache), [(1, 0), (3, 10)]);
        assert_eq!(cache.latest_epoch(), Some(3));
    }

    #[test]
    fn assign_removes_entries_that_conflict_with_the_new_one() {
        // Kafka's maybeTruncateNonMonotonicEntries: epoch or start offset not below the new one.
        let mut lower_epoch = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(lower_epoch.assign(4, Offset(30)));
        assert_eq!(entries(&lower_epoch), [(1, 0), (3, 10), (4, 30)]);
        let mut lower_offset = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(lower_offset.assign(6, Offset(15)));
        assert_eq!(entries(&lower_offset), [(1, 0), (3, 10), (6, 15)]);
        let mut same_epoch_earlier = cache(&[(1, 0), (3, 10)]);
        assert!(same_epoch_earlier.assign(3, Offset(8)));
        assert_eq!(entries(&same_epoch_earlier), [(1, 0), (3, 8)]);
        assert_eq!(entries(&cache(&[(2, 5), (1, 9)])), [(1, 9)]);
    }

    #[test]
    #[should_panic(expected = "invalid leader epoch entry")]
    fn a_negative_epoch_is_a_caller_bug() {
        EpochCache::default().assign(NO_PARTITION_LEADER_EPOCH, Offset(0));
    }

    #[test]
    fn end_offsets_follow_kafkas_end_offset_for() {
        let log_end = Offset(40);
        let empty = EpochCache::default();
        assert_eq!(empty.end_offset_for(0, log_end), None);
        let cache = cache(&[(1, 5), (3, 10), (5, 20)]);
        assert_eq!(cache.end_offset_for(5, log_end), Some((5, log_end)));
        assert_eq!(cache.end_offset_for(3, log_end), Some((3, Offset(20))));
        assert_eq!(cache.end_offset_for(4, log_end), Some((3, Offset(20))));
        assert_eq!(cache.end_offset_for(2, log_end), Some((1, Offset(10))));
        assert_eq!(cache.end_offset_for(1, log_end), Some((1, Offset(10))));
        assert_eq!(
            cache.end_offset_for(0, log_end),
            Some((0, Offset(5))),
            "below the first entry: the requested epoch and the first start offset"
        );
        assert_eq!(cache.end_offset_for(6, log_end), None);
        assert_eq!(cache.end_offset_for(UNDEFINED_EPOCH, log_end), None);
    }

    #[test]
    fn truncating_from_the_end_removes_entries_starting_at_or_after_it() {
        let mut cache = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!cache.truncate_from_end(Offset(21)));
        assert!(cache.truncate_from_end(Offset(20)));
        assert_eq!(entries(&cache), [(1, 0), (3, 10)]);
        assert!(cache.truncate_from_end(Offset(0)));
        assert_eq!(entries(&cache), []);
    }

    #[test]
    fn truncating_from_the_start_moves_the_last_entry_below_it_up() {
        let mut cache = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!cache.truncate_from_start(Offset(0)));
        assert!(cache.truncate_from_start(Offset(4)));
        assert_eq!(entries(&cache), [(1, 4), (3, 10), (5, 20)]);
        assert!(cache.truncate_from_start(Offset(10)));
        assert_eq!(entries(&cache), [(3, 10), (5, 20)]);
        assert!(cache.truncate_from_start(Offset(25)));
        assert_eq!(entries(&cache), [(5, 25)]);
        let mut later = self::cache(&[(2, 30)]);
        assert!(!later.truncate_from_start(Offset(25)), "nothing below 25");
        assert!(cache.clear());
        assert!(!cache.clear());
    }
}
