//! The leader's view of its followers: how far each has fetched (it holds everything below its
//! fetch offset on disk) and when it was last caught up. Pure: the partition calls it under its
//! store lock with the time and the log end; nothing here does I/O or reads a clock.
//!
//! Kafka's rules: the high watermark is the smallest log end among the in-sync replicas; a
//! follower whose fetch reaches the leader's log end is caught up now, and one whose fetch
//! reaches the log end the leader had at its previous fetch was caught up then; a follower not
//! caught up for `replica.lag.time.max.ms` leaves the ISR; one outside the ISR that reaches the
//! high watermark rejoins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strom_types::{BrokerId, Offset};

/// A follower as the leader sees it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The follower's log end (its last fetch offset). -1 until it fetches in this epoch.
    log_end: Offset,
    /// The log start its last fetch reported (the low watermark's part). -1 until it fetches
    /// in this epoch.
    log_start: Offset,
    /// The last time it had caught up with the leader's log end.
    caught_up_at: Instant,
    /// When it last fetched, and the leader's log end then.
    fetched_at: Instant,
    leader_end_at_fetch: Offset,
}

impl Follower {
    fn fresh(now: Instant) -> Follower {
        Follower {
            log_end: Offset(-1),
            log_start: Offset(-1),
            caught_up_at: now,
            fetched_at: now,
            leader_end_at_fetch: Offset(-1),
        }
    }
}

/// What a follower's fetch says of its log: where it ends (the fetch offset) and starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchedAt {
    pub(crate) fetch_offset: Offset,
    pub(crate) log_start: Offset,
}

/// Every follower's progress in the current leader epoch, and whether an ISR change is on its
/// way to the controller.
#[derive(Debug, Default)]
pub(crate) struct FollowerProgress {
    followers: HashMap<BrokerId, Follower>,
    pub(crate) isr_change_in_flight: bool,
}

impl FollowerProgress {
    /// Starts a leader epoch: every other replica counted as caught up now, none fetched yet.
    pub(crate) fn start_leading(&mut self, replicas: &[BrokerId], local: BrokerId, now: Instant) {
        self.followers.clear();
        for &replica in replicas.iter().filter(|replica| **replica != local) {
            self.followers.insert(replica, Follower::fresh(now));
        }
    }

    pub(crate) fn stop_leading(&mut self) {
        self.followers.clear();
    }

    /// Records a fetch at `fetch_offset` from a follower whose log starts at `log_start`,
    /// while the leader's log ends at `leader_end`. Returns whether the follower's log start
    /// changed (a DeleteRecords may be waiting for it).
    pub(crate) fn note_fetch(
        &mut self,
        follower: BrokerId,
        fetch: FetchedAt,
        leader_end: Offset,
        now: Instant,
    ) -> bool {
        let FetchedAt {
            fetch_offset,
            log_start,
        } = fetch;
        let entry = self
            .followers
            .entry(follower)
            .or_insert_with(|| Follower::fresh(now));
        if fetch_offset >= leader_end {
            entry.caught_up_at = now;
        } else if fetch_offset >= entry.leader_end_at_fetch && entry.leader_end_at_fetch.0 >= 0 {
            entry.caught_up_at = entry.caught_up_at.max(entry.fetched_at);
        }
        entry.log_end = fetch_offset;
        entry.fetched_at = now;
        entry.leader_end_at_fetch = leader_end;
        std::mem::replace(&mut entry.log_start, log_start) != log_start
    }

    /// Kafka's low watermark: the smallest log start among the leader (`leader_start`) and
    /// its followers on live brokers (`alive`); a follower that has not fetched in this epoch
    /// counts as -1. A DeleteRecords is done once it reaches the offset asked for.
    pub(crate) fn low_watermark(
        &self,
        replicas: &[BrokerId],
        local: BrokerId,
        leader_start: Offset,
        alive: impl Fn(BrokerId) -> bool,
    ) -> Offset {
        replicas
            .iter()
            .filter(|replica| **replica != local && alive(**replica))
            .map(|replica| {
                self.followers
                    .get(replica)
                    .map_or(Offset(-1), |follower| follower.log_start)
            })
            .fold(leader_start, Offset::min)
    }

    /// The smallest log end among the ISR, the leader's being `leader_end`.
    pub(crate) fn high_watermark_candidate(
        &self,
        isr: &[BrokerId],
        local: BrokerId,
        leader_end: Offset,
    ) -> Offset {
        isr.iter()
            .filter(|member| **member != local)
            .map(|member| {
                self.followers
                    .get(member)
                    .map_or(Offset(-1), |follower| follower.log_end)
            })
            .fold(leader_end, Offset::min)
    }

    /// The ISR members other than the leader that have not caught up within `lag_max`.
    pub(crate) fn lagging(
        &self,
        isr: &[BrokerId],
        local: BrokerId,
        now: Instant,
        lag_max: Duration,
    ) -> Vec<BrokerId> {
        isr.iter()
            .copied()
            .filter(|member| *member != local)
            .filter(|member| {
                self.followers
                    .get(member)
                    .is_none_or(|follower| now.duration_since(follower.caught_up_at) > lag_max)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: BrokerId = BrokerId(1);

    fn at_offset(fetch_offset: i64) -> FetchedAt {
        FetchedAt {
            fetch_offset: Offset(fetch_offset),
            log_start: Offset(0),
        }
    }
    const ALL: [BrokerId; 3] = [BrokerId(1), BrokerId(2), BrokerId(3)];

    #[test]
    fn the_candidate_is_the_smallest_log_end_in_the_isr() {
        let now = Instant::now();
        let mut progress = FollowerProgress::default();
        progress.start_leading(&ALL, LEADER, now);
        let hw = |p: &FollowerProgress, isr: &[BrokerId]| {
            p.high_watermark_candidate(isr, LEADER, Offset(10))
        };
        assert_eq!(hw(&progress, &ALL), Offset(-1), "nobody fetched yet");
        progress.note_fetch(BrokerId(2), at_offset(7), Offset(10), now);
        progress.note_fetch(BrokerId(3), at_offset(4), Offset(10), now);
        assert_eq!(hw(&progress, &ALL), Offset(4));
        assert_eq!(hw(&progress, &ALL[..2]), Offset(7), "3 is outside the ISR");
        assert_eq!(hw(&progress, &ALL[..1]), Offset(10), "a leader alone");
    }

    #[test]
    fn the_low_watermark_is_the_smallest_log_start_among_live_replicas() {
        let now = Instant::now();
        let mut progress = FollowerProgress::default();
        progress.start_leading(&ALL, LEADER, now);
        let all_alive = |_| true;
        assert_eq!(
            progress.low_watermark(&ALL, LEADER, Offset(5), all_alive),
            Offset(-1),
            "nobody fetched yet"
        );
        let started_at = |log_start| FetchedAt {
            fetch_offset: Offset(10),
            log_start: Offset(log_start),
        };
        assert!(progress.note_fetch(BrokerId(2), started_at(5), Offset(10), now));
        assert!(!progress.note_fetch(BrokerId(2), started_at(5), Offset(10), now));
        progress.note_fetch(BrokerId(3), started_at(2), Offset(10), now);
        assert_eq!(
            progress.low_watermark(&ALL, LEADER, Offset(5), all_alive),
            Offset(2)
        );
        let three_dead = |broker| broker != BrokerId(3);
        assert_eq!(
            progress.low_watermark(&ALL, LEADER, Offset(5), three_dead),
            Offset(5)
        );
    }

    #[test]
    fn followers_that_do_not_catch_up_within_the_lag_are_lagging() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let lag = Duration::from_millis(100);
        let mut progress = FollowerProgress::default();
        progress.start_leading(&ALL, LEADER, start);
        // 2 keeps reaching the log end seen at its previous fetch; 3 stays behind.
        progress.note_fetch(BrokerId(2), at_offset(10), Offset(10), at(0));
        progress.note_fetch(BrokerId(3), at_offset(2), Offset(10), at(0));
        progress.note_fetch(BrokerId(2), at_offset(12), Offset(12), at(80));
        progress.note_fetch(BrokerId(3), at_offset(3), Offset(12), at(80));
        progress.note_fetch(BrokerId(2), at_offset(12), Offset(14), at(150));
        progress.note_fetch(BrokerId(3), at_offset(4), Offset(14), at(150));
        assert_eq!(
            progress.lagging(&ALL, LEADER, at(150), lag),
            vec![BrokerId(3)]
        );
    }
}
