"""demo_rl_entropy.py — a small real RL run watched by eigenwatchd: policy entropy collapse.

scripts/demo-rl-entropy.sh runs it.

A GRU policy over 11 tokens (the digits 0–9 and EOS) is trained with a GRPO-style objective on a
task with a checkable reward: given a target t (one prompt token), emit digits whose sum is t,
then EOS. Many responses are right for each t, so nothing in the task asks the policy to become
deterministic. Two processes are the ranks of one data-parallel job (torch.distributed, gloo on
loopback, CPU only); each samples its own prompts and G completions per prompt, the gradients
are summed across ranks so that the loss is the token mean over the union of both ranks' tokens.

Per step every rank hands its per-token values to the daemon through one
eigenwatch.rl.TokenStream (run RUN, stream "policy", columns entropy, logp, advantage): the
entropy of the policy's next-token distribution (nats), the log-probability of the sampled token
and the token's advantage (its sequence's reward minus its group's mean, over the group's std),
in verl's remove-padding layout — each sequence is its prompt token (masked out) followed by its
response tokens, `lengths` = 1 + response length, `mask` = 1 on response tokens. The daemon
reduces over the union of both ranks' counted tokens and, by a tokens stream's default
evaluation, writes token_mean, token_std, entropy_p5/p50/p95, frac_above, cov (Cov(log π, A))
and cov_band_frac to its history at every step, and a histogram of the entropy (EVAL: for the
page's step × bin heatmap). A StatsStream "rollout" (shape [2], reduce mean)
carries each rank's mean reward (weighted by its sequences) and the share of its tokens whose
gradient Clip-Cov zeroed (weighted by its tokens). Both streams are created with alert rules
(RULES): `entropy_collapse`, token_mean below a quarter of its mean over the first 10 steps, and
`entropy_explosion`, token_mean above 2 nats (ln 11 = 2.40 is uniform) from step 100 on.

Two runs, each STEPS steps of 2 ranks × 32 prompts × 8 completions (~2,000–3,000 response
tokens a step), Adam at 3e-3, seeded (the same numbers on every run of the same seed):
- `plain`: the policy gradient alone. Token entropy falls from ln 11 ≈ 2.4 nats to ~0.01 within
  ~150–200 steps while Cov(log π, A) stays positive — the mechanism of Cui et al. 2025 ("The
  Entropy Mechanism of Reinforcement Learning for Reasoning Language Models"): under a softmax
  policy a step changes entropy by about −η·Cov(log π, A), so raising the confident tokens that
  have a positive advantage (and lowering the unlikely ones that have a negative one) keeps
  lowering entropy. Once the policy is near deterministic, Cov goes to ~0 with it. The rule
  entropy_collapse fires.
- `clip-cov`: Clip-Cov from the same paper. The tokens whose centred product
  cov_i = (A_i − Ā)(log π_i − mean log π), means over the union's response tokens, lies in
  (CLIP_LB, CLIP_UB) are candidates (the daemon's cov_band_frac is their share); CLIP_RATIO·N of
  them (N = the rank's response tokens, at least one) are drawn uniformly at random and their
  gradient is zeroed. Entropy stays near 1 nat and reward still reaches ~0.9; no rule fires.

The band is the paper's, lb = 1 and ub = 5: with advantages normalised per group (|A| ≲ 2.5) and
log π spread over a few nats, the high-covariance tokens of this toy fall in it as they are.
The ratio is not the paper's 2e-4, which is meant for ~10^6 tokens a step: here it is the
floor of one token per rank and the run collapses like `plain` (entropy 0.05 at step 500,
seed 1). 0.02 slows the collapse without stopping it (0.25); 0.05, the default, zeroes ~4.5% of
tokens and holds entropy at ~1.0–1.05 for seeds 1–3; 0.1 holds it at ~1.3.

The script starts eigenwatchd (--daemon, as scripts/demo_collapse.py does) on a temporary state
directory and stops it at the end. After each run it reads the run's `history` and `alerts` back
from the daemon; the figure OUT/demo-rl-entropy.png (token_mean with its p5–p95 band, Cov(log π,
A) and reward by step, both runs, the alert's step marked) is drawn from that history alone, and
OUT/demo-rl-page.png is the daemon's page for run plain (in headless Chromium). Rank
0 also leaves its own all-reduced token mean, Cov and reward in the temporary directory so that
the verification at the end can compare the daemon's values with them. It exits non-zero unless
entropy_collapse fired for `plain`, no rule fired for `clip-cov`, every step has a full point and
the daemon agrees with rank 0 to 1e-4.
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
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "scripts"),
                os.path.join(ROOT, "tests", "integration")]

WORLD = 2
EOS, VOCAB = 10, 11             # tokens 0–9 are the digits, 10 ends the response
T_MIN, T_MAX = 5, 30            # targets; prompt token = VOCAB + (t − T_MIN)
MAX_LEN = 8                     # response tokens, EOS included
PROMPTS, GROUP = 32, 8          # per rank and step: 32 prompts × 8 completions
STEPS = 500
LR = 3e-3
HIDDEN = 128
# Clip-Cov's band is the paper's (lb = 1, ub = 5); its ratio (2e-4) is not: see the docstring
CLIP_LB, CLIP_UB, CLIP_RATIO = 1.0, 5.0, 0.05
STREAM, ROLLOUT = "policy", "rollout"
# The alert rules, create's `rules` of the policy stream (proto/PROTOCOL.md "Alerts"). Collapse:
# entropy below a quarter of its mean over the first 10 steps (plain ends near 0.01 nats,
# Clip-Cov's lowest is ~0.44 of its start). Explosion: entropy back above 2 nats (ln 11 = 2.40
# is the uniform policy, where both runs start) once training is under way.
RULES = [
    {"name": "entropy_collapse", "metric": "token_mean", "when": "below_baseline", "value": 0.25,
     "baseline_steps": 10},
    {"name": "entropy_explosion", "metric": "token_mean", "when": "above", "value": 2.0,
     "after_step": 100},
]
# The policy stream's evaluation, create's `eval`: a tokens stream's defaults, and a histogram of
# the entropy that the page draws as a step × bin heatmap (25 bins of 0.1 nats; ln 11 = 2.40).
EVAL = [{"metric": "token_mean"}, {"metric": "token_std"},
        *({"metric": "quantile", "params": {"level": q / 100}, "as": f"entropy_p{q}"}
          for q in (5, 50, 95)),
        {"metric": "frac_above"}, {"metric": "cov"}, {"metric": "cov_band_frac"},
        {"metric": "histogram", "params": {"bins": 25, "lo": 0, "hi": 2.5}}]


class Policy(torch.nn.Module):
    """prompt token → GRU state; then one digit/EOS token at a time."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB + T_MAX - T_MIN + 1, 32)
        self.gru = torch.nn.GRU(32, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, VOCAB)

    def logits(self, tokens, h=None):
        out, h = self.gru(self.emb(tokens), h)
        return self.head(out), h


def rollout(pol, prompts, gen):
    """Samples one response per prompt row. Returns (tokens (B, MAX_LEN), mask, lengths); tokens
    after EOS are EOS and masked out."""
    B = prompts.shape[0]
    tok = prompts[:, None]
    h = None
    out = torch.full((B, MAX_LEN), EOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    lengths = torch.full((B,), MAX_LEN, dtype=torch.long)
    with torch.no_grad():
        for i in range(MAX_LEN):
            lg, h = pol.logits(tok, h)
            nxt = torch.multinomial(F.softmax(lg[:, -1], -1), 1, generator=gen)[:, 0]
            nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
            out[:, i] = nxt
            ended = (nxt == EOS) & ~done
            lengths[ended] = i + 1
            done |= nxt == EOS
            tok = nxt[:, None]
    mask = torch.arange(MAX_LEN)[None, :] < lengths[:, None]
    return out, mask, lengths


def reward(tokens, mask, targets):
    """1 for digits summing to t followed by EOS; partial credit 0.5·(1 − |s − t|/t) for a near
    miss that still ended; 0 for a response that never emitted EOS."""
    digits = torch.where(mask & (tokens != EOS), tokens, torch.zeros_like(tokens))
    s = digits.sum(1).float()
    ended = ((tokens == EOS) & mask).any(1)
    t = targets.float()
    r = torch.where(s == t, torch.ones_like(s), 0.5 * (1 - (s - t).abs() / t).clamp(min=0))
    return torch.where(ended, r, torch.zeros_like(r))


def allsum(*xs):
    """Sums float64 scalars over the ranks, in one all_reduce."""
    v = torch.tensor([float(x) for x in xs], dtype=torch.float64)
    dist.all_reduce(v)
    return v.tolist()


def packed(mask, lengths, *columns):
    """verl's remove-padding layout of (sequences, MAX_LEN) response columns: each sequence is its
    prompt token (a 0, masked out) then its response tokens, back to back. Returns (columns...,
    mask, lengths) with lengths = 1 + the response's (they sum to the tokens)."""
    B = mask.shape[0]
    keep = torch.arange(MAX_LEN + 1)[None, :] <= lengths[:, None]
    cols = [torch.cat([torch.zeros(B, 1, dtype=c.dtype), c], 1)[keep] for c in columns]
    m = torch.cat([torch.zeros(B, 1, dtype=torch.bool), mask], 1)[keep]
    return (*cols, m, lengths + 1)


def worker(rank, cfg):
    from eigenwatch.rl import StatsStream, TokenStream
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(cfg["port"])
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    torch.manual_seed(cfg["seed"])                  # the same initial policy on both ranks
    pol = Policy()
    opt = torch.optim.Adam(pol.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank)  # each rank its own samples
    clip = cfg["run"] == "clip-cov"
    # ---- eigenwatch: the run's token stream with its alert rules, and the rollout figures
    # (sharing its Sender, one connection per rank)
    ts = TokenStream(cfg["run"], STREAM, columns=("entropy", "logp", "advantage"), world=WORLD,
                     rank=rank, eval=EVAL, rules=RULES, address=cfg["address"])
    ss = StatsStream(cfg["run"], ROLLOUT, shape=[2], reduce="mean", world=WORLD, rank=rank,
                     sender=ts.sender)
    local = []  # rank 0: the all-reduced figures, for the verification only
    for step in range(cfg["steps"]):
        targets = torch.randint(T_MIN, T_MAX + 1, (PROMPTS,), generator=gen)
        targets = targets.repeat_interleave(GROUP)  # G completions of each prompt
        prompts = VOCAB + targets - T_MIN
        tok, mask, lengths = rollout(pol, prompts, gen)
        r = reward(tok, mask, targets)
        rg = r.view(PROMPTS, GROUP)
        adv = ((rg - rg.mean(1, keepdim=True)) / (rg.std(1, keepdim=True) + 1e-6)).view(-1)

        inp = torch.cat([prompts[:, None], tok[:, :-1]], 1)
        lg, _ = pol.logits(inp)
        lsm = F.log_softmax(lg, -1)
        logp = lsm.gather(-1, tok[..., None])[..., 0]
        ent = -(lsm.exp() * lsm).sum(-1).detach()
        A = adv[:, None].expand(-1, MAX_LEN).contiguous()
        m = mask.float()

        # union moments: n, Σ log π, Σ A, Σ log π·A, Σ H, Σ r (Clip-Cov centres on these)
        lp = logp.detach()
        n_loc = m.sum().item()
        n, s_lp, s_a, s_lpa, s_h, s_r = allsum(n_loc, (lp * m).sum(), (A * m).sum(),
                                                (lp * A * m).sum(), (ent * m).sum(), r.sum())
        mean_lp, mean_a = s_lp / n, s_a / n

        # GRPO with one update per rollout: the ratio π/π_old is 1 where the gradient is taken,
        # so PPO's clipped surrogate is the plain per-token policy gradient −A·∇log π
        pg = -A * logp
        keep = torch.ones_like(m)
        n_clip = 0
        if clip:
            cov_i = (A - mean_a) * (lp - mean_lp)
            band = ((cov_i > cfg["lb"]) & (cov_i < cfg["ub"]) & mask).nonzero()
            k = min(max(int(cfg["ratio"] * n_loc), 1), len(band))
            pick = band[torch.randperm(len(band), generator=gen)[:k]]
            keep[pick[:, 0], pick[:, 1]] = 0
            n_clip = k
        loss = (pg * keep * m).sum() / n     # token mean over the union of both ranks
        opt.zero_grad()
        loss.backward()
        for p in pol.parameters():
            dist.all_reduce(p.grad)
        opt.step()

        # ---- eigenwatch: this rank's tokens and rollout figures of the step
        ent_p, lp_p, a_p, mask_p, len_p = packed(mask, lengths, ent, lp, A)
        ts.log(step, entropy=ent_p, logp=lp_p, advantage=a_p, mask=mask_p, lengths=len_p)
        ss.log(step, torch.tensor([r.mean().item(), n_clip / n_loc], dtype=torch.float64),
               counts=torch.tensor([len(r), n_loc], dtype=torch.float64))
        if rank == 0:
            local.append((step, s_h / n, s_lpa / n - mean_lp * mean_a,
                          s_r / (WORLD * PROMPTS * GROUP)))
    # ---- eigenwatch: a closing Sender ends its runs (their pending steps complete, partial if a
    # rank is missing), so every rank first ends its own last step and flushes, then all wait
    # for each other, and only then do the Senders close
    ok = ts.close(60, close_sender=False) & ss.close(60, close_sender=False)
    dist.barrier()
    ok &= ts.sender.close(60)
    st = ts.sender.stats()
    if not ok or st.rejected_batches or st.dropped_batches:
        print(f"{cfg['run']} rank {rank}: sender {st}", file=sys.stderr, flush=True)
    if rank == 0:
        np.save(os.path.join(cfg["tmp"], f"{cfg['run']}.rank0.npy"), np.array(local))
    dist.destroy_process_group()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name, a, d, tmp):
    """One run: two ranks spawned here, then the run's history and alerts read back from the
    daemon. Returns a dict of the run's history, alerts, alert events, rank 0's figures, wall
    seconds."""
    from eigenwatch import Client
    cfg = dict(run=name, seed=a.seed, steps=a.steps, lr=a.lr, port=free_port(), address=d.address,
               lb=a.clip_lb, ub=a.clip_ub, ratio=a.clip_ratio, tmp=tmp)
    t0 = time.time()
    mp.spawn(worker, args=(cfg,), nprocs=WORLD, join=True)
    wall = time.time() - t0
    local = np.load(os.path.join(tmp, f"{name}.rank0.npy"))
    with Client(d.address) as c:
        deadline = time.time() + 60  # the last step was ended at close: wait for its evaluation
        while time.time() < deadline:
            last = [c.history(s, m, run=name, from_step=a.steps - 1)
                    for s, m in ((STREAM, "token_mean"), (ROLLOUT, "cells"))]
            if all(h and next(iter(h.values())).step.size for h in last):
                break
            time.sleep(0.1)
        hist = c.history(run=name, max_points=100000)
        alerts = c.alerts(run=name, stream=STREAM)
        events = c.call("alerts", run=name, stream=STREAM, events=100)["events"]
    return dict(hist=hist, alerts=alerts, events=events, local=local, wall=wall)


def series(res, metric, stream=STREAM):
    s = res["hist"][(stream, metric)]
    return s.step, s.value


def summarise(name, res, a):
    """Prints the run's figures, all from the daemon's history: entropy at the start and the end,
    Cov's sign while entropy is still there (below 0.1 nats there is little left to collapse and
    A·log π has almost no spread), reward, the rules that fired."""
    step, h = series(res, "token_mean")
    _, cov = series(res, "cov")
    _, band = series(res, "cov_band_frac")
    _, cells = series(res, "cells", ROLLOUT)
    rew, clipped = cells[:, 0], cells[:, 1]
    live = h > 0.1
    gone = step[~live]
    fired = [e for e in res["events"] if e["state"] == "firing"]
    print(f"{name}: seed {a.seed}, {a.steps} steps in {res['wall']:.1f} s; token entropy"
          f" {h[:10].mean():.3f} (first 10 steps) → {h[-20:].mean():.3f} (last 20; p5–p95"
          f" {series(res, 'entropy_p5')[1][-20:].mean():.3f}–"
          f"{series(res, 'entropy_p95')[1][-20:].mean():.3f})"
          f"{f', below 0.1 from step {gone[0]}' if gone.size else ''}; Cov(log π, A) > 0 at"
          f" {int((cov[live] > 0).sum())}/{int(live.sum())} steps with entropy > 0.1 (mean"
          f" {cov[live].mean():.3f}, last 20 {cov[-20:].mean():.4f}); reward {rew[:10].mean():.2f}"
          f" → {rew[-20:].mean():.2f}; tokens in the Clip-Cov band {100 * band.mean():.1f}%"
          f"{f', gradient zeroed on {100 * clipped.mean():.1f}%' if clipped.any() else ''}"
          "; alerts: "
          + (", ".join(f"{e['rule']} fired at step {e['step']} ({e['value']:.3f})" for e in fired)
             or "none"), flush=True)


def verify(results, a):
    """The short check at the end: which rules fired (the daemon's `alerts`), the history's
    points per run, and the daemon's values against rank 0's own all-reduced ones. Returns
    whether everything came out as intended."""
    good = True
    print("verification:")
    for name, res in results.items():
        state = {x["rule"]: x for x in res["alerts"]}
        ever = {e["rule"]: e for e in res["events"] if e["state"] == "firing"}
        col = state["entropy_collapse"]
        want = name == "plain"
        if want:
            ok = col["state"] == "firing" and "entropy_explosion" not in ever
            what = (f"entropy_collapse firing since step {col['step']} (token_mean "
                    f"{col['last_value']:.3f} at the last point)" if col["state"] == "firing"
                    else "entropy_collapse did NOT fire")
        else:
            ok = not ever
            what = "no rule fired" if not ever else "rules fired: " + ", ".join(
                f"{r} at step {e['step']}" for r, e in ever.items())
        step, h = series(res, "token_mean")
        s = res["hist"][(STREAM, "token_mean")]
        _, cov = series(res, "cov")
        _, cells = series(res, "cells", ROLLOUT)
        loc = res["local"]
        idx = np.searchsorted(loc[:, 0], step)
        dh = np.abs(h - loc[idx, 1]).max()
        dc = np.abs(cov - loc[idx, 2]).max()
        dr = np.abs(cells[:, 0] - loc[idx, 3]).max()
        full = s.step.size == a.steps and not s.partial.any()
        print(f"  {name}: {'OK ' if ok and full else 'BAD'} {what}; history {s.step.size} points"
              f" of {a.steps} steps ({int(s.partial.sum())} partial, "
              f"{len(res['hist'])} series); daemon vs rank 0's all-reduce: token_mean "
              f"{dh:.1e}, cov {dc:.1e}, reward {dr:.1e}", flush=True)
        good &= ok and full and max(dh, dc, dr) < 1e-4
    return good


def plot(results, path, a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True, constrained_layout=True)
    colors = {"plain": "#c62828", "clip-cov": "#1f77b4"}
    smooth = lambda y, w=20: np.array([y[max(0, i - w + 1):i + 1].mean() for i in range(len(y))])
    for name, res in results.items():
        color = colors.get(name)
        step, h = series(res, "token_mean")
        _, p5 = series(res, "entropy_p5")
        _, p95 = series(res, "entropy_p95")
        axes[0].fill_between(step, p5, p95, color=color, alpha=0.15, lw=0)
        axes[0].plot(step, h, lw=1.4, color=color, label=f"{name}: token_mean (p5–p95 band)")
        axes[0].axhline(0.25 * h[:10].mean(), color=color, ls=":", lw=0.9)
        step, cov = series(res, "cov")
        axes[1].plot(step, cov, lw=0.6, alpha=0.35, color=color)
        axes[1].plot(step, smooth(cov), lw=1.4, color=color, label=f"{name} (20-step mean)")
        step, cells = series(res, "cells", ROLLOUT)
        axes[2].plot(step, cells[:, 0], lw=0.6, alpha=0.35, color=color)
        axes[2].plot(step, smooth(cells[:, 0]), lw=1.4, color=color, label=f"{name} (20-step mean)")
        for e in res["events"]:
            if e["state"] == "firing":
                for ax in axes:
                    ax.axvline(e["step"], color=color, ls="--", lw=1.1)
                axes[0].plot([e["step"]], [e["value"]], "v", ms=10, color=color, zorder=5)
                axes[0].annotate(f"{name}: {e['rule']} @ step {e['step']}", (e["step"], e["value"]),
                                 xytext=(8, 22), textcoords="offset points", fontsize=9,
                                 color=color)
    axes[0].axhline(2.0, color="0.5", ls=":", lw=1)
    if a.steps > 150:
        axes[0].text(104, 2.03, "entropy_explosion: token_mean above 2.0 from step 100",
                     ha="left", va="bottom", fontsize=8, color="0.35")
    for ax, lab in zip(axes, ("token entropy (nats)", "Cov(log π, A) over tokens",
                              "mean reward")):
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.05, 2.95)
    axes[1].axhline(0, color="0.3", lw=0.8)
    axes[0].legend(loc="upper right", fontsize=8.5, ncol=2)
    axes[1].legend(loc="upper right", fontsize=9)
    axes[2].legend(loc="lower right", fontsize=9)
    axes[2].set_xlabel("step")
    fig.suptitle(f"eigenwatchd's history of two GRPO runs: GRU policy, 2 gloo ranks on the CPU, "
                 f"emit digits summing to t,\n{WORLD}×{PROMPTS} prompts × {GROUP} samples per "
                 f"step, seed {a.seed}; clip-cov zeroes the gradient of {a.clip_ratio:g}·N "
                 f"random tokens "
                 f"with {a.clip_lb:g} < (A−Ā)(log π−mean) < {a.clip_ub:g}\n"
                 f"entropy_collapse: token_mean below 0.25 × its mean over the first 10 steps "
                 f"(dotted, each run's colour); ▼ where it fired", fontsize=9.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def screenshot(d, path, a):
    """The daemon's page for run plain in headless Chromium (tests/integration/cdp.py), once its
    token charts for the policy stream (token_mean with its p5–p95 band, the entropy heatmap)
    hold the last step and entropy_collapse's marker is there."""
    from cdp import Browser
    b = Browser(width=1400, height=1000)
    try:
        b.open(d.http + "?run=plain")
        view = f"eigenwatch.views['{STREAM}']"
        b.wait_for(f"eigenwatch.run === 'plain' && {view}.band.step.at(-1) === {a.steps - 1} && "
                   f"{view}.heats[0].step.at(-1) === {a.steps - 1} && Object.values("
                   "eigenwatch.markers).some(m => m.rule === 'entropy_collapse')", timeout=60,
                   what="the plain run's token charts at the last step and its alert marker")
        b.pump(0.5)
        b.screenshot(path)
        if b.errors:
            print("page errors:", b.errors, file=sys.stderr)
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="plain,clip-cov")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--clip-lb", type=float, default=CLIP_LB)
    ap.add_argument("--clip-ub", type=float, default=CLIP_UB)
    ap.add_argument("--clip-ratio", type=float, default=CLIP_RATIO)
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build", "daemon", "eigenwatchd"),
                    help="the eigenwatchd to start (on a temporary state directory)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"),
                    help="where demo-rl-entropy.png and demo-rl-page.png go")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    from demo_collapse import Daemon
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="ew-demo-rl-")
    d = Daemon(a.daemon, tmp)
    try:
        results = OrderedDict((name, run(name, a, d, tmp)) for name in a.runs.split(","))
        if "plain" in results:
            screenshot(d, os.path.join(a.out, "demo-rl-page.png"), a)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name, res in results.items():
        summarise(name, res, a)
    path = os.path.join(a.out, "demo-rl-entropy.png")
    plot(results, path, a)
    good = verify(results, a) if set(results) == {"plain", "clip-cov"} else True
    page = f" and {os.path.join(a.out, 'demo-rl-page.png')}" if "plain" in results else ""
    print(f"wrote {path}{page} in {time.time() - t0:.0f} s", flush=True)
    if not good:
        sys.exit("the rules or the history did not come out as intended (see above)")


if __name__ == "__main__":
    main()
