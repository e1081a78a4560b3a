#!/usr/bin/python3
"""Cluster benchmark: rows/s and evaluations/s with 1, 2 and 3 daemons on this machine, each
stream placed on its rendezvous owner by one Sender given every address — beside, in the same
run, the machine's own limit (bench_lib's bare exact-path ingest loop and bare dsyevd) and the
numpy float64 loop a user would write instead (the covariance and eigvalsh of every step in the
training process). Prints each figure, the per-daemon figures a user can extrapolate from to more
machines (stated as such), and the ratios.

This machine has the cores it has: several daemons on one machine share them, so the totals here
do not grow with the daemons the way they would across machines. What carries over is the
per-daemon throughput at a given load, and that placement spreads the streams evenly.

  /usr/bin/python3 tests/bench/bench_cluster.py [--build DIR] [--quick]
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from harness import Daemon  # noqa: E402

from eigenwatch import Client, Sender  # noqa: E402
from eigenwatch.placement import place  # noqa: E402

D = 256          # stream width
ROWS = 512       # rows per stream per step (one rank)
RUN = "bench"


def bare(build, dims):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([os.path.join(build, "tests", "bench", "bench_lib"), *map(str, dims)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return {r["d"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def step_rows(i, step):
    g = np.random.default_rng(7919 * i + step)
    return (g.standard_normal((ROWS, D)) * np.linspace(1, 4, D)).astype(np.float32)


def numpy_loop(nstreams, steps):
    """What a user would do in the training process: every stream's step covariance and all its
    eigenvalues (numpy float64), erank from them. Returns evaluations/s."""
    data = [[step_rows(i, s) for s in range(steps)] for i in range(nstreams)]
    t0 = time.perf_counter()
    for i in range(nstreams):
        for s in range(steps):
            X = data[i][s].astype(np.float64)
            lam = np.clip(np.linalg.eigvalsh(np.cov(X.T, bias=True)), 0, None)
            p = lam / lam.sum()
            p = p[p > 0]
            _ = np.exp(-(p * np.log(p)).sum())
    return nstreams * steps / (time.perf_counter() - t0)


def run_daemons(n, nstreams, steps):
    ds = [Daemon() for _ in range(n)]
    try:
        addrs = [d.unix for d in ds]
        names = [f"layer.{i}" for i in range(nstreams)]
        data = [[step_rows(i, s) for s in range(steps)] for i in range(nstreams)]
        snd = Sender(",".join(addrs), max_queue=1 << 20, flush_on_exit=0)
        for name in names:
            snd.declare(name, run=RUN, world=1, window_steps=1, eval=[{"metric": "erank"}])
        t0 = time.perf_counter()
        for s in range(steps):
            for i, name in enumerate(names):
                snd.send(name, data[i][s], run=RUN, step=s, rank=0, world=1)
        snd.end_steps()
        assert snd.flush(600), snd.stats()
        t_ingest = time.perf_counter() - t0
        cl = Client(addrs)
        deadline = time.time() + 600
        while time.time() < deadline:
            h = cl.history(run=RUN, metrics="erank")
            # every step evaluated: a point, or coalesced into a later one (its `skipped`)
            done = sum(len(s.step) + int(s.skipped.sum()) for s in h.values())
            if done >= nstreams * steps:
                break
            time.sleep(0.02)
        t_all = time.perf_counter() - t0
        points = sum(len(s.step) for s in cl.history(run=RUN, metrics="erank").values())
        skipped = sum(int(s.skipped.sum()) for s in cl.history(run=RUN, metrics="erank").values())
        per = {a: sum(1 for nm in names if place(RUN, nm, addrs) == a) for a in addrs}
        cl.close()
        snd.close(5)
        return {"daemons": n, "rows_s": nstreams * steps * ROWS / t_ingest,
                "evals_s": points / t_all, "steps_s": (points + skipped) / t_all,
                "points": points, "skipped": skipped,
                "seconds": t_all, "streams_per_daemon": sorted(per.values())}
    finally:
        for d in ds:
            d.stop()


def main():
    build = os.path.join(ROOT, "build")
    if "--build" in sys.argv:
        build = sys.argv[sys.argv.index("--build") + 1]
    quick = "--quick" in sys.argv
    os.environ.setdefault("EWD_BIN", os.path.join(build, "daemon", "eigenwatchd"))
    nstreams, steps = (12, 4) if quick else (24, 10)
    b = bare(build, [D])[D]
    npy = statistics.median(numpy_loop(nstreams, 3) for _ in range(3))
    bare_evals = 1.0 / b["dsyevd_s"]
    print(f"eigenwatch cluster benchmark: {nstreams} streams, d = {D}, {ROWS} rows per stream per "
          f"step, {steps} steps, erank every step; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"  machine limit (one thread): bare ingest {b['bare_exact_rows_s']:,.0f} rows/s, "
          f"bare dsyevd {bare_evals:,.0f} solves/s")
    print(f"  numpy in the training process: {npy:,.1f} evaluations/s (cov + eigvalsh)")
    rows = []
    for n in (1, 2, 3):
        r = run_daemons(n, nstreams, steps)
        rows.append(r)
        print(f"  {n} daemon{'s' if n > 1 else ' '}: {r['rows_s']:>10,.0f} rows/s  "
              f"{r['evals_s']:>6,.1f} evaluations/s (solves)  {r['steps_s']:>6,.1f} stream-steps/s "
              f"covered ({r['points']} points, {r['skipped']} steps coalesced into later ones; "
              f"streams per daemon {r['streams_per_daemon']}); per daemon "
              f"{r['rows_s'] / n:,.0f} rows/s, {r['evals_s'] / n:,.1f} evaluations/s")
    one = rows[0]
    print("  ratios (same run):")
    print(f"    1 daemon ingest / bare ingest loop      {one['rows_s'] / b['bare_exact_rows_s']:.2f}")
    print(f"    1 daemon evaluations / bare dsyevd      {one['evals_s'] / bare_evals:.2f}")
    print(f"    1 daemon evaluations / numpy loop       {one['evals_s'] / npy:.2f}")
    for r in rows[1:]:
        print(f"    {r['daemons']} daemons / 1 daemon: rows {r['rows_s'] / one['rows_s']:.2f}, "
              f"evaluations {r['evals_s'] / one['evals_s']:.2f} (one machine's {os.cpu_count()} "
              "cores shared: not the scaling across machines)")
    print("  per-daemon figures are what a user can extrapolate from: streams spread by placement, "
          "each daemon on its own machine does about the 1-daemon row above for its share of the "
          "streams (an extrapolation, not a measurement of many machines)")


if __name__ == "__main__":
    main()
