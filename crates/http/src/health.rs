//! `/v1/health/live` and `/v1/health/ready`, for process supervisors and load balancers.
//!
//! Live: the process answers HTTP (200 always). Ready: the node serves clients with current
//! metadata: it has joined the metadata quorum, knows a controller leader, its metadata log
//! works, it is not shutting down (leaderships moving away count), and the image it applied
//! has it registered and unfenced (so that image has caught up at least to its own
//! registration, and the controller has not fenced it for missed heartbeats). Otherwise 503
//! with the reason, as JSON. Not detected: a node cut off from the quorum that still believes
//! in its last leader reads as ready until its image shows it fenced.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use strom_broker::Broker;
use strom_metadata::Health;

use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/health/live", get(live))
        .route("/v1/health/ready", get(ready))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

async fn ready(State(state): State<AdminState>) -> (StatusCode, Json<serde_json::Value>) {
    let verdict = match state.broker() {
        None => Err("joining the metadata quorum and opening the logs".to_owned()),
        Some(broker) => readiness(broker),
    };
    match verdict {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        ),
    }
}

/// Why the broker is not ready, if it is not.
pub fn readiness(broker: &Broker) -> Result<(), String> {
    if broker.is_shutting_down() {
        return Err("shutting down".to_owned());
    }
    if broker.quorum.leader().is_none() {
        return Err("no metadata quorum leader is known".to_owned());
    }
    if let Health::Unhealthy { reason } = broker.quorum.health() {
        return Err(format!("the metadata log is unhealthy: {reason}"));
    }
    let image = broker.quorum.image();
    match image.brokers.get(&broker.node().0) {
        None => Err("not registered with the controller yet".to_owned()),
        Some(registration) if registration.fenced => {
            Err("fenced: the controller has not heard this broker's heartbeat yet".to_owned())
        }
        Some(_) => Ok(()),
    }
}
