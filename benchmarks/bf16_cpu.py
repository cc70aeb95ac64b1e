"""bf16 autocast vs float32 training on this CPU, for the CNN studies (``TrainConfig.amp = "bf16"``).

Two measurements in one run, each side by side:

1. speed: training steps per second of the cnn_width study's ResNet-20 (x1) at its batch of 128 CIFAR-sized
   images, float and W2A2 (its QAT method: 2-bit L2-step weights, 2-bit PACT at the QA/QRA points), float32 vs
   bf16 autocast, at 1 and 2 intra-op threads. The variants' steps are interleaved in rounds, so machine noise
   hits them alike; the median of the rounds is printed with the ratio.
2. accuracy: the same short recipe trained twice, float32 and bf16, on the cnn_width default scale's data
   (CIFAR-10 JPEG, 5,000 training / 2,000 test images): ResNet-20 x0.5 float (SGD, one-cycle, ``--float-epochs``)
   then W2A2 retraining from it (``--qat-epochs``), through ``lowbit.train.fit``, on 1 thread (as the engine's
   workers train). Test accuracy is measured in float32 for both (as the engine does).

    python benchmarks/bf16_cpu.py             # the run docs/performance.md reports
    python benchmarks/bf16_cpu.py --quick     # fewer steps, random images for the speed part only
    python benchmarks/bf16_cpu.py --only accuracy --threads 1     # one part; speed at the threads given

The data: the shared CIFAR-10 JPEG archive (``LOWBIT_DATA`` names its folder).

bf16 becomes a study default only if it is faster at equal accuracy (docs/performance.md says what was measured).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import lowbit as lb
from lowbit.config import QuantConfig
from lowbit.data.sets import load_data
from lowbit.models import MODELS
from lowbit.tasks import get_task
from lowbit.train import TrainConfig, fit

BATCH = 128  # cnn_width's batch
W2A2 = {  # cnn_width.toml, method W2A2
    "weight": {"name": "uniform", "bits": 2},
    "keep_float": ["first", "last"],
    "rules": {
        "*qa?": {"act": {"name": "pact", "bits": 2, "percentile": 99.0}},
        "*qra": {"act": {"name": "pact", "bits": 2, "percentile": 99.0}},
    },
}
DATA = {"name": "cifar10_jpeg", "subset": 5000, "test_subset": 2000}  # cnn_width's default scale


def resnet(width: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.get("resnet20")(width_mult=width, num_classes=10)


def quantized(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    lb.quantize_(model, QuantConfig.from_dict(W2A2))
    lb.calibrate(model, [x[:64]])
    return model


def speed(threads: int, rounds: int, steps: int) -> None:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(BATCH, 3, 32, 32, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    for name in ("float", "W2A2"):
        variants = {}
        for amp in ("off", "bf16"):
            m = resnet(1)
            m = quantized(m, x) if name == "W2A2" else m
            m.train()
            variants[amp] = (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9))

        def step(amp: str, variants: dict = variants) -> None:
            m, opt = variants[amp]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
                loss = F.cross_entropy(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        times: dict[str, list[float]] = {"off": [], "bf16": []}
        for amp in times:  # warm-up (oneDNN picks its kernels)
            step(amp)
        for _ in range(rounds):
            for amp in times:
                t0 = time.perf_counter()
                for _ in range(steps):
                    step(amp)
                times[amp].append(steps / (time.perf_counter() - t0))
        f32, b16 = statistics.median(times["off"]), statistics.median(times["bf16"])
        print(
            f"| ResNet-20 x1 {name:5s} | {threads} | {f32:6.2f} | {b16:6.2f} | {b16 / f32:4.2f}x |",
            flush=True,
        )


def accuracy(float_epochs: int, qat_epochs: int, threads: int) -> None:
    torch.set_num_threads(threads)
    data, task = load_data(DATA), get_task("classification")
    common = dict(batch_size=BATCH, optimizer="sgd", momentum=0.9, schedule="onecycle")
    for amp in ("off", "bf16"):
        t0 = time.perf_counter()
        m = resnet(0.5)
        cfg = TrainConfig(epochs=float_epochs, lr=0.1, weight_decay=5e-4, amp=amp, **common)
        fit(m, data.train, cfg, progress=False)
        acc_f = task.metrics(task.predict(m, data.test), data.test)["accuracy"]
        lb.quantize_(m, QuantConfig.from_dict(W2A2))
        lb.calibrate(m, task.calibration(data.train, 512))
        fit(m, data.train, TrainConfig(epochs=qat_epochs, lr=0.01, amp=amp, **common), progress=False)
        acc_q = task.metrics(task.predict(m, data.test), data.test)["accuracy"]
        wall = time.perf_counter() - t0
        print(f"| {amp:4s} | {acc_f:5.1f} | {acc_q:5.1f} | {wall:5.0f} s |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps, no accuracy run")
    p.add_argument("--float-epochs", type=int, default=8, help="float epochs of the accuracy run (40 steps each)")
    p.add_argument("--qat-epochs", type=int, default=2, help="W2A2 epochs of the accuracy run")
    p.add_argument("--only", choices=("speed", "accuracy"), default=None, help="run one part")
    p.add_argument("--threads", default="1,2", help="intra-op threads of the speed part, comma-separated")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, bf16 autocast on CPU")
    if args.only != "accuracy":
        print("\n| model | threads | float32 steps/s | bf16 steps/s | bf16 / float32 |\n|---|---|---|---|---|")
        for threads in (int(t) for t in args.threads.split(",")):
            speed(threads, rounds=2 if args.quick else 5, steps=2 if args.quick else 3)
    if args.quick or args.only == "speed":
        return
    steps = args.float_epochs * -(-DATA["subset"] // BATCH)
    print(
        f"\nResNet-20 x0.5, {DATA['subset']} CIFAR-10 images: {args.float_epochs} float epochs ({steps} steps), then "
        f"{args.qat_epochs} W2A2 epochs; test accuracy (%) on {DATA['test_subset']} images, 1 thread"
    )
    print("\n| amp | float | W2A2 | wall |\n|---|---|---|---|")
    accuracy(args.float_epochs, args.qat_epochs, threads=1)  # 1 thread: the engine's workers train on one each


if __name__ == "__main__":
    main()
