//! Helpers for this crate's unit tests.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One v2 batch holding `values` (key "k"), as a producer without an id sends it.
pub(crate) fn batch(values: &[&str]) -> BytesMut {
    producer_batch(values, -1, -1, -1)
}

/// One v2 batch from an idempotent producer.
pub(crate) fn producer_batch(
    values: &[&str],
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> BytesMut {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(index, value)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: if sequence < 0 {
                -1
            } else {
                sequence + index as i32
            },
            timestamp: 1_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("test batches encode");
    buf
}
