#!/usr/bin/python3
"""Client benchmark: median Sender.send() time with the daemon up and with it down (target
< 50 µs both), and a small CPU torch model's median step time with and without
eigenwatch.torch.watch() (target ratio <= 1.05), measured in the same run.

  /usr/bin/python3 tests/bench/bench_python.py [--build DIR]
"""
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration")]
from eigenwatch import Sender  # noqa: E402
from harness import Daemon  # noqa: E402


def send_times(sender, n=5000):
    X = np.random.default_rng(0).standard_normal((256, 768)).astype(np.float32)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        sender.send("bench.send", X)
        ts.append(time.perf_counter() - t0)
        if len(ts) % 256 == 0:
            time.sleep(0.002)  # a training step's worth of pause now and then
    ts.sort()
    return ts[len(ts) // 2], ts[int(len(ts) * 0.99)]


def step_times(model, watch_fn, steps=300, batch=64):
    import torch
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 256)
    y = torch.randint(0, 10, (batch,))
    handle = watch_fn(model) if watch_fn else None
    ts = []
    for i in range(steps):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t0)
    if handle:
        handle.remove()
    return statistics.median(ts[20:])


def main():
    import torch
    from eigenwatch.torch import watch
    build = os.path.join(ROOT, "build")
    if sys.argv[1:2] == ["--build"]:
        build = sys.argv[2]
    os.environ.setdefault("EWD_BIN", os.path.join(build, "daemon", "eigenwatchd"))
    torch.set_num_threads(1)
    d = Daemon()
    try:
        s = Sender(d.unix, max_queue=100000)
        up = send_times(s)
        s.close(30)
        down_s = Sender(f"unix:{tempfile.mkdtemp()}/absent.sock", max_queue=1024, flush_on_exit=0)
        down = send_times(down_s)
        st = down_s.stats()
        down_s.close(0.1)

        def make():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(),
                                       torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                       torch.nn.Linear(512, 10))
        results = []
        for batch in (64, 512):
            base, watched = [], []
            for _ in range(3):  # interleaved, best of 3 each
                base.append(step_times(make(), None, batch=batch))
                watched.append(step_times(make(), lambda m: watch(
                    m, layers=["1", "3"], rows_per_step=32, address=d.unix, prefix="bench."),
                    batch=batch))
            results.append((batch, min(base), min(watched)))
    finally:
        d.stop()
    print("eigenwatch Python client benchmark (one torch thread)")
    print(f"Sender.send(256x768 f32), daemon up  : median {up[0] * 1e6:5.1f} us, "
          f"p99 {up[1] * 1e6:5.1f} us (target < 50 us)")
    print(f"Sender.send(256x768 f32), daemon down: median {down[0] * 1e6:5.1f} us, "
          f"p99 {down[1] * 1e6:5.1f} us (target < 50 us); dropped {st.dropped_batches} batches")
    for batch, b, w in results:
        print(f"MLP 256-512-512-10, batch {batch:3d}, CPU step: {b * 1e3:6.3f} ms plain, "
              f"{w * 1e3:6.3f} ms with watch() on 2 layers x 32 rows/step: ratio {w / b:.3f} "
              f"(target <= 1.05)")


if __name__ == "__main__":
    main()
