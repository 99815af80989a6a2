//! `strom cluster info`: the cluster's id, its brokers, and the metadata quorum (controller
//! leader, epoch, high watermark, and each voter's and observer's log end offset and lag),
//! after Kafka's `kafka-metadata-quorum.sh describe --status --replication`. `strom cluster
//! elect-leaders` is [`crate::elect_leaders`], `strom cluster reassign` [`crate::reassign`],
//! `decommission`, `rebalance` and `unregister` [`crate::rebalance`].
//!
//! Two answers are joined: DescribeCluster (cluster id, brokers, controller) and DescribeQuorum
//! (the quorum, asked of its leader when the first broker cannot vouch for every replica). A
//! replica's lag is the leader's log end offset minus its own; unknown offsets show as `-`
//! (and -1 in `--json`).

use std::fmt::Write;

use strom_client::{BrokerMetadata, ClusterDescription, QuorumDescription, QuorumReplica};

use crate::common::{block_on, connect, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, the brokers, and the controller quorum: leader, epoch, high
    /// watermark, and each voter's and observer's log end offset and lag.
    Info(InfoArgs),
    /// Elect preferred leaders (or, with --type unclean, any live replica where a partition
    /// has no leader), for every partition or the --topic/--partition given.
    ElectLeaders(crate::elect_leaders::ElectLeadersArgs),
    /// Move partitions to new replica sets with Kafka's reassignment JSON: --plan a
    /// proposal, --execute it, --verify it completed, --cancel it; --list the moves in
    /// progress.
    Reassign(crate::reassign::ReassignArgs),
    /// Move every replica off a broker (respecting racks), shown first and carried out with
    /// --execute; a broker that is down is then unregistered.
    Decommission(crate::rebalance::DecommissionArgs),
    /// Spread replicas and preferred leaders evenly over the live brokers (rack awareness,
    /// replica count, disk usage, leader count), shown first and carried out with --execute.
    Rebalance(crate::rebalance::RebalanceArgs),
    /// Remove a broker that was shut down for good from the cluster (UnregisterBroker).
    Unregister(crate::rebalance::UnregisterArgs),
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ClusterCommand::Info(args) => info(args).await,
            ClusterCommand::ElectLeaders(args) => crate::elect_leaders::run(args).await,
            ClusterCommand::Decommission(args) => crate::rebalance::decommission(args).await,
            ClusterCommand::Rebalance(args) => crate::rebalance::rebalance(args).await,
            ClusterCommand::Unregister(args) => crate::rebalance::unregister(args).await,
            ClusterCommand::Reassign(args) => {
                let status = crate::reassign::run(args).await?;
                if status != 0 {
                    std::process::exit(status);
                }
                Ok(())
            }
        }
    })?
}

async fn info(args: InfoArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    let cluster = client.describe_cluster().await?;
    let quorum = client.describe_quorum().await?;
    let leader = quorum.leader.or(cluster.controller).map(|id| id.0);
    if args.json {
        println!("{}", info_json(&cluster, &quorum, leader));
    } else {
        print_info(&cluster, &quorum, leader);
    }
    Ok(())
}

/// The leader's log end offset, which every lag is measured from.
fn leader_log_end(quorum: &QuorumDescription, leader: Option<i32>) -> Option<i64> {
    quorum
        .voters
        .iter()
        .find(|replica| Some(replica.id.0) == leader)
        .and_then(|replica| replica.log_end_offset)
        .map(|offset| offset.0)
}

fn print_info(cluster: &ClusterDescription, quorum: &QuorumDescription, leader: Option<i32>) {
    let leader_text =
        leader.map_or_else(|| "none (no quorum leader yet)".into(), |id| id.to_string());
    print_table(&[
        vec!["cluster id".into(), cluster.cluster_id.clone()],
        vec!["controller leader".into(), leader_text],
        vec!["leader epoch".into(), quorum.leader_epoch.to_string()],
        vec!["high watermark".into(), quorum.high_watermark.to_string()],
    ]);
    println!();
    let mut brokers = vec![["BROKER", "HOST", "PORT", "RACK"]
        .map(String::from)
        .to_vec()];
    brokers.extend(cluster.brokers.iter().map(|broker| {
        vec![
            broker.id.to_string(),
            broker.host.clone(),
            broker.port.to_string(),
            broker.rack.clone().unwrap_or_else(|| "-".into()),
        ]
    }));
    print_table(&brokers);
    println!();
    let leader_end = leader_log_end(quorum, leader);
    let mut replicas = vec![["CONTROLLER", "ROLE", "LOG-END-OFFSET", "LAG"]
        .map(String::from)
        .to_vec()];
    let roles = quorum
        .voters
        .iter()
        .map(|replica| {
            let role = if Some(replica.id.0) == leader {
                "leader"
            } else {
                "voter"
            };
            (replica, role)
        })
        .chain(quorum.observers.iter().map(|replica| (replica, "observer")));
    replicas.extend(roles.map(|(replica, role)| {
        let end = replica.log_end_offset.map(|offset| offset.0);
        vec![
            replica.id.to_string(),
            role.to_string(),
            end.map_or_else(|| "-".into(), |end| end.to_string()),
            lag(leader_end, end).map_or_else(|| "-".into(), |lag| lag.to_string()),
        ]
    }));
    print_table(&replicas);
}

fn lag(leader_end: Option<i64>, end: Option<i64>) -> Option<i64> {
    Some(leader_end?.saturating_sub(end?).max(0))
}

/// The `--json` object. Its shape is relied on by scripts and tests: `cluster_id`,
/// `controller` {`leader` (null when unknown), `leader_epoch`, `high_watermark`, `voters` and
/// `observers` as [{`id`, `log_end_offset` (-1 when unknown)}]}, `brokers` [{`id`, `host`,
/// `port`, `rack` (null when unset)}].
fn info_json(
    cluster: &ClusterDescription,
    quorum: &QuorumDescription,
    leader: Option<i32>,
) -> String {
    let replicas = |replicas: &[QuorumReplica]| {
        let items: Vec<String> = replicas
            .iter()
            .map(|replica| {
                let end = replica.log_end_offset.map_or(-1, |offset| offset.0);
                format!(r#"{{"id":{},"log_end_offset":{end}}}"#, replica.id)
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    let brokers: Vec<String> = cluster.brokers.iter().map(broker_json).collect();
    let leader = leader.map_or_else(|| "null".into(), |id| id.to_string());
    format!(
        r#"{{"cluster_id":{},"controller":{{"leader":{leader},"leader_epoch":{},"high_watermark":{},"voters":{},"observers":{}}},"brokers":[{}]}}"#,
        json_string(&cluster.cluster_id),
        quorum.leader_epoch,
        quorum.high_watermark,
        replicas(&quorum.voters),
        replicas(&quorum.observers),
        brokers.join(","),
    )
}

fn broker_json(broker: &BrokerMetadata) -> String {
    let rack = broker
        .rack
        .as_deref()
        .map_or_else(|| "null".into(), json_string);
    format!(
        r#"{{"id":{},"host":{},"port":{},"rack":{rack}}}"#,
        broker.id,
        json_string(&broker.host),
        broker.port
    )
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                write!(quoted, "\\u{:04x}", u32::from(control)).expect("writing to a String");
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_types::{BrokerId, LeaderEpoch, Offset};

    fn replica(id: i32, end: Option<i64>) -> QuorumReplica {
        QuorumReplica {
            id: BrokerId(id),
            log_end_offset: end.map(Offset),
            last_fetch_timestamp: None,
            last_caught_up_timestamp: None,
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let cluster = ClusterDescription {
            cluster_id: "a\"b".into(),
            controller: Some(BrokerId(1)),
            brokers: vec![
                BrokerMetadata {
                    id: BrokerId(1),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: None,
                },
                BrokerMetadata {
                    id: BrokerId(2),
                    host: "h2".into(),
                    port: 9093,
                    rack: Some("r1".into()),
                },
            ],
        };
        let quorum = QuorumDescription {
            leader: Some(BrokerId(1)),
            leader_epoch: LeaderEpoch(3),
            high_watermark: Offset(12),
            voters: vec![replica(1, Some(12)), replica(2, None)],
            observers: vec![replica(4, Some(10))],
        };
        assert_eq!(
            info_json(&cluster, &quorum, Some(1)),
            concat!(
                r#"{"cluster_id":"a\"b","controller":{"leader":1,"leader_epoch":3,"#,
                r#""high_watermark":12,"voters":[{"id":1,"log_end_offset":12},"#,
                r#"{"id":2,"log_end_offset":-1}],"observers":[{"id":4,"log_end_offset":10}]},"#,
                r#""brokers":[{"id":1,"host":"127.0.0.1","port":9092,"rack":null},"#,
                r#"{"id":2,"host":"h2","port":9093,"rack":"r1"}]}"#
            )
        );
        assert!(info_json(&cluster, &quorum, None).contains(r#""leader":null"#));
        assert_eq!(leader_log_end(&quorum, Some(1)), Some(12));
        assert_eq!(lag(Some(12), Some(10)), Some(2));
        assert_eq!(lag(Some(12), None), None);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(json_string("a\u{1}\n\\"), r#""a\u0001\n\\""#);
    }
}
