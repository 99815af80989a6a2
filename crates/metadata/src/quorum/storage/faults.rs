//! Test-only fault injection: makes the metadata log's writes, or the reopening of its files,
//! fail on demand with a chosen `errno`, as if descriptors or disk space had run out. The log
//! writer and the supervisor's reopen ask [`FaultInjector::check`] before the real operation,
//! so a test decides exactly which operation fails and how often, with no timing involved.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use crate::quorum::health::WriteKind;

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultPoint {
    /// A write of the log writer. An append fails after its records are written but before
    /// they are fsynced, the harder case for the rollback (nothing written is easier).
    Write(WriteKind),
    /// Reopening the log and probing that it can be written, before Raft starts again.
    Reopen,
}

/// Shared by a test and the storage it injects into; clones inject into the same plan.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    plan: Arc<Mutex<Plan>>,
}

#[derive(Debug, Default)]
struct Plan {
    /// The next `count` operations at a point fail with `errno`.
    counted: BTreeMap<FaultPoint, (i32, u32)>,
    /// Every operation fails with this `errno` until cleared: the resource is gone.
    everything: Option<i32>,
    /// Faults injected so far.
    injected: u64,
}

impl FaultInjector {
    /// Fails the next `times` operations at `point` with `errno`.
    pub fn fail(&self, point: FaultPoint, errno: i32, times: u32) {
        self.lock().counted.insert(point, (errno, times));
    }

    /// Fails every operation with `errno` until [`FaultInjector::clear`].
    pub fn fail_everything(&self, errno: i32) {
        self.lock().everything = Some(errno);
    }

    /// Injects nothing more.
    pub fn clear(&self) {
        let mut plan = self.lock();
        plan.counted.clear();
        plan.everything = None;
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Fails if the plan says the operation at `point` fails.
    pub fn check(&self, point: FaultPoint) -> io::Result<()> {
        let mut plan = self.lock();
        let errno = match (plan.everything, plan.counted.get_mut(&point)) {
            (Some(errno), _) => errno,
            (None, Some((errno, times))) if *times > 0 => {
                *times -= 1;
                *errno
            }
            _ => return Ok(()),
        };
        plan.injected += 1;
        Err(io::Error::from_raw_os_error(errno))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().expect("never held across a panic")
    }
}
