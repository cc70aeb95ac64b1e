"""ONNX Runtime latency (CPU, 1 thread) of an 8-bit weight+activation model vs its float export, side by side.

    .venv/bin/python benchmarks/onnx_latency.py

Three exports of the same small CNN: float, 8-bit QDQ (ORT fuses what it can), 8-bit integer
(MatMulInteger/ConvInteger). Median over repeats; the kernels that ran come from ORT profiling.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

import lowbit as lb
from lowbit.deploy import freeze
from lowbit.deploy.onnx_export import export_onnx, run_onnx

torch.set_num_threads(1)
CFG = {"batch": 32, "repeats": 50, "warmup": 5}


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 16 * 16, 10),
    )  # fmt: skip


def latency(path: Path, x: np.ndarray) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(CFG["warmup"]):
        s.run(None, {"input": x})
    times = []
    for _ in range(CFG["repeats"]):
        t = time.perf_counter()
        s.run(None, {"input": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    x = torch.randn(CFG["batch"], 3, 16, 16)
    f = model().eval()
    q = lb.quantize_(model(), lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=8),
                                              act=lb.quantizers.get("pact", bits=8, alpha=4.0))).eval()  # fmt: skip
    freeze(q)
    with torch.no_grad():
        yq = q(x).numpy()
    paths = {
        "float32": export_onnx(f, tmp / "f.onnx", x),
        "int8 QDQ": export_onnx(q, tmp / "qdq.onnx", x),
        "int8 integer": export_onnx(q, tmp / "int.onnx", x, integer=True),
    }
    base = None
    print(f"batch {CFG['batch']}, median of {CFG['repeats']}, ONNX Runtime {ort.__version__}, 1 thread")
    print(f"{'export':<14}{'ms':>9}{'vs float':>10}{'file B':>10}{'max |dy|':>11}  kernels")
    for name, p in paths.items():
        ms = latency(p, x.numpy())
        base = base or ms
        y, ops = run_onnx(p, x.numpy(), profile=True)
        err = float(np.abs(y - yq).max()) if name != "float32" else float("nan")
        print(f"{name:<14}{ms:>9.3f}{ms / base:>10.2f}{p.stat().st_size:>10}{err:>11.2e}  {','.join(ops)}")


if __name__ == "__main__":
    main()
