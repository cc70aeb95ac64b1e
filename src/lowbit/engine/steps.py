"""What one job does, by recipe kind: train float, retrain with QAT or INQ from the parent's model, ensemble.

``run_job(config, job_dir, parent_dirs)`` is the only entry point a backend calls (in any process): it imports the
spec's ``plugins`` (the job config lists them; a ``target`` is imported where it is built), reads nothing but its
arguments, writes only under ``job_dir`` (``train/`` checkpoints and metrics.jsonl,
``model.safetensors``) and returns ``{"metrics": {...}, "model": "model.safetensors" | None, "wall_s": s}``.
Training always resumes from the job's own checkpoints (``fit`` resumes exactly), so a job that was killed
continues where it stopped and ends with the numbers of an uninterrupted run. Recipes:

- float: ``torch.manual_seed(seed)``, build the model, ``fit``.
- finetune: load the parent's model (with ``parent_seed``, the one parent every seed shares), ``fit`` in float with
  the job's seed (CTC ensemble members of one float parent keep its spike frames; issue 30).
- qat: load the parent's model onto the training device, ``quantize_`` with the recipe's QuantConfig, calibrate
  activation quantizers on the first ``calibrate`` training samples (spec §2.3), record ``<metric>_before``, ``fit``.
- inq: load the parent's model (optionally ``quantize_`` + calibrate first), ``fit_inq`` (spec §1.3); records
  ``on_codebook`` (1.0 when every quantized weight is a power of two of the codebook).
- ensemble: average the parent models' probabilities (``task.predict``) on the test set; nothing is trained.
- mixed: per-layer weight bits under a memory budget from the parent's sensitivity, then as qat (engine/mixed.py).
- annotate: the suggestive-annotation loop, then NT and QNT on the selection (annotate_step.py).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..api import calibrate, quantization_map, quantize_
from ..config import QuantConfig
from ..registry import load_modules
from ..serialize import load_model, save_model
from ..tasks import get_task
from ..train import TrainConfig, fit, fit_inq
from ..train.ensemble import average_probs
from ..train.loop import place
from .annotate_step import annotate
from .evaluation import MODEL_FILE, final_metrics, member_probs
from .mixed import mixed_step
from .models import build_model, model_builder_of, model_data


class _Ctx:
    def __init__(self, config: dict, job_dir: Path, parent_dirs: list[Path], progress: bool):
        self.config, self.job_dir, self.parent_dirs, self.progress = config, job_dir, parent_dirs, progress
        self.recipe = config["recipe"]
        self.task = get_task(config["task"])
        self.data = model_data(config["data"], config["model"])  # flattened for a model that takes vectors

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return self.task.metrics(self.task.predict(model, self.data.test), self.data.test)

    def finish(self, model: torch.nn.Module) -> dict[str, float]:
        """Test metrics + train metrics (tasks that ask) + memory; saves the test probabilities (evaluation.py)."""
        return final_metrics(self.task, self.data, model, self.job_dir)

    def fit_kwargs(self) -> dict[str, Any]:
        return dict(
            loss_fn=self.task.loss,
            collate=self.task.collate,
            run_dir=self.job_dir / "train",
            resume=True,
            progress=self.progress,
        )

    def builder(self):
        """A user's model builder (``target``) for rebuilding saved models; None for a registered name."""
        return model_builder_of(self.config["model"]) if "target" in self.config["model"] else None

    def parent_model(self) -> tuple[torch.nn.Module, dict]:
        model, meta = load_model(self.parent_dirs[0] / MODEL_FILE, self.builder())
        return model, meta["model"].get("kwargs", {})

    def quantize(self, model: torch.nn.Module) -> dict[str, float]:
        """Apply the recipe's QuantConfig and calibrate; return the metrics right after (``<m>_before``)."""
        cfg = QuantConfig.from_dict(self.recipe["quant"])
        with warnings.catch_warnings():  # the probe only compares maps; quantize_ below warns once if it must
            warnings.simplefilter("ignore")
            probe = quantize_(copy.deepcopy(model), cfg)
        if quantization_map(probe) != quantization_map(model):
            quantize_(model, cfg)
            n = self.recipe.get("calibrate", 4096)
            if n:
                calibrate(model, self.task.calibration(self.data.train, n))
        # else: the parent is already quantized this way (e.g. CLR fine-tuning of a QAT model): its learned
        # steps and ranges (PACT alpha, LSQ steps) carry over instead of being re-calibrated from scratch.
        return {f"{k}_before": v for k, v in self.evaluate(model).items()}

    def save(self, model: torch.nn.Module, kwargs: dict) -> str:
        m = self.config["model"]
        save_model(self.job_dir / MODEL_FILE, model.cpu(), m.get("name", m.get("target")), **kwargs)
        return MODEL_FILE


def _float(c: _Ctx) -> tuple[dict, str | None]:
    torch.manual_seed(c.config["seed"])
    model, kwargs = build_model(c.config["model"], c.data.info)
    fit(model, c.data.train, TrainConfig.from_dict(c.recipe["train"]), desc="float", **c.fit_kwargs())
    return c.finish(model), c.save(model, kwargs)


def _finetune(c: _Ctx) -> tuple[dict, str | None]:
    """Float training from the parent's model (members of one float parent keep its CTC spike frames)."""
    model, kwargs = c.parent_model()
    cfg = TrainConfig.from_dict(c.recipe["train"])
    place(model, cfg.device)
    torch.manual_seed(c.config["seed"])  # the job's own seed: its dropout masks and batch order
    fit(model, c.data.train, cfg, desc="finetune", **c.fit_kwargs())
    return c.finish(model), c.save(model, kwargs)


def _qat(c: _Ctx) -> tuple[dict, str | None]:
    model, kwargs = c.parent_model()
    cfg = TrainConfig.from_dict(c.recipe["train"])
    place(model, cfg.device)  # calibration and the metrics before retraining run where training will
    before = c.quantize(model)
    fit(model, c.data.train, cfg, desc="qat", **c.fit_kwargs())
    return {**c.finish(model), **before}, c.save(model, kwargs)


def _inq(c: _Ctx) -> tuple[dict, str | None]:
    model, kwargs = c.parent_model()
    r = c.recipe
    cfg = TrainConfig.from_dict(r["train"])
    place(model, cfg.device)
    if "quant" in r:
        c.quantize(model)
    inq, _ = fit_inq(
        model,
        c.data.train,
        cfg,
        bits=r["bits"],
        portions=tuple(r.get("portions", (0.5, 0.75, 0.875, 1.0))),
        strategy=r.get("strategy", "magnitude"),
        max_value=r.get("max_value"),  # a fixed top level 2^n1 (spec §1.1); absent: Eq. 3 per layer
        **c.fit_kwargs(),
    )
    return {**c.finish(model), "on_codebook": float(inq.check())}, c.save(model, kwargs)


def _ensemble(c: _Ctx) -> tuple[dict, str | None]:
    probs = [member_probs(c.task, c.data, d, c.builder()) for d in c.parent_dirs]
    if c.task.ensemble_metrics is not None:  # a task with its own combination rules (CTC: beam search, ROVER)
        return c.task.ensemble_metrics(probs, c.data.test), None
    return c.task.metrics(average_probs(probs), c.data.test), None


STEPS: dict[str, Callable[[_Ctx], tuple[dict, str | None]]] = {
    "float": _float,
    "finetune": _finetune,
    "qat": _qat,
    "inq": _inq,
    "ensemble": _ensemble,
    "mixed": mixed_step,  # engine/mixed.py: sensitivity, exact allocation, then as qat
    "annotate": annotate,
}


def run_job(config: dict, job_dir: str | Path, parent_dirs: list[str | Path], progress: bool = False) -> dict:
    """Run (or finish) one job; see the module docstring."""
    t0 = time.perf_counter()
    load_modules(config.get("plugins", []), "plugin")  # a worker process imports the spec's plugins itself
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(config, job_dir, [Path(p) for p in parent_dirs], progress)
    metrics, model = STEPS[config["recipe"]["kind"]](ctx)
    return {"metrics": metrics, "model": model, "wall_s": time.perf_counter() - t0}
