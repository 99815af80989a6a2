//! The Kafka wire protocol as Strom speaks it, free of I/O.
//!
//! Data flows through it like this: the network layer reads a 4-byte length and asks
//! [`frame`] whether that length is acceptable before allocating; it hands the whole frame to
//! [`codec::decode_request`], which reads the request header, checks the API key and version
//! against what the broker advertises ([`versions`]), and decodes the body with the
//! `kafka-protocol` crate, leaving record batches as raw bytes. Handlers look at those bytes
//! only through [`batch`], the zero-copy v2 record-batch header view. Responses go back out
//! through [`codec::encode_response`], which picks the right response-header version.

pub mod batch;
pub mod codec;
pub mod control;
pub mod frame;
pub mod versions;

pub use codec::{
    decode_request, encode_response, encode_response_chunks, DecodeError, EncodeError, RequestFrame,
};
