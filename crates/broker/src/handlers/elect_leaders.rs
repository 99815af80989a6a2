//! ElectLeaders (KIP-183, KIP-460): preferred or unclean leader elections for the partitions
//! named, or for every partition when the list is null. The election is one metadata command:
//! the image decides each partition when it applies it, so every node elects the same leader
//! in the same place of the log, and the answer is what the image decided.
//!
//! Kafka's answers: ELECTION_NOT_NEEDED where the preferred replica already leads (or, for an
//! unclean election, where any leader exists), PREFERRED_LEADER_NOT_AVAILABLE and
//! ELIGIBLE_LEADERS_NOT_AVAILABLE where no replica qualifies, UNKNOWN_TOPIC_OR_PARTITION per
//! partition; a request-wide failure (an unknown election type, a quorum that does not
//! commit) is the top-level error (v1+) and every partition's.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use strom_metadata::{CommandResult, Election, MetadataCommand, TopicOutcomes};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::error::BrokerError;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: ElectLeadersRequest, _version: i16) -> Reply {
    let Some(election) = Election::from_wire(request.election_type) else {
        let message = format!("Unknown election type {}", request.election_type);
        let error = BrokerError::new(ErrorCode::InvalidRequest, message);
        return Reply::Now(ResponseKind::ElectLeaders(failed(&request, &error)));
    };
    // Kafka's controller: an empty list elects nothing (a null one elects everything).
    if request.topic_partitions.as_ref().is_some_and(Vec::is_empty) {
        return Reply::Now(ResponseKind::ElectLeaders(ElectLeadersResponse::default()));
    }
    // As Kafka, the request is a set: a partition named twice is elected once.
    let partitions = request.topic_partitions.as_ref().map(|topics| {
        let mut wanted: std::collections::BTreeMap<String, std::collections::BTreeSet<i32>> =
            Default::default();
        for topic in topics {
            (wanted.entry(topic.topic.to_string()).or_default())
                .extend(topic.partitions.iter().copied());
        }
        (wanted.into_iter())
            .map(|(topic, partitions)| (topic, partitions.into_iter().collect()))
            .collect()
    });
    let command = MetadataCommand::ElectLeaders {
        election,
        partitions,
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let response = match cluster::propose(&broker, command).await {
            Ok(CommandResult::Elections(topics)) => answered(topics),
            Ok(other) => {
                let message = format!("the metadata quorum answered an election with {other:?}");
                failed(
                    &request,
                    &BrokerError::new(ErrorCode::UnknownServerError, message),
                )
            }
            Err(error) => failed(&request, &error),
        };
        ResponseKind::ElectLeaders(response)
    }))
}

/// The response carrying what the image decided for each partition.
fn answered(topics: Vec<TopicOutcomes>) -> ElectLeadersResponse {
    let results = topics
        .into_iter()
        .map(|topic| {
            let partitions = (topic.partitions.into_iter())
                .map(|partition| {
                    PartitionResult::default()
                        .with_partition_id(partition.partition)
                        .with_error_code(partition.error.code())
                        .with_error_message(partition.message.map(str_bytes))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(str_bytes(topic.topic).into())
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Kafka's `ElectLeadersRequest.getErrorResponse`: `error` at the top and on every partition
/// asked for.
fn failed(request: &ElectLeadersRequest, error: &BrokerError) -> ElectLeadersResponse {
    let message = Some(str_bytes(error.message.clone()));
    let results = (request.topic_partitions.iter().flatten())
        .map(|topic| {
            let partitions = (topic.partitions.iter())
                .map(|partition| {
                    PartitionResult::default()
                        .with_partition_id(*partition)
                        .with_error_code(error.code.code())
                        .with_error_message(message.clone())
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error.code.code())
        .with_replica_election_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::TopicName;
    use strom_metadata::PartitionOutcome;

    #[test]
    fn a_failure_is_reported_at_the_top_and_on_every_partition() {
        let request = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(str_bytes("t")))
                .with_partitions(vec![0, 2]),
        ]));
        let error = BrokerError::new(ErrorCode::NotController, "moved");
        let response = failed(&request, &error);
        assert_eq!(response.error_code, ErrorCode::NotController.code());
        let partitions = &response.replica_election_results[0].partition_result;
        let codes: Vec<(i32, i16)> = (partitions.iter())
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        assert_eq!(codes, [(0, 41), (2, 41)]);
        // A null list has nothing to repeat the error on.
        let everything = failed(&ElectLeadersRequest::default(), &error);
        assert!(everything.replica_election_results.is_empty());
    }

    #[test]
    fn each_partitions_outcome_is_answered_as_decided() {
        let topics = vec![TopicOutcomes {
            topic: "t".into(),
            partitions: vec![
                PartitionOutcome {
                    partition: 1,
                    error: ErrorCode::None,
                    message: None,
                },
                PartitionOutcome {
                    partition: 0,
                    error: ErrorCode::ElectionNotNeeded,
                    message: Some(ErrorCode::ElectionNotNeeded.message().into()),
                },
            ],
        }];
        let response = answered(topics);
        assert_eq!(response.error_code, 0);
        let result = &response.replica_election_results[0];
        assert_eq!(result.topic.as_str(), "t");
        assert_eq!(result.partition_result[0].error_code, 0);
        assert_eq!(result.partition_result[0].error_message, None);
        assert_eq!(result.partition_result[1].error_code, 84);
    }
}
