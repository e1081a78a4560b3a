#!/usr/bin/python3
"""Writes proto/vectors/placement.tsv: the rendezvous placement of (run, stream) pairs over sets
of daemon addresses (clients/python/eigenwatch/placement.py), which the C, Python and JS clients'
tests read back. Deterministic: run it again and the file does not change.

Records (tab-separated; lines starting with # are comments):
  hash   RUN  STREAM  ADDRESS         FNV-1a-64(RUN 0x00 STREAM 0x00 ADDRESS), 16 hex digits
  place  RUN  STREAM  ADDR1,ADDR2,..  OWNER (the address with the largest hash; ties: the smaller)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
from eigenwatch.placement import place, score  # noqa: E402

SETS = [
    ["tcp:127.0.0.1:7700"],
    ["tcp:127.0.0.1:7700", "tcp:127.0.0.1:7710"],
    ["tcp:10.0.0.1:7700", "tcp:10.0.0.2:7700", "tcp:10.0.0.3:7700"],
    ["tcp:a:7700", "tcp:b:7700", "tcp:c:7700", "tcp:d:7700", "tcp:e:7700"],
    ["unix:/run/eigenwatch/a.sock", "unix:/run/eigenwatch/b.sock", "tcp:[::1]:7700"],
]
RUNS = ["default", "exp-42", "run/7:b"]
STREAMS = [f"layer.{i}" for i in range(24)] + ["policy", "attn/entropy", "clip", "x"]


def main():
    out = os.path.join(HERE, "..", "proto", "vectors", "placement.tsv")
    lines = [l for l in __doc__.splitlines() if l.startswith("  ")]
    rows = ["# proto/vectors/placement.tsv — written by tools/make_placement_vectors.py; do not "
            "edit.", "# Rendezvous placement (PROTOCOL.md, \"Many daemons\"):"] + \
           ["#" + l for l in lines]
    for run in RUNS:
        for stream in STREAMS[:6]:
            for a in SETS[2] + SETS[4]:
                rows.append(f"hash\t{run}\t{stream}\t{a}\t{score(run, stream, a):016x}")
    for run in RUNS:
        for stream in STREAMS:
            for s in SETS:
                rows.append(f"place\t{run}\t{stream}\t{','.join(s)}\t{place(run, stream, s)}")
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(rows)} lines to {out}")


if __name__ == "__main__":
    main()
