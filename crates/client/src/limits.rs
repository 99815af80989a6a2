//! Every bound the client enforces, in one place, each with its unit in its name.
//!
//! These are defaults; [`crate::ClientConfig`] carries the ones a caller may change.

/// Largest response frame accepted; a longer length prefix closes the connection before any
/// memory is allocated for it. Fetch responses are the big ones and the broker caps them far
/// lower (`FETCH_RESPONSE_BYTES_MAX`), so only a broken or hostile peer reaches this.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Requests sent on one connection and not yet answered. A caller beyond this waits.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 64;

/// Longest wait for a response, on top of any wait the request itself asks the broker for
/// (a fetch's `max_wait_ms`).
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Longest wait for a TCP connection to be established.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Longest wait for the quorum leader's DescribeQuorum answer once another broker has answered
/// (that answer stands if the leader is down, frozen or cut off, so `cluster info` never stalls).
pub const QUORUM_LEADER_WAIT_MS: u64 = 2_000;

/// Attempts made at a request that fails with an error a metadata refresh may cure
/// (`NOT_LEADER_OR_FOLLOWER`, `LEADER_NOT_AVAILABLE`, `UNKNOWN_TOPIC_OR_PARTITION`, ...).
pub const METADATA_ATTEMPTS_MAX: u32 = 8;

/// Pause before the first retry; it doubles with each further attempt up to
/// [`RETRY_BACKOFF_MS_MAX`].
pub const RETRY_BACKOFF_MS: u64 = 50;

/// Longest pause between two attempts.
pub const RETRY_BACKOFF_MS_MAX: u64 = 1_000;

/// Pause before the first retry of a transaction coordinator's "not now" answer; it doubles
/// with each further attempt up to [`TRANSACTION_RETRY_BACKOFF_MS_MAX`]. The common one is
/// `CONCURRENT_TRANSACTIONS` to the AddPartitionsToTxn right after a commit, while the
/// coordinator writes the commit markers: a pause of tens of ms there (Kafka's Java producer
/// waits 20 ms) would cost more than the markers take on one node.
pub const TRANSACTION_RETRY_BACKOFF_MS: u64 = 1;

/// Longest pause between two attempts at a transaction coordinator call.
pub const TRANSACTION_RETRY_BACKOFF_MS_MAX: u64 = 100;

/// Longest a transaction coordinator call keeps retrying (Kafka's `max.block.ms`): the first
/// transactional call to a cluster waits for `__transaction_state` to be created.
pub const TRANSACTION_RETRY_MS_MAX: u64 = 60_000;

/// Largest `client.properties` file (`--command-config`) read; a few hundred bytes is usual,
/// so a larger file is a wrong path (a log, a binary) rather than settings.
pub const COMMAND_CONFIG_BYTES_MAX: u64 = 1024 * 1024;

/// Distinct TLS settings whose built rustls configuration is kept (`crate::tls`); a process
/// uses one or two, so more means settings made anew per connection, and the oldest goes.
pub const TLS_CONFIGS_CACHED_MAX: usize = 16;

/// SaslAuthenticate round trips one login may take: SCRAM takes two, PLAIN and OAUTHBEARER
/// one (two when the broker refuses a token). A broker asking for more is broken.
pub const SASL_ROUND_TRIPS_MAX: usize = 4;

/// Share of a SASL session's lifetime (KIP-368 `session_lifetime_ms`) after which the
/// connection counts as closed, so that [`crate::Client`] opens a new one and logs in again
/// before the broker would refuse it; the rest leaves time for requests already sent. Kafka's
/// Java client re-authenticates between 85% and 95%.
pub const SASL_SESSION_USED_PERCENT_MAX: u32 = 90;
