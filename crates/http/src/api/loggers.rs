//! This node's log levels, in-process through `strom_broker::log_levels` (what
//! IncrementalAlterConfigs of a BROKER_LOGGER changes): changes are this node's alone and end
//! with the process, as in Kafka.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use strom_broker::log_levels::{self, LevelChange, LevelError};

use super::{body, serving, ApiError, ApiResult};
use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/loggers", get(list).put(alter))
}

fn loggers() -> Value {
    let loggers: Vec<Value> = (log_levels::describe().into_iter())
        .map(|(logger, level)| json!({ "logger": logger, "level": level }))
        .collect();
    json!({ "loggers": loggers, "levels": log_levels::LEVELS })
}

async fn list(State(state): State<AdminState>) -> ApiResult {
    serving(&state)?;
    Ok(Json(loggers()))
}

async fn alter(
    State(state): State<AdminState>,
    changes: Result<Json<BTreeMap<String, Option<String>>>, JsonRejection>,
) -> ApiResult {
    let changes = body(changes)?;
    serving(&state)?;
    if changes.is_empty() {
        return Err(ApiError::bad_request(
            "no loggers to change: send {\"logger\": \"LEVEL\"} (null: inherit the parent's)",
        ));
    }
    let changes: Vec<LevelChange> = (changes.into_iter())
        .map(|(logger, level)| match level {
            Some(level) => LevelChange::Set(logger, level),
            None => LevelChange::Unset(logger),
        })
        .collect();
    log_levels::alter(&changes, false).map_err(|error| match error {
        LevelError::Config(message) | LevelError::Request(message) => {
            ApiError::bad_request(message)
        }
    })?;
    Ok(Json(loggers()))
}
