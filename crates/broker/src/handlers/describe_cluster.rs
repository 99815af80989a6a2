//! DescribeCluster: this node, as both the only broker and the controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::Broker;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let (host, port) = &broker.config.advertise;
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_host(str_bytes(host.clone()))
        .with_port(*port as i32);
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.topics.cluster_id()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![node])
        .with_cluster_authorized_operations(i32::MIN)
}
