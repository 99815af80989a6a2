//! ListTransactions: the transactions this node coordinates, filtered by state, producer id
//! and (v1, KIP-994) how long they have been open. Admin clients ask every broker.

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    let states: Vec<String> = (request.state_filters.iter())
        .map(|state| state.as_str().to_owned())
        .collect();
    let producer_ids: Vec<strom_types::ProducerId> = (request.producer_id_filters.iter())
        .map(|id| strom_types::ProducerId(id.0))
        .collect();
    let listed = broker.transactions.coordinator().list(
        &states,
        &producer_ids,
        request.duration_filter,
        broker.transactions.now_ms(),
    );
    match listed {
        Err(error) => ListTransactionsResponse::default().with_error_code(error.code()),
        Ok(list) => ListTransactionsResponse::default()
            .with_unknown_state_filters(
                list.unknown_state_filters
                    .into_iter()
                    .map(str_bytes)
                    .collect(),
            )
            .with_transaction_states(
                list.transactions
                    .into_iter()
                    .map(|listing| {
                        TransactionState::default()
                            .with_transactional_id(TransactionalId(str_bytes(
                                listing.transactional_id,
                            )))
                            .with_producer_id(ProducerId(listing.producer_id.0))
                            .with_transaction_state(str_bytes(listing.state.name()))
                    })
                    .collect(),
            ),
    }
}
