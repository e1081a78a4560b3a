"""eigenwatch.paired: rows that come in pairs — a prompt's text embedding and its generated image's,
a layer's input and its output — sent to a paired stream, whose daemon keeps the uncentred blocks
Σφ(x)φ(x)ᵀ, Σφ(x)φ(y)ᵀ, Σφ(y)φ(y)ᵀ and answers the Schur complement entropies of Dissecting CLIP
(Ospanov et al. 2024): `sce`, the y side's diversity x does not explain, and `sce_text`, what it
does; and `nullify`, y with what x explains taken out.

    ps = PairedStream("gen-7", "clip", dims=(512, 512), features="rff", sigma=3.5)
    ps.log(step, text_emb, image_emb)         # torch tensors on any device, or numpy arrays
    ps.close()

    c = Client()
    lin = PairedStream(None, "prompt_vs_image", dims=(512, 512))        # linear features
    ...
    corrected = c.nullify("prompt_vs_image", text_emb, image_emb)       # numpy (n, 512)

log() copies as eigenwatch.rl's TokenStream.log does (a device tensor into pinned memory with no
synchronising call) and never raises for the daemon: the fail-open Sender sends it.
"""
import operator
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ._wire import Payload
from .rl import _Stream, _ready, _stage
from .sender import Sender

FEATURES = ("linear", "rff")
DIM_MAX = 8192


class _PairBatch(Payload):
    def __init__(self, n, x, y, dims, ready):
        self.rows, self.n, self.ready = n, n, ready
        self.x, self.y, self.dims = x, y, dims

    def encode(self) -> Dict[str, Any]:
        from .rl import _bytes
        return {"x": {"dtype": self.x[1], "data": _bytes(*self.x), "shape": [self.n, self.dims[0]]},
                "y": {"dtype": self.y[1], "data": _bytes(*self.y), "shape": [self.n, self.dims[1]]}}


class PairedStream:
    """A paired stream (kind "paired"): per training step (or any count you choose), each rank's
    rows x (n, dx) and y (n, dy), row i of x paired with row i of y.

    dims: (dx, dy). features: "linear" (the rows themselves; nullify needs it) or "rff" (random
    Fourier features of a Gaussian kernel of bandwidth `sigma`, `rff_dim` frequencies, one Ω
    drawn from `seed`; needs dx == dy). The other arguments are eigenwatch.rl.TokenStream's:
    run, rank/world (torch.distributed's by default), eval, rules, sender/address, on_metrics
    (sce and sce_text by default, under the trainer's step)."""

    def __init__(self, run: Optional[str], stream: str, dims: Sequence[int],
                 features: str = "linear", sigma: Optional[float] = None,
                 rff_dim: Optional[int] = None, seed: Optional[int] = None,
                 world: Optional[int] = None, rank: Optional[int] = None,
                 eval: Optional[List[Union[str, Dict[str, Any]]]] = None,  # noqa: A002
                 rules: Optional[List[Dict[str, Any]]] = None, sender: Optional[Sender] = None,
                 address: Optional[str] = None,
                 on_metrics: Optional[Callable[[int, Dict[str, Dict[str, float]]], None]] = None):
        dims = [int(k) for k in dims]
        if len(dims) != 2 or not all(1 <= k <= DIM_MAX for k in dims):
            raise ValueError(f"dims {dims}: want [dx, dy], each 1 to {DIM_MAX}")
        if features not in FEATURES:
            raise ValueError(f"features {features!r}: want one of {list(FEATURES)}")
        if features == "rff" and (sigma is None or not sigma > 0):
            raise ValueError("features 'rff' needs sigma > 0 (the Gaussian kernel's bandwidth)")
        if features == "rff" and dims[0] != dims[1]:
            raise ValueError(f"features 'rff' share one Ω between x and y: dims {dims} must be "
                             "equal")
        opts: Dict[str, Any] = {"kind": "paired", "dims": dims, "features": features}
        for k, v in (("sigma", sigma), ("rff_dim", rff_dim), ("seed", seed)):
            if v is not None:
                opts[k] = v
        self.dims, self.features = tuple(dims), features
        self._s = _Stream(run, stream, opts, world, rank, None, eval, rules, sender, address,
                          on_metrics)

    def __getattr__(self, name):  # run, stream, rank, world, sender, errors, last_step, ...
        if "_s" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["_s"], name)

    def _rows(self, what, a, d):
        shape = tuple(a.shape)
        if len(shape) == 0 or shape[-1] != d:
            raise ValueError(f"{what} has shape {list(shape)}; stream {self._s.stream!r} pairs "
                             f"rows of dims {list(self.dims)} ({what} has {d} values a row)")
        n = 1
        for k in shape[:-1]:
            n *= int(k)
        return n

    def log(self, step: int, x, y) -> bool:
        """Queues this rank's pairs of training `step`: x (..., dx) and y (..., dy) with as many
        rows. Returns True if queued, False if the Sender dropped it or it could not be staged
        (counted in .errors). Raises ValueError for bad arguments; never for the daemon, and
        never waits for it or for the device."""
        s = self._s
        if s._metrics is not None:
            s._metrics.poll()
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"step {step}: want >= 0")
        nx, ny = self._rows("x", x, self.dims[0]), self._rows("y", y, self.dims[1])
        if nx != ny:
            raise ValueError(f"x has {nx} rows and y {ny}: row i of x pairs with row i of y")
        try:
            px, py = _stage(x, "float", "x"), _stage(y, "float", "y")
            ready = _ready([px, py])
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - a failure here is not the caller's: fail open
            return s._failed(e)
        return s._queue(step, _PairBatch(nx, px[:2], py[:2], self.dims, ready))

    def poll(self) -> int:
        return self._s.poll()

    def close(self, timeout: float = 10.0, close_sender: bool = True) -> bool:
        """As TokenStream.close: ends this rank's last step, flushes, delivers on_metrics."""
        return self._s.close(timeout, close_sender)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
