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


if __name__ == "__main__":
    t = Tap()
    t.case("worked_checks", worked_checks)
    for dt in ("f32", "f16", "bf16", "f64"):
        t.case(f"against_numpy_{dt}", against_numpy, dt)
    t.case("sketch_states_its_error", sketch_states_its_error)
    t.case("save_load_and_merge", save_load_and_merge)
    t.case("refusals", refusals)
    t.done()
