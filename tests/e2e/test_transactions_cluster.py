"""Exactly-once on a 3-node loopback cluster (issue 11): a consume-transform-produce pipeline
copies keyed records from an input topic to an output topic through Kafka transactions while
the test kill -9s the copier, the transaction coordinator's node and a partition leader, and
then proves the output holds every input record exactly once, in order.

Topics: input and output of 3 partitions each, RF=3, min.insync.replicas=2. The input
(RECORDS keyed records, seeded, a key always in one partition) is written before the copy
starts. The copier (eos_copier.py, its own process so that it can be killed) reads the input
with read_committed and copies input partition p to output partition p, one transaction per
polled batch; each output value names the input record it copies and the copier process and
transaction that wrote it. Two variants:

* test_exactly_once_pipeline_with_group_offsets: Kafka's pattern. The input positions are
  committed in each transaction with send_offsets_to_transaction (AddOffsetsToTxn,
  TxnOffsetCommit); a restarted copier resumes from the group's committed offsets
  (OffsetFetch with require_stable, as read_committed consumers ask).
* test_exactly_once_pipeline_resuming_from_the_output: no group offsets; a restarted copier
  resumes after the last input offset found in the output read with read_committed. Same
  faults, same checks: transactions, markers, coordinator and leader failover.

Faults, in order, each at a share of the copy (the copier is held mid-transaction through a
hold file: its batch produced and flushed, with group offsets also sent, not committed):
  1. held: kill -9 the copier; a new one starts at once (its init_transactions aborts the
     open transaction).
  2. held: kill -9 the transaction coordinator's node (FindCoordinator, and the leader of
     `__transaction_state` partition abs(hash(transactional.id)) % 50); once a new coordinator
     leads, release: the transaction must commit or abort through it. The node restarts.
  3. kill -9 the copier wherever it is.
  4. held: kill -9 the leader of an output partition the transaction wrote to (one led by
     another node than the coordinator, so that its marker goes over the network; faults 7
     and 8 pick the same way); once a new leader leads, release; the node restarts.
  5. kill -9 the copier wherever it is, start one with a short transaction.timeout.ms, hold it,
     kill -9 it and start none: the coordinator must abort the transaction on its timeout
     (the output's last stable offset reaches its high watermark) before a copier returns.
  6. held, then released: kill -9 the coordinator's node a few milliseconds after the copier
     calls commit_transaction (EndTxn, PrepareCommit, markers in flight); the node restarts.
  7. held: kill -9 the leader of an output partition the transaction wrote to, then release
     at once: the commit's markers first go to a leader that is gone but not yet fenced.
  8. held, then released: kill -9 that leader a few milliseconds after the copier calls
     commit_transaction (PrepareCommit written, markers in flight); the node restarts.
  9. held: kill -9 the copier.
 10. kill -9 the coordinator's node wherever the copier is; the node restarts.
With STROM_SOAK=1 the schedule runs SOAK_ROUNDS times over SOAK_RECORDS records.

Checks at the end:
  * the output read with read_committed holds each input record exactly once, in input order
    per partition and so per key, with the input's key and value;
  * every transaction is all or nothing: no transaction has records both committed and
    aborted, and some were aborted (the faults did abort transactions);
  * a read_committed consumer that read the output the whole time saw a prefix of the final
    committed output, never an aborted record;
  * no transaction hangs: after the copy, the output's last stable offset reaches its high
    watermark within transaction.max.timeout.ms, and DescribeTransactions (`strom txn
    describe`) shows the transaction ended;
  * with group offsets: the group's committed offsets are the input's end offsets;
  * after kill -9 and a restart of every node, read_committed returns the same output.

A hang shows as a wait that times out with the copier's last events, `strom txn describe`
and the output's last stable offsets and high watermarks in its message.

Environment: STROM_SOAK=1 (the long run), STROM_E2E_EOS_SEED (input keys and kill delays),
STROM_E2E_EOS_FAULTS=name,... (only these faults, to reproduce one),
STROM_E2E_EOS_SEGMENT_BYTES (the topics' segment.bytes, default 1 MiB).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import random
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

import raw_kafka
from cluster import (  # noqa: F401 - cluster_factory is the fixture
    FAST_FAILOVER_SETTINGS,
    Cluster,
    ContinuousConsumer,
    cluster_factory,
    offsets_partition_for,
    require_cluster_info,
)
from kafka_helpers import admin_client, produce_all, producer, unique, wait_until

SOAK = os.environ.get("STROM_SOAK") == "1"
RECORDS = 100_000
SOAK_RECORDS = 1_000_000
SOAK_ROUNDS = 3
PARTITIONS = 3
KEYS = 1_000
SEED = int(os.environ.get("STROM_E2E_EOS_SEED", "11"))

TRANSACTION_MAX_TIMEOUT_MS = 30_000
COPIER_TRANSACTION_TIMEOUT_MS = 20_000
# The transaction the abandoned copier of fault 5 leaves open: the coordinator aborts it.
SHORT_TRANSACTION_TIMEOUT_MS = 5_000
SETTINGS = {
    **FAST_FAILOVER_SETTINGS,
    # A dead replica leaves the ISRs (1.5 s) before the controller fences its node (3 s): a
    # transaction committed just after a partition leader died has its PrepareCommit written
    # while that leader still leads, and its markers must wait for the new leader (fault 7).
    "replica.lag.time.max.ms": 1500,
    "group.initial.rebalance.delay.ms": 0,
    "transaction.max.timeout.ms": TRANSACTION_MAX_TIMEOUT_MS,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}
# Small segments: the output's transactions span many segments, and a restarted replica must
# still know which of them were aborted (Kafka keeps that in each segment's .txnindex).
SEGMENT_BYTES = int(os.environ.get("STROM_E2E_EOS_SEGMENT_BYTES", str(1 << 20)))
TOPIC_CONFIG = {"min.insync.replicas": "2", "segment.bytes": str(SEGMENT_BYTES)}
TRANSACTION_STATE_TOPIC = "__transaction_state"
TRANSACTION_STATE_PARTITIONS = 50
OFFSETS_TOPIC = "__consumer_offsets"
FIND_COORDINATOR = 10
COORDINATOR_TRANSACTION = 1

COPIER = pathlib.Path(__file__).with_name("eos_copier.py")
COPIER_FATAL_EXIT = 3
COPIER_UNSUPPORTED_EXIT = 4
# How long the copier may go without committing while nothing is being done to it.
PROGRESS_TIMEOUT_S = 60.0
RECOVERY_TIMEOUT_S = 30.0

# The fault schedule of one round: (share of the round's records copied, fault).
FAULTS = (
    (0.10, "kill_held_copier"),
    (0.20, "kill_held_coordinator"),
    (0.30, "kill_running_copier"),
    (0.40, "kill_held_partition_leader"),
    (0.50, "abandon_held_copier"),
    (0.60, "kill_committing_coordinator"),
    (0.70, "kill_partition_leader_then_commit"),
    (0.75, "kill_committing_partition_leader"),
    (0.80, "kill_held_copier"),
    (0.90, "kill_running_coordinator"),
)
# STROM_E2E_EOS_FAULTS=name,name,...: only these faults (to reproduce one); default every one.
ONLY_FAULTS = set(filter(None, os.environ.get("STROM_E2E_EOS_FAULTS", "").split(","))) or {f for _, f in FAULTS}
assert ONLY_FAULTS <= {f for _, f in FAULTS}, f"unknown faults in STROM_E2E_EOS_FAULTS: {ONLY_FAULTS}"
# The longest delay between releasing a held copier (it sees the release within a millisecond
# and calls commit_transaction) and a kill meant to land in the commit: here commit_transaction
# returns about 3 ms after the release (EndTxn answered once PrepareCommit is written), and
# the markers and CompleteCommit follow.
COMMIT_KILL_DELAY_MAX_S = 0.005


# -- the copier process -------------------------------------------------------------------


class CopierExit(Exception):
    pass


class Copiers:
    """The copier processes of one test, one at a time: start, kill -9, events, hold file.

    A copier that exits fatally (status 3) is started again, as an application's supervisor
    would, and counted; any other exit fails the test (status 4: the broker lacks an API the
    copier needs)."""

    def __init__(self, workdir: pathlib.Path, args: list[str], diagnose=lambda: ""):
        self.workdir = workdir
        self.args = args
        # Called when a wait fails: what the cluster says about the transaction.
        self.diagnose = diagnose
        self.hold_file = workdir / "hold"
        self.runs: list[tuple[subprocess.Popen, pathlib.Path, pathlib.Path]] = []
        self.fatal_exits: list[str] = []
        self.killed = 0

    # -- processes

    @property
    def current(self) -> subprocess.Popen | None:
        return self.runs[-1][0] if self.runs else None

    def start(self, transaction_timeout_ms: int = COPIER_TRANSACTION_TIMEOUT_MS) -> None:
        assert self.current is None or self.current.poll() is not None, "a copier is running"
        run = len(self.runs)
        out, err = self.workdir / f"copier{run}.out", self.workdir / f"copier{run}.err"
        argv = [sys.executable, str(COPIER), *self.args, "--hold-file", str(self.hold_file),
                "--transaction-timeout-ms", str(transaction_timeout_ms)]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        self.runs.append((process, out, err))

    def kill(self) -> None:
        process = self.current
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
            self.killed += 1

    def close(self) -> None:
        for process, _, _ in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait()

    def supervise(self) -> None:
        """Starts a new copier if the current one exited fatally; raises on other exits."""
        process = self.current
        code = process.poll() if process is not None else None
        if code is None or code == 0:
            return
        if code == -9:
            raise CopierExit("the copier was killed and not restarted")
        events = self.events()
        last = events[-1] if events else {}
        if code == COPIER_FATAL_EXIT:
            self.fatal_exits.append(f"run {len(self.runs) - 1}: {last}")
            self.start()
            return
        if code == COPIER_UNSUPPORTED_EXIT:
            raise CopierExit(f"the broker does not offer what the copier needs: {last.get('error')}")
        raise CopierExit(
            f"copier run {len(self.runs) - 1} exited with {code}; last event {last}; stderr:\n{self.stderr_tail()}"
        )

    # -- its output

    def events(self, run: int = -1) -> list[dict]:
        """The run's events so far (complete lines only)."""
        if not self.runs:
            return []
        text = self.runs[run][1].read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n") and line.strip()]

    def stderr_tail(self, lines: int = 30) -> str:
        text = self.runs[-1][2].read_text(errors="replace") if self.runs else ""
        return "\n".join(line for line in text.splitlines() if not line.startswith("%"))[-4000:]

    def rdkafka_tail(self, lines: int = 40) -> str:
        """The last lines of librdkafka's log (its `eos` and `cgrp` debug contexts) of the
        current run."""
        text = self.runs[-1][2].read_text(errors="replace") if self.runs else ""
        return "\n".join([line[:400] for line in text.splitlines() if line.startswith("%")][-lines:])

    def dump_stacks(self) -> None:
        """Has a running copier print its threads' Python stacks to its stderr (SIGUSR1)."""
        process = self.current
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)

    def copied(self) -> int:
        """Input records copied by committed transactions, as the copiers reported them."""
        return max(
            (e.get("copied", 0) for run in range(len(self.runs)) for e in self.events(run) if e["event"] == "committed"),
            default=0,
        )

    def all_events(self) -> list[dict]:
        return [dict(e, run=run) for run in range(len(self.runs)) for e in self.events(run)]

    def wait_for(self, predicate, timeout_s: float, what: str):
        """Waits until predicate(events of the current run) is truthy, supervising the copier."""
        def check():
            self.supervise()
            return predicate(self.events())

        try:
            return wait_until(check, timeout_s, what, interval_s=0.01)
        except AssertionError as error:
            self.dump_stacks()
            tail = self.events()[-12:]
            run = len(self.runs) - 1
            raise AssertionError(
                f"{error}; copier run {run} ({self.runs[run][1]}), its last events: {tail}; earlier runs' "
                f"fatal exits: {self.fatal_exits}; {self.diagnose()}; stderr (with the Python stacks):\n"
                f"{self.stderr_tail()}\nlibrdkafka's last lines:\n{self.rdkafka_tail()}"
            ) from None

    def wait_held(self, at: int, timeout_s: float = PROGRESS_TIMEOUT_S) -> dict:
        """The copier's `held` event once it holds a transaction at `at` or more copied."""
        def held(events):
            last = events[-1] if events else {}
            return last if last.get("event") == "held" and last["copied"] >= at else None

        return self.wait_for(held, timeout_s, f"the copier holding a transaction at {at} copied")

    def wait_copied(self, count: int, timeout_s: float = PROGRESS_TIMEOUT_S) -> None:
        self.wait_for(lambda _: self.copied() >= count, timeout_s, f"{count} records copied")

    def wait_outcome(self, txn: int, timeout_s: float = PROGRESS_TIMEOUT_S) -> dict:
        """The current run's commit or abort of transaction `txn`."""
        def ended(events):
            return next((e for e in events if e["event"] in ("committed", "aborted") and e.get("txn") == txn), None)

        return self.wait_for(ended, timeout_s, f"transaction {txn} committed or aborted")

    # -- the hold file

    def hold_at(self, copied: int | None) -> None:
        """Asks the copier to hold mid-transaction once `copied` records are copied (None: never)."""
        if copied is None:
            self.hold_file.unlink(missing_ok=True)
            return
        temporary = self.hold_file.with_suffix(".tmp")
        temporary.write_text(str(copied))
        temporary.replace(self.hold_file)


# -- cluster helpers ----------------------------------------------------------------------


def find_transaction_coordinator(cluster: Cluster, transactional_id: str) -> int:
    """The coordinator's node id from FindCoordinator (v1, key type TRANSACTION), asked of
    every reachable node until one answers without error."""
    body = raw_kafka.string(transactional_id.encode()) + struct.pack(">b", COORDINATOR_TRANSACTION)
    last = None
    for node in cluster.nodes.values():
        if not node.reachable():
            continue
        try:
            with raw_kafka.connect(node.bootstrap) as sock:
                sock.sendall(raw_kafka.request(FIND_COORDINATOR, 1, 7, body, flexible=False))
                payload = raw_kafka.read_response(sock)
        except OSError as error:
            last = error
            continue
        _, _, error_code = struct.unpack_from(">iih", payload, 0)
        _, position = raw_kafka.read_string(payload, 10)
        (node_id,) = struct.unpack_from(">i", payload, position)
        if error_code == 0:
            return node_id
        last = f"error code {error_code} from {node.name}"
    raise AssertionError(f"no transaction coordinator for {transactional_id}: {last}")


def transaction_coordinator(cluster: Cluster, transactional_id: str, exclude: tuple[int, ...] = ()) -> int:
    """The coordinator once FindCoordinator names the leader of the transactional id's
    `__transaction_state` partition, that leader is not in `exclude`, and every node agrees."""
    partition = offsets_partition_for(transactional_id, TRANSACTION_STATE_PARTITIONS)
    seen = []

    def agreed():
        # FindCoordinator first: it creates `__transaction_state` (a Metadata request naming
        # the topic before it exists would have it auto-created as an ordinary topic).
        found = find_transaction_coordinator(cluster, transactional_id)
        leader = cluster.wait_for_leader(TRANSACTION_STATE_TOPIC, partition, timeout_s=5, exclude=exclude)
        seen[:] = [(leader, found)]
        return leader if found == leader else None

    try:
        return wait_until(agreed, RECOVERY_TIMEOUT_S, f"a coordinator for {transactional_id} not in {exclude}", 0.1)
    except AssertionError as error:
        raise AssertionError(
            f"{error}; (leader of {TRANSACTION_STATE_TOPIC}[{partition}], FindCoordinator): {seen}"
        ) from None


def list_offsets(cluster: Cluster, topic: str, isolation_level, admin=None) -> dict[int, int]:
    # One AdminClient for a series of calls: a new one may take seconds to serve its first
    # request (librdkafka drops its bootstrap connections once it has the cluster's brokers).
    admin = admin or admin_client(cluster.live_bootstrap())
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)}
    futures = admin.list_offsets(request, isolation_level=isolation_level, request_timeout=10)
    return {tp.partition: future.result(timeout=15).offset for tp, future in futures.items()}


def wait_stable(cluster: Cluster, topic: str, timeout_s: float, what: str) -> float:
    """Waits until the topic's last stable offsets equal its high watermarks; returns the wait."""
    started = time.monotonic()
    seen = []
    admin = admin_client(cluster.live_bootstrap())

    def stable():
        lso = list_offsets(cluster, topic, IsolationLevel.READ_COMMITTED, admin)
        hw = list_offsets(cluster, topic, IsolationLevel.READ_UNCOMMITTED, admin)
        seen[:] = [(lso, hw)]
        return lso == hw

    try:
        wait_until(stable, timeout_s, f"{topic}'s last stable offsets reaching the high watermarks {what}", 0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; last (LSO, HW): {seen}") from None
    return time.monotonic() - started


# -- the pipeline -------------------------------------------------------------------------


@dataclasses.dataclass
class Pipeline:
    cluster: Cluster
    copiers: Copiers
    transactional_id: str
    group: str
    input: str
    output: str
    mode: str
    # Partitions whose leaders must be back and in sync after a node restarts.
    watched: list[tuple[str, int]]
    log: list[str] = dataclasses.field(default_factory=list)
    rng: random.Random = dataclasses.field(default_factory=lambda: random.Random(SEED))

    def note(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} copied {self.copiers.copied()}: {text}"
        self.log.append(line)
        print(line, flush=True)

    # -- faults: each is called with `at`, the records copied when it strikes, and `next_at`,
    # where the next fault strikes (None: the last): released, the copier runs on to there.

    def kill_held_copier(self, at: int, next_at: int | None) -> None:
        held = self.hold(at)
        self.copiers.kill()
        self.note(f"copier killed holding transaction {held['txn']}")
        self.let_go(held, next_at)
        self.copiers.start()

    def kill_running_copier(self, at: int, next_at: int | None) -> None:
        self.copiers.hold_at(next_at)
        self.copiers.wait_copied(at)
        self.copiers.kill()
        self.note("copier killed while running")
        self.copiers.start()

    def kill_held_coordinator(self, at: int, next_at: int | None) -> None:
        held = self.hold(at)
        coordinator = transaction_coordinator(self.cluster, self.transactional_id)
        self.kill_node(coordinator, f"transaction coordinator, copier holding transaction {held['txn']}")
        new = transaction_coordinator(self.cluster, self.transactional_id, exclude=(coordinator,))
        self.note(f"node {new} coordinates; releasing the copier")
        self.release(held, next_at)
        self.restart_node(coordinator)

    def kill_running_coordinator(self, at: int, next_at: int | None) -> None:
        self.copiers.hold_at(next_at)
        coordinator = transaction_coordinator(self.cluster, self.transactional_id)
        self.copiers.wait_copied(at)
        self.kill_node(coordinator, "transaction coordinator, copier running")
        new = transaction_coordinator(self.cluster, self.transactional_id, exclude=(coordinator,))
        self.note(f"node {new} coordinates")
        self.restart_node(coordinator)

    def kill_held_partition_leader(self, at: int, next_at: int | None) -> None:
        held, partition, leader = self.hold_remote(at)
        self.kill_node(leader, f"leader of {self.output}[{partition}], copier holding transaction {held['txn']}")
        new = self.cluster.wait_for_leader(self.output, partition, timeout_s=RECOVERY_TIMEOUT_S, exclude=(leader,))
        self.note(f"node {new} leads {self.output}[{partition}]; releasing the copier")
        self.release(held, next_at)
        self.restart_node(leader)

    def kill_committing_coordinator(self, at: int, next_at: int | None) -> None:
        """Released, the copier commits; the coordinator's node dies within milliseconds,
        likely between PrepareCommit and CompleteCommit, with markers in flight."""
        held = self.hold(at)
        coordinator = transaction_coordinator(self.cluster, self.transactional_id)
        self.let_go(held, next_at)
        time.sleep(self.rng.uniform(0, COMMIT_KILL_DELAY_MAX_S))
        self.kill_node(coordinator, f"transaction coordinator, copier committing transaction {held['txn']}")
        new = transaction_coordinator(self.cluster, self.transactional_id, exclude=(coordinator,))
        self.note(f"node {new} coordinates")
        self.outcome(held)
        self.restart_node(coordinator)

    def kill_partition_leader_then_commit(self, at: int, next_at: int | None) -> None:
        """The leader of a partition of the held transaction dies and the copier commits at
        once: the markers go to a leader that is gone but not yet fenced (for
        broker.session.timeout.ms), then to the new leader."""
        held, partition, leader = self.hold_remote(at)
        self.kill_node(leader, f"leader of {self.output}[{partition}], copier about to commit transaction {held['txn']}")
        self.release(held, next_at)
        self.restart_node(leader)

    def kill_committing_partition_leader(self, at: int, next_at: int | None) -> None:
        """Released, the copier commits; a leader of a partition of the transaction dies
        within milliseconds, likely once PrepareCommit is written and before its marker is."""
        held, partition, leader = self.hold_remote(at)
        self.let_go(held, next_at)
        time.sleep(self.rng.uniform(0, COMMIT_KILL_DELAY_MAX_S))
        self.kill_node(leader, f"leader of {self.output}[{partition}], copier committing transaction {held['txn']}")
        self.outcome(held)
        self.restart_node(leader)

    def abandon_held_copier(self, at: int, next_at: int | None) -> None:
        """A copier with a short transaction.timeout.ms holds a transaction and dies; nobody
        calls init_transactions for its id: the coordinator must abort it on its timeout."""
        self.copiers.hold_at(at)
        self.copiers.kill()
        self.note("copier killed while running")
        self.copiers.start(transaction_timeout_ms=SHORT_TRANSACTION_TIMEOUT_MS)
        held = self.copiers.wait_held(at)
        self.copiers.kill()
        self.note(
            f"copier with transaction.timeout.ms={SHORT_TRANSACTION_TIMEOUT_MS} killed holding transaction {held['txn']}"
        )
        waited = wait_stable(self.cluster, self.output, TRANSACTION_MAX_TIMEOUT_MS / 1000, "with the copier gone")
        self.note(f"abandoned transaction aborted by the coordinator: output stable after {waited:.1f} s")
        self.let_go(held, next_at)
        self.copiers.start()

    # -- steps

    def hold(self, at: int) -> dict:
        self.copiers.hold_at(at)
        held = self.copiers.wait_held(at)
        self.note(f"copier holding transaction {held['txn']} at {held['copied']} copied")
        return held

    def hold_remote(self, at: int, attempts: int = 20) -> tuple[dict, int, int]:
        """Holds the copier in a transaction that wrote to an output partition led by another
        node than the coordinator (so its marker goes over the network); returns the held
        event, that partition and its leader. A held transaction without one is let go and
        the next one held, up to `attempts` times; then any partition of it is taken."""
        held = self.hold(at)
        for _ in range(attempts):
            coordinator = transaction_coordinator(self.cluster, self.transactional_id)
            leaders = {
                p: self.cluster.wait_for_leader(self.output, p, timeout_s=RECOVERY_TIMEOUT_S) for p in held["partitions"]
            }
            remote = sorted(p for p, leader in leaders.items() if leader != coordinator)
            if remote:
                partition = remote[held["txn"] % len(remote)]
                return held, partition, leaders[partition]
            held = self.hold(held["copied"] + 1)
        partition = held["partitions"][0]
        return held, partition, self.cluster.wait_for_leader(self.output, partition, timeout_s=RECOVERY_TIMEOUT_S)

    def let_go(self, held: dict, next_at: int | None) -> None:
        """Lets the held copier go on, to `next_at` or (when it is past that already) to its
        next transaction."""
        self.copiers.hold_at(None if next_at is None else max(next_at, held["copied"] + 1))

    def release(self, held: dict, next_at: int | None) -> None:
        """let_go, then waits for the held transaction's outcome."""
        self.let_go(held, next_at)
        self.outcome(held)

    def outcome(self, held: dict) -> None:
        outcome = self.copiers.wait_outcome(held["txn"])
        self.note(f"held transaction {held['txn']}: {outcome['event']} {outcome.get('error', '')}")

    def kill_node(self, node_id: int, what: str) -> None:
        self.cluster.kill(node_id)
        self.note(f"node {node_id} killed ({what})")

    def restart_node(self, node_id: int) -> None:
        self.cluster.start(node_id)
        self.cluster.wait_for_brokers(3, timeout_s=RECOVERY_TIMEOUT_S)
        for topic, partition in self.watched:
            self.cluster.wait_for_isr(topic, partition, 3, timeout_s=RECOVERY_TIMEOUT_S)
        self.note(f"node {node_id} back, every watched partition in sync")


# -- reading back -------------------------------------------------------------------------


def read_all(cluster: Cluster, topic: str, end_offsets: dict[int, int], isolation: str) -> dict[int, list]:
    """{partition: [(offset, key, value)]} of every record below `end_offsets` (the last stable
    offsets for read_committed), read from the beginning."""
    reader = Consumer({
        "bootstrap.servers": cluster.live_bootstrap(),
        "group.id": unique("eos-reader"),
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 50,
        "check.crcs": True,
    })
    records: dict[int, list] = {p: [] for p in end_offsets}
    pending = {p for p, end in end_offsets.items() if end > 0}
    reader.assign([TopicPartition(topic, p, 0) for p in pending])
    deadline = time.monotonic() + 120
    try:
        while pending:
            assert time.monotonic() < deadline, f"reading {topic} ({isolation}) took over 120 s; left {pending}"
            for message in reader.consume(num_messages=10_000, timeout=0.5):
                error = message.error()
                if error is None:
                    records[message.partition()].append((message.offset(), message.key(), message.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    if message.offset() >= end_offsets[message.partition()]:
                        pending.discard(message.partition())
                else:
                    raise KafkaException(error)
    finally:
        reader.close()
    return records


def decode(value: bytes) -> tuple[int, int, int, int, bytes]:
    """(input partition, input offset, copier pid, transaction number, input value)."""
    head, payload = value.split(b"|", 1)
    in_partition, in_offset, pid, txn = (int(x) for x in head.split(b":"))
    return in_partition, in_offset, pid, txn, payload


def check_output(inputs: dict, committed: dict, uncommitted: dict, observed: list) -> dict:
    """Every check on what was read back; returns figures for the report."""
    committed_offsets = {p: {o for o, _, _ in records} for p, records in committed.items()}
    # Exactly once, in order, per partition and per key, with the input's key and value.
    for p, records in committed.items():
        copied = [decode(v) + (k,) for _, k, v in records]
        assert all(c[0] == p for c in copied), f"output[{p}] holds records of other input partitions"
        offsets = [c[1] for c in copied]
        if offsets != list(range(len(inputs[p]))):
            duplicates = len(offsets) - len(set(offsets))
            missing = sorted(set(range(len(inputs[p]))) - set(offsets))
            first_bad = next((i for i, o in enumerate(offsets) if o != i), len(offsets))
            raise AssertionError(
                f"output[{p}] (read_committed) is not input[{p}] exactly once in order: {len(offsets)} records for "
                f"{len(inputs[p])} inputs, {duplicates} duplicates, {len(missing)} missing (first {missing[:5]}); "
                f"first out of place at output index {first_bad}: {copied[max(0, first_bad - 2):first_bad + 3]}"
            )
        for (in_offset, in_key, in_value), c in zip(inputs[p], copied):
            assert (c[5], c[4]) == (in_key, in_value), (
                f"output of input[{p}]@{in_offset} is {c}, input {in_key!r}={in_value!r}"
            )
    by_key_in: dict = {}
    by_key_out: dict = {}
    for p in inputs:
        for offset, key, _ in inputs[p]:
            by_key_in.setdefault(key, []).append(offset)
        for _, key, value in committed[p]:
            by_key_out.setdefault(key, []).append(decode(value)[1])
    assert by_key_in == by_key_out, "per-key order differs between input and output"

    # Transactions are all or nothing, and the faults aborted some.
    aborted = {
        p: [(o, decode(v)) for o, _, v in records if o not in committed_offsets[p]] for p, records in uncommitted.items()
    }
    aborted_txns = {(d[2], d[3]) for records in aborted.values() for _, d in records}
    committed_txns = {(decode(v)[2], decode(v)[3]) for records in committed.values() for _, _, v in records}
    mixed = aborted_txns & committed_txns
    assert not mixed, f"transactions (copier pid, number) with records both committed and aborted: {sorted(mixed)[:10]}"
    assert all(len(uncommitted[p]) >= len(committed[p]) for p in committed)
    if ONLY_FAULTS & {"kill_held_copier", "abandon_held_copier"}:
        assert aborted_txns, "no aborted transaction in the output: the faults aborted nothing"

    # The read_committed consumer that read along saw a prefix of the final output.
    for p in committed:
        seen = [(o, v) for (partition, o, _, v) in observed if partition == p]
        final = [(o, v) for o, _, v in committed[p]]
        if seen != final[: len(seen)]:
            first_bad = next(i for i, (a, b) in enumerate(zip(seen, final + [None] * len(seen))) if a != b)
            bad = seen[first_bad]
            kind = "an aborted record" if bad[0] not in committed_offsets[p] else "a record out of place"
            raise AssertionError(
                f"the read_committed consumer got {kind} from output[{p}]: {bad} at its index {first_bad}, "
                f"final committed there: {final[first_bad] if first_bad < len(final) else 'nothing'}"
            )
    return {
        "aborted_records": sum(len(r) for r in aborted.values()),
        "aborted_transactions": len(aborted_txns),
        "committed_transactions": len(committed_txns),
        "observed": len(observed),
    }


# -- the test -----------------------------------------------------------------------------


def make_input(cluster: Cluster, topic: str, records: int) -> None:
    """`records` keyed records, seeded: key k always in partition crc32(k) % PARTITIONS."""
    rng = random.Random(SEED)
    keys = [b"key-%04d" % i for i in range(KEYS)]

    def record(i: int) -> dict:
        key = rng.choice(keys)
        return {"key": key, "value": b"v%07d-%016x" % (i, rng.getrandbits(64)), "partition": zlib.crc32(key) % PARTITIONS}

    p = producer(cluster.bootstrap, enable_idempotence=True, linger_ms=20, message_timeout_ms=120_000)
    produce_all(p, topic, (record(i) for i in range(records)), timeout_s=180)


def run_pipeline(cluster_factory, tmp_path: pathlib.Path, mode: str) -> None:  # noqa: F811
    require_cluster_info()
    records, rounds = (SOAK_RECORDS, SOAK_ROUNDS) if SOAK else (RECORDS, 1)
    cluster: Cluster = cluster_factory(3, settings=SETTINGS)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    tag = unique("eos")
    source, sink, transactional_id, group = f"{tag}-in", f"{tag}-out", f"{tag}-txn", f"{tag}-group"
    for topic in (source, sink):
        cluster.create_topic(topic, partitions=PARTITIONS, replication_factor=3, config=TOPIC_CONFIG)

    started = time.monotonic()
    make_input(cluster, source, records)
    input_ends = list_offsets(cluster, source, IsolationLevel.READ_UNCOMMITTED)
    assert sum(input_ends.values()) == records
    print(f"input: {records} records in {time.monotonic() - started:.1f} s, end offsets {input_ends}")

    # __transaction_state is made on the first FindCoordinator; the coordinator needs its ISR.
    coordinator = transaction_coordinator(cluster, transactional_id)
    state_partition = offsets_partition_for(transactional_id, TRANSACTION_STATE_PARTITIONS)
    watched = [(TRANSACTION_STATE_TOPIC, state_partition)]
    watched += [(topic, p) for topic in (source, sink) for p in range(PARTITIONS)]
    if mode == "group":
        watched.append((OFFSETS_TOPIC, offsets_partition_for(group)))
    print(f"transaction coordinator: node {coordinator} ({TRANSACTION_STATE_TOPIC}[{state_partition}])")

    workdir = tmp_path / "copiers"
    workdir.mkdir()
    ends = ",".join(f"{p}={o}" for p, o in input_ends.items())
    copiers = Copiers(workdir, [
        "--bootstrap", cluster.bootstrap, "--input", source, "--output", sink, "--partitions", str(PARTITIONS),
        "--transactional-id", transactional_id, "--group", group, "--mode", mode, "--end-offsets", ends,
    ], diagnose=lambda: describe_transaction_state(
        cluster, transactional_id, sink, group if mode == "group" else None, source
    ))
    pipeline = Pipeline(cluster, copiers, transactional_id, group, source, sink, mode, watched)
    observer = ContinuousConsumer(cluster.bootstrap, sink, PARTITIONS, isolation_level="read_committed")
    observer.start()
    try:
        copy_started = time.monotonic()
        copiers.start()
        schedule = [
            (int(records * (round_index + share) / rounds), fault)
            for round_index in range(rounds)
            for share, fault in FAULTS
            if fault in ONLY_FAULTS
        ]
        for index, (at, fault) in enumerate(schedule):
            next_at = schedule[index + 1][0] if index + 1 < len(schedule) else None
            getattr(pipeline, fault)(at, next_at)
        faults_stopped = time.monotonic()
        copiers.hold_at(None)
        pipeline.note("faults over")
        copiers.wait_for(lambda ev: any(e["event"] == "done" for e in ev), PROGRESS_TIMEOUT_S * rounds, "the copy done")
        copy_seconds = time.monotonic() - copy_started
        copiers.current.wait(timeout=30)
        stable_after = wait_stable(cluster, sink, TRANSACTION_MAX_TIMEOUT_MS / 1000, "after the faults stopped")
        output_ends = list_offsets(cluster, sink, IsolationLevel.READ_COMMITTED)
        check_transaction_state(cluster, transactional_id)
        inputs = read_all(cluster, source, input_ends, "read_uncommitted")
        committed = read_all(cluster, sink, output_ends, "read_committed")
        uncommitted = read_all(cluster, sink, output_ends, "read_uncommitted")
        # The read-along consumer has read up to the last committed record of every partition.
        last = {p: records[-1][0] + 1 if records else 0 for p, records in committed.items()}
        observer.wait_until_caught_up(last, 60)
    finally:
        observer.stop()
        copiers.close()

    try:
        figures = check_output(inputs, committed, uncommitted, observer.seen())
    except AssertionError as error:
        leaders = {p: cluster.partition_leader(sink, p) for p in range(PARTITIONS)}
        raise AssertionError(f"{error}\noutput leaders now {leaders}; the faults:\n" + "\n".join(pipeline.log)) from None
    assert not observer.errors or all("EOF" in e for e in observer.errors), observer.errors[-5:]
    if mode == "group":
        assert group_offsets(cluster, group, source) == input_ends, "the group's committed offsets are not the input's end"
    print(
        f"{mode}: {records} records copied exactly once in {copy_seconds:.1f} s through {len(copiers.runs)} copiers "
        f"({copiers.killed} killed, fatal exits: {copiers.fatal_exits}); {figures}; "
        f"output stable {stable_after:.1f} s after the copy ({time.monotonic() - faults_stopped:.1f} s after the faults)"
    )
    check_after_restart(cluster, sink, output_ends, committed, uncommitted, watched)


def describe_transaction_state(
    cluster: Cluster, transactional_id: str, topic: str, group: str | None = None, source: str | None = None
) -> str:
    """For failure messages: `strom txn describe`, the topic's last stable offsets and high
    watermarks, the group's stable committed offsets (OffsetFetch with require_stable, as the
    copier's consumer asks: UNSTABLE_OFFSET_COMMIT while a transaction holds them) and the lines
    of the brokers' logs that name the transactional id or the group (best effort)."""
    parts = []
    try:
        result = cluster.run_cli(["txn", "describe", transactional_id, "--bootstrap", cluster.live_bootstrap()])
        parts.append(f"strom txn describe: {' | '.join(result.stdout.strip().splitlines()) or result.stderr.strip()}")
    except Exception as error:  # noqa: BLE001 - a diagnosis must not hide the failure
        parts.append(f"strom txn describe: {error}")
    try:
        admin = admin_client(cluster.live_bootstrap())
        lso = list_offsets(cluster, topic, IsolationLevel.READ_COMMITTED, admin)
        hw = list_offsets(cluster, topic, IsolationLevel.READ_UNCOMMITTED, admin)
        parts.append(f"{topic} LSO {lso} HW {hw}")
    except Exception as error:  # noqa: BLE001
        parts.append(f"{topic} offsets: {error}")
    if group is not None and source is not None:
        try:
            from confluent_kafka import ConsumerGroupTopicPartitions

            admin = admin_client(cluster.live_bootstrap())
            request = ConsumerGroupTopicPartitions(group, [TopicPartition(source, p) for p in range(PARTITIONS)])
            futures = admin.list_consumer_group_offsets([request], require_stable=True, request_timeout=10)
            fetched = futures[group].result(timeout=15).topic_partitions
            stable = {tp.partition: tp.error.str() if tp.error else tp.offset for tp in fetched}
            parts.append(f"group {group}'s stable offsets of {source}: {stable}")
        except Exception as error:  # noqa: BLE001
            parts.append(f"group {group}'s stable offsets: {error}")
    needles = [transactional_id] + ([group] if group else [])
    for node in cluster.nodes.values():
        try:
            lines = [line for line in node.log_path.read_text(errors="replace").splitlines()
                     if any(needle in line for needle in needles)]
        except OSError as error:
            lines = [f"unreadable: {error}"]
        parts.append(f"{node.name}'s log lines naming {needles} (last 15 of {len(lines)}):\n" + "\n".join(
            line[:500] for line in lines[-15:]))
    return "; ".join(parts)


def check_transaction_state(cluster: Cluster, transactional_id: str) -> None:
    """`strom txn describe` (DescribeTransactions): the transaction has ended."""
    if "describe" not in (cluster.run_cli(["txn", "--help"]).stdout or ""):
        print(f"{cluster.run_cli(['--version']).stdout.strip()} has no `strom txn describe`: not checked")
        return
    result = cluster.run_cli(["txn", "describe", transactional_id, "--bootstrap", cluster.live_bootstrap()])
    assert result.returncode == 0, f"strom txn describe failed: {result.stderr}"
    header, row = (line.split() for line in result.stdout.strip().splitlines()[:2])
    described = dict(zip(header, row))
    assert described["STATE"] in ("CompleteCommit", "CompleteAbort", "Empty"), result.stdout
    assert int(described["COORDINATOR"]) == find_transaction_coordinator(cluster, transactional_id), result.stdout


def check_after_restart(
    cluster: Cluster, topic: str, output_ends: dict, committed: dict, uncommitted: dict, watched: list
) -> None:
    """kill -9 of every node, then a restart: read_committed returns the same output (every
    replica rebuilt which transactions were aborted, in every segment)."""
    for node_id in cluster.nodes:
        cluster.kill(node_id)
    cluster.start_all()
    cluster.wait_for_brokers(3, timeout_s=RECOVERY_TIMEOUT_S)
    for watched_topic, partition in watched:
        cluster.wait_for_isr(watched_topic, partition, 3, timeout_s=RECOVERY_TIMEOUT_S)
    # A restarted leader's high watermark starts at the log start and moves once its followers
    # fetch: until it is back to where the output ended, LSO == HW says nothing.
    admin = admin_client(cluster.live_bootstrap())
    wait_until(
        lambda: all(
            hw >= output_ends[p]
            for p, hw in list_offsets(cluster, topic, IsolationLevel.READ_UNCOMMITTED, admin).items()
        ),
        RECOVERY_TIMEOUT_S,
        "the high watermarks back to the output's ends after a restart of every node",
    )
    wait_stable(cluster, topic, TRANSACTION_MAX_TIMEOUT_MS / 1000, "after a restart of every node")
    assert list_offsets(cluster, topic, IsolationLevel.READ_COMMITTED) == output_ends
    again = read_all(cluster, topic, output_ends, "read_committed")
    for p in committed:
        if again[p] != committed[p]:
            before = {o for o, _, _ in committed[p]}
            extra = [o for o, _, _ in again[p] if o not in before]
            aborted = {o for o, _, _ in uncommitted[p]} - before
            leader = cluster.partition_leader(topic, p)
            raise AssertionError(
                f"after kill -9 and restart of every node, read_committed {topic}[{p}] (leader node {leader}) returns "
                f"{len(again[p])} records, {len(committed[p])} before; {len(extra)} not committed before, "
                f"{len(set(extra) & aborted)} of them aborted (first {extra[:5]})"
            )


def group_offsets(cluster: Cluster, group: str, topic: str) -> dict[int, int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = admin_client(cluster.live_bootstrap())
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request], require_stable=True, request_timeout=10)[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


@pytest.mark.timeout(1800 if SOAK else 300)
def test_exactly_once_pipeline_with_group_offsets(cluster_factory, tmp_path):  # noqa: F811
    run_pipeline(cluster_factory, tmp_path, "group")


@pytest.mark.timeout(1800 if SOAK else 300)
def test_exactly_once_pipeline_resuming_from_the_output(cluster_factory, tmp_path):  # noqa: F811
    run_pipeline(cluster_factory, tmp_path, "output")
