//! The network layer: [`listener`] accepts connections, [`connection`] serves one, reading
//! its requests with a [`frame_reader::FrameReader`].

pub mod authentication;
pub mod connection;
pub mod frame_reader;
pub mod listener;
pub mod stream;
