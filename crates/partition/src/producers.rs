//! Idempotent producers: per-partition sequence checks that make retries safe (KIP-98).
//!
//! Each partition remembers, per producer id, the producer's epoch and its last few batches
//! (first and last sequence, first and last offset). A batch is then one of:
//! - a duplicate of a remembered batch (a retry whose first attempt was written): it is not
//!   written again, and the producer is told the offset of the original;
//! - the next in sequence (`first_sequence == last_sequence + 1`, wrapping at `i32::MAX`), or
//!   sequence 0 of a newer epoch, or any sequence of a producer this partition has no state
//!   for (its state was lost to retention or a restart): it is appended;
//! - anything else: OUT_OF_ORDER_SEQUENCE_NUMBER, or INVALID_PRODUCER_EPOCH for an older epoch.
//!
//! Transactional producers (KIP-98) are idempotent producers whose batches carry the
//! transactional attribute: a producer's first such batch opens its transaction here
//! ([`TxnEvent::Began`], at that batch's base offset), and the control batch that ends it (a
//! COMMIT or ABORT marker from the transaction coordinator) closes it ([`TxnEvent::Ended`]);
//! `transactions` turns those events into the last stable offset and the aborted list.
//!
//! Pure logic, no I/O: the partition consults it and records appended batches while it holds
//! its store lock; on open it is loaded from a snapshot (`snapshot`) and brought up to the log
//! end from the batches after it, and after a truncation it is rebuilt the same way.

use std::collections::{HashMap, VecDeque};

use strom_protocol::batch::BatchHeader;
use strom_protocol::control::{Marker, MarkerType};
use strom_types::{ErrorCode, Offset, ProducerEpoch, ProducerId};

/// How many of a producer's latest batches are kept for duplicate detection; Kafka keeps 5,
/// matching `max.in.flight.requests.per.connection` <= 5 for idempotent producers.
pub const REMEMBERED_BATCHES_PER_PRODUCER: usize = 5;

/// One remembered batch of a producer: its sequences and where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSpan {
    pub(crate) first_sequence: i32,
    pub(crate) last_sequence: i32,
    pub(crate) base_offset: Offset,
    pub(crate) last_offset: Offset,
}

/// One producer's epoch and latest batches, oldest first, and where its open transaction (if
/// any) began in this partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: ProducerEpoch,
    pub(crate) batches: VecDeque<BatchSpan>,
    pub(crate) txn_first_offset: Option<Offset>,
}

/// What recording a batch did to its producer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEvent {
    /// The producer's first transactional batch since its last marker: a transaction is open
    /// here from `first_offset`.
    Began {
        producer_id: ProducerId,
        first_offset: Offset,
    },
    /// A marker ended the producer's transaction.
    Ended(CompletedTxn),
}

/// A transaction a marker ended: its first offset here (`None` when the producer wrote
/// nothing to this partition in it, e.g. a marker retried or sent to every partition of an
/// aborted transaction) and the marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Option<Offset>,
    pub marker_offset: Offset,
    pub aborted: bool,
}

/// One producer of a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The last sequence written; -1 when no batch of this epoch is remembered.
    pub last_sequence: i32,
    /// Where its open transaction began here, if one is open.
    pub txn_first_offset: Option<Offset>,
}

/// What to do with one batch from an idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    Append,
    /// Already written at `base_offset..=last_offset`: answer with those, write nothing.
    Duplicate {
        base_offset: Offset,
        last_offset: Offset,
    },
    /// Refuse it.
    Reject(ErrorCode, String),
}

/// The idempotent producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<ProducerId, ProducerEntry>,
}

fn last_sequence(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0.
    ((header.base_sequence as i64 + header.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn follows(previous_last: i32, next_first: i32) -> bool {
    if previous_last == i32::MAX {
        next_first == 0
    } else {
        next_first == previous_last + 1
    }
}

impl ProducerStates {
    /// Decides about a batch that carries a producer id (`producer_id >= 0`).
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_epoch < 0 || header.base_sequence < 0 {
            return SequenceCheck::Reject(
                ErrorCode::InvalidRecord,
                format!(
                    "producer {} sent epoch {} and sequence {}",
                    header.producer_id, header.producer_epoch, header.base_sequence
                ),
            );
        }
        let epoch = ProducerEpoch(header.producer_epoch);
        let Some(entry) = self.producers.get(&ProducerId(header.producer_id)) else {
            return SequenceCheck::Append;
        };
        if epoch < entry.epoch {
            return SequenceCheck::Reject(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is older than the current epoch {}",
                    header.producer_id, header.producer_epoch, entry.epoch
                ),
            );
        }
        if epoch > entry.epoch {
            if header.base_sequence != 0 {
                return SequenceCheck::Reject(
                    ErrorCode::OutOfOrderSequenceNumber,
                    format!(
                        "producer {} started epoch {} at sequence {}, not 0",
                        header.producer_id, header.producer_epoch, header.base_sequence
                    ),
                );
            }
            return SequenceCheck::Append;
        }
        let span = (header.base_sequence, last_sequence(header));
        if let Some(original) = entry
            .batches
            .iter()
            .find(|batch| (batch.first_sequence, batch.last_sequence) == span)
        {
            return SequenceCheck::Duplicate {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if !follows(last.last_sequence, header.base_sequence) => {
                SequenceCheck::Reject(
                    ErrorCode::OutOfOrderSequenceNumber,
                    format!(
                        "producer {} sent sequence {} after {}",
                        header.producer_id, header.base_sequence, last.last_sequence
                    ),
                )
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Checks a batch the group coordinator writes for a producer (a transactional offset
    /// commit): its epoch only, since such batches carry no sequence of the producer's. An
    /// older epoch than the producer's is refused with INVALID_PRODUCER_EPOCH, as a client's
    /// batch would be.
    pub fn check_epoch(&self, header: &BatchHeader) -> Result<(), (ErrorCode, String)> {
        if header.producer_epoch < 0 {
            return Err((
                ErrorCode::InvalidRecord,
                format!(
                    "producer {} sent epoch {}",
                    header.producer_id, header.producer_epoch
                ),
            ));
        }
        match self.producers.get(&ProducerId(header.producer_id)) {
            Some(entry) if ProducerEpoch(header.producer_epoch) < entry.epoch => Err((
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is older than the current epoch {}",
                    header.producer_id, header.producer_epoch, entry.epoch
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks a transaction marker the coordinator asks to write for `producer_id` at
    /// `epoch`: an older epoch than the producer's is refused (a zombie coordinator's marker),
    /// as Kafka refuses it with INVALID_PRODUCER_EPOCH.
    pub fn check_marker(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
    ) -> Result<(), (ErrorCode, String)> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err((
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "marker for producer {} carries epoch {}, older than the current epoch {}",
                    producer_id.0, epoch.0, entry.epoch
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Remembers a data batch that was written; `header` carries its assigned base offset.
    /// Returns [`TxnEvent::Began`] when it opens its producer's transaction here.
    pub fn record(&mut self, header: &BatchHeader) -> Option<TxnEvent> {
        if header.producer_id < 0 || header.is_control() {
            return None;
        }
        let entry = self.entry_at_epoch(header);
        if entry.batches.len() == REMEMBERED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSpan {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(header.base_offset);
            return Some(TxnEvent::Began {
                producer_id: ProducerId(header.producer_id),
                first_offset: header.base_offset,
            });
        }
        None
    }

    /// Records a marker that was written (`header` is its control batch, with its offset):
    /// ends the producer's transaction here.
    pub fn record_marker(&mut self, header: &BatchHeader, marker: Marker) -> CompletedTxn {
        let entry = self.entry_at_epoch(header);
        CompletedTxn {
            producer_id: ProducerId(header.producer_id),
            first_offset: entry.txn_first_offset.take(),
            marker_offset: header.base_offset,
            aborted: marker.kind == MarkerType::Abort,
        }
    }

    /// The entry of `header`'s producer, moved to `header`'s epoch (a new epoch forgets the
    /// old one's batches; an open transaction stays open until its marker).
    fn entry_at_epoch(&mut self, header: &BatchHeader) -> &mut ProducerEntry {
        let epoch = ProducerEpoch(header.producer_epoch);
        let entry = self
            .producers
            .entry(ProducerId(header.producer_id))
            .or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry
    }

    /// The transactions open here: (first offset, producer), any order.
    pub fn open_transactions(&self) -> impl Iterator<Item = (Offset, ProducerId)> + '_ {
        self.producers
            .iter()
            .filter_map(|(id, entry)| entry.txn_first_offset.map(|first| (first, *id)))
    }

    /// Whether `producer_id` has a transaction open here at `epoch`: its later transactional
    /// batches need no check with the coordinator (KIP-890 verification).
    pub fn in_transaction(&self, producer_id: ProducerId, epoch: ProducerEpoch) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|entry| entry.epoch == epoch && entry.txn_first_offset.is_some())
    }

    /// Every producer as DescribeProducers shows it, by producer id.
    pub fn describe(&self) -> Vec<ProducerDescription> {
        let mut described: Vec<ProducerDescription> = self
            .producers
            .iter()
            .map(|(id, entry)| ProducerDescription {
                producer_id: *id,
                producer_epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |batch| batch.last_sequence),
                txn_first_offset: entry.txn_first_offset,
            })
            .collect();
        described.sort_by_key(|producer| producer.producer_id);
        described
    }

    /// How many producers are remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer's entry, for the snapshot.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (ProducerId, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// Puts back one producer's entry read from a snapshot.
    pub(crate) fn insert(&mut self, id: ProducerId, entry: ProducerEntry) {
        self.producers.insert(id, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_types::TimestampMs;

    fn batch(
        producer_id: i64,
        epoch: i16,
        sequence: i32,
        count: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            base_offset: Offset(base_offset),
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: TimestampMs(0),
            max_timestamp: TimestampMs(0),
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            record_count: count,
        }
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&batch(7, 0, 0, 3, 0)), SequenceCheck::Append);
        states.record(&batch(7, 0, 0, 3, 0));
        assert_eq!(states.check(&batch(7, 0, 3, 2, 3)), SequenceCheck::Append);
        states.record(&batch(7, 0, 3, 2, 3));
        assert_eq!(
            states.check(&batch(7, 0, 0, 3, 99)),
            SequenceCheck::Duplicate {
                base_offset: Offset(0),
                last_offset: Offset(2)
            }
        );
        assert!(matches!(
            states.check(&batch(7, 0, 9, 1, 5)),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber, _)
        ));
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut states = ProducerStates::default();
        states.record(&batch(1, 2, 0, 1, 0));
        assert!(matches!(
            states.check(&batch(1, 1, 1, 1, 1)),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch, _)
        ));
        assert!(matches!(
            states.check(&batch(1, 3, 5, 1, 1)),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber, _)
        ));
        assert_eq!(states.check(&batch(1, 3, 0, 1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn unknown_producers_may_start_anywhere_and_sequences_wrap() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&batch(4, 0, 500, 1, 0)), SequenceCheck::Append);
        states.record(&batch(4, 0, i32::MAX - 1, 2, 0));
        assert_eq!(states.check(&batch(4, 0, 0, 1, 2)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_latest_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for sequence in 0..10 {
            states.record(&batch(2, 0, sequence, 1, sequence as i64));
        }
        assert!(matches!(
            states.check(&batch(2, 0, 5, 1, 0)),
            SequenceCheck::Duplicate { .. }
        ));
        assert!(matches!(
            states.check(&batch(2, 0, 4, 1, 0)),
            SequenceCheck::Reject(..)
        ));
    }
}
