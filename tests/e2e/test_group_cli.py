"""`strom group list|describe|reset-offsets|delete` against consumer groups of real clients.

A librdkafka (confluent-kafka) consumer joins a group (classic, and for describe also a KIP-848
consumer group), reads and commits; the CLI must then
list the group in its state, describe its member, assignment and per-partition lag, reset its
committed offsets in every mode (refused while the consumer is still a member), and delete it.
What the CLI reports is checked against what librdkafka itself sees: its member id, the
committed offsets it reads back, and where a re-subscribing consumer starts reading.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from strom_broker import STROM_BIN
from kafka_helpers import create_topic, produce_all, producer, unique, wait_until

CLI_TIMEOUT_S = 60
GROUP_SETTINGS = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture
def group_broker(start_broker):
    """A broker whose groups form at once (no initial rebalance delay)."""
    return start_broker(settings=GROUP_SETTINGS)


def strom(*args: str, bootstrap: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STROM_BIN, *args, "--bootstrap", bootstrap],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"`{' '.join(result.args[1:])}` exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def fails(result: subprocess.CompletedProcess, pattern: str) -> str:
    assert result.returncode != 0, f"`{' '.join(result.args[1:])}` succeeded:\n{result.stdout}"
    assert re.search(pattern, result.stderr), result.stderr
    return result.stderr


def table(output: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the table whose header starts with `first_column`, as dicts by header. Cells
    hold no spaces, except the last column, which takes the rest of the line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    header = lines[start].split()
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = line.split(None, len(header) - 1)
        rows.append(dict(zip(header, cells)))
    return rows


def partition_rows(output: str) -> dict[int, dict[str, str]]:
    return {int(row["PARTITION"]): row for row in table(output, "TOPIC")}


def listed(bootstrap: str, *states: str) -> dict[str, dict[str, str]]:
    args = ["group", "list"]
    for state in states:
        args += ["--state", state]
    return {row["GROUP"]: row for row in table(ok(strom(*args, bootstrap=bootstrap)), "GROUP")}


def group_consumer(bootstrap: str, group: str, topic: str, protocol: str = "classic") -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": protocol,
            "client.id": "e2e-group-cli",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([topic])
    return consumer


def read(consumer: Consumer, count: int, timeout_s: float = 30) -> list:
    """The next `count` messages (fails on an error or if they do not come in time)."""
    messages = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count:
        assert time.monotonic() < deadline, f"read {len(messages)} of {count} messages in {timeout_s} s"
        for message in consumer.consume(num_messages=count - len(messages), timeout=0.2):
            assert message.error() is None, message.error()
            messages.append(message)
    return messages


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """What librdkafka reads back as the group's committed offsets (-1001: none)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in found}
    finally:
        reader.close()


def wait_empty(bootstrap: str, group: str) -> None:
    wait_until(lambda: group in listed(bootstrap, "Empty"), 30, f"group {group} Empty")


def produce_to(bootstrap: str, topic: str, counts: dict[int, int], tag: str) -> None:
    records = [
        {"partition": partition, "key": f"{tag}-{i}".encode(), "value": f"{tag}-{partition}-{i}".encode()}
        for partition, count in counts.items()
        for i in range(count)
    ]
    produce_all(producer(bootstrap), topic, records)


def iso_utc(epoch_s: float, zone: str = "Z") -> str:
    """An instant as YYYY-MM-DDTHH:MM:SS.sss with `Z` or a +hh:mm zone."""
    if zone == "Z":
        moment = datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    sign = 1 if zone[0] == "+" else -1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    offset = datetime.timedelta(hours=hours, minutes=minutes) * sign
    moment = datetime.datetime.fromtimestamp(epoch_s, datetime.timezone(offset))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}{zone}"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_list_and_describe_show_members_and_lag(group_broker, protocol):
    """`protocol` is librdkafka's group.protocol: JoinGroup/SyncGroup, or KIP-848."""
    bs = group_broker.bootstrap
    topic, group = unique("grp-lag"), unique("grp-lag")
    create_topic(bs, topic, partitions=2)
    produce_to(bs, topic, {0: 10, 1: 6}, "a")

    consumer = group_consumer(bs, group, topic, protocol)
    try:
        read(consumer, 16)
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
        member_id = consumer.memberid()
        assert member_id

        groups = listed(bs)
        assert groups[group]["STATE"] == "Stable", groups
        assert groups[group]["PROTOCOL-TYPE"] == "consumer", groups
        assert group in listed(bs, "stable"), "--state is case-insensitive"
        assert group not in listed(bs, "Empty", "Dead")

        described = ok(strom("group", "describe", group, bootstrap=bs))
        assert re.search(r"^state: Stable$", described, re.MULTILINE), described
        assert re.search(rf"^type: {protocol}$", described, re.MULTILINE), described
        (member,) = table(described, "MEMBER-ID")
        assert member["MEMBER-ID"] == member_id, described
        assert member["CLIENT-ID"] == "e2e-group-cli", described
        assert member["ASSIGNMENT"] == f"{topic}:0,1", described
        rows = partition_rows(described)
        assert rows[0]["CURRENT-OFFSET"] == "4" and rows[0]["LOG-END-OFFSET"] == "10", described
        assert rows[0]["LAG"] == "6" and rows[0]["CONSUMER-ID"] == member_id, described
        # Assigned but never committed: shown, with no current offset and no lag.
        assert (rows[1]["CURRENT-OFFSET"], rows[1]["LOG-END-OFFSET"], rows[1]["LAG"]) == ("-", "6", "-")
    finally:
        consumer.close()

    wait_empty(bs, group)
    described = ok(strom("group", "describe", group, bootstrap=bs))
    assert "no active members" in described, described
    rows = partition_rows(described)
    assert list(rows) == [0], "only the committed partition once nobody owns any"
    assert (rows[0]["CURRENT-OFFSET"], rows[0]["LAG"], rows[0]["CONSUMER-ID"]) == ("4", "6", "-")

    # More records raise the lag.
    produce_to(bs, topic, {0: 3}, "b")
    rows = partition_rows(ok(strom("group", "describe", group, bootstrap=bs)))
    assert (rows[0]["LOG-END-OFFSET"], rows[0]["LAG"]) == ("13", "9")


def test_reset_offsets_in_every_mode(group_broker):
    bs = group_broker.bootstrap
    topic, group = unique("grp-reset"), unique("grp-reset")
    create_topic(bs, topic, partitions=2)
    produce_to(bs, topic, {0: 5, 1: 5}, "early")
    time.sleep(1.0)
    middle_s = time.time()
    time.sleep(1.0)
    produce_to(bs, topic, {0: 5, 1: 5}, "late")

    consumer = group_consumer(bs, group, topic)
    read(consumer, 20)
    consumer.commit(asynchronous=False)
    consumer.close()
    wait_empty(bs, group)
    assert committed(bs, group, topic, 2) == {0: 10, 1: 10}

    def reset(*how: str) -> dict[int, int]:
        out = ok(strom("group", "reset-offsets", group, "--topic", topic, *how, bootstrap=bs))
        return {p: int(row["NEW-OFFSET"]) for p, row in partition_rows(out).items()}

    assert reset("--to-earliest") == {0: 0, 1: 0}
    assert committed(bs, group, topic, 2) == {0: 0, 1: 0}
    assert reset("--to-latest") == {0: 10, 1: 10}
    assert committed(bs, group, topic, 2) == {0: 10, 1: 10}

    assert reset("--to-offset", "3") == {0: 3, 1: 3}
    assert committed(bs, group, topic, 2) == {0: 3, 1: 3}
    # Beyond the end: moved to the end, with a note.
    result = strom("group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset", "99", bootstrap=bs)
    assert {p: row["NEW-OFFSET"] for p, row in partition_rows(ok(result)).items()} == {1: "10"}
    assert "99" in result.stderr and "10" in result.stderr, result.stderr
    assert committed(bs, group, topic, 2) == {0: 3, 1: 10}, "only the listed partition moved"

    # The first offset at or after the moment between the two batches, in any zone.
    assert reset("--to-datetime", iso_utc(middle_s)) == {0: 5, 1: 5}
    assert committed(bs, group, topic, 2) == {0: 5, 1: 5}
    assert reset("--to-datetime", iso_utc(middle_s, "+05:30")) == {0: 5, 1: 5}
    assert reset("--to-datetime", "2000-01-01T00:00:00Z") == {0: 0, 1: 0}
    # Later than every record: the end.
    assert reset("--to-datetime", iso_utc(time.time() + 3600, "-02:00")) == {0: 10, 1: 10}

    # A dry run prints the plan and commits nothing.
    dry = strom("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--dry-run", bootstrap=bs)
    assert {p: row["NEW-OFFSET"] for p, row in partition_rows(ok(dry)).items()} == {0: "0", 1: "0"}
    assert committed(bs, group, topic, 2) == {0: 10, 1: 10}

    # After --to-earliest a consumer of the group reads everything again, from offset 0.
    reset("--to-earliest")
    consumer = group_consumer(bs, group, topic)
    try:
        messages = read(consumer, 20)
    finally:
        consumer.close()
    first = {}
    for message in messages:
        first.setdefault(message.partition(), message.offset())
    assert first == {0: 0, 1: 0}


def test_bad_reset_arguments_are_refused(group_broker):
    bs = group_broker.bootstrap
    topic, group = unique("grp-args"), unique("grp-args")
    create_topic(bs, topic, partitions=1)
    fails(strom("group", "reset-offsets", group, "--topic", unique("nothing"), "--to-earliest", bootstrap=bs),
          r"UNKNOWN_TOPIC_OR_PARTITION")
    fails(strom("group", "reset-offsets", group, "--topic", f"{topic}:4", "--to-earliest", bootstrap=bs),
          r"no partition 4")
    fails(strom("group", "reset-offsets", group, "--topic", topic, "--to-datetime", "yesterday", bootstrap=bs),
          r"YYYY-MM-DD")
    fails(strom("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--to-latest", bootstrap=bs),
          r"cannot be used with")
    fails(strom("group", "list", "--state", "running", bootstrap=bs), r"unknown group state")


def test_reset_offsets_is_refused_while_the_group_has_members(group_broker):
    bs = group_broker.bootstrap
    topic, group = unique("grp-busy"), unique("grp-busy")
    create_topic(bs, topic, partitions=1)
    produce_to(bs, topic, {0: 4}, "x")

    consumer = group_consumer(bs, group, topic)
    try:
        read(consumer, 4)
        consumer.commit(asynchronous=False)
        result = strom("group", "reset-offsets", group, "--topic", topic, "--to-earliest", bootstrap=bs)
        fails(result, rf"group '{group}' has active members; stop them first")
        assert "NEW-OFFSET" not in result.stdout
        assert committed(bs, group, topic, 1) == {0: 4}
        # A dry run still shows the plan, and warns.
        dry = strom("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--dry-run", bootstrap=bs)
        assert partition_rows(ok(dry))[0]["NEW-OFFSET"] == "0"
        assert "active member" in dry.stderr, dry.stderr
    finally:
        consumer.close()

    wait_empty(bs, group)
    ok(strom("group", "reset-offsets", group, "--topic", topic, "--to-earliest", bootstrap=bs))
    assert committed(bs, group, topic, 1) == {0: 0}


def test_delete_group(group_broker):
    bs = group_broker.bootstrap
    topic, group = unique("grp-del"), unique("grp-del")
    create_topic(bs, topic, partitions=1)
    produce_to(bs, topic, {0: 3}, "d")

    consumer = group_consumer(bs, group, topic)
    try:
        read(consumer, 3)
        consumer.commit(asynchronous=False)
        fails(strom("group", "delete", group, bootstrap=bs), r"NON_EMPTY_GROUP")
    finally:
        consumer.close()

    wait_empty(bs, group)
    ok(strom("group", "delete", group, bootstrap=bs))
    assert group not in listed(bs)
    assert committed(bs, group, topic, 1)[0] < 0, "the committed offsets went with the group"
    fails(strom("group", "delete", group, bootstrap=bs), r"GROUP_ID_NOT_FOUND.*strom group list")
    fails(strom("group", "describe", group, bootstrap=bs), r"GROUP_ID_NOT_FOUND")
