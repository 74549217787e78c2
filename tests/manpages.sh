#!/bin/bash
# tests/manpages.sh - check the man pages against the library, the tools and
# man/local.mk (STYLE.md, "Man pages", conventions 27-29).
#
#  (a) every function exported by liboptim (nm -D, type T) and every OPTIM_API
#      function of include/optim.h has man/man3/<name>.3, and the name appears
#      in the NAME section of the page it resolves to (.so links followed);
#  (b) every page renders without a warning under lintian's command (skipped,
#      with a message, when man-db's man is not installed);
#  (c) every --long-option printed by `TOOL --help` is documented in
#      man/man1/TOOL.1 (as \-\-option or --option);
#  (d) every page on disk is listed in man/local.mk, and every page listed
#      there exists;
#  (e) every function family page of man/man3 has the sections of STYLE.md
#      convention 28.
#
# Run by `make check` with top_srcdir and top_builddir set; by hand:
#   top_srcdir=. top_builddir=. bash tests/manpages.sh
# Exit status: 0 pass, 1 fail, 77 skip (nothing to check).

set -u
export LC_ALL=C

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
srcdir=$(cd "$top_srcdir" 2>/dev/null && pwd) || {
  echo "manpages: top_srcdir '$top_srcdir' not found"; exit 1; }
builddir=$(cd "$top_builddir" 2>/dev/null && pwd) || {
  echo "manpages: top_builddir '$top_builddir' not found"; exit 1; }
mandir=$srcdir/man

if [ ! -d "$mandir/man3" ]; then
  echo "manpages: SKIP: no $mandir/man3"
  exit 77
fi

checked=0
problems=0
problem() {
  echo "FAIL: $*"
  problems=$((problems + 1))
}

# Print the page a man page resolves to, following .so links (a link is a
# page whose first line that is not a comment is ".so man3/x.3", relative to
# the man directory).  Fails for a dangling link or a loop.
resolve() {
  local page=$1 hops=0 target
  while [ "$hops" -lt 8 ]; do
    target=$(awk '/^[.'"'"']\\"/ { next }
                  { if ($1 == ".so") print $2; exit }' "$page")
    if [ -z "$target" ]; then
      printf '%s\n' "$page"
      return 0
    fi
    page=$mandir/$target
    [ -f "$page" ] || { echo "dangling .so link to $target" >&2; return 1; }
    hops=$((hops + 1))
  done
  echo ".so links loop" >&2
  return 1
}

# The names listed in the NAME section of a page: the text between ".SH NAME"
# and the next ".SH", troff escapes removed, up to the " - " separator.
names_of() {
  awk '/^\.SH[ \t]+"?NAME"?[ \t]*$/ { f = 1; next }
       /^\.S[Hh]/ { f = 0 }
       f && !/^\.\\"/ { printf "%s ", $0 }' "$1" |
    sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\&//g' \
        -e 's/ - .*//' -e 's/^\.[A-Z]* //'
}

# ---- (a) exported symbols and header functions --------------------------------
symbols=""
lib=$builddir/lib/.libs/liboptim.so
nm_cmd=${NM:-nm}
if [ -f "$lib" ]; then
  # $nm_cmd may carry options ("nm -B"): split it on purpose.
  symbols=$($nm_cmd -D --defined-only "$lib" 2>/dev/null |
            awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }')
  [ -n "$symbols" ] || problem "(a) no exported function found in $lib"
elif [ -f "$builddir/lib/.libs/liboptim.a" ]; then
  echo "manpages: no shared library; reading lib/.libs/liboptim.a instead"
  symbols=$($nm_cmd --defined-only "$builddir/lib/.libs/liboptim.a" 2>/dev/null |
            awk '$2 == "T" && $3 ~ /^optim_[a-z]/ { print $3 }')
else
  problem "(a) neither $lib nor lib/.libs/liboptim.a exists (build the library first)"
fi
# The MPI layer, when it was built.
mpilib=$builddir/mpi/.libs/liboptim_mpi.so
if [ -f "$mpilib" ]; then
  symbols="$symbols $($nm_cmd -D --defined-only "$mpilib" 2>/dev/null |
            awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }')"
fi
api=""
for header in "$srcdir/include/optim.h" "$srcdir/include/optim_mpi.h"; do
  if [ -f "$header" ]; then
    api="$api $(grep '^OPTIM_API' "$header" |
          grep -o 'optim_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//')"
  else
    problem "(a) $header not found"
  fi
done

for sym in $(printf '%s\n' $symbols $api | sort -u); do
  checked=$((checked + 1))
  page=$mandir/man3/$sym.3
  if [ ! -f "$page" ]; then
    problem "(a) $sym has no man page man/man3/$sym.3"
    continue
  fi
  if ! target=$(resolve "$page" 2>&1); then
    problem "(a) man/man3/$sym.3: $target"
    continue
  fi
  if ! names_of "$target" | tr ', ' '\n\n' | grep -qx -- "$sym"; then
    problem "(a) $sym is not in the NAME section of ${target#"$srcdir"/}"
  fi
done

# ---- (b) rendering without warnings --------------------------------------------
pages=$(cd "$mandir" && ls man[1-9]/*.[1-9] 2>/dev/null)
if ! command -v man >/dev/null 2>&1; then
  echo "manpages: man is not installed: rendering check (b) skipped"
elif ! man --help 2>&1 | grep -q -- '--warnings'; then
  echo "manpages: this man is not man-db's (no --warnings): rendering check (b) skipped"
else
  for rel in $pages; do
    checked=$((checked + 1))
    out=$(cd "$mandir" && LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
          man --warnings -E UTF-8 -l -Tutf8 -Z "$rel" 2>&1 >/dev/null)
    if [ -n "$out" ]; then
      problem "(b) man/$rel does not render cleanly:"
      printf '%s\n' "$out" | sed 's/^/      /'
    fi
  done
fi

# ---- (c) tool options -------------------------------------------------------------
for tool in optim-info optim-bench optim-plan optim-mpi-bench optim-train optim-schedule; do
  exe=$builddir/tools/$tool
  page=$mandir/man1/$tool.1
  # optim-mpi-bench exists only when the MPI layer was built
  [ "$tool" = optim-mpi-bench ] && [ ! -x "$exe" ] && continue
  if [ ! -x "$exe" ]; then
    problem "(c) tools/$tool is not built"
    continue
  fi
  if ! help=$("$exe" --help 2>&1); then
    problem "(c) '$tool --help' failed"
    continue
  fi
  if [ ! -f "$page" ]; then
    problem "(c) $tool has no man page man/man1/$tool.1"
    continue
  fi
  opts=$(printf '%s\n' "$help" | grep -o -- '--[A-Za-z0-9][A-Za-z0-9-]*' | sort -u)
  [ -n "$opts" ] || problem "(c) '$tool --help' lists no long option"
  text=$(sed 's/\\-/-/g' "$page")
  for opt in $opts; do
    checked=$((checked + 1))
    if ! printf '%s\n' "$text" | grep -Eq -e "${opt}([^A-Za-z0-9-]|\$)"; then
      problem "(c) $tool $opt is not documented in man/man1/$tool.1"
    fi
  done
done

# ---- (d) man/local.mk -----------------------------------------------------------
mk=$mandir/local.mk
if [ ! -f "$mk" ]; then
  problem "(d) man/local.mk not found"
else
  listed=$(sed 's/#.*//' "$mk" | grep -o 'man/man[1-9]/[^[:space:]\\]*' | sort -u)
  for rel in $pages; do
    checked=$((checked + 1))
    printf '%s\n' "$listed" | grep -qxF "man/$rel" ||
      problem "(d) man/$rel is not listed in man/local.mk"
  done
  for f in $listed; do
    [ -f "$srcdir/$f" ] || problem "(d) man/local.mk lists $f, which does not exist"
  done
fi

# ---- (e) sections of the function family pages ----------------------------------
for f in "$mandir"/man3/*.3; do
  [ "$(resolve "$f" 2>/dev/null)" = "$f" ] || continue   # a .so stub
  [ "${f##*/}" = liboptim.3 ] && continue                 # the overview
  checked=$((checked + 1))
  for sec in NAME LIBRARY SYNOPSIS DESCRIPTION "RETURN VALUE" ERRORS \
             "THREAD SAFETY" EXAMPLE "SEE ALSO" HISTORY; do
    grep -Eq "^\.SH[[:space:]]+\"?$sec\"?[[:space:]]*\$" "$f" ||
      problem "(e) man/man3/${f##*/} has no $sec section"
  done
done

echo "manpages: $checked checked, $problems problems"
[ "$problems" -eq 0 ] || exit 1
exit 0
