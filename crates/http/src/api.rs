//! The console's JSON API under `/api/`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/cluster", get(cluster))
}

/// The node, the controller and the brokers as this node's metadata image has them.
async fn cluster(State(state): State<AdminState>) -> (StatusCode, Json<serde_json::Value>) {
    let Some(broker) = state.broker() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the broker is starting" })),
        );
    };
    let image = broker.quorum.image();
    let brokers: Vec<_> = (image.brokers.values())
        .map(|b| json!({ "id": b.id, "host": b.host, "port": b.port, "fenced": b.fenced }))
        .collect();
    let body = json!({
        "cluster_id": image.cluster_id,
        "node_id": broker.node().0,
        "controller_id": broker.quorum.leader(),
        "brokers": brokers,
    });
    (StatusCode::OK, Json(body))
}
