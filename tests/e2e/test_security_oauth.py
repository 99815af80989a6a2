"""OAUTHBEARER (issue 12, KIP-768): JWTs checked against a JWKS file.

The module's broker has listeners SASL_PLAINTEXT and SASL_SSL with OAUTHBEARER (and SCRAM-SHA-256
for the `admin` super user), `sasl.oauthbearer.jwks.endpoint.url=file:///...jwks.json` written by
the test, an expected audience and issuer, and the StandardAuthorizer. Tokens are RS256 JWTs
signed by the test's own key (security_helpers.JwtIssuer); confluent-kafka gets them from its
`oauth_cb`, kafka-python from a `sasl_oauth_token_provider`.

- a valid token: both clients produce and consume (with ACLs for the token's subject);
- the principal is `User:<sub>`: an ACL for one subject lets that token write and refuses a
  token with another subject;
- refused with SASL_AUTHENTICATION_FAILED (raw SaslAuthenticate, RFC 7628's error challenge
  acknowledged) and by librdkafka: an expired token, one signed by another key under the same key
  id, the wrong audience, the wrong issuer, an unsigned (`alg: none`) token, and bytes that are
  not a JWT; the broker goes on serving;
- `sasl.oauthbearer.sub.claim.name` names the claim the principal comes from (a broker of its own).
"""

from __future__ import annotations

import pytest

import raw_kafka as rk
from kafka_helpers import create_topic, round_trip, unique
from secure_clients import acl, connect_errors, grant, produce_outcome, round_trip_with, unused_groups_acl
from security_helpers import (  # noqa: F401 - pki is a fixture
    AUTHORIZER,
    ClientSecurity,
    JwtIssuer,
    add_scram_args,
    pki,
    requires_security,
    sasl_login,
    sasl_settings,
    tls_settings,
)

pytestmark = requires_security

ISSUER = "https://issuer.strom.test"
AUDIENCE = "strom-e2e"
ADMIN = ("admin", "admin-secret")


@pytest.fixture(scope="module")
def issuer() -> JwtIssuer:
    return JwtIssuer(ISSUER, AUDIENCE)


def oauth_settings(issuer: JwtIssuer, directory, **more) -> dict:
    return {
        **sasl_settings("OAUTHBEARER", "SCRAM-SHA-256"),
        **AUTHORIZER,
        "super.users": "User:admin",
        "sasl.oauthbearer.jwks.endpoint.url": issuer.write_jwks(directory / "jwks.json"),
        "sasl.oauthbearer.expected.audience": issuer.audience,
        "sasl.oauthbearer.expected.issuer": issuer.issuer,
        **more,
    }


@pytest.fixture(scope="module")
def oauth_broker(start_module_broker, pki, issuer, tmp_path_factory):  # noqa: F811
    return start_module_broker(
        name="oauth",
        listeners=["SASL_PLAINTEXT", "SASL_SSL"],
        settings={**tls_settings(pki), **oauth_settings(issuer, tmp_path_factory.mktemp("jwks"))},
        extra_args=add_scram_args(ADMIN, mechanisms=("SCRAM-SHA-256",)),
    )


def admin() -> ClientSecurity:
    return ClientSecurity("SASL_PLAINTEXT").with_login("SCRAM-SHA-256", *ADMIN)


def bearer(token: str, subject: str, protocol: str = "SASL_PLAINTEXT", ca=None) -> ClientSecurity:
    """A client presenting `token` (librdkafka also wants the subject as principal name)."""
    return ClientSecurity(protocol, ca=ca, mechanism="OAUTHBEARER", token=lambda: token, token_subject=subject)


def allow_on_topic(broker, topic: str, subject: str, token: str, operations=("WRITE", "READ")) -> None:
    """Creates `topic` and lets User:<subject> do `operations` on it (enforced on return)."""
    address = broker.address("SASL_PLAINTEXT")
    create_topic(address, topic, **admin().librdkafka())
    principal = f"User:{subject}"
    bindings = [acl(principal, op, "TOPIC", topic) for op in operations] + [unused_groups_acl(principal)]
    grant(address, admin(), bindings, principal, bearer(token, subject))


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_valid_token_produces_and_consumes(oauth_broker, issuer, pki, protocol, client):  # noqa: F811
    subject = unique("svc")
    token = issuer.token(subject)
    topic = unique("oauth")
    allow_on_topic(oauth_broker, topic, subject, token)
    security = bearer(token, subject, protocol, pki.ca if protocol == "SASL_SSL" else None)
    round_trip_with(client, oauth_broker.address(protocol), security, topic)


def test_the_principal_is_the_sub_claim(oauth_broker, issuer):
    writer, other = unique("svc-writer"), unique("svc-other")
    topic = unique("oauth-principal")
    allow_on_topic(oauth_broker, topic, writer, issuer.token(writer), operations=("WRITE",))
    address = oauth_broker.address("SASL_PLAINTEXT")
    assert produce_outcome(address, bearer(issuer.token(writer), writer), topic) is None
    assert produce_outcome(address, bearer(issuer.token(other), other), topic) == "TOPIC_AUTHORIZATION_FAILED"


BAD_TOKENS = {
    "expired": lambda issuer, subject: issuer.token(subject, lifetime_s=-120),
    "foreign-signed": lambda issuer, subject: issuer.foreign().token(subject),
    "wrong-audience": lambda issuer, subject: issuer.token(subject, audience="someone-else"),
    "wrong-issuer": lambda issuer, subject: issuer.token(subject, issuer="https://evil.test"),
    "unsigned": lambda issuer, subject: issuer.unsigned_token(subject),
    "not-a-jwt": lambda issuer, subject: "not.a.jwt",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_are_refused(oauth_broker, issuer, kind):
    subject = unique("svc-bad")
    token = BAD_TOKENS[kind](issuer, subject)
    address = oauth_broker.address("SASL_PLAINTEXT")
    result = sasl_login(address, "OAUTHBEARER", token=token)
    assert result.error_code == rk.SASL_AUTHENTICATION_FAILED and not result.closed, result
    connect_errors(address, bearer(token, subject), until={"_AUTHENTICATION"})
    # A good token still works while the bad client retries.
    good = unique("svc-good")
    assert sasl_login(address, "OAUTHBEARER", token=issuer.token(good)).ok
    round_trip(address, **admin().librdkafka())


def test_sub_claim_name_picks_the_principal_claim(start_broker, issuer, tmp_path):
    broker = start_broker(
        name="oauth-claim", listeners=["SASL_PLAINTEXT"],
        settings=oauth_settings(issuer, tmp_path, **{"sasl.oauthbearer.sub.claim.name": "client_id"}),
        extra_args=add_scram_args(ADMIN, mechanisms=("SCRAM-SHA-256",)),
    )
    address = broker.address("SASL_PLAINTEXT")
    client_id = unique("client")
    token = issuer.token(client_id, subject_claim="client_id", sub=unique("person"))
    topic = unique("oauth-claim")
    allow_on_topic(broker, topic, client_id, token, operations=("WRITE",))
    assert produce_outcome(address, bearer(token, client_id), topic) is None
    # A token without the configured claim names no principal: refused.
    assert sasl_login(address, "OAUTHBEARER", token=issuer.token(unique("only-sub"))).error_code == (
        rk.SASL_AUTHENTICATION_FAILED
    )
