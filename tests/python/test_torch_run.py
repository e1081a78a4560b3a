"""A real CPU PyTorch training run watched by eigenwatch.torch.watch (issue 25, "Show it").

A small MLP (784 → 256 → 128 → 64 → 10, ReLU) learns Fashion-MNIST (Debian's
dataset-fashion-mnist, the 60,000 training images) with SGD + momentum for STEPS steps on the
CPU, one torch thread. watch() hooks fc1, fc2 and fc3 (their pre-activations) with `step=` and
`on_metrics=`, every row of each batch (rows_per_step = BATCH), and creates each layer's stream
with eval [entropy, erank] and two alert rules: `collapse` (erank below half the mean of its
first BASELINE points at or after AFTER_STEP: a warm-up) and `collapse_nowarm`, the same rule
without the warm-up. From COLLAPSE_STEP on, a forward hook projects fc2's output onto one fixed
direction (a synthetic representation collapse; training goes on through it).

Checked against the daemon's own records (`history`, `alerts {events}`) and numpy:
- on_metrics is called on the training thread, once per step the daemon evaluated, in step
  order: the calls' steps are exactly the union of the layers' history steps, from 0 to
  STEPS - 1. Every call's layers and `missing` partition the watched set, and the layers it
  carries are exactly those whose history holds that step; a missing layer's evaluation was
  coalesced (each point's `skipped` is the steps since its layer's previous point, and each
  layer's points plus their `skipped` add up to the STEPS steps the script ran; a step coalesced
  in every layer gets no call). Every value equals the history's for that layer, series and
  step. No batch was dropped or refused; every row of every step was sampled and counted.
- handle.close() returns True having delivered the last step (STEPS - 1) with every layer, its
  values equal to the history's, and that step completed (not pending).
- The rule with the warm-up has no event before COLLAPSE_STEP on any layer, and none on fc1
  (upstream of the collapse) at all, although early training compresses the representations:
  the same rule without the warm-up fires on fc2 in the first AFTER_STEP steps (asserted; about
  step 20 here, erank ~22 → ~3). The warm-up rule fires on fc2 (a "firing" event with the run,
  stream and step) at the first point evaluated at or after COLLAPSE_STEP, and that point's
  coalesced steps reach back to the collapse; its value and the baseline in its message equal
  the history's (the mean of the first BASELINE points at or after AFTER_STEP), and no point
  between AFTER_STEP and the collapse was below half that baseline. The rule is firing at the
  end, with that step and its after_step.
- At every step the daemon evaluated for fc2, its entropy and erank equal numpy float64 on the
  rows the hook handed to the daemon for that step (the whole batch: rows_per_step = BATCH,
  float32 as sent) to 1e-9 relative; healthy points have erank > 2, collapsed ones 1 (< 1+1e-6).

Runtime (a 2-core VM shared with other work): 7-12 s in all with the normal build (Fashion-MNIST
loads in ~2 s, the 400 steps train in 3-5 s, close() takes 0.2-0.8 s); the daemon coalesces
10-45% of the steps, varying between runs. With the ASan build 40-45 s: the daemon falls behind
the trainer and close() waits ~20-35 s for it to finish the backlog (hence its timeout of 120 s,
and a Sender whose queue holds every batch of the run: the default queue of 1024 batches drops
the oldest when it overflows, as it did there, and a dropped batch is a step a layer never had)."""
import gzip
import os
import sys
import threading
import time
from collections import OrderedDict

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration"),
                os.path.join(ROOT, "tests", "numeric")]
from eigenwatch import Client, Sender  # noqa: E402
from eigenwatch.torch import watch  # noqa: E402
from harness import Daemon  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_collapse import load  # noqa: E402  Fashion-MNIST, standardised, as the demo trains on it
from taplib import Tap, close  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
RUN = "fmnist"
STEPS = 400
BATCH = 128
WIDTHS = OrderedDict(fc1=256, fc2=128, fc3=64)  # the watched layers and their widths
LR = 0.05
AFTER_STEP = 150      # the warm-up: early training's compression is not checked
BASELINE = 5          # points after the warm-up whose mean is the baseline (few: the
                      # rule without it then takes its baseline before early compression)
COLLAPSE_STEP = 300   # from here on fc2's output is projected onto one direction
LAYERS = list(WIDTHS)
COLLAPSED = "fc2"
RULE = {"name": "collapse", "metric": "erank", "when": "below_baseline", "value": 0.5,
        "baseline_steps": BASELINE, "after_step": AFTER_STEP}
NOWARM = {k: v for k, v in RULE.items() if k != "after_step"}
NOWARM["name"] = "collapse_nowarm"

D = None
R = {}  # what the run produced, for the cases


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(
        fc1=torch.nn.Linear(784, WIDTHS["fc1"]), act1=torch.nn.ReLU(),
        fc2=torch.nn.Linear(WIDTHS["fc1"], WIDTHS["fc2"]), act2=torch.nn.ReLU(),
        fc3=torch.nn.Linear(WIDTHS["fc2"], WIDTHS["fc3"]), act3=torch.nn.ReLU(),
        out=torch.nn.Linear(WIDTHS["fc3"], 10)))


def train():
    """The run: fills R with the on_metrics calls, the rows kept, timings and the close()
    result."""
    t0 = time.time()
    X, y = load()
    R["load_s"] = time.time() - t0
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9)
    trainer = {"step": 0}
    main_thread = threading.current_thread()
    calls, off_thread = [], []

    def on_metrics(step, values, missing):
        if threading.current_thread() is not main_thread:
            off_thread.append(step)
        calls.append((step, values, list(missing)))

    # the collapse, registered before watch()'s hook so that the hook samples what fc2 hands on
    u = torch.randn(WIDTHS[COLLAPSED], generator=torch.Generator().manual_seed(7))
    u /= u.norm()

    def collapse(_mod, _inp, out):
        if trainer["step"] >= COLLAPSE_STEP:
            return (out @ u)[:, None] * u[None, :]
        return None
    m.fc2.register_forward_hook(collapse)

    # a queue for every batch of the run: the default (1024 batches, then the oldest is dropped,
    # fail-open) overflows when the daemon falls behind (the ASan build does), and a dropped
    # batch is a step a layer never had
    sender = Sender(D.unix, max_queue=len(LAYERS) * STEPS + 16)
    h = watch(m, layers=LAYERS, rows_per_step=BATCH, sender=sender, run=RUN,
              step=lambda: trainer["step"], on_metrics=on_metrics,
              eval=["entropy", "erank"], rules=[RULE, NOWARM])

    kept = {}

    def keep(_mod, _inp, out):  # after watch()'s hook: the rows it sent (all of them, in order)
        if m.training and torch.is_grad_enabled():
            kept[trainer["step"]] = out.detach().numpy().copy()  # f32, as sent (26 MB in all)
    m.fc2.register_forward_hook(keep)

    g = torch.Generator().manual_seed(1)
    losses = []
    t1 = time.time()
    for step in range(STEPS):
        trainer["step"] = step
        idx = torch.randint(0, len(X), (BATCH,), generator=g)
        loss = torch.nn.functional.cross_entropy(m(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    R["train_s"] = time.time() - t1
    calls_before_close = len(calls)
    t2 = time.time()
    R["closed"] = h.close(timeout=120)  # 0.2-0.8 s here; the ASan build's backlog takes ~30 s
    R["close_s"] = time.time() - t2
    sender.close(10)
    R.update(calls=calls, off_thread=off_thread, kept=kept, losses=losses,
             calls_before_close=calls_before_close, stats=h.sender.stats(),
             rows_sampled=dict(h.rows_sampled))
    with Client(D.unix) as c:
        R["hist"] = c.history(run=RUN, metrics=["entropy", "erank"], max_points=100000)
        R["alerts"] = c.call("alerts", run=RUN, events=512)
        R["info"] = {lay: c.info(lay, run=RUN) for lay in LAYERS}
    print(f"# load {R['load_s']:.1f} s, {STEPS} steps in {R['train_s']:.1f} s, close() "
          f"{R['close_s']:.2f} s; loss {np.mean(losses[:10]):.3f} (first 10) -> "
          f"{np.mean(losses[COLLAPSE_STEP - 10:COLLAPSE_STEP]):.3f} (before the collapse) -> "
          f"{np.mean(losses[-10:]):.3f} (last 10); {len(calls)} on_metrics calls, "
          f"{calls_before_close} before close()", flush=True)
    for lay in LAYERS:
        s = R["hist"][(lay, "erank")]
        v = dict(zip(s.step.tolist(), s.value.tolist()))

        def mean(a, b):
            return np.mean([v[k] for k in range(a, b) if k in v])
        print(f"# {lay}: {s.step.size} points, {int(s.skipped.sum())} steps coalesced; erank "
              f"{mean(0, 5):.2f} (steps 0-4) -> {mean(AFTER_STEP - 100, AFTER_STEP - 90):.2f} "
              f"(steps {AFTER_STEP - 100}-{AFTER_STEP - 91}) -> "
              f"{mean(AFTER_STEP, AFTER_STEP + BASELINE):.2f} (baseline steps) -> "
              f"{mean(COLLAPSE_STEP - 10, COLLAPSE_STEP):.2f} (before the collapse) -> "
              f"{mean(COLLAPSE_STEP, STEPS):.2f} (after)", flush=True)
    for e in R["alerts"]["events"]:
        print(f"# event: {e['state']} {e['stream']} {e['rule']} step {e['step']} "
              f"value {e['value']:.3f}", flush=True)
    # it learned: the loss fell from chance (ln 10 = 2.30) before the collapse
    assert np.mean(losses[COLLAPSE_STEP - 20:COLLAPSE_STEP]) < 0.3 * np.log(10), losses


def history_steps(layer):
    return R["hist"][(layer, "erank")].step.tolist()


def on_metrics_once_per_step_with_every_layer_or_its_missing_names():
    calls, hist = R["calls"], R["hist"]
    assert not R["off_thread"], f"on_metrics called off the training thread at {R['off_thread']}"
    st = R["stats"]
    assert st.dropped_batches == 0 and st.rejected_batches == 0, st
    n = len(LAYERS) * STEPS  # batches: one per layer and step
    assert st.sent_batches == n and st.sent_rows == n * BATCH, st
    assert R["rows_sampled"] == {lay: STEPS * BATCH for lay in LAYERS}, R["rows_sampled"]
    steps = [s for s, _, _ in calls]
    assert steps == sorted(set(steps)), "not once per step in ascending order"
    for lay in LAYERS:  # every step the script ran was evaluated or counted as coalesced
        s = hist[(lay, "erank")]
        assert s.step.size + int(s.skipped.sum()) == STEPS, (lay, s.step.size, s.skipped.sum())
        # a point's skipped: the steps since the layer's previous point
        gaps = np.diff(np.concatenate([[-1], s.step])) - 1
        assert (s.skipped == gaps).all(), (lay, np.nonzero(s.skipped != gaps)[0][:10])
        assert R["info"][lay].eval["coalesced"] == int(s.skipped.sum()), R["info"][lay].eval
        assert R["info"][lay].count == STEPS * BATCH, (lay, R["info"][lay].count)
        assert s.step.tolist() == hist[(lay, "entropy")].step.tolist()
    union = sorted(set().union(*(history_steps(lay) for lay in LAYERS)))
    assert steps == union, f"calls at {len(steps)} steps, history at {len(union)}: " \
        f"{sorted(set(steps) ^ set(union))[:20]}"
    assert steps[0] == 0 and steps[-1] == STEPS - 1, (steps[0], steps[-1])
    at = {lay: {"erank": dict(zip(history_steps(lay), hist[(lay, "erank")].value.tolist())),
                "entropy": dict(zip(history_steps(lay), hist[(lay, "entropy")].value.tolist()))}
          for lay in LAYERS}
    n_missing = 0
    for step, values, missing in calls:
        assert set(values).isdisjoint(missing) and \
            sorted(list(values) + missing) == sorted(LAYERS), (step, list(values), missing)
        assert set(values) == {lay for lay in LAYERS if step in at[lay]["erank"]}, \
            (step, list(values), missing)
        n_missing += bool(missing)
        for lay, ms in values.items():
            assert set(ms) == {"entropy", "erank"}, (step, lay, ms)
            for metric in ("entropy", "erank"):
                assert ms[metric] == at[lay][metric][step], (step, lay, metric, ms[metric],
                                                              at[lay][metric][step])
    print(f"# {len(calls)} calls for {STEPS} steps ({STEPS - len(calls)} steps coalesced in every "
          f"layer); {n_missing} calls name a coalesced layer", flush=True)


def close_delivers_the_last_step():
    assert R["closed"] is True, "close() timed out before the last step's values came"
    step, values, missing = R["calls"][-1]
    assert step == STEPS - 1 and missing == [] and sorted(values) == LAYERS, \
        (step, list(values), missing)
    for lay in LAYERS:
        s = R["hist"][(lay, "erank")]
        assert s.step[-1] == STEPS - 1 and values[lay]["erank"] == s.value[-1], lay
    assert R["calls_before_close"] < len(R["calls"]), "close() delivered nothing"
    for lay in LAYERS:
        info = R["info"][lay]
        assert info.steps["last_step"] == STEPS - 1 and info.steps["pending_steps"] == 0, \
            info.steps


def warm_up_rule_quiet_through_early_training_fires_at_the_collapse():
    events = R["alerts"]["events"]
    for e in events:
        assert e["run"] == RUN and e["stream"] in LAYERS, e
    warm = [e for e in events if e["rule"] == "collapse"]
    early = [e for e in warm if e["step"] < COLLAPSE_STEP]
    assert not early, f"the warm-up rule fired during training: {early}"
    fired = [e for e in warm if e["stream"] == COLLAPSED and e["state"] == "firing"]
    first_after = min(s for s in history_steps(COLLAPSED) if s >= COLLAPSE_STEP)
    assert fired, f"no firing event for {COLLAPSED} after the collapse at {COLLAPSE_STEP}"
    # it fires at the first point evaluated after the collapse, whose rows are collapsed ones;
    # when the daemon coalesced steps into that point (it evaluates the latest step due), every
    # step between the collapse and it was coalesced into it (its `skipped`)
    s = R["hist"][(COLLAPSED, "erank")]
    skipped = int(s.skipped[s.step.tolist().index(first_after)])
    assert fired[0]["step"] == first_after, (fired[0], first_after)
    assert first_after - skipped <= COLLAPSE_STEP, (first_after, skipped)
    print(f"# {COLLAPSED} fired at step {first_after}, {first_after - COLLAPSE_STEP} after the "
          f"collapse ({skipped} steps coalesced into that point)", flush=True)
    assert fired[0]["run"] == RUN and fired[0]["stream"] == COLLAPSED, fired[0]
    hist = dict(zip(history_steps(COLLAPSED), R["hist"][(COLLAPSED, "erank")].value.tolist()))
    assert fired[0]["value"] == hist[first_after], (fired[0], hist[first_after])
    # the baseline is the mean of the first BASELINE points at or after the warm-up
    base = [hist[s] for s in sorted(hist) if s >= AFTER_STEP][:BASELINE]
    assert fired[0]["value"] < 0.5 * np.mean(base), (fired[0]["value"], np.mean(base))
    want = (f"run {fired[0]['run']}, stream {fired[0]['stream']}, step {fired[0]['step']}: "
            f"erank {fired[0]['value']:.6g} is below 0.5 × its baseline {np.mean(base):.6g} ")
    assert fired[0]["message"].startswith(want), (fired[0]["message"], want)
    # before the collapse no healthy point was below half the baseline: the rule had no cause
    pre = [hist[s] for s in sorted(hist) if AFTER_STEP <= s < COLLAPSE_STEP]
    assert min(pre) >= 0.5 * np.mean(base), (min(pre), np.mean(base))
    # fc1, upstream of the collapse, stays healthy: its warm-up rule never fires
    assert not [e for e in warm if e["stream"] == "fc1"], [e for e in warm if e["stream"] == "fc1"]
    rule = [a for a in R["alerts"]["alerts"] if a["stream"] == COLLAPSED and
            a["rule"] == "collapse"]
    assert len(rule) == 1 and rule[0]["state"] == "firing" and \
        rule[0]["step"] == first_after and rule[0]["after_step"] == AFTER_STEP, rule


def the_same_rule_without_warm_up_fires_in_early_training():
    """The warm-up is what keeps `collapse` quiet: without it, the same rule fires on fc2
    during early training (the representations compress while the net learns)."""
    events = R["alerts"]["events"]
    early = [e for e in events if e["rule"] == "collapse_nowarm" and e["state"] == "firing" and
             e["step"] < AFTER_STEP]
    print(f"# without the warm-up, fired before step {AFTER_STEP}: " +
          (", ".join(f"{e['stream']} at {e['step']}" for e in early) or "nothing"), flush=True)
    assert any(e["stream"] == COLLAPSED for e in early), early


def erank_and_entropy_equal_numpy_on_the_rows_sent():
    """At every step the daemon evaluated for fc2, its entropy and erank equal numpy float64 on
    the rows the hook handed to the daemon (the whole batch, as float32) to 1e-9 relative."""
    got = {m: dict(zip(history_steps(COLLAPSED), R["hist"][(COLLAPSED, m)].value.tolist()))
           for m in ("entropy", "erank")}
    worst = 0.0
    for step in sorted(got["erank"]):
        x = R["kept"][step].astype(np.float64)
        assert x.shape == (BATCH, WIDTHS[COLLAPSED]), x.shape
        xc = x - x.mean(0)
        lam = np.clip(np.linalg.eigvalsh(xc.T @ xc / x.shape[0]), 0, None)
        p = lam[lam > 0] / lam.sum()
        h = float(-(p * np.log(p)).sum())
        close(got["entropy"][step], h, 1e-9, f"{COLLAPSED} entropy at step {step}",
              abs_floor=1e-12)
        close(got["erank"][step], np.exp(h), 1e-9, f"{COLLAPSED} erank at step {step}")
        worst = max(worst, abs(got["erank"][step] / np.exp(h) - 1))
    before = [k for k in got["erank"] if k < COLLAPSE_STEP]
    after = [k for k in got["erank"] if k >= COLLAPSE_STEP]
    assert min(got["erank"][k] for k in before) > 2, "no healthy point before the collapse"
    assert max(got["erank"][k] for k in after) < 1 + 1e-6, "a collapsed point is not of rank 1"
    print(f"# {len(got['erank'])} points of {COLLAPSED} ({len(before)} before the collapse, "
          f"{len(after)} after): erank within {worst:.1e} of numpy", flush=True)


def main():
    global D
    torch.set_num_threads(1)  # the other core is the daemon's
    t0 = time.time()
    D = Daemon()
    t = Tap()
    try:
        t.case("torch_run_trains_with_watch", train)
        t.case("torch_run_on_metrics_once_per_step_every_layer_or_missing",
               on_metrics_once_per_step_with_every_layer_or_its_missing_names)
        t.case("torch_run_close_delivers_the_last_step", close_delivers_the_last_step)
        t.case("torch_run_warm_up_rule_quiet_early_fires_at_collapse",
               warm_up_rule_quiet_through_early_training_fires_at_the_collapse)
        t.case("torch_run_rule_without_warm_up_fires_early",
               the_same_rule_without_warm_up_fires_in_early_training)
        t.case("torch_run_erank_entropy_equal_numpy_on_the_rows_sent",
               erank_and_entropy_equal_numpy_on_the_rows_sent)
    finally:
        D.stop()
    print(f"# {time.time() - t0:.1f} s in all", flush=True)
    t.done()


if __name__ == "__main__":
    main()
