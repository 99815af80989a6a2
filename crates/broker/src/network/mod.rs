//! The network layer: [`listener`] accepts connections, [`connection`] serves one, reading
//! its requests with a [`frame_reader::FrameReader`]; [`warnings`] keeps what clients cause
//! from flooding the log.

pub mod authentication;
pub mod connection;
pub mod frame_reader;
pub mod listener;
pub mod stream;
pub mod warnings;
