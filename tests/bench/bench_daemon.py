#!/usr/bin/python3
"""Daemon benchmark: eigenwatchd end to end over its Unix socket, in one run beside the machine's
own limit (bench_lib's bare exact-path loop and bare dsyevd, at 1 and 2 BLAS threads) and the
numpy float64 loop a user would write instead. Prints each figure with its target.

  /usr/bin/python3 tests/bench/bench_daemon.py [--build DIR]
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Client, Daemon  # noqa: E402

D, B = 1024, 256


def bare(build, threads, dims):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([os.path.join(build, "tests", "bench", "bench_lib"), *map(str, dims)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return {r["d"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def numpy_loop(rows):
    X = np.random.default_rng(0).standard_normal((rows, D)).astype(np.float32)
    S = np.zeros((D, D))
    t0 = time.perf_counter()
    for i in range(0, rows, B):
        b = X[i:i + B].astype(np.float64)
        S += b.T @ b
    return rows / (time.perf_counter() - t0)


def ingest_rate(c, name, X, d):
    msgs = [msgpack.packb([2, "ingest", [{"stream": name, "data": X[i:i + B].tobytes(),
                                           "dtype": "f32", "shape": [B, d]}]])
            for i in range(0, len(X), B)]
    t0 = time.perf_counter()
    for m in msgs:
        c.send_raw(m)
    c.call("ping")  # returns once every row above is counted
    return len(X) / (time.perf_counter() - t0)


def main():
    build = os.path.join(ROOT, "build")
    if sys.argv[1:2] == ["--build"]:
        build = sys.argv[2]
    os.environ.setdefault("EWD_BIN", os.path.join(build, "daemon", "eigenwatchd"))
    b1, b2 = bare(build, 1, [D]), bare(build, 2, [D, 4096])
    rows = 40960
    X = np.random.default_rng(1).standard_normal((rows, D)).astype(np.float32) + 3
    npy = numpy_loop(20480)

    d = Daemon()
    c = d.client()
    try:
        c.call("create", {"stream": "exact", "dim": D, "window": 0, "topk": 0})
        ingest_rate(c, "exact", X[:4096], D)  # warm up scratch buffers
        r_exact = max(ingest_rate(c, "exact", X, D) for _ in range(3))
        ingest_rate(c, "default", X[:4096], D)
        r_def = max(ingest_rate(c, "default", X, D) for _ in range(3))
        # fresh entropy: one new row invalidates the cached spectrum, then a fresh query
        lat = []
        for i in range(5):
            c.call("ingest", {"stream": "exact", "rows": [X[i].tolist()]})
            t0 = time.perf_counter()
            c.call("query", {"stream": "exact", "metrics": ["entropy"], "fresh": True})
            lat.append(time.perf_counter() - t0)
        fresh = min(lat)
        rtt = []
        for _ in range(300):
            t0 = time.perf_counter()
            r = c.call("query", {"stream": "exact", "metrics": ["entropy"], "max_lag": 10 ** 9})
            rtt.append(time.perf_counter() - t0)
        assert r["cached"] is True
        rtt.sort()
        # ingest into A while B (d = 4096) is in a multi-second eigensolve
        XB = np.random.default_rng(2).standard_normal((4096 + 64, 4096)).astype(np.float32)
        cb = d.client()
        cb.call("create", {"stream": "B", "dim": 4096, "window": 0, "topk": 0})
        for i in range(0, len(XB), 512):
            cb.call("ingest", {"stream": "B", "data": XB[i:i + 512].tobytes(), "dtype": "f32",
                               "shape": [len(XB[i:i + 512]), 4096]})
        unloaded = max(ingest_rate(c, "exact", X[:16384], D) for _ in range(2))
        solve = {}

        def solve_b():
            t0 = time.perf_counter()
            cb.call("query", {"stream": "B", "metrics": ["entropy"], "fresh": True,
                              "method": "exact"})  # the d x d solve (auto would take the quick one)
            solve["s"] = time.perf_counter() - t0

        th = threading.Thread(target=solve_b)
        th.start()
        time.sleep(0.3)
        loaded, n_loaded = [], 0
        while th.is_alive():
            loaded.append(ingest_rate(c, "exact", X[:8192], D))
            n_loaded += 1
        th.join()
        during = statistics.median(loaded) if loaded else float("nan")
        # the same solve with nothing else going on: after 2 s of quiet it may take every core
        cb.call("ingest", {"stream": "B", "data": XB[:1].tobytes(), "dtype": "f32", "shape": [1, 4096]})
        time.sleep(2.5)
        t0 = time.perf_counter()
        cb.call("query", {"stream": "B", "metrics": ["entropy"], "fresh": True, "method": "exact"})
        alone = time.perf_counter() - t0
    finally:
        c.close()
        d.stop()

    ex1, ex2 = b1[D]["bare_exact_rows_s"], b2[D]["bare_exact_rows_s"]
    ev1, ev2 = b1[D]["dsyevd_s"], b2[D]["dsyevd_s"]
    print("eigenwatchd benchmark, d = 1024, f32 batches of 256 over the Unix socket "
          "(2 math threads x 1 BLAS thread)")
    print(f"ingest, stream with window/live off : {r_exact:9.0f} rows/s")
    print(f"ingest, default stream config       : {r_def:9.0f} rows/s")
    print(f"bare exact-path loop, 1 / 2 threads : {ex1:9.0f} / {ex2:.0f} rows/s")
    print(f"numpy float64 loop (S += X.T @ X)   : {npy:9.0f} rows/s")
    print(f"  ratio to bare exact (2 threads)   : {r_exact / ex2:5.2f} (target >= 0.70); "
          f"to 1 thread: {r_exact / ex1:.2f}; default config: {r_def / ex2:.2f}")
    print(f"  ratio to numpy                    : {r_exact / npy:5.2f} (target >= 2)")
    print(f"fresh entropy (round trip)          : {fresh * 1e3:7.1f} ms; bare dsyevd 1 / 2 "
          f"threads {ev1 * 1e3:.1f} / {ev2 * 1e3:.1f} ms; ratio to 2 threads "
          f"{fresh / ev2:.2f} (target <= 1.2), to 1 thread {fresh / ev1:.2f}")
    print(f"cached query round trip             : median {rtt[len(rtt) // 2] * 1e6:.0f} us, "
          f"p99 {rtt[int(len(rtt) * .99)] * 1e6:.0f} us (target < 1 ms)")
    print(f"ingest into A while B (d=4096) solves: {during:9.0f} rows/s vs {unloaded:.0f} "
          f"unloaded = {during / unloaded:.2f} (target >= 0.5); B's solve took "
          f"{solve.get('s', float('nan')):.1f} s; {n_loaded} samples")
    ev4 = b2[4096]["dsyevd_s"]
    print(f"the same d=4096 solve, pool quiet   : {alone:7.2f} s round trip; bare dsyevd 2 threads "
          f"{ev4:.2f} s; ratio {alone / ev4:.2f} (all cores when no other stream is busy)")


if __name__ == "__main__":
    main()
