//! DescribeLogDirs: this broker's one log directory (`log.dirs`), the size of each partition
//! it hosts there and its offset lag, and (v4) the filesystem's total and usable bytes, as
//! Kafka's `ReplicaManager.describeLogDirs` answers. A request without topics asks for every
//! partition; a topic none of whose asked partitions is hosted here is left out. The offset
//! lag is Kafka's for a current (not future) replica: the high watermark minus the log end,
//! at least 0. Partitions whose log could not be opened are not listed; a directory whose
//! filesystem cannot be measured is answered KAFKA_STORAGE_ERROR.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_partition::Partition;
use strom_types::ErrorCode;

use crate::Broker;

/// The first version with the filesystem's total and usable bytes.
const SPACE_VERSION: i16 = 4;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let dir = &broker.config.data_dir;
    let path = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let log_dir = StrBytes::from_string(path.display().to_string());
    let result = DescribeLogDirsResult::default().with_log_dir(log_dir);
    let space = match strom_log::filesystem_space(&path) {
        Ok(space) => space,
        Err(error) => {
            tracing::warn!(%error, "cannot measure the log directory's filesystem");
            let result = result.with_error_code(ErrorCode::KafkaStorageError.code());
            return DescribeLogDirsResponse::default().with_results(vec![result]);
        }
    };
    let wanted = request.topics.map(|topics| {
        (topics.into_iter())
            .flat_map(|topic| {
                let name = topic.topic.to_string();
                topic
                    .partitions
                    .into_iter()
                    .map(move |index| (name.clone(), index))
            })
            .collect::<BTreeSet<(String, i32)>>()
    });
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for topic in broker.topics.all() {
        for partition in &topic.partitions {
            let key = (topic.name.to_string(), partition.index().0);
            if wanted.as_ref().is_some_and(|wanted| !wanted.contains(&key)) {
                continue;
            }
            topics.entry(key.0).or_default().push(describe(partition));
        }
    }
    let topics = (topics.into_iter())
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let mut result = result.with_topics(topics);
    if version >= SPACE_VERSION {
        // Java reports a size past i64 (never seen in practice) as i64::MAX.
        result.total_bytes = i64::try_from(space.total_bytes).unwrap_or(i64::MAX);
        result.usable_bytes = i64::try_from(space.usable_bytes).unwrap_or(i64::MAX);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

fn describe(partition: &Partition) -> DescribeLogDirsPartition {
    let log_end = partition.log_end_offset();
    let offset_lag = partition.high_watermark().minus(log_end).max(0);
    DescribeLogDirsPartition::default()
        .with_partition_index(partition.index().0)
        .with_partition_size(i64::try_from(partition.size_bytes()).unwrap_or(i64::MAX))
        .with_offset_lag(offset_lag)
        .with_is_future_key(false)
}
