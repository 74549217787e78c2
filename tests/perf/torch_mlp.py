#!/usr/bin/python3
"""PyTorch 1.13 CPU baseline for optim-train: an MLP on Fashion-MNIST.

Trains a 784-256-128-10 ReLU MLP (nn.Linear, bias=True) with cross-entropy,
batch 128, reshuffled every epoch by a seeded generator, with either
torch.optim.AdamW or Muon (+ AdamW for the non-Muon parameters).  It is the
torch side of the optim-train comparison; `make bench` calls it as

    OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 /usr/bin/python3 \\
        tests/perf/torch_mlp.py --optim adamw --epochs 2 --threads 2

Data: the IDX files of Debian's dataset-fashion-mnist in
/usr/share/datasets/fashion-mnist (--data DIR overrides), read with gzip +
numpy; pixels are float32 /255 with no further normalisation (as optim-train).

Muon is implemented below from /work/shared/spec/optimizers.md section 2
(KellerJordan/Muon 857d1ad): EMA momentum, Nesterov blend, NS5 with
(3.4445, -4.7750, 2.0315) after Frobenius normalisation (eps 1e-7) on the
transposed matrix when rows > cols, scale sqrt(max(1, rows/cols)), decoupled
decay before the update.  The reference runs NS in bfloat16 on GPU; here it
runs in float32 (--ns-dtype, cf. spec section 13).  Muon groups: by default
only hidden matrices (every Linear weight except the first and the last) go
to Muon; --muon-all-matrices also gives the first layer's weight to Muon.
The rest (biases, the output weight, by default the input weight) goes to
torch's AdamW with the reference MuonWithAuxAdam settings: betas (0.9, 0.95),
eps 1e-10.  Seed 0, one epoch: 84.5% test accuracy with the default rule,
88.1% with --muon-all-matrices (AdamW alone: 83.5%).

BLAS: this Debian torch is built with BLAS_INFO=generic and links
libblas.so.3, which the alternatives system points at OpenBLAS
(openblas-pthread), so nn.Linear's GEMMs run in OpenBLAS (honours
OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS); MKL is absent, MKL-DNN (oneDNN
2.6.3) is present but unused by fp32 Linear; element-wise ops use OpenMP.
Threads: GEMMs use OPENBLAS_NUM_THREADS pthreads, everything else torch's
--threads OpenMP pool.  On 2 cores the fastest split measured was
--threads 1 with OPENBLAS_NUM_THREADS=2 (about 15% faster than --threads 2).

Output (stdout, one line per epoch, then a summary):
    epoch 1 train_loss 0.5123 test_acc 0.8234 epoch_s 3.210
    best_test_acc 0.8812 mean_epoch_s 3.210
epoch_s times only the training loop (forward, backward, optimizer step over
all batches of the already shuffled in-memory tensors); shuffling and the
test evaluation are excluded.  Configuration and thread info go to stderr.
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np

# With torch's OpenMP pool and OpenBLAS's pthread pool both sized to the
# cores, OpenMP threads spin-waiting between ops starve OpenBLAS's GEMM
# threads (2 cores: 2.3-3.3 s per AdamW epoch instead of 0.8 s).  Must be set
# before torch loads libgomp; an explicit OMP_WAIT_POLICY in the env wins.
# OMP_WAIT_POLICY=default (as `make bench` passes for the second torch run)
# removes the variable: torch's own behaviour (libgomp spins, then sleeps).
if os.environ.get("OMP_WAIT_POLICY", "").lower() == "default":
    del os.environ["OMP_WAIT_POLICY"]
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

NS_COEFFS = (3.4445, -4.7750, 2.0315)


# ---- data ------------------------------------------------------------------
def load_idx(path):
    """Parse a gzipped IDX file (big-endian header) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype != 0x08:  # 0x08: unsigned byte
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path}: size does not match header {dims}")
    return data.reshape(dims)


def load_split(directory, split):
    """Return (images float32 [N,784] in [0,1], labels int64 [N])."""
    img = load_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"))
    lab = load_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(img.reshape(len(img), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(lab.astype(np.int64))


# ---- Muon (spec section 2) --------------------------------------------------
def newton_schulz5(G, steps, dtype):
    """Quintic Newton-Schulz: approximately orthogonalise G (ndim >= 2)."""
    a, b, c = NS_COEFFS
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:  # work on the wide orientation so X X^T is the small Gram
        X = X.transpose(-2, -1)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.transpose(-2, -1)
        B = b * A + c * A @ A  # (c*A) @ A, same association as the reference
        X = a * X + B @ X
    if tall:
        X = X.transpose(-2, -1)
    return X


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz, single device."""

    def __init__(self, params, lr=0.02, momentum=0.95, weight_decay=0.0,
                 nesterov=True, ns_steps=5, ns_dtype=torch.float32):
        super().__init__(params, dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay,
            nesterov=nesterov, ns_steps=ns_steps, ns_dtype=ns_dtype))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError("Muon needs parameters with ndim >= 2")
                # A missing gradient counts as zero (momentum still moves p).
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - beta)              # M = beta M + (1-beta) G
                u = g.lerp(buf, beta) if group["nesterov"] else buf
                if u.ndim == 4:                     # conv: (out, in*kh*kw)
                    u = u.reshape(len(u), -1)
                o = newton_schulz5(u, group["ns_steps"], group["ns_dtype"])
                o = o * max(1.0, g.size(-2) / g.size(-1)) ** 0.5  # orig. shape
                p.mul_(1 - lr * group["weight_decay"])  # decoupled, first
                p.add_(o.reshape(p.shape).to(p.dtype), alpha=-lr)
        return loss


# ---- model / optimizers ----------------------------------------------------
def make_mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=True))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_optimizers(model, args):
    """Return the list of optimizers to step each batch."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if args.optim == "adamw":
        lr = 1e-3 if args.lr is None else args.lr
        wd = 0.01 if args.wd is None else args.wd
        return [torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)]
    # Hidden matrices go to Muon: every Linear weight except the output
    # layer's and (unless --muon-all-matrices) the input layer's.
    first = 0 if args.muon_all_matrices else 1
    muon_ws = [m.weight for m in linears[first:-1]]
    ids = {id(p) for p in muon_ws}
    rest = [p for p in model.parameters() if id(p) not in ids]
    print("muon:", [tuple(p.shape) for p in muon_ws],
          "adamw:", [tuple(p.shape) for p in rest], file=sys.stderr)
    lr = 3e-4 if args.lr is None else args.lr
    wd = 0.0 if args.wd is None else args.wd
    opts = [torch.optim.AdamW(rest, lr=lr, betas=(0.9, 0.95), eps=1e-10,
                              weight_decay=wd)]
    if muon_ws:  # empty with a single hidden layer and the default rule
        opts.insert(0, Muon(muon_ws, lr=args.muon_lr,
                            momentum=args.muon_momentum,
                            weight_decay=args.muon_wd, ns_steps=args.ns_steps,
                            ns_dtype=getattr(torch, args.ns_dtype)))
    return opts


# ---- training --------------------------------------------------------------
def evaluate(model, x, y):
    """Test accuracy, one no-grad forward over the whole set."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(
        description="PyTorch 1.13 Fashion-MNIST MLP baseline for optim-train.")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="directory with the Fashion-MNIST IDX .gz files")
    ap.add_argument("--optim", choices=["adamw", "muon"], default="adamw")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hidden", default="256,128",
                    help="comma-separated hidden widths (default 256,128)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads (default 2)")
    ap.add_argument("--lr", type=float, default=None,
                    help="AdamW lr (default 1e-3; 3e-4 for the AdamW part "
                         "of --optim muon)")
    ap.add_argument("--wd", type=float, default=None,
                    help="AdamW weight decay (default 0.01; 0 with muon)")
    ap.add_argument("--muon-lr", type=float, default=0.02)
    ap.add_argument("--muon-momentum", type=float, default=0.95)
    ap.add_argument("--muon-wd", type=float, default=0.0)
    ap.add_argument("--ns-steps", type=int, default=5)
    ap.add_argument("--ns-dtype", default="float32",
                    choices=["float32", "float64", "bfloat16"],
                    help="Newton-Schulz dtype (reference: bfloat16 on GPU)")
    ap.add_argument("--muon-all-matrices", action="store_true",
                    help="also give the first layer's weight to Muon")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print("torch %s threads=%d OPENBLAS_NUM_THREADS=%s OMP_WAIT_POLICY=%s"
          % (torch.__version__, torch.get_num_threads(),
             os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
             os.environ.get("OMP_WAIT_POLICY", "unset")), file=sys.stderr)
    print("\n".join(torch.__config__.parallel_info().splitlines()[:6]),
          file=sys.stderr)

    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    hidden = [int(h) for h in args.hidden.split(",") if h]
    torch.manual_seed(args.seed)
    model = make_mlp([x_train.shape[1], *hidden, 10])
    opts = make_optimizers(model, args)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    print(f"optim={args.optim} epochs={args.epochs} batch={args.batch} "
          f"sizes={[x_train.shape[1], *hidden, 10]} seed={args.seed}",
          file=sys.stderr)

    n, bs = len(x_train), args.batch
    best, times = 0.0, []
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=shuffle_gen)
        xs, ys = x_train[perm], y_train[perm]  # contiguous, shuffled copies
        model.train()
        loss_sum = torch.zeros(())
        t0 = time.perf_counter()
        for i in range(0, n, bs):  # last partial batch kept (drop_last=False)
            xb, yb = xs[i:i + bs], ys[i:i + bs]
            loss = F.cross_entropy(model(xb), yb)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in opts:
                opt.step()
            loss_sum += loss.detach() * len(yb)
        dt = time.perf_counter() - t0
        times.append(dt)
        model.eval()
        acc = evaluate(model, x_test, y_test)
        best = max(best, acc)
        print(f"epoch {epoch} train_loss {loss_sum.item() / n:.4f} "
              f"test_acc {acc:.4f} epoch_s {dt:.3f}", flush=True)
    print(f"best_test_acc {best:.4f} "
          f"mean_epoch_s {sum(times) / len(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
