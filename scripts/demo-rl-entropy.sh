#!/usr/bin/env bash
# scripts/demo-rl-entropy.sh — a small real RL run watched by eigenwatchd: a GRU policy trained by
# GRPO on a task with a checkable reward, as two ranks (torch.distributed, gloo on loopback, CPU,
# Debian's PyTorch), once with the plain policy gradient (entropy collapses while Cov(log π, A)
# stays positive) and once with Clip-Cov (entropy held up). Both ranks stream per-token entropy,
# log-prob, advantage, mask and lengths through eigenwatch.rl.TokenStream (run plain / clip-cov,
# stream policy) to the daemon started here, with alert rules entropy_collapse (token_mean below
# a quarter of its start) and entropy_explosion (token_mean above 2 nats from step 100). Writes
# docs/img/demo-rl-entropy.png from the daemon's history and docs/img/demo-rl-page.png (its page
# for run plain, in headless Chromium), and prints each run's figures and a verification:
# entropy_collapse fired for plain, nothing for clip-cov, a history point per step
# (scripts/demo_rl_entropy.py). About two minutes; arguments go to the script (--seed N, --steps
# N, --runs plain, --out DIR, --clip-ratio R, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python3-matplotlib
scripts/build.sh build >/dev/null
exec /usr/bin/python3 scripts/demo_rl_entropy.py --daemon build/daemon/eigenwatchd --out docs/img "$@"
