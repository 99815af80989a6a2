//! EndTxn: commit or abort the producer's transaction. Answered once the PrepareCommit or
//! PrepareAbort record is durable; the coordinator then writes the markers and the completion
//! in the background.

use std::sync::Arc;

use kafka_protocol::messages::{
    EndTxnRequest, EndTxnResponse, ProducerId as WireProducerId, ResponseKind,
};
use strom_coordinator::transactions::{
    error_for_client, Decision, ProducerReply, Reply as TxnReply,
};
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::Reply;
use crate::{transactions, Broker};

pub fn handle(broker: &Arc<Broker>, request: EndTxnRequest, version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let reply = end(&broker, &request).await;
        // PRODUCER_FENCED is known to clients from version 2 on.
        let error = error_for_client(reply.error, version >= 2);
        ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(error.code())
                .with_producer_id(WireProducerId(reply.producer_id.0))
                .with_producer_epoch(reply.producer_epoch.0),
        )
    }))
}

async fn end(broker: &Arc<Broker>, request: &EndTxnRequest) -> ProducerReply {
    let decision = broker.transactions.coordinator().end_txn(
        request.transactional_id.as_str(),
        ProducerId(request.producer_id.0),
        ProducerEpoch(request.producer_epoch),
        request.committed,
        broker.transactions.now_ms(),
    );
    match decision {
        Decision::Reply(reply) => reply,
        Decision::Write(write) => {
            let outcome = transactions::write(broker, write).await;
            match transactions::carry_out(broker, outcome) {
                Some(TxnReply::EndTxn(reply)) => reply,
                other => {
                    tracing::error!(?other, "EndTxn's write answered something else");
                    ProducerReply::error(ErrorCode::UnknownServerError)
                }
            }
        }
    }
}
