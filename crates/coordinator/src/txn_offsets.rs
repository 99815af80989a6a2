//! Transactional offset commits (KIP-98's TxnOffsetCommit) waiting for their transaction to
//! end: Kafka's `pendingTransactionalOffsetCommits` and `openTransactionsByGroup`.
//!
//! A transactional producer commits a group's offsets inside its transaction
//! (`send_offsets_to_transaction`). Their records go to the group's `__consumer_offsets`
//! partition in a transactional batch of that producer, but the offsets become the group's
//! committed offsets only when the producer's COMMIT marker follows in that partition; an
//! ABORT marker drops them. Until then they are pending here, per group and producer.
//!
//! The lifecycle of one pending offset (group, topic, partition, producer), driven by
//! [`crate::GroupCoordinator`]:
//! 1. *In flight*: registered just before its record is appended, with no record offset, so
//!    that a marker which ends the transaction while the write is under way ends this offset
//!    too (a commit applies it: its record precedes the marker; an abort drops it).
//! 2. *Written*: the record is durable at a known offset. Replaying the partition registers
//!    offsets in this state directly.
//! 3. *Ended*: the producer's marker takes every pending offset of that producer in the
//!    groups of that `__consumer_offsets` partition. A write that failed drops its in-flight
//!    offsets; a tombstone of a partition (an offset deleted or expired, a group deleted) drops
//!    that partition's pending offsets of every producer, as replaying the tombstone would.
//!
//! One owner: the group coordinator, behind the runtime's mutex. The two maps are one fact
//! seen from both sides; every change goes through [`PendingTxnOffsets::remove_empty`] so
//! that a producer is indexed under a group exactly while it has pending offsets there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strom_types::{Offset, ProducerId};

use crate::offsets::CommittedOffset;

/// A committed offset's (topic, partition).
pub(crate) type PartitionKey = (String, i32);

/// One transactional offset waiting for its producer's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingOffset {
    pub(crate) offset: CommittedOffset,
    /// Where its record is in `__consumer_offsets`; `None` while the write is in flight.
    pub(crate) record_offset: Option<Offset>,
}

/// Pending offsets of one producer in one group.
type ProducerOffsets = BTreeMap<PartitionKey, PendingOffset>;

#[derive(Debug, Default)]
pub(crate) struct PendingTxnOffsets {
    by_group: HashMap<String, HashMap<ProducerId, ProducerOffsets>>,
    /// The groups in which each producer has pending offsets: a marker finds them here
    /// without looking at every group.
    groups_by_producer: HashMap<ProducerId, BTreeSet<String>>,
}

impl PendingTxnOffsets {
    /// Registers `pending` for `key`, replacing what the producer had pending there (a later
    /// commit of the same partition in the same transaction wins, as its record comes later).
    pub(crate) fn put(
        &mut self,
        group: &str,
        producer_id: ProducerId,
        key: PartitionKey,
        pending: PendingOffset,
    ) {
        self.by_group
            .entry(group.to_owned())
            .or_default()
            .entry(producer_id)
            .or_default()
            .insert(key, pending);
        self.groups_by_producer
            .entry(producer_id)
            .or_default()
            .insert(group.to_owned());
    }

    /// Records that the in-flight `offset` of `key` is now durable at `record_offset`. Returns
    /// false, changing nothing, when it is no longer the producer's in-flight offset there: a
    /// marker or a tombstone ended it meanwhile, or a later commit replaced it.
    pub(crate) fn mark_written(
        &mut self,
        group: &str,
        producer_id: ProducerId,
        key: &PartitionKey,
        offset: &CommittedOffset,
        record_offset: Offset,
    ) -> bool {
        let pending = self
            .by_group
            .get_mut(group)
            .and_then(|producers| producers.get_mut(&producer_id))
            .and_then(|offsets| offsets.get_mut(key));
        match pending {
            Some(pending) if pending.record_offset.is_none() && pending.offset == *offset => {
                pending.record_offset = Some(record_offset);
                true
            }
            _ => false,
        }
    }

    /// Drops the in-flight `offset` of `key` (its write failed), unless it was replaced.
    pub(crate) fn drop_in_flight(
        &mut self,
        group: &str,
        producer_id: ProducerId,
        key: &PartitionKey,
        offset: &CommittedOffset,
    ) {
        if let Some(offsets) = self
            .by_group
            .get_mut(group)
            .and_then(|producers| producers.get_mut(&producer_id))
        {
            if offsets
                .get(key)
                .is_some_and(|p| p.record_offset.is_none() && p.offset == *offset)
            {
                offsets.remove(key);
            }
        }
        self.remove_empty(group);
    }

    /// Takes every pending offset of `producer_id` in the groups `in_scope` accepts (those of
    /// one `__consumer_offsets` partition), by group: the producer's transaction ended there.
    pub(crate) fn take_producer(
        &mut self,
        producer_id: ProducerId,
        in_scope: impl Fn(&str) -> bool,
    ) -> Vec<(String, ProducerOffsets)> {
        let Some(groups) = self.groups_by_producer.get(&producer_id) else {
            return Vec::new();
        };
        let groups: Vec<String> = groups.iter().filter(|g| in_scope(g)).cloned().collect();
        let mut taken = Vec::with_capacity(groups.len());
        for group in groups {
            // Emptied in place, so that `remove_empty` also drops the index entry.
            let offsets = self
                .by_group
                .get_mut(&group)
                .and_then(|producers| producers.get_mut(&producer_id))
                .map(std::mem::take)
                .unwrap_or_else(|| {
                    panic!("producer {producer_id} is indexed under group {group} without offsets")
                });
            assert!(
                !offsets.is_empty(),
                "producers without offsets are not kept"
            );
            self.remove_empty(&group);
            taken.push((group, offsets));
        }
        taken
    }

    /// Whether any producer has an offset of (`topic`, `partition`) pending in `group`.
    pub(crate) fn is_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.by_group.get(group).is_some_and(|producers| {
            producers
                .values()
                .any(|offsets| offsets.contains_key(&(topic.to_owned(), partition)))
        })
    }

    /// Whether `group` has any pending offset.
    pub(crate) fn has_group(&self, group: &str) -> bool {
        self.by_group.contains_key(group)
    }

    /// The partitions with a pending offset in `group`, of any producer.
    pub(crate) fn partitions_of(&self, group: &str) -> BTreeSet<PartitionKey> {
        self.by_group
            .get(group)
            .map(|producers| producers.values().flat_map(|o| o.keys().cloned()).collect())
            .unwrap_or_default()
    }

    /// Drops every producer's pending offset of `key` in `group` (a tombstone).
    pub(crate) fn remove_partition(&mut self, group: &str, key: &PartitionKey) {
        if let Some(producers) = self.by_group.get_mut(group) {
            for offsets in producers.values_mut() {
                offsets.remove(key);
            }
        }
        self.remove_empty(group);
    }

    /// Drops the pending offsets of the groups `in_scope` accepts: all of them, or only those
    /// already written (`written_only`, before a replay of the partition writes them back).
    pub(crate) fn remove_groups(&mut self, in_scope: impl Fn(&str) -> bool, written_only: bool) {
        let groups: Vec<String> = self
            .by_group
            .keys()
            .filter(|g| in_scope(g))
            .cloned()
            .collect();
        for group in groups {
            if let Some(producers) = self.by_group.get_mut(&group) {
                for offsets in producers.values_mut() {
                    offsets.retain(|_, p| written_only && p.record_offset.is_none());
                }
            }
            self.remove_empty(&group);
        }
    }

    /// After a change to `group`: forgets producers left with no offsets there (and their
    /// index entries), then the group if no producer is left. Asserts that the index matches.
    fn remove_empty(&mut self, group: &str) {
        let Some(producers) = self.by_group.get_mut(group) else {
            return;
        };
        let emptied: Vec<ProducerId> = producers
            .iter()
            .filter(|(_, offsets)| offsets.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for producer_id in &emptied {
            producers.remove(producer_id);
        }
        let remaining: Vec<ProducerId> = producers.keys().copied().collect();
        if remaining.is_empty() {
            self.by_group.remove(group);
        }
        for producer_id in emptied {
            let groups = self
                .groups_by_producer
                .get_mut(&producer_id)
                .expect("a producer with offsets in a group is indexed");
            groups.remove(group);
            if groups.is_empty() {
                self.groups_by_producer.remove(&producer_id);
            }
        }
        for producer_id in remaining {
            assert!(
                self.groups_by_producer
                    .get(&producer_id)
                    .is_some_and(|groups| groups.contains(group)),
                "producer {producer_id} has offsets pending in group {group} but is not indexed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(at: i64) -> CommittedOffset {
        CommittedOffset {
            offset: at,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        }
    }

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (topic.to_owned(), partition)
    }

    fn in_flight(at: i64) -> PendingOffset {
        PendingOffset {
            offset: offset(at),
            record_offset: None,
        }
    }

    #[test]
    fn the_index_follows_every_change() {
        let mut pending = PendingTxnOffsets::default();
        let (p1, p2) = (ProducerId(1), ProducerId(2));
        pending.put("a", p1, key("t", 0), in_flight(5));
        pending.put("b", p1, key("t", 0), in_flight(6));
        pending.put("a", p2, key("t", 1), in_flight(7));
        assert!(pending.is_pending("a", "t", 0) && pending.is_pending("a", "t", 1));

        let taken = pending.take_producer(p1, |group| group == "a");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, "a");
        assert!(!pending.is_pending("a", "t", 0));
        assert!(pending.is_pending("b", "t", 0), "another partition's group");
        assert_eq!(
            pending.groups_by_producer[&p1],
            BTreeSet::from(["b".into()])
        );

        pending.remove_partition("a", &key("t", 1));
        assert!(!pending.has_group("a"));
        assert!(!pending.groups_by_producer.contains_key(&p2));
        pending.remove_groups(|_| true, false);
        assert!(pending.by_group.is_empty() && pending.groups_by_producer.is_empty());
    }

    #[test]
    fn only_the_offset_still_in_flight_is_marked_or_dropped() {
        let mut pending = PendingTxnOffsets::default();
        let p = ProducerId(1);
        pending.put("g", p, key("t", 0), in_flight(5));
        // A later commit of the same partition replaced it: the first write's outcome is moot.
        pending.put("g", p, key("t", 0), in_flight(9));
        assert!(!pending.mark_written("g", p, &key("t", 0), &offset(5), Offset(100)));
        pending.drop_in_flight("g", p, &key("t", 0), &offset(5));
        assert!(pending.is_pending("g", "t", 0));
        assert!(pending.mark_written("g", p, &key("t", 0), &offset(9), Offset(101)));
        assert!(
            !pending.mark_written("g", p, &key("t", 0), &offset(9), Offset(102)),
            "written once"
        );
        pending.drop_in_flight("g", p, &key("t", 0), &offset(9));
        assert!(
            pending.is_pending("g", "t", 0),
            "written offsets are not in flight"
        );
        pending.remove_groups(|_| true, true);
        assert!(!pending.has_group("g"), "written ones go before a replay");

        pending.put("g", p, key("t", 0), in_flight(3));
        pending.remove_groups(|_| true, true);
        assert!(
            pending.has_group("g"),
            "in-flight ones stay for their write"
        );
        pending.drop_in_flight("g", p, &key("t", 0), &offset(3));
        assert!(!pending.has_group("g") && pending.groups_by_producer.is_empty());
    }
}
