//! Options every bench command shares, and the parsers for sizes, rates and acks.

use std::path::PathBuf;
use std::time::Duration;

use strom_client::{Acks, CommandConfig, SecurityConfig};

use crate::batch::Codec;

/// Where the cluster is, and how to report.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// A broker to bootstrap from: HOST:PORT, or several separated by commas.
    #[arg(
        long,
        env = "STROM_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap: String,
    /// A Kafka client.properties file: security.protocol, sasl.* and ssl.* settings (the Java
    /// client's or librdkafka's names), for a broker that wants TLS or SASL.
    #[arg(long, env = "STROM_COMMAND_CONFIG", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Print the figures as one JSON object on standard output instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads for the bench's own async runtime (1 keeps it on one core).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
}

impl CommonArgs {
    /// The security settings of `--command-config`, PLAINTEXT without one; what the file has
    /// that Strom ignores is noted on stderr.
    pub fn security(&self) -> Result<SecurityConfig, crate::BenchError> {
        let Some(path) = &self.command_config else {
            return Ok(SecurityConfig::default());
        };
        let read = CommandConfig::read(path).map_err(|error| {
            crate::BenchError::InvalidArgument(format!(
                "--command-config {}: {error}",
                path.display()
            ))
        })?;
        for note in &read.notes {
            eprintln!("note: {}: {note}", path.display());
        }
        Ok(read.security)
    }
}

/// The topic to load, created if missing.
#[derive(clap::Args, Debug, Clone)]
pub struct TopicArgs {
    /// The topic; created if missing.
    #[arg(long, short = 't', default_value = "strom-bench")]
    pub topic: String,
    /// Partitions, when the bench creates the topic.
    #[arg(long, short = 'p', default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,
    /// Replication factor, when the bench creates the topic (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub replication_factor: i16,
}

/// How the producer batches and sends, after the Java client's and librdkafka's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct ProducerArgs {
    /// TCP connections to each partition leader; partitions are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: u16,
    /// Produce requests in flight on each connection (max.in.flight.requests.per.connection).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub in_flight: u16,
    /// Most bytes in one record batch (batch.size); accepts k/KiB, m/MiB.
    #[arg(long, default_value = "16KiB", value_parser = parse_bytes)]
    pub batch_size: u64,
    /// How long a batch waits for more records before it is sent anyway (linger.ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Replicas that must have a batch before the broker answers: 0, 1, -1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_hyphen_values = true)]
    pub acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, short = 'z', value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
}

/// How the consumer fetches, after the Java client's and librdkafka's defaults.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsumerArgs {
    /// Longest the broker may hold a fetch waiting for data (fetch.max.wait.ms).
    #[arg(long, default_value_t = 500)]
    pub fetch_wait_ms: u32,
    /// Bytes a fetch waits for (fetch.min.bytes).
    #[arg(long, default_value_t = 1)]
    pub fetch_min_bytes: i32,
    /// Most bytes in one fetch response (fetch.max.bytes); accepts k/KiB, m/MiB.
    #[arg(long, default_value = "50MiB", value_parser = parse_bytes)]
    pub fetch_max_bytes: u64,
    /// Most bytes per partition in one fetch response (max.partition.fetch.bytes).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub partition_max_bytes: u64,
    /// Check every fetched batch's CRC-32C (the Java consumer does; librdkafka does not).
    #[arg(long)]
    pub check_crc: bool,
}

/// When a load stops: after a number of records or after a time.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Stop after this many records.
    #[arg(long, short = 'n', conflicts_with = "duration")]
    pub records: Option<u64>,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, short = 'd', value_parser = parse_seconds)]
    pub duration: Option<Duration>,
}

/// A load's end: a record count or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Records(u64),
    Time(Duration),
}

impl LimitArgs {
    /// The limit given, or else `default`.
    pub fn limit_or(&self, default: Limit) -> Limit {
        match (self.records, self.duration) {
            (Some(records), _) => Limit::Records(records),
            (None, Some(duration)) => Limit::Time(duration),
            (None, None) => default,
        }
    }
}

/// Parses a byte count: `100`, `16KiB`, `16k`, `1MiB`, `1m`, `1GiB` (binary multiples).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (try 100, 16KiB or 1MiB)"))?;
    let multiple: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit (use KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(multiple)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses seconds, fractions allowed: `10`, `2.5`, `0.5s`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim().trim_end_matches('s');
    let seconds: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds.is_finite() && seconds < 1e9) {
        return Err(format!("'{text}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses acks: `0`, `1`, `-1` or `all`.
pub fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "-1" | "all" => Ok(Acks::All),
        other => Err(format!("acks must be 0, 1, -1 or all, not '{other}'")),
    }
}

/// How an acks setting prints.
pub fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

/// Parses a rate in records per second; `0` means no limit.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a rate in records per second"))?;
    if !(rate >= 0.0 && rate.is_finite()) {
        return Err(format!(
            "'{text}' must be zero (no limit) or a positive rate"
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("16KiB"), Ok(16_384));
        assert_eq!(parse_bytes("16k"), Ok(16_384));
        assert_eq!(parse_bytes("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("1.5k").is_err());
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("99999999999999999999").is_err());
        assert!(parse_bytes("17179869184g").is_err(), "overflow");
    }

    #[test]
    fn seconds_rates_and_acks() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("inf").is_err());
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
        assert_eq!(acks_name(Acks::All), "all");
    }

    #[test]
    fn limits_default_when_absent() {
        let none = LimitArgs {
            records: None,
            duration: None,
        };
        assert_eq!(none.limit_or(Limit::Records(7)), Limit::Records(7));
        let records = LimitArgs {
            records: Some(5),
            duration: None,
        };
        assert_eq!(
            records.limit_or(Limit::Time(Duration::from_secs(1))),
            Limit::Records(5)
        );
        let time = LimitArgs {
            records: None,
            duration: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            time.limit_or(Limit::Records(7)),
            Limit::Time(Duration::from_secs(3))
        );
    }
}
