"""The web console, driven in a real browser (Debian's chromium through chromedriver, with
Selenium) against the real binary, its outcomes checked with real Kafka clients.

Every page must load without a JavaScript error (the browser's log has no SEVERE entry); what
the console does must be what a Kafka client sees: a topic created with confluent-kafka shows in
its list and search, a message produced from its form is consumed with exactly that key, value
and headers, its browser finds a record by key, a group's lag on its page equals the CLI's, a
config edited there is what describe_configs returns, and a topic it creates and deletes is
created and deleted. Screenshots of every page go to $STROM_SCREENSHOTS (default
target/console-screenshots); with STROM_UPDATE_SCREENSHOT=1 the overview's is copied to
docs/console-overview.png (the README's picture).

The console's pages mark `<main data-state="ready">` once their data is shown; the tests wait
for that (or for the element they need), never for a fixed time.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource

from strom_broker import STROM_BIN
from kafka_helpers import (
    consumer,
    create_topic,
    describe_configs,
    flush,
    list_topic_names,
    producer,
    unique,
    wait_until,
)

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = pathlib.Path(os.environ.get("STROM_SCREENSHOTS", REPO_ROOT / "target" / "console-screenshots"))
OVERVIEW_DOC = REPO_ROOT / "docs" / "console-overview.png"
WAIT_S = 30
CLI_TIMEOUT_S = 60


def browser_installed() -> bool:
    """chromium and chromedriver are there, or apt could install them (scripts/test does)."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=900,
        )
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


@pytest.fixture(scope="module")
def console_broker(start_module_broker):
    return start_module_broker(settings={"group.initial.rebalance.delay.ms": 0})


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if not browser_installed():
        pytest.skip(f"{CHROMIUM} and {CHROMEDRIVER} are missing and could not be installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(WAIT_S)
    yield browser
    browser.quit()


# -- helpers --------------------------------------------------------------------------------


def wait(driver, condition, message: str):
    """Waits for condition(driver); elements a page redraws meanwhile are looked up again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)


def open_page(driver, broker, route: str) -> None:
    """Opens a route of the console and waits until its page has shown its data."""
    driver.get(f"{broker.admin_url}/#{route}")
    wait_ready(driver, route)


def wait_ready(driver, route: str) -> None:
    def settled(d):
        state = d.find_element(By.ID, "main").get_attribute("data-state")
        if state == "error":
            raise AssertionError(f"{route}: {d.find_element(By.ID, 'main').text}")
        return state == "ready"

    wait(driver, settled, f"page {route} did not finish loading")


def severe_entries(driver) -> list:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fill(driver, element_id: str, text: str) -> None:
    box = driver.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def screenshot(driver, name: str) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def strom_cli(*args: str, bootstrap: str) -> str:
    result = subprocess.run(
        [STROM_BIN, *args, "--bootstrap", bootstrap],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert result.returncode == 0, f"strom {' '.join(args)}: {result.stderr}"
    return result.stdout


def cli_lag(output: str) -> dict[int, int]:
    """{partition: lag} from the partition table of `strom group describe`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["TOPIC"])
    header = lines[start].split()
    lags = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        row = dict(zip(header, line.split(None, len(header) - 1)))
        lags[int(row["PARTITION"])] = int(row["LAG"])
    return lags


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """A consumer of `group` commits these offsets and leaves, so the group is Empty."""
    member = consumer(bootstrap, **{"group.id": group})
    try:
        member.commit(
            offsets=[TopicPartition(topic, partition, offset) for partition, offset in offsets.items()],
            asynchronous=False,
        )
    finally:
        member.close()


def api(broker, method: str, path: str, body=None) -> tuple[int, dict]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"{broker.admin_url}/api{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- tests ----------------------------------------------------------------------------------


def test_every_page_loads_without_a_javascript_error(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-pages")
    group = unique("console-pages-group")
    create_topic(bootstrap, topic, partitions=3)
    p = producer(bootstrap)
    for i in range(300):
        p.produce(topic, key=f"key-{i}", value=json.dumps({"n": i, "note": "hello"}), partition=i % 3,
                  headers=[("source", b"console-test")])
    flush(p)
    commit_offsets(bootstrap, group, topic, {0: 40, 1: 70, 2: 100})
    driver.get_log("browser")  # start from an empty log

    # The overview first, with traffic flowing so its charts have a line to draw.
    open_page(driver, console_broker, "/")
    reader = consumer(bootstrap)
    reader.assign([TopicPartition(topic, partition, 0) for partition in range(3)])
    try:
        for round_ in range(6):
            for i in range(100 + 50 * round_):
                p.produce(topic, value=b"x" * (100 + round_ * 100), partition=i % 3)
            flush(p)
            reader.consume(num_messages=150 * (round_ + 1), timeout=0.5)
            time.sleep(2.1)  # the page polls every 2 s: let it take a few samples
    finally:
        reader.close()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#charts path.line"), "no throughput line drawn")
    assert driver.find_element(By.ID, "brokers-table").text.count("active") == 1
    health = driver.find_element(By.ID, "partition-health").text
    assert "OFFLINE\n0" in health.upper(), health
    shot = screenshot(driver, "overview")
    if os.environ.get("STROM_UPDATE_SCREENSHOT") == "1":
        # The README's picture, refreshed on request only: a run must not change the checkout.
        OVERVIEW_DOC.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, OVERVIEW_DOC)
    assert severe_entries(driver) == []

    pages = {
        "topics": "/topics",
        "topic": f"/topics/{topic}",
        "messages": f"/topics/{topic}/messages",
        "produce": f"/topics/{topic}/produce",
        "groups": "/groups",
        "group": f"/groups/{group}",
        "security": "/security",
        "loggers": "/loggers",
    }
    for name, route in pages.items():
        open_page(driver, console_broker, route)
        if name == "messages":
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages-table tr.message"), "no messages")
        screenshot(driver, name)
        errors = severe_entries(driver)
        assert errors == [], f"JavaScript errors on {route}: {errors}"


def test_created_topic_shows_in_the_list_and_its_search(console_broker, driver):
    bootstrap = console_broker.bootstrap
    wanted = unique("console-search-target")
    other = unique("console-search-other")
    create_topic(bootstrap, wanted)
    create_topic(bootstrap, other)

    open_page(driver, console_broker, "/topics")
    rows = lambda d: {r.get_attribute("data-topic") for r in d.find_elements(By.CSS_SELECTOR, "#topics-table tbody tr")}
    assert {wanted, other} <= rows(driver)

    needle = wanted.split("-")[-1]  # its unique suffix
    fill(driver, "topic-search", needle)
    wait(driver, lambda d: d.find_element(By.ID, "topic-list").get_attribute("data-search") == needle, "search not applied")
    assert rows(driver) == {wanted}
    assert severe_entries(driver) == []


def test_message_produced_from_the_form_is_consumed_as_given(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-produce")
    create_topic(bootstrap, topic, partitions=3)

    open_page(driver, console_broker, f"/topics/{topic}/produce")
    Select(driver.find_element(By.ID, "produce-partition")).select_by_value("2")
    fill(driver, "produce-key", "order-7")
    fill(driver, "produce-value", '{"total": 42, "currency": "EUR"}')
    driver.find_element(By.ID, "add-header").click()
    driver.find_element(By.ID, "add-header").click()
    rows = driver.find_elements(By.CSS_SELECTOR, "#produce-headers .header-row")
    assert len(rows) == 2
    for row, (name, value) in zip(rows, [("trace-id", "abc-123"), ("origin", "console")]):
        row.find_element(By.CLASS_NAME, "header-key").send_keys(name)
        row.find_element(By.CLASS_NAME, "header-value").send_keys(value)
    driver.find_element(By.ID, "produce-send").click()
    produced = wait(driver, lambda d: d.find_elements(By.ID, "produced"), "no produce answer")[0]
    assert produced.get_attribute("data-partition") == "2"
    offset = int(produced.get_attribute("data-offset"))

    reader = consumer(bootstrap)
    try:
        reader.assign([TopicPartition(topic, 2, offset)])
        message = wait_until(lambda: reader.poll(1.0), 30, "the console's message was not consumed")
    finally:
        reader.close()
    assert message.error() is None, message.error()
    assert (message.partition(), message.offset()) == (2, offset)
    assert message.key() == b"order-7"
    assert message.value() == b'{"total": 42, "currency": "EUR"}'
    assert message.headers() == [("trace-id", b"abc-123"), ("origin", b"console")]


def test_message_browser_finds_a_record_by_key(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-browse")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for i in range(400):
        key = "needle-317" if i == 317 else f"hay-{i}"
        p.produce(topic, key=key, value=f"value of {key}", partition=1)
    flush(p)

    open_page(driver, console_broker, f"/topics/{topic}/messages")
    Select(driver.find_element(By.ID, "browse-partition")).select_by_value("1")
    fill(driver, "filter-key", "needle")
    driver.find_element(By.ID, "browse-search").click()

    def found(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#messages-table tr.message")
        return rows if len(rows) == 1 else None

    [row] = wait(driver, found, "the browser did not narrow the records to the one key")
    assert row.get_attribute("data-offset") == "317"
    assert "needle-317" in row.text and "value of needle-317" in row.text
    status = driver.find_element(By.ID, "browse-status").text
    assert "1 shown of 400 read" in status, status
    assert severe_entries(driver) == []


def test_message_browser_decodes_avro_json_and_protobuf_through_the_registry(console_broker, driver):
    """Records written by confluent-kafka's Avro, JSON Schema and Protobuf serializers show
    decoded, with their format and schema id, and the schema opens beside them."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    bootstrap = console_broker.bootstrap
    topic = unique("console-decoded")
    create_topic(bootstrap, topic, partitions=1)
    registry = SchemaRegistryClient({"url": console_broker.registry_url})
    avro = AvroSerializer(registry, '{"type": "record", "name": "Reading", "fields": ['
                                    '{"name": "sensor", "type": "string"}, {"name": "celsius", "type": "double"}]}',
                          conf={"subject.name.strategy": lambda ctx, name: f"{topic}-avro"})
    json_schema = JSONSerializer('{"type": "object", "properties": {"city": {"type": "string"}}}', registry,
                                 conf={"subject.name.strategy": lambda ctx, name: f"{topic}-json"})
    file = descriptor_pb2.FileDescriptorProto(name="console_order.proto", package="console", syntax="proto3")
    message = file.message_type.add(name="Order")
    message.field.add(name="item", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    order = message_factory.GetMessageClass(pool.FindMessageTypeByName("console.Order"))
    protobuf = ProtobufSerializer(order, registry, {"use.deprecated.format": False,
                                                    "subject.name.strategy": lambda ctx, name: f"{topic}-pb"})
    context = SerializationContext(topic, MessageField.VALUE)
    p = producer(bootstrap)
    p.produce(topic, key="avro", value=avro({"sensor": "s-17", "celsius": 21.5}, context), partition=0)
    p.produce(topic, key="json", value=json_schema({"city": "Utrecht"}, context), partition=0)
    p.produce(topic, key="pb", value=protobuf(order(item="kettle-42"), context), partition=0)
    flush(p)

    open_page(driver, console_broker, f"/topics/{topic}/messages")
    rows = wait(driver, lambda d: (r := d.find_elements(By.CSS_SELECTOR, "#messages-table tr.message")) and len(r) == 3 and r,
                "the three records did not show")
    texts = [row.text for row in rows]
    assert "AVRO" in texts[0] and '"sensor": "s-17"' in texts[0] and "21.5" in texts[0], texts[0]
    assert "JSON" in texts[1] and '"city": "Utrecht"' in texts[1], texts[1]
    assert "PROTOBUF" in texts[2] and '"item": "kettle-42"' in texts[2], texts[2]
    details = rows[0].find_element(By.CSS_SELECTOR, "details.schema")
    details.find_element(By.TAG_NAME, "summary").click()
    wait(driver, lambda d: "celsius" in details.find_element(By.CSS_SELECTOR, "pre.schema").text,
         "the Avro schema did not open beside the record")
    screenshot(driver, "messages-decoded")
    assert severe_entries(driver) == []


def test_group_lag_on_the_page_equals_the_clis(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-lag")
    group = unique("console-lag-group")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for i in range(50):
        p.produce(topic, value=f"{i}", partition=0)
    for i in range(30):
        p.produce(topic, value=f"{i}", partition=1)
    flush(p)
    commit_offsets(bootstrap, group, topic, {0: 20, 1: 25})

    expected = cli_lag(strom_cli("group", "describe", group, bootstrap=bootstrap))
    assert expected == {0: 30, 1: 5}

    open_page(driver, console_broker, f"/groups/{group}")
    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#offsets-table tbody tr"):
        assert row.get_attribute("data-topic") == topic
        shown[int(row.get_attribute("data-partition"))] = int(row.find_element(By.CLASS_NAME, "lag").text)
    assert shown == expected
    assert driver.find_element(By.ID, "total-lag").text == "35"
    assert driver.find_element(By.ID, "group-state").text == "Empty"


def test_config_edited_in_the_console_is_what_describe_configs_returns(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-config")
    create_topic(bootstrap, topic)

    open_page(driver, console_broker, f"/topics/{topic}")
    fill(driver, "config-key", "retention.ms")
    fill(driver, "config-value", "123456789")
    driver.find_element(By.ID, "config-save").click()
    wait(driver, lambda d: d.find_elements(By.ID, "config-saved"), "the config was not saved")
    row = driver.find_element(By.CSS_SELECTOR, '#configs-table tr[data-config="retention.ms"]')
    assert "123456789" in row.text and "DYNAMIC_TOPIC_CONFIG" in row.text

    configs = describe_configs(bootstrap, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["retention.ms"].value == "123456789"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG


def test_topic_created_and_deleted_from_the_console(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-made")

    open_page(driver, console_broker, "/topics")
    fill(driver, "new-topic-name", topic)
    fill(driver, "new-topic-partitions", "3")
    fill(driver, "new-topic-configs", "cleanup.policy=compact")
    driver.find_element(By.CSS_SELECTOR, "#create-topic-form button[type=submit]").click()
    wait(driver, lambda d: d.current_url.endswith(f"#/topics/{topic}"), "the console did not open the new topic")
    wait_ready(driver, f"/topics/{topic}")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#partitions-table tbody tr")) == 3
    assert topic in list_topic_names(bootstrap)
    configs = describe_configs(bootstrap, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["cleanup.policy"].value == "compact"

    driver.find_element(By.ID, "delete-topic").click()
    wait(driver, expected_conditions.alert_is_present(), "no confirmation asked")
    driver.switch_to.alert.accept()
    wait(driver, lambda d: d.current_url.endswith("#/topics"), "the console did not return to the topic list")
    wait_until(lambda: topic not in list_topic_names(bootstrap), 30, f"topic {topic} still exists")
    wait_ready(driver, "/topics")
    rows = {r.get_attribute("data-topic") for r in driver.find_elements(By.CSS_SELECTOR, "#topics-table tbody tr")}
    assert topic not in rows


def test_api_errors_are_json_and_say_what_is_wrong(console_broker):
    status, answer = api(console_broker, "POST", "/topics", b"{not json")
    assert status == 400 and "body" in answer["error"]
    status, answer = api(console_broker, "GET", "/topics/no-such-topic-here")
    assert status == 404 and "no-such-topic-here" in answer["error"]
    status, answer = api(console_broker, "GET", "/topics/no-such-topic-here/messages")
    assert status == 404
    assert "no-such-topic-here" not in list_topic_names(console_broker.bootstrap)  # not auto-created
    topic = unique("console-api")
    create_topic(console_broker.bootstrap, topic)
    status, answer = api(console_broker, "PUT", f"/topics/{topic}/configs", {"retention.ms": "soon"})
    assert status == 400 and "retention.ms" in answer["error"], answer
    status, answer = api(console_broker, "GET", f"/topics/{topic}/messages?limit=501")
    assert status == 400 and "500" in answer["error"]
    status, answer = api(console_broker, "POST", "/groups/nobody/reset-offsets", {"topic": topic, "to": "sideways"})
    assert status == 400 and "sideways" in answer["error"]
    status, answer = api(console_broker, "PUT", "/loggers", {"no_such_crate": "DEBUG"})
    assert status == 400 and "no_such_crate" in answer["error"]
    with urllib.request.urlopen(f"{console_broker.admin_url}/assets/app.js", timeout=WAIT_S) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
    again = urllib.request.Request(f"{console_broker.admin_url}/assets/app.js", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as unchanged:
        urllib.request.urlopen(again, timeout=WAIT_S)
    assert unchanged.value.code == 304
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{console_broker.admin_url}/assets/nothing.js", timeout=WAIT_S)
    assert missing.value.code == 404


def test_group_offsets_reset_from_the_page_and_deleted(console_broker, driver):
    bootstrap = console_broker.bootstrap
    topic = unique("console-reset")
    group = unique("console-reset-group")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for i in range(40):
        p.produce(topic, value=f"{i}", partition=i % 2)
    flush(p)
    commit_offsets(bootstrap, group, topic, {0: 5, 1: 7})

    # While a consumer is a member, Kafka's rule refuses the reset.
    member = consumer(bootstrap, **{"group.id": group, "session.timeout.ms": 6000})
    member.subscribe([topic])
    try:
        wait_until(lambda: member.poll(0.5) is not None or member.assignment(), 30, "the consumer joined no group")
        status, answer = api(console_broker, "POST", f"/groups/{group}/reset-offsets", {"topic": topic, "to": "earliest"})
        assert status == 409 and "member" in answer["error"], answer
    finally:
        member.close()

    open_page(driver, console_broker, f"/groups/{group}")
    wait(driver, lambda d: d.find_element(By.ID, "group-state").text == "Empty" or d.refresh(), "group not empty")
    fill(driver, "reset-topic", topic)
    Select(driver.find_element(By.ID, "reset-to")).select_by_value("offset")
    fill(driver, "reset-offset", "3")
    driver.find_element(By.CSS_SELECTOR, "#reset-form button[type=submit]").click()
    wait(driver, lambda d: d.find_element(By.ID, "total-lag").text == "34", "lag after the reset is not 17 + 17")

    reader = consumer(bootstrap, **{"group.id": group})
    try:
        committed = reader.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20)
    finally:
        reader.close()
    assert [(c.partition, c.offset) for c in committed] == [(0, 3), (1, 3)]

    driver.find_element(By.ID, "delete-group").click()
    wait(driver, expected_conditions.alert_is_present(), "no confirmation asked")
    driver.switch_to.alert.accept()
    wait(driver, lambda d: d.current_url.endswith("#/groups"), "the console did not return to the group list")
    status, answer = api(console_broker, "GET", "/groups")
    assert group not in {g["group_id"] for g in answer["groups"]}
    assert api(console_broker, "GET", f"/groups/{group}")[0] == 404


def test_users_acls_and_loggers_through_the_api(console_broker):
    user = unique("console-user")
    status, _ = api(console_broker, "POST", "/users", {"user": user, "password": "s3cret", "mechanism": "SCRAM-SHA-512"})
    assert status == 201
    users = {u["user"]: u for u in api(console_broker, "GET", "/users")[1]["users"]}
    assert users[user]["credentials"] == [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]
    assert api(console_broker, "DELETE", f"/users/{user}")[0] == 200
    assert user not in {u["user"] for u in api(console_broker, "GET", "/users")[1]["users"]}

    binding = {"resource_type": "TOPIC", "resource_name": "orders", "pattern_type": "PREFIXED",
               "principal": f"User:{user}", "host": "*", "operation": "READ", "permission": "ALLOW"}
    assert api(console_broker, "POST", "/acls", binding)[0] == 201
    assert binding in api(console_broker, "GET", "/acls")[1]["acls"]
    status, answer = api(console_broker, "DELETE", "/acls", binding)
    assert status == 200 and answer["deleted"] == [binding]
    assert binding not in api(console_broker, "GET", "/acls")[1]["acls"]
    status, answer = api(console_broker, "POST", "/acls", dict(binding, operation="SIDEWAYS"))
    assert status == 400 and "SIDEWAYS" in answer["error"]

    status, answer = api(console_broker, "PUT", "/loggers", {"strom_broker::handlers": "DEBUG"})
    assert status == 200
    levels = {l["logger"]: l["level"] for l in answer["loggers"]}
    assert levels["strom_broker::handlers"] == "DEBUG"
    status, answer = api(console_broker, "PUT", "/loggers", {"strom_broker::handlers": None})
    assert "strom_broker::handlers" not in {l["logger"] for l in answer["loggers"]}
