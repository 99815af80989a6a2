"""Hostile input on the secured listeners (issue 12) never takes the broker down.

The module's broker has an SSL, a SASL_PLAINTEXT and a SASL_SSL listener (PLAIN and
SCRAM-SHA-256, user `app`). Each attack is made on raw sockets; the connection it used is closed
or refused (never answered as if logged in), and afterwards the broker process is alive and real
librdkafka clients on fresh connections still produce and consume over SSL and SASL.

TLS port: random bytes, a plaintext Kafka request, a TLS record with an absurd length, a
ClientHello cut short and left hanging (many of them), and garbage inside an established TLS
session. SASL: malformed PLAIN and SCRAM tokens after SaslHandshake, SASL tokens with absurd
length prefixes (a bare v0 token, a SaslAuthenticate frame, the bytes field inside one),
SaslAuthenticate before SaslHandshake (with the right password), Produce and Metadata before
authentication (nothing written), an unknown mechanism (UNSUPPORTED_SASL_MECHANISM and the
enabled list), connections stalled mid-handshake, and a storm of failed logins while a good
client works.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import struct
import threading
import time

import pytest

import raw_kafka as rk
from kafka_helpers import create_topic, round_trip, unique, watermarks
from segment_file import build_batch
from security_helpers import (  # noqa: F401 - pki is a fixture
    ClientSecurity,
    RawSaslSession,
    ScramClient,
    add_scram_args,
    oauthbearer_message,
    pki,
    requires_security,
    sasl_login,
    sasl_settings,
    tls_settings,
    tls_socket,
)

pytestmark = requires_security

APP = ("app", "app-secret")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256")
CLOSE_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def hostile_broker(start_module_broker, pki):  # noqa: F811
    return start_module_broker(
        name="hostile",
        listeners=["SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        settings={**tls_settings(pki), **sasl_settings(*MECHANISMS)},
        extra_args=add_scram_args(APP, mechanisms=("SCRAM-SHA-256",)),
    )


def assert_healthy(broker, pki) -> None:  # noqa: F811
    """Alive, and librdkafka produces and consumes over SSL, SASL_PLAINTEXT and SASL_SSL."""
    broker.assert_running()
    round_trip(broker.address("SSL"), **ClientSecurity("SSL", ca=pki.ca).librdkafka())
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        security = ClientSecurity(protocol, ca=pki.ca).with_login("SCRAM-SHA-256", *APP)
        round_trip(broker.address(protocol), **security.librdkafka())
    broker.assert_running()


def drain_until_closed(sock, timeout_s: float = CLOSE_TIMEOUT_S) -> bytes:
    """Everything the broker sends until it closes the connection; fails if it does not
    close within timeout_s."""
    received = bytearray()
    sock.settimeout(timeout_s)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(received)
            received += chunk
    except (ConnectionResetError, ssl.SSLError):
        return bytes(received)
    except socket.timeout:
        raise AssertionError(f"connection still open {timeout_s} s after the attack (received {bytes(received[:64])!r})") from None


def client_hello(pki) -> bytes:  # noqa: F811
    """The first flight of a real TLS client (a ClientHello record), without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.client_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


# -- the TLS port -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    ["random-bytes", "plaintext-api-versions", "absurd-tls-record-length", "http-request"],
)
def test_tls_port_refuses_what_is_not_tls(hostile_broker, pki, attack):  # noqa: F811
    data = {
        # Seeded noise that does not begin with a TLS content type (0x14-0x18), so that it
        # cannot pass for the header of a long record the broker would wait for.
        "random-bytes": b"\x00" + random.Random(12).randbytes(4095),
        "plaintext-api-versions": rk.api_versions_request(0, correlation_id=7),
        # Handshake record, TLS 1.0 framing, length 65535 (a record is at most 2^14 + 2048).
        "absurd-tls-record-length": b"\x16\x03\x01\xff\xff" + os.urandom(1024),
        "http-request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    }[attack]
    with rk.connect(hostile_broker.address("SSL")) as sock:
        rk.send_quietly(sock, data)
        received = drain_until_closed(sock)
    # At most a TLS alert came back (content type 21), never a Kafka response.
    assert received == b"" or received[0] == 0x15, f"{attack}: the broker answered {received[:32]!r}"
    assert_healthy(hostile_broker, pki)


def test_client_hellos_cut_short_and_left_open_block_nobody(hostile_broker, pki):  # noqa: F811
    hello = client_hello(pki)
    stalled = [rk.connect(hostile_broker.address(listener)) for listener in ("SSL", "SASL_SSL") for _ in range(25)]
    try:
        for sock in stalled:
            sock.sendall(hello[: len(hello) // 2])
        assert_healthy(hostile_broker, pki)
    finally:
        for sock in stalled:
            sock.close()


def test_garbage_inside_an_established_tls_session(hostile_broker, pki):  # noqa: F811
    """After the handshake the bytes are Kafka frames: noise is the frame decoder's business
    (answered, closed or waited on), an absurd frame length closes the connection at once."""
    rng = random.Random(7)
    with tls_socket(hostile_broker.address("SSL"), pki.client_context()) as sock:
        rk.send_quietly(sock, rk.frame(rng.randbytes(300)) + rng.randbytes(64))
        rk.outcome(sock, 0.5)
    with tls_socket(hostile_broker.address("SSL"), pki.client_context()) as sock:
        rk.send_quietly(sock, struct.pack(">I", 0x7FFFFFFF) + b"\x00\x12\x00\x00")
        drain_until_closed(sock)
    assert_healthy(hostile_broker, pki)


# -- SASL exchanges ------------------------------------------------------------------------------


MALFORMED_TOKENS = {
    ("PLAIN", "no-separators"): b"garbage-without-separators",
    ("PLAIN", "empty-user-and-password"): b"\x00\x00",
    ("PLAIN", "no-password"): b"\x00app",
    ("PLAIN", "too-many-fields"): b"a\x00b\x00c\x00d",
    ("PLAIN", "64KiB-user"): b"\x00" + b"u" * 65536 + b"\x00p",
    ("SCRAM-SHA-256", "not-scram"): random.Random(3).randbytes(64),
    ("SCRAM-SHA-256", "empty-user-and-nonce"): b"n,,n=,r=",
    ("SCRAM-SHA-256", "channel-binding-demanded"): b"p=tls-server-end-point,,n=app,r=abc",
    ("SCRAM-SHA-256", "bad-utf8"): b"n,,n=\xff\xfe,r=abc",
    ("SCRAM-SHA-256", "oauth-token-to-scram"): oauthbearer_message("x.y.z"),
}


def assert_refused_and_closed(result, sock) -> None:
    """A failed login: SASL_AUTHENTICATION_FAILED (or the connection closed at once), then
    the connection closed; never logged in."""
    assert not result.ok, f"logged in: {result}"
    assert result.closed or result.error_code == rk.SASL_AUTHENTICATION_FAILED, result
    assert rk.wait_closed(sock, CLOSE_TIMEOUT_S), "the connection stayed open after a failed login"


@pytest.mark.parametrize("mechanism,token", list(MALFORMED_TOKENS), ids=[f"{m}-{t}" for m, t in MALFORMED_TOKENS])
def test_malformed_sasl_token_after_the_handshake(hostile_broker, pki, mechanism, token):  # noqa: F811
    with rk.connect(hostile_broker.address("SASL_PLAINTEXT")) as sock:
        session = RawSaslSession(sock)
        assert session.handshake(mechanism).ok
        result, _ = session.exchange(MALFORMED_TOKENS[(mechanism, token)], "malformed")
        assert_refused_and_closed(result, sock)
    assert_healthy(hostile_broker, pki)


def test_scram_final_message_with_a_forged_proof(hostile_broker, pki):  # noqa: F811
    """A correct client-first, then a client-final whose proof is forged: refused over TLS."""
    with tls_socket(hostile_broker.address("SASL_SSL"), pki.client_context()) as sock:
        session = RawSaslSession(sock)
        assert session.handshake("SCRAM-SHA-256").ok
        scram = ScramClient("SCRAM-SHA-256", *APP)
        first, server_first = session.exchange(scram.first_message(), "scram-first")
        assert first.ok, first
        final = scram.final_message(server_first).rsplit(b",p=", 1)[0] + b",p=" + b"A" * 44
        result, _ = session.exchange(final, "forged-final")
        assert_refused_and_closed(result, sock)
    assert_healthy(hostile_broker, pki)


@pytest.mark.parametrize("where", ["v0-bare-token", "authenticate-frame", "bytes-field", "compact-bytes-field"])
def test_sasl_token_with_an_absurd_length(hostile_broker, pki, where):  # noqa: F811
    """2^31-1 announced, a few bytes sent: the broker neither waits for nor allocates them, and
    no session comes of it."""
    absurd = 0x7FFFFFFF
    with rk.connect(hostile_broker.address("SASL_PLAINTEXT")) as sock:
        if where == "v0-bare-token":
            # SaslHandshake v0: the tokens that follow are bare (a length, then the token).
            sock.sendall(rk.sasl_handshake_request(0, 1, "PLAIN"))
            assert rk.parse_sasl_handshake_response(rk.read_response(sock))["error_code"] == 0
            rk.send_quietly(sock, struct.pack(">I", absurd) + b"\x00app\x00")
        else:
            assert RawSaslSession(sock).handshake("PLAIN").ok
            if where == "authenticate-frame":
                rk.send_quietly(sock, struct.pack(">I", absurd) + rk.request_header(rk.SASL_AUTHENTICATE, 1, 2, False))
            elif where == "bytes-field":
                body = struct.pack(">I", absurd) + b"\x00app\x00app-secret"
                rk.send_quietly(sock, rk.request(rk.SASL_AUTHENTICATE, 1, 2, body, flexible=False))
            else:
                body = rk.uvarint(absurd + 1) + b"\x00app\x00app-secret"
                rk.send_quietly(sock, rk.request(rk.SASL_AUTHENTICATE, 2, 2, body, flexible=True))
        # Closed (after an error answer, perhaps): no session can come of it.
        drain_until_closed(sock)
    assert_healthy(hostile_broker, pki)


def metadata_refused(sock) -> bool:
    """A Metadata request on `sock` is not answered and the connection closes."""
    rk.send_quietly(sock, rk.metadata_request(99))
    return rk.outcome(sock, CLOSE_TIMEOUT_S) == "closed"


def test_sasl_authenticate_before_the_handshake(hostile_broker, pki):  # noqa: F811
    """Even with the right password, a SaslAuthenticate without SaslHandshake logs nobody in:
    ILLEGAL_SASL_STATE (or a closed connection)."""
    with rk.connect(hostile_broker.address("SASL_PLAINTEXT")) as sock:
        result, _ = RawSaslSession(sock).exchange(b"\x00app\x00app-secret", "no-handshake")
        assert not result.ok, result
        assert result.closed or result.error_code == rk.ILLEGAL_SASL_STATE, result
        assert result.closed or metadata_refused(sock)
    assert_healthy(hostile_broker, pki)


@pytest.mark.parametrize("request_kind", ["produce", "metadata"])
def test_requests_before_authentication_are_refused(hostile_broker, pki, request_kind):  # noqa: F811
    address = hostile_broker.address("SASL_PLAINTEXT")
    admin = ClientSecurity("SASL_PLAINTEXT").with_login("SCRAM-SHA-256", *APP)
    topic = unique("hostile-unauth")
    create_topic(address, topic, **admin.librdkafka())
    with rk.connect(address) as sock:
        # ApiVersions is allowed before authentication (clients need it to pick versions).
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        assert rk.read_response(sock) is not None, "ApiVersions before authentication was not answered"
        if request_kind == "produce":
            batch = build_batch([(b"k", b"written without a login")], int(time.time() * 1000))
            rk.send_quietly(sock, rk.produce_request(3, 2, topic, 0, batch))
            assert rk.outcome(sock, CLOSE_TIMEOUT_S) == "closed", "a Produce before authentication was answered"
        else:
            assert metadata_refused(sock), "a Metadata request before authentication was answered"
    assert watermarks(address, topic, 0, **admin.librdkafka()) == (0, 0), "a record was written without a login"
    assert_healthy(hostile_broker, pki)


def test_unknown_mechanism_is_answered_with_the_enabled_ones(hostile_broker, pki):  # noqa: F811
    for mechanism in ("GSSAPI", "OAUTHBEARER", "X" * 1000):
        with rk.connect(hostile_broker.address("SASL_PLAINTEXT")) as sock:
            result = RawSaslSession(sock).handshake(mechanism)
            assert result.error_code == rk.UNSUPPORTED_SASL_MECHANISM, result
            assert sorted(result.mechanisms) == sorted(MECHANISMS), result
            assert rk.wait_closed(sock, CLOSE_TIMEOUT_S), "the connection stayed open after an unsupported mechanism"
    assert_healthy(hostile_broker, pki)


def test_connections_stalled_mid_sasl_block_nobody(hostile_broker, pki):  # noqa: F811
    stalled = []
    try:
        for _ in range(30):
            sock = rk.connect(hostile_broker.address("SASL_PLAINTEXT"))
            stalled.append(sock)
            assert RawSaslSession(sock).handshake("SCRAM-SHA-256").ok
        assert_healthy(hostile_broker, pki)
    finally:
        for sock in stalled:
            sock.close()


def test_a_storm_of_failed_logins_does_not_stop_good_ones(hostile_broker, pki):  # noqa: F811
    """40 wrong-password logins at once (answered after the broker's failure delay) while good
    clients log in and work."""
    address = hostile_broker.address("SASL_PLAINTEXT")
    results = []

    def fail(mechanism):
        results.append(sasl_login(address, mechanism, "app", "wrong-password"))

    threads = [threading.Thread(target=fail, args=(MECHANISMS[i % 2],)) for i in range(40)]
    for thread in threads:
        thread.start()
    try:
        assert_healthy(hostile_broker, pki)
    finally:
        for thread in threads:
            thread.join(30)
    assert len(results) == 40 and all(r.error_code == rk.SASL_AUTHENTICATION_FAILED for r in results), [
        r for r in results if r.error_code != rk.SASL_AUTHENTICATION_FAILED
    ][:3]
