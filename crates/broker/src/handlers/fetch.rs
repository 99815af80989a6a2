//! Fetch: serve segment bytes as they are on disk, up to the high watermark, honouring
//! `max_bytes` per partition and per response; long-poll until `min_bytes` are there or
//! `max_wait_ms` passes, woken by every append rather than waiting out the timeout.
//!
//! Incremental fetch sessions (KIP-227) are not offered: every response carries session id 0,
//! which tells clients to keep sending full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use strom_log::LogError;
use strom_types::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use strom_types::{ErrorCode, Offset};

use super::Reply;
use crate::replication::{self, FollowerFetch};
use crate::topics::{led_partition, Partition};
use crate::Broker;

/// `isolation_level` READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

pub fn handle(broker: &Arc<Broker>, request: FetchRequest, _version: i16) -> Reply {
    if request.session_id != 0 {
        let response = FetchResponse::default()
            .with_error_code(ErrorCode::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Reply::Now(ResponseKind::Fetch(response));
    }
    // Subscribe before the first read, so an append between the read and the wait still wakes us.
    let mut appends = broker.watch_appends();
    let (response, bytes, failed) = read(broker, &request);
    let wait_ms = request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX as i32) as u64;
    if failed || bytes >= request.min_bytes.max(0) as usize || wait_ms == 0 {
        return Reply::Now(ResponseKind::Fetch(response));
    }
    let broker = broker.clone();
    let mut stopping = broker.watch_shutdown();
    Reply::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            if *stopping.borrow() {
                break;
            }
            tokio::select! {
                changed = appends.changed() => if changed.is_err() { break },
                _ = stopping.changed() => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
            let (response, bytes, failed) = read(&broker, &request);
            if failed || bytes >= request.min_bytes.max(0) as usize {
                return ResponseKind::Fetch(response);
            }
        }
        ResponseKind::Fetch(read(&broker, &request).0)
    }))
}

/// Reads every requested partition once. Returns the response, the record bytes in it, and
/// whether any partition failed (a failure answers at once, without waiting).
fn read(broker: &Arc<Broker>, request: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut budget = (request.max_bytes.max(0) as usize).min(FETCH_RESPONSE_BYTES_MAX);
    let mut total = 0;
    let mut failed = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in &request.topics {
        let topic = broker.topics.get(wanted.topic.as_str());
        let partitions = wanted
            .partitions
            .iter()
            .map(|fetch| {
                let data = read_partition(
                    broker,
                    request,
                    wanted.topic.as_str(),
                    topic.as_deref(),
                    fetch,
                    &mut budget,
                    total == 0,
                );
                total += data.records.as_ref().map_or(0, |records| records.len());
                failed |= data.error_code != ErrorCode::None.code();
                data
            })
            .collect();
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        failed,
    )
}

fn read_partition(
    broker: &Arc<Broker>,
    request: &FetchRequest,
    name: &str,
    topic: Option<&crate::topics::Topic>,
    fetch: &FetchPartition,
    budget: &mut usize,
    first_with_data: bool,
) -> PartitionData {
    // A follower's fetch names its broker id; a consumer's is -1.
    let replica = (request.replica_id.0 >= 0).then_some(request.replica_id.0);
    let isolation_level = request.isolation_level;
    let base = PartitionData::default()
        .with_partition_index(fetch.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions((isolation_level == READ_COMMITTED).then(Vec::new));
    let image = broker.quorum.image();
    let node = broker.config.node_id;
    let epoch = fetch.current_leader_epoch;
    let partition = match led_partition(&image, name, topic, fetch.partition, node, epoch) {
        Ok(partition) => partition,
        Err(code) => return base.with_error_code(code.code()),
    };
    if let Some(follower) = replica {
        if !partition.state.read().replicas.contains(&follower) {
            return base.with_error_code(ErrorCode::NotLeaderOrFollower.code());
        }
    }
    if let Some(follower) = replica {
        let fetch_offset = Offset(fetch.fetch_offset);
        let epoch = fetch.last_fetched_epoch;
        let now = std::time::Instant::now();
        match replication::on_follower_fetch(partition, node, follower, fetch_offset, epoch, now) {
            FollowerFetch::Diverging { epoch, end } => {
                let start = partition.log.lock().log_start_offset();
                return base
                    .with_high_watermark(partition.replication.high_watermark().0)
                    .with_log_start_offset(start.0)
                    .with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end.0),
                    )
                    .with_records(Some(Default::default()));
            }
            FollowerFetch::Serve {
                log_end,
                high_watermark_moved,
                rejoin,
            } => {
                if high_watermark_moved {
                    // Consumers waiting for the high watermark may now read more.
                    broker.notify_appended();
                }
                if let Some(isr) = rejoin {
                    replication::propose_isr(broker, partition, isr);
                }
                return read_records(partition, fetch, budget, first_with_data, log_end, true)
                    .with_aborted_transactions(base.aborted_transactions);
            }
            FollowerFetch::OutOfRange => {}
        }
    }
    read_records(
        partition,
        fetch,
        budget,
        first_with_data,
        partition.replication.high_watermark(),
        replica.is_some(),
    )
    .with_aborted_transactions(base.aborted_transactions)
}

/// Reads from the fetch offset up to `upper_bound`: the high watermark for consumers, the
/// log end for followers.
fn read_records(
    partition: &Arc<Partition>,
    fetch: &FetchPartition,
    budget: &mut usize,
    first_with_data: bool,
    upper_bound: Offset,
    for_follower: bool,
) -> PartitionData {
    let log = partition.log.lock();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let high_watermark = partition.replication.high_watermark().min(end);
    let upper_bound = upper_bound.min(end);
    let base = PartitionData::default()
        .with_partition_index(fetch.partition)
        .with_high_watermark(high_watermark.0)
        .with_last_stable_offset(high_watermark.0)
        .with_log_start_offset(start.0);
    if !for_follower
        && Offset(fetch.fetch_offset) > high_watermark
        && Offset(fetch.fetch_offset) <= end
    {
        // Above the high watermark but within the log: nothing to see yet, not out of range.
        return base.with_records(Some(Default::default()));
    }
    let max_bytes = (fetch.partition_max_bytes.max(0) as usize).min(*budget);
    match log.read(Offset(fetch.fetch_offset), max_bytes, upper_bound) {
        Ok(read) => {
            let records = read.records;
            // Only the first partition with data may exceed the budget (KIP-74); later ones wait.
            if !first_with_data && records.len() > *budget {
                return base.with_records(Some(Default::default()));
            }
            *budget = budget.saturating_sub(records.len());
            base.with_records(Some(records))
        }
        Err(LogError::OffsetOutOfRange { .. }) => {
            base.with_error_code(ErrorCode::OffsetOutOfRange.code())
        }
        Err(error) => {
            tracing::error!(topic = %partition.topic, partition = fetch.partition, %error, "fetch read failed");
            base.with_error_code(ErrorCode::KafkaStorageError.code())
        }
    }
}
