//! The metadata image's rules: placement on create, election on fence, ISR changes.

use std::collections::BTreeMap;

use strom_metadata::image::NO_LEADER;
use strom_metadata::{CommandResult, MetadataCommand, MetadataImage};
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
