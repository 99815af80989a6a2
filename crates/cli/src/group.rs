//! `strom group list|describe|reset-offsets|delete`: consumer-group administration over the
//! Kafka protocol, after Kafka's `kafka-consumer-groups.sh`.
//!
//! `describe` joins three answers: the group's description (ConsumerGroupDescribe for KIP-848
//! groups, else DescribeGroups: members and their assignments), OffsetFetch (what the group
//! committed) and ListOffsets (each partition's end), and shows the lag of every partition that
//! has a committed offset or an owner. `reset-offsets` computes new
//! offsets from ListOffsets and commits them with the "admin commit" (generation -1, no member),
//! which the coordinator accepts only while the group has no members.

use std::collections::{BTreeMap, BTreeSet};

use strom_client::{
    Client, ClientError, ClusterMetadata, CommittedOffset, GroupDescription, GroupMember,
    GroupState, OffsetSpec, PartitionOffset, TopicPartition, TopicPartitions,
};
use strom_types::{ErrorCode, Offset, TimestampMs};

use crate::common::{
    block_on, check_partition, connect, existing_topic, print_table, BootstrapArgs,
};

#[derive(clap::Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand)]
enum GroupCommand {
    /// List the consumer groups: id, state and protocol type.
    List(ListArgs),
    /// Show a group's state and members, and per partition its committed offset, the log end
    /// offset and the lag.
    Describe(DescribeArgs),
    /// Set a group's committed offsets; the group must have no active members.
    ResetOffsets(ResetArgs),
    /// Delete groups and their committed offsets; a group must have no active members.
    Delete(DeleteArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    /// Only groups in this state (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead,
    /// ...; any case); repeatable.
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    states: Vec<GroupState>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct DescribeArgs {
    /// The group's id.
    group: String,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct ResetArgs {
    /// The group's id.
    group: String,
    /// A topic whose offsets to reset, with a comma-separated list of partitions after a colon
    /// (all partitions without one); repeatable.
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", required = true, value_parser = parse_topic_partitions)]
    topics: Vec<TopicSelection>,
    #[command(flatten)]
    target: ResetTarget,
    /// Print the new offsets without committing them.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// Where to move the offsets: exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ResetTarget {
    /// Each partition's first offset.
    #[arg(long)]
    to_earliest: bool,
    /// Each partition's end offset (skip everything produced so far).
    #[arg(long)]
    to_latest: bool,
    /// This offset, moved into [first, end] of each partition where it lies outside.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// The first offset whose record is at least this recent, as YYYY-MM-DDTHH:MM:SS[.sss]
    /// with Z or +hh:mm / -hh:mm (UTC without one); partitions with no record that recent go
    /// to their end.
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<TimestampMs>,
}

#[derive(clap::Args)]
struct DeleteArgs {
    /// The ids of the groups to delete.
    #[arg(required = true, value_name = "GROUP")]
    groups: Vec<String>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// A topic given with --topic, and its partitions if listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSelection {
    topic: String,
    partitions: Option<Vec<i32>>,
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(Offset),
    Timestamp(TimestampMs),
}

impl ResetTarget {
    fn reset_to(&self) -> ResetTo {
        match (self.to_offset, self.to_datetime) {
            (Some(offset), _) => ResetTo::Offset(Offset(offset)),
            (_, Some(timestamp)) => ResetTo::Timestamp(timestamp),
            _ if self.to_latest => ResetTo::Latest,
            _ => ResetTo::Earliest,
        }
    }
}

pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            GroupCommand::List(args) => list(args).await,
            GroupCommand::Describe(args) => describe(args).await,
            GroupCommand::ResetOffsets(args) => reset_offsets(args).await,
            GroupCommand::Delete(args) => delete(args).await,
        }
    })?
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let groups = client.list_groups(&args.states).await?;
    let mut rows = vec![["GROUP", "STATE", "PROTOCOL-TYPE"]
        .map(String::from)
        .to_vec()];
    for group in groups {
        rows.push(vec![
            group.group_id,
            group
                .state
                .map_or_else(|| "-".to_string(), |state| state.to_string()),
            or_dash(group.protocol_type),
        ]);
    }
    print_table(&rows);
    Ok(())
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let group = args.group.as_str();
    let description = client
        .describe_groups(&[group])
        .await?
        .pop()
        .expect("one description per group asked for");
    let committed = client.offset_fetch(group, None).await?;
    if description.state == GroupState::Dead
        && description.members.is_empty()
        && committed.is_empty()
    {
        let message = format!("group '{group}' does not exist");
        return Err(ClientError::from_code(
            ErrorCode::GroupIdNotFound.code(),
            Some(&message),
            None,
            None,
        )
        .into());
    }

    print_summary(&description);
    println!();
    print_members(&description.members);
    println!();

    let rows = partition_rows(&description, committed);
    if rows.is_empty() {
        println!("(no committed offsets and no assigned partitions)");
        return Ok(());
    }
    print_partitions(&client, &rows).await?;
    Ok(())
}

/// Per partition, the group's committed offset and the member that owns it.
type PartitionRows<'a> = BTreeMap<TopicPartition, (Option<Offset>, Option<&'a str>)>;

/// Every partition with a committed offset or an owner, sorted by topic and partition.
fn partition_rows(
    description: &GroupDescription,
    committed: Vec<CommittedOffset>,
) -> PartitionRows<'_> {
    let mut rows = PartitionRows::new();
    for offset in committed
        .into_iter()
        .filter(|offset| offset.offset.is_some())
    {
        rows.entry(offset.partition).or_default().0 = offset.offset;
    }
    for member in &description.members {
        for assigned in member.assignment.iter().flatten() {
            for &partition in &assigned.partitions {
                let key = TopicPartition::new(assigned.topic.clone(), partition);
                rows.entry(key).or_default().1 = Some(member.member_id.as_str());
            }
        }
    }
    rows
}

/// The lag table: each partition's committed offset, log end offset and their difference.
async fn print_partitions(client: &Client, rows: &PartitionRows<'_>) -> Result<(), ClientError> {
    let topics: BTreeSet<&str> = rows.keys().map(|row| row.topic.as_str()).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let metadata = client.metadata(Some(&topics)).await?;
    let mut table = vec![[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
    ]
    .map(String::from)
    .to_vec()];
    for (partition, (committed, owner)) in rows {
        let end = log_end_offset(client, &metadata, partition).await;
        let lag = committed
            .zip(end)
            .map(|(committed, end)| end.minus(committed));
        table.push(vec![
            partition.topic.clone(),
            partition.partition.to_string(),
            dash_or(*committed),
            dash_or(end),
            dash_or(lag),
            owner.unwrap_or("-").to_string(),
        ]);
    }
    print_table(&table);
    Ok(())
}

fn print_summary(description: &GroupDescription) {
    println!("group: {}", description.group_id);
    println!("type: {}", description.group_type);
    println!("state: {}", description.state);
    let protocol = match (
        description.protocol_type.as_str(),
        description.protocol.as_str(),
    ) {
        ("", _) => "-".to_string(),
        (kind, "") => kind.to_string(),
        (kind, assignor) => format!("{kind} ({assignor})"),
    };
    println!("protocol: {protocol}");
    println!("members: {}", description.members.len());
}

fn print_members(members: &[GroupMember]) {
    if members.is_empty() {
        println!("(no active members)");
        return;
    }
    let mut rows = vec![[
        "MEMBER-ID",
        "CLIENT-ID",
        "HOST",
        "INSTANCE-ID",
        "ASSIGNMENT",
    ]
    .map(String::from)
    .to_vec()];
    for member in members {
        rows.push(vec![
            member.member_id.clone(),
            or_dash(member.client_id.clone()),
            or_dash(member.client_host.clone()),
            member
                .instance_id
                .clone()
                .unwrap_or_else(|| "-".to_string()),
            member
                .assignment
                .as_deref()
                .map_or_else(|| "?".to_string(), format_assignment),
        ]);
    }
    print_table(&rows);
}

/// `t:0,1 u:2`, partitions sorted; `-` for none.
fn format_assignment(assignment: &[TopicPartitions]) -> String {
    let mut topics: Vec<String> = assignment
        .iter()
        .filter(|assigned| !assigned.partitions.is_empty())
        .map(|assigned| {
            let mut partitions = assigned.partitions.clone();
            partitions.sort();
            let partitions: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
            format!("{}:{}", assigned.topic, partitions.join(","))
        })
        .collect();
    topics.sort();
    if topics.is_empty() {
        "-".to_string()
    } else {
        topics.join(" ")
    }
}

/// A partition's log end offset; `None` (shown as `-`) when the topic or partition is gone, has
/// no leader, or its leader does not answer, so that the rest of the table still prints.
async fn log_end_offset(
    client: &Client,
    metadata: &ClusterMetadata,
    partition: &TopicPartition,
) -> Option<Offset> {
    let led = metadata
        .topic(&partition.topic)
        .filter(|topic| topic.error_code == 0)
        .and_then(|topic| topic.partition(partition.partition))
        .is_some_and(|found| found.leader.is_some());
    if !led {
        return None;
    }
    client
        .list_offsets(&partition.topic, partition.partition, OffsetSpec::Latest)
        .await
        .map_err(|error| tracing::debug!(%error, %partition, "list offsets failed"))
        .ok()
}

async fn reset_offsets(args: ResetArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let partitions = selected_partitions(&client, &args.topics).await?;
    let reset_to = args.target.reset_to();
    let mut planned = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let offset = new_offset(&client, &partition, reset_to).await?;
        planned.push(PartitionOffset { partition, offset });
    }
    if args.dry_run {
        warn_if_active(&client, &args.group).await?;
    } else {
        client.offset_commit(&args.group, &planned).await?;
    }
    let mut rows = vec![["TOPIC", "PARTITION", "NEW-OFFSET"]
        .map(String::from)
        .to_vec()];
    for entry in &planned {
        rows.push(vec![
            entry.partition.topic.clone(),
            entry.partition.partition.to_string(),
            entry.offset.to_string(),
        ]);
    }
    print_table(&rows);
    if args.dry_run {
        eprintln!("dry run: nothing committed (run again without --dry-run to commit)");
    }
    Ok(())
}

/// The partitions the --topic flags name, checked to exist, without repeats, sorted.
async fn selected_partitions(
    client: &Client,
    selections: &[TopicSelection],
) -> Result<Vec<TopicPartition>, ClientError> {
    let mut partitions = BTreeSet::new();
    for selection in selections {
        let topic = existing_topic(client, &selection.topic).await?;
        match &selection.partitions {
            Some(listed) => {
                for &partition in listed {
                    let index = check_partition(&topic, partition)?;
                    partitions.insert(TopicPartition::new(topic.name.clone(), index));
                }
            }
            None => {
                for partition in &topic.partitions {
                    partitions.insert(TopicPartition::new(topic.name.clone(), partition.index));
                }
            }
        }
    }
    Ok(partitions.into_iter().collect())
}

/// The offset a partition resets to. An offset outside the log is moved to its nearest end
/// (with a note), and a time no record is that recent to the end offset, as Kafka's tool does.
async fn new_offset(
    client: &Client,
    partition: &TopicPartition,
    reset_to: ResetTo,
) -> Result<Offset, ClientError> {
    let (topic, index) = (partition.topic.as_str(), partition.partition);
    let list = |spec| client.list_offsets(topic, index, spec);
    match reset_to {
        ResetTo::Earliest => list(OffsetSpec::Earliest).await,
        ResetTo::Latest => list(OffsetSpec::Latest).await,
        ResetTo::Timestamp(timestamp) => {
            let found = list(OffsetSpec::Timestamp(timestamp)).await?;
            if found.0 >= 0 {
                Ok(found)
            } else {
                list(OffsetSpec::Latest).await
            }
        }
        ResetTo::Offset(wanted) => {
            let earliest = list(OffsetSpec::Earliest).await?;
            let latest = list(OffsetSpec::Latest).await?;
            let clamped = clamp_offset(wanted, earliest, latest);
            if clamped != wanted {
                eprintln!(
                    "note: {partition} holds offsets {earliest} to {latest}; \
                     offset {wanted} becomes {clamped}"
                );
            }
            Ok(clamped)
        }
    }
}

/// An offset moved into `[earliest, latest]`.
fn clamp_offset(wanted: Offset, earliest: Offset, latest: Offset) -> Offset {
    wanted.max(earliest).min(latest.max(earliest))
}

/// For a dry run: says on stderr when the group has members, since committing would fail.
async fn warn_if_active(client: &Client, group: &str) -> Result<(), ClientError> {
    let description = client.describe_groups(&[group]).await?;
    let members = description.first().map_or(0, |group| group.members.len());
    if members > 0 {
        let noun = if members == 1 { "member" } else { "members" };
        eprintln!(
            "note: group '{group}' has {members} active {noun}; committing these offsets \
             would be refused until they stop"
        );
    }
    Ok(())
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    for group in &args.groups {
        client.delete_groups(&[group.as_str()]).await?;
        println!("deleted group '{group}'");
    }
    Ok(())
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

fn dash_or(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

/// Parses a group state name, any case.
fn parse_state(text: &str) -> Result<GroupState, String> {
    match GroupState::parse(text) {
        GroupState::Other(_) => {
            let known: Vec<&str> = GroupState::KNOWN.iter().map(GroupState::name).collect();
            Err(format!(
                "unknown group state '{text}'; one of {}",
                known.join(", ")
            ))
        }
        state => Ok(state),
    }
}

/// Parses TOPIC or TOPIC:P,P,...
fn parse_topic_partitions(text: &str) -> Result<TopicSelection, String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|partition| match partition.trim().parse::<i32>() {
                    Ok(index) if index >= 0 => Ok(index),
                    _ => Err(format!(
                        "'{partition}' is not a partition number in '{text}' (TOPIC:P,P,...)"
                    )),
                })
                .collect::<Result<Vec<i32>, String>>()?;
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!(
            "no topic name in '{text}' (TOPIC or TOPIC:P,P,...)"
        ));
    }
    Ok(TopicSelection {
        topic: topic.to_string(),
        partitions,
    })
}

/// Parses YYYY-MM-DDTHH:MM:SS[.fraction][Z|+hh:mm|-hh:mm|+hhmm|+hh] into milliseconds since
/// the Unix epoch; without a zone the time is UTC.
fn parse_datetime(text: &str) -> Result<TimestampMs, String> {
    let invalid = |why: &str| {
        format!("{why} in '{text}' (expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm|-hh:mm])")
    };
    let (date, time) = text.split_once('T').ok_or_else(|| invalid("no 'T'"))?;
    let (clock, zone_minutes) = split_zone(time).ok_or_else(|| invalid("a bad time zone"))?;
    let (clock, fraction) = match clock.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (clock, None),
    };
    let [year, month, day] = fields(date, '-', [4, 2, 2]).ok_or_else(|| invalid("a bad date"))?;
    let [hour, minute, second] =
        fields(clock, ':', [2, 2, 2]).ok_or_else(|| invalid("a bad time"))?;
    let millis = match fraction {
        None => 0,
        Some(digits) if (1..=9).contains(&digits.len()) && all_digits(digits) => {
            format!("{:0<3}", &digits[..digits.len().min(3)])
                .parse::<i64>()
                .expect("three digits")
        }
        Some(_) => return Err(invalid("a bad fraction of a second")),
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(invalid("no such time"));
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - zone_minutes * 60;
    Ok(TimestampMs(seconds * 1_000 + millis))
}

/// Splits a time into the clock part and the zone's offset from UTC in minutes (0 for `Z` or
/// no zone); `None` for a malformed zone.
fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let Some(at) = time.rfind(['+', '-']) else {
        return Some((time, 0));
    };
    let (clock, zone) = time.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let separators = zone[1..].matches(':').count();
    if !all_digits(&digits) || separators > 1 || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if hours > 18 || minutes > 59 {
        return None;
    }
    Some((clock, sign * (hours * 60 + minutes)))
}

/// Three numbers of exactly the given widths separated by `separator`.
fn fields(text: &str, separator: char, widths: [usize; 3]) -> Option<[i64; 3]> {
    let parts: Vec<&str> = text.split(separator).collect();
    if parts.len() != 3 {
        return None;
    }
    let mut numbers = [0; 3];
    for ((part, width), number) in parts.iter().zip(widths).zip(&mut numbers) {
        if part.len() != width || !all_digits(part) {
            return None;
        }
        *number = part.parse().ok()?;
    }
    Some(numbers)
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_types::PartitionIndex;

    fn millis(text: &str) -> i64 {
        parse_datetime(text).unwrap().0
    }

    #[test]
    fn datetimes_parse_with_or_without_zone_and_fraction() {
        assert_eq!(millis("1970-01-01T00:00:00Z"), 0);
        assert_eq!(millis("1970-01-01T00:00:00"), 0, "no zone means UTC");
        assert_eq!(millis("2024-02-29T12:34:56.789Z"), 1_709_210_096_789);
        assert_eq!(millis("2024-02-29T12:34:56.7Z"), 1_709_210_096_700);
        assert_eq!(millis("2024-02-29T12:34:56.789123Z"), 1_709_210_096_789);
        assert_eq!(millis("2024-02-29T14:34:56.789+02:00"), 1_709_210_096_789);
        assert_eq!(millis("2024-02-29T07:04:56.789-0530"), 1_709_210_096_789);
        assert_eq!(millis("2024-02-29T13:34:56.789+01"), 1_709_210_096_789);
        assert_eq!(millis("2000-03-01T00:00:00Z"), 951_868_800_000);
        assert_eq!(millis("1969-12-31T23:59:59Z"), -1_000);
    }

    #[test]
    fn bad_datetimes_are_refused() {
        for text in [
            "2024-02-29",
            "2024-02-29 12:00:00",
            "2023-02-29T12:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+5",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00+01:00:00",
        ] {
            let error = parse_datetime(text).unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }

    #[test]
    fn topic_selections_parse() {
        assert_eq!(
            parse_topic_partitions("orders"),
            Ok(TopicSelection {
                topic: "orders".to_string(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_partitions("orders:0, 2").unwrap().partitions,
            Some(vec![0, 2])
        );
        assert!(parse_topic_partitions("orders:").is_err());
        assert!(parse_topic_partitions("orders:-1").is_err());
        assert!(parse_topic_partitions(":1").is_err());
    }

    #[test]
    fn offsets_are_clamped_into_the_log() {
        let clamp = |wanted, earliest, latest| {
            clamp_offset(Offset(wanted), Offset(earliest), Offset(latest)).0
        };
        assert_eq!(clamp(5, 0, 10), 5);
        assert_eq!(clamp(50, 0, 10), 10);
        assert_eq!(clamp(-3, 2, 10), 2);
        assert_eq!(clamp(0, 0, 0), 0);
    }

    #[test]
    fn states_parse_any_case_and_unknown_ones_are_refused() {
        assert_eq!(parse_state("stable"), Ok(GroupState::Stable));
        assert_eq!(parse_state("EMPTY"), Ok(GroupState::Empty));
        let error = parse_state("running").unwrap_err();
        assert!(error.contains("Stable"), "{error}");
    }

    #[test]
    fn partitions_with_an_offset_or_an_owner_are_shown() {
        let topic_partition = |p| TopicPartition::new("t", PartitionIndex(p));
        let member = GroupMember {
            member_id: "m".to_string(),
            instance_id: None,
            client_id: "c".to_string(),
            client_host: "h".to_string(),
            assignment: Some(vec![TopicPartitions {
                topic: "t".to_string(),
                partitions: vec![PartitionIndex(1), PartitionIndex(2)],
            }]),
        };
        let description = GroupDescription {
            group_id: "g".to_string(),
            group_type: strom_client::GroupType::Classic,
            state: GroupState::Stable,
            protocol_type: "consumer".to_string(),
            protocol: "range".to_string(),
            members: vec![member],
        };
        let committed = |p, offset: Option<i64>| CommittedOffset {
            partition: topic_partition(p),
            offset: offset.map(Offset),
            leader_epoch: None,
            metadata: None,
        };
        let rows = partition_rows(
            &description,
            vec![
                committed(0, Some(4)),
                committed(1, Some(9)),
                committed(3, None),
            ],
        );
        let rows: Vec<_> = rows.into_iter().collect();
        assert_eq!(
            rows,
            [
                (topic_partition(0), (Some(Offset(4)), None)),
                (topic_partition(1), (Some(Offset(9)), Some("m"))),
                (topic_partition(2), (None, Some("m"))),
            ]
        );
    }

    #[test]
    fn assignments_print_sorted() {
        let assigned = |topic: &str, partitions: &[i32]| TopicPartitions {
            topic: topic.to_string(),
            partitions: partitions.iter().copied().map(PartitionIndex).collect(),
        };
        assert_eq!(
            format_assignment(&[assigned("u", &[2]), assigned("t", &[1, 0])]),
            "t:0,1 u:2"
        );
        assert_eq!(format_assignment(&[assigned("t", &[])]), "-");
        assert_eq!(format_assignment(&[]), "-");
    }
}
