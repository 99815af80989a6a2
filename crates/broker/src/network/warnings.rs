//! Warnings a client can cause (a malformed frame, a refused connection) are logged at most
//! once per interval, with the count of those held back since the last one: a client sending
//! ~1,800 malformed frames a second once made `strom server` write 34 MB of WARN lines in two
//! minutes. What they count is in `strom_requests_total{error="MALFORMED_FRAME"}` as well.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// At most one client-caused warning per this interval, whichever connection caused it.
const CLIENT_WARNING_INTERVAL: Duration = Duration::from_secs(1);

static CLIENT_WARNINGS: parking_lot::Mutex<Option<Throttle>> = parking_lot::Mutex::new(None);

/// Logs a warning a client caused, unless one was logged less than a second ago (then it is
/// counted and the next one says how many were held back).
pub fn client_warning(peer: SocketAddr, what: &dyn std::fmt::Display) {
    let admitted = {
        let mut throttle = CLIENT_WARNINGS.lock();
        let throttle = throttle.get_or_insert_with(|| Throttle::new(CLIENT_WARNING_INTERVAL));
        throttle.admit(Instant::now())
    };
    if let Some(suppressed) = admitted {
        if suppressed > 0 {
            tracing::warn!(%peer, suppressed, "closing connection: {what} ({suppressed} warnings like it suppressed in the last interval)");
        } else {
            tracing::warn!(%peer, "closing connection: {what}");
        }
    }
}

/// Lets one warning through per interval and counts those it holds back.
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: None,
            unlogged: 0,
        }
    }

    /// `Some(n)` if a warning may be logged at `now`, `n` being how many were held back since
    /// the last one; `None` if this one is held back.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.unlogged += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}
