//! Every bound of the quorum's runtime in one place, with its unit in its name.

/// The largest frame on a controller connection (a snapshot travels in one frame), and the
/// largest record in the Raft log file. A larger size prefix closes the connection.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A frame body up to this size is allocated whole when its size prefix arrives; a larger one
/// grows from here only as its bytes actually arrive, so a size prefix alone (without TLS the
/// listener is not authenticated) cannot make a node reserve [`FRAME_BYTES_MAX`]. Votes,
/// appends and heartbeats are far smaller; only snapshots grow past it. The client listener
/// does the same.
pub const FRAME_BODY_BYTES_UPFRONT: usize = 1024 * 1024;

/// A Raft log segment file is rolled once it holds this many bytes.
pub const LOG_SEGMENT_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Log writes queued for the writer thread before `append` waits.
pub const LOG_WRITER_QUEUE_DEPTH_MAX: usize = 1024;

/// How long dialling a peer may take: the TCP connect and, with TLS, the handshake together.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// How long the controller listener waits for a TLS handshake once it accepted a connection.
/// A peer that connects and stalls is dropped then, so it holds one of
/// [`SERVER_CONNECTIONS_MAX`] only this long. Ten times [`CONNECT_TIMEOUT_MS`]: a real peer
/// gives up on its own side well before.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// A connection that has answered nothing for this long while requests wait on it is dropped
/// and dialled again (a paused or cut-off peer must not hold requests forever).
pub const CONNECTION_SILENCE_MS_MAX: u64 = 3_000;

/// Requests queued for one peer connection's writer before a caller waits.
pub const PEER_QUEUE_DEPTH_MAX: usize = 64;

/// Connections the controller listener serves at once.
pub const SERVER_CONNECTIONS_MAX: usize = 256;

/// Requests one server connection handles at once.
pub const SERVER_REQUESTS_IN_FLIGHT_MAX: usize = 64;

/// How long `propose` waits for its command to be committed and applied on this node.
pub const PROPOSE_TIMEOUT_MS: u64 = 15_000;

/// Leader look-ups (NotLeader hints followed, unreachable leaders retried) per request.
pub const LEADER_ATTEMPTS_MAX: u32 = 30;

/// How long one RPC to the controller leader (propose, heartbeat, add learner) may take.
pub const LEADER_CALL_TIMEOUT_MS: u64 = 5_000;

/// How long sending a full snapshot to a follower may take.
pub const SNAPSHOT_SEND_TIMEOUT_MS: u64 = 30_000;

/// The controller leader's liveness and bootstrap loop runs at least this often.
pub const CONTROLLER_TICK_MS_MAX: u64 = 500;

/// How long `shutdown` waits for the log writer thread to close its files.
pub const SHUTDOWN_WAIT_MS: u64 = 5_000;

/// After a storage error stopped Raft, the first attempt to start it again waits this long;
/// each failed attempt doubles the wait, up to [`RAFT_RESTART_BACKOFF_MS_MAX`]. Short enough
/// that a node is back soon after the resource is, long enough not to spin on a full disk.
pub const RAFT_RESTART_BACKOFF_MS_MIN: u64 = 100;

/// The longest wait between attempts to start Raft again.
pub const RAFT_RESTART_BACKOFF_MS_MAX: u64 = 5_000;

/// How long a restart waits for the stopped Raft's log writer and state machine worker to let
/// go of their files and state before this attempt gives up (the next one waits again).
pub const RAFT_RELEASE_WAIT_MS: u64 = 5_000;
