"""The spectral engine over the wire: `method`, `{name}_error`, top-k by Lanczos, the live
estimate, what a client sees of a long solve, and sketched streams (d above exact_max_dim:
create options, config keys, `{name}_bracket`, refusals, a restart from a snapshot and a state
saved before the sketch existed). A real daemon, a real msgpack client, numpy float64 references
computed here."""
import os
import signal
import sys

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon, expect  # noqa: E402
from taplib import Tap  # noqa: E402



def rows(n, d, seed, lam=None):
    rng = np.random.default_rng(seed)
    lam = 1.0 / np.arange(1, d + 1) if lam is None else lam
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (rng.standard_normal((n, d)) * np.sqrt(lam)) @ Q.T


def send(c, stream, X, **extra):
    X = np.ascontiguousarray(X, dtype=np.float64)
    c.call("ingest", {"stream": stream, "data": X.tobytes(), "dtype": "f64", "shape": list(X.shape),
                      **extra})


def method_and_error_bars(d):
    c = d.client()
    D = 600
    X = rows(2 * D, D, 1)
    c.call("create", {"stream": "q", "dim": D, "window": 0})
    send(c, "q", X)
    C = np.cov(X.T, bias=True)
    w = np.clip(np.linalg.eigvalsh(C), 0, None)[::-1]
    p = w / w.sum()
    H = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    r = c.call("query", {"stream": "q", "metrics": ["entropy", "erank"], "method": "slq"})
    m = r["metrics"]
    for name, want in (("entropy", H), ("erank", np.exp(H))):
        assert f"{name}_error" in m and m[f"{name}_error"] > 0, f"{name}: no error bar: {m}"
        assert abs(m[name] - want) <= m[f"{name}_error"], f"{name} {m[name]} ± {m[name + '_error']} vs {want}"
    r = c.call("query", {"stream": "q", "metrics": ["entropy"], "method": "exact"})["metrics"]
    assert "entropy_error" not in r and abs(r["entropy"] - H) <= 1e-9 * H, r
    # auto below the break-even dimension is exact
    r = c.call("query", {"stream": "q", "metrics": ["entropy"]})["metrics"]
    assert "entropy_error" not in r and abs(r["entropy"] - H) <= 1e-9 * H, r
    # top-k at d = 600 runs Lanczos (no spectrum cached for center=false) and reports its residual
    S = C + np.outer(X.mean(0), X.mean(0))
    ws = np.linalg.eigvalsh(S)[::-1]
    r = c.call("query", {"stream": "q", "metrics": ["topk"], "params": {"k": 5},
                         "center": False})["metrics"]
    assert np.max(np.abs(np.array(r["topk"]) - ws[:5])) <= 1e-10 * ws[0], (r["topk"], ws[:5])
    assert 0 <= r["topk_error"] <= 1e-10 * ws[0] * (1 + 1e-9), r
    # a bad method: BAD_PARAM with the sentence, nothing changed, the error counted
    before = c.call("info", {"stream": "q"})["count"]
    errs = c.call("stats").get("errors", {})
    e = expect("BAD_PARAM", c.call, "query", {"stream": "q", "metrics": ["entropy"],
                                              "method": "fast"})
    assert "'method' must be \"auto\", \"slq\" or \"exact\"" in e.message, e.message
    assert c.call("info", {"stream": "q"})["count"] == before
    assert c.call("stats").get("errors", {}).get("BAD_PARAM", 0) == errs.get("BAD_PARAM", 0) + 1


def live_topk_and_the_create_option(d):
    c = d.client()
    D = 64
    # the option's new name, its old one, both (agreeing, then not)
    assert c.call("create", {"stream": "lv", "dim": D, "live_k": 2, "window": 0})["config"]["live_k"] == 2
    cfg = c.call("create", {"stream": "old", "dim": D, "topk": 3})["config"]
    assert cfg["live_k"] == 3 and cfg["topk"] == 3, cfg
    c.call("create", {"stream": "both", "dim": D, "topk": 2, "live_k": 2})
    n_before = len(c.call("list")["streams"])
    e = expect("BAD_PARAM", c.call, "create", {"stream": "clash", "dim": D, "topk": 1, "live_k": 2})
    assert "'live_k' and its old name 'topk' are both given and differ" in e.message, e.message
    assert len(c.call("list")["streams"]) == n_before
    # a spiked model (R = 10) in random order: the estimate, its Rayleigh quotients and certificate
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    lam = np.ones(D)
    lam[:2] = [10.0, 5.0]
    X = (rng.standard_normal((20000, D)) * np.sqrt(lam)) @ Q.T
    for i in range(0, 20000, 1000):
        send(c, "lv", X[i:i + 1000])
    r = c.call("query", {"stream": "lv", "metrics": ["live_topk"], "params": {"vectors": True}})
    m = r["metrics"]
    V = np.array(m["live_topk_vectors"])
    assert V.shape == (2, D), V.shape
    C = np.cov(X.T, bias=True)
    w, U = np.linalg.eigh(C)
    for i in range(2):
        err = 1 - float(V[i] @ U[:, -1 - i]) ** 2
        assert err <= 1e-2, f"live vector {i}: 1-<v,v_i>^2 = {err:.2e}"
    th = np.einsum("ij,jk,ik->i", V, C, V)
    assert np.allclose(m["live_topk"], th, rtol=1e-9), (m["live_topk"], th)
    # the certificate: at least the residual and the distance of each theta_i to lambda_i, and
    # on this good estimate no more than 1.5x its residual
    res = max(np.linalg.norm(C @ V[i] - th[i] * V[i]) / th[i] for i in range(2))
    top = max(abs(w[-1 - i] - th[i]) / th[i] for i in range(2))
    e = m["live_topk_error"]
    assert (1 - 1e-6) * max(res, top) <= e <= 1.5 * res, (e, res, top)
    assert 20000 - 256 <= r["as_of"] <= 20000, r["as_of"]  # rows still in the buffer are not in it
    print(f"# live_topk on a spiked model: certificate {e:.2e} (residual {res:.2e})")
    # no live estimate kept: DEGENERATE with the sentence
    c.call("create", {"stream": "nolive", "dim": D, "live_k": 0})
    send(c, "nolive", X[:100])
    e = expect("DEGENERATE", c.call, "query", {"stream": "nolive", "metrics": ["live_topk"]})
    assert "keeps no live estimate" in e.message, e.message


# A state exported by the daemon before exact_max_dim existed (64-byte CONF, d = 2, 3 rows):
# it must load as it was saved.
OLD_STATE = os.path.join(HERE, "fixtures", "state_conf64.bin")


def sketched_streams(d):
    c = d.client()
    D = 96
    # bad values: BAD_PARAM with the sentence, nothing created
    # (one sentence per field, the table's: out of range and of the wrong type alike)
    emd = "'exact_max_dim' must be an integer between 1 and 65536"
    skr = "'sketch_rows' must be an integer between 2 and 4096"
    for key, val, words in (("exact_max_dim", 0, emd), ("sketch_rows", 1, skr),
                            ("sketch_rows", 5000, skr), ("exact_max_dim", -1, emd)):
        e = expect("BAD_PARAM", c.call, "create", {"stream": "bad", "dim": D, key: val})
        assert words in e.message, e.message
    assert all(x["stream"] != "bad" for x in c.call("list")["streams"])
    cfg = c.call("create", {"stream": "fd", "dim": D, "exact_max_dim": 64, "sketch_rows": 8,
                            "window": 0})["config"]
    assert cfg["exact_max_dim"] == 64 and cfg["sketch_rows"] == 8 and cfg["sketch"] is True, cfg
    dflt = c.call("create", {"stream": "ex", "dim": D})["config"]
    assert dflt["exact_max_dim"] == 4096 and dflt["sketch_rows"] == 256 and dflt["sketch"] is False
    # the same kind is the same stream: exact_max_dim counts only through what it decides
    c.call("create", {"stream": "fd", "dim": D, "exact_max_dim": 80, "sketch_rows": 8, "window": 0})
    e = expect("STREAM_EXISTS", c.call, "create", {"stream": "fd", "dim": D, "exact_max_dim": D,
                                                   "sketch_rows": 8, "window": 0})
    assert "a sketch of 8 rows" in e.message, e.message
    X = rows(2000, D, 21, lam=np.arange(1, D + 1) ** -0.8) + 2.0
    for i in range(0, 2000, 500):
        send(c, "fd", X[i:i + 500])
    C = np.cov(X.T, bias=True)
    w = np.clip(np.linalg.eigvalsh(C)[::-1], 0, None)
    p = w / w.sum()
    H = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    r = c.call("query", {"stream": "fd", "metrics": ["entropy", "erank", "topk", "trace"]})
    m = r["metrics"]
    lo, hi = m["entropy_bracket"]
    assert lo <= H <= hi and abs(m["entropy"] - (lo + hi) / 2) < 1e-12, (lo, H, hi)
    assert abs(m["entropy_error"] - (hi - lo) / 2) < 1e-12
    assert m["erank_bracket"][0] <= np.exp(H) <= m["erank_bracket"][1]
    assert np.all(np.abs(np.array(m["topk"]) - w[:8]) <= m["topk_error"] * (1 + 1e-9))
    assert abs(m["trace"] - w.sum()) <= 1e-12 * w.sum() and "trace_bracket" not in m
    print(f"# d = {D}, sketch_rows 8: entropy {H:.4f} in [{lo:.4f}, {hi:.4f}]")
    # refusals: BAD_PARAM with the sentence, nothing changed, the error counter rises by one
    before = c.call("stats")
    count = c.call("info", {"stream": "fd"})["count"]
    e = expect("BAD_PARAM", c.call, "query", {"stream": "fd", "metrics": ["condition_number"]})
    assert "exact_max_dim" in e.message, e.message
    e = expect("BAD_PARAM", c.call, "query", {"stream": "fd", "metrics": ["entropy"],
                                              "method": "exact"})
    assert "sketch" in e.message, e.message
    after = c.call("stats")
    assert c.call("info", {"stream": "fd"})["count"] == count
    assert after["errors"].get("BAD_PARAM", 0) == before["errors"].get("BAD_PARAM", 0) + 2
    # evaluation specs: what the library refuses on a sketch is refused at create, and the
    # default list of a sketched stream leaves it out
    e = expect("BAD_PARAM", c.call, "create", {"stream": "fdev", "dim": D, "exact_max_dim": 64,
                                               "window": 0, "eval": [{"metric": "rankme"}]})
    assert "rankme is refused on this stream" in e.message, e.message
    c.call("create", {"stream": "fdev", "dim": D, "exact_max_dim": 64, "window": 128,
                      "eval": [{"metric": "rankme", "source": "window"}, {"metric": "entropy"}]})
    names = [x["metric"] for x in c.call("info", {"stream": "fd"})["eval"]["metrics"]]
    assert "rankme" not in names and "entropy" in names, names
    # the metrics listing says what each metric answers on a sketch
    sk = {x["name"]: x["sketch"] for x in c.call("metrics")["metrics"]}
    assert sk["entropy"] == "bracket" and sk["topk"] == "interval" and sk["trace"] == "exact" \
        and sk["condition_number"] == "refused" and sk["live_topk"] == "certificate", sk
    # exported, merged into another daemon, snapshotted, killed and restarted: the same sketch
    state = c.call("export", {"stream": "fd"})["state"]
    c2d = Daemon()
    try:
        c2 = c2d.client()
        got = c2.call("merge", {"stream": "fd2", "state": state})
        assert got["created"] and got["count"] == 2000, got
        assert c2.call("info", {"stream": "fd2"})["config"]["sketch"] is True
        m2 = c2.call("query", {"stream": "fd2", "metrics": ["entropy", "topk"]})["metrics"]
        assert m2["entropy_bracket"] == m["entropy_bracket"] and m2["topk"] == m["topk"], (m2, m)
        # a state saved before exact_max_dim: loads exact, as it was saved
        with open(OLD_STATE, "rb") as f:
            old = f.read()
        got = c2.call("merge", {"stream": "old", "state": old})
        cfg = c2.call("info", {"stream": "old"})["config"]
        assert got["count"] == 3 and cfg["sketch"] is False and cfg["exact_max_dim"] == 4096, (got, cfg)
        c2.call("snapshot")
        saved = c2.call("export", {"stream": "fd2"})["state"]
        c2d.stop(signal.SIGKILL)
        c2d = Daemon(state_dir=c2d.dir)
        c2 = c2d.client()
        assert c2.call("export", {"stream": "fd2"})["state"] == saved, "the restart changed the sketch"
        m3 = c2.call("query", {"stream": "fd2", "metrics": ["entropy", "topk"]})["metrics"]
        assert m3["entropy_bracket"] == m["entropy_bracket"] and m3["topk"] == m["topk"]
    finally:
        c2d.stop()


if __name__ == "__main__":
    t = Tap()
    d = Daemon()
    try:
        t.case("method slq/exact/auto, {name}_error covers the exact value, Lanczos top-k, "
               "a bad method refused", method_and_error_bars, d)
        t.case("live_topk: the estimate, its Rayleigh quotients and certificate; create's live_k "
               "and its old name topk", live_topk_and_the_create_option, d)
        t.case("sketched streams: create options, config, {name}_bracket, refusals, restart, "
               "an old state", sketched_streams, d)
    finally:
        d.stop()
    t.done()
