"""Scheduled evaluation and history (issue 9, items 5 and 6), against a real daemon.

- 4 ranks × 40 steps sent in shuffled order with late and resent duplicate batches, into a stream
  that evaluates entropy and erank on the recent view (window_steps 2) and the trace of every row:
  every history point equals numpy float64 on the rows of the same steps in the documented order
  (the reference Model of test_steps.py, written from PROTOCOL.md) to 1e-6; each point's rows and
  ranks are the step's (late rows count with the step they were applied after); points + skipped
  account for every step.
- A rank that never sends: the points of its steps are partial and name 3 of 4 ranks.
- Coalescing: steps completing faster than a d=384 evaluation are coalesced; the last step is
  always evaluated, and points + Σ skipped = the steps; info and stats count the same.
- Evaluations solve on both math threads, on one with `eval_threads = 1`; each reads a snapshot
  of the recent view (its moments or rows), smaller than the stream's state.
- History survives a restart (the same points, byte for byte), and so does a given eval list;
  points written after the restart follow the old ones.
- Downsampling: max_points buckets with last/mean/min/max equal numpy over the same buckets.
- A step-less stream with every_rows; query max_lag answers from the evaluation's value.
- Retention: history_max_points thins the oldest half and keeps the newest points.
- Bad eval lists and bad history requests: the error code and message, and nothing changed."""
import os
import random
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon, RpcError  # noqa: E402
from taplib import Tap  # noqa: E402
from test_steps import Model, close, expect, schedule, send  # noqa: E402
from test_series import prom, scrape  # noqa: E402

D = 6


def entropy_np(X):
    lam = np.clip(np.linalg.eigvalsh(np.cov(X.astype(np.float64).T, bias=True)), 0, None)
    p = lam[lam > 0] / lam.sum()
    return float(-(p * np.log(p)).sum())


def erank_np(X):
    return float(np.exp(entropy_np(X)))


def trace_np(X):
    return float(np.trace(np.cov(X.astype(np.float64).T, bias=True)))


def settle(c, stream, run=None, timeout=30):
    """Waits until the stream has no evaluation running or waiting."""
    p = {"stream": stream}
    if run:
        p["run"] = run
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:  # queued behind the stream's jobs
            c.call("query", dict(p, metrics="trace", center=False, fresh=True, source="all"))
        except RpcError as e:  # no rows yet
            assert e.code == "DEGENERATE", e
        ev = c.call("info", p)["eval"]
        if not ev["busy"]:
            return ev
        time.sleep(0.02)
    raise AssertionError(f"{stream}: evaluation still busy after {timeout}s")


def series(c, **p):
    return {(s["stream"], s["metric"]): s for s in c.call("history", p)["series"]}


class StepModel(Model):
    """Model, remembering the rows each completed step brought (late ones with it) and every row
    applied up to it."""

    def __init__(self, world):
        super().__init__(world)
        self.by_step, self.upto, self.ranks_of = {}, {}, {}

    def complete(self, s):
        before = len(self.applied)
        ranks = {r for r, _, _ in self.pending[s]}
        super().complete(s)
        self.by_step[s] = np.concatenate(self.applied[before:])
        self.upto[s] = np.concatenate(self.applied)
        self.ranks_of[s] = len(ranks)


def history_points_equal_numpy_on_the_rows_of_each_step():
    world, nsteps = 4, 40
    rng = random.Random(5)
    data_rng = np.random.default_rng(17)
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "h", "dim": D, "world": world, "window_steps": 2,
                          "window": 1000,
                          "eval": [{"metric": "entropy"}, {"metric": "erank"},
                                   {"metric": "trace", "source": "all"}]})
        m = StepModel(world)
        seq = {}
        sent = []
        for r, s, b in schedule(rng, world, range(nsteps)):
            X = (data_rng.standard_normal((3, D)) * (1 + np.arange(D) * (s % 5))
                 ).astype(np.float32)
            seq[r] = seq.get(r, 0) + 1
            send(c, "h", X, step=s, rank=r, producer=f"p{r}", seq=seq[r])
            m.add(r, s, X)
            sent.append((r, s, X, seq[r]))
            if s == 10 and r == 0 and b == 0:  # a late batch: rank 1 moved past step 3
                Y = data_rng.standard_normal((2, D)).astype(np.float32)
                if m.add(1, 3, Y):
                    send(c, "h", Y, step=3, rank=1)
                else:
                    raise AssertionError("the late batch was not late")
        for r, s, X, q in sent[:6]:  # duplicates: acknowledged, not applied
            assert send(c, "h", X, step=s, rank=r, producer=f"p{r}", seq=q)["duplicate"]
        c.call("flush", {"stream": "h"})
        m.flush()
        ev = settle(c, "h")
        h = series(c, stream="h")
        assert set(h) == {("h", "entropy"), ("h", "erank"), ("h", "trace")}, list(h)
        for metric in ("entropy", "erank", "trace"):
            s_ = h[("h", metric)]
            steps = s_["step"]
            assert steps == sorted(steps) and steps[-1] == nsteps - 1, steps
            assert len(steps) + sum(s_["skipped"]) == nsteps, (steps, s_["skipped"])
            for i, step in enumerate(steps):
                if metric == "trace":
                    want = trace_np(m.upto[step])
                else:
                    prev = [t for t in m.by_step if t < step]
                    rows = np.concatenate(([m.by_step[max(prev)]] if prev else [])
                                          + [m.by_step[step]])
                    want = (entropy_np if metric == "entropy" else erank_np)(rows)
                close(s_["value"][i], want, f"{metric} at step {step}")
                assert s_["rows"][i] == len(m.by_step[step]), (step, s_["rows"][i])
                assert s_["ranks"][i] == m.ranks_of[step] and not s_["partial"][i]
                assert 0 <= s_["lag_s"][i] < 30
        assert ev["evaluations"] == len(h[("h", "erank")]["step"]) and ev["failures"] == 0, ev
        c.close()
    finally:
        assert d.stop() == 0


def a_rank_that_never_sends_gives_partial_points():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "p", "dim": D, "world": 4, "step_timeout": 0.3,
                          "eval": [{"metric": "trace", "source": "all"}]})
        rng = np.random.default_rng(3)
        for s in range(3):
            for r in range(3):  # rank 3 never sends
                send(c, "p", rng.standard_normal((2, D)).astype(np.float32), step=s, rank=r)
        deadline = time.time() + 10
        while time.time() < deadline:
            pts = series(c, stream="p").get(("p", "trace"))
            if pts and pts["step"][-1] == 2:
                break
            time.sleep(0.05)
        # the three time out together: the last is evaluated, the others may be coalesced
        assert pts["step"][-1] == 2 and len(pts["step"]) + sum(pts["skipped"]) == 3, pts
        n = len(pts["step"])
        assert pts["partial"] == [True] * n and pts["ranks"] == [3] * n, pts
        c.close()
    finally:
        assert d.stop() == 0


def coalescing_evaluates_the_latest_step_and_counts_the_rest():
    d = Daemon()
    dim, nsteps = 384, 30
    try:
        c = d.client()
        c.call("create", {"stream": "big", "dim": dim, "recent": True})
        rng = np.random.default_rng(9)
        X = rng.standard_normal((64, dim)).astype(np.float32)
        for s in range(nsteps):  # each step completes when the next one starts
            send(c, "big", X, step=s)
        c.call("flush", {"stream": "big"})
        ev = settle(c, "big")
        h = series(c, stream="big", metrics="entropy")[("big", "entropy")]
        assert h["step"][-1] == nsteps - 1, h["step"]
        assert len(h["step"]) + sum(h["skipped"]) == nsteps, (h["step"], h["skipped"])
        assert ev["coalesced"] == sum(h["skipped"]) > 0, (ev, h["skipped"])
        assert ev["evaluations"] == len(h["step"]), ev
        stats = c.call("stats")
        assert stats["eval_coalesced"] == ev["coalesced"] and stats["eval_bytes"] == 0, stats
        # every evaluated value is the window's entropy at that step (the same rows each step)
        for v in h["value"]:
            close(v, entropy_np(X), "coalesced entropy", rtol=1e-5)
        c.close()
    finally:
        assert d.stop() == 0


def evaluations_solve_on_every_thread_or_eval_threads():
    """Scheduled solves use both math threads by default and one with `eval_threads = 1`
    (stats.eval_parallel_max); each evaluation reads a snapshot of the recent view (its moments
    or its rows: info's eval.cost.snapshot_bytes), never a copy of the stream's state."""
    dim, rows, nsteps, names = 640, 192, 5, [f"l{i}" for i in range(6)]
    rng = np.random.default_rng(12)
    X = rng.standard_normal((rows, dim)).astype(np.float32)
    peaks = {}
    for cfg in (None, "eval_threads = 1\n"):
        d = Daemon(config=cfg)
        try:
            c = d.client()
            for n in names:  # the last 4 steps: 768 rows >= d, the d x d moments
                c.call("create", {"stream": n, "dim": dim, "window_steps": 4})
            for s in range(nsteps):  # each step's six evaluations (two solves of order 640 each)
                for n in names:      # come due together once ingest is quiet
                    send(c, n, X * (1 + s), step=s)
                for n in names:
                    c.call("flush", {"stream": n})
                for n in names:
                    settle(c, n)
            for n in names:
                ev = settle(c, n)
                cost = ev["cost"]
                assert cost["solve_ms"] > 0 and cost["turn_ms"] >= cost["cheap_ms"], cost
                moments, recent = 8 * dim * dim + 8 * dim, 4 * (4 * rows) * dim
                state = c.call("info", {"stream": n})["memory_bytes"]
                assert min(moments, recent) <= cost["snapshot_bytes"] <= moments + recent + 65536 \
                    < state, (cost, state)
            peaks[cfg] = c.call("stats")["eval_parallel_max"]
            c.close()
        finally:
            assert d.stop() == 0
    print(f"# evaluations solved at once: {peaks[None]} by default, "
          f"{peaks['eval_threads = 1' + chr(10)]} with eval_threads = 1", flush=True)
    assert peaks[None] == 2 and peaks["eval_threads = 1\n"] == 1, peaks


def history_survives_a_restart():
    d = Daemon()
    evals = [{"metric": "erank", "every": 2}, {"metric": "renyi", "params": {"alpha": 2}},
             {"metric": "spectrum", "source": "all", "every": 5}]
    rng = np.random.default_rng(4)
    try:
        c = d.client()
        c.call("create", {"stream": "s", "run": "r1", "dim": D, "recent": True, "eval": evals})
        for s in range(12):  # one step at a time: nothing is coalesced
            send(c, "s", rng.standard_normal((5, D)).astype(np.float32), step=s, run="r1")
            settle(c, "s", "r1")
        c.call("flush", {"stream": "s", "run": "r1"})
        settle(c, "s", "r1")
        before = c.call("history", {"stream": "s", "run": "r1"})
        info = c.call("info", {"stream": "s", "run": "r1"})["eval"]
        h = {s_["metric"]: s_ for s_ in before["series"]}
        assert h["erank"]["step"] == [0, 2, 4, 6, 8, 10], h["erank"]["step"]  # every: 2
        assert h["spectrum"]["step"] == [0, 5, 10], h["spectrum"]["step"]
        assert h["renyi"]["step"] == list(range(12)), h["renyi"]["step"]
        assert all(len(v) == D for v in h["spectrum"]["value"]), h["spectrum"]["value"]
        assert info["given"] is True and [m["metric"] for m in info["metrics"]] == \
            ["erank", "renyi", "spectrum"], info
        c.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        after = c.call("history", {"stream": "s", "run": "r1"})
        for a, b in zip(before["series"], after["series"]):
            assert a == b, f"{a['metric']} changed across the restart"
        assert len(before["series"]) == len(after["series"]) == 3
        info2 = c.call("info", {"stream": "s", "run": "r1"})["eval"]
        assert info2["metrics"] == info["metrics"] and info2["given"], info2
        # the same create again is idempotent; another eval list is STREAM_EXISTS
        assert c.call("create", {"stream": "s", "run": "r1", "dim": D, "recent": True,
                                 "eval": evals})["created"] is False
        expect("STREAM_EXISTS", c.call, "create", {"stream": "s", "run": "r1", "dim": D,
                                                   "recent": True})
        # the latest values came back with the eval list: /metrics has them before any new step
        text = scrape(d2)
        assert prom(text, "value", run="r1", stream="s", metric="erank") == \
            h["erank"]["value"][-1], text
        for s in range(12, 16):
            send(c, "s", rng.standard_normal((5, D)).astype(np.float32), step=s, run="r1")
            settle(c, "s", "r1")
        c.call("flush", {"stream": "s", "run": "r1"})
        settle(c, "s", "r1")
        r2 = series(c, stream="s", run="r1", metrics=["renyi"])[("s", "renyi")]
        old = {s_["metric"]: s_ for s_ in before["series"]}["renyi"]
        assert r2["step"][:len(old["step"])] == old["step"] and r2["step"][-1] == 15, r2["step"]
        # the schedule went on where it was: `every: 5` keeps its phase (the daemon before
        # evaluated at the first step after the restart too, 12, off the schedule)
        h2 = {s_["metric"]: s_ for s_ in c.call("history", {"stream": "s", "run": "r1"})["series"]}
        assert h2["spectrum"]["step"] == [0, 5, 10, 15], h2["spectrum"]["step"]
        assert h2["erank"]["step"] == [0, 2, 4, 6, 8, 10, 12, 14], h2["erank"]["step"]
        # drop deletes the history
        c.call("drop", {"stream": "s", "run": "r1"})
        c.call("create", {"stream": "s", "run": "r1", "dim": D})
        assert c.call("history", {"stream": "s", "run": "r1"})["series"] == []
        c.close()
    finally:
        assert d2.stop() == 0


def downsampling_buckets_equal_numpy():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "b", "dim": D, "recent": True, "window_steps": 1,
                          "eval": [{"metric": "trace"}]})
        rng = np.random.default_rng(8)
        for s in range(0, 50):
            send(c, "b", (rng.standard_normal((4, D)) * (1 + s % 7)).astype(np.float32), step=s)
            settle(c, "b")  # one step at a time, nothing coalesced: all 50 points
        c.call("flush", {"stream": "b"})
        settle(c, "b")
        full = series(c, stream="b")[("b", "trace")]
        assert full["step"] == list(range(50)), full["step"]
        steps, vals = np.array(full["step"]), np.array(full["value"])
        for agg, fn in (("last", lambda v: v[-1]), ("mean", np.mean), ("min", np.min),
                        ("max", np.max)):
            got = series(c, stream="b", max_points=7, agg=agg, from_step=3, to_step=45)
            got = got[("b", "trace")]
            sel = (steps >= 3) & (steps <= 45)
            st, vs = steps[sel], vals[sel]
            w = (st[-1] - st[0]) // 7 + 1
            keys = (st - st[0]) // w
            want = [fn(vs[keys == k]) for k in np.unique(keys)]
            assert got["step"] == [int(st[keys == k][-1]) for k in np.unique(keys)], got["step"]
            close(got["value"], want, f"agg {agg}", rtol=1e-12)
            assert len(got["step"]) <= 7
        c.close()
    finally:
        assert d.stop() == 0


def stepless_streams_evaluate_every_rows_and_the_cache_answers_max_lag():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "e", "dim": D, "eval": [{"metric": "erank",
                                                             "every_rows": 10}]})
        rng = np.random.default_rng(2)
        rows = []
        for i in range(5):
            X = rng.standard_normal((10, D)).astype(np.float32)
            rows.append(X)
            send(c, "e", X)
            settle(c, "e")
        h = series(c, stream="e")[("e", "erank")]
        assert h["step"] == [10, 20, 30, 40, 50], h["step"]  # a row count stands for the step
        for step, v in zip(h["step"], h["value"]):
            close(v, erank_np(np.concatenate(rows)[:step]), f"erank at {step} rows")
        q = c.call("query", {"stream": "e", "metrics": "erank", "max_lag": 0})
        assert q["cached"] is True and q["metrics"]["erank"] == h["value"][-1], q
        c.close()
    finally:
        assert d.stop() == 0


def retention_thins_the_oldest_half():
    d = Daemon(config="history_max_points = 100\n")
    try:
        c = d.client()
        c.call("create", {"stream": "k", "dim": 2, "eval": [{"metric": "trace", "center": False,
                                                             "every_rows": 1}]})
        for i in range(150):
            send(c, "k", np.array([[i, 1.0]], dtype=np.float32))
            settle(c, "k")
        h = series(c, stream="k", max_points=1000)[("k", "trace")]
        steps = h["step"]
        assert len(steps) <= 100 and steps[-1] == 150, (len(steps), steps[-5:])
        assert steps[-40:] == list(range(111, 151)), steps[-40:]  # the newest are all there
        gaps = np.diff(steps)
        assert steps[0] == 1 and gaps[0] >= 2 and gaps.min() >= 1, steps[:8]  # oldest thinned
        c.close()
    finally:
        assert d.stop() == 0


def bad_eval_lists_and_history_requests_change_nothing():
    d = Daemon()
    try:
        c = d.client()
        bad = [
            ([{"metric": "nope"}], "UNKNOWN_METRIC", "no metric named 'nope'"),
            ([{"metric": "erank"}, {"metric": "erank"}], "BAD_PARAM", "erank twice"),
            ([{"metric": "erank", "every": 0}], "BAD_PARAM", "'every' must be"),
            ([{"metric": "erank", "every": 2, "every_rows": 5}], "BAD_PARAM", "give one of"),
            ([{"metric": "erank", "every_s": 0.01}], "BAD_PARAM", "'every_s' must be"),
            ([{"metric": "erank", "params": {"alpha": 2}}], "BAD_PARAM", "no parameter 'alpha'"),
            ([{"metric": "renyi", "params": {"alpha": -1}}], "BAD_PARAM",
             "parameter 'alpha' of 'renyi' must be a number in [0, inf]; got -1"),
            ([{"metric": "diff_erank", "source": "all"}], "BAD_PARAM", "not computed from"),
            ([{"every": 2}], "BAD_PARAM", "needs 'metric'"),
            ([{"metric": "erank", "color": 1}], "BAD_REQUEST", "eval[0] does not take 'color'"),
            ([5], "BAD_PARAM", "eval[0] must be a map"),
            ("erank", "BAD_PARAM", "'eval' must be a list"),
        ]
        for ev, code, needle in bad:
            e = expect(code, c.call, "create", {"stream": "x", "dim": D, "eval": ev})
            assert needle in e.message, (ev, e.message)
        assert c.call("list")["streams"] == []
        c.call("create", {"stream": "y", "dim": D})
        for p, code, needle in [
            ({"stream": "y", "streams": ["y"]}, "BAD_REQUEST", "not both"),
            ({"stream": "y", "max_points": 0}, "BAD_REQUEST", "'max_points' must be"),
            ({"stream": "y", "from_step": 5, "to_step": 2}, "BAD_REQUEST", "is after"),
            ({"stream": "zz"}, "NO_SUCH_STREAM", "no stream named 'zz'"),
            ({"streams": ["y", "zz"]}, "NO_SUCH_STREAM", "no stream named 'zz'"),
            ({"stream": "y", "metrics": ["nope"]}, "UNKNOWN_METRIC", "no metric named 'nope'"),
            ({"stream": "y", "agg": "median"}, "BAD_REQUEST", "'agg' must be"),
        ]:
            e = expect(code, c.call, "history", p)
            assert needle in e.message, (p, e.message)
        e = expect("BAD_REQUEST", c.call, "ingest", {"stream": "y", "rows": [[0] * D],
                                                     "step": 1 << 63})
        assert "below 2^63" in e.message, e.message
        assert c.call("info", {"stream": "y"})["count"] == 0
        c.close()
    finally:
        assert d.stop() == 0


def history_of_f32_rows_far_from_the_origin_is_exact():
    """f32 rows at 1e3 spreads from the origin (spectrum exp(-i/8), d = 64), one evaluation per
    step on the recent view (window_steps 2): every history point equals numpy float64 on the same
    f32 values to 1e-9 (entropy, erank) and the condition number to 1e-6 + Weyl's bound. The f32
    batch Gram of earlier versions gave the entropy 1e-6 off and zeroed the smallest eigenvalues
    (issue 23)."""
    d, nsteps, per = 64, 6, 512
    rng = np.random.default_rng(23)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = np.exp(-np.arange(d) / 8.0)
    dm = Daemon()
    try:
        c = dm.client()
        c.call("create", {"stream": "far", "dim": d, "window_steps": 2, "window": 4096,
                          "eval": [{"metric": "entropy"}, {"metric": "erank"},
                                   {"metric": "condition_number"}]})
        blocks = []
        for s in range(nsteps):
            X = ((rng.standard_normal((per, d)) * scale) @ Q.T + 1e3).astype(np.float32)
            blocks.append(X)
            send(c, "far", X, step=s)
        c.call("flush", {"stream": "far"})
        settle(c, "far")
        h = series(c, stream="far")
        for metric in ("entropy", "erank", "condition_number"):
            s_ = h[("far", metric)]
            assert s_["step"], metric
            for i, step in enumerate(s_["step"]):
                rows = np.concatenate(blocks[max(0, step - 1):step + 1]).astype(np.float64)
                lam = np.clip(np.linalg.eigvalsh(np.cov(rows.T, bias=True)), 0, None)[::-1]
                if metric == "condition_number":
                    nz = lam[lam > 1e-12 * lam[0]]
                    want, tol = lam[0] / nz[-1], 1e-6 + 128 * d * 2.0 ** -53 * lam[0] / nz[-1]
                else:
                    want, tol = (entropy_np(rows) if metric == "entropy" else erank_np(rows)), 1e-9
                close(s_["value"][i], want, f"{metric} at step {step}", rtol=tol)
        c.close()
    finally:
        assert dm.stop() == 0
def _point_count(c, stream, metric="trace"):
    h = series(c, stream=stream, max_points=100000)
    return len(h[(stream, metric)]["step"]) if (stream, metric) in h else 0


def _evaluating_stream(c, name):
    c.call("create", {"stream": name, "dim": 2, "eval": [{"metric": "trace", "center": False,
                                                          "every_rows": 1}]})


def _wait_history_idle(c, timeout=30):
    deadline = time.time() + timeout
    while c.call("stats")["history_queue"]:
        assert time.time() < deadline, "history queue not drained"
        time.sleep(0.02)


def a_corrupt_history_db_is_quarantined_and_the_daemon_starts():
    """Issue 23 item 10: history.db as garbage, cut inside its first page, cut after its second
    page (shorter than its header says), a database of another schema, a directory or a FIFO: the daemon starts, logs that it moved the file to quarantine/, and
    keeps a new, empty history that takes points."""
    import sqlite3
    import tempfile

    def garbage(path):
        with open(path, "wb") as f:
            f.write(os.urandom(5000))

    def truncated(path):
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t(x)")
        db.executemany("INSERT INTO t VALUES(?)", [(os.urandom(100),) for _ in range(200)])
        db.commit()
        db.close()
        with open(path, "r+b") as f:
            f.truncate(1000)

    def cut_at_a_page(path):  # a whole first page: SQLite itself would notice only later
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t(x)")
        db.executemany("INSERT INTO t VALUES(?)", [(os.urandom(100),) for _ in range(400)])
        db.commit()
        db.close()
        with open(path, "r+b") as f:
            f.truncate(2 * 4096)

    def other_schema(path):
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE points(x, y)")
        db.execute("CREATE TABLE series(id INTEGER PRIMARY KEY, name)")
        db.commit()
        db.close()

    def directory(path):
        os.mkdir(path)
        with open(os.path.join(path, "inside"), "w") as f:
            f.write("x")

    def fifo(path):  # never opened: a read would wait for a writer forever
        os.mkfifo(path)

    for make in (garbage, truncated, cut_at_a_page, other_schema, directory, fifo):
        state = tempfile.mkdtemp(prefix="ewd-")
        make(os.path.join(state, "history.db"))
        try:
            d = Daemon(state_dir=state)
        except RuntimeError as e:
            raise AssertionError(f"{make.__name__}: the daemon did not start: {str(e)[-300:]}")
        try:
            log = d.log()
            line = [ln for ln in log.splitlines() if "history" in ln and "quarantine" in ln]
            assert line, f"{make.__name__}: no quarantine line in\n{log[-1500:]}"
            moved = os.listdir(os.path.join(state, "quarantine"))
            assert any(m.startswith("history.db.") for m in moved), (make.__name__, moved)
            c = d.client()
            _evaluating_stream(c, "h")
            for i in range(3):
                send(c, "h", np.array([[i, 1.0]], dtype=np.float32))
                settle(c, "h")
            _wait_history_idle(c)
            assert _point_count(c, "h") == 3, make.__name__
            assert c.call("stats")["history_failures"] == 0, make.__name__
            c.close()
        finally:
            assert d.stop() == 0


def a_two_second_lock_on_history_db_drops_no_point():
    """Issue 23 item 10: another process holds history.db's write lock for 2 s while points are
    evaluated: they wait (busy timeout) and are all written, none counted as failed."""
    import sqlite3
    d = Daemon()
    try:
        c = d.client()
        _evaluating_stream(c, "b")
        for i in range(3):
            send(c, "b", np.array([[i, 1.0]], dtype=np.float32))
            settle(c, "b")
        _wait_history_idle(c)
        other = sqlite3.connect(os.path.join(d.dir, "history.db"), isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held = time.time()
        for i in range(3, 8):
            send(c, "b", np.array([[i, 1.0]], dtype=np.float32))
            settle(c, "b")
        time.sleep(max(0.0, 2.0 - (time.time() - held)))
        other.execute("COMMIT")
        other.close()
        _wait_history_idle(c)
        st = c.call("stats")
        assert st["history_failures"] == 0, \
            (st["history_failures"], [ln for ln in d.log().splitlines() if "history" in ln][:3])
        assert _point_count(c, "b") == 8 and st["history_points"] == 8, \
            (_point_count(c, "b"), st["history_points"])
        c.close()
    finally:
        assert d.stop() == 0


def history_points_counts_only_committed_points():
    """Issue 23 item 10: while the daemon may write no byte to a file (RLIMIT_FSIZE 0, as on a
    full disk), evaluated points cannot be committed: stats history_points counts only the points
    history.db holds, and history_failures counts the failed commits."""
    import resource
    d = Daemon()
    try:
        c = d.client()
        _evaluating_stream(c, "f")
        send(c, "f", np.array([[1.0, 1.0]], dtype=np.float32))
        settle(c, "f")
        _wait_history_idle(c)
        assert c.call("stats")["history_points"] == 1
        old = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (0, old[1]))
        try:
            for i in range(3):
                send(c, "f", np.array([[i, 2.0]], dtype=np.float32))
                settle(c, "f")
            _wait_history_idle(c)
            st = c.call("stats")
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, old)
        held = _point_count(c, "f")
        assert st["history_failures"] >= 1, st["history_failures"]
        assert st["history_points"] == held, (st["history_points"], held)
        c.close()
    finally:
        assert d.stop() == 0


def main():
    t = Tap()
    t.case("history_points_equal_numpy_on_the_rows_of_each_step",
           history_points_equal_numpy_on_the_rows_of_each_step)
    t.case("a_rank_that_never_sends_gives_partial_points",
           a_rank_that_never_sends_gives_partial_points)
    t.case("coalescing_evaluates_the_latest_step_and_counts_the_rest",
           coalescing_evaluates_the_latest_step_and_counts_the_rest)
    t.case("evaluations_solve_on_every_thread_or_eval_threads",
           evaluations_solve_on_every_thread_or_eval_threads)
    t.case("history_survives_a_restart", history_survives_a_restart)
    t.case("downsampling_buckets_equal_numpy", downsampling_buckets_equal_numpy)
    t.case("stepless_streams_evaluate_every_rows_and_the_cache_answers_max_lag",
           stepless_streams_evaluate_every_rows_and_the_cache_answers_max_lag)
    t.case("retention_thins_the_oldest_half", retention_thins_the_oldest_half)
    t.case("history_of_f32_rows_far_from_the_origin_is_exact",
           history_of_f32_rows_far_from_the_origin_is_exact)
    t.case("bad_eval_lists_and_history_requests_change_nothing",
           bad_eval_lists_and_history_requests_change_nothing)
    t.case("a_corrupt_history_db_is_quarantined_and_the_daemon_starts",
           a_corrupt_history_db_is_quarantined_and_the_daemon_starts)
    t.case("a_two_second_lock_on_history_db_drops_no_point",
           a_two_second_lock_on_history_db_drops_no_point)
    t.case("history_points_counts_only_committed_points",
           history_points_counts_only_committed_points)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
