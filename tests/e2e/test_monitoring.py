"""Monitoring (issue 14): the alert rules and the Grafana dashboard in deploy/, checked against the
metric names Strom promises and against the /metrics a real broker serves.

Without a broker: `promtool check rules` and `promtool test rules` on deploy/prometheus, and the
dashboard's JSON (structure, template variables, every query parses as PromQL and names only
metrics of the contract below).

With brokers (`strom server --admin-listen`, which the harness passes to every broker; these tests
skip while `strom server --help` has no such flag): one broker's /metrics passes
`promtool check metrics` and has every family of the contract with its type; and a real
Prometheus (Debian's package) scraping a 3-node cluster every second, after a produce/consume
workload with a committing consumer group, answers every dashboard query and every alert rule,
has a series for every metric they name, and raises no alert for the healthy cluster.

promtool and prometheus come from Debian's `prometheus` package, which scripts/test installs:
a missing tool fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cluster import Cluster
from group_helpers import NO_REBALANCE_DELAY, Member
from kafka_helpers import create_topic, produce_all, producer, round_trip, unique, wait_until
from strom_broker import STROM_BIN, free_port

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "strom-dashboard.json"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "strom-alerts.yml"
ALERT_RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "strom-alerts.test.yml"
EXAMPLE_PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# The metric contract of issue 14: family -> Prometheus type. The dashboard and the alert rules may
# name nothing else, and a broker exports every one of them.
CONTRACT: dict[str, str] = {
    "strom_requests_total": "counter",
    "strom_topic_records_in_total": "counter",
    "strom_topic_bytes_in_total": "counter",
    "strom_topic_bytes_out_total": "counter",
    "strom_replication_bytes_out_total": "counter",
    "strom_isr_shrinks_total": "counter",
    "strom_isr_expands_total": "counter",
    "strom_leader_elections_total": "counter",
    "strom_unclean_leader_elections_total": "counter",
    "strom_request_latency_seconds": "histogram",
    "strom_log_flush_latency_seconds": "histogram",
    "strom_partitions_under_replicated": "gauge",
    "strom_partitions_under_min_isr": "gauge",
    "strom_partitions_offline": "gauge",
    "strom_partitions_leader": "gauge",
    "strom_controller_active": "gauge",
    "strom_metadata_log_end_offset": "gauge",
    "strom_log_size_bytes": "gauge",
    "strom_disk_free_bytes": "gauge",
    "strom_connections": "gauge",
    "strom_consumer_group_lag": "gauge",
    "strom_consumer_group_members": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "process_threads": "gauge",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# The series names a query may use: a histogram family only through its three series.
SERIES_NAMES: dict[str, str] = {}
for _family, _kind in CONTRACT.items():
    if _kind == "histogram":
        SERIES_NAMES.update({_family + suffix: _family for suffix in HISTOGRAM_SUFFIXES})
    else:
        SERIES_NAMES[_family] = _family

# Every identifier that looks like one of Strom's or the process's metrics; the look-behind keeps
# names inside longer identifiers (and label values such as job="strom") out.
METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:])(?:strom|process)_[A-Za-z0-9_:]*")

# Grafana's built-in interval variables and what the queries get instead (Prometheus scrapes every
# second in the cluster test, so 30 s windows hold plenty of samples).
BUILTIN_VARIABLES = {
    "__rate_interval": "30s",
    "__interval": "30s",
    "__range": "5m",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")

ALERT_NAMES = {
    "StromPartitionsOffline",
    "StromUnderReplicatedPartitions",
    "StromUnderMinIsrPartitions",
    "StromNoActiveController",
    "StromControllerMetricAbsent",
    "StromDiskFilling",
    "StromDiskAlmostFull",
    "StromConsumerLagGrowing",
    "StromUncleanLeaderElection",
    "StromBrokerDown",
}
# Alerts that depend on the test machine's own disk rather than on Strom: a healthy cluster on a
# nearly full disk, or on a disk that other processes fill, may rightly raise them.
MACHINE_DEPENDENT_ALERTS = {"StromDiskFilling", "StromDiskAlmostFull"}


def run(argv: list[str], stdin: bytes | None = None, cwd: pathlib.Path | None = None, timeout_s: float = 60.0):
    return subprocess.run(argv, input=stdin, capture_output=True, cwd=cwd, timeout=timeout_s)


def output_of(result: subprocess.CompletedProcess) -> str:
    return (result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")).strip()


# -- the dashboard, read as Grafana reads it -------------------------------------------------


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    """Every panel, rows included, with the panels of collapsed rows (kept inside the row)."""
    found = []
    for panel in panels:
        found.append(panel)
        found += all_panels(panel.get("panels", []))
    return found


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) for every panel query."""
    return [
        (f"panel {p['id']} {p['title']!r} query {t.get('refId')}", t["expr"])
        for p in data_panels(dashboard)
        for t in p.get("targets", [])
        if "expr" in t
    ]


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def label_values_query(variable: dict) -> tuple[str | None, str]:
    """(series selector or None, label) of a `label_values(...)` variable query."""
    match = LABEL_VALUES.match(variable_query(variable).strip())
    assert match, f"variable {variable['name']}: not a label_values(...) query: {variable_query(variable)!r}"
    return match.group(1), match.group(2)


def substitute(expr: str, dashboard: dict) -> str:
    """The query Prometheus would get from Grafana with every dashboard variable set to All (its
    allValue `.*`, matched with =~) and the interval variables as in BUILTIN_VARIABLES."""
    names = variables(dashboard)

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        assert name in names, f"{expr!r} uses ${name}, which is no variable of the dashboard"
        return names[name].get("allValue") or ".*"

    return VARIABLE.sub(value, expr)


def names_in(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def dashboard_series_names(dashboard: dict) -> set[str]:
    names = set()
    for _, expr in dashboard_queries(dashboard):
        names |= names_in(expr)
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            names |= names_in(variable_query(variable))
    return names


# -- the alert rules, as promtool reads them -----------------------------------------------------


def check_rules_file(path: pathlib.Path) -> subprocess.CompletedProcess:
    return run([PROMTOOL, "check", "rules", str(path)])


# -- pure checks: no broker -------------------------------------------------------------------


def test_alert_rules_pass_promtool_check_rules():
    result = check_rules_file(ALERT_RULES)
    assert result.returncode == 0, output_of(result)
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in output_of(result), output_of(result)


def test_alert_rules_fire_when_their_promtool_unit_tests_expect():
    # promtool resolves rule_files relative to the test file's directory.
    result = run([PROMTOOL, "test", "rules", ALERT_RULE_TESTS.name], cwd=ALERT_RULE_TESTS.parent)
    assert result.returncode == 0, output_of(result)


def test_alert_rules_name_only_contract_metrics():
    text = ALERT_RULES.read_text()
    unknown = sorted(name for name in names_in(text) if name not in SERIES_NAMES)
    assert not unknown, f"the alert rules name metrics outside the contract: {unknown}"
    alerts = set(re.findall(r"^\s*- alert: (\w+)\s*$", text, re.M))
    assert alerts == ALERT_NAMES, f"alerts in {ALERT_RULES.name}: {sorted(alerts)}"


def test_example_prometheus_config_passes_promtool_check_config():
    result = run([PROMTOOL, "check", "config", str(EXAMPLE_PROMETHEUS_CONFIG)])
    assert result.returncode == 0, output_of(result)
    assert 'job_name: strom' in EXAMPLE_PROMETHEUS_CONFIG.read_text()


def test_dashboard_is_provisioning_ready_with_a_templated_datasource():
    dashboard = load_dashboard()
    text = DASHBOARD.read_text()
    # Provisioning loads the file as it is: no import-time inputs to fill in.
    assert "__inputs" not in dashboard and "${DS_" not in text
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    found = variables(dashboard)
    assert found["datasource"]["type"] == "datasource" and found["datasource"]["query"] == "prometheus"
    assert label_values_query(found["instance"]) == ("strom_controller_active", "instance")
    assert label_values_query(found["group"]) == ("strom_consumer_group_lag", "group")
    for variable in found.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, variable["name"]
            # Substituting `.*` for All is only right because every variable is used with =~.
            assert variable.get("allValue") == ".*", variable["name"]

    panels = all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    for panel in data_panels(dashboard):
        where = f"panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        targets = panel.get("targets", [])
        assert targets, f"{where} has no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{where}: refIds repeat: {ref_ids}"
        for t in targets:
            assert t.get("expr", "").strip(), f"{where} query {t['refId']} has no expr"
            assert t["datasource"] == panel["datasource"], f"{where} query {t['refId']}"

    # Every panel fits the 24-column grid and none covers another.
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, f"panel {panel['id']} {g}"
        if panel.get("collapsed"):
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    pytest.fail(f"panel {panel['id']} overlaps {cells[(x, y)]} at {(x, y)}")
                cells[(x, y)] = f"panel {panel['id']}"


def test_dashboard_uses_multi_value_variables_only_with_regex_matchers():
    dashboard = load_dashboard()
    for where, expr in dashboard_queries(dashboard):
        for name in variables(dashboard):
            assert not re.search(rf'(?<![=!])(?:=|!=)\s*"\$\{{?{name}\b', expr), (
                f"{where}: ${name} can hold several values (or All) and needs =~ or !~: {expr}"
            )


def test_dashboard_names_only_contract_metrics():
    dashboard = load_dashboard()
    unknown = []
    for where, expr in dashboard_queries(dashboard):
        for name in sorted(names_in(expr)):
            if name not in SERIES_NAMES:
                family = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
                hint = " (a histogram is queried through _bucket, _sum or _count)" if name in CONTRACT else ""
                unknown.append(f"{where}: {name}{hint}" + ("" if family in CONTRACT else " (no such family)"))
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            unknown += [f"variable {variable['name']}: {n}" for n in names_in(variable_query(variable)) if n not in SERIES_NAMES]
    assert not unknown, "names outside the metric contract:\n" + "\n".join(unknown)


def test_dashboard_shows_every_contract_family():
    families = {SERIES_NAMES[name] for name in dashboard_series_names(load_dashboard()) if name in SERIES_NAMES}
    missing = sorted(set(CONTRACT) - families)
    assert not missing, f"contract metrics the dashboard never shows: {missing}"


def test_dashboard_queries_parse_as_promql(tmp_path):
    # promtool parses PromQL only inside rule files: every query becomes a recording rule. (A rule
    # file in JSON is YAML too.)
    dashboard = load_dashboard()
    queries = dashboard_queries(dashboard)
    rules = [{"record": f"dashboard:query_{i}", "expr": substitute(expr, dashboard)} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1))
    result = check_rules_file(path)
    if result.returncode != 0:
        where = {f"dashboard:query_{i}": f"{w}: {e}" for i, (w, e) in enumerate(queries)}
        named = re.sub(r"dashboard:query_\d+", lambda m: where.get(m.group(0), m.group(0)), output_of(result))
        pytest.fail(f"promtool check rules on the dashboard's queries:\n{named}")
    assert f"SUCCESS: {len(rules)} rules found" in output_of(result)


# -- with brokers ------------------------------------------------------------------------------


def admin_listen_available() -> bool:
    try:
        result = subprocess.run([STROM_BIN, "server", "--help"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "--admin-listen" in result.stdout


requires_admin_listener = pytest.mark.skipif(
    not admin_listen_available(),
    reason="the admin listener is not implemented yet (`strom server --help` has no --admin-listen)",
)


def http_get(url: str, timeout_s: float = 10.0) -> tuple[int, str, bytes]:
    """(status, content type, body); an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def scrape(admin_url: str) -> str:
    status, content_type, body = http_get(f"{admin_url}/metrics")
    assert status == 200, f"GET {admin_url}/metrics: {status} {body[:500]!r}"
    assert content_type.startswith("text/plain"), f"GET {admin_url}/metrics: Content-Type {content_type!r}"
    return body.decode()


def exposition_types(text: str) -> dict[str, str]:
    """{family: type} from the `# TYPE` lines of a text exposition."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def exposition_series_names(text: str) -> set[str]:
    return {m for m in re.findall(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", text, re.M)}


def group_workload(bootstrap: str, topic: str, group: str, records: int) -> Member:
    """Produces `records` to `topic`, then starts a group member that reads and commits each of
    them; returns it, still polling, once it has read them all (the caller stops it). The group's
    coordinator then has committed offsets and a member to export as lag and member count."""
    produce_all(producer(bootstrap), topic, [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(records)])
    member = Member(bootstrap, group, [topic], name=group, commit_each=True).start()
    try:
        wait_until(lambda: len(member.snapshot()[0]) >= records, 60, f"{group} reading {records} records of {topic}")
        assert not member.commit_errors, member.commit_errors
    except BaseException:
        member.stop()
        raise
    return member


@requires_admin_listener
def test_metrics_endpoint_passes_promtool_check_metrics(start_broker):
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    round_trip(broker.bootstrap)
    text = scrape(broker.admin_url)
    result = run([PROMTOOL, "check", "metrics"], stdin=text.encode())
    problems = [line for line in result.stderr.decode().splitlines() if line.strip()]
    # promtool (2.42) exits 1 on text it cannot parse ("error while linting: ..."), 3 on lint
    # problems (one line each on stderr: "NAME no help text", "NAME counter metrics should have
    # \"_total\" suffix", non-base units, ...) and 0 on clean input. metrics-exporter-prometheus
    # writes # HELP only for metrics given a description; Strom describes every family (promtool
    # exits 0), so "no help text" would be tolerated only from an exposition with no HELP at all,
    # and once some families are described, a family left without is a failure.
    assert result.returncode in (0, 3), f"promtool check metrics exited {result.returncode}:\n{output_of(result)}"
    if "# HELP " not in text:
        problems = [p for p in problems if not p.endswith(" no help text")]
    assert not problems, "promtool check metrics lint problems:\n" + "\n".join(problems)


@requires_admin_listener
def test_metrics_endpoint_exports_every_contract_family_with_its_type(start_broker):
    # Every family is required, also those whose events have not happened (ISR shrinks, unclean
    # elections on a lone broker): a counter that first appears at 1 has no increase() in
    # Prometheus, so the alerts on it would miss its first event; counters start at 0.
    broker = start_broker(settings=NO_REBALANCE_DELAY)
    topic, group = unique("metrics"), unique("metrics-group")
    create_topic(broker.bootstrap, topic, partitions=2)
    member = group_workload(broker.bootstrap, topic, group, records=50)
    try:
        # The lag and member gauges come once the coordinator has the group's commits and member.
        def missing():
            text = scrape(broker.admin_url)
            types = exposition_types(text)
            absent = {f for f in CONTRACT if f not in types}
            wrong = {f: types[f] for f in CONTRACT if f in types and types[f] != CONTRACT[f]}
            return absent, wrong, text

        try:
            wait_until(lambda: missing()[:2] == (set(), {}), 30, "every contract family in /metrics")
        except AssertionError:
            absent, wrong, text = missing()
            pytest.fail(
                f"/metrics of one broker after a produce/consume workload with a committing group:\n"
                f"missing families: {sorted(absent)}\n"
                f"wrong types: {[f'{f} is a {kind}, the contract says {CONTRACT[f]}' for f, kind in wrong.items()]}\n"
                f"--- /metrics ---\n{text[:6000]}"
            )
        text = missing()[2]
        names = exposition_series_names(text)
        # A histogram's quantiles come from its buckets: a summary (quantile lines) or a
        # histogram without buckets would leave the dashboard's latency panels empty.
        for family, kind in CONTRACT.items():
            if kind == "histogram":
                assert {family + s for s in HISTOGRAM_SUFFIXES} <= names, f"{family} lacks _bucket/_sum/_count"
        assert f'group="{group}"' in text, f"no series labelled with the group {group}"
        assert f'topic="{topic}"' in text, f"no series labelled with the topic {topic}"
    finally:
        member.stop()


# -- a real Prometheus scraping a 3-node cluster ------------------------------------------------


class PrometheusServer:
    """/usr/bin/prometheus on a free loopback port, scraping `targets` every second as job
    "strom" and evaluating the alert rules every second; its data and log under `base`."""

    def __init__(self, base: pathlib.Path, targets: list[str]):
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "prometheus.log"
        self.config_path = base / "prometheus.yml"
        # JSON is YAML too.
        self.config_path.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERT_RULES)],
                    "scrape_configs": [{"job_name": "strom", "static_configs": [{"targets": targets}]}],
                },
                indent=1,
            )
        )
        self.targets = targets
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrometheusServer":
        assert os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} missing: scripts/test installs Debian's prometheus"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.base / 'tsdb'}",
                    "--storage.tsdb.retention.time=1h",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.base,
            )

        def ready():
            assert self.process.poll() is None, f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}"
            return http_get(f"{self.url}/-/ready", timeout_s=2)[0] == 200

        wait_until(ready, 30, f"prometheus ready on {self.url}", interval_s=0.2)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def api(self, path: str, **params) -> dict:
        """A GET of the HTTP API; the decoded answer, whatever its status ("success" or "error")."""
        query = urllib.parse.urlencode(params, doseq=True)
        status, _, body = http_get(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise AssertionError(f"GET /api/v1/{path} ({status}) answered no JSON: {body[:500]!r}") from None

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def series_names(self) -> set[str]:
        """The names of every Strom and process series Prometheus has now."""
        answer = self.query('count by (__name__) ({__name__=~"strom_.+|process_.+"})')
        assert answer["status"] == "success", answer
        return {r["metric"]["__name__"] for r in answer["data"]["result"]}

    def targets_up(self) -> bool:
        active = self.api("targets", state="active")["data"]["activeTargets"]
        return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

    def describe_targets(self) -> str:
        active = self.api("targets", state="active")["data"]["activeTargets"]
        return "; ".join(f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}" for t in active)


class ScrapedCluster:
    def __init__(self, cluster: Cluster, prometheus: PrometheusServer, topic: str, group: str):
        self.cluster = cluster
        self.prometheus = prometheus
        self.topic = topic
        self.group = group


@pytest.fixture(scope="module")
def scraped_cluster(request, tmp_path_factory):
    """A 3-node cluster with an RF=3 topic, records produced to it and a group member that has read
    and committed them (and keeps polling), scraped by a Prometheus until every target is up."""
    base = tmp_path_factory.mktemp("monitoring")
    cluster = Cluster(base / "cluster", 3, "loopback", settings=dict(NO_REBALANCE_DELAY))
    # The module's failure reports carry the nodes' logs, and a node dying fails the running test
    # (conftest's strom_brokers hooks).
    reported = getattr(request.node, "strom_brokers", None)
    if reported is None:
        reported = request.node.strom_brokers = []
    reported.extend(cluster.nodes.values())
    prometheus = None
    member = None
    try:
        cluster.start_all()
        cluster.wait_for_controller_leader()
        cluster.wait_for_brokers(3)
        topic, group = unique("monitoring"), unique("monitoring-group")
        cluster.create_topic(topic, partitions=3)
        member = group_workload(cluster.bootstrap, topic, group, records=300)
        targets = [node.admin_url.removeprefix("http://") for node in cluster.nodes.values()]
        prometheus = PrometheusServer(base, targets).start()
        try:
            wait_until(prometheus.targets_up, 30, "prometheus scraping every node successfully", interval_s=0.5)
        except AssertionError as error:
            raise AssertionError(f"{error}: {prometheus.describe_targets()}\n{prometheus.log_tail()}") from None
        yield ScrapedCluster(cluster, prometheus, topic, group)
    finally:
        if member is not None:
            member.stop()
        if prometheus is not None:
            prometheus.stop()
        problems = cluster.close()
        if problems:
            pytest.fail("cluster teardown:\n" + "\n\n".join(problems))


def wait_for_series(prometheus: PrometheusServer, wanted: set[str], what: str, timeout_s: float = 60.0) -> None:
    """Waits until Prometheus has a series of every name in `wanted`; fails naming the absent."""
    try:
        wait_until(lambda: wanted <= prometheus.series_names(), timeout_s, what, interval_s=1.0)
    except AssertionError as error:
        absent = sorted(wanted - prometheus.series_names())
        pytest.fail(f"{error}: no series in Prometheus for {absent} (scraped from every node of the cluster)")


@requires_admin_listener
@pytest.mark.timeout(300)
def test_prometheus_has_a_series_for_every_metric_the_dashboard_and_alerts_name(scraped_cluster):
    wanted = dashboard_series_names(load_dashboard()) | names_in(ALERT_RULES.read_text())
    wait_for_series(scraped_cluster.prometheus, wanted, "a series of every metric the dashboard and the alerts name")


@requires_admin_listener
@pytest.mark.timeout(300)
def test_every_dashboard_query_runs_on_prometheus_scraping_the_cluster(scraped_cluster):
    prometheus = scraped_cluster.prometheus
    dashboard = load_dashboard()
    # A rate needs two samples inside its window; without them every rate panel would answer
    # nothing. (Whether each metric has a series is the test above's.)
    nodes = len(scraped_cluster.cluster.nodes)
    wait_until(
        lambda: len(prometheus.query("rate(process_cpu_seconds_total[30s])")["data"]["result"]) == nodes,
        30, "two scrapes of every node (a rate needs two samples)", interval_s=0.5,
    )
    failures = []
    empty = []
    for where, expr in dashboard_queries(dashboard):
        query = substitute(expr, dashboard)
        answer = prometheus.query(query)
        if answer.get("status") != "success" or answer.get("warnings"):
            failures.append(f"{where}: {query}\n    {answer}")
        elif not answer["data"]["result"]:
            empty.append(f"{where}: {query}")
    assert not failures, "dashboard queries Prometheus refused:\n" + "\n".join(failures)
    # Empty answers are legitimate (no errors, no unclean election yet) and only reported.
    print("dashboard queries with no result on a healthy cluster:\n" + "\n".join(empty))


@requires_admin_listener
@pytest.mark.timeout(300)
def test_dashboard_variables_list_every_node_and_the_group(scraped_cluster):
    prometheus = scraped_cluster.prometheus
    found = variables(load_dashboard())
    nodes = {node.admin_url.removeprefix("http://") for node in scraped_cluster.cluster.nodes.values()}
    expected = {"instance": nodes, "job": {"strom"}, "group": {scraped_cluster.group}}
    for name, variable in found.items():
        if variable["type"] != "query":
            continue
        selector, label = label_values_query(variable)
        params = {"match[]": substitute(selector, load_dashboard())} if selector else {}

        def values():
            answer = prometheus.api(f"label/{label}/values", **params)
            assert answer["status"] == "success", answer
            return set(answer["data"])

        want = expected.get(name, set())
        try:
            wait_until(lambda: values() and want <= values(), 60, f"${name} values", interval_s=1.0)
        except AssertionError:
            pytest.fail(f"variable ${name} ({variable_query(variable)}) lists {sorted(values())}, expected {sorted(want)}")


@requires_admin_listener
@pytest.mark.timeout(300)
def test_every_alert_rule_runs_and_none_fires_on_a_healthy_cluster(scraped_cluster):
    prometheus = scraped_cluster.prometheus

    def rules():
        answer = prometheus.api("rules", type="alert")
        assert answer["status"] == "success", answer
        return [r for g in answer["data"]["groups"] for r in g["rules"]]

    # Prometheus evaluates the rules every second: wait until each has been evaluated once.
    wait_until(lambda: all(r["health"] != "unknown" for r in rules()), 30, "every alert rule evaluated")
    loaded = rules()
    assert {r["name"] for r in loaded} == ALERT_NAMES
    unhealthy = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in loaded if r["health"] != "ok"]
    assert not unhealthy, "alert rules Prometheus could not evaluate:\n" + "\n".join(unhealthy)
    failures = []
    for rule in loaded:
        answer = prometheus.query(rule["query"])
        if answer.get("status") != "success" or answer.get("warnings"):
            failures.append(f"{rule['name']}: {rule['query']}\n    {answer}")
    assert not failures, "alert expressions Prometheus refused:\n" + "\n".join(failures)

    # Pending or firing means the expression holds now: nothing may hold for a healthy cluster once
    # it has settled (the offsets topic's partitions come with the group and may catch up first).
    def active():
        return sorted(
            f"{r['name']} ({r['state']}): {[a['labels'] for a in r.get('alerts', [])]}"
            for r in rules()
            if r["state"] != "inactive" and r["name"] not in MACHINE_DEPENDENT_ALERTS
        )

    try:
        wait_until(lambda: not active(), 60, "no alert pending or firing", interval_s=1.0)
    except AssertionError:
        pytest.fail("alerts active on a healthy cluster:\n" + "\n".join(active()))
