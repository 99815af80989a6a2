//! Every bound the broker enforces, in one place, each with its unit in its name.
//!
//! Values here are defaults; the ones a user may change are read from the config file with
//! Kafka's names and carried in the broker's config.

/// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Requests read ahead of their responses on one connection (librdkafka pipelines up to 1,000000
/// in theory; in practice `max.in.flight` is 5 per partition leader).
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 64;
/// A connection with no request for this long is closed (Kafka's `connections.max.idle.ms`).
pub const CONNECTION_IDLE_MS_MAX: u64 = 600_000;
/// Largest record batch accepted into a topic (Kafka's `message.max.bytes`, 1 MiB + overhead).
pub const MESSAGE_BYTES_MAX: usize = 1_048_588;
/// Longest a fetch may wait for data, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Most bytes one fetch response carries, whatever the client asks.
pub const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most partitions one topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// Most topics the broker holds.
pub const TOPICS_MAX: usize = 100_000;
/// Longest topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Bytes of log between two entries of a segment's sparse offset and time indexes
/// (Kafka's `index.interval.bytes`).
pub const INDEX_INTERVAL_BYTES: u32 = 4096;
