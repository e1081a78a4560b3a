"""bench_spectral.py — the spectral engine against the machine's limit and what a user would run.

For each d (default 1024 4096 8192; add 16384 with --big): a stream of 2d rows with a
power-law spectrum (lambda_i ~ 1/i plus noise) is built through libeigenwatch (f32 batches).
Then, in one process with OpenBLAS on every core:
  - top-10 eigenvalues: cold (a fresh stream), warm unchanged (asked again) and warm after 1%
    more rows; beside bare LAPACKE_dsyevd('N') on the same matrix (the full solve), and scipy's
    eigsh (ARPACK, k=10, which='LA') on a numpy copy of it (what a user would reach for);
  - entropy: quick (method slq, with its error bar) and exact (method exact), the quick error
    against the exact value, beside the same bare dsyevd and numpy.linalg.eigvalsh.
These streams keep the exact matrix at every d (exact_max_dim = d).

Then Frequent Directions (d = 1024 4096 8192 16384, or --fd-dims a,b,...): the same spectrum
into a sketched stream (sketch_rows 256) and into an exact one: ingest rate of each (the exact
one at 16384 on its first 2048 rows: its state alone is 2 GiB), the sketched stream's memory
(the library's count and the process's RSS growth), top-10 on the sketch (time, its certified
half-width and the midpoints' error against the exact top-10, which comes from numpy on the
rows), the entropy bracket (time, width, and that it contains numpy's exact entropy), and
beside them scipy's eigsh on the rows (ARPACK on X'X/n, k=10: what a user holding the rows would
run) and, with --big, bare dsyevd on the exact d×d matrix.
With --spectra[=4096,...] (alone: --spectra-only): the quick route across spectra at each d —
exp(-i/k) for k = 30, 100, 300, power laws i^-0.5, i^-1, i^-1.5, flat (1 + 0.2 U(0,1)), rank 10
plus noise — each as 2d rows (f64) under one random rotation. Per spectrum: quick entropy
(method slq: time, error against the entropy of bare dsyevd's eigenvalues, its bar), auto (time,
whether it kept the quick answer, its error), exact, bare dsyevd, and whether the quick bars of
renyi(0.5) and nuclear_norm cover the exact values; then the worst ratio to dsyevd and the
largest error of a quick entropy that auto kept.
Prints a table and the ratios; --json writes one object per d. Never run as a test.
Usage: OPENBLAS_NUM_THREADS=2 /usr/bin/python3 tests/bench/bench_spectral.py [--big] [--no-fd]
       [--fd-only] [--fd-dims 1024,16384] [--spectra[=4096]] [--spectra-only] [d ...]
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
    s = Stream(d, window=0, live_k=1, exact_max_dim=d)
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


def quick_spectra(d):
    """The quick route on several spectra at d (see the module doc); one dict per spectrum."""
    rng = np.random.default_rng(d)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    i = np.arange(d, dtype=float)
    lr = np.full(d, 1e-3)
    lr[:10] = rng.uniform(0.2, 1.0, 10)
    spectra = [("exp(-i/30)", np.exp(-i / 30)), ("exp(-i/100)", np.exp(-i / 100)),
               ("exp(-i/300)", np.exp(-i / 300)), ("i^-0.5", (i + 1) ** -0.5),
               ("i^-1", (i + 1) ** -1.0), ("i^-1.5", (i + 1) ** -1.5),
               ("flat", 1.0 + 0.2 * rng.random(d)), ("rank 10 + noise", lr)]
    out = []
    for k, (name, lam) in enumerate(spectra):
        X = (np.random.default_rng(100 + k).standard_normal((2 * d, d)) * np.sqrt(lam)) @ Q.T
        s = Stream(d, window=0, live_k=0, exact_max_dim=d)
        for j in range(0, 2 * d, 1024):
            s.ingest(X[j:j + 1024])
        del X
        _, _, A = s.matrix()
        r = {"d": d, "spectrum": name}
        # accuracy on this state: auto first (nothing cached), then slq (the same estimate)
        r["auto_s"], (h2, ex) = timed(s.query, "entropy")
        r["auto_quick"] = ex["error"] is not None
        h, ex = s.query("entropy", method="slq")
        r["slq_bar_rel"] = ex["error"]
        r["dsyevd_s"], w = bare_dsyevd(A)
        r["dsyevd_s"] = min(r["dsyevd_s"], bare_dsyevd(A)[0])  # the machine is shared: best of 2
        del A
        w = np.clip(w, 0, None)
        p = w / w.sum()
        pp = p[p > 0]
        H = float(-(pp * np.log(pp)).sum())
        R05 = float(np.log(np.sqrt(pp).sum()) / 0.5)
        NN = float(np.sqrt(w).sum() / np.sqrt(2 * d))
        r["auto_rel_err"] = abs(h2 - H) / H
        r["slq_rel_err"], r["slq_bar_rel"] = abs(h - H) / H, r["slq_bar_rel"] / H
        r["slq_covered"] = abs(h - H) <= r["slq_bar_rel"] * H
        v, ex = s.query("renyi", method="slq", alpha=0.5)
        r["renyi05_err_bar"] = ((v - R05) / R05, ex["error"] / R05)
        r["renyi05_covered"] = abs(v - R05) <= ex["error"]
        v, ex = s.query("nuclear_norm", method="slq")
        r["nuclear_err_bar"] = ((v - NN) / NN, ex["error"] / NN)
        r["nuclear_covered"] = abs(v - NN) <= ex["error"]
        # timing: best of 3 fresh estimates (one more row each, so nothing is cached)
        one = np.random.default_rng(k).standard_normal((3, d)) @ Q.T
        ts, ta = [], [r["auto_s"]]
        for j in range(3):
            s.ingest(one[j:j + 1])
            ts.append(timed(s.query, "entropy", method="slq")[0])
            s.ingest(one[j:j + 1])
            ta.append(timed(s.query, "entropy")[0])
        r["slq_s"], r["auto_s"] = min(ts), min(ta)
        s.ingest(one[:1])  # nothing cached for the exact solve either
        r["exact_s"], _ = timed(s.query, "entropy", method="exact")
        out.append(r)
        print(f"  {name:16s} dsyevd {r['dsyevd_s']:6.2f} s | slq {r['slq_s']:6.3f} s {r['slq_s'] / r['dsyevd_s']:5.3f}x"
              f" err {r['slq_rel_err']:.2e} bar {r['slq_bar_rel']:.2e} {'covered' if r['slq_covered'] else 'MISSED'}"
              f" | auto {r['auto_s']:6.3f} s {r['auto_s'] / r['dsyevd_s']:5.3f}x {'quick' if r['auto_quick'] else 'exact'}"
              f" err {r['auto_rel_err']:.1e} | exact {r['exact_s'] / r['dsyevd_s']:5.3f}x"
              f" | renyi0.5 {r['renyi05_err_bar'][0]:+.2e}/{r['renyi05_err_bar'][1]:.1e}"
              f" {'ok' if r['renyi05_covered'] else 'MISSED'} nuclear {r['nuclear_err_bar'][0]:+.2e}/{r['nuclear_err_bar'][1]:.1e}"
              f" {'ok' if r['nuclear_covered'] else 'MISSED'}", flush=True)
        del s
    kept = [r for r in out if r["auto_quick"]]
    print(f"  d = {d}: slq worst {max(r['slq_s'] / r['dsyevd_s'] for r in out):.3f}x dsyevd, max entropy"
          f" error {max(r['slq_rel_err'] for r in out):.2e}; auto kept quick on {len(kept)}/{len(out)}"
          + (f", worst {max(r['auto_s'] / r['dsyevd_s'] for r in kept):.3f}x, max error"
             f" {max(r['auto_rel_err'] for r in kept):.2e}" if kept else "")
          + f"; bars covered: entropy {sum(r['slq_covered'] for r in out)}/{len(out)},"
          f" renyi0.5 {sum(r['renyi05_covered'] for r in out)}/{len(out)},"
          f" nuclear {sum(r['nuclear_covered'] for r in out)}/{len(out)}", flush=True)
    return out


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_fd(d, big):
    """A sketched stream beside an exact one and numpy on the same rows (see the module doc)."""
    n = {1024: 4096, 4096: 8192}.get(d, 4096)
    rng = np.random.default_rng(7)
    scale = (1.0 / np.arange(1, d + 1) ** 0.5).astype(np.float32)
    X = np.empty((n, d), np.float32)
    for i in range(0, n, 1024):
        X[i:i + 1024] = rng.standard_normal((min(1024, n - i), d)).astype(np.float32) * scale
    out = {"d": d, "rows": n, "sketch_rows": 256}
    r0 = rss()
    fd = Stream(d, window=0, live_k=1, exact_max_dim=d - 1, sketch_rows=256)
    t0 = time.perf_counter()
    for i in range(0, n, 1024):
        fd.ingest(X[i:i + 1024])
    out["fd_rows_per_s"] = n / (time.perf_counter() - t0)
    out["fd_memory_bytes"] = fd.memory()
    out["fd_rss_growth_bytes"] = rss() - r0
    # the exact stream's ingest (at 16384 only its first 2048 rows: 2 GiB of state)
    ne = n if d <= 8192 else 2048
    ex = Stream(d, window=0, live_k=1, exact_max_dim=d)
    t0 = time.perf_counter()
    for i in range(0, ne, 1024):
        ex.ingest(X[i:i + 1024])
    out["exact_rows_per_s"] = ne / (time.perf_counter() - t0)
    out["exact_memory_bytes"] = ex.memory()
    if big:
        _, _, A = ex.matrix()
        out["dsyevd_s"], _ = bare_dsyevd(A)
        del A
    del ex
    # numpy's exact spectrum of the same rows (the n×n Gram when n < d: same nonzero spectrum)
    Xc = X.astype(np.float64)
    Xc -= Xc.mean(axis=0)
    t0 = time.perf_counter()
    G = (Xc @ Xc.T if n < d else Xc.T @ Xc) / n
    lam = np.clip(np.linalg.eigvalsh(G)[::-1], 0, None)
    out["numpy_exact_s"] = time.perf_counter() - t0
    p = lam / lam.sum()
    H = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    out["fd_topk_s"], (v, e) = timed(fd.query, "topk", k=10)
    out["fd_topk_halfwidth_rel"] = e["error"] / lam[0]
    out["fd_topk_max_err_rel"] = float(np.max(np.abs(v - lam[:10])) / lam[0])
    out["fd_topk_covered"] = bool(np.all(np.abs(v - lam[:10]) <= e["error"] * (1 + 1e-9)))
    fd.ingest(X[:max(1, n // 100)])  # +1% rows: the sketch's spectrum is recomputed
    out["fd_topk_after_1pct_s"], _ = timed(fd.query, "topk", k=10)
    out["fd_entropy_s"], _ = timed(fd.query, "entropy")  # timed here; checked on fd2 below
    out["exact_entropy"] = H
    try:
        from scipy.sparse.linalg import LinearOperator, eigsh
        op = LinearOperator((d, d), matvec=lambda x: Xc.T @ (Xc @ x) / n, dtype=np.float64)
        out["scipy_eigsh_rows_s"], _ = timed(eigsh, op, k=10, which="LA")
    except ImportError:
        out["scipy_eigsh_rows_s"] = None
    # the bracket on exactly the rows numpy saw
    fd2 = Stream(d, window=0, live_k=0, exact_max_dim=d - 1, sketch_rows=256)
    for i in range(0, n, 1024):
        fd2.ingest(X[i:i + 1024])
    _, e = fd2.query("entropy")
    out["fd_entropy_covered"] = bool(e["bracket"][0] <= H <= e["bracket"][1])
    out.update(fd_entropy_lo=e["bracket"][0], fd_entropy_hi=e["bracket"][1])
    return out


def print_fd(r):
    eig = r["scipy_eigsh_rows_s"]
    print(f"d = {r['d']}, Frequent Directions (sketch_rows {r['sketch_rows']}, {r['rows']} rows)")
    print(f"  ingest: sketch {r['fd_rows_per_s']:9.0f} rows/s   exact {r['exact_rows_per_s']:9.0f} rows/s"
          f"   ({r['fd_rows_per_s'] / r['exact_rows_per_s']:.2f}x)")
    print(f"  memory: sketch stream {r['fd_memory_bytes'] / 1e6:7.1f} MB (RSS grew {r['fd_rss_growth_bytes'] / 1e6:.1f} MB)"
          f"   exact stream {r['exact_memory_bytes'] / 1e6:7.1f} MB")
    print(f"  top-10 on the sketch          {r['fd_topk_s']:8.3f} s (after +1% rows {r['fd_topk_after_1pct_s']:.3f} s)"
          f"   half-width {r['fd_topk_halfwidth_rel']:.2e} lambda_1, midpoints off by {r['fd_topk_max_err_rel']:.2e},"
          f" covered {r['fd_topk_covered']}")
    print(f"  entropy bracket               {r['fd_entropy_s']:8.3f} s   [{r['fd_entropy_lo']:.4f}, {r['fd_entropy_hi']:.4f}]"
          f" nats, exact {r['exact_entropy']:.4f}, covered {r['fd_entropy_covered']}")
    print(f"  numpy exact spectrum of the rows {r['numpy_exact_s']:5.3f} s"
          + (f"   scipy eigsh on the rows {eig:.3f} s (top-10 on the sketch: {r['fd_topk_s'] / eig:.3f}x)" if eig else "")
          + (f"   bare dsyevd on the d x d matrix {r['dsyevd_s']:.1f} s" if "dsyevd_s" in r else ""), flush=True)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dims = [int(a) for a in args] or [1024, 4096, 8192] + ([16384] if "--big" in sys.argv else [])
    fd_dims = [1024, 4096, 8192, 16384]
    for a in sys.argv:
        if a.startswith("--fd-dims"):
            fd_dims = [int(x) for x in a.split("=", 1)[1].split(",")]
    rows = []
    print(f"# OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(all)')}", flush=True)
    if "--fd-only" in sys.argv or "--spectra-only" in sys.argv:
        dims = []
    for a in sys.argv:
        if a == "--spectra" or a.startswith("--spectra="):
            sd = [int(x) for x in a.split("=", 1)[1].split(",")] if "=" in a else [4096]
            for d in sd:
                print(f"d = {d}, the quick route across spectra (2d rows each)", flush=True)
                rows.extend(quick_spectra(d))
    if "--spectra-only" in sys.argv:
        if not any(a == "--spectra" or a.startswith("--spectra=") for a in sys.argv):
            print("d = 4096, the quick route across spectra (2d rows each)", flush=True)
            rows.extend(quick_spectra(4096))
        sys.argv.append("--no-fd")
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
    if "--no-fd" not in sys.argv:
        for d in fd_dims:
            r = bench_fd(d, "--big" in sys.argv)
            rows.append(r)
            print_fd(r)
    if "--json" in sys.argv:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
