//! Group commit: acks=all produce requests wait here until their records are fsynced.
//!
//! One task owns the fsyncs. A produce request appends to the log (page cache), then calls
//! [`GroupCommit::wait_durable`] with the partition and the offset it needs on disk. The task
//! takes every waiting request at once, fsyncs each partition with pending writes exactly once
//! (on a blocking thread, with no log lock held), marks the logs durable and wakes all the
//! requests that the fsyncs covered. Requests that arrive during an fsync are served by the
//! next round, so one fsync covers everything that was waiting, however many requests or
//! connections that is.

use std::sync::Arc;

use strom_types::{ErrorCode, Offset};
use tokio::sync::{mpsc, oneshot};

use crate::topics::Partition;

struct SyncRequest {
    partition: Arc<Partition>,
    offset: Offset,
    done: oneshot::Sender<Result<(), ErrorCode>>,
}

/// The handle produce handlers use to wait for durability.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<SyncRequest>,
}

impl GroupCommit {
    /// Starts the fsync task on the current runtime.
    pub fn start() -> GroupCommit {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(receiver));
        GroupCommit { requests }
    }

    /// Resolves once every record of `partition` below `offset` is on disk, or with
    /// KAFKA_STORAGE_ERROR if the fsync failed.
    pub async fn wait_durable(
        &self,
        partition: Arc<Partition>,
        offset: Offset,
    ) -> Result<(), ErrorCode> {
        if partition.log.lock().durable_offset() >= offset {
            return Ok(());
        }
        let (done, result) = oneshot::channel();
        if self
            .requests
            .send(SyncRequest {
                partition,
                offset,
                done,
            })
            .is_err()
        {
            return Err(ErrorCode::KafkaStorageError);
        }
        result.await.unwrap_or(Err(ErrorCode::KafkaStorageError))
    }
}

async fn run(mut receiver: mpsc::UnboundedReceiver<SyncRequest>) {
    while let Some(first) = receiver.recv().await {
        let mut round = vec![first];
        while let Ok(more) = receiver.try_recv() {
            round.push(more);
        }
        sync_round(round).await;
    }
}

/// Fsyncs each partition named in `round` once and answers every request in it.
async fn sync_round(round: Vec<SyncRequest>) {
    let mut groups: Vec<(Arc<Partition>, Vec<SyncRequest>)> = Vec::new();
    for request in round {
        match groups
            .iter_mut()
            .find(|(partition, _)| Arc::ptr_eq(partition, &request.partition))
        {
            Some((_, requests)) => requests.push(request),
            None => groups.push((request.partition.clone(), vec![request])),
        }
    }
    let partitions: Vec<Arc<Partition>> = groups
        .iter()
        .map(|(partition, _)| partition.clone())
        .collect();
    let synced = tokio::task::spawn_blocking(move || {
        partitions
            .iter()
            .map(|partition| {
                let handle = partition.log.lock().sync_handle();
                let result = handle.sync();
                if let Ok(offset) = &result {
                    partition.log.lock().mark_durable(*offset);
                }
                result
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(synced) = synced else {
        tracing::error!("the fsync thread panicked");
        return;
    };
    for ((partition, requests), result) in groups.into_iter().zip(synced) {
        for request in requests {
            let answer = match &result {
                Ok(durable) if *durable >= request.offset => Ok(()),
                Ok(durable) => {
                    // Cannot happen: the fsync covered the log end, which the request's append
                    // had already reached. Refuse rather than acknowledge.
                    tracing::error!(topic = %partition.topic, partition = partition.index.0, durable = durable.0, needed = request.offset.0, "fsync did not cover an acknowledged append");
                    Err(ErrorCode::KafkaStorageError)
                }
                Err(error) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index.0, %error, "fsync failed");
                    Err(ErrorCode::KafkaStorageError)
                }
            };
            let _ = request.done.send(answer);
        }
    }
}
