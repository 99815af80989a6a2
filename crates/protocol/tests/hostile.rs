//! Hostile request bodies must come back as decode errors, never abort or panic the process.
//!
//! The first two tests are the regression for the allocation abort in kafka-protocol 0.18
//! (vendor/kafka-protocol/STROM-PATCH.md): without the patch they kill the test binary.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;
use strom_protocol::versions::SUPPORTED_APIS;
use strom_protocol::{decode_request, DecodeError};

fn header(buf: &mut BytesMut, api_key: ApiKey, version: i16, flexible_header: bool) {
    buf.put_i16(api_key as i16);
    buf.put_i16(version);
    buf.put_i32(1);
    buf.put_i16(-1); // null client id
    if flexible_header {
        buf.put_u8(0); // no tagged fields
    }
}

#[test]
fn metadata_claiming_two_billion_topics_is_an_error_not_an_abort() {
    let mut frame = BytesMut::new();
    header(&mut frame, ApiKey::Metadata, 1, false);
    frame.put_i32(i32::MAX);
    let error = decode_request(frame.freeze()).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                api_key: ApiKey::Metadata,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn compact_array_claiming_four_billion_entries_is_an_error_not_an_abort() {
    let mut frame = BytesMut::new();
    header(&mut frame, ApiKey::Metadata, 9, true);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint u32::MAX
    let error = decode_request(frame.freeze()).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
}

#[test]
fn strings_and_bytes_longer_than_the_frame_are_errors() {
    // CreateTopics v2: topics array of 1, then a topic name claiming 32 KiB.
    let mut frame = BytesMut::new();
    header(&mut frame, ApiKey::CreateTopics, 2, false);
    frame.put_i32(1);
    frame.put_i16(i16::MAX);
    assert!(decode_request(frame.freeze()).is_err());
    // Produce v3: one topic, one partition, records claiming 2 GiB.
    let mut frame = BytesMut::new();
    header(&mut frame, ApiKey::Produce, 3, false);
    frame.put_i16(-1); // transactional id
    frame.put_i16(1); // acks
    frame.put_i32(1000); // timeout
    frame.put_i32(1); // topics
    frame.put_i16(1);
    frame.put_u8(b't');
    frame.put_i32(1); // partitions
    frame.put_i32(0);
    frame.put_i32(i32::MAX);
    assert!(decode_request(frame.freeze()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random bodies behind a valid header, for every supported API and version.
    #[test]
    fn random_bodies_never_panic(api_index in 0..SUPPORTED_APIS.len(), version_offset in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let api = SUPPORTED_APIS[api_index];
        let version = api.min_version + version_offset % (api.max_version - api.min_version + 1);
        let mut frame = BytesMut::new();
        header(&mut frame, api.key, version, api.key.request_header_version(version) >= 2);
        frame.put_slice(&body);
        let _ = decode_request(frame.freeze());
    }

    /// Completely random frames.
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_request(Bytes::from(bytes));
    }
}
