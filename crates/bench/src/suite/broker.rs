//! The suite's broker: a `strom server` child process on a free loopback port with a data
//! directory of its own, and what `/proc` says about it (CPU time, memory).
//!
//! Lifecycle: [`BrokerProcess::start`] spawns it and waits until its port accepts connections;
//! [`BrokerProcess::stop`] sends SIGTERM and waits for a clean exit; dropping a process that
//! is still running kills it. Only the suite's thread touches it.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BenchError;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_BYTES: usize = 4_000;

pub struct BrokerProcess {
    child: Option<Child>,
    pub address: String,
    pub pid: u32,
    log_path: PathBuf,
    clock_ticks_per_s: f64,
}

impl BrokerProcess {
    /// Starts `binary server` on a free port of 127.0.0.1 with `data_dir`, its output going to
    /// `log_path`, and waits until it accepts connections.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        log_path: &Path,
    ) -> Result<BrokerProcess, BenchError> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let log = File::create(log_path)
            .map_err(BenchError::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(BenchError::io("duplicating the broker log handle"))?;
        let child = Command::new(binary)
            .args(["server", "--listen", &address, "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(BenchError::io(format!("starting {}", binary.display())))?;
        let mut broker = BrokerProcess {
            pid: child.id(),
            child: Some(child),
            address,
            log_path: log_path.to_path_buf(),
            clock_ticks_per_s: clock_ticks_per_s(),
        };
        broker.wait_until_accepting()?;
        Ok(broker)
    }

    fn wait_until_accepting(&mut self) -> Result<(), BenchError> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                return Err(BenchError::Suite(format!(
                    "the broker exited with {status} while starting:\n{}",
                    self.log_tail()
                )));
            }
            if TcpStream::connect(&self.address).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(BenchError::Suite(format!(
            "the broker did not accept connections on {} within {} s:\n{}",
            self.address,
            START_TIMEOUT.as_secs(),
            self.log_tail()
        )))
    }

    /// User plus system CPU seconds the broker has used so far.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.pid), self.clock_ticks_per_s)
    }

    /// The broker's system (kernel) CPU time so far, in seconds.
    pub fn system_cpu_seconds(&self) -> Result<f64, BenchError> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat =
            std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
        stat_user_system_ticks(&stat)
            .map(|(_, system)| system as f64 / self.clock_ticks_per_s)
            .ok_or_else(|| BenchError::Suite(format!("cannot read the CPU times in {path}")))
    }

    /// The broker's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
        status_kib(&status, "VmHWM")
            .map(|kib| kib * 1024)
            .ok_or_else(|| BenchError::Suite(format!("{path} has no VmHWM line")))
    }

    /// Sends SIGTERM and waits for the broker to exit; a broker that does not exit in time is
    /// killed and reported.
    pub fn stop(mut self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Some(status) = child
                .try_wait()
                .map_err(BenchError::io("waiting for the broker"))?
            {
                if status.success() {
                    return Ok(());
                }
                return Err(BenchError::Suite(format!(
                    "the broker exited with {status} on SIGTERM:\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(BenchError::Suite(format!(
            "the broker did not exit within {} s of SIGTERM and was killed",
            STOP_TIMEOUT.as_secs()
        )))
    }

    /// The end of the broker's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(LOG_TAIL_BYTES)..];
        String::from_utf8_lossy(tail).into_owned()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// User plus system CPU seconds of the process whose stat file is at `path`
/// (`/proc/self/stat` for the bench itself).
pub fn process_cpu_seconds(path: &str, clock_ticks_per_s: f64) -> Result<f64, BenchError> {
    let stat = std::fs::read_to_string(path).map_err(BenchError::io(format!("reading {path}")))?;
    stat_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_s)
        .ok_or_else(|| BenchError::Suite(format!("cannot read the CPU times in {path}")))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may hold spaces, so fields count from its last ')'.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    stat_user_system_ticks(stat).map(|(user, system)| user + system)
}

/// utime and stime of a `/proc/PID/stat` line, in clock ticks.
pub fn stat_user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name come field 3 (state) onwards: utime is field 14, index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

/// A `Name:   1234 kB` line of `/proc/PID/status`, in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Clock ticks per second of `/proc` CPU times: `getconf CLK_TCK`, else Linux's usual 100.
pub fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, BenchError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(BenchError::io("finding a free port"))?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_a_stat_line() {
        let stat = "4242 (strom server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 \
                    12345 1000000 2000 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(325));
        assert_eq!(stat_user_system_ticks(stat).map(|(u, s)| u + s), Some(325));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert_eq!(stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn memory_from_a_status_file() {
        let status =
            "Name:\tstrom\nVmPeak:\t  900000 kB\nVmHWM:\t   52340 kB\nVmRSS:\t   50000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(52_340));
        assert_eq!(status_kib(status, "VmRSS"), Some(50_000));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn the_bench_reads_its_own_cpu_time() {
        let ticks = clock_ticks_per_s();
        assert!(ticks > 0.0);
        assert!(process_cpu_seconds("/proc/self/stat", ticks).unwrap() >= 0.0);
    }
}
