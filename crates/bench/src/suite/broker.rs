//! The suite's brokers: `strom server` child processes on free loopback ports, each with a
//! data directory of its own, and what `/proc` says about them (CPU time, memory).
//!
//! Lifecycle: [`Brokers::single`] starts one broker, [`Brokers::three_voters`] three combined
//! broker + controller nodes (a three-voter metadata quorum); each waits until its brokers
//! serve. [`Brokers::stop`] sends SIGTERM to every node at once (a node stopping alone may wait
//! for a quorum of peers that stop after it) and waits for clean exits. An [`OwnBroker`] is
//! one broker a case starts, stops, kills and starts again itself, under an open-file limit.
//! Dropping a process that is still running kills it. Only the suite's thread touches them.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{setrlimit, Resource, Rlimit};
use strom_client::SecurityConfig;

use super::security::{Listener, SecureListeners};
use crate::error::BenchError;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a three-node cluster may take, once its ports accept, until every node's
/// metadata lists all three brokers (a controller elected, every broker registered).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);
const REGISTER_POLL: Duration = Duration::from_millis(200);
const LOG_TAIL_BYTES: usize = 4_000;
/// The single broker's `max.connections`: room for the idle-connections case's 10,000
/// connections and the suite's own (the default is 4,096).
const SINGLE_BROKER_SETTINGS: [&str; 2] = ["--set", "max.connections=12000"];

/// The broker, or the nodes of the cluster, a phase of the suite runs against.
pub struct Brokers {
    nodes: Vec<BrokerProcess>,
    /// The single broker's SSL and SASL_SSL listeners, when it was started with them.
    secure: Option<SecureListeners>,
}

impl Brokers {
    /// One `strom server` on a free port of 127.0.0.1, its data in `dir/data`; with `secure`,
    /// an SSL and a SASL_SSL listener beside the PLAINTEXT one, their certificates and client
    /// properties in `dir/security`.
    pub fn single(binary: &Path, dir: &Path, secure: bool) -> Result<Brokers, BenchError> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let secure = secure
            .then(|| SecureListeners::prepare(&dir.join("security"), (free_port()?, free_port()?)))
            .transpose()?;
        let listen = match &secure {
            Some(listeners) => listeners.server_args(&address),
            None => vec!["--listen".to_string(), address.clone()],
        };
        let args: Vec<String> = std::iter::once("server".to_string())
            .chain(listen)
            .chain(SINGLE_BROKER_SETTINGS.map(String::from))
            .chain(["--data-dir".to_string(), path_arg(&dir.join("data"))])
            .collect();
        let mut broker =
            BrokerProcess::spawn(binary, args, address, &dir.join("broker.log"), None)?;
        broker.wait_until_accepting()?;
        Ok(Brokers {
            nodes: vec![broker],
            secure,
        })
    }

    /// Three combined broker + controller nodes on free ports of 127.0.0.1 (node N's data in
    /// `dir/nodeN`), started together since each waits for a quorum before it serves; returns
    /// once every node's metadata lists all three brokers.
    pub fn three_voters(
        binary: &Path,
        dir: &Path,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Brokers, BenchError> {
        let mut ports = Vec::new();
        for _ in 0..3 {
            ports.push((free_port()?, free_port()?));
        }
        let quorum: Vec<String> = (1..)
            .zip(&ports)
            .map(|(id, (_, controller))| format!("{id}@127.0.0.1:{controller}"))
            .collect();
        let quorum = quorum.join(",");
        let mut nodes = Vec::new();
        for (id, (port, controller)) in (1..).zip(&ports) {
            let node_dir = dir.join(format!("node{id}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(BenchError::io(format!("creating {}", node_dir.display())))?;
            let address = format!("127.0.0.1:{port}");
            let args = [
                "server".to_string(),
                "--node-id".to_string(),
                id.to_string(),
                "--listen".to_string(),
                address.clone(),
                "--controller-listen".to_string(),
                format!("127.0.0.1:{controller}"),
                "--controller-quorum".to_string(),
                quorum.clone(),
                "--data-dir".to_string(),
                path_arg(&node_dir.join("data")),
            ];
            nodes.push(BrokerProcess::spawn(
                binary,
                args,
                address,
                &node_dir.join("broker.log"),
                None,
            )?);
        }
        let mut brokers = Brokers {
            nodes,
            secure: None,
        };
        for node in &mut brokers.nodes {
            node.wait_until_accepting()?;
        }
        runtime.block_on(brokers.wait_until_registered())?;
        Ok(brokers)
    }

    /// Polls every node's metadata until each lists as many brokers as there are nodes.
    async fn wait_until_registered(&self) -> Result<(), BenchError> {
        let started = Instant::now();
        for node in &self.nodes {
            loop {
                let listed = match crate::cluster::connect(
                    &node.address,
                    &SecurityConfig::default(),
                )
                .await
                {
                    Ok(client) => client
                        .metadata(Some(&[]))
                        .await
                        .map_or(0, |metadata| metadata.brokers.len()),
                    Err(_) => 0,
                };
                if listed == self.nodes.len() {
                    break;
                }
                if started.elapsed() > REGISTER_TIMEOUT {
                    return Err(BenchError::Suite(format!(
                        "node {} lists {listed} of {} brokers after {} s:\n{}",
                        node.address,
                        self.nodes.len(),
                        REGISTER_TIMEOUT.as_secs(),
                        self.log_tail()
                    )));
                }
                tokio::time::sleep(REGISTER_POLL).await;
            }
        }
        Ok(())
    }

    /// The first node's address, for clients to bootstrap from.
    pub fn bootstrap(&self) -> &str {
        &self.nodes[0].address
    }

    /// Where a case over `listener` connects, and the client properties it needs (none for
    /// PLAINTEXT).
    pub fn endpoint(&self, listener: Listener) -> (&str, Option<&Path>) {
        if listener == Listener::Plaintext {
            return (self.bootstrap(), None);
        }
        let secure = self.secure.as_ref();
        let secure = secure.expect("cases over SSL run on a broker started with its listeners");
        let endpoint = secure.endpoint(listener).expect("a secured listener");
        (&endpoint.address, Some(endpoint.command_config.as_path()))
    }

    /// Each node's pid and address, for the progress lines.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("pid {} on {}", node.pid, node.address))
            .collect();
        match &self.secure {
            Some(secure) => format!(
                "{} (PLAINTEXT), SSL on {}, SASL_SSL on {}",
                nodes.join(", "),
                secure.ssl.address,
                secure.sasl_ssl.address
            ),
            None => nodes.join(", "),
        }
    }

    /// User plus system CPU seconds used so far, summed over the nodes.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        self.nodes.iter().map(BrokerProcess::cpu_seconds).sum()
    }

    /// System (kernel) CPU seconds used so far, summed over the nodes.
    pub fn system_cpu_seconds(&self) -> Result<f64, BenchError> {
        self.nodes
            .iter()
            .map(BrokerProcess::system_cpu_seconds)
            .sum()
    }

    /// The largest node's peak resident memory (VmHWM) so far, in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64, BenchError> {
        let mut peak = 0;
        for node in &self.nodes {
            peak = peak.max(node.peak_rss_bytes()?);
        }
        Ok(peak)
    }

    /// Resident memory (VmRSS) now, summed over the nodes, in bytes.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        self.nodes
            .iter()
            .map(|node| node.status_bytes("VmRSS"))
            .sum()
    }

    /// The end of every node's log, for error messages.
    pub fn log_tail(&self) -> String {
        match self.nodes.as_slice() {
            [only] => only.log_tail(),
            nodes => nodes
                .iter()
                .map(|node| format!("--- {} ---\n{}", node.address, node.log_tail()))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// SIGTERM to every node at once, then waits for each to exit; the first problem (an
    /// unclean exit, a node killed after the time-out) is returned once all are gone.
    pub fn stop(mut self) -> Result<(), BenchError> {
        for node in &self.nodes {
            node.terminate();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut first_problem = Ok(());
        for node in &mut self.nodes {
            let stopped = node.wait_for_exit(deadline);
            if first_problem.is_ok() {
                first_problem = stopped;
            }
        }
        first_problem
    }
}

/// One broker a case owns: started, stopped (SIGTERM), killed (SIGKILL) and started again on
/// the same port over the same data directory (`dir/data`), each start under the same
/// open-file limit and with a log of its own in `dir`.
pub struct OwnBroker {
    binary: PathBuf,
    dir: PathBuf,
    address: String,
    open_files_limit: u64,
    /// Every start's log, the running one last.
    logs: Vec<PathBuf>,
    running: Option<BrokerProcess>,
}

impl OwnBroker {
    /// Picks a free port of 127.0.0.1 and makes `dir`; starts nothing.
    pub fn new(binary: &Path, dir: &Path, open_files_limit: u64) -> Result<OwnBroker, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("creating {}", dir.display())))?;
        Ok(OwnBroker {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            address: format!("127.0.0.1:{}", free_port()?),
            open_files_limit,
            logs: Vec::new(),
            running: None,
        })
    }

    /// Starts the broker, its output in `dir/<label>.log`; returns its pid without waiting for
    /// it to serve.
    pub fn spawn(&mut self, label: &str) -> Result<u32, BenchError> {
        assert!(
            self.running.is_none(),
            "the broker is started once at a time"
        );
        let args = [
            "server".to_string(),
            "--listen".to_string(),
            self.address.clone(),
            "--data-dir".to_string(),
            path_arg(&self.dir.join("data")),
        ];
        let log = self.dir.join(format!("{label}.log"));
        let broker = BrokerProcess::spawn(
            &self.binary,
            args,
            self.address.clone(),
            &log,
            Some(self.open_files_limit),
        )?;
        self.logs.push(log);
        Ok(self.running.insert(broker).pid)
    }

    /// Waits until the broker just spawned accepts connections.
    pub fn wait_until_accepting(&mut self) -> Result<(), BenchError> {
        self.running
            .as_mut()
            .expect("the broker is running")
            .wait_until_accepting()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn open_files_limit(&self) -> u64 {
        self.open_files_limit
    }

    fn process(&self) -> &BrokerProcess {
        self.running.as_ref().expect("the broker is running")
    }

    /// User plus system CPU seconds of the running broker so far.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        self.process().cpu_seconds()
    }

    /// System (kernel) CPU seconds of the running broker so far.
    pub fn system_cpu_seconds(&self) -> Result<f64, BenchError> {
        self.process().system_cpu_seconds()
    }

    /// The running broker's resident memory now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        self.process().status_bytes("VmRSS")
    }

    /// The running broker's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64, BenchError> {
        self.process().peak_rss_bytes()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        let mut broker = self.running.take().expect("the broker is running");
        broker.terminate();
        broker.wait_for_exit(Instant::now() + STOP_TIMEOUT)
    }

    /// SIGKILL: the broker gets no chance to write anything more.
    pub fn kill(&mut self) -> Result<(), BenchError> {
        let mut broker = self.running.take().expect("the broker is running");
        let mut child = broker.child.take().expect("a running broker has its child");
        let killed = child.kill();
        let waited = child.wait();
        killed.map_err(BenchError::io("sending SIGKILL to the broker"))?;
        waited.map_err(BenchError::io("waiting for the killed broker"))?;
        Ok(())
    }

    /// How many lines of every start's log contain `text`.
    pub fn log_lines_containing(&self, text: &str) -> Result<usize, BenchError> {
        let mut lines = 0;
        for path in &self.logs {
            let log = std::fs::read(path)
                .map_err(BenchError::io(format!("reading {}", path.display())))?;
            lines += String::from_utf8_lossy(&log)
                .lines()
                .filter(|line| line.contains(text))
                .count();
        }
        Ok(lines)
    }

    /// The end of the last start's log, for error messages.
    pub fn log_tail(&self) -> String {
        self.logs
            .last()
            .map_or_else(String::new, |path| log_tail(path))
    }
}

/// How many descriptors the process `pid` has open now (the entries of `/proc/PID/fd`).
pub fn open_descriptors(pid: u32) -> Result<usize, BenchError> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(BenchError::io(format!("reading {path}")))?;
    Ok(entries.count())
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

struct BrokerProcess {
    child: Option<Child>,
    address: String,
    pid: u32,
    log_path: PathBuf,
    clock_ticks_per_s: f64,
}

impl BrokerProcess {
    /// Starts `binary` with `args` (a `server` command line listening on `address`), its
    /// output going to `log_path` and, if given, its open-file limit (soft and hard) set to
    /// `open_files_limit`; does not wait for it to serve.
    fn spawn(
        binary: &Path,
        args: impl IntoIterator<Item = String>,
        address: String,
        log_path: &Path,
        open_files_limit: Option<u64>,
    ) -> Result<BrokerProcess, BenchError> {
        let log = File::create(log_path)
            .map_err(BenchError::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(BenchError::io("duplicating the broker log handle"))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(limit) = open_files_limit {
            limit_open_files(&mut command, limit);
        }
        let child = command
            .spawn()
            .map_err(BenchError::io(format!("starting {}", binary.display())))?;
        Ok(BrokerProcess {
            pid: child.id(),
            child: Some(child),
            address,
            log_path: log_path.to_path_buf(),
            clock_ticks_per_s: clock_ticks_per_s(),
        })
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
    fn cpu_seconds(&self) -> Result<f64, BenchError> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.pid), self.clock_ticks_per_s)
    }

    /// The broker's system (kernel) CPU time so far, in seconds.
    fn system_cpu_seconds(&self) -> Result<f64, BenchError> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat =
            std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
        stat_user_system_ticks(&stat)
            .map(|(_, system)| system as f64 / self.clock_ticks_per_s)
            .ok_or_else(|| BenchError::Suite(format!("cannot read the CPU times in {path}")))
    }

    /// The broker's peak resident memory so far (VmHWM), in bytes.
    fn peak_rss_bytes(&self) -> Result<u64, BenchError> {
        self.status_bytes("VmHWM")
    }

    /// A memory line of the broker's `/proc/PID/status` (VmHWM, VmRSS), in bytes.
    fn status_bytes(&self, name: &str) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))?;
        status_kib(&status, name)
            .map(|kib| kib * 1024)
            .ok_or_else(|| BenchError::Suite(format!("{path} has no {name} line")))
    }

    /// Sends SIGTERM: a clean shutdown (leaderships move away first in a cluster).
    fn terminate(&self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
        }
    }

    /// Waits until `deadline` for the broker to exit after [`BrokerProcess::terminate`]; one
    /// still running then is killed and reported.
    fn wait_for_exit(&mut self, deadline: Instant) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        while Instant::now() < deadline {
            if let Some(status) = child
                .try_wait()
                .map_err(BenchError::io("waiting for the broker"))?
            {
                if status.success() {
                    return Ok(());
                }
                return Err(BenchError::Suite(format!(
                    "the broker on {} exited with {status} on SIGTERM:\n{}",
                    self.address,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(BenchError::Suite(format!(
            "the broker on {} did not exit within {} s of SIGTERM and was killed:\n{}",
            self.address,
            STOP_TIMEOUT.as_secs(),
            self.log_tail()
        )))
    }

    /// The end of the broker's log, for error messages.
    fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

/// The end of a broker's log, for error messages.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(LOG_TAIL_BYTES)..];
    String::from_utf8_lossy(tail).into_owned()
}

/// Makes `command`'s child set its open-file limit, soft and hard, to `limit` before it runs
/// the program: what `ulimit -n` does in a shell. Set in the child, the limit is in force from
/// its first instruction (the broker sizes its file pool and connection limit from it at
/// start); lowering the hard limit keeps the broker from raising the soft one past it.
#[allow(unsafe_code)] // `pre_exec` is unsafe; the one place the bench needs it.
fn limit_open_files(command: &mut Command, limit: u64) {
    let rlimit = Rlimit {
        current: Some(limit),
        maximum: Some(limit),
    };
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is sound: it makes one system call (rustix issues it directly,
    // taking no lock) and allocates nothing.
    unsafe {
        command.pre_exec(move || setrlimit(Resource::Nofile, rlimit).map_err(Into::into));
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
