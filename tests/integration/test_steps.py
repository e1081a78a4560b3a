"""Steps, ranks and exactly-once ingest (issue 9, items 2 and 3), against a real daemon.

- 4 ranks × 40 steps, sent in a shuffled order (each rank's own steps in order, ranks
  interleaved at random), with late batches and resent duplicates: at the halfway point and at
  the end the stream's all-rows and window spectra equal numpy float64 on the rows in the
  documented order (steps ascending, ranks ascending, each rank's batches as sent, then the late
  batches after the next step to complete) to 1e-6 relative; duplicates are acknowledged and not
  counted, late batches are counted. A second stream fed the same batches in another shuffle
  exports byte-identical state at the halfway point.
- A rank that never sends: after step_timeout its steps complete as partial, the log names it
  (and only it: ranks that sent rows for a step are not missing from it).
- Staging past max_staged_bytes completes the oldest steps early (partial), staged bytes stay
  bounded, RSS stays within a stated bound, and no row is lost.
- A clean stop completes no step: the pending steps, each rank's progress, world, step_timeout
  and producer seqs survive the restart (a resend of a staged or applied seq is a duplicate) and
  the steps then complete into the state of a stream that never stopped (byte-identical export);
  a snapshot and an export carry the staged steps too (a merge-created stream takes them; an
  existing stream refuses them with a sentence, unchanged).
- Bad step fields: the error code and message, and nothing changed.
- The recent view: a stepped ingest creates a recent stream (a window at any d); the default
  source of a recent stream is the window, of any other stream every row (version 1);
  window_steps reads the rows of the last S completed steps, and keeps them across a restart
  (numpy float64, 1e-6)."""
import os
import random
import signal
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon, RpcError, expect  # noqa: E402
from taplib import Tap  # noqa: E402

D = 6



def send(c, stream, X, **kw):
    X = np.ascontiguousarray(X, dtype=np.float32)
    p = {"stream": stream, "data": X.tobytes(), "dtype": "f32", "shape": list(X.shape)}
    p.update(kw)
    return c.call("ingest", p)


class Model:
    """The documented rules, written from PROTOCOL.md ("Steps and ranks"), as the reference: which
    rows the state holds, in which order."""

    def __init__(self, world):
        self.world = world
        self.latest, self.done = {}, {}
        self.pending = {}  # step -> [(rank, arrival, X)]
        self.late = []
        self.applied = []  # row blocks in apply order
        self.last_complete = None
        self.n = 0

    def add(self, rank, step, X, end=False):
        late = (rank in self.latest and step < self.latest[rank]) or \
            (self.last_complete is not None and step <= self.last_complete)
        if rank not in self.latest or step >= self.latest[rank]:
            self.latest[rank] = step
            through = step if end else step - 1
            if (end or step > 0) and (rank not in self.done or through > self.done[rank]):
                self.done[rank] = through
        if X is not None:
            self.n += 1
            if late:
                self.late.append(X)
            else:
                self.pending.setdefault(step, []).append((rank, self.n, X))
        while self.pending:
            s = min(self.pending)
            if all(r in self.done and self.done[r] >= s for r in range(self.world)):
                self.complete(s)
            else:
                break
        return late

    def complete(self, s):
        for _, _, X in sorted(self.pending.pop(s), key=lambda t: (t[0], t[1])):
            self.applied.append(X)
        self.applied += self.late
        self.late = []
        self.last_complete = s

    def flush(self):
        while self.pending:
            self.complete(min(self.pending))
        self.applied += self.late
        self.late = []

    def rows(self):
        return np.concatenate(self.applied).astype(np.float64)


def cov_spectrum(X):
    X = X.astype(np.float64)
    C = np.cov(X.T, bias=True)
    return np.sort(np.linalg.eigvalsh(C))[::-1]


def close(a, b, what, rtol=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(b)), 1e-300)
    err = np.max(np.abs(a - b)) / scale
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol}\n{a}\n{b}"


def check_state(c, stream, model, window, what):
    ref = model.rows()
    q = c.call("query", {"stream": stream, "metrics": "spectrum", "fresh": True})
    assert q["count"] == len(ref), f"{what}: count {q['count']} != {len(ref)}"
    close(q["metrics"]["spectrum"], cov_spectrum(ref), f"{what}: all-rows spectrum", rtol=1e-12)
    q = c.call("query", {"stream": stream, "metrics": "spectrum", "source": "window",
                         "fresh": True})
    close(q["metrics"]["spectrum"], cov_spectrum(ref[-window:]), f"{what}: window spectrum",
          rtol=1e-12)  # the window holds the f32 rows sent; numpy reads the same values in f64


def schedule(rng, world, steps):
    """Each rank's (step, batch) list in order, interleaved at random across ranks."""
    per = {r: [(s, b) for s in steps for b in range(1 + (s + r) % 2)] for r in range(world)}
    order = []
    while any(per.values()):
        r = rng.choice([r for r in per if per[r]])
        order.append((r,) + per[r].pop(0))
    return order


def four_ranks_shuffled_with_late_and_duplicates():
    world, window = 4, 40
    rng = random.Random(7)
    data_rng = np.random.default_rng(11)
    blocks = {}

    def rows_of(r, s, b):
        if (r, s, b) not in blocks:
            blocks[(r, s, b)] = (data_rng.standard_normal((3, D)) * (1 + r) + s).astype(np.float32)
        return blocks[(r, s, b)]

    d = Daemon()
    try:
        c = d.client()
        for name in ("a", "b"):
            c.call("create", {"stream": name, "dim": D, "window": window, "world": world})
        models = {"a": Model(world), "b": Model(world)}
        seqs = {}
        sent = {"a": [], "b": []}

        def put(name, r, s, b, late_expected=None):
            X = rows_of(r, s, b)
            key = (name, r)
            seqs[key] = seqs.get(key, 0) + 1
            ack = send(c, name, X, step=s, rank=r, producer=f"rank{r}", seq=seqs[key])
            late = models[name].add(r, s, X)
            assert ack["late"] == late, f"{name} r{r} s{s}: ack {ack} but the model says {late}"
            if late_expected is not None:
                assert late == late_expected
            sent[name].append((r, s, b, seqs[key]))
            return ack

        for name, seed in (("a", 1), ("b", 2)):
            rng.seed(seed)
            for r, s, b in schedule(rng, world, range(20)):
                put(name, r, s, b)
        for name in ("a", "b"):
            check_state(c, name, models[name], window, f"{name} after steps 0-19 were sent")
            assert c.call("info", {"stream": name})["steps"]["last_step"] == 18
        # the same batches in another order: the same state, byte for byte
        ea = c.call("export", {"stream": "a"})["state"]
        eb = c.call("export", {"stream": "b"})["state"]
        assert ea == eb, "two arrival orders gave different states"
        # late: step 5 is complete; rank 2 had moved past it
        for name in ("a", "b"):
            put(name, 2, 5, 9, late_expected=True)
        # duplicates: resend earlier batches with their seqs — acknowledged, not counted
        for name in ("a", "b"):
            before = c.call("info", {"stream": name})["count"]
            for r, s, b, q in sent[name][:5]:
                ack = send(c, name, rows_of(r, s, b), step=s, rank=r, producer=f"rank{r}", seq=q)
                assert ack.get("duplicate") is True and ack["accepted"] == 0, ack
            assert c.call("info", {"stream": name})["count"] == before
        for name, seed in (("a", 3), ("b", 4)):
            rng.seed(seed)
            order = schedule(rng, world, range(20, 40))
            for i, (r, s, b) in enumerate(order):
                put(name, r, s, b)
                if i == len(order) // 2:  # a rank going back below its latest step: late
                    r0 = order[0][0]
                    put(name, r0, models[name].latest[r0] - 1, 7, late_expected=True)
        for name in ("a", "b"):
            assert c.call("flush", {"stream": name})["completed"] >= 1
            models[name].flush()
            check_state(c, name, models[name], window, f"{name} after flush")
            st = c.call("info", {"stream": name})["steps"]
            assert st["late_batches"] == 2 and st["pending_steps"] == 0, st
            assert st["first_step"] == 0 and st["last_step"] == 39, st
        stats = c.call("stats")
        assert stats["duplicate_batches"] == 10 and stats["late_batches"] == 4, stats
        c.close()
    finally:
        assert d.stop() == 0


def a_rank_that_never_sends_gives_partial_steps_after_the_timeout():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "p", "dim": D, "world": 3, "step_timeout": 0.3})
        rng = np.random.default_rng(3)
        X = rng.standard_normal((4, D))
        for s in range(3):
            for r in (0, 1):
                send(c, "p", X, step=s, rank=r)
        st = c.call("info", {"stream": "p"})
        assert st["count"] == 0 and st["steps"]["pending_steps"] == 3, st
        t0 = time.time()
        deadline = time.time() + 5
        while time.time() < deadline:
            st = c.call("info", {"stream": "p"})
            if st["steps"]["pending_steps"] == 0 and st["count"] == 24:
                break
            time.sleep(0.05)
        assert st["count"] == 24 and st["steps"]["partial_steps"] == 3, st
        assert st["steps"]["last_step"] == 2 and time.time() - t0 >= 0.25
        lines = [ln for ln in d.log().splitlines() if "step completed partial" in ln]
        assert len(lines) == 3 and all('missing="2"' in ln and "why=timeout" in ln
                                       for ln in lines), lines
        assert c.call("stats")["steps_partial"] == 3
        c.close()
    finally:
        assert d.stop() == 0


def staging_is_bounded_and_loses_nothing():
    """max_staged_bytes = 1 MiB; rank 1 never sends, so nothing completes by ranks: each 256 KiB
    step waits, and past 1 MiB the oldest completes as partial. RSS bound: staged rows are at most
    1 MiB + one batch; the daemon may grow by 64 MiB at most over 48 steps (12 MiB sent)."""
    d = Daemon(config="max_staged_bytes = 1M\n")
    try:
        c = d.client()
        c.call("create", {"stream": "big", "dim": 1024, "window": 0, "topk": 0, "world": 2})
        X = np.random.default_rng(5).standard_normal((64, 1024)).astype(np.float32)
        rss0 = d.rss_kib()
        peak = 0
        for s in range(48):
            send(c, "big", X, step=s, rank=0)
            st = c.call("stats")
            peak = max(peak, st["staged_bytes"])
        assert peak <= (1 << 20) + X.nbytes, f"staged {peak} bytes, bound {(1 << 20) + X.nbytes}"
        st = c.call("stats")
        assert st["steps_forced"] >= 40, st
        c.call("flush", {"stream": "big"})
        q = c.call("query", {"stream": "big", "metrics": "trace"})  # queued behind the rows
        assert q["count"] == 48 * 64, q  # nothing dropped
        assert c.call("info", {"stream": "big"})["steps"]["partial_steps"] == 48
        grew = d.rss_kib() - rss0
        # ASan's quarantine keeps freed memory: the bound is for the real build
        assert os.environ.get("EWD_ASAN") or grew < 64 * 1024, f"RSS grew {grew} KiB"
        assert c.call("stats")["staged_bytes"] == 0
        # late batches with no pending step to join: past the bound they are applied at once
        c.call("ingest", {"stream": "big", "rows": [], "step": 47, "rank": 1, "end_step": True})
        c.call("ingest", {"stream": "big", "rows": [], "step": 48, "rank": 0, "end_step": True})
        peak = 0
        for s_ in range(12):
            assert send(c, "big", X, step=3, rank=0)["late"] is True
            peak = max(peak, c.call("stats")["staged_bytes"])
        assert peak <= (1 << 20) + X.nbytes, f"late batches staged {peak} bytes"
        q = c.call("query", {"stream": "big", "metrics": "trace"})
        assert q["count"] >= 48 * 64 + 8 * 64, q  # most applied already, none dropped
        c.call("flush", {"stream": "big"})
        assert c.call("query", {"stream": "big", "metrics": "trace"})["count"] == 60 * 64
        c.close()
    finally:
        assert d.stop() == 0


def staged_sequence(c, stream, X, run="job"):
    """Steps 0 (both ranks) and 1 (rank 0 only) of a world-2 stream: both pending afterwards."""
    c.call("create", {"stream": stream, "run": run, "dim": D, "world": 2, "step_timeout": 90})
    for r in (0, 1):
        send(c, stream, X, run=run, step=0, rank=r, producer=f"p{r}", seq=1)
    ack = send(c, stream, X + 1, run=run, step=1, rank=0, producer="p0", seq=2)
    assert ack["late"] is False


def wait_count(c, stream, run, n, timeout=30):
    """info once the stream's applied rows reach n (completed steps apply on the math threads)."""
    deadline = time.time() + timeout
    while True:
        info = c.call("info", {"stream": stream, "run": run})
        if info["count"] >= n or time.time() > deadline:
            return info
        time.sleep(0.01)


def finish_sequence(c, stream, X, run="job"):
    """Rank 1 ends step 1 (step 0 completes: rank 0 moved past it), then rank 0 ends it."""
    ack = send(c, stream, X * 2, run=run, step=1, rank=1, producer="p1", seq=2, end_step=True)
    assert "duplicate" not in ack and ack["late"] is False, ack
    info = wait_count(c, stream, run, 10)
    assert info["count"] == 10 and info["steps"]["pending_steps"] == 1, info
    c.call("ingest", {"stream": stream, "run": run, "step": 1, "rank": 0, "end_step": True})
    info = wait_count(c, stream, run, 20)
    assert info["count"] == 20 and info["steps"]["pending_steps"] == 0, info
    assert info["steps"]["partial_steps"] == 0, info  # no step completed early
    return info


def a_clean_stop_keeps_pending_steps_and_a_restart_completes_them():
    """Issue 24 (one serializer): the saved stream carries its staging (the tSTG section). A
    clean stop completes no step early (the daemon before completed both pending steps at the
    stop, step 1 partial, and rank 1's rows for it came late); after the restart the steps wait
    on, a resent batch is a duplicate, and the state the steps lead to is byte for byte the
    state of a stream that never stopped."""
    d = Daemon()
    rng = np.random.default_rng(9)
    X = rng.standard_normal((5, D))
    c = d.client()
    staged_sequence(c, "r", X)
    before = c.call("info", {"stream": "r", "run": "job"})
    assert before["count"] == 0 and before["steps"]["pending_steps"] == 2, before
    c.close()
    assert d.stop(signal.SIGTERM) == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        info = c.call("info", {"stream": "r", "run": "job"})
        assert info["count"] == 0, info  # nothing completed at the stop
        assert info["steps"] == before["steps"], (info["steps"], before["steps"])
        assert info["config"]["world"] == 2 and info["config"]["step_timeout"] == 90, info
        assert c.call("stats")["staged_bytes"] == info["steps"]["staged_bytes"] > 0
        ack = send(c, "r", X + 1, run="job", step=1, rank=0, producer="p0", seq=2)
        assert ack.get("duplicate") is True, ack  # its staged copy came back with its seq
        finish_sequence(c, "r", X)
        staged_sequence(c, "ref", X)  # the same batches on a stream that never stopped
        finish_sequence(c, "ref", X)
        a = c.call("export", {"stream": "r", "run": "job"})["state"]
        b = c.call("export", {"stream": "ref", "run": "job"})["state"]
        assert a == b, "the restarted stream's state differs from one that never stopped"
        runs = {r["run"]: r for r in c.call("runs")["runs"]}
        assert runs["job"]["first_step"] == 0 and runs["job"]["last_step"] == 1, runs
        assert c.call("stats")["staged_bytes"] == 0
        c.close()
    finally:
        assert d2.stop() == 0


def staged_steps_travel_in_snapshots_and_exports():
    """A snapshot taken while steps wait carries them (a crash after it keeps them), and an
    export carries them into a stream a merge creates on another daemon, where the steps
    complete as they would have; merged into an existing stream they are refused with a
    sentence, and nothing changes."""
    d = Daemon()
    rng = np.random.default_rng(10)
    X = rng.standard_normal((5, D))
    c = d.client()
    staged_sequence(c, "r", X)
    c.call("snapshot")
    exported = c.call("export", {"stream": "r", "run": "job"})["state"]
    c.close()
    d.stop(signal.SIGKILL)
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        info = c.call("info", {"stream": "r", "run": "job"})
        assert info["count"] == 0 and info["steps"]["pending_steps"] == 2, info
        finish_sequence(c, "r", X)
        # into a new stream: the staging comes with it
        m = c.call("merge", {"stream": "moved", "run": "job", "state": exported})
        assert m["created"] is True and m["count"] == 0, m
        info = c.call("info", {"stream": "moved", "run": "job"})
        assert info["steps"]["pending_steps"] == 2 and info["config"]["world"] == 2, info
        ack = send(c, "moved", X + 1, run="job", step=1, rank=0, producer="p0", seq=2)
        assert ack.get("duplicate") is True, ack
        finish_sequence(c, "moved", X)
        a = c.call("export", {"stream": "r", "run": "job"})["state"]
        b = c.call("export", {"stream": "moved", "run": "job"})["state"]
        assert a == b
        # into an existing stream: refused, nothing changed
        c.call("create", {"stream": "have", "run": "job", "dim": D})
        send(c, "have", X, run="job")
        was = c.call("info", {"stream": "have", "run": "job"})
        e = expect("BAD_PARAM", c.call, "merge", {"stream": "have", "run": "job",
                                                  "state": exported})
        assert e.message == ("the state holds 3 staged batches of 2 pending steps (lowest 0): "
                             "they only start a new stream; flush the source before export"), e

        now = c.call("info", {"stream": "have", "run": "job"})
        assert now["count"] == was["count"] == 5 and now.get("steps") == was.get("steps"), now
        c.close()
    finally:
        assert d2.stop() == 0


def crc32c(data):
    """CRC-32C (Castagnoli, reflected), the saved state's trailer (docs/STATE.md)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def sections(state):
    """The saved state's sections as [(tag, payload)] (header and trailer checked)."""
    assert state[:8] == b"EWSTATE\0"
    o, out = 16, []
    while True:
        tag, n = struct.unpack_from("<4sQ", state, o)
        o += 12
        if tag == b"END\0":
            return state[:16], out
        out.append((tag, state[o:o + n]))
        o += n


def rebuild(head, secs):
    body = head + b"".join(struct.pack("<4sQ", t, len(p)) + p for t, p in secs) + \
        struct.pack("<4sQ", b"END\0", 0)
    return body + struct.pack("<I", crc32c(body))


def hostile_staged_sections_are_refused_and_change_nothing():
    """A tSTG section that is not one (checksum recomputed, so only the section is wrong) is
    BAD_STATE with its sentence, no stream is created, and a batch that claims more rows than the
    bytes hold allocates nothing (RSS checked)."""
    d = Daemon()
    try:
        c = d.client()
        X = np.random.default_rng(11).standard_normal((5, D))
        staged_sequence(c, "src", X)
        head, secs = sections(c.call("export", {"stream": "src", "run": "job"})["state"])
        tags = [t for t, _ in secs]
        assert tags[-2:] == [b"tRUN", b"tSTG"], tags
        stg = secs[-1][1]
        world, dim = struct.unpack_from("<II", stg, 0)
        assert (world, dim) == (2, D)
        first_batch = 8 + 2 * 17 + 16 + 4 + 12  # header, ranks, counters, count, step header
        bad = {
            "world": struct.pack("<I", 3) + stg[4:],
            "dim": stg[:4] + struct.pack("<I", D + 1) + stg[8:],
            "rank": stg[:first_batch] + struct.pack("<I", 2) + stg[first_batch + 4:],
            "truncated": stg[:-1],
            "trailing": stg + b"\0",
            "huge_rows": stg[:first_batch + 4 + 1 + 2 + 8 + 1] + struct.pack("<Q", 1 << 60) +
            stg[first_batch + 4 + 1 + 2 + 8 + 1 + 8:],
        }
        order = secs[:-2] + [secs[-1], secs[-2]]  # tSTG before tRUN
        rss0 = d.rss_kib()
        for why, payload in list(bad.items()) + [("order", None)]:
            state = rebuild(head, order if payload is None else secs[:-1] + [(b"tSTG", payload)])
            e = expect("BAD_STATE", c.call, "merge", {"stream": "dst", "run": "job",
                                                      "state": state})
            assert "the staged steps (tSTG section) are not valid: corrupt" in e.message, \
                (why, e.message)
            assert "dst" not in [s["stream"] for s in c.call("list", {"run": "job"})["streams"]]
        assert d.rss_kib() - rss0 < 64 * 1024, (rss0, d.rss_kib())  # 64 MiB: no 2^60-row buffer
        c.close()
    finally:
        assert d.stop() == 0


def bad_step_fields_change_nothing():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "s", "dim": D, "world": 2})
        X = np.ones((2, D))
        send(c, "s", X, step=0, rank=0, producer="p", seq=5)
        before = c.call("info", {"stream": "s"})
        cases = [
            ("BAD_PARAM", {"step": 1, "rank": 2}, "rank 2 is not below the stream's world 2"),
            ("BAD_PARAM", {"step": 1, "world": 4}, "stream 's' has world 2; this batch says 4"),
            ("BAD_REQUEST", {"rank": 1}, "'rank' needs 'step'"),
            ("BAD_REQUEST", {"end_step": True}, "'end_step' needs 'step'"),
            ("BAD_REQUEST", {"step": 1, "world": 0}, "'world' must be an integer between 1"),
            ("BAD_REQUEST", {"step": 1, "rank": 3, "world": 3}, "'rank' 3 is not below 'world' 3"),
            ("BAD_REQUEST", {"producer": "x" * 65, "seq": 1}, "at most 64 bytes (it has 65)"),
            ("BAD_REQUEST", {"seq": 1}, "'producer' and 'seq' go together"),
            ("BAD_REQUEST", {"step": -1}, "'step' must be an integer >= 0"),
        ]
        for code, kw, msg in cases:
            e = expect(code, send, c, "s", X, **kw)
            assert msg in e.message, (kw, e.message)
        bad = X.copy()
        bad[1, 2] = np.nan
        e = expect("NON_FINITE", send, c, "s", bad, step=1, rank=1, producer="p", seq=6)
        after = c.call("info", {"stream": "s"})
        assert after["count"] == before["count"] and after["steps"] == before["steps"], \
            (before, after)
        assert c.call("stats")["staged_bytes"] == before["steps"]["staged_bytes"]
        # the refused seq was given back: the corrected batch with the same seq is taken
        ack = send(c, "s", X, step=1, rank=1, producer="p", seq=6)
        assert "duplicate" not in ack, ack
        # an end-of-step marker for a stream that does not exist creates nothing
        e = expect("NO_SUCH_STREAM", c.call, "ingest", {"stream": "nope", "rows": [], "step": 0,
                                                         "end_step": True})
        assert not any(s["stream"] == "nope" for s in c.call("list")["streams"])
        # end-of-step markers complete steps without rows
        for r in (0, 1):
            ack = c.call("ingest", {"stream": "s", "rows": [], "step": 1, "rank": r,
                                    "end_step": True})
            assert ack["accepted"] == 0 and ack["late"] is False, ack
        q = c.call("query", {"stream": "s", "metrics": "trace"})  # queued behind the rows
        info = c.call("info", {"stream": "s"})
        assert info["steps"]["last_step"] == 1 and q["count"] == 4, (q, info)
        c.close()
    finally:
        assert d.stop() == 0


def entropy_np(X):
    lam = np.clip(np.linalg.eigvalsh(np.cov(X.astype(np.float64).T, bias=True)), 0, None)
    p = lam[lam > 0] / lam.sum()
    return float(-(p * np.log(p)).sum())


def the_recent_view_is_the_default_for_training_streams():
    d = Daemon()
    rng = np.random.default_rng(21)
    try:
        c = d.client()
        # a stream a stepped ingest creates is recent, with a window at any d
        X = rng.standard_normal((8, 1100)).astype(np.float32)
        send(c, "wide", X, step=0)
        cfg = c.call("info", {"stream": "wide"})["config"]
        assert cfg["recent"] is True and cfg["window"] == 4096, cfg
        # recent: the default source is the window; "all" asks for every row
        c.call("create", {"stream": "rv", "dim": D, "recent": True, "window": 50})
        c.call("create", {"stream": "plain", "dim": D, "window": 50})
        rows = []
        for s_ in range(10):
            Y = (rng.standard_normal((10, D)) * (1 + (s_ > 6) * np.arange(D))).astype(np.float32)
            rows.append(Y)
            send(c, "rv", Y, step=s_)
            send(c, "plain", Y)
        c.call("flush", {"stream": "rv"})
        R = np.concatenate(rows)
        e = c.call("query", {"stream": "rv", "metrics": "entropy"})["metrics"]["entropy"]
        close(e, entropy_np(R[-50:]), "recent default = the window")
        e = c.call("query", {"stream": "rv", "metrics": "entropy", "source": "all"})
        close(e["metrics"]["entropy"], entropy_np(R), "source all = every row")
        e = c.call("query", {"stream": "plain", "metrics": "entropy"})["metrics"]["entropy"]
        close(e, entropy_np(R), "a stream that is not recent answers as in version 1")
        # window_steps: the rows of the last 3 completed steps
        c.call("create", {"stream": "ws", "run": "t", "dim": D, "window_steps": 3,
                          "window": 1000})
        blocks = [rng.standard_normal((n, D)).astype(np.float32) * (1 + i)
                  for i, n in enumerate((5, 7, 11, 13, 17))]
        for i, B in enumerate(blocks):
            send(c, "ws", B, run="t", step=i)
        # steps 0-3 completed (step 4 waits for a later step): the view is steps 1-3
        want = entropy_np(np.concatenate(blocks[1:4]))
        q = c.call("query", {"stream": "ws", "run": "t", "metrics": ["entropy", "trace"]})
        close(q["metrics"]["entropy"], want, "window_steps = 3 before the last step")
        c.call("flush", {"stream": "ws", "run": "t"})
        want = entropy_np(np.concatenate(blocks[2:5]))
        q = c.call("query", {"stream": "ws", "run": "t", "metrics": "entropy"})
        close(q["metrics"]["entropy"], want, "window_steps = 3 after the flush")
        expect("BAD_PARAM", c.call, "create", {"stream": "z", "dim": D, "recent": True,
                                               "window": 0})
        c.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        q = c.call("query", {"stream": "ws", "run": "t", "metrics": "entropy"})
        close(q["metrics"]["entropy"], want, "window_steps after a restart")
        cfg = c.call("info", {"stream": "ws", "run": "t"})["config"]
        assert cfg["window_steps"] == 3 and cfg["recent"] is True, cfg
        c.close()
    finally:
        assert d2.stop() == 0


def _cpu_s(d):
    """The daemon's CPU seconds (user + system) from /proc/PID/stat."""
    with open(f"/proc/{d.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _notify_all(c, stream, steps, rank, x):
    """One notification per step, all in one write: [2, "ingest", [{...}]] with one f32 row."""
    import msgpack
    data = np.asarray([[x]], dtype=np.float32).tobytes()
    buf = b"".join(msgpack.packb([2, "ingest", [{"stream": stream, "data": data, "dtype": "f32",
                                                 "shape": [1, 1], "step": s, "rank": rank}]],
                                 use_bin_type=True) for s in steps)
    c.send_raw(buf)


def _wait(fn, what, timeout=60):
    deadline = time.time() + timeout
    while not fn():
        assert time.time() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def many_pending_steps_cost_little_loop_cpu():
    """Issue 23 item 11: steps 0..59,999 from one rank of a world-2 stream (nothing completes by
    ranks), sent in two halves. The pending steps are indexed: each batch costs O(log P), so the
    second 30,000 batches cost about what the first did (bound: under 2x + 1 s; a walk of every
    pending step per batch measured 1.93 + 11.02 s here, the index 0.15 + 0.11 s, 2.49 + 0.74 s
    under ASan). CPU seconds of the daemon from /proc, not wall time, and a ratio, not a speed.
    A flush then completes all 60,000 in order."""
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "w", "dim": 1, "window": 0, "topk": 0, "world": 2,
                          "step_timeout": 3600})
        n = 60000
        cpu = [_cpu_s(d)]
        for lo, hi in ((0, n // 2), (n // 2, n)):
            _notify_all(c, "w", range(lo, hi), 0, 1.0)
            _wait(lambda: c.call("info", {"stream": "w"})["steps"]["pending_steps"] == hi,
                  f"{hi} pending steps", timeout=120)
            cpu.append(_cpu_s(d))
        first, second = cpu[1] - cpu[0], cpu[2] - cpu[1]
        print(f"# {n} pending steps: {first:.2f} + {second:.2f} s of daemon CPU")
        # a scaling check, not a speed bound: the second half (30,000 more pending steps behind
        # each batch) may not cost more than twice the first, with 1 s of slack for noise
        assert second < 2 * first + 1.0, f"the second half cost {second:.2f} s, the first {first:.2f}"
        assert c.call("flush", {"stream": "w"})["completed"] == n
        q = c.call("query", {"stream": "w", "metrics": "trace"})  # queued behind the rows
        info = c.call("info", {"stream": "w"})
        assert q["count"] == n and info["steps"]["pending_steps"] == 0, (q, info)
        assert info["steps"]["first_step"] == 0 and info["steps"]["last_step"] == n - 1, info
        c.close()
    finally:
        assert d.stop() == 0


def late_batches_count_their_entries_against_the_bound():
    """Issue 23 item 11: 200,000 one-float late batches with max_staged_bytes = 1 MiB. Each staged
    batch costs its payload (4 bytes) plus its entry, allocations and the job it becomes (~700
    bytes), and that is what the bound counts: staging passes 1 MiB after ~1,500 of them, which
    then go to the stream; counting payload only (800 KB in all) kept all 200,000 staged.
    Bounds: staged bytes at most 1 MiB + one entry; at least 190,000 rows applied before any
    flush; RSS grows by at most 12 MiB (measured +31 MB when every entry stayed)."""
    d = Daemon(config="max_staged_bytes = 1M\n")
    try:
        c = d.client()
        c.call("create", {"stream": "l", "dim": 1, "window": 0, "topk": 0, "world": 2,
                          "step_timeout": 3600})
        send(c, "l", np.ones((1, 1)), step=5, rank=0)  # pending: rank 1 never sends
        rss0 = d.rss_kib()
        n = 200000
        before = c.call("stats")["late_batches"]
        for k in range(0, n, 2000):  # in writes of 2,000, each taken before the next
            _notify_all(c, "l", [3] * 2000, 0, 2.0)  # below rank 0's latest step: late
            _wait(lambda: c.call("stats")["late_batches"] - before == k + 2000,
                  f"{k + 2000} late batches", timeout=120)
        try:  # queued behind the rows
            applied = c.call("query", {"stream": "l", "metrics": "trace"})["count"]
        except RpcError as e:
            assert e.code == "DEGENERATE", e
            applied = 0
        st = c.call("stats")  # the rows completed are applied: what remains is what waits
        grew = d.rss_kib() - rss0
        print(f"# staged {st['staged_bytes']} bytes, applied {applied} rows, RSS +{grew} KiB")
        assert st["staged_bytes"] <= (1 << 20) + 4096, st["staged_bytes"]
        assert applied >= 190000, f"only {applied} of {n + 1} rows applied"
        assert os.environ.get("EWD_ASAN") or grew < 12 * 1024, f"RSS grew {grew} KiB"
        c.call("flush", {"stream": "l"})
        assert c.call("query", {"stream": "l", "metrics": "trace"})["count"] == n + 1
        c.close()
    finally:
        assert d.stop() == 0


def one_ranks_end_never_cuts_another_short():
    """flush {end: true, rank}: one rank's run is over. The stream is marked ended, but its
    pending step is not forced — it completes, whole, when the other rank ends it — and rows that
    come after the mark end it no more (the run goes on) until that rank's own end. Without
    `rank` every pending step completes now (partial). `rank` without `end`, and a rank not below
    world, are BAD_PARAM and change nothing."""
    d = Daemon()
    try:
        c = d.client()
        X = np.random.default_rng(3).standard_normal((8, 4)).astype(np.float32)
        c.call("create", {"stream": "e", "dim": 4, "world": 2})
        send(c, "e", X[:4], step=0, rank=0, world=2, end_step=True)
        r = c.call("flush", {"stream": "e", "end": True, "rank": 0})
        assert r["completed"] == 0 and r["ended"] is True, r
        st = c.call("info", {"stream": "e"})["steps"]
        assert st["pending_steps"] == 1 and st.get("ended") is True, st
        for params, word in (({"rank": 1}, "'rank' goes with 'end'"),
                             ({"rank": 2, "end": True}, "not below the stream's world 2")):
            try:
                c.call("flush", dict(params, stream="e"))
            except RpcError as e:
                assert e.code == "BAD_PARAM" and word in e.message, (e.code, e.message)
            else:
                raise AssertionError(f"flush {params} taken")
        assert c.call("info", {"stream": "e"})["steps"]["pending_steps"] == 1
        send(c, "e", X[4:], step=0, rank=1, world=2, end_step=True)  # the other rank's last rows
        wait_count(c, "e", "default", 8)
        st = c.call("info", {"stream": "e"})["steps"]
        assert st["last_step"] == 0 and st["partial_steps"] == 0 and st["pending_steps"] == 0, st
        assert "ended" not in st, st  # rows came again: the run goes on until rank 1 ends it
        assert c.call("flush", {"stream": "e", "end": True, "rank": 1})["ended"] is True
        # without rank: the old meaning, every pending step now
        send(c, "e", X[:4], step=1, rank=0, world=2)
        r = c.call("flush", {"stream": "e", "end": True})
        assert r["completed"] == 1 and r["ended"] is True, r
        assert c.call("info", {"stream": "e"})["steps"]["partial_steps"] == 1
    finally:
        d.stop()


def main():
    t = Tap()
    t.case("one_ranks_end_never_cuts_another_short", one_ranks_end_never_cuts_another_short)
    t.case("four_ranks_shuffled_with_late_and_duplicates",
           four_ranks_shuffled_with_late_and_duplicates)
    t.case("a_rank_that_never_sends_gives_partial_steps_after_the_timeout",
           a_rank_that_never_sends_gives_partial_steps_after_the_timeout)
    t.case("staging_is_bounded_and_loses_nothing", staging_is_bounded_and_loses_nothing)
    t.case("many_pending_steps_cost_little_loop_cpu", many_pending_steps_cost_little_loop_cpu)
    t.case("late_batches_count_their_entries_against_the_bound",
           late_batches_count_their_entries_against_the_bound)
    t.case("a_clean_stop_keeps_pending_steps_and_a_restart_completes_them",
           a_clean_stop_keeps_pending_steps_and_a_restart_completes_them)
    t.case("staged_steps_travel_in_snapshots_and_exports",
           staged_steps_travel_in_snapshots_and_exports)
    t.case("hostile_staged_sections_are_refused_and_change_nothing",
           hostile_staged_sections_are_refused_and_change_nothing)
    t.case("bad_step_fields_change_nothing", bad_step_fields_change_nothing)
    t.case("the_recent_view_is_the_default_for_training_streams",
           the_recent_view_is_the_default_for_training_streams)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
