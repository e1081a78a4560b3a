"""The README's install commands for the Python package, as written, on this Debian machine:
a venv that sees Debian's numpy/msgpack/torch, `pip install --no-build-isolation --no-deps
--no-index clients/python` (no network: PyPI is not reachable), then the installed package —
not the source tree — talks to a real daemon and the torch hooks import."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tests", "integration"), os.path.join(ROOT, "tests", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402


def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"```sh\n(python3 -m venv .*?)```", text, re.S)
    assert block, "README: no venv install block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert lines[0].startswith("python3 -m venv --system-site-packages ~/.venvs/eigenwatch"), lines
    assert "pip install --no-build-isolation --no-deps --no-index clients/python" in lines[1], lines
    return lines


def installs_as_the_readme_says():
    tmp = tempfile.mkdtemp(prefix="ew-venv-")
    try:
        src = os.path.join(tmp, "src")
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            "build*", ".git", "node_modules", "*.egg-info", "__pycache__"))
        venv = os.path.join(tmp, "venv")
        env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("PYTHONPATH", None)
        d = Daemon()
        try:
            env["EIGENWATCH_ADDRESS"] = d.unix
            for ln in readme_commands():
                cmd = ln.replace("~/.venvs/eigenwatch", venv).replace("python3 -m venv",
                                                                        "/usr/bin/python3 -m venv")
                p = subprocess.run(cmd, shell=True, cwd=src, env=env, capture_output=True,
                                   text=True, timeout=300)
                assert p.returncode == 0, (cmd, p.stdout[-2000:], p.stderr[-2000:])
            py = os.path.join(venv, "bin", "python")
            probe = ("import eigenwatch, eigenwatch.torch, os; "
                     "assert '/venv/' in eigenwatch.__file__, eigenwatch.__file__; "
                     "c = eigenwatch.Client(); c.create('inst', 4); "
                     "print(c.ping().version, c.info('inst').dim)")
            p = subprocess.run([py, "-c", probe], cwd=tmp, env=env, capture_output=True,
                               text=True, timeout=120)
            assert p.returncode == 0 and p.stdout.split()[-1] == "4", (p.stdout, p.stderr)
        finally:
            d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Tap()
    t.case("readme_venv_pip_install_offline_then_talks_to_a_daemon", installs_as_the_readme_says)
    t.done()


if __name__ == "__main__":
    main()
