#!/usr/bin/python3
"""Kernel metrics benchmark (DESIGN §13; target in §6: `dse` on 4096 window rows at d = 1024
faster than numpy's kernel formation + eigvalsh in the same run). One run measures:

  - the library: `dse` (sigma 10, t 1) queried on a stream whose window holds N rows of dimension
    d (f32), and `vendi_kernel` (gaussian, q 1) — each the median of --reps first queries, each on
    a stream fresh (the spectrum cache empty); then dse again with another t (the cache);
  - numpy, what a user writes instead (float64): the squared distances by the expansion
    |x|^2 + |y|^2 - 2 X X^T, exp, the symmetric normalisation, np.linalg.eigvalsh, the entropy;
  - the machine's limit for the eigensolve alone: LAPACKE_dsyevd('N') of the same order, timed
    in C (bench_kernel_bare.c via ctypes);
and prints the ratios library / numpy and library / bare dsyevd, with the two values side by side;
then the grouped metrics on the same rows with 10 labels: group_erank beside numpy's per-label
centred covariance + eigvalsh, and group_separation.
Times are printed, never asserted. usage:
  /usr/bin/python3 tests/bench/bench_kernel.py [--build DIR] [--rows 4096] [--dim 1024] [--reps 3]
                                               [--quick]   (--quick: 1024 rows, d 256, 1 rep)
"""
import argparse
import ctypes as C
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def numpy_dse(X, sigma=10.0, t=1.0):
    sq = np.einsum("ij,ij->i", X, X)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.maximum(D, 0, out=D)
    G = np.exp(-D / (2 * sigma * sigma))
    r = 1.0 / np.sqrt(G.sum(1))
    K = G * r[:, None] * r[None, :]
    lam = np.abs(np.linalg.eigvalsh(K)) ** t
    p = lam / lam.sum() + np.finfo(float).eps
    return float(-(p * np.log2(p)).sum()), K


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rows, a.dim, a.reps = 1024, 256, 1
    os.environ["EW_LIB"] = os.path.join(a.build, "lib", "libeigenwatch.so")
    sys.path.insert(0, os.path.join(ROOT, "tests", "numeric"))
    from ewlib import Stream  # noqa: E402
    bare = C.CDLL(os.path.join(a.build, "tests", "bench", "libbench_kernel_bare.so"))
    bare.ewb_dsyevd_s.restype = C.c_double
    bare.ewb_dsyevd_s.argtypes = [C.c_void_p, C.c_int, C.c_void_p]

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((a.rows, a.dim)) * 0.3).astype(np.float32)
    X64 = X.astype(np.float64)
    s = Stream(a.dim, window=a.rows)
    s.ingest(X, dtype="f32")
    print(f"eigenwatch kernel benchmark: N = {a.rows} window rows, d = {a.dim} (f32), median of "
          f"{a.reps}; load average {os.getloadavg()[0]:.2f}", flush=True)

    def med(f):
        ts, v = [], None
        for _ in range(a.reps):
            t0 = time.perf_counter()
            v = f()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts), v

    def cold(metric, **params):
        """Median over reps of the query on a stream fresh each time (the spectrum cache empty:
        a first query's cost), and the value."""
        ts, v = [], None
        for _ in range(a.reps):
            f = Stream(a.dim, window=a.rows)
            f.ingest(X, dtype="f32")
            t0 = time.perf_counter()
            v = f.q(metric, **params)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts), v

    t_lib, v_lib = cold("dse", sigma=10.0, max_rows=a.rows)
    s.q("dse", sigma=10.0, max_rows=a.rows)
    t_warm, _ = med(lambda: s.q("dse", sigma=10.0, t=2.0, max_rows=a.rows))
    t_np, (v_np, K) = med(lambda: numpy_dse(X64))
    w = np.empty(a.rows)
    ts = []
    for _ in range(a.reps):
        A = np.ascontiguousarray(K)
        ts.append(bare.ewb_dsyevd_s(A.ctypes.data, a.rows, w.ctypes.data))
    t_bare = statistics.median(ts)
    t_vk, v_vk = cold("vendi_kernel", kernel="gaussian", sigma=10.0, max_rows=a.rows)
    # grouped metrics: the same rows with 10 labels
    y = (np.arange(a.rows) % 10).astype(np.uint32)
    g = Stream(a.dim, window=a.rows)
    g.ingest(X, dtype="f32", labels=y)
    t_ge, _ = med(lambda: g.q("group_erank"))
    t_gs, _ = med(lambda: g.q("group_separation"))

    def numpy_group_erank():
        out = []
        for k in range(10):
            Z = X64[y == k]
            Z = Z - Z.mean(0)
            lam = np.clip(np.linalg.eigvalsh(Z.T @ Z / len(Z)), 0, None)
            p = lam[lam > 0] / lam.sum()
            out.append(np.exp(-(p * np.log(p)).sum()))
        return out
    t_nge, _ = med(numpy_group_erank)
    print(f"  dse, library query (first)         {t_lib * 1e3:9.1f} ms   value {v_lib:.12f}")
    print(f"  dse, numpy (expansion + eigvalsh)  {t_np * 1e3:9.1f} ms   value {v_np:.12f}   "
          f"library / numpy {t_lib / t_np:.2f}  (target < 1)")
    print(f"  bare LAPACKE_dsyevd('N'), n = {a.rows}   {t_bare * 1e3:9.1f} ms   "
          f"library / bare {t_lib / t_bare:.2f}")
    print(f"  vendi_kernel (gaussian, q 1, first){t_vk * 1e3:9.1f} ms   value {v_vk:.12f}")
    print(f"  dse again with t = 2 (the spectrum cache: no solve) {t_warm * 1e3:9.2f} ms")
    print(f"  |library - numpy| / numpy: {abs(v_lib - v_np) / abs(v_np):.1e}", flush=True)
    print(f"  group_erank, 10 labels              {t_ge * 1e3:9.1f} ms   numpy (centred covariance "
          f"+ eigvalsh per label) {t_nge * 1e3:.1f} ms -> library / numpy {t_ge / t_nge:.2f}")
    print(f"  group_separation, 10 labels         {t_gs * 1e3:9.1f} ms", flush=True)


if __name__ == "__main__":
    main()
