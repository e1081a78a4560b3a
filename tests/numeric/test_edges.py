"""libeigenwatch at the edges real training runs reach: values far from 1 (a diverging run, a
layer whose activations shrink), and Rényi/Vendi of a large finite order. Every case compares
with reference.py's numpy float64 computation on exactly the values the library received, or
checks the refusal (code, nothing changed).

- Any finite f32 (f16, bf16) value is taken exactly: a batch Gram whose centred values would
  overflow or underflow f32 is formed from power-of-two-scaled values and scaled back in f64.
- f64 batches are taken when their largest magnitude lies in [2^-100, FLT_MAX] (the range the
  f32 window and live estimate can hold) or they are all zeros; otherwise OUT_OF_RANGE, and the
  stream is exactly as before.
- renyi/vendi of order alpha use sum p^a = p_max^a sum (p/p_max)^a, finite for every order; the
  reference is computed with Python's decimal module at 50 digits from numpy's eigenvalues.
Tolerance: 1e-6 relative (the documented bound for f32 batches), 1e-10 for f64 batches.
"""
import decimal
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from ewlib import EwError, Stream, bf16_words  # noqa: E402
from taplib import Tap, close  # noqa: E402

D = 16
SCALE_FREE = ["entropy", "erank", "participation_ratio", "stable_rank", "anisotropy"]


def rows(seed, n=512, d=D, offset=3.0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (rng.standard_normal((n, d)) * np.linspace(1.0, 3.0, d)) @ Q.T
    return X + offset * rng.standard_normal(d)


def compare(s, X, rel, window=False):
    """Every scale-free metric, the trace, the condition number and the top of the spectrum."""
    want = ref.metrics(X)
    for m in SCALE_FREE:
        close(s.q(m), want[m], rel, m)
    close(s.q("trace"), want["trace"], rel, "trace")
    e = want["spectrum"]
    close(s.q("condition_number"), e[0] / e[-1], 10 * rel, "condition_number")
    top = s.q("topk", k=3)
    for i in range(3):
        close(top[i], e[i], rel, f"topk[{i}]")
    if window:
        W = X[-s.window_count():]
        close(s.q("erank", source="window"), ref.metrics(W)["erank"], rel, "window erank")


def f32_huge_spread_is_exact():
    """Spread 1e19 (its squares overflow f32's syrk) and values near ±FLT_MAX."""
    for spread in (1e19, 1e30):
        X = (rows(1) * spread).astype(np.float32)
        s = Stream(D, window=256)
        for i in range(0, len(X), 128):
            s.ingest(X[i:i + 128])
        compare(s, X.astype(np.float64), 1e-6, window=True)
    X = rows(2, offset=0.0)
    X = (X / np.abs(X).max() * 3.3e38).astype(np.float32)  # x − mean overflows f32
    s = Stream(D, window=0)
    s.ingest(X)
    compare(s, X.astype(np.float64), 1e-6)


def f32_tiny_values_are_exact():
    """Rows of size 1e-30 and 1e-36 (their squares are far below f32's range)."""
    for size in (1e-30, 1e-36):
        X = (rows(3) * size).astype(np.float32)
        s = Stream(D, window=256)
        for i in range(0, len(X), 100):
            s.ingest(X[i:i + 100])
        X64 = X.astype(np.float64)
        compare(s, X64, 1e-6, window=True)
        assert s.q("trace") > 0


def f16_and_bf16_at_their_edges():
    X = rows(4, offset=0.0)
    Xh = (X / np.abs(X).max() * 60000).astype(np.float16)  # near f16's largest
    s = Stream(D, window=0)
    s.ingest(Xh)
    compare(s, Xh.astype(np.float64), 1e-6)
    Xb = X * 1e30
    words, vals = bf16_words(Xb)
    s = Stream(D, window=0)
    s.ingest(words, dtype="bf16")
    compare(s, vals.astype(np.float64), 1e-6)


def f64_out_of_range_is_refused_and_changes_nothing():
    s = Stream(D, window=64)
    base = rows(5)
    s.ingest(base)
    before = {m: s.q(m) for m in SCALE_FREE + ["trace"]}
    count = s.count()
    for scale in (1e39, 1e160, 1e300, 1e-33, 1e-300):
        bad = rows(6) * scale
        try:
            s.ingest(bad)
        except EwError as e:
            assert e.name == "OUT_OF_RANGE", (scale, e.name)
        else:
            raise AssertionError(f"f64 rows at {scale:g} were accepted")
        assert s.count() == count, "a refused batch changed the count"
        for m, v in before.items():
            assert s.q(m) == v, f"{m} changed after a refused batch at {scale:g}"
    # a batch of zeros is in range, and so are the edges of the range
    s.ingest(np.zeros((4, D)))
    for scale in (3.0e38 / 8, 2.0 ** -100 * 4):
        X = rows(7, offset=0.0)
        X = X / np.abs(X).max() * scale
        t = Stream(D, window=0)
        t.ingest(X)
        compare(t, X, 1e-10)


def decimal_renyi(e, a):
    decimal.getcontext().prec = 50
    p = [decimal.Decimal(float(x)) for x in e if x > 0]
    tot = sum(p)
    p = [x / tot for x in p]
    if math.isinf(a):
        return float(-max(p).ln())
    a = decimal.Decimal(a)
    return float(sum(x ** a for x in p).ln() / (1 - a))


def renyi_and_vendi_of_large_orders():
    X = rows(8)
    s = Stream(D, window=0)
    s.ingest(X)
    e = ref.eig(ref.matrix(X, True))
    prev = None
    for a in (0.5, 2, 3, 100, 300, 1000, 5000, 1e6, math.inf):
        want = decimal_renyi(e, a)
        got = s.q("renyi", alpha="inf" if math.isinf(a) else a)
        close(got, want, 1e-9, f"renyi alpha={a}")
        close(s.q("vendi", q="inf" if math.isinf(a) else a), math.exp(want), 1e-9,
              f"vendi q={a}")
        if prev is not None:
            assert got <= prev + 1e-12, f"renyi must not increase with the order (alpha={a})"
        prev = got


def floored(e, rel=1e-9):
    """numpy's eigenvalues with those at round-off level (below rel * trace) set to zero."""
    e = e.copy()
    e[e <= rel * e.sum()] = 0.0
    return e


def collapsed_layers_have_empty_directions():
    """Rank-r rows (r = 1, 4, 32) in d = 64..768, f32/f16/bf16/f64, batches of 1024 and 4096: the
    f32 Gram's rounding must not lift the empty directions (it gave condition numbers of 1e10 and
    a finite spectral gap at rank 1). Reference: numpy on the same values, eigenvalues below 1e-9
    of the trace counted as zero (the data's own rounding is below 1e-12 of it)."""
    for d, r, dtype, batch in [(64, 1, "f32", 1024), (64, 1, "f32", 4096), (256, 4, "f16", 1024),
                               (256, 4, "bf16", 4096), (768, 32, "f32", 1024),
                               (768, 32, "f64", 4096)]:
        rng = np.random.default_rng(d + r)
        if dtype in ("f16", "bf16"):  # small integers: exactly rank r in 8 or 11 bits
            B = rng.integers(-3, 4, (r, d)).astype(np.float64)
            X = rng.integers(-3, 4, (8192, r)) @ B + rng.integers(-8, 9, d)
        else:
            B = np.linalg.qr(rng.standard_normal((d, r)))[0].T
            X = (rng.standard_normal((8192, r)) * np.linspace(1, 3, r)) @ B + rng.standard_normal(d)
        if dtype == "bf16":
            feed, vals = bf16_words(X)
            X = vals.astype(np.float64)
        else:
            feed = X.astype({"f32": np.float32, "f16": np.float16, "f64": np.float64}[dtype])
            X = feed.astype(np.float64)
        s = Stream(d, window=0)
        for i in range(0, len(X), batch):
            s.ingest(feed[i:i + batch], dtype=dtype)
        what = f"d={d} rank {r} {dtype} batches of {batch}"
        e = floored(ref.eig(ref.matrix(X, True)))
        nz = e[e > 0]
        assert len(nz) == r, (what, len(nz))
        p = nz / nz.sum()
        h = -(p * np.log(p)).sum()
        close(s.q("condition_number"), nz[0] / nz[-1], 1e-6, "condition_number " + what)
        close(s.q("entropy"), h, 1e-6, "entropy " + what, abs_floor=1e-9)
        close(s.q("erank"), np.exp(h), 1e-6, "erank " + what)
        close(s.q("stable_rank"), nz.sum() / nz[0], 1e-6, "stable_rank " + what)
        if r == 1:
            try:
                s.q("spectral_gap")
            except EwError as err:
                assert err.name == "DEGENERATE", err.name
            else:
                raise AssertionError("spectral_gap of rank-1 rows must be DEGENERATE")
        else:
            close(s.q("spectral_gap"), nz[0] / nz[1], 1e-6, "spectral_gap " + what)
        spec, extra = s.query("spectrum")
        assert np.all(spec[r:] == 0) and extra["clamped"] >= d - r, (what, spec[r:r + 3])
        S = floored(ref.eig(ref.matrix(X, False)))
        sv = np.sqrt(S[:min(len(X), d)])
        q = sv / sv.sum() + 1e-7
        close(s.q("rankme"), np.exp(-(q * np.log(q)).sum()), 1e-6, "rankme " + what)


def eager_window_after_a_drop_in_variance():
    """Rows 1000x larger pass through the window in uneven batches; once they have left, eager
    (merge/un-merge) and lazy (rebuilt) windows must both equal numpy on the last W rows (eager
    gave a condition number of 298 for 103, with 6 eigenvalues clamped; with the f32 batch Gram,
    f32 rows were 7e-8 off)."""
    rng = np.random.default_rng(5)
    d, W = 32, 1024
    big = rng.standard_normal((1500, d)) * np.linspace(1, 3, d) * 1000
    small = rng.standard_normal((3000, d)) * np.linspace(1, 10, d) + 5
    for dtype in (np.float32, np.float64):
        X = np.vstack([big, small]).astype(dtype)
        sizes = [7, 300, 33, 128, 1, 500, 64, 250]
        want = ref.metrics(X[-W:].astype(np.float64))
        e = want["spectrum"]
        for mode in ("eager", "lazy", "auto"):
            s = Stream(d, window=W, window_mode=mode)
            i = k = 0
            while i < len(X):
                n = sizes[k % len(sizes)]
                s.ingest(X[i:i + n])
                i, k = i + n, k + 1
                if k % 5 == 0:  # queries keep an auto window maintained too
                    s.q("trace", source="window")
            what = f"{mode} window, {np.dtype(dtype).name}"
            cn, extra = s.query("condition_number", source="window")
            # f32 rows are held as sent (exact to 1e-9); f64 rows are rounded to f32 in the window
            tol = 1e-9 if dtype == np.float32 else 1e-6
            close(cn, e[0] / e[-1], tol, "condition_number " + what)
            assert extra["clamped"] == 0, (what, extra["clamped"])
            for m in ("erank", "trace", "participation_ratio"):
                close(s.q(m, source="window"), want[m], tol, f"{m} {what}")


def f32_far_from_the_origin():
    """Mean offsets up to 1e4 x the spread (per coordinate and over the whole row), f32 batches
    of 1024 to 16384 rows (ssyrk's blocking changes with the batch): every metric to 1e-6 and no
    diagonal bias beyond the f32 state tolerance, 5e-7 (wave 1 reported -1.8e-6 at offset 1e4
    with batches >= 4096)."""
    rng = np.random.default_rng(9)
    d = 128
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Z = (rng.standard_normal((32768, d)) * np.linspace(1, 2, d)) @ Q.T
    for offset in (1e3, 1e4):
        for X in (Z + offset, Z + offset * 20 * rng.standard_normal(d) / np.sqrt(d)):
            X = X.astype(np.float32)
            X64 = X.astype(np.float64)
            A = ref.matrix(X64, True)
            for batch in (1024, 4096, 16384):
                s = Stream(d, window=0)
                for i in range(0, len(X), batch):
                    s.ingest(X[i:i + batch])
                _, _, M = s.matrix()
                bias = float(np.mean(np.diag(M) / np.diag(A) - 1))
                what = f"offset {offset:g}, batches of {batch}"
                print(f"# {what}: diagonal bias {bias:.2e}")
                assert abs(bias) < 5e-7, f"diagonal bias {bias:.2e} ({what})"
                want = ref.metrics(X64)
                for m in SCALE_FREE + ["trace"]:
                    close(s.q(m), want[m], 1e-6, f"{m} {what}")


def main():
    t = Tap()
    t.case("f32_huge_spread_is_exact", f32_huge_spread_is_exact)
    t.case("f32_tiny_values_are_exact", f32_tiny_values_are_exact)
    t.case("f16_and_bf16_at_their_edges", f16_and_bf16_at_their_edges)
    t.case("f64_out_of_range_is_refused_and_changes_nothing",
           f64_out_of_range_is_refused_and_changes_nothing)
    t.case("renyi_and_vendi_of_large_orders", renyi_and_vendi_of_large_orders)
    t.case("collapsed_layers_have_empty_directions", collapsed_layers_have_empty_directions)
    t.case("eager_window_after_a_drop_in_variance", eager_window_after_a_drop_in_variance)
    t.case("f32_far_from_the_origin", f32_far_from_the_origin)
    t.done()


if __name__ == "__main__":
    main()
