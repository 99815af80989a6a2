"""SASL (issue 12): PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL.

One broker serves most of the module: listeners SASL_PLAINTEXT and SASL_SSL, the three
mechanisms enabled, users `admin` and `alice` given at start with `--add-scram` (both SCRAM
mechanisms), no authorizer (authentication only). There are no passwords in its configuration:
PLAIN checks against the stored SCRAM credentials.

- every client (confluent-kafka, kafka-python, kcat) x protocol x mechanism produces and consumes;
- a wrong password and an unknown user are answered SASL_AUTHENTICATION_FAILED (raw
  SaslAuthenticate, so the code itself is checked) and the connection is closed; librdkafka
  reports an authentication error, kafka-python cannot bootstrap; the broker goes on serving;
- a user created with AlterUserScramCredentials (and described with
  DescribeUserScramCredentials) logs in with SCRAM and PLAIN, and is refused once deleted;
- the strom CLI with --command-config: `strom user create|list|delete`, and a wrong password in
  the properties file is reported as SASL_AUTHENTICATION_FAILED.

Brokers of their own: `--add-scram` is applied only while the user has no credential of that
mechanism (a restart with another password keeps the first); re-authentication
(`connections.max.reauth.ms`): the session lifetime the broker grants, re-authentication on the
same connection, a connection that did not re-authenticate in time is closed, and librdkafka
clients keep producing and consuming across several re-authentications.
"""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition

import raw_kafka as rk
from kafka_helpers import admin_request, consumer, create_topic, producer, round_trip, unique, watermarks
from secure_clients import (
    CLIENTS,
    SCRAM,
    connect_errors,
    delete_user,
    round_trip_with,
    strom_cli,
    upsert_user,
    wait_for_login,
)
from security_helpers import (  # noqa: F401 - pki is a fixture
    SASL_MECHANISMS,
    ClientSecurity,
    RawSaslSession,
    add_scram_args,
    pki,
    requires_security,
    sasl_login,
    sasl_settings,
    tls_settings,
)

pytestmark = requires_security

PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")


@pytest.fixture(scope="module")
def sasl_broker(start_module_broker, pki):  # noqa: F811
    return start_module_broker(
        name="sasl",
        listeners=list(PROTOCOLS),
        settings={**tls_settings(pki), **sasl_settings(*SASL_MECHANISMS)},
        extra_args=add_scram_args(ADMIN, ALICE),
    )


def login(pki, protocol: str, mechanism: str, user: tuple[str, str]) -> ClientSecurity:  # noqa: F811
    return ClientSecurity(protocol, ca=pki.ca if protocol == "SASL_SSL" else None).with_login(mechanism, *user)


def admin_of(pki) -> ClientSecurity:  # noqa: F811
    return login(pki, "SASL_PLAINTEXT", "SCRAM-SHA-512", ADMIN)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_client_produces_and_consumes(sasl_broker, pki, protocol, mechanism, client):  # noqa: F811
    topic = unique(f"sasl-{client}")
    create_topic(sasl_broker.address("SASL_PLAINTEXT"), topic, **admin_of(pki).librdkafka())
    round_trip_with(client, sasl_broker.address(protocol), login(pki, protocol, mechanism, ALICE), topic)


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_wrong_password_and_unknown_user_are_refused(sasl_broker, pki, mechanism, who):  # noqa: F811
    user = ("alice", "not-her-password") if who == "wrong-password" else ("mallory", "alice-secret")
    address = sasl_broker.address("SASL_PLAINTEXT")
    with rk.connect(address) as sock:
        result = RawSaslSession(sock).login(mechanism, *user)
        assert result.error_code == rk.SASL_AUTHENTICATION_FAILED and not result.closed, result
        # Kafka closes the connection after a failed authentication.
        assert rk.wait_closed(sock, 5.0), "the connection stayed open after a failed login"
    connect_errors(address, login(pki, "SASL_PLAINTEXT", mechanism, user), until={"_AUTHENTICATION"})
    # The right password still works, on both listeners, while the refused client retries.
    for protocol in PROTOCOLS:
        round_trip(sasl_broker.address(protocol), **login(pki, protocol, mechanism, ALICE).librdkafka())


def test_kafka_python_is_refused_with_a_wrong_password(sasl_broker, pki):  # noqa: F811
    """kafka-python 3 gives up bootstrapping (a timeout: it does not surface the broker's error
    code, which the raw tests check) and works with the right password."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KpKafkaError

    address = sasl_broker.address("SASL_SSL")
    security = login(pki, "SASL_SSL", "SCRAM-SHA-256", ("alice", "wrong"))
    with pytest.raises(KpKafkaError):
        KafkaProducer(bootstrap_servers=address, bootstrap_timeout_ms=2000, **security.kafka_python())
    topic = unique("sasl-kafka-python")
    create_topic(sasl_broker.address("SASL_PLAINTEXT"), topic, **admin_of(pki).librdkafka())
    round_trip_with("kafka-python", address, login(pki, "SASL_SSL", "SCRAM-SHA-256", ALICE), topic)


def test_user_from_alter_user_scram_credentials_logs_in_until_deleted(sasl_broker, pki):  # noqa: F811
    address = sasl_broker.address("SASL_PLAINTEXT")
    admin = admin_of(pki)
    name, password = unique("carol"), "carol-secret"
    upsert_user(address, admin, name, password, "SCRAM-SHA-256", iterations=4096)
    wait_for_login(address, "SCRAM-SHA-256", name, password)
    # One user store: PLAIN checks the same credential; SCRAM-SHA-512 has none for carol.
    assert sasl_login(address, "PLAIN", name, password).ok
    assert sasl_login(address, "SCRAM-SHA-512", name, password).error_code == rk.SASL_AUTHENTICATION_FAILED
    assert sasl_login(address, "PLAIN", name, "wrong").error_code == rk.SASL_AUTHENTICATION_FAILED
    described = admin_request(address, lambda a: a.describe_user_scram_credentials([name]), **admin.librdkafka())
    infos = described[name].result().scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(SCRAM["SCRAM-SHA-256"], 4096)]
    topic = unique("sasl-carol")
    create_topic(address, topic, **admin.librdkafka())
    round_trip_with("confluent-kafka", sasl_broker.address("SASL_SSL"), login(pki, "SASL_SSL", "SCRAM-SHA-256", (name, password)), topic)

    delete_user(address, admin, name, "SCRAM-SHA-256")
    wait_for_login(address, "SCRAM-SHA-256", name, password, works=False)
    assert sasl_login(address, "PLAIN", name, password).error_code == rk.SASL_AUTHENTICATION_FAILED
    described = admin_request(address, lambda a: a.describe_user_scram_credentials([name]), **admin.librdkafka())
    with pytest.raises(KafkaException) as gone:
        described[name].result()
    assert gone.value.args[0].name() == "RESOURCE_NOT_FOUND", gone.value


def test_strom_user_cli_with_command_config(sasl_broker, pki, tmp_path):  # noqa: F811
    address = sasl_broker.address("SASL_SSL")
    admin = login(pki, "SASL_SSL", "SCRAM-SHA-256", ADMIN)
    config = ["--bootstrap", address, "--command-config", str(admin.write_properties(tmp_path / "admin.properties"))]
    name, password = unique("dave"), "dave-secret"

    created = strom_cli("user", "create", name, "--password", password, "--mechanism", "SCRAM-SHA-512", *config)
    assert created.returncode == 0, created.stderr
    wait_for_login(address, "SCRAM-SHA-512", name, password, context=pki.client_context())
    assert sasl_login(address, "PLAIN", name, password, context=pki.client_context()).ok
    listed = strom_cli("user", "list", *config)
    assert listed.returncode == 0 and name in listed.stdout, listed

    deleted = strom_cli("user", "delete", name, *config)
    assert deleted.returncode == 0, deleted.stderr
    wait_for_login(address, "SCRAM-SHA-512", name, password, works=False, context=pki.client_context())
    listed = strom_cli("user", "list", *config)
    assert listed.returncode == 0 and name not in listed.stdout, listed

    wrong = admin.with_login("SCRAM-SHA-256", "admin", "wrong").write_properties(tmp_path / "wrong.properties")
    refused = strom_cli("user", "list", "--bootstrap", address, "--command-config", str(wrong))
    assert refused.returncode != 0
    assert "SASL_AUTHENTICATION_FAILED" in refused.stderr, refused.stderr


# -- --add-scram: only where the user has no credential of that mechanism -----------------------


def test_add_scram_applies_only_while_the_user_has_no_credential_of_that_mechanism(start_broker):
    broker = start_broker(
        name="add-scram", listeners=["SASL_PLAINTEXT"], settings=sasl_settings(*SASL_MECHANISMS),
        extra_args=add_scram_args(("erin", "first"), mechanisms=("SCRAM-SHA-256",)),
    )
    address = broker.address("SASL_PLAINTEXT")
    assert sasl_login(address, "SCRAM-SHA-256", "erin", "first").ok
    assert sasl_login(address, "SCRAM-SHA-512", "erin", "first").error_code == rk.SASL_AUTHENTICATION_FAILED

    broker.stop()
    broker.extra_args = add_scram_args(("erin", "second"))  # both mechanisms
    broker.start()
    assert sasl_login(address, "SCRAM-SHA-256", "erin", "first").ok, "the stored SCRAM-SHA-256 credential was replaced"
    assert sasl_login(address, "SCRAM-SHA-256", "erin", "second").error_code == rk.SASL_AUTHENTICATION_FAILED
    assert sasl_login(address, "SCRAM-SHA-512", "erin", "second").ok, "the missing SCRAM-SHA-512 credential was not added"


# -- re-authentication (KIP-368) -------------------------------------------------------------------

REAUTH_MS = 1500


@pytest.fixture
def reauth_broker(start_broker):
    return start_broker(
        name="reauth", listeners=["SASL_PLAINTEXT"],
        settings={**sasl_settings(*SASL_MECHANISMS), "connections.max.reauth.ms": REAUTH_MS},
        extra_args=add_scram_args(ALICE),
    )


def metadata_answered(sock, correlation_id: int) -> bool:
    """Sends a Metadata request; True if answered, False if the broker closed the connection."""
    if not rk.send_quietly(sock, rk.metadata_request(correlation_id)):
        return False
    return rk.outcome(sock, 5.0) == "answered"


def test_session_lifetime_reauthentication_and_expiry(reauth_broker):
    """The lifetime granted is at most connections.max.reauth.ms, with every mechanism; logging
    in again on the same connection renews it; a connection that lets it pass is closed at its
    next request. (The test waits past the lifetime on purpose: the expiry is the outcome.)"""
    address = reauth_broker.address("SASL_PLAINTEXT")
    for mechanism in SASL_MECHANISMS:
        with rk.connect(address) as sock:
            session = RawSaslSession(sock, authenticate_version=1)
            first = session.login(mechanism, *ALICE)
            assert first.ok and 0 < first.session_lifetime_ms <= REAUTH_MS, first
            assert metadata_answered(sock, 1)
            again = session.login(mechanism, *ALICE)
            assert again.ok and 0 < again.session_lifetime_ms <= REAUTH_MS, again
            assert metadata_answered(sock, 2)
            if mechanism == SASL_MECHANISMS[-1]:
                time.sleep(again.session_lifetime_ms / 1000 + 1.0)
                assert not metadata_answered(sock, 3), "a request after the session expired was answered"
    # SaslAuthenticate v0 has no lifetime field: the login works all the same.
    with rk.connect(address) as sock:
        assert RawSaslSession(sock, authenticate_version=0).login("PLAIN", *ALICE).ok


class ReauthLog(logging.Handler):
    """Counts librdkafka's REAUTH log lines (debug=broker) of one client."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        if record.args and record.args[0] == "REAUTH":
            self.count += 1

    def logger(self, name: str) -> logging.Logger:
        log = logging.getLogger(name)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(self)
        return log


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_clients_keep_working_across_reauthentications(reauth_broker, mechanism):
    """A producer and a consumer (librdkafka re-authenticates by itself at 90% of the session
    lifetime) run until each has re-authenticated three times: every acknowledged record is
    consumed, in order, without a delivery or consumer error."""
    address = reauth_broker.address("SASL_PLAINTEXT")
    security = ClientSecurity("SASL_PLAINTEXT").with_login(mechanism, *ALICE)
    topic = unique("reauth")
    create_topic(address, topic, **security.librdkafka())
    producer_log, consumer_log = ReauthLog(), ReauthLog()
    debug = {"debug": "broker"}  # librdkafka logs at debug level once `debug` is set
    p = producer(address, **security.librdkafka(), **debug, logger=producer_log.logger(unique("p")))
    c = consumer(address, **security.librdkafka(), **debug, logger=consumer_log.logger(unique("c")))
    c.assign([TopicPartition(topic, 0, 0)])
    reports, seen, errors = [], [], []

    def take(messages):
        for message in messages:
            if message.error() is not None:
                errors.append(message.error())
            else:
                seen.append((message.offset(), message.value()))

    sent = 0
    deadline = time.monotonic() + 30
    while producer_log.count < 3 or consumer_log.count < 3:
        assert time.monotonic() < deadline, (
            f"re-authentications within 30 s: producer {producer_log.count}, consumer {consumer_log.count}"
        )
        p.produce(topic, value=b"%d" % sent, partition=0, on_delivery=lambda e, m: reports.append((e, m.offset(), m.value())))
        sent += 1
        p.poll(0)
        take(c.consume(num_messages=100, timeout=0.05))
    assert p.flush(20) == 0
    assert [e for e, _, _ in reports if e is not None] == [], "delivery errors across re-authentications"
    end = watermarks(address, topic, 0, **security.librdkafka())[1]
    deadline = time.monotonic() + 20
    while not seen or seen[-1][0] < end - 1:
        assert time.monotonic() < deadline, f"the consumer read up to {seen[-1:]} of {end} records within 20 s"
        take(c.consume(num_messages=1000, timeout=0.1))
    c.close()
    assert errors == [], f"consumer errors across re-authentications: {errors[:5]}"
    assert seen == [(offset, value) for _, offset, value in reports], "records lost, repeated or reordered"
