"""Client quotas (issue 13, KIP-546): DescribeClientQuotas and AlterClientQuotas through
`strom quota` (neither Python client has the quota APIs), Kafka's validation errors through raw
requests, and enforcement: a producer limited to 1 MiB/s and a consumer limited to 2 MiB/s
measure within 10% of their limits over 20 s, while an unlimited producer on the same broker
runs at many times that; `controller_mutation_rate` refuses the topic asked for past the quota
with THROTTLING_QUOTA_EXCEEDED (kafka-python, strict mode) and lets the client create again
once the rate falls; `request_percentage` throttles and mutes a client hammering Metadata while
another client id is never throttled.
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import raw_kafka as rk
from kafka_helpers import create_topic, produce_all, producer, unique
from strom_broker import STROM_BIN

MIB = 1024 * 1024
DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49


def strom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"`strom {' '.join(result.args[1:])}`: {result.stdout}{result.stderr}"
    return result.stdout


def quota_rows(bootstrap: str, *entity: str) -> set[tuple[str, str, str, float]]:
    out = ok(strom("quota", "describe", *entity, "--bootstrap", bootstrap))
    rows = set()
    for line in out.splitlines()[1:]:
        user, client, key, value = line.split()
        rows.add((user, client, key, float(value)))
    return rows


def test_quotas_are_altered_and_described(broker):
    bs = ["--bootstrap", broker.bootstrap]
    ok(strom("quota", "alter", "--user", "alice", "--set", "producer_byte_rate=1048576", *bs))
    ok(strom("quota", "alter", "--user", "alice", "--client-id", "app", "--set", "consumer_byte_rate=2000", *bs))
    ok(strom("quota", "alter", "--client-defaults", "--set", "request_percentage=12.5", *bs))
    assert quota_rows(broker.bootstrap) == {
        ("alice", "-", "producer_byte_rate", 1048576.0),
        ("alice", "app", "consumer_byte_rate", 2000.0),
        ("-", "<default>", "request_percentage", 12.5),
    }
    # A filter on one entity is strict: alice alone, not alice with a client id.
    assert quota_rows(broker.bootstrap, "--user", "alice") == {("alice", "-", "producer_byte_rate", 1048576.0)}
    ok(strom("quota", "alter", "--user", "alice", "--delete", "producer_byte_rate", *bs))
    assert ("alice", "-", "producer_byte_rate", 1048576.0) not in quota_rows(broker.bootstrap)
    # Survives a restart (the metadata log).
    broker.restart()
    assert ("alice", "app", "consumer_byte_rate", 2000.0) in quota_rows(broker.bootstrap)


def alter_request(entity: list[tuple[str, str | None]], ops: list[tuple[str, float, bool]]) -> bytes:
    """AlterClientQuotas v0 (non-flexible) of one entry."""
    entity_bytes = struct.pack(">i", len(entity)) + b"".join(
        rk.string(t.encode()) + rk.string(None if n is None else n.encode()) for t, n in entity
    )
    op_bytes = struct.pack(">i", len(ops)) + b"".join(
        rk.string(k.encode()) + struct.pack(">d?", v, remove) for k, v, remove in ops
    )
    body = struct.pack(">i", 1) + entity_bytes + op_bytes + struct.pack(">?", False)
    return rk.request(ALTER_CLIENT_QUOTAS, 0, 5, body, flexible=False)


def alter_error(bootstrap: str, entity, ops) -> tuple[str | None, str | None]:
    sock = rk.connect(bootstrap)
    try:
        sock.sendall(alter_request(entity, ops))
        payload = rk.read_response(sock, timeout_s=20)
    finally:
        sock.close()
    # correlation id, throttle, entries count, then the first entry's error code and message.
    (code,) = struct.unpack_from(">h", payload, 12)
    message, _ = rk.read_string(payload, 14)
    return (None if code == 0 else KafkaError(code).name(), None if message is None else message.decode())


def test_bad_quota_changes_are_refused_with_kafkas_errors(broker):
    cases = [
        ([("user", "bob")], [("producer_byte_rate", 1.5, False)], "producer_byte_rate cannot be a fractional value."),
        ([("user", "bob")], [("producer_byte_rate", 0.0, False)], "Quota producer_byte_rate must be greater than 0"),
        ([("user", "bob")], [("no_such_quota", 1.0, False)], "Invalid configuration key no_such_quota"),
        ([], [("producer_byte_rate", 1.0, False)], "Invalid empty client quota entity"),
        ([("user", "a"), ("user", "b")], [("producer_byte_rate", 1.0, False)],
         "Invalid client quota entity, duplicate entity entry user"),
        ([("group", "g")], [("producer_byte_rate", 1.0, False)], "Unhandled client quota entity type: group"),
    ]
    for entity, ops, message in cases:
        assert alter_error(broker.bootstrap, entity, ops) == ("INVALID_REQUEST", message), (entity, ops)
    assert quota_rows(broker.bootstrap) == set()


def produce_for(bootstrap: str, topic: str, client_id: str, seconds: float, out: dict) -> None:
    """Produces 1 KiB records as fast as the broker lets it for `seconds`; out['bytes'] is the
    value bytes acknowledged, out['seconds'] the time taken."""
    acked = [0]

    def delivered(error, message):
        if error is None:
            acked[0] += len(message.value())

    p = Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5, "compression.type": "none",
        "queue.buffering.max.kbytes": 4096, "acks": "1",
    })
    value = b"q" * 1024
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, value, partition=0, on_delivery=delivered)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    out["bytes"] = acked[0]
    out["seconds"] = time.monotonic() - start


def test_byte_rate_quotas_are_enforced_and_spare_other_clients(broker):
    bs = ["--bootstrap", broker.bootstrap]
    ok(strom("quota", "alter", "--client-id", "limited-producer", "--set", f"producer_byte_rate={MIB}", *bs))
    ok(strom("quota", "alter", "--client-id", "limited-consumer", "--set", f"consumer_byte_rate={2 * MIB}", *bs))
    limited, free = unique("quota-limited"), unique("quota-free")
    create_topic(broker.bootstrap, limited)
    create_topic(broker.bootstrap, free)

    limited_out, free_out = {}, {}
    threads = [
        threading.Thread(target=produce_for, args=(broker.bootstrap, limited, "limited-producer", 20, limited_out)),
        threading.Thread(target=produce_for, args=(broker.bootstrap, free, "free-producer", 10, free_out)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    limited_rate = limited_out["bytes"] / limited_out["seconds"]
    free_rate = free_out["bytes"] / free_out["seconds"]
    print(f"limited producer: {limited_rate / MIB:.3f} MiB/s, unlimited: {free_rate / MIB:.1f} MiB/s")
    assert abs(limited_rate - MIB) <= 0.1 * MIB, f"{limited_rate / MIB:.3f} MiB/s against a 1 MiB/s quota"
    assert free_rate > 5 * MIB, f"the unlimited producer ran at {free_rate / MIB:.2f} MiB/s"

    # The consumer reads the unlimited producer's topic (tens of MiB) for 20 s.
    c = Consumer({
        "bootstrap.servers": broker.bootstrap, "client.id": "limited-consumer", "group.id": unique("quota-group"),
        "enable.auto.commit": False,
    })
    try:
        c.assign([TopicPartition(free, 0, 0)])
        consumed, start = 0, time.monotonic()
        while time.monotonic() - start < 20:
            for message in c.consume(num_messages=1000, timeout=0.2):
                if message.error() is None:
                    consumed += len(message.value())
        rate = consumed / (time.monotonic() - start)
    finally:
        c.close()
    print(f"limited consumer: {rate / MIB:.3f} MiB/s")
    assert consumed < free_out["bytes"], "the consumer read everything: the quota did not hold it back"
    assert abs(rate - 2 * MIB) <= 0.2 * MIB, f"{rate / MIB:.3f} MiB/s against a 2 MiB/s quota"


# -- controller_mutation_rate and request_percentage ----------------------------------------------

THROTTLING_QUOTA_EXCEEDED = 89
METADATA = 3


def create_errors(bootstrap: str, client_id: str, names: list[str], partitions: int) -> dict[str, int]:
    """CreateTopics through kafka-python (the newest version both speak: strict mode)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=20000)
    try:
        result = admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1} for name in names}, raise_errors=False
        )
    finally:
        admin.close()
    return {topic["name"]: topic["error_code"] for topic in result["topics"]}


def test_controller_mutation_rate_refuses_topics_past_the_quota(broker):
    ok(strom("quota", "alter", "--client-id", "mutator", "--set", "controller_mutation_rate=10",
             "--bootstrap", broker.bootstrap))
    names = [unique("mutation") for _ in range(3)]
    # 10 partitions are within 10/s; 20 are over, but the topic that takes the rate over is
    # still accepted (Kafka's strict mode); the next one is refused.
    errors = create_errors(broker.bootstrap, "mutator", names, 10)
    assert errors == {names[0]: 0, names[1]: 0, names[2]: THROTTLING_QUOTA_EXCEEDED}, errors
    # Another client id has no quota.
    free = [unique("free") for _ in range(3)]
    assert set(create_errors(broker.bootstrap, "free", free, 10).values()) == {0}
    # Once the rate is back under the quota (20 partitions over the 11 s window), it may
    # create again.
    deadline = time.monotonic() + 30
    while True:
        retry = create_errors(broker.bootstrap, "mutator", [names[2]], 1)
        if retry[names[2]] == 0:
            break
        assert retry[names[2]] == THROTTLING_QUOTA_EXCEEDED, retry
        assert time.monotonic() < deadline, "the mutation quota never let the client create again"
        time.sleep(1)


def test_request_percentage_throttles_a_busy_client_only(broker):
    ok(strom("quota", "alter", "--client-id", "busy", "--set", "request_percentage=0.5",
             "--bootstrap", broker.bootstrap))
    # Enough topics that a Metadata answer takes a measurable time to build.
    for _ in range(20):
        create_topic(broker.bootstrap, unique("meta"), partitions=8)

    def hammer(client_id: str, seconds: float) -> tuple[int, int]:
        """Metadata requests one after another for `seconds`: (answered, largest throttle ms)."""
        sock = rk.connect(broker.bootstrap)
        answered, throttle_max = 0, 0
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                header = rk.request_header(METADATA, 9, answered, True, client_id=client_id.encode())
                # topics null (all), no auto-create, no authorized operations, no tags.
                body = b"\x00" + struct.pack(">???", False, False, False) + b"\x00"
                sock.sendall(rk.frame(header + body))
                payload = rk.read_response(sock, timeout_s=20)
                assert payload is not None, "no answer"
                # correlation id, header tags (flexible), then throttle_time_ms.
                (throttle,) = struct.unpack_from(">i", payload, 5)
                throttle_max = max(throttle_max, throttle)
                answered += 1
        finally:
            sock.close()
        return answered, throttle_max

    busy, busy_throttle = hammer("busy", 4.0)
    free, free_throttle = hammer("free", 4.0)
    assert busy_throttle > 0, "the busy client was never throttled"
    assert free_throttle == 0
    # Muted while throttled, the busy client gets far fewer answers than an unlimited one.
    assert busy * 3 < free, (busy, free)
