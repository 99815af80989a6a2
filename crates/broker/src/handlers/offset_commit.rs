//! OffsetCommit: validate the member and generation, write the offsets to
//! `__consumer_offsets`, wait until they are fsynced, then make them visible. Only the group's
//! coordinator commits; another broker answers NOT_COORDINATOR.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use strom_coordinator::limits;
use strom_coordinator::offsets::CommittedOffset;
use strom_types::ErrorCode;

use super::Reply;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: OffsetCommitRequest, _version: i16) -> Reply {
    let groups = broker.groups.clone();
    let group_id = request.group_id.to_string();
    let now = groups.now_ms();
    // Another broker's group: every partition is answered NOT_COORDINATOR, before the member
    // is looked at (this broker's view of the group may be stale).
    let validated = match groups.is_coordinator(&group_id) {
        false => Err(ErrorCode::NotCoordinator),
        true => groups.coordinator().validate_commit(
            &group_id,
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|id| id.as_str()),
            request.generation_id_or_member_epoch,
            now,
        ),
    };
    let metadata_max = groups.coordinator().config().offset_metadata_bytes_max;
    // Per partition: Ok(entry to write) or the error to answer with.
    let mut results = Vec::with_capacity(request.topics.len());
    let mut entries = Vec::new();
    let image = broker.quorum.image();
    for topic in &request.topics {
        // Like Kafka, the partition must exist in the cluster, wherever its replicas are.
        let partition_count = image
            .topics
            .get(topic.name.as_str())
            .map_or(0, |topic| topic.partitions.len() as i32);
        let partitions: Vec<(i32, ErrorCode)> = topic
            .partitions
            .iter()
            .map(|p| {
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let checked = validated.and_then(|()| {
                    limits::check_offset(topic.name.as_str(), &metadata, metadata_max)
                });
                let error = match checked {
                    Err(error) => error,
                    Ok(()) if !(0..partition_count).contains(&p.partition_index) => {
                        ErrorCode::UnknownTopicOrPartition
                    }
                    Ok(()) => {
                        let offset = CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata,
                            commit_timestamp_ms: now,
                        };
                        entries.push((topic.name.to_string(), p.partition_index, offset));
                        ErrorCode::None
                    }
                };
                (p.partition_index, error)
            })
            .collect();
        results.push((topic.name.clone(), partitions));
    }
    Reply::Later(Box::pin(async move {
        let written = groups.write_offsets(&group_id, &entries).await;
        match written {
            // Where the records are: a transaction that ends later does not replace these
            // with offsets it wrote before them (see complete_transaction).
            Ok(Some(first_record_offset)) => groups.coordinator().apply_commit_written(
                &group_id,
                entries,
                first_record_offset,
                groups.now_ms(),
            ),
            Ok(None) => {}
            Err(error) => tracing::error!(group = %group_id, %error, "offset commit not durable"),
        }
        let written = written.map(|_| ());
        let topics = results
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, error)| {
                        let error = super::after_write(&written, error);
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(error.code())
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    }))
}
