//! The log cleaner: compacts the partitions of topics with `cleanup.policy` containing
//! `compact`, every `log.cleaner.backoff.ms`, when Kafka's rule says they need it (dirty ratio
//! above `min.cleanable.dirty.ratio`, or a dirty record older than `max.compaction.lag.ms`).
//!
//! A pass holds the partition's log lock for its whole duration (see `strom_log` compaction),
//! so it runs on a blocking thread, one partition at a time.

use std::sync::Arc;
use std::time::Instant;

use strom_types::TimestampMs;

use crate::Broker;

pub async fn run(broker: Arc<Broker>) {
    let mut since = Instant::now();
    loop {
        if !broker
            .wait_period(since, |config| config.cleaner_backoff_ms)
            .await
        {
            return;
        }
        since = Instant::now();
        let cleaning = broker.clone();
        if tokio::task::spawn_blocking(move || clean(&cleaning))
            .await
            .is_err()
        {
            tracing::error!("log cleaner panicked");
        }
    }
}

fn clean(broker: &Broker) {
    for topic in broker.topics.all() {
        if !topic.config.cleanup.compact {
            continue;
        }
        for partition in &topic.partitions {
            match partition.compact(TimestampMs::now(), &topic.config.compaction) {
                Ok(Some(info)) if info.segments_cleaned > 0 => tracing::info!(
                    topic = %topic.name,
                    partition = %partition.index(),
                    segments = info.segments_cleaned,
                    records_removed = info.records_removed,
                    bytes_before = info.bytes_before,
                    bytes_after = info.bytes_after,
                    "compacted"
                ),
                Ok(_) => {}
                Err(error) if error.is_fatal() => {
                    tracing::error!(topic = %topic.name, partition = %partition.index(), %error, "compaction failed")
                }
                Err(error) => {
                    tracing::warn!(topic = %topic.name, partition = %partition.index(), %error, "partition left uncompacted")
                }
            }
        }
    }
}
