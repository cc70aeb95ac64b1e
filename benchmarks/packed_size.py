"""Packed .lowbit size / float32 size per weight bit width 1..8, against the 32/b limit.

    .venv/bin/python benchmarks/packed_size.py

Every Linear/Conv layer's weight is quantized (1 bit: binary; 2..8 bits: uniform), biases/BN/scales stay
float32, so the ratio sits above b/32 by the float tensors and the JSON metadata block, which are reported too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

import lowbit as lb
from lowbit.deploy import save_packed
from lowbit.models import create_model, model_names

torch.set_num_threads(1)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )  # fmt: skip


MODELS = {"fcdnn 256-3": lambda: create_model("fcdnn", width=256, depth=3), "small CNN": small_cnn}
if "vgg16" in model_names():  # VGG-16 at 1/4 width for CIFAR-size input (935K parameters)
    MODELS["vgg16 x0.25"] = lambda: create_model("vgg16", width=0.25, input_size=32, fc_hidden=256)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print(
        f"{'model':<18}{'bits':>5}{'float B':>12}{'packed B':>12}{'meta B':>9}{'ratio':>9}{'b/32':>8}{'x smaller':>11}"
    )
    for name, build in MODELS.items():
        for bits in range(1, 9):
            torch.manual_seed(0)
            m = build().eval()
            float_bytes = sum(t.numel() * t.element_size() for t in m.state_dict().values())
            wq = lb.quantizers.get("binary" if bits == 1 else "uniform", bits=bits)
            lb.quantize_(m, lb.QuantConfig(weight=wq))
            p = save_packed(m, tmp / "m.lowbit")
            meta = int.from_bytes(p.read_bytes()[12:20], "little")
            size = p.stat().st_size
            print(f"{name:<18}{bits:>5}{float_bytes:>12}{size:>12}{meta:>9}{size / float_bytes:>9.4f}"
                  f"{bits / 32:>8.4f}{float_bytes / size:>11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
