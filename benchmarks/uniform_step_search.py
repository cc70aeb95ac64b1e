"""The uniform quantizer's L2-optimal step search (spec §2.2): the spec's loop vs lowbit's sorted/vectorised solver.

    .venv/bin/python benchmarks/uniform_step_search.py

Model: the small CNN of issue 9 (conv32-conv32-pool-conv64-conv64-pool-FC256-FC10 with BN, 28x28x1 input),
weights 2-bit ``uniform`` with the first and last layer at 8 bits, activations PACT 2-bit. The float weights are
trained first (Adam, lr 1e-3, batch 128, ``--float-epochs`` passes over a 6,000-image Fashion-MNIST subset; the
initial weights if the data set is absent): trained weights have heavier tails than the init, and the loop needs
more iterations on them. Printed side by side in one run (1 torch thread):
  1. per layer: the spec's per-start loop (``reference_l2_opt_step``, what lowbit ran before) vs
     ``lowbit.quantizers.l2_step.l2_opt_step``, with the relative difference of the two Δ;
  2. the first forward pass of the quantized CNN (it calibrates every weight's Δ), with the loop patched in
     ("before") and with the shipped solver ("after");
  3. an activation calibration: unsigned 2-bit Δ of the first conv's ReLU output over a ``--act-batch`` batch;
  4. the first forward pass again with 2-bit unsigned ``uniform`` activations as well (each layer's input Δ is
     searched on the batch; batch ``--act-batch``), before and after.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import lowbit as lb
import lowbit.quantizers.uniform as uniform_mod
from lowbit.quantizers.l2_step import l2_opt_step

torch.set_num_threads(1)


def reference_l2_opt_step(
    x: torch.Tensor, bits: int, signed: bool = True, n_starts: int = 20, iters: int = 100, tol: float = 1e-9
) -> float:
    """Spec §2.2 as written: for each start, alternate z = clamp(floor(w/Δ + 0.5)) and Δ = Σwz/Σz² over all w."""
    w = x.detach().reshape(-1).to(torch.float64)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    a = float(w.abs().max()) if signed else float(w.clamp_min(0).max()) if w.numel() else 0.0
    if a == 0.0:
        return 1.0
    if hi == 0:
        return float(w.abs().mean())
    best_err, best_step = math.inf, a / hi
    for c in torch.linspace(0.05, 1.0, n_starts).tolist():
        step = c * a / hi
        for _ in range(iters):
            z = torch.clamp(torch.floor(w / step + 0.5), lo, hi)
            zz = float((z * z).sum())
            if zz == 0.0:
                step /= 2
                continue
            new = float((w * z).sum()) / zz
            if new <= 0.0:
                break
            converged = abs(new - step) <= tol * step
            step = new
            if converged:
                break
        err = float(((w - step * torch.clamp(torch.floor(w / step + 0.5), lo, hi)) ** 2).sum())
        if err < best_err:
            best_err, best_step = err, step
    return best_step


def cnn() -> nn.Module:
    torch.manual_seed(0)

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 10),
    )  # fmt: skip


def train_float(model: nn.Module, epochs: int) -> str:
    """A short float training on 6,000 Fashion-MNIST images, so that the weights look trained."""
    if epochs <= 0:
        return "initial weights (--float-epochs 0)"
    try:
        from lowbit.data.idx import load_fashion_mnist

        data = load_fashion_mnist("train")
    except FileNotFoundError as e:
        return f"initial weights ({e})"
    x = data.images[:6000].float().div(255).sub(0.2860).div(0.3530)
    y = data.labels[:6000]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(6000, generator=g).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return f"trained {epochs} float epoch(s) on 6,000 Fashion-MNIST images"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def quantized(parent: nn.Module, act: str) -> nn.Module:
    import copy

    get = lb.quantizers.get
    a = get("pact", bits=2) if act == "pact" else get("uniform", bits=2, signed=False)
    w8 = lb.LayerRule(weight=get("uniform", bits=8), act=a)
    cfg = lb.QuantConfig(weight=get("uniform", bits=2), act=a, rules={"first": w8, "last": w8})
    return lb.quantize_(copy.deepcopy(parent), cfg)


def first_forward(parent: nn.Module, x: torch.Tensor, act: str = "pact") -> tuple[float, float]:
    """(before, after) seconds of the first forward pass: the spec loop patched in, then the shipped solver."""
    shipped = uniform_mod.l2_opt_step
    uniform_mod.l2_opt_step = reference_l2_opt_step
    try:
        model = quantized(parent, act)
        _, before = timed(lambda: model(x))
    finally:
        uniform_mod.l2_opt_step = shipped
    model = quantized(parent, act)
    _, after = timed(lambda: model(x))
    return before, after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--float-epochs", type=int, default=1, help="float training before the search (0: init weights)")
    ap.add_argument("--act-batch", type=int, default=32, help="batch of sections 3 and 4 (0: skip them)")
    args = ap.parse_args()
    parent = cnn()
    print("weights:", train_float(parent, args.float_epochs))
    layers = [m for m in parent.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    print("1. per layer: spec loop vs sorted/vectorised solver (1 thread)")
    print(f"{'layer':<28} {'bits':>4} {'params':>8} {'loop s':>8} {'fast s':>8} {'rel. diff Δ':>12}")
    tot_loop = tot_fast = 0.0
    for i, m in enumerate(layers):
        bits = 8 if i in (0, len(layers) - 1) else 2
        w = m.weight.detach()
        d_loop, t_loop = timed(lambda w=w, bits=bits: reference_l2_opt_step(w, bits))
        d_fast, t_fast = timed(lambda w=w, bits=bits: l2_opt_step(w, bits))
        tot_loop, tot_fast = tot_loop + t_loop, tot_fast + t_fast
        rel = abs(d_loop - d_fast) / d_loop
        print(f"{str(tuple(w.shape)):<28} {bits:>4} {w.numel():>8} {t_loop:>8.3f} {t_fast:>8.3f} {rel:>12.2e}")
    print(f"{'total':<28} {'':>4} {'':>8} {tot_loop:>8.3f} {tot_fast:>8.3f}   speed-up {tot_loop / tot_fast:.0f}x")

    x = torch.randn(128, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    before, after = first_forward(parent, x)
    print("\n2. first forward pass of the quantized CNN (batch 128; calibrates every weight's Δ)")
    print(f"   before (spec loop): {before:.3f} s   after (shipped): {after:.3f} s   speed-up {before / after:.0f}x")

    if args.act_batch <= 0:
        return
    with torch.no_grad():
        act = torch.relu(layers[0](x[: args.act_batch]))
    d_loop, t_loop = timed(lambda: reference_l2_opt_step(act, 2, signed=False))
    d_fast, t_fast = timed(lambda: l2_opt_step(act, 2, signed=False))
    print(f"\n3. activation Δ, unsigned 2-bit, {act.numel()} values (first conv's ReLU output, batch {len(act)})")
    print(
        f"   loop {t_loop:.3f} s   fast {t_fast:.3f} s   speed-up {t_loop / t_fast:.0f}x   "
        f"rel. diff Δ {abs(d_loop - d_fast) / d_loop:.2e}"
    )
    before, after = first_forward(parent, x[: args.act_batch], act="uniform")
    print(f"\n4. first forward pass with 2-bit uniform weights AND activations (batch {args.act_batch})")
    print(f"   before (spec loop): {before:.3f} s   after: {after:.3f} s   speed-up {before / after:.0f}x")


if __name__ == "__main__":
    main()
