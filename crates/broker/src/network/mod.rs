//! The network layer: [`listener`] accepts connections, [`connection`] serves one.

pub mod connection;
pub mod listener;
