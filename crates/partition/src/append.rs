//! The leader's append path, shared by the produce handler and the group coordinator's
//! `__consumer_offsets` writes: [`Partition::append_as_leader`] checks leadership, the ISR size
//! and idempotent producers' sequences ([`Partition::append_as_coordinator`] only their
//! epochs), writes the batches with the leader epoch stamped in,
//! moves the high watermark and wakes the followers' fetches; it returns what an acknowledgement
//! must wait for. [`Partition::wait_acknowledged`] then waits for the group-commit fsync and for
//! the ISR (the high watermark passing the records), on this partition's own waiters.

use std::time::Instant;

use strom_protocol::batch::{BatchHeader, Batches};
use strom_protocol::control::{encode_marker, Marker};
use strom_types::{ErrorCode, LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs};

use crate::error::PartitionError;
use crate::partition::{check_leader, Partition};
use crate::producers::{ProducerStates, SequenceCheck};
use crate::waiters::Waiter;

/// How many replicas must have the records before a produce is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer at all.
    None,
    /// acks=1: the leader wrote them (to the OS).
    Leader,
    /// acks=all: fsynced on the leader and below the high watermark (every ISR member has
    /// them on disk).
    All,
}

/// How to append.
#[derive(Debug, Clone, Copy)]
pub struct AppendOptions {
    pub acks: Acks,
    /// Stamp this append time into the batches (`message.timestamp.type=LogAppendTime`).
    pub log_append_time: Option<TimestampMs>,
    /// `min.insync.replicas`: acks=all is refused when the ISR is smaller.
    pub min_insync_replicas: i32,
}

/// What an append stored (or, for a producer's retry, had stored before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAppend {
    pub base_offset: Offset,
    pub log_append_time: Option<TimestampMs>,
    pub log_start_offset: Offset,
    /// What an acknowledgement waits for.
    pub ack: AckWait,
    /// False for a retry of batches already written (answered with their original offsets):
    /// nothing new is in the log.
    pub appended: bool,
}

/// An acknowledgement's condition: the records below `end` fsynced here and below the high
/// watermark, while the leader epoch they were appended in still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckWait {
    pub end: Offset,
    pub leader_epoch: LeaderEpoch,
    pub min_insync_replicas: i32,
}

/// Where an acknowledgement stands.
#[derive(Debug)]
pub enum Acknowledgement {
    Pending,
    Done,
    Failed(PartitionError),
}

/// Who wrote the batches of an append, as Kafka's `AppendOrigin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A producer (a Produce request), or a transaction marker: sequences are checked and
    /// retries answered as duplicates.
    Client,
    /// The group coordinator's transactional offset commits (TxnOffsetCommit): written on a
    /// producer's behalf with base sequence 0 every time, as Kafka writes them, so there is no
    /// sequence to check; only the producer's epoch is (a fenced producer's commit is
    /// refused). They open the producer's transaction here like any transactional batch, so
    /// the marker that ends it is accepted and the last stable offset waits for it.
    Coordinator,
}

impl Partition {
    /// Appends whole v2 batches as the leader; see the module docs. The caller has checked
    /// the batches' CRCs and sizes (the request's own rules); their base offsets, leader epoch
    /// and (with `log_append_time`) timestamps are rewritten in place.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        options: AppendOptions,
    ) -> Result<LeaderAppend, PartitionError> {
        self.append_from(records, options, Origin::Client)
    }

    /// [`Partition::append_as_leader`] for batches the group coordinator writes for a
    /// transactional producer (see [`Origin::Coordinator`]): producers' epochs are checked,
    /// their sequences are not, and no batch is taken for a retry of an earlier one.
    pub fn append_as_coordinator(
        &self,
        records: &mut [u8],
        options: AppendOptions,
    ) -> Result<LeaderAppend, PartitionError> {
        self.append_from(records, options, Origin::Coordinator)
    }

    fn append_from(
        &self,
        records: &mut [u8],
        options: AppendOptions,
        origin: Origin,
    ) -> Result<LeaderAppend, PartitionError> {
        let headers: Vec<BatchHeader> = Batches::new(records).map(|(header, _)| header).collect();
        let state = self.state.read();
        let leader_epoch = check_leader(&state, self.local(), None)?;
        if options.acks == Acks::All && (state.isr.len() as i32) < options.min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicas {
                isr: state.isr.len(),
                min: options.min_insync_replicas,
            });
        }
        let ack = |end| AckWait {
            end,
            leader_epoch,
            min_insync_replicas: options.min_insync_replicas,
        };
        let mut store = self.store.lock();
        let sequences = check_sequences(&store.producers, &headers, origin);
        if !matches!(sequences, Ok(None)) {
            // The log checks CRCs as it appends; an answer given without appending (a retry's
            // original offsets, a sequence refusal) must not vouch for a damaged batch either.
            verify_crcs(records)?;
        }
        if let Some((base_offset, last_offset)) = sequences? {
            // A retry of a batch already written: answer with the original offsets.
            return Ok(LeaderAppend {
                base_offset,
                log_append_time: None,
                log_start_offset: store.log.log_start_offset(),
                ack: ack(last_offset.plus(1)),
                appended: false,
            });
        }
        let end_before = store.log.log_end_offset();
        let segment_before = store.log.active_segment_base_offset();
        // A failed write (a full disk) changes nothing here: the log cut off what reached the
        // file, and producer state and the high watermark move only after a write succeeds.
        let info = store
            .log
            .append_with_epoch(records, options.log_append_time, leader_epoch.0)
            .inspect_err(|error| self.write_health.failed(self.topic(), self.index(), error))?;
        self.write_health.succeeded(self.topic(), self.index());
        assert_eq!(info.base_offset, end_before, "offsets only grow, densely");
        debug_assert_crcs(records);
        // The batches are in the log whatever happens next: producer state and the high
        // watermark follow them, and an index entry that could not be written (a full disk)
        // fails the append after that. Reads still see the entry, the next sync writes it
        // first, and the coordinator's retry of the marker finds the transaction ended.
        // A roll snapshots producer state, so a restart or a truncation replays only the new
        // segment.
        let rolled_from =
            (store.log.active_segment_base_offset() != segment_before).then_some(segment_before);
        let from_producers = match headers.iter().any(|header| header.producer_id >= 0) {
            true => &records[..],
            false => &[],
        };
        let indexed = store.record_batches(from_producers, self.high_watermark(), rolled_from);
        let moved = self.advance_high_watermark(&state, &store);
        let log_start_offset = store.log.log_start_offset();
        drop(store);
        drop(state);
        self.log_end_waiters.wake_all();
        if moved {
            self.visible_waiters.wake_all();
        }
        indexed.inspect_err(|error| self.write_health.failed(self.topic(), self.index(), error))?;
        Ok(LeaderAppend {
            base_offset: info.base_offset,
            log_append_time: info.log_append_time,
            log_start_offset,
            ack: ack(info.last_offset.plus(1)),
            appended: true,
        })
    }

    /// Writes a transaction marker (WriteTxnMarkers from the transaction coordinator) for
    /// `producer_id` at `producer_epoch`, ending its transaction here: through the leader's
    /// append path, so it is replicated, acknowledged and fsynced like any batch. A marker with
    /// an epoch older than the producer's is refused with INVALID_PRODUCER_EPOCH.
    pub fn append_marker(
        &self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        marker: Marker,
        now: TimestampMs,
        options: AppendOptions,
    ) -> Result<LeaderAppend, PartitionError> {
        let mut batch = encode_marker(producer_id.0, producer_epoch.0, marker, now);
        self.append_as_leader(&mut batch, options)
    }

    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// transaction not yet ended and replicated here, if lower. read_committed consumers read
    /// up to it.
    pub fn last_stable_offset(&self) -> Offset {
        let store = self.store.lock();
        store.transactions.last_stable_offset(self.high_watermark())
    }

    /// Whether `producer_id` has a transaction open in this partition at `epoch`.
    pub fn in_transaction(&self, producer_id: ProducerId, epoch: ProducerEpoch) -> bool {
        self.store
            .lock()
            .producers
            .in_transaction(producer_id, epoch)
    }

    /// The producers this partition remembers (DescribeProducers).
    pub fn producers(&self) -> Vec<crate::ProducerDescription> {
        self.store.lock().producers.describe()
    }

    /// The aborted transactions with records in `from..to`, for a read_committed fetch: from
    /// the log's aborted-transaction index (Kafka's `collectAbortedTransactions`), which reads
    /// the files of inactive segments that have aborts.
    pub fn aborted_transactions(
        &self,
        from: Offset,
        to: Offset,
    ) -> Result<Vec<crate::AbortedTxn>, PartitionError> {
        let entries = self.store.lock().log.aborted_txns(from, to)?;
        Ok(entries.into_iter().map(crate::AbortedTxn::from).collect())
    }

    /// Where the acknowledgement of an append stands now.
    pub fn acknowledgement(&self, ack: &AckWait) -> Acknowledgement {
        if self.sync.is_poisoned() {
            return Acknowledgement::Failed(PartitionError::StoragePoisoned);
        }
        let state = self.state.read();
        if state.leader_epoch != ack.leader_epoch || !state.is_led_by(self.local()) {
            return Acknowledgement::Failed(PartitionError::LeadershipMoved);
        }
        if self.high_watermark() < ack.end || self.durable_offset() < ack.end {
            return Acknowledgement::Pending;
        }
        if (state.isr.len() as i32) < ack.min_insync_replicas {
            return Acknowledgement::Failed(PartitionError::NotEnoughReplicasAfterAppend {
                min: ack.min_insync_replicas,
            });
        }
        Acknowledgement::Done
    }

    /// Waits until the records of an acks=all append are fsynced here (group commit) and
    /// every ISR member has them, or `deadline` passes (REQUEST_TIMED_OUT).
    pub async fn wait_acknowledged(
        &self,
        ack: &AckWait,
        deadline: tokio::time::Instant,
    ) -> Result<(), PartitionError> {
        self.sync.wait_durable(&self.store, ack.end).await?;
        let waiter = Waiter::new();
        self.visible_waiters.register(&waiter);
        loop {
            match self.acknowledgement(ack) {
                Acknowledgement::Done => return Ok(()),
                Acknowledgement::Failed(error) => return Err(error),
                Acknowledgement::Pending => {}
            }
            tokio::select! {
                () = waiter.woken() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return match self.acknowledgement(ack) {
                        Acknowledgement::Done => Ok(()),
                        Acknowledgement::Failed(error) => Err(error),
                        Acknowledgement::Pending => Err(PartitionError::ReplicationTimedOut),
                    };
                }
            }
        }
    }

    /// Drops the followers that have not caught up within `lag_max` from the ISR (a proposal
    /// to the controller), if this broker leads. Returns whether it proposed.
    pub fn shrink_isr_if_lagging(&self, now: Instant, lag_max: std::time::Duration) -> bool {
        let state = self.state.read();
        if !state.is_led_by(self.local()) || state.isr.len() <= 1 {
            return false;
        }
        let mut store = self.store.lock();
        let lagging = store
            .progress
            .lagging(&state.isr, self.local(), now, lag_max);
        if lagging.is_empty() || store.progress.isr_change_in_flight {
            return false;
        }
        let isr = state
            .isr
            .iter()
            .copied()
            .filter(|member| !lagging.contains(member))
            .collect();
        self.propose_isr(&state, &mut store, isr);
        true
    }
}

/// Checks idempotent producers' sequences (only their epochs for a coordinator's batches).
/// `Some(span)` means the request is a retry of a batch already written at that span of
/// offsets.
fn check_sequences(
    producers: &ProducerStates,
    headers: &[BatchHeader],
    origin: Origin,
) -> Result<Option<(Offset, Offset)>, PartitionError> {
    let refuse = |code, message: &str| PartitionError::Producer {
        code,
        message: message.to_owned(),
    };
    for header in headers.iter().filter(|header| header.producer_id >= 0) {
        if header.is_control() {
            // A transaction marker (clients' control batches are refused by the produce
            // handler): only a zombie coordinator's older epoch is refused.
            producers
                .check_marker(
                    ProducerId(header.producer_id),
                    ProducerEpoch(header.producer_epoch),
                )
                .map_err(|(code, message)| PartitionError::Producer { code, message })?;
            continue;
        }
        if origin == Origin::Coordinator {
            producers
                .check_epoch(header)
                .map_err(|(code, message)| PartitionError::Producer { code, message })?;
            continue;
        }
        match producers.check(header) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } if headers.len() == 1 => return Ok(Some((base_offset, last_offset))),
            SequenceCheck::Duplicate { .. } => {
                return Err(refuse(
                    ErrorCode::DuplicateSequenceNumber,
                    "a duplicate batch arrived among others",
                ))
            }
            SequenceCheck::Reject(code, message) => {
                return Err(PartitionError::Producer { code, message })
            }
        }
    }
    Ok(None)
}

/// Every batch's CRC, as the log would check it on append.
fn verify_crcs(records: &[u8]) -> Result<(), PartitionError> {
    for (header, range) in Batches::new(records) {
        strom_protocol::batch::verify_crc(&records[range], &header)
            .map_err(|error| PartitionError::Log(strom_log::LogError::InvalidBatch(error)))?;
    }
    Ok(())
}

/// In debug builds, checks every batch's CRC (after an append, and when read back), so a bug
/// that damages stored bytes fails where it starts.
pub(crate) fn debug_assert_crcs(records: &[u8]) {
    if cfg!(debug_assertions) {
        let mut batches = Batches::new(records);
        for (header, range) in batches.by_ref() {
            if let Err(error) = strom_protocol::batch::verify_crc(&records[range], &header) {
                panic!("batch at offset {} damaged: {error}", header.base_offset);
            }
        }
        assert!(batches.error().is_none(), "{:?}", batches.error());
    }
}
