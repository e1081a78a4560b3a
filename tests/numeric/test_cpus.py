"""The numeric tests of exactness on every CPU kernel this machine can run.

OpenBLAS picks its BLAS kernels by CPU (DYNAMIC_ARCH): the same dsyrk sums in another order on an
Intel Xeon (SkylakeX kernels) than on an AMD EPYC (Zen kernels), and an f32 batch Gram that passed
on one failed on the other (diagonal bias 5.05e-7 > 5e-7 at offset 1e4 with the SkylakeX kernels;
the same case passed with Zen's). OPENBLAS_CORETYPE forces the kernels of another CPU, so one machine can check
them all: this runs test_exact.py and test_edges.py once per core type whose instructions this CPU
has (read from /proc/cpuinfo), checks from OPENBLAS_VERBOSE that OpenBLAS really used it, and
reports one TAP case per (core type, test file). A core type the CPU cannot run is skipped with
the reason.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# core type -> cpu flags its kernels need (OpenBLAS 0.3.21 names; verbose prints "Core: <name>")
CORES = [("Sandybridge", {"avx"}), ("Haswell", {"avx2", "fma"}), ("Zen", {"avx2", "fma"}),
         ("SkylakeX", {"avx512f", "avx512dq", "avx512bw", "avx512vl"})]
TESTS = ["test_exact.py", "test_edges.py"]


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def main():
    flags = cpu_flags()
    n = failed = 0
    for core, need in CORES:
        for test in TESTS:
            n += 1
            name = f"{test} with OPENBLAS_CORETYPE={core}"
            missing = need - flags
            if missing:
                print(f"ok {n} - {name} # SKIP this CPU lacks {' '.join(sorted(missing))}")
                continue
            env = dict(os.environ, OPENBLAS_CORETYPE=core, OPENBLAS_VERBOSE="2")
            p = subprocess.run([sys.executable, os.path.join(HERE, test)], env=env,
                               capture_output=True, text=True)
            used = [line.split(":", 1)[1].strip() for line in p.stdout.splitlines()
                    + p.stderr.splitlines() if line.startswith("Core:")]
            if p.returncode == 0 and not used:
                print(f"ok {n} - {name} # SKIP OpenBLAS printed no core type (not DYNAMIC_ARCH)")
                continue
            ok = p.returncode == 0 and used and used[0].lower() == core.lower()
            print(f"{'ok' if ok else 'not ok'} {n} - {name}", flush=True)
            if not ok:
                failed += 1
                print(f"# OpenBLAS used: {used[:1]}; exit {p.returncode}")
                for line in (p.stdout + p.stderr).splitlines():
                    if line.startswith("not ok") or line.startswith("# AssertionError"):
                        print(f"# {line}")
    print(f"1..{n}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
