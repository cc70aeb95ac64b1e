"""Training-step time of the quantized recurrent twins against float nn.LSTM / nn.GRU, side by side.

One step = forward + backward + Adam step on out.mean() of a 1-layer unidirectional layer. Variants, interleaved
in one process (round-robin, so drift in machine load hits all of them alike), median over repeats:

    float        the torch module
    w4 fused     4-bit uniform weights, float activations: weights quantized once per forward + torch's fused op
    w4 loop      the same, forced through the Python time loop (the reference path)
    w4a8 loop    4-bit weights + 8-bit signed uniform activations (x_t and h_{t-1}): the Python time loop

    .venv/bin/python benchmarks/recurrent_speed.py            # 30 repeats x 5 steps
    .venv/bin/python benchmarks/recurrent_speed.py --quick    # 5 repeats x 2 steps
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers import get

SETUP = {"input_size": 40, "hidden_size": 128, "seq_len": 50, "batch": 32, "weight_bits": 4, "act_bits": 8}


def make(kind: type[nn.Module], variant: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    layer = kind(SETUP["input_size"], SETUP["hidden_size"])
    model = nn.Sequential(layer)
    if variant != "float":
        act = get("uniform", bits=SETUP["act_bits"], signed=True) if "a8" in variant else None
        model = lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=SETUP["weight_bits"]), act=act))
        model[0].force_loop = "loop" in variant
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    out, _ = model[0](x)
    out.mean().backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 repeats x 2 steps instead of 30 x 5")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the test machine is shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats, steps = (5, 2) if args.quick else (30, 5)
    x = torch.randn(SETUP["seq_len"], SETUP["batch"], SETUP["input_size"], generator=torch.Generator().manual_seed(1))
    variants = ["float", "w4 fused", "w4 loop", "w4a8 loop"]
    print(f"setup: {SETUP}, threads={args.threads}, repeats={repeats} x {steps} steps, torch {torch.__version__}")
    print(f"| layer | {' | '.join(variants)} | w4 fused / float | w4a8 loop / float |")
    print("|---|" + "---|" * (len(variants) + 2))
    for kind in (nn.LSTM, nn.GRU):
        runs = {v: make(kind, v) for v in variants}
        for v in variants:  # warm-up (and calibration of the quantizers' steps)
            step(*runs[v], x)
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(repeats):
            for v in variants:
                t0 = time.perf_counter()
                for _ in range(steps):
                    step(*runs[v], x)
                times[v].append((time.perf_counter() - t0) / steps * 1e3)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        cells = " | ".join(f"{med[v]:.2f} ms" for v in variants)
        ratio_w = med["w4 fused"] / med["float"]
        ratio_a = med["w4a8 loop"] / med["float"]
        print(f"| {kind.__name__} | {cells} | {ratio_w:.2f}x | {ratio_a:.2f}x |")


if __name__ == "__main__":
    main()
