"""The metadata log through resource exhaustion, for real: a `strom server` that runs out of file
descriptors, or of disk space under its metadata log, keeps running, answers metadata requests
with retriable errors meanwhile, and takes CreateTopics again once the resource is back, without
a restart (issue 10, part 3).

Determinism: descriptors are taken away completely (the soft RLIMIT_NOFILE of the running
process set to 0 with prlimit, so no open, accept or dup can succeed whatever the process has
open), and space by filling a small tmpfs mounted on the metadata directory to the last byte.
Requests go over one raw connection opened beforehand, since the broker cannot accept a new one
without descriptors; real clients are used again once the resource is back.
"""

from __future__ import annotations

import errno
import os
import pathlib
import resource
import struct
import subprocess

import pytest

import raw_kafka
from kafka_helpers import create_topic, list_topic_names, round_trip, unique, wait_until

CREATE_TOPICS = 19
# The newest CreateTopics version without flexible fields.
CREATE_TOPICS_VERSION = 4

NONE = 0
REQUEST_TIMED_OUT = 7
NOT_CONTROLLER = 41
RETRIABLE = {REQUEST_TIMED_OUT, NOT_CONTROLLER}

# Longer than the broker's own 30 s wait for the quorum: every answer must come before this.
ANSWER_TIMEOUT_S = 45.0
RECOVERY_TIMEOUT_S = 30.0

UNHEALTHY = "the metadata quorum is unhealthy:"
HEALTHY_AGAIN = "the metadata quorum is healthy again"
RAFT_STOPPED = "Raft stopped on a storage error"
RAFT_RUNS_AGAIN = "Raft runs again on the reopened metadata log"


class RawAdmin:
    """CreateTopics over one connection opened before the resource ran out."""

    def __init__(self, bootstrap: str):
        self.sock = raw_kafka.connect(bootstrap)
        self.correlation_id = 0

    def create_topic(self, name: str, partitions: int = 1) -> tuple[int, str | None]:
        """(error code, error message) of CreateTopics for one topic of factor 1."""
        self.correlation_id += 1
        topic = (
            raw_kafka.string(name.encode())
            + struct.pack(">ih", partitions, 1)
            + struct.pack(">ii", 0, 0)  # no assignments, no configs
        )
        body = struct.pack(">i", 1) + topic + struct.pack(">i", 30_000) + b"\x00"
        self.sock.sendall(
            raw_kafka.request(CREATE_TOPICS, CREATE_TOPICS_VERSION, self.correlation_id, body, flexible=False)
        )
        payload = raw_kafka.read_response(self.sock, ANSWER_TIMEOUT_S)
        assert payload is not None, "the broker closed the connection"
        correlation_id, _throttle_ms, count = struct.unpack_from(">iii", payload, 0)
        assert correlation_id == self.correlation_id and count == 1
        answered, position = raw_kafka.read_string(payload, 12)
        assert answered == name.encode()
        (code,) = struct.unpack_from(">h", payload, position)
        message, _ = raw_kafka.read_string(payload, position + 2)
        return code, None if message is None else message.decode()

    def close(self) -> None:
        self.sock.close()


def log_lines(broker, text: str) -> list[str]:
    return [line for line in broker.run_log().splitlines() if text in line]


def wait_for_log(broker, text: str, timeout_s: float = RECOVERY_TIMEOUT_S) -> str:
    """The first line of this run's log that contains text, waiting for it."""
    return wait_until(lambda: (log_lines(broker, text) or [None])[0], timeout_s, f"log line {text!r}")


def assert_never_restarted(broker) -> None:
    broker.assert_running()
    assert broker.starts == 1, "the broker was restarted"


def test_running_out_of_descriptors_does_not_poison_the_metadata_log(broker):
    admin = RawAdmin(broker.bootstrap)
    assert admin.create_topic(unique("before"))[0] == NONE

    soft, hard = resource.prlimit(broker.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (0, hard))
    try:
        # The metadata log appends to a segment it holds open, but every commit replaces the
        # commit hint, a new file: that write fails. The request is answered all the same
        # (its partition logs cannot be opened either; what it answers is not this test's).
        admin.create_topic(unique("exhausted"))
        unhealthy = wait_for_log(broker, UNHEALTHY)
        assert "Too many open files" in unhealthy, unhealthy
        # Still answering while descriptors are out.
        admin.create_topic(unique("exhausted"))
    finally:
        if broker.running:
            resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (soft, hard))

    # Before the fix, the first failure left the log refusing every write, and this was
    # answered NOT_CONTROLLER until a restart.
    after = unique("after")
    assert admin.create_topic(after)[0] == NONE
    wait_for_log(broker, HEALTHY_AGAIN)
    assert len(log_lines(broker, UNHEALTHY)) == 1, "one error per episode"
    admin.close()

    # New connections and real clients work again.
    later = unique("later")
    create_topic(broker.bootstrap, later)
    assert {after, later} <= list_topic_names(broker.bootstrap)
    round_trip(broker.bootstrap, later)
    assert_never_restarted(broker)


def fill(directory: pathlib.Path) -> pathlib.Path:
    """Fills the filesystem of directory to the last byte with one file, which it returns."""
    path = directory / "e2e-filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            block = b"\xff" * chunk
            while True:
                try:
                    if os.write(fd, block) < chunk:
                        break
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


@pytest.fixture
def metadata_tmpfs(start_broker):
    """A broker (not started) whose metadata directory is a 1 MiB tmpfs, unmounted afterwards."""
    broker = start_broker(start=False)
    directory = broker.data_dir / "__cluster_metadata"
    directory.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield broker, directory
    finally:
        if broker.running:
            broker.stop()
        subprocess.run(["umount", "-l", str(directory)], check=True)


def test_a_full_disk_under_the_metadata_log_stops_raft_until_space_is_back(metadata_tmpfs):
    broker, directory = metadata_tmpfs
    broker.start()
    admin = RawAdmin(broker.bootstrap)
    created = [unique("before")]
    assert admin.create_topic(created[0])[0] == NONE

    filler = fill(directory)
    # Appends fill what is left of the segment's last page, then one fails: the node stops
    # leading, and the proposal in hand gets a retriable error. Bounded: a page holds a few
    # dozen entries at most.
    for _ in range(100):
        name = unique("full")
        code, message = admin.create_topic(name)
        if code != NONE:
            break
        created.append(name)
    assert code in RETRIABLE, (code, message)
    wait_for_log(broker, RAFT_STOPPED)
    # While Raft is down, metadata requests get a retriable error, not a hang.
    code, message = admin.create_topic(unique("down"))
    assert code in RETRIABLE, (code, message)

    filler.unlink()
    wait_for_log(broker, RAFT_RUNS_AGAIN)
    wait_for_log(broker, HEALTHY_AGAIN)
    after = unique("after")
    assert admin.create_topic(after)[0] == NONE
    created.append(after)
    admin.close()
    round_trip(broker.bootstrap, after)
    assert_never_restarted(broker)

    # The log left behind reopens with every topic whose creation was acknowledged.
    broker.restart()
    wait_until(
        lambda: set(created) <= list_topic_names(broker.bootstrap),
        RECOVERY_TIMEOUT_S,
        "every acknowledged topic after a restart",
    )
