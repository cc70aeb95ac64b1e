"""bf16 autocast for the spirals study's stacked MLPs on this CPU, measured side by side in one run.

Three 128-4 FCDNNs of the spirals study trained as one (``lowbit.train.stacked``: every Linear one batched matmul),
batch 1024 per net, Adam: steps per second of forward + backward + optimizer step in float32 and under
``torch.autocast("cpu", torch.bfloat16)`` (what ``amp = "bf16"`` does; the loss in float32), interleaved, median of
5 runs of 60 steps each, one thread. `python benchmarks/bf16_mlp.py`.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from lowbit.models import create_model
from lowbit.train.stacked import _shell

STEPS, REPEATS, SEEDS, BATCH = 60, 5, 3, 1024


def main() -> None:
    torch.set_num_threads(1)
    models = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        models.append(create_model("fcdnn", width=128, depth=4, in_features=2, num_classes=2))
    net = _shell(models)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(SEEDS * BATCH, 2, generator=g) * 5, torch.randint(0, 2, (SEEDS * BATCH,), generator=g)
    opt = torch.optim.Adam([p for m in models for p in m.parameters()], 1e-3)

    def run(amp: bool, steps: int = STEPS) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                out = net(x)
            loss = nn.functional.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    run(False, 5), run(True, 5)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(REPEATS):
        for amp in (False, True):
            times[amp].append(run(amp))
    f32, bf16 = (statistics.median(times[a]) for a in (False, True))
    print(f"{SEEDS} stacked fcdnn 128-4, batch {BATCH} each, 1 thread, median of {REPEATS} x {STEPS} steps")
    print("| precision | steps/s |\n|---|---|")
    print(f"| float32 | {STEPS / f32:.0f} |\n| bf16 autocast | {STEPS / bf16:.0f} |")
    print(f"bf16 / float32: {f32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
