#!/usr/bin/python3
"""Scheduled evaluation under a training load (issues 9, 25): S streams at d, R ranks, one step a
second, the default eval (entropy, erank, rankme, participation_ratio, anisotropy, l2_std on the
recent view). Two recent views, each run in full:

  - window_steps 16: the last 16 steps (16 x R x rows = 4096 rows at the defaults, >= d): every
    evaluation solves the d x d matrix of the recent view's moments, kept per completed step;
  - window_steps 1 (what eigenwatch.torch.watch() uses by default): the last step's R x rows
    rows (256 < d): the n x n Gram of the rows.

For each it prints, in one run:

  - at 1 step/s and at 2 steps/s: points, due steps coalesced, the lag from step completion to
    the history point (p50, p99, max; from the points' lag_s);
  - one evaluation's cost by part (median over the streams of info's eval.cost: the recent
    view's update, the stream's turn = cheap metrics + snapshot, the solve, the write), under
    that load and for one layer alone, beside bare LAPACKE_dsyevd('N') solves of its two
    matrices (C and S = C + mu mu^T: rankme is uncentred) in this process (one thread, as each
    math thread runs) and numpy (cov + two eigvalsh, float64) — the ratio evaluation / bare;
  - the same load pushed as fast as it goes with the eval on and with `eval: []`: the ingest
    rate of each and their ratio, and the coalescing count.

Benchmarks never assert; they print. usage:
  tests/bench/bench_eval.py [--steps N] [--streams S] [--dim D] [--ranks R] [--rows ROWS]
                            [--window-steps 16,1] [--eval-threads 0]
"""
import argparse
import ctypes as C
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the bare solve runs as one math thread does
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Daemon  # noqa: E402


def send_step(clients, names, step, blocks, ranks):
    for name in names:
        for r in range(ranks):
            c = clients[r % len(clients)]
            X = blocks[(step + r) % len(blocks)]
            c.notify("ingest", {"stream": name, "data": X.tobytes(), "dtype": "f32",
                                "shape": list(X.shape), "step": step, "rank": r})


def wait_idle(c, names, timeout=600):
    deadline = time.time() + timeout
    for name in names:
        while time.time() < deadline:
            c.call("query", {"stream": name, "metrics": "trace", "source": "all"})
            if not c.call("info", {"stream": name})["eval"]["busy"]:
                break
            time.sleep(0.05)


def run(args, wsteps, evals, period):
    """One load: period seconds per step (0: as fast as it goes)."""
    cfg = f"eval_threads = {args.eval_threads}\n" if args.eval_threads else None
    d = Daemon(config=cfg)
    try:
        c = d.client()
        clients = [d.client() for _ in range(4)]
        names = [f"layer.{i}" for i in range(args.streams)]
        for n in names:
            p = {"stream": n, "dim": args.dim, "world": args.ranks, "window_steps": wsteps}
            if evals is not None:
                p["eval"] = evals
            c.call("create", p)
        rng = np.random.default_rng(0)
        mix = rng.standard_normal((args.dim, args.dim)) * np.linspace(1, 0.01, args.dim)
        blocks = [(rng.standard_normal((args.rows, args.dim)) @ mix).astype(np.float32)
                  for _ in range(2 * args.ranks)]
        t0 = time.time()
        for s in range(args.steps):
            send_step(clients, names, s, blocks, args.ranks)
            if period:
                time.sleep(max(0.0, t0 + period * (s + 1) - time.time()))
        for x in clients:  # every notification read by the daemon: a call behind them
            x.call("ping")
        sent = time.time() - t0
        for n in names:
            c.call("flush", {"stream": n})
        for n in names:  # queued behind every apply of the stream: all rows are in
            c.call("query", {"stream": n, "metrics": "trace", "source": "all"})
        applied = time.time() - t0
        wait_idle(c, names)
        total = time.time() - t0
        lags, skipped, points = [], 0, 0
        if evals != []:
            for s_ in c.call("history", {"metrics": ["entropy"]})["series"]:
                lags += s_["lag_s"]
                skipped += sum(s_["skipped"])
                points += len(s_["step"])
        costs = [c.call("info", {"stream": n})["eval"].get("cost") for n in names]
        st = c.call("stats")
        rows = args.steps * args.ranks * args.rows * args.streams
        return {"sent_s": sent, "applied_s": applied, "total_s": total, "rows": rows,
                "lags": np.array(lags), "points": points, "skipped": skipped,
                "coalesced": st["eval_coalesced"], "inline": st["eval_inline"],
                "costs": [x for x in costs if x]}
    finally:
        d.stop()


def bare_dsyevd(A, reps=5):
    """Median seconds of LAPACKE_dsyevd('N') on a copy of A (column-major = A, symmetric)."""
    lib = C.CDLL("liblapacke.so.3")
    n = A.shape[0]
    w = np.empty(n)
    ts = []
    for _ in range(reps):
        B = np.array(A, order="F", copy=True)
        t = time.perf_counter()
        rc = lib.LAPACKE_dsyevd(102, ord("N"), ord("U"), n, B.ctypes.data_as(C.c_void_p), n,
                                w.ctypes.data_as(C.c_void_p))
        ts.append(time.perf_counter() - t)
        assert rc == 0
    return float(np.median(ts))


def show_cost(label, costs, parts, n, dim):
    """One evaluation by part (median over the streams' info eval.cost) beside bare solves of its
    matrices: the default eval reads two, the centred C (entropy, erank, anisotropy) and the
    uncentred S = C + mu mu^T (rankme), so the bare reference is two dsyevd('N') of that order."""
    med = {k: float(np.median([c[k] for c in costs])) for k in parts}
    snap_b = int(np.median([c["snapshot_bytes"] for c in costs]))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, dim)).astype(np.float32).astype(np.float64)
    Xc = X - X.mean(0)
    A = Xc.T @ Xc / n if n >= dim else Xc @ Xc.T / n
    t_bare = bare_dsyevd(A)
    t = time.perf_counter()
    np.linalg.eigvalsh(np.cov(X.T, bias=True))
    np.linalg.eigvalsh(X.T @ X / n)
    t_np = time.perf_counter() - t
    total = med["update_ms"] + med["turn_ms"] + med["solve_ms"] + med["write_ms"]
    print(f"  one evaluation, {label}: update {med['update_ms']:.1f} ms, turn "
          f"{med['turn_ms']:.1f} ms (cheap metrics {med['cheap_ms']:.1f}, snapshot "
          f"{med['snapshot_ms']:.1f} ms, {snap_b / 2**20:.1f} MiB), solve {med['solve_ms']:.1f} "
          f"ms, write {med['write_ms']:.2f} ms: {total:.1f} ms; bare dsyevd('N') x 2 of order "
          f"{A.shape[0]}: {2e3 * t_bare:.1f} ms -> evaluation / bare {total / (2e3 * t_bare):.2f}"
          f"; numpy (cov + 2 eigvalsh, f64, d x d): {1e3 * t_np:.1f} ms -> evaluation / numpy "
          f"{total / (1e3 * t_np):.2f}", flush=True)


def show_paced(label, r):
    lag = r["lags"]
    if len(lag) == 0:
        print(f"  {label}: no points")
        return
    print(f"  {label}: {r['points']} points, {r['skipped']} due steps coalesced; lag p50 "
          f"{np.percentile(lag, 50):.3f} s, p99 {np.percentile(lag, 99):.3f} s, max "
          f"{lag.max():.3f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--streams", type=int, default=24)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--window-steps", default="16,1")
    ap.add_argument("--eval-threads", type=int, default=0)
    args = ap.parse_args()
    per_step = args.ranks * args.rows
    for ws in [int(x) for x in args.window_steps.split(",")]:
        n = min(ws * per_step, 4096)
        print(f"{args.streams} streams, d={args.dim}, {args.ranks} ranks x {args.rows} rows a "
              f"step, {args.steps} steps, default eval on the recent view: window_steps {ws} "
              f"({n} rows{' < d: the rows' if n < args.dim else ': its moments'})", flush=True)
        p1 = run(args, ws, None, 1.0)
        show_paced("1 step/s ", p1)
        p2 = run(args, ws, None, 0.5)
        show_paced("2 steps/s", p2)

        # one evaluation by part, beside a bare solve of the same-sized matrix: first as it went
        # under this load, then for one layer alone (the daemon keeping up: what an evaluation
        # costs when nothing else competes for the cores)
        parts = ["update_ms", "turn_ms", "cheap_ms", "snapshot_ms", "solve_ms", "write_ms"]
        one = argparse.Namespace(**dict(vars(args), streams=1, steps=24))
        alone = run(one, ws, None, 0.5)
        for label, costs in (("under this load", p1["costs"]), ("one layer alone", alone["costs"][:1])):
            show_cost(label, costs, parts, n, args.dim)

        fast = run(args, ws, None, 0)
        off = run(args, ws, [], 0)
        on_rate, off_rate = fast["rows"] / fast["applied_s"], off["rows"] / off["applied_s"]
        print(f"  as fast as it goes, eval on:  {args.steps / fast['sent_s']:.1f} steps/s sent, "
              f"{on_rate:.0f} rows/s applied; {fast['points']} points, {fast['coalesced']} "
              f"coalesced, the last evaluation {fast['total_s'] - fast['applied_s']:.1f} s after "
              f"the last row")
        print(f"  as fast as it goes, eval off: {off_rate:.0f} rows/s applied; with evaluation "
              f"ingest keeps {on_rate / off_rate:.2f} of that rate", flush=True)


if __name__ == "__main__":
    main()
