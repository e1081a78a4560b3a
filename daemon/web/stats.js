// stats.js — the page's view of a stats stream (per-(layer, head) statistics that attention
// kernels return already reduced, such as attention entropy or the max logit: create
// {kind: "stats", shape: [L, H] or [L], reduce}). Two charts per stream, beside the per-series
// charts (which keep its scalar series: cell_mean, cell_max, cell_min):
// - its `cells` series at one step as a layer × head heatmap: rows the layers (layer 0 at the
//   top), columns the heads (one column for a shape [L]); each cell coloured from the range's
//   lowest value (white) to its highest (darkest), the range that step's cells or every step's
//   held (the key names it and its values); the step is the latest unless one is chosen, by the
//   slider under the heatmap or by the cursor on the per-layer chart (hovering shows a step,
//   a click keeps it; the slider at its right end follows new steps again);
// - its `by_row` series as one line per layer by step, the layers coloured along a sequential
//   map from layer 0 (dark) to layer L−1 (light), a key of the map, the cursor naming the
//   nearest layer and its value, a grey dashed line at the step the heatmap keeps.
// Loaded after tokens.js (its heatColor and HEAT_STOPS colour the heatmap) and before app.js,
// which holds it in VIEWS and gives it ew, num, fmtValue, chartWidth and drawPartial. State for
// tests: window.eigenwatch.views[stream].heat / .rows / .pick / .hover. Its top-level names are
// its own: the page's scripts share one global scope, where a later function of the same name
// replaces an earlier one without an error.
"use strict";

const STATS_HEIGHT = 256; // with its two lines under it, as tall as a line chart with its legend
// viridis at 0, 1/8, …, 1; layers take it from 0 to LAYER_SPAN (its lightest end is too pale
// for a line on white)
const VIRIDIS = [[68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
                 [40, 174, 128], [94, 201, 98], [173, 220, 48], [253, 231, 37]];
const LAYER_SPAN = 0.85;
const NO_VALUE = "#d1d5db"; // a cell without a finite value

function layerColor(k, L) {
  const x = (L > 1 ? LAYER_SPAN * k / (L - 1) : 0) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const c = VIRIDIS[i].map((v, n) => Math.round(v + f * (VIRIDIS[i + 1][n] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function statsTile(box, stream, view, title, doc) {
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

// What ew.lists holds of a list series of the stream: {step, value, partial}.
function heldList(series, stream) {
  return (ew.lists[series] || {})[stream] || {step: [], value: [], partial: []};
}

// The step whose cells the heatmap shows (the cursor's on the per-layer chart, else the chosen
// one, else the latest held) and the step it keeps (without the cursor's).
function shownStep(view) {
  const steps = heldList(view.heat.series, view.stream).step;
  const kept = view.pick ?? steps.at(-1) ?? null;
  return {kept, shown: view.hover !== null && steps.includes(view.hover) ? view.hover : kept};
}

// ---- (a) the cells at one step as a layer × head heatmap ----

function cellsData(view) {
  const h = view.heat, d = heldList(h.series, view.stream);
  const {kept, shown} = shownStep(view);
  const i = d.step.indexOf(shown);
  h.steps = d.step.slice();
  h.step = i >= 0 ? shown : null;
  h.partial = i >= 0 ? d.partial[i] : false;
  h.cells = [];
  for (let c = 0; c < view.L * view.H; c++) h.cells.push(i >= 0 ? num(d.value[i][c]) : null);
  h.lo = h.hi = null; // no spread: a whole list can be longer than the call stack allows
  for (const vs of view.range === "all" ? d.value : [h.cells])
    for (const x of vs) {
      const v = num(x);
      if (v === null || !Number.isFinite(v)) continue;
      if (h.lo === null || v < h.lo) h.lo = v;
      if (h.hi === null || v > h.hi) h.hi = v;
    }
  h.rgb = h.cells.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    return heatColor(h.hi > h.lo ? (v - h.lo) / (h.hi - h.lo) : 0.5);
  });
  const slider = h.el && h.el.querySelector("input.step"); // none yet while uPlot is made
  if (slider) {
    slider.max = Math.max(0, d.step.length - 1);
    slider.value = Math.max(0, d.step.indexOf(kept));
    slider.disabled = d.step.length < 2;
    h.el.querySelector(".stepnum").textContent = h.step === null ? "—" :
        `step ${h.step}${h.partial ? " (partial)" : ""}` +
        (shown !== kept ? " · cursor" : view.pick === null ? " · latest" : "");
    h.el.querySelector(".scale").textContent = h.lo === null ? "no values" :
        `${fmtValue(h.lo)} … ${fmtValue(h.hi)}`;
  }
  return [[...Array(view.H).keys()], new Array(view.H).fill(null)];
}

function drawCells(view, u) {
  const h = view.heat, ctx = u.ctx;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  const xs = [], ys = [];
  for (let j = 0; j <= view.H; j++) xs.push(Math.round(u.valToPos(j - 0.5, "x", true)));
  for (let i = 0; i <= view.L; i++) ys.push(Math.round(u.valToPos(i - 0.5, "y", true)));
  for (let i = 0; i < view.L; i++)
    for (let j = 0; j < view.H; j++) {
      const c = h.rgb[i * view.H + j];
      ctx.fillStyle = c ? `rgb(${c[0]},${c[1]},${c[2]})` : NO_VALUE;
      ctx.fillRect(xs[j], ys[i], xs[j + 1] - xs[j], ys[i + 1] - ys[i]);
    }
  ctx.strokeStyle = "#d1d5db"; // the grid's frame: its lowest values are white
  ctx.lineWidth = 1;
  ctx.strokeRect(xs[0] + 0.5, ys[0] + 0.5, xs[view.H] - xs[0] - 1, ys[view.L] - ys[0] - 1);
  ctx.restore();
}

// Under the cursor: the cell's layer, head and value.
function cellReadout(view, u) {
  const h = view.heat, out = h.el.querySelector(".readout");
  const {left, top} = u.cursor;
  const j = left >= 0 ? Math.round(u.posToVal(left, "x")) : -1;
  const i = top >= 0 ? Math.round(u.posToVal(top, "y")) : -1;
  if (h.step === null || i < 0 || i >= view.L || j < 0 || j >= view.H) {
    out.textContent = "";
    return;
  }
  out.textContent = `layer ${i}` + (view.shape.length > 1 ? ` · head ${j}` : "") +
                    `: ${fmtValue(h.cells[i * view.H + j])}`;
}

function cellsChart(view, box) {
  const h = view.heat;
  h.el = statsTile(box, view.stream, "cells", `${view.stream}: ${h.series} at a step`,
                   `${view.shape.join(" × ")} cells (rows: layers${view.H > 1 ? ", columns: heads" : ""}` +
                   `), reduced over ranks by ${view.reduce}; colour: the cell's value in the range`);
  h.el.dataset.series = h.series;
  const pick = document.createElement("p");
  pick.className = "heatkey muted";
  pick.innerHTML = "<label>step <input class='step' type='range' min='0' value='0'></label> " +
                   "<span class='stepnum'></span>";
  const key = document.createElement("p");
  key.className = "heatkey muted";
  key.innerHTML = "<span class='ramp'></span> <span class='scale'></span> <select class='range'>" +
                  "<option value='step'>this step</option><option value='all'>all steps</option>" +
                  "</select> <span class='readout'></span>";
  key.querySelector(".ramp").style.background =
      `linear-gradient(to right, ${HEAT_STOPS.map((c) => `rgb(${c})`).join(", ")})`;
  pick.querySelector("input").addEventListener("input", (e) => {
    const steps = heldList(h.series, view.stream).step, k = Number(e.target.value);
    choose(view, k >= steps.length - 1 ? null : steps[k]);
  });
  key.querySelector("select").addEventListener("change", (e) => {
    view.range = e.target.value;
    refreshCells(view);
  });
  h.plot = new uPlot({
    width: chartWidth(h.el), height: STATS_HEIGHT,
    legend: {show: false},
    cursor: {points: {show: false}, drag: {x: false, y: false}},
    scales: {x: {time: false, auto: false, range: [-0.5, view.H - 0.5]},
             y: {auto: false, range: [-0.5, view.L - 0.5], dir: -1}},
    axes: [{label: view.H > 1 ? "head" : "", grid: {show: false}, incrs: [1, 2, 4, 8, 16, 32]},
           {size: 60, label: "layer", grid: {show: false}, incrs: [1, 2, 4, 8, 16, 32]}],
    series: [{label: "head"}, {label: h.series, stroke: "transparent", points: {show: false}}],
    hooks: {draw: [(u) => drawCells(view, u)], setCursor: [(u) => cellReadout(view, u)]},
  }, cellsData(view), h.el);
  h.el.append(pick, key); // under the chart
  cellsData(view);          // now that the slider and the key are there
}

function refreshCells(view) {
  if (view.heat && view.heat.plot) view.heat.plot.setData(cellsData(view));
}

// The step the heatmap keeps (null: the latest, following new steps).
function choose(view, step) {
  view.pick = step;
  refreshCells(view);
  if (view.rows && view.rows.plot) view.rows.plot.redraw(false);
}

// ---- (b) by_row as one line per layer by step ----

function rowsData(view) {
  const r = view.rows, d = heldList(r.series, view.stream);
  r.step = d.step.slice();
  r.partial = d.partial.slice();
  r.values = [];
  for (let k = 0; k < view.L; k++) r.values.push(d.value.map((v) => num(v[k])));
  return [r.step, ...r.values];
}

function drawRows(view, u) {
  const r = view.rows, ctx = u.ctx;
  ctx.save();
  if (view.heat) { // the step the heatmap keeps
    const {kept} = shownStep(view);
    if (kept !== null) {
      const x = Math.round(u.valToPos(kept, "x", true));
      ctx.strokeStyle = "#6b7280";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
  r.values.forEach((col, k) => drawPartial(u, {step: r.step, value: col, partial: r.partial},
                                           layerColor(k, view.L)));
  ctx.restore();
}

// The cursor on the per-layer chart: the heatmap shows its step; the nearest layer is named.
function rowsCursor(view, u) {
  const r = view.rows, out = r.el.querySelector(".readout");
  const idx = u.cursor.idx;
  const hover = idx === null || idx === undefined || u.cursor.left < 0 ? null : r.step[idx];
  if (hover !== view.hover) {
    view.hover = hover;
    refreshCells(view);
  }
  if (hover === null) {
    r.near = null;
    out.textContent = "";
    return;
  }
  let best = null, dist = Infinity;
  r.values.forEach((col, k) => {
    if (col[idx] === null) return;
    const dy = Math.abs(u.valToPos(col[idx], "y") - u.cursor.top);
    if (dy < dist) [best, dist] = [k, dy];
  });
  r.near = best;
  out.textContent = `step ${hover}` + (best === null ? "" :
                    ` · layer ${best}: ${fmtValue(r.values[best][idx])}`);
  out.style.color = best === null ? "" : layerColor(best, view.L);
}

function rowsChart(view, box) {
  const r = view.rows;
  r.el = statsTile(box, view.stream, "rows", `${view.stream}: ${r.series} by step`,
                   `each layer's ${view.H > 1 ? `${view.H} heads` : "cell"} reduced by ` +
                   `${view.reduce}, one line per layer` +
                   (view.heat ? "; hover picks the heatmap's step, a click keeps it" : ""));
  r.el.dataset.series = r.series;
  const key = document.createElement("p");
  key.className = "heatkey muted";
  key.innerHTML = "layer 0 <span class='ramp'></span> layer <span class='last'></span>";
  key.querySelector(".last").textContent = view.L - 1;
  const stops = [];
  for (let k = 0; k < 8; k++) stops.push(layerColor(k * (view.L - 1) / 7, view.L));
  key.querySelector(".ramp").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  const read = document.createElement("p");
  read.className = "heatkey muted";
  read.innerHTML = "<span class='readout'></span>";
  const series = [{label: "step"}];
  for (let k = 0; k < view.L; k++)
    series.push({label: `layer ${k}`, stroke: layerColor(k, view.L), width: 1.25,
                 spanGaps: true, points: {show: false}, value: (u, v) => fmtValue(v)});
  r.plot = new uPlot({
    width: chartWidth(r.el), height: STATS_HEIGHT,
    legend: {show: false},
    focus: {alpha: 0.3},
    cursor: {points: {show: false}, focus: {prox: 12}},
    scales: {x: {time: false}},
    axes: [{label: "step"}, {size: 60}],
    series,
    hooks: {draw: [(u) => drawRows(view, u)], setCursor: [(u) => rowsCursor(view, u)]},
  }, rowsData(view), r.el);
  r.plot.over.addEventListener("click", () => {
    if (view.heat && view.hover !== null) {
      const steps = heldList(view.heat.series, view.stream).step;
      choose(view, view.hover === steps.at(-1) ? null : view.hover);
    }
  });
  r.el.append(key, read);
}

// ---- the view: what app.js calls ----

// The first eval entry of `metric` (its series name), or null.
function statsSeries(info, metric) {
  const e = ((info.eval && info.eval.metrics) || []).find((m) => m.metric === metric);
  return e ? e.as || e.metric : null;
}

const statsView = {
  // Its scalar series keep their per-series charts.
  claims() { return []; },
  // The list series it keeps (ew.lists): the stream's cells and by_row.
  lists(info) {
    return [statsSeries(info, "cells"), statsSeries(info, "by_row")].filter((s) => s !== null);
  },
  create(stream, info) {
    const shape = info.config.shape || [info.dim];
    const cells = statsSeries(info, "cells"), byRow = statsSeries(info, "by_row");
    return {kind: "stats", stream, shape, L: shape[0], H: shape[1] || 1,
            reduce: info.config.reduce || "mean", pick: null, hover: null, range: "step",
            heat: cells ? {series: cells} : null, rows: byRow ? {series: byRow} : null};
  },
  // Draws what has points; setData on the charts already drawn.
  update(view, box) {
    const h = view.heat, r = view.rows;
    if (h && h.plot) h.plot.setData(cellsData(view));
    else if (h && (ew.lists[h.series] || {})[view.stream]) cellsChart(view, box);
    if (r && r.plot) r.plot.setData(rowsData(view));
    else if (r && (ew.lists[r.series] || {})[view.stream]) rowsChart(view, box);
    for (const c of [h, r]) if (c && c.el) box.append(c.el); // heatmap first, then the lines
  },
  plots(view) {
    return [view.heat, view.rows].filter((c) => c && c.plot);
  },
};
