//! Record batches for tests, encoded by `kafka-protocol` exactly as a client would send them.
//! Shared with the integration tests through `#[path]`, so it depends only on the crate's own
//! dependencies.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH,
};

/// One v2 batch whose records carry `timestamps` (one record each), `value_bytes`-byte values.
pub fn encode_batch(
    base_offset: i64,
    timestamps: &[i64],
    value_bytes: usize,
    compression: Compression,
) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(index, &timestamp)| record(base_offset, index, timestamp, value_bytes))
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("test batch encodes");
    buffer.to_vec()
}

/// An uncompressed batch of `record_count` records stamped `first_timestamp`, `+1`, `+2`, ...
pub fn batch(
    base_offset: i64,
    record_count: usize,
    first_timestamp: i64,
    value_bytes: usize,
) -> Vec<u8> {
    let timestamps: Vec<i64> = (0..record_count as i64)
        .map(|index| first_timestamp + index)
        .collect();
    encode_batch(base_offset, &timestamps, value_bytes, Compression::None)
}

/// [`batch`] as a leader of `leader_epoch` stored it (the epoch is outside the CRC).
pub fn batch_with_epoch(
    base_offset: i64,
    record_count: usize,
    first_timestamp: i64,
    value_bytes: usize,
    leader_epoch: i32,
) -> Vec<u8> {
    let mut bytes = batch(base_offset, record_count, first_timestamp, value_bytes);
    strom_protocol::batch::set_partition_leader_epoch(&mut bytes, leader_epoch);
    bytes
}

/// The producer fields of an idempotent producer's batch.
#[derive(Debug, Clone, Copy)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// One uncompressed batch of keyed records (`None` value: a tombstone), all stamped `timestamp`.
pub fn keyed_batch(records: &[(Option<&str>, Option<&str>)], timestamp: i64) -> Vec<u8> {
    keyed_batch_with(records, timestamp, Compression::None, None)
}

/// One batch of `records` (key, value; `None` is null) stamped `timestamp`, compressed with
/// `compression`, from `producer` if given.
pub fn keyed_batch_with(
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    compression: Compression,
    producer: Option<Producer>,
) -> Vec<u8> {
    encode_keyed(records, timestamp, compression, producer, false)
}

/// One uncompressed batch of keyed records from a transactional producer, stamped `timestamp`.
pub fn transactional_batch(
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    producer: Producer,
) -> Vec<u8> {
    transactional_batch_with(records, timestamp, Compression::None, producer)
}

/// [`transactional_batch`] compressed with `compression`.
pub fn transactional_batch_with(
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    compression: Compression,
    producer: Producer,
) -> Vec<u8> {
    encode_keyed(records, timestamp, compression, Some(producer), true)
}

/// A transaction marker (COMMIT or ABORT control batch) for `producer` at `epoch`.
pub fn marker(producer_id: i64, epoch: i16, abort: bool, timestamp: i64) -> Vec<u8> {
    use strom_protocol::control::{encode_marker, Marker, MarkerType};
    let kind = match abort {
        true => MarkerType::Abort,
        false => MarkerType::Commit,
    };
    let marker = Marker {
        kind,
        coordinator_epoch: 0,
    };
    encode_marker(
        producer_id,
        epoch,
        marker,
        strom_types::TimestampMs(timestamp),
    )
}

fn encode_keyed(
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    compression: Compression,
    producer: Option<Producer>,
    transactional: bool,
) -> Vec<u8> {
    let producer = producer.unwrap_or(Producer {
        id: -1,
        epoch: -1,
        base_sequence: 0,
    });
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional,
            control: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: producer.base_sequence + index as i32,
            timestamp,
            key: key.map(|key| Bytes::from(key.to_string())),
            value: value.map(|value| Bytes::from(value.to_string())),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("test batch encodes");
    buffer.to_vec()
}

fn record(base_offset: i64, index: usize, timestamp: i64, value_bytes: usize) -> Record {
    let offset = base_offset + index as i64;
    // A value that differs per record, so compressed and uncompressed batches differ too.
    let value: Vec<u8> = (0..value_bytes)
        .map(|at| (offset as usize * 31 + at * 7) as u8)
        .collect();
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder splits batches where offset - sequence changes; keep it constant.
        sequence: index as i32,
        timestamp,
        key: Some(Bytes::from(format!("key-{offset}"))),
        value: Some(Bytes::from(value)),
        headers: IndexMap::new(),
        delete_horizon: false,
    }
}
