"""Quantization-aware training step time and peak memory: float vs lowbit (vs Brevitas when installed).

One process builds every case in float, with lowbit and with Brevitas (``pip install -e '.[bench]'``), and
times their training steps interleaved (float, lowbit, brevitas, float, ...) so that machine noise hits all
alike; it prints median step times and ratios. Peak memory is measured per configuration in a child process
(peak RSS during training minus RSS before the first step).

    python benchmarks/qat_speed.py            # full run
    python benchmarks/qat_speed.py --quick    # a short run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import lowbit as lb

HP = {  # hyper-parameters: units in the names
    "threads": 2,  # torch intra-op threads (the machine has 2 cores)
    "warmup_steps": 3,
    "repeats": 30,  # timed steps per variant (interleaved)
    "quick_repeats": 8,
    "memory_steps": 5,
    "lr": 0.01,
}
TARGETS = {"cnn_w4a4": 1.3, "mlp_w2a2": 1.5, "lstm_w4": 1.3, "gru_w4": 1.3, "lstm_w4a8": 4.0, "inq_cnn": 1.1}


# ----------------------------------------------------------------------------------------------- models
def cnn_float() -> nn.Module:  # CNN for 28x28: 4 conv 32/32/64/64 + BN + FC 256
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32),
        *block(32, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        *block(64, 64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def mlp_float() -> nn.Module:  # MLP 2 -> 256 x4 -> 2
    layers, d = [], 2
    for _ in range(4):
        layers += [nn.Linear(d, 256), nn.ReLU()]
        d = 256
    return nn.Sequential(*layers, nn.Linear(256, 2))


class RNNNet(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](40, 128, batch_first=True)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def lowbit_cnn(bits_w=4, bits_a=4) -> nn.Module:
    m = cnn_float()
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=bits_w),
        act=lb.quantizers.get("pact", bits=bits_a),
        rules={"first": lb.LayerRule(weight=lb.quantizers.get("uniform", bits=bits_w))},
    )
    return lb.quantize_(m, cfg)


def lowbit_mlp() -> nn.Module:
    m = mlp_float()
    w2, a2 = lb.quantizers.get("uniform", bits=2), lb.quantizers.get("uniform", bits=2, signed=False)
    return lb.quantize_(m, lb.QuantConfig(weight=w2, act=a2, rules={"first": lb.LayerRule(weight=w2)}))


def lowbit_rnn(cell: str, act_bits: int | None = None) -> nn.Module:
    m = RNNNet(cell)
    act = None if act_bits is None else lb.quantizers.get("uniform", bits=act_bits)
    return lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), act=act, keep_float=("head",)))


def brevitas_cnn():
    import brevitas.nn as qnn

    def block(i, o):
        return [
            qnn.QuantConv2d(i, o, 3, padding=1, bias=False, weight_bit_width=4),
            nn.BatchNorm2d(o),
            qnn.QuantReLU(bit_width=4),
        ]

    return nn.Sequential(
        *block(1, 32),
        *block(32, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        *block(64, 64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        qnn.QuantLinear(64 * 7 * 7, 256, bias=True, weight_bit_width=4),
        qnn.QuantReLU(bit_width=4),
        qnn.QuantLinear(256, 10, bias=True, weight_bit_width=4),
    )


def brevitas_mlp():
    import brevitas.nn as qnn

    layers, d = [], 2
    for _ in range(4):
        layers += [qnn.QuantLinear(d, 256, bias=True, weight_bit_width=2), qnn.QuantReLU(bit_width=2)]
        d = 256
    return nn.Sequential(*layers, qnn.QuantLinear(256, 2, bias=True, weight_bit_width=2))


class BrevitasRNN(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        import brevitas.nn as qnn

        cls = {"lstm": qnn.QuantLSTM, "gru": getattr(qnn, "QuantGRU", None)}[cell]
        if cls is None:
            raise ImportError("this Brevitas has no QuantGRU")
        self.rnn = cls(40, 128, batch_first=True, weight_bit_width=4)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


# ------------------------------------------------------------------------------------------------ cases
def make_case(name: str):
    """(float model, {variant: model}, batch) for one case."""
    g = torch.Generator().manual_seed(0)
    if name == "cnn_w4a4":
        batch = (torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))
        return cnn_float, {"lowbit": lowbit_cnn, "brevitas": brevitas_cnn}, batch
    if name == "mlp_w2a2":
        batch = (torch.randn(256, 2, generator=g), torch.randint(0, 2, (256,), generator=g))
        return mlp_float, {"lowbit": lowbit_mlp, "brevitas": brevitas_mlp}, batch
    if name in ("lstm_w4", "gru_w4", "lstm_w4a8"):
        cell = name.split("_")[0]
        batch = (torch.randn(32, 50, 40, generator=g), torch.randint(0, 10, (32,), generator=g))
        act = 8 if name.endswith("a8") else None
        variants = {"lowbit": lambda: lowbit_rnn(cell, act)}
        if act is None:
            variants["brevitas"] = lambda: BrevitasRNN(cell)
        return (lambda: RNNNet(cell)), variants, batch
    if name == "inq_cnn":
        batch = (torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))
        return cnn_float, {"lowbit": cnn_float}, batch  # INQ is attached to the optimizer below
    raise ValueError(name)


CASES = ["cnn_w4a4", "mlp_w2a2", "lstm_w4", "gru_w4", "lstm_w4a8", "inq_cnn"]


def trainer(model: nn.Module, batch, case: str, variant: str):
    opt = torch.optim.SGD(model.parameters(), lr=HP["lr"], momentum=0.9, weight_decay=5e-4)
    if case == "inq_cnn" and variant == "lowbit":
        inq = lb.INQ(model, bits=5, optimizer=opt)
        inq.step()  # half the weights frozen: the retraining step that INQ runs most
    x, y = batch
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def available(variant_fn) -> bool:
    try:
        variant_fn()
        return True
    except ImportError:
        return False


def time_case(case: str, repeats: int) -> dict:
    float_fn, variants, batch = make_case(case)
    variants = {k: v for k, v in variants.items() if available(v)}
    torch.manual_seed(0)
    steps = {"float": trainer(float_fn(), batch, case, "float")}
    for k, fn in variants.items():
        torch.manual_seed(0)
        steps[k] = trainer(fn(), batch, case, k)
    for s in steps.values():
        for _ in range(HP["warmup_steps"]):
            s()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, s in steps.items():  # interleaved
            t0 = time.perf_counter()
            s()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


# ----------------------------------------------------------------------------------------------- memory
def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def memory_child(case: str, variant: str) -> None:
    torch.set_num_threads(HP["threads"])
    float_fn, variants, batch = make_case(case)
    model = float_fn() if variant == "float" else variants[variant]()
    step = trainer(model, batch, case, variant)
    base = _rss_kb("VmRSS")
    for _ in range(HP["memory_steps"]):
        step()
    print(json.dumps({"peak_extra_mb": (_rss_kb("VmHWM") - base) / 1024}))


def measure_memory(case: str, variant: str) -> float | None:
    r = subprocess.run([sys.executable, __file__, "--memory-child", case, variant], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_extra_mb"]


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--memory-child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    torch.set_num_threads(HP["threads"])
    repeats = HP["quick_repeats"] if args.quick else HP["repeats"]
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, lowbit {lb.__version__}, repeats={repeats}, median step (fwd+bwd+SGD) in ms"
    )
    head = [
        "case",
        "float ms",
        "lowbit ms",
        "lowbit/float",
        "target",
        "met",
        "brevitas ms",
        "brevitas/float",
        "lowbit speed-up vs brevitas",
        "peak MB float/lowbit/brevitas",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case in args.cases.split(","):
        t = time_case(case, repeats)
        ratio = t["lowbit"] / t["float"]
        brev = t.get("brevitas")
        mem = (
            ""
            if args.no_memory
            else "/".join(
                "—" if (v := measure_memory(case, k)) is None else f"{v:.0f}"
                for k in ("float", "lowbit", "brevitas")
                if k in t or k == "brevitas"
            )
        )
        row = [
            case,
            f"{t['float']:.2f}",
            f"{t['lowbit']:.2f}",
            f"{ratio:.2f}x",
            f"<= {TARGETS[case]}x",
            "yes" if ratio <= TARGETS[case] else "NO",
            "—" if brev is None else f"{brev:.2f}",
            "—" if brev is None else f"{brev / t['float']:.2f}x",
            "—" if brev is None else f"{brev / t['lowbit']:.2f}x",
            mem,
        ]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
