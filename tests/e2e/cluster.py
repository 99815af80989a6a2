"""A cluster of `strom server` nodes for the replication and fault tests, and its fixture.

Every node is a combined broker and controller, started as

    strom server --node-id N --listen H:P --advertise H:P --controller-listen H:CP
                 --controller-quorum 1@H1:CP1,2@H2:CP2,3@H3:CP3 --data-dir DIR [--set k=v ...]

Two placements:

* "loopback": node i listens on 127.0.0.<i>, on a Kafka port and a controller port picked free
  on that address; no root needed. Faults: stop (SIGTERM), kill (SIGKILL), pause (SIGSTOP).
* "netlab": node i runs in network namespace i of a NetLab (netlab.py) at 10.L.0.<i>, ports 9092
  (Kafka) and 9093 (controller); needs root. Adds cut(node)/heal(node): the node is isolated
  from the other nodes and from the clients (this process) in both directions.

A `ClusterNode` is a `strom_broker.Broker` (stop, kill, logs, partition_dir, segment_files are
Broker's), with its own start: it can start without waiting for the Kafka port (start_all spawns
every node first, since a node may need a quorum before it serves), and it waits for the port
from inside the node's namespace when the node is cut off. `pause` marks the node so that stop
resumes it first (a stopped process cannot act on SIGTERM).

Cluster state comes from the cluster itself: `cluster_info()` runs `strom cluster info --json`;
`partition_state()` asks Metadata (leader, replicas, ISR) through librdkafka's AdminClient;
`high_watermark()` is ListOffsets latest. Every wait has a deadline and says what it waited for.

With `listeners={"BROKER": "SSL", "CLIENT": "SASL_SSL", "CONTROLLER": "SSL"}` (name: security
protocol) a node gets Kafka's settings instead of those flags:

    strom server --data-dir DIR --set listeners=CLIENT://H:P1,CONTROLLER://H:P2,BROKER://H:P3
                 --set node.id=N --set listener.security.protocol.map=BROKER:SSL,...
                 --set advertised.listeners=CLIENT://H:P1,BROKER://H:P3
                 --set inter.broker.listener.name=BROKER --set controller.listener.names=CONTROLLER
                 --set controller.quorum.voters=1@H1:P2,... [--set k=v ...]

(the names of the client, inter-broker and controller listeners are parameters). `bootstrap` is
then the client listener's address, `client_conf` (librdkafka properties: security.protocol,
sasl.*, ssl.*) is what the harness's own clients (Metadata, CreateTopics, ListOffsets) connect
with, and `cli_args` (e.g. `--command-config FILE`) is added to its `strom` CLI calls.

`cluster_flags=False` starts each node as a single-node broker (--node-id and --advertise only):
the harness itself (processes, namespaces, faults, logs) can be exercised before the cluster flags
exist. The `cluster_factory` fixture stops every node at the end, closes the lab, attaches every
node's log tail to a failure report (through conftest's `strom_brokers` hook), and fails the test
if a node died unexpectedly or did not stop cleanly.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from kafka_helpers import admin_client, conf_key, wait_until, watermarks
from netlab import NetLab, require_netlab
from strom_broker import START_TIMEOUT_S, STOP_TIMEOUT_S, STROM_BIN, Broker, BrokerError, port_accepts

NETLAB_KAFKA_PORT = 9092
NETLAB_CONTROLLER_PORT = 9093
CLI_TIMEOUT_S = 15.0
# Settings that make failure detection fast enough for tests (pass as settings=...): a broker
# is fenced after 3 s without a heartbeat, a follower leaves the ISR after 3 s behind.
FAST_FAILOVER_SETTINGS = {
    "broker.session.timeout.ms": 3000,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 3000,
}

_help_texts: dict[tuple[str, ...], str | None] = {}


def _help(*subcommand: str) -> str | None:
    """`strom SUBCOMMAND --help` output, None if it fails (cached)."""
    if subcommand not in _help_texts:
        try:
            result = subprocess.run(
                [STROM_BIN, *subcommand, "--help"], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
            )
            _help_texts[subcommand] = result.stdout if result.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            _help_texts[subcommand] = None
    return _help_texts[subcommand]


def cluster_flags_available() -> bool:
    """Whether `strom server` has the cluster flags."""
    return "--controller-quorum" in (_help("server") or "")


def cluster_info_available() -> bool:
    """Whether `strom cluster info --json` exists."""
    return "--json" in (_help("cluster", "info") or "")


def require_cluster_flags() -> None:
    if not cluster_flags_available():
        pytest.skip("cluster flags not implemented yet (`strom server --help` has no --controller-quorum)")


def require_cluster_info() -> None:
    require_cluster_flags()
    if not cluster_info_available():
        pytest.skip("`strom cluster info --json` not implemented yet")


def free_port_on(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ClusterError(AssertionError):
    pass


@dataclass(frozen=True)
class PartitionState:
    """One partition as Metadata shows it; leader -1 when it has none."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: str | None = None


class ClusterNode(Broker):
    """One node of a Cluster: a Broker with a node id, a controller address, maybe a namespace."""

    def __init__(self, cluster: "Cluster", node_id: int, host: str, ports: list[int], base: pathlib.Path):
        flags: list = []
        settings = {}
        if cluster.listeners is not None:
            settings = cluster.listener_settings(node_id)
        else:
            flags = ["--node-id", node_id, "--advertise", lambda b: b.bootstrap]
            if cluster.cluster_flags:
                flags += [
                    "--controller-listen",
                    lambda b: b.controller_address,
                    "--controller-quorum",
                    lambda b: b.cluster.quorum,
                ]
        super().__init__(
            name=f"node{node_id}",
            data_dir=base / "data",
            log_path=base / "strom.log",
            settings={**settings, **cluster.settings, **cluster.node_settings.get(node_id, {})},
            host=host,
            extra_args=flags + list(cluster.extra_args),
            listeners=cluster.listener_order() if cluster.listeners is not None else None,
        )
        self.cluster = cluster
        self.node_id = node_id
        self.controller_port = 0
        self.use_ports(ports)
        self.paused = False

    def use_ports(self, ports: list[int]) -> None:
        """Kafka port and controller port; with listeners, one port per listener in the
        cluster's listener_order() (the client listener's first, the controller's second)."""
        if self.listener_ports is None:
            self.port, self.controller_port = ports
            return
        names = list(self.listener_ports)
        assert len(ports) == len(names), f"{len(ports)} ports for the listeners {names}"
        self.listener_ports = dict(zip(names, ports))
        self.port = self.listener_ports[self.cluster.client_listener]
        self.controller_port = self.listener_ports[self.cluster.controller_listener]

    def pick_ports(self) -> None:
        """Ports are the cluster's to pick (see Cluster._pick_ports)."""
        raise AssertionError("a cluster node's ports are picked by its Cluster")

    def pick_admin_port(self) -> int:
        # A node in a network namespace has the namespace's ports to itself.
        if self.cluster.lab is not None:
            return 9644
        return free_port_on(self.host)

    def pick_registry_port(self) -> int:
        if self.cluster.lab is not None:
            return 8081
        return free_port_on(self.host)

    @property
    def controller_address(self) -> str:
        return f"{self.host}:{self.controller_port}"

    @property
    def lab(self) -> NetLab | None:
        return self.cluster.lab

    @property
    def cut_off(self) -> bool:
        return self.lab is not None and self.lab.is_cut(self.node_id)

    def command(self) -> list[str]:
        args = super().command()
        return self.lab.netns_argv(self.node_id, args) if self.lab is not None else args

    # -- lifecycle (start is this class's own; stop/kill are Broker's) --------------------

    def start(self, timeout_s: float = START_TIMEOUT_S, wait: bool = True) -> "ClusterNode":
        self.spawn()
        if wait:
            self.wait_ready(timeout_s)
        return self

    def spawn(self) -> None:
        """Starts the process without waiting for it to serve."""
        assert not self.running, f"{self.name} already running"
        if not os.access(STROM_BIN, os.X_OK):
            raise BrokerError(f"broker binary {STROM_BIN} missing: run `cargo build` or set STROM_BIN")
        self.starts += 1
        self.paused = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== e2e: start #{self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self.run_log_offset = log.tell()
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir.parent,
                env={**os.environ, "RUST_BACKTRACE": "1", "NO_COLOR": "1"},
            )
        self._expect_exit = False

    def accepts(self) -> bool:
        """The Kafka port accepts connections (probed from the node's own namespace when cut)."""
        if not self.cut_off:
            return port_accepts(self.host, self.port)
        probe = f"import socket; socket.create_connection(({self.host!r}, {self.port}), timeout=0.5)"
        return self.lab.exec_in(self.node_id, [sys.executable, "-c", probe], timeout_s=5).returncode == 0

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.accepts():
            code = self.process.poll()
            if code is not None:
                raise BrokerError(f"{self.name} exited with {code} during start-up:\n{self.run_log_tail()}")
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.name} did not accept connections on {self.bootstrap} within {timeout_s} s:\n"
                    f"{self.run_log_tail()}"
                )
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen (sockets open, nothing answered) until resume()."""
        self.assert_running()
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True
        wait_until(lambda: self._proc_state() in ("T", "t"), 5.0, f"{self.name} stopped by SIGSTOP")

    def resume(self) -> None:
        if self.running and self.paused:
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def _proc_state(self) -> str:
        with open(f"/proc/{self.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    def stop(self, timeout_s: float = STOP_TIMEOUT_S, expect_clean_exit: bool = True, sig: int = signal.SIGTERM) -> int:
        self.resume()
        return super().stop(timeout_s, expect_clean_exit, sig)

    def kill(self) -> None:
        super().kill()
        self.paused = False

    def reachable(self) -> bool:
        """Running, not paused, not cut off: a client in this process can talk to it."""
        return self.running and not self.paused and not self.cut_off


class Cluster:
    """N strom nodes forming one cluster; see the module docstring."""

    def __init__(
        self,
        base_dir: pathlib.Path,
        size: int = 3,
        mode: str = "loopback",
        settings: dict | None = None,
        extra_args: list | None = None,
        lab: NetLab | None = None,
        cluster_flags: bool = True,
        node_settings: dict[int, dict] | None = None,
        voters: tuple[int, ...] | None = None,
        listeners: dict[str, str] | None = None,
        client_listener: str = "CLIENT",
        inter_broker_listener: str = "BROKER",
        controller_listener: str = "CONTROLLER",
        client_conf: dict | None = None,
        cli_args: list[str] | None = None,
    ):
        assert mode in ("loopback", "netlab"), f"unknown cluster mode {mode!r}"
        # {listener name: security protocol}, or None for the --listen/--controller-listen flags
        # (see the module docstring).
        self.listeners = {k.upper(): v.upper() for k, v in listeners.items()} if listeners else None
        self.client_listener = client_listener.upper()
        self.inter_broker_listener = inter_broker_listener.upper()
        self.controller_listener = controller_listener.upper()
        if self.listeners is not None:
            named = {self.client_listener, self.inter_broker_listener, self.controller_listener}
            assert named <= set(self.listeners), f"listeners {list(self.listeners)} lack one of {sorted(named)}"
        # librdkafka properties of the harness's own clients, and arguments of its CLI calls.
        self.client_conf = dict(client_conf or {})
        self.cli_args = list(cli_args or [])
        assert 1 <= size <= 250
        self.base_dir = pathlib.Path(base_dir)
        self.mode = mode
        self.settings = dict(settings or {})
        # {node id: settings}, on top of `settings` for that node only (e.g. broker.rack,
        # process.roles=broker).
        self.node_settings = {int(k): dict(v) for k, v in (node_settings or {}).items()}
        # The controller voters (--controller-quorum); default every node. A node left out
        # must be started with process.roles=broker (a Raft observer).
        self.voters = tuple(voters) if voters is not None else tuple(range(1, size + 1))
        assert set(self.voters) <= set(range(1, size + 1)) and self.voters, f"voters {self.voters} not among the nodes"
        self.extra_args = list(extra_args or [])
        self.cluster_flags = cluster_flags
        self.owns_lab = False
        self.lab = lab
        self.nodes: dict[int, ClusterNode] = {}
        if mode == "netlab" and lab is None:
            self.lab = NetLab(size).open()
            self.owns_lab = True
        try:
            self._make_nodes(size)
        except BaseException:
            if self.owns_lab:
                self.lab.close(check=False)
            raise

    def _make_nodes(self, size: int) -> None:
        if self.lab is not None:
            assert self.mode == "netlab", "a lab is only used in netlab mode"
            assert len(self.lab.nodes) >= size, f"lab has {len(self.lab.nodes)} nodes, cluster needs {size}"
        count = self._ports_per_node()
        for node_id in range(1, size + 1):
            if self.lab is not None:
                host = self.lab.address(node_id)
                ports = [NETLAB_KAFKA_PORT, NETLAB_CONTROLLER_PORT] + [NETLAB_CONTROLLER_PORT + i for i in range(1, count - 1)]
            else:
                host = f"127.0.0.{node_id}"
                ports = self._pick_ports(host, count)
            base = self.base_dir / f"node{node_id}"
            base.mkdir(parents=True, exist_ok=True)
            self.nodes[node_id] = ClusterNode(self, node_id, host, ports, base)

    def _ports_per_node(self) -> int:
        """A Kafka and a controller port, or one per listener."""
        return len(self.listeners) if self.listeners is not None else 2

    @staticmethod
    def _pick_ports(host: str, count: int = 2) -> list[int]:
        """`count` distinct ports free on `host` a moment ago."""
        while True:
            ports = [free_port_on(host) for _ in range(count)]
            if len(set(ports)) == count:
                return ports

    # -- listeners (Kafka's settings instead of the cluster flags) -------------------------

    def listener_order(self) -> list[str]:
        """The listener names, the client's first and the controller's second (so that a node's
        `port` and `controller_port` are the first two)."""
        rest = [n for n in self.listeners if n not in (self.client_listener, self.controller_listener)]
        return [self.client_listener, self.controller_listener, *rest]

    def listener_settings(self, node_id: int) -> dict:
        """A node's settings in listeners mode; values naming ports are evaluated at each start."""

        def advertised(node: "ClusterNode") -> str:
            return ",".join(
                f"{name}://{node.host}:{port}"
                for name, port in node.listener_ports.items()
                if name != self.controller_listener
            )

        return {
            "node.id": node_id,
            "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in self.listeners.items()),
            "advertised.listeners": advertised,
            "inter.broker.listener.name": self.inter_broker_listener,
            "controller.listener.names": self.controller_listener,
            "controller.quorum.voters": lambda node: node.cluster.quorum,
        }

    # -- addresses ----------------------------------------------------------------------

    def node(self, node_id: int) -> ClusterNode:
        if node_id not in self.nodes:
            raise ClusterError(f"no node {node_id} (nodes {sorted(self.nodes)})")
        return self.nodes[node_id]

    @property
    def quorum(self) -> str:
        return ",".join(f"{n.node_id}@{n.controller_address}" for n in self.nodes.values() if n.node_id in self.voters)

    @property
    def bootstrap(self) -> str:
        """Every node's Kafka address: what a client that must survive faults is given."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def live_bootstrap(self, exclude: tuple[int, ...] = ()) -> str:
        """The addresses of the nodes this process can reach now (not stopped, paused or cut)."""
        live = [n.bootstrap for n in self.nodes.values() if n.reachable() and n.node_id not in exclude]
        if not live:
            raise ClusterError(f"no reachable node (states: {self.describe_nodes()})")
        return ",".join(live)

    def describe_nodes(self) -> str:
        def state(n: ClusterNode) -> str:
            if not n.running:
                return "stopped" if n.process is not None else "never started"
            return "paused" if n.paused else "cut" if n.cut_off else "running"

        return ", ".join(f"{n.node_id}:{state(n)}" for n in self.nodes.values())

    # -- lifecycle ----------------------------------------------------------------------

    def start_all(self, timeout_s: float = START_TIMEOUT_S) -> "Cluster":
        """Spawns every node that is not running, then waits until all of them serve. On a first
        start in loopback mode a port taken meanwhile moves every node to fresh ports."""
        for attempt in range(3):
            pending = [n for n in self.nodes.values() if not n.running]
            for node in pending:
                node.spawn()
            try:
                self._wait_ready(pending, timeout_s)
                return self
            except BrokerError:
                first_start = all(n.starts == 1 for n in self.nodes.values())
                in_use = any("in use" in n.run_log().lower() for n in pending)
                if attempt == 2 or self.lab is not None or not first_start or not in_use:
                    raise
                for node in self.nodes.values():
                    if node.running:
                        node.kill()
                    node.starts = 0
                    node.use_ports(self._pick_ports(node.host, self._ports_per_node()))
                    node.admin_port = None
                    node.registry_port = None
        raise AssertionError("unreachable")

    @staticmethod
    def _wait_ready(nodes: list[ClusterNode], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for node in nodes:
            node.wait_ready(max(0.1, deadline - time.monotonic()))

    def start(self, node_id: int, wait: bool = True) -> ClusterNode:
        return self.node(node_id).start(wait=wait)

    def stop(self, node_id: int, expect_clean_exit: bool = True) -> int:
        """SIGTERM (after SIGCONT if paused); waits for the exit and returns the exit code."""
        return self.node(node_id).stop(expect_clean_exit=expect_clean_exit)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no flush, no goodbye."""
        self.node(node_id).kill()

    def restart(self, node_id: int, wait: bool = True) -> ClusterNode:
        """Stops the node if it runs, then starts it on the same data directory and addresses."""
        node = self.node(node_id)
        if node.running:
            node.stop()
        return node.start(wait=wait)

    def pause(self, node_id: int) -> None:
        self.node(node_id).pause()

    def resume(self, node_id: int) -> None:
        self.node(node_id).resume()

    def cut(self, node_id: int) -> None:
        self._require_lab("cut").cut(self.node(node_id).node_id)

    def heal(self, node_id: int) -> None:
        self._require_lab("heal").heal(self.node(node_id).node_id)

    def _require_lab(self, what: str) -> NetLab:
        if self.lab is None:
            raise ClusterError(f"{what} needs a netlab cluster (mode='netlab'); this one is {self.mode}")
        return self.lab

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """SIGTERM to every running node at once (a node stopping alone might wait for a quorum of
        peers stopping after it), then waits for all; returns the problems (unclean exits)."""
        problems = []
        running = [n for n in self.nodes.values() if n.running]
        for node in running:
            node.resume()
            node._expect_exit = True
            node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for node in running:
            try:
                code = node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.kill()
                problems.append(f"{node.name} did not exit within {timeout_s} s of SIGTERM:\n{node.run_log_tail(40)}")
                continue
            if code != 0:
                problems.append(f"{node.name} exited with {code} after SIGTERM:\n{node.run_log_tail(40)}")
        return problems

    def close(self) -> list[str]:
        """Stops every node and closes the lab if this cluster made it; returns the problems."""
        problems = [
            f"{n.name} died unexpectedly (exit code {n.process.returncode}):\n{n.run_log_tail(40)}"
            for n in self.nodes.values()
            if n.died_unexpectedly()
        ]
        problems += self.stop_all()
        if self.owns_lab and self.lab is not None:
            try:
                self.lab.close()
            except AssertionError as error:
                problems.append(str(error))
        return problems

    # -- cluster state ------------------------------------------------------------------

    def run_cli(self, args: list[str], timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`strom ARGS` in this process's namespace, bounded; stdout and stderr captured."""
        try:
            return subprocess.run(
                [STROM_BIN, *args], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise ClusterError(f"`strom {' '.join(args)}` did not finish within {timeout_s} s") from error

    def cluster_info(self, node_id: int | None = None, timeout_s: float = CLI_TIMEOUT_S) -> dict:
        """`strom cluster info --json` against one node, or against every reachable node."""
        if not cluster_info_available():
            raise ClusterError(f"{STROM_BIN} has no `cluster info --json` subcommand")
        bootstrap = self.node(node_id).bootstrap if node_id is not None else self.live_bootstrap()
        args = ["cluster", "info", "--bootstrap", bootstrap, "--json", *self.cli_args]
        result = self.run_cli(args, timeout_s)
        if result.returncode != 0:
            raise ClusterError(f"`strom {' '.join(args)}` failed with {result.returncode}: {result.stderr.strip()}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise ClusterError(f"`strom {' '.join(args)}` printed no JSON: {result.stdout[:500]!r}") from error

    def wait_for_controller_leader(
        self, timeout_s: float = 30.0, exclude: tuple[int, ...] = (), agree: bool = True
    ) -> int:
        """The controller quorum's leader id, once there is one (not in `exclude`); with `agree`,
        once every reachable node reports the same leader and epoch."""
        last: dict = {}

        def leader():
            views = {}
            nodes = [n for n in self.nodes.values() if n.reachable()] if agree else [None]
            for node in nodes:
                info = self.cluster_info(node.node_id if node else None, timeout_s=5)
                controller = info["controller"]
                views[node.node_id if node else "any"] = (controller["leader"], controller["leader_epoch"])
            last.clear()
            last.update(views)
            leaders = set(views.values())
            if len(leaders) == 1:
                ((found, _epoch),) = leaders
                if found is not None and found not in exclude:
                    return found
            return None

        if not cluster_info_available():
            raise ClusterError(f"{STROM_BIN} has no `cluster info --json` subcommand")
        try:
            return wait_until(leader, timeout_s, "a controller leader", interval_s=0.2)
        except AssertionError as error:
            raise ClusterError(f"{error}; last views (node: (leader, epoch)): {last}; nodes {self.describe_nodes()}")

    def wait_for_brokers(self, count: int, timeout_s: float = 30.0, agree: bool = True) -> list[dict]:
        """The registered (unfenced) brokers of cluster_info, once there are `count` of them; with
        `agree`, once every reachable node lists the same `count` brokers."""
        def brokers():
            if not agree:
                found = self.cluster_info(timeout_s=5)["brokers"]
                return found if len(found) == count else None
            views = [self.cluster_info(n.node_id, timeout_s=5)["brokers"] for n in self.nodes.values() if n.reachable()]
            ids = {tuple(sorted(b["id"] for b in view)) for view in views}
            return views[0] if len(ids) == 1 and len(views[0]) == count else None

        if not cluster_info_available():
            raise ClusterError(f"{STROM_BIN} has no `cluster info --json` subcommand")
        return wait_until(brokers, timeout_s, f"{count} brokers registered", interval_s=0.2)

    def create_topic(
        self, name: str, partitions: int = 1, replication_factor: int | None = None, config: dict | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """CreateTopics with the given replication factor (default: every node), then waits until
        every partition has a leader and a full ISR."""
        from confluent_kafka.admin import NewTopic

        replication_factor = replication_factor or len(self.nodes)
        admin = admin_client(self.live_bootstrap(), **self.client_conf)
        topic = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config or {})
        admin.create_topics([topic], operation_timeout=timeout_s, request_timeout=timeout_s)[name].result(timeout=timeout_s)
        for partition in range(partitions):
            self.wait_for_isr(name, partition, replication_factor, timeout_s)

    def partition_state(self, topic: str, partition: int, node_id: int | None = None, timeout_s: float = 10.0) -> PartitionState:
        """Leader, replicas and ISR from a fresh Metadata request (to one node, or any reachable)."""
        bootstrap = self.node(node_id).bootstrap if node_id is not None else self.live_bootstrap()
        metadata = admin_client(bootstrap, **self.client_conf).list_topics(topic=topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ClusterError(f"topic {topic} not in metadata from {bootstrap}: {found.error if found else 'absent'}")
        if partition not in found.partitions:
            raise ClusterError(f"{topic} has no partition {partition} (has {sorted(found.partitions)})")
        p = found.partitions[partition]
        return PartitionState(
            topic, partition, p.leader, tuple(p.replicas), tuple(p.isrs), str(p.error) if p.error is not None else None
        )

    def partition_leader(self, topic: str, partition: int) -> int:
        """The current leader's node id (-1: none)."""
        return self.partition_state(topic, partition).leader

    def wait_for_leader(
        self, topic: str, partition: int, timeout_s: float = 30.0, exclude: tuple[int, ...] = (), agree: bool = True
    ) -> int:
        """The partition's leader once it has one that is not in `exclude` (e.g. a killed node);
        with `agree`, as every reachable node sees it."""
        def leader():
            if agree:
                state = self.agreed_partition_state(topic, partition)
                if state is None:
                    return None
            else:
                state = self.partition_state(topic, partition, timeout_s=5)
            return state.leader if state.leader >= 0 and state.leader not in exclude else None

        return wait_until(leader, timeout_s, f"{topic}[{partition}] led by a node not in {exclude}", interval_s=0.1)

    def agreed_partition_state(self, topic: str, partition: int, timeout_s: float = 5.0) -> PartitionState | None:
        """The partition's state if every reachable node's Metadata shows the same leader,
        replicas and ISR, else None. (A node that was cut off or frozen serves its stale view
        until it has caught up with the metadata log: asking "any node" may get that view.)"""
        views = {
            n.node_id: self.partition_state(topic, partition, node_id=n.node_id, timeout_s=timeout_s)
            for n in self.nodes.values()
            if n.reachable()
        }
        distinct = {(s.leader, tuple(sorted(s.replicas)), tuple(sorted(s.isr))) for s in views.values()}
        self._last_views = views
        return next(iter(views.values())) if len(distinct) == 1 else None

    def wait_for_isr(
        self, topic: str, partition: int, size: int, timeout_s: float = 30.0, agree: bool = True
    ) -> PartitionState:
        """The partition's state once it has a leader and exactly `size` in-sync replicas; with
        `agree`, as seen by every reachable node (see agreed_partition_state)."""
        last: list = []

        def in_sync():
            if agree:
                state = self.agreed_partition_state(topic, partition)
                last[:] = [getattr(self, "_last_views", None)]
            else:
                state = self.partition_state(topic, partition, timeout_s=5)
                last[:] = [state]
            return state if state is not None and state.leader >= 0 and len(state.isr) == size else None

        try:
            return wait_until(in_sync, timeout_s, f"{topic}[{partition}] with an ISR of {size}", interval_s=0.1)
        except AssertionError as error:
            raise ClusterError(f"{error}; last state: {last[0] if last else None}; nodes {self.describe_nodes()}")

    def high_watermark(self, topic: str, partition: int, timeout_s: float = 10.0) -> int:
        """ListOffsets latest, answered by the partition's leader: the high watermark."""
        return watermarks(self.live_bootstrap(), topic, partition, timeout_s, **self.client_conf)[1]

    # -- files and logs -----------------------------------------------------------------

    def data_dirs(self) -> dict[int, pathlib.Path]:
        return {n.node_id: n.data_dir for n in self.nodes.values()}

    def partition_dirs(self, topic: str, partition: int) -> dict[int, pathlib.Path]:
        """{node id: the partition's directory} for the nodes that have one."""
        dirs = {n.node_id: n.partition_dir(topic, partition) for n in self.nodes.values()}
        return {node: d for node, d in dirs.items() if d.is_dir()}

    def logs(self, lines: int = 60) -> str:
        """The tail of every node's log, for failure messages."""
        return "\n\n".join(
            f"---- {n.name} ({n.bootstrap}, {n.log_path}) ----\n{n.log_tail(lines)}" for n in self.nodes.values()
        )

    def __repr__(self) -> str:
        return f"Cluster({self.mode}, {self.describe_nodes()}, bootstrap={self.bootstrap})"

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc_info) -> None:
        problems = self.close()
        if problems and exc_info[0] is None:
            raise ClusterError("cluster shutdown problems:\n" + "\n".join(problems))


# -- load: a steady producer and a continuous consumer, each in a thread --------------


@dataclass(frozen=True)
class TimedDelivery:
    """A delivery report with the monotonic time it arrived (error None: acknowledged)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: object
    at: float


class SteadyProducer:
    """Produces `rate` records a second, round robin over `partitions`, each with a unique
    value (b"<tag>-<sequence>"), from a thread, with librdkafka retrying through faults (acks=all,
    no idempotence by default). Every delivery report is kept, with its arrival time.

        with SteadyProducer(cluster.bootstrap, topic, partitions=3, rate=300) as load:
            ... faults; load.wait_for_acks(load.acked_count() + 100, 30, "after the kill") ...
        load.acknowledged / load.errors
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1, rate: float = 200.0, tag: str = "v", **conf):
        from confluent_kafka import Producer

        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.tag = tag
        config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 5000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
            "reconnect.backoff.max.ms": 500,
        }
        config.update({conf_key(k): v for k, v in conf.items()})
        self.producer = Producer(config)
        self.reports: list[TimedDelivery] = []
        self.sent = 0
        self._stop = False
        self._thread = None
        self._lock = threading.Lock()

    def _on_delivery(self, error, message) -> None:
        report = TimedDelivery(message.partition(), message.offset(), message.key(), message.value(), error, time.monotonic())
        with self._lock:
            self.reports.append(report)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop:
            now = time.monotonic()
            if now < next_at:
                self.producer.poll(min(next_at - now, 0.05))
                continue
            value = f"{self.tag}-{self.sent}".encode()
            try:
                self.producer.produce(
                    self.topic, value=value, key=b"k%d" % self.sent, partition=self.sent % self.partitions,
                    on_delivery=self._on_delivery,
                )
                self.sent += 1
                next_at += interval
                if next_at < now - 1.0:  # fell behind (a long poll, a full queue): do not burst
                    next_at = now
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)

    def start(self) -> "SteadyProducer":
        self._thread = threading.Thread(target=self._run, name=f"producer-{self.topic}", daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_timeout_s: float = 70.0) -> None:
        """Stops producing and waits for every outstanding delivery report."""
        self._stop = True
        if self._thread is not None:
            self._thread.join(10)
        remaining = self.producer.flush(flush_timeout_s)
        if remaining:
            raise AssertionError(f"{remaining} of {self.sent} records without a delivery report {flush_timeout_s} s after stop")

    def __enter__(self) -> "SteadyProducer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.stop()
        else:
            self._stop = True

    @property
    def acknowledged(self) -> list[TimedDelivery]:
        with self._lock:
            return [r for r in self.reports if r.error is None]

    @property
    def errors(self) -> list[TimedDelivery]:
        with self._lock:
            return [r for r in self.reports if r.error is not None]

    def acked_count(self) -> int:
        with self._lock:
            return sum(1 for r in self.reports if r.error is None)

    def wait_for_acks(self, count: int, timeout_s: float, what: str) -> None:
        """Waits until `count` records are acknowledged in all (progress after a fault)."""
        try:
            wait_until(lambda: self.acked_count() >= count, timeout_s, f"{count} acknowledged records {what}", 0.05)
        except AssertionError as error:
            errors = self.errors
            raise AssertionError(
                f"{error}: {self.acked_count()} acknowledged of {self.sent} sent, {len(errors)} errors"
                + (f", last: {errors[-1].error}" if errors else "")
            ) from None

    def describe(self) -> str:
        errors = self.errors
        counts: dict[str, int] = {}
        for r in errors:
            counts[str(r.error)] = counts.get(str(r.error), 0) + 1
        return f"{self.sent} sent, {self.acked_count()} acknowledged, {len(errors)} errors {counts}"


class ContinuousConsumer:
    """Reads `partitions` of `topic` from offset 0 onwards in a thread (assign(), no group), and
    keeps every record seen as (partition, offset, key, value) and every consumer error."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1, **conf):
        from confluent_kafka import Consumer

        config = {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-unused-{os.getpid()}-{id(self)}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "check.crcs": True,
            "topic.metadata.refresh.interval.ms": 1000,
            "reconnect.backoff.max.ms": 500,
        }
        config.update({conf_key(k): v for k, v in conf.items()})
        self.topic = topic
        self.partitions = partitions
        self.consumer = Consumer(config)
        self.records: list[tuple[int, int, bytes | None, bytes | None]] = []
        self.errors: list[str] = []
        self._stop = False
        self._thread = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        while not self._stop:
            for message in self.consumer.consume(num_messages=1000, timeout=0.2):
                with self._lock:
                    if message.error() is not None:
                        self.errors.append(str(message.error()))
                    else:
                        self.records.append((message.partition(), message.offset(), message.key(), message.value()))
        self.consumer.close()

    def start(self) -> "ContinuousConsumer":
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.topic}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(15)

    def seen(self) -> list[tuple[int, int, bytes | None, bytes | None]]:
        with self._lock:
            return list(self.records)

    def next_offsets(self) -> dict[int, int]:
        """{partition: one past the highest offset seen} (0 when nothing seen)."""
        out = {p: 0 for p in range(self.partitions)}
        for partition, offset, _, _ in self.seen():
            out[partition] = max(out[partition], offset + 1)
        return out

    def wait_until_caught_up(self, high_watermarks: dict[int, int], timeout_s: float) -> None:
        def caught_up():
            offsets = self.next_offsets()
            return all(offsets[p] >= hw for p, hw in high_watermarks.items())

        try:
            wait_until(caught_up, timeout_s, f"the consumer reaching the high watermarks {high_watermarks}", 0.1)
        except AssertionError as error:
            with self._lock:
                errors = self.errors[-5:]
            raise AssertionError(f"{error}: it is at {self.next_offsets()}; last consumer errors: {errors}") from None


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units, 32-bit wrapping)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition_for(group: str, partitions: int = 50) -> int:
    """Kafka's `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


@pytest.fixture
def cluster_factory(request, tmp_path):
    """Returns make(size=3, mode="loopback", settings=None, start=True, cluster_flags=True,
    extra_args=None, node_settings=None, voters=None, **listener_options) -> Cluster (started
    unless start=False); node_settings {node id: settings} adds to `settings` per node, voters
    (default every node) are the --controller-quorum; listener_options are Cluster's `listeners`,
    `client_listener`, `inter_broker_listener`, `controller_listener`, `client_conf`, `cli_args`. Netlab mode skips, with the reason,
    where namespaces are unavailable. Every cluster is closed after the test; a node that died
    unexpectedly or did not stop cleanly fails the test; failure reports carry every node's log."""
    clusters: list[Cluster] = []
    reported = getattr(request.node, "strom_brokers", None)
    if reported is None:
        reported = request.node.strom_brokers = []

    def make(
        size: int = 3,
        mode: str = "loopback",
        settings: dict | None = None,
        start: bool = True,
        cluster_flags: bool = True,
        extra_args: list | None = None,
        node_settings: dict[int, dict] | None = None,
        voters: tuple[int, ...] | None = None,
        **listener_options,
    ) -> Cluster:
        if mode == "netlab":
            require_netlab()
        cluster = Cluster(
            tmp_path / f"cluster{len(clusters)}", size, mode, settings, extra_args, cluster_flags=cluster_flags,
            node_settings=node_settings, voters=voters, **listener_options,
        )
        clusters.append(cluster)
        reported.extend(cluster.nodes.values())
        if start:
            cluster.start_all()
        return cluster

    yield make

    problems = []
    for cluster in clusters:
        problems += cluster.close()
    if problems:
        pytest.fail("cluster teardown:\n" + "\n\n".join(problems))
