//! The controller transport over TCP, or over mutual TLS when the quorum is configured with
//! [`QuorumTls`](crate::quorum::QuorumTls): 4-byte length-prefixed serde_json frames
//! ([`frame`]), requests and responses matched by id ([`rpc`]), one shared connection per peer
//! with a timeout on every call ([`client`]), the listener ([`server`]), and openraft's
//! network traits on top ([`raft`]).

pub mod client;
pub mod frame;
pub mod raft;
pub mod rpc;
pub mod server;

pub use client::{CallError, Peers};
pub use server::{serve, Handler};
