// The smtplb dashboard: polls /api/v1/status every second, keeps a few
// minutes of history in the page, draws it with uPlot, and sends the
// drain / maintenance / enable actions to the admin API.
"use strict";

const HISTORY = 300;          // samples kept (one a second)
const HEALTH = { up: 2, busy: 1, down: 0, misconfigured: 0 };
const times = [];
const rates = new Map();      // "pool/backend" -> msg/s samples
const health = new Map();     // "pool/backend" -> health samples
const classes = { "2xx": [], "4xx": [], "5xx": [], failures: [] };
let previous = null;          // last status, for rates
let charts = null;
let token = sessionStorage.getItem("smtplb-token") || "";

async function api(method, path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(path, { method, headers, cache: "no-store" });
  if (r.status === 401) {
    token = prompt("Admin API bearer token") || "";
    sessionStorage.setItem("smtplb-token", token);
    throw new Error("the admin API needs a bearer token");
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function key(pool, b) { return pool.name + "/" + b.name; }

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderTable(status, perSecond) {
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
      cell(row, (perSecond.get(key(pool, b)) ?? 0).toFixed(1), "num");
      cell(row, b.replies_last_minute["4xx"], "num");
      const p = b.last_probe;
      cell(row, p ? `${p.verdict} at ${p.step}${p.reply ? ": " + p.reply : ""}` : "-");
      const actions = row.insertCell();
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

async function act(pool, backend, action) {
  try {
    await api("POST", `/api/v1/backends/${encodeURIComponent(pool)}/${encodeURIComponent(backend)}/${action}`);
    await refresh();
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

function makeChart(element, names, stepped) {
  const series = [{}].concat(names.map((name, i) => ({
    label: name,
    stroke: `hsl(${(i * 137) % 360} 65% 42%)`,
    width: 2,
    paths: stepped && uPlot.paths ? uPlot.paths.stepped({ align: 1 }) : undefined,
  })));
  return new uPlot({ width: 520, height: 220, series, scales: { x: { time: true } } },
                   [[], ...names.map(() => [])], element);
}

function updateCharts(keys) {
  if (!window.uPlot) {
    for (const id of ["chart-rate", "chart-classes", "chart-health"])
      document.getElementById(id).textContent = "uPlot was not installed at build time.";
    return;
  }
  if (!charts || charts.keys.join() !== keys.join()) {
    for (const id of ["chart-rate", "chart-classes", "chart-health"])
      document.getElementById(id).replaceChildren();
    charts = {
      keys,
      rate: makeChart(document.getElementById("chart-rate"), keys, false),
      classes: makeChart(document.getElementById("chart-classes"), Object.keys(classes), false),
      health: makeChart(document.getElementById("chart-health"), keys, true),
    };
  }
  charts.rate.setData([times, ...keys.map(k => rates.get(k))]);
  charts.classes.setData([times, ...Object.values(classes)]);
  charts.health.setData([times, ...keys.map(k => health.get(k))]);
}

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

async function refresh() {
  const status = await api("GET", "/api/v1/status");
  const now = Date.now() / 1000;
  const perSecond = new Map();
  const keys = [];
  const sums = { "2xx": 0, "4xx": 0, "5xx": 0, failures: 0 };
  for (const pool of status.pools) {
    for (const b of pool.backends) {
      const k = key(pool, b);
      keys.push(k);
      let rate = 0;
      const before = previous?.get(k);
      if (before && now > before.time)
        rate = Math.max(0, (b.counters.delivered - before.delivered) / (now - before.time));
      perSecond.set(k, rate);
      for (const c of Object.keys(sums)) sums[c] += b.replies_last_minute[c];
    }
  }
  const length = times.length;
  push(times, now);
  for (const k of keys) {
    if (!rates.has(k)) { rates.set(k, new Array(length).fill(null)); health.set(k, new Array(length).fill(null)); }
  }
  for (const pool of status.pools)
    for (const b of pool.backends) {
      push(rates.get(key(pool, b)), perSecond.get(key(pool, b)));
      push(health.get(key(pool, b)), HEALTH[b.health]);
    }
  for (const c of Object.keys(classes)) push(classes[c], sums[c]);
  previous = new Map();
  for (const pool of status.pools)
    for (const b of pool.backends)
      previous.set(key(pool, b), { time: now, delivered: b.counters.delivered });
  renderTable(status, perSecond);
  updateCharts(keys);
  let summary = `${status.sessions} sessions · ${keys.length} backends · ${status.probes_run} probes run`;
  if (status.spool) {
    const s = status.spool;
    summary += ` · spool: ${s.messages} queued (${s.held} held, ${s.delivering} delivering)`;
    if (s.oldest_age_s !== undefined) summary += `, oldest ${s.oldest_age_s} s`;
  }
  document.getElementById("summary").textContent = summary;
  document.getElementById("error").textContent = "";
}

async function loop() {
  try {
    await refresh();
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
  setTimeout(loop, 1000);
}
loop();
