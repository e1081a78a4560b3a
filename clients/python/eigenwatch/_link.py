"""The fail-open, batching sender to one daemon (sender.py's Sender keeps one per daemon): its
queue, background thread, exactly-once resends and declared streams — the behaviour the module
doc of eigenwatch.sender describes."""
import atexit
import collections
import dataclasses
import errno
import logging
import os
import select
import socket
import threading
import time
from typing import Optional

import msgpack

from ._wire import Payload, connect, default_address, encode_rows


@dataclasses.dataclass
class SenderStats:
    sent_batches: int = 0      # send() batches acknowledged by the daemon (several may share
                               # one message)
    sent_rows: int = 0
    dropped_batches: int = 0   # discarded by the drop policy (queue full) or after close()
    dropped_rows: int = 0
    rejected_batches: int = 0  # answered with an error (e.g. NON_FINITE, DIM_MISMATCH)
    rejected_rows: int = 0
    duplicate_batches: int = 0  # resent after a reconnect and already applied: not counted again
    reconnects: int = 0        # connections re-established after one was lost
    connect_failures: int = 0
    queued: int = 0            # waiting in the queue or in flight
    last_error: Optional[str] = None


log = logging.getLogger("eigenwatch")


def producer_id() -> str:
    """A name for one Sender (≤ 64 bytes): host, process and a random part."""
    host = socket.gethostname()[:32]
    return f"{host}:{os.getpid()}:{os.urandom(6).hex()}"


def _nrows(rows):
    if rows is None:  # an end-of-step marker
        return 0
    if isinstance(rows, Payload):
        return rows.rows
    shape = getattr(rows, "shape", None)
    if shape is None or len(shape) == 0:
        return 1
    n = 1
    for k in shape[:-1]:
        n *= int(k)
    return n


class _Link:
    """The fail-open, batching sender to one daemon (Sender keeps one per daemon). Thread-safe:
    any thread may call send()."""

    def __init__(self, address: Optional[str] = None, max_queue: int = 1024, drop: str = "oldest",
                 max_inflight: int = 32, connect_timeout: float = 1.0, backoff_min: float = 0.05,
                 backoff_max: float = 2.0, flush_on_exit: float = 2.0, linger: float = 0.05,
                 max_message_rows: int = 8192, producer: Optional[str] = None):
        if drop not in ("oldest", "newest"):
            raise ValueError('drop must be "oldest" or "newest"')
        self.address = address or default_address()
        self.max_queue = max(1, int(max_queue))
        self.drop = drop
        self.max_inflight = max(1, int(max_inflight))
        self.connect_timeout = connect_timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.linger = linger
        self.max_message_rows = max_message_rows
        self._wake_at = max(1, self.max_queue // 4)
        self._q = collections.deque()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)  # signalled when work drains
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._inflight = collections.OrderedDict()  # msgid -> (group, nrows, fields)
        self._resend = collections.deque()  # (group, nrows, fields) unacknowledged at a break
        self._hand = 0  # batches the thread took from the queue and has not put in flight yet
        self.producer = producer or producer_id()
        self._seq = {}  # (run, stream) -> last seq used
        self._warned = set()  # (run, stream) whose refusal was logged
        self._stats = SenderStats()
        self._drops = {}  # (run, stream) -> [rows, batches] discarded: reported to the daemon
        self._declared = {}  # (run, stream) -> create's options (declare())
        self._last_step = {}  # (run, stream, rank) -> (step, world) of its last stepped batch
        self._sent_to = set()  # (run, stream) this Sender queued rows for (close() ends them)
        self._rank_of = {}  # (run, stream) -> the rank it sent stepped rows from (its run's end)
        self._created = set()  # (run, stream) declared streams created on this connection
        self._sock = None
        self._msgid = 0
        self._had_connection = False
        self._thread = threading.Thread(target=self._run, name="eigenwatch-sender", daemon=True)
        self._thread.start()
        if flush_on_exit:
            atexit.register(self.close, flush_on_exit)

    # -- the hot path --
    def send(self, stream: str, rows, _ready=None, run: Optional[str] = None,
             step: Optional[int] = None, rank: Optional[int] = None,
             world: Optional[int] = None) -> bool:
        """Queues rows (or a Payload) for `stream` (in `run`; at training `step` from `rank` of
        `world`, when given); returns True if queued, False if dropped. Never raises. The
        array/tensor is read later by the background thread: do not modify it afterwards."""
        try:
            item = (stream, rows, _ready, run, step, rank, world)
            with self._lock:
                if step is not None:
                    self._last_step[(run, stream, rank)] = (step, world)
                    if rank is not None:
                        self._rank_of[(run, stream)] = rank
                self._sent_to.add((run, stream))
                if self._closed:
                    self._dropped(item)
                    return False
                if len(self._q) >= self.max_queue:
                    if self.drop == "newest":
                        self._dropped(item)
                        return False
                    self._dropped(self._q.popleft())
                self._q.append(item)
                if len(self._q) >= self._wake_at and not self._wake.is_set():
                    self._wake.set()
            return True
        except Exception as e:  # noqa: BLE001 - fail open, whatever happened
            self._stats.last_error = f"send: {e!r}"
            return False

    def declare(self, stream: str, run: Optional[str] = None, **options) -> None:
        """Asks that `stream` (in `run`) be created with create's `options` (world, window_steps,
        eval, rules, ...; dim comes from its first rows) before its first rows go out on each
        connection. Never raises, never waits: the background thread sends it."""
        with self._lock:
            self._declared[(run, stream)] = dict(options)

    def end_steps(self, keys=None) -> int:
        """Queues an end of step (ingest with end_step and no rows) for the last step of every
        stream this Sender sent rows with a step to (or of those among `keys`, (run, stream)
        pairs), from each rank it sent for: the daemon then completes that step without waiting for a later
        one or for step_timeout (the run's last step). close() calls it. Returns how many it
        queued; never raises."""
        wanted = None if keys is None else set(keys)

        def marks():
            chosen = [k for k in self._last_step if wanted is None or k[:2] in wanted]
            for run, stream, rank in chosen:
                step, world = self._last_step.pop((run, stream, rank))
                yield (stream, None, None, run, step, rank, world)
        return self._queue_marks(marks, "end_steps")

    def _queue_marks(self, marks, what) -> int:
        """Queues the markers marks() yields (run under the lock; nothing once closed); returns
        how many. Never raises (fail open)."""
        try:
            with self._lock:
                if self._closed:
                    return 0
                items = list(marks())
                self._q.extend(items)
                self._wake.set()
            return len(items)
        except Exception as e:  # noqa: BLE001 - fail open
            self._stats.last_error = f"{what}: {e!r}"
            return 0

    # -- control --
    def stats(self) -> SenderStats:
        with self._lock:
            s = dataclasses.replace(self._stats)
            s.queued = len(self._q) + len(self._inflight) + len(self._resend) + self._hand
        return s

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until everything queued has been acknowledged (or rejected/dropped); returns
        False if `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._q or self._inflight or self._resend or self._hand:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._cv.wait(min(left, 0.05))
        return True

    def _dropped(self, item):
        """Counts a discarded batch (under the lock): in the stats, and per (run, stream) for
        the daemon, which the next ingest to that stream reports (dropped_rows/_batches)."""
        n = _nrows(item[1])
        self._stats.dropped_batches += 1
        self._stats.dropped_rows += n
        d = self._drops.setdefault((item[3], item[0]), [0, 0])
        d[0] += n
        d[1] += 1

    def end_runs(self) -> int:
        """Queues `flush {end: true}` for every stream this Sender sent rows to: the daemon marks
        each ended (its run is over; /metrics' eigenwatch_stream_ended), so a stall rule can tell
        a finished run from a stalled one. A stream it sent stepped rows to goes with their rank:
        that rank's run is over, and the other ranks' pending steps are left to complete as they
        end them (a rank that closes first never cuts another's last step short). close() calls
        it. Returns how many; never raises."""
        def marks():
            for run, stream in sorted(self._sent_to, key=lambda k: (k[0] or "", k[1])):
                # with the rank: only this rank's run is over, the others' last steps are not
                # cut short (the daemon completes them as their ranks end them)
                yield (stream, None, "end", run, None, self._rank_of.get((run, stream)), None)
            self._sent_to.clear()
        return self._queue_marks(marks, "end_runs")

    def close(self, timeout: float = 2.0) -> bool:
        """Ends the last step of every stream sent with a step (end_steps) and marks every stream
        it sent to ended (end_runs), flushes for up to `timeout` seconds, then stops; what is
        still queued is dropped."""
        if self._closed:
            return True
        self.end_steps()
        self.end_runs()
        ok = self.flush(timeout)
        with self._lock:
            self._closed = True
            for it in self._q:
                self._dropped(it)
            for group, _n, _f in self._resend:
                for it in group:
                    self._dropped(it)
            self._q.clear()
            self._resend.clear()
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        return ok

    # -- the background thread --
    def _disconnect(self, why):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._stats.last_error = why
        with self._lock:  # unacknowledged messages are sent again as they were, first
            back = [e for e in self._inflight.values() if e[0] is not None]  # creates: anew
            self._inflight.clear()
            self._resend.extendleft(reversed(back))

    def _ensure_created(self, run, stream, dim=None):
        """Sends `create` for a declared stream not yet created on this connection (in order,
        before its rows; the reply is read with the others). dim None: a payload's stream, whose
        kind sets its own (a Payload of rows, LabelledRows, says its dim)."""
        with self._lock:
            opts = self._declared.get((run, stream))
            if opts is None or (run, stream) in self._created:
                return
            self._created.add((run, stream))
            self._msgid = self._msgid % 0xFFFFFFFF + 1
            fields = dict(opts, stream=stream)
            if dim is not None:
                fields["dim"] = int(dim)
            if run is not None:
                fields["run"] = run
            self._inflight[self._msgid] = (None, 0, fields)  # None: a create, not rows
            data = msgpack.packb([0, self._msgid, "create", [fields]], use_bin_type=True)
        self._sock.sendall(data)

    def _connect(self):
        with self._lock:
            self._created.clear()  # a new connection may reach a daemon that lost the stream
        try:
            self._sock = connect(self.address, self.connect_timeout)
            self._sock.settimeout(None)
            self._sock.setblocking(True)
            self._unpacker = msgpack.Unpacker(raw=False)
            if self._had_connection:
                self._stats.reconnects += 1
            self._had_connection = True
            return True
        except (OSError, ValueError) as e:
            self._stats.connect_failures += 1
            self._stats.last_error = f"connect: {e}"
            self._sock = None
            return False

    def _read_replies(self, block: float):
        """Reads what the daemon has answered; waits up to `block` seconds for the first bytes."""
        r, _, _ = select.select([self._sock], [], [], block)
        if not r:
            return
        data = self._sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the daemon closed the connection")
        self._unpacker.feed(data)
        for msg in self._unpacker:
            if not (isinstance(msg, list) and len(msg) == 4):
                continue
            with self._lock:
                entry = self._inflight.pop(msg[1], None)
                if entry is None:
                    if msg[1] == 0 and msg[2]:  # a framing error: the daemon closes on us
                        self._stats.last_error = f"{msg[2].get('code')}: {msg[2].get('message')}"
                    continue
                group, n, fields = entry
                if group is None:  # a declared stream's create
                    key = ("create", fields.get("run"), fields["stream"])
                    if msg[2] is not None and key not in self._warned:
                        self._warned.add(key)
                        err = f"{msg[2].get('code')}: {msg[2].get('message')}"
                        self._stats.last_error = err
                        log.warning("eigenwatch: stream %r could not be created as declared "
                                    "(its rows are still sent): %s", fields["stream"], err)
                    continue
                if msg[2] is not None:
                    self._stats.rejected_batches += len(group)
                    self._stats.rejected_rows += n
                    err = f"{msg[2].get('code')}: {msg[2].get('message')}"
                    self._stats.last_error = err
                    key = (fields.get("run"), fields["stream"])
                    if key not in self._warned:  # once per stream: a training loop repeats
                        self._warned.add(key)
                        log.warning("eigenwatch refused rows for stream %r%s: %s (further "
                                    "refusals for it are only counted)", fields["stream"],
                                    f" in run {key[0]!r}" if key[0] else "", err)
                elif isinstance(msg[3], dict) and msg[3].get("duplicate"):
                    self._stats.duplicate_batches += len(group)
                    self._stats.sent_batches += len(group)
                    self._stats.sent_rows += n
                else:
                    self._stats.sent_batches += len(group)
                    self._stats.sent_rows += n
                if not self._q and not self._inflight and not self._resend:
                    self._cv.notify_all()

    def _stamp(self, fields, run, stream):
        """Adds producer, the next seq of (run, stream) and the drops so far to a message."""
        seq = self._seq.get((run, stream), 0) + 1
        self._seq[(run, stream)] = seq
        fields["producer"], fields["seq"] = self.producer, seq
        with self._lock:
            drops = self._drops.get((run, stream))
            if drops:
                fields["dropped_rows"], fields["dropped_batches"] = drops

    def _send_payload(self, item):
        """Sends one Payload as its own ingest (after its stream's create), or counts it
        rejected when it cannot be encoded (logged once per stream)."""
        stream, payload, _ready, run, step, rank, world = item
        try:
            if payload.ready is not None:
                payload.ready.synchronize()  # a non-blocking device copy must land first
            fields = dict(payload.encode(), stream=stream)
        except Exception as e:  # noqa: BLE001 - a bad batch is rejected, never raised
            with self._lock:
                self._hand -= 1
                self._stats.rejected_batches += 1
                self._stats.rejected_rows += payload.rows
                self._stats.last_error = f"encode: {e}"
                if ("encode", run, stream) not in self._warned:
                    self._warned.add(("encode", run, stream))
                    log.warning("eigenwatch: a batch for stream %r could not be encoded (further "
                                "ones are only counted): %s", stream, e)
            return
        for name, v in (("run", run), ("step", step), ("rank", rank), ("world", world)):
            if v is not None:
                fields[name] = v if name == "run" else int(v)
        self._stamp(fields, run, stream)
        self._msgid = self._msgid % 0xFFFFFFFF + 1
        data = msgpack.packb([0, self._msgid, "ingest", [fields]], use_bin_type=True)
        with self._lock:  # in flight before anything is written: a break resends it
            self._inflight[self._msgid] = ([item], payload.rows, fields)
            self._hand -= 1
        self._ensure_created(run, stream, getattr(payload, "dim", None))  # before the batch
        self._sock.sendall(data)

    def _run(self):
        backoff = self.backoff_min
        while True:
            with self._lock:
                idle = not self._q and not self._inflight and not self._resend
            if self._stop.is_set() and (idle or self._sock is None):
                break
            if idle or (not self._wake.is_set() and not self._inflight and not self._stop.is_set()):
                self._wake.wait(self.linger if not idle else 0.1)  # linger: work comes in bursts
                self._wake.clear()
                with self._lock:
                    if not self._q and not self._inflight and not self._resend:
                        continue
            if self._sock is None:
                if not self._connect():
                    self._stop.wait(backoff)
                    backoff = min(self.backoff_max, backoff * 2)
                    continue
                backoff = self.backoff_min
            try:
                # first what a broken connection left unacknowledged, as it was
                while self._resend and len(self._inflight) < self.max_inflight:
                    with self._lock:
                        group, n, fields = self._resend[0]
                    if "seq" in fields:  # rows or a payload (an end-of-step marker creates
                        self._ensure_created(fields.get("run"), fields["stream"],  # nothing)
                                             fields["shape"][1] if "shape" in fields else None)
                    with self._lock:
                        group, n, fields = self._resend.popleft()
                        self._msgid = self._msgid % 0xFFFFFFFF + 1
                        self._inflight[self._msgid] = (group, n, fields)
                    method = "flush" if "end" in fields else "ingest"  # a run's end, or rows
                    self._sock.sendall(msgpack.packb([0, self._msgid, method, [fields]],
                                                     use_bin_type=True))
                # send while the window allows, joining consecutive batches of one stream (and
                # step and rank)
                while not self._resend and len(self._inflight) < self.max_inflight:
                    group, parts, rows_total, key, marker, alone = [], [], 0, None, None, None
                    while True:
                        with self._lock:
                            if not self._q:
                                break
                            item = self._q[0]
                            if key is not None and (item[0] != key[0] or
                                                    item[3:] != key[3:] or
                                                    rows_total >= self.max_message_rows):
                                break
                            self._q.popleft()
                            self._hand += 1  # flush() waits for it while it is in our hands
                        stream, rows, ready = item[:3]
                        if rows is None or isinstance(rows, Payload):  # its own message
                            if group:
                                with self._lock:
                                    self._q.appendleft(item)
                                    self._hand -= 1
                            elif rows is None:  # an end-of-step (or run) marker
                                marker = item
                            else:
                                alone = item
                            break
                        try:
                            if ready is not None:
                                ready.synchronize()  # a non-blocking device copy must land first
                            f = encode_rows(rows)
                        except Exception as e:  # noqa: BLE001 - a bad array is rejected
                            with self._lock:
                                self._hand -= 1
                                self._stats.rejected_batches += 1
                                self._stats.rejected_rows += _nrows(rows)
                                self._stats.last_error = f"encode: {e!r}"
                            continue
                        k = (stream, f["dtype"], f["shape"][1]) + tuple(item[3:])
                        if key is not None and k != key:  # same stream, other dtype/dim: alone
                            with self._lock:
                                self._q.appendleft(item)
                                self._hand -= 1
                            break
                        key = k
                        group.append(item)
                        parts.append(f["data"])
                        rows_total += f["shape"][0]
                    if alone is not None:
                        self._send_payload(alone)
                        continue
                    if marker is not None:  # end of step or of run: no rows, no seq (idempotent)
                        stream, _rows, kind, run, step, rank, world = marker
                        method = "flush" if kind == "end" else "ingest"
                        fields = ({"stream": stream, "end": True} if kind == "end" else
                                  {"stream": stream, "step": int(step), "end_step": True})
                        if run is not None:
                            fields["run"] = run
                        if rank is not None:
                            fields["rank"] = int(rank)
                        if world is not None:
                            fields["world"] = int(world)
                        with self._lock:
                            self._msgid = self._msgid % 0xFFFFFFFF + 1
                            self._inflight[self._msgid] = ([], 0, fields)  # counts no batch
                            self._hand -= 1
                            data = msgpack.packb([0, self._msgid, method, [fields]],
                                                 use_bin_type=True)
                        self._sock.sendall(data)
                        continue
                    if not group:
                        with self._lock:
                            if not self._q and not self._inflight:
                                self._cv.notify_all()
                        break
                    run, step, rank, world = key[3:]
                    self._msgid = self._msgid % 0xFFFFFFFF + 1
                    fields = {"stream": key[0], "data": b"".join(parts), "dtype": key[1],
                              "shape": [rows_total, key[2]]}
                    if run is not None:
                        fields["run"] = run
                    if step is not None:
                        fields["step"] = int(step)
                        if rank is not None:
                            fields["rank"] = int(rank)
                        if world is not None:
                            fields["world"] = int(world)
                    self._stamp(fields, run, key[0])
                    data = msgpack.packb([0, self._msgid, "ingest", [fields]], use_bin_type=True)
                    with self._lock:  # in flight before anything is written: a break resends it
                        self._inflight[self._msgid] = (group, rows_total, fields)
                        self._hand -= len(group)
                    self._ensure_created(run, key[0], key[2])  # on the wire before the rows
                    self._sock.sendall(data)
                with self._lock:
                    more = bool(self._q) and len(self._inflight) < self.max_inflight
                self._read_replies(0.0 if more else 0.05)
            except (OSError, ConnectionError) as e:
                if getattr(e, "errno", None) not in (None, errno.EPIPE, errno.ECONNRESET):
                    pass
                self._disconnect(f"connection lost: {e}")
        if self._sock is not None:
            self._sock.close()

