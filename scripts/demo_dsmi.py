#!/usr/bin/python3
"""DSE and DSMI(Z; Y) during training: the demo MLP on Fashion-MNIST watched with labels.

The MLP of scripts/demo_collapse.py (784-256-128-64-10, ReLU, SGD with momentum, batches of
128) trains for 400 steps; eigenwatch.torch.watch(step=..., labels=...) sends every
pre-activation row of fc1-fc3 with its class. Each stream keeps the rows of its last 4 steps
(512) and evaluates, every 10 steps, `dse` (bits; σ as below) and `dsmi` (matched: each class
against same-size subsets of all rows, 5 draws). Beside them the script measures test accuracy
on 2,000 held-out images at the same steps. The paper's observation (Liao et al. 2023,
"Assessing Neural Network Representations During Training Using Noise-Resilient Diffusion
Spectral Entropy"): the mutual information with the labels rises as the network learns them.
Writes OUT/demo-dsmi.png from the daemon's history and prints the values and each layer's
correlation of dsmi with accuracy.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import OrderedDict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "scripts")]
from demo_collapse import BATCH, LAYERS, LR, Daemon, load, model  # noqa: E402
from eigenwatch import Client, Sender  # noqa: E402
from eigenwatch.torch import watch  # noqa: E402

STEPS = 400
EVERY = 10
SIGMA = 10.0  # dse-dsmi's default bandwidth


def train(d, X, y, Xt, yt):
    c = Client(d.address)
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9)
    state = {"step": 0, "y": None}
    sender = Sender(d.address, max_queue=100000)
    p = {"sigma": SIGMA}
    h = watch(m, layers=list(LAYERS), rows_per_step=BATCH, run="dsmi", sender=sender,
              step=lambda: state["step"], labels=lambda: state["y"], window_steps=4,
              eval=[{"metric": "dse", "params": p, "every": EVERY},
                    {"metric": "dsmi", "params": p, "every": EVERY}])
    g = torch.Generator().manual_seed(1)
    acc = {}
    t0 = time.time()
    for step in range(STEPS):
        state["step"] = step
        idx = torch.randint(0, len(X), (BATCH,), generator=g)
        state["y"] = y[idx]
        loss = torch.nn.functional.cross_entropy(m(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVERY == 0:
            with torch.no_grad():
                acc[step] = float((m(Xt).argmax(1) == yt).float().mean())
    train_s = time.time() - t0
    h.remove()
    sender.close(30)
    for name in LAYERS:
        c.flush(name, run="dsmi")
    deadline = time.time() + 120
    last = (STEPS - 1) // EVERY * EVERY
    while time.time() < deadline:
        done = [c.history(name, "dsmi", run="dsmi", from_step=last) for name in LAYERS]
        if all(s[(name, "dsmi")].step.size for s, name in zip(done, LAYERS)):
            break
        time.sleep(0.2)
    hist = c.history(run="dsmi", max_points=100000)
    c.close()
    print(f"{STEPS} steps in {train_s:.1f} s; test accuracy {acc[0]:.3f} at step 0 → "
          f"{acc[last]:.3f} at step {last}", flush=True)
    return hist, acc


def summarise(hist, acc):
    steps = sorted(acc)
    out = {}
    for name in LAYERS:
        dse, dsmi = hist[(name, "dse")], hist[(name, "dsmi")]
        a = np.array([acc.get(int(s), np.nan) for s in dsmi.step])
        ok = ~np.isnan(a)
        r = float(np.corrcoef(dsmi.value[ok], a[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        out[name] = r
        print(f"  {name}: dse {dse.value[0]:.3f} → {dse.value[-1]:.3f} bits, dsmi "
              f"{dsmi.value[0]:.3f} → {dsmi.value[-1]:.3f} bits over {dsmi.step.size} "
              f"evaluations; corr(dsmi, test accuracy) = {r:.2f}", flush=True)
    del steps
    return out


def plot(hist, acc, corr, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    colors = dict(zip(LAYERS, ("#1f77b4", "#ff7f0e", "#2ca02c")))
    for name in LAYERS:
        s = hist[(name, "dse")]
        axes[0].plot(s.step, s.value, color=colors[name], lw=1.4, label=f"{name} (σ={SIGMA:g})")
        s = hist[(name, "dsmi")]
        axes[1].plot(s.step, s.value, color=colors[name], lw=1.4,
                     label=f"{name}: corr with accuracy {corr[name]:.2f}")
    steps = sorted(acc)
    axes[2].plot(steps, [acc[s] for s in steps], color="0.2", lw=1.4)
    axes[0].set_title("dse: diffusion spectral entropy (bits)", fontsize=10)
    axes[1].set_title("dsmi(Z; Y): mutual information with the class (bits)", fontsize=10)
    axes[2].set_title("test accuracy (2,000 held-out images)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    axes[1].legend(fontsize=9)
    fig.suptitle("eigenwatch: the MLP on Fashion-MNIST, rows of fc1–fc3 with their classes "
                 "(watch(labels=...)), the last 4 steps' 512 rows, evaluated every 10 steps",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build", "daemon", "eigenwatchd"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    torch.set_num_threads(1)  # the other core is the daemon's
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ew-dsmi-")
    t0 = time.time()
    X, y = load()
    Xt, yt, X, y = X[-2000:], y[-2000:], X[:-2000], y[:-2000]
    d = Daemon(a.daemon, tmp)
    try:
        hist, acc = train(d, X, y, Xt, yt)
        corr = summarise(hist, acc)
        plot(hist, acc, corr, os.path.join(a.out, "demo-dsmi.png"))
        print(f"wrote {a.out}/demo-dsmi.png in {time.time() - t0:.0f} s", flush=True)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
