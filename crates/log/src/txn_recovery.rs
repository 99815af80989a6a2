//! Checking and repairing the segments' `.txnindex` files when a log is opened.
//!
//! A segment's index is trusted as it is unless recovery has reason to doubt it:
//! - the segment was re-read in full (the active segment, always; an inactive one whose other
//!   indexes failed their checks): its ABORT markers are known, so the index is compared with
//!   them. A crash may have cut a torn tail (entries whose marker is gone are dropped) or have
//!   come between a marker's write and its entry's (the marker has no entry);
//! - its file is not a well-formed index (torn, out of order): it is rebuilt from the markers;
//! - an interrupted compaction swap deleted it (see `swap`): it is rebuilt from the markers.
//!
//! An inactive segment's index needs no such check otherwise: it was fsynced before the
//! segment rolled (see `transactions`), like everything it indexes.
//!
//! A marker without an entry needs its transaction's first offset, which the log alone does
//! not keep: [`Log::find_txn_first_offset`] finds it by walking batch headers back from the
//! marker to the producer's previous marker (each producer has at most one transaction open
//! in a partition). Such a rebuilt entry's last stable offset is the log start offset, a lower
//! bound that never ends a search early. A transaction without data left in the log (none
//! written here, or compaction removed it) needs no entry. Rebuilding is never fatal: at worst
//! it reads the log back to its start.

use std::ops::ControlFlow;

use strom_protocol::batch::BatchHeader;
use strom_protocol::control::{read_marker, MarkerType};
use strom_types::Offset;

use crate::error::LogError;
use crate::log::Log;
use crate::scan::{self, Check, WalkStart};
use crate::segment::Segment;
use crate::txn_index::{AbortedTxnEntry, TxnIndex};

/// An ABORT marker found in a segment: its offset and producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortMarker {
    pub offset: Offset,
    pub producer_id: i64,
}

impl AbortMarker {
    /// The ABORT marker `header` and `bytes` hold, if they are one.
    pub fn of(header: &BatchHeader, bytes: &[u8]) -> Option<AbortMarker> {
        if !header.is_control() {
            return None;
        }
        let marker = read_marker(header, bytes).ok()?;
        (marker.kind == MarkerType::Abort).then_some(AbortMarker {
            offset: header.base_offset,
            producer_id: header.producer_id,
        })
    }
}

/// How a segment's index must change: the entries that match a marker and the markers that
/// have no entry yet.
#[derive(Debug)]
pub(crate) struct TxnRepair {
    base_offset: Offset,
    kept: Vec<AbortedTxnEntry>,
    missing: Vec<AbortMarker>,
}

/// Loads the segment's `.txnindex` if it has one. Returns false if the file is not an index
/// (it is left for the repair to replace; the segment's index starts empty).
pub(crate) fn load(segment: &mut Segment) -> Result<bool, LogError> {
    match TxnIndex::load(segment.txn_index.path())? {
        Ok(index) => {
            segment.txn_index = index;
            Ok(true)
        }
        Err(reason) => {
            tracing::warn!(path = %segment.txn_index.path().display(), %reason, "rebuilding an unreadable aborted-transaction index");
            Ok(false)
        }
    }
}

/// Compares the segment's index with its ABORT markers: `aborts` when recovery re-read the
/// segment, otherwise read here if `doubtful` (see the module docs). `None`: nothing to change.
pub(crate) fn check(
    segment: &Segment,
    aborts: Option<Vec<AbortMarker>>,
    doubtful: bool,
) -> Result<Option<TxnRepair>, LogError> {
    let aborts = match aborts {
        Some(aborts) => aborts,
        None if doubtful => scan_aborts(segment)?,
        None => return Ok(None),
    };
    let entries = segment.txn_index.entries()?;
    let kept: Vec<AbortedTxnEntry> = entries
        .iter()
        .filter(|entry| {
            aborts.iter().any(|marker| {
                marker.offset == entry.last_offset && marker.producer_id == entry.producer_id
            })
        })
        .copied()
        .collect();
    let missing: Vec<AbortMarker> = aborts
        .into_iter()
        .filter(|marker| !kept.iter().any(|entry| entry.last_offset == marker.offset))
        .collect();
    if !doubtful && kept.len() == entries.len() && missing.is_empty() {
        return Ok(None);
    }
    if kept.len() != entries.len() {
        tracing::warn!(path = %segment.txn_index.path().display(), dropped = entries.len() - kept.len(), "dropping aborted-transaction index entries whose markers are gone");
    }
    Ok(Some(TxnRepair {
        base_offset: segment.base_offset,
        kept,
        missing,
    }))
}

/// Every ABORT marker in the segment, read in full.
fn scan_aborts(segment: &Segment) -> Result<Vec<AbortMarker>, LogError> {
    let mut aborts = Vec::new();
    let start = WalkStart {
        position: 0,
        next_offset: segment.base_offset,
    };
    let file = segment.file.get()?;
    let end = scan::walk_batches(segment.segment_file(&file), start, |header, _, bytes| {
        aborts.extend(AbortMarker::of(header, bytes));
        Ok(ControlFlow::Continue(()))
    })?;
    match end.damage {
        // Recovery has just checked the segment, so damage here is the disk's doing.
        Some(damage) => Err(LogError::corrupt(
            &segment.path,
            format!("at byte {}: {damage}", end.position),
        )),
        None => Ok(aborts),
    }
}

impl Log {
    /// Applies the repairs recovery planned: finds the first offset of each marker's
    /// transaction that has no entry, and rewrites each index. Returns the files rewritten.
    pub(crate) fn repair_txn_indexes(
        &mut self,
        repairs: Vec<TxnRepair>,
    ) -> Result<Vec<std::path::PathBuf>, LogError> {
        let mut rewritten = Vec::new();
        for repair in repairs {
            let mut entries = repair.kept;
            for marker in &repair.missing {
                let Some(first_offset) =
                    self.find_txn_first_offset(marker.producer_id, marker.offset)?
                else {
                    continue;
                };
                entries.push(AbortedTxnEntry {
                    producer_id: marker.producer_id,
                    first_offset,
                    last_offset: marker.offset,
                    last_stable_offset: self.log_start_offset,
                });
            }
            entries.sort_by_key(|entry| entry.last_offset);
            let at = self.segment_holding(repair.base_offset);
            let segment = &mut self.segments[at];
            assert_eq!(segment.base_offset, repair.base_offset);
            tracing::info!(path = %segment.txn_index.path().display(), entries = entries.len(), rebuilt = repair.missing.len(), "repaired an aborted-transaction index");
            segment.txn_index.replace(entries)?;
            rewritten.push(segment.txn_index.path().to_path_buf());
        }
        Ok(rewritten)
    }

    /// The first offset of the transaction `producer_id` aborted with the marker at `marker`:
    /// the producer's first transactional batch after its previous control batch, walking
    /// segments back from the marker's. `None` if no batch of it is left in the log.
    pub(crate) fn find_txn_first_offset(
        &self,
        producer_id: i64,
        marker: Offset,
    ) -> Result<Option<Offset>, LogError> {
        let mut later_first = None;
        for segment in self.segments[..=self.segment_holding(marker)].iter().rev() {
            let found = producer_batches_before(segment, producer_id, marker)?;
            if found.ended_before {
                return Ok(found.first_data.or(later_first));
            }
            later_first = found.first_data.or(later_first);
        }
        Ok(later_first)
    }
}

/// What one segment holds of a producer below some offset.
struct ProducerBatches {
    /// A control batch of the producer (the end of its previous transaction) is there.
    ended_before: bool,
    /// The producer's first transactional data batch after that control batch (or after the
    /// segment's start, if there is none).
    first_data: Option<Offset>,
}

/// The producer's batches in `segment` below `end`, by their headers.
fn producer_batches_before(
    segment: &Segment,
    producer_id: i64,
    end: Offset,
) -> Result<ProducerBatches, LogError> {
    let mut found = ProducerBatches {
        ended_before: false,
        first_data: None,
    };
    let start = WalkStart {
        position: 0,
        next_offset: segment.base_offset,
    };
    let file = segment.file.get()?;
    let walked = scan::walk(
        segment.segment_file(&file),
        start,
        Check::Headers,
        |header, _| {
            if header.base_offset >= end {
                return ControlFlow::Break(());
            }
            if header.producer_id == producer_id {
                if header.is_control() {
                    found.ended_before = true;
                    found.first_data = None;
                } else if header.is_transactional() && found.first_data.is_none() {
                    found.first_data = Some(header.base_offset);
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    match walked.damage {
        Some(damage) => Err(LogError::corrupt(
            &segment.path,
            format!("at byte {}: {damage}", walked.position),
        )),
        None => Ok(found),
    }
}
