//! Broker-side schema validation (Confluent Server's topic configs
//! `confluent.value.schema.validation` and `confluent.key.schema.validation`): with one on, a
//! produce to the topic is refused (INVALID_RECORD, naming the record's index in the batch)
//! unless every record's value (or key) starts with Confluent's wire header, the magic byte 0
//! and a big-endian 4-byte schema id, and that id is registered. A null value or key (a
//! tombstone, a keyless record) carries no data to describe and is let through.
//!
//! The broker does not read `_schemas` itself: the schema registry (in `strom-http`) installs
//! a [`SchemaIds`] once it serves. An id this node has not seen yet may have just been
//! registered on another node, so before refusing, the produce waits for one
//! [`SchemaIds::refresh`] (reading `_schemas` to its end) and checks again.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// Registered schema ids, as the schema registry knows them.
pub trait SchemaIds: Send + Sync {
    /// Whether `id` is registered, as far as this node has read `_schemas`.
    fn is_registered(&self, id: i32) -> bool;
    /// Reads `_schemas` to its end (opening it on first use); errors are the registry's to log.
    fn refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The schema registry's ids, once it installed them.
#[derive(Default)]
pub struct SchemaValidation {
    ids: OnceLock<Arc<dyn SchemaIds>>,
}

impl SchemaValidation {
    pub fn install(&self, ids: Arc<dyn SchemaIds>) {
        let _ = self.ids.set(ids);
    }

    pub fn is_registered(&self, id: i32) -> bool {
        self.ids.get().is_some_and(|ids| ids.is_registered(id))
    }

    pub async fn refresh(&self) {
        if let Some(ids) = self.ids.get() {
            ids.refresh().await;
        }
    }
}

/// Which parts of a topic's records must carry a registered schema id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    pub key: bool,
    pub value: bool,
}

impl Checked {
    pub fn any(self) -> bool {
        self.key || self.value
    }
}

/// Confluent's wire header: magic byte 0 and a 4-byte big-endian schema id.
const HEADER_BYTES: usize = 5;

/// A record that fails validation: its index in the produce's records, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub message: String,
}

/// The schema ids the records name, in record order, or the first record without the header.
/// Records that do not decode are refused as record 0 (the batch as a whole is bad).
pub fn schema_ids(records: &Bytes, checked: Checked) -> Result<Vec<(usize, i32)>, Refused> {
    let mut bytes = records.clone();
    let batches =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| {
            Refused {
                index: 0,
                message: format!("records do not decode: {error:#}"),
            }
        })?;
    let mut ids = Vec::new();
    let records = batches.iter().flat_map(|batch| &batch.records);
    for (index, record) in records.enumerate() {
        let parts = [
            (checked.key, "key", record.key.as_deref()),
            (checked.value, "value", record.value.as_deref()),
        ];
        for (_, part, data) in parts.into_iter().filter(|(on, _, _)| *on) {
            let Some(data) = data else { continue };
            match data {
                [0, a, b, c, d, ..] => ids.push((index, i32::from_be_bytes([*a, *b, *c, *d]))),
                _ => {
                    return Err(Refused {
                        index,
                        message: format!(
                            "the {part} of record {index} does not start with a schema id (magic \
                             byte 0 and {} bytes of id): schema validation is on for this topic",
                            HEADER_BYTES - 1
                        ),
                    })
                }
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(values: &[Option<&[u8]>]) -> Bytes {
        let records: Vec<Record> = (values.iter().enumerate())
            .map(|(i, value)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 0,
                key: None,
                value: value.map(Bytes::copy_from_slice),
                headers: Default::default(),
            })
            .collect();
        let mut buffer = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buffer, &records, &options).unwrap();
        buffer.freeze()
    }

    #[test]
    fn ids_of_headed_values_and_the_first_without_one() {
        let value = Checked {
            key: false,
            value: true,
        };
        let good = batch(&[Some(&[0, 0, 0, 0, 7, 1]), None, Some(&[0, 0, 0, 1, 0])]);
        assert_eq!(schema_ids(&good, value).unwrap(), vec![(0, 7), (2, 256)]);
        let bad = batch(&[Some(&[0, 0, 0, 0, 7]), Some(b"{\"json\": 1}")]);
        let refused = schema_ids(&bad, value).unwrap_err();
        assert_eq!(refused.index, 1);
        assert!(refused.message.contains("value of record 1"));
        let short = batch(&[Some(&[0, 0, 1])]);
        assert_eq!(schema_ids(&short, value).unwrap_err().index, 0);
        // Keys are not checked unless asked: the keyless records above pass either way.
        let key = Checked {
            key: true,
            value: false,
        };
        assert!(schema_ids(&bad, key).unwrap().is_empty());
    }
}
