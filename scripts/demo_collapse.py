"""demo_collapse.py — a real training run watched by eigenwatchd (scripts/demo-collapse.sh runs it).

A small MLP (784 → 256 → 128 → 64 → 10, ReLU) learns Fashion-MNIST (Debian's
dataset-fashion-mnist) on the CPU with Debian's PyTorch, twice, each a run of the daemon:

- `healthy`: SGD with momentum 0.9 at learning rate 0.05 for all STEPS steps;
- `collapse`: the same, until the learning rate jumps to SPIKE_LR at step SPIKE_STEP (a
  mis-set schedule). The large steps push most ReLU units of the later layers into their dead
  region, where they output 0 for every input and get no gradient back: the layers after them
  see inputs confined to a few directions, and their representations fold onto those (dying
  ReLU; Lu et al., "Dying ReLU and Initialization", 2020, and the learning-rate link in Li et
  al., 2019). The loss goes back to chance (ln 10) and stays there.

eigenwatch.torch.watch streams 128 rows of the pre-activations of fc1, fc2 and fc3 at every
step (`watch(step=...)`); the daemon evaluates entropy and effective rank at each step over the
last 4 steps' rows and, armed at step ARM_STEP (after the early transient of training, when
representations compress for any run), fires the rule `collapse` when a layer's effective rank
falls below half of its mean over the 20 points after arming.

Outputs (OUT directory): demo-collapse.png (entropy and effective rank per layer by step, both
runs, from the daemon's `history`, with the learning-rate spike and each alert's step marked)
and demo-page.png (the daemon's page for the collapsing run, in headless Chromium). It prints the
steps and values it saw."""
import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration")]
from eigenwatch import Client, Sender  # noqa: E402
from eigenwatch.torch import watch  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
STEPS = 500
BATCH = 128
LR = 0.05
SPIKE_LR = 0.3
SPIKE_STEP = 200
ARM_STEP = 120
LAYERS = OrderedDict(fc1=256, fc2=128, fc3=64)
RULE = {"name": "collapse", "metric": "erank", "when": "below_baseline", "value": 0.5,
        "baseline_steps": 20}


def load():
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32)
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    X /= 255.0
    return torch.from_numpy((X - X.mean()) / X.std()), torch.from_numpy(y)


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(
        fc1=torch.nn.Linear(784, 256), act1=torch.nn.ReLU(),
        fc2=torch.nn.Linear(256, 128), act2=torch.nn.ReLU(),
        fc3=torch.nn.Linear(128, 64), act3=torch.nn.ReLU(),
        out=torch.nn.Linear(64, 10)))


class Daemon:
    def __init__(self, binary, tmp):
        self.log_path = os.path.join(tmp, "eigenwatchd.log")
        self.sock = os.path.join(tmp, "ew.sock")
        self.proc = subprocess.Popen(
            [binary, "--foreground", "--state-dir", os.path.join(tmp, "state"),
             "--listen", f"unix:{self.sock}", "--http", "127.0.0.1:0"],
            stderr=open(self.log_path, "w"), stdout=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and 'msg="ready"' not in self.log():
            if self.proc.poll() is not None:
                sys.exit("eigenwatchd exited:\n" + self.log())
            time.sleep(0.05)
        self.address = f"unix:{self.sock}"
        self.http = re.search(r"address=(http://\S+/)", self.log()).group(1)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def train(run, d, X, y, spike):
    c = Client(d.address)
    for name, dim in LAYERS.items():
        c.create(name, dim, run=run, window_steps=4,
                 eval=[{"metric": "entropy"}, {"metric": "erank"}])
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9)
    state = {"step": 0}
    sender = Sender(d.address, max_queue=100000)
    h = watch(m, layers=list(LAYERS), rows_per_step=BATCH, run=run, sender=sender,
              step=lambda: state["step"])
    g = torch.Generator().manual_seed(1)
    losses = []
    t0 = time.time()
    for step in range(STEPS):
        state["step"] = step
        if step == ARM_STEP:
            for name in LAYERS:
                c.alert_set(name, [RULE], run=run)
        if spike and step == SPIKE_STEP:
            for pg in opt.param_groups:
                pg["lr"] = SPIKE_LR
        idx = torch.randint(0, len(X), (BATCH,), generator=g)
        loss = torch.nn.functional.cross_entropy(m(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    train_s = time.time() - t0
    h.remove()
    sender.close(30)  # ours, not the handle's: delivers what is queued
    for name in LAYERS:  # the last step has no next one to complete it: complete it now
        c.flush(name, run=run)
    deadline = time.time() + 60  # then wait for its evaluation
    while time.time() < deadline:
        last = [c.history(name, "erank", run=run, from_step=STEPS - 1) for name in LAYERS]
        if all(s[(name, "erank")].step.size for s, name in zip(last, LAYERS)):
            break
        time.sleep(0.1)
    hist = c.history(run=run, max_points=100000)
    alerts = [a for a in c.alerts(run=run) if a["state"] == "firing"]
    c.close()
    print(f"{run}: {STEPS} steps in {train_s:.1f} s; loss {np.mean(losses[:20]):.3f} (first 20) → "
          f"{np.mean(losses[-20:]):.3f} (last 20)", flush=True)
    return hist, alerts, losses


def summarise(run, hist, alerts):
    for name in LAYERS:
        s = hist[(name, "erank")]
        v = dict(zip(s.step.tolist(), s.value.tolist()))
        before = np.mean([v[k] for k in range(SPIKE_STEP - 50, SPIKE_STEP) if k in v])
        after = np.mean([v[k] for k in range(STEPS - 100, STEPS) if k in v])
        fired = [a for a in alerts if a["stream"] == name]
        what = (f"alert at step {fired[0]['step']} (erank {fired[0]['last_value']:.2f})"
                if fired else "no alert")
        print(f"  {run}/{name}: {s.step.size} points ({STEPS - s.step.size} steps coalesced); erank {before:.2f} (steps "
              f"{SPIKE_STEP - 50}–{SPIKE_STEP - 1}) → {after:.2f} (steps {STEPS - 100}–"
              f"{STEPS - 1}); {what}", flush=True)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), sharex=True, constrained_layout=True)
    colors = dict(zip(LAYERS, ("#1f77b4", "#ff7f0e", "#2ca02c")))
    for col, (run, (hist, alerts, _)) in enumerate(results.items()):
        for row, metric in enumerate(("erank", "entropy")):
            ax = axes[row][col]
            for name in LAYERS:
                s = hist[(name, metric)]
                ax.plot(s.step, s.value, color=colors[name], lw=1.3, label=f"{name} (d={LAYERS[name]})")
            if run == "collapse":
                ax.axvline(SPIKE_STEP, color="0.5", ls=":", lw=1.2)
                ax.text(SPIKE_STEP + 3, 0.97, f"lr {LR} → {SPIKE_LR}", transform=ax.get_xaxis_transform(),
                        va="top", color="0.35", fontsize=9)
            ax.axvline(ARM_STEP, color="0.8", ls="-", lw=0.8)
            for a in alerts:
                ax.axvline(a["step"], color=colors[a["stream"]], ls="--", lw=1.2)
                if metric == "erank":
                    s = hist[(a["stream"], "erank")]
                    k = int(np.searchsorted(s.step, a["step"]))
                    ax.plot([a["step"]], [s.value[min(k, s.value.size - 1)]], "v", ms=9,
                            color="#c62828", zorder=5)
            ax.set_ylabel({"erank": "effective rank exp(H)", "entropy": "matrix entropy H (nats)"}[metric])
            ax.grid(alpha=0.3)
            if row == 0:
                fired = ", ".join(f"{a['stream']} @ {a['step']}" for a in alerts) or "none"
                ax.set_title(f"run '{run}' — alerts: {fired}", fontsize=11)
            if row == 1:
                ax.set_xlabel("training step")
            if row == 0 and col == 0:
                ax.legend(loc="upper right", fontsize=9)
    fig.suptitle("eigenwatch on a real run: MLP on Fashion-MNIST, pre-activations of fc1–fc3, "
                 "128 rows/step, over the last 4 steps (red ▼: alert 'collapse' fired; grey: "
                 f"rule armed at step {ARM_STEP})", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def screenshot(d, path):
    from cdp import Browser
    b = Browser(width=1400, height=1000)
    try:
        b.open(d.http + "?run=collapse")
        b.wait_for(f"eigenwatch.run === 'collapse' && eigenwatch.series.erank && "
                   f"Object.values(eigenwatch.series.erank).every(d => d.step.at(-1) === {STEPS - 1})"
                   f" && Object.keys(eigenwatch.markers).length > 0", timeout=60,
                   what="the collapse run's points and alert markers")
        b.pump(0.5)
        b.screenshot(path)
        if b.errors:
            print("page errors:", b.errors, file=sys.stderr)
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build", "daemon", "eigenwatchd"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    torch.set_num_threads(1)  # the other core is the daemon's
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ew-demo-")
    t0 = time.time()
    X, y = load()
    d = Daemon(a.daemon, tmp)
    try:
        results = OrderedDict()
        for run, spike in (("healthy", False), ("collapse", True)):
            results[run] = train(run, d, X, y, spike)
        for run, (hist, alerts, _) in results.items():
            summarise(run, hist, alerts)
        plot(results, os.path.join(a.out, "demo-collapse.png"))
        screenshot(d, os.path.join(a.out, "demo-page.png"))
        healthy_alerts, collapse_alerts = results["healthy"][1], results["collapse"][1]
        print(f"wrote {a.out}/demo-collapse.png and {a.out}/demo-page.png in "
              f"{time.time() - t0:.0f} s", flush=True)
        if healthy_alerts or not collapse_alerts:
            sys.exit(f"unexpected alerts: healthy {healthy_alerts}, collapse {collapse_alerts}")
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
