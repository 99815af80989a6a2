"""The admin listener with security on (issue 14, item 1): HTTPS with the broker's keystore,
HTTP Basic against the cluster's SCRAM users, and the broker's ACLs.

A broker with a SASL_PLAINTEXT listener, the standard authorizer, super user `admin`, and
`admin.ssl.enable=true`: health answers anyone over HTTPS (200); `/metrics` without
credentials is 401 with a Basic challenge, with a wrong password 401, for a user without ACLs
403, and 200 once the user is granted DESCRIBE on the cluster; the super user reads it at once.
Plain HTTP to the TLS port gets no answer.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request

import pytest

from kafka_helpers import create_topic, unique, wait_until
from metrics_helpers import Metrics
from secure_clients import acl, create_acls
from security_helpers import (  # noqa: F401 - pki is a fixture
    AUTHORIZER,
    ClientSecurity,
    add_scram_args,
    pki,
    requires_security,
    sasl_settings,
    tls_settings,
)

pytestmark = requires_security

ADMIN = ("admin", "admin-secret")
READER = ("reader", "reader-secret")
ADMIN_LOGIN = ClientSecurity("SASL_PLAINTEXT").with_login("SCRAM-SHA-256", *ADMIN)


@pytest.fixture(scope="module")
def secured(start_module_broker, pki):  # noqa: F811
    settings = {
        **sasl_settings("SCRAM-SHA-256"),
        **AUTHORIZER,
        **tls_settings(pki),
        "super.users": "User:admin",
        "admin.ssl.enable": True,
    }
    broker = start_module_broker(
        name="admin-security", listeners=["SASL_PLAINTEXT"], settings=settings,
        extra_args=add_scram_args(ADMIN, READER, mechanisms=("SCRAM-SHA-256",)),
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    return broker, context


def https(broker, context, path: str, login: tuple[str, str] | None = None, method: str = "GET"):
    """(status, headers, body) of a request to the admin listener over HTTPS."""
    request = urllib.request.Request(f"https://{broker.admin_address}{path}", method=method)
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def test_health_answers_without_credentials(secured):
    broker, context = secured
    assert https(broker, context, "/v1/health/live")[0] == 200
    status, _, body = https(broker, context, "/v1/health/ready")
    assert status == 200, body


def test_metrics_need_a_login(secured):
    broker, context = secured
    status, headers, body = https(broker, context, "/metrics")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert "log in" in json.loads(body)["error"]
    status, _, body = https(broker, context, "/metrics", login=("admin", "wrong"))
    assert status == 401 and "wrong password" in json.loads(body)["error"]
    status, _, body = https(broker, context, "/metrics", login=("nobody", "x"))
    assert status == 401


def test_the_super_user_reads_metrics(secured):
    broker, context = secured
    status, _, body = https(broker, context, "/metrics", login=ADMIN)
    assert status == 200
    assert Metrics(body).value("strom_controller_active") == 1


def test_a_user_needs_describe_on_the_cluster(secured):
    broker, context = secured
    status, _, body = https(broker, context, "/metrics", login=READER)
    assert status == 403, body
    assert "User:reader" in json.loads(body)["error"]
    create_acls(broker.address("SASL_PLAINTEXT"), ADMIN_LOGIN, [acl("User:reader", "DESCRIBE", "CLUSTER", "kafka-cluster")])
    wait_until(lambda: https(broker, context, "/metrics", login=READER)[0] == 200, 15, "reader allowed to read /metrics")
    status, _, body = https(broker, context, "/api/cluster", login=READER)
    assert status == 200 and json.loads(body)["controller_id"] is not None


def test_the_console_api_asks_kafka_as_the_logged_in_user(secured):
    """The API's Kafka requests are the user's own (SASL as the Basic login), so the broker's
    per-topic ACLs decide what the console shows: the super user sees a topic the reader, who
    may only DESCRIBE the cluster, does not; changing anything needs ALTER on the cluster."""
    broker, context = secured
    topic = unique("admin-sec")
    create_topic(broker.address("SASL_PLAINTEXT"), topic, **ADMIN_LOGIN.librdkafka())
    create_acls(broker.address("SASL_PLAINTEXT"), ADMIN_LOGIN, [acl("User:reader", "DESCRIBE", "CLUSTER", "kafka-cluster")])
    wait_until(lambda: https(broker, context, "/api/topics", login=READER)[0] == 200, 15, "reader allowed to list topics")

    def names(login):
        status, _, body = https(broker, context, "/api/topics", login=login)
        assert status == 200, body
        return {t["name"] for t in json.loads(body)["topics"]}

    wait_until(lambda: topic in names(ADMIN), 15, f"{topic} listed for the super user")
    assert topic not in names(READER)
    status, _, body = https(broker, context, "/api/topics", login=READER, method="POST")
    assert status == 403, body


def test_plain_http_to_the_tls_port_gets_no_answer(secured):
    broker, context = secured
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        urllib.request.urlopen(f"http://{broker.admin_address}/v1/health/live", timeout=5).read()
    assert https(broker, context, "/v1/health/live")[0] == 200
