//! Request decoding and response encoding over the `kafka-protocol` crate.
//!
//! A request is checked in this order, each step before any work that depends on it:
//! the fixed 8-byte prefix of every header (api key, version, correlation id); the api key is
//! one the broker knows and the version one it implements ([`crate::versions`]); then the
//! header and body are decoded. Record batches in Produce requests stay raw `Bytes` slices of
//! the frame.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
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

/// Records at least this big leave as their own chunk of the response instead of being
/// copied into the response buffer.
const SHARED_RECORDS_BYTES_MIN: usize = 4096;

/// Encodes a whole response frame, size prefix included, as chunks to write with one vectored
/// write. A Fetch response's record sets are not copied: each big one is a chunk of its own,
/// the same `Bytes` the log read them into, between chunks of encoded fields. Every other
/// response is one chunk, as [`encode_response`] makes it.
pub fn encode_response_chunks(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    mut body: ResponseKind,
) -> Result<Vec<Bytes>, EncodeError> {
    let records: Vec<Option<Bytes>> = fetch_partitions(&mut body)
        .map(|partition| partition.records.take())
        .collect();
    let shared = records
        .iter()
        .flatten()
        .any(|records| records.len() >= SHARED_RECORDS_BYTES_MIN);
    if shared {
        if let Some(chunks) = encode_fetch_chunks(correlation_id, version, &mut body, &records)? {
            return Ok(chunks);
        }
    }
    for (partition, records) in fetch_partitions(&mut body).zip(records) {
        partition.records = records;
    }
    Ok(vec![encode_response(
        correlation_id,
        api_key,
        version,
        &body,
    )?])
}

/// Every partition of a Fetch response, in encoding order; none for any other response.
fn fetch_partitions(body: &mut ResponseKind) -> impl Iterator<Item = &mut PartitionData> {
    let fetch = match body {
        ResponseKind::Fetch(fetch) => Some(fetch),
        _ => None,
    };
    fetch
        .into_iter()
        .flat_map(|fetch| fetch.responses.iter_mut())
        .flat_map(|topic| topic.partitions.iter_mut())
}

/// The Fetch response as chunks, given its record sets (taken out of `body`, whose records
/// are all `None`). The fields are encoded by the crate twice, once with every record set
/// null and once with every one empty: the two encodings have the same length and differ
/// exactly at the record sets' length fields (null is -1 / compact 0, empty is 0 / compact
/// 1), which is where each partition's records go. `None` if the two encodings do not line
/// up that way (they always do; the caller then copies, as for any response).
fn encode_fetch_chunks(
    correlation_id: i32,
    version: i16,
    body: &mut ResponseKind,
    records: &[Option<Bytes>],
) -> Result<Option<Vec<Bytes>>, EncodeError> {
    let with_null = encode_response(correlation_id, ApiKey::Fetch, version, body)?;
    fetch_partitions(body).for_each(|partition| partition.records = Some(Bytes::new()));
    let with_empty = encode_response(correlation_id, ApiKey::Fetch, version, body)?;
    fetch_partitions(body).for_each(|partition| partition.records = None);
    if with_null.len() != with_empty.len() {
        return Ok(None);
    }
    let compact = version >= 12;
    let placeholder_bytes = if compact { 1 } else { 4 };
    let too_big = || EncodeError {
        api_key: ApiKey::Fetch,
        version,
        reason: "the records do not fit a frame".to_string(),
    };
    // Each partition's records length field: null is -1 (compact: 0), else the size (compact:
    // the size + 1, as an unsigned varint; the crate does not export its encoders).
    let length_fields = records
        .iter()
        .map(|records| {
            let mut field = BytesMut::with_capacity(5);
            match (records, compact) {
                (None, true) => field.put_u8(0),
                (None, false) => field.put_i32(-1),
                (Some(records), true) => {
                    let mut value = u32::try_from(records.len() + 1).map_err(|_| too_big())?;
                    while value >= 0x80 {
                        field.put_u8((value as u8 & 0x7f) | 0x80);
                        value >>= 7;
                    }
                    field.put_u8(value as u8);
                }
                (Some(records), false) => {
                    field.put_i32(i32::try_from(records.len()).map_err(|_| too_big())?)
                }
            }
            Ok(field)
        })
        .collect::<Result<Vec<BytesMut>, EncodeError>>()?;
    let total = with_null.len() - records.len() * placeholder_bytes
        + length_fields.iter().map(BytesMut::len).sum::<usize>()
        + records.iter().flatten().map(Bytes::len).sum::<usize>();
    let size = i32::try_from(total - 4).map_err(|_| too_big())?;
    let mut chunks = Vec::new();
    let mut head = BytesMut::with_capacity(with_null.len() + 64);
    head.put_i32(size);
    let (mut next, mut copied_from, mut position) = (0, 4, 4);
    while position < with_null.len() {
        if with_null[position] == with_empty[position] {
            position += 1;
            continue;
        }
        let (Some(partition_records), Some(length_field)) =
            (records.get(next), length_fields.get(next))
        else {
            return Ok(None);
        };
        head.extend_from_slice(&with_null[copied_from..position]);
        head.extend_from_slice(length_field);
        match partition_records {
            Some(records) if records.len() >= SHARED_RECORDS_BYTES_MIN => {
                chunks.push(head.split().freeze());
                chunks.push(records.clone());
            }
            Some(records) => head.extend_from_slice(records),
            None => {}
        }
        next += 1;
        position += placeholder_bytes;
        copied_from = position;
    }
    if next != records.len() || copied_from > with_null.len() {
        return Ok(None);
    }
    head.extend_from_slice(&with_null[copied_from..]);
    chunks.push(head.freeze());
    chunks.retain(|chunk| !chunk.is_empty());
    Ok(Some(chunks))
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
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use uuid::Uuid;

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

    /// A Fetch response in chunks is byte for byte the response encoded whole, in every
    /// version, with big, small, empty and null record sets across topics.
    #[test]
    fn fetch_chunks_concatenate_to_the_whole_encoding() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let records = |length: usize, fill: u8| Some(Bytes::from(vec![fill; length]));
        let partitions = |records: Vec<Option<Bytes>>| -> Vec<PartitionData> {
            records
                .into_iter()
                .enumerate()
                .map(|(index, records)| {
                    PartitionData::default()
                        .with_partition_index(index as i32)
                        .with_high_watermark(1_000 + index as i64)
                        .with_error_code(if records.is_none() { 1 } else { 0 })
                        .with_records(records)
                })
                .collect()
        };
        let response = |version: i16| {
            let topic = |name: &'static str, records| {
                let topic = FetchableTopicResponse::default().with_partitions(partitions(records));
                if version >= 13 {
                    topic.with_topic_id(Uuid::from_u128(7))
                } else {
                    topic.with_topic(TopicName(StrBytes::from_static_str(name)))
                }
            };
            FetchResponse::default().with_responses(vec![
                topic(
                    "one",
                    vec![
                        records(70_000, 0xff),
                        None,
                        records(100, 0),
                        records(5_000, 1),
                    ],
                ),
                topic("two", vec![Some(Bytes::new()), records(300_000, 0x80)]),
            ])
        };
        // The versions served and the newer ones (topic ids from v13, node endpoints in v16).
        let served = versions::supported(ApiKey::Fetch).unwrap();
        for version in served.min_version..=16 {
            let body = ResponseKind::Fetch(response(version));
            let whole = encode_response(9, ApiKey::Fetch, version, &body).unwrap();
            let chunks = encode_response_chunks(9, ApiKey::Fetch, version, body).unwrap();
            assert!(
                chunks.len() > 1,
                "v{version}: the big record sets are shared"
            );
            assert!(
                chunks.iter().any(|chunk| chunk.len() == 300_000),
                "v{version}: a record set is its own chunk"
            );
            assert_eq!(chunks.concat(), whole.to_vec(), "v{version}");
        }
    }

    #[test]
    fn small_fetches_and_other_responses_are_one_chunk() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::FetchResponse;
        let response =
            FetchResponse::default()
                .with_responses(vec![FetchableTopicResponse::default().with_partitions(
                    vec![PartitionData::default().with_records(Some(Bytes::from_static(b"small")))],
                )]);
        let body = ResponseKind::Fetch(response);
        let whole = encode_response(1, ApiKey::Fetch, 12, &body).unwrap();
        let chunks = encode_response_chunks(1, ApiKey::Fetch, 12, body).unwrap();
        assert_eq!(chunks, vec![whole]);
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
