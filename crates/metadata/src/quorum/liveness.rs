//! Broker liveness, decided by the controller leader: which brokers to fence because they went
//! silent, and which to unfence because they came back. Pure: it is fed heartbeats and ticks
//! with the current time and the current image, and returns the commands to propose; the
//! runtime owns the clock, the timer and the proposing.
//!
//! Lifecycle: a leader makes a new tracker when it is elected and drops it when it loses
//! leadership. A new tracker knows no heartbeat, so it treats every registered broker as heard
//! from at its first tick: a grace period of one session timeout, as in Kafka.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::command::MetadataCommand;
use crate::image::MetadataImage;

/// What the tracker knows of one broker.
#[derive(Debug, Clone)]
struct Session {
    /// The registration this session belongs to; None until a tick has seen it. A broker that
    /// registers again (a restart) starts a new session.
    incarnation: Option<Uuid>,
    /// The last sign of life: a heartbeat, or when this tracker first saw the broker.
    last_heard: Instant,
    /// The image showed the broker fenced at the last tick.
    seen_fenced: bool,
    /// A heartbeat arrived after the broker was seen fenced.
    heard_while_fenced: bool,
}

impl Session {
    fn fresh(incarnation: Option<Uuid>, now: Instant) -> Session {
        Session {
            incarnation,
            last_heard: now,
            seen_fenced: false,
            heard_while_fenced: false,
        }
    }
}

/// Session tracking for every registered broker.
#[derive(Debug, Clone)]
pub struct BrokerLiveness {
    session_timeout: Duration,
    sessions: BTreeMap<i32, Session>,
}

impl BrokerLiveness {
    pub fn new(session_timeout: Duration) -> BrokerLiveness {
        BrokerLiveness {
            session_timeout,
            sessions: BTreeMap::new(),
        }
    }

    /// Records a heartbeat from broker `id` at `now`. The caller has checked that it comes
    /// from the broker's registered incarnation.
    pub fn heartbeat(&mut self, id: i32, now: Instant) {
        let session = self
            .sessions
            .entry(id)
            .or_insert_with(|| Session::fresh(None, now));
        session.last_heard = session.last_heard.max(now);
        session.heard_while_fenced = session.seen_fenced;
    }

    /// Decides, at `now`, what to propose about the brokers registered in `image`: fence each
    /// unfenced broker silent for a session timeout, unfence each fenced broker that has
    /// heartbeated since it was seen fenced. The caller proposes the commands and ticks again
    /// once they are applied (or have failed).
    pub fn tick(&mut self, now: Instant, image: &MetadataImage) -> Vec<MetadataCommand> {
        self.sessions.retain(|id, _| image.brokers.contains_key(id));
        let mut commands = Vec::new();
        for broker in image.brokers.values() {
            let incarnation = Some(broker.incarnation);
            let session = self
                .sessions
                .entry(broker.id)
                .or_insert_with(|| Session::fresh(incarnation, now));
            if session.incarnation != incarnation {
                // A new registration is a sign of life, whatever the old session said.
                *session = Session::fresh(incarnation, now);
            }
            if !broker.fenced {
                session.seen_fenced = false;
                session.heard_while_fenced = false;
                if now.saturating_duration_since(session.last_heard) >= self.session_timeout {
                    commands.push(MetadataCommand::FenceBroker { id: broker.id });
                }
            } else if !session.seen_fenced {
                // Heartbeats sent before the fence was applied (from a broker that then shut
                // down, say) must not undo it: only later ones count.
                session.seen_fenced = true;
                session.heard_while_fenced = false;
            } else if session.heard_while_fenced {
                session.heard_while_fenced = false;
                commands.push(MetadataCommand::UnfenceBroker { id: broker.id });
            }
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(9_000);

    /// A fake clock: milliseconds after a fixed start.
    struct Clock(Instant);

    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn image_with(brokers: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in brokers {
            image.apply(&MetadataCommand::RegisterBroker {
                id: *id,
                incarnation: Uuid::from_u128(*id as u128),
                host: "h".into(),
                port: 1,
                rack: None,
                endpoints: Vec::new(),
            });
        }
        image
    }

    /// Ticks and applies what the tick decided, as the leader's runtime does.
    fn tick(
        liveness: &mut BrokerLiveness,
        image: &mut MetadataImage,
        now: Instant,
    ) -> Vec<MetadataCommand> {
        let commands = liveness.tick(now, image);
        for command in &commands {
            image.apply(command);
        }
        commands
    }

    #[test]
    fn a_silent_broker_is_fenced_after_the_session_timeout_and_not_before() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1, 2]);
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        assert!(tick(&mut liveness, &mut image, clock.at(0)).is_empty());
        for ms in (2_000..=8_000).step_by(2_000) {
            liveness.heartbeat(1, clock.at(ms));
            assert!(tick(&mut liveness, &mut image, clock.at(ms)).is_empty());
        }
        assert!(tick(&mut liveness, &mut image, clock.at(8_999)).is_empty());
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(9_000)),
            vec![MetadataCommand::FenceBroker { id: 2 }]
        );
        assert!(image.brokers[&2].fenced);
        assert!(!image.brokers[&1].fenced);
        // Fenced once, not again on every tick.
        assert!(tick(&mut liveness, &mut image, clock.at(9_500)).is_empty());
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(17_000)),
            vec![MetadataCommand::FenceBroker { id: 1 }]
        );
    }

    #[test]
    fn a_fenced_broker_that_heartbeats_again_is_unfenced() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1]);
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        tick(&mut liveness, &mut image, clock.at(0));
        tick(&mut liveness, &mut image, clock.at(9_000));
        assert!(image.brokers[&1].fenced);
        // The tick that first sees the fence only notes it.
        assert!(tick(&mut liveness, &mut image, clock.at(9_100)).is_empty());
        liveness.heartbeat(1, clock.at(12_000));
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(12_100)),
            vec![MetadataCommand::UnfenceBroker { id: 1 }]
        );
        assert!(!image.brokers[&1].fenced);
        // Unfenced with a fresh session: fenced again only after another timeout of silence.
        assert!(tick(&mut liveness, &mut image, clock.at(20_999)).is_empty());
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(21_000)),
            vec![MetadataCommand::FenceBroker { id: 1 }]
        );
    }

    #[test]
    fn a_heartbeat_from_before_the_fence_was_seen_does_not_unfence() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1]);
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        tick(&mut liveness, &mut image, clock.at(0));
        // The broker's last heartbeat, then its controlled shutdown is applied.
        liveness.heartbeat(1, clock.at(1_000));
        image.apply(&MetadataCommand::ControlledShutdown { id: 1 });
        for ms in [1_100, 2_000, 30_000] {
            assert!(
                tick(&mut liveness, &mut image, clock.at(ms)).is_empty(),
                "{ms}"
            );
        }
        assert!(image.brokers[&1].fenced);
    }

    #[test]
    fn a_new_leader_gives_every_registered_broker_a_grace_period() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1, 2, 3]);
        // The old leader's tracker heard nothing for a long time; a new leader starts fresh.
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        assert!(tick(&mut liveness, &mut image, clock.at(100_000)).is_empty());
        liveness.heartbeat(1, clock.at(105_000));
        assert!(tick(&mut liveness, &mut image, clock.at(108_999)).is_empty());
        let mut fenced = tick(&mut liveness, &mut image, clock.at(109_000));
        fenced.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            fenced,
            vec![
                MetadataCommand::FenceBroker { id: 2 },
                MetadataCommand::FenceBroker { id: 3 }
            ]
        );
    }

    #[test]
    fn a_broker_fenced_under_the_old_leader_is_unfenced_when_it_heartbeats_the_new_one() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1]);
        image.apply(&MetadataCommand::FenceBroker { id: 1 });
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        assert!(tick(&mut liveness, &mut image, clock.at(0)).is_empty());
        liveness.heartbeat(1, clock.at(500));
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(600)),
            vec![MetadataCommand::UnfenceBroker { id: 1 }]
        );
    }

    #[test]
    fn a_broker_registered_later_is_timed_from_when_it_is_first_seen() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1]);
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        liveness.heartbeat(1, clock.at(0));
        tick(&mut liveness, &mut image, clock.at(0));
        image.apply(&MetadataCommand::RegisterBroker {
            id: 2,
            incarnation: Uuid::nil(),
            host: "h".into(),
            port: 2,
            rack: None,
            endpoints: Vec::new(),
        });
        liveness.heartbeat(1, clock.at(5_000));
        assert!(tick(&mut liveness, &mut image, clock.at(5_000)).is_empty());
        liveness.heartbeat(1, clock.at(13_000));
        assert!(tick(&mut liveness, &mut image, clock.at(13_999)).is_empty());
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(14_000)),
            vec![MetadataCommand::FenceBroker { id: 2 }]
        );
    }

    #[test]
    fn a_broker_that_registers_again_starts_a_new_session() {
        let clock = Clock(Instant::now());
        let mut image = image_with(&[1]);
        let mut liveness = BrokerLiveness::new(TIMEOUT);
        tick(&mut liveness, &mut image, clock.at(0));
        tick(&mut liveness, &mut image, clock.at(9_000));
        assert!(image.brokers[&1].fenced);
        // The broker restarts: a new incarnation, registered unfenced.
        image.apply(&MetadataCommand::RegisterBroker {
            id: 1,
            incarnation: Uuid::from_u128(99),
            host: "h".into(),
            port: 1,
            rack: None,
            endpoints: Vec::new(),
        });
        assert!(tick(&mut liveness, &mut image, clock.at(20_000)).is_empty());
        assert!(tick(&mut liveness, &mut image, clock.at(28_999)).is_empty());
        assert_eq!(
            tick(&mut liveness, &mut image, clock.at(29_000)),
            vec![MetadataCommand::FenceBroker { id: 1 }]
        );
    }
}
