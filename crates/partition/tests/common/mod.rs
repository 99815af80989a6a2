//! What the partition's integration tests share: v2 record batches as producers send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// An idempotent producer's identity in a batch: id, epoch, first sequence.
pub type ProducerFields = (i64, i16, i32);

/// One v2 batch holding `values` (key "k"); with `producer`, from that idempotent producer.
pub fn batch_of(values: &[Bytes], producer: Option<ProducerFields>) -> BytesMut {
    encode(values, producer, false)
}

/// One v2 batch holding `values` from a transactional producer.
#[allow(dead_code)] // not every test binary writes transactions
pub fn transactional_batch_of(values: &[Bytes], producer: ProducerFields) -> BytesMut {
    encode(values, Some(producer), true)
}

/// One v2 batch of (key, value) records; with `producer`, from that producer, transactional
/// or not.
#[allow(dead_code)] // not every test binary needs keys
pub fn keyed_batch_of(
    records: &[(&str, &str)],
    producer: Option<ProducerFields>,
    transactional: bool,
) -> BytesMut {
    let keys: Vec<Bytes> = records
        .iter()
        .map(|(key, _)| Bytes::copy_from_slice(key.as_bytes()))
        .collect();
    let values: Vec<Bytes> = records
        .iter()
        .map(|(_, value)| Bytes::copy_from_slice(value.as_bytes()))
        .collect();
    encode_keyed(&keys, &values, producer, transactional)
}

fn encode(values: &[Bytes], producer: Option<ProducerFields>, transactional: bool) -> BytesMut {
    let keys = vec![Bytes::from_static(b"k"); values.len()];
    encode_keyed(&keys, values, producer, transactional)
}

fn encode_keyed(
    keys: &[Bytes],
    values: &[Bytes],
    producer: Option<ProducerFields>,
    transactional: bool,
) -> BytesMut {
    let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(index, (value, key))| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: if sequence < 0 {
                -1
            } else {
                sequence + index as i32
            },
            timestamp: 1_000,
            key: Some(key.clone()),
            value: Some(value.clone()),
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
