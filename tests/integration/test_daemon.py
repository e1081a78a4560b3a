"""eigenwatchd driven by a real client over a Unix socket and loopback TCP: every method, every
error code (with a message, and no state change), metrics against numpy float64, notification
ordering, the rows form, and 16 concurrent ingesting clients."""
import os
import sys
import threading

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
import reference as ref  # noqa: E402
from bf16 import bf16_words  # noqa: E402
from harness import Client, Daemon, RpcError  # noqa: E402
from taplib import Tap, close  # noqa: E402

D = None  # the shared daemon


def expect(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except RpcError as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        assert len(e.message) > 10, f"message too thin: {e.message!r}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


def snapshot(c):
    return c.call("list")["streams"]


def ping_on_both_transports():
    for tcp in (False, True):
        c = D.client(tcp=tcp)
        r = c.call("ping")
        assert r["pong"] is True and r["protocol"] == 1 and r["version"], r
        c.close()
    assert D.tcp.startswith("tcp:127.0.0.1:"), D.tcp


def the_ready_line_names_the_page_and_the_addresses():
    """Issue 25 item 7: the `ready` line (what scripts/run.sh shows) gives the page's URL and the
    msgpack-RPC addresses a client names, exactly as the listeners bound them."""
    import re
    line = [ln for ln in D.log().splitlines() if 'msg="ready"' in ln]
    assert len(line) == 1, line
    page = re.search(r'page="([^"]*)"', line[0]).group(1)
    addresses = re.search(r'addresses="([^"]*)"', line[0]).group(1).split()
    assert page == D.http and page.startswith("http://127.0.0.1:"), (page, D.http)
    assert addresses == [D.unix, D.tcp], (addresses, D.unix, D.tcp)
    for a in addresses:  # each one answers
        c = Client(a)
        assert c.call("ping")["pong"] is True
        c.close()


def create_is_idempotent_and_refuses_a_different_config():
    c = D.client()
    r = c.call("create", {"stream": "cfg.a", "dim": 8, "window": 64, "normalize": "l2"})
    assert r["created"] is True and r["config"]["dim"] == 8 and r["config"]["normalize"] == "l2"
    r = c.call("create", {"stream": "cfg.a", "dim": 8, "window": 64, "normalize": "l2"})
    assert r["created"] is False
    before = snapshot(c)
    expect("STREAM_EXISTS", c.call, "create", {"stream": "cfg.a", "dim": 9})
    expect("BAD_PARAM", c.call, "create", {"stream": "cfg.b", "dim": 0})
    expect("BAD_PARAM", c.call, "create", {"stream": "cfg.b", "dim": 4, "normalize": "l3"})
    expect("BAD_PARAM", c.call, "create", {"stream": "cfg.b", "dim": 4, "decay": 0.5})
    expect("BAD_REQUEST", c.call, "create", {"stream": "cfg.b", "dim": 4, "windw": 3})
    expect("BAD_REQUEST", c.call, "create", {"stream": "bad name!", "dim": 4})
    assert snapshot(c) == before, "a refused create changed the stream list"
    c.close()


def send_batches(c, name, X, dtype, rng, notify=False):
    i = 0
    while i < len(X):
        b = int(rng.integers(1, 700))
        part = X[i:i + b]
        if dtype == "bf16":
            words, _ = bf16_words(part)
            data = words.tobytes()
        else:
            data = part.astype({"f32": np.float32, "f64": np.float64,
                                "f16": np.float16}[dtype]).tobytes()
        p = {"stream": name, "data": data, "dtype": dtype, "shape": list(part.shape)}
        if notify:
            c.notify("ingest", p)
        else:
            r = c.call("ingest", p)
            assert r["accepted"] == len(part)
        i += b


def values_seen(X, dtype):
    if dtype == "bf16":
        return bf16_words(X)[1].astype(np.float64)
    return X.astype({"f32": np.float32, "f64": np.float64, "f16": np.float16}[dtype]) \
        .astype(np.float64)


def metrics_match_numpy_over_uneven_batches_all_dtypes():
    rng = np.random.default_rng(1)
    d = 24
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    for dtype in ("f32", "f64", "f16", "bf16"):
        X = (rng.standard_normal((6000, d)) / np.sqrt(np.arange(1, d + 1))) @ Q.T + 20.0
        c = D.client(tcp=dtype in ("f64", "bf16"))
        name = f"num.{dtype}"
        send_batches(c, name, X, dtype, rng)
        V = values_seen(X, dtype)
        r = c.call("query", {"stream": name, "metrics": [
            "entropy", "erank", "participation_ratio", "renyi", "vendi", "stable_rank",
            "anisotropy", "topk", "trace", "rankme", "spectrum"], "params": {"alpha": 3, "k": 4}})
        assert r["count"] == 6000 and r["as_of"] == 6000 and r["dim"] == d
        assert r["elapsed_ms"] >= 0
        want = ref.metrics(V, True)
        m = r["metrics"]
        for k in ("entropy", "erank", "participation_ratio", "stable_rank", "anisotropy", "trace",
                  "vendi"):
            close(m[k], want[k], 1e-6, f"{dtype} {k}")
        close(m["renyi"], want["renyi_a3"], 1e-6, f"{dtype} renyi alpha=3")
        close(m["rankme"], ref.rankme(V), 1e-6, f"{dtype} rankme")
        e = want["spectrum"]
        assert np.abs(np.array(m["topk"]) - e[:4]).max() <= 1e-6 * e[0], "topk"
        assert np.abs(np.array(m["spectrum"]) - e).max() <= 1e-6 * e[0], "spectrum"
        c.close()


def rows_form_accepts_integers():
    c = D.client()
    rows = [[1, 2, 3], [4, 5, 7], [0, -1, 2.5], [10, 0, 1]]
    r = c.call("ingest", {"stream": "rows.int", "rows": rows})
    assert r == {"stream": "rows.int", "accepted": 4, "count": 4}, r
    V = np.array(rows, dtype=np.float64)
    got = c.call("query", {"stream": "rows.int", "metrics": ["entropy", "trace"]})["metrics"]
    close(got["entropy"], ref.entropy_p(ref.eig(ref.matrix(V, True))), 1e-12, "rows entropy")
    close(got["trace"], np.trace(ref.matrix(V, True)), 1e-12, "rows trace")
    c.close()


def notifications_then_ping_see_the_rows_counted():
    c = D.client()
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5000, 32)).astype(np.float32)
    send_batches(c, "notif", X, "f32", rng, notify=True)
    c.call("ping")
    assert c.call("info", {"stream": "notif"})["count"] == 5000
    # and a second connection sees it too, after the first one's ping
    c2 = D.client(tcp=True)
    assert c2.call("info", {"stream": "notif"})["count"] == 5000
    c.close()
    c2.close()


def list_info_reset_drop_stats_metrics():
    c = D.client()
    c.call("ingest", {"stream": "life", "rows": [[1, 2], [3, 4], [5, 7]]})
    names = [s["stream"] for s in c.call("list")["streams"]]
    assert "life" in names
    info = c.call("info", {"stream": "life"})
    assert info["count"] == 3 and info["dim"] == 2 and info["memory_bytes"] > 0
    assert info["config"]["window"] == 4096 and info["last_ingest"] > 1.7e9
    assert c.call("reset", {"stream": "life"}) == {"stream": "life", "count": 0}
    assert c.call("info", {"stream": "life"})["count"] == 0
    expect("DEGENERATE", c.call, "query", {"stream": "life", "metrics": ["entropy"]})
    assert c.call("drop", {"stream": "life"}) == {"stream": "life", "dropped": True}
    expect("NO_SUCH_STREAM", c.call, "info", {"stream": "life"})
    s = c.call("stats")
    for k in ("uptime_s", "connections", "bytes_in", "bytes_out", "rows", "requests",
              "notifications", "errors", "queue_jobs", "queue_bytes", "streams", "memory_bytes"):
        assert k in s, k
    assert s["errors"].get("NO_SUCH_STREAM", 0) >= 1 and s["rows"] > 0
    ms = c.call("metrics")["metrics"]
    kinds = [m["streams"] for m in ms]  # 28 matrix metrics, 15 of tokens, 5 stats, 2 paired
    assert len(ms) == 50 and all(m["doc"] for m in ms), len(ms)
    assert (kinds.count("matrix"), kinds.count("tokens"), kinds.count("stats"),
            kinds.count("paired")) == (28, 15, 5, 2)
    rke = [m for m in ms if m["name"] == "rke"][0]
    assert rke["params"][0]["name"] == "sigma" and rke["params"][0]["default"] is None  # required
    renyi = [m for m in ms if m["name"] == "renyi"][0]
    assert renyi["params"][0]["name"] == "alpha" and renyi["params"][0]["default"] == 2
    c.close()


def every_error_code_has_a_message_and_changes_nothing():
    c = D.client()
    c.call("create", {"stream": "err", "dim": 4, "window": 16})
    c.call("ingest", {"stream": "err", "rows": [[1, 2, 3, 4], [2, 3, 4, 6], [0, 1, 0, 1]]})
    nowin = "err.nowin"
    c.call("create", {"stream": nowin, "dim": 4, "window": 0})
    c.call("ingest", {"stream": nowin, "rows": [[1, 2, 3, 4], [2, 3, 4, 6]]})
    before = snapshot(c)
    bad_f32 = np.ones((2, 4), dtype=np.float32)
    bad_f32[1, 2] = np.nan
    cases = [
        ("UNKNOWN_METHOD", "frobnicate", {}),
        ("BAD_REQUEST", "info", {}),
        ("BAD_REQUEST", "ingest", {"stream": "err"}),
        ("BAD_REQUEST", "ingest", {"stream": "err", "data": b"\0" * 12, "dtype": "f32",
                                   "shape": [1, 4]}),
        ("BAD_REQUEST", "ingest", {"stream": "err", "rows": [[1, 2, 3, 4], [1, 2]]}),
        ("BAD_REQUEST", "ingest", {"stream": "err", "rows": [[1, 2, 3, "x"]]}),
        ("NO_SUCH_STREAM", "query", {"stream": "ghost", "metrics": ["entropy"]}),
        ("NO_SUCH_STREAM", "reset", {"stream": "ghost"}),
        ("DIM_MISMATCH", "ingest", {"stream": "err", "rows": [[1, 2, 3]]}),
        ("BAD_DTYPE", "ingest", {"stream": "err", "data": b"\0" * 16, "dtype": "int8",
                                 "shape": [1, 4]}),
        ("NON_FINITE", "ingest", {"stream": "err", "data": bad_f32.tobytes(), "dtype": "f32",
                                  "shape": [2, 4]}),
        ("OUT_OF_RANGE", "ingest", {"stream": "err", "rows": [[1e160, 0, 0, 1]] * 2}),
        ("OUT_OF_RANGE", "ingest", {"stream": "err", "data": np.full((2, 4), 1e-300).tobytes(),
                                    "dtype": "f64", "shape": [2, 4]}),
        ("STREAM_EXISTS", "create", {"stream": "err", "dim": 5}),
        ("UNKNOWN_METRIC", "query", {"stream": "err", "metrics": ["entropyy"]}),
        ("BAD_PARAM", "query", {"stream": "err", "metrics": ["renyi"], "params": {"alpha": -1}}),
        ("BAD_PARAM", "query", {"stream": "err", "metrics": ["entropy"], "params": {"k": 3}}),
        ("BAD_PARAM", "query", {"stream": "err", "metrics": ["entropy"], "source": "nope"}),
        ("DEGENERATE", "query", {"stream": "err.one", "metrics": ["entropy"]}),
        ("NO_WINDOW", "query", {"stream": nowin, "metrics": ["l2_std"]}),
    ]
    c.call("ingest", {"stream": "err.one", "rows": [[1, 2, 3, 4]]})
    before = snapshot(c)
    for code, method, params in cases:
        e = expect(code, c.call, method, params)
        assert snapshot(c) == before, f"{code} from {method} changed state: {e.message}"
    # the same errors as notifications: no reply, counted, and the connection keeps working
    s0 = c.call("stats")["errors"].get("NON_FINITE", 0)
    c.notify("ingest", cases[10][2])
    c.call("ping")
    assert c.call("stats")["errors"].get("NON_FINITE", 0) == s0 + 1
    assert snapshot(c) == before
    c.close()


def a_number_given_as_a_string_is_refused_naming_its_type():
    """Parameters are typed by the metric table: a string where a number belongs is BAD_PARAM with
    a sentence naming the parameter, the metric and the type, in `query` and in create's `eval`,
    and nothing changes; "inf" and a bool are the two non-numbers a number parameter takes."""
    c = D.client()
    c.call("ingest", {"stream": "typed", "rows": [[1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]]})
    before = snapshot(c)
    q = {"stream": "typed", "metrics": ["renyi"], "params": {"alpha": "2"}}
    e = expect("BAD_PARAM", c.call, "query", q)
    assert e.message == ("renyi: parameter 'alpha' of 'renyi' must be a number in [0, inf] "
                         "(or \"inf\"); got a string"), e.message
    e = expect("BAD_PARAM", c.call, "create",
               {"stream": "typed.new", "dim": 3,
                "eval": [{"metric": "renyi", "params": {"alpha": "2"}}]})
    assert e.message == ("eval[0]: parameter 'alpha' of 'renyi' must be a number in [0, inf] "
                         "(or \"inf\"); got a string"), e.message
    e = expect("BAD_PARAM", c.call, "query", {"stream": "typed", "metrics": ["topk"],
                                              "params": {"k": "three"}})
    assert e.message.startswith("topk: parameter 'k' of 'topk' must be an integer in [1, 65536]"), \
        e.message
    assert snapshot(c) == before, "a refused parameter changed state"
    r = c.call("query", {"stream": "typed", "metrics": ["renyi", "topk"],
                         "params": {"alpha": "inf", "vectors": True, "k": 2}})["metrics"]
    assert r["renyi"] > 0 and len(r["topk"]) == 2 and len(r["topk_vectors"]) == 2, r
    c.close()


def limit_error_when_streams_run_out():
    d = Daemon(config="max_streams = 2\n")
    try:
        c = d.client()
        c.call("create", {"stream": "a", "dim": 2})
        c.call("ingest", {"stream": "b", "rows": [[1, 2]]})
        before = snapshot(c)
        expect("LIMIT", c.call, "create", {"stream": "c", "dim": 2})
        expect("LIMIT", c.call, "ingest", {"stream": "c", "rows": [[1, 2]]})
        assert snapshot(c) == before
        c.close()
    finally:
        assert d.stop() == 0


def sixteen_concurrent_clients_rows_acknowledged_equal_rows_counted():
    acked = [0] * 16
    errors = []

    def worker(i):
        try:
            c = D.client(tcp=i % 2 == 1)
            rng = np.random.default_rng(100 + i)
            for _ in range(40):
                n = int(rng.integers(1, 200))
                X = rng.standard_normal((n, 16)).astype(np.float32)
                r = c.call("ingest", {"stream": f"conc.{i % 4}", "data": X.tobytes(),
                                      "dtype": "f32", "shape": [n, 16]})
                acked[i] += r["accepted"]
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    c = D.client()
    counted = sum(c.call("info", {"stream": f"conc.{k}"})["count"] for k in range(4))
    assert counted == sum(acked), f"acknowledged {sum(acked)} != counted {counted}"
    c.close()


def cached_query_within_max_lag():
    c = D.client()
    X = np.random.default_rng(3).standard_normal((500, 8))
    c.call("ingest", {"stream": "cache", "rows": X.tolist()})
    r1 = c.call("query", {"stream": "cache", "metrics": ["entropy"]})
    assert r1["cached"] is False
    c.call("ingest", {"stream": "cache", "rows": X[:5].tolist()})
    r2 = c.call("query", {"stream": "cache", "metrics": ["entropy"], "max_lag": 10})
    assert r2["cached"] is True and r2["as_of"] == 500 and r2["count"] == 505
    assert r2["metrics"]["entropy"] == r1["metrics"]["entropy"]
    r3 = c.call("query", {"stream": "cache", "metrics": ["entropy"], "max_lag": 10, "fresh": True})
    assert r3["cached"] is False and r3["as_of"] == 505
    c.call("ingest", {"stream": "cache", "rows": X[:5].tolist()})  # 510 rows: lag 5 > 2
    r4 = c.call("query", {"stream": "cache", "metrics": ["entropy"], "max_lag": 2})
    assert r4["cached"] is False and r4["as_of"] == 510, r4
    c.close()


def out_of_memory_while_decoding_answers_no_memory_and_keeps_the_client():
    """Issue 23 item 12: the daemon cannot allocate the object tree of a whole, well-formed
    message (RLIMIT_AS set 48 MiB above its current size; 3,000,000 nils need 72 MB of tree): the
    answer is NO_MEMORY with the message's msgid, not "not valid msgpack" with msgid 0, and the
    connection stays open for the next request. (Not in the ASan build: its allocator aborts
    rather than fail.)"""
    import resource
    if os.environ.get("EWD_ASAN"):
        return
    d = Daemon()
    try:
        c = d.client()
        with open(f"/proc/{d.proc.pid}/status") as f:
            vm = [int(ln.split()[1]) for ln in f if ln.startswith("VmSize:")][0]
        old = resource.prlimit(d.proc.pid, resource.RLIMIT_AS)
        resource.prlimit(d.proc.pid, resource.RLIMIT_AS, (vm * 1024 + (48 << 20), old[1]))
        try:
            c.send_raw(msgpack.packb([0, 77, "ping", [None] * 3000000]))
            m = c.read_message()
            assert m[0] == 1 and m[1] == 77 and m[2]["code"] == "NO_MEMORY", m[:3]
            assert "msgpack" not in m[2]["message"], m[2]
            assert c.call("ping")["pong"] is True  # the same connection
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_AS, old)
        c.close()
    finally:
        assert d.stop() == 0


def main():
    global D
    D = Daemon()
    t = Tap()
    try:
        t.case("ping_on_unix_and_tcp", ping_on_both_transports)
        t.case("the_ready_line_names_the_page_and_the_addresses",
               the_ready_line_names_the_page_and_the_addresses)
        t.case("create_idempotent_and_refuses_different_config",
               create_is_idempotent_and_refuses_a_different_config)
        t.case("metrics_match_numpy_uneven_batches_f32_f64_f16_bf16",
               metrics_match_numpy_over_uneven_batches_all_dtypes)
        t.case("rows_form_accepts_integers", rows_form_accepts_integers)
        t.case("notifications_then_ping_see_rows_counted",
               notifications_then_ping_see_the_rows_counted)
        t.case("list_info_reset_drop_stats_metrics", list_info_reset_drop_stats_metrics)
        t.case("every_error_code_has_message_and_changes_nothing",
               every_error_code_has_a_message_and_changes_nothing)
        t.case("a_number_given_as_a_string_is_refused_naming_its_type",
               a_number_given_as_a_string_is_refused_naming_its_type)
        t.case("limit_error_when_streams_run_out", limit_error_when_streams_run_out)
        t.case("sixteen_concurrent_clients_acked_equals_counted",
               sixteen_concurrent_clients_rows_acknowledged_equal_rows_counted)
        t.case("cached_query_within_max_lag", cached_query_within_max_lag)
        t.case("daemon_still_alive", lambda: None if D.alive() else (_ for _ in ()).throw(
            AssertionError("daemon died")))
    finally:
        rc = D.stop()
    t.case("out_of_memory_while_decoding_answers_no_memory_and_keeps_the_client",
           out_of_memory_while_decoding_answers_no_memory_and_keeps_the_client)
    t.case("sigterm_exits_0", lambda: None if rc == 0 else (_ for _ in ()).throw(
        AssertionError(f"exit {rc}\n{D.log()[-2000:]}")))
    t.done()


if __name__ == "__main__":
    main()
