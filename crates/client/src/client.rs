//! The client: bootstrap, metadata cache, routing to partition leaders, bounded retries.
//!
//! State and who touches it: `cache` (brokers and topic metadata) is updated by every Metadata
//! response and read to route each partition request; `connections` holds one
//! [`Connection`] per broker plus the bootstrap connection, replaced when found dead. Both are
//! behind locks held only briefly (the connection lock across a connect, which serializes new
//! connections but not requests), so one `Client` can serve many tasks at once.
//!
//! Retries: a request failing with an error fresh metadata may cure (see
//! [`ClientError::is_metadata_refreshable`]) drops the topic from the cache, waits a backoff
//! that doubles per attempt, and tries again, at most `metadata_attempts_max` times. Requests
//! that are safe to repeat (metadata, fetch, list offsets) are also retried after a lost
//! connection; a produce is retried only when the broker surely did not append it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use strom_types::{BrokerId, ErrorCode, Offset, PartitionIndex, TimestampMs};

use crate::connection::{Connection, ConnectionOptions};
use crate::error::Subject;
use crate::metadata::{BrokerMetadata, ClusterMetadata, MetadataCache, TopicMetadata};
use crate::records::{decode_records, encode_batch, FetchedRecord, ProduceRecord};
use crate::{limits, ClientError};

/// How a [`Client`] behaves; the defaults come from [`crate::limits`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connection: ConnectionOptions,
    pub metadata_attempts_max: u32,
    pub retry_backoff_ms: u64,
    pub retry_backoff_ms_max: u64,
    /// Whether looking up a topic to produce to or fetch from asks the broker to create it
    /// (Kafka clients do by default). [`Client::metadata`] never does.
    pub allow_auto_topic_creation: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connection: ConnectionOptions::default(),
            metadata_attempts_max: limits::METADATA_ATTEMPTS_MAX,
            retry_backoff_ms: limits::RETRY_BACKOFF_MS,
            retry_backoff_ms_max: limits::RETRY_BACKOFF_MS_MAX,
            allow_auto_topic_creation: true,
        }
    }
}

/// How many replicas must have a produced batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// The broker does not answer at all.
    None,
    /// The leader has appended the batch.
    Leader,
    /// Every in-sync replica has it.
    All,
}

impl Acks {
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Which offset [`Client::list_offsets`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The end offset (the high watermark): where the next record will go.
    Latest,
    /// The first offset whose timestamp is at or after this one.
    Timestamp(TimestampMs),
}

impl OffsetSpec {
    /// Kafka's encoding: -2 earliest, -1 latest, otherwise milliseconds.
    pub fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(timestamp) => timestamp.0,
        }
    }
}

/// A topic the broker created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    /// As created; `None` if the broker's response version does not say and the request left
    /// it to the broker.
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
}

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself: the non-default configs.
    Topic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    Other(i8),
}

impl ConfigSource {
    pub fn from_wire(source: i8) -> ConfigSource {
        match source {
            1 => ConfigSource::Topic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }

    /// Kafka's name for the source, as `kafka-configs.sh --describe --all` prints it.
    pub fn kafka_name(self) -> String {
        match self {
            ConfigSource::Topic => "DYNAMIC_TOPIC_CONFIG".to_owned(),
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG".to_owned(),
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG".to_owned(),
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG".to_owned(),
            ConfigSource::Default => "DEFAULT_CONFIG".to_owned(),
            ConfigSource::Other(6) => "DYNAMIC_BROKER_LOGGER_CONFIG".to_owned(),
            ConfigSource::Other(other) => format!("SOURCE_{other}"),
        }
    }
}

/// One config of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive or unset values.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
}

/// One partition to fetch from, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPosition {
    pub topic: String,
    pub partition: PartitionIndex,
    pub offset: Offset,
}

/// How long and how much one fetch may wait for and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Longest the broker waits for `min_bytes` to accumulate.
    pub max_wait_ms: u32,
    pub min_bytes: i32,
    /// Most bytes in the whole response (the broker still returns at least one batch).
    pub max_bytes: i32,
    /// Most bytes per partition.
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// What one fetch returned for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub records: Vec<FetchedRecord>,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// Where the next fetch should start: after the last whole batch returned, or the fetch
    /// offset again when nothing came back.
    pub next_offset: Offset,
}

#[derive(Default)]
struct Connections {
    bootstrap: Option<Arc<Connection>>,
    brokers: HashMap<BrokerId, Arc<Connection>>,
}

/// A Kafka client. Share it behind an `Arc`; every method takes `&self`.
pub struct Client {
    bootstrap: Vec<String>,
    config: ClientConfig,
    pub(crate) cache: Mutex<MetadataCache>,
    connections: tokio::sync::Mutex<Connections>,
}

impl Client {
    /// Connects to the first reachable of the comma-separated HOST:PORT addresses.
    pub async fn connect(bootstrap: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let bootstrap: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(String::from)
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no bootstrap address given".to_string(),
            ));
        }
        let client = Client {
            bootstrap,
            config,
            cache: Mutex::default(),
            connections: tokio::sync::Mutex::default(),
        };
        client.any_connection().await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A live connection to some broker (the bootstrap one while it lasts).
    pub async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections
            .bootstrap
            .as_ref()
            .filter(|connection| !connection.is_closed())
        {
            return Ok(connection.clone());
        }
        let known_brokers: Vec<String> = {
            let cache = self.cache.lock().expect("metadata cache lock");
            cache
                .brokers
                .values()
                .map(|broker| broker.address())
                .collect()
        };
        let mut first_error = None;
        for address in self.bootstrap.iter().chain(&known_brokers) {
            match Connection::connect(address, &self.config.connection).await {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    connections.bootstrap = Some(connection.clone());
                    return Ok(connection);
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "bootstrap connection failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.expect("at least one bootstrap address"))
    }

    /// A live connection to the broker with this id, opened if need be.
    pub async fn broker_connection(
        &self,
        broker: BrokerId,
    ) -> Result<Arc<Connection>, ClientError> {
        let address = {
            let cache = self.cache.lock().expect("metadata cache lock");
            cache.brokers.get(&broker).map(|broker| broker.address())
        };
        let Some(address) = address else {
            let message = format!("broker {broker} is not in the cluster metadata");
            return Err(ClientError::kafka(
                ErrorCode::LeaderNotAvailable.code(),
                Some(&message),
                Subject::default(),
            ));
        };
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections
            .brokers
            .get(&broker)
            .filter(|connection| !connection.is_closed())
        {
            return Ok(connection.clone());
        }
        let reusable = connections
            .bootstrap
            .as_ref()
            .filter(|connection| !connection.is_closed() && connection.address() == address)
            .cloned();
        let connection = match reusable {
            Some(connection) => connection,
            None => Arc::new(Connection::connect(&address, &self.config.connection).await?),
        };
        connections.brokers.insert(broker, connection.clone());
        Ok(connection)
    }

    /// A live connection to a broker known by its id and address (a group coordinator, say,
    /// which FindCoordinator names), entered in the broker table so later calls reuse it.
    pub(crate) async fn node_connection(
        &self,
        broker: BrokerMetadata,
    ) -> Result<Arc<Connection>, ClientError> {
        let id = broker.id;
        self.cache
            .lock()
            .expect("metadata cache lock")
            .brokers
            .insert(id, broker);
        self.broker_connection(id).await
    }

    /// A live connection to the leader of a partition, looking the topic up if need be.
    pub async fn leader_connection(
        &self,
        topic: &str,
        partition: PartitionIndex,
    ) -> Result<Arc<Connection>, ClientError> {
        let metadata = self.cached_topic(topic).await?;
        let Some(partition_metadata) = metadata.partition(partition) else {
            let count = metadata.partitions.len();
            let message = format!("topic '{topic}' has {count} partitions (0 to {}); there is no partition {partition}", count as i64 - 1);
            return Err(ClientError::kafka(
                ErrorCode::UnknownTopicOrPartition.code(),
                Some(&message),
                Subject::partition(topic, partition),
            ));
        };
        match partition_metadata.leader {
            Some(leader) => self.broker_connection(leader).await,
            None => Err(ClientError::kafka(
                ErrorCode::LeaderNotAvailable.code(),
                None,
                Subject::partition(topic, partition),
            )),
        }
    }

    /// Asks the cluster for metadata on these topics (all topics for `None`), without
    /// creating any, and refreshes the cache with the answer.
    pub async fn metadata(&self, topics: Option<&[&str]>) -> Result<ClusterMetadata, ClientError> {
        let mut attempt = 0;
        loop {
            match self.request_metadata(topics, false).await {
                Err(error) if self.retry(&error, &mut attempt, None, true).await => continue,
                result => return result,
            }
        }
    }

    /// A topic's metadata, from the cache or else from the cluster (creating the topic if
    /// the config allows and the broker auto-creates topics).
    pub async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadata, ClientError> {
        let mut attempt = 0;
        loop {
            match self.cached_topic(topic).await {
                Err(error) if self.retry(&error, &mut attempt, Some(topic), true).await => continue,
                result => return result.map(Arc::unwrap_or_clone),
            }
        }
    }

    /// How many partitions a topic has.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, ClientError> {
        Ok(self.topic_metadata(topic).await?.partitions.len() as i32)
    }

    async fn cached_topic(&self, topic: &str) -> Result<Arc<TopicMetadata>, ClientError> {
        let cached = self
            .cache
            .lock()
            .expect("metadata cache lock")
            .topics
            .get(topic)
            .cloned();
        if let Some(cached) = cached {
            return Ok(cached);
        }
        let metadata = self
            .request_metadata(Some(&[topic]), self.config.allow_auto_topic_creation)
            .await?;
        let Some(found) = metadata.topic(topic) else {
            return Err(ClientError::Protocol {
                address: self.bootstrap.join(","),
                detail: format!("metadata response does not mention topic '{topic}'"),
            });
        };
        ClientError::check(found.error_code, None, Subject::topic(topic))?;
        Ok(Arc::new(found.clone()))
    }

    async fn request_metadata(
        &self,
        topics: Option<&[&str]>,
        allow_auto_create: bool,
    ) -> Result<ClusterMetadata, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<MetadataRequest>()?;
        let topics = match topics {
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                    .collect(),
            ),
            // v0 has no null: an empty list means every topic.
            None if version == 0 => Some(Vec::new()),
            None => None,
        };
        let request = MetadataRequest::default()
            .with_topics(topics)
            // Before v4 the broker always auto-creates; the field does not exist.
            .with_allow_auto_topic_creation(allow_auto_create || version < 4);
        let response = connection
            .send_versioned(&request, version, self.request_timeout_ms())
            .await?;
        let metadata = ClusterMetadata::from_response(response);
        self.cache
            .lock()
            .expect("metadata cache lock")
            .update(&metadata);
        Ok(metadata)
    }

    /// Creates a topic. `partitions` and `replication_factor` of -1 leave them to the
    /// broker's defaults.
    pub async fn create_topics(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: Vec<(String, String)>,
    ) -> Result<CreatedTopic, ClientError> {
        let configs = configs
            .into_iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key))
                    .with_value(Some(StrBytes::from_string(value)))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.broker_timeout_ms());
        let response = self.send_to_controller(&request).await?;
        let result = self.find_in_response(response.topics, "CreateTopics", name, |result| {
            result.name.as_str() == name
        })?;
        ClientError::check(
            result.error_code,
            result.error_message.as_deref(),
            Subject::topic(name),
        )?;
        self.cache
            .lock()
            .expect("metadata cache lock")
            .invalidate(name);
        Ok(CreatedTopic {
            name: name.to_string(),
            partitions: Some(result.num_partitions)
                .filter(|&count| count > 0)
                .or(Some(partitions).filter(|&count| count > 0)),
            replication_factor: Some(result.replication_factor)
                .filter(|&factor| factor > 0)
                .or(Some(replication_factor).filter(|&factor| factor > 0)),
        })
    }

    /// Deletes topics; the first topic that could not be deleted fails the call.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<(), ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.broker_timeout_ms());
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
                .collect();
        } else {
            request.topic_names = names.iter().map(|name| topic_name(name)).collect();
        }
        let response = self.send_to_controller(&request).await?;
        for name in names {
            self.cache
                .lock()
                .expect("metadata cache lock")
                .invalidate(name);
            let result =
                self.find_in_response(response.responses.iter(), "DeleteTopics", name, |result| {
                    result.name.as_deref().map(|n| n.as_str()) == Some(*name)
                })?;
            ClientError::check(
                result.error_code,
                result.error_message.as_deref(),
                Subject::topic(name),
            )?;
        }
        Ok(())
    }

    /// A topic's configs, every one of them; [`ConfigSource::Topic`] marks those set on the
    /// topic itself.
    pub async fn describe_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        const RESOURCE_TYPE_TOPIC: i8 = 2;
        let resource = DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None);
        let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
        let connection = self.any_connection().await?;
        let response = connection.send(&request).await?;
        let result =
            self.find_in_response(response.results, "DescribeConfigs", topic, |result| {
                result.resource_name.as_str() == topic
            })?;
        ClientError::check(
            result.error_code,
            result.error_message.as_deref(),
            Subject::topic(topic),
        )?;
        Ok(result
            .configs
            .into_iter()
            .map(|config| ConfigEntry {
                name: config.name.to_string(),
                value: config.value.map(|value| value.to_string()),
                source: ConfigSource::from_wire(config.config_source),
                read_only: config.read_only,
                is_sensitive: config.is_sensitive,
            })
            .collect())
    }

    /// Produces records to one partition as one batch. Returns the offset of the first
    /// record, or `None` with [`Acks::None`] (the broker does not answer).
    pub async fn produce(
        &self,
        topic: &str,
        partition: PartitionIndex,
        records: &[ProduceRecord],
        acks: Acks,
        compression: Compression,
    ) -> Result<Option<Offset>, ClientError> {
        let batch = encode_batch(records, compression, TimestampMs::now())?;
        self.produce_batch(topic, partition, batch, acks).await
    }

    /// Produces an already encoded v2 record batch (see [`crate::encode_batch`]).
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: PartitionIndex,
        batch: Bytes,
        acks: Acks,
    ) -> Result<Option<Offset>, ClientError> {
        let mut attempt = 0;
        loop {
            match self
                .try_produce(topic, partition, batch.clone(), acks)
                .await
            {
                Err(error) if self.retry(&error, &mut attempt, Some(topic), false).await => {
                    continue
                }
                result => return result,
            }
        }
    }

    async fn try_produce(
        &self,
        topic: &str,
        partition: PartitionIndex,
        batch: Bytes,
        acks: Acks,
    ) -> Result<Option<Offset>, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let partition_data = PartitionProduceData::default()
            .with_index(partition.0)
            .with_records(Some(batch));
        let request = ProduceRequest::default()
            .with_acks(acks.code())
            .with_timeout_ms(self.broker_timeout_ms())
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![partition_data])]);
        if acks == Acks::None {
            connection.send_without_response(&request).await?;
            return Ok(None);
        }
        let timeout_ms = self.request_timeout_ms() + self.broker_timeout_ms() as u64;
        let response = connection.send_with_timeout(&request, timeout_ms).await?;
        let partitions = response
            .responses
            .iter()
            .filter(|response| response.name.as_str() == topic)
            .flat_map(|response| &response.partition_responses);
        let result = self.find_in_response(
            partitions,
            "Produce",
            &format!("{topic}-{partition}"),
            |response| response.index == partition.0,
        )?;
        let record_error = result
            .record_errors
            .iter()
            .find_map(|error| error.batch_index_error_message.as_deref());
        let message = result.error_message.as_deref().or(record_error);
        ClientError::check(
            result.error_code,
            message,
            Subject::partition(topic, partition),
        )?;
        Ok(Some(Offset(result.base_offset)))
    }

    /// Fetches records from one partition, retrying errors fresh metadata may cure.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: PartitionIndex,
        offset: Offset,
        max_wait_ms: u32,
        min_bytes: i32,
        max_bytes: i32,
    ) -> Result<FetchedPartition, ClientError> {
        let position = FetchPosition {
            topic: topic.to_string(),
            partition,
            offset,
        };
        let options = FetchOptions {
            max_wait_ms,
            min_bytes,
            max_bytes,
            partition_max_bytes: max_bytes,
        };
        let mut attempt = 0;
        loop {
            let result = self
                .fetch_many(std::slice::from_ref(&position), &options)
                .await
                .pop();
            let result = result.expect("one result per position");
            match result {
                Err(error) if self.retry(&error, &mut attempt, Some(topic), true).await => continue,
                result => return result,
            }
        }
    }

    /// Fetches from several partitions at once: one request per leader, sent concurrently.
    /// Returns one result per position, in order; errors are per partition and not retried
    /// (the topic's metadata is dropped from the cache when a retry could help, so calling
    /// again routes afresh).
    pub async fn fetch_many(
        &self,
        positions: &[FetchPosition],
        options: &FetchOptions,
    ) -> Vec<Result<FetchedPartition, ClientError>> {
        let mut results: Vec<Option<Result<FetchedPartition, ClientError>>> =
            vec![None; positions.len()];
        // Group the positions by leader connection.
        let mut groups: Vec<(Arc<Connection>, Vec<usize>)> = Vec::new();
        for (index, position) in positions.iter().enumerate() {
            match self
                .leader_connection(&position.topic, position.partition)
                .await
            {
                Ok(connection) => match groups
                    .iter_mut()
                    .find(|(known, _)| Arc::ptr_eq(known, &connection))
                {
                    Some((_, members)) => members.push(index),
                    None => groups.push((connection, vec![index])),
                },
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        let timeout_ms = self.request_timeout_ms() + u64::from(options.max_wait_ms);
        let mut requests = tokio::task::JoinSet::new();
        for (connection, members) in groups {
            let request = fetch_request(positions, &members, options);
            requests.spawn(async move {
                let response = connection.send_with_timeout(&request, timeout_ms).await;
                (members, response)
            });
        }
        while let Some(joined) = requests.join_next().await {
            let (members, response) = joined.expect("fetch tasks do not panic");
            for (index, result) in self.fetch_results(positions, &members, response) {
                results[index] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every position has a result"))
            .collect()
    }

    fn fetch_results(
        &self,
        positions: &[FetchPosition],
        members: &[usize],
        response: Result<FetchResponse, ClientError>,
    ) -> Vec<(usize, Result<FetchedPartition, ClientError>)> {
        let response = response.and_then(|response| {
            ClientError::check(response.error_code, None, Subject::default())?;
            Ok(response)
        });
        let mut by_partition: HashMap<(String, i32), PartitionData> = HashMap::new();
        let mut failure = None;
        match response {
            Ok(response) => {
                for topic in response.responses {
                    for data in topic.partitions {
                        by_partition.insert((topic.topic.to_string(), data.partition_index), data);
                    }
                }
            }
            Err(error) => failure = Some(error),
        }
        members
            .iter()
            .map(|&index| {
                let position = &positions[index];
                let result = match &failure {
                    Some(error) => Err(error.clone()),
                    None => {
                        let data =
                            by_partition.remove(&(position.topic.clone(), position.partition.0));
                        self.fetched_partition(position, data)
                    }
                };
                if let Err(error) = &result {
                    if error.is_metadata_refreshable() {
                        self.cache
                            .lock()
                            .expect("metadata cache lock")
                            .invalidate(&position.topic);
                    }
                }
                (index, result)
            })
            .collect()
    }

    fn fetched_partition(
        &self,
        position: &FetchPosition,
        data: Option<PartitionData>,
    ) -> Result<FetchedPartition, ClientError> {
        let FetchPosition {
            topic,
            partition,
            offset,
        } = position;
        let Some(data) = data else {
            return Err(self.missing_from_response("Fetch", &format!("{topic}-{partition}")));
        };
        ClientError::check(data.error_code, None, Subject::partition(topic, *partition))?;
        let decoded = match &data.records {
            Some(records) => decode_records(records, *offset, topic, *partition)?,
            None => Default::default(),
        };
        Ok(FetchedPartition {
            records: decoded.records,
            high_watermark: Offset(data.high_watermark),
            last_stable_offset: Offset(data.last_stable_offset),
            log_start_offset: Offset(data.log_start_offset),
            next_offset: decoded
                .next_offset
                .map_or(*offset, |next| next.max(*offset)),
        })
    }

    /// Looks up an offset of a partition: the earliest, the latest (end), or the first at or
    /// after a timestamp (Kafka answers -1 when no record is that recent).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: PartitionIndex,
        spec: OffsetSpec,
    ) -> Result<Offset, ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_list_offsets(topic, partition, spec).await {
                Err(error) if self.retry(&error, &mut attempt, Some(topic), true).await => continue,
                result => return result,
            }
        }
    }

    async fn try_list_offsets(
        &self,
        topic: &str,
        partition: PartitionIndex,
        spec: OffsetSpec,
    ) -> Result<Offset, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(WireBrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition.0)
                    .with_timestamp(spec.wire_timestamp())])]);
        let response = connection.send(&request).await?;
        let partitions = response
            .topics
            .iter()
            .filter(|response| response.name.as_str() == topic)
            .flat_map(|response| &response.partitions);
        let result = self.find_in_response(
            partitions,
            "ListOffsets",
            &format!("{topic}-{partition}"),
            |response| response.partition_index == partition.0,
        )?;
        ClientError::check(
            result.error_code,
            None,
            Subject::partition(topic, partition),
        )?;
        Ok(Offset(result.offset))
    }

    /// Sends an admin request to any broker; one that is not the controller and says so
    /// (`NOT_CONTROLLER`) makes us ask the controller named in fresh metadata.
    pub(crate) async fn send_to_controller<Req>(
        &self,
        request: &Req,
    ) -> Result<Req::Response, ClientError>
    where
        Req: kafka_protocol::protocol::Request,
        Req::Response: AdminResponse,
    {
        let mut connection = self.any_connection().await?;
        for _ in 0..self.config.metadata_attempts_max {
            let response = connection
                .send_with_timeout(request, self.request_timeout_ms() * 2)
                .await?;
            if !response.not_controller() {
                return Ok(response);
            }
            let metadata = self.request_metadata(Some(&[]), false).await?;
            let Some(controller) = metadata.controller_id else {
                break;
            };
            connection = self.broker_connection(controller).await?;
        }
        Err(ClientError::kafka(
            ErrorCode::NotController.code(),
            None,
            Subject::default(),
        ))
    }

    /// Decides whether to try a failed request again; if so, forgets the topic's metadata and
    /// waits out the backoff first. Errors that finding a group's coordinator again may cure
    /// count too (group calls look the coordinator up afresh on every attempt).
    pub(crate) async fn retry(
        &self,
        error: &ClientError,
        attempt: &mut u32,
        topic: Option<&str>,
        repeatable: bool,
    ) -> bool {
        let retriable = error.is_metadata_refreshable()
            || error.is_coordinator_refreshable()
            || error.is_not_sent()
            || (repeatable && error.is_connection_failure());
        if !retriable || *attempt + 1 >= self.config.metadata_attempts_max {
            return false;
        }
        if let Some(topic) = topic {
            self.cache
                .lock()
                .expect("metadata cache lock")
                .invalidate(topic);
        }
        let backoff_ms = self
            .config
            .retry_backoff_ms
            .saturating_mul(1 << (*attempt).min(16))
            .min(self.config.retry_backoff_ms_max);
        tracing::debug!(%error, attempt = *attempt, backoff_ms, "retrying");
        *attempt += 1;
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        true
    }

    pub(crate) fn request_timeout_ms(&self) -> u64 {
        self.config.connection.request_timeout_ms
    }

    /// How long the broker may take over a produce, create or delete, as sent in the request.
    pub(crate) fn broker_timeout_ms(&self) -> i32 {
        i32::try_from(self.request_timeout_ms()).unwrap_or(i32::MAX)
    }

    /// The entry of a response that `matches`, or a protocol error naming the API and what the
    /// broker left out.
    pub(crate) fn find_in_response<T>(
        &self,
        entries: impl IntoIterator<Item = T>,
        api: &str,
        what: &str,
        mut matches: impl FnMut(&T) -> bool,
    ) -> Result<T, ClientError> {
        entries
            .into_iter()
            .find(|entry| matches(entry))
            .ok_or_else(|| self.missing_from_response(api, what))
    }

    pub(crate) fn missing_from_response(&self, api: &str, what: &str) -> ClientError {
        ClientError::Protocol {
            address: self.bootstrap.join(","),
            detail: format!("{api} response does not mention {what}"),
        }
    }
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn fetch_request(
    positions: &[FetchPosition],
    members: &[usize],
    options: &FetchOptions,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &index in members {
        let position = &positions[index];
        let partition = FetchPartition::default()
            .with_partition(position.partition.0)
            .with_fetch_offset(position.offset.0)
            .with_partition_max_bytes(options.partition_max_bytes);
        match topics
            .iter_mut()
            .find(|topic| topic.topic.as_str() == position.topic)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(&position.topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(options.max_wait_ms).unwrap_or(i32::MAX))
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(options.max_bytes)
        .with_topics(topics)
}

/// Admin responses that can say "ask the controller instead".
pub(crate) trait AdminResponse {
    fn not_controller(&self) -> bool;
}

impl AdminResponse for kafka_protocol::messages::CreateTopicsResponse {
    fn not_controller(&self) -> bool {
        self.topics
            .iter()
            .any(|topic| topic.error_code == ErrorCode::NotController.code())
    }
}

impl AdminResponse for kafka_protocol::messages::DeleteTopicsResponse {
    fn not_controller(&self) -> bool {
        self.responses
            .iter()
            .any(|topic| topic.error_code == ErrorCode::NotController.code())
    }
}
