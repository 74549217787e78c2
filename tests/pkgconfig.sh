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
case "$hdrs" in
  "optim.h "|"optim.h optim_mpi.h ") ;;
  *) echo "pkgconfig: installed headers: $hdrs"; exit 1 ;;
esac
# The MPI layer, when built: a client with pkg-config optim-mpi, on 2 ranks.
if [ -f "$(dirname "$pc")/optim-mpi.pc" ]; then
  cat > "$tmp/mclient.c" <<'C'
#include <optim_mpi.h>
#include <stdio.h>
int main(int argc, char **argv)
{
  float w[4] = {1, 2, 3, 4}, g[4];
  int64_t shape[1] = {4};
  optim_optimizer *opt;
  optim_mpi *d;
  int grp, rank;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  optim_create(&opt);
  optim_add_group(opt, "adamw", &grp);
  optim_add_param(opt, grp, "w", OPTIM_FLOAT32, 1, shape, w, g, NULL);
  if (optim_mpi_create(opt, MPI_COMM_WORLD, &d) != OPTIM_OK) return 1;
  for (int i = 0; i < 4; i++) g[i] = (float)(rank + 1);
  int st = optim_mpi_step(d);
  if (rank == 0) printf("optim-mpi client: %s, g averaged to %g\n", optim_strerror(st), g[0]);
  optim_mpi_destroy(d);
  optim_destroy(opt);
  MPI_Finalize();
  return st;
}
C
  # (no sysroot here: it would also prefix the MPI paths; copies of the .pc
  # files point at the DESTDIR instead)
  mkdir -p "$tmp/pc"
  for f in optim.pc optim-mpi.pc; do
    sed "s|^prefix=|prefix=$tmp/root|" "$(dirname "$pc")/$f" > "$tmp/pc/$f"
  done
  mflags=$(PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH="$tmp/pc" pkg-config --cflags --libs optim-mpi) ||
    { echo "pkgconfig: optim-mpi.pc unusable"; exit 1; }
  echo "pkgconfig: optim-mpi: $mflags"
  ${CC:-cc} -std=c11 -Wall -Werror -o "$tmp/mclient" "$tmp/mclient.c" $mflags || {
    echo "pkgconfig: MPI client does not compile"; exit 1; }
  if [ -n "${MPIEXEC:-}" ] && command -v "$MPIEXEC" >/dev/null 2>&1; then
    LD_LIBRARY_PATH="$libdir" "$MPIEXEC" --oversubscribe -np 2 "$tmp/mclient" ||
      { echo "pkgconfig: MPI client failed"; exit 1; }
  fi
fi
