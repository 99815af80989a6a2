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
//! Pure logic, no I/O: the partition consults it and records appended batches while it holds
//! its store lock; on open it is loaded from a snapshot (`snapshot`) and brought up to the log
//! end from the batch headers after it, and after a truncation it is rebuilt the same way.

use std::collections::{HashMap, VecDeque};

use strom_protocol::batch::BatchHeader;
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

/// One producer's epoch and latest batches, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: ProducerEpoch,
    pub(crate) batches: VecDeque<BatchSpan>,
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

    /// Remembers a batch that was written; `header` carries its assigned base offset.
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let epoch = ProducerEpoch(header.producer_epoch);
        let entry = self
            .producers
            .entry(ProducerId(header.producer_id))
            .or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == REMEMBERED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSpan {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
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
