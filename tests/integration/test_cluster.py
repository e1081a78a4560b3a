#!/usr/bin/python3
"""Many daemons as one (proto/PROTOCOL.md, "Many daemons"): three real daemons, real Senders and
Clients given the three addresses.

- placement_and_steps: 24 streams of one run, 4 ranks (a Sender each, as 4 training processes
  would have), 6 steps: each stream exists on its rendezvous owner only (every daemon's own
  `list` against eigenwatch.placement.place), every step completes there with all 4 ranks, and
  each step's `trace` (window_steps 1: that step's rows) equals numpy float64 on the rows the 4
  ranks sent, at 1e-9. A Client of the three answers list/runs/history for all 24 streams, each
  once, and a stream's own query from its daemon.
- a_daemon_down_loses_only_its_streams: one daemon stopped mid-run (SIGTERM) and started again on
  its state and socket: the producers never block (each send() call's time is printed), the
  other daemons' streams lose no step and equal numpy, the restarted daemon's streams come back
  (its queue held their rows: nothing dropped), and no stream moves — every daemon's list is
  still its placement.
- export_three_merge_one: one stream fed a third of the rows on each daemon (a per-node layout),
  exported from the three and merged into a fourth daemon, equals one daemon fed the union in
  the same order: trace, entropy, erank, topk and the window's entropy, at 1e-12 relative."""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

from eigenwatch import Client, Sender  # noqa: E402
from eigenwatch.placement import place  # noqa: E402

RUN, NSTREAMS, RANKS, DIM, ROWS = "clu", 24, 4, 8, 16  # ROWS per rank per step


def rows(stream_i, step, rank):
    """The rows a rank sends for a stream's step (deterministic: the test recomputes them)."""
    g = np.random.default_rng(1_000_000 * stream_i + 1000 * step + rank)
    return (g.standard_normal((ROWS, DIM)) * np.linspace(1, 3, DIM)).astype(np.float32)


def want_trace(stream_i, step, ranks=range(RANKS)):
    X = np.vstack([rows(stream_i, step, r) for r in ranks]).astype(np.float64)
    return float(np.trace(np.cov(X.T, bias=True)))


def names():
    return [f"layer.{i}" for i in range(NSTREAMS)]


def senders(addrs):
    out = []
    for _r in range(RANKS):
        s = Sender(",".join(addrs), max_queue=100000, flush_on_exit=0)
        for name in names():
            s.declare(name, run=RUN, world=RANKS, window_steps=1, eval=[{"metric": "trace"}])
        out.append(s)
    return out


def send_step(snds, step, times=None):
    for r, s in enumerate(snds):
        for i, name in enumerate(names()):
            t0 = time.perf_counter()
            assert s.send(name, rows(i, step, r), run=RUN, step=step, rank=r, world=RANKS)
            if times is not None:
                times.append(time.perf_counter() - t0)


def owners(addrs):
    return {name: place(RUN, name, addrs) for name in names()}


def each_on_its_owner(daemons, addrs):
    own = owners(addrs)
    for d in daemons:
        c = d.client()
        got = sorted(s["stream"] for s in c.call("list", {"run": RUN})["streams"])
        c.close()
        want = sorted(n for n, a in own.items() if a == d.unix)
        assert got == want, f"{d.unix}: holds {got}, placement gives it {want}"
    assert len(set(own.values())) == 3, "placement left a daemon without streams"


def wait_steps(cl, name, last, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = cl.history(name, "trace", run=RUN)
        s = h.get((name, "trace"))
        if s is not None and len(s.step) and s.step[-1] >= last:
            return s
        time.sleep(0.05)
    raise AssertionError(f"{name}: no point for step {last} after {timeout} s")


def check_history(cl, name, steps):
    i = names().index(name)
    s = wait_steps(cl, name, steps[-1])
    got = dict(zip(s.step.tolist(), s.value.tolist()))
    ranks = dict(zip(s.step.tolist(), s.ranks.tolist()))
    for st in steps:
        assert st in got, f"{name}: step {st} missing ({sorted(got)})"
        assert ranks[st] == RANKS, f"{name}: step {st} has {ranks[st]} ranks"
        w = want_trace(i, st)
        assert abs(got[st] - w) <= 1e-9 * abs(w), f"{name} step {st}: {got[st]} != {w}"


def placement_and_steps():
    ds = [Daemon() for _ in range(3)]
    try:
        addrs = [d.unix for d in ds]
        snds = senders(addrs)
        for step in range(6):
            send_step(snds, step)
        for s in snds:
            s.end_steps()
            assert s.flush(60), s.stats()
            st = s.stats()
            assert st.dropped_batches == 0 and st.rejected_batches == 0, st
        each_on_its_owner(ds, addrs)
        with Client(addrs) as cl:
            for name in names():
                check_history(cl, name, list(range(6)))
            listed = [s["stream"] for s in cl.call("list", run=RUN)["streams"]]
            assert sorted(listed) == sorted(names()), listed
            runs = [r for r in cl.runs() if r["run"] == RUN]
            assert len(runs) == 1 and sorted(runs[0]["streams"]) == sorted(names()), runs
            assert runs[0]["last_step"] == 5, runs
            h = cl.history(run=RUN, metrics="trace")
            assert sorted(k[0] for k in h) == sorted(names()), sorted(h)
            for name in names()[:3]:  # a stream's own read goes to its daemon
                q = cl.query(name, "trace", run=RUN)
                assert q.count == 6 * RANKS * ROWS, q
                assert cl.daemon_of(name, RUN) == place(RUN, name, addrs)
        for s in snds:
            s.close(5)
    finally:
        for d in ds:
            d.stop()


def a_daemon_down_loses_only_its_streams():
    ds = [Daemon() for _ in range(3)]
    restarted = None
    try:
        addrs = [d.unix for d in ds]
        own = owners(addrs)
        snds = senders(addrs)
        for step in range(3):
            send_step(snds, step)
        for s in snds:
            assert s.flush(60)
        down = ds[1]
        stop_rc = down.stop()
        assert stop_rc == 0, stop_rc
        times = []
        for step in range(3, 6):  # while it is down: never blocks, never raises
            send_step(snds, step, times)
        times.sort()
        print(f"# send() while a daemon was down: {len(times)} calls, median "
              f"{1e6 * times[len(times) // 2]:.1f} us, max {1e6 * times[-1]:.1f} us")
        for s in snds:  # the last step ends now (on the daemon that is down: once it is back)
            s.end_steps()
        # the two that stayed up: a stream they own among three they own among the two too (a
        # rendezvous owner is the largest weight, which stays the largest in any subset)
        with Client([addrs[0], addrs[2]]) as up:
            for name in names():
                if own[name] != down.unix:
                    check_history(up, name, list(range(6)))
        restarted = Daemon(state_dir=down.dir)
        assert restarted.unix == down.unix, (restarted.unix, down.unix)
        for s in snds:
            assert s.flush(60), s.stats_by_daemon()
            assert s.stats().dropped_batches == 0, s.stats()
        ds[1] = restarted
        each_on_its_owner(ds, addrs)  # nothing moved
        with Client(addrs) as cl:
            for name in names():
                check_history(cl, name, list(range(6)))
        for s in snds:
            assert s.stats_by_daemon()[down.unix].reconnects >= 1, s.stats_by_daemon()
            s.close(5)
    finally:
        for d in ds:
            if d is not None and d.alive():
                d.stop()


def export_three_merge_one():
    ds = [Daemon() for _ in range(4)]
    try:
        g = np.random.default_rng(9)
        X = (g.standard_normal((600, DIM)) * np.linspace(1, 4, DIM)).astype(np.float32)
        parts = np.array_split(X, 3)
        states = []
        for d, part in zip(ds[:3], parts):
            c = d.client()
            c.call("create", {"stream": "agg", "dim": DIM, "window": 1024})
            c.call("ingest", {"stream": "agg", "dtype": "f32", "shape": list(part.shape),
                              "data": part.tobytes()})
            states.append(c.call("export", {"stream": "agg"})["state"])
            c.close()
        c = ds[3].client()
        c.call("create", {"stream": "merged", "dim": DIM, "window": 1024})
        for st in states:
            c.call("merge", {"stream": "merged", "state": st})
        c.call("create", {"stream": "one", "dim": DIM, "window": 1024})
        c.call("ingest", {"stream": "one", "dtype": "f32", "shape": list(X.shape),
                          "data": X.tobytes()})
        asks = [({"metrics": ["trace", "entropy", "erank", "topk"], "params": {"k": 3}}, "all"),
                ({"metrics": ["entropy", "trace"], "source": "window"}, "window")]
        for params, what in asks:
            a = c.call("query", dict(params, stream="merged", fresh=True))["metrics"]
            b = c.call("query", dict(params, stream="one", fresh=True))["metrics"]
            for k in params["metrics"]:
                va, vb = np.atleast_1d(a[k]), np.atleast_1d(b[k])
                assert np.allclose(va, vb, rtol=1e-12, atol=0), (what, k, va, vb)
        assert c.call("info", {"stream": "merged"})["count"] == 600
        c.close()
    finally:
        for d in ds:
            d.stop()


def main():
    t = Tap()
    t.case("placement_each_stream_on_its_owner_every_step_complete_equal_numpy",
           placement_and_steps)
    t.case("a_daemon_down_loses_only_its_streams_nothing_moves",
           a_daemon_down_loses_only_its_streams)
    t.case("export_from_three_merged_into_one_equals_one_daemon_on_the_union",
           export_three_merge_one)
    t.done()


if __name__ == "__main__":
    main()
