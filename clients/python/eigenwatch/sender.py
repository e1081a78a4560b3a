"""Sender: the fail-open path for training loops.

send() only appends to a bounded in-memory queue and returns (microseconds); it never raises and
never blocks because of the daemon. A background thread wakes every `linger` seconds (or early,
when the queue is a quarter full or on flush), joins consecutive batches of the same stream into
one message, sends them as acknowledged ingest requests (pipelined, up to `max_inflight`
unanswered), and counts what happened. Waking per send() would take the GIL from the training
loop for every batch (measured: +60% on a 1.2 ms CPU step); lingering makes it a burst every
50 ms. If the daemon is away it retries with exponential backoff; requests that were sent but
not acknowledged when a connection broke are put back at the head of the queue and sent again, so
a daemon restart loses only what the drop policy discards while the queue is full ("oldest":
the oldest queued batch makes room; "newest": the new batch is refused).

Exactly once: every message carries this Sender's `producer` id and a `seq` increasing per
(run, stream). A message that was sent but not acknowledged when the connection broke is sent
again after the reconnect as it was — same rows, same seq — so if the daemon had applied it, it
answers `duplicate: true` and nothing counts twice. Batches with a training `step` (and `rank`)
are joined only with batches of the same step and rank. A refusal (DIM_MISMATCH, NON_FINITE, ...)
is logged once per stream (logger "eigenwatch") and counted.

Declared streams (declare(): create's options, as watch() passes them): on each connection, before
a declared stream's first rows, the thread sends `create` with those options and the rows' d, so
the stream exists as the user asked before any row could create it with the defaults. A refusal
(e.g. STREAM_EXISTS: another configuration) is logged once; the rows are sent anyway.

Payloads (rl.py's token and stats batches): send() also takes a Payload instead of rows. Each is
one ingest message of its own (never joined: its columns, mask and lengths belong together) with
the fields its encode() gives, and otherwise goes as rows do: queued, producer and seq, declared
stream created first (no dim: a tokens or stats stream sets its own), resent as it was after a
break, dropped and counted as `Payload.rows` rows.
"""
import atexit
import dataclasses
import time
from typing import Dict, Optional

from ._link import SenderStats, _Link, producer_id  # noqa: F401 - SenderStats re-exported
from ._wire import default_address
from .placement import addresses, place


def _sum_stats(parts) -> SenderStats:
    """Every counter of `parts` added up; last_error the last one's that has one."""
    total = SenderStats()
    for st in parts:
        for f in dataclasses.fields(SenderStats):
            if f.name == "last_error":
                total.last_error = st.last_error or total.last_error
            else:
                setattr(total, f.name, getattr(total, f.name) + getattr(st, f.name))
    return total


class Sender:
    """Fail-open, batching sender (see the module's doc). Thread-safe: any thread may call
    send().

    address: one daemon ('unix:PATH', 'tcp:HOST:PORT'), or several, comma-separated or as a list
    (EIGENWATCH_ADDRESS="tcp:a:7700,tcp:b:7700"; default: default_address()). With several, each
    (run, stream) goes to the daemon eigenwatch.placement.place() names — the same one from every
    rank, so a step's rows meet on one daemon — and the Sender keeps one connection, queue
    (max_queue batches each) and fail-open state per daemon: a daemon that is down loses only
    its own streams' rows while it is down (counted in stats()), and no stream moves to another.
    The other arguments are each daemon's queue's (see the module's doc)."""

    def __init__(self, address=None, max_queue: int = 1024, drop: str = "oldest",
                 max_inflight: int = 32, connect_timeout: float = 1.0, backoff_min: float = 0.05,
                 backoff_max: float = 2.0, flush_on_exit: float = 2.0, linger: float = 0.05,
                 max_message_rows: int = 8192):
        if drop not in ("oldest", "newest"):
            raise ValueError('drop must be "oldest" or "newest"')
        self.addresses = addresses(address if address else default_address())
        if not self.addresses:
            raise ValueError(f"no daemon address in {address!r}")
        self.address = ",".join(self.addresses)
        self.producer = producer_id()
        self._declared = {}  # (run, stream) -> create's options (declare())
        self._closed = False
        self._links = {a: _Link(a, max_queue, drop, max_inflight, connect_timeout, backoff_min,
                                backoff_max, 0, linger, max_message_rows, self.producer)
                       for a in self.addresses}
        if flush_on_exit:
            atexit.register(self.close, flush_on_exit)

    def daemon_of(self, stream: str, run: Optional[str] = None) -> str:
        """The address (run, stream) is sent to."""
        if len(self.addresses) == 1:
            return self.addresses[0]
        return place(run, stream, self.addresses)

    def send(self, stream: str, rows, _ready=None, run: Optional[str] = None,
             step: Optional[int] = None, rank: Optional[int] = None,
             world: Optional[int] = None) -> bool:
        """Queues rows (or a Payload) for `stream` (in `run`; at training `step` from `rank` of
        `world`, when given) on its daemon's queue; returns True if queued, False if dropped.
        Never raises. The array/tensor is read later by a background thread: do not modify it
        afterwards."""
        try:
            link = self._links[self.daemon_of(stream, run)]
        except Exception as e:  # noqa: BLE001 - fail open, whatever happened
            for ln in self._links.values():
                ln._stats.last_error = f"send: {e!r}"
            return False
        return link.send(stream, rows, _ready, run, step, rank, world)

    def declare(self, stream: str, run: Optional[str] = None, **options) -> None:
        """Asks that `stream` (in `run`) be created with create's `options` before its first
        rows go out on each connection to its daemon (see _Link.declare). Never raises."""
        try:
            self._declared[(run, stream)] = dict(options)
            self._links[self.daemon_of(stream, run)].declare(stream, run=run, **options)
        except Exception:  # noqa: BLE001 - fail open
            pass

    def end_steps(self, keys=None) -> int:
        """Queues the end of the last step of every stream sent with a step (or of those among
        `keys`), on each daemon (see _Link.end_steps). Returns how many; never raises."""
        return sum(ln.end_steps(keys) for ln in self._links.values())

    def end_runs(self) -> int:
        """Queues `flush {end: true}` for every stream this Sender sent rows to, on each daemon
        (see _Link.end_runs). Returns how many; never raises."""
        return sum(ln.end_runs() for ln in self._links.values())

    def stats(self) -> SenderStats:
        """The counters of every daemon's queue added up (stats_by_daemon() has each)."""
        return _sum_stats([ln.stats() for ln in self._links.values()])

    def stats_by_daemon(self) -> Dict[str, SenderStats]:
        """Each daemon's counters, by address."""
        return {a: ln.stats() for a, ln in self._links.items()}

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything queued for every daemon has been acknowledged (or rejected or
        dropped); False if `timeout` seconds passed first (a daemon that is down holds its
        queue until it comes back or the queue drops)."""
        deadline = time.monotonic() + timeout
        ok = True
        for ln in self._links.values():
            ok = ln.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout: float = 2.0) -> bool:
        """Ends every stream's last step and marks the streams ended on each daemon, flushes for
        up to `timeout` seconds in all, then stops every queue; what is still queued is
        dropped."""
        if self._closed:
            return True
        self._closed = True
        for ln in self._links.values():
            ln.end_steps()
            ln.end_runs()
        deadline = time.monotonic() + timeout
        ok = self.flush(timeout)
        for ln in self._links.values():
            ok = ln.close(max(0.0, deadline - time.monotonic())) and ok
        return ok
