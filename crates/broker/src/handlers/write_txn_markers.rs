//! WriteTxnMarkers, from a transaction coordinator: a COMMIT or ABORT control batch in each
//! partition listed, which this node must lead, answered once the ISR has it on disk.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_types::{CoordinatorEpoch, PartitionIndex, ProducerEpoch, ProducerId};

use super::Reply;
use crate::{transactions, Broker};

pub fn handle(broker: &Arc<Broker>, request: WriteTxnMarkersRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut markers = Vec::with_capacity(request.markers.len());
        for marker in request.markers {
            let mut topics = Vec::with_capacity(marker.topics.len());
            for topic in marker.topics {
                let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
                for index in topic.partition_indexes {
                    let error = transactions::write_marker(
                        &broker,
                        topic.name.as_str(),
                        PartitionIndex(index),
                        ProducerId(marker.producer_id.0),
                        ProducerEpoch(marker.producer_epoch),
                        CoordinatorEpoch(marker.coordinator_epoch),
                        marker.transaction_result,
                    )
                    .await;
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(error.code()),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics),
            );
        }
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers))
    }))
}
