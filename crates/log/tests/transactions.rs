//! The aborted-transaction index (`.txnindex`) through the log's public API: written as ABORT
//! markers are appended (by a leader and by a follower), read back for read_committed fetches,
//! kept across clean restarts and crashes (rebuilt when torn, lost or unreadable), truncated,
//! deleted by retention, and carried through compaction, which removes aborted data and, after
//! their delete horizon, the markers of transactions that have no data left.

#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kafka_protocol::records::RecordBatchDecoder;
use strom_log::{AbortedTxnEntry, CompactionConfig, Log, LogConfig};
use strom_protocol::batch::Batches;
use strom_types::{Offset, TimestampMs};
use test_support::{keyed_batch, marker, transactional_batch, Producer};

/// What a partition tells the log: it follows the transactional producers' batches and
/// indexes each aborted transaction with its first offset and the last stable offset.
struct Writer {
    log: Log,
    /// Open transactions: producer -> first offset.
    open: BTreeMap<i64, Offset>,
    sequences: HashMap<i64, i32>,
    /// Every entry indexed so far.
    indexed: Vec<AbortedTxnEntry>,
}

impl Writer {
    fn open(dir: &Path, config: LogConfig) -> Writer {
        Writer {
            log: Log::open(dir, config).unwrap(),
            open: BTreeMap::new(),
            sequences: HashMap::new(),
            indexed: Vec::new(),
        }
    }

    /// A transactional batch of `records` from `producer`; returns its offset.
    fn data(&mut self, producer: i64, records: &[(&str, Option<&str>)]) -> Offset {
        let sequence = self.sequences.entry(producer).or_insert(0);
        let fields = Producer {
            id: producer,
            epoch: 0,
            base_sequence: *sequence,
        };
        *sequence += records.len() as i32;
        let records: Vec<_> = records.iter().map(|&(k, v)| (Some(k), v)).collect();
        let mut bytes = transactional_batch(&records, 1_000, fields);
        let offset = self.log.append(&mut bytes, None).unwrap().base_offset;
        self.open.entry(producer).or_insert(offset);
        offset
    }

    /// A batch from no producer.
    fn plain(&mut self, records: &[(&str, Option<&str>)]) -> Offset {
        let records: Vec<_> = records.iter().map(|&(k, v)| (Some(k), v)).collect();
        let mut bytes = keyed_batch(&records, 1_000);
        self.log.append(&mut bytes, None).unwrap().base_offset
    }

    /// The producer's marker; an ABORT of a transaction with data here is indexed.
    fn end(&mut self, producer: i64, abort: bool) -> Offset {
        let mut bytes = marker(producer, 0, abort, 2_000);
        let offset = self.log.append(&mut bytes, None).unwrap().base_offset;
        let first = self.open.remove(&producer);
        if let (true, Some(first_offset)) = (abort, first) {
            let entry = AbortedTxnEntry {
                producer_id: producer,
                first_offset,
                last_offset: offset,
                last_stable_offset: self.open.values().min().copied().unwrap_or(offset.plus(1)),
            };
            self.log.index_aborted_txn(entry).unwrap();
            self.indexed.push(entry);
        }
        offset
    }

    fn all_aborted(&self) -> Vec<AbortedTxnEntry> {
        aborted(&self.log)
    }
}

fn aborted(log: &Log) -> Vec<AbortedTxnEntry> {
    log.aborted_txns(log.log_start_offset(), log.log_end_offset())
        .unwrap()
}

/// (producer, first offset, marker offset): what a rebuilt entry must keep (its last stable
/// offset is a lower bound, not the original).
fn spans(entries: &[AbortedTxnEntry]) -> Vec<(i64, i64, i64)> {
    entries
        .iter()
        .map(|entry| (entry.producer_id, entry.first_offset.0, entry.last_offset.0))
        .collect()
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 500,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// The `.txnindex` files in `dir`, by base offset.
fn txn_index_files(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".txnindex")
                .map(|base| base.parse().unwrap())
        })
        .collect();
    bases.sort();
    bases
}

fn txn_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

/// Interleaved transactions across several segments: producers 1..=4, some aborted, some
/// committed, some spanning rolls. Returns the writer.
fn busy_log(dir: &Path) -> Writer {
    let mut w = Writer::open(dir, small());
    for round in 0..4 {
        let value = format!("r{round}");
        w.data(1, &[("a", Some(&value))]);
        w.data(2, &[("b", Some(&value))]);
        w.plain(&[("p", Some(&value))]);
        w.data(1, &[("a", Some(&value)), ("c", Some(&value))]);
        w.end(2, round % 2 == 0);
        w.data(3, &[("d", Some(&value))]);
        w.end(1, true);
        w.end(3, round % 2 == 1);
    }
    assert!(w.log.segment_count() > 3, "{}", w.log.segment_count());
    w
}

#[test]
fn aborted_transactions_are_found_for_any_range_and_only_segments_with_aborts_have_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let w = busy_log(dir.path());
    assert_eq!(w.all_aborted(), w.indexed);
    assert_eq!(w.indexed.len(), 8);
    // Every range gets exactly the transactions with a marker at or after its start and a
    // first offset before its end.
    let end = w.log.log_end_offset().0;
    for from in 0..end {
        for to in from + 1..=end {
            let expected: Vec<_> = w
                .indexed
                .iter()
                .filter(|e| e.last_offset.0 >= from && e.first_offset.0 < to)
                .copied()
                .collect();
            assert_eq!(
                w.log.aborted_txns(Offset(from), Offset(to)).unwrap(),
                expected,
                "{from}..{to}"
            );
        }
    }
    let with_aborts: Vec<i64> = {
        let mut bases: Vec<i64> = w
            .indexed
            .iter()
            .map(|entry| segment_base_of(&w.log, entry.last_offset))
            .collect();
        bases.dedup();
        bases
    };
    assert_eq!(txn_index_files(dir.path()), with_aborts);
}

/// The base offset of the segment holding `offset`, from the files on disk.
fn segment_base_of(log: &Log, offset: Offset) -> i64 {
    let mut bases: Vec<i64> = std::fs::read_dir(log.dir())
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|base| base.parse().unwrap())
        })
        .collect();
    bases.sort();
    *bases.iter().rev().find(|&&base| base <= offset.0).unwrap()
}

#[test]
fn the_aborted_list_survives_a_clean_restart_and_a_crash_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let w = busy_log(dir.path());
    let before = w.all_aborted();
    let files = txn_index_files(dir.path());
    w.log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        aborted(&log),
        before,
        "a clean restart reads the files as they are"
    );
    drop(log); // killed: nothing closed
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(aborted(&log), before);
    assert_eq!(txn_index_files(dir.path()), files);
}

#[test]
fn a_marker_whose_entry_never_reached_the_file_is_indexed_again_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), small());
    let first = w.data(7, &[("a", Some("1"))]);
    w.plain(&[("p", Some("x")); 1]);
    // The transaction goes on in later segments.
    while w.log.segment_count() < 3 {
        w.plain(&[("p", Some("filler filler filler filler"))]);
    }
    w.data(7, &[("a", Some("2"))]);
    w.data(8, &[("b", Some("1"))]);
    // Killed between the marker's write and its entry's: the marker is there, no entry.
    let mut bytes = marker(7, 0, true, 2_000);
    let marker_offset = w.log.append(&mut bytes, None).unwrap().base_offset;
    let aborted_8 = w.end(8, true);
    drop(w);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        spans(&aborted(&log)),
        [
            (7, first.0, marker_offset.0),
            (8, aborted_8.0 - 2, aborted_8.0)
        ]
    );
    // The rebuilt entry is written: the next open finds it in the file.
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(aborted(&log).len(), 2);
}

#[test]
fn a_torn_tail_takes_the_entries_of_its_markers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.data(1, &[("a", Some("1"))]);
    w.end(1, true);
    w.data(2, &[("b", Some("1"))]);
    let torn = w.end(2, true);
    assert_eq!(w.all_aborted().len(), 2);
    drop(w);
    // The last marker's write was torn.
    let log_file = dir.path().join(format!("{:020}.log", 0));
    let length = std::fs::metadata(&log_file).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_file)
        .unwrap();
    file.set_len(length - 5).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), torn);
    assert_eq!(spans(&aborted(&log)), [(1, 0, 1)]);
}

#[test]
fn an_unreadable_or_missing_index_is_rebuilt_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let w = busy_log(dir.path());
    let before = spans(&w.all_aborted());
    w.log.close().unwrap();
    let files = txn_index_files(dir.path());
    // An inactive segment's file torn mid-entry, the active segment's gone.
    let inactive = txn_index_path(dir.path(), files[0]);
    let bytes = std::fs::read(&inactive).unwrap();
    std::fs::write(&inactive, &bytes[..bytes.len() - 3]).unwrap();
    let active = *files.last().unwrap();
    std::fs::remove_file(txn_index_path(dir.path(), active)).unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(spans(&aborted(&log)), before);
    assert_eq!(txn_index_files(dir.path()), files);
    // Garbage of a whole number of entries: versions and offsets that make no sense.
    drop(log);
    std::fs::write(&inactive, [0xffu8; 68]).unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(spans(&aborted(&log)), before);
}

#[test]
fn truncation_drops_the_entries_of_the_markers_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = busy_log(dir.path());
    let entries = w.all_aborted();
    let cut = entries[3].last_offset;
    w.log.truncate_to(cut).unwrap();
    assert_eq!(aborted(&w.log), entries[..3]);
    let bases: Vec<i64> = entries[..3]
        .iter()
        .map(|entry| segment_base_of(&w.log, entry.last_offset))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(txn_index_files(dir.path()), bases);
    // Appends after the truncation index anew, in order.
    w.open.clear();
    w.data(9, &[("z", Some("1"))]);
    let marker_offset = w.end(9, true);
    assert_eq!(aborted(&w.log).last().unwrap().last_offset, marker_offset);
    drop(w);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(aborted(&log).len(), 4);
    drop(log);
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.truncate_to(Offset(0)).unwrap();
    assert!(aborted(&log).is_empty());
    assert!(txn_index_files(dir.path()).is_empty());
}

#[test]
fn retention_deletes_a_segments_index_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = busy_log(dir.path());
    let entries = w.all_aborted();
    let files = txn_index_files(dir.path());
    w.log.set_config(LogConfig {
        retention_bytes: (w.log.size_bytes() / 2) as i64,
        ..small()
    });
    let info = w.log.apply_retention(TimestampMs(0)).unwrap();
    assert!(info.segments_deleted > 0);
    let start = info.log_start_offset;
    let kept: Vec<_> = entries
        .iter()
        .filter(|entry| entry.last_offset >= start)
        .copied()
        .collect();
    assert_eq!(aborted(&w.log), kept);
    let remaining: Vec<i64> = files.into_iter().filter(|&base| base >= start.0).collect();
    assert_eq!(txn_index_files(dir.path()), remaining);
}

#[test]
fn a_follower_indexes_the_markers_of_each_run_in_that_runs_segment() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = busy_log(leader_dir.path());
    let mut fetched = w
        .log
        .read(Offset(0), usize::MAX, w.log.log_end_offset())
        .unwrap()
        .records
        .to_vec();
    let mut follower = Log::open(follower_dir.path(), small()).unwrap();
    // The follower's partition: first offsets from the batches it has seen.
    let mut open: BTreeMap<i64, Offset> = BTreeMap::new();
    let mut runs = 0;
    follower
        .append_as_follower_indexing(&mut fetched, |run| {
            runs += 1;
            assert_eq!(
                run.rolled_at.is_some(),
                runs > 1,
                "every run after the first rolled"
            );
            let run = run.records;
            let mut entries = Vec::new();
            for (header, range) in Batches::new(run) {
                if !header.is_control() {
                    if header.is_transactional() {
                        open.entry(header.producer_id).or_insert(header.base_offset);
                    }
                    continue;
                }
                let first = open.remove(&header.producer_id);
                let kind = strom_protocol::control::read_marker(&header, &run[range]).unwrap();
                if let (strom_protocol::control::MarkerType::Abort, Some(first_offset)) =
                    (kind.kind, first)
                {
                    entries.push(AbortedTxnEntry {
                        producer_id: header.producer_id,
                        first_offset,
                        last_offset: header.base_offset,
                        last_stable_offset: open
                            .values()
                            .min()
                            .copied()
                            .unwrap_or(header.base_offset.plus(1)),
                    });
                }
            }
            entries
        })
        .unwrap();
    assert!(runs > 1, "the fetch spans rolls");
    assert_eq!(aborted(&follower), w.indexed);
    assert_eq!(
        txn_index_files(follower_dir.path()),
        txn_index_files(leader_dir.path())
    );
    drop(follower);
    let follower = Log::open(follower_dir.path(), small()).unwrap();
    assert_eq!(aborted(&follower), w.indexed);
}

/// Every record the log serves, as (offset, key, value), markers as ("marker", producer).
fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    let mut out = Vec::new();
    for (header, range) in Batches::new(&read.records) {
        if header.is_control() {
            if header.record_count > 0 {
                let producer = header.producer_id.to_string();
                out.push((header.base_offset.0, "marker".to_string(), Some(producer)));
            }
            continue;
        }
        let mut bytes = bytes::Bytes::copy_from_slice(&read.records[range]);
        for record in RecordBatchDecoder::decode(&mut bytes).unwrap().records {
            let text = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
            out.push((
                record.offset,
                text(record.key.as_ref().unwrap()),
                record.value.as_ref().map(text),
            ));
        }
    }
    out
}

fn keys(log: &Log) -> Vec<(String, Option<String>)> {
    contents(log)
        .into_iter()
        .map(|(_, key, value)| (key, value))
        .collect()
}

fn pair(key: &str, value: &str) -> (String, Option<String>) {
    (key.to_string(), Some(value.to_string()))
}

fn retention(ms: i64) -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: ms,
        ..CompactionConfig::default()
    }
}

#[test]
fn compaction_removes_aborted_data_keeps_committed_and_markers_until_their_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.data(1, &[("a", Some("committed"))]); // 0
    w.data(2, &[("a", Some("aborted")), ("c", Some("aborted"))]); // 1-2
    w.plain(&[("b", Some("plain"))]); // 3
    w.end(1, false); // 4: commit
    w.end(2, true); // 5: abort
                    // Both producers write again, so the batches above are not their last ones.
    w.data(1, &[("x", Some("1"))]); // 6
    w.data(2, &[("y", Some("1"))]); // 7
    w.end(1, false); // 8
    w.end(2, false); // 9
    w.log.roll_active().unwrap();
    w.plain(&[("active", Some("1"))]);
    let config = retention(1_000);
    let info = w.log.compact(TimestampMs(50_000), &config).unwrap();
    assert_eq!(info.records_removed, 2, "the aborted records");
    assert_eq!(
        keys(&w.log),
        [
            pair("a", "committed"),
            pair("b", "plain"),
            pair("marker", "1"),
            pair("marker", "2"),
            pair("x", "1"),
            pair("y", "1"),
            pair("marker", "1"),
            pair("marker", "2"),
            pair("active", "1"),
        ],
        "an aborted record does not shadow the committed one of its key"
    );
    // The transaction's data was there in this pass: its marker and entry stay.
    assert_eq!(spans(&aborted(&w.log)), [(2, 1, 5)]);
    // The next pass finds no data: the entry goes, the markers get a horizon.
    w.log.compact(TimestampMs(60_000), &config).unwrap();
    assert!(aborted(&w.log).is_empty());
    assert!(txn_index_files(dir.path()).is_empty());
    assert_eq!(keys(&w.log).len(), 9, "the marker stays until its horizon");
    w.log.compact(TimestampMs(60_999), &config).unwrap();
    assert_eq!(keys(&w.log).len(), 9);
    let info = w.log.compact(TimestampMs(61_000), &config).unwrap();
    assert_eq!(info.records_removed, 1, "the ABORT marker");
    // Producer 1's first COMMIT marker stays as long as the record it committed.
    assert_eq!(
        keys(&w.log),
        [
            pair("a", "committed"),
            pair("b", "plain"),
            pair("marker", "1"),
            pair("x", "1"),
            pair("y", "1"),
            pair("marker", "1"),
            pair("marker", "2"),
            pair("active", "1"),
        ]
    );
    // What compaction left reopens as it is.
    let before = contents(&w.log);
    drop(w);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(contents(&log), before);
}

#[test]
fn committed_transactional_records_are_compacted_by_key_like_any_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.data(1, &[("k", Some("1")), ("j", Some("1"))]);
    w.end(1, false);
    w.plain(&[("k", Some("2"))]);
    w.data(1, &[("j", Some("2"))]);
    w.end(1, false);
    w.log.roll_active().unwrap();
    w.log.compact(TimestampMs(9_000), &retention(0)).unwrap();
    assert_eq!(
        keys(&w.log),
        [
            pair("marker", "1"),
            pair("k", "2"),
            pair("j", "2"),
            pair("marker", "1")
        ]
    );
}

#[test]
fn a_marker_whose_data_is_kept_stays_however_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.data(1, &[("k", Some("1"))]);
    w.end(1, false);
    w.data(2, &[("j", Some("1"))]);
    w.end(2, true);
    w.log.roll_active().unwrap();
    for now in [1_000, 2_000, 1_000_000] {
        w.log.compact(TimestampMs(now), &retention(0)).unwrap();
    }
    // Producer 1's committed record and its marker stay. Producer 2's aborted batch is its
    // last: its header stays, empty, and with it the marker and the entry (as in Kafka).
    assert_eq!(
        keys(&w.log),
        [pair("k", "1"), pair("marker", "1"), pair("marker", "2")]
    );
    assert_eq!(spans(&aborted(&w.log)), [(2, 2, 3)]);
}

#[test]
fn compaction_below_an_open_transaction_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.plain(&[("k", Some("1"))]);
    w.log.roll_active().unwrap();
    let open = w.data(1, &[("k", Some("open"))]);
    w.plain(&[("k", Some("2"))]);
    w.log.roll_active().unwrap();
    w.plain(&[("active", Some("1"))]);
    // The partition's bound: the open transaction's first offset (its last stable offset).
    w.log
        .compact_below(open, TimestampMs(9_000), &retention(0))
        .unwrap();
    assert_eq!(
        keys(&w.log),
        [
            pair("k", "1"),
            pair("k", "open"),
            pair("k", "2"),
            pair("active", "1")
        ],
        "the segment holding the open transaction is not cleaned"
    );
    w.end(1, true);
    w.log.roll_active().unwrap();
    w.log.compact(TimestampMs(9_000), &retention(0)).unwrap();
    assert_eq!(
        keys(&w.log),
        [pair("k", "2"), pair("active", "1"), pair("marker", "1")]
    );
}

#[test]
fn an_interrupted_swap_leaves_an_index_that_recovery_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), LogConfig::default());
    w.data(1, &[("a", Some("1"))]);
    w.plain(&[("b", Some("1"))]);
    w.end(1, true);
    w.log.roll_active().unwrap();
    w.plain(&[("c", Some("1"))]);
    let before = spans(&w.all_aborted());
    w.log.close().unwrap();
    // A crash mid-swap of segment 0: a `.cleaned` leftover. Recovery deletes the segment's
    // index files, since they may belong to either version, and rebuilds them.
    let leftover = dir.path().join(format!("{:020}.txnindex.cleaned", 0));
    std::fs::write(&leftover, [1u8; 34]).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert!(!leftover.exists());
    assert_eq!(spans(&aborted(&log)), before);
    assert_eq!(txn_index_files(dir.path()), [0]);
}
