#!/bin/sh
# optim-train end to end on the built-in synthetic data set (seconds):
# learning, the CSV log, bit-identical resume, the text formats, errors
# with exit status 2 and a message naming the problem, and (when MPI is
# built and mpiexec found) data-parallel runs.
set -u
b="${top_builddir:-.}/tools"
train="$b/optim-train"
[ -x "$train" ] || { echo "train: tools/optim-train not built"; exit 99; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/optim-train-test.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
bad() { echo "train: $*"; fail=1; }

# run WHAT WANT_STATUS CMD...: output in $dir/out, $dir/err
# OPTIM_TEST_EXEC (make check-valgrind) prefixes the single-process runs,
# OPTIM_TEST_MPI_EXEC the program on every rank of the mpiexec ones.
run() {
  what=$1 want=$2
  shift 2
  case $1 in
    mpi) "$@" >"$dir/out" 2>"$dir/err" ;;
    *) ${OPTIM_TEST_EXEC:-} "$@" >"$dir/out" 2>"$dir/err" ;;
  esac
  got=$?
  if [ "$got" != "$want" ]; then
    bad "$what: exit $got, want $want"
    sed 's/^/    /' "$dir/err" "$dir/out" | tail -5
  fi
}
has() { grep -q -e "$2" "$1" || bad "'$2' missing from $(basename "$1") ($3)"; }

# ---- learning and the log ---------------------------------------------------------------
run "synthetic MLP" 0 "$train" --synthetic --epochs 3 --log "$dir/log.csv" --log-every 10
has "$dir/out" "^epoch 3/3: train loss" "epoch lines"
has "$dir/out" "test accuracy" "summary"
head -1 "$dir/log.csv" | grep -qx \
  'step,epoch,samples,train_loss,train_accuracy,test_loss,test_accuracy,elapsed_s,samples_per_s' ||
  bad "CSV header: $(head -1 "$dir/log.csv")"
# rows: 9 fields; the loss falls from the first row to the last; the final
# test accuracy is far above chance (10 classes: 0.1)
awk -F, 'NR > 1 && NF != 9 { print "train: CSV row " NR " has " NF " fields"; exit 1 }' \
  "$dir/log.csv" || fail=1
awk -F, 'NR == 2 { first = $4 } NR > 1 { last = $4; if ($7 != "") acc = $7 }
  END { if (!(last < 0.6 * first)) { print "train: loss " first " -> " last ": did not fall"; exit 1 }
        if (!(acc > 0.6)) { print "train: final test accuracy " acc " (chance 0.1)"; exit 1 } }' \
  "$dir/log.csv" || fail=1
run "adahessian (finite-difference Hessian-vector products)" 0 "$train" --synthetic -e 2 -q \
  -o adahessian:lr=0.05
tail -1 "$dir/out" | awk '{ for (i = 1; i <= NF; i++) if ($i == "accuracy") a = $(i + 1) + 0;
  if (!(a > 60)) { print "train: adahessian accuracy " a "%"; exit 1 } }' || fail=1
run "soap and shampoo" 0 "$train" --synthetic -e 1 -q -o 'soap:lr=3e-3;shampoo:lr=3e-3,block_size=64'
run "softmax regression" 0 "$train" --synthetic --hidden 0 --epochs 2 -o sgd:lr=0.1,momentum=0.9 -q
has "$dir/out" "model 64-10 " "softmax regression model"
tail -1 "$dir/out" | awk '{ for (i = 1; i <= NF; i++) if ($i == "accuracy") a = $(i + 1) + 0;
  if (!(a > 60)) { print "train: softmax regression accuracy " a "%"; exit 1 } }' || fail=1

# ---- bit-identical resume ----------------------------------------------------------------------
run "uninterrupted" 0 "$train" --synthetic --epochs 2 -q --checkpoint "$dir/full.ckpt"
run "first part" 0 "$train" --synthetic --epochs 2 -q --max-steps 30 --checkpoint "$dir/part.ckpt" \
  --checkpoint-every 7
run "resumed" 0 "$train" --synthetic --epochs 2 -q --resume "$dir/part.ckpt" \
  --checkpoint "$dir/part.ckpt"
cmp -s "$dir/full.ckpt" "$dir/part.ckpt" || bad "resumed run differs from the uninterrupted one"
# the same with a learning-rate schedule and clipping, which checkpoints carry
sc="--schedule warmup_cosine:warmup=20,total=94 --clip-norm 0.5"
run "scheduled, uninterrupted" 0 "$train" --synthetic --epochs 2 -q $sc --checkpoint "$dir/sfull.ckpt"
run "scheduled, first part" 0 "$train" --synthetic --epochs 2 -q $sc --max-steps 30 \
  --checkpoint "$dir/spart.ckpt"
run "scheduled, resumed" 0 "$train" --synthetic --epochs 2 -q $sc --resume "$dir/spart.ckpt" \
  --checkpoint "$dir/spart.ckpt"
cmp -s "$dir/sfull.ckpt" "$dir/spart.ckpt" || bad "scheduled resumed run differs from the uninterrupted one"
cmp -s "$dir/full.ckpt" "$dir/sfull.ckpt" && bad "--schedule and --clip-norm changed nothing"
run "bad schedule" 2 "$train" --synthetic -q --schedule cosine:foo=1
has "$dir/err" "no key 'foo'" "bad --schedule"
run "bad clip" 2 "$train" --synthetic -q --clip-norm 0
has "$dir/err" "invalid --clip-norm" "bad --clip-norm"
run "resume, other seed" 2 "$train" --synthetic --epochs 2 -q --seed 5 --resume "$dir/full.ckpt"
has "$dir/err" "another seed" "resume mismatch"
run "resume, other model" 2 "$train" --synthetic --hidden 32 -q --resume "$dir/full.ckpt"
has "$dir/err" "another model" "resume mismatch"
printf 'garbage' >"$dir/junk.ckpt"
run "resume, not a checkpoint" 2 "$train" --synthetic -q --resume "$dir/junk.ckpt"
has "$dir/err" "not an optim-train checkpoint" "bad checkpoint"
head -c 200 "$dir/full.ckpt" >"$dir/short.ckpt"
run "resume, truncated" 2 "$train" --synthetic -q --resume "$dir/short.ckpt"
has "$dir/err" "truncated" "truncated checkpoint"

# ---- text formats ----------------------------------------------------------------------------
awk 'BEGIN { srand(3); for (i = 0; i < 400; i++) { c = i % 2;
  printf "%s", (c ? "+1" : "-1");
  for (j = 1; j <= 5; j++) printf " %d:%.3f", j, (c ? 1 : -1) * 0.8 + rand() - 0.5; print "" } }' \
  >"$dir/svm.txt"
run "libsvm" 0 "$train" --format libsvm --train "$dir/svm.txt" --hidden 8 -e 3 -o adamw:lr=0.01 -q
has "$dir/out" "2 classes" "libsvm classes"
tail -1 "$dir/out" | awk '{ for (i = 1; i <= NF; i++) if ($i == "accuracy") a = $(i + 1) + 0;
  if (!(a > 90)) { print "train: libsvm accuracy " a "%"; exit 1 } }' || fail=1
awk -F' ' '{ printf "%s", ($1 == "+1" ? 1 : 0); for (j = 2; j <= NF; j++) { split($j, kv, ":");
  printf ",%s", kv[2] } print "" }' "$dir/svm.txt" >"$dir/data.csv"
sed -i '1i label,a,b,c,d,e' "$dir/data.csv"
run "csv" 0 "$train" --format csv --train "$dir/data.csv" --header --label-col 1 --hidden 8 -e 3 \
  -o adamw:lr=0.01 -q
has "$dir/out" "5 features, 2 classes" "csv shape"

# ---- errors: status 2 and a message naming the problem -----------------------------------------
printf '+1 3:1 2:1\n' >"$dir/order.txt"
run "libsvm out of order" 2 "$train" --format libsvm --train "$dir/order.txt" -q
has "$dir/err" "order.txt:1" "line number"
printf '1,2,3\n4,5\n' >"$dir/ragged.csv"
run "csv ragged" 2 "$train" --format csv --train "$dir/ragged.csv" -q
has "$dir/err" "ragged.csv:2" "line number"
: >"$dir/empty.txt"
run "empty file" 2 "$train" --format libsvm --train "$dir/empty.txt" -q
has "$dir/err" "empty.txt" "file name"
run "missing file" 2 "$train" --format libsvm --train "$dir/nope.txt" -q
has "$dir/err" "nope.txt" "file name"
mkdir "$dir/idx"
printf 'not an idx file' | gzip >"$dir/idx/train-images-idx3-ubyte.gz"
cp "$dir/idx/train-images-idx3-ubyte.gz" "$dir/idx/train-labels-idx1-ubyte.gz"
run "bad idx" 2 "$train" --data "$dir/idx" -q
has "$dir/err" "train-images-idx3-ubyte.gz" "file name"
run "unknown algorithm" 2 "$train" --synthetic -o nosuch -q
has "$dir/err" "unknown algorithm 'nosuch'" "algorithm"
run "unknown hyperparameter" 2 "$train" --synthetic -o adamw:lrate=1 -q
has "$dir/err" "lrate" "hyperparameter"
run "bad value" 2 "$train" --synthetic -o adamw:lr=-1 -q
has "$dir/err" "lr" "value"
run "spec syntax" 2 "$train" --synthetic -o 'adamw:lr' -q
has "$dir/err" "expected name=value" "syntax"
run "three groups" 2 "$train" --synthetic -o 'sgd;adam;adamw' -q
run "matrix algorithm alone" 2 "$train" --synthetic -o muon -q
has "$dir/err" "nonmatrix=adamw" "hint"
run "bad hidden" 2 "$train" --synthetic --hidden 12,x -q
run "bad epochs" 2 "$train" --synthetic --epochs 0 -q
run "unknown option" 2 "$train" --bogus
run "extra argument" 2 "$train" extra
run "--help" 0 "$train" --help
has "$dir/out" "--optim" "help"
run "--version" 0 "$train" --version
has "$dir/out" "optim-train (liboptim)" "version"

# ---- under mpiexec ---------------------------------------------------------------------------------
if [ -n "${MPIEXEC:-}" ] && command -v "$MPIEXEC" >/dev/null 2>&1 && [ -x "$b/optim-mpi-bench" ]; then
  mpi() {
    n=$1
    shift
    "$MPIEXEC" --oversubscribe --mca btl self,vader -np "$n" ${OPTIM_TEST_MPI_EXEC:-} "$@"
  }
  run "mpirun -np 2 ordered" 0 mpi 2 "$train" --synthetic -e 2 -q --reduce ordered \
    --checkpoint "$dir/m1.ckpt"
  has "$dir/out" "2 ranks" "ranks line"
  acc2=$(tail -1 "$dir/out" | sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p')
  [ "$(grep -c 'optim-train:.*steps' "$dir/out")" = 1 ] || bad "mpirun: rank 0 only must print"
  run "mpirun -np 2 ordered, again" 0 mpi 2 "$train" --synthetic -e 2 -q --reduce ordered \
    --checkpoint "$dir/m2.ckpt"
  cmp -s "$dir/m1.ckpt" "$dir/m2.ckpt" || bad "mpirun --reduce ordered: repeated runs differ"
  run "single process" 0 "$train" --synthetic -e 2 -q
  acc1=$(tail -1 "$dir/out" | sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p')
  awk -v a="$acc1" -v b="$acc2" 'BEGIN { d = a - b; if (d < 0) d = -d;
    if (!(d <= 2)) { print "train: 1 rank " a "%, 2 ranks " b "%"; exit 1 } }' || fail=1
  # resumed under mpirun: the same parameters as an uninterrupted run
  run "mpirun -np 3 first part" 0 mpi 3 "$train" --synthetic -e 2 -q --max-steps 40 \
    --reduce ordered --checkpoint "$dir/m3.ckpt"
  run "mpirun -np 3 resumed" 0 mpi 3 "$train" --synthetic -e 2 -q --resume "$dir/m3.ckpt" \
    --reduce ordered --checkpoint "$dir/m3.ckpt"
  run "mpirun -np 3 uninterrupted" 0 mpi 3 "$train" --synthetic -e 2 -q --reduce ordered \
    --checkpoint "$dir/m4.ckpt"
  has "$dir/out" "3 ranks" "ranks line"
  cmp -s "$dir/m3.ckpt" "$dir/m4.ckpt" || bad "mpirun: resumed run differs from the uninterrupted one"
  run "mpirun: resume a single-process checkpoint" 2 mpi 2 "$train" --synthetic -q \
    --resume "$dir/full.ckpt"
  has "$dir/err" "single-process" "mode mismatch"
else
  echo "train: MPI runs skipped (no liboptim_mpi or mpiexec)"
fi
exit $fail
