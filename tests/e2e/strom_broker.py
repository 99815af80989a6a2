"""A `strom server` process for the end-to-end tests; the fixtures are in conftest.py.

A Broker starts the binary ($STROM_BIN, default target/debug/strom) on a loopback port with
its own data directory, logs its stdout and stderr to a file, and can be stopped (SIGTERM),
killed (SIGKILL) and started again on the same data directory and port.

By default the broker gets `--listen HOST:PORT` (one PLAINTEXT listener). A broker given
`listeners=["SSL", "SASL_SSL", ...]` (listener names) gets no `--listen` flag but the setting
`listeners=SSL://HOST:P1,SASL_SSL://HOST:P2,...` with a port picked per name, and waits until
every one of them accepts connections; `address(name)` is one listener's HOST:PORT and
`bootstrap` the first one's. (A name that is not a security protocol needs
`listener.security.protocol.map` in the settings.)

A setting's value may be a callable of the Broker, evaluated at each start, so that it can name
ports picked at start-up (`advertised.listeners`, `controller.quorum.voters`).
"""

from __future__ import annotations

import os
import pathlib
import resource
import signal
import socket
import subprocess
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
STROM_BIN = os.environ.get("STROM_BIN", str(REPO_ROOT / "target" / "debug" / "strom"))

# How long a broker may take to open its port, and to exit after SIGTERM.
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 150


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class BrokerError(AssertionError):
    pass


class Broker:
    """One `strom server` process, restartable on the same data directory and port."""

    def __init__(
        self,
        name: str,
        data_dir: pathlib.Path,
        log_path: pathlib.Path,
        port: int | None = None,
        settings: dict | None = None,
        config_file: pathlib.Path | None = None,
        host: str = "127.0.0.1",
        extra_args: list | None = None,
        open_files_limit: int | None = None,
        listeners: list[str] | None = None,
    ):
        self.name = name
        self.data_dir = data_dir
        self.log_path = log_path
        self.host = host
        self.port = port
        self.settings = dict(settings or {})
        # Listener names in order (see the module docstring), with the port each was given at its
        # first start; None: one PLAINTEXT listener from --listen, on `port`.
        self.listener_ports: dict[str, int | None] | None = None
        if listeners:
            assert "listeners" not in self.settings, "give listener names as listeners=[...], not as a setting"
            assert len(set(listeners)) == len(listeners), f"listener names repeat: {listeners}"
            assert port is None, "a broker with listeners picks its ports itself"
            self.listener_ports = {name.upper(): None for name in listeners}
        # RLIMIT_NOFILE (soft and hard) the broker process starts with; None inherits ours.
        self.open_files_limit = open_files_limit
        self.config_file = config_file
        self.extra_args = list(extra_args or [])
        # The admin listener's port (metrics, health, console): picked at the first start, kept
        # across restarts like the Kafka ports.
        self.admin_port: int | None = None
        # The schema registry's port, picked and kept the same way.
        self.registry_port: int | None = None
        self.process: subprocess.Popen | None = None
        self.starts = 0
        # Byte offset in the log file where the current (or last) run's output begins.
        self.run_log_offset = 0
        # Set when the test itself ended the process (stop/kill), so an exit is expected.
        self._expect_exit = False

    # -- addresses -----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_address(self) -> str:
        assert self.admin_port is not None, f"{self.name} has not started yet"
        return f"{self.host}:{self.admin_port}"

    @property
    def admin_url(self) -> str:
        """http://HOST:PORT of the admin listener (/metrics, /v1/health/*, the console)."""
        return f"http://{self.admin_address}"

    @property
    def registry_url(self) -> str:
        """http://HOST:PORT of the schema registry (Confluent's REST API)."""
        assert self.registry_port is not None, f"{self.name} has not started yet"
        return f"http://{self.host}:{self.registry_port}"

    def pick_registry_port(self) -> int:
        """A free port on this broker's host for its schema registry."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((self.host, 0))
            return s.getsockname()[1]

    def pick_admin_port(self) -> int:
        """A free port on this broker's host for its admin listener."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((self.host, 0))
            return s.getsockname()[1]

    def address(self, listener: str) -> str:
        """HOST:PORT of one named listener (a broker started with `listeners`)."""
        assert self.listener_ports is not None, f"{self.name} has one listener (--listen): use bootstrap"
        port = self.listener_ports.get(listener.upper())
        assert port is not None, f"{self.name} has no listener {listener} (has {list(self.listener_ports)})"
        return f"{self.host}:{port}"

    def listeners_setting(self) -> str:
        """The `listeners` value: NAME://HOST:PORT,..."""
        return ",".join(f"{name}://{self.host}:{port}" for name, port in self.listener_ports.items())

    def ports(self) -> list[int]:
        """Every port this broker listens on for Kafka clients (the ones a start waits for)."""
        if self.listener_ports is None:
            return [self.port]
        return list(self.listener_ports.values())

    def pick_ports(self) -> None:
        """Free ports for a first start: `port`, or one per listener (`port` is the first's)."""
        if self.listener_ports is None:
            self.port = free_port()
            return
        picked: set[int] = set()
        for name in self.listener_ports:
            port = free_port()
            while port in picked:
                port = free_port()
            picked.add(port)
            self.listener_ports[name] = port
        self.port = next(iter(self.listener_ports.values()))

    # -- lifecycle -----------------------------------------------------------------------

    def command(self) -> list[str]:
        args = [STROM_BIN, "server"]
        if self.listener_ports is None:
            args += ["--listen", self.bootstrap]
        args += ["--data-dir", str(self.data_dir)]
        while self.admin_port is None or self.admin_port in self.ports():
            self.admin_port = self.pick_admin_port()
        args += ["--admin-listen", self.admin_address]
        # Ports are picked one at a time, each free when picked: the registry's must not be
        # one picked for this broker already (the OS may hand the same free port out twice).
        taken = {self.admin_port, *self.ports()}
        while self.registry_port is None or self.registry_port in taken:
            self.registry_port = self.pick_registry_port()
        args += ["--schema-registry-listen", f"{self.host}:{self.registry_port}"]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        settings = dict(self.settings)
        if self.listener_ports is not None:
            settings = {"listeners": self.listeners_setting(), **settings}
        for key, value in settings.items():
            if callable(value):
                value = value(self)
            if isinstance(value, bool):
                value = "true" if value else "false"
            args += ["--set", f"{key}={value}"]
        # Entries may be callables, so that they can name the port picked at start-up.
        return args + [a(self) if callable(a) else str(a) for a in self.extra_args]

    def start(self, timeout_s: float = START_TIMEOUT_S) -> "Broker":
        """Starts the process and waits until its port accepts connections."""
        assert self.process is None or self.process.poll() is not None, "already running"
        if not os.access(STROM_BIN, os.X_OK):
            raise BrokerError(f"broker binary {STROM_BIN} missing: run `cargo build` or set STROM_BIN")
        # A port picked at random may be taken between picking and binding; only a first start
        # may move to another port (a restart must keep its address, as clients know it).
        unpicked = None in self.ports()
        attempts = 3 if unpicked else 1
        for attempt in range(attempts):
            if self.starts == 0 and (unpicked or attempt > 0):
                self.pick_ports()
                self.admin_port = None
                self.registry_port = None
            try:
                self._spawn_and_wait(timeout_s)
                return self
            except BrokerError:
                if attempt + 1 < attempts and "in use" in self.run_log().lower():
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, timeout_s: float) -> None:
        self.starts += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== e2e: start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.run_log_offset = log.tell()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir.parent,
                env={**os.environ, "RUST_BACKTRACE": "1", "NO_COLOR": "1"},
                preexec_fn=self._limit_open_files,
            )
        self._expect_exit = False
        deadline = time.monotonic() + timeout_s
        # Each port is probed until it first accepts (a probe is a connection that says nothing:
        # a TLS or SASL listener sees an aborted handshake).
        waiting = set(self.ports())
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise BrokerError(
                    f"broker {self.name} exited with {code} during start-up:\n{self.run_log_tail()}"
                )
            waiting = {port for port in waiting if not port_accepts(self.host, port)}
            if not waiting:
                return
            time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        where = self.listeners_setting() if self.listener_ports is not None else self.bootstrap
        raise BrokerError(
            f"broker {self.name} did not accept connections on {where} within "
            f"{timeout_s} s:\n{self.run_log_tail()}"
        )

    def _limit_open_files(self) -> None:
        """In the child before exec: a hard limit the broker cannot raise itself past."""
        if self.open_files_limit is not None:
            limit = self.open_files_limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def stop(
        self,
        timeout_s: float = STOP_TIMEOUT_S,
        expect_clean_exit: bool = True,
        sig: int = signal.SIGTERM,
    ) -> int:
        """SIGTERM (or `sig`), then waits for a graceful exit; returns the exit code."""
        assert self.process is not None, "never started"
        self._expect_exit = True
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise BrokerError(
                    f"broker {self.name} did not exit within {timeout_s} s of signal {sig}:\n"
                    f"{self.run_log_tail()}"
                )
        code = self.process.returncode
        if expect_clean_exit and code != 0:
            raise BrokerError(
                f"broker {self.name} exited with {code} after signal {sig} (expected 0):\n"
                f"{self.run_log_tail()}"
            )
        return code

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        assert self.process is not None, "never started"
        self._expect_exit = True
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> "Broker":
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def assert_running(self) -> None:
        if not self.running:
            code = None if self.process is None else self.process.returncode
            raise BrokerError(f"broker {self.name} is not running (exit code {code}):\n{self.run_log_tail()}")

    def died_unexpectedly(self) -> bool:
        return self.process is not None and self.process.poll() is not None and not self._expect_exit

    # -- logs ----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def run_log(self) -> str:
        """What the current (or last) run of the process has written."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.run_log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def run_log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.run_log().splitlines()[-lines:])

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # -- files ---------------------------------------------------------------------------

    def partition_dir(self, topic: str, partition: int) -> pathlib.Path:
        return self.data_dir / f"{topic}-{partition}"

    def segment_files(self, topic: str, partition: int, suffix: str = ".log") -> list[pathlib.Path]:
        """The partition's segment files, in base-offset order."""
        directory = self.partition_dir(topic, partition)
        if not directory.is_dir():
            return []
        files = [p for p in directory.iterdir() if p.name.endswith(suffix) and p.name[:20].isdigit()]
        return sorted(files, key=lambda p: int(p.name[:20]))
