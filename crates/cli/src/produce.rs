//! `strom produce TOPIC`: one record per line of standard input.
//!
//! A thread reads lines and hands them over a bounded channel; the async side takes whatever
//! lines are ready (up to a record and byte limit per round), assigns each a partition (the
//! one given, Kafka's murmur2 partitioner for keyed records, round-robin otherwise), and sends
//! one batch per partition, all partitions at once, waiting for every answer before the next
//! round so that records of one partition stay in input order.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use bytes::Bytes;
use strom_client::{partition_for_key, Acks, Client, ClientError, Compression, ProduceRecord};
use strom_types::{Offset, PartitionIndex};
use tokio::sync::mpsc;

use crate::common::{block_on, check_partition, connect, parse_key_value, BootstrapArgs};

/// Most records sent in one round.
const ROUND_RECORDS_MAX: usize = 1000;
/// Most bytes sent in one round, counting each record's payload plus an estimate of its
/// framing; this keeps every batch under the broker's default `message.max.bytes` (1 MiB).
const ROUND_BYTES_MAX: usize = 1_000_000;
/// The estimate of a record's framing inside a batch (length, attributes, deltas, varints).
const RECORD_OVERHEAD_BYTES: usize = 24;
/// Lines read ahead of the producer.
const LINES_QUEUED_MAX: usize = 2 * ROUND_RECORDS_MAX;

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic to produce to.
    topic: String,
    /// Split each line at the first SEP into key and value (a line without SEP has no key).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition (default: by key hash, round-robin without a key).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Replicas that must have a record before it counts as written: 0, 1, -1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_hyphen_values = true)]
    acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, short = 'z', value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// A header added to every record, KEY=VALUE; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Print each record's partition and offset.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(compression: CompressionArg) -> Compression {
        match compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "-1" | "all" => Ok(Acks::All),
        other => Err(format!("acks must be 0, 1, -1 or all, not '{other}'")),
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    block_on(produce(args))?
}

/// Where records go: a fixed partition, or the default partitioner.
struct Partitioner {
    fixed: Option<PartitionIndex>,
    partition_count: i32,
    round_robin_next: i32,
}

impl Partitioner {
    fn choose(&mut self, key: Option<&[u8]>) -> PartitionIndex {
        if let Some(partition) = self.fixed {
            return partition;
        }
        match key {
            Some(key) => partition_for_key(key, self.partition_count),
            None => {
                let partition = PartitionIndex(self.round_robin_next);
                self.round_robin_next = (self.round_robin_next + 1) % self.partition_count;
                partition
            }
        }
    }
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let client = Arc::new(connect(&args.bootstrap, true).await?);
    let topic = client.topic_metadata(&args.topic).await?;
    anyhow::ensure!(
        !topic.partitions.is_empty(),
        "topic '{}' has no partitions",
        topic.name
    );
    let fixed = args
        .partition
        .map(|partition| check_partition(&topic, partition))
        .transpose()?;
    let mut partitioner = Partitioner {
        fixed,
        partition_count: topic.partitions.len() as i32,
        round_robin_next: 0,
    };
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(key, value)| (key.clone(), Some(Bytes::from(value.clone()))))
        .collect();

    let (sender, mut lines) = mpsc::channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || read_lines(sender));
    // A line that would have taken a round over its byte limit starts the next round.
    let mut carried: Option<Vec<u8>> = None;
    loop {
        let first = match carried.take() {
            Some(line) => line,
            None => match lines.recv().await {
                Some(line) => line?,
                None => break,
            },
        };
        let mut round_bytes = line_weight(&first);
        let mut round = vec![first];
        while round.len() < ROUND_RECORDS_MAX {
            let Ok(line) = lines.try_recv() else { break };
            let line = line?;
            if round_bytes + line_weight(&line) > ROUND_BYTES_MAX {
                carried = Some(line);
                break;
            }
            round_bytes += line_weight(&line);
            round.push(line);
        }
        let records = round
            .into_iter()
            .map(|line| {
                let mut record = to_record(line, args.key_separator.as_deref());
                record.headers.clone_from(&headers);
                record
            })
            .collect();
        let placed = send_round(&client, &args, &mut partitioner, records).await?;
        if args.verbose {
            for (partition, offset) in placed {
                match offset {
                    Some(offset) => println!("partition {partition} offset {offset}"),
                    None => println!("partition {partition} offset unknown (acks=0)"),
                }
            }
        }
    }
    Ok(())
}

/// Bytes a line counts for against a round's byte limit.
fn line_weight(line: &[u8]) -> usize {
    line.len() + RECORD_OVERHEAD_BYTES
}

/// The reading thread: sends each line without its line ending, then ends the channel at the
/// end of input (or after a read error).
fn read_lines(sender: mpsc::Sender<std::io::Result<Vec<u8>>>) {
    let mut input = std::io::stdin().lock();
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.ends_with(b"\n") {
                    line.pop();
                    if line.ends_with(b"\r") {
                        line.pop();
                    }
                }
                if sender.blocking_send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        }
    }
}

/// A line as a record: split at the first separator into key and value when one is given.
fn to_record(line: Vec<u8>, separator: Option<&str>) -> ProduceRecord {
    let line = Bytes::from(line);
    let split = separator
        .filter(|separator| !separator.is_empty())
        .and_then(|separator| find(&line, separator.as_bytes()).map(|at| (at, separator.len())));
    match split {
        Some((at, length)) => {
            ProduceRecord::new(Some(line.slice(..at)), Some(line.slice(at + length..)))
        }
        None => ProduceRecord::new(None, Some(line)),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Sends one round: a batch per partition, all at once. Returns each record's partition and
/// offset, in input order.
async fn send_round(
    client: &Arc<Client>,
    args: &ProduceArgs,
    partitioner: &mut Partitioner,
    records: Vec<ProduceRecord>,
) -> Result<Vec<(PartitionIndex, Option<Offset>)>, ClientError> {
    let mut placement = Vec::with_capacity(records.len());
    let mut batches: BTreeMap<PartitionIndex, Vec<ProduceRecord>> = BTreeMap::new();
    for record in records {
        let partition = partitioner.choose(record.key.as_deref());
        let batch = batches.entry(partition).or_default();
        placement.push((partition, batch.len() as i64));
        batch.push(record);
    }
    let mut requests = tokio::task::JoinSet::new();
    for (partition, batch) in batches {
        let client = client.clone();
        let topic = args.topic.clone();
        let (acks, compression) = (args.acks, Compression::from(args.compression));
        requests.spawn(async move {
            let result = client
                .produce(&topic, partition, &batch, acks, compression)
                .await;
            (partition, result)
        });
    }
    let mut base_offsets = BTreeMap::new();
    while let Some(joined) = requests.join_next().await {
        let (partition, result) = joined.expect("produce tasks do not panic");
        base_offsets.insert(partition, result?);
    }
    Ok(placement
        .into_iter()
        .map(|(partition, index)| {
            (
                partition,
                base_offsets[&partition].map(|base| base.plus(index)),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let record = to_record(b"k:v:w".to_vec(), Some(":"));
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v:w"[..]));
        let record = to_record(b"key::value".to_vec(), Some("::"));
        assert_eq!(
            (record.key.as_deref(), record.value.as_deref()),
            (Some(&b"key"[..]), Some(&b"value"[..]))
        );
        let record = to_record(b"no separator".to_vec(), Some(":"));
        assert_eq!(
            (record.key, record.value.as_deref()),
            (None, Some(&b"no separator"[..]))
        );
        let record = to_record(b"a:b".to_vec(), None);
        assert_eq!(
            (record.key, record.value.as_deref()),
            (None, Some(&b"a:b"[..]))
        );
    }

    #[test]
    fn keyless_records_go_round_robin_and_keyed_ones_by_hash() {
        let mut partitioner = Partitioner {
            fixed: None,
            partition_count: 3,
            round_robin_next: 0,
        };
        let spread: Vec<i32> = (0..4).map(|_| partitioner.choose(None).0).collect();
        assert_eq!(spread, [0, 1, 2, 0]);
        assert_eq!(
            partitioner.choose(Some(b"foobar")),
            partition_for_key(b"foobar", 3)
        );
        let mut fixed = Partitioner {
            fixed: Some(PartitionIndex(2)),
            partition_count: 3,
            round_robin_next: 0,
        };
        assert_eq!(fixed.choose(Some(b"foobar")), PartitionIndex(2));
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
    }
}
