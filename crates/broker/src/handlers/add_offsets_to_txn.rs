//! AddOffsetsToTxn: the `__consumer_offsets` partition of a group joins the producer's
//! transaction, so the offsets it commits with TxnOffsetCommit are committed or aborted with
//! the transaction's records.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};
use strom_coordinator::transactions::{error_for_client, Decision, Reply as TxnReply};
use strom_coordinator::OFFSETS_TOPIC;
use strom_types::{ErrorCode, ProducerEpoch, ProducerId};

use super::Reply;
use crate::{transactions, Broker};

pub fn handle(broker: &Arc<Broker>, request: AddOffsetsToTxnRequest, version: i16) -> Reply {
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let error = add(&broker, &request).await;
        // PRODUCER_FENCED is known to clients from version 2 on.
        let error = error_for_client(error, version >= 2);
        ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(error.code()),
        )
    }))
}

async fn add(broker: &Arc<Broker>, request: &AddOffsetsToTxnRequest) -> ErrorCode {
    if request.group_id.is_empty() {
        return ErrorCode::InvalidGroupId;
    }
    let offsets_partitions = broker
        .quorum
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|topic| topic.partitions.len() as i32);
    let Some(offsets_partitions) = offsets_partitions.filter(|count| *count > 0) else {
        return ErrorCode::CoordinatorNotAvailable;
    };
    let decision = broker.transactions.coordinator().add_offsets(
        request.transactional_id.as_str(),
        ProducerId(request.producer_id.0),
        ProducerEpoch(request.producer_epoch),
        request.group_id.as_str(),
        offsets_partitions,
        broker.transactions.now_ms(),
    );
    match decision {
        Decision::Reply(error) => error,
        Decision::Write(write) => {
            let outcome = transactions::write(broker, write).await;
            match transactions::carry_out(broker, outcome) {
                Some(TxnReply::AddPartitions(error)) => error,
                other => {
                    tracing::error!(?other, "AddOffsetsToTxn's write answered something else");
                    ErrorCode::UnknownServerError
                }
            }
        }
    }
}
