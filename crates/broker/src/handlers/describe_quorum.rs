//! DescribeQuorum (KIP-595, KIP-836, KIP-853): the metadata quorum as this node sees it,
//! reported as Kafka reports its `__cluster_metadata` partition.
//!
//! Kafka's controller answers only when it leads the quorum (NOT_LEADER_OR_FOLLOWER otherwise)
//! and its brokers forward the request to the active controller, so an admin client asks any
//! broker and always gets the leader's answer. Strom has no such forwarding, and its clients
//! (Java's `Admin.describeMetadataQuorum`, kafka-python's `describe_metadata_quorum`) send the
//! request to whichever broker they like. So every node answers, with no error, from what it
//! knows: the leader it follows, the term, its own applied entries, and the log end offsets
//! it can vouch for. Only the leader tracks how far each follower's log has come; any other
//! node reports -1 for every replica but itself. `strom cluster info` asks the leader again
//! when it can reach it, to show every replica's lag.
//!
//! Raft indexes become Kafka offsets: the entry at index `i` is offset `i`, so a log whose last
//! entry is `i` has log end offset `i + 1`, and the high watermark is one past the last entry
//! applied here (applied entries are committed ones). The leader epoch is the Raft term.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use strom_metadata::quorum::QuorumRole;
use strom_metadata::QuorumStatus;
use strom_types::ErrorCode;

use super::str_bytes;
use crate::Broker;

/// The topic Kafka reports its metadata log as; partition 0 is the only one.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's name for the listener controllers serve each other on.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = broker.quorum.status();
    let voters = voter_addresses(broker);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    describe(&status, &voters, &request, version, now_ms)
}

/// The controller voters' addresses as configured: (node id, `HOST:PORT`). A cluster of one
/// node has no controller listener, so its one voter is listed without one.
fn voter_addresses(broker: &Broker) -> Vec<(i32, String)> {
    let cluster = &broker.config.cluster;
    if cluster.voters.is_empty() {
        return vec![(broker.config.node_id, String::new())];
    }
    cluster.voters.clone()
}

/// The answer to `request` from `status`; free of I/O so the mapping can be tested.
/// `voter_addresses` gives the v2 `nodes`; `now_ms` stamps the leader's own replica state.
pub fn describe(
    status: &QuorumStatus,
    voter_addresses: &[(i32, String)],
    request: &DescribeQuorumRequest,
    version: i16,
    now_ms: i64,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let is_metadata_topic = topic.topic_name.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .iter()
                .map(
                    |partition| match (is_metadata_topic, partition.partition_index) {
                        (true, 0) => quorum_partition(status, now_ms),
                        (_, index) => unknown_partition(index),
                    },
                )
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let nodes = if version >= 2 {
        voter_addresses.iter().map(controller_node).collect()
    } else {
        Vec::new()
    };
    DescribeQuorumResponse::default()
        .with_error_code(ErrorCode::None.code())
        .with_error_message(None)
        .with_topics(topics)
        .with_nodes(nodes)
}

/// Partition 0 of `__cluster_metadata`: leader, term, high watermark, voters and observers.
fn quorum_partition(status: &QuorumStatus, now_ms: i64) -> PartitionData {
    let log_end_offsets = log_end_offsets(status);
    let replica = |id: &i32| {
        let log_end_offset = log_end_offsets.get(id).copied().unwrap_or(-1);
        // Kafka's leader stamps its own entry with the time of the request.
        let stamp = if status.role == QuorumRole::Leader && *id == status.node_id {
            now_ms
        } else {
            -1
        };
        ReplicaState::default()
            .with_replica_id(BrokerId(*id))
            .with_log_end_offset(log_end_offset)
            .with_last_fetch_timestamp(stamp)
            .with_last_caught_up_timestamp(stamp)
    };
    PartitionData::default()
        .with_partition_index(0)
        .with_error_code(ErrorCode::None.code())
        .with_error_message(None)
        .with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(end_offset(status.last_applied))
        .with_current_voters(status.voters.iter().map(replica).collect())
        .with_observers(status.learners.iter().map(replica).collect())
}

/// The log end offset of every node this one can vouch for: itself, and on the leader every
/// node whose replication progress it has heard of.
fn log_end_offsets(status: &QuorumStatus) -> BTreeMap<i32, i64> {
    let own = end_offset(status.last_log_index);
    let mut offsets = BTreeMap::from([(status.node_id, own)]);
    if status.role == QuorumRole::Leader {
        for (id, lag) in &status.replication_lag {
            if let Some(lag) = lag {
                let behind = i64::try_from(*lag).unwrap_or(i64::MAX);
                offsets.insert(*id, own.saturating_sub(behind).max(0));
            }
        }
    }
    offsets
}

/// The offset one past the entry at `index`: 0 for an empty log.
fn end_offset(index: Option<u64>) -> i64 {
    index.map_or(0, |index| {
        i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1)
    })
}

fn unknown_partition(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
        .with_error_message(Some(str_bytes(format!(
            "the metadata quorum is partition 0 of {METADATA_TOPIC}"
        ))))
        .with_leader_id(BrokerId(-1))
        .with_leader_epoch(-1)
        .with_high_watermark(-1)
}

/// A voter with its controller listener, when it has one (`HOST:PORT`).
fn controller_node((id, address): &(i32, String)) -> Node {
    let listeners = address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse().ok()?)))
        .map(|(host, port)| {
            Listener::default()
                .with_name(str_bytes(CONTROLLER_LISTENER))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .into_iter()
        .collect();
    Node::default()
        .with_node_id(BrokerId(*id))
        .with_listeners(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as RequestPartition, TopicData as RequestTopic,
    };
    use kafka_protocol::messages::TopicName;

    fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
        let topics = topics
            .iter()
            .map(|(name, partitions)| {
                RequestTopic::default()
                    .with_topic_name(TopicName(str_bytes(*name)))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&index| RequestPartition::default().with_partition_index(index))
                            .collect(),
                    )
            })
            .collect();
        DescribeQuorumRequest::default().with_topics(topics)
    }

    fn status(node_id: i32, role: QuorumRole) -> QuorumStatus {
        QuorumStatus {
            node_id,
            role,
            leader: Some(1),
            term: 3,
            voters: vec![1, 2, 3],
            learners: vec![4],
            last_log_index: Some(41),
            last_applied: Some(40),
            snapshot_index: None,
            replication_lag: BTreeMap::new(),
        }
    }

    fn only_partition(response: &DescribeQuorumResponse) -> &PartitionData {
        assert_eq!(response.error_code, 0);
        let [topic] = response.topics.as_slice() else {
            panic!("one topic expected: {response:?}");
        };
        let [partition] = topic.partitions.as_slice() else {
            panic!("one partition expected: {topic:?}");
        };
        partition
    }

    fn offsets(replicas: &[ReplicaState]) -> Vec<(i32, i64)> {
        replicas
            .iter()
            .map(|replica| (replica.replica_id.0, replica.log_end_offset))
            .collect()
    }

    #[test]
    fn the_leader_reports_every_replica_it_has_heard_from() {
        let mut leader = status(1, QuorumRole::Leader);
        leader.replication_lag = BTreeMap::from([(2, Some(0)), (3, Some(5)), (4, None)]);
        let response = describe(&leader, &[], &request(&[(METADATA_TOPIC, &[0])]), 1, 1_000);
        let partition = only_partition(&response);
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.leader_id, BrokerId(1));
        assert_eq!(partition.leader_epoch, 3);
        assert_eq!(
            partition.high_watermark, 41,
            "one past the last applied index"
        );
        assert_eq!(
            offsets(&partition.current_voters),
            [(1, 42), (2, 42), (3, 37)]
        );
        assert_eq!(offsets(&partition.observers), [(4, -1)]);
        let stamps: Vec<i64> = partition
            .current_voters
            .iter()
            .map(|replica| replica.last_fetch_timestamp)
            .collect();
        assert_eq!(stamps, [1_000, -1, -1]);
    }

    #[test]
    fn a_follower_vouches_only_for_itself() {
        let mut follower = status(2, QuorumRole::Follower);
        // A stale map from an earlier leadership is not this node's knowledge any more.
        follower.replication_lag = BTreeMap::from([(3, Some(0))]);
        let response = describe(
            &follower,
            &[],
            &request(&[(METADATA_TOPIC, &[0])]),
            0,
            1_000,
        );
        let partition = only_partition(&response);
        assert_eq!(
            partition.error_code, 0,
            "answered, not NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(partition.leader_id, BrokerId(1));
        assert_eq!(
            offsets(&partition.current_voters),
            [(1, -1), (2, 42), (3, -1)]
        );
        assert!(partition
            .current_voters
            .iter()
            .all(|replica| replica.last_caught_up_timestamp == -1));
    }

    #[test]
    fn an_unknown_leader_and_an_empty_log_read_as_kafka_reads_them() {
        let mut starting = status(1, QuorumRole::Candidate);
        starting.leader = None;
        starting.last_log_index = None;
        starting.last_applied = None;
        let response = describe(&starting, &[], &request(&[(METADATA_TOPIC, &[0])]), 0, 0);
        let partition = only_partition(&response);
        assert_eq!(partition.leader_id, BrokerId(-1));
        assert_eq!(partition.high_watermark, 0);
        assert_eq!(offsets(&partition.current_voters)[0], (1, 0));
    }

    #[test]
    fn other_topics_and_partitions_are_unknown() {
        let response = describe(
            &status(1, QuorumRole::Leader),
            &[],
            &request(&[(METADATA_TOPIC, &[1, 0]), ("orders", &[0])]),
            2,
            0,
        );
        let codes: Vec<(String, i32, i16)> = response
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|partition| {
                    (
                        topic.topic_name.to_string(),
                        partition.partition_index,
                        partition.error_code,
                    )
                })
            })
            .collect();
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            [
                (METADATA_TOPIC.to_string(), 1, unknown),
                (METADATA_TOPIC.to_string(), 0, 0),
                ("orders".to_string(), 0, unknown),
            ]
        );
        assert!(response.topics[1].partitions[0].error_message.is_some());
    }

    #[test]
    fn version_2_lists_the_voters_with_their_controller_listeners() {
        let voters = [
            (1, "10.0.0.1:9093".to_string()),
            (2, "[::1]:9094".to_string()),
            (3, String::new()),
        ];
        let quorum = request(&[(METADATA_TOPIC, &[0])]);
        let status = status(1, QuorumRole::Leader);
        assert!(describe(&status, &voters, &quorum, 1, 0).nodes.is_empty());
        let nodes = describe(&status, &voters, &quorum, 2, 0).nodes;
        let listed: Vec<String> = nodes
            .iter()
            .map(|node| {
                let listeners: Vec<String> = node
                    .listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                    .collect();
                format!("{} {}", node.node_id.0, listeners.join(","))
            })
            .collect();
        assert_eq!(
            listed,
            [
                "1 CONTROLLER://10.0.0.1:9093",
                "2 CONTROLLER://::1:9094",
                "3 ",
            ]
        );
    }
}
