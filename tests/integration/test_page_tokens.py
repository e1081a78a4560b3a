"""The page's view of a tokens stream, in a real headless Chromium (over the DevTools protocol,
as test_page.py), against a real daemon fed multi-rank steps of numpy tokens:

- the daemon's history is numpy's (token_mean over the union of the ranks' counted tokens, the
  p5/p95 quantiles, the histogram's counts with out-of-range tokens in the end bins);
- (a) the band chart holds token_mean by step with the entropy_p5 to entropy_p95 band, each value
  equal to `history` bit for bit, as the uPlot data it draws ([step, mean, p95, p5], a band
  between the last two), a partial step marked, the band's fill painted between its edges and
  an alert fired on token_mean drawn as a red line at its step;
- (b) the heatmap holds one column of cells per step, counts equal to `history`'s lists, each
  cell's share its count over the step's total, and each cell's pixel on the canvas the colour
  of its share (white at 0, the darkest at the largest share, darker with a larger share);
- a tokens stream with the default eval and one column `h` gets the band from h_p5 to h_p95 and
  no heatmap;
- new steps arrive without a reload (the list series too); the matrix stream of the same run
  keeps its per-series chart, and the tokens streams' other series (token_std, h_p50,
  frac_above) keep theirs; a cursor over a heatmap cell reads out its step, bin and count;
- a screenshot is written (page-tokens.png beside test_page's page.png: the build directory
  under meson, or EW_PAGE_TOKENS_SCREENSHOT); the console has no error."""
import os
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

RUN, TOK, REF, MAT = "rl", "policy", "ref", "encoder"  # REF: a tokens stream's defaults
BINS, LO, HI = 16, 0.0, 4.0
PARTIAL = 3      # rank 1 never sends this step; a flush completes it
THRESHOLD = 0.9  # the alert rule: token_mean below this


def create(c):
    c.call("create", {"run": RUN, "stream": TOK, "kind": "tokens", "world": 2,
                      "columns": ["entropy", "logp", "advantage"],
                      "eval": [{"metric": "token_mean"}, {"metric": "token_std"},
                               {"metric": "quantile", "params": {"level": 0.05},
                                "as": "entropy_p5"},
                               {"metric": "quantile", "params": {"level": 0.95},
                                "as": "entropy_p95"},
                               {"metric": "histogram",
                                "params": {"bins": BINS, "lo": LO, "hi": HI}}],
                      "rules": [{"name": "entropy_collapse", "metric": "token_mean",
                                 "when": "below", "value": THRESHOLD}]})
    c.call("create", {"run": RUN, "stream": REF, "kind": "tokens", "columns": ["h"]})
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


def send_steps(c, steps, want):
    """Each step: rank 0 sends 300 tokens with a mask, rank 1 200 in sequences (lengths); the
    entropy's scale falls with the step, a few tokens past HI. REF gets 120 tokens of one rank.
    want[stream][step]: the counted tokens."""
    for step in steps:
        rng = np.random.default_rng(100 + step)
        counted = []
        for rank, n in ((0, 300), (1, 200)):
            if step == PARTIAL and rank == 1:
                continue
            ent = rng.gamma(2.0, 0.9 - 0.08 * step, n).astype(np.float32)
            ent[:3] = [4.0, 5.5, 9.0]  # at and past hi: the last bin
            cols = {"entropy": ent, "logp": -rng.random(n, dtype=np.float32),
                    "advantage": rng.standard_normal(n).astype(np.float32)}
            msg = {"run": RUN, "stream": TOK, "step": step, "rank": rank, "world": 2,
                   "end_step": True,
                   "columns": {k: {"dtype": "f32", "data": v.tobytes()} for k, v in cols.items()}}
            if rank == 0:
                mask = (rng.random(n) > 0.2).astype(np.uint8)
                msg["mask"] = mask.tobytes()
                counted.append(ent[mask == 1])
            else:
                msg["lengths"] = np.array([50, 70, 80], np.uint32).tobytes()
                counted.append(ent)
            c.call("ingest", msg)
        if step == PARTIAL:
            c.call("flush", {"run": RUN, "stream": TOK})
        want[TOK][step] = np.concatenate(counted).astype(np.float64)
        wait_points(c, TOK, "histogram", len(want[TOK]))
        ref = rng.gamma(3.0, 0.5, 120).astype(np.float32)
        c.call("ingest", {"run": RUN, "stream": REF, "step": step, "end_step": True,
                          "columns": {"h": {"dtype": "f32", "data": ref.tobytes()}}})
        want[REF][step] = ref.astype(np.float64)
        wait_points(c, REF, "token_mean", len(want[REF]))
        X = np.random.default_rng(step).standard_normal((32, 8)).astype(np.float32)
        c.call("ingest", {"run": RUN, "stream": MAT, "step": step, "end_step": True,
                          "dtype": "f32", "shape": list(X.shape), "data": X.tobytes()})
        wait_points(c, MAT, "erank", step + 1)


def history_is_numpy(c, want):
    """history[stream][series], checked against numpy."""
    out = {}
    for stream, col in ((TOK, "entropy"), (REF, "h")):
        h = out[stream] = {s["metric"]: s for s in
                           c.call("history", {"run": RUN, "stream": stream})["series"]}
        steps = sorted(want[stream])
        assert h["token_mean"]["step"] == steps, h["token_mean"]["step"]
        assert h["token_mean"]["partial"] == [s == PARTIAL and stream == TOK for s in steps]
        for i, step in enumerate(steps):
            x = want[stream][step]
            close(h["token_mean"]["value"][i], x.mean(), 1e-12, f"token_mean @ {step}")
            for q in (5, 95):
                close(h[f"{col}_p{q}"]["value"][i], np.quantile(x, q / 100), 1e-9,
                      f"{stream} p{q} @ {step}")
            if stream == TOK:
                b = np.clip(np.floor((x - LO) / (HI - LO) * BINS), 0, BINS - 1).astype(int)
                assert h["histogram"]["value"][i] == np.bincount(b, minlength=BINS).tolist(), step
    return out


BAND = "eigenwatch.views['policy'].band"
HEAT = "eigenwatch.views['policy'].heats[0]"


def band_matches(b, hist, n, stream=TOK, col="entropy"):
    h, at = hist[stream], f"eigenwatch.views['{stream}'].band"
    band = b.eval(f"(({{step, mean, lo, hi, partial}}) => "
                  f"({{step, mean, lo, hi, partial}}))({at})")
    assert band["step"] == h["token_mean"]["step"][:n] == list(range(n)), band["step"]
    for key, series in (("mean", "token_mean"), ("lo", f"{col}_p5"), ("hi", f"{col}_p95")):
        got, want = band[key], h[series]["value"][:n]
        assert len(got) == n and all(same_float(x, y) for x, y in zip(got, want)), (key, got, want)
    assert band["partial"] == [s == PARTIAL and stream == TOK for s in range(n)], band["partial"]
    # what uPlot draws: [step, mean, p95, p5] with a band between the last two
    assert b.eval(f"{at}.plot.data") == [band["step"], band["mean"], band["hi"], band["lo"]]
    assert b.eval(f"{at}.plot.series.map(s => s.label)") == \
        ["step", "token_mean", f"{col}_p95", f"{col}_p5"]
    assert b.eval(f"{at}.plot.bands.map(x => x.series)") == [[2, 3]]
    return band


def band_painted(b, band):
    """Halfway between two steps and between the mean and p95 lines: the band's blue fill; well
    above p95 at the same x: nothing (the plot's background)."""
    for i in range(len(band["step"]) - 1):
        px = b.eval(f"""(() => {{ const b = {BAND}, u = b.plot, i = {i};
            const mid = (v, w, axis) => (u.valToPos(v, axis, true) + u.valToPos(w, axis, true)) / 2;
            const x = mid(b.step[i], b.step[i + 1], 'x'), y = (k) => mid(b[k][i], b[k][i + 1], 'y');
            const at = (yy) => [...u.ctx.getImageData(Math.round(x), Math.round(yy), 1, 1).data];
            return {{inside: at((y('mean') + y('hi')) / 2), gap: y('mean') - y('hi')}}; }})()""")
        if px["gap"] < 8:  # too close to tell the fill from the lines
            continue
        r, g, bl, a = px["inside"]
        assert a > 20 and bl > g > r, (i, px)


def heat_matches(b, hist, n):
    h = hist[TOK]
    heat = b.eval(f"(({{step, counts, share, rgb, max, lo, hi, bins}}) => "
                  f"({{step, counts, share, rgb, max, lo, hi, bins}}))({HEAT})")
    assert (heat["lo"], heat["hi"], heat["bins"]) == (LO, HI, BINS), heat
    assert heat["step"] == h["histogram"]["step"][:n] == list(range(n)), heat["step"]
    assert heat["counts"] == h["histogram"]["value"][:n]
    counts = np.array(heat["counts"])
    share = counts / counts.sum(axis=1, keepdims=True)
    assert np.allclose(heat["share"], share, rtol=1e-15, atol=0), heat["share"]
    close(heat["max"], share.max(), 1e-15, "largest share")
    # each cell's pixel at its centre is the colour of its share
    pixels = b.eval(f"""(() => {{ const h = {HEAT}, u = h.plot, w = (h.hi - h.lo) / h.bins;
        return h.step.map((st, i) => h.counts[i].map((_, j) => [...u.ctx.getImageData(
            Math.round(u.valToPos(st, 'x', true)),
            Math.round(u.valToPos(h.lo + (j + 0.5) * w, 'y', true)), 1, 1).data])); }})()""")
    rgb = np.array(heat["rgb"])
    assert [[p[:3] for p in row] for row in pixels] == heat["rgb"], "painted colours"
    assert all(p[3] == 255 for row in pixels for p in row)
    assert (rgb[share == 0] == 255).all(), "an empty bin is white"
    assert rgb[share == share.max()].tolist()[0] == [8, 48, 107], "the largest share: darkest"
    order = np.argsort(share.ravel(), kind="stable")
    dark = rgb.reshape(-1, 3).sum(axis=1)[order]
    assert (np.diff(dark) <= 0).all(), "a larger share is never lighter"


def page_tokens(d, shot):
    c = d.client()
    create(c)
    want = {TOK: {}, REF: {}}
    send_steps(c, range(0, 6), want)
    h = history_is_numpy(c, want)
    b = Browser()
    try:
        b.open(d.http + "?run=" + RUN)
        b.wait_for(f"{BAND}.step.length === 6 && {HEAT}.step.length === 6",
                   what="the tokens view's first six steps")
        band_matches(b, h, 6)
        band_matches(b, h, 6, REF, "h")
        heat_matches(b, h, 6)
        # per-series charts: the matrix stream's, and the tokens series no view draws
        charts = b.eval("[...document.querySelectorAll('#charts .chart')]"
                        ".map(e => [e.dataset.metric, e.dataset.points])")
        assert charts == [["erank", "[6]"], ["frac_above", "[6]"], ["h_p50", "[6]"],
                          ["token_std", "[6,6]"]], charts
        assert b.eval("eigenwatch.charts.erank.streams") == [MAT]
        assert b.eval("eigenwatch.charts.token_std.streams") == [TOK, REF]
        views = b.eval("[...document.querySelectorAll('#views .chart')]"
                       ".map(e => [e.dataset.stream, e.dataset.view])")
        assert views == [[TOK, "band"], [TOK, "heat"], [REF, "band"]], views
        polls = b.eval("eigenwatch.polls")
        # live: two more steps; the rule fires where token_mean first falls below THRESHOLD
        send_steps(c, range(6, 9), want)
        h = history_is_numpy(c, want)
        b.wait_for(f"{BAND}.step.length === 9 && {HEAT}.step.length === 9",
                   what="nine steps after the live update")
        assert b.eval("eigenwatch.polls") > polls and b.eval("location.href") == \
            d.http + "?run=" + RUN
        band = band_matches(b, h, 9)
        band_matches(b, h, 9, REF, "h")
        heat_matches(b, h, 9)
        band_painted(b, band)
        # the cursor over a cell reads out its step, bin and count
        at = b.eval(f"""(() => {{ const h = {HEAT}, u = h.plot, r = u.over.getBoundingClientRect();
            return [r.left + u.valToPos(5, 'x'), r.top + u.valToPos(1.1, 'y')]; }})()""")
        b.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": at[0], "y": at[1]})
        text = b.wait_for(f"{HEAT}.el.querySelector('.readout').textContent", what="a readout")
        n = h[TOK]["histogram"]["value"][5][4]  # [1, 1.25): bin 4 of 16 on [0, 4)
        share = float(text.rsplit("(", 1)[1].rstrip("%)"))
        assert text.startswith(f"step 5 · entropy in [1.0000, 1.2500) · {n:g} tokens ("), text
        close(share, 100 * n / sum(h[TOK]["histogram"]["value"][5]), 5e-3, "the readout's share")
        fired = [a for a in c.call("alerts", {"run": RUN})["alerts"] if a["state"] == "firing"]
        first = min(s for s, x in want[TOK].items() if x.mean() < THRESHOLD)
        assert [(a["stream"], a["step"]) for a in fired] == [(TOK, first)], (fired, first)
        marker = b.wait_for("Object.values(eigenwatch.markers)", what="an alert marker")
        assert marker == [{"metric": "token_mean", "stream": TOK, "rule": "entropy_collapse",
                           "step": first}], marker
        b.eval(f"{BAND}.plot.redraw(false)")
        red = b.eval(f"""(() => {{ const u = {BAND}.plot;
            const x = Math.round(u.valToPos({first}, 'x', true));
            return [-1, 0, 1].map(dx => [...u.ctx.getImageData(x + dx, u.bbox.top + 3, 1, 1).data]);
            }})()""")
        assert any(p[0] > 150 and p[1] < 110 and p[3] > 128 for p in red), red
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
    shot = os.environ.get("EW_PAGE_TOKENS_SCREENSHOT") or os.path.join(
        os.getcwd(), "page-tokens.png")  # meson runs tests in the build directory
    d = Daemon()
    try:
        t.case("page_tokens_band_and_heatmap_equal_history_live_marker_no_errors", page_tokens, d,
               shot)
    finally:
        d.stop()
    t.done()


if __name__ == "__main__":
    main()
