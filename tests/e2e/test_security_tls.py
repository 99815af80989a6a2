"""TLS and mutual TLS (issue 12) with the certificates of security_helpers.Pki.

One broker serves the module: a PLAINTEXT and an SSL listener (`listeners=PLAINTEXT://..,
SSL://..`, no --listen), a PEM keystore and truststore, `ssl.client.auth=required`, and the
StandardAuthorizer with `allow.everyone.if.no.acl.found=true`, so that a resource without ACLs is
open to all and an ACL naming one principal shows who the broker thinks a client is. Its tests:

- confluent-kafka, kafka-python and kcat produce and consume over SSL with a trusted client
  certificate (the broker's certificate is checked against SAN IP:127.0.0.1);
- the principal of a client certificate is `User:` + its subject DN (`User:CN=bob`): with an ACL
  for User:CN=bob only, CN=alice and the PLAINTEXT client are refused and bob is served;
- a certificate from a foreign CA (even with CN=bob) and no certificate at all are refused,
  and the broker goes on serving the others;
- Metadata answers with the endpoint of the listener the client came in on.

Other brokers, one test each: an encrypted private key opened with `ssl.key.password` (and a
wrong password fails the start); `ssl.client.auth=requested` with `ssl.principal.mapping.rules`:
a mapped principal, and User:ANONYMOUS for a client without a certificate.
"""

from __future__ import annotations

import subprocess

import pytest

from kafka_helpers import admin_client, create_topic, round_trip, unique, wait_until
from secure_clients import CLIENTS, acl, connect_errors, create_acls, produce_outcome, round_trip_with
from security_helpers import (  # noqa: F401 - pki is a fixture
    AUTHORIZER,
    ClientSecurity,
    pki,
    refused_over_tls,
    requires_security,
    tls_settings,
)

pytestmark = requires_security
OPEN_AUTHORIZER = {**AUTHORIZER, "allow.everyone.if.no.acl.found": True}
REFUSED_TLS = {"_SSL", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_AUTHENTICATION"}


@pytest.fixture(scope="module")
def tls_broker(start_module_broker, pki):  # noqa: F811
    return start_module_broker(
        name="tls",
        listeners=["PLAINTEXT", "SSL"],
        settings={**tls_settings(pki, client_auth="required"), **OPEN_AUTHORIZER},
    )


def over_ssl(pki, identity=None) -> ClientSecurity:  # noqa: F811
    return ClientSecurity("SSL", ca=pki.ca, identity=identity)


def only_principal_may_write(broker, topic: str, principal: str, allowed: ClientSecurity, refused: dict) -> None:
    """With an ACL letting `principal` (only) write `topic`: every client of `refused`
    ({listener: ClientSecurity}) gets TOPIC_AUTHORIZATION_FAILED, `allowed` (on SSL) is served.

    The broker is open where no ACL exists, so the refusals are what shows the ACL is in force."""
    plaintext = broker.address("PLAINTEXT")
    create_topic(plaintext, topic)
    create_acls(plaintext, ClientSecurity(), [acl(principal, "WRITE", "TOPIC", topic)])
    for listener, security in refused.items():
        wait_until(
            lambda: produce_outcome(broker.address(listener), security, topic) == "TOPIC_AUTHORIZATION_FAILED",
            15, f"a {listener} client other than {principal} refused on {topic}", interval_s=0.2,
        )
    assert produce_outcome(broker.address("SSL"), allowed, topic) is None


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_produces_and_consumes_over_ssl(tls_broker, pki, client):  # noqa: F811
    topic = unique(f"tls-{client}")
    create_topic(tls_broker.address("PLAINTEXT"), topic)
    round_trip_with(client, tls_broker.address("SSL"), over_ssl(pki, pki.alice), topic)


def test_the_principal_of_a_client_certificate_is_its_subject_dn(tls_broker, pki):  # noqa: F811
    assert pki.bob.principal == "User:CN=bob"
    only_principal_may_write(
        tls_broker, unique("tls-bob-only"), "User:CN=bob",
        allowed=over_ssl(pki, pki.bob),
        refused={"SSL": over_ssl(pki, pki.alice), "PLAINTEXT": ClientSecurity()},
    )


@pytest.mark.parametrize("identity", ["foreign-bob", "none"])
def test_untrusted_or_missing_client_certificate_is_refused(tls_broker, pki, identity):  # noqa: F811
    """ssl.client.auth=required: a certificate our CA did not sign (CN=bob all the same) or no
    certificate ends the connection before any Kafka request is answered."""
    presented = pki.foreign_bob if identity == "foreign-bob" else None
    ssl_address = tls_broker.address("SSL")
    how = refused_over_tls(ssl_address, pki.client_context(presented))
    assert how is not None, f"an ApiVersions request over TLS with {identity} was answered"
    connect_errors(ssl_address, over_ssl(pki, presented), until=REFUSED_TLS)
    # Everyone else is still served, over both listeners.
    tls_broker.assert_running()
    round_trip(ssl_address, **over_ssl(pki, pki.alice).librdkafka())
    round_trip(tls_broker.address("PLAINTEXT"))


def test_metadata_answers_the_endpoint_of_the_listener_used(tls_broker, pki):  # noqa: F811
    """Same broker, two listeners: Metadata names the address the client connected to."""
    seen = {}
    for listener, security in (("PLAINTEXT", ClientSecurity()), ("SSL", over_ssl(pki, pki.alice))):
        brokers = admin_client(tls_broker.address(listener), **security.librdkafka()).list_topics(timeout=10).brokers
        assert len(brokers) == 1, brokers
        (endpoint,) = brokers.values()
        seen[listener] = f"{endpoint.host}:{endpoint.port}"
    assert seen == {"PLAINTEXT": tls_broker.address("PLAINTEXT"), "SSL": tls_broker.address("SSL")}


def test_encrypted_private_key_opened_with_ssl_key_password(start_broker, pki):  # noqa: F811
    broker = start_broker(name="encrypted", listeners=["SSL"], settings=tls_settings(pki, encrypted_key=True))
    round_trip(broker.address("SSL"), **over_ssl(pki).librdkafka())
    topic = unique("tls-encrypted")
    create_topic(broker.address("SSL"), topic, **over_ssl(pki).librdkafka())
    round_trip_with("kafka-python", broker.address("SSL"), over_ssl(pki), topic)


def test_wrong_ssl_key_password_fails_the_start(start_broker, pki):  # noqa: F811
    settings = {**tls_settings(pki, encrypted_key=True), "ssl.key.password": "not-the-password"}
    broker = start_broker(name="wrong-password", listeners=["SSL"], settings=settings, start=False)
    broker.pick_ports()
    broker.data_dir.mkdir(parents=True)
    try:
        result = subprocess.run(broker.command(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("the broker still ran 30 s after start with a wrong ssl.key.password")
    assert result.returncode != 0
    output = (result.stdout + result.stderr).lower()
    assert "ssl.key.password" in output or "ssl.keystore.location" in output, output[-2000:]


# -- ssl.client.auth=requested and ssl.principal.mapping.rules ------------------------------------


@pytest.fixture(scope="module")
def mapping_broker(start_module_broker, pki):  # noqa: F811
    return start_module_broker(
        name="tls-mapping",
        listeners=["PLAINTEXT", "SSL"],
        settings={
            **tls_settings(pki, client_auth="requested"),
            **OPEN_AUTHORIZER,
            "ssl.principal.mapping.rules": "RULE:^CN=([a-z]+)$/svc-$1/,DEFAULT",
        },
    )


def test_principal_mapping_rules_rename_the_subject(mapping_broker, pki):  # noqa: F811
    only_principal_may_write(
        mapping_broker, unique("tls-mapped"), "User:svc-bob",
        allowed=over_ssl(pki, pki.bob),
        refused={"SSL": over_ssl(pki, pki.alice), "PLAINTEXT": ClientSecurity()},
    )


def test_requested_client_auth_serves_a_client_without_certificate_as_anonymous(mapping_broker, pki):  # noqa: F811
    only_principal_may_write(
        mapping_broker, unique("tls-anonymous"), "User:ANONYMOUS",
        allowed=over_ssl(pki),
        refused={"SSL": over_ssl(pki, pki.bob)},
    )
    # The foreign certificate is still refused: `requested` checks a certificate that is shown.
    assert refused_over_tls(mapping_broker.address("SSL"), pki.client_context(pki.foreign_bob)) is not None
