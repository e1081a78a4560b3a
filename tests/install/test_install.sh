#!/usr/bin/env bash
# test_install.sh BUILD_DIR SOURCE_ROOT — installs the build into a temporary DESTDIR, compiles
# the README's library example against the installed header and pkg-config file, and runs it on
# a few rows. Prints TAP. Fails if the README example no longer compiles or answers wrongly.
set -u
build=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH  # the programs below must find the installed libraries, not the build's
n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$tmp/log"; }

if meson install -C "$build" --destdir "$tmp/dest" --no-rebuild >"$tmp/log" 2>&1; then
  ok "meson_install_into_destdir"
else
  no "meson_install_into_destdir"
fi
pc=$(find "$tmp/dest" -name eigenwatch.pc | head -1)
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/dest" PKG_CONFIG_PATH=$(dirname "$pc")
[ -f "$tmp/dest$prefix/include/eigenwatch/eigenwatch.h" ] && ok "public_header_installed" \
  || { echo "header missing" >"$tmp/log"; no "public_header_installed"; }

# the README example, verbatim between its ```c fence and the closing fence, inside a main()
sed -n '/^```c$/,/^```$/p' "$root/README.md" | sed '1d;$d' >"$tmp/example.c.in"
{
  grep '^#include' "$tmp/example.c.in"
  echo '#include <stdio.h>'
  echo 'int main(void) {'
  echo '  static unsigned short rows[3 * 768];'
  echo '  size_t n = 3;'
  echo '  for (size_t i = 0; i < 3 * 768; i++) rows[i] = (unsigned short)(0x3f80 + (i * 7919) % 97);'
  grep -v '^#include' "$tmp/example.c.in"
  echo '  return 0;'
  echo '}'
} >"$tmp/example.c"
libdir=$(pkg-config --variable=libdir eigenwatch)
case "$libdir" in  # some pkgconf versions already apply the sysroot to variables
  "$tmp/dest"*) rpath=$libdir ;;
  *) rpath="$tmp/dest$libdir" ;;
esac
if cc -o "$tmp/example" "$tmp/example.c" $(pkg-config --cflags --libs eigenwatch) \
  -Wl,-rpath,"$rpath" >"$tmp/log" 2>&1; then
  ok "readme_example_compiles_against_pkg_config"
else
  no "readme_example_compiles_against_pkg_config"
fi
if "$tmp/example" >"$tmp/log" 2>&1 && grep -q '^H = [0-9.]* nats as of 3 rows$' "$tmp/log"; then
  ok "readme_example_runs_and_answers"
else
  no "readme_example_runs_and_answers"
fi
# the C client library through its own pkg-config file
cat >"$tmp/client.c" <<'C'
#include <eigenwatch/ewclient.h>
#include <stdio.h>
int main(void) {
  ewc_t *c;
  char err[256];
  int rc = ewc_connect("unix:/nonexistent/x.sock", 500, &c, err, sizeof err);
  printf("%d %s\n", rc, ewc_strerror(rc));
  return rc == EWC_ECONNECT ? 0 : 1;
}
C
if cc -o "$tmp/client" "$tmp/client.c" -I"$tmp/dest$prefix/include" \
  $(pkg-config --cflags --libs eigenwatch-client) -Wl,-rpath,"$rpath" >"$tmp/log" 2>&1 \
  && "$tmp/client" >>"$tmp/log" 2>&1; then
  ok "c_client_links_against_its_pkg_config_file"
else
  no "c_client_links_against_its_pkg_config_file"
fi
[ -x "$tmp/dest$prefix/bin/eigenwatch" ] && [ -x "$tmp/dest$prefix/sbin/eigenwatchd" ] \
  && ok "cli_and_daemon_installed" || { ls -R "$tmp/dest" >"$tmp/log"; no "cli_and_daemon_installed"; }
echo "1..$n"
[ "$bad" -eq 0 ]
