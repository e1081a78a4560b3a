"""ctypes binding to libeigenwatch for the numeric tests.

The tests compute every reference value independently with numpy float64 at test time and compare
with what the C library returns through its public ABI (eigenwatch.h). Nothing here re-implements
a metric; it only marshals arguments.
"""
import ctypes as C
import os

import numpy as np

DTYPES = {"f32": 0, "f64": 1, "f16": 2, "bf16": 3}
SOURCES = {None: -1, "all": 0, "window": 1, "window_cn": 2, "step": 3}
METHODS = {"auto": 0, "slq": 1, "exact": 2}


class Names(C.Structure):  # ew_names_t: a tokens stream's columns
    _fields_ = [("n", C.c_uint32), ("name", (C.c_char * 33) * 8)]


class Config(C.Structure):
    _fields_ = [("dim", C.c_size_t), ("normalize", C.c_int), ("window", C.c_size_t),
                ("window_mode", C.c_int), ("decay_half_life", C.c_double), ("live_k", C.c_size_t), ("shuffle", C.c_size_t),
                ("seed", C.c_uint64), ("exact_max_dim", C.c_size_t), ("sketch_rows", C.c_size_t),
                ("stream_kind", C.c_int), ("reduce", C.c_int), ("features", C.c_int),
                ("sigma", C.c_double), ("rff_dim", C.c_size_t), ("columns", Names),
                ("shape_rank", C.c_uint32), ("shape", C.c_uint32 * 2)]


PARAM_TYPES = {"number": 0, "bool": 1, "string": 2}


class Param(C.Structure):
    # ew_param_t: type and str follow value (type 0 = a number, as the two-field struct meant)
    _fields_ = [("key", C.c_char_p), ("value", C.c_double), ("type", C.c_int),
                ("str", C.c_char_p)]


class Query(C.Structure):
    _fields_ = [("metric", C.c_char_p), ("params", C.POINTER(Param)), ("nparams", C.c_size_t),
                ("center", C.c_int), ("source", C.c_int), ("max_lag", C.c_uint64),
                ("window_rows", C.c_uint64), ("method", C.c_int)]


class Result(C.Structure):
    _fields_ = [("kind", C.c_int), ("scalar", C.c_double), ("list", C.POINTER(C.c_double)),
                ("len", C.c_size_t), ("vectors", C.POINTER(C.c_double)), ("dim", C.c_size_t),
                ("has_error", C.c_int), ("error", C.c_double), ("as_of", C.c_uint64),
                ("clamped", C.c_size_t), ("code", C.c_int), ("message", C.c_char * 200),
                ("has_bracket", C.c_int), ("lo", C.c_double), ("hi", C.c_double),
                ("sample_rows", C.c_uint64), ("groups", C.POINTER(C.c_uint32))]


def _load():
    path = os.environ.get("EW_LIB")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build", "lib", "libeigenwatch.so")
    lib = C.CDLL(path)
    lib.ew_config_default.argtypes = [C.POINTER(Config), C.c_size_t]
    lib.ew_stream_create.argtypes = [C.POINTER(Config), C.POINTER(C.c_void_p)]
    lib.ew_stream_free.argtypes = [C.c_void_p]
    lib.ew_stream_ingest.argtypes = [C.c_void_p, C.c_void_p, C.c_int, C.c_size_t, C.c_size_t]
    lib.ew_stream_ingest_labeled.argtypes = [C.c_void_p, C.c_void_p, C.c_int, C.c_size_t,
                                             C.c_size_t, C.c_void_p]
    lib.ew_stream_query.argtypes = [C.c_void_p, C.POINTER(Query), C.POINTER(Result)]
    lib.ew_result_clear.argtypes = [C.POINTER(Result)]
    lib.ew_stream_count.argtypes = [C.c_void_p]
    lib.ew_stream_count.restype = C.c_uint64
    lib.ew_stream_window_count.argtypes = [C.c_void_p]
    lib.ew_stream_window_count.restype = C.c_uint64
    lib.ew_stream_matrix.argtypes = [C.c_void_p, C.c_int, C.c_int, C.POINTER(C.c_double),
                                     C.c_void_p, C.c_void_p]
    lib.ew_stream_merge.argtypes = [C.c_void_p, C.c_void_p]
    lib.ew_stream_reset.argtypes = [C.c_void_p]
    lib.ew_stream_live_vectors.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t]
    lib.ew_stream_live_vectors.restype = C.c_size_t
    lib.ew_stream_memory.argtypes = [C.c_void_p]
    lib.ew_stream_memory.restype = C.c_size_t
    lib.ew_err_name.restype = C.c_char_p
    lib.ew_metric_count.restype = C.c_size_t
    return lib


LIB = _load()


class _ConfigField(C.Structure):  # the leading members of ew_config_field_t (lib/eigenwatch.h)
    _fields_ = [("name", C.c_char_p), ("member", C.c_char_p), ("old_name", C.c_char_p),
                ("type", C.c_int), ("offset", C.c_size_t)]


def _check_config_mirror():
    """Config above mirrors ew_config_t by hand: the library's configuration table (one row per
    member, with its offset) says whether it still does, so a new field fails here at once
    instead of shifting every later member."""
    LIB.ew_config_field_count.restype = C.c_size_t
    LIB.ew_config_field.restype = C.POINTER(_ConfigField)
    LIB.ew_config_field.argtypes = [C.c_size_t]
    rows = [LIB.ew_config_field(i).contents for i in range(LIB.ew_config_field_count())]
    want = [(r.member.decode(), r.offset) for r in rows]
    have = [(n, getattr(Config, n).offset) for n, _ in Config._fields_
            if n not in ("columns", "shape_rank", "shape")]
    if want != have:
        raise RuntimeError(f"ewlib.Config does not mirror ew_config_t: {have} != {want}")


_check_config_mirror()


class EwError(Exception):
    def __init__(self, code, name, message):
        super().__init__(f"{name}: {message}")
        self.code, self.name, self.message = code, name, message


class Stream:
    def __init__(self, dim, normalize="none", window=None, decay=0.0, live_k=1, shuffle=256,
                 seed=0x5eed, window_mode="auto", exact_max_dim=None, sketch_rows=None):
        cfg = Config()
        LIB.ew_config_default(C.byref(cfg), dim)
        cfg.normalize = {"none": 0, "l2": 1}[normalize]
        if window is not None:
            cfg.window = window
        cfg.window_mode = {"auto": 0, "eager": 1, "lazy": 2}[window_mode]
        cfg.decay_half_life = decay
        cfg.live_k = live_k
        cfg.shuffle = shuffle
        cfg.seed = seed
        if exact_max_dim is not None:
            cfg.exact_max_dim = exact_max_dim
        if sketch_rows is not None:
            cfg.sketch_rows = sketch_rows
        self.dim = dim
        self.h = C.c_void_p()
        rc = LIB.ew_stream_create(C.byref(cfg), C.byref(self.h))
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "create failed")

    def __del__(self):
        if getattr(self, "h", None):
            LIB.ew_stream_free(self.h)
            self.h = None

    def ingest(self, rows, dtype=None, labels=None):
        """rows: numpy array (n, d). dtype 'bf16' expects a uint16 array of raw bf16 words.
        labels: one non-negative integer per row (ew_stream_ingest_labeled), or None."""
        if dtype is None:
            dtype = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
                     np.dtype(np.float16): "f16"}[rows.dtype]
        a = np.ascontiguousarray(rows)
        n, d = a.shape
        if labels is not None:
            lab = np.ascontiguousarray(labels, dtype=np.uint32)
            rc = LIB.ew_stream_ingest_labeled(self.h, a.ctypes.data, DTYPES[dtype], n, d,
                                              lab.ctypes.data)
        else:
            rc = LIB.ew_stream_ingest(self.h, a.ctypes.data, DTYPES[dtype], n, d)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "ingest failed")

    def ingest_raw(self, buf, dtype, n, d):
        b = C.create_string_buffer(bytes(buf), len(buf))
        return LIB.ew_stream_ingest(self.h, b, DTYPES[dtype], n, d)

    def count(self):
        return LIB.ew_stream_count(self.h)

    def window_count(self):
        return LIB.ew_stream_window_count(self.h)

    def memory(self):
        return LIB.ew_stream_memory(self.h)

    def query(self, metric, center=None, source=None, max_lag=0, method="auto", **params):
        items = list(params.items())
        arr = (Param * max(1, len(items)))()
        keep = []
        for i, (k, v) in enumerate(items):
            kb = k.encode()
            keep.append(kb)
            arr[i].key = kb
            if isinstance(v, str):  # "inf" too: the table decides what a string means
                vb = v.encode()
                keep.append(vb)
                arr[i].type, arr[i].str = PARAM_TYPES["string"], vb
            elif isinstance(v, bool):
                arr[i].type, arr[i].value = PARAM_TYPES["bool"], float(v)
            else:
                arr[i].type, arr[i].value = PARAM_TYPES["number"], float(v)
        q = Query(metric.encode(), arr, len(items), -1 if center is None else int(bool(center)),
                  SOURCES[source], max_lag, 0, METHODS[method])
        r = Result()
        rc = LIB.ew_stream_query(self.h, C.byref(q), C.byref(r))
        try:
            if rc != 0:
                raise EwError(rc, LIB.ew_err_name(rc).decode(), r.message.decode())
            if r.kind == 0:
                val = r.scalar
            else:
                val = np.array([r.list[i] for i in range(r.len)])
            extra = {"as_of": r.as_of, "clamped": r.clamped, "sample_rows": r.sample_rows,
                     "groups": [r.groups[i] for i in range(r.len)] if r.groups else None,
                     "error": r.error if r.has_error else None,
                     "bracket": (r.lo, r.hi) if r.has_bracket else None}
            if r.vectors:
                extra["vectors"] = np.ctypeslib.as_array(r.vectors, shape=(r.len * r.dim,)).copy() \
                    .reshape(r.len, r.dim)
            return val, extra
        finally:
            LIB.ew_result_clear(C.byref(r))

    def q(self, metric, **kw):
        return self.query(metric, **kw)[0]

    def matrix(self, source="all", center=True):
        w = C.c_double()
        mean = np.zeros(self.dim)
        A = np.zeros((self.dim, self.dim))
        rc = LIB.ew_stream_matrix(self.h, SOURCES[source], int(center), C.byref(w),
                                  mean.ctypes.data, A.ctypes.data)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "matrix failed")
        return w.value, mean, A

    def merge(self, other):
        rc = LIB.ew_stream_merge(self.h, other.h)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "merge failed")

    def reset(self):
        LIB.ew_stream_reset(self.h)

    def live_vectors(self, k=1):
        out = np.zeros((k, self.dim))
        got = LIB.ew_stream_live_vectors(self.h, out.ctypes.data, k)
        return out[:got]


from bf16 import bf16_words  # noqa: E402,F401  (re-exported for the numeric tests)


class Tokens(C.Structure):  # ew_tokens_t
    _fields_ = [("n", C.c_size_t), ("col", C.c_void_p * 8), ("dtype", C.c_int * 8),
                ("mask", C.c_void_p), ("lengths", C.c_void_p), ("nseq", C.c_size_t),
                ("step", C.c_uint64), ("keep_steps", C.c_uint32), ("keep_bytes", C.c_uint64)]


LIB.ew_config_columns.argtypes = [C.c_void_p, C.POINTER(C.c_char_p), C.c_size_t, C.c_char_p,
                                  C.c_size_t]
LIB.ew_stream_ingest_tokens.argtypes = [C.c_void_p, C.POINTER(Tokens), C.c_char_p, C.c_size_t]
LIB.ew_tokens_packed_size.argtypes = [C.POINTER(Tokens), C.c_size_t]
LIB.ew_tokens_packed_size.restype = C.c_size_t
LIB.ew_tokens_pack.argtypes = [C.POINTER(Tokens), C.c_size_t, C.c_void_p]
LIB.ew_tokens_check.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.c_char_p, C.c_size_t]
LIB.ew_stream_window_bytes.argtypes = [C.c_void_p]
LIB.ew_stream_window_bytes.restype = C.c_size_t
LIB.ew_stream_settle.argtypes = [C.c_void_p]

DT_NUMPY = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": np.uint16}


class TokenStream(Stream):
    """A tokens stream through the library: ingest(step, {column: array}, mask, lengths)."""

    def __init__(self, columns=("entropy",)):  # noqa: D107 - no Stream.__init__: its own config
        cfg = Config()
        LIB.ew_config_default(C.byref(cfg), 1)
        names = (C.c_char_p * len(columns))(*[c.encode() for c in columns])
        msg = C.create_string_buffer(256)
        rc = LIB.ew_config_columns(C.byref(cfg), names, len(columns), msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        self.columns, self.dim = list(columns), len(columns)
        self.h = C.c_void_p()
        rc = LIB.ew_stream_create(C.byref(cfg), C.byref(self.h))
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "create failed")

    def batch(self, step, cols, mask=None, lengths=None, keep=1, dtypes=None):
        """An ew_tokens_t over numpy arrays (kept alive on the returned tuple)."""
        dtypes = dtypes or {}
        t = Tokens()
        keep_alive = []
        n = None
        for i, name in enumerate(self.columns):
            dt = dtypes.get(name, "f64")
            a = np.ascontiguousarray(cols[name])
            if dt != "bf16":
                a = a.astype(DT_NUMPY[dt])
            keep_alive.append(a)
            t.col[i], t.dtype[i] = a.ctypes.data, DTYPES[dt]
            n = len(a)
        t.n = n
        if mask is not None:
            m = np.ascontiguousarray(mask, dtype=np.uint8)
            keep_alive.append(m)
            t.mask = m.ctypes.data
        if lengths is not None:
            ln = np.ascontiguousarray(lengths, dtype="<u4")
            keep_alive.append(ln)
            t.lengths, t.nseq = ln.ctypes.data, len(ln)
        t.step, t.keep_steps = step, keep
        return t, keep_alive

    def ingest_tokens(self, step, cols, mask=None, lengths=None, keep=1, dtypes=None):
        t, keep_alive = self.batch(step, cols, mask, lengths, keep, dtypes)
        msg = C.create_string_buffer(256)
        rc = LIB.ew_stream_ingest_tokens(self.h, C.byref(t), msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        del keep_alive

    def window_bytes(self):
        return LIB.ew_stream_window_bytes(self.h)

    def settle(self):
        """ew_stream_settle: the window's tokens not yet in the `all` sketches into them."""
        rc = LIB.ew_stream_settle(self.h)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "settle failed")


_WRITE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_size_t)
_READ = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_size_t)
LIB.ew_stream_save.argtypes = [C.c_void_p, _WRITE, C.c_void_p]
LIB.ew_stream_config.argtypes = [C.c_void_p]
LIB.ew_stream_config.restype = C.c_void_p
LIB.ew_stream_load.argtypes = [C.POINTER(C.c_void_p), _READ, C.c_void_p, C.c_char_p, C.c_size_t]


LIB.ew_config_shape.argtypes = [C.c_void_p, C.POINTER(C.c_uint64), C.c_size_t, C.c_char_p,
                                C.c_size_t]
REDUCE = {"mean": 0, "max": 1, "min": 2, "sum": 3}


class StatsStream(Stream):
    """A stats stream through the library: ingest_cells(step, values, counts)."""

    def __init__(self, shape, reduce="mean"):  # noqa: D107 - its own config
        cfg = Config()
        LIB.ew_config_default(C.byref(cfg), 1)
        dims = (C.c_uint64 * len(shape))(*shape)
        msg = C.create_string_buffer(256)
        rc = LIB.ew_config_shape(C.byref(cfg), dims, len(shape), msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        cfg.reduce = REDUCE[reduce]
        self.shape, self.dim = tuple(shape), cfg.dim
        self.h = C.c_void_p()
        rc = LIB.ew_stream_create(C.byref(cfg), C.byref(self.h))
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "create failed")

    def ingest_cells(self, step, values, counts=None, keep=1, dtype="f64"):
        t = Tokens()
        v = np.ascontiguousarray(values, dtype=DT_NUMPY[dtype]).ravel()
        keep_alive = [v]
        t.n, t.col[0], t.dtype[0] = len(v), v.ctypes.data, DTYPES[dtype]
        if counts is not None:
            k = np.ascontiguousarray(counts, dtype=np.float64).ravel()
            keep_alive.append(k)
            t.col[1], t.dtype[1] = k.ctypes.data, DTYPES["f64"]
        t.step, t.keep_steps = step, keep
        msg = C.create_string_buffer(256)
        rc = LIB.ew_stream_ingest_tokens(self.h, C.byref(t), msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        del keep_alive


FEATURES = {"linear": 0, "rff": 1}
LIB.ew_config_dims.argtypes = [C.c_void_p, C.c_uint64, C.c_uint64, C.c_char_p, C.c_size_t]
LIB.ew_stream_ingest_pairs.argtypes = [C.c_void_p, C.c_void_p, C.c_int, C.c_void_p, C.c_int,
                                       C.c_size_t]
LIB.ew_stream_nullify.argtypes = [C.c_void_p, C.c_void_p, C.c_int, C.c_void_p, C.c_int,
                                  C.c_size_t, C.c_void_p, C.c_char_p, C.c_size_t]


def _dtype_of(a):
    return {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
            np.dtype(np.float16): "f16"}[a.dtype]


class PairedStream(Stream):
    """A paired stream through the library: ingest_pairs(x, y), nullify(x, y)."""

    def __init__(self, dims, features="linear", sigma=0.0, rff_dim=None, seed=0x5eed):  # noqa: D107
        cfg = Config()
        LIB.ew_config_default(C.byref(cfg), 1)
        msg = C.create_string_buffer(256)
        rc = LIB.ew_config_dims(C.byref(cfg), dims[0], dims[1], msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        cfg.features = FEATURES[features]
        cfg.sigma = sigma
        if rff_dim is not None:
            cfg.rff_dim = rff_dim
        cfg.seed = seed
        rc = LIB.ew_config_check(C.byref(cfg), msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        self.dims, self.dim = tuple(dims), cfg.dim
        self.h = C.c_void_p()
        rc = LIB.ew_stream_create(C.byref(cfg), C.byref(self.h))
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "create failed")

    def ingest_pairs(self, x, y, xdtype=None, ydtype=None):
        x = np.ascontiguousarray(x)
        y = np.ascontiguousarray(y)
        rc = LIB.ew_stream_ingest_pairs(self.h, x.ctypes.data, DTYPES[xdtype or _dtype_of(x)],
                                        y.ctypes.data, DTYPES[ydtype or _dtype_of(y)], len(x))
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), "ingest failed")

    def nullify(self, x, y):
        x = np.ascontiguousarray(x)
        y = np.ascontiguousarray(y)
        out = np.empty((len(y), self.dims[1]), dtype=np.float64)
        msg = C.create_string_buffer(256)
        rc = LIB.ew_stream_nullify(self.h, x.ctypes.data, DTYPES[_dtype_of(x)], y.ctypes.data,
                                   DTYPES[_dtype_of(y)], len(x), out.ctypes.data, msg, 256)
        if rc != 0:
            raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
        return out


def save_bytes(stream):
    """The stream's saved state (ew_stream_save) as bytes."""
    out = bytearray()

    def write(_ctx, p, n):
        out.extend(C.string_at(p, n))
        return 0
    rc = LIB.ew_stream_save(stream.h, _WRITE(write), None)
    if rc != 0:
        raise EwError(rc, LIB.ew_err_name(rc).decode(), "save failed")
    return bytes(out)


def load_bytes(data, cls=Stream):
    """A stream of class cls loaded from saved bytes (ew_stream_load)."""
    pos = [0]

    def read(_ctx, p, n):
        if pos[0] + n > len(data):
            return 1
        C.memmove(p, data[pos[0]:pos[0] + n], n)
        pos[0] += n
        return 0
    h = C.c_void_p()
    msg = C.create_string_buffer(256)
    rc = LIB.ew_stream_load(C.byref(h), _READ(read), None, msg, 256)
    if rc != 0:
        raise EwError(rc, LIB.ew_err_name(rc).decode(), msg.value.decode())
    s = cls.__new__(cls)
    s.h = h
    cfg = C.cast(LIB.ew_stream_config(h), C.POINTER(Config)).contents
    s.dim = cfg.dim
    s.columns = [cfg.columns.name[i].value.decode() for i in range(cfg.columns.n)]
    s.shape = tuple(cfg.shape[i] for i in range(cfg.shape_rank))
    s.dims = s.shape
    return s
