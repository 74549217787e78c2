#!/usr/bin/env python3
"""gen_misuse.py - generate tests/check_misuse.c, the API misuse sweep.

Usage: python3 tests/gen_misuse.py [include/optim.h] > tests/check_misuse.c
(or `make misuse-regen`).  tests/misuse.sh checks that the committed file is
what this script generates from the current header.

Every OPTIM_API declaration of include/optim.h is parsed; each function is
called on a valid optimizer (tests/check_misuse.c's fixture) with its valid
baseline arguments (BASELINE below, data only), then with one argument at a
time replaced by an invalid value:
  - the handle (optim_optimizer *): NULL
  - each string (const char *): NULL, "" and a 336-byte name
  - each other pointer argument: NULL
  - each integer argument: 0, -1 and the type's maximum
  - each double argument: NaN, +Inf, -Inf, -1 and DBL_MAX
A call is expected to fail (negative status, or the documented failure value
for functions returning something else: NULL, a negative count) unless the
table says the value is valid ("ok") or either is acceptable ("any").  After
every failing call on the valid optimizer the test checks that optim_errmsg
is non-empty (functions with a non-const handle) and that parameters,
gradients, hyperparameters, counters and all state hash as before.

optim_mpi.h's functions need MPI_Init and mpiexec, so they are not in
check_misuse.c: `gen_misuse.py --mpi [include/optim_mpi.h] > tests/misuse_mpi.h`
writes a smaller sweep (NULL handle, NULL / empty strings and pointers, bad
integers and MPI_COMM_NULL on a live context; BASELINE_MPI) that
tests/mpi_test.c includes and runs on every rank under tests/mpi.sh, which
skips (77) when the MPI layer is not built.
"""
import re
import sys

# ---- The data ---------------------------------------------------------------
# Per function:
#   args:  valid baseline arguments (C expressions; `opt` is the fixture's
#          handle, O the struct of output variables, the fx_* names are
#          defined in PRELUDE)
#   fx:    fixture: "main" (four groups, stepped once, with a prepared step
#          pending that a failing call must leave for optim_step_commit,
#          unless drops_prepared), "fresh" (the same, never stepped or
#          prepared), "svrg" (one adasvrg group) or None (no handle)
#   ret:   "status" (default), "count" (>= 0 or negative), "str_or_null"
#          (NULL on failure), "str" (never NULL), "void" (must not crash)
#   base:  "ok" (default): the baseline call must succeed; "err": it fails
#          by design (then only the mutations are checked)
#   ok / any: mutations ("arg=VALUE") that are valid / may go either way;
#          every other mutation must fail.
#   skip:  mutations not made, with the reason.
#   extra: further calls, [expectation, arguments...]: crafted invalid
#          values (shapes whose size overflows, all-or-none specs, ...).
# Integer index arguments also get one past their last valid value.
LIE = "a length larger than the caller's array is undetectable undefined behaviour"
BASELINE = {
    "optim_version": dict(args=[], ret="str"),
    "optim_strerror": dict(args=["OPTIM_EINVAL"], ret="str",
                           ok=["status=0", "status=-1", "status=INT_MAX"]),
    "optim_algorithm_count": dict(args=[], ret="count"),
    "optim_algorithm_name": dict(args=["0"], ret="str_or_null", ok=["index=0"]),
    "optim_algorithm_doc": dict(args=['"adamw"'], ret="str_or_null"),
    "optim_hparam_count": dict(args=['"adamw"'], ret="count"),
    "optim_hparam_info": dict(args=['"adamw"', "1", "&O.s", "&O.i", "&O.s2", "&O.s3"],
                              ok=["index=0", "name=NULL", "type=NULL", "default_value=NULL",
                                  "doc=NULL"]),
    "optim_create": dict(args=["&O.opt"], base="err_leak"),
    "optim_destroy": dict(args=["opt"], ret="void", fx="main", base="consumes"),
    "optim_errmsg": dict(args=["opt"], ret="str", fx="main"),
    "optim_set_threads": dict(args=["opt", "1"], fx="main", ok=["nthreads=0"]),
    "optim_add_group": dict(args=["opt", '"sgd"', "&O.i"], fx="main", ok=["group=NULL"]),
    "optim_group_count": dict(args=["opt"], ret="count", fx="main"),
    "optim_group_algorithm": dict(args=["opt", "1"], ret="str_or_null", fx="main",
                                  ok=["group=0"]),
    "optim_set_double": dict(args=["opt", "0", '"lr"', "0.01"], fx="main",
                             ok=["group=0", "value=DBL_MAX"]),
    "optim_get_double": dict(args=["opt", "0", '"lr"', "&O.d"], fx="main", ok=["group=0"],
                             extra=[["err", "opt", "2", '"ns_steps"', "&O.d"],
                                    ["err", "opt", "0", '"amsgrad"', "&O.d"]]),
    "optim_set_int": dict(args=["opt", "2", '"ns_steps"', "4"], fx="main",
                          extra=[["err", "opt", "0", '"lr"', "1"],
                                 ["err", "opt", "0", '"amsgrad"', "1"]]),
    "optim_get_int": dict(args=["opt", "2", '"ns_steps"', "&O.l"], fx="main"),
    "optim_set_bool": dict(args=["opt", "0", '"amsgrad"', "1"], fx="main",
                           extra=[["err", "opt", "0", '"lr"', "1"]],
                           ok=["group=0", "value=0"]),
    "optim_get_bool": dict(args=["opt", "0", '"amsgrad"', "&O.i"], fx="main", ok=["group=0"]),
    "optim_set_string": dict(args=["opt", "0", '"nonfinite"', '"skip"'], fx="main",
                             ok=["group=0"],
                             extra=[["err", "opt", "0", '"lr"', '"0.1"'],
                                    ["err", "opt", "0", '"nonfinite"', '"Skip"']]),
    "optim_get_string": dict(args=["opt", "0", '"nonfinite"', "O.buf", "sizeof O.buf"],
                             fx="main", ok=["group=0", "size=SIZE_MAX"],
                             # "error" and its NUL need 6 bytes
                             extra=[["err", "opt", "0", '"nonfinite"', "O.buf", "5"],
                                    ["ok", "opt", "0", '"nonfinite"', "O.buf", "6"],
                                    ["err", "opt", "0", '"lr"', "O.buf", "sizeof O.buf"]]),
    "optim_set_option": dict(args=["opt", "0", '"lr"', '"0.01"'], fx="main", ok=["group=0"],
                             extra=[["err", "opt", "0", n, t] for n, t in (
                                 ('"lr"', '"1e999"'), ('"lr"', '"nan"'), ('"lr"', '"inf"'),
                                 ('"lr"', '"0.1abc"'), ('"lr"', '" "'), ('"lr"', '"-0.1"'),
                                 ('"lr"', '"0x"'),
                                 ('"amsgrad"', '"2"'), ('"amsgrad"', '"truex"'),
                                 ('"nonfinite"', '"errorx"'))] +
                                   [["err", "opt", "2", '"ns_steps"', t] for t in (
                                       '"99999999999999999999"', '"5.5"', '"-5"', '"0"',
                                       '"5x"', '"101"')]),
    "optim_configure": dict(args=["opt", "0", '"lr=0.01,beta1=0.8"'], fx="main",
                            ok=["group=0", 'spec=""'],  # empty items are ignored
                            # all or none: lr must not change
                            extra=[["err", "opt", "0", s] for s in (
                                '"lr=0.5,beta1=7"', '"lr=0.5,nope=1"', '"lr=0.5,beta1"',
                                '"lr=0.5,=3"', '"lr=0.5,amsgrad=maybe"', '"lr=0.5,lr=nan"',
                                '"lr=0.5,nonfinite=bogus"')]),
    "optim_set_schedule": dict(args=["opt", "0", '"lr"', '"cosine:total=100"'], fx="main",
                               ok=["group=0", "spec=NULL"],
                               # not real-valued, unknown, malformed spec
                               extra=[["err", "opt", g, h, '"cosine:total=100"'] for g, h in (
                                   ("0", '"amsgrad"'), ("0", '"nonfinite"'), ("2", '"ns_steps"'),
                                   ("0", '"nope"'))] +
                                     [["err", "opt", "0", '"lr"', t] for t in (
                                         '"cosine:total=0"', '"nope"', '"cosine:total=1,x=2"')]),
    "optim_set_schedule_table": dict(args=["opt", "0", '"lr"', "fx_table", "3"], fx="main",
                                     ok=["group=0"],
                                     extra=[["err", "opt", "0", '"amsgrad"', "fx_table", "3"]] +
                                           [["err", "opt", "0", '"lr"', f, "3"] for f in (
                                               "(double[]){1, NAN, 1}", "(double[]){1, -0.5, 1}",
                                               "(double[]){1, 1, INFINITY}")],
                                     skip={"count=INT64_MAX": LIE}),
    # sqrt_sde: 1 - beta1 times DBL_MAX leaves beta1's range
    "optim_scale_batch_size": dict(args=["opt", "0", "2.0", '"sqrt_sde"'], fx="main",
                                   ok=["group=0", "rule=NULL"]),
    "optim_add_param": dict(args=["opt", "0", '"new"', "OPTIM_FLOAT32", "2", "fx_shape",
                                  "fx_pnew", "fx_gnew", "&O.i"], fx="main",
                            ok=["group=0", "grad=NULL", "index=NULL"],
                            extra=[["err", "opt", "0", '"new"', "OPTIM_FLOAT32", "2", s, "fx_pnew",
                                    "fx_gnew", "NULL"] for s in (
                                        "(int64_t[]){0, 3}", "(int64_t[]){2, -3}",
                                        "(int64_t[]){INT64_MAX, 2}",
                                        "(int64_t[]){INT64_C(1) << 32, INT64_C(1) << 32}",
                                        "(int64_t[]){INT64_C(1) << 31, INT64_C(1) << 31}",
                                        "(int64_t[]){INT64_C(1) << 62, 4}")] +
                                  [["err", "opt", "0", '"w"', "OPTIM_FLOAT32", "2", "fx_shape",
                                    "fx_pnew", "fx_gnew", "NULL"],  # the name exists
                                   ["err", "opt", "0", '"new"', "OPTIM_FLOAT32", "5", "fx_shape",
                                    "fx_pnew", "fx_gnew", "NULL"],  # ndim > OPTIM_MAX_DIMS
                                   ["err", "opt", "0", '"new"', "OPTIM_FLOAT32", "2", "fx_shape",
                                    "fx_pnew", "fx_pnew", "NULL"],  # grad is param
                                   ["err", "opt", "0", '"new"', "OPTIM_FLOAT32", "2", "fx_shape",
                                    "fx_pnew", "fx_pnew + 1", "NULL"],  # overlapping
                                   ["err", "opt", "2", '"new"', "OPTIM_FLOAT32", "1", "fx_shape",
                                    "fx_pnew", "fx_gnew", "NULL"]]),  # muon: nonmatrix=error
    "optim_param_bind": dict(args=["opt", "1", "fx_b", "fx_gb"], fx="main",
                             ok=["grad=NULL"], any=["index=0"]),
    "optim_param_count": dict(args=["opt"], ret="count", fx="main"),
    "optim_param_find": dict(args=["opt", '"b"', "&O.i"], fx="main"),
    "optim_param_info": dict(args=["opt", "1", "&O.s", "&O.i", "&O.i2", "&O.i3", "O.shape"],
                             fx="main", ok=["index=0", "name=NULL", "group=NULL", "dtype=NULL",
                                            "ndim=NULL", "shape=NULL"]),
    "optim_param_buffers": dict(args=["opt", "1", "&O.p", "&O.cp"], fx="main",
                                ok=["index=0", "param=NULL", "grad=NULL"]),
    "optim_param_set_frozen": dict(args=["opt", "1", "1"], fx="main",
                                   ok=["index=0", "frozen=0", "frozen=-1", "frozen=INT_MAX"]),
    "optim_param_get_frozen": dict(args=["opt", "1", "&O.i"], fx="main", ok=["index=0"]),
    "optim_param_set_range": dict(args=["opt", "1", "0", "2"], fx="fresh",
                                  ok=["index=0"], any=["end=0"],
                                  extra=[["err", "opt", "1", "0", "4"],  # past the end
                                         ["err", "opt", "1", "2", "1"],  # end < begin
                                         ["err", "opt", "3", "0", "2"],  # muon: not whole rows
                                         ["err", "opt", "2", "INT64_MIN", "2"]]),
    "optim_param_bind_hvp": dict(args=["opt", "4", "fx_hz"], fx="main", ok=["hvp=NULL"]),
    "optim_set_hvp_callback": dict(args=["opt", "fx_hvp", "NULL", "7"], fx="main",
                                   ok=["fn=NULL", "seed=0", "seed=UINT64_MAX", "userdata=NULL"]),
    "optim_set_row_reduce": dict(args=["opt", "fx_row_reduce", "NULL"], fx="main",
                                 ok=["fn=NULL"]),
    "optim_set_norm_reduce": dict(args=["opt", "fx_norm_reduce", "NULL"], fx="main",
                                  ok=["fn=NULL"]),
    "optim_param_get_range": dict(args=["opt", "1", "&O.l", "&O.l2"], fx="main",
                                  ok=["index=0", "begin=NULL", "end=NULL"]),
    "optim_param_cost": dict(args=["opt", "3", "&O.d"], fx="main", ok=["index=0"]),
    "optim_state_count": dict(args=["opt", "1"], ret="count", fx="main", ok=["index=0"]),
    "optim_state_info": dict(args=["opt", "1", "1", "&O.s", "&O.i", "&O.l"], fx="main",
                             ok=["index=0", "k=0", "name=NULL", "kind=NULL", "numel=NULL"]),
    "optim_state_buffer": dict(args=["opt", "1", '"exp_avg"', "&O.cp", "&O.l"], fx="main",
                               ok=["index=0", "numel=NULL"],
                               extra=[["err", "opt", "1", '"step"', "&O.cp", "&O.l"],
                                      ["err", "opt", "1", '"momentum_buffer"', "&O.cp", "&O.l"]]),
    "optim_state_set_buffer": dict(args=["opt", "1", '"exp_avg"', "fx_b3", "3"], fx="main",
                                   extra=[["err", "opt", "1", '"step"', "fx_b3", "1"],  # a scalar
                                          ["err", "opt", "1", '"exp_avg"', "fx_b3", "2"],
                                          ["err", "opt", "1", '"exp_avg"', "fx_b3", "4"]]),
    "optim_state_scalar": dict(args=["opt", "1", '"step"', "&O.l"], fx="main",
                               ok=["index=0"],
                               extra=[["err", "opt", "1", '"exp_avg"', "&O.l"]]),
    "optim_get_counter": dict(args=["opt", "1", '"steps"', "&O.l"], fx="main",
                              ok=["group=0"]),
    # a failing step or prepare drops a prepared step (a new prepare does)
    "optim_step": dict(args=["opt"], fx="main", drops_prepared=True),
    "optim_step_scaled": dict(args=["opt", "0.5"], fx="main", ok=["grad_scale=DBL_MAX"],
                              drops_prepared=True),
    "optim_step_prepare": dict(args=["opt", "0.5"], fx="main", ok=["grad_scale=DBL_MAX"],
                               drops_prepared=True),
    "optim_step_commit": dict(args=["opt"], fx="main"),
    "optim_step_cancel": dict(args=["opt"], fx="main"),
    "optim_snapshot": dict(args=["opt", "fx_full_grad", "NULL"], fx="svrg"),
    "optim_param_bind_snapshot_grad": dict(args=["opt", "0", "fx_sg"], fx="svrg",
                                           ok=["grad=NULL"]),
    "optim_set_clip_norm": dict(args=["opt", "1.0"], fx="main", ok=["max_norm=DBL_MAX"]),
    "optim_get_grad_norm": dict(args=["opt", "0", "&O.d"], fx="main",
                                ok=["group=-1"]),
    "optim_param_set_decay_scale": dict(args=["opt", "1", "0.5"], fx="main",
                                        ok=["index=0", "scale=DBL_MAX"]),
    "optim_param_get_decay_scale": dict(args=["opt", "1", "&O.d"], fx="main",
                                        ok=["index=0"]),
    "optim_set_decay_mask": dict(args=["opt", '"b"', "0.0", "&O.i"], fx="main",
                                 ok=["matched=NULL", "scale=DBL_MAX"],
                                 extra=[["err", "opt", '"zzz"', "0.0", "&O.i"],
                                        ["err", "opt", '"b,zzz"', "NAN", "&O.i"]]),
    "optim_validate": dict(args=["opt"], fx="main"),
    "optim_save": dict(args=["opt", "fx_path"], fx="main"),
    "optim_load": dict(args=["opt", "fx_saved(opt)"], fx="main",
                       extra=[["err", "opt", '"/nonexistent/misuse.ckpt"'],
                              ["err", "opt", "fx_garbage()"]] +
                             [["err", "opt", "fx_damaged(opt, %d)" % k] for k in range(5)]),
    "optim_load_params": dict(args=["opt", "fx_saved(opt)", "fx_indices", "2"], fx="main",
                              ok=["count=0"], skip={"count=INT_MAX": LIE},
                              extra=[["err", "opt", "fx_saved(opt)", "(int[]){0, 99}", "2"],
                                     ["err", "opt", "fx_saved(opt)", "(int[]){0, -1}", "2"],
                                     ["err", "opt", '"/nonexistent/misuse.ckpt"', "fx_indices",
                                      "2"]] +
                              [["err", "opt", "fx_damaged(opt, %d)" % k, "fx_indices", "2"]
                               for k in (0, 1, 3, 4)] +
                              # the last byte is state of "h", not listed: documented as not read
                              [["any", "opt", "fx_damaged(opt, 2)", "fx_indices", "2"]]),
    "optim_schedule_eval": dict(args=['"cosine:total=100"', "10", "&O.d"],
                                extra=[["err", s, "10", "&O.d"] for s in (
                                    '"cosine"', '"cosine:total=0"', '"cosine:total=-5"',
                                    '"cosine:total=nan"', '"cosine:total=100,total=100x"',
                                    '"cosine:"', '"cosine:total"', '"nope"',
                                    '"cosine:total=100,nope=1"',
                                    '"warmup_cosine:warmup=200,total=100"',
                                    '"step:gamma=0.5"', '"cosine:total=1e999"')],
                                ok=["step=0", "step=INT64_MAX"]),
    "optim_schedule_refined": dict(args=["fx_gnorms", "3", "2", "4", "O.factors"],
                                   skip={"count=INT64_MAX": LIE, "steps=INT64_MAX": LIE}),
    "optim_step_law": dict(args=["1e6", "1e9", "&O.d", "&O.d2"],
                           ok=["lr=NULL", "batch_tokens=NULL", "params=DBL_MAX", "tokens=DBL_MAX"]),
    "optim_batch_size_test": dict(args=['"norm"', "OPTIM_FLOAT64", "3", "2", "fx_grads", "0.5",
                                        "1.0", "&O.l"],
                                  # batch * numel overflowing (documented: > SIZE_MAX / 8)
                                  extra=[["err", '"norm"', "OPTIM_FLOAT64", b, n, "fx_grads",
                                          "0.5", "1.0", "&O.l"] for b, n in (
                                              ("INT64_C(1) << 32", "INT64_C(1) << 32"),
                                              ("INT64_C(1) << 31", "INT64_C(1) << 31"),
                                              ("INT64_C(1) << 61", "2"))] +
                                        [["err", '"augmented_inner_product"', "OPTIM_FLOAT64",
                                          "3", "2", "fx_grads", "0.5", nu, "&O.l"]
                                         for nu in ("NAN", "0.0", "-1.0", "INFINITY")],
                                  # nu is read by augmented_inner_product only
                                  ok=["eta=DBL_MAX", "nu=NAN", "nu=INFINITY", "nu=-INFINITY",
                                      "nu=-1.0", "nu=DBL_MAX"]),
}

MUTATIONS = {
    "handle": ["NULL", "FX_BOGUS"],
    "pointer": ["NULL"],
    "int": ["0", "-1", "INT_MAX"],
    "int64_t": ["0", "-1", "INT64_MAX"],
    "uint64_t": ["0", "UINT64_MAX"],
    "size_t": ["0", "SIZE_MAX"],
    "double": ["NAN", "INFINITY", "-INFINITY", "-1.0", "DBL_MAX"],
    "string": ["NULL", '""', "FX_LONG"],
    "MPI_Comm": ["MPI_COMM_NULL"],
}
# One past the last valid index, by argument name (an off-by-one check).
PAST_END = {
    ("optim_algorithm_name", "index"): "optim_algorithm_count()",
    ("optim_hparam_info", "index"): 'optim_hparam_count("adamw")',
    ("optim_state_info", "k"): "optim_state_count(opt, 1)",
}


def mutations(name, fx, aname, kind):
    extra = []
    if (name, aname) in PAST_END:
        extra = [PAST_END[name, aname]]
    elif fx and kind == "int" and aname == "group":
        extra = ["optim_group_count(opt)"]
    elif fx and kind == "int" and aname == "index":
        extra = ["optim_param_count(opt)"]
    return MUTATIONS[kind] + extra


FNPTR_TYPES = {"optim_hvp_fn", "optim_row_reduce_fn", "optim_norm_reduce_fn", "optim_grad_fn"}


def parse(header, handle="optim_optimizer"):
    text = re.sub(r"/\*.*?\*/", " ", open(header).read(), flags=re.S)
    funcs = []
    for m in re.finditer(r"OPTIM_API\s+([^;(]*?)\b(optim_\w+)\s*\(([^)]*)\)\s*;", text):
        ret, name, params = " ".join(m.group(1).split()), m.group(2), m.group(3)
        args = []
        params = " ".join(params.split())
        if params and params != "void":
            for p in params.split(","):
                p = p.strip()
                am = re.match(r"(.*?)(\w+)$", p)
                ctype, aname = am.group(1).strip(), am.group(2)
                if handle + " *" in ctype + " " and ctype.count("*") == 1:
                    kind = "handle"
                elif ctype == "const char *":
                    kind = "string"
                elif "*" in ctype or ctype in FNPTR_TYPES:
                    kind = "pointer"
                elif ctype in MUTATIONS:
                    kind = ctype
                else:
                    sys.exit("gen_misuse.py: %s: argument %s of unknown type %s" % (name, aname, ctype))
                args.append((ctype, aname, kind))
        funcs.append((ret, name, args))
    return funcs


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# optim_mpi.h (--mpi): a small section compiled into tests/mpi_test.c (built
# and run under mpiexec only when the MPI layer is): every function with a
# NULL handle, and each other argument made invalid on a live context (`d`,
# over the optimizer `opt` of tests/mpi_test.c's misuse_mpi fixture).  The
# same table form; "ok" lists valid values.
BASELINE_MPI = {
    # on a second optimizer, without a context (baseline not made: it would
    # be collective and leave a context behind)
    "optim_mpi_create": dict(args=["O.opt2", "MPI_COMM_WORLD", "&O.d"], base="skip"),
    "optim_mpi_destroy": dict(args=["d"], ret="void", base="consumes"),
    "optim_mpi_errmsg": dict(args=["d"], ret="str"),
    "optim_mpi_set_option": dict(args=["d", '"bucket_bytes"', '"4096"']),
    "optim_mpi_step": dict(args=["d"], base="skip"),
    "optim_mpi_grad_ready": dict(args=["d", "0"], base="skip"),
    "optim_mpi_save": dict(args=["d", '"misuse-mpi"'], base="skip"),
    "optim_mpi_load": dict(args=["d", '"misuse-mpi-none"'], base="skip"),
    "optim_mpi_owner": dict(args=["d", "0", "&O.i"]),
    "optim_mpi_counter": dict(args=["d", '"bytes"', "&O.v"]),
}


def gen_mpi(header):
    funcs = parse(header, "optim_mpi")
    names = [f[1] for f in funcs]
    missing = [n for n in names if n not in BASELINE_MPI]
    stale = [n for n in BASELINE_MPI if n not in names]
    if missing or stale:
        sys.exit("gen_misuse.py: no MPI baseline for %s; baseline of removed %s" % (missing, stale))
    out = [MPI_HEAD]
    ncalls = 0
    for ret, name, args in funcs:
        spec = BASELINE_MPI[name]
        rk = spec.get("ret", "status")
        base = spec["args"]
        ok = set(spec.get("ok", []))
        calls = []
        if spec.get("base", "ok") == "ok":
            calls.append(("ok", list(base)))
        for i, (ctype, aname, kind) in enumerate(args):
            if kind == "handle" and name == "optim_mpi_create":
                kind = "pointer"  # the optimizer: NULL only
            for v in MUTATIONS["pointer" if kind == "handle" else kind]:
                if v == base[i] or v == "FX_LONG":
                    continue
                calls.append(("ok" if "%s=%s" % (aname, v) in ok else "err",
                              [v] + base[1:] if i == 0 else base[:i] + [v] + base[i + 1:]))
        out.append("/* %s */\n" % name)
        for exp, a in calls:
            ncalls += 1
            call = "%s(%s)" % (name, ", ".join(a))
            desc = cstr(call)
            out.append("  {\n    misuse_mpi_ctx O;\n    optim_mpi *d = misuse_mpi_new(&O);\n"
                       "    uint64_t before = misuse_mpi_hash(&O);\n")
            if rk == "void":
                out.append("    %s;\n" % call)
                if a[0] == "d":
                    out.append("    d = NULL;\n")
            elif rk == "str":
                out.append("    CHECK(%s != NULL, \"%%s returned NULL\", %s);\n" % (call, desc))
            else:
                out.append("    int rc = %s;\n" % call)
                out.append("    misuse_mpi_check(&O, d, rc, %d, %d, before, %s);\n" % (
                    exp == "ok", a[0] == "d" and name != "optim_mpi_create", desc))
                if name == "optim_mpi_create":
                    out.append("    if (rc == OPTIM_OK) optim_mpi_destroy(O.d);\n")
            out.append("    (void)before;\n    misuse_mpi_free(&O, d);\n  }\n")
    out.append("}\n/* %d functions, %d generated calls. */\n" % (len(funcs), ncalls))
    sys.stdout.write("".join(out))


MPI_HEAD = r"""/* misuse_mpi.h - GENERATED by tests/gen_misuse.py --mpi from
 * include/optim_mpi.h: do not edit (make misuse-regen).  Included by
 * tests/mpi_test.c, which defines CHECK, rank and hash_state's includes:
 * the misuse sweep of the MPI layer (see tests/check_misuse.c).  Every
 * call is made by all ranks, so collective calls stay matched. */
#include <limits.h>
#include <string.h>

typedef struct misuse_mpi_ctx {
  optim_optimizer *opt, *opt2;
  double x[8], g[8];
  optim_mpi *d;
  int i;
  double v;
} misuse_mpi_ctx;

static optim_mpi *misuse_mpi_new(misuse_mpi_ctx *c)
{
  int64_t n8[1] = {8};
  memset(c, 0, sizeof *c);
  for (int i = 0; i < 8; i++) c->x[i] = 1.0 + i, c->g[i] = 0.5 - 0.1 * i;
  optim_create(&c->opt);
  optim_add_group(c->opt, "adamw", NULL);
  optim_add_param(c->opt, 0, "x", OPTIM_FLOAT64, 1, n8, c->x, c->g, NULL);
  optim_create(&c->opt2);
  optim_add_group(c->opt2, "adamw", NULL);
  optim_add_param(c->opt2, 0, "x", OPTIM_FLOAT64, 1, n8, c->x, c->g, NULL);
  optim_mpi *d = NULL;
  CHECK(optim_mpi_create(c->opt, MPI_COMM_WORLD, &d) == OPTIM_OK, "misuse fixture");
  return d;
}

static uint64_t misuse_mpi_hash(misuse_mpi_ctx *c)
{
  uint64_t h = hash_state(c->opt);
  h = hash_bytes(h, c->x, sizeof c->x);
  return hash_bytes(h, c->g, sizeof c->g);
}

static void misuse_mpi_free(misuse_mpi_ctx *c, optim_mpi *d)
{
  optim_mpi_destroy(d);
  optim_destroy(c->opt);
  optim_destroy(c->opt2);
}

static void misuse_mpi_check(misuse_mpi_ctx *c, optim_mpi *d, int rc, int ok, int live,
                             uint64_t before, const char *what)
{
  if (ok) {
    CHECK(rc >= 0, "%s returned %d", what, rc);
    return;
  }
  CHECK(rc < 0, "%s accepted invalid input (returned %d)", what, rc);
  if (rc < 0 && live) {
    const char *m = optim_mpi_errmsg(d);
    CHECK(m && m[0], "%s failed with an empty optim_mpi_errmsg", what);
    CHECK(misuse_mpi_hash(c) == before, "%s failed but changed the optimizer", what);
  }
}

static void misuse_mpi(void)
{
"""


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--mpi":
        gen_mpi(sys.argv[2] if len(sys.argv) > 2 else "include/optim_mpi.h")
        return
    header = sys.argv[1] if len(sys.argv) > 1 else "include/optim.h"
    funcs = parse(header)
    names = [f[1] for f in funcs]
    missing = [n for n in names if n not in BASELINE]
    stale = [n for n in BASELINE if n not in names]
    if missing or stale:
        sys.exit("gen_misuse.py: no baseline for %s; baseline of removed %s" % (missing, stale))
    out = [HEAD % {"nfunc": len(funcs)}]
    tests = []
    ncalls = 0
    for ret, name, args in funcs:
        spec = BASELINE[name]
        rk = spec.get("ret", "status")
        fx = spec.get("fx")
        base = spec["args"]
        if len(base) != len(args):
            sys.exit("gen_misuse.py: %s: %d baseline arguments for %d" % (name, len(base), len(args)))
        const_handle = any(k == "handle" and c.startswith("const") for c, _, k in args)
        ok = set(spec.get("ok", []))
        anyv = set(spec.get("any", []))
        skip = spec.get("skip", {})
        calls = []
        if spec.get("base", "ok") == "ok":
            calls.append(("ok", list(base), "baseline"))
        for i, (ctype, aname, kind) in enumerate(args):
            for v in mutations(name, fx, aname, kind):
                key = "%s=%s" % (aname, v)
                if key in skip or v == base[i]:
                    continue
                exp = "ok" if key in ok else "any" if key in anyv else "err"
                a = list(base)
                a[i] = v
                calls.append((exp, a, key))
        for key in list(ok) + list(anyv) + list(skip):
            if not any(key == "%s=%s" % (an, v) for _, an, k in args
                       for v in mutations(name, fx, an, k)):
                sys.exit("gen_misuse.py: %s: table entry %s matches no mutation" % (name, key))
        for extra in spec.get("extra", []):
            if len(extra) != len(args) + 1:
                sys.exit("gen_misuse.py: %s: extra call %s" % (name, extra))
            calls.append((extra[0], list(extra[1:]), "extra"))
        body = []
        for exp, a, what in calls:
            ncalls += 1
            call = "%s(%s)" % (name, ", ".join(a))
            desc = cstr(call)
            errmsg = 0 if const_handle or rk != "status" else 1
            handle_null = fx is not None and a[0] in ("NULL", "FX_BOGUS")
            body.append("  {")
            body.append("    struct outs O, O0;")
            body.append("    memset(&O, 0x5a, sizeof O);")
            body.append("    O0 = O;")
            if rk in ("str", "str_or_null", "void"):
                body.append("    (void)O0;")
            if fx:
                body.append("    fx_prepare = %d;" % (fx == "main" and not spec.get("drops_prepared")))
                body.append("    optim_optimizer *opt = fx_new(FX_%s);" % fx.upper())
                body.append("    uint64_t before = fx_hash(opt);")
            if rk == "void":
                if fx:
                    body.append("    (void)before;")
                body.append("    %s;" % call)
                if name == "optim_destroy" and a[0] == "opt":  # consumed; FX_BOGUS is not
                    body.append("    opt = NULL;")
            elif rk in ("str", "str_or_null"):
                body.append("    const char *r = %s;" % call)
                if rk == "str":
                    body.append("    EXPECT(r != NULL, \"%%s returned NULL\", %s);" % desc)
                else:
                    body.append("    check_ptr(r, EXP_%s, %s);" % (exp.upper(), desc))
                if fx:
                    body.append("    check_unchanged(opt, before, r == NULL && %d, 0, %s);" % (
                        0 if exp == "ok" else 1, desc))
            else:
                body.append("    int rc = %s;" % call)
                if fx:
                    body.append("    check_rc(opt, rc, EXP_%s, before, %d, %s);" % (
                        exp.upper(), 0 if handle_null else errmsg, desc))
                else:
                    body.append("    check_rc(NULL, rc, EXP_%s, 0, 0, %s);" % (exp.upper(), desc))
                body.append("    check_outputs(&O, &O0, rc < 0, %s);" % desc)
            if fx and a[0] == "FX_BOGUS":
                body.append("    check_bogus(%s);" % desc)
            if spec.get("base") == "err_leak":
                body.append("    if (rc == OPTIM_OK) optim_destroy(O.opt);")
            if fx:
                body.append("    optim_destroy(opt);")
            body.append("  }")
        tests.append(name)
        body.append("  ck_assert_msg(fx_failures == 0, \"%d failed expectations\", fx_failures);")
        out.append("START_TEST(misuse_%s)\n{\n%s\n}\nEND_TEST\n" % (name, "\n".join(body)))
        out.append("/* %s: %d calls%s */\n" % (name, len(calls), "".join(
            "; skipped %s (%s)" % (k, r) for k, r in sorted(skip.items()))))
    out.append(STEP_ERRORS % {})
    out.append("static Suite *misuse_suite(void)\n{\n  Suite *s = suite_create(\"misuse\");\n"
               "  TCase *tc = tcase_create(\"sweep\");\n  tcase_set_timeout(tc, 120);\n")
    for t in tests:
        out.append("  tcase_add_test(tc, misuse_%s);\n" % t)
    out.append("  suite_add_tcase(s, tc);\n  TCase *st = tcase_create(\"step_errors\");\n"
               "  tcase_set_timeout(st, 120);\n"
               "  tcase_add_loop_test(st, step_errors, 0, (int)(sizeof step_algs / sizeof *step_algs));\n"
               "  suite_add_tcase(s, st);\n  return s;\n}\n\n")
    out.append("int main(void)\n{\n  fx_init();\n  int rc = run_suite(misuse_suite());\n"
               "  unlink(fx_path);\n  unlink(fx_saved_path);\n  unlink(fx_garbage_path);\n"
               "  return rc;\n}\n")
    out.append("/* %d functions, %d generated calls. */\n" % (len(funcs), ncalls))
    sys.stdout.write("".join(out))


HEAD = r"""/* check_misuse.c - GENERATED by tests/gen_misuse.py from include/optim.h:
 * do not edit; run `make misuse-regen` after changing the header or the
 * generator (tests/misuse.sh fails while this file is stale).
 *
 * The API misuse sweep: each of the %(nfunc)d public functions of optim.h
 * called with valid baseline arguments and then with each argument in turn
 * made invalid (NULL or non-handle handles, NULL / empty / over-long
 * strings, NULL pointers, 0 / -1 / maximum integers, NaN / +-Inf / -1 /
 * DBL_MAX doubles; the table in the generator lists the values that are
 * valid).  Invalid calls must fail without crashing, write no output, leave every
 * parameter, gradient, hyperparameter, counter and state entry
 * bit-identical, and set the handle's message.  Last, optim_step errors
 * (NaN gradients, unset required hyperparameters, bad grad_scale, schedules
 * leaving the range) on one algorithm of each family change nothing.
 *
 * optim_mpi.h is not swept here: its functions need MPI_Init and mpiexec;
 * its sweep, tests/misuse_mpi.h (gen_misuse.py --mpi), runs inside
 * tests/mpi_test.c under tests/mpi.sh when the MPI layer is built. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { EXP_OK, EXP_ERR, EXP_ANY };
enum { FX_MAIN, FX_FRESH, FX_SVRG };

struct outs {
  int i, i2, i3;
  int64_t l, l2;
  double d, d2;
  const char *s, *s2, *s3;
  void *p;
  const void *cp;
  int64_t shape[OPTIM_MAX_DIMS];
  char buf[64];
  double factors[4];
  optim_optimizer *opt;
};

/* A failed expectation fails the test at once, or with MISUSE_ALL set in
 * the environment, is printed and the test goes on (fails at its end): to
 * see every finding of a sweep at a time. */
static int fx_failures;
#define EXPECT(cond, ...)                                           \
  do {                                                              \
    if (!(cond)) {                                                  \
      if (!getenv("MISUSE_ALL")) ck_abort_msg(__VA_ARGS__);         \
      fprintf(stderr, __VA_ARGS__);                                 \
      fputc('\n', stderr);                                          \
      fx_failures++;                                                \
    }                                                               \
  } while (0)

/* Not a handle: zero bytes without the magic number, which the library
 * must recognize (OPTIM_EINVAL, NULL, a no-op for optim_destroy) and leave
 * untouched. */
static _Alignas(64) unsigned char fx_bogus[4096];
#define FX_BOGUS ((optim_optimizer *)(void *)fx_bogus)

/* A name longer than any the library accepts (names are at most 255 bytes). */
#define FX_LONG \
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static void check_bogus(const char *what)
{
  for (size_t i = 0; i < sizeof fx_bogus; i++)
    EXPECT(fx_bogus[i] == 0, "%%s wrote into a non-handle", what);
}

/* Outputs are written only on success. */
static void check_outputs(const struct outs *o, const struct outs *o0, int failed,
                          const char *what)
{
  if (failed) EXPECT(!memcmp(o, o0, sizeof *o), "%%s failed but wrote an output", what);
}

/* Caller buffers of the fixture: group 0 adamw ("w" 2x3 and "b" 3,
 * float32), group 1 sgd ("v" 4, float64), group 2 muon ("m" 4x4), group 3
 * adahessian ("h" 4, with a bound Hessian-vector buffer); or one adasvrg
 * group ("s" 4, float64). */
static float fx_w[6], fx_gw[6], fx_b[3], fx_gb[3], fx_m[16], fx_gm[16], fx_h[4], fx_gh[4];
static float fx_hz[4], fx_pnew[6], fx_gnew[6], fx_b3[3];
static double fx_v[4], fx_gv[4], fx_s[4], fx_gs[4], fx_sg[4];
static int64_t fx_shape[2] = {2, 3};
static double fx_table[3] = {1.0, 0.5, 0.25};
static int fx_indices[2] = {0, 1};
static double fx_gnorms[3] = {1.0, 2.0, 1.5};
static double fx_grads[6] = {1.0, 2.0, 1.5, 2.5, 0.5, 1.0};
static char fx_path[64];
static char fx_saved_path[64];
static char fx_garbage_path[64];

static void fx_init(void)
{
  snprintf(fx_path, sizeof fx_path, "misuse-%%ld.ckpt", (long)getpid());
  snprintf(fx_saved_path, sizeof fx_saved_path, "misuse-saved-%%ld.ckpt", (long)getpid());
  snprintf(fx_garbage_path, sizeof fx_garbage_path, "misuse-garbage-%%ld", (long)getpid());
}

static void fill_f(float *x, int n, double a)
{
  for (int i = 0; i < n; i++) x[i] = (float)(a * sin(1.0 + i * 0.7 + a));
}

static void fill_d(double *x, int n, double a)
{
  for (int i = 0; i < n; i++) x[i] = a * sin(1.0 + i * 0.7 + a);
}

static int fx_hvp(void *u, int count, const int *params, const void *const *z,
                  void *const *hz)
{
  (void)u; (void)count; (void)params; (void)z; (void)hz;
  return 0;
}

static int fx_row_reduce(void *u, void *buf, size_t count, int dtype)
{
  (void)u; (void)buf; (void)count; (void)dtype;
  return 0;
}

static int fx_norm_reduce(void *u, double *values, size_t count)
{
  (void)u; (void)values; (void)count;
  return 0;
}

static int fx_full_grad(void *u, int count, const int *params, const void *const *points,
                        void *const *grads)
{
  (void)u; (void)params; (void)points;
  for (int k = 0; k < count; k++) fill_d(grads[k], 4, 0.3);
  return 0;
}

#define OK(call) ck_assert_msg((call) >= 0, "%%s: %%s", #call, optim_errmsg(o))

/* Whether fx_new leaves a prepared step pending (FX_MAIN). */
static int fx_prepare;

static optim_optimizer *fx_new(int kind)
{
  optim_optimizer *o;
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  if (kind == FX_SVRG) {
    int64_t n4[1] = {4};
    fill_d(fx_s, 4, 1.0);
    fill_d(fx_gs, 4, 0.2);
    fill_d(fx_sg, 4, 0.1);
    OK(optim_add_group(o, "adasvrg", NULL));
    OK(optim_set_double(o, 0, "lr", 0.1));
    OK(optim_add_param(o, 0, "s", OPTIM_FLOAT64, 1, n4, fx_s, fx_gs, NULL));
    return o;
  }
  int64_t s23[2] = {2, 3}, n3[1] = {3}, n4[1] = {4}, s44[2] = {4, 4};
  fill_f(fx_w, 6, 1.0); fill_f(fx_gw, 6, 0.5);
  fill_f(fx_b, 3, 0.7); fill_f(fx_gb, 3, 0.3);
  fill_d(fx_v, 4, 1.1); fill_d(fx_gv, 4, 0.4);
  fill_f(fx_m, 16, 0.9); fill_f(fx_gm, 16, 0.6);
  fill_f(fx_h, 4, 1.2); fill_f(fx_gh, 4, 0.2);
  for (int i = 0; i < 4; i++) fx_hz[i] = 0.5f + (float)i;
  fill_f(fx_pnew, 6, 0.8); fill_f(fx_gnew, 6, 0.1); fill_f(fx_b3, 3, 0.05);
  OK(optim_add_group(o, "adamw", NULL));
  OK(optim_add_group(o, "sgd", NULL));
  OK(optim_add_group(o, "muon", NULL));
  OK(optim_add_group(o, "adahessian", NULL));
  OK(optim_configure(o, 1, "lr=0.1,momentum=0.9"));
  OK(optim_add_param(o, 0, "w", OPTIM_FLOAT32, 2, s23, fx_w, fx_gw, NULL));
  OK(optim_add_param(o, 0, "b", OPTIM_FLOAT32, 1, n3, fx_b, fx_gb, NULL));
  OK(optim_add_param(o, 1, "v", OPTIM_FLOAT64, 1, n4, fx_v, fx_gv, NULL));
  OK(optim_add_param(o, 2, "m", OPTIM_FLOAT32, 2, s44, fx_m, fx_gm, NULL));
  OK(optim_add_param(o, 3, "h", OPTIM_FLOAT32, 1, n4, fx_h, fx_gh, NULL));
  OK(optim_param_bind_hvp(o, 4, fx_hz));
  OK(optim_set_clip_norm(o, 1e6));
  if (kind == FX_MAIN) OK(optim_step(o));
  if (kind == FX_MAIN && fx_prepare) OK(optim_step_prepare(o, 1.0));
  return o;
}

/* Save the optimizer to a file of its own, for the loaders. */
static const char *fx_saved(optim_optimizer *o)
{
  OK(optim_save(o, fx_saved_path));
  return fx_saved_path;
}

/* A file that is not a checkpoint. */
static const char *fx_garbage(void)
{
  const char *path = fx_garbage_path;
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("not a checkpoint, but long enough to have a header of some size....", f);
  fclose(f);
  return path;
}

/* A damaged or foreign checkpoint: how = 0 truncated to half, 1 one byte
 * flipped in the middle, 2 the last byte flipped, 3 of an optimizer with
 * other algorithms (the same names and shapes), 4 of one whose "b" has
 * another shape. */
static const char *fx_damaged(optim_optimizer *o, int how)
{
  const char *path = fx_garbage_path;
  if (how >= 3) {
    optim_optimizer *x;
    int64_t s23[2] = {2, 3}, n3[1] = {3}, n4[1] = {4}, s44[2] = {4, 4};
    static float w[6], b[4], m[16], h[4], gw[6], gb[4], gm[16], gh[4];
    static double v[4], gv[4];
    ck_assert_int_eq(optim_create(&x), OPTIM_OK);
    OK(optim_add_group(x, how == 3 ? "sgd" : "adamw", NULL));
    OK(optim_add_group(x, "sgd", NULL));
    OK(optim_add_group(x, "muon", NULL));
    OK(optim_add_group(x, "adahessian", NULL));
    OK(optim_configure(x, 0, "lr=0.1"));
    OK(optim_configure(x, 1, "lr=0.1,momentum=0.9"));
    OK(optim_add_param(x, 0, "w", OPTIM_FLOAT32, 2, s23, w, gw, NULL));
    OK(optim_add_param(x, 0, "b", OPTIM_FLOAT32, 1, how == 3 ? n3 : n4, b, gb, NULL));
    OK(optim_add_param(x, 1, "v", OPTIM_FLOAT64, 1, n4, v, gv, NULL));
    OK(optim_add_param(x, 2, "m", OPTIM_FLOAT32, 2, s44, m, gm, NULL));
    OK(optim_add_param(x, 3, "h", OPTIM_FLOAT32, 1, n4, h, gh, NULL));
    ck_assert_int_eq(optim_save(x, path), OPTIM_OK);
    optim_destroy(x);
    return path;
  }
  ck_assert_int_eq(optim_save(o, path), OPTIM_OK);
  FILE *f = fopen(path, "r+b");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  if (how == 0) {
    ck_assert_int_eq(truncate(path, n / 2), 0);
  } else {
    long at = how == 1 ? n / 2 : n - 1;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x55, f);
  }
  fclose(f);
  return path;
}

/* Everything a failed call must leave alone: parameter state (testutil's
 * hash_state), the caller's parameter and gradient buffers, every
 * hyperparameter of every group, the counters, the per-parameter settings
 * and the buffers the parameters are bound to. */
static uint64_t fx_hash(optim_optimizer *o)
{
  uint64_t h = hash_state(o);
  static const void *bufs[] = {fx_w, fx_gw, fx_b, fx_gb, fx_m, fx_gm, fx_h, fx_gh, fx_hz,
                               fx_v, fx_gv, fx_s, fx_gs, fx_sg};
  static const size_t sizes[] = {sizeof fx_w, sizeof fx_gw, sizeof fx_b, sizeof fx_gb,
                                 sizeof fx_m, sizeof fx_gm, sizeof fx_h, sizeof fx_gh,
                                 sizeof fx_hz, sizeof fx_v, sizeof fx_gv, sizeof fx_s,
                                 sizeof fx_gs, sizeof fx_sg};
  for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) h = hash_bytes(h, bufs[k], sizes[k]);
  int ng = optim_group_count(o), np = optim_param_count(o);
  h = hash_bytes(h, &ng, sizeof ng);
  h = hash_bytes(h, &np, sizeof np);
  for (int g = 0; g < ng; g++) {
    const char *alg = optim_group_algorithm(o, g);
    h = hash_bytes(h, alg, strlen(alg));
    int nh = optim_hparam_count(alg);
    for (int k = 0; k < nh; k++) {
      const char *name;
      int type;
      optim_hparam_info(alg, k, &name, &type, NULL, NULL);
      double d = 0;
      int64_t l = 0;
      int b = 0;
      char s[64] = "";
      int rc = type == OPTIM_TYPE_DOUBLE ? optim_get_double(o, g, name, &d)
               : type == OPTIM_TYPE_INT  ? optim_get_int(o, g, name, &l)
               : type == OPTIM_TYPE_BOOL ? optim_get_bool(o, g, name, &b)
                                         : optim_get_string(o, g, name, s, sizeof s);
      h = hash_bytes(h, &rc, sizeof rc);
      h = hash_bytes(h, &d, sizeof d);
      h = hash_bytes(h, &l, sizeof l);
      h = hash_bytes(h, &b, sizeof b);
      h = hash_bytes(h, s, sizeof s);
    }
    static const char *const counters[] = {"steps", "skipped", "failed"};
    for (int k = 0; k < 3; k++) {
      int64_t v = -1;
      optim_get_counter(o, g, counters[k], &v);
      h = hash_bytes(h, &v, sizeof v);
    }
    double norm = -1;
    optim_get_grad_norm(o, g, &norm);
    h = hash_bytes(h, &norm, sizeof norm);
  }
  for (int i = 0; i < np; i++) {
    int frozen = -1;
    double scale = -1, cost = -1;
    int64_t range[2] = {-1, -1};
    void *p = NULL;
    const void *gr = NULL;
    optim_param_get_frozen(o, i, &frozen);
    optim_param_get_decay_scale(o, i, &scale);
    optim_param_get_range(o, i, &range[0], &range[1]);
    optim_param_cost(o, i, &cost);
    optim_param_buffers(o, i, &p, &gr);
    h = hash_bytes(h, &frozen, sizeof frozen);
    h = hash_bytes(h, &scale, sizeof scale);
    h = hash_bytes(h, range, sizeof range);
    h = hash_bytes(h, &cost, sizeof cost);
    h = hash_bytes(h, &p, sizeof p);
    h = hash_bytes(h, &gr, sizeof gr);
  }
  return h;
}

static void check_unchanged(optim_optimizer *o, uint64_t before, int failed, int errmsg,
                            const char *what)
{
  if (!o || !failed) return;
  if (errmsg) {
    const char *m = optim_errmsg(o);
    EXPECT(m && m[0], "%%s failed with an empty optim_errmsg", what);
  }
  EXPECT(fx_hash(o) == before, "%%s failed but changed the optimizer", what);
  if (fx_prepare)
    EXPECT(optim_step_commit(o) == OPTIM_OK, "%%s failed but dropped the prepared step (%%s)",
           what, optim_errmsg(o));
}

static void check_rc(optim_optimizer *o, int rc, int exp, uint64_t before, int errmsg,
                     const char *what)
{
  if (exp == EXP_OK)
    EXPECT(rc >= 0, "%%s returned %%d (%%s)", what, rc, o ? optim_errmsg(o) : "");
  if (exp == EXP_ERR) EXPECT(rc < 0, "%%s accepted invalid input (returned %%d)", what, rc);
  check_unchanged(o, before, rc < 0, errmsg, what);
}

static void check_ptr(const char *r, int exp, const char *what)
{
  if (exp == EXP_OK) EXPECT(r != NULL, "%%s returned NULL", what);
  if (exp == EXP_ERR) EXPECT(r == NULL, "%%s returned non-NULL for invalid input", what);
}

"""

STEP_ERRORS = r"""
/* ---- optim_step on error changes nothing ---------------------------------------- */

/* One algorithm of each family, with a hyperparameter that a schedule can
 * push out of its range (base * factor), or NULL. */
static const struct {
  const char *alg, *opts, *ranged;
  int ndim;
  double base, factor; /* base (if the hyperparameter is 0) and factor */
} step_algs[] = {
  {"sgd", "lr=0.1,momentum=0.5", "dampening", 1, 0.5, 1000},
  {"adamw", NULL, "beta1", 1, 0.5, 1000},
  {"muon", NULL, "momentum", 2, 0.5, 1000},
  {"soap", "precondition_frequency=1", "beta1", 2, 0.5, 1000},
  {"shampoo", "update_freq=1", "beta1", 2, 0.5, 1000},
  {"adahessian", NULL, "beta1", 1, 0.5, 1000},
  /* no bounded real hyperparameter: an lr whose scheduled value overflows */
  {"adasvrg", "lr=1e10", "lr", 1, 1e10, 1e300},
  {"igt", "lr=0.1,momentum=0.5", "dampening", 1, 0.5, 1000},
  {"adam_cm", NULL, "beta1", 1, 0.5, 1000},
  {"tam", NULL, "momentum", 1, 0.5, 1000},
};

/* Two parameters "x" and "y" in the algorithm's group: an error found in
 * the second must not leave the first stepped. */
static double se_x[2][16], se_g[2][16], se_hz[2][16], se_sg[2][16];

static uint64_t fx_hash_se(optim_optimizer *o)
{
  uint64_t h = fx_hash(o);
  h = hash_bytes(h, se_x, sizeof se_x);
  h = hash_bytes(h, se_g, sizeof se_g);
  h = hash_bytes(h, se_hz, sizeof se_hz);
  return hash_bytes(h, se_sg, sizeof se_sg);
}

static int fx_full_grad_16(void *u, int count, const int *params, const void *const *points,
                           void *const *grads)
{
  (void)u; (void)params; (void)points;
  for (int k = 0; k < count; k++) fill_d(grads[k], 16, 0.3);
  return 0;
}

/* Failing callbacks: *mode 1 returns non-zero, 2 reports a failure
 * (another process's, NaN products or gradients). */
static int se_norm_reduce(void *u, double *values, size_t count)
{
  if (*(int *)u == 1) return 1;
  values[count - 1] = 1;
  return 0;
}

static int se_hvp(void *u, int count, const int *params, const void *const *z,
                  void *const *hz)
{
  (void)params; (void)z;
  if (*(int *)u == 1) return 1;
  for (int k = 0; k < count; k++) fill_d(hz[k], 16, 0.1), ((double *)hz[k])[5] = NAN;
  return 0;
}

static int se_full_grad_bad(void *u, int count, const int *params, const void *const *points,
                            void *const *grads)
{
  (void)params; (void)points;
  if (*(int *)u == 1) return 1;
  for (int k = 0; k < count; k++) fill_d(grads[k], 16, 0.3), ((double *)grads[k])[7] = NAN;
  return 0;
}

static optim_optimizer *se_new(int k, int with_lr)
{
  optim_optimizer *o;
  int64_t shape[2] = {4, 4}, n16[1] = {16};
  ck_assert_int_eq(optim_create(&o), OPTIM_OK);
  OK(optim_add_group(o, step_algs[k].alg, NULL));
  if (step_algs[k].opts && with_lr) OK(optim_configure(o, 0, step_algs[k].opts));
  else if (step_algs[k].opts && !with_lr) {
    /* every option but lr */
    char buf[128], *save = NULL;
    snprintf(buf, sizeof buf, "%%s", step_algs[k].opts);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
      if (strncmp(t, "lr=", 3) != 0) OK(optim_configure(o, 0, t));
  }
  for (int j = 0; j < 2; j++) {
    fill_d(se_x[j], 16, 1.0 + j);
    fill_d(se_g[j], 16, 0.5 + j);
    fill_d(se_sg[j], 16, 0.4 + j);
    for (int i = 0; i < 16; i++) se_hz[j][i] = 0.25 + i * 0.01 + j;
    OK(optim_add_param(o, 0, j ? "y" : "x", OPTIM_FLOAT64, step_algs[k].ndim,
                       step_algs[k].ndim == 2 ? shape : n16, se_x[j], se_g[j], NULL));
    if (!strcmp(step_algs[k].alg, "adahessian")) OK(optim_param_bind_hvp(o, j, se_hz[j]));
    if (!strcmp(step_algs[k].alg, "adasvrg")) OK(optim_param_bind_snapshot_grad(o, j, se_sg[j]));
  }
  if (!strcmp(step_algs[k].alg, "adasvrg")) OK(optim_snapshot(o, fx_full_grad_16, NULL));
  return o;
}

static void se_expect_fail(optim_optimizer *o, int rc, const char *what, const char *alg)
{
  ck_assert_msg(rc < 0, "%%s: %%s succeeded", alg, what);
  ck_assert_msg(optim_errmsg(o)[0], "%%s: %%s: empty optim_errmsg", alg, what);
}

/* A non-finite gradient element in y under nonfinite=error: optim_step,
 * optim_step_scaled and optim_step_prepare fail and change nothing,
 * optim_validate reports it, and a later commit has nothing to commit. */
static void se_nonfinite(optim_optimizer *o, const char *alg, double bad, int at)
{
  double keep = se_g[1][at];
  se_g[1][at] = bad;
  uint64_t h = fx_hash_se(o);
  se_expect_fail(o, optim_step(o), "non-finite gradient", alg);
  ck_assert_msg(fx_hash_se(o) == h, "%%s: failed step (gradient %%g at %%d) changed something",
                alg, bad, at);
  se_expect_fail(o, optim_step_scaled(o, 0.5), "non-finite gradient (scaled)", alg);
  ck_assert_msg(fx_hash_se(o) == h, "%%s: failed scaled step (gradient %%g) changed something",
                alg, bad);
  se_expect_fail(o, optim_validate(o), "validate with a non-finite gradient", alg);
  se_expect_fail(o, optim_step_prepare(o, 1.0), "prepare with a non-finite gradient", alg);
  se_expect_fail(o, optim_step_commit(o), "commit after a failed prepare", alg);
  ck_assert_msg(fx_hash_se(o) == h, "%%s: failed prepare/commit changed something", alg);
  se_g[1][at] = keep;
}

START_TEST(step_errors)
{
  const char *alg = step_algs[_i].alg;
  optim_optimizer *o = se_new(_i, 1);
  /* Two good steps first, so that the state is not the initial one. */
  OK(optim_step(o));
  OK(optim_step(o));
  uint64_t h;

  /* Non-finite gradients under nonfinite=error, without and with clipping
   * (which reads the gradients' norms first), and with a group clip. */
  OK(optim_set_string(o, 0, "nonfinite", "error"));
  static const double nonfinite[] = {NAN, INFINITY, -INFINITY};
  for (int c = 0; c < 3; c++) {
    if (c == 1) OK(optim_set_clip_norm(o, 1.0));
    if (c == 2) {
      OK(optim_set_clip_norm(o, 0.0));
      OK(optim_set_double(o, 0, "clip_norm", 1.0));
    }
    for (int k = 0; k < 3; k++) {
      se_nonfinite(o, alg, nonfinite[k], 0);
      se_nonfinite(o, alg, nonfinite[k], 15);
    }
  }
  OK(optim_set_double(o, 0, "clip_norm", 0.0));

  /* Callbacks that fail: the norm reduction (non-zero, or another process
   * reporting failure), the Hessian-vector callback (adahessian, its
   * buffers unbound; non-zero, or NaN products) and the full gradient of a
   * snapshot (adasvrg; non-zero, or NaN). */
  OK(optim_set_string(o, 0, "nonfinite", "error"));
  for (int mode = 1; mode <= 2; mode++) {
    OK(optim_set_norm_reduce(o, se_norm_reduce, &mode));
    h = fx_hash_se(o);
    se_expect_fail(o, optim_step(o), "failing norm reduction", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: failed norm reduction (%%d) changed something", alg,
                  mode);
    OK(optim_set_norm_reduce(o, NULL, NULL));
  }
  if (!strcmp(alg, "adahessian")) {
    for (int mode = 1; mode <= 2; mode++) {
      OK(optim_param_bind_hvp(o, 0, NULL));
      OK(optim_param_bind_hvp(o, 1, NULL));
      OK(optim_set_hvp_callback(o, se_hvp, &mode, 3));
      h = fx_hash_se(o);
      se_expect_fail(o, optim_step(o), "failing Hessian-vector callback", alg);
      ck_assert_msg(fx_hash_se(o) == h, "%%s: failed hvp callback (%%d) changed something", alg,
                    mode);
      OK(optim_set_hvp_callback(o, NULL, NULL, 0));
      OK(optim_param_bind_hvp(o, 0, se_hz[0]));
      OK(optim_param_bind_hvp(o, 1, se_hz[1]));
    }
  }
  if (!strcmp(alg, "adasvrg")) {
    for (int mode = 1; mode <= 2; mode++) {
      h = fx_hash_se(o);
      se_expect_fail(o, optim_snapshot(o, se_full_grad_bad, &mode), "failing full gradient",
                     alg);
      ck_assert_msg(fx_hash_se(o) == h, "%%s: failed snapshot (%%d) changed something", alg,
                    mode);
    }
  }

  /* A prepared step that is cancelled changes nothing. */
  h = fx_hash_se(o);
  OK(optim_step_prepare(o, 1.0));
  OK(optim_step_cancel(o));
  ck_assert_msg(fx_hash_se(o) == h, "%%s: prepare + cancel changed something", alg);
  se_expect_fail(o, optim_step_commit(o), "commit after cancel", alg);
  ck_assert_msg(fx_hash_se(o) == h, "%%s: commit after cancel changed something", alg);

  /* Bad grad_scale. */
  static const double bad[] = {NAN, INFINITY, -INFINITY, 0.0, -1.0};
  for (int k = 0; k < 5; k++) {
    se_expect_fail(o, optim_step_scaled(o, bad[k]), "bad grad_scale", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: step_scaled(%%g) changed something", alg, bad[k]);
    se_expect_fail(o, optim_step_prepare(o, bad[k]), "prepare with a bad grad_scale", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: step_prepare(%%g) changed something", alg, bad[k]);
  }

  /* A schedule whose value leaves the hyperparameter's range at the next
   * step (base * 1000 for a value in [0, 1), or an overflow). */
  double base = 0;
  OK(optim_get_double(o, 0, step_algs[_i].ranged, &base));
  if (base == 0) OK(optim_set_double(o, 0, step_algs[_i].ranged, step_algs[_i].base));
  h = fx_hash_se(o);
  const double table[2] = {step_algs[_i].factor, step_algs[_i].factor};
  int rc = optim_set_schedule_table(o, 0, step_algs[_i].ranged, table, 2);
  if (rc == OPTIM_OK) {
    h = fx_hash_se(o); /* the getters now read the scheduled value */
    se_expect_fail(o, optim_step(o), "schedule out of range", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: failed step (schedule) changed something", alg);
    se_expect_fail(o, optim_step_prepare(o, 1.0), "prepare with a schedule out of range", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: failed prepare (schedule) changed something", alg);
    OK(optim_set_schedule(o, 0, step_algs[_i].ranged, NULL));
  } else {
    /* Refused when attached: just as good, if it changed nothing. */
    ck_assert_msg(fx_hash_se(o) == h, "%%s: refused schedule changed something", alg);
  }
  optim_destroy(o);

  /* A required hyperparameter left unset (igt and sgd have no default lr). */
  if (!strcmp(alg, "igt") || !strcmp(alg, "sgd")) {
    o = se_new(_i, 0);
    h = fx_hash_se(o);
    se_expect_fail(o, optim_step(o), "step without lr", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: failed step (no lr) changed something", alg);
    se_expect_fail(o, optim_step_prepare(o, 1.0), "prepare without lr", alg);
    ck_assert_msg(fx_hash_se(o) == h, "%%s: failed prepare (no lr) changed something", alg);
    optim_destroy(o);
  }
}
END_TEST

"""

if __name__ == "__main__":
    main()
