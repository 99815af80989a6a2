//! The consumer-group calls against the fake broker's group coordinator.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as WireAssigned;
use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_types::{BrokerId, ErrorCode, Offset, PartitionIndex};

use crate::fake_broker::{FakeBroker, FakeGroup, FakeMember, FakeState};
use crate::{
    Client, ClientConfig, ClientError, GroupState, GroupType, PartitionOffset, TopicPartition,
    TopicPartitions,
};

const FIND_COORDINATOR: i16 = 10;
const DESCRIBE_GROUPS: i16 = 15;
const OFFSET_FETCH: i16 = 9;
const LIST_GROUPS: i16 = 16;
const CONSUMER_GROUP_DESCRIBE: i16 = 69;

async fn client_for(broker: &FakeBroker) -> Client {
    let config = ClientConfig {
        retry_backoff_ms: 1,
        retry_backoff_ms_max: 2,
        ..ClientConfig::default()
    };
    Client::connect(&broker.address, config).await.unwrap()
}

/// A fake broker state speaking at most `max` of API `key`.
fn speaking(key: i16, max: i16) -> FakeState {
    let mut state = FakeState::default();
    for range in &mut state.api_versions {
        if range.0 == key {
            range.2 = max;
        }
    }
    state
}

fn assignment(topics: &[(&str, &[i32])]) -> Bytes {
    let assigned = topics
        .iter()
        .map(|(topic, partitions)| {
            WireAssigned::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions.to_vec())
        })
        .collect();
    let mut bytes = BytesMut::new();
    bytes.extend_from_slice(&1i16.to_be_bytes());
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned)
        .encode(&mut bytes, 1)
        .unwrap();
    bytes.freeze()
}

fn member(id: &str, assignment: Bytes) -> FakeMember {
    FakeMember {
        member_id: id.to_string(),
        client_id: format!("client-{id}"),
        client_host: "/127.0.0.1".to_string(),
        instance_id: None,
        assignment,
        assigned: Vec::new(),
    }
}

/// A Stable consumer group with one member reading t-0 and t-1, and an offset on t-0.
fn stable_group() -> FakeGroup {
    let mut group = FakeGroup {
        state: "Stable".to_string(),
        protocol: "range".to_string(),
        members: vec![member("m1", assignment(&[("t", &[0, 1])]))],
        ..FakeGroup::default()
    };
    group.offsets.insert(("t".to_string(), 0), 7);
    group
}

fn partition(topic: &str, index: i32) -> TopicPartition {
    TopicPartition::new(topic, PartitionIndex(index))
}

#[tokio::test]
async fn group_requests_go_to_the_coordinator() {
    let mut coordinator_state = FakeState::default();
    coordinator_state
        .groups
        .insert("g".to_string(), stable_group());
    let coordinator = FakeBroker::start(coordinator_state).await;
    let port = coordinator
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let bootstrap = FakeBroker::start(FakeState {
        coordinator: Some((2, port)),
        ..FakeState::default()
    })
    .await;
    let client = client_for(&bootstrap).await;

    let found = client.find_coordinator("g").await.unwrap();
    assert_eq!((found.id, found.port), (BrokerId(2), port as i32));
    let described = client.describe_groups(&["g"]).await.unwrap();
    assert_eq!(described[0].state, GroupState::Stable);
    let offsets = client.offset_fetch("g", None).await.unwrap();
    assert_eq!(offsets.len(), 1);

    assert_eq!(bootstrap.state().count(DESCRIBE_GROUPS), 0);
    assert_eq!(bootstrap.state().count(CONSUMER_GROUP_DESCRIBE), 0);
    assert_eq!(bootstrap.state().count(OFFSET_FETCH), 0);
    assert_eq!(
        bootstrap.state().count(FIND_COORDINATOR),
        4,
        "one lookup per call, two for describe (KIP-848, then classic)"
    );
    assert_eq!(coordinator.state().count(CONSUMER_GROUP_DESCRIBE), 1);
    assert_eq!(coordinator.state().count(DESCRIBE_GROUPS), 1);
    assert_eq!(coordinator.state().count(OFFSET_FETCH), 1);
}

#[tokio::test]
async fn find_coordinator_speaks_the_single_key_versions_too() {
    let broker = FakeBroker::start(speaking(FIND_COORDINATOR, 3)).await;
    let client = client_for(&broker).await;
    let found = client.find_coordinator("g").await.unwrap();
    assert_eq!(found.id, BrokerId(1));
    assert!(broker.state().requests.contains(&(FIND_COORDINATOR, 3)));
}

#[tokio::test]
async fn coordinator_errors_are_retried_after_finding_it_again() {
    let mut state = FakeState::default();
    state.groups.insert("g".to_string(), stable_group());
    state.coordinator_errors.extend([16, 14]);
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    let described = client.describe_groups(&["g"]).await.unwrap();
    assert_eq!(described[0].members.len(), 1);
    assert_eq!(broker.state().count(CONSUMER_GROUP_DESCRIBE), 3);
    assert_eq!(broker.state().count(DESCRIBE_GROUPS), 1);
    assert_eq!(broker.state().count(FIND_COORDINATOR), 4);

    broker.state().coordinator_errors.extend([15; 100]);
    let error = client.offset_fetch("g", None).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::CoordinatorNotAvailable));
    assert!(error.to_string().contains("group 'g'"), "{error}");
}

#[tokio::test]
async fn list_groups_filters_by_state_ignoring_case() {
    let mut state = FakeState::default();
    state.groups.insert("b-stable".to_string(), stable_group());
    state
        .groups
        .insert("a-empty".to_string(), FakeGroup::default());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;

    let all = client.list_groups(&[]).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|group| group.group_id.as_str()).collect();
    assert_eq!(ids, ["a-empty", "b-stable"]);
    assert_eq!(all[0].state, Some(GroupState::Empty));
    assert_eq!(all[1].protocol_type, "consumer");

    let stable = client
        .list_groups(&[GroupState::parse("STABLE")])
        .await
        .unwrap();
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].group_id, "b-stable");
    assert!(broker.state().requests.contains(&(LIST_GROUPS, 5)));
}

#[tokio::test]
async fn list_groups_before_v4_has_no_states() {
    let mut state = speaking(LIST_GROUPS, 3);
    state.groups.insert("g".to_string(), FakeGroup::default());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    let all = client.list_groups(&[]).await.unwrap();
    assert_eq!(all[0].state, None);
    let error = client.list_groups(&[GroupState::Stable]).await.unwrap_err();
    assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
}

#[tokio::test]
async fn describe_groups_decodes_assignments() {
    let mut state = FakeState::default();
    let mut group = stable_group();
    group.members.push(FakeMember {
        instance_id: Some("static-1".to_string()),
        ..member("m2", Bytes::new())
    });
    state.groups.insert("g".to_string(), group);
    state.groups.insert(
        "connect".to_string(),
        FakeGroup {
            protocol_type: "connect".to_string(),
            members: vec![member("w", Bytes::from_static(b"opaque"))],
            ..FakeGroup::default()
        },
    );
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;

    let described = client
        .describe_groups(&["g", "connect", "nobody"])
        .await
        .unwrap();
    let g = &described[0];
    assert_eq!(g.group_type, GroupType::Classic);
    assert_eq!(
        (g.protocol_type.as_str(), g.protocol.as_str()),
        ("consumer", "range")
    );
    assert_eq!(g.members[0].client_id, "client-m1");
    assert_eq!(
        g.members[0].assignment,
        Some(vec![TopicPartitions {
            topic: "t".to_string(),
            partitions: vec![PartitionIndex(0), PartitionIndex(1)],
        }])
    );
    assert_eq!(
        g.members[1].assignment,
        Some(Vec::new()),
        "not yet assigned"
    );
    assert_eq!(g.members[1].instance_id.as_deref(), Some("static-1"));
    assert_eq!(
        described[1].members[0].assignment, None,
        "not the consumer protocol"
    );
    assert_eq!(described[2].state, GroupState::Dead);
    assert!(described[2].members.is_empty());
}

#[tokio::test]
async fn offset_fetch_all_or_some_partitions_in_old_and_new_versions() {
    for max in [9, 7] {
        let mut state = speaking(OFFSET_FETCH, max);
        state.groups.insert("g".to_string(), stable_group());
        let broker = FakeBroker::start(state).await;
        let client = client_for(&broker).await;

        let all = client.offset_fetch("g", None).await.unwrap();
        assert_eq!(all.len(), 1, "v{max}");
        assert_eq!(all[0].partition, partition("t", 0));
        assert_eq!(all[0].offset, Some(Offset(7)));

        let wanted = [partition("t", 1), partition("t", 0)];
        let some = client.offset_fetch("g", Some(&wanted)).await.unwrap();
        let found: Vec<_> = some
            .iter()
            .map(|committed| (committed.partition.partition.0, committed.offset))
            .collect();
        assert_eq!(found, [(0, Some(Offset(7))), (1, None)], "v{max}");
        assert!(broker.state().requests.contains(&(OFFSET_FETCH, max)));
    }
}

#[tokio::test]
async fn the_admin_commit_needs_an_empty_group() {
    let mut state = FakeState::default();
    state.create("t", 2);
    state.groups.insert("busy".to_string(), stable_group());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;

    let offsets = [
        PartitionOffset {
            partition: partition("t", 0),
            offset: Offset(3),
        },
        PartitionOffset {
            partition: partition("t", 1),
            offset: Offset(4),
        },
    ];
    client.offset_commit("fresh", &offsets).await.unwrap();
    let committed = client.offset_fetch("fresh", None).await.unwrap();
    let found: Vec<_> = committed.iter().map(|c| c.offset).collect();
    assert_eq!(found, [Some(Offset(3)), Some(Offset(4))]);

    let error = client.offset_commit("busy", &offsets).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::UnknownMemberId));
    assert!(
        error
            .to_string()
            .starts_with("UNKNOWN_MEMBER_ID: group 'busy' has active members; stop them first"),
        "{error}"
    );

    let missing = [PartitionOffset {
        partition: partition("t", 9),
        offset: Offset(0),
    }];
    let error = client.offset_commit("fresh", &missing).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::UnknownTopicOrPartition));
}

#[tokio::test]
async fn delete_groups_reports_each_refusal_by_name() {
    let mut state = FakeState::default();
    state.groups.insert("busy".to_string(), stable_group());
    state
        .groups
        .insert("idle".to_string(), FakeGroup::default());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;

    let error = client.delete_groups(&["busy"]).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::NonEmptyGroup));
    assert!(
        error
            .to_string()
            .contains("group 'busy' has active members"),
        "{error}"
    );
    let error = client.delete_groups(&["nobody"]).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::GroupIdNotFound));
    assert!(error.to_string().contains("'strom group list'"), "{error}");

    client.delete_groups(&["idle"]).await.unwrap();
    assert!(!broker.state().groups.contains_key("idle"));
}

#[tokio::test]
async fn offset_delete_drops_committed_offsets() {
    let mut state = FakeState::default();
    state.groups.insert("g".to_string(), stable_group());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    client
        .offset_delete("g", &[partition("t", 0)])
        .await
        .unwrap();
    assert!(client.offset_fetch("g", None).await.unwrap().is_empty());
    let error = client
        .offset_delete("nobody", &[partition("t", 0)])
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::GroupIdNotFound));
}

#[tokio::test]
async fn kip848_groups_are_described_with_consumer_group_describe() {
    let mut state = FakeState::default();
    state.groups.insert(
        "new".to_string(),
        FakeGroup {
            state: "Reconciling".to_string(),
            protocol: "uniform".to_string(),
            members: vec![FakeMember {
                assigned: vec![("t".to_string(), vec![2, 0])],
                ..member("m1", Bytes::new())
            }],
            kip848: true,
            ..FakeGroup::default()
        },
    );
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    let described = client.describe_groups(&["new"]).await.unwrap();
    let group = &described[0];
    assert_eq!(group.group_type, GroupType::Consumer);
    assert_eq!(group.state, GroupState::Reconciling);
    assert_eq!(
        (group.protocol_type.as_str(), group.protocol.as_str()),
        ("consumer", "uniform")
    );
    assert_eq!(
        group.members[0].assignment,
        Some(vec![TopicPartitions {
            topic: "t".to_string(),
            partitions: vec![PartitionIndex(2), PartitionIndex(0)],
        }])
    );
    assert_eq!(
        broker.state().count(DESCRIBE_GROUPS),
        0,
        "no fallback needed"
    );
}

#[tokio::test]
async fn describe_falls_back_to_describe_groups_on_older_coordinators() {
    let mut state = FakeState::default();
    state
        .api_versions
        .retain(|range| range.0 != CONSUMER_GROUP_DESCRIBE);
    state.groups.insert("g".to_string(), stable_group());
    let broker = FakeBroker::start(state).await;
    let client = client_for(&broker).await;
    let described = client.describe_groups(&["g"]).await.unwrap();
    assert_eq!(described[0].state, GroupState::Stable);
    assert_eq!(broker.state().count(CONSUMER_GROUP_DESCRIBE), 0);
    assert_eq!(broker.state().count(DESCRIBE_GROUPS), 1);
}
