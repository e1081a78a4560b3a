#!/usr/bin/python3
"""Scheduled evaluation under a training load (issue 9): 24 streams at d=1024, 8 ranks, one step
per second, the default eval (entropy, erank, rankme, participation_ratio, anisotropy, l2_std on
the recent view). Prints, in one run:

  - the lag from step completion to the history point (p50, p99; from the points' lag_s),
  - the evaluations done and the ones coalesced at 1 step/s,
  - the same load pushed as fast as it goes: steps/s, ingest rows/s, and the coalescing count,
  - the ingest rate of that load with eval: [] (evaluation off) beside it (the ratio),
  - what one evaluation costs beside numpy on the same window (cov + eigvalsh, float64) and a
    bare LAPACK dsyevd (numpy.linalg.eigvalsh is LAPACK's dsyevd) — the machine's own limit.

usage: tests/bench/bench_eval.py [--steps N] [--streams S] [--dim D] [--ranks R] [--rows ROWS]
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Daemon  # noqa: E402


def send_step(clients, names, step, blocks, ranks):
    for name in names:
        for r in range(ranks):
            c = clients[r % len(clients)]
            X = blocks[r]
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


def run(args, evals, paced):
    d = Daemon()
    try:
        c = d.client()
        clients = [d.client() for _ in range(4)]
        names = [f"layer.{i}" for i in range(args.streams)]
        for n in names:
            p = {"stream": n, "dim": args.dim, "world": args.ranks, "recent": True}
            if evals is not None:
                p["eval"] = evals
            c.call("create", p)
        rng = np.random.default_rng(0)
        blocks = [rng.standard_normal((args.rows, args.dim)).astype(np.float32)
                  for _ in range(args.ranks)]
        t0 = time.time()
        for s in range(args.steps):
            send_step(clients, names, s, blocks, args.ranks)
            if paced:
                time.sleep(max(0.0, t0 + s + 1 - time.time()))
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
            h = c.call("history", {"metrics": ["entropy"]})["series"]
            for s_ in h:
                lags += s_["lag_s"]
                skipped += sum(s_["skipped"])
                points += len(s_["step"])
        st = c.call("stats")
        rows = args.steps * args.ranks * args.rows * args.streams
        return {"sent_s": sent, "applied_s": applied, "total_s": total, "rows": rows, "lags": np.array(lags),
                "points": points, "skipped": skipped, "coalesced": st["eval_coalesced"],
                "evaluations": st["evaluations"], "inline": st["eval_inline"]}
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--streams", type=int, default=24)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--rows", type=int, default=32)
    args = ap.parse_args()
    print(f"{args.streams} streams, d={args.dim}, {args.ranks} ranks x {args.rows} rows per step, "
          f"{args.steps} steps, default eval on the recent view (4096-row window)")

    paced = run(args, None, True)
    lag = paced["lags"]
    print(f"1 step/s:      {paced['points']} points, {paced['skipped']} due steps coalesced; "
          f"lag p50 {np.percentile(lag, 50):.3f} s, p99 {np.percentile(lag, 99):.3f} s, "
          f"max {lag.max():.3f} s")

    fast = run(args, None, False)
    off = run(args, [], False)
    on_rate, off_rate = fast["rows"] / fast["applied_s"], off["rows"] / off["applied_s"]
    print(f"as fast as it goes, eval on:  {args.steps / fast['sent_s']:.1f} steps/s sent, "
          f"{on_rate:.0f} rows/s applied; {fast['points']} points, {fast['coalesced']} "
          f"coalesced, every evaluation done {fast['total_s'] - fast['applied_s']:.1f} s after "
          f"the last row")
    print(f"as fast as it goes, eval off: {off_rate:.0f} rows/s applied; with evaluation "
          f"ingest keeps {on_rate / off_rate:.2f} of that rate")

    # one evaluation's cost beside numpy on the same window
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4096, args.dim)).astype(np.float32).astype(np.float64)
    t = time.perf_counter()
    C = np.cov(W.T, bias=True)
    lam = np.linalg.eigvalsh(C)
    t_np = time.perf_counter() - t
    t = time.perf_counter()
    np.linalg.eigvalsh(C)
    t_lapack = time.perf_counter() - t
    per_eval = np.median(paced["lags"]) if len(paced["lags"]) else float("nan")
    print(f"numpy on one window (cov + eigvalsh, f64): {t_np:.3f} s; bare dsyevd "
          f"(numpy.linalg.eigvalsh): {t_lapack:.3f} s; the daemon's median lag / numpy: "
          f"{per_eval / t_np:.2f}; / dsyevd: {per_eval / t_lapack:.2f} ({lam[-1]:.2f})")


if __name__ == "__main__":
    main()
