//! Strom's HTTP side: the admin listener every node serves (`admin.listen`, port 9644 by
//! default) on axum, the one HTTP stack of the project (the schema registry and connectors will
//! be served by it too).
//!
//! A request's path: [`admin::serve`] accepts it and routes it to [`exposition`] (`/metrics`,
//! Prometheus' text format), [`health`] (`/v1/health/live`, `/v1/health/ready`), [`api`] (the
//! console's JSON API under `/api/`) or [`console`] (the console's pages). The listener starts
//! before the node joins its cluster, so liveness answers at once and readiness says why the
//! node is not ready yet; the broker is handed to the [`admin::AdminState`] once it serves.
//!
//! [`auth`] guards `/metrics` and `/api/`: HTTP Basic against the SCRAM users and the broker's
//! ACLs, over HTTPS with `admin.ssl.enable`.
//!
//! [`registry`] is the schema registry, on a listener of its own (`schema.registry.listen`,
//! port 8081 by default): Confluent's REST API over the `_schemas` topic, behind the same
//! guard.
//!
//! Metrics: [`exposition::install`] makes the process's Prometheus recorder, before the broker
//! starts, so every handle the broker and the log register (`strom_broker::telemetry`) counts
//! into it; what describes state (partition health, log sizes, consumer lag) is read off the
//! broker at each scrape.

pub mod admin;
pub mod api;
pub mod auth;
pub mod console;
pub mod exposition;
pub mod health;
pub mod listener;
pub mod node_client;
pub mod registry;
pub mod registry_store;
pub mod state;

pub use admin::ADMIN_PORT_DEFAULT;
pub use axum::http::Method;
pub use state::AdminState;
