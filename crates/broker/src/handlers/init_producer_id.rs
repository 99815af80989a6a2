//! InitProducerId for idempotent producers: a producer id never used before, at epoch 0; or,
//! for a producer re-initialising with its current id and epoch (v3+), the next epoch.
//! Transactional ids need the transaction coordinator, which does not exist yet.

use std::sync::Arc;

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use strom_types::ErrorCode;

use super::Reply;
use crate::cluster;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: InitProducerIdRequest, _version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        ResponseKind::InitProducerId(init(&broker, request).await)
    }))
}

async fn init(broker: &Arc<Broker>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        // Refuse outright rather than pretend: clients report this as fatal and stop.
        return response.with_error_code(ErrorCode::TransactionalIdAuthorizationFailed.code());
    }
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
