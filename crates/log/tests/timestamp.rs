//! ListOffsets by timestamp: `offset_for_timestamp` and `max_timestamp`, against a brute-force
//! search over every record, with uncompressed and compressed batches.

#[path = "../src/test_support.rs"]
mod test_support;

use kafka_protocol::records::Compression;
use proptest::prelude::*;
use strom_log::{Log, LogConfig};
use strom_types::{Offset, TimestampMs};
use test_support::{batch, encode_batch};

const COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// Appends one batch per entry of `batches` (the record timestamps of each batch) and returns
/// every record's (offset, timestamp).
fn append_all(
    log: &mut Log,
    batches: &[Vec<i64>],
    compression: Compression,
) -> Vec<(Offset, TimestampMs)> {
    let mut records = Vec::new();
    for timestamps in batches {
        let mut bytes = encode_batch(0, timestamps, 40, compression);
        let info = log.append(&mut bytes, None).unwrap();
        for (at, &timestamp) in timestamps.iter().enumerate() {
            records.push((info.base_offset.plus(at as i64), TimestampMs(timestamp)));
        }
    }
    records
}

fn brute_force(
    records: &[(Offset, TimestampMs)],
    target: TimestampMs,
) -> Option<(Offset, TimestampMs)> {
    records
        .iter()
        .copied()
        .find(|&(_, timestamp)| timestamp >= target)
}

#[test]
fn finds_the_first_record_at_or_after_a_time_in_every_compression() {
    for compression in COMPRESSIONS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_segments()).unwrap();
        // Timestamps rise overall but not within batches, as with several producer threads.
        let batches: Vec<Vec<i64>> = (0..30)
            .map(|n| {
                vec![
                    1_000 * n + 500,
                    1_000 * n + 100,
                    1_000 * n + 900,
                    1_000 * n + 300,
                ]
            })
            .collect();
        let records = append_all(&mut log, &batches, compression);
        assert!(
            log.segment_count() > 2,
            "{compression:?}: the search must cross segments"
        );
        for target in [0, 100, 450, 501, 900, 901, 15_350, 29_900] {
            let found = log.offset_for_timestamp(TimestampMs(target)).unwrap();
            assert_eq!(
                found,
                brute_force(&records, TimestampMs(target)),
                "{compression:?} target {target}"
            );
        }
        assert_eq!(log.offset_for_timestamp(TimestampMs(29_901)).unwrap(), None);
        assert_eq!(
            log.offset_for_timestamp(TimestampMs(15_600)).unwrap(),
            Some((Offset(62), TimestampMs(15_900)))
        );
    }
}

#[test]
fn log_append_time_batches_answer_with_their_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(0, 3, 1, 10), Some(TimestampMs(5_000)))
        .unwrap();
    log.append(&mut batch(0, 3, 1, 10), Some(TimestampMs(6_000)))
        .unwrap();
    assert_eq!(
        log.offset_for_timestamp(TimestampMs(5_500)).unwrap(),
        Some((Offset(3), TimestampMs(6_000)))
    );
    assert_eq!(
        log.offset_for_timestamp(TimestampMs(0)).unwrap(),
        Some((Offset(0), TimestampMs(5_000)))
    );
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some((Offset(3), TimestampMs(6_000)))
    );
}

#[test]
fn max_timestamp_names_the_record_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    let mut batches: Vec<Vec<i64>> = (0..20).map(|n| vec![100 * n, 100 * n + 1]).collect();
    batches[7] = vec![50, 99_999, 70];
    let records = append_all(&mut log, &batches, Compression::Zstd);
    let expected = records
        .iter()
        .copied()
        .find(|&(_, timestamp)| timestamp == TimestampMs(99_999));
    assert_eq!(log.max_timestamp().unwrap(), expected);
    assert_eq!(expected.map(|(offset, _)| offset), Some(Offset(15)));
}

#[test]
fn lookups_agree_after_reopening_from_the_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    let batches: Vec<Vec<i64>> = (0..40).map(|n| vec![10 * n, 10 * n + 5]).collect();
    let records = append_all(&mut log, &batches, Compression::Lz4);
    log.close().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for target in (0..400).step_by(7) {
        assert_eq!(
            log.offset_for_timestamp(TimestampMs(target)).unwrap(),
            brute_force(&records, TimestampMs(target))
        );
    }
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some((Offset(79), TimestampMs(395)))
    );
}

fn compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(COMPRESSIONS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn offset_for_timestamp_matches_a_brute_force_search(
        batches in prop::collection::vec(prop::collection::vec(0i64..5_000, 1..6), 1..40),
        targets in prop::collection::vec(-10i64..5_100, 1..20),
        compression in compression(),
        segment_bytes in 450u64..3_000,
        index_interval_bytes in 0u32..1_000,
        reopen in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        let records = append_all(&mut log, &batches, compression);
        if reopen {
            log.close().unwrap();
            log = Log::open(dir.path(), config).unwrap();
        }
        for target in targets {
            let found = log.offset_for_timestamp(TimestampMs(target)).unwrap();
            prop_assert_eq!(found, brute_force(&records, TimestampMs(target)), "target {}", target);
        }
        let newest = records.iter().map(|&(_, timestamp)| timestamp).max().unwrap();
        prop_assert_eq!(log.max_timestamp().unwrap(), brute_force(&records, newest));
    }
}
