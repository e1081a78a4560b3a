"""eigenwatch.torch.watch: forward hooks that sample rows of chosen modules' outputs and hand
them to a Sender, under streams named after the modules.

Per step and layer it takes `rows_per_step` rows drawn uniformly (without replacement, from a
seeded generator) over all leading positions of the output (batch × tokens × ...), copies them
off the device without a synchronising call (a non-blocking copy into host memory; the Sender's
thread waits for it, not the training loop), and queues them. Nothing here calls .item() or
.cpu() on the hot path for device tensors.
"""
import inspect
import queue
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import torch

from ._wire import LabelledRows
from .sender import Sender


class _Metrics:
    """on_metrics: a thread reads the daemon's `metrics` notifications for the watched streams
    into a queue; the training thread drains it (at each hooked forward pass, at poll() and at
    close()) and calls on_metrics once per step with every watched layer's values — so the
    callback runs where the trainer logs (W&B, TensorBoard), never on a foreign thread, and a
    step's layers come together. A step is handed over when every layer has reported it, or when
    each layer that has not has reported a later step (its evaluation of this step was coalesced
    into a later one: it is named in `missing`), or `max_wait` seconds after its first value came,
    or at close(); steps go in ascending order. A daemon that cannot be reached only delays the
    values; it never raises into training."""

    def __init__(self, address, run, streams, callback, max_wait=30.0):
        self.streams = streams  # stream name -> layer name
        self.layers = sorted(set(streams.values()))
        self.callback = callback
        self.wants_missing = _takes_three(callback)
        self.max_wait = max_wait
        self.pending: Dict[int, Dict[str, Dict[str, float]]] = {}
        self.first_seen: Dict[int, float] = {}
        self.latest: Dict[str, int] = {}  # layer -> the highest step it reported
        self.delivered = -1  # the highest step handed to the callback
        self.q: "queue.Queue" = queue.Queue(maxsize=100000)
        self.stop = threading.Event()
        self.sub = None
        self.errors = 0
        # subscribed before watch() returns, so that no evaluation of the first steps goes by
        # unseen; a daemon that is away is tried again by the thread
        from .client import subscription
        from ._wire import default_address
        try:
            self.sub = subscription(address or default_address(), {"run": run} if run else {},
                                    2.0)
        except Exception:  # never raise into training
            self.errors += 1
            self.sub = None
        self.t = threading.Thread(target=self._run, args=(address, run), daemon=True,
                                  name="eigenwatch-metrics")
        self.t.start()

    def _run(self, address, run):
        from .client import subscription
        from ._wire import default_address
        params = {"run": run} if run else {}
        seen: Dict[str, int] = {}  # stream -> the highest step notified
        subs, reconnects = 0, 0     # subscriptions made; the current one's own reconnects
        if self.sub is not None:
            subs = 1
        while not self.stop.is_set():
            try:
                if self.sub is None:
                    self.sub = subscription(address or default_address(), dict(params), 10.0)
                    subs += 1
                    if subs > 1:  # subscribed again: what was evaluated meanwhile, from history
                        self._backfill(address, run, seen)
                if self.sub.reconnects != reconnects:  # it reconnected by itself
                    reconnects = self.sub.reconnects
                    self._backfill(address, run, seen)
                item = self.sub.next(timeout=0.2)
            except Exception:  # the daemon is away: try again, never raise into training
                self.errors += 1
                self.sub = None
                reconnects = 0
                self.stop.wait(0.5)
                continue
            if item and item[0] == "metrics" and item[1]["stream"] in self.streams:
                seen[item[1]["stream"]] = max(seen.get(item[1]["stream"], -1), item[1]["step"])
                try:
                    self.q.put_nowait(item[1])
                except queue.Full:
                    self.errors += 1

    def _backfill(self, address, run, seen):
        """After a subscription is made again (a daemon restart, a lost connection): the points
        the daemon evaluated meanwhile, read from its history from the first step some watched
        stream had not been notified of (seen: stream -> highest step notified; nothing seen yet:
        nothing to go on), and queued as notifications are; steps already handed to on_metrics
        are skipped by _drain."""
        from .client import Client
        if not seen:
            return
        first = min(seen.get(st, -1) for st in self.streams) + 1
        if first == 0:  # a stream never notified: start after the least notified one seen
            first = min(seen.values()) + 1
        try:
            c = Client(address, timeout=10.0) if address else Client(timeout=10.0)
            try:
                p = {"streams": sorted(self.streams), "from_step": first, "max_points": 100000}
                if run:
                    p["run"] = run
                series = c.call("history", **p)["series"]
            finally:
                c.close()
        except Exception:  # never raise into training; the live notifications go on
            self.errors += 1
            return
        points: Dict[tuple, Dict[str, Any]] = {}
        for d in series:
            for step, value in zip(d["step"], d["value"]):
                points.setdefault((step, d["stream"]), {})[d["metric"]] = value
        for (step, stream), metrics in sorted(points.items()):
            try:
                self.q.put_nowait({"stream": stream, "step": step, "metrics": metrics})
            except queue.Full:
                self.errors += 1

    def reported(self, layer: str) -> int:
        """The highest step `layer` has reported values for (-1: none yet)."""
        self._drain()
        return self.latest.get(layer, -1)

    def _drain(self):
        now = time.monotonic()
        while True:
            try:
                p = self.q.get_nowait()
            except queue.Empty:
                break
            layer, step = self.streams[p["stream"]], p["step"]
            if step <= self.delivered:  # handed over already (a backfilled point seen live)
                continue
            self.pending.setdefault(step, {})[layer] = p["metrics"]
            self.first_seen.setdefault(step, now)
            self.latest[layer] = max(self.latest.get(layer, -1), step)

    def poll(self, final=False):
        self._drain()
        now, n = time.monotonic(), 0
        for step in sorted(self.pending):
            values = self.pending[step]
            missing = [lay for lay in self.layers if lay not in values]
            ready = (not missing or final or now - self.first_seen[step] >= self.max_wait or
                     all(self.latest.get(lay, -1) > step for lay in missing))
            if not ready:
                break  # steps go in order
            del self.pending[step]
            del self.first_seen[step]
            self.delivered = step
            if self.wants_missing:
                self.callback(step, values, missing)
            else:
                self.callback(step, values)
            n += 1
        return n

    def close(self):
        self.stop.set()
        self.t.join(2)
        if self.sub is not None:
            self.sub.close()


def _takes_three(fn) -> bool:
    """Whether on_metrics takes a third argument (the layers missing from a step)."""
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(pos) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in ps)


class WatchHandle:
    """Returned by watch(): .close() (or .remove()) ends the run's last step, flushes and
    delivers its values, then detaches the hooks; .rows_sampled counts rows per stream; .sender
    is the Sender in use; .poll() delivers the on_metrics values received so far."""

    def __init__(self, hooks, sender, owns_sender, counts, metrics=None, streams=(), run=None,
                 last_step=None):
        self._hooks = hooks
        self.sender = sender
        self._owns = owns_sender
        self.rows_sampled: Dict[str, int] = counts
        self._metrics = metrics
        self._streams = list(streams)
        self._run = run
        self._last_step = last_step if last_step is not None else {}

    def poll(self) -> int:
        """Calls on_metrics for every step whose values are complete (see watch); returns how
        many steps it delivered (0 without on_metrics)."""
        return self._metrics.poll() if self._metrics else 0

    def close(self, timeout: float = 10.0, close_sender: bool = True) -> bool:
        """Detaches the hooks, ends the last step (end_step from this rank, so the daemon
        completes it now instead of after step_timeout), flushes the rows, and with on_metrics
        waits up to `timeout` seconds for the last step's values of every layer and delivers
        them. Returns False when the time ran out first. A Sender passed to watch() is flushed,
        not closed (close_sender=False keeps an owned one open too)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        deadline = time.monotonic() + timeout
        self.sender.end_steps([(self._run, s) for s in self._streams])
        ok = self.sender.flush(max(0.0, deadline - time.monotonic()))
        if self._owns and close_sender:
            self.sender.close(max(0.1, deadline - time.monotonic()))
        if self._metrics:
            last = self._last_step.get("step")
            layers = self._metrics.layers
            while last is not None and time.monotonic() < deadline and \
                    not all(self._metrics.reported(lay) >= last for lay in layers):
                time.sleep(0.02)
            ok = ok and (last is None or all(self._metrics.reported(lay) >= last
                                             for lay in layers))
            self._metrics.poll(final=True)
            self._metrics.close()
            self._metrics = None
        return ok

    def remove(self, close_sender: bool = True, timeout: float = 10.0) -> bool:
        """The same as close()."""
        return self.close(timeout, close_sender)


def _first_tensor(out):
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if torch.is_tensor(o):
                return o
    if isinstance(out, dict):
        for o in out.values():
            if torch.is_tensor(o):
                return o
    return None


def _distributed():
    """(rank, world) of an initialised torch.distributed group, else (None, None)."""
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # noqa: BLE001 - no distributed support is not an error here
        pass
    return None, None


def _row_labels(labels: Callable[[], Any], n: int, dev, pick):
    """The labels of the n rows of an output (its examples' labels, each repeated over the
    example's rows when n is a multiple of their count), on `dev`, picked like the rows; None when
    they do not divide the rows."""
    lab = labels()
    lab = (lab if isinstance(lab, torch.Tensor) else torch.as_tensor(lab)).reshape(-1)
    if lab.numel() == 0 or n % lab.numel():
        return None
    lab = lab.to(device=dev, dtype=torch.int64, non_blocking=True)
    if lab.numel() != n:
        lab = lab.repeat_interleave(n // lab.numel())
    return lab.index_select(0, pick) if pick is not None else lab


def watch(model: torch.nn.Module, layers: Optional[Iterable[str]] = None, rows_per_step: int = 256,
          every: int = 1, sender: Optional[Sender] = None, address: Optional[str] = None,
          prefix: str = "", seed: int = 0, run: Optional[str] = None,
          step: Optional[Callable[[], int]] = None, rank: Optional[int] = None,
          world: Optional[int] = None, include_eval: bool = False,
          on_metrics: Optional[Callable[[int, Dict[str, Dict[str, float]]], None]] = None,
          window_steps: Optional[int] = None,
          eval: Optional[List[Union[str, Dict[str, Any]]]] = None,  # noqa: A002 - create's name
          eval_every: Optional[int] = None,
          rules: Optional[List[Dict[str, Any]]] = None,
          labels: Optional[Callable[[], Any]] = None) -> WatchHandle:
    """Hooks the named submodules of `model` (default: its direct children). Every `every`-th
    forward call of each, rows of its output go to stream `prefix + name` in `run` (the daemon's
    default run when None): `rows_per_step` for the whole world — each of `world` ranks sends
    ⌈rows_per_step / world⌉, so a stream's load per step does not grow with the number of GPUs
    (one rank: rows_per_step).

    step: a callable returning the trainer's step (e.g. `lambda: trainer.global_step`); each batch
    then carries it, with `rank` and `world` (default: torch.distributed's when it is
    initialised, else 0 and 1), so the daemon stages every rank's rows of a step and applies them
    together, and the streams answer from their recent rows. Forward passes under
    torch.no_grad()/inference_mode or with the model in eval mode are skipped unless
    include_eval=True (validation passes would otherwise mix into the training streams).

    The streams are created as asked before their first rows (the Sender declares them): with
    `step`, each is a training stream of `world` ranks whose metrics read the rows of its last
    `window_steps` completed steps (default 1: each point is that step's rows, not a smoothing
    over earlier ones); `eval` lists its scheduled metrics (names, or create's eval entries:
    {"metric", "as", "every", "params", ...}; default the daemon's six), `eval_every` evaluates
    every entry without its own schedule every that many steps, and `rules` are its alert rules
    (create's `rules`; e.g. a warm-up with "after_step"). Without `step`, the streams are
    created with these options only when one is given. A stream that exists with another
    configuration keeps it (the refusal is logged once; rows still go).

    on_metrics: called as on_metrics(step, {layer: {metric: value}}) with the values the daemon
    evaluated for the watched layers at the trainer's step (its scheduled `eval`, by default
    entropy, erank, rankme, participation_ratio, anisotropy, l2_std) — on the training thread, at
    the next hooked forward pass after they arrive (or handle.poll()); log them into W&B or
    TensorBoard under that step. Values come a step or more behind the trainer.

    labels: a callable returning the current batch's labels (one integer per example, a tensor on
    any device or a sequence; e.g. `lambda: batch_labels`), called at each hooked forward pass.
    Each sampled row then carries its example's label (an output of B examples × T tokens gives
    each token row its example's), copied with the rows without a synchronising call, so the
    daemon's grouped metrics (group_erank, group_separation, centroid_cosine) and dsmi can read
    them; a stream's first batch decides that it is labelled. A batch whose labels do not divide
    its rows is sent without them (and then refused by a labelled stream: counted, never
    raised)."""
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [n for n, _ in model.named_children()]
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no such submodules: {missing} (model.named_modules() lists them)")
    if eval_every is not None and (eval is None or int(eval_every) < 1):
        raise ValueError("eval_every needs eval (the metrics to schedule) and must be >= 1")
    if window_steps is not None and int(window_steps) < 1:
        raise ValueError("window_steps must be >= 1")
    owns = sender is None
    sender = sender or Sender(address)
    counts: Dict[str, int] = {prefix + n: 0 for n in names}
    gens: Dict[tuple, torch.Generator] = {}
    if step is not None:
        drank, dworld = _distributed()
        rank = rank if rank is not None else (drank if drank is not None else 0)
        world = world if world is not None else (dworld if dworld is not None else 1)
    if int(rows_per_step) < 1:
        raise ValueError("rows_per_step must be >= 1")
    ranks = int(world) if world is not None else (_distributed()[1] or 1)
    per_rank = -(-int(rows_per_step) // max(1, ranks))  # ⌈R / world⌉ from each rank

    options: Dict[str, Any] = {}
    if step is not None:
        options.update(world=int(world), window_steps=int(window_steps or 1))
    elif window_steps is not None:
        options["window_steps"] = int(window_steps)
    if eval is not None:
        entries = [dict(e) if isinstance(e, dict) else {"metric": str(e)} for e in eval]
        if eval_every is not None:
            for e in entries:
                if not any(k in e for k in ("every", "every_rows", "every_s")):
                    e["every"] = int(eval_every)
        options["eval"] = entries
    if rules is not None:
        options["rules"] = [dict(r) for r in rules]
    if options:
        for n in names:
            sender.declare(prefix + n, run=run, **options)

    metrics = (_Metrics(address or getattr(sender, "address", None), run,
                        {prefix + n: n for n in names}, on_metrics) if on_metrics else None)

    last_step: Dict[str, Optional[int]] = {"step": None}  # the highest step sent

    def make_hook(stream):
        state = {"calls": 0, "gen": None, "dev": None}

        def hook(_module, _inputs, output):
            if metrics is not None:
                metrics.poll()
            if not include_eval and (not torch.is_grad_enabled() or not model.training):
                return
            state["calls"] += 1
            if (state["calls"] - 1) % every:
                return
            t = _first_tensor(output)
            if t is None or t.dim() == 0:
                return
            with torch.no_grad():  # sampling is not part of the model: no autograd bookkeeping
                x = t if t.dim() == 2 else t.reshape(-1, t.shape[-1])
                n = x.shape[0]
                k = min(per_rank, n)
                dev = x.device
                g = state["gen"]
                if g is None or state["dev"] != dev:
                    g = torch.Generator(device=dev)
                    g.manual_seed(seed + len(gens))
                    gens[(stream, str(dev))] = g
                    state["gen"], state["dev"] = g, dev
                pick = torch.randperm(n, generator=g, device=dev)[:k] if k < n else None
                rows = x.index_select(0, pick) if pick is not None else x.clone()
                lab = _row_labels(labels, n, dev, pick) if labels is not None else None
                ready = None
                if dev.type != "cpu":
                    host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
                    host.copy_(rows, non_blocking=True)
                    if lab is not None:
                        lhost = torch.empty(lab.shape, dtype=lab.dtype, pin_memory=True)
                        lhost.copy_(lab, non_blocking=True)
                        lab = lhost
                    ready = torch.cuda.Event()
                    ready.record()
                    rows = host
            if lab is not None:
                rows, ready = LabelledRows(rows, lab, ready), None
            counts[stream] += k
            if step is None:
                sender.send(stream, rows, _ready=ready, run=run)
            else:
                now = int(step())
                last_step["step"] = now if last_step.get("step") is None else max(
                    last_step["step"], now)
                sender.send(stream, rows, _ready=ready, run=run, step=now, rank=rank,
                            world=world)
        return hook

    hooks = [modules[n].register_forward_hook(make_hook(prefix + n)) for n in names]
    return WatchHandle(hooks, sender, owns, counts, metrics,
                       streams=[prefix + n for n in names], run=run, last_step=last_step)
