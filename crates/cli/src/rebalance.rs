//! `strom cluster decommission ID` and `strom cluster rebalance`: plans of partition moves over
//! the live brokers, shown first and carried out with `--execute` through partition
//! reassignment (KIP-455), and `strom cluster unregister ID` (UnregisterBroker).
//!
//! The plans follow Cruise Control's simplest goals, in its order of priority:
//! 1. rack awareness (hard): a move never leaves a partition on fewer racks than before;
//! 2. replica count: each live broker holds as many replicas as the others, give or take one;
//! 3. disk usage: among the partitions that could move off a broker, the one that brings the
//!    two brokers' bytes closest together moves;
//! 4. leader count: each live broker is the preferred (first) replica of as many partitions as
//!    the others, give or take one, by reordering replica lists; after the moves a preferred
//!    election hands leadership to the first replicas.
//!
//! A replacement takes the place of the replica it replaces in the list, so leadership
//! preferences move with it. Decommissioning moves every replica off one broker, each to the
//! live broker with the fewest replicas among those that keep the partition's rack spread;
//! once every move completed, a broker that is down is unregistered (one that still runs is
//! left for the operator to stop, then `strom cluster unregister ID`). Both refuse to plan
//! while a reassignment is in progress.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strom_client::{Client, ElectionType, Reassignment};
use strom_types::BrokerId;

use crate::common::{connect, print_table, BootstrapArgs};

#[derive(clap::Args)]
pub struct DecommissionArgs {
    /// The broker to move every replica off.
    #[arg(value_name = "BROKER_ID")]
    broker: i32,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
pub struct UnregisterArgs {
    /// The broker to unregister; it must be shut down.
    #[arg(value_name = "BROKER_ID")]
    broker: i32,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Carry the plan out (without it, only show it) and wait for the moves to complete.
    #[arg(long)]
    execute: bool,
    /// How long --execute waits for the moves, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// A live broker a plan may place replicas on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Broker {
    id: i32,
    rack: Option<String>,
}

/// One partition as a plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    /// The largest size of its replicas' logs, in bytes (0 when unknown).
    size: u64,
}

/// Where the cluster stands: its live brokers and every partition.
#[derive(Debug, Clone)]
struct Layout {
    brokers: Vec<Broker>,
    partitions: Vec<Placed>,
}

/// A partition that moves: its replicas before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Move {
    topic: String,
    partition: i32,
    from: Vec<i32>,
    to: Vec<i32>,
}

impl Layout {
    fn rack(&self, broker: i32) -> Option<&str> {
        (self.brokers.iter())
            .find(|b| b.id == broker)
            .and_then(|b| b.rack.as_deref())
    }

    /// How many racks `replicas` span (brokers without a rack each count as their own).
    fn racks(&self, replicas: &[i32]) -> usize {
        let named: BTreeSet<&str> = replicas.iter().filter_map(|r| self.rack(*r)).collect();
        let unnamed = replicas.iter().filter(|r| self.rack(**r).is_none()).count();
        named.len() + unnamed
    }

    /// Per live broker, the sum of `amount(partition, position in its replica list)` over
    /// the replicas it holds.
    fn per_broker(
        &self,
        partitions: &[Placed],
        amount: impl Fn(&Placed, usize) -> u64,
    ) -> BTreeMap<i32, u64> {
        let mut totals: BTreeMap<i32, u64> = self.brokers.iter().map(|b| (b.id, 0)).collect();
        for partition in partitions {
            for (position, replica) in partition.replicas.iter().enumerate() {
                if let Some(total) = totals.get_mut(replica) {
                    *total += amount(partition, position);
                }
            }
        }
        totals
    }

    fn replica_counts(&self, partitions: &[Placed]) -> BTreeMap<i32, u64> {
        self.per_broker(partitions, |_, _| 1)
    }

    fn bytes(&self, partitions: &[Placed]) -> BTreeMap<i32, u64> {
        self.per_broker(partitions, |partition, _| partition.size)
    }

    /// Preferred leaderships: the partitions each broker is the first replica of.
    fn leader_counts(&self, partitions: &[Placed]) -> BTreeMap<i32, u64> {
        self.per_broker(partitions, |_, position| u64::from(position == 0))
    }
}

/// The moves between `before` and `after` (the same partitions, in the same order).
fn moves(before: &[Placed], after: &[Placed]) -> Vec<Move> {
    (before.iter().zip(after))
        .filter(|(old, new)| old.replicas != new.replicas)
        .map(|(old, new)| Move {
            topic: old.topic.clone(),
            partition: old.partition,
            from: old.replicas.clone(),
            to: new.replicas.clone(),
        })
        .collect()
}

/// Moves every replica off `leaving`, each to the live broker with the fewest replicas among
/// those not holding the partition yet, preferring those that keep its rack spread.
fn plan_decommission(layout: &Layout, leaving: i32) -> anyhow::Result<Vec<Move>> {
    let mut after = layout.partitions.clone();
    let mut counts = layout.replica_counts(&after);
    counts.remove(&leaving);
    let leaving_rack = layout.rack(leaving).map(str::to_owned);
    for partition in after.iter_mut() {
        let Some(at) = partition.replicas.iter().position(|r| *r == leaving) else {
            continue;
        };
        let others: Vec<i32> = (partition.replicas.iter().copied())
            .filter(|r| *r != leaving)
            .collect();
        let racks_before = layout.racks(&partition.replicas);
        let choice = (counts.iter())
            .filter(|(id, _)| !partition.replicas.contains(id))
            .map(|(id, count)| {
                let mut replicas = others.clone();
                replicas.push(*id);
                // Same rack as the leaving broker, or a spread at least as wide, is no loss.
                let same_rack =
                    leaving_rack.is_some() && layout.rack(*id) == leaving_rack.as_deref();
                let keeps_racks = same_rack || layout.racks(&replicas) >= racks_before;
                (!keeps_racks, *count, *id)
            })
            .min();
        let Some((_, _, replacement)) = choice else {
            bail!(
                "{}-{} cannot leave broker {leaving}: every other live broker already holds a replica of it",
                partition.topic,
                partition.partition
            );
        };
        partition.replicas[at] = replacement;
        *counts.get_mut(&replacement).expect("a live broker") += 1;
    }
    Ok(moves(&layout.partitions, &after))
}

/// Spreads replicas, then preferred leaders, evenly over the live brokers (see the module
/// docs for the goals).
fn plan_rebalance(layout: &Layout) -> Vec<Move> {
    let mut after = layout.partitions.clone();
    // Each move narrows the gap between the fullest and the emptiest broker, so this ends;
    // the bound is a guard.
    for _ in 0..after.len() * 4 + 16 {
        let counts = layout.replica_counts(&after);
        let bytes = layout.bytes(&after);
        let mut by_load: Vec<i32> = counts.keys().copied().collect();
        by_load.sort_by_key(|id| (counts[id], bytes[id], *id));
        // The fullest broker that has a replica some emptier broker can take, rack spread
        // kept; the emptiest such broker first.
        let pairs =
            (by_load.iter().rev()).flat_map(|from| by_load.iter().map(move |to| (*from, *to)));
        let chosen = pairs
            .filter(|(from, to)| counts[from] > counts[to] + 1)
            .find_map(|(from, to)| {
                let gap = bytes[&from].saturating_sub(bytes[&to]);
                (after.iter().enumerate())
                    .filter(|(_, p)| p.replicas.contains(&from) && !p.replicas.contains(&to))
                    .filter(|(_, p)| {
                        let moved: Vec<i32> = (p.replicas.iter())
                            .map(|r| if *r == from { to } else { *r })
                            .collect();
                        layout.racks(&moved) >= layout.racks(&p.replicas)
                    })
                    // The move that leaves the two brokers' bytes closest together.
                    .min_by_key(|(_, p)| (gap.abs_diff(2 * p.size), p.topic.clone(), p.partition))
                    .map(|(at, _)| (at, from, to))
            });
        let Some((at, from, to)) = chosen else {
            break;
        };
        for replica in after[at].replicas.iter_mut() {
            if *replica == from {
                *replica = to;
            }
        }
    }
    for _ in 0..after.len() * 2 + 16 {
        let leaders = layout.leader_counts(&after);
        let (Some(most), Some(fewest)) = (
            leaders.iter().max_by_key(|(_, n)| **n).map(|(id, _)| *id),
            leaders.iter().min_by_key(|(_, n)| **n).map(|(id, _)| *id),
        ) else {
            break;
        };
        if leaders[&most] <= leaders[&fewest] + 1 {
            break;
        }
        let Some(partition) = (after.iter_mut())
            .find(|p| p.replicas.first() == Some(&most) && p.replicas.contains(&fewest))
        else {
            break;
        };
        let at = (partition.replicas.iter())
            .position(|r| *r == fewest)
            .expect("contains it");
        partition.replicas.swap(0, at);
    }
    moves(&layout.partitions, &after)
}

/// Reads the layout: live brokers, every partition's replicas and size. Refused while a
/// reassignment is in progress.
async fn read_layout(client: &Client) -> anyhow::Result<Layout> {
    let ongoing = client.list_partition_reassignments(None).await?;
    if let Some(moving) = ongoing.first() {
        bail!(
            "{} partition(s) are being reassigned ({}-{} first): wait for them (strom cluster reassign --list) or cancel them",
            ongoing.len(),
            moving.topic,
            moving.partition
        );
    }
    let metadata = client.metadata(None).await?;
    let brokers: Vec<Broker> = (metadata.brokers.iter())
        .map(|b| Broker {
            id: b.id.0,
            rack: b.rack.clone(),
        })
        .collect();
    let mut sizes: BTreeMap<(String, i32), u64> = BTreeMap::new();
    for broker in &brokers {
        match client.describe_log_dirs(BrokerId(broker.id), None).await {
            Ok(dirs) => {
                for partition in dirs.iter().flat_map(|dir| &dir.partitions) {
                    let size = sizes
                        .entry((partition.topic.clone(), partition.partition.0))
                        .or_default();
                    *size = (*size).max(partition.size_bytes.max(0) as u64);
                }
            }
            Err(error) => eprintln!(
                "note: sizes on broker {} unknown ({error}); planning by replica counts",
                broker.id
            ),
        }
    }
    let mut partitions = Vec::new();
    for topic in &metadata.topics {
        for partition in &topic.partitions {
            partitions.push(Placed {
                topic: topic.name.clone(),
                partition: partition.index.0,
                replicas: partition.replicas.iter().map(|id| id.0).collect(),
                size: sizes
                    .get(&(topic.name.clone(), partition.index.0))
                    .copied()
                    .unwrap_or(0),
            });
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(Layout {
        brokers,
        partitions,
    })
}

fn ids(ids: &[i32]) -> String {
    (ids.iter().map(i32::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_moves(moves: &[Move]) {
    let mut rows = vec![["TOPIC", "PARTITION", "FROM", "TO"]
        .map(String::from)
        .to_vec()];
    rows.extend(moves.iter().map(|m| {
        vec![
            m.topic.clone(),
            m.partition.to_string(),
            ids(&m.from),
            ids(&m.to),
        ]
    }));
    print_table(&rows);
}

/// Replicas, preferred leaderships and bytes per live broker, before and after the moves.
fn print_brokers(layout: &Layout, moves: &[Move]) {
    let mut after = layout.partitions.clone();
    for m in moves {
        if let Some(p) =
            (after.iter_mut()).find(|p| p.topic == m.topic && p.partition == m.partition)
        {
            p.replicas = m.to.clone();
        }
    }
    let (replicas, leaders, bytes) = (
        layout.replica_counts(&layout.partitions),
        layout.leader_counts(&layout.partitions),
        layout.bytes(&layout.partitions),
    );
    let (replicas_after, leaders_after, bytes_after) = (
        layout.replica_counts(&after),
        layout.leader_counts(&after),
        layout.bytes(&after),
    );
    let mut rows = vec![["BROKER", "RACK", "REPLICAS", "LEADERS", "BYTES"]
        .map(String::from)
        .to_vec()];
    for broker in &layout.brokers {
        let id = &broker.id;
        rows.push(vec![
            id.to_string(),
            broker.rack.clone().unwrap_or_else(|| "-".into()),
            format!("{} -> {}", replicas[id], replicas_after[id]),
            format!("{} -> {}", leaders[id], leaders_after[id]),
            format!("{} -> {}", bytes[id], bytes_after[id]),
        ]);
    }
    print_table(&rows);
}

/// Starts the moves, waits until every one completed, then hands leadership to the preferred
/// replicas of the moved partitions.
async fn carry_out(client: &Client, moves: &[Move], timeout: Duration) -> anyhow::Result<()> {
    let reassignments: Vec<Reassignment> = (moves.iter())
        .map(|m| Reassignment {
            topic: m.topic.clone(),
            partition: m.partition,
            replicas: Some(m.to.clone()),
        })
        .collect();
    let outcomes = client.alter_partition_reassignments(&reassignments).await?;
    let failed: Vec<String> = (outcomes.iter())
        .filter_map(|o| {
            let error = o.result.as_ref().err()?;
            Some(format!("{}-{}: {error}", o.topic, o.partition))
        })
        .collect();
    if !failed.is_empty() {
        bail!("moves refused:\n{}", failed.join("\n"));
    }
    println!(
        "Started {} move(s); waiting for them to complete.",
        moves.len()
    );
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for m in moves {
        wanted.entry(m.topic.clone()).or_default().push(m.partition);
    }
    let wanted: Vec<(String, Vec<i32>)> = wanted.into_iter().collect();
    let deadline = Instant::now() + timeout;
    let mut reported = Instant::now();
    loop {
        let left = client.list_partition_reassignments(Some(&wanted)).await?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "{} move(s) still in progress after {} s (see strom cluster reassign --list)",
                left.len(),
                timeout.as_secs()
            );
        }
        if reported.elapsed() >= Duration::from_secs(5) {
            println!("{} move(s) in progress", left.len());
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("Every move completed.");
    let outcomes = client
        .elect_leaders(ElectionType::Preferred, Some(&wanted))
        .await
        .context("preferred leader election after the moves")?;
    let elected = outcomes.iter().filter(|o| o.result.is_ok()).count();
    println!("Preferred leaders elected for {elected} moved partition(s).");
    Ok(())
}

pub async fn decommission(args: DecommissionArgs) -> anyhow::Result<()> {
    let client = connect(&args.run.bootstrap, false).await?;
    let layout = read_layout(&client).await?;
    let moves = plan_decommission(&layout, args.broker)?;
    let alive = layout.brokers.iter().any(|b| b.id == args.broker);
    if moves.is_empty() {
        println!("Broker {} holds no replica.", args.broker);
    } else {
        println!(
            "Moving {} partition(s) off broker {}:",
            moves.len(),
            args.broker
        );
        print_moves(&moves);
        print_brokers(&layout, &moves);
        if !args.run.execute {
            println!("Run again with --execute to carry this out.");
            return Ok(());
        }
        carry_out(&client, &moves, Duration::from_secs(args.run.timeout)).await?;
    }
    if !args.run.execute {
        return Ok(());
    }
    if alive {
        println!(
            "Broker {0} still runs: stop it, then run `strom cluster unregister {0}`.",
            args.broker
        );
        return Ok(());
    }
    match client.unregister_broker(args.broker).await {
        Ok(()) => println!("Broker {} unregistered.", args.broker),
        Err(error)
            if error.code() == Some(strom_types::ErrorCode::BrokerIdNotRegistered.code()) =>
        {
            println!("Broker {} is not registered.", args.broker)
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

pub async fn rebalance(args: RebalanceArgs) -> anyhow::Result<()> {
    let client = connect(&args.run.bootstrap, false).await?;
    let layout = read_layout(&client).await?;
    let moves = plan_rebalance(&layout);
    if moves.is_empty() {
        println!("The cluster is balanced: nothing to move.");
        print_brokers(&layout, &moves);
        return Ok(());
    }
    println!("Proposed moves:");
    print_moves(&moves);
    print_brokers(&layout, &moves);
    if !args.run.execute {
        println!("Run again with --execute to carry this out.");
        return Ok(());
    }
    carry_out(&client, &moves, Duration::from_secs(args.run.timeout)).await
}

pub async fn unregister(args: UnregisterArgs) -> anyhow::Result<()> {
    let client = connect(&args.bootstrap, false).await?;
    client.unregister_broker(args.broker).await?;
    println!("Broker {} unregistered.", args.broker);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(brokers: &[(i32, Option<&str>)], partitions: &[&[i32]]) -> Layout {
        Layout {
            brokers: (brokers.iter())
                .map(|(id, rack)| Broker {
                    id: *id,
                    rack: rack.map(str::to_owned),
                })
                .collect(),
            partitions: (partitions.iter().enumerate())
                .map(|(at, replicas)| Placed {
                    topic: "t".into(),
                    partition: at as i32,
                    replicas: replicas.to_vec(),
                    size: 100 * (at as u64 + 1),
                })
                .collect(),
        }
    }

    fn apply(layout: &Layout, moves: &[Move]) -> Layout {
        let mut after = layout.clone();
        for m in moves {
            after.partitions[m.partition as usize].replicas = m.to.clone();
        }
        after
    }

    #[test]
    fn decommissioning_replaces_the_broker_in_place_with_the_least_loaded_and_keeps_racks() {
        let brokers = [
            (1, Some("a")),
            (2, Some("b")),
            (3, Some("a")),
            (4, Some("b")),
        ];
        let before = layout(&brokers, &[&[1, 2], &[2, 1], &[1, 4], &[3, 4]]);
        let moves = plan_decommission(&before, 1).unwrap();
        assert_eq!(moves.len(), 3);
        let after = apply(&before, &moves);
        for partition in &after.partitions {
            assert!(!partition.replicas.contains(&1), "{partition:?}");
            assert_eq!(after.racks(&partition.replicas), 2, "{partition:?}");
        }
        // In place: partition 0's preferred leader is broker 1's replacement.
        assert_eq!(after.partitions[0].replicas[1], 2);
        assert_eq!(after.partitions[0].replicas[0], 3);
    }

    #[test]
    fn decommissioning_fails_when_no_broker_is_left_for_a_partition() {
        let before = layout(&[(1, None), (2, None)], &[&[1, 2]]);
        let error = plan_decommission(&before, 1).unwrap_err().to_string();
        assert!(error.contains("t-0 cannot leave broker 1"), "{error}");
    }

    #[test]
    fn rebalancing_onto_a_new_broker_evens_replicas_and_preferred_leaders() {
        // Broker 4 just joined: it holds nothing.
        let brokers = [(1, None), (2, None), (3, None), (4, None)];
        let before = layout(
            &brokers,
            &[
                &[1, 2, 3],
                &[2, 3, 1],
                &[3, 1, 2],
                &[1, 2, 3],
                &[2, 3, 1],
                &[3, 1, 2],
                &[1, 3, 2],
                &[2, 1, 3],
            ],
        );
        let moves = plan_rebalance(&before);
        let after = apply(&before, &moves);
        let counts = after.replica_counts(&after.partitions);
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            vec![6, 6, 6, 6]
        );
        let leaders = after.leader_counts(&after.partitions);
        assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
        for partition in &after.partitions {
            let mut unique = partition.replicas.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 3, "{partition:?}");
        }
        assert!(
            plan_rebalance(&after).is_empty(),
            "a balanced cluster stays put"
        );
    }

    #[test]
    fn rebalancing_never_narrows_a_partitions_rack_spread() {
        // Racks a: 1, 3; b: 2. Broker 3 may take broker 1's replicas (same rack) but never
        // broker 2's, which would put a partition on one rack.
        let brokers = [(1, Some("a")), (2, Some("b")), (3, Some("a"))];
        let before = layout(&brokers, &[&[1, 2], &[2, 1], &[1, 2], &[2, 1]]);
        let after = apply(&before, &plan_rebalance(&before));
        for partition in &after.partitions {
            assert_eq!(after.racks(&partition.replicas), 2, "{partition:?}");
        }
        assert!(after.replica_counts(&after.partitions)[&3] > 0);
    }
}
