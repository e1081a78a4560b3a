"""Runs the C client's test program (tests/unit/test_cclient.c) against a real daemon and relays
its TAP output."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Daemon  # noqa: E402


def main():
    exe, vectors = sys.argv[1], sys.argv[2]
    d = Daemon()
    try:
        p = subprocess.run([exe, d.unix, vectors], capture_output=True, text=True, timeout=120)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        rc = p.returncode
    finally:
        stop = d.stop()
    sys.exit(rc or (stop != 0))


if __name__ == "__main__":
    main()
