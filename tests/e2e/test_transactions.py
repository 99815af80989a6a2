"""Kafka transactions on one node, with real clients (confluent-kafka / librdkafka and
kafka-python): what a read_committed and a read_uncommitted consumer see of committed, aborted
and open transactions; fencing of a second producer with the same transactional.id; the abort
of a transaction whose producer went away; the last stable offset as ListOffsets reports it;
the coordinator's state across a restart; and the CLI (`strom txn list|describe|abort`,
`strom producers`).

Per test the broker runs with a short abort scan (transaction.abort.timed.out.transaction.
cleanup.interval.ms) so that a transaction past its timeout is aborted within a second or so.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kafka_helpers import create_topic, unique, wait_until
from strom_broker import STROM_BIN

SETTINGS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}
TIMEOUT_S = 30


@pytest.fixture
def txn_broker(start_broker):
    return start_broker(settings=SETTINGS)


def transactional_producer(bootstrap: str, transactional_id: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    p = Producer(base)
    p.init_transactions(TIMEOUT_S)
    return p


def read(bootstrap: str, topic: str, isolation: str, partitions: int = 1, settle_s: float = 1.5) -> list:
    """Every record a consumer with `isolation` reads from the start of `topic` until nothing
    more arrives for `settle_s`: (partition, offset, key, value)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("txn-reader"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records = []
        quiet_since = time.monotonic()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() - quiet_since < settle_s and time.monotonic() < deadline:
            message = c.poll(0.1)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(message.error())
            records.append((message.partition(), message.offset(), message.key(), message.value()))
            quiet_since = time.monotonic()
        return records
    finally:
        c.close()


def values(records) -> list[bytes]:
    return [r[3] for r in records]


def offsets(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    """(last stable offset, high watermark): ListOffsets latest as read_committed and as
    read_uncommitted."""
    found = []
    for isolation in ("read_committed", "read_uncommitted"):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("txn-lso"), "isolation.level": isolation})
        try:
            found.append(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1])
        finally:
            c.close()
    return found[0], found[1]


def test_commit_and_abort_as_each_isolation_level_sees_them(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn")
    create_topic(bootstrap, topic, partitions=2)
    p = transactional_producer(bootstrap, unique("tid"))
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, key=b"k%d" % (i % 3), value=b"committed-%d" % i, partition=i % 2)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, key=b"k%d" % i, value=b"aborted-%d" % i, partition=i % 2)
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, key=b"last", value=b"committed-last", partition=0)
    p.commit_transaction(TIMEOUT_S)

    committed = read(bootstrap, topic, "read_committed", partitions=2)
    assert sorted(values(committed)) == sorted([b"committed-%d" % i for i in range(10)] + [b"committed-last"])
    uncommitted = read(bootstrap, topic, "read_uncommitted", partitions=2)
    # Data only: the COMMIT/ABORT control records never reach the application.
    assert sorted(values(uncommitted)) == sorted(
        [b"committed-%d" % i for i in range(10)] + [b"aborted-%d" % i for i in range(6)] + [b"committed-last"]
    )
    # Per partition, committed records keep their order.
    for partition in range(2):
        seen = [r[3] for r in committed if r[0] == partition and r[3] != b"committed-last"]
        assert seen == [b"committed-%d" % i for i in range(10) if i % 2 == partition]
    # Markers take offsets: the log ends past the records (one marker per partition per
    # transaction), and with nothing open the LSO is the high watermark.
    for partition in range(2):
        lso, hw = offsets(bootstrap, topic, partition)
        assert lso == hw
    lso0, hw0 = offsets(bootstrap, topic, 0)
    assert hw0 == 5 + 1 + 3 + 1 + 1 + 1  # 5 committed, marker, 3 aborted, marker, 1, marker


def test_read_committed_stops_at_an_open_transaction_until_it_commits(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-open")
    create_topic(bootstrap, topic)
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    plain.produce(topic, value=b"before")
    plain.flush(TIMEOUT_S)
    p = transactional_producer(bootstrap, unique("tid"))
    p.begin_transaction()
    p.produce(topic, value=b"in-txn-1")
    p.flush(TIMEOUT_S)
    # Non-transactional records after the open transaction's first offset are held back too.
    plain.produce(topic, value=b"after")
    plain.flush(TIMEOUT_S)

    lso, hw = offsets(bootstrap, topic)
    assert (lso, hw) == (1, 3), "the LSO is the open transaction's first offset"
    assert values(read(bootstrap, topic, "read_committed")) == [b"before"]
    assert values(read(bootstrap, topic, "read_uncommitted")) == [b"before", b"in-txn-1", b"after"]

    p.produce(topic, value=b"in-txn-2")
    p.commit_transaction(TIMEOUT_S)
    wait_until(lambda: offsets(bootstrap, topic)[0] == offsets(bootstrap, topic)[1], 10, "LSO reaches HW")
    assert values(read(bootstrap, topic, "read_committed")) == [b"before", b"in-txn-1", b"after", b"in-txn-2"]


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-fence")
    create_topic(bootstrap, topic)
    tid = unique("tid")
    first = transactional_producer(bootstrap, tid)
    first.begin_transaction()
    first.produce(topic, value=b"zombie")
    first.flush(TIMEOUT_S)
    # The second producer's InitProducerId aborts the first's open transaction and bumps the
    # epoch; the first is fenced from then on.
    second = transactional_producer(bootstrap, tid)
    with pytest.raises(KafkaException) as fenced:
        first.produce(topic, value=b"zombie-2")
        first.commit_transaction(TIMEOUT_S)
    error = fenced.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), error
    second.begin_transaction()
    second.produce(topic, value=b"winner")
    second.commit_transaction(TIMEOUT_S)
    assert values(read(bootstrap, topic, "read_committed")) == [b"winner"]
    assert b"zombie" in values(read(bootstrap, topic, "read_uncommitted"))


def test_a_producer_that_goes_away_mid_transaction_is_aborted_after_its_timeout(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-timeout")
    create_topic(bootstrap, topic)
    tid = unique("tid")
    p = transactional_producer(bootstrap, tid, transaction_timeout_ms=3000)
    p.begin_transaction()
    p.produce(topic, value=b"abandoned")
    p.flush(TIMEOUT_S)
    started = time.monotonic()
    assert offsets(bootstrap, topic) == (0, 1)
    # The producer is never heard from again (not closed: librdkafka would abort on close).
    wait_until(lambda: offsets(bootstrap, topic)[0] == 2, 20, "the LSO to pass the abandoned transaction")
    assert time.monotonic() - started >= 2.0, "aborted before its transaction.timeout.ms"
    assert values(read(bootstrap, topic, "read_committed")) == []
    # The coordinator fenced the producer: it cannot commit the aborted transaction.
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    # A new producer with the id carries on.
    q = transactional_producer(bootstrap, tid)
    q.begin_transaction()
    q.produce(topic, value=b"next")
    q.commit_transaction(TIMEOUT_S)
    assert values(read(bootstrap, topic, "read_committed")) == [b"next"]


def test_transactions_survive_a_restart(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-restart")
    create_topic(bootstrap, topic)
    tid = unique("tid")
    p = transactional_producer(bootstrap, tid, transaction_timeout_ms=5000)
    p.begin_transaction()
    p.produce(topic, value=b"committed")
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"aborted")
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"open-at-restart")
    p.flush(TIMEOUT_S)
    txn_broker.restart()
    # After the restart: the aborted transaction is still hidden, the open one still holds the
    # LSO until the reloaded coordinator aborts it past its timeout.
    lso, hw = offsets(bootstrap, topic)
    assert hw == 5 and lso == 4
    wait_until(lambda: offsets(bootstrap, topic)[0] == 6, 30, "the open transaction to be aborted")
    assert values(read(bootstrap, topic, "read_committed")) == [b"committed"]
    q = transactional_producer(bootstrap, tid)
    q.begin_transaction()
    q.produce(topic, value=b"after-restart")
    q.commit_transaction(TIMEOUT_S)
    assert values(read(bootstrap, topic, "read_committed")) == [b"committed", b"after-restart"]


def test_kafka_python_transactional_producer(txn_broker):
    kafka = pytest.importorskip("kafka")
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-kp")
    create_topic(bootstrap, topic)
    p = kafka.KafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("kp-tid"))
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=b"kp-commit-%d" % i)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, value=b"kp-abort")
        p.flush()
        p.abort_transaction()
    finally:
        p.close(timeout=10)
    assert values(read(bootstrap, topic, "read_committed")) == [b"kp-commit-%d" % i for i in range(5)]
    assert b"kp-abort" in values(read(bootstrap, topic, "read_uncommitted"))


def strom(*args: str, bootstrap: str) -> str:
    result = subprocess.run(
        [STROM_BIN, *args, "--bootstrap", bootstrap],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"strom {' '.join(args)}: {result.stderr}"
    return result.stdout


def rows(output: str) -> list[dict[str, str]]:
    lines = [line.split() for line in output.strip().splitlines()]
    return [dict(zip(lines[0], line)) for line in lines[1:]]


def test_cli_lists_describes_and_aborts_a_hanging_transaction(txn_broker):
    bootstrap = txn_broker.bootstrap
    topic = unique("txn-cli")
    create_topic(bootstrap, topic)
    tid = unique("tid")
    p = transactional_producer(bootstrap, tid, transaction_timeout_ms=600000)
    p.begin_transaction()
    p.produce(topic, value=b"hanging")
    p.flush(TIMEOUT_S)

    listed = rows(strom("txn", "list", bootstrap=bootstrap))
    mine = [r for r in listed if r["TRANSACTIONAL-ID"] == tid]
    assert len(mine) == 1 and mine[0]["STATE"] == "Ongoing", listed
    assert [r for r in rows(strom("txn", "list", "--state", "CompleteCommit", bootstrap=bootstrap)) if r["TRANSACTIONAL-ID"] == tid] == []
    described = rows(strom("txn", "describe", tid, bootstrap=bootstrap))[0]
    assert described["STATE"] == "Ongoing"
    assert described["PARTITIONS"] == f"{topic}-0"
    assert described["TIMEOUT-MS"] == "600000"
    producers = rows(strom("producers", f"{topic}:0", bootstrap=bootstrap))
    assert len(producers) == 1 and producers[0]["TXN-START-OFFSET"] == "0", producers
    assert producers[0]["PRODUCER-ID"] == described["PRODUCER-ID"]

    # The transaction hangs (its producer is gone for the next 10 minutes): an operator aborts
    # it in the partition, as with kafka-transactions.sh abort --start-offset.
    assert offsets(bootstrap, topic) == (0, 1)
    out = strom("txn", "abort", "--topic", topic, "--partition", "0", "--start-offset", "0", bootstrap=bootstrap)
    assert "aborted" in out
    assert offsets(bootstrap, topic) == (2, 2)
    assert values(read(bootstrap, topic, "read_committed")) == []
    assert rows(strom("producers", topic, bootstrap=bootstrap))[0]["TXN-START-OFFSET"] == "-"


def test_send_offsets_to_transaction_commits_the_groups_offsets_with_the_output(txn_broker):
    """A consume-transform-produce step: the group's offsets move only when the transaction
    commits; after an abort they stay where they were."""
    bootstrap = txn_broker.bootstrap
    source, sink = unique("txn-in"), unique("txn-out")
    create_topic(bootstrap, source)
    create_topic(bootstrap, sink)
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        plain.produce(source, value=b"in-%d" % i)
    plain.flush(TIMEOUT_S)
    group = unique("copier")

    def copy_once(commit: bool) -> int:
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        try:
            c.subscribe([source])
            got = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < 5 and time.monotonic() < deadline:
                message = c.poll(0.2)
                if message is not None and message.error() is None:
                    got.append(message)
            assert len(got) == 5
            p = transactional_producer(bootstrap, unique("copier-tid"))
            p.begin_transaction()
            for message in got:
                p.produce(sink, value=message.value().replace(b"in", b"out"))
            position = [TopicPartition(source, 0, got[-1].offset() + 1)]
            p.send_offsets_to_transaction(position, c.consumer_group_metadata(), TIMEOUT_S)
            if commit:
                p.commit_transaction(TIMEOUT_S)
            else:
                p.abort_transaction(TIMEOUT_S)
            return got[0].offset()
        finally:
            c.close()

    def committed() -> int:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            return c.committed([TopicPartition(source, 0)], timeout=10)[0].offset
        finally:
            c.close()

    assert copy_once(commit=True) == 0
    assert committed() == 5
    assert copy_once(commit=False) == 5
    assert committed() == 5, "an aborted transaction's offsets are not committed"
    assert copy_once(commit=True) == 5
    assert committed() == 10
    assert values(read(bootstrap, sink, "read_committed")) == [b"out-%d" % i for i in range(10)]
    # The committed offsets survive a restart (replayed from __consumer_offsets with their
    # transaction's marker).
    txn_broker.restart()
    assert committed() == 10
