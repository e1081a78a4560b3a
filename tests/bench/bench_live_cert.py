"""bench_live_cert.py — what live_topk's certificate costs (lib/live/cert.c).

For each d (default 1024 4096) and k (1, 8): a stream of 3·max(256, d/2) + 256 f32 rows (Gaussian
plus 4 spikes), so that the live estimate has taken power steps, then live_topk asked 4 times
(the first includes mirroring the co-moment's lower triangle, once per state change; the median
of the other 3 is the steady cost) and topk with the same k beside it. EW_LIB picks the library
(e.g. a build of an earlier commit, for the residual-only certificate it replaced). Never run as
a test; speed is shown, not asserted.
Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/bench/bench_live_cert.py [d ...]
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "numeric"))
from ewlib import Stream  # noqa: E402


def main():
    dims = [int(a) for a in sys.argv[1:]] or [1024, 4096]
    rng = np.random.default_rng(3)
    for d in dims:
        n = 3 * max(256, d // 2) + 256
        U = np.linalg.qr(rng.standard_normal((d, 4)))[0]
        X = (rng.standard_normal((n, d)) + (rng.standard_normal((n, 4)) * [6, 4, 3, 2]) @ U.T)
        X = X.astype(np.float32)
        for k in (1, 8):
            s = Stream(d, window=0, live_k=k)
            for i in range(0, n, 512):
                s.ingest(X[i:i + 512])
            ts = []
            for _ in range(4):
                t0 = time.perf_counter()
                _, ex = s.query("live_topk")
                ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            s.query("topk", k=k)
            tt = time.perf_counter() - t0
            print(f"d={d} k={k}: live_topk first {ts[0] * 1e3:.1f} ms, then "
                  f"{np.median(ts[1:]) * 1e3:.1f} ms (error {ex['error']:.3e}); "
                  f"topk k={k} {tt * 1e3:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
