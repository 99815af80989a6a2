//! The metadata image's rules: placement on create, election on fence, ISR changes,
//! ElectLeaders' preferred and unclean elections, the rebalance's choice of partitions.

use std::collections::BTreeMap;

use strom_metadata::image::NO_LEADER;
use strom_metadata::quorum::balance::imbalanced_partitions;
use strom_metadata::{CommandResult, Election, MetadataCommand, MetadataImage};
use strom_types::ErrorCode;
use uuid::Uuid;

fn register(image: &mut MetadataImage, id: i32) {
    let command = MetadataCommand::RegisterBroker {
        id,
        incarnation: Uuid::from_u128(id as u128),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        rack: None,
        endpoints: Vec::new(),
    };
    assert_eq!(image.apply(&command), CommandResult::Done);
}

fn cluster(brokers: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::default();
    image.apply(&MetadataCommand::Bootstrap {
        cluster_id: "c".into(),
    });
    for id in brokers {
        register(&mut image, *id);
    }
    image
}

fn create(
    image: &mut MetadataImage,
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> CommandResult {
    let command = MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(name.len() as u128 * 7919 + partitions as u128),
        partitions,
        replication_factor,
        assignments: None,
        configs: BTreeMap::new(),
    };
    image.apply(&command)
}

fn refusal(result: CommandResult) -> ErrorCode {
    match result {
        CommandResult::Refused(error) => error.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_new_topic_has_every_replica_in_sync_and_the_first_as_leader() {
    let mut image = cluster(&[1, 2, 3]);
    assert!(matches!(
        create(&mut image, "t", 3, 3),
        CommandResult::TopicCreated { .. }
    ));
    let topic = &image.topics["t"];
    let leaders: Vec<i32> = topic.partitions.iter().map(|p| p.leader).collect();
    let mut distinct = leaders.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "leaders spread: {leaders:?}");
    for partition in &topic.partitions {
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!(partition.leader, partition.replicas[0]);
        assert_eq!(partition.leader_epoch, 0);
    }
    assert_eq!(
        refusal(create(&mut image, "t", 1, 1)),
        ErrorCode::TopicAlreadyExists
    );
    assert_eq!(
        refusal(create(&mut image, "u", 1, 4)),
        ErrorCode::InvalidReplicationFactor
    );
    assert_eq!(
        refusal(create(&mut image, "v", 0, 1)),
        ErrorCode::InvalidPartitions
    );
}

#[test]
fn fencing_moves_leadership_within_the_isr_and_bumps_the_epoch() {
    let mut image = cluster(&[1, 2, 3]);
    create(&mut image, "t", 3, 3);
    let before = image.topics["t"].partitions.clone();
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    for (old, new) in before.iter().zip(&image.topics["t"].partitions) {
        assert!(!new.isr.contains(&1), "{new:?}");
        if old.leader == 1 {
            assert_ne!(new.leader, 1);
            assert!(new.isr.contains(&new.leader));
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
        } else {
            assert_eq!(new.leader, old.leader);
            assert_eq!(new.leader_epoch, old.leader_epoch);
        }
        assert!(new.partition_epoch > old.partition_epoch);
    }
}

#[test]
fn the_last_in_sync_replica_keeps_its_place_and_returns_as_leader() {
    let mut image = cluster(&[1, 2]);
    create(&mut image, "t", 1, 2);
    let leader = image.topics["t"].partitions[0].leader;
    let follower = if leader == 1 { 2 } else { 1 };
    // The follower falls out of the ISR, then the leader dies: no clean successor.
    let topic_id = image.topics["t"].id;
    let epoch = image.topics["t"].partitions[0].leader_epoch;
    let shrink = MetadataCommand::AlterIsr {
        topic: topic_id,
        partition: 0,
        leader,
        leader_epoch: epoch,
        isr: vec![leader],
    };
    assert_eq!(image.apply(&shrink), CommandResult::Done);
    image.apply(&MetadataCommand::FenceBroker { id: leader });
    let partition = &image.topics["t"].partitions[0];
    assert_eq!(
        partition.leader, NO_LEADER,
        "no unclean election by default"
    );
    assert_eq!(partition.isr, vec![leader], "the last ISR member stays");
    assert!(image.is_alive(follower));
    image.apply(&MetadataCommand::UnfenceBroker { id: leader });
    assert_eq!(image.topics["t"].partitions[0].leader, leader);
}

#[test]
fn isr_changes_need_the_current_leader_and_epoch() {
    let mut image = cluster(&[1, 2, 3]);
    create(&mut image, "t", 1, 3);
    let id = image.topics["t"].id;
    let partition = image.topics["t"].partitions[0].clone();
    let other = *partition
        .replicas
        .iter()
        .find(|r| **r != partition.leader)
        .unwrap();
    let stale = MetadataCommand::AlterIsr {
        topic: id,
        partition: 0,
        leader: partition.leader,
        leader_epoch: 5,
        isr: vec![partition.leader],
    };
    assert_eq!(refusal(image.apply(&stale)), ErrorCode::FencedLeaderEpoch);
    let wrong_leader = MetadataCommand::AlterIsr {
        topic: id,
        partition: 0,
        leader: other,
        leader_epoch: 0,
        isr: vec![other],
    };
    assert_eq!(
        refusal(image.apply(&wrong_leader)),
        ErrorCode::NotLeaderOrFollower
    );
    let without_leader = MetadataCommand::AlterIsr {
        topic: id,
        partition: 0,
        leader: partition.leader,
        leader_epoch: 0,
        isr: vec![other],
    };
    assert_eq!(
        refusal(image.apply(&without_leader)),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn applying_the_same_log_gives_the_same_image() {
    let log = vec![
        MetadataCommand::Bootstrap {
            cluster_id: "c".into(),
        },
        MetadataCommand::RegisterBroker {
            id: 1,
            incarnation: Uuid::nil(),
            host: "h".into(),
            port: 1,
            rack: None,
            endpoints: Vec::new(),
        },
        MetadataCommand::RegisterBroker {
            id: 2,
            incarnation: Uuid::nil(),
            host: "h".into(),
            port: 2,
            rack: None,
            endpoints: Vec::new(),
        },
        MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(42),
            partitions: 4,
            replication_factor: 2,
            assignments: None,
            configs: BTreeMap::new(),
        },
        MetadataCommand::FenceBroker { id: 2 },
        MetadataCommand::AllocateProducerIds {
            broker: 1,
            count: 1000,
        },
    ];
    let (mut a, mut b) = (MetadataImage::default(), MetadataImage::default());
    for command in &log {
        assert_eq!(a.apply(command), b.apply(command));
    }
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(
        serde_json::from_str::<MetadataImage>(&json).unwrap(),
        a,
        "snapshots round-trip"
    );
}

#[test]
fn alter_configs_sets_deletes_and_replaces_per_scope() {
    use strom_metadata::ConfigScope;
    let mut image = cluster(&[1]);
    assert!(matches!(
        create(&mut image, "t", 1, 1),
        CommandResult::TopicCreated { .. }
    ));
    let id = image.topics["t"].id;
    let map = |entries: &[(&str, &str)]| -> BTreeMap<String, String> {
        (entries.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let alter =
        |image: &mut MetadataImage, resource, set: &[(&str, &str)], delete: &[&str], replace| {
            image.apply(&MetadataCommand::AlterConfigs {
                resource,
                set: map(set),
                delete: delete.iter().map(|k| k.to_string()).collect(),
                replace,
                lists: Vec::new(),
            })
        };
    let topic = ConfigScope::Topic(id);
    alter(
        &mut image,
        topic.clone(),
        &[("retention.ms", "1"), ("segment.bytes", "2048")],
        &[],
        false,
    );
    alter(
        &mut image,
        topic.clone(),
        &[("cleanup.policy", "compact")],
        &["retention.ms"],
        false,
    );
    assert_eq!(
        image.topics["t"].configs,
        map(&[("segment.bytes", "2048"), ("cleanup.policy", "compact")])
    );
    alter(&mut image, topic, &[("retention.ms", "5")], &[], true);
    assert_eq!(image.topics["t"].configs, map(&[("retention.ms", "5")]));

    // Broker scopes by Kafka's resource name; a scope left empty is removed.
    let shared = image.broker_configs.clone();
    alter(
        &mut image,
        ConfigScope::BrokerDefault,
        &[("log.retention.ms", "9")],
        &[],
        false,
    );
    alter(
        &mut image,
        ConfigScope::Broker(1),
        &[("log.roll.ms", "7")],
        &[],
        false,
    );
    assert!(!std::sync::Arc::ptr_eq(&shared, &image.broker_configs));
    assert_eq!(image.broker_configs[""], map(&[("log.retention.ms", "9")]));
    assert_eq!(image.broker_configs["1"], map(&[("log.roll.ms", "7")]));
    alter(
        &mut image,
        ConfigScope::Broker(1),
        &[],
        &["log.roll.ms"],
        false,
    );
    assert!(!image.broker_configs.contains_key("1"));

    let unknown = alter(
        &mut image,
        ConfigScope::Topic(Uuid::from_u128(1)),
        &[("retention.ms", "1")],
        &[],
        false,
    );
    assert_eq!(refusal(unknown), ErrorCode::UnknownTopicOrPartition);
}

/// A topic "e" with one partition on replicas [1, 2, 3] (1 preferred) on brokers 1-3.
fn preferred_on_one() -> MetadataImage {
    let mut image = cluster(&[1, 2, 3]);
    let command = MetadataCommand::CreateTopic {
        name: "e".into(),
        id: Uuid::from_u128(77),
        partitions: 1,
        replication_factor: 3,
        assignments: Some(vec![vec![1, 2, 3]]),
        configs: BTreeMap::new(),
    };
    assert!(matches!(
        image.apply(&command),
        CommandResult::TopicCreated { .. }
    ));
    image
}

fn elect(image: &mut MetadataImage, election: Election, partitions: &[i32]) -> Vec<ErrorCode> {
    let command = MetadataCommand::ElectLeaders {
        election,
        partitions: Some(vec![("e".into(), partitions.to_vec())]),
    };
    match image.apply(&command) {
        CommandResult::Elections(topics) => {
            assert_eq!(topics.len(), 1);
            (topics[0].partitions.iter()).map(|p| p.error).collect()
        }
        other => panic!("expected elections, got {other:?}"),
    }
}

/// The leader of "e"-0 adds `broker` back to its ISR, as it does once the broker caught up.
fn rejoin_isr(image: &mut MetadataImage, broker: i32) {
    let partition = image.topics["e"].partitions[0].clone();
    let mut isr = partition.isr.clone();
    isr.push(broker);
    let command = MetadataCommand::AlterIsr {
        topic: Uuid::from_u128(77),
        partition: 0,
        leader: partition.leader,
        leader_epoch: partition.leader_epoch,
        isr,
    };
    assert_eq!(image.apply(&command), CommandResult::Done);
}

#[test]
fn a_preferred_election_returns_leadership_to_the_first_replica_once_it_is_in_sync() {
    let mut image = preferred_on_one();
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::ElectionNotNeeded]
    );
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    assert_eq!(image.topics["e"].partitions[0].leader, 2);
    // Fenced, then back but not in sync yet: not available either way.
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::PreferredLeaderNotAvailable]
    );
    image.apply(&MetadataCommand::UnfenceBroker { id: 1 });
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::PreferredLeaderNotAvailable]
    );
    rejoin_isr(&mut image, 1);
    let before = image.topics["e"].partitions[0].clone();
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::None]
    );
    let after = &image.topics["e"].partitions[0];
    assert_eq!(after.leader, 1);
    assert_eq!(after.isr, before.isr, "a clean election keeps the ISR");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert!(after.partition_epoch > before.partition_epoch);
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::ElectionNotNeeded]
    );
}

#[test]
fn unknown_topics_and_partitions_are_answered_per_partition() {
    let mut image = preferred_on_one();
    assert_eq!(
        elect(&mut image, Election::Preferred, &[1, -1, 0]),
        [
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::ElectionNotNeeded
        ]
    );
    let command = MetadataCommand::ElectLeaders {
        election: Election::Unclean,
        partitions: Some(vec![("nope".into(), vec![0])]),
    };
    let CommandResult::Elections(topics) = image.apply(&command) else {
        panic!("elections expected");
    };
    assert_eq!(topics[0].topic, "nope");
    assert_eq!(
        topics[0].partitions[0].error,
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(
        topics[0].partitions[0].message.as_deref(),
        Some("No such topic as nope")
    );
}

#[test]
fn an_unclean_election_takes_a_live_out_of_sync_replica_only_when_no_leader_is_left() {
    let mut image = preferred_on_one();
    assert_eq!(
        elect(&mut image, Election::Unclean, &[0]),
        [ErrorCode::ElectionNotNeeded]
    );
    // Broker 1 leads alone (the others fell out of the ISR), then dies.
    let shrink = MetadataCommand::AlterIsr {
        topic: Uuid::from_u128(77),
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        isr: vec![1],
    };
    assert_eq!(image.apply(&shrink), CommandResult::Done);
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    assert_eq!(image.topics["e"].partitions[0].leader, NO_LEADER);
    assert_eq!(
        elect(&mut image, Election::Preferred, &[0]),
        [ErrorCode::PreferredLeaderNotAvailable]
    );
    let before = image.topics["e"].partitions[0].clone();
    assert_eq!(
        elect(&mut image, Election::Unclean, &[0]),
        [ErrorCode::None]
    );
    let after = &image.topics["e"].partitions[0];
    assert_eq!(after.leader, 2, "the first live replica");
    assert_eq!(
        after.isr,
        vec![2],
        "the unclean leader's log is the truth now"
    );
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
}

#[test]
fn an_unclean_election_without_any_live_replica_finds_no_eligible_leader() {
    let mut image = preferred_on_one();
    for id in [2, 3, 1] {
        image.apply(&MetadataCommand::FenceBroker { id });
    }
    assert_eq!(image.topics["e"].partitions[0].leader, NO_LEADER);
    assert_eq!(
        elect(&mut image, Election::Unclean, &[0]),
        [ErrorCode::EligibleLeadersNotAvailable]
    );
    // Broker 2 returns, out of sync: only an unclean election makes it leader.
    image.apply(&MetadataCommand::UnfenceBroker { id: 2 });
    assert_eq!(image.topics["e"].partitions[0].leader, NO_LEADER);
    assert_eq!(
        elect(&mut image, Election::Unclean, &[0]),
        [ErrorCode::None]
    );
    let partition = &image.topics["e"].partitions[0];
    assert_eq!(partition.leader, 2);
    assert_eq!(partition.isr, vec![2]);
}

#[test]
fn electing_every_partition_leaves_out_those_that_needed_no_election() {
    let mut image = preferred_on_one();
    create(&mut image, "f", 2, 3);
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    image.apply(&MetadataCommand::UnfenceBroker { id: 1 });
    rejoin_isr(&mut image, 1);
    let command = MetadataCommand::ElectLeaders {
        election: Election::Preferred,
        partitions: None,
    };
    let CommandResult::Elections(topics) = image.apply(&command) else {
        panic!("elections expected");
    };
    let e = topics.iter().find(|t| t.topic == "e").expect("every topic");
    assert_eq!(e.partitions.len(), 1);
    assert_eq!(
        (e.partitions[0].partition, e.partitions[0].error),
        (0, ErrorCode::None)
    );
    for topic in &topics {
        assert!(topic
            .partitions
            .iter()
            .all(|p| p.error != ErrorCode::ElectionNotNeeded));
    }
    assert_eq!(image.topics["e"].partitions[0].leader, 1);
}

#[test]
fn the_rebalance_picks_preferred_replicas_alive_and_in_sync_past_the_imbalance_threshold() {
    let mut image = cluster(&[1, 2, 3]);
    // Broker 1 is preferred for 10 partitions; after a failover it leads none.
    let assignments: Vec<Vec<i32>> = (0..10).map(|_| vec![1, 2, 3]).collect();
    image.apply(&MetadataCommand::CreateTopic {
        name: "r".into(),
        id: Uuid::from_u128(5),
        partitions: 10,
        replication_factor: 3,
        assignments: Some(assignments),
        configs: BTreeMap::new(),
    });
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    image.apply(&MetadataCommand::UnfenceBroker { id: 1 });
    assert!(
        imbalanced_partitions(&image, 10).is_empty(),
        "1 is not in sync"
    );
    // Broker 1 catches up on one partition only: that one is chosen (10 of 10 led elsewhere).
    let partition = image.topics["r"].partitions[3].clone();
    image.apply(&MetadataCommand::AlterIsr {
        topic: Uuid::from_u128(5),
        partition: 3,
        leader: partition.leader,
        leader_epoch: partition.leader_epoch,
        isr: vec![2, 3, 1],
    });
    assert_eq!(
        imbalanced_partitions(&image, 10),
        vec![("r".to_owned(), vec![3])]
    );
    // At 100 % nothing is ever imbalanced enough.
    assert!(imbalanced_partitions(&image, 100).is_empty());
    image.apply(&MetadataCommand::ElectLeaders {
        election: Election::Preferred,
        partitions: Some(vec![("r".into(), vec![3])]),
    });
    // 9 of 10 led elsewhere is 90 %: over 10 %, but not over 90 %.
    assert!(imbalanced_partitions(&image, 90).is_empty());
    assert!(imbalanced_partitions(&image, 10).is_empty(), "none in sync");
}

/// Moves "e"-0 to `target` (or cancels its move) and returns the partition's outcome.
fn reassign(
    image: &mut MetadataImage,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> ErrorCode {
    let command = MetadataCommand::AlterPartitionReassignments {
        partitions: vec![("e".into(), vec![(0, target)])],
        allow_replication_factor_change: allow_rf_change,
    };
    match image.apply(&command) {
        CommandResult::Reassignments(topics) => topics[0].partitions[0].error,
        other => panic!("expected reassignments, got {other:?}"),
    }
}

#[test]
fn a_reassignment_adds_replicas_first_and_completes_once_they_are_in_sync() {
    let mut image = preferred_on_one();
    register(&mut image, 4);
    register(&mut image, 5);
    // Replace 1 (the leader) and 3 by 4 and 5.
    assert_eq!(
        reassign(&mut image, Some(vec![4, 2, 5]), true),
        ErrorCode::None
    );
    let moving = image.topics["e"].partitions[0].clone();
    assert_eq!(moving.replicas, vec![4, 2, 5, 1, 3]);
    assert_eq!(
        (moving.adding.clone(), moving.removing.clone()),
        (vec![4, 5], vec![1, 3])
    );
    assert_eq!((moving.leader, moving.isr.clone()), (1, vec![1, 2, 3]));
    // The balancer leaves a moving partition alone.
    assert!(imbalanced_partitions(&image, 0).is_empty());

    rejoin_isr(&mut image, 4);
    let half = &image.topics["e"].partitions[0];
    assert!(half.is_reassigning(), "5 is not in sync yet");
    assert_eq!(half.isr, vec![1, 2, 3, 4]);

    rejoin_isr(&mut image, 5);
    let done = &image.topics["e"].partitions[0];
    assert!(!done.is_reassigning());
    assert_eq!(done.replicas, vec![4, 2, 5]);
    assert_eq!(done.isr, vec![2, 4, 5]);
    // The removed leader handed over to the first target replica in sync.
    assert_eq!(done.leader, 4);
    assert_eq!(done.leader_epoch, moving.leader_epoch + 1);
}

#[test]
fn a_reordering_completes_at_once_and_keeps_a_leader_that_stays() {
    let mut image = preferred_on_one();
    assert_eq!(
        reassign(&mut image, Some(vec![3, 2, 1]), true),
        ErrorCode::None
    );
    let partition = &image.topics["e"].partitions[0];
    assert!(!partition.is_reassigning());
    assert_eq!(partition.replicas, vec![3, 2, 1]);
    assert_eq!((partition.leader, partition.leader_epoch), (1, 0));
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let mut image = preferred_on_one();
    register(&mut image, 4);
    assert_eq!(
        reassign(&mut image, Some(vec![4, 2, 3]), true),
        ErrorCode::None
    );
    assert_eq!(reassign(&mut image, None, true), ErrorCode::None);
    let partition = &image.topics["e"].partitions[0];
    assert!(!partition.is_reassigning());
    assert_eq!(partition.replicas, vec![2, 3, 1]);
    assert_eq!(
        (partition.leader, partition.isr.clone()),
        (1, vec![1, 2, 3])
    );
    assert_eq!(
        reassign(&mut image, None, true),
        ErrorCode::NoReassignmentInProgress
    );
}

#[test]
fn bad_targets_are_refused_with_kafkas_errors() {
    let mut image = preferred_on_one();
    let before = image.clone();
    for target in [vec![], vec![1, 1, 2], vec![1, 2, 9]] {
        let error = reassign(&mut image, Some(target.clone()), true);
        assert_eq!(error, ErrorCode::InvalidReplicaAssignment, "{target:?}");
    }
    assert_eq!(
        reassign(&mut image, Some(vec![1, 2]), false),
        ErrorCode::InvalidReplicationFactor
    );
    assert_eq!(image, before);
    let command = MetadataCommand::AlterPartitionReassignments {
        partitions: vec![
            ("e".into(), vec![(5, Some(vec![1]))]),
            ("nope".into(), vec![(0, None)]),
        ],
        allow_replication_factor_change: true,
    };
    let CommandResult::Reassignments(topics) = image.apply(&command) else {
        panic!("expected reassignments");
    };
    let errors: Vec<ErrorCode> = topics.iter().map(|t| t.partitions[0].error).collect();
    assert_eq!(errors, vec![ErrorCode::UnknownTopicOrPartition; 2]);
}

#[test]
fn a_fenced_leader_hands_over_to_an_in_sync_replica_never_to_one_being_added() {
    let mut image = preferred_on_one();
    register(&mut image, 4);
    assert_eq!(
        reassign(&mut image, Some(vec![4, 2, 3]), true),
        ErrorCode::None
    );
    for id in [2, 3, 1] {
        image.apply(&MetadataCommand::FenceBroker { id });
    }
    let partition = &image.topics["e"].partitions[0];
    assert_eq!(partition.leader, NO_LEADER);
    assert_eq!(
        elect(&mut image, Election::Unclean, &[0]),
        vec![ErrorCode::EligibleLeadersNotAvailable]
    );
}

#[test]
fn only_a_broker_that_is_down_can_be_unregistered() {
    let mut image = preferred_on_one();
    let unregister =
        |image: &mut MetadataImage, id| image.apply(&MetadataCommand::UnregisterBroker { id });
    assert_eq!(
        refusal(unregister(&mut image, 9)),
        ErrorCode::BrokerIdNotRegistered
    );
    assert_eq!(
        refusal(unregister(&mut image, 1)),
        ErrorCode::InvalidRequest
    );
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    assert_eq!(unregister(&mut image, 1), CommandResult::Done);
    assert!(!image.brokers.contains_key(&1));
    let partition = &image.topics["e"].partitions[0];
    assert_eq!((partition.leader, partition.isr.clone()), (2, vec![2, 3]));
}

#[test]
fn the_cluster_wide_unclean_default_applies_where_a_topic_sets_none() {
    let mut image = preferred_on_one();
    // "e"-0 shrinks to leader 1 alone, then 1 dies: no in-sync replica is left.
    let partition = image.topics["e"].partitions[0].clone();
    let shrink = MetadataCommand::AlterIsr {
        topic: Uuid::from_u128(77),
        partition: 0,
        leader: 1,
        leader_epoch: partition.leader_epoch,
        isr: vec![1],
    };
    assert_eq!(image.apply(&shrink), CommandResult::Done);
    let mut unclean = image.clone();
    image.apply(&MetadataCommand::FenceBroker { id: 1 });
    assert_eq!(image.topics["e"].partitions[0].leader, NO_LEADER);

    let default = MetadataCommand::AlterConfigs {
        resource: strom_metadata::ConfigScope::BrokerDefault,
        set: BTreeMap::from([(
            "unclean.leader.election.enable".to_owned(),
            "true".to_owned(),
        )]),
        delete: Vec::new(),
        replace: false,
        lists: Vec::new(),
    };
    assert_eq!(unclean.apply(&default), CommandResult::Done);
    assert!(unclean.unclean_election_default());
    unclean.apply(&MetadataCommand::FenceBroker { id: 1 });
    let elected = &unclean.topics["e"].partitions[0];
    assert_eq!((elected.leader, elected.isr.clone()), (2, vec![2]));
}
