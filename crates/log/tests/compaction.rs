//! Model-based test of compaction: random keyed appends (tombstones, a few records without a
//! key, every codec, several segments through small `segment.bytes`), transactions (batches
//! from transactional producers, COMMIT and ABORT markers, the aborted ones indexed as a
//! partition would), rolls, compaction passes at an advancing clock below the last stable
//! offset, reopens, size retention, and crashes in the middle of a segment swap, checked
//! against a plain list of the records Kafka's cleaner would leave.
//!
//! The model: every record ever appended, with the time a compaction pass first saw it (which
//! starts its tombstone's delete horizon) and the transaction it belongs to. A pass at time
//! `now` over the records below its bound (the last segment boundary at or below both the
//! active segment and the first offset of the oldest open transaction) drops aborted
//! transactions' records, records without a key, those with a later record of the same key
//! below the bound (aborted ones do not count), and tombstones first seen
//! `delete.retention.ms` or more ago; it stamps the rest. Besides the records, every check
//! reads the log as a read_committed consumer would (with the aborted transactions the log
//! lists) and finds exactly the committed records, and finds the marker of every transaction
//! whose records are still there.

#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;
use strom_log::{AbortedTxnEntry, CompactionConfig, Log, LogConfig};
use strom_protocol::batch::{validate, Batches};
use strom_protocol::control::{read_marker, MarkerType};
use strom_types::{Offset, TimestampMs};
use test_support::{keyed_batch_with, marker, transactional_batch_with, Producer};

const KEYS: u8 = 6;
const DELETE_RETENTION_MS: i64 = 5_000;
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[derive(Debug, Clone)]
enum Op {
    /// One batch of (key, value) records; key `None` is a record without a key, value `None` a
    /// tombstone.
    Append {
        records: Vec<(Option<u8>, Option<u8>)>,
        codec: usize,
    },
    /// One batch of keyed records from transactional producer `producer`.
    TxnAppend {
        producer: i64,
        records: Vec<(Option<u8>, Option<u8>)>,
        codec: usize,
    },
    /// `producer`'s marker (with or without a transaction open here).
    TxnEnd {
        producer: i64,
        abort: bool,
    },
    Roll,
    /// Let `ms` pass, then run a pass.
    Compact {
        ms: i64,
    },
    Reopen {
        clean: bool,
    },
    Retain {
        retention_bytes: i64,
    },
    /// Run a pass, then put the directory back as a crash during the swap of one of the groups
    /// the pass replaced would have left it (`stage`, see `crash_files`), and reopen.
    CrashMidSwap {
        ms: i64,
        group: usize,
        stage: u8,
    },
}

fn record() -> impl Strategy<Value = (Option<u8>, Option<u8>)> {
    let key = prop_oneof![20 => (0..KEYS).prop_map(Some), 1 => Just(None)];
    let value = prop_oneof![4 => (0u8..128).prop_map(Some), 1 => Just(None)];
    (key, value)
}

/// A record with a key (transactional producers on a compacted topic always send one).
fn keyed_record() -> impl Strategy<Value = (Option<u8>, Option<u8>)> {
    let value = prop_oneof![4 => (0u8..128).prop_map(Some), 1 => Just(None)];
    ((0..KEYS).prop_map(Some), value)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::collection::vec(record(), 1..5), 0..CODECS.len())
            .prop_map(|(records, codec)| Op::Append { records, codec }),
        6 => (1i64..4, prop::collection::vec(keyed_record(), 1..4), 0..CODECS.len())
            .prop_map(|(producer, records, codec)| Op::TxnAppend { producer, records, codec }),
        3 => (1i64..4, any::<bool>()).prop_map(|(producer, abort)| Op::TxnEnd { producer, abort }),
        1 => Just(Op::Roll),
        4 => (0i64..4_000).prop_map(|ms| Op::Compact { ms }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..6_000).prop_map(|retention_bytes| Op::Retain { retention_bytes }),
        2 => (0i64..4_000, 0usize..8, 0u8..5)
            .prop_map(|(ms, group, stage)| Op::CrashMidSwap { ms, group, stage }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    key: Option<u8>,
    value: Option<u8>,
    timestamp: i64,
    /// When a pass first kept this record, below the active segment.
    first_seen: Option<i64>,
    /// The transaction the record belongs to (an index into `Model::txns`).
    txn: Option<usize>,
}

/// A transaction: its producer, where it began, and where and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Txn {
    producer: i64,
    first: i64,
    /// The marker's offset and whether it aborted.
    end: Option<(i64, bool)>,
}

/// The records the log should hold, by offset.
#[derive(Debug, Clone, Default)]
struct Model {
    records: BTreeMap<i64, Stored>,
    txns: Vec<Txn>,
}

impl Model {
    fn aborted(&self, stored: &Stored) -> bool {
        stored
            .txn
            .is_some_and(|txn| matches!(self.txns[txn].end, Some((_, true))))
    }

    fn committed(&self, stored: &Stored) -> bool {
        stored
            .txn
            .is_none_or(|txn| matches!(self.txns[txn].end, Some((_, false))))
    }

    /// Kafka's cleaner over everything below `bound`, at `now`.
    fn compact(&mut self, bound: i64, now: i64) {
        let mut latest: HashMap<u8, i64> = HashMap::new();
        for (&offset, stored) in self.records.range(..bound) {
            if let (Some(key), false) = (stored.key, self.aborted(stored)) {
                latest.insert(key, offset);
            }
        }
        let aborted: Vec<i64> = self
            .records
            .iter()
            .filter(|(_, stored)| self.aborted(stored))
            .map(|(&offset, _)| offset)
            .collect();
        self.records.retain(|&offset, stored| {
            if offset >= bound {
                return true;
            }
            if aborted.contains(&offset) {
                return false;
            }
            let Some(key) = stored.key else { return false };
            if latest[&key] != offset {
                return false;
            }
            let first_seen = *stored.first_seen.get_or_insert(now);
            stored.value.is_some() || now < first_seen + DELETE_RETENTION_MS
        });
    }

    /// The model with `self` below `at` and `other` from `at` on.
    fn spliced(&self, at: i64, other: &Model) -> Model {
        let mut records: BTreeMap<i64, Stored> = self
            .records
            .range(..at)
            .map(|(&o, s)| (o, s.clone()))
            .collect();
        records.extend(other.records.range(at..).map(|(&o, s)| (o, s.clone())));
        Model {
            records,
            txns: self.txns.clone(),
        }
    }

    /// The first offset of the oldest transaction still open, if any (retention may have
    /// deleted it: the partition's producer state remembers it all the same).
    fn first_open(&self) -> Option<i64> {
        self.txns
            .iter()
            .filter(|txn| txn.end.is_none())
            .map(|txn| txn.first)
            .min()
    }

    /// The open transaction of `producer`, if any.
    fn open_txn(&self, producer: i64) -> Option<usize> {
        self.txns
            .iter()
            .position(|txn| txn.producer == producer && txn.end.is_none())
    }

    /// What a read_committed consumer reads below `end`: committed records only.
    fn committed_below(&self, end: i64) -> Vec<(i64, Option<u8>, Option<u8>)> {
        self.records
            .range(..end)
            .filter(|(_, stored)| self.committed(stored))
            .map(|(&offset, stored)| (offset, stored.key, stored.value))
            .collect()
    }

    fn contents(&self) -> Vec<(i64, Option<u8>, Option<u8>)> {
        self.records
            .iter()
            .map(|(&offset, stored)| (offset, stored.key, stored.value))
            .collect()
    }
}

/// Every data record the log serves, as (offset, key, value) decoded as `Harness::append`
/// encodes them, checking each batch's CRC and that
/// batches and records only move forward.
fn read_all(log: &Log) -> Vec<(i64, Option<u8>, Option<u8>)> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    for (header, range) in Batches::new(&read.records) {
        validate(&read.records[range.clone()]).unwrap();
        assert!(header.base_offset >= next, "batches move forward");
        next = header.next_offset();
        if header.is_control() {
            continue;
        }
        let mut bytes = read.records.slice(range);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), header.record_count as usize);
        for record in set.records {
            assert!(
                record.offset >= header.base_offset.0 && record.offset <= header.last_offset().0
            );
            let byte = |bytes: Option<Bytes>| bytes.map(|bytes| bytes[0]);
            let key = byte(record.key).map(|key| key - b'a');
            out.push((record.offset, key, byte(record.value)));
        }
    }
    out
}

fn encode(key: u8) -> String {
    format!("{}", (b'a' + key) as char)
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Log,
    model: Model,
    now: i64,
    step: i64,
    /// The bound of the last pass: what it cleaned ends there.
    bound: i64,
}

impl Harness {
    fn new(segment_bytes: u64, index_interval_bytes: u32) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = Log::open(&dir.path().join("t-0"), config.clone()).unwrap();
        Harness {
            dir,
            config,
            log,
            model: Model::default(),
            now: 100_000,
            step: 0,
            bound: 0,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("t-0")
    }

    fn compaction(&self) -> CompactionConfig {
        CompactionConfig {
            delete_retention_ms: DELETE_RETENTION_MS,
            ..CompactionConfig::default()
        }
    }

    fn append(&mut self, records: &[(Option<u8>, Option<u8>)], codec: usize) {
        self.append_from(None, records, codec);
    }

    /// Appends `records` as one batch, from transactional producer `producer` if given.
    fn append_from(
        &mut self,
        producer: Option<i64>,
        records: &[(Option<u8>, Option<u8>)],
        codec: usize,
    ) {
        let keys: Vec<Option<String>> = records.iter().map(|(key, _)| key.map(encode)).collect();
        let values: Vec<Option<String>> = records
            .iter()
            .map(|(_, value)| value.map(|value| (value as char).to_string()))
            .collect();
        let pairs: Vec<(Option<&str>, Option<&str>)> = keys
            .iter()
            .zip(&values)
            .map(|(key, value)| (key.as_deref(), value.as_deref()))
            .collect();
        let timestamp = 1_000 + self.step;
        let mut bytes = match producer {
            None => keyed_batch_with(&pairs, timestamp, CODECS[codec], None),
            Some(id) => {
                let fields = Producer {
                    id,
                    epoch: 0,
                    base_sequence: 0,
                };
                transactional_batch_with(&pairs, timestamp, CODECS[codec], fields)
            }
        };
        let info = self.log.append(&mut bytes, None).unwrap();
        let txn = producer.map(|producer| {
            self.model.open_txn(producer).unwrap_or_else(|| {
                self.model.txns.push(Txn {
                    producer,
                    first: info.base_offset.0,
                    end: None,
                });
                self.model.txns.len() - 1
            })
        });
        for (at, &(key, value)) in records.iter().enumerate() {
            let stored = Stored {
                key,
                value,
                timestamp,
                first_seen: None,
                txn,
            };
            self.model
                .records
                .insert(info.base_offset.0 + at as i64, stored);
        }
    }

    /// `producer`'s marker; an ABORT of a transaction open here is indexed, as a partition
    /// does it.
    fn end(&mut self, producer: i64, abort: bool) {
        // Stamped "no timestamp": ListOffsets finds control batches too (as Kafka does), and
        // the model's timestamps are those of its records.
        let mut bytes = marker(producer, 0, abort, -1);
        let offset = self.log.append(&mut bytes, None).unwrap().base_offset;
        let Some(txn) = self.model.open_txn(producer) else {
            return;
        };
        self.model.txns[txn].end = Some((offset.0, abort));
        if abort {
            let last_stable_offset = self.model.first_open().unwrap_or(offset.0 + 1);
            let entry = AbortedTxnEntry {
                producer_id: producer,
                first_offset: Offset(self.model.txns[txn].first),
                last_offset: offset,
                last_stable_offset: Offset(last_stable_offset),
            };
            self.log.index_aborted_txn(entry).unwrap();
        }
    }

    /// The last stable offset: below the oldest open transaction.
    fn last_stable_offset(&self) -> i64 {
        let end = self.log.log_end_offset().0;
        self.model.first_open().map_or(end, |first| first.min(end))
    }

    /// A pass below the last stable offset, as a partition runs it.
    fn compact(&mut self, ms: i64) {
        self.now += ms;
        let active_base = self.log.active_segment_base_offset();
        let lso = self.last_stable_offset();
        // The log cleans the segments that end at or below its bound: none if a transaction
        // open from below the log start (retention deleted its first batches) holds it there.
        let bound = log_bases(&self.path())
            .into_iter()
            .filter(|&base| base <= lso.min(active_base.0))
            .max()
            .unwrap_or(self.log.log_start_offset().0);
        let info = self
            .log
            .compact_below(Offset(lso), TimestampMs(self.now), &self.compaction())
            .unwrap();
        self.model.compact(bound, self.now);
        self.bound = bound;
        if bound == active_base.0 {
            assert_eq!(info.first_dirty_offset, active_base);
            assert_eq!(self.log.first_dirty_offset(), active_base);
            assert_eq!(self.log.dirty_ratio(), 0.0);
        }
    }

    /// Shuts the log down (cleanly or as a kill would), leaving a placeholder in its place.
    fn shut(&mut self, clean: bool) {
        let placeholder = tempfile::tempdir().unwrap();
        let old = std::mem::replace(
            &mut self.log,
            Log::open(placeholder.path(), self.config.clone()).unwrap(),
        );
        match clean {
            true => old.close().unwrap(),
            false => drop(old),
        }
    }

    fn reopen(&mut self, clean: bool) {
        self.shut(clean);
        self.log = Log::open(&self.path(), self.config.clone()).unwrap();
    }

    fn retain(&mut self, retention_bytes: i64) {
        self.log.set_config(LogConfig {
            retention_bytes,
            ..self.config.clone()
        });
        self.log.apply_retention(TimestampMs(self.now)).unwrap();
        self.log.set_config(self.config.clone());
        let start = self.log.log_start_offset().0;
        self.model.records.retain(|&offset, _| offset >= start);
    }

    /// A pass whose swap of one group is interrupted at `stage`; see `crash_files`. Returns
    /// whether the group merged several segments and whether recovery finished the swap, or
    /// `None` if the pass replaced nothing.
    fn crash_mid_swap(&mut self, ms: i64, group: usize, stage: u8) -> Option<(bool, bool)> {
        self.reopen(true);
        let before = snapshot(&self.path());
        let model_before = self.model.clone();
        self.compact(ms);
        self.shut(true);
        let after = snapshot(&self.path());
        let groups = replaced_groups(&before, &after);
        if groups.is_empty() {
            self.log = Log::open(&self.path(), self.config.clone()).unwrap();
            return None;
        }
        let (base, end) = groups[group % groups.len()];
        let forward = crash_files(&self.path(), &before, &after, (base, end), stage);
        self.model = match forward {
            false => self.model.spliced(base, &model_before),
            true => self.model.spliced(end, &model_before),
        };
        self.log = Log::open(&self.path(), self.config.clone()).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".cleaned") || name.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let merged = bases(&before).iter().any(|&b| b > base && b < end);
        Some((merged, forward))
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let contents = read_all(&self.log);
        prop_assert_eq!(&contents, &self.model.contents());
        check_reads_skip_gaps(&self.log)?;
        check_timestamps(&self.log, &self.model)?;
        check_read_committed(&self.log, &self.model, self.last_stable_offset())?;
        check_markers(&self.log, &self.model)?;
        Ok(())
    }
}

/// The segment base offsets in `dir`, ascending.
fn log_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    bases
}

/// A read_committed consumer (Kafka's `CompletedFetch`) reading everything below the last
/// stable offset, with the aborted transactions the log lists, sees the committed records and
/// nothing else.
fn check_read_committed(log: &Log, model: &Model, lso: i64) -> Result<(), TestCaseError> {
    let start = log.log_start_offset();
    let read = log.read(start, usize::MAX, Offset(lso)).unwrap();
    let mut aborted: Vec<AbortedTxnEntry> = log.aborted_txns(start, Offset(lso)).unwrap();
    aborted.sort_by_key(|entry| entry.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborting: std::collections::HashSet<i64> = Default::default();
    let mut seen = Vec::new();
    for (header, range) in Batches::new(&read.records) {
        while let Some(entry) = aborted.next_if(|e| e.first_offset <= header.last_offset()) {
            aborting.insert(entry.producer_id);
        }
        let bytes = &read.records[range.clone()];
        if header.is_control() {
            if read_marker(&header, bytes).is_ok_and(|m| m.kind == MarkerType::Abort) {
                aborting.remove(&header.producer_id);
            }
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            continue;
        }
        let mut batch = read.records.slice(range);
        for record in RecordBatchDecoder::decode(&mut batch).unwrap().records {
            let byte = |bytes: Option<Bytes>| bytes.map(|bytes| bytes[0]);
            let key = byte(record.key).map(|key| key - b'a');
            seen.push((record.offset, key, byte(record.value)));
        }
    }
    prop_assert_eq!(seen, model.committed_below(lso));
    Ok(())
}

/// The marker of every transaction with records left in the log is still there.
fn check_markers(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    let markers: Vec<i64> = Batches::new(&read.records)
        .filter(|(header, _)| header.is_control() && header.record_count > 0)
        .map(|(header, _)| header.base_offset.0)
        .collect();
    for stored in model.records.values() {
        if let Some((offset, _)) = stored.txn.and_then(|txn| model.txns[txn].end) {
            prop_assert!(
                markers.contains(&offset),
                "the marker at {} is gone",
                offset
            );
        }
    }
    Ok(())
}

/// Reads starting anywhere, gaps included, return the first batch that ends at or after the start.
fn check_reads_skip_gaps(log: &Log) -> Result<(), TestCaseError> {
    let all = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    let batches: Vec<(i64, i64)> = Batches::new(&all.records)
        .map(|(header, _)| (header.base_offset.0, header.last_offset().0))
        .collect();
    for start in log.log_start_offset().0..log.log_end_offset().0 {
        let read = log.read(Offset(start), 1, log.log_end_offset()).unwrap();
        let first = Batches::new(&read.records)
            .next()
            .map(|(header, _)| (header.base_offset.0, header.last_offset().0));
        let expected = batches.iter().copied().find(|&(_, last)| last >= start);
        prop_assert_eq!(first, expected, "read at {}", start);
    }
    Ok(())
}

/// ListOffsets by timestamp finds the first surviving record at or after a time (appends are
/// stamped in increasing order, so that is the first in offset order).
fn check_timestamps(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    let mut targets: Vec<i64> = model
        .records
        .values()
        .map(|stored| stored.timestamp)
        .collect();
    targets.dedup();
    targets.push(0);
    targets.push(i64::MAX);
    for target in targets.into_iter().step_by(3) {
        let expected = model
            .records
            .iter()
            .find(|(_, stored)| stored.timestamp >= target)
            .map(|(&offset, stored)| (Offset(offset), TimestampMs(stored.timestamp)));
        let found = log.offset_for_timestamp(TimestampMs(target)).unwrap();
        prop_assert_eq!(found, expected, "timestamp {}", target);
    }
    Ok(())
}

/// The names and bytes of the files in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// Segment base offsets named by `.log` files, ascending.
fn bases(files: &BTreeMap<String, Vec<u8>>) -> Vec<i64> {
    files
        .keys()
        .filter_map(|name| name.strip_suffix(".log"))
        .map(|stem| stem.parse().unwrap())
        .collect()
}

fn name(base: i64, extension: &str) -> String {
    format!("{base:020}.{extension}")
}

/// The (base, end) offsets of each segment a pass replaced: present afterwards with other
/// contents, or with fewer segments in its range.
fn replaced_groups(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<(i64, i64)> {
    let after_bases = bases(after);
    let before_bases = bases(before);
    after_bases
        .windows(2)
        .filter(|pair| {
            let (base, end) = (pair[0], pair[1]);
            let olds = before_bases
                .iter()
                .filter(|&&old| old >= base && old < end)
                .count();
            olds > 1 || before.get(&name(base, "log")) != after.get(&name(base, "log"))
        })
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// Rewrites `dir` as a crash while swapping in the cleaned segment `base` (replacing the old
/// segments in `[base, end)`) would leave it, and returns whether recovery must finish the swap
/// (rather than roll it back). Groups before it are swapped in (`after`), later ones not yet
/// cleaned and the checkpoint not yet written (`before`). The group itself is at `stage`; with
/// several old segments (see the crate's `swap` module):
/// 0. the cleaned files written, nothing renamed;
/// 1. committed: `<base>.log.swap` renamed, the old segments all there;
/// 2. committed, and some of the old segments after the first deleted;
/// 3. all deleted, the log file renamed into place, the indexes still `.cleaned`;
/// 4. all deleted, the indexes renamed into place but not the `.log.swap` (renames within one
///    step are not ordered by an fsync);
///
/// and with one old segment, where renaming the log file is the commit point:
/// 0. the cleaned files written, nothing renamed;
/// 1. the log file renamed, the indexes still `.cleaned`;
/// 2. the indexes renamed, not the log file: new indexes with the old log file;
/// 3. the log file and one index renamed;
/// 4. everything renamed.
fn crash_files(
    dir: &Path,
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    (base, end): (i64, i64),
    stage: u8,
) -> bool {
    let base_of = |name: &str| name.get(..20).and_then(|stem| stem.parse::<i64>().ok());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (file, bytes) in after {
        if base_of(file).is_some_and(|b| b < base) {
            files.insert(file.clone(), bytes.clone());
        }
    }
    for (file, bytes) in before {
        if base_of(file).is_none_or(|b| b >= base) {
            files.insert(file.clone(), bytes.clone());
        }
    }
    let olds: Vec<i64> = bases(before)
        .into_iter()
        .filter(|&b| b > base && b < end)
        .collect();
    // (log file suffix, index suffixes, old segments deleted, forward)
    let (log, indexes, deleted, forward) = match (olds.is_empty(), stage) {
        (_, 0) => (Some(".cleaned"), [Some(".cleaned"); 2], 0, false),
        (false, 1) => (Some(".swap"), [Some(".cleaned"); 2], 0, true),
        (false, 2) => (
            Some(".swap"),
            [Some(".cleaned"); 2],
            olds.len().div_ceil(2),
            true,
        ),
        (false, 3) => (None, [Some(".cleaned"); 2], olds.len(), true),
        (false, _) => (Some(".swap"), [None; 2], olds.len(), true),
        (true, 1) => (None, [Some(".cleaned"); 2], 0, true),
        (true, 2) => (Some(".cleaned"), [None; 2], 0, false),
        (true, 3) => (None, [None, Some(".cleaned")], 0, true),
        (true, _) => (None, [None; 2], 0, true),
    };
    for (extension, suffix) in [
        ("log", log),
        ("index", indexes[0]),
        ("timeindex", indexes[1]),
    ] {
        let new = after[&name(base, extension)].clone();
        match suffix {
            Some(suffix) => files.insert(format!("{}{suffix}", name(base, extension)), new),
            None => files.insert(name(base, extension), new),
        };
    }
    // The `.txnindex` is renamed (or the old one deleted) last, after the time index.
    match (after.get(&name(base, "txnindex")), indexes[1]) {
        (Some(new), Some(suffix)) => {
            files.insert(format!("{}{suffix}", name(base, "txnindex")), new.clone());
        }
        (Some(new), None) => {
            files.insert(name(base, "txnindex"), new.clone());
        }
        (None, None) => {
            files.remove(&name(base, "txnindex"));
        }
        (None, Some(_)) => {}
    }
    for old in &olds[..deleted] {
        for extension in ["log", "index", "timeindex", "txnindex"] {
            files.remove(&name(*old, extension));
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::create_dir(dir).unwrap();
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    forward
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn compaction_leaves_what_kafkas_cleaner_would(
        ops in prop::collection::vec(op(), 1..40),
        segment_bytes in 300u64..1_500,
        index_interval_bytes in 0u32..400,
    ) {
        let mut harness = Harness::new(segment_bytes, index_interval_bytes);
        for op in &ops {
            harness.step += 1;
            match op {
                Op::Append { records, codec } => harness.append(records, *codec),
                Op::TxnAppend { producer, records, codec } => {
                    harness.append_from(Some(*producer), records, *codec);
                }
                Op::TxnEnd { producer, abort } => harness.end(*producer, *abort),
                Op::Roll => {
                    harness.log.roll_active().unwrap();
                }
                Op::Compact { ms } => harness.compact(*ms),
                Op::Reopen { clean } => harness.reopen(*clean),
                Op::Retain { retention_bytes } => harness.retain(*retention_bytes),
                Op::CrashMidSwap { ms, group, stage } => {
                    harness.crash_mid_swap(*ms, *group, *stage);
                }
            }
            harness.check()?;
            if matches!(op, Op::Compact { .. }) {
                // Below the pass's bound, each key at most once.
                let bound = harness.bound;
                let mut keys: Vec<_> = read_all(&harness.log)
                    .into_iter()
                    .filter(|(offset, _, _)| *offset < bound)
                    .map(|(_, key, _)| key)
                    .collect();
                let count = keys.len();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(keys.len(), count, "a key twice below the bound");
                prop_assert!(keys.iter().all(Option::is_some), "a record without a key survived");
            }
        }
        // A final pass long after everything: no tombstone or aborted record is left below the
        // active segment.
        for producer in 1..4 {
            harness.end(producer, producer % 2 == 0);
        }
        harness.log.roll_active().unwrap();
        harness.compact(0);
        harness.compact(DELETE_RETENTION_MS);
        harness.check()?;
        prop_assert!(harness.model.records.values().all(|stored| stored.value.is_some()));
        prop_assert!(harness.model.records.values().all(|stored| harness.model.committed(stored)));
        harness.reopen(false);
        harness.check()?;
    }
}

/// A log of 36 single-record batches over 3 keys in small segments, rolled, so all of it is
/// compactable: the first pass shrinks every segment to about one batch.
fn repetitive_log() -> Harness {
    let mut harness = Harness::new(400, 100);
    for round in 0..12u8 {
        for key in 0..3 {
            harness.step += 1;
            harness.append(
                &[(Some(key), Some(round))],
                usize::from(round) % CODECS.len(),
            );
        }
    }
    harness.log.roll_active().unwrap();
    harness
}

#[test]
fn every_crash_stage_of_a_single_segment_swap_recovers() {
    for stage in 0..5 {
        let mut harness = repetitive_log();
        let (merged, forward) = harness.crash_mid_swap(0, 0, stage).unwrap();
        assert!(!merged, "the first pass replaces segments one by one");
        assert_eq!(forward, ![0, 2].contains(&stage), "stage {stage}");
        harness.check().unwrap();
        harness.compact(0);
        harness.check().unwrap();
    }
}

#[test]
fn every_crash_stage_of_a_merging_swap_recovers() {
    for stage in 0..5 {
        let mut harness = repetitive_log();
        harness.compact(0);
        let segments = harness.log.segment_count();
        harness.step += 1;
        harness.append(&[(Some(1), None)], 1);
        harness.log.roll_active().unwrap();
        let (merged, forward) = harness.crash_mid_swap(10, 0, stage).unwrap();
        assert!(merged, "the second pass merges the shrunken segments");
        assert_eq!(forward, stage != 0, "stage {stage}");
        harness.check().unwrap();
        harness.compact(0);
        harness.check().unwrap();
        assert!(harness.log.segment_count() < segments);
    }
}
