#!/usr/bin/env bash
# test_pip_install.sh SOURCE_ROOT — the Python package installs with pip from its folder (offline:
# --no-index, system setuptools) into a fresh venv and imports from there, not from the tree.
set -u
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
step() { if eval "$2" >"$tmp/log" 2>&1; then echo "ok $((n += 1)) - $1"; else
  echo "not ok $((n += 1)) - $1"; sed 's/^/# /' "$tmp/log"; bad=1; fi; }
step venv_with_system_site_packages "/usr/bin/python3 -m venv --system-site-packages $tmp/venv"
step pip_install_from_folder \
  "$tmp/venv/bin/pip install --no-deps --no-build-isolation --no-index $root/clients/python"
step imports_installed_copy "cd $tmp && $tmp/venv/bin/python -c 'import eigenwatch, eigenwatch.torch, sys; \
assert eigenwatch.__file__.startswith(\"$tmp/venv\"), eigenwatch.__file__; print(eigenwatch.__version__)'"
echo "1..$n"
exit $bad
