"""Placement of streams on several daemons (proto/PROTOCOL.md, "Many daemons"): rendezvous
hashing. Given the daemons' addresses, a (run, stream) belongs to the address whose
FNV-1a-64(run ‖ 0x00 ‖ stream ‖ 0x00 ‖ address) is the largest (ties: the smaller address,
bytewise). Every rank of a run finds the same daemon for a stream without talking to the others,
and adding a daemon moves only the streams it wins. The C client (ewc_place) and the JS client
(place) compute the same; proto/vectors/placement.tsv checks all three."""
from typing import Iterable, List, Optional, Sequence, Union

DEFAULT_RUN = "default"  # the daemon's run for a stream named without one
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_M64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits, of `data`."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h


def score(run: Optional[str], stream: str, address: str) -> int:
    """The rendezvous weight of `address` for (run, stream); run None is the default run."""
    key = (run if run is not None else DEFAULT_RUN).encode() + b"\0" + stream.encode() + b"\0"
    return fnv1a64(key + address.encode())


def addresses(spec: Union[str, Iterable[str]]) -> List[str]:
    """A list of daemon addresses from "a,b,c" (EIGENWATCH_ADDRESS with commas) or an iterable:
    each stripped of spaces, empty entries dropped, repeats dropped (the first kept)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for a in items:
        a = str(a).strip()
        if a and a not in out:
            out.append(a)
    return out


def place(run: Optional[str], stream: str, addrs: Sequence[str]) -> str:
    """The address of the daemon that owns (run, stream) among `addrs` (as addresses() gives
    them). ValueError when there is none."""
    if not addrs:
        raise ValueError("no daemon address to place a stream on")
    best, best_h = None, -1
    for a in addrs:
        h = score(run, stream, a)
        if h > best_h or (h == best_h and a.encode() < best.encode()):
            best, best_h = a, h
    return best
