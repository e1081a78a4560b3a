"""The Python package's paired-stream API against a real daemon, compared with the numpy statement
(tests/numeric/kernel_ref.py):

- Client.ingest_pairs (numpy f32 x with f64 y, f16 with f16, notify=True, run=) + Client.query:
  sce and sce_text equal kernel_ref on the values as sent at 1e-9; Client.nullify returns a
  writable numpy float64 (n, dy) array equal to kernel_ref.nullify at 1e-10 (of max|y|); 0 rows
  give (0, dy); x and y of different rows raise ValueError before anything is sent; nullify of an
  rff stream raises EigenwatchError BAD_PARAM.
- eigenwatch.PairedStream(run, stream, dims=..., address=...).log(step, x, y) for 4 steps, then
  .close(): the daemon's history (Client.history) has sce and sce_text per step equal to numpy on
  the union up to each step (1e-9). ValueError, with nothing sent, for x of the wrong dx, x and y
  of different rows (at log), features "rff" without sigma, rff with unequal dims, an unknown
  features name and dims not two (at construction: no stream created). An rff PairedStream
  creates its stream with features rff and its sigma.
- eigenwatch.Pairs through a Sender (declare, then Sender.send(stream, Pairs(x, y))) lands: count
  and sce equal numpy; Pairs of x and y with different rows are counted rejected (never raised);
  Pairs to an undeclared unknown stream are rejected and create nothing.
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration"),
                os.path.join(ROOT, "tests", "numeric")]
import kernel_ref as ref  # noqa: E402
from eigenwatch import Client, EigenwatchError, PairedStream, Pairs, Sender  # noqa: E402
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

D = None


def rel(a, b):
    return abs(a - b) / abs(b)


def want_close(got, want, tol, what):
    assert rel(got, want) <= tol, f"{what}: got {got!r}, want {want!r} (rel {rel(got, want):.3e})"


def expect(code, words, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except EigenwatchError as e:
        assert e.code == code and words in e.message, (e.code, e.message)
        return e
    raise AssertionError(f"expected {code}")


def raises_value_error(words, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ValueError as e:
        assert words in str(e), f"{words!r} not in {e}"
        return e
    raise AssertionError(f"expected ValueError ({words})")


def draw(rng, n, dx, dy, B=None, noise=0.3):
    x = rng.standard_normal((n, dx))
    B = rng.standard_normal((dx, dy)) * 0.5 if B is None else B
    return x, x @ B + noise * rng.standard_normal((n, dy))


def w(a):
    """The values a numpy array carries, widened to float64 (what the daemon reads)."""
    return np.asarray(a).astype(np.float64)


def names(c, run=None):
    return sorted(s.stream for s in c.list(run=run))


def client_ingest_pairs_query_nullify():
    rng = np.random.default_rng(11)
    dx, dy = 5, 4
    B = rng.standard_normal((dx, dy)) * 0.5
    with Client(D.unix) as c:
        r = c.create("cp", dx + dy, kind="paired", dims=[dx, dy])
        assert r["created"] is True and r["config"]["dims"] == [dx, dy], r
        xs, ys = [], []
        x, y = draw(rng, 80, dx, dy, B)
        x, y = x.astype(np.float32), y.astype(np.float64)
        ir = c.ingest_pairs("cp", x, y)
        assert ir.accepted == 80 and ir.count == 80, ir
        xs.append(w(x)), ys.append(w(y))
        x, y = draw(rng, 60, dx, dy, B)
        x, y = x.astype(np.float16), y.astype(np.float16)
        assert c.ingest_pairs("cp", x, y, notify=True) is None
        xs.append(w(x)), ys.append(w(y))
        X, Y = np.vstack(xs), np.vstack(ys)
        q = c.query("cp", ["sce", "sce_text"])  # after the notified batch (one connection)
        assert q.count == 140 and q.as_of == 140, (q.count, q.as_of)
        want_close(q["sce"], ref.sce(X, Y), 1e-9, "sce")
        want_close(q["sce_text"], ref.sce_text(X, Y), 1e-9, "sce_text")
        qx, qy = draw(rng, 12, dx, dy, B, 0.6)
        out = c.nullify("cp", qx.astype(np.float32), qy)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (12, dy)
        assert out.flags.writeable
        want = ref.nullify(w(qx.astype(np.float32)), qy, X, Y)
        err = np.abs(out - want).max() / np.abs(qy).max()
        assert err <= 1e-10, f"nullify vs kernel_ref: {err:.3e}"
        assert c.nullify("cp", np.zeros((0, dx)), np.zeros((0, dy))).shape == (0, dy)
        raises_value_error("rows", c.ingest_pairs, "cp", qx[:3], qy[:4])
        raises_value_error("rows", c.nullify, "cp", qx[:3], qy[:4])
        assert c.info("cp").count == 140  # nothing sent
        # run=: the same name in another run is another stream
        c.create("cp", dx + dy, run="other", kind="paired", dims=[dx, dy])
        c.ingest_pairs("cp", qx, qy, run="other")
        assert c.info("cp", run="other").count == 12 and c.info("cp").count == 140
        got = c.query("cp", "sce", run="other")["sce"]
        want_close(got, ref.sce(qx, qy), 1e-9, "sce in run other")
        c.create("cr", 8, kind="paired", dims=[4, 4], features="rff", sigma=1.0, rff_dim=16)
        c.ingest_pairs("cr", *draw(rng, 20, 4, 4))
        expect("BAD_PARAM", "linear", c.nullify, "cr", qx[:, :4], qy)


def wait_steps(c, run, stream, steps, timeout=20):
    deadline = time.time() + timeout
    while True:
        h = c.history(stream=stream, run=run)
        if all(len(h[(stream, m)].step) >= steps if (stream, m) in h else False
               for m in ("sce", "sce_text")):
            return h
        assert time.time() < deadline, f"history: {h}"
        time.sleep(0.02)


def paired_stream_log_and_close():
    rng = np.random.default_rng(12)
    dx, dy = 4, 3
    B = rng.standard_normal((dx, dy)) * 0.5
    with Client(D.unix) as c:
        before = names(c, run="pr")
        # bad configurations: ValueError at construction, nothing created
        raises_value_error("sigma", PairedStream, "pr", "bad1", dims=(4, 4), features="rff",
                           address=D.unix)
        raises_value_error("equal", PairedStream, "pr", "bad2", dims=(4, 3), features="rff",
                           sigma=1.0, address=D.unix)
        raises_value_error("features", PairedStream, "pr", "bad3", dims=(4, 3),
                           features="cosine", address=D.unix)
        raises_value_error("dims", PairedStream, "pr", "bad4", dims=(4,), address=D.unix)
        ps = PairedStream("pr", "ps", dims=(dx, dy), address=D.unix)
        sent = []
        for step in range(4):
            x, y = draw(rng, 10 + 3 * step, dx, dy, B)
            x = x.astype(np.float32)
            assert ps.log(step, x, y) is True
            sent.append((w(x), w(y)))
            if step == 1:  # bad shapes: ValueError at log, nothing queued
                q0 = ps.sender.stats().queued
                raises_value_error("dims", ps.log, step, x[:, :3], y)
                raises_value_error("dims", ps.log, step, x, y[:, :2])
                raises_value_error("rows", ps.log, step, x[:4], y[:5])
                assert ps.sender.stats().queued <= q0, ps.sender.stats()
        assert ps.close() is True
        stats = ps.sender.stats()
        assert stats.rejected_batches == 0 and stats.sent_batches == 4, stats
        h = wait_steps(c, "pr", "ps", 4)
        total = sum(len(px) for px, _ in sent)
        assert c.info("ps", run="pr").count == total  # the bad logs sent nothing
        for m, fn in (("sce", ref.sce), ("sce_text", ref.sce_text)):
            s = h[("ps", m)]
            assert list(s.step) == [0, 1, 2, 3] and not s.partial.any(), (s.step, s.partial)
            for i, step in enumerate(s.step):
                X = np.vstack([px for px, _ in sent[:step + 1]])
                Y = np.vstack([py for _, py in sent[:step + 1]])
                want_close(s.value[i], fn(X, Y), 1e-9, f"{m} at step {step}")
        assert names(c, run="pr") == sorted(before + ["ps"]), names(c, run="pr")
        # an rff PairedStream: its stream is created with the features it names
        pr = PairedStream("pr", "prff", dims=(4, 4), features="rff", sigma=2.0, rff_dim=32,
                          seed=3, address=D.unix)
        assert pr.log(0, *draw(rng, 15, 4, 4)) is True
        assert pr.close() is True
        cfg = c.info("prff", run="pr").config
        assert (cfg["kind"], cfg["features"], cfg["sigma"], cfg["rff_dim"], cfg["dims"]) == \
            ("paired", "rff", 2.0, 32, [4, 4]), cfg
        assert c.info("prff", run="pr").count == 15


def pairs_through_a_sender():
    rng = np.random.default_rng(13)
    dx, dy = 3, 4
    with Client(D.unix) as c:
        before = names(c, run="snd")
        s = Sender(D.unix)
        try:
            s.declare("sp", run="snd", kind="paired", dims=[dx, dy])
            xs, ys = [], []
            for k in range(3):
                x, y = draw(rng, 20 + k, dx, dy)
                x = x.astype(np.float32) if k == 1 else x
                assert s.send("sp", Pairs(x, y), run="snd") is True
                xs.append(w(x)), ys.append(w(y))
            assert s.flush(10) is True
            st = s.stats()
            assert st.sent_batches == 3 and st.sent_rows == 63 and st.rejected_batches == 0, st
            # x and y with different rows: counted rejected on the Sender's thread, not raised
            assert s.send("sp", Pairs(xs[0][:3], ys[0][:4]), run="snd") is True
            # pairs to an undeclared stream that does not exist: refused, nothing created
            assert s.send("nosuch", Pairs(xs[0], ys[0]), run="snd") is True
            s.flush(10)
            st = s.stats()
            assert st.rejected_batches == 2 and st.sent_batches == 3, st
        finally:
            s.close(5)
        X, Y = np.vstack(xs), np.vstack(ys)
        assert c.info("sp", run="snd").count == 63
        q = c.query("sp", ["sce", "sce_text"], run="snd")
        want_close(q["sce"], ref.sce(X, Y), 1e-9, "sce")
        want_close(q["sce_text"], ref.sce_text(X, Y), 1e-9, "sce_text")
        assert names(c, run="snd") == sorted(before + ["sp"]), names(c, run="snd")


def main():
    global D
    D = Daemon()
    t = Tap()
    try:
        t.case("client_ingest_pairs_query_nullify_equal_numpy", client_ingest_pairs_query_nullify)
        t.case("paired_stream_log_close_history_equals_numpy", paired_stream_log_and_close)
        t.case("pairs_through_a_sender_land", pairs_through_a_sender)
    finally:
        D.stop()
    t.done()


if __name__ == "__main__":
    main()
