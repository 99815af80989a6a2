//! DescribeTransactions: the state of each transactional id this node coordinates;
//! NOT_COORDINATOR for the others, TRANSACTIONAL_ID_NOT_FOUND for ids it does not know.

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
    TransactionalId,
};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let ids: Vec<String> = (request.transactional_ids.iter())
        .map(|id| id.as_str().to_owned())
        .collect();
    let described = broker.transactions.coordinator().describe(&ids);
    let states = described
        .into_iter()
        .map(|(id, result)| {
            let state = TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match result {
                Err(error) => state.with_error_code(error.code()),
                Ok(description) => state
                    .with_transaction_state(str_bytes(description.state.name()))
                    .with_transaction_timeout_ms(description.timeout_ms)
                    .with_transaction_start_time_ms(description.start_timestamp_ms)
                    .with_producer_id(ProducerId(description.producer_id.0))
                    .with_producer_epoch(description.producer_epoch.0)
                    .with_topics(
                        description
                            .topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(topic)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
