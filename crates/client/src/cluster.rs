//! The cluster as a whole: its brokers and controller (DescribeCluster) and the metadata
//! quorum (DescribeQuorum on `__cluster_metadata` partition 0, KIP-595).
//!
//! A broker answers DescribeQuorum from what it knows, and only the quorum leader knows how
//! far every replica's log has come; [`Client::describe_quorum`] therefore asks the leader
//! again when the first answer leaves a replica's log end offset unknown and the leader is a
//! broker this client can reach, keeping the first broker's view of who leads.

use std::time::Duration;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse,
};
use strom_types::{BrokerId, LeaderEpoch, Offset, PartitionIndex};

use crate::client::{topic_name, Client};
use crate::connection::Connection;
use crate::error::Subject;
use crate::metadata::BrokerMetadata;
use crate::{limits, ClientError};

/// The topic Kafka reports its metadata log as; partition 0 is the quorum.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeCluster's `endpoint_type` for the brokers' client listeners.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

/// What DescribeCluster says: the cluster's id, its brokers and the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// `None` when the broker does not know the controller.
    pub controller: Option<BrokerId>,
    /// Sorted by id.
    pub brokers: Vec<BrokerMetadata>,
}

/// One replica of the metadata log as DescribeQuorum reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: BrokerId,
    /// `None` when the answering node does not know it.
    pub log_end_offset: Option<Offset>,
    /// Milliseconds since the epoch; `None` when unknown (and before DescribeQuorum v1).
    pub last_fetch_timestamp: Option<i64>,
    pub last_caught_up_timestamp: Option<i64>,
}

/// The metadata quorum: its leader, epoch, high watermark, voters and observers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// `None` while no leader is known.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub high_watermark: Offset,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

impl QuorumDescription {
    /// Whether every replica's log end offset is known (as only the leader can answer).
    pub fn is_complete(&self) -> bool {
        self.voters
            .iter()
            .chain(&self.observers)
            .all(|replica| replica.log_end_offset.is_some())
    }

    /// The leader's own answer in place of this one when both name the same leader and epoch;
    /// otherwise this one (the node asked first is behind, or leadership moved meanwhile).
    pub fn or_leaders(self, from_leader: QuorumDescription) -> QuorumDescription {
        let agrees =
            from_leader.leader == self.leader && from_leader.leader_epoch == self.leader_epoch;
        if agrees {
            from_leader
        } else {
            self
        }
    }

    /// Reads partition 0 of `__cluster_metadata` from a response, or the error it carries.
    pub fn from_response(response: DescribeQuorumResponse) -> Result<Self, ClientError> {
        let quorum = Subject::partition(METADATA_TOPIC, PartitionIndex(0));
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        let partition = response
            .topics
            .into_iter()
            .filter(|topic| topic.topic_name.as_str() == METADATA_TOPIC)
            .flat_map(|topic| topic.partitions)
            .find(|partition| partition.partition_index == 0)
            .ok_or_else(|| ClientError::Protocol {
                address: String::new(),
                detail: format!("DescribeQuorum response does not mention {METADATA_TOPIC}-0"),
            })?;
        ClientError::check(
            partition.error_code,
            partition.error_message.as_deref(),
            quorum,
        )?;
        Ok(QuorumDescription {
            leader: known(partition.leader_id.0).map(BrokerId),
            leader_epoch: LeaderEpoch(partition.leader_epoch),
            high_watermark: Offset(partition.high_watermark),
            voters: partition.current_voters.iter().map(replica).collect(),
            observers: partition.observers.iter().map(replica).collect(),
        })
    }
}

fn known<T: Default + PartialOrd>(value: T) -> Option<T> {
    (value >= T::default()).then_some(value)
}

fn replica(state: &ReplicaState) -> QuorumReplica {
    QuorumReplica {
        id: BrokerId(state.replica_id.0),
        log_end_offset: known(state.log_end_offset).map(Offset),
        last_fetch_timestamp: known(state.last_fetch_timestamp),
        last_caught_up_timestamp: known(state.last_caught_up_timestamp),
    }
}

impl ClusterDescription {
    pub fn from_response(response: DescribeClusterResponse) -> Result<Self, ClientError> {
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        let mut brokers: Vec<BrokerMetadata> = response
            .brokers
            .into_iter()
            .map(|broker| BrokerMetadata {
                id: BrokerId(broker.broker_id.0),
                host: broker.host.to_string(),
                port: broker.port,
                rack: broker.rack.map(|rack| rack.to_string()),
            })
            .collect();
        brokers.sort_by_key(|broker| broker.id);
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller: known(response.controller_id.0).map(BrokerId),
            brokers,
        })
    }
}

impl Client {
    /// The cluster's id, brokers and controller (DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let connection = self.any_connection().await?;
        let request = DescribeClusterRequest::default().with_endpoint_type(ENDPOINT_TYPE_BROKERS);
        let response = connection.send(&request).await?;
        ClusterDescription::from_response(response)
    }

    /// The metadata quorum (DescribeQuorum), as the bootstrap broker sees it. When that broker
    /// cannot vouch for every replica's log end offset, the leader it names is asked too (for at
    /// most [`limits::QUORUM_LEADER_WAIT_MS`]), and its answer is taken if it agrees on the
    /// leader and epoch: the view stays the bootstrap broker's, with the leader's figures.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, ClientError> {
        let first = describe_quorum_on(&*self.any_connection().await?).await?;
        let Some(leader) = first.leader.filter(|_| !first.is_complete()) else {
            return Ok(first);
        };
        let wait = Duration::from_millis(limits::QUORUM_LEADER_WAIT_MS);
        match tokio::time::timeout(wait, self.describe_quorum_at(leader)).await {
            Ok(Ok(answer)) => Ok(first.or_leaders(answer)),
            Ok(Err(error)) => {
                tracing::debug!(%error, %leader, "cannot ask the quorum leader; using the first answer");
                Ok(first)
            }
            Err(_) => {
                tracing::debug!(%leader, "the quorum leader did not answer in time; using the first answer");
                Ok(first)
            }
        }
    }

    /// Asks broker `id` for the quorum, looking its address up first.
    async fn describe_quorum_at(&self, id: BrokerId) -> Result<QuorumDescription, ClientError> {
        self.metadata(Some(&[])).await?;
        describe_quorum_on(&*self.broker_connection(id).await?).await
    }
}

/// Asks one broker for the quorum.
async fn describe_quorum_on(connection: &Connection) -> Result<QuorumDescription, ClientError> {
    let partition = PartitionData::default().with_partition_index(0);
    let topic = TopicData::default()
        .with_topic_name(topic_name(METADATA_TOPIC))
        .with_partitions(vec![partition]);
    let request = DescribeQuorumRequest::default().with_topics(vec![topic]);
    let response = connection.send(&request).await?;
    QuorumDescription::from_response(response).map_err(|error| match error {
        ClientError::Protocol { detail, .. } => ClientError::Protocol {
            address: connection.address().to_string(),
            detail,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{
        PartitionData as ResponsePartition, TopicData as ResponseTopic,
    };
    use kafka_protocol::messages::BrokerId as WireBrokerId;

    fn response(partition: ResponsePartition) -> DescribeQuorumResponse {
        let topic = ResponseTopic::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![partition]);
        DescribeQuorumResponse::default().with_topics(vec![topic])
    }

    fn state(id: i32, log_end_offset: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(WireBrokerId(id))
            .with_log_end_offset(log_end_offset)
    }

    #[test]
    fn minus_one_reads_as_unknown() {
        let partition = ResponsePartition::default()
            .with_leader_id(WireBrokerId(-1))
            .with_leader_epoch(4)
            .with_high_watermark(17)
            .with_current_voters(vec![state(1, 17), state(2, -1)])
            .with_observers(vec![state(5, 12)]);
        let quorum = QuorumDescription::from_response(response(partition)).unwrap();
        assert_eq!(quorum.leader, None);
        assert_eq!(quorum.leader_epoch, LeaderEpoch(4));
        assert_eq!(quorum.high_watermark, Offset(17));
        let voters: Vec<_> = quorum
            .voters
            .iter()
            .map(|replica| (replica.id.0, replica.log_end_offset))
            .collect();
        assert_eq!(voters, [(1, Some(Offset(17))), (2, None)]);
        assert_eq!(quorum.voters[0].last_fetch_timestamp, None);
        assert!(!quorum.is_complete());
    }

    #[test]
    fn the_leaders_answer_counts_only_if_it_agrees_on_leader_and_epoch() {
        let view = |leader: i32, epoch: i32, end: Option<i64>| QuorumDescription {
            leader: Some(BrokerId(leader)),
            leader_epoch: LeaderEpoch(epoch),
            high_watermark: Offset(9),
            voters: vec![QuorumReplica {
                id: BrokerId(2),
                log_end_offset: end.map(Offset),
                last_fetch_timestamp: None,
                last_caught_up_timestamp: None,
            }],
            observers: Vec::new(),
        };
        let first = view(1, 2, None);
        assert_eq!(
            first.clone().or_leaders(view(1, 2, Some(9))),
            view(1, 2, Some(9))
        );
        assert_eq!(
            first.clone().or_leaders(view(3, 3, Some(9))),
            first,
            "moved on"
        );
    }

    #[test]
    fn a_partition_error_is_a_kafka_error() {
        let partition = ResponsePartition::default()
            .with_error_code(6)
            .with_error_message(None);
        let error = QuorumDescription::from_response(response(partition)).unwrap_err();
        assert_eq!(error.code(), Some(6));
        assert!(
            error.to_string().starts_with("NOT_LEADER_OR_FOLLOWER: "),
            "{error}"
        );
    }

    #[test]
    fn a_response_without_the_quorum_partition_is_malformed() {
        let error =
            QuorumDescription::from_response(DescribeQuorumResponse::default()).unwrap_err();
        assert!(matches!(error, ClientError::Protocol { .. }), "{error}");
    }
}
