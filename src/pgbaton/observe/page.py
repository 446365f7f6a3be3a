"""The status page: one HTML document whose script reads /api/status and redraws itself.

No outside scripts, styles or fonts (it must work on a machine without internet); text
from the servers is set with textContent, never as HTML.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgbaton status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  .meta { color: #667; font-size: .9em; }
  table { border-collapse: collapse; background: #fff; margin-bottom: .6em; }
  th, td { padding: .25em .7em; border-bottom: 1px solid #e3e6eb; text-align: left; white-space: nowrap; }
  th { background: #eef0f4; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .ok { color: #176b2c; } .warn { color: #9a6100; } .bad { color: #b3261e; font-weight: 600; }
  .errors { background: #fde8e6; border: 1px solid #f3b5ae; padding: .4em .8em; margin: .6em 0; }
  .empty { color: #889; font-style: italic; }
  svg.spark { vertical-align: middle; background: #fbfbfd; border: 1px solid #e3e6eb; }
  details { margin: .2em 0 .8em; }
</style>
</head>
<body>
<h1>pgbaton</h1>
<div class="meta">read-only status &middot; updated <span id="updated">never</span> &middot;
  refreshes every <span id="refresh"></span> s &middot; <a href="metrics" id="metrics-link">metrics</a></div>
<div id="problems"></div>

<h2>Replica sources (MySQL/MariaDB &rarr; PostgreSQL)</h2>
<div id="sources"><p class="empty">loading&hellip;</p></div>

<h2>Migrations (PostgreSQL &rarr; PostgreSQL)</h2>
<div id="migrations"><p class="empty">loading&hellip;</p></div>

<h2>HA cluster</h2>
<div id="ha"><p class="empty">loading&hellip;</p></div>

<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + "?token=" + encodeURIComponent(token) : path;
document.getElementById("metrics-link").href = withToken("metrics");
document.getElementById("refresh").textContent = (REFRESH_MS / 1000).toString();

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const num = (v, digits) => v === null || v === undefined ? "-" :
  (digits === undefined ? Number(v).toLocaleString("en-US") : Number(v).toFixed(digits));
const cell = (v, cls) => el("td", cls ? {class: cls} : {}, v);

function table(headers, rows, attrs) {
  const t = el("table", attrs || {});
  t.append(el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const r of rows) t.append(r);
  return t;
}

function spark(points, index) {
  // points: [time, seconds, amount]; a line of the chosen value over the kept minutes
  const w = 220, h = 36, svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("width", w); svg.setAttribute("height", h);
  const vals = points.filter((p) => p[index] !== null);
  if (vals.length > 1) {
    const t0 = vals[0][0], t1 = vals[vals.length - 1][0];
    const max = Math.max(1e-9, ...vals.map((p) => p[index]));
    const xy = vals.map((p) => [((p[0] - t0) / Math.max(1e-9, t1 - t0)) * (w - 4) + 2,
                                h - 3 - (p[index] / max) * (h - 8)]);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", xy.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2c6bd6"); line.setAttribute("stroke-width", "1.5");
    svg.append(line);
    const label = document.createElementNS(svgNS, "text");
    label.setAttribute("x", w - 4); label.setAttribute("y", 11); label.setAttribute("text-anchor", "end");
    label.setAttribute("font-size", "10"); label.setAttribute("fill", "#667");
    label.textContent = "max " + max.toFixed(index === 1 ? 2 : 0) + (index === 1 ? " s" : "");
    svg.append(label);
  }
  return svg;
}

function stateClass(s) {
  if (["running", "replicating", "streaming", "switched", "switched_back", "primary"].includes(s)) return "ok";
  if (["error", "disabled", "stopped"].includes(s)) return "bad";
  return "warn";
}

const closed = new Set();  // table lists the reader folded: kept folded across refreshes
function renderSources(doc) {
  const box = document.getElementById("sources");
  box.replaceChildren();
  if (!doc.sources.length) { box.append(el("p", {class: "empty"}, "no replica source configured")); return; }
  const rows = doc.sources.map((s) => {
    const st = s.status;
    const hist = doc.history["replica/" + s.name] || [];
    return el("tr", {"data-source": s.name},
      cell(s.name, "source-name"),
      cell(st.state + (st.running && st.state !== "running" ? " (running)" : ""), "state " + stateClass(st.state)),
      cell(num(st.read_lag_s, 3), "num read-lag"), cell(num(st.replay_lag_s, 3), "num replay-lag"),
      cell(num(st.read_lag_bytes), "num"), cell(num(st.pending_events), "num pending"),
      cell(num(st.rows_replayed), "num rows-replayed"), cell(num(st.tables_replicated), "num"),
      cell(num(st.errors), st.errors ? "num bad" : "num"),
      el("td", {}, spark(hist, 1)));
  });
  box.append(table(["source", "state", "read lag s", "replay lag s", "read lag bytes", "pending changes",
                    "rows replayed", "tables", "errors", "lag, last minutes"], rows, {id: "sources-table"}));
  for (const s of doc.sources) {
    if (!s.tables.length) continue;
    const d = el("details", closed.has(s.name) ? {} : {open: ""},
                 el("summary", {}, "tables of " + s.name + " (" + s.tables.length + ")"));
    d.addEventListener("toggle", () => { if (d.open) closed.delete(s.name); else closed.add(s.name); });
    d.append(table(["source table", "target table", "state", "changes applied"], s.tables.map((t) =>
      el("tr", {"data-table": t.table}, cell(t.table, "table-name"), cell(t.target),
         cell(t.state, "state " + stateClass(t.state)), cell(num(t.changes_applied), "num changes"))),
      {class: "tables", "data-source": s.name}));
    box.append(d);
  }
}

function renderMigrations(doc) {
  const box = document.getElementById("migrations");
  box.replaceChildren();
  if (!doc.migrations.length) { box.append(el("p", {class: "empty"}, "no migration configured")); return; }
  const rows = [];
  for (const m of doc.migrations) {
    if (!m.databases.length) {
      rows.push(el("tr", {"data-migration": m.name}, cell(m.name), cell(m.state, "state " + stateClass(m.state)),
                   el("td", {colspan: "6", class: "empty"}, m.note || "no database streaming")));
    }
    for (const d of m.databases) {
      const hist = doc.history["migrate/" + m.name + "/" + d.database] || [];
      rows.push(el("tr", {"data-migration": m.name, "data-database": d.database},
        cell(m.name), cell(m.state, "state " + stateClass(m.state)), cell(d.database, "database"),
        cell(d.direction), cell(d.state, "state " + stateClass(d.state)),
        cell(d.tables_synced + "/" + d.tables_total, "num"), cell(num(d.lag_bytes), "num"),
        cell(num(d.lag_seconds, 3), "num"), el("td", {}, spark(hist, 1)),
        cell((d.errors || []).join("; "), d.errors && d.errors.length ? "bad" : "")));
    }
  }
  box.append(table(["migration", "state", "database", "direction", "stream", "tables synced", "lag bytes",
                    "lag s", "lag, last minutes", "errors"], rows, {id: "migrations-table"}));
}

function renderHa(doc) {
  const box = document.getElementById("ha");
  box.replaceChildren();
  if (!doc.ha_nodes.length) { box.append(el("p", {class: "empty"}, "no HA node configured")); return; }
  box.append(table(["node", "up", "role", "timeline", "LSN", "replay lag bytes", "sync state", "promotion score"],
    doc.ha_nodes.map((n) => el("tr", {"data-node": n.name}, cell(n.name),
      cell(n.up ? "up" : "down", n.up ? "ok" : "bad"), cell(n.role || "-", "role " + stateClass(n.role)),
      cell(num(n.timeline), "num"), cell(n.lsn_text || "-"), cell(num(n.replay_lag_bytes), "num"),
      cell(n.sync_state || "-"), cell(num(n.promotion_score), "num"))), {id: "ha-table"}));
}

async function refresh() {
  try {
    const r = await fetch(withToken("api/status"), {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status + ": " + (await r.text()));
    const doc = await r.json();
    renderSources(doc); renderMigrations(doc); renderHa(doc);
    const problems = document.getElementById("problems");
    problems.replaceChildren(...Object.entries(doc.errors).map(([part, msg]) =>
      el("div", {class: "errors"}, part + " could not be read: " + msg)));
    document.getElementById("updated").textContent = new Date(doc.taken_at * 1000).toLocaleTimeString();
    document.body.setAttribute("data-loaded", "yes");
  } catch (e) {
    document.getElementById("problems").replaceChildren(el("div", {class: "errors"}, "cannot load: " + e.message));
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
"""
