#!/bin/sh
# Only optim_* symbols leave liboptim.so, all under the version node, and
# the soname is liboptim.so.0.
set -u
lib="${top_builddir:-.}/lib/.libs/liboptim.so"
[ -f "$lib" ] || { echo "symbols: $lib not built"; exit 1; }
nm="${NM:-nm}"
fail=0
syms=$($nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}')
count=0
for s in $syms; do
  count=$((count + 1))
  case "$s" in
    optim_*@@LIBOPTIM_*|optim_*@LIBOPTIM_*|optim_*) ;;
    LIBOPTIM_*) ;;
    *) echo "symbols: unexpected export: $s"; fail=1 ;;
  esac
done
# The exports are exactly the functions declared OPTIM_API in optim.h.
hdr="${top_srcdir:-.}/include/optim.h"
declared=$(tr '\n' ' ' < "$hdr" | grep -o 'OPTIM_API[^;(]*(' | grep -o 'optim_[a-z0-9_]*' | sort -u)
exported=$(printf '%s\n' $syms | sed 's/@.*//' | grep '^optim_' | sort -u)
if [ "$declared" != "$exported" ]; then
  echo "symbols: exports differ from optim.h declarations:"
  printf '%s\n' "$declared" > symbols.declared.tmp
  printf '%s\n' "$exported" > symbols.exported.tmp
  diff symbols.declared.tmp symbols.exported.tmp
  rm -f symbols.declared.tmp symbols.exported.tmp
  fail=1
fi
# Every exported function is under the LIBOPTIM_0.1 node.
if command -v readelf >/dev/null 2>&1; then
  readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" && $8 ~ /^optim_/' \
    | grep -v '@@LIBOPTIM_0.1' | grep . && { echo "symbols: exports outside LIBOPTIM_0.1"; fail=1; }
  soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
  [ "$soname" = "liboptim.so.0" ] || { echo "symbols: soname is '$soname'"; fail=1; }
  readelf -d "$lib" | grep -q 'NEEDED.*libmpi' && { echo "symbols: liboptim links libmpi"; fail=1; }
fi
echo "symbols: $count exported symbols checked"

# The MPI layer exports exactly optim_mpi.h's functions, and links libmpi.
mpilib="${top_builddir:-.}/mpi/.libs/liboptim_mpi.so"
if [ -f "$mpilib" ]; then
  mhdr="${top_srcdir:-.}/include/optim_mpi.h"
  mdecl=$(tr '\n' ' ' < "$mhdr" | grep -o 'OPTIM_API[^;(]*(' | grep -o 'optim_[a-z0-9_]*' | sort -u)
  mexp=$($nm -D --defined-only "$mpilib" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' | sed 's/@.*//' | sort -u)
  [ "$mdecl" = "$mexp" ] || { echo "symbols: liboptim_mpi exports differ from optim_mpi.h"; echo "$mexp"; fail=1; }
  readelf -d "$mpilib" | grep -q 'NEEDED.*libmpi' || { echo "symbols: liboptim_mpi does not link libmpi"; fail=1; }
  soname=$(readelf -d "$mpilib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
  [ "$soname" = "liboptim_mpi.so.0" ] || { echo "symbols: MPI soname is '$soname'"; fail=1; }
  echo "symbols: liboptim_mpi checked"
fi
exit $fail
