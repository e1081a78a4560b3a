"""The `eigenwatch` CLI's time-axis commands against a real daemon (issue 9, item 9):

- `history RUN/STREAM metric... --csv`: every point equals numpy float64 on that step's rows
  (1e-6); the table has one line per step; --json is the daemon's answer; --max-points/--agg
  buckets equal numpy's; --from/--to select; --run makes the word the stream (names with '/').
- `watch --json` over a glob: one line per (stream, step), every step exactly once and in order,
  values equal to history's; streams outside the glob never appear; it waits for a stream that
  does not exist yet and for a daemon that is down, and after the daemon restarts on its state
  it continues from the next step without repeating one.
- `watch` (table): the step axis and value range are labelled, a stream without new points is
  marked STALE, a firing alert is shown; `alerts` lists it; `metrics` prints the table.
- Bad numbers and bad words are usage errors (exit 2) with a sentence naming the option; an
  unknown metric or stream is the daemon's refusal (exit 1)."""
import csv
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap, close  # noqa: E402
from test_history import entropy_np, erank_np, settle  # noqa: E402

CLI = None
D = None
DIM = 8


def run(*args, check=None):
    env = dict(os.environ, EIGENWATCH_ADDRESS=D.unix)
    p = subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=60)
    if check is not None:
        assert p.returncode == check, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def step_rows(seed, step, rank=DIM):
    rng = np.random.default_rng(seed * 1000 + step)
    return (rng.standard_normal((24, rank)) @ rng.standard_normal((rank, DIM))).astype(np.float32)


def send(c, run_, stream, step, X):
    c.call("ingest", {"run": run_, "stream": stream, "step": step, "end_step": True,
                      "dtype": "f32", "shape": list(X.shape), "data": X.tobytes()})


def history_equals_numpy():
    c = D.client()
    c.call("create", {"run": "hr", "stream": "h", "dim": DIM, "window_steps": 1,
                      "eval": [{"metric": "entropy"}, {"metric": "erank"}]})
    c.call("create", {"run": "hr", "stream": "a/b", "dim": DIM, "window_steps": 1,
                      "eval": [{"metric": "entropy"}]})
    rows = {s: step_rows(1, s) for s in range(12)}
    for s, X in rows.items():
        send(c, "hr", "h", s, X)
        send(c, "hr", "a/b", s, X)
        settle(c, "h", "hr")  # one evaluation per step: none coalesced
        settle(c, "a/b", "hr")
    out = run("history", "hr/h", "entropy", "erank", "--csv", check=0).stdout
    pts = list(csv.DictReader(io.StringIO(out)))
    assert len(pts) == 24 and set(pts[0]) >= {"run", "stream", "metric", "step", "value",
                                               "partial", "rows", "ranks"}, out[:300]
    for p in pts:
        X = rows[int(p["step"])]
        want = entropy_np(X) if p["metric"] == "entropy" else erank_np(X)
        close(float(p["value"]), want, 1e-6, f"{p['metric']} at step {p['step']}")
        assert (p["run"], p["stream"], p["rows"], p["ranks"], p["partial"]) == \
            ("hr", "h", "24", "1", "false"), p
    table = run("history", "hr/h", "entropy", "erank", check=0).stdout.splitlines()
    assert table[0].split() == ["STEP", "ROWS", "RANKS", "entropy", "erank"], table[0]
    body = [ln.split() for ln in table[1:] if not ln.startswith("#")]
    assert [int(b[0]) for b in body] == list(range(12)), body
    close(float(body[5][3]), entropy_np(rows[5]), 1e-6, "the table's entropy at step 5")
    j = json.loads(run("--json", "history", "hr/h", "erank", check=0).stdout)
    assert [s["metric"] for s in j["series"]] == ["erank"] and j["series"][0]["step"] == \
        list(range(12)), j
    # 12 points in 4 buckets of w = floor(11 / 4) + 1 = 3 steps, max of each
    out = run("history", "hr/h", "entropy", "--csv", "--max-points", "4", "--agg", "max",
              check=0).stdout
    got = [float(p["value"]) for p in csv.DictReader(io.StringIO(out))]
    want = [max(entropy_np(rows[s]) for s in range(b, b + 3)) for b in range(0, 12, 3)]
    for g, w in zip(got, want):
        close(g, w, 1e-6, "bucket max")
    assert len(got) == 4, got
    out = run("history", "hr/h", "entropy", "--csv", "--from", "3", "--to", "5", check=0).stdout
    assert [int(p["step"]) for p in csv.DictReader(io.StringIO(out))] == [3, 4, 5], out
    out = run("--run", "hr", "history", "a/b", "entropy", "--csv", check=0).stdout
    assert len(list(csv.DictReader(io.StringIO(out)))) == 12, out
    c.close()


def history_and_watch_refuse_bad_words():
    cases = [(["history"], "needs RUN/STREAM"),
             (["history", "hr/", "entropy"], "wants RUN/STREAM"),
             (["history", "hr/h", "--max-points", "0"], "--max-points wants a whole number"),
             (["history", "hr/h", "--from", "x"], "--from wants a whole number"),
             (["history", "hr/h", "--from", "5", "--to", "3"], "before --from"),
             (["history", "hr/h", "--agg", "median"], "--agg wants last, mean, min or max"),
             (["history", "hr/h", "--csv", "--json"], "exclude each other"),
             (["watch", "h", "--count", "x"], "--count wants a whole number"),
             (["watch", "h", "--count", "0"], "--count wants a whole number"),
             (["watch", "h", "--interval", "-1"], "--interval wants a number"),
             (["watch", "h", "--interval", "nan"], "--interval wants a number"),
             (["watch", "h", "--stale", "1e999"], "--stale wants a number"),
             (["watch", "h", "--width", "3"], "--width wants a whole number"),
             (["watch", "h", "--bogus"], "unknown or incomplete option"),
             (["watch"], "needs a STREAM"),
             (["watch", "entropy", "--count", "1"], "needs a STREAM or a glob"),
             (["--timeout", "-5", "ping"], "--timeout wants a whole number"),
             (["query", "h", "trace", "--max-lag", "soon"], "--max-lag wants a whole number"),
             (["ingest", "h", "f.npy", "--batch", "0"], "--batch wants a whole number"),
             (["metrics", "x"], "takes no arguments"),
             (["alerts", "a", "b"], "at most one STREAM")]
    for args, msg in cases:
        p = run(*args, check=2)
        assert msg in p.stderr and p.stdout == "", (args, p.stderr, p.stdout)
    p = run("history", "hr/nope", "entropy", check=1)
    assert "NO_SUCH_STREAM" in p.stderr, p.stderr
    p = run("watch", "h", "--metric", "entropi", "--count", "1", check=1)
    assert "no metric named 'entropi'" in p.stderr, p.stderr


class Watcher:
    """`eigenwatch --json watch ...` running in the background; lines() is what it printed."""

    def __init__(self, *args):
        env = dict(os.environ, EIGENWATCH_ADDRESS=D.unix)
        self.err = open(os.path.join(D.dir, "watch.err"), "w+")
        self.p = subprocess.Popen([CLI, "--json", *args], stdout=subprocess.PIPE,
                                  stderr=self.err, text=True, env=env)
        self.got = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.buf = ""

    def _read(self):
        for ln in self.p.stdout:
            self.got.append(ln)

    def lines(self):
        self.buf = "".join(self.got)
        return [json.loads(ln) for ln in self.buf.splitlines()]

    def wait_for(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.lines()):
                return
            time.sleep(0.05)
        raise AssertionError(f"watch: no {what} in {timeout}s: {self.buf[-2000:]}\n"
                             f"stderr: {self.stderr()[-1000:]}")

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.err.close()


def points(lines, stream):
    return [ln for ln in lines if ln.get("stream") == stream and "step" in ln]


def watch_json_by_step_glob_wait_and_restart():
    global D
    w = Watcher("--run", "wr", "watch", "layer*", "entropy", "erank", "--interval", "0.05")
    try:
        w.wait_for(lambda _: "waiting for a stream matching layer*" in w.stderr(),
                   "waiting message")
        c = D.client()
        for name in ("layer1", "layer2", "other"):
            c.call("create", {"run": "wr", "stream": name, "dim": DIM, "window_steps": 1,
                              "eval": [{"metric": "entropy"}, {"metric": "erank"}]})
        rows = {}
        for s in range(5):
            for name in ("layer1", "layer2", "other"):
                rows[name, s] = step_rows(sum(map(ord, name)), s)
                send(c, "wr", name, s, rows[name, s])
                settle(c, name, "wr")
        w.wait_for(lambda ls: all(len(points(ls, n)) == 5 for n in ("layer1", "layer2")),
                   "5 steps of both layers")
        c.close()
        D.stop()
        w.wait_for(lambda _: "waiting for the daemon" in w.stderr(), "waiting for the daemon")
        D = Daemon(state_dir=D.dir)  # the same socket and state: history and streams are back
        c = D.client()
        for s in range(5, 8):
            for name in ("layer1", "layer2"):
                rows[name, s] = step_rows(sum(map(ord, name)), s)
                send(c, "wr", name, s, rows[name, s])
                settle(c, name, "wr")
        w.wait_for(lambda ls: all(len(points(ls, n)) >= 8 for n in ("layer1", "layer2")),
                   "8 steps of both layers after the restart")
        time.sleep(0.3)  # a few more cycles: nothing is printed twice
        lines = w.lines()
        assert not points(lines, "other"), "a stream outside the glob was shown"
        for name in ("layer1", "layer2"):
            pts = points(lines, name)
            assert [p["step"] for p in pts] == list(range(8)), [p["step"] for p in pts]
            for p in pts:
                assert p["run"] == "wr" and p["rows"] == 24 and p["partial"] is False, p
                close(p["metrics"]["entropy"], entropy_np(rows[name, p["step"]]), 1e-6,
                      f"{name} entropy at step {p['step']}")
                close(p["metrics"]["erank"], erank_np(rows[name, p["step"]]), 1e-6,
                      f"{name} erank at step {p['step']}")
        c.close()
    finally:
        w.stop()


def watch_table_axis_stale_and_alerts():
    c = D.client()
    rules = [{"name": "collapse", "metric": "erank", "when": "below", "value": 3.0}]
    c.call("create", {"run": "tr", "stream": "L", "dim": DIM, "window_steps": 1,
                      "eval": [{"metric": "erank"}], "rules": rules})
    for s in range(10):
        X = step_rows(3, s, rank=DIM if s < 6 else 2)  # rank 2 from step 6: erank < 3
        send(c, "tr", "L", s, X)
        settle(c, "L", "tr")
    time.sleep(0.2)
    out = run("--run", "tr", "watch", "L", "erank", "--count", "1", "--stale", "0.1",
              "--width", "20", check=0).stdout
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.startswith("L "))
    assert "step 9" in head and "rows 24" in head and "STALE" in head, out
    erank_line = next(ln for ln in lines if ln.strip().startswith("erank"))
    vals = [erank_np(step_rows(3, s, rank=DIM if s < 6 else 2)) for s in range(10)]
    assert "steps 0..9" in erank_line and f"[{min(vals):.4g} .. {max(vals):.4g}]" in erank_line, \
        (erank_line, min(vals), max(vals))
    close(float(erank_line.split()[1]), vals[9], 1e-5, "watch's latest erank")
    assert any("ALERT L: rule collapse (erank below) firing since step 6" in ln
               for ln in lines), out
    out = run("--run", "tr", "watch", "L", "erank", "--count", "1", check=0).stdout
    assert "STALE" not in out, out  # the default: 30 s at least
    table = run("--run", "tr", "alerts", check=0).stdout.splitlines()
    assert table[0].split()[:4] == ["RUN", "STREAM", "RULE", "METRIC"], table
    row = next(ln.split() for ln in table[1:] if "collapse" in ln)
    assert row[:5] == ["tr", "L", "collapse", "erank", "below"] and "firing" in row and \
        "6" in row, row
    mt = run("metrics", check=0).stdout
    want = json.loads(run("--json", "metrics", check=0).stdout)["metrics"]
    for m in want:
        assert any(ln.split()[:2] == [m["name"], m["kind"]] for ln in mt.splitlines()), m["name"]
    c.close()


def main():
    global CLI, D
    CLI = sys.argv[1]
    D = Daemon()
    t = Tap()
    try:
        t.case("history_csv_table_json_buckets_equal_numpy", history_equals_numpy)
        t.case("bad_numbers_and_words_are_usage_errors", history_and_watch_refuse_bad_words)
        t.case("watch_json_by_step_glob_waits_and_survives_a_restart",
               watch_json_by_step_glob_wait_and_restart)
        t.case("watch_table_step_axis_stale_marker_alerts_metrics",
               watch_table_axis_stale_and_alerts)
    finally:
        D.stop()
    t.done()


if __name__ == "__main__":
    main()
