#!/usr/bin/python3
"""Library benchmark: libeigenwatch vs the bare BLAS/LAPACK limit vs what a user writes in numpy.

Runs build/tests/bench/bench_lib (C: library ingest and entropy beside the bare exact path with
an f64 Gram and with the f32 Gram of earlier versions, bare cblas_dsyrk and bare LAPACKE_dsyevd),
then, in the same run, the numpy float64 loops a user would write instead (S += X.T @ X per batch;
np.linalg.eigvalsh + entropy), and prints ratios. With --before DIR (a build tree of another
version, e.g. `git worktree add /tmp/old <commit> && scripts/build.sh` there), that version's
library ingest is measured in the same run too.
Usage: /usr/bin/python3 tests/bench/bench_lib.py [--build DIR] [--before DIR] [d ...]
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def numpy_ingest(d, rows, batch=256, reps=3):
    rng = np.random.default_rng(0)
    X = (rng.random((rows, d), dtype=np.float32) - 0.5) + 3.0
    best = 0.0
    for _ in range(reps):
        S = np.zeros((d, d))
        s = np.zeros(d)
        t0 = time.perf_counter()
        for i in range(0, rows - batch + 1, batch):
            B = X[i:i + batch].astype(np.float64)
            S += B.T @ B
            s += B.sum(0)
        dt = time.perf_counter() - t0
        best = max(best, (rows // batch * batch) / dt)
    return best


def numpy_entropy(d, reps=3):
    rng = np.random.default_rng(1)
    B = rng.standard_normal((max(2 * d, 512), d))
    C = np.cov(B.T)
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        w = np.clip(np.linalg.eigvalsh(C), 0, None)
        p = w / w.sum()
        p = p[p > 0]
        _ = -(p * np.log(p)).sum()
        best = min(best, time.perf_counter() - t0)
    return best


def run_c(build, dims):
    exe = os.path.join(build, "tests", "bench", "bench_lib")
    out = subprocess.run([exe, *dims], check=True, capture_output=True, text=True)
    return {r["d"]: r for r in (json.loads(line) for line in out.stdout.splitlines()
                                if line.startswith("{"))}


def main():
    args = sys.argv[1:]
    build = os.path.join(ROOT, "build")
    before = None
    while args[:1] in (["--build"], ["--before"]):
        if args[0] == "--build":
            build = args[1]
        else:
            before = args[1]
        args = args[2:]
    dims = args or ["256", "1024", "4096"]
    rows = run_c(build, dims)
    old = run_c(before, dims) if before else {}
    print("libeigenwatch benchmark (f32 rows, batches of 256; OpenBLAS threads: %s)"
          % os.environ.get("OPENBLAS_NUM_THREADS", "default"))
    print("ingest rows/s: lib = exact path only (window/live off); lib+def = default config;")
    print("bare = the bare exact path (f64 centring + dsyrk + Chan merge); bare32 = the same with")
    print("the f32 Gram (ssyrk) the library used until wave 3; dsyrk = bare dsyrk alone;")
    print("numpy64 = S += B.T @ B on f64 batches; syrk/np = the ceiling of any exact f64 path"
          + ("; before = the library built in " + before if before else ""))
    hdr = ("%5s | %9s %9s %9s %9s %9s %9s%s | %7s %7s %7s %7s %7s %7s | %8s %8s %8s %6s %7s"
           % ("d", "lib", "lib+def", "bare", "bare32", "dsyrk", "numpy64",
              " %9s" % "before" if old else "", "lib/bare", "def/bare", "bare/b32",
              "lib/np", "syrk/np", "lib/bfr" if old else "", "entropy", "dsyevd", "eigvalsh", "/dsyevd",
              "np/lib"))
    print(hdr)
    print("-" * len(hdr))
    for d in sorted(rows):
        r = rows[d]
        np_rows = numpy_ingest(d, min(r["rows"], 20480 if d <= 1024 else 2048),
                               reps=3 if d <= 1024 else 1)
        np_eig = numpy_entropy(d, reps=3 if d <= 1024 else 1)
        b = old.get(d)
        print("%5d | %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f%s | %7.2f %7.2f %7.2f %7.2f %7.2f %7s | %8.4f "
              "%8.4f %8.4f %6.2f %7.2f"
              % (d, r["lib_rows_s"], r["lib_default_rows_s"], r["bare_exact_rows_s"],
                 r["bare_exact_f32_rows_s"], r["bare_dsyrk_rows_s"], np_rows,
                 " %9.0f" % b["lib_rows_s"] if b else "",
                 r["lib_rows_s"] / r["bare_exact_rows_s"],
                 r["lib_default_rows_s"] / r["bare_exact_rows_s"],
                 r["bare_exact_rows_s"] / r["bare_exact_f32_rows_s"],
                 r["lib_rows_s"] / np_rows, r["bare_dsyrk_rows_s"] / np_rows,
                 "%.2f" % (r["lib_rows_s"] / b["lib_rows_s"]) if b else "",
                 r["entropy_s"], r["dsyevd_s"], np_eig, r["entropy_s"] / r["dsyevd_s"],
                 np_eig / r["entropy_s"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
