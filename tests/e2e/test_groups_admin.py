"""Group administration through AdminClient (librdkafka) and kafka-python's KafkaAdminClient:
ListGroups (with a state filter), DescribeGroups, DeleteGroups, OffsetFetch, OffsetCommit from
outside the group (alter offsets), OffsetDelete, and the commit metadata size limit.

The errors are Kafka's: deleting a group with members is NON_EMPTY_GROUP, deleting an unknown
group GROUP_ID_NOT_FOUND, altering offsets of a group with members UNKNOWN_MEMBER_ID, deleting
offsets of a topic the group's members subscribe to GROUP_SUBSCRIBED_TO_TOPIC, and a commit
whose metadata is longer than offset.metadata.max.bytes OFFSET_METADATA_TOO_LARGE.
"""

from __future__ import annotations

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import GroupIdNotFoundError, OffsetMetadataTooLargeError
from kafka.structs import OffsetAndMetadata

from group_helpers import (
    NO_REBALANCE_DELAY,
    Member,
    admin,
    committed_offsets,
    describe_group,
    group_assignment,
    group_consumer,
    state_name,
    stop_all,
    wait_until,
)
from kafka_helpers import create_topic, list_topic_names, produce_all, producer, unique

PARTITIONS = 4
OFFSET_INVALID = -1001


def list_groups(bootstrap: str, states=None) -> dict[str, object]:
    """{group id: ConsumerGroupListing}; fails on any error."""
    kwargs = {"request_timeout": 10}
    if states is not None:
        kwargs["states"] = set(states)
    client = admin(bootstrap)  # must outlive its future (else _DESTROY)
    result = client.list_consumer_groups(**kwargs).result(timeout=20)
    assert not result.errors, result.errors
    return {listing.group_id: listing for listing in result.valid}


def commit_only(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commits without joining (a "simple" group that only stores offsets)."""
    consumer = group_consumer(bootstrap, group)
    try:
        result = consumer.commit(offsets=offsets, asynchronous=False)
        assert all(tp.error is None for tp in result), result
    finally:
        consumer.close()


def error_code_of(call) -> int:
    with pytest.raises(KafkaException) as raised:
        call()
    return raised.value.args[0].code()


@pytest.fixture
def active_group(start_broker):
    """A broker, a 4-partition topic with 10 records per partition, and a group of two
    running members that read and committed everything."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("admin"), unique("active")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    produce_all(producer(broker.bootstrap), topic,
                [{"value": b"v%d" % n, "partition": n % PARTITIONS} for n in range(10 * PARTITIONS)])
    members = [Member(broker.bootstrap, group, [topic], name=f"admin-member-{i}", commit_each=True).start()
               for i in range(2)]

    def settled():
        description = describe_group(broker.bootstrap, group)
        return (state_name(description) == "STABLE" and len(description.members) == 2
                and committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 10 for p in range(PARTITIONS)}
                and all(len(m.snapshot()[2]) == 2 for m in members))

    wait_until(settled, 30, lambda: f"two stable members that committed everything: {describe_group(broker.bootstrap, group)}")
    try:
        yield broker, topic, group, members
    finally:
        stop_all(members)


def test_list_consumer_groups_with_state_filter(active_group):
    broker, topic, active, members = active_group
    # A group whose member left (Empty, protocol type "consumer"), and one that only stores
    # offsets and never joined (Empty, no protocol type: a "simple" group).
    left, simple = unique("left"), unique("simple")
    member = Member(broker.bootstrap, left, [topic], name="leaver", commit_each=True).start()
    wait_until(lambda: committed_offsets(broker.bootstrap, left, topic, PARTITIONS) == {p: 10 for p in range(PARTITIONS)},
               30, "the leaver committed everything")
    member.stop()
    commit_only(broker.bootstrap, simple, [TopicPartition(topic, 0, 3)])
    wait_until(lambda: state_name(describe_group(broker.bootstrap, left)) == "EMPTY", 10, "the left group is Empty")

    everything = list_groups(broker.bootstrap)
    assert set(everything) == {active, left, simple}
    assert everything[active].state == ConsumerGroupState.STABLE
    assert everything[left].state == ConsumerGroupState.EMPTY
    assert everything[simple].state == ConsumerGroupState.EMPTY
    assert not everything[active].is_simple_consumer_group
    assert not everything[left].is_simple_consumer_group
    assert everything[simple].is_simple_consumer_group

    assert set(list_groups(broker.bootstrap, {ConsumerGroupState.STABLE})) == {active}
    assert set(list_groups(broker.bootstrap, {ConsumerGroupState.EMPTY})) == {left, simple}
    assert set(list_groups(broker.bootstrap, {ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY})) == {active, left, simple}
    assert set(list_groups(broker.bootstrap, {ConsumerGroupState.PREPARING_REBALANCING})) == set()

    # kafka-python's ListGroups (with its own state filter) agrees.
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        listed = client.list_groups(states_filter=["Stable"])
        assert [(g["group_id"], g["group_state"], g["protocol_type"]) for g in listed] == [
            (active, "Stable", "consumer")], listed
        listed = client.list_groups(states_filter=["Empty"])
        assert sorted(g["group_id"] for g in listed) == sorted([left, simple]), listed
    finally:
        client.close()


def test_group_whose_members_left_keeps_its_protocol_type(active_group):
    """Kafka keeps an Empty group's protocol type ("consumer"): it is not a "simple" group."""
    broker, topic, group, members = active_group
    stop_all(members)
    wait_until(lambda: state_name(describe_group(broker.bootstrap, group)) == "EMPTY", 10, "the group is Empty")
    # librdkafka derives is_simple_consumer_group from an empty protocol type.
    assert not list_groups(broker.bootstrap)[group].is_simple_consumer_group
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        assert client.describe_groups([group])[group]["protocol_type"] == "consumer"
    finally:
        client.close()


def test_describe_consumer_groups(active_group):
    broker, topic, group, members = active_group
    description = describe_group(broker.bootstrap, group)
    assert description.group_id == group
    assert state_name(description) == "STABLE"
    assert not description.is_simple_consumer_group
    assert description.partition_assignor == "range"
    assert description.coordinator.id == 1 and description.coordinator.port == broker.port
    by_client = {m.client_id: m for m in description.members}
    assert set(by_client) == {"admin-member-0", "admin-member-1"}
    for member in members:
        described = by_client[member.name]
        assert described.member_id == member.generation_now()[1]
        assert described.group_instance_id is None
        assert {(tp.topic, tp.partition) for tp in described.assignment.topic_partitions} == \
            {(topic, p) for p in member.snapshot()[2]}
    assert sorted(p for parts in group_assignment(description, topic).values() for p in parts) == list(range(PARTITIONS))

    # After both leave: Empty, no members, offsets kept.
    stop_all(members)
    description = wait_until(lambda: (d := describe_group(broker.bootstrap, group)) and state_name(d) == "EMPTY" and d,
                             10, "the group is Empty after its members left")
    assert description.members == []
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 10 for p in range(PARTITIONS)}

    # A group the broker never heard of is described as Dead with no members (no error).
    unknown = describe_group(broker.bootstrap, unique("unknown"))
    assert unknown.state == ConsumerGroupState.DEAD and unknown.members == []


def test_describe_shows_member_host(active_group):
    broker, topic, group, members = active_group
    description = describe_group(broker.bootstrap, group)
    # Kafka shows the address the member connected from, as "/127.0.0.1".
    assert [m.host.lstrip("/") for m in description.members] == ["127.0.0.1", "127.0.0.1"]


def test_delete_consumer_groups(active_group):
    broker, topic, group, members = active_group
    client = admin(broker.bootstrap)

    def delete(name):
        return client.delete_consumer_groups([name], request_timeout=10)[name].result(timeout=20)

    assert error_code_of(lambda: delete(group)) == KafkaError.NON_EMPTY_GROUP
    assert group in list_groups(broker.bootstrap)
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: 10 for p in range(PARTITIONS)}

    stop_all(members)
    wait_until(lambda: state_name(describe_group(broker.bootstrap, group)) == "EMPTY", 10, "the group is Empty")
    delete(group)
    assert group not in list_groups(broker.bootstrap)
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {p: OFFSET_INVALID for p in range(PARTITIONS)}
    assert state_name(describe_group(broker.bootstrap, group)) == "DEAD"
    assert error_code_of(lambda: delete(group)) == KafkaError.GROUP_ID_NOT_FOUND

    # The group id can be used again from scratch: a new member starts at the earliest offset.
    consumer = group_consumer(broker.bootstrap, group)
    consumer.subscribe([topic])
    try:
        first = wait_until(lambda: (m := consumer.poll(0.2)) is not None and m.error() is None and m, 30,
                           "a record for the reborn group")
        assert first.offset() == 0
    finally:
        consumer.close()


def test_list_and_alter_consumer_group_offsets(active_group):
    broker, topic, group, members = active_group
    client = admin(broker.bootstrap)

    def list_offsets(name, partitions=None):
        request = ConsumerGroupTopicPartitions(name, partitions)
        result = client.list_consumer_group_offsets([request], request_timeout=10)[name].result(timeout=20)
        return {(tp.topic, tp.partition): (tp.offset, tp.metadata, tp.error) for tp in result.topic_partitions}

    def alter(name, partitions):
        request = ConsumerGroupTopicPartitions(name, partitions)
        result = client.alter_consumer_group_offsets([request], request_timeout=10)[name].result(timeout=20)
        return {(tp.topic, tp.partition): tp.error for tp in result.topic_partitions}

    # Every committed offset of the group, and a chosen subset (plus one never committed).
    assert list_offsets(group) == {(topic, p): (10, None, None) for p in range(PARTITIONS)}
    other_topic = unique("other")
    create_topic(broker.bootstrap, other_topic, partitions=1)
    subset = list_offsets(group, [TopicPartition(topic, 1), TopicPartition(other_topic, 0)])
    assert subset == {(topic, 1): (10, None, None), (other_topic, 0): (OFFSET_INVALID, None, None)}

    # Altering the offsets of a group with members is refused (the commit is not a member's).
    errors = alter(group, [TopicPartition(topic, 0, 2)])
    assert errors[(topic, 0)] is not None and errors[(topic, 0)].code() == KafkaError.UNKNOWN_MEMBER_ID, errors
    assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS)[0] == 10

    # Once it is empty, they can be altered, with metadata, and a new member resumes there.
    stop_all(members)
    wait_until(lambda: state_name(describe_group(broker.bootstrap, group)) == "EMPTY", 10, "the group is Empty")
    errors = alter(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 3, 7, metadata="rewound")])
    assert errors == {(topic, 0): None, (topic, 3): None}
    assert list_offsets(group) == {
        (topic, 0): (2, None, None), (topic, 1): (10, None, None),
        (topic, 2): (10, None, None), (topic, 3): (7, "rewound", None),
    }
    consumer = group_consumer(broker.bootstrap, group)
    consumer.subscribe([topic])
    read = {}
    try:
        def got_everything():
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                read.setdefault(message.partition(), []).append(message.offset())
            return len(read.get(0, [])) == 8 and len(read.get(3, [])) == 3

        wait_until(got_everything, 30, lambda: f"records from the altered offsets: {read}")
    finally:
        consumer.close()
    assert read == {0: list(range(2, 10)), 3: [7, 8, 9]}


def test_delete_offsets_with_kafka_python(active_group):
    broker, topic, group, members = active_group
    # Offsets of a topic the members do not subscribe to can go while they run.
    other_topic = unique("unsubscribed")
    create_topic(broker.bootstrap, other_topic, partitions=1)
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
    try:
        # Committed by a member: the only way while the group has members.
        result = members[0].call(lambda c: c.commit(offsets=[TopicPartition(other_topic, 0, 1)], asynchronous=False))
        assert all(tp.error is None for tp in result), result
        assert committed_offsets(broker.bootstrap, group, other_topic, 1) == {0: 1}

        subscribed = client.delete_group_offsets(group, [KpTopicPartition(topic, 0)])
        assert {tp: e.__name__ for tp, e in subscribed.items()} == {
            KpTopicPartition(topic, 0): "GroupSubscribedToTopicError"}
        assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS)[0] == 10

        unsubscribed = client.delete_group_offsets(group, [KpTopicPartition(other_topic, 0)])
        assert {tp: e.__name__ for tp, e in unsubscribed.items()} == {KpTopicPartition(other_topic, 0): "NoError"}
        assert committed_offsets(broker.bootstrap, group, other_topic, 1) == {0: OFFSET_INVALID}

        # Once the group is empty, offsets of its former topic go too, partition by partition.
        stop_all(members)
        wait_until(lambda: state_name(describe_group(broker.bootstrap, group)) == "EMPTY", 10, "the group is Empty")
        deleted = client.delete_group_offsets(group, [KpTopicPartition(topic, 0), KpTopicPartition(topic, 2)])
        assert {tp.partition: e.__name__ for tp, e in deleted.items()} == {0: "NoError", 2: "NoError"}
        assert committed_offsets(broker.bootstrap, group, topic, PARTITIONS) == {
            0: OFFSET_INVALID, 1: 10, 2: OFFSET_INVALID, 3: 10}
        # An unknown group is GROUP_ID_NOT_FOUND (a top-level error).
        with pytest.raises(GroupIdNotFoundError):
            client.delete_group_offsets(unique("nobody"), [KpTopicPartition(topic, 0)])
    finally:
        client.close()


@pytest.mark.parametrize("limit", [None, 100])
def test_offset_metadata_too_large(start_broker, limit):
    settings = dict(NO_REBALANCE_DELAY)
    if limit is not None:
        settings["offset.metadata.max.bytes"] = limit
    broker = start_broker(settings=settings)
    limit = limit or 4096  # Kafka's default offset.metadata.max.bytes
    topic, group = unique("metadata"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=1)

    # kafka-python sends the metadata string as it is: exactly the limit is accepted, one
    # byte more refused, and the refused commit leaves the committed offset alone.
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        consumer.commit({tp: OffsetAndMetadata(5, "m" * limit, -1)})
        with pytest.raises(OffsetMetadataTooLargeError):
            consumer.commit({tp: OffsetAndMetadata(9, "m" * (limit + 1), -1)})
        stored = consumer.committed(tp, metadata=True)
        assert (stored.offset, stored.metadata) == (5, "m" * limit)
    finally:
        consumer.close()

    # librdkafka (confluent-kafka) sends the string with its terminating NUL byte, so `limit`
    # characters are limit + 1 bytes on the wire: refused.
    consumer = group_consumer(broker.bootstrap, group)
    try:
        code = error_code_of(lambda: consumer.commit(
            offsets=[TopicPartition(topic, 0, 9, metadata="m" * limit)], asynchronous=False))
        assert code == KafkaError.OFFSET_METADATA_TOO_LARGE
        (stored,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert stored.offset == 5, "the refused commit changed the offset"
    finally:
        consumer.close()

    # The same limit applies to an admin's alter offsets.
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 9, metadata="m" * (limit + 1))])
    client = admin(broker.bootstrap)
    try:
        result = client.alter_consumer_group_offsets([request], request_timeout=10)[group].result(timeout=20)
        errors = [tp.error for tp in result.topic_partitions]
    except KafkaException as error:
        errors = [error.args[0]]
    assert [e.code() if e is not None else None for e in errors] == [KafkaError.OFFSET_METADATA_TOO_LARGE]
    assert committed_offsets(broker.bootstrap, group, topic, 1) == {0: 5}


def test_commit_for_unknown_topic_or_partition(start_broker):
    """Kafka refuses commits for partitions that do not exist, and does not create the topic."""
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("known"), unique("group")
    create_topic(broker.bootstrap, topic, partitions=2)
    missing_topic = unique("missing")
    consumer = group_consumer(broker.bootstrap, group)
    try:
        for offset in (TopicPartition(missing_topic, 0, 3), TopicPartition(topic, 2, 3)):
            code = error_code_of(lambda: consumer.commit(offsets=[offset], asynchronous=False))
            assert code == KafkaError.UNKNOWN_TOPIC_OR_PART, offset
        result = consumer.commit(offsets=[TopicPartition(topic, 1, 3)], asynchronous=False)
        assert all(tp.error is None for tp in result), result
    finally:
        consumer.close()
    assert committed_offsets(broker.bootstrap, group, topic, 2) == {0: OFFSET_INVALID, 1: 3}
    assert missing_topic not in list_topic_names(broker.bootstrap)
