"""libeigenwatch against numpy float64 on random data, computed at test time.

Every case draws rows with a random rotation, an anisotropic spectrum and a mean offset of up to
100x the spread, feeds them to the library in batches of the given size (uneven batches too) in
one of the four dtypes, and compares every metric with reference.py's from-scratch numpy float64
computation on exactly the values the library received. Tolerance: 1e-6 relative for scalars;
for spectra, 1e-6 * lambda_max on every eigenvalue (small eigenvalues of an f32-accumulated
state are resolved to ~1e-7 of the largest, see docs/METRICS.md).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from ewlib import Stream, bf16_words  # noqa: E402
from taplib import Tap, close, raises  # noqa: E402

REL = 1e-6
# Accuracy of the accumulated matrix itself, ‖A − A_ref‖₂ / ‖A_ref‖₂: every batch Gram is f64
# (f32/f16/bf16 rows centred exactly in f64), so f32 rows match numpy on the same values as f64
# rows do (the f32 Gram of earlier versions: 5e-7).
STATE_TOL = {"f32": 1e-12, "f64": 1e-12}


def gen(rng, n, d, offset, kind="decay"):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if kind == "decay":
        lam = 1.0 / np.sqrt(np.arange(1, d + 1))
    else:  # spike
        lam = np.ones(d)
        lam[0] = 10.0
    Z = rng.standard_normal((n, d)) * np.sqrt(lam)
    X = Z @ Q.T
    spread = np.sqrt(lam.sum())
    mu = rng.standard_normal(d)
    mu *= offset * spread / max(np.linalg.norm(mu), 1e-300)
    return X + mu


def as_dtype(X, dtype):
    """(array to send, float64 values the library will see)"""
    if dtype == "f64":
        return X.astype(np.float64), X.astype(np.float64)
    if dtype == "f32":
        a = X.astype(np.float32)
        return a, a.astype(np.float64)
    if dtype == "f16":
        a = X.astype(np.float16)
        return a, a.astype(np.float64)
    words, vals = bf16_words(X)
    return words, vals.astype(np.float64)


def batches(n, batch, rng):
    if batch == "uneven":
        out, i = [], 0
        while i < n:
            b = int(rng.integers(1, 600))
            out.append((i, min(n, i + b)))
            i += b
        return out
    return [(i, min(n, i + batch)) for i in range(0, n, batch)]


def check_state(s, V, center, source, path, label):
    """Asserts the library's matrix equals numpy's two-pass one; returns ‖E‖₂ (for Weyl bounds)."""
    _, _, A = s.matrix(source or "all", center=center)
    Aref = ref.matrix(V, center)
    scale = np.linalg.norm(Aref, 2)
    err = np.linalg.norm(A - Aref, 2)
    assert err <= STATE_TOL[path] * scale, \
        f"{label}: state error {err / scale:.2e} > {STATE_TOL[path]:g} relative"
    return err


def check_sketch(s, V, center, source=None, label="", path="f32"):
    n, d = V.shape
    want = ref.metrics(V, center=center)
    kw = dict(center=center, source=source)
    state_err = check_state(s, V, center, source, path, label)
    for name in ["entropy", "erank", "participation_ratio", "stable_rank", "anisotropy", "trace",
                 "nuclear_norm", "mnn", "entropy_normalized", "spectral_gap",
                 "entropy_truncated"]:
        if name in ("nuclear_norm", "mnn") and source == "window":
            continue
        w = want.get(name)
        if w is None:
            raises("DEGENERATE", s.q, name, **kw)
            continue
        close(s.q(name, **kw), w, REL, f"{label} {name} center={center}",
              abs_floor=1e-12 if w == 0 else 0)
    close(s.q("renyi", alpha=2, **kw), want["renyi"], REL, f"{label} renyi2", abs_floor=1e-12)
    close(s.q("renyi", alpha=0.5, **kw), want["renyi_a0.5"], REL, f"{label} renyi0.5",
          abs_floor=1e-12)
    close(s.q("renyi", alpha=3, **kw), want["renyi_a3"], REL, f"{label} renyi3", abs_floor=1e-12)
    close(s.q("renyi", alpha="inf", **kw), want["renyi_ainf"], REL, f"{label} renyi inf",
          abs_floor=1e-12)
    close(s.q("vendi", **kw), want["vendi"], REL, f"{label} vendi")
    close(s.q("vendi", q=2, **kw), want["vendi_q2"], REL, f"{label} vendi q2")
    # κ amplifies any perturbation of the state: by Weyl, |Δλ| <= ‖E‖₂, so the relative error of
    # λmax/λmin is at most about 2‖E‖₂/λmin. The state error is itself asserted above.
    e = want["spectrum"]
    lmin = e[e > 1e-5 * e[0]].min()
    close(s.q("condition_number", rcond=1e-5, **kw), want["condition_number_rc"],
          REL + 2.0 * state_err / lmin, f"{label} cond")
    if n >= 4 * d and e[-1] > 1e-6 * e[0]:  # full rank: the default rcond (1e-12) keeps all
        close(s.q("condition_number", **kw), e[0] / e[-1],
              REL + 2.0 * state_err / e[-1], f"{label} cond rcond=default")
    lmax = want["spectrum"][0]
    got = s.q("spectrum", **kw)
    assert got.shape == (d,), f"spectrum has {got.shape} values, want {d}"
    err = np.abs(got - want["spectrum"]).max()
    assert err <= REL * lmax + 1e-300, f"{label} spectrum max abs err {err:.3e} > {REL}*lmax"
    got = s.q("topk", **kw)
    k = min(8, d)
    assert got.shape == (k,), f"topk has {got.shape} values, want {k}"
    assert np.abs(got - want["spectrum"][:k]).max() <= REL * lmax


def run_case(seed, d, n, batch, offset, dtype, normalize, window):
    rng = np.random.default_rng(seed)
    X = gen(rng, n, d, offset, kind="spike" if seed % 2 else "decay")
    send, V = as_dtype(X, dtype)
    if normalize == "l2":
        V = ref.l2rows(V)
    s = Stream(d, normalize=normalize, window=window)
    for a, b in batches(n, batch, rng):
        s.ingest(send[a:b], dtype=dtype)
    assert s.count() == n, f"count {s.count()} != {n}"
    label = f"seed={seed} d={d} n={n} b={batch} off={offset} {dtype} {normalize}"
    path = "f64" if dtype == "f64" else "f32"
    check_sketch(s, V, True, label=label, path=path)
    check_sketch(s, V, False, label=label + " uncentred", path=path)
    close(s.q("rankme"), ref.rankme(V), REL, label + " rankme")
    close(s.q("rankme", eps=0), ref.rankme(V, eps=0), REL, label + " rankme eps=0")
    if window:
        Vw = V[-window:].astype(np.float32).astype(np.float64)
        assert s.window_count() == min(n, window)
        check_sketch(s, Vw, True, source="window", label=label + " window", path="f32")
        close(s.q("rankme", source="window"), ref.rankme(Vw), REL, label + " rankme window")
        if len(Vw) >= 2 and d >= 1:
            zero_mean = np.allclose(Vw, Vw.mean(0), atol=0, rtol=0)
            if not zero_mean:
                close(s.q("diff_erank"), ref.diff_erank(Vw), REL, label + " diff_erank")
                close(s.q("mnn_exact"), ref.mnn_exact(Vw), REL, label + " mnn_exact")
            close(s.q("l2_std"), ref.l2_std(Vw), REL, label + " l2_std")


CASES = [
    # seed, d, n, batch, offset, dtype, normalize, window
    (1, 1, 50, 1, 0, "f64", "none", 16),
    (2, 2, 300, 7, 1, "f32", "none", 64),
    (3, 5, 1000, "uneven", 100, "f32", "none", 128),
    (4, 5, 1000, 3, 100, "f64", "l2", 0),
    (5, 33, 2000, 256, 10, "f16", "none", 500),
    (6, 33, 2000, "uneven", 1, "bf16", "none", 0),
    (7, 64, 5000, 4096, 100, "f32", "none", 4096),
    (8, 64, 3000, 1, 3, "f64", "none", 256),
    (9, 128, 4000, "uneven", 100, "bf16", "l2", 1000),
    (10, 128, 3000, 17, 30, "f16", "l2", 100),
    (11, 200, 150, 32, 5, "f32", "none", 4096),    # n < d: dual Gram route
    (12, 200, 150, 32, 5, "f64", "none", 0),       # n < d through the f64 moments
    (13, 512, 3000, 256, 100, "f32", "none", 1024),
    (14, 512, 2500, "uneven", 1, "f64", "none", 300),
    (15, 300, 4200, 4096, 50, "f32", "l2", 4096),
    (16, 700, 1500, 128, 20, "f32", "none", 256),  # a window of rows only (256 < d), Lanczos top-k
]


def decay_case(seed, d, n, batch, half, dtype):
    rng = np.random.default_rng(seed)
    X = gen(rng, n, d, 20)
    send, V = as_dtype(X, dtype)
    s = Stream(d, decay=half, window=0)
    for a, b in batches(n, batch, rng):
        s.ingest(send[a:b], dtype=dtype)
    g = 2.0 ** (-1.0 / half)
    w = g ** np.arange(n - 1, -1, -1, dtype=np.float64)
    wtot, mean, A = s.matrix("all", center=True)
    close(wtot, w.sum(), 1e-12, "decayed weight")
    mu = (w / w.sum()) @ V
    assert np.abs(mean - mu).max() <= 1e-9 * (np.abs(mu).max() + 1), "decayed mean"
    Aref = ref.matrix(V, True, w)
    err = np.abs(A - Aref).max() / np.abs(Aref).max()
    tol = 1e-10 if dtype == "f64" else 1e-6
    assert err <= tol, f"decayed covariance rel err {err:.2e} > {tol}"
    want = ref.metrics(V, True, w)
    close(s.q("entropy"), want["entropy"], REL, "decayed entropy")
    close(s.q("participation_ratio"), want["participation_ratio"], REL, "decayed PR")
    close(s.q("nuclear_norm"), want["nuclear_norm"], REL, "decayed nuclear norm")


def main():
    t = Tap()
    for c in CASES:
        t.case("metrics_match_numpy seed=%d d=%d n=%d batch=%s offset=%s %s %s window=%d" % c,
               run_case, *c)
    t.case("decayed_state_matches_weighted_two_pass f64", decay_case, 21, 40, 3000, 37, 500.0,
           "f64")
    t.case("decayed_state_matches_weighted_two_pass f32 uneven", decay_case, 22, 17, 5000,
           "uneven", 700.0, "f32")
    t.case("decayed_state_half_life_1_row", decay_case, 23, 8, 400, 5, 1.0, "f64")
    t.done()


if __name__ == "__main__":
    main()
