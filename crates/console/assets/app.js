// Strom console: a single-page application over the JSON API under /api/.
//
// Routing is by the URL's hash (#/topics/NAME/messages ...): `route()` picks a page function,
// which builds its DOM with `el()` (text only: data never goes through innerHTML) and marks
// <main data-state="ready"> once its data is shown (the end-to-end tests wait for that).
// A page may start timers (the overview polls the cluster); they are stopped on the next route.
"use strict";

const main = document.getElementById("main");
let pageTimers = [];
let routeSerial = 0;

// ---- DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(columns, rows, attrs) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.title)));
  const body = rows.map((row) =>
    el("tr", row.attrs || {}, columns.map((c) => el("td", { class: c.num ? "num" : c.mono ? "mono" : null }, c.cell(row))))
  );
  return el("table", attrs || {}, el("thead", {}, head), el("tbody", {}, body));
}

function field(label, input) {
  return el("label", { class: "field" }, label, input);
}

function errorBox(error) {
  return el("div", { class: "error-box" }, String(error && error.message ? error.message : error));
}

let toastTimer = null;
function toast(message, isError) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = "show" + (isError ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = ""; }, isError ? 6000 : 3000);
}

// ---- formatting --------------------------------------------------------------------------

function fmtNumber(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  const digits = unit === 0 && (value >= 10 || Number.isInteger(value)) ? 0 : 1;
  return value.toFixed(digits) + " " + units[unit];
}

function fmtRate(n, bytes) {
  return bytes ? fmtBytes(n) + "/s" : (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + "/s";
}

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC");
}

function dash(v) {
  return v === null || v === undefined || v === "" ? "–" : v;
}

// ---- the API -----------------------------------------------------------------------------

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch("/api" + path, options);
  } catch (error) {
    throw new Error("the console's server does not answer: " + error.message);
  }
  let answer = null;
  try { answer = await response.json(); } catch (_) { answer = null; }
  if (!response.ok) {
    const message = answer && answer.error ? answer.error : response.status + " " + response.statusText;
    throw new Error(message);
  }
  return answer;
}

const enc = encodeURIComponent;

// ---- routing -----------------------------------------------------------------------------

const routes = [
  [/^\/?$/, "overview", pageOverview],
  [/^\/topics$/, "topics", pageTopics],
  [/^\/topics\/([^/]+)$/, "topics", pageTopic],
  [/^\/topics\/([^/]+)\/messages$/, "topics", pageMessages],
  [/^\/topics\/([^/]+)\/produce$/, "topics", pageProduce],
  [/^\/groups$/, "groups", pageGroups],
  [/^\/groups\/([^/]+)$/, "groups", pageGroup],
  [/^\/security$/, "security", pageSecurity],
  [/^\/loggers$/, "loggers", pageLoggers],
];

function route() {
  for (const timer of pageTimers) clearInterval(timer);
  pageTimers = [];
  const serial = ++routeSerial;
  const hash = location.hash.replace(/^#/, "");
  const [path] = hash.split("?");
  let found = null;
  for (const [pattern, section, page] of routes) {
    const match = pattern.exec(path);
    if (match) { found = { section, page, args: match.slice(1).map(decodeURIComponent) }; break; }
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", found !== null && link.dataset.section === found.section);
  }
  main.replaceChildren();
  main.dataset.state = "loading";
  if (!found) {
    main.append(el("h1", {}, "Not found"), el("p", {}, "No page at ", el("code", {}, hash), "."));
    main.dataset.state = "ready";
    return;
  }
  main.dataset.page = found.page.name;
  Promise.resolve()
    .then(() => found.page(...found.args))
    .then(() => { if (serial === routeSerial) main.dataset.state = "ready"; })
    .catch((error) => {
      if (serial !== routeSerial) return;
      main.append(errorBox(error));
      main.dataset.state = "error";
    });
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

window.addEventListener("hashchange", route);

// ---- overview ----------------------------------------------------------------------------

const CHART_POINTS = 60;
const POLL_MS = 2000;
const throughput = { records_in: [], bytes_in: [], bytes_out: [] };
let lastTotals = null;

async function pageOverview() {
  main.append(el("h1", {}, "Cluster overview"));
  const summary = el("div", { id: "cluster-summary" });
  const charts = el("div", { class: "grid", id: "charts" });
  main.append(summary, el("h2", {}, "Throughput (this node)"), charts);
  const draw = (cluster) => {
    summary.replaceChildren(overviewSummary(cluster));
    recordThroughput(cluster);
    charts.replaceChildren(
      chartPanel("Records in", throughput.records_in, false, 0),
      chartPanel("Bytes in", throughput.bytes_in, true, 1),
      chartPanel("Bytes out", throughput.bytes_out, true, 2),
    );
  };
  draw(await api("GET", "/cluster"));
  const serial = routeSerial;
  pageTimers.push(setInterval(() => {
    api("GET", "/cluster")
      .then((cluster) => { if (serial === routeSerial) draw(cluster); })
      .catch((error) => toast(error.message, true));
  }, POLL_MS));
}

function recordThroughput(cluster) {
  const now = cluster.time_ms;
  const totals = cluster.totals;
  if (lastTotals && now > lastTotals.time) {
    const seconds = (now - lastTotals.time) / 1000;
    for (const key of Object.keys(throughput)) {
      const rate = Math.max(0, (totals[key] - lastTotals.totals[key]) / seconds);
      throughput[key].push({ t: now, v: rate });
      if (throughput[key].length > CHART_POINTS) throughput[key].shift();
    }
  }
  lastTotals = { time: now, totals };
}

function overviewSummary(cluster) {
  document.getElementById("cluster-name").textContent = "cluster " + cluster.cluster_id;
  const health = cluster.partitions;
  const stat = (label, value, cls) =>
    el("div", { class: "stat " + (cls || "") }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
  const stats = el("div", { class: "stats panel", id: "partition-health" },
    stat("Brokers", fmtNumber(cluster.brokers.length)),
    stat("Controller", dash(cluster.controller_id)),
    stat("This node", cluster.node_id),
    stat("Partitions", fmtNumber(health.total)),
    stat("Under-replicated", fmtNumber(health.under_replicated), health.under_replicated > 0 ? "bad" : "good"),
    stat("Offline", fmtNumber(health.offline), health.offline > 0 ? "bad" : "good"),
  );
  const brokers = table([
    { title: "Id", cell: (b) => [String(b.id), b.id === cluster.controller_id ? el("span", { class: "tag" }, " controller") : null] },
    { title: "Address", mono: true, cell: (b) => b.address },
    { title: "Rack", cell: (b) => dash(b.rack) },
    { title: "Status", cell: (b) => b.fenced ? el("span", { class: "tag bad" }, "fenced") : el("span", { class: "tag good" }, "active") },
  ], cluster.brokers, { id: "brokers-table" });
  const quorum = cluster.quorum;
  const voters = table([
    { title: "Voter", cell: (v) => [String(v.id), v.id === quorum.leader_id ? el("span", { class: "tag" }, " leader") : null] },
    { title: "Log end offset", num: true, cell: (v) => fmtNumber(v.log_end_offset) },
  ], quorum.voters, { id: "quorum-table" });
  return el("div", {},
    stats,
    el("div", { class: "grid" },
      el("div", { class: "panel" }, el("h2", {}, "Brokers"), brokers),
      el("div", { class: "panel" }, el("h2", {}, "Metadata quorum"),
        el("p", { class: "muted" }, "Leader ", String(dash(quorum.leader_id)), ", epoch ", String(quorum.leader_epoch),
          ", high watermark ", fmtNumber(quorum.high_watermark)),
        voters)));
}

// A line chart of one series, drawn as SVG: the last CHART_POINTS samples across the width,
// scaled to their maximum.
function chartPanel(title, points, bytes, colour) {
  const width = 600, height = 190, left = 92, bottom = 24, top = 12;
  const max = Math.max(1, ...points.map((p) => p.v));
  const slots = Math.max(2, points.length);
  const x = (i) => left + (i * (width - left - 4)) / (slots - 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  for (const fraction of [0, 0.5, 1]) {
    const gy = y(max * fraction);
    chart.append(svg("line", { class: "grid-line", x1: left, x2: width, y1: gy, y2: gy }));
    chart.append(svg("text", { x: 2, y: gy + 5 }, fmtRate(max * fraction, bytes)));
  }
  if (points.length > 1) {
    const coords = points.map((p, i) => `${x(i).toFixed(1)},${y(p.v).toFixed(1)}`);
    const last = points.length - 1;
    chart.append(svg("path", { class: "area s" + colour, d: `M${x(0)},${y(0)} L${coords.join(" L")} L${x(last)},${y(0)} Z` }));
    chart.append(svg("path", { class: "line s" + colour, d: "M" + coords.join(" L") }));
    const seconds = Math.round((points[last].t - points[0].t) / 1000);
    chart.append(svg("text", { x: left, y: height - 4 }, `last ${seconds} s`));
  } else {
    chart.append(svg("text", { x: left, y: height - 4 }, "measuring…"));
  }
  const current = points.length ? points[points.length - 1].v : 0;
  return el("div", { class: "panel chart" },
    el("h2", {}, title, " ", el("span", { class: "muted" }, fmtRate(current, bytes))),
    chart);
}

// ---- topics ------------------------------------------------------------------------------

async function pageTopics() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const search = el("input", { id: "topic-search", type: "search", placeholder: "Search topics", value: params.get("search") || "" });
  const list = el("div", { id: "topic-list" });
  main.append(el("h1", {}, "Topics"),
    el("div", { class: "panel" }, el("div", { class: "toolbar" }, search), list),
    createTopicForm());
  let serial = 0;
  const load = async () => {
    const mine = ++serial;
    const query = search.value.trim() ? "?search=" + enc(search.value.trim()) : "";
    const answer = await api("GET", "/topics" + query);
    if (mine !== serial) return;
    list.replaceChildren(topicsTable(answer.topics, load));
    list.dataset.search = search.value.trim();
  };
  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    list.dataset.search = "";
    debounce = setTimeout(() => load().catch((error) => list.replaceChildren(errorBox(error))), 200);
  });
  await load();
}

function topicsTable(topics, reload) {
  if (topics.length === 0) return el("p", { class: "muted" }, "No topics.");
  return table([
    { title: "Name", cell: (t) => el("a", { href: "#/topics/" + enc(t.name), class: "topic-link" }, t.name) },
    { title: "Partitions", num: true, cell: (t) => fmtNumber(t.partitions) },
    { title: "Replication", num: true, cell: (t) => fmtNumber(t.replication_factor) },
    { title: "Health", cell: (t) => t.offline > 0 ? el("span", { class: "tag bad" }, t.offline + " offline")
        : t.under_replicated > 0 ? el("span", { class: "tag warn" }, t.under_replicated + " under-replicated")
        : el("span", { class: "tag good" }, "healthy") },
    { title: "", cell: (t) => [
        el("a", { href: "#/topics/" + enc(t.name) + "/messages" }, "messages"), " · ",
        el("a", { href: "#/topics/" + enc(t.name) + "/produce" }, "produce"), " ",
        t.internal ? el("span", { class: "tag" }, "internal")
          : el("button", { class: "danger delete-topic", dataset: { topic: t.name }, onclick: () => deleteTopic(t.name, reload) }, "Delete")] },
  ], topics.map((t) => Object.assign({ attrs: { dataset: { topic: t.name } } }, t)), { id: "topics-table" });
}

async function deleteTopic(name, after) {
  if (!window.confirm(`Delete topic "${name}" and all its records?`)) return;
  try {
    await api("DELETE", "/topics/" + enc(name));
    toast(`Deleted topic ${name}`);
    await after();
  } catch (error) {
    toast(error.message, true);
  }
}

function createTopicForm() {
  const name = el("input", { id: "new-topic-name", required: true, placeholder: "orders" });
  const partitions = el("input", { id: "new-topic-partitions", type: "number", min: 1, value: "1" });
  const factor = el("input", { id: "new-topic-replication", type: "number", min: 1, value: "1" });
  const configs = el("textarea", { id: "new-topic-configs", placeholder: "retention.ms=86400000\ncleanup.policy=delete" });
  const result = el("div", { id: "create-topic-result" });
  const form = el("form", { class: "inline", id: "create-topic-form" },
    field("Name", name), field("Partitions", partitions), field("Replication factor", factor),
    field("Configs (key=value per line)", configs), el("button", { type: "submit" }, "Create topic"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const body = {
        name: name.value.trim(),
        partitions: Number(partitions.value),
        replication_factor: Number(factor.value),
        configs: parseKeyValues(configs.value),
      };
      await api("POST", "/topics", body);
      toast(`Created topic ${body.name}`);
      go("#/topics/" + enc(body.name));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  return el("div", { class: "panel" }, el("h2", {}, "Create a topic"), form, result);
}

function parseKeyValues(text) {
  const configs = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at <= 0) throw new Error(`"${trimmed}" is not key=value`);
    configs[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return configs;
}

async function pageTopic(name) {
  const topic = await api("GET", "/topics/" + enc(name));
  main.append(
    el("div", { class: "breadcrumb" }, el("a", { href: "#/topics" }, "Topics"), " / ", name),
    el("h1", {}, name, topic.internal ? el("span", { class: "tag" }, " internal") : null),
    el("div", { class: "toolbar" },
      el("a", { href: "#/topics/" + enc(name) + "/messages" }, el("button", { class: "secondary", type: "button" }, "Browse messages")),
      el("a", { href: "#/topics/" + enc(name) + "/produce" }, el("button", { class: "secondary", type: "button" }, "Produce a message")),
      topic.internal ? null : el("button", { class: "danger right", id: "delete-topic", onclick: () => deleteTopic(name, () => go("#/topics")) }, "Delete topic")),
  );
  const partitions = table([
    { title: "Partition", num: true, cell: (p) => p.partition },
    { title: "Leader", num: true, cell: (p) => p.leader === null ? el("span", { class: "tag bad" }, "offline") : p.leader },
    { title: "Replicas", mono: true, cell: (p) => p.replicas.join(", ") },
    { title: "ISR", mono: true, cell: (p) => [p.isr.join(", "), p.isr.length < p.replicas.length ? el("span", { class: "tag warn" }, " under-replicated") : null] },
    { title: "Log start", num: true, cell: (p) => fmtNumber(p.log_start_offset) },
    { title: "High watermark", num: true, cell: (p) => fmtNumber(p.high_watermark) },
    { title: "Records", num: true, cell: (p) => p.high_watermark === null ? "–" : fmtNumber(p.high_watermark - p.log_start_offset) },
    { title: "Size", num: true, cell: (p) => fmtBytes(p.size_bytes) },
  ], topic.partitions, { id: "partitions-table" });
  const more = topic.partition_count > topic.partitions.length
    ? el("p", { class: "muted" }, `The first ${topic.partitions.length} of ${topic.partition_count} partitions.`) : null;
  const configsBox = el("div", { id: "configs" });
  const editor = configEditor(name, topic.configs, (configs) => configsBox.replaceChildren(configsTable(configs, editor)));
  configsBox.append(configsTable(topic.configs, editor));
  main.append(el("div", { class: "panel" }, el("h2", {}, "Partitions"), partitions, more),
    el("div", { class: "panel" }, el("h2", {}, "Configs"), editor.form, configsBox));
}

function configsTable(configs, editor) {
  const rows = configs.map((c) => Object.assign({ attrs: { class: c.source === "DYNAMIC_TOPIC_CONFIG" ? "overridden" : null, dataset: { config: c.name } } }, c));
  return table([
    { title: "Name", mono: true, cell: (c) => c.name },
    { title: "Value", mono: true, cell: (c) => c.sensitive ? "(sensitive)" : dash(c.value) },
    { title: "Source", cell: (c) => el("span", { class: c.source === "DYNAMIC_TOPIC_CONFIG" ? "tag" : "muted" }, c.source) },
    { title: "", cell: (c) => c.read_only ? el("span", { class: "muted" }, "read-only")
        : el("button", { class: "secondary", type: "button", onclick: () => editor.edit(c) }, "Edit") },
  ], rows, { id: "configs-table" });
}

function configEditor(topic, configs, redraw) {
  const names = el("datalist", { id: "config-names" }, configs.map((c) => el("option", { value: c.name })));
  const key = el("input", { id: "config-key", list: "config-names", placeholder: "retention.ms" });
  const value = el("input", { id: "config-value", placeholder: "value" });
  const result = el("div", { id: "config-result" });
  const send = async (newValue) => {
    result.replaceChildren();
    try {
      if (!key.value.trim()) throw new Error("name the config to change");
      const answer = await api("PUT", "/topics/" + enc(topic) + "/configs", { [key.value.trim()]: newValue });
      redraw(answer.configs);
      result.replaceChildren(el("div", { class: "note", id: "config-saved" },
        newValue === null ? `${key.value.trim()} is back to its default` : `${key.value.trim()} = ${newValue}`));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  };
  const form = el("form", { class: "inline", id: "config-form" }, names,
    field("Config", key), field("Value", value),
    el("button", { type: "submit", id: "config-save" }, "Save"),
    el("button", { type: "button", class: "secondary", id: "config-reset", onclick: () => send(null) }, "Reset to default"));
  form.addEventListener("submit", (event) => { event.preventDefault(); send(value.value); });
  return {
    form: el("div", {}, form, result),
    edit: (config) => { key.value = config.name; value.value = config.value || ""; value.focus(); },
  };
}

// ---- messages ----------------------------------------------------------------------------

async function pageMessages(name) {
  const topic = await api("GET", "/topics/" + enc(name));
  const partition = el("select", { id: "browse-partition" },
    topic.partitions.map((p) => el("option", { value: String(p.partition) }, "partition " + p.partition)));
  const start = el("select", { id: "browse-start" },
    ["earliest", "offset", "timestamp", "newest"].map((s) => el("option", { value: s }, s)));
  const offset = el("input", { id: "browse-offset", type: "number", min: 0, value: "0" });
  const timestamp = el("input", { id: "browse-timestamp", type: "datetime-local", step: 1 });
  const limit = el("input", { id: "browse-limit", type: "number", min: 1, max: 500, value: "50" });
  const key = el("input", { id: "filter-key", placeholder: "key contains" });
  const value = el("input", { id: "filter-value", placeholder: "value contains" });
  const header = el("input", { id: "filter-header", placeholder: "header contains" });
  const view = el("select", { id: "browse-view" },
    [["text", "UTF-8 text"], ["json", "pretty JSON"], ["hex", "hex"]].map(([v, t]) => el("option", { value: v }, t)));
  const status = el("div", { id: "browse-status", class: "muted" });
  const results = el("div", { id: "messages" });
  const next = el("button", { type: "button", class: "secondary", id: "browse-next", disabled: true }, "Next page");
  const download = el("button", { type: "button", class: "secondary", id: "browse-download", disabled: true }, "Download JSON");
  let shown = [];
  let answer = null;

  const read = async (fromOffset) => {
    const params = new URLSearchParams({ partition: partition.value, limit: limit.value || "50" });
    if (fromOffset !== undefined) {
      params.set("start", "offset");
      params.set("offset", String(fromOffset));
    } else {
      params.set("start", start.value);
      if (start.value === "offset") params.set("offset", offset.value || "0");
      if (start.value === "timestamp") {
        const ms = new Date(timestamp.value).getTime();
        if (Number.isNaN(ms)) throw new Error("choose a date and time to start at");
        params.set("timestamp_ms", String(ms));
      }
    }
    for (const [name, input] of [["key", key], ["value", value], ["header", header]]) {
      if (input.value) params.set(name, input.value);
    }
    results.dataset.state = "loading";
    answer = await api("GET", `/topics/${enc(name)}/messages?${params}`);
    shown = answer.messages;
    drawMessages();
    const why = { limit: "the page is full", end: "the end of the partition", scan_bytes_max: "the most one read scans" }[answer.stopped];
    status.textContent = `${answer.messages.length} shown of ${fmtNumber(answer.scanned_records)} read ` +
      `(offsets ${fmtNumber(answer.start_offset)} to ${fmtNumber(answer.next_offset - 1)}; ` +
      `partition holds ${fmtNumber(answer.log_start_offset)} to ${fmtNumber(answer.high_watermark - 1)}); stopped at ${why}.`;
    next.disabled = answer.next_offset >= answer.high_watermark;
    download.disabled = shown.length === 0;
    results.dataset.state = "ready";
  };
  const drawMessages = () => {
    results.replaceChildren(shown.length === 0 ? el("p", { class: "muted" }, "No messages match.") : table([
      { title: "Offset", num: true, cell: (m) => m.offset },
      { title: "Timestamp", cell: (m) => fmtTime(m.timestamp_ms) },
      { title: "Key", cell: (m) => showBytes(m.key, view.value) },
      { title: "Value", cell: (m) => showBytes(m.value, view.value) },
      { title: "Headers", cell: (m) => m.headers.length === 0 ? "–"
          : el("div", {}, m.headers.map((h) => el("div", { class: "mono header" }, h.key, ": ", showBytes(h.value, "text")))) },
    ], shown.map((m) => Object.assign({ attrs: { dataset: { offset: String(m.offset) }, class: "message" } }, m)), { id: "messages-table" }));
  };
  const run = (fromOffset) => read(fromOffset).catch((error) => {
    results.replaceChildren(errorBox(error));
    results.dataset.state = "error";
  });
  const form = el("form", { class: "inline", id: "browse-form" },
    field("Partition", partition), field("Start at", start), field("Offset", offset), field("Timestamp", timestamp),
    field("Limit", limit), field("Key", key), field("Value", value), field("Header", header),
    el("button", { type: "submit", id: "browse-search" }, "Read"));
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  next.addEventListener("click", () => run(answer.next_offset));
  view.addEventListener("change", drawMessages);
  download.addEventListener("click", () => {
    const blob = new Blob([JSON.stringify(shown, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `${name}-${partition.value}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  main.append(
    el("div", { class: "breadcrumb" }, el("a", { href: "#/topics" }, "Topics"), " / ",
      el("a", { href: "#/topics/" + enc(name) }, name), " / messages"),
    el("h1", {}, "Messages of ", name),
    el("div", { class: "panel" }, form,
      el("div", { class: "toolbar" }, field("Show as", view), next, download,
        el("a", { href: "#/topics/" + enc(name) + "/produce" }, "Produce a message")),
      status, results));
  await read();
}

function showBytes(bytes, mode) {
  if (bytes === null || bytes === undefined) return el("span", { class: "muted" }, "null");
  if (bytes.schema_id !== undefined && mode !== "hex") return showDecoded(bytes);
  const cut = bytes.truncated ? el("div", { class: "muted" }, `(first part of ${fmtBytes(bytes.size)})`) : null;
  if (mode === "hex" || bytes.text === null) {
    const raw = atob(bytes.base64);
    let hex = "";
    for (let i = 0; i < raw.length; i++) hex += raw.charCodeAt(i).toString(16).padStart(2, "0") + (i % 16 === 15 ? "\n" : " ");
    return el("div", {}, el("pre", { class: "value hex" }, hex.trim()), mode === "hex" ? null : el("span", { class: "tag" }, "binary"), cut);
  }
  if (mode === "json") {
    try {
      return el("div", {}, el("pre", { class: "value json" }, JSON.stringify(JSON.parse(bytes.text), null, 2)), cut);
    } catch (_) { /* not JSON: shown as text */ }
  }
  return el("div", {}, el("pre", { class: "value text" }, bytes.text), cut);
}

// A record written by a schema registry serializer: the decoded datum, its format and schema
// id, and the schema itself on demand.
function showDecoded(bytes) {
  const label = `${bytes.schema_type} · schema ${bytes.schema_id}`;
  const schemaText = el("pre", { class: "value schema" });
  const schema = el("details", { class: "schema", dataset: { schemaId: String(bytes.schema_id) } },
    el("summary", {}, "schema"), schemaText);
  schema.addEventListener("toggle", async () => {
    if (!schema.open || schemaText.textContent) return;
    try {
      const answer = await api("GET", "/schemas/" + bytes.schema_id);
      let text = answer.schema;
      try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* .proto text */ }
      schemaText.textContent = text;
    } catch (error) {
      schemaText.textContent = String(error.message || error);
    }
  });
  const body = bytes.decoded !== undefined
    ? el("pre", { class: "value decoded" }, JSON.stringify(bytes.decoded, null, 2))
    : el("div", { class: "error" }, "cannot decode: " + bytes.decode_error);
  return el("div", {}, el("span", { class: "tag", dataset: { schemaType: bytes.schema_type } }, label), body, schema);
}

// ---- produce -----------------------------------------------------------------------------

async function pageProduce(name) {
  const topic = await api("GET", "/topics/" + enc(name));
  const partition = el("select", { id: "produce-partition" }, el("option", { value: "" }, "automatic (by key)"),
    topic.partitions.map((p) => el("option", { value: String(p.partition) }, "partition " + p.partition)));
  const key = el("input", { id: "produce-key", placeholder: "key (empty: none)" });
  const value = el("textarea", { id: "produce-value", placeholder: "value" });
  const headers = el("div", { class: "headers-editor", id: "produce-headers" });
  const addHeader = () => headers.append(el("div", { class: "row header-row" },
    el("input", { class: "header-key", placeholder: "header name" }),
    el("input", { class: "header-value", placeholder: "header value" }),
    el("button", { type: "button", class: "danger", onclick: (event) => event.target.closest(".row").remove() }, "×")));
  const result = el("div", { id: "produce-result" });
  const form = el("form", { id: "produce-form" },
    el("div", { class: "inline form" }, field("Partition", partition), field("Key", key)),
    field("Value", value),
    el("h2", {}, "Headers"), headers,
    el("div", { class: "toolbar" },
      el("button", { type: "button", class: "secondary", id: "add-header", onclick: addHeader }, "Add header"),
      el("button", { type: "submit", id: "produce-send" }, "Produce")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren();
    const body = { key: key.value === "" ? null : key.value, value: value.value, headers: [] };
    for (const row of headers.querySelectorAll(".header-row")) {
      const name = row.querySelector(".header-key").value;
      if (name) body.headers.push({ key: name, value: row.querySelector(".header-value").value });
    }
    if (partition.value !== "") body.partition = Number(partition.value);
    try {
      const answer = await api("POST", `/topics/${enc(name)}/messages`, body);
      result.replaceChildren(el("div", { class: "note", id: "produced", dataset: { partition: String(answer.partition), offset: String(answer.offset) } },
        `Produced to partition ${answer.partition} at offset ${answer.offset}.`));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  main.append(
    el("div", { class: "breadcrumb" }, el("a", { href: "#/topics" }, "Topics"), " / ",
      el("a", { href: "#/topics/" + enc(name) }, name), " / produce"),
    el("h1", {}, "Produce to ", name),
    el("div", { class: "panel" }, form, result));
}

// ---- consumer groups ---------------------------------------------------------------------

async function pageGroups() {
  const answer = await api("GET", "/groups");
  main.append(el("h1", {}, "Consumer groups"),
    el("div", { class: "panel" }, answer.groups.length === 0 ? el("p", { class: "muted" }, "No groups.") : table([
      { title: "Group", cell: (g) => el("a", { href: "#/groups/" + enc(g.group_id), class: "group-link" }, g.group_id) },
      { title: "State", cell: (g) => stateTag(g.state) },
      { title: "Protocol type", cell: (g) => dash(g.protocol_type) },
    ], answer.groups, { id: "groups-table" })));
}

function stateTag(state) {
  const cls = state === "Stable" ? "good" : state === "Empty" ? "" : state === "Dead" ? "bad" : "warn";
  return el("span", { class: "tag " + cls }, dash(state));
}

async function pageGroup(id) {
  const group = await api("GET", "/groups/" + enc(id));
  const members = group.members.length === 0 ? el("p", { class: "muted" }, "No members.") : table([
    { title: "Member", mono: true, cell: (m) => m.member_id },
    { title: "Client id", cell: (m) => m.client_id },
    { title: "Host", mono: true, cell: (m) => m.client_host },
    { title: "Assignment", cell: (m) => m.assignment.map((a) => el("div", {}, `${a.topic}: ${a.partitions.join(", ")}`)) },
  ], group.members, { id: "members-table" });
  const offsets = group.offsets.length === 0 ? el("p", { class: "muted" }, "No committed offsets.") : table([
    { title: "Topic", cell: (o) => el("a", { href: "#/topics/" + enc(o.topic) }, o.topic) },
    { title: "Partition", num: true, cell: (o) => o.partition },
    { title: "Committed", num: true, cell: (o) => fmtNumber(o.committed_offset) },
    { title: "End", num: true, cell: (o) => fmtNumber(o.end_offset) },
    { title: "Lag", num: true, cell: (o) => el("span", { class: "lag" }, o.lag === null ? "–" : String(o.lag)) },
    { title: "Member", mono: true, cell: (o) => dash(o.member_id) },
  ], group.offsets.map((o) => Object.assign({ attrs: { dataset: { topic: o.topic, partition: String(o.partition) } } }, o)), { id: "offsets-table" });
  main.append(
    el("div", { class: "breadcrumb" }, el("a", { href: "#/groups" }, "Consumer groups"), " / ", id),
    el("h1", {}, id, " ", stateTag(group.state)),
    el("div", { class: "stats panel" },
      el("div", { class: "stat" }, el("div", { class: "label" }, "State"), el("div", { class: "value", id: "group-state" }, group.state)),
      el("div", { class: "stat" }, el("div", { class: "label" }, "Type"), el("div", { class: "value" }, group.type)),
      el("div", { class: "stat" }, el("div", { class: "label" }, "Protocol"), el("div", { class: "value" }, dash(group.protocol))),
      el("div", { class: "stat" }, el("div", { class: "label" }, "Members"), el("div", { class: "value" }, group.members.length)),
      el("div", { class: "stat" }, el("div", { class: "label" }, "Total lag"), el("div", { class: "value", id: "total-lag" }, fmtNumber(group.total_lag)))),
    el("div", { class: "panel" }, el("h2", {}, "Members"), members),
    el("div", { class: "panel" }, el("h2", {}, "Offsets and lag"), offsets),
    resetOffsetsForm(id, group),
    el("div", { class: "toolbar" }, el("button", { class: "danger", id: "delete-group", onclick: async () => {
      if (!window.confirm(`Delete group "${id}" and its committed offsets?`)) return;
      try {
        await api("DELETE", "/groups/" + enc(id));
        toast(`Deleted group ${id}`);
        go("#/groups");
      } catch (error) { toast(error.message, true); }
    } }, "Delete group")));
}

function resetOffsetsForm(id, group) {
  const topics = [...new Set(group.offsets.map((o) => o.topic))];
  const topic = el("input", { id: "reset-topic", list: "reset-topics", value: topics[0] || "" });
  const to = el("select", { id: "reset-to" }, ["earliest", "latest", "offset", "timestamp"].map((t) => el("option", { value: t }, t)));
  const offset = el("input", { id: "reset-offset", type: "number", min: 0, value: "0" });
  const timestamp = el("input", { id: "reset-timestamp", type: "datetime-local", step: 1 });
  const result = el("div", { id: "reset-result" });
  const form = el("form", { class: "inline", id: "reset-form" },
    el("datalist", { id: "reset-topics" }, topics.map((t) => el("option", { value: t }))),
    field("Topic", topic), field("To", to), field("Offset", offset), field("Timestamp", timestamp),
    el("button", { type: "submit" }, "Reset offsets"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const body = { topic: topic.value.trim(), to: to.value };
      if (to.value === "offset") body.offset = Number(offset.value);
      if (to.value === "timestamp") {
        body.timestamp_ms = new Date(timestamp.value).getTime();
        if (Number.isNaN(body.timestamp_ms)) throw new Error("choose a date and time");
      }
      const answer = await api("POST", `/groups/${enc(id)}/reset-offsets`, body);
      toast(`Reset ${answer.offsets.length} partition(s) of ${answer.topic}`);
      route();
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  const rule = group.members.length > 0
    ? el("p", { class: "note" }, "Offsets can be reset only while the group has no members (stop its consumers first).") : null;
  return el("div", { class: "panel" }, el("h2", {}, "Reset offsets"), rule, form, result);
}

// ---- users and ACLs ----------------------------------------------------------------------

const RESOURCE_TYPES = ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"];
const OPERATIONS = ["ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
  "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"];

async function pageSecurity() {
  const [users, acls] = await Promise.all([api("GET", "/users"), api("GET", "/acls")]);
  main.append(el("h1", {}, "Users and ACLs"), usersPanel(users.users), aclsPanel(acls.acls));
}

function usersPanel(users) {
  const list = users.length === 0 ? el("p", { class: "muted" }, "No SCRAM users.") : table([
    { title: "User", cell: (u) => u.user },
    { title: "Credentials", cell: (u) => u.credentials.map((c) => el("span", { class: "tag" }, `${c.mechanism} (${c.iterations})`)) },
    { title: "", cell: (u) => el("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete the SCRAM credentials of "${u.user}"?`)) return;
        try { await api("DELETE", "/users/" + enc(u.user)); route(); } catch (error) { toast(error.message, true); }
      } }, "Delete") },
  ], users, { id: "users-table" });
  const user = el("input", { id: "new-user", placeholder: "alice" });
  const password = el("input", { id: "new-password", type: "password", autocomplete: "new-password" });
  const mechanism = el("select", { id: "new-mechanism" }, ["SCRAM-SHA-256", "SCRAM-SHA-512"].map((m) => el("option", { value: m }, m)));
  const result = el("div", {});
  const form = el("form", { class: "inline", id: "user-form" }, field("User", user), field("Password", password),
    field("Mechanism", mechanism), el("button", { type: "submit" }, "Set credential"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/users", { user: user.value.trim(), password: password.value, mechanism: mechanism.value });
      toast(`Set ${mechanism.value} for ${user.value.trim()}`);
      route();
    } catch (error) { result.replaceChildren(errorBox(error)); }
  });
  return el("div", { class: "panel" }, el("h2", {}, "SCRAM users"), list, el("h2", {}, "Add or change a user"), form, result);
}

function aclsPanel(acls) {
  const list = acls.length === 0 ? el("p", { class: "muted" }, "No ACLs.") : table([
    { title: "Principal", mono: true, cell: (a) => a.principal },
    { title: "Permission", cell: (a) => el("span", { class: "tag " + (a.permission === "ALLOW" ? "good" : "bad") }, a.permission) },
    { title: "Operation", cell: (a) => a.operation },
    { title: "Resource", cell: (a) => `${a.resource_type} ${a.pattern_type === "PREFIXED" ? "prefix " : ""}${a.resource_name}` },
    { title: "Host", mono: true, cell: (a) => a.host },
    { title: "", cell: (a) => el("button", { class: "danger", onclick: async () => {
        if (!window.confirm("Delete this ACL?")) return;
        try { await api("DELETE", "/acls", a); route(); } catch (error) { toast(error.message, true); }
      } }, "Delete") },
  ], acls, { id: "acls-table" });
  const select = (id, values) => el("select", { id }, values.map((v) => el("option", { value: v }, v)));
  const resourceType = select("acl-resource-type", RESOURCE_TYPES);
  const resourceName = el("input", { id: "acl-resource-name", placeholder: "orders or *" });
  const pattern = select("acl-pattern", ["LITERAL", "PREFIXED"]);
  const principal = el("input", { id: "acl-principal", placeholder: "User:alice" });
  const host = el("input", { id: "acl-host", value: "*" });
  const operation = select("acl-operation", OPERATIONS);
  const permission = select("acl-permission", ["ALLOW", "DENY"]);
  const result = el("div", {});
  const form = el("form", { class: "inline", id: "acl-form" }, field("Resource type", resourceType), field("Resource name", resourceName),
    field("Pattern", pattern), field("Principal", principal), field("Host", host), field("Operation", operation),
    field("Permission", permission), el("button", { type: "submit" }, "Add ACL"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/acls", {
        resource_type: resourceType.value, resource_name: resourceName.value, pattern_type: pattern.value,
        principal: principal.value, host: host.value, operation: operation.value, permission: permission.value,
      });
      toast("ACL added");
      route();
    } catch (error) { result.replaceChildren(errorBox(error)); }
  });
  return el("div", { class: "panel" }, el("h2", {}, "ACLs"), list, el("h2", {}, "Add an ACL"), form, result);
}

// ---- loggers -----------------------------------------------------------------------------

async function pageLoggers() {
  const answer = await api("GET", "/loggers");
  const box = el("div", { id: "loggers" });
  const draw = (state) => box.replaceChildren(table([
    { title: "Logger", mono: true, cell: (l) => l.logger },
    { title: "Level", cell: (l) => {
        const level = el("select", { class: "logger-level", dataset: { logger: l.logger } },
          state.levels.map((v) => el("option", { value: v, selected: v === l.level }, v)));
        level.addEventListener("change", () => change({ [l.logger]: level.value }));
        return level;
      } },
  ], state.loggers, { id: "loggers-table" }));
  const change = async (changes) => {
    try {
      draw(await api("PUT", "/loggers", changes));
      toast("Log levels changed (this node only, until it restarts)");
    } catch (error) { toast(error.message, true); }
  };
  const name = el("input", { id: "logger-name", placeholder: "strom_broker::network" });
  const level = el("select", { id: "logger-new-level" }, answer.levels.map((v) => el("option", { value: v }, v)));
  const form = el("form", { class: "inline", id: "logger-form" }, field("Logger", name), field("Level", level),
    el("button", { type: "submit" }, "Set level"),
    el("button", { type: "button", class: "secondary", onclick: () => change({ [name.value.trim()]: null }) }, "Inherit parent's"));
  form.addEventListener("submit", (event) => { event.preventDefault(); change({ [name.value.trim()]: level.value }); });
  main.append(el("h1", {}, "Loggers"),
    el("p", { class: "muted" }, "This node's log levels. Changes apply at once and last until the process ends."),
    el("div", { class: "panel" }, form, box));
  draw(answer);
}

route();
