//! A partition's transactions (KIP-98): the last stable offset and the aborted transactions a
//! read_committed fetch needs, from the producers' [`TxnEvent`]s.
//!
//! - A transaction is *open* here from its producer's first transactional batch until the
//!   coordinator's marker (COMMIT or ABORT) is written.
//! - An ended transaction stays *unstable* until its marker is below the high watermark
//!   (Kafka's `unreplicatedTxns`): were the leader to fail before the followers had the
//!   marker, a new leader would still have the transaction open, so no consumer may read past
//!   its first offset yet.
//! - The *last stable offset* is the high watermark, or the first offset of the oldest
//!   unstable transaction if that is lower. read_committed consumers read up to it.
//! - Every *aborted* transaction is listed with its first offset and its marker's offset, so a
//!   read_committed fetch can tell the consumer which producers' records to drop in the range
//!   it returns.
//!
//! Pure, no I/O; owned by the partition's store and changed under its lock. Rebuilt with the
//! producer state: from the snapshot's open transactions and the batches after it.

use std::collections::{BTreeMap, VecDeque};

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

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transactions {
    /// Open transactions by first offset (a producer has at most one open).
    open: BTreeMap<Offset, ProducerId>,
    /// Ended transactions whose marker is not yet below the high watermark, by marker offset.
    unreplicated: VecDeque<(Offset, Offset)>,
    /// Aborted transactions, by marker offset.
    aborted: Vec<AbortedTxn>,
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
    pub fn apply(&mut self, event: TxnEvent, high_watermark: Offset) {
        match event {
            TxnEvent::Began {
                producer_id,
                first_offset,
            } => {
                self.open.insert(first_offset, producer_id);
            }
            TxnEvent::Ended(txn) => self.end(txn, high_watermark),
        }
    }

    fn end(&mut self, txn: CompletedTxn, high_watermark: Offset) {
        self.high_watermark_moved(high_watermark);
        let Some(first_offset) = txn.first_offset else {
            // Nothing of it was written here: nothing to hold back or to skip.
            return;
        };
        self.open.remove(&first_offset);
        if txn.marker_offset >= high_watermark {
            self.unreplicated
                .push_back((txn.marker_offset, first_offset));
        }
        if txn.aborted {
            self.aborted.push(AbortedTxn {
                producer_id: txn.producer_id,
                first_offset,
                marker_offset: txn.marker_offset,
            });
        }
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

    /// The aborted transactions with records in `from..to`: those whose marker is at or after
    /// `from` and that began before `to` (Kafka's `collectAbortedTxns`).
    pub fn aborted_between(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|txn| txn.marker_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|txn| txn.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions whose marker is below the log start (retention deleted
    /// them and everything before).
    pub fn log_start_moved(&mut self, log_start_offset: Offset) {
        let gone = self
            .aborted
            .partition_point(|txn| txn.marker_offset < log_start_offset);
        self.aborted.drain(..gone);
    }

    /// How many aborted transactions are listed (for tests and metrics).
    #[cfg(test)]
    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
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
    fn aborted_transactions_are_listed_for_the_ranges_they_touch() {
        let mut txns = Transactions::default();
        txns.apply(began(1, 0), Offset(0));
        txns.apply(ended(1, Some(0), 4, true), Offset(10));
        txns.apply(began(2, 5), Offset(10));
        txns.apply(ended(2, Some(5), 6, false), Offset(10));
        txns.apply(began(3, 7), Offset(10));
        txns.apply(ended(3, Some(7), 9, true), Offset(10));
        let producers = |txns: &Transactions, from, to| -> Vec<i64> {
            txns.aborted_between(Offset(from), Offset(to))
                .iter()
                .map(|txn| txn.producer_id.0)
                .collect()
        };
        assert_eq!(producers(&txns, 0, 10), [1, 3]);
        assert_eq!(
            producers(&txns, 5, 10),
            [3],
            "producer 1's marker is before 5"
        );
        assert_eq!(producers(&txns, 0, 7), [1], "producer 3 began at 7");
        assert_eq!(producers(&txns, 4, 5), [1]);
        // A marker for a partition the producer never wrote to changes nothing.
        txns.apply(ended(4, None, 11, true), Offset(12));
        assert_eq!(txns.aborted_count(), 2);
        txns.log_start_moved(Offset(5));
        assert_eq!(producers(&txns, 0, 20), [3]);
    }
}
