"""The `eigenwatch` CLI against a real daemon: every command's --help, --json output parsed back,
.npy ingest of all four dtypes (and .csv) equal to numpy's reading of the same file, watch, and
the documented exit codes for a missing daemon, an unknown stream, bad usage and a bad file;
and against three daemons at once (an address list): each stream on its placement, the answers
about many streams merged, one daemon down failing the command."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "numeric"),
                os.path.join(HERE, "..", "..", "clients", "python")]
import reference as ref  # noqa: E402
from bf16 import bf16_words  # noqa: E402
from eigenwatch.placement import place  # noqa: E402
from harness import Daemon  # noqa: E402
from taplib import Tap, close  # noqa: E402

CLI = None
D = None
TMP = tempfile.mkdtemp(prefix="ew-cli-")


def run(*args, address=None, check=None):
    env = dict(os.environ, EIGENWATCH_ADDRESS=address or D.unix)
    p = subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=60)
    if check is not None:
        assert p.returncode == check, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def every_command_has_help():
    p = run("help", check=0)
    cmds = ["ping", "list", "runs", "info", "create", "drop", "reset", "stats", "query", "watch",
            "ingest", "snapshot", "export", "merge", "history", "metrics", "alerts"]
    for c in cmds:
        assert c in p.stdout
        h = run(c, "--help", check=0)
        assert h.stdout.startswith("usage: eigenwatch") and c in h.stdout, h.stdout
    assert "exit codes" in p.stdout


def version_names_this_program_and_its_protocol():
    """eigenwatch --version: this program's version (the daemon's, from the same build) and the
    protocol it speaks; it needs no daemon."""
    p = run("--version", address="unix:/nonexistent", check=0)
    ping = json.loads(run("--json", "ping", check=0).stdout)
    assert p.stdout == f"eigenwatch {ping['version']} (protocol {ping['protocol']})\n", p.stdout


def json_output_parses_back():
    ping = json.loads(run("--json", "ping", check=0).stdout)
    assert ping["pong"] is True and ping["protocol"] == 1
    cr = json.loads(run("create", "cli.a", "--dim", "4", "--window", "16", "--json", check=0).stdout)
    assert cr["created"] is True and cr["config"]["window"] == 16
    info = json.loads(run("--json", "info", "cli.a", check=0).stdout)
    assert info["dim"] == 4 and info["count"] == 0
    assert any(s["stream"] == "cli.a" for s in json.loads(run("--json", "list", check=0).stdout)["streams"])
    st = json.loads(run("--json", "stats", check=0).stdout)
    assert "connections" in st and "errors" in st
    assert json.loads(run("--json", "reset", "cli.a", check=0).stdout)["count"] == 0
    assert json.loads(run("--json", "drop", "cli.a", check=0).stdout)["dropped"] is True


def save_npy(name, arr):
    path = os.path.join(TMP, name)
    np.save(path, arr)
    return path


def npy_ingest_all_four_dtypes_equals_numpy():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1500, 12)) * np.linspace(1, 3, 12) + 4
    cases = [("f32", save_npy("a32.npy", X.astype(np.float32)), X.astype(np.float32), []),
             ("f64", save_npy("a64.npy", X), X, []),
             ("f16", save_npy("a16.npy", X.astype(np.float16)), X.astype(np.float16), [])]
    words, vals = bf16_words(X)
    cases.append(("bf16", save_npy("abf.npy", words), vals, ["--dtype", "bf16"]))  # raw words
    cases.append(("bf16-V2", save_npy("av2.npy", words.view("V2")), vals, []))  # '|V2' descr
    for name, path, seen, extra in cases:
        stream = f"cli.npy.{name}"
        out = json.loads(run("--json", "ingest", stream, path, "--batch", "400", *extra,
                             check=0).stdout)
        assert out["count"] == 1500, out
        back = np.load(path)  # numpy's reading of the same file
        V = (seen if name.startswith("bf16") else back).astype(np.float64)
        q = json.loads(run("--json", "query", stream, "entropy", "trace", "topk",
                           "--param", "k=3", check=0).stdout)
        want = ref.metrics(V, True)
        close(q["metrics"]["entropy"], want["entropy"], 1e-6, f"{name} entropy")
        close(q["metrics"]["trace"], want["trace"], 1e-6, f"{name} trace")
        assert np.abs(np.array(q["metrics"]["topk"]) - want["spectrum"][:3]).max() <= \
            1e-6 * want["spectrum"][0]


def query_with_string_parameters():
    """A kernel metric's string (enum) parameter through `--param kernel=cosine`: the answer
    equals the numpy statement; a kernel the table does not know exits as a BAD_PARAM."""
    import kernel_ref
    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    path = save_npy("k32.npy", X)
    run("create", "cli.kernel", "--dim", "8", "--window", "200", check=0)
    run("ingest", "cli.kernel", path, check=0)
    q = json.loads(run("--json", "query", "cli.kernel", "vendi_kernel", "--param", "kernel=cosine",
                       "--param", "q=2", check=0).stdout)
    want = kernel_ref.vendi_kernel(X.astype(np.float64), "cosine", None, 2.0)
    close(q["metrics"]["vendi_kernel"], want, 1e-9, "cosine vendi through the CLI")
    p = run("query", "cli.kernel", "vendi_kernel", "--param", "kernel=rbf")
    assert p.returncode != 0 and "gaussian" in p.stderr, (p.returncode, p.stderr)


def csv_ingest_and_table_output():
    path = os.path.join(TMP, "r.csv")
    with open(path, "w") as f:
        f.write("a,b,c\n1,2,3\n4, 5, 7\n0,-1,2.5\n")
    p = run("ingest", "cli.csv", path, check=0)
    assert "ingested 3 rows" in p.stdout and p.stderr == "", (p.stdout, p.stderr)  # no bar: piped
    q = run("query", "cli.csv", "trace", check=0).stdout
    V = np.array([[1, 2, 3], [4, 5, 7], [0, -1, 2.5]])
    assert "METRIC" in q and "trace" in q
    val = float(q.split("trace")[1].split()[0])
    close(val, np.trace(ref.matrix(V, True)), 1e-9, "csv trace")


def progress_bar_on_a_terminal():
    import pty
    master, slave = pty.openpty()
    path = save_npy("pb.npy", np.random.default_rng(2).standard_normal((3000, 8)).astype(np.float32))
    env = dict(os.environ, EIGENWATCH_ADDRESS=D.unix)
    p = subprocess.run([CLI, "ingest", "cli.pb", path, "--batch", "500"], stdout=subprocess.PIPE,
                       stderr=slave, env=env, timeout=60)
    os.close(slave)
    out = b""
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    os.close(master)
    text = out.decode()
    assert p.returncode == 0, text
    assert "3000/3000 rows" in text and "[####" in text and "100%" in text, repr(text[-300:])


def watch_draws_sparklines():
    run("ingest", "cli.w", save_npy("w.npy", np.random.default_rng(1).standard_normal((200, 6))),
        check=0)
    p = run("watch", "cli.w", "entropy", "erank", "--count", "3", "--interval", "0.05", check=0)
    assert p.stdout.count("entropy") == 3 and any(b in p.stdout for b in "▁▂▃▄▅▆▇█"), p.stdout


def exit_codes():
    p = run("ping", address=f"unix:{TMP}/no-daemon.sock", check=3)
    assert "cannot connect" in p.stderr
    p = run("info", "cli.nope", check=1)
    assert "NO_SUCH_STREAM" in p.stderr
    run("query", check=2)
    run("frobnicate", check=2)
    run("create", "x", check=2)
    bad = os.path.join(TMP, "bad.npy")
    open(bad, "wb").write(b"not numpy")
    p = run("ingest", "cli.bad", bad, check=4)
    assert "not a .npy" in p.stderr
    p = run("ingest", "cli.bad3", save_npy("i8.npy", np.zeros((3, 2), np.int8)), check=4)
    assert "not one of" in p.stderr
    run("ingest", "cli.dim", save_npy("d3.npy", np.zeros((2, 3), np.float32)), check=0)
    p = run("ingest", "cli.dim", save_npy("d4.npy", np.zeros((2, 4), np.float32)), check=1)
    assert "DIM_MISMATCH" in p.stderr


def export_and_merge_between_two_daemons():
    """One daemon per node, combined: export from two daemons, merge both into a third; the
    merged stream answers as numpy on the union (and export refuses an unknown stream)."""
    others = [Daemon(), Daemon()]
    try:
        parts = [np.random.default_rng(7 + i).standard_normal((n, 12)).astype(np.float32)
                 for i, n in enumerate([400, 250])]
        files = []
        for i, (d, X) in enumerate(zip(others, parts)):
            run("ingest", "node.h", save_npy(f"part{i}.npy", X), address=d.unix, check=0)
            path = os.path.join(TMP, f"node{i}.ewstate")
            p = run("export", "node.h", path, address=d.unix, check=0)
            assert f"({len(X)} rows" in p.stdout and path in p.stdout, p.stdout
            files.append(path)
        p = run("merge", "all.h", files[0], check=0)
        assert "merged 400 rows" in p.stdout and "(created)" in p.stdout, p.stdout
        m = json.loads(run("--json", "merge", "all.h", files[1], check=0).stdout)
        assert m == {"stream": "all.h", "merged": 250, "count": 650, "created": False}, m
        q = json.loads(run("--json", "query", "all.h", "entropy", "--fresh", check=0).stdout)
        V = np.vstack(parts).astype(np.float64)
        close(q["metrics"]["entropy"], ref.entropy_p(ref.eig(ref.matrix(V, True))), 1e-6,
              "entropy of the merged stream")
        assert "bytes" in json.loads(run("--json", "snapshot", check=0).stdout)
        p = run("export", "no.such", os.path.join(TMP, "x"), check=1)
        assert "NO_SUCH_STREAM" in p.stderr and not os.path.exists(os.path.join(TMP, "x"))
        p = run("merge", "all.h", os.path.join(TMP, "missing.ewstate"), check=4)
        assert "cannot read" in p.stderr
        bad = os.path.join(TMP, "bad.ewstate")
        open(bad, "wb").write(open(files[0], "rb").read()[:-3])
        p = run("merge", "all.h", bad, check=1)
        assert "BAD_STATE" in p.stderr
        run("export", "all.h", check=2)
    finally:
        for d in others:
            d.stop()


def run_option_names_the_run_everywhere():
    """--run RUN: create, ingest, query, info, list, export/merge, drop all address (RUN, STREAM);
    the same name in the default run is another stream; `runs` lists both runs."""
    X = np.random.default_rng(8).standard_normal((30, 5)).astype(np.float32)
    Y = np.random.default_rng(9).standard_normal((12, 5)).astype(np.float32)
    run("--run", "exp.1", "create", "emb", "--dim", "5", check=0)
    run("--run", "exp.1", "ingest", "emb", save_npy("x.npy", X), check=0)
    run("ingest", "emb", save_npy("y.npy", Y), check=0)  # the default run's "emb"
    q = json.loads(run("--run", "exp.1", "--json", "query", "emb", "trace", check=0).stdout)
    close(q["metrics"]["trace"], float(np.trace(np.cov(X.astype(np.float64).T, bias=True))), 1e-6,
          "trace in exp.1")
    assert q["count"] == 30
    q = json.loads(run("--json", "query", "emb", "trace", check=0).stdout)
    assert q["count"] == 12
    info = json.loads(run("--run", "exp.1", "--json", "info", "emb", check=0).stdout)
    assert info["run"] == "exp.1" and info["count"] == 30, info
    ls = json.loads(run("--run", "exp.1", "--json", "list", check=0).stdout)["streams"]
    assert [(s["run"], s["stream"]) for s in ls] == [("exp.1", "emb")], ls
    table = run("list", check=0).stdout
    assert "exp.1" in table and "default" in table, table
    runs = run("runs", check=0).stdout.splitlines()
    assert runs[0].split()[:2] == ["RUN", "STREAMS"] and any(
        ln.split()[:2] == ["exp.1", "1"] for ln in runs), runs
    assert [r["run"] for r in json.loads(run("--json", "runs", check=0).stdout)["runs"]] == \
        ["default", "exp.1"]
    path = os.path.join(TMP, "emb.state")
    run("--run", "exp.1", "export", "emb", path, check=0)
    m = json.loads(run("--run", "exp.2", "--json", "merge", "emb", path, check=0).stdout)
    assert m["created"] is True and m["count"] == 30, m
    e = run("--run", "nope", "info", "emb", check=1)
    assert "in run 'nope'" in e.stderr, e.stderr
    e = run("--run", "bad name", "info", "emb", check=1)
    assert "run name" in e.stderr, e.stderr
    for r_ in ("exp.1", "exp.2"):
        run("--run", r_, "drop", "emb", check=0)
    run("drop", "emb", check=0)


def address_lists_are_trimmed_and_deduplicated():
    """An address list with spaces and repeats is the one daemon it names, answering exactly as
    that address alone does; a list without an address is a usage error."""
    alone = run("ping", check=0).stdout
    assert run("ping", address=f" {D.unix} ,{D.unix}, ", check=0).stdout == alone
    assert run("--address", f"{D.unix},{D.unix}", "ping", check=0).stdout == alone
    p = run("--address", ",", "ping", check=2)
    assert "bad address" in p.stderr, p.stderr


def own_list(address):
    ls = json.loads(run("--json", "list", address=address, check=0).stdout)["streams"]
    return [(x["run"], x["stream"], x["count"]) for x in ls]


def several_daemons_place_streams_and_merge_answers():
    """Three daemons on loopback, one address list ($EIGENWATCH_ADDRESS and --address): 12
    streams in two runs created and fed through the CLI land on the daemon
    eigenwatch.placement.place names (each daemon's own list says so); info and query reach a
    stream's daemon; list, runs and alerts show every stream and rule once, sorted, with the
    counts, steps and events of all daemons (tables and --json); stats by address; drop --run
    on every daemon; one daemon stopped: list exits 3 naming it, a stream elsewhere still
    answers."""
    ds = [Daemon() for _ in range(3)]
    addrs = [d.tcp for d in ds]
    spec = ",".join(addrs)
    try:
        # two streams of each run on each daemon, whatever ports the daemons got
        streams, per = [], {}
        for i in range(1000):
            for r_ in ("fa", "fb"):
                owner = place(r_, f"m.{i}", addrs)
                if per.get((r_, owner), 0) < 2:
                    per[(r_, owner)] = per.get((r_, owner), 0) + 1
                    streams.append((r_, f"m.{i}"))
            if len(streams) == 12:
                break
        assert len(streams) == 12, streams
        on = {a: [k for k in streams if place(*k, addrs) == a] for a in addrs}
        mine = {(a, r_): [k for k in on[a] if k[0] == r_] for a in addrs for r_ in ("fa", "fb")}
        for r_, s in streams:
            run("--run", r_, "create", s, "--dim", "4", address=spec, check=0)
        rows = {}
        rng = np.random.default_rng(11)
        for j, a in enumerate(addrs):  # through the CLI: one stream of each run per daemon
            for k in (mine[a, "fa"][0], mine[a, "fb"][0]):
                rows[k] = 5 + 3 * j + (k[0] == "fb")
                X = rng.standard_normal((rows[k], 4)).astype(np.float32)
                run("--run", k[0], "ingest", k[1], save_npy(f"fan.{k[0]}.{k[1]}.npy", X),
                    address=spec, check=0)
        for a in addrs:  # each daemon holds what placement gives it, no more
            assert sorted(x[:2] for x in own_list(a)) == sorted(on[a]), (a, own_list(a))
        for k in streams:  # info and query on the stream's daemon
            info = json.loads(run("--run", k[0], "--json", "info", k[1], address=spec,
                                  check=0).stdout)
            assert (info["run"], info["stream"], info["count"]) == (*k, rows.get(k, 0)), info
            p = run("history", f"{k[0]}/{k[1]}", address=spec, check=0)  # RUN/STREAM's run
            assert "no points" in p.stderr, p.stderr
        p = run("info", "no.such", address=spec, check=1)  # a refusal names its daemon
        assert p.stderr.startswith(f"eigenwatch: {place(None, 'no.such', addrs)}: NO_SUCH_STREAM"), \
            p.stderr
        for k, n in rows.items():
            q = json.loads(run("--run", k[0], "--json", "query", k[1], "trace", address=spec,
                               check=0).stdout)
            assert q["count"] == n and q["stream"] == k[1], q
        # steps in run fb on two daemons: runs merges first_step (1, from one) and last_step (5)
        fb = [mine[a, "fb"][1] for a in addrs[:2]]
        for k, steps in zip(fb, ([3, 4, 5], [1, 2])):
            c = ds[addrs.index(place(*k, addrs))].client()
            for st in steps:
                X = rng.standard_normal((6, 4)).astype(np.float32)
                c.call("ingest", {"run": k[0], "stream": k[1], "step": st, "end_step": True,
                                  "dtype": "f32", "shape": [6, 4], "data": X.tobytes()})
            c.call("flush", {"run": k[0], "stream": k[1]})
            c.close()
        # list: every stream once, by (run, stream), each daemon's count
        want = sorted(x for a in addrs for x in own_list(a))
        assert [x[:2] for x in want] == sorted(streams)
        ls = json.loads(run("--json", "list", address=spec, check=0).stdout)
        assert list(ls) == ["streams"], ls
        assert [(x["run"], x["stream"], x["count"]) for x in ls["streams"]] == want, ls
        assert all(x[2] == rows[x[:2]] for x in want if x[:2] in rows), want
        table = run("--address", spec, "list", address="unix:/nonexistent", check=0).stdout
        body = [ln.split() for ln in table.splitlines()[1:]]
        assert [(b[0], b[1], int(b[3])) for b in body] == want, table
        # runs: one row per run, its streams' union, steps and activity over the daemons
        own = [{r["run"]: r for r in json.loads(run("--json", "runs", address=a,
                                                    check=0).stdout)["runs"]} for a in addrs]
        runs = json.loads(run("--json", "runs", address=spec, check=0).stdout)["runs"]
        assert [r["run"] for r in runs] == ["fa", "fb"], runs
        for r in runs:
            assert r["streams"] == sorted(s for r_, s in streams if r_ == r["run"]), r
            assert r["last_activity"] == max(o[r["run"]]["last_activity"] for o in own), r
        assert "first_step" not in runs[0] and (runs[1]["first_step"], runs[1]["last_step"]) == \
            (1, 5), runs
        table = [ln.split() for ln in run("runs", address=spec, check=0).stdout.splitlines()]
        assert table[1:] == [["fa", "6", "-", "-"], ["fb", "6", "1", "5"]], table
        # alerts: rules on two streams of two daemons, both fired (a NaN batch); events by time
        x, y = mine[addrs[2], "fa"][0], mine[addrs[1], "fb"][0]
        for k, rules in ((x, [{"name": "quiet", "when": "stale", "value": 3600},
                              {"name": "nan", "when": "non_finite"}]),
                         (y, [{"name": "nan", "when": "non_finite"}])):
            c = ds[addrs.index(place(*k, addrs))].client()
            c.call("alert_set", {"run": k[0], "stream": k[1], "rules": rules})
            c.close()
        nan = save_npy("fan.nan.npy", np.full((1, 4), np.nan, np.float32))
        for k in (y, x):
            p = run("--run", k[0], "ingest", k[1], nan, address=spec, check=1)
            assert "NON_FINITE" in p.stderr, p.stderr
        al = json.loads(run("--json", "alerts", address=spec, check=0).stdout)
        assert list(al) == ["alerts"], al
        assert [(a["run"], a["stream"], a["rule"], a["state"]) for a in al["alerts"]] == [
            (*x, "nan", "firing"), (*x, "quiet", "ok"), (*y, "nan", "firing")], al
        table = run("alerts", address=spec, check=0).stdout.splitlines()
        assert [ln.split()[:3] for ln in table[1:]] == [[*x, "nan"], [*x, "quiet"],
                                                        [*y, "nan"]], table
        ev = json.loads(run("--json", "alerts", "--events", "5", address=spec,
                            check=0).stdout)["events"]
        assert [(e["stream"], e["state"]) for e in ev] == [(y[1], "firing"), (x[1], "firing")]
        assert ev[0]["time"] <= ev[1]["time"], ev
        last = json.loads(run("--json", "alerts", "--events", "1", address=spec,
                              check=0).stdout)["events"]
        assert last == ev[1:], last
        one = json.loads(run("--run", "fb", "--json", "alerts", y[1], address=spec,
                             check=0).stdout)["alerts"]
        assert [(a["stream"], a["rule"]) for a in one] == [(y[1], "nan")], one
        # watch polls the run's streams on their daemons: one line per stream with rows
        out = run("--run", "fa", "--json", "watch", "m.*", "--metric", "trace", "--count", "1",
                  address=spec, check=0).stdout
        seen = sorted(json.loads(ln)["stream"] for ln in out.splitlines())
        assert seen == sorted(s for r_, s in rows if r_ == "fa"), out
        # by daemon: stats under each address; ping and snapshot from all
        st = json.loads(run("--json", "stats", address=spec, check=0).stdout)
        assert sorted(st) == sorted(addrs) and all("connections" in v for v in st.values()), st
        assert json.loads(run("--json", "ping", address=spec, check=0).stdout)["pong"] is True
        sn = json.loads(run("--json", "snapshot", address=spec, check=0).stdout)
        assert sorted(sn) == ["bytes", "seconds", "streams"] and sn["bytes"] > 0, sn
        p = run("--run", "fb", "drop", address=spec, check=0)
        assert p.stdout == "dropped run fb: 6 streams\n", p.stdout
        assert [x[:2] for x in own_list(spec)] == sorted(k for k in streams if k[0] == "fa")
        run("--run", "fb", "drop", address=spec, check=1)  # no daemon has the run now
        # one daemon down: a command about every stream fails naming it
        ds[1].stop()
        p = run("list", address=spec, check=3)
        assert addrs[1] in p.stderr and p.stdout == "", (p.stdout, p.stderr)
        p = run("runs", address=spec, check=3)
        assert addrs[1] in p.stderr and p.stdout == "", (p.stdout, p.stderr)
        k = mine[addrs[2], "fa"][0]  # a stream elsewhere still answers; one there does not
        run("--run", k[0], "info", k[1], address=spec, check=0)
        k = mine[addrs[1], "fa"][0]
        p = run("--run", k[0], "info", k[1], address=spec, check=3)
        assert addrs[1] in p.stderr, p.stderr
    finally:
        for d in ds:
            d.stop()


def main():
    global CLI, D
    CLI = sys.argv[1]
    D = Daemon()
    t = Tap()
    try:
        t.case("every_command_has_help", every_command_has_help)
        t.case("version_names_this_program_and_its_protocol",
               version_names_this_program_and_its_protocol)
        t.case("json_output_parses_back", json_output_parses_back)
        t.case("npy_ingest_f32_f64_f16_bf16_equals_numpy", npy_ingest_all_four_dtypes_equals_numpy)
        t.case("query_with_string_parameters", query_with_string_parameters)
        t.case("csv_ingest_and_table_output_no_progress_bar_when_piped",
               csv_ingest_and_table_output)
        t.case("progress_bar_on_a_terminal", progress_bar_on_a_terminal)
        t.case("watch_draws_sparklines", watch_draws_sparklines)
        t.case("exit_codes_missing_daemon_unknown_stream_usage_bad_file", exit_codes)
        t.case("export_and_merge_between_two_daemons", export_and_merge_between_two_daemons)
        t.case("run_option_names_the_run_everywhere", run_option_names_the_run_everywhere)
        t.case("address_lists_are_trimmed_and_deduplicated",
               address_lists_are_trimmed_and_deduplicated)
        t.case("several_daemons_place_streams_and_merge_answers",
               several_daemons_place_streams_and_merge_answers)
    finally:
        D.stop()
    t.done()


if __name__ == "__main__":
    main()
