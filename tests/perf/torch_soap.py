#!/usr/bin/python3
"""Time SOAP optimizer steps in PyTorch 1.13 (CPU, float32), for comparison
with liboptim's soap.

    /usr/bin/python3 tests/perf/torch_soap.py [--steps 20] [--threads 2]
        [--no-stagger] [--precondition-frequency 10] [--adamw | --both]

Parameters: 4 of 1024x1024 and 2 of 1024x4096 (rows=1024, cols=4096; with
max_precond_dim 10000 both dims of every matrix are rotated), float32,
seeded random values and a fresh seeded random gradient before every step
(drawn outside the timed region).  The first step of SOAP only builds the
Kronecker factors and their eigenbases (eigh), so it runs untimed; then
--steps steps are timed one by one.  A step "refreshes" if at least one
parameter recomputes its basis in it (sort + power step + QR); with
stagger (the default, as in liboptim) the k-th parameter refreshes when
(t + k mod f) % f == 0, so 6 of every 10 steps refresh one parameter each;
with --no-stagger every parameter refreshes when t % f == 0.

SOAP here is our implementation of /work/shared/spec/optimizers.md section
5 (the same rule as tests/golden/gen_soap.py), written as a
torch.optim.Optimizer with torch.tensordot projections, torch.linalg.eigh
and torch.linalg.qr as the reference does, all in float32, no per-element
Python loops.  Hyperparameters are liboptim's defaults (lr 3e-3, betas
0.95/0.95, shampoo_beta = beta2, eps 1e-8, weight_decay 0.01).  --adamw
times torch.optim.AdamW (foreach=False, lr 3e-3, weight_decay 0.01) on the
same parameters instead (1 untimed warm-up step); --both times SOAP, then
AdamW, and prints the ratio of the mean step times.

Output (stdout, machine-readable):
    torch_soap step_ms_median X step_ms_mean X refresh_ms_mean X
        plain_ms_mean X refresh_steps N plain_steps N init_ms X threads T
        stagger 0|1      (one line)
    torch_adamw step_ms_median X step_ms_mean X threads T
    soap_over_adamw X        (--both: ratio of the mean step times)
Configuration and per-step times go to stderr.
"""
import argparse
import os
import statistics
import sys
import time

# As tests/perf/torch_mlp.py: OpenMP threads spin-waiting between ops
# starve OpenBLAS's pthreads; PASSIVE unless the environment says otherwise
# (OMP_WAIT_POLICY=default removes the variable: libgomp's own behaviour).
# Must be set before torch loads libgomp.
if os.environ.get("OMP_WAIT_POLICY", "").lower() == "default":
    del os.environ["OMP_WAIT_POLICY"]
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

SHAPES = [(1024, 1024)] * 4 + [(1024, 4096)] * 2


class SOAP(torch.optim.Optimizer):
    """SOAP (spec section 5) with liboptim's stagger option; float32 only,
    no merge_dims (not needed for matrices)."""

    def __init__(self, params, lr=3e-3, beta1=0.95, beta2=0.95,
                 shampoo_beta=-1.0, eps=1e-8, weight_decay=0.01,
                 precondition_frequency=10, max_precond_dim=10000,
                 precondition_1d=False, normalize_grads=False,
                 correct_bias=True, stagger=True):
        super().__init__(params, dict(
            lr=lr, beta1=beta1, beta2=beta2, shampoo_beta=shampoo_beta,
            eps=eps, weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            precondition_1d=precondition_1d,
            normalize_grads=normalize_grads, correct_bias=correct_bias,
            stagger=stagger))
        self.refreshed = 0  # parameters that refreshed in the last step
        self.eigh_fallbacks = 0  # float32 eighs retried in float64

    @staticmethod
    def _project(x, qs):
        for q in qs:
            if q is None:
                x = x.permute(*range(1, x.ndim), 0)
            else:
                x = torch.tensordot(x, q, dims=([0], [0]))
        return x

    @staticmethod
    def _project_back(x, qs):
        for q in qs:
            if q is None:
                x = x.permute(*range(1, x.ndim), 0)
            else:
                x = torch.tensordot(x, q, dims=([0], [1]))
        return x

    @staticmethod
    def _outer(g, i):
        others = [d for d in range(g.ndim) if d != i]
        return torch.tensordot(g, g, dims=(others, others))

    def _eigvecs_desc(self, gg):
        """Eigenvectors of gg + 1e-30 I, descending eigenvalues.  torch
        1.13's float32 eigh fails for n >= ~2900 (LAPACK ssyevd returns its
        workspace size as a float32, which rounds below the minimum:
        "Argument 8 has illegal value"); then retry in float64 and cast
        back.  Only the untimed first step calls this."""
        a = gg + 1e-30 * torch.eye(gg.shape[0])
        try:
            q = torch.linalg.eigh(a)[1]
        except RuntimeError:
            self.eigh_fallbacks += 1
            q = torch.linalg.eigh(a.double())[1].to(gg.dtype)
        return torch.flip(q, [1])

    def _rotated(self, p, group):
        maxd = group["max_precond_dim"]
        if p.ndim == 1:
            return [group["precondition_1d"] and p.shape[0] <= maxd]
        return [d <= maxd for d in p.shape]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.refreshed = 0
        for group in self.param_groups:
            b1, b2 = group["beta1"], group["beta2"]
            bs = group["shampoo_beta"]
            bs = bs if bs >= 0 else b2
            lr, wd, f = group["lr"], group["weight_decay"], \
                group["precondition_frequency"]
            ordinal = 0
            for p in group["params"]:
                rot = self._rotated(p, group)
                k = ordinal
                ordinal += any(rot)
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if "Q" not in st:  # first call: factors and bases only
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    st["GG"] = [self._outer(g, i).mul_(1 - bs) if r else None
                                for i, r in enumerate(rot)]
                    st["Q"] = [self._eigvecs_desc(gg) if gg is not None
                               else None for gg in st["GG"]]
                    continue
                st["step"] += 1
                t = st["step"]
                m, v, qs = st["exp_avg"], st["exp_avg_sq"], st["Q"]
                gp = self._project(g, qs)
                m.mul_(b1).add_(gp, alpha=1 - b1)
                v.mul_(b2).add_(gp.square(), alpha=1 - b2)
                denom = v.sqrt().add_(group["eps"])
                alpha = lr
                if group["correct_bias"]:
                    alpha = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
                n = self._project_back(m / denom, qs)
                if group["normalize_grads"]:
                    n = n / (1e-30 + torch.mean(n ** 2) ** 0.5)
                p.add_(n, alpha=-alpha)
                if wd > 0:
                    p.add_(p, alpha=-lr * wd)
                # preconditioner update, old bases for m
                m_o = self._project_back(m, qs)
                for i, gg in enumerate(st["GG"]):
                    if gg is not None:
                        gg.mul_(bs).add_(self._outer(g, i), alpha=1 - bs)
                off = k % f if group["stagger"] else 0
                if any(rot) and (t + off) % f == 0:
                    self.refreshed += 1
                    for i, gg in enumerate(st["GG"]):
                        if gg is None:
                            continue
                        o = qs[i]
                        e = torch.diag(o.T @ gg @ o)
                        idx = torch.sort(e, descending=True, stable=True)[1]
                        v = v.index_select(i, idx)
                        qs[i] = torch.linalg.qr(gg @ o[:, idx],
                                                mode="reduced")[0]
                    st["exp_avg_sq"] = v
                st["exp_avg"] = self._project(m_o, qs).contiguous()
        return loss


def make_params(seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) for s in SHAPES]


def fill_grads(params, gen):
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)


def run(opt, params, steps, seed, label):
    """1 untimed step, then `steps` timed ones; returns (init_s, times,
    refresh flags)."""
    gen = torch.Generator().manual_seed(seed + 1)
    fill_grads(params, gen)
    t0 = time.perf_counter()
    opt.step()
    init_s = time.perf_counter() - t0
    times, flags = [], []
    for i in range(steps):
        fill_grads(params, gen)
        t0 = time.perf_counter()
        opt.step()
        dt = time.perf_counter() - t0
        times.append(dt)
        flags.append(getattr(opt, "refreshed", 0) > 0)
        print("%s step %d %.1f ms%s" % (label, i + 1, dt * 1e3,
                                        " (refresh: %d params)" % opt.refreshed
                                        if flags[-1] else ""),
              file=sys.stderr, flush=True)
    return init_s, times, flags


def mean_ms(xs):
    return statistics.mean(xs) * 1e3 if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads (default 2)")
    ap.add_argument("--precondition-frequency", type=int, default=10)
    ap.add_argument("--no-stagger", action="store_true",
                    help="every parameter refreshes when t %% f == 0")
    ap.add_argument("--seed", type=int, default=0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--adamw", action="store_true",
                      help="time torch.optim.AdamW (foreach=False) instead")
    mode.add_argument("--both", action="store_true",
                      help="time SOAP, then AdamW, and print the ratio")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print("torch %s threads=%d OPENBLAS_NUM_THREADS=%s OMP_WAIT_POLICY=%s "
          "shapes=%s" % (torch.__version__, torch.get_num_threads(),
                         os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
                         os.environ.get("OMP_WAIT_POLICY", "unset"), SHAPES),
          file=sys.stderr, flush=True)

    soap_mean = adamw_mean = None
    if not args.adamw:
        params = make_params(args.seed)
        opt = SOAP(params, precondition_frequency=args.precondition_frequency,
                   stagger=not args.no_stagger)
        init_s, times, flags = run(opt, params, args.steps, args.seed, "soap")
        if opt.eigh_fallbacks:
            print("init: %d float32 eigh(s) failed (torch 1.13 ssyevd "
                  "workspace bug for n >= ~2900), redone in float64"
                  % opt.eigh_fallbacks, file=sys.stderr)
        ref = [t for t, fl in zip(times, flags) if fl]
        plain = [t for t, fl in zip(times, flags) if not fl]
        soap_mean = statistics.mean(times)
        print("torch_soap step_ms_median %.1f step_ms_mean %.1f "
              "refresh_ms_mean %.1f plain_ms_mean %.1f refresh_steps %d "
              "plain_steps %d init_ms %.1f threads %d stagger %d"
              % (statistics.median(times) * 1e3, soap_mean * 1e3,
                 mean_ms(ref), mean_ms(plain), len(ref), len(plain),
                 init_s * 1e3, torch.get_num_threads(),
                 int(not args.no_stagger)), flush=True)
        del opt, params
    if args.adamw or args.both:
        params = make_params(args.seed)
        opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01,
                                foreach=False)
        _, times, _ = run(opt, params, args.steps, args.seed, "adamw")
        adamw_mean = statistics.mean(times)
        print("torch_adamw step_ms_median %.1f step_ms_mean %.1f threads %d"
              % (statistics.median(times) * 1e3, adamw_mean * 1e3,
                 torch.get_num_threads()), flush=True)
    if soap_mean is not None and adamw_mean is not None:
        print("soap_over_adamw %.1f" % (soap_mean / adamw_mean), flush=True)


if __name__ == "__main__":
    main()
