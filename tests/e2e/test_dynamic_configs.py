"""Dynamic configs (issue 13): AlterConfigs and IncrementalAlterConfigs on topics, on one broker
and on every broker (the empty name), and on the broker's loggers (BROKER_LOGGER), with
confluent-kafka's and kafka-python's admin clients.

What is checked: each change is visible in DescribeConfigs with Kafka's source and synonyms
(topic -> dynamic broker -> dynamic default -> static -> default) and is enforced without a
restart (`max.message.bytes` lowered refuses a large record, `retention.ms` lowered deletes old
segments, a broker-wide `log.retention.ms` reaches topics without their own); `validate_only`
changes nothing; Kafka's errors for unknown keys, read-only keys, APPEND on a non-list key,
another broker's id; the legacy AlterConfigs replaces a resource's whole set; and every change
survives a restart.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType
from kafka.admin import ConfigResource as PyConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

import raw_configs
from cluster import FAST_FAILOVER_SETTINGS, cluster_factory, require_cluster_info  # noqa: F401 - fixture
from strom_broker import STROM_BIN
from kafka_helpers import (
    admin_client,
    admin_request,
    create_topic,
    describe_configs,
    produce_all,
    producer,
    unique,
    wait_until,
    watermarks,
)

SET, DELETE, APPEND, SUBTRACT = (
    AlterConfigOpType.SET,
    AlterConfigOpType.DELETE,
    AlterConfigOpType.APPEND,
    AlterConfigOpType.SUBTRACT,
)
# The operations on the wire, for raw requests.
RAW_SET, RAW_DELETE = 0, 1


def broker_id(bootstrap: str) -> str:
    (node,) = admin_client(bootstrap).list_topics(timeout=10).brokers
    return str(node)


def incremental(bootstrap: str, kind: ResourceType, name: str, ops: list[tuple[str, str | None, AlterConfigOpType]],
                validate_only: bool = False) -> None:
    """IncrementalAlterConfigs on one resource; raises KafkaException with the broker's error."""
    entries = [ConfigEntry(key, value, incremental_operation=op) for key, value, op in ops]
    resource = ConfigResource(kind, name, incremental_configs=entries)
    futures = admin_request(
        bootstrap, lambda a: a.incremental_alter_configs([resource], request_timeout=20, validate_only=validate_only)
    )
    futures[resource].result()


def legacy_alter(bootstrap: str, kind: ResourceType, name: str, configs: dict[str, str]) -> None:
    resource = ConfigResource(kind, name, set_config=configs)
    futures = admin_request(bootstrap, lambda a: a.alter_configs([resource], request_timeout=20))
    futures[resource].result()


def refusal(call) -> KafkaError:
    with pytest.raises(KafkaException) as raised:
        call()
    return raised.value.args[0]


def topic_configs(bootstrap: str, topic: str) -> dict:
    return describe_configs(bootstrap, ConfigResource(ResourceType.TOPIC, topic))


def broker_configs(bootstrap: str, name: str) -> dict:
    return describe_configs(bootstrap, ConfigResource(ResourceType.BROKER, name))


def alter_defaults(bootstrap: str, ops: list[tuple[str, str | None, int]]) -> None:
    """IncrementalAlterConfigs on the BROKER resource with the empty name (every broker), which
    neither client library can name: a raw request. ops: (config, value, operation)."""
    (result,) = raw_configs.incremental_alter(bootstrap, [(4, "", [(key, op, value) for key, value, op in ops])])
    assert result.error is None, result


def broker_defaults(bootstrap: str) -> dict[str, str]:
    return {key: value for key, (value, _) in raw_configs.describe(bootstrap, 4, "").items()}


def kafka_python_synonyms(bootstrap: str, kind: ConfigResourceType, name: str, config: str) -> list[tuple]:
    """A config's synonyms in order, (name, value, source): confluent-kafka keys them by name,
    which loses a name listed twice (dynamic and default)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs([PyConfigResource(kind, name)], include_synonyms=True, config_filter="all")
    finally:
        admin.close()
    (resources,) = described.values()
    entry = resources[name][config]
    return [(s["name"], s["value"], s["source"]) for s in entry["synonyms"]]


# -- topics --------------------------------------------------------------------------------------


def test_incremental_alter_topic_configs(broker):
    topic = unique("dyn")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000"})
    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [
        ("segment.bytes", "1048576", SET),
        ("retention.ms", None, DELETE),
        ("cleanup.policy", "compact", APPEND),
    ])
    configs = topic_configs(broker.bootstrap, topic)
    assert configs["segment.bytes"].value == "1048576"
    assert configs["segment.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"
    # DELETE went back to the broker's default.
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert not configs["retention.ms"].is_read_only

    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [("cleanup.policy", "delete", SUBTRACT)])
    assert topic_configs(broker.bootstrap, topic)["cleanup.policy"].value == "compact"

    # validate_only checks without changing anything.
    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [("segment.bytes", "2097152", SET)], validate_only=True)
    assert topic_configs(broker.bootstrap, topic)["segment.bytes"].value == "1048576"


@pytest.mark.parametrize(
    "ops,code,message",
    [
        ([("no.such.config", "1", SET)], "INVALID_CONFIG", "Unknown topic config name: no.such.config"),
        ([("compression.type", "lz4", APPEND)], "INVALID_CONFIG",
         "Can't APPEND to key compression.type because its type is not LIST."),
        ([("retention.ms", "soon", SET)], "INVALID_CONFIG", "retention.ms"),
        ([("segment.bytes", "1", SET)], "INVALID_CONFIG", "segment.bytes"),
    ],
)
def test_bad_topic_changes_are_refused_with_kafkas_errors(broker, ops, code, message):
    topic = unique("dyn-bad")
    create_topic(broker.bootstrap, topic)
    error = refusal(lambda: incremental(broker.bootstrap, ResourceType.TOPIC, topic, ops))
    assert error.name() == code, error
    assert message in error.str(), error
    # Nothing changed.
    assert topic_configs(broker.bootstrap, topic)["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_an_unknown_topic_is_refused(broker):
    error = refusal(lambda: incremental(broker.bootstrap, ResourceType.TOPIC, unique("nope"), [("retention.ms", "1", SET)]))
    assert error.name() == "UNKNOWN_TOPIC_OR_PART", error


def test_legacy_alter_configs_replaces_the_topics_set(broker):
    topic = unique("dyn-legacy")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000", "segment.bytes": "1048576"})
    legacy_alter(broker.bootstrap, ResourceType.TOPIC, topic, {"max.message.bytes": "2000"})
    configs = topic_configs(broker.bootstrap, topic)
    assert configs["max.message.bytes"].value == "2000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_max_message_bytes_lowered_refuses_a_large_record(broker):
    topic = unique("dyn-size")
    create_topic(broker.bootstrap, topic)
    big = b"x" * 20_000
    p = producer(broker.bootstrap, **{"compression.type": "none"})
    produce_all(p, topic, [{"value": big, "partition": 0}])
    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [("max.message.bytes", "5000", SET)])
    errors = []
    p.produce(topic, big, partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert errors and errors[0] is not None and errors[0].name() == "MSG_SIZE_TOO_LARGE", errors
    produce_all(p, topic, [{"value": b"small", "partition": 0}])


def test_retention_lowered_deletes_old_segments(broker):
    topic = unique("dyn-retention")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "16384"})
    # Batches smaller than a segment.
    p = producer(broker.bootstrap, **{"batch.size": 4000, "linger.ms": 0})
    produce_all(p, topic, [{"value": b"r" * 1000, "partition": 0} for _ in range(100)])
    assert watermarks(broker.bootstrap, topic, 0)[0] == 0
    # The retention check runs every 5 minutes by default: make it frequent, at runtime too.
    alter_defaults(broker.bootstrap, [("log.retention.check.interval.ms", "300", RAW_SET)])
    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [("retention.ms", "1", SET)])
    # Only the active segment stays.
    wait_until(lambda: watermarks(broker.bootstrap, topic, 0)[0] > 80, 20, "retention to delete old segments")
    segments = list(broker.partition_dir(topic, 0).glob("*.log"))
    assert len(segments) == 1, segments


# -- brokers -------------------------------------------------------------------------------------


def test_broker_wide_and_per_broker_configs(broker):
    node = broker_id(broker.bootstrap)
    topic = unique("dyn-broker")
    create_topic(broker.bootstrap, topic)
    alter_defaults(broker.bootstrap, [("log.retention.ms", "7200000", RAW_SET)])

    # Topics without their own value take the new default, described as a dynamic default.
    retention = topic_configs(broker.bootstrap, topic)["retention.ms"]
    assert retention.value == "7200000"
    assert retention.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert kafka_python_synonyms(broker.bootstrap, ConfigResourceType.TOPIC, topic, "retention.ms") == [
        ("log.retention.ms", "7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        ("log.retention.ms", "604800000", "DEFAULT_CONFIG"),
        ("log.retention.hours", "168", "DEFAULT_CONFIG"),
    ]

    # The empty name describes the cluster-wide dynamic defaults alone.
    assert broker_defaults(broker.bootstrap) == {"log.retention.ms": "7200000"}

    # One broker's value wins over the default.
    incremental(broker.bootstrap, ResourceType.BROKER, node, [("log.retention.minutes", "30", SET)])
    mine = broker_configs(broker.bootstrap, node)
    # log.retention.ms (dynamic default) outranks this broker's log.retention.minutes, as in
    # Kafka, where the layers are merged before synonyms are resolved.
    assert mine["log.retention.ms"].value == "7200000"
    incremental(broker.bootstrap, ResourceType.BROKER, node, [("log.retention.ms", "60000", SET)])
    mine = broker_configs(broker.bootstrap, node)
    assert mine["log.retention.ms"].value == "60000"
    assert mine["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert topic_configs(broker.bootstrap, topic)["retention.ms"].value == "60000"
    assert kafka_python_synonyms(broker.bootstrap, ConfigResourceType.BROKER, node, "log.retention.ms")[:3] == [
        ("log.retention.ms", "60000", "DYNAMIC_BROKER_CONFIG"),
        ("log.retention.minutes", "30", "DYNAMIC_BROKER_CONFIG"),
        ("log.retention.ms", "7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
    ]
    assert mine["num.partitions"].is_read_only
    assert not mine["log.retention.ms"].is_read_only

    incremental(broker.bootstrap, ResourceType.BROKER, node, [("log.retention.ms", None, DELETE), ("log.retention.minutes", None, DELETE)])
    alter_defaults(broker.bootstrap, [("log.retention.ms", None, RAW_DELETE)])
    assert topic_configs(broker.bootstrap, topic)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert broker_defaults(broker.bootstrap) == {}


@pytest.mark.parametrize(
    "name,ops,message",
    [
        ("self", [("num.partitions", RAW_SET, "3")], "Cannot update these configs dynamically: Set(num.partitions)"),
        ("", [("listeners", RAW_SET, "PLAINTEXT://127.0.0.1:1")], "Cannot update these configs dynamically: Set(listeners)"),
        ("self", [("no.such.key", RAW_SET, "1")], "Unknown broker config name: no.such.key"),
        ("self", [("log.segment.bytes", RAW_SET, "1")], "log.segment.bytes"),
        ("999", [("log.retention.ms", RAW_SET, "1")], "Unexpected broker id, expected"),
        ("x", [("log.retention.ms", RAW_SET, "1")], "Node id must be an integer, but it is: x"),
        ("self", [("log.retention.ms", RAW_SET, "1"), ("log.retention.ms", RAW_SET, "2")], "Error due to duplicate config keys"),
        ("self", [("log.retention.ms", RAW_SET, None)], "Null value not supported for : log.retention.ms"),
        ("self", [("log.retention.ms", 9, "1")], "Unknown operations type 9"),
    ],
)
def test_bad_broker_changes_are_refused(broker, name, ops, message):
    """Raw requests: the clients check some of these themselves, and send a broker resource to
    the broker it names."""
    name = broker_id(broker.bootstrap) if name == "self" else name
    (result,) = raw_configs.incremental_alter(broker.bootstrap, [(4, name, ops)])
    assert result.error == "INVALID_REQUEST", result
    assert message in result.message, result
    assert broker_defaults(broker.bootstrap) == {}


def test_a_resource_named_twice_is_refused_both_times(broker):
    both = raw_configs.incremental_alter(broker.bootstrap, [(4, "", [("log.retention.ms", RAW_SET, "1000")])] * 2)
    assert [(r.error, r.message) for r in both] == [("INVALID_REQUEST", "Each resource must appear at most once.")] * 2
    assert broker_defaults(broker.bootstrap) == {}


def test_kafka_python_admin_alters_and_describes(broker):
    topic = unique("dyn-kp")
    create_topic(broker.bootstrap, topic)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.alter_configs([PyConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "86400000"})])
        assert "error" not in str(result).lower() or "'error_code': 0" in str(result), result
        described = admin.describe_configs([PyConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        text = str(described)
        assert "86400000" in text, text
        # The legacy API too.
        admin.alter_configs(
            [PyConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "1048576"})], incremental=False,
            raise_on_unknown=False,
        )
    finally:
        admin.close()
    configs = topic_configs(broker.bootstrap, topic)
    assert configs["segment.bytes"].value == "1048576"


def test_dynamic_configs_survive_a_restart(broker):
    node = broker_id(broker.bootstrap)
    topic = unique("dyn-restart")
    create_topic(broker.bootstrap, topic)
    incremental(broker.bootstrap, ResourceType.TOPIC, topic, [("retention.bytes", "123456789", SET)])
    alter_defaults(broker.bootstrap, [("log.roll.ms", "3600000", RAW_SET)])
    incremental(broker.bootstrap, ResourceType.BROKER, node, [("log.cleaner.backoff.ms", "5000", SET)])
    broker.restart()
    configs = topic_configs(broker.bootstrap, topic)
    assert configs["retention.bytes"].value == "123456789"
    assert configs["segment.ms"].value == "3600000"
    assert configs["segment.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert broker_configs(broker.bootstrap, node)["log.cleaner.backoff.ms"].value == "5000"


# -- loggers -------------------------------------------------------------------------------------


def logger_levels(admin: KafkaAdminClient, node: str) -> dict[str, str]:
    described = admin.describe_configs([PyConfigResource(ConfigResourceType.BROKER_LOGGER, node)], config_filter="all")
    return {logger: entry["value"] for logger, entry in described["broker_logger"][node].items()}


def test_log_levels_change_at_runtime(broker):
    node = broker_id(broker.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        levels = logger_levels(admin, node)
        assert levels["root"] == "INFO", levels
        assert levels["openraft"] == "WARN", levels
        assert levels["strom_broker"] == "INFO", levels
        admin.alter_configs(
            [PyConfigResource(ConfigResourceType.BROKER_LOGGER, node, configs={"strom_broker::network": ("SET", "DEBUG")})],
            incremental=True, raise_on_unknown=False,
        )
        levels = logger_levels(admin, node)
        assert levels["strom_broker::network"] == "DEBUG", levels
        assert levels["strom_broker"] == "INFO", levels
        # Connections are logged at DEBUG by strom_broker::network::connection.
        opened = broker.log().count("connection opened")
        admin_client(broker.bootstrap).list_topics(timeout=10)
        wait_until(lambda: broker.log().count("connection opened") > opened, 10, "DEBUG lines in the broker's log")
        admin.alter_configs(
            [PyConfigResource(ConfigResourceType.BROKER_LOGGER, node, configs={"strom_broker::network": ("DELETE", None)})],
            incremental=True, raise_on_unknown=False,
        )
        levels = logger_levels(admin, node)
        assert "strom_broker::network" not in levels, levels
        opened = broker.log().count("connection opened")
        admin_client(broker.bootstrap).list_topics(timeout=10)
        time.sleep(0.5)
        assert broker.log().count("connection opened") == opened
    finally:
        admin.close()


def test_bad_log_level_changes_are_refused(broker):
    node = broker_id(broker.bootstrap)
    cases = [
        ([("kafka.server.ReplicaManager", 0, "DEBUG")], "INVALID_CONFIG", "Logger kafka.server.ReplicaManager does not exist!"),
        ([("root", 0, "LOUD")], "INVALID_CONFIG", "Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN"),
        ([("root", 1, None)], "INVALID_REQUEST", "Removing the log level of the root logger is not allowed"),
        ([("root", 2, "INFO")], "INVALID_REQUEST", "APPEND operation is not allowed for the BROKER_LOGGER resource"),
    ]
    for ops, code, message in cases:
        (result,) = raw_configs.incremental_alter(broker.bootstrap, [(8, node, ops)])
        assert (result.error, message in (result.message or "")) == (code, True), (ops, result)
    # The legacy AlterConfigs has no BROKER_LOGGER.
    (result,) = raw_configs.legacy_alter(broker.bootstrap, [(8, node, [("root", "DEBUG")])])
    assert (result.error, result.message) == ("INVALID_REQUEST", "Unknown resource type 8"), result


# -- the CLI -------------------------------------------------------------------------------------


def strom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([STROM_BIN, *args], capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"`strom {' '.join(result.args[1:])}`: {result.stdout}{result.stderr}"
    return result.stdout


def test_strom_topic_alter_and_config_commands(broker):
    bs = ["--bootstrap", broker.bootstrap]
    node = broker_id(broker.bootstrap)
    topic = unique("dyn-cli")
    create_topic(broker.bootstrap, topic, partitions=1)

    ok(strom("topic", "alter", topic, "--set", "retention.ms=3600000", "--set", "max.message.bytes=5000",
             "--partitions", "3", *bs))
    configs = topic_configs(broker.bootstrap, topic)
    assert (configs["retention.ms"].value, configs["max.message.bytes"].value) == ("3600000", "5000")
    wait_until(lambda: len(admin_client(broker.bootstrap).list_topics(topic, timeout=10).topics[topic].partitions) == 3,
               10, "three partitions")
    ok(strom("topic", "alter", topic, "--delete", "max.message.bytes", "--append", "cleanup.policy=compact", *bs))
    configs = topic_configs(broker.bootstrap, topic)
    assert configs["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"

    # A bad value is refused with Kafka's error, and the command fails.
    refused = strom("topic", "alter", topic, "--set", "retention.ms=soon", *bs)
    assert refused.returncode != 0 and "INVALID_CONFIG" in refused.stderr, refused.stderr

    ok(strom("config", "alter", "--broker-defaults", "--set", "log.retention.ms=7200000", *bs))
    described = ok(strom("config", "describe", "--broker-defaults", *bs))
    assert "log.retention.ms" in described and "7200000" in described and "DYNAMIC_DEFAULT_BROKER_CONFIG" in described
    ok(strom("config", "alter", "--broker", node, "--set", "log.cleaner.backoff.ms=20000", *bs))
    described = ok(strom("config", "describe", "--broker", node, "--changed", *bs))
    assert "log.cleaner.backoff.ms" in described and "DYNAMIC_BROKER_CONFIG" in described, described
    described = ok(strom("config", "describe", "--topic", topic, *bs))
    assert "retention.ms" in described and "DYNAMIC_TOPIC_CONFIG" in described
    refused = strom("config", "alter", "--broker", node, "--set", "num.partitions=4", *bs)
    assert refused.returncode != 0 and "Cannot update these configs dynamically" in refused.stderr, refused.stderr
    ok(strom("config", "alter", "--broker-loggers", node, "--set", "strom_log=DEBUG", *bs))
    assert "DEBUG" in ok(strom("config", "describe", "--broker-loggers", node, *bs))
    ok(strom("config", "alter", "--broker-defaults", "--delete", "log.retention.ms", *bs))
    assert broker_defaults(broker.bootstrap) == {}


# -- a cluster -----------------------------------------------------------------------------------


def test_dynamic_configs_reach_every_node_and_survive_restarting_them_all(cluster_factory):  # noqa: F811
    """Three nodes: a cluster-wide default, one broker's value and a topic's value are set
    through different nodes; each node describes what applies to it; after every node is
    stopped and started again, all of it is still there."""
    require_cluster_info()
    cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    topic = unique("dyn-cluster")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    alter_defaults(cluster.node(1).bootstrap, [("log.retention.ms", "7200000", RAW_SET)])
    incremental(cluster.node(2).bootstrap, ResourceType.BROKER, "2", [("log.retention.ms", "3600000", SET)])
    incremental(cluster.node(3).bootstrap, ResourceType.TOPIC, topic, [("segment.bytes", "1048576", SET)])

    def check() -> None:
        for node_id, retention in [(1, "7200000"), (2, "3600000"), (3, "7200000")]:
            bootstrap = cluster.node(node_id).bootstrap
            wait_until(
                lambda: broker_configs(bootstrap, str(node_id))["log.retention.ms"].value == retention,
                15, f"node {node_id} to apply log.retention.ms={retention}",
            )
            assert broker_defaults(bootstrap) == {"log.retention.ms": "7200000"}
            configs = raw_configs.describe(bootstrap, 2, topic)
            assert configs["segment.bytes"] == ("1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
            assert configs["retention.ms"][0] == retention, (node_id, configs["retention.ms"])

    check()
    for node_id in (1, 2, 3):
        cluster.stop(node_id)
    cluster.start_all()
    cluster.wait_for_controller_leader(timeout_s=30)
    check()
