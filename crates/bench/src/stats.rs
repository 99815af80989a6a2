//! Figures: latency histograms and their percentiles, throughput, and how they print; no I/O.
//!
//! Latencies go into an HDR histogram in microseconds with three significant digits (a value
//! is off by at most 0.1 %), up to an hour; longer ones are clamped to an hour. Percentiles
//! are read at the quantile (p50 is the smallest value at or above half the samples).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency recorded as itself (one hour, in microseconds); longer ones are clamped.
const LATENCY_US_MAX: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram.
#[derive(Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
                .expect("valid histogram bounds"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.record_us(latency.as_micros().min(u128::from(LATENCY_US_MAX)) as u64);
    }

    /// Records a latency in microseconds (below 1 µs counts as 1 µs).
    pub fn record_us(&mut self, micros: u64) {
        self.histogram
            .saturating_record(micros.clamp(1, LATENCY_US_MAX));
    }

    pub fn add(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds add up");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles, or `None` without a sample.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let at = |quantile: f64| ms(self.histogram.value_at_quantile(quantile));
        Some(LatencySummary {
            samples: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1_000.0,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(self.histogram.max()),
        })
    }
}

/// Percentiles of a latency, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// How much went through in how long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    pub records: u64,
    /// Key plus value bytes of those records (what Kafka's perf tools count).
    pub payload_bytes: u64,
    /// Record-batch bytes as they travelled (headers and framing included).
    pub batch_bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Batch megabytes per second.
    pub batch_mb_per_s: f64,
}

impl Throughput {
    pub fn new(
        records: u64,
        payload_bytes: u64,
        batch_bytes: u64,
        elapsed: Duration,
    ) -> Throughput {
        let seconds = elapsed.as_secs_f64();
        let per_s = |count: u64| {
            if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            }
        };
        Throughput {
            records,
            payload_bytes,
            batch_bytes,
            seconds,
            records_per_s: per_s(records),
            mb_per_s: per_s(payload_bytes) / 1e6,
            batch_mb_per_s: per_s(batch_bytes) / 1e6,
        }
    }
}

/// A count with a k/M suffix: 1234567 -> "1.23M".
pub fn human_count(value: f64) -> String {
    match value.abs() {
        v if v >= 1e9 => format!("{:.2}G", value / 1e9),
        v if v >= 1e6 => format!("{:.2}M", value / 1e6),
        v if v >= 1e4 => format!("{:.1}k", value / 1e3),
        v if v >= 100.0 => format!("{value:.0}"),
        _ => format!("{value:.1}"),
    }
}

/// Milliseconds with a precision that suits their size: 0.0123 -> "0.012", 12.3 -> "12.3".
pub fn human_ms(ms: f64) -> String {
    match ms {
        v if v >= 100.0 => format!("{ms:.0}"),
        v if v >= 10.0 => format!("{ms:.1}"),
        v if v >= 1.0 => format!("{ms:.2}"),
        _ => format!("{ms:.3}"),
    }
}

/// Formats rows as columns two spaces apart, the first column left-aligned and the others
/// right-aligned; a row holding one cell is a section title.
pub fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter(|row| row.len() > 1)
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                let width = if row.len() > 1 { widths[column] } else { 0 };
                let pad = width.saturating_sub(cell.chars().count());
                if column == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The median and the range of several runs' figures, to show the spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs: sorted.len(),
        })
    }

    /// "median" for one run, "median (min-max)" for several.
    pub fn format(&self, show: impl Fn(f64) -> String) -> String {
        if self.runs <= 1 || self.min == self.max {
            show(self.median)
        } else {
            format!(
                "{} ({}–{})",
                show(self.median),
                show(self.min),
                show(self.max)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut latencies = Latencies::default();
        for micros in 1..=10_000 {
            latencies.record_us(micros);
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.samples, 10_000);
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.001 + 1e-9;
        assert!(close(summary.p50_ms, 5.0), "{summary:?}");
        assert!(close(summary.p99_ms, 9.9), "{summary:?}");
        assert!(close(summary.p999_ms, 9.99), "{summary:?}");
        assert!(close(summary.max_ms, 10.0), "{summary:?}");
        assert!(close(summary.mean_ms, 5.0005), "{summary:?}");
    }

    #[test]
    fn a_rare_outlier_shows_in_the_tail_only() {
        let mut latencies = Latencies::default();
        for _ in 0..999 {
            latencies.record(Duration::from_micros(200));
        }
        latencies.record(Duration::from_secs(2));
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.p50_ms, 0.2);
        assert_eq!(summary.p99_ms, 0.2);
        assert!((summary.max_ms - 2_000.0).abs() < 2.0, "{summary:?}");
        assert!(
            summary.p999_ms <= 0.2 + 1e-9,
            "the 999th of 1000 samples is still 200 µs"
        );
    }

    #[test]
    fn histograms_add_and_clamp() {
        let mut first = Latencies::default();
        first.record(Duration::from_nanos(10)); // below 1 µs counts as 1 µs
        let mut second = Latencies::default();
        second.record(Duration::from_secs(10 * 3_600)); // clamped to an hour
        first.add(&second);
        let summary = first.summary().unwrap();
        assert_eq!(summary.samples, 2);
        assert_eq!(summary.p50_ms, 0.001);
        assert!((summary.max_ms - 3_600_000.0).abs() / 3_600_000.0 < 0.001);
        assert!(Latencies::default().summary().is_none());
    }

    #[test]
    fn throughput_per_second() {
        let throughput = Throughput::new(2_000, 200_000, 220_000, Duration::from_millis(500));
        assert_eq!(throughput.records_per_s, 4_000.0);
        assert_eq!(throughput.mb_per_s, 0.4);
        assert_eq!(throughput.batch_mb_per_s, 0.44);
        assert_eq!(Throughput::new(5, 5, 5, Duration::ZERO).records_per_s, 0.0);
    }

    #[test]
    fn spreads_and_formatting() {
        let spread = Spread::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(
            (spread.median, spread.min, spread.max, spread.runs),
            (2.5, 1.0, 10.0, 4)
        );
        assert_eq!(spread.format(|v| format!("{v:.1}")), "2.5 (1.0–10.0)");
        assert_eq!(Spread::of(&[4.0]).unwrap().format(|v| format!("{v}")), "4");
        assert!(Spread::of(&[]).is_none());
        assert_eq!(human_count(1_234_567.0), "1.23M");
        assert_eq!(human_count(12_345.0), "12.3k");
        assert_eq!(human_count(999.0), "999");
        assert_eq!(human_ms(0.01234), "0.012");
        assert_eq!(human_ms(12.34), "12.3");
        let table = format_table(&[
            vec!["title".to_string()],
            vec!["a".to_string(), "1".to_string()],
            vec!["long name".to_string(), "100".to_string()],
        ]);
        assert_eq!(table, "title\na            1\nlong name  100\n");
    }
}
