"""The `strom` command-line tools against a running broker.

`strom topic create|list|describe|delete`, `strom produce` (lines from stdin, key and value
split at a separator) and `strom consume --from-beginning --print-key --print-offset`, checked
both against each other and against a real client (librdkafka). Errors are reported by their
Kafka name with a non-zero exit code.

A subcommand that still says "not implemented yet" makes its test xfail; any other failure fails.
"""

from __future__ import annotations

import functools
import re
import subprocess

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from strom_broker import STROM_BIN, free_port
from kafka_helpers import (
    describe_configs,
    consume_range,
    create_topic,
    list_topic_names,
    produce_all,
    producer,
    topic_partitions,
    unique,
    wait_until,
)

CLI_TIMEOUT_S = 60


@functools.cache
def stub_message(subcommand: str) -> str | None:
    """The error a subcommand gives while it is still a stub ("... not implemented yet"), else
    None. A stub takes no arguments, so its bare invocation is what tells."""
    result = subprocess.run(
        [STROM_BIN, subcommand], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    return result.stderr.strip() if "not implemented yet" in result.stderr else None


def strom(*args: str, stdin: str | None = None, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    stub = stub_message(args[0])
    if stub is not None:
        pytest.xfail(f"`strom {args[0]}` is still a stub: {stub}")
    result = subprocess.run(
        [STROM_BIN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if "not implemented yet" in result.stderr:
        pytest.xfail(f"`strom {args[0]}` is not implemented yet: {result.stderr.strip()}")
    return result


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"`{' '.join(result.args[1:])}` exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def test_topic_create_list_describe_delete(broker):
    bs = broker.bootstrap
    topic = unique("cli-topic")
    ok(strom("topic", "create", topic, "--partitions", "3", "--config", "retention.ms=60000", "--bootstrap", bs))
    assert len(topic_partitions(bs, topic)) == 3
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = describe_configs(bs, resource)
    assert configs["retention.ms"].value == "60000"

    listed = ok(strom("topic", "list", "--bootstrap", bs))
    assert topic in listed.split(), listed

    described = ok(strom("topic", "describe", topic, "--bootstrap", bs))
    assert topic in described
    for partition in range(3):
        assert re.search(rf"\b{partition}\b", described), described
    assert "retention.ms" in described and "60000" in described, described

    ok(strom("topic", "delete", topic, "--bootstrap", bs))
    wait_until(lambda: topic not in list_topic_names(bs), 20, f"{topic} deleted")
    listed = ok(strom("topic", "list", "--bootstrap", bs))
    assert topic not in listed.split()


def test_topic_create_existing_fails_by_name(broker):
    bs = broker.bootstrap
    topic = unique("cli-dup")
    create_topic(bs, topic)
    result = strom("topic", "create", topic, "--bootstrap", bs)
    assert result.returncode != 0, result.stdout
    assert re.search(r"topic.?already.?exists", result.stderr, re.IGNORECASE), result.stderr


def test_topic_delete_unknown_fails_by_name(broker):
    result = strom("topic", "delete", unique("cli-nothing"), "--bootstrap", broker.bootstrap)
    assert result.returncode != 0, result.stdout
    assert re.search(r"unknown.?topic", result.stderr, re.IGNORECASE), result.stderr


def test_unreachable_broker_fails():
    result = strom("topic", "list", "--bootstrap", f"127.0.0.1:{free_port()}", timeout_s=60)
    assert result.returncode != 0


def consume_lines(bs: str, topic: str, count: int) -> list[str]:
    out = ok(
        strom(
            "consume", topic, "--bootstrap", bs, "--from-beginning", "--print-key", "--print-offset",
            "--max-messages", str(count),
        )
    )
    return [line for line in out.splitlines() if line.strip()]


def assert_printed(lines: list[str], expected: list[tuple[int, str, str]]) -> None:
    """Each (offset, key, value) is printed on one line of its own, in offset order."""
    assert len(lines) == len(expected), lines
    for line, (offset, key, value) in zip(lines, expected):
        assert re.search(rf"(^|\D){offset}(\D|$)", line), f"offset {offset} not in {line!r}"
        assert key in line and value in line, f"{key!r}/{value!r} not in {line!r}"
        assert line.index(key) < line.rindex(value), f"key after value in {line!r}"


def test_produce_consume_round_trip(broker):
    bs = broker.bootstrap
    topic = unique("cli-data")
    create_topic(bs, topic)
    lines = [f"key-{i}:value number {i}" for i in range(20)]
    ok(strom("produce", topic, "--bootstrap", bs, "--key-separator", ":", stdin="\n".join(lines) + "\n"))

    # A real client sees exactly those records.
    records = consume_range(bs, topic, 0, 0, 20)
    assert [(r.key, r.value) for r in records] == [
        (f"key-{i}".encode(), f"value number {i}".encode()) for i in range(20)
    ]
    # And strom consume prints them.
    printed = consume_lines(bs, topic, 20)
    assert_printed(printed, [(i, f"key-{i}", f"value number {i}") for i in range(20)])


def test_consume_prints_what_a_client_produced(broker):
    bs = broker.bootstrap
    topic = unique("cli-read")
    create_topic(bs, topic)
    produce_all(producer(bs), topic, [{"key": b"k%d" % i, "value": b"from-librdkafka-%d" % i} for i in range(5)])
    printed = consume_lines(bs, topic, 5)
    assert_printed(printed, [(i, f"k{i}", f"from-librdkafka-{i}") for i in range(5)])
