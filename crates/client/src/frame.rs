//! Request and response frames, free of I/O.
//!
//! On the wire every message is a 4-byte big-endian length and that many bytes. A request frame
//! holds a request header (v1 for non-flexible request versions, v2 for flexible ones: the
//! request type knows which) and the body; a response frame holds a response header (v0 or v1)
//! whose first field is the correlation id, then the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::ClientError;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Encodes `request` as a whole frame, length prefix included.
pub fn encode_request<Req: Request>(
    request: &Req,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Bytes, ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let header_version = Req::header_version(version);
    let encode_error = |error: anyhow::Error| {
        ClientError::InvalidArgument(format!(
            "cannot encode {:?} v{version}: {error:#}",
            api_key::<Req>()
        ))
    };
    let size = header.compute_size(header_version).map_err(encode_error)?
        + request.compute_size(version).map_err(encode_error)?;
    let length = i32::try_from(size).map_err(|_| {
        ClientError::InvalidArgument(format!("a {size}-byte request does not fit in a frame"))
    })?;
    let mut frame = BytesMut::with_capacity(LENGTH_PREFIX_BYTES + size);
    frame.put_i32(length);
    header
        .encode(&mut frame, header_version)
        .map_err(encode_error)?;
    request.encode(&mut frame, version).map_err(encode_error)?;
    assert_eq!(
        frame.len(),
        LENGTH_PREFIX_BYTES + size,
        "compute_size disagrees with encode"
    );
    Ok(frame.freeze())
}

/// Checks a response's length prefix before anything is allocated for it. `Err` carries the
/// offending length.
pub fn response_length(prefix: [u8; LENGTH_PREFIX_BYTES], limit: usize) -> Result<usize, i64> {
    let length = i32::from_be_bytes(prefix);
    match usize::try_from(length) {
        Ok(length) if (LENGTH_PREFIX_BYTES..=limit).contains(&length) => Ok(length),
        _ => Err(i64::from(length)),
    }
}

/// The correlation id a response frame (without its length prefix) answers.
pub fn correlation_id(frame: &[u8]) -> Option<i32> {
    let bytes = frame.get(..4)?;
    Some(i32::from_be_bytes(bytes.try_into().expect("4 bytes")))
}

/// Decodes a response frame (without its length prefix) to `Req`'s response at `version`.
/// The whole frame must be used: leftover bytes mean the two sides disagree on the format.
pub fn decode_response<Req: Request>(
    mut frame: Bytes,
    version: i16,
) -> Result<Req::Response, String> {
    let header_version = <Req::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut frame, header_version)
        .map_err(|error| format!("bad response header v{header_version}: {error:#}"))?;
    let response = <Req::Response as Decodable>::decode(&mut frame, version)
        .map_err(|error| format!("bad {:?} v{version} response: {error:#}", api_key::<Req>()))?;
    if frame.has_remaining() {
        return Err(format!(
            "{:?} v{version} response has {} bytes left over after decoding",
            api_key::<Req>(),
            frame.remaining()
        ));
    }
    Ok(response)
}

/// The API key of a request type, as the enum (for messages).
pub fn api_key<Req: Request>() -> ApiKey {
    ApiKey::try_from(Req::KEY).expect("every Request type has a known key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{
        ApiVersionsRequest, MetadataRequest, MetadataResponse, TopicName,
    };
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    fn metadata_request() -> MetadataRequest {
        let topic = MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))));
        MetadataRequest::default().with_topics(Some(vec![topic]))
    }

    #[test]
    fn request_frames_carry_length_header_and_body() {
        for version in [1, 8, 9, 12] {
            let request = metadata_request();
            let mut frame = encode_request(&request, version, 77, "strom-test").unwrap();
            assert_eq!(frame.get_i32() as usize, frame.len());
            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            assert_eq!(header.request_api_key, 3);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.client_id.as_deref(), Some("strom-test"));
            // v9 is Metadata's first flexible version: header v2 adds a tagged-field byte.
            assert_eq!(
                MetadataRequest::header_version(version),
                if version >= 9 { 2 } else { 1 }
            );
            assert_eq!(
                MetadataRequest::decode(&mut frame, version).unwrap(),
                request
            );
            assert!(!frame.has_remaining());
        }
    }

    #[test]
    fn flexible_api_versions_request_uses_header_v2() {
        let mut frame = encode_request(&ApiVersionsRequest::default(), 3, 1, "c").unwrap();
        frame.advance(LENGTH_PREFIX_BYTES);
        let header = RequestHeader::decode(&mut frame, 2).unwrap();
        assert_eq!(
            (header.request_api_key, header.request_api_version),
            (18, 3)
        );
    }

    fn response_frame(correlation_id: i32, version: i16, header_version: i16) -> Bytes {
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut frame, header_version)
            .unwrap();
        MetadataResponse::default()
            .encode(&mut frame, version)
            .unwrap();
        frame.freeze()
    }

    #[test]
    fn responses_decode_with_the_matching_header_version() {
        let frame = response_frame(5, 12, 1);
        assert_eq!(correlation_id(&frame), Some(5));
        assert!(decode_response::<MetadataRequest>(frame, 12).is_ok());
        let frame = response_frame(6, 4, 0);
        assert!(decode_response::<MetadataRequest>(frame, 4).is_ok());
    }

    #[test]
    fn leftover_bytes_are_an_error() {
        let mut frame = BytesMut::from(&response_frame(5, 4, 0)[..]);
        frame.put_u8(0);
        let error = decode_response::<MetadataRequest>(frame.freeze(), 4).unwrap_err();
        assert!(error.contains("1 bytes left over"), "{error}");
    }

    #[test]
    fn truncated_responses_are_an_error() {
        let frame = response_frame(5, 12, 1);
        let truncated = frame.slice(..frame.len() - 2);
        assert!(decode_response::<MetadataRequest>(truncated, 12).is_err());
        assert_eq!(correlation_id(&[0, 1]), None);
    }

    #[test]
    fn response_lengths_are_bounded() {
        assert_eq!(response_length(100i32.to_be_bytes(), 1000), Ok(100));
        assert_eq!(response_length(1000i32.to_be_bytes(), 1000), Ok(1000));
        assert_eq!(response_length(1001i32.to_be_bytes(), 1000), Err(1001));
        assert_eq!(response_length((-1i32).to_be_bytes(), 1000), Err(-1));
        assert_eq!(response_length(3i32.to_be_bytes(), 1000), Err(3));
        assert_eq!(
            response_length(i32::MAX.to_be_bytes(), 256 << 20),
            Err(i32::MAX as i64)
        );
    }
}
