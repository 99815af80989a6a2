//! Request decoding and response encoding over the `kafka-protocol` crate.
//!
//! A request is checked in this order, each step before any work that depends on it:
//! the fixed 8-byte prefix of every header (api key, version, correlation id); the api key is
//! one the broker knows and the version one it implements ([`crate::versions`]); then the
//! header and body are decoded. Record batches in Produce requests stay raw `Bytes` slices of
//! the frame.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions;

/// Bytes every request header starts with: api key, api version, correlation id.
const HEADER_PREFIX_BYTES: usize = 8;

/// A decoded request.
#[derive(Debug)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub body: RequestKind,
}

/// Why a request frame could not be decoded. Each carries what the network layer needs to
/// decide between answering and closing the connection.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request of {0} bytes is too short for a request header")]
    Truncated(usize),
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} v{version} is not supported by this broker")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Why a response could not be encoded (a broker bug: the handler built an impossible value).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Decodes one request frame (the bytes after the size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<RequestFrame, DecodeError> {
    if frame.len() < HEADER_PREFIX_BYTES {
        return Err(DecodeError::Truncated(frame.len()));
    }
    let raw_api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_api_key).map_err(|_| DecodeError::UnknownApiKey {
        api_key: raw_api_key,
        correlation_id,
    })?;
    if !versions::is_supported(api_key, api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version: api_version,
            correlation_id,
        });
    }
    let malformed = |error: anyhow::Error| DecodeError::Malformed {
        api_key,
        version: api_version,
        correlation_id,
        reason: format!("{error:#}"),
    };
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, api_version).map_err(malformed)?;
    Ok(RequestFrame {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|id| id.to_string()),
        body,
    })
}

/// Encodes a whole response frame, size prefix included.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let failed = |error: anyhow::Error| EncodeError {
        api_key,
        version,
        reason: format!("{error:#}"),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(failed)?;
    body.encode(&mut buf, version).map_err(failed)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| EncodeError {
        api_key,
        version,
        reason: format!("{} bytes do not fit a frame", buf.len()),
    })?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The answer to an ApiVersions request of a version the broker does not implement: a v0
/// response with UNSUPPORTED_VERSION and the supported list, so the client can retry with a
/// version both sides know (KIP-511).
pub fn unsupported_api_versions_response(correlation_id: i32) -> Bytes {
    let body = ResponseKind::ApiVersions(versions::api_versions_response(
        strom_types::ErrorCode::UnsupportedVersion.code(),
    ));
    encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
        .expect("an ApiVersions v0 response always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::Encodable;

    fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_supported_request() {
        for version in [1, 9, 12] {
            let request = frame(ApiKey::Metadata, version, &MetadataRequest::default());
            let decoded = decode_request(request).unwrap();
            assert_eq!(decoded.api_key, ApiKey::Metadata);
            assert_eq!(decoded.correlation_id, 7);
            assert!(matches!(decoded.body, RequestKind::Metadata(_)));
        }
    }

    #[test]
    fn refuses_unknown_keys_and_versions_before_decoding() {
        let mut raw = BytesMut::new();
        raw.put_i16(9999);
        raw.put_i16(0);
        raw.put_i32(5);
        let error = decode_request(raw.freeze()).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::UnknownApiKey {
                api_key: 9999,
                correlation_id: 5
            }
        ));

        let request = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        let mut raw = BytesMut::from(&request[..]);
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        let error = decode_request(raw.freeze()).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::UnsupportedVersion { version: 99, .. }
        ));
    }

    #[test]
    fn unsupported_api_versions_answer_is_v0_with_error_35() {
        let response = unsupported_api_versions_response(3);
        assert_eq!(
            i32::from_be_bytes(response[0..4].try_into().unwrap()) as usize,
            response.len() - 4
        );
        assert_eq!(i32::from_be_bytes(response[4..8].try_into().unwrap()), 3);
        assert_eq!(i16::from_be_bytes(response[8..10].try_into().unwrap()), 35);
    }
}
