//! Model-based test of compaction: random keyed appends (tombstones, a few records without a
//! key, every codec, several segments through small `segment.bytes`), rolls, compaction passes at
//! an advancing clock, reopens, size retention, and crashes in the middle of a segment swap,
//! checked against a plain list of the records Kafka's cleaner would leave.
//!
//! The model: every record ever appended, with the time a compaction pass first saw it (which
//! starts its tombstone's delete horizon). A pass at time `now` over the records below the active
//! segment drops those without a key, those with a later record of the same key below the active
//! segment, and tombstones first seen `delete.retention.ms` or more ago; it stamps the rest.

#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;
use strom_log::{CompactionConfig, Log, LogConfig};
use strom_protocol::batch::{validate, Batches};
use strom_types::{Offset, TimestampMs};
use test_support::keyed_batch_with;

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

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::collection::vec(record(), 1..5), 0..CODECS.len())
            .prop_map(|(records, codec)| Op::Append { records, codec }),
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
}

/// The records the log should hold, by offset.
#[derive(Debug, Clone, Default)]
struct Model {
    records: BTreeMap<i64, Stored>,
}

impl Model {
    /// Kafka's cleaner over everything below `active_base`, at `now`.
    fn compact(&mut self, active_base: i64, now: i64) {
        let mut latest: HashMap<u8, i64> = HashMap::new();
        for (&offset, stored) in self.records.range(..active_base) {
            if let Some(key) = stored.key {
                latest.insert(key, offset);
            }
        }
        self.records.retain(|&offset, stored| {
            if offset >= active_base {
                return true;
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
        Model { records }
    }

    fn contents(&self) -> Vec<(i64, Option<u8>, Option<u8>)> {
        self.records
            .iter()
            .map(|(&offset, stored)| (offset, stored.key, stored.value))
            .collect()
    }
}

/// Every record the log serves, as (offset, key, value) decoded as `Harness::append` encodes
/// them, checking each batch's CRC and that
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
        let mut bytes = keyed_batch_with(&pairs, timestamp, CODECS[codec], None);
        let info = self.log.append(&mut bytes, None).unwrap();
        for (at, &(key, value)) in records.iter().enumerate() {
            let stored = Stored {
                key,
                value,
                timestamp,
                first_seen: None,
            };
            self.model
                .records
                .insert(info.base_offset.0 + at as i64, stored);
        }
    }

    fn compact(&mut self, ms: i64) {
        self.now += ms;
        let active_base = self.log.active_segment_base_offset();
        let info = self
            .log
            .compact(TimestampMs(self.now), &self.compaction())
            .unwrap();
        self.model.compact(active_base.0, self.now);
        assert_eq!(info.first_dirty_offset, active_base);
        assert_eq!(self.log.first_dirty_offset(), active_base);
        assert_eq!(self.log.dirty_ratio(), 0.0);
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
        Ok(())
    }
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
    for old in &olds[..deleted] {
        for extension in ["log", "index", "timeindex"] {
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
                // Below the active segment, each key at most once.
                let active_base = harness.log.active_segment_base_offset().0;
                let mut keys: Vec<_> = read_all(&harness.log)
                    .into_iter()
                    .filter(|(offset, _, _)| *offset < active_base)
                    .map(|(_, key, _)| key)
                    .collect();
                let count = keys.len();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(keys.len(), count, "a key twice below the active segment");
                prop_assert!(keys.iter().all(Option::is_some), "a record without a key survived");
            }
        }
        // A final pass long after everything: no tombstone is left below the active segment.
        harness.log.roll_active().unwrap();
        harness.compact(0);
        harness.compact(DELETE_RETENTION_MS);
        harness.check()?;
        prop_assert!(harness.model.records.values().all(|stored| stored.value.is_some()));
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
