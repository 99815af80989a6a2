//! A partition's transactions (KIP-98): the last stable offset a read_committed fetch needs, and
//! the aborted transactions to index, from the producers' [`TxnEvent`]s.
//!
//! - A transaction is *open* here from its producer's first transactional batch until the
//!   coordinator's marker (COMMIT or ABORT) is written.
//! - An ended transaction stays *unstable* until its marker is below the high watermark
//!   (Kafka's `unreplicatedTxns`): were the leader to fail before the followers had the
//!   marker, a new leader would still have the transaction open, so no consumer may read past
//!   its first offset yet.
//! - The *last stable offset* is the high watermark, or the first offset of the oldest
//!   unstable transaction if that is lower. read_committed consumers read up to it.
//! - Every *aborted* transaction becomes an entry of the log's aborted-transaction index (the
//!   `.txnindex` of the segment holding its ABORT marker, see `strom_log`) with its first
//!   offset, its marker's offset and the last stable offset once the marker is written, so a
//!   read_committed fetch can tell the consumer which producers' records to drop in the range
//!   it returns. The index lives with the log, so it survives restarts, and a follower builds
//!   its own from the markers it replicates.
//!
//! Pure, no I/O; owned by the partition's store and changed under its lock. Rebuilt with the
//! producer state: from the snapshot's open transactions and the batches after it.

use std::collections::{BTreeMap, VecDeque};

use strom_log::AbortedTxnEntry;
use strom_types::{Offset, ProducerId};

use crate::producers::{CompletedTxn, ProducerStates, TxnEvent};

/// An aborted transaction, as a read_committed fetch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The ABORT marker's offset.
    pub marker_offset: Offset,
}

impl From<AbortedTxnEntry> for AbortedTxn {
    fn from(entry: AbortedTxnEntry) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(entry.producer_id),
            first_offset: entry.first_offset,
            marker_offset: entry.last_offset,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transactions {
    /// Open transactions by first offset (a producer has at most one open).
    open: BTreeMap<Offset, ProducerId>,
    /// Ended transactions whose marker is not yet below the high watermark, by marker offset.
    unreplicated: VecDeque<(Offset, Offset)>,
}

impl Transactions {
    /// The open transactions of `producers` (loaded from a snapshot), before the batches after
    /// it are replayed through [`Transactions::apply`].
    pub fn of(producers: &ProducerStates) -> Transactions {
        Transactions {
            open: producers.open_transactions().collect(),
            ..Transactions::default()
        }
    }

    /// Applies what recording a batch did. `high_watermark` is the partition's as the batch
    /// was written (a marker below it is stable at once: a follower replaying the leader's log).
    /// Returns the index entry of a transaction the batch aborted.
    pub fn apply(&mut self, event: TxnEvent, high_watermark: Offset) -> Option<AbortedTxnEntry> {
        match event {
            TxnEvent::Began {
                producer_id,
                first_offset,
            } => {
                self.open.insert(first_offset, producer_id);
                None
            }
            TxnEvent::Ended(txn) => self.end(txn, high_watermark),
        }
    }

    fn end(&mut self, txn: CompletedTxn, high_watermark: Offset) -> Option<AbortedTxnEntry> {
        self.high_watermark_moved(high_watermark);
        // Without a first offset nothing of it was written here: nothing to hold back or to
        // skip, so no index entry either.
        let first_offset = txn.first_offset?;
        let removed = self.open.remove(&first_offset);
        assert_eq!(
            removed,
            Some(txn.producer_id),
            "the transaction a marker ends was open from {first_offset}"
        );
        if txn.marker_offset >= high_watermark {
            self.unreplicated
                .push_back((txn.marker_offset, first_offset));
        }
        // Kafka's `ProducerStateManager.lastStableOffset(completedTxn)`: the first offset of
        // the oldest transaction still open, or the offset after the marker. No transaction
        // aborted later began before it, which lets a search of the index stop there.
        let last_stable_offset = self
            .open
            .keys()
            .next()
            .copied()
            .unwrap_or(txn.marker_offset.plus(1));
        txn.aborted.then_some(AbortedTxnEntry {
            producer_id: txn.producer_id.0,
            first_offset,
            last_offset: txn.marker_offset,
            last_stable_offset,
        })
    }

    /// Forgets ended transactions whose markers are below `high_watermark`: they hold nothing
    /// back any more.
    fn high_watermark_moved(&mut self, high_watermark: Offset) {
        while self
            .unreplicated
            .front()
            .is_some_and(|&(marker, _)| marker < high_watermark)
        {
            self.unreplicated.pop_front();
        }
    }

    /// The first offset of the oldest transaction still unstable at `high_watermark`, if any.
    pub fn first_unstable_offset(&self, high_watermark: Offset) -> Option<Offset> {
        let open = self.open.keys().next().copied();
        let unreplicated = self
            .unreplicated
            .iter()
            .filter(|&&(marker, _)| marker >= high_watermark)
            .map(|&(_, first)| first)
            .min();
        match (open, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last stable offset for a partition whose high watermark is `high_watermark`.
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        self.first_unstable_offset(high_watermark)
            .map_or(high_watermark, |first| first.min(high_watermark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn began(producer: i64, first: i64) -> TxnEvent {
        TxnEvent::Began {
            producer_id: ProducerId(producer),
            first_offset: Offset(first),
        }
    }

    fn ended(producer: i64, first: Option<i64>, marker: i64, aborted: bool) -> TxnEvent {
        TxnEvent::Ended(CompletedTxn {
            producer_id: ProducerId(producer),
            first_offset: first.map(Offset),
            marker_offset: Offset(marker),
            aborted,
        })
    }

    #[test]
    fn the_last_stable_offset_stops_at_the_oldest_open_transaction() {
        let mut txns = Transactions::default();
        assert_eq!(txns.last_stable_offset(Offset(10)), Offset(10));
        txns.apply(began(1, 3), Offset(3));
        txns.apply(began(2, 5), Offset(3));
        assert_eq!(txns.last_stable_offset(Offset(8)), Offset(3));
        assert_eq!(
            txns.last_stable_offset(Offset(2)),
            Offset(2),
            "never above the HW"
        );
        // Producer 1 commits at 8 while the HW is 8: unstable until the HW passes the marker.
        txns.apply(ended(1, Some(3), 8, false), Offset(8));
        assert_eq!(txns.first_unstable_offset(Offset(8)), Some(Offset(3)));
        assert_eq!(txns.first_unstable_offset(Offset(9)), Some(Offset(5)));
        txns.apply(ended(2, Some(5), 9, true), Offset(20));
        assert_eq!(txns.last_stable_offset(Offset(20)), Offset(20));
    }

    #[test]
    fn an_abort_gives_its_index_entry_with_the_last_stable_offset_at_the_marker() {
        let mut txns = Transactions::default();
        assert_eq!(txns.apply(began(1, 0), Offset(0)), None);
        txns.apply(began(2, 2), Offset(0));
        txns.apply(began(3, 3), Offset(0));
        let entry = |producer, first, last, lso| AbortedTxnEntry {
            producer_id: producer,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        };
        // Producer 1 aborts while 2 and 3 are open: nothing aborted later began before 2.
        assert_eq!(
            txns.apply(ended(1, Some(0), 4, true), Offset(0)),
            Some(entry(1, 0, 4, 2))
        );
        assert_eq!(
            txns.apply(ended(2, Some(2), 5, false), Offset(0)),
            None,
            "a commit"
        );
        assert_eq!(
            txns.apply(ended(3, Some(3), 6, true), Offset(0)),
            Some(entry(3, 3, 6, 7)),
            "nothing open: the offset after the marker"
        );
        // A marker for a partition the producer never wrote to has nothing to index.
        assert_eq!(txns.apply(ended(4, None, 7, true), Offset(0)), None);
    }
}
