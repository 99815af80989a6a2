"""A secured 3-node cluster (issue 12): TLS with mutual authentication between the brokers and
between the controllers, SASL_SSL for clients, the authorizer on; it replicates and fails over.

Every node is started with Kafka's settings instead of the cluster flags (cluster.py, listeners
mode):

    listeners=CLIENT://127.0.0.<n>:Pc,CONTROLLER://127.0.0.<n>:Pctl,BROKER://127.0.0.<n>:Pb
    listener.security.protocol.map=BROKER:SSL,CLIENT:SASL_SSL,CONTROLLER:SSL
    inter.broker.listener.name=BROKER  controller.listener.names=CONTROLLER
    controller.quorum.voters=1@...,2@...,3@...  node.id=<n>
    ssl.keystore.location=broker.keystore.pem (CN=broker, SANs 127.0.0.1-3)  ssl.client.auth=required
    authorizer.class.name=...StandardAuthorizer  super.users=User:admin;User:CN=broker
    sasl.enabled.mechanisms=SCRAM-SHA-512  --add-scram for admin and app on every node

Replica fetches and the controller quorum therefore run over mutual TLS as User:CN=broker (a
super user: CLUSTER_ACTION). Clients connect to CLIENT without a certificate (as in Kafka,
KIP-684: the broker-wide ssl.client.auth does not apply to SASL_SSL listeners); `app` is an
ordinary user with prefixed ACLs.

The test: a topic with RF=3 reaches a full ISR; an acks=all producer and a consumer (as `app`)
run while the partition leader is killed with kill -9; a new leader takes over and the producer
goes on; the killed node comes back and catches up; every acknowledged record is consumed at
its offset; after a stop, replica_checker finds the replicas identical below the high watermark.
Also: the BROKER and CONTROLLER listeners refuse a client without a certificate, or with one from
a foreign CA.
"""

from __future__ import annotations

import pytest

from cluster import FAST_FAILOVER_SETTINGS, ContinuousConsumer, SteadyProducer, cluster_factory  # noqa: F401
from kafka_helpers import admin_client, unique, wait_until
from replica_checker import check_replicas
from secure_clients import acl, create_acls, unused_groups_acl
from security_helpers import (  # noqa: F401 - pki is a fixture
    AUTHORIZER,
    ClientSecurity,
    add_scram_args,
    pki,
    refused_over_tls,
    requires_security,
    sasl_settings,
    tls_settings,
)

pytestmark = requires_security

ADMIN = ("admin", "admin-secret")
APP = ("app", "app-secret")
LISTENERS = {"BROKER": "SSL", "CLIENT": "SASL_SSL", "CONTROLLER": "SSL"}


def secured_cluster(cluster_factory, pki, tmp_path):  # noqa: F811
    admin = ClientSecurity("SASL_SSL", ca=pki.ca).with_login("SCRAM-SHA-512", *ADMIN)
    settings = {
        **FAST_FAILOVER_SETTINGS,
        **tls_settings(pki, client_auth="required", identity=pki.broker),
        **sasl_settings("SCRAM-SHA-512"),
        **AUTHORIZER,
        "super.users": f"User:admin;{pki.broker.principal}",
        "group.initial.rebalance.delay.ms": 0,
    }
    cluster = cluster_factory(
        3,
        settings=settings,
        extra_args=add_scram_args(ADMIN, APP, mechanisms=("SCRAM-SHA-512",)),
        listeners=LISTENERS,
        client_conf=admin.librdkafka(),
        cli_args=["--command-config", str(admin.write_properties(tmp_path / "admin.properties"))],
    )
    return cluster, admin


def brokers_seen_by(cluster, node, security: ClientSecurity) -> set[int]:
    metadata = admin_client(node.bootstrap, **security.librdkafka()).list_topics(timeout=5)
    return set(metadata.brokers)


@pytest.mark.timeout(240)
def test_secured_cluster_replicates_and_fails_over(cluster_factory, pki, tmp_path):  # noqa: F811
    cluster, admin = secured_cluster(cluster_factory, pki, tmp_path)
    app = admin.with_login("SCRAM-SHA-512", *APP)
    for node in cluster.nodes.values():
        wait_until(lambda: brokers_seen_by(cluster, node, admin) == {1, 2, 3}, 30, f"{node.name} to list the 3 brokers", 0.2)

    # Listeners for brokers and controllers only: a certificate our CA signed, or nothing.
    for node in cluster.nodes.values():
        for listener in ("BROKER", "CONTROLLER"):
            address = node.address(listener)
            assert refused_over_tls(address, pki.client_context()) is not None, f"{address} served a client without a certificate"
            assert refused_over_tls(address, pki.client_context(pki.foreign_bob)) is not None, f"{address} trusted a foreign CA"

    topic = unique("secure-orders")
    prefix = topic.rsplit("-", 1)[0] + "-"
    create_acls(cluster.live_bootstrap(), admin, [
        acl("User:app", "WRITE", "TOPIC", prefix, "PREFIXED"),
        acl("User:app", "READ", "TOPIC", prefix, "PREFIXED"),
        unused_groups_acl("User:app"),
    ])
    cluster.create_topic(topic, partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})
    for node in cluster.nodes.values():
        wait_until(
            lambda: admin_client(node.bootstrap, **app.librdkafka()).list_topics(topic=topic, timeout=5).topics[topic].error is None,
            20, f"{node.name} to let app describe {topic} (ACLs replicated)", 0.2,
        )

    consumer = ContinuousConsumer(cluster.bootstrap, topic, partitions=1, **app.librdkafka()).start()
    with SteadyProducer(cluster.bootstrap, topic, partitions=1, rate=200, **app.librdkafka()) as load:
        load.wait_for_acks(300, 30, "before the kill")
        leader = cluster.partition_leader(topic, 0)
        cluster.kill(leader)
        successor = cluster.wait_for_leader(topic, 0, timeout_s=30, exclude=(leader,))
        mark = load.acked_count()
        load.wait_for_acks(mark + 300, 30, f"after node {leader} was killed (new leader {successor})")
        cluster.start(leader)
        cluster.wait_for_isr(topic, 0, 3, timeout_s=60)
        mark = load.acked_count()
        load.wait_for_acks(mark + 100, 30, f"after node {leader} rejoined")
    high_watermark = cluster.high_watermark(topic, 0)
    consumer.wait_until_caught_up({0: high_watermark}, 30)
    consumer.stop()

    authorization_errors = [e for e in load.errors if "AUTHORIZATION" in str(e.error)] + [
        e for e in consumer.errors if "AUTHORIZATION" in e
    ]
    assert authorization_errors == [], f"a node refused app: {authorization_errors[:3]}"
    acknowledged = load.acknowledged
    by_offset = {offset: value for _, offset, _, value in consumer.seen()}
    missing = [d for d in acknowledged if by_offset.get(d.offset) != d.value]
    assert not missing, f"{len(missing)} acknowledged records not consumed at their offsets, first {missing[:3]}"

    final = cluster.wait_for_isr(topic, 0, 3, timeout_s=30)
    problems = cluster.stop_all()
    assert problems == [], "\n".join(problems)
    check_replicas(
        topic, cluster.data_dirs(), acknowledged, consumer.seen(), partitions=[0],
        high_watermarks={0: high_watermark}, leaders={0: final.leader}, isr={0: list(final.isr)},
    )
