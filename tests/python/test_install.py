"""The README's install commands for the Python package, as written, on this Debian machine:
a venv that sees Debian's numpy/msgpack/torch, `pip install --no-build-isolation --no-deps
--no-index clients/python` (no network: PyPI is not reachable), then the installed package —
not the source tree — talks to a real daemon and the torch hooks import.

That pip line needs Debian's python3-wheel (without it setuptools has no `bdist_wheel` and pip
fails), and the README says `scripts/setup.sh` installs it. So, as root with dpkg and apt, the
test first makes this a machine without python3-wheel (`dpkg --remove --force-depends`: Debian's
python3-pip depends on it) and shows the README's pip line fails there for that reason, then runs
the command the README names (`scripts/setup.sh`), then the README's lines, which must now work.
Whatever happens, python3-wheel is installed again at the end (from a copy of its .deb kept
before removing it, by a process in its own session so that meson's kill on a timeout does not
stop it) and dpkg/apt are checked to be consistent. Not root, or no usable apt: that part is a
TAP SKIP line with the reason, and the README's lines still run on the machine as it is.

Runtime (2 cores, Debian 12): about 19 s as root (the .deb kept 1 s, removal + the failing
venv + pip 4 s, setup.sh with its `apt-get update` 5.5 s, venv + pip + probe 6 s, restore and
checks 1 s), 25-57 s under meson beside other work; 8 s with the removal skipped. Instances of
this test on one machine take turns (a lock file), since one's removal would break another's
install."""
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tests", "integration"), os.path.join(ROOT, "tests", "numeric")]
from harness import Daemon  # noqa: E402
from taplib import Tap  # noqa: E402

PY = "/usr/bin/python3"  # the python3 first on PATH may be another interpreter
WHEEL = "python3-wheel"
NO_WHEEL = ("invalid command 'bdist_wheel'", "No module named 'wheel'")  # how pip fails then


def readme_text():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def readme_commands():
    block = re.search(r"```sh\n(python3 -m venv .*?)```", readme_text(), re.S)
    assert block, "README: no venv install block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert lines[0].startswith("python3 -m venv --system-site-packages ~/.venvs/eigenwatch"), lines
    assert "pip install --no-build-isolation --no-deps --no-index clients/python" in lines[1], lines
    return lines


def readme_setup_command():
    """The command the README says installs python3-wheel before its pip line."""
    m = re.search(r"`python3-wheel`: `([^`]+)` installs them\):\n\n```sh\npython3 -m venv ",
                  readme_text())
    assert m, "README: the venv block is not preceded by what installs python3-wheel"
    return m.group(1)


def sh(cmd, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


def root_env():
    """The environment for dpkg/apt: dpkg needs the sbin directories on PATH."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    path = env.get("PATH", "").split(":")
    env["PATH"] = ":".join(path + [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin")
                                   if d not in path])
    return env


def wheel_version():
    """python3-wheel's installed version, or None."""
    p = sh(["dpkg-query", "-W", "-f=${Status} ${Version}", WHEEL], env=root_env())
    st = p.stdout.split()
    return st[3] if p.returncode == 0 and st[:3] == ["install", "ok", "installed"] else None


def wheel_imports():
    return sh([PY, "-c", "import wheel"], cwd="/").returncode == 0


def copy_tree(tmp):
    src = os.path.join(tmp, "src")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        "build*", ".git", "node_modules", "*.egg-info", "__pycache__"))
    return src


def pip_env():
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    for k in ("PYTHONPATH", "PIP_FIND_LINKS"):  # nothing a fresh machine would have
        env.pop(k, None)
    return env


def readme_line(ln, venv):
    return ln.replace("~/.venvs/eigenwatch", venv).replace("python3 -m venv", PY + " -m venv")


def installs_as_the_readme_says():
    tmp = tempfile.mkdtemp(prefix="ew-venv-")
    try:
        src = copy_tree(tmp)
        venv = os.path.join(tmp, "venv")
        env = pip_env()
        d = Daemon()
        try:
            env["EIGENWATCH_ADDRESS"] = d.unix
            for ln in readme_commands():
                cmd = readme_line(ln, venv)
                p = sh(cmd, cwd=src, env=env)
                assert p.returncode == 0, (cmd, p.stdout[-2000:], p.stderr[-2000:])
            py = os.path.join(venv, "bin", "python")
            probe = ("import eigenwatch, eigenwatch.torch, os; "
                     "assert '/venv/' in eigenwatch.__file__, eigenwatch.__file__; "
                     "c = eigenwatch.Client(); c.create('inst', 4); "
                     "print(c.ping().version, c.info('inst').dim)")
            p = sh([py, "-c", probe], cwd=tmp, env=env, timeout=120)
            assert p.returncode == 0 and p.stdout.split()[-1] == "4", (p.stdout, p.stderr)
        finally:
            d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def why_not_remove_wheel():
    """Why this machine cannot be made one without python3-wheel and restored, or None."""
    if os.geteuid() != 0:
        return "not root: cannot remove python3-wheel to show the README's setup installs it"
    for prog in ("dpkg", "dpkg-query", "apt-get"):
        if not shutil.which(prog, path=root_env()["PATH"]):
            return f"no {prog}: not a Debian machine"
    p = sh(["dpkg", "--audit"], env=root_env())
    if p.returncode != 0 or p.stdout.strip():
        return "dpkg --audit reports a problem already: " + (p.stdout + p.stderr).strip()[:300]
    p = sh(["apt-get", "check", "-qq"], env=root_env())
    if p.returncode != 0:
        return "apt-get check fails already: " + (p.stdout + p.stderr).strip()[-300:]
    return None


def keep_wheel_deb(keep):
    """Downloads python3-wheel's .deb (the installed version) into keep, to restore it offline."""
    ver = wheel_version()
    get = ["apt-get", "download", "-qq", WHEEL + (f"={ver}" if ver else "")]
    p = sh(get, cwd=keep, env=root_env(), timeout=120)
    if p.returncode != 0:  # no package lists yet (a machine that never ran apt-get update)
        sh(["apt-get", "update", "-qq"], env=root_env())
        p = sh(get, cwd=keep, env=root_env(), timeout=120)
    debs = [f for f in os.listdir(keep) if f.endswith(".deb")]
    assert p.returncode == 0 and len(debs) == 1, ("apt-get download", p.stdout, p.stderr[-1000:])
    return os.path.join(keep, debs[0])


RESTORE = r"""
dpkg --configure -a
if dpkg-query -W -f='${Status}' python3-wheel 2>/dev/null | grep -q 'install ok installed'; then
  echo "python3-wheel installed"
else
  dpkg -i "$1" >/dev/null && echo "python3-wheel reinstalled from the kept .deb" ||
    { apt-get install -y -qq --no-install-recommends python3-wheel >/dev/null &&
      echo "python3-wheel reinstalled with apt-get"; }
fi
rm -rf "$2"
"""


def restore_wheel(deb, keep):
    """Installs python3-wheel again if it is missing, in a process of its own session (meson's
    kill on a timeout is for this test's process group) that outlives this one if need be."""
    with tempfile.TemporaryFile("w+") as out:  # not a pipe: the process must not die of SIGPIPE
        p = subprocess.Popen(["sh", "-c", RESTORE, "sh", deb or "/nonexistent.deb", keep],
                             stdout=out, stderr=subprocess.STDOUT, env=root_env(),
                             start_new_session=True)
        p.wait(timeout=300)
        out.seek(0)
        return out.read().strip()


def without_wheel_the_readme_pip_line_fails(state):
    assert state["deb"], "no copy of python3-wheel's .deb, so it is not removed"
    if wheel_version():
        p = sh(["dpkg", "--remove", "--force-depends", WHEEL], env=root_env())
        assert p.returncode == 0, ("dpkg --remove", p.stdout, p.stderr)
    assert wheel_version() is None, "python3-wheel still installed"
    assert not wheel_imports(), f"{PY} still imports wheel with python3-wheel removed"
    tmp = tempfile.mkdtemp(prefix="ew-venv-")
    try:
        src, venv = copy_tree(tmp), os.path.join(tmp, "venv")
        venv_line, pip_line = readme_commands()[:2]
        p = sh(readme_line(venv_line, venv), cwd=src, env=pip_env())
        assert p.returncode == 0, ("venv", p.stdout, p.stderr)
        p = sh(readme_line(pip_line, venv), cwd=src, env=pip_env())
        out = p.stdout + p.stderr
        assert p.returncode != 0, ("pip succeeded without python3-wheel", out[-2000:])
        assert any(s in out for s in NO_WHEEL), ("pip failed, not for want of wheel", out[-2000:])
        why = next(s for s in NO_WHEEL if s in out)
        print(f"# without python3-wheel the README's pip line exits {p.returncode}: {why}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def the_readme_setup_installs_wheel():
    cmd = readme_setup_command()
    assert wheel_version() is None, f"{WHEEL} is installed before {cmd}: nothing to show"
    p = sh(cmd, cwd=ROOT, env=root_env(), timeout=600)
    for ln in p.stderr.splitlines():
        if ln.startswith("setup: installing"):
            print(f"# {cmd}: {ln}")
    assert p.returncode == 0, (cmd, p.stdout[-1000:], p.stderr[-2000:])
    assert wheel_version(), (f"{WHEEL} not installed after {cmd}", p.stderr[-2000:])
    assert wheel_imports(), f"{PY} does not import wheel after {cmd}"


def left_consistent():
    assert wheel_version(), f"{WHEEL} is not installed at the end"
    assert wheel_imports(), f"{PY} does not import wheel at the end"
    p = sh(["dpkg", "--audit"], env=root_env())
    assert p.returncode == 0 and not p.stdout.strip(), ("dpkg --audit", p.stdout, p.stderr)
    p = sh(["apt-get", "check", "-qq"], env=root_env())
    assert p.returncode == 0, ("apt-get check", p.stdout, p.stderr)


def take_lock_file():
    """The lock file's descriptor (read-only is enough for flock; an existing file in sticky /tmp
    is opened without O_CREAT, which protected_regular refuses for another user's file)."""
    path = os.path.join(tempfile.gettempdir(), "eigenwatch-test-install.lock")
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


def main():
    # meson's timeout sends SIGTERM: unwind through the finally blocks that restore python3-wheel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fcntl.flock(take_lock_file(), fcntl.LOCK_EX)
    t = Tap()
    why = why_not_remove_wheel()
    if why:
        t.n += 1
        print(f"ok {t.n} - without_python3_wheel_pip_fails_then_readme_setup_installs_it "
              f"# SKIP {why}", flush=True)
        t.case("readme_venv_pip_install_offline_then_talks_to_a_daemon",
               installs_as_the_readme_says)
        t.done()
    keep = tempfile.mkdtemp(prefix="ew-wheel-deb-")
    state = {"deb": None}
    try:
        t.case("keep_a_copy_of_python3_wheel_deb_to_restore_it",
               lambda: state.update(deb=keep_wheel_deb(keep)))
        t.case("without_python3_wheel_the_readme_pip_line_fails",
               without_wheel_the_readme_pip_line_fails, state)
        t.case("the_readme_setup_command_installs_python3_wheel", the_readme_setup_installs_wheel)
        t.case("then_readme_venv_pip_install_offline_then_talks_to_a_daemon",
               installs_as_the_readme_says)
    finally:
        out = restore_wheel(state["deb"], keep)
        print(f"# restore: {out}", flush=True)
    t.case("python3_wheel_installed_and_dpkg_apt_consistent_at_the_end", left_consistent)
    t.done()


if __name__ == "__main__":
    main()
