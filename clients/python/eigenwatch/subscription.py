"""Subscription: the metrics and alert notifications of `subscribe`, on a connection of their own
(Client.subscribe and eigenwatch.torch.watch open them); subscription(): one per daemon when
given several addresses, merged."""
import socket
import time
from typing import Any, Dict, Optional

import msgpack

from . import _fanout
from ._wire import connect
from .errors import EigenwatchError
from .placement import addresses


class Subscription:
    """Notifications from `Client.subscribe`: iterate to get (kind, payload) pairs, kind "metrics"
    ({"run", "stream", "step", "time", "rows", "ranks", "partial", "skipped", "metrics":
    {name: value}}) or
    "alert" ({"run", "stream", "rule", "state", "step", "value", "message"}). It has its own
    connection; after a lost connection it reconnects and subscribes again (what was evaluated
    meanwhile is in `history`). next(timeout) returns None when nothing came in time."""

    def __init__(self, address: str, params: Dict[str, Any], timeout: float = 60.0):
        self.address, self.params, self.timeout = address, params, timeout
        self.id = None
        self._sock = None
        self.reconnects = 0
        self._open()

    def _open(self):
        self._sock = connect(self.address, self.timeout)
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        self._sock.sendall(msgpack.packb([0, 1, "subscribe", [self.params]], use_bin_type=True))
        self._pending = []
        while self.id is None or not isinstance(self.id, int) or self._sock is None:
            m = self._read(self.timeout)
            if m is None:
                raise ConnectionError("no answer to subscribe")
            if m[0] == 1:
                if m[2] is not None:
                    raise EigenwatchError(m[2].get("code", "INTERNAL"), m[2].get("message", ""))
                self.id = m[3]["subscription"]
                break
            self._pending.append(m)

    def _read(self, timeout):
        self._sock.settimeout(timeout)
        while True:
            for m in self._unpacker:
                return m
            try:
                data = self._sock.recv(1 << 20)
            except socket.timeout:
                return None
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self._unpacker.feed(data)

    def next(self, timeout: Optional[float] = None):
        """The next (kind, payload), or None after `timeout` seconds (None: wait)."""
        while True:
            if self._pending:
                m = self._pending.pop(0)
            else:
                try:
                    if self._sock is None:
                        self.id = None
                        self._open()
                        self.reconnects += 1
                        continue
                    m = self._read(timeout)
                except (OSError, ConnectionError):
                    self.close()
                    time.sleep(0.2)
                    try:
                        self.id = None
                        self._open()
                        self.reconnects += 1
                    except (OSError, ConnectionError):
                        self._sock = None
                        if timeout is not None:
                            return None
                    continue
                if m is None:
                    return None
            if m[0] == 2 and m[1] in ("metrics", "alert") and m[2]:
                return m[1], m[2][0]

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def subscription(address, params: Dict[str, Any], timeout: float = 60.0):
    """A Subscription to one daemon, or (several addresses) one to each, merged."""
    addrs = addresses(address)
    if len(addrs) == 1:
        return Subscription(addrs[0], params, timeout)
    return _fanout.MultiSubscription(addrs, params, timeout, Subscription)
