//! Random sequences of broker failures, returns and ISR changes against the image's election
//! rules, checking after every step the invariants replication relies on:
//! - a partition's leader is a live, in-sync replica, or there is none (-1);
//! - the ISR is a non-empty subset of the replicas;
//! - leader and partition epochs never go back, and a change of leader bumps the leader epoch;
//! - without unclean election, a new leader was in the ISR before the change (no lost writes);
//!   an unclean ElectLeaders only elects for a partition without a leader, and alone in sync;
//! - one leader per (partition, leader epoch), across the whole run.
//!
//! Seeded by proptest, so a failure prints a reproducible case.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use strom_metadata::image::NO_LEADER;
use strom_metadata::{Election, MetadataCommand, MetadataImage};
use uuid::Uuid;

const BROKERS: i32 = 4;

#[derive(Debug, Clone)]
enum Step {
    Fence(i32),
    Unfence(i32),
    /// The current leader of (topic, partition) shrinks or grows its ISR to the replicas
    /// selected by the mask (the leader always stays).
    AlterIsr {
        topic: usize,
        partition: usize,
        mask: u8,
    },
    /// A stale leader (wrong epoch) tries the same.
    StaleAlterIsr {
        topic: usize,
        partition: usize,
    },
    ControlledShutdown(i32),
    /// ElectLeaders for (topic, partition): preferred, or unclean when the flag says so.
    Elect {
        topic: usize,
        partition: usize,
        unclean: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..=BROKERS).prop_map(Step::Fence),
        (1..=BROKERS).prop_map(Step::Unfence),
        (0usize..2, 0usize..4, any::<u8>()).prop_map(|(topic, partition, mask)| Step::AlterIsr {
            topic,
            partition,
            mask
        }),
        (0usize..2, 0usize..4)
            .prop_map(|(topic, partition)| Step::StaleAlterIsr { topic, partition }),
        (1..=BROKERS).prop_map(Step::ControlledShutdown),
        (0usize..2, 0usize..4, any::<bool>()).prop_map(|(topic, partition, unclean)| Step::Elect {
            topic,
            partition,
            unclean
        }),
    ]
}

fn start() -> MetadataImage {
    let mut image = MetadataImage::default();
    image.apply(&MetadataCommand::Bootstrap {
        cluster_id: "sim".into(),
    });
    for id in 1..=BROKERS {
        image.apply(&MetadataCommand::RegisterBroker {
            id,
            incarnation: Uuid::nil(),
            host: "h".into(),
            port: id as u16,
            rack: None,
            endpoints: Vec::new(),
        });
    }
    for (index, rf) in [3i16, 2].iter().enumerate() {
        image.apply(&MetadataCommand::CreateTopic {
            name: format!("t{index}"),
            id: Uuid::from_u128(index as u128 + 1),
            partitions: 4,
            replication_factor: *rf,
            assignments: None,
            configs: BTreeMap::new(),
        });
    }
    image
}

fn command_for(image: &MetadataImage, step: &Step) -> MetadataCommand {
    match step {
        Step::Fence(id) => MetadataCommand::FenceBroker { id: *id },
        Step::Unfence(id) => MetadataCommand::UnfenceBroker { id: *id },
        Step::ControlledShutdown(id) => MetadataCommand::ControlledShutdown { id: *id },
        Step::AlterIsr {
            topic,
            partition,
            mask,
        } => {
            let topic = &image.topics[&format!("t{topic}")];
            let state = &topic.partitions[*partition];
            let mut isr: Vec<i32> = state
                .replicas
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, r)| *r)
                .collect();
            if !isr.contains(&state.leader) {
                isr.push(state.leader);
            }
            MetadataCommand::AlterIsr {
                topic: topic.id,
                partition: *partition as i32,
                leader: state.leader,
                leader_epoch: state.leader_epoch,
                isr,
            }
        }
        Step::Elect {
            topic,
            partition,
            unclean,
        } => MetadataCommand::ElectLeaders {
            election: match unclean {
                true => Election::Unclean,
                false => Election::Preferred,
            },
            partitions: Some(vec![(format!("t{topic}"), vec![*partition as i32])]),
        },
        Step::StaleAlterIsr { topic, partition } => {
            let topic = &image.topics[&format!("t{topic}")];
            let state = &topic.partitions[*partition];
            MetadataCommand::AlterIsr {
                topic: topic.id,
                partition: *partition as i32,
                leader: state.leader,
                leader_epoch: state.leader_epoch - 1,
                isr: vec![state.leader],
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn election_invariants_hold(steps in proptest::collection::vec(step(), 1..60)) {
        let mut image = start();
        let mut leaders_by_epoch: HashMap<(String, i32, i32), i32> = HashMap::new();
        for step in &steps {
            let before = image.clone();
            let command = command_for(&image, step);
            image.apply(&command);
            for (name, topic) in &image.topics {
                for (partition, old) in topic.partitions.iter().zip(&before.topics[name].partitions) {
                    prop_assert!(!partition.isr.is_empty());
                    prop_assert!(partition.isr.iter().all(|r| partition.replicas.contains(r)), "{partition:?}");
                    if partition.leader != NO_LEADER {
                        prop_assert!(partition.isr.contains(&partition.leader), "{partition:?}");
                        prop_assert!(image.is_alive(partition.leader), "leader {} is fenced: {partition:?}", partition.leader);
                    }
                    prop_assert!(partition.leader_epoch >= old.leader_epoch);
                    prop_assert!(partition.partition_epoch >= old.partition_epoch);
                    if partition.leader != old.leader {
                        prop_assert!(partition.leader_epoch > old.leader_epoch, "{old:?} -> {partition:?}");
                        let unclean = matches!(step, Step::Elect { unclean: true, .. });
                        if unclean {
                            // Only a partition without a leader, and the new one alone in sync.
                            prop_assert_eq!(old.leader, NO_LEADER);
                            prop_assert_eq!(&partition.isr, &vec![partition.leader]);
                        } else if partition.leader != NO_LEADER {
                            prop_assert!(old.isr.contains(&partition.leader), "unclean election: {old:?} -> {partition:?}");
                        }
                    }
                    let key = (name.clone(), partition.index, partition.leader_epoch);
                    let first = *leaders_by_epoch.entry(key).or_insert(partition.leader);
                    prop_assert_eq!(first, partition.leader, "two leaders in one epoch");
                }
            }
        }
    }
}
