#!/usr/bin/python3
"""Kernel metrics of a window's rows (DSE, RKE, kernel Vendi) against the published anchors and
an independent numpy float64 statement (tests/numeric/kernel_ref.py), at 1e-9:

- anchors: DSE on [[0],[1],[2],[10]] at (sigma, t) = (10, 1), (1, 1), (1, 2), (0.1, 1) (Liao et
  al.'s dse-dsmi); RKE 3.0 and the Laplacian Vendi score 2.9999999958777006 on
  [0, 0, 10, 10, 20, 20] (sigma 1);
- random rows in f32 and f64 (the window keeps rows in f32: numpy reads the same f32 values),
  every metric and kernel, q in {0.5, 1, 2, inf}, t in {1, 2}, with and without sampling: above
  max_rows the answer says `sample_rows`, and numpy on the rows the documented draw picks (the
  stream's seed through splitmix64 + xoshiro256**, a partial Fisher-Yates, restated here)
  agrees;
- properties: 0 <= DSE <= log2 n (up to the eps terms), n identical rows give DSE ~0 and n
  far-apart rows log2 n, RKE equals vendi_kernel at q = 2 on the same Gaussian kernel, sampling
  is deterministic per seed and differs between seeds;
- refusals: a stream without a window (NO_WINDOW, as every window metric), fewer than 2 rows
  (DEGENERATE), rke and gaussian/laplacian vendi_kernel without sigma, an unknown kernel
  (BAD_PARAM listing the kernels);
- labels (ew_stream_ingest_labeled): the grouped metrics group_erank (its labels ascending),
  group_separation and centroid_cosine on labelled clusters (labels 3, 7, 11 ...) against numpy in
  f32 and f64, on a window that turned over; the first batch decides whether a stream is
  labelled (the other kind of batch BAD_PARAM, nothing changed; labels without a window too); a
  labelled window saves and loads to the same bytes, and an unlabelled one saves exactly the
  labels' bytes fewer; merges of labelled streams equal numpy on the union, an empty stream takes
  the state's labels, labelled into unlabelled is refused;
- dsmi: the worked anchors in both modes (0.9999999918427988 full, 0.8678120972431843 matched by
  every subset), and on labelled clusters `full` against numpy and `matched` against numpy on the
  restated seeded draw of baseline subsets; deterministic per seed, different across seeds; a
  window without labels is BAD_PARAM."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_ref as ref  # noqa: E402
from kernel_ref import sample  # noqa: E402
from ewlib import EwError, Stream  # noqa: E402
from taplib import Tap, close  # noqa: E402



def rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


def check(got, want, tol, what):
    assert rel(got, want) <= tol, f"{what}: got {got!r}, want {want!r} (rel {rel(got, want):.2e})"


def q(s, metric, **params):
    v, extra = s.query(metric, **params)
    return v, extra


# ---- the cases ----------------------------------------------------------------------------------

def stream_of(X, window=None, seed=0x5eed, dtype=None):
    s = Stream(X.shape[1], window=window or max(2, len(X)), seed=seed)
    s.ingest(X.astype(np.float32) if dtype == "f32" else X, dtype=dtype)
    return s


def anchors():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    s = stream_of(X)
    for (sigma, t), want in {(10, 1): 0.5837611880287343, (1, 1): 1.701821114374677,
                             (1, 2): 1.4262562062777167, (0.1, 1): 2.0000000000000004}.items():
        got, _ = q(s, "dse", sigma=sigma, t=t)
        check(got, want, 1e-9, f"dse sigma={sigma} t={t}")
        check(got, ref.dse(X, sigma, t), 1e-12, f"dse vs kernel_ref sigma={sigma} t={t}")
    Y = np.array([[0.0], [0.0], [10.0], [10.0], [20.0], [20.0]])
    s = stream_of(Y)
    check(q(s, "rke", sigma=1)[0], 3.0, 1e-9, "rke")
    check(q(s, "vendi_kernel", kernel="laplacian", sigma=1)[0], 2.9999999958777006, 1e-9,
          "laplacian vendi")


def random_rows(dtype):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300, 24)) * np.linspace(0.5, 3, 24) + 4.0
    X32 = X.astype(np.float32).astype(np.float64)  # what the window keeps
    s = stream_of(X, dtype=dtype)
    for sigma in (3.0, 10.0, 25.0):
        for t in (1, 2):
            got, extra = q(s, "dse", sigma=sigma, t=t)
            check(got, ref.dse(X32, sigma, t), 1e-9, f"{dtype} dse sigma={sigma} t={t}")
        check(q(s, "rke", sigma=sigma)[0], ref.rke(X32, sigma), 1e-9, f"{dtype} rke {sigma}")
    for kern, sigma in (("gaussian", 6.0), ("laplacian", 40.0), ("cosine", None)):
        # q < 1 weighs every eigenvalue alike: on the cosine kernel of 300 rows in 24 dimensions
        # 276 of them are rounding noise (~1e-16), whose square roots move the score by ~1e-8
        # in numpy and here alike — an ill-posed case, left out for that kernel
        for qq in ((1, 2, "inf") if kern == "cosine" else (0.5, 1, 2, "inf")):
            p = {"kernel": kern, "q": qq}
            if sigma:
                p["sigma"] = sigma
            want = ref.vendi_kernel(X32, kern, sigma, float(qq))
            check(q(s, "vendi_kernel", **p)[0], want, 1e-9, f"{dtype} vendi {kern} q={qq}")


def sampled():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((400, 10)).astype(np.float32)
    for seed in (1, 0x5eed):
        s = stream_of(X, seed=seed)
        got, extra = s.query("dse", sigma=4.0, max_rows=150)
        assert extra.get("sample_rows") == 150, extra
        pick = sample(400, 150, seed)
        check(got, ref.dse(X[pick].astype(np.float64), 4.0, 1), 1e-9, f"sampled dse seed {seed}")
        got, extra = s.query("vendi_kernel", kernel="cosine", q=2, max_rows=150)
        check(got, ref.vendi_kernel(X[pick].astype(np.float64), "cosine", None, 2.0), 1e-9,
              "sampled cosine vendi")
        again, ex2 = s.query("dse", sigma=4.0, max_rows=150)  # from the spectrum cache
        assert ex2["sample_rows"] == 150, ex2
        assert again == q(s, "dse", sigma=4.0, max_rows=150)[0], "sampling is deterministic"
        full, extra = s.query("dse", sigma=4.0, max_rows=400)
        assert not extra.get("sample_rows"), extra
        check(full, ref.dse(X.astype(np.float64), 4.0, 1), 1e-9, "max_rows = N: every row")
    a = stream_of(X, seed=1).q("dse", sigma=4.0, max_rows=150)
    b = stream_of(X, seed=2).q("dse", sigma=4.0, max_rows=150)
    assert a != b, "two seeds drew the same sample"


def spectrum_cache():
    """A kernel metric asked again with another t or q reads the cached spectrum (the same
    answer as a fresh solve: numpy's); a new row, a reset or another sigma solves anew."""
    rng = np.random.default_rng(17)
    X = rng.standard_normal((120, 7)).astype(np.float32)
    s = stream_of(X[:100], window=120)
    X64 = X.astype(np.float64)
    for t in (1, 2, 3):  # the first solves, the others read the cache
        check(s.q("dse", sigma=3.0, t=t), ref.dse(X64[:100], 3.0, t), 1e-9, f"dse t={t}")
    for qq in (1, 2, "inf"):
        check(s.q("vendi_kernel", kernel="laplacian", sigma=9.0, q=qq),
              ref.vendi_kernel(X64[:100], "laplacian", 9.0, float(qq)), 1e-9, f"vendi q={qq}")
    check(s.q("dse", sigma=3.0), ref.dse(X64[:100], 3.0, 1), 1e-9, "dse again after vendi")
    s.ingest(X[100:])  # the window grows: a new solve
    check(s.q("dse", sigma=3.0, t=2), ref.dse(X64, 3.0, 2), 1e-9, "dse after a new batch")
    check(s.q("dse", sigma=5.0, t=2), ref.dse(X64, 5.0, 2), 1e-9, "dse at another sigma")
    s.reset()
    s.ingest(X[:50])
    check(s.q("dse", sigma=5.0, t=2), ref.dse(X64[:50], 5.0, 2), 1e-9, "dse after a reset")


def properties():
    rng = np.random.default_rng(9)
    for n in (5, 40, 100):
        X = rng.standard_normal((n, 6)).astype(np.float32)
        h = stream_of(X).q("dse", sigma=2.0)
        assert -1e-12 <= h <= np.log2(n) + 1e-9, (n, h)
        same = np.ones((n, 6), np.float32) * 3.5
        assert abs(stream_of(same).q("dse", sigma=2.0)) < 1e-10 * n
        far = (np.arange(n, dtype=np.float32)[:, None] * 1000.0) * np.ones((1, 6), np.float32)
        check(stream_of(far).q("dse", sigma=1.0), np.log2(n), 1e-9, f"far-apart n={n}")
        s = stream_of(X)
        check(s.q("rke", sigma=1.5), s.q("vendi_kernel", kernel="gaussian", sigma=1.5, q=2), 1e-9,
              "rke = vendi_kernel at q = 2 on the same kernel (both n^2 / |K|_F^2)")


def refusals():
    X = np.random.default_rng(10).standard_normal((20, 3))
    s = Stream(3, window=0)  # no window
    s.ingest(X)
    for m, p in (("dse", {}), ("rke", {"sigma": 1}), ("vendi_kernel", {"kernel": "cosine"})):
        try:
            s.q(m, **p)
        except EwError as e:
            assert e.name == "NO_WINDOW" and "window > 0" in e.message, (m, e.name, e.message)
        else:
            raise AssertionError(f"{m} answered without a window")
    w = stream_of(X[:1], window=8)
    try:
        w.q("dse")
    except EwError as e:
        assert e.name == "DEGENERATE" and "2 rows" in e.message, e.message
    else:
        raise AssertionError("dse of one row")
    w = stream_of(X)
    for m, p, word in (("rke", {}, "sigma"), ("vendi_kernel", {"kernel": "laplacian"}, "sigma"),
                       ("vendi_kernel", {"kernel": "rbf", "sigma": 1}, "gaussian"),
                       ("dse", {"sigma": 0}, "positive"), ("rke", {"sigma": 0}, "positive"),
                       ("vendi_kernel", {"kernel": "laplacian", "sigma": 0}, "positive"),
                       ("dse", {"max_rows": 16385}, "max_rows")):  # a 2 GiB kernel matrix at most
        try:
            w.q(m, **p)
        except EwError as e:
            assert e.name == "BAD_PARAM" and word in e.message, (m, p, e.message)
        else:
            raise AssertionError(f"{m} {p} answered")


def clusters(rng, k=5, per=(30, 50), d=12, spread=0.5, dtype=np.float32):
    """k labelled clusters (labels 3, 7, 11, ... not 0..k-1: the order is by label value)."""
    X, y = [], []
    for i in range(k):
        m = int(rng.integers(per[0], per[1] + 1))
        c = rng.standard_normal(d) * 4 + (1.0 if i % 2 else -2.0)
        X.append(c + spread * (i + 1) * rng.standard_normal((m, d)) * np.linspace(0.2, 1, d))
        y += [3 + 4 * i] * m
    order = rng.permutation(len(y))
    return np.vstack(X)[order].astype(dtype), np.array(y, np.uint32)[order]


def grouped(dtype):
    rng = np.random.default_rng(12)
    X, y = clusters(rng)
    X32 = X.astype(np.float32).astype(np.float64)
    s = Stream(X.shape[1], window=len(X))
    s.ingest(X if dtype == "f32" else X.astype(np.float64), dtype=dtype, labels=y)
    got, extra = s.query("group_erank")
    want = ref.group_erank(X32, y)
    assert extra["groups"] == sorted(set(y.tolist())), extra["groups"]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        check(a, b, 1e-9, f"{dtype} group_erank")
    check(s.q("group_separation"), ref.group_separation(X32, y), 1e-9, f"{dtype} separation")
    check(s.q("centroid_cosine"), ref.centroid_cosine(X32, y), 1e-9, f"{dtype} centroid_cosine")
    # a window that turned over keeps the labels of the rows it holds
    w = Stream(X.shape[1], window=100)
    for i in range(0, len(X), 37):
        w.ingest(X[i:i + 37], dtype="f32", labels=y[i:i + 37])
    check(w.q("group_separation"), ref.group_separation(X32[-100:], y[-100:]), 1e-9,
          "separation of the last 100 rows")


def labels_rules():
    rng = np.random.default_rng(13)
    X, y = clusters(rng, k=3)
    s = Stream(X.shape[1], window=64)
    s.ingest(X[:20], dtype="f32")  # the first batch decides: unlabelled
    try:
        s.ingest(X[20:40], dtype="f32", labels=y[20:40])
    except EwError as e:
        assert e.name == "BAD_PARAM", e.name
    else:
        raise AssertionError("labels taken by an unlabelled stream")
    assert s.count() == 20
    try:
        s.q("group_separation")
    except EwError as e:
        assert e.name == "BAD_PARAM" and "label" in e.message, e.message
    else:
        raise AssertionError("grouped metric of an unlabelled window")
    t = Stream(X.shape[1], window=64)
    t.ingest(X[:20], dtype="f32", labels=y[:20])
    try:
        t.ingest(X[20:40], dtype="f32")
    except EwError as e:
        assert e.name == "BAD_PARAM", e.name
    else:
        raise AssertionError("an unlabelled batch taken by a labelled stream")
    assert t.count() == 20
    u = Stream(X.shape[1], window=0)
    try:
        u.ingest(X[:20], dtype="f32", labels=y[:20])
    except EwError as e:
        assert e.name == "BAD_PARAM", e.name
    else:
        raise AssertionError("labels without a window")
    one = Stream(X.shape[1], window=64)
    one.ingest(X[:20], dtype="f32", labels=np.full(20, 5, np.uint32))
    try:
        one.q("centroid_cosine")
    except EwError as e:
        assert e.name == "DEGENERATE" and "2 labels" in e.message, e.message
    else:
        raise AssertionError("centroid_cosine of one label")


def labels_saved():
    from ewlib import load_bytes, save_bytes
    rng = np.random.default_rng(14)
    X, y = clusters(rng, k=4)
    s = Stream(X.shape[1], window=90)
    s.ingest(X, dtype="f32", labels=y)
    data = save_bytes(s)
    t = load_bytes(data, Stream)
    assert save_bytes(t) == data, "a labelled window saves the same bytes after a load"
    assert t.q("group_separation") == s.q("group_separation")
    plain = Stream(X.shape[1], window=90)
    plain.ingest(X, dtype="f32")
    assert len(save_bytes(plain)) == len(data) - (8 + (90 * 4 + 7) // 8 * 8), \
        "an unlabelled window saves exactly the labels' bytes fewer"


def labels_merge():
    rng = np.random.default_rng(15)
    X, y = clusters(rng, k=3, per=(20, 30))
    X32 = X.astype(np.float64)
    h = len(X) // 2
    a, b = Stream(X.shape[1], window=len(X)), Stream(X.shape[1], window=len(X))
    a.ingest(X[:h], dtype="f32", labels=y[:h])
    b.ingest(X[h:], dtype="f32", labels=y[h:])
    a.merge(b)
    check(a.q("group_separation"), ref.group_separation(X32, y), 1e-9, "merged: the union")
    empty = Stream(X.shape[1], window=len(X))
    empty.merge(b)
    check(empty.q("centroid_cosine"), ref.centroid_cosine(X32[h:], y[h:]), 1e-9,
          "an empty stream takes the state's labels")
    plain = Stream(X.shape[1], window=len(X))
    plain.ingest(X[:h], dtype="f32")
    try:
        plain.merge(b)
    except EwError as e:
        assert e.name == "BAD_PARAM", e.name
    else:
        raise AssertionError("labelled rows merged into unlabelled ones")
    # an empty state joins nothing: the window, its rows and labels stay (it once emptied it)
    before = a.q("group_separation")
    a.merge(Stream(X.shape[1], window=len(X)))
    assert a.window_count() == len(X) and a.q("group_separation") == before


def dsmi_cases():
    E = np.array([[0], [.1], [.2], [5], [5.1], [5.2]])
    yE = np.array([0, 0, 0, 1, 1, 1], np.uint32)
    s = Stream(1, window=6)
    s.ingest(E, dtype="f64", labels=yE)
    # the window keeps its rows in f32, and .1, .2, 5.1, 5.2 are not f32 numbers: numpy on the
    # rows as kept at 1e-9; the published anchors (f64 rows) at the 1e-7 that rounding leaves
    E32 = E.astype(np.float32).astype(np.float64)
    full, matched = s.q("dsmi", sigma=1, mode="full"), s.q("dsmi", sigma=1)
    check(full, ref.dsmi(E32, yE, 1, mode="full"), 1e-9, "DSMI full")
    check(matched, ref.dsmi(E32, yE, 1, mode="matched"), 1e-9, "DSMI matched (every subset)")
    check(full, 0.9999999918427988, 1e-7, "DSMI full anchor")
    check(matched, 0.8678120972431843, 1e-7, "DSMI matched anchor")
    rng = np.random.default_rng(16)
    X, y = clusters(rng, k=3, per=(12, 18), d=6)
    X32 = X.astype(np.float64)
    seed = 0x5eed
    t = Stream(X.shape[1], window=len(X), seed=seed)
    t.ingest(X, dtype="f32", labels=y)
    check(t.q("dsmi", sigma=3, mode="full"), ref.dsmi(X32, y, 3, mode="full"), 1e-9, "dsmi full")
    subs = {int(v): ref.dsmi_subsets_ew(len(X), int((y == v).sum()), 4, seed)
            for v in np.unique(y)}
    check(t.q("dsmi", sigma=3, reps=4), ref.dsmi_matched_with_subsets(X32, y, subs, 3), 1e-9,
          "dsmi matched, drawn subsets")
    assert t.q("dsmi", sigma=3, reps=4) == t.q("dsmi", sigma=3, reps=4), "deterministic per seed"
    u = Stream(X.shape[1], window=len(X), seed=seed + 1)
    u.ingest(X, dtype="f32", labels=y)
    assert u.q("dsmi", sigma=3, reps=4) != t.q("dsmi", sigma=3, reps=4), "seeds differ"
    plain = stream_of(X)
    try:
        plain.q("dsmi")
    except EwError as e:
        assert e.name == "BAD_PARAM" and "label" in e.message, e.message
    else:
        raise AssertionError("dsmi without labels")


if __name__ == "__main__":
    t = Tap()
    t.case("anchors", anchors)
    t.case("random_rows_f32", random_rows, "f32")
    t.case("random_rows_f64", random_rows, "f64")
    t.case("sampled_rows", sampled)
    t.case("spectrum_cache", spectrum_cache)
    t.case("properties", properties)
    t.case("refusals", refusals)
    t.case("grouped_f32", grouped, "f32")
    t.case("grouped_f64", grouped, "f64")
    t.case("labels_rules", labels_rules)
    t.case("labels_saved", labels_saved)
    t.case("labels_merge", labels_merge)
    t.case("dsmi", dsmi_cases)
    t.done()
