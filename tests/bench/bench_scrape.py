#!/usr/bin/python3
"""GET /metrics benchmark: a daemon holding many streams, each with an eval list and a rule,
evaluated, then scraped over one keep-alive HTTP connection. Prints the scrape's time per stream
when nothing changed since the last scrape (the lines of every stream kept) and right after every
stream was evaluated again (every stream's lines made anew), beside the same figures for another
build (--before: e.g. main before the per-stream cache) and their ratio. Times are shown, never
asserted.

  /usr/bin/python3 tests/bench/bench_scrape.py [--build DIR] [--before DIR] [--streams N]
                                               [--scrapes N]
"""
import argparse
import http.client
import os
import statistics
import sys
import time
import urllib.parse

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

DIM, ROWS = 8, 16


def evaluations(c):
    return c.call("stats")["evaluations"]


def evaluate_all(c, n, step, X, want):
    """Ingests one step into every stream and waits until `want` evaluations are done."""
    for i in range(n):
        c.notify("ingest", {"run": "bench", "stream": f"s{i:05d}", "step": step, "end_step": True,
                            "dtype": "f32", "shape": [ROWS, DIM], "data": X[i].tobytes()})
    c.call("ping")
    deadline = time.time() + 300
    while evaluations(c) < want:
        if time.time() > deadline:
            raise RuntimeError(f"only {evaluations(c)} of {want} evaluations after 300 s")
        time.sleep(0.05)


def scrape(conn):
    t0 = time.perf_counter()
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    assert r.status == 200, r.status
    return dt, body


def measure(binary, n, scrapes, rounds=5):
    harness.DAEMON = binary
    d = harness.Daemon(config=f"max_streams = {max(1024, n + 16)}\n")
    c = d.client()
    try:
        for i in range(n):
            c.call("create", {"run": "bench", "stream": f"s{i:05d}", "dim": DIM, "window_steps": 1,
                              "eval": [{"metric": "erank"}, {"metric": "entropy"}],
                              "rules": [{"name": "collapse", "metric": "erank", "when": "below",
                                         "value": 1.5}]})
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, ROWS, DIM)).astype(np.float32)
        evaluate_all(c, n, 0, X, n)
        u = urllib.parse.urlparse(d.http)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        for _ in range(3):  # warm up: every stream's lines are made here
            _, body = scrape(conn)
        steady = sorted(scrape(conn)[0] for _ in range(scrapes))
        fresh = []
        for r in range(rounds):  # every stream evaluated again: a scrape that makes every line
            evaluate_all(c, n, 1 + r, X, n * (2 + r))
            time.sleep(0.5)  # the points' history writes (an I/O thread) settle first
            fresh.append(scrape(conn)[0])
        conn.close()
        return {"steady": statistics.median(steady), "steady_min": steady[0],
                "fresh": statistics.median(fresh), "fresh_min": min(fresh), "bytes": len(body),
                "values": body.count(b"\neigenwatch_value{")}
    finally:
        c.close()
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--before", help="another build dir (e.g. main before this change)")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--scrapes", type=int, default=30)
    a = ap.parse_args()
    runs = [("this build", a.build)] + ([("before", a.before)] if a.before else [])
    res = {}
    for label, build in runs:
        res[label] = measure(os.path.join(build, "daemon", "eigenwatchd"), a.streams, a.scrapes)
    n = a.streams
    print(f"GET /metrics, {n} streams (eval erank + entropy, one rule each), one keep-alive "
          f"connection; {a.scrapes} scrapes with no change between them, 5 right after every "
          "stream was evaluated again (median and fastest of each)")
    head = f"{'':38s}" + "".join(f"{lab:>22s}" for lab, _ in runs)
    print(head + ("   ratio before/this" if a.before else ""))

    def row(name, key, scale, unit):
        cells = [res[lab][key] for lab, _ in runs]
        line = f"{name:38s}" + "".join(f"{v * scale:>18.2f} {unit:3s}" for v in cells)
        if a.before:
            line += f"   {cells[1] / cells[0]:8.1f}x"
        print(line)

    row("scrape, nothing changed", "steady", 1e3, "ms")
    row("  per stream", "steady", 1e6 / n, "us")
    row("  per stream (fastest scrape)", "steady_min", 1e6 / n, "us")
    row("scrape after every stream evaluated", "fresh", 1e3, "ms")
    row("  per stream", "fresh", 1e6 / n, "us")
    row("  per stream (fastest scrape)", "fresh_min", 1e6 / n, "us")
    for lab, _ in runs:
        r = res[lab]
        print(f"{lab}: {r['bytes']} bytes per scrape, {r['values']} eigenwatch_value series")


if __name__ == "__main__":
    main()
