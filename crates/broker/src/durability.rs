//! Group commit: acks=all produce requests wait here until their records are fsynced.
//!
//! One dedicated thread owns the fsyncs. A produce request appends to the log (page cache),
//! then calls [`GroupCommit::wait_durable`] with the partition and the offset it needs on disk.
//! The thread takes every waiting request at once, fsyncs each partition with pending writes
//! exactly once (with no log lock held), marks the logs durable and wakes all the requests that
//! the fsyncs covered. A plain thread rather than a task: an fsync blocks, and handing each
//! round to the runtime's blocking pool cost more than the fsync itself (measured with
//! `strom bench produce --acks all -r 1000`). Requests that arrive during an fsync are served by the
//! next round, so one fsync covers everything that was waiting, however many requests or
//! connections that is.

use std::sync::Arc;

use std::sync::mpsc;
use strom_types::{ErrorCode, Offset};
use tokio::sync::oneshot;

use crate::topics::Partition;

struct SyncRequest {
    partition: Arc<Partition>,
    offset: Offset,
    done: oneshot::Sender<Result<(), ErrorCode>>,
}

/// The handle produce handlers use to wait for durability.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<SyncRequest>,
}

impl GroupCommit {
    /// Starts the fsync thread; it ends when the last handle is dropped.
    pub fn start() -> GroupCommit {
        let (requests, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("strom-fsync".to_owned())
            .spawn(move || run(receiver))
            .expect("the fsync thread starts");
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

fn run(receiver: mpsc::Receiver<SyncRequest>) {
    while let Ok(first) = receiver.recv() {
        let mut round = vec![first];
        while let Ok(more) = receiver.try_recv() {
            round.push(more);
        }
        sync_round(round);
    }
}

/// Fsyncs each partition named in `round` once and answers every request in it.
fn sync_round(round: Vec<SyncRequest>) {
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
    let synced: Vec<_> = groups
        .iter()
        .map(|(partition, _)| {
            let handle = partition.log.lock().sync_handle();
            let result = handle.sync();
            if let Ok(offset) = &result {
                partition.log.lock().mark_durable(*offset);
            }
            result
        })
        .collect();
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
