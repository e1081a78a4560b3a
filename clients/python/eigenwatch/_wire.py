"""Addresses, sockets and the encoding of rows (proto/PROTOCOL.md, "Vectors"); what a batch that
is not rows (a Payload) gives the Sender."""
import os
import socket

import numpy as np

DEFAULT_TCP = "tcp:127.0.0.1:7700"
# The socket the systemd units listen on (systemd/eigenwatchd.socket.in; group eigenwatch).
SYSTEM_SOCKET = "/run/eigenwatch/eigenwatchd.sock"

_NP_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
              np.dtype(np.float16): "f16"}


def default_address():
    """$EIGENWATCH_ADDRESS, else the daemon's default Unix socket if it exists (the user's:
    $XDG_RUNTIME_DIR, then the state dir; then the system units', when this user may use it),
    else TCP 7700."""
    env = os.environ.get("EIGENWATCH_ADDRESS")
    if env:
        return env
    candidates = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "eigenwatch.sock"))
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                               "state")
    candidates.append(os.path.join(state, "eigenwatch", "eigenwatch.sock"))
    for path in candidates:
        if os.path.exists(path):
            return "unix:" + path
    if os.access(SYSTEM_SOCKET, os.R_OK | os.W_OK):
        return "unix:" + SYSTEM_SOCKET
    return DEFAULT_TCP


def connect(address, timeout):
    """Opens a stream socket to 'unix:PATH' or 'tcp:HOST:PORT' (raises OSError/ValueError)."""
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(address[5:])
        except BaseException:
            s.close()
            raise
        return s
    if address.startswith("tcp:"):
        host, _, port = address[4:].rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"bad address {address!r}: want tcp:HOST:PORT")
        s = socket.create_connection((host, int(port)), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    raise ValueError(f"bad address {address!r}: want unix:PATH or tcp:HOST:PORT")


def _torch_payload(t):
    """A torch tensor's rows as (bytes, dtype name, shape) with no float32 round trip for bf16."""
    import torch  # only reached when a tensor was passed
    t = t.detach()
    if t.device.type != "cpu":
        t = t.to("cpu")
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes(), "bf16", list(t.shape)
    names = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16"}
    if t.dtype not in names:
        t = t.to(torch.float64)
    return t.numpy().tobytes(), names.get(t.dtype, "f64"), list(t.shape)


class Payload:
    """A batch that is not rows. `rows` is what it counts as in SenderStats and drop reports;
    `ready` (or None) is waited on before encode() (a non-blocking device copy must land first);
    encode() — on the Sender's thread — returns its ingest fields besides stream, run, step, rank,
    world, producer and seq, or raises (the batch is then counted rejected)."""
    rows = 0
    ready = None

    def encode(self) -> dict:
        raise NotImplementedError


def encode_labels(labels) -> bytes:
    """`labels` (a sequence, numpy array or CPU torch tensor of integers in [0, 2^32)) as ingest's
    `labels` field: one u32 little-endian per row."""
    if type(labels).__module__.startswith("torch"):
        labels = labels.numpy()
    lab = np.asarray(labels).reshape(-1)
    if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or
                     lab.max() > 0xffffffff):
        raise ValueError("labels must be integers in [0, 2^32)")
    return lab.astype("<u4").tobytes()


class LabelledRows(Payload):
    """Rows with one label per row (e.g. each example's class): Sender.send(stream,
    LabelledRows(rows, labels)) sends them as one ingest with `labels`, for the grouped metrics
    and dsmi. `ready` as Payload's (watch's non-blocking device copy of both)."""

    def __init__(self, rows, labels, ready=None):
        self.data, self.labels, self.ready = rows, labels, ready
        self.rows = int(np.prod(rows.shape[:-1])) if len(rows.shape) > 1 else 1
        self.dim = int(rows.shape[-1])  # the create a declared stream gets first

    def encode(self) -> dict:
        fields = encode_rows(self.data)
        lab = encode_labels(self.labels)
        if len(lab) != 4 * fields["shape"][0]:
            raise ValueError(f"{len(lab) // 4} labels for {fields['shape'][0]} rows")
        fields["labels"] = lab
        return fields


def encode_rows(rows):
    """The ingest fields {data, dtype, shape} for an (n, d), (d,) or (..., d) array or tensor.

    numpy float32/float64/float16 are sent as they are (little-endian, C order); torch tensors of
    those or bfloat16 too (bf16 as its raw 16-bit words); other numeric arrays as float64."""
    if type(rows).__module__.startswith("torch"):
        data, dtype, shape = _torch_payload(rows)
    else:
        a = np.asarray(rows)
        if a.dtype not in _NP_DTYPES:
            if a.dtype.kind not in "biuf":
                raise TypeError(f"rows must be numeric, not {a.dtype}")
            a = a.astype(np.float64)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        a = np.ascontiguousarray(a)
        data, dtype, shape = a.tobytes(), _NP_DTYPES[np.dtype(a.dtype.name)], list(a.shape)
    if len(shape) == 0:
        raise ValueError("rows must have at least one dimension")
    if len(shape) != 2:  # (d,) is one row; (..., d) — e.g. (batch, tokens, d) — is rows of d
        n = 1
        for k in shape[:-1]:
            n *= k
        shape = [n, shape[-1]]
    return {"data": data, "dtype": dtype, "shape": shape}


def encode_pairs(x, y):
    """A paired stream's ingest fields {x, y}: each {data, dtype, shape} as encode_rows makes
    them, row i of x paired with row i of y (as many rows each; their dtypes may differ)."""
    fx, fy = encode_rows(x), encode_rows(y)
    if fx["shape"][0] != fy["shape"][0]:
        raise ValueError(f"x has {fx['shape'][0]} rows and y {fy['shape'][0]}: row i of x pairs "
                         "with row i of y")
    return {"x": fx, "y": fy}


class Pairs(Payload):
    """Paired rows for a paired stream (kind "paired"): Sender.send(stream, Pairs(x, y)) sends
    them as one ingest with `x` and `y` (row i of x pairs with row i of y). `ready` as
    Payload's."""

    def __init__(self, x, y, ready=None):
        self.x, self.y, self.ready = x, y, ready
        self.rows = int(np.prod(x.shape[:-1])) if len(x.shape) > 1 else 1

    def encode(self) -> dict:
        return encode_pairs(self.x, self.y)
