//! Config administration, after Kafka's `kafka-configs.sh` and `kafka-topics.sh --alter`:
//! describe and change the configs of a topic, of one broker, of every broker (the cluster-wide
//! defaults) and of a broker's loggers, and add partitions to a topic.
//!
//! Changes go through IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT), so only the
//! keys named change. A topic's or the defaults' request goes to any broker; one broker's (and
//! its loggers') to that broker, as Kafka's admin client routes them.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_types::BrokerId;

use crate::client::{topic_name, ConfigEntry, ConfigSource};
use crate::connection::Connection;
use crate::error::{ClientError, Subject};
use crate::Client;

/// Whose configs: Kafka's config resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// One broker's settings.
    Broker(i32),
    /// The cluster-wide dynamic defaults (the BROKER resource with the empty name).
    BrokerDefaults,
    /// One broker's log levels (BROKER_LOGGER).
    BrokerLoggers(i32),
}

impl ConfigResource {
    /// Kafka's resource type and name.
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(name) => (2, name.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::BrokerDefaults => (4, String::new()),
            ConfigResource::BrokerLoggers(id) => (8, id.to_string()),
        }
    }

    /// The broker a request about this resource must reach, if one.
    fn broker(&self) -> Option<i32> {
        match self {
            ConfigResource::Broker(id) | ConfigResource::BrokerLoggers(id) => Some(*id),
            ConfigResource::Topic(_) | ConfigResource::BrokerDefaults => None,
        }
    }

    fn subject(&self) -> Subject<'_> {
        match self {
            ConfigResource::Topic(name) => Subject::topic(name),
            _ => Subject::default(),
        }
    }
}

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the value the next level down gives (the broker's for a topic).
    Delete(String),
    /// Items added to a list config (those not in it yet).
    Append(String, String),
    /// Items removed from a list config.
    Subtract(String, String),
}

impl ConfigChange {
    fn wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            ConfigChange::Set(name, value) => (name, 0, Some(value)),
            ConfigChange::Delete(name) => (name, 1, None),
            ConfigChange::Append(name, value) => (name, 2, Some(value)),
            ConfigChange::Subtract(name, value) => (name, 3, Some(value)),
        };
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.clone()))
            .with_config_operation(op)
            .with_value(value.map(|value| StrBytes::from_string(value.clone())))
    }
}

impl Client {
    /// Every config of `resource` with its value and source (for the cluster-wide defaults:
    /// only those set).
    pub async fn describe_resource_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let (kind, name) = resource.wire();
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configuration_keys(None),
        ]);
        let response = self.connection_for(resource).await?.send(&request).await?;
        let result = self.find_in_response(response.results, "DescribeConfigs", &name, |r| {
            r.resource_type == kind && r.resource_name.as_str() == name
        })?;
        ClientError::check(
            result.error_code,
            result.error_message.as_deref(),
            resource.subject(),
        )?;
        Ok((result.configs.into_iter())
            .map(|config| ConfigEntry {
                name: config.name.to_string(),
                value: config.value.map(|value| value.to_string()),
                source: ConfigSource::from_wire(config.config_source),
                read_only: config.read_only,
                is_sensitive: config.is_sensitive,
            })
            .collect())
    }

    /// Changes configs of `resource` (IncrementalAlterConfigs); with `validate_only`, the
    /// broker only checks them.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        let (kind, name) = resource.wire();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configs(changes.iter().map(ConfigChange::wire).collect())]);
        let response = self.connection_for(resource).await?.send(&request).await?;
        let result =
            self.find_in_response(response.responses, "IncrementalAlterConfigs", &name, |r| {
                r.resource_type == kind && r.resource_name.as_str() == name
            })?;
        ClientError::check(
            result.error_code,
            result.error_message.as_deref(),
            resource.subject(),
        )
    }

    /// Grows `topic` to `count` partitions (CreatePartitions), placed by the controller.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), ClientError> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)]);
        let response = self.any_connection().await?.send(&request).await?;
        self.cache
            .lock()
            .expect("metadata cache lock")
            .invalidate(topic);
        let result = self.find_in_response(response.results, "CreatePartitions", topic, |r| {
            r.name.as_str() == topic
        })?;
        ClientError::check(
            result.error_code,
            result.error_message.as_deref(),
            Subject::topic(topic),
        )
    }

    /// The broker a resource's requests go to: the one it names, else any.
    async fn connection_for(
        &self,
        resource: &ConfigResource,
    ) -> Result<Arc<Connection>, ClientError> {
        match resource.broker() {
            Some(id) => {
                // Learn the brokers' addresses (no topics asked for).
                self.metadata(Some(&[])).await?;
                self.broker_connection(BrokerId(id)).await
            }
            None => self.any_connection().await,
        }
    }
}
