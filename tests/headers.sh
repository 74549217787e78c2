#!/bin/sh
# The public header compiles cleanly on its own as C11 and as C++, and its
# declarations have C linkage in C++.
set -u
inc="${top_srcdir:-.}/include"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/optim-hdr.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
cat > "$tmp/t.c" <<'C'
#include <optim.h>
#include <optim.h>
int main(void) { return optim_step(0) == OPTIM_EINVAL ? 0 : 1; }
C
${CC:-cc} -std=c11 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o" \
  || { echo "headers: optim.h is not clean C11"; fail=1; }
cp "$tmp/t.c" "$tmp/t.cc"
cxx=${CXX:-c++}
if command -v "$cxx" >/dev/null 2>&1; then
  for std in c++11 c++17; do
    $cxx -std=$std -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/t.cc" -o "$tmp/t.o" \
      || { echo "headers: optim.h is not clean $std"; fail=1; }
  done
  # C linkage: the C++ object refers to the unmangled name.
  nm "$tmp/t.o" | grep -q ' U optim_step$' || { echo "headers: optim_step is mangled in C++"; fail=1; }
else
  echo "headers: no C++ compiler: C++ part skipped"
fi
# optim_mpi.h, when MPI's headers are there.
# (MPI's own headers as system headers: Open MPI's C++ bindings do not
# pass -Wextra themselves)
if mflags=$(pkg-config --cflags mpi-c 2>/dev/null | sed 's/-I/-isystem /g'); then
  printf '#include <optim_mpi.h>\nint main(void) { return optim_mpi_step(0) == OPTIM_EINVAL ? 0 : 1; }\n' > "$tmp/m.c"
  ${CC:-cc} -std=c11 -Wall -Wextra -Werror -I"$inc" $mflags -c "$tmp/m.c" -o "$tmp/m.o" \
    || { echo "headers: optim_mpi.h is not clean C11"; fail=1; }
  cp "$tmp/m.c" "$tmp/m.cc"
  if command -v "$cxx" >/dev/null 2>&1; then
    $cxx -std=c++11 -Wall -Wextra -Werror -I"$inc" $mflags -c "$tmp/m.cc" -o "$tmp/m.o" \
      || { echo "headers: optim_mpi.h is not clean C++"; fail=1; }
    nm "$tmp/m.o" | grep -q ' U optim_mpi_step$' || { echo "headers: optim_mpi_step is mangled"; fail=1; }
  fi
fi
[ $fail = 0 ] && echo "headers: optim.h is clean C11 and C++"
exit $fail
