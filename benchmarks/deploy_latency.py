"""Deployed models that run faster: ONNX Runtime latency, file size and accuracy, side by side in one run.

    .venv/bin/python benchmarks/deploy_latency.py                 # all models, 1 and 2 threads, batch 1 and 32
    .venv/bin/python benchmarks/deploy_latency.py --quick         # smaller training subsets (a smoke run)

For each model (the README's benchmark CNN, VGG-small, ResNet-20; Fashion-MNIST 28x28 inputs) it trains a float
model briefly, QAT-fine-tunes it (W8A8: per-channel uniform weights, PACT activations, input included), and
exports:
    float        the float model (BN folded by the writer; ORT fuses the rest itself)
    lowbit int8  ``export_onnx`` default form with ``calib``: QLinearConv/QGemm/QLinearAdd from the QAT codes and
                 learned scales; the residual branches the model keeps in float get grids from ``calib`` (faster)
    lowbit int8 exact  ResNets only: the same model without ``calib``: exactly the fake-quantized model (each
                 block's second conv and its add run in float, as the model computes them)
    ORT static   ``onnxruntime.quantization.quantize_static`` on the float ONNX (QDQ, per-channel int8 weights,
                 uint8 activations, MinMax calibration on training images): the anchor
    lowbit W4    a W4A8 QAT model: convs on the same 8-bit kernels (codes unchanged), Linear layers with 4-bit
                 codes through MatMulNBits (weight-only)
    lowbit W4 foldBN  the same, trained with BatchNorm folded into the conv weights (QuantConfig(fold_bn=True))
    lowbit int8 tied  ResNets only: lowbit int8 with each basic block's QRA point sharing the QA1 point's quantizer
                 (both read the block input: one learned α, one grid, as ORT's one scale per tensor), so each
                 block sum is written once (9 QLinearAdd on ResNet-20; untied QA/QRA points have two grids and
                 need a second QLinearAdd per block: reading one grid's codes for the other is not exact)
Columns: median latency (ms) per batch size and thread count, speed-up against float, file size, top-1 on the
test subset, and for lowbit rows the fake-quantized PyTorch model's top-1 and the max logit difference.
The kernels that ran (ORT profiler) are printed once per export.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

import lowbit as lb
from lowbit.data.idx import load_fashion_mnist
from lowbit.deploy import freeze
from lowbit.deploy.onnx_export import export_onnx
from lowbit.deploy.onnx_graph import session
from lowbit.models import create_model, model_names

torch.set_num_threads(1)
CFG = {"train": 1500, "test": 2000, "epochs_float": 2, "epochs_qat": 1, "batch": 64, "lr": 1e-3, "repeats": 20}
QUICK = {"train": 500, "test": 500, "epochs_float": 1, "epochs_qat": 1, "repeats": 5}


class BenchCNN(nn.Module):
    """The README's benchmark CNN: 4 convs 64/64/128/128 (BN + ReLU, a max-pool after each pair), FC 256."""

    def __init__(self, in_channels: int = 1, size: int = 28, classes: int = 10):
        super().__init__()
        c = [in_channels, 64, 64, 128, 128]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(c[i], c[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(c[i + 1]), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
        s = size // 4
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * s * s, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "cnn":
        return BenchCNN()
    if name == "vgg_small":
        return create_model("vgg_small8", in_channels=1, input_size=28, width=0.5, fc_hidden=256, dropout=0.0)
    if name == "resnet20":
        if "resnet20" not in model_names():
            raise SystemExit("lowbit.models has no resnet20")
        return create_model("resnet20", in_channels=1)
    raise ValueError(name)


def qconfig(model: nn.Module, wbits: int, fold_bn: bool = False) -> lb.QuantConfig:
    """W{wbits}A8: per-channel uniform weights, PACT 8-bit inputs on every layer (the model input included)."""
    w = {"name": "uniform", "bits": wbits, "granularity": "per_channel"}
    a = {"name": "pact", "bits": 8}
    if any(type(m).__name__ == "ActPoint" for m in model.modules()):  # ResNets: activations at the QA/QRA points
        from lowbit.models.blocks import point_rules

        rules = point_rules(model, a)
        rules.update({"stem.0": {"weight": w, "act": a}, "fc": {"weight": w, "act": a}})
        return lb.QuantConfig(weight=w, act=None, rules=rules, fold_bn=fold_bn)
    return lb.QuantConfig(weight=w, act=a, quantize_input=True, fold_bn=fold_bn)


def tie_points(model: nn.Module) -> int:
    """Let each basic block's QRA point use its QA1 point's quantizer (the same module: one α, trained by both
    uses). Only where both read the same tensor (post-activation basic blocks); returns how many were tied."""
    from lowbit.models.blocks import BasicBlock

    n = 0
    for b in model.modules():
        if isinstance(b, BasicBlock) and getattr(b.qa1, "act_quant", None) is not None:
            b.qra.act_quant = b.qa1.act_quant
            n += 1
    return n


def data(cfg: dict):
    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    g = torch.Generator().manual_seed(0)
    i = torch.randperm(len(tr), generator=g)[: cfg["train"]]
    j = torch.randperm(len(te), generator=g)[: cfg["test"]]
    return (tr.images[i].float() / 255, tr.labels[i]), (te.images[j].float() / 255, te.labels[j])


def train(model: nn.Module, xy, epochs: int, cfg: dict) -> None:
    x, y = xy
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(cfg["batch"]):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            qs = [q for q in model.modules() if isinstance(q, lb.quantizers.Quantizer)]
            regs = [r for q in qs if (r := q.regularizer()) is not None]
            opt.zero_grad()
            (loss + sum(regs)).backward()
            opt.step()
    model.eval()


@torch.no_grad()
def reestimate_bn(model: nn.Module, x: torch.Tensor, batches: int = 20) -> None:
    """BatchNorm running statistics as the cumulative average over ``batches`` training batches of the final
    weights (a short training run leaves them averaged over early, very different weights)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for b in x[: batches * 64].split(64):
        model(b)
    for m in bns:
        m.momentum = 0.1
    model.eval()


@torch.no_grad()
def logits_torch(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return torch.cat([model(b) for b in x.split(256)]).numpy()


def logits_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    s = session(path, 1)
    return np.concatenate([s.run(None, {"input": b.numpy()})[0] for b in x.split(256)])


def latencies(paths: dict[str, Path], x: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """Median ms per run for each file; runs interleaved round-robin so that load from other processes on
    this shared CPU falls on every export alike."""
    sess = {k: session(p, threads, spin=False) for k, p in paths.items()}  # shared CPU: no busy-waiting
    for s in sess.values():
        for _ in range(3):
            s.run(None, {"input": x})
    t: dict[str, list[float]] = {k: [] for k in sess}
    for _ in range(repeats):
        for k, s in sess.items():
            a = time.perf_counter()
            s.run(None, {"input": x})
            t[k].append(time.perf_counter() - a)
    return {k: float(np.median(v)) * 1e3 for k, v in t.items()}


def kernels(path: Path, x: np.ndarray) -> str:
    tmp = tempfile.mkdtemp()
    s = session(path, 1, os.path.join(tmp, "p"))
    s.run(None, {"input": x})
    ev = json.loads(Path(s.end_profiling()).read_text())
    c = Counter(e["args"]["op_name"] for e in ev if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"))
    return " ".join(f"{k}x{v}" for k, v in sorted(c.items()))


def ort_static(float_path: Path, out: Path, calib: torch.Tensor) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": b.numpy()} for b in calib.split(32)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(float_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    return out


def run_model(name: str, cfg: dict, xy_train, xy_test, tmp: Path, batches, threads) -> list[dict]:
    xtr, _ = xy_train
    xte, yte = xy_test
    fm = build(name)
    train(fm, xy_train, cfg["epochs_float"], cfg)
    reestimate_bn(fm, xtr)
    rows: list[dict] = []
    calib = xtr[:256]
    paths = {"float": export_onnx(fm, tmp / f"{name}_float.onnx", xte[:1], form="float")}
    paths["ORT static"] = ort_static(paths["float"], tmp / f"{name}_ort.onnx", calib)
    sims = {}
    variants = [("lowbit int8", 8, (), False, False), ("lowbit int8 tied", 8, (), False, True),
                ("lowbit W4", 4, (4,), False, False), ("lowbit W4 foldBN", 4, (4,), True, False)]  # fmt: skip
    for label, wbits, nbits, fold, tie in variants:
        qm = build(name)
        qm.load_state_dict(fm.state_dict())
        lb.quantize_(qm, qconfig(qm, wbits, fold))
        if tie and not tie_points(qm):
            continue  # no basic blocks: the same model as "lowbit int8"
        lb.calibrate(qm, [calib])
        train(qm, xy_train, cfg["epochs_qat"], cfg)
        freeze(qm)
        sims[label] = logits_torch(qm, xte)
        paths[label] = export_onnx(qm, tmp / f"{name}_{label.replace(' ', '_')}.onnx", xte[:1], calib=calib,
                                   nbits=nbits)  # fmt: skip
        if label == "lowbit int8" and any(type(m).__name__ == "ActPoint" for m in build(name).modules()):
            # without calib: exactly the fake-quantized model (residual branches the model keeps in float stay float)
            sims["lowbit int8 exact"] = sims[label]
            paths["lowbit int8 exact"] = export_onnx(qm, tmp / f"{name}_exact.onnx", xte[:1])
    sims["float"] = logits_torch(fm, xte)
    for label, p in paths.items():
        yo = logits_onnx(p, xte)
        acc = float((yo.argmax(1) == yte.numpy()).mean())
        row = {"model": name, "export": label, "bytes": p.stat().st_size, "acc": acc}
        if label in sims:
            ys = sims[label]
            row["sim_acc"] = float((ys.argmax(1) == yte.numpy()).mean())
            row["max_dlogit"] = float(np.abs(yo - ys).max())
            row["logit_range"] = float(np.abs(ys).max())
        row["kernels"] = kernels(p, xte[:2].numpy())
        rows.append(row)
    for bs in batches:
        for th in threads:
            ms = latencies(paths, xte[:bs].numpy(), th, cfg["repeats"])
            for row in rows:
                row[f"b{bs}t{th}"] = ms[row["export"]]
    return rows


def table(rows: list[dict], batches, threads) -> str:
    cols = [(bs, th) for bs in batches for th in threads]
    head = "| model | export | " + " | ".join(f"b{bs} {th}T ms (x)" for bs, th in cols)
    head += " | file KB | top-1 ONNX | top-1 PyTorch | max dlogit |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        f = next(x for x in rows if x["model"] == r["model"] and x["export"] == "float")
        cells = " | ".join(f"{r[f'b{bs}t{th}']:.2f} ({f[f'b{bs}t{th}'] / r[f'b{bs}t{th}']:.2f}x)" for bs, th in cols)
        sim = f"{100 * r['sim_acc']:.2f}" if "sim_acc" in r else "-"
        dl = f"{r['max_dlogit']:.3f}" if "max_dlogit" in r else "-"
        acc = f"{100 * r['acc']:.2f}"
        lines.append(f"| {r['model']} | {r['export']} | {cells} | {r['bytes'] / 1024:.0f} | {acc} | {sim} | {dl} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn,vgg_small,resnet20")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--quick", action="store_true", help="small training subsets (smoke run)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    cfg = {**CFG, **(QUICK if a.quick else {})}
    threads = [int(t) for t in a.threads.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    tmp = Path(tempfile.mkdtemp())
    xy_train, xy_test = data(cfg)
    print(f"ONNX Runtime {ort.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs; Fashion-MNIST: "
          f"{cfg['train']} train / {cfg['test']} test images; median of {cfg['repeats']}", flush=True)  # fmt: skip
    rows = []
    for name in a.models.split(","):
        t = time.time()
        r = run_model(name, cfg, xy_train, xy_test, tmp, batches, threads)
        rows += r
        print(f"\n{name} ({time.time() - t:.0f} s)")
        for x in r:
            print(f"  {x['export']:<17} kernels: {x['kernels']}")
        print(table(r, batches, threads), flush=True)
    print("\nAll models:\n" + table(rows, batches, threads))
    if a.json:
        from lowbit.fileio import atomic_write_text

        atomic_write_text(a.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
