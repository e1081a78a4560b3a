"""bench_spectral.py — the spectral engine against the machine's limit and what a user would run.

For each d (default 1024 4096 8192; add 16384 with --big): a stream of 2d rows with a
power-law spectrum (lambda_i ~ 1/i plus noise) is built through libeigenwatch (f32 batches).
Then, in one process with OpenBLAS on every core:
  - top-10 eigenvalues: cold (a fresh stream), warm unchanged (asked again) and warm after 1%
    more rows; beside bare LAPACKE_dsyevd('N') on the same matrix (the full solve), and scipy's
    eigsh (ARPACK, k=10, which='LA') on a numpy copy of it (what a user would reach for);
  - entropy: quick (method slq, with its error bar) and exact (method exact), the quick error
    against the exact value, beside the same bare dsyevd and numpy.linalg.eigvalsh.
Prints a table and the ratios; --json writes one object per d. Never run as a test.
Usage: OPENBLAS_NUM_THREADS=2 /usr/bin/python3 tests/bench/bench_spectral.py [--big] [d ...]
"""
import ctypes as C
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from ewlib import Stream  # noqa: E402

LAPACKE = C.CDLL("liblapacke.so.3")
LAPACKE.LAPACKE_dsyevd.argtypes = [C.c_int, C.c_char, C.c_char, C.c_int, C.c_void_p, C.c_int,
                                   C.c_void_p]


def bare_dsyevd(A):
    """LAPACKE_dsyevd('N') on a copy: the machine's full solve, every core."""
    B = np.array(A, order="F", copy=True)
    w = np.empty(B.shape[0])
    t0 = time.perf_counter()
    rc = LAPACKE.LAPACKE_dsyevd(102, b"N", b"U", B.shape[0], B.ctypes.data, B.shape[0],
                                w.ctypes.data)
    dt = time.perf_counter() - t0
    assert rc == 0, rc
    return dt, w[::-1]


def build(d, seed=1):
    rng = np.random.default_rng(seed)
    s = Stream(d, window=0, live_k=1)
    scale = (1.0 / np.arange(1, d + 1) ** 0.5).astype(np.float32)
    n = 2 * d
    t0 = time.perf_counter()
    for i in range(0, n, 1024):
        s.ingest(rng.standard_normal((min(1024, n - i), d)).astype(np.float32) * scale)
    return s, rng, scale, time.perf_counter() - t0


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return time.perf_counter() - t0, r


def bench(d):
    s, rng, scale, t_ing = build(d)
    out = {"d": d, "rows": 2 * d, "ingest_s": t_ing}
    out["topk_cold_s"], (v_cold, ex) = timed(s.query, "topk", k=10)
    out["topk_cold_resid"] = ex["error"]
    out["topk_warm_same_s"], _ = timed(s.query, "topk", k=10)  # the answer is warm-started
    s.ingest(rng.standard_normal((max(1, d // 50), d)).astype(np.float32) * scale)  # +1% rows
    out["topk_warm_1pct_s"], (v_warm, _) = timed(s.query, "topk", k=10)
    out["slq_s"], (h_q, ex) = timed(s.query, "entropy", method="slq")
    out["slq_bar"] = ex["error"]
    out["exact_s"], (h_x, _) = timed(s.query, "entropy", method="exact")
    out["slq_rel_err"] = abs(h_q - h_x) / h_x
    out["slq_covered"] = abs(h_q - h_x) <= ex["error"]
    _, _, A = s.matrix()
    out["dsyevd_s"], w = bare_dsyevd(A)
    out["topk_vs_dsyevd_max_rel"] = float(np.max(np.abs(v_warm - w[:10])) / w[0])
    p = np.clip(w, 0, None) / np.clip(w, 0, None).sum()
    h_ref = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    out["exact_vs_dsyevd_rel"] = abs(h_x - h_ref) / h_ref
    out["numpy_eigvalsh_s"], _ = timed(np.linalg.eigvalsh, A)
    try:
        from scipy.sparse.linalg import eigsh
        out["scipy_eigsh_s"], _ = timed(eigsh, A, k=10, which="LA")
    except ImportError:
        out["scipy_eigsh_s"] = None
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dims = [int(a) for a in args] or [1024, 4096, 8192] + ([16384] if "--big" in sys.argv else [])
    rows = []
    print(f"# OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(all)')}", flush=True)
    for d in dims:
        r = bench(d)
        rows.append(r)
        ds = r["dsyevd_s"]
        eigsh = r["scipy_eigsh_s"]
        print(f"d = {d} ({r['rows']} rows, ingested in {r['ingest_s']:.1f} s)")
        print(f"  bare LAPACKE_dsyevd('N')      {ds:8.3f} s   (numpy eigvalsh {r['numpy_eigvalsh_s']:.3f} s)")
        print(f"  top-10 cold                   {r['topk_cold_s']:8.3f} s   {r['topk_cold_s'] / ds:6.3f}x dsyevd"
              + (f"   {r['topk_cold_s'] / eigsh:6.3f}x scipy eigsh ({eigsh:.3f} s)" if eigsh else ""))
        print(f"  top-10 warm, state unchanged  {r['topk_warm_same_s']:8.3f} s   {r['topk_warm_same_s'] / ds:6.3f}x")
        print(f"  top-10 warm, +1% rows         {r['topk_warm_1pct_s']:8.3f} s   {r['topk_warm_1pct_s'] / ds:6.3f}x"
              f"   (max |theta - lambda|/lambda_1 vs dsyevd {r['topk_vs_dsyevd_max_rel']:.1e})")
        print(f"  entropy quick (slq)           {r['slq_s']:8.3f} s   {r['slq_s'] / ds:6.3f}x   "
              f"rel err {r['slq_rel_err']:.1e}, bar {r['slq_bar']:.1e} nats, covered {r['slq_covered']}")
        print(f"  entropy exact                 {r['exact_s']:8.3f} s   {r['exact_s'] / ds:6.3f}x   "
              f"(vs dsyevd's entropy {r['exact_vs_dsyevd_rel']:.1e})", flush=True)
    if "--json" in sys.argv:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
