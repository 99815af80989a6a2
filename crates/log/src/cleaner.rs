//! What compaction keeps of one batch: Kafka's `Cleaner.shouldRetainRecord` and
//! `MemoryRecords.filterTo`, as pure functions over a batch's bytes and the offset map.
//!
//! A record is kept when
//! - its offset is past the end of the mapped range (the map knows nothing newer), or
//! - it has a key, no later record in the map has the same key, and it is not a tombstone whose
//!   batch's delete horizon has passed.
//!
//! Records without a key are dropped (Kafka refuses them on compacted topics at produce time).
//! A batch keeping every record is copied as stored, unless it holds a tombstone and has no
//! delete horizon yet: then it is rewritten with horizon `now + delete.retention.ms` (KIP-534),
//! so the tombstone stays readable for that long after the pass that first saw it. A batch left
//! with no records goes, unless it must keep its header: the last batch of a producer (its
//! sequence number lets the producer's next batch be checked) or the last batch of a cleaned
//! segment (so segments stay contiguous).
//!
//! Transactions, as Kafka's `CleanedTransactionMetadata` handles them, with [`TxnPass`]
//! following one pass from the log start:
//! - a transactional data batch of an aborted transaction (the aborted transactions come from
//!   the segments' `.txnindex`, see [`AbortedTxns`]) goes whole, and never enters the offset
//!   map; a committed transaction's records are compacted like any others. The caller cleans
//!   only below the last stable offset, so no batch of an open transaction is ever looked at;
//! - a marker (COMMIT or ABORT control batch) stays while any batch of its transaction is still
//!   in the log before it, and an ABORT marker's index entry with it. Once its transaction has
//!   no batch left, the marker gets a delete horizon (`now + delete.retention.ms`, as a
//!   tombstone does) and its index entry goes; a later pass past the horizon removes it. A
//!   consumer reading from the start within that time still sees it;
//! - a producer's last data batch keeps its header, and so does its last marker when no data
//!   batch of its latest epoch is left (it carries the epoch that fences older producers).

use std::collections::{HashMap, HashSet};

use kafka_protocol::records::Record;
use strom_protocol::batch::BatchHeader;
use strom_protocol::control::{read_marker, MarkerType};
use strom_types::{Offset, TimestampMs};

use crate::error::LogError;
use crate::rewrite;
use crate::txn_index::AbortedTxnEntry;

/// Bytes an entry of the offset map costs besides its key: the boxed key's pointer and length,
/// the offset, and the hash table's slack.
const OFFSET_MAP_ENTRY_BYTES: u64 = 48;

/// Each key of the mapped ("dirty") part of the log and the highest offset it has there.
/// Keys are stored whole, not hashed as Kafka does, so two keys never collide.
#[derive(Default)]
pub(crate) struct OffsetMap {
    offsets: HashMap<Box<[u8]>, Offset>,
    bytes: u64,
}

impl OffsetMap {
    /// Records `offset` for `key`; offsets must be offered in ascending order.
    pub fn insert(&mut self, key: &[u8], offset: Offset) {
        match self.offsets.get_mut(key) {
            Some(latest) => {
                assert!(*latest < offset, "the map is built in offset order");
                *latest = offset;
            }
            None => {
                self.bytes += key.len() as u64 + OFFSET_MAP_ENTRY_BYTES;
                self.offsets.insert(key.into(), offset);
            }
        }
    }

    pub fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.offsets.get(key).copied()
    }

    /// Memory the map holds, roughly, for the `offset_map_bytes_max` limit.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }
}

/// Whether a batch's records may enter the offset map: data, and not aborted.
pub(crate) fn is_compactable(header: &BatchHeader, aborted: &AbortedTxns) -> bool {
    !header.is_control() && header.record_count > 0 && !aborted.holds(header)
}

/// The aborted transactions a pass knows of (every one with a batch in the cleanable range),
/// by producer, to tell an aborted batch from a committed one.
#[derive(Debug, Default)]
pub(crate) struct AbortedTxns {
    /// Per producer, (first offset, marker offset) ascending; a producer's transactions never
    /// overlap.
    ranges: HashMap<i64, Vec<(Offset, Offset)>>,
    /// Each entry by its marker's offset.
    entries: HashMap<Offset, AbortedTxnEntry>,
}

impl AbortedTxns {
    pub fn new(entries: Vec<AbortedTxnEntry>) -> AbortedTxns {
        let mut aborted = AbortedTxns::default();
        for entry in entries {
            aborted
                .ranges
                .entry(entry.producer_id)
                .or_default()
                .push((entry.first_offset, entry.last_offset));
            aborted.entries.insert(entry.last_offset, entry);
        }
        for ranges in aborted.ranges.values_mut() {
            ranges.sort();
        }
        aborted
    }

    /// Whether `header` is a transactional data batch of an aborted transaction.
    pub fn holds(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(ranges) = self.ranges.get(&header.producer_id) else {
            return false;
        };
        let offset = header.base_offset;
        let after = ranges.partition_point(|&(first, _)| first <= offset);
        after.checked_sub(1).is_some_and(|at| offset < ranges[at].1)
    }

    /// The entry of the ABORT marker at `marker`.
    pub fn entry(&self, marker: Offset) -> Option<AbortedTxnEntry> {
        self.entries.get(&marker).copied()
    }
}

/// What a pass has seen of the transactions so far, batch by batch from the log start.
pub(crate) struct TxnPass<'a> {
    pub aborted: &'a AbortedTxns,
    /// Producers with a transactional batch seen since their last marker.
    with_data: HashSet<i64>,
}

impl TxnPass<'_> {
    pub fn new(aborted: &AbortedTxns) -> TxnPass<'_> {
        TxnPass {
            aborted,
            with_data: HashSet::new(),
        }
    }

    /// Notes a data batch; true if it belongs to an aborted transaction.
    fn data(&mut self, header: &BatchHeader) -> bool {
        if header.producer_id < 0 || !header.is_transactional() {
            return false;
        }
        self.with_data.insert(header.producer_id);
        self.aborted.holds(header)
    }

    /// Notes a marker; true if a batch of the transaction it ends was seen (so is still in
    /// the log, or was only now removed).
    fn marker(&mut self, header: &BatchHeader) -> bool {
        self.with_data.remove(&header.producer_id)
    }
}

/// What a producer's batches in the whole log end with: which of its batch headers must stay
/// however many records go (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerTail {
    /// The last data batch's last offset and epoch.
    pub last_data: Option<(Offset, i16)>,
    /// The newest epoch in any of its batches, markers included.
    pub latest_epoch: i16,
}

impl ProducerTail {
    /// Accounts for the producer's next batch.
    pub fn add(&mut self, header: &BatchHeader) {
        self.latest_epoch = self.latest_epoch.max(header.producer_epoch);
        if !header.is_control() {
            self.last_data = Some((header.last_offset(), header.producer_epoch));
        }
    }

    /// Whether `header`, one of the producer's batches, must keep its header.
    pub fn keeps_header(&self, header: &BatchHeader) -> bool {
        match header.is_control() {
            false => self
                .last_data
                .is_some_and(|(last, _)| last == header.last_offset()),
            true => {
                header.producer_epoch == self.latest_epoch
                    && self
                        .last_data
                        .is_none_or(|(_, epoch)| epoch < header.producer_epoch)
            }
        }
    }
}

/// The inputs of one pass's decisions.
pub(crate) struct Rules<'a> {
    pub map: &'a OffsetMap,
    /// Records at or past this offset were not mapped and are always kept.
    pub map_end: Offset,
    pub now: TimestampMs,
    pub delete_retention_ms: i64,
}

/// What becomes of one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Copied as stored.
    Whole,
    /// Replaced by these bytes: fewer records, a new delete horizon, or just the header.
    Rewritten(Vec<u8>),
    Dropped,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Filtered {
    pub kept: Kept,
    pub records_removed: u64,
    /// A kept ABORT marker's aborted-transaction index entry, for the cleaned segment.
    pub indexed: Option<AbortedTxnEntry>,
}

/// What is left of a batch that loses every record.
fn emptied(header: &BatchHeader, keep_header: bool) -> Kept {
    match (keep_header, header.record_count) {
        (false, _) => Kept::Dropped,
        (true, 0) => Kept::Whole,
        (true, _) => Kept::Rewritten(rewrite::encode_empty(header)),
    }
}

/// Applies the rules to the stored batch `bytes`, the next batch of the pass `txns` follows;
/// `keep_header` says it must not vanish even if every record goes.
pub(crate) fn filter_batch(
    header: &BatchHeader,
    bytes: &[u8],
    rules: &Rules<'_>,
    txns: &mut TxnPass<'_>,
    keep_header: bool,
) -> Result<Filtered, LogError> {
    let untouched = |kept| Filtered {
        kept,
        records_removed: 0,
        indexed: None,
    };
    if header.is_control() {
        return filter_marker(header, bytes, rules, txns, keep_header);
    }
    if txns.data(header) {
        return Ok(Filtered {
            kept: emptied(header, keep_header),
            records_removed: header.record_count.max(0) as u64,
            indexed: None,
        });
    }
    if header.record_count == 0 {
        return Ok(untouched(emptied(header, keep_header)));
    }
    let horizon = rewrite::delete_horizon(header);
    let records = rewrite::decode_records(header, bytes)?;
    let total = records.len();
    let retained: Vec<Record> = records
        .into_iter()
        .filter(|record| keeps(record, horizon, rules))
        .collect();
    let records_removed = (total - retained.len()) as u64;
    let has_tombstone = retained.iter().any(|record| record.value.is_none());
    let kept = if retained.is_empty() {
        match keep_header {
            true => Kept::Rewritten(rewrite::encode_empty(header)),
            false => Kept::Dropped,
        }
    } else if has_tombstone && horizon.is_none() {
        let horizon = TimestampMs(rules.now.0.saturating_add(rules.delete_retention_ms));
        Kept::Rewritten(rewrite::encode_retained(header, &retained, Some(horizon))?)
    } else if records_removed > 0 {
        Kept::Rewritten(rewrite::encode_retained(header, &retained, horizon)?)
    } else {
        Kept::Whole
    };
    Ok(Filtered {
        kept,
        records_removed,
        indexed: None,
    })
}

/// A control batch: kept while its transaction has batches in the log, then given a delete
/// horizon, then removed once the horizon has passed (see the module docs).
fn filter_marker(
    header: &BatchHeader,
    bytes: &[u8],
    rules: &Rules<'_>,
    txns: &mut TxnPass<'_>,
    keep_header: bool,
) -> Result<Filtered, LogError> {
    let with_data = txns.marker(header);
    let mut filtered = Filtered {
        kept: Kept::Whole,
        records_removed: 0,
        indexed: None,
    };
    if header.record_count == 0 {
        // A marker an earlier pass removed, kept for its header.
        filtered.kept = emptied(header, keep_header);
        return Ok(filtered);
    }
    let Ok(marker) = read_marker(header, bytes) else {
        // A control batch of a kind this broker does not know: kept as it is.
        return Ok(filtered);
    };
    if with_data {
        if marker.kind == MarkerType::Abort {
            filtered.indexed = txns.aborted.entry(header.base_offset);
        }
        return Ok(filtered);
    }
    match rewrite::delete_horizon(header) {
        None => {
            let horizon = TimestampMs(rules.now.0.saturating_add(rules.delete_retention_ms));
            let records = rewrite::decode_records(header, bytes)?;
            filtered.kept =
                Kept::Rewritten(rewrite::encode_retained(header, &records, Some(horizon))?);
        }
        Some(horizon) if rules.now >= horizon => {
            filtered.kept = emptied(header, keep_header);
            filtered.records_removed = 1;
        }
        Some(_) => {}
    }
    Ok(filtered)
}

fn keeps(record: &Record, horizon: Option<TimestampMs>, rules: &Rules<'_>) -> bool {
    let offset = Offset(record.offset);
    if offset >= rules.map_end {
        return true;
    }
    let Some(key) = &record.key else {
        return false;
    };
    let latest = rules.map.latest(key).is_none_or(|latest| offset >= latest);
    let expired_tombstone =
        record.value.is_none() && horizon.is_some_and(|horizon| rules.now >= horizon);
    latest && !expired_tombstone
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use strom_protocol::batch::validate;

    /// A batch at offset 10 of (key, value) records; `None` keys and values are absent.
    fn batch(records: &[(Option<&str>, Option<&str>)], producer_id: i64) -> (Vec<u8>, BatchHeader) {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(at, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: 10 + at as i64,
                sequence: at as i32,
                timestamp: 5_000,
                key: key.map(|key| Bytes::from(key.to_string())),
                value: value.map(|value| Bytes::from(value.to_string())),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buffer = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::Snappy,
        };
        RecordBatchEncoder::encode(&mut buffer, &records, &options).unwrap();
        let header = validate(&buffer).unwrap();
        (buffer.to_vec(), header)
    }

    /// [`filter_batch`] for a batch outside any transaction.
    fn filter(
        header: &BatchHeader,
        bytes: &[u8],
        rules: &Rules<'_>,
        keep_header: bool,
    ) -> Result<Filtered, LogError> {
        let aborted = AbortedTxns::default();
        filter_batch(
            header,
            bytes,
            rules,
            &mut TxnPass::new(&aborted),
            keep_header,
        )
    }

    fn map(entries: &[(&str, i64)]) -> OffsetMap {
        let mut map = OffsetMap::default();
        for &(key, offset) in entries {
            map.insert(key.as_bytes(), Offset(offset));
        }
        map
    }

    fn rules(map: &OffsetMap, now: i64) -> Rules<'_> {
        Rules {
            map,
            map_end: Offset(100),
            now: TimestampMs(now),
            delete_retention_ms: 1_000,
        }
    }

    type Pair = (Option<String>, Option<String>);

    /// The (key, value) pairs of a rewritten batch, and its header.
    fn contents(bytes: &[u8]) -> (Vec<Pair>, BatchHeader) {
        let header = validate(bytes).unwrap();
        let text = |bytes: Option<Bytes>| bytes.map(|b| String::from_utf8(b.to_vec()).unwrap());
        let records = rewrite::decode_records(&header, bytes).unwrap();
        let pairs = records
            .into_iter()
            .map(|record| (text(record.key), text(record.value)))
            .collect();
        (pairs, header)
    }

    #[test]
    fn only_the_latest_record_of_each_key_stays_and_keyless_records_go() {
        let (bytes, header) = batch(
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("1")),
                (None, Some("x")),
                (Some("a"), Some("2")),
            ],
            -1,
        );
        let map = map(&[("a", 13), ("b", 11)]);
        let filtered = filter(&header, &bytes, &rules(&map, 0), false).unwrap();
        assert_eq!(filtered.records_removed, 2);
        let Kept::Rewritten(rewritten) = filtered.kept else {
            panic!("{filtered:?}")
        };
        let (pairs, new) = contents(&rewritten);
        let pair = |key: &str, value: &str| (Some(key.to_string()), Some(value.to_string()));
        assert_eq!(pairs, vec![pair("b", "1"), pair("a", "2")]);
        assert_eq!(
            (new.base_offset, new.last_offset()),
            (Offset(10), Offset(13))
        );
    }

    #[test]
    fn a_batch_with_nothing_to_remove_is_kept_whole() {
        let (bytes, header) = batch(&[(Some("a"), Some("1")), (Some("b"), Some("1"))], -1);
        let map = map(&[("a", 10)]);
        let filtered = filter(&header, &bytes, &rules(&map, 0), false).unwrap();
        assert_eq!(
            filtered,
            Filtered {
                kept: Kept::Whole,
                records_removed: 0,
                indexed: None
            }
        );
    }

    #[test]
    fn tombstones_get_a_horizon_on_the_first_pass_and_go_once_it_has_passed() {
        let (bytes, header) = batch(&[(Some("a"), None), (Some("b"), Some("1"))], -1);
        let map = map(&[("a", 10), ("b", 11)]);
        let first = filter(&header, &bytes, &rules(&map, 7_000), false).unwrap();
        let Kept::Rewritten(stamped) = first.kept else {
            panic!("{first:?}")
        };
        assert_eq!(first.records_removed, 0);
        let stamped_header = validate(&stamped).unwrap();
        assert_eq!(
            rewrite::delete_horizon(&stamped_header),
            Some(TimestampMs(8_000))
        );
        // Before the horizon the stamped batch is left as it is.
        let early = filter(&stamped_header, &stamped, &rules(&map, 7_999), false).unwrap();
        assert_eq!(early.kept, Kept::Whole);
        // At the horizon the tombstone goes; the horizon stays on what is left.
        let late = filter(&stamped_header, &stamped, &rules(&map, 8_000), false).unwrap();
        assert_eq!(late.records_removed, 1);
        let Kept::Rewritten(rest) = late.kept else {
            panic!("{late:?}")
        };
        let (pairs, rest_header) = contents(&rest);
        assert_eq!(pairs, vec![(Some("b".into()), Some("1".into()))]);
        assert_eq!(
            rewrite::delete_horizon(&rest_header),
            Some(TimestampMs(8_000))
        );
    }

    #[test]
    fn an_emptied_batch_goes_unless_its_header_must_stay() {
        let (bytes, header) = batch(&[(Some("a"), Some("1")), (None, Some("2"))], 77);
        let map = map(&[("a", 50)]);
        let gone = filter(&header, &bytes, &rules(&map, 0), false).unwrap();
        assert_eq!(
            gone,
            Filtered {
                kept: Kept::Dropped,
                records_removed: 2,
                indexed: None
            }
        );
        let kept = filter(&header, &bytes, &rules(&map, 0), true).unwrap();
        let Kept::Rewritten(empty) = kept.kept else {
            panic!("{kept:?}")
        };
        let new = validate(&empty).unwrap();
        assert_eq!(
            (new.record_count, new.last_offset(), new.producer_id),
            (0, Offset(11), 77)
        );
        // An empty batch from an earlier pass stays or goes by the same rule, untouched.
        let again = filter(&new, &empty, &rules(&map, 0), true).unwrap();
        assert_eq!(again.kept, Kept::Whole);
        let dropped = filter(&new, &empty, &rules(&map, 0), false).unwrap();
        assert_eq!(dropped.kept, Kept::Dropped);
    }

    #[test]
    fn records_past_the_mapped_range_are_kept_whatever_they_are() {
        let (bytes, header) = batch(&[(None, Some("1")), (Some("a"), None)], -1);
        let map = map(&[("a", 99)]);
        let past = Rules {
            map_end: Offset(10),
            ..rules(&map, 0)
        };
        let filtered = filter(&header, &bytes, &past, false).unwrap();
        assert_eq!(filtered.records_removed, 0);
        // It holds a tombstone without a horizon, so it is stamped even so.
        assert!(matches!(filtered.kept, Kept::Rewritten(_)));
    }

    #[test]
    fn the_map_keeps_the_highest_offset_and_counts_its_memory() {
        let mut map = map(&[("a", 1), ("bb", 2), ("a", 3)]);
        assert_eq!(map.latest(b"a"), Some(Offset(3)));
        assert_eq!(map.latest(b"c"), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.bytes(), 3 + 2 * OFFSET_MAP_ENTRY_BYTES);
        map.insert(b"bb", Offset(4));
        assert_eq!(map.bytes(), 3 + 2 * OFFSET_MAP_ENTRY_BYTES);
    }
}
