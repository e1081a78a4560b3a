"""merge and export carry every view and the training block (issue 24, defects 1 and 2).

Real daemons over the socket. A merge must combine every view exactly — the window included,
compared with one daemon that ingested the union (1e-12 relative) and with numpy float64 on the
union rows (1e-6, the f32 rows' tolerance) — or refuse with a sentence naming what it cannot
combine, changing nothing. An exported state carries the training block: a stream created by
`merge` keeps the recent view, world, eval list, rules and producers' seqs (a resent batch is a
duplicate there too). Before the one serializer, the merged window answered DEGENERATE ("the
window has no rows yet") with count 900, a merged recent stream answered numpy on its own rows,
and a stream created by merge had world 1, the default eval list, no rules, and applied a resent
batch twice."""
import contextlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon, expect  # noqa: E402
from taplib import Tap  # noqa: E402

D = 24


@contextlib.contextmanager
def running(n=1):
    ds = [Daemon() for _ in range(n)]
    try:
        yield ds
    finally:
        for x in ds:
            x.stop()
MS = ["entropy", "erank", "trace", "spectrum", "participation_ratio"]


def rows(seed, n):
    g = np.random.default_rng(seed)
    scale = np.exp(-np.arange(D) / 6.0)
    return (g.standard_normal((n, D)) * scale + 2.0).astype(np.float32)


def ingest(c, name, X, **kw):
    X = np.ascontiguousarray(X, dtype=np.float32)
    p = {"stream": name, "data": X.tobytes(), "dtype": "f32", "shape": list(X.shape)}
    p.update(kw)
    return c.call("ingest", p)


def query(c, name, source):
    return c.call("query", {"stream": name, "metrics": MS, "source": source,
                            "fresh": True})["metrics"]


def close(a, b, tol, what):
    for m in MS:
        va, vb = np.atleast_1d(a[m]), np.atleast_1d(b[m])
        assert va.shape == vb.shape, f"{what} {m}: shapes {va.shape} vs {vb.shape}"
        err = np.max(np.abs(va - vb)) / np.max(np.abs(va))
        assert err <= tol, f"{what} {m}: rel err {err:.2e} > {tol:g}"


def numpy_view(X):
    X = X.astype(np.float64)
    ev = np.clip(np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1], 0, None)
    p = ev / ev.sum()
    p = p[p > 0]
    return {"spectrum": ev, "trace": ev.sum(), "entropy": -(p * np.log(p)).sum()}


def against_numpy(got, X, what):
    ref = numpy_view(X)
    assert np.max(np.abs(np.array(got["spectrum"]) - ref["spectrum"])) <= 1e-6 * ref["spectrum"][0], what
    assert abs(got["trace"] - ref["trace"]) <= 1e-6 * ref["trace"], what
    assert abs(got["entropy"] - ref["entropy"]) <= 1e-6, (what, got["entropy"], ref["entropy"])


def merged_windows_equal_the_union():
    parts = [rows(10 + i, 300) for i in range(3)]
    ds = [Daemon() for _ in range(4)]
    try:
        cs = [x.client() for x in ds]
        exported = []
        for i in range(3):
            cs[i].call("create", {"stream": "h", "dim": D, "window": 4096})
            ingest(cs[i], "h", parts[i])
            exported.append(cs[i].call("export", {"stream": "h"})["state"])
        u = cs[3]
        u.call("create", {"stream": "one", "dim": D, "window": 4096})
        for p in parts:
            ingest(u, "one", p)
        r = [u.call("merge", {"stream": "merged", "state": s}) for s in exported]
        assert r[-1]["count"] == 900, r
        X = np.vstack(parts)
        for src in ("window", "all"):
            got = query(u, "merged", src)  # before: window -> DEGENERATE, no rows
            close(query(u, "one", src), got, 1e-12, f"merged {src} vs one daemon on the union")
            against_numpy(got, X, f"merged {src} vs numpy")
        # a recent stream A with shard B merged in: the default view (the window) is the union's
        a, b = rows(20, 600), rows(21, 600)
        cs[0].call("create", {"stream": "A", "dim": D, "recent": True})
        ingest(cs[0], "A", a)
        cs[1].call("create", {"stream": "B", "dim": D, "recent": True})
        ingest(cs[1], "B", b)
        r = cs[0].call("merge", {"stream": "A", "state": cs[1].call("export", {"stream": "B"})["state"]})
        assert r["count"] == 1200 and r["created"] is False, r
        h = cs[0].call("query", {"stream": "A", "metrics": "entropy", "fresh": True})["metrics"]["entropy"]
        assert abs(h - numpy_view(np.vstack([a, b]))["entropy"]) <= 1e-6, \
            (h, numpy_view(np.vstack([a, b]))["entropy"], numpy_view(a)["entropy"])
    finally:
        for x in ds:
            x.stop()


def a_window_that_cannot_be_combined_is_refused_and_nothing_changes():
    with running() as (d,):
        c = d.client()
        c.call("create", {"stream": "big", "dim": D, "window": 512})
        ingest(c, "big", rows(30, 600))  # the window holds 512 of its 600 rows
        c.call("create", {"stream": "s", "dim": D, "window": 512})
        ingest(c, "s", rows(31, 100))
        st = c.call("export", {"stream": "s"})["state"]
        before = {src: query(c, "big", src) for src in ("window", "all")}
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "big", "state": st})
        assert "window holds 512 of its 600 rows" in e.message and "window 0" in e.message, e.message
        assert c.call("info", {"stream": "big"})["count"] == 600
        for src in ("window", "all"):
            close(before[src], query(c, "big", src), 0.0, f"after the refusal ({src})")
        # a state without a window cannot feed a window; a stream without one takes any state
        c.call("create", {"stream": "nowin", "dim": D, "window": 0})
        ingest(c, "nowin", rows(32, 50))
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "s", "state":
                   c.call("export", {"stream": "nowin"})["state"]})
        assert "keeps no window" in e.message, e.message
        assert c.call("info", {"stream": "s"})["count"] == 100
        r = c.call("merge", {"stream": "nowin", "state": c.call("export", {"stream": "big"})["state"]})
        assert r["count"] == 650, r


def export_carries_the_training_block():
    evals = [{"metric": "entropy"}, {"metric": "erank", "every": 2}]
    rules = [{"name": "low", "metric": "entropy", "when": "below", "value": 0.01}]
    with running(2) as (a, b):
        ca, cb = a.client(), b.client()
        ca.call("create", {"stream": "t", "dim": D, "recent": True, "world": 2, "eval": evals,
                           "rules": rules})
        X = rows(40, 64)
        for step in range(3):
            for rank in range(2):
                ingest(ca, "t", X[16 * rank:16 * rank + 16], step=step, rank=rank,
                       producer=f"p{rank}", seq=step + 1)
        ca.call("flush", {"stream": "t"})
        ca.call("query", {"stream": "t", "metrics": "trace"})  # behind every queued batch
        ia = ca.call("info", {"stream": "t"})
        assert ia["count"] == 96, ia["count"]
        state = ca.call("export", {"stream": "t"})["state"]
        r = cb.call("merge", {"stream": "t", "state": state})
        assert r["created"] is True and r["count"] == ia["count"], r
        ib = cb.call("info", {"stream": "t"})
        for k in ("world", "recent", "window_steps", "step_timeout"):
            assert ib["config"][k] == ia["config"][k], (k, ib["config"][k], ia["config"][k])
        assert ib["eval"]["metrics"] == ia["eval"]["metrics"] and ib["eval"]["given"] is True, ib["eval"]
        for k in ("first_step", "last_step", "producers"):
            assert ib["steps"].get(k) == ia["steps"].get(k), (k, ib["steps"], ia["steps"])
        al = cb.call("alerts", {"stream": "t"})["alerts"]
        assert [x["rule"] for x in al] == ["low"], al
        # the producers' seqs came along: a resent batch is a duplicate on the new daemon too
        r = ingest(cb, "t", X[:16], step=2, rank=0, producer="p0", seq=3)
        assert r.get("duplicate") is True, r
        # merged into an existing stream, each producer keeps the higher seq of the two
        cb.call("create", {"stream": "e", "dim": D, "window": 0})
        ingest(cb, "e", X[:8], producer="p0", seq=1)
        cb.call("merge", {"stream": "e", "state": state})
        r = ingest(cb, "e", X[:8], producer="p1", seq=3)
        assert r.get("duplicate") is True, r
        r = ingest(cb, "e", X[:8], producer="p0", seq=4)
        assert not r.get("duplicate"), r


def recent_views_by_steps_merge_step_by_step():
    """window_steps 2: the union's recent view is both shards' rows of the last two steps."""
    with running() as (d,):
        c = d.client()
        shards = {"ws1": rows(50, 120), "ws2": rows(51, 120)}
        c.call("create", {"stream": "wsu", "dim": D, "window_steps": 2})
        for name, X in shards.items():
            c.call("create", {"stream": name, "dim": D, "window_steps": 2})
        for step in range(4):
            for name, X in shards.items():
                ingest(c, name, X[30 * step:30 * step + 30], step=step)
                ingest(c, "wsu", X[30 * step:30 * step + 30], step=step)
        for name in ("ws1", "ws2", "wsu"):
            c.call("flush", {"stream": name})
        st = c.call("export", {"stream": "ws2"})["state"]
        r = c.call("merge", {"stream": "ws1", "state": st})  # before: the windows' rows dropped
        assert r["count"] == 240, r
        got = query(c, "ws1", "window")
        close(query(c, "wsu", "window"), got, 1e-12, "merged by steps vs one daemon")
        against_numpy(got, np.vstack([X[60:120] for X in shards.values()]), "merged by steps")
        close(query(c, "wsu", "all"), query(c, "ws1", "all"), 1e-12, "all rows")
        # the merged ring goes on: one more step on both
        Y = rows(52, 30)
        ingest(c, "ws1", Y, step=4)
        ingest(c, "wsu", Y, step=4)
        for name in ("ws1", "wsu"):
            c.call("flush", {"stream": name})
        close(query(c, "wsu", "window"), query(c, "ws1", "window"), 1e-12, "after one more step")
        # into a new stream: the state itself, its recent view by steps included
        r = c.call("merge", {"stream": "copy", "state": st})
        assert r["created"] is True
        # the copy's recent moments are built from its rows, ws2's were kept step by step
        # (one merge and one un-merge per step): the same within rounding, not bit for bit
        close(query(c, "ws2", "window"), query(c, "copy", "window"), 1e-12, "a merged copy")
        assert c.call("info", {"stream": "copy"})["config"]["window_steps"] == 2
        # refused, nothing changed: a step whose rows the window lost; a state without steps
        c.call("create", {"stream": "tight", "dim": D, "window_steps": 2, "window": 50})
        for step in range(3):
            ingest(c, "tight", rows(60 + step, 30), step=step)
        c.call("flush", {"stream": "tight"})
        before = query(c, "tight", "window")
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "tight", "state": st})
        assert "more than the window's 50" in e.message, e.message  # steps 2, 3: 90 rows
        c.call("create", {"stream": "early", "dim": D, "window_steps": 2})
        for step in range(2):
            ingest(c, "early", rows(65 + step, 5), step=step)
        c.call("flush", {"stream": "early"})
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "tight", "state":
                   c.call("export", {"stream": "early"})["state"]})
        assert "step 1's rows are no longer all in the stream's window" in e.message, e.message
        c.call("create", {"stream": "plain", "dim": D, "recent": True})
        ingest(c, "plain", rows(70, 40))
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "tight", "state":
                   c.call("export", {"stream": "plain"})["state"]})
        assert "carry no steps" in e.message, e.message
        assert c.call("info", {"stream": "tight"})["count"] == 90
        close(before, query(c, "tight", "window"), 0.0, "after the refusals")


def main():
    t = Tap()
    t.case("merged_windows_equal_the_union", merged_windows_equal_the_union)
    t.case("a_window_that_cannot_be_combined_is_refused_and_nothing_changes",
           a_window_that_cannot_be_combined_is_refused_and_nothing_changes)
    t.case("export_carries_the_training_block", export_carries_the_training_block)
    t.case("recent_views_by_steps_merge_step_by_step", recent_views_by_steps_merge_step_by_step)
    t.done()


if __name__ == "__main__":
    main()
