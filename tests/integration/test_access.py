"""The daemon's boundary, continued: cases that need a daemon configured for them — unfinished
messages against the receive budget and partial_timeout (defect 6), a stop with a client that
never reads (7), SIGHUP all or nothing (10), and access with a token (12). Each checks codes,
messages, unchanged state, and RSS from /proc where memory was the defect (not under ASan)."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import DAEMON, Daemon, RpcError  # noqa: E402
from taplib import Tap  # noqa: E402

ASAN = bool(os.environ.get("EWD_ASAN"))
MIB = 1024


def unfinished_messages_bounded_by_the_receive_budget():
    d = Daemon(config="recv_budget = 64M\npartial_timeout = 2\n")
    try:
        c = d.client()
        time.sleep(0.3)
        rss0 = d.rss_kib()
        n = 20 << 20
        msg = msgpack.packb([0, 1, "ingest", [{"stream": "p", "data": b"\1" * n, "dtype": "f32",
                                               "shape": [n // 4, 1]}]])[:-1]  # one byte short
        socks = []

        def hold():
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.unix[5:])
            s.settimeout(4)
            socks.append(s)
            try:
                s.sendall(msg)
            except OSError:
                pass

        ts = [threading.Thread(target=hold) for _ in range(12)]  # 240 MiB, budget 64 MiB
        for t in ts:
            t.start()
        time.sleep(1.5)
        held = d.rss_kib() - rss0
        print(f"# 12 x 20 MiB messages one byte short: RSS +{held // MIB} MiB while held "
              "(budget 64 MiB)")
        assert ASAN or held < 64 * MIB + 48 * MIB, held
        st = c.call("stats")
        assert st["recv_held_bytes"] <= 64 << 20, st["recv_held_bytes"]
        assert st["recv_budget_waits"] >= 1, st
        for t in ts:
            t.join()
        time.sleep(2.5)
        st = c.call("stats")
        assert st["partial_timeouts"] >= 3, st
        for s in socks:
            s.close()
        time.sleep(1.0)
        after = d.rss_kib() - rss0
        print(f"# RSS +{after // MIB} MiB after partial_timeout closed them; partial_timeouts "
              f"{st['partial_timeouts']}")
        assert ASAN or after < 24 * MIB, after
        assert c.call("ping")["pong"] and c.call("list")["streams"] == []
        c.close()
    finally:
        assert d.stop() == 0


def stop_finishes_with_a_client_that_never_reads():
    d = Daemon(config="drain_timeout = 1\nconn_out_cap = 1M\n")
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.unix[5:])
    s.settimeout(0.2)
    one = msgpack.packb([0, 1, "metrics", []]) * 4096
    t0 = time.time()
    while time.time() - t0 < 2:
        try:
            s.send(one)
        except socket.timeout:
            break
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(30)
    s.close()
    log = d.log()
    assert rc == 0, log[-1500:]
    assert "drain deadline passed" in log and 'msg="stopped" clean=true' in log, log[-1500:]


def sighup_applies_all_or_nothing():
    d = Daemon(config="max_streams = 3\n")
    path = os.path.join(d.dir, "eigenwatchd.conf")
    try:
        c = d.client()
        for i in range(3):
            c.call("create", {"stream": f"s{i}", "dim": 2})
        with open(path, "w") as f:
            f.write("max_streams = 5\nmax_connections = lots\n")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert "config not reloaded" in d.log()
        try:
            c.call("create", {"stream": "s3", "dim": 2})
            raise AssertionError("a good line of a bad file was applied")
        except RpcError as e:
            assert e.code == "LIMIT" and "max_streams = 3" in e.message, e
        with open(path, "w") as f:  # a good file: its keys, defaults for the rest
            f.write("max_connections = 100\n")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert d.log().count("config reloaded") == 1
        for i in range(3, 8):  # max_streams is back to its default (1024), not the bad file's 5
            c.call("create", {"stream": f"s{i}", "dim": 2})
        assert len(c.call("list")["streams"]) == 8
        c.close()
    finally:
        assert d.stop() == 0


def token_required_on_tcp_not_on_unix():
    tdir = tempfile.mkdtemp(prefix="ewd-tok-")
    tok = os.path.join(tdir, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token-0123456789\n")
    os.chmod(tok, 0o600)
    d = Daemon(extra=["--auth-token-file", tok])
    try:
        u = d.client()  # the Unix socket needs no token
        u.call("ingest", {"stream": "mine", "rows": [[1, 2], [3, 4]]})
        # TCP: anything but auth first is refused and the connection closed
        t = d.client(tcp=True)
        try:
            t.call("drop", {"stream": "mine"})
            raise AssertionError("an unauthenticated drop was served")
        except RpcError as e:
            assert e.code == "AUTH" and "authenticate first" in e.message, e
        try:
            t.call("ping")
            raise AssertionError("the connection stayed open after AUTH")
        except (ConnectionError, OSError):
            pass
        t = d.client(tcp=True)
        try:
            t.call("auth", {"token": "s3cret-token-0123456788"})
            raise AssertionError("a wrong token was accepted")
        except RpcError as e:
            assert e.code == "AUTH" and "wrong token" in e.message, e
        t = d.client(tcp=True)
        r = t.call("auth", {"token": "s3cret-token-0123456789"})
        assert r == {"authenticated": True, "required": True}, r
        assert t.call("info", {"stream": "mine"})["count"] == 2
        assert u.call("stats")["auth_failures"] == 2
        assert [s["stream"] for s in u.call("list")["streams"]] == ["mine"]
        t.close()
        u.close()
    finally:
        assert d.stop() == 0
    # without a token, auth says it is not required
    d = Daemon()
    try:
        r = d.client(tcp=True).call("auth", {"token": "anything"})
        assert r == {"authenticated": True, "required": False}, r
    finally:
        assert d.stop() == 0
    # a non-loopback address without a token refuses to start, saying why; with one it starts
    p = subprocess.run([DAEMON, "--foreground", "--state-dir", tdir, "--listen",
                        "tcp:0.0.0.0:0"], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "without --auth-token-file" in p.stderr, p.stderr[-800:]
    d = Daemon(extra=["--auth-token-file", tok, "--listen", "tcp:0.0.0.0:0"])
    try:
        assert d.alive()
    finally:
        assert d.stop() == 0


def main():
    t = Tap()
    t.case("unfinished_messages_bounded_by_the_receive_budget_and_timed_out",
           unfinished_messages_bounded_by_the_receive_budget)
    t.case("stop_finishes_with_a_client_that_never_reads",
           stop_finishes_with_a_client_that_never_reads)
    t.case("sighup_applies_all_or_nothing", sighup_applies_all_or_nothing)
    t.case("token_required_on_tcp_not_on_unix", token_required_on_tcp_not_on_unix)
    t.done()


if __name__ == "__main__":
    main()
