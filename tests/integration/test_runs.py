"""Runs (issue 9, identity): a stream's key is (run, stream), against a real daemon.

Two runs hold a stream of the same name and different d: each answers from its own rows (checked
against numpy float64 to 1e-6), `list {run}` and `runs` show each run's streams, dropping one
leaves the other; bad run names are BAD_REQUEST and create nothing; 300 streams over three runs
are each found after the hash index grows and after half are dropped; both same-named streams
survive a restart (and a default-run stream keeps the snapshot file name it had before runs:
the FNV-1a hash of its name)."""
import glob
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from harness import DAEMON, Daemon, expect  # noqa: E402
from taplib import Tap  # noqa: E402



def ingest(c, run, name, X):
    X = np.ascontiguousarray(X, dtype=np.float32)
    p = {"stream": name, "data": X.tobytes(), "dtype": "f32", "shape": list(X.shape)}
    if run is not None:
        p["run"] = run
    return c.call("ingest", p)


def trace_np(X):
    X = X.astype(np.float64)
    return float(np.trace(np.cov(X.T, bias=True)))


def same_name_in_two_runs_is_two_streams():
    d = Daemon()
    try:
        c = d.client()
        rng = np.random.default_rng(1)
        A = rng.standard_normal((50, 4)).astype(np.float32)
        B = (3 * rng.standard_normal((70, 6))).astype(np.float32)
        ingest(c, None, "layer1", A)           # run "default"
        ingest(c, "exp-2", "layer1", B)
        for run, X in ((None, A), ("exp-2", B)):
            p = {"stream": "layer1", "metrics": ["trace"]}
            if run:
                p["run"] = run
            r = c.call("query", p)
            assert r["count"] == len(X), (run, r["count"])
            want = trace_np(X)
            assert abs(r["metrics"]["trace"] - want) <= 1e-6 * want, (run, r, want)
            info = c.call("info", {k: v for k, v in p.items() if k in ("stream", "run")})
            assert info["run"] == (run or "default") and info["dim"] == X.shape[1], info
        every = c.call("list")["streams"]
        assert sorted((s["run"], s["stream"]) for s in every) == \
            [("default", "layer1"), ("exp-2", "layer1")], every
        only = c.call("list", {"run": "exp-2"})["streams"]
        assert [(s["run"], s["stream"], s["dim"]) for s in only] == [("exp-2", "layer1", 6)], only
        assert c.call("list", {"run": "nobody"})["streams"] == []
        runs = c.call("runs")["runs"]
        assert [(r["run"], r["streams"]) for r in runs] == \
            [("default", ["layer1"]), ("exp-2", ["layer1"])], runs
        assert all(isinstance(r["last_activity"], float) for r in runs), runs
        e = expect("NO_SUCH_STREAM", c.call, "info", {"stream": "layer1", "run": "exp-3"})
        assert "in run 'exp-3'" in e.message, e.message
        c.call("drop", {"stream": "layer1", "run": "exp-2"})
        assert c.call("info", {"stream": "layer1"})["count"] == 50
        assert [r["run"] for r in c.call("runs")["runs"]] == ["default"]
        c.close()
    finally:
        assert d.stop() == 0


def bad_run_names_create_nothing():
    d = Daemon()
    try:
        c = d.client()
        for bad in ("", "a b", "../x", "/lead", "x" * 201, "é"):
            e = expect("BAD_REQUEST", c.call, "create", {"stream": "s", "run": bad, "dim": 2})
            assert "run name" in e.message, e.message
        e = expect("BAD_REQUEST", c.call, "create", {"stream": "s", "run": 7, "dim": 2})
        assert "'run'" in e.message, e.message
        e = expect("BAD_REQUEST", c.call, "list", {"run": "a/../b"})
        assert c.call("list")["streams"] == [] and c.call("runs")["runs"] == []
        c.close()
    finally:
        assert d.stop() == 0


def many_streams_over_runs_are_each_found():
    d = Daemon()
    try:
        c = d.client()
        names = [(f"run{i % 3}", f"layers/{i}") for i in range(300)]
        for run, s in names:
            c.call("create", {"stream": s, "run": run, "dim": 1 + len(s) % 5, "window": 0,
                              "topk": 0})
        for run, s in names:
            assert c.call("info", {"stream": s, "run": run})["dim"] == 1 + len(s) % 5
        for run, s in names[::2]:
            c.call("drop", {"stream": s, "run": run})
        for k, (run, s) in enumerate(names):
            if k % 2:
                assert c.call("info", {"stream": s, "run": run})["run"] == run
            else:
                expect("NO_SUCH_STREAM", c.call, "info", {"stream": s, "run": run})
        assert len(c.call("list")["streams"]) == 150
        assert [len(r["streams"]) for r in c.call("runs")["runs"]] == [50, 50, 50]
        c.close()
    finally:
        assert d.stop() == 0


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def both_runs_survive_a_restart():
    d = Daemon()
    X = np.random.default_rng(3).standard_normal((40, 3)).astype(np.float32)
    try:
        c = d.client()
        ingest(c, None, "emb", X)
        ingest(c, "r2", "emb", X[:25])
        c.call("snapshot")
        files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(d.dir, "streams",
                                                                             "*.ews")))
        assert f"{fnv1a64(b'emb'):016x}.ews" in files, files  # the pre-runs name, unchanged
        assert f"{fnv1a64(b'r2' + bytes(1) + b'emb'):016x}.ews" in files, files
        c.close()
    finally:
        assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        assert c.call("info", {"stream": "emb"})["count"] == 40
        assert c.call("info", {"stream": "emb", "run": "r2"})["count"] == 25
        assert [(r["run"], r["streams"]) for r in c.call("runs")["runs"]] == \
            [("default", ["emb"]), ("r2", ["emb"])]
        c.close()
    finally:
        assert d2.stop() == 0


def dropping_a_run_drops_its_streams_their_history_and_snapshots():
    """Issue 25 item 8: drop {run} deletes every stream of the run (their history and snapshot
    files with them) and nothing of another run; a run with no streams is NO_SUCH_STREAM with a
    sentence, and drop with neither field is BAD_REQUEST; the CLI's `--run R drop` does it."""
    import subprocess
    d = Daemon()
    try:
        c = d.client()
        X = np.random.default_rng(3).standard_normal((8, 4))
        for run in ("a", "b"):
            for name in ("L0", "L1", "L2"):
                c.call("create", {"run": run, "stream": name, "dim": 4,
                                  "eval": [{"metric": "trace"}]})
                c.call("ingest", {"run": run, "stream": name, "rows": X.tolist(), "step": 0,
                                  "end_step": True})
        c.call("snapshot")
        files = len(glob.glob(os.path.join(d.dir, "streams", "*.ews")))
        assert files == 6, files
        r = c.call("drop", {"run": "a"})
        assert r == {"run": "a", "dropped": True, "streams": 3}, r
        left = sorted((s["run"], s["stream"]) for s in c.call("list")["streams"])
        assert left == [("b", "L0"), ("b", "L1"), ("b", "L2")], left
        assert c.call("history", {"run": "a"})["series"] == []
        assert c.call("history", {"run": "b", "metrics": "trace"})["series"], "b's history kept"
        assert [x["run"] for x in c.call("runs")["runs"]] == ["b"]
        c.call("snapshot")
        assert len(glob.glob(os.path.join(d.dir, "streams", "*.ews"))) == 3
        e = expect("NO_SUCH_STREAM", c.call, "drop", {"run": "a"})
        assert e.message == "run 'a' has no streams ('runs' lists the runs)", e.message
        e = expect("BAD_REQUEST", c.call, "drop", {})
        assert "'run' alone to drop every stream of that run" in e.message, e.message
        cli = os.path.join(os.path.dirname(DAEMON), "..", "clients", "c", "eigenwatch")
        p = subprocess.run([cli, "--address", d.unix, "--run", "b", "drop"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout == "dropped run b: 3 streams\n", (p.stdout,
                                                                              p.stderr)
        assert c.call("list")["streams"] == []
        c.close()
    finally:
        assert d.stop() == 0


def a_runs_end_is_kept_across_a_restart_and_cleared_by_rows():
    """Issue 25 item 8: `flush {end: true}` marks the stream ended (info.steps.ended, the
    eigenwatch_stream_ended gauge); the mark is saved with the stream, and rows clear it."""
    d = Daemon()
    c = d.client()
    ingest(c, "r", "s", np.ones((3, 4)))
    assert "ended" not in c.call("info", {"run": "r", "stream": "s"})["steps"]
    assert c.call("flush", {"run": "r", "stream": "s", "end": True})["ended"] is True
    c.close()
    assert d.stop() == 0
    d2 = Daemon(state_dir=d.dir)
    try:
        c = d2.client()
        assert c.call("info", {"run": "r", "stream": "s"})["steps"]["ended"] is True
        ingest(c, "r", "s", np.ones((3, 4)))
        assert "ended" not in c.call("info", {"run": "r", "stream": "s"})["steps"]
        expect("BAD_PARAM", c.call, "flush", {"run": "r", "stream": "s", "end": "yes"})
        c.close()
    finally:
        assert d2.stop() == 0


def main():
    t = Tap()
    t.case("same_name_in_two_runs_is_two_streams", same_name_in_two_runs_is_two_streams)
    t.case("bad_run_names_create_nothing", bad_run_names_create_nothing)
    t.case("many_streams_over_runs_are_each_found", many_streams_over_runs_are_each_found)
    t.case("both_runs_survive_a_restart", both_runs_survive_a_restart)
    t.case("a_runs_end_is_kept_across_a_restart_and_cleared_by_rows",
           a_runs_end_is_kept_across_a_restart_and_cleared_by_rows)
    t.case("dropping_a_run_drops_its_streams_their_history_and_snapshots",
           dropping_a_run_drops_its_streams_their_history_and_snapshots)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
