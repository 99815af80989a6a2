"""KIP-848 consumer groups (group.protocol=consumer) with librdkafka 2.16.

The coordinator computes assignments with its server-side assignor and hands them out through
ConsumerGroupHeartbeat; a member gives partitions up before another receives them. The broker
runs with a short heartbeat interval so rebalances take seconds, not tens of seconds.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from kafka_helpers import admin_request, unique, wait_until

PARTITIONS = 6
RECORDS = 600


class Kip848Member:
    """A group.protocol=consumer member polled by its own thread until stopped."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "client.id": name,
        })
        self.topic = topic
        self.lock = threading.Lock()
        self.assignment: set[int] = set()
        self.records: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_assign(self, _consumer, partitions):
        with self.lock:
            self.assignment |= {p.partition for p in partitions}

    def _on_revoke(self, _consumer, partitions):
        with self.lock:
            self.assignment -= {p.partition for p in partitions}

    def start(self) -> "Kip848Member":
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                message = self.consumer.poll(0.1)
                if message is None:
                    continue
                if message.error():
                    with self.lock:
                        self.errors.append(str(message.error()))
                    continue
                with self.lock:
                    self.records.append((message.partition(), message.offset()))
                self.consumer.commit(message=message, asynchronous=False)
        finally:
            self.consumer.close()

    def owned(self) -> set[int]:
        with self.lock:
            return set(self.assignment)

    def stop(self):
        self._stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_members_split_partitions_and_hand_them_over(start_broker):
    broker = start_broker(settings={"group.consumer.heartbeat.interval.ms": "500"})
    topic, group = unique("kip848"), unique("g848")
    admin_request(broker.bootstrap, lambda a: a.create_topics([NewTopic(topic, PARTITIONS, 1)]))[topic].result()
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(RECORDS):
        producer.produce(topic, key=str(i), value=str(i))
    producer.flush(10)

    members = [Kip848Member(broker.bootstrap, group, topic, f"m{i}").start() for i in range(3)]
    try:
        def split_evenly():
            owned = [m.owned() for m in members]
            disjoint = sum(len(o) for o in owned) == len(set().union(*owned))
            return disjoint and sorted(len(o) for o in owned) == [2, 2, 2] and set().union(*owned) == set(range(PARTITIONS))
        wait_until(split_evenly, 40, "three members own two partitions each")
        # Every record is read once by the group (each member commits what it reads).
        wait_until(lambda: sum(len(m.records) for m in members) >= RECORDS, 40, "all records consumed")
        read = [record for m in members for record in m.records]
        assert len(read) == len(set(read)) == RECORDS

        # One leaves: its partitions move to the other two.
        members[0].stop()
        rest = members[1:]
        wait_until(lambda: set().union(*(m.owned() for m in rest)) == set(range(PARTITIONS)), 40, "the others take over")
        owned = [m.owned() for m in rest]
        assert not owned[0] & owned[1]
        assert all(not m.errors for m in members), [m.errors for m in members]
    finally:
        for member in members[1:]:
            member.stop()
