"""TLS certificates and max.connections changed at runtime (issue 13), as Kafka changes them:
IncrementalAlterConfigs on one BROKER resource for the TLS files (per broker), on a broker or
the cluster-wide default for max.connections.

- Rotation: a broker with a PLAINTEXT and an SSL listener serves keystore A; a librdkafka
  producer and a raw TLS connection stay open. validate_only with keystore B changes nothing; a
  missing file, a wrong key password, a certificate of another subject (Kafka's
  ssl.allow.dn.changes=false) and the cluster-wide default are refused with Kafka's
  INVALID_REQUEST; then B (same subject and names, same CA, new key and serial) is set, and a
  new TLS connection presents B (Python's ssl reads the peer certificate) while the connections
  opened under A go on working; DescribeConfigs shows B as a dynamic broker config.
- A file rewritten in place: set again, the new certificate is served (Kafka reloads a path set
  again); broken in place, the next broker config change keeps the certificate in force and
  logs the failed reload.
- max.connections lowered at runtime below what is open refuses the next connection and keeps
  the open ones; raised again (over a connection still open), a new one is accepted.
"""

from __future__ import annotations

import shutil

import pytest

import raw_configs as rc
import raw_kafka as rk
from kafka_helpers import admin_client, consume_range, create_topic, produce_all, producer, unique, wait_until
from security_helpers import (  # noqa: F401 - pki is a fixture
    ClientSecurity,
    pki,
    requires_security,
    tls_settings,
    tls_socket,
)

pytestmark = requires_security

BROKER = 4
SET, DELETE = 0, 1
DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG = 2, 3


def serial_served(address: str, pki) -> int:  # noqa: F811
    """The serial number of the certificate a new TLS connection to `address` is shown."""
    from cryptography import x509

    with tls_socket(address, pki.client_context()) as sock:
        der = sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(identity) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificates(identity.cert.read_bytes())[0].serial_number


def node_id(address: str) -> str:
    (node,) = admin_client(address).list_topics(timeout=10).brokers
    return str(node)


def alter(address: str, name: str, configs: list, validate_only: bool = False, sock=None) -> rc.Result:
    (result,) = rc.incremental_alter(address, [(BROKER, name, configs)], validate_only=validate_only, sock=sock)
    return result


def answers(sock) -> bool:
    """Whether a connection still answers an ApiVersions request."""
    try:
        sock.sendall(rk.api_versions_request(0, correlation_id=5))
        return rk.read_response(sock, timeout_s=10) is not None
    except OSError:
        return False


def admitted(address: str) -> bool:
    """Whether a new connection is served (one past max.connections is closed unanswered)."""
    try:
        with rk.connect(address) as sock:
            return answers(sock)
    except OSError:
        return False


@pytest.fixture
def tls_broker(start_broker, pki):  # noqa: F811
    return start_broker(name="dynamic-tls", listeners=["PLAINTEXT", "SSL"], settings=tls_settings(pki))


def test_keystore_rotates_without_restart_and_bad_ones_are_refused(tls_broker, pki, tmp_path):  # noqa: F811
    plaintext, ssl_address = tls_broker.address("PLAINTEXT"), tls_broker.address("SSL")
    node = node_id(plaintext)
    renewed = pki.renewed_server("server-renewed")
    a, b = serial_of(pki.server), serial_of(renewed)
    assert a != b
    assert serial_served(ssl_address, pki) == a
    over_ssl = ClientSecurity("SSL", ca=pki.ca).librdkafka()
    topic = unique("dynamic-tls")
    create_topic(plaintext, topic)
    # Connections opened under certificate A, kept open through the rotation.
    old_producer = producer(ssl_address, **over_ssl)
    produce_all(old_producer, topic, [{"value": b"under-a"}])
    old_socket = tls_socket(ssl_address, pki.client_context())

    def keystore(path) -> list:
        return [("ssl.keystore.location", SET, str(path))]

    # validate_only checks B and changes nothing.
    assert alter(plaintext, node, keystore(renewed.keystore), validate_only=True).error is None
    assert serial_served(ssl_address, pki) == a
    assert "ssl.keystore.location" not in {
        k for k, (_, source) in rc.describe(plaintext, BROKER, node).items() if source == DYNAMIC_BROKER_CONFIG
    }

    def refused(configs: list, name: str = node) -> str:
        result = alter(plaintext, name, configs)
        assert result.error == "INVALID_REQUEST", (result.error, result.message)
        assert serial_served(ssl_address, pki) == a
        return result.message

    missing = tmp_path / "no-such-keystore.pem"
    assert str(missing) in refused(keystore(missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    assert "garbage.pem" in refused(keystore(garbage))
    wrong_password = keystore(pki.server_encrypted_keystore) + [("ssl.key.password", SET, "not-the-password")]
    assert "ssl.key.password" in refused(wrong_password)
    assert "DistinguishedName" in refused(keystore(pki.bob.keystore))
    default = refused(keystore(renewed.keystore), name="")
    assert "Cannot update these configs at default cluster level, broker id must be specified" in default

    assert alter(plaintext, node, keystore(renewed.keystore)).error is None
    wait_until(lambda: serial_served(ssl_address, pki) == b, 15, "a new TLS connection presents certificate B")
    value, source = rc.describe(plaintext, BROKER, node)["ssl.keystore.location"]
    assert (value, source) == (str(renewed.keystore), DYNAMIC_BROKER_CONFIG)
    # The connections of certificate A still work, and so do new clients.
    assert answers(old_socket)
    old_socket.close()
    produce_all(old_producer, topic, [{"value": b"still-under-a"}])
    produce_all(producer(ssl_address, **over_ssl), topic, [{"value": b"under-b"}])
    values = [r.value for r in consume_range(ssl_address, topic, 0, 0, 3, **over_ssl)]
    assert values == [b"under-a", b"still-under-a", b"under-b"]
    # A bad keystore now is refused the same way, and B stays.
    result = alter(plaintext, node, keystore(missing))
    assert result.error == "INVALID_REQUEST", result
    assert serial_served(ssl_address, pki) == b


def test_a_keystore_rewritten_in_place(tls_broker, pki, tmp_path):  # noqa: F811
    plaintext, ssl_address = tls_broker.address("PLAINTEXT"), tls_broker.address("SSL")
    node = node_id(plaintext)
    in_place = tmp_path / "keystore.pem"
    first, second = pki.renewed_server("server-first"), pki.renewed_server("server-second")
    shutil.copyfile(first.keystore, in_place)
    assert alter(plaintext, node, [("ssl.keystore.location", SET, str(in_place))]).error is None
    wait_until(lambda: serial_served(ssl_address, pki) == serial_of(first), 15, "the first certificate served")
    # Set again after the file changed: the new certificate is read (Kafka's reload).
    shutil.copyfile(second.keystore, in_place)
    assert alter(plaintext, node, [("ssl.keystore.location", SET, str(in_place))]).error is None
    wait_until(lambda: serial_served(ssl_address, pki) == serial_of(second), 15, "the second certificate served")
    # Broken in place: another broker config change goes through, the reload it brings fails,
    # is logged, and the certificate in force stays.
    in_place.write_text("not a keystore\n")
    assert alter(plaintext, node, [("log.retention.check.interval.ms", SET, "60000")]).error is None
    wait_until(lambda: "reloading the TLS listeners failed" in tls_broker.log(), 15, "the failed reload logged")
    assert serial_served(ssl_address, pki) == serial_of(second)
    # Setting the broken file explicitly is refused.
    result = alter(plaintext, node, [("ssl.keystore.location", SET, str(in_place))])
    assert result.error == "INVALID_REQUEST", result


def test_max_connections_follows_alter_configs(start_broker):
    broker = start_broker(name="dynamic-max-connections")
    address = broker.bootstrap
    node = node_id(address)
    held = [rk.connect(address) for _ in range(3)]
    assert all(answers(sock) for sock in held)
    # The cluster-wide default, lowered below what is open: nothing open is closed.
    assert alter(address, "", [("max.connections", SET, "2")], sock=held[0]).error is None
    wait_until(lambda: not admitted(address), 15, "a connection past max.connections=2 refused")
    assert all(answers(sock) for sock in held)
    assert "max.connections reached" in broker.log()
    # Raised for this broker, over a connection still open: new ones are served again.
    assert alter(address, node, [("max.connections", SET, "10")], sock=held[1]).error is None
    wait_until(lambda: admitted(address), 15, "a new connection admitted under max.connections=10")
    value, source = rc.describe(address, BROKER, node)["max.connections"]
    assert (value, source) == ("10", DYNAMIC_BROKER_CONFIG)
    value, source = rc.describe(address, BROKER, "")["max.connections"]
    assert (value, source) == ("2", DYNAMIC_DEFAULT_BROKER_CONFIG)
    for sock in held:
        sock.close()
