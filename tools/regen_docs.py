#!/usr/bin/python3
"""Rewrites the generated blocks of docs/METRICS.md, docs/STATE.md and proto/PROTOCOL.md from a
build tree.

usage: tools/regen_docs.py [BUILD_DIR]   (default: build)

Each block sits between "<!-- NAME: generated ... -->" and "<!-- /NAME -->" markers; the
generators (build/tools/ew_metrics_doc, ew_state_doc, ew_protocol_doc) print the blocks with
their markers. A block the document does not carry yet is an error: where it goes is a human choice.
tests/numeric/test_docs.py checks that the documents carry exactly what the generators print."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [("ew_metrics_doc", "docs/METRICS.md"), ("ew_state_doc", "docs/STATE.md"),
        ("ew_protocol_doc", "proto/PROTOCOL.md")]
BLOCK = re.compile(r"<!-- ([a-z:_-]+): generated .*? -->\n.*?<!-- /\1 -->\n", re.S)


def blocks(text):
    return {m.group(1): m for m in BLOCK.finditer(text)}


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    for tool, doc in DOCS:
        out = subprocess.run([os.path.join(build, "tools", tool)], check=True,
                             capture_output=True, text=True).stdout
        path = os.path.join(ROOT, doc)
        text = open(path).read()
        have = blocks(text)
        for name, m in blocks(out).items():
            if name not in have:
                sys.exit(f"{doc} has no '{name}' block; add its markers where it belongs")
            text = text.replace(have[name].group(0), m.group(0))
        open(path, "w").write(text)
        print(f"{doc}: {len(blocks(out))} blocks")


if __name__ == "__main__":
    main()
