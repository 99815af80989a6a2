//! Property test of the leader epoch cache: random leader, plain and follower appends (with
//! gaps), truncations, retention, reopens with and without the checkpoint, and torn tails. After
//! every step the cache must agree with the batches the log serves and with its checkpoint file.

#[path = "../src/test_support.rs"]
mod test_support;

use std::path::Path;

use proptest::prelude::*;
use strom_log::{Log, LogConfig};
use strom_protocol::batch::{BatchHeader, Batches};
use strom_types::{Offset, TimestampMs};
use test_support::{batch, batch_with_epoch};

#[derive(Debug, Clone)]
enum Op {
    /// A leader append of `records`, the epoch raised by `bump`, or a plain append.
    Leader {
        records: usize,
        bump: i32,
        plain: bool,
    },
    /// A follower append of batches: (gap before it, records, epoch bump or none).
    Follower {
        batches: Vec<(i64, usize, Option<i32>)>,
    },
    /// Truncate at a point `at` per mille of the way from log start to a bit past the end.
    Truncate {
        at: u16,
    },
    Retain {
        retention_bytes: i64,
    },
    Reopen {
        lose_checkpoint: bool,
    },
    /// Kill the log, cut `bytes` off the active segment's file, reopen.
    Tear {
        bytes: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, 0i32..2, prop::bool::weighted(0.2))
            .prop_map(|(records, bump, plain)| Op::Leader { records, bump, plain }),
        6 => prop::collection::vec((0i64..4, 1usize..4, prop::option::weighted(0.8, 0i32..2)), 1..5)
            .prop_map(|batches| Op::Follower { batches }),
        1 => (0u16..1100).prop_map(|at| Op::Truncate { at }),
        1 => (0i64..3000).prop_map(|retention_bytes| Op::Retain { retention_bytes }),
        1 => any::<bool>().prop_map(|lose_checkpoint| Op::Reopen { lose_checkpoint }),
        1 => (1u64..200).prop_map(|bytes| Op::Tear { bytes }),
    ]
}

fn apply(log: &mut Log, dir: &Path, config: &LogConfig, op: &Op) {
    let next_epoch = |log: &Log, bump: i32| log.latest_epoch().unwrap_or(0) + bump;
    match op {
        Op::Leader {
            records,
            bump,
            plain,
        } => {
            let mut bytes = batch(0, *records, 1_000, 20);
            match plain {
                true => log.append(&mut bytes, None).map(drop).unwrap(),
                false => {
                    let epoch = next_epoch(log, *bump);
                    log.append_with_epoch(&mut bytes, None, epoch)
                        .map(drop)
                        .unwrap()
                }
            }
        }
        Op::Follower { batches } => {
            let mut next_offset = log.log_end_offset().0;
            let mut epoch = log.latest_epoch().unwrap_or(0);
            let mut bytes = Vec::new();
            for &(gap, records, bump) in batches {
                let base = next_offset + gap;
                let stamped = match bump {
                    Some(bump) => {
                        epoch += bump;
                        epoch
                    }
                    None => -1,
                };
                bytes.extend(batch_with_epoch(base, records, 1_000, 20, stamped));
                next_offset = base + records as i64;
            }
            log.append_as_follower(&mut bytes).unwrap();
        }
        Op::Truncate { at } => {
            let start = log.log_start_offset().0;
            let span = log.log_end_offset().0 - start + 3;
            log.truncate_to(Offset(start + span * i64::from(*at) / 1000))
                .unwrap();
        }
        Op::Retain { retention_bytes } => {
            log.set_config(LogConfig {
                retention_bytes: *retention_bytes,
                ..config.clone()
            });
            log.apply_retention(TimestampMs(0)).unwrap();
            log.set_config(config.clone());
        }
        Op::Reopen { lose_checkpoint } => {
            reopen(log, dir, config, |_| {
                if *lose_checkpoint {
                    // Missing already when the log never had an epoch.
                    let _ = std::fs::remove_file(dir.join("leader-epoch-checkpoint"));
                }
            });
        }
        Op::Tear { bytes } => {
            let active = dir.join(format!("{:020}.log", log.active_segment_base_offset().0));
            reopen(log, dir, config, |_| {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&active)
                    .unwrap();
                let length = file.metadata().unwrap().len();
                file.set_len(length.saturating_sub(*bytes)).unwrap();
            });
        }
    }
}

/// Drops the log (as if killed), runs `damage` on the directory, and opens it again.
fn reopen(log: &mut Log, dir: &Path, config: &LogConfig, damage: impl FnOnce(&Path)) {
    let placeholder = tempfile::tempdir().unwrap();
    let old = std::mem::replace(log, Log::open(placeholder.path(), config.clone()).unwrap());
    drop(old);
    damage(dir);
    *log = Log::open(dir, config.clone()).unwrap();
}

fn stored_headers(log: &Log) -> Vec<BatchHeader> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    Batches::new(&read.records)
        .map(|(header, _)| header)
        .collect()
}

/// The cache agrees with the batches and the checkpoint; see the module docs.
fn check(log: &Log, dir: &Path) -> Result<(), TestCaseError> {
    let entries = log.epoch_entries();
    for pair in entries.windows(2) {
        prop_assert!(
            pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1,
            "{entries:?}"
        );
    }
    for &(epoch, start) in entries {
        prop_assert!(
            start >= log.log_start_offset() && start < log.log_end_offset(),
            "{entries:?}"
        );
        prop_assert!(epoch >= 0);
    }
    let headers = stored_headers(log);
    for header in headers.iter().filter(|h| h.partition_leader_epoch >= 0) {
        let governing = entries
            .iter()
            .rev()
            .find(|&&(_, start)| start <= header.base_offset);
        prop_assert_eq!(
            governing.map(|&(epoch, _)| epoch),
            Some(header.partition_leader_epoch),
            "batch at {} against {:?}",
            header.base_offset,
            entries
        );
    }
    for &(epoch, start) in entries {
        let starts_a_batch = headers
            .iter()
            .any(|h| h.base_offset == start && h.partition_leader_epoch == epoch);
        prop_assert!(
            starts_a_batch || start == log.log_start_offset(),
            "entry ({epoch}, {start}) starts no batch of its epoch"
        );
    }
    let mut text = format!("0\n{}\n", entries.len());
    for (epoch, start) in entries {
        text.push_str(&format!("{epoch} {start}\n"));
    }
    // A log that never had an epoch need not have written a checkpoint.
    let stored = std::fs::read_to_string(dir.join("leader-epoch-checkpoint"))
        .unwrap_or_else(|_| "0\n0\n".to_owned());
    prop_assert_eq!(stored, text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_epoch_cache_agrees_with_the_batches(
        ops in prop::collection::vec(op(), 1..50),
        segment_bytes in 300u64..2_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, retention_ms: -1, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        for op in &ops {
            apply(&mut log, dir.path(), &config, op);
            check(&log, dir.path())?;
        }
        let entries = log.epoch_entries().to_vec();
        let end = log.log_end_offset();
        reopen(&mut log, dir.path(), &config, |_| {});
        prop_assert_eq!(log.epoch_entries(), entries.as_slice(), "a clean reopen changes nothing");
        prop_assert_eq!(log.log_end_offset(), end);
    }
}
