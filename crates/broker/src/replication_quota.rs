//! Replication throttles (KIP-73), as `kafka-reassign-partitions.sh --throttle` sets them: a
//! leader sends at most `leader.replication.throttled.rate` bytes per second to the replicas
//! its topics list in `leader.replication.throttled.replicas`, and a follower fetches at most
//! `follower.replication.throttled.rate` for those listed in
//! `follower.replication.throttled.replicas`, so that moving partitions leaves bandwidth to
//! clients and to the replicas already in sync.
//!
//! As in Kafka, only replicas out of the ISR are held back (one that is in sync is never
//! throttled, whatever the lists say), and a throttle holds a partition back only while the
//! rate measured over the quota window is above the limit: the leader answers its fetch
//! without records, the follower leaves it out of its next fetch. The bytes sent (fetched) for
//! throttled replicas are what the rate counts. One rate per direction per broker, measured
//! like the client quotas (`quotas::Rate`).

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::quotas::{throttle_time, Rate};

/// A limit at or above this is no limit (Kafka's default is `Long.MAX_VALUE`).
const UNLIMITED: u64 = i64::MAX as u64;

/// One direction's rate of throttled replication bytes on this broker.
#[derive(Debug, Default)]
pub struct ReplicationQuota {
    rate: Mutex<Rate>,
}

impl ReplicationQuota {
    /// Under a `limit` of bytes per second: `None` when it is no limit (nothing is throttled,
    /// nothing need be looked up or counted), else whether the bytes recorded lately exceed it.
    pub fn exceeded(&self, limit: u64, now: Instant) -> Option<bool> {
        if limit >= UNLIMITED {
            return None;
        }
        let (rate, _) = self.rate.lock().measure(now);
        Some(rate > limit as f64)
    }

    /// How long until the rate is back at `limit`.
    pub fn wait(&self, limit: u64, now: Instant) -> Duration {
        if limit >= UNLIMITED {
            return Duration::ZERO;
        }
        let (rate, window) = self.rate.lock().measure(now);
        throttle_time(rate, limit as f64, window)
    }

    /// Counts `bytes` sent (or fetched) for throttled replicas.
    pub fn record(&self, bytes: usize, now: Instant) {
        if bytes > 0 {
            self.rate.lock().record(bytes as f64, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_holds_back_only_past_its_limit() {
        let quota = ReplicationQuota::default();
        let now = Instant::now();
        assert_eq!(quota.exceeded(1000, now), Some(false));
        quota.record(500, now);
        let within = quota.exceeded(1000, now);
        assert_eq!(
            within,
            Some(false),
            "500 B in the first second is within 1000 B/s"
        );
        quota.record(1500, now);
        assert_eq!(quota.exceeded(1000, now), Some(true));
        assert!(quota.wait(1000, now) > Duration::ZERO);
        assert_eq!(
            quota.exceeded(u64::MAX, now),
            None,
            "the default is no limit"
        );
        assert_eq!(quota.exceeded(UNLIMITED, now), None);
    }
}
