"""The three real clients under a `security_helpers.ClientSecurity`, and what the security tests
ask of them: produce and consume, the outcome of one request as a Kafka error name, the errors
a refused login leaves, ACLs and SCRAM users through the Admin API, and the `strom` CLI.

Outcomes are Kafka's names (`TOPIC_AUTHORIZATION_FAILED`, ...; None when it worked), so that a
test reads like the ACL/operation table it checks. Every wait has a deadline.

ACLs take effect when the broker has applied them from its metadata log, a moment after
CreateAcls answers. `grant` therefore adds a sentinel to the same request (DESCRIBE on a group
of its own for the principal, last in the request) and returns once the principal can describe
that group: the ACLs before it are then in force. (On a broker with
allow.everyone.if.no.acl.found=true the sentinel proves nothing: such tests wait for an outcome
instead.)
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from kafka_helpers import admin_client, admin_request, consume_range, produce_all, producer, unique, wait_until
from security_helpers import ClientSecurity, kafka_error_name, sasl_login
from strom_broker import STROM_BIN

CLIENTS = ("confluent-kafka", "kafka-python", "kcat")
CLIENT_TIMEOUT_S = 30
CLI_TIMEOUT_S = 60


# -- produce and consume with each client ------------------------------------------------------


def produce_with(client: str, address: str, security: ClientSecurity, topic: str, values: list[bytes]) -> None:
    """Produces `values` to partition 0 of `topic` with acks=all; fails on any delivery error."""
    if client == "confluent-kafka":
        p = producer(address, message_timeout_ms=CLIENT_TIMEOUT_S * 1000, **security.librdkafka())
        produce_all(p, topic, [{"value": v, "partition": 0} for v in values], CLIENT_TIMEOUT_S)
    elif client == "kafka-python":
        from kafka import KafkaProducer

        p = KafkaProducer(
            bootstrap_servers=address, acks="all", linger_ms=5, request_timeout_ms=20000, max_block_ms=20000,
            **security.kafka_python(),
        )
        try:
            futures = [p.send(topic, value=v, partition=0) for v in values]
            p.flush(timeout=CLIENT_TIMEOUT_S)
            for future in futures:
                future.get(timeout=CLIENT_TIMEOUT_S)
        finally:
            p.close(timeout=10)
    elif client == "kcat":
        result = subprocess.run(
            ["kcat", "-b", address, "-P", "-t", topic, "-p", "0", "-X", "message.timeout.ms=20000", *security.kcat_args()],
            input=b"".join(v + b"\n" for v in values), capture_output=True, timeout=CLIENT_TIMEOUT_S * 2,
        )
        assert result.returncode == 0, f"kcat -P exited {result.returncode}: {result.stderr.decode()[-2000:]}"
    else:
        raise AssertionError(f"unknown client {client}")


def consume_with(client: str, address: str, security: ClientSecurity, topic: str, count: int) -> list[bytes]:
    """The values of the first `count` records of partition 0 of `topic`."""
    if client == "confluent-kafka":
        return [r.value for r in consume_range(address, topic, 0, 0, count, CLIENT_TIMEOUT_S, **security.librdkafka())]
    if client == "kafka-python":
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KpTopicPartition

        c = KafkaConsumer(
            bootstrap_servers=address, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            request_timeout_ms=20000, **security.kafka_python(),
        )
        try:
            tp = KpTopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            values: list[bytes] = []
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while len(values) < count and time.monotonic() < deadline:
                for records in c.poll(timeout_ms=200).values():
                    values += [r.value for r in records]
            return values[:count]
        finally:
            c.close()
    if client == "kcat":
        result = subprocess.run(
            ["kcat", "-b", address, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", str(count), "-e",
             "-f", "%s\n", *security.kcat_args()],
            capture_output=True, timeout=CLIENT_TIMEOUT_S * 2,
        )
        assert result.returncode == 0, f"kcat -C exited {result.returncode}: {result.stderr.decode()[-2000:]}"
        return result.stdout.splitlines()
    raise AssertionError(f"unknown client {client}")


def round_trip_with(client: str, address: str, security: ClientSecurity, topic: str, count: int = 20) -> None:
    """`client` produces `count` records and reads them back, in order."""
    values = [f"{client}-{i}-{unique('v')}".encode() for i in range(count)]
    produce_with(client, address, security, topic, values)
    assert consume_with(client, address, security, topic, count) == values


# -- outcomes ---------------------------------------------------------------------------------


def produce_outcome(address: str, security: ClientSecurity, topic: str, **conf) -> str | None:
    """Produces one record with librdkafka: None if acknowledged, else the error's Kafka name."""
    reports = []
    p = producer(address, message_timeout_ms=15000, **security.librdkafka(), **conf)
    p.produce(topic, value=b"probe", partition=0, on_delivery=lambda error, _message: reports.append(error))
    remaining = p.flush(20)
    assert remaining == 0 and reports, f"no delivery report for a record to {topic} within 20 s"
    return None if reports[0] is None else kafka_error_name(reports[0])


def connect_errors(address: str, security: ClientSecurity, until: set[str], timeout_s: float = 15.0) -> list[str]:
    """The errors librdkafka reports (error_cb) while it tries to connect with `security` (a
    client connects to its bootstrap broker as soon as it exists), once one of them is in
    `until`; fails if none of `until` came within timeout_s."""
    errors: list[str] = []
    conf = {**security.librdkafka(), "error_cb": lambda error: errors.append(kafka_error_name(error))}
    admin = admin_client(address, **conf, **{"reconnect.backoff.ms": 200})
    deadline = time.monotonic() + timeout_s
    while not set(errors) & until:
        assert time.monotonic() < deadline, f"{address}: none of {sorted(until)} from librdkafka within {timeout_s} s: {errors}"
        admin.poll(0.05)  # error_cb runs from poll()
    return errors


# -- ACLs -------------------------------------------------------------------------------------


def resource_type_of(name: str) -> ResourceType:
    """confluent-kafka's ResourceType for Kafka's name (it calls CLUSTER `BROKER`, code 4)."""
    name = name.upper()
    return ResourceType["BROKER" if name == "CLUSTER" else name]


def acl(
    principal: str,
    operation: str,
    resource_type: str,
    name: str,
    pattern: str = "LITERAL",
    permission: str = "ALLOW",
    host: str = "*",
) -> AclBinding:
    """An ACL in Kafka's words: acl("User:bob", "WRITE", "TOPIC", "orders", "PREFIXED")."""
    return AclBinding(
        resource_type_of(resource_type), name, ResourcePatternType[pattern.upper()], principal, host,
        AclOperation[operation.upper()], AclPermissionType[permission.upper()],
    )


# The groups of the harness's assign-only consumers (kafka_helpers.consumer, cluster's
# ContinuousConsumer): they never join, but librdkafka looks up their coordinator, which takes
# DESCRIBE on the group once an authorizer is on.
UNUSED_GROUPS_PREFIX = "e2e-unused-"


def unused_groups_acl(principal: str) -> AclBinding:
    """DESCRIBE on the harness consumers' unused groups, so that they can read under ACLs."""
    return acl(principal, "DESCRIBE", "GROUP", UNUSED_GROUPS_PREFIX, "PREFIXED")


def acl_filter(principal: str | None = None, resource_type: str = "ANY", name: str | None = None) -> AclBindingFilter:
    """Matches every ACL of `principal` (None: any) on `resource_type`/`name` (None: any)."""
    return AclBindingFilter(
        resource_type_of(resource_type), name, ResourcePatternType.ANY if name is None else ResourcePatternType.MATCH,
        principal, None, AclOperation.ANY, AclPermissionType.ANY,
    )


def create_acls(address: str, admin: ClientSecurity, bindings: list[AclBinding]) -> None:
    result = admin_request(address, lambda a: a.create_acls(bindings, request_timeout=20), **admin.librdkafka())
    for binding, future in result.items():
        future.result()


def delete_acls(address: str, admin: ClientSecurity, filters: list[AclBindingFilter]) -> list[AclBinding]:
    """Deletes what the filters match; returns the deleted ACLs."""
    result = admin_request(address, lambda a: a.delete_acls(filters, request_timeout=20), **admin.librdkafka())
    return [binding for future in result.values() for binding in future.result()]


def describe_acls(address: str, security: ClientSecurity, acl_filter_: AclBindingFilter) -> list[AclBinding]:
    future = admin_request(address, lambda a: a.describe_acls(acl_filter_, request_timeout=20), **security.librdkafka())
    return list(future.result())


def may_describe_group(address: str, security: ClientSecurity, group: str) -> bool:
    """Whether DescribeGroups of `group` is authorized (an unknown group is described as dead)."""
    try:
        admin_request(address, lambda a: a.describe_consumer_groups([group], request_timeout=10), **security.librdkafka())[
            group
        ].result()
        return True
    except KafkaException as error:
        name = kafka_error_name(error)
        if name == "GROUP_AUTHORIZATION_FAILED":
            return False
        if name == "GROUP_ID_NOT_FOUND":
            return True
        raise


def grant(
    address: str, admin: ClientSecurity, bindings: list[AclBinding], principal: str, as_principal: ClientSecurity,
    timeout_s: float = 15.0,
) -> None:
    """Creates the ACLs and returns once the broker enforces them (module docstring: the
    sentinel); `as_principal` is how `principal` connects."""
    sentinel = acl(principal, "DESCRIBE", "GROUP", unique("sentinel"))
    create_acls(address, admin, [*bindings, sentinel])
    wait_until(
        lambda: may_describe_group(address, as_principal, sentinel.name), timeout_s,
        f"the ACLs just created for {principal} to be enforced", interval_s=0.1,
    )


# -- SCRAM users --------------------------------------------------------------------------------


SCRAM = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}


def upsert_user(
    address: str, admin: ClientSecurity, name: str, password: str, mechanism: str = "SCRAM-SHA-256",
    iterations: int = 4096,
) -> None:
    """AlterUserScramCredentials: sets `name`'s credential for `mechanism`."""
    upsertion = UserScramCredentialUpsertion(name, ScramCredentialInfo(SCRAM[mechanism], iterations), password.encode())
    result = admin_request(address, lambda a: a.alter_user_scram_credentials([upsertion], request_timeout=20), **admin.librdkafka())
    result[name].result()


def delete_user(address: str, admin: ClientSecurity, name: str, mechanism: str = "SCRAM-SHA-256") -> None:
    """AlterUserScramCredentials: deletes `name`'s credential for `mechanism`."""
    deletion = UserScramCredentialDeletion(name, SCRAM[mechanism])
    result = admin_request(address, lambda a: a.alter_user_scram_credentials([deletion], request_timeout=20), **admin.librdkafka())
    result[name].result()


def wait_for_login(address: str, mechanism: str, name: str, password: str, works: bool = True, context=None, timeout_s: float = 15.0):
    """Waits until a raw login of `name` succeeds (or, works=False, is refused with
    SASL_AUTHENTICATION_FAILED): credentials take effect once the broker applied them."""
    def settled():
        result = sasl_login(address, mechanism, name, password, context=context)
        return result.ok if works else result.error_code == 58

    wait_until(settled, timeout_s, f"{mechanism} login of {name} to {'work' if works else 'be refused'}", interval_s=0.1)


def new_user(address: str, admin: ClientSecurity, template: ClientSecurity, prefix: str = "user", mechanism: str = "SCRAM-SHA-256") -> ClientSecurity:
    """A fresh SCRAM user, created through the Admin API and able to log in; returned as
    `template` with its login."""
    name = unique(prefix)
    password = f"{name}-secret"
    upsert_user(address, admin, name, password, mechanism)
    wait_for_login(address, mechanism, name, password, context=None if not template.tls else _context(template))
    return template.with_login(mechanism, name, password)


def _context(security: ClientSecurity):
    import ssl

    return ssl.create_default_context(cafile=str(security.ca))


# -- the strom CLI ------------------------------------------------------------------------------


def strom_cli(*args: str, stdin: str | None = None, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`strom ARGS`, bounded; xfails while the subcommand is missing or says it is not
    implemented yet."""
    result = subprocess.run(
        [STROM_BIN, *args], input=stdin, capture_output=True, text=True, timeout=timeout_s,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if "not implemented yet" in result.stderr or "unrecognized subcommand" in result.stderr:
        pytest.xfail(f"`strom {' '.join(args[:2])}` is not there yet: {result.stderr.strip()[:200]}")
    return result


def error_name_of(future_call) -> str | None:
    """Runs future_call() (which waits on a future); None if it succeeds, else the Kafka name of
    the KafkaException it raised."""
    try:
        future_call()
        return None
    except KafkaException as error:
        return kafka_error_name(error)


def partition_error(tps: list[TopicPartition]) -> str | None:
    """The Kafka name of the first per-partition error among `tps`, None if none."""
    for tp in tps:
        if tp.error is not None:
            return kafka_error_name(tp.error)
    return None

