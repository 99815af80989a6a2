//! InitProducerId. Without a transactional id (idempotent producers): a producer id never used
//! before, at epoch 0; or, for a producer re-initialising with its current id and epoch (v3+),
//! the next epoch. With one: the transaction coordinator's answer (epoch bump, fencing of the
//! previous producer, abort of its open transaction, KIP-360 recovery), once the new state is
//! durable in `__transaction_state`.

use std::sync::Arc;

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use strom_coordinator::transactions::{
    error_for_client, InitDecision, ProducerReply, Reply as TxnReply,
};
use strom_types::{ErrorCode, ProducerEpoch};

use super::Reply;
use crate::{cluster, transactions, Broker};

pub fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let response = match &request.transactional_id {
            Some(id) => {
                let reply = init_transactional(&broker, id.as_str(), &request).await;
                // PRODUCER_FENCED is known to clients from version 4 on.
                let error = error_for_client(reply.error, version >= 4);
                InitProducerIdResponse::default()
                    .with_error_code(error.code())
                    .with_producer_id(ProducerId(reply.producer_id.0))
                    .with_producer_epoch(reply.producer_epoch.0)
            }
            None => init(&broker, request).await,
        };
        ResponseKind::InitProducerId(response)
    }))
}

async fn init_transactional(
    broker: &Arc<Broker>,
    transactional_id: &str,
    request: &InitProducerIdRequest,
) -> ProducerReply {
    let mut fresh = None;
    loop {
        let decision = broker.transactions.coordinator().init_producer_id(
            transactional_id,
            request.transaction_timeout_ms,
            strom_types::ProducerId(request.producer_id.0),
            ProducerEpoch(request.producer_epoch),
            fresh,
            broker.transactions.now_ms(),
        );
        match decision {
            InitDecision::Reply(reply) => return reply,
            InitDecision::NeedProducerId => match cluster::allocate_producer_id(broker).await {
                Ok(id) => fresh = Some(id),
                Err(error) => {
                    tracing::error!(%error, "cannot allocate a producer id");
                    return ProducerReply::error(error.code);
                }
            },
            InitDecision::Write(write) => {
                let outcome = transactions::write(broker, write).await;
                return match transactions::carry_out(broker, outcome) {
                    Some(TxnReply::InitProducerId(reply)) => reply,
                    other => {
                        tracing::error!(?other, "InitProducerId's write answered something else");
                        ProducerReply::error(ErrorCode::UnknownServerError)
                    }
                };
            }
        }
    }
}

async fn init(broker: &Arc<Broker>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let current = (request.producer_id.0, request.producer_epoch);
    if current.0 >= 0 && current.1 >= 0 && current.1 < i16::MAX - 1 {
        return response
            .with_producer_id(ProducerId(current.0))
            .with_producer_epoch(current.1 + 1);
    }
    match cluster::allocate_producer_id(broker).await {
        Ok(id) => response
            .with_producer_id(ProducerId(id.0))
            .with_producer_epoch(0),
        Err(error) => {
            tracing::error!(%error, "cannot allocate a producer id");
            response.with_error_code(error.code.code())
        }
    }
}
