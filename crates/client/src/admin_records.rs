//! Record and log-directory administration, after `kafka-delete-records.sh` and
//! `kafka-log-dirs.sh`: DeleteRecords to each partition's leader (the log start moves up to an
//! offset, or to the high watermark to empty the partition), and DescribeLogDirs to a broker
//! (its log directory, the size and lag of each partition there, the disk's size and space).

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DeleteRecordsRequest, DescribeLogDirsRequest};
use strom_types::{BrokerId, Offset, PartitionIndex};

use crate::client::topic_name;
use crate::error::{ClientError, Subject};
use crate::Client;

/// DeleteRecords' offset for "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// What DeleteRecords did to one partition.
#[derive(Debug)]
pub struct DeletedRecords {
    pub partition: PartitionIndex,
    /// The new low watermark (the smallest log start among the replicas), or why the
    /// partition's records were not deleted.
    pub low_watermark: Result<Offset, ClientError>,
}

/// One broker's log directory, as DescribeLogDirs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirDescription {
    pub broker: BrokerId,
    pub path: String,
    /// 0 when the directory could be described.
    pub error_code: i16,
    /// The filesystem's size and the bytes still usable on it; `None` before DescribeLogDirs
    /// v4 or when the broker could not tell.
    pub total_bytes: Option<u64>,
    pub usable_bytes: Option<u64>,
    pub partitions: Vec<LogDirPartition>,
}

/// One partition replica in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirPartition {
    pub topic: String,
    pub partition: PartitionIndex,
    pub size_bytes: i64,
    /// How far the replica's log end is behind the high watermark.
    pub offset_lag: i64,
}

impl Client {
    /// Deletes the records of `topic` below each offset given (`None`: everything up to the
    /// partition's high watermark), through each partition's leader, which waits up to
    /// `timeout_ms` for the followers to delete them too. Answers per partition, in the order
    /// asked; a failure to reach a leader fails the call.
    pub async fn delete_records(
        &self,
        topic: &str,
        offsets: &[(PartitionIndex, Option<Offset>)],
        timeout_ms: i32,
    ) -> Result<Vec<DeletedRecords>, ClientError> {
        let mut attempt = 0;
        let mut answers: BTreeMap<PartitionIndex, DeletedRecords> = BTreeMap::new();
        let mut remaining: Vec<_> = offsets.to_vec();
        loop {
            let metadata = self.topic_metadata(topic).await?;
            let mut by_leader: BTreeMap<Option<BrokerId>, Vec<_>> = BTreeMap::new();
            for &(partition, offset) in &remaining {
                let leader = metadata.partition(partition).and_then(|p| p.leader);
                by_leader
                    .entry(leader)
                    .or_default()
                    .push((partition, offset));
            }
            for (leader, partitions) in by_leader {
                let deleted = match leader {
                    Some(leader) => {
                        self.delete_on_leader(leader, topic, &partitions, timeout_ms)
                            .await?
                    }
                    None => without_leader(topic, &metadata, &partitions),
                };
                answers.extend(deleted.into_iter().map(|d| (d.partition, d)));
            }
            let retriable: Vec<_> = (answers.values())
                .filter_map(|answer| answer.low_watermark.as_ref().err().map(|e| (answer, e)))
                .filter(|(_, error)| error.is_metadata_refreshable())
                .map(|(answer, _)| answer.partition)
                .collect();
            let error = retriable
                .first()
                .and_then(|p| answers[p].low_watermark.as_ref().err());
            let again = match error {
                Some(error) => self.retry(error, &mut attempt, Some(topic), true).await,
                None => false,
            };
            if !again {
                break;
            }
            remaining.retain(|(partition, _)| retriable.contains(partition));
        }
        Ok((offsets.iter())
            .filter_map(|(partition, _)| answers.remove(partition))
            .collect())
    }

    async fn delete_on_leader(
        &self,
        leader: BrokerId,
        topic: &str,
        partitions: &[(PartitionIndex, Option<Offset>)],
        timeout_ms: i32,
    ) -> Result<Vec<DeletedRecords>, ClientError> {
        let connection = self.broker_connection(leader).await?;
        let asked = (partitions.iter())
            .map(|(partition, offset)| {
                DeleteRecordsPartition::default()
                    .with_partition_index(partition.0)
                    .with_offset(offset.map_or(HIGH_WATERMARK, |offset| offset.0))
            })
            .collect();
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(asked)])
            .with_timeout_ms(timeout_ms);
        let wait_ms = self.request_timeout_ms() + timeout_ms.max(0) as u64;
        let response = connection.send_with_timeout(&request, wait_ms).await?;
        let answered: Vec<_> = (response.topics.into_iter())
            .filter(|answer| answer.name.as_str() == topic)
            .flat_map(|answer| answer.partitions)
            .collect();
        partitions
            .iter()
            .map(|(partition, _)| {
                let answer = self.find_in_response(
                    &answered,
                    "DeleteRecords",
                    &format!("{topic}-{partition}"),
                    |answer| answer.partition_index == partition.0,
                )?;
                let subject = Subject::partition(topic, *partition);
                let low_watermark = ClientError::check(answer.error_code, None, subject)
                    .map(|()| Offset(answer.low_watermark));
                Ok(DeletedRecords {
                    partition: *partition,
                    low_watermark,
                })
            })
            .collect()
    }

    /// The log directories of `broker` and the partitions in them (of `topics` only, when
    /// given: every partition of each, as this client's metadata knows them).
    pub async fn describe_log_dirs(
        &self,
        broker: BrokerId,
        topics: Option<&[&str]>,
    ) -> Result<Vec<LogDirDescription>, ClientError> {
        let wanted = match topics {
            None => None,
            Some(topics) => {
                let mut wanted = Vec::with_capacity(topics.len());
                for topic in topics {
                    let metadata = self.topic_metadata(topic).await?;
                    let indexes = metadata.partitions.iter().map(|p| p.index.0).collect();
                    wanted.push(
                        DescribableLogDirTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(indexes),
                    );
                }
                Some(wanted)
            }
        };
        let connection = self.broker_connection(broker).await?;
        let request = DescribeLogDirsRequest::default().with_topics(wanted);
        let response = connection.send(&request).await?;
        ClientError::check(response.error_code, None, Subject::default())?;
        let known = |bytes: i64| u64::try_from(bytes).ok();
        Ok((response.results.into_iter())
            .map(|dir| LogDirDescription {
                broker,
                path: dir.log_dir.to_string(),
                error_code: dir.error_code,
                total_bytes: known(dir.total_bytes),
                usable_bytes: known(dir.usable_bytes),
                partitions: (dir.topics.into_iter())
                    .flat_map(|topic| {
                        let name = topic.name.to_string();
                        topic.partitions.into_iter().map(move |p| LogDirPartition {
                            topic: name.clone(),
                            partition: PartitionIndex(p.partition_index),
                            size_bytes: p.partition_size,
                            offset_lag: p.offset_lag,
                        })
                    })
                    .collect(),
            })
            .collect())
    }
}

/// The answers for partitions the metadata names no leader of (or does not have at all).
fn without_leader(
    topic: &str,
    metadata: &crate::metadata::TopicMetadata,
    partitions: &[(PartitionIndex, Option<Offset>)],
) -> Vec<DeletedRecords> {
    partitions
        .iter()
        .map(|(partition, _)| {
            let code = match metadata.partition(*partition) {
                Some(_) => strom_types::ErrorCode::LeaderNotAvailable,
                None => strom_types::ErrorCode::UnknownTopicOrPartition,
            };
            DeletedRecords {
                partition: *partition,
                low_watermark: Err(ClientError::kafka(
                    code.code(),
                    None,
                    Subject::partition(topic, *partition),
                )),
            }
        })
        .collect()
}
