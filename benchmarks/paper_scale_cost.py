"""What a CNN study costs at its ``paper`` scale: jobs, training image passes and multiply-accumulates, counted from
the spec's own plan and the built models; and the GPU time that implies at an *assumed* throughput.

    .venv/bin/python benchmarks/paper_scale_cost.py [--studies cnn_width cnn_depth ...] [--tmacs 5] [--qat-factor 1.5]

Counted (exact): for every float/QAT job of ``lowbit sweep SPEC --scale paper``, the training set size of the
job's data config, its epochs, and the forward MACs of one sample through the job's model (forward hooks on every
Conv2d/Linear, at the data's own sample shape); training MACs = 3 × forward MACs (forward + the two backward
products) × samples × epochs. Test-set evaluation is left out (a forward pass per epoch end at most).

Estimated (an assumption, not a measurement: no GPU was lent to this project when it was written): GPU hours =
training MACs / (``--tmacs`` × 10¹² MAC/s), with QAT jobs ``--qat-factor`` slower (fake quantization adds
element-wise passes). The default 5 TMAC/s (10 TFLOP/s fp32) is well under an H100/H200's dense fp32 peak: small
CIFAR networks in eager PyTorch are bound by kernel launches and memory traffic, not arithmetic. Measure one cell
(``lowbit run``) on the GPU you have and scale the estimate by the ratio.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from lowbit.data.sets import load_data
from lowbit.engine.models import build_model
from lowbit.engine.plan import plan
from lowbit.engine.readiness import missing_data
from lowbit.engine.spec import load_spec
from lowbit.studies import study_path

STUDIES = ["cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks", "cnn_retrain", "cnn_segmentation"]


def forward_macs(model: nn.Module, sample: torch.Tensor) -> int:
    total = 0

    def conv(m: nn.Conv2d, _inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [
        mod.register_forward_hook(conv if isinstance(mod, nn.Conv2d) else linear)
        for mod in model.modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model.eval()(sample.unsqueeze(0))
    for h in hooks:
        h.remove()
    return total


def study_cost(name: str) -> dict:
    jobs = [j for j in plan(load_spec(study_path(name), "paper")) if j.kind in ("float", "qat")]
    macs_cache: dict[str, int] = {}
    out = {"jobs": len(jobs), "passes": 0, "float_macs": 0.0, "qat_macs": 0.0}
    for j in jobs:
        data = load_data(j.config["data"])
        key = repr(sorted(j.config["model"].items()))
        if key not in macs_cache:
            model, _ = build_model(j.config["model"], data.info)
            macs_cache[key] = forward_macs(model, data.train[0][0])
        train = j.config["recipe"]["train"]
        passes = len(data.train) * train["epochs"]
        out["passes"] += passes
        out[f"{j.kind}_macs"] += 3.0 * macs_cache[key] * passes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", nargs="+", default=STUDIES)
    ap.add_argument("--tmacs", type=float, default=5.0, help="assumed effective GPU throughput, 10^12 MAC/s")
    ap.add_argument("--qat-factor", type=float, default=1.5, help="assumed QAT slowdown vs float per MAC")
    a = ap.parse_args()
    print(f"assumed: {a.tmacs:g} TMAC/s effective, QAT x{a.qat_factor:g} (an estimate, not a measurement)")
    print(f"{'study':18} {'jobs':>5} {'passes (M)':>11} {'train PMAC':>11} {'GPU h (est.)':>13}")
    for name in a.studies:
        missing = missing_data(load_spec(study_path(name), "paper").data)
        if missing:  # the paper's own data (VOC for cnn_segmentation): `lowbit reproduce NAME --scale paper --dry-run`
            print(f"{name:18} skipped: {missing[0]}")  # estimates it without the data
            continue
        c = study_cost(name)
        pmac = (c["float_macs"] + c["qat_macs"]) / 1e15
        hours = (c["float_macs"] + a.qat_factor * c["qat_macs"]) / (a.tmacs * 1e12) / 3600
        print(f"{name:18} {c['jobs']:5d} {c['passes'] / 1e6:11.1f} {pmac:11.1f} {hours:13.1f}")


if __name__ == "__main__":
    main()
