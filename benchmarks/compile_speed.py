"""Training-step time eager vs ``torch.compile``: torchvision resnet18 at W2A2 (and in float, for context).

W2A2 is lowbit's uniform 2-bit weights + PACT 2-bit activations, first and last layer float. One step =
zero_grad + forward + cross-entropy + backward + SGD step; "compiled" is ``torch.compile(model)`` (the forward
as one graph, its backward compiled by AOTAutograd; the SGD step stays eager in both). The four variants
(float / W2A2 x eager / compiled) start from the same weights and are timed interleaved, one step each in turn,
so that drift in machine load hits all alike. It prints the first call (the compile) of each compiled variant,
then mean ± std and median step times, the compiled speed-up of each model and the W2A2 overhead over float, in
wall-clock time and in this process's CPU time (``time.process_time``: on a machine shared with other jobs the
wall clock mostly measures the others; with one thread, CPU time is the step's own work).

    .venv/bin/python benchmarks/compile_speed.py            # HP["repeats"] steps per variant
    .venv/bin/python benchmarks/compile_speed.py --quick    # HP["quick_repeats"]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers import get

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.zoo import import_torchvision  # noqa: E402  (torchvision with the CPU-torch op-schema shim)

HP = {  # hyper-parameters
    "threads": 1,  # torch intra-op threads (1: the process CPU time is the step's work, see above)
    "batch": 8,
    "image": 32,  # CIFAR-sized inputs
    "classes": 10,
    "weight_bits": 2,
    "act_bits": 2,
    "backend": "inductor",  # torch.compile backend
    "warmup_steps": 3,  # after the compiling first call
    "repeats": 20,
    "quick_repeats": 5,
    "lr": 0.01,
}


def build(quantized: bool) -> nn.Module:
    torch.manual_seed(0)
    model = import_torchvision().models.resnet18(num_classes=HP["classes"])
    if quantized:
        cfg = lb.QuantConfig(
            weight=get("uniform", bits=HP["weight_bits"]),
            act=get("pact", bits=HP["act_bits"]),
            keep_float=("first", "last"),
        )
        lb.quantize_(model, cfg)
    return model


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(HP["batch"], 3, HP["image"], HP["image"], generator=g)
    return x, torch.randint(0, HP["classes"], (HP["batch"],), generator=g)


def trainer(model: nn.Module, compiled: bool):
    """A step function for ``model`` (compiled or eager) with its own SGD optimizer."""
    opt = torch.optim.SGD(model.parameters(), lr=HP["lr"], momentum=0.9)
    forward = torch.compile(model, backend=HP["backend"]) if compiled else model
    x, y = batch(1)

    def step() -> tuple[float, float]:
        """(wall, CPU) seconds of one training step."""
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()
        return time.perf_counter() - t0, time.process_time() - c0

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    args = p.parse_args()
    torch.set_num_threads(HP["threads"])
    repeats = HP["quick_repeats"] if args.quick else HP["repeats"]
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, backend={HP['backend']}, "
        f"batch {HP['batch']}x3x{HP['image']}x{HP['image']}, repeats={repeats}"
    )
    steps = {}
    for name in ("float", "w2a2"):
        model = build(name == "w2a2")
        if name == "w2a2":
            lb.calibrate(model, [batch(0)[0]])  # α and Δ from data, before training (as lowbit.train.fit does)
        model.train()
        for compiled in (False, True):
            variant = f"{name} {'compiled' if compiled else 'eager'}"
            # its own copy of the (calibrated) model: eager and compiled variants train apart from the same start
            steps[variant] = trainer(copy.deepcopy(model), compiled)
            first = steps[variant]()[0]
            print(f"{variant:16s} first step {first:8.2f} s" + ("  (compiles)" if compiled else ""))
    for s in steps.values():
        for _ in range(HP["warmup_steps"]):
            s()
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in steps}
    for _ in range(repeats):
        for k, s in steps.items():  # interleaved
            wall, cpu = s()
            times[k]["wall"].append(wall * 1e3)
            times[k]["cpu"].append(cpu * 1e3)
    for clock in ("wall", "cpu"):
        print(f"\n{clock} time per step: {'mean ± std (ms)':>20s} {'median (ms)':>12s}")
        for k, v in times.items():
            t = v[clock]
            print(f"  {k:16s} {statistics.mean(t):16.1f} ± {statistics.stdev(t):6.1f} {statistics.median(t):12.1f}")
        med = {k: statistics.median(v[clock]) for k, v in times.items()}
        for name in ("float", "w2a2"):
            print(
                f"  {name} eager / compiled (speed-up, medians): {med[f'{name} eager'] / med[f'{name} compiled']:.2f}x"
            )
        for mode in ("eager", "compiled"):
            print(f"  w2a2 / float, {mode} (QAT overhead, medians): {med[f'w2a2 {mode}'] / med[f'float {mode}']:.2f}x")


if __name__ == "__main__":
    main()
