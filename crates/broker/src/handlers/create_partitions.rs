//! CreatePartitions: grow a topic to a larger partition count, placing the new partitions
//! automatically or on the brokers the request names, then propose the change to the metadata
//! quorum (or, with `validate_only`, only check it against a copy of the image).
//!
//! The checks here are Kafka's controller's, with its messages, so tools that show the message
//! (`kafka-topics.sh --alter`, AdminClient errors) read as they would against Kafka. The image
//! checks again when the command is applied, which catches a change that raced this one.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
use strom_types::ErrorCode;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::error::BrokerError;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: CreatePartitionsRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let duplicated = duplicated_names(&request.topics);
        let mut results = Vec::with_capacity(request.topics.len());
        for wanted in &request.topics {
            if !duplicated.contains(wanted.name.as_str()) {
                let outcome = grow(&broker, wanted, request.validate_only).await;
                results.push(result(wanted.name.clone(), outcome));
            }
        }
        // Like Kafka, a name given twice is refused once, and neither entry is acted on.
        for name in duplicated {
            let refusal = BrokerError::new(ErrorCode::InvalidRequest, "Duplicate topic name.");
            results.push(result(str_bytes(name).into(), Err(refusal)));
        }
        ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
    }))
}

fn duplicated_names(topics: &[CreatePartitionsTopic]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    topics
        .iter()
        .filter(|topic| !seen.insert(topic.name.as_str()))
        .map(|topic| topic.name.to_string())
        .collect()
}

fn result(
    name: kafka_protocol::messages::TopicName,
    outcome: Result<(), BrokerError>,
) -> CreatePartitionsTopicResult {
    let result = CreatePartitionsTopicResult::default().with_name(name);
    match outcome {
        Ok(()) => result,
        // Kafka sends no message where the code says it all (an unknown topic).
        Err(error) => result
            .with_error_code(error.code.code())
            .with_error_message((!error.message.is_empty()).then(|| str_bytes(error.message))),
    }
}

async fn grow(
    broker: &Arc<Broker>,
    wanted: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let image = broker.quorum.image();
    let command = check(&image, wanted)?;
    if validate_only {
        // The same decision the quorum would make, on a copy of the image.
        return match (*image).clone().apply(&command) {
            CommandResult::Refused(error) => Err(BrokerError::new(error.code, error.message)),
            _ => Ok(()),
        };
    }
    drop(image);
    cluster::propose(broker, command).await.map(drop)
}

/// The command that grows `wanted.name` as asked, or why Kafka would refuse it.
fn check(
    image: &MetadataImage,
    wanted: &CreatePartitionsTopic,
) -> Result<MetadataCommand, BrokerError> {
    let name = wanted.name.as_str();
    let Some(topic) = image.topics.get(name) else {
        return Err(BrokerError::new(ErrorCode::UnknownTopicOrPartition, ""));
    };
    let (current, count) = (topic.partitions.len() as i32, wanted.count);
    let invalid = |message: String| Err(BrokerError::new(ErrorCode::InvalidPartitions, message));
    if count == current {
        return invalid(format!("Topic already has {current} partition(s)."));
    }
    if count < current {
        return invalid(format!(
            "The topic {name} currently has {current} partition(s); {count} would not be an \
             increase."
        ));
    }
    let most = strom_types::limits::PARTITIONS_PER_TOPIC_MAX;
    if count > most {
        return invalid(format!(
            "number of partitions must be between 1 and {most}, not {count}"
        ));
    }
    // Groups find their coordinator by hashing over this topic's partition count: more
    // partitions would move groups away from their committed offsets on the next restart.
    if name == strom_coordinator::OFFSETS_TOPIC {
        return invalid(format!(
            "the internal topic {name} cannot gain partitions: consumer groups are placed by its \
             partition count"
        ));
    }
    let assignments = match &wanted.assignments {
        None => None,
        Some(assignments) => Some(check_assignments(
            image,
            topic,
            current,
            count,
            assignments,
        )?),
    };
    Ok(MetadataCommand::CreatePartitions {
        id: topic.id,
        count,
        assignments,
    })
}

/// The replica lists for partitions `current..count`, checked as Kafka's controller does.
fn check_assignments(
    image: &MetadataImage,
    topic: &strom_metadata::TopicImage,
    current: i32,
    count: i32,
    assignments: &[CreatePartitionsAssignment],
) -> Result<Vec<Vec<i32>>, BrokerError> {
    let refuse = |message: String| BrokerError::new(ErrorCode::InvalidReplicaAssignment, message);
    let additional = count - current;
    if assignments.len() as i32 != additional {
        return Err(refuse(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) \
             were specified.",
            assignments.len()
        )));
    }
    let replication_factor = topic.partitions.first().map_or(0, |p| p.replicas.len());
    let mut replica_lists = Vec::with_capacity(assignments.len());
    for (partition, assignment) in (current..).zip(assignments) {
        let replicas: Vec<i32> = assignment.broker_ids.iter().map(|id| id.0).collect();
        let manual = "The manual partition assignment includes";
        if replicas.is_empty() {
            return Err(refuse(format!("{manual} an empty replica list.")));
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (at, broker) in sorted.iter().enumerate() {
            if !image.brokers.contains_key(broker) {
                return Err(refuse(format!(
                    "{manual} broker {broker}, but no such broker is registered."
                )));
            }
            if at > 0 && sorted[at - 1] == *broker {
                return Err(refuse(format!(
                    "{manual} the broker {broker} more than once."
                )));
            }
        }
        if replicas.len() != replication_factor {
            return Err(refuse(format!(
                "{manual} a partition with {} replica(s), but this is not consistent with \
                 previous partitions, which have {replication_factor} replica(s).",
                replicas.len()
            )));
        }
        if !replicas.iter().any(|broker| image.is_alive(*broker)) {
            return Err(refuse(format!(
                "All brokers specified in the manual partition assignment for partition \
                 {partition} are fenced or in controlled shutdown."
            )));
        }
        replica_lists.push(replicas);
    }
    Ok(replica_lists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use uuid::Uuid;

    const ORDERS: Uuid = Uuid::from_u128(7);

    /// Brokers 1 and 2 (2 fenced when `fence_two`), and "orders" with 2 partitions of 1 replica.
    fn image(fence_two: bool) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in [1, 2] {
            image.apply(&MetadataCommand::RegisterBroker {
                id,
                incarnation: Uuid::from_u128(id as u128),
                host: "localhost".into(),
                port: 9092,
                rack: None,
                endpoints: Vec::new(),
            });
        }
        let created = image.apply(&MetadataCommand::CreateTopic {
            name: "orders".into(),
            id: ORDERS,
            partitions: 2,
            replication_factor: 1,
            assignments: None,
            configs: Default::default(),
        });
        assert_eq!(created, CommandResult::TopicCreated { id: ORDERS });
        if fence_two {
            image.apply(&MetadataCommand::FenceBroker { id: 2 });
        }
        image
    }

    fn wanted(name: &str, count: i32, assignments: Option<&[&[i32]]>) -> CreatePartitionsTopic {
        let assignments = assignments.map(|lists| {
            lists
                .iter()
                .map(|brokers| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers.iter().map(|&id| BrokerId(id)).collect())
                })
                .collect()
        });
        CreatePartitionsTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_count(count)
            .with_assignments(assignments)
    }

    fn refusal(image: &MetadataImage, wanted: &CreatePartitionsTopic) -> (ErrorCode, String) {
        let error = check(image, wanted).expect_err("refused");
        (error.code, error.message)
    }

    #[test]
    fn growing_a_topic_proposes_the_new_count_and_the_image_accepts_it() {
        let mut image = image(false);
        let command = check(&image, &wanted("orders", 5, None)).unwrap();
        assert_eq!(
            command,
            MetadataCommand::CreatePartitions {
                id: ORDERS,
                count: 5,
                assignments: None
            }
        );
        assert_eq!(image.apply(&command), CommandResult::Done);
        assert_eq!(image.topics["orders"].partitions.len(), 5);
    }

    #[test]
    fn explicit_assignments_are_passed_on_in_order() {
        let image = image(false);
        let command = check(&image, &wanted("orders", 4, Some(&[&[2], &[1]]))).unwrap();
        assert_eq!(
            command,
            MetadataCommand::CreatePartitions {
                id: ORDERS,
                count: 4,
                assignments: Some(vec![vec![2], vec![1]])
            }
        );
    }

    #[test]
    fn unknown_topics_and_counts_that_do_not_grow_are_refused_in_kafkas_words() {
        let image = image(false);
        assert_eq!(
            refusal(&image, &wanted("nope", 3, None)),
            (ErrorCode::UnknownTopicOrPartition, String::new())
        );
        assert_eq!(
            refusal(&image, &wanted("orders", 2, None)),
            (
                ErrorCode::InvalidPartitions,
                "Topic already has 2 partition(s).".into()
            )
        );
        assert_eq!(
            refusal(&image, &wanted("orders", 1, None)),
            (
                ErrorCode::InvalidPartitions,
                "The topic orders currently has 2 partition(s); 1 would not be an increase.".into()
            )
        );
        let too_many = strom_types::limits::PARTITIONS_PER_TOPIC_MAX + 1;
        assert_eq!(
            refusal(&image, &wanted("orders", too_many, None)).0,
            ErrorCode::InvalidPartitions
        );
    }

    #[test]
    fn bad_assignments_are_refused_in_kafkas_words() {
        let image = image(true);
        let cases: &[(&[&[i32]], &str)] = &[
            (
                &[&[1]],
                "Attempted to add 2 additional partition(s), but only 1 assignment(s) were \
                 specified.",
            ),
            (
                &[&[1], &[]],
                "The manual partition assignment includes an empty replica list.",
            ),
            (
                &[&[1], &[9]],
                "The manual partition assignment includes broker 9, but no such broker is \
                 registered.",
            ),
            (
                &[&[1, 1], &[1]],
                "The manual partition assignment includes the broker 1 more than once.",
            ),
            (
                &[&[1, 2], &[1]],
                "The manual partition assignment includes a partition with 2 replica(s), but \
                 this is not consistent with previous partitions, which have 1 replica(s).",
            ),
            (
                &[&[1], &[2]],
                "All brokers specified in the manual partition assignment for partition 3 are \
                 fenced or in controlled shutdown.",
            ),
        ];
        for (assignments, message) in cases {
            assert_eq!(
                refusal(&image, &wanted("orders", 4, Some(assignments))),
                (ErrorCode::InvalidReplicaAssignment, message.to_string()),
                "{assignments:?}"
            );
        }
    }

    #[test]
    fn names_given_twice_are_found() {
        let topics = [
            wanted("a", 2, None),
            wanted("b", 2, None),
            wanted("a", 3, None),
        ];
        assert_eq!(duplicated_names(&topics), BTreeSet::from(["a".to_owned()]));
    }
}
