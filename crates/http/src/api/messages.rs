//! The message browser and the produce form: read a partition with Fetch in bounded steps,
//! filtered by substrings of key, value or headers; produce one record.
//!
//! `GET /api/topics/{name}/messages` reads one partition (`partition`, 0 by default) from a
//! start: `earliest` (the log start, the default), `offset` (`offset=O`), `timestamp` (the
//! first record at or after `timestamp_ms=T`) or `newest` (the last `limit` records). It keeps
//! the records whose key, value or a header (name or value) contains the `key`, `value` and
//! `header` substrings given, up to `limit` (50 by default, at most [`LIMIT_MAX`]). One request
//! never holds a whole partition: it stops once it has read [`SCAN_BYTES_MAX`] of records,
//! matched or not, and says where (`next_offset`) and why (`stopped`: `limit`, `end`, or
//! `scan_bytes_max`), so the page can ask again from there. The answer:
//! `{topic, partition, start_offset, next_offset, log_start_offset, high_watermark,
//! scanned_records, scanned_bytes, stopped, messages: [{partition, offset, timestamp_ms,
//! timestamp_type, key, value, headers: [{key, value}]}]}` where a key, value or header value
//! is `null` or `{text, base64, size, truncated}`: `text` the bytes as UTF-8 when they are
//! (else null), `base64` always; values longer than [`VALUE_SHOWN_BYTES_MAX`] are cut there.
//! A key or value written by Confluent's serializers (magic byte 0 and a registered schema
//! id) also has `schema_id`, `schema_type` and `decoded` (the datum as JSON, decoded with the
//! registry's schema) or `decode_error`. `GET /api/schemas/{id}` answers `{id, schema_type,
//! schema, references}` for the page to show the schema.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_client::{
    partition_for_key, Acks, Client, Compression, FetchedRecord, OffsetSpec, ProduceRecord,
    TimestampType,
};
use strom_types::{Offset, PartitionIndex, TimestampMs};

use super::topics::{existing_topic, offset_range};
use super::{body, connected, query, serving, ApiError, ApiResult};
use crate::state::AdminState;

/// Records one request returns by default, and at most.
const LIMIT_DEFAULT: usize = 50;
pub const LIMIT_MAX: usize = 500;
/// Record bytes (keys, values, headers) one request reads, matched or not, before it stops.
pub const SCAN_BYTES_MAX: usize = 8 * 1024 * 1024;
/// What a record weighs beyond its payload, so that empty records count too.
const RECORD_OVERHEAD_BYTES: usize = 64;
/// Bytes one Fetch asks for.
const FETCH_BYTES_MAX: i32 = 1024 * 1024;
/// Bytes of a key, value or header value an answer carries; the rest is cut off.
pub const VALUE_SHOWN_BYTES_MAX: usize = 256 * 1024;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/schemas/{id}", get(schema))
        .route("/topics/{name}/messages", get(browse).post(produce))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Browse {
    partition: Option<i32>,
    start: Option<String>,
    offset: Option<i64>,
    timestamp_ms: Option<i64>,
    limit: Option<usize>,
    key: Option<String>,
    value: Option<String>,
    header: Option<String>,
}

/// The substrings a record must contain (empty ones are left out).
struct Filters {
    key: Option<String>,
    value: Option<String>,
    header: Option<String>,
}

impl Filters {
    fn matches(&self, record: &FetchedRecord) -> bool {
        let contains = |bytes: Option<&Bytes>, wanted: &str| {
            bytes.is_some_and(|bytes| String::from_utf8_lossy(bytes).contains(wanted))
        };
        let key = (self.key.as_deref()).is_none_or(|wanted| contains(record.key.as_ref(), wanted));
        let value =
            (self.value.as_deref()).is_none_or(|wanted| contains(record.value.as_ref(), wanted));
        let header = self.header.as_deref().is_none_or(|wanted| {
            (record.headers.iter())
                .any(|(name, value)| name.contains(wanted) || contains(value.as_ref(), wanted))
        });
        key && value && header
    }
}

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Limit,
    End,
    ScanBytesMax,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Limit => "limit",
            Stop::End => "end",
            Stop::ScanBytesMax => "scan_bytes_max",
        }
    }
}

/// A registered schema, for the browser to show beside a decoded record.
async fn schema(State(state): State<AdminState>, Path(id): Path<i32>) -> ApiResult {
    let topic = crate::registry_store::opened(state.schemas(), serving(&state)?)
        .await
        .map_err(|e| ApiError::new(e.status, e.message))?;
    topic
        .catch_up()
        .await
        .map_err(|e| ApiError::new(e.status, e.message))?;
    let store = topic.read();
    let schema = store
        .schema(id)
        .ok_or_else(|| ApiError::not_found(format!("no schema has id {id}")))?;
    Ok(Json(json!({
        "id": id,
        "schema_type": schema.schema_type.name(),
        "schema": schema.schema,
        "references": schema.references,
    })))
}

async fn browse(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    browse: Result<Query<Browse>, QueryRejection>,
) -> ApiResult {
    let browse = query(browse)?;
    let limit = browse.limit.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {LIMIT_MAX}, not {limit}"
        )));
    }
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let partition = existing_partition(client, &name, browse.partition).await?;
    let (log_start, high_watermark) = offset_range(client, &name, partition).await?;
    let start = start_offset(
        client,
        &name,
        partition,
        &browse,
        limit,
        (log_start, high_watermark),
    )
    .await?;
    let non_empty = |text: &Option<String>| text.clone().filter(|text| !text.is_empty());
    let filters = Filters {
        key: non_empty(&browse.key),
        value: non_empty(&browse.value),
        header: non_empty(&browse.header),
    };
    // Records written by Confluent's serializers are shown decoded too, when the registry
    // opens (it may not: a node without its listener still has `_schemas` to read).
    let schemas = crate::registry_store::opened(state.schemas(), serving(&state)?).await;
    let mut decoder = match schemas {
        Ok(topic) => {
            let _ = topic.catch_up().await;
            Some(crate::registry_store::Decoder::new(topic))
        }
        Err(_) => None,
    };
    let scan = scan(
        client,
        &name,
        partition,
        start,
        limit,
        &filters,
        &mut decoder,
    )
    .await?;
    Ok(Json(json!({
        "topic": name,
        "partition": partition.0,
        "start_offset": start.0,
        "next_offset": scan.next_offset.0,
        "log_start_offset": log_start,
        "high_watermark": scan.high_watermark.max(high_watermark),
        "scanned_records": scan.records,
        "scanned_bytes": scan.bytes,
        "stopped": scan.stop.name(),
        "messages": scan.messages,
    })))
}

/// The partition asked for (0 when none is), or a 404 naming the partitions there are.
async fn existing_partition(
    client: &Client,
    topic: &str,
    partition: Option<i32>,
) -> Result<PartitionIndex, ApiError> {
    let metadata = existing_topic(client, topic).await?;
    let partition = PartitionIndex(partition.unwrap_or(0));
    if metadata.partition(partition).is_none() {
        let count = metadata.partitions.len();
        return Err(ApiError::not_found(format!(
            "topic '{topic}' has no partition {partition}: it has partitions 0 to {}",
            count.saturating_sub(1)
        )));
    }
    Ok(partition)
}

/// Where the read starts, within the log start and the high watermark.
async fn start_offset(
    client: &Client,
    topic: &str,
    partition: PartitionIndex,
    browse: &Browse,
    limit: usize,
    (log_start, high_watermark): (i64, i64),
) -> Result<Offset, ApiError> {
    let start = match browse.start.as_deref().unwrap_or("earliest") {
        "earliest" => log_start,
        "newest" => high_watermark.saturating_sub(limit as i64),
        "offset" => browse.offset.ok_or_else(|| {
            ApiError::bad_request("start=offset needs offset=O, the first offset to read")
        })?,
        "timestamp" => {
            let timestamp = browse.timestamp_ms.ok_or_else(|| {
                ApiError::bad_request(
                    "start=timestamp needs timestamp_ms=T, milliseconds since the epoch",
                )
            })?;
            let spec = OffsetSpec::Timestamp(TimestampMs(timestamp));
            let found = client.list_offsets(topic, partition, spec).await?;
            // Kafka answers -1 when no record is that recent: start at the end.
            if found.0 < 0 {
                high_watermark
            } else {
                found.0
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "start must be earliest, offset, timestamp or newest, not '{other}'"
            )))
        }
    };
    Ok(Offset(
        start.clamp(log_start, high_watermark.max(log_start)),
    ))
}

/// What one bounded read found.
struct Scan {
    messages: Vec<Value>,
    next_offset: Offset,
    high_watermark: i64,
    records: u64,
    bytes: usize,
    stop: Stop,
}

/// Reads from `start` until `limit` records matched, the high watermark, or
/// [`SCAN_BYTES_MAX`] read.
async fn scan(
    client: &Client,
    topic: &str,
    partition: PartitionIndex,
    start: Offset,
    limit: usize,
    filters: &Filters,
    decoder: &mut Option<crate::registry_store::Decoder>,
) -> Result<Scan, ApiError> {
    let mut scan = Scan {
        messages: Vec::new(),
        next_offset: start,
        high_watermark: start.0,
        records: 0,
        bytes: 0,
        stop: Stop::End,
    };
    let mut first = true;
    loop {
        if scan.messages.len() >= limit {
            scan.stop = Stop::Limit;
            break;
        }
        if scan.bytes >= SCAN_BYTES_MAX {
            scan.stop = Stop::ScanBytesMax;
            break;
        }
        if !first && scan.next_offset.0 >= scan.high_watermark {
            scan.stop = Stop::End;
            break;
        }
        first = false;
        let budget = (SCAN_BYTES_MAX - scan.bytes).min(FETCH_BYTES_MAX as usize) as i32;
        let fetched = client
            .fetch(topic, partition, scan.next_offset, 0, 0, budget)
            .await?;
        scan.high_watermark = fetched.high_watermark.0;
        let before = scan.next_offset;
        for record in fetched.records.iter().filter(|r| r.offset >= before) {
            scan.records += 1;
            scan.bytes += weight(record);
            scan.next_offset = Offset(record.offset.0 + 1);
            if filters.matches(record) {
                scan.messages.push(record_json(partition, record, decoder));
                if scan.messages.len() >= limit {
                    break;
                }
            }
        }
        if scan.messages.len() < limit {
            // Past what the fetch returned, control records included.
            scan.next_offset = Offset(scan.next_offset.0.max(fetched.next_offset.0));
        }
        if scan.next_offset == before {
            // Nothing more to read now (the high watermark, or nothing returned).
            scan.stop = Stop::End;
            break;
        }
    }
    Ok(scan)
}

fn weight(record: &FetchedRecord) -> usize {
    let header_bytes: usize = (record.headers.iter())
        .map(|(name, value)| name.len() + value.as_ref().map_or(0, Bytes::len))
        .sum();
    RECORD_OVERHEAD_BYTES
        + record.key.as_ref().map_or(0, Bytes::len)
        + record.value.as_ref().map_or(0, Bytes::len)
        + header_bytes
}

fn record_json(
    partition: PartitionIndex,
    record: &FetchedRecord,
    decoder: &mut Option<crate::registry_store::Decoder>,
) -> Value {
    let mut shown = |bytes: Option<&Bytes>| {
        let mut json = bytes_json(bytes);
        let decoded = (bytes.zip(decoder.as_mut())).and_then(|(b, d)| d.decode(b));
        if let (Some(Value::Object(decoded)), Value::Object(fields)) = (decoded, &mut json) {
            fields.extend(decoded);
        }
        json
    };
    let (key, value) = (shown(record.key.as_ref()), shown(record.value.as_ref()));
    let headers: Vec<Value> = (record.headers.iter())
        .map(|(name, value)| json!({ "key": name, "value": bytes_json(value.as_ref()) }))
        .collect();
    let timestamp_type = match record.timestamp_type {
        TimestampType::Creation => "CreateTime",
        TimestampType::LogAppend => "LogAppendTime",
    };
    json!({
        "partition": partition.0,
        "offset": record.offset.0,
        "timestamp_ms": record.timestamp.0,
        "timestamp_type": timestamp_type,
        "key": key,
        "value": value,
        "headers": headers,
    })
}

/// Bytes as the page shows them: UTF-8 text when they are, base64 always, cut at
/// [`VALUE_SHOWN_BYTES_MAX`].
fn bytes_json(bytes: Option<&Bytes>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    let shown = &bytes[..bytes.len().min(VALUE_SHOWN_BYTES_MAX)];
    // A cut may split a character: the text is what decodes of the part shown.
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        Err(error) if shown.len() < bytes.len() && error.error_len().is_none() => {
            std::str::from_utf8(&shown[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    json!({
        "text": text,
        "base64": BASE64.encode(shown),
        "size": bytes.len(),
        "truncated": shown.len() < bytes.len(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Vec<NewHeader>,
    partition: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHeader {
    key: String,
    value: Option<String>,
}

/// Spreads keyless records over the partitions when no partition is asked for.
static NEXT_PARTITION: AtomicU32 = AtomicU32::new(0);

async fn produce(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    message: Result<Json<NewMessage>, JsonRejection>,
) -> ApiResult {
    let message = body(message)?;
    let mut headers: Vec<(String, Option<Bytes>)> = Vec::with_capacity(message.headers.len());
    for header in message.headers {
        if header.key.is_empty() {
            return Err(ApiError::bad_request("a header needs a name"));
        }
        if headers.iter().any(|(name, _)| *name == header.key) {
            return Err(ApiError::bad_request(format!(
                "header '{}' is given twice; a record keeps one value per header name here",
                header.key
            )));
        }
        headers.push((header.key, header.value.map(Bytes::from)));
    }
    let (_, client) = connected(&state).await?;
    let client = &*client;
    let topic = existing_topic(client, &name).await?;
    let count = topic.partitions.len() as i32;
    let partition = match (message.partition, &message.key) {
        (Some(partition), _) if (0..count).contains(&partition) => PartitionIndex(partition),
        (Some(partition), _) => {
            return Err(ApiError::not_found(format!(
                "topic '{name}' has no partition {partition}: it has partitions 0 to {}",
                count - 1
            )))
        }
        (None, Some(key)) => partition_for_key(key.as_bytes(), count),
        (None, None) => {
            PartitionIndex((NEXT_PARTITION.fetch_add(1, Ordering::Relaxed) % count as u32) as i32)
        }
    };
    let record = ProduceRecord {
        key: message.key.map(Bytes::from),
        value: message.value.map(Bytes::from),
        headers,
        timestamp: None,
    };
    let offset = client
        .produce(&name, partition, &[record], Acks::All, Compression::None)
        .await?
        .expect("acks=all produces are answered");
    Ok(Json(
        json!({ "partition": partition.0, "offset": offset.0 }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8], headers: &[(&str, &str)]) -> FetchedRecord {
        FetchedRecord {
            offset: Offset(0),
            timestamp: TimestampMs(0),
            timestamp_type: TimestampType::Creation,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value)),
            headers: (headers.iter())
                .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
                .collect(),
        }
    }

    #[test]
    fn filters_match_substrings_of_key_value_and_headers() {
        let found = record("order-17", b"{\"total\": 3}", &[("trace", "abc-123")]);
        let filter = |key: Option<&str>, value: Option<&str>, header: Option<&str>| Filters {
            key: key.map(String::from),
            value: value.map(String::from),
            header: header.map(String::from),
        };
        assert!(filter(None, None, None).matches(&found));
        assert!(filter(Some("der-1"), Some("total"), Some("abc")).matches(&found));
        assert!(filter(None, None, Some("trac")).matches(&found));
        assert!(!filter(Some("order-18"), None, None).matches(&found));
        assert!(!filter(None, None, Some("xyz")).matches(&found));
    }

    #[test]
    fn bytes_show_as_text_only_when_utf8_and_are_cut() {
        let binary = bytes_json(Some(&Bytes::from_static(&[0xff, 0x00])));
        assert_eq!(binary["text"], Value::Null);
        assert_eq!(binary["base64"], "/wA=");
        let text = bytes_json(Some(&Bytes::from_static("héllo".as_bytes())));
        assert_eq!(text["text"], "héllo");
        assert_eq!(text["truncated"], false);
        let long = Bytes::from("é".repeat(VALUE_SHOWN_BYTES_MAX));
        let cut = bytes_json(Some(&long));
        assert_eq!(cut["truncated"], true);
        assert_eq!(cut["size"], 2 * VALUE_SHOWN_BYTES_MAX);
        assert_eq!(
            cut["text"].as_str().map(str::len),
            Some(VALUE_SHOWN_BYTES_MAX)
        );
        assert_eq!(bytes_json(None), Value::Null);
    }
}
