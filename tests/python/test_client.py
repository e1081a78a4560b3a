"""The Python Client against a real daemon: every method, typed results, errors with their wire
code, bf16 tensors bit-exact (metrics equal numpy float64 on the same bf16 values), and the
recorded protocol vectors (the client's request bytes equal them; their responses decode)."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration"),
                os.path.join(ROOT, "tests", "numeric")]
import reference as ref  # noqa: E402
from eigenwatch import (Client, EigenwatchError, IngestResult, PingResult, QueryResult,  # noqa: E402
                        StreamInfo, encode_rows)
from harness import Daemon  # noqa: E402
from taplib import Tap, close  # noqa: E402

D = None


def expect(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except EigenwatchError as e:
        assert e.code == code and e.message, (e.code, e.message)
        return
    raise AssertionError(f"expected {code}")


def every_method_with_typed_results():
    for tcp in (False, True):
        c = Client(D.tcp if tcp else D.unix)
        p = c.ping()
        assert isinstance(p, PingResult) and p.protocol == 1
        name = f"py.{int(tcp)}"
        r = c.create(name, 6, window=32)
        assert r["created"] is True and r["config"]["window"] == 32
        X = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
        ir = c.ingest(name, X)
        assert isinstance(ir, IngestResult) and ir.accepted == 300 and ir.count == 300
        assert c.ingest(name, X[:10], notify=True) is None
        assert c.ingest_rows(name, [[1, 2, 3, 4, 5, 6]]).count == 311
        q = c.query(name, ["entropy", "topk"], params={"k": 2})
        assert isinstance(q, QueryResult) and q.as_of == 311 and len(q["topk"]) == 2
        V = np.vstack([X, X[:10], [[1, 2, 3, 4, 5, 6]]]).astype(np.float64)
        close(q["entropy"], ref.entropy_p(ref.eig(ref.matrix(V, True))), 1e-6, "entropy")
        q2 = c.query(name, "entropy", max_lag=100)
        assert q2.cached is True
        q3 = c.query(name, "l2_std", source="window")
        assert q3["l2_std"] > 0
        q4 = c.query(name, "vendi", center=False, fresh=True)
        assert q4.cached is False
        info = c.info(name)
        assert isinstance(info, StreamInfo) and info.count == 311 and info.config["dim"] == 6
        assert any(s.stream == name for s in c.list())
        assert c.stats()["rows"] >= 311
        assert len(c.metrics()) == 50  # 28 of matrix streams, 15 of tokens, 5 of stats, 2 paired
        state = c.export(name)
        assert isinstance(state, bytes) and state[:8] == b"EWSTATE\0"
        m = c.merge(name + ".copy", state)
        assert m == {"stream": name + ".copy", "merged": 311, "count": 311, "created": True}, m
        qc = c.query(name + ".copy", "entropy", fresh=True)
        assert qc["entropy"] == c.query(name, "entropy", fresh=True)["entropy"]
        snap = c.snapshot()
        assert snap["streams"] >= 2 and snap["bytes"] > len(state), snap
        expect("BAD_STATE", c.merge, name, state[:-1])
        c.drop(name + ".copy")
        assert c.reset(name)["count"] == 0
        assert c.drop(name)["dropped"] is True
        expect("NO_SUCH_STREAM", c.info, name)
        # the same name in another run is another stream
        c.ingest(name, X[:5], run="other")
        assert c.info(name, run="other").run == "other"
        expect("NO_SUCH_STREAM", c.info, name)
        assert [i.stream for i in c.list(run="other")] == [name]
        assert any(r["run"] == "other" and name in r["streams"] for r in c.runs())
        assert c.query(name, "trace", run="other").count == 5
        assert c.drop(name, run="other")["dropped"] is True
        c.close()


def errors_carry_the_wire_code():
    with Client(D.unix) as c:
        c.create("py.err", 3)
        expect("STREAM_EXISTS", c.create, "py.err", 4)
        expect("DIM_MISMATCH", c.ingest, "py.err", np.zeros((2, 5), np.float32))
        bad = np.ones((2, 3), np.float32)
        bad[0, 1] = np.inf
        expect("NON_FINITE", c.ingest, "py.err", bad)
        expect("UNKNOWN_METRIC", c.query, "py.err", "nope")
        expect("BAD_PARAM", c.query, "py.err", "renyi", params={"alpha": -2})
        expect("UNKNOWN_METHOD", c.call, "frobnicate")
        assert c.info("py.err").count == 0


def bf16_tensors_arrive_bit_exact():
    import torch
    with Client(D.unix) as c:
        g = torch.Generator().manual_seed(3)
        t = (torch.randn(2000, 16, generator=g) * 3 + 7).to(torch.bfloat16)
        fields = encode_rows(t)
        assert fields["dtype"] == "bf16" and len(fields["data"]) == 2000 * 16 * 2
        raw = np.frombuffer(fields["data"], dtype=np.uint16)
        assert np.array_equal(raw, t.view(torch.int16).numpy().view(np.uint16).ravel()), \
            "bf16 words changed on the way"
        c.ingest("py.bf16", t)
        V = t.to(torch.float64).numpy()  # exact: every bf16 value is a float64
        want = ref.metrics(V, True)
        got = c.query("py.bf16", ["entropy", "trace", "participation_ratio"]).metrics
        for k in ("entropy", "trace", "participation_ratio"):
            close(got[k], want[k], 1e-6, f"bf16 {k}")
        # f16 and f64 tensors, and (batch, tokens, d) shapes, go the same way
        t3 = torch.randn(4, 50, 16, generator=g, dtype=torch.float16)
        assert c.ingest("py.bf16.f16", t3).accepted == 200
        assert c.ingest("py.bf16.f64", t3.to(torch.float64)).accepted == 200


class FakeSocket:
    def __init__(self, reply=b""):
        self.sent, self.reply = b"", reply

    def sendall(self, b):
        self.sent += b

    def recv(self, n):
        r, self.reply = self.reply, b""
        return r

    def close(self):
        pass

    def settimeout(self, t):
        pass


def client_matches_protocol_vectors():
    vecs = {}
    for line in open(os.path.join(ROOT, "proto", "vectors", "v1.tsv")):
        if not line.startswith("#"):
            name, req, resp, _ = line.rstrip("\n").split("\t")
            vecs[name] = (bytes.fromhex(req), bytes.fromhex(resp))
    f32 = np.array([[1, 2], [3, 5]], dtype=np.float32)
    calls = {
        "ping": (1, lambda c: c.ping()),
        "create": (2, lambda c: c.create("v", 2, window=8)),
        "ingest_rows": (5, lambda c: c.ingest_rows("v", [[1, 0], [0, 1], [1, 1], [2, 0]])),
        "ingest_bin_f32": (6, lambda c: c.ingest("v", f32)),
        # an explicit timeout: the default one asks info for the solve estimate first
        "query": (7, lambda c: c.query("v", ["entropy", "trace", "topk"], params={"k": 2},
                                       timeout=60)),
        "info": (9, lambda c: c.info("v")),
        "list": (10, lambda c: c.list()),
        "reset": (19, lambda c: c.reset("v")),
        "drop": (21, lambda c: c.drop("v")),
        "metrics": (22, lambda c: c.metrics()),
        "no_such_stream": (12, lambda c: c.info("ghost")),
        "create_in_run": (28, lambda c: c.create("w", 3, run="r2", window=0)),
        "list_run": (29, lambda c: c.list(run="r2")),
        "runs": (30, lambda c: c.runs()),
        "no_such_stream_in_run": (31, lambda c: c.info("w2", run="r2")),
    }
    for name, (msgid, fn) in calls.items():
        req, resp = vecs[name]
        c = Client.__new__(Client)
        import msgpack
        import threading
        c.timeout = 60
        c._sock, c._unpacker, c._msgid, c._lock = FakeSocket(resp), msgpack.Unpacker(raw=False), \
            msgid - 1, threading.Lock()
        try:
            out = fn(c)
        except EigenwatchError as e:
            out = e
        assert c._sock.sent == req, f"{name}: request bytes differ\n{c._sock.sent.hex()}\n{req.hex()}"
        if name == "no_such_stream":
            assert isinstance(out, EigenwatchError) and out.code == "NO_SUCH_STREAM"
        elif name == "query":
            assert isinstance(out, QueryResult) and out.as_of == 7 and len(out["topk"]) == 2
        elif name == "info":
            assert isinstance(out, StreamInfo) and out.count == 7 and out.run == "default"
        elif name == "list_run":
            assert [(i.run, i.stream, i.dim) for i in out] == [("r2", "w", 3)], out
        elif name == "runs":
            assert [r["run"] for r in out] == ["default", "r2"], out


def reconnects_after_a_daemon_restart():
    """Every call after a restart used to raise Broken pipe. Now the next call reconnects and is
    sent on the new connection (a read, a plain ingest, an ingest with producer/seq, whose repeat
    the daemon then recognises); the answers match numpy."""
    d = Daemon()
    c = Client(d.unix)
    X = np.random.default_rng(4).standard_normal((20, 5)).astype(np.float32)
    c.ingest("rc", X)
    c.snapshot()
    assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        assert c.info("rc").count == 20  # the old connection is gone: one reconnect
        assert c.reconnects == 1
        r = c.ingest("rc", X)  # a request on a live connection again
        assert r.count == 40, r
        q = c.query("rc", "trace")
        close(q["trace"], float(np.trace(np.cov(np.concatenate([X, X]).T.astype(np.float64),
                                                   bias=True))), 1e-6, "trace after reconnect")
        assert d2.stop() == 0
        d3 = Daemon(state_dir=d.dir)
        try:
            # an ingest with producer and seq is harmless to repeat: it goes through
            r = c.ingest("rc", X, producer="me", seq=1)
            assert r.count == 60 and c.reconnects == 2, (r, c.reconnects)
            r = c.ingest("rc", X, producer="me", seq=1)
            assert r.duplicate and r.count == 60, r
        finally:
            d3.stop()
    finally:
        c.close()
        if d2.alive():
            d2.stop()


def history_as_numpy_and_subscribe_as_an_iterator():
    """Client.history returns numpy arrays equal to numpy's own computation on the same rows;
    Client.subscribe yields one metrics notification per evaluated step, and an alert."""
    rng = np.random.default_rng(6)
    with Client(D.unix) as c:
        c.create("hs", 5, run="py", recent=True, window_steps=1,
                 eval=[{"metric": "trace"}, {"metric": "spectrum"}],
                 rules=[{"name": "big", "metric": "trace", "when": "above", "value": 50}])
        sub = c.subscribe(stream="h*", run="py")
        blocks = []
        for s in range(6):
            X = (rng.standard_normal((7, 5)) * (1 + 3 * (s == 4))).astype(np.float64)
            blocks.append(X)
            c.ingest("hs", X, run="py", step=s)
        c.flush("hs", run="py")
        seen, alerts = [], []
        while not seen or seen[-1] != 5:
            item = sub.next(timeout=20)
            assert item is not None, f"no notification after {seen}"
            kind, p = item
            if kind == "metrics":
                seen.append(p["step"])
            else:
                alerts.append((p["rule"], p["state"], p["step"]))
        sub.close()
        h = c.history(run="py", stream="hs")
        tr, sp = h[("hs", "trace")], h[("hs", "spectrum")]
        assert tr.step.dtype == np.int64 and sp.value.shape == (len(sp.step), 5), sp.value.shape
        assert list(tr.step) == seen and len(seen) + sum(tr.skipped) == 6, (tr.step, seen)
        for i, step in enumerate(tr.step):
            C = np.cov(blocks[step].astype(np.float32).astype(np.float64).T, bias=True)  # the
            # window keeps f32 rows: numpy reads the same values in f64
            close(tr.value[i], np.trace(C), 1e-6, f"trace at step {step}")
            np.testing.assert_allclose(sp.value[i], np.sort(np.linalg.eigvalsh(C))[::-1],
                                       rtol=1e-6, atol=1e-6 * np.trace(C),
                                       err_msg=f"spectrum {step}")
        assert ("big", "firing", 4) in alerts or 4 not in seen, alerts
        assert c.alerts(run="py")[0]["rule"] == "big"


def long_solves_are_waited_for():
    """A client whose own timeout (0.1 s) is shorter than a fresh exact solve: query() sizes the
    wait from info's solve_estimate_s and gets the answer; the same query with timeout=0.1 given
    explicitly times out, so the default is what covered it."""
    import socket
    d = 2048
    c = Client(D.unix)
    c.create("slow", d, window=0)
    rng = np.random.default_rng(3)
    for _ in range(2):
        c.ingest("slow", rng.standard_normal((1024, d)).astype(np.float32))
    est = c.info("slow").solve_estimate_s
    assert est >= 9e-11 * d ** 3 * (1 - 1e-9), est
    short = Client(D.unix, timeout=0.1)
    r = short.query("slow", ["spectrum", "condition_number"], fresh=True, method="exact")
    assert len(r.metrics["spectrum"]) == d and r.elapsed_ms > 100, r.elapsed_ms
    try:
        short.query("slow", ["spectrum", "condition_number"], center=False, fresh=True,
                    timeout=0.1)
    except (socket.timeout, TimeoutError, OSError):
        pass
    else:
        raise AssertionError("a 0.1 s wait should not cover a fresh solve at d = 2048")
    short.close()
    c.close()


def the_default_address_tries_the_users_sockets_then_the_units_then_tcp():
    """Issue 25 item 7: with no EIGENWATCH_ADDRESS, the user's own daemon socket wins, then the
    systemd units' socket when this user may use it, then tcp:127.0.0.1:7700 (a fresh machine
    with the units installed needs no setting)."""
    import tempfile
    from eigenwatch import _wire
    keep = {k: os.environ.get(k) for k in ("EIGENWATCH_ADDRESS", "XDG_RUNTIME_DIR",
                                           "XDG_STATE_HOME")}
    system = _wire.SYSTEM_SOCKET
    tmp = tempfile.mkdtemp(prefix="ew-addr-")
    try:
        os.environ.pop("EIGENWATCH_ADDRESS", None)
        os.environ["XDG_RUNTIME_DIR"] = os.path.join(tmp, "run")
        os.environ["XDG_STATE_HOME"] = os.path.join(tmp, "state")
        _wire.SYSTEM_SOCKET = os.path.join(tmp, "unit.sock")
        assert _wire.default_address() == "tcp:127.0.0.1:7700"
        open(_wire.SYSTEM_SOCKET, "w").close()
        os.chmod(_wire.SYSTEM_SOCKET, 0o600)
        assert _wire.default_address() == "unix:" + _wire.SYSTEM_SOCKET
        os.makedirs(os.environ["XDG_RUNTIME_DIR"])
        mine = os.path.join(os.environ["XDG_RUNTIME_DIR"], "eigenwatch.sock")
        open(mine, "w").close()
        assert _wire.default_address() == "unix:" + mine
        os.environ["EIGENWATCH_ADDRESS"] = "tcp:10.0.0.1:7700"
        assert _wire.default_address() == "tcp:10.0.0.1:7700"
    finally:
        _wire.SYSTEM_SOCKET = system
        for k, v in keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main():
    global D
    D = Daemon()
    t = Tap()
    try:
        t.case("every_client_method_with_typed_results_unix_and_tcp", every_method_with_typed_results)
        t.case("errors_raise_one_exception_class_with_the_wire_code", errors_carry_the_wire_code)
        t.case("bf16_tensors_arrive_bit_exact_metrics_equal_numpy", bf16_tensors_arrive_bit_exact)
        t.case("client_request_bytes_equal_protocol_vectors", client_matches_protocol_vectors)
        t.case("the_default_address_tries_the_users_sockets_then_the_units_then_tcp",
               the_default_address_tries_the_users_sockets_then_the_units_then_tcp)
        t.case("client_reconnects_after_a_daemon_restart", reconnects_after_a_daemon_restart)
        t.case("client_history_as_numpy_and_subscribe_as_an_iterator",
               history_as_numpy_and_subscribe_as_an_iterator)
        t.case("client_waits_for_a_long_solve_by_the_daemon's_estimate",
               long_solves_are_waited_for)
    finally:
        D.stop()
    t.done()


if __name__ == "__main__":
    main()
