"""ACLs (issue 12) as Kafka's StandardAuthorizer enforces them, API family by API family.

The module's broker: one SASL_PLAINTEXT listener with SCRAM-SHA-256,
`authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`,
`super.users=User:admin`, allow.everyone.if.no.acl.found left at its default (false), no topic
auto-creation. Every case gets a fresh SCRAM user (made with AlterUserScramCredentials) and
resource names that begin with a prefix of its own, so cases share the broker and none sees
another's ACLs, wildcard ones included. ACLs are created through the Admin API and are in force
when `secure_clients.grant` returns.

TABLE below is the ACL/operation table this checks. For each row:

- refused: with only the `given` ACLs (which let the client get as far as the API under test),
  the API fails with the row's Kafka error (ListGroups leaves the group out instead);
- allowed: with the row's ACL added, the API works, for each way of naming the resource: the
  literal name, a PREFIXED pattern, and the wildcard `*` (cluster ACLs: `kafka-cluster` only);
- a super user needs no ACL at all.

Then: DENY beats ALLOW (literal, prefixed, wildcard resource, any principal `User:*`); an ACL
for another host does not apply; ALL allows every operation; `User:*` ACLs apply to everyone;
Metadata lists only the topics the principal may DESCRIBE (READ/WRITE/DELETE/ALTER imply
DESCRIBE, DESCRIBE_CONFIGS does not) and answers TOPIC_AUTHORIZATION_FAILED for one it names;
CreateAcls/DescribeAcls/DeleteAcls round trip; `strom acl create|list|delete`; and a broker with
`allow.everyone.if.no.acl.found=true`. A consumer whose READ ACL is deleted is refused on its
next fetch.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Callable

import pytest
from confluent_kafka import (
    Consumer, ConsumerGroupTopicPartitions, ElectionType, KafkaError, KafkaException, Producer, TopicPartition,
)
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

import raw_kafka as rk
from kafka_helpers import (
    admin_client,
    admin_request,
    consumer,
    create_topic,
    describe_configs,
    produce_all,
    producer,
    unique,
    wait_until,
)
from secure_clients import (
    acl,
    acl_filter,
    create_acls,
    delete_acls,
    describe_acls,
    error_name_of,
    grant,
    new_user,
    partition_error,
    produce_outcome,
    strom_cli,
    upsert_user,
)
from security_helpers import AUTHORIZER, ClientSecurity, RawSaslSession, add_scram_args, kafka_error_name, requires_security, sasl_settings

pytestmark = requires_security

ADMIN = ("admin", "admin-secret")
HIDDEN = "(left out of the answer)"
ACTION_TIMEOUT_S = 20
SETTINGS = {
    **sasl_settings("SCRAM-SHA-256"),
    **AUTHORIZER,
    "super.users": "User:admin",
    "auto.create.topics.enable": False,
    "group.initial.rebalance.delay.ms": 0,
}
ADMIN_LOGIN = ClientSecurity("SASL_PLAINTEXT").with_login("SCRAM-SHA-256", *ADMIN)


@pytest.fixture(scope="module")
def acl_broker(start_module_broker):
    return start_module_broker(
        name="acls", listeners=["SASL_PLAINTEXT"], settings=SETTINGS, extra_args=add_scram_args(ADMIN, mechanisms=("SCRAM-SHA-256",))
    )


@dataclass
class Case:
    """One case: a fresh principal (`user`) and resource names under `prefix`."""

    address: str
    admin: ClientSecurity
    user: ClientSecurity
    prefix: str
    broker_id: int

    @property
    def principal(self) -> str:
        return f"User:{self.user.username}"

    @property
    def topic(self) -> str:
        return f"{self.prefix}topic"

    @property
    def new_topic(self) -> str:
        return f"{self.prefix}new-topic"

    @property
    def group(self) -> str:
        return f"{self.prefix}group"

    @property
    def txn(self) -> str:
        return f"{self.prefix}txn"

    def grant(self, bindings) -> None:
        grant(self.address, self.admin, list(bindings), self.principal, self.user)


def new_case(broker, with_user: bool = True) -> Case:
    address = broker.address("SASL_PLAINTEXT")
    user = new_user(address, ADMIN_LOGIN, ClientSecurity("SASL_PLAINTEXT"), "acl-user") if with_user else ADMIN_LOGIN
    broker_id = next(iter(admin_client(address, **ADMIN_LOGIN.librdkafka()).list_topics(timeout=10).brokers))
    return Case(address, ADMIN_LOGIN, user, unique("acl") + ".", broker_id)


# -- what each API needs: resource, operation, and how to name the resource -------------------


@dataclass(frozen=True)
class On:
    """An operation on one of the case's resources (`name`: topic, new_topic, group, txn)."""

    resource: str
    operation: str
    name: str = ""

    def binding(self, case: Case, variant: str = "literal", principal: str | None = None, permission: str = "ALLOW", host: str = "*"):
        principal = principal or case.principal
        if self.resource == "CLUSTER":
            assert variant == "literal", "a cluster ACL names kafka-cluster"
            return acl(principal, self.operation, "CLUSTER", "kafka-cluster", permission=permission, host=host)
        name = getattr(case, self.name or {"TOPIC": "topic", "GROUP": "group", "TRANSACTIONAL_ID": "txn"}[self.resource])
        if variant == "prefixed":
            return acl(principal, self.operation, self.resource, case.prefix, "PREFIXED", permission, host)
        if variant == "wildcard":
            return acl(principal, self.operation, self.resource, "*", permission=permission, host=host)
        return acl(principal, self.operation, self.resource, name, permission=permission, host=host)


def topic(operation, name=""):
    return On("TOPIC", operation, name)


def group(operation):
    return On("GROUP", operation)


def transactional_id(operation):
    return On("TRANSACTIONAL_ID", operation)


def cluster(operation):
    return On("CLUSTER", operation)


# -- setups (as the super user) ----------------------------------------------------------------


def no_setup(case: Case) -> None:
    pass


def a_topic(case: Case) -> None:
    create_topic(case.address, case.topic, **case.admin.librdkafka())


def a_topic_with_a_record(case: Case) -> None:
    a_topic(case)
    produce_all(producer(case.address, **case.admin.librdkafka()), case.topic, [{"value": b"first", "partition": 0}])


def a_group_with_an_offset(case: Case) -> None:
    """A group that exists (Empty, no members) with offset 1 committed for the topic."""
    a_topic_with_a_record(case)
    c = consumer(case.address, **case.admin.librdkafka(), **{"group.id": case.group})
    try:
        c.commit(offsets=[TopicPartition(case.topic, 0, 1)], asynchronous=False)
    finally:
        c.close()


# -- the API calls, as `who`: None when it worked, else the Kafka error ---------------------------


def produce(case: Case, who: ClientSecurity) -> str | None:
    return produce_outcome(case.address, who, case.topic)


def first_error_or_record(c: Consumer, wanted: str, what: str, ignore=()) -> str | None:
    """Polls until a record arrives (None) or a consumer error named `wanted` (returned);
    errors named in `ignore` are skipped, any other fails."""
    seen = []
    deadline = time.monotonic() + ACTION_TIMEOUT_S
    while time.monotonic() < deadline:
        for message in c.consume(num_messages=10, timeout=0.2):
            if message.error() is None:
                return None
            name = kafka_error_name(message.error())
            if name == wanted:
                return name
            if name not in ignore:
                raise AssertionError(f"{what}: unexpected error {message.error()}")
            seen.append(name)
    raise AssertionError(f"{what}: neither a record nor {wanted} within {ACTION_TIMEOUT_S} s (errors: {seen[:5]})")


def fetch(case: Case, who: ClientSecurity) -> str | None:
    """Fetch from offset 0 (assign, no group: a group error from librdkafka's coordinator
    lookup is beside the point here)."""
    c = consumer(case.address, **who.librdkafka())
    try:
        c.assign([TopicPartition(case.topic, 0, 0)])
        return first_error_or_record(c, "TOPIC_AUTHORIZATION_FAILED", "fetch", ignore=("GROUP_AUTHORIZATION_FAILED",))
    finally:
        c.close()


def join_group(case: Case, who: ClientSecurity) -> str | None:
    c = consumer(
        case.address, **who.librdkafka(),
        **{"group.id": case.group, "auto.offset.reset": "earliest", "session.timeout.ms": 6000},
    )
    try:
        c.subscribe([case.topic])
        return first_error_or_record(c, "GROUP_AUTHORIZATION_FAILED", "subscribe")
    finally:
        c.close()


def offset_commit(case: Case, who: ClientSecurity) -> str | None:
    c = consumer(case.address, **who.librdkafka(), **{"group.id": case.group})
    try:
        return partition_error(c.commit(offsets=[TopicPartition(case.topic, 0, 1)], asynchronous=False))
    except KafkaException as error:
        return kafka_error_name(error)
    finally:
        c.close()


def offset_fetch(case: Case, who: ClientSecurity) -> str | None:
    """OffsetFetch through the Admin API (a consumer's committed() that cannot find the
    coordinator only times out)."""
    request = ConsumerGroupTopicPartitions(case.group, [TopicPartition(case.topic, 0)])

    def fetch_offsets():
        result = admin_request(case.address, lambda a: a.list_consumer_group_offsets([request], request_timeout=15), **who.librdkafka())
        partitions = result[case.group].result().topic_partitions
        error = partition_error(partitions)
        if error is not None:
            raise KafkaException(partitions[0].error)
        assert partitions[0].offset == 1, f"committed offset {partitions[0].offset}, expected 1"

    return error_name_of(fetch_offsets)


def admin_call(case: Case, who: ClientSecurity, call, key=None):
    """Runs call(admin) and waits for its future (or the future under `key`)."""
    def run():
        result = admin_request(case.address, call, **who.librdkafka())
        return (result[key] if key is not None else result).result()

    return error_name_of(run)


def describe_group(case: Case, who: ClientSecurity) -> str | None:
    return admin_call(case, who, lambda a: a.describe_consumer_groups([case.group], request_timeout=15), case.group)


def list_groups(case: Case, who: ClientSecurity) -> str | None:
    listed = admin_request(case.address, lambda a: a.list_consumer_groups(request_timeout=15), **who.librdkafka()).result()
    return None if case.group in {g.group_id for g in listed.valid} else HIDDEN


def create_new_topic(case: Case, who: ClientSecurity) -> str | None:
    return admin_call(case, who, lambda a: a.create_topics([NewTopic(case.new_topic, 1, 1)], request_timeout=15), case.new_topic)


def delete_the_topic(case: Case, who: ClientSecurity) -> str | None:
    return admin_call(case, who, lambda a: a.delete_topics([case.topic], request_timeout=15), case.topic)


def delete_the_records(case: Case, who: ClientSecurity) -> str | None:
    """confluent-kafka's delete_records up to the high watermark (-1)."""
    def run():
        futures = admin_request(
            case.address, lambda a: a.delete_records([TopicPartition(case.topic, 0, -1)], request_timeout=15), **who.librdkafka()
        )
        (future,) = futures.values()
        assert future.result().low_watermark == 1

    return error_name_of(run)


def describe_the_log_dirs(case: Case, who: ClientSecurity) -> str | None:
    """Raw DescribeLogDirs v4 (confluent-kafka has no such call): refused, Kafka answers the
    top-level CLUSTER_AUTHORIZATION_FAILED and no log directory."""
    version, payload = raw_request(case, who, lambda v: rk.describe_log_dirs_request(v, correlation_id=2), rk.DESCRIBE_LOG_DIRS, 4)
    answer = rk.parse_describe_log_dirs_response(payload, version)
    if answer["error_code"] != 0:
        assert answer["results"] == [], answer
    else:
        assert len(answer["results"]) == 1, answer
    return error_name(answer["error_code"])


def describe_topic_configs(case: Case, who: ClientSecurity) -> str | None:
    return error_name_of(lambda: describe_configs(case.address, ConfigResource("TOPIC", case.topic), **who.librdkafka()))


def describe_broker_configs(case: Case, who: ClientSecurity) -> str | None:
    return error_name_of(lambda: describe_configs(case.address, ConfigResource("BROKER", str(case.broker_id)), **who.librdkafka()))


def incremental_alter(case: Case, who: ClientSecurity, resource: ConfigResource) -> str | None:
    return admin_call(case, who, lambda a: a.incremental_alter_configs([resource], request_timeout=15), resource)


def alter_topic_configs(case: Case, who: ClientSecurity) -> str | None:
    entry = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
    return incremental_alter(case, who, ConfigResource("TOPIC", case.topic, incremental_configs=[entry]))


def alter_broker_configs(case: Case, who: ClientSecurity) -> str | None:
    # A value equal to the default, so the module's other cases see no difference.
    entry = ConfigEntry("log.cleaner.backoff.ms", "15000", incremental_operation=AlterConfigOpType.SET)
    return incremental_alter(case, who, ConfigResource("BROKER", str(case.broker_id), incremental_configs=[entry]))


def legacy_alter_topic_configs(case: Case, who: ClientSecurity) -> str | None:
    resource = ConfigResource("TOPIC", case.topic, set_config={"retention.ms": "3600000"})
    return admin_call(case, who, lambda a: a.alter_configs([resource], request_timeout=15), resource)


def transaction(case: Case, who: ClientSecurity) -> str | None:
    p = Producer({"bootstrap.servers": case.address, "transactional.id": case.txn, **who.librdkafka()})
    try:
        p.init_transactions(ACTION_TIMEOUT_S)
        p.begin_transaction()
        p.produce(case.topic, value=b"in a transaction", partition=0)
        p.commit_transaction(ACTION_TIMEOUT_S)
        return None
    except KafkaException as error:
        return kafka_error_name(error)


def raw_request(case: Case, who: ClientSecurity, request_for_version, api_key: int, version_max: int) -> tuple[int, bytes]:
    """Logs in as `who` on a raw connection (SCRAM), sends request_for_version(version) at the
    highest version the broker and `version_max` share; returns (that version, the response payload)."""
    with rk.connect(case.address) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        versions = rk.parse_api_versions_response(rk.read_response(sock), 0)["api_keys"]
        version = min(version_max, versions[api_key][1])
        login = RawSaslSession(sock).login(who.mechanism, who.username, who.password)
        assert login.ok, login
        sock.sendall(request_for_version(version))
        payload = rk.read_response(sock)
        assert payload is not None, f"API {api_key} v{version}: connection closed"
        return version, payload


def error_name(code: int) -> str | None:
    return None if code == 0 else KafkaError(code).name()


def init_producer_id(case: Case, who: ClientSecurity) -> str | None:
    """A raw InitProducerId without a transactional id (what an idempotent producer sends
    first)."""
    version, payload = raw_request(
        case, who, lambda v: rk.init_producer_id_request(v, correlation_id=2), rk.INIT_PRODUCER_ID, 4
    )
    return error_name(rk.parse_init_producer_id_response(payload, version)["error_code"])


def idempotent_produce(case: Case, who: ClientSecurity) -> str | None:
    """KIP-679: WRITE on any topic is enough for an idempotent producer's InitProducerId."""
    return init_producer_id(case, who) or produce_outcome(case.address, who, case.topic, **{"enable.idempotence": True})


def create_an_acl(case: Case, who: ClientSecurity) -> str | None:
    return error_name_of(lambda: create_acls(case.address, who, [acl("User:nobody", "READ", "TOPIC", case.prefix + "other")]))


def describe_the_acls(case: Case, who: ClientSecurity) -> str | None:
    """Raw: librdkafka drops DescribeAcls' error code (a refusal reads as no ACLs)."""
    _, payload = raw_request(case, who, lambda v: rk.describe_acls_request(2), rk.DESCRIBE_ACLS, 1)
    return error_name(rk.parse_describe_acls_error(payload))


def delete_an_acl(case: Case, who: ClientSecurity) -> str | None:
    return error_name_of(lambda: delete_acls(case.address, who, [acl_filter("User:nobody", "TOPIC", case.prefix + "nothing")]))


def alter_user_scram_credentials(case: Case, who: ClientSecurity) -> str | None:
    return error_name_of(lambda: upsert_user(case.address, who, case.prefix + "someone", "password"))


def describe_user_scram_credentials(case: Case, who: ClientSecurity) -> str | None:
    """Raw: confluent-kafka 2.16.1 crashes the Python process (SIGSEGV) on this API's
    top-level CLUSTER_AUTHORIZATION_FAILED answer."""
    _, payload = raw_request(
        case, who, lambda v: rk.describe_user_scram_credentials_request(2), rk.DESCRIBE_USER_SCRAM_CREDENTIALS, 0
    )
    return error_name(rk.parse_describe_user_scram_credentials_error(payload))


def describe_client_quotas(case: Case, who: ClientSecurity) -> str | None:
    """Raw DescribeClientQuotas v0 (no Python client has it): every entity."""
    body = struct.pack(">i", 0) + struct.pack(">?", False)
    _, payload = raw_request(case, who, lambda v: rk.request(48, 0, 2, body, flexible=False), 48, 0)
    (code,) = struct.unpack_from(">h", payload, 8)  # after the correlation id and throttle time
    return error_name(code)


def alter_client_quotas(case: Case, who: ClientSecurity) -> str | None:
    """Raw AlterClientQuotas v0, validate_only: a quota for a user of the case's own."""
    entity = struct.pack(">i", 1) + rk.string(b"user") + rk.string((case.prefix + "quota-user").encode())
    ops = struct.pack(">i", 1) + rk.string(b"producer_byte_rate") + struct.pack(">d?", 1048576.0, False)
    body = struct.pack(">i", 1) + entity + ops + struct.pack(">?", True)
    _, payload = raw_request(case, who, lambda v: rk.request(49, 0, 2, body, flexible=False), 49, 0)
    (code,) = struct.unpack_from(">h", payload, 12)  # the first entry's error code
    return error_name(code)
def elect_the_leaders(case: Case, who: ClientSecurity) -> str | None:
    """A preferred election of a partition its preferred replica leads: ELECTION_NOT_NEEDED is
    what an allowed request gets. (No timeouts: confluent-kafka 2.16.1's elect_leaders fails on
    any keyword argument.)"""
    def elect():
        call = lambda a: a.elect_leaders(ElectionType.PREFERRED, [TopicPartition(case.topic, 0)])
        for error in admin_request(case.address, call, **who.librdkafka()).result().values():
            if error is not None and kafka_error_name(error) != "ELECTION_NOT_NEEDED":
                raise error if isinstance(error, KafkaException) else KafkaException(error)

    return error_name_of(elect)


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    name: str
    allowed_by: On
    refused_with: str
    call: Callable[[Case, ClientSecurity], str | None]
    given: tuple[On, ...] = ()
    setup: Callable[[Case], None] = no_setup

    @property
    def variants(self) -> tuple[str, ...]:
        return ("literal",) if self.allowed_by.resource == "CLUSTER" else ("literal", "prefixed", "wildcard")


TOPIC_DENIED, GROUP_DENIED = "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"
CLUSTER_DENIED, TXN_DENIED = "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"

TABLE = [
    #   API                                allowed by                    refused with   call                  given (always)                        setup
    Api("Produce",                         topic("WRITE"),               TOPIC_DENIED,  produce,              (topic("DESCRIBE"),),                 a_topic),
    Api("Fetch",                           topic("READ"),                TOPIC_DENIED,  fetch,                (topic("DESCRIBE"),),                 a_topic_with_a_record),
    Api("JoinGroup (subscribe)",           group("READ"),                GROUP_DENIED,  join_group,           (topic("READ"), group("DESCRIBE")),   a_topic_with_a_record),
    Api("OffsetCommit",                    group("READ"),                GROUP_DENIED,  offset_commit,        (topic("READ"), group("DESCRIBE")),   a_topic_with_a_record),
    Api("OffsetFetch",                     group("DESCRIBE"),            GROUP_DENIED,  offset_fetch,         (topic("DESCRIBE"),),                 a_group_with_an_offset),
    Api("DescribeGroups",                  group("DESCRIBE"),            GROUP_DENIED,  describe_group,       (),                                   a_group_with_an_offset),
    Api("ListGroups",                      group("DESCRIBE"),            HIDDEN,        list_groups,          (),                                   a_group_with_an_offset),
    Api("CreateTopics",                    topic("CREATE", "new_topic"), TOPIC_DENIED,  create_new_topic),
    Api("CreateTopics (cluster ACL)",      cluster("CREATE"),            TOPIC_DENIED,  create_new_topic),
    Api("DeleteTopics",                    topic("DELETE"),              TOPIC_DENIED,  delete_the_topic,     (topic("DESCRIBE"),),                 a_topic),
    Api("DeleteRecords",                   topic("DELETE"),              TOPIC_DENIED,  delete_the_records,   (topic("DESCRIBE"),),                 a_topic_with_a_record),
    Api("DescribeLogDirs",                 cluster("DESCRIBE"),          CLUSTER_DENIED, describe_the_log_dirs),
    Api("DescribeConfigs (topic)",         topic("DESCRIBE_CONFIGS"),    TOPIC_DENIED,  describe_topic_configs, (),                                 a_topic),
    Api("DescribeConfigs (broker)",        cluster("DESCRIBE_CONFIGS"),  CLUSTER_DENIED, describe_broker_configs),
    Api("IncrementalAlterConfigs (topic)", topic("ALTER_CONFIGS"),       TOPIC_DENIED,  alter_topic_configs,  (),                                   a_topic),
    Api("IncrementalAlterConfigs (broker)", cluster("ALTER_CONFIGS"),    CLUSTER_DENIED, alter_broker_configs),
    Api("AlterConfigs (topic)",            topic("ALTER_CONFIGS"),       TOPIC_DENIED,  legacy_alter_topic_configs, (),                             a_topic),
    Api("DescribeClientQuotas",            cluster("DESCRIBE_CONFIGS"),  CLUSTER_DENIED, describe_client_quotas),
    Api("AlterClientQuotas",               cluster("ALTER_CONFIGS"),     CLUSTER_DENIED, alter_client_quotas),
    Api("transactions (transactional.id)", transactional_id("WRITE"),    TXN_DENIED,    transaction,          (topic("WRITE"),),                    a_topic),
    Api("idempotence (IDEMPOTENT_WRITE)",  cluster("IDEMPOTENT_WRITE"),  CLUSTER_DENIED, init_producer_id),
    Api("idempotence (WRITE on a topic)",  topic("WRITE"),               CLUSTER_DENIED, idempotent_produce,  (),                                   a_topic),
    Api("CreateAcls",                      cluster("ALTER"),             CLUSTER_DENIED, create_an_acl),
    Api("DescribeAcls",                    cluster("DESCRIBE"),          CLUSTER_DENIED, describe_the_acls),
    Api("DeleteAcls",                      cluster("ALTER"),             CLUSTER_DENIED, delete_an_acl),
    Api("AlterUserScramCredentials",       cluster("ALTER"),             CLUSTER_DENIED, alter_user_scram_credentials),
    Api("DescribeUserScramCredentials",    cluster("DESCRIBE"),          CLUSTER_DENIED, describe_user_scram_credentials),
    Api("ElectLeaders",                    cluster("ALTER"),             CLUSTER_DENIED, elect_the_leaders,    (),                                   a_topic),
]
ROWS = {api.name: api for api in TABLE}
VARIANT_CASES = [(api.name, variant) for api in TABLE for variant in api.variants]


@pytest.mark.parametrize("api_name", list(ROWS))
def test_refused_without_an_acl(acl_broker, api_name):
    api = ROWS[api_name]
    case = new_case(acl_broker)
    api.setup(case)
    if api.given:
        case.grant(on.binding(case) for on in api.given)
    assert api.call(case, case.user) == api.refused_with


@pytest.mark.parametrize("api_name,variant", VARIANT_CASES)
def test_allowed_with_an_acl(acl_broker, api_name, variant):
    api = ROWS[api_name]
    case = new_case(acl_broker)
    api.setup(case)
    case.grant([*(on.binding(case) for on in api.given), api.allowed_by.binding(case, variant)])
    assert api.call(case, case.user) is None


@pytest.mark.parametrize("api_name", list(ROWS))
def test_super_user_needs_no_acl(acl_broker, api_name):
    api = ROWS[api_name]
    case = new_case(acl_broker, with_user=False)
    api.setup(case)
    assert api.call(case, case.admin) is None


# -- DENY, hosts, ALL, User:* ---------------------------------------------------------------------


@pytest.mark.parametrize("deny", ["literal", "prefixed", "wildcard", "any-principal"])
def test_deny_overrides_allow(acl_broker, deny):
    case = new_case(acl_broker)
    a_topic(case)
    case.grant([topic("WRITE").binding(case)])
    assert produce(case, case.user) is None
    if deny == "any-principal":
        denial = topic("WRITE").binding(case, principal="User:*", permission="DENY")
    else:
        denial = topic("WRITE").binding(case, deny, permission="DENY")
    case.grant([denial])
    assert produce(case, case.user) == TOPIC_DENIED
    # DENY WRITE leaves DESCRIBE (implied by the ALLOW WRITE) alone.
    metadata = admin_client(case.address, **case.user.librdkafka()).list_topics(topic=case.topic, timeout=10)
    assert metadata.topics[case.topic].error is None


def test_an_acl_for_another_host_does_not_apply(acl_broker):
    case = new_case(acl_broker)
    a_topic(case)
    case.grant([topic("DESCRIBE").binding(case), topic("WRITE").binding(case, host="10.9.9.9")])
    assert produce(case, case.user) == TOPIC_DENIED
    case.grant([topic("WRITE").binding(case, host="127.0.0.1")])
    assert produce(case, case.user) is None


def test_all_allows_every_operation_on_its_resource(acl_broker):
    case = new_case(acl_broker)
    a_topic_with_a_record(case)
    case.grant([topic("ALL").binding(case)])
    assert produce(case, case.user) is None
    assert fetch(case, case.user) is None
    assert describe_topic_configs(case, case.user) is None
    assert delete_the_topic(case, case.user) is None


def test_an_acl_for_user_wildcard_applies_to_everyone(acl_broker):
    case = new_case(acl_broker)
    a_topic(case)
    case.grant([topic("WRITE").binding(case, principal="User:*")])
    assert produce(case, case.user) is None
    other = new_case(acl_broker)
    assert produce_outcome(case.address, other.user, case.topic) is None


# -- revocation on a live connection -----------------------------------------------------------


def test_a_consumer_loses_read_when_its_acl_is_deleted(acl_broker):
    """Strom offers no incremental fetch sessions (every Fetch names all its partitions), so
    a consumer whose READ ACL goes away is refused on its next fetch, on the same connection,
    as Kafka refuses every partition of a session."""
    case = new_case(acl_broker)
    a_topic_with_a_record(case)
    read = topic("READ").binding(case)
    case.grant([read])
    c = consumer(case.address, **case.user.librdkafka(), **{"fetch.wait.max.ms": 100})
    no_group = ("GROUP_AUTHORIZATION_FAILED",)
    try:
        c.assign([TopicPartition(case.topic, 0, 0)])
        assert first_error_or_record(c, TOPIC_DENIED, "fetch before the revocation", no_group) is None
        delete_acls(case.address, case.admin, [acl_filter(case.principal, "TOPIC", case.topic)])
        # A fetch authorized before the deletion may still be long-polling (as in Kafka, a
        # request is authorized when it arrives); let it end, then write a record that the
        # consumer's next fetches must not return.
        time.sleep(0.5)
        produce_all(producer(case.address, **case.admin.librdkafka()), case.topic, [{"value": b"after", "partition": 0}])
        assert first_error_or_record(c, TOPIC_DENIED, "fetch after the revocation", no_group) == TOPIC_DENIED
    finally:
        c.close()


# -- Metadata -----------------------------------------------------------------------------------


def test_metadata_lists_only_the_topics_the_principal_may_describe(acl_broker):
    case = new_case(acl_broker)
    ops = {"describe": "DESCRIBE", "write": "WRITE", "read": "READ", "delete": "DELETE", "alter": "ALTER",
           "describe-configs": "DESCRIBE_CONFIGS", "nothing": None}
    names = {label: f"{case.prefix}{label}" for label in ops}
    for name in names.values():
        create_topic(case.address, name, **case.admin.librdkafka())
    case.grant(acl(case.principal, op, "TOPIC", names[label]) for label, op in ops.items() if op)

    visible = set(admin_client(case.address, **case.user.librdkafka()).list_topics(timeout=10).topics)
    implied = {names[label] for label in ("describe", "write", "read", "delete", "alter")}
    assert visible & set(names.values()) == implied
    for hidden in ("describe-configs", "nothing"):
        named = admin_client(case.address, **case.user.librdkafka()).list_topics(topic=names[hidden], timeout=10)
        assert kafka_error_name(named.topics[names[hidden]].error) == TOPIC_DENIED
    everything = set(admin_client(case.address, **case.admin.librdkafka()).list_topics(timeout=10).topics)
    assert set(names.values()) <= everything


# -- the ACL APIs themselves ----------------------------------------------------------------------


def as_tuple(binding) -> tuple:
    """An ACL in Kafka's words (confluent-kafka names the CLUSTER resource type BROKER)."""
    restype = "CLUSTER" if binding.restype.name == "BROKER" else binding.restype.name
    return (
        restype, binding.name, binding.resource_pattern_type.name, binding.principal, binding.host,
        binding.operation.name, binding.permission_type.name,
    )


def test_acls_are_created_described_and_deleted(acl_broker):
    case = new_case(acl_broker)
    a_topic(case)
    bindings = [
        acl(case.principal, "WRITE", "TOPIC", case.topic),
        acl(case.principal, "READ", "TOPIC", case.prefix, "PREFIXED"),
        acl(case.principal, "DESCRIBE", "GROUP", case.group, permission="DENY", host="127.0.0.1"),
    ]
    create_acls(case.address, case.admin, bindings)
    mine = acl_filter(case.principal)
    wait_until(
        lambda: {as_tuple(b) for b in describe_acls(case.address, case.admin, mine)} == {as_tuple(b) for b in bindings},
        15, "DescribeAcls to list the three ACLs",
    )
    wait_until(lambda: produce(case, case.user) is None, 15, "the WRITE ACL to apply", interval_s=0.2)
    # A MATCH filter on the topic's name finds the literal and the prefixed ACL.
    matching = describe_acls(case.address, case.admin, acl_filter(case.principal, "TOPIC", case.topic))
    assert {as_tuple(b) for b in matching} == {as_tuple(b) for b in bindings[:2]}

    deleted = delete_acls(case.address, case.admin, [mine])
    assert {as_tuple(b) for b in deleted} == {as_tuple(b) for b in bindings}
    wait_until(lambda: produce(case, case.user) == TOPIC_DENIED, 15, "the deleted ACL to stop applying", interval_s=0.2)
    assert describe_acls(case.address, case.admin, mine) == []


def test_strom_acl_cli(acl_broker, tmp_path):
    case = new_case(acl_broker)
    a_topic(case)
    config = ["--bootstrap", case.address, "--command-config", str(case.admin.write_properties(tmp_path / "admin.properties"))]

    def strom_acl(*args):
        result = strom_cli("acl", *args, *config)
        assert result.returncode == 0, f"strom acl {' '.join(args)}: {result.stderr}"
        return result.stdout

    strom_acl("create", "--allow-principal", case.principal, "--operation", "Write", "--topic", case.topic)
    strom_acl("create", "--allow-principal", case.principal, "--operation", "Read", "--group", case.prefix,
              "--resource-pattern-type", "prefixed")
    strom_acl("create", "--allow-principal", case.principal, "--operation", "Write", "--transactional-id", case.txn)
    strom_acl("create", "--deny-principal", case.principal, "--operation", "Describe", "--cluster")
    expected = {
        ("TOPIC", case.topic, "LITERAL", case.principal, "*", "WRITE", "ALLOW"),
        ("GROUP", case.prefix, "PREFIXED", case.principal, "*", "READ", "ALLOW"),
        ("TRANSACTIONAL_ID", case.txn, "LITERAL", case.principal, "*", "WRITE", "ALLOW"),
        ("CLUSTER", "kafka-cluster", "LITERAL", case.principal, "*", "DESCRIBE", "DENY"),
    }
    mine = acl_filter(case.principal)
    wait_until(lambda: {as_tuple(b) for b in describe_acls(case.address, case.admin, mine)} == expected, 15,
               "the ACLs made with `strom acl create`")
    wait_until(lambda: produce(case, case.user) is None, 15, "the CLI's WRITE ACL to apply", interval_s=0.2)
    listed = strom_acl("list")
    assert case.principal in listed and case.topic in listed and case.txn in listed, listed

    strom_acl("delete", "--allow-principal", case.principal, "--operation", "Write", "--topic", case.topic)
    wait_until(lambda: produce(case, case.user) == TOPIC_DENIED, 15, "the deleted ACL to stop applying", interval_s=0.2)
    left = {as_tuple(b) for b in describe_acls(case.address, case.admin, mine)}
    assert left == expected - {("TOPIC", case.topic, "LITERAL", case.principal, "*", "WRITE", "ALLOW")}
    assert case.topic not in strom_acl("list")


# -- allow.everyone.if.no.acl.found=true ----------------------------------------------------------


def test_allow_everyone_if_no_acl_found(start_broker):
    broker = start_broker(
        name="allow-everyone", listeners=["SASL_PLAINTEXT"],
        settings={**SETTINGS, "allow.everyone.if.no.acl.found": True},
        extra_args=add_scram_args(ADMIN, mechanisms=("SCRAM-SHA-256",)),
    )
    case = new_case(broker)
    # No ACL anywhere: the user may create topics (CLUSTER/TOPIC CREATE), produce and fetch.
    assert create_new_topic(case, case.user) is None
    case_topic = case.new_topic
    assert produce_outcome(case.address, case.user, case_topic) is None
    other = f"{case.prefix}guarded"
    create_topic(case.address, other, **case.admin.librdkafka())
    assert produce_outcome(case.address, case.user, other) is None
    # Once the topic has an ACL (for someone else), only what the ACLs allow remains.
    create_acls(case.address, case.admin, [acl("User:someone-else", "WRITE", "TOPIC", other)])
    wait_until(lambda: produce_outcome(case.address, case.user, other) == TOPIC_DENIED, 15,
               "the user refused on a topic that has ACLs", interval_s=0.2)
    assert produce_outcome(case.address, case.user, case_topic) is None
