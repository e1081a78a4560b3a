"""Dashboards at scale (deploy/prometheus): three real daemons, a real Prometheus scraping them
by file discovery, a second one federating it, and VictoriaMetrics by remote write.

- Three daemons on loopback, each with --auth-token-file (so the configs' Bearer
  credentials_file is used as shipped), hold distinct (run, stream) keys: runs alpha and beta
  span all three; one stream is ended (flush end), one schedules entropy alone (the rules'
  exp(entropy) fallback), one has a daemon-side alert rule.
- The shipped files pass promtool: `check config` on each of the four configs (copied beside
  their rules/ and targets/, the token path and the three daemons' addresses replaced by this
  test's; the federated servers' and VictoriaMetrics' left as shipped), `check rules` on
  rules/eigenwatch.rules.yml, `test rules` on rules/eigenwatch.rules.test.yml (the collapse
  alert fires after a synthetic collapse and not before, the stall alert after 10 minutes of
  silence and not for an ended stream; the 30-minute and 10-minute windows are tested there
  only).
- Prometheus A runs prometheus-file-sd.yml with the test's intervals (scrape and evaluation
  1 s) and a test copy of the rules (offset 30m -> 20s, for 2m -> 2s: the only changes). Its
  targets file names two daemons at first; the third is added by renaming a new file over it,
  and A scrapes it with no reload (file_sd refresh on change; refresh_interval stays 5m). Every
  per-stream sample of the three daemons (each family with a run label: value and step by
  (run, stream, metric), the last-ingest and ended gauges, ...) is in A exactly once, with its
  daemon's address as instance and the daemon's value exactly (tolerance 0: %.17g in the
  exposition and Go's shortest round-trip format in the API both keep every bit). The recorded
  eigenwatch:erank equals each stream's erank (exp(entropy) on the entropy-only one, relative
  1e-15), eigenwatch:run_erank:min each run's minimum over the three daemons; every rule
  evaluates without error.
- A synthetic collapse: alpha/head (d 16, window_steps 1) is fed full-rank steps; no
  EigenwatchLayerCollapse alert while A evaluates the rules on them; then rank-1 steps (erank
  1): the alert is in A's /api/v1/alerts, pending then firing, for that stream only.
- Prometheus B runs prometheus-federate.yml (scrape 1 s) against A's /federate with
  honor_labels: the same samples exactly once, same values (tolerance 0), job and instance as
  in A (not exported_*), A's external label prometheus="node-a"; A's recorded series come
  along; nothing but eigenwatch series comes through match[].
- When victoria-metrics is installed, A also runs prometheus-remote-write.yml's remote_write
  (batch_send_deadline 1 s for the test) to a VictoriaMetrics on a free port: it holds the same
  samples exactly once (relative tolerance 2e-12: VictoriaMetrics 1.79 reads back a value such
  as 1.9336139120810336 as 1.933613912081, 13 significant digits, a relative difference below
  1e-12), and no series but eigenwatch ones (write_relabel_configs). Without
  it, that case is a TAP skip naming the missing binary.
Every process is stopped in a finally; the whole takes about 25 s."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import numpy as np
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
DEPLOY = os.path.join(ROOT, "deploy", "prometheus")
sys.path[:0] = [HERE, os.path.join(ROOT, "tests", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402
from test_history import settle  # noqa: E402
from test_http import free_port, get, parse  # noqa: E402

TOKEN = "prom-cluster-token-0123456789"
AUTH = {"Authorization": "Bearer " + TOKEN}
# The shipped configs name their daemons by RFC 2606 documentation hosts (*.example), which a
# user replaces with theirs (deploy/prometheus/README.md); the test checks the shipped files hold
# exactly these and runs them with its own daemons' addresses put in their place.
EXAMPLE_TARGETS = ["eigenwatch-a.example:7701", "eigenwatch-b.example:7701",
                   "eigenwatch-c.example:7701"]
NODES = ["prometheus-a.example:9090", "prometheus-b.example:9090", "prometheus-c.example:9090"]
SHIPPED_TOKEN = "/etc/prometheus/eigenwatch.token"
VM_URL = "http://victoria-metrics.example:8428/api/v1/write"
T0 = time.time()


def note(msg):
    print(f"# {time.time() - T0:5.1f}s {msg}", flush=True)


class Cluster:
    """What the cases share: the daemons, the processes, the temp dir and the streams fed."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ew-promc-")
        self.token = os.path.join(self.tmp, "token")
        with open(self.token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token, 0o600)
        self.daemons, self.procs = [], {}
        self.vm = shutil.which("victoria-metrics")

    def addr(self, i):
        return urllib.parse.urlparse(self.daemons[i].http).netloc

    def start(self, name, args, port):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.tmp)
        self.procs[name] = (p, log, port)
        return f"http://127.0.0.1:{port}"

    def log(self, name):
        with open(os.path.join(self.tmp, name + ".log")) as f:
            return f.read()[-3000:]

    def stop(self):
        """Stops what this test started (each process by its own handle), the last started
        first (Prometheus A before the VictoriaMetrics it writes to: it would wait for it);
        returns the daemons' exit codes."""
        for name, (p, log, _) in reversed(list(self.procs.items())):
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            log.close()
            del self.procs[name]
        codes = []
        while self.daemons:
            d = self.daemons.pop()
            try:
                codes.append(d.stop())
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait(10)
                codes.append("killed")
        return codes


# ---- configs derived from deploy/prometheus ---------------------------------------------------

def load(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return yaml.safe_load(f)


def lay_out(dst, rules_text=None):
    """A directory like deploy/prometheus's for a config copied into it: rules/ (or a test copy
    of the rules) and targets/."""
    os.makedirs(dst, exist_ok=True)
    shutil.copytree(os.path.join(DEPLOY, "rules"), os.path.join(dst, "rules"), dirs_exist_ok=True)
    shutil.copytree(os.path.join(DEPLOY, "targets"), os.path.join(dst, "targets"),
                    dirs_exist_ok=True)
    if rules_text is not None:
        with open(os.path.join(dst, "rules", "eigenwatch.rules.yml"), "w") as f:
            f.write(rules_text)


def write_targets(dst, addrs):
    """Writes targets/eigenwatch.json as a new file renamed over the old one (as the config's
    comment says to), from the shipped one with its addresses replaced."""
    with open(os.path.join(DEPLOY, "targets", "eigenwatch.json")) as f:
        groups = json.load(f)
    assert len(groups) == 1 and groups[0]["targets"] == EXAMPLE_TARGETS, groups
    groups[0]["targets"] = list(addrs)
    path = os.path.join(dst, "targets", "eigenwatch.json")
    with open(path + ".new", "w") as f:
        json.dump(groups, f)
    os.rename(path + ".new", path)


def eigenwatch_job(cfg, token):
    (job,) = cfg["scrape_configs"]
    assert job["job_name"] == "eigenwatch" and job["metrics_path"] == "/metrics", job
    assert job["authorization"]["credentials_file"] == SHIPPED_TOKEN, job
    job["authorization"]["credentials_file"] = token
    return job


def dump(cfg, path):
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def rules_for_a_live_run():
    """The shipped rules with the collapse alert's windows shortened for a live run: offset 30m
    -> 20s and for 2m -> 2s (each present exactly once); nothing else changes."""
    with open(os.path.join(DEPLOY, "rules", "eigenwatch.rules.yml")) as f:
        text = f.read()
    for old, new in (("offset 30m)", "offset 20s)"), ("for: 2m", "for: 2s")):
        assert text.count(old) == 1, (old, text.count(old))
        text = text.replace(old, new)
    return text


def promtool(*args):
    p = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"promtool {' '.join(args)}:\n{p.stdout}{p.stderr}"
    return p.stdout


# ---- the cases ---------------------------------------------------------------------------------

def shipped_files_pass_promtool(cl):
    base = os.path.join(cl.tmp, "check")
    lay_out(base)
    real = [cl.addr(i) for i in range(3)]
    write_targets(base, real)
    static = load("prometheus-static.yml")
    assert static["global"]["scrape_interval"] == "15s"
    (group,) = eigenwatch_job(static, cl.token)["static_configs"]
    assert group["targets"] == EXAMPLE_TARGETS, group
    group["targets"] = real
    filesd = load("prometheus-file-sd.yml")
    (sd,) = eigenwatch_job(filesd, cl.token)["file_sd_configs"]
    assert sd["files"] == ["targets/eigenwatch.json"], sd
    fed = load("prometheus-federate.yml")
    (job,) = fed["scrape_configs"]
    assert job["honor_labels"] is True and job["metrics_path"] == "/federate", job
    assert job["params"]["match[]"] == ['{__name__=~"eigenwatch[_:].+"}'], job
    assert "rule_files" not in fed
    rw = load("prometheus-remote-write.yml")
    eigenwatch_job(rw, cl.token)
    (w,) = rw["remote_write"]
    assert w["url"] == VM_URL and w["write_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "eigenwatch[_:].+", "action": "keep"}], w
    for name, cfg in (("static", static), ("file-sd", filesd), ("federate", fed),
                      ("remote-write", rw)):
        out = promtool("check", "config", dump(cfg, os.path.join(base, f"prometheus-{name}.yml")))
        assert "SUCCESS" in out, out
    out = promtool("check", "rules", os.path.join(DEPLOY, "rules", "eigenwatch.rules.yml"))
    assert "SUCCESS: 8 rules found" in out, out
    p = subprocess.run(["promtool", "test", "rules", "eigenwatch.rules.test.yml"],
                       cwd=os.path.join(DEPLOY, "rules"), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


def feed(c, run, stream, dim, scale, steps, first=0, rank=None, ev=None, rules=None, seed=0):
    if first == 0:
        p = {"run": run, "stream": stream, "dim": dim, "window_steps": 1}
        if ev is not None:
            p["eval"] = ev
        if rules is not None:
            p["rules"] = rules
        c.call("create", p)
    rng = np.random.default_rng(seed + first)
    for s in range(first, first + steps):
        Z = rng.standard_normal((64, dim))
        X = (Z[:, :1] @ rng.standard_normal((1, dim)) if rank == 1 else
             Z * np.linspace(1, scale, dim)).astype(np.float32)
        c.call("ingest", {"run": run, "stream": stream, "step": s, "end_step": True,
                          "dtype": "f32", "shape": [64, dim], "data": X.tobytes()})
        settle(c, stream, run)


def three_daemons_hold_distinct_streams(cl):
    for _ in range(3):
        cl.daemons.append(Daemon(extra=["--auth-token-file", cl.token]))
    c = [d.client() for d in cl.daemons]
    for i in range(3):
        feed(c[i], "alpha", f"enc/layer.{i}", 8, 2 + i, 5, seed=i)
        feed(c[i], "beta", f"enc/layer.{i}", 8, 4 + 3 * i, 4, seed=10 + i)
    feed(c[0], "alpha", "head", 16, 1.5, 4, seed=20,
         rules=[{"name": "collapse", "metric": "erank", "when": "below", "value": 1.5}])
    feed(c[1], "gamma", "tail", 8, 1, 3, seed=30)
    c[1].call("flush", {"run": "gamma", "stream": "tail", "end": True})
    feed(c[2], "beta", "proj", 8, 6, 3, ev=[{"metric": "entropy"}], seed=40)
    cl.clients = c
    keys = [{(s["run"], s["stream"]) for s in ci.call("list")["streams"]} for ci in c]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 9, keys
    st, _, _ = get(cl.daemons[0].http + "metrics")
    assert st == 401, st  # the token is needed: Prometheus scrapes with the shipped credentials


def api(base, path, **params):
    st, body, _ = get(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    assert st == 200, (st, body[:500])
    out = json.loads(body)
    assert out["status"] == "success", out
    return out["data"]


def wait(what, fn, timeout):
    """fn() until it returns something true; its last exception (or None) if time runs out."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            got = fn()
            if got:
                return got
            last = None
        except (AssertionError, OSError, KeyError, ValueError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s: {last!r}")


def ready(cl, name, base):
    p = cl.procs[name][0]

    def up():
        assert p.poll() is None, f"{name} exited:\n{cl.log(name)}"
        return get(base + "/-/ready")[0] == 200
    wait(f"{name} ready", up, 30)


def prometheus_a_finds_the_daemons_by_file_sd(cl):
    cfg = load("prometheus-file-sd.yml")
    cfg["global"]["scrape_interval"] = cfg["global"]["evaluation_interval"] = "1s"
    eigenwatch_job(cfg, cl.token)
    if cl.vm:
        port = free_port()
        cl.vm_url = cl.start("vm", [cl.vm, f"-httpListenAddr=127.0.0.1:{port}",
                                    f"-storageDataPath={cl.tmp}/vm", "-search.latencyOffset=0s",
                                    "-search.disableCache", "-loggerLevel=ERROR"], port)
        (w,) = load("prometheus-remote-write.yml")["remote_write"]
        w["url"] = w["url"].replace("victoria-metrics.example:8428", f"127.0.0.1:{port}")
        w["queue_config"] = {"batch_send_deadline": "1s"}
        cfg["remote_write"] = [w]
    base = os.path.join(cl.tmp, "a")
    lay_out(base, rules_for_a_live_run())
    write_targets(base, [cl.addr(0), cl.addr(1)])
    path = dump(cfg, os.path.join(base, "prometheus.yml"))
    promtool("check", "config", path)
    port = free_port()
    cl.a = cl.start("prom-a", ["prometheus", f"--config.file={path}",
                               f"--storage.tsdb.path={base}/data",
                               f"--web.listen-address=127.0.0.1:{port}"], port)
    if cl.vm:
        ready(cl, "vm", cl.vm_url)
    ready(cl, "prom-a", cl.a)

    def targets(n):
        act = api(cl.a, "targets")["activeTargets"]
        up = sorted(t["labels"]["instance"] for t in act if t["health"] == "up")
        return up if len(act) == n and len(up) == n else None
    assert wait("two targets up", lambda: targets(2), 20) == sorted([cl.addr(0), cl.addr(1)])
    note("Prometheus A scrapes the two daemons of the first targets file")
    write_targets(base, [cl.addr(0), cl.addr(1), cl.addr(2)])
    t = time.time()
    got = wait("the third target up after the file changed", lambda: targets(3), 20)
    assert got == sorted(cl.addr(i) for i in range(3)), got
    note(f"the third daemon, added to the targets file, is up in {time.time() - t:.1f} s "
         "(no reload)")


def alerts(base, name="EigenwatchLayerCollapse"):
    return [a for a in api(base, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def the_collapse_alert_fires_after_the_collapse_only(cl):
    def healthy():
        r = api(cl.a, "query", query='eigenwatch:erank{run="alpha",stream="head"}')["result"]
        return r and float(r[0]["value"][1]) > 10
    wait("head's erank recorded", healthy, 20)
    t = time.time()
    while time.time() < t + 3:  # three evaluations of the rules on the healthy values
        assert alerts(cl.a) == [], alerts(cl.a)
        time.sleep(0.25)
    note("no collapse alert in 3 s of evaluations before the collapse")
    feed(cl.clients[0], "alpha", "head", 16, 1.5, 2, first=4, rank=1, seed=20)
    t = time.time()
    m = parse(get(cl.daemons[0].http + "metrics", AUTH)[1])
    erank = m["eigenwatch_value", frozenset({("run", "alpha"), ("stream", "head"),
                                             ("metric", "erank")})]
    assert erank < 1.01, erank  # rank-1 rows
    pending = wait("the collapse alert", lambda: alerts(cl.a), 20)
    note(f"EigenwatchLayerCollapse {pending[0]['state']} {time.time() - t:.1f} s after the "
         "rank-1 steps")
    firing = wait("the alert firing", lambda: [a for a in alerts(cl.a) if a["state"] == "firing"],
                  20)
    note(f"EigenwatchLayerCollapse firing {time.time() - t:.1f} s after the rank-1 steps")
    (a,) = firing
    lab = a["labels"]
    assert (lab["run"], lab["stream"], lab["instance"], lab["job"]) == (
        "alpha", "head", cl.addr(0), "eigenwatch"), lab
    assert float(a["value"]) == erank, (a["value"], erank)
    assert a["annotations"]["summary"].startswith("Layer head of run alpha collapsed"), a
    assert alerts(cl.a) == firing, alerts(cl.a)  # no other stream
    for name in ("EigenwatchStreamStalled", "EigenwatchDaemonDown"):
        assert alerts(cl.a, name) == [], alerts(cl.a, name)


def daemon_samples(cl):
    """{(family, labels without job/instance): (value, instance)}: every per-stream sample (a
    family with a run label) of the three daemons; a key on two daemons is a failure."""
    out = {}
    for i, d in enumerate(cl.daemons):
        st, text, _ = get(d.http + "metrics", AUTH)
        assert st == 200, st
        for (name, labels), v in parse(text).items():
            if any(k == "run" for k, _ in labels):
                assert (name, labels) not in out, (name, labels)
                out[name, labels] = (v, cl.addr(i))
    return out


def store_samples(base, query='{__name__=~"eigenwatch_.+",run!=""}'):
    """{(name, labels without job/instance/prometheus): [(value, labels)]} from an instant query."""
    got = {}
    for r in api(base, "query", query=query)["result"]:
        lab = dict(r["metric"])
        name = lab.pop("__name__")
        rest = {k: v for k, v in lab.items() if k not in ("job", "instance", "prometheus")}
        got.setdefault((name, frozenset(rest.items())), []).append((float(r["value"][1]), lab))
    return got


def same(v, w, rel):
    return v == w or (math.isnan(v) and math.isnan(w)) or abs(v - w) <= rel * abs(w)


def compare(cl, base, rel, ext=None):
    """Every daemon sample exactly once in the store at `base`, with its daemon's instance, job
    eigenwatch (and external label prometheus=ext), value within rel; waits for the store to
    catch up. Returns the largest relative difference seen."""
    want = daemon_samples(cl)
    assert len(want) > 100, len(want)

    def check():
        got = store_samples(base)
        missing = set(want) - set(got)
        extra = set(got) - set(want)
        assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
        worst = 0.0
        for k, (v, inst) in want.items():
            assert len(got[k]) == 1, (k, got[k])
            g, lab = got[k][0]
            assert lab["instance"] == inst and lab["job"] == "eigenwatch", (k, lab)
            assert ext is None or lab.get("prometheus") == ext, (k, lab)
            assert "exported_job" not in lab and "exported_instance" not in lab, lab
            assert same(g, v, rel), (k, g, v)
            if g != v:
                worst = max(worst, abs(g - v) / abs(v))
        return [worst]
    worst = wait(f"{base} holds the daemons' samples", check, 25)[0]
    return want, worst


def prometheus_a_holds_each_sample_once_with_the_daemons_value(cl):
    want, worst = compare(cl, cl.a, 0.0)
    note(f"A: {len(want)} per-stream samples of 3 daemons, each once, values equal "
         f"(max rel diff {worst:g})")
    # the recorded series: a stream's erank (exp(entropy) on beta/proj), the run's minimum
    erank = {}
    for (name, labels), (v, inst) in want.items():
        lab = dict(labels)
        if name == "eigenwatch_value" and lab["metric"] == "erank":
            erank[lab["run"], lab["stream"]] = (v, inst)
    ent = want["eigenwatch_value", frozenset({("run", "beta"), ("stream", "proj"),
                                              ("metric", "entropy")})][0]
    erank["beta", "proj"] = (math.exp(ent), cl.addr(2))
    assert len(erank) == 9, sorted(erank)
    rec = wait("eigenwatch:erank", lambda: (
        lambda r: r if len(r) == 9 else None)(api(cl.a, "query", query="eigenwatch:erank")["result"]),
        10)
    for r in rec:
        lab = r["metric"]
        v, inst = erank[lab["run"], lab["stream"]]
        assert lab["instance"] == inst and "metric" not in lab, lab
        assert same(float(r["value"][1]), v, 1e-15), (lab, r["value"], v)
    mins = {r["metric"]["run"]: float(r["value"][1])
            for r in api(cl.a, "query", query="eigenwatch:run_erank:min")["result"]}
    want_min = {}
    for (run, _), (v, _) in erank.items():
        want_min[run] = min(v, want_min.get(run, math.inf))
    assert mins.keys() == want_min.keys(), (mins, want_min)
    for run in mins:
        assert same(mins[run], want_min[run], 1e-15), (run, mins[run], want_min[run])
    rows = api(cl.a, "query", query="eigenwatch:stream_rows:rate5m")["result"]
    assert len(rows) == 9, rows
    for g in api(cl.a, "rules")["groups"]:
        for r in g["rules"]:
            assert r["health"] == "ok", (g["name"], r.get("name"), r.get("lastError"))
    note(f"A: eigenwatch:erank of 9 streams, eigenwatch:run_erank:min {mins}; every rule ok")


def prometheus_b_federates_a_with_honor_labels(cl):
    cfg = load("prometheus-federate.yml")
    cfg["global"]["scrape_interval"] = cfg["global"]["evaluation_interval"] = "1s"
    (job,) = cfg["scrape_configs"]
    (group,) = job["static_configs"]
    assert group["targets"] == NODES, group
    group["targets"] = [urllib.parse.urlparse(cl.a).netloc]
    base = os.path.join(cl.tmp, "b")
    os.makedirs(base)
    path = dump(cfg, os.path.join(base, "prometheus.yml"))
    promtool("check", "config", path)
    port = free_port()
    cl.b = cl.start("prom-b", ["prometheus", f"--config.file={path}",
                               f"--storage.tsdb.path={base}/data",
                               f"--web.listen-address=127.0.0.1:{port}"], port)
    ready(cl, "prom-b", cl.b)
    t = time.time()
    want, worst = compare(cl, cl.b, 0.0, ext="node-a")
    note(f"B (federating A): the {len(want)} samples, each once, values equal (max rel diff "
         f"{worst:g}), {time.time() - t:.1f} s after B started")
    rec = api(cl.b, "query", query="eigenwatch:erank")["result"]
    assert len(rec) == 9 and all(r["metric"]["prometheus"] == "node-a" for r in rec), rec
    names = {r["metric"]["__name__"] for r in api(
        cl.b, "query", query='count by (__name__) ({prometheus="node-a"})')["result"]}
    assert names and all(n.startswith(("eigenwatch_", "eigenwatch:")) for n in names), names
    assert "up" not in names and "ALERTS" not in names, names


def victoria_metrics_holds_the_same_series(cl):
    t = time.time()
    want, worst = compare(cl, cl.vm_url, 2e-12, ext="node-a")
    note(f"VictoriaMetrics: the {len(want)} samples, each once (max rel diff {worst:.3g}), "
         f"{time.time() - t:.1f} s")
    names = api(cl.vm_url, "label/__name__/values")
    assert "eigenwatch:erank" in names and "eigenwatch_value" in names, names
    assert all(n.startswith(("eigenwatch_", "eigenwatch:")) for n in names), names


def everything_stops(cl):
    codes = cl.stop()
    assert codes == [0, 0, 0], codes


def main():
    t = Tap()
    cl = Cluster()
    try:
        t.case("three_daemons_hold_distinct_streams", three_daemons_hold_distinct_streams, cl)
        note("three daemons fed")
        t.case("the_shipped_files_pass_promtool", shipped_files_pass_promtool, cl)
        note("promtool check config x4, check rules, test rules")
        t.case("prometheus_a_finds_the_daemons_by_file_sd",
               prometheus_a_finds_the_daemons_by_file_sd, cl)
        t.case("the_collapse_alert_fires_after_the_collapse_only",
               the_collapse_alert_fires_after_the_collapse_only, cl)
        t.case("prometheus_a_holds_each_sample_once_with_the_daemons_value",
               prometheus_a_holds_each_sample_once_with_the_daemons_value, cl)
        t.case("prometheus_b_federates_a_with_honor_labels",
               prometheus_b_federates_a_with_honor_labels, cl)
        if cl.vm:
            t.case("victoria_metrics_holds_the_same_series", victoria_metrics_holds_the_same_series,
                   cl)
        else:
            t.n += 1
            print(f"ok {t.n} - victoria_metrics_holds_the_same_series # SKIP victoria-metrics is "
                  "not installed (Debian package victoria-metrics)", flush=True)
        t.case("everything_stops", everything_stops, cl)
    finally:
        cl.stop()
        shutil.rmtree(cl.tmp, ignore_errors=True)
    note("done")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
