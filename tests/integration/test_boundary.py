"""The daemon's boundary (issue: a typed wire, bounded connections, honest memory). One case per
defect found by a hostile or careless client; each fails on the daemon before the boundary was
rebuilt. Every case checks the error code and message, that state did not change, that the
daemon is alive, and — where memory was the defect — RSS read from /proc against a stated bound.

RSS bounds are skipped under AddressSanitizer (its quarantine and shadow memory are not the
daemon's)."""
import os
import signal
import socket
import sys
import threading
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Client, Daemon, expect  # noqa: E402
from taplib import Tap  # noqa: E402

ASAN = bool(os.environ.get("EWD_ASAN"))
MIB = 1024  # KiB per MiB (RSS is read in KiB)



def state(c):
    return [(s["stream"], s["count"]) for s in c.call("list")["streams"]]


def raw_reply(sock, up, timeout=10):
    sock.settimeout(timeout)
    while True:
        for m in up:
            return m
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        up.feed(data)


def stat(c, key):
    return c.call("stats")[key]


# ---- 1: duplicate keys ----

def duplicate_metric_params_refused_naming_the_key(d):
    c = d.client()
    c.call("ingest", {"stream": "dup", "rows": [[1, 2], [3, 5], [4, 4]]})
    before = state(c)
    # msgpack lets a map repeat a key; packed by hand: {"alpha":1,"alpha":1,"alpha":1}
    params = b"\x83" + b"\xa5alpha\x01" * 3
    body = (b"\x94\x00\x07\xa5query\x91\x83\xa6stream\xa3dup\xa7metrics\x91\xa5renyi"
            b"\xa6params" + params)
    c.send_raw(body)
    m = c.read_message()
    assert m is not None, "no reply: the connection closed (the daemon crashed)"
    assert m[2] is not None, f"a repeated key was accepted (past the params array): {m}"
    assert m[1] == 7 and m[2]["code"] == "BAD_REQUEST", m
    assert "duplicate key 'alpha'" in m[2]["message"], m[2]
    # a repeated top-level key too
    c.send_raw(b"\x94\x00\x08\xa4info\x91\x82\xa6stream\xa3dup\xa6stream\xa3dup")
    m = c.read_message()
    assert m[2]["code"] == "BAD_REQUEST" and "duplicate key 'stream'" in m[2]["message"], m
    assert d.alive() and state(c) == before
    c.close()


# ---- 4: one query, many solves ----

def repeated_metric_names_refused(d):
    c = d.client()
    c.call("ingest", {"stream": "rep", "rows": [[1, 2], [3, 5], [4, 4]]})
    e = expect("BAD_REQUEST", c.call, "query",
               {"stream": "rep", "metrics": ["topk"] * 64, "params": {"vectors": True}})
    assert "'topk' twice" in e.message, e.message
    assert stat(c, "queue_jobs") == 0
    c.close()


# ---- 9: a rejected ingest creates nothing ----

def rejected_ingest_into_unknown_stream_leaves_nothing(d):
    c = d.client()
    before, admitted = state(c), c.call("stats").get("admitted_bytes")
    X = np.ones((4, 4096), dtype=np.float32)
    X[2, 7] = np.nan
    e = expect("NON_FINITE", c.call, "ingest", {"stream": "ghost.nan", "data": X.tobytes(),
                                               "dtype": "f32", "shape": [4, 4096]})
    assert "NaN" in e.message, e.message
    assert state(c) == before, "a refused ingest left a stream"
    expect("NO_SUCH_STREAM", c.call, "info", {"stream": "ghost.nan"})
    assert stat(c, "admitted_bytes") == admitted, "its budget was not returned"
    r = c.call("ingest", {"stream": "ghost.empty", "rows": []})
    assert r == {"stream": "ghost.empty", "accepted": 0, "count": 0}, r
    assert state(c) == before
    # and a good batch afterwards does create it
    c.call("ingest", {"stream": "ghost.nan", "data": np.ones((2, 4096), np.float32).tobytes(),
                      "dtype": "f32", "shape": [2, 4096]})
    assert ("ghost.nan", 2) in state(c)
    c.call("drop", {"stream": "ghost.nan"})
    c.close()


# ---- 11: peer bytes are escaped ----

def invalid_utf8_is_escaped_not_echoed(d):
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.unix[5:])
    up = msgpack.Unpacker(raw=False)  # strict: a str that is not UTF-8 raises
    s.sendall(b"\x94\x00\x01\xa4\xff\xfeab\x90")
    m = raw_reply(s, up)
    assert m[2]["code"] == "UNKNOWN_METHOD" and "\\xff\\xfe" in m[2]["message"], m
    long = ("é" * 100).encode()
    c = d.client()
    c.call("ingest", {"stream": "utf", "rows": [[1, 2], [3, 5], [4, 4]]})
    c.close()
    s.sendall(msgpack.packb([0, 2, "query", [{"stream": "utf", "metrics": [long]}]]))
    m = raw_reply(s, up)
    assert m[2]["code"] == "UNKNOWN_METRIC" and m[2]["message"].count("é") < 100, m
    assert "..." in m[2]["message"], m
    s.sendall(msgpack.packb([0, 3, "info", [{"stream": "x", "bo\"gus\n": 1}]]))
    m = raw_reply(s, up)
    assert m[2]["code"] == "BAD_REQUEST" and 'bo\\"gus\\x0a' in m[2]["message"], m
    s.close()
    assert "\n\"" not in open(d.log_path).read()


# ---- 13: names, overflow, HTTP on the RPC port ----

def path_like_names_refused(d):
    c = d.client()
    before = state(c)
    for name in ["..", "/", "../../etc/passwd", "a//b", "a/", "/a", "x/./y"]:
        e = expect("BAD_REQUEST", c.call, "ingest", {"stream": name, "rows": [[1.0]]})
        assert "stream name" in e.message or "stream names" in e.message, e.message
        expect("BAD_REQUEST", c.call, "create", {"stream": name, "dim": 2})
    c.call("create", {"stream": "model/layer.3:out", "dim": 2})
    c.call("drop", {"stream": "model/layer.3:out"})
    assert state(c) == before
    c.close()


def shape_overflow_reported_not_as_zero(d):
    c = d.client()
    e = expect("BAD_REQUEST", c.call, "ingest", {"stream": "ovf", "data": b"\0" * 8,
                                                "dtype": "f64", "shape": [2 ** 62, 4]})
    assert "needs 0" not in e.message and "2^64" in e.message, e.message
    c.close()


def http_on_the_rpc_port_gets_400(d):
    c = d.client()
    bad0 = c.call("stats")["errors"].get("BAD_REQUEST", 0)
    host, port = d.tcp[4:].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400 "), data[:80]
    assert b"msgpack-RPC" in data and b"7701" in data, data
    st = c.call("stats")
    assert st["errors"].get("BAD_REQUEST", 0) == bad0, "HTTP bytes were counted as requests"
    assert st["http_on_rpc_port"] == 1
    c.close()


# ---- 2: reply burst ----

def unread_replies_are_capped(d):
    c = d.client()
    X = np.random.default_rng(2).standard_normal((1024, 1024)).astype(np.float32)
    c.call("ingest", {"stream": "slow", "data": X.tobytes(), "dtype": "f32", "shape": [1024, 1024]})
    time.sleep(0.6)  # let earlier cases' frees be trimmed
    rss0 = d.rss_kib()
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.unix[5:])
    s.settimeout(0.5)
    one = msgpack.packb([0, 1, "metrics", []])
    # a slow request first, then 8 MiB of requests buffered behind it; replies never read
    slow = msgpack.packb([0, 1, "query", [{"stream": "slow", "metrics": ["spectrum"],
                                           "fresh": True}]])
    burst = slow + one * (8 * 1024 * 1024 // len(one))
    sent, t0 = 0, time.time()
    while sent < len(burst) and time.time() - t0 < 5:
        try:
            sent += s.send(burst[sent:sent + 65536])
        except socket.timeout:
            pass
    # the daemon pauses the connection once its unsent replies reach the cap; on a loaded
    # machine it may take a while to get there (waited for, up to 30 s, not timed)
    deadline = time.time() + 30
    while c.call("stats")["out_cap_pauses"] < 1 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    grew = d.rss_kib() - rss0
    # the cap (conn_out_cap = 4 MiB here) + the buffered requests + allocator slack
    assert ASAN or grew < 48 * MIB, f"RSS grew {grew // MIB} MiB with replies unread"
    st = c.call("stats")
    assert d.alive() and st["out_cap_pauses"] >= 1, st
    s.close()
    time.sleep(0.5)
    assert c.call("ping")["pong"]
    c.call("drop", {"stream": "slow"})
    c.close()
    print(f"# {sent >> 10} KiB of metrics requests unread: RSS +{grew // MIB} MiB")


# ---- 8: abandoned work ----

def abandoned_queries_are_skipped(d):
    c = d.client()
    X = np.random.default_rng(3).standard_normal((2048, 512)).astype(np.float32)
    c.call("ingest", {"stream": "aband", "data": X.tobytes(), "dtype": "f32", "shape": [2048, 512]})
    skipped0 = c.call("stats").get("jobs_skipped", 0)
    time.sleep(0.6)  # earlier cases' frees trimmed
    rss0 = d.rss_kib()
    q = msgpack.packb([0, 1, "query", [{"stream": "aband", "metrics": ["topk"],
                                        "params": {"k": 8, "vectors": True}, "fresh": True}]])
    # the stream's queue is held by 24 ingests sent first (its jobs run in order), so that the
    # loop has seen every close before the first query could start, however loaded the machine
    blocker = d.client()
    note = msgpack.packb([2, "ingest", [{"stream": "aband", "data": X.tobytes(), "dtype": "f32",
                                         "shape": [2048, 512]}]])
    for _ in range(24):
        blocker.send_raw(note)
    for _ in range(100):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.unix[5:])
        s.sendall(q)
        s.close()
    r = c.call("ingest", {"stream": "aband", "rows": X[:3].tolist()})
    assert r["count"] == 2048 * 25 + 3, r
    blocker.close()
    time.sleep(0.3)
    skipped = c.call("stats").get("jobs_skipped", 0) - skipped0
    assert skipped >= 80, f"only {skipped} of 100 abandoned solves were skipped"
    st = c.call("stats")
    grew = d.rss_kib() - rss0
    print(f"# 100 abandoned top-k solves: {skipped} skipped; RSS +{grew // MIB} MiB, admission "
          f"model {st['admitted_bytes'] >> 20} MiB")
    # the queued jobs hold only their parameters; the solves that did run use the modelled peak
    assert ASAN or grew < st["admitted_bytes"] // 1024 + 16 * MIB, (grew, st["admitted_bytes"])
    c.call("drop", {"stream": "aband"})
    c.close()


# ---- 3 and 5: caches and workspaces are counted and given back ----

def memory_follows_the_admission_model(d):
    c = d.client()
    time.sleep(0.6)
    rss0 = d.rss_kib()
    dim = 2048
    c.call("create", {"stream": "big", "dim": dim, "window": 0})
    X = np.random.default_rng(5).standard_normal((512, dim)).astype(np.float32)
    for i in range(4):
        c.call("ingest", {"stream": "big", "data": X.tobytes(), "dtype": "f32",
                          "shape": [512, dim]})
    st = c.call("stats")
    admitted = st.get("admitted_bytes", st["memory_bytes"]) // 1024
    after_ingest = d.rss_kib() - rss0
    for k in (4, 8, 16, 32):
        r = c.call("query", {"stream": "big", "metrics": ["topk", "spectrum"],
                             "params": {"k": k, "vectors": True}, "fresh": True})
        assert len(r["metrics"]["topk_vectors"]) == k
    after_solve = d.rss_kib() - rss0
    # the cache now holds the spectrum's d values (answers with vectors are not cached)
    mem = stat(c, "memory_bytes")
    info = c.call("info", {"stream": "big"})
    assert mem - info["memory_bytes"] >= dim * 8, ("the result cache is not counted",
                                                   mem, info["memory_bytes"])
    c.call("drop", {"stream": "big"})
    time.sleep(0.6)  # the debounced trim
    after_drop = d.rss_kib() - rss0
    print(f"# d={dim}: model {admitted // MIB} MiB; RSS +{after_ingest // MIB} after ingest, "
          f"+{after_solve // MIB} after 4 top-k solves with vectors, +{after_drop // MIB} "
          f"after drop")
    if not ASAN:
        assert after_ingest < 1.5 * admitted, (after_ingest, admitted)
        assert after_solve < 1.5 * admitted, (after_solve, admitted)
        assert after_drop < 48 * MIB, f"RSS still +{after_drop // MIB} MiB after drop"
    c.close()


CONFIG = "conn_out_cap = 4M\n"


def main():
    t = Tap()
    cases = [
                ("query_params_duplicate_key_refused_naming_it",
                 duplicate_metric_params_refused_naming_the_key),
                ("repeated_metric_names_refused", repeated_metric_names_refused),
                ("rejected_ingest_into_unknown_stream_leaves_nothing",
                 rejected_ingest_into_unknown_stream_leaves_nothing),
                ("invalid_utf8_is_escaped_not_echoed", invalid_utf8_is_escaped_not_echoed),
                ("path_like_stream_names_refused", path_like_names_refused),
                ("shape_overflow_reported_not_as_zero", shape_overflow_reported_not_as_zero),
                ("http_on_the_rpc_port_gets_400", http_on_the_rpc_port_gets_400),
                ("unread_replies_are_capped_per_reply", unread_replies_are_capped),
                ("abandoned_queries_are_skipped", abandoned_queries_are_skipped),
                ("memory_follows_the_admission_model_and_returns",
                 memory_follows_the_admission_model)]
    if os.environ.get("EWD_CASE_PER_DAEMON"):  # one daemon per case (scripts/regressions-vs-old.sh)
        for name, fn in cases:
            t.case(name, alone, fn)
        t.done()
        return
    d = Daemon(config=CONFIG)
    try:
        for name, fn in cases:
            t.case(name, fn, d)
        t.case("daemon_alive_and_exits_0", lambda: None if d.stop() == 0 else
               (_ for _ in ()).throw(AssertionError(d.log()[-2000:])))
    finally:
        if d.alive():
            d.stop(signal.SIGKILL)
    t.done()


def alone(fn):
    """Runs one case on its own daemon, which must survive it and stop with status 0."""
    d = Daemon(config=CONFIG)
    try:
        fn(d)
        assert d.alive(), "the daemon died: " + d.log()[-1500:]
        rc = d.stop()
        assert rc == 0, f"exit status {rc}"
    finally:
        if d.alive():
            d.stop(signal.SIGKILL)


if __name__ == "__main__":
    main()
