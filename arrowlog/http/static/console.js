// arrowlog console: plain modern JavaScript, no build step, no dependencies.
//
// Talks to the HTTP API with relative URLs (so a path-prefix proxy works):
//   GET  v1/streams                  sidebar (schema, rows, time range)
//   POST v1/query                    results (JSON, read incrementally), CSV/Arrow export
//   GET  v1/streams/{s}/tail         live tail (Server-Sent Events, read with fetch)
// With a token configured, every call carries `Authorization: Bearer <token>`; the token
// is asked for once and kept in sessionStorage (this tab only), never in a URL.

const PAGE_ROWS = 500; // rows rendered per page of results
const HISTORY_MAX = 20;
const TAIL_KEEP = 2000; // tail records kept in memory (and re-filtered on demand)
const CHART_POINTS_MAX = 600; // draw point markers up to this many points per series
const CHART_BARS_MAX = 40;
const TOKEN_KEY = "arrowlog.console.token";
const HISTORY_KEY = "arrowlog.console.history";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "className") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtInt(n) {
  return Number(n).toLocaleString("en-US");
}

function fmtMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// ---------------------------------------------------------------------------------------
// API access and the token

let token = sessionStorage.getItem(TOKEN_KEY);
let tokenPrompt = null; // one pending prompt, shared by every request that got a 401

function askToken(message) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = $("token-dialog");
  const error = $("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token-input").value = "";
  tokenPrompt = new Promise((resolve) => {
    const form = $("token-form");
    const submit = (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      form.removeEventListener("submit", submit);
      token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      dialog.close();
      $("token-button").hidden = false;
      tokenPrompt = null;
      resolve();
    };
    form.addEventListener("submit", submit);
  });
  dialog.showModal();
  $("token-input").focus();
  return tokenPrompt;
}

async function api(path, init = {}) {
  for (;;) {
    const headers = new Headers(init.headers || {});
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers, cache: "no-store" });
    if (response.status !== 401) return response;
    const message = token ? (await errorText(response)) : null;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken(message);
  }
}

async function errorText(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.message) return `${body.error}: ${body.message}`;
  } catch (_) {
    // not JSON: show it as it is
  }
  return `HTTP ${response.status}${text ? `: ${text.slice(0, 500)}` : ""}`;
}

// ---------------------------------------------------------------------------------------
// Streams sidebar

let streams = [];

async function loadStreams() {
  const error = $("streams-error");
  let response;
  try {
    response = await api("v1/streams");
  } catch (e) {
    error.textContent = `Cannot reach the server: ${e.message}`;
    error.hidden = false;
    return;
  }
  if (!response.ok) {
    error.textContent = await errorText(response);
    error.hidden = false;
    return;
  }
  error.hidden = true;
  streams = (await response.json()).streams;
  renderStreams();
}

function renderStreams() {
  const list = $("stream-list");
  const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.dataset.stream));
  list.replaceChildren();
  if (!streams.length) {
    list.append(el("li", { className: "empty", text: "No streams yet: POST records to v1/streams/NAME/records." }));
  }
  for (const s of streams) {
    const columns = el("ul", { className: "columns" });
    for (const c of s.schema) {
      columns.append(el("li", {
        className: c.name.startsWith("_") ? "system" : null,
        title: `Insert ${c.name} into the query`,
        onclick: () => insertText(quoteIdent(c.name)),
      }, el("span", { className: "col", text: c.name }), el("span", { className: "type", text: c.type })));
    }
    const range = s.min_time ? timeRange(s.min_time, s.max_time) : "no records";
    const details = el("details", { "data-stream": s.name, open: open.has(s.name) },
      el("summary", {},
        el("span", { className: "name", text: s.name }),
        el("span", { className: "rows", text: `${fmtInt(s.rows)} ${s.rows === 1 ? "row" : "rows"}` })),
      el("div", { className: "meta" },
        el("div", { text: `time: ${s.time_column}` }),
        el("div", { className: "range", text: range }),
        el("div", { text: `offsets ${s.first_offset ?? "-"}..${s.last_offset ?? "-"} · ${s.segments} ${s.segments === 1 ? "segment" : "segments"} · ${fmtBytes(s.bytes)}` })),
      columns,
      el("div", { className: "actions" },
        el("button", { type: "button", text: "Query", onclick: () => queryStream(s) }),
        el("button", { type: "button", text: "Tail", onclick: () => tailStream(s.name) })));
    list.append(el("li", { className: "stream", "data-stream": s.name }, details));
  }
  const select = $("tail-stream");
  const chosen = select.value;
  select.replaceChildren(...streams.map((s) => el("option", { value: s.name, text: s.name })));
  if (streams.some((s) => s.name === chosen)) select.value = chosen;
  if (!$("sql").value.trim() && streams.length) {
    const s = streams[0];
    $("sql").value = `SELECT * FROM ${quoteIdent(s.name)} ORDER BY ${quoteIdent(s.time_column)} DESC LIMIT 100`;
  }
}

// "2026-11-23 08:00:00 → 10:59:59 UTC": whole seconds, the end's date only if it differs.
function timeRange(lo, hi) {
  const a = new Date(parseTime(lo));
  const b = new Date(parseTime(hi));
  if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime())) return `${lo} → ${hi}`;
  const [da, ta] = a.toISOString().slice(0, 19).split("T");
  const [db, tb] = b.toISOString().slice(0, 19).split("T");
  return `${da} ${ta} → ${db === da ? "" : `${db} `}${tb} UTC`;
}

function quoteIdent(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

function insertText(text) {
  const area = $("sql");
  const { selectionStart: a, selectionEnd: b, value } = area;
  area.value = value.slice(0, a) + text + value.slice(b);
  area.selectionStart = area.selectionEnd = a + text.length;
  area.focus();
}

function queryStream(s) {
  $("sql").value = `SELECT * FROM ${quoteIdent(s.name)} ORDER BY ${quoteIdent(s.time_column)} DESC LIMIT 100`;
  selectTab("results");
  runQuery();
}

function tailStream(name) {
  $("tail-stream").value = name;
  selectTab("tail");
  startTail();
}

// ---------------------------------------------------------------------------------------
// Query history (localStorage)

function recentQueries() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(list) ? list.filter((q) => typeof q === "string") : [];
  } catch (_) {
    return [];
  }
}

function remember(sql) {
  const list = [sql, ...recentQueries().filter((q) => q !== sql)].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  renderHistory();
}

function renderHistory() {
  const select = $("history");
  const list = recentQueries();
  select.replaceChildren(el("option", { value: "", text: list.length ? `Recent queries (${list.length})` : "Recent queries" }));
  list.forEach((q, i) => {
    const label = q.replace(/\s+/g, " ").trim();
    select.append(el("option", { value: String(i), text: label.length > 90 ? `${label.slice(0, 89)}…` : label }));
  });
}

// ---------------------------------------------------------------------------------------
// Results: POST v1/query as JSON, parsed incrementally, one page at a time

// Reads `{"columns": [...], "rows": [[...], ...]}` from a response body without holding it
// whole: rows are cut out of the text as their closing bracket arrives and parsed one by
// one; the body is read only as far as the rows asked for (TCP backpressure holds the
// rest of the result on the server until "Load more").
class RowReader {
  constructor(body) {
    this.reader = body.getReader();
    this.decoder = new TextDecoder();
    this.buf = "";
    this.pos = 0; // next character to scan
    this.start = -1; // where the row being scanned starts
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.ended = false; // the rows array closed
    this.columns = null;
  }

  async fill() {
    const { value, done } = await this.reader.read();
    const keep = this.start >= 0 ? this.start : this.pos;
    const text = done ? this.decoder.decode() : this.decoder.decode(value, { stream: true });
    this.buf = this.buf.slice(keep) + text;
    this.pos -= keep;
    if (this.start >= 0) this.start -= keep;
    return !done;
  }

  async head() {
    // The head is `{"columns":[...],"rows":[`; a `"rows":[` cannot occur inside a JSON
    // string (its quotes would be escaped), so the first one is the key.
    let i;
    while ((i = this.buf.indexOf('"rows":[')) < 0) {
      if (!(await this.fill())) throw new Error("the answer ended before its rows");
    }
    this.columns = JSON.parse(`${this.buf.slice(0, i).replace(/,\s*$/, "")}}`).columns;
    this.pos = i + 8;
    return this.columns;
  }

  // Up to `n` more rows; fewer only at the end of the result.
  async take(n) {
    const rows = [];
    while (rows.length < n && !this.ended) {
      const row = this.scan();
      if (row !== undefined) {
        rows.push(row);
      } else if (!this.ended && !(await this.fill())) {
        throw new Error("the result was cut short: the server closed the connection mid-answer");
      }
    }
    return rows;
  }

  scan() {
    const s = this.buf;
    for (let i = this.pos; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 92) this.escaped = true; // backslash
        else if (c === 34) this.inString = false; // quote
      } else if (c === 34) {
        this.inString = true;
      } else if (c === 91 || c === 123) { // [ {
        if (this.depth === 0) this.start = i;
        this.depth++;
      } else if (c === 93 || c === 125) { // ] }
        if (this.depth === 0) {
          this.ended = true; // the `]` closing the rows array
          this.pos = i + 1;
          return undefined;
        }
        this.depth--;
        if (this.depth === 0) {
          const row = JSON.parse(s.slice(this.start, i + 1));
          this.start = -1;
          this.pos = i + 1;
          return row;
        }
      }
    }
    this.pos = s.length;
    return undefined;
  }

  cancel() {
    this.reader.cancel().catch(() => {});
  }
}

let result = null; // the query on screen: {sql, reader, columns, rows, pending, done, ...}

async function runQuery() {
  const area = $("sql");
  const selected = area.value.slice(area.selectionStart, area.selectionEnd).trim();
  const sql = selected || area.value.trim();
  if (!sql) return;
  if (result) result.abort();
  remember(area.value.trim());
  const controller = new AbortController();
  const current = {
    sql, columns: [], rows: [], pending: [], done: false, reader: null,
    started: performance.now(), controller,
    abort() { controller.abort(); if (this.reader) this.reader.cancel(); },
  };
  result = current;
  showError(null);
  setStatus("Running…");
  $("load-more").hidden = true;
  renderTable([], []);
  let response;
  try {
    response = await api("v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ sql }),
      signal: controller.signal,
    });
  } catch (e) {
    if (result === current) failQuery(current, `Cannot reach the server: ${e.message}`);
    return;
  }
  if (result !== current) return;
  if (!response.ok) {
    failQuery(current, await errorText(response));
    return;
  }
  current.reader = new RowReader(response.body);
  try {
    current.columns = await current.reader.head();
    renderTable(current.columns, []);
    await loadMore(current);
  } catch (e) {
    if (result === current && e.name !== "AbortError") failQuery(current, e.message);
  }
}

async function loadMore(current) {
  const button = $("load-more");
  button.disabled = true;
  try {
    // One row of look-ahead tells whether there is more without another round trip.
    const fresh = current.done ? [] : await current.reader.take(PAGE_ROWS + 1 - current.pending.length);
    if (result !== current) return;
    const available = current.pending.concat(fresh);
    const page = available.slice(0, PAGE_ROWS);
    current.pending = available.slice(PAGE_ROWS);
    current.done = current.reader.ended && current.pending.length === 0;
    current.rows.push(...page);
    appendRows(current.columns, page);
    // The query's time is the time to its first page (later pages wait for a click).
    if (current.elapsed === undefined) {
      current.elapsed = performance.now() - current.started;
      current.oneRead = current.done;
    }
    showCounts(current);
    button.hidden = current.done;
    button.textContent = `Load ${PAGE_ROWS} more`;
    if (!$("panel-chart").hidden) renderChart();
  } catch (e) {
    if (result === current && e.name !== "AbortError") failQuery(current, e.message);
  } finally {
    button.disabled = false;
  }
}

function failQuery(current, message) {
  current.done = true;
  showError(message);
  setStatus(`Failed after ${fmtMs(performance.now() - current.started)}`);
  $("load-more").hidden = true;
  if (!$("panel-chart").hidden) renderChart();
}

function showCounts(current) {
  const status = $("query-status");
  const n = current.rows.length;
  const count = current.done ? `${fmtInt(n)} ${n === 1 ? "row" : "rows"}` : `first ${fmtInt(n)} rows (more available)`;
  const time = current.oneRead ? `in ${fmtMs(current.elapsed)}` : `first page in ${fmtMs(current.elapsed)}`;
  status.replaceChildren(
    el("strong", { id: "row-count", "data-rows": String(n), "data-complete": String(current.done), text: count }),
    " · ",
    el("span", { id: "query-time", text: time }));
}

function setStatus(text) {
  $("query-status").textContent = text;
}

function showError(message) {
  const box = $("query-error");
  box.hidden = !message;
  box.textContent = message || "";
}

const NUMERIC = /^(u?int\d*|float\d*|double|halffloat|decimal)/;
const TEMPORAL = /^(timestamp|date)/;

function renderTable(columns, rows) {
  const table = $("result-table");
  const head = el("tr");
  for (const c of columns) {
    head.append(el("th", { title: c.type }, c.name, el("span", { className: "type", text: c.type })));
  }
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren();
  appendRows(columns, rows);
}

function appendRows(columns, rows) {
  const numeric = columns.map((c) => NUMERIC.test(c.type));
  const fragment = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement("tr");
    row.forEach((value, i) => {
      const td = document.createElement("td");
      if (value === null) {
        td.className = "null";
        td.textContent = "null";
      } else {
        if (numeric[i]) td.className = "num";
        td.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
        if (td.textContent.length > 60) td.title = td.textContent;
      }
      tr.append(td);
    });
    fragment.append(tr);
  }
  $("result-table").tBodies[0].append(fragment);
}

// Export: the same query again, in the format asked for, downloaded as a file.
async function exportResult(kind) {
  const sql = (result && result.sql) || $("sql").value.trim();
  if (!sql) return;
  const accept = kind === "csv" ? "text/csv" : "application/vnd.apache.arrow.stream";
  const button = $(`export-${kind}`);
  button.disabled = true;
  try {
    const response = await api("v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: accept },
      body: JSON.stringify({ sql }),
    });
    if (!response.ok) {
      showError(await errorText(response));
      return;
    }
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    const link = el("a", { href: url, download: `arrowlog-${stamp}.${kind === "csv" ? "csv" : "arrows"}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    showError(`Export failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Chart: hand-written SVG of the rows loaded so far

function chartSpec(columns, rows) {
  const timeIndex = columns.findIndex((c) => TEMPORAL.test(c.type));
  const numeric = columns
    .map((c, i) => ({ name: c.name, i }))
    .filter(({ name, i }) => NUMERIC.test(columns[i].type) && name !== "_offset");
  if (timeIndex >= 0 && numeric.length) {
    const series = numeric.slice(0, 5);
    const points = rows
      .map((r) => ({ t: parseTime(r[timeIndex]), values: series.map((s) => r[s.i]) }))
      .filter((p) => !Number.isNaN(p.t))
      .sort((a, b) => a.t - b.t);
    return { kind: "time", x: columns[timeIndex].name, series: series.map((s) => s.name), points };
  }
  const catIndex = columns.findIndex((c) => !NUMERIC.test(c.type) && !TEMPORAL.test(c.type));
  if (catIndex >= 0) {
    const totals = new Map();
    const value = numeric.length ? numeric[0] : null;
    for (const r of rows) {
      const key = r[catIndex] === null ? "null" : String(r[catIndex]);
      const add = value ? Number(r[value.i] ?? 0) : 1;
      totals.set(key, (totals.get(key) || 0) + add);
    }
    const bars = [...totals.entries()].sort((a, b) => b[1] - a[1]);
    return {
      kind: "category", x: columns[catIndex].name, y: value ? value.name : "count",
      bars: bars.slice(0, CHART_BARS_MAX), total: bars.length,
    };
  }
  return null;
}

function renderChart() {
  const box = $("chart");
  const note = $("chart-note");
  const kindSelect = $("chart-kind");
  box.replaceChildren();
  note.textContent = "";
  if (!result || !result.columns.length || !result.rows.length) {
    box.append(el("p", { className: "empty", text: "Run a query to chart its result." }));
    return;
  }
  const spec = chartSpec(result.columns, result.rows);
  if (!spec) {
    box.append(el("p", { className: "empty", text: "Nothing to chart: the result has no time, numeric or categorical column." }));
    return;
  }
  const more = result.done ? "" : ` (first ${fmtInt(result.rows.length)} rows)`;
  const width = Math.max(box.clientWidth - 16, 480);
  const height = Math.max(box.clientHeight - 16, 260);
  if (spec.kind === "time") {
    kindSelect.disabled = false;
    note.textContent = `${spec.series.join(", ")} by ${spec.x}${more}`;
    box.append(timeChart(spec, width, height, kindSelect.value));
  } else {
    kindSelect.disabled = true;
    const cut = spec.total > spec.bars.length ? `, top ${spec.bars.length} of ${fmtInt(spec.total)}` : "";
    note.textContent = `${spec.y} by ${spec.x}${cut}${more}`;
    box.append(barChart(spec, width, height));
  }
}

// [min, max] without spreading a large array into Math.min's arguments.
function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

// Arrow timestamps without a time zone come as "2026-11-23T10:00:00": read them as UTC,
// like the zoned ones, not as the browser's local time.
function parseTime(value) {
  if (typeof value !== "string") return NaN;
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(value) || !value.includes("T");
  return Date.parse(zoned ? value : `${value}Z`);
}

function niceScale(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (lo === hi) { hi = lo + Math.max(1, Math.abs(lo)); lo = Math.min(0, lo); }
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { lo: start, hi: end, ticks };
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400]
  .map((s) => s * 1000);

function timeTicks(lo, hi, count = 6) {
  const step = TIME_STEPS.find((s) => (hi - lo) / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  const iso = (t) => new Date(t).toISOString();
  const label = step >= 86400000 ? (t) => iso(t).slice(0, 10)
    : step >= 60000 ? (t) => iso(t).slice(11, 16)
      : (t) => iso(t).slice(11, 19);
  return { ticks, label };
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(4));
}

function chartFrame(width, height) {
  const m = { left: 64, right: 16, top: 28, bottom: 44 };
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", width, height });
  return { root, m, w: width - m.left - m.right, h: height - m.top - m.bottom };
}

function yAxis(frame, scale, y) {
  const { root, m, w } = frame;
  for (const v of scale.ticks) {
    const py = y(v);
    root.append(svg("line", { class: "grid-line", x1: m.left, x2: m.left + w, y1: py, y2: py }));
    root.append(svg("text", { class: "tick", x: m.left - 6, y: py + 4, "text-anchor": "end" }, fmtTick(v)));
  }
  root.append(svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + frame.h }));
  root.append(svg("line", { class: "axis", x1: m.left, x2: m.left + w, y1: m.top + frame.h, y2: m.top + frame.h }));
}

function legend(frame, names) {
  const g = svg("g", { class: "legend" });
  let x = frame.m.left;
  names.forEach((name, k) => {
    g.append(svg("rect", { class: `swatch s${k}`, x, y: 8, width: 10, height: 10, rx: 2 }));
    g.append(svg("text", { x: x + 14, y: 17 }, name));
    x += 24 + name.length * 7;
  });
  frame.root.append(g);
}

function timeChart(spec, width, height, kind) {
  const frame = chartFrame(width, height);
  const { root, m, w, h } = frame;
  root.setAttribute("aria-label", `${spec.series.join(", ")} over ${spec.x}`);
  root.dataset.kind = kind;
  const pts = spec.points;
  const values = pts.flatMap((p) => p.values).filter((v) => typeof v === "number");
  const [lo, hi] = extent(values);
  const scale = niceScale(Math.min(0, lo), hi);
  let t0 = pts.length ? pts[0].t : 0;
  let t1 = pts.length ? pts[pts.length - 1].t : 1;
  // Bars need half a slot on each side; a single point needs some width at all.
  const slot = pts.length > 1 ? (t1 - t0) / (pts.length - 1) : 60000;
  if (kind === "bar" || t0 === t1) { t0 -= slot / 2; t1 += slot / 2; }
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => m.top + h - ((v - scale.lo) / (scale.hi - scale.lo)) * h;
  yAxis(frame, scale, y);
  const { ticks, label } = timeTicks(t0, t1);
  for (const t of ticks) {
    root.append(svg("text", { class: "tick", x: x(t), y: m.top + h + 16, "text-anchor": "middle" }, label(t)));
  }
  root.append(svg("text", { class: "label", x: m.left + w / 2, y: height - 6, "text-anchor": "middle" }, `${spec.x} (UTC)`));
  const iso = (t) => new Date(t).toISOString().replace(".000Z", "Z");
  spec.series.forEach((name, k) => {
    const cls = `s${k}`;
    if (kind === "bar") {
      const band = Math.max(1, (w / Math.max(pts.length, 1)) * 0.8);
      const bw = band / spec.series.length;
      for (const p of pts) {
        const v = p.values[k];
        if (typeof v !== "number") continue;
        const bx = x(p.t) - band / 2 + k * bw;
        const top = y(Math.max(v, 0));
        const bar = svg("rect", {
          class: `bar point ${cls}`, x: bx, y: top, width: bw, height: Math.max(0, Math.abs(y(v) - y(0))),
        });
        bar.append(svg("title", {}, `${iso(p.t)}  ${name} = ${v}`));
        root.append(bar);
      }
      return;
    }
    let d = "";
    let pen = "M";
    for (const p of pts) {
      const v = p.values[k];
      if (typeof v !== "number") { pen = "M"; continue; }
      d += `${pen}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = "L";
    }
    root.append(svg("path", { class: `series ${cls}`, d }));
    if (pts.length <= CHART_POINTS_MAX) {
      for (const p of pts) {
        const v = p.values[k];
        if (typeof v !== "number") continue;
        const dot = svg("circle", { class: `point ${cls}`, cx: x(p.t), cy: y(v), r: 3 });
        dot.append(svg("title", {}, `${iso(p.t)}  ${name} = ${v}`));
        root.append(dot);
      }
    }
  });
  legend(frame, spec.series);
  return root;
}

function barChart(spec, width, height) {
  const frame = chartFrame(width, height);
  const { root, m, w, h } = frame;
  root.setAttribute("aria-label", `${spec.y} by ${spec.x}`);
  root.dataset.kind = "bar";
  const values = spec.bars.map(([, v]) => v);
  const [lo, hi] = extent(values);
  const scale = niceScale(Math.min(0, lo), hi);
  const y = (v) => m.top + h - ((v - scale.lo) / (scale.hi - scale.lo)) * h;
  yAxis(frame, scale, y);
  const band = w / spec.bars.length;
  const bw = Math.max(1, band * 0.75);
  const rotate = band < 70;
  spec.bars.forEach(([name, v], i) => {
    const bx = m.left + i * band + (band - bw) / 2;
    const bar = svg("rect", {
      class: "bar point s0", x: bx, y: y(Math.max(v, 0)), width: bw, height: Math.max(0, Math.abs(y(v) - y(0))),
    });
    bar.append(svg("title", {}, `${name}: ${v}`));
    root.append(bar);
    const short = name.length > 14 ? `${name.slice(0, 13)}…` : name;
    const lx = m.left + i * band + band / 2;
    const attrs = rotate
      ? { class: "tick", x: lx, y: m.top + h + 12, "text-anchor": "end", transform: `rotate(-35 ${lx} ${m.top + h + 12})` }
      : { class: "tick", x: lx, y: m.top + h + 16, "text-anchor": "middle" };
    root.append(svg("text", attrs, short));
  });
  legend(frame, [spec.y]);
  return root;
}

// ---------------------------------------------------------------------------------------
// Live tail: GET v1/streams/{stream}/tail as Server-Sent Events, read with fetch (an
// EventSource cannot send the Authorization header)

const LEVEL_RANK = {
  TRACE: 0, DEBUG: 1, INFO: 2, NOTICE: 2, WARN: 3, WARNING: 3,
  ERROR: 4, ERR: 4, CRITICAL: 5, CRIT: 5, FATAL: 5, PANIC: 5, ALERT: 5, EMERG: 5,
};
const LEVEL_FIELDS = ["level", "severity", "log_level", "loglevel", "lvl"];

const tail = {
  stream: null,
  next: null, // the offset to resume from (null: the stream's end)
  running: false,
  paused: false,
  controller: null,
  records: [], // the last TAIL_KEEP records received
  received: 0,
  retryMs: 3000,
  retryTimer: null,
  levelField: null,
  timeField: null,
};

function startTail() {
  stopTail();
  const stream = $("tail-stream").value;
  if (!stream) {
    setTailStatus("No stream to tail.");
    return;
  }
  const from = $("tail-from").value.trim();
  Object.assign(tail, {
    stream, next: from === "" ? null : Number(from), running: true, paused: false,
    records: [], received: 0, levelField: null,
  });
  const info = streams.find((s) => s.name === stream);
  tail.timeField = info ? info.time_column : "_ingested_at";
  $("tail-rows").replaceChildren();
  $("tail-start").textContent = "Stop";
  $("tail-pause").disabled = false;
  $("tail-pause").textContent = "Pause";
  connectTail();
}

function stopTail() {
  if (tail.controller) tail.controller.abort();
  clearTimeout(tail.retryTimer);
  tail.running = false;
  tail.paused = false;
  $("tail-start").textContent = "Start";
  $("tail-pause").disabled = true;
  $("tail-pause").textContent = "Pause";
  if (tail.stream) setTailStatus(`Stopped${tail.next !== null ? ` at offset ${tail.next}` : ""}.`);
}

function togglePause() {
  if (!tail.running) return;
  if (tail.paused) {
    tail.paused = false;
    $("tail-pause").textContent = "Pause";
    connectTail();
  } else {
    // Pausing disconnects and remembers the next offset; resuming asks for it again, so
    // nothing piles up in the browser and nothing is missed.
    tail.paused = true;
    if (tail.controller) tail.controller.abort();
    clearTimeout(tail.retryTimer);
    $("tail-pause").textContent = "Resume";
    setTailStatus(`Paused at offset ${tail.next ?? "(end)"}: ${fmtInt(tail.received)} records received.`);
  }
}

async function connectTail() {
  const controller = new AbortController();
  tail.controller = controller;
  const query = tail.next === null ? "" : `?from_offset=${tail.next}`;
  setTailStatus(`Connecting to ${tail.stream}…`);
  try {
    const response = await api(`v1/streams/${encodeURIComponent(tail.stream)}/tail${query}`, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok) {
      setTailStatus(await errorText(response));
      stopTail();
      return;
    }
    await readEvents(response.body, onTailEvent);
    if (tail.controller === controller && tail.running && !tail.paused) retryTail("the server ended the tail");
  } catch (e) {
    if (e.name === "AbortError" || tail.controller !== controller) return;
    if (tail.running && !tail.paused) retryTail(e.message);
  }
}

function retryTail(why) {
  setTailStatus(`Disconnected (${why}); reconnecting in ${tail.retryMs / 1000} s…`);
  clearTimeout(tail.retryTimer);
  tail.retryTimer = setTimeout(() => {
    if (tail.running && !tail.paused) connectTail();
  }, tail.retryMs);
}

// text/event-stream framing (HTML Living Standard §9.2.6): lines end in LF, CR or CRLF;
// a blank line ends an event; lines starting with ':' are comments.
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = { type: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    // A CR at the end may be the first half of a CRLF: keep it until the next chunk.
    const carry = buffer.endsWith("\r") ? "\r" : "";
    const lines = (carry ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
    buffer = lines.pop() + carry; // an unfinished line
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) onEvent(event.type, event.data.join("\n"), event.id);
        event = { type: "message", data: [], id: null };
      } else if (line.startsWith(":")) {
        onEvent("comment", line.slice(1).trim(), null);
      } else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let data = colon < 0 ? "" : line.slice(colon + 1);
        if (data.startsWith(" ")) data = data.slice(1);
        if (field === "data") event.data.push(data);
        else if (field === "event") event.type = data;
        else if (field === "id") event.id = data;
        else if (field === "retry" && /^\d+$/.test(data)) tail.retryMs = Number(data);
      }
    }
  }
}

function onTailEvent(type, data, id) {
  if (type === "comment") {
    setTailStatus(`Following ${tail.stream} · ${fmtInt(tail.received)} records received · heartbeat ${new Date().toLocaleTimeString()}`);
    return;
  }
  let body;
  try {
    body = JSON.parse(data);
  } catch (_) {
    return; // not one of ours
  }
  if (type === "subscribed") {
    tail.next = body.from_offset;
    setTailStatus(`Following ${tail.stream} from offset ${body.from_offset} · waiting for records…`);
  } else if (type === "records") {
    tail.next = body.last_offset + 1;
    addTailRecords(body.records);
    setTailStatus(`Following ${tail.stream} · ${fmtInt(tail.received)} records received · next offset ${tail.next}`);
  } else if (type === "end") {
    tail.next = body.next_offset;
    setTailStatus(`The server ended the tail: ${body.reason}`);
  }
}

function levelOf(record) {
  if (tail.levelField === null) {
    tail.levelField = Object.keys(record).find((k) => LEVEL_FIELDS.includes(k.toLowerCase())) || "";
  }
  const v = tail.levelField ? record[tail.levelField] : null;
  return v === null || v === undefined ? "" : String(v);
}

function tailVisible(record) {
  const min = $("tail-level").value;
  if (min) {
    const rank = LEVEL_RANK[levelOf(record).toUpperCase()];
    if (rank === undefined || rank < LEVEL_RANK[min]) return false;
  }
  const needle = $("tail-search").value.trim().toLowerCase();
  return !needle || JSON.stringify(record).toLowerCase().includes(needle);
}

function tailRow(record, fresh) {
  const level = levelOf(record);
  const rest = el("td", { className: "record" });
  for (const [k, v] of Object.entries(record)) {
    if (k === "_offset" || k === "_ingested_at" || k === tail.timeField || k === tail.levelField) continue;
    rest.append(el("span", { className: "k", text: `${k}=` }), `${typeof v === "object" && v !== null ? JSON.stringify(v) : v} `);
  }
  return el("tr", { className: fresh ? "fresh" : null, "data-offset": String(record._offset) },
    el("td", { className: "num", text: String(record._offset) }),
    el("td", { text: String(record[tail.timeField] ?? record._ingested_at ?? "") }),
    el("td", {}, level ? el("span", { className: `level level-${level.toLowerCase()}`, text: level }) : ""),
    rest);
}

function addTailRecords(records) {
  tail.received += records.length;
  tail.records.push(...records);
  if (tail.records.length > TAIL_KEEP) tail.records.splice(0, tail.records.length - TAIL_KEEP);
  const scroller = $("tail-scroll");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const body = $("tail-rows");
  const fragment = document.createDocumentFragment();
  for (const r of records) if (tailVisible(r)) fragment.append(tailRow(r, true));
  body.append(fragment);
  while (body.rows.length > TAIL_KEEP) body.deleteRow(0);
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

function refilterTail() {
  const fragment = document.createDocumentFragment();
  for (const r of tail.records) if (tailVisible(r)) fragment.append(tailRow(r, false));
  $("tail-rows").replaceChildren(fragment);
}

function setTailStatus(text) {
  $("tail-status").textContent = text;
}

// ---------------------------------------------------------------------------------------
// Tabs and wiring

function selectTab(name) {
  for (const tab of ["results", "chart", "tail"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`panel-${tab}`).hidden = !selected;
  }
  if (name === "chart") renderChart();
}

async function showServer() {
  try {
    const response = await fetch("healthz", { cache: "no-store" });
    if (response.ok) $("server-info").textContent = `v${(await response.json()).version} · ${location.host}`;
  } catch (_) {
    $("server-info").textContent = "server unreachable";
  }
}

function wire() {
  $("run").addEventListener("click", runQuery);
  $("sql").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runQuery();
    }
  });
  $("history").addEventListener("change", (e) => {
    const q = recentQueries()[Number(e.target.value)];
    if (e.target.value !== "" && q !== undefined) $("sql").value = q;
    e.target.value = "";
    $("sql").focus();
  });
  $("load-more").addEventListener("click", () => result && !result.done && loadMore(result));
  $("export-csv").addEventListener("click", () => exportResult("csv"));
  $("export-arrow").addEventListener("click", () => exportResult("arrow"));
  $("refresh-streams").addEventListener("click", loadStreams);
  for (const tab of ["results", "chart", "tail"]) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
  $("chart-kind").addEventListener("change", renderChart);
  $("tail-start").addEventListener("click", () => (tail.running ? stopTail() : startTail()));
  $("tail-pause").addEventListener("click", togglePause);
  $("tail-level").addEventListener("change", refilterTail);
  $("tail-search").addEventListener("input", refilterTail);
  $("tail-clear").addEventListener("click", () => {
    tail.records = [];
    $("tail-rows").replaceChildren();
  });
  // Escape would leave a page that can do nothing: the token is needed.
  $("token-dialog").addEventListener("cancel", (e) => e.preventDefault());
  $("token-button").hidden = !token;
  $("token-button").addEventListener("click", async () => {
    await askToken(null);
    loadStreams();
  });
  let resize = null;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { if (!$("panel-chart").hidden) renderChart(); }, 150);
  });
}

wire();
renderHistory();
showServer();
loadStreams();
