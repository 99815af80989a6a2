//! The automatic preferred-leader rebalance, decided by the controller leader: when to look
//! at the leaders, and what to propose then. Pure: it is ticked with the current time and
//! image and returns the command to propose; the runtime owns the clock and the proposing.
//! Which partitions qualify is [`imbalanced_partitions`]' rule, Kafka's controller's.
//!
//! Lifecycle: a leader makes a new balancer when it is elected and drops it when it loses
//! leadership. A new balancer first checks one interval after its first tick, as Kafka's
//! controller schedules its first check one interval after it becomes active: a cluster
//! that has just failed over gets time for its brokers to come back first.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::command::{Election, MetadataCommand};
use crate::image::{MetadataImage, PartitionState};
use crate::quorum::config::LeaderBalanceConfig;

#[derive(Debug, Clone)]
pub struct LeaderBalancer {
    config: LeaderBalanceConfig,
    /// When the next check is due; None until the first tick.
    next_check: Option<Instant>,
}

impl LeaderBalancer {
    pub fn new(config: LeaderBalanceConfig) -> LeaderBalancer {
        LeaderBalancer {
            config,
            next_check: None,
        }
    }

    /// At `now`: when a check is due, the preferred elections that would rebalance `image`'s
    /// leaders, if any are needed. The next check is due one interval later, whatever this
    /// one found.
    pub fn tick(&mut self, now: Instant, image: &MetadataImage) -> Option<MetadataCommand> {
        if !self.config.enabled {
            return None;
        }
        let interval = Duration::from_millis(self.config.check_interval_ms);
        let due = *self.next_check.get_or_insert(now + interval);
        if now < due {
            return None;
        }
        self.next_check = Some(now + interval);
        let partitions = imbalanced_partitions(image, self.config.imbalance_percentage_max);
        (!partitions.is_empty()).then_some(MetadataCommand::ElectLeaders {
            election: Election::Preferred,
            partitions: Some(partitions),
        })
    }
}

/// One broker's partitions as their preferred (first) replica.
#[derive(Default)]
struct PreferredPartitions<'a> {
    count: i64,
    /// (topic, partition) of those another broker leads, or none does.
    led_elsewhere: Vec<(&'a str, &'a PartitionState)>,
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
    let mut by_broker: BTreeMap<i32, PreferredPartitions> = BTreeMap::new();
    for topic in image.topics.values() {
        // A partition being reassigned is left to its reassignment, as Kafka does.
        for partition in topic.partitions.iter().filter(|p| !p.is_reassigning()) {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let of_broker = by_broker.entry(preferred).or_default();
            of_broker.count += 1;
            if partition.leader != preferred {
                of_broker
                    .led_elsewhere
                    .push((topic.name.as_str(), partition));
            }
        }
    }
    let mut chosen: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (broker, preferred) in by_broker {
        let (count, elsewhere) = (preferred.count, preferred.led_elsewhere);
        // More than the percentage: elsewhere / count > percentage / 100, in integers.
        let imbalanced = elsewhere.len() as i64 * 100 > i64::from(imbalance_percentage_max) * count;
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::command::CommandResult;

    const INTERVAL_MS: u64 = 2_000;

    fn config(enabled: bool) -> LeaderBalanceConfig {
        LeaderBalanceConfig {
            enabled,
            imbalance_percentage_max: 10,
            check_interval_ms: INTERVAL_MS,
        }
    }

    /// Brokers 1-3 and a topic of 3 partitions with replicas [1,2,3], [2,3,1], [3,1,2]; then
    /// broker 1 fails and comes back, so the first partition is led by broker 2.
    fn image_after_failover() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.apply(&MetadataCommand::RegisterBroker {
                id,
                incarnation: Uuid::from_u128(id as u128),
                host: "h".into(),
                port: 1,
                rack: None,
                endpoints: Vec::new(),
            });
        }
        let created = image.apply(&MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(9),
            partitions: 3,
            replication_factor: 3,
            assignments: Some(vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]),
            configs: BTreeMap::new(),
        });
        assert!(matches!(created, CommandResult::TopicCreated { .. }));
        image.apply(&MetadataCommand::FenceBroker { id: 1 });
        image.apply(&MetadataCommand::UnfenceBroker { id: 1 });
        assert_eq!(image.topics["t"].partitions[0].leader, 2);
        image
    }

    #[test]
    fn the_first_check_comes_one_interval_after_the_first_tick() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut image = image_after_failover();
        // Broker 1 is back but not in sync yet: nothing to do.
        let mut balancer = LeaderBalancer::new(config(true));
        assert_eq!(balancer.tick(at(0), &image), None);
        assert_eq!(balancer.tick(at(INTERVAL_MS), &image), None);
        // It catches up (its leader adds it to the ISR); the next check elects it.
        let partition = image.topics["t"].partitions[0].clone();
        image.apply(&MetadataCommand::AlterIsr {
            topic: Uuid::from_u128(9),
            partition: 0,
            leader: partition.leader,
            leader_epoch: partition.leader_epoch,
            isr: vec![2, 3, 1],
        });
        assert_eq!(balancer.tick(at(2 * INTERVAL_MS - 1), &image), None);
        let command = balancer.tick(at(2 * INTERVAL_MS), &image);
        assert_eq!(
            command,
            Some(MetadataCommand::ElectLeaders {
                election: Election::Preferred,
                partitions: Some(vec![("t".into(), vec![0])]),
            })
        );
        image.apply(&command.unwrap());
        assert_eq!(image.topics["t"].partitions[0].leader, 1);
        assert_eq!(balancer.tick(at(3 * INTERVAL_MS), &image), None);
    }

    #[test]
    fn a_disabled_balancer_never_proposes() {
        let start = Instant::now();
        let mut image = image_after_failover();
        let partition = image.topics["t"].partitions[0].clone();
        image.apply(&MetadataCommand::AlterIsr {
            topic: Uuid::from_u128(9),
            partition: 0,
            leader: partition.leader,
            leader_epoch: partition.leader_epoch,
            isr: vec![2, 3, 1],
        });
        let mut balancer = LeaderBalancer::new(config(false));
        for ms in [0, INTERVAL_MS, 10 * INTERVAL_MS] {
            assert_eq!(
                balancer.tick(start + Duration::from_millis(ms), &image),
                None
            );
        }
    }
}
