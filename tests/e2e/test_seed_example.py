"""The producer and consumer from the project's seed article, run as written against Strom.

The seed's code talks to localhost:9092, so these tests start a broker on that port, and skip
when something else holds it. The only change to the seed's code: the consumer's endless
`while True` loop is bounded by a deadline and stops after its first message.

The consumer subscribes with a group.id, which needs the group coordinator (FindCoordinator,
JoinGroup, SyncGroup, OffsetFetch...): until Strom has one, that test is expected to fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from kafka_helpers import consume_range, watermarks

SEED_PORT = 9092

# Verbatim from shared/seeds/000_*.txt ("Example Code for a Kafka Producer in Python").
SEED_PRODUCER = """\
from confluent_kafka import Producer
import json
config = {'bootstrap.servers': 'localhost:9092'}
producer = Producer(config)
message = {"order_id": 101, "product": "Laptop"}
producer.produce("orders", key="101", value=json.dumps(message))
producer.flush()
"""

# Verbatim from shared/seeds/000_*.txt ("Example Code for a Kafka Consumer in Python"), except
# the loop bound (`while True:` -> a 30 s deadline, stopping after the first message).
SEED_CONSUMER = """\
import time
deadline = time.monotonic() + 30
from confluent_kafka import Consumer
config = {
'bootstrap.servers': 'localhost:9092',
'group.id': 'consumer_group_1',
'auto.offset.reset': 'earliest'
}
consumer = Consumer(config)
consumer.subscribe(['orders'])
while time.monotonic() < deadline:
    msg = consumer.poll(timeout=1.0)
    if msg:
        print(f"Received: {msg.value().decode('utf-8')}")
        break
"""

EXPECTED_VALUE = json.dumps({"order_id": 101, "product": "Laptop"})


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    try:
        with socket.create_connection(("::1", port), timeout=0.2):
            return False  # something answers on the IPv6 loopback: localhost may reach it
    except OSError:
        return True


@pytest.fixture
def seed_broker(start_broker):
    if not port_is_free(SEED_PORT):
        pytest.skip(f"port {SEED_PORT} is in use: the seed's code needs localhost:{SEED_PORT}")
    return start_broker(port=SEED_PORT)


def run_python(code: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)


def test_seed_producer(seed_broker):
    result = run_python(SEED_PRODUCER)
    assert result.returncode == 0, result.stderr
    # The topic was created on first use, and the one message is in it.
    assert watermarks(seed_broker.bootstrap, "orders", 0) == (0, 1)
    (record,) = consume_range(seed_broker.bootstrap, "orders", 0, 0, 1)
    assert (record.key, record.value) == (b"101", EXPECTED_VALUE.encode())


def test_seed_consumer(seed_broker):
    produced = run_python(SEED_PRODUCER)
    assert produced.returncode == 0, produced.stderr
    result = run_python(SEED_CONSUMER, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"Received: {EXPECTED_VALUE}"], result.stderr[-2000:]
