"""Small helpers over confluent-kafka (librdkafka) shared by the end-to-end tests.

Everything here is bounded in time: waits poll with a deadline and raise when it passes.
Consumers never use consumer groups (Strom has no group coordinator yet): they `assign()`
explicit partitions and offsets, and never commit.

Helpers that open a client take librdkafka properties as `**conf`, with dotted names passed as a
dict (`**{"security.protocol": "SASL_SSL", ...}`, see security_helpers.ClientSecurity), for
brokers whose listeners need TLS or SASL.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TIMEOUT_S = 30.0


def wait_until(predicate, timeout_s: float, message: str, interval_s: float = 0.05):
    """Calls predicate until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - reported if the deadline passes
            last_error = error
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s} s: {message}{suffix}")
        time.sleep(interval_s)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- clients ----------------------------------------------------------------------------


def conf_key(key: str) -> str:
    """A librdkafka property name from a keyword (`linger_ms` -> `linger.ms`); names with a dot
    and callbacks (`error_cb`, `oauth_cb`, ...) are taken as they are."""
    return key if "." in key or key.endswith("_cb") else key.replace("_", ".")


def admin_client(bootstrap: str, **conf) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **conf})


def admin_request(bootstrap: str, call, timeout_s: float = DEFAULT_TIMEOUT_S, **conf):
    """call(admin) returns a future or a dict of futures; waits until all are done and returns
    them. The AdminClient must outlive its futures: one garbage-collected early fails them with
    _DESTROY, hence this wrapper instead of `admin_client(b).op(...)[k].result()`."""
    admin = admin_client(bootstrap, **conf)
    result = call(admin)
    futures = list(result.values()) if isinstance(result, dict) else [result]
    _, pending = concurrent.futures.wait(futures, timeout=timeout_s)
    assert not pending, f"admin request still pending after {timeout_s} s"
    return result


def describe_configs(bootstrap: str, resource, **conf) -> dict:
    """{name: ConfigEntry} of one ConfigResource."""
    return admin_request(bootstrap, lambda a: a.describe_configs([resource], request_timeout=20), **conf)[
        resource
    ].result()


def delete_topic(bootstrap: str, name: str, **conf) -> None:
    admin_request(bootstrap, lambda a: a.delete_topics([name], request_timeout=20), **conf)[name].result()


def producer(bootstrap: str, **conf) -> Producer:
    """A librdkafka producer; acks=all and no idempotence (Strom has no InitProducerId yet)."""
    base = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
        "message.timeout.ms": 30000,
    }
    base.update({conf_key(k): v for k, v in conf.items()})
    return Producer(base)


def consumer(bootstrap: str, **conf) -> Consumer:
    """A librdkafka consumer for assign() use: a throwaway group id it never uses, no commits.

    confluent-kafka insists on a group.id even when partitions are assigned by hand.
    """
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": unique("e2e-unused-group"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        # Verify every batch's CRC-32C: corrupt data must surface as an error, not as records.
        "check.crcs": True,
    }
    base.update({conf_key(k): v for k, v in conf.items()})
    return Consumer(base)


# -- topics -----------------------------------------------------------------------------


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    config: dict | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **conf,
) -> None:
    """CreateTopics through AdminClient, then waits until metadata shows every partition led."""
    admin = admin_client(bootstrap, **conf)
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin.create_topics([topic], operation_timeout=timeout_s, request_timeout=timeout_s)
    futures[name].result(timeout=timeout_s)
    wait_for_topic(bootstrap, name, partitions, timeout_s, **conf)


def topic_partitions(bootstrap: str, name: str, timeout_s: float = 10.0, **conf) -> dict | None:
    """{partition id: leader id} from a fresh Metadata request, or None if the topic is unknown."""
    metadata = admin_client(bootstrap, **conf).list_topics(topic=name, timeout=timeout_s)
    topic = metadata.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return {p.id: p.leader for p in topic.partitions.values()}


def wait_for_topic(bootstrap: str, name: str, partitions: int, timeout_s: float = DEFAULT_TIMEOUT_S, **conf):
    def ready():
        found = topic_partitions(bootstrap, name, **conf)
        return found is not None and len(found) == partitions and all(l >= 0 for l in found.values())

    wait_until(ready, timeout_s, f"topic {name} with {partitions} led partitions in metadata")


def list_topic_names(bootstrap: str, timeout_s: float = 10.0, **conf) -> set[str]:
    return set(admin_client(bootstrap, **conf).list_topics(timeout=timeout_s).topics)


# -- producing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: KafkaError | None


class DeliveryLog:
    """Collects delivery reports; pass `.callback` as on_delivery."""

    def __init__(self):
        self.reports: list[Delivery] = []

    def callback(self, error, message):
        self.reports.append(
            Delivery(
                partition=message.partition(),
                offset=message.offset(),
                key=message.key(),
                value=message.value(),
                error=error,
            )
        )

    @property
    def errors(self) -> list[Delivery]:
        return [r for r in self.reports if r.error is not None]

    @property
    def acknowledged(self) -> list[Delivery]:
        return [r for r in self.reports if r.error is None]


def flush(p: Producer, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    remaining = p.flush(timeout_s)
    if remaining:
        raise AssertionError(f"{remaining} messages still undelivered after {timeout_s} s")


def produce_all(p: Producer, topic: str, records, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Delivery]:
    """Produces records (dicts of produce() keyword arguments), waits for every delivery report
    and fails on any error. Returns the reports in the order of `records`."""
    records = list(records)
    reports: dict[int, Delivery] = {}

    def on_delivery_for(index):
        def on_delivery(error, message):
            reports[index] = Delivery(message.partition(), message.offset(), message.key(), message.value(), error)

        return on_delivery

    for index, record in enumerate(records):
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery_for(index), **record)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    flush(p, timeout_s)
    errors = [r for r in reports.values() if r.error is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0].error}"
    assert len(reports) == len(records)
    return [reports[i] for i in range(len(records))]


# -- consuming --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp_type: int
    timestamp: int


def to_record(message) -> Record:
    timestamp_type, timestamp = message.timestamp()
    return Record(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=message.headers(),
        timestamp_type=timestamp_type,
        timestamp=timestamp,
    )


def watermarks(bootstrap: str, topic: str, partition: int, timeout_s: float = 10.0, **conf) -> tuple[int, int]:
    """(earliest, latest) offsets from ListOffsets requests (not cached)."""
    c = consumer(bootstrap, **conf)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s, cached=False)
    finally:
        c.close()


def consume_range(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **conf,
) -> list[Record]:
    """Every record at offsets [start, end) of one partition; fails on any consumer error."""
    records: list[Record] = []
    if end <= start:
        return records
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        while not records or records[-1].offset < end - 1:
            if time.monotonic() > deadline:
                last = records[-1].offset if records else None
                raise AssertionError(
                    f"{topic}[{partition}]: read {len(records)} records up to offset {last} "
                    f"of [{start}, {end}) within {timeout_s} s"
                )
            for message in c.consume(num_messages=10000, timeout=0.2):
                if message.error() is not None:
                    raise KafkaException(message.error())
                records.append(to_record(message))
    finally:
        c.close()
    return [r for r in records if r.offset < end]


def consume_all(bootstrap: str, topic: str, partition: int, timeout_s: float = DEFAULT_TIMEOUT_S, **conf) -> list[Record]:
    """Every record from the earliest offset to the high watermark of one partition."""
    low, high = watermarks(bootstrap, topic, partition, **conf)
    return consume_range(bootstrap, topic, partition, low, high, timeout_s, **conf)


def assert_dense(records: list[Record], start: int = 0) -> None:
    """Offsets are start, start+1, ... with no gap and no repeat."""
    offsets = [r.offset for r in records]
    expected = list(range(start, start + len(records)))
    if offsets != expected:
        first_bad = next(i for i, (a, b) in enumerate(zip(offsets, expected)) if a != b)
        raise AssertionError(
            f"offsets not dense from {start}: at index {first_bad} got {offsets[first_bad]}, "
            f"expected {expected[first_bad]} (around: {offsets[max(0, first_bad - 3):first_bad + 3]})"
        )


def round_trip(bootstrap: str, topic: str = "e2e-health", timeout_s: float = 20.0, **conf) -> None:
    """Produces one record with librdkafka and reads it back at its offset: the broker works."""
    marker = unique("health").encode()
    p = producer(bootstrap, message_timeout_ms=int(timeout_s * 1000), **conf)
    (delivery,) = produce_all(p, topic, [{"key": b"health", "value": marker}], timeout_s)
    (record,) = consume_range(
        bootstrap, topic, delivery.partition, delivery.offset, delivery.offset + 1, timeout_s, **conf
    )
    assert record.value == marker, f"read back {record.value!r}, expected {marker!r}"
