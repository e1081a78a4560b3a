"""Properties of libeigenwatch's state and metrics that hold whatever the data:
invariances, the dual Gram route, merge associativity, window drift, atomic rejection of bad
batches, and the live direction (random-order block power) on a spiked model in random and
adversarial order."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from ewlib import Stream, bf16_words  # noqa: E402
from taplib import Tap, close, raises  # noqa: E402


def rand_rows(seed, n, d, offset=3.0):
    rng = np.random.default_rng(seed)
    lam = 1.0 / np.arange(1, d + 1)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (rng.standard_normal((n, d)) * np.sqrt(lam)) @ Q.T + offset * rng.standard_normal(d)


def feed(s, X, batch=97):
    for i in range(0, len(X), batch):
        s.ingest(X[i:i + batch])


SCALE_FREE = ["entropy", "entropy_normalized", "erank", "vendi", "participation_ratio",
              "stable_rank", "anisotropy", "condition_number", "spectral_gap",
              "entropy_truncated", "rankme"]


def invariance_scale_and_rotation():
    d = 40
    X = rand_rows(1, 2000, d)
    rng = np.random.default_rng(2)
    Rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    base, scaled, rotated = Stream(d, window=0), Stream(d, window=0), Stream(d, window=0)
    feed(base, X)
    feed(scaled, 37.5 * X)
    feed(rotated, X @ Rot)
    for name in SCALE_FREE:
        center = name != "rankme"  # rankme is uncentred; rotation of offset data keeps it too
        b = base.q(name, center=center)
        close(scaled.q(name, center=center), b, 1e-10, f"{name} under scaling")
        close(rotated.q(name, center=center), b, 1e-9, f"{name} under rotation")
    close(scaled.q("trace"), 37.5 ** 2 * base.q("trace"), 1e-12, "trace scales by c^2")


def dual_gram_equals_covariance_spectrum():
    d, n = 300, 120  # n < d: the window answers from the n×n Gram
    X = rand_rows(3, n, d).astype(np.float32)
    dual, cov = Stream(d, window=4096), Stream(d, window=0)
    feed(dual, X, 50)
    feed(cov, X, 50)
    V = X.astype(np.float64)
    want = ref.eig(ref.matrix(V, True))
    for center in (True, False):
        want = ref.eig(ref.matrix(V, center))
        a, b = dual.q("spectrum", center=center), cov.q("spectrum", center=center)
        assert np.abs(a - want).max() <= 1e-12 * want[0], "dual route vs numpy d×d (f64 Gram)"
        assert np.abs(a - b).max() <= 1e-6 * want[0], "dual route vs covariance route"
        assert np.count_nonzero(a > 1e-9 * want[0]) == (n - 1 if center else n), "rank"
        close(dual.q("entropy", center=center), ref.entropy_p(want), 1e-10, "entropy")
        close(dual.q("entropy", center=center, source="window"), ref.entropy_p(want), 1e-10,
              "window source")


def merge_is_associative_and_equals_one_pass():
    d = 64
    X = rand_rows(4, 3000, d, offset=50)
    parts = [X[:700], X[700:1900], X[1900:]]

    def stream(rows_list):
        s = Stream(d, window=0)
        for rows in rows_list:
            feed(s, rows, 100)
        return s

    one = stream(parts)
    a, b, c = (stream([p]) for p in parts)
    # merge(a, merge(b, c))
    bc = stream([parts[1]])
    bc.merge(c)
    left = stream([parts[0]])
    left.merge(bc)
    # merge(merge(a, b), c)
    ab = stream([parts[0]])
    ab.merge(b)
    ab.merge(c)
    _, m1, A1 = one.matrix()
    for name, s in (("a+(b+c)", left), ("(a+b)+c", ab)):
        w, m, A = s.matrix()
        assert w == 3000 and s.count() == 3000, f"{name} count"
        err = np.abs(A - A1).max() / np.abs(A1).max()
        assert err <= 1e-12, f"{name} vs one pass: rel err {err:.2e}"
        assert np.abs(m - m1).max() <= 1e-12 * np.abs(m1).max(), f"{name} mean"
    close(left.q("entropy"), one.q("entropy"), 1e-12, "entropy after merge")
    raises("DIM_MISMATCH", left.merge, Stream(d + 1))
    raises("BAD_PARAM", left.merge, Stream(d, normalize="l2"))


def window_drift_exact_arithmetic():
    # Integer rows in [-4, 4] and batches of 16 make every f32 batch product exact, so the only
    # error left is the f64 merge/un-merge itself: after 40 turnovers it must equal a two-pass
    # f64 covariance of the window to 1e-12 (no rebuild happens before 64 turnovers).
    d, W, b = 24, 256, 16
    rng = np.random.default_rng(5)
    s = Stream(d, window=W, window_mode="eager")  # every push merges and un-merges
    X = rng.integers(-4, 5, size=(W * 40 + 48, d)).astype(np.float32)
    X += np.float32(100)  # a mean offset the window must carry exactly
    for i in range(0, len(X), b):
        s.ingest(X[i:i + b])
    Vw = X[-W:].astype(np.float64)
    n, mean, A = s.matrix("window", center=True)
    Aref = ref.matrix(Vw, True)
    assert n == W
    err = np.abs(A - Aref).max() / np.abs(Aref).max()
    assert err <= 1e-12, f"window drift after 40 turnovers: {err:.2e}"
    assert np.abs(mean - Vw.mean(0)).max() <= 1e-12 * 100


def window_random_data_after_turnovers():
    # Random float rows, uneven batches: the window equals two-pass of its rows at the batch
    # path's tolerance (1e-12, the same bound as test_vs_numpy; 5e-7 with the f32 Gram of
    # earlier versions) after 35 turnovers.
    d, W = 32, 300
    rng = np.random.default_rng(6)
    X = rand_rows(6, W * 35, d, offset=30).astype(np.float32)
    s = Stream(d, window=W, window_mode="eager")
    i = 0
    while i < len(X):
        b = int(rng.integers(1, 200))
        s.ingest(X[i:i + b])
        i += b
    Vw = X[-W:].astype(np.float64)
    _, _, A = s.matrix("window")
    Aref = ref.matrix(Vw, True)
    err = np.linalg.norm(A - Aref, 2) / np.linalg.norm(Aref, 2)
    assert err <= 1e-12, f"window vs two-pass: {err:.2e}"
    close(s.q("entropy", source="window"), ref.entropy_p(ref.eig(Aref)), 1e-6, "window entropy")


def window_modes_agree():
    # eager (merge/un-merge every push), lazy (rebuild at query) and auto (eager only while
    # window metrics are asked for) describe the same rows; auto switches between the two.
    d, W = 20, 200
    X = rand_rows(12, 3000, d, offset=10).astype(np.float32)
    streams = {m: Stream(d, window=W, window_mode=m) for m in ("eager", "lazy", "auto")}
    rng = np.random.default_rng(13)
    i = 0
    while i < len(X):
        b = int(rng.integers(1, 120))
        for s in streams.values():
            s.ingest(X[i:i + b])
        i += b
        if rng.random() < 0.3:  # sometimes poll a window metric (drives auto into eager)
            vals = [s.q("entropy", source="window") for s in streams.values()]
            assert max(vals) - min(vals) <= 1e-6 * abs(vals[0]), vals
    Aref = ref.matrix(X[-W:].astype(np.float64), True)
    for m, s in streams.items():
        _, _, A = s.matrix("window")
        err = np.linalg.norm(A - Aref, 2) / np.linalg.norm(Aref, 2)
        assert err <= 1e-12, f"{m}: {err:.2e}"


def snapshot(s):
    w, m, A = s.matrix()
    return (s.count(), s.window_count(), w, m.copy(), A.copy(), s.q("spectrum"),
            s.q("l2_std"), s.live_vectors().copy())


def same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), "array changed"
        else:
            assert x == y, f"{x} != {y}"


def bad_batches_change_nothing():
    d = 16
    s = Stream(d, window=64)
    feed(s, rand_rows(7, 500, d).astype(np.float32))
    before = snapshot(s)
    good = rand_rows(8, 10, d)
    for dtype in ("f32", "f64", "f16"):
        for bad in (np.nan, np.inf, -np.inf):
            X = good.astype({"f32": np.float32, "f64": np.float64, "f16": np.float16}[dtype])
            X[7, 3] = bad
            raises("NON_FINITE", s.ingest, X, dtype)
            same(before, snapshot(s))
    words, _ = bf16_words(good)
    for pattern in (0x7FC0, 0x7F80, 0xFF80, 0x7F81):  # NaN, +Inf, -Inf, signalling NaN
        w = words.copy()
        w[9, 15] = pattern
        raises("NON_FINITE", s.ingest, w, "bf16")
        same(before, snapshot(s))
    h = good.astype(np.float16).view(np.uint16).copy()
    h[0, 0] = 0x7C00  # f16 +Inf
    assert s.ingest_raw(h.tobytes(), "f16", 10, d) < 0
    same(before, snapshot(s))
    raises("DIM_MISMATCH", s.ingest, good[:, :d - 1].copy())
    same(before, snapshot(s))
    # an accepted batch after all that behaves exactly as if the rejects never happened
    t = Stream(d, window=64)
    feed(t, rand_rows(7, 500, d).astype(np.float32))
    s.ingest(good.astype(np.float32))
    t.ingest(good.astype(np.float32))
    same(snapshot(s), snapshot(t))


def oja(order):
    d, n = 256, 100_000
    rng = np.random.default_rng(9)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.ones(d)
    lam[0] = 10.0  # spike: R = lambda_1 / lambda_2 = 10
    X = ((rng.standard_normal((n, d)) * np.sqrt(lam)) @ Q.T).astype(np.float32)
    if order == "sorted":  # adversarial: rows heavy on the second direction first
        X = X[np.argsort(-np.abs(X @ Q[:, 1]))]
    s = Stream(d, window=0, live_k=1, seed=11)
    feed(s, X, 256)
    v = s.live_vectors(1)[0]
    err = 1 - float(v @ Q[:, 0]) ** 2
    assert err <= 5e-3, f"1 - <v, v1>^2 = {err:.2e} in {order} order"
    print(f"# live estimate, {order}: 1 - <v,v1>^2 = {err:.2e}")


def main():
    t = Tap()
    t.case("entropies_invariant_to_scale_and_rotation", invariance_scale_and_rotation)
    t.case("dual_gram_spectrum_equals_covariance_spectrum", dual_gram_equals_covariance_spectrum)
    t.case("merge_associative_and_equal_to_one_pass_1e-12", merge_is_associative_and_equals_one_pass)
    t.case("window_equals_two_pass_after_40_turnovers_1e-12", window_drift_exact_arithmetic)
    t.case("window_equals_two_pass_random_rows_35_turnovers", window_random_data_after_turnovers)
    t.case("window_modes_eager_lazy_auto_agree", window_modes_agree)
    t.case("nan_inf_or_bad_dim_batch_changes_nothing", bad_batches_change_nothing)
    t.case("live_estimate_spiked_model_random_order", oja, "random")
    t.case("live_estimate_spiked_model_sorted_order", oja, "sorted")
    t.done()


if __name__ == "__main__":
    main()
