//! Client quotas (KIP-546), enforced per broker as Kafka enforces them: a client's produce and
//! fetch bytes are measured over a sliding window of [`SAMPLES`] one-second samples, per quota
//! entity; a request that takes the rate over the quota is answered with `throttle_time_ms`,
//! and its connection reads nothing more for that long (KIP-219: the client holds back too).
//!
//! Which quota applies is Kafka's precedence over the entities that have the key set, most
//! specific first: user and client id, user and default client id, user, default user and
//! client id, default user and default client id, default user, client id, default client id.
//! Clients that resolve to the same entity share its rate (a default entity's rate is per
//! user / client id, as Kafka tags its sensors). The user is the principal's name (`User:alice`
//! is `alice`).
//!
//! `producer_byte_rate` counts the record bytes of each Produce request; `consumer_byte_rate`
//! the record bytes of each consumer Fetch response, and a fetch that would exceed the quota is
//! answered empty, with the throttle time, and not counted, as Kafka does. Follower fetches are
//! not counted. `request_percentage` and `controller_mutation_rate` are measured by
//! `request_quotas`, with the same rates and throttling.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{RequestKind, ResponseKind};
use parking_lot::Mutex;
use strom_metadata::QuotaEntity;
use strom_protocol::RequestFrame;

use crate::authorization::{patch_of, Patch};
use crate::context::RequestContext;
use crate::Broker;

/// Samples in a rate's window (Kafka's `quota.window.num`).
pub const SAMPLES: usize = 11;
/// One sample's span (Kafka's `quota.window.size.seconds`).
pub const SAMPLE_MS: u64 = 1_000;

/// How many rates the table holds before it drops those with no recent samples.
const RATES_SWEEP_AT: usize = 1024;

/// The keys of a client quota, Kafka's names.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// Every quota key, and whether its value must be a whole number (Kafka's LONG keys).
pub const QUOTA_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];

/// What is measured against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
    /// Time spent handling requests, in percent of one thread (see `request_quotas`).
    Request,
    /// Partitions created and deleted (see `request_quotas`).
    ControllerMutation,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
            QuotaKind::ControllerMutation => CONTROLLER_MUTATION_RATE,
        }
    }
}

/// The quota entities of the metadata image, as its `client_quotas` holds them.
pub type QuotaTable = [(QuotaEntity, BTreeMap<String, f64>)];

/// The image's `client_quotas`, read once per request by the dispatcher.
pub type SharedQuotas = Arc<Vec<(QuotaEntity, BTreeMap<String, f64>)>>;

/// The quota `key` that applies to `user` and `client_id`, with the entity it is set on and the
/// rate's own key (a default entity measured per user / client id).
pub fn resolve(
    quotas: &QuotaTable,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(QuotaEntity, f64)> {
    let named = |name: &str| Some(Some(name.to_owned()));
    let default = Some(None);
    let candidates = [
        (named(user), named(client_id)),
        (named(user), default.clone()),
        (named(user), None),
        (default.clone(), named(client_id)),
        (default.clone(), default.clone()),
        (default.clone(), None),
        (None, named(client_id)),
        (None, default.clone()),
    ];
    candidates.into_iter().find_map(|(user_part, client_part)| {
        let entity = QuotaEntity {
            user: user_part,
            client_id: client_part,
        };
        let (_, values) = quotas.iter().find(|(e, _)| *e == entity)?;
        let quota = *values.get(key)?;
        // The rate is the client's own where the entity is a default: fill the names in.
        let measured = QuotaEntity {
            user: entity.user.as_ref().map(|_| Some(user.to_owned())),
            client_id: entity
                .client_id
                .as_ref()
                .map(|_| Some(client_id.to_owned())),
        };
        Some((measured, quota))
    })
}

/// A rate over a sliding window of samples (Kafka's `Rate` over a `SampledStat`).
#[derive(Debug, Default)]
pub(crate) struct Rate {
    /// (sample start, total recorded in it), oldest first.
    samples: VecDeque<(Instant, f64)>,
}

impl Rate {
    pub(crate) fn record(&mut self, value: f64, now: Instant) {
        self.purge(now);
        match self.samples.back_mut() {
            Some((start, total)) if now.duration_since(*start) < sample_span() => *total += value,
            _ => {
                self.samples.push_back((now, value));
                if self.samples.len() > SAMPLES {
                    self.samples.pop_front();
                }
            }
        }
    }

    fn purge(&mut self, now: Instant) {
        let window = sample_span() * SAMPLES as u32;
        while (self.samples.front()).is_some_and(|(start, _)| now.duration_since(*start) >= window)
        {
            self.samples.pop_front();
        }
    }

    /// The window the rate is taken over: from the oldest sample to now, but never less than
    /// one sample. (Kafka's is never less than all samples but one, which lets a new or idle
    /// client send ten seconds' worth at once and, once that burst leaves the window, again:
    /// a producer held to 1 MiB/s that way averaged 1.19 MiB/s over 20 s. One sample keeps
    /// the first burst to a second's worth.)
    fn window(&self, now: Instant) -> Duration {
        let elapsed = (self.samples.front()).map_or(Duration::ZERO, |(start, _)| now - *start);
        elapsed.max(sample_span())
    }

    /// Units per second, and the window it was measured over.
    pub(crate) fn measure(&mut self, now: Instant) -> (f64, Duration) {
        self.purge(now);
        let total: f64 = self.samples.iter().map(|(_, total)| total).sum();
        let window = self.window(now);
        (total / window.as_secs_f64(), window)
    }
}

fn sample_span() -> Duration {
    Duration::from_millis(SAMPLE_MS)
}

/// How long a client must wait for `rate` to fall back to `quota` over `window` (Kafka's
/// `QuotaUtils.throttleTime`: X = (O - T) / T * W), capped at the whole window.
pub(crate) fn throttle_time(rate: f64, quota: f64, window: Duration) -> Duration {
    if rate <= quota || quota <= 0.0 {
        return Duration::ZERO;
    }
    let wait = (rate - quota) / quota * window.as_secs_f64();
    Duration::from_secs_f64(wait.min((sample_span() * SAMPLES as u32).as_secs_f64()))
}

/// The rates of every entity a client was measured under on this broker.
#[derive(Default)]
pub struct QuotaRates {
    rates: Mutex<HashMap<(QuotaKind, QuotaEntity), Rate>>,
}

impl QuotaRates {
    /// Records `bytes` for the client if a quota applies to it; returns how long it is to be
    /// throttled (zero when within its quota or without one).
    pub fn record(
        &self,
        quotas: &QuotaTable,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
    ) -> Duration {
        self.record_amount(quotas, kind, user, client_id, bytes as f64)
    }

    /// Records `amount` (bytes, percent-seconds of handling, partitions) for the client if a
    /// quota of `kind` applies to it; returns how long it is to be throttled.
    pub fn record_amount(
        &self,
        quotas: &QuotaTable,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        amount: f64,
    ) -> Duration {
        if quotas.is_empty() {
            return Duration::ZERO;
        }
        let Some((entity, quota)) = resolve(quotas, user, client_id, kind.key()) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut rates = self.rates.lock();
        // Clients measured under a default entity each have a rate: forget those whose samples
        // all left the window, so changing client ids cannot grow the table without bound.
        if rates.len() >= RATES_SWEEP_AT {
            rates.retain(|_, rate| {
                rate.purge(now);
                !rate.samples.is_empty()
            });
        }
        let rate = rates.entry((kind, entity)).or_default();
        rate.record(amount, now);
        let (observed, window) = rate.measure(now);
        throttle_time(observed, quota, window)
    }

    /// How long the client is to be throttled for what it was measured at already, without
    /// recording anything; `None` when no quota of `kind` applies to it.
    pub fn throttle_now(
        &self,
        quotas: &QuotaTable,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> Option<Duration> {
        let (entity, quota) = resolve(quotas, user, client_id, kind.key())?;
        let now = Instant::now();
        let mut rates = self.rates.lock();
        let throttle = match rates.get_mut(&(kind, entity)) {
            Some(rate) => {
                let (observed, window) = rate.measure(now);
                throttle_time(observed, quota, window)
            }
            None => Duration::ZERO,
        };
        Some(throttle)
    }

    /// Takes back bytes recorded for a fetch that was answered empty instead.
    pub fn unrecord(
        &self,
        quotas: &QuotaTable,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
    ) {
        let Some((entity, _)) = resolve(quotas, user, client_id, kind.key()) else {
            return;
        };
        if let Some(rate) = self.rates.lock().get_mut(&(kind, entity)) {
            rate.record(-(bytes as f64), Instant::now());
        }
    }
}

/// Measures a Produce or consumer Fetch against its client's quota (see the module docs): a
/// Produce's bytes now, a Fetch's once its response is ready. The patch sets the response's
/// `throttle_time_ms` (and empties a throttled fetch); the connection is muted for that long.
pub fn measure(
    broker: &Arc<Broker>,
    quotas: &SharedQuotas,
    request: &mut RequestFrame,
    context: &RequestContext,
) -> Option<Patch> {
    if quotas.is_empty() {
        return None;
    }
    let quotas = quotas.clone();
    let client_id = request.client_id.clone().unwrap_or_default();
    let user = context.user().to_owned();
    match &mut request.body {
        RequestKind::Produce(produce) => {
            let bytes: usize = (produce.topic_data.iter())
                .flat_map(|topic| &topic.partition_data)
                .filter_map(|partition| partition.records.as_ref().map(|records| records.len()))
                .sum();
            let throttle =
                (broker.quota_rates).record(&quotas, QuotaKind::Produce, &user, &client_id, bytes);
            if throttle.is_zero() {
                return None;
            }
            context.throttle.mute_for(throttle);
            patch_of(move |response| {
                if let ResponseKind::Produce(response) = response {
                    response.throttle_time_ms = wire_ms(throttle);
                }
            })
        }
        RequestKind::Fetch(fetch)
            if fetch.replica_id.0 < 0 && fetch.replica_state.replica_id.0 < 0 =>
        {
            let quota = resolve(&quotas, &user, &client_id, CONSUMER_BYTE_RATE)?.1;
            // As Kafka: no response larger than the quota's whole window allows, or it could
            // never be answered.
            let window_bytes = quota * (SAMPLES - 1) as f64 * (SAMPLE_MS as f64 / 1000.0);
            fetch.max_bytes = fetch
                .max_bytes
                .min(window_bytes.min(i32::MAX as f64) as i32);
            let broker = broker.clone();
            let mute = context.throttle.clone();
            patch_of(move |response| {
                let ResponseKind::Fetch(response) = response else {
                    return;
                };
                let bytes: usize = (response.responses.iter())
                    .flat_map(|topic| &topic.partitions)
                    .filter_map(|partition| partition.records.as_ref().map(|r| r.len()))
                    .sum();
                let rates = &broker.quota_rates;
                let throttle = rates.record(&quotas, QuotaKind::Fetch, &user, &client_id, bytes);
                if throttle.is_zero() {
                    return;
                }
                // As Kafka: a fetch over the quota is answered without records and not
                // counted. Partitions answered with an error (refused by the ACLs) keep it.
                rates.unrecord(&quotas, QuotaKind::Fetch, &user, &client_id, bytes);
                for topic in &mut response.responses {
                    topic
                        .partitions
                        .retain(|partition| partition.error_code != 0);
                }
                response
                    .responses
                    .retain(|topic| !topic.partitions.is_empty());
                response.throttle_time_ms = wire_ms(throttle);
                mute.mute_for(throttle);
            })
        }
        _ => None,
    }
}

pub(crate) fn wire_ms(time: Duration) -> i32 {
    time.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        let owned = |part: Option<Option<&str>>| part.map(|name| name.map(str::to_owned));
        QuotaEntity {
            user: owned(user),
            client_id: owned(client),
        }
    }

    fn table(entries: &[(QuotaEntity, &str, f64)]) -> Vec<(QuotaEntity, BTreeMap<String, f64>)> {
        let mut table: Vec<(QuotaEntity, BTreeMap<String, f64>)> = Vec::new();
        for (entity, key, value) in entries {
            match table.iter_mut().find(|(e, _)| e == entity) {
                Some((_, values)) => {
                    values.insert(key.to_string(), *value);
                }
                None => table.push((entity.clone(), BTreeMap::from([(key.to_string(), *value)]))),
            }
        }
        table
    }

    #[test]
    fn the_most_specific_entity_with_the_key_wins() {
        let quotas = table(&[
            (entity(None, Some(None)), PRODUCER_BYTE_RATE, 1.0),
            (entity(Some(None), None), PRODUCER_BYTE_RATE, 2.0),
            (entity(Some(Some("alice")), None), PRODUCER_BYTE_RATE, 3.0),
            (
                entity(Some(Some("alice")), Some(Some("app"))),
                CONSUMER_BYTE_RATE,
                4.0,
            ),
        ]);
        let quota = |user, client, key| resolve(&quotas, user, client, key).map(|(_, q)| q);
        assert_eq!(quota("alice", "app", PRODUCER_BYTE_RATE), Some(3.0));
        assert_eq!(quota("alice", "app", CONSUMER_BYTE_RATE), Some(4.0));
        assert_eq!(quota("bob", "app", PRODUCER_BYTE_RATE), Some(2.0));
        assert_eq!(quota("bob", "app", CONSUMER_BYTE_RATE), None);
        // A default entity is measured per client: bob and carol do not share a rate.
        let (bob, _) = resolve(&quotas, "bob", "x", PRODUCER_BYTE_RATE).unwrap();
        let (carol, _) = resolve(&quotas, "carol", "x", PRODUCER_BYTE_RATE).unwrap();
        assert_ne!(bob, carol);
        let only_clients = table(&[(entity(None, Some(None)), PRODUCER_BYTE_RATE, 1.0)]);
        assert_eq!(
            resolve(&only_clients, "bob", "x", PRODUCER_BYTE_RATE).map(|(_, q)| q),
            Some(1.0)
        );
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_quota() {
        let start = Instant::now();
        let mut rate = Rate::default();
        // 2,000 units in a window of at least one sample: 2,000/s.
        rate.record(2_000.0, start);
        let (observed, window) = rate.measure(start);
        assert_eq!(window, Duration::from_secs(1));
        assert!((observed - 2_000.0).abs() < 1e-6);
        // Against a quota of 1,000/s: wait as long again as the window.
        assert_eq!(
            throttle_time(observed, 1_000.0, window),
            Duration::from_secs(1)
        );
        assert_eq!(throttle_time(observed, 4_000.0, window), Duration::ZERO);
        // Four seconds later, in a new sample: 3,000 units over 4 s.
        rate.record(1_000.0, start + Duration::from_secs(4));
        let (observed, window) = rate.measure(start + Duration::from_secs(4));
        assert_eq!(window, Duration::from_secs(4));
        assert!((observed - 750.0).abs() < 1e-6);
        // Samples older than the whole window fall out.
        let (observed, _) = rate.measure(start + Duration::from_secs(16));
        assert_eq!(observed, 0.0);
    }
}
