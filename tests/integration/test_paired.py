#!/usr/bin/python3
"""Paired streams over the wire (kind "paired", Dissecting CLIP, Ospanov et al. 2024), against the
numpy statement (tests/numeric/kernel_ref.py: paired_blocks, sce, sce_text, nullify). A real
daemon, driven with the harness's msgpack-RPC client.

1. create + ingest in 3 batches of mixed dtypes (f32 x with f64 y, f16 with f16, f64 x with f16
   y): `query` sce and sce_text equal kernel_ref on the values as sent (widened to f64) at 1e-9
   relative; info's config says kind paired, dims, features linear, dim dx + dy; create again
   with the same configuration answers created false.
2. Stepped ingest from 2 ranks (world 2) over 4 steps, ranks in either order: every step completes
   (not partial, both ranks), `history` has sce and sce_text at each step, each equal to numpy on
   the union of the pairs up to that step at 1e-9; rows per step as sent.
3. Restart: linear and rff streams (and a stepped stream with a step pending, half its ranks
   sent, the batch of two dtypes) snapshotted, the daemon stopped and started on the same state
   dir: sce and sce_text identical (==), `export` bytes identical, nullify's answer bytes
   identical; the pending step then completes into the union (numpy, 1e-9).
4. Export/merge: three streams each fed a third, exported and merged into a fresh stream on
   another daemon, equal one stream fed everything (sce, sce_text at 1e-12 relative, nullify at
   1e-10 of max|y|); the same for rff (one seeded Ω on both daemons). An rff export into a linear
   stream, into an rff stream of another sigma and into one of another seed is BAD_PARAM naming
   the features, and the destination answers as before (count, sce, export bytes).
5. nullify: equals kernel_ref.nullify(x, y, fit_x, fit_y) at 1e-10 (relative to max|y|) with a
   full-rank C_xx (mixed dtypes in the request); the corrected fit rows are uncorrelated with x
   (‖xᵀ·out‖_max / (‖x‖_F‖y‖_F) ≤ 1e-12); the stream is unchanged by it; 0 rows answer shape
   [0, dy]; an rff stream is BAD_PARAM naming "linear", a matrix stream BAD_PARAM, an unknown
   stream NO_SUCH_STREAM, dims not the stream's DIM_MISMATCH, 3 rows of x with 4 of y
   BAD_REQUEST, an empty paired stream DEGENERATE.
6. Bad input, each refused with its code and words in its message, the paired stream's count,
   sce, sce_text and export bytes unchanged: ingest of x without y, y without x, x with data,
   different n, wrong dx, a bad x map, a NaN in y (one dtype and two), an infinity in x; x/y to a
   matrix stream (BAD_PARAM, it unchanged) and to an unknown stream (NO_SUCH_STREAM, `list`
   unchanged); rows (`data` and `rows`) to a paired stream (BAD_PARAM); labels with x/y
   (BAD_REQUEST). create: dims or features on kind matrix, kind paired without dims, dims out of
   range, dim not dx + dy, rff without sigma, rff with unequal dims, window_steps or recent on
   paired, normalize on paired — all BAD_PARAM, no stream created.
7. /metrics (the daemon's HTTP exposition) carries the paired stream's sce and sce_text after an
   evaluation: one eigenwatch_value sample each, equal to history's last value, and its step.
"""
import os
import sys
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
import kernel_ref as ref  # noqa: E402
from harness import Daemon, RpcError  # noqa: E402
from taplib import Tap  # noqa: E402

NP = {"f64": "<f8", "f32": "<f4", "f16": "<f2"}


def arr(a, dt="f64"):
    """An ingest/nullify side {dtype, data, shape} of rows a in wire dtype dt."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64).astype(NP[dt]))
    return {"dtype": dt, "data": a.tobytes(), "shape": list(a.shape)}


def as_sent(a, dt):
    """The values the daemon reads from arr(a, dt), widened to f64 (exact)."""
    return np.asarray(a, dtype=np.float64).astype(NP[dt]).astype(np.float64)


def pairs(stream, x, y, xt="f64", yt="f64", **extra):
    return dict({"stream": stream, "x": arr(x, xt), "y": arr(y, yt)}, **extra)


def rel(a, b):
    return abs(a - b) / abs(b)


def want_close(got, want, tol, what):
    assert rel(got, want) <= tol, f"{what}: got {got!r}, want {want!r} (rel {rel(got, want):.3e})"


def refused(code, words, fn, *a, **kw):
    """fn(*a, **kw) raises RpcError with `code` and every one of `words` in its message."""
    try:
        fn(*a, **kw)
    except RpcError as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        for w in ([words] if isinstance(words, str) else words):
            assert w in e.message, f"{code}: {w!r} not in {e.message!r}"
        return e
    raise AssertionError(f"expected {code} ({words}), the call succeeded")


def sces(c, stream):
    m = c.call("query", {"stream": stream, "metrics": ["sce", "sce_text"]})["metrics"]
    return m["sce"], m["sce_text"]


def snapshot_of(c, stream):
    """What must not change: count, sce, sce_text, the exported bytes."""
    return (c.call("info", {"stream": stream})["count"], sces(c, stream),
            c.call("export", {"stream": stream})["state"])


def nullify(c, stream, x, y, xt="f64", yt="f64"):
    r = c.call("nullify", pairs(stream, x, y, xt, yt))
    out = r["y"]
    assert out["dtype"] == "f64" and out["shape"] == [len(x), np.shape(y)[1]], out["shape"]
    return r, np.frombuffer(out["data"], dtype="<f8").reshape(out["shape"])


def history(c, stream, run=None):
    p = {"stream": stream}
    if run:
        p["run"] = run
    return {s["metric"]: s for s in c.call("history", p)["series"]}


def wait_history(c, stream, steps, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = history(c, stream)
        if all(len(h.get(m, {"step": []})["step"]) >= steps for m in ("sce", "sce_text")):
            return h
        time.sleep(0.02)
    raise AssertionError(f"history of {stream} has not got {steps} steps: {history(c, stream)}")


def wait_count(c, stream, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if c.call("info", {"stream": stream})["count"] == count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{stream}: count {c.call('info', {'stream': stream})['count']}, "
                         f"want {count}")


def draw(rng, n, dx, dy, noise=0.3, B=None):
    """n pairs: x standard normal, y = x·B + noise (y depends on x, not only through x)."""
    x = rng.standard_normal((n, dx))
    B = rng.standard_normal((dx, dy)) * 0.5 if B is None else B
    return x, x @ B + noise * rng.standard_normal((n, dy))


# ---- 1 ------------------------------------------------------------------------------------------

def create_ingest_query_mixed_dtypes():
    rng = np.random.default_rng(1)
    dx, dy = 6, 5
    B = rng.standard_normal((dx, dy)) * 0.4
    d = Daemon()
    try:
        c = d.client()
        r = c.call("create", {"stream": "p", "kind": "paired", "dims": [dx, dy]})
        assert r["created"] is True, r
        xs, ys = [], []
        for n, xt, yt in ((40, "f32", "f64"), (70, "f16", "f16"), (90, "f64", "f16")):
            x, y = draw(rng, n, dx, dy, 0.2, B)
            got = c.call("ingest", pairs("p", x, y, xt, yt))
            assert got["accepted"] == n, got
            xs.append(as_sent(x, xt))
            ys.append(as_sent(y, yt))
        X, Y = np.vstack(xs), np.vstack(ys)
        q = c.call("query", {"stream": "p", "metrics": ["sce", "sce_text"]})
        assert q["count"] == 200 and q["as_of"] == 200 and q["dim"] == dx + dy, q
        want_close(q["metrics"]["sce"], ref.sce(X, Y), 1e-9, "sce")
        want_close(q["metrics"]["sce_text"], ref.sce_text(X, Y), 1e-9, "sce_text")
        info = c.call("info", {"stream": "p"})
        cfg = info["config"]
        assert info["count"] == 200, info
        assert (cfg["kind"], cfg["dims"], cfg["features"], cfg["dim"]) == \
            ("paired", [dx, dy], "linear", dx + dy), cfg
        assert [e["metric"] for e in info["eval"]["metrics"]] == ["sce", "sce_text"], info["eval"]
        again = c.call("create", {"stream": "p", "kind": "paired", "dims": [dx, dy]})
        assert again["created"] is False, again
    finally:
        d.stop()


# ---- 2 ------------------------------------------------------------------------------------------

def stepped_two_ranks_history():
    rng = np.random.default_rng(2)
    dx, dy = 4, 3
    B = rng.standard_normal((dx, dy)) * 0.5
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "s", "kind": "paired", "dims": [dx, dy], "world": 2})
        sent = {}
        for step in range(4):
            for rank in ((1, 0) if step % 2 else (0, 1)):  # ranks in either order
                x, y = draw(rng, 12 + 5 * rank + step, dx, dy, 0.3, B)
                xt, yt = ("f32", "f64") if rank else ("f64", "f64")
                sent.setdefault(step, []).append((as_sent(x, xt), as_sent(y, yt)))
                c.call("ingest", pairs("s", x, y, xt, yt, step=step, rank=rank, world=2,
                                       end_step=step == 3))
        h = wait_history(c, "s", 4)
        total = sum(len(px) for b in sent.values() for px, _ in b)
        wait_count(c, "s", total)
        for m in ("sce", "sce_text"):
            s = h[m]
            assert s["step"] == [0, 1, 2, 3], s["step"]
            assert s["partial"] == [False] * 4 and s["ranks"] == [2] * 4, s
            for i, step in enumerate(s["step"]):
                assert s["rows"][i] == sum(len(px) for px, _ in sent[step]), (s["rows"], step)
                upto = [b for k in range(step + 1) for b in sent[k]]
                X = np.vstack([px for px, _ in upto])
                Y = np.vstack([py for _, py in upto])
                want = ref.sce(X, Y) if m == "sce" else ref.sce_text(X, Y)
                want_close(s["value"][i], want, 1e-9, f"{m} at step {step}")
    finally:
        d.stop()


# ---- 3 ------------------------------------------------------------------------------------------

def restart_keeps_state_bit_for_bit():
    rng = np.random.default_rng(3)
    d = Daemon()
    d2 = None
    try:
        c = d.client()
        c.call("create", {"stream": "lin", "kind": "paired", "dims": [5, 4]})
        c.call("create", {"stream": "rff", "kind": "paired", "dims": [4, 4], "features": "rff",
                          "sigma": 2.0, "rff_dim": 48, "seed": 9})
        c.call("create", {"stream": "st", "kind": "paired", "dims": [3, 3], "world": 2})
        for _ in range(2):
            c.call("ingest", pairs("lin", *draw(rng, 60, 5, 4), "f32", "f64"))
            c.call("ingest", pairs("rff", *draw(rng, 50, 4, 4)))
        x0, y0 = draw(rng, 20, 3, 3)
        x1, y1 = draw(rng, 25, 3, 3)
        c.call("ingest", pairs("st", x0, y0, "f32", "f64", step=0, rank=0, world=2))
        qx, qy = draw(rng, 8, 5, 4)
        before = {s: (sces(c, s), c.call("export", {"stream": s})["state"])
                  for s in ("lin", "rff")}
        nul_before = c.call("nullify", pairs("lin", qx, qy))["y"]["data"]
        st_before = c.call("export", {"stream": "st"})["state"]
        assert c.call("info", {"stream": "st"})["count"] == 0  # the step is pending
        snap = c.call("snapshot", {})
        assert snap["streams"] >= 3, snap
        assert d.stop() == 0
        d2 = Daemon(state_dir=d.dir)
        c2 = d2.client()
        for s, (sc, exp) in before.items():
            got = sces(c2, s)
            assert got == sc, f"{s}: sce/sce_text {got} after the restart, {sc} before"
            assert c2.call("export", {"stream": s})["state"] == exp, f"{s}: export changed"
        assert c2.call("nullify", pairs("lin", qx, qy))["y"]["data"] == nul_before
        assert c2.call("export", {"stream": "st"})["state"] == st_before, "staged step changed"
        # the pending step completes after the restart, into the union of both ranks' pairs
        c2.call("ingest", pairs("st", x1, y1, step=0, rank=1, world=2, end_step=True))
        c2.call("ingest", {"stream": "st", "step": 0, "rank": 0, "world": 2, "end_step": True})
        wait_count(c2, "st", 45)
        X = np.vstack([as_sent(x0, "f32"), x1])
        Y = np.vstack([y0, y1])
        s, t = sces(c2, "st")
        want_close(s, ref.sce(X, Y), 1e-9, "sce of the step completed after the restart")
        want_close(t, ref.sce_text(X, Y), 1e-9, "sce_text of the step completed after restart")
    finally:
        (d2 or d).stop()


# ---- 4 ------------------------------------------------------------------------------------------

def export_merge_equals_union_and_features_must_match():
    rng = np.random.default_rng(4)
    a, b = Daemon(), Daemon()
    try:
        ca, cb = a.client(), b.client()
        dx, dy = 5, 4
        B = rng.standard_normal((dx, dy)) * 0.5
        cb.call("create", {"stream": "all", "kind": "paired", "dims": [dx, dy]})
        for i in range(3):
            ca.call("create", {"stream": f"p{i}", "kind": "paired", "dims": [dx, dy]})
            for k in range(2):
                x, y = draw(rng, 30 + 10 * i + k, dx, dy, 0.3, B)
                xt = ("f32", "f64", "f16")[i]
                ca.call("ingest", pairs(f"p{i}", x, y, xt, "f64"))
                cb.call("ingest", pairs("all", x, y, xt, "f64"))
        exported = [ca.call("export", {"stream": f"p{i}"})["state"] for i in range(3)]
        r = [cb.call("merge", {"stream": "merged", "state": s}) for s in exported]
        assert [m["created"] for m in r] == [True, False, False], r
        n_all = cb.call("info", {"stream": "all"})["count"]
        assert r[-1]["count"] == n_all == cb.call("info", {"stream": "merged"})["count"], r
        for got, want, m in zip(sces(cb, "merged"), sces(cb, "all"), ("sce", "sce_text")):
            want_close(got, want, 1e-12, f"merged {m}")
        qx, qy = draw(rng, 10, dx, dy, 0.3, B)
        _, nm = nullify(cb, "merged", qx, qy)
        _, na = nullify(cb, "all", qx, qy)
        err = np.abs(nm - na).max() / np.abs(qy).max()
        assert err <= 1e-10, f"nullify merged vs union: {err:.3e}"
        # rff: one Ω from the seed on both daemons, so the sums add
        rcfg = {"kind": "paired", "dims": [4, 4], "features": "rff", "sigma": 1.5, "rff_dim": 32,
                "seed": 5}
        cb.call("create", dict(rcfg, stream="rall"))
        for i in range(2):
            ca.call("create", dict(rcfg, stream=f"r{i}"))
            x, y = draw(rng, 40, 4, 4)
            ca.call("ingest", pairs(f"r{i}", x, y))
            cb.call("ingest", pairs("rall", x, y))
        rexp = [ca.call("export", {"stream": f"r{i}"})["state"] for i in range(2)]
        for s in rexp:
            cb.call("merge", {"stream": "rm", "state": s})
        for got, want, m in zip(sces(cb, "rm"), sces(cb, "rall"), ("sce", "sce_text")):
            want_close(got, want, 1e-12, f"rff merged {m}")
        # an rff state into a stream of other features: refused, the stream unchanged
        for name, cfg in (("lin4", {"kind": "paired", "dims": [4, 4]}),
                          ("rsig", dict(rcfg, sigma=3.0)),
                          ("rseed", dict(rcfg, seed=6)),
                          ("rdim", dict(rcfg, rff_dim=16))):
            cb.call("create", dict(cfg, stream=name))
            cb.call("ingest", pairs(name, *draw(rng, 30, 4, 4)))
            was = snapshot_of(cb, name)
            refused("BAD_PARAM", "features", cb.call, "merge", {"stream": name, "state": rexp[0]})
            assert snapshot_of(cb, name) == was, f"{name} changed by a refused merge"
        # a linear state into an rff stream, the other way round
        ca.call("create", {"stream": "l4", "kind": "paired", "dims": [4, 4]})
        ca.call("ingest", pairs("l4", *draw(rng, 30, 4, 4)))
        was = snapshot_of(cb, "rall")
        refused("BAD_PARAM", "features", cb.call, "merge",
                {"stream": "rall", "state": ca.call("export", {"stream": "l4"})["state"]})
        assert snapshot_of(cb, "rall") == was, "rall changed by a refused merge"
    finally:
        a.stop()
        b.stop()


# ---- 5 ------------------------------------------------------------------------------------------

def nullify_over_the_wire():
    rng = np.random.default_rng(5)
    dx, dy = 5, 4
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "p", "kind": "paired", "dims": [dx, dy]})
        fx, fy = draw(rng, 300, dx, dy, 0.1)
        for part in (slice(0, 120), slice(120, 300)):
            c.call("ingest", pairs("p", fx[part], fy[part]))
        assert np.linalg.matrix_rank(fx.T @ fx) == dx  # full-rank C_xx
        was = snapshot_of(c, "p")
        qx, qy = draw(rng, 20, dx, dy, 0.5)
        r, out = nullify(c, "p", qx, qy, "f32", "f64")
        assert r["stream"] == "p" and r["count"] == 300, {k: r[k] for k in ("stream", "count")}
        want = ref.nullify(as_sent(qx, "f32"), qy, fx, fy)
        err = np.abs(out - want).max() / np.abs(qy).max()
        assert err <= 1e-10, f"nullify vs kernel_ref: {err:.3e}"
        # the fit's own rows, corrected: uncorrelated with x (the residual of least squares)
        _, fo = nullify(c, "p", fx, fy)
        err = np.abs(fo - ref.nullify(fx, fy)).max() / np.abs(fy).max()
        assert err <= 1e-10, f"nullify of the fit rows vs kernel_ref: {err:.3e}"
        corr = np.abs(fx.T @ fo).max() / (np.linalg.norm(fx) * np.linalg.norm(fy))
        assert corr <= 1e-12, f"‖xᵀ·out‖_max/(‖x‖‖y‖) = {corr:.3e}"
        assert snapshot_of(c, "p") == was, "nullify changed the stream"
        _, empty = nullify(c, "p", np.zeros((0, dx)), np.zeros((0, dy)))
        assert empty.shape == (0, dy)
        # refusals
        c.call("create", {"stream": "r", "kind": "paired", "dims": [4, 4], "features": "rff",
                          "sigma": 1.0, "rff_dim": 16})
        c.call("ingest", pairs("r", *draw(rng, 20, 4, 4)))
        c.call("create", {"stream": "m", "dim": dx + dy})
        c.call("create", {"stream": "e", "kind": "paired", "dims": [dx, dy]})
        x4, y4 = draw(rng, 4, 4, 4)
        refused("BAD_PARAM", "linear", c.call, "nullify", pairs("r", x4, y4))
        refused("BAD_PARAM", "not a paired stream", c.call, "nullify", pairs("m", qx, qy))
        refused("NO_SUCH_STREAM", "nosuch", c.call, "nullify", pairs("nosuch", qx, qy))
        refused("DIM_MISMATCH", "[5, 4]", c.call, "nullify", pairs("p", qx[:, :4], qy))
        refused("DIM_MISMATCH", "[5, 4]", c.call, "nullify", pairs("p", qx, qy[:, :3]))
        refused("BAD_REQUEST", ["3 rows", "4"], c.call, "nullify", pairs("p", qx[:3], qy[:4]))
        refused("DEGENERATE", "no pairs", c.call, "nullify", pairs("e", qx, qy))
        assert snapshot_of(c, "p") == was, "a refused nullify changed the stream"
    finally:
        d.stop()


# ---- 6 ------------------------------------------------------------------------------------------

def names(c):
    return sorted((s["run"], s["stream"]) for s in c.call("list", {})["streams"])


def bad_input_changes_nothing():
    rng = np.random.default_rng(6)
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "p", "kind": "paired", "dims": [3, 4]})
        c.call("ingest", pairs("p", *draw(rng, 30, 3, 4)))
        c.call("create", {"stream": "m", "dim": 7})
        c.call("ingest", {"stream": "m", "data": rng.standard_normal((10, 7)).tobytes(),
                          "dtype": "f64", "shape": [10, 7]})
        was = snapshot_of(c, "p")
        m_was = (c.call("info", {"stream": "m"})["count"],
                 c.call("export", {"stream": "m"})["state"])
        listed = names(c)
        x, y = draw(rng, 5, 3, 4)
        xa, ya = arr(x), arr(y)
        yn = y.copy()
        yn[2, 1] = np.nan
        xi = x.copy()
        xi[0, 0] = np.inf
        bad_ingest = [
            ("x without y", "BAD_REQUEST", "'x' and 'y' go together", {"x": xa}),
            ("y without x", "BAD_REQUEST", "'x' and 'y' go together", {"y": ya}),
            ("x with data", "BAD_REQUEST", "'x' and 'y' alone",
             {"x": xa, "y": ya, "data": y.tobytes(), "dtype": "f64", "shape": [5, 4]}),
            ("different n", "BAD_REQUEST", ["'x' has 5 rows", "'y' 4"], {"x": xa, "y": arr(y[:4])}),
            ("wrong dx", "DIM_MISMATCH", ["[3, 4]", "x has 2 values"],
             {"x": arr(x[:, :2]), "y": ya}),
            ("wrong dy", "DIM_MISMATCH", ["[3, 4]", "y 5"],
             {"x": xa, "y": arr(np.hstack([y, y[:, :1]]))}),
            ("x data short", "BAD_REQUEST", "'x' data has",
             {"x": dict(xa, data=xa["data"][:-8]), "y": ya}),
            ("x not a map", "BAD_REQUEST", "'x' must be a map", {"x": [1, 2, 3], "y": ya}),
            ("NaN in y", "NON_FINITE", "NaN", {"x": xa, "y": arr(yn)}),
            ("NaN in y, f32 x", "NON_FINITE", "NaN", {"x": arr(x, "f32"), "y": arr(yn)}),
            ("NaN in y, f32 both", "NON_FINITE", "NaN", {"x": arr(x, "f32"), "y": arr(yn, "f32")}),
            ("inf in x, f16 y", "NON_FINITE", "infinite", {"x": arr(xi), "y": arr(y, "f16")}),
            ("rows as data", "BAD_PARAM", ["is a paired stream", "'x' and 'y'"],
             {"data": np.hstack([x, y]).tobytes(), "dtype": "f64", "shape": [5, 7]}),
            ("rows as rows", "BAD_PARAM", "is a paired stream",
             {"rows": np.hstack([x, y]).tolist()}),
            ("labels with x/y", "BAD_REQUEST", "'labels'",
             {"x": xa, "y": ya, "labels": np.zeros(5, "<u4").tobytes()}),
        ]
        for what, code, words, params in bad_ingest:
            try:
                refused(code, words, c.call, "ingest", dict(params, stream="p"))
            except AssertionError as e:
                raise AssertionError(f"{what}: {e}") from e
            assert snapshot_of(c, "p") == was, f"{what}: the stream changed"
        refused("BAD_PARAM", "not a paired stream", c.call, "ingest", pairs("m", x, y))
        assert (c.call("info", {"stream": "m"})["count"],
                c.call("export", {"stream": "m"})["state"]) == m_was, "the matrix stream changed"
        refused("NO_SUCH_STREAM", ["nosuch", "kind \"paired\""], c.call, "ingest",
                pairs("nosuch", x, y))
        refused("NO_SUCH_STREAM", "nosuch", c.call, "ingest",
                pairs("nosuch", x, y, step=0, rank=0, world=1))
        assert names(c) == listed, "an ingest of pairs to an unknown stream created one"
        bad_create = [
            ("dims on matrix", ["'dims' belongs to kind \"paired\"", "matrix"],
             {"dim": 7, "dims": [3, 4]}),
            ("features on matrix", "'features' belongs to kind \"paired\"",
             {"dim": 7, "features": "linear"}),
            ("sigma on matrix", "'sigma' belongs", {"dim": 7, "sigma": 1.0}),
            ("paired without dims", "needs its 'dims'", {"kind": "paired"}),
            ("paired with one dim", "'dims'", {"kind": "paired", "dims": [3]}),
            ("dims 0", "'dims' must be", {"kind": "paired", "dims": [0, 4]}),
            ("dims above 8192", "'dims' must be", {"kind": "paired", "dims": [3, 8193]}),
            ("dim not dx + dy", "dx + dy", {"kind": "paired", "dims": [3, 4], "dim": 8}),
            ("rff without sigma", "'sigma'", {"kind": "paired", "dims": [4, 4],
                                              "features": "rff"}),
            ("rff unequal dims", ["rff", "equal"],
             {"kind": "paired", "dims": [3, 4], "features": "rff", "sigma": 1.0}),
            ("window_steps", "'window_steps'", {"kind": "paired", "dims": [3, 4],
                                                 "window_steps": 2}),
            ("recent", "'recent'", {"kind": "paired", "dims": [3, 4], "recent": True}),
            ("normalize", "'normalize'", {"kind": "paired", "dims": [3, 4], "normalize": "l2"}),
            ("decay", ["'decay' does not apply", "paired"],
             {"kind": "paired", "dims": [3, 4], "decay": 5}),
            ("window", "'window' does not apply", {"kind": "paired", "dims": [3, 4],
                                                   "window": 10}),
            ("live_k", "'live_k' does not apply", {"kind": "paired", "dims": [3, 4],
                                                   "live_k": 2}),
        ]
        for what, words, params in bad_create:
            try:
                refused("BAD_PARAM", words, c.call, "create", dict(params, stream="q"))
            except AssertionError as e:
                raise AssertionError(f"create {what}: {e}") from e
        assert names(c) == listed, "a refused create made a stream"
        assert snapshot_of(c, "p") == was
    finally:
        d.stop()


# ---- 7 ------------------------------------------------------------------------------------------

def metrics_exposition_carries_sce():
    rng = np.random.default_rng(7)
    d = Daemon()
    try:
        if not d.http:
            print("# skip: this daemon serves no HTTP (/metrics); nothing to read", flush=True)
            return
        c = d.client()
        c.call("create", {"run": "gen", "stream": "clip", "kind": "paired", "dims": [4, 4]})
        for step in range(3):
            c.call("ingest", dict(pairs("clip", *draw(rng, 25, 4, 4), step=step, rank=0, world=1,
                                        end_step=step == 2), run="gen"))
        deadline = time.time() + 20
        while True:
            h = history(c, "clip", run="gen")
            if all(len(h.get(m, {"step": []})["step"]) == 3 for m in ("sce", "sce_text")):
                break
            assert time.time() < deadline, h
            time.sleep(0.02)
        with urllib.request.urlopen(d.http + "metrics", timeout=10) as r:
            text = r.read().decode()
        mine = [ln for ln in text.splitlines() if 'run="gen",stream="clip"' in ln]
        for m in ("sce", "sce_text"):
            key = f'eigenwatch_value{{run="gen",stream="clip",metric="{m}"}} '
            vals = [ln[len(key):] for ln in mine if ln.startswith(key)]
            assert len(vals) == 1, (m, mine)
            assert float(vals[0]) == h[m]["value"][-1], (m, vals, h[m]["value"])
            skey = f'eigenwatch_step{{run="gen",stream="clip",metric="{m}"}} '
            steps = [ln[len(skey):] for ln in mine if ln.startswith(skey)]
            assert steps == ["2"], (m, steps)
        values = [ln for ln in mine if ln.startswith("eigenwatch_value{")]
        assert len(values) == 2, values
    finally:
        d.stop()


if __name__ == "__main__":
    t = Tap()
    t.case("create_ingest_query_mixed_dtypes_equal_numpy", create_ingest_query_mixed_dtypes)
    t.case("stepped_two_ranks_history_equals_numpy_per_step", stepped_two_ranks_history)
    t.case("restart_keeps_paired_state_bit_for_bit", restart_keeps_state_bit_for_bit)
    t.case("export_merge_equals_union_features_must_match",
           export_merge_equals_union_and_features_must_match)
    t.case("nullify_over_the_wire", nullify_over_the_wire)
    t.case("bad_input_changes_nothing", bad_input_changes_nothing)
    t.case("metrics_exposition_carries_sce", metrics_exposition_carries_sce)
    t.done()
