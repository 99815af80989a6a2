//! Leader elections asked for by ElectLeaders, and the controller's choice of the partitions
//! whose preferred leader should lead again. Pure: the image applies [`elect`] while applying
//! an `ElectLeaders` command, and the controller leader calls [`imbalanced_partitions`] on its
//! image to decide what to propose.
//!
//! The rules are Kafka's controller's (`ReplicationControlManager.electLeader` with
//! `PartitionChangeBuilder`): a preferred election makes the first replica leader if it is
//! alive and in sync; an unclean election is only for a partition without a leader and takes
//! an in-sync replica if one is alive, else any live replica, whose log then becomes the
//! truth (the ISR shrinks to it).

use std::collections::BTreeMap;

use strom_types::ErrorCode;

use crate::command::Election;
use crate::image::{MetadataImage, PartitionState, NO_LEADER};

/// Elects a leader of `partition` by `election`'s rules, with `alive` saying which brokers
/// may lead (registered and unfenced). A new leader bumps the leader and partition epochs;
/// nothing changes when the election fails or is not needed.
pub fn elect(
    partition: &mut PartitionState,
    election: Election,
    alive: impl Fn(i32) -> bool,
) -> Result<(), ErrorCode> {
    let in_sync_and_alive = |replica: i32| partition.isr.contains(&replica) && alive(replica);
    let (leader, unclean) = match election {
        Election::Preferred => {
            let preferred = partition.replicas.first().copied().unwrap_or(NO_LEADER);
            if partition.leader == preferred {
                return Err(ErrorCode::ElectionNotNeeded);
            }
            // Kafka keeps a valid leader rather than move to another non-preferred replica.
            let leader = [preferred, partition.leader]
                .into_iter()
                .chain(partition.replicas.iter().skip(1).copied())
                .find(|replica| *replica != NO_LEADER && in_sync_and_alive(*replica));
            match leader {
                Some(leader) if leader != partition.leader => (leader, false),
                _ => return Err(ErrorCode::PreferredLeaderNotAvailable),
            }
        }
        Election::Unclean => {
            if partition.leader != NO_LEADER {
                return Err(ErrorCode::ElectionNotNeeded);
            }
            let clean = partition.replicas.iter().copied().find(|r| in_sync_and_alive(*r));
            let unclean = || partition.replicas.iter().copied().find(|r| alive(*r));
            match (clean, unclean()) {
                (Some(leader), _) => (leader, false),
                (None, Some(leader)) => (leader, true),
                (None, None) => return Err(ErrorCode::EligibleLeadersNotAvailable),
            }
        }
    };
    debug_assert!(partition.replicas.contains(&leader) && alive(leader));
    let epoch_before = partition.leader_epoch;
    partition.leader = leader;
    if unclean {
        // The new leader's log is the partition's now: whatever only the others held is lost.
        partition.isr = vec![leader];
    }
    partition.leader_epoch += 1;
    partition.partition_epoch += 1;
    assert!(partition.leader_epoch > epoch_before);
    Ok(())
}

/// The partitions the controller's automatic rebalance should hand back to their preferred
/// leader, by topic, as Kafka's controller chooses them: for each broker, the partitions it is
/// the preferred (first) replica of but does not lead; when more than
/// `imbalance_percentage_max` percent of them are led elsewhere, every one of them whose
/// preferred replica is alive and in sync. Empty when the leaders are balanced enough.
pub fn imbalanced_partitions(
    image: &MetadataImage,
    imbalance_percentage_max: i32,
) -> Vec<(String, Vec<i32>)> {
    // Per preferred broker: (partitions it is preferred for, those led elsewhere).
    let mut by_broker: BTreeMap<i32, (i64, Vec<(&str, &PartitionState)>)> = BTreeMap::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let (count, elsewhere) = by_broker.entry(preferred).or_default();
            *count += 1;
            if partition.leader != preferred {
                elsewhere.push((topic.name.as_str(), partition));
            }
        }
    }
    let mut chosen: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (broker, (count, elsewhere)) in by_broker {
        // More than the percentage: elsewhere / count > percentage / 100, in integers.
        let imbalanced =
            elsewhere.len() as i64 * 100 > i64::from(imbalance_percentage_max) * count;
        if !imbalanced || !image.is_alive(broker) {
            continue;
        }
        for (topic, partition) in elsewhere {
            if partition.isr.contains(&broker) {
                chosen
                    .entry(topic.to_owned())
                    .or_default()
                    .push(partition.index);
            }
        }
    }
    chosen.into_iter().collect()
}
