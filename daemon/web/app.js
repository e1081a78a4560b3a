// app.js — eigenwatchd's built-in page. Reads the JSON API (/api/v1/runs, list, history, alerts,
// metrics), draws one uPlot chart per scalar series (an eval entry's `as`, default its metric's
// name) with one line per stream by step, marks partial steps (hollow points), an estimate's
// error bar or certified bracket (a vertical bar at its point) and the steps at which alerts
// fired (red lines), and polls for new points every POLL_MS without reloading. A stream of
// another kind than matrix is drawn by its kind's view (VIEWS: tokens.js, stats.js), which takes
// the series it draws out of the per-series charts. State for tests: window.eigenwatch.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"];
// Views by stream kind (info's config.kind); a matrix stream has none: its series are charted
// per series. tokens: a band and histogram heatmaps; stats: a layer × head heatmap of its cells
// at a chosen step and its per-layer lines.
const VIEWS = {tokens: tokensView, stats: statsView};

const ew = window.eigenwatch = {
  run: null,       // the selected run
  series: {},      // series → stream → {step: [], value: [], partial: [], lo: [], hi: []}
                   // (lo/hi: the bracket, or value ± error, of an estimate; null elsewhere)
  alerts: [],      // the last alerts answer for the run
  events: [],      // its alert events, oldest first: fired and resolved, kept across restarts
  markers: {},     // "series|stream|rule|step" → {metric, stream, rule, step}: fired alerts seen
  charts: {},      // series → {plot, el, streams: [names]}
  info: {},        // stream → its info answer (config.kind, columns, eval), asked once; null:
                   // the stream is gone
  lists: {},       // series → stream → {step: [], value: [[...]], partial: []}: the list series
                   // a view draws (no other list series is kept)
  views: {},       // stream → the view of a stream whose kind has one (VIEWS)
  docs: {},        // metric → one-line doc from /api/v1/metrics (a series named by `as`: none)
  polls: 0,
  errors: [],
  points() {       // series → stream → number of points held
    const out = {};
    for (const [m, byStream] of Object.entries(this.series)) {
      out[m] = {};
      for (const [s, d] of Object.entries(byStream)) out[m][s] = d.step.length;
    }
    return out;
  },
};

function reportError(msg) {
  ew.errors.push(String(msg));
  const el = document.getElementById("errors");
  el.hidden = false;
  el.textContent = ew.errors.slice(-5).join("\n");
}
window.addEventListener("error", (e) => reportError(e.message));
window.addEventListener("unhandledrejection", (e) => reportError(e.reason));

let token = sessionStorage.getItem("eigenwatch-token");

async function api(method, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
  const headers = token ? {Authorization: "Bearer " + token} : {};
  const r = await fetch(`api/v1/${method}?${q}`, {headers, cache: "no-store"});
  if (r.status === 401) {
    token = window.prompt("This eigenwatchd needs its auth token:") || "";
    sessionStorage.setItem("eigenwatch-token", token);
    throw new Error("unauthorised: reload after entering the token");
  }
  const body = await r.json();
  if (!r.ok) throw new Error(`${method}: ${body.error.code}: ${body.error.message}`);
  return body;
}

// JSON has no infinities: the API writes them as strings; a chart shows them as gaps.
const num = (v) => (typeof v === "number" ? v : null);

function fmtTime(t) {
  if (!t) return "—";
  const age = Date.now() / 1000 - t;
  return age < 90 ? `${Math.max(0, Math.round(age))} s ago` : new Date(t * 1000).toLocaleString();
}

function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(5);
}

async function loadRuns() {
  const {runs} = await api("runs");
  runs.sort((a, b) => (b.last_activity || 0) - (a.last_activity || 0));
  const sel = document.getElementById("run");
  const wanted = ew.run || new URLSearchParams(location.search).get("run") ||
                 (runs[0] && runs[0].run);
  sel.replaceChildren(...runs.map((r) => new Option(
      `${r.run} (${r.streams.length} stream${r.streams.length === 1 ? "" : "s"})`, r.run)));
  if (wanted) sel.value = wanted;
  if (wanted !== ew.run) selectRun(wanted);
}

function selectRun(run) {
  for (const c of Object.values(ew.charts)) c.plot.destroy();
  for (const v of Object.values(ew.views)) for (const c of VIEWS[v.kind].plots(v)) c.plot.destroy();
  document.getElementById("charts").replaceChildren();
  document.getElementById("views").replaceChildren();
  Object.assign(ew, {run, series: {}, alerts: [], events: [], markers: {}, charts: {}, info: {},
                     lists: {}, views: {}});
}

// The view that draws a stream (null: a matrix stream, or its info is not known yet).
function viewOf(stream) {
  const info = ew.info[stream];
  return info && Object.hasOwn(VIEWS, info.config.kind) ? VIEWS[info.config.kind] : null;
}

// Whether a view draws this scalar series of the stream (then no per-series chart does).
function claimed(stream, metric) {
  const v = viewOf(stream);
  return v !== null && v.claims(ew.info[stream]).includes(metric);
}

// Asks info of each stream not asked yet: the list's streams and any in the history answer.
async function loadInfo(run, list, series) {
  const names = new Set([...list.streams.map((s) => s.stream), ...series.map((s) => s.stream)]);
  await Promise.all([...names].filter((s) => !(s in ew.info)).map(async (stream) => {
    try {
      const info = await api("info", {run, stream});
      if (run === ew.run) ew.info[stream] = info;
    } catch (e) { // a dropped stream keeps its history: charted per series, not asked again
      if (!/: NO_SUCH_STREAM:/.test(e.message)) throw e;
      if (run === ew.run) ew.info[stream] = null;
    }
  }));
}

// Appends history points newer than what is held (history answers are ordered by step).
function merge(series) {
  let added = 0;
  for (const s of series) {
    const v = viewOf(s.stream);
    if (v && v.lists(ew.info[s.stream]).includes(s.metric)) {
      added += mergeList(s);
      continue;
    }
    if (s.value.length && Array.isArray(s.value[0])) {
      added += mergePositions(s);
      continue;
    }
    const byStream = (ew.series[s.metric] ||= {});
    const d = (byStream[s.stream] ||= {step: [], value: [], partial: [], lo: [], hi: []});
    const last = d.step.length ? d.step[d.step.length - 1] : -1;
    for (let i = 0; i < s.step.length; i++) {
      if (s.step[i] <= last) continue;
      const v = num(s.value[i]);
      const br = s.bracket ? s.bracket[i] : null, err = s.error ? num(s.error[i]) : null;
      d.step.push(s.step[i]);
      d.value.push(v);
      d.partial.push(s.partial[i]);
      d.lo.push(br ? num(br[0]) : err !== null && v !== null ? v - err : null);
      d.hi.push(br ? num(br[1]) : err !== null && v !== null ? v + err : null);
      added++;
    }
  }
  return added;
}

// A list series no view draws (topk's eigenvalues, group_erank's labels in ascending order):
// one line per position, "STREAM #i", on the metric's chart — the first LIST_LINES of them.
const LIST_LINES = 16;
function mergePositions(s) {
  const byStream = (ew.series[s.metric] ||= {});
  let added = 0;
  const width = Math.min(LIST_LINES, Math.max(0, ...s.value.map((v) => (Array.isArray(v) ? v.length : 0))));
  for (let k = 0; k < width; k++) {
    const d = (byStream[`${s.stream} #${k}`] ||= {step: [], value: [], partial: [], lo: [], hi: []});
    const last = d.step.length ? d.step[d.step.length - 1] : -1;
    for (let i = 0; i < s.step.length; i++) {
      if (s.step[i] <= last || !Array.isArray(s.value[i])) continue;
      d.step.push(s.step[i]);
      d.value.push(k < s.value[i].length ? num(s.value[i][k]) : null);
      d.partial.push(s.partial[i]);
      d.lo.push(null);
      d.hi.push(null);
      added++;
    }
  }
  return added;
}

function mergeList(s) {
  const byStream = (ew.lists[s.metric] ||= {});
  const d = (byStream[s.stream] ||= {step: [], value: [], partial: []});
  const last = d.step.length ? d.step[d.step.length - 1] : -1;
  let added = 0;
  for (let i = 0; i < s.step.length; i++) {
    if (s.step[i] <= last || !Array.isArray(s.value[i])) continue;
    d.step.push(s.step[i]);
    d.value.push(s.value[i]);
    d.partial.push(s.partial[i]);
    added++;
  }
  return added;
}

function nextStep() {
  let next = null; // the smallest "last step + 1" over every held series
  for (const byStream of [...Object.values(ew.series), ...Object.values(ew.lists)])
    for (const d of Object.values(byStream)) {
      const n = d.step.length ? d.step[d.step.length - 1] + 1 : 0;
      next = next === null ? n : Math.min(next, n);
    }
  return next;
}

function renderStreams(list) {
  const rows = list.streams.sort((a, b) => a.stream.localeCompare(b.stream)).map((s) => {
    let step = null;
    for (const byStream of Object.values(ew.series)) {
      const d = byStream[s.stream];
      if (d && d.step.length) step = Math.max(step ?? 0, d.step[d.step.length - 1]);
    }
    const tr = document.createElement("tr");
    for (const v of [s.stream, step ?? "—", s.count, s.dim, fmtTime(s.last_ingest)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  });
  document.querySelector("#streams tbody").replaceChildren(...rows);
}

function renderAlerts() {
  const ul = document.getElementById("alerts");
  if (!ew.alerts.length) {
    ul.replaceChildren(Object.assign(document.createElement("li"),
                                     {className: "muted", textContent: "no rules"}));
    return;
  }
  ul.replaceChildren(...ew.alerts.map((a) => {
    const li = document.createElement("li");
    li.className = a.state;
    const when = a.state === "firing" ? `FIRING since step ${a.step}` : "ok";
    li.textContent = `${a.stream}: ${a.rule} (${a.metric} ${a.when} ${a.value}) — ${when}` +
                     (a.last_value !== null && a.last_value !== undefined
                          ? `, last ${fmtValue(num(a.last_value))}` : "");
    return li;
  }));
  for (const a of ew.alerts)
    if (a.state === "firing" && a.step !== null && a.step !== undefined)
      ew.markers[`${a.metric}|${a.stream}|${a.rule}|${a.step}`] =
          {metric: a.metric, stream: a.stream, rule: a.rule, step: a.step};
}

// The run's alert events, newest first on the page: what fired and resolved, not only what fires
// now. A fired event of a metric rule also marks its chart.
function renderEvents() {
  const ul = document.getElementById("events");
  if (!ew.events.length) {
    ul.replaceChildren(Object.assign(document.createElement("li"),
                                     {className: "muted", textContent: "none yet"}));
    return;
  }
  ul.replaceChildren(...[...ew.events].reverse().map((e) => {
    const li = document.createElement("li");
    li.className = e.state;
    const at = e.step !== null && e.step !== undefined ? ` at step ${e.step}` : "";
    li.textContent = `${new Date(e.time * 1000).toLocaleTimeString()} ${e.stream}: ${e.rule} ` +
                     `${e.state === "firing" ? "FIRED" : "resolved"}${at} — ${e.message}`;
    return li;
  }));
  const rules = new Map(ew.alerts.map((a) => [`${a.stream}|${a.rule}`, a.metric]));
  for (const e of ew.events) {
    const metric = rules.get(`${e.stream}|${e.rule}`);
    if (e.state === "firing" && metric && e.step !== null && e.step !== undefined)
      ew.markers[`${metric}|${e.stream}|${e.rule}|${e.step}`] =
          {metric, stream: e.stream, rule: e.rule, step: e.step};
  }
}

// uPlot data for a metric: the union of steps, one column per stream (null where absent).
function chartData(byStream, streams) {
  const steps = [...new Set(streams.flatMap((s) => byStream[s].step))].sort((a, b) => a - b);
  const at = new Map(steps.map((s, i) => [s, i]));
  const cols = streams.map((s) => {
    const col = new Array(steps.length).fill(null);
    const d = byStream[s];
    d.step.forEach((st, i) => { col[at.get(st)] = d.value[i]; });
    return col;
  });
  return [steps, ...cols];
}

function drawOverlays(metric, u) {
  const ctx = u.ctx;
  const byStream = ew.series[metric];
  const chart = ew.charts[metric];
  ctx.save();
  // estimates: a vertical bar over the bracket (or value ± error) at each point
  chart.streams.forEach((s, i) => {
    const d = byStream[s];
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.globalAlpha = 0.6;
    ctx.lineWidth = 2 * devicePixelRatio;
    d.step.forEach((st, j) => {
      if (d.lo[j] === null || d.hi[j] === null) return;
      const x = u.valToPos(st, "x", true);
      ctx.beginPath();
      ctx.moveTo(x, u.valToPos(d.lo[j], "y", true));
      ctx.lineTo(x, u.valToPos(d.hi[j], "y", true));
      ctx.stroke();
    });
    ctx.globalAlpha = 1;
  });
  // partial steps: hollow circles on their line
  chart.streams.forEach((s, i) => drawPartial(u, byStream[s], COLORS[i % COLORS.length]));
  drawMarkers(u, (m) => m.metric === metric);
  ctx.restore();
}

// Hollow circles at the partial steps of d ({step, value, partial}) on its line.
function drawPartial(u, d, color) {
  const ctx = u.ctx;
  ctx.strokeStyle = color;
  ctx.fillStyle = "#fff";
  ctx.lineWidth = 1.5;
  d.step.forEach((st, j) => {
    if (!d.partial[j] || d.value[j] === null) return;
    const x = u.valToPos(st, "x", true), y = u.valToPos(d.value[j], "y", true);
    ctx.beginPath();
    ctx.arc(x, y, 4 * devicePixelRatio, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  });
}

// Alert steps: a red dashed line with the rule's name at each marker that keep(marker) keeps.
function drawMarkers(u, keep) {
  const ctx = u.ctx;
  const top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
  ctx.strokeStyle = "#c62828";
  ctx.fillStyle = "#c62828";
  ctx.setLineDash([6, 4]);
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  let row = 0; // labels stack downwards, so markers at nearby steps stay readable
  for (const m of Object.values(ew.markers)) {
    if (!keep(m)) continue;
    const x = u.valToPos(m.step, "x", true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.fillText(`${m.rule} (${m.stream}) @ ${m.step}`, x + 4,
                 top + (12 + 13 * row++) * devicePixelRatio);
  }
}

function chartWidth(el) { return Math.max(300, el.clientWidth - 24); }

function renderCharts() {
  const box = document.getElementById("charts");
  // a series' streams whose views do not draw it: a series drawn only by views has no chart
  const unclaimed = (metric) => Object.keys(ew.series[metric]).filter((s) => !claimed(s, metric));
  const metrics = Object.keys(ew.series).filter((m) => unclaimed(m).length).sort();
  document.getElementById("empty").hidden = metrics.length > 0; // renderViews: or a view
  for (const [metric, chart] of Object.entries(ew.charts))
    if (!metrics.includes(metric)) { // its streams turned out to be a view's
      chart.plot.destroy();
      chart.el.remove();
      delete ew.charts[metric];
    }
  for (const metric of metrics) {
    const byStream = ew.series[metric];
    const streams = unclaimed(metric).sort();
    let chart = ew.charts[metric];
    if (chart && chart.streams.join("\n") !== streams.join("\n")) { // a new stream: rebuild
      chart.plot.destroy();
      chart.el.remove();
      chart = null;
    }
    const data = chartData(byStream, streams);
    if (!chart) {
      const el = document.createElement("div");
      el.className = "chart";
      el.dataset.metric = metric;
      el.innerHTML = "<h3></h3><p class='doc muted'></p>";
      el.querySelector("h3").textContent = metric;
      el.querySelector(".doc").textContent = ew.docs[metric] || "";
      box.append(el);
      chart = ew.charts[metric] = {el, streams};
      chart.plot = new uPlot({
        width: chartWidth(el), height: 260,
        scales: {x: {time: false}},
        axes: [{label: "step"}, {size: 60}],
        series: [{label: "step"}, ...streams.map((s, i) => ({
          label: s, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
          points: {show: false}, value: (u, v) => fmtValue(v)}))],
        hooks: {draw: [(u) => drawOverlays(metric, u)]},
      }, data, el);
    } else {
      chart.plot.setData(data);
    }
    chart.el.dataset.points = JSON.stringify(streams.map((s) => byStream[s].step.length));
  }
  // sorted placement: charts appear in metric order whatever order they were created in
  for (const metric of metrics) box.append(ew.charts[metric].el);
}

// Each stream with a view, in stream order: its charts before the per-series ones.
function renderViews() {
  const box = document.getElementById("views");
  for (const stream of Object.keys(ew.info).sort()) {
    const kind = viewOf(stream);
    if (!kind) continue;
    const view = (ew.views[stream] ||= kind.create(stream, ew.info[stream]));
    kind.update(view, box);
  }
  document.getElementById("empty").hidden ||=
      Object.values(ew.views).some((v) => VIEWS[v.kind].plots(v).length > 0);
}

// Every uPlot on the page: the per-series charts' and the views'.
function allPlots() {
  return [...Object.values(ew.charts),
          ...Object.values(ew.views).flatMap((v) => VIEWS[v.kind].plots(v))];
}

async function poll() {
  const status = document.getElementById("status");
  try {
    await loadRuns();
    if (!ew.run) {
      status.textContent = "no runs yet: streams appear once a client ingests";
      return;
    }
    const run = ew.run;
    const from = nextStep();
    const [hist, list, alerts] = await Promise.all([
      api("history", {run, from_step: from ?? undefined}),
      api("list", {run}),
      api("alerts", {run, events: 50}),
    ]);
    if (run !== ew.run) return; // the run changed while this poll was out
    await loadInfo(run, list, hist.series);
    if (run !== ew.run) return;
    merge(hist.series);
    ew.alerts = alerts.alerts;
    ew.events = alerts.events || [];
    renderAlerts();
    renderEvents();
    renderStreams(list);
    renderCharts();
    renderViews();
    for (const c of allPlots()) c.plot.redraw(false); // markers may have changed
    ew.polls++;
    status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `error: ${e.message}`;
    if (!(e instanceof TypeError)) reportError(e.message); // a TypeError: the daemon went away
  }
}

async function start() {
  document.getElementById("run").addEventListener("change", (e) => {
    selectRun(e.target.value);
    poll();
  });
  window.addEventListener("resize", () => {
    for (const c of allPlots())
      c.plot.setSize({width: chartWidth(c.el), height: c.plot.height});
  });
  try {
    const {metrics} = await api("metrics");
    for (const m of metrics) ew.docs[m.name] = m.doc.split(". ")[0];
  } catch (e) {
    reportError(e.message);
  }
  for (;;) { // one poll at a time: the next starts POLL_MS after the previous one ended
    await poll();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

start();
