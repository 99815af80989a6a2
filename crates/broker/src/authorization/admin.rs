//! Administration: CreateTopics (CREATE on the cluster or the topic), CreatePartitions
//! (ALTER on the topic), DeleteTopics (DELETE on the topic), DescribeConfigs (DESCRIBE_CONFIGS
//! on the topic, or on the cluster for broker configs), DescribeQuorum (DESCRIBE on the
//! cluster), ElectLeaders (ALTER on the cluster), the ACL APIs (DESCRIBE / ALTER on the
//! cluster) and the SCRAM user APIs (DESCRIBE / ALTER on the cluster). ApiVersions, the SASL exchange and DescribeCluster need
//! nothing.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_user_scram_credentials_response, elect_leaders_response,
    AlterUserScramCredentialsResponse, CreateAclsResponse, CreateTopicsRequest, DeleteAclsResponse,
    DeleteTopicsRequest, DescribeAclsResponse, DescribeConfigsRequest, DescribeQuorumResponse,
    DescribeUserScramCredentialsResponse, ElectLeadersRequest, ElectLeadersResponse, RequestKind,
    ResponseKind,
};
use strom_types::security::AclOperation;
use strom_types::ErrorCode;

use super::{patch_of, take_refused, Access, Checked};

const CLUSTER_DENIED: ErrorCode = ErrorCode::ClusterAuthorizationFailed;
const TOPIC_DENIED: ErrorCode = ErrorCode::TopicAuthorizationFailed;

/// Kafka's ConfigResource types in DescribeConfigs.
const CONFIG_RESOURCE_TOPIC: i8 = 2;

pub fn check(access: &Access, request: RequestKind) -> Checked {
    match request {
        RequestKind::CreateTopics(body) => create_topics(access, body),
        RequestKind::DeleteTopics(body) => delete_topics(access, body),
        RequestKind::CreatePartitions(mut body) => {
            let refused: Vec<_> = take_refused(&mut body.topics, |topic| {
                access.allows_topic(AclOperation::Alter, &topic.name)
            })
            .into_iter()
            .map(|topic| topic.name.clone())
            .collect();
            let patch = patch_of(move |response| {
                let ResponseKind::CreatePartitions(response) = response else {
                    return;
                };
                for name in refused {
                    response.results.push(
                        CreatePartitionsTopicResult::default()
                            .with_name(name)
                            .with_error_code(TOPIC_DENIED.code()),
                    );
                }
            });
            Checked::Allowed(RequestKind::CreatePartitions(body), patch)
        }
        RequestKind::DescribeConfigs(body) => describe_configs(access, body),
        RequestKind::DescribeQuorum(body) => {
            if access.allows_cluster(AclOperation::Describe) {
                return Checked::Allowed(RequestKind::DescribeQuorum(body), None);
            }
            let response = DescribeQuorumResponse::default()
                .with_error_code(CLUSTER_DENIED.code())
                .with_error_message(Some(str_bytes(CLUSTER_DENIED.message())));
            Checked::Refused(ResponseKind::DescribeQuorum(response))
        }
        RequestKind::ElectLeaders(body) => elect_leaders(access, body),
        RequestKind::CreateAcls(body) => {
            if access.allows_cluster(AclOperation::Alter) {
                return Checked::Allowed(RequestKind::CreateAcls(body), None);
            }
            let results = (body.creations.iter())
                .map(|_| AclCreationResult::default().with_error_code(CLUSTER_DENIED.code()))
                .collect();
            Checked::Refused(ResponseKind::CreateAcls(
                CreateAclsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteAcls(body) => {
            if access.allows_cluster(AclOperation::Alter) {
                return Checked::Allowed(RequestKind::DeleteAcls(body), None);
            }
            let results = (body.filters.iter())
                .map(|_| DeleteAclsFilterResult::default().with_error_code(CLUSTER_DENIED.code()))
                .collect();
            Checked::Refused(ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(results),
            ))
        }
        RequestKind::DescribeAcls(body) => {
            if access.allows_cluster(AclOperation::Describe) {
                return Checked::Allowed(RequestKind::DescribeAcls(body), None);
            }
            Checked::Refused(ResponseKind::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(CLUSTER_DENIED.code())
                    .with_error_message(Some(str_bytes(CLUSTER_DENIED.message()))),
            ))
        }
        RequestKind::AlterUserScramCredentials(body) => {
            if access.allows_cluster(AclOperation::Alter) {
                return Checked::Allowed(RequestKind::AlterUserScramCredentials(body), None);
            }
            let users = (body.deletions.iter().map(|d| d.name.clone()))
                .chain(body.upsertions.iter().map(|u| u.name.clone()));
            let results = users
                .map(|user| {
                    alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default(
                    )
                    .with_user(user)
                    .with_error_code(CLUSTER_DENIED.code())
                })
                .collect();
            Checked::Refused(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            ))
        }
        RequestKind::DescribeUserScramCredentials(body) => {
            if access.allows_cluster(AclOperation::Describe) {
                return Checked::Allowed(RequestKind::DescribeUserScramCredentials(body), None);
            }
            Checked::Refused(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(CLUSTER_DENIED.code())
                    .with_error_message(Some(str_bytes(CLUSTER_DENIED.message()))),
            ))
        }
        other => Checked::Allowed(other, None),
    }
}

/// Kafka's `handleElectLeaders`: without ALTER on the cluster, every partition asked for (and
/// the response, v1+) gets CLUSTER_AUTHORIZATION_FAILED.
fn elect_leaders(access: &Access, request: ElectLeadersRequest) -> Checked {
    if access.allows_cluster(AclOperation::Alter) {
        return Checked::Allowed(RequestKind::ElectLeaders(request), None);
    }
    let message = Some(str_bytes(CLUSTER_DENIED.message()));
    let results = (request.topic_partitions.iter().flatten())
        .map(|topic| {
            let partitions = (topic.partitions.iter())
                .map(|partition| {
                    elect_leaders_response::PartitionResult::default()
                        .with_partition_id(*partition)
                        .with_error_code(CLUSTER_DENIED.code())
                        .with_error_message(message.clone())
                })
                .collect();
            elect_leaders_response::ReplicaElectionResult::default()
                .with_topic(topic.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    Checked::Refused(ResponseKind::ElectLeaders(
        ElectLeadersResponse::default()
            .with_error_code(CLUSTER_DENIED.code())
            .with_replica_election_results(results),
    ))
}

fn create_topics(access: &Access, mut request: CreateTopicsRequest) -> Checked {
    let cluster_create = access.allows_cluster(AclOperation::Create);
    let refused: Vec<_> = take_refused(&mut request.topics, |topic| {
        cluster_create || access.allows_topic(AclOperation::Create, &topic.name)
    })
    .into_iter()
    .map(|topic| topic.name.clone())
    .collect();
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::CreateTopics(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::CreateTopics(response) = response else {
            return;
        };
        for name in refused {
            response.topics.push(
                CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(TOPIC_DENIED.code())
                    .with_error_message(Some(str_bytes("Authorization failed.")))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
        }
    });
    Checked::Allowed(RequestKind::CreateTopics(request), patch)
}

fn delete_topics(access: &Access, mut request: DeleteTopicsRequest) -> Checked {
    let image = access.broker().quorum.image();
    let by_name = take_refused(&mut request.topic_names, |name| {
        access.allows_topic(AclOperation::Delete, name)
    });
    let by_id = take_refused(&mut request.topics, |topic| {
        let name = match &topic.name {
            Some(name) => Some(name.to_string()),
            None => image.topic_by_id(topic.topic_id).map(|t| t.name.clone()),
        };
        // An unknown id is the handler's to answer (UNKNOWN_TOPIC_ID).
        name.as_deref()
            .is_none_or(|name| access.allows_topic(AclOperation::Delete, name))
    });
    let refused: Vec<DeletableTopicResult> = (by_name.into_iter())
        .map(|name| DeletableTopicResult::default().with_name(Some(name)))
        .chain(by_id.into_iter().map(|topic| {
            DeletableTopicResult::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
        }))
        .collect();
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::DeleteTopics(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::DeleteTopics(response) = response else {
            return;
        };
        for result in refused {
            response
                .responses
                .push(result.with_error_code(TOPIC_DENIED.code()));
        }
    });
    Checked::Allowed(RequestKind::DeleteTopics(request), patch)
}

fn describe_configs(access: &Access, mut request: DescribeConfigsRequest) -> Checked {
    let mut refused = Vec::new();
    request.resources.retain(|resource| {
        let (allowed, code) = match resource.resource_type {
            CONFIG_RESOURCE_TOPIC => (
                access.allows_topic(AclOperation::DescribeConfigs, &resource.resource_name),
                TOPIC_DENIED,
            ),
            _ => (
                access.allows_cluster(AclOperation::DescribeConfigs),
                CLUSTER_DENIED,
            ),
        };
        if !allowed {
            refused.push(
                DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone())
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(code.message()))),
            );
        }
        allowed
    });
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::DescribeConfigs(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::DescribeConfigs(response) = response else {
            return;
        };
        response.results.extend(refused);
    });
    Checked::Allowed(RequestKind::DescribeConfigs(request), patch)
}

fn str_bytes(text: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(text.to_owned())
}
