"""The daemon under systemd (issue 10, item 4), with systemd's own tools:

- The units `meson install` writes (build/systemd/) pass `systemd-analyze verify` (with
  ExecStart pointed at this build's binary) and `systemd-analyze security` rates the service's
  exposure at most 1.5 (the figure is printed); `meson introspect --installed` puts the units,
  the sysusers.d and tmpfiles.d snippets where systemd reads them.
- Notifications: a test's NOTIFY_SOCKET receives READY=1 (after which the daemon answers),
  WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a SIGHUP, and
  STOPPING=1 on SIGTERM, from the daemon's pid.
- Socket activation: under `systemd-socket-activate` (the sockets made before the daemon runs,
  names rpc and http), a client's connection starts the daemon, which serves the inherited Unix,
  TCP and HTTP sockets and not the addresses on its command line."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric")]
from harness import DAEMON, Client, Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

BUILD = os.getcwd()  # meson runs tests in the build directory
UNITS = ("eigenwatchd.service", "eigenwatchd.socket", "eigenwatchd-http.socket")


def units_verify_and_security():
    tmp = tempfile.mkdtemp(prefix="ew-units-")
    try:
        for u in UNITS:
            with open(os.path.join(BUILD, "systemd", u)) as f:
                text = f.read()
            m = re.search(r"^ExecStart=(\S+)", text, re.M)
            if u.endswith(".service"):
                assert m and m.group(1).endswith("/sbin/eigenwatchd"), m
                text = text.replace(m.group(1), DAEMON)
            with open(os.path.join(tmp, u), "w") as f:
                f.write(text)
        paths = [os.path.join(tmp, u) for u in UNITS]
        p = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
            (p.returncode, p.stdout, p.stderr)
        p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            "--no-pager", paths[0]], capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for eigenwatchd.service: ([0-9.]+)", p.stdout)
        assert m, p.stdout + p.stderr
        print(f"# systemd-analyze security: exposure {m.group(1)} (0 = safest, 10 = unsafe)")
        assert float(m.group(1)) <= 1.5, p.stdout
        # a unit with a mistake is caught (the check can fail)
        bad = os.path.join(tmp, "bad.service")
        with open(bad, "w") as f:
            f.write("[Service]\nType=notify\nExecStart=relative/eigenwatchd\nProtectSystm=strict\n")
        p = subprocess.run(["systemd-analyze", "verify", bad], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode != 0 or p.stderr.strip(), "verify accepted a broken unit"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p = subprocess.run(["meson", "introspect", "--installed", BUILD], capture_output=True,
                       text=True, timeout=60)
    installed = json.loads(p.stdout).values()
    for want in ("/lib/systemd/system/eigenwatchd.service",
                 "/lib/systemd/system/eigenwatchd.socket",
                 "/lib/systemd/system/eigenwatchd-http.socket",
                 "/lib/sysusers.d/eigenwatch.conf", "/lib/tmpfiles.d/eigenwatch.conf",
                 "/sbin/eigenwatchd"):
        assert any(path.endswith(want) for path in installed), (want, sorted(installed))


class Notify:
    """A NOTIFY_SOCKET: the datagrams the daemon sends, with the sender's pid."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []  # (pid, text)

    def _recv(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        try:
            msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return
        pid = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(data[:4], "little")
        self.got.append((pid, msg.decode()))

    def count(self, word):
        return sum(word in t.split("\n") for _, t in self.got)

    def until(self, word, n=1, timeout=20):
        """Receives until `word` came n times; returns the seconds it took."""
        t0 = time.time()
        while self.count(word) < n and time.time() - t0 < timeout:
            self._recv(t0 + timeout - time.time())
        assert self.count(word) >= n, f"{word} x{n} not received: {self.got}"
        return time.time() - t0


def notifications():
    tmp = tempfile.mkdtemp(prefix="ew-notify-")
    n = Notify(os.path.join(tmp, "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=n.path, WATCHDOG_USEC="200000")
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write("log_level = info\n")
    d = Daemon(env=env, extra=["--config", conf])
    try:
        n.until("READY=1")
        assert d.client().call("ping")["pong"] is True
        ready_pid = [p for p, t in n.got if "READY=1" in t.split("\n")][0]
        assert ready_pid == d.proc.pid, (ready_pid, d.proc.pid)
        assert "MAINPID=%d" % d.proc.pid in "".join(t for _, t in n.got)
        assert "systemd watchdog on" in d.log() and "interval_ms=100" in d.log(), d.log()
        base = n.count("WATCHDOG=1")
        took = n.until("WATCHDOG=1", base + 5, timeout=10)
        assert took < 2.0, f"5 watchdog pings took {took:.2f} s at a 0.1 s interval"
        d.proc.send_signal(signal.SIGHUP)
        n.until("RELOADING=1")
        n.until("READY=1", 2)
        texts = [t for _, t in n.got]
        i = next(k for k, t in enumerate(texts) if "RELOADING=1" in t.split("\n"))
        assert any("READY=1" in t.split("\n") for t in texts[i + 1:]), texts
        assert "config reloaded" in d.log()
        d.proc.send_signal(signal.SIGTERM)
        n.until("STOPPING=1")
        assert d.proc.wait(30) == 0
        assert all(p == d.proc.pid for p, _ in n.got if p is not None), n.got
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def socket_activation():
    tmp = tempfile.mkdtemp(prefix="ew-sa-")
    path = os.path.join(tmp, "ew.sock")
    rpc_port, http_port, unused = free_port(), free_port(), free_port()
    log = open(os.path.join(tmp, "log"), "w")
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", path, "-l", f"127.0.0.1:{rpc_port}",
         "-l", f"127.0.0.1:{http_port}", "--fdname=rpc:rpc:http",
         DAEMON, "--foreground", "--state-dir", tmp, "--log-level", "info",
         "--listen", f"tcp:127.0.0.1:{unused}", "--http", "127.0.0.1:0"],
        stdout=log, stderr=log)
    try:
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.02)
        assert os.path.exists(path), "systemd-socket-activate made no socket"
        assert "msg=\"ready\"" not in open(log.name).read()  # nothing runs until a client comes
        # this connection starts the daemon; the socket file exists from bind(), a moment before
        # systemd-socket-activate listens on it, so a refused connect is retried
        while True:
            try:
                c = Client(f"unix:{path}")
                break
            except ConnectionRefusedError:
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        assert c.call("ping")["pong"] is True
        c.call("create", {"stream": "sa", "dim": 4})
        t = Client(f"tcp:127.0.0.1:{rpc_port}")
        assert [s["stream"] for s in t.call("list")["streams"]] == ["sa"]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=10) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/v1/list", timeout=10) as r:
            assert json.loads(r.read())["streams"][0]["stream"] == "sa"
        text = open(log.name).read()
        assert text.count("inherited=fd") == 3, text
        assert "socket activation: serving the inherited sockets" in text, text
        s = socket.socket()
        try:  # the command line's own address was not opened
            assert s.connect_ex(("127.0.0.1", unused)) != 0, "the configured --listen was bound"
        finally:
            s.close()
        c.close()
        t.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, open(log.name).read()
        assert os.path.exists(path), "the daemon removed a socket it does not own"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Tap()
    t.case("units_verify_clean_security_exposure_installed_paths", units_verify_and_security)
    t.case("notify_ready_watchdog_reloading_stopping", notifications)
    t.case("socket_activation_serves_inherited_unix_tcp_http", socket_activation)
    t.done()


if __name__ == "__main__":
    main()
