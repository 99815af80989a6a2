//! Who sent a request, as the connection established it: what the handlers and the
//! authorizer see. Made by `network::authentication` for each connection (and updated when it
//! authenticates); read by `authorization` and `security` for every request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Who sent a request: what the handlers and the authorizer see.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `User:alice`, `User:CN=bob`, `User:ANONYMOUS`.
    pub principal: Arc<str>,
    pub peer: SocketAddr,
    /// The listener's name, for Metadata's endpoints.
    pub listener: Arc<str>,
    /// The connection's mute, which quotas set (shared by every request of the connection).
    pub throttle: Arc<Throttle>,
}

impl RequestContext {
    /// The principal's name, as quotas name users (`User:alice` is `alice`).
    pub fn user(&self) -> &str {
        self.principal
            .split_once(':')
            .map_or(&self.principal, |(_, name)| name)
    }
}

/// A connection muted by a quota (KIP-219): it reads no request until the time is over.
#[derive(Debug, Default)]
pub struct Throttle {
    until: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Mutes the connection for `time` from now (or longer, if it already is).
    pub fn mute_for(&self, time: Duration) {
        let until = Instant::now() + time;
        let mut current = self.until.lock();
        if current.is_none_or(|current| current < until) {
            *current = Some(until);
        }
    }

    /// How long the connection is still muted, if it is.
    pub fn remaining(&self) -> Option<Duration> {
        let mut until = self.until.lock();
        let left = until.map(|until| until.saturating_duration_since(Instant::now()));
        match left {
            Some(left) if !left.is_zero() => Some(left),
            _ => {
                *until = None;
                None
            }
        }
    }
}
