//! DescribeGroups, ListGroups, DeleteGroups and OffsetDelete as the coordinator decides them.

mod common;

use bytes::Bytes;
use common::*;
use strom_coordinator::offsets::OffsetKey;
use strom_coordinator::{GroupState, JoinRequest, Protocol};
use strom_types::ErrorCode;

fn consumer(topics: &[&str]) -> JoinRequest {
    JoinRequest {
        protocols: vec![Protocol {
            name: "range".to_owned(),
            metadata: subscription(topics),
        }],
        ..join(GROUP, "")
    }
}

#[test]
fn state_names_are_kafkas() {
    let names: Vec<_> = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ]
    .into_iter()
    .map(GroupState::name)
    .collect();
    assert_eq!(
        names,
        [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
            "Dead"
        ]
    );
}

#[test]
fn an_unknown_group_is_not_described() {
    let h = Harness::new(config());
    assert_eq!(h.coordinator.describe("nobody"), None);
}

#[test]
fn a_stable_group_is_described_with_metadata_and_assignments() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![
        JoinRequest {
            client_id: "consumer-1".to_owned(),
            client_host: "/10.0.0.1".to_owned(),
            ..consumer(&["orders"])
        },
        JoinRequest {
            client_id: "consumer-2".to_owned(),
            client_host: "/10.0.0.2".to_owned(),
            ..static_join(GROUP, "", "instance-2")
        },
    ]);
    let description = h.describe();
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.protocol_name, "range");
    assert_eq!(description.members.len(), 2);
    let first = &description.members[0];
    assert_eq!(first.member_id, formed.leader);
    assert_eq!(first.group_instance_id, None);
    assert_eq!(first.client_id, "consumer-1");
    assert_eq!(first.client_host, "/10.0.0.1");
    assert_eq!(first.metadata, subscription(&["orders"]));
    assert_eq!(first.assignment, assignment_for(&formed.leader));
    let second = &description.members[1];
    assert_eq!(second.group_instance_id.as_deref(), Some("instance-2"));
    assert_eq!(second.client_id, "consumer-2");
    assert_eq!(second.metadata, "range-metadata");
    assert_eq!(second.assignment, assignment_for(formed.follower(0)));
}

#[test]
fn a_rebalancing_group_is_described_without_metadata_or_assignments() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, ""), join(GROUP, "")]);
    let description = h.describe();
    assert_eq!(description.state, GroupState::CompletingRebalance);
    assert_eq!(description.members.len(), 2);
    assert!(description
        .members
        .iter()
        .all(|m| m.metadata.is_empty() && m.assignment.is_empty()));

    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    h.join(join(GROUP, ""));
    let description = h.describe();
    assert_eq!(description.state, GroupState::PreparingRebalance);
    assert_eq!(description.members.len(), 3);
    assert!(description
        .members
        .iter()
        .all(|m| m.metadata.is_empty() && m.assignment.is_empty()));
}

#[test]
fn groups_are_listed_sorted_with_their_states() {
    let mut h = Harness::new(config());
    h.form_group(1);
    h.coordinator.apply_commit(
        "a-offsets-only",
        vec![("t".to_owned(), 0, offset(1, h.now_ms))],
        h.now_ms,
    );
    let joining = JoinRequest {
        protocol_type: "connect".to_owned(),
        ..join("c-joining", "")
    };
    h.join(joining);

    let listing: Vec<_> = h
        .coordinator
        .list()
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.state))
        .collect();
    assert_eq!(
        listing,
        [
            (
                "a-offsets-only".to_owned(),
                String::new(),
                GroupState::Empty
            ),
            (
                "c-joining".to_owned(),
                "connect".to_owned(),
                GroupState::PreparingRebalance
            ),
            (GROUP.to_owned(), "consumer".to_owned(), GroupState::Stable),
        ]
    );
}

#[test]
fn deleting_an_unknown_group_is_group_id_not_found() {
    let h = Harness::new(config());
    assert_eq!(
        h.coordinator.prepare_delete("nobody"),
        Err(ErrorCode::GroupIdNotFound)
    );
}

#[test]
fn a_group_with_members_cannot_be_deleted() {
    let mut h = Harness::new(config());
    let formed = h.join_group_with(vec![join(GROUP, "")]);
    assert_eq!(
        h.coordinator.prepare_delete(GROUP),
        Err(ErrorCode::NonEmptyGroup)
    );
    h.sync(leader_sync(
        GROUP,
        &formed.leader,
        formed.generation,
        &formed.members,
    ));
    assert_eq!(
        h.coordinator.prepare_delete(GROUP),
        Err(ErrorCode::NonEmptyGroup)
    );
    h.coordinator.forget(GROUP);
    assert_eq!(
        h.state(),
        GroupState::Stable,
        "forget leaves a live group alone"
    );
}

#[test]
fn deleting_an_empty_group_tombstones_its_offsets_then_forgets_it() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    h.coordinator.apply_commit(
        GROUP,
        vec![
            ("t".to_owned(), 1, offset(1, h.now_ms)),
            ("s".to_owned(), 0, offset(2, h.now_ms)),
        ],
        h.now_ms,
    );
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    let tombstones = h.coordinator.prepare_delete(GROUP).unwrap();
    assert_eq!(tombstones, [key(GROUP, "s", 0), key(GROUP, "t", 1)]);
    // Nothing changes until the tombstones are durable and the runtime calls forget.
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None).len(), 2);
    h.coordinator.forget(GROUP);
    assert_eq!(h.coordinator.describe(GROUP), None);
    assert!(h.coordinator.fetch_offsets(GROUP, None).is_empty());
    assert!(h.coordinator.list().is_empty());
}

#[test]
fn an_empty_group_without_offsets_deletes_with_no_tombstones() {
    let mut h = Harness::new(config());
    let formed = h.form_group(1);
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(
        h.coordinator.prepare_delete(GROUP),
        Ok(Vec::<OffsetKey>::new())
    );
}

#[test]
fn offsets_of_a_topic_a_member_subscribes_to_cannot_be_deleted() {
    let mut h = Harness::new(config());
    h.form_group_with(vec![
        consumer(&["orders", "payments"]),
        consumer(&["audit"]),
    ]);
    let coordinator = &h.coordinator;
    for topic in ["orders", "payments", "audit"] {
        assert_eq!(
            coordinator.check_offset_delete(GROUP, topic),
            Err(ErrorCode::GroupSubscribedToTopic),
            "{topic}"
        );
    }
    assert_eq!(coordinator.check_offset_delete(GROUP, "other"), Ok(()));
    assert_eq!(coordinator.check_offset_delete(GROUP, "order"), Ok(()));
    assert_eq!(
        coordinator.check_offset_delete("nobody", "orders"),
        Err(ErrorCode::GroupIdNotFound)
    );
}

#[test]
fn any_offset_of_an_empty_group_may_be_deleted() {
    let mut h = Harness::new(config());
    let formed = h.form_group_with(vec![consumer(&["orders"])]);
    h.coordinator.apply_commit(
        GROUP,
        vec![("orders".to_owned(), 0, offset(1, h.now_ms))],
        h.now_ms,
    );
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.coordinator.check_offset_delete(GROUP, "orders"), Ok(()));
}

#[test]
fn offset_delete_on_a_live_group_of_another_protocol_type_is_refused() {
    // Kafka's handleDeleteOffsets only inspects subscriptions of groups whose protocol type is
    // "consumer"; any other live group (Connect, Streams' own types, ...) answers
    // NON_EMPTY_GROUP, because the coordinator cannot tell what its members consume. Strom
    // treats such a group as subscribed to nothing and lets the offsets go.
    let mut h = Harness::new(config());
    h.form_group_with(vec![JoinRequest {
        protocol_type: "connect".to_owned(),
        protocols: vec![Protocol {
            name: "sessioned".to_owned(),
            metadata: subscription(&["orders"]),
        }],
        ..join(GROUP, "")
    }]);
    assert_eq!(
        h.coordinator.check_offset_delete(GROUP, "orders"),
        Err(ErrorCode::NonEmptyGroup)
    );
}

#[test]
fn offset_delete_with_unreadable_subscriptions_assumes_the_topic_is_consumed() {
    // Kafka's isSubscribedToTopic: "When the consumer group does not know, because the
    // information is not available yet or because it has failed to parse the Consumer
    // Protocol, it returns true to be safe" -> GROUP_SUBSCRIBED_TO_TOPIC. Strom lets the
    // offsets of a live consumer group be deleted when it cannot read a member's
    // subscription.
    let mut h = Harness::new(config());
    h.form_group_with(vec![JoinRequest {
        protocols: vec![Protocol {
            name: "range".to_owned(),
            metadata: Bytes::from_static(&[0, 0, 0, 0, 0, 9, 0]),
        }],
        ..join(GROUP, "")
    }]);
    assert_eq!(
        h.coordinator.check_offset_delete(GROUP, "orders"),
        Err(ErrorCode::GroupSubscribedToTopic)
    );
}

#[test]
fn offset_delete_before_the_first_generation_assumes_the_topic_is_consumed() {
    // Same rule as above: before the first generation has chosen a protocol Kafka does not
    // know the subscriptions and answers GROUP_SUBSCRIBED_TO_TOPIC. Strom reads the metadata
    // for protocol "" (none), finds no topics and allows the delete while a consumer that
    // subscribes to the topic is joining.
    let mut h = Harness::new(config());
    h.join(consumer(&["orders"]));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.coordinator.check_offset_delete(GROUP, "orders"),
        Err(ErrorCode::GroupSubscribedToTopic)
    );
}

#[test]
fn an_emptied_consumer_group_keeps_its_protocol_type() {
    // Kafka's initNextGeneration clears only the protocol name when the last member goes; the
    // protocol type stays, so ListGroups and DescribeGroups still say "consumer" and
    // AdminClient's GroupListing/ConsumerGroupDescription.isSimpleConsumerGroup() is false.
    // Strom reports "" and the group looks like a standalone consumer's. (Kafka's offset
    // expiry also tells the two apart by the protocol type.)
    let mut h = Harness::new(config());
    h.coordinator.apply_commit(
        GROUP,
        vec![("t".to_owned(), 0, offset(1, h.now_ms))],
        h.now_ms,
    );
    let formed = h.form_group(1);
    h.leave(&[(formed.leader.as_str(), None)]).unwrap();
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.describe().protocol_type, "consumer");
    assert_eq!(h.coordinator.list()[0].protocol_type, "consumer");
}
