"""Stats streams through the library (DESIGN §12): pre-reduced per-(layer, head) statistics
reduced over ranks and batches exactly, against numpy float64.

- Each rule on 3 steps of 4 ranks' batches (shuffled order), a [6, 5] shape: `cells`, `cell_mean`,
  `cell_max`, `cell_min` and `by_row` on source step (the newest step), window (its last 2 steps)
  and all — `mean` weighted by the batches' counts (Σ count·value / Σ count per cell; cell_mean
  weighted by the cells' counts; by_row each row's count-weighted mean), `max`, `min`, `sum`.
- A shape [L] (one value per layer) and bf16 values.
- The saved state round-trips bit for bit; two streams that each took half the ranks, merged,
  answer as one that took all of them.
- Refusals with code and sentence, nothing changed: values of another shape, a count <= 0, a NaN.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewlib import EwError, StatsStream, load_bytes, save_bytes  # noqa: E402
from taplib import Tap, close  # noqa: E402
from bf16 import bf16_words  # noqa: E402

RULES = {"mean": None, "max": np.max, "min": np.min, "sum": np.sum}


def reduce_cells(rule, vals, counts):
    """vals, counts: (batches, L, H) -> per cell value and count, by the rule."""
    c = counts.sum(0)
    if rule == "mean":
        return (vals * counts).sum(0) / c, c
    return RULES[rule](vals, axis=0), c


def expect(s, rule, vals, counts, source, what):
    v, c = reduce_cells(rule, vals, counts)
    got = np.array(s.query("cells", source=source)[0]).reshape(v.shape)
    assert np.allclose(got, v, rtol=1e-12, atol=1e-12), f"{what} cells {got} != {v}"
    close(s.query("cell_mean", source=source)[0], (v * c).sum() / c.sum(), 1e-12,
          f"{what} cell_mean", abs_floor=1e-12)
    close(s.query("cell_max", source=source)[0], v.max(), 1e-12, f"{what} cell_max")
    close(s.query("cell_min", source=source)[0], v.min(), 1e-12, f"{what} cell_min")
    if rule == "mean":
        rows = (v * c).sum(1) / c.sum(1)
    else:
        rows = RULES[rule](v, axis=1)
    got = np.array(s.query("by_row", source=source)[0])
    assert np.allclose(got, rows, rtol=1e-12, atol=1e-12), f"{what} by_row {got} != {rows}"


def feed(rng, shape, steps=3, ranks=4):
    out = []
    for _ in range(steps):
        out.append([(rng.standard_normal(shape) * 2, rng.integers(1, 50, shape).astype(float))
                    for _ in range(ranks)])
    return out


def every_rule_against_numpy():
    rng = np.random.default_rng(3)
    shape = (6, 5)
    for rule in RULES:
        data = feed(rng, shape)
        s = StatsStream(shape, rule)
        for step, batches in enumerate(data):
            for r in rng.permutation(len(batches)):
                v, k = batches[r]
                s.ingest_cells(step, v, k, keep=2)
        stack = lambda bs: (np.array([b[0] for b in bs]), np.array([b[1] for b in bs]))  # noqa
        expect(s, rule, *stack(data[-1]), "step", f"{rule} step")
        expect(s, rule, *stack(data[-1]), None, f"{rule} default source")
        expect(s, rule, *stack(data[-2] + data[-1]), "window", f"{rule} window")
        expect(s, rule, *stack([b for bs in data for b in bs]), "all", f"{rule} all")
        try:  # a stats stream keeps cells, no d×d matrix (this once called a missing view)
            s.matrix()
        except EwError as e:
            assert e.name == "BAD_PARAM", e.name
        else:
            raise AssertionError("ew_stream_matrix answered on a stats stream")


def one_row_shape_and_bf16():
    rng = np.random.default_rng(4)
    s = StatsStream((12,), "max")
    vals = []
    for r in range(3):
        words, v = bf16_words(rng.standard_normal(12).astype(np.float32))
        vals.append(v.astype(np.float64))
        s.ingest_cells(0, words, keep=1, dtype="bf16")
    want = np.max(vals, axis=0)
    assert np.array_equal(np.array(s.query("cells")[0]), want)
    assert np.array_equal(np.array(s.query("by_row")[0]), want), "[L]: a row per layer"


def save_load_and_merge():
    rng = np.random.default_rng(5)
    shape = (4, 3)
    data = feed(rng, shape)
    one, a, b = StatsStream(shape), StatsStream(shape), StatsStream(shape)
    for step, batches in enumerate(data):
        for r, (v, k) in enumerate(batches):
            one.ingest_cells(step, v, k, keep=2)
            (a if r % 2 else b).ingest_cells(step, v, k, keep=2)
    saved = save_bytes(one)
    back = load_bytes(saved, StatsStream)
    assert save_bytes(back) == saved and back.shape == shape, back.shape
    a.merge(b)
    for src in ("step", "window", "all"):
        assert np.array_equal(back.query("cells", source=src)[0],
                              one.query("cells", source=src)[0]), src
        got = np.array(a.query("cells", source=src)[0])
        want = np.array(one.query("cells", source=src)[0])
        assert np.allclose(got, want, rtol=1e-12, atol=1e-13), (src, got, want)


def refusals():
    s = StatsStream((2, 3))
    s.ingest_cells(0, np.ones(6))
    before = save_bytes(s)

    def refused(code, needle, fn):
        try:
            fn()
        except EwError as e:
            assert e.name == code and needle in e.message, (e.name, e.message)
            assert save_bytes(s) == before, "the stream changed"
            return
        raise AssertionError(f"not refused: {needle}")
    refused("BAD_REQUEST", "'values' holds 5 cells; the stream's shape has 6",
            lambda: s.ingest_cells(1, np.ones(5)))
    refused("BAD_REQUEST", "'counts' must be positive (cell 2 has 0)",
            lambda: s.ingest_cells(1, np.ones(6), counts=[1, 1, 0, 1, 1, 1]))
    refused("NON_FINITE", "'values' has a NaN or infinity at cell 4",
            lambda: s.ingest_cells(1, [1, 1, 1, 1, np.inf, 1]))
    refused("BAD_PARAM", "metric 'token_mean' is one of tokens streams, and this is a stats",
            lambda: s.query("token_mean"))


if __name__ == "__main__":
    t = Tap()
    t.case("every_rule_against_numpy", every_rule_against_numpy)
    t.case("one_row_shape_and_bf16", one_row_shape_and_bf16)
    t.case("save_load_and_merge", save_load_and_merge)
    t.case("refusals", refusals)
    t.done()
