"""Tokens streams through the library (DESIGN §12): every token metric against numpy float64 on
the union of every rank's counted tokens.

- Worked checks: rank 0 sends [0.1, 0.2, 2.0], rank 1 [2.5, 0.1] -> token_mean 0.98 (not the
  mean of rank means, 1.0333...), quantile 0.95 -> 2.4, frac_above 1.0 -> 0.4; verl's modes on
  sequences [1, 1, 1, 1] and [3]: token-mean 1.4, seq-mean-token-mean 2.0, seq-mean-token-sum 3.5;
  Cov(A, log pi) 0.4234375 on the eight-token example, whose band (1, 5) holds tokens 4 and 6.
- Against numpy (1e-9 relative, 1e-12 absolute near zero): steps of 4 ranks' batches in shuffled
  order with random masks (NaNs in masked-out tokens) and sequence lengths, in f32, f16, bf16
  and f64, every metric on source step (the newest step), window (the last 2 steps) and all
  (sums, co-moments, per-sequence sums; quantiles of all from the sketch: exact before its first
  compaction, within the rank error it states after), 20 quantile levels including 0 and 1.
- The saved state round-trips bit for bit and answers the same; the merge of two streams that
  each took half the ranks answers as one stream that took all of them (sums exact; the merged
  sketch within the error it states).
- Refusals, each with its code and sentence, the stream unchanged: a NaN in a counted token,
  lengths that do not sum to n, a matrix metric, a source the metric does not take, a column the
  stream does not have.
- Settling (ew_stream_settle) changes no answer: steps of ~9,000 tokens (the sketches compact),
  window 3; a stream settled after each step, one never, one after every batch answer every step
  and window metric in the same bits; the saved form of unsettled steps (folded < n) loads and
  saves to the same bytes and goes on alike; merges of settled and unsettled streams (interleaved
  steps, one shared) equal numpy on the union; `all` quantiles within their stated rank error of
  numpy (true rank from np.searchsorted).
- An f64 value of magnitude 2^128 or more (beyond the f32 range) at a counted token: OUT_OF_RANGE
  naming the column and token, nothing ingested; at a masked-out token taken; just under 2^128
  taken; values just under the bound keep every sum finite and exact (512 × -c then 10,000 × +c:
  token_std, cov and the saved state against numpy — a bound of 2^500 once gave a std of 0).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewlib import EwError, TokenStream, load_bytes, save_bytes  # noqa: E402
from taplib import Tap, close  # noqa: E402
from bf16 import bf16_words  # noqa: E402

COLS = ["entropy", "logp", "advantage"]
LEVELS = [0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.75, 0.8,
          0.9, 0.95, 0.99, 1.0]


def q(s, metric, source=None, **params):
    return s.query(metric, source=source, **params)[0]


def worked_checks():
    s = TokenStream(["entropy"])
    s.ingest_tokens(0, {"entropy": np.array([0.1, 0.2, 2.0])})
    s.ingest_tokens(0, {"entropy": np.array([2.5, 0.1])})
    close(q(s, "token_mean"), 0.98, 1e-15, "token_mean")
    assert abs(q(s, "token_mean") - (np.mean([0.1, 0.2, 2.0]) + np.mean([2.5, 0.1])) / 2) > 0.05
    close(q(s, "quantile", level=0.95), 2.4, 1e-15, "p95")
    close(q(s, "frac_above", threshold=1.0), 0.4, 0, "frac_above")
    v = TokenStream(["entropy"])
    v.ingest_tokens(0, {"entropy": np.array([1.0, 1, 1, 1, 3])}, lengths=[4, 1])
    close(q(v, "token_mean"), 1.4, 1e-15, "verl token-mean")
    close(q(v, "seq_mean"), 2.0, 1e-15, "verl seq-mean-token-mean")
    close(q(v, "seq_sum_mean"), 3.5, 1e-15, "verl seq-mean-token-sum")
    a = np.array([1, 1, 1, -1, -1, -1, 2, 0.0])
    lp = np.array([-.1, -2, -.5, -.2, -3, -1, -.05, -.7])
    c = TokenStream(["logp", "advantage"])
    c.ingest_tokens(0, {"logp": lp[:3], "advantage": a[:3]})  # merged 3 + 5, as two ranks
    c.ingest_tokens(0, {"logp": lp[3:], "advantage": a[3:]})
    close(q(c, "cov"), 0.4234375, 1e-14, "Cov(log pi, A)")
    close(q(c, "cov", source="all"), 0.4234375, 1e-14, "Cov of all")
    close(q(c, "cov_band_frac"), 2 / 8, 0, "band (1, 5)")
    close(q(c, "cov_top", ratio=0.25), 1.5640625, 1e-14, "2nd largest cov_i")


def make_steps(rng, dtype, nsteps=3, ranks=4):
    """Per step, per rank, a batch: columns (in the wire dtype), mask, lengths, and the counted
    tokens in f64 as the library reads them."""
    steps = []
    for _ in range(nsteps):
        batches = []
        for r in range(ranks):
            nseq = int(rng.integers(1, 6))
            lengths = rng.integers(0, 40, nseq).astype(np.uint32)
            lengths[0] += 1
            n = int(lengths.sum())
            raw = {"entropy": rng.gamma(2.0, 0.6, n) + r * 0.3,
                   "logp": -rng.gamma(1.5, 0.8, n),
                   "advantage": rng.standard_normal(n) * (1 + r)}
            mask = (rng.random(n) < 0.85).astype(np.uint8)
            cols, f64 = {}, {}
            for k, x in raw.items():
                if dtype == "bf16":
                    words, vals = bf16_words(x)
                    cols[k], f64[k] = words, vals.astype(np.float64)
                else:
                    t = {"f32": np.float32, "f16": np.float16, "f64": np.float64}[dtype]
                    cols[k], f64[k] = x.astype(t), x.astype(t).astype(np.float64)
                bad = np.where(mask == 0)[0]
                if len(bad) and dtype != "bf16":  # a NaN where the mask leaves the token out
                    cols[k] = cols[k].copy()
                    cols[k][bad[0]] = np.nan
            batches.append({"cols": cols, "f64": f64, "mask": mask, "lengths": lengths})
        steps.append(batches)
    return steps


def union(batches):
    """The counted tokens of batches, per column, and each sequence's counted tokens."""
    x = {k: [] for k in COLS}
    seqs = []
    for b in batches:
        m = b["mask"].astype(bool)
        for k in COLS:
            x[k].append(b["f64"][k][m])
        at = 0
        for ln in b["lengths"]:
            seqs.append([{k: b["f64"][k][at:at + ln][m[at:at + ln]] for k in COLS}])
            at += ln
    return {k: np.concatenate(v) for k, v in x.items()}, seqs


def expect_all_metrics(s, source, x, seqs, what):
    e, lp, adv = x["entropy"], x["logp"], x["advantage"]
    tol = dict(abs_floor=1e-12)
    close(q(s, "token_mean", source), e.mean(), 1e-9, f"{what} token_mean", **tol)
    close(q(s, "token_std", source), e.std(), 1e-9, f"{what} token_std", **tol)
    close(q(s, "token_min", source, column="logp"), lp.min(), 0, f"{what} token_min")
    close(q(s, "token_max", source, column="advantage"), adv.max(), 0, f"{what} token_max")
    close(q(s, "token_count", source), len(e), 0, f"{what} token_count")
    per = [sq[0]["entropy"] for sq in seqs if len(sq[0]["entropy"])]
    close(q(s, "seq_mean", source), np.mean([p.mean() for p in per]), 1e-9, f"{what} seq_mean")
    close(q(s, "seq_sum_mean", source), np.mean([p.sum() for p in per]), 1e-9,
          f"{what} seq_sum_mean")
    cov = np.mean((lp - lp.mean()) * (adv - adv.mean()))
    close(q(s, "cov", source), cov, 1e-9, f"{what} cov", **tol)
    close(q(s, "corr", source), np.corrcoef(lp, adv)[0, 1], 1e-9, f"{what} corr", **tol)
    close(q(s, "cov", source, x="advantage", y="entropy"),
          np.mean((adv - adv.mean()) * (e - e.mean())), 1e-9, f"{what} cov(adv, entropy)", **tol)
    if source == "all":
        return
    for lv in LEVELS:
        close(q(s, "quantile", source, level=lv), np.quantile(e, lv), 1e-12,
              f"{what} quantile {lv}", abs_floor=1e-15)
    close(q(s, "frac_above", source, threshold=1.2), np.mean(e > 1.2), 0, f"{what} frac_above")
    h = q(s, "histogram", source, bins=16, lo=0.5, hi=3.0)
    want = np.histogram(np.clip(e, 0.5, np.nextafter(3.0, 0)), bins=16, range=(0.5, 3.0))[0]
    assert np.array_equal(h, want), f"{what} histogram {h} != {want}"
    ci = (lp - lp.mean()) * (adv - adv.mean())
    close(q(s, "cov_band_frac", source, lb=0.2, ub=2.0), np.mean((ci > 0.2) & (ci < 2.0)), 0,
          f"{what} cov_band_frac")
    k = max(1, int(0.05 * len(ci)))
    close(q(s, "cov_top", source, ratio=0.05), np.sort(ci)[::-1][k - 1], 1e-12,
          f"{what} cov_top", abs_floor=1e-15)
    w, hi, total, above = 4, 1.3, 0, 0
    for sq in seqs:
        t = sq[0]["entropy"]
        for i in range(len(t) - w + 1):
            total += 1
            above += t[i:i + w].mean() > hi
    close(q(s, "window_frac_above", source, w=w, threshold=hi), above / total, 1e-15,
          f"{what} window_frac_above")


def against_numpy(dtype):
    rng = np.random.default_rng({"f32": 1, "f16": 2, "bf16": 3, "f64": 4}[dtype])
    steps = make_steps(rng, dtype)
    s = TokenStream(COLS)
    everything = []
    for step, batches in enumerate(steps):
        for r in rng.permutation(len(batches)):  # ranks arrive in any order
            b = batches[r]
            s.ingest_tokens(step, b["cols"], b["mask"], b["lengths"], keep=2,
                            dtypes={k: dtype for k in COLS})
            everything.append(b)
    # the library keeps batches in arrival order; numpy's reductions do not care about order
    # except the per-sequence and window ones, which are per sequence
    order = lambda bs: bs  # noqa: E731
    last, last2 = steps[-1], steps[-2] + steps[-1]
    x, seqs = union(order(last))
    expect_all_metrics(s, "step", x, seqs, f"{dtype} step")
    expect_all_metrics(s, None, x, seqs, f"{dtype} default source")
    x, seqs = union(last2)
    expect_all_metrics(s, "window", x, seqs, f"{dtype} window")
    x, seqs = union(everything)
    expect_all_metrics(s, "all", x, seqs, f"{dtype} all")
    for lv in LEVELS:  # fewer tokens than a sketch level holds: exact, error 0
        v, extra = s.query("quantile", source="all", level=lv)
        close(v, np.quantile(x["entropy"], lv), 1e-12, f"{dtype} all quantile {lv}")
        assert extra["error"] == 0, extra


def sketch_states_its_error():
    rng = np.random.default_rng(7)
    s = TokenStream(["entropy"])
    xs = []
    for step in range(6):
        for r in range(4):
            x = rng.gamma(2.0, 0.7, 25_000)
            xs.append(x)
            s.ingest_tokens(step, {"entropy": x})
    allx = np.sort(np.concatenate(xs))
    n = len(allx)
    for lv in LEVELS:
        v, extra = s.query("quantile", source="all", level=lv)
        err = extra["error"]
        assert 0 < err < 0.01, (lv, err)
        lo = np.searchsorted(allx, v, "left") / (n - 1)
        hi = np.searchsorted(allx, v, "right") / (n - 1)
        assert lo - err <= lv <= hi + err, (lv, v, lo, hi, err)


def save_load_and_merge():
    rng = np.random.default_rng(11)
    steps = make_steps(rng, "f32", nsteps=3, ranks=4)
    one, a, b = TokenStream(COLS), TokenStream(COLS), TokenStream(COLS)
    for step, batches in enumerate(steps):
        for r, bt in enumerate(batches):
            args = (step, bt["cols"], bt["mask"], bt["lengths"], 2, {k: "f32" for k in COLS})
            one.ingest_tokens(*args)
            (a if r < 2 else b).ingest_tokens(*args)
    data = save_bytes(one)
    back = load_bytes(data, TokenStream)
    assert save_bytes(back) == data, "saving the loaded stream gives the same bytes"
    assert back.columns == COLS, back.columns
    for src in ("step", "window", "all"):
        for m, p in (("token_mean", {}), ("token_std", {}), ("cov", {}), ("seq_mean", {}),
                     ("quantile", {"level": 0.9})):
            assert q(back, m, src, **p) == q(one, m, src, **p), (m, src)
    a.merge(b)
    for m in ("token_mean", "token_std", "cov", "seq_mean", "token_count"):
        close(q(a, m, "all"), q(one, m, "all"), 1e-12, f"merged {m}")
    for m in ("token_mean", "token_count", "cov"):  # the newest step: both halves of its ranks
        close(q(a, m, "step"), q(one, m, "step"), 1e-12, f"merged step {m}")
    v, extra = a.query("quantile", source="all", level=0.5)
    close(v, q(one, "quantile", "all", level=0.5), 1e-12, "merged quantile (exact: small)")


def refusals():
    s = TokenStream(COLS)
    ok = {k: np.array([0.5, 1.0, 1.5]) for k in COLS}
    s.ingest_tokens(0, ok, lengths=[2, 1])
    before = save_bytes(s)

    def refused(code, needle, fn):
        try:
            fn()
        except EwError as e:
            assert e.name == code and needle in e.message, (e.name, e.message)
            assert save_bytes(s) == before, "the stream changed"
            return
        raise AssertionError(f"not refused: {needle}")
    bad = dict(ok, entropy=np.array([0.5, np.nan, 1.0]))
    refused("NON_FINITE", "column 'entropy' has a NaN or infinity at token 1",
            lambda: s.ingest_tokens(1, bad))
    refused("BAD_REQUEST", "'lengths' sum to 4 tokens; the batch has 3",
            lambda: s.ingest_tokens(1, ok, lengths=[3, 1]))
    refused("BAD_PARAM", "metric 'entropy' is one of matrix streams", lambda: s.query("entropy"))
    refused("BAD_PARAM", "is computed from source window, step, not 'all'",
            lambda: s.query("frac_above", source="all"))
    refused("BAD_PARAM", "column 'reward' is not a column of this stream (its columns: entropy, "
            "logp, advantage)", lambda: s.query("token_mean", column="reward"))
    masked = dict(ok, entropy=np.array([0.5, np.nan, 1.0]))
    s.ingest_tokens(1, masked, mask=[1, 0, 1])  # a NaN the mask leaves out: taken
    close(q(s, "token_count"), 2, 0, "masked token not counted")
    close(q(s, "token_mean"), 0.75, 1e-15, "mean of the counted tokens")


# ---- settling (ew_stream_settle), the saved form of unsettled steps, merges, the 2^128 bound ----

BIG_LEVELS = [i / 12 for i in range(13)] + [0.001, 0.01, 0.99, 0.999]


def big_steps(rng, nsteps, ranks=3, dtype="f64"):
    """Per step, per rank, a batch of about 3,000 sent tokens (a step holds more than the sketch's
    k = 4096, so the `all` sketches compact): columns in the wire dtype, a mask, lengths, and the
    counted tokens in f64."""
    steps = []
    for st in range(nsteps):
        batches = []
        for r in range(ranks):
            lengths = rng.integers(1, 120, int(rng.integers(20, 40))).astype(np.uint32)
            n = int(lengths.sum())
            raw = {"entropy": rng.gamma(2.0, 0.6, n) + 0.05 * st,
                   "logp": -rng.gamma(1.5, 0.8, n),
                   "advantage": rng.standard_normal(n) * (1 + r)}
            raw["entropy"][rng.random(n) < 0.05] = 0.0  # ties
            mask = (rng.random(n) < 0.9).astype(np.uint8)
            t = {"f32": np.float32, "f64": np.float64}[dtype]
            cols = {k: x.astype(t) for k, x in raw.items()}
            f64 = {k: x.astype(np.float64) for k, x in cols.items()}
            batches.append({"cols": cols, "f64": f64, "mask": mask, "lengths": lengths,
                            "dtypes": {k: dtype for k in COLS}})
        steps.append(batches)
    return steps


def feed(s, step, b, keep=3):
    s.ingest_tokens(step, b["cols"], b["mask"], b["lengths"], keep=keep, dtypes=b["dtypes"])


def within_stated_error(v, err, sorted_x, lv, what):
    """The answer v is one of the tokens and its true rank in sorted_x (the interval #{< v} ..
    #{<= v} - 1) lies within err * n of the asked rank lv * (n - 1)."""
    n = len(sorted_x)
    lo = int(np.searchsorted(sorted_x, v, "left"))
    hi = int(np.searchsorted(sorted_x, v, "right")) - 1
    assert lo < n and sorted_x[lo] == v, f"{what}: level {lv} answers {v!r}, not a token"
    want = lv * (n - 1)
    dist = max(lo - want, want - hi, 0.0)
    assert err is not None and dist <= err * n * (1 + 1e-12), \
        f"{what}: level {lv} answers {v!r} of ranks {lo}..{hi}, asked {want}: off {dist}, " \
        f"stated {err} * n = {err * n if err is not None else None}"


def all_quantiles_within_error(s, x, what, column="entropy"):
    """Every BIG_LEVELS quantile of source all within its stated error of numpy's sorted x;
    returns [(value, error)]."""
    sx = np.sort(x)
    out = []
    for lv in BIG_LEVELS:
        v, extra = s.query("quantile", source="all", level=lv, column=column)
        within_stated_error(v, extra["error"], sx, lv, f"{what} {column}")
        out.append((v, extra["error"]))
    assert any(e > 0 for _, e in out), f"{what}: the sketch never compacted (test too small)"
    return out


def view_metrics(s, source):
    """Every step / window metric, as the library answers it (compared bit for bit)."""
    m = {}
    for c in COLS:
        for name in ("token_mean", "token_std", "token_min", "token_max", "token_count",
                     "seq_mean", "seq_sum_mean"):
            m[(name, c)] = q(s, name, source, column=c)
        for lv in LEVELS:
            m[("quantile", c, lv)] = q(s, "quantile", source, level=lv, column=c)
        for th in (-1.0, 0.0, 1.2):
            m[("frac_above", c, th)] = q(s, "frac_above", source, threshold=th, column=c)
    m["cov"] = q(s, "cov", source)
    m["cov(adv, entropy)"] = q(s, "cov", source, x="advantage", y="entropy")
    m["corr"] = q(s, "corr", source)
    m["histogram"] = tuple(q(s, "histogram", source, bins=16, lo=0.5, hi=3.0))
    m["cov_band_frac"] = q(s, "cov_band_frac", source, lb=0.2, ub=2.0)
    m["cov_top"] = q(s, "cov_top", source, ratio=0.05)
    m["window_frac_above"] = q(s, "window_frac_above", source, w=4, threshold=1.3)
    return m


def same_bits(a, b, what):
    diff = [k for k in a if not (np.array_equal(np.float64(a[k]), np.float64(b[k]))
                                 and np.signbit(a[k]).all() == np.signbit(b[k]).all())]
    assert not diff, f"{what}: differ at {[(k, a[k], b[k]) for k in diff[:5]]}"


def counted(batches, col="entropy"):
    return np.concatenate([b["f64"][col][b["mask"].astype(bool)] for b in batches])


def save_load_unsettled():
    """A window of 3 steps, never settled: the saved form holds each step's tokens not yet in the
    sketches (folded < n), loads and saves to the same bytes; fed 4 more steps alike, original and
    loaded answer every step and window metric in the same bits and save the same bytes; both
    answer `all` quantiles the same (value and error), within the stated error of numpy on every
    token; settled by the reads, both save the same bytes again. The same with each step settled
    half way (settle between its batches)."""
    rng = np.random.default_rng(21)
    steps = big_steps(rng, 6)
    for mid_step in (False, True):
        what = "settled mid-step" if mid_step else "never settled"
        s = TokenStream(COLS)
        for step, batches in enumerate(steps):
            for i, b in enumerate(batches):
                feed(s, step, b)
                if mid_step and i == 0:
                    s.settle()
        data = save_bytes(s)
        back = load_bytes(data, TokenStream)
        assert save_bytes(back) == data, f"{what}: load + save gives other bytes"
        same_bits(view_metrics(back, "step"), view_metrics(s, "step"), f"{what} loaded step")
        same_bits(view_metrics(back, "window"), view_metrics(s, "window"), f"{what} loaded window")
        assert save_bytes(s) == data, f"{what}: a step/window read changed the saved state"
        # both go on with the same steps (the loaded one without the spare buffers and sorted
        # copies, which are not saved): the same answers and the same bytes
        more = big_steps(rng, 4)
        for k, batches in enumerate(more):
            for i, b in enumerate(batches):
                for st in (s, back):
                    feed(st, len(steps) + k, b)
                    if mid_step and i == 0:
                        st.settle()
            for src in ("step", "window"):
                same_bits(view_metrics(back, src), view_metrics(s, src),
                          f"{what} step {len(steps) + k} {src}: loaded and original")
        data = save_bytes(s)
        assert save_bytes(back) == data, f"{what}: loaded and original, fed the same, differ"
        every = [b for bs in steps + more for b in bs]
        got = {}
        for name, st in (("original", s), ("loaded", back)):
            got[name] = [all_quantiles_within_error(st, counted(every, c), f"{what} {name}", c)
                         for c in COLS]
            close(q(st, "token_count", "all"), len(counted(every)), 0, f"{what} {name} count")
        assert got["original"] == got["loaded"], f"{what}: all quantiles differ after load"
        settled = save_bytes(s)
        assert settled != data, f"{what}: reading all settled nothing (the test saved no " \
            "unsettled step)"
        assert save_bytes(back) == settled, f"{what}: settled after load, other bytes"


def settle_changes_no_answer():
    """Three streams fed the same batches (window 3): S settled after each step, U never, P after
    every batch (a step's tokens reach the sketches in parts). After every step each step and window
    metric is the same bits in the three, and the step's quantiles are numpy's; at the end the
    `all` sums are the same bits, S's and U's `all` quantiles the same (their sketches took the same
    sorted runs) and every stream's within its stated error of numpy; settled, S and U save the
    same bytes."""
    rng = np.random.default_rng(22)
    for dtype in ("f32", "f64"):
        steps = big_steps(rng, 7, dtype=dtype)
        S, U, P = TokenStream(COLS), TokenStream(COLS), TokenStream(COLS)
        for step, batches in enumerate(steps):
            for b in batches:
                for st in (S, U, P):
                    feed(st, step, b)
                P.settle()
            S.settle()
            for src in ("step", "window"):
                ms = view_metrics(S, src)
                same_bits(view_metrics(U, src), ms, f"{dtype} step {step} {src}: unsettled")
                same_bits(view_metrics(P, src), ms, f"{dtype} step {step} {src}: settled by batch")
            e = counted(batches)
            for lv in LEVELS:
                close(q(U, "quantile", "step", level=lv), np.quantile(e, lv), 1e-12,
                      f"{dtype} step {step} quantile {lv}", abs_floor=1e-15)
            w = counted([b for bs in steps[max(0, step - 2):step + 1] for b in bs])
            for lv in LEVELS:
                close(q(S, "quantile", "window", level=lv), np.quantile(w, lv), 1e-12,
                      f"{dtype} step {step} window quantile {lv}", abs_floor=1e-15)
        every = [b for bs in steps for b in bs]
        for name in ("token_mean", "token_std", "token_min", "token_max", "token_count",
                     "seq_mean", "cov", "corr"):
            vals = [q(st, name, "all") for st in (S, U, P)]
            assert vals[0] == vals[1] == vals[2], f"{dtype} all {name}: {vals}"
        close(q(S, "token_mean", "all"), counted(every).mean(), 1e-12, f"{dtype} all token_mean")
        res = {}
        for name, st in (("S", S), ("U", U), ("P", P)):
            res[name] = [all_quantiles_within_error(st, counted(every, c), f"{dtype} {name}", c)
                         for c in COLS]
        assert res["S"] == res["U"], f"{dtype}: settled and unsettled all quantiles differ: " \
            f"{[(a, b) for a, b in zip(res['S'][0], res['U'][0]) if a != b][:4]}"
        assert save_bytes(S) == save_bytes(U), f"{dtype}: S and U, both settled, save other bytes"


def merge_settled_and_not():
    """A takes steps 0, 2, 4, 6, 8 and half the ranks of 9; B steps 1, 3, 5, 7 and the other half
    of 9 (window 3). Each of A and B settled after every step or never (the four pairs); B merged
    into A: `all` counts exact, sums within 1e-12 of numpy on the union, extremes exact, quantiles
    within their stated error; the step view is step 9's union and the window steps 7-9, as numpy
    says; B unchanged; the merged state loads and saves to the same bytes."""
    rng = np.random.default_rng(23)
    steps = big_steps(rng, 10, ranks=4)
    every = [b for bs in steps for b in bs]
    for a_settles in (True, False):
        for b_settles in (True, False):
            what = f"A {'settled' if a_settles else 'unsettled'}, B " \
                   f"{'settled' if b_settles else 'unsettled'}"
            A, B = TokenStream(COLS), TokenStream(COLS)
            for step, batches in enumerate(steps):
                for r, b in enumerate(batches):
                    to = (A if step % 2 == 0 else B) if step < 9 else (A if r < 2 else B)
                    feed(to, step, b)
                if a_settles:
                    A.settle()
                if b_settles:
                    B.settle()
            b_before = save_bytes(B)
            A.merge(B)
            assert save_bytes(B) == b_before, f"{what}: the merge changed B"
            for c in COLS:
                x = counted(every, c)
                close(q(A, "token_count", "all", column=c), len(x), 0, f"{what} count {c}")
                close(q(A, "token_mean", "all", column=c), x.mean(), 1e-12, f"{what} mean {c}")
                close(q(A, "token_std", "all", column=c), x.std(), 1e-12, f"{what} std {c}")
                close(q(A, "token_min", "all", column=c), x.min(), 0, f"{what} min {c}")
                close(q(A, "token_max", "all", column=c), x.max(), 0, f"{what} max {c}")
                all_quantiles_within_error(A, x, f"{what} merged", c)
            lp, adv = counted(every, "logp"), counted(every, "advantage")
            close(q(A, "cov", "all"), np.mean((lp - lp.mean()) * (adv - adv.mean())), 1e-12,
                  f"{what} cov all", abs_floor=1e-14)
            for src, bs in (("step", steps[9]), ("window", steps[7] + steps[8] + steps[9])):
                e = counted(bs)
                close(q(A, "token_count", src), len(e), 0, f"{what} {src} count")
                close(q(A, "token_mean", src), e.mean(), 1e-12, f"{what} {src} mean")
                for lv in LEVELS:
                    close(q(A, "quantile", src, level=lv), np.quantile(e, lv), 1e-12,
                          f"{what} {src} quantile {lv}", abs_floor=1e-15)
                close(q(A, "frac_above", src, threshold=1.2), np.mean(e > 1.2), 0,
                      f"{what} {src} frac_above")
            data = save_bytes(A)
            assert save_bytes(load_bytes(data, TokenStream)) == data, f"{what}: merged reload"


def range_bound():
    """An f64 value of magnitude 2^128 or more (beyond the f32 range: the sums stay finite below) at a counted
    token is refused, OUT_OF_RANGE, with a sentence naming the column and the token, nothing
    ingested (token_count and the saved bytes as before; ew_tokens_check says the same of the
    packed batch); at a token the mask leaves out it is taken; just under 2^128 is taken."""
    import ctypes as C
    from ewlib import LIB
    rng = np.random.default_rng(24)
    s = TokenStream(COLS)
    for step, batches in enumerate(big_steps(rng, 2)):
        for b in batches:
            feed(s, step, b, keep=2)
    # unsettled (no read of all, which would settle): a refusal must leave even that as it was
    before, count = save_bytes(s), q(s, "token_count", "window")
    n = 3000

    def batch(col, at, v, mask=None, dtypes=None):
        cols = {k: rng.standard_normal(n) for k in COLS}
        cols[col] = cols[col].copy()
        cols[col][at] = v
        return cols, mask, dtypes

    cases = [("logp", 1500, 1e200, None), ("entropy", 0, -1e39, None),
             ("advantage", n - 1, 2.0 ** 128, None), ("logp", 1023, -(2.0 ** 128), None),
             ("entropy", 1024, 1e200, {"logp": "f32", "advantage": "f32"}),
             ("advantage", 2047, np.finfo(np.float64).max, None)]
    for col, at, v, dts in cases:
        cols, _, _ = batch(col, at, v)
        for step in (1, 2):  # the newest step's, and a new step
            try:
                s.ingest_tokens(step, cols, keep=2, dtypes=dts)
            except EwError as e:
                assert e.name == "OUT_OF_RANGE", (col, at, v, e.name, e.message)
                want = f"column '{col}' has a value of magnitude 2^128 or more at token {at}"
                assert want in e.message, (want, e.message)
            else:
                raise AssertionError(f"{v!r} at {col}[{at}] taken")
            close(q(s, "token_count", "window"), count, 0, "count after a refusal")
            assert save_bytes(s) == before, f"{v!r} at {col}[{at}]: the stream changed"
        t, keep_alive = s.batch(2, cols, keep=2, dtypes=dts)
        size = LIB.ew_tokens_packed_size(C.byref(t), len(COLS))
        buf = C.create_string_buffer(size)
        LIB.ew_tokens_pack(C.byref(t), len(COLS), buf)
        msg = C.create_string_buffer(256)
        rc = LIB.ew_tokens_check(s.h, buf, size, msg, 256)
        assert LIB.ew_err_name(rc).decode() == "OUT_OF_RANGE" and \
            f"column '{col}' has a value of magnitude 2^128 or more at token {at}" in \
            msg.value.decode(), (rc, msg.value)
        del keep_alive
    close(q(s, "token_count", "all"), count, 0, "all count after the refusals")
    # masked out: taken, and not counted
    cols, _, _ = batch("logp", 1500, 1e200)
    mask = np.ones(n, np.uint8)
    mask[1500] = 0
    mask[7] = 0
    s.ingest_tokens(2, cols, mask=mask, keep=2)
    close(q(s, "token_count", "step"), n - 2, 0, "masked-out 1e200 not counted")
    m = mask.astype(bool)
    close(q(s, "token_max", "step", column="logp"), cols["logp"][m].max(), 0, "max without it")
    close(q(s, "token_mean", "step", column="logp"), cols["logp"][m].mean(), 1e-12,
          "mean without it")
    # just under 2^128: taken
    under = np.nextafter(2.0 ** 128, 0)
    cols, _, _ = batch("advantage", 5, under)
    s.ingest_tokens(3, cols, keep=2)
    close(q(s, "token_max", "step", column="advantage"), under, 0, "just under 2^128")
    close(q(s, "token_mean", "step", column="advantage"), cols["advantage"].mean(), 1e-12,
          "mean with a value just under 2^128")
    std = q(s, "token_std", "step", column="advantage")
    close(std, cols["advantage"].std(), 1e-12, "std with a value just under 2^128")



def range_bound_sums():
    """Values just under the 2^128 bound keep the sums finite and exact: a batch of 512 tokens
    at -c then 10,000 at +c (in entropy and logp alike) gets numpy's token_mean, token_std and
    cov to 1e-12 on step and all, and its saved state loads back to the same bytes (a bound of
    2^500 let (Σd)² overflow here: token_std 0, cov DEGENERATE, a state ew_stream_load
    refused)."""
    c = float(np.nextafter(2.0 ** 128, 0))
    x = np.concatenate([np.full(512, -c), np.full(10_000, c)])
    adv = np.random.default_rng(25).standard_normal(len(x))
    s = TokenStream(COLS)
    s.ingest_tokens(0, {"entropy": x, "logp": x, "advantage": adv})
    problems = []
    for src in ("step", "all"):
        for name, want in (("token_mean", x.mean()), ("token_std", x.std())):
            got = q(s, name, src)
            if not abs(got - want) <= 1e-12 * abs(want):
                problems.append(f"{name} {src}: got {got!r}, numpy {want!r}")
        want = np.mean((x - x.mean()) * (x - x.mean()))
        try:
            got = q(s, "cov", src, x="entropy", y="logp")
            if not abs(got - want) <= 1e-12 * abs(want):
                problems.append(f"cov {src}: got {got!r}, numpy {want!r}")
        except EwError as e:
            problems.append(f"cov {src}: {e.name} {e.message}, numpy {want!r}")
    try:
        data = save_bytes(s)
        assert save_bytes(load_bytes(data, TokenStream)) == data
    except EwError as e:
        problems.append(f"save + load: {e.name} {e.message}")
    assert not problems, "; ".join(problems)


if __name__ == "__main__":
    t = Tap()
    t.case("worked_checks", worked_checks)
    for dt in ("f32", "f16", "bf16", "f64"):
        t.case(f"against_numpy_{dt}", against_numpy, dt)
    t.case("sketch_states_its_error", sketch_states_its_error)
    t.case("save_load_and_merge", save_load_and_merge)
    t.case("refusals", refusals)
    t.case("save_load_unsettled", save_load_unsettled)
    t.case("settle_changes_no_answer", settle_changes_no_answer)
    t.case("merge_settled_and_not", merge_settled_and_not)
    t.case("range_bound", range_bound)
    t.case("range_bound_sums", range_bound_sums)
    t.done()
