"""The fail-open Sender: pointed at a daemon that is not running it never raises or blocks and
counts its drops, then delivers once the daemon starts; across a daemon restart it loses only
what its drop policy discards; when a connection breaks after the daemon applied messages but
before their acknowledgements arrived, the resends are duplicates and nothing counts twice;
a refusal is logged once per stream; stepped batches carry step and rank."""
import logging
import socket
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration"),
                os.path.join(ROOT, "tests", "numeric")]
from eigenwatch import Client, Sender  # noqa: E402
from harness import DAEMON, Daemon  # noqa: E402
from taplib import Tap  # noqa: E402
import subprocess  # noqa: E402


def start_at(sock_path, state):
    log = open(os.path.join(state, "log"), "a")
    p = subprocess.Popen([DAEMON, "--foreground", "--listen", f"unix:{sock_path}",
                          "--http", "127.0.0.1:0", "--state-dir", state], stderr=log)
    for _ in range(200):
        if os.path.exists(sock_path):
            break
        time.sleep(0.02)
    return p


def metrics_of(state):
    """The daemon's /metrics (its HTTP address from the log start_at wrote)."""
    with open(os.path.join(state, "log")) as f:
        url = re.findall(r"address=(http://\S+/)", f.read())[-1]
    with urllib.request.urlopen(url + "metrics", timeout=10) as r:
        return r.read().decode()


def never_raises_or_blocks_without_daemon_then_delivers():
    tmp = tempfile.mkdtemp(prefix="ew-snd-")
    sock = os.path.join(tmp, "s.sock")
    s = Sender(f"unix:{sock}", max_queue=50, drop="oldest", backoff_max=0.2)
    X = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    worst = 0.0
    for _ in range(200):  # no daemon: 200 sends into a queue of 50
        t0 = time.perf_counter()
        ok = s.send("snd", X)
        worst = max(worst, time.perf_counter() - t0)
        assert ok is True  # "oldest" policy always queues the new batch
    for _ in range(100):  # the background thread has tried (and failed) to connect
        if s.stats().connect_failures >= 1:
            break
        time.sleep(0.01)
    st = s.stats()
    assert st.dropped_batches == 150 and st.dropped_rows == 150 * 64, st
    assert st.sent_batches == 0 and st.connect_failures >= 1 and st.last_error, st
    assert worst < 0.01, f"a send took {worst * 1e3:.1f} ms with the daemon down"
    p = start_at(sock, tmp)
    try:
        assert s.flush(20), f"not delivered after the daemon started: {s.stats()}"
        st = s.stats()
        assert st.sent_batches == 50 and st.sent_rows == 50 * 64 and st.queued == 0, st
        with Client(f"unix:{sock}") as c:
            assert c.info("snd").count == 50 * 64
        # the drops reach the daemon with the next batches, and /metrics
        text = metrics_of(tmp)
        assert 'eigenwatch_sender_dropped_rows_total{run="default",stream="snd"} 9600\n' in text, \
            [ln for ln in text.splitlines() if "sender_dropped" in ln]
        assert 'eigenwatch_sender_dropped_batches_total{run="default",stream="snd"} 150\n' in text
        s.close()
        assert s.send("snd", X) is False and s.stats().dropped_batches == 151, "after close"
    finally:
        p.terminate()
        p.wait(10)


def newest_policy_refuses_the_new_batch():
    tmp = tempfile.mkdtemp(prefix="ew-snd-")
    s = Sender(f"unix:{tmp}/none.sock", max_queue=3, drop="newest", flush_on_exit=0)
    X = np.ones((2, 4), np.float32)
    results = [s.send("x", X) for _ in range(5)]
    assert results == [True, True, True, False, False], results
    assert s.stats().dropped_batches == 2
    s.close(0.1)


def restart_mid_stream_loses_only_what_the_policy_drops():
    tmp = tempfile.mkdtemp(prefix="ew-snd-")
    sock = os.path.join(tmp, "s.sock")
    p = start_at(sock, tmp)
    s = Sender(f"unix:{sock}", max_queue=100000, drop="oldest", backoff_max=0.1)
    X = np.random.default_rng(1).standard_normal((100, 16)).astype(np.float32)
    sent = 0
    try:
        for i in range(300):
            s.send("rs", X)
            sent += 1
            if i == 100:
                assert s.flush(20)
                before = s.stats().sent_rows
                p.kill()  # the daemon dies (its state with it: nothing is persisted yet)
                p.wait(10)
                p = None
            if i == 180:
                p = start_at(sock, tmp)
            time.sleep(0.001)
        assert s.flush(30), s.stats()
        st = s.stats()
        assert st.dropped_batches == 0 and st.rejected_batches == 0, st
        assert st.sent_rows == sent * 100, f"acknowledged {st.sent_rows} of {sent * 100}"
        assert st.reconnects >= 1, st
        with Client(f"unix:{sock}") as c:
            counted = c.info("rs").count
        # the new daemon holds exactly what was acknowledged after the old one was killed
        assert counted == st.sent_rows - before, (counted, st.sent_rows, before)
        s.close()
    finally:
        if p:
            p.terminate()
            p.wait(10)


def concurrent_senders_thread_safe():
    d = Daemon()
    try:
        s = Sender(d.unix, max_queue=10000)
        X = np.ones((10, 4), np.float32) * np.arange(4)

        def w():
            for _ in range(200):
                s.send("thr", X)
        ts = [threading.Thread(target=w) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert s.flush(30)
        assert s.stats().sent_rows == 8 * 200 * 10
        with Client(d.unix) as c:
            assert c.info("thr").count == 16000
        s.close()
    finally:
        d.stop()


class ReplyDroppingProxy:
    """A Unix-socket proxy to the daemon. Its first connection forwards requests but swallows
    every reply, and is cut after `cut_after` seconds; later connections forward both ways."""

    def __init__(self, target, path, cut_after=0.5):
        self.target, self.path, self.cut_after = target, path, cut_after
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(path)
        self.lsock.listen(8)
        self.n = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _pump(a, b, forward=True):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                if forward:
                    b.sendall(data)
        except OSError:
            pass

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            d.connect(self.target)
            first = self.n == 0
            self.n += 1
            threading.Thread(target=self._pump, args=(c, d), daemon=True).start()
            threading.Thread(target=self._pump, args=(d, c, not first), daemon=True).start()
            if first:
                def cut(c=c, d=d):
                    time.sleep(self.cut_after)
                    for s_ in (c, d):
                        try:
                            s_.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        s_.close()
                threading.Thread(target=cut, daemon=True).start()

    def close(self):
        self.lsock.close()


def resends_after_a_lost_acknowledgement_count_once():
    d = Daemon()
    proxy = None
    try:
        path = os.path.join(d.dir, "proxy.sock")
        proxy = ReplyDroppingProxy(d.unix[5:], path)
        s = Sender(f"unix:{path}", max_queue=10000, max_inflight=32, max_message_rows=10,
                   backoff_max=0.1)
        X = np.random.default_rng(2).standard_normal((10, 8)).astype(np.float32)
        for i in range(100):
            s.send("once", X, run="r1", step=i // 10)
        assert s.flush(30), s.stats()
        st = s.stats()
        assert st.reconnects >= 1 and proxy.n >= 2, st
        assert st.duplicate_batches >= 1, st  # the daemon had applied what it never acknowledged
        assert st.sent_rows == 1000 and st.dropped_batches == 0 and st.rejected_batches == 0, st
        with Client(d.unix) as c:
            c.call("flush", stream="once", run="r1")
            q = c.query("once", "trace", run="r1")
            assert q.count == 1000, f"the daemon holds {q.count} rows of 1000 sent"
            assert c.info("once", run="r1").steps["last_step"] == 9
        s.close()
    finally:
        if proxy:
            proxy.close()
        d.stop()


def a_refusal_is_logged_once_per_stream():
    d = Daemon()
    try:
        records = []

        class H(logging.Handler):
            def emit(self, r):
                records.append(r.getMessage())
        h = H()
        logging.getLogger("eigenwatch").addHandler(h)
        s = Sender(d.unix, max_message_rows=4)
        s.send("dimmed", np.ones((4, 8), np.float32))
        assert s.flush(10)
        for _ in range(5):
            s.send("dimmed", np.ones((4, 9), np.float32))  # DIM_MISMATCH, five times
        assert s.flush(10)
        logging.getLogger("eigenwatch").removeHandler(h)
        st = s.stats()
        assert st.rejected_batches == 5, st
        mine = [r for r in records if "dimmed" in r]
        assert len(mine) == 1 and "DIM_MISMATCH" in mine[0], records
        s.close()
    finally:
        d.stop()


def close_ends_each_streams_last_step_and_declares_create_first():
    """Issue 25 items 4 and 5 in the Sender: close() ends the last step of every stream it sent
    with a step (the daemon completes it at once: not partial, no step_timeout wait), only its
    own rank's; declare() creates a stream with its options before its first rows."""
    d = Daemon()
    try:
        s = Sender(d.unix)
        s.declare("dec", run="r", world=2, window_steps=2, step_timeout=600)
        X = np.ones((4, 3), dtype=np.float32) * np.arange(3)
        for step in (0, 1):
            for rank in (0, 1):
                s.send("dec", X + step + rank, run="r", step=step, rank=rank, world=2)
        s.send("plain", X, step=7)  # world 1
        assert s.close(10) is True
        st = s.stats()
        assert st.sent_batches == 5 and st.rejected_batches == 0, st
        with Client(d.unix) as c:
            info = c.info("dec", run="r")
            assert info.config["window_steps"] == 2 and info.config["world"] == 2, info.config
            assert info.config["step_timeout"] == 600, info.config
            # both ranks' last step (1) ended by the one Sender: complete, nothing pending
            assert info.steps["last_step"] == 1 and info.steps["pending_steps"] == 0, info.steps
            assert info.steps["partial_steps"] == 0 and info.count == 16, (info.steps, info.count)
            p = c.info("plain")
            assert p.steps["last_step"] == 7 and p.count == 4, (p.steps, p.count)
            # and close() said both runs are over for these streams (end_runs: flush end)
            assert info.steps.get("ended") is True and p.steps.get("ended") is True, p.steps
            metrics = urllib.request.urlopen(d.http + "metrics", timeout=10).read().decode()
            assert 'eigenwatch_stream_ended{run="r",stream="dec"} 1' in metrics
            # rows again: the run goes on
            c.ingest("plain", X, step=8)
            assert c.info("plain").steps.get("ended") is None
    finally:
        d.stop()


def main():
    t = Tap()
    t.case("sender_never_raises_or_blocks_without_daemon_then_delivers",
           never_raises_or_blocks_without_daemon_then_delivers)
    t.case("sender_newest_policy_refuses_new_batches", newest_policy_refuses_the_new_batch)
    t.case("sender_daemon_restart_loses_only_what_policy_drops",
           restart_mid_stream_loses_only_what_the_policy_drops)
    t.case("sender_thread_safe_with_8_producers", concurrent_senders_thread_safe)
    t.case("sender_resends_after_a_lost_acknowledgement_count_once",
           resends_after_a_lost_acknowledgement_count_once)
    t.case("sender_logs_a_refusal_once_per_stream", a_refusal_is_logged_once_per_stream)
    t.case("sender_close_ends_each_streams_last_step_and_declares_create_first",
           close_ends_each_streams_last_step_and_declares_create_first)
    t.done()


if __name__ == "__main__":
    main()
