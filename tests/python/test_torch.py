"""eigenwatch.torch.watch on small real torch.nn models trained a few steps on CPU: the daemon's
stream counts equal the rows the hooks sampled, (batch, tokens, d) outputs are flattened to rows,
`every` skips steps, and remove() detaches the hooks."""
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "tests", "integration"),
                os.path.join(ROOT, "tests", "numeric")]
import kernel_ref as ref  # noqa: E402
from eigenwatch import Client, LabelledRows, Sender  # noqa: E402
from eigenwatch.torch import watch  # noqa: E402
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

D = None


def train(model, steps, make_batch):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for i in range(steps):
        x, y = make_batch(i)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def mlp_counts_equal_rows_sampled():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 48),
                                torch.nn.ReLU(), torch.nn.Linear(48, 10))
    h = watch(model, layers=["0", "2"], rows_per_step=16, sender=Sender(D.unix), prefix="mlp.")
    g = torch.Generator().manual_seed(1)
    train(model, 20, lambda i: (torch.randn(32, 32, generator=g), torch.randint(0, 10, (32,),
                                                                                 generator=g)))
    assert h.sender.flush(30), h.sender.stats()
    assert h.rows_sampled == {"mlp.0": 320, "mlp.2": 320}, h.rows_sampled
    with Client(D.unix) as c:
        assert c.info("mlp.0").count == 320 and c.info("mlp.0").dim == 64
        assert c.info("mlp.2").count == 320 and c.info("mlp.2").dim == 48
        assert c.query("mlp.0", ["entropy", "erank"]).metrics["erank"] > 1
    h.remove()
    model(torch.randn(4, 32))  # no hooks any more
    assert h.rows_sampled["mlp.0"] == 320


class Tiny(torch.nn.Module):
    """Embedding → per-token linear → mean-pool classifier: outputs of shape (batch, tokens, d)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 24)
        self.mix = torch.nn.Linear(24, 24)
        self.head = torch.nn.Linear(24, 5)

    def forward(self, x):
        h = torch.tanh(self.mix(self.emb(x)))
        return self.head(h.mean(1))


def token_outputs_every_other_step_bf16():
    torch.manual_seed(0)
    model = Tiny()
    h = watch(model, layers=["emb", "mix"], rows_per_step=50, every=2, address=D.unix,
              prefix="tiny.")
    g = torch.Generator().manual_seed(2)
    train(model, 9, lambda i: (torch.randint(0, 100, (8, 12), generator=g),
                               torch.randint(0, 5, (8,), generator=g)))
    # 9 steps, every=2 -> 5 sampled steps of min(50, 8*12=96) = 50 rows
    assert h.rows_sampled == {"tiny.emb": 250, "tiny.mix": 250}, h.rows_sampled
    h.remove()  # closes the sender it made, after flushing
    with Client(D.unix) as c:
        assert c.info("tiny.mix").count == 250
    # bf16 activations go as raw words
    bmodel = Tiny().to(torch.bfloat16)
    h2 = watch(bmodel, layers=["mix"], rows_per_step=10, address=D.unix, prefix="bf.",
               include_eval=True)
    with torch.no_grad():
        bmodel(torch.randint(0, 100, (2, 7)))
    h2.remove()
    with Client(D.unix) as c:
        assert c.info("bf.mix").count == 10


def steps_and_runs_and_eval_passes_skipped():
    """watch(step=..., run=...): each batch carries the trainer's step, the streams are recent
    and their steps complete; no_grad and eval-mode passes are not sampled by default."""
    torch.manual_seed(1)
    model = Tiny()
    trainer = {"step": 0}
    h = watch(model, layers=["mix"], rows_per_step=20, address=D.unix, prefix="st.",
              run="exp1", step=lambda: trainer["step"])
    g = torch.Generator().manual_seed(3)
    for i in range(6):
        trainer["step"] = 100 + i
        train(model, 1, lambda _i: (torch.randint(0, 100, (4, 9), generator=g),
                                    torch.randint(0, 5, (4,), generator=g)))
        with torch.no_grad():  # a validation pass: skipped
            model(torch.randint(0, 100, (4, 9), generator=g))
    model.eval()
    model(torch.randint(0, 100, (4, 9), generator=g))  # eval mode: skipped
    model.train()
    assert h.rows_sampled == {"st.mix": 6 * 20}, h.rows_sampled
    h.remove()
    with Client(D.unix) as c:
        info = c.info("st.mix", run="exp1")
        assert info.config["recent"] is True, info
        # remove() ended the last step (end_step): 105 completed without a later step, a flush
        # or step_timeout (before issue 25 it waited for one of them)
        assert info.steps["last_step"] == 105 and info.steps["pending_steps"] == 0, info.steps
        assert info.steps["partial_steps"] == 0, info.steps
        assert c.query("st.mix", "trace", run="exp1").count == 6 * 20


def rows_per_step_is_per_world():
    """rows_per_step is the world's: 4 ranks (each its own watch, rank r of world 4) with
    rows_per_step=10 send ⌈10/4⌉ = 3 rows each per step, and the stream's step holds 12 rows from
    4 ranks — not 40; one rank alone (world 1) sends all 10."""
    torch.manual_seed(2)
    models = [Tiny() for _ in range(4)]
    trainer = {"step": 0}
    hs = [watch(m, layers=["mix"], rows_per_step=10, address=D.unix, prefix="pw.", run="pw",
                step=lambda: trainer["step"], rank=r, world=4) for r, m in enumerate(models)]
    g = torch.Generator().manual_seed(5)
    for i in range(3):
        trainer["step"] = i
        for m in models:
            train(m, 1, lambda _i: (torch.randint(0, 100, (4, 9), generator=g),
                                    torch.randint(0, 5, (4,), generator=g)))
    assert [h.rows_sampled for h in hs] == [{"pw.mix": 3 * 3}] * 4, [h.rows_sampled for h in hs]
    for h in hs:  # each rank closes its own Sender at once: its run's end (flush {end, rank})
        h.remove()  # leaves the other ranks' last step to complete as they end it
    with Client(D.unix) as c:
        deadline = time.time() + 30  # a completed step's rows are applied just after it completes
        while c.info("pw.mix", run="pw").count < 3 * 4 * 3 and time.time() < deadline:
            time.sleep(0.02)
        info = c.info("pw.mix", run="pw")
        assert info.steps["last_step"] == 2 and info.steps["pending_steps"] == 0, info.steps
        assert info.steps["partial_steps"] == 0, info.steps
        assert info.count == 3 * 4 * 3, info.count
    one = Tiny()
    h = watch(one, layers=["mix"], rows_per_step=10, address=D.unix, prefix="pw1.", run="pw",
              step=lambda: trainer["step"], rank=0, world=1)
    train(one, 1, lambda _i: (torch.randint(0, 100, (4, 9), generator=g),
                              torch.randint(0, 5, (4,), generator=g)))
    assert h.rows_sampled == {"pw1.mix": 10}, h.rows_sampled
    h.remove()


def on_metrics_gets_each_layers_values_with_the_trainers_step():
    """watch(step=..., on_metrics=...): the callback gets, on the training thread, one call per
    step with every watched layer's evaluated values under the trainer's step (or the layers
    whose evaluation of it was coalesced, named in `missing`), equal to the daemon's history;
    close() ends the last step and delivers its values before it returns (issue 25 item 4:
    before, the last step waited for step_timeout and was lost when the script ended)."""
    torch.manual_seed(2)
    model = Tiny()
    trainer = {"step": 0}
    calls = []
    main_thread = __import__("threading").current_thread()

    def on_metrics(step, values, missing):
        assert __import__("threading").current_thread() is main_thread
        calls.append((step, values, missing))

    h = watch(model, layers=["emb", "mix"], rows_per_step=16, address=D.unix, prefix="om.",
              run="exp2", step=lambda: trainer["step"], on_metrics=on_metrics)
    g = torch.Generator().manual_seed(4)
    for i in range(8):
        trainer["step"] = 10 + i
        train(model, 1, lambda _i: (torch.randint(0, 100, (4, 9), generator=g),
                                    torch.randint(0, 5, (4,), generator=g)))
    assert h.close(timeout=20) is True
    with Client(D.unix) as c:
        hist = c.history(run="exp2", metrics="erank")
    steps = [st for st, _, _ in calls]
    assert steps == sorted(set(steps)) and steps[-1] == 17, steps  # once per step, in order
    for step, values, missing in calls:
        assert sorted(list(values) + missing) == ["emb", "mix"], (step, values, missing)
        for layer, ms in values.items():
            assert set(ms) == {"entropy", "erank", "rankme", "participation_ratio",
                               "anisotropy", "l2_std"}, ms
            s = hist[("om." + layer, "erank")]
            assert ms["erank"] == s.value[list(s.step).index(step)], (layer, step)
    assert calls[-1][2] == [] and set(calls[-1][1]) == {"emb", "mix"}, calls[-1]

def watch_creates_each_layers_stream_with_its_options():
    """Issue 25 item 5: watch(step=...) creates each layer's stream before its rows: a training
    stream of `world` ranks whose points are the rows of its last step (window_steps 1 by
    default), with the eval list (eval_every filling the entries without a schedule) and the
    rules asked; a layer whose stream exists with another configuration keeps it, and its rows
    still go."""
    torch.manual_seed(3)
    model = Tiny()
    trainer = {"step": 0}
    with Client(D.unix) as c:
        c.call("create", stream="wo.emb", run="exp3", dim=24, window=100)  # another config
    rules = [{"name": "flat", "metric": "erank", "when": "below", "value": 1.5, "after_step": 3}]
    h = watch(model, layers=["emb", "mix"], rows_per_step=8, address=D.unix, prefix="wo.",
              run="exp3", step=lambda: trainer["step"], world=1,
              eval=["erank", {"metric": "trace", "as": "tr", "every": 3}], eval_every=2,
              rules=rules)
    g = torch.Generator().manual_seed(5)
    for i in range(4):
        trainer["step"] = i
        train(model, 1, lambda _i: (torch.randint(0, 100, (4, 9), generator=g),
                                    torch.randint(0, 5, (4,), generator=g)))
    assert h.sender.flush(10)
    st = h.sender.stats()
    h.remove()
    with Client(D.unix) as c:
        info = c.info("wo.mix", run="exp3")
        assert info.config["window_steps"] == 1 and info.config["recent"] is True, info.config
        assert info.config["world"] == 1, info.config
        ev = [(m["metric"], m.get("as", m["metric"]), m.get("every")) for m in info.eval["metrics"]]
        assert ev == [("erank", "erank", 2), ("trace", "tr", 3)], info.eval
        got = [(a["rule"], a["metric"], a["after_step"]) for a in c.alerts(run="exp3")]
        assert got == [("flat", "erank", 3)], got
        kept = c.info("wo.emb", run="exp3")  # its own configuration, and every row of 4 steps
        assert kept.config["window"] == 100 and kept.config["window_steps"] == 0, kept.config
        assert c.flush("wo.emb", run="exp3") >= 0 and c.query("wo.emb", "trace", run="exp3",
                                                              source="all").count == 4 * 8
    assert st.rejected_batches == 0 and st.sent_rows == 2 * 4 * 8, st
    assert "STREAM_EXISTS" in st.last_error, st.last_error  # the create's refusal, logged once


def unknown_layer_is_refused():
    try:
        watch(torch.nn.Linear(2, 2), layers=["nope"], address=D.unix)
    except KeyError as e:
        assert "nope" in str(e)
        return
    raise AssertionError("accepted an unknown layer")


def on_metrics_backfills_what_a_daemon_restart_left_unseen():
    """A daemon restart mid-run: the subscription comes back only after the daemon has evaluated
    steps (held here until then, as a slow reconnect would be); those steps still reach
    on_metrics, from the daemon's history, once each and in order, and every evaluated step of
    the run is delivered with the history's values."""
    import threading
    import eigenwatch.client as ec
    d = Daemon()
    allow = threading.Event()
    allow.set()
    real_init = ec.Subscription.__init__

    def slow_init(self, *a, **kw):  # the reconnect waits for the test's go
        allow.wait(60)
        real_init(self, *a, **kw)

    ec.Subscription.__init__ = slow_init
    try:
        torch.manual_seed(3)
        model, trainer, calls = Tiny(), {"step": 0}, []
        h = watch(model, layers=["emb", "mix"], rows_per_step=16, address=d.unix, prefix="bf.",
                  run="bf", step=lambda: trainer["step"],
                  on_metrics=lambda step, values, missing: calls.append((step, values, missing)))
        g = torch.Generator().manual_seed(5)
        batch = lambda _i: (torch.randint(0, 100, (4, 9), generator=g),  # noqa: E731
                            torch.randint(0, 5, (4,), generator=g))
        for i in range(4):
            trainer["step"] = i
            train(model, 1, batch)
        h.sender.flush()
        with Client(d.unix) as c:  # steps 0-2 evaluated and notified before the restart
            deadline = time.time() + 20
            while time.time() < deadline and len(calls) < 3:
                h.poll()
                time.sleep(0.05)
        allow.clear()  # the subscription's reconnect now waits
        state = d.dir
        assert d.stop() == 0
        d = Daemon(state_dir=state)
        for i in range(4, 9):
            trainer["step"] = i
            train(model, 1, batch)
        h.sender.flush()
        with Client(d.unix) as c:  # evaluated while nobody was subscribed
            deadline = time.time() + 20
            while time.time() < deadline:
                got = c.history(run="bf", metrics="erank")
                if all(len(s.step) and s.step[-1] >= 7 for s in got.values()) and len(got) == 2:
                    break
                time.sleep(0.05)
        unseen = sorted({int(st) for s in got.values() for st in s.step if st > max(
            (st for st, _, _ in calls), default=-1)})
        allow.set()
        assert h.close(timeout=30) is True
        with Client(d.unix) as c:
            hist = c.history(run="bf", metrics="erank")
        steps = [st for st, _, _ in calls]
        want = sorted({int(st) for s in hist.values() for st in s.step})
        print(f"# on_metrics steps {steps}; evaluated while unsubscribed {unseen}", flush=True)
        assert unseen, "the restart left no step unseen: the case shows nothing"
        assert steps == want, (steps, want)  # every evaluated step once, in order
        for step, values, missing in calls:
            for layer, ms in values.items():
                s = hist[("bf." + layer, "erank")]
                assert ms["erank"] == s.value[list(s.step).index(step)], (layer, step)
    finally:
        ec.Subscription.__init__ = real_init
        allow.set()
        d.stop()


def watch_labels_ride_with_the_rows():
    """watch(labels=callable): each row of a (batch, tokens, d) output carries its example's label
    (repeated over its tokens), copied with the rows; the daemon's grouped metrics of the last
    step equal numpy on that step's rows and labels. Sender.send(LabelledRows) and
    Client.ingest(labels=) take them too."""
    torch.manual_seed(5)

    class Lift(torch.nn.Module):  # (B, T) token ids -> (B, T, 6) rows that depend on the label
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 6)
            self.head = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.emb(x).mean(1))

    model = Lift()
    trainer = {"step": 0, "y": None}
    h = watch(model, layers=["emb"], rows_per_step=1000, address=D.unix, prefix="lab.",
              step=lambda: trainer["step"], world=1, rank=0, window_steps=1,
              labels=lambda: trainer["y"])
    g = torch.Generator().manual_seed(6)
    sent = {}
    for s in range(3):
        trainer["step"] = s
        x = torch.randint(0, 50, (5, 4), generator=g)
        y = torch.tensor([3, 1, 3, 2, 1])
        trainer["y"] = y
        out = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 3, (5,), generator=g))
        sent[s] = (model.emb(x).detach().reshape(-1, 6).numpy().copy(),
                   y.repeat_interleave(4).numpy())
        out.backward()
    assert h.close(timeout=20) is True, h.sender.stats()
    X, lab = sent[2]
    with Client(D.unix) as c:
        r = c.query("lab.emb", ["group_erank", "group_separation"]).metrics
        assert r["group_erank_labels"] == [1, 2, 3], r
        assert abs(r["group_separation"] - ref.group_separation(X.astype(np.float64), lab)) <= \
            1e-9 * max(1.0, abs(r["group_separation"])), (r, ref.group_separation(X, lab))
        # the Client and a Sender's LabelledRows
        c.create("lab.direct", dim=6, window=64)
        c.ingest("lab.direct", X, labels=lab)
        s = Sender(D.unix)
        s.send("lab.direct", LabelledRows(X, lab))
        assert s.flush(20), s.stats()
        s.close()
        both = np.vstack([X, X]).astype(np.float64)
        labs = np.concatenate([lab, lab])
        got = c.query("lab.direct", "group_separation").metrics["group_separation"]
        assert abs(got - ref.group_separation(both, labs)) <= 1e-9 * max(1.0, abs(got)), got


def main():
    global D
    D = Daemon()
    t = Tap()
    try:
        t.case("watch_mlp_daemon_counts_equal_rows_sampled", mlp_counts_equal_rows_sampled)
        t.case("watch_token_outputs_every_other_step_and_bf16", token_outputs_every_other_step_bf16)
        t.case("watch_steps_runs_and_eval_passes_skipped", steps_and_runs_and_eval_passes_skipped)
        t.case("watch_rows_per_step_is_per_world", rows_per_step_is_per_world)
        t.case("watch_on_metrics_gets_each_layers_values_with_the_trainers_step",
               on_metrics_gets_each_layers_values_with_the_trainers_step)
        t.case("watch_creates_each_layers_stream_with_its_options",
               watch_creates_each_layers_stream_with_its_options)
        t.case("watch_unknown_layer_is_refused", unknown_layer_is_refused)
        t.case("watch_labels_ride_with_the_rows", watch_labels_ride_with_the_rows)
        t.case("watch_on_metrics_backfills_what_a_daemon_restart_left_unseen",
               on_metrics_backfills_what_a_daemon_restart_left_unseen)
    finally:
        D.stop()
    t.done()


if __name__ == "__main__":
    main()
