//! The web console's files, embedded in the binary by `strom_console`: the page at `/` and its
//! script and styles at `/assets/{file}`.
//!
//! Caching: every answer carries the file's `ETag` and `Cache-Control: no-cache`, so a browser
//! keeps its copy but asks each time whether it is still current (a `304 Not Modified` when it
//! is); a new binary's files are therefore seen at the next load, never a stale script.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use strom_console::Asset;

use crate::state::AdminState;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    match strom_console::asset(strom_console::INDEX) {
        Some(asset) => serve(asset, &headers),
        None => not_found(strom_console::INDEX),
    }
}

async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    // The page is served at `/`, not among the assets.
    let asset = strom_console::asset(&file).filter(|_| file != strom_console::INDEX);
    match asset {
        Some(asset) => serve(asset, &headers),
        None => not_found(&file),
    }
}

fn serve(asset: Asset, request: &HeaderMap) -> Response {
    let etag = HeaderValue::from_static(asset.etag);
    let cache = HeaderValue::from_static("no-cache");
    let current = (request.get(header::IF_NONE_MATCH))
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == asset.etag));
    if current {
        let headers = [(header::ETAG, etag), (header::CACHE_CONTROL, cache)];
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // Only this listener's own files and API: no inline script, nothing from elsewhere.
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
        ),
    ];
    (StatusCode::OK, headers, asset.bytes).into_response()
}

fn not_found(file: &str) -> Response {
    let body = format!("the console has no file named '{file}'");
    (StatusCode::NOT_FOUND, body).into_response()
}
