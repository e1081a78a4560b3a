"""The page's view of a stats stream, in a real headless Chromium (over the DevTools protocol,
as test_page.py), against a real daemon fed multi-rank steps of numpy cells:

- the daemon's history is numpy's: a shape [6, 4] reduce max stream of world 2 (rank 0 sends
  two batches a step, rank 1 one; one step partial: rank 1 never sends it) whose cells are the
  max over ranks and batches, by_row the max over each layer's heads, cell_max/min/mean; and a
  shape [5] reduce mean stream with counts (count-weighted means);
- (a) the heatmap holds the chosen step's cells, equal to `history`'s (bit for bit) and numpy's;
  layer 0 is the top row and head 0 the left column; each cell's pixel is the colour of its
  value in the step's range (white at its lowest, darkest at its highest, never lighter for a
  larger value), and the key names the range; "all steps" takes the range over every held step;
- the step: the latest by default; the slider picks another (the heatmap is then that step's
  cells and stays there as steps arrive); the cursor on the per-layer chart shows its step and a
  click keeps it; the slider at its right end follows new steps again; a cursor over a cell
  reads out its layer, head and value;
- (b) the per-layer chart holds one line per layer (L lines, in a sequential colour map from
  layer 0), each equal to `history`'s by_row by step bit for bit, as the uPlot data it draws;
  the cursor names the nearest layer; the shape [5] stream gets a 5 × 1 heatmap and 5 lines;
- new steps arrive without a reload; cell_max, cell_mean and cell_min keep their per-series
  charts (one line per stats stream), the matrix stream of the run keeps its own;
- the page's scripts declare distinct top-level names (they share one global scope: a function
  of stats.js named as one of tokens.js's would replace it silently);
- a screenshot is written (page-stats.png beside test_page's page.png: the build directory
  under meson, or EW_PAGE_STATS_SCREENSHOT); the console has no error."""
import os
import re
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap, close  # noqa: E402
from cdp import Browser  # noqa: E402
from test_page import same_float  # noqa: E402

RUN, ATTN, GATE, MAT = "lm", "attn", "gate", "encoder"
L, H, G = 6, 4, 5
PARTIAL = 3  # rank 1 never sends this step of ATTN; a flush completes it
VIEW = "eigenwatch.views['attn']"
HEAT, ROWS = VIEW + ".heat", VIEW + ".rows"


def create(c):
    c.call("create", {"run": RUN, "stream": ATTN, "kind": "stats", "shape": [L, H],
                      "reduce": "max", "world": 2})
    c.call("create", {"run": RUN, "stream": GATE, "kind": "stats", "shape": [G],
                      "reduce": "mean"})
    c.call("create", {"run": RUN, "stream": MAT, "dim": 8, "window_steps": 1,
                      "eval": [{"metric": "erank"}]})


def wait_points(c, stream, series, n):
    deadline = time.time() + 60
    while time.time() < deadline:
        s = c.call("history", {"run": RUN, "stream": stream, "metrics": series})["series"]
        if s and len(s[0]["step"]) >= n and not c.call("info", {"run": RUN, "stream": stream})[
                "eval"]["busy"]:
            return
        time.sleep(0.02)
    raise AssertionError(f"{stream}/{series}: fewer than {n} points after 60 s")


def f32(a):
    return {"dtype": "f32", "data": np.asarray(a, np.float32).tobytes()}


def send_steps(c, steps, want):
    """ATTN: rank 0 two batches, rank 1 one (not at PARTIAL), logits growing with the step; GATE:
    two batches with counts. want[stream][step]: numpy's cells (f64)."""
    for step in steps:
        rng = np.random.default_rng(500 + step)
        batches = []
        for rank, n in ((0, 2), (1, 1)):
            if step == PARTIAL and rank == 1:
                continue
            for k in range(n):
                v = (rng.standard_normal((L, H)) + 0.4 * step + 0.3 * np.arange(L)[:, None])
                v = v.astype(np.float32)
                batches.append(v.astype(np.float64))
                c.call("ingest", {"run": RUN, "stream": ATTN, "step": step, "rank": rank,
                                  "world": 2, "end_step": k == n - 1, "values": f32(v)})
        if step == PARTIAL:
            c.call("flush", {"run": RUN, "stream": ATTN})
        want[ATTN][step] = np.max(batches, axis=0).ravel()
        wait_points(c, ATTN, "cells", len(want[ATTN]))
        vs = [rng.random(G).astype(np.float32) + np.linspace(0, 1, G, dtype=np.float32)
              for _ in range(2)]
        cs = [rng.integers(1, 50, G).astype(np.float32) for _ in range(2)]
        for k in range(2):
            c.call("ingest", {"run": RUN, "stream": GATE, "step": step, "end_step": k == 1,
                              "values": f32(vs[k]), "counts": f32(cs[k])})
        v64, c64 = np.array(vs, np.float64), np.array(cs, np.float64)
        want[GATE][step] = (c64 * v64).sum(axis=0) / c64.sum(axis=0)
        wait_points(c, GATE, "cells", len(want[GATE]))
        X = np.random.default_rng(step).standard_normal((32, 8)).astype(np.float32)
        c.call("ingest", {"run": RUN, "stream": MAT, "step": step, "end_step": True,
                          "dtype": "f32", "shape": list(X.shape), "data": X.tobytes()})
        wait_points(c, MAT, "erank", step + 1)


def history_is_numpy(c, want):
    """history[stream][series], checked against numpy."""
    out = {}
    for stream, rows, tol in ((ATTN, L, 0), (GATE, G, 1e-12)):
        h = out[stream] = {s["metric"]: s for s in
                           c.call("history", {"run": RUN, "stream": stream})["series"]}
        steps = sorted(want[stream])
        for m in ("cells", "by_row", "cell_mean", "cell_max", "cell_min"):
            assert h[m]["step"] == steps, (stream, m, h[m]["step"])
        assert h["cells"]["partial"] == [s == PARTIAL and stream == ATTN for s in steps]
        for i, step in enumerate(steps):
            x = want[stream][step]
            got = np.array(h["cells"]["value"][i])
            assert got.shape == x.shape and np.allclose(got, x, rtol=tol, atol=0), (stream, step)
            row = x.reshape(rows, -1)
            by_row = row.max(axis=1) if stream == ATTN else row[:, 0]  # GATE: one cell a row
            assert np.allclose(h["by_row"]["value"][i], by_row, rtol=tol, atol=0), (stream, step)
            close(h["cell_max"]["value"][i], x.max(), 1e-15, f"{stream} cell_max @ {step}")
            close(h["cell_min"]["value"][i], x.min(), 1e-15, f"{stream} cell_min @ {step}")
    return out


def same_list(got, want):
    return len(got) == len(want) and all(same_float(x, y) for x, y in zip(got, want))


def heat_matches(b, hist, step, view=VIEW, stream=ATTN, shape=(L, H), over=None):
    """The heatmap shows `step`: history's cells bit for bit, painted in the range of that step
    (or of the steps `over`)."""
    h = hist[stream]["cells"]
    heat = b.eval(f"(({{step, cells, rgb, lo, hi}}) => ({{step, cells, rgb, lo, hi}}))"
                  f"({view}.heat)")
    assert heat["step"] == step, (heat["step"], step)
    want = h["value"][h["step"].index(step)]
    assert same_list(heat["cells"], want), (heat["cells"], want)
    rng = np.array(want if over is None else [h["value"][h["step"].index(s)] for s in over])
    assert heat["lo"] == rng.min() and heat["hi"] == rng.max(), (heat["lo"], heat["hi"])
    # layer 0 at the top, head 0 at the left; each cell's centre pixel is its colour
    geo = b.eval(f"""(() => {{ const v = {view}, u = v.heat.plot, out = [];
        for (let i = 0; i < v.L; i++) for (let j = 0; j < v.H; j++) {{
          const x = u.valToPos(j, 'x', true), y = u.valToPos(i, 'y', true);
          out.push([x, y, [...u.ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data]]);
        }} return out; }})()""")
    xs = np.array([g[0] for g in geo]).reshape(shape[0], -1)
    ys = np.array([g[1] for g in geo]).reshape(shape[0], -1)
    assert (np.diff(ys, axis=0) > 0).all() and (np.diff(xs, axis=1) > 0).all() if shape[1:] \
        else (np.diff(ys, axis=0) > 0).all(), "rows top to bottom, heads left to right"
    pixels = [g[2] for g in geo]
    assert [p[:3] for p in pixels] == heat["rgb"] and all(p[3] == 255 for p in pixels)
    rgb, cells = np.array(heat["rgb"]), np.array(heat["cells"])
    if over is None:
        assert rgb[cells.argmin()].tolist() == [255, 255, 255], "the step's lowest: white"
        assert rgb[cells.argmax()].tolist() == [8, 48, 107], "the step's highest: darkest"
    dark = rgb.sum(axis=1)[np.argsort(cells, kind="stable")]
    assert (np.diff(dark) <= 0).all(), "a larger value is never lighter"
    key = b.eval(f"{view}.heat.el.querySelector('.scale').textContent")
    assert key == f"{fmt(rng.min())} … {fmt(rng.max())}", key
    return heat


def fmt(v):
    """app.js's fmtValue."""
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        m, e = f"{v:.3e}".split("e")
        return f"{m}e{int(e):+d}"
    return f"{v:#.5g}"


def rows_match(b, hist, n, view=VIEW, stream=ATTN, layers=L):
    h = hist[stream]["by_row"]
    rows = b.eval(f"(({{step, values, partial}}) => ({{step, values, partial}}))({view}.rows)")
    assert rows["step"] == h["step"][:n] == list(range(n)), rows["step"]
    assert len(rows["values"]) == layers
    for k in range(layers):
        assert same_list(rows["values"][k], [v[k] for v in h["value"][:n]]), k
    assert rows["partial"] == [s == PARTIAL and stream == ATTN for s in range(n)]
    assert b.eval(f"{view}.rows.plot.data") == [rows["step"], *rows["values"]]
    labels = b.eval(f"{view}.rows.plot.series.map(s => s.label)")
    assert labels == ["step"] + [f"layer {k}" for k in range(layers)], labels
    strokes = b.eval(f"{view}.rows.plot.series.slice(1).map(s => s.stroke())")
    rgb = [tuple(int(x) for x in s[4:-1].split(",")) for s in strokes]
    assert len(set(rgb)) == layers, strokes
    green = [c[1] for c in rgb]  # viridis: darker to lighter from layer 0
    assert all(g2 > g1 for g1, g2 in zip(green, green[1:])), strokes


def mouse(b, kind, x, y):
    p = {"type": kind, "x": x, "y": y}
    if kind != "mouseMoved":
        p.update(button="left", clickCount=1)
    b.send("Input.dispatchMouseEvent", p)


def at_step(b, step, value):
    """Viewport coordinates of (step, value) on the per-layer chart."""
    return b.eval(f"""(() => {{ const u = {ROWS}.plot, r = u.over.getBoundingClientRect();
        return [r.left + u.valToPos({step}, 'x'), r.top + u.valToPos({value}, 'y')]; }})()""")


def slide(b, index):
    b.eval(f"""(() => {{ const s = {HEAT}.el.querySelector('input.step'); s.value = {index};
        s.dispatchEvent(new Event('input')); }})()""")


def distinct_globals():
    """Each top-level const, let, function or class of the page's own scripts (index.html's
    order) is declared once."""
    web = os.path.join(HERE, "..", "..", "daemon", "web")
    with open(os.path.join(web, "index.html")) as f:
        scripts = re.findall(r'<script src="([a-z]+\.js)">', f.read())
    assert scripts == ["tokens.js", "stats.js", "app.js"], scripts
    seen = {}
    for name in scripts:
        with open(os.path.join(web, name)) as f:
            for g in re.findall(r"^(?:const|let|var|function|class) ([A-Za-z_$][\w$]*)", f.read(),
                                re.M):
                assert g not in seen, f"{g}: declared in {seen[g]} and {name}"
                seen[g] = name
    assert {"heatColor", "statsView", "tokensView"} <= set(seen), sorted(seen)


def page_stats(d, shot):
    c = d.client()
    create(c)
    want = {ATTN: {}, GATE: {}}
    send_steps(c, range(0, 6), want)
    h = history_is_numpy(c, want)
    b = Browser()
    try:
        b.open(d.http + "?run=" + RUN)
        b.wait_for(f"{HEAT}.step === 5 && {ROWS}.step.length === 6 && "
                   "eigenwatch.views.gate.rows.step.length === 6", what="six steps")
        assert b.eval(f"[{VIEW}.L, {VIEW}.H, {VIEW}.reduce, {VIEW}.pick]") == [L, H, "max", None]
        # (a) the latest step by default, equal to numpy's max over ranks and batches
        heat = heat_matches(b, h, 5)
        assert np.array_equal(heat["cells"], want[ATTN][5])
        assert b.eval(f"{HEAT}.el.querySelector('.stepnum').textContent") == "step 5 · latest"
        heat_matches(b, h, 5, "eigenwatch.views.gate", GATE, (G,))
        # (b) one line per layer, by_row's
        rows_match(b, h, 6)
        rows_match(b, h, 6, "eigenwatch.views.gate", GATE, G)
        charts = b.eval("[...document.querySelectorAll('#charts .chart')]"
                        ".map(e => [e.dataset.metric, e.dataset.points])")
        assert charts == [["cell_max", "[6,6]"], ["cell_mean", "[6,6]"], ["cell_min", "[6,6]"],
                          ["erank", "[6]"]], charts
        assert b.eval("eigenwatch.charts.cell_max.streams") == [ATTN, GATE]
        views = b.eval("[...document.querySelectorAll('#views .chart')]"
                       ".map(e => [e.dataset.stream, e.dataset.view, e.dataset.series])")
        assert views == [[ATTN, "cells", "cells"], [ATTN, "rows", "by_row"],
                         [GATE, "cells", "cells"], [GATE, "rows", "by_row"]], views
        # the slider picks step 2, then the partial step
        slide(b, 2)
        heat_matches(b, h, 2)
        assert b.eval(f"{VIEW}.pick") == 2
        slide(b, PARTIAL)
        heat_matches(b, h, PARTIAL)
        assert b.eval(f"{HEAT}.el.querySelector('.stepnum').textContent") == \
            f"step {PARTIAL} (partial)"
        # the range over every held step
        b.eval(f"(() => {{ const s = {HEAT}.el.querySelector('select'); s.value = 'all'; "
               "s.dispatchEvent(new Event('change')); })()")
        heat_matches(b, h, PARTIAL, over=range(6))
        b.eval(f"(() => {{ const s = {HEAT}.el.querySelector('select'); s.value = 'step'; "
               "s.dispatchEvent(new Event('change')); })()")
        heat_matches(b, h, PARTIAL)
        # the cursor on the per-layer chart shows step 4 and names the nearest layer; a click
        # keeps it; the cursor gone, the heatmap stays there
        v = h[ATTN]["by_row"]["value"][4][2]
        mouse(b, "mouseMoved", *at_step(b, 4, v))
        b.wait_for(f"{HEAT}.step === 4", what="the cursor's step on the heatmap")
        heat_matches(b, h, 4)
        assert b.eval(f"{HEAT}.el.querySelector('.stepnum').textContent") == "step 4 · cursor"
        near = b.eval(f"{ROWS}.near")
        text = b.eval(f"{ROWS}.el.querySelector('.readout').textContent")
        assert text == f"step 4 · layer {near}: {fmt(h[ATTN]['by_row']['value'][4][near])}", text
        col = [r[near] for r in [h[ATTN]["by_row"]["value"][4]]][0]
        assert abs(col - v) <= min(abs(x - v) for x in h[ATTN]["by_row"]["value"][4]) + 1e-12
        assert b.eval(f"{VIEW}.pick") == PARTIAL
        mouse(b, "mousePressed", *at_step(b, 4, v))
        mouse(b, "mouseReleased", *at_step(b, 4, v))
        b.wait_for(f"{VIEW}.pick === 4", what="a click keeping step 4")
        mouse(b, "mouseMoved", 5, 5)
        b.wait_for(f"{VIEW}.hover === null", what="the cursor gone")
        heat_matches(b, h, 4)
        assert b.eval(f"{HEAT}.el.querySelector('input.step').value") == "4"
        # a cell under the cursor: layer 3, head 2
        xy = b.eval(f"""(() => {{ const u = {HEAT}.plot, r = u.over.getBoundingClientRect();
            return [r.left + u.valToPos(2, 'x'), r.top + u.valToPos(3, 'y')]; }})()""")
        mouse(b, "mouseMoved", *xy)
        text = b.wait_for(f"{HEAT}.el.querySelector('.readout').textContent", what="a readout")
        assert text == f"layer 3 · head 2: {fmt(h[ATTN]['cells']['value'][4][3 * H + 2])}", text
        mouse(b, "mouseMoved", 5, 5)
        polls = b.eval("eigenwatch.polls")
        # live: three more steps; the kept step stays, the lines grow
        send_steps(c, range(6, 9), want)
        h = history_is_numpy(c, want)
        b.wait_for(f"{ROWS}.step.length === 9 && eigenwatch.views.gate.rows.step.length === 9",
                   what="nine steps after the live update")
        assert b.eval("eigenwatch.polls") > polls and b.eval("location.href") == \
            d.http + "?run=" + RUN
        rows_match(b, h, 9)
        rows_match(b, h, 9, "eigenwatch.views.gate", GATE, G)
        heat_matches(b, h, 4)
        heat_matches(b, h, 8, "eigenwatch.views.gate", GATE, (G,))  # it follows the latest
        # the slider at its right end: the latest again, and it follows the next step
        slide(b, 8)
        assert b.eval(f"{VIEW}.pick") is None
        heat_matches(b, h, 8)
        send_steps(c, [9], want)
        h = history_is_numpy(c, want)
        b.wait_for(f"{HEAT}.step === 9 && {ROWS}.step.length === 10", what="step 9 followed")
        heat = heat_matches(b, h, 9)
        assert np.array_equal(heat["cells"], want[ATTN][9])
        rows_match(b, h, 10)
        assert b.eval(f"{HEAT}.el.querySelector('input.step').value") == "9"
        b.pump(0.5)
        b.screenshot(shot)
        with open(shot, "rb") as f:
            head = f.read(24)
        w, ht = struct.unpack(">II", head[16:24])
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and w >= 1000 and ht >= 600, (w, ht)
        assert b.errors == [], b.errors
        assert b.eval("eigenwatch.errors") == []
    finally:
        b.close()
    c.close()


def main():
    t = Tap()
    shot = os.environ.get("EW_PAGE_STATS_SCREENSHOT") or os.path.join(
        os.getcwd(), "page-stats.png")  # meson runs tests in the build directory
    t.case("page_scripts_declare_distinct_top_level_names", distinct_globals)
    d = Daemon()
    try:
        t.case("page_stats_heatmap_at_chosen_step_and_layer_lines_equal_history_live_no_errors",
               page_stats, d, shot)
    finally:
        d.stop()
    t.done()


if __name__ == "__main__":
    main()
