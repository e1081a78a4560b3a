#!/usr/bin/python3
"""Load benchmark: eigenwatchd with 1,000 connections, 16 producers and 4 pollers for 60 s.

  /usr/bin/python3 tests/bench/bench_load.py [--build DIR] [--seconds 60] [--conns 1000]
      [--producers 16] [--pollers 4] [--dim 256] [--batch 128]

Producers (one process each, its own stream) send f32 batches as `ingest` requests, up to 4 in
flight, and add up the `accepted` of every answer; pollers (one process each) query
entropy, erank and topk of a random producer's stream as a dashboard would and time each round
trip; the remaining connections stay open and each pings every ~10 s. At the end the rows
acknowledged must equal the rows the daemon counted (`list` and `stats.rows`). Printed: rows/s,
queries/s, query latency p50/p99, RSS every 5 s beside the admission model, and, measured in the
same run, the machine's limits (the bare exact-path loop at 1 and 2 BLAS threads from bench_lib,
bare dsyevd at d) and what a user would do instead (numpy: S += X.T @ X in float64, eigvalsh).
A benchmark, not a test: nothing here is asserted but the row count.
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Client, Daemon  # noqa: E402

IN_FLIGHT = 4


def producer(addr, i, dim, batch, deadline, out):
    c = Client(addr)
    X = np.random.default_rng(100 + i).standard_normal((batch, dim)).astype(np.float32)
    X[:, : 1 + i % 8] *= 10.0  # streams differ in spectrum
    body = X.tobytes()
    acked = sent = 0
    msgid = 0
    while time.time() < deadline or sent > 0:
        while sent < IN_FLIGHT and time.time() < deadline:
            msgid += 1
            c.send_raw(msgpack.packb([0, msgid, "ingest", [{"stream": f"load/p{i}", "data": body,
                                                          "dtype": "f32",
                                                          "shape": [batch, dim]}]]))
            sent += 1
        m = c.read_message()
        assert m is not None and m[2] is None, m
        acked += m[3]["accepted"]
        sent -= 1
    c.close()
    out.put(("producer", i, acked))


def poller(addr, i, producers, deadline, out):
    c = Client(addr)
    rng = random.Random(i)
    lat, errors = [], 0
    while time.time() < deadline:
        s = f"load/p{rng.randrange(producers)}"
        t0 = time.perf_counter()
        try:
            c.call("query", {"stream": s, "metrics": ["entropy", "erank", "topk"],
                             "params": {"k": 4}})
            lat.append(time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 (NO_SUCH_STREAM before a producer's first batch)
            errors += 1
            time.sleep(0.01)
    c.close()
    out.put(("poller", i, (lat, errors)))


def idle_pinger(socks, deadline, result):
    """Each idle connection pings about every 10 s and must be answered."""
    ping = msgpack.packb([0, 1, "ping", []])
    pings = fails = 0
    step = 10.0 / max(1, len(socks))
    i = 0
    while socks and time.time() < deadline:
        s = socks[i % len(socks)]
        i += 1
        try:
            s.sendall(ping)
            up = msgpack.Unpacker(raw=False)
            while True:
                data = s.recv(4096)
                if not data:
                    raise ConnectionError("closed")
                up.feed(data)
                got = [m for m in up]
                if got:
                    break
            pings += 1
        except OSError:
            fails += 1
        time.sleep(step)
    result["pings"], result["ping_failures"] = pings, fails


def bare(build, threads, d):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([os.path.join(build, "tests", "bench", "bench_lib"), str(d)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return next(json.loads(l) for l in out.splitlines() if l.startswith("{"))


def numpy_figures(d, batch):
    X = np.random.default_rng(0).standard_normal((40 * batch, d)).astype(np.float32)
    S = np.zeros((d, d))
    t0 = time.perf_counter()
    for k in range(0, len(X), batch):
        b = X[k:k + batch].astype(np.float64)
        S += b.T @ b
    rows_s = len(X) / (time.perf_counter() - t0)
    C = np.cov(X, rowvar=False)
    t0 = time.perf_counter()
    for _ in range(5):
        np.linalg.eigvalsh(C)
    return rows_s, (time.perf_counter() - t0) / 5


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--producers", type=int, default=16)
    ap.add_argument("--pollers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    os.environ.setdefault("EWD_BIN", os.path.join(a.build, "daemon", "eigenwatchd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.conns + 256)), hard))

    # the machine's limits and numpy, before the daemon runs
    b1, b2 = bare(a.build, 1, a.dim), bare(a.build, 2, a.dim)
    np_rows, np_eig = numpy_figures(a.dim, a.batch)

    d = Daemon()
    ctl = d.client()
    idle_n = a.conns - a.producers - a.pollers - 1
    idle = []
    for _ in range(idle_n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.unix[5:])
        s.settimeout(10)
        idle.append(s)
    time.sleep(0.5)
    st0 = ctl.call("stats")
    rss = [(0.0, d.rss_kib(), st0["admitted_bytes"])]
    peak_conns = st0["connections"]
    t_start = time.time()
    deadline = t_start + a.seconds
    out = mp.Queue()
    procs = [mp.Process(target=producer, args=(d.unix, i, a.dim, a.batch, deadline, out))
             for i in range(a.producers)]
    procs += [mp.Process(target=poller, args=(d.unix, i, a.producers, deadline, out))
              for i in range(a.pollers)]
    for p in procs:
        p.start()
    pinged = {}
    pt = threading.Thread(target=idle_pinger, args=(idle, deadline, pinged))
    pt.start()
    while time.time() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.time())))
        st = ctl.call("stats")
        rss.append((time.time() - t_start, d.rss_kib(), st["admitted_bytes"]))
        peak_conns = max(peak_conns, st["connections"])
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    pt.join()
    elapsed = time.time() - t_start

    acked = sum(r[2] for r in results if r[0] == "producer")
    lat = [x for r in results if r[0] == "poller" for x in r[2][0]]
    qerr = sum(r[2][1] for r in results if r[0] == "poller")
    streams = {s["stream"]: s["count"] for s in ctl.call("list")["streams"]}
    counted = sum(v for k, v in streams.items() if k.startswith("load/"))
    st = ctl.call("stats")
    for s in idle:
        s.close()
    ctl.close()
    rc = d.stop()

    print(f"eigenwatchd under load: {a.conns} connections ({peak_conns} open at the peak), "
          f"{a.producers} producers, {a.pollers} pollers, {elapsed:.0f} s; d = {a.dim}, f32 "
          f"batches of {a.batch}, {IN_FLIGHT} ingest requests in flight per producer")
    print(f"rows acknowledged {acked}, counted by the daemon {counted} (stats.rows "
          f"{st['rows'] - st0['rows']}): {'EQUAL' if acked == counted else 'DIFFERENT'}")
    rate = counted / elapsed
    print(f"ingest: {rate:,.0f} rows/s over all producers; bare exact-path loop 1 / 2 threads "
          f"{b1['bare_exact_rows_s']:,.0f} / {b2['bare_exact_rows_s']:,.0f} rows/s (ratio to 2 "
          f"threads {rate / b2['bare_exact_rows_s']:.2f}); numpy float64 loop {np_rows:,.0f} "
          f"rows/s (ratio {rate / np_rows:.2f})")
    print(f"queries (entropy + erank + topk, each a fresh solve while rows arrive): {len(lat)} "
          f"in {elapsed:.0f} s = {len(lat) / elapsed:.0f}/s, {qerr} errors; latency p50 "
          f"{pct(lat, .5) * 1e3:.1f} ms, p99 {pct(lat, .99) * 1e3:.1f} ms, max "
          f"{max(lat) * 1e3 if lat else float('nan'):.1f} ms; bare dsyevd {b1['dsyevd_s'] * 1e3:.1f}"
          f" ms, numpy eigvalsh {np_eig * 1e3:.1f} ms (p50 / eigvalsh "
          f"{pct(lat, .5) / np_eig:.1f})")
    print(f"idle connections: {pinged.get('pings', 0)} pings answered, "
          f"{pinged.get('ping_failures', 0)} failed")
    print("RSS over time (s: MiB, admission model MiB): " +
          ", ".join(f"{t:.0f}: {r / 1024:.0f} ({m / 2**20:.0f})" for t, r, m in rss))
    print(f"daemon exit status {rc}")
    sys.exit(0 if acked == counted and rc == 0 else 1)


if __name__ == "__main__":
    main()
