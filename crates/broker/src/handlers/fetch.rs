//! Fetch: serve segment bytes as they are on disk, up to the high watermark (consumers) or the
//! log end (followers), honouring `max_bytes` per partition and per response; long-poll until
//! `min_bytes` are there or `max_wait_ms` passes. A waiting fetch is registered with the
//! partitions it reads (Kafka's DelayedFetch in a purgatory keyed by partition): an append or
//! a high-watermark move wakes only the fetches of that partition. A follower's replica that
//! the leader's replication throttle holds back (`replication_quota`) is answered without
//! records while the throttled bytes sent are over the rate.
//!
//! Incremental fetch sessions (KIP-227) are not offered: every response carries session id 0,
//! which tells clients to keep sending full fetch requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use strom_partition::{
    FollowerPosition, FollowerRead, Partition, PartitionError, PartitionRead, ReadBound, WaitFor,
    Waiter,
};
use strom_types::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use strom_types::{BrokerId, ErrorCode, Offset, PartitionIndex};

use super::Reply;
use crate::telemetry::{self, TopicTraffic};
use crate::topics::{led_partition, requested_epoch};
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
    // Registered with each partition before its first read, so an append between the read and
    // the wait still wakes it.
    let waiter = Waiter::new();
    let (response, bytes, failed, traffic) = read(broker, &request, Some(&waiter));
    let wait_ms = request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX as i32) as u64;
    let enough = |bytes: usize| bytes >= request.min_bytes.max(0) as usize;
    if failed || enough(bytes) || wait_ms == 0 {
        return Reply::Now(sent(&request, response, &traffic));
    }
    let broker = broker.clone();
    let mut stopping = broker.watch_shutdown();
    // A consumer's fetch that nothing woke answers with what it read first: anything a
    // consumer sees (the high watermark, leadership) wakes it. A follower's is read again, for
    // the high watermark its followers' fetches moved meanwhile.
    let reuse_first = request.replica_id.0 < 0;
    let mut unchanged = Some((response, traffic));
    Reply::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            if *stopping.borrow() {
                break;
            }
            tokio::select! {
                () = waiter.woken() => {}
                _ = stopping.changed() => break,
                () = tokio::time::sleep_until(deadline) => break,
            }
            unchanged = None;
            let (response, bytes, failed, traffic) = read(&broker, &request, None);
            if failed || bytes >= request.min_bytes.max(0) as usize {
                return sent(&request, response, &traffic);
            }
        }
        let (response, traffic) = match unchanged.filter(|_| reuse_first) {
            Some(first) => first,
            None => {
                let (response, _, _, traffic) = read(&broker, &request, None);
                (response, traffic)
            }
        };
        sent(&request, response, &traffic)
    }))
}

/// Each requested topic's traffic counters (None for a topic not hosted here), in the
/// request's order, as the read found them: counting needs no second lookup.
type Traffic = Vec<Option<Arc<TopicTraffic>>>;

/// Counts the record bytes of the answer that is sent (a long poll's earlier reads are not):
/// per topic for a consumer, as replication traffic for a follower.
fn sent(request: &FetchRequest, response: FetchResponse, traffic: &Traffic) -> ResponseKind {
    let bytes_of = |topic: &FetchableTopicResponse| -> u64 {
        (topic.partitions.iter())
            .map(|partition| {
                partition
                    .records
                    .as_ref()
                    .map_or(0, |records| records.len() as u64)
            })
            .sum()
    };
    if request.replica_id.0 >= 0 {
        telemetry::replicated(response.responses.iter().map(bytes_of).sum());
    } else {
        for (topic, counters) in response.responses.iter().zip(traffic) {
            if let Some(counters) = counters {
                counters.consumed(bytes_of(topic));
            }
        }
    }
    ResponseKind::Fetch(response)
}

/// Reads every requested partition once, registering `waiter` with each when given. Returns
/// the response, the record bytes in it, whether any partition failed (a failure answers
/// at once, without waiting), and each topic's traffic counters.
fn read(
    broker: &Arc<Broker>,
    request: &FetchRequest,
    waiter: Option<&Waiter>,
) -> (FetchResponse, usize, bool, Traffic) {
    let mut budget = (request.max_bytes.max(0) as usize).min(FETCH_RESPONSE_BYTES_MAX);
    let mut total = 0;
    let mut failed = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut traffic = Vec::with_capacity(request.topics.len());
    let image = broker.quorum.image();
    let now = Instant::now();
    // A follower's fetch under a leader replication rate: the throttle may hold its replicas
    // back (`Some(exceeded)`); without a rate nothing is looked up or counted.
    let follower = (request.replica_id.0 >= 0).then_some(BrokerId(request.replica_id.0));
    let throttle = follower.and_then(|_| {
        let limit = (broker.effective_config().cluster).leader_replication_throttled_rate;
        broker.leader_throttle.exceeded(limit, now)
    });
    for wanted in &request.topics {
        let name = wanted.topic.as_str();
        let topic = broker.topics.get(name);
        traffic.push(topic.as_ref().map(|topic| topic.traffic.clone()));
        let partitions = wanted
            .partitions
            .iter()
            .map(|fetch| {
                let found = led_partition(
                    &image,
                    name,
                    topic.as_deref(),
                    PartitionIndex(fetch.partition),
                    requested_epoch(fetch.current_leader_epoch),
                );
                let data = match found {
                    Ok(partition) => {
                        let throttled = throttle.is_some()
                            && follower.is_some_and(|follower| {
                                let listed = (topic.as_deref()).is_some_and(|topic| {
                                    let node = broker.config.node_id;
                                    topic
                                        .config
                                        .leader_throttled
                                        .includes(fetch.partition, node)
                                });
                                listed && !partition.replica_state().isr.contains(&follower)
                            });
                        let place = Place {
                            budget: &mut budget,
                            first_with_data: total == 0,
                        };
                        let mut data = read_partition(request, partition, fetch, place, waiter);
                        let sent = data.records.as_ref().map_or(0, |records| records.len());
                        if throttled && throttle == Some(true) {
                            // Held back: the follower asks again once the rate allows.
                            data.records = Some(Default::default());
                            budget += sent;
                        } else if throttled {
                            broker.leader_throttle.record(sent, now);
                        }
                        data
                    }
                    Err(error) => empty(fetch.partition).with_error_code(error.code.code()),
                };
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
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics);
    (response, total, failed, traffic)
}

/// The response's byte budget, and whether no partition before this one returned data (only
/// the first partition with data may exceed the budget, as KIP-74 asks).
struct Place<'a> {
    budget: &'a mut usize,
    first_with_data: bool,
}

fn read_partition(
    request: &FetchRequest,
    partition: &Arc<Partition>,
    fetch: &FetchPartition,
    place: Place<'_>,
    waiter: Option<&Waiter>,
) -> PartitionData {
    // A follower's fetch names its broker id; a consumer's is -1.
    let follower = (request.replica_id.0 >= 0).then_some(BrokerId(request.replica_id.0));
    if let Some(waiter) = waiter {
        let what = if follower.is_some() {
            WaitFor::LogEnd
        } else {
            WaitFor::Visible
        };
        partition.wait_for(waiter, what);
    }
    let max_bytes = (fetch.partition_max_bytes.max(0) as usize).min(*place.budget);
    let offset = Offset(fetch.fetch_offset);
    match follower {
        Some(follower) => {
            let position = FollowerPosition {
                fetch_offset: offset,
                last_fetched_epoch: requested_epoch(fetch.last_fetched_epoch),
                log_start_offset: Offset(fetch.log_start_offset),
            };
            let read = partition.read_for_follower(follower, position, max_bytes, Instant::now());
            follower_data(fetch.partition, read, place)
        }
        None => {
            let bound = match request.isolation_level {
                READ_COMMITTED => ReadBound::LastStable,
                _ => ReadBound::HighWatermark,
            };
            let read = partition.read(offset, max_bytes, bound);
            records_data(fetch.partition, read, place)
        }
    }
}

fn follower_data(
    index: i32,
    read: Result<FollowerRead, PartitionError>,
    place: Place<'_>,
) -> PartitionData {
    match read {
        Ok(FollowerRead::Records(read)) => records_data(index, Ok(read), place),
        Ok(FollowerRead::Diverging {
            epoch,
            end_offset,
            high_watermark,
            log_start_offset,
        }) => empty(index)
            .with_high_watermark(high_watermark.0)
            .with_log_start_offset(log_start_offset.0)
            .with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch.0)
                    .with_end_offset(end_offset.0),
            )
            .with_records(Some(Default::default())),
        Ok(FollowerRead::OutOfRange {
            high_watermark,
            log_start_offset,
        }) => empty(index)
            .with_error_code(ErrorCode::OffsetOutOfRange.code())
            .with_high_watermark(high_watermark.0)
            .with_last_stable_offset(high_watermark.0)
            .with_log_start_offset(log_start_offset.0),
        Err(error) => failed(index, error),
    }
}

fn records_data(
    index: i32,
    read: Result<PartitionRead, PartitionError>,
    place: Place<'_>,
) -> PartitionData {
    let read = match read {
        Ok(read) => read,
        Err(error) => return failed(index, error),
    };
    let aborted = read.aborted.map(|aborted| {
        aborted
            .iter()
            .map(|txn| {
                AbortedTransaction::default()
                    .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id.0))
                    .with_first_offset(txn.first_offset.0)
            })
            .collect()
    });
    let base = empty(index)
        .with_high_watermark(read.high_watermark.0)
        .with_last_stable_offset(read.last_stable_offset.0)
        .with_log_start_offset(read.log_start_offset.0)
        .with_aborted_transactions(aborted);
    let records = read.records;
    if !place.first_with_data && records.len() > *place.budget {
        return base.with_records(Some(Default::default()));
    }
    *place.budget = place.budget.saturating_sub(records.len());
    base.with_records(Some(records))
}

fn failed(index: i32, error: PartitionError) -> PartitionData {
    if error.is_fatal() {
        tracing::error!(partition = index, %error, "fetch read failed");
    }
    empty(index).with_error_code(error.code().code())
}

/// A partition's answer with nothing known yet.
fn empty(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}
