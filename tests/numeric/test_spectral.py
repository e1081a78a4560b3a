"""The spectral engine against numpy float64: top-k by block Lanczos, and quick (deflated SLQ)
estimates with their error bars.

Top-k: at d = 700 (above the full-solve threshold of 512, so Lanczos runs) on spectra with gaps,
without (nearly flat; a repeated eigenvalue straddling k; an exact cluster), and collapsed, the
values of topk (with and without vectors), spectral_gap, anisotropy, stable_rank and renyi(inf)
equal numpy's eigvalsh of the same rows to 1e-10 (relative to lambda_1 for eigenvalues), vectors
match eigh's to 1 - <u, v>^2 <= 1e-8 where the eigenvalue is simple, and the reported residual
bound is at most 1e-10 lambda_1.

Quick estimates: 20 seeded spectra (flat, power-law, collapsed, spiked) at d = 600, n = 1200.
For entropy, entropy_normalized, erank, renyi(alpha=0.5), vendi(q=0.5) and nuclear_norm with
method="slq", the error bar must cover numpy's exact value in >= 95% of the 120 (case, metric)
pairs; method="exact" must equal numpy to 1e-9; a bad method is refused.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewlib import LIB, Stream, EwError  # noqa: E402,F401
from taplib import Tap, close, raises  # noqa: E402


def stream_with(lam, seed, n_factor=2):
    d = len(lam)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (rng.standard_normal((n_factor * d, d)) * np.sqrt(lam)) @ Q.T
    s = Stream(d, window=0, live_k=0)
    s.ingest(X)
    C = np.cov(X.T, bias=True)
    return s, C


def top_spectra(d):
    i = np.arange(d, dtype=float)
    yield "power law 1/i", 1.0 / (i + 1)
    yield "nearly flat 1-1e-4 i", 1.0 - 1e-4 * i
    rep = 1.0 / (i + 1)
    rep[:5], rep[5:15] = 3.0, 2.0
    yield "3 (x5), 2 (x10): k=10 cuts the cluster", rep
    col = np.full(d, 0.0)
    col[:3] = [3.0, 2.0, 1.0]
    yield "collapsed rank 3", col + 1e-9


def topk_matches_numpy():
    d = 700
    for seed, (name, lam) in enumerate(top_spectra(d)):
        s, C = stream_with(lam, 100 + seed)
        w, V = np.linalg.eigh(C)
        w, V = w[::-1], V[:, ::-1]
        # values only (Lanczos: no spectrum is cached)
        vals, ex = s.query("topk", k=10)
        err = np.max(np.abs(vals - w[:10])) / w[0]
        assert err <= 1e-10, f"{name}: topk values max err {err:.2e}"
        assert ex["error"] is not None and ex["error"] <= 1e-10 * w[0] * (1 + 1e-9), \
            f"{name}: reported residual bound {ex['error']}"
        vals, ex = s.query("topk", k=10, vectors=1)
        assert np.max(np.abs(vals - w[:10])) / w[0] <= 1e-10, f"{name}: with vectors"
        U = ex["vectors"]
        for j in range(10):
            gap = min(abs(w[j] - w[j - 1]) if j else np.inf, abs(w[j] - w[j + 1]))
            if gap > 1e-3 * w[0]:  # a simple eigenvalue: its vector is defined
                c = float(U[j] @ V[:, j]) ** 2
                assert 1 - c <= 1e-8, f"{name}: vector {j} 1-<u,v>^2 = {1 - c:.2e}"
        tr = np.trace(C)
        close(s.q("anisotropy"), w[0] / tr, 1e-10, f"{name}: anisotropy")
        close(s.q("stable_rank"), tr / w[0], 1e-10, f"{name}: stable_rank")
        close(s.q("renyi", alpha="inf"), -np.log(w[0] / tr), 1e-10, f"{name}: renyi inf")
        close(s.q("spectral_gap"), w[0] / w[1], 1e-9, f"{name}: spectral_gap")


def seeded_spectrum(seed, d):
    rng = np.random.default_rng(seed)
    kind = ["flat", "power", "collapsed", "spike"][seed % 4]
    i = np.arange(1, d + 1, dtype=float)
    if kind == "flat":
        lam = 1.0 + 0.2 * rng.random(d)
    elif kind == "power":
        lam = i ** -rng.uniform(0.5, 1.5)
    elif kind == "collapsed":
        r = int(rng.integers(2, 8))
        lam = np.full(d, 1e-3 * rng.random())
        lam[:r] = rng.uniform(1, 10, r)
    else:
        lam = i ** -0.5
        lam[:3] *= 30
    return kind, lam


def references(C, n):
    w = np.clip(np.linalg.eigvalsh(C), 0, None)
    p = w / w.sum()
    pp = p[p > 0]
    H = float(-(pp * np.log(pp)).sum())
    r05 = float(np.log(np.sqrt(pp).sum()) / 0.5)
    d = len(w)
    return {
        ("entropy", ()): H,
        ("entropy_normalized", ()): H / np.log(d),
        ("erank", ()): np.exp(H),
        ("renyi", (("alpha", 0.5),)): r05,
        ("vendi", (("q", 0.5),)): np.exp(r05),
        ("nuclear_norm", ()): float(np.sqrt(w).sum() / np.sqrt(n)),
    }


def slq_error_bars_cover_exact():
    d, cover, total, worst = 600, 0, 0, []
    misses = []
    for seed in range(20):
        kind, lam = seeded_spectrum(seed, d)
        s, C = stream_with(lam, 1000 + seed)
        for (metric, params), want in references(C, 2 * d).items():
            got, ex = s.query(metric, method="slq", **dict(params))
            assert ex["error"] is not None and ex["error"] > 0, f"{metric}: no error bar"
            total += 1
            if abs(got - want) <= ex["error"]:
                cover += 1
            else:
                misses.append(f"seed {seed} {kind} {metric}: |{got:.6g}-{want:.6g}| > {ex['error']:.2g}")
            worst.append(abs(got - want) / abs(want))
            # the exact method is exact
            close(s.q(metric, method="exact", **dict(params)), want, 1e-9, f"{metric} exact")
    frac = cover / total
    print(f"# SLQ bars cover the exact value in {cover}/{total} = {frac:.1%}; "
          f"median rel err {np.median(worst):.1e}, max {max(worst):.1e}")
    for m in misses:
        print("# miss:", m)
    assert frac >= 0.95, f"coverage {frac:.1%} < 95%"


def method_is_checked():
    s, _ = stream_with(np.ones(16), 7)
    e = raises("BAD_PARAM", s.query, "entropy", method=3)
    assert "method" in str(e), e


if __name__ == "__main__":
    import ewlib
    ewlib.METHODS[3] = 3  # an out-of-range value, to see it refused
    t = Tap()
    t.case("block Lanczos top-k equals numpy's eigh (gaps, no gaps, clusters, collapsed)",
           topk_matches_numpy)
    t.case("SLQ error bars cover the exact value in >= 95% of 120 cases", slq_error_bars_cover_exact)
    t.case("an unknown method is BAD_PARAM", method_is_checked)
    t.done()
