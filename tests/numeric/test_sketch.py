"""Sketched streams (d above exact_max_dim: Frequent Directions) against numpy float64 of the same
rows.

Brackets: on 12 seeded spectra (flat, power-law, collapsed, spiked; centred and not) at d = 400
with sketch_rows 32 and 64, every bracketed metric — entropy, entropy_normalized, erank,
renyi(alpha = 0.5, 2, inf), vendi(q = 0.5), participation_ratio, nuclear_norm — reports a bracket
[lo, hi] that contains numpy's exact value (to 1e-9 relative: rounding), with the value its
midpoint and the error its half-width: certified, so every case, not 95%. Top of the spectrum:
topk, stable_rank, anisotropy and spectral_gap contain the exact value within their error;
trace and mnn equal numpy to 1e-12. The brackets narrow as sketch_rows grows (median width over
the cases, 64 rows against 32), a rank below sketch_rows gives a bracket of width ~0, and where
the coordinates carry the spectrum the exact diagonal (which the spectrum majorises) bounds the
entropy from above: the upper end overshoots under half as much as for the same spectrum
rotated (the lower end, where the missing mass is packed into the top directions, is unchanged).

Refusals: rankme, condition_number, spectrum and entropy_truncated are BAD_PARAM with a sentence
naming exact_max_dim; method exact or slq on a bracketed metric is BAD_PARAM; topk k above
2*sketch_rows+1 is BAD_PARAM; the stream is unchanged by each (count, trace). The window source of
a sketched stream is exact (its rows are held), and a stream at or below exact_max_dim is not
sketched (no bracket).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewlib import Stream  # noqa: E402
from taplib import Tap, close, raises  # noqa: E402
from test_spectral import seeded_spectrum as spectrum  # noqa: E402  (the same 4 kinds of spectra)

D = 400


def rows(lam, seed, n):
    rng = np.random.default_rng(seed)
    d = len(lam)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (rng.standard_normal((n, d)) * np.sqrt(lam)) @ Q.T + rng.standard_normal(d)


def exact_values(X, center):
    n, d = X.shape
    A = np.cov(X.T, bias=True) if center else X.T @ X / n
    w = np.clip(np.linalg.eigvalsh(A)[::-1], 0, None)
    p = w / w.sum()
    pp = p[p > 0]
    H = float(-(pp * np.log(pp)).sum())
    r05 = float(np.log(np.sqrt(pp).sum()) / 0.5)
    col = np.sqrt(n * np.clip(np.diag(A), 0, None))
    return w, A, {
        ("entropy", ()): H,
        ("entropy_normalized", ()): H / np.log(d),
        ("erank", ()): np.exp(H),
        ("renyi", (("alpha", 0.5),)): r05,
        ("renyi", (("alpha", 2),)): float(-np.log((p ** 2).sum())),
        ("renyi", (("alpha", "inf"),)): float(-np.log(p[0])),
        ("vendi", (("q", 0.5),)): np.exp(r05),
        ("participation_ratio", ()): float(w.sum() ** 2 / (w ** 2).sum()),
        ("nuclear_norm", ()): float(np.sqrt(w).sum() / np.sqrt(n)),
    }, {
        "stable_rank": float(w.sum() / w[0]),
        "anisotropy": float(w[0] / w.sum()),
        "spectral_gap": float(w[0] / w[1]),
    }, {"trace": float(np.trace(A)), "mnn": float(np.sort(col)[::-1][:min(n, d)].sum() / n)}


def sketched(ell, decay=0.0):
    return Stream(D, window=256, live_k=0, exact_max_dim=D // 2, sketch_rows=ell, decay=decay)


def brackets_contain_the_exact_values():
    widths = {32: [], 64: []}
    checked = 0
    for seed in range(12):
        kind, lam = spectrum(seed, D)
        X = rows(lam, 500 + seed, 1500)
        for center in (True, False):
            w, A, bracketed, top, exact = exact_values(X, center)
            for ell in (32, 64):
                s = sketched(ell)
                for i in range(0, len(X), 211):
                    s.ingest(X[i:i + 211])
                for (metric, params), want in bracketed.items():
                    got, ex = s.query(metric, center=center, **dict(params))
                    lo, hi = ex["bracket"]
                    tag = f"seed {seed} {kind} center={center} l={ell} {metric}{params}"
                    tol = 1e-9 * max(1.0, abs(want))
                    assert lo - tol <= want <= hi + tol, f"{tag}: {want:.10g} outside [{lo:.10g}, {hi:.10g}]"
                    close(got, (lo + hi) / 2, 1e-12, tag + " midpoint")
                    close(ex["error"], (hi - lo) / 2, 1e-9, tag + " half-width")
                    if metric == "entropy":
                        widths[ell].append(hi - lo)
                    checked += 1
                for metric, want in top.items():
                    got, ex = s.query(metric, center=center)
                    assert abs(got - want) <= ex["error"] * (1 + 1e-9) + 1e-12 * abs(want), \
                        f"seed {seed} {kind} l={ell} {metric}: |{got:.8g} - {want:.8g}| > {ex['error']:.3g}"
                    checked += 1
                vals, ex = s.query("topk", center=center, k=5)
                assert np.all(np.abs(vals - w[:5]) <= ex["error"] * (1 + 1e-9) + 1e-12 * w[0]), \
                    f"seed {seed} l={ell} topk {vals} vs {w[:5]} +- {ex['error']}"
                for metric, want in exact.items():
                    got, ex = s.query(metric, center=center)
                    assert ex["bracket"] is None and ex["error"] is None
                    close(got, want, 1e-12, f"seed {seed} {metric} exact on a sketch")
                checked += 1
    m32, m64 = np.median(widths[32]), np.median(widths[64])
    print(f"# {checked} certified checks; median entropy bracket width: l=32 {m32:.3f}, l=64 {m64:.3f} nats")
    assert m64 < m32, "a larger sketch must give narrower brackets"


def low_rank_is_held_exactly():
    lam = np.zeros(D)
    lam[:6] = [5, 4, 3, 2, 1, 0.5]
    X = rows(lam, 9, 900)
    s = sketched(32)
    s.ingest(X)
    _, _, bracketed, _, _ = exact_values(X, True)
    for (metric, params), want in bracketed.items():
        got, ex = s.query(metric, **dict(params))
        assert ex["error"] <= 1e-7 * max(1, abs(want)), f"rank 6 {metric}: width {ex['error']}"
        # order 1/2 and the nuclear norm sum sqrt(lambda) over numpy's ~400 rounding-level
        # eigenvalues (~1e-16 each, clipped at 0 or not): numpy's own value is uncertain at ~1e-5
        sqrtish = metric == "nuclear_norm" or dict(params).get("alpha", dict(params).get("q")) == 0.5
        close(got, want, 1e-5 if sqrtish else 1e-7, f"rank 6 {metric}{params}")


def the_exact_diagonal_tightens_the_bracket():
    """The true spectrum majorises the exact diagonal (Schur-Horn): where coordinates carry the
    spectrum (no rotation), H(diag) bounds the entropy from above far below water-filling."""
    lam = np.arange(1, D + 1, dtype=float) ** -0.5
    rng = np.random.default_rng(4)
    widths = {}
    for rotated in (True, False):
        X = rows(lam, 4, 3000) if rotated else rng.standard_normal((3000, D)) * np.sqrt(lam)
        s = sketched(32)
        s.ingest(X)
        C = np.cov(X.T, bias=True)
        w = np.clip(np.linalg.eigvalsh(C), 0, None)
        p = w / w.sum()
        H = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        dg = np.diag(C) / np.trace(C)
        Hd = float(-(dg * np.log(dg)).sum())
        _, ex = s.query("entropy")
        lo, hi = ex["bracket"]
        assert lo <= H <= hi, (rotated, lo, H, hi)
        print(f"# rotated={rotated}: [{lo:.3f}, {hi:.3f}] exact {H:.3f} H(diag) {Hd:.3f}")
        assert hi <= Hd + 1e-12, (rotated, hi, Hd)
        widths[rotated] = hi - H  # how far the upper end overshoots
    print(f"# upper end above the exact entropy: rotated {widths[True]:.3f}, coordinates carry "
          f"the spectrum {widths[False]:.3f} nats")
    assert widths[False] < 0.5 * widths[True], widths


def refusals_change_nothing():
    _, lam = spectrum(1, D)
    s = sketched(32)
    s.ingest(rows(lam, 3, 700))
    count, tr = s.count(), s.q("trace")
    for metric in ("rankme", "condition_number", "spectrum", "entropy_truncated"):
        e = raises("BAD_PARAM", s.query, metric)
        assert "exact_max_dim" in e.message and metric in e.message, e.message
    for method in ("exact", "slq"):
        e = raises("BAD_PARAM", s.query, "entropy", method=method)
        assert "sketch" in e.message and method in e.message, e.message
    e = raises("BAD_PARAM", s.query, "topk", k=66)
    assert "65" in e.message, e.message
    assert s.count() == count and s.q("trace") == tr
    # the window holds rows: exact there, and the stream at or below exact_max_dim is exact
    _, ex = s.query("entropy", source="window")
    assert ex["bracket"] is None and ex["error"] is None
    e2 = Stream(D, window=0, live_k=0, exact_max_dim=D, sketch_rows=32)
    e2.ingest(rows(lam, 3, 700))
    _, ex = e2.query("entropy")
    assert ex["bracket"] is None and ex["error"] is None


if __name__ == "__main__":
    t = Tap()
    t.case("sketch brackets and intervals contain numpy's exact values (12 spectra x 2 centrings x 2 sizes)",
           brackets_contain_the_exact_values)
    t.case("a rank below sketch_rows is held exactly (bracket width ~0)", low_rank_is_held_exactly)
    t.case("the exact diagonal tightens the bracket where coordinates carry the spectrum",
           the_exact_diagonal_tightens_the_bracket)
    t.case("refused metrics and methods are BAD_PARAM and change nothing", refusals_change_nothing)
    t.done()
