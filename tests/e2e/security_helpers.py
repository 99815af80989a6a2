"""Certificates, tokens, client settings and raw SASL logins for the security tests (issue 12).

- `Pki` (fixture `pki`, made once per session with the `cryptography` package): a CA; a server
  certificate (SAN IP:127.0.0.1, DNS:localhost) as a Kafka PEM keystore (private key, then the
  certificate chain, in one file), also with its key encrypted (PKCS#8, PBES2 AES-256-CBC) under
  `ssl.key.password`; client certificates CN=bob, CN=alice and CN=broker (the last also serves:
  SANs 127.0.0.1-3 and localhost, for the nodes of a cluster); a foreign CA and a CN=bob
  certificate it signed, which the broker must not trust. Every key is EC P-256.
- `JwtIssuer`: an RS256 key, its JWKS file (`file://` URL for
  `sasl.oauthbearer.jwks.endpoint.url`) and tokens with chosen subject, audience, issuer and
  lifetime; `foreign()` signs with another key under the same key id.
- `ClientSecurity`: one client identity (security.protocol, TLS files, SASL login or token)
  rendered for librdkafka, kafka-python, kcat (`-X` arguments) and the strom CLI
  (`--command-config` properties file): declared once, used by every client.
- Broker settings: `tls_settings`, `sasl_settings`, `AUTHORIZER`, `add_scram_args`.
- Raw connections: `tls_socket` (Python's ssl over a raw socket) and `sasl_login`, which speaks
  SaslHandshake/SaslAuthenticate itself (PLAIN, SCRAM-SHA-256/512 with a client-side RFC 5802
  implementation, OAUTHBEARER) and reports the broker's error code: the precise answer a real
  client only paraphrases.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import pathlib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field, replace

import pytest

import raw_kafka as rk
from strom_broker import STROM_BIN

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
AUTHORIZER = {"authorizer.class.name": STANDARD_AUTHORIZER}
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)
KEY_PASSWORD = "keystore-secret"
CERT_VALIDITY = datetime.timedelta(days=7)


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A certificate and its key as files: `cert` (the certificate, then its CA), `key` (PKCS#8
    PEM), `keystore` (key then chain: Kafka's PEM keystore), `dn` (the subject as Kafka prints it)."""

    name: str
    dn: str
    cert: pathlib.Path
    key: pathlib.Path
    keystore: pathlib.Path

    @property
    def principal(self) -> str:
        """The principal a broker gives a mutual-TLS peer without mapping rules."""
        return f"User:{self.dn}"


class Pki:
    """The certificates of the module docstring, written to `directory`."""

    def __init__(self, directory: pathlib.Path):
        from cryptography.hazmat.primitives import serialization

        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca_key, self._ca_cert = _make_ca("Strom Test CA")
        self._foreign_key, self._foreign_cert = _make_ca("Foreign Test CA")
        self.ca = self._write("ca.pem", _pem(self._ca_cert))
        self.foreign_ca = self._write("foreign-ca.pem", _pem(self._foreign_cert))
        loopback = [ipaddress.ip_address(f"127.0.0.{i}") for i in (1, 2, 3)]
        self.server = self._issue("server", "strom-server", sans=(loopback[:1], ["localhost"]))
        self.broker = self._issue("broker", "broker", sans=(loopback, ["localhost"]))
        self.bob = self._issue("bob", "bob")
        self.alice = self._issue("alice", "alice")
        self.foreign_bob = self._issue("foreign-bob", "bob", by=(self._foreign_key, self._foreign_cert))
        # The server's keystore again, its key encrypted under KEY_PASSWORD.
        key = serialization.load_pem_private_key(self.server.key.read_bytes(), password=None)
        # PKCS#8 with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), as `openssl pkcs8 -topk8` writes it.
        encryption = serialization.BestAvailableEncryption(KEY_PASSWORD.encode())
        encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        self.server_encrypted_keystore = self._write(
            "server-encrypted.keystore.pem", encrypted + self.server.cert.read_bytes()
        )
        self.key_password = KEY_PASSWORD

    def renewed_server(self, name: str) -> Identity:
        """The server certificate renewed, as a rotation makes it: the same subject and names
        from the same CA, a new key and serial number."""
        loopback = [ipaddress.ip_address("127.0.0.1")]
        return self._issue(name, "strom-server", sans=(loopback, ["localhost"]))

    def _write(self, name: str, data: bytes) -> pathlib.Path:
        path = self.directory / name
        path.write_bytes(data)
        return path

    def _issue(self, name: str, common_name: str, sans=None, by=None) -> Identity:
        from cryptography.hazmat.primitives import serialization

        ca_key, ca_cert = by or (self._ca_key, self._ca_cert)
        key, cert = _make_leaf(common_name, ca_key, ca_cert, sans)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        chain = _pem(cert) + _pem(ca_cert)
        return Identity(
            name=name,
            dn=f"CN={common_name}",
            cert=self._write(f"{name}.pem", chain),
            key=self._write(f"{name}.key", key_pem),
            keystore=self._write(f"{name}.keystore.pem", key_pem + chain),
        )

    def client_context(self, identity: Identity | None = None, ca: pathlib.Path | None = None) -> ssl.SSLContext:
        """A Python TLS client context that trusts our CA (or `ca`), checks the broker's name,
        and presents `identity`'s certificate when given."""
        context = ssl.create_default_context(cafile=str(ca or self.ca))
        if identity is not None:
            context.load_cert_chain(str(identity.cert), str(identity.key))
        return context


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(common_name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(common_name: str, ca_key, ca_cert, sans=None):
    """A leaf certificate for both TLS ends (serverAuth and clientAuth); sans = (IPs, DNS names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        ips, names = sans
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip) for ip in ips] + [x509.DNSName(n) for n in names]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """The session's certificates (see Pki)."""
    return Pki(tmp_path_factory.mktemp("pki"))


# -- JWTs for OAUTHBEARER -------------------------------------------------------------------


class JwtIssuer:
    """Signs RS256 JWTs; `write_jwks(path)` publishes its public key as a JWKS under `kid`."""

    def __init__(self, issuer: str, audience: str, kid: str = "strom-test-key"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def foreign(self) -> "JwtIssuer":
        """An issuer with the same names and key id but another key: its tokens look right and
        are badly signed."""
        return JwtIssuer(self.issuer, self.audience, self.kid)

    def jwks(self) -> dict:
        from jwt.algorithms import RSAAlgorithm

        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: pathlib.Path) -> str:
        """Writes the JWKS; returns its file:// URL."""
        path.write_text(json.dumps(self.jwks()))
        return path.resolve().as_uri()

    def token(
        self,
        subject: str,
        lifetime_s: float = 600,
        audience: str | None = None,
        issuer: str | None = None,
        subject_claim: str = "sub",
        **claims,
    ) -> str:
        """A signed JWT for `subject` (under `subject_claim`), valid from now for `lifetime_s`
        (negative: expired that long ago)."""
        import jwt

        now = int(time.time())
        payload = {
            subject_claim: subject,
            "aud": audience or self.audience,
            "iss": issuer or self.issuer,
            "iat": now - 5 if lifetime_s > 0 else now + int(lifetime_s) - 60,
            "exp": now + int(lifetime_s),
            "scope": "kafka",
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

    def unsigned_token(self, subject: str, lifetime_s: float = 600) -> str:
        """The same claims with `"alg": "none"` and no signature (the classic JWT forgery)."""
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        now = int(time.time())
        claims = {"sub": subject, "aud": self.audience, "iss": self.issuer, "iat": now, "exp": now + int(lifetime_s)}

        def part(value: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part(header)}.{part(claims)}."


def oauthbearer_message(token: str) -> bytes:
    """The OAUTHBEARER client's first message (RFC 7628): GS2 header, then auth=Bearer."""
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


# -- broker settings ------------------------------------------------------------------------


def tls_settings(pki: Pki, client_auth: str = "none", encrypted_key: bool = False, identity: Identity | None = None) -> dict:
    """The broker's TLS settings (Kafka's names, PEM files): keystore (the server certificate,
    its key encrypted with `encrypted_key`, or `identity`'s), truststore (our CA), client auth."""
    keystore = pki.server_encrypted_keystore if encrypted_key else (identity or pki.server).keystore
    settings = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),
        "ssl.client.auth": client_auth,
    }
    if encrypted_key:
        settings["ssl.key.password"] = pki.key_password
    return settings


def sasl_settings(*mechanisms: str) -> dict:
    return {"sasl.enabled.mechanisms": ",".join(mechanisms)}


def add_scram_args(*users: tuple[str, str], mechanisms=SCRAM_MECHANISMS) -> list[str]:
    """`--add-scram` arguments: every (user, password) with every mechanism."""
    args = []
    for name, password in users:
        for mechanism in mechanisms:
            args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


# -- one client identity for every client -----------------------------------------------------


@dataclass(frozen=True)
class ClientSecurity:
    """How a client connects and who it is. `protocol` is security.protocol; `ca` the CA file
    it trusts (TLS); `identity` its certificate (mutual TLS); `mechanism`, `username`, `password`
    its SASL login; `token` a callable returning the OAUTHBEARER JWT (and `token_subject`, which
    librdkafka wants as the token's principal name)."""

    protocol: str = "PLAINTEXT"
    ca: pathlib.Path | None = None
    identity: Identity | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    token: object = None
    token_subject: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def with_login(self, mechanism: str, username: str, password: str) -> "ClientSecurity":
        return replace(self, mechanism=mechanism, username=username, password=password)

    def properties(self) -> dict:
        """Kafka client properties with librdkafka's spelling (also what the strom CLI reads
        from --command-config), without the OAUTHBEARER callback."""
        conf = {"security.protocol": self.protocol}
        if self.tls:
            conf["ssl.ca.location"] = str(self.ca)
            if self.identity is not None:
                conf["ssl.certificate.location"] = str(self.identity.cert)
                conf["ssl.key.location"] = str(self.identity.key)
        if self.mechanism is not None:
            conf["sasl.mechanism"] = self.mechanism
            if self.mechanism != "OAUTHBEARER":
                conf["sasl.username"] = self.username
                conf["sasl.password"] = self.password
        conf.update(self.extra)
        return conf

    def librdkafka(self) -> dict:
        """confluent-kafka configuration (pass as **conf to kafka_helpers, or merge)."""
        conf = self.properties()
        if self.mechanism == "OAUTHBEARER":
            token, subject = self.token, self.token_subject or "unknown"

            def oauth_cb(_config_string):
                # (token, expiry as epoch seconds, principal, extensions); the broker reads the
                # token's own exp, librdkafka only uses this expiry to schedule a refresh.
                return token(), time.time() + 600, subject, {}

            conf["oauth_cb"] = oauth_cb
        return conf

    def kafka_python(self) -> dict:
        """kafka-python keyword arguments."""
        conf = {"security_protocol": self.protocol}
        if self.tls:
            conf.update(ssl_cafile=str(self.ca), ssl_check_hostname=True)
            if self.identity is not None:
                conf.update(ssl_certfile=str(self.identity.cert), ssl_keyfile=str(self.identity.key))
        if self.mechanism == "OAUTHBEARER":
            conf.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=_kafka_python_token_provider(self.token))
        elif self.mechanism is not None:
            conf.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password)
        return conf

    def kcat_args(self) -> list[str]:
        """kcat `-X key=value` arguments (kcat is librdkafka underneath)."""
        assert self.mechanism != "OAUTHBEARER", "kcat has no token callback"
        args = []
        for key, value in self.properties().items():
            args += ["-X", f"{key}={value}"]
        return args

    def write_properties(self, path: pathlib.Path) -> pathlib.Path:
        """A client.properties file for `strom ... --command-config FILE`."""
        assert self.mechanism != "OAUTHBEARER", "the CLI has no token callback"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        return path


def _kafka_python_token_provider(token):
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return token()

    return Provider()


# -- raw connections --------------------------------------------------------------------------


def tls_socket(address: str, context: ssl.SSLContext, timeout_s: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection to HOST:PORT, handshake done (raises ssl.SSLError or OSError if refused)."""
    host, port = address.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=timeout_s)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def refused_over_tls(address: str, context: ssl.SSLContext, timeout_s: float = 5.0) -> str | None:
    """None if a TLS client with `context` gets an ApiVersions answer; else how it was refused
    (the handshake failed, or the broker closed the connection before answering: with TLS 1.3 a
    client learns that its certificate was rejected only at its first read)."""
    try:
        with tls_socket(address, context, timeout_s) as sock:
            sock.sendall(rk.api_versions_request(0, correlation_id=1))
            payload = rk.read_response(sock, timeout_s)
    except ssl.SSLError as error:
        return f"TLS error: {error}"
    except (ConnectionResetError, BrokenPipeError) as error:
        return f"connection reset: {error}"
    except TimeoutError:
        raise AssertionError(f"{address}: the broker neither answered nor closed within {timeout_s} s") from None
    return None if payload is not None else "closed without an answer"


class ScramClient:
    """The client side of SCRAM-SHA-256/512 (RFC 5802) as Kafka uses it: no channel binding
    (`n,,`), the user name escaped (`=` as `=3D`, `,` as `=2C`)."""

    def __init__(self, mechanism: str, username: str, password: str, nonce: str | None = None):
        assert mechanism in SCRAM_MECHANISMS, mechanism
        self.hash_name = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
        self.username = username.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={self.username},r={self.nonce}"
        self.server_signature = b""

    def first_message(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final_message(self, server_first: bytes) -> bytes:
        fields = dict(item.split("=", 1) for item in server_first.decode().split(","))
        assert fields["r"].startswith(self.nonce), f"server nonce {fields['r']!r} does not extend ours"
        salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
        salted = hashlib.pbkdf2_hmac(self.hash_name, self.password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final: bytes) -> bool:
        fields = dict(item.split("=", 1) for item in server_final.decode().split(","))
        return "v" in fields and base64.b64decode(fields["v"]) == self.server_signature

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash_name).digest()


@dataclass
class LoginResult:
    """How a raw SASL login ended: `error_code` of the last answer (0: logged in), its message,
    the session lifetime the broker granted, the mechanisms it offered, or `closed` if it closed
    the connection instead of answering (`step` says where)."""

    error_code: int | None
    step: str
    error_message: str | None = None
    session_lifetime_ms: int = 0
    mechanisms: list = field(default_factory=list)
    closed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code == 0 and not self.closed


class RawSaslSession:
    """SaslHandshake v1 + SaslAuthenticate on an open socket (plain or TLS), with increasing
    correlation ids; `login()` runs a whole exchange, `exchange()` one step."""

    def __init__(self, sock, authenticate_version: int = 2, timeout_s: float = 10.0):
        self.sock = sock
        self.version = authenticate_version
        self.timeout_s = timeout_s
        self.correlation_id = 100

    def _next_id(self) -> int:
        self.correlation_id += 1
        return self.correlation_id

    def _answer(self) -> bytes | None:
        """The next response's payload; None if the broker closed the connection."""
        try:
            return rk.read_response(self.sock, self.timeout_s)
        except (ConnectionError, ssl.SSLError):
            return None

    def handshake(self, mechanism: str) -> LoginResult:
        if not rk.send_quietly(self.sock, rk.sasl_handshake_request(1, self._next_id(), mechanism)):
            return LoginResult(None, "handshake", closed=True)
        payload = self._answer()
        if payload is None:
            return LoginResult(None, "handshake", closed=True)
        answer = rk.parse_sasl_handshake_response(payload)
        return LoginResult(answer["error_code"], "handshake", mechanisms=answer["mechanisms"])

    def exchange(self, token: bytes, step: str) -> tuple[LoginResult, bytes]:
        """Sends one token; returns the outcome and the server's token."""
        if not rk.send_quietly(self.sock, rk.sasl_authenticate_request(self.version, self._next_id(), token)):
            return LoginResult(None, step, closed=True), b""
        payload = self._answer()
        if payload is None:
            return LoginResult(None, step, closed=True), b""
        answer = rk.parse_sasl_authenticate_response(payload, self.version)
        result = LoginResult(
            answer["error_code"], step, answer["error_message"], answer["session_lifetime_ms"]
        )
        return result, answer["auth_bytes"]

    def login(self, mechanism: str, username: str = "", password: str = "", token: str | None = None) -> LoginResult:
        handshake = self.handshake(mechanism)
        if not handshake.ok:
            return handshake
        if mechanism == "PLAIN":
            result, _ = self.exchange(f"\0{username}\0{password}".encode(), "plain")
            return result
        if mechanism == "OAUTHBEARER":
            result, challenge = self.exchange(oauthbearer_message(token), "oauthbearer")
            if result.ok and challenge:
                # RFC 7628: a refusal comes as an error challenge (JSON) that the client
                # acknowledges with a lone 0x01; the broker then fails the exchange.
                result, _ = self.exchange(b"\x01", "oauthbearer-error-ack")
                if result.ok:
                    result.error_code, result.error_message = -1, f"error challenge then success: {challenge!r}"
            return result
        scram = ScramClient(mechanism, username, password)
        result, server_first = self.exchange(scram.first_message(), "scram-first")
        if not result.ok:
            return result
        result, server_final = self.exchange(scram.final_message(server_first), "scram-final")
        if result.ok and not scram.verify_server_final(server_final):
            result.error_code, result.error_message = -1, f"the broker's ServerSignature is wrong: {server_final!r}"
        return result


def sasl_login(
    address: str,
    mechanism: str,
    username: str = "",
    password: str = "",
    token: str | None = None,
    context: ssl.SSLContext | None = None,
    authenticate_version: int = 2,
) -> LoginResult:
    """One raw login on a fresh connection (TLS when `context` is given), which is then closed."""
    sock = tls_socket(address, context) if context is not None else rk.connect(address)
    with sock:
        return RawSaslSession(sock, authenticate_version).login(mechanism, username, password, token)


@functools.cache
def security_available() -> bool:
    """Whether the broker under test has issue 12's security (`strom server --help` shows
    `--add-scram`); the security tests skip, with the reason, until it has."""
    try:
        result = subprocess.run([STROM_BIN, "server", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "--add-scram" in result.stdout


requires_security = pytest.mark.skipif(
    not security_available(), reason="the broker has no security yet (`strom server --help` lacks --add-scram)"
)


def kafka_error_name(error) -> str:
    """The Kafka name of a librdkafka error or KafkaException (TOPIC_AUTHORIZATION_FAILED, ...)."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(error, KafkaException):
        error = error.args[0]
    if isinstance(error, KafkaError):
        return error.name()
    return type(error).__name__
