"""Alerts and subscriptions (issue 9, item 7), against a real daemon.

- A synthetic collapse: 64-dimensional rows of full rank for steps 0-24, of rank 4 for steps
  25-29, full rank again from step 30. A `drop` rule and a `below_baseline` rule on erank fire at
  step 25 and resolve at step 30; a subscriber receives the two firings and the two resolutions
  with those steps, and exactly one `metrics` notification per evaluation (the history's steps,
  the info's count); `alerts` shows the states.
- `non_finite` fires on a refused NaN batch and resolves on the next accepted one; `stale` fires
  after its seconds without a batch and resolves at the next batch.
- A subscriber that never reads is disconnected at conn_out_cap; the daemon's RSS stays within
  64 MiB of where it started, and other clients are served.
- Rules and subscriptions refused with their codes and messages; rules survive a restart."""
import os
import socket
import signal
import sys
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402
from test_history import settle, series  # noqa: E402
from test_steps import expect, send  # noqa: E402


def notifications(sub, until, timeout=10):
    """Reads the subscriber's notifications until until(list) is true."""
    got = []
    deadline = time.time() + timeout
    sub.sock.settimeout(0.2)
    while time.time() < deadline and not until(got):
        try:
            m = sub.read_message()
        except socket.timeout:
            continue
        assert m[0] == 2 and m[1] in ("metrics", "alert") and len(m[2]) == 1, m
        got.append((m[1], m[2][0]))
    return got


def a_collapse_fires_drop_and_below_baseline_and_resolves():
    d = Daemon()
    rng = np.random.default_rng(1)
    try:
        c = d.client()
        rules = [{"name": "fell", "metric": "erank", "when": "drop", "value": 0.5, "steps": 10},
                 {"name": "collapsed", "metric": "erank", "when": "below_baseline",
                  "value": 0.5, "baseline_steps": 5}]
        c.call("create", {"stream": "L3", "run": "job", "dim": 64, "window_steps": 1,
                          "rules": rules})
        sub = d.client()
        sid = sub.call("subscribe", {"run": "job", "stream": "L*", "metrics": ["erank"]})
        other = d.client()  # a subscription to another run sees nothing of this one
        other.call("subscribe", {"run": "elsewhere"})
        mix = rng.standard_normal((4, 64))
        for s in range(40):
            Z = rng.standard_normal((256, 64))
            X = Z[:, :4] @ mix if 25 <= s < 30 else Z
            send(c, "L3", X.astype(np.float32), step=s, run="job")
            settle(c, "L3", "job")  # one step at a time: every step evaluated
        c.call("flush", {"stream": "L3", "run": "job"})
        ev = settle(c, "L3", "job")
        got = notifications(sub, lambda g: sum(k == "metrics" for k, _ in g) >= 40)
        metrics = [v for k, v in got if k == "metrics"]
        alerts = [(v["rule"], v["state"], v["step"]) for k, v in got if k == "alert"]
        msgs = [v["message"] for k, v in got if k == "alert" and v["rule"] == "fell"]
        assert msgs[0].startswith("run job, stream L3, step 25: erank ") and \
            "below its maximum" in msgs[0], msgs  # a message names where, when and the value
        assert [m["step"] for m in metrics] == list(range(40)), [m["step"] for m in metrics]
        assert ev["evaluations"] == 40 and all(set(m["metrics"]) == {"erank"} for m in metrics)
        h = series(c, stream="L3", run="job", metrics="erank")[("L3", "erank")]
        assert h["value"] == [m["metrics"]["erank"] for m in metrics]
        assert sorted(alerts) == sorted([("fell", "firing", 25), ("collapsed", "firing", 25),
                                         ("fell", "resolved", 30),
                                         ("collapsed", "resolved", 30)]), alerts
        assert max(h["value"][25:30]) < 4.5 < 40 < min(h["value"][:25]), h["value"]
        states = c.call("alerts", {"run": "job"})["alerts"]
        assert [(a["rule"], a["state"]) for a in states] == [("fell", "ok"), ("collapsed", "ok")]
        assert sub.call("unsubscribe", {"subscription": sid["subscription"]})["removed"]
        other.sock.settimeout(0.3)
        try:
            m = other.read_message()
            raise AssertionError(f"a subscriber to another run got {m}")
        except socket.timeout:
            pass
        stats = c.call("stats")
        assert stats["alerts_fired"] == 2 and stats["alerts_resolved"] == 2, stats
        for x in (c, sub, other):
            x.close()
    finally:
        assert d.stop() == 0
    assert 'msg="alert firing"' in d.log() and 'rule="fell" step=25' in d.log()


def non_finite_and_stale_rules():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "s", "dim": 2, "rules": [
            {"name": "nan", "when": "non_finite"}, {"name": "quiet", "when": "stale",
                                                    "value": 0.4}]})
        sub = d.client()
        sub.call("subscribe", {"stream": "s"})
        c.call("ingest", {"stream": "s", "rows": [[1.0, 2.0]]})
        expect("NON_FINITE", c.call, "ingest", {"stream": "s", "rows": [[float("nan"), 1.0]]})
        a = {x["rule"]: x for x in c.call("alerts", {"stream": "s"})["alerts"]}
        assert a["nan"]["state"] == "firing", a
        got = notifications(sub, lambda g: any(v["rule"] == "quiet" for _, v in g), timeout=5)
        assert [(v["rule"], v["state"]) for _, v in got] == [("nan", "firing"),
                                                             ("quiet", "firing")], got
        c.call("ingest", {"stream": "s", "rows": [[1.0, 3.0]]})
        got = notifications(sub, lambda g: len(g) >= 2, timeout=5)
        assert sorted((v["rule"], v["state"]) for _, v in got) == [("nan", "resolved"),
                                                                   ("quiet", "resolved")], got
        c.close()
        sub.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)  # the rules come back (their states start over)
    try:
        c = d2.client()
        a = c.call("alerts", {})["alerts"]
        assert [(x["rule"], x["when"], x["state"]) for x in a] == [("nan", "non_finite", "ok"),
                                                                   ("quiet", "stale", "ok")], a
        c.close()
    finally:
        assert d2.stop() == 0


def a_subscriber_that_never_reads_is_disconnected():
    if os.environ.get("EWD_ASAN"):
        return  # RSS under AddressSanitizer says nothing about the daemon
    d = Daemon(config="conn_out_cap = 64K\n")
    try:
        c = d.client()
        c.call("create", {"stream": "w", "dim": 256, "window": 0,
                          "eval": [{"metric": "spectrum", "every_rows": 1}]})
        lazy = d.client()
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.call("subscribe", {"stream": "w"})
        rss0 = d.rss_kib()
        rng = np.random.default_rng(3)
        deadline = time.time() + 60
        while time.time() < deadline and c.call("stats")["subscribers_dropped"] == 0:
            for _ in range(20):
                c.call("ingest", {"stream": "w", "rows": rng.standard_normal((1, 256)).tolist()})
            settle(c, "w")
        stats = c.call("stats")
        assert stats["subscribers_dropped"] == 1 and stats["subscriptions"] == 0, stats
        grew = d.rss_kib() - rss0
        assert grew < 64 * 1024, f"RSS grew by {grew} KiB"
        assert c.call("ping")["pong"] is True
        c.close()
    finally:
        assert d.stop() == 0
    assert "subscriber disconnected" in d.log()


def bad_rules_and_subscriptions_change_nothing():
    d = Daemon()
    try:
        c = d.client()
        c.call("create", {"stream": "x", "dim": 4})
        for rules, code, needle in [
            ([{"name": "a", "when": "below", "value": 1}], "BAD_PARAM", "needs 'metric'"),
            ([{"name": "a", "metric": "erank", "when": "below"}], "BAD_PARAM", "needs 'value'"),
            ([{"name": "a", "metric": "erank", "when": "drop", "value": 2}], "BAD_PARAM",
             "fraction between 0 and 1"),
            ([{"name": "a", "metric": "trace", "when": "above", "value": 1}], "BAD_PARAM",
             "not a metric the stream evaluates"),
            ([{"name": "a", "metric": "nope", "when": "above", "value": 1}], "UNKNOWN_METRIC",
             "'nope'"),
            ([{"name": "a", "when": "stale", "value": 1, "metric": "erank"}], "BAD_PARAM",
             "takes no 'metric'"),
            ([{"name": "a", "when": "stale", "value": 1}] * 2, "BAD_PARAM", "two rules"),
            ([{"name": "a", "when": "sometimes", "value": 1}], "BAD_PARAM", "'when' must be"),
            ([{"when": "stale", "value": 1}], "BAD_PARAM", "needs 'name'"),
            ([{"name": "a", "metric": "erank", "when": "below", "value": 1, "after_step": -1}],
             "BAD_PARAM", "'after_step' must be a step"),
            ([{"name": "a", "metric": "erank", "when": "below", "value": 1, "after_step": "9"}],
             "BAD_PARAM", "'after_step' must be a step"),
        ]:
            e = expect(code, c.call, "alert_set", {"stream": "x", "rules": rules})
            assert needle in e.message, (rules, e.message)
            e = expect(code, c.call, "create", {"stream": "y", "dim": 4, "rules": rules})
        assert c.call("alerts", {})["alerts"] == []
        assert [s["stream"] for s in c.call("list")["streams"]] == ["x"]
        expect("NO_SUCH_STREAM", c.call, "alert_set", {"stream": "nope", "rules": []})
        e = expect("BAD_REQUEST", c.call, "subscribe", {"stream": "a b"})
        assert "glob" in e.message
        expect("UNKNOWN_METRIC", c.call, "subscribe", {"metrics": ["nope"]})
        e = expect("BAD_PARAM", c.call, "unsubscribe", {"subscription": 99})
        assert "no subscription 99" in e.message
        for _ in range(64):
            c.call("subscribe", {})
        e = expect("LIMIT", c.call, "subscribe", {})
        assert "64 per connection" in e.message
        c.close()
    finally:
        assert d.stop() == 0


def a_warm_up_keeps_a_rule_quiet_through_early_training():
    """Issue 25 item 6: `after_step` — early training's compression (low erank at steps 0-9) does
    not fire a rule with a warm-up of 10 steps, while the same rule without one fires at step 0;
    the real collapse at step 20 fires both; a below_baseline rule's baseline is the first points
    after the warm-up. The warm-up is in `alerts` and survives a restart."""
    d = Daemon()
    rng = np.random.default_rng(5)
    rules = [{"name": "quiet", "metric": "erank", "when": "below", "value": 8.0, "after_step": 10},
             {"name": "eager", "metric": "erank", "when": "below", "value": 8.0},
             {"name": "base", "metric": "erank", "when": "below_baseline", "value": 0.5,
              "baseline_steps": 3, "after_step": 10}]
    try:
        c = d.client()
        c.call("create", {"stream": "w", "run": "job", "dim": 32, "window_steps": 1,
                          "rules": rules})
        mix = rng.standard_normal((3, 32))
        fired = {}
        for s in range(24):
            Z = rng.standard_normal((128, 32))
            X = Z[:, :3] @ mix if s < 10 or s >= 20 else Z  # compressed early, collapsed late
            send(c, "w", X.astype(np.float32), step=s, run="job")
            settle(c, "w", "job")
            for a in c.call("alerts", {"run": "job"})["alerts"]:
                if a["state"] == "firing":
                    fired.setdefault(a["rule"], a["step"])
        c.call("flush", {"stream": "w", "run": "job"})
        settle(c, "w", "job")
        assert fired == {"eager": 0, "quiet": 20, "base": 20}, fired
        got = {a["rule"]: a.get("after_step") for a in c.call("alerts", {"run": "job"})["alerts"]}
        assert got == {"quiet": 10, "eager": None, "base": 10}, got
        # the events: eager fired at 0 and resolved at 10; at 20 all three fired (oldest first)
        ev = c.call("alerts", {"run": "job", "events": 100})["events"]
        seen = [(e["rule"], e["state"], e["step"]) for e in ev]
        assert seen[:2] == [("eager", "firing", 0), ("eager", "resolved", 10)], seen
        assert sorted(seen[2:]) == [("base", "firing", 20), ("eager", "firing", 20),
                                    ("quiet", "firing", 20)], seen
        assert all(e["run"] == "job" and e["stream"] == "w" and e["message"] and
                   e["time"] > 1.7e9 for e in ev), ev
        last2 = c.call("alerts", {"run": "job", "events": 2})["events"]
        assert last2 == ev[-2:], (last2, ev)
        assert c.call("alerts", {"run": "other", "events": 5})["events"] == []
        assert "events" not in c.call("alerts", {"run": "job"})  # only when asked
        e = expect("BAD_PARAM", c.call, "alerts", {"events": 513})
        assert "'events' must be a count of events (0–512)" in e.message, e.message
        c.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        got = {a["rule"]: (a.get("after_step"), a["state"])
               for a in c.call("alerts", {"run": "job"})["alerts"]}
        assert got == {"quiet": (10, "firing"), "eager": (None, "firing"),
                       "base": (10, "firing")}, got
        # the events came back from history.db, the same
        again = c.call("alerts", {"run": "job", "events": 100})["events"]
        assert again == ev, (again, ev)
        c.close()
    finally:
        assert d2.stop() == 0


def rules_replaced_by_create_survive_a_restart():
    """create with `rules` on a stream that exists replaces its rules; they are saved with the
    stream, so the next snapshot writes them even when no row came since the last one (the
    daemon before lost them at a restart: nothing marked the stream changed)."""
    d = Daemon()
    c = d.client()
    c.call("create", {"stream": "f", "dim": 4})
    c.call("ingest", {"stream": "f", "rows": [[1, 2, 3, 4]]})
    c.call("snapshot")
    rule = {"name": "q", "metric": "entropy", "when": "below", "value": 1.0}
    c.call("create", {"stream": "f", "dim": 4, "rules": [rule]})
    c.close()
    assert d.stop(signal.SIGTERM) == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        got = [(a["stream"], a["rule"], a["metric"], a["when"], a["value"])
               for a in c.call("alerts")["alerts"]]
        assert got == [("f", "q", "entropy", "below", 1.0)], got
        c.close()
    finally:
        assert d2.stop() == 0


def main():
    t = Tap()
    t.case("a_collapse_fires_drop_and_below_baseline_and_resolves",
           a_collapse_fires_drop_and_below_baseline_and_resolves)
    t.case("non_finite_and_stale_rules", non_finite_and_stale_rules)
    t.case("a_subscriber_that_never_reads_is_disconnected",
           a_subscriber_that_never_reads_is_disconnected)
    t.case("a_warm_up_keeps_a_rule_quiet_through_early_training",
           a_warm_up_keeps_a_rule_quiet_through_early_training)
    t.case("rules_replaced_by_create_survive_a_restart", rules_replaced_by_create_survive_a_restart)
    t.case("bad_rules_and_subscriptions_change_nothing",
           bad_rules_and_subscriptions_change_nothing)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
