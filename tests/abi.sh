#!/bin/sh
# The ABI of liboptim.so.0 against the committed baseline abi/liboptim.abi:
# any change to an existing function or type, or a removed symbol, fails.
# Added functions pass (they are compatible) and are listed, as a reminder
# to bump the interface version and the baseline at release (HACKING).
set -u
top_srcdir=${top_srcdir:-.}
lib="${top_builddir:-.}/lib/.libs/liboptim.so.0"
base="$top_srcdir/abi/liboptim.abi"
command -v abidiff >/dev/null 2>&1 || { echo "abi: abidiff (abigail-tools) not installed"; exit 77; }
[ -f "$lib" ] || { echo "abi: $lib not built"; exit 1; }
readelf -S "$lib" 2>/dev/null | grep -q '\.debug_info' || {
  echo "abi: $lib has no debug information (build with -g)"; exit 77; }
flags="--drop-private-types --fail-no-debug-info --headers-dir2 $top_srcdir/include"
abidiff --no-added-syms $flags "$base" "$lib" > abi.out.tmp 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  cat abi.out.tmp
  echo "abi: liboptim.so.0 is not compatible with abi/liboptim.abi (abidiff exit $rc)"
  rm -f abi.out.tmp
  exit 1
fi
abidiff $flags "$base" "$lib" > abi.out.tmp 2>&1
if grep -q '^  \[A\]' abi.out.tmp; then
  echo "abi: added since the baseline (compatible; at release bump current and age"
  echo "     in configure.ac and run make abi-baseline):"
  grep '^  \[A\]' abi.out.tmp
fi
rm -f abi.out.tmp
echo "abi: compatible with abi/liboptim.abi"
# The MPI layer, when built, against its own baseline.
mlib="${top_builddir:-.}/mpi/.libs/liboptim_mpi.so.0"
if [ -f "$mlib" ]; then
  abidiff --no-added-syms $flags "$top_srcdir/abi/liboptim_mpi.abi" "$mlib" > abi.out.tmp 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    cat abi.out.tmp
    echo "abi: liboptim_mpi.so.0 is not compatible with abi/liboptim_mpi.abi (abidiff exit $rc)"
    rm -f abi.out.tmp
    exit 1
  fi
  rm -f abi.out.tmp
  echo "abi: compatible with abi/liboptim_mpi.abi"
fi
