"""The JSON API and the built-in page (issue 10, item 3), against a real daemon:

- /api/v1/METHOD runs the RPC method and answers JSON: history, runs, list and alerts equal the
  msgpack-RPC answers (floats bit for bit: 17 significant digits round-trip), query strings are
  typed by the field tables, and refusals carry the RPC's code and sentence with an HTTP status
  (404 NO_SUCH_STREAM, 400 BAD_REQUEST, 404 for a method that changes state); nothing changes.
- The page in a real headless Chromium (over the DevTools protocol): its charts hold one line per
  stream with one point per evaluated step, values equal to `history`, a partial step marked;
  then, without reloading, new steps arrive, a layer collapses, and an alert marker appears at
  the step the rule fired; a screenshot is written; the console has no error.
- Series names: one metric scheduled twice under two `as` names is two charts named after them,
  and an estimate (a sketched stream's entropy) carries its certified bracket into the page
  (eigenwatch.series[name][stream].lo/hi equal `history`'s bracket)."""
import json
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402
from test_history import settle  # noqa: E402
from test_http import get  # noqa: E402
from cdp import Browser  # noqa: E402

DIM = 8
RUN = "pg"
STREAMS = ("L0", "L1", "L2")  # L2 has two ranks; its step 3 is partial (rank 1 never sends)


def create(c):
    for s in STREAMS:
        c.call("create", {"run": RUN, "stream": s, "dim": DIM, "window_steps": 1,
                          "world": 2 if s == "L2" else 1,
                          "eval": [{"metric": "erank"}, {"metric": "entropy"}],
                          "rules": [{"name": "collapse", "metric": "erank", "when": "below",
                                     "value": 3.0}]})


def send_steps(c, steps, collapse=None, collapse_at=None):
    rng = np.random.default_rng(steps.start + 7)
    for step in steps:
        for s in STREAMS:
            k = 2 if s == collapse and step >= collapse_at else DIM
            X = (rng.standard_normal((32, k)) @ rng.standard_normal((k, DIM))).astype(np.float32)
            ranks = [(0, X[:16]), (1, X[16:])] if s == "L2" else [(0, X)]
            for rank, part in ranks:
                if s == "L2" and step == 3 and rank == 1:
                    continue
                c.call("ingest", {"run": RUN, "stream": s, "step": step, "rank": rank,
                                  "end_step": True, "dtype": "f32", "shape": list(part.shape),
                                  "data": part.tobytes()})
            if s == "L2" and step == 3:
                c.call("flush", {"run": RUN, "stream": s})
        # each step evaluated before the next: under load (ASan on a busy CI machine) two
        # steps' evaluations would coalesce into one point and the counts below would differ
        for s in STREAMS:
            settle(c, s, RUN)


def api(d, path):
    st, body, hdr = get(d.http + "api/v1/" + path)
    assert hdr["Content-Type"] == "application/json", hdr
    return st, json.loads(body)


def same_float(a, b):
    return struct.pack("<d", a) == struct.pack("<d", b)


def api_matches_rpc(d):
    c = d.client()
    create(c)
    send_steps(c, range(0, 6), "L1", 4)
    rpc = c.call("history", {"run": RUN})["series"]
    st, js = api(d, f"history?run={RUN}")
    assert st == 200
    assert len(js["series"]) == len(rpc) == 2 * len(STREAMS)
    for a, b in zip(js["series"], rpc):
        assert (a["stream"], a["metric"], a["step"], a["partial"]) == \
            (b["stream"], b["metric"], b["step"], b["partial"])
        assert all(same_float(x, y) for x, y in zip(a["value"], b["value"])), a["metric"]
        assert all(same_float(x, y) for x, y in zip(a["time"], b["time"]))
    # typed query strings: UINT, NAMES (comma-separated), ENUM
    st, js = api(d, f"history?run={RUN}&streams=L0,L2&metrics=erank&from_step=2&to_step=4")
    assert st == 200 and [(s["stream"], s["step"]) for s in js["series"]] == \
        [("L0", [2, 3, 4]), ("L2", [2, 3, 4])], js
    assert js["series"][1]["partial"] == [False, True, False]
    st, js = api(d, f"history?run={RUN}&stream=L1&metrics=erank&max_points=2&agg=min")
    want = c.call("history", {"run": RUN, "stream": "L1", "metrics": "erank", "max_points": 2,
                              "agg": "min"})["series"][0]["value"]
    assert st == 200 and js["series"][0]["value"] == want
    assert api(d, "runs")[1] == c.call("runs")
    assert api(d, f"list?run={RUN}")[1] == c.call("list", {"run": RUN})
    alerts = api(d, f"alerts?run={RUN}")[1]["alerts"]
    assert alerts == c.call("alerts", {"run": RUN})["alerts"]
    assert [(a["stream"], a["state"], a["step"]) for a in alerts if a["state"] == "firing"] == \
        [("L1", "firing", 4)], alerts
    st, js = api(d, f"query?run={RUN}&stream=L0&metrics=erank,renyi&fresh=true")
    assert st == 200 and set(js["metrics"]) == {"erank", "renyi"}, js
    # refusals: the RPC's code and sentence, an HTTP status by code, nothing changed
    before = c.call("stats")
    cases = [
        ("history?run=pg&stream=nope", 404, "NO_SUCH_STREAM", "no stream named 'nope' in run 'pg'"),
        ("history?run=pg&from_step=x", 400, "BAD_REQUEST", "'from_step' must be an integer >= 0"),
        ("history?run=pg&from_step=-1", 400, "BAD_REQUEST", "'from_step' must be an integer"),
        ("history?run=pg&bogus=1", 400, "BAD_REQUEST", "history does not take 'bogus'"),
        ("history?run=pg&agg=median", 400, "BAD_REQUEST", "'agg' must be"),
        ("history?run=pg&metrics=nope", 400, "UNKNOWN_METRIC", "nope"),
        ("history?run=pg&from_step=%zz", 400, "BAD_REQUEST", "broken %-escape"),
        ("query?run=pg&stream=L0&metrics=renyi&alpha=2", 400, "BAD_REQUEST", "query does not take"),
        ("query?run=pg&stream=L0&metrics=erank&params=1", 400, "BAD_REQUEST",
         "'params' cannot be given in a URL"),
        ("drop?run=pg&stream=L0", 404, "UNKNOWN_METHOD", "not a method the JSON API serves"),
        ("reset?run=pg&stream=L0", 404, "UNKNOWN_METHOD", "not a method the JSON API serves"),
        ("nosuch", 404, "UNKNOWN_METHOD", "not a method the JSON API serves"),
    ]
    for path, status, code, text in cases:
        st, js = api(d, path)
        assert st == status and js["error"]["code"] == code and text in js["error"]["message"], \
            (path, st, js)
    after = c.call("stats")
    assert c.call("list", {"run": RUN}) == api(d, f"list?run={RUN}")[1]
    assert [s["count"] for s in c.call("list", {"run": RUN})["streams"]] == [192, 192, 176]
    assert sum(after["errors"].values()) - sum(before["errors"].values()) == len(cases), \
        (before["errors"], after["errors"])
    c.close()


def page_in_chromium(d, shot):
    c = d.client()
    create(c)
    send_steps(c, range(0, 8))
    b = Browser()
    try:
        b.open(d.http)
        expect = {m: {s: 8 for s in STREAMS} for m in ("entropy", "erank")}
        deadline = time.time() + 60
        while b.eval("eigenwatch.points()") != expect and time.time() < deadline:
            b.pump(0.25)
        assert b.eval("eigenwatch.points()") == expect, b.eval("eigenwatch.points()")
        # the chart's numbers are history's, bit for bit
        for s in STREAMS:
            want = c.call("history", {"run": RUN, "stream": s, "metrics": "erank"})["series"][0]
            got = b.eval(f"eigenwatch.series.erank['{s}']")
            assert got["step"] == want["step"] and got["partial"] == want["partial"], (s, got)
            assert all(same_float(x, y) for x, y in zip(got["value"], want["value"])), s
        assert b.eval("eigenwatch.series.erank.L2.partial[3]") is True
        assert b.eval("document.querySelectorAll('#charts .chart').length") == 2
        assert b.eval("Object.keys(eigenwatch.markers).length") == 0
        assert b.eval("JSON.parse(document.querySelector('[data-metric=erank]').dataset.points)") \
            == [8, 8, 8]
        polls = b.eval("eigenwatch.polls")
        # live: new steps and a collapse of L1 at step 10, no reload
        send_steps(c, range(8, 14), "L1", 10)
        fired = [a for a in c.call("alerts", {"run": RUN})["alerts"] if a["state"] == "firing"]
        assert [(a["stream"], a["step"]) for a in fired] == [("L1", 10)], fired
        b.wait_for("eigenwatch.points().erank.L1 === 14 && eigenwatch.points().entropy.L0 === 14",
                   what="14 points per stream after the live update")
        marker = b.wait_for("Object.values(eigenwatch.markers)", what="an alert marker")
        assert marker == [{"metric": "erank", "stream": "L1", "rule": "collapse", "step": 10}], \
            marker
        assert b.eval("eigenwatch.polls") > polls
        assert b.eval("location.href") == d.http  # never reloaded or navigated
        assert "FIRING since step 10" in b.eval("document.getElementById('alerts').textContent")
        # the event history: what fired (issue 25), equal to the alerts method's events
        ev = b.wait_for("eigenwatch.events.length && eigenwatch.events", what="an alert event")
        want = c.call("alerts", {"run": RUN, "events": 50})["events"]
        assert ev == want and [(e["stream"], e["rule"], e["state"], e["step"]) for e in ev] == \
            [("L1", "collapse", "firing", 10)], (ev, want)
        text = b.eval("document.getElementById('events').textContent")
        assert "L1: collapse FIRED at step 10" in text, text
        val = b.eval("eigenwatch.series.erank.L1.value[13]")
        assert val < 3.0, val
        b.pump(0.5)
        b.screenshot(shot)
        with open(shot, "rb") as f:
            head = f.read(24)
        w, h = struct.unpack(">II", head[16:24])
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and w >= 1000 and h >= 600, (w, h)
        assert os.path.getsize(shot) > 20000, os.path.getsize(shot)
        assert b.errors == [], b.errors
        assert b.eval("eigenwatch.errors") == []
    finally:
        b.close()
    c.close()


def page_charts_series_names_and_error_bars(d):
    c = d.client()
    c.call("create", {"run": "ser", "stream": "A", "dim": DIM, "window_steps": 1,
                      "eval": [{"metric": "renyi", "params": {"alpha": 2}, "as": "renyi_2"},
                               {"metric": "renyi", "params": {"alpha": 0.5}, "as": "renyi_half"},
                               {"metric": "topk", "params": {"k": 2}}]})
    c.call("create", {"run": "ser", "stream": "sk", "dim": 48, "exact_max_dim": 16,
                      "sketch_rows": 8, "window": 0,
                      "eval": [{"metric": "entropy", "source": "all", "every_rows": 100,
                                "as": "h_all"}]})
    rng = np.random.default_rng(4)

    def points(stream, series, n):
        """Waits for the n-th point of a series (a busy machine may otherwise coalesce the
        evaluation of one step into the next, and the test would count one point fewer)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            s = c.call("history", {"run": "ser", "stream": stream, "metrics": series})["series"]
            if s and len(s[0]["step"]) >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"{stream}/{series}: fewer than {n} points after 60 s")

    for step in range(3):
        X = rng.standard_normal((32, DIM)).astype(np.float32)
        c.call("ingest", {"run": "ser", "stream": "A", "step": step, "end_step": True,
                          "dtype": "f32", "shape": list(X.shape), "data": X.tobytes()})
        points("A", "renyi_half", step + 1)
    for k in range(2):
        X = (rng.standard_normal((100, 48)) * np.linspace(1, 4, 48)).astype(np.float32)
        c.call("ingest", {"run": "ser", "stream": "sk", "dtype": "f32", "shape": list(X.shape),
                          "data": X.tobytes()})
        points("sk", "h_all", k + 1)
    settle(c, "sk", "ser")
    settle(c, "A", "ser")
    b = Browser()
    try:
        b.open(d.http + "?run=ser")
        expect = {"renyi_2": {"A": 3}, "renyi_half": {"A": 3}, "h_all": {"sk": 2},
                  "topk": {"A #0": 3, "A #1": 3}}
        deadline = time.time() + 60
        while b.eval("eigenwatch.points()") != expect and time.time() < deadline:
            b.pump(0.25)
        assert b.eval("eigenwatch.points()") == expect, b.eval("eigenwatch.points()")
        charts = b.eval("[...document.querySelectorAll('#charts .chart')].map(e => e.dataset.metric)")
        assert charts == ["h_all", "renyi_2", "renyi_half", "topk"], charts
        # a list series (topk's two eigenvalues) is one line per position, equal to history
        tk = c.call("history", {"run": "ser", "stream": "A", "metrics": "topk"})["series"][0]
        for k in range(2):
            got = b.eval(f"eigenwatch.series.topk['A #{k}']")
            assert got["step"] == tk["step"], (got, tk)
            assert all(same_float(g, v[k]) for g, v in zip(got["value"], tk["value"])), (got, tk)
        want = c.call("history", {"run": "ser", "stream": "sk", "metrics": "h_all"})["series"][0]
        got = b.eval("eigenwatch.series.h_all.sk")
        assert [[lo, hi] for lo, hi in zip(got["lo"], got["hi"])] == want["bracket"], (got, want)
        assert all(lo < v < hi for lo, v, hi in zip(got["lo"], got["value"], got["hi"])), got
        assert b.eval("eigenwatch.series.renyi_2.A.lo") == [None] * 3  # exact: no bar
        assert b.errors == [], b.errors
        assert b.eval("eigenwatch.errors") == []
    finally:
        b.close()
    c.close()


def main():
    t = Tap()
    shot = os.environ.get("EW_PAGE_SCREENSHOT") or os.path.join(
        os.getcwd(), "page.png")  # meson runs tests in the build directory
    d = Daemon()
    try:
        t.case("api_v1_answers_the_rpc_methods_as_json", api_matches_rpc, d)
    finally:
        d.stop()
    d = Daemon()
    try:
        t.case("page_in_headless_chromium_live_points_partial_alert_marker_no_errors",
               page_in_chromium, d, shot)
    finally:
        d.stop()
    d = Daemon()
    try:
        t.case("page_charts_series_names_and_error_bars", page_charts_series_names_and_error_bars,
               d)
    finally:
        d.stop()
    t.done()


if __name__ == "__main__":
    main()
