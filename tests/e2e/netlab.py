"""A network lab of Linux network namespaces, for cluster tests that cut nodes off the network.

Layout of one lab (N nodes, lab subnet 10.L.0.0/24, L picked free at creation):

    root namespace (pytest, Kafka clients)          hub namespace           node namespaces
    <root link> 10.L.0.254/24  ---- veth ---- "root" -+                     (one per node)
                                                      br0 -- "n1" ---- veth ---- eth0 10.L.0.1/24
                                                       |  -- "n2" ---- veth ---- eth0 10.L.0.2/24
                                                       +  -- "n3" ---- veth ---- eth0 10.L.0.3/24

The bridge lives in a namespace of its own (the "hub"), not in the root namespace: a fresh
namespace has no firewall rules (bridged frames may pass through iptables when br_netfilter is
loaded, and Docker hosts set FORWARD to DROP), and the only object the lab puts in the root
namespace is one veth end with one address. Every node reaches every other node and the root
namespace through the bridge; the test process reaches every node at `lab.address(node)`.

cut(node) sets the node's bridge port to the STP "listening" state: the bridge then drops every
frame to and from that port, in both directions, silently (no RST, no ICMP, the link stays up),
which is what a network partition looks like to the node and to its peers. heal(node) sets the
port back to "forwarding". Where the kernel refuses a manual port state, cut falls back to
taking the hub side of the node's veth down (the node then sees its link lose carrier).

Names carry the creating process's pid and a per-process counter: namespaces are
`strom-lab-<pid>-<n>-hub` and `strom-lab-<pid>-<n>-node<i>`, the root link `slab<pid>x<n>`, so
labs of parallel runs never collide, and labs left behind by a dead pytest (SIGKILL, power cut)
are recognised and removed by `sweep_stale_labs()`, which every new lab runs first.
Teardown (`close()`, the context manager, the `netlab_factory` fixture, and an atexit hook as a
last resort) kills every process in the lab's namespaces and deletes them and the root link.

Every `ip` command runs with a timeout; nothing here waits without a deadline. Root is needed
(`ip netns add`); `netlab_unavailable_reason()` says why a lab cannot be built, and the fixture
skips with that reason, or fails when STROM_REQUIRE_NETLAB=1 (for CI, where a skip would hide a
broken setup).

    with NetLab(nodes=3) as lab:
        server = lab.run_in(2, ["python3", "-m", "http.server", "--bind", lab.address(2), "8000"])
        lab.cut(2); ...; lab.heal(2)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

NAMESPACE_PREFIX = "strom-lab"
ROOT_LINK_PREFIX = "slab"
IP_COMMAND_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 15.0
PROCESS_EXIT_TIMEOUT_S = 5.0
# Third octets tried for a lab's subnet 10.L.0.0/24, in this order; one in use is skipped.
SUBNET_CANDIDATES = list(range(200, 255)) + list(range(100, 200))
ROOT_HOST = 254  # the root namespace's address in every lab: 10.L.0.254
MAX_NODES = 250

_NAMESPACE_RE = re.compile(rf"^{NAMESPACE_PREFIX}-(\d+)-(\d+)-(hub|node\d+)$")
_ROOT_LINK_RE = re.compile(rf"^{ROOT_LINK_PREFIX}(\d+)x(\d+)$")
_counter = itertools.count(1)
_open_labs: list["NetLab"] = []


class NetLabError(AssertionError):
    pass


# -- commands ---------------------------------------------------------------------------


def run_ip(
    *args: str, timeout_s: float = IP_COMMAND_TIMEOUT_S, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess:
    """Runs `ip ARGS` (or `bridge ARGS` when args[0] == "bridge") with a deadline; `input` goes to
    its stdin (for `-batch -`)."""
    argv = list(args) if args[0] == "bridge" else ["ip", *args]
    try:
        stdin = subprocess.DEVNULL if input is None else None
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=stdin, input=input)
    except subprocess.TimeoutExpired as error:
        raise NetLabError(f"`{' '.join(argv)}` did not finish within {timeout_s} s") from error
    if check and result.returncode != 0:
        raise NetLabError(f"`{' '.join(argv)}` failed with {result.returncode}: {result.stderr.strip()}")
    return result


def list_namespaces() -> list[str]:
    out = run_ip("netns", "list").stdout
    # Lines look like "name" or "name (id: 3)".
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_root_links() -> list[str]:
    links = json.loads(run_ip("-j", "link", "show").stdout or "[]")
    return [link["ifname"] for link in links]


def namespace_pids(namespace: str) -> list[int]:
    result = run_ip("netns", "pids", namespace, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(namespace: str, timeout_s: float = PROCESS_EXIT_TIMEOUT_S) -> list[int]:
    """SIGKILLs every process in the namespace and waits until none is left; returns survivors."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = namespace_pids(namespace)
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _delete_namespace(namespace: str) -> None:
    _kill_namespace_processes(namespace)
    run_ip("netns", "del", namespace, check=False)


# -- availability and stale labs --------------------------------------------------------

_availability: str | None | bool = False  # False: not checked yet


def netlab_unavailable_reason() -> str | None:
    """None when labs can be built here, else why not (checked once per process)."""
    global _availability
    if _availability is not False:
        return _availability
    reason = None
    if os.geteuid() != 0:
        reason = f"network namespaces need root (running as uid {os.geteuid()}); run the e2e tests as root"
    elif shutil.which("ip") is None or shutil.which("bridge") is None:
        reason = "iproute2 (`ip`, `bridge`) is not installed: apt-get install iproute2 (scripts/test does)"
    else:
        probe = f"{NAMESPACE_PREFIX}-{os.getpid()}-0-hub"
        result = run_ip("netns", "add", probe, check=False)
        if result.returncode != 0:
            reason = f"`ip netns add` fails here: {result.stderr.strip()}"
        else:
            result = run_ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
            if result.returncode != 0:
                reason = f"cannot create a bridge in a namespace: {result.stderr.strip()}"
            _delete_namespace(probe)
    _availability = reason
    return reason


def sweep_stale_labs() -> list[str]:
    """Removes namespaces and root links of labs whose creating process is gone; returns their
    names. Best effort: a lab of a dead pid that was reused by another process stays."""
    removed = []
    # Links first: deleting a namespace also deletes, in the background, veths with an end in it.
    for link in list_root_links():
        match = _ROOT_LINK_RE.match(link.split("@")[0])
        if match and not _pid_alive(int(match.group(1))):
            run_ip("link", "del", link.split("@")[0], check=False)
            removed.append(link)
    for namespace in list_namespaces():
        match = _NAMESPACE_RE.match(namespace)
        if match and not _pid_alive(int(match.group(1))):
            _delete_namespace(namespace)
            removed.append(namespace)
    return removed


# -- subnet allocation ------------------------------------------------------------------


@contextlib.contextmanager
def _allocation_lock(timeout_s: float = LOCK_TIMEOUT_S):
    """A host-wide lock held while a lab picks its subnet and puts its address in the root
    namespace, so two labs created at once never pick the same one."""
    directory = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
    with open(os.path.join(directory, "strom-netlab.lock"), "w") as lock_file:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NetLabError(f"netlab allocation lock {lock_file.name} busy for {timeout_s} s")
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """IPv4 networks of the root namespace's addresses and routes (all tables)."""
    networks = []
    for entry in json.loads(run_ip("-j", "-4", "addr", "show").stdout or "[]"):
        for info in entry.get("addr_info", []):
            networks.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(run_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", ""):
            continue
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return networks


def _free_subnet() -> int:
    in_use = _networks_in_use()
    for third in SUBNET_CANDIDATES:
        candidate = ipaddress.ip_network(f"10.{third}.0.0/24")
        if not any(candidate.overlaps(n) for n in in_use):
            return third
    raise NetLabError("no free 10.L.0.0/24 subnet for a network lab")


# -- the lab ----------------------------------------------------------------------------


class NetLab:
    """Nodes 1..N, each in its own network namespace, joined by a bridge that the test process
    (root namespace) also sits on. Create with `NetLab(3).open()` or `with NetLab(3) as lab:`."""

    def __init__(self, nodes: int = 3):
        assert 1 <= nodes <= MAX_NODES, f"a lab has 1..{MAX_NODES} nodes, not {nodes}"
        self.nodes = list(range(1, nodes + 1))
        self.pid = os.getpid()
        self.number = next(_counter)
        self.prefix = f"{NAMESPACE_PREFIX}-{self.pid}-{self.number}"
        self.hub = f"{self.prefix}-hub"
        self.root_link = f"{ROOT_LINK_PREFIX}{self.pid}x{self.number}"
        assert len(self.root_link) <= 15, f"interface name {self.root_link} longer than 15 characters"
        self.subnet: int | None = None
        self.processes: list[subprocess.Popen] = []
        self._cut: dict[int, str] = {}  # node -> how it was cut ("port-state" or "link-down")
        self._opened = False
        self._closed = False

    # -- names and addresses ----------------------------------------------------------

    def namespace(self, node: int) -> str:
        self._check_node(node)
        return f"{self.prefix}-node{node}"

    def hub_port(self, node: int) -> str:
        """The hub-side veth of the node, a port of the bridge."""
        self._check_node(node)
        return f"n{node}"

    def address(self, node: int) -> str:
        self._check_node(node)
        assert self.subnet is not None, "lab not open"
        return f"10.{self.subnet}.0.{node}"

    def mac(self, node: int) -> str:
        """The node's fixed MAC address (eth0); fixed so that neighbour entries can be static."""
        self._check_node(node)
        return f"02:53:{self.subnet:02x}:00:00:{node:02x}"

    @property
    def root_mac(self) -> str:
        return f"02:53:{self.subnet:02x}:00:00:{ROOT_HOST:02x}"

    @property
    def root_address(self) -> str:
        assert self.subnet is not None, "lab not open"
        return f"10.{self.subnet}.0.{ROOT_HOST}"

    def namespaces(self) -> list[str]:
        return [self.hub] + [self.namespace(n) for n in self.nodes]

    def _check_node(self, node: int) -> None:
        if node not in self.nodes:
            raise NetLabError(f"no node {node} in lab {self.prefix} (nodes {self.nodes})")

    # -- lifecycle --------------------------------------------------------------------

    def open(self) -> "NetLab":
        assert not self._opened, "lab already opened"
        reason = netlab_unavailable_reason()
        if reason:
            raise NetLabError(f"network lab unavailable: {reason}")
        self._opened = True
        _open_labs.append(self)
        try:
            sweep_stale_labs()
            self._build()
        except BaseException:
            self.close(check=False)
            raise
        return self

    def _build(self) -> None:
        hub = self.hub
        run_ip("netns", "add", hub)
        run_ip("-n", hub, "link", "set", "lo", "up")
        run_ip("-n", hub, "link", "add", "br0", "type", "bridge")
        run_ip("-n", hub, "link", "set", "br0", "up")
        with _allocation_lock():
            self.subnet = _free_subnet()
            run_ip(
                "link", "add", self.root_link, "address", self.root_mac,
                "type", "veth", "peer", "name", "root", "netns", hub,
            )
            run_ip("addr", "add", f"{self.root_address}/24", "dev", self.root_link)
            run_ip("link", "set", self.root_link, "up")
        run_ip("-n", hub, "link", "set", "root", "master", "br0", "up")
        for node in self.nodes:
            namespace, port = self.namespace(node), self.hub_port(node)
            run_ip("netns", "add", namespace)
            run_ip("-n", namespace, "link", "set", "lo", "up")
            run_ip(
                "link", "add", "eth0", "address", self.mac(node), "netns", namespace,
                "type", "veth", "peer", "name", port, "netns", hub,
            )
            run_ip("-n", hub, "link", "set", port, "master", "br0", "up")
            run_ip("-n", namespace, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
            run_ip("-n", namespace, "link", "set", "eth0", "up")
        # Static neighbour entries everywhere: no ARP, so a cut never leaves a FAILED entry behind
        # (which makes the first connection after heal fail with EHOSTUNREACH): a cut is pure
        # silence, a heal is instant.
        hosts = {self.root_address: self.root_mac, **{self.address(n): self.mac(n) for n in self.nodes}}
        ends = [(None, self.root_link, self.root_address)]
        ends += [(self.namespace(n), "eth0", self.address(n)) for n in self.nodes]
        for namespace, device, own in ends:
            batch = "".join(
                f"neigh replace {address} lladdr {mac} dev {device} nud permanent\n"
                for address, mac in hosts.items()
                if address != own
            )
            run_ip(*(["-n", namespace] if namespace else []), "-batch", "-", input=batch)

    def close(self, check: bool = True) -> None:
        """Kills every process in the lab and removes its namespaces and root link. Idempotent.
        With check, raises NetLabError if anything of the lab is left afterwards."""
        if self._closed or not self._opened:
            return
        self._closed = True
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=PROCESS_EXIT_TIMEOUT_S)
        run_ip("link", "del", self.root_link, check=False)
        survivors = {}
        existing = set(list_namespaces())
        for namespace in self.namespaces():
            if namespace in existing:
                pids = _kill_namespace_processes(namespace)
                if pids:
                    survivors[namespace] = pids
                run_ip("netns", "del", namespace, check=False)
        if self in _open_labs:
            _open_labs.remove(self)
        if check:
            left = self.leftovers()
            if left or survivors:
                raise NetLabError(f"lab {self.prefix} teardown left {left}, unkillable processes {survivors}")

    def leftovers(self) -> list[str]:
        """Namespaces and root links of this lab that exist now."""
        mine = set(self.namespaces())
        left = [n for n in list_namespaces() if n in mine]
        left += [link for link in list_root_links() if link.split("@")[0] == self.root_link]
        return left

    def __enter__(self) -> "NetLab":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        # A failing body's exception wins over a teardown complaint.
        self.close(check=exc_info[0] is None)

    # -- faults -----------------------------------------------------------------------

    def cut(self, node: int) -> None:
        """Isolates the node from every other node and from the root namespace: frames to and from
        it are dropped silently, in both directions, until heal(node)."""
        port = self.hub_port(node)
        if node in self._cut:
            return
        run_ip("bridge", "-n", self.hub, "link", "set", "dev", port, "state", "1", check=False)
        if self._port_state(port) == "listening":
            self._cut[node] = "port-state"
        else:
            run_ip("-n", self.hub, "link", "set", port, "down")
            self._cut[node] = "link-down"

    def heal(self, node: int) -> None:
        """Undoes cut(node); frames flow again at once (no learning delay: STP is off)."""
        port = self.hub_port(node)
        how = self._cut.pop(node, None)
        if how == "port-state":
            run_ip("bridge", "-n", self.hub, "link", "set", "dev", port, "state", "3")
        elif how == "link-down":
            run_ip("-n", self.hub, "link", "set", port, "up")
        state = self._port_state(port)
        if state != "forwarding":
            raise NetLabError(f"node {node}: bridge port {port} is {state!r} after heal, not forwarding")

    def is_cut(self, node: int) -> bool:
        self._check_node(node)
        return node in self._cut

    def cut_nodes(self) -> list[int]:
        return sorted(self._cut)

    def _port_state(self, port: str) -> str | None:
        (link,) = json.loads(run_ip("-n", self.hub, "-j", "-d", "link", "show", port).stdout)
        if "DOWN" in link.get("operstate", "") or "UP" not in link.get("flags", []):
            return "down"
        return link.get("linkinfo", {}).get("info_slave_data", {}).get("state")

    # -- processes --------------------------------------------------------------------

    def netns_argv(self, node: int, argv: list[str]) -> list[str]:
        """argv prefixed to run inside the node's namespace. `ip netns exec` execs the program
        (no fork), so the pid of the process started is the program's own pid."""
        return ["ip", "netns", "exec", self.namespace(node), *[str(a) for a in argv]]

    def run_in(self, node: int, argv: list[str], **popen_kwargs) -> subprocess.Popen:
        """Starts argv in the node's namespace (subprocess.Popen keyword arguments apply); the lab
        kills it at teardown if it is still running."""
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(self.netns_argv(node, argv), **popen_kwargs)
        self.processes.append(process)
        return process

    def exec_in(self, node: int, argv: list[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        """Runs argv to completion in the node's namespace, output captured, with a deadline."""
        try:
            return subprocess.run(
                self.netns_argv(node, argv), capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise NetLabError(f"node {node}: {argv} did not finish within {timeout_s} s") from error

    def __repr__(self) -> str:
        subnet = f"10.{self.subnet}.0.0/24" if self.subnet is not None else "unallocated"
        return f"NetLab({self.prefix}, nodes={self.nodes}, {subnet}, cut={self.cut_nodes()})"


@atexit.register
def _close_open_labs() -> None:
    for lab in list(_open_labs):
        with contextlib.suppress(Exception):
            lab.close(check=False)


def require_netlab() -> None:
    """pytest.skip (or fail with STROM_REQUIRE_NETLAB=1) when labs cannot be built here."""
    reason = netlab_unavailable_reason()
    if reason:
        if os.environ.get("STROM_REQUIRE_NETLAB") == "1":
            pytest.fail(f"STROM_REQUIRE_NETLAB=1 but the network lab is unavailable: {reason}")
        pytest.skip(f"network lab unavailable: {reason}")


@pytest.fixture
def netlab_factory():
    """Returns make(nodes=3) -> an open NetLab; every lab made is torn down after the test, and a
    teardown that leaves something behind fails the test."""
    labs: list[NetLab] = []

    def make(nodes: int = 3) -> NetLab:
        require_netlab()
        lab = NetLab(nodes).open()
        labs.append(lab)
        return lab

    yield make

    errors = []
    for lab in labs:
        try:
            lab.close()
        except NetLabError as error:
            errors.append(str(error))
    if errors:
        pytest.fail("network lab teardown incomplete:\n" + "\n".join(errors))
