"""Series names (`as` on eval entries) and alert states across a restart, against a real daemon
driven with the real Python client (clients/python).

- One metric scheduled twice with different parameters (`renyi` at alpha 2 and 0.5) under two
  `as` names is two history series whose values equal numpy's on each step's rows; a subscriber
  filtering on both names gets both; /metrics labels both; `info` shows the names; an alert rule
  on an `as` series fires at the collapse.
- An estimated metric (entropy of a sketched stream, source all) keeps its bracket and error
  bar under its series name: in history ("error", "bracket") and in notifications
  ("{series}_error", "{series}_bracket"), equal to what `query` answers on the same state.
- A bad `as` (charset, length, a duplicate, another entry's default name) is BAD_PARAM with a
  sentence and creates nothing; a rule on a metric scheduled only under an `as` name is refused,
  the sentence naming the stream's series.
- A rule firing at SIGTERM is firing after the restart: `alerts` shows the same step, `since`
  and last value, eigenwatch_alert_firing stays 1, the firing counter is not bumped and no second
  firing notification is sent; the drop rule still sees its pre-collapse maximum, and resolves
  when the values come back. (On a daemon without saved states, the rule is `ok` after the
  restart and fires again.)
- A state dir written by the daemon before series names (fixtures/state_v3: a version-3
  snapshot whose eval list and rules have the old blob layouts, and a history.db without the
  err/lo/hi columns) restores: the eval list (series named after their metrics), the rules
  (their states start over, as that daemon saved none), the history, and new points are
  written to it. Made with that daemon by: create L0 (run old, d 4, window_steps 1, eval renyi
  alpha 2 and erank every 2, rules drop/below_baseline/stale), six steps of 16 rows, stop."""
import os
import re
import shutil
import tempfile
import sys
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), HERE, os.path.join(ROOT, "tests", "numeric")]
from eigenwatch import Client, EigenwatchError  # noqa: E402
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

D = 24  # dimension of the training-like streams


def expect(code, fn, *a, **kw):
    """Calls fn, asserts it fails with wire code `code`; returns the error's message."""
    try:
        fn(*a, **kw)
    except EigenwatchError as e:
        assert e.code == code, f"expected {code}, got {e.code}: {e.message}"
        return e.message
    raise AssertionError(f"expected {code}, the call succeeded")


def settle(c, stream, run, timeout=30):
    """Waits until the stream has no evaluation running or waiting (a query queued behind its
    jobs first, so every step sent before is applied)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c.query(stream, "trace", center=False, fresh=True, source="all", run=run)
        except EigenwatchError as e:
            assert e.code == "DEGENERATE", e
        ev = c.call("info", stream=stream, **({"run": run} if run else {}))["eval"]
        if not ev["busy"]:
            return ev
        time.sleep(0.02)
    raise AssertionError(f"{stream}: evaluation still busy after {timeout}s")


def scrape(d):
    with urllib.request.urlopen(d.http + "metrics", timeout=10) as r:
        return r.read().decode()


def prom(text, family, **labels):
    """The value of the sample of `family` whose labels include `labels` (None: no such sample)."""
    for line in text.splitlines():
        m = re.match(r"eigenwatch_%s\{([^}]*)\} (\S+)$" % family, line)
        if m and all(f'{k}="{v}"' in m.group(1).split(",") for k, v in labels.items()):
            return float(m.group(2))
    return None


def drain(sub, until, timeout=10):
    """Notifications (kind, payload) until until(list) holds or `timeout` seconds pass."""
    got, deadline = [], time.time() + timeout
    while time.time() < deadline and not until(got):
        n = sub.next(timeout=0.2)
        if n is not None:
            got.append(n)
    return got


def renyi_ref(X, alpha):
    e = np.clip(np.linalg.eigvalsh(np.cov(X.T)), 0, None)
    p = e / e.sum()
    p = p[p > 0]
    return float(np.log((p ** alpha).sum()) / (1 - alpha))


def one_metric_twice_under_two_names():
    d = Daemon()
    rng = np.random.default_rng(7)
    try:
        c = Client(d.unix)
        ev = [{"metric": "renyi", "params": {"alpha": 2}, "as": "renyi_2"},
              {"metric": "renyi", "params": {"alpha": 0.5}, "as": "renyi_half"},
              {"metric": "erank"}]
        rules = [{"name": "collapse2", "metric": "renyi_2", "when": "below", "value": 1.5}]
        c.create("L1", D, run="r", window_steps=1, eval=ev, rules=rules)
        info = c.call("info", stream="L1", run="r")["eval"]["metrics"]
        assert [(m["metric"], m.get("as")) for m in info] == [
            ("renyi", "renyi_2"), ("renyi", "renyi_half"), ("erank", None)], info
        sub = c.subscribe(stream="L*", run="r", metrics=["renyi_2", "renyi_half"])
        mix = rng.standard_normal((2, D))
        rows = {}
        for s in range(12):
            Z = rng.standard_normal((200, D))
            # a collapse onto two directions, with a little noise: every eigenvalue stays far
            # above rounding, so alpha = 0.5 (which weighs small ones up) is well conditioned
            X = Z[:, :2] @ mix + 0.01 * Z if s >= 8 else Z * np.linspace(1, 3, D)
            rows[s] = X.astype(np.float32).astype(np.float64)
            c.ingest("L1", X.astype(np.float32), run="r", step=s)
            settle(c, "L1", "r")
        c.flush("L1", run="r")
        assert settle(c, "L1", "r")["evaluations"] == 12
        h = c.history(stream="L1", run="r")
        assert sorted(m for _, m in h) == ["erank", "renyi_2", "renyi_half"], sorted(h)
        for name, alpha in (("renyi_2", 2.0), ("renyi_half", 0.5)):
            s = h[("L1", name)]
            assert list(s.step) == list(range(12)), s.step
            ref = np.array([renyi_ref(rows[i], alpha) for i in range(12)])
            np.testing.assert_allclose(s.value, ref, rtol=1e-9, atol=1e-12, err_msg=name)
        # the two parameter sets really differ (so neither series is the other under a new name)
        assert np.all(h[("L1", "renyi_half")].value - h[("L1", "renyi_2")].value > 1e-3)
        sel = c.history(stream="L1", run="r", metrics=["renyi_half"])
        assert list(sel) == [("L1", "renyi_half")], list(sel)
        got = drain(sub, lambda g: sum(k == "metrics" for k, _ in g) >= 12)
        mets = [v for k, v in got if k == "metrics"]
        assert [m["step"] for m in mets] == list(range(12)), [m["step"] for m in mets]
        assert all(set(m["metrics"]) == {"renyi_2", "renyi_half"} for m in mets), mets[0]
        assert [m["metrics"]["renyi_2"] for m in mets] == list(h[("L1", "renyi_2")].value)
        alerts = c.alerts(stream="L1", run="r")
        assert [(a["rule"], a["metric"], a["state"], a["step"]) for a in alerts] == [
            ("collapse2", "renyi_2", "firing", 8)], alerts
        fired = [v for k, v in got if k == "alert"]
        assert [(a["rule"], a["state"], a["step"]) for a in fired] == [
            ("collapse2", "firing", 8)], fired
        text = scrape(d)
        for name in ("renyi_2", "renyi_half", "erank"):
            v = prom(text, "value", run="r", stream="L1", metric=name)
            assert v is not None and np.isclose(v, h[("L1", name)].value[-1], rtol=1e-9), (
                name, v)
        assert prom(text, "value", run="r", stream="L1", metric="renyi") is None
        assert prom(text, "alert_firing", stream="L1", rule="collapse2", metric="renyi_2") == 1
        sub.close()
        c.close()
    finally:
        assert d.stop() == 0
    # the names come back after a restart, and history still selects by them
    d2 = Daemon(state_dir=d.dir)
    try:
        c = Client(d2.unix)
        info = c.call("info", stream="L1", run="r")["eval"]["metrics"]
        assert [m.get("as") for m in info] == ["renyi_2", "renyi_half", None], info
        assert len(c.history(stream="L1", run="r", metrics="renyi_2")[("L1", "renyi_2")].step) == 12
        c.close()
    finally:
        assert d2.stop() == 0


def an_estimate_keeps_its_error_and_bracket_under_its_series_name():
    d = Daemon()
    rng = np.random.default_rng(11)
    try:
        c = Client(d.unix)
        # d = 48 > exact_max_dim 16: a sketch; entropy of all rows is a certified bracket there
        c.create("sk", 48, exact_max_dim=16, sketch_rows=8, window=0,
                 eval=[{"metric": "entropy", "source": "all", "every_rows": 100, "as": "h_all"},
                       {"metric": "trace", "every_rows": 100}])
        sub = c.subscribe(stream="sk")
        for _ in range(3):
            c.ingest("sk", (rng.standard_normal((100, 48)) * np.linspace(1, 4, 48)).astype(
                np.float32))
            settle(c, "sk", None)
        got = drain(sub, lambda g: len(g) >= 3)
        q = c.call("query", stream="sk", metrics=["entropy"], source="all")["metrics"]
        h = c.call("history", stream="sk")["series"]
        byname = {s["metric"]: s for s in h}
        assert set(byname) == {"h_all", "trace"}, set(byname)
        s = byname["h_all"]
        assert s["step"] == [100, 200, 300], s["step"]
        assert len(s["error"]) == 3 and len(s["bracket"]) == 3, s
        lo, hi = s["bracket"][-1]
        assert lo <= s["value"][-1] <= hi and np.isclose(s["error"][-1], (hi - lo) / 2), s
        assert s["bracket"][-1] == q["entropy_bracket"] and s["error"][-1] == q["entropy_error"]
        assert s["value"][-1] == q["entropy"], (s["value"][-1], q)
        assert "error" not in byname["trace"] and "bracket" not in byname["trace"], byname["trace"]
        last = [v for k, v in got if k == "metrics"][-1]["metrics"]
        assert set(last) == {"h_all", "h_all_error", "h_all_bracket", "trace"}, last
        assert last["h_all_bracket"] == q["entropy_bracket"] and last["h_all"] == q["entropy"]
        # the Python client's Series carries them too
        ps = c.history(stream="sk", metrics="h_all")[("sk", "h_all")]
        assert ps.bracket.shape == (3, 2) and np.all(ps.error > 0), ps
        sub.close()
        c.close()
    finally:
        assert d.stop() == 0


def bad_series_names_change_nothing():
    d = Daemon()
    try:
        c = Client(d.unix)
        cases = [
            ([{"metric": "erank", "as": "Bad-Name"}], "'as' must be a series name"),
            ([{"metric": "erank", "as": "9lives"}], "'as' must be a series name"),
            ([{"metric": "erank", "as": ""}], "'as' must be a series name"),
            ([{"metric": "erank", "as": "x" * 64}], "1 to 63 bytes"),
            ([{"metric": "erank", "as": 5}], "'as' must be a series name"),
            ([{"metric": "renyi", "as": "r"}, {"metric": "erank", "as": "r"}],
             "eval[1]: the series name 'r' is taken by eval[0] (its 'as', metric renyi)"),
            ([{"metric": "erank"}, {"metric": "renyi", "as": "erank"}],
             "eval[1]: the series name 'erank' is taken by eval[0] (the name of its metric erank)"),
            ([{"metric": "renyi"}, {"metric": "renyi", "params": {"alpha": 3}}],
             "eval names renyi twice"),
        ]
        for ev, needle in cases:
            m = expect("BAD_PARAM", c.create, "s", 4, eval=ev)
            assert needle in m, (ev, m)
        m = expect("BAD_PARAM", c.create, "s", 4, eval=[{"metric": "renyi", "as": "r2"}],
                   rules=[{"name": "a", "metric": "renyi", "when": "below", "value": 1}])
        assert "'renyi' is not a metric the stream evaluates" in m and "(r2)" in m, m
        assert c.list() == [] and c.alerts() == []
        c.create("t", 4, eval=[{"metric": "renyi", "as": "r2"}])
        m = expect("UNKNOWN_METRIC", c.alert_set, "t",
                   [{"name": "a", "metric": "r3", "when": "below", "value": 1}])
        assert "'r3'" in m and "(r2)" in m, m
        assert c.alerts() == []
        m = expect("UNKNOWN_METRIC", c.history, stream="t", metrics=["r3"])
        assert "no metric named 'r3'" in m, m
        assert c.history(stream="t", metrics=["r2"]) == {}  # a series of t: no points yet
        expect("UNKNOWN_METRIC", c.subscribe, stream="other*", metrics=["r2"])
        c.subscribe(stream="t", metrics=["r2"]).close()
        assert [s.stream for s in c.list()] == ["t"]
        c.close()
    finally:
        assert d.stop() == 0


def a_firing_rule_survives_a_restart():
    d = Daemon()
    rng = np.random.default_rng(5)
    mix = rng.standard_normal((2, 32))

    def step(c, s, collapsed):
        Z = rng.standard_normal((256, 32))
        X = Z[:, :2] @ mix if collapsed else Z
        c.ingest("L3", X.astype(np.float32), run="job", step=s)
        settle(c, "L3", "job")

    rules = [{"name": "fell", "metric": "erank", "when": "drop", "value": 0.5, "steps": 10},
             {"name": "low", "metric": "erank", "when": "below", "value": 10}]
    try:
        c = Client(d.unix)
        c.create("L3", 32, run="job", window_steps=1, rules=rules)
        for s in range(12):
            step(c, s, s >= 10)
        c.flush("L3", run="job")
        settle(c, "L3", "job")
        before = {a["rule"]: a for a in c.alerts(run="job")}
        assert [(r, a["state"], a["step"]) for r, a in before.items()] == [
            ("fell", "firing", 10), ("low", "firing", 10)], before
        assert c.stats()["alerts_fired"] == 2
        text = scrape(d)
        assert prom(text, "alert_firing", stream="L3", rule="fell") == 1, text
        assert prom(text, "alert_firing", stream="L3", rule="low") == 1, text
        c.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = Client(d2.unix)
        after = {a["rule"]: a for a in c.alerts(run="job")}
        assert after == before, (before, after)  # state, step, since, last_value: all the same
        text = scrape(d2)
        assert prom(text, "alert_firing", stream="L3", rule="fell") == 1, text
        assert prom(text, "alert_firing", stream="L3", rule="low") == 1, text
        sub = c.subscribe(stream="L3", run="job")
        for s in (12, 13):  # still collapsed: nothing fires again
            step(c, s, True)
        c.flush("L3", run="job")
        settle(c, "L3", "job")
        got = drain(sub, lambda g: sum(k == "metrics" for k, _ in g) >= 2)
        assert [v["step"] for k, v in got if k == "metrics"] == [12, 13], got
        assert [v for k, v in got if k == "alert"] == [], got
        st = c.stats()
        assert st["alerts_fired"] == 0 and st["alerts_resolved"] == 0, st
        now = {a["rule"]: a for a in c.alerts(run="job")}
        assert all(now[r]["state"] == "firing" and now[r]["step"] == 10 and
                   now[r]["since"] == before[r]["since"] for r in now), now
        assert prom(scrape(d2), "alert_firing", stream="L3", rule="fell") == 1
        for s in (14, 15):  # back to full rank: both resolve at step 14
            step(c, s, False)
        c.flush("L3", run="job")
        settle(c, "L3", "job")
        got = drain(sub, lambda g: sum(k == "alert" for k, _ in g) >= 2)
        assert sorted((v["rule"], v["state"], v["step"]) for k, v in got if k == "alert") == [
            ("fell", "resolved", 14), ("low", "resolved", 14)], got
        assert c.stats()["alerts_fired"] == 0 and c.stats()["alerts_resolved"] == 2
        assert prom(scrape(d2), "alert_firing", stream="L3", rule="fell") == 0
        sub.close()
        c.close()
    finally:
        assert d2.stop() == 0


def a_state_from_before_series_names_restores():
    tmp = tempfile.mkdtemp(prefix="ewd-")
    shutil.copytree(os.path.join(HERE, "fixtures", "state_v3"), tmp, dirs_exist_ok=True)
    d = Daemon(state_dir=tmp)
    rng = np.random.default_rng(2)
    try:
        c = Client(d.unix)
        ev = c.call("info", stream="L0", run="old")["eval"]
        assert ev["given"] and [(m["metric"], m.get("as"), m.get("params"), m.get("every"))
                                for m in ev["metrics"]] == [("renyi", None, {"alpha": 2.0}, 1),
                                                            ("erank", None, None, 2)], ev
        rules = [(a["rule"], a.get("metric"), a["when"], a["state"]) for a in c.alerts(run="old")]
        assert rules == [("fell", "erank", "drop", "ok"), ("base", "renyi", "below_baseline", "ok"),
                         ("quiet", None, "stale", "ok")], rules
        h = c.call("history", stream="L0", run="old")["series"]
        assert [(s["metric"], s["step"]) for s in h] == [("renyi", [0, 1, 2, 3, 4, 5]),
                                                         ("erank", [0, 2, 4])], h
        assert all("error" not in s and "bracket" not in s for s in h), h
        for s in (6, 7):
            c.ingest("L0", rng.standard_normal((16, 4)).astype(np.float32), run="old", step=s)
        c.flush("L0", run="old")
        settle(c, "L0", "old")
        h = c.history(stream="L0", run="old", metrics="renyi")[("L0", "renyi")]
        assert list(h.step) == list(range(8)) and h.error is None, h
        c.close()
    finally:
        assert d.stop() == 0
    assert "columns err, lo, hi added" in d.log(), d.log()


def main():
    t = Tap()
    t.case("one_metric_twice_under_two_names", one_metric_twice_under_two_names)
    t.case("an_estimate_keeps_its_error_and_bracket_under_its_series_name",
           an_estimate_keeps_its_error_and_bracket_under_its_series_name)
    t.case("bad_series_names_change_nothing", bad_series_names_change_nothing)
    t.case("a_firing_rule_survives_a_restart", a_firing_rule_survives_a_restart)
    t.case("a_state_from_before_series_names_restores",
           a_state_from_before_series_names_restores)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
