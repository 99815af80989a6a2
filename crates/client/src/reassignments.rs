//! Partition reassignment (KIP-455), as `kafka-reassign-partitions.sh` and the admin clients'
//! `alterPartitionReassignments` / `listPartitionReassignments` do: start or cancel moves of
//! partitions to new replica sets, and list the moves in progress; and UnregisterBroker, for a
//! broker whose replicas were moved away and that was shut down for good.
//!
//! Per-partition answers stay per partition (a partition whose target is refused does not
//! fail the others); only a request-wide error fails the call.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use strom_types::ErrorCode;

use crate::client::{topic_name, AdminResponse, Client};
use crate::error::{PartitionOutcome, Subject};
use crate::ClientError;

/// One partition's move: to `replicas`, or `None` to cancel the move in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Option<Vec<i32>>,
}

/// How the broker answered one partition's move.
pub type ReassignmentOutcome = PartitionOutcome;

/// A move in progress: the replica list during the move (the target followed by the replicas
/// it removes), and the replicas it adds and removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl OngoingReassignment {
    /// The replicas the partition will have once the move completes.
    pub fn target(&self) -> Vec<i32> {
        (self.replicas.iter().copied())
            .filter(|replica| !self.removing.contains(replica))
            .collect()
    }
}

impl AdminResponse for AlterPartitionReassignmentsResponse {
    fn not_controller(&self) -> bool {
        let not_controller = ErrorCode::NotController.code();
        self.error_code == not_controller
            || (self.responses.iter())
                .flat_map(|topic| &topic.partitions)
                .any(|partition| partition.error_code == not_controller)
    }
}

impl AdminResponse for ListPartitionReassignmentsResponse {
    fn not_controller(&self) -> bool {
        self.error_code == ErrorCode::NotController.code()
    }
}

impl AdminResponse for UnregisterBrokerResponse {
    fn not_controller(&self) -> bool {
        self.error_code == ErrorCode::NotController.code()
    }
}

impl Client {
    /// Removes broker `id`'s registration (UnregisterBroker): refused while it is alive.
    pub async fn unregister_broker(&self, id: i32) -> Result<(), ClientError> {
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let response = self.send_to_controller(&request).await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )
    }

    /// Starts (or cancels) the moves given; one outcome per partition, in the broker's order.
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[Reassignment],
    ) -> Result<Vec<ReassignmentOutcome>, ClientError> {
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for reassignment in moves {
            let partition = ReassignablePartition::default()
                .with_partition_index(reassignment.partition)
                .with_replicas(
                    (reassignment.replicas.as_ref())
                        .map(|replicas| replicas.iter().copied().map(BrokerId).collect()),
                );
            match topics
                .iter_mut()
                .find(|topic| topic.name.as_str() == reassignment.topic)
            {
                Some(topic) => topic.partitions.push(partition),
                None => topics.push(
                    ReassignableTopic::default()
                        .with_name(topic_name(&reassignment.topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topics(topics);
        let response = self.send_to_controller(&request).await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        let outcomes = (response.responses.iter())
            .flat_map(|topic| {
                (topic.partitions.iter()).map(|partition| {
                    PartitionOutcome::from_wire(
                        topic.name.as_str(),
                        partition.partition_index,
                        partition.error_code,
                        partition.error_message.as_deref(),
                    )
                })
            })
            .collect();
        Ok(outcomes)
    }

    /// The moves in progress: of every partition, or of the partitions given (topic,
    /// partition indexes).
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<OngoingReassignment>, ClientError> {
        let topics = partitions.map(|partitions| {
            (partitions.iter())
                .map(|(topic, indexes)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(indexes.clone())
                })
                .collect()
        });
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topics(topics);
        let response = self.send_to_controller(&request).await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            Subject::default(),
        )?;
        let ids = |ids: Vec<BrokerId>| ids.into_iter().map(|id| id.0).collect();
        let mut ongoing = Vec::new();
        for topic in response.topics {
            for partition in topic.partitions {
                ongoing.push(OngoingReassignment {
                    topic: topic.name.to_string(),
                    partition: partition.partition_index,
                    replicas: ids(partition.replicas),
                    adding: ids(partition.adding_replicas),
                    removing: ids(partition.removing_replicas),
                });
            }
        }
        Ok(ongoing)
    }
}
