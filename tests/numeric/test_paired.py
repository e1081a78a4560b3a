#!/usr/bin/python3
"""Paired streams (kind paired; Dissecting CLIP, Ospanov et al. 2024) against the published anchor
and an independent numpy float64 statement (tests/numeric/kernel_ref.py: rff_features,
paired_blocks, schur_parts, schur_vendi_from_eigs, sce, sce_text, nullify):

- anchor: φ_x = [[1,0],[1,0],[0,1],[0,1]], φ_y = [[1,0,0],[0,1,0],[0,0,1],[0,0,1]] (linear, dims
  [2, 3]): sce 1.0000000045 and sce_text 1.6118549016 at 1e-9 (CLIP-DISSECTION's reference code
  re-derived), and kernel_ref's values at 1e-12; ingest_pairs and interleaved rows through
  ew_stream_ingest answer alike, and a row of the wrong width is DIM;
- linear features on random pairs (y = x·W + noise, O(1) values), f64 and f32 (numpy on the f32
  values widened), in uneven batches: sce and sce_text at 1e-9 relative; a rank-deficient C_xx
  (n = 5 < dx = 10) at 1e-9 against kernel_ref's pinned (eigenvector) evaluation; batches of 700
  rows (more than the 256-row chunk features are formed in), linear and rff, f32 and f64;
- rff features (dims [6, 6], sigma 2.5, rff_dim 16 and 40, seed 99): Ω restated from the seed
  (seed ^ 0x6f6d656761 through splitmix64 into xoshiro256**, Box–Muller one normal per two draws,
  /σ, dx×m row-major) equals the PAIR section's Ω at 1e-15 relative; sce and sce_text equal
  kernel_ref on rff_features(·, omega=Ω) at 1e-9; the saved Σφyφyᵀ has trace n (‖φ‖ = 1), so
  tr C_yy = 1 and 1 < sce ≤ (2m)^(tr S) ≤ 2m, 1 < sce_text ≤ (2m)^(tr Δ);
- nullify (linear, full-rank C_xx, n = 200, dx = 8, dy = 5): equals kernel_ref.nullify at 1e-10
  of max|y| (f64, and f32 x widened); the fit pairs' corrected rows are uncorrelated with x
  (‖xᵀ·out‖_max / (‖x‖_F‖y‖_F) ≤ 1e-12); nullify changes no answer (sce bit for bit, the saved
  bytes); on an rff stream BAD_PARAM naming "linear"; on an empty stream DEGENERATE;
- merge: three streams fed disjoint thirds in different batch sizes, merged, answer as one stream
  fed everything (sce, sce_text at 1e-12, nullify at 1e-10; linear and rff); merges across
  features, sigma, rff_dim, seed, dims (same and different dx + dy) or kinds are refused and
  leave the destination's answers and saved bytes unchanged; a state whose Ω was altered (its
  checksum restated) loads but no longer merges with a stream of the same seed;
- save/load: save → load → save gives the same bytes (linear, rff, empty), the loaded stream
  answers identically; a PAIR section whose dx, dy or m was altered, one cut short (its length
  and the checksum restated), or a state cut inside PAIR is BAD_STATE; the format version is 4 for
  paired streams, 2 still for a matrix stream;
- configuration refusals (ew_config_dims, ew_config_check): rff without sigma, a negative or
  non-finite sigma, rff with dx != dy, dims 0 or 8193 on either side, rff_dim 0 or 4097,
  normalize l2; rff_dim 4096 (2m = 8192, the largest) passes the check (so the check's "2m above
  8192" branch cannot be reached while rff_dim ≤ 4096); ingest of a NaN or an infinity in x or y
  (one dtype, or two) is NON_FINITE and changes nothing (saved bytes equal); x and y in two dtypes
  (f32/f64 either way) equal numpy on the widened values and, bit for bit, a stream fed the
  widened f64 values;
- the Schur cache: answers follow ingest, reset (a new epoch with the same count) and merge;
  the memory a stream reports grows by exactly the cache (2·fy spectra, and A* for linear);
- properties: y = x (linear, full rank) gives Δ = C_yy − O(ε), so sce_text equals
  schur_vendi_from_eigs(eigvalsh(C_yy)) at 1e-9, and S = O(ε)·I lies under the 1e-10 clamp, so
  sce = exp(dy·1e-10·ln dy) at 1e-12; y independent of x (n = 20000, zero means): n·tr Δ is a
  sum of dy χ²-like terms of mean dx·tr(C_yy)/dy each, so tr Δ ≤ 5·dx·tr(C_yy)/n (tail
  probability ~1e-40), and ln sce_text ≤ tr Δ·ln dy + clamp terms, at most 1e-3 of ln sce."""
import ctypes as C
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_ref as ref  # noqa: E402
import ewlib  # noqa: E402
from ewlib import LIB, PairedStream, Stream, load_bytes, save_bytes  # noqa: E402
from taplib import Tap, raises  # noqa: E402


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def check(got, want, tol, what):
    assert rel(got, want) <= tol, f"{what}: got {got!r}, want {want!r} (rel {rel(got, want):.2e})"


def sces(s):
    """(sce, sce_text) of stream s."""
    return s.query("sce")[0], s.query("sce_text")[0]


def ref_sces(px, py):
    return ref.sce(px, py), ref.sce_text(px, py)


def check_sces(s, px, py, tol, what):
    got, want = sces(s), ref_sces(px, py)
    check(got[0], want[0], tol, f"{what}: sce")
    check(got[1], want[1], tol, f"{what}: sce_text")
    return got


def feed(s, x, y, sizes):
    """x, y into s in batches of the given sizes (their sum must be len(x))."""
    assert sum(sizes) == len(x)
    at = 0
    for k in sizes:
        s.ingest_pairs(x[at:at + k], y[at:at + k])
        at += k


def w64(a):
    return np.asarray(a).astype(np.float64)


# ---- the restated draw of Ω (acc/paired.c; core/rng.c's Box–Muller) ------------------------------

OMEGA_TAG = 0x6f6d656761  # "omega"


def omega_of(seed, d, m, sigma):
    """Ω = N(0, 1)/σ, d×m row-major: xoshiro256** seeded through splitmix64 with seed ^ OMEGA_TAG,
    one normal per two draws, u1 = ((next >> 11) + 1)·2⁻⁵³, u2 = (next >> 11)·2⁻⁵³,
    z = sqrt(−2 ln u1)·cos(2π u2)."""
    g = ref.Xoshiro(seed ^ OMEGA_TAG)
    out = np.empty(d * m)
    for i in range(d * m):
        u1 = ((g.next() >> 11) + 1) * 2.0 ** -53
        u2 = (g.next() >> 11) * 2.0 ** -53
        out[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2) / sigma
    return out.reshape(d, m)


# ---- the saved state's layout (docs/STATE.md; state/save.c, acc/paired.c pa_save) --------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    tab = CRC_TABLE
    for b in data:
        c = tab[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def tag(s):
    return struct.unpack("<I", s.encode())[0]


def sections(data):
    """[(tag, payload offset, payload length)] of a saved state, END included; checks the magic
    and the trailer's CRC-32C (so that a restated checksum below is the library's)."""
    assert data[:8] == b"EWSTATE\0", data[:8]
    out, at = [], 16
    while True:
        t, n = struct.unpack_from("<IQ", data, at)
        out.append((t, at + 12, n))
        at += 12 + n
        if t == tag("END\0"):
            break
    assert at + 4 == len(data), "the state ends with its checksum"
    assert struct.unpack_from("<I", data, at)[0] == crc32c(data[:at]), "CRC-32C as restated"
    return out


def section(data, name):
    for t, off, n in sections(data):
        if t == tag(name):
            return off, n
    raise AssertionError(f"no section {name}")


def with_section(data, name, payload):
    """data with section `name`'s payload (and length) replaced, the checksum restated."""
    off, n = section(data, name)
    body = data[:off - 8] + struct.pack("<Q", len(payload)) + payload + data[off + n:-4]
    return body + struct.pack("<I", crc32c(body))


def pair_section(data):
    """The PAIR payload parsed: n, dx, dy, m, Ω (dx×m), Σφxφxᵀ, Σφxφyᵀ, Σφyφyᵀ (full)."""
    off, ln = section(data, "PAIR")
    n, dx, dy, m = struct.unpack_from("<4Q", data, off)
    at = off + 32
    fx, fy = (2 * m, 2 * m) if m else (dx, dy)

    def take(k):
        nonlocal at
        v = np.frombuffer(data, "<f8", k, at).copy()
        at += 8 * k
        return v

    def upper(f):
        full = np.zeros((f, f))
        for i in range(f):
            full[i, i:] = take(f - i)
        return full + np.triu(full, 1).T
    omega = take(dx * m).reshape(dx, m) if m else None
    sxx = upper(fx)
    sxy = take(fx * fy).reshape(fx, fy)
    syy = upper(fy)
    assert at == off + ln, "PAIR's length is what its fields take"
    return dict(n=n, dx=dx, dy=dy, m=m, omega=omega, sxx=sxx, sxy=sxy, syy=syy)


def version(data):
    return struct.unpack_from("<I", data, 8)[0]


# ---- configuration without a stream (ew_config_dims + ew_config_check) --------------------------

LIB.ew_config_check.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t]


def config_check(dims, features="linear", sigma=0.0, rff_dim=None, normalize=0):
    """(rc name, message) of configuring a paired stream, nothing created."""
    cfg = ewlib.Config()
    LIB.ew_config_default(C.byref(cfg), 1)
    msg = C.create_string_buffer(256)
    rc = LIB.ew_config_dims(C.byref(cfg), dims[0], dims[1], msg, 256)
    if rc == 0:
        cfg.features = ewlib.FEATURES[features]
        cfg.sigma = sigma
        if rff_dim is not None:
            cfg.rff_dim = rff_dim
        cfg.normalize = normalize
        rc = LIB.ew_config_check(C.byref(cfg), msg, 256)
    return LIB.ew_err_name(rc).decode(), msg.value.decode()


LIB.ew_stream_merge_ex.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p, C.c_size_t, C.c_char_p,
                                   C.c_size_t]


def merge_msg(dst, src):
    """ew_stream_merge_ex(dst, src) without window spans: (rc name, the sentence)."""
    msg = C.create_string_buffer(256)
    rc = LIB.ew_stream_merge_ex(dst.h, src.h, None, 0, msg, 256)
    return LIB.ew_err_name(rc).decode(), msg.value.decode()


LIB.ew_stream_workspace_peak.argtypes = [C.c_void_p]
LIB.ew_stream_workspace_peak.restype = C.c_size_t


def held(s):
    """ew_stream_memory less the workspace peak it adds: what the stream keeps."""
    return s.memory() - LIB.ew_stream_workspace_peak(s.h)


def pairs(rng, n, dx, dy, noise=0.3):
    """x (n×dx) and y = x·W + noise (n×dy), entries O(1)."""
    x = rng.standard_normal((n, dx))
    W = rng.standard_normal((dx, dy)) / math.sqrt(dx)
    y = x @ W + noise * rng.standard_normal((n, dy))
    return x, y


# ---- the cases ----------------------------------------------------------------------------------

def anchor():
    phx = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    phy = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=float)
    s = PairedStream((2, 3))
    s.ingest_pairs(phx, phy)
    sce, txt = sces(s)
    assert abs(sce - 1.0000000045) <= 1e-9, f"sce {sce!r}, published 1.0000000045"
    assert abs(txt - 1.6118549016) <= 1e-9, f"sce_text {txt!r}, published 1.6118549016"
    check(sce, ref.sce(phx, phy), 1e-12, "sce vs kernel_ref")
    check(txt, ref.sce_text(phx, phy), 1e-12, "sce_text vs kernel_ref")
    _, extra = s.query("sce")
    assert extra["as_of"] == 4, extra
    rows = PairedStream((2, 3))  # the same pairs as interleaved rows of dx + dy values
    rows.ingest(np.hstack([phx, phy]))
    assert sces(rows) == (sce, txt), "ew_stream_ingest of x|y rows = ingest_pairs"
    assert save_bytes(rows) == save_bytes(s)
    raises("DIM_MISMATCH", rows.ingest, np.zeros((2, 4)))


def linear_random(dtype):
    rng = np.random.default_rng(21)
    x, y = pairs(rng, 60, 10, 7)
    if dtype == "f32":
        x, y = x.astype(np.float32), y.astype(np.float32)
    s = PairedStream((10, 7))
    feed(s, x, y, [7, 23, 1, 29])
    check_sces(s, w64(x), w64(y), 1e-9, f"linear {dtype} n=60")
    # rank-deficient C_xx: n = 5 < dx = 10 (kernel_ref's pinned evaluation, not `literal`)
    x5, y5 = pairs(rng, 5, 10, 7)
    if dtype == "f32":
        x5, y5 = x5.astype(np.float32), y5.astype(np.float32)
    t = PairedStream((10, 7))
    feed(t, x5, y5, [2, 3])
    got = check_sces(t, w64(x5), w64(y5), 1e-9, f"linear {dtype} n=5 < dx")
    # x's 5 rows span the sample space: x explains y up to the ridge, S is under the clamp
    assert got[1] > 2.0 and got[0] < 1 + 1e-8, got


def chunks():
    """700-row batches: the kind forms features 256 rows at a time."""
    rng = np.random.default_rng(22)
    x, y = pairs(rng, 700, 6, 6)
    om = omega_of(5, 6, 24, 3.0)
    for dt in (np.float64, np.float32):
        xs, ys = x.astype(dt), y.astype(dt)
        s = PairedStream((6, 6))
        s.ingest_pairs(xs, ys)
        check_sces(s, w64(xs), w64(ys), 1e-9, f"linear 700 rows {dt.__name__}")
        r = PairedStream((6, 6), "rff", 3.0, 24, 5)
        r.ingest_pairs(xs, ys)
        check_sces(r, ref.rff_features(w64(xs), omega=om), ref.rff_features(w64(ys), omega=om),
                   1e-9, f"rff 700 rows {dt.__name__}")


def rff():
    rng = np.random.default_rng(23)
    x = rng.standard_normal((120, 6)) * 1.5
    y = 0.8 * x[:, ::-1] + 0.6 * rng.standard_normal((120, 6))
    for m in (16, 40):
        s = PairedStream((6, 6), "rff", 2.5, m, 99)
        feed(s, x, y, [50, 13, 57])
        om = omega_of(99, 6, m, 2.5)
        p = pair_section(save_bytes(s))
        assert (p["n"], p["dx"], p["dy"], p["m"]) == (120, 6, 6, m), p
        err = np.abs(p["omega"] - om) / np.abs(om)
        assert err.max() <= 1e-15, f"m={m}: Ω differs from the restated draw by {err.max():.2e}"
        fx, fy = ref.rff_features(x, omega=om), ref.rff_features(y, omega=om)
        sce, txt = check_sces(s, fx, fy, 1e-9, f"rff m={m}")
        # ‖φ(v)‖ = 1 (Σ cos² + sin² over m, /m), so the saved Σφyφyᵀ has trace n: tr C_yy = 1
        check(np.trace(p["syy"]) / p["n"], 1.0, 1e-12, f"m={m}: tr C_yy")
        check(np.trace(p["sxx"]) / p["n"], 1.0, 1e-12, f"m={m}: tr C_xx")
        # S, Δ ⪰ 0 with S + Δ = C_yy: their eigenvalues sum to tr S, tr Δ ≤ 1, and
        # exp(−Σ λ ln(λ/s)) ≤ exp(s ln 2m) = (2m)^s; every term is > 0 (λ < s), so > 1
        # (clamping at 1e-10 raises s by at most 2m·1e-10, plus rounding's negatives)
        S, D = ref.schur_parts(*ref.paired_blocks(fx, fy))
        for name, v, tr in (("sce", sce, np.trace(S)), ("sce_text", txt, np.trace(D))):
            assert 0 < tr < 1, (name, tr)
            top = (2 * m) ** (tr + 2 * m * 1e-10 + 1e-12)
            assert 1 < v <= top <= 2 * m, f"m={m}: {name} {v} not in (1, (2m)^tr = {top}]"


def nullify():
    rng = np.random.default_rng(24)
    x, y = pairs(rng, 200, 8, 5, noise=0.5)
    s = PairedStream((8, 5))
    feed(s, x, y, [64, 100, 36])
    xt, yt = pairs(np.random.default_rng(25), 30, 8, 5)
    before, saved = sces(s), save_bytes(s)
    out = s.nullify(xt, yt)
    want = ref.nullify(xt, yt, x, y)
    err = np.abs(out - want).max() / np.abs(yt).max()
    assert err <= 1e-10, f"nullify vs kernel_ref: {err:.2e} of max|y|"
    x32 = xt.astype(np.float32)
    err = np.abs(s.nullify(x32, yt) - ref.nullify(w64(x32), yt, x, y)).max() / np.abs(yt).max()
    assert err <= 1e-10, f"nullify, f32 x: {err:.2e} of max|y|"
    fit = s.nullify(x, y)
    orth = np.abs(x.T @ fit).max() / (np.linalg.norm(x) * np.linalg.norm(y))
    assert orth <= 1e-12, f"the corrected fit rows correlate with x: {orth:.2e}"
    assert np.abs(fit).max() > 0.1, "nullify removed more than x explains"
    assert sces(s) == before, "nullify changed an answer"
    assert save_bytes(s) == saved, "nullify changed the saved state"
    r = PairedStream((6, 6), "rff", 2.5, 16, 99)
    xr, yr = pairs(rng, 40, 6, 6)
    r.ingest_pairs(xr, yr)
    e = raises("BAD_PARAM", r.nullify, xr[:3], yr[:3])
    assert "linear" in e.message, e.message
    e = raises("DEGENERATE", PairedStream((8, 5)).nullify, xt, yt)
    raises("DEGENERATE", PairedStream((8, 5)).query, "sce")
    raises("DEGENERATE", PairedStream((8, 5)).query, "sce_text")


def merge_equals_one(features):
    rng = np.random.default_rng(26)
    dims = (5, 4) if features == "linear" else (4, 4)
    x, y = pairs(rng, 90, *dims)
    kw = {} if features == "linear" else dict(features="rff", sigma=1.7, rff_dim=12, seed=7)
    one = PairedStream(dims, **kw)
    feed(one, x, y, [11, 50, 29])
    parts = [PairedStream(dims, **kw) for _ in range(3)]
    feed(parts[0], x[:30], y[:30], [30])
    feed(parts[1], x[30:60], y[30:60], [1, 2, 27])
    feed(parts[2], x[60:], y[60:], [17, 13])
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    m = parts[0]
    assert m.query("sce")[1]["as_of"] == 90
    a, b = sces(m), sces(one)
    check(a[0], b[0], 1e-12, f"{features}: merged sce = one stream's")
    check(a[1], b[1], 1e-12, f"{features}: merged sce_text = one stream's")
    if features == "linear":
        check_sces(m, x, y, 1e-9, "merged vs kernel_ref")
        err = np.abs(m.nullify(x, y) - one.nullify(x, y)).max() / np.abs(y).max()
        assert err <= 1e-10, f"merged nullify: {err:.2e}"
    else:
        om = omega_of(7, 4, 12, 1.7)
        check_sces(m, ref.rff_features(x, omega=om), ref.rff_features(y, omega=om), 1e-9,
                   "merged rff vs kernel_ref")
    pm, po = pair_section(save_bytes(m)), pair_section(save_bytes(one))
    assert pm["n"] == po["n"] == 90
    if features == "rff":
        assert np.array_equal(pm["omega"], po["omega"]), "one Ω"
    for k in ("sxx", "sxy", "syy"):  # sums in another order: rounding only
        err = np.abs(pm[k] - po[k]).max() / np.abs(po[k]).max()
        assert err <= 1e-14, f"{features}: merged {k} differs by {err:.2e} of its largest entry"


def batch_forms_agree():
    """A batch of few rows keeps its rows' features until applied (apply forms their blocks); a
    larger one forms its blocks in prepare (acc/paired.c): dims [40, 30] keep features for
    batches up to 52 rows. Both forms, linear and rff, give numpy's answers at 1e-9 and each
    other's at 1e-12, f32 and f64."""
    rng = np.random.default_rng(61)
    for kw, dims in (({}, (40, 30)), (dict(features="rff", sigma=4.0, rff_dim=24), (12, 12))):
        x = rng.standard_normal((300, dims[0]))
        y = x[:, :dims[1]] * 0.5 + rng.standard_normal((300, dims[1]))
        for dt in (np.float64, np.float32):
            xs, ys = x.astype(dt), y.astype(dt)
            small, big = PairedStream(dims, **kw), PairedStream(dims, **kw)
            feed(small, xs, ys, [1, 7, 2, 40] * 6)
            feed(big, xs, ys, [300])
            a, b = sces(small), sces(big)
            check(a[0], b[0], 1e-12, f"{kw} {dt.__name__}: sce of small batches and one batch")
            check(a[1], b[1], 1e-12, f"{kw} {dt.__name__}: sce_text")
            if not kw:
                check_sces(big, w64(xs), w64(ys), 1e-9, f"linear {dt.__name__}")
            else:
                om = omega_of(0x5eed, dims[0], 24, 4.0)
                px = ref.rff_features(w64(xs), omega=om)
                py = ref.rff_features(w64(ys), omega=om)
                check_sces(big, px, py, 1e-9, f"rff {dt.__name__}")


def merge_refused():
    rng = np.random.default_rng(27)
    x, y = pairs(rng, 40, 6, 6)
    base = dict(features="rff", sigma=2.5, rff_dim=16, seed=99)
    others = [("features", (6, 6), {}),
              ("sigma", (6, 6), dict(base, sigma=3.0)),
              ("rff_dim", (6, 6), dict(base, rff_dim=20)),
              ("seed", (6, 6), dict(base, seed=100))]
    for what, dims, kw in others:
        for dst_kw, src_kw in ((base, kw), (kw, base)):
            dst, src = PairedStream((6, 6), **dst_kw), PairedStream(dims, **src_kw)
            dst.ingest_pairs(x[:20], y[:20])
            src.ingest_pairs(x[20:], y[20:])
            before, saved = sces(dst), save_bytes(dst)
            name, msg = merge_msg(dst, src)
            assert name == "BAD_PARAM" and "features" in msg, (what, name, msg)
            raises("BAD_PARAM", dst.merge, src)  # ew_stream_merge, as ewlib calls it
            assert sces(dst) == before and save_bytes(dst) == saved, f"{what}: dst changed"
    lin = PairedStream((5, 4))
    lin.ingest_pairs(x[:, :5], y[:, :4])
    before, saved = sces(lin), save_bytes(lin)
    swapped = PairedStream((4, 5))  # the same dx + dy, other dims
    swapped.ingest_pairs(x[:, :4], y[:, :5])
    wider = PairedStream((5, 5))
    wider.ingest_pairs(x[:, :5], y[:, :5])
    mat = Stream(9)
    mat.ingest(np.hstack([x[:, :5], y[:, :4]]))
    for what, src, want in (("dims [4, 5]", swapped, "BAD_PARAM"),
                            ("dims [5, 5]", wider, "DIM_MISMATCH"),
                            ("a matrix stream", mat, "BAD_PARAM")):
        name, msg = merge_msg(lin, src)
        assert name == want, f"dims [5, 4] merging {what}: {name} {msg}"
        assert sces(lin) == before and save_bytes(lin) == saved, f"{what}: dst changed"
    m_saved = save_bytes(mat)
    name, msg = merge_msg(mat, lin)
    assert name == "BAD_PARAM" and "paired" in msg and "matrix" in msg, (name, msg)
    assert save_bytes(mat) == m_saved
    # linear features ignore sigma and rff_dim: two linear streams that differ only there merge
    a, b = PairedStream((5, 4), sigma=2.0), PairedStream((5, 4), rff_dim=64)
    a.ingest_pairs(x[:20, :5], y[:20, :4])
    b.ingest_pairs(x[20:, :5], y[20:, :4])
    a.merge(b)
    check(sces(a)[0], sces(lin)[0], 1e-12, "linear streams of other sigma and rff_dim merged")
    # a loaded state merges with a stream of its configuration; one whose Ω was altered does not
    src = PairedStream((6, 6), **base)
    src.ingest_pairs(x, y)
    data = save_bytes(src)
    ok = PairedStream((6, 6), **base)
    ok.merge(load_bytes(data, PairedStream))
    assert sces(ok) == sces(src)
    off, n = section(data, "PAIR")
    pay = bytearray(data[off:off + n])
    w = struct.unpack_from("<d", pay, 32)[0]
    struct.pack_into("<d", pay, 32, w * (1 + 2 ** -40))
    bent = load_bytes(with_section(data, "PAIR", bytes(pay)), PairedStream)
    dst = PairedStream((6, 6), **base)
    dst.ingest_pairs(x[:5], y[:5])
    before, saved = sces(dst), save_bytes(dst)
    name, msg = merge_msg(dst, bent)
    assert name == "BAD_PARAM" and "Ω" in msg, f"merged a state whose Ω is not the seed's: {msg}"
    assert sces(dst) == before and save_bytes(dst) == saved


def save_load():
    rng = np.random.default_rng(28)
    x, y = pairs(rng, 50, 6, 6)
    for kw in ({}, dict(features="rff", sigma=2.5, rff_dim=16, seed=99)):
        s = PairedStream((6, 6), **kw)
        empty = save_bytes(s)
        assert save_bytes(load_bytes(empty, PairedStream)) == empty, f"{kw}: empty state"
        feed(s, x, y, [20, 30])
        data = save_bytes(s)
        assert version(data) == 4, f"paired state version {version(data)}"
        t = load_bytes(data, PairedStream)
        assert save_bytes(t) == data, f"{kw}: save → load → save"
        assert sces(t) == sces(s), f"{kw}: the loaded stream answers differently"
        t.ingest_pairs(x[:7], y[:7])
        s.ingest_pairs(x[:7], y[:7])
        assert sces(t) == sces(s) and save_bytes(t) == save_bytes(s), "loaded, then ingested"
        off, n = section(data, "PAIR")
        pay = data[off:off + n]
        for i, what in ((1, "dx"), (2, "dy"), (3, "m")):
            bad = bytearray(pay)
            struct.pack_into("<Q", bad, 8 * i, struct.unpack_from("<Q", pay, 8 * i)[0] + 1)
            e = raises("BAD_STATE", load_bytes, with_section(data, "PAIR", bytes(bad)),
                       PairedStream)
            assert "PAIR" in e.message, f"{what} altered: {e.message}"
        e = raises("BAD_STATE", load_bytes, with_section(data, "PAIR", pay[:-8]), PairedStream)
        assert "PAIR" in e.message, f"PAIR cut short: {e.message}"
        # pairs other than the stream's rows (STRM's count): a state no ingest makes
        bad = bytearray(pay)
        struct.pack_into("<Q", bad, 0, struct.unpack_from("<Q", pay, 0)[0] // 2)
        e = raises("BAD_STATE", load_bytes, with_section(data, "PAIR", bytes(bad)), PairedStream)
        assert "PAIR" in e.message and "STRM" in e.message, f"PAIR's n halved: {e.message}"
        raises("BAD_STATE", load_bytes, data[:off + n // 2], PairedStream)
        raises("BAD_STATE", load_bytes, data[:-1], PairedStream)
    m = Stream(6)
    m.ingest(x)
    assert version(save_bytes(m)) == 2, "a matrix stream's state is still version 2"


def config_refusals():
    for dims, kw, word in (((6, 6), dict(features="rff"), "sigma"),
                           ((6, 6), dict(features="rff", sigma=-1.0), "sigma"),
                           ((6, 6), dict(features="rff", sigma=float("nan")), "sigma"),
                           ((6, 6), dict(features="rff", sigma=float("inf")), "sigma"),
                           ((6, 5), dict(features="rff", sigma=1.0), "dims"),
                           ((0, 5), {}, "dims"), ((5, 0), {}, "dims"),
                           ((8193, 5), {}, "dims"), ((5, 8193), {}, "dims"),
                           ((6, 6), dict(features="rff", sigma=1.0, rff_dim=0), "rff_dim"),
                           ((6, 6), dict(features="rff", sigma=1.0, rff_dim=4097), "rff_dim"),
                           ((6, 6), dict(normalize=1), "normalize")):
        name, msg = config_check(dims, **kw)
        assert name == "BAD_PARAM" and word in msg, (dims, kw, name, msg)
        if "normalize" not in kw:
            e = raises("BAD_PARAM", PairedStream, dims, **kw)
            assert word in e.message, (dims, kw, e.message)
    # the largest accepted: dims 8192, rff_dim 4096 (2m = 8192): checked, not created
    for dims, kw in (((8192, 8192), {}), ((1, 1), dict(features="rff", sigma=1.0, rff_dim=4096))):
        assert config_check(dims, **kw) == ("OK", ""), (dims, kw, config_check(dims, **kw))


def ingest_refusals():
    rng = np.random.default_rng(29)
    x, y = pairs(rng, 30, 4, 3)
    for kw in ({}, dict(features="rff", sigma=1.0, rff_dim=8)):
        dims = (4, 3) if not kw else (4, 4)
        yy = y if not kw else np.hstack([y, y[:, :1]])
        s = PairedStream(dims, **kw)
        s.ingest_pairs(x[:20], yy[:20])
        saved, before = save_bytes(s), sces(s)
        raises("BAD_PARAM", s.matrix)  # a paired stream keeps blocks, not one d×d matrix
        for bad in (np.nan, np.inf, -np.inf):
            for side in ("x", "y"):
                for xd, yd in ((np.float64, np.float64), (np.float32, np.float32),
                               (np.float32, np.float64), (np.float64, np.float32)):
                    bx, by = x[20:].astype(xd), yy[20:].astype(yd)
                    (bx if side == "x" else by)[4, 1] = bad
                    raises("NON_FINITE", s.ingest_pairs, bx, by)
                    assert save_bytes(s) == saved and s.count() == 20, (bad, side, xd, yd)
        assert sces(s) == before
    # x and y in two dtypes: both widened exactly, the same as f64 rows of the widened values
    for xd, yd in ((np.float32, np.float64), (np.float64, np.float32)):
        bx, by = x.astype(xd), y.astype(yd)
        s = PairedStream((4, 3))
        feed(s, bx, by, [13, 17])
        t = PairedStream((4, 3))
        feed(t, w64(bx), w64(by), [13, 17])
        got = check_sces(s, w64(bx), w64(by), 1e-9, f"x {xd.__name__}, y {yd.__name__}")
        assert got == sces(t) and save_bytes(s) == save_bytes(t), "mixed = widened f64, exactly"


def cache():
    rng = np.random.default_rng(30)
    x, y = pairs(rng, 60, 5, 4)
    s = PairedStream((5, 4))
    mem0 = held(s)
    s.ingest_pairs(x[:30], y[:30])
    assert held(s) == mem0, "ingest keeps nothing but the blocks"
    check_sces(s, x[:30], y[:30], 1e-9, "first 30")
    assert held(s) - mem0 == (2 * 4 + 5 * 4) * 8, \
        f"cache {held(s) - mem0} bytes, want 2·fy + fx·fy doubles"
    s.ingest_pairs(x[30:], y[30:])
    check_sces(s, x, y, 1e-9, "after a second batch")
    s.reset()
    raises("DEGENERATE", s.query, "sce")
    s.ingest_pairs(x[30:], y[30:])  # the same count as before the reset, other pairs
    check_sces(s, x[30:], y[30:], 1e-9, "after reset")
    err = np.abs(s.nullify(x, y) - ref.nullify(x, y, x[30:], y[30:])).max() / np.abs(y).max()
    assert err <= 1e-10, f"nullify after reset: {err:.2e}"
    o = PairedStream((5, 4))
    o.ingest_pairs(x[:30], y[:30])
    s.merge(o)
    check_sces(s, np.vstack([x[30:], x[:30]]), np.vstack([y[30:], y[:30]]), 1e-9, "after merge")
    s.merge(PairedStream((5, 4)))  # nothing joins
    check_sces(s, x, y, 1e-9, "after merging an empty stream")
    r = PairedStream((4, 4), "rff", 2.0, 10, 3)
    r.ingest_pairs(x[:, :4], y)
    m0 = held(r)
    sces(r)
    assert held(r) - m0 == 2 * 20 * 8, f"rff cache {held(r) - m0} bytes, want 2·fy doubles"


def properties():
    rng = np.random.default_rng(31)
    x = rng.standard_normal((80, 6)) * np.linspace(0.5, 2, 6)
    s = PairedStream((6, 6))
    feed(s, x, x, [40, 40])
    sce, txt = sces(s)
    Cyy = x.T @ x / 80
    check(txt, ref.schur_vendi_from_eigs(np.linalg.eigvalsh(Cyy)), 1e-9, "y = x: sce_text")
    # S = C_yy − C_yy(C_yy + εI)⁻¹C_yy = ε·C_yy(C_yy + εI)⁻¹ ≈ εI (1e-12 < 1e-10): all clamped,
    # s = 6e-10, sce = exp(−6·1e-10·ln(1/6))
    check(sce, math.exp(6 * 1e-10 * math.log(6)), 1e-12, "y = x: sce, S under the clamp")
    # y independent of x
    n, d = 20000, 6
    xi = rng.standard_normal((n, d))
    yi = rng.standard_normal((n, d)) * np.linspace(0.5, 1.5, d)
    t = PairedStream((d, d))
    feed(t, xi, yi, [7000, 13000])
    sce, txt = check_sces(t, xi, yi, 1e-9, "independent pairs")
    tr_yy = float(np.sum(yi * yi)) / n
    bound = 5 * d * tr_yy / n  # tr Δ ≤ 5× its expectation d·tr(C_yy)/n
    clamp = d * 1e-10 * math.log(max(bound, 1e-9) / 1e-10)
    assert math.log(txt) <= bound * math.log(d) + clamp, \
        f"ln sce_text {math.log(txt):.3e} > {bound * math.log(d) + clamp:.3e}"
    assert math.log(txt) <= 1e-3 * math.log(sce), (txt, sce)
    assert math.log(sce) > 0.9 * tr_yy, f"x explains little: sce {sce} should be large"


if __name__ == "__main__":
    t = Tap()
    t.case("anchor", anchor)
    t.case("linear_random_f64", linear_random, "f64")
    t.case("linear_random_f32", linear_random, "f32")
    t.case("chunks_700_rows", chunks)
    t.case("rff_omega_and_sce", rff)
    t.case("nullify", nullify)
    t.case("merge_linear", merge_equals_one, "linear")
    t.case("merge_rff", merge_equals_one, "rff")
    t.case("batch_forms_agree", batch_forms_agree)
    t.case("merge_refused", merge_refused)
    t.case("save_load", save_load)
    t.case("config_refusals", config_refusals)
    t.case("ingest_refusals", ingest_refusals)
    t.case("schur_cache", cache)
    t.case("properties", properties)
    t.done()
