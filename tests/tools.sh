#!/bin/sh
# The command-line tools: output, exit statuses, the OpenBLAS core warning.
set -u
b="${top_builddir:-.}/tools"
fail=0
# OPTIM_TEST_EXEC (make check-valgrind) prefixes every tool run, e.g. with
# libtool --mode=execute valgrind ...; standard input is $tin (/dev/null).
tin=/dev/null
t() { # description, expected status, command...
  what=$1 want=$2
  shift 2
  ${OPTIM_TEST_EXEC:-} "$@" <"$tin" >tools.out.tmp 2>tools.err.tmp
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

# optim-schedule: exact CSV (torch's cosine closed form, computed with
# Python's math.cos), the lr column, refined schedules, errors.
sch="$b/optim-schedule"
same() { # file, expected text
  printf '%s\n' "$2" > tools.want.tmp
  diff tools.want.tmp "$1" >/dev/null || {
    echo "tools: unexpected output (< wanted, > got):"; diff tools.want.tmp "$1"; fail=1; }
}
t "schedule cosine" 0 "$sch" --spec cosine:total=4 --steps 6
same tools.out.tmp "step,factor
0,1
1,0.8535533905932737
2,0.5
3,0.14644660940672627
4,0
5,0.14644660940672616"
t "schedule step --lr" 0 "$sch" -s step:size=2 -n 5 --lr 0.5
same tools.out.tmp "step,factor,lr
0,1,0.5
1,1,0.5
2,0.1,0.05
3,0.1,0.05
4,0.010000000000000002,0.005000000000000001"
t "schedule warmup_linear" 0 "$sch" -s " warmup_linear : warmup=2, total=4" -n 6
same tools.out.tmp "step,factor
0,0
1,0.5
2,1
3,0.5
4,0
5,0"
t "schedule wsd" 0 "$sch" -s wsd:warmup=0,total=4,decay=2,min=0.5 -n 5
same tools.out.tmp "step,factor
0,1
1,1
2,1
3,0.75
4,0.5"
t "schedule many steps" 0 "$sch" -s constant -n 100000
[ "$(wc -l < tools.out.tmp)" -eq 100001 ] || { echo "tools: schedule: not 100001 lines"; fail=1; }
# Refined: a header, quoted values, an infinite value (skipped), constant
# norms (a power of two: exact): the linear decay, with either norm.
printf '"Step","gnorm"\n"0","4"\n"1","inf"\n"2","4"\n# note\n\n"3","4"\n' > tools.csv.tmp
for n in 1 2; do
  t "schedule refined constant norm $n" 0 "$sch" --refined tools.csv.tmp --column 2 --norm $n -n 5
  same tools.out.tmp "step,factor
0,1
1,0.75
2,0.5
3,0.25000000000000006
4,0"
  has tools.err.tmp "skipped 1 non-finite"
done
# Large norms for the first 10% of the run: a warm-up (small first factor,
# the maximum 1 inside), then a decay to 0; read from standard input.
awk 'BEGIN { for (i = 0; i < 1000; i++) print (i < 100 ? 20 : 1) + (i % 7) / 100 }' > tools.csv.tmp
tin=tools.csv.tmp
t "schedule refined warm-up" 0 "$sch" -r - -n 200 --lr 0.1
tin=/dev/null
awk -F, 'NR > 1 { f[$1] = $2; if ($2 > m) { m = $2; at = $1 } }
         END { exit !(f[0] < 0.1 && m == 1 && at > 10 && at < 100 && f[199] == 0) }' tools.out.tmp ||
  { echo "tools: refined schedule has no warm-up:"; head -3 tools.out.tmp; fail=1; }
awk -F, 'NR > 1 && ($3 - 0.1 * $2 > 1e-15 || 0.1 * $2 - $3 > 1e-15) { exit 1 }' tools.out.tmp ||
  { echo "tools: refined lr column is not 0.1 * factor"; fail=1; }
t "schedule unknown kind" 2 "$sch" -s poly:total=3 -n 3
has tools.err.tmp "unknown schedule kind 'poly'"
t "schedule unknown key" 2 "$sch" -s cosine:total=3,eta_min=0 -n 3
has tools.err.tmp "cosine has no key 'eta_min'"
t "schedule missing key" 2 "$sch" -s cosine -n 3
has tools.err.tmp "cosine needs total="
t "schedule bad range" 2 "$sch" -s cosine:total=3,min=2 -n 3
has tools.err.tmp "min = 2 is outside"
t "schedule hf with min" 2 "$sch" -s warmup_cosine:warmup=1,total=3,min=0.1 -n 3
has tools.err.tmp "form=torch"
[ -s tools.out.tmp ] && { echo "tools: schedule printed output on a usage error"; fail=1; }
t "schedule no steps" 2 "$sch" -s constant
t "schedule zero steps" 2 "$sch" -s constant -n 0
t "schedule spec and refined" 2 "$sch" -s constant -r tools.csv.tmp -n 3
t "schedule neither" 2 "$sch" -n 3
t "schedule bad norm" 2 "$sch" -r tools.csv.tmp --norm 3 -n 3
t "schedule refined one step" 2 "$sch" -r tools.csv.tmp -n 1
t "schedule bad lr" 2 "$sch" -s constant -n 3 --lr -1
t "schedule bad option" 2 "$sch" --bogus
t "schedule extra argument" 2 "$sch" -s constant -n 3 extra
t "schedule missing file" 1 "$sch" -r tools.missing.tmp -n 3
has tools.err.tmp "cannot read tools.missing.tmp"
printf 'g\n1\nx\n' > tools.csv.tmp
t "schedule bad number" 1 "$sch" -r tools.csv.tmp -n 3
has tools.err.tmp "tools.csv.tmp:3: column 1 is not a number: 'x'"
printf '1,2\n3\n' > tools.csv.tmp
t "schedule no column" 1 "$sch" -r tools.csv.tmp -c 2 -n 3
has tools.err.tmp "tools.csv.tmp:2: no column 2"
printf '1\n-2\n' > tools.csv.tmp
t "schedule negative norm" 1 "$sch" -r tools.csv.tmp -n 3
has tools.err.tmp "not positive"
printf 'gnorm\n' > tools.csv.tmp
t "schedule no norms" 1 "$sch" -r tools.csv.tmp -n 3
has tools.err.tmp "no gradient norms"
t "schedule plot without gnuplot" 1 env PATH=/nonexistent "$sch" -s constant -n 3 --plot tools.png.tmp
has tools.err.tmp "needs gnuplot"
[ -s tools.out.tmp ] && { echo "tools: schedule printed the CSV before failing on gnuplot"; fail=1; }
if command -v gnuplot >/dev/null 2>&1; then
  rm -f tools.png.tmp
  t "schedule plot" 0 "$sch" -s warmup_cosine:warmup=10,total=100 -n 120 --lr 1e-3 --plot tools.png.tmp
  head -c 8 tools.png.tmp 2>/dev/null | grep -q PNG || { echo "tools: schedule plot is not a PNG"; fail=1; }
  awk 'BEGIN { for (i = 0; i < 300; i++) print 1 + i / 100 }' > tools.csv.tmp
  t "schedule refined plot" 0 "$sch" -r tools.csv.tmp -n 50 --plot tools.png.tmp
  head -c 8 tools.png.tmp 2>/dev/null | grep -q PNG || { echo "tools: refined plot is not a PNG"; fail=1; }
else
  echo "tools: gnuplot not installed: optim-schedule --plot not drawn"
fi
t "schedule --help" 0 "$sch" --help
has tools.out.tmp "Usage: optim-schedule"
t "schedule --version" 0 "$sch" --version
has tools.out.tmp "0\.1\.0"
rm -f tools.csv.tmp tools.png.tmp tools.want.tmp
rm -f tools.out.tmp tools.err.tmp
[ $fail = 0 ] && echo "tools: all checks passed"
exit $fail
