#!/bin/sh
# Install into a DESTDIR, then build and run a client against that install
# with `pkg-config --cflags --libs optim`.
set -u
command -v pkg-config >/dev/null 2>&1 || { echo "pkgconfig: pkg-config missing"; exit 77; }
top_builddir=$(cd "${top_builddir:-.}" && pwd)
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/optim-pc.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"; echo "pkgconfig: make install failed"; exit 1; }
pc=$(find "$tmp/root" -name optim.pc | head -n 1)
[ -n "$pc" ] || { echo "pkgconfig: optim.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags optim) && libs=$(pkg-config --libs optim) || {
  echo "pkgconfig: pkg-config cannot use optim.pc"; exit 1; }
echo "pkgconfig: cflags='$cflags' libs='$libs'"
${CC:-cc} -std=c11 -Wall -Werror -o "$tmp/client" "$top_srcdir/tests/client.c" $cflags $libs || {
  echo "pkgconfig: client does not compile"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
LD_LIBRARY_PATH="$libdir" "$tmp/client" || { echo "pkgconfig: client failed"; exit 1; }
# The installed headers are exactly the public ones.
hdrs=$(find "$tmp/root" -name '*.h' -exec basename {} \; | sort | tr '\n' ' ')
[ "$hdrs" = "optim.h " ] || { echo "pkgconfig: installed headers: $hdrs"; exit 1; }
