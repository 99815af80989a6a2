//! The machine's own limits, measured in the same run as the broker's figures: a plain TCP
//! blast over loopback, sequential writes with and without fdatasync, and the latency of one
//! 4 KiB append + fdatasync. Blocking code on plain threads; no broker involved.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::BenchError;
use crate::stats::{Latencies, LatencySummary};

/// How much each measurement does.
#[derive(Debug, Clone, Copy)]
pub struct MachineSizes {
    pub loopback_time: Duration,
    /// Bytes written without fdatasync, in 1 MiB writes.
    pub buffered_bytes: u64,
    /// Bytes written with an fdatasync after every 1 MiB write.
    pub synced_bytes: u64,
    pub fsync_samples: usize,
}

impl MachineSizes {
    pub const FULL: MachineSizes = MachineSizes {
        loopback_time: Duration::from_secs(3),
        buffered_bytes: 1 << 30,
        synced_bytes: 512 << 20,
        fsync_samples: 200,
    };
    pub const QUICK: MachineSizes = MachineSizes {
        loopback_time: Duration::from_millis(300),
        buffered_bytes: 32 << 20,
        synced_bytes: 16 << 20,
        fsync_samples: 20,
    };
}

/// The machine's limits.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MachineLimits {
    /// One TCP stream over loopback, 256 KiB writes, MB/s (10^6 bytes).
    pub loopback_mb_per_s: f64,
    /// 1 MiB sequential appends, no fdatasync (into the page cache), MB/s.
    pub disk_buffered_mb_per_s: f64,
    /// 1 MiB sequential appends, fdatasync after each, MB/s.
    pub disk_synced_mb_per_s: f64,
    /// One 4 KiB append followed by fdatasync, per sample, samples back to back.
    pub fsync_4k: LatencySummary,
    /// The same with a pause of [`FSYNC_SPACED_GAP`] before each sample: a single fsync after
    /// the disk and the journal have been idle, as the produce-latency target's case issues
    /// them (one per linger of 5 ms). On this project's VM it costs about twice as much.
    pub fsync_4k_spaced: LatencySummary,
}

const LOOPBACK_WRITE_BYTES: usize = 256 * 1024;
const DISK_WRITE_BYTES: usize = 1 << 20;
const FSYNC_WRITE_BYTES: usize = 4096;

/// The pause before each spaced fsync sample: the bench's default linger.
pub const FSYNC_SPACED_GAP: Duration = Duration::from_millis(5);

/// Measures everything, with the disk figures in `dir` (the data directory's filesystem).
pub fn measure(dir: &Path, sizes: MachineSizes) -> Result<MachineLimits, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let loopback_mb_per_s = loopback(sizes.loopback_time)?;
    sync_everything();
    let disk_buffered_mb_per_s = disk_write(
        &dir.join("probe-buffered"),
        Amount::Bytes(sizes.buffered_bytes),
        false,
    )?;
    sync_everything();
    let disk_synced_mb_per_s = disk_write(
        &dir.join("probe-synced"),
        Amount::Bytes(sizes.synced_bytes),
        true,
    )?;
    let fsync_4k = fsync_latency(
        &dir.join("probe-fsync"),
        sizes.fsync_samples,
        Duration::ZERO,
    )?;
    let fsync_4k_spaced = fsync_latency(
        &dir.join("probe-fsync"),
        sizes.fsync_samples,
        FSYNC_SPACED_GAP,
    )?;
    Ok(MachineLimits {
        loopback_mb_per_s,
        disk_buffered_mb_per_s,
        disk_synced_mb_per_s,
        fsync_4k,
        fsync_4k_spaced,
    })
}

/// Flushes every dirty page of the machine (the `sync` command), so that one measurement's
/// write-back does not land in the next one.
pub fn sync_everything() {
    let _ = std::process::Command::new("sync").status();
}

/// Blasts bytes from one socket to another over loopback for `time`; MB/s received.
pub fn loopback(time: Duration) -> Result<f64, BenchError> {
    let io = |what: &str| BenchError::io(format!("loopback blast: {what}"));
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind"))?;
    let address = listener.local_addr().map_err(io("local address"))?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; LOOPBACK_WRITE_BYTES];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buffer)? {
                0 => return Ok(received),
                read => received += read as u64,
            }
        }
    });
    let mut stream = TcpStream::connect(address).map_err(io("connect"))?;
    let buffer = vec![0x5au8; LOOPBACK_WRITE_BYTES];
    let started = Instant::now();
    while started.elapsed() < time {
        stream.write_all(&buffer).map_err(io("write"))?;
    }
    stream.shutdown(Shutdown::Write).map_err(io("shutdown"))?;
    let received = reader
        .join()
        .expect("the loopback reader does not panic")
        .map_err(io("read"))?;
    Ok(received as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// How much a disk write probe writes.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    Bytes(u64),
    /// For this long; the file starts over at every GiB so that a long probe needs no more
    /// free space than that.
    Time(Duration),
}

/// Largest file a timed probe grows before starting over.
const TIMED_PROBE_FILE_BYTES: u64 = 1 << 30;

/// Appends 1 MiB writes to a new file, with an fdatasync after each write or none, for the
/// given amount; MB/s over the writes (and syncs). The file is synced and removed afterwards.
pub fn disk_write(path: &Path, amount: Amount, sync_each: bool) -> Result<f64, BenchError> {
    let io = |what: &str| BenchError::io(format!("disk write test in {}: {what}", path.display()));
    let mut file = new_file(path).map_err(io("create"))?;
    let mut buffer = vec![0u8; DISK_WRITE_BYTES];
    crate::batch::XorShift::new(7).fill_letters(&mut buffer);
    let (mut written, mut in_file) = (0u64, 0u64);
    let started = Instant::now();
    loop {
        let done = match amount {
            Amount::Bytes(total) => written >= total.max(1),
            Amount::Time(time) => started.elapsed() >= time,
        };
        if done {
            break;
        }
        if in_file >= TIMED_PROBE_FILE_BYTES {
            file.set_len(0).map_err(io("truncate"))?;
            file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
            in_file = 0;
        }
        file.write_all(&buffer).map_err(io("write"))?;
        if sync_each {
            file.sync_data().map_err(io("fdatasync"))?;
        }
        written += DISK_WRITE_BYTES as u64;
        in_file += DISK_WRITE_BYTES as u64;
    }
    let elapsed = started.elapsed();
    file.sync_data().map_err(io("fdatasync"))?;
    drop(file);
    std::fs::remove_file(path).map_err(io("remove"))?;
    Ok(written as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Appends 4 KiB and fdatasyncs, `samples` times, each after a pause of `gap`; the latency of
/// each append + sync.
pub fn fsync_latency(
    path: &Path,
    samples: usize,
    gap: Duration,
) -> Result<LatencySummary, BenchError> {
    let io = |what: &str| BenchError::io(format!("fsync test in {}: {what}", path.display()));
    let mut file = new_file(path).map_err(io("create"))?;
    let buffer = vec![0x41u8; FSYNC_WRITE_BYTES];
    let mut latencies = Latencies::default();
    for _ in 0..samples.max(1) {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let started = Instant::now();
        file.write_all(&buffer).map_err(io("write"))?;
        file.sync_data().map_err(io("fdatasync"))?;
        latencies.record(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(path).map_err(io("remove"))?;
    Ok(latencies.summary().expect("at least one sample"))
}

fn new_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_measurement_gives_a_figure_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = measure(
            dir.path(),
            MachineSizes {
                loopback_time: Duration::from_millis(50),
                buffered_bytes: 2 << 20,
                synced_bytes: 1 << 20,
                fsync_samples: 3,
            },
        )
        .unwrap();
        assert!(limits.loopback_mb_per_s > 0.0);
        assert!(limits.disk_buffered_mb_per_s > 0.0);
        assert!(limits.disk_synced_mb_per_s > 0.0);
        assert_eq!(limits.fsync_4k.samples, 3);
        assert_eq!(limits.fsync_4k_spaced.samples, 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_timed_probe_writes_for_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        let started = Instant::now();
        let mb_per_s = disk_write(&path, Amount::Time(Duration::from_millis(200)), true).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(mb_per_s > 0.0);
        assert!(!path.exists());
    }
}
