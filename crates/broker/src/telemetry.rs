//! What the broker counts for `/metrics` as it works: requests and their latency, records and
//! bytes per topic, replication traffic, ISR changes, leader elections, connections.
//!
//! Everything here goes through the `metrics` facade to whatever recorder the process
//! installed (`strom server` installs the Prometheus one before the broker starts; tests that
//! run a broker in-process install none, and every call is a no-op). The hot path never looks
//! a metric up by name: each handle is registered once (per API, per topic, per listener) and
//! kept, so counting a request is an atomic add and a histogram sample, with no lock (a sample
//! is a lock-free push into the exporter's bucket, which allocates a block per 64 samples
//! until the next upkeep folds them into the histogram, every 5 s). Gauges that describe state (partition health, log sizes, lag) are not kept
//! here: the admin listener reads them off the broker when it is scraped.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use metrics::{Counter, Gauge, Histogram};
use strom_types::ErrorCode;

/// Requests answered, by API and error: `strom_requests_total{api,error}`.
pub const REQUESTS: &str = "strom_requests_total";
/// Time from a request's arrival to its response being ready, by API.
pub const REQUEST_LATENCY: &str = "strom_request_latency_seconds";
pub const TOPIC_RECORDS_IN: &str = "strom_topic_records_in_total";
pub const TOPIC_BYTES_IN: &str = "strom_topic_bytes_in_total";
pub const TOPIC_BYTES_OUT: &str = "strom_topic_bytes_out_total";
pub const REPLICATION_BYTES_OUT: &str = "strom_replication_bytes_out_total";
pub const ISR_SHRINKS: &str = "strom_isr_shrinks_total";
pub const ISR_EXPANDS: &str = "strom_isr_expands_total";
pub const LEADER_ELECTIONS: &str = "strom_leader_elections_total";
pub const UNCLEAN_LEADER_ELECTIONS: &str = "strom_unclean_leader_elections_total";
pub const CONNECTIONS: &str = "strom_connections";

/// The `api` label of a frame that did not decode far enough to name its API.
pub const UNKNOWN_API: &str = "unknown";
/// The `error` label of a frame refused before any handler saw it (bad size, truncated,
/// unknown API key, undecodable body): the connection is closed, there is no response.
pub const MALFORMED_FRAME: &str = "MALFORMED_FRAME";

/// Kafka's API keys are below this (ApiKey's largest is under 100).
const API_KEYS: usize = 128;
/// Kafka's error codes are below this; an unknown code is counted as UNKNOWN_SERVER_ERROR.
const ERROR_CODES: usize = 160;

/// One API's handles: the latency histogram and the count of answers without error, made at
/// first use; answers with an error get their counter at the first such error.
struct ApiTelemetry {
    name: &'static str,
    latency: Histogram,
    ok: Counter,
    errors: Box<[OnceLock<Counter>]>,
}

struct RequestTelemetry {
    apis: Box<[OnceLock<ApiTelemetry>]>,
    malformed: Counter,
}

static REQUEST_TELEMETRY: LazyLock<RequestTelemetry> = LazyLock::new(|| RequestTelemetry {
    apis: (0..API_KEYS).map(|_| OnceLock::new()).collect(),
    malformed: metrics::counter!(REQUESTS, "api" => UNKNOWN_API, "error" => MALFORMED_FRAME),
});

impl RequestTelemetry {
    fn api(&self, key: ApiKey) -> &ApiTelemetry {
        let slot = &self.apis[(key as i16 as usize).min(API_KEYS - 1)];
        slot.get_or_init(|| {
            let name = api_name(key);
            ApiTelemetry {
                name,
                latency: metrics::histogram!(REQUEST_LATENCY, "api" => name),
                ok: metrics::counter!(REQUESTS, "api" => name, "error" => "none"),
                errors: (0..ERROR_CODES).map(|_| OnceLock::new()).collect(),
            }
        })
    }
}

/// Kafka's name of an API (`Produce`, `Fetch`, ...), leaked once per API for the labels.
fn api_name(key: ApiKey) -> &'static str {
    Box::leak(format!("{key:?}").into_boxed_str())
}

/// Counts one answered request: its API, the error it carries (see [`response_error`]) and
/// how long it took from arrival to the response being ready.
pub fn request_answered(key: ApiKey, response: &ResponseKind, elapsed: Duration) {
    let api = REQUEST_TELEMETRY.api(key);
    api.latency.record(elapsed.as_secs_f64());
    let code = response_error(response);
    if code == 0 {
        api.ok.increment(1);
        return;
    }
    let error = ErrorCode::from_code(code).unwrap_or(ErrorCode::UnknownServerError);
    let at = (error.code().max(0) as usize).min(ERROR_CODES - 1);
    let counter = api.errors[at]
        .get_or_init(|| metrics::counter!(REQUESTS, "api" => api.name, "error" => error.name()));
    counter.increment(1);
}

/// Counts a request that was never answered because its frame was refused (the connection
/// closes). It has no latency sample: it never reached a handler.
pub fn frame_refused() {
    REQUEST_TELEMETRY.malformed.increment(1);
}

/// Counts a request that gets no response (acks=0 produce): its API without error, and its
/// time in the broker.
pub fn request_silent(key: ApiKey, elapsed: Duration) {
    let api = REQUEST_TELEMETRY.api(key);
    api.latency.record(elapsed.as_secs_f64());
    api.ok.increment(1);
}

/// The error a response reports: its top-level error code if set, else the first error of a
/// topic or partition in it, else 0. One request counts once, under its first error (Kafka's
/// ErrorsPerSec counts each partition's error; per request is what an alert on a failing API
/// needs, and stays cheap: a Fetch answer's partitions are walked, never its records).
pub fn response_error(response: &ResponseKind) -> i16 {
    fn first(codes: impl IntoIterator<Item = i16>) -> i16 {
        codes.into_iter().find(|&code| code != 0).unwrap_or(0)
    }
    match response {
        ResponseKind::Produce(body) => first(
            (body.responses.iter())
                .flat_map(|topic| topic.partition_responses.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Fetch(body) => first(std::iter::once(body.error_code).chain(
            (body.responses.iter()).flat_map(|topic| topic.partitions.iter().map(|p| p.error_code)),
        )),
        ResponseKind::ListOffsets(body) => first(
            (body.topics.iter()).flat_map(|topic| topic.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Metadata(body) => first(body.topics.iter().map(|topic| topic.error_code)),
        ResponseKind::OffsetCommit(body) => first(
            (body.topics.iter()).flat_map(|topic| topic.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetFetch(body) => first(
            std::iter::once(body.error_code)
                .chain(body.groups.iter().map(|group| group.error_code)),
        ),
        ResponseKind::FindCoordinator(body) => first(
            std::iter::once(body.error_code).chain(
                body.coordinators
                    .iter()
                    .map(|coordinator| coordinator.error_code),
            ),
        ),
        ResponseKind::JoinGroup(body) => body.error_code,
        ResponseKind::SyncGroup(body) => body.error_code,
        ResponseKind::Heartbeat(body) => body.error_code,
        ResponseKind::LeaveGroup(body) => body.error_code,
        ResponseKind::ApiVersions(body) => body.error_code,
        ResponseKind::SaslHandshake(body) => body.error_code,
        ResponseKind::SaslAuthenticate(body) => body.error_code,
        ResponseKind::InitProducerId(body) => body.error_code,
        ResponseKind::EndTxn(body) => body.error_code,
        ResponseKind::AddOffsetsToTxn(body) => body.error_code,
        ResponseKind::ConsumerGroupHeartbeat(body) => body.error_code,
        ResponseKind::DescribeCluster(body) => body.error_code,
        ResponseKind::ListGroups(body) => body.error_code,
        ResponseKind::DescribeGroups(body) => first(body.groups.iter().map(|g| g.error_code)),
        ResponseKind::DeleteGroups(body) => first(body.results.iter().map(|g| g.error_code)),
        ResponseKind::CreateTopics(body) => first(body.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(body) => first(body.responses.iter().map(|t| t.error_code)),
        ResponseKind::CreatePartitions(body) => first(body.results.iter().map(|t| t.error_code)),
        ResponseKind::DescribeConfigs(body) => first(body.results.iter().map(|r| r.error_code)),
        ResponseKind::AlterConfigs(body) => first(body.responses.iter().map(|r| r.error_code)),
        ResponseKind::IncrementalAlterConfigs(body) => {
            first(body.responses.iter().map(|r| r.error_code))
        }
        ResponseKind::TxnOffsetCommit(body) => first(
            (body.topics.iter()).flat_map(|topic| topic.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetForLeaderEpoch(body) => first(
            (body.topics.iter()).flat_map(|topic| topic.partitions.iter().map(|p| p.error_code)),
        ),
        _ => 0,
    }
}

/// A topic's traffic counters, kept with the topic so that counting is one atomic add.
pub struct TopicTraffic {
    records_in: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl TopicTraffic {
    pub fn new(topic: &str) -> Arc<TopicTraffic> {
        let topic = topic.to_owned();
        Arc::new(TopicTraffic {
            records_in: metrics::counter!(TOPIC_RECORDS_IN, "topic" => topic.clone()),
            bytes_in: metrics::counter!(TOPIC_BYTES_IN, "topic" => topic.clone()),
            bytes_out: metrics::counter!(TOPIC_BYTES_OUT, "topic" => topic),
        })
    }

    /// A producer's records appended (their batches' bytes as received).
    pub fn produced(&self, records: u64, bytes: u64) {
        self.records_in.increment(records);
        self.bytes_in.increment(bytes);
    }

    /// Bytes of records sent to a consumer (followers' fetches count as replication instead).
    pub fn consumed(&self, bytes: u64) {
        self.bytes_out.increment(bytes);
    }
}

/// Handles of the broker-wide counters, made once.
struct Broker {
    replication_bytes_out: Counter,
    isr_shrinks: Counter,
    isr_expands: Counter,
    leader_elections: Counter,
    unclean_leader_elections: Counter,
}

static BROKER: LazyLock<Broker> = LazyLock::new(|| Broker {
    replication_bytes_out: metrics::counter!(REPLICATION_BYTES_OUT),
    isr_shrinks: metrics::counter!(ISR_SHRINKS),
    isr_expands: metrics::counter!(ISR_EXPANDS),
    leader_elections: metrics::counter!(LEADER_ELECTIONS),
    unclean_leader_elections: metrics::counter!(UNCLEAN_LEADER_ELECTIONS),
});

/// Bytes of records this node sent to followers as a leader.
pub fn replicated(bytes: u64) {
    BROKER.replication_bytes_out.increment(bytes);
}

/// An ISR change this node applied as a partition's leader.
pub fn isr_changed(shrank: bool) {
    match shrank {
        true => BROKER.isr_shrinks.increment(1),
        false => BROKER.isr_expands.increment(1),
    }
}

/// A partition whose leadership this node took in a new leader epoch; `unclean` when it was
/// not in the ISR before (an unclean election). Counted by the winner, so the cluster's total
/// is the sum over the nodes.
pub fn leadership_won(unclean: bool) {
    BROKER.leader_elections.increment(1);
    if unclean {
        BROKER.unclean_leader_elections.increment(1);
    }
}

/// Registers every counter a dashboard may name, at zero, so that their series exist before
/// the first event (an absent series makes `rate()` panels and `absent()` alerts misleading).
pub fn register_all() {
    LazyLock::force(&BROKER);
    LazyLock::force(&REQUEST_TELEMETRY);
    strom_log::register_metrics();
    for key in [ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata] {
        REQUEST_TELEMETRY.api(key);
    }
}

/// The open connections of one listener: `strom_connections{listener}`.
pub struct ListenerConnections {
    gauge: Gauge,
}

impl ListenerConnections {
    pub fn new(listener: &str) -> ListenerConnections {
        ListenerConnections {
            gauge: metrics::gauge!(CONNECTIONS, "listener" => listener.to_owned()),
        }
    }

    /// Counts a connection open until the guard is dropped.
    pub fn open(&self) -> OpenConnection {
        self.gauge.increment(1.0);
        OpenConnection(self.gauge.clone())
    }
}

/// One open connection in `strom_connections`; dropping it counts the connection closed.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
