"""eigenwatch.torch.watch: forward hooks that sample rows of chosen modules' outputs and hand
them to a Sender, under streams named after the modules.

Per step and layer it takes `rows_per_step` rows drawn uniformly (without replacement, from a
seeded generator) over all leading positions of the output (batch × tokens × ...), copies them
off the device without a synchronising call (a non-blocking copy into host memory; the Sender's
thread waits for it, not the training loop), and queues them. Nothing here calls .item() or
.cpu() on the hot path for device tensors.
"""
from typing import Dict, Iterable, Optional

import torch

from .sender import Sender


class WatchHandle:
    """Returned by watch(): .remove() detaches the hooks; .rows_sampled counts rows per stream;
    .sender is the Sender in use."""

    def __init__(self, hooks, sender, owns_sender, counts):
        self._hooks = hooks
        self.sender = sender
        self._owns = owns_sender
        self.rows_sampled: Dict[str, int] = counts

    def remove(self, close_sender: bool = True, timeout: float = 2.0):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._owns and close_sender:
            self.sender.close(timeout)


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


def watch(model: torch.nn.Module, layers: Optional[Iterable[str]] = None, rows_per_step: int = 256,
          every: int = 1, sender: Optional[Sender] = None, address: Optional[str] = None,
          prefix: str = "", seed: int = 0) -> WatchHandle:
    """Hooks the named submodules of `model` (default: its direct children). Every `every`-th
    forward call of each, `rows_per_step` rows of its output go to stream `prefix + name`."""
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [n for n, _ in model.named_children()]
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no such submodules: {missing} (model.named_modules() lists them)")
    owns = sender is None
    sender = sender or Sender(address)
    counts: Dict[str, int] = {prefix + n: 0 for n in names}
    gens: Dict[tuple, torch.Generator] = {}

    def make_hook(stream):
        state = {"calls": 0, "gen": None, "dev": None}

        def hook(_module, _inputs, output):
            state["calls"] += 1
            if (state["calls"] - 1) % every:
                return
            t = _first_tensor(output)
            if t is None or t.dim() == 0:
                return
            with torch.no_grad():  # sampling is not part of the model: no autograd bookkeeping
                x = t if t.dim() == 2 else t.reshape(-1, t.shape[-1])
                n = x.shape[0]
                k = min(rows_per_step, n)
                dev = x.device
                g = state["gen"]
                if g is None or state["dev"] != dev:
                    g = torch.Generator(device=dev)
                    g.manual_seed(seed + len(gens))
                    gens[(stream, str(dev))] = g
                    state["gen"], state["dev"] = g, dev
                rows = (x.index_select(0, torch.randperm(n, generator=g, device=dev)[:k])
                        if k < n else x.clone())
                ready = None
                if dev.type != "cpu":
                    host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
                    host.copy_(rows, non_blocking=True)
                    ready = torch.cuda.Event()
                    ready.record()
                    rows = host
            counts[stream] += k
            sender.send(stream, rows, _ready=ready)
        return hook

    hooks = [modules[n].register_forward_hook(make_hook(prefix + n)) for n in names]
    return WatchHandle(hooks, sender, owns, counts)
