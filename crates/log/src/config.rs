//! Per-partition settings, with Kafka's names and defaults.

use strom_types::limits::INDEX_INTERVAL_BYTES;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Index entries store file positions as 32-bit integers, so no segment may grow past this.
pub(crate) const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// A partition log's settings; the broker derives them from the topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: a segment is rolled before it would grow past this (capped at 2 GiB - 1,
    /// the largest position an index entry can hold).
    pub segment_bytes: u64,
    /// `segment.ms`: a segment is rolled when an append's timestamp is this much newer than the
    /// segment's first batch (Kafka measures with record timestamps, not the wall clock).
    pub segment_ms: u64,
    /// `retention.ms`: segments whose newest record is older than this are deleted; -1 keeps
    /// everything.
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest segments are deleted while the log is larger than this;
    /// -1 means no size limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of batches between two entries of the sparse indexes.
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * DAY_MS,
            retention_ms: (7 * DAY_MS) as i64,
            retention_bytes: -1,
            index_interval_bytes: INDEX_INTERVAL_BYTES,
        }
    }
}

impl LogConfig {
    /// The size a segment is actually rolled at: `segment_bytes`, capped by what indexes can address.
    pub fn segment_bytes_effective(&self) -> u64 {
        self.segment_bytes.min(SEGMENT_BYTES_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = LogConfig::default();
        assert_eq!(config.segment_bytes, 1_073_741_824);
        assert_eq!(config.segment_ms, 604_800_000);
        assert_eq!(config.retention_ms, 604_800_000);
        assert_eq!(config.retention_bytes, -1);
        assert_eq!(config.index_interval_bytes, 4096);
    }

    #[test]
    fn segment_size_is_capped_by_index_positions() {
        let config = LogConfig {
            segment_bytes: u64::MAX,
            ..LogConfig::default()
        };
        assert_eq!(config.segment_bytes_effective(), i32::MAX as u64);
        let small = LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        };
        assert_eq!(small.segment_bytes_effective(), 100);
    }
}
