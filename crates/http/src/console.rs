//! The web console's pages, embedded in the binary.

use axum::routing::get;
use axum::Router;

use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new().route(
        "/",
        get(|| async { axum::response::Html("<!doctype html><title>Strom</title><h1>Strom</h1>") }),
    )
}
