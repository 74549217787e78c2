#!/bin/sh
# Run tests/mpi_test under mpiexec with 1 to 4 ranks (oversubscribed).
# OPTIM_TEST_MPI_EXEC (make check-valgrind) prefixes the program on every rank.
set -u
prog="${top_builddir:-.}/tests/mpi_test"
[ -x "$prog" ] || { echo "mpi: liboptim_mpi not built (configure found no MPI)"; exit 77; }
[ -n "${MPIEXEC:-}" ] && command -v "$MPIEXEC" >/dev/null 2>&1 || {
  echo "mpi: mpiexec not found"; exit 77; }
fail=0
for p in 1 2 3 4; do
  timeout 300 "$MPIEXEC" --oversubscribe --mca btl self,vader -np $p ${OPTIM_TEST_MPI_EXEC:-} "$prog" || {
    echo "mpi: -np $p failed"; fail=1; }
done
exit $fail
