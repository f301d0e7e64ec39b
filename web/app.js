// The smtplb dashboard: polls /api/v1/status every second, keeps a few
// minutes of history in the page, draws it with uPlot, and sends the
// drain / maintenance / enable actions to the admin API. Every caption is
// computed from the status document: nothing here states what it has not read.
"use strict";

const HISTORY = 300;          // samples kept (one a second)
const POLL_MS = 1000;
// Plotted levels: misconfigured is its own level (and colour), not "down".
const LEVEL = { up: 3, busy: 2, down: 1, misconfigured: 0 };
const LEVEL_NAMES = ["misconfigured", "down", "busy", "up"];
const STATE_COLOURS = { up: "#1a7f37", busy: "#b35900", down: "#b00020", misconfigured: "#6f42c1" };
const times = [];
const rates = new Map();      // "pool/backend" -> msg/s samples
const health = new Map();     // "pool/backend" -> health level samples
const classes = { "2xx": [], "4xx": [], "5xx": [], failures: [] };
const spoolDepth = [];
let charts = null;
let token = sessionStorage.getItem("smtplb-token") || "";

class LoginNeeded extends Error {}

const $ = (id) => document.getElementById(id);

async function api(method, path) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  const options = { method, headers, cache: "no-store" };
  if (method !== "GET") {
    // The admin listener takes state changes only as JSON (CSRF defence).
    headers["Content-Type"] = "application/json";
    options.body = "{}";
  }
  const r = await fetch(path, options);
  if (r.status === 401) throw new LoginNeeded(token ? "the token was not accepted" : "");
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showLogin(message) {
  $("login").hidden = false;
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("summary").textContent = "sign in to see the daemon";
  $("login-error").textContent = message;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("smtplb-token", token);
  $("token").value = "";
  await poll();
});

$("sign-out").addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem("smtplb-token");
  showLogin("");
});

function key(pool, b) { return pool.name + "/" + b.name; }

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function ago(ms) {
  if (ms === undefined || ms === null) return "-";
  return duration(ms) + " ago";
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor(s / 60) % 60} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s / 3600) % 24} h`;
}

function count(n, word) { return `${n} ${word}`; }

function renderListeners(status) {
  const body = document.querySelector("#listeners tbody");
  body.replaceChildren();
  for (const l of status.listeners) {
    const c = l.counters || {};
    const row = body.insertRow();
    row.className = "listener";
    row.dataset.listener = l.name;
    cell(row, l.name);
    cell(row, l.address ?? `:${l.port}`);
    cell(row, l.mode ?? "-");
    cell(row, l.role);
    cell(row, l.pool);
    cell(row, l.tls ?? "-");
    cell(row, l.sessions ?? "-", "num sessions");
    cell(row, c.connections ?? "-", "num");
    cell(row, l.refusals ?? "-", "num refusals");
    cell(row, c.relayed ?? "-", "num");
    cell(row, c.rejected ?? "-", "num");
    cell(row, c.tempfailed ?? "-", "num");
    cell(row, c.spooled ?? "-", "num");
  }
  $("listeners-caption").textContent = `Listeners (${status.listeners.length})`;
}

function probeText(p) {
  if (!p) return "-";
  return `${p.verdict} at ${p.step}${p.reply ? ": " + p.reply : ""} (${ago(p.age_ms)})`;
}

function changeText(c, stateAge) {
  if (!c) return `none since start (${ago(stateAge)})`;
  return `${c.from} → ${c.to} by ${c.source}: ${c.reason} (${ago(c.age_ms)})`;
}

function renderBackends(status, perSecond) {
  const body = document.querySelector("#backends tbody");
  body.replaceChildren();
  for (const pool of status.pools) {
    for (const b of pool.backends) {
      const row = body.insertRow();
      row.className = "backend admin-" + b.admin;
      row.dataset.pool = pool.name;
      row.dataset.backend = b.name;
      cell(row, pool.name);
      cell(row, b.name);
      cell(row, b.address);
      cell(row, b.priority, "num");
      cell(row, b.effective_weight.toFixed(2), "num");
      cell(row, b.health, "health state-" + b.health);
      cell(row, b.admin, "admin");
      cell(row, b.in_flight, "num");
      cell(row, b.counters.delivered, "num delivered");
      cell(row, (perSecond.get(key(pool, b)) ?? 0).toFixed(1), "num rate");
      cell(row, b.replies_last_minute["4xx"], "num");
      const c = b.counters;
      cell(row, `${c.rejected}/${c.deferred}/${c.failed}`, "num errors");
      cell(row, probeText(b.last_probe), "text last-check");
      cell(row, changeText(b.last_change, b.state_age_ms), "text last-change");
      const actions = row.insertCell();
      actions.className = "actions";
      for (const action of ["drain", "maintenance", "enable"]) {
        const button = document.createElement("button");
        button.textContent = action;
        button.dataset.action = action;
        button.dataset.backend = b.name;
        button.disabled = (action === "enable") === (b.admin === "enabled");
        button.onclick = () => act(pool.name, b.name, action);
        actions.append(button);
      }
    }
  }
}

// A key's state in words, as `smtplb limits` says it.
function keyStateText(k, limit) {
  if (k.in_use !== undefined)
    return `${k.in_use} of ${limit.concurrency} in use` +
      (k.in_use >= limit.concurrency ? " (at the limit)" : "");
  let text = `${k.remaining} of ${limit.burst} left`;
  if (k.reset_after_ms > 0) text += `, all back in ${duration(k.reset_after_ms + 999)}`;
  return text + (k.remaining === 0 ? " (at the limit)" : "");
}

function atLimit(k, limit) {
  return k.in_use !== undefined ? k.in_use >= limit.concurrency : k.remaining === 0;
}

// The [[limit]]s from the status document: hits since the start, tracked
// keys, and the few keys nearest each (the daemon scans at most every few
// seconds, so the list may lag a poll or two).
function renderLimits(status) {
  const limits = status.limits ?? [];
  $("limits-section").hidden = limits.length === 0;
  const body = document.querySelector("#limits tbody");
  body.replaceChildren();
  let refused = 0, delayed = 0, atLimitKeys = 0;
  for (const l of limits) {
    refused += l.hits.tempfail;
    delayed += l.hits.delay;
    const row = body.insertRow();
    row.className = "limit";
    row.dataset.limit = l.name;
    cell(row, l.name);
    cell(row, l.summary, "text summary");
    cell(row, l.hits.tempfail, "num tempfail");
    cell(row, l.hits.delay, "num delayed");
    cell(row, l.tracked_keys, "num keys");
    cell(row, l.evictions, "num evicted");
    const keys = cell(row, "", "keys nearest");
    if (l.nearest.length === 0) keys.textContent = "-";
    const list = document.createElement("ul");
    for (const k of l.nearest) {
      const item = document.createElement("li");
      item.dataset.key = k.key;
      item.textContent = `${k.key}: ${keyStateText(k, l)}`;
      if (atLimit(k, l)) {
        item.className = "at-limit";
        atLimitKeys++;
      }
      list.append(item);
    }
    if (l.nearest.length) keys.append(list);
  }
  $("limits-caption").textContent = `Limits (${limits.length}: ${refused} refused, ` +
    `${delayed} delayed since start; ${atLimitKeys} of the keys shown at their limit)`;
}

// "3 up, 0 busy, 1 down, 0 misconfigured", from the backends' states.
function healthCounts(status) {
  const n = { up: 0, busy: 0, down: 0, misconfigured: 0, drain: 0, maintenance: 0, total: 0 };
  for (const pool of status.pools)
    for (const b of pool.backends) {
      n.total++;
      if (b.health in n) n[b.health]++;
      if (b.admin in n) n[b.admin]++;
    }
  return n;
}

function healthText(n) {
  return `${n.up} up, ${n.busy} busy, ${n.down} down, ${n.misconfigured} misconfigured`;
}

// A refused action's reason stays up for a while: the next poll (every
// second) would otherwise wipe it before anyone reads it.
let actionError = null;  // {message, until}

async function act(pool, backend, action) {
  try {
    await api("POST", `/api/v1/backends/${encodeURIComponent(pool)}/${encodeURIComponent(backend)}/${action}`);
    actionError = null;
    await refresh();
  } catch (e) {
    if (e instanceof LoginNeeded) showLogin(e.message);
    else {
      actionError = { message: `${action} ${backend}: ${e.message}`, until: Date.now() + 15000 };
      $("error").textContent = actionError.message;
    }
  }
}

function chartWidth(id) {
  return Math.max(300, Math.floor($(id).parentElement.clientWidth) - 4);
}

function makeChart(id, names, options = {}) {
  const series = [{}].concat(names.map((name, i) => ({
    label: name,
    stroke: options.colours?.[i] ?? `hsl(${(i * 137) % 360} 65% 42%)`,
    width: 2,
    paths: options.stepped && uPlot.paths ? uPlot.paths.stepped({ align: 1 }) : undefined,
  })));
  const config = { width: chartWidth(id), height: 200, series, scales: { x: { time: true } } };
  if (options.levels) {
    config.scales.y = { range: [-0.3, 3.3] };
    config.axes = [{}, { splits: () => [0, 1, 2, 3], values: (u, vals) => vals.map((v) => LEVEL_NAMES[v] ?? "") , size: 100 }];
  }
  return new uPlot(config, [[], ...names.map(() => [])], $(id));
}

const CHART_IDS = ["chart-rate", "chart-classes", "chart-health", "chart-spool"];

function updateCharts(keys, withSpool) {
  if (!window.uPlot) {
    for (const id of CHART_IDS)
      $(id).textContent = "uPlot was not installed at build time: no charts.";
    return;
  }
  const shape = keys.join() + "|" + withSpool;
  if (!charts || charts.shape !== shape) {
    for (const id of CHART_IDS) $(id).replaceChildren();
    charts = {
      shape,
      rate: makeChart("chart-rate", keys),
      classes: makeChart("chart-classes", Object.keys(classes),
                         { colours: ["#1a7f37", "#b35900", "#b00020", "#555"] }),
      health: makeChart("chart-health", keys, { stepped: true, levels: true }),
      spool: withSpool ? makeChart("chart-spool", ["queued"], { stepped: true }) : null,
    };
  }
  charts.rate.setData([times, ...keys.map((k) => rates.get(k))]);
  charts.classes.setData([times, ...Object.values(classes)]);
  charts.health.setData([times, ...keys.map((k) => health.get(k))]);
  if (charts.spool) charts.spool.setData([times, spoolDepth]);
}

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

// Messages per second from the change of each backend's delivered counter
// over the time the daemon says passed (its uptime, in ms), not over the
// page's timer: a late or early poll then neither halves nor doubles the
// rate. Taken over the last RATE_WINDOW_MS of samples, not the last one
// alone: a backend that answers in bursts (Postfix's in_flow_delay, a
// queue manager catching up) would otherwise read 0, 40, 0, 40 per second
// while it steadily takes 20.
const RATE_WINDOW_MS = 5000;
const counterSamples = [];    // { elapsed, delivered: Map }, oldest first

function computeRates(status) {
  const elapsed = status.uptime_ms ?? Date.now();
  const delivered = new Map();
  for (const pool of status.pools)
    for (const b of pool.backends) delivered.set(key(pool, b), b.counters.delivered);
  // A daemon that restarted starts its uptime again: forget what came before.
  if (counterSamples.length && counterSamples.at(-1).elapsed > elapsed) counterSamples.length = 0;
  counterSamples.push({ elapsed, delivered });
  while (counterSamples.length > 2 && elapsed - counterSamples[1].elapsed >= RATE_WINDOW_MS)
    counterSamples.shift();
  const base = counterSamples[0];
  const seconds = (elapsed - base.elapsed) / 1000;
  const perSecond = new Map();
  for (const [k, now] of delivered) {
    const before = base.delivered.get(k);
    // No rate yet (first sample, or a backend new since): nothing to compare with.
    perSecond.set(k, before !== undefined && seconds > 0 && now >= before
      ? (now - before) / seconds : null);
  }
  return perSecond;
}

function renderDaemon(status) {
  const parts = [];
  if (status.version) parts.push("version " + status.version);
  if (status.uptime_ms !== undefined) parts.push("up " + duration(status.uptime_ms));
  const r = status.reloads;
  if (r) {
    let text = `${count(r.ok, "reloads")}, ${r.failed} refused`;
    if (r.last) {
      const at = new Date(r.last.at).toLocaleTimeString();
      text += r.last.ok ? ` · last reload ok at ${at}` : ` · last reload REFUSED at ${at}: ${r.last.message}`;
    }
    parts.push(text);
  }
  $("daemon").textContent = parts.join(" · ");
  $("daemon").className = r?.last && !r.last.ok ? "warn" : "";
}

function renderSpool(status) {
  const spools = status.pools.some((p) => p.on_unavailable === "spool");
  const s = status.spool;
  $("spool-figure").hidden = !(spools || s);
  if (!s) {
    $("caption-spool").textContent = "Spool depth: no spool";
    return "";
  }
  let text = s.messages === 0 ? "empty"
    : `${count(s.messages, "queued")} (${s.held} held, ${s.delivering} delivering)`;
  if (s.oldest_age_s !== undefined) text += `, oldest ${duration(s.oldest_age_s * 1000)}`;
  $("caption-spool").textContent = `Spool depth: ${text}`;
  return `spool: ${text}`;
}

async function refresh() {
  const status = await api("GET", "/api/v1/status");
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = !token;
  const perSecond = computeRates(status);
  const keys = [];
  const sums = { "2xx": 0, "4xx": 0, "5xx": 0, failures: 0 };
  for (const pool of status.pools)
    for (const b of pool.backends) {
      keys.push(key(pool, b));
      for (const c of Object.keys(sums)) sums[c] += b.replies_last_minute[c];
    }
  const length = times.length;
  push(times, Date.now() / 1000);
  for (const k of keys)
    if (!rates.has(k)) {
      rates.set(k, new Array(length).fill(null));
      health.set(k, new Array(length).fill(null));
    }
  for (const pool of status.pools)
    for (const b of pool.backends) {
      push(rates.get(key(pool, b)), perSecond.get(key(pool, b)));
      push(health.get(key(pool, b)), LEVEL[b.health] ?? null);
    }
  for (const c of Object.keys(classes)) push(classes[c], sums[c]);
  push(spoolDepth, status.spool ? status.spool.messages : null);

  renderDaemon(status);
  renderListeners(status);
  renderBackends(status, perSecond);
  renderLimits(status);
  await refreshCluster(status);
  const n = healthCounts(status);
  $("backends-caption").textContent =
    `Backends (${n.total}: ${healthText(n)}; ${n.drain} drained, ${n.maintenance} in maintenance)`;
  $("caption-health").textContent = `Health (${healthText(n)})`;
  let total = 0;
  for (const v of perSecond.values()) total += v ?? 0;
  $("caption-rate").textContent = `Messages per second, per backend, over ${RATE_WINDOW_MS / 1000} s (${total.toFixed(1)} in all)`;
  $("caption-classes").textContent = "Live replies in the last minute, by class (" +
    Object.entries(sums).map(([c, v]) => `${c} ${v}`).join(", ") + ")";
  const spoolText = renderSpool(status);
  updateCharts(keys, !$("spool-figure").hidden);

  const pools = status.pools.length;
  let summary = `${count(status.sessions, "sessions")} · ${n.total} backends in ` +
    `${count(pools, pools === 1 ? "pool" : "pools")} · ${status.probes_run} probes run`;
  if (spoolText) summary += " · " + spoolText;
  $("summary").textContent = summary;
  $("error").textContent = actionError && Date.now() < actionError.until ? actionError.message : "";
}

// [cluster]: the node registry (GET /api/v1/cluster), one row per node,
// then each node's opinion of each backend; hidden without a [cluster].
async function refreshCluster(status) {
  const section = $("cluster-section");
  if (!status.cluster) {
    section.hidden = true;
    return;
  }
  const doc = await api("GET", "/api/v1/cluster");
  section.hidden = false;
  const body = document.querySelector("#cluster-nodes tbody");
  body.replaceChildren();
  let alive = 0;
  let differing = 0;
  for (const n of doc.nodes) {
    const differs = n.digest_differs_from_majority || n.digest_differs_from_this_node;
    if (n.alive) alive++;
    if (n.alive && differs) differing++;
    const row = body.insertRow();
    row.className = "node" + (n.alive ? "" : " gone");
    row.dataset.node = n.name;
    cell(row, n.name + (n.self ? " (this node)" : ""));
    cell(row, n.alive ? "alive" : "gone", n.alive ? "state-up" : "state-down");
    cell(row, n.version);
    cell(row, n.digest + (differs ? " DIFFERS" : ""), differs ? "state-misconfigured digest" : "digest");
    cell(row, ago(n.heartbeat_age_ms));
    cell(row, n.sessions, "num");
    cell(row, Number(n.messages_per_second).toFixed(1), "num");
  }
  $("cluster-caption").textContent = `Cluster (${alive} of ${doc.nodes.length} nodes alive` +
    (differing ? `; ${differing} with a configuration that differs` : "") + ")";
  const backends = new Map();  // "pool/backend" -> node -> opinion
  for (const n of doc.nodes)
    for (const b of n.backends) {
      const k = b.pool + "/" + b.backend;
      if (!backends.has(k)) backends.set(k, new Map());
      backends.get(k).set(n.name, b);
    }
  const head = document.querySelector("#cluster-opinions thead");
  head.replaceChildren();
  const hrow = head.insertRow();
  for (const text of ["backend", ...doc.nodes.map((n) => n.name)]) {
    const th = document.createElement("th");
    th.textContent = text;
    hrow.append(th);
  }
  const obody = document.querySelector("#cluster-opinions tbody");
  obody.replaceChildren();
  for (const [k, byNode] of [...backends.entries()].sort()) {
    const row = obody.insertRow();
    row.dataset.backend = k;
    cell(row, k);
    for (const n of doc.nodes) {
      const b = byNode.get(n.name);
      const text = b ? b.health + (b.admin !== "enabled" ? "/" + b.admin : "") : "-";
      const td = cell(row, text, b ? "state-" + b.health : "");
      if (b && b.reason) td.title = b.reason;
    }
  }
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren("Health: ");
  for (const [state, colour] of Object.entries(STATE_COLOURS)) {
    const item = document.createElement("span");
    item.className = "state-" + state;
    item.style.borderColor = colour;
    item.textContent = state;
    legend.append(item, " ");
  }
  legend.append("· chart levels: up 3, busy 2, down 1, misconfigured 0");
}

async function poll() {
  try {
    await refresh();
  } catch (e) {
    if (e instanceof LoginNeeded) showLogin(e.message);
    else $("error").textContent = e.message;
  }
}

async function loop() {
  if ($("login").hidden || token) await poll();
  setTimeout(loop, POLL_MS);
}
renderLegend();
loop();
