//! An in-process fake broker for the client's tests: a tokio listener that answers
//! ApiVersions, Metadata, CreateTopics, DeleteTopics, DescribeConfigs, Produce, Fetch and
//! ListOffsets from an in-memory log, the group APIs from in-memory groups ([`groups`]), and
//! the ACL and SCRAM APIs from in-memory bindings and credentials ([`security`]), with knobs
//! to misbehave. It can listen with TLS ([`FakeBroker::start_tls`]) and ask for a SASL login
//! ([`sasl`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, StrBytes,
};
use strom_protocol::batch::{self, Batches};
use strom_types::Offset;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

mod groups;
mod sasl;
mod security;

pub use groups::{FakeGroup, FakeMember};
pub use sasl::FakeSasl;
pub use security::FakeCredentials;

/// One partition's log: whole batches with their offsets assigned.
#[derive(Default)]
pub struct FakePartition {
    pub batches: Vec<Bytes>,
    pub end_offset: i64,
}

/// A topic's partitions and the configs it was created with.
pub type FakeTopic = (Vec<FakePartition>, Vec<(String, String)>);

/// What the fake holds and how it misbehaves; tests change it between calls.
pub struct FakeState {
    /// (api key, min, max) advertised in ApiVersions.
    pub api_versions: Vec<(i16, i16, i16)>,
    /// Highest ApiVersions version understood; above it the fake answers like an old Kafka.
    pub api_versions_version_max: i16,
    pub topics: BTreeMap<String, FakeTopic>,
    pub auto_create: bool,
    /// Error codes the next produce requests answer with, one each, before working again.
    pub produce_errors: VecDeque<i16>,
    /// Every request seen: (api key, version).
    pub requests: Vec<(i16, i16)>,
    /// API keys never answered.
    pub silent: Vec<i16>,
    /// Answer every non-ApiVersions request with a 2 GiB length prefix.
    pub oversize_responses: bool,
    /// Consumer groups by id, for the group APIs.
    pub groups: BTreeMap<String, FakeGroup>,
    /// Error codes the next group requests (not FindCoordinator) answer with, one each.
    pub coordinator_errors: VecDeque<i16>,
    /// The coordinator FindCoordinator names, as (node id, port); `None` names this broker.
    pub coordinator: Option<(i32, u16)>,
    /// When set, connections must log in before anything but ApiVersions.
    pub sasl: Option<FakeSasl>,
    /// ACL bindings, for the ACL APIs.
    pub acls: BTreeSet<strom_types::security::AclBinding>,
    /// SCRAM credentials, for the SCRAM APIs.
    pub credentials: FakeCredentials,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            api_versions: vec![
                (0, 3, 9),
                (1, 4, 12),
                (17, 0, 1),
                (36, 0, 2),
                (2, 1, 8),
                (3, 0, 12),
                (18, 0, 3),
                (19, 2, 7),
                (20, 1, 6),
                (32, 1, 4),
                (8, 2, 9),
                (9, 1, 9),
                (10, 0, 4),
                (15, 0, 5),
                (16, 0, 5),
                (42, 0, 2),
                (47, 0, 0),
                (69, 0, 1),
                (29, 1, 3),
                (30, 1, 3),
                (31, 1, 3),
                (50, 0, 0),
                (51, 0, 0),
            ],
            api_versions_version_max: 3,
            topics: BTreeMap::new(),
            auto_create: false,
            produce_errors: VecDeque::new(),
            requests: Vec::new(),
            silent: Vec::new(),
            oversize_responses: false,
            groups: BTreeMap::new(),
            coordinator_errors: VecDeque::new(),
            coordinator: None,
            sasl: None,
            acls: BTreeSet::new(),
            credentials: FakeCredentials::new(),
        }
    }
}

impl FakeState {
    pub fn count(&self, api_key: i16) -> usize {
        self.requests
            .iter()
            .filter(|(key, _)| *key == api_key)
            .count()
    }

    pub fn create(&mut self, name: &str, partitions: usize) {
        let partitions = (0..partitions).map(|_| FakePartition::default()).collect();
        self.topics
            .insert(name.to_string(), (partitions, Vec::new()));
    }
}

pub struct FakeBroker {
    pub address: String,
    pub state: Arc<Mutex<FakeState>>,
    task: JoinHandle<()>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBroker {
    pub async fn start(state: FakeState) -> FakeBroker {
        FakeBroker::start_listening(state, None).await
    }

    /// A fake whose listener speaks TLS with `config`; a failed handshake closes the socket.
    pub async fn start_tls(state: FakeState, config: Arc<rustls::ServerConfig>) -> FakeBroker {
        FakeBroker::start_listening(state, Some(TlsAcceptor::from(config))).await
    }

    async fn start_listening(state: FakeState, tls: Option<TlsAcceptor>) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (state, tls) = (shared.clone(), tls.clone());
                connections.spawn(async move {
                    match tls {
                        None => serve(stream, state, address).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, state, address).await
                            }
                        }
                    }
                });
            }
        });
        FakeBroker {
            address: address.to_string(),
            state,
            task,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: Arc<Mutex<FakeState>>,
    address: SocketAddr,
) {
    let port = address.port();
    let mut login = sasl::SaslSession::default();
    loop {
        let Ok(length) = stream.read_i32().await else {
            return;
        };
        let mut frame = vec![0; length as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut frame = Bytes::from(frame);
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        let key = header.request_api_key;
        let answer = if key == 17 || key == 36 {
            let mut state = state.lock().unwrap();
            state.requests.push((key, header.request_api_version));
            sasl::handle(
                &mut state,
                &mut login,
                key,
                header.request_api_version,
                frame,
            )
        } else if sasl::refuses(&state.lock().unwrap(), &login, key) {
            return;
        } else {
            handle(&state, &header, frame, port)
        };
        let Some(body) = answer else { continue };
        let oversize = state.lock().unwrap().oversize_responses && header.request_api_key != 18;
        if oversize {
            stream.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
            stream.write_all(&[0; 64]).await.unwrap();
            continue;
        }
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, body.1)
            .unwrap();
        out.extend_from_slice(&body.0);
        let length = out.len() as i32 - 4;
        out[..4].copy_from_slice(&length.to_be_bytes());
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

fn encode<R: Encodable + HeaderVersion>(response: &R, version: i16) -> Option<(BytesMut, i16)> {
    let mut body = BytesMut::new();
    response.encode(&mut body, version).unwrap();
    Some((body, R::header_version(version)))
}

fn handle(
    state: &Mutex<FakeState>,
    header: &RequestHeader,
    mut body: Bytes,
    port: u16,
) -> Option<(BytesMut, i16)> {
    let version = header.request_api_version;
    let key = header.request_api_key;
    let mut state = state.lock().unwrap();
    state.requests.push((key, version));
    if state.silent.contains(&key) {
        return None;
    }
    match key {
        18 => {
            let keys = state
                .api_versions
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect();
            let response = ApiVersionsResponse::default().with_api_keys(keys);
            if version > state.api_versions_version_max {
                // Kafka answers an ApiVersions version it does not know in v0.
                return encode(&response.with_error_code(35), 0);
            }
            encode(&response, version)
        }
        3 => {
            let request = MetadataRequest::decode(&mut body, version).unwrap();
            encode(&metadata(&mut state, request, port), version)
        }
        19 => {
            let request = CreateTopicsRequest::decode(&mut body, version).unwrap();
            let mut results = Vec::new();
            for topic in request.topics {
                let name = topic.name.to_string();
                let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
                if state.topics.contains_key(&name) {
                    result.error_code = 36;
                } else {
                    let partitions = if topic.num_partitions < 0 {
                        1
                    } else {
                        topic.num_partitions
                    };
                    state.create(&name, partitions as usize);
                    let configs = topic.configs.iter().map(|c| {
                        (
                            c.name.to_string(),
                            c.value.as_deref().unwrap_or("").to_string(),
                        )
                    });
                    state.topics.get_mut(&name).unwrap().1 = configs.collect();
                    result.num_partitions = partitions;
                    result.replication_factor = 1;
                }
                results.push(result);
            }
            encode(
                &CreateTopicsResponse::default().with_topics(results),
                version,
            )
        }
        20 => {
            let request = DeleteTopicsRequest::decode(&mut body, version).unwrap();
            let names: Vec<TopicName> = if version >= 6 {
                request
                    .topics
                    .into_iter()
                    .filter_map(|topic| topic.name)
                    .collect()
            } else {
                request.topic_names
            };
            let results = names
                .into_iter()
                .map(|name| {
                    let error_code = if state.topics.remove(name.as_str()).is_some() {
                        0
                    } else {
                        3
                    };
                    DeletableTopicResult::default()
                        .with_name(Some(name))
                        .with_error_code(error_code)
                })
                .collect();
            encode(
                &DeleteTopicsResponse::default().with_responses(results),
                version,
            )
        }
        32 => {
            let request = DescribeConfigsRequest::decode(&mut body, version).unwrap();
            let results = request
                .resources
                .into_iter()
                .map(|resource| {
                    let result = DescribeConfigsResult::default()
                        .with_resource_type(2)
                        .with_resource_name(resource.resource_name.clone());
                    match state.topics.get(resource.resource_name.as_str()) {
                        None => result.with_error_code(3),
                        Some((_, configs)) => {
                            let mut entries: Vec<_> = configs
                                .iter()
                                .map(|(name, value)| {
                                    DescribeConfigsResourceResult::default()
                                        .with_name(StrBytes::from_string(name.clone()))
                                        .with_value(Some(StrBytes::from_string(value.clone())))
                                        .with_config_source(1)
                                })
                                .collect();
                            entries.push(
                                DescribeConfigsResourceResult::default()
                                    .with_name(StrBytes::from_static_str("segment.bytes"))
                                    .with_value(Some(StrBytes::from_static_str("1073741824")))
                                    .with_config_source(5),
                            );
                            result.with_configs(entries)
                        }
                    }
                })
                .collect();
            encode(
                &DescribeConfigsResponse::default().with_results(results),
                version,
            )
        }
        0 => {
            let request = ProduceRequest::decode(&mut body, version).unwrap();
            let response = produce(&mut state, &request);
            if request.acks == 0 {
                return None;
            }
            encode(&response, version)
        }
        1 => {
            let request = FetchRequest::decode(&mut body, version).unwrap();
            encode(&fetch(&state, request), version)
        }
        2 => {
            let request = ListOffsetsRequest::decode(&mut body, version).unwrap();
            let topics = request
                .topics
                .into_iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let response = ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index);
                            let log = state
                                .topics
                                .get(topic.name.as_str())
                                .and_then(|(ps, _)| ps.get(p.partition_index as usize));
                            match (log, p.timestamp) {
                                (None, _) => response.with_error_code(3),
                                (Some(_), -2) => response.with_offset(0),
                                (Some(log), _) => response.with_offset(log.end_offset),
                            }
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect();
            encode(&ListOffsetsResponse::default().with_topics(topics), version)
        }
        8 | 9 | 10 | 15 | 16 | 42 | 47 | 69 => groups::handle(&mut state, key, version, body, port),
        29 | 30 | 31 | 50 | 51 => security::handle(&mut state, key, version, body),
        other => panic!("the fake broker does not handle api key {other}"),
    }
}

fn metadata(state: &mut FakeState, request: MetadataRequest, port: u16) -> MetadataResponse {
    let names: Vec<String> = match &request.topics {
        Some(topics) if !topics.is_empty() => topics
            .iter()
            .filter_map(|topic| topic.name.as_ref().map(|name| name.to_string()))
            .collect(),
        _ => state.topics.keys().cloned().collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| {
            if !state.topics.contains_key(&name)
                && state.auto_create
                && request.allow_auto_topic_creation
            {
                state.create(&name, 1);
            }
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
            match state.topics.get(&name) {
                None => topic.with_error_code(3),
                Some((partitions, _)) => topic.with_partitions(
                    (0..partitions.len() as i32)
                        .map(|index| {
                            MetadataResponsePartition::default()
                                .with_partition_index(index)
                                .with_leader_id(BrokerId(1))
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)])
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_static_str("127.0.0.1"))
        .with_port(port as i32);
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_controller_id(BrokerId(1))
        .with_topics(topics)
}

fn produce(state: &mut FakeState, request: &ProduceRequest) -> ProduceResponse {
    let mut responses = Vec::new();
    for topic in &request.topic_data {
        let mut partitions = Vec::new();
        for data in &topic.partition_data {
            let response = PartitionProduceResponse::default().with_index(data.index);
            if let Some(code) = state.produce_errors.pop_front() {
                partitions.push(response.with_error_code(code));
                continue;
            }
            let Some(log) = state
                .topics
                .get_mut(topic.name.as_str())
                .and_then(|(ps, _)| ps.get_mut(data.index as usize))
            else {
                partitions.push(response.with_error_code(3));
                continue;
            };
            let records = data.records.clone().unwrap_or_default();
            let base_offset = log.end_offset;
            for (header, range) in Batches::new(&records) {
                let mut stored = records[range].to_vec();
                batch::set_base_offset(&mut stored, Offset(log.end_offset));
                log.end_offset += header.last_offset_delta as i64 + 1;
                log.batches.push(Bytes::from(stored));
            }
            partitions.push(response.with_base_offset(base_offset));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

fn fetch(state: &FakeState, request: FetchRequest) -> FetchResponse {
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = PartitionData::default().with_partition_index(p.partition);
                    let Some(log) = state
                        .topics
                        .get(topic.topic.as_str())
                        .and_then(|(ps, _)| ps.get(p.partition as usize))
                    else {
                        return response.with_error_code(3);
                    };
                    if p.fetch_offset > log.end_offset || p.fetch_offset < 0 {
                        return response
                            .with_error_code(1)
                            .with_high_watermark(log.end_offset);
                    }
                    let mut records = BytesMut::new();
                    for stored in &log.batches {
                        let header = batch::BatchHeader::parse(stored).unwrap();
                        if header.last_offset().0 < p.fetch_offset {
                            continue;
                        }
                        if !records.is_empty()
                            && records.len() + stored.len() > p.partition_max_bytes as usize
                        {
                            // Cut like Kafka: only the start of this batch makes it in.
                            records.extend_from_slice(&stored[..20]);
                            break;
                        }
                        records.extend_from_slice(stored);
                    }
                    response
                        .with_high_watermark(log.end_offset)
                        .with_last_stable_offset(log.end_offset)
                        .with_log_start_offset(0)
                        .with_records(Some(records.freeze()))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}
