"""The spirals study (Boo et al. §3, Figs. 1-2, 9-10): what 2-bit weights and activations do to FCDNNs.

For every model (width-depth, plain and residual) a float model is trained, then retrained from its float
weights with 2-bit weights (W2), 2-bit activations (A2), both (W2A2), and INQ power-of-two weights at 2, 3
and 4 bits. Accuracy is measured on the correct-answer test set (band rule, spec §8); decision maps on the
paper's quarter 0 < x, y < 1.

Quantization choices (spec §2, logged in config.toml): weights use the uniform quantizer with the L2-optimal
step computed from the float weights and then frozen (Hwang & Sung 2014); activations use the unsigned
uniform quantizer with an L2-optimal step calibrated on 4,096 training samples (spec §2.3, §11.8) and
quantize the input of every layer except the first (the raw coordinates are signed and stay float).
All layers' weights are quantized, the first and last included.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import INQ, LayerRule, QuantConfig, calibrate, quantize_, quantizers, tomlio
from ..data import spirals
from ..models import create_model
from ..serialize import save_model
from ..train import TrainConfig, fit, fit_inq
from ..train.checkpoint import atomic_write_text
from ..train.loop import load_model_state
from .jobs import Job, load_result, run_jobs
from .registry import register_study
from .runfolder import start_run_folder
from .spirals_report import build_report

MODELS = {  # name -> (width, depth, residual)
    "128-3": (128, 3, False),
    "128-4": (128, 4, False),
    "256-3": (256, 3, False),
    "200-4": (200, 4, False),
    "128-6": (128, 6, False),
    "128-8": (128, 8, False),
    "res 128-4": (128, 4, True),
    "res 128-8": (128, 8, True),
}
QAT = ("W2", "A2", "W2A2")
INQ_BITS = (2, 3, 4)
PRECISIONS = ("float", *QAT, *(f"INQ{b}" for b in INQ_BITS))


@dataclass(frozen=True)
class Scale:
    models: tuple[str, ...]
    float_epochs: int
    retrain_epochs: int  # QAT retraining from the float weights
    inq_epochs: int  # INQ retraining per portion stage (none after the last portion, spec §1.3)
    batch_size: int = 256
    lr: float = 3e-3
    retrain_lr: float = 1e-3
    subset: int = 0  # 0 = all 20,000 training samples
    test_resolution: int = 201
    map_resolution: int = 160


SCALES = {
    "tiny": Scale(
        ("128-3", "res 128-4"),
        float_epochs=2,
        retrain_epochs=1,
        inq_epochs=1,
        subset=2000,
        test_resolution=61,
        map_resolution=40,
    ),
    "default": Scale(tuple(MODELS), float_epochs=150, retrain_epochs=30, inq_epochs=10, lr=3e-3),
    "paper": Scale(tuple(MODELS), float_epochs=600, retrain_epochs=100, inq_epochs=30, lr=3e-3),
}


def qat_config(precision: str) -> QuantConfig:
    w = quantizers.get("uniform", bits=2) if "W2" in precision else None
    a = quantizers.get("uniform", bits=2, signed=False) if "A2" in precision else None
    return QuantConfig(weight=w, act=a, rules={"first": LayerRule(weight=w, act=None)})


def _accuracy(model: torch.nn.Module, test) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(test.tensors[0]).argmax(1) == test.tensors[1]).float().mean()) * 100


def _prob_map(model: torch.nn.Module, resolution: int) -> list[list[float]]:
    pts, side = spirals.quarter_grid(resolution)
    with torch.no_grad():
        p = torch.softmax(model(pts), 1)[:, 1].reshape(side, side)
    return [[round(float(v), 3) for v in row] for row in p]


def model_job(job_dir: Path, resume: bool, progress: bool, model: str, scale: str, seed: int = 0) -> dict:
    """Train one float model and all its quantized retrainings; returns accuracies and decision maps."""
    sc = SCALES[scale]
    width, depth, residual = MODELS[model]
    train = spirals.train_set(seed=0)  # the same data for every model (spec §8)
    if sc.subset:
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: sc.subset]
        train = torch.utils.data.TensorDataset(*(t[idx] for t in train.tensors))
    test = spirals.test_set(sc.test_resolution)
    kwargs = dict(width=width, depth=depth, residual=residual)
    torch.manual_seed(seed)
    net = create_model("fcdnn", **kwargs)
    fcfg = TrainConfig(epochs=sc.float_epochs, batch_size=sc.batch_size, lr=sc.lr, seed=seed)
    rcfg = TrainConfig(epochs=sc.retrain_epochs, batch_size=sc.batch_size, lr=sc.retrain_lr, seed=seed)
    icfg = TrainConfig(epochs=sc.inq_epochs, batch_size=sc.batch_size, lr=sc.retrain_lr, seed=seed)
    out: dict = {"model": model, "params": sum(p.numel() for p in net.parameters()), "results": {}}
    for prec in PRECISIONS:
        pdir = job_dir / prec.replace(" ", "_")
        final = pdir / "model.safetensors"
        if resume and (pdir / "result.json").exists() and final.exists():
            out["results"][prec] = json.loads((pdir / "result.json").read_text())
            if prec == "float":
                load_model_state(final, net)
            continue
        if prec == "float":
            m = net
            fit(m, train, fcfg, run_dir=pdir, resume=resume, progress=progress, desc=f"{model} float")
            before = None
        else:
            m = copy.deepcopy(net)
            if prec.startswith("INQ"):
                before = None
                fit_inq(m, train, icfg, bits=int(prec[3:]), run_dir=pdir, resume=resume, progress=progress)
            else:
                quantize_(m, qat_config(prec))
                calibrate(m, [train.tensors[0][:4096]])
                before = _accuracy(m, test)
                fit(m, train, rcfg, run_dir=pdir, resume=resume, progress=progress, desc=f"{model} {prec}")
        res = {
            "accuracy": _accuracy(m, test),
            "accuracy_before_retrain": before,
            "map": _prob_map(m, sc.map_resolution),
        }
        if prec.startswith("INQ"):
            res["inq_on_codebook"] = INQ(m, int(prec[3:])).check()
        save_model(final, m, "fcdnn", **kwargs)
        atomic_write_text(pdir / "result.json", json.dumps(res))
        out["results"][prec] = res
    return out


def study_config(scale: str) -> dict:
    sc = SCALES[scale]
    return {
        "study": "spirals",
        "scale": scale,
        "data": {
            "name": "spirals",
            "r": spirals.R,
            "noise": "std (sigma = r/3)",
            "train_samples": sc.subset or 20000,
            "test": f"band-rule grid {sc.test_resolution}x{sc.test_resolution} within rho <= 10.5 r",
        },
        "models": {m: {"width": MODELS[m][0], "depth": MODELS[m][1], "residual": MODELS[m][2]} for m in sc.models},
        "float_train": TrainConfig(epochs=sc.float_epochs, batch_size=sc.batch_size, lr=sc.lr).to_dict(),
        "retrain": TrainConfig(epochs=sc.retrain_epochs, batch_size=sc.batch_size, lr=sc.retrain_lr).to_dict(),
        "quantization": {p: qat_config(p).to_dict() for p in QAT}
        | {
            f"INQ{b}": {
                "bits": b,
                "portions": [0.5, 0.75, 0.875, 1.0],
                "strategy": "magnitude",
                "epochs_per_portion": sc.retrain_epochs,
            }
            for b in INQ_BITS
        },
        "seed": 0,
    }


def rebuild_report(out: Path) -> Path:
    """Rebuild report.md/html and figures of a finished (or partly finished) spirals run from its job results."""
    out = Path(out)
    cfg = tomlio.load(out / "config.toml")
    if cfg.get("study") != "spirals":
        raise ValueError(f"{out} is not a spirals run (config.toml study = {cfg.get('study')!r})")
    results = [load_result(out / "jobs" / m.replace(" ", "_")) for m in cfg["models"]]
    missing = [m for m, r in zip(cfg["models"], results) if r is None]
    if missing:
        raise ValueError(f"{out}: models {missing} have no results yet; finish the run with --resume first")
    return build_report(out, results, cfg)


@register_study(
    "spirals",
    "Boo et al. synthetic spirals: FCDNN width/depth/residual x W2/A2/W2A2/INQ (the main job)",
    scales=tuple(SCALES),
    report=rebuild_report,
)
def run(out: Path, scale: str = "default", resume: bool = False, workers: int = 2, progress: bool = True) -> Path:
    sc = SCALES[scale]
    out = Path(out)
    cfg = study_config(scale)
    start_run_folder(out, cfg, resume)
    # biggest jobs first, so the two workers finish together
    order = sorted(sc.models, key=lambda m: -(MODELS[m][0] ** 2) * MODELS[m][1])
    jobs = [
        Job(m.replace(" ", "_"), "lowbit.experiments.spirals:model_job", {"model": m, "scale": scale}) for m in order
    ]
    results = run_jobs(jobs, out, workers=workers, resume=resume, progress=progress, desc="spirals models")
    by_model = {r["model"]: r for r in results.values()}
    rows = [
        json.dumps({"model": m, "precision": p, **{k: v for k, v in r["results"][p].items() if k != "map"}})
        for m in sc.models
        for p in PRECISIONS
        for r in [by_model[m]]
    ]
    atomic_write_text(out / "metrics.jsonl", "\n".join(rows) + "\n")
    report = build_report(out, [by_model[m] for m in sc.models], cfg)
    return report
