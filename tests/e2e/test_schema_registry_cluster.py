"""The schema registry on a 3-node cluster: every node serves the same registry.

* A schema registered on node 1 is readable on node 3 at once (the next request, no sleep),
  by id and by subject/version, and the same text registered on another node under another
  subject gets the same id; a config, a mode and a delete made on one node hold on another at
  once.
* 30 distinct schemas registered at once from all three nodes (threads released together) get
  30 distinct ids, and every node answers every id with the schema registered under it; 30
  schemas sent at once into one subject get versions 1..30 exactly once each; one text sent at
  once under 30 subjects from all nodes gets one id. Every registration is answered 200.
* kill -9 of the node leading `_schemas` partition 0 (found through Metadata), or of a follower:
  the survivors keep answering reads at once and accept registrations again within the failover
  window (their ids distinct from every earlier one); the killed node, restarted on its data,
  answers every id, the ones registered while it was down included, and registers again.
"""

from __future__ import annotations

import json
import threading

import pytest

from cluster import FAST_FAILOVER_SETTINGS, Cluster, cluster_factory, require_cluster_info  # noqa: F401 - the fixture
from kafka_helpers import unique, wait_until
from registry_helpers import Registry, avro_record, compact, wait_for_registry

SCHEMAS_TOPIC = "_schemas"
FAILOVER_S = 30.0


def registry_cluster(cluster_factory) -> Cluster:  # noqa: F811
    require_cluster_info()
    cluster: Cluster = cluster_factory(3, settings=FAST_FAILOVER_SETTINGS)
    cluster.wait_for_controller_leader(timeout_s=20)
    cluster.wait_for_brokers(3, timeout_s=20)
    for node in cluster.nodes.values():
        wait_for_registry(node.registry_url)
    return cluster


def registries(cluster: Cluster) -> dict[int, Registry]:
    return {node_id: Registry(node.registry_url) for node_id, node in cluster.nodes.items()}


def schema_n(n: int) -> dict:
    return avro_record(f"Rec{n}", [{"name": f"field{n}", "type": "long"}], namespace="cluster")


def assert_serves(registry: Registry, expected: dict[int, dict], where: str) -> None:
    """`registry` answers every id of {id: schema} with that schema."""
    for schema_id, schema in expected.items():
        reply = registry.get(f"/schemas/ids/{schema_id}")
        assert reply.status == 200, f"{where}: id {schema_id}: {reply.describe()}"
        assert json.loads(reply.body["schema"]) == schema, f"{where}: id {schema_id} answers {reply.body}"


def run_at_once(calls: list) -> list:
    """Runs the callables in threads released together; returns their results in order (an
    exception in one is raised here)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def run(i, call):
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append((i, error))

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a registration call hung for 120 s"
    if errors:
        i, error = errors[0]
        raise AssertionError(f"{len(errors)} of {len(calls)} concurrent calls failed; call {i}: {error}") from error
    return results


def test_a_schema_registered_on_node_1_is_readable_on_node_3_at_once(cluster_factory):  # noqa: F811
    cluster = registry_cluster(cluster_factory)
    nodes = registries(cluster)
    for round_ in range(5):
        subject = unique(f"visible-{round_}")
        schema = schema_n(round_)
        schema_id = nodes[1].register(subject, schema)
        # No sleep: the very next request, to another node.
        by_id = nodes[3].get(f"/schemas/ids/{schema_id}")
        assert by_id.status == 200, f"node 3 does not know id {schema_id} yet: {by_id.describe()}"
        assert json.loads(by_id.body["schema"]) == schema
        version = nodes[3].get(f"/subjects/{subject}/versions/1")
        assert version.status == 200 and version.body["id"] == schema_id, version.describe()
        assert subject in nodes[2].ok("GET", "/subjects")
        # The same text under another subject, on node 2: the same id.
        assert nodes[2].register(unique("visible-copy"), schema) == schema_id
        # And back the other way: registered on node 3, looked up on node 1 at once.
        other = unique("visible-back")
        back_id = nodes[3].register(other, schema_n(100 + round_))
        lookup = nodes[1].post(f"/subjects/{other}", {"schema": compact(schema_n(100 + round_))})
        assert lookup.status == 200 and lookup.body["id"] == back_id, lookup.describe()
        # Configs, modes and deletes too: set on one node, seen on another by the next request.
        nodes[2].ok("PUT", f"/config/{subject}", {"compatibility": "FULL_TRANSITIVE"})
        assert nodes[1].ok("GET", f"/config/{subject}") == {"compatibilityLevel": "FULL_TRANSITIVE"}
        nodes[3].ok("PUT", f"/mode/{other}", {"mode": "READONLY"})
        refused = nodes[1].post(f"/subjects/{other}/versions", {"schema": compact(schema_n(900))})
        assert (refused.status, refused.error_code) == (422, 42205), refused.describe()
        assert nodes[1].ok("DELETE", f"/subjects/{subject}") == [1]
        gone = nodes[3].get(f"/subjects/{subject}/versions")
        assert (gone.status, gone.error_code) == (404, 40401), gone.describe()


COUNT = 30


def test_thirty_concurrent_registrations_from_three_nodes_get_distinct_ids_everywhere(cluster_factory):  # noqa: F811
    cluster = registry_cluster(cluster_factory)
    nodes = registries(cluster)
    prefix = unique("concurrent")
    calls = [(lambda n=n: nodes[1 + n % 3].register(f"{prefix}-{n}", schema_n(n))) for n in range(COUNT)]
    ids = run_at_once(calls)
    assert len(set(ids)) == COUNT, f"ids collide: {sorted(ids)}"
    expected = {schema_id: schema_n(n) for n, schema_id in enumerate(ids)}
    for node_id, registry in nodes.items():
        assert_serves(registry, expected, f"node {node_id}")
        listed = registry.ok("GET", "/subjects", params={"subjectPrefix": prefix})
        assert sorted(listed) == sorted(f"{prefix}-{n}" for n in range(COUNT)), f"node {node_id}: {listed}"


def test_thirty_concurrent_registrations_into_one_subject_get_versions_one_to_thirty(cluster_factory):  # noqa: F811
    """(NONE for the subject: the 30 unrelated records are all accepted.)"""
    cluster = registry_cluster(cluster_factory)
    nodes = registries(cluster)
    subject = unique("one-subject")
    nodes[1].ok("PUT", f"/config/{subject}", {"compatibility": "NONE"})
    calls = [(lambda n=n: nodes[1 + n % 3].register(subject, schema_n(1000 + n))) for n in range(COUNT)]
    ids = run_at_once(calls)
    assert len(set(ids)) == COUNT, f"ids collide: {sorted(ids)}"
    for node_id, registry in nodes.items():
        assert registry.ok("GET", f"/subjects/{subject}/versions") == list(range(1, COUNT + 1)), f"node {node_id}"
        by_version = {v: registry.ok("GET", f"/subjects/{subject}/versions/{v}")["id"] for v in range(1, COUNT + 1)}
        assert sorted(by_version.values()) == sorted(ids), f"node {node_id}: {by_version}"


def test_one_text_registered_at_once_under_thirty_subjects_gets_one_id(cluster_factory):  # noqa: F811
    cluster = registry_cluster(cluster_factory)
    nodes = registries(cluster)
    prefix = unique("shared")
    earlier = nodes[2].register(unique("earlier"), schema_n(1))
    shared = schema_n(5000)
    calls = [(lambda n=n: nodes[1 + n % 3].register(f"{prefix}-{n}", shared)) for n in range(COUNT)]
    shared_ids = run_at_once(calls)
    assert len(set(shared_ids)) == 1, f"one text got several ids: {sorted(set(shared_ids))}"
    assert shared_ids[0] != earlier
    for node_id, registry in nodes.items():
        subjects_of = registry.ok("GET", f"/schemas/ids/{shared_ids[0]}/subjects")
        assert sorted(subjects_of) == sorted(f"{prefix}-{n}" for n in range(COUNT)), f"node {node_id}"
        assert_serves(registry, {shared_ids[0]: shared}, f"node {node_id}")


def register_until_accepted(registry: Registry, subject: str, schema: dict, timeout_s: float = FAILOVER_S) -> int:
    """Registers, retrying answers of 5xx (e.g. 50001 store error while `_schemas` has no
    leader) until the deadline; any 4xx fails at once."""
    last = []

    def attempt():
        reply = registry.post(f"/subjects/{subject}/versions", {"schema": compact(schema)})
        last[:] = [reply]
        if reply.status == 200:
            return reply.body["id"]
        assert reply.status >= 500, f"registration refused during failover: {reply.describe()}"
        return None

    try:
        return wait_until(attempt, timeout_s, f"registration of {subject} accepted", interval_s=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}; last answer: {last[0].describe() if last else None}") from None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("victim", ["schemas_leader", "schemas_follower"])
def test_the_registry_keeps_serving_through_a_kill_9_and_the_node_catches_up(cluster_factory, victim):  # noqa: F811
    cluster = registry_cluster(cluster_factory)
    nodes = registries(cluster)
    before = {nodes[1 + n % 3].register(unique(f"before-{n}"), schema_n(n)): schema_n(n) for n in range(6)}
    state = cluster.wait_for_isr(SCHEMAS_TOPIC, 0, 3, timeout_s=30)
    assert sorted(state.replicas) == [1, 2, 3], f"_schemas is not replicated to every node: {state}"
    leader = state.leader
    dead = leader if victim == "schemas_leader" else next(n for n in (1, 2, 3) if n != leader)

    cluster.kill(dead)
    survivors = [n for n in (1, 2, 3) if n != dead]
    # Reads go on at once on the survivors.
    for node_id in survivors:
        assert_serves(nodes[node_id], before, f"node {node_id} right after kill -9 of node {dead}")
        assert nodes[node_id].get("/subjects").status == 200
    # Registrations are accepted again within the failover window, on every survivor.
    during = {}
    for i, node_id in enumerate(survivors):
        schema = schema_n(200 + i)
        during[register_until_accepted(nodes[node_id], unique(f"during-{i}"), schema)] = schema
    assert not set(during) & set(before), f"ids reused: {set(during) & set(before)}"
    assert len(during) == len(survivors)
    for node_id in survivors:
        assert_serves(nodes[node_id], {**before, **during}, f"node {node_id} with node {dead} down")
    if victim == "schemas_leader":
        assert cluster.wait_for_leader(SCHEMAS_TOPIC, 0, exclude=(dead,), agree=False) != dead

    cluster.start(dead)
    wait_for_registry(cluster.node(dead).registry_url)
    everything = {**before, **during}

    def caught_up():
        assert_serves(nodes[dead], everything, f"restarted node {dead}")
        return True

    wait_until(caught_up, FAILOVER_S, f"restarted node {dead} answers every id")
    after_id = register_until_accepted(nodes[dead], unique("after"), schema_n(300))
    assert after_id not in everything
    for node_id in survivors:
        assert_serves(nodes[node_id], {after_id: schema_n(300)}, f"node {node_id} after node {dead} returned")
