"""The HTTP listener (issue 10, items 1–2), against a real daemon:

- GET /metrics: every self-stat is a family; a stream's latest evaluated values and steps equal
  what `history` holds (bit for bit: %.17g round-trips), its alert rule's state is 1 while it
  fires; errors by wire code count a provoked NO_SUCH_STREAM; `promtool check metrics` passes.
- A real Prometheus (Debian's) scrapes it: its HTTP API returns eigenwatch_value for the stream
  with the same value and labels.
- GET /healthz; 404, 405 (POST), 413 (a body), 431 (headers over 16 KiB), 400 (garbage): each
  with its status, the connection closed where the request was bad; a request left unfinished
  is closed after partial_timeout; 1,000 connections: at most http_max_connections are served,
  RPC keeps answering, RSS stays under a stated bound.
- With an auth token: /metrics needs `Authorization: Bearer TOKEN` (401 otherwise), /healthz not.
- `--http off`: no HTTP listener.
- The per-stream families (daemon/cmd/expo.c's table) print exactly what they printed before they
  were a table: a pinned text for a state that has every family (escaped rule names included).
- Those lines are kept per stream between scrapes: a scrape after an evaluation, a rule's change
  of state, `flush {end}`, a batch after it or alert_set shows the change; two scrapes with no
  change between them are byte-identical."""
import json
import re
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric")]
from harness import Daemon, RpcError, expect  # noqa: E402
from taplib import Tap  # noqa: E402
from test_history import settle  # noqa: E402

DIM = 8


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def parse(text):
    """{(name, frozenset(labels)): value} from the exposition (labels without escapes here)."""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        head, val = ln.rsplit(" ", 1)
        if "{" in head:
            name, rest = head.split("{", 1)
            labels = frozenset(tuple(kv.split("=", 1)) for kv in
                               rest.rstrip("}").replace('"', "").split(","))
        else:
            name, labels = head, frozenset()
        out[name, labels] = float(val)
    return out


def feed(d, run, stream, steps, collapse_at=None):
    c = d.client()
    c.call("create", {"run": run, "stream": stream, "dim": DIM, "window_steps": 1,
                      "eval": [{"metric": "erank"}, {"metric": "entropy"}],
                      "rules": [{"name": "collapse", "metric": "erank", "when": "below",
                                 "value": 3.0}]})
    rng = np.random.default_rng(4)
    for s in range(steps):
        k = 2 if collapse_at is not None and s >= collapse_at else DIM
        X = (rng.standard_normal((32, k)) @ rng.standard_normal((k, DIM))).astype(np.float32)
        c.call("ingest", {"run": run, "stream": stream, "step": s, "end_step": True,
                          "dtype": "f32", "shape": [32, DIM], "data": X.tobytes()})
        settle(c, stream, run)
    return c


def metrics_match_the_daemon(d):
    c = feed(d, "hr", "L1", 6, collapse_at=4)
    try:
        c.call("info", {"stream": "nope"})
    except Exception:
        pass
    st, text, hdr = get(d.http + "metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4"), (st, hdr)
    m = parse(text)
    hist = c.call("history", {"run": "hr", "stream": "L1"})["series"]
    for s in hist:
        key = frozenset({("run", "hr"), ("stream", "L1"), ("metric", s["metric"])})
        assert m["eigenwatch_value", key] == s["value"][-1], (s["metric"], m["eigenwatch_value", key])
        assert m["eigenwatch_step", key] == 5
    fire = frozenset({("run", "hr"), ("stream", "L1"), ("rule", "collapse"), ("metric", "erank"),
                      ("when", "below")})
    assert m["eigenwatch_alert_firing", fire] == 1, text
    assert m["eigenwatch_stream_rows", frozenset({("run", "hr"), ("stream", "L1")})] == 6 * 32
    assert m["eigenwatch_errors_total", frozenset({("code", "NO_SUCH_STREAM")})] >= 1
    stats = c.call("stats")
    for k, v in stats.items():
        if isinstance(v, int) and k not in ("uptime_s",):
            names = (f"eigenwatch_{k}", f"eigenwatch_{k}_total",
                     f"eigenwatch_{k[:-3]}_seconds" if k.endswith("_ms") else None)
            fams = [n for (n, _) in m if n in names]
            assert fams, f"self-stat {k} has no family"
    assert m["eigenwatch_http_requests_total", frozenset()] >= 1
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    c.close()


def sender_drops(d):
    c = d.client()
    X = np.ones((4, DIM), np.float32)
    base = {"run": "sd", "stream": "S", "dtype": "f32", "shape": [4, DIM], "data": X.tobytes()}
    c.call("ingest", dict(base, producer="a", seq=1, dropped_rows=10, dropped_batches=2))
    c.call("ingest", dict(base, producer="b", seq=1, dropped_rows=5, dropped_batches=1))
    # a resent older message (a duplicate) never lowers a running total
    c.call("ingest", dict(base, producer="a", seq=1, dropped_rows=3, dropped_batches=1))
    for bad, msg in ((dict(base, dropped_rows=7), "'dropped_rows' and 'dropped_batches' need "
                      "'producer'"),
                     (dict(base, producer="a", seq=2, dropped_rows=-1),
                      "'dropped_rows' must be an integer >= 0")):
        try:
            c.call("ingest", bad)
            raise AssertionError("accepted: %r" % {k: v for k, v in bad.items() if k != "data"})
        except RpcError as e:
            assert e.code == "BAD_REQUEST" and msg in e.message, e
    assert c.call("info", {"run": "sd", "stream": "S"})["count"] == 8  # the refusals changed nothing
    m = parse(get(d.http + "metrics")[1])
    key = frozenset({("run", "sd"), ("stream", "S")})
    assert m["eigenwatch_sender_dropped_rows_total", key] == 15, m.get(
        ("eigenwatch_sender_dropped_rows_total", key))
    assert m["eigenwatch_sender_dropped_batches_total", key] == 3
    assert not any(n == "eigenwatch_sender_dropped_rows_total" and ("stream", "L1") in lab
                   for n, lab in m), "a stream without producers has no drop series"
    c.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def prometheus_scrapes_it(d):
    target = urllib.parse.urlparse(d.http).netloc
    tmp = tempfile.mkdtemp(prefix="ew-prom-")
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: eigenwatch\n"
                f"    static_configs:\n      - targets: ['{target}']\n")
    port = free_port()
    log = open(os.path.join(tmp, "log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        c = d.client()
        want = c.call("history", {"run": "hr", "stream": "L1", "metrics": "erank"})
        want = want["series"][0]["value"][-1]
        q = urllib.parse.quote('eigenwatch_value{run="hr",stream="L1",metric="erank"}')
        deadline, got = time.time() + 60, None
        while time.time() < deadline:
            try:
                st, body, _ = get(f"http://127.0.0.1:{port}/api/v1/query?query={q}")
                res = json.loads(body)["data"]["result"] if st == 200 else []
                if res:
                    got = res[0]
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert got, "Prometheus never returned the series: " + open(log.name).read()[-2000:]
        assert float(got["value"][1]) == want, (got, want)
        lab = got["metric"]
        assert (lab["run"], lab["stream"], lab["metric"], lab["job"]) == \
            ("hr", "L1", "erank", "eigenwatch"), lab
        c.close()
    finally:
        prom.terminate()
        prom.wait(30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def raw(d, data, wait=2.0):
    """Sends bytes on a fresh connection; returns (what came back, closed by the daemon)."""
    u = urllib.parse.urlparse(d.http)
    s = socket.create_connection((u.hostname, u.port), timeout=wait)
    s.sendall(data)
    got, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got, closed


def bad_requests(d):
    st, body, _ = get(d.http + "healthz")
    assert (st, body) == (200, "ok\n")
    st, body, _ = get(d.http + "nothing-here")
    assert st == 404 and "/metrics" in body
    cases = [(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"405", False),
             (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", b"413", True),
             (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431", True),
             (b"\x00\x01garbage\r\n\r\n", b"400", True),
             (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", b"414", True)]
    for req, status, closes in cases:
        got, closed = raw(d, req)
        assert got.startswith(b"HTTP/1.1 " + status), (req[:40], got[:200])
        if closes:
            assert closed and b"Connection: close" in got, (req[:40], got[:200])
    # two requests on one keep-alive connection, answered in order
    got, _ = raw(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 ") == 2 and got.index(b"200 OK") < got.index(b"404"), got


def api_error_messages_are_strings_for_any_bytes(d):
    """Issue 23 item 12: a method name that is not UTF-8, or one whose sentence is cut inside a
    character, still answers {"error": {"code", "message": a string}} (invalid bytes become
    U+FFFD), and the connection serves the next request."""
    cases = [(b"/api/v1/\xff\xfeq", "\ufffd\ufffdq"),
             # 256 bytes: the 255-byte sentence buffer cuts the last character in two
             (b"/api/v1/" + "\u00e9".encode() * 124, "\u00e9" * 123 + "\ufffd"),
             (b"/api/v1/%C3%A9%FF", "%C3%A9%FF"),
             (b"/api/v1/query?stream=%FF%FE", None)]
    for path, needle in cases:
        got, _ = raw(d, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 4"), (path[:40], got[:300])
        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        err = json.loads(rest[:n].decode("utf-8"))["error"]
        assert isinstance(err["message"], str) and err["message"], (path[:40], err)
        assert err["code"] in ("UNKNOWN_METHOD", "BAD_REQUEST"), err
        if needle:
            assert needle in err["message"], (path[:40], err["message"][:120])
        assert rest[n:].startswith(b"HTTP/1.1 200"), (path[:40], rest[n:n + 100])


def slow_and_many():
    d = Daemon(config="partial_timeout = 1\nhttp_max_connections = 64\n")
    try:
        c = d.client()
        before = c.call("stats")["partial_timeouts"]
        got, closed = raw(d, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ", wait=4.0)
        assert closed and got == b"", got
        assert c.call("stats")["partial_timeouts"] == before + 1
        rss0 = d.rss_kib()
        u = urllib.parse.urlparse(d.http)
        socks = []
        for _ in range(1000):
            s = socket.create_connection((u.hostname, u.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Part: ")  # never finished
            socks.append(s)
        time.sleep(0.3)
        assert c.call("ping")["pong"] is True  # RPC unaffected
        st = c.call("stats")
        assert st["connections_refused"] >= 1000 - 64, st["connections_refused"]
        rss = d.rss_kib()
        # 64 connections × 64 KiB buffers at most; under AddressSanitizer the refused connections'
        # freed structures (~70 KiB each) also sit in its quarantine (256 MiB at most)
        slack = 256 * 1024 if os.environ.get("EWD_ASAN") else 0
        assert rss < rss0 + 64 * 1024 + slack, (rss0, rss)
        for s in socks:
            s.close()
        assert d.alive()
        st, body, _ = get(d.http + "healthz")
        assert st == 200
        c.close()
    finally:
        d.stop()


def auth_token():
    tmp = tempfile.mkdtemp(prefix="ew-tok-")
    tok = os.path.join(tmp, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token-0123456789\n")
    os.chmod(tok, 0o600)
    d = Daemon(extra=["--auth-token-file", tok])
    try:
        assert get(d.http + "healthz")[0] == 200
        st, body, hdr = get(d.http + "metrics")
        assert st == 401 and "Bearer" in hdr.get("WWW-Authenticate", ""), (st, hdr)
        assert get(d.http + "metrics", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
        st, body, _ = get(d.http + "metrics", {"Authorization": "Bearer s3cret-token-0123456789"})
        assert st == 200 and "eigenwatch_auth_failures_total 2" in body, body[:200]
        # the page's files hold no data and load without the token; the data behind them not
        for path in ("", "app.js", "uPlot.iife.min.js"):
            assert get(d.http + path)[0] == 200, path
        st, body, _ = get(d.http + "api/v1/runs")
        assert st == 401, (st, body)
        st, body, _ = get(d.http + "api/v1/runs", {"Authorization": "Bearer s3cret-token-0123456789"})
        assert st == 200 and json.loads(body) == {"runs": []}, body
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


PER_STREAM = r'''# HELP eigenwatch_value the latest evaluated value of a scheduled scalar metric
# TYPE eigenwatch_value gauge
eigenwatch_value{run="r1",stream="L1",metric="erank"} 3.4485199201174317
eigenwatch_value{run="r1",stream="L1",metric="entropy"} 1.2379451303311106
# HELP eigenwatch_step the step that value was evaluated at (a step-less stream: its rows)
# TYPE eigenwatch_step gauge
eigenwatch_step{run="r1",stream="L1",metric="erank"} 3
eigenwatch_step{run="r1",stream="L1",metric="entropy"} 3
# HELP eigenwatch_last_update_timestamp_seconds Unix time of the stream's latest evaluation
# TYPE eigenwatch_last_update_timestamp_seconds gauge
eigenwatch_last_update_timestamp_seconds{run="r1",stream="L1"} T
# HELP eigenwatch_last_ingest_timestamp_seconds Unix time of the stream's last accepted batch
# TYPE eigenwatch_last_ingest_timestamp_seconds gauge
eigenwatch_last_ingest_timestamp_seconds{run="r1",stream="L1"} T
eigenwatch_last_ingest_timestamp_seconds{run="default",stream="plain"} T
# HELP eigenwatch_stream_rows rows the stream holds (all rows since it began or was reset)
# TYPE eigenwatch_stream_rows gauge
eigenwatch_stream_rows{run="r1",stream="L1"} 64
eigenwatch_stream_rows{run="default",stream="plain"} 3
eigenwatch_stream_rows{run="default",stream="empty"} 0
# HELP eigenwatch_stream_eval_lag_seconds step completion to value, of the latest evaluation
# TYPE eigenwatch_stream_eval_lag_seconds gauge
eigenwatch_stream_eval_lag_seconds{run="r1",stream="L1"} T
# HELP eigenwatch_stream_eval_coalesced_total due evaluations coalesced away (evaluation behind)
# TYPE eigenwatch_stream_eval_coalesced_total counter
eigenwatch_stream_eval_coalesced_total{run="r1",stream="L1"} 0
eigenwatch_stream_eval_coalesced_total{run="default",stream="plain"} 0
eigenwatch_stream_eval_coalesced_total{run="default",stream="empty"} 0
# HELP eigenwatch_alert_firing 1 while an alert rule fires, else 0
# TYPE eigenwatch_alert_firing gauge
eigenwatch_alert_firing{run="r1",stream="L1",rule="col\"la\\pse\nx",metric="erank",when="below"} 0
eigenwatch_alert_firing{run="r1",stream="L1",rule="hi",metric="entropy",when="above"} 0
# HELP eigenwatch_sender_dropped_rows_total rows the stream's producers discarded before sending (as they report; by producer sum)
# TYPE eigenwatch_sender_dropped_rows_total counter
eigenwatch_sender_dropped_rows_total{run="r1",stream="L1"} 21
# HELP eigenwatch_sender_dropped_batches_total batches the stream's producers discarded before sending (as they report)
# TYPE eigenwatch_sender_dropped_batches_total counter
eigenwatch_sender_dropped_batches_total{run="r1",stream="L1"} 3
# HELP eigenwatch_stream_ended 1 when the stream's run said it is over (flush end), else 0: a stall rule can tell a finished run from a stalled one
# TYPE eigenwatch_stream_ended gauge
eigenwatch_stream_ended{run="r1",stream="L1"} 0
eigenwatch_stream_ended{run="default",stream="plain"} 1
eigenwatch_stream_ended{run="default",stream="empty"} 0
# HELP eigenwatch_stream_refused_total batches refused for the stream, by wire code (errors_total counts them too, without the stream)
# TYPE eigenwatch_stream_refused_total counter
eigenwatch_stream_refused_total{run="default",stream="plain",code="DIM_MISMATCH"} 2
eigenwatch_stream_refused_total{run="default",stream="plain",code="NON_FINITE"} 1'''


def per_stream_families_are_pinned():
    """The state below has a sample of every per-stream family: a stepped stream with evaluations,
    two rules (one name needing every escape), producer drops; a step-less stream; an empty one.
    Times are masked (they differ by run); every other byte is the exposition of wave 3 before
    the families became one table, plus stream_ended (issue 25: `flush {end: true}`)."""
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"run": "r1", "stream": "L1", "dim": 4, "window_steps": 1,
                          "eval": [{"metric": "erank"}, {"metric": "entropy"}, {"metric": "topk"}],
                          "rules": [{"name": 'col"la\\pse\nx', "metric": "erank", "when": "below",
                                     "value": 3.0},
                                    {"name": "hi", "metric": "entropy", "when": "above",
                                     "value": 100.0}]})
        rng = np.random.default_rng(1)
        for s in range(4):
            X = rng.standard_normal((16, 4)).astype(np.float32)
            c.call("ingest", {"run": "r1", "stream": "L1", "step": s, "end_step": True,
                              "dtype": "f32", "shape": [16, 4], "data": X.tobytes(),
                              "producer": "p0", "seq": s + 1, "dropped_rows": 7 * s,
                              "dropped_batches": s})
            # each step evaluated before the next: a loaded machine would otherwise coalesce
            # two steps' evaluations, and the counts below would differ
            deadline = time.time() + 30
            while time.time() < deadline:
                h = c.call("history", {"run": "r1", "stream": "L1", "metrics": "entropy"})
                if h["series"] and len(h["series"][0]["step"]) > s:
                    break
                time.sleep(0.02)
        c.call("ingest", {"stream": "plain", "rows": [[1, 2], [3, 4], [5, 7]]})
        c.call("create", {"stream": "empty", "dim": 3})
        assert c.call("flush", {"stream": "plain", "end": True})["ended"] is True
        for bad in ([[1, 2, 3]], [[1, 2, 3]], [[1, float("nan")]]):  # refused, counted by code
            try:
                c.call("ingest", {"stream": "plain", "rows": bad})
                raise AssertionError("accepted")
            except RpcError as e:
                assert e.code in ("DIM_MISMATCH", "NON_FINITE"), e
        settle(c, "L1", "r1")
        deadline = time.time() + 30
        while True:  # the last step's evaluation (steps 3) is in /metrics
            text = get(d.http + "metrics")[1]
            if 'eigenwatch_step{run="r1",stream="L1",metric="entropy"} 3' in text or \
                    time.time() > deadline:
                break
            time.sleep(0.1)
        part = text[text.index("# HELP eigenwatch_value "):]
        got = []
        for ln in part.splitlines():
            if re.match(r"eigenwatch_(last_update_timestamp_seconds|last_ingest_timestamp_seconds|"
                        r"stream_eval_lag_seconds)\{", ln):
                ln = ln.rsplit(" ", 1)[0] + " T"
            got.append(ln)
        got = "\n".join(got)
        assert got == PER_STREAM, "\n".join(
            f"{a!r} != {b!r}" for a, b in zip(got.splitlines(), PER_STREAM.splitlines()) if a != b)
        c.close()
    finally:
        d.stop()


def kept_lines_follow_changes():
    """Each stream's lines are kept between scrapes and made again when what they show changes
    (daemon/cmd/expo.c), each change here alone between two scrapes: an evaluation (two, at two
    steps, with different values; a third that makes a rule fire), a stream rule firing on a
    refused batch, `flush {end}` and the batch after it (stream_ended), alert_set's rules
    replacing the old ones; two scrapes with nothing changed between them are byte-identical in
    every per-stream family."""
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"run": "kc", "stream": "K", "dim": DIM, "window_steps": 1,
                          "eval": [{"metric": "erank"}],
                          "rules": [{"name": "collapse", "metric": "erank", "when": "below",
                                     "value": 3.0}, {"name": "nf", "when": "non_finite"}]})
        lab = {("run", "kc"), ("stream", "K")}
        val = frozenset(lab | {("metric", "erank")})
        fire = frozenset(lab | {("rule", "collapse"), ("metric", "erank"), ("when", "below")})
        nf = frozenset(lab | {("rule", "nf"), ("metric", ""), ("when", "non_finite")})
        rng = np.random.default_rng(7)

        def metrics():
            return parse(get(d.http + "metrics")[1])

        def step(s, k):  # rows of rank k, then the step's evaluation done
            X = (rng.standard_normal((32, k)) @ rng.standard_normal((k, DIM))).astype(np.float32)
            c.call("ingest", {"run": "kc", "stream": "K", "step": s, "end_step": True,
                              "dtype": "f32", "shape": [32, DIM], "data": X.tobytes()})
            settle(c, "K", "kc")
            h = c.call("history", {"run": "kc", "stream": "K", "metrics": "erank"})["series"][0]
            assert h["step"][-1] == s, h["step"]
            return h["value"][-1]

        assert ("eigenwatch_value", val) not in metrics()  # kept before any evaluation
        seen = []
        for s, k, firing in ((0, DIM, 0), (1, DIM, 0), (2, 2, 1)):  # collapsed at 2: it fires
            want = step(s, k)
            m = metrics()
            assert m["eigenwatch_value", val] == want and m["eigenwatch_step", val] == s, (
                s, m["eigenwatch_value", val], want, m["eigenwatch_step", val])
            assert m["eigenwatch_alert_firing", fire] == firing, (
                s, m["eigenwatch_alert_firing", fire])
            seen.append(want)
        assert len(set(seen)) == 3, seen
        assert metrics()["eigenwatch_alert_firing", nf] == 0
        expect("NON_FINITE", c.call, "ingest", {"run": "kc", "stream": "K",
                                                "rows": [[float("nan")] * DIM]})
        assert metrics()["eigenwatch_alert_firing", nf] == 1  # a stream rule, no evaluation
        a, b = (get(d.http + "metrics")[1] for _ in range(2))
        part = a.index("# HELP eigenwatch_value ")
        assert a[part:] == b[b.index("# HELP eigenwatch_value "):], "two scrapes differ"
        # a stream without evaluations: only `ended` changes its kept lines
        c.call("ingest", {"run": "kc", "stream": "P", "rows": [[1.0] * DIM]})
        ended = ("eigenwatch_stream_ended", frozenset({("run", "kc"), ("stream", "P")}))
        assert metrics()[ended] == 0
        c.call("flush", {"run": "kc", "stream": "P", "end": True})
        assert metrics()[ended] == 1
        c.call("ingest", {"run": "kc", "stream": "P", "rows": [[2.0] * DIM]})
        m = metrics()
        assert m[ended] == 0, "a batch after flush {end} still shows the stream ended"
        assert m["eigenwatch_stream_rows", frozenset({("run", "kc"), ("stream", "P")})] == 2
        c.call("alert_set", {"run": "kc", "stream": "K",
                             "rules": [{"name": "hi", "metric": "erank", "when": "above",
                                        "value": 100.0}]})
        rules = {dict(k)["rule"]: v for (n, k), v in metrics().items()
                 if n == "eigenwatch_alert_firing"}
        assert rules == {"hi": 0}, rules
        c.close()
    finally:
        d.stop()


def http_off():
    d = Daemon(extra=["--http", "off"])
    try:
        assert d.http is None and "http://" not in d.log()
    finally:
        d.stop()


def main():
    d = Daemon()
    t = Tap()
    try:
        t.case("metrics_equal_history_alerts_errors_promtool", metrics_match_the_daemon, d)
        t.case("a_real_prometheus_scrapes_the_values", prometheus_scrapes_it, d)
        t.case("sender_drops_summed_per_stream_never_lowered_bad_fields_refused", sender_drops, d)
        t.case("healthz_404_405_413_431_400_414_keepalive", bad_requests, d)
        t.case("api_error_messages_are_strings_for_any_bytes",
               api_error_messages_are_strings_for_any_bytes, d)
        t.case("slowloris_closed_1000_connections_bounded_rpc_unaffected", slow_and_many)
        t.case("auth_token_guards_metrics_and_api_not_healthz_or_page", auth_token)
        t.case("http_off", http_off)
        t.case("per_stream_families_are_pinned", per_stream_families_are_pinned)
        t.case("kept_lines_follow_evaluations_alerts_ended_rules_two_scrapes_equal",
               kept_lines_follow_changes)
    finally:
        d.stop()
    t.done()


if __name__ == "__main__":
    main()
