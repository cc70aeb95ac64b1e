"""QAT out of the box: lowbit's defaults vs Brevitas' defaults at W8A8, W4A4 and W2A2 (issue 9 items 9-12).

The recipe of issue 9, identical for every variant: Fashion-MNIST (lowbit's idx loader; Debian's
``dataset-fashion-mnist`` or ``LOWBIT_DATA``), a 6,000-image stratified training subset (seed 0) and the full
10,000-image test set, normalised with the subset's mean/std (so the model input is signed); a CNN
conv32-conv32-pool-conv64-conv64-pool-FC256-FC10 with BatchNorm; 3 float epochs, then 2 QAT epochs from that
same float parent; the first and the last layer at 8 bits (the last layer's input activations too), the model
input float; seed 0. Every variant trains with the same loop (``lowbit.train.fit``: Adam, cosine schedule).

Variants (W = weight bits, A = activation bits of the hidden layers):
    lowbit        uniform weights (L2-optimal step) + PACT activations, calibrated by ``fit`` (the defaults)
    lowbit-lsq    LSQ weights and activations (paper init, calibrated by ``fit``)
    brevitas      QuantConv2d/QuantLinear(weight_bit_width=W) + QuantReLU(bit_width=A), Brevitas' default
                  quantizers (per-tensor float scales; activations from runtime percentile statistics)
    lowbit-before as ``lowbit`` with the behaviour before issue 9: PACT α = 10 and no calibration (W2A2 only)

    OMP_NUM_THREADS=1 python benchmarks/w2a2_vs_brevitas.py              # the full table (CPU minutes)
    python benchmarks/w2a2_vs_brevitas.py --bits 2 --variants lowbit brevitas --json out.json
Needs Brevitas (``pip install -e '.[bench]'``) for the brevitas rows; without it they are skipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import torch
from torch import nn

import lowbit as lb
from lowbit.data.idx import load_fashion_mnist
from lowbit.data.transforms import channel_stats, subset, to_tensor_dataset
from lowbit.fileio import atomic_write_text
from lowbit.quantizers.pact import PACTQuantizer
from lowbit.train import TrainConfig, fit

HP = {
    "train_subset": 6000,  # images, stratified, seed 0
    "seed": 0,
    "batch_size": 128,
    "float_epochs": 3,
    "float_lr": 1e-3,
    "qat_epochs": 2,
    "qat_lr": 5e-4,
    "edge_bits": 8,  # first and last layer (weights; the last layer's input activations too)
    "eval_batch": 1000,
    "pact_percentile": None,  # None: PACT's default calibration percentile
}
VARIANTS = ("lowbit", "lowbit-lsq", "brevitas", "lowbit-before")


# ------------------------------------------------------------------------------------------- models
def cnn(conv=nn.Conv2d, linear=nn.Linear, relu=lambda i: nn.ReLU()) -> nn.Sequential:
    """conv32-conv32-pool-conv64-conv64-pool-FC256-FC10 with BN; ``relu(i)`` builds the i-th activation."""

    def block(i, o, k):
        return [conv(i, o), nn.BatchNorm2d(o), relu(k)]

    return nn.Sequential(
        *block(1, 32, 0),
        *block(32, 32, 1),
        nn.MaxPool2d(2),
        *block(32, 64, 2),
        *block(64, 64, 3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        linear(64 * 7 * 7, 256),
        relu(4),
        linear(256, 10),
    )


def float_cnn() -> nn.Sequential:
    return cnn(conv=lambda i, o: nn.Conv2d(i, o, 3, padding=1, bias=False))


def lowbit_config(variant: str, bits: int) -> lb.QuantConfig:
    e = HP["edge_bits"]
    if variant == "lowbit-lsq":

        def w(b):
            return lb.quantizers.get("lsq", bits=b, signed=True)

        def a(b):
            return lb.quantizers.get("lsq", bits=b, signed=False)
    elif variant in ("lowbit", "lowbit-before"):
        pact_kwargs = {} if HP["pact_percentile"] is None else {"percentile": HP["pact_percentile"]}

        def w(b):
            return lb.quantizers.get("uniform", bits=b)

        def a(b):
            return (
                lb.quantizers.get("pact", bits=b, alpha=10.0)
                if variant == "lowbit-before"
                else lb.quantizers.get("pact", bits=b, **pact_kwargs)
            )
    else:
        raise ValueError(f"unknown lowbit variant {variant!r}")
    return lb.QuantConfig(
        weight=w(bits),
        act=a(bits),
        rules={"first": lb.LayerRule(weight=w(e)), "last": lb.LayerRule(weight=w(e), act=a(e))},
    )


def brevitas_cnn(bits: int) -> nn.Sequential:
    import brevitas.nn as qnn

    e = HP["edge_bits"]
    convs = iter([e, bits, bits, bits])
    lins = iter([bits, e])
    return cnn(
        conv=lambda i, o: qnn.QuantConv2d(i, o, 3, padding=1, bias=False, weight_bit_width=next(convs)),
        linear=lambda i, o: qnn.QuantLinear(i, o, bias=True, weight_bit_width=next(lins)),
        relu=lambda k: qnn.QuantReLU(bit_width=e if k == 4 else bits),  # k = 4 feeds the last layer
    )


# ------------------------------------------------------------------------------------------- run
def load_data(quick: bool = False):
    train = subset(load_fashion_mnist("train"), 512 if quick else HP["train_subset"], seed=HP["seed"])
    test = load_fashion_mnist("test")
    if quick:
        test = subset(test, 1000, seed=HP["seed"])
    mean, std = channel_stats(train.images)
    return to_tensor_dataset(train, mean, std), to_tensor_dataset(test, mean, std)


@torch.no_grad()
def accuracy(model: nn.Module, data) -> float:
    model.eval()
    x, y = data.tensors
    hits = sum(int((model(x[i : i + HP["eval_batch"]]).argmax(1) == y[i : i + HP["eval_batch"]]).sum())
               for i in range(0, len(y), HP["eval_batch"]))  # fmt: skip
    return 100.0 * hits / len(y)


def train_cfg(epochs: int, lr: float) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=HP["batch_size"], lr=lr, optimizer="adam", schedule="cosine",
                       seed=HP["seed"])  # fmt: skip


def qat_model(variant: str, bits: int, parent: nn.Module) -> nn.Module:
    if variant == "brevitas":
        m = brevitas_cnn(bits)
        res = m.load_state_dict(parent.state_dict(), strict=False)
        bad = [k for k in res.missing_keys if "quant" not in k] + list(res.unexpected_keys)
        if bad:
            raise RuntimeError(f"the float parent does not fit the Brevitas model: {bad}")
        return m
    m = copy.deepcopy(parent)
    lb.quantize_(m, lowbit_config(variant, bits))
    first_act = lb.quantization_map(m)["0"]["act"]
    if first_act is not None:
        raise RuntimeError(f"{variant}: the model input should stay float, got {first_act}")
    return m


def run(bits_list, variants, progress: bool, quick: bool = False) -> dict:
    torch.manual_seed(HP["seed"])
    train, test = load_data(quick)
    parent = float_cnn()
    t0 = time.perf_counter()
    fit(parent, train, train_cfg(HP["float_epochs"], HP["float_lr"]), progress=progress, desc="float")
    rows = [{"variant": "float", "bits": 32, "accuracy": accuracy(parent, test), "seconds": time.perf_counter() - t0}]
    print(f"float parent: {rows[0]['accuracy']:.2f} %  ({rows[0]['seconds']:.0f} s)", flush=True)
    for bits in bits_list:
        for variant in variants:
            if variant == "lowbit-before" and bits != 2:
                continue
            t0 = time.perf_counter()
            torch.manual_seed(HP["seed"])
            m = qat_model(variant, bits, parent)
            cfg = train_cfg(HP["qat_epochs"], HP["qat_lr"])
            if variant == "lowbit-before":
                cfg = TrainConfig(**{**cfg.to_dict(), "calibrate_batches": 0})
            fit(m, train, cfg, progress=progress, desc=f"{variant} W{bits}A{bits}")
            row = {"variant": variant, "bits": bits, "accuracy": accuracy(m, test), "seconds": time.perf_counter() - t0}
            if variant.startswith("lowbit"):
                alphas = [float(q.alpha.detach()) for q in m.modules() if isinstance(q, PACTQuantizer)]
                row["pact_alpha"] = [round(a, 3) for a in alphas]
            rows.append(row)
            print(f"W{bits}A{bits} {variant:14s} {row['accuracy']:.2f} %  ({row['seconds']:.0f} s)", flush=True)
    return {"hp": HP, "torch": torch.__version__, "machine": platform.machine(), "rows": rows}


def table(result: dict) -> str:
    rows = result["rows"]
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    bits = sorted({r["bits"] for r in rows if r["variant"] != "float"}, reverse=True)
    acc = {(r["variant"], r["bits"]): r["accuracy"] for r in rows}
    lines = ["| test accuracy (%) | " + " | ".join(f"W{b}A{b}" for b in bits) + " |", "|---|" + "---|" * len(bits)]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(f"{acc[v, b]:.2f}" if (v, b) in acc else "" for b in bits) + " |")
    lines.append(f"| float parent | {acc['float', 32]:.2f} |" + " |" * (len(bits) - 1))
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 4, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=HP["seed"], help="training subset, init and batch order (default 0)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--pact-percentile", type=float, help="override PACT's calibration percentile (lowbit rows)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 512 training and 1,000 test images")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    HP["seed"] = args.seed
    HP["pact_percentile"] = args.pact_percentile
    variants = list(args.variants)
    if "brevitas" in variants:
        try:
            import brevitas  # noqa: F401
        except ImportError:
            print("Brevitas is not installed (pip install -e '.[bench]'): skipping its rows")
            variants.remove("brevitas")
    result = run(args.bits, variants, args.progress, args.quick)
    print(table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
