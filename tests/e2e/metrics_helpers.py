"""Reading a Strom node's admin listener: /metrics in Prometheus' text format, health.

`scrape(url)` returns a Metrics: every sample by name, each with its labels, so a test can ask
`metrics.value("strom_topic_records_in_total", topic="t")` or sum a family over some labels.
The parser takes the text format's sample lines (`name{label="value",...} number`), with
label values unescaped; comments (# HELP, # TYPE) are kept for checks on types.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Metrics:
    def __init__(self, text: str):
        self.text = text
        self.samples: list[Sample] = []
        self.types: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3]
                continue
            match = SAMPLE.match(line)
            assert match, f"not a Prometheus sample line: {line!r}"
            labels = {k: _unescape(v) for k, v in LABEL.findall(match.group(3) or "")}
            self.samples.append(Sample(match.group(1), labels, float(match.group(4))))

    def series(self, name: str, **labels) -> list[Sample]:
        return [
            s for s in self.samples
            if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items())
        ]

    def value(self, name: str, **labels) -> float | None:
        """The one sample of `name` with exactly these labels among its labels; None if absent."""
        found = self.series(name, **labels)
        assert len(found) <= 1, f"{len(found)} series of {name} match {labels}: {found}"
        return found[0].value if found else None

    def total(self, name: str, **labels) -> float:
        """The sum of every sample of `name` matching `labels` (0 when none)."""
        return sum(s.value for s in self.series(name, **labels))

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def get(url: str, timeout_s: float = 10.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(admin_url: str) -> Metrics:
    status, body = get(f"{admin_url}/metrics")
    assert status == 200, f"GET /metrics answered {status}: {body[:500]}"
    return Metrics(body)


def ready(admin_url: str) -> tuple[int, dict]:
    status, body = get(f"{admin_url}/v1/health/ready")
    return status, json.loads(body)
