//! `strom cluster reassign`: moves partitions to new replica sets (AlterPartitionReassignments,
//! KIP-455), after Kafka's `kafka-reassign-partitions.sh` and its JSON files.
//!
//! - `--plan TOPICS_FILE --brokers 1,2,3`: Kafka's `--generate`. TOPICS_FILE is Kafka's
//!   topics-to-move file (`{"version":1,"topics":[{"topic":"t"}]}`); prints the current
//!   assignment and a proposed one spreading each topic's partitions over the brokers given,
//!   with their racks, by the placement new topics get (leaders and followers round-robin,
//!   racks alternated). `--output FILE` also writes the proposal there.
//! - `--execute FILE [--throttle BYTES_PER_S]`: starts the moves of Kafka's reassignment file
//!   (`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}`), after
//!   printing the current assignment of those partitions (to save for a rollback). With
//!   `--throttle`, as Kafka's tool: every broker of the moves gets
//!   `leader.replication.throttled.rate` and `follower.replication.throttled.rate`, each topic
//!   `leader.replication.throttled.replicas` (the current replicas of its moving partitions)
//!   and `follower.replication.throttled.replicas` (the replicas being added).
//! - `--verify FILE`: whether each move completed (no move in progress and the replicas are
//!   the target). Exits 0 when every move completed, 3 while some are in progress, 1 when a
//!   partition has neither (a move that was cancelled or replaced). Once every move
//!   completed, it clears the throttles: the two rates on every live broker, the two replica
//!   lists on the file's topics.
//! - `--cancel FILE`: cancels the moves of those partitions still in progress; the partitions
//!   keep their original replicas.
//! - `--list`: every move in progress.
//!
//! `log_dirs` in a reassignment file must be `any` (Strom has one data directory per node).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use strom_client::{Client, ConfigChange, ConfigResource, OngoingReassignment, Reassignment};
use strom_metadata::placement::{self, Candidate};
use strom_types::ErrorCode;

use crate::common::{connect, existing_topic, print_table, BootstrapArgs};

/// `--verify`'s exit status while some move is still in progress.
pub const EXIT_IN_PROGRESS: i32 = 3;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["plan", "execute", "verify", "cancel", "list"])))]
pub struct ReassignArgs {
    /// Propose an assignment of the topics in this file (Kafka's topics-to-move JSON) over
    /// --brokers.
    #[arg(long, value_name = "TOPICS_FILE", requires = "brokers")]
    plan: Option<PathBuf>,
    /// The brokers the --plan spreads replicas over, comma-separated ids.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    brokers: Vec<i32>,
    /// With --plan, also write the proposed reassignment to this file.
    #[arg(long, value_name = "FILE", requires = "plan")]
    output: Option<PathBuf>,
    /// Start the moves in this reassignment file (Kafka's JSON).
    #[arg(long, value_name = "FILE")]
    execute: Option<PathBuf>,
    /// With --execute, hold the moves' replication to this many bytes per second per broker
    /// (--verify clears it once they completed).
    #[arg(long, value_name = "BYTES_PER_S", requires = "execute")]
    throttle: Option<u64>,
    /// Report whether the moves in this reassignment file completed.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
    /// Cancel the moves in this reassignment file that are still in progress.
    #[arg(long, value_name = "FILE")]
    cancel: Option<PathBuf>,
    /// List every move in progress.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// Kafka's reassignment file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ReassignmentFile {
    version: i32,
    partitions: Vec<PartitionMove>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct PartitionMove {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

/// Kafka's topics-to-move file.
#[derive(Debug, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicEntry>,
}

#[derive(Debug, Deserialize)]
struct TopicEntry {
    topic: String,
}

/// Runs the command; the exit status it asks for (0, or [`EXIT_IN_PROGRESS`]).
pub async fn run(args: ReassignArgs) -> anyhow::Result<i32> {
    let client = connect(&args.bootstrap, false).await?;
    if let Some(file) = &args.plan {
        plan(&client, file, &args.brokers, args.output.as_deref()).await?;
    } else if let Some(file) = &args.execute {
        execute(&client, &read_reassignment(file)?, args.throttle).await?;
    } else if let Some(file) = &args.verify {
        return verify(&client, &read_reassignment(file)?).await;
    } else if let Some(file) = &args.cancel {
        cancel(&client, &read_reassignment(file)?).await?;
    } else {
        list(&client).await?;
    }
    Ok(0)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// A reassignment file, checked: every partition once, a non-empty replica list without
/// duplicates, `log_dirs` (when given) one `any` per replica.
fn read_reassignment(path: &Path) -> anyhow::Result<ReassignmentFile> {
    let file: ReassignmentFile = read_json(path)?;
    check_reassignment(&file).with_context(|| format!("{} is not valid", path.display()))?;
    Ok(file)
}

fn check_reassignment(file: &ReassignmentFile) -> anyhow::Result<()> {
    if file.version != 1 {
        bail!("unsupported version {} (only 1 is)", file.version);
    }
    if file.partitions.is_empty() {
        bail!("the partition reassignment list is empty");
    }
    let mut seen = std::collections::BTreeSet::new();
    for moved in &file.partitions {
        let name = format!("{}-{}", moved.topic, moved.partition);
        if !seen.insert((moved.topic.as_str(), moved.partition)) {
            bail!("partition {name} appears more than once");
        }
        if moved.replicas.is_empty() {
            bail!("partition {name} has an empty replica list");
        }
        let mut sorted = moved.replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != moved.replicas.len() {
            bail!(
                "partition {name} names a broker more than once: {:?}",
                moved.replicas
            );
        }
        if let Some(dirs) = &moved.log_dirs {
            if dirs.len() != moved.replicas.len() {
                bail!("partition {name}: log_dirs must have one entry per replica");
            }
            if dirs.iter().any(|dir| dir != "any") {
                bail!("partition {name}: log_dirs must be \"any\" (one data directory per node)");
            }
        }
    }
    Ok(())
}

fn to_json(file: &ReassignmentFile) -> String {
    serde_json::to_string(file).expect("a reassignment file serializes")
}

/// The current replicas of every partition of `topics`, as a reassignment file.
async fn current_assignment(client: &Client, topics: &[&str]) -> anyhow::Result<ReassignmentFile> {
    let mut partitions = Vec::new();
    for topic in topics {
        let found = existing_topic(client, topic).await?;
        for partition in &found.partitions {
            let replicas: Vec<i32> = partition.replicas.iter().map(|id| id.0).collect();
            partitions.push(PartitionMove {
                topic: found.name.clone(),
                partition: partition.index.0,
                log_dirs: Some(vec!["any".to_owned(); replicas.len()]),
                replicas,
            });
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(ReassignmentFile {
        version: 1,
        partitions,
    })
}

async fn plan(
    client: &Client,
    topics_file: &Path,
    brokers: &[i32],
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let topics: TopicsFile = read_json(topics_file)?;
    if topics.topics.is_empty() {
        bail!("{} names no topic", topics_file.display());
    }
    let mut names: Vec<&str> = topics.topics.iter().map(|t| t.topic.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let metadata = client.metadata(Some(&[])).await?;
    let mut candidates = Vec::new();
    for id in brokers {
        let Some(broker) = metadata.brokers.iter().find(|b| b.id.0 == *id) else {
            bail!("broker {id} is not in the cluster (or not alive)");
        };
        candidates.push(Candidate {
            id: *id,
            rack: broker.rack.clone(),
        });
    }
    candidates.dedup_by_key(|candidate| candidate.id);
    let current = current_assignment(client, &names).await?;
    let mut proposed = Vec::new();
    for name in &names {
        let partitions: Vec<&PartitionMove> = (current.partitions.iter())
            .filter(|p| p.topic == *name)
            .collect();
        let replication_factor = partitions.first().map_or(0, |p| p.replicas.len());
        if replication_factor > candidates.len() {
            bail!("topic {name} has {replication_factor} replicas per partition, more than the {} broker(s) given", candidates.len());
        }
        let seed = name.bytes().fold(0u64, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(u64::from(byte))
        });
        let count = partitions.len() as i32;
        let placed = placement::place(&candidates, 0, count, replication_factor, seed)
            .context("no placement for these brokers")?;
        for (partition, replicas) in partitions.iter().zip(placed) {
            proposed.push(PartitionMove {
                topic: name.to_string(),
                partition: partition.partition,
                log_dirs: Some(vec!["any".to_owned(); replicas.len()]),
                replicas,
            });
        }
    }
    let proposed = ReassignmentFile {
        version: 1,
        partitions: proposed,
    };
    println!("Current partition replica assignment");
    println!("{}", to_json(&current));
    println!();
    println!("Proposed partition reassignment configuration");
    println!("{}", to_json(&proposed));
    if let Some(output) = output {
        std::fs::write(output, to_json(&proposed) + "\n")
            .with_context(|| format!("cannot write {}", output.display()))?;
    }
    Ok(())
}

/// The topics a reassignment file names, once each.
fn topics_of(file: &ReassignmentFile) -> Vec<&str> {
    let mut topics: Vec<&str> = file.partitions.iter().map(|p| p.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    topics
}

/// The partitions of a reassignment file, named `topic-partition`, comma-separated.
fn partition_names<'a>(partitions: impl Iterator<Item = (&'a str, i32)>) -> String {
    (partitions.map(|(topic, partition)| format!("{topic}-{partition}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The replication throttle keys (KIP-73).
const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Kafka's throttled replica lists for moving `file`'s partitions from `current`, by topic:
/// (the current replicas, the replicas being added), each `partition:broker,...`.
fn throttled_replicas(
    file: &ReassignmentFile,
    current: &ReassignmentFile,
) -> BTreeMap<String, (String, String)> {
    let mut lists: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for moved in &file.partitions {
        let Some(now) = (current.partitions.iter())
            .find(|p| p.topic == moved.topic && p.partition == moved.partition)
        else {
            continue;
        };
        let (leaders, followers) = lists.entry(moved.topic.clone()).or_default();
        leaders.extend(
            now.replicas
                .iter()
                .map(|b| format!("{}:{b}", moved.partition)),
        );
        followers.extend(
            (moved.replicas.iter())
                .filter(|b| !now.replicas.contains(b))
                .map(|b| format!("{}:{b}", moved.partition)),
        );
    }
    (lists.into_iter())
        .map(|(topic, (leaders, followers))| (topic, (leaders.join(","), followers.join(","))))
        .collect()
}

/// Sets the throttle of `--execute --throttle`: the rates on every broker of the moves, the
/// replica lists on their topics.
async fn set_throttle(
    client: &Client,
    file: &ReassignmentFile,
    current: &ReassignmentFile,
    rate: u64,
) -> anyhow::Result<()> {
    let brokers: std::collections::BTreeSet<i32> = (file.partitions.iter())
        .flat_map(|p| p.replicas.iter().copied())
        .chain(
            current
                .partitions
                .iter()
                .flat_map(|p| p.replicas.iter().copied()),
        )
        .collect();
    for broker in &brokers {
        let changes = [
            ConfigChange::Set(LEADER_RATE.into(), rate.to_string()),
            ConfigChange::Set(FOLLOWER_RATE.into(), rate.to_string()),
        ];
        (client.alter_configs(&ConfigResource::Broker(*broker), &changes, false))
            .await
            .with_context(|| format!("throttling broker {broker}"))?;
    }
    for (topic, (leaders, followers)) in throttled_replicas(file, current) {
        let mut changes = vec![ConfigChange::Set(LEADER_REPLICAS.into(), leaders)];
        if !followers.is_empty() {
            changes.push(ConfigChange::Set(FOLLOWER_REPLICAS.into(), followers));
        }
        (client.alter_configs(&ConfigResource::Topic(topic.clone()), &changes, false))
            .await
            .with_context(|| format!("throttling topic {topic}"))?;
    }
    let ids: Vec<String> = brokers.iter().map(i32::to_string).collect();
    println!(
        "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed."
    );
    println!(
        "The inter-broker throttle limit was set to {rate} B/s on brokers {}",
        ids.join(",")
    );
    Ok(())
}

/// Removes every replication throttle: the rates on every live broker, the replica lists on
/// `topics` (Kafka's `clearAllThrottles`).
async fn clear_throttles(client: &Client, topics: &[&str]) -> anyhow::Result<()> {
    let metadata = client.metadata(Some(&[])).await?;
    for broker in &metadata.brokers {
        let changes = [
            ConfigChange::Delete(LEADER_RATE.into()),
            ConfigChange::Delete(FOLLOWER_RATE.into()),
        ];
        client
            .alter_configs(&ConfigResource::Broker(broker.id.0), &changes, false)
            .await?;
    }
    for topic in topics {
        let changes = [
            ConfigChange::Delete(LEADER_REPLICAS.into()),
            ConfigChange::Delete(FOLLOWER_REPLICAS.into()),
        ];
        client
            .alter_configs(&ConfigResource::Topic(topic.to_string()), &changes, false)
            .await?;
    }
    Ok(())
}

async fn execute(
    client: &Client,
    file: &ReassignmentFile,
    throttle: Option<u64>,
) -> anyhow::Result<()> {
    let topics = topics_of(file);
    let current = current_assignment(client, &topics).await?;
    let mut unknown = Vec::new();
    for moved in &file.partitions {
        let exists = (current.partitions.iter())
            .any(|p| p.topic == moved.topic && p.partition == moved.partition);
        if !exists {
            unknown.push(format!("{}-{}", moved.topic, moved.partition));
        }
    }
    if !unknown.is_empty() {
        bail!("unknown partition(s): {}", unknown.join(", "));
    }
    let rollback = ReassignmentFile {
        version: 1,
        partitions: (current.partitions.into_iter())
            .filter(|p| {
                (file.partitions.iter()).any(|m| m.topic == p.topic && m.partition == p.partition)
            })
            .collect(),
    };
    println!("Current partition replica assignment");
    println!();
    println!("{}", to_json(&rollback));
    println!();
    println!("Save this to use as the --execute file during rollback");
    if let Some(rate) = throttle {
        let current = current_assignment(client, &topics).await?;
        set_throttle(client, file, &current, rate).await?;
    }
    let moves: Vec<Reassignment> = (file.partitions.iter())
        .map(|moved| Reassignment {
            topic: moved.topic.clone(),
            partition: moved.partition,
            replicas: Some(moved.replicas.clone()),
        })
        .collect();
    let outcomes = client.alter_partition_reassignments(&moves).await?;
    let mut failed = Vec::new();
    for outcome in &outcomes {
        if let Err(error) = &outcome.result {
            failed.push(format!("{}-{}: {error}", outcome.topic, outcome.partition));
        }
    }
    if !failed.is_empty() {
        bail!("Error reassigning partition(s):\n{}", failed.join("\n"));
    }
    let started = (outcomes.iter()).map(|o| (o.topic.as_str(), o.partition.0));
    println!(
        "Successfully started partition reassignments for {}",
        partition_names(started)
    );
    Ok(())
}

/// The moves in progress among the partitions of `file`.
async fn ongoing_of(
    client: &Client,
    file: &ReassignmentFile,
) -> anyhow::Result<Vec<OngoingReassignment>> {
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for moved in &file.partitions {
        (wanted.entry(moved.topic.clone()).or_default()).push(moved.partition);
    }
    let wanted: Vec<(String, Vec<i32>)> = wanted.into_iter().collect();
    Ok(client.list_partition_reassignments(Some(&wanted)).await?)
}

async fn verify(client: &Client, file: &ReassignmentFile) -> anyhow::Result<i32> {
    let ongoing = ongoing_of(client, file).await?;
    let current = current_assignment(client, &topics_of(file)).await?;
    println!("Status of partition reassignment:");
    let (mut in_progress, mut diverged) = (0, 0);
    for moved in &file.partitions {
        let name = format!("{}-{}", moved.topic, moved.partition);
        let moving =
            (ongoing.iter()).find(|o| o.topic == moved.topic && o.partition == moved.partition);
        let replicas = (current.partitions.iter())
            .find(|p| p.topic == moved.topic && p.partition == moved.partition)
            .map(|p| p.replicas.clone());
        match (moving, replicas) {
            (Some(moving), _) if moving.target() == moved.replicas => {
                in_progress += 1;
                println!("Reassignment of partition {name} is still in progress.");
            }
            (Some(moving), _) => {
                diverged += 1;
                println!(
                    "There is a reassignment of partition {name} in progress, but to {:?} rather than {:?}.",
                    moving.target(),
                    moved.replicas
                );
            }
            (None, Some(replicas)) if replicas == moved.replicas => {
                println!("Reassignment of partition {name} is completed.");
            }
            (None, Some(replicas)) => {
                diverged += 1;
                println!("There is no active reassignment of partition {name}, but replica set is {replicas:?} rather than {:?}.", moved.replicas);
            }
            (None, None) => {
                diverged += 1;
                println!("Partition {name} does not exist.");
            }
        }
    }
    if diverged > 0 {
        bail!("{diverged} partition(s) are not being moved to the replicas the file names");
    }
    if in_progress > 0 {
        return Ok(EXIT_IN_PROGRESS);
    }
    clear_throttles(client, &topics_of(file)).await?;
    println!("Clearing broker-level throttles on every broker");
    println!(
        "Clearing topic-level throttles on topic(s) {}",
        topics_of(file).join(",")
    );
    Ok(0)
}

async fn cancel(client: &Client, file: &ReassignmentFile) -> anyhow::Result<()> {
    let ongoing = ongoing_of(client, file).await?;
    let moves: Vec<Reassignment> = (file.partitions.iter())
        .filter(|moved| {
            (ongoing.iter()).any(|o| o.topic == moved.topic && o.partition == moved.partition)
        })
        .map(|moved| Reassignment {
            topic: moved.topic.clone(),
            partition: moved.partition,
            replicas: None,
        })
        .collect();
    if moves.is_empty() {
        println!("None of the specified partition reassignments are active.");
        return Ok(());
    }
    let outcomes = client.alter_partition_reassignments(&moves).await?;
    let (mut cancelled, mut failed) = (Vec::new(), Vec::new());
    for outcome in &outcomes {
        match &outcome.result {
            Ok(()) => cancelled.push((outcome.topic.as_str(), outcome.partition.0)),
            // Completed between the listing and the cancel: nothing left to cancel.
            Err(_) if outcome.failed_with(ErrorCode::NoReassignmentInProgress) => {}
            Err(error) => failed.push(format!("{}-{}: {error}", outcome.topic, outcome.partition)),
        }
    }
    if !cancelled.is_empty() {
        println!(
            "Successfully cancelled partition reassignments for: {}",
            partition_names(cancelled.into_iter())
        );
    }
    if !failed.is_empty() {
        bail!(
            "Error cancelling partition reassignment(s):\n{}",
            failed.join("\n")
        );
    }
    Ok(())
}

async fn list(client: &Client) -> anyhow::Result<()> {
    let ongoing = client.list_partition_reassignments(None).await?;
    if ongoing.is_empty() {
        println!("No partition reassignment is in progress.");
        return Ok(());
    }
    let ids = |ids: &[i32]| {
        (ids.iter().map(i32::to_string))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut rows = vec![["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]
        .map(String::from)
        .to_vec()];
    rows.extend(ongoing.iter().map(|moving| {
        vec![
            moving.topic.clone(),
            moving.partition.to_string(),
            ids(&moving.replicas),
            ids(&moving.adding),
            ids(&moving.removing),
        ]
    }));
    print_table(&rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> anyhow::Result<ReassignmentFile> {
        let file: ReassignmentFile = serde_json::from_str(json)?;
        check_reassignment(&file)?;
        Ok(file)
    }

    #[test]
    fn kafkas_reassignment_json_reads_and_writes_back() {
        let json = r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},{"topic":"t","partition":1,"replicas":[2,3]}]}"#;
        let read = file(json).unwrap();
        assert_eq!(read.partitions[1].replicas, vec![2, 3]);
        assert_eq!(to_json(&read), json);
    }

    #[test]
    fn throttled_lists_name_the_current_replicas_and_those_being_added() {
        let moving = file(r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[3,2]},{"topic":"t","partition":1,"replicas":[1,2]}]}"#).unwrap();
        let current = file(r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]},{"topic":"t","partition":1,"replicas":[2,1]}]}"#).unwrap();
        let lists = throttled_replicas(&moving, &current);
        assert_eq!(lists["t"], ("0:1,0:2,1:2,1:1".to_owned(), "0:3".to_owned()));
    }

    #[test]
    fn bad_reassignment_files_are_refused_with_the_reason() {
        let cases = [
            (r#"{"version":2,"partitions":[]}"#, "version"),
            (r#"{"version":1,"partitions":[]}"#, "empty"),
            (
                r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#,
                "empty replica list",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}"#,
                "more than once",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}"#,
                "appears more than once",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/data"]}]}"#,
                "any",
            ),
        ];
        for (json, reason) in cases {
            let error = file(json).unwrap_err().to_string();
            assert!(error.contains(reason), "{json}: {error}");
        }
        assert!(file(r#"{"partitions":7}"#).is_err());
    }
}
