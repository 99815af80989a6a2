//! The Raft quorum that orders the metadata log (openraft), and the runtime around it.
//!
//! How a command flows: [`MetadataQuorum::propose`] on any node sends it to the controller
//! leader ([`network`]); the leader's Raft appends it to its log ([`storage::LogStore`], fsynced
//! before it counts), replicates it to the voters and learners, and once a majority of voters
//! hold it, every node applies it with [`MetadataImage::apply`](crate::MetadataImage::apply)
//! ([`storage::StateMachineStore`]) and publishes the new image on a watch channel.
//!
//! - [`config`]: [`QuorumConfig`] (with [`QuorumTls`]) and [`QuorumStatus`].
//! - [`types`]: openraft's type configuration for Strom.
//! - [`storage`]: the Raft log, vote and snapshots under `<data_dir>/__cluster_metadata/`.
//! - [`network`]: the controller protocol over TCP, or mutual TLS (Raft RPCs, proposals, broker
//!   heartbeats, learners joining).
//! - [`health`]: whether the metadata log can be written, as a readiness check sees it.
//! - [`liveness`]: which brokers the leader fences and unfences; pure, with an injected clock.
//! - [`balance`]: when the leader checks whether leadership should go back to preferred
//!   replicas; pure, with an injected clock.
//! - [`node`]: [`MetadataQuorum`], the runtime: starts everything, routes requests to the
//!   leader, runs the timers.
//! - [`supervisor`]: runs Raft, and starts it again after a storage error stopped it.
//! - [`limits`]: every bound, in one place.

pub mod balance;
pub mod config;
pub mod error;
pub mod health;
pub mod limits;
pub mod liveness;
pub mod network;
pub mod node;
#[cfg(test)]
mod recovery_tests;
pub mod storage;
pub mod supervisor;
#[cfg(test)]
mod tls_tests;
pub mod types;

pub use balance::LeaderBalancer;
pub use config::{LeaderBalanceConfig, QuorumConfig, QuorumRole, QuorumStatus, QuorumTls};
pub use error::QuorumError;
pub use health::Health;
pub use liveness::BrokerLiveness;
pub use node::MetadataQuorum;
