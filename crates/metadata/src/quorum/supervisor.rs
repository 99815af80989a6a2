//! Keeps this node's Raft running through storage failures, without a process restart.
//!
//! openraft treats every storage error as fatal: its core stops, and every later call on that
//! `Raft` fails. A write can fail for reasons that pass (descriptors or disk space ran out),
//! so the [`Supervisor`] waits for the core to stop on an error and then starts a new `Raft`
//! with the same id, network and configuration, on the log reopened from disk and the state
//! machine's applied state carried over. It retries with a growing backoff until the
//! directory can be written again ([`storage::reopen`] probes it first), and reports the
//! node unhealthy meanwhile. A leader whose core stopped no longer sends heartbeats, so the
//! other voters elect another leader while this node recovers.
//!
//! Lifecycle: the current `Raft` is published on a watch channel; callers take a clone per
//! call ([`Supervisor::raft`]) or follow it across restarts ([`RaftMetricsWatch`]). Only the
//! supervising task replaces it. A new incarnation starts only once the previous one has let
//! go of its files (its log writer thread has finished) and of the state machine (its store
//! was dropped), so two never write at once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::Fatal;
use openraft::{BasicNode, RaftMetrics};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::image::MetadataImage;
use crate::quorum::error::QuorumError;
use crate::quorum::health::{HealthMonitor, Problem};
use crate::quorum::limits::{
    RAFT_RELEASE_WAIT_MS, RAFT_RESTART_BACKOFF_MS_MAX, RAFT_RESTART_BACKOFF_MS_MIN,
};
use crate::quorum::network::raft::NetworkFactory;
use crate::quorum::network::Peers;
use crate::quorum::storage::{self, StateMachineHandle, StorageContext, WriterThread};
use crate::quorum::types::{NodeId, Raft, StorageError};

/// The running Raft of this node, and what it takes to start another.
pub struct Supervisor {
    id: NodeId,
    raft_config: Arc<openraft::Config>,
    peers: Arc<Peers>,
    dir: PathBuf,
    context: StorageContext,
    state_machine: StateMachineHandle,
    current: watch::Sender<Raft>,
    /// The log writer of the current incarnation.
    writer: Mutex<WriterThread>,
}

type Metrics = RaftMetrics<NodeId, BasicNode>;

impl Supervisor {
    /// Opens the storage in `dir` and starts the first Raft on it.
    pub async fn start(
        id: NodeId,
        raft_config: openraft::Config,
        peers: Arc<Peers>,
        dir: PathBuf,
        context: StorageContext,
    ) -> Result<Supervisor, QuorumError> {
        let (log, writer) = storage::LogStore::open_in(&dir, context.clone())?;
        let state_machine = storage::StateMachineStore::open(&dir)?;
        let handle = state_machine.handle();
        let raft_config = Arc::new(raft_config);
        let network = NetworkFactory::new(id, peers.clone());
        let raft = Raft::new(id, raft_config.clone(), network, log, state_machine)
            .await
            .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        Ok(Supervisor {
            id,
            raft_config,
            peers,
            dir,
            context,
            state_machine: handle,
            current: watch::channel(raft).0,
            writer: Mutex::new(writer),
        })
    }

    /// The current Raft. After a failure it is the stopped one until a new one runs; its calls
    /// then fail, and its metrics show it shut down without a leader of its own.
    pub fn raft(&self) -> Raft {
        self.current.borrow().clone()
    }

    /// Raft's metrics, following every restart.
    pub fn metrics(&self) -> RaftMetricsWatch {
        let rafts = self.current.subscribe();
        let metrics = rafts.borrow().metrics();
        RaftMetricsWatch { rafts, metrics }
    }

    /// Every image the state machine publishes, whichever Raft applied it.
    pub fn images(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.state_machine.subscribe()
    }

    /// What the storage and this supervisor report problems to.
    pub fn health(&self) -> &HealthMonitor {
        &self.context.health
    }

    /// Waits until the current Raft stops on an error, then starts a new one, trying again
    /// with a growing backoff until that works. Returns once the new one runs.
    pub async fn restart_after_failure(&self) {
        let stopped = self.raft();
        let error = stopped_on_storage_error(&stopped, &self.context.health).await;
        self.context.health.report(
            Problem::RaftStopped,
            format!(
                "Raft stopped on a storage error ({error}); it is restarted once the metadata \
                 log can be written again"
            ),
        );
        // Joins the core and its timer; the core dropped the log store and the state machine
        // when it stopped.
        if let Err(error) = stopped.shutdown().await {
            tracing::warn!("the stopped Raft did not shut down cleanly: {error}");
        }
        let mut backoff = Duration::from_millis(RAFT_RESTART_BACKOFF_MS_MIN);
        let mut attempts = 0u32;
        loop {
            tokio::time::sleep(backoff).await;
            attempts += 1;
            match self.start_again().await {
                Ok(()) => {
                    tracing::info!(attempts, "Raft runs again on the reopened metadata log");
                    self.context.health.resolve_all();
                    return;
                }
                Err(error) => {
                    self.context.health.report(
                        Problem::RaftStopped,
                        format!("restarting Raft failed ({attempts} attempts so far): {error}"),
                    );
                    backoff = (backoff * 2).min(Duration::from_millis(RAFT_RESTART_BACKOFF_MS_MAX));
                }
            }
        }
    }

    /// Reopens the storage and starts a new Raft on it.
    async fn start_again(&self) -> Result<(), QuorumError> {
        self.wait_released().await?;
        let (log, writer) = storage::reopen(&self.dir, self.context.clone())?;
        // Kept before Raft runs: if Raft::new fails, the next attempt waits for this writer.
        *self.writer.lock().expect("never held across a panic") = writer;
        let state_machine = self
            .state_machine
            .resume()
            .expect("the stopped Raft released the state machine");
        let network = NetworkFactory::new(self.id, self.peers.clone());
        // On failure Raft::new drops the log store and the state machine store, which parks
        // its state again.
        let raft = Raft::new(
            self.id,
            self.raft_config.clone(),
            network,
            log,
            state_machine,
        )
        .await
        .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        self.current.send_replace(raft);
        Ok(())
    }

    /// Waits until the stopped Raft's log writer has closed its files and its state machine
    /// store is dropped: openraft's workers stop on their own once the core is gone.
    async fn wait_released(&self) -> Result<(), QuorumError> {
        let deadline = Instant::now() + Duration::from_millis(RAFT_RELEASE_WAIT_MS);
        loop {
            let writer_done = self.writer_finished();
            if writer_done && self.state_machine.is_parked() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(QuorumError::Stopped(format!(
                    "the stopped Raft still holds {} after {RAFT_RELEASE_WAIT_MS} ms",
                    if writer_done {
                        "its state machine"
                    } else {
                        "the log files"
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn writer_finished(&self) -> bool {
        self.writer
            .lock()
            .expect("never held across a panic")
            .is_finished()
    }

    /// Stops the current Raft and waits (up to `wait`) for its log writer to close its files.
    pub async fn shutdown(&self, wait: Duration) {
        if let Err(error) = self.raft().shutdown().await {
            tracing::warn!("Raft did not shut down cleanly: {error}");
        }
        self.peers.close_all();
        let deadline = Instant::now() + wait;
        while !self.writer_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.writer_finished() {
            tracing::warn!("the metadata log writer did not stop in time");
        }
    }
}

/// Completes with the storage error `raft` stopped on. A Raft shut down on purpose never
/// completes it (the supervising task is aborted first then), nor one that panicked: that is
/// a bug, which a restart would most likely run into again.
async fn stopped_on_storage_error(raft: &Raft, health: &HealthMonitor) -> StorageError {
    let mut metrics = raft.metrics();
    loop {
        let running = metrics.borrow_and_update().running_state.clone();
        match running {
            Err(Fatal::StorageError(error)) => return error,
            Err(Fatal::Stopped) => std::future::pending::<()>().await,
            Err(Fatal::Panicked) => break,
            Ok(()) => {}
        }
        if metrics.changed().await.is_err() {
            break;
        }
    }
    health.report(
        Problem::RaftStopped,
        "Raft panicked (a bug: please report it); restart the node",
    );
    std::future::pending().await
}

/// Raft's metrics across restarts: the current Raft's, switching to each new one.
pub struct RaftMetricsWatch {
    rafts: watch::Receiver<Raft>,
    metrics: watch::Receiver<Metrics>,
}

impl RaftMetricsWatch {
    /// The latest metrics, marked seen.
    pub fn latest(&mut self) -> watch::Ref<'_, Metrics> {
        self.metrics.borrow_and_update()
    }

    /// Waits until the metrics change or a new Raft runs; false once the node is gone.
    pub async fn changed(&mut self) -> bool {
        tokio::select! {
            changed = self.metrics.changed() => {
                if changed.is_ok() {
                    return true;
                }
                // This Raft stopped: wait for the next.
                if self.rafts.changed().await.is_err() {
                    return false;
                }
            }
            changed = self.rafts.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
        self.metrics = self.rafts.borrow_and_update().metrics();
        true
    }
}
