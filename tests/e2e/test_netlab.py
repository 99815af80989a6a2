"""The network lab (netlab.py) on its own, without strom: reachability, cut, heal, teardown.

Each of three namespaces runs a tiny TCP echo server on its lab address; the root namespace (this
process) runs one too, on its lab address. Probes connect, send a token and expect it echoed
back within PROBE_TIMEOUT_S: from the root namespace directly, from a node through a short
Python script run in the node's namespace. A cut node must be unreachable from the root
namespace and from the other nodes, and must not reach them either, while the nodes that are not
cut still reach each other; after heal everything works again, including a TCP connection that
was open across the cut (a partition drops frames silently, it does not reset connections).
Teardown must leave no namespace, link or address of the lab behind.

These tests need root; they skip with the reason when namespaces are unavailable (or fail with
STROM_REQUIRE_NETLAB=1).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from netlab import (
    NetLab,
    NetLabError,
    list_namespaces,
    list_root_links,
    netlab_factory,  # noqa: F401 - the fixture
    require_netlab,
    run_ip,
    sweep_stale_labs,
)

ECHO_PORT = 7000
PROBE_TIMEOUT_S = 1.0

# Started in a node's namespace: echoes every connection; prints its pid once listening.
ECHO_SERVER = r"""
import os, socket, sys, threading
server = socket.create_server((sys.argv[1], int(sys.argv[2])), reuse_port=False)
def serve(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
print(os.getpid(), flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# Run in a node's namespace: probes every HOST:PORT argument at once, prints a JSON list of
# true (echo came back) / false.
PROBE = r"""
import json, socket, sys, concurrent.futures
def probe(target, timeout=float(sys.argv[1])):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"ping")
            return s.recv(16) == b"ping"
    except OSError:
        return False
with concurrent.futures.ThreadPoolExecutor(len(sys.argv) - 2) as pool:
    print(json.dumps(list(pool.map(probe, sys.argv[2:]))))
"""


def echo_ok(host: str, port: int = ECHO_PORT, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b"ping")
            return s.recv(16) == b"ping"
    except OSError:
        return False


def start_echo_server(lab: NetLab, node: int) -> subprocess.Popen:
    process = lab.run_in(
        node, [sys.executable, "-c", ECHO_SERVER, lab.address(node), ECHO_PORT], stdout=subprocess.PIPE, text=True
    )
    # The server prints its pid once it listens; a deadline guards the read.
    timer = threading.Timer(10.0, process.kill)
    timer.start()
    try:
        line = process.stdout.readline().strip()
    finally:
        timer.cancel()
    assert line, f"echo server in node {node} did not start (exit code {process.poll()})"
    assert int(line) == process.pid, (
        f"node {node}: program pid {line} != Popen pid {process.pid} (`ip netns exec` must exec, not fork)"
    )
    return process


class RootEchoServer:
    """An echo server in this process, on the root namespace's lab address."""

    def __init__(self, host: str):
        self.server = socket.create_server((host, ECHO_PORT))
        self.server.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        with conn:
            conn.settimeout(5)
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.server.close()


def probe_from(lab: NetLab, node: int, hosts: list[str]) -> dict[str, bool]:
    """{host: echo came back} for each host, probed from inside the node's namespace."""
    targets = [f"{h}:{ECHO_PORT}" for h in hosts]
    result = lab.exec_in(node, [sys.executable, "-c", PROBE, PROBE_TIMEOUT_S, *targets], timeout_s=15)
    assert result.returncode == 0, f"probe in node {node} failed: {result.stderr}"
    return dict(zip(hosts, json.loads(result.stdout)))


def reachability(lab: NetLab) -> dict[tuple[str, str], bool]:
    """{(from, to): reachable} over the root namespace and every node, probed in parallel."""
    names = {lab.root_address: "root", **{lab.address(n): f"node{n}" for n in lab.nodes}}
    everyone = list(names)
    with concurrent.futures.ThreadPoolExecutor(len(everyone) * 2) as pool:
        root_probes = {host: pool.submit(echo_ok, host) for host in everyone if host != lab.root_address}
        node_probes = {
            n: pool.submit(probe_from, lab, n, [h for h in everyone if h != lab.address(n)]) for n in lab.nodes
        }
        matrix = {("root", names[h]): f.result() for h, f in root_probes.items()}
        for n, future in node_probes.items():
            matrix.update({(f"node{n}", names[h]): ok for h, ok in future.result().items()})
    return matrix


def assert_reachability(matrix: dict[tuple[str, str], bool], expected) -> None:
    wrong = {pair: ok for pair, ok in matrix.items() if ok != expected(*pair)}
    assert not wrong, "unexpected reachability (from, to) -> reached: " + ", ".join(
        f"{a}->{b}: {ok}" for (a, b), ok in sorted(wrong.items())
    )


@pytest.fixture
def lab_with_echo(netlab_factory):  # noqa: F811 - the fixture
    lab = netlab_factory(3)
    for node in lab.nodes:
        start_echo_server(lab, node)
    root = RootEchoServer(lab.root_address)
    yield lab
    root.close()


def test_every_node_reaches_every_other_and_the_root(lab_with_echo):
    lab = lab_with_echo
    assert len({lab.address(n) for n in lab.nodes}) == 3
    assert_reachability(reachability(lab), lambda a, b: True)


def test_cut_isolates_a_node_both_ways_and_heal_restores(lab_with_echo):
    lab = lab_with_echo
    b = 2
    held = socket.create_connection((lab.address(b), ECHO_PORT), timeout=PROBE_TIMEOUT_S)
    held.settimeout(PROBE_TIMEOUT_S)
    held.sendall(b"before")
    assert held.recv(16) == b"before"

    started = time.monotonic()
    lab.cut(b)
    assert lab.is_cut(b) and lab.cut_nodes() == [b]
    assert_reachability(reachability(lab), lambda src, dst: f"node{b}" not in (src, dst))
    # An open connection stalls: no reset, no error, just silence.
    held.sendall(b"during")
    with pytest.raises(socket.timeout):
        held.recv(16)
    cut_seconds = time.monotonic() - started
    assert cut_seconds < 10, f"probing the cut took {cut_seconds:.1f} s: probes are not bounded"

    lab.heal(b)
    assert not lab.is_cut(b)
    assert_reachability(reachability(lab), lambda src, dst: True)
    # The held connection survived the partition; TCP retransmits what was sent during it.
    held.settimeout(10)
    received = b""
    while len(received) < len(b"during"):
        chunk = held.recv(16)
        assert chunk, "held connection closed by the peer after heal"
        received += chunk
    assert received == b"during", f"held connection returned {received!r} after heal"
    held.close()


def test_cut_is_idempotent_and_each_node_heals_separately(lab_with_echo):
    lab = lab_with_echo
    lab.cut(1)
    lab.cut(1)
    lab.cut(3)
    assert lab.cut_nodes() == [1, 3]
    assert not echo_ok(lab.address(1)) and not echo_ok(lab.address(3)) and echo_ok(lab.address(2))
    lab.heal(3)
    assert lab.cut_nodes() == [1]
    assert echo_ok(lab.address(3)) and not echo_ok(lab.address(1))
    lab.heal(1)
    assert echo_ok(lab.address(1))


def lab_objects(lab: NetLab) -> list[str]:
    """Everything of the lab that exists now: namespaces, root links, root addresses."""
    addresses = run_ip("-4", "-o", "addr", "show").stdout
    found = [n for n in list_namespaces() if n.startswith(lab.prefix + "-")]
    found += [link for link in list_root_links() if link == lab.root_link]
    if lab.subnet is not None and f" 10.{lab.subnet}.0." in addresses:
        found.append(f"address 10.{lab.subnet}.0.x")
    return found


def test_teardown_removes_everything_and_kills_processes():
    require_netlab()
    lab = NetLab(3).open()
    try:
        assert len(lab_objects(lab)) == 4 + 1 + 1, f"lab objects while open: {lab_objects(lab)}"
        servers = [start_echo_server(lab, n) for n in lab.nodes]
        # A process the lab did not start itself, in a namespace: teardown must kill it too.
        stray = subprocess.Popen(lab.netns_argv(1, ["sleep", "600"]))
        lab.cut(2)
    finally:
        lab.close()
    assert lab_objects(lab) == [], f"left behind after close: {lab_objects(lab)}"
    assert all(s.poll() is not None for s in servers), "an echo server survived teardown"
    stray.wait(timeout=5)
    lab.close()  # idempotent


def test_context_manager_tears_down_when_the_body_fails():
    require_netlab()
    with pytest.raises(RuntimeError, match="body failed"):
        with NetLab(2) as lab:
            lab.cut(1)
            raise RuntimeError("body failed")
    assert lab_objects(lab) == [], f"left behind after a failing body: {lab_objects(lab)}"


def make_stale_lab() -> tuple[str, str]:
    """A namespace and a root link named like those of a lab whose process is dead."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not os.path.exists(f"/proc/{dead.pid}")
    namespace, link = f"strom-lab-{dead.pid}-7-node1", f"slab{dead.pid}x7"
    run_ip("netns", "add", namespace)
    run_ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    return namespace, link


def test_stale_labs_of_dead_processes_are_swept():
    require_netlab()
    with NetLab(1) as live:
        namespace, link = make_stale_lab()
        removed = sweep_stale_labs()
        assert namespace in removed and link in removed, f"sweep removed {removed}"
        assert namespace not in list_namespaces() and link not in list_root_links()
        assert live.hub in list_namespaces() and live.root_link in list_root_links(), "sweep removed a live lab"
    # Every new lab sweeps first.
    namespace, link = make_stale_lab()
    with NetLab(1):
        assert namespace not in list_namespaces() and link not in list_root_links(), "a new lab did not sweep"


def test_unknown_node_is_refused(netlab_factory):  # noqa: F811 - the fixture
    lab = netlab_factory(2)
    with pytest.raises(NetLabError, match="no node 3"):
        lab.cut(3)
