//! Model-based test: random appends (with rolls forced by tiny segments), transactions (data,
//! COMMIT and ABORT markers, and ABORT markers whose index entry a crash lost), truncations,
//! reads, size retention, syncs, clean and unclean reopens and torn tails, checked against a
//! plain in-memory model of segments holding (offset range, bytes) batches, and of the aborted
//! transactions the log must list.

#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use strom_log::{AbortedTxnEntry, Log, LogConfig, LogError};
use strom_protocol::batch::{BatchHeader, Batches};
use strom_types::{Offset, TimestampMs};
use test_support::{batch, marker, transactional_batch, Producer};

#[derive(Debug, Clone)]
enum Op {
    /// One append of several batches: (record count, value bytes) each.
    Append {
        batches: Vec<(usize, usize)>,
        log_append_time: bool,
    },
    /// Truncate at a point chosen by `at` (per mille of the way from log start to a bit past the end).
    Truncate {
        at: u16,
    },
    Read {
        start: u16,
        max_bytes: usize,
        upper_bound: u16,
    },
    Retain {
        retention_bytes: i64,
    },
    Sync,
    Reopen {
        clean: bool,
    },
    /// Kill the log, cut `bytes` off the active segment's file, reopen.
    Tear {
        bytes: u64,
    },
    /// A transactional batch of `count` records from `producer`.
    TxnData {
        producer: i64,
        count: usize,
    },
    /// `producer`'s marker. An ABORT's entry may be `lost`: killed between the marker's write
    /// and its entry's, then reopened.
    TxnEnd {
        producer: i64,
        abort: bool,
        lost: bool,
    },
    /// The aborted transactions in a range, chosen as for reads.
    Aborted {
        from: u16,
        to: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec((1usize..6, 0usize..120), 1..4), any::<bool>())
            .prop_map(|(batches, log_append_time)| Op::Append { batches, log_append_time }),
        1 => (0u16..1100).prop_map(|at| Op::Truncate { at }),
        3 => (0u16..1100, 0usize..3000, 0u16..1100)
            .prop_map(|(start, max_bytes, upper_bound)| Op::Read { start, max_bytes, upper_bound }),
        1 => (0i64..8000).prop_map(|retention_bytes| Op::Retain { retention_bytes }),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (1u64..400).prop_map(|bytes| Op::Tear { bytes }),
        4 => (1i64..4, 1usize..4).prop_map(|(producer, count)| Op::TxnData { producer, count }),
        3 => (1i64..4, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(producer, abort, lost)| Op::TxnEnd { producer, abort, lost }),
        2 => (0u16..1100, 0u16..1100).prop_map(|(from, to)| Op::Aborted { from, to }),
    ]
}

#[derive(Debug, Clone)]
struct Stored {
    last: i64,
    bytes: Vec<u8>,
}

/// The expected log: segments (base offset, batches), the last one active, never empty.
struct Model {
    segments: Vec<(i64, Vec<Stored>)>,
    segment_bytes: u64,
}

impl Model {
    fn start(&self) -> i64 {
        self.segments[0].0
    }

    fn end(&self) -> i64 {
        let (base, batches) = self.segments.last().unwrap();
        batches.last().map_or(*base, |stored| stored.last + 1)
    }

    fn segment_size(batches: &[Stored]) -> u64 {
        batches.iter().map(|stored| stored.bytes.len() as u64).sum()
    }

    fn size(&self) -> u64 {
        self.segments
            .iter()
            .map(|(_, batches)| Model::segment_size(batches))
            .sum()
    }

    fn batches(&self) -> impl Iterator<Item = &Stored> {
        self.segments.iter().flat_map(|(_, batches)| batches)
    }

    fn append(&mut self, stored: Vec<Stored>) {
        let bytes: u64 = stored.iter().map(|stored| stored.bytes.len() as u64).sum();
        let active = &self.segments.last().unwrap().1;
        if !active.is_empty() && Model::segment_size(active) + bytes > self.segment_bytes {
            let end = self.end();
            self.segments.push((end, Vec::new()));
        }
        self.segments.last_mut().unwrap().1.extend(stored);
    }

    fn truncate(&mut self, offset: i64) {
        let keep = self
            .segments
            .iter()
            .rposition(|(base, _)| *base <= offset)
            .unwrap();
        self.segments.truncate(keep + 1);
        self.segments[keep].1.retain(|stored| stored.last < offset);
    }

    fn read(&self, start: i64, max_bytes: usize, upper_bound: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for stored in self.batches().filter(|stored| stored.last >= start) {
            let fits = out.is_empty() || out.len() + stored.bytes.len() <= max_bytes;
            if stored.last >= upper_bound || !fits {
                break;
            }
            out.extend_from_slice(&stored.bytes);
        }
        out
    }

    fn retain(&mut self, retention_bytes: u64) -> (usize, u64) {
        let mut size = self.size();
        let mut deleted = (0, 0);
        while self.segments.len() > 1
            && size - Model::segment_size(&self.segments[0].1) >= retention_bytes
        {
            let (_, batches) = self.segments.remove(0);
            size -= Model::segment_size(&batches);
            deleted = (deleted.0 + 1, deleted.1 + Model::segment_size(&batches));
        }
        deleted
    }

    /// Keeps the active segment's batches that lie wholly within its first `length` bytes.
    fn tear(&mut self, length: u64) {
        let active = &mut self.segments.last_mut().unwrap().1;
        let mut end = 0;
        active.retain(|stored| {
            end += stored.bytes.len() as u64;
            end <= length
        });
    }

    /// An offset `per_mille` of the way from the log start to 10% past the end.
    fn point(&self, per_mille: u16) -> i64 {
        let span = (self.end() - self.start()) * 11 / 10 + 1;
        self.start() + span * i64::from(per_mille) / 1000
    }
}

/// The transactions as a partition follows them, and the aborted ones the log must list:
/// (producer, first offset, marker offset).
#[derive(Default)]
struct Txns {
    /// Open transactions: producer -> first offset.
    open: BTreeMap<i64, i64>,
    aborted: Vec<(i64, i64, i64)>,
}

impl Txns {
    /// Forgets what the log no longer holds past its end, and replays the open transactions
    /// from the batches left (a partition rebuilds its producer state so).
    fn cut(&mut self, model: &Model) {
        let end = model.end();
        self.aborted.retain(|&(_, _, marker)| marker < end);
        self.open.clear();
        for stored in model.batches() {
            let header = BatchHeader::parse(&stored.bytes).unwrap();
            if header.is_control() {
                self.open.remove(&header.producer_id);
            } else if header.is_transactional() {
                self.open
                    .entry(header.producer_id)
                    .or_insert(header.base_offset.0);
            }
        }
    }

    /// Where recovery finds an aborted transaction's first offset when its entry was lost:
    /// the producer's first transactional batch after its previous marker, in the log.
    fn rebuilt_first(model: &Model, producer: i64, marker: i64) -> Option<i64> {
        let mut first = None;
        for stored in model.batches() {
            let header = BatchHeader::parse(&stored.bytes).unwrap();
            if header.base_offset.0 >= marker || header.producer_id != producer {
                continue;
            }
            match header.is_control() {
                true => first = None,
                false => first = first.or(Some(header.base_offset.0)),
            }
        }
        first
    }

    /// The aborted transactions with records in `from..to`.
    fn between(&self, from: i64, to: i64) -> Vec<(i64, i64, i64)> {
        self.aborted
            .iter()
            .filter(|&&(_, first, marker)| marker >= from && first < to && from < to)
            .copied()
            .collect()
    }
}

fn spans(entries: &[AbortedTxnEntry]) -> Vec<(i64, i64, i64)> {
    entries
        .iter()
        .map(|entry| (entry.producer_id, entry.first_offset.0, entry.last_offset.0))
        .collect()
}

fn check_aborted(log: &Log, model: &Model, txns: &Txns) -> Result<(), TestCaseError> {
    let listed = spans(
        &log.aborted_txns(Offset(model.start()), Offset(model.end()))
            .unwrap(),
    );
    prop_assert_eq!(listed, txns.between(model.start(), model.end()));
    Ok(())
}

fn split_batches(bytes: &[u8], base: i64) -> Vec<Stored> {
    let mut next = base;
    Batches::new(bytes)
        .map(|(header, range)| {
            assert_eq!(
                header.base_offset,
                Offset(next),
                "offsets are dense within an append"
            );
            next = header.next_offset().0;
            Stored {
                last: header.last_offset().0,
                bytes: bytes[range].to_vec(),
            }
        })
        .collect()
}

fn check_bounds(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), Offset(model.start()));
    prop_assert_eq!(log.log_end_offset(), Offset(model.end()));
    prop_assert_eq!(log.size_bytes(), model.size());
    prop_assert_eq!(log.segment_count(), model.segments.len());
    Ok(())
}

/// Appends `bytes` (one batch, fitting a segment) and returns its offset.
fn append_one(log: &mut Log, model: &mut Model, mut bytes: Vec<u8>) -> i64 {
    let info = log.append(&mut bytes, None).unwrap();
    assert_eq!(info.base_offset, Offset(model.end()));
    model.append(split_batches(&bytes, model.end()));
    info.base_offset.0
}

fn apply_txn(
    log: &mut Log,
    model: &mut Model,
    txns: &mut Txns,
    op: &Op,
    dir: &Path,
    config: &LogConfig,
) -> Result<(), TestCaseError> {
    match *op {
        Op::TxnData { producer, count } => {
            let records = vec![(Some("key"), Some("value")); count];
            let fields = Producer {
                id: producer,
                epoch: 0,
                base_sequence: 0,
            };
            let offset = append_one(log, model, transactional_batch(&records, 1_000, fields));
            txns.open.entry(producer).or_insert(offset);
        }
        Op::TxnEnd {
            producer,
            abort,
            lost,
        } => {
            let offset = append_one(log, model, marker(producer, 0, abort, 2_000));
            let first = txns.open.remove(&producer);
            match (abort, first, lost) {
                (true, Some(_), true) => {
                    reopen(log, dir, config, drop);
                    if let Some(first) = Txns::rebuilt_first(model, producer, offset) {
                        txns.aborted.push((producer, first, offset));
                    }
                }
                (true, Some(first), false) => {
                    let entry = AbortedTxnEntry {
                        producer_id: producer,
                        first_offset: Offset(first),
                        last_offset: Offset(offset),
                        last_stable_offset: Offset(
                            txns.open.values().min().copied().unwrap_or(offset + 1),
                        ),
                    };
                    log.index_aborted_txn(entry).unwrap();
                    txns.aborted.push((producer, first, offset));
                }
                _ => {}
            }
        }
        Op::Aborted { from, to } => {
            let (from, to) = (model.point(from), model.point(to));
            let listed = spans(&log.aborted_txns(Offset(from), Offset(to)).unwrap());
            prop_assert_eq!(listed, txns.between(from, to), "{}..{}", from, to);
        }
        _ => unreachable!("not a transaction op: {op:?}"),
    }
    Ok(())
}

fn apply(
    log: &mut Log,
    model: &mut Model,
    txns: &mut Txns,
    op: &Op,
    dir: &Path,
    config: &LogConfig,
    step: i64,
) -> Result<(), TestCaseError> {
    match op {
        Op::TxnData { .. } | Op::TxnEnd { .. } | Op::Aborted { .. } => {
            apply_txn(log, model, txns, op, dir, config)?;
        }
        Op::Append {
            batches,
            log_append_time,
        } => {
            let mut bytes: Vec<u8> = batches
                .iter()
                .flat_map(|&(count, value)| batch(7, count, 1_000 + step, value))
                .collect();
            let time = log_append_time.then_some(TimestampMs(50_000 + step));
            match log.append(&mut bytes, time) {
                Ok(info) => {
                    prop_assert_eq!(info.base_offset, Offset(model.end()));
                    prop_assert_eq!(info.bytes, bytes.len());
                    model.append(split_batches(&bytes, model.end()));
                    prop_assert_eq!(info.last_offset, Offset(model.end() - 1));
                }
                Err(LogError::RecordBatchTooLarge {
                    bytes: too_many, ..
                }) => {
                    prop_assert!(too_many as u64 > config.segment_bytes);
                }
                Err(error) => return Err(TestCaseError::fail(format!("append failed: {error}"))),
            }
        }
        Op::Truncate { at } => {
            let offset = model.point(*at);
            log.truncate_to(Offset(offset)).unwrap();
            if offset < model.end() {
                model.truncate(offset);
                txns.cut(model);
            }
        }
        Op::Read {
            start,
            max_bytes,
            upper_bound,
        } => check_read(log, model, *start, *max_bytes, *upper_bound)?,
        Op::Retain { retention_bytes } => {
            log.set_config(LogConfig {
                retention_bytes: *retention_bytes,
                ..config.clone()
            });
            let info = log.apply_retention(TimestampMs(0)).unwrap();
            let (segments, bytes) = model.retain(*retention_bytes as u64);
            prop_assert_eq!(
                (info.segments_deleted, info.bytes_deleted),
                (segments, bytes)
            );
            prop_assert_eq!(info.log_start_offset, Offset(model.start()));
            log.set_config(config.clone());
            let start = model.start();
            txns.aborted.retain(|&(_, _, marker)| marker >= start);
        }
        Op::Sync => {
            let handle = log.sync_handle();
            let offset = handle.sync().unwrap();
            prop_assert_eq!(offset, Offset(model.end()));
            log.mark_durable(offset);
            prop_assert_eq!(log.durable_offset(), Offset(model.end()));
            prop_assert!(log.sync_handle().is_empty());
        }
        Op::Reopen { clean } => reopen(log, dir, config, |old| {
            if *clean {
                old.close().unwrap()
            } else {
                drop(old)
            }
        }),
        Op::Tear { bytes } => {
            let active = dir.join(format!("{:020}.log", model.segments.last().unwrap().0));
            let size = Model::segment_size(&model.segments.last().unwrap().1);
            let length = size.saturating_sub(*bytes);
            reopen(log, dir, config, |old| {
                drop(old);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&active)
                    .unwrap()
                    .set_len(length)
                    .unwrap();
            });
            model.tear(length);
            txns.cut(model);
        }
    }
    check_bounds(log, model)?;
    check_aborted(log, model, txns)
}

fn reopen(log: &mut Log, dir: &Path, config: &LogConfig, shut: impl FnOnce(Log)) {
    let placeholder = tempfile::tempdir().unwrap();
    let old = std::mem::replace(log, Log::open(placeholder.path(), config.clone()).unwrap());
    shut(old);
    *log = Log::open(dir, config.clone()).unwrap();
    assert_eq!(
        log.durable_offset(),
        log.log_end_offset(),
        "a reopened log is durable"
    );
}

fn check_read(
    log: &Log,
    model: &Model,
    start: u16,
    max_bytes: usize,
    upper_bound: u16,
) -> Result<(), TestCaseError> {
    // Starts spread over the log and past its end; the lowest ones one below the log start.
    let start = model.point(start) - i64::from(start < 30);
    let upper_bound = model.point(upper_bound);
    match log.read(Offset(start), max_bytes, Offset(upper_bound)) {
        Ok(read) => {
            prop_assert!(
                start >= model.start() && start <= model.end(),
                "read at {} succeeded",
                start
            );
            let expected = model.read(start, max_bytes, upper_bound);
            prop_assert_eq!(read.records.len(), expected.len());
            prop_assert!(
                read.records.as_ref() == expected.as_slice(),
                "read at {} returned other bytes",
                start
            );
            prop_assert_eq!(read.log_end_offset, Offset(model.end()));
        }
        Err(LogError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        }) => {
            prop_assert!(start < model.start() || start > model.end());
            prop_assert_eq!(
                (requested, log_start, log_end),
                (Offset(start), Offset(model.start()), Offset(model.end()))
            );
        }
        Err(error) => return Err(TestCaseError::fail(format!("read failed: {error}"))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_log_behaves_like_its_model(
        ops in prop::collection::vec(op(), 1..60),
        segment_bytes in 800u64..5_000,
        index_interval_bytes in 0u32..2_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes, retention_ms: -1, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        let mut model = Model { segments: vec![(0, Vec::new())], segment_bytes };
        let mut txns = Txns::default();
        for (step, op) in ops.iter().enumerate() {
            apply(&mut log, &mut model, &mut txns, op, dir.path(), &config, step as i64)?;
        }
        // Everything the model holds reads back, batch for batch, through a clean reopen.
        log.close().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        check_bounds(&log, &model)?;
        check_aborted(&log, &model, &txns)?;
        let all = log.read(Offset(model.start()), usize::MAX, Offset(model.end())).unwrap();
        let expected: Vec<u8> = model.batches().flat_map(|stored| stored.bytes.clone()).collect();
        prop_assert!(all.records.as_ref() == expected.as_slice());
    }
}
