//! Many logs under a small descriptor pool: every log stays writable, readable, syncable and
//! recoverable while the process never holds more segment files open than the pool allows, and
//! the aborted-transaction indexes (opened only to be written) hold none.

#[path = "../src/test_support.rs"]
mod test_support;

use std::path::Path;

use strom_log::{AbortedTxnEntry, FilePool, Log, LogConfig, Recovery};
use strom_protocol::batch::Batches;
use strom_types::Offset;
use test_support::{batch, marker};

const LOGS: usize = 120;
const POOL: usize = 8;

fn config() -> LogConfig {
    LogConfig {
        // Small segments, so each log rolls and has sealed segments too.
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Descriptors this process holds on files under `dir`, directories included; none may be on a
/// `.txnindex`.
fn descriptors_under(dir: &Path) -> usize {
    let targets: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.unwrap().path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect();
    assert!(
        !targets
            .iter()
            .any(|target| target.extension().is_some_and(|e| e == "txnindex")),
        "{targets:?}"
    );
    targets.len()
}

fn batches_of(log: &Log) -> Vec<Vec<u8>> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    Batches::new(&read.records)
        .map(|(_, range)| read.records[range].to_vec())
        .collect()
}

#[test]
fn a_hundred_logs_share_eight_descriptors() {
    let root = tempfile::tempdir().unwrap();
    let pool = FilePool::new(POOL);
    let dir = |n: usize| root.path().join(format!("t-{n}"));
    let mut logs: Vec<Log> = (0..LOGS)
        .map(|n| Log::open_in(&dir(n), config(), &pool, Recovery::Crash).unwrap())
        .collect();
    assert!(descriptors_under(root.path()) <= POOL);

    // Round robin, so every append finds its file closed by the others. Every fourth round
    // ends with an aborted transaction, indexed.
    let mut stored = vec![Vec::new(); LOGS];
    for round in 0..12 {
        for (n, log) in logs.iter_mut().enumerate() {
            let mut bytes = batch(0, 2, 1_000 + round, 100);
            let first = log.append(&mut bytes, None).unwrap().base_offset;
            stored[n].push(bytes);
            if round % 4 == 3 {
                let mut bytes = marker(n as i64, 0, true, 1_000 + round);
                let last_offset = log.append(&mut bytes, None).unwrap().base_offset;
                stored[n].push(bytes);
                let entry = AbortedTxnEntry {
                    producer_id: n as i64,
                    first_offset: first,
                    last_offset,
                    last_stable_offset: last_offset.plus(1),
                };
                log.index_aborted_txn(entry).unwrap();
            }
            assert!(descriptors_under(root.path()) <= POOL);
        }
    }
    for (n, log) in logs.iter_mut().enumerate() {
        assert!(log.segment_count() > 1, "log {n} rolled");
        let handle = log.sync_handle();
        let durable = handle.sync().unwrap();
        log.mark_durable(durable);
        assert_eq!(log.durable_offset(), Offset(27));
        assert_eq!(batches_of(log), stored[n]);
        assert_eq!(log.aborted_txns(Offset(0), Offset(27)).unwrap().len(), 3);
    }
    assert!(descriptors_under(root.path()) <= POOL);
    let stats = pool.stats();
    assert!(stats.open <= POOL);
    assert!(
        stats.closes > 0,
        "files were closed to make room: {stats:?}"
    );

    // Half closed cleanly, half dropped as if killed: all recover, still within the pool.
    for (n, log) in logs.drain(..).enumerate() {
        if n % 2 == 0 {
            log.close().unwrap();
        }
    }
    assert_eq!(descriptors_under(root.path()), 0);
    for (n, expected) in stored.iter().enumerate() {
        let log = Log::open_in(&dir(n), config(), &pool, Recovery::Crash).unwrap();
        assert_eq!(&batches_of(&log), expected, "log {n} after reopening");
        assert_eq!(log.aborted_txns(Offset(0), Offset(27)).unwrap().len(), 3);
        assert!(descriptors_under(root.path()) <= POOL);
    }
}
