//! `strom consume TOPIC`: print records, one per line.
//!
//! Each partition read gets a start offset (its log start, a given offset, or its end) and,
//! unless following, a stop offset: the end offset seen at start. Rounds of fetches then go to
//! every partition not yet at its stop offset at once (one request per leader), and each
//! round's records are printed and flushed before the next round.

use std::io::Write;
use std::time::Duration;

use strom_client::{Client, ClientError, FetchOptions, FetchPosition, FetchedRecord, OffsetSpec};
use strom_types::{ErrorCode, Offset, PartitionIndex};

use crate::common::{block_on, check_partition, connect, existing_topic, BootstrapArgs};

/// Longest a fetch waits on the broker for new records.
const FETCH_WAIT_MS_MAX: u32 = 500;
/// Most bytes per partition per fetch.
const PARTITION_FETCH_BYTES_MAX: i32 = 1024 * 1024;
/// Most bytes per fetch response.
const FETCH_BYTES_MAX: i32 = 16 * 1024 * 1024;
/// Rounds in a row that may fail with errors fresh metadata could cure before giving up.
const RETRIABLE_ROUNDS_MAX: u32 = 10;
/// Pause after such a round.
const RETRY_BACKOFF_MS: u64 = 200;

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Read only this partition (default: all partitions).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Start at each partition's first record.
    #[arg(long, conflicts_with_all = ["offset", "from_end"])]
    from_beginning: bool,
    /// Start at this offset (in each partition read).
    #[arg(long, short = 'o', conflicts_with = "from_end")]
    offset: Option<i64>,
    /// Start at each partition's end, so only records produced from now on (the default).
    #[arg(long)]
    from_end: bool,
    /// Keep waiting for new records (default: stop at the end offsets seen at start).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n', value_name = "N")]
    max_messages: Option<u64>,
    /// Print each record's key.
    #[arg(long)]
    print_key: bool,
    /// Print each record's partition.
    #[arg(long)]
    print_partition: bool,
    /// Print each record's offset.
    #[arg(long)]
    print_offset: bool,
    /// Print each record's timestamp (milliseconds since the Unix epoch).
    #[arg(long)]
    print_timestamp: bool,
    /// Print each record's headers, as KEY=VALUE pairs separated by commas.
    #[arg(long)]
    print_headers: bool,
    /// What separates the printed fields.
    #[arg(long, short = 'K', value_name = "SEP", default_value = "\t")]
    key_separator: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    block_on(consume(args))?
}

/// One partition being read.
struct Reader {
    position: FetchPosition,
    /// Where reading stops; `None` when following.
    stop: Option<Offset>,
}

impl Reader {
    fn done(&self) -> bool {
        self.stop.is_some_and(|stop| self.position.offset >= stop)
    }
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let topic = existing_topic(&client, &args.topic).await?;
    let partitions: Vec<PartitionIndex> = match args.partition {
        Some(partition) => vec![check_partition(&topic, partition)?],
        None => topic
            .partitions
            .iter()
            .map(|partition| partition.index)
            .collect(),
    };
    let mut readers = Vec::with_capacity(partitions.len());
    for partition in partitions {
        readers.push(start(&client, &args, partition).await?);
    }

    let options = FetchOptions {
        max_wait_ms: FETCH_WAIT_MS_MAX,
        min_bytes: 1,
        max_bytes: FETCH_BYTES_MAX,
        partition_max_bytes: PARTITION_FETCH_BYTES_MAX,
    };
    let mut output = Output::new(&args);
    let mut retriable_rounds = 0;
    loop {
        let active: Vec<&mut Reader> = readers.iter_mut().filter(|reader| !reader.done()).collect();
        if active.is_empty() || output.full() {
            return Ok(());
        }
        let positions: Vec<FetchPosition> = active
            .iter()
            .map(|reader| reader.position.clone())
            .collect();
        let results = client.fetch_many(&positions, &options).await;
        let mut retry = None;
        for (reader, result) in active.into_iter().zip(results) {
            match result {
                Ok(fetched) => {
                    let wanted = fetched
                        .records
                        .iter()
                        .filter(|record| reader.stop.is_none_or(|stop| record.offset < stop));
                    for record in wanted {
                        if !output.record(reader.position.partition, record)? {
                            return Ok(());
                        }
                    }
                    reader.position.offset = fetched.next_offset;
                }
                Err(error) if error.is_metadata_refreshable() || error.is_connection_failure() => {
                    tracing::debug!(%error, "fetch failed; retrying");
                    retry = Some(error);
                }
                Err(error) => return Err(error.into()),
            }
        }
        if !output.flush()? {
            return Ok(());
        }
        match retry {
            Some(error) => {
                retriable_rounds += 1;
                if retriable_rounds >= RETRIABLE_ROUNDS_MAX {
                    return Err(anyhow::Error::new(error)
                        .context(format!("fetching failed {retriable_rounds} times in a row")));
                }
                tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
            }
            None => retriable_rounds = 0,
        }
    }
}

/// Where to start and stop reading a partition.
async fn start(
    client: &Client,
    args: &ConsumeArgs,
    partition: PartitionIndex,
) -> Result<Reader, ClientError> {
    let topic = args.topic.as_str();
    let end = client
        .list_offsets(topic, partition, OffsetSpec::Latest)
        .await?;
    let offset = if args.from_beginning {
        client
            .list_offsets(topic, partition, OffsetSpec::Earliest)
            .await?
    } else if let Some(offset) = args.offset {
        let first = client
            .list_offsets(topic, partition, OffsetSpec::Earliest)
            .await?;
        if offset < first.0 || offset > end.0 {
            let message = format!("offset {offset} is outside {topic}-{partition}, which holds offsets {first} to {end} (end)");
            let hint =
                format!("use --offset between {first} and {end}, --from-beginning or --from-end");
            return Err(ClientError::from_code(
                ErrorCode::OffsetOutOfRange.code(),
                Some(&message),
                Some(topic),
                Some(partition),
            )
            .with_hint(hint));
        }
        Offset(offset)
    } else {
        end
    };
    let stop = (!args.follow).then_some(end);
    Ok(Reader {
        position: FetchPosition {
            topic: topic.to_string(),
            partition,
            offset,
        },
        stop,
    })
}

/// Prints records to standard output; a closed pipe (`strom consume ... | head`) ends the
/// command quietly.
struct Output<'a> {
    args: &'a ConsumeArgs,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    printed: u64,
}

impl<'a> Output<'a> {
    fn new(args: &'a ConsumeArgs) -> Output<'a> {
        Output {
            args,
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            printed: 0,
        }
    }

    fn full(&self) -> bool {
        self.args
            .max_messages
            .is_some_and(|max| self.printed >= max)
    }

    /// Prints one record; `false` once nothing more should be printed.
    fn record(
        &mut self,
        partition: PartitionIndex,
        record: &FetchedRecord,
    ) -> anyhow::Result<bool> {
        if self.full() {
            return Ok(false);
        }
        let line = format_record(self.args, partition, record);
        self.printed += 1;
        match self.out.write_all(&line) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        if self.full() {
            self.flush()?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Flushes; `false` if the reader has gone away.
    fn flush(&mut self) -> anyhow::Result<bool> {
        match self.out.flush() {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// One output line: the requested fields (timestamp, partition, offset, headers, key, in
/// that order), then the value, separated by the key separator.
fn format_record(args: &ConsumeArgs, partition: PartitionIndex, record: &FetchedRecord) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    if args.print_timestamp {
        fields.push(record.timestamp.to_string().into_bytes());
    }
    if args.print_partition {
        fields.push(partition.to_string().into_bytes());
    }
    if args.print_offset {
        fields.push(record.offset.to_string().into_bytes());
    }
    if args.print_headers {
        let mut headers = Vec::new();
        for (index, (name, value)) in record.headers.iter().enumerate() {
            if index > 0 {
                headers.push(b',');
            }
            headers.extend_from_slice(name.as_bytes());
            headers.push(b'=');
            headers.extend_from_slice(value.as_deref().unwrap_or(b"null"));
        }
        fields.push(headers);
    }
    if args.print_key {
        fields.push(record.key.as_deref().unwrap_or(b"null").to_vec());
    }
    fields.push(record.value.as_deref().unwrap_or(b"null").to_vec());
    let mut line = fields.join(args.key_separator.as_bytes());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use clap::Parser;
    use strom_types::TimestampMs;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    fn args(flags: &[&str]) -> ConsumeArgs {
        let argv = ["consume", "t"].iter().chain(flags);
        Command::try_parse_from(argv).unwrap().args
    }

    fn record() -> FetchedRecord {
        FetchedRecord {
            offset: Offset(7),
            timestamp: TimestampMs(1_700_000_000_000),
            timestamp_type: strom_client::TimestampType::Creation,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![
                ("a".to_string(), Some(Bytes::from_static(b"1"))),
                ("b".to_string(), None),
            ],
        }
    }

    #[test]
    fn values_alone_by_default() {
        assert_eq!(
            format_record(&args(&[]), PartitionIndex(0), &record()),
            b"v\n"
        );
    }

    #[test]
    fn requested_fields_come_first_in_a_fixed_order() {
        let flags = [
            "--print-key",
            "--print-offset",
            "--print-timestamp",
            "--print-headers",
            "--print-partition",
        ];
        let line = format_record(&args(&flags), PartitionIndex(2), &record());
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "1700000000000\t2\t7\ta=1,b=null\tk\tv\n"
        );
        let line = format_record(
            &args(&["--print-key", "--key-separator", ": "]),
            PartitionIndex(0),
            &record(),
        );
        assert_eq!(line, b"k: v\n");
    }

    #[test]
    fn start_flags_exclude_each_other() {
        assert!(
            Command::try_parse_from(["consume", "t", "--from-beginning", "--offset", "3"]).is_err()
        );
        assert!(Command::try_parse_from(["consume", "t", "--from-end", "--offset", "3"]).is_err());
        assert!(
            Command::try_parse_from(["consume", "t", "--from-end", "--from-beginning"]).is_err()
        );
        assert_eq!(args(&["--offset", "3"]).offset, Some(3));
    }
}
