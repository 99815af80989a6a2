//! Administration: CreateTopics (CREATE on the cluster or the topic), CreatePartitions
//! (ALTER on the topic), DeleteTopics and DeleteRecords (DELETE on the topic), DescribeConfigs
//! (DESCRIBE_CONFIGS on the topic, or on the cluster for broker configs and loggers),
//! AlterConfigs and IncrementalAlterConfigs (ALTER_CONFIGS likewise), DescribeClientQuotas and
//! AlterClientQuotas (DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster), DescribeQuorum and
//! DescribeLogDirs (DESCRIBE on the cluster), ElectLeaders and AlterPartitionReassignments (ALTER
//! on the cluster), ListPartitionReassignments (DESCRIBE on the cluster), UnregisterBroker
//! (ALTER on the cluster), the ACL APIs
//! (DESCRIBE / ALTER on the cluster) and the SCRAM user APIs (DESCRIBE / ALTER on the cluster).
//! ApiVersions, the SASL exchange and DescribeCluster need nothing.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_client_quotas_response, alter_configs_response, alter_partition_reassignments_response,
    alter_user_scram_credentials_response, elect_leaders_response,
    incremental_alter_configs_response, AlterClientQuotasResponse,
    AlterPartitionReassignmentsResponse, AlterUserScramCredentialsResponse, CreateAclsResponse,
    CreateTopicsRequest, DeleteAclsResponse, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeAclsResponse, DescribeClientQuotasResponse, DescribeConfigsRequest,
    DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeQuorumResponse,
    DescribeUserScramCredentialsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsResponse, RequestKind, ResponseKind, UnregisterBrokerResponse,
};
use strom_types::security::AclOperation;
use strom_types::ErrorCode;

use super::{patch_of, take_refused, take_refused_partitions, Access, Checked};

const CLUSTER_DENIED: ErrorCode = ErrorCode::ClusterAuthorizationFailed;
const TOPIC_DENIED: ErrorCode = ErrorCode::TopicAuthorizationFailed;

/// Kafka's ConfigResource types in DescribeConfigs.
const CONFIG_RESOURCE_TOPIC: i8 = 2;

/// A request that needs `op` on the cluster and is otherwise answered with only a top-level
/// CLUSTER_AUTHORIZATION_FAILED (the response kind has the request's name).
macro_rules! cluster_only {
    ($access:expr, $op:ident, $kind:ident, $response:ident, $body:expr) => {
        if $access.allows_cluster(AclOperation::$op) {
            Checked::Allowed(RequestKind::$kind($body), None)
        } else {
            Checked::Refused(ResponseKind::$kind(
                $response::default()
                    .with_error_code(CLUSTER_DENIED.code())
                    .with_error_message(Some(str_bytes(CLUSTER_DENIED.message()))),
            ))
        }
    };
}

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
        RequestKind::DescribeClientQuotas(body) => {
            if access.allows_cluster(AclOperation::DescribeConfigs) {
                return Checked::Allowed(RequestKind::DescribeClientQuotas(body), None);
            }
            let response = DescribeClientQuotasResponse::default()
                .with_error_code(CLUSTER_DENIED.code())
                .with_error_message(Some(str_bytes(CLUSTER_DENIED.message())))
                .with_entries(None);
            Checked::Refused(ResponseKind::DescribeClientQuotas(response))
        }
        RequestKind::AlterClientQuotas(body) => {
            if access.allows_cluster(AclOperation::AlterConfigs) {
                return Checked::Allowed(RequestKind::AlterClientQuotas(body), None);
            }
            let entries = (body.entries.iter())
                .map(|entry| {
                    let entity = (entry.entity.iter())
                        .map(|part| {
                            alter_client_quotas_response::EntityData::default()
                                .with_entity_type(part.entity_type.clone())
                                .with_entity_name(part.entity_name.clone())
                        })
                        .collect();
                    alter_client_quotas_response::EntryData::default()
                        .with_entity(entity)
                        .with_error_code(CLUSTER_DENIED.code())
                        .with_error_message(Some(str_bytes(CLUSTER_DENIED.message())))
                })
                .collect();
            Checked::Refused(ResponseKind::AlterClientQuotas(
                AlterClientQuotasResponse::default().with_entries(entries),
            ))
        }
        RequestKind::AlterConfigs(mut body) => {
            let refused = take_refused_configs(
                access,
                &mut body.resources,
                |r| (r.resource_type, r.resource_name.as_str()),
                |(kind, name, code)| {
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(kind)
                        .with_resource_name(str_bytes(&name))
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(code.message())))
                },
            );
            let patch = (!refused.is_empty()).then(|| {
                patch_of(move |response| {
                    if let ResponseKind::AlterConfigs(response) = response {
                        response.responses.extend(refused);
                    }
                })
            });
            Checked::Allowed(RequestKind::AlterConfigs(body), patch.flatten())
        }
        RequestKind::IncrementalAlterConfigs(mut body) => {
            let refused = take_refused_configs(
                access,
                &mut body.resources,
                |r| (r.resource_type, r.resource_name.as_str()),
                |(kind, name, code)| {
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(kind)
                        .with_resource_name(str_bytes(&name))
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(code.message())))
                },
            );
            let patch = (!refused.is_empty()).then(|| {
                patch_of(move |response| {
                    if let ResponseKind::IncrementalAlterConfigs(response) = response {
                        response.responses.extend(refused);
                    }
                })
            });
            Checked::Allowed(RequestKind::IncrementalAlterConfigs(body), patch.flatten())
        }
        RequestKind::DeleteRecords(body) => delete_records(access, body),
        RequestKind::DescribeQuorum(body) => cluster_only!(
            access,
            Describe,
            DescribeQuorum,
            DescribeQuorumResponse,
            body
        ),
        RequestKind::ElectLeaders(body) => elect_leaders(access, body),
        RequestKind::AlterPartitionReassignments(body) => {
            if access.allows_cluster(AclOperation::Alter) {
                return Checked::Allowed(RequestKind::AlterPartitionReassignments(body), None);
            }
            let message = Some(str_bytes(CLUSTER_DENIED.message()));
            let responses = (body.topics.iter())
                .map(|topic| {
                    let partitions = (topic.partitions.iter())
                        .map(|partition| {
                            alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(CLUSTER_DENIED.code())
                                .with_error_message(message.clone())
                        })
                        .collect();
                    alter_partition_reassignments_response::ReassignableTopicResponse::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            Checked::Refused(ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default()
                    .with_error_code(CLUSTER_DENIED.code())
                    .with_error_message(message)
                    .with_responses(responses),
            ))
        }
        RequestKind::UnregisterBroker(body) => cluster_only!(
            access,
            Alter,
            UnregisterBroker,
            UnregisterBrokerResponse,
            body
        ),
        RequestKind::ListPartitionReassignments(body) => cluster_only!(
            access,
            Describe,
            ListPartitionReassignments,
            ListPartitionReassignmentsResponse,
            body
        ),
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
            cluster_only!(access, Describe, DescribeAcls, DescribeAclsResponse, body)
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
        RequestKind::DescribeUserScramCredentials(body) => cluster_only!(
            access,
            Describe,
            DescribeUserScramCredentials,
            DescribeUserScramCredentialsResponse,
            body
        ),
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

/// Takes out of an AlterConfigs or IncrementalAlterConfigs request the resources the principal
/// may not ALTER_CONFIGS (the topic, or the cluster for brokers, loggers and any other type,
/// which the handler refuses anyway), answered by `answer` with (type, name, error).
fn take_refused_configs<R, A>(
    access: &Access,
    resources: &mut Vec<R>,
    key: impl Fn(&R) -> (i8, &str),
    answer: impl Fn((i8, String, ErrorCode)) -> A,
) -> Vec<A> {
    let denial = |resource: &R| {
        let (kind, name) = key(resource);
        let (allowed, code) = match kind {
            CONFIG_RESOURCE_TOPIC => (
                access.allows_topic(AclOperation::AlterConfigs, name),
                TOPIC_DENIED,
            ),
            _ => (
                access.allows_cluster(AclOperation::AlterConfigs),
                CLUSTER_DENIED,
            ),
        };
        (!allowed).then(|| (kind, name.to_owned(), code))
    };
    let mut denials = Vec::new();
    resources.retain(|resource| match denial(resource) {
        Some(denied) => {
            denials.push(answer(denied));
            false
        }
        None => true,
    });
    denials
}

/// DELETE on each topic; a refused topic's partitions are answered TOPIC_AUTHORIZATION_FAILED
/// with Kafka's INVALID_LOW_WATERMARK (-1).
fn delete_records(access: &Access, mut request: DeleteRecordsRequest) -> Checked {
    let refused = take_refused_partitions(
        &mut request.topics,
        |topic| access.allows_topic(AclOperation::Delete, &topic.name),
        |topic| {
            let indexes = topic.partitions.iter().map(|p| p.partition_index);
            (topic.name.clone(), indexes.collect())
        },
    );
    if refused.is_empty() {
        return Checked::Allowed(RequestKind::DeleteRecords(request), None);
    }
    let patch = patch_of(move |response| {
        let ResponseKind::DeleteRecords(response) = response else {
            return;
        };
        for (name, indexes) in refused {
            let partitions = (indexes.into_iter())
                .map(|index| {
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(index)
                        .with_low_watermark(-1)
                        .with_error_code(TOPIC_DENIED.code())
                })
                .collect();
            response.topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
    });
    Checked::Allowed(RequestKind::DeleteRecords(request), patch)
}

/// DESCRIBE on the cluster; refused, Kafka answers no log directories, with
/// CLUSTER_AUTHORIZATION_FAILED as the top-level error from v3 (before it, the empty list is
/// the only sign).
pub fn describe_log_dirs(
    access: &Access,
    request: DescribeLogDirsRequest,
    version: i16,
) -> Checked {
    if access.allows_cluster(AclOperation::Describe) {
        return Checked::Allowed(RequestKind::DescribeLogDirs(request), None);
    }
    let mut response = DescribeLogDirsResponse::default();
    if version >= 3 {
        response.error_code = CLUSTER_DENIED.code();
    }
    Checked::Refused(ResponseKind::DescribeLogDirs(response))
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
