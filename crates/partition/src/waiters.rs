//! Per-partition waiters: Kafka's purgatory keyed by partition.
//!
//! A request that must wait (a long-poll fetch, an acks=all produce) makes one [`Waiter`] and
//! registers it with each partition it waits on, in the list for what it waits for: new data
//! at the log end (followers' fetches) or a change consumers can see (the high watermark, or
//! the replica state). An append wakes only the waiters of its own partition, so the cost of an
//! append does not grow with the number of requests waiting elsewhere.
//!
//! A list holds weak references: a request that finishes (answered, timed out, its connection
//! closed) just drops its `Waiter`, and the dead entry is pruned on a later wake or
//! registration. Pruning is amortised: a list is swept when it has doubled since the last
//! sweep, so an idle partition polled by a consumer every 500 ms holds a bounded list.
//!
//! Wake-ups are never lost: `Notify::notify_one` stores a permit when the waiter is not
//! waiting yet, so a waiter registers, looks at the partition, and then waits; an append in
//! between leaves the permit and the wait ends at once.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// A list is swept of dead entries once it holds this many, or twice as many as after the
/// last sweep.
const PRUNE_AT_LEAST: usize = 16;

/// One waiting request; see the module docs.
#[derive(Clone, Default)]
pub struct Waiter(Arc<Notify>);

impl Waiter {
    pub fn new() -> Waiter {
        Waiter::default()
    }

    /// Resolves once a partition this waiter is registered with wakes it (at once if one did
    /// since the last call).
    pub async fn woken(&self) {
        self.0.notified().await
    }
}

/// What a waiter waits for on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Records appended at the log end (a follower's fetch reads up to it).
    LogEnd,
    /// The high watermark moving, or the replica state changing (consumers' fetches, acks=all
    /// produces).
    Visible,
}

/// The waiters of one partition for one kind of event.
#[derive(Default)]
pub(crate) struct WaiterList {
    inner: Mutex<List>,
}

#[derive(Default)]
struct List {
    waiters: Vec<Weak<Notify>>,
    prune_at: usize,
}

impl WaiterList {
    pub(crate) fn register(&self, waiter: &Waiter) {
        let mut list = self.inner.lock();
        if list.waiters.len() >= list.prune_at.max(PRUNE_AT_LEAST) {
            list.waiters.retain(|entry| entry.strong_count() > 0);
            list.prune_at = list.waiters.len() * 2;
        }
        let registered = list
            .waiters
            .iter()
            .rev()
            .take(4)
            .any(|entry| std::ptr::eq(entry.as_ptr(), Arc::as_ptr(&waiter.0)));
        if !registered {
            list.waiters.push(Arc::downgrade(&waiter.0));
        }
    }

    /// Wakes every live waiter (they stay registered until they finish) and drops dead ones.
    pub(crate) fn wake_all(&self) {
        let mut list = self.inner.lock();
        if list.waiters.is_empty() {
            return;
        }
        list.waiters.retain(|entry| match entry.upgrade() {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost() {
        let list = WaiterList::default();
        let waiter = Waiter::new();
        list.register(&waiter);
        list.wake_all();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter.woken())
            .await
            .expect("the stored permit ends the wait at once");
    }

    #[test]
    fn finished_waiters_are_pruned_and_the_list_stays_bounded() {
        let list = WaiterList::default();
        for _ in 0..10_000 {
            let waiter = Waiter::new();
            list.register(&waiter);
        }
        assert!(list.len() <= 2 * PRUNE_AT_LEAST, "{} entries", list.len());
        list.wake_all();
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn registering_again_does_not_duplicate() {
        let list = WaiterList::default();
        let waiter = Waiter::new();
        for _ in 0..100 {
            list.register(&waiter);
        }
        assert_eq!(list.len(), 1);
        let other = Waiter::new();
        list.register(&other);
        list.wake_all();
        assert_eq!(list.len(), 2, "live waiters stay registered after a wake");
    }
}
