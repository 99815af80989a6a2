//! The suite's cases: what each runs, against which brokers, in which order; no I/O.

use std::time::Duration;

use super::security::{Listener, SCRAM_MECHANISM};
use super::SuiteArgs;

/// librdkafka's default `batch.size`.
const LIBRDKAFKA_BATCH_BYTES: u64 = 1_000_000;
/// The idle-consumer cases: a topic of this many partitions, long-polled by this many
/// consumers (5 partitions each), while a producer writes to another topic at this rate.
pub const IDLE_PARTITIONS: i32 = 1_000;
pub const IDLE_CONSUMERS: u16 = 200;
const IDLE_PRODUCE_RATE: u64 = 10_000;
/// The idle consumers alone, give or take a trickle: the third idle case's produce rate.
const IDLE_ALONE_PRODUCE_RATE: u64 = 10;
/// The name of the case that measures the idle consumers with (almost) no appends.
pub const IDLE_ALONE: &str = "200 idle consumers beside 10 records/s";
/// The end of the idle-consumer cases' names: the target pairs each case that has idle
/// consumers with the one that has none.
pub const NO_IDLE_CONSUMERS: &str = "no idle consumers";
/// Records the kcat case sends per second of `--case-seconds`: kcat sends ~650,000 100-byte
/// records a second from a file on this VM, so the case runs about as long as the others.
const KCAT_RECORDS_PER_CASE_SECOND: u64 = 600_000;
const KCAT_RECORDS_QUICK: u64 = 100_000;
/// The idle-connections case: connections set up and held while the broker's memory is read
/// (issue 10: 10,000 at <= 64 KiB of broker memory each).
const IDLE_CONNECTIONS: u32 = 10_000;
const IDLE_CONNECTIONS_QUICK: u32 = 1_000;
/// The many-partitions case (issue 10): topics of this many partitions each, on one node whose
/// open-file limit is this, idle for this long while its CPU time is read.
const MANY_PARTITIONS_TOPICS: u32 = 20;
const MANY_PARTITIONS_TOPICS_QUICK: u32 = 4;
const MANY_PARTITIONS_PER_TOPIC: i32 = 1_000;
const MANY_PARTITIONS_PER_TOPIC_QUICK: i32 = 100;
const MANY_PARTITIONS_OPEN_FILES_LIMIT: u64 = 4_096;
const MANY_PARTITIONS_IDLE: Duration = Duration::from_secs(5);
const MANY_PARTITIONS_IDLE_QUICK: Duration = Duration::from_secs(2);

/// The transactions cases (issue 11): the same produce load by idempotent producers and by
/// transactional ones committing every `TRANSACTION_RECORDS` records, one producer (lane) per
/// partition, `TRANSACTION_PARTITIONS` of them, with the bench's (the Java client's) batching.
pub const TRANSACTION_RECORDS: u64 = 1_000;
const TRANSACTION_PARTITIONS: i32 = 8;
const TRANSACTION_RECORD_BYTES: u64 = 1024;
/// The two cases' names; the target pairs them (`--only transactions` runs both).
pub const IDEMPOTENT_CASE: &str = "produce 1 KiB acks=all, 8 idempotent producers, no transactions";
pub const TRANSACTIONAL_CASE: &str =
    "produce 1 KiB acks=all, 8 transactional producers, transactions of 1,000 records";

/// The security cases (issue 12): the plaintext 1 KiB throughput cases' loads again over the
/// single broker's SSL and SASL_SSL listeners. `--only security` runs them with the two
/// plaintext cases they are compared with; the target holds SASL_SSL consume to a share of the
/// plaintext consume in the same run.
pub const SECURITY_GROUP: &str = "security";
pub const PRODUCE_PLAINTEXT_CASE: &str = "produce 1 KiB acks=1";
pub const CONSUME_PLAINTEXT_CASE: &str = "consume 1 KiB";
/// The topic the plaintext 1 KiB produce case writes and every 1 KiB consume case reads, so
/// that the three consume cases read the same records.
const PLAINTEXT_1K_TOPIC: &str = "suite-1k";

/// What a case runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// A `strom bench` command line (the words after `strom bench`).
    Bench(Vec<String>),
    /// The librdkafka script: produce (record bytes, acks) or e2e (record bytes, rate).
    LibrdkafkaProduce {
        topic: String,
        record_bytes: u64,
        acks: &'static str,
        seconds: f64,
    },
    LibrdkafkaE2e {
        topic: String,
        record_bytes: u64,
        rate: u64,
        seconds: f64,
    },
    /// `kcat -P` sending a file of `records` lines of `record_bytes` each (the file is written
    /// before the case's figures are taken), with acks=1 and linger.ms=5.
    KcatProduce {
        topic: String,
        records: u64,
        record_bytes: u64,
    },
    /// `strom bench idle-connections`: this many connections set up and held, with the
    /// broker's resident memory read before they open and once they are all set up.
    IdleConnections { connections: u32 },
    /// `topics` topics of `partitions_per_topic` partitions on a broker whose open-file limit
    /// (soft and hard) is `open_files_limit`: one record written to every partition and read
    /// back, the broker left `idle` while its CPU time is read, then restarted after a clean
    /// shutdown and after kill -9, every record read back each time.
    Partitions {
        topics: u32,
        partitions_per_topic: i32,
        open_files_limit: u64,
        idle: Duration,
    },
}

/// The brokers a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// The run's single broker.
    One,
    /// Three combined broker + controller nodes, started once the single broker's cases are
    /// done and it has stopped, so that they disturb none of its figures.
    ThreeVoters,
    /// A broker the case starts, stops and restarts itself, once every other case is done and
    /// the three nodes have stopped.
    OwnBroker,
}

/// A topic a case needs before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
}

impl NewTopic {
    fn new(name: &str, partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub load: Load,
    /// Topics the suite creates before the case's figures are taken: creating 1,000
    /// partitions costs the broker more CPU than a short case's load, and a replicated
    /// partition's first requests wait for its followers to start fetching.
    pub creates: Vec<NewTopic>,
    /// A `strom bench idle-fetch` command line that runs beside the load: started (and its
    /// consumers polling) before the case's figures are taken, stopped when the load ends.
    pub beside: Option<Vec<String>>,
    pub nodes: Nodes,
    /// The single broker's listener the load connects to (PLAINTEXT but for the security
    /// cases).
    pub listener: Listener,
    /// A name `--only` selects the case by besides its own: the security cases' plaintext
    /// counterparts are in their group.
    pub group: Option<&'static str>,
}

impl Case {
    fn new(name: &str, load: Load) -> Case {
        Case {
            name: name.to_string(),
            load,
            creates: Vec::new(),
            beside: None,
            nodes: Nodes::One,
            listener: Listener::Plaintext,
            group: None,
        }
    }

    /// Whether `--only text` keeps the case: its name or its group contains `text`.
    fn selected_by(&self, text: &str) -> bool {
        self.name.contains(text) || self.group.is_some_and(|group| group.contains(text))
    }

    /// The topic the case's load writes or reads (none for idle connections, nor for the
    /// many-partitions case, whose topics live and die with its own broker).
    pub fn topic(&self) -> Option<&str> {
        match &self.load {
            Load::Bench(words) => word_after(words, "--topic"),
            Load::LibrdkafkaProduce { topic, .. }
            | Load::LibrdkafkaE2e { topic, .. }
            | Load::KcatProduce { topic, .. } => Some(topic),
            Load::IdleConnections { .. } | Load::Partitions { .. } => None,
        }
    }

    /// Whether the case's load is a transactional producer.
    pub fn is_transactional(&self) -> bool {
        matches!(&self.load, Load::Bench(words) if words.iter().any(|word| word == "--transactional"))
    }

    /// Every topic the case uses: its load's, those it creates first, the idle consumers'.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.topic().into_iter().collect();
        topics.extend(self.creates.iter().map(|topic| topic.name.as_str()));
        topics.extend(
            self.beside
                .as_deref()
                .and_then(|words| word_after(words, "--topic")),
        );
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// How long the case writes to disk, for the produce throughput cases: they are compared
    /// with the disk's fdatasync'd bandwidth measured for as long right before and right after
    /// them.
    pub fn disk_probe(&self) -> Option<Duration> {
        let seconds = match &self.load {
            Load::Bench(words)
                if words.first().map(String::as_str) == Some("produce")
                    && !words.iter().any(|word| word == "--rate") =>
            {
                word_after(words, "--duration").and_then(|seconds| seconds.parse::<f64>().ok())
            }
            Load::LibrdkafkaProduce { seconds, .. } => Some(*seconds),
            _ => None,
        }?;
        Some(Duration::from_secs_f64(seconds))
    }
}

/// 10000 as "10,000".
pub fn thousands(value: u32) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn word_after<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|word| word == flag)
        .and_then(|at| words.get(at + 1))
        .map(String::as_str)
}

fn bench(line: String) -> Load {
    Load::Bench(words(&line))
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// The suite's cases, in the order they run (the three-node ones, then those with a broker of
/// their own, last); `kcat`: whether kcat
/// is on the PATH (its case is one of `--librdkafka`'s: kcat is librdkafka's own C tool).
pub fn cases(args: &SuiteArgs, kcat: bool) -> Vec<Case> {
    let (seconds, e2e_seconds) = if args.quick {
        (1.0, 2.0)
    } else {
        (
            args.case_seconds.as_secs_f64(),
            args.e2e_seconds.as_secs_f64(),
        )
    };
    let mut cases = bench_cases(seconds, e2e_seconds);
    cases.extend(transaction_cases(seconds));
    if args.librdkafka {
        cases.extend(librdkafka_cases(seconds, e2e_seconds));
    }
    if args.librdkafka && kcat {
        let records = if args.quick {
            KCAT_RECORDS_QUICK
        } else {
            (seconds * KCAT_RECORDS_PER_CASE_SECOND as f64) as u64
        };
        let topic = "suite-kcat-100";
        cases.push(Case {
            creates: vec![NewTopic::new(topic, 1, -1)],
            ..Case::new(
                "kcat produce 100 B acks=1",
                Load::KcatProduce {
                    topic: topic.to_string(),
                    records,
                    record_bytes: 100,
                },
            )
        });
    }
    // A fixed-rate load like the end-to-end cases, so it runs as long: over 5 s its broker
    // CPU would be only ~15 of /proc's 10 ms ticks.
    cases.extend(idle_consumer_cases(e2e_seconds));
    // Last of the single broker's, so that its peak memory after it covers the whole run.
    cases.push(Case::new(
        "produce 1 KiB acks=1 100 partitions",
        produce_throughput("suite-100p", 1024, "1", seconds, "--partitions 100"),
    ));
    // After the peak memory above is taken: the connections add to the broker's peak.
    let connections = if args.quick {
        IDLE_CONNECTIONS_QUICK
    } else {
        IDLE_CONNECTIONS
    };
    cases.push(Case::new(
        &format!("{} idle connections", thousands(connections)),
        Load::IdleConnections { connections },
    ));
    cases.push(Case {
        nodes: Nodes::ThreeVoters,
        creates: vec![NewTopic::new("suite-e2e-rf3", 1, 3)],
        ..Case::new(
            "e2e 100 B 1k/s acks=all RF=3",
            bench(format!(
                "e2e --topic suite-e2e-rf3 --partitions 1 --replication-factor 3 --record-size 100 \
                 --rate 1000 --duration {e2e_seconds}"
            )),
        )
    });
    cases.push(many_partitions_case(args.quick));
    cases
        .retain(|case| args.only.is_empty() || args.only.iter().any(|only| case.selected_by(only)));
    cases
}

/// Throughput cases batch like librdkafka (batch.size 1,000,000 bytes and at most 10,000
/// records a batch), the load the targets are stated for.
fn produce_throughput(topic: &str, bytes: u64, acks: &str, seconds: f64, extra: &str) -> Load {
    bench(format!(
        "produce --topic {topic} --record-size {bytes} --acks {acks} --duration {seconds} \
         --batch-size {LIBRDKAFKA_BATCH_BYTES} {extra}"
    ))
}

/// The `strom bench` cases on the single broker.
fn bench_cases(seconds: f64, e2e_seconds: f64) -> Vec<Case> {
    let produce =
        |topic: &str, bytes: u64, acks: &str| produce_throughput(topic, bytes, acks, seconds, "");
    // The end-to-end cases keep the bench's defaults (the Java client's: 16 KiB batches,
    // linger 5 ms).
    let e2e = |topic: &str, bytes: u64, rate: u64| {
        bench(format!(
            "e2e --topic {topic} --record-size {bytes} --rate {rate} --duration {e2e_seconds}"
        ))
    };
    let in_security_group = |case: Case| Case {
        group: Some(SECURITY_GROUP),
        ..case
    };
    let mut cases = vec![
        Case::new("produce 100 B acks=1", produce("suite-100", 100, "1")),
        in_security_group(Case::new(
            PRODUCE_PLAINTEXT_CASE,
            produce(PLAINTEXT_1K_TOPIC, 1024, "1"),
        )),
        Case::new("consume 100 B", bench("consume --topic suite-100".into())),
        in_security_group(Case::new(CONSUME_PLAINTEXT_CASE, consume_1k())),
    ];
    // Right after the plaintext consume, while the topic they all read is as warm.
    cases.extend(security_cases(seconds));
    cases.extend([
        Case::new("produce 100 B acks=all", produce("suite-100-all", 100, "all")),
        Case::new("produce 1 KiB acks=all", produce("suite-1k-all", 1024, "all")),
        // Produce latency at a low rate with the bench's defaults (linger 5 ms): acks=all is
        // the target's case, acks=1 the same requests without the fsync, which shows what the
        // request's round trip itself costs at this rate on this machine.
        Case::new(
            "produce 100 B 1k/s acks=1",
            bench(format!(
                "produce --topic suite-rate-1 --record-size 100 --acks 1 --rate 1000 --duration {seconds}"
            )),
        ),
        Case::new(
            "produce 100 B 1k/s acks=all",
            bench(format!(
                "produce --topic suite-rate-all --record-size 100 --acks all --rate 1000 --duration {seconds}"
            )),
        ),
        Case::new("e2e 100 B 1k/s acks=all", e2e("suite-e2e-100-1k", 100, 1_000)),
        Case::new("e2e 100 B 10k/s acks=all", e2e("suite-e2e-100-10k", 100, 10_000)),
        Case::new("e2e 1 KiB 1k/s acks=all", e2e("suite-e2e-1k-1k", 1024, 1_000)),
        Case::new("e2e 1 KiB 10k/s acks=all", e2e("suite-e2e-1k-10k", 1024, 10_000)),
    ]);
    cases
}

fn consume_1k() -> Load {
    bench(format!("consume --topic {PLAINTEXT_1K_TOPIC}"))
}

/// The name of a security case: its plaintext counterpart's, over `listener`.
pub fn over(plaintext: &str, listener: Listener) -> String {
    match listener {
        Listener::Plaintext => plaintext.to_string(),
        Listener::Ssl => format!("{plaintext} over SSL"),
        Listener::SaslSsl => format!("{plaintext} over SASL_SSL {SCRAM_MECHANISM}"),
    }
}

/// The plaintext 1 KiB consume and produce loads over SSL and over SASL_SSL: the consume cases
/// read the plaintext produce case's topic (the same records as the plaintext consume), the
/// produce cases write topics of their own.
fn security_cases(seconds: f64) -> Vec<Case> {
    let secured = [Listener::Ssl, Listener::SaslSsl];
    let consume = secured.map(|listener| Case {
        listener,
        group: Some(SECURITY_GROUP),
        ..Case::new(&over(CONSUME_PLAINTEXT_CASE, listener), consume_1k())
    });
    let produce = secured.map(|listener| {
        let topic = format!(
            "{PLAINTEXT_1K_TOPIC}-{}",
            listener.protocol().to_lowercase().replace('_', "-")
        );
        Case {
            listener,
            group: Some(SECURITY_GROUP),
            ..Case::new(
                &over(PRODUCE_PLAINTEXT_CASE, listener),
                produce_throughput(&topic, 1024, "1", seconds, ""),
            )
        }
    });
    consume.into_iter().chain(produce).collect()
}

/// Idempotent producers, then transactional ones, the same load otherwise, each into a topic
/// of its own created before the figures are taken; the target compares their records/s.
fn transaction_cases(seconds: f64) -> Vec<Case> {
    let case = |topic: &str, name: &str, delivery: &str| {
        let load = bench(format!(
            "produce --topic {topic} --partitions {TRANSACTION_PARTITIONS} \
             --connections {TRANSACTION_PARTITIONS} --record-size {TRANSACTION_RECORD_BYTES} \
             --acks all --duration {seconds} {delivery}"
        ));
        Case {
            creates: vec![NewTopic::new(topic, TRANSACTION_PARTITIONS, -1)],
            ..Case::new(name, load)
        }
    };
    vec![
        case("suite-idempotent", IDEMPOTENT_CASE, "--idempotent"),
        case(
            "suite-transactional",
            TRANSACTIONAL_CASE,
            &format!("--transactional --transaction-records {TRANSACTION_RECORDS}"),
        ),
    ]
}

fn librdkafka_cases(seconds: f64, e2e_seconds: f64) -> Vec<Case> {
    let produce = |topic: &str, record_bytes: u64, acks: &'static str| Load::LibrdkafkaProduce {
        topic: topic.to_string(),
        record_bytes,
        acks,
        seconds,
    };
    vec![
        Case::new(
            "librdkafka produce 100 B acks=1",
            produce("suite-rd-100", 100, "1"),
        ),
        Case::new(
            "librdkafka produce 1 KiB acks=1",
            produce("suite-rd-1k", 1024, "1"),
        ),
        Case::new(
            "librdkafka produce 1 KiB acks=all",
            produce("suite-rd-1k-all", 1024, "all"),
        ),
        Case::new(
            "librdkafka e2e 100 B 1k/s acks=all",
            Load::LibrdkafkaE2e {
                topic: "suite-rd-e2e".into(),
                record_bytes: 100,
                rate: 1_000,
                seconds: e2e_seconds,
            },
        ),
    ]
}

/// The same produce load (100 B at 10,000 records/s, acks=1, the bench's 16 KiB batches and
/// 5 ms linger: ~160 appends a second) into a topic of one partition, first with a topic of
/// 1,000 partitions nobody reads, then with 200 consumers long-polling those partitions; and
/// last the consumers beside a trickle of 10 records a second, which is what they cost by
/// themselves. The three run one after the other on the same broker for the same time.
fn idle_consumer_cases(seconds: f64) -> Vec<Case> {
    let idle_topic = "suite-idle";
    let produce = |rate: u64| {
        bench(format!(
            "produce --topic suite-idle-load --record-size 100 --acks 1 --rate {rate} \
             --duration {seconds}"
        ))
    };
    let name =
        |consumers: &str| format!("produce 100 B 10k/s acks=1, 1,000 partitions, {consumers}");
    let creates = vec![
        NewTopic::new(idle_topic, IDLE_PARTITIONS, -1),
        NewTopic::new("suite-idle-load", 1, -1),
    ];
    let consumers = words(&format!(
        "idle-fetch --topic {idle_topic} --partitions {IDLE_PARTITIONS} \
         --connections {IDLE_CONSUMERS} --fetch-wait-ms 500 --duration {}",
        seconds + IDLE_SETUP_SECONDS
    ));
    let without = Case {
        creates: creates.clone(),
        ..Case::new(&name(NO_IDLE_CONSUMERS), produce(IDLE_PRODUCE_RATE))
    };
    let with = Case {
        creates: creates.clone(),
        beside: Some(consumers.clone()),
        ..Case::new(
            &name(&format!("{IDLE_CONSUMERS} idle consumers")),
            produce(IDLE_PRODUCE_RATE),
        )
    };
    let alone = Case {
        creates,
        beside: Some(consumers),
        ..Case::new(IDLE_ALONE, produce(IDLE_ALONE_PRODUCE_RATE))
    };
    vec![without, with, alone]
}

/// Thousands of partitions on one node under a small open-file limit, through restarts.
fn many_partitions_case(quick: bool) -> Case {
    let (topics, partitions_per_topic, idle) = if quick {
        (
            MANY_PARTITIONS_TOPICS_QUICK,
            MANY_PARTITIONS_PER_TOPIC_QUICK,
            MANY_PARTITIONS_IDLE_QUICK,
        )
    } else {
        (
            MANY_PARTITIONS_TOPICS,
            MANY_PARTITIONS_PER_TOPIC,
            MANY_PARTITIONS_IDLE,
        )
    };
    let partitions = topics * partitions_per_topic.unsigned_abs();
    Case {
        nodes: Nodes::OwnBroker,
        ..Case::new(
            &format!(
                "{} partitions, ulimit -n {MANY_PARTITIONS_OPEN_FILES_LIMIT}",
                thousands(partitions)
            ),
            Load::Partitions {
                topics,
                partitions_per_topic,
                open_files_limit: MANY_PARTITIONS_OPEN_FILES_LIMIT,
                idle,
            },
        )
    }
}

/// How much longer than the load the idle consumers' command line asks to run, for a run by
/// hand (`strom bench idle-fetch ... & sleep 1; strom bench produce ...`): the consumers take
/// ~0.3 s to connect and read 1,000 end offsets, and get a 1 s head start. (In the suite they
/// run until the load ends.)
const IDLE_SETUP_SECONDS: f64 = 2.0;

#[cfg(test)]
mod tests {
    use super::super::loads::BenchLine;
    use super::*;
    use clap::Parser;

    fn args(line: &str) -> SuiteArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            suite: SuiteArgs,
        }
        Wrapper::try_parse_from(std::iter::once("suite").chain(line.split_whitespace()))
            .unwrap()
            .suite
    }

    fn parses(words: &[String]) -> bool {
        let mut line = vec!["strom bench".to_string()];
        line.extend(words.iter().cloned());
        BenchLine::try_parse_from(&line).is_ok()
    }

    #[test]
    fn every_case_is_a_valid_bench_command_line() {
        for case in cases(&args("--librdkafka"), true) {
            if let Load::Bench(words) = &case.load {
                assert!(parses(words), "{}: {words:?}", case.name);
            }
            if let Some(words) = &case.beside {
                assert!(parses(words), "{}: {words:?}", case.name);
                assert_eq!(words[0], "idle-fetch", "{}", case.name);
            }
        }
    }

    #[test]
    fn produce_throughput_cases_and_only_they_are_bracketed_by_disk_probes() {
        for case in cases(&args("--librdkafka --case-seconds 7"), true) {
            let probe = case.disk_probe();
            let throughput = (case.name.starts_with("produce")
                || case.name.starts_with("librdkafka produce"))
                && !case.name.contains("/s");
            if throughput {
                assert_eq!(probe, Some(Duration::from_secs(7)), "{}", case.name);
            } else {
                assert_eq!(probe, None, "{}", case.name);
            }
        }
    }

    #[test]
    fn every_case_names_its_topic_and_the_consume_cases_read_earlier_ones() {
        let cases = cases(&args("--librdkafka"), true);
        assert!(cases.iter().all(|case| case.topic().is_some()
            || matches!(
                case.load,
                Load::IdleConnections { .. } | Load::Partitions { .. }
            )));
        for (index, case) in cases.iter().enumerate() {
            if case.name.starts_with("consume") {
                let topic = case.topic();
                assert!(cases[..index]
                    .iter()
                    .any(|earlier| earlier.topic() == topic));
            }
        }
    }

    #[test]
    fn the_idle_consumer_cases_differ_only_in_their_consumers() {
        let idle = cases(&args("--only consumers"), false);
        assert_eq!(idle.len(), 3);
        let (without, with, alone) = (&idle[0], &idle[1], &idle[2]);
        assert_eq!(alone.name, IDLE_ALONE);
        assert_eq!(alone.beside, with.beside, "the same consumers");
        assert_eq!(alone.creates, with.creates);
        let Load::Bench(load) = &alone.load else {
            panic!("a bench load")
        };
        assert!(load.join(" ").contains("--rate 10 "), "{load:?}");
        assert!(without.name.ends_with(NO_IDLE_CONSUMERS));
        assert!(with.name.ends_with("200 idle consumers"));
        assert_eq!(without.load, with.load);
        assert_eq!(without.creates, with.creates);
        assert!(without
            .creates
            .contains(&NewTopic::new("suite-idle", 1_000, -1)));
        assert_eq!(without.beside, None);
        let beside = with.beside.as_ref().unwrap().join(" ");
        assert!(beside.contains("--topic suite-idle --partitions 1000 --connections 200"));
        assert_eq!(with.topics(), vec!["suite-idle", "suite-idle-load"]);
        assert_eq!(with.disk_probe(), None, "a fixed-rate load");
    }

    #[test]
    fn the_transactions_cases_differ_only_in_their_producers() {
        let both = cases(&args("--only transactions --case-seconds 3"), false);
        assert_eq!(both.len(), 2, "{both:?}");
        let (idempotent, transactional) = (&both[0], &both[1]);
        assert_eq!(idempotent.name, IDEMPOTENT_CASE);
        assert_eq!(transactional.name, TRANSACTIONAL_CASE);
        // The names say what the loads are.
        let partitions = format!("{TRANSACTION_PARTITIONS} transactional producers");
        assert!(TRANSACTIONAL_CASE.contains(&partitions));
        let records = format!(
            "transactions of {} records",
            thousands(TRANSACTION_RECORDS as u32)
        );
        assert!(TRANSACTIONAL_CASE.contains(&records));
        assert!(IDEMPOTENT_CASE.contains(&format!("{TRANSACTION_PARTITIONS} idempotent")));
        assert!(TRANSACTION_RECORD_BYTES == 1024 && IDEMPOTENT_CASE.contains("1 KiB"));
        assert!(!idempotent.is_transactional() && transactional.is_transactional());
        let (Load::Bench(idempotent_words), Load::Bench(transactional_words)) =
            (&idempotent.load, &transactional.load)
        else {
            panic!("bench loads")
        };
        let without = |words: &[String], topic: &str, extra: &[&str]| -> Vec<String> {
            words
                .iter()
                .filter(|word| *word != topic && !extra.contains(&word.as_str()))
                .cloned()
                .collect()
        };
        assert_eq!(
            without(idempotent_words, "suite-idempotent", &["--idempotent"]),
            without(
                transactional_words,
                "suite-transactional",
                &["--transactional", "--transaction-records", "1000"]
            ),
            "the same load but for the producer"
        );
        assert_eq!(idempotent.disk_probe(), Some(Duration::from_secs(3)));
        assert_eq!(transactional.creates[0].partitions, 8);
    }

    #[test]
    fn the_security_cases_differ_from_the_plaintext_ones_only_in_their_listener() {
        let group = cases(&args("--only security --case-seconds 3"), false);
        let names: Vec<&str> = group.iter().map(|case| case.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "produce 1 KiB acks=1",
                "consume 1 KiB",
                "consume 1 KiB over SSL",
                "consume 1 KiB over SASL_SSL SCRAM-SHA-512",
                "produce 1 KiB acks=1 over SSL",
                "produce 1 KiB acks=1 over SASL_SSL SCRAM-SHA-512",
            ],
            "the plaintext cases first; the secured consumes right after the plaintext one"
        );
        let listeners: Vec<&str> = group.iter().map(|case| case.listener.protocol()).collect();
        assert_eq!(
            listeners,
            [
                "PLAINTEXT",
                "PLAINTEXT",
                "SSL",
                "SASL_SSL",
                "SSL",
                "SASL_SSL"
            ]
        );
        assert!(group.iter().all(|case| case.nodes == Nodes::One
            && case.group == Some(SECURITY_GROUP)
            && case.creates.is_empty()
            && case.beside.is_none()));
        let (produce, consume) = (&group[0], &group[1]);
        for secured in &group[2..4] {
            assert_eq!(secured.load, consume.load, "the same records read back");
            assert_eq!(secured.disk_probe(), None);
        }
        let load_but_topic = |case: &Case| {
            let Load::Bench(words) = &case.load else {
                panic!("a bench load")
            };
            let topic = case.topic().unwrap().to_string();
            let rest: Vec<&String> = words.iter().filter(|word| **word != topic).collect();
            (topic, rest.into_iter().cloned().collect::<Vec<_>>())
        };
        let (plaintext_topic, plaintext_load) = load_but_topic(produce);
        let mut topics = vec![plaintext_topic];
        for secured in &group[4..] {
            let (topic, load) = load_but_topic(secured);
            assert_eq!(load, plaintext_load, "{}", secured.name);
            assert_eq!(secured.disk_probe(), Some(Duration::from_secs(3)));
            topics.push(topic);
        }
        assert_eq!(topics, ["suite-1k", "suite-1k-ssl", "suite-1k-sasl-ssl"]);
        // By name too: the secured cases alone, or the SASL_SSL ones.
        assert_eq!(cases(&args("--only SSL"), false).len(), 4);
        assert_eq!(cases(&args("--only SASL_SSL"), false).len(), 2);
        // The whole suite has them on its single broker, after the plaintext consume.
        let all = cases(&args(""), false);
        let at = |name: &str| all.iter().position(|case| case.name == name).unwrap();
        assert_eq!(at("consume 1 KiB over SSL"), at("consume 1 KiB") + 1);
        assert_eq!(
            all.iter()
                .filter(|case| case.listener != Listener::Plaintext)
                .count(),
            4
        );
    }

    #[test]
    fn counts_read_with_thousands_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(123_456), "123,456");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn the_case_list_follows_the_flags() {
        let names: Vec<String> = cases(&args(""), false)
            .into_iter()
            .map(|case| case.name)
            .collect();
        assert_eq!(names.len(), 25);
        assert!(names.iter().all(|name| !name.starts_with("librdkafka")));
        assert!(names.iter().all(|name| !name.starts_with("kcat")));
        assert_eq!(names[21], "produce 1 KiB acks=1 100 partitions");
        assert_eq!(names[22], "10,000 idle connections");
        assert_eq!(names[23], "e2e 100 B 1k/s acks=all RF=3");
        assert_eq!(names[24], "20,000 partitions, ulimit -n 4096");
        let all = cases(&args("--librdkafka"), true);
        assert_eq!(all.len(), 30);
        let three: Vec<&Case> = all
            .iter()
            .filter(|case| case.nodes == Nodes::ThreeVoters)
            .collect();
        assert_eq!(three.len(), 1);
        assert!(three[0].name.contains("RF=3"));
        let own = all.len() - 1;
        assert_eq!(all[own].nodes, Nodes::OwnBroker);
        assert_eq!(
            all[own - 1],
            *three[0],
            "three-node cases run after the single broker's, then those with a broker of their own"
        );
        let only = cases(&args("--only e2e --only consume"), true);
        assert!(only
            .iter()
            .all(|case| case.name.contains("e2e") || case.name.contains("consume")));
        assert_eq!(
            only.len(),
            12,
            "five e2e, two plaintext and two secured consume, three with idle consumers"
        );
        let without_librdkafka = cases(&args("--only kcat"), true);
        assert!(
            without_librdkafka.is_empty(),
            "kcat comes with --librdkafka"
        );
        let quick = cases(&args("--quick --librdkafka --case-seconds 30"), true);
        assert!(quick
            .iter()
            .any(|case| case.name == "1,000 idle connections"
                && case.load == Load::IdleConnections { connections: 1_000 }));
        assert_eq!(
            quick[0].load,
            Load::Bench(words(
                "produce --topic suite-100 --record-size 100 --acks 1 --duration 1 --batch-size 1000000"
            ))
        );
        let partitions = quick.last().unwrap();
        assert_eq!(partitions.name, "400 partitions, ulimit -n 4096");
        assert_eq!(
            partitions.load,
            Load::Partitions {
                topics: 4,
                partitions_per_topic: 100,
                open_files_limit: 4_096,
                idle: Duration::from_secs(2),
            }
        );
        let only = cases(&args("--only ulimit"), false);
        assert_eq!(only.len(), 1, "the many-partitions case alone");
        let kcat = quick
            .iter()
            .find(|case| case.name.starts_with("kcat"))
            .unwrap();
        assert!(matches!(
            kcat.load,
            Load::KcatProduce {
                records: KCAT_RECORDS_QUICK,
                ..
            }
        ));
    }
}
