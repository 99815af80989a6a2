//! AddPartitionsToTxn: partitions join a producer's transaction (v0-3, from producers), or,
//! with `verify_only` (v4+, from partition leaders, KIP-890 part 1), the coordinator says
//! whether they are in it. Unknown topics and partitions are refused before the coordinator
//! sees the request: UNKNOWN_TOPIC_OR_PARTITION for them, OPERATION_NOT_ATTEMPTED for the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind, TopicName,
};
use strom_coordinator::transactions::{error_for_client, Decision, Reply as TxnReply};
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::{str_bytes, Reply};
use crate::{transactions, Broker};

type TopicPartition = (String, i32);

pub fn handle(broker: &Arc<Broker>, request: AddPartitionsToTxnRequest, version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let response = if version <= 3 {
            let partitions = flatten(&request.v3_and_below_topics);
            let results = add(
                &broker,
                request.v3_and_below_transactional_id.as_str(),
                ProducerId(request.v3_and_below_producer_id.0),
                ProducerEpoch(request.v3_and_below_producer_epoch),
                &partitions,
                false,
            )
            .await;
            let results = results
                .into_iter()
                .map(|(p, error)| (p, error_for_client(error, version >= 2)))
                .collect();
            AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(by_topic(results))
        } else {
            let mut by_transaction = Vec::with_capacity(request.transactions.len());
            for transaction in &request.transactions {
                let partitions = flatten(&transaction.topics);
                let results = add(
                    &broker,
                    transaction.transactional_id.as_str(),
                    ProducerId(transaction.producer_id.0),
                    ProducerEpoch(transaction.producer_epoch),
                    &partitions,
                    transaction.verify_only,
                )
                .await;
                // TRANSACTION_ABORTABLE is known to callers from version 5 on.
                let results = results
                    .into_iter()
                    .map(|(p, error)| match (error, version >= 5) {
                        (ErrorCode::TransactionAbortable, false) => (p, ErrorCode::InvalidTxnState),
                        (error, _) => (p, error),
                    })
                    .collect();
                by_transaction.push(
                    AddPartitionsToTxnResult::default()
                        .with_transactional_id(transaction.transactional_id.clone())
                        .with_topic_results(by_topic(results)),
                );
            }
            AddPartitionsToTxnResponse::default().with_results_by_transaction(by_transaction)
        };
        ResponseKind::AddPartitionsToTxn(response)
    }))
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|topic| {
            (topic.partitions.iter()).map(|index| (topic.name.as_str().to_owned(), *index))
        })
        .collect()
}

fn by_topic(results: Vec<(TopicPartition, ErrorCode)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut topics: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((topic, index), error) in results {
        topics.entry(topic).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(index)
                .with_partition_error_code(error.code()),
        );
    }
    topics
        .into_iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(str_bytes(name)))
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// Each partition's answer.
async fn add(
    broker: &Arc<Broker>,
    transactional_id: &str,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partitions: &[TopicPartition],
    verify_only: bool,
) -> Vec<(TopicPartition, ErrorCode)> {
    let all = |error: ErrorCode| partitions.iter().map(|p| (p.clone(), error)).collect();
    let image = broker.quorum.image();
    let unknown: Vec<&TopicPartition> = partitions
        .iter()
        .filter(|(topic, index)| {
            image
                .topics
                .get(topic.as_str())
                .is_none_or(|described| *index < 0 || *index as usize >= described.partitions.len())
        })
        .collect();
    if !unknown.is_empty() {
        return partitions
            .iter()
            .map(|p| match unknown.contains(&p) {
                true => (p.clone(), ErrorCode::UnknownTopicOrPartition),
                false => (p.clone(), ErrorCode::OperationNotAttempted),
            })
            .collect();
    }
    let now = broker.transactions.now_ms();
    let decision = {
        let mut coordinator = broker.transactions.coordinator();
        if verify_only {
            return coordinator.verify_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            );
        }
        coordinator.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            now,
        )
    };
    match decision {
        Decision::Reply(error) => all(error),
        Decision::Write(write) => {
            let outcome = transactions::write(broker, write).await;
            match transactions::carry_out(broker, outcome) {
                Some(TxnReply::AddPartitions(error)) => all(error),
                other => {
                    tracing::error!(?other, "AddPartitionsToTxn's write answered something else");
                    all(ErrorCode::UnknownServerError)
                }
            }
        }
    }
}
