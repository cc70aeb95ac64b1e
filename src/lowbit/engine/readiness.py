"""Is this machine ready for a study's jobs? What ``--dry-run`` adds for a spec meant for a GPU (a job with ``device``
"auto" or "cuda": the paper scales; issue 28): the data
each set needs (one line per missing set, saying what to put where), the device, the memory of one training step
per model and the estimated GPU time of the whole grid.

- **data**: a registered data set says where it looks (its ``locate`` fact: ``(subpath under the data root, what
  to put there, the spec's own root)``); the path is checked, nothing is read.
- **device**: what ``device = "auto"`` resolves to here, and whether a job asks for CUDA where there is none.
- **memory per job on one batch**: with CUDA, measured (``torch.cuda.max_memory_allocated`` over one forward +
  backward + optimizer step of the job's batch size on a synthetic batch of the data's item shape); without it,
  counted on the meta device (no memory is touched): parameters, gradients, the optimizer's state (SGD with
  momentum 1, Adam 2 tensors per parameter), the batch, and every tensor autograd saves for the backward pass
  (``saved_tensors_hooks``). Both are of the float model; a QAT job's fake quantizers save a few more tensors.
- **GPU time**: FLOPs of one training step (forward + backward, ``torch.utils.flop_counter.FlopCounterMode`` on the
  meta device, so matmuls and convolutions only) x the job's steps (epochs x batches; INQ: x the retrained
  portions) + one forward over the test set, divided by an *assumed* sustained throughput ``ASSUMED_TFLOPS``
  (10 TFLOP/s: far under an H100's dense peak, because eager PyTorch on small networks is bound by kernel launches
  and memory traffic; scale by the ratio of one measured cell). Ensembles train nothing and are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.paths import shared_data_dir
from ..data.sets import DATASETS, load_data
from .bounds import data_args, data_sizes
from .models import build_model

ASSUMED_TFLOPS = 10.0  # sustained FLOP/s of one GPU on these jobs, an assumption (module docstring)


def missing_data(data_cfg: dict) -> list[str]:
    """One line per data set of ``data_cfg`` that is not where it is looked for (empty: all there, or unknown)."""
    name = data_cfg.get("name")
    locate = DATASETS.meta(name).get("locate") if name in DATASETS else None
    args = data_args(data_cfg)
    if locate is None or args is None:
        return []
    out = []
    for sub, what, root in locate(args):
        path = Path(root).expanduser() if root else shared_data_dir() / sub
        if not path.exists():
            where = "" if root else " (data root: LOWBIT_DATA or --data-root)"
            out.append(f"missing data set {name!r}: put {what} at {str(path)!r}{where}")
    return out


def missing_model_files(spec) -> list[str]:
    """One line per model of the grid whose ``backbone`` file (a relative path: under the data root) is absent."""
    out = []
    for label in spec.grid["model"]:
        f = spec.models[label].get("backbone")
        if isinstance(f, str) and f:
            path = Path(f).expanduser()
            path = path if path.is_absolute() else shared_data_dir() / path
            if not path.is_file():
                out.append(
                    f"missing backbone of model {label!r}: put torchvision's mobilenet_v2 ImageNet state dict "
                    f"(torch.save of torchvision.models.mobilenet_v2(weights='IMAGENET1K_V1').state_dict()) at "
                    f"{str(path)!r}"
                )
    return out


def for_a_gpu(jobs: list) -> bool:
    """Whether a trained job asks for a device other than the CPU ("auto", "cuda"): a paper scale."""
    return any(j.config["recipe"].get("train", {}).get("device", "cpu") != "cpu" for j in jobs if j.kind != "ensemble")


def auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_lines(jobs: list) -> list[str]:
    trained = [j for j in jobs if j.kind != "ensemble"]  # an ensemble trains nothing (and has no device)
    asked = sorted({j.config["recipe"].get("train", {}).get("device", "cpu") for j in trained})
    here = auto_device()
    name = torch.cuda.get_device_name(0) if here == "cuda" else "no CUDA device"
    lines = [f"device: jobs ask for {', '.join(asked) or 'cpu'}; 'auto' resolves to {here!r} here ({name})"]
    if any(d.startswith("cuda") for d in asked) and here != "cuda":
        lines.append("device: a job asks for 'cuda' but CUDA is not available here: it would fail; use 'auto'")
    return lines


@dataclass
class StepCost:
    flops_step: float  # forward + backward of one batch
    flops_fwd_item: float  # forward of one item
    memory: int  # bytes of one training step (module docstring)
    measured: bool  # memory measured on CUDA (else counted on meta)


def sample_shape(data_cfg: dict, model_cfg: dict) -> tuple[int, ...] | None:
    """The shape of one input item from the data set's size facts (no file read)."""
    s = data_sizes(data_cfg)
    if s is None or s.item_bytes is None:
        return None
    elems = s.item_bytes // 4
    info = s.info
    if "input_size" in info and "in_channels" in info:
        return (info["in_channels"], info["input_size"], info["input_size"])
    args = data_args(data_cfg) or {}
    if "in_channels" in info and isinstance(args.get("tile", args.get("crop")), int):  # training items: tiles, crops
        side = args.get("tile", args.get("crop"))
        return (info["in_channels"], side, side)
    if "in_channels" in info:
        side = int(math.isqrt(elems // info["in_channels"]))
        return (info["in_channels"], side, side)
    if "in_features" in info:
        f = info["in_features"]
        return (f,) if elems == f else (max(1, elems // f), f)
    return None


def _optimizer_factor(train: dict) -> int:
    opt = train.get("optimizer", "adam")
    return 2 if opt == "adam" else (1 if train.get("momentum", 0.9) > 0 else 0)


def step_cost(model_cfg: dict, info: dict, shape: tuple[int, ...], batch: int, train: dict) -> StepCost:
    from torch.utils.flop_counter import FlopCounterMode

    cfg = {k: v for k, v in model_cfg.items() if k != "backbone"}  # the file is not needed to count
    with torch.device("meta"):
        model, _ = build_model(cfg, info)
    model.train()
    params = {id(p) for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if id(t) not in params:
            saved[id(t)] = t.numel() * t.element_size()
        return t

    x = torch.zeros((batch, *shape), device="meta")
    with FlopCounterMode(display=False) as fc, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        out.float().sum().backward()
    flops_step = float(fc.get_total_flops())
    with torch.no_grad(), FlopCounterMode(display=False) as fwd:
        model.eval()(torch.zeros((1, *shape), device="meta"))
    n_param = sum(p.numel() * p.element_size() for p in model.parameters())
    memory = n_param * (2 + _optimizer_factor(train)) + x.numel() * 4 + sum(saved.values())
    measured = False
    if torch.cuda.is_available():
        memory, measured = _cuda_step_memory(model_cfg, info, shape, batch), True
    return StepCost(flops_step, float(fwd.get_total_flops()), memory, measured)


def _cuda_step_memory(model_cfg: dict, info: dict, shape: tuple[int, ...], batch: int) -> int:
    cfg = {k: v for k, v in model_cfg.items() if k != "backbone"}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model, _ = build_model(cfg, info)
    model = model.cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    out = model(torch.randn((batch, *shape), device="cuda"))
    out.float().sum().backward()
    opt.step()
    peak = torch.cuda.max_memory_allocated() - base
    del model, opt, out
    torch.cuda.empty_cache()
    return int(peak)


def _counts(data_cfg: dict, data) -> tuple[int, int] | None:
    if data is not None:
        return len(data.train), len(data.test)
    counts = DATASETS.meta(data_cfg.get("name")).get("counts") if data_cfg.get("name") in DATASETS else None
    args = data_args(data_cfg)
    return None if counts is None or args is None else counts(args)


def job_steps(job, n_train: int) -> int:
    train = job.config["recipe"].get("train", {})
    per_epoch = math.ceil(n_train / train.get("batch_size", 128))
    stages = 1
    if job.kind == "inq":
        portions = job.config["recipe"].get("portions", [0.5, 0.75, 0.875, 1.0])
        stages = sum(1 for p in portions if p < 1.0)
    return train.get("epochs", 10) * per_epoch * stages


def readiness(spec, jobs: list, loaded: bool = False) -> tuple[list[str], list[str]]:
    """(missing-data lines, report lines) for ``--dry-run``; ``loaded``: the data is there (and was loaded by the
    preflight): item shapes and set sizes come from it, else from the data set's size facts (a synthetic batch)."""
    from .models import model_data

    missing = missing_data(spec.data) + missing_model_files(spec)
    lines = device_lines(jobs)
    data = load_data(spec.data) if loaded else None
    counts = _counts(spec.data, data)
    costs: dict[tuple, StepCost | None] = {}
    total_s, counted, uncounted = 0.0, 0, 0
    for j in jobs:
        if j.kind == "ensemble":
            continue
        train = j.config["recipe"].get("train", {})
        label = j.axes["model"]
        key = (label, train.get("batch_size", 128), train.get("optimizer", "adam"))
        if key not in costs:
            if loaded:
                seen = model_data(spec.data, spec.models[label])  # as the job sees it (flattened for an MLP)
                shape, info = tuple(seen.train[0][0].shape), dict(seen.info)
            else:
                s = data_sizes(spec.data)
                shape, info = sample_shape(spec.data, spec.models[label]), dict(s.info) if s is not None else {}
            try:
                costs[key] = None if shape is None else step_cost(spec.models[label], info, shape, key[1], train)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                costs[key] = None  # a model that cannot run on meta: not estimated (said below)
            c = costs[key]
            if c is not None:
                how = "measured on CUDA" if c.measured else "counted on the meta device"
                lines.append(
                    f"memory: model {label!r}, batch {key[1]} ({key[2]}): {c.memory / 2**30:.2f} GiB per training "
                    f"step ({how}; float model); {c.flops_step / 1e9:.1f} GFLOP per step"
                )
        c = costs[key]
        if c is None or counts is None:
            uncounted += 1
            continue
        total_s += (c.flops_step * job_steps(j, counts[0]) + c.flops_fwd_item * counts[1]) / (ASSUMED_TFLOPS * 1e12)
        counted += 1
    if counted:
        lines.append(
            f"estimated GPU time: {total_s / 3600:.1f} h for {counted} training jobs (FLOPs of one step x steps + "
            f"one test pass, at an assumed sustained {ASSUMED_TFLOPS:g} TFLOP/s; one GPU, jobs one after another)"
        )
    if uncounted:
        lines.append(f"estimated GPU time: {uncounted} jobs not estimated (data size or item shape unknown)")
    return missing, lines
