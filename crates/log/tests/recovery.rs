//! Crash recovery: damage the files of a closed or killed log, reopen it, and check that the good
//! prefix is served, the log end offset is right and appends continue densely.

#[path = "../src/test_support.rs"]
mod test_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strom_log::{Log, LogConfig, LogError};
use strom_protocol::batch::{validate, Batches};
use strom_types::{Offset, TimestampMs};
use test_support::batch;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 500,
        ..LogConfig::default()
    }
}

fn file(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// The base offsets of the `.log` files in `dir`, ascending.
fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|stem| stem.parse().unwrap())
        })
        .collect();
    bases.sort();
    bases
}

/// Appends `count` 3-record batches and returns each stored batch's bytes, in offset order.
/// The log is dropped without `close`, as if the process had been killed.
fn write_batches(dir: &Path, count: i64) -> Vec<Vec<u8>> {
    let mut log = Log::open(dir, config()).unwrap();
    let mut stored = Vec::new();
    for n in 0..count {
        let mut bytes = batch(0, 3, 1_000 + n, 200);
        log.append(&mut bytes, None).unwrap();
        stored.push(bytes);
    }
    stored
}

/// Everything the log serves, checking that each batch is whole and passes its CRC.
fn read_everything(log: &Log) -> Vec<Vec<u8>> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    Batches::new(&read.records)
        .map(|(_, range)| {
            let bytes = read.records[range].to_vec();
            validate(&bytes).unwrap();
            bytes
        })
        .collect()
}

/// Runs `f` with a subscriber that captures what it logs.
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (result, text)
}

fn assert_appends_continue_at(log: &mut Log, offset: i64) {
    let info = log.append(&mut batch(0, 2, 9_000, 10), None).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(offset), Offset(offset + 1))
    );
    assert_eq!(log.log_end_offset(), Offset(offset + 2));
}

#[test]
fn a_torn_last_batch_is_cut_off_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let stored = write_batches(dir.path(), 12);
    let active_base = *segment_bases(dir.path()).last().unwrap();
    assert!(active_base > 0, "the log has several segments");
    let active = file(dir.path(), active_base, "log");
    let full = std::fs::metadata(&active).unwrap().len();
    let good = full - stored.last().unwrap().len() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(full - 17)
        .unwrap();

    let (log, logs) = capture_logs(|| Log::open(dir.path(), config()));
    let mut log = log.unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains(&format!("{active_base:020}.log")), "{logs}");
    assert!(logs.contains(&format!("at byte {good}")), "{logs}");
    assert!(
        logs.contains(&format!("dropping {} bytes", full - 17 - good)),
        "{logs}"
    );
    assert!(logs.contains("torn"), "{logs}");
    assert_eq!(log.log_end_offset(), Offset(33));
    assert_eq!(read_everything(&log), stored[..11].to_vec());
    assert_eq!(std::fs::metadata(&active).unwrap().len(), good);
    assert_appends_continue_at(&mut log, 33);
}

#[test]
fn a_flipped_byte_in_the_active_segment_drops_that_batch_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let stored = write_batches(dir.path(), 14);
    let bases = segment_bases(dir.path());
    let active_base = *bases.last().unwrap();
    let first_in_active = (active_base / 3) as usize;
    assert!(
        stored.len() - first_in_active >= 3,
        "the active segment holds at least three batches"
    );
    let path = file(dir.path(), active_base, "log");
    let mut bytes = std::fs::read(&path).unwrap();
    let second = stored[first_in_active].len();
    bytes[second + 100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let (log, logs) = capture_logs(|| Log::open(dir.path(), config()));
    let mut log = log.unwrap();
    assert!(logs.contains("CRC mismatch"), "{logs}");
    assert!(logs.contains(&format!("at byte {second}")), "{logs}");
    assert_eq!(log.segment_count(), bases.len());
    let kept = first_in_active + 1;
    assert_eq!(log.log_end_offset(), Offset(3 * kept as i64));
    assert_eq!(read_everything(&log), stored[..kept].to_vec());
    assert_appends_continue_at(&mut log, 3 * kept as i64);
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let stored = write_batches(dir.path(), 3);
    let path = file(dir.path(), 0, "log");
    let mut log_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    log_file.write_all(&[0u8; 4096]).unwrap();
    drop(log_file);
    let mut log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(read_everything(&log), stored);
    assert_appends_continue_at(&mut log, 9);
    assert_eq!(
        log.read(Offset(9), usize::MAX, Offset(11))
            .unwrap()
            .records
            .len(),
        batch(0, 2, 9_000, 10).len()
    );
}

#[test]
fn missing_or_garbled_indexes_of_inactive_segments_are_rebuilt() {
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 5] = [
        ("deleted index", |path| {
            std::fs::remove_file(path.with_extension("index")).unwrap()
        }),
        ("deleted time index", |path| {
            std::fs::remove_file(path.with_extension("timeindex")).unwrap()
        }),
        ("index of odd size", |path| {
            append(&path.with_extension("index"), &[1, 2, 3])
        }),
        ("index past the end", |path| {
            append(&path.with_extension("index"), &[0, 0, 0, 90, 0, 1, 0, 0])
        }),
        ("index not monotonic", |path| {
            let index = path.with_extension("index");
            let mut bytes = std::fs::read(&index).unwrap();
            bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
            std::fs::write(index, bytes).unwrap();
        }),
    ];
    for (name, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_batches(dir.path(), 12);
        let log = Log::open(dir.path(), config()).unwrap();
        log.close().unwrap();
        let first = file(dir.path(), 0, "log");
        let index_before = std::fs::read(first.with_extension("index")).unwrap();
        let time_index_before = std::fs::read(first.with_extension("timeindex")).unwrap();
        assert!(!index_before.is_empty() && !time_index_before.is_empty());
        damage(&first);

        let (log, logs) = capture_logs(|| Log::open(dir.path(), config()));
        let mut log = log.unwrap();
        assert!(logs.contains("rebuilding the indexes"), "{name}: {logs}");
        assert_eq!(read_everything(&log), stored, "{name}");
        assert_eq!(
            std::fs::read(first.with_extension("index")).unwrap(),
            index_before,
            "{name}"
        );
        assert_eq!(
            std::fs::read(first.with_extension("timeindex")).unwrap(),
            time_index_before,
            "{name}"
        );
        // Batch n holds timestamps 1000 + n .. 1002 + n: 1_004 is first reached by batch 2's last record.
        assert_eq!(
            log.offset_for_timestamp(TimestampMs(1_004)).unwrap(),
            Some((Offset(8), TimestampMs(1_004)))
        );
        assert_appends_continue_at(&mut log, 36);
    }
}

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn a_damaged_inactive_segment_is_cut_and_the_segments_after_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let stored = write_batches(dir.path(), 12);
    let log = Log::open(dir.path(), config()).unwrap();
    let segments = log.segment_count();
    assert!(segments >= 3);
    drop(log);
    let first = file(dir.path(), 0, "log");
    let first_size = std::fs::metadata(&first).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(first_size - 30)
        .unwrap();
    let second_base = segment_bases(dir.path())[1];

    let (log, logs) = capture_logs(|| Log::open(dir.path(), config()));
    let mut log = log.unwrap();
    assert!(
        logs.contains("deleting a segment that follows a damaged one"),
        "{logs}"
    );
    let kept = (first_size as usize / stored[0].len()) - 1;
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), Offset(3 * kept as i64));
    assert_eq!(read_everything(&log), stored[..kept].to_vec());
    assert!(!file(dir.path(), second_base, "log").exists());
    assert_eq!(segment_bases(dir.path()), vec![0]);
    assert_appends_continue_at(&mut log, 3 * kept as i64);
}

#[test]
fn a_missing_segment_in_the_middle_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), 12);
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 3);
    std::fs::remove_file(file(dir.path(), bases[1], "log")).unwrap();
    let error = Log::open(dir.path(), config())
        .err()
        .expect("a gap cannot be repaired");
    assert!(error.is_fatal());
    assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("offsets must be dense"),
        "{error}"
    );
}

#[test]
fn leftover_index_files_are_removed_and_a_new_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let partition = dir.path().join("nested").join("topic-3");
    let log = Log::open(&partition, config()).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (Offset(0), Offset(0), 0)
    );
    drop(log);
    std::fs::write(file(&partition, 500, "index"), [0u8; 8]).unwrap();
    std::fs::write(partition.join("leader-epoch-checkpoint"), b"0\n0\n").unwrap();
    let log = Log::open(&partition, config()).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(!file(&partition, 500, "index").exists());
    assert!(
        partition.join("leader-epoch-checkpoint").exists(),
        "files that are not segments are left alone"
    );
}

#[test]
fn a_clean_reopen_keeps_everything_and_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let stored = write_batches(dir.path(), 20);
    let mut log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.durable_offset(), Offset(60));
    assert!(log.sync_handle().is_empty());
    assert_eq!(read_everything(&log), stored);
    assert_appends_continue_at(&mut log, 60);
    assert_eq!(log.durable_offset(), Offset(60));
}
