// tokens.js — the page's view of a tokens stream (per-token scalars such as RL policy entropy:
// create {kind: "tokens", columns}). Two charts per stream, beside the per-series charts:
// - token_mean by step as a line, with a shaded band from the first column's {column}_p5 series
//   to its {column}_p95 series (partial steps hollow, alert steps red, as on every chart);
// - for each `histogram` the stream evaluates, a step × bin heatmap: the metric's bins on the
//   vertical axis from its lo to hi, each cell coloured by its count's share of that step's
//   tokens (white 0, darkest the largest share held; by the square root of share / largest, so
//   a spread-out step stays visible beside one whose tokens all fall in one bin).
// Loaded before app.js, which holds it in VIEWS and gives it ew, COLORS, fmtValue, chartWidth,
// drawPartial and drawMarkers. State for tests: window.eigenwatch.views[stream].band / .heats.
"use strict";

const HEAT_HEIGHT = 280; // with its key under it, as tall as a line chart with its legend
const BAND_EDGE = "rgba(31,119,180,0.45)", BAND_FILL = "rgba(31,119,180,0.16)";
const HEAT_STOPS = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181],
                    [8, 48, 107]];

// The colour of a heatmap cell at t = √(share / largest share), in [0, 1], as [r, g, b].
function heatColor(t) {
  const x = Math.min(1, Math.max(0, t)) * (HEAT_STOPS.length - 1);
  const i = Math.min(HEAT_STOPS.length - 2, Math.floor(x)), f = x - i;
  return HEAT_STOPS[i].map((c, k) => Math.round(c + f * (HEAT_STOPS[i + 1][k] - c)));
}

// The edges of each step's cell: halfway to its neighbours, half a gap (or 0.5) past the ends.
function cellEdges(steps) {
  const n = steps.length;
  if (!n) return [];
  const e = [steps[0] - (n > 1 ? steps[1] - steps[0] : 1) / 2];
  for (let i = 0; i < n - 1; i++) e.push((steps[i] + steps[i + 1]) / 2);
  e.push(steps[n - 1] + (n > 1 ? steps[n - 1] - steps[n - 2] : 1) / 2);
  return e;
}

function tile(box, stream, view, title, doc) {
  const el = document.createElement("div");
  el.className = "chart";
  el.dataset.stream = stream;
  el.dataset.view = view;
  el.innerHTML = "<h3></h3><p class='doc muted'></p>";
  el.querySelector("h3").textContent = title;
  el.querySelector(".doc").textContent = doc;
  box.append(el);
  return el;
}

// ---- (a) token_mean with its p5–p95 band ----

function bandData(b) {
  const held = [b.names.mean, b.names.lo, b.names.hi].map((m) => (ew.series[m] || {})[b.stream]);
  const steps = [...new Set(held.flatMap((d) => (d ? d.step : [])))].sort((x, y) => x - y);
  const at = new Map(steps.map((s, i) => [s, i]));
  const [mean, lo, hi] = held.map((d) => {
    const col = new Array(steps.length).fill(null);
    if (d) d.step.forEach((st, i) => { col[at.get(st)] = d.value[i]; });
    return col;
  });
  const partial = new Array(steps.length).fill(false);
  if (held[0]) held[0].step.forEach((st, i) => { partial[at.get(st)] = held[0].partial[i]; });
  Object.assign(b, {step: steps, mean, lo, hi, partial});
  return [steps, mean, hi, lo];
}

function bandChart(view, box) {
  const b = view.band;
  b.el = tile(box, view.stream, "band", `${view.stream}: ${b.names.mean}`,
              `${ew.docs.token_mean || "mean over counted tokens"}; band: ${b.names.lo} to ` +
              `${b.names.hi}`);
  const line = (label, stroke, width) => ({label, stroke, width, spanGaps: true,
                                           points: {show: false}, value: (u, v) => fmtValue(v)});
  b.plot = new uPlot({
    width: chartWidth(b.el), height: 260,
    scales: {x: {time: false}},
    axes: [{label: "step"}, {size: 60}],
    series: [{label: "step"}, line(b.names.mean, COLORS[0], 1.5),
             line(b.names.hi, BAND_EDGE, 1), line(b.names.lo, BAND_EDGE, 1)],
    bands: [{series: [2, 3], fill: BAND_FILL}],
    hooks: {draw: [(u) => {
      u.ctx.save();
      drawPartial(u, {step: b.step, value: b.mean, partial: b.partial}, COLORS[0]);
      drawMarkers(u, (m) => m.stream === view.stream &&
                             [b.names.mean, b.names.lo, b.names.hi].includes(m.metric));
      u.ctx.restore();
    }]},
  }, bandData(b), b.el);
}

// ---- (b) a histogram series as a step × bin heatmap ----

function heatData(h) {
  const d = (ew.lists[h.series] || {})[h.stream] || {step: [], value: []};
  h.step = d.step.slice();
  h.counts = d.value.map((v) => v.map((c) => (typeof c === "number" ? c : 0)));
  h.share = h.counts.map((v) => {
    const total = v.reduce((a, c) => a + c, 0);
    return v.map((c) => (total > 0 ? c / total : 0));
  });
  h.max = Math.max(0, ...h.share.map((v) => Math.max(0, ...v)));
  h.rgb = h.share.map((v) => v.map((s) => heatColor(h.max > 0 ? Math.sqrt(s / h.max) : 0)));
  h.fill = h.rgb.map((v) => v.map((c) => `rgb(${c[0]},${c[1]},${c[2]})`));
  h.edges = cellEdges(h.step);
  const scale = h.el.querySelector(".scale");
  if (scale)
    scale.textContent =
        `0 … ${h.max > 0 ? (100 * h.max).toPrecision(3) : 0}% of a step's tokens (√ scale)`;
  return [h.step, h.step.map(() => null)];
}

function drawHeat(h, u) {
  const ctx = u.ctx, width = (h.hi - h.lo) / h.bins;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  const ys = [];
  for (let j = 0; j <= h.bins; j++) ys.push(Math.round(u.valToPos(h.lo + j * width, "y", true)));
  h.step.forEach((_, i) => {
    const x0 = Math.round(u.valToPos(h.edges[i], "x", true));
    const x1 = Math.round(u.valToPos(h.edges[i + 1], "x", true));
    h.fill[i].forEach((fill, j) => {
      if (j >= h.bins) return;
      ctx.fillStyle = fill;
      ctx.fillRect(x0, ys[j + 1], Math.max(1, x1 - x0), ys[j] - ys[j + 1]);
    });
  });
  ctx.restore();
}

// Under the cursor: the step, the bin's range and its count and share.
function heatReadout(h, u) {
  const out = h.el.querySelector(".readout");
  const {left, top} = u.cursor;
  if (left === undefined || left < 0 || !h.step.length) {
    out.textContent = "";
    return;
  }
  const x = u.posToVal(left, "x"), y = u.posToVal(top, "y");
  const i = h.edges.findIndex((e, k) => k < h.step.length && x >= e && x < h.edges[k + 1]);
  const width = (h.hi - h.lo) / h.bins, j = Math.floor((y - h.lo) / width);
  if (i < 0 || j < 0 || j >= h.bins || j >= h.counts[i].length) {
    out.textContent = "";
    return;
  }
  const a = h.lo + j * width;
  out.textContent = `step ${h.step[i]} · ${h.column} in [${fmtValue(a)}, ${fmtValue(a + width)})` +
                    ` · ${h.counts[i][j]} tokens (${(100 * h.share[i][j]).toPrecision(3)}%)`;
}

function heatChart(view, h, box) {
  h.el = tile(box, view.stream, "heat", `${view.stream}: ${h.series} of ${h.column}`,
              `${h.bins} bins on [${h.lo}, ${h.hi}) by step (tokens outside in the end bins); ` +
              "colour: the bin's share of the step's tokens");
  h.el.dataset.series = h.series;
  const key = document.createElement("p");
  key.className = "heatkey muted";
  key.innerHTML = "<span class='ramp'></span> <span class='scale'></span> " +
                  "<span class='readout'></span>";
  key.querySelector(".ramp").style.background =
      `linear-gradient(to right, ${HEAT_STOPS.map((c) => `rgb(${c})`).join(", ")})`;
  h.el.append(key); // under the chart once it is drawn
  h.plot = new uPlot({
    width: chartWidth(h.el), height: HEAT_HEIGHT,
    legend: {show: false},
    cursor: {points: {show: false}, drag: {x: false, y: false}},
    scales: {x: {time: false, range: () => [h.edges[0] ?? 0, h.edges.at(-1) ?? 1]},
             y: {auto: false, range: [h.lo, h.hi]}},
    axes: [{label: "step", grid: {show: false}}, {size: 60, label: h.column, grid: {show: false}}],
    series: [{label: "step"}, {label: h.series, stroke: "transparent", points: {show: false}}],
    hooks: {draw: [(u) => drawHeat(h, u)], setCursor: [(u) => heatReadout(h, u)]},
  }, heatData(h), h.el);
  h.el.append(key);
}

// ---- the view: what app.js calls ----

const tokensView = {
  // The series of stream `info` this view draws, so the per-series charts leave them out (its
  // histograms are list series, which those never draw).
  claims(info) {
    const col = (info.config.columns || ["entropy"])[0];
    return ["token_mean", `${col}_p5`, `${col}_p95`];
  },
  // The list series it keeps (ew.lists): each histogram the stream evaluates.
  lists(info) {
    return ((info.eval && info.eval.metrics) || []).filter((e) => e.metric === "histogram")
        .map((e) => e.as || e.metric);
  },
  create(stream, info) {
    const col = (info.config.columns || ["entropy"])[0];
    const [mean, lo, hi] = this.claims(info);
    const heats = ((info.eval && info.eval.metrics) || []).filter((e) => e.metric === "histogram")
        .map((e) => {
          const p = e.params || {};
          return {stream, series: e.as || e.metric, column: p.column || col, bins: p.bins ?? 64,
                  lo: p.lo ?? 0, hi: p.hi ?? 8, step: [], edges: []};
        });
    return {kind: "tokens", stream, band: {stream, names: {mean, lo, hi}}, heats};
  },
  // Draws what has points; setData on the charts already drawn.
  update(view, box) {
    const b = view.band;
    if (b.plot) b.plot.setData(bandData(b));
    else if ((ew.series[b.names.mean] || {})[view.stream]) bandChart(view, box);
    for (const h of view.heats) {
      if (h.plot) h.plot.setData(heatData(h));
      else if ((ew.lists[h.series] || {})[view.stream]) heatChart(view, h, box);
    }
    if (b.el) box.append(b.el); // band first, then the heatmaps, whatever order they came in
    for (const h of view.heats) if (h.el) box.append(h.el);
  },
  plots(view) {
    return [view.band, ...view.heats].filter((c) => c.plot);
  },
};
