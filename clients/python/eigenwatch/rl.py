"""eigenwatch.rl: per-token and per-cell statistics of an RL policy — token entropy,
log-probabilities, advantages; a value per layer (and head) — sent to token and stats streams.

    ts = TokenStream("exp-42", "policy", columns=("entropy", "logp", "advantage"))
    ts.log(step, entropy=ent, logp=logp, advantage=adv, mask=response_mask, lengths=seq_lens)
    ss = StatsStream("exp-42", "attn_entropy", shape=(n_layers, n_heads), reduce="mean")
    ss.log(step, per_head_entropy, counts=tokens_per_head)
    ts.close(); ss.close()

The daemon reduces over the union of every rank's counted tokens of a step (never a mean of
per-rank means): token_mean, quantiles, the covariance of logp and advantage, per-sequence means.

What is copied, when. log() flattens each argument to 1-D (C order) and takes its own copy before
it returns, so the caller may overwrite its tensors at once:
  - a CPU tensor or numpy array is copied into host memory there and then (a memcpy);
  - a tensor on a device is converted on the device (its dtype, the mask's 0/1) and copied into
    pinned host memory with non_blocking=True on the tensor's current stream, after which one CUDA
    event is recorded — the path eigenwatch.torch.watch takes. Nothing on the training thread
    waits for the device (no .item(), .cpu(), .tolist() or synchronize): the Sender's thread
    waits on the event before it reads the copy. Kernels queued later on the same stream may
    write the tensors; work on other streams must not until the copy is done.
Columns keep their dtype when it is float32, float64, float16 or bfloat16 (bfloat16 goes as its
raw 2-byte words, dtype "bf16"); any other dtype is converted to float32. The mask goes as u8
(nonzero or True = counted), lengths as u32 little-endian, one per sequence, summing to the
tokens n (masked tokens included).

Bad arguments raise ValueError from log() — a column not declared or missing, columns of
different lengths, a mask that is not n long, lengths that do not sum to n (checked at log() when
the lengths are on the host; for lengths on a device, once the copy has landed, on the Sender's
thread: the batch is then counted rejected and logged once). Nothing about the daemon ever
raises or waits: every batch goes through the fail-open Sender (eigenwatch.sender), one ingest
message per log(), with the Sender's producer and seq (exactly once across reconnects). When the
daemon is down or slow the batches queue in memory up to the Sender's max_queue and its drop
policy then discards whole batches (counted in sender.stats(): a token batch counts its n tokens
as rows, a stats batch one row; the daemon is told the drops with the next batch it gets).
"""
import operator
import re
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ._wire import Payload
from .sender import Sender

_NAME = re.compile(r"[a-z0-9_]{1,32}\Z")
_NP_FLOATS = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
              np.dtype(np.float16): "f16"}
REDUCES = ("mean", "max", "min", "sum")
MAX_CELLS = 65536


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _numel(x) -> int:
    if _is_torch(x):
        return int(x.numel())  # metadata: no device access
    return int(np.size(x))


def _ndim_shape(x):
    return tuple(int(k) for k in (x.shape if hasattr(x, "shape") else np.shape(x)))


def _on_device(t) -> bool:
    """Whether a tensor's values are somewhere the host must not read them from synchronously."""
    return t.device.type != "cpu"


def _pinned_copy(t):
    """A pinned host tensor that a non-blocking copy of device tensor `t` is queued into (on the
    current stream of t's device); read it only after an event recorded after this."""
    import torch
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    return host


def _record_event(device):
    """A CUDA event recorded on `device`'s current stream, after the copies queued there."""
    import torch
    ev = torch.cuda.Event()
    ev.record(torch.cuda.current_stream(device))
    return ev


def _stage_torch(x, kind, what, fallback):
    """(host, wire dtype, device or None) for a torch tensor: converted where it is, flattened,
    and copied — now for a CPU tensor (to numpy), queued non-blocking for a device one."""
    import torch
    t = x.detach().reshape(-1)
    if kind == "mask":
        t = t.to(torch.uint8) if t.dtype == torch.bool else (t != 0).to(torch.uint8)
        wire = "u8"
    elif kind == "lengths":
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, not {t.dtype}")
        t, wire = t.to(torch.int64), "u32"
    else:
        names = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16",
                 torch.bfloat16: "bf16"}
        if t.dtype not in names:
            if t.dtype.is_complex:
                raise ValueError(f"{what} must be real numbers, not {t.dtype}")
            t = t.to(torch.float64 if fallback == "f64" else torch.float32)
        wire = names[t.dtype]
    if _on_device(t):
        return _pinned_copy(t), wire, t.device
    if t.dtype == torch.bfloat16:
        t = t.contiguous().view(torch.int16)
    return t.numpy().copy(), wire, None


def _stage_numpy(x, kind, what, fallback):
    a = np.asarray(x).reshape(-1)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, not {a.dtype}")
    if kind == "mask":
        return (a != 0).astype(np.uint8), "u8", None
    if kind == "lengths":
        if a.dtype.kind not in "iu":
            raise ValueError(f"lengths must be integers, not {a.dtype}")
        return a.astype(np.int64), "u32", None
    if np.dtype(a.dtype.name) not in _NP_FLOATS:
        a = a.astype(np.float64 if fallback == "f64" else np.float32)
    a = np.array(a, dtype=a.dtype.newbyteorder("<"), copy=True)  # ours, little-endian
    return a, _NP_FLOATS[np.dtype(a.dtype.name)], None


def _stage(x, kind, what, fallback="f32"):
    """Takes this batch's copy of argument `what` (see the module's docstring) as a "mask",
    "lengths" or "float": (host, wire dtype, device or None). Raises ValueError for a
    non-numeric argument."""
    return (_stage_torch if _is_torch(x) else _stage_numpy)(x, kind, what, fallback)


def _bytes(host, wire, n=None) -> bytes:
    """The wire bytes of a staged part (on the Sender's thread, after the copy landed)."""
    if _is_torch(host):
        import torch
        host = host.view(torch.int16).numpy() if host.dtype == torch.bfloat16 else host.numpy()
    if wire == "u32":
        _check_lengths(host, n)
        return host.astype("<u4").tobytes()
    return host.tobytes()


def _check_lengths(a, n):
    if a.size and (int(a.min()) < 0 or int(a.max()) > 0xFFFFFFFF):
        raise ValueError("lengths must be between 0 and 2^32 - 1")
    total = int(a.sum())
    if total != n:
        raise ValueError(f"lengths sum to {total}, not to the {n} tokens of the columns")


class _TokenBatch(Payload):
    def __init__(self, n, columns, mask, lengths, ready):
        self.rows, self.n, self.ready = n, n, ready
        self.columns, self.mask, self.lengths = columns, mask, lengths

    def encode(self) -> dict:
        f: Dict[str, Any] = {"columns": {name: {"dtype": wire, "data": _bytes(h, wire)}
                                         for name, (h, wire) in self.columns}}
        if self.mask is not None:
            f["mask"] = _bytes(*self.mask)
        if self.lengths is not None:
            f["lengths"] = _bytes(*self.lengths, n=self.n)
        return f


class _StatsBatch(Payload):
    rows = 1  # one observation of every cell

    def __init__(self, values, counts, ready):
        self.values, self.counts, self.ready = values, counts, ready

    def encode(self) -> dict:
        f = {"values": {"dtype": self.values[1], "data": _bytes(*self.values)}}
        if self.counts is not None:
            f["counts"] = {"dtype": self.counts[1], "data": _bytes(*self.counts)}
        return f


def _ready(staged):
    """One event after the device copies of a batch (None when all of it is on the host)."""
    devices = {str(d): d for _h, _w, d in staged if d is not None}
    if len(devices) > 1:
        raise ValueError(f"a batch's tensors are on {sorted(devices)}: at most one device "
                         "(and the host)")
    return _record_event(next(iter(devices.values()))) if devices else None


def _default_rank_world(rank, world):
    """rank/world as given, else torch.distributed's when it is initialised, else 0 and 1."""
    drank = dworld = None
    if "torch" in sys.modules:  # torch not imported: no process group can be initialised
        from .torch import _distributed
        drank, dworld = _distributed()
    rank = int(rank if rank is not None else (drank if drank is not None else 0))
    world = int(world if world is not None else (dworld if dworld is not None else 1))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of world {world}: want 0 <= rank < world")
    return rank, world


class _Stream:
    """What TokenStream and StatsStream share: the Sender, the declared stream, on_metrics."""

    def __init__(self, run, stream, options, world, rank, window_steps, eval, rules,  # noqa: A002
                 sender, address, on_metrics):
        self.run, self.stream = run, str(stream)
        self.rank, self.world = _default_rank_world(rank, world)
        if window_steps is not None and int(window_steps) < 1:
            raise ValueError("window_steps must be >= 1")
        options = dict(options, world=self.world)
        if window_steps is not None:
            options["window_steps"] = int(window_steps)
        if eval is not None:
            options["eval"] = [dict(e) if isinstance(e, dict) else {"metric": str(e)}
                               for e in eval]
        if rules is not None:
            options["rules"] = [dict(r) for r in rules]
        self._owns = sender is None
        self.sender = sender or Sender(address)
        self.sender.declare(self.stream, run=run, **options)  # created before its first batch
        self.last_step: Optional[int] = None
        self.errors, self.last_error = 0, None  # batches lost to a local failure (not an argument)
        self._metrics = None
        if on_metrics is not None:  # the watch() machinery: subscribe, history backfill
            from .torch import _Metrics
            self._metrics = _Metrics(address or getattr(self.sender, "address", None), run,
                                     {self.stream: self.stream}, on_metrics)

    def _queue(self, step, payload) -> bool:
        self.last_step = step if self.last_step is None else max(self.last_step, step)
        return self.sender.send(self.stream, payload, run=self.run, step=step, rank=self.rank,
                                world=self.world)

    def _failed(self, e) -> bool:
        self.errors += 1
        self.last_error = f"log: {e!r}"
        return False

    def poll(self) -> int:
        """Calls on_metrics for every step whose values have come (log() does too); returns how
        many steps it delivered (0 without on_metrics)."""
        return self._metrics.poll() if self._metrics else 0

    def close(self, timeout: float = 10.0, close_sender: bool = True) -> bool:
        """Ends this rank's last step (the daemon completes it now, not after step_timeout),
        flushes, and with on_metrics waits up to `timeout` seconds for that step's values and
        delivers them. A Sender passed in is flushed, not closed. False if the time ran out."""
        deadline = time.monotonic() + timeout
        self.sender.end_steps([(self.run, self.stream)])
        ok = self.sender.flush(max(0.0, deadline - time.monotonic()))
        if self._owns and close_sender:
            self.sender.close(max(0.1, deadline - time.monotonic()))
        if self._metrics:
            last = self.last_step
            while last is not None and time.monotonic() < deadline and \
                    self._metrics.reported(self.stream) < last:
                time.sleep(0.02)
            ok = ok and (last is None or self._metrics.reported(self.stream) >= last)
            self._metrics.poll(final=True)
            self._metrics.close()
            self._metrics = None
        return ok

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TokenStream(_Stream):
    """A tokens stream: per training step, each rank's per-token values of the declared columns
    (1–8 names of [a-z0-9_], ≤ 32 bytes, distinct), an optional mask and sequence lengths.

    run: the training run (None: the daemon's default). rank/world: default torch.distributed's
    when it is initialised, else 0 and 1. window_steps, eval, rules: create's (the daemon's
    defaults when None; eval entries are metric names or create's eval dicts). The stream is
    created with kind "tokens" and these columns before its first batch, on every connection;
    one that exists with another configuration keeps it (logged once by the Sender).
    sender/address: a Sender to share (flushed, not closed, by close()), else one made for
    `address`. on_metrics(step, {stream: {series: value}}) gets the daemon's evaluated series
    (token_mean, token_std, entropy_p95, ...) on the training thread, at log() or poll() (it
    reuses eigenwatch.torch.watch's subscription, so it needs torch installed). .errors and
    .last_error count the batches log() could not stage for a local reason other than its
    arguments (e.g. no pinned memory) and returned False for; .last_step is the highest step
    logged; close() (or leaving a `with` block) ends it. Each rank sends its own tokens — its
    share of the step's global batch, 1/world of it — so a stream's load per step does not grow
    with the number of GPUs (watch()'s rows_per_step is the world's for the same reason)."""

    def __init__(self, run: Optional[str], stream: str, columns: Sequence[str] = ("entropy",),
                 world: Optional[int] = None, rank: Optional[int] = None,
                 window_steps: Optional[int] = None,
                 eval: Optional[List[Union[str, Dict[str, Any]]]] = None,  # noqa: A002
                 rules: Optional[List[Dict[str, Any]]] = None, sender: Optional[Sender] = None,
                 address: Optional[str] = None,
                 on_metrics: Optional[Callable[[int, Dict[str, Dict[str, float]]], None]] = None):
        columns = [columns] if isinstance(columns, str) else list(columns)
        if not 1 <= len(columns) <= 8 or len(set(columns)) != len(columns):
            raise ValueError(f"columns {columns}: want 1 to 8 distinct names")
        bad = [c for c in columns if not isinstance(c, str) or not _NAME.match(c)]
        if bad:
            raise ValueError(f"column names {bad}: want 1 to 32 of [a-z0-9_]")
        taken = [c for c in columns if c in ("step", "mask", "lengths")]
        if taken:
            raise ValueError(f"column names {taken} are log()'s own arguments")
        self.columns = columns
        super().__init__(run, stream, {"kind": "tokens", "columns": list(columns)}, world, rank,
                         window_steps, eval, rules, sender, address, on_metrics)

    def log(self, step: int, entropy=None, logp=None, advantage=None, mask=None, lengths=None,
            **other_columns) -> bool:
        """Queues this rank's tokens of training `step`: every declared column (torch tensors on
        any device, or numpy arrays; any shape, flattened), `mask` (1 / True = counted; default
        all) and `lengths` (tokens per sequence, for the per-sequence metrics). Returns True if
        queued, False if the Sender dropped it or it could not be staged (counted in .errors).
        Raises ValueError for bad arguments; never for the daemon, and never waits for it or
        for the device."""
        if self._metrics is not None:
            self._metrics.poll()
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"step {step}: want >= 0")
        given = {k: v for k, v in (("entropy", entropy), ("logp", logp),
                                   ("advantage", advantage)) if v is not None}
        given.update((k, v) for k, v in other_columns.items() if v is not None)
        extra = [k for k in given if k not in self.columns]
        missing = [c for c in self.columns if c not in given]
        if extra or missing:
            raise ValueError(f"stream {self.stream!r} declares columns {self.columns}; "
                             + (f"not declared: {extra}" if extra else "")
                             + ("; " if extra and missing else "")
                             + (f"missing: {missing}" if missing else ""))
        sizes = {c: _numel(given[c]) for c in self.columns}
        n = sizes[self.columns[0]]
        if any(k != n for k in sizes.values()):
            raise ValueError(f"columns differ in length: {sizes} (every column has one value "
                             "per token)")
        if mask is not None and _numel(mask) != n:
            raise ValueError(f"mask has {_numel(mask)} values for {n} tokens")
        try:
            cols = [_stage(given[c], "float", c) for c in self.columns]
            m = _stage(mask, "mask", "mask") if mask is not None else None
            ln = _stage(lengths, "lengths", "lengths") if lengths is not None else None
            if ln is not None and ln[2] is None:  # on the host: checked now; on a device,
                _check_lengths(ln[0], n)           # once the copy has landed
            ready = _ready(cols + [p for p in (m, ln) if p is not None])
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - a failure here is not the caller's: fail open
            return self._failed(e)
        batch = _TokenBatch(n, [(c, p[:2]) for c, p in zip(self.columns, cols)],
                            m[:2] if m is not None else None,
                            ln[:2] if ln is not None else None, ready)
        return self._queue(step, batch)


class StatsStream(_Stream):
    """A stats stream: per training step, each rank's value of every cell of `shape` ([L] or
    [L, H], at most 65536 cells — e.g. an entropy per layer and head), with optional per-cell
    token counts; the daemon combines a step's ranks by `reduce` ("mean", "max", "min", "sum").
    The other arguments are TokenStream's."""

    def __init__(self, run: Optional[str], stream: str, shape: Union[int, Iterable[int]],
                 reduce: str = "mean", world: Optional[int] = None, rank: Optional[int] = None,
                 window_steps: Optional[int] = None,
                 eval: Optional[List[Union[str, Dict[str, Any]]]] = None,  # noqa: A002
                 rules: Optional[List[Dict[str, Any]]] = None, sender: Optional[Sender] = None,
                 address: Optional[str] = None,
                 on_metrics: Optional[Callable[[int, Dict[str, Dict[str, float]]], None]] = None):
        shape = [shape] if isinstance(shape, int) else [int(k) for k in shape]
        cells = int(np.prod(shape)) if shape else 0
        if not 1 <= len(shape) <= 2 or min(shape) < 1 or cells > MAX_CELLS:
            raise ValueError(f"shape {shape}: want [L] or [L, H], at most {MAX_CELLS} cells")
        if reduce not in REDUCES:
            raise ValueError(f"reduce {reduce!r}: want one of {list(REDUCES)}")
        self.shape, self.cells, self.reduce = tuple(shape), cells, reduce
        super().__init__(run, stream, {"kind": "stats", "shape": list(shape), "reduce": reduce},
                         world, rank, window_steps, eval, rules, sender, address, on_metrics)

    def _check(self, what, x):
        shape = _ndim_shape(x)
        if _numel(x) != self.cells or (len(shape) > 1 and shape != self.shape):
            raise ValueError(f"{what} has shape {list(shape)}; stream {self.stream!r} has shape "
                             f"{list(self.shape)} ({self.cells} cells; flat is accepted)")

    def log(self, step: int, values, counts=None) -> bool:
        """Queues this rank's `values` of every cell at training `step` (a tensor on any device
        or a numpy array, of the stream's shape or flat, C order) and optionally `counts`, the
        tokens each value was reduced over (integers are sent as float64, exactly). Returns,
        raises and copies as TokenStream.log does."""
        if self._metrics is not None:
            self._metrics.poll()
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"step {step}: want >= 0")
        self._check("values", values)
        if counts is not None:
            self._check("counts", counts)
        try:
            staged = [_stage(values, "float", "values")]
            if counts is not None:
                staged.append(_stage(counts, "float", "counts", fallback="f64"))
            ready = _ready(staged)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - fail open
            return self._failed(e)
        return self._queue(step, _StatsBatch(staged[0][:2], staged[1][:2] if counts is not None
                                             else None, ready))
