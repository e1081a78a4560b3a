"""Backpressure and limits: a producer that floods a slow stream is slowed down (the daemon
stops reading its socket) and loses nothing; the daemon's peak memory stays near what the
high-water marks allow; max_connections, max_memory and max_streams refuse with LIMIT; the
daemon detaches without --foreground and stops cleanly."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import DAEMON, Client, Daemon, RpcError  # noqa: E402
from taplib import Tap  # noqa: E402


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def flood_is_slowed_not_dropped():
    d = Daemon(config="conn_high_water = 4M\n")
    try:
        c = d.client()
        dim = 2048  # ~4x slower per row than d = 1024: the producer outruns the math threads
        c.call("create", {"stream": "slow", "dim": dim, "window": 0, "topk": 0})
        X = np.random.default_rng(0).standard_normal((256, dim)).astype(np.float32)
        msg = msgpack.packb([2, "ingest", [{"stream": "slow", "data": X.tobytes(),
                                            "dtype": "f32", "shape": [256, dim]}]])
        base = hwm_kib(d.proc.pid)
        n_batches = 160  # 320 MiB of rows sent as fast as the socket takes them
        t0 = time.time()
        for _ in range(n_batches):
            c.send_raw(msg)
        sent = time.time() - t0
        c.call("ping")
        total = time.time() - t0
        info = c.call("info", {"stream": "slow"})
        assert info["count"] == 256 * n_batches, f"{info['count']} != {256 * n_batches}"
        grew = hwm_kib(d.proc.pid) - base
        # What the design lets the daemon hold, in bytes: the stream's f64 state (8d²), at most
        # math_threads = 2 prepared batches (each its f64 Gram 8d² — the exact path since issue
        # 23; this model said f32, 4d², before and the flood sat at 1.4x of it — and its rows),
        # queued payload and the receive buffer (each bounded by conn_high_water = 4 MiB, the
        # buffer doubling past it), and per-thread scratch (a block of 256 rows centred in f64,
        # 3 threads). 1.5x for allocator slack.
        batch = 4 * 256 * dim
        model = 8 * dim ** 2 + 2 * (8 * dim ** 2 + 2 * batch) + 3 * (4 << 20) + 3 * 2 * batch
        assert os.environ.get("EWD_ASAN") or grew * 1024 < 1.5 * model, \
            f"peak RSS grew {grew} KiB; the model allows {model >> 10} KiB (x1.5)"
        assert sent > 0.5 * total, f"sender was not slowed: sent in {sent:.2f}s of {total:.2f}s"
        print(f"# 320 MiB flood: peak RSS +{grew // 1024} MiB (model {model >> 20} MiB); "
              f"sender blocked {sent:.1f}s of "
              f"{total:.1f}s; {info['count']} rows counted")
        c.close()
    finally:
        assert d.stop() == 0


def max_connections_refuses_extra():
    d = Daemon(config="max_connections = 5\n")
    try:
        cs = [d.client() for _ in range(5)]
        for c in cs:
            assert c.call("ping")["pong"]
        extra = d.client()
        try:
            extra.call("ping")
            raise AssertionError("sixth connection was served")
        except (ConnectionError, OSError):
            pass
        assert cs[0].call("stats")["errors"].get("LIMIT", 0) >= 1
        cs[4].close()
        time.sleep(0.1)
        again = d.client()
        assert again.call("ping")["pong"], "a freed slot is usable again"
    finally:
        assert d.stop() == 0


def max_memory_refuses_a_stream_that_does_not_fit():
    d = Daemon(config="max_memory = 64M\n")
    try:
        c = d.client()
        c.call("create", {"stream": "small", "dim": 512, "window": 0})  # 2 MiB
        try:
            c.call("create", {"stream": "big", "dim": 4096, "window": 0})  # 128 MiB
            raise AssertionError("created a stream over max_memory")
        except RpcError as e:
            assert e.code == "LIMIT" and "max_memory" in e.message, e
        names = [s["stream"] for s in c.call("list")["streams"]]
        assert names == ["small"], names
    finally:
        assert d.stop() == 0


def detaches_without_foreground_and_stops_on_sigterm():
    tmp = tempfile.mkdtemp(prefix="ewd-bg-")
    sock = f"{tmp}/s.sock"
    log = os.path.join(tmp, "log")
    with open(log, "w") as errf:  # a file, not a pipe: the detached child keeps stderr open
        p = subprocess.run([DAEMON, "--listen", f"unix:{sock}", "--state-dir", tmp],
                           stderr=errf, timeout=20)
    text = open(log).read()
    assert p.returncode == 0, text[-500:]
    c = Client(f"unix:{sock}")
    assert c.call("ping")["pong"]
    pid = None
    for line in text.splitlines():
        if 'msg="ready"' in line:
            pid = int(line.split("pid=")[1].split()[0])
    assert pid, "no pid in the ready line"
    c.call("ingest", {"stream": "x", "rows": [[1.0, 2.0], [2.0, 5.0]]})
    c.close()
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("detached daemon did not stop")
    assert not os.path.exists(sock), "socket file left behind"


def default_listeners_and_state_dir():
    tmp = tempfile.mkdtemp(prefix="ewd-def-")
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp, XDG_STATE_HOME=os.path.join(tmp, "state"))
    # the default TCP port may be taken on a shared machine: only the Unix default is used here
    p = subprocess.Popen([DAEMON, "--foreground", "--listen", "tcp:127.0.0.1:0"], env=env,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    err = err.decode()
    assert os.path.isdir(os.path.join(tmp, "state", "eigenwatch")), err
    assert p.returncode == 0, err
    # and with no --listen at all the defaults are the runtime-dir socket and loopback TCP
    p = subprocess.Popen([DAEMON, "--foreground"], env=env, stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    err = err.decode()
    assert f"address=unix:{tmp}/eigenwatch.sock" in err, err
    assert "address=tcp:127.0.0.1:7700" in err or "cannot listen" in err, err


def main():
    t = Tap()
    t.case("flood_is_slowed_not_dropped", flood_is_slowed_not_dropped)
    t.case("max_connections_refuses_extra", max_connections_refuses_extra)
    t.case("max_memory_refuses_a_stream_that_does_not_fit",
           max_memory_refuses_a_stream_that_does_not_fit)
    t.case("detaches_without_foreground_and_stops_on_sigterm",
           detaches_without_foreground_and_stops_on_sigterm)
    t.case("default_listeners_and_state_dir", default_listeners_and_state_dir)
    t.done()


if __name__ == "__main__":
    main()
