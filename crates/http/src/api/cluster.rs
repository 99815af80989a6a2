//! `GET /api/cluster`: the cluster as DescribeCluster, DescribeQuorum and Metadata show it, a
//! broker's fencing from this node's metadata image, and this node's traffic counters.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use strom_broker::telemetry;
use strom_client::{ClusterMetadata, QuorumReplica};

use super::{connected, ApiResult};
use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/cluster", get(cluster))
}

async fn cluster(State(state): State<AdminState>) -> ApiResult {
    let (broker, client) = connected(&state).await?;
    let client = &*client;
    let described = client.describe_cluster().await?;
    let quorum = client.describe_quorum().await?;
    let metadata = client.metadata(None).await?;
    let image = broker.quorum.image();
    let brokers: Vec<_> = (described.brokers.iter())
        .map(|b| {
            let fenced = image.brokers.get(&b.id.0).map(|r| r.fenced);
            json!({ "id": b.id.0, "address": b.address(), "rack": b.rack, "fenced": fenced })
        })
        .collect();
    let replica = |r: &QuorumReplica| json!({ "id": r.id.0, "log_end_offset": r.log_end_offset.map(|o| o.0) });
    let totals = traffic_totals(&state.prometheus().render());
    Ok(Json(json!({
        "cluster_id": described.cluster_id,
        "node_id": broker.node().0,
        "controller_id": described.controller.map(|id| id.0),
        "brokers": brokers,
        "quorum": {
            "leader_id": quorum.leader.map(|id| id.0),
            "leader_epoch": quorum.leader_epoch.0,
            "high_watermark": quorum.high_watermark.0,
            "voters": quorum.voters.iter().map(replica).collect::<Vec<_>>(),
            "observers": quorum.observers.iter().map(replica).collect::<Vec<_>>(),
        },
        "partitions": partition_health(&metadata),
        "totals": {
            "records_in": totals.records_in,
            "bytes_in": totals.bytes_in,
            "bytes_out": totals.bytes_out,
        },
        "time_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64),
    })))
}

/// Partitions in all, those whose ISR is smaller than their replica set, and those without a
/// leader, as Metadata reports them.
fn partition_health(metadata: &ClusterMetadata) -> serde_json::Value {
    let partitions = (metadata.topics.iter()).flat_map(|topic| &topic.partitions);
    let (mut total, mut under_replicated, mut offline) = (0u64, 0u64, 0u64);
    for partition in partitions {
        total += 1;
        under_replicated += u64::from(partition.isr.len() < partition.replicas.len());
        offline += u64::from(partition.leader.is_none());
    }
    json!({ "total": total, "under_replicated": under_replicated, "offline": offline })
}

/// This node's traffic since it started, summed over topics.
#[derive(Debug, Default, PartialEq)]
struct TrafficTotals {
    records_in: f64,
    bytes_in: f64,
    bytes_out: f64,
}

/// Sums the per-topic traffic counters of a Prometheus text rendering (the recorder keeps no
/// other view of them).
fn traffic_totals(exposition: &str) -> TrafficTotals {
    let mut totals = TrafficTotals::default();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match name {
            telemetry::TOPIC_RECORDS_IN => totals.records_in += value,
            telemetry::TOPIC_BYTES_IN => totals.bytes_in += value,
            telemetry::TOPIC_BYTES_OUT => totals.bytes_out += value,
            _ => {}
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_totals_sum_the_topics_and_skip_the_rest() {
        let text = "# HELP strom_topic_records_in_total Records\n\
                    strom_topic_records_in_total{topic=\"a\"} 3\n\
                    strom_topic_records_in_total{topic=\"b b\"} 4\n\
                    strom_topic_bytes_in_total{topic=\"a\"} 100\n\
                    strom_topic_bytes_out_total{topic=\"a\"} 50\n\
                    strom_requests_total{api=\"Produce\"} 9\n";
        let totals = traffic_totals(text);
        assert_eq!(
            totals,
            TrafficTotals {
                records_in: 7.0,
                bytes_in: 100.0,
                bytes_out: 50.0
            }
        );
    }
}
