"""`strom cluster info` and the DescribeQuorum API behind it, against a single-node cluster.

The CLI joins DescribeCluster (cluster id, brokers) and DescribeQuorum (the metadata quorum:
leader, epoch, high watermark, voters and observers with their log end offsets). The quorum
is also asked by kafka-python's admin client (`describe_metadata_quorum`, which sends
DescribeQuorum to any broker as Java's `Admin.describeMetadataQuorum` does), and on a raw
connection at every advertised version for the wrong topic and partition.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess

from kafka.admin import KafkaAdminClient
from kafka.protocol.admin.cluster import DescribeQuorumRequest, DescribeQuorumResponse

import raw_kafka as rk
from kafka_helpers import create_topic, unique
from strom_broker import STROM_BIN, free_port

CLI_TIMEOUT_S = 60
DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"
UNKNOWN_TOPIC_OR_PARTITION = 3


def strom(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STROM_BIN, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"`{' '.join(result.args[1:])}` exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def cluster_info_json(bootstrap: str) -> dict:
    return json.loads(ok(strom("cluster", "info", "--json", "--bootstrap", bootstrap)))


def test_human_output_names_node_1_as_controller_leader(broker):
    out = ok(strom("cluster", "info", "--bootstrap", broker.bootstrap))
    lines = out.splitlines()
    assert ["controller", "leader", "1"] in [line.split() for line in lines], out
    cluster_id = next(line.split()[-1] for line in lines if line.startswith("cluster id"))
    assert cluster_id and cluster_id != "cluster", out
    assert any(line.split()[:2] == ["1", "127.0.0.1"] for line in lines), f"broker row missing:\n{out}"
    assert any(line.split()[:2] == ["1", "leader"] for line in lines), f"controller row missing:\n{out}"


def test_json_shape(broker):
    info = cluster_info_json(broker.bootstrap)
    assert list(info) == ["cluster_id", "controller", "brokers"]
    assert isinstance(info["cluster_id"], str) and info["cluster_id"]
    controller = info["controller"]
    assert list(controller) == ["leader", "leader_epoch", "high_watermark", "voters", "observers"]
    assert controller["leader"] == 1
    assert isinstance(controller["leader_epoch"], int) and controller["leader_epoch"] >= 1
    assert isinstance(controller["high_watermark"], int) and controller["high_watermark"] > 0
    (voter,) = controller["voters"]
    assert list(voter) == ["id", "log_end_offset"]
    assert voter["id"] == 1
    assert voter["log_end_offset"] >= controller["high_watermark"]
    assert controller["observers"] == []
    (b,) = info["brokers"]
    assert b == {"id": 1, "host": "127.0.0.1", "port": int(broker.bootstrap.rsplit(":", 1)[1]), "rack": None}


def test_high_watermark_grows_when_metadata_changes(broker):
    before = cluster_info_json(broker.bootstrap)["controller"]
    create_topic(broker.bootstrap, unique("quorum-grows"))
    after = cluster_info_json(broker.bootstrap)["controller"]
    assert after["high_watermark"] > before["high_watermark"], (before, after)
    assert after["voters"][0]["log_end_offset"] >= after["high_watermark"]
    assert after["leader_epoch"] == before["leader_epoch"], "one node: no new election"


def test_bootstrap_from_the_environment(broker):
    env = {**os.environ, "STROM_BOOTSTRAP": broker.bootstrap}
    info = json.loads(ok(strom("cluster", "info", "--json", env=env)))
    assert info["controller"]["leader"] == 1


def test_unreachable_bootstrap_fails_clearly():
    address = f"127.0.0.1:{free_port()}"
    result = strom("cluster", "info", "--bootstrap", address)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot connect to {address}"), result.stderr
    assert "strom server" in result.stderr, result.stderr


def test_kafka_python_admin_describes_the_quorum(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="strom-e2e")
    try:
        described = admin.describe_metadata_quorum()
    finally:
        admin.close()
    (topic,) = described["topics"]
    assert topic["topic_name"] == METADATA_TOPIC
    (partition,) = topic["partitions"]
    assert partition["error"] is None
    assert partition["leader_id"] == 1
    assert [v["replica_id"] for v in partition["current_voters"]] == [1]
    assert partition["current_voters"][0]["log_end_offset"] >= partition["high_watermark"] > 0
    assert partition["observers"] == []
    # v2 (KIP-853) lists the voters; a single node has no controller listener.
    assert [node["node_id"] for node in described["nodes"]] == [1]


def describe_quorum(sock, version: int, correlation_id: int, topics: list[tuple[str, list[int]]]):
    """One DescribeQuorum exchange, encoded and decoded by kafka-python's classes; checks that
    the response decodes with nothing left over."""
    request = DescribeQuorumRequest(topics=[
        DescribeQuorumRequest.TopicData(
            topic_name=name,
            partitions=[DescribeQuorumRequest.TopicData.PartitionData(partition_index=p) for p in partitions],
        )
        for name, partitions in topics
    ])
    request.with_header(correlation_id=correlation_id, client_id="strom-e2e")
    sock.sendall(bytes(request.encode(version=version, header=True, framed=True)))
    payload = rk.read_response(sock, timeout_s=10)
    assert payload is not None, "the broker closed the connection instead of answering"
    (answered,) = struct.unpack_from(">i", payload, 0)
    assert answered == correlation_id
    # Every DescribeQuorum version is flexible: response header v1 (tagged fields after the id).
    tagged, position = rk.read_uvarint(payload, 4)
    assert tagged == 0
    body = memoryview(payload)[position:]
    decode = DescribeQuorumResponse._struct.compiled_decode_from(
        version, compact=True, tagged=True, data_class=DescribeQuorumResponse[None]
    )
    response, end = decode(body, 0)
    assert end == len(body), f"{len(body) - end} bytes left over in the v{version} response"
    return response


def test_raw_describe_quorum_for_the_wrong_topic_and_partition(broker):
    versions = advertised_versions(broker.bootstrap)
    assert DESCRIBE_QUORUM in versions, "DescribeQuorum is not advertised"
    low, high = versions[DESCRIBE_QUORUM]
    assert high <= DescribeQuorumRequest.max_version
    with rk.connect(broker.bootstrap, timeout_s=10) as sock:
        for version in range(low, high + 1):
            topics = [(METADATA_TOPIC, [0, 1]), ("not-the-metadata-topic", [0])]
            response = describe_quorum(sock, version, 100 + version, topics)
            assert response.error_code == 0
            answers = {
                (t.topic_name, p.partition_index): p for t in response.topics for p in t.partitions
            }
            assert set(answers) == {(METADATA_TOPIC, 0), (METADATA_TOPIC, 1), ("not-the-metadata-topic", 0)}
            quorum = answers[(METADATA_TOPIC, 0)]
            assert (quorum.error_code, quorum.leader_id) == (0, 1), f"v{version}"
            assert [v.replica_id for v in quorum.current_voters] == [1]
            for wrong in [(METADATA_TOPIC, 1), ("not-the-metadata-topic", 0)]:
                assert answers[wrong].error_code == UNKNOWN_TOPIC_OR_PARTITION, f"v{version} {wrong}"
                assert answers[wrong].leader_id == -1
    broker.assert_running()


def advertised_versions(bootstrap: str) -> dict:
    with rk.connect(bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        payload = rk.read_response(sock)
    assert payload is not None
    return rk.parse_api_versions_response(payload, 0)["api_keys"]
