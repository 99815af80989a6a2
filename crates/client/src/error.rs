//! The client's one error type.
//!
//! Errors the broker reports with a Kafka error code become [`ClientError::Kafka`], named as
//! Kafka names them (from `strom_types::ErrorCode`) and carrying a hint a user can act on;
//! everything that goes wrong on this side of the wire (connecting, framing, decoding) has its
//! own variant.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;
use strom_types::{ErrorCode, PartitionIndex};

/// Name given to a wire error code missing from `strom_types::ErrorCode`'s table.
const UNKNOWN_CODE_NAME: &str = "UNKNOWN_ERROR_CODE";

/// Anything a client call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection could be made.
    #[error("cannot connect to {address}: {reason} (is a broker running there? 'strom server' starts one)")]
    Connect { address: String, reason: String },

    /// The connection broke, or the broker closed it, while requests were outstanding.
    #[error("connection to {address} lost: {reason}")]
    Disconnected { address: String, reason: String },

    /// The broker did not answer in time; the connection stays usable.
    #[error("{address} did not answer a {api:?} request within {timeout_ms} ms")]
    Timeout {
        address: String,
        api: ApiKey,
        timeout_ms: u64,
    },

    /// The TLS settings cannot be used (a file is missing or wrong), or the TLS handshake
    /// failed (the broker's certificate is not trusted, or the listener does not speak TLS).
    #[error("TLS with {address} failed: {reason}")]
    Tls { address: String, reason: String },

    /// The SASL login failed on this side: the settings are incomplete, or the broker did not
    /// prove it knows the password (SCRAM's server signature). A login the broker refuses is a
    /// [`ClientError::Kafka`] with the broker's code (`SASL_AUTHENTICATION_FAILED`).
    #[error("SASL login to {address} failed: {reason}")]
    Authentication { address: String, reason: String },

    /// A response's length prefix exceeded the client's limit; the connection is closed.
    #[error("{address} sent a response frame of {length} bytes; the limit is {limit} bytes")]
    FrameTooLarge {
        address: String,
        length: u64,
        limit: usize,
    },

    /// A response that does not decode, or does not answer the request sent.
    #[error("malformed response from {address}: {detail}")]
    Protocol { address: String, detail: String },

    /// The broker and this client share no version of an API.
    #[error("{address} supports {api:?} versions {broker}, this client {client}: none in common")]
    UnsupportedVersion {
        address: String,
        api: ApiKey,
        broker: String,
        client: VersionRange,
    },

    /// A record batch read back from the broker failed its checks.
    #[error("corrupt record batch in {topic}-{partition}: {detail}")]
    CorruptBatch {
        topic: String,
        partition: PartitionIndex,
        detail: String,
    },

    /// A request could not be built from the caller's arguments.
    #[error("{0}")]
    InvalidArgument(String),

    /// The broker answered with a Kafka error code.
    #[error("{name}: {message}{}", hint.as_ref().map(|hint| format!(" ({hint})")).unwrap_or_default())]
    Kafka {
        code: i16,
        name: &'static str,
        message: String,
        hint: Option<String>,
    },
}

/// What a request was about, for error messages and hints.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub topic: Option<&'a str>,
    pub partition: Option<PartitionIndex>,
    /// The consumer group, for group requests.
    pub group: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub fn topic(topic: &'a str) -> Subject<'a> {
        Subject {
            topic: Some(topic),
            ..Subject::default()
        }
    }

    pub fn partition(topic: &'a str, partition: PartitionIndex) -> Subject<'a> {
        Subject {
            topic: Some(topic),
            partition: Some(partition),
            ..Subject::default()
        }
    }

    pub fn group(group: &'a str) -> Subject<'a> {
        Subject {
            group: Some(group),
            ..Subject::default()
        }
    }

    /// A partition's committed offset in a group.
    pub fn group_partition(
        group: &'a str,
        topic: &'a str,
        partition: PartitionIndex,
    ) -> Subject<'a> {
        Subject {
            topic: Some(topic),
            partition: Some(partition),
            group: Some(group),
        }
    }

    fn describe(&self) -> Option<String> {
        let about = match (self.topic, self.partition) {
            (Some(topic), Some(partition)) => Some(format!("{topic}-{partition}")),
            (Some(topic), None) => Some(format!("topic '{topic}'")),
            _ => None,
        };
        match (self.group, about) {
            (Some(group), Some(about)) => Some(format!("group '{group}', {about}")),
            (Some(group), None) => Some(format!("group '{group}'")),
            (None, about) => about,
        }
    }
}

impl ClientError {
    /// The error for a non-zero Kafka error code. The broker's own message wins when it sent
    /// one; otherwise the message is built from the code's description and the subject.
    pub(crate) fn kafka(
        code: i16,
        broker_message: Option<&str>,
        subject: Subject<'_>,
    ) -> ClientError {
        debug_assert_ne!(code, 0, "error code 0 means success");
        let known = ErrorCode::from_code(code);
        let name = known.map(ErrorCode::name).unwrap_or(UNKNOWN_CODE_NAME);
        let message = match broker_message
            .map(str::trim)
            .filter(|message| !message.is_empty())
        {
            Some(message) => message.to_string(),
            None => default_message(code, known, subject),
        };
        let hint = known.and_then(|known| hint(known, subject));
        ClientError::Kafka {
            code,
            name,
            message,
            hint,
        }
    }

    /// The error for a Kafka error code read from a response by the caller (a topic's code in
    /// a metadata answer, say), worded and hinted as the client's own calls word them.
    pub fn from_code(
        code: i16,
        broker_message: Option<&str>,
        topic: Option<&str>,
        partition: Option<PartitionIndex>,
    ) -> ClientError {
        ClientError::kafka(
            code,
            broker_message,
            Subject {
                topic,
                partition,
                group: None,
            },
        )
    }

    /// `Err` for a non-zero error code, `Ok` for zero.
    pub(crate) fn check(
        code: i16,
        broker_message: Option<&str>,
        subject: Subject<'_>,
    ) -> Result<(), ClientError> {
        if code == 0 {
            Ok(())
        } else {
            Err(ClientError::kafka(code, broker_message, subject))
        }
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The Kafka error, when the broker sent one Strom knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code().and_then(ErrorCode::from_code)
    }

    /// Whether fresh metadata may cure the error: the partition moved, has no leader yet, or
    /// the topic is so new that this broker has not heard of it.
    pub fn is_metadata_refreshable(&self) -> bool {
        const REFRESHABLE: [ErrorCode; 6] = [
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::LeaderNotAvailable,
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::UnknownLeaderEpoch,
            ErrorCode::UnknownTopicId,
        ];
        // REPLICA_NOT_AVAILABLE (9) is refreshable too but not in Strom's table yet.
        self.error_code()
            .is_some_and(|code| REFRESHABLE.contains(&code))
            || self.code() == Some(9)
    }

    /// Whether finding the group's coordinator again may cure the error: the coordinator
    /// moved, or is still loading the group's state.
    pub fn is_coordinator_refreshable(&self) -> bool {
        self.code().is_some_and(is_coordinator_refreshable_code)
    }

    /// Whether the request never reached a broker (so retrying it cannot duplicate anything).
    pub fn is_not_sent(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }

    /// Whether the connection failed; a retry on a fresh connection may succeed, but the request
    /// may or may not have been carried out.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Disconnected { .. }
                | ClientError::Timeout { .. }
        )
    }

    /// The same error with its hint replaced.
    pub fn with_hint(self, new_hint: impl Into<String>) -> ClientError {
        match self {
            ClientError::Kafka {
                code,
                name,
                message,
                ..
            } => ClientError::Kafka {
                code,
                name,
                message,
                hint: Some(new_hint.into()),
            },
            other => other,
        }
    }
}

/// Whether a wire error code says the coordinator moved or is not ready.
pub(crate) fn is_coordinator_refreshable_code(code: i16) -> bool {
    const REFRESHABLE: [ErrorCode; 3] = [
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator,
    ];
    ErrorCode::from_code(code).is_some_and(|code| REFRESHABLE.contains(&code))
}

fn default_message(code: i16, known: Option<ErrorCode>, subject: Subject<'_>) -> String {
    let topic = subject.topic.unwrap_or("?");
    if let (Some(group), None) = (subject.group, subject.topic) {
        match known {
            Some(ErrorCode::GroupIdNotFound) => return format!("group '{group}' does not exist"),
            Some(ErrorCode::NonEmptyGroup) => return format!("group '{group}' has active members"),
            _ => {}
        }
    }
    match (known, subject.partition) {
        (Some(ErrorCode::TopicAlreadyExists), _) => format!("topic '{topic}' already exists"),
        (Some(ErrorCode::UnknownTopicOrPartition), None) => {
            format!("topic '{topic}' does not exist")
        }
        (Some(ErrorCode::UnknownTopicOrPartition), Some(partition)) => {
            format!("topic '{topic}' or its partition {partition} does not exist")
        }
        (Some(known), _) => match subject.describe() {
            Some(subject) => format!("{subject}: {}", known.message()),
            None => known.message().to_string(),
        },
        (None, _) => {
            format!("the broker answered with error code {code}, which Strom does not know")
        }
    }
}

fn hint(code: ErrorCode, subject: Subject<'_>) -> Option<String> {
    let topic = subject.topic.unwrap_or("TOPIC");
    let group = subject.group.unwrap_or("GROUP");
    let hint = match code {
        ErrorCode::GroupIdNotFound => "'strom group list' shows the groups".to_string(),
        ErrorCode::NonEmptyGroup => {
            format!("stop its consumers first; 'strom group describe {group}' lists them")
        }
        ErrorCode::GroupSubscribedToTopic => {
            format!("the group's consumers still read '{topic}'; stop them first")
        }
        ErrorCode::InvalidGroupId => "a group id must not be empty".to_string(),
        ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator => {
            "the group coordinator is starting or moving; retry in a moment".to_string()
        }
        ErrorCode::TopicAlreadyExists => format!("use 'strom topic describe {topic}'"),
        ErrorCode::UnknownTopicOrPartition => match subject.partition {
            Some(_) => format!("'strom topic describe {topic}' lists its partitions"),
            None => format!(
                "'strom topic list' shows the topics, 'strom topic create {topic}' makes it"
            ),
        },
        ErrorCode::OffsetOutOfRange => {
            format!("'strom topic describe {topic}' shows each partition's first and end offsets")
        }
        ErrorCode::InvalidTopicException => {
            "a topic name is 1 to 249 characters from a-z A-Z 0-9 . _ - and not '.' or '..'"
                .to_string()
        }
        ErrorCode::InvalidPartitions => "a topic needs at least one partition".to_string(),
        ErrorCode::InvalidReplicationFactor => {
            "the replication factor must be at least 1 and at most the number of brokers"
                .to_string()
        }
        ErrorCode::InvalidConfig => {
            "check the config names and values given with --config".to_string()
        }
        ErrorCode::LeaderNotAvailable | ErrorCode::NotLeaderOrFollower => {
            "leadership is moving; retry in a moment".to_string()
        }
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            "the batch exceeds the topic's max.message.bytes; send smaller records".to_string()
        }
        ErrorCode::NotEnoughReplicas => {
            "fewer replicas are in sync than min.insync.replicas; retry, or produce with --acks 1"
                .to_string()
        }
        ErrorCode::RequestTimedOut => "the broker could not finish in time; retry".to_string(),
        ErrorCode::TopicDeletionDisabled => {
            "the broker runs with delete.topic.enable=false".to_string()
        }
        ErrorCode::UnsupportedVersion => "the broker is older than this client expects".to_string(),
        ErrorCode::UnsupportedCompressionType => "try another --compression".to_string(),
        ErrorCode::SaslAuthenticationFailed => {
            "check sasl.mechanism, sasl.username and sasl.password, or the OAUTHBEARER token"
                .to_string()
        }
        ErrorCode::UnsupportedSaslMechanism => {
            "set sasl.mechanism to one the broker's listener enables".to_string()
        }
        ErrorCode::IllegalSaslState => {
            "security.protocol must match the broker's listener".to_string()
        }
        _ => return authorization_hint(code, subject),
    };
    Some(hint)
}

/// Hints for the authorization errors: the ACLs to look at, and who needs them.
fn authorization_hint(code: ErrorCode, subject: Subject<'_>) -> Option<String> {
    const WHO: &str = "the principal --command-config logs in as";
    let hint = match code {
        ErrorCode::TopicAuthorizationFailed => {
            let topic = subject.topic.unwrap_or("TOPIC");
            format!("no ACL allows {WHO} this on topic '{topic}'; 'strom acl list --topic {topic}' shows its ACLs")
        }
        ErrorCode::GroupAuthorizationFailed => {
            let group = subject.group.unwrap_or("GROUP");
            format!("no ACL allows {WHO} this on group '{group}'; 'strom acl list --group {group}' shows its ACLs")
        }
        ErrorCode::ClusterAuthorizationFailed => {
            format!("no ACL allows {WHO} this on the cluster; 'strom acl list --cluster' shows its ACLs")
        }
        ErrorCode::TransactionalIdAuthorizationFailed => format!(
            "no ACL allows {WHO} this on the transactional id; 'strom acl list --transactional-id ID' shows its ACLs"
        ),
        ErrorCode::SecurityDisabled => {
            "the broker runs without an authorizer (authorizer.class.name), so it keeps no ACLs"
                .to_string()
        }
        ErrorCode::UnacceptableCredential => {
            "a SCRAM credential needs a user name and 4096 to 16384 iterations".to_string()
        }
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_read_by_name_with_a_hint() {
        let error = ClientError::kafka(36, None, Subject::topic("x"));
        assert_eq!(
            error.to_string(),
            "TOPIC_ALREADY_EXISTS: topic 'x' already exists (use 'strom topic describe x')"
        );
        assert_eq!(error.error_code(), Some(ErrorCode::TopicAlreadyExists));
        assert!(!error.is_metadata_refreshable());
    }

    #[test]
    fn broker_message_wins_over_the_default() {
        let error = ClientError::kafka(40, Some("unknown config 'x.y'"), Subject::topic("t"));
        assert!(error
            .to_string()
            .starts_with("INVALID_CONFIG: unknown config 'x.y' ("));
    }

    #[test]
    fn unknown_codes_keep_their_number() {
        let error = ClientError::kafka(4242, None, Subject::default());
        assert_eq!(error.code(), Some(4242));
        assert!(error.to_string().starts_with("UNKNOWN_ERROR_CODE: "));
        assert!(error.to_string().contains("4242"));
    }

    #[test]
    fn group_errors_name_the_group() {
        let error = ClientError::kafka(69, None, Subject::group("g"));
        assert_eq!(
            error.to_string(),
            "GROUP_ID_NOT_FOUND: group 'g' does not exist ('strom group list' shows the groups)"
        );
        let error = ClientError::kafka(68, None, Subject::group("g"));
        assert!(
            error
                .to_string()
                .starts_with("NON_EMPTY_GROUP: group 'g' has active members (stop its"),
            "{error}"
        );
        let error = ClientError::kafka(16, None, Subject::group("g"));
        assert!(error.is_coordinator_refreshable());
        assert!(!error.is_metadata_refreshable());
        assert!(error.to_string().contains("group 'g': "), "{error}");
    }

    #[test]
    fn authorization_errors_point_at_the_acls() {
        let error = ClientError::kafka(29, None, Subject::topic("orders"));
        assert!(
            error
                .to_string()
                .ends_with("'strom acl list --topic orders' shows its ACLs)"),
            "{error}"
        );
        let error = ClientError::kafka(31, None, Subject::default());
        assert!(
            error.to_string().contains("'strom acl list --cluster'"),
            "{error}"
        );
        let error = ClientError::kafka(30, None, Subject::group("g"));
        assert!(error.to_string().contains("--group g'"), "{error}");
    }

    #[test]
    fn leadership_errors_are_refreshable() {
        let subject = Subject::partition("t", PartitionIndex(0));
        for code in [3, 5, 6, 9] {
            assert!(
                ClientError::kafka(code, None, subject).is_metadata_refreshable(),
                "{code}"
            );
        }
        assert!(!ClientError::kafka(1, None, subject).is_metadata_refreshable());
        assert!(ClientError::check(0, None, subject).is_ok());
    }
}

/// How a change to one partition ended, as an admin response answers it per partition
/// (ElectLeaders, AlterPartitionReassignments).
#[derive(Debug)]
pub struct PartitionOutcome {
    pub topic: String,
    pub partition: strom_types::PartitionIndex,
    /// `Ok` when the change was made; the broker's error otherwise.
    pub result: Result<(), ClientError>,
}

impl PartitionOutcome {
    /// One partition's answer: its error code and message as the response carries them.
    pub fn from_wire(topic: &str, partition: i32, code: i16, message: Option<&str>) -> Self {
        let partition = strom_types::PartitionIndex(partition);
        PartitionOutcome {
            topic: topic.to_owned(),
            partition,
            result: ClientError::check(code, message, Subject::partition(topic, partition)),
        }
    }

    /// True when the broker answered with `code`.
    pub fn failed_with(&self, code: strom_types::ErrorCode) -> bool {
        matches!(&self.result, Err(error) if error.code() == Some(code.code()))
    }
}
