"""eigenwatch.rl: the token and stats streams' messages, byte by byte, against a recording stand-in
for the daemon (tokens-wire contract: the stream declared with its kind before its first batch;
each column in its dtype in the declared order; mask u8; lengths u32; one message per log() with
producer and seq, resent as it was after a break); the device path (non-blocking copy into host
memory, one event, waited on by the Sender's thread, never a synchronising call on the training
thread); fail-open with no daemon (log() returns at once, drops counted as tokens); bad arguments
raise ValueError at log(). What the daemon makes of the messages is test_rl_daemon.py's."""
import os
import socket
import sys
import tempfile
import threading
import time

import msgpack
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "numeric")]
import eigenwatch.rl as rl  # noqa: E402
import eigenwatch.torch as ewt  # noqa: E402
from eigenwatch import Sender, StatsStream, TokenStream  # noqa: E402
from taplib import Tap  # noqa: E402


class Recorder:
    """A stand-in daemon on a Unix socket: records every request (connection number, method,
    params) and answers as the daemon does. cut_first_ingest: the first connection is closed
    on its first ingest, unanswered (a break before the acknowledgement)."""

    def __init__(self, path=None, cut_first_ingest=False):
        self.path = path or os.path.join(tempfile.mkdtemp(prefix="ew-rl-"), "s.sock")
        self.cut = cut_first_ingest
        self.got, self.conns = [], 0
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(8)
        self.address = "unix:" + self.path
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, conn):
        up = msgpack.Unpacker(raw=False)
        try:
            while True:
                data = c.recv(1 << 16)
                if not data:
                    return
                up.feed(data)
                for _kind, msgid, method, params in up:
                    p = params[0] if params else {}
                    with self.lock:
                        self.got.append((conn, method, p))
                    if method == "ingest" and self.cut and conn == 1:
                        c.close()
                        return
                    reply = {"stream": p.get("stream")}
                    if method == "ingest":
                        reply.update(accepted=0, count=0, step=p.get("step"), late=False)
                    c.sendall(msgpack.packb([1, msgid, None, reply], use_bin_type=True))
        except OSError:
            return

    def requests(self, method=None, stream=None):
        with self.lock:
            return [(conn, m, p) for conn, m, p in self.got if (method is None or m == method)
                    and (stream is None or p.get("stream") == stream)]

    def close(self):
        self.lsock.close()


def col(f, name):
    """A column of an ingest as numpy: the raw words for bf16."""
    c = f["columns"][name]
    dt = {"f32": "<f4", "f64": "<f8", "f16": "<f2", "bf16": "<u2"}[c["dtype"]]
    return c["dtype"], np.frombuffer(c["data"], dt)


def bf16_words(t):
    return t.detach().reshape(-1).view(torch.int16).numpy().view(np.uint16)


def tokens_log_sends_each_column_in_its_dtype_with_mask_and_lengths():
    r = Recorder()
    s = Sender(r.address)
    cols = ("entropy", "logp", "advantage", "ratio")
    ts = TokenStream("exp", "pol", columns=cols, world=4, rank=2, window_steps=3,
                     eval=["token_mean", {"metric": "quantile", "as": "p9",
                                          "params": {"level": 0.9}}],
                     rules=[{"metric": "token_mean", "below": 0.1}], sender=s)
    g = torch.Generator().manual_seed(0)
    ent = torch.rand(2, 5, generator=g)                         # f32, (batch, tokens)
    logp = -np.random.default_rng(1).random(10)                  # numpy f64
    adv = torch.randn(10, generator=g).to(torch.bfloat16)        # raw 2-byte words
    ratio = torch.arange(10).reshape(5, 2)                       # int64 -> f32
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert ts.log(7, ratio=ratio, advantage=adv, logp=logp, entropy=ent, mask=mask,
                  lengths=[3, 7]) is True
    ent16 = np.linspace(0, 1, 4, dtype=np.float16)
    assert ts.log(8, entropy=ent16, logp=np.zeros(4, np.float32), advantage=np.ones(4, ">f8"),
                  ratio=np.array([True, False, True, True])) is True
    assert s.flush(10), s.stats()
    creates, ingests = r.requests("create"), r.requests("ingest")
    assert [m for _c, m, _p in r.got] == ["create", "ingest", "ingest"], r.got
    assert creates[0][2] == {"stream": "pol", "run": "exp", "kind": "tokens", "columns": list(cols),
                             "world": 4, "window_steps": 3,
                             "eval": [{"metric": "token_mean"},
                                      {"metric": "quantile", "as": "p9", "params": {"level": 0.9}}],
                             "rules": [{"metric": "token_mean", "below": 0.1}]}, creates
    f = ingests[0][2]
    assert list(f["columns"]) == list(cols), f"wire order {list(f['columns'])}: the declared one"
    assert (f["stream"], f["run"], f["step"], f["rank"], f["world"]) == ("pol", "exp", 7, 2, 4), f
    assert f["producer"] == s.producer and f["seq"] == 1, f
    dt, v = col(f, "entropy")
    assert dt == "f32" and np.array_equal(v, ent.numpy().ravel()), (dt, v)
    dt, v = col(f, "logp")
    assert dt == "f64" and np.array_equal(v, logp), dt
    dt, v = col(f, "advantage")
    assert dt == "bf16" and np.array_equal(v, bf16_words(adv)), dt
    dt, v = col(f, "ratio")
    assert dt == "f32" and np.array_equal(v, np.arange(10, dtype=np.float32)), (dt, v)
    assert f["mask"] == bytes([1, 1, 1, 0, 0, 1, 1, 1, 1, 0]), f["mask"]
    assert np.array_equal(np.frombuffer(f["lengths"], "<u4"), [3, 7]), f["lengths"]
    f = ingests[1][2]
    assert f["seq"] == 2 and f["step"] == 8 and "mask" not in f and "lengths" not in f, f
    assert col(f, "entropy")[0] == "f16" and np.array_equal(col(f, "entropy")[1], ent16)
    assert col(f, "logp")[0] == "f32"
    dt, v = col(f, "advantage")  # big-endian f64 goes little-endian
    assert dt == "f64" and np.array_equal(v, np.ones(4)), (dt, v)
    assert np.array_equal(col(f, "ratio")[1], [1, 0, 1, 1]), col(f, "ratio")
    st = s.stats()
    assert st.sent_batches == 2 and st.sent_rows == 14 and st.rejected_batches == 0, st
    ts.close()
    s.close()
    r.close()


def each_log_is_one_message_never_joined():
    """Batches of one stream, step and rank stay apart (rows of matrix streams are joined): seq
    1, 2, 3 with their own tokens; rows for another stream in between are unaffected."""
    r = Recorder()
    s = Sender(r.address, linger=0.2)
    ts = TokenStream(None, "ent", sender=s)
    xs = [np.arange(k, dtype=np.float32) for k in (3, 5, 2)]
    ts.log(0, entropy=xs[0])
    s.send("rows", np.ones((2, 4), np.float32), step=0)
    ts.log(0, entropy=xs[1])
    ts.log(0, entropy=xs[2])
    assert s.flush(10), s.stats()
    ing = [p for _c, _m, p in r.requests("ingest", "ent")]
    assert [p["seq"] for p in ing] == [1, 2, 3], ing
    for p, x in zip(ing, xs):
        assert np.array_equal(col(p, "entropy")[1], x) and "run" not in p, p
    rows = r.requests("ingest", "rows")
    assert len(rows) == 1 and rows[0][2]["shape"] == [2, 4], rows
    assert s.stats().sent_rows == 10 + 2, s.stats()
    s.close()
    r.close()


def stats_log_sends_values_and_counts():
    r = Recorder()
    s = Sender(r.address)
    ss = StatsStream("exp", "heads", shape=(3, 4), reduce="max", sender=s)
    vals = torch.rand(3, 4, generator=torch.Generator().manual_seed(3))
    counts = torch.tensor([[1 << 25, 1, 2, 3]] * 3, dtype=torch.int32)  # beyond f32's integers
    ss.log(0, vals, counts=counts)
    flat = np.linspace(0, 1, 12).astype(np.float16)
    ss.log(1, flat)
    assert s.flush(10), s.stats()
    assert r.requests("create")[0][2] == {"stream": "heads", "run": "exp", "kind": "stats",
                                          "shape": [3, 4], "reduce": "max", "world": 1}
    a, b = [p for _c, _m, p in r.requests("ingest")]
    assert a["values"]["dtype"] == "f32" and (a["step"], a["rank"], a["world"]) == (0, 0, 1), a
    assert np.array_equal(np.frombuffer(a["values"]["data"], "<f4"), vals.numpy().ravel())
    assert a["counts"]["dtype"] == "f64", a["counts"]["dtype"]
    assert np.array_equal(np.frombuffer(a["counts"]["data"], "<f8"), counts.numpy().ravel())
    assert b["values"]["dtype"] == "f16" and "counts" not in b and b["seq"] == 2, b
    assert np.array_equal(np.frombuffer(b["values"]["data"], "<f2"), flat)
    st = s.stats()
    assert st.sent_batches == 2 and st.sent_rows == 2, st  # a stats batch counts one row
    s.close()
    r.close()


def rank_and_world_default_to_torch_distributed():
    s = Sender("unix:/nonexistent/ew.sock", flush_on_exit=0)
    ts = TokenStream(None, "d", sender=s)
    assert (ts.rank, ts.world) == (0, 1), (ts.rank, ts.world)
    real = ewt._distributed
    ewt._distributed = lambda: (3, 8)
    try:
        ts = TokenStream(None, "d", sender=s)
        assert (ts.rank, ts.world) == (3, 8), (ts.rank, ts.world)
        assert s._declared[(None, "d")]["world"] == 8
        ts = StatsStream(None, "d2", 4, sender=s, rank=1)
        assert (ts.rank, ts.world) == (1, 8), (ts.rank, ts.world)
    finally:
        ewt._distributed = real
    s.close(0.1)


def a_host_batch_is_copied_at_log_and_never_touches_the_device_path():
    def boom(*_a):
        raise AssertionError("the device path was taken for host data")
    real = rl._pinned_copy, rl._record_event
    rl._pinned_copy = rl._record_event = boom
    r = Recorder()
    s = Sender(r.address, linger=0.2)
    try:
        ts = TokenStream(None, "cp", columns=("entropy", "logp"), sender=s)
        ent, logp = torch.ones(6), np.full(6, -1.0)
        ts.log(0, entropy=ent, logp=logp, mask=torch.ones(6), lengths=torch.tensor([6]))
        ent.fill_(5.0)  # the caller reuses its buffers at once
        logp[:] = 9.0
        assert s.flush(10), s.stats()
        f = r.requests("ingest")[0][2]
        assert np.array_equal(col(f, "entropy")[1], np.ones(6)), col(f, "entropy")
        assert np.array_equal(col(f, "logp")[1], np.full(6, -1.0)), col(f, "logp")
    finally:
        rl._pinned_copy, rl._record_event = real
        s.close()
        r.close()


class Spy:
    """Records the synchronising calls (Tensor.item/cpu/tolist/numpy, cuda.synchronize) made
    on each thread while installed."""
    NAMES = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__")

    def __init__(self):
        self.calls = []

    def __enter__(self):
        self.saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}
        self.sync = torch.cuda.synchronize
        for n in self.NAMES:
            setattr(torch.Tensor, n, self._wrap(n, self.saved[n]))
        torch.cuda.synchronize = self._wrap("cuda.synchronize", self.sync)
        return self

    def _wrap(self, name, fn):
        def w(*a, **kw):
            self.calls.append((threading.current_thread().name, name))
            return fn(*a, **kw)
        return w

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch.Tensor, n, f)
        torch.cuda.synchronize = self.sync


class FakeEvent:
    """Stands for the CUDA event: says which thread waited on it, and when."""

    def __init__(self, log, device):
        self.log, self.device = log, device

    def synchronize(self):
        self.log.append(("synchronize", threading.current_thread().name, self.device))


def device_path(log):
    """Takes the device path for CPU tensors (there is no GPU here): the real non-blocking copy
    into a host tensor (unpinned: pinning needs CUDA), the event a FakeEvent."""
    def pinned(t):
        log.append(("copy", threading.current_thread().name, t.dtype, tuple(t.shape)))
        host = torch.empty(t.shape, dtype=t.dtype)
        host.copy_(t, non_blocking=True)
        return host

    def event(device):
        log.append(("record", threading.current_thread().name, str(device)))
        return FakeEvent(log, str(device))
    saved = rl._on_device, rl._pinned_copy, rl._record_event
    rl._on_device, rl._pinned_copy, rl._record_event = (lambda t: True), pinned, event
    return saved


def the_device_path_copies_without_waiting_and_the_sender_waits():
    log = []
    saved = device_path(log)
    r = Recorder()
    s = Sender(r.address)
    try:
        ts = TokenStream(None, "dev", columns=("entropy", "logp"), sender=s)
        ent = torch.rand(4, 3, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
        logp = torch.arange(12, dtype=torch.int32)
        mask = torch.tensor([True] * 10 + [False] * 2)
        with Spy() as spy:
            ts.log(5, entropy=ent, logp=logp, mask=mask, lengths=torch.tensor([4, 8]))
            main = [c for c in spy.calls if c[0] == threading.current_thread().name]
            assert s.flush(10), s.stats()
        assert main == [], f"synchronising calls on the training thread: {main}"
        me = threading.current_thread().name
        assert log[:5] == [("copy", me, torch.bfloat16, (12,)), ("copy", me, torch.float32, (12,)),
                           ("copy", me, torch.uint8, (12,)), ("copy", me, torch.int64, (2,)),
                           ("record", me, "cpu")], log
        assert log[5:] == [("synchronize", "eigenwatch-sender", "cpu")], log
        f = r.requests("ingest")[0][2]
        assert col(f, "entropy")[0] == "bf16" and np.array_equal(col(f, "entropy")[1],
                                                                 bf16_words(ent))
        assert col(f, "logp")[0] == "f32" and np.array_equal(col(f, "logp")[1], np.arange(12))
        assert f["mask"] == bytes([1] * 10 + [0, 0])
        assert np.array_equal(np.frombuffer(f["lengths"], "<u4"), [4, 8])
        # stats take the same path
        del log[:]
        StatsStream(None, "devs", 3, sender=s).log(0, torch.ones(3), counts=torch.ones(3))
        assert [e[0] for e in log[:3]] == ["copy", "copy", "record"], log
        assert s.flush(10) and s.stats().rejected_batches == 0, s.stats()
    finally:
        rl._on_device, rl._pinned_copy, rl._record_event = saved
        s.close()
        r.close()


def device_lengths_that_do_not_add_up_are_rejected_on_the_sender_thread():
    log = []
    saved = device_path(log)
    r = Recorder()
    s = Sender(r.address)
    try:
        ts = TokenStream(None, "devl", sender=s)
        assert ts.log(0, entropy=torch.ones(5), lengths=torch.tensor([2, 2])) is True
        ts.log(1, entropy=torch.ones(5), lengths=torch.tensor([2, 3]))
        assert s.flush(10), s.stats()
        st = s.stats()
        assert st.rejected_batches == 1 and st.rejected_rows == 5, st
        assert "lengths sum to 4, not to the 5 tokens" in st.last_error, st.last_error
        ing = r.requests("ingest")
        assert [(p["step"], p["seq"]) for _c, _m, p in ing] == [(1, 1)], ing
    finally:
        rl._on_device, rl._pinned_copy, rl._record_event = saved
        s.close()
        r.close()


def fail_open_without_a_daemon_then_the_drops_reach_it():
    path = os.path.join(tempfile.mkdtemp(prefix="ew-rl-"), "s.sock")
    s = Sender("unix:" + path, max_queue=20, backoff_max=0.2)
    ts = TokenStream("exp", "fo", columns=("entropy", "logp"), sender=s)
    ss = StatsStream("exp", "fos", 8, sender=s)
    x = torch.rand(1000)
    worst = 0.0
    for step in range(100):
        t0 = time.perf_counter()
        assert ts.log(step, entropy=x, logp=x, mask=x > 0.5) is True  # "oldest": always queued
        assert ss.log(step, torch.ones(8)) is True
        worst = max(worst, time.perf_counter() - t0)
    for _ in range(200):
        if s.stats().connect_failures:
            break
        time.sleep(0.01)
    st = s.stats()
    # log() must not wait for the daemon: the Sender's thread backs off 0.2 s between connect
    # attempts here, so a log() that waited on it would take that long; a GIL hand-over under a
    # loaded sanitizer build took 25 ms once (the 20 ms bound this had was a timing test)
    print(f"# slowest log() with the daemon down: {worst * 1e3:.2f} ms")
    assert worst < 0.1, f"a log() took {worst * 1e3:.1f} ms with the daemon down"
    assert st.dropped_batches == 180 and st.connect_failures >= 1, st
    # the newest 20 queued batches alternate tokens/stats: 90 token batches dropped of 1000
    assert st.dropped_rows == 90 * 1000 + 90, st
    r = Recorder(path)
    try:
        assert s.flush(20), s.stats()
        got = [(m, p.get("stream")) for _c, m, p in r.got]
        assert got[:2] == [("create", "fo"), ("ingest", "fo")], got  # declared before its batch
        first = r.requests("ingest", "fo")[0][2]
        assert (first["dropped_rows"], first["dropped_batches"]) == (90000, 90), first
        assert s.stats().sent_batches == 20, s.stats()
    finally:
        s.close()
        r.close()


def bad_arguments_raise_value_error_at_log():
    s = Sender("unix:/nonexistent/ew.sock", flush_on_exit=0)
    ts = TokenStream(None, "bad", columns=("entropy", "logp"), sender=s)
    ss = StatsStream(None, "bads", (2, 3), sender=s)
    x5, x4 = torch.ones(5), np.ones(4)
    cases = [
        ("undeclared column", lambda: ts.log(0, entropy=x5, logp=x5, advantage=x5),
         "not declared: ['advantage']"),
        ("missing column", lambda: ts.log(0, entropy=x5), "missing: ['logp']"),
        ("columns of different lengths", lambda: ts.log(0, entropy=x5, logp=x4),
         "columns differ in length: {'entropy': 5, 'logp': 4}"),
        ("mask not n long", lambda: ts.log(0, entropy=x5, logp=x5, mask=np.ones(4)),
         "mask has 4 values for 5 tokens"),
        ("lengths not summing to n", lambda: ts.log(0, entropy=x5, logp=x5, lengths=[2, 2]),
         "lengths sum to 4, not to the 5 tokens"),
        ("negative lengths", lambda: ts.log(0, entropy=x5, logp=x5, lengths=[6, -1]),
         "between 0 and 2^32 - 1"),
        ("fractional lengths", lambda: ts.log(0, entropy=x5, logp=x5, lengths=[2.5, 2.5]),
         "lengths must be integers"),
        ("text column", lambda: ts.log(0, entropy=np.array(list("abcde")), logp=x5),
         "entropy must be numeric"),
        ("negative step", lambda: ts.log(-1, entropy=x5, logp=x5), "step -1"),
        ("stats of another shape", lambda: ss.log(0, np.ones((3, 2))), "values has shape [3, 2]"),
        ("stats counts of too few cells", lambda: ss.log(0, np.ones(6), counts=np.ones(5)),
         "counts has shape [5]"),
        ("an uppercase column", lambda: TokenStream(None, "x", columns=("Entropy",), sender=s),
         "column names ['Entropy']"),
        ("a repeated column", lambda: TokenStream(None, "x", columns=("a", "a"), sender=s),
         "distinct"),
        ("nine columns", lambda: TokenStream(None, "x", columns=[f"c{i}" for i in range(9)],
                                             sender=s), "1 to 8"),
        ("a column named like an argument",
         lambda: TokenStream(None, "x", columns=("mask",), sender=s), "log()'s own arguments"),
        ("rank outside world", lambda: TokenStream(None, "x", rank=2, world=2, sender=s),
         "rank 2 of world 2"),
        ("too many cells", lambda: StatsStream(None, "x", (300, 300), sender=s), "65536"),
        ("three-dimensional stats", lambda: StatsStream(None, "x", (2, 2, 2), sender=s),
         "[L] or [L, H]"),
        ("unknown reduce", lambda: StatsStream(None, "x", 4, reduce="median", sender=s),
         "reduce 'median'"),
    ]
    for what, fn, says in cases:
        try:
            fn()
        except ValueError as e:
            assert says in str(e), f"{what}: {e}"
        else:
            raise AssertionError(f"{what}: no ValueError")
    st = s.stats()
    assert st.queued == 0 and st.dropped_batches == 0, f"a refused log() queued something: {st}"
    s.close(0.1)


def a_break_resends_the_batch_as_it_was_after_creating_again():
    r = Recorder(cut_first_ingest=True)
    s = Sender(r.address, backoff_max=0.1)
    try:
        ts = TokenStream("exp", "rs", columns=("entropy", "logp"), sender=s)
        ts.log(3, entropy=torch.arange(4.0), logp=-torch.arange(4.0), lengths=[1, 3])
        assert s.flush(20), s.stats()
        got = [(c, m) for c, m, _p in r.got]
        assert got == [(1, "create"), (1, "ingest"), (2, "create"), (2, "ingest")], got
        a, b = r.requests("ingest")
        assert a[2] == b[2] and b[2]["seq"] == 1, (a, b)  # the same message, the same seq
        st = s.stats()
        assert st.reconnects == 1 and st.sent_batches == 1 and st.sent_rows == 4, st
    finally:
        s.close()
        r.close()


def main():
    t = Tap()
    t.case("tokens_log_sends_each_column_in_its_dtype_with_mask_and_lengths",
           tokens_log_sends_each_column_in_its_dtype_with_mask_and_lengths)
    t.case("each_log_is_one_message_never_joined", each_log_is_one_message_never_joined)
    t.case("stats_log_sends_values_and_counts", stats_log_sends_values_and_counts)
    t.case("rank_and_world_default_to_torch_distributed", rank_and_world_default_to_torch_distributed)
    t.case("a_host_batch_is_copied_at_log_and_never_touches_the_device_path",
           a_host_batch_is_copied_at_log_and_never_touches_the_device_path)
    t.case("the_device_path_copies_without_waiting_and_the_sender_waits",
           the_device_path_copies_without_waiting_and_the_sender_waits)
    t.case("device_lengths_that_do_not_add_up_are_rejected_on_the_sender_thread",
           device_lengths_that_do_not_add_up_are_rejected_on_the_sender_thread)
    t.case("fail_open_without_a_daemon_then_the_drops_reach_it",
           fail_open_without_a_daemon_then_the_drops_reach_it)
    t.case("bad_arguments_raise_value_error_at_log", bad_arguments_raise_value_error_at_log)
    t.case("a_break_resends_the_batch_as_it_was_after_creating_again",
           a_break_resends_the_batch_as_it_was_after_creating_again)
    t.done()


if __name__ == "__main__":
    main()
