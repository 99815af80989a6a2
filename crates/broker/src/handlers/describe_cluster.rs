//! DescribeCluster: the unfenced brokers of the metadata image (at their endpoints of the
//! client's listener) and the controller leader.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    _version: i16,
    listener: &str,
) -> DescribeClusterResponse {
    let image = broker.quorum.image();
    let brokers = image
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .filter_map(|registration| {
            let (host, port) = registration.endpoint(listener)?;
            let described = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(registration.id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(registration.rack.clone().map(str_bytes));
            Some(described)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(image.cluster_id.clone().unwrap_or_default()))
        .with_controller_id(BrokerId(broker.quorum.leader().unwrap_or(-1)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}
