//! What one bench command reports: its settings and figures, as a table or as JSON.

use serde::Serialize;

use crate::stats::{format_table, human_count, human_ms, LatencySummary, Throughput};

/// The figures of one `strom bench produce|consume|e2e|idle-fetch|idle-connections` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub topic: String,
    pub settings: serde_json::Value,
    /// Produced (produce, e2e) or consumed (consume) records.
    pub throughput: Option<Throughput>,
    /// What the end-to-end bench's consumer read.
    pub consumed: Option<Throughput>,
    /// From handing a produce request to the connection to its answer, per request.
    pub produce_latency: Option<LatencySummary>,
    pub produce_requests: Option<u64>,
    /// Transactions committed (transactional produce).
    pub transactions: Option<u64>,
    pub transactions_per_s: Option<f64>,
    /// From sending EndTxn (commit) to its answer, per transaction.
    pub commit_latency: Option<LatencySummary>,
    /// From sending AddPartitionsToTxn to its answer, retries included: the wait for the
    /// previous transaction's markers shows here.
    pub add_partitions_latency: Option<LatencySummary>,
    /// Transaction coordinator answers "not now" the producers retried (mostly
    /// CONCURRENT_TRANSACTIONS: an AddPartitionsToTxn while the last commit's markers were
    /// being written).
    pub coordinator_retries: Option<u64>,
    /// From sending a fetch to its answer, per fetch.
    pub fetch_latency: Option<LatencySummary>,
    pub fetches: Option<u64>,
    /// Fetches answered per second (idle-fetch: shows the consumers really polled).
    pub fetches_per_s: Option<f64>,
    /// From the producer sending a record to the consumer receiving it, per record.
    pub end_to_end_latency: Option<LatencySummary>,
    /// Records the end-to-end consumer read that carried no send stamp.
    pub unstamped_records: Option<u64>,
    /// Idle connections held (idle-connections).
    pub connections: Option<u64>,
    /// Connections set up per second, while they were opened.
    pub connections_per_s: Option<f64>,
    /// From connecting to the ApiVersions answer, per connection.
    pub connection_setup_latency: Option<LatencySummary>,
}

impl Report {
    pub fn new(bench: &'static str, topic: &str, settings: &impl Serialize) -> Report {
        Report {
            bench,
            topic: topic.to_string(),
            settings: serde_json::to_value(settings).expect("settings serialize"),
            throughput: None,
            consumed: None,
            produce_latency: None,
            produce_requests: None,
            transactions: None,
            transactions_per_s: None,
            commit_latency: None,
            add_partitions_latency: None,
            coordinator_retries: None,
            fetch_latency: None,
            fetches: None,
            fetches_per_s: None,
            end_to_end_latency: None,
            unstamped_records: None,
            connections: None,
            connections_per_s: None,
            connection_setup_latency: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// The report as a table for a person.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let settings = match &self.settings {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| format!("{key}={}", value.to_string().trim_matches('"')))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        rows.push(vec![if self.topic.is_empty() {
            format!("strom bench {}", self.bench)
        } else {
            format!("strom bench {}: topic '{}'", self.bench, self.topic)
        }]);
        rows.push(vec![settings]);
        if self.throughput.is_some() || self.consumed.is_some() {
            rows.push(vec![String::new()]);
            let header = ["", "records", "seconds", "records/s", "MB/s", "batch MB/s"];
            rows.push(header.iter().map(|cell| cell.to_string()).collect());
        }
        let named = [
            ("produced", self.bench != "consume"),
            ("consumed", self.bench == "consume"),
        ];
        let throughputs = [
            (named[0].0, if named[0].1 { self.throughput } else { None }),
            (
                named[1].0,
                if named[1].1 {
                    self.throughput
                } else {
                    self.consumed
                },
            ),
        ];
        for (name, throughput) in throughputs {
            if let Some(throughput) = throughput {
                rows.push(vec![
                    name.to_string(),
                    throughput.records.to_string(),
                    format!("{:.2}", throughput.seconds),
                    human_count(throughput.records_per_s),
                    format!("{:.1}", throughput.mb_per_s),
                    format!("{:.1}", throughput.batch_mb_per_s),
                ]);
            }
        }
        let mut out = format_table(&rows);
        let mut latency_rows: Vec<Vec<String>> = vec![[
            "latency (ms)",
            "samples",
            "p50",
            "p99",
            "p99.9",
            "max",
            "mean",
        ]
        .iter()
        .map(|cell| cell.to_string())
        .collect()];
        for (name, summary) in [
            ("produce request", self.produce_latency),
            ("add partitions", self.add_partitions_latency),
            ("commit (EndTxn)", self.commit_latency),
            ("fetch request", self.fetch_latency),
            ("end to end", self.end_to_end_latency),
            ("connection set-up", self.connection_setup_latency),
        ] {
            if let Some(summary) = summary {
                latency_rows.push(vec![
                    name.to_string(),
                    summary.samples.to_string(),
                    human_ms(summary.p50_ms),
                    human_ms(summary.p99_ms),
                    human_ms(summary.p999_ms),
                    human_ms(summary.max_ms),
                    human_ms(summary.mean_ms),
                ]);
            }
        }
        if latency_rows.len() > 1 {
            out.push('\n');
            out.push_str(&format_table(&latency_rows));
        }
        if let (Some(transactions), Some(per_s)) = (self.transactions, self.transactions_per_s) {
            out.push_str(&format!(
                "\ntransactions committed: {transactions} ({}/s), coordinator retries: {}\n",
                human_count(per_s),
                self.coordinator_retries.unwrap_or(0)
            ));
        }
        if let (Some(fetches), Some(per_s)) = (self.fetches, self.fetches_per_s) {
            out.push_str(&format!(
                "\nfetches answered: {fetches} ({}/s)\n",
                human_count(per_s)
            ));
        }
        if let (Some(connections), Some(per_s)) = (self.connections, self.connections_per_s) {
            out.push_str(&format!(
                "\nconnections held: {connections} (set up at {}/s)\n",
                human_count(per_s)
            ));
        }
        if let Some(unstamped) = self.unstamped_records.filter(|count| *count > 0) {
            out.push_str(&format!(
                "\nnote: {unstamped} records read carried no send stamp (not from this run)\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tables_and_json_hold_the_figures() {
        #[derive(Serialize)]
        struct Settings {
            acks: &'static str,
            rate: Option<f64>,
        }
        let mut report = Report::new(
            "produce",
            "t",
            &Settings {
                acks: "all",
                rate: None,
            },
        );
        report.throughput = Some(Throughput::new(
            1_000,
            100_000,
            110_000,
            Duration::from_secs(2),
        ));
        report.produce_latency = Some(LatencySummary {
            samples: 10,
            mean_ms: 1.0,
            p50_ms: 0.9,
            p99_ms: 2.5,
            p999_ms: 2.5,
            max_ms: 3.0,
        });
        let table = report.to_table();
        assert!(table.contains("strom bench produce: topic 't'"), "{table}");
        assert!(table.contains("acks=all"), "{table}");
        assert!(
            !table.contains("rate="),
            "unset settings are left out: {table}"
        );
        assert!(table.contains("produced"), "{table}");
        assert!(table.contains("produce request"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["throughput"]["records"], 1_000);
        assert_eq!(json["throughput"]["records_per_s"], 500.0);
        assert_eq!(json["produce_latency"]["p99_ms"], 2.5);
        assert!(json["fetch_latency"].is_null());
        assert!(json["transactions"].is_null());
        report.transactions = Some(40);
        report.transactions_per_s = Some(20.0);
        report.coordinator_retries = Some(3);
        report.commit_latency = report.produce_latency;
        let table = report.to_table();
        assert!(table.contains("commit (EndTxn)"), "{table}");
        assert!(
            table.contains("transactions committed: 40 (20.0/s), coordinator retries: 3"),
            "{table}"
        );
    }

    #[test]
    fn an_idle_connections_report_shows_its_connections() {
        #[derive(Serialize)]
        struct Settings {
            connections: u32,
        }
        let mut report = Report::new("idle-connections", "", &Settings { connections: 10 });
        report.connections = Some(10);
        report.connections_per_s = Some(5_000.0);
        let table = report.to_table();
        assert!(
            table.starts_with("strom bench idle-connections\n"),
            "{table}"
        );
        assert!(
            table.contains("connections held: 10 (set up at 5000/s)"),
            "{table}"
        );
        assert!(!table.contains("records"), "no throughput: {table}");
    }
}
