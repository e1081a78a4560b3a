"""demo_rl_entropy.py — a small real RL run that shows policy entropy collapse.

scripts/demo-rl-entropy.sh runs it.

A GRU policy over 11 tokens (the digits 0–9 and EOS) is trained with a GRPO-style objective on a
task with a checkable reward: given a target t (one prompt token), emit digits whose sum is t,
then EOS. Many responses are right for each t, so nothing in the task asks the policy to become
deterministic. Two processes are the ranks of one data-parallel job (torch.distributed, gloo on
loopback, CPU only); each samples its own prompts and G completions per prompt, the gradients
are summed across ranks so that the loss is the token mean over the union of both ranks' tokens.

Per step and per response token the ranks compute the entropy of the policy's next-token
distribution (nats), the log-probability of the sampled token and the token's advantage (its
sequence's reward minus its group's mean, over the group's std), with the response mask and the
per-sequence lengths, and hand them to stream_tokens() — eigenwatch.rl.TokenStream when the
client has it, else a local JSON-lines file. Rank 0 also writes one line per step to
OUT/RUN.steps.jsonl: each rank's token-mean entropy, the union's, and the union's population
covariance Cov(log π, A) (from summed moments, not a mean of per-rank values).

Two runs, each STEPS steps of 2 ranks × 32 prompts × 8 completions (~2,000–3,000 response
tokens a step), Adam at 3e-3, seeded (the same numbers on every run of the same seed):
- `plain`: the policy gradient alone. Token entropy falls from ln 11 ≈ 2.4 nats to ~0.01 within
  ~150–200 steps while Cov(log π, A) stays positive — the mechanism of Cui et al. 2025 ("The
  Entropy Mechanism of Reinforcement Learning for Reasoning Language Models"): under a softmax
  policy a step changes entropy by about −η·Cov(log π, A), so raising the confident tokens that
  have a positive advantage (and lowering the unlikely ones that have a negative one) keeps
  lowering entropy. Once the policy is near deterministic, Cov goes to ~0 with it.
- `clip-cov`: Clip-Cov from the same paper. The tokens whose centred product
  cov_i = (A_i − Ā)(log π_i − mean log π), means over the union's response tokens, lies in
  (CLIP_LB, CLIP_UB) are candidates; CLIP_RATIO·N of them (N = the rank's response tokens, at
  least one) are drawn uniformly at random and their gradient is zeroed. Entropy stays near 1
  nat and reward still reaches ~0.9.

The band is the paper's, lb = 1 and ub = 5: with advantages normalised per group (|A| ≲ 2.5) and
log π spread over a few nats, the high-covariance tokens of this toy fall in it as they are.
The ratio is not the paper's 2e-4, which is meant for ~10^6 tokens a step: here it is the
floor of one token per rank and the run collapses like `plain` (entropy 0.05 at step 500,
seed 1). 0.02 slows the collapse without stopping it (0.25); 0.05, the default, zeroes ~4.5% of
tokens and holds entropy at ~1.0–1.05 for seeds 1–3; 0.1 holds it at ~1.3.

--daemon BINARY starts eigenwatchd (as scripts/demo_collapse.py does) and hands its address to
the ranks in $EIGENWATCH_ADDRESS. Outputs in OUT: RUN.steps.jsonl, RUN.tokens.rankR.jsonl (when
the tokens go to no daemon) and demo-rl-entropy.png (entropy, Cov and reward by step).
"""
import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

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


_tokens = {}  # this process's sink for stream_tokens: set up by open_tokens


def open_tokens(run, rank, out):
    """eigenwatch.rl.TokenStream when the client has it (it reads $EIGENWATCH_ADDRESS), else a
    local JSON-lines file, one line per step (for developing without the daemon)."""
    try:
        from eigenwatch.rl import TokenStream
        _tokens["ts"] = TokenStream(run, "policy", columns=("entropy", "logp", "advantage"),
                                    world=WORLD)
    except ImportError:
        _tokens["f"] = open(os.path.join(out, f"{run}.tokens.rank{rank}.jsonl"), "w")


def stream_tokens(step, entropy, logp, advantage, mask, lengths):
    """The one place the demo hands over its per-token values: entropy, logp, advantage and mask
    are (sequences, MAX_LEN), mask true on response tokens; lengths is (sequences,)."""
    if "ts" in _tokens:
        _tokens["ts"].log(step, entropy=entropy, logp=logp, advantage=advantage, mask=mask,
                          lengths=lengths)
        return
    r = lambda x: [round(v, 4) for v in x[mask].tolist()]
    _tokens["f"].write(json.dumps({"step": step, "lengths": lengths.tolist(), "entropy": r(entropy),
                                   "logp": r(logp), "advantage": r(advantage)}) + "\n")


def close_tokens():
    if "ts" in _tokens:
        getattr(_tokens["ts"], "close", lambda: None)()
    else:
        _tokens["f"].close()


def worker(rank, cfg):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(cfg["port"])
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    torch.manual_seed(cfg["seed"])                  # the same initial policy on both ranks
    pol = Policy()
    opt = torch.optim.Adam(pol.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank)  # each rank its own samples
    clip = cfg["run"] == "clip-cov"
    open_tokens(cfg["run"], rank, cfg["out"])
    log = open(os.path.join(cfg["out"], f"{cfg['run']}.steps.jsonl"), "w") if rank == 0 else None
    t0 = time.time()
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

        # union moments: n, Σ log π, Σ A, Σ log π·A, Σ H, Σ r
        lp = logp.detach()
        n_loc = m.sum().item()
        n, s_lp, s_a, s_lpa, s_h, s_r = allsum(n_loc, (lp * m).sum(), (A * m).sum(),
                                                (lp * A * m).sum(), (ent * m).sum(), r.sum())
        mean_lp, mean_a = s_lp / n, s_a / n
        cov = s_lpa / n - mean_lp * mean_a

        # GRPO with one update per rollout: the ratio π/π_old is 1 where the gradient is taken,
        # so PPO's clipped surrogate is the plain per-token policy gradient −A·∇log π
        pg = -A * logp
        keep = torch.ones_like(m)
        n_clip = n_band = 0
        if clip:
            cov_i = (A - mean_a) * (lp - mean_lp)
            band = ((cov_i > cfg["lb"]) & (cov_i < cfg["ub"]) & mask).nonzero()
            k = min(max(int(cfg["ratio"] * n_loc), 1), len(band))
            pick = band[torch.randperm(len(band), generator=gen)[:k]]
            keep[pick[:, 0], pick[:, 1]] = 0
            n_clip, n_band = k, len(band)
        loss = (pg * keep * m).sum() / n     # token mean over the union of both ranks
        opt.zero_grad()
        loss.backward()
        for p in pol.parameters():
            dist.all_reduce(p.grad)
        opt.step()

        stream_tokens(step, ent, lp, A, mask, lengths)
        h_rank = [0.0] * WORLD  # each rank fills its own slot: the sum is the list of all
        h_rank[rank] = (ent * m).sum().item() / n_loc
        n_clip, n_band, *h_rank = allsum(n_clip, n_band, *h_rank)
        if log:
            log.write(json.dumps({
                "step": step, "entropy": s_h / n, "entropy_rank": h_rank, "cov": cov,
                "reward": s_r / (WORLD * PROMPTS * GROUP), "tokens": n, "band": n_band,
                "clipped": n_clip, "t": round(time.time() - t0, 3)}) + "\n")
            log.flush()
    close_tokens()
    if log:
        log.close()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name, a):
    """One run: two ranks spawned here, their step log read back. Returns (rows, wall seconds)."""
    cfg = dict(run=name, seed=a.seed, steps=a.steps, lr=a.lr, out=a.out, port=free_port(),
               lb=a.clip_lb, ub=a.clip_ub, ratio=a.clip_ratio)
    t0 = time.time()
    mp.spawn(worker, args=(cfg,), nprocs=WORLD, join=True)
    wall = time.time() - t0
    with open(os.path.join(a.out, f"{name}.steps.jsonl")) as f:
        return [json.loads(line) for line in f], wall


def summarise(name, rows, wall, seed):
    """Prints the figures the demo is about: entropy at the start and the end, Cov's sign while
    entropy is still there (below 0.1 nats there is little left to collapse and A·log π has
    almost no spread), reward, and the wall time."""
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
    head, tail = rows[:10], rows[-20:]
    live = [r for r in rows if r["entropy"] > 0.1]
    pos = sum(r["cov"] > 0 for r in live)
    gone = next((r["step"] for r in rows if r["entropy"] < 0.1), None)
    clipped = mean(rows, "clipped") / mean(rows, "tokens")
    print(f"{name}: seed {seed}, {len(rows)} steps in {wall:.1f} s; token entropy"
          f" {mean(head, 'entropy'):.3f} (first 10 steps) → {mean(tail, 'entropy'):.3f} (last 20)"
          f"{f', below 0.1 from step {gone}' if gone is not None else ''}; Cov(log π, A) > 0 at"
          f" {pos}/{len(live)} steps with entropy > 0.1 (mean {mean(live, 'cov'):.3f}, last 20"
          f" {mean(tail, 'cov'):.4f}); reward {mean(head, 'reward'):.2f} →"
          f" {mean(tail, 'reward'):.2f}"
          f"{f'; gradient zeroed on {100 * clipped:.1f}% of tokens' if clipped else ''}",
          flush=True)


def plot(results, path, a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True, constrained_layout=True)
    colors = {"plain": "#c62828", "clip-cov": "#1f77b4"}
    for name, (rows, _) in results.items():
        x = [r["step"] for r in rows]
        for ax, k in zip(axes, ("entropy", "cov", "reward")):
            y = [r[k] for r in rows]
            if k == "entropy":
                ax.plot(x, y, lw=1.4, color=colors.get(name), label=name)
                continue
            w = 20  # the raw values, and their mean over the last 20 steps
            avg = [sum(y[max(0, i - w + 1):i + 1]) / min(i + 1, w) for i in range(len(y))]
            ax.plot(x, y, lw=0.6, alpha=0.35, color=colors.get(name))
            ax.plot(x, avg, lw=1.4, color=colors.get(name), label=f"{name} (20-step mean)")
    for ax, lab in zip(axes, ("token entropy (nats)", "Cov(log π, A) over tokens", "mean reward")):
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[1].axhline(0, color="0.3", lw=0.8)
    axes[0].legend(loc="upper right")
    axes[1].legend(loc="upper right", fontsize=9)
    axes[2].set_xlabel("step")
    fig.suptitle(f"GRPO on a GRU policy (2 ranks, gloo, CPU), emit digits summing to t; "
                 f"{WORLD}×{PROMPTS} prompts × {GROUP} samples per step, seed {a.seed}\n"
                 f"clip-cov: gradient zeroed on {a.clip_ratio:g}·N random tokens with "
                 f"{a.clip_lb:g} < (A−Ā)(log π−mean) < {a.clip_ub:g}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="plain,clip-cov")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--clip-lb", type=float, default=CLIP_LB)
    ap.add_argument("--clip-ub", type=float, default=CLIP_UB)
    ap.add_argument("--clip-ratio", type=float, default=CLIP_RATIO)
    ap.add_argument("--daemon", help="eigenwatchd to start and stream the tokens to")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "demo-rl"),
                    help="the step logs, local token logs and demo-rl-entropy.png")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    d = tmp = None
    if a.daemon:
        # ---- the daemon: started here, its address handed to the ranks through the environment
        # (spawned processes inherit it; eigenwatch.rl.TokenStream reads $EIGENWATCH_ADDRESS).
        # The plot still comes from the local step logs; with a daemon that evaluates the tokens
        # kind it is to come from Client(d.address).history(run=...).
        from demo_collapse import Daemon
        tmp = tempfile.mkdtemp(prefix="ew-demo-rl-")
        d = Daemon(a.daemon, tmp)
        os.environ["EIGENWATCH_ADDRESS"] = d.address
    try:
        results = {name: run(name, a) for name in a.runs.split(",")}
    finally:
        if d:
            d.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    for name, (rows, wall) in results.items():
        summarise(name, rows, wall, a.seed)
    path = os.path.join(a.out, "demo-rl-entropy.png")
    plot(results, path, a)
    print(f"wrote {path} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
