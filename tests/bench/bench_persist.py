#!/usr/bin/python3
"""Snapshot benchmark: what a snapshot of one stream costs at d = 1024 (default window: 4096 rows)
and d = 4096 (no window), and what ingest into another stream gets while snapshots run.

Each snapshot figure is beside, in the same run: the machine's own limit for the same bytes (one
write of a buffer of the snapshot's size + fsync + rename, in this process) and what a user does
instead (np.save of the d×d float64 covariance + fsync). Export and merge of the same state over
the socket are timed too.

  /usr/bin/python3 tests/bench/bench_persist.py [--build DIR]
"""
import os
import statistics
import sys
import tempfile
import threading
import time

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Daemon  # noqa: E402

B = 256


def fill(c, name, d, rows, seed):
    X = np.random.default_rng(seed).standard_normal((rows, d)).astype(np.float32)
    for i in range(0, rows, B):
        c.notify("ingest", {"stream": name, "data": X[i:i + B].tobytes(), "dtype": "f32",
                            "shape": [B, d]})
    c.call("ping")


def bare_write(directory, nbytes):
    buf = os.urandom(1 << 20) * (nbytes >> 20) + os.urandom(nbytes & ((1 << 20) - 1))
    path = os.path.join(directory, "bare")
    t0 = time.perf_counter()
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    mv = memoryview(buf)
    while mv:
        mv = mv[os.write(fd, mv):]
    os.fsync(fd)
    os.close(fd)
    os.rename(path + ".tmp", path)
    dfd = os.open(directory, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return time.perf_counter() - t0


def numpy_save(directory, d):
    C = np.random.default_rng(0).standard_normal((d, d))
    path = os.path.join(directory, "cov.npy")
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        np.save(f, C)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0, os.path.getsize(path)


def snapshot_once(c, name):
    c.call("ingest", {"stream": name, "rows": [[0.0] * c._dims[name]]})  # changed: written again
    t0 = time.perf_counter()
    r = c.call("snapshot")
    return time.perf_counter() - t0, r


class Ingester(threading.Thread):
    """Ingests d=256 batches into its own stream as fast as the daemon takes them."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.rows, self.stop, self.marks = d, 0, False, []
        X = np.random.default_rng(9).standard_normal((B, 256)).astype(np.float32)
        self.msg = msgpack.packb([2, "ingest", [{"stream": "other", "data": X.tobytes(),
                                                 "dtype": "f32", "shape": [B, 256]}]])

    def run(self):
        c = self.d.client()
        while not self.stop:
            for _ in range(16):
                c.send_raw(self.msg)
            c.call("ping")
            self.rows += 16 * B
            self.marks.append((time.perf_counter(), self.rows))

    def rate(self, t0, t1):
        pts = [(t, r) for t, r in self.marks if t0 <= t <= t1]
        if len(pts) < 2:
            return float("nan")
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def main():
    build = os.path.join(ROOT, "build")
    if sys.argv[1:2] == ["--build"]:
        build = sys.argv[2]
    os.environ.setdefault("EWD_BIN", os.path.join(build, "daemon", "eigenwatchd"))
    d = Daemon(config="snapshot_interval = 0\nmax_message_bytes = 512M\n")
    c = d.client()
    c._dims = {"w1024": 1024, "w4096": 4096}
    tmp = tempfile.mkdtemp(prefix="ew-bench-", dir=d.dir)
    try:
        fill(c, "w1024", 1024, 8192, 1)
        fill(c, "w4096", 4096, 4096, 2)
        c.call("snapshot")
        print("snapshot of one changed stream (median of 5; the daemon's `snapshot` round trip):")
        for name, dim in (("w1024", 1024), ("w4096", 4096)):
            runs = [snapshot_once(c, name) for _ in range(5)]
            t = statistics.median(r[0] for r in runs)
            size = runs[-1][1]["bytes"]
            tb = statistics.median(bare_write(tmp, size) for _ in range(3))
            tn, sn = numpy_save(tmp, dim)
            print(f"  d={dim:5d}: {size / 1e6:6.1f} MB in {t * 1e3:7.1f} ms "
                  f"({size / t / 1e6:6.0f} MB/s) | bare write+fsync of the same bytes "
                  f"{tb * 1e3:6.1f} ms (ratio {tb / t:.2f}) | np.save of the f64 covariance "
                  f"({sn / 1e6:.1f} MB) + fsync {tn * 1e3:6.1f} ms (ratio {tn / t:.2f})")
            t0 = time.perf_counter()
            state = c.call("export", {"stream": name})["state"]
            te = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.call("merge", {"stream": name + ".copy", "state": state})
            tm = time.perf_counter() - t0
            print(f"           export {te * 1e3:7.1f} ms, merge into a new stream {tm * 1e3:7.1f} "
                  f"ms ({len(state) / 1e6:.1f} MB over the Unix socket)")
            c.call("drop", {"stream": name + ".copy"})

        ing = Ingester(d)
        ing.start()
        time.sleep(3)
        t_a = time.perf_counter()
        time.sleep(4)
        t_b = time.perf_counter()
        snaps = 0
        while time.perf_counter() - t_b < 6:
            snapshot_once(c, "w4096")
            snaps += 1
        t_c = time.perf_counter()
        ing.stop = True
        ing.join()
        alone, during = ing.rate(t_a, t_b), ing.rate(t_b, t_c)
        print(f"ingest into another stream (d=256, batches of {B}): alone {alone:,.0f} rows/s; "
              f"during {snaps} back-to-back snapshots of the d=4096 stream {during:,.0f} rows/s "
              f"(ratio {during / alone:.2f})")
        st = c.call("stats")
        print(f"stats: snapshots_written {st['snapshots_written']}, snapshot_bytes "
              f"{st['snapshot_bytes']:,}, snapshot_last_ms {st['snapshot_last_ms']}")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
