//! The client quotas that are not about bytes: `request_percentage` (KIP-124) and
//! `controller_mutation_rate` (KIP-599), resolved per user and client id like the byte quotas
//! (`quotas::resolve`) and measured with the same rates.
//!
//! - `request_percentage`: the time the broker spends handling a client's requests, in percent
//!   of one thread (200 is two threads' worth) over the quota window. What counts is the
//!   handler's own work (decoding done, up to the reply or the future it hands the connection),
//!   not the time a request waits for records or replicas, as Kafka counts request-handler
//!   time and not purgatory. A client over it gets `throttle_time_ms` in the response and its
//!   connection reads nothing more for that long (KIP-219). Exempt, as in Kafka: followers'
//!   fetches and the APIs a client needs before it may be throttled (ApiVersions, the SASL
//!   exchange).
//! - `controller_mutation_rate`: partitions created (CreateTopics, CreatePartitions) and
//!   deleted (DeleteTopics) per second. In Kafka's strict mode (CreateTopics v6+,
//!   CreatePartitions v3+, DeleteTopics v5+) a topic asked for while the rate is already over
//!   the quota is refused with THROTTLING_QUOTA_EXCEEDED and the others go through (the one
//!   that takes the rate over is still accepted); older versions are permissive: everything
//!   goes through and only the throttle time says the client was over. `validate_only`
//!   requests mutate nothing and count nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::MetadataImage;
use strom_protocol::RequestFrame;
use strom_types::ErrorCode;

use crate::authorization::{patch_of, Patch};
use crate::context::RequestContext;
use crate::quotas::{wire_ms, QuotaKind, SharedQuotas};
use crate::Broker;

/// The first versions in which a controller mutation quota refuses topics (strict mode).
const CREATE_TOPICS_STRICT: i16 = 6;
const CREATE_PARTITIONS_STRICT: i16 = 3;
const DELETE_TOPICS_STRICT: i16 = 5;

/// A request whose handling time counts against its client's `request_percentage`.
pub struct RequestTimer {
    broker: Arc<Broker>,
    quotas: SharedQuotas,
    user: String,
    client_id: String,
    context: RequestContext,
    started: Instant,
}

/// Starts timing `request` when a `request_percentage` quota applies to its client.
pub fn time(
    broker: &Arc<Broker>,
    quotas: &SharedQuotas,
    request: &RequestFrame,
    context: &RequestContext,
) -> Option<RequestTimer> {
    if quotas.is_empty() || exempt(&request.body) {
        return None;
    }
    let user = context.user().to_owned();
    let client_id = request.client_id.clone().unwrap_or_default();
    crate::quotas::resolve(quotas, &user, &client_id, crate::quotas::REQUEST_PERCENTAGE)?;
    Some(RequestTimer {
        broker: broker.clone(),
        quotas: quotas.clone(),
        user,
        client_id,
        context: context.clone(),
        started: Instant::now(),
    })
}

fn exempt(body: &RequestKind) -> bool {
    match body {
        RequestKind::ApiVersions(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_) => true,
        RequestKind::Fetch(fetch) => {
            fetch.replica_id.0 >= 0 || fetch.replica_state.replica_id.0 >= 0
        }
        _ => false,
    }
}

impl RequestTimer {
    /// Records the time since the request was taken up; a client now over its quota is muted
    /// and the patch puts the throttle time in the response.
    pub fn finish(self) -> Option<Patch> {
        // Percent of one thread: a second of handling in a one-second window is 100.
        let percent_seconds = self.started.elapsed().as_secs_f64() * 100.0;
        let throttle = self.broker.quota_rates.record_amount(
            &self.quotas,
            QuotaKind::Request,
            &self.user,
            &self.client_id,
            percent_seconds,
        );
        if throttle.is_zero() {
            return None;
        }
        self.context.throttle.mute_for(throttle);
        patch_of(move |response| set_throttle_time(response, throttle))
    }
}

/// Applies the controller mutation quota to a CreateTopics, CreatePartitions or DeleteTopics
/// request (see the module docs): in strict mode, takes out the topics asked for while the
/// rate is over the quota; records the partitions of the others. The patch answers the topics
/// taken out and sets the throttle time.
pub fn limit_mutations(
    broker: &Arc<Broker>,
    request: &mut RequestFrame,
    context: &RequestContext,
) -> Option<Patch> {
    let version = request.api_version;
    let strict = match &request.body {
        RequestKind::CreateTopics(body) if !body.validate_only => version >= CREATE_TOPICS_STRICT,
        RequestKind::CreatePartitions(body) if !body.validate_only => {
            version >= CREATE_PARTITIONS_STRICT
        }
        RequestKind::DeleteTopics(_) => version >= DELETE_TOPICS_STRICT,
        _ => return None,
    };
    let image = broker.quorum.image();
    let quotas = image.client_quotas.clone();
    if quotas.is_empty() {
        return None;
    }
    let user = context.user().to_owned();
    let client_id = request.client_id.clone().unwrap_or_default();
    let kind = QuotaKind::ControllerMutation;
    crate::quotas::resolve(
        &quotas,
        &user,
        &client_id,
        crate::quotas::CONTROLLER_MUTATION_RATE,
    )?;
    let default_partitions = broker.effective_config().num_partitions;
    let rates = &broker.quota_rates;
    // Per topic: refused (strict, over the quota already), or counted.
    let admit = |partitions: i32| -> bool {
        let over = rates
            .throttle_now(&quotas, kind, &user, &client_id)
            .is_some_and(|throttle| !throttle.is_zero());
        if strict && over {
            return false;
        }
        rates.record_amount(
            &quotas,
            kind,
            &user,
            &client_id,
            f64::from(partitions.max(0)),
        );
        true
    };
    let refused: Refused = match &mut request.body {
        RequestKind::CreateTopics(body) => {
            let mut refused = Vec::new();
            body.topics.retain(|topic| {
                let partitions = match topic.assignments.len() {
                    0 if topic.num_partitions > 0 => topic.num_partitions,
                    0 => default_partitions,
                    assigned => assigned as i32,
                };
                let admitted = admit(partitions);
                if !admitted {
                    refused.push(topic.name.clone());
                }
                admitted
            });
            Refused::CreateTopics(refused)
        }
        RequestKind::CreatePartitions(body) => {
            let mut refused = Vec::new();
            body.topics.retain(|topic| {
                let current = partition_count(&image, topic.name.as_str());
                let admitted = admit(topic.count - current.unwrap_or(topic.count));
                if !admitted {
                    refused.push(topic.name.clone());
                }
                admitted
            });
            Refused::CreatePartitions(refused)
        }
        RequestKind::DeleteTopics(body) => {
            let mut refused = Vec::new();
            body.topic_names.retain(|name| {
                let admitted = admit(partition_count(&image, name.as_str()).unwrap_or(0));
                if !admitted {
                    refused.push((Some(name.clone()), uuid::Uuid::nil()));
                }
                admitted
            });
            body.topics.retain(|topic| {
                let partitions = match &topic.name {
                    Some(name) => partition_count(&image, name.as_str()),
                    None => image
                        .topic_by_id(topic.topic_id)
                        .map(|t| t.partitions.len() as i32),
                };
                let admitted = admit(partitions.unwrap_or(0));
                if !admitted {
                    refused.push((topic.name.clone(), topic.topic_id));
                }
                admitted
            });
            Refused::DeleteTopics(refused)
        }
        _ => return None,
    };
    let throttle = (rates.throttle_now(&quotas, kind, &user, &client_id)).unwrap_or_default();
    if refused.is_empty() && throttle.is_zero() {
        return None;
    }
    context.throttle.mute_for(throttle);
    patch_of(move |response| {
        refused.answer(response, throttle);
        set_throttle_time(response, throttle);
    })
}

fn partition_count(image: &MetadataImage, topic: &str) -> Option<i32> {
    image.topics.get(topic).map(|t| t.partitions.len() as i32)
}

/// The topics the mutation quota took out of a request.
enum Refused {
    CreateTopics(Vec<TopicName>),
    CreatePartitions(Vec<TopicName>),
    DeleteTopics(Vec<(Option<TopicName>, uuid::Uuid)>),
}

impl Refused {
    fn is_empty(&self) -> bool {
        match self {
            Refused::CreateTopics(names) | Refused::CreatePartitions(names) => names.is_empty(),
            Refused::DeleteTopics(topics) => topics.is_empty(),
        }
    }

    /// Adds THROTTLING_QUOTA_EXCEEDED answers for the topics taken out.
    fn answer(&self, response: &mut ResponseKind, throttle: Duration) {
        let code = ErrorCode::ThrottlingQuotaExceeded;
        let message = Some(StrBytes::from_string(format!(
            "The throttling quota has been exceeded; retry after {} ms.",
            throttle.as_millis()
        )));
        match (self, response) {
            (Refused::CreateTopics(names), ResponseKind::CreateTopics(response)) => {
                response.topics.extend(names.iter().map(|name| {
                    CreatableTopicResult::default()
                        .with_name(name.clone())
                        .with_error_code(code.code())
                        .with_error_message(message.clone())
                }));
            }
            (Refused::CreatePartitions(names), ResponseKind::CreatePartitions(response)) => {
                response.results.extend(names.iter().map(|name| {
                    CreatePartitionsTopicResult::default()
                        .with_name(name.clone())
                        .with_error_code(code.code())
                        .with_error_message(message.clone())
                }));
            }
            (Refused::DeleteTopics(topics), ResponseKind::DeleteTopics(response)) => {
                response.responses.extend(topics.iter().map(|(name, id)| {
                    DeletableTopicResult::default()
                        .with_name(name.clone())
                        .with_topic_id(*id)
                        .with_error_code(code.code())
                        .with_error_message(message.clone())
                }));
            }
            _ => {}
        }
    }
}

/// Sets a response's `throttle_time_ms` to at least `throttle` (responses without the field
/// only mute the connection).
pub fn set_throttle_time(response: &mut ResponseKind, throttle: Duration) {
    let ms = wire_ms(throttle);
    macro_rules! throttled {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(response) => {
                    response.throttle_time_ms = response.throttle_time_ms.max(ms);
                })*
                _ => {}
            }
        };
    }
    throttled!(
        AddOffsetsToTxn,
        AddPartitionsToTxn,
        AlterClientQuotas,
        AlterConfigs,
        AlterPartitionReassignments,
        AlterUserScramCredentials,
        ApiVersions,
        ConsumerGroupDescribe,
        ConsumerGroupHeartbeat,
        CreateAcls,
        CreatePartitions,
        CreateTopics,
        DeleteAcls,
        DeleteGroups,
        DeleteRecords,
        DeleteTopics,
        DescribeAcls,
        DescribeClientQuotas,
        DescribeCluster,
        DescribeConfigs,
        DescribeGroups,
        DescribeLogDirs,
        DescribeProducers,
        DescribeTransactions,
        DescribeUserScramCredentials,
        ElectLeaders,
        EndTxn,
        Fetch,
        FindCoordinator,
        Heartbeat,
        IncrementalAlterConfigs,
        InitProducerId,
        JoinGroup,
        LeaveGroup,
        ListGroups,
        ListOffsets,
        ListPartitionReassignments,
        ListTransactions,
        Metadata,
        OffsetCommit,
        OffsetDelete,
        OffsetFetch,
        OffsetForLeaderEpoch,
        Produce,
        SyncGroup,
        TxnOffsetCommit,
        UnregisterBroker,
    );
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{FetchRequest, MetadataResponse, ProduceResponse};

    use super::*;

    #[test]
    fn the_throttle_time_set_is_the_larger_one() {
        let mut response =
            ResponseKind::Produce(ProduceResponse::default().with_throttle_time_ms(700));
        set_throttle_time(&mut response, Duration::from_millis(300));
        set_throttle_time(&mut response, Duration::from_millis(500));
        let ResponseKind::Produce(produce) = &response else {
            unreachable!()
        };
        assert_eq!(produce.throttle_time_ms, 700);
        let mut response = ResponseKind::Metadata(MetadataResponse::default());
        set_throttle_time(&mut response, Duration::from_millis(1_250));
        let ResponseKind::Metadata(metadata) = &response else {
            unreachable!()
        };
        assert_eq!(metadata.throttle_time_ms, 1_250);
    }

    #[test]
    fn followers_fetches_and_the_handshake_are_exempt() {
        let follower =
            FetchRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(2));
        assert!(exempt(&RequestKind::Fetch(follower)));
        assert!(exempt(&RequestKind::ApiVersions(Default::default())));
        let consumer =
            FetchRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1));
        assert!(!exempt(&RequestKind::Fetch(consumer)));
        assert!(!exempt(&RequestKind::Metadata(Default::default())));
    }
}
