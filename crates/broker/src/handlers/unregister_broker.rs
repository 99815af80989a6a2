//! UnregisterBroker (KIP-500's `kafka-cluster.sh unregister`): a broker that was shut down for
//! good leaves the cluster's registrations, as a metadata command. BROKER_ID_NOT_REGISTERED for
//! an unknown id; a broker that is still alive is refused (INVALID_REQUEST): it would keep
//! serving unregistered. Move its replicas away first (`strom cluster decommission`).

use std::sync::Arc;

use kafka_protocol::messages::{ResponseKind, UnregisterBrokerRequest, UnregisterBrokerResponse};
use strom_metadata::MetadataCommand;

use super::{str_bytes, Reply};
use crate::cluster;
use crate::Broker;

pub fn handle(broker: &Arc<Broker>, request: UnregisterBrokerRequest) -> Reply {
    let command = MetadataCommand::UnregisterBroker {
        id: request.broker_id.0,
    };
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let response = match cluster::propose(&broker, command).await {
            Ok(_) => UnregisterBrokerResponse::default(),
            Err(error) => UnregisterBrokerResponse::default()
                .with_error_code(error.code.code())
                .with_error_message(Some(str_bytes(error.message))),
        };
        ResponseKind::UnregisterBroker(response)
    }))
}
