"""Every version the broker advertises in ApiVersions answers a real request correctly.

Requests are encoded, and responses decoded, by kafka-python's protocol classes, which are
generated from Kafka's own JSON message specs: an implementation independent of the broker's.
For each advertised (api key, version) the test sends a valid request on a raw connection and
checks that the response arrives with the right correlation id, decodes with no bytes left
over, and carries the result Kafka would give (error codes 0, offsets where they should be).
Clients only ever use one version of each API, so this is where the other versions get tested:
an old client (kcat, librdkafka 2.0.2) picks older versions than confluent-kafka does.
"""

from __future__ import annotations

import struct
import time
import uuid

import pytest
from kafka.protocol.admin import (
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeClusterRequest,
    DescribeClusterResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
    ElectLeadersRequest,
    ElectLeadersResponse,
)
from kafka.protocol.consumer import FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

import raw_kafka as rk
from kafka_helpers import create_topic
from segment_file import build_batch, scan

CLASSES = {
    0: (ProduceRequest, ProduceResponse),
    1: (FetchRequest, FetchResponse),
    2: (ListOffsetsRequest, ListOffsetsResponse),
    3: (MetadataRequest, MetadataResponse),
    18: (ApiVersionsRequest, ApiVersionsResponse),
    19: (CreateTopicsRequest, CreateTopicsResponse),
    20: (DeleteTopicsRequest, DeleteTopicsResponse),
    21: (DeleteRecordsRequest, DeleteRecordsResponse),
    32: (DescribeConfigsRequest, DescribeConfigsResponse),
    35: (DescribeLogDirsRequest, DescribeLogDirsResponse),
    60: (DescribeClusterRequest, DescribeClusterResponse),
    43: (ElectLeadersRequest, ElectLeadersResponse),
}
NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions", 19: "CreateTopics",
         20: "DeleteTopics", 21: "DeleteRecords", 32: "DescribeConfigs", 35: "DescribeLogDirs",
         60: "DescribeCluster", 43: "ElectLeaders"}
TOPIC_RESOURCE = 2


class Session:
    """A raw connection plus what the requests so far have established."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.topic_id = None
        self.log_end_offset = 0
        self.correlation_id = 0
        # The versions to create and delete topics with when another API is under test.
        self.create_version = 0
        self.delete_version = 0
        self.produce_version = 3
        self.sock = rk.connect(bootstrap, timeout_s=10)

    def reconnect(self):
        self.sock.close()
        self.sock = rk.connect(self.bootstrap, timeout_s=10)

    def call(self, api_key: int, version: int, request):
        request_class, response_class = CLASSES[api_key]
        self.correlation_id += 1
        request.with_header(correlation_id=self.correlation_id, client_id="strom-e2e")
        self.sock.sendall(bytes(request.encode(version=version, header=True, framed=True)))
        payload = rk.read_response(self.sock, timeout_s=10)
        if payload is None:
            raise AssertionError("the broker closed the connection instead of answering")
        (correlation_id,) = struct.unpack_from(">i", payload, 0)
        assert correlation_id == self.correlation_id, f"correlation id {correlation_id}, sent {self.correlation_id}"
        position = 4
        # Flexible versions have response header v1 (tagged fields), except ApiVersions, whose
        # response header is always v0 so that any client can read it.
        if api_key != 18 and response_class.flexible_version_q(version):
            count, position = rk.read_uvarint(payload, position)
            for _ in range(count):
                _, position = rk.read_uvarint(payload, position)
                size, position = rk.read_uvarint(payload, position)
                position += size
        body = memoryview(payload)[position:]
        flexible = response_class.flexible_version_q(version)
        decode = response_class._struct.compiled_decode_from(
            version, compact=flexible, tagged=flexible, data_class=response_class[None]
        )
        response, end = decode(body, 0)
        assert end == len(body), f"{len(body) - end} bytes left over after decoding the v{version} response"
        return response


def uuid_bytes(value) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return uuid.UUID(str(value)).bytes


# -- one request and check per API ------------------------------------------------------


def check_api_versions(s: Session, version: int):
    response = s.call(18, version, ApiVersionsRequest(client_software_name="strom-e2e", client_software_version="1"))
    assert response.error_code == 0
    keys = {k.api_key for k in response.api_keys}
    assert {0, 1, 2, 3, 18} <= keys


def check_metadata(s: Session, version: int):
    topic = MetadataRequest.MetadataRequestTopic(name=s.topic)
    response = s.call(3, version, MetadataRequest(topics=[topic], allow_auto_topic_creation=False))
    assert len(response.brokers) == 1
    (t,) = response.topics
    assert (t.name, t.error_code) == (s.topic, 0)
    assert [p.partition_index for p in t.partitions] == [0]
    assert t.partitions[0].leader_id == response.brokers[0].node_id
    if version >= 10:
        assert uuid_bytes(t.topic_id) != bytes(16), "Metadata v10+ must carry the topic id"
        s.topic_id = t.topic_id


def check_produce(s: Session, version: int):
    if version >= 13 and s.topic_id is None:
        pytest.fail("Produce v13 needs a topic id, and Metadata gave none")
    batch = build_batch([(b"k", b"produce-v%d" % version)], int(time.time() * 1000))
    data = ProduceRequest.TopicProduceData(
        name=s.topic,
        topic_id=s.topic_id,
        partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=batch)],
    )
    response = s.call(0, version, ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data]))
    (topic,) = response.responses
    (partition,) = topic.partition_responses
    assert partition.error_code == 0, f"error {partition.error_code}"
    assert partition.base_offset == s.log_end_offset
    s.log_end_offset += 1


def check_fetch(s: Session, version: int):
    if version >= 13 and s.topic_id is None:
        pytest.fail("Fetch v13 needs a topic id, and Metadata gave none")
    partition = FetchRequest.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
    topic = FetchRequest.FetchTopic(topic=s.topic, topic_id=s.topic_id, partitions=[partition])
    request = FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                           session_id=0, session_epoch=-1, topics=[topic], forgotten_topics_data=[], rack_id="")
    response = s.call(1, version, request)
    assert response.error_code == 0
    (t,) = response.responses
    (p,) = t.partitions
    assert p.error_code == 0, f"error {p.error_code}"
    assert p.high_watermark == s.log_end_offset
    records = p.records
    raw = bytes(records) if isinstance(records, (bytes, bytearray, memoryview)) else bytes(records.buffer())
    batches = scan(raw).batches
    assert sum(b.record_count for b in batches) == s.log_end_offset, "fetch from 0 returns every record"


def check_list_offsets(s: Session, version: int):
    def ask(timestamp):
        partition = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, timestamp=timestamp, max_num_offsets=1
        )
        topic = ListOffsetsRequest.ListOffsetsTopic(name=s.topic, partitions=[partition])
        response = s.call(2, version, ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[topic], timeout_ms=10000))
        (t,) = response.topics
        (p,) = t.partitions
        assert p.error_code == 0, f"error {p.error_code}"
        return p.old_style_offsets[0] if version == 0 else p.offset

    assert ask(-1) == s.log_end_offset, "latest"
    assert ask(-2) == 0, "earliest"


def check_create_and_delete_topics(s: Session, version: int, api_key: int):
    name = f"{s.topic}-c{api_key}-v{version}"
    topic = CreateTopicsRequest.CreatableTopic(name=name, num_partitions=2, replication_factor=1, assignments=[],
                                              configs=[])
    response = s.call(19, version if api_key == 19 else s.create_version,
                      CreateTopicsRequest(topics=[topic], timeout_ms=10000, validate_only=False))
    (t,) = response.topics
    assert (t.name, t.error_code) == (name, 0), f"create: error {t.error_code} {t.error_message}"
    delete_version = version if api_key == 20 else s.delete_version
    request = DeleteTopicsRequest(topics=[DeleteTopicsRequest.DeleteTopicState(name=name)], topic_names=[name],
                                  timeout_ms=10000)
    response = s.call(20, delete_version, request)
    (d,) = response.responses
    assert d.error_code == 0, f"delete: error {d.error_code}"


def check_describe_configs(s: Session, version: int):
    resource = DescribeConfigsRequest.DescribeConfigsResource(
        resource_type=TOPIC_RESOURCE, resource_name=s.topic, configuration_keys=None
    )
    response = s.call(32, version, DescribeConfigsRequest(resources=[resource], include_synonyms=True,
                                                          include_documentation=True))
    (r,) = response.results
    assert r.error_code == 0, f"error {r.error_code} {r.error_message}"
    configs = {c.name: c for c in r.configs}
    assert {"retention.ms", "segment.bytes", "cleanup.policy"} <= set(configs)
    retention = configs["retention.ms"]
    assert retention.config_source == 5  # DEFAULT_CONFIG: the topic was created without it
    # The broker keys that supply the default, each with its value and source.
    assert [(y.name, y.value, y.source) for y in retention.synonyms] == [
        ("log.retention.ms", "604800000", 5),
        ("log.retention.hours", "168", 5),
    ]
    if version >= 3:
        assert retention.config_type == 5  # LONG
        assert configs["cleanup.policy"].config_type == 7  # LIST
        assert retention.documentation, "documentation was asked for"


def check_delete_records(s: Session, version: int):
    """A record produced, then DeleteRecords up to the log end: the low watermark moves there."""
    check_produce(s, s.produce_version)
    partition = DeleteRecordsRequest.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=s.log_end_offset)
    topic = DeleteRecordsRequest.DeleteRecordsTopic(name=s.topic, partitions=[partition])
    response = s.call(21, version, DeleteRecordsRequest(topics=[topic], timeout_ms=10000))
    (t,) = response.topics
    (p,) = t.partitions
    assert (t.name, p.partition_index, p.error_code) == (s.topic, 0, 0), f"error {p.error_code}"
    assert p.low_watermark == s.log_end_offset


def check_describe_log_dirs(s: Session, version: int):
    wanted = DescribeLogDirsRequest.DescribableLogDirTopic(topic=s.topic, partitions=[0])
    response = s.call(35, version, DescribeLogDirsRequest(topics=[wanted]))
    if version >= 3:
        assert response.error_code == 0
    (result,) = response.results
    assert result.error_code == 0 and result.log_dir
    (t,) = result.topics
    (p,) = t.partitions
    assert (t.name, p.partition_index, p.offset_lag, p.is_future_key) == (s.topic, 0, 0, False)
    assert p.partition_size >= 0
    if version >= 4:
        assert result.total_bytes >= result.usable_bytes > 0


def check_describe_cluster(s: Session, version: int):
    response = s.call(60, version, DescribeClusterRequest(include_cluster_authorized_operations=False))
    assert response.error_code == 0
    assert len(response.brokers) == 1 and response.cluster_id


def check_elect_leaders(s: Session, version: int):
    """A preferred election (the only type v0 has) of the topic's partition, which its only
    replica leads already, and of a partition it does not have."""
    wanted = ElectLeadersRequest.TopicPartitions(topic=s.topic, partitions=[0, 5])
    request = ElectLeadersRequest(election_type=0, topic_partitions=[wanted], timeout_ms=10000)
    response = s.call(43, version, request)
    if version >= 1:
        assert response.error_code == 0
    (result,) = response.replica_election_results
    codes = {p.partition_id: p.error_code for p in result.partition_result}
    assert result.topic == s.topic and codes == {0: 84, 5: 3}, (result.topic, codes)


CHECKS = {
    18: check_api_versions,
    3: check_metadata,
    0: check_produce,
    1: check_fetch,
    2: check_list_offsets,
    19: lambda s, v: check_create_and_delete_topics(s, v, 19),
    20: lambda s, v: check_create_and_delete_topics(s, v, 20),
    21: check_delete_records,
    32: check_describe_configs,
    35: check_describe_log_dirs,
    60: check_describe_cluster,
    43: check_elect_leaders,
}
# Metadata first (it finds the topic id), Produce before Fetch and ListOffsets.
ORDER = [18, 3, 0, 1, 2, 19, 20, 21, 32, 35, 60, 43]


def advertised(bootstrap: str) -> dict:
    with rk.connect(bootstrap) as sock:
        sock.sendall(rk.api_versions_request(0, correlation_id=1))
        payload = rk.read_response(sock)
    assert payload is not None
    return rk.parse_api_versions_response(payload, 0)["api_keys"]


@pytest.mark.parametrize("api_key", ORDER, ids=[NAMES[k] for k in ORDER])
def test_every_advertised_version(broker, api_key):
    versions = advertised(broker.bootstrap)
    if api_key not in versions:
        pytest.fail(f"{NAMES[api_key]} (api key {api_key}) is not advertised")
    low, high = versions[api_key]
    request_class, _ = CLASSES[api_key]
    known_high = request_class.max_version
    topic = f"sweep-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    s = Session(broker.bootstrap, topic)
    s.create_version = min(versions[19][1], CreateTopicsRequest.max_version)
    s.delete_version = min(versions[20][1], DeleteTopicsRequest.max_version)
    s.produce_version = min(versions[0][1], ProduceRequest.max_version)
    failures = []
    try:
        # What the check of this API needs from the others: the topic id, some records.
        if api_key in (0, 1, 2):
            check_metadata(s, min(versions[3][1], MetadataRequest.max_version))
        if api_key in (1, 2):
            check_produce(s, min(versions[0][1], ProduceRequest.max_version))
        for version in range(low, min(high, known_high) + 1):
            try:
                CHECKS[api_key](s, version)
            except Exception as error:  # noqa: BLE001 - collected, reported together below
                failures.append(f"{NAMES[api_key]} v{version}: {type(error).__name__}: {error}")
                s.reconnect()
    finally:
        s.sock.close()
    broker.assert_running()
    assert not failures, "\n".join(failures)
    if high > known_high:
        print(f"{NAMES[api_key]} v{known_high + 1}..v{high} advertised but unknown to kafka-python: not checked")


def produce_request(topic: str, partition: int, value: bytes, acks: int):
    batch = build_batch([(None, value)], int(time.time() * 1000))
    data = ProduceRequest.TopicProduceData(
        name=topic, partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=batch)]
    )
    return ProduceRequest(transactional_id=None, acks=acks, timeout_ms=10000, topic_data=[data])


def test_produce_acks_0_gets_no_response(broker):
    """Kafka sends nothing back for acks=0: the next response on the connection is the next
    request's. (A stray response would be taken by the client as the answer to another request.)"""
    topic = f"acks0-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    s = Session(broker.bootstrap, topic)
    try:
        for i in range(3):
            request = produce_request(topic, 0, b"fire-and-forget-%d" % i, acks=0)
            s.correlation_id += 1
            request.with_header(correlation_id=s.correlation_id, client_id="strom-e2e")
            s.sock.sendall(bytes(request.encode(version=9, header=True, framed=True)))
        check_api_versions(s, 3)  # fails if the first response to arrive is not this one's
        check_list_offsets_end(s, 3)
    finally:
        s.sock.close()


def check_list_offsets_end(s: Session, expected: int):
    partition = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, timestamp=-1)
    topic = ListOffsetsRequest.ListOffsetsTopic(name=s.topic, partitions=[partition])
    response = s.call(2, 1, ListOffsetsRequest(replica_id=-1, topics=[topic]))
    assert response.topics[0].partitions[0].offset == expected


@pytest.mark.parametrize("acks", [1, -1])
def test_produce_to_unknown_partition(broker, acks):
    topic = f"one-partition-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    s = Session(broker.bootstrap, topic)
    try:
        response = s.call(0, 9, produce_request(topic, 7, b"nowhere", acks=acks))
        (partition,) = response.responses[0].partition_responses
        assert partition.error_code == 3, f"error {partition.error_code}, expected UNKNOWN_TOPIC_OR_PARTITION (3)"
        # (A Produce to a missing topic is not checked: Strom auto-creates topics on Produce
        # as well as on Metadata, by design, where Kafka creates them on Metadata only.)
    finally:
        s.sock.close()
