"""`strom schema` against the registry of a real `strom server`: register, check compatibility,
list, get by subject and by id, configure, delete (soft, then permanently), with the exit
status telling failures apart."""

from __future__ import annotations

import json
import subprocess

from kafka_helpers import unique
from strom_broker import STROM_BIN

USER_V1 = {"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]}
USER_V2 = {"type": "record", "name": "User",
           "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int", "default": 0}]}
USER_BAD = {"type": "record", "name": "User", "fields": [{"name": "name", "type": "int"}]}


def schema_cli(broker, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([STROM_BIN, "schema", "--registry", broker.registry_url, *args],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_register_check_get_configure_and_delete_from_the_command_line(broker, tmp_path):
    subject = unique("cli-users") + "-value"
    files = {}
    for name, schema in [("v1", USER_V1), ("v2", USER_V2), ("bad", USER_BAD)]:
        files[name] = tmp_path / f"{name}.avsc"
        files[name].write_text(json.dumps(schema))

    first = json.loads(schema_cli(broker, "register", subject, "--file", str(files["v1"])).stdout)
    assert first["version"] == 1
    compatible = schema_cli(broker, "compat", subject, "--file", str(files["v2"]))
    assert compatible.stdout.startswith("compatible")
    refused = schema_cli(broker, "compat", subject, "--file", str(files["bad"]), check=False)
    assert refused.returncode == 1 and refused.stdout.startswith("incompatible")
    assert "TYPE_MISMATCH" in refused.stdout, refused.stdout
    second = json.loads(schema_cli(broker, "register", subject, "--file", str(files["v2"])).stdout)
    assert second["version"] == 2 and second["id"] != first["id"]

    assert subject in schema_cli(broker, "list").stdout.split()
    latest = schema_cli(broker, "get", subject).stdout
    assert "version: 2" in latest and '"age"' in latest
    by_id = schema_cli(broker, "get", "--id", str(first["id"])).stdout
    assert '"name": "User"' in by_id and '"age"' not in by_id
    versions = json.loads(schema_cli(broker, "get", subject, "--versions").stdout)
    assert versions == [1, 2]

    assert json.loads(schema_cli(broker, "config", subject, "--set", "NONE").stdout) == {"compatibility": "NONE"}
    assert json.loads(schema_cli(broker, "config", subject).stdout)["compatibilityLevel"] == "NONE"
    third = json.loads(schema_cli(broker, "register", subject, "--file", str(files["bad"])).stdout)
    assert third["version"] == 3

    missing = schema_cli(broker, "get", unique("no-such-subject"), check=False)
    assert missing.returncode == 1 and "40401" in missing.stderr, missing.stderr
    assert json.loads(schema_cli(broker, "delete", subject).stdout) == [1, 2, 3]
    assert subject not in schema_cli(broker, "list").stdout.split()
    assert subject in schema_cli(broker, "list", "--deleted").stdout.split()
    assert json.loads(schema_cli(broker, "delete", subject, "--permanent").stdout) == [1, 2, 3]
    assert subject not in schema_cli(broker, "list", "--deleted").stdout.split()


def test_a_bad_registry_url_or_schema_file_is_a_clear_error(broker, tmp_path):
    result = subprocess.run([STROM_BIN, "schema", "--registry", "https://example.invalid", "list"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "only http://" in result.stderr
    result = schema_cli(broker, "register", "x-value", "--file", str(tmp_path / "missing.avsc"), check=False)
    assert result.returncode == 1 and "cannot read" in result.stderr
    garbage = tmp_path / "garbage.avsc"
    garbage.write_text("{not avro")
    result = schema_cli(broker, "register", unique("garbage") + "-value", "--file", str(garbage), check=False)
    assert result.returncode == 1 and "42201" in result.stderr, result.stderr
