"""Client: one method per RPC method of proto/PROTOCOL.md, blocking, with typed results and one
exception class carrying the wire error code."""
import dataclasses
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import msgpack

from . import _fanout
from ._wire import connect, default_address, encode_labels, encode_pairs, encode_rows
from .placement import addresses, place
from .errors import EigenwatchError
from .subscription import Subscription, subscription  # noqa: F401 - re-exported



@dataclasses.dataclass
class PingResult:
    version: str
    protocol: int


@dataclasses.dataclass
class IngestResult:
    """count: rows in the state now (rows of a `step` are counted once their step completes);
    step and late: for stepped rows; duplicate: a repeated (producer, seq), not applied."""
    stream: str
    accepted: int
    count: int
    step: Optional[int] = None
    late: bool = False
    duplicate: bool = False


@dataclasses.dataclass
class StreamInfo:
    stream: str
    dim: int
    count: int
    memory_bytes: int
    last_ingest: Optional[float]
    run: str = "default"
    config: Optional[Dict[str, Any]] = None
    queued_jobs: Optional[int] = None
    steps: Optional[Dict[str, Any]] = None
    eval: Optional[Dict[str, Any]] = None
    solve_estimate_s: Optional[float] = None


@dataclasses.dataclass
class QueryResult:
    """metrics maps each requested name to a float or a list of floats; estimates add
    '{name}_error' and topk with vectors adds 'topk_vectors' (see PROTOCOL.md)."""
    stream: str
    count: int
    dim: int
    as_of: int
    elapsed_ms: float
    cached: bool
    metrics: Dict[str, Any]

    def __getitem__(self, name):
        return self.metrics[name]


def _run(run: Optional[str]) -> Dict[str, str]:
    """The run field of a request: absent for the daemon's default run."""
    return {} if run is None else {"run": str(run)}


def _fields(cls, d):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


# Methods that only produce an answer: asking again after a lost connection is harmless.
_ANSWER_ONLY = frozenset({"ping", "query", "list", "info", "stats", "metrics", "runs",
                          "history", "alerts"})


@dataclasses.dataclass
class Series:
    """One (run, stream, metric) series of `history`, as numpy arrays (one entry per point):
    step (int64), time (Unix seconds), value (float64; a 2-D array for list metrics such as
    spectrum, or a list of arrays when their lengths differ), partial (bool), rows, ranks,
    lag_s, skipped. `metric` is the series name (an eval entry's `as`, default its metric's).
    For an estimated metric, error (float64, NaN where a point has none) and bracket (n×2:
    [lo, hi], NaN where none); None for other series."""
    run: str
    stream: str
    metric: str
    step: Any
    time: Any
    value: Any
    partial: Any
    rows: Any
    ranks: Any
    lag_s: Any
    skipped: Any
    error: Any = None
    bracket: Any = None


def _series(d) -> "Series":
    import numpy as np
    vals = d["value"]
    if vals and isinstance(vals[0], list):
        value = (np.array(vals, dtype=np.float64) if len({len(v) for v in vals}) == 1
                 else [np.array(v, dtype=np.float64) for v in vals])
    else:
        value = np.array(vals, dtype=np.float64)
    return Series(d["run"], d["stream"], d["metric"], np.array(d["step"], dtype=np.int64),
                  np.array(d["time"], dtype=np.float64), value,
                  np.array(d["partial"], dtype=bool), np.array(d["rows"], dtype=np.int64),
                  np.array(d["ranks"], dtype=np.int64), np.array(d["lag_s"], dtype=np.float64),
                  np.array(d["skipped"], dtype=np.int64),
                  None if "error" not in d else
                  np.array([np.nan if e is None else e for e in d["error"]], dtype=np.float64),
                  None if "bracket" not in d else
                  np.array([[np.nan, np.nan] if b is None else b for b in d["bracket"]],
                           dtype=np.float64).reshape(-1, 2))


class Client:
    """A connection to eigenwatchd. address: 'unix:PATH' or 'tcp:HOST:PORT' (default:
    $EIGENWATCH_ADDRESS, else the daemon's default socket, else tcp:127.0.0.1:7700).
    Thread-safe (calls are serialised); use one Client per thread for parallel calls.

    A lost connection (a daemon restart) is re-established by the next call. A call whose
    request never left is sent again on the new connection; one that was sent but not answered
    is asked again only when that is harmless — methods that only answer, and ingests that carry
    producer and seq (the daemon drops a repeat) — otherwise it raises ConnectionError, because
    the daemon may have applied it.

    Several daemons: an address list ("tcp:a:7700,tcp:b:7700", or a list) makes a Client of
    them all (proto/PROTOCOL.md, "Many daemons"). A call that names one stream goes to the daemon
    eigenwatch.placement.place() gives it — where a Sender with the same list sent its rows —
    and runs, list, history, alerts, snapshot, stats (by daemon) and subscribe go to every daemon
    and come back merged. One that cannot be reached makes the call raise."""

    _members: Optional[Dict[str, "Client"]] = None  # several daemons: one Client each

    def __init__(self, address=None, timeout: float = 60.0):
        self.addresses = addresses(address if address else default_address())
        if not self.addresses:
            raise ValueError(f"no daemon address in {address!r}")
        self.address = ",".join(self.addresses)
        self.timeout = timeout
        self._sock = None
        self._msgid = 0
        self._lock = threading.Lock()
        self.reconnects = 0
        self._estimates: Dict[Any, Any] = {}
        if len(self.addresses) > 1:
            self._members = {}
            try:
                for a in self.addresses:
                    self._members[a] = Client(a, timeout)
            except BaseException:
                self.close()
                raise
            return
        self._connect()

    def daemon_of(self, stream: str, run: Optional[str] = None) -> str:
        """The address of the daemon (run, stream) lives on."""
        return self.addresses[0] if len(self.addresses) == 1 else place(run, stream,
                                                                         self.addresses)

    # -- plumbing --
    def _connect(self):
        self._sock = connect(self.address, self.timeout)
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)

    def _drop(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def close(self):
        self._drop()
        for m in (self._members or {}).values():
            m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, /, _timeout: Optional[float] = None, **params) -> Any:
        """Sends a request and returns its result; raises EigenwatchError for an error reply and
        ConnectionError/OSError when the daemon cannot be reached (see the class doc). _timeout
        (seconds) replaces the client's timeout for this call's reply. With several daemons: on
        the stream's daemon, or on all of them, merged (see the class doc)."""
        if self._members is not None:
            return _fanout.call(self._members, self.addresses, method, params, _timeout)
        harmless = method in _ANSWER_ONLY or ("producer" in params and "seq" in params)
        with self._lock:
            if _timeout is None:
                return self._call_locked(method, params, harmless, None)
            if self._sock is not None:
                self._sock.settimeout(_timeout)
            try:
                return self._call_locked(method, params, harmless, _timeout)
            finally:
                if self._sock is not None:
                    self._sock.settimeout(self.timeout)

    def _call_locked(self, method, params, harmless, timeout):
        for attempt in (0, 1):
            sent = False
            try:
                if self._sock is None:
                    self._connect()
                    if timeout is not None:
                        self._sock.settimeout(timeout)
                    if attempt or self._msgid:
                        self.reconnects += 1
                self._msgid = (self._msgid + 1) & 0xFFFFFFFF or 1
                msgid = self._msgid
                self._sock.sendall(msgpack.packb([0, msgid, method, [params] if params else []],
                                                 use_bin_type=True))
                sent = True
                return self._answer(msgid)
            except EigenwatchError:
                raise
            except (OSError, ConnectionError):
                self._drop()
                if attempt == 0 and (not sent or harmless):
                    continue
                raise

    def _answer(self, msgid):
        while True:
            for msg in self._unpacker:
                if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 1):
                    raise ConnectionError(f"unexpected message from daemon: {msg!r:.200}")
                if msg[1] != msgid and msg[1] != 0:
                    continue  # not ours (cannot happen on a connection used only here)
                if msg[2] is not None:
                    err = msg[2]
                    raise EigenwatchError(err.get("code", "INTERNAL"), err.get("message", ""))
                return msg[3]
            data = self._sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self._unpacker.feed(data)

    def notify(self, method: str, **params) -> None:
        if self._members is not None:  # a notification names its stream: to the stream's daemon
            return self._members[self.daemon_of(params["stream"], params.get("run"))].notify(
                method, **params)
        """Sends a notification (no reply; errors are only counted by the daemon). A lost
        connection is re-established first."""
        with self._lock:
            if self._sock is None:
                self._connect()
                self.reconnects += 1
            try:
                self._sock.sendall(msgpack.packb([2, method, [params]], use_bin_type=True))
            except OSError:
                self._drop()
                raise

    # -- the methods --
    def ping(self) -> PingResult:
        return _fields(PingResult, self.call("ping"))

    def create(self, stream: str, dim: Optional[int] = None, run: Optional[str] = None,
               **config) -> Dict[str, Any]:
        """config: any other field of create, by its wire name — the stream's configuration
        (the library's table) and the daemon's own (world, step_timeout, recent, window_steps,
        eval, rules); proto/PROTOCOL.md lists them all with their types and defaults, and the
        reply's "config" (as info's) says what the stream got.
        dim: a matrix stream's width (required for it); the other kinds set their own (tokens:
        its columns; stats: its shape; paired: dx + dy of its dims), so leave it None.
        Every method that names a stream takes run= (the daemon's default run when None)."""
        head = {"dim": dim} if dim is not None else {}  # dim first: the vectors' byte order
        return self.call("create", stream=stream, **_run(run), **head, **config)

    def ingest(self, stream: str, rows, notify: bool = False, run: Optional[str] = None,
               step: Optional[int] = None, rank: Optional[int] = None,
               world: Optional[int] = None, end_step: bool = False,
               producer: Optional[str] = None, seq: Optional[int] = None,
               labels=None) -> Optional[IngestResult]:
        """rows: numpy array or torch tensor, (n, d) / (d,) / (..., d); f32, f64, f16 (numpy or
        torch) or bf16 (torch), sent raw. With notify=True returns None at once. step, rank,
        world, end_step: the training step these rows belong to (staged until it completes);
        producer and seq: exactly-once (see PROTOCOL.md). labels: one non-negative integer per
        row (a sequence, numpy array or torch tensor), kept with the window's rows for the
        grouped metrics and dsmi; a stream's first batch decides whether it is labelled."""
        fields = encode_rows(rows)
        if labels is not None:
            if hasattr(labels, "detach"):  # a torch tensor
                labels = labels.detach().cpu()
            fields["labels"] = encode_labels(labels)
        return self._ingest(stream, fields, notify, run, step, rank, world, end_step, producer,
                            seq)

    def _ingest(self, stream, fields, notify, run, step, rank, world, end_step, producer, seq):
        """ingest with a batch's `fields` and the training and exactly-once fields given."""
        for k, v in (("step", step), ("rank", rank), ("world", world), ("producer", producer),
                     ("seq", seq)):
            if v is not None:
                fields[k] = v
        if end_step:
            fields["end_step"] = True
        if notify:
            self.notify("ingest", stream=stream, **_run(run), **fields)
            return None
        return _fields(IngestResult, self.call("ingest", stream=stream, **_run(run), **fields))

    def ingest_pairs(self, stream: str, x, y, notify: bool = False, run: Optional[str] = None,
                     step: Optional[int] = None, rank: Optional[int] = None,
                     world: Optional[int] = None, end_step: bool = False,
                     producer: Optional[str] = None, seq: Optional[int] = None
                     ) -> Optional[IngestResult]:
        """Paired rows into a paired stream (create it with kind="paired", dims=[dx, dy]): x (n,
        dx) and y (n, dy), row i of x paired with row i of y, each as ingest's rows (numpy or
        torch; their dtypes may differ). The other arguments are ingest's."""
        fields = encode_pairs(x, y)
        return self._ingest(stream, fields, notify, run, step, rank, world, end_step, producer,
                            seq)

    def nullify(self, stream: str, x, y, run: Optional[str] = None):
        """Dissecting CLIP's "nullify the prompt": y − x·A* as a float64 array (n, dy), with
        A* = (C_xx + 1e-12 I)⁺ C_xy from every pair the paired stream (features "linear") holds
        — y with what the stream's pairs say x explains taken out. x (n, dx), y (n, dy) as
        ingest_pairs's."""
        import numpy as np
        f = encode_pairs(x, y)
        r = self.call("nullify", stream=stream, **_run(run), **f)["y"]
        return np.frombuffer(r["data"], dtype="<f8").reshape(r["shape"]).copy()

    def ingest_rows(self, stream: str, rows: Sequence[Sequence[float]],
                    run: Optional[str] = None) -> IngestResult:
        """The 'rows' form: a list of lists of numbers (ints allowed)."""
        return _fields(IngestResult, self.call("ingest", stream=stream, **_run(run),
                                               rows=[list(r) for r in rows]))

    def query(self, stream: str, metrics: Union[str, List[str]],
              params: Optional[Dict[str, Any]] = None, center: Optional[bool] = None,
              source: Optional[str] = None, fresh: bool = False,
              max_lag: Optional[int] = None, run: Optional[str] = None,
              method: Optional[str] = None, timeout: Optional[float] = None) -> QueryResult:
        """Metrics of a stream. method: "auto" (default), "slq" (quick, with NAME_error) or
        "exact". timeout: seconds to wait for the answer; by default the larger of the client's
        timeout and twice the daemon's estimate of a fresh exact solve on this stream plus 10 s
        (info's solve_estimate_s, asked once per stream and kept for a minute), so that a long
        solve at large d is waited for instead of cut off."""
        p: Dict[str, Any] = {"stream": stream, **_run(run),
                             "metrics": [metrics] if isinstance(metrics, str) else list(metrics)}
        if method is not None:
            p["method"] = method
        if params:
            p["params"] = params
        if center is not None:
            p["center"] = bool(center)
        if source is not None:
            p["source"] = source
        if fresh:
            p["fresh"] = True
        if max_lag is not None:
            p["max_lag"] = int(max_lag)
        if timeout is None:
            timeout = self._query_timeout(stream, run)
        return _fields(QueryResult, self.call("query", _timeout=timeout, **p))

    def _query_timeout(self, stream: str, run: Optional[str]) -> float:
        key = (run, stream)
        now = time.monotonic()
        hit = self._estimates.get(key)
        if hit is None or now - hit[0] > 60.0:
            try:
                est = float(self.call("info", stream=stream, **_run(run)).get("solve_estimate_s") or 0)
            except EigenwatchError:
                est = 0.0  # no such stream (yet): the query itself will say so
            if len(self._estimates) > 4096:
                self._estimates.clear()
            hit = self._estimates[key] = (now, est)
        return max(self.timeout, 2.0 * hit[1] + 10.0)

    def list(self, run: Optional[str] = None) -> List[StreamInfo]:
        """Every stream, or one run's."""
        return [_fields(StreamInfo, s) for s in self.call("list", **_run(run))["streams"]]

    def runs(self) -> List[Dict[str, Any]]:
        """[{"run", "streams": [names], "first_step", "last_step", "last_activity": Unix seconds
        or None}], sorted (the steps absent until one completes)."""
        return self.call("runs")["runs"]

    def flush(self, stream: str, run: Optional[str] = None, end: bool = False) -> int:
        """Completes every pending step of the stream now; returns how many. end=True also marks
        the stream ended (its run is over) until rows come again."""
        extra = {"end": True} if end else {}
        return self.call("flush", stream=stream, **_run(run), **extra)["completed"]

    def info(self, stream: str, run: Optional[str] = None) -> StreamInfo:
        return _fields(StreamInfo, self.call("info", stream=stream, **_run(run)))

    def reset(self, stream: str, run: Optional[str] = None) -> Dict[str, Any]:
        return self.call("reset", stream=stream, **_run(run))

    def drop(self, stream: Optional[str] = None, run: Optional[str] = None) -> Dict[str, Any]:
        """Deletes a stream; with `run` and no stream, every stream of that run."""
        if stream is None:
            if run is None:
                raise ValueError("drop needs a stream, or a run to drop whole")
            return self.call("drop", run=run)
        return self.call("drop", stream=stream, **_run(run))

    def stats(self) -> Dict[str, Any]:
        return self.call("stats")

    def metrics(self) -> List[Dict[str, Any]]:
        return self.call("metrics")["metrics"]

    def snapshot(self) -> Dict[str, Any]:
        """Writes every changed stream's snapshot now; returns once they are on disk:
        {"streams": written, "bytes": total, "seconds": s}."""
        return self.call("snapshot")

    def history(self, stream: Optional[str] = None, metrics=None, run: Optional[str] = None,
                streams: Optional[List[str]] = None, from_step: Optional[int] = None,
                to_step: Optional[int] = None, max_points: Optional[int] = None,
                agg: Optional[str] = None) -> Dict[Tuple[str, str], "Series"]:
        """Evaluated points by step, as numpy arrays: {(stream, metric): Series}. Without stream
        and streams, every stream of the run; more points than max_points (default 2000) in the
        range are merged into equal step buckets (agg: last, mean, min or max)."""
        p: Dict[str, Any] = dict(_run(run))
        for k, v in (("stream", stream), ("streams", streams), ("from_step", from_step),
                     ("to_step", to_step), ("max_points", max_points), ("agg", agg)):
            if v is not None:
                p[k] = v
        if metrics is not None:
            p["metrics"] = [metrics] if isinstance(metrics, str) else list(metrics)
        out = {}
        for d in self.call("history", **p)["series"]:
            s = _series(d)
            out[(s.stream, s.metric)] = s
        return out

    def alert_set(self, stream: str, rules: List[Dict[str, Any]],
                  run: Optional[str] = None) -> Dict[str, Any]:
        """Replaces the stream's alert rules: [{name, metric, when, value, steps,
        baseline_steps, after_step}], when one of below, above, drop, below_baseline, stale,
        non_finite; after_step is a warm-up (points at steps below it are not checked)."""
        return self.call("alert_set", stream=stream, rules=list(rules), **_run(run))

    def alerts(self, stream: Optional[str] = None, run: Optional[str] = None) -> List[Dict]:
        """Every rule with its state ("firing" with the step it fired at, or "ok")."""
        p: Dict[str, Any] = dict(_run(run))
        if stream is not None:
            p["stream"] = stream
        return self.call("alerts", **p)["alerts"]

    def subscribe(self, stream: Optional[str] = None, run: Optional[str] = None,
                  metrics=None) -> Subscription:
        """A Subscription (its own connection) to the metrics and alert notifications of the
        streams matching `stream` (a name or a `*` glob; default all) in `run`."""
        p: Dict[str, Any] = dict(_run(run))
        if stream is not None:
            p["stream"] = stream
        if metrics is not None:
            p["metrics"] = [metrics] if isinstance(metrics, str) else list(metrics)
        return subscription(self.addresses, p, self.timeout)

    def export(self, stream: str, run: Optional[str] = None) -> bytes:
        """The stream's whole saved state (docs/STATE.md), for `merge` into another daemon."""
        return self.call("export", stream=stream, **_run(run))["state"]

    def merge(self, stream: str, state: bytes, run: Optional[str] = None) -> Dict[str, Any]:
        """Folds an exported state into `stream` (created with the state's configuration if
        absent): {"stream", "merged": rows in the state, "count": rows now, "created": bool}."""
        return self.call("merge", stream=stream, state=bytes(state), **_run(run))
