//! Whether this node's part in the metadata quorum works: [`Health`], and the
//! [`HealthMonitor`] that the log writer and the Raft supervisor report problems to.
//!
//! A problem is keyed by what failed, and only a success of that same thing (or a fresh Raft
//! incarnation, which starts with new files) clears it. Keying matters: the commit hint can
//! keep failing while appends succeed, and clearing on any success would flip the node
//! between healthy and unhealthy on every proposal.
//!
//! The log says each episode once: an error when the node turns unhealthy, an info when it is
//! healthy again, and in between a warning for each other kind of problem that appears (Raft
//! stopping after the commit hint failed, say); repeats are debug lines.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::time::Instant;

/// The health of this node's metadata quorum, for readiness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// The metadata log cannot be written, or Raft is stopped while it recovers. `reason` is
    /// that of one open problem, a failing write before a stopped Raft (the write names what
    /// ran out). Metadata requests get retriable errors meanwhile.
    Unhealthy {
        reason: String,
    },
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A write of this kind to the metadata log's files failed.
    Write(WriteKind),
    /// openraft stopped on an error, and the supervisor has not started it again yet.
    RaftStopped,
}

/// The writes of the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteKind {
    Append,
    Truncate,
    Purge,
    Vote,
    CommitHint,
}

/// Collects problems and publishes the resulting [`Health`]. Shared by the log writer
/// thread, the state machine and the supervisor task; each report takes a short lock.
#[derive(Debug)]
pub struct HealthMonitor {
    open: Mutex<Episode>,
    published: watch::Sender<Health>,
}

/// The problems open now, each with its reason, and when the first of them appeared.
#[derive(Debug, Default)]
struct Episode {
    problems: BTreeMap<Problem, String>,
    since: Option<Instant>,
}

impl Default for HealthMonitor {
    fn default() -> HealthMonitor {
        HealthMonitor {
            open: Mutex::new(Episode::default()),
            published: watch::channel(Health::Healthy).0,
        }
    }
}

impl HealthMonitor {
    /// The health now.
    pub fn health(&self) -> Health {
        self.published.borrow().clone()
    }

    /// Every change of health from now on.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.published.subscribe()
    }

    /// `problem` happened (again), for `reason`.
    pub fn report(&self, problem: Problem, reason: impl Into<String>) {
        let reason = reason.into();
        let mut episode = self.lock();
        if episode.problems.is_empty() {
            tracing::error!(
                ?problem,
                "the metadata quorum is unhealthy: {reason}; metadata requests fail with a \
                 retriable error until it recovers by itself"
            );
            episode.since = Some(Instant::now());
        } else if !episode.problems.contains_key(&problem) {
            tracing::warn!(?problem, "the metadata quorum is unhealthy, also: {reason}");
        } else {
            tracing::debug!(?problem, "the metadata quorum is still unhealthy: {reason}");
        }
        episode.problems.insert(problem, reason);
        self.publish(&episode);
    }

    /// `problem` is over.
    pub fn resolve(&self, problem: Problem) {
        let mut episode = self.lock();
        if episode.problems.remove(&problem).is_some() {
            self.end_if_over(&mut episode);
        }
    }

    /// Every problem is over: Raft runs again on freshly opened files.
    pub fn resolve_all(&self) {
        let mut episode = self.lock();
        episode.problems.clear();
        self.end_if_over(&mut episode);
    }

    fn end_if_over(&self, episode: &mut Episode) {
        if !episode.problems.is_empty() {
            self.publish(episode);
            return;
        }
        if let Some(since) = episode.since.take() {
            tracing::info!(
                unhealthy_ms = since.elapsed().as_millis() as u64,
                "the metadata quorum is healthy again"
            );
            self.publish(episode);
        }
    }

    fn publish(&self, episode: &Episode) {
        let health = match episode.problems.values().next() {
            None => Health::Healthy,
            Some(reason) => Health::Unhealthy {
                reason: reason.clone(),
            },
        };
        self.published.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Episode> {
        self.open.lock().expect("never held across a panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhealthy(reason: &str) -> Health {
        Health::Unhealthy {
            reason: reason.into(),
        }
    }

    #[test]
    fn only_the_same_kind_of_success_clears_a_problem() {
        let monitor = HealthMonitor::default();
        assert_eq!(monitor.health(), Health::Healthy);
        monitor.report(Problem::Write(WriteKind::CommitHint), "EMFILE");
        assert_eq!(monitor.health(), unhealthy("EMFILE"));
        monitor.resolve(Problem::Write(WriteKind::Append));
        assert_eq!(
            monitor.health(),
            unhealthy("EMFILE"),
            "appends never failed"
        );
        monitor.report(Problem::RaftStopped, "core stopped");
        monitor.resolve(Problem::Write(WriteKind::CommitHint));
        assert_eq!(monitor.health(), unhealthy("core stopped"));
        monitor.resolve(Problem::RaftStopped);
        assert_eq!(monitor.health(), Health::Healthy);
    }

    #[test]
    fn a_fresh_start_clears_everything() {
        let monitor = HealthMonitor::default();
        let mut changes = monitor.subscribe();
        monitor.report(Problem::Write(WriteKind::Append), "ENOSPC");
        monitor.report(Problem::RaftStopped, "storage error");
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        monitor.resolve_all();
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), Health::Healthy);
    }
}
