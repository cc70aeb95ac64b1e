"""Jobs that differ only in their seed, trained as one worker task (``train/stacked.py``); one row per job.

``tasks(ready, out, progress)`` turns the jobs that are ready to run into worker tasks: float, QAT and INQ jobs
whose configs are equal but for the seed (same task, data, model, recipe and TrainConfig; their parents are the
same-seed jobs of one parent method) and whose model stacks (``stack_problem``: Linear layers only, rows
independent; checked once per model entry on two freshly built copies) become one task ``run_group``; every other
job stays a task of its own (``steps.run_job``). A group's result is one result per job, and the driver writes
one store row per job, exactly as for separate jobs.

``run_group`` prepares each job as ``run_job`` would (float: seed, build; QAT: parent, quantize, calibrate, the
metrics before; INQ: parent), trains them stacked (``fit_stacked`` / ``fit_inq_stacked``: the same arithmetic,
batches, checkpoints and metrics files as separate ``fit`` calls), then finishes each (test metrics,
probabilities, model file) into its own job folder. When the prepared models do not stack after all, each is
trained on its own in the same task.

Resume: only jobs not in the store are submitted, so a group whose other seeds finished reruns only the missing
ones (grouped again if two or more are missing); each job continues from its own checkpoints, which are the ones a
separate ``fit`` writes, so a job gives the same weights whether it ran fused, alone, or both across a restart
(tests/engine/test_engine_fused.py).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from ..registry import load_modules
from ..train import TrainConfig, fit, fit_inq
from ..train.loop import place
from ..train.stacked import fit_stacked, stack_problem
from ..train.stacked_inq import fit_inq_stacked
from .models import build_model, model_data
from .plan import Job
from .steps import _Ctx, run_job

FUSED_KINDS = ("float", "qat", "inq")
GROUP_PREFIX = "group:"
_stackable: dict[str, bool] = {}


def fuse_key(job: Job) -> str | None:
    """What a job shares with its seed siblings (None: never fused)."""
    if job.kind not in FUSED_KINDS or job.config.get("seed") is None:
        return None
    c = copy.deepcopy(job.config)
    c.pop("seed")
    c.pop("parents")
    c["recipe"]["train"].pop("seed")
    axes = {k: v for k, v in job.axes.items() if k != "seed"}
    return json.dumps({"config": c, "axes": axes}, sort_keys=True)


def _probe(data) -> torch.Tensor | None:
    """The first (up to) 32 inputs as one batch, or None where inputs are not tensors of one shape (utterances of
    different lengths, images with masks...): such a set's jobs train one by one."""
    xs = [data[i][0] for i in range(min(32, len(data)))]
    if not xs or not all(isinstance(x, torch.Tensor) and x.shape == xs[0].shape for x in xs):
        return None
    return torch.stack(xs)


def stackable(config: dict) -> bool:
    """Whether the job's model stacks (two copies built with different seeds; cached per model and data)."""
    key = json.dumps({"model": config["model"], "data": config["data"]}, sort_keys=True)
    if key not in _stackable:
        load_modules(config.get("plugins", []), "plugin")
        data = model_data(config["data"], config["model"])
        probe = _probe(data.train)
        if probe is None:
            _stackable[key] = False
        else:
            models = []
            for s in (0, 1):
                torch.manual_seed(s)
                models.append(build_model(config["model"], data.info)[0])
            _stackable[key] = stack_problem(models, probe) is None
    return _stackable[key]


def tasks(
    ready: list[Job], out: Path, progress: bool, fuse: bool = True, single=run_job
) -> list[tuple[str, object, dict, list[Job]]]:
    """``(key, fn, kwargs, jobs)`` per worker task, in the order of ``ready`` (a group where its first job is);
    ``single``: the function a job of its own runs (``steps.run_job``; the caller's, so tests can wrap it)."""
    groups: dict[str, list[Job]] = {}
    order: list[str | Job] = []
    for j in ready:
        k = fuse_key(j) if fuse else None
        if k is not None and stackable(j.config):
            if k not in groups:
                groups[k] = []
                order.append(k)
            groups[k].append(j)
        else:
            order.append(j)
    result = []
    for item in order:
        members = groups[item] if isinstance(item, str) else [item]
        kwargs = [
            dict(
                config=j.config,
                job_dir=str(out / "jobs" / j.id),
                parent_dirs=[str(out / "jobs" / p) for p in j.parents],
                progress=progress,
            )
            for j in members
        ]
        if len(members) == 1:
            result.append((members[0].id, single, kwargs[0], members))
        else:
            key = GROUP_PREFIX + "+".join(j.id for j in members)
            result.append((key, run_group, {"jobs": kwargs}, members))
    return result


def results_of(key: str, res: dict, members: list[Job]) -> list[tuple[Job, dict]]:
    """Each member job with its own result (a group's result lists them in order)."""
    if len(members) == 1 and not key.startswith(GROUP_PREFIX):
        return [(members[0], res)]
    return list(zip(members, res["results"]))


def _prepare(c: _Ctx) -> tuple[torch.nn.Module, dict, TrainConfig, dict]:
    """What ``steps`` does before training: (model, builder kwargs, TrainConfig, metrics before)."""
    cfg = TrainConfig.from_dict(c.recipe["train"])
    if c.recipe["kind"] == "float":
        torch.manual_seed(c.config["seed"])
        model, kwargs = build_model(c.config["model"], c.data.info)
        return model, kwargs, cfg, {}
    model, kwargs = c.parent_model()
    place(model, cfg.device)
    if c.recipe["kind"] == "qat":
        return model, kwargs, cfg, c.quantize(model)
    if "quant" in c.recipe:
        c.quantize(model)
    return model, kwargs, cfg, {}


def run_group(jobs: list[dict]) -> dict:
    """Run (or finish) jobs that differ only in seed, trained stacked; ``{"results": [run_job's result, ...]}``."""
    t0 = time.perf_counter()
    load_modules(jobs[0]["config"].get("plugins", []), "plugin")
    ctxs = []
    for j in jobs:
        d = Path(j["job_dir"])
        d.mkdir(parents=True, exist_ok=True)
        ctxs.append(_Ctx(j["config"], d, [Path(p) for p in j["parent_dirs"]], False))
    prepared = [_prepare(c) for c in ctxs]
    models = [p[0] for p in prepared]
    cfgs = [p[2] for p in prepared]
    c0, r = ctxs[0], ctxs[0].recipe
    data = c0.data.train
    kw = dict(loss_fn=c0.task.loss, collate=c0.task.collate, resume=True)
    probe = _probe(data)
    stacked = (
        probe is not None
        and cfgs[0].device == "cpu"
        and cfgs[0].amp in ("off", "bf16")  # fp16's gradient scaler: one by one
        and stack_problem(models, probe) is None
    )
    dirs = [c.job_dir / "train" for c in ctxs]
    inqs = None
    if r["kind"] == "inq":
        inq_args = dict(bits=r["bits"], portions=tuple(r.get("portions", (0.5, 0.75, 0.875, 1.0))))
        inq_args["strategy"] = r.get("strategy", "magnitude")
        if stacked:
            inqs = fit_inq_stacked(models, data, cfgs, run_dirs=dirs, **inq_args, **kw)
        else:
            inqs = [
                fit_inq(m, data, g, run_dir=d, progress=False, **inq_args, **kw)[0]
                for m, g, d in zip(models, cfgs, dirs)
            ]
    elif stacked:
        fit_stacked(models, data, cfgs, run_dirs=dirs, **kw)
    else:
        for m, g, d in zip(models, cfgs, dirs):
            fit(m, data, g, run_dir=d, progress=False, desc=r["kind"], **kw)
    wall = (time.perf_counter() - t0) / len(jobs)  # the task's time, shared evenly: each row's wall_s
    results = []
    for i, (c, (model, kwargs, _, before)) in enumerate(zip(ctxs, prepared)):
        metrics = {**c.finish(model), **before}
        if inqs is not None:
            metrics["on_codebook"] = float(inqs[i].check())
        results.append({"metrics": metrics, "model": c.save(model, kwargs), "wall_s": wall})
    return {"results": results}
