//! ElectLeaders (KIP-460): asks the cluster to elect preferred or unclean leaders, as
//! `kafka-leader-election.sh` and the admin clients' `electLeaders` do, and reads each
//! partition's outcome.
//!
//! Outcomes that are not failures of the call stay per partition: ELECTION_NOT_NEEDED (the
//! leader is already the one asked for) is an answer, not an error, for a tool that elects
//! everywhere. Only a request-wide error (v1+ `error_code`) fails the call.

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use strom_types::ErrorCode;

use crate::client::{topic_name, AdminResponse, Client};
use crate::error::{PartitionOutcome, Subject};
use crate::ClientError;

/// Which leader to elect (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica of the replica list, if it is alive and in sync.
    Preferred,
    /// Any live replica of a partition without a leader, in sync or not.
    Unclean,
}

impl ElectionType {
    fn wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// How one partition's election ended: `Ok` when a leader was elected; ELECTION_NOT_NEEDED
/// and the other answers otherwise.
pub type ElectionOutcome = PartitionOutcome;

impl PartitionOutcome {
    /// True when the partition already had the leader asked for.
    pub fn not_needed(&self) -> bool {
        self.failed_with(ErrorCode::ElectionNotNeeded)
    }
}

impl AdminResponse for ElectLeadersResponse {
    fn not_controller(&self) -> bool {
        let not_controller = ErrorCode::NotController.code();
        self.error_code == not_controller
            || (self.replica_election_results.iter())
                .flat_map(|topic| &topic.partition_result)
                .any(|partition| partition.error_code == not_controller)
    }
}

impl Client {
    /// Elects leaders of `partitions` (topic, partition indexes), or of every partition when
    /// `None`: then partitions that needed no election are left out of the answer, as Kafka
    /// does. One outcome per partition answered, in the broker's order.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<ElectionOutcome>, ClientError> {
        let topic_partitions = partitions.map(|partitions| {
            (partitions.iter())
                .map(|(topic, indexes)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(indexes.clone())
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(election.wire())
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.broker_timeout_ms());
        let response = self.send_to_controller(&request).await?;
        outcomes(response)
    }
}

/// The outcomes a response carries, or its request-wide error.
fn outcomes(response: ElectLeadersResponse) -> Result<Vec<ElectionOutcome>, ClientError> {
    ClientError::check(response.error_code, None, Subject::default())?;
    let outcomes = (response.replica_election_results.iter())
        .flat_map(|topic| {
            (topic.partition_result.iter()).map(|partition| {
                PartitionOutcome::from_wire(
                    topic.topic.as_str(),
                    partition.partition_id,
                    partition.error_code,
                    partition.error_message.as_deref(),
                )
            })
        })
        .collect();
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use strom_types::PartitionIndex;

    fn response(error_code: i16, partitions: &[(i32, i16)]) -> ElectLeadersResponse {
        let partitions = (partitions.iter())
            .map(|(id, code)| {
                PartitionResult::default()
                    .with_partition_id(*id)
                    .with_error_code(*code)
            })
            .collect();
        ElectLeadersResponse::default()
            .with_error_code(error_code)
            .with_replica_election_results(vec![ReplicaElectionResult::default()
                .with_topic(topic_name("t"))
                .with_partition_result(partitions)])
    }

    #[test]
    fn each_partition_keeps_its_own_answer() {
        let outcomes = outcomes(response(0, &[(0, 0), (1, 84), (2, 80)])).unwrap();
        assert!(outcomes[0].result.is_ok());
        assert!(outcomes[1].not_needed());
        let error = outcomes[2].result.as_ref().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("PREFERRED_LEADER_NOT_AVAILABLE"),
            "{error}"
        );
        assert_eq!(outcomes[2].partition, PartitionIndex(2));
    }

    #[test]
    fn a_request_wide_error_fails_the_call() {
        let error = outcomes(response(31, &[(0, 31)])).unwrap_err();
        assert_eq!(error.code(), Some(31));
        assert!(response(41, &[]).not_controller());
        assert!(!response(0, &[(0, 84)]).not_controller());
    }
}
