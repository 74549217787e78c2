#!/bin/sh
# The command-line tools: output, exit statuses, the OpenBLAS core warning.
set -u
b="${top_builddir:-.}/tools"
fail=0
t() { # description, expected status, command...
  what=$1 want=$2
  shift 2
  "$@" >tools.out.tmp 2>tools.err.tmp
  got=$?
  if [ "$got" != "$want" ]; then
    echo "tools: $what: exit $got, want $want"; cat tools.err.tmp; fail=1
  fi
}
has() { grep -q -e "$2" "$1" || { echo "tools: '$2' missing from $1 output"; fail=1; }; }

t "info --list" 0 "$b/optim-info" --list
for a in sgd adam adamw adagrad; do has tools.out.tmp "^$a\$"; done
t "info --algorithm adamw" 0 "$b/optim-info" --algorithm adamw
has tools.out.tmp "weight_decay.*1e-2"
has tools.out.tmp "nonfinite.*error"
t "info unknown algorithm" 1 "$b/optim-info" --algorithm nope
has tools.err.tmp "unknown algorithm 'nope'"
t "info bad option" 2 "$b/optim-info" --bogus
t "info extra argument" 2 "$b/optim-info" extra
t "info --version" 0 "$b/optim-info" --version
has tools.out.tmp "0\.1\.0"
t "info --help" 0 "$b/optim-info" --help
has tools.out.tmp "Usage: optim-info"
t "info" 0 "$b/optim-info"
has tools.out.tmp "OpenBLAS core:"
# A fallback core on a CPU with AVX2 must be warned about, with the remedy.
if grep -q avx2 /proc/cpuinfo 2>/dev/null; then
  OPENBLAS_CORETYPE=Prescott t "info on Prescott" 0 "$b/optim-info" --blas
  has tools.out.tmp "core: Prescott"
  has tools.err.tmp "warning: OpenBLAS runs the fallback core 'Prescott'"
  has tools.err.tmp "OPENBLAS_CORETYPE="
fi

t "bench small" 0 "$b/optim-bench" --params 64K --tensors 3 --iters 2 --warmup 1 --threads 2
has tools.out.tmp "ratio step/same-stream"
has tools.out.tmp "4 reads + 3 writes"
t "bench sgd float64" 0 "$b/optim-bench" -a sgd -d float64 -p 32K -i 2 -w 0
has tools.out.tmp "3 reads + 2 writes"
t "bench adagrad options" 0 "$b/optim-bench" -a adagrad -p 32K -i 2 -o "nonfinite=zero, lr = 0.1"
t "bench plain sgd" 0 "$b/optim-bench" -a sgd -p 32K -i 2 -o momentum=0
has tools.out.tmp "2 reads + 1 writes"
t "bench unknown algorithm" 2 "$b/optim-bench" -a nope
t "bench bad count" 2 "$b/optim-bench" -p 12Q
t "bench bad dtype" 2 "$b/optim-bench" -d float16
t "bench bad option value" 2 "$b/optim-bench" -p 32K -o lr=-1
has tools.err.tmp "lr"
t "bench zero iterations" 2 "$b/optim-bench" -i 0
t "bench ns" 0 "$b/optim-bench" --ns 48x200 -i 2 -w 0 -t 1
has tools.out.tmp "ratio of rates ns5/gemm"
t "bench ns bad shape" 2 "$b/optim-bench" --ns 48by200
t "bench muon shapes" 0 "$b/optim-bench" -a muon --shapes 32x32:2,16x64 -i 2 -w 0 -t 1
has tools.out.tmp "ratio step/NS"
t "bench shapes bad" 2 "$b/optim-bench" -a muon --shapes 32x
t "bench shapes too many" 2 "$b/optim-bench" -a muon --shapes 4x4:200
t "bench shapes refused" 2 "$b/optim-bench" -a muon -o bogus=1 --shapes 4x4
t "plan" 0 "$b/optim-plan" --shapes 1024x1024:12 --ranks 2
has tools.out.tmp "imbalance (max/mean) 1.0000"
t "plan 64 nodes" 0 "$b/optim-plan" --shapes 2048x2048:96,2048x8192:48 --ranks 64
has tools.out.tmp "NS speedup over one rank"
t "plan bad shapes" 2 "$b/optim-plan" --shapes 10by10 --ranks 2
t "plan bad ranks" 2 "$b/optim-plan" --shapes 10x10 --ranks 0
rm -f tools.out.tmp tools.err.tmp
[ $fail = 0 ] && echo "tools: all checks passed"
exit $fail
