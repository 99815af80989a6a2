//! The states of a transactional id, with Kafka's numbers, names and allowed transitions
//! (`TransactionState` in Kafka's `TransactionMetadata.scala`).
//!
//! The number is what `__transaction_state` stores; the name is what DescribeTransactions and
//! ListTransactions show and filter on. A state lists the states it may be entered from; the
//! metadata checks that list before it prepares any transition.
//!
//! ```text
//!   Empty ──AddPartitions/AddOffsets──> Ongoing ──EndTxn(commit)──> PrepareCommit ──markers──> CompleteCommit
//!     ^                                  │  ^ │                                                   │
//!     │                                  │  └─┘ more partitions                                   │
//!     │                                  └────EndTxn(abort), timeout, re-init──> PrepareAbort ──markers──> CompleteAbort
//!     └──────────────── InitProducerId (epoch bump) from Empty/CompleteCommit/CompleteAbort ──────┘
//! ```
//! Dead is never written: an expired id is removed by a tombstone. PrepareEpochFence is never
//! written either: it marks, in memory, an Ongoing transaction whose producer is being fenced
//! on its way to PrepareAbort.

/// Where a transactional id's transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction open: after InitProducerId, or never used.
    Empty,
    /// A transaction has partitions and is open.
    Ongoing,
    /// The producer asked to commit; markers are being written.
    PrepareCommit,
    /// The transaction is being aborted; markers are being written.
    PrepareAbort,
    /// Every partition has its commit marker.
    CompleteCommit,
    /// Every partition has its abort marker.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// The producer is being fenced (epoch bumped) before its transaction is aborted.
    PrepareEpochFence,
}

use TransactionState::*;

impl TransactionState {
    /// Every state, in id order.
    pub const ALL: [TransactionState; 8] = [
        Empty,
        Ongoing,
        PrepareCommit,
        PrepareAbort,
        CompleteCommit,
        CompleteAbort,
        Dead,
        PrepareEpochFence,
    ];

    /// The number `__transaction_state` stores (`TransactionStatus`).
    pub fn id(self) -> i8 {
        match self {
            Empty => 0,
            Ongoing => 1,
            PrepareCommit => 2,
            PrepareAbort => 3,
            CompleteCommit => 4,
            CompleteAbort => 5,
            Dead => 6,
            PrepareEpochFence => 7,
        }
    }

    /// The state with this number; `None` for a number Kafka does not define.
    pub fn from_id(id: i8) -> Option<TransactionState> {
        TransactionState::ALL
            .into_iter()
            .find(|state| state.id() == id)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions show it.
    pub fn name(self) -> &'static str {
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state with this name (ListTransactions' state filter); names are case-sensitive.
    pub fn from_name(name: &str) -> Option<TransactionState> {
        TransactionState::ALL
            .into_iter()
            .find(|state| state.name() == name)
    }

    /// The states this one may be entered from.
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether a transactional id in this state may move to `next`.
    pub fn can_transition_to(self, next: TransactionState) -> bool {
        next.valid_previous_states().contains(&self)
    }

    /// Whether an id resting in this state expires after `transactional.id.expiration.ms`.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(self, Empty | CompleteCommit | CompleteAbort)
    }

    /// Whether a transaction is open or finishing (Kafka's `hasPendingTransaction`).
    pub fn has_pending_transaction(self) -> bool {
        matches!(self, Ongoing | PrepareCommit | PrepareAbort)
    }

    /// Whether this state can be written to, and loaded from, `__transaction_state`.
    pub fn is_stored(self) -> bool {
        !matches!(self, Dead | PrepareEpochFence)
    }
}

impl std::fmt::Display for TransactionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_kafkas() {
        let expected = [
            (Empty, 0, "Empty"),
            (Ongoing, 1, "Ongoing"),
            (PrepareCommit, 2, "PrepareCommit"),
            (PrepareAbort, 3, "PrepareAbort"),
            (CompleteCommit, 4, "CompleteCommit"),
            (CompleteAbort, 5, "CompleteAbort"),
            (Dead, 6, "Dead"),
            (PrepareEpochFence, 7, "PrepareEpochFence"),
        ];
        for (state, id, name) in expected {
            assert_eq!(state.id(), id);
            assert_eq!(state.name(), name);
            assert_eq!(TransactionState::from_id(id), Some(state));
            assert_eq!(TransactionState::from_name(name), Some(state));
        }
        assert_eq!(TransactionState::from_id(8), None);
        assert_eq!(TransactionState::from_id(-1), None);
        assert_eq!(TransactionState::from_name("ongoing"), None);
    }

    #[test]
    fn transitions_follow_kafkas_valid_previous_states() {
        assert!(Empty.can_transition_to(Ongoing));
        assert!(CompleteCommit.can_transition_to(Ongoing));
        assert!(Ongoing.can_transition_to(Ongoing));
        assert!(Ongoing.can_transition_to(PrepareCommit));
        assert!(Ongoing.can_transition_to(PrepareAbort));
        assert!(PrepareEpochFence.can_transition_to(PrepareAbort));
        assert!(PrepareCommit.can_transition_to(CompleteCommit));
        assert!(PrepareAbort.can_transition_to(CompleteAbort));
        assert!(CompleteAbort.can_transition_to(Empty));
        assert!(Empty.can_transition_to(Dead));

        assert!(!Empty.can_transition_to(PrepareCommit));
        assert!(!PrepareCommit.can_transition_to(PrepareAbort));
        assert!(!PrepareCommit.can_transition_to(CompleteAbort));
        assert!(!PrepareEpochFence.can_transition_to(PrepareCommit));
        assert!(!Ongoing.can_transition_to(Empty));
        assert!(!Ongoing.can_transition_to(Dead));
        for state in TransactionState::ALL {
            assert!(!Dead.can_transition_to(state), "Dead is final, not {state}");
        }
    }

    #[test]
    fn only_resting_states_expire() {
        let expiring: Vec<_> = TransactionState::ALL
            .into_iter()
            .filter(|s| s.is_expiration_allowed())
            .collect();
        assert_eq!(expiring, [Empty, CompleteCommit, CompleteAbort]);
    }
}
