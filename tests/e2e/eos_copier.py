"""The exactly-once copier of test_transactions_cluster.py, run as its own process so that the
test can kill -9 it: a consume-transform-produce loop from INPUT to OUTPUT, one transaction per
polled batch, input partition p copied to output partition p.

    python eos_copier.py --bootstrap B --input IN --output OUT --partitions N
                         --transactional-id T --group G --mode group|output
                         [--batch 500] [--transaction-timeout-ms 20000] [--hold-file F]
                         [--end-offsets 0=33000,1=33500,2=33500]

Each output record has the input record's key and the value
b"<input partition>:<input offset>:<copier pid>:<transaction number>|<input value>", so the
checker can tell which input record it copies and which transaction wrote it.

Where the copy resumes after a crash, by `--mode`:

* `group`: Kafka's exactly-once pattern. The consumer (read_committed, no auto commit) is a
  member of group G (static membership, so a restarted copier takes its predecessor's place
  at once); the input positions are committed inside each transaction with
  send_offsets_to_transaction and a restarted copier resumes from the group's committed
  offsets.
* `output`: no group offsets. After init_transactions (which aborts the predecessor's open
  transaction) and once the output's last stable offset has reached its high watermark, the
  copier reads the output with read_committed and resumes each input partition after the last
  input offset copied there.

Errors are handled as librdkafka's transactions guide says: an abortable error aborts the
transaction and rewinds the consumer to the last committed positions; a retriable error on
commit retries the commit; a fatal error exits with status 3 (the test starts a new copier, as
an application's supervisor would), and so do 20 aborts in a row. An abort for
_UNSUPPORTED_FEATURE (the broker lacks an API, e.g. TxnOffsetCommit) exits with status 4.
A transactional call still blocked WATCHDOG_GRACE_S past its own timeout is fatal too (status
3, `stuck` event): librdkafka's send_offsets_to_transaction does not enforce its timeout while
it waits for a group coordinator that went down (librdkafka issues #5456 and #5511: when the
coordinator's node leaves Metadata, as a fenced node does, the request waits for ever).

With `--hold-file F`: once a batch is produced and flushed and (group mode) its offsets sent
(the transaction is open, its records are in the output partitions and its offsets are staged
by the group coordinator) the copier reads F; while F holds a number at or below
the records copied with this batch (the sum of the input positions) it prints `held` and waits
(at most 120 s), then sends the offsets and commits. The test holds the
copier mid-transaction this way to kill a node or the copier itself at that moment.

Stdout: one JSON object a line, flushed at once: `started`, `resumed` (the positions it starts
from), `committed` (transaction number, records, `copied`: the sum of the input positions
committed), `aborted` (the error), `held`, `released`, `done` (every input partition copied up
to --end-offsets; then it exits 0), `fatal`, `stuck` (a call the watchdog gave up on; then it
exits 3), `idle` (every 5 s while nothing is consumed: the assignment's positions). Stderr:
librdkafka's log with its `eos` (producer) and `cgrp` (consumer) debug contexts, and, on
SIGUSR1 or when the watchdog fires, every thread's Python stack.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import signal
import sys
import threading
import time

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

FATAL_EXIT = 3
# Exit status when the broker does not offer what the copier needs (e.g. TxnOffsetCommit).
UNSUPPORTED_EXIT = 4
# OffsetFetch errors that librdkafka's committed() may raise while the group coordinator moves
# or a transaction holds the offsets; asked again until CALL_TIMEOUT_S.
COMMITTED_RETRIABLE = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._WAIT_COORD,
}
# Aborts in a row, none committed between them, after which the copier gives up (fatal).
ABORTS_IN_A_ROW_MAX = 20
HOLD_MAX_S = 120.0
CALL_TIMEOUT_S = 30.0
# How long past its own timeout a transactional call may stay blocked before the copier
# gives up on its librdkafka handle and exits fatally (see the module docstring).
WATCHDOG_GRACE_S = 5.0
# While consume() returns nothing, an `idle` event this often (assignment and positions), so
# that a copier that stopped copying says where it stands.
IDLE_REPORT_S = 5.0


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def parse_offsets(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    return {int(p): int(o) for p, o in (item.split("=") for item in text.split(","))}


class Copier:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.partitions = list(range(args.partitions))
        self.end_offsets = parse_offsets(args.end_offsets)
        common = {
            "bootstrap.servers": args.bootstrap,
            "topic.metadata.refresh.interval.ms": 1000,
            "reconnect.backoff.max.ms": 500,
            "retry.backoff.max.ms": 500,
        }
        self.producer = Producer({
            **common,
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": args.transaction_timeout_ms,
            "message.timeout.ms": args.transaction_timeout_ms,
            "linger.ms": 5,
            "acks": "all",
            # The transaction state machine's steps, to stderr: what a stuck copier waited for.
            "debug": "eos",
        })
        consumer_config = {
            **common,
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            # Small fetches per partition: every poll mixes the input partitions, so that most
            # transactions span several output partitions (and their leaders).
            "max.partition.fetch.bytes": 8192,
            "check.crcs": True,
            # Joins, assignments and offset fetches, to stderr (see `debug` above).
            "debug": "cgrp",
        }
        if args.mode == "group":
            consumer_config.update({
                "group.instance.id": f"{args.group}-copier",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "partition.assignment.strategy": "range",
            })
        self.consumer = Consumer(consumer_config)
        self.transactions = 0
        self.aborts_in_a_row = 0
        # Input positions as of the last committed transaction (output mode's rewind point).
        self.committed_positions: dict[int, int] = {}

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        emit("started", pid=os.getpid(), mode=self.args.mode)
        retry(lambda: self.producer.init_transactions(CALL_TIMEOUT_S), "init_transactions")
        emit("initialized")
        if self.args.mode == "group":
            self.consumer.subscribe([self.args.input], on_assign=self.on_assign)
            return
        self.committed_positions = self.positions_from_output()
        emit("resumed", positions=self.committed_positions)
        self.consumer.assign([TopicPartition(self.args.input, p, o) for p, o in self.committed_positions.items()])

    def on_assign(self, consumer, partitions) -> None:
        """Group mode: the positions to rewind to are the group's committed offsets."""
        committed = self.committed(partitions)
        self.committed_positions = {tp.partition: max(tp.offset, 0) for tp in committed}
        emit("resumed", positions=self.committed_positions)

    def positions_from_output(self) -> dict[int, int]:
        """One past the last input offset copied to each output partition, from the output read
        with read_committed once its last stable offset has reached its high watermark."""
        admin = AdminClient({"bootstrap.servers": self.args.bootstrap})
        deadline = time.monotonic() + 120
        while True:
            try:
                committed = list_offsets(admin, self.args.output, self.partitions, IsolationLevel.READ_COMMITTED)
                uncommitted = list_offsets(admin, self.args.output, self.partitions, IsolationLevel.READ_UNCOMMITTED)
                if committed == uncommitted:
                    break
                emit("waiting_for_stable", lso=committed, hw=uncommitted)
            except KafkaException as error:
                emit("list_offsets_error", error=str(error))
            if time.monotonic() > deadline:
                raise SystemExit("the output's last stable offset did not reach its high watermark in 120 s")
            time.sleep(0.5)
        positions = {p: 0 for p in self.partitions}
        reader = Consumer({
            "bootstrap.servers": self.args.bootstrap,
            "group.id": f"{self.args.group}-resume-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 50,
        })
        pending = {p for p in self.partitions if committed[p] > 0}
        reader.assign([TopicPartition(self.args.output, p, 0) for p in pending])
        while pending:
            for message in reader.consume(num_messages=10000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and message.offset() >= committed[message.partition()]:
                        pending.discard(message.partition())
                    elif error.code() != KafkaError._PARTITION_EOF:
                        emit("reader_error", error=str(error))
                    continue
                in_partition, in_offset = message.value().split(b"|", 1)[0].split(b":")[:2]
                positions[int(in_partition)] = int(in_offset) + 1
            if time.monotonic() > deadline:
                raise SystemExit(f"reading the output back took over 120 s; partitions left {pending}")
        reader.close()
        return positions

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        self.start()
        idle_since = time.monotonic()
        idle_reported = idle_since
        while True:
            messages = []
            for message in self.consumer.consume(num_messages=self.args.batch, timeout=0.5):
                if message.error() is not None:
                    emit("consumer_error", error=str(message.error()))
                else:
                    messages.append(message)
            if not messages:
                if self.done():
                    emit("done", positions=self.committed_positions)
                    return
                if time.monotonic() - idle_reported >= IDLE_REPORT_S:
                    idle_reported = time.monotonic()
                    self.report_idle(idle_reported - idle_since)
                continue
            idle_since = idle_reported = time.monotonic()
            self.copy(messages)

    def report_idle(self, seconds: float) -> None:
        """An `idle` event: how long consume() has returned nothing, the assignment and the
        consumer's positions (-1001: none yet, e.g. its committed offsets are not fetched)."""
        try:
            assignment = self.consumer.assignment()
            positions = {tp.partition: tp.offset for tp in self.consumer.position(assignment)}
        except KafkaException as exception:
            emit("idle", seconds=round(seconds, 1), error=str(exception.args[0]))
            return
        emit("idle", seconds=round(seconds, 1), positions=positions, committed=self.committed_positions)

    def done(self) -> bool:
        if self.end_offsets is None:
            return False
        return all(self.committed_positions.get(p, 0) >= o for p, o in self.end_offsets.items())

    def copy(self, messages: list) -> None:
        self.transactions += 1
        txn = self.transactions
        self.producer.begin_transaction()
        positions = dict(self.committed_positions)
        for message in messages:
            value = b"%d:%d:%d:%d|" % (message.partition(), message.offset(), os.getpid(), txn) + message.value()
            self.produce(message.partition(), message.key(), value)
            positions[message.partition()] = message.offset() + 1
        try:
            if self.args.mode == "group":
                offsets = [TopicPartition(self.args.input, p, o) for p, o in positions.items()]
                metadata = self.consumer.consumer_group_metadata()
                with guarded("send_offsets_to_transaction"):
                    self.producer.send_offsets_to_transaction(offsets, metadata, CALL_TIMEOUT_S)
            self.hold_if_asked(txn, sum(positions.values()), sorted({m.partition() for m in messages}))
            self.commit()
        except KafkaException as exception:
            self.abort(exception.args[0], txn)
            return
        self.committed_positions = positions
        self.aborts_in_a_row = 0
        emit("committed", txn=txn, records=len(messages), copied=sum(positions.values()))

    def produce(self, partition: int, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.args.output, key=key, value=value, partition=partition)
                return
            except BufferError:
                self.producer.poll(0.05)

    def commit(self) -> None:
        """commit_transaction, retried while its error is retriable."""
        while True:
            try:
                with guarded("commit_transaction"):
                    self.producer.commit_transaction(CALL_TIMEOUT_S)
                return
            except KafkaException as exception:
                error = exception.args[0]
                if error.retriable() and not error.txn_requires_abort() and not error.fatal():
                    emit("commit_retry", error=str(error))
                    continue
                raise

    def abort(self, error: KafkaError, txn: int) -> None:
        if error.fatal() or not error.txn_requires_abort():
            emit("fatal", txn=txn, error=str(error), code=error.code())
            sys.exit(FATAL_EXIT)
        if error.code() == KafkaError._UNSUPPORTED_FEATURE:
            emit("unsupported", txn=txn, error=str(error))
            sys.exit(UNSUPPORTED_EXIT)
        self.aborts_in_a_row += 1
        if self.aborts_in_a_row > ABORTS_IN_A_ROW_MAX:
            emit("fatal", txn=txn, error=f"{self.aborts_in_a_row} aborts in a row, last: {error}", code=error.code())
            sys.exit(FATAL_EXIT)
        emit("aborting", txn=txn, error=str(error))
        retry(lambda: self.producer.abort_transaction(CALL_TIMEOUT_S), "abort_transaction")
        self.rewind()
        emit("aborted", txn=txn, error=str(error), positions=self.committed_positions)

    def rewind(self) -> None:
        """Seeks every assigned input partition back to the last committed position."""
        assignment = self.consumer.assignment()
        if self.args.mode == "group":
            committed = self.committed(assignment)
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else 0
                self.committed_positions[tp.partition] = offset
                self.consumer.seek(TopicPartition(self.args.input, tp.partition, offset))
            return
        for tp in assignment:
            self.consumer.seek(TopicPartition(self.args.input, tp.partition, self.committed_positions[tp.partition]))

    def committed(self, partitions: list) -> list:
        """The group's committed offsets (OffsetFetch, stable offsets only: read_committed),
        asked again while the answer is a retriable error (the group coordinator moving)."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            try:
                return self.consumer.committed(partitions, timeout=CALL_TIMEOUT_S)
            except KafkaException as exception:
                error = exception.args[0]
                retriable = error.retriable() or error.code() in COMMITTED_RETRIABLE
                if not retriable or time.monotonic() > deadline:
                    raise
                emit("retry", call="committed", error=str(error))
                time.sleep(0.2)

    def hold_if_asked(self, txn: int, copied: int, partitions: list[int]) -> None:
        if not self.hold_wanted(copied):
            return
        remaining = self.producer.flush(CALL_TIMEOUT_S)
        emit("held", txn=txn, copied=copied, partitions=partitions, unflushed=remaining)
        deadline = time.monotonic() + HOLD_MAX_S
        while self.hold_wanted(copied) and time.monotonic() < deadline:
            # Polled often: the test kills nodes milliseconds after the release, mid-commit.
            time.sleep(0.001)
        emit("released", txn=txn)

    def hold_wanted(self, copied: int) -> bool:
        """Whether the hold file exists and asks to hold at or before `copied` records."""
        if not self.args.hold_file:
            return False
        try:
            with open(self.args.hold_file) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return False
        return text != "" and int(text) <= copied


class Watchdog:
    """Exits the process (FATAL_EXIT) when a call in `guard` outlives its timeout by
    WATCHDOG_GRACE_S: librdkafka's send_offsets_to_transaction can block for ever waiting for
    a group coordinator that went away (see the module docstring), and a thread blocked in
    librdkafka cannot be interrupted, so the copier exits and is started again, as after any
    fatal error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (call, deadline) of the call under way.
        self._call: tuple[str, float] | None = None
        threading.Thread(target=self._watch, name="watchdog", daemon=True).start()

    @contextlib.contextmanager
    def guard(self, what: str, timeout_s: float = CALL_TIMEOUT_S):
        with self._lock:
            self._call = (what, time.monotonic() + timeout_s + WATCHDOG_GRACE_S)
        try:
            yield
        finally:
            with self._lock:
                self._call = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                call = self._call
            if call is not None and time.monotonic() > call[1]:
                emit("stuck", call=call[0], error=f"{call[0]} still blocked {WATCHDOG_GRACE_S:.0f} s past its timeout")
                faulthandler.dump_traceback(all_threads=True)
                os._exit(FATAL_EXIT)


_watchdog: Watchdog | None = None


def guarded(what: str, timeout_s: float = CALL_TIMEOUT_S):
    """A context in which a librdkafka call with this timeout runs under the watchdog."""
    global _watchdog
    if _watchdog is None:
        _watchdog = Watchdog()
    return _watchdog.guard(what, timeout_s)


def retry(call, what: str) -> None:
    """Calls `call` until it succeeds; retriable errors are retried, others exit (fatal)."""
    while True:
        try:
            with guarded(what):
                call()
            return
        except KafkaException as exception:
            error = exception.args[0]
            if error.retriable() and not error.fatal():
                emit("retry", call=what, error=str(error))
                time.sleep(0.2)
                continue
            emit("fatal", call=what, error=str(error), code=error.code())
            sys.exit(FATAL_EXIT)


def list_offsets(admin: AdminClient, topic: str, partitions: list[int], isolation_level) -> dict[int, int]:
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
    futures = admin.list_offsets(request, isolation_level=isolation_level, request_timeout=10)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


def main() -> None:
    # `kill -USR1` prints every thread's Python stack to stderr: where a stuck copier waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--mode", choices=("group", "output"), required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--transaction-timeout-ms", type=int, default=20000)
    parser.add_argument("--hold-file")
    parser.add_argument("--end-offsets", help="p=o,... : exit once every partition is copied up to these")
    Copier(parser.parse_args()).run()


if __name__ == "__main__":
    main()
