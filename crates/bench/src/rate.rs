//! When each record of a rate-limited load is due; free of I/O and of clocks.
//!
//! Record `k` (counting from 0) is due `k / rate` seconds after the start. A producer asks how
//! many records are due by now and when a given record will be: arithmetic, not a token
//! bucket, so a producer that falls behind catches up at once instead of losing the time
//! (no coordinated omission in the offered load), and no record is ever created early.

use std::time::Duration;

/// The schedule of a load of `rate` records per second, or of one without a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Records per second; `None` means as fast as the producer can go.
    rate_per_s: Option<f64>,
}

impl Schedule {
    /// A schedule at `rate_per_s` records per second (`None`, zero or a negative rate mean no
    /// limit).
    pub fn new(rate_per_s: Option<f64>) -> Schedule {
        Schedule {
            rate_per_s: rate_per_s.filter(|rate| *rate > 0.0 && rate.is_finite()),
        }
    }

    /// Records per second, or `None` without a limit.
    pub fn rate_per_s(&self) -> Option<f64> {
        self.rate_per_s
    }

    pub fn is_limited(&self) -> bool {
        self.rate_per_s.is_some()
    }

    /// How many records are due `elapsed` after the start: those whose due time is at or
    /// before it. Without a limit, every record is due at once.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let Some(rate) = self.rate_per_s else {
            return u64::MAX;
        };
        // An estimate from floating point, then corrected against `time_of` so that the two
        // always agree, whatever the rounding.
        let mut count = (elapsed.as_secs_f64() * rate).floor() as u64 + 1;
        while count > 0 && self.time_of(count - 1) > elapsed {
            count -= 1;
        }
        while self.time_of(count) <= elapsed {
            count += 1;
        }
        count
    }

    /// When record `index` is due, after the start (zero without a limit): the first whole
    /// nanosecond at or after `index / rate` seconds.
    pub fn time_of(&self, index: u64) -> Duration {
        match self.rate_per_s {
            None => Duration::ZERO,
            Some(rate) => Duration::from_nanos((index as f64 * 1e9 / rate).ceil() as u64),
        }
    }

    /// Splits the schedule evenly among `lanes` producers: each gets `rate / lanes`.
    pub fn share(&self, lanes: usize) -> Schedule {
        Schedule {
            rate_per_s: self.rate_per_s.map(|rate| rate / lanes.max(1) as f64),
        }
    }
}

/// Splits `total` records among `lanes` as evenly as possible (the first lanes take one more).
pub fn split_count(total: u64, lanes: usize) -> Vec<u64> {
    let lanes = lanes.max(1) as u64;
    (0..lanes)
        .map(|lane| total / lanes + u64::from(lane < total % lanes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fall_due_at_the_rate() {
        let schedule = Schedule::new(Some(1_000.0));
        assert_eq!(
            schedule.due(Duration::ZERO),
            1,
            "the first record is due at the start"
        );
        assert_eq!(schedule.due(Duration::from_micros(999)), 1);
        assert_eq!(schedule.due(Duration::from_millis(1)), 2);
        assert_eq!(schedule.due(Duration::from_secs(1)), 1_001);
        assert_eq!(schedule.due(Duration::from_secs(10)), 10_001);
        assert_eq!(schedule.time_of(0), Duration::ZERO);
        assert_eq!(schedule.time_of(2_500), Duration::from_millis(2_500));
    }

    #[test]
    fn due_and_time_of_agree_at_every_boundary() {
        for rate in [1.0, 3.0, 7.0, 1_000.0, 10_000.0, 333_333.0] {
            let schedule = Schedule::new(Some(rate));
            for index in [0u64, 1, 2, 9, 10, 999, 1_000, 123_457] {
                let at = schedule.time_of(index);
                assert!(
                    schedule.due(at) > index,
                    "rate {rate}: record {index} is due at its time"
                );
                if let Some(before) = at.checked_sub(Duration::from_nanos(1)) {
                    assert!(
                        schedule.due(before) <= index,
                        "rate {rate}: record {index} not early"
                    );
                }
            }
        }
    }

    #[test]
    fn a_late_producer_finds_every_missed_record_due() {
        // Behind by a whole second at 10,000/s: all 10,000 missed records are due now.
        let schedule = Schedule::new(Some(10_000.0));
        assert_eq!(
            schedule.due(Duration::from_secs(2)) - schedule.due(Duration::from_secs(1)),
            10_000
        );
    }

    #[test]
    fn no_limit_means_everything_is_due() {
        for rate in [None, Some(0.0), Some(-5.0), Some(f64::INFINITY)] {
            let schedule = Schedule::new(rate);
            assert!(!schedule.is_limited());
            assert_eq!(schedule.due(Duration::ZERO), u64::MAX);
            assert_eq!(schedule.time_of(1_000_000), Duration::ZERO);
        }
    }

    #[test]
    fn shares_add_up() {
        let schedule = Schedule::new(Some(1_000.0)).share(4);
        assert_eq!(schedule.due(Duration::from_secs(1)), 251);
        assert_eq!(split_count(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split_count(3, 4), vec![1, 1, 1, 0]);
        assert_eq!(split_count(7, 1), vec![7]);
        assert_eq!(split_count(7, 0), vec![7]);
    }
}
