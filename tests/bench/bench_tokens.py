#!/usr/bin/python3
"""Tokens streams benchmark (DESIGN §12; targets in §6): R ranks x N tokens x 3 f32 columns
(entropy, logp, advantage) a step — 8 x 10^6 at the defaults — measured in one run beside the
machine's own limit and what a user would write instead:

  1. ingest, tokens/s: the library alone (the path ew_stream_ingest_tokens takes —
     ew_tokens_pack_prepare, ew_stream_apply — each timed; the parts the daemon runs instead,
     ew_tokens_pack, ew_tokens_check, ew_tokens_prepare, timed on a copy; ew_stream_settle, which
     the daemon runs after each step, off ingest), and the daemon end to end (a step's R batches as `ingest`
     requests over R Unix-socket connections, every one acknowledged, then a `query` that
     returns once the step is applied), beside the bare loop "memcpy + sum" of the same f32
     bytes: in C (tests/bench/bench_tokens_bare.c, loaded with ctypes, f64 accumulators) and in
     numpy (np.copyto + .sum on the same arrays); ratios ingest / bare, with the target (>= 0.5).
     Where the library's time goes: its quantile sketch's add and its exact sums timed alone
     through the internals (the same module, linked to the static archive).
  2. a step's five quantiles (levels 0.05 .. 0.95) of the R x N entropy tokens through the
     library (source step; five queries: the library answers one level a query) beside
     np.quantile on the same f32 array (the five levels in one call, and five calls) and on its
     f64 copy; the values against numpy's float64 answer.
  3. one step's default evaluation in the daemon (token_mean, token_std, entropy_p5/_p50/_p95,
     frac_above, cov, cov_band_frac): info's eval.cost (all of it runs on the stream's turn:
     turn_ms, of which cheap_ms the metrics) and the history points' lag_s (step completion ->
     point), beside numpy computing the same eight values on the step's arrays.

Each figure is a median, of --reps steps for ingest and the evaluation's cost, of more rounds for
the cheap parts (the bare loops, quantiles), stated beside it. Times are printed,
never asserted. usage:
  /usr/bin/python3 tests/bench/bench_tokens.py [--build DIR] [--reps 3] [--ranks 8]
                                              [--tokens 1000000] [--quick]
--quick: 10^5 tokens a rank and one repetition (a smoke run, not the headline).
"""
import argparse
import ctypes as C
import os
import statistics
import sys
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COLUMNS = ("entropy", "logp", "advantage")
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
TARGET_INGEST = 0.5  # DESIGN §6: ingest >= 0.5x the bare memcpy + sum loop


def med(xs):
    return statistics.median(xs)


def make_data(ranks, n):
    """Per rank, the three f32 columns: entropy >= 0 (mean 1 nat, a tail past 1.5), logp <= 0,
    advantage standard normal."""
    out = []
    for r in range(ranks):
        rng = np.random.default_rng(100 + r)
        out.append({"entropy": rng.gamma(2.0, 0.5, n).astype(np.float32),
                    "logp": (-rng.exponential(1.0, n)).astype(np.float32),
                    "advantage": rng.standard_normal(n).astype(np.float32)})
    return out


# ---- 1. the bare loops --------------------------------------------------------------------------

def bare_c(bare, data, reps):
    """Seconds a step of the C loop takes: memcpy + sum of every rank's every column."""
    dst = [{c: np.empty_like(d[c]) for c in COLUMNS} for d in data]
    f = bare.ewb_copy_sum
    ts = []
    for rep in range(reps + 1):  # the first round faults the destinations in: not counted
        t0 = time.perf_counter()
        for d, o in zip(data, dst):
            for c in COLUMNS:
                f(d[c].ctypes.data, o[c].ctypes.data, len(d[c]))
        if rep:
            ts.append(time.perf_counter() - t0)
    return med(ts)


def bare_numpy(data, reps):
    dst = [{c: np.empty_like(d[c]) for c in COLUMNS} for d in data]
    ts = []
    for rep in range(reps + 1):
        s = 0.0
        t0 = time.perf_counter()
        for d, o in zip(data, dst):
            for c in COLUMNS:
                np.copyto(o[c], d[c])
                s += float(o[c].sum())
        if rep:
            ts.append(time.perf_counter() - t0)
    return med(ts)


# ---- 1. the library ------------------------------------------------------------------------------

LIBC = C.CDLL(None)
LIBC.malloc.restype = C.c_void_p
LIBC.malloc.argtypes = [C.c_size_t]
LIBC.free.argtypes = [C.c_void_p]


def bind(lib):
    lib.ew_tokens_prepare.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t,
                                      C.POINTER(C.c_void_p), C.c_char_p, C.c_size_t]
    lib.ew_tokens_pack_prepare.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(C.c_void_p),
                                           C.c_char_p, C.c_size_t]
    lib.ew_stream_apply.argtypes = [C.c_void_p, C.c_void_p]
    lib.ew_batch_free.argtypes = [C.c_void_p]
    lib.ew_stream_settle.argtypes = [C.c_void_p]


def lib_ingest(ewlib, data, reps):
    """A tokens stream fed reps steps of every rank's batch by parts; per step (median) the
    seconds of each part. Returns (parts, the stream)."""
    lib = ewlib.LIB
    s = ewlib.TokenStream(COLUMNS)
    dt = {c: "f32" for c in COLUMNS}
    held = [s.batch(0, d, dtypes=dt) for d in data]  # (ew_tokens_t, arrays kept alive)
    size = lib.ew_tokens_packed_size(C.byref(held[0][0]), len(COLUMNS))
    msg = C.create_string_buffer(256)
    steps = {k: [] for k in ("pack_prepare", "apply", "pack", "check", "prepare", "settle")}
    spare = LIBC.malloc(size)
    for step in range(reps + 1):  # the first step warms the stream's buffers: not counted
        t = dict.fromkeys(steps, 0.0)
        for tk, _ in held:
            # what ew_stream_ingest_tokens does: one pass that packs, checks and sums each block
            # (ew_tokens_pack_prepare), then the apply that moves the packed bytes into the step
            tk.step = step
            t0 = time.perf_counter()
            b = C.c_void_p()
            rc = lib.ew_tokens_pack_prepare(s.h, C.byref(tk), C.byref(b), msg, 256)
            t1 = time.perf_counter()
            rc = rc or lib.ew_stream_apply(s.h, b)
            t2 = time.perf_counter()
            lib.ew_batch_free(b)
            if rc:
                raise RuntimeError(f"ingest: {lib.ew_err_name(rc).decode()} {msg.value.decode()}")
            # the daemon's parts, on a copy (not applied): the pack its decode makes, the check
            # on arrival, the prepare when the step completes
            t3 = time.perf_counter()
            lib.ew_tokens_pack(C.byref(tk), len(COLUMNS), spare)
            t4 = time.perf_counter()
            rc = lib.ew_tokens_check(s.h, spare, size, msg, 256)
            t5 = time.perf_counter()
            b2 = C.c_void_p()
            rc = rc or lib.ew_tokens_prepare(s.h, spare, size, C.byref(b2), msg, 256)
            t6 = time.perf_counter()
            lib.ew_batch_free(b2)
            if rc:
                raise RuntimeError(f"parts: {lib.ew_err_name(rc).decode()} {msg.value.decode()}")
            t["pack_prepare"] += t1 - t0
            t["apply"] += t2 - t1
            t["pack"] += t4 - t3
            t["check"] += t5 - t4
            t["prepare"] += t6 - t5
        t0 = time.perf_counter()
        rc = lib.ew_stream_settle(s.h)  # the daemon's TAIL job after the step, off ingest
        t["settle"] = time.perf_counter() - t0
        if rc:
            raise RuntimeError(f"settle: {lib.ew_err_name(rc).decode()}")
        if step:
            for k in steps:
                steps[k].append(t[k])
    LIBC.free(spare)
    want = len(data) * len(data[0]["entropy"])
    got = s.q("token_count", source="step")
    assert got == want, (got, want)
    return {k: med(v) for k, v in steps.items()}, s


def lib_internals(bare, data):
    """One step's sketch adds (every rank's every column, into a fresh sketch of k = 4096) and
    exact sums (ew__tall_of per rank), timed inside C: seconds."""
    sketch = sums = 0.0
    for d in data:
        x = [d[c].astype(np.float64) for c in COLUMNS]
        ptrs = (C.c_void_p * len(x))(*[a.ctypes.data for a in x])
        sums += bare.ewb_sums_s(ptrs, len(x), len(x[0]))
        for a in x:
            sketch += bare.ewb_sketch_add_s(a.ctypes.data, len(a), 4096)
    return sketch, sums


# ---- 1 and 3. the daemon -------------------------------------------------------------------------

class Conn:
    """A raw msgpack-RPC connection for pre-packed requests (harness.Client's socket)."""

    def __init__(self, client):
        self.c = client
        self.msgid = 10 ** 6

    def request(self, method, params):
        self.msgid += 1
        return self.msgid, msgpack.packb([0, self.msgid, method, [params]], use_bin_type=True)

    def reply(self, msgid):
        m = self.c.read_message()
        assert m[0] == 1 and m[1] == msgid, m[:2]
        if m[2] is not None:
            raise RuntimeError(m[2])
        return m[3]


def daemon_steps(d, name, data, first, reps, evals):
    """Sends steps first .. first+reps-1 of stream `name` (every rank's batch as an acknowledged
    `ingest` on its own connection); per step the seconds until every batch is acknowledged and
    until a query answers with the step applied. With evals, waits for each step's evaluation and
    returns info's eval.cost per step too."""
    c = d.client()
    conns = [Conn(d.client()) for _ in data]
    want = len(data) * len(data[0]["entropy"])
    acked, applied, costs = [], [], []
    for step in range(first, first + reps):
        msgs = []
        for r, (x, k) in enumerate(zip(data, conns)):
            msgs.append(k.request("ingest", {
                "stream": name, "step": step, "rank": r, "world": len(data), "end_step": True,
                "columns": {col: {"dtype": "f32", "data": x[col].tobytes()} for col in COLUMNS}}))
        t0 = time.perf_counter()
        for k, (_, m) in zip(conns, msgs):
            k.c.send_raw(m)
        for k, (i, _) in zip(conns, msgs):
            assert k.reply(i)["accepted"] == len(data[0]["entropy"])
        t1 = time.perf_counter()
        got = c.call("query", {"stream": name, "metrics": ["token_count"], "source": "step"})
        t2 = time.perf_counter()
        assert got["metrics"]["token_count"] == want, (got, want)
        acked.append(t1 - t0)
        applied.append(t2 - t0)
        if evals:
            deadline = time.time() + 120
            while True:
                ev = c.call("info", {"stream": name})["eval"]
                if ev["evaluations"] >= step + 1 - first and not ev["busy"]:
                    break
                assert time.time() < deadline, ev
                time.sleep(0.01)
            costs.append(ev["cost"])
    for k in conns:
        k.c.close()
    return c, acked, applied, costs


def numpy_default_eval(data, reps):
    """What a user computes instead of the default evaluation, on the step's f32 arrays (f64
    reductions): mean, std, the 5/50/95% quantiles, share above 1.5, cov(logp, advantage) and the
    share of tokens with 1 < cov_i < 5."""
    e = np.concatenate([d["entropy"] for d in data])
    lp = np.concatenate([d["logp"] for d in data])
    a = np.concatenate([d["advantage"] for d in data])
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        e.mean(dtype=np.float64)
        e.std(dtype=np.float64)
        np.quantile(e, [0.05, 0.5, 0.95])
        np.count_nonzero(e > 1.5) / len(e)
        ci = (lp - lp.mean(dtype=np.float64)) * (a - a.mean(dtype=np.float64))
        ci.mean()
        np.count_nonzero((ci > 1) & (ci < 5)) / len(ci)
        ts.append(time.perf_counter() - t0)
    return med(ts)


# ---- 2. quantiles --------------------------------------------------------------------------------

def quantiles(stream, data, reps):
    """Per round, a new step of every rank's batch (ingested, not timed), then the five levels
    asked of it: the first query sorts the step's column (kept for the step: the others, and a
    settle, read it), so the five together are what a step's quantiles cost. Then the same five
    again (warm: lookups), and numpy on the same array."""
    x32 = np.concatenate([d["entropy"] for d in data])
    x64 = x32.astype(np.float64)
    dt = {c: "f32" for c in COLUMNS}
    lib_t, warm, one32, five32, one64 = [], [], [], [], []
    for r in range(reps):
        for d in data:
            stream.ingest_tokens(10 ** 6 + r, d, dtypes=dt)
        t0 = time.perf_counter()
        vals = [stream.q("quantile", source="step", level=lv) for lv in LEVELS]
        t1 = time.perf_counter()
        [stream.q("quantile", source="step", level=lv) for lv in LEVELS]
        t2 = time.perf_counter()
        np.quantile(x32, LEVELS)
        t3 = time.perf_counter()
        for lv in LEVELS:
            np.quantile(x32, lv)
        t4 = time.perf_counter()
        ref = np.quantile(x64, LEVELS)
        t5 = time.perf_counter()
        lib_t.append(t1 - t0)
        warm.append(t2 - t1)
        one32.append(t3 - t2)
        five32.append(t4 - t3)
        one64.append(t5 - t4)
    err = float(np.max(np.abs(np.array(vals) - ref)))
    return {"lib": med(lib_t), "warm": med(warm), "np1": med(one32), "np5": med(five32),
            "np64": med(one64), "err": err, "n": len(x32)}


# ---- the run -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=10 ** 6)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.tokens, args.reps = 10 ** 5, 1
    os.environ["EW_LIB"] = os.path.join(args.build, "lib", "libeigenwatch.so")
    sys.path.insert(0, os.path.join(ROOT, "tests", "numeric"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import ewlib  # noqa: E402  (reads EW_LIB)
    import harness  # noqa: E402
    harness.DAEMON = os.path.join(args.build, "daemon", "eigenwatchd")
    bind(ewlib.LIB)
    bare = C.CDLL(os.path.join(args.build, "tests", "bench", "libbench_tokens_bare.so"))
    bare.ewb_copy_sum.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t]
    bare.ewb_copy_sum.restype = C.c_double
    bare.ewb_sketch_add_s.argtypes = [C.c_void_p, C.c_size_t, C.c_size_t]
    bare.ewb_sketch_add_s.restype = C.c_double
    bare.ewb_sums_s.argtypes = [C.c_void_p, C.c_size_t, C.c_size_t]
    bare.ewb_sums_s.restype = C.c_double

    R, N, reps = args.ranks, args.tokens, args.reps
    T = R * N
    t_start = time.time()
    data = make_data(R, N)
    print(f"eigenwatch tokens benchmark: {R} ranks x {N} tokens x {len(COLUMNS)} f32 columns "
          f"({', '.join(COLUMNS)}) a step = {T} tokens, {T * 4 * len(COLUMNS) / 1e6:.0f} MB; "
          f"ingest and evaluation: median of {reps} step(s); load average at the start "
          f"{os.getloadavg()[0]:.2f}", flush=True)

    def rate(sec):
        return T / sec

    def row(label, sec, extra=""):
        print(f"  {label:<52s} {rate(sec) / 1e6:9.2f} M tokens/s {1e3 * sec:9.1f} ms/step{extra}",
              flush=True)

    # 1. ingest (the bare loops take ~10 ms a round: more rounds, for a steadier median)
    cheap = 1 if args.quick else max(reps, 10)
    tc, tn = bare_c(bare, data, cheap), bare_numpy(data, cheap)
    parts, stream = lib_ingest(ewlib, data, reps)
    t_lib = parts["pack_prepare"] + parts["apply"]
    t_daemon_parts = parts["pack"] + parts["check"] + parts["prepare"] + parts["apply"]
    sketch, sums = lib_internals(bare, data)
    print(f"1. ingest (tokens/s of 3 columns each; ratios: ingest / bare; bare loops: median of "
          f"{cheap} rounds)")
    row("bare C loop: memcpy + sum (f64 acc), via ctypes", tc)
    row("bare numpy: np.copyto + .sum (f32)", tn, f"   C / numpy {tn / tc:.2f}")
    row("library: ew_stream_ingest_tokens (pack_prepare + apply)", t_lib,
        f"   / bare C {tc / t_lib:.3f}  / numpy {tn / t_lib:.3f}  (target >= {TARGET_INGEST})")
    row("library, the daemon's parts: pack, check, prepare, apply", t_daemon_parts,
        f"   / bare C {tc / t_daemon_parts:.3f}")
    print(f"    by part, ms/step: pack_prepare {1e3 * parts['pack_prepare']:.1f} (one pass: each "
          f"block copied, checked, summed), apply {1e3 * parts['apply']:.1f} (the packed bytes "
          f"move into the step); the daemon's: pack {1e3 * parts['pack']:.1f} (its decode's "
          f"copy), ew_tokens_check {1e3 * parts['check']:.1f} (on arrival), prepare "
          f"{1e3 * parts['prepare']:.1f} (at completion: a copy of the buffer, then check + "
          f"sums); then, off ingest (the daemon: a job after the step's batches), settle "
          f"{1e3 * parts['settle']:.1f} (every column radix-sorted into its quantile sketch; the "
          f"newest step keeps the sorted columns)", flush=True)
    print(f"    for scale, the old path's parts through the internals: ew__tall_of's two-pass "
          f"sums {1e3 * sums:.1f}, ew__qs_add one value at a time {1e3 * sketch:.1f}",
          flush=True)

    rounds = 1 if args.quick else max(reps, 5)
    q = quantiles(stream, data, rounds)
    del stream

    d = harness.Daemon()
    try:
        c = d.client()
        for name, ev in (("tok_noeval", []), ("tok_eval", None)):
            p = {"stream": name, "kind": "tokens", "columns": list(COLUMNS), "world": R}
            if ev is not None:
                p["eval"] = ev
            c.call("create", p)
        _, acked, applied, _ = daemon_steps(d, "tok_noeval", data, 0, reps, False)
        t_d = med(applied)
        row("daemon: R acknowledged ingests + query, eval off", t_d,
            f"   / bare C {tc / t_d:.3f}  / numpy {tn / t_d:.3f}  (target >= {TARGET_INGEST}); "
            f"all acknowledged after {1e3 * med(acked):.0f} ms")
        c2, acked_e, applied_e, costs = daemon_steps(d, "tok_eval", data, 0, reps, True)
        t_de = med(applied_e)
        row("daemon: the same, default evaluation on", t_de,
            f"   / bare C {tc / t_de:.3f}; all acknowledged after {1e3 * med(acked_e):.0f} ms")
        hist = c2.call("history", {"stream": "tok_eval", "metrics": ["token_mean"]})["series"]
        lags = [x for s_ in hist for x in s_["lag_s"]]
        info = c2.call("info", {"stream": "tok_eval"})["eval"]
        names = [m.get("as") or m["metric"] for m in info["metrics"]]
    finally:
        d.stop()

    print(f"2. a step's five quantiles (levels {', '.join(map(str, LEVELS))}) of {q['n']} "
          f"entropy tokens (median of {rounds} rounds)")
    print(f"  library, source step, 5 queries of a new step      {1e3 * q['lib']:9.1f} ms   "
          f"(the first sorts the step's column; the same 5 again: {1e3 * q['warm']:.2f} ms)")
    print(f"  np.quantile, f32 array, 5 levels in one call       {1e3 * q['np1']:9.1f} ms   "
          f"library / numpy {q['lib'] / q['np1']:.2f}")
    print(f"  np.quantile, f32 array, 5 calls                    {1e3 * q['np5']:9.1f} ms   "
          f"library / numpy {q['lib'] / q['np5']:.2f}")
    print(f"  np.quantile, f64 copy, 5 levels in one call        {1e3 * q['np64']:9.1f} ms   "
          f"library / numpy {q['lib'] / q['np64']:.2f}   (target: library faster than numpy, "
          f"< 1)")
    print(f"  library values vs numpy float64: max |diff| {q['err']:.1e}", flush=True)

    t_np = numpy_default_eval(data, rounds)
    k = ["turn_ms", "cheap_ms", "snapshot_ms", "solve_ms", "write_ms"]
    cm = {x: med([cc[x] for cc in costs]) for x in k}
    print(f"3. one step's default evaluation in the daemon ({len(names)} series: "
          f"{', '.join(names)})")
    solve = (f"solve {cm['solve_ms']:.1f} ms, write {cm['write_ms']:.2f} ms" if cm["solve_ms"]
             else "no eigensolve: every metric on the stream's turn")
    print(f"  info eval.cost: turn {cm['turn_ms']:.1f} ms (metrics {cm['cheap_ms']:.1f} ms, "
          f"snapshot {cm['snapshot_ms']:.1f} ms), {solve}; numpy, the same values on the step's "
          f"arrays: "
          f"{1e3 * t_np:.1f} ms (median of {rounds}) -> daemon / numpy "
          f"{cm['turn_ms'] / (1e3 * t_np):.2f}")
    if lags:
        print(f"  lag, step completion -> history point (token_mean): median "
              f"{1e3 * med(lags):.0f} ms over {len(lags)} steps, max {1e3 * max(lags):.0f} ms (the "
              f"step completes when its last rank's batch arrives; its batches' prepare and apply "
              f"come after, then the evaluation)")
    print(f"(run took {time.time() - t_start:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
