//! WriteTxnMarkers, from a transaction coordinator: a COMMIT or ABORT control batch in each
//! partition listed, which this node must lead, answered once the ISR has it on disk. The
//! markers are appended as the request is handled, so they keep request order.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_types::{CoordinatorEpoch, PartitionIndex, ProducerEpoch, ProducerId};

use super::Reply;
use crate::{transactions, Broker};

pub fn handle(broker: &Arc<Broker>, request: WriteTxnMarkersRequest, _version: i16) -> Reply {
    // Every marker is appended now, in request order, then all are waited for together.
    let begun: Vec<_> = request
        .markers
        .into_iter()
        .map(|marker| {
            let topics: Vec<_> = marker
                .topics
                .into_iter()
                .map(|topic| {
                    let partitions: Vec<_> = (topic.partition_indexes.iter())
                        .map(|index| {
                            let begun = transactions::begin_marker(
                                broker,
                                topic.name.as_str(),
                                PartitionIndex(*index),
                                ProducerId(marker.producer_id.0),
                                ProducerEpoch(marker.producer_epoch),
                                CoordinatorEpoch(marker.coordinator_epoch),
                                marker.transaction_result,
                            );
                            (*index, begun)
                        })
                        .collect();
                    (topic.name, partitions)
                })
                .collect();
            (marker.producer_id, topics)
        })
        .collect();
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let mut markers = Vec::with_capacity(begun.len());
        for (producer_id, topics) in begun {
            let mut results = Vec::with_capacity(topics.len());
            for (name, partitions) in topics {
                let mut answers = Vec::with_capacity(partitions.len());
                for (index, begun) in partitions {
                    let error = match begun {
                        Ok(wait) => transactions::finish_marker(&broker, wait).await,
                        Err(error) => error,
                    };
                    answers.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(error.code()),
                    );
                }
                results.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(name)
                        .with_partitions(answers),
                );
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(producer_id)
                    .with_topics(results),
            );
        }
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers))
    }))
}
