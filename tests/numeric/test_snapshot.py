"""The recent view's moments kept per completed step (ew_stream_window_tail), and snapshots
(ew_stream_snapshot / ew_snapshot_query): what the daemon's scheduled evaluation reads.

- Kept per step vs built from the rows: a stream whose window moments follow its last S steps
  (one un-merge of the leaving step, one merge of the new one) answers within the moments'
  stated rounding bound of a stream that builds them from the ring at each query (each
  eigenvalue within errA + errB, the `spectrum` result's error), and within 1e-9 of numpy
  float64 on the same f32 rows; over 400 steps with rows 1000x larger passing through (the
  noise rule rebuilds them) the same holds at the end.
- A snapshot answers every metric exactly as the stream did when it was taken (bit for bit),
  whatever the stream ingests afterwards; it holds the moments (8d^2 bytes and a little) and the
  rows only when a metric or the route reads rows. Of a tail whose moments are not kept, it
  holds the rows and builds the moments at its first query (1e-12 of the stream's answer,
  1e-9 of numpy); the stream adopts them (ew_stream_window_adopt) and moves its tail from them,
  and refuses an older snapshot's over newer moments.
- Refusals: window queries asking different window_rows; a query the snapshot was not taken for;
  live_topk — each with the code and the sentence.
- The other routes: source all of a stream whose window holds every row (fewer than d: the dual
  Gram), a window of rows only (W < d), a sketched stream (d > exact_max_dim: brackets).
"""
import ctypes as C
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from ewlib import LIB, SOURCES, METHODS, Param, Query, Result, EwError, Stream  # noqa: E402
from taplib import Tap  # noqa: E402

LIB.ew_stream_window_tail.argtypes = [C.c_void_p, C.c_uint64]
LIB.ew_stream_snapshot.argtypes = [C.c_void_p, C.POINTER(Query), C.c_size_t,
                                   C.POINTER(C.c_void_p)]
LIB.ew_snapshot_query.argtypes = [C.c_void_p, C.POINTER(Query), C.POINTER(Result)]
LIB.ew_snapshot_bytes.argtypes = [C.c_void_p]
LIB.ew_snapshot_bytes.restype = C.c_size_t
LIB.ew_snapshot_free.argtypes = [C.c_void_p]
LIB.ew_stream_window_kept.argtypes = [C.c_void_p, C.c_uint64]
LIB.ew_stream_window_adopt.argtypes = [C.c_void_p, C.c_void_p]

EBADPARAM = "BAD_PARAM"
U = 2.0 ** -53


def make_query(metric, source=None, window_rows=0, **params):
    items = list(params.items())
    arr = (Param * max(1, len(items)))()
    for i, (k, v) in enumerate(items):
        arr[i].key = k.encode()
        arr[i].value = float(v)
    q = Query(metric.encode(), arr, len(items), -1, SOURCES[source], 0, window_rows,
              METHODS["auto"])
    q._keep = arr  # the params array lives as long as the query
    return q


def answer(fn, handle, q):
    """(value, error, code name, message) of one query on a stream or a snapshot."""
    r = Result()
    rc = fn(handle, C.byref(q), C.byref(r))
    try:
        if rc != 0:
            return None, None, LIB.ew_err_name(rc).decode(), r.message.decode()
        val = r.scalar if r.kind == 0 else np.array([r.list[i] for i in range(r.len)])
        return val, (r.error if r.has_error else None), None, ""
    finally:
        LIB.ew_result_clear(C.byref(r))


def on_stream(s, q):
    return answer(LIB.ew_stream_query, s.h, q)


def on_snap(sn, q):
    return answer(LIB.ew_snapshot_query, sn, q)


def snapshot(s, qs):
    arr = (Query * len(qs))(*qs)
    h = C.c_void_p()
    rc = LIB.ew_stream_snapshot(s.h, arr, len(qs), C.byref(h))
    return rc, h


def tail(s, rows):
    rc = LIB.ew_stream_window_tail(s.h, rows)
    assert rc == 0, rc


def steps_data(seed, nsteps, rows, d, big_at=()):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * np.linspace(2.0, 0.05, d)
    out = []
    for k in range(nsteps):
        X = (rng.standard_normal((rows, d)) @ mix + 40.0).astype(np.float32)
        if k in big_at:
            X *= 1000
        out.append(X)
    return out


def kept_vs_built(nsteps, S, big_at=(), check_every=1):
    d, rows = 48, 40
    data = steps_data(1, nsteps, rows, d, big_at)
    kept = Stream(d, window=600)   # the moments follow the last S steps
    built = Stream(d, window=600)  # the moments of the tail are built from the ring per query
    ring = []
    worst = worst_gap = 0.0
    for k, X in enumerate(data):
        if len(ring) == S:
            tail(kept, sum(len(r) for r in ring[1:]))  # the leaving step, while the ring has it
            ring.pop(0)
        for half in (X[:25], X[25:]):
            kept.ingest(half)
            built.ingest(half)
        ring.append(X)
        n = sum(len(r) for r in ring)
        tail(kept, n)
        if k % check_every and k != nsteps - 1:
            continue
        sa, _, ca, _ = on_stream(kept, make_query("spectrum", "window", n))
        sb, _, cb, _ = on_stream(built, make_query("spectrum", "window", n))
        assert ca is None and cb is None, (ca, cb)
        # the window's stated bound: kept moments carry at most 8x the rounding of a fresh pass
        # (else they are rebuilt), a fresh pass 2 (1 + sqrt(n/1024)) u tr A; each solve adds
        # its own round-off, 4 d u lambda_1 (the clamp floor)
        fresh = 2 * (1 + np.sqrt(n / 1024)) * U * sb.sum()
        bound = 9 * fresh + 2 * 4 * d * U * sb[0]
        gap = np.abs(sa - sb).max()
        assert gap <= bound, f"step {k}: kept vs built {gap:.3g} > bound {bound:.3g}"
        worst_gap = max(worst_gap, gap / bound)
        ref_m = ref.metrics(np.vstack(ring).astype(np.float64))
        for m in ("entropy", "erank", "participation_ratio", "anisotropy", "trace"):
            got = on_stream(kept, make_query(m, "window", n))[0]
            rel = abs(got - ref_m[m]) / abs(ref_m[m])
            worst = max(worst, rel)
            assert rel <= 1e-9, f"step {k} {m}: {got!r} vs numpy {ref_m[m]!r} (rel {rel:.2e})"
    print(f"# {nsteps} steps, S={S}: kept vs numpy worst rel {worst:.2e}; kept vs built at "
          f"most {worst_gap:.2e} of the bound", flush=True)


def kept_per_step_equals_built_and_numpy():
    kept_vs_built(24, 4)


def kept_through_rows_1000x_larger():
    kept_vs_built(400, 3, big_at=(50, 51, 200), check_every=37)


def snapshot_answers_as_the_stream_did():
    d = 40
    X = steps_data(2, 12, 50, d)
    s = Stream(d, window=500)
    for x in X:
        s.ingest(x)
    n = 200
    tail(s, n)
    names = ["entropy", "erank", "rankme", "spectrum", "topk", "anisotropy", "stable_rank",
             "condition_number"]
    qs = [make_query(m, "window", n) for m in names] + [make_query("entropy", "all")]
    before = [on_stream(s, q) for q in qs]
    rc, h = snapshot(s, qs)
    assert rc == 0, rc
    try:
        nb = LIB.ew_snapshot_bytes(h)
        assert nb <= 2 * (8 * d * d + 8 * d) + 65536, f"{nb} bytes: more than two moments"
        assert nb < 8 * d * n * 4 // 8 + 2 * (8 * d * d) + 65536
        for x in steps_data(3, 5, 50, d):  # the stream moves on; the snapshot does not
            s.ingest(x)
        tail(s, n)
        for q, b, m in zip(qs, before, names + ["entropy(all)"]):
            a = on_snap(h, q)
            assert a[2] is None, (m, a)
            assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])), (m, a[0], b[0])
            assert a[1] == b[1], (m, a[1], b[1])
        now = on_stream(s, qs[0])[0]
        assert now != before[0][0], "the stream did move"
    finally:
        LIB.ew_snapshot_free(h)
    # a metric of the rows brings the rows: n x d f32 more
    rc, h = snapshot(s, [make_query("l2_std", "window", n), make_query("entropy", "window", n)])
    assert rc == 0
    try:
        nb = LIB.ew_snapshot_bytes(h)
        assert nb >= n * d * 4, nb
        Xw = np.vstack(X + steps_data(3, 5, 50, d))[-n:].astype(np.float64)
        got = on_snap(h, make_query("l2_std", "window", n))[0]
        assert abs(got - ref.l2_std(Xw)) <= 1e-9 * ref.l2_std(Xw), (got, ref.l2_std(Xw))
    finally:
        LIB.ew_snapshot_free(h)


def snapshot_of_a_tail_not_kept_builds_its_moments():
    """A tail whose moments the window does not keep: the snapshot holds its rows (n x d f32),
    and its first query builds the moments, as the stream would have (same values)."""
    d, n = 40, 160
    s = Stream(d, window=500)
    for x in steps_data(9, 10, 50, d):  # 500 rows through a ring of 500: the ring wraps
        s.ingest(x)
    for x in steps_data(10, 3, 50, d):
        s.ingest(x)
    qs = [make_query(m, "window", n) for m in ("entropy", "erank", "spectrum", "anisotropy")]
    before = [on_stream(s, q) for q in qs]
    rc, h = snapshot(s, qs)
    assert rc == 0
    try:
        nb = LIB.ew_snapshot_bytes(h)
        assert n * d * 4 <= nb < n * d * 4 + 65536, nb  # the rows, not moments
        for q, b in zip(qs, before):
            a = on_snap(h, q)
            assert a[2] is None and b[2] is None, (a, b)
            assert np.allclose(np.asarray(a[0]), np.asarray(b[0]), rtol=1e-12, atol=0), (a, b)
        Xw = np.vstack(steps_data(9, 10, 50, d) + steps_data(10, 3, 50, d))[-n:]
        ref_e = ref.metrics(Xw.astype(np.float64))["entropy"]
        got = on_snap(h, qs[0])[0]
        assert abs(got - ref_e) <= 1e-9 * abs(ref_e), (got, ref_e)
        assert LIB.ew_snapshot_bytes(h) >= nb + 8 * d * d, "the built moments are counted"
        # the stream takes them back: its tail is then kept, and moves from them
        assert not LIB.ew_stream_window_kept(s.h, n)
        assert LIB.ew_stream_window_adopt(s.h, h) == 1
        assert LIB.ew_stream_window_kept(s.h, n)
        assert on_stream(s, qs[0])[0] == got, "the stream reads the adopted moments"
        Y = steps_data(11, 1, 40, d)[0]
        s.ingest(Y)
        tail(s, n)  # an un-merge of 40 rows and a merge of 40
        Xw2 = np.vstack([Xw, Y])[-n:].astype(np.float64)
        ref2 = ref.metrics(Xw2)["entropy"]
        got2 = on_stream(s, qs[0])[0]
        assert abs(got2 - ref2) <= 1e-9 * abs(ref2), (got2, ref2)
        # an older snapshot is not taken over newer moments
        assert LIB.ew_stream_window_adopt(s.h, h) == 0
    finally:
        LIB.ew_snapshot_free(h)


def snapshot_refusals():
    d = 24
    s = Stream(d, window=300)
    for x in steps_data(4, 6, 40, d):
        s.ingest(x)
    rc, h = snapshot(s, [make_query("entropy", "window", 80), make_query("erank", "window", 120)])
    assert LIB.ew_err_name(rc).decode() == EBADPARAM and not h.value, (rc, h)
    rc, h = snapshot(s, [make_query("entropy", "window", 80)])
    assert rc == 0
    try:
        v, _, code, msg = on_snap(h, make_query("entropy", "window", 120))
        assert code == EBADPARAM and "not taken for this query" in msg, (code, msg)
        v, _, code, msg = on_snap(h, make_query("live_topk", "all"))
        assert code == EBADPARAM and "live estimate" in msg, (code, msg)
        v, _, code, msg = on_snap(h, make_query("entropy", "all"))
        assert code == EBADPARAM and "not taken for this query" in msg, (code, msg)
        v, _, code, msg = on_snap(h, make_query("no_such_metric", "window", 80))
        assert code == "UNKNOWN_METRIC", (code, msg)
        assert on_snap(h, make_query("entropy", "window", 80))[2] is None
    finally:
        LIB.ew_snapshot_free(h)
    # a stream without a window: the same refusal as the stream's own
    s0 = Stream(d, window=0)
    s0.ingest(steps_data(5, 1, 30, d)[0])
    rc, h = snapshot(s0, [make_query("entropy", "window")])
    assert rc == 0
    try:
        a, b = on_snap(h, make_query("entropy", "window")), on_stream(s0, make_query("entropy", "window"))
        assert a[2] == b[2] == "NO_WINDOW" and a[3] == b[3], (a, b)
    finally:
        LIB.ew_snapshot_free(h)


def same_on_snapshot(s, qs, what):
    before = [on_stream(s, q) for q in qs]
    rc, h = snapshot(s, qs)
    assert rc == 0, (what, rc)
    try:
        for q, b in zip(qs, before):
            a = on_snap(h, q)
            assert b[2] is None, (what, q.metric, b)
            assert a[2] is None, (what, q.metric, a)
            assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1] == b[1], \
                (what, q.metric, a, b)
    finally:
        LIB.ew_snapshot_free(h)


def snapshot_other_routes():
    d = 64
    X = steps_data(6, 1, 30, d)[0]
    s = Stream(d, window=100)  # every row in the window, fewer than d: source all's dual Gram
    s.ingest(X)
    same_on_snapshot(s, [make_query(m, "all") for m in ("entropy", "erank", "spectrum", "trace")],
                     "all, dual route")
    ref_e = ref.metrics(X.astype(np.float64))["entropy"]
    got = on_stream(s, make_query("entropy", "all"))[0]
    assert abs(got - ref_e) <= 1e-9 * abs(ref_e)
    r = Stream(d, window=40)  # a window of rows only (40 < d)
    for x in steps_data(7, 3, 30, d):
        r.ingest(x)
    same_on_snapshot(r, [make_query(m, "window", 25) for m in ("entropy", "topk", "mnn")],
                     "rows-only window")
    k = Stream(80, window=0, exact_max_dim=64, sketch_rows=16)  # a sketch
    for x in steps_data(8, 6, 50, 80):
        k.ingest(x)
    same_on_snapshot(k, [make_query(m, "all") for m in ("entropy", "erank", "topk", "trace")],
                     "sketched")


def main():
    t = Tap()
    t.case("kept_per_step_equals_built_and_numpy", kept_per_step_equals_built_and_numpy)
    t.case("kept_through_rows_1000x_larger", kept_through_rows_1000x_larger)
    t.case("snapshot_answers_as_the_stream_did", snapshot_answers_as_the_stream_did)
    t.case("snapshot_of_a_tail_not_kept_builds_its_moments",
           snapshot_of_a_tail_not_kept_builds_its_moments)
    t.case("snapshot_refusals", snapshot_refusals)
    t.case("snapshot_other_routes", snapshot_other_routes)
    t.done()


if __name__ == "__main__":
    main()
