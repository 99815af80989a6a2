//! Cluster metadata as the client keeps it: brokers, and for each topic its partitions with
//! their leaders. Built from Metadata responses; free of I/O.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::MetadataResponse;
use strom_types::{BrokerId, LeaderEpoch, PartitionIndex};

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub id: BrokerId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// HOST:PORT, with brackets around an IPv6 host.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub index: PartitionIndex,
    /// Non-zero when the broker reports a problem with this partition.
    pub error_code: i16,
    /// `None` while the partition has no leader.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline_replicas: Vec<BrokerId>,
}

/// One topic, its partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// Non-zero when the topic could not be described (for example it does not exist).
    pub error_code: i16,
    pub is_internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

/// What one Metadata response says about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// `None` when the broker does not say.
    pub controller_id: Option<BrokerId>,
    pub brokers: Vec<BrokerMetadata>,
    pub topics: Vec<TopicMetadata>,
}

fn known_broker(id: i32) -> Option<BrokerId> {
    (id >= 0).then_some(BrokerId(id))
}

impl ClusterMetadata {
    pub fn from_response(response: MetadataResponse) -> ClusterMetadata {
        let brokers = response
            .brokers
            .into_iter()
            .map(|broker| BrokerMetadata {
                id: BrokerId(broker.node_id.0),
                host: broker.host.to_string(),
                port: broker.port,
                rack: broker.rack.map(|rack| rack.to_string()),
            })
            .collect();
        let topics = response
            .topics
            .into_iter()
            .map(|topic| {
                let mut partitions: Vec<PartitionMetadata> = topic
                    .partitions
                    .into_iter()
                    .map(|partition| PartitionMetadata {
                        index: PartitionIndex(partition.partition_index),
                        error_code: partition.error_code,
                        leader: known_broker(partition.leader_id.0),
                        leader_epoch: LeaderEpoch(partition.leader_epoch),
                        replicas: partition
                            .replica_nodes
                            .iter()
                            .map(|id| BrokerId(id.0))
                            .collect(),
                        isr: partition
                            .isr_nodes
                            .iter()
                            .map(|id| BrokerId(id.0))
                            .collect(),
                        offline_replicas: partition
                            .offline_replicas
                            .iter()
                            .map(|id| BrokerId(id.0))
                            .collect(),
                    })
                    .collect();
                partitions.sort_by_key(|partition| partition.index);
                TopicMetadata {
                    name: topic.name.map(|name| name.to_string()).unwrap_or_default(),
                    error_code: topic.error_code,
                    is_internal: topic.is_internal,
                    partitions,
                }
            })
            .collect();
        ClusterMetadata {
            cluster_id: response.cluster_id.map(|id| id.to_string()),
            controller_id: known_broker(response.controller_id.0),
            brokers,
            topics,
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|topic| topic.name == name)
    }
}

impl TopicMetadata {
    pub fn partition(&self, index: PartitionIndex) -> Option<&PartitionMetadata> {
        self.partitions
            .iter()
            .find(|partition| partition.index == index)
    }
}

/// The client's cache: the latest word on each broker and on each topic asked about.
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    pub brokers: HashMap<BrokerId, BrokerMetadata>,
    pub controller_id: Option<BrokerId>,
    /// Only topics whose metadata came back without a topic-level error. Shared, so that
    /// routing a request takes no copy of the topic's partitions: with a copy of a
    /// 1,000-partition topic per partition routed, fetching one record back from each of
    /// 20,000 partitions took 1.8 s instead of 0.2 s, and `strom bench suite --only ulimit`
    /// used 11 s of the bench's CPU instead of 4 s.
    pub topics: HashMap<String, Arc<TopicMetadata>>,
}

impl MetadataCache {
    /// Takes in a response. Brokers are replaced wholesale; topics only for those it names
    /// (an error for a topic drops it from the cache).
    pub fn update(&mut self, metadata: &ClusterMetadata) {
        self.brokers = metadata
            .brokers
            .iter()
            .map(|broker| (broker.id, broker.clone()))
            .collect();
        self.controller_id = metadata.controller_id;
        for topic in &metadata.topics {
            if topic.error_code == 0 {
                self.topics
                    .insert(topic.name.clone(), Arc::new(topic.clone()));
            } else {
                self.topics.remove(&topic.name);
            }
        }
    }

    /// Forgets a topic, so that the next use asks the cluster again.
    pub fn invalidate(&mut self, topic: &str) {
        self.topics.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId as WireBrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response() -> MetadataResponse {
        let partition = |index: i32, leader: i32| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(WireBrokerId(leader))
                .with_replica_nodes(vec![WireBrokerId(1)])
                .with_isr_nodes(vec![WireBrokerId(1)])
        };
        MetadataResponse::default()
            .with_controller_id(WireBrokerId(1))
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(WireBrokerId(1))
                .with_host(StrBytes::from_static_str("::1"))
                .with_port(9092)])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(1, -1), partition(0, 1)]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("gone"))))
                    .with_error_code(3),
            ])
    }

    #[test]
    fn responses_become_sorted_typed_metadata() {
        let metadata = ClusterMetadata::from_response(response());
        assert_eq!(metadata.controller_id, Some(BrokerId(1)));
        assert_eq!(metadata.brokers[0].address(), "[::1]:9092");
        let topic = metadata.topic("t").unwrap();
        assert_eq!(topic.partitions[0].index, PartitionIndex(0));
        assert_eq!(topic.partitions[0].leader, Some(BrokerId(1)));
        assert_eq!(topic.partition(PartitionIndex(1)).unwrap().leader, None);
    }

    #[test]
    fn the_cache_keeps_only_healthy_topics() {
        let mut cache = MetadataCache::default();
        cache.topics.insert(
            "gone".to_string(),
            Arc::new(ClusterMetadata::from_response(response()).topics[0].clone()),
        );
        cache.update(&ClusterMetadata::from_response(response()));
        assert!(cache.topics.contains_key("t"));
        assert!(!cache.topics.contains_key("gone"));
        assert_eq!(cache.brokers.len(), 1);
        cache.invalidate("t");
        assert!(cache.topics.is_empty());
    }
}
