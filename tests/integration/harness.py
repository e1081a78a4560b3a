"""Test harness: start a real eigenwatchd on a temporary Unix socket and a loopback TCP port, and
talk to it with a minimal msgpack-RPC client written here from the protocol (PROTOCOL.md) — the
real Python package is a later milestone and is tested separately."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import msgpack

DAEMON = os.environ.get("EWD_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "daemon", "eigenwatchd")


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def expect(code, fn, *a, **kw):
    """Calls fn(*a, **kw), asserts it raises RpcError with wire code `code`; returns the error."""
    try:
        fn(*a, **kw)
    except RpcError as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


class Client:
    def __init__(self, address, timeout=60):
        if address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address[5:])
        else:
            host, port = address[4:].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.up = msgpack.Unpacker(raw=False, max_buffer_size=256 << 20)
        self.msgid = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_message(self):
        while True:
            for m in self.up:
                return m
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("daemon closed the connection")
            self.up.feed(data)

    def call(self, method, params=None):
        self.msgid += 1
        self.sock.sendall(msgpack.packb([0, self.msgid, method, [params] if params is not None
                                         else []], use_bin_type=True))
        m = self.read_message()
        assert m[0] == 1 and m[1] == self.msgid, f"reply {m[:2]} to msgid {self.msgid}"
        if m[2] is not None:
            raise RpcError(m[2]["code"], m[2]["message"])
        return m[3]

    def notify(self, method, params):
        self.sock.sendall(msgpack.packb([2, method, [params]], use_bin_type=True))


class Daemon:
    """A daemon with its own temp dir (or `state_dir`: a restart on an earlier daemon's state);
    .unix and .tcp are its addresses."""

    def __init__(self, config=None, extra=(), default_listeners=False, env=None, state_dir=None):
        self.dir = state_dir or tempfile.mkdtemp(prefix="ewd-")
        args = [DAEMON, "--foreground", "--state-dir", self.dir, "--log-level", "info"]
        known = os.environ.get("EWD_CONFIG_KEYS")  # scripts/regressions-vs-old.sh: an older daemon
        if config and known:
            config = "".join(line for line in config.splitlines(True)
                             if line.split("=")[0].strip() in known.split(","))
        if config:
            path = os.path.join(self.dir, "eigenwatchd.conf")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        if not default_listeners:
            args += ["--listen", f"unix:{self.dir}/s.sock", "--listen", "tcp:127.0.0.1:0"]
            if os.environ.get("EWD_NO_HTTP") is None:  # an older daemon without --http
                args += ["--http", "127.0.0.1:0"]
        args += list(extra)
        self.log_path = os.path.join(self.dir, "log")
        for i in range(1, 1000):  # a restart keeps the earlier logs
            if not os.path.exists(self.log_path):
                break
            self.log_path = os.path.join(self.dir, f"log.{i}")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stderr=self.logf, stdout=subprocess.DEVNULL,
                                     env=env or os.environ.copy())
        deadline = time.time() + 10
        while time.time() < deadline:
            log = self.log()
            if 'msg="ready"' in log:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + log)
            time.sleep(0.02)
        log = self.log()
        m = re.search(r"address=tcp:([0-9.]+):(\d+)", log)
        self.tcp = f"tcp:{m.group(1)}:{m.group(2)}" if m else None
        m = re.search(r"address=unix:(\S+)", log)
        self.unix = f"unix:{m.group(1)}" if m else None
        m = re.search(r"address=(http://\S+/)", log)
        self.http = m.group(1) if m else None  # e.g. http://127.0.0.1:PORT/

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def client(self, tcp=False):
        return Client(self.tcp if tcp else self.unix)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.logf.close()
