//! The background task that deletes log segments past `retention.ms` / `retention.bytes`,
//! every `log.retention.check.interval.ms` (as it is now: AlterConfigs can change it).

use std::sync::Arc;
use std::time::Instant;

use strom_types::TimestampMs;

use crate::Broker;

pub async fn run(broker: Arc<Broker>) {
    let mut since = Instant::now();
    loop {
        if !broker
            .wait_period(since, |config| config.retention_check_interval_ms)
            .await
        {
            return;
        }
        since = Instant::now();
        let sweeping = broker.clone();
        if tokio::task::spawn_blocking(move || sweep(&sweeping))
            .await
            .is_err()
        {
            tracing::error!("retention sweep panicked");
        }
    }
}

fn sweep(broker: &Broker) {
    let now = TimestampMs::now();
    for topic in broker.topics.all() {
        // Compact-only topics keep every key's latest record whatever its age or size.
        if !topic.config.cleanup.delete {
            continue;
        }
        for partition in &topic.partitions {
            match partition.apply_retention(now) {
                Ok(info) if info.segments_deleted > 0 => tracing::info!(
                    topic = %topic.name,
                    partition = %partition.index(),
                    segments = info.segments_deleted,
                    bytes = info.bytes_deleted,
                    log_start_offset = info.log_start_offset.0,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(topic = %topic.name, partition = %partition.index(), %error, "retention failed")
                }
            }
        }
    }
}
