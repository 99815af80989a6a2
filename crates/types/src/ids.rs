//! Distinct newtypes for ids and offsets.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// The position of a record in a partition; dense and only ever growing.
    Offset(i64)
);
id_type!(
    /// A partition's number within its topic.
    PartitionIndex(i32)
);
id_type!(
    /// The generation of a partition's leadership.
    LeaderEpoch(i32)
);
id_type!(
    /// A node's id in the cluster.
    BrokerId(i32)
);
id_type!(
    /// An idempotent or transactional producer's id.
    ProducerId(i64)
);
id_type!(
    /// The generation of a producer id: a newer epoch fences the older one's writes.
    ProducerEpoch(i16)
);
id_type!(
    /// The generation of a coordinator's ownership of a `__transaction_state` partition: the
    /// partition's leader epoch when this node became its leader. Transaction markers carry it,
    /// so a partition leader can refuse markers from a coordinator that has been replaced.
    CoordinatorEpoch(i32)
);
id_type!(
    /// Milliseconds since the Unix epoch.
    TimestampMs(i64)
);

impl Offset {
    /// The offset `count` records after this one.
    pub fn plus(self, count: i64) -> Offset {
        Offset(self.0 + count)
    }

    /// How many records lie between `earlier` and this offset.
    pub fn minus(self, earlier: Offset) -> i64 {
        self.0 - earlier.0
    }
}

impl LeaderEpoch {
    /// No epoch known (Kafka's -1).
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

impl BrokerId {
    /// No broker (Kafka's -1: no leader, or a consumer rather than a replica).
    pub const NONE: BrokerId = BrokerId(-1);
}

impl ProducerId {
    /// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
    pub const NONE: ProducerId = ProducerId(-1);
}

impl ProducerEpoch {
    /// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

impl TimestampMs {
    /// Kafka's "no timestamp" marker.
    pub const NONE: TimestampMs = TimestampMs(-1);

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn now() -> TimestampMs {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        TimestampMs(since_epoch.as_millis() as i64)
    }
}
