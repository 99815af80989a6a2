"""Helpers for the consumer-group end-to-end tests (test_groups_*.py).

- `group_consumer` makes a librdkafka consumer that joins a group (subscribe, manual commits).
- `Member` runs one such consumer in a thread: it polls, keeps what it read, records every
  rebalance callback, and can commit synchronously after each record.
- `describe_group`, `group_assignment`, `committed_offsets` ask the broker through AdminClient.
- `generation_of` reads the group generation a librdkafka consumer is in.
- Run as a script (`python group_helpers.py worker CONFIG_JSON`), this file is a consumer
  process that logs what it processes and commits to a file, one JSON object per line, so a
  test can SIGKILL it and still know what it did (see `Worker` and `read_worker_log`).

Everything waits with a deadline; nothing sleeps for luck.
"""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import signal
import struct
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

# Group tests that do not study the initial rebalance delay turn it off: with the default
# (3 s), every first join of an empty group waits that long for more members.
NO_REBALANCE_DELAY = {"group.initial.rebalance.delay.ms": 0}

DEFAULT_TIMEOUT_S = 30.0


def wait_until(predicate, timeout_s: float, message, interval_s: float = 0.1):
    """Calls predicate until it returns something truthy (returned) or the deadline passes.
    `message` may be a callable, evaluated only on failure (to show the last state)."""
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
            text = message() if callable(message) else message
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s} s: {text}{suffix}")
        time.sleep(interval_s)


def observe_quietly(seconds: float) -> None:
    """An observation window for a negative check ("no rebalance happens"): the caller looks
    for callbacks or state changes that must NOT appear within it. Only for that: every
    positive outcome is waited for with wait_until."""
    time.sleep(seconds)


# -- consumers --------------------------------------------------------------------------


def group_config(bootstrap: str, group: str, **conf) -> dict:
    """A consumer config for group use; keyword names may use _ for . (session_timeout_ms)."""
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return base


def group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    return Consumer(group_config(bootstrap, group, **conf))


def generation_of(consumer: Consumer) -> tuple[int, str]:
    """(generation id, member id) the consumer is in, from librdkafka's serialized group
    metadata: b"CGMDv2:" + int32 generation (host order) + group id NUL + member id NUL + ..."""
    data = consumer.consumer_group_metadata()
    assert data[:7] == b"CGMDv2:", data
    (generation,) = struct.unpack_from("=i", data, 7)
    rest = data[11:]
    _group, rest = rest.split(b"\0", 1)
    member, _ = rest.split(b"\0", 1)
    return generation, member.decode()


class Member:
    """One group consumer polled by its own thread until stop().

    records: [(partition, offset, value)] in the order read.
    events:  [(monotonic time, "assign" | "revoke" | "lost", sorted partitions)].
    assignment: the partitions the callbacks say it owns now (works for eager and cooperative).
    With commit_each, every record is committed synchronously (offset + 1) right after it is
    read; with commit_on_revoke, the positions of revoked partitions are committed in the
    revoke callback (kept in revoke_commits); commit errors are kept in commit_errors.
    """

    def __init__(self, bootstrap: str, group: str, topics: list[str], name: str = "member",
                 commit_each: bool = False, commit_on_revoke: bool = False, **conf):
        self.name = name
        self.topics = topics
        self.commit_each = commit_each
        self.commit_on_revoke = commit_on_revoke
        self.revoke_commits: list[list[tuple[int, int]]] = []
        self.consumer = group_consumer(bootstrap, group, client_id=name, **conf)
        self.lock = threading.Lock()
        self.records: list[tuple[int, int, bytes]] = []
        self.events: list[tuple[float, str, list[int]]] = []
        self.assignment: set[int] = set()
        self.commit_errors: list[str] = []
        self.errors: list[str] = []
        self.fatal: KafkaError | None = None
        # (generation id, member id) as of the last poll; -1 and "" before the first join.
        self.generation: tuple[int, str] = (-1, "")
        self._requests: list = []
        self._stop = threading.Event()
        self._close = True
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    # Callbacks run in the polling thread.
    def _on_assign(self, consumer, partitions):
        with self.lock:
            self.events.append((time.monotonic(), "assign", sorted(p.partition for p in partitions)))
            self.assignment |= {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        if self.commit_on_revoke and partitions:
            # The classic pattern: commit what was processed before giving partitions up. The
            # group is rebalancing (PreparingRebalance) and the member's generation still valid.
            positions = [tp for tp in consumer.position(partitions) if tp.offset >= 0]
            if positions:
                try:
                    consumer.commit(offsets=positions, asynchronous=False)
                    with self.lock:
                        self.revoke_commits.append(sorted((tp.partition, tp.offset) for tp in positions))
                except KafkaException as error:
                    with self.lock:
                        self.commit_errors.append(str(error))
        with self.lock:
            self.events.append((time.monotonic(), "revoke", sorted(p.partition for p in partitions)))
            self.assignment -= {p.partition for p in partitions}

    def _on_lost(self, consumer, partitions):
        with self.lock:
            self.events.append((time.monotonic(), "lost", sorted(p.partition for p in partitions)))
            self.assignment -= {p.partition for p in partitions}

    def start(self) -> "Member":
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                # Asked here, in the polling thread: consumer_group_metadata() from another
                # thread while this one polls can block forever.
                generation = generation_of(self.consumer)
                with self.lock:
                    self.generation = generation
                self._serve_requests()
                message = self.consumer.poll(0.1)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    # librdkafka reports a fatal error as an error event with code _FATAL.
                    fatal = error.fatal() or error.code() == KafkaError._FATAL
                    with self.lock:
                        self.errors.append(str(error))
                        if fatal:
                            self.fatal = error
                    if fatal:
                        return
                    continue
                with self.lock:
                    self.records.append((message.partition(), message.offset(), message.value()))
                if self.commit_each:
                    offset = TopicPartition(message.topic(), message.partition(), message.offset() + 1)
                    try:
                        self.consumer.commit(offsets=[offset], asynchronous=False)
                    except KafkaException as error:
                        with self.lock:
                            self.commit_errors.append(str(error))
        finally:
            if self._close:
                self.consumer.close()

    def call(self, function, timeout_s: float = 20.0):
        """Runs function(consumer) in the polling thread and returns its result (librdkafka
        calls from a second thread while one polls can block)."""
        future = concurrent.futures.Future()
        with self.lock:
            self._requests.append((function, future))
        return future.result(timeout=timeout_s)

    def _serve_requests(self):
        with self.lock:
            requests, self._requests = self._requests, []
        for function, future in requests:
            try:
                future.set_result(function(self.consumer))
            except Exception as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)

    def stop(self, close: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Stops polling; close=True closes the consumer (LeaveGroup unless static)."""
        self._close = close
        self._stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.name}: poll thread did not stop in {timeout_s} s"

    def snapshot(self):
        with self.lock:
            return list(self.records), list(self.events), set(self.assignment)

    def generation_now(self, timeout_s: float = 5.0) -> tuple[int, str]:
        """(generation id, member id) as of a poll that started after this call."""
        with self.lock:
            self.generation = None
        wait_until(lambda: self.generation is not None, timeout_s, f"{self.name}: a poll")
        with self.lock:
            return self.generation

    def offsets_read(self) -> dict[int, list[int]]:
        result: dict[int, list[int]] = {}
        with self.lock:
            for partition, offset, _ in self.records:
                result.setdefault(partition, []).append(offset)
        return result


def stop_all(members) -> None:
    errors = []
    for member in members:
        try:
            member.stop()
        except AssertionError as error:
            errors.append(str(error))
    assert not errors, errors


# -- the broker's view, through AdminClient ----------------------------------------------


_admin_clients: dict = {}


def admin(bootstrap: str):
    """One AdminClient per broker address, kept while tests use that address: tests poll
    describe in loops, and making and destroying a client each time is slow and holds the
    GIL while it tears down (starving kafka-python's heartbeat thread on a busy machine)."""
    from confluent_kafka.admin import AdminClient

    client = _admin_clients.get(bootstrap)
    if client is None:
        _admin_clients.clear()  # the previous test's broker is gone
        client = _admin_clients[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return client


def describe_group(bootstrap: str, group: str, timeout_s: float = 10.0):
    """The ConsumerGroupDescription of one group (raises on an error)."""
    client = admin(bootstrap)
    future = client.describe_consumer_groups([group], request_timeout=timeout_s)[group]
    return future.result(timeout=timeout_s + 5)


def group_assignment(description, topic: str) -> dict[str, set[int]]:
    """{member id: partitions of `topic`} from a ConsumerGroupDescription."""
    return {
        m.member_id: {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
        for m in description.members
    }


def state_name(description) -> str:
    return description.state.name


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                      timeout_s: float = 10.0) -> dict[int, int]:
    """{partition: committed offset} (negative when none) via list_consumer_group_offsets."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    client = admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    future = client.list_consumer_group_offsets([request], request_timeout=timeout_s)[group]
    result = future.result(timeout=timeout_s + 5)
    out = {}
    for tp in result.topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
        out[tp.partition] = tp.offset
    return out


def assert_partitioned(assignment: dict, partitions: int, sizes: list[int]) -> None:
    """Every partition 0..partitions-1 owned by exactly one member, owners' counts `sizes`."""
    owned = [p for parts in assignment.values() for p in parts]
    assert sorted(owned) == list(range(partitions)), f"partitions owned: {sorted(owned)} ({assignment})"
    assert sorted(len(parts) for parts in assignment.values()) == sorted(sizes), assignment


# -- consumer processes ------------------------------------------------------------------


class Worker:
    """A consumer in its own process (`python group_helpers.py worker CONFIG`), so that a test
    can SIGKILL it: no close(), no LeaveGroup, no last commit.

    It logs JSON lines to `log_path`: {"e": "assign"|"revoke"|"lost", "p": [...]},
    {"e": "rec", "p": partition, "o": offset, "v": value}, {"e": "commit", "p", "o"} after a
    synchronous commit of offset o returned, {"e": "commit_error", ...}, {"e": "error", ...},
    {"e": "member", "id": member id} once it knows it, {"e": "closed"} at a clean exit.
    """

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, log_path: pathlib.Path,
                 **conf):
        self.name = name
        self.log_path = log_path
        config = {"name": name, "topic": topic, "conf": group_config(bootstrap, group, client_id=name, **conf)}
        self.stderr_path = log_path.with_suffix(".stderr")
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(pathlib.Path(__file__).resolve()), "worker", json.dumps(config),
                 str(log_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def events(self) -> list[dict]:
        return read_worker_log(self.log_path)

    def assignment(self) -> set[int]:
        """What the rebalance callbacks say the worker owns now."""
        owned: set[int] = set()
        for event in self.events():
            if event["e"] == "assign":
                owned |= set(event["p"])
            elif event["e"] in ("revoke", "lost"):
                owned -= set(event["p"])
        return owned

    def member_id(self) -> str | None:
        ids = [e["id"] for e in self.events() if e["e"] == "member"]
        return ids[-1] if ids else None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Asks the worker to close its consumer (it reads EOF on stdin) and waits for it."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"worker {self.name} did not close within {timeout_s} s")
        assert self.process.returncode == 0, (
            f"worker {self.name} exited with {self.process.returncode}:\n{self.stderr_tail()}"
        )

    def ensure_dead(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def read_worker_log(path: pathlib.Path) -> list[dict]:
    """The worker's events; a torn last line (the worker was killed mid-write) is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _worker_main(config_json: str, log_path: str) -> int:
    config = json.loads(config_json)
    topic = config["topic"]
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()  # EOF: the test asks us to stop
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    log = open(log_path, "a", buffering=1)

    def write(event):
        event["t"] = time.time()
        log.write(json.dumps(event) + "\n")
        log.flush()

    consumer = Consumer(config["conf"])
    known_member = [None]

    def note_member():
        _, member = generation_of(consumer)
        if member and member != known_member[0]:
            known_member[0] = member
            write({"e": "member", "id": member})

    def on_assign(c, partitions):
        write({"e": "assign", "p": sorted(p.partition for p in partitions)})
        note_member()

    def on_revoke(c, partitions):
        write({"e": "revoke", "p": sorted(p.partition for p in partitions)})

    def on_lost(c, partitions):
        write({"e": "lost", "p": sorted(p.partition for p in partitions)})

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not stop.is_set():
        message = consumer.poll(0.1)
        if message is None:
            continue
        if message.error() is not None:
            write({"e": "error", "error": str(message.error())})
            continue
        partition, offset = message.partition(), message.offset()
        write({"e": "rec", "p": partition, "o": offset, "v": message.value().decode()})
        try:
            consumer.commit(offsets=[TopicPartition(topic, partition, offset + 1)], asynchronous=False)
            write({"e": "commit", "p": partition, "o": offset + 1})
        except KafkaException as error:
            write({"e": "commit_error", "p": partition, "o": offset + 1, "error": str(error)})
    consumer.close()
    write({"e": "closed"})
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        sys.exit(_worker_main(sys.argv[2], sys.argv[3]))
    print(f"usage: {sys.argv[0]} worker CONFIG_JSON LOG_PATH", file=sys.stderr)
    sys.exit(2)
