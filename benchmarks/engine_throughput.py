"""Where the time of `make run` goes: the spirals study (default scale) through the engine, measured in one run.

Everything is read from the shipped spec (``lowbit.studies.study_path("spirals")``, ``load_spec`` + ``plan``): the
models, the data, the batch size, the optimizer and the schedule are the ones the jobs of `make run` get.

1. **Engine vs bare loop.** The float 128-4 job through ``lowbit.engine.steps.run_job`` (what every backend calls)
   against a hand-written PyTorch loop: the model built by ``lowbit.models.create_model`` with the job's arguments,
   the same seed, the same batches (the engine's shuffle order), Adam with the job's lr and schedule (one-cycle:
   set every step, as ``fit`` does). Both run the job's TrainConfig with ``epochs`` cut to HP["bench_epochs"]
   (the per-step work does not depend on the epoch count). "Training" is the ``fit`` call inside ``run_job``
   (optimizer set-up, the loop, the per-epoch checkpoint and metrics.jsonl writes); data generation (cached per
   process, built before timing),
   model build and evaluation are outside it. The two are timed interleaved (engine, bare, bare, engine, ...),
   median of HP["repeats"], at 1 thread and at the default thread count; the final weights of both are compared.
2. **One job's phases.** The whole grid runs through ``lowbit.engine.run.sweep`` (1 worker, in this process; seed
   siblings not fused, so that every job's phases are its own: item 5 measures the fusion) with
   every training stage cut to HP["grid_epochs"] epochs (``--quick``: 1 epoch on a 5,000-sample subset); the
   engine's own functions are wrapped here (never changed) to time each phase (exclusive of the phases nested in
   it): data, model build / parent load, quantize + calibrate, training, checkpoint writes, evaluation, the
   probabilities file, the model file, the store row; and once per sweep: plan, preflight, report, the rest.
   Training and checkpoints are then scaled by the job's real step count / the steps run (the projection).
3. **Jobs per minute.** Three representative jobs (float 128-3, W2A2 256-3, INQ 128-4 2 bits) run at their full
   default-scale length, one by one (skipped by ``--quick``: their projections are shown instead), beside what the
   shortened grid projects for them; then the projected wall time of the whole default grid on 1 and 2 worker
   processes (the engine's own job order, longest chain of work first; 2 workers: list scheduling of the projected
   job times, one core each, plus a worker's start-up and its own data build).
4. **Per-step overhead.** One optimizer step of the 128-4 MLP at the spec's batch size, 1 thread, variants timed
   interleaved: a bare step (batch indexed from the data), one on a preallocated batch, forward + backward only,
   forward only, Adam's step only, the step's GEMMs alone (the same matrix products on preallocated tensors) and
   the step's FLOPs at the machine's measured large-GEMM rate; the engine's step as item 1's ratio over the bare
   one; and the number of ATen kernels one step dispatches.
5. **Seeds fused vs one by one.** The three seeds of the float 128-4 cell and of the W2A2 128-4 cell (epochs cut to
   HP["fused_epochs"]): one ``lowbit.engine.fused.run_group`` task (the seeds trained stacked, what a sweep does)
   against one ``run_job`` per seed, interleaved, 1 thread; jobs per minute both ways and whether the final weights
   are bitwise the same.

    .venv/bin/python benchmarks/engine_throughput.py            # about 2 minutes on 2 quiet cores
    .venv/bin/python benchmarks/engine_throughput.py --quick    # under a minute: no full-length jobs, fewer repeats,
                                                                # the grid on a subset: rough figures (a smoke run)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import lowbit.engine.evaluation as evaluation_mod
import lowbit.engine.fused as fused_mod
import lowbit.engine.report as report_mod
import lowbit.engine.run as run_mod
import lowbit.engine.steps as steps_mod
import lowbit.train.loop as loop_mod
from lowbit.engine.models import _model_data, model_data, model_kwargs
from lowbit.engine.plan import Job, plan
from lowbit.engine.spec import Spec, load_spec, parse_spec
from lowbit.engine.store import Store
from lowbit.models import create_model
from lowbit.studies import study_path
from lowbit.train import TrainConfig
from lowbit.train.schedules import PER_STEP, lr_factor

HP = {  # hyper-parameters
    "study": "spirals",
    "bench_model": "128-4",  # the model of items 1 and 4
    "bench_epochs": 6,  # epochs per timed run in item 1 (120 steps each at batch 1024)
    "quick_bench_epochs": 2,
    "repeats": 7,  # interleaved runs per variant and thread count in item 1
    "quick_repeats": 3,
    "grid_epochs": 2,  # epochs per training stage of the shortened grid (item 2/3)
    "quick_grid_epochs": 1,
    "grid_subset": 0,  # training samples of the shortened grid (0: all, as the spec says)
    "quick_grid_subset": 5000,  # --quick: fewer steps per epoch (the projection scales the steps)
    "contended": 1.5,  # item 1 at the default thread count is skipped when an epoch there is this much slower than at 1
    "step_iters": 300,  # tight-loop iterations per timing in item 4
    "quick_step_iters": 100,
    "step_repeats": 5,  # interleaved timings per variant in item 4 (median)
    "peak_gemm": 1024,  # square GEMM size that measures the machine's arithmetic rate
    "fused_cells": [("128-4", "float"), ("128-4", "W2A2")],  # item 5: the seeds of these cells, fused vs not
    "fused_epochs": 4,  # epochs per job in item 5 (80 steps at batch 1024)
    "quick_fused_epochs": 2,
    "fused_repeats": 3,
    "quick_fused_repeats": 1,
    # (model, method, extra axes): the representative jobs of item 3
    "representative": [("128-3", "float", {}), ("256-3", "W2A2", {}), ("128-4", "INQ", {"bits": 2})],
}

# ------------------------------------------------------------------------------------------------ the spec


def default_spec() -> Spec:
    return load_spec(study_path(HP["study"]))  # its default scale, as `make run` resolves it


def shortened(spec: Spec, epochs: int, subset: int) -> Spec:
    """The same spec with every training stage cut to ``epochs`` (the [train] table and every method's own) and,
    with ``subset``, trained on that many samples."""
    raw = copy.deepcopy(spec.raw)
    if subset:
        raw["data"]["subset"] = subset
    raw.setdefault("train", {})["epochs"] = epochs
    for m in raw["methods"].values():
        if "train" in m:
            m["train"]["epochs"] = epochs
    return parse_spec(raw, source=f"{HP['study']} (shortened)")


def find(jobs: list[Job], model: str, method: str, extra: dict | None = None) -> Job:
    extra = extra or {}
    return next(
        j
        for j in jobs
        if j.axes["model"] == model and j.axes["method"] == method and all(j.axes.get(k) == v for k, v in extra.items())
    )


def epochs_of(job: Job) -> int:
    """Epochs a job trains: the recipe's, once per INQ stage that retrains (every portion but the last)."""
    r = job.config["recipe"]
    stages = len(r.get("portions", (0.5, 0.75, 0.875, 1.0))) - 1 if job.kind == "inq" else 1
    return r.get("train", {}).get("epochs", 0) * stages


def steps_of(job: Job) -> int:
    """Optimizer steps a job takes (its epochs x batches per epoch of its data)."""
    n = len(model_data(job.config["data"], job.config["model"]).train)
    return epochs_of(job) * math.ceil(n / job.config["recipe"].get("train", {}).get("batch_size", 1))


# -------------------------------------------------------------------------- phase timers around the engine


class Phases:
    """Wraps engine functions (module attributes, restored by ``close``) and adds up their exclusive times per job
    (the job whose ``run_job`` ran last) or, for ``scope="sweep"``, per sweep."""

    def __init__(self):
        self.jobs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.sweep: dict[str, float] = defaultdict(float)
        self.current: str | None = None
        self.stack: list[list] = []  # [label, scope, start, time of nested timed calls]
        self.saved: list[tuple] = []
        self.costs: dict[str, float] = {}
        self.last_fit_model: torch.nn.Module | None = None
        self.fit_cpu = 0.0  # process CPU seconds inside ``fit`` calls (item 1)

    def wrap(self, owner, name: str, label: str, scope: str = "job") -> None:
        orig = getattr(owner, name)
        self.saved.append((owner, name, orig))

        def timed(*args, **kwargs):
            if name == "run_job":
                self.current = Path(kwargs["job_dir"]).name
            if name == "fit" and args:
                self.last_fit_model = args[0]
            self.stack.append([label, scope, time.perf_counter(), 0.0])
            c0 = time.process_time()
            try:
                out = orig(*args, **kwargs)
            finally:
                if name == "fit":
                    self.fit_cpu += time.process_time() - c0
                lab, sc, t0, nested = self.stack.pop()
                total = time.perf_counter() - t0
                (self.sweep if sc == "sweep" else self.jobs[self.current])[lab] += total - nested
                if self.stack:
                    self.stack[-1][3] += total
            if name == "preflight":
                self.costs = dict(out)
            return out

        setattr(owner, name, timed)

    def install(self) -> Phases:
        w = self.wrap
        w(run_mod, "plan", "plan", "sweep")
        w(run_mod, "preflight", "preflight (build + time every model)", "sweep")
        w(report_mod, "build_report", "report (tables, figures, decision maps)", "sweep")
        w(run_mod, "run_job", "other (run_job)")
        w(steps_mod, "model_data", "data")
        w(steps_mod, "build_model", "model build")
        w(steps_mod, "load_model", "parent load")
        w(steps_mod._Ctx, "quantize", "quantize + calibrate")
        w(steps_mod._Ctx, "evaluate", "evaluation")
        w(steps_mod, "final_metrics", "evaluation")
        w(steps_mod, "fit", "training")
        w(steps_mod, "fit_inq", "training")
        w(loop_mod, "save_train_state", "checkpoints + metrics.jsonl")
        w(loop_mod, "atomic_append_lines", "checkpoints + metrics.jsonl")
        w(evaluation_mod, "save_checkpoint", "probs file")
        w(steps_mod, "save_model", "model file")
        w(Store, "add_job", "store row")
        return self

    def close(self) -> None:
        for owner, name, orig in reversed(self.saved):
            setattr(owner, name, orig)
        self.saved.clear()


TRAIN_PHASES = ("training", "checkpoints + metrics.jsonl")  # what `fit` times (item 1)
STEPS, SETUP = "training: the steps", "training: set-up of each fit call"
JOB_PHASES = (
    "data",
    "model build",
    "parent load",
    "quantize + calibrate",
    STEPS,
    SETUP,
    "checkpoints + metrics.jsonl",
    "evaluation",
    "probs file",
    "model file",
    "store row",
    "other (run_job)",
)


def split_training(phases: dict[str, float], job_dir: Path) -> dict[str, float]:
    """``training`` split into the epochs' loops (the ``seconds`` fit writes to metrics.jsonl for each epoch: the
    steps) and the rest of each ``fit`` call (optimizer, the calibration pass over a few batches, INQ's steps)."""
    out = {k: v for k, v in phases.items() if k != "training"}
    loops = sum(
        json.loads(line)["seconds"] for f in job_dir.rglob("metrics.jsonl") for line in f.read_text().splitlines()
    )
    out[STEPS], out[SETUP] = loops, max(0.0, phases.get("training", 0.0) - loops)
    return out


def projected(phases: dict[str, float], full: Job, ran: Job) -> dict[str, float]:
    """A job's phases as run (``ran``: the shortened job) with the steps scaled to the steps of ``full`` and the
    per-epoch writes to its epochs."""
    ratio = {STEPS: steps_of(full) / max(1, steps_of(ran))}
    ratio["checkpoints + metrics.jsonl"] = epochs_of(full) / max(1, epochs_of(ran))
    return {k: v * ratio.get(k, 1.0) for k, v in phases.items()}


# --------------------------------------------------------------------------- item 1: engine vs bare loop


def bare_loop(job: Job, epochs: int) -> tuple[float, float, torch.nn.Module]:
    """The job's training written by hand; returns (wall s, process CPU s, model). Timed from the optimizer on."""
    cfg = job.config
    train = TrainConfig.from_dict({**cfg["recipe"]["train"], "epochs": epochs})
    data = model_data(cfg["data"], cfg["model"])
    torch.manual_seed(cfg["seed"])
    model = create_model(cfg["model"]["name"], **model_kwargs(cfg["model"], data.info))
    x, y = data.train.tensors
    n, b = len(x), train.batch_size
    t0, c0 = time.perf_counter(), time.process_time()
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    model.train()
    per_epoch = math.ceil(n / b)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(train.seed * 1_000_003 + epoch))
        for step, i in enumerate(range(0, n, b)):
            if step == 0 or train.schedule in PER_STEP:  # one-cycle changes the lr every step
                f = lr_factor(train.schedule, epoch, epochs, step=step, steps_per_epoch=per_epoch)
                for g in opt.param_groups:
                    g["lr"] = train.lr * f
            idx = order[i : i + b]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0, time.process_time() - c0, model


def engine_run(
    job: Job, epochs: int, root: Path, k: int, phases: Phases
) -> tuple[float, float, float, torch.nn.Module]:
    """The job (epochs cut) through ``run_job`` in a fresh job folder; returns (fit wall s, fit CPU s, wall s of the
    per-epoch checkpoint + metrics.jsonl writes inside it, model)."""
    cfg = copy.deepcopy(job.config)
    cfg["recipe"]["train"]["epochs"] = epochs
    key = f"bench{k}"
    ph = phases.jobs[key]
    cpu0, wall0, ck0 = phases.fit_cpu, sum(ph[p] for p in TRAIN_PHASES), ph[TRAIN_PHASES[1]]
    run_mod.run_job(config=cfg, job_dir=root / key, parent_dirs=[])  # the wrapped run_job (Phases)
    wall, ck = sum(ph[p] for p in TRAIN_PHASES) - wall0, ph[TRAIN_PHASES[1]] - ck0
    return wall, phases.fit_cpu - cpu0, ck, phases.last_fit_model


def engine_vs_bare(job: Job, epochs: int, repeats: int, threads: int, root: Path, phases: Phases) -> dict:
    torch.set_num_threads(threads)
    n = len(model_data(job.config["data"], job.config["model"]).train)
    steps = epochs * math.ceil(n / job.config["recipe"]["train"]["batch_size"])
    res = {"engine": [], "bare": [], "engine_cpu": [], "bare_cpu": [], "engine_loop": []}
    runs = iter(range(10_000))
    engine_run(job, 1, root, next(runs), phases)  # warm-up of both paths
    bare_loop(job, 1)
    for r in range(repeats):
        order = ("engine", "bare") if r % 2 == 0 else ("bare", "engine")
        for which in order:
            if which == "engine":
                wall, cpu, writes, m_engine = engine_run(job, epochs, root, next(runs), phases)
                res["engine_loop"].append(wall - writes)
            else:
                wall, cpu, m_bare = bare_loop(job, epochs)
            res[which].append(wall)
            res[which + "_cpu"].append(cpu)
    diff = max((a - b).abs().max().item() for a, b in zip(m_engine.state_dict().values(), m_bare.state_dict().values()))
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"threads": threads, "steps": steps, **med, "max_weight_diff": diff}


# ------------------------------------------------------------------------------ item 4: per-step overhead


BARE, PREALLOC = "bare step, batch indexed from the data", "bare step, preallocated batch"
GEMMS = "the step's GEMMs alone (preallocated)"


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def step_parts(job: Job, iters: int, repeats: int) -> dict[str, float]:
    """Seconds per step of each variant (median of interleaved timings), 1 thread; plus ops and FLOPs per step."""
    torch.set_num_threads(1)
    cfg = job.config
    train = TrainConfig.from_dict(cfg["recipe"]["train"])
    data = model_data(cfg["data"], cfg["model"])
    torch.manual_seed(0)
    model = create_model(cfg["model"]["name"], **model_kwargs(cfg["model"], data.info))
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    x_all, y_all = data.train.tensors
    b = train.batch_size
    order = torch.randperm(len(x_all))
    x, y = x_all[:b].clone(), y_all[:b].clone()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    # the GEMMs of one step on preallocated tensors: forward addmm; backward grad-input mm (not for the first
    # layer: its input needs no gradient) and grad-weight mm
    acts = [torch.randn(b, lin.in_features) for lin in linears]
    grads = [torch.randn(b, lin.out_features) for lin in linears]
    outs = [
        (torch.empty(b, lin.out_features), torch.empty(b, lin.in_features), torch.empty_like(lin.weight))
        for lin in linears
    ]
    w = [(lin.weight.detach(), lin.bias.detach()) for lin in linears]
    flops = sum(2 * b * lin.in_features * lin.out_features * (2 if i == 0 else 3) for i, lin in enumerate(linears))

    def full_step(i):
        idx = order[(i * b) % (len(x_all) - b) :][:b]
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def prealloc_step(i):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fwd_bwd(i):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def fwd(i):
        with torch.no_grad():
            model(x)

    def adam(i):
        opt.step()

    def gemms(i):
        for k, ((wt, bias), a, g, (o, gi, gw)) in enumerate(zip(w, acts, grads, outs)):
            torch.addmm(bias, a, wt.t(), out=o)
            if k:
                torch.mm(g, wt, out=gi)
            torch.mm(g.t(), a, out=gw)

    variants = {
        BARE: full_step,
        PREALLOC: prealloc_step,
        "forward + backward only": fwd_bwd,
        "forward only (no autograd)": fwd,
        "Adam step only": adam,
        GEMMS: gemms,
    }
    fwd_bwd(0)  # Adam needs gradients
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        for i in range(10):
            fn(i)
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for i in range(iters):
                fn(i)
            times[name].append((time.perf_counter() - t0) / iters)
    out = {k: statistics.median(v) for k, v in times.items()}
    with CountOps() as c:
        prealloc_step(0)
    n = HP["peak_gemm"]
    a, bb = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, bb)
    t0 = time.perf_counter()
    for _ in range(5):
        torch.mm(a, bb)
    peak = 5 * 2 * n**3 / (time.perf_counter() - t0)
    return {**out, "ops": c.n, "flops": flops, "peak_flops": peak}


# ------------------------------------------------------------------------ item 5: seeds fused vs one by one


def fused_vs_separate(jobs: list[Job], model: str, method: str, epochs: int, repeats: int, root: Path) -> dict:
    """The seeds of one (model, method) cell, epochs cut to ``epochs``: one ``fused.run_group`` task vs one
    ``run_job`` per seed, interleaved, 1 thread; the parents (for a QAT cell) are the float jobs of the same length
    run first. Returns median walls and whether both ways gave the same weights."""
    torch.set_num_threads(1)
    cell = [j for j in jobs if j.axes["model"] == model and j.axes["method"] == method]
    by_id = {j.id: j for j in jobs}

    def cut(j: Job) -> dict:
        c = copy.deepcopy(j.config)
        c["recipe"]["train"]["epochs"] = epochs
        return c

    parents = root / "parents"
    for j in cell:
        for pid in j.parents:
            if not (parents / pid).exists():
                run_mod.run_job(config=cut(by_id[pid]), job_dir=parents / pid, parent_dirs=[])
    res: dict[str, list[float]] = {"fused": [], "separate": []}
    runs = iter(range(10_000))
    last: dict[str, Path] = {}
    for r in range(repeats + 1):  # the first round warms up both paths
        for which in ("fused", "separate") if r % 2 == 0 else ("separate", "fused"):
            d = root / f"{which}{next(runs)}"
            args = [
                dict(config=cut(j), job_dir=str(d / j.id), parent_dirs=[str(parents / p) for p in j.parents])
                for j in cell
            ]
            t0 = time.perf_counter()
            if which == "fused":
                fused_mod.run_group(args)
            else:
                for a in args:
                    run_mod.run_job(**a)
            if r:
                res[which].append(time.perf_counter() - t0)
            last[which] = d
    same = all(
        _same_file(last["fused"] / j.id / "model.safetensors", last["separate"] / j.id / "model.safetensors")
        for j in cell
    )
    return {"label": f"{model} {method}", "seeds": len(cell), "epochs": epochs, "same": same} | {
        k: statistics.median(v) for k, v in res.items()
    }


def _same_file(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    ta, tb = load_file(a), load_file(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


# ---------------------------------------------------------------------------------- items 2-3: the grid


def run_grid(spec: Spec, epochs: int, subset: int, root: Path) -> tuple[list[Job], float, float]:
    """Sweep the shortened spec with 1 worker (this process, 1 thread); return (its jobs, wall s, CPU s)."""
    short = shortened(spec, epochs, subset)
    torch.set_num_threads(1)  # what a worker runs with (workers=1 sets it too)
    t0, c0 = time.perf_counter(), time.process_time()
    real = fused_mod.stackable
    fused_mod.stackable = lambda config: False  # one job per task: the phase timers wrap fit, not fit_stacked
    try:
        run_mod.sweep(short, root / "grid", workers=1, progress=False)
    finally:
        fused_mod.stackable = real
    return plan(short), time.perf_counter() - t0, time.process_time() - c0


def cold_data_seconds(job: Job) -> float:
    """A worker's first job builds the data (later jobs hit the per-process cache)."""
    import lowbit.data.sets as sets

    _model_data.cache_clear()
    sets._cached.cache_clear()
    t0 = time.perf_counter()
    model_data(job.config["data"], job.config["model"])
    return time.perf_counter() - t0


def worker_start_seconds() -> float:
    """A fresh Python importing torch and lowbit's engine, as a spawned worker does."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, lowbit.engine.steps"], check=True, env={**os.environ})
    return time.perf_counter() - t0


def makespan(jobs: list[Job], seconds: dict[str, float], workers: int, costs: dict[str, float]) -> float:
    """The engine's order (ready jobs, longest chain of work first: ``run._priorities``) on ``workers`` workers."""
    level = run_mod._priorities(jobs, costs)
    done_at: dict[str, float] = {}
    free = [0.0] * workers
    waiting = list(jobs)
    while waiting:
        t = min(free)
        ready = [j for j in waiting if all(p in done_at and done_at[p] <= t for p in j.parents)]
        if not ready:  # wait for the next job to finish
            later = [v for v in done_at.values() if v > t]
            free[free.index(t)] = min(later)
            continue
        j = max(ready, key=lambda j: level[j.id])
        waiting.remove(j)
        w = free.index(t)
        free[w] = done_at[j.id] = t + seconds[j.id]
    return max(free)


# ------------------------------------------------------------------------------------------------ output


def load_text(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in load) + " (1 / 5 / 15 min)"


def fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.2f} s"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


class _Skip(Exception):
    """Items 2-3 not asked for (``--items``)."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats, grid at 1 epoch, no full-length jobs")
    p.add_argument("--items", default="1,2,3,4,5", help="which items to run, e.g. 1,5 (2 and 3 go together)")
    args = p.parse_args()
    quick, items = args.quick, set(args.items.split(","))
    if "2" in items or "3" in items:
        items |= {"2", "3"}
    q = "quick_" if quick else ""
    default_threads = torch.get_num_threads()
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"default threads {default_threads}, load average {load_text(load0)} at start{' (--quick)' if quick else ''}\n"
    )
    spec = default_spec()
    jobs = plan(spec)
    bench = find(jobs, HP["bench_model"], "float")
    tr = bench.config["recipe"]["train"]
    phases = Phases().install()
    try:
        with tempfile.TemporaryDirectory(prefix="lowbit-throughput-") as tmp:
            root = Path(tmp)
            model_data(bench.config["data"], bench.config["model"])  # the data, before any timing
            mark = time.perf_counter()
            took = {}

            def lap(what: str) -> None:
                nonlocal mark
                took[what], mark = time.perf_counter() - mark, time.perf_counter()

            # ---- 1
            eb = [engine_vs_bare(bench, HP[q + "bench_epochs"], HP[q + "repeats"], 1, root / "eb1", phases)]
            skipped = None
            if default_threads > 1:  # only where the threads do not fight other processes for the cores
                torch.set_num_threads(default_threads)
                bare_loop(bench, 1)  # the thread pool's start
                slow = bare_loop(bench, 1)[0] / (eb[0]["bare"] / HP[q + "bench_epochs"])
                if slow > HP["contended"]:
                    skipped = f"{default_threads} threads: not measured (one bare epoch took {slow:.1f}x the 1-thread "
                    skipped += "time: the cores are shared, and threads that wait on each other say nothing here)"
                else:
                    eb.append(
                        engine_vs_bare(
                            bench, HP[q + "bench_epochs"], HP[q + "repeats"], default_threads, root / "ebn", phases
                        )
                    )
            lap("item 1")
            # ---- 4
            if "4" in items:
                parts = step_parts(bench, HP[q + "step_iters"], HP["step_repeats"])
                lap("item 4")
            # ---- 5
            fusion = [
                fused_vs_separate(jobs, model, method, HP[q + "fused_epochs"], HP[q + "fused_repeats"], root / "f5")
                for model, method in HP["fused_cells"]
                if "5" in items
            ]
            lap("item 5")
            # ---- 2, 3
            if "2" not in items:
                raise _Skip
            cold = cold_data_seconds(bench)
            grid_epochs = HP[q + "grid_epochs"]
            phases.jobs.clear()
            phases.sweep.clear()
            short_jobs, grid_wall, grid_cpu = run_grid(spec, grid_epochs, HP[q + "grid_subset"], root)
            by_axes = {tuple(sorted(j.axes.items())): j for j in short_jobs}
            full_of = {j.id: by_axes[tuple(sorted(j.axes.items()))] for j in jobs}  # full job -> shortened job
            ran, proj = {}, {}
            for j in jobs:
                s = full_of[j.id]
                ran[j.id] = split_training(phases.jobs[s.id], root / "grid" / "jobs" / s.id)
                proj[j.id] = projected(ran[j.id], j, s)
            sweep_phases = dict(phases.sweep)
            lap("shortened grid")
            # full-length representative jobs
            measured = {}
            if not quick:
                torch.set_num_threads(1)
                for model, method, extra in HP["representative"]:
                    j = find(jobs, model, method, extra)
                    parents = [root / "grid" / "jobs" / full_of[pid].id for pid in j.parents]
                    t0 = time.perf_counter()
                    run_mod.run_job(config=j.config, job_dir=root / "full" / j.id, parent_dirs=parents)
                    measured[j.id] = time.perf_counter() - t0
                lap("full-length jobs")
            worker_start = worker_start_seconds()
            lap("worker start")
    except _Skip:
        pass
    finally:
        phases.close()
        torch.set_num_threads(default_threads)
    load1 = os.getloadavg()

    # ---------------------------------------------------------------- 1
    b_steps = eb[0]["steps"]
    print(
        f"## 1. Training steps per second: float {HP['bench_model']} job, engine vs bare loop\n\n"
        f"Job config from the spec: {tr['optimizer']} lr {tr['lr']}, {tr['schedule']}, batch {tr['batch_size']}, "
        f"{len(model_data(bench.config['data'], bench.config['model']).train):,} samples; {tr['epochs']} epochs in "
        f"`make run`, cut to {HP[q + 'bench_epochs']} here ({b_steps} steps per run); median of {HP[q + 'repeats']} "
        "interleaved runs. Engine = the `fit` call inside `run_job` (its checkpoint + metrics.jsonl writes included, "
        "at most every 5 s and after the last epoch; data, model build and evaluation excluded).\n"
    )
    rows = []
    for r in eb:
        rows.append(
            [
                r["threads"],
                f"{r['steps'] / r['engine']:.0f}",
                f"{r['steps'] / r['bare']:.0f}",
                f"{(r['engine'] / r['bare'] - 1) * 100:+.1f} %",
                f"{(r['engine_cpu'] / r['bare_cpu'] - 1) * 100:+.1f} %",
                f"{(r['engine_loop'] / r['bare'] - 1) * 100:+.1f} %",
                "yes" if r["max_weight_diff"] == 0 else f"no (max diff {r['max_weight_diff']:.2g})",
            ]
        )
    print(
        table(
            [
                "threads",
                "engine steps/s",
                "bare steps/s",
                "engine overhead (wall)",
                "(CPU time)",
                "(wall, without the per-epoch writes)",
                "same weights",
            ],
            rows,
        )
    )
    if skipped:
        print(f"\n{skipped}")
    if "2" in items:
        # ---------------------------------------------------------------- 2
        bench_short = full_of[bench.id]
        one = proj[bench.id]
        run_short = ran[bench.id]
        one_total = sum(one.values())
        subset = HP[q + "grid_subset"]
        print(
            f"\n## 2. Where one job's time goes: float {HP['bench_model']}, as run in the shortened grid "
            f"({grid_epochs} epoch(s) per training stage{f', {subset:,} training samples' if subset else ''}: "
            f"{steps_of(bench_short)} steps) and with its training phases scaled to the job's {steps_of(bench)} "
            f"steps ({epochs_of(bench)} epochs)\n"
        )
        rows = []
        for ph in JOB_PHASES:
            if ph in run_short:
                rows.append([ph, f"{run_short[ph]:.3f}", f"{one[ph]:.2f}", f"{one[ph] / one_total * 100:.1f} %"])
        rows.append(
            ["data, cold (a worker's first job; cached after)", f"{cold:.3f}", f"{cold:.2f}", "(once per worker)"]
        )
        rows.append(["**job total**", f"{sum(run_short.values()):.3f}", f"**{one_total:.2f}**", "100 %"])
        print(table(["phase", "s as run", "s projected", "share"], rows))
        # whole grid by phase
        n_jobs = len(jobs)
        tot, as_run = defaultdict(float), defaultdict(float)
        for j in jobs:
            for ph, v in proj[j.id].items():
                tot[ph] += v
            for ph, v in ran[j.id].items():
                as_run[ph] += v
        jobs_total = sum(tot.values())
        sweep_other = grid_wall - sum(as_run.values()) - sum(sweep_phases.values())
        once = {**sweep_phases, "rest of the sweep (lock, store, run folder, backend)": sweep_other}
        grid_1 = jobs_total + sum(once.values())
        print(
            f"\nThe whole default grid ({n_jobs} jobs) by phase, one process: the shortened grid as run "
            f"({fmt_s(grid_wall)}; it had {grid_cpu / grid_wall:.0%} of a core: process CPU / wall), and projected "
            "to the full step and epoch counts:\n"
        )
        rows = [
            [ph, f"{as_run[ph]:.2f}", f"{tot[ph]:.1f}", f"{tot[ph] / grid_1 * 100:.1f} %"]
            for ph in JOB_PHASES
            if ph in tot
        ]
        rows += [[ph + " (once)", f"{v:.2f}", f"{v:.1f}", f"{v / grid_1 * 100:.1f} %"] for ph, v in once.items()]
        rows.append(["**total**", f"{grid_wall:.2f}", f"**{grid_1:.1f}**", "100 %"])
        print(table(["phase", "s as run", "s projected", "share"], rows))
        # ---------------------------------------------------------------- 3
        print("\n## 3. Jobs per minute, one by one (1 thread)\n")
        rows = []
        for model, method, extra in HP["representative"]:
            j = find(jobs, model, method, extra)
            pj = sum(proj[j.id].values())
            ms = measured.get(j.id)
            rows.append(
                [
                    j.label,
                    epochs_of(j),
                    fmt_s(ms) if ms else "(--quick: not run)",
                    f"{60 / ms:.1f}" if ms else "",
                    fmt_s(pj),
                    f"{60 / pj:.1f}",
                    f"{(pj / ms - 1) * 100:+.0f} %" if ms else "",
                ]
            )
        print(
            table(
                ["job", "epochs", "measured", "jobs/min", "projected", "jobs/min (projected)", "projection error"], rows
            )
        )
        seconds = {j.id: sum(proj[j.id].values()) for j in jobs}
        fixed = sweep_phases.get("plan", 0) + sweep_phases.get("preflight (build + time every model)", 0)
        rep = sweep_phases.get("report (tables, figures, decision maps)", 0)
        w1 = fixed + makespan(jobs, seconds, 1, phases.costs) + rep + sweep_other
        w2 = fixed + worker_start + cold + makespan(jobs, seconds, 2, phases.costs) + rep + sweep_other
        longest = max(jobs, key=lambda j: seconds[j.id])
        print(
            f"\nThe whole default grid: {n_jobs} jobs ({sum(j.kind == 'float' for j in jobs)} float, "
            f"{sum(j.kind == 'qat' for j in jobs)} QAT, {sum(j.kind == 'inq' for j in jobs)} INQ), "
            f"{jobs_total / 60:.1f} worker-minutes of jobs (longest: {longest.label}, {fmt_s(seconds[longest.id])}); "
            f"plan + preflight {fixed:.1f} s, report {rep:.1f} s, a worker's start {worker_start:.1f} s + data "
            f"{cold:.2f} s.\n"
        )
        print(
            table(
                ["workers", "projected wall", "jobs/min"],
                [[1, fmt_s(w1), f"{n_jobs / w1 * 60:.1f}"], [2, fmt_s(w2), f"{n_jobs / w2 * 60:.1f}"]],
            )
        )
    if "4" in items:
        # ---------------------------------------------------------------- 4
        ref = parts[BARE]
        ratio = eb[0]["engine"] / eb[0]["bare"]
        rows = [
            [f"engine step (this bare step x item 1's engine / bare ratio, {ratio:.3f})", f"{ref * ratio * 1e6:.0f}"]
        ]
        rows += [[k, f"{parts[k] * 1e6:.0f}"] for k in (BARE, PREALLOC, "forward + backward only")]
        rows += [[k, f"{parts[k] * 1e6:.0f}"] for k in ("forward only (no autograd)", "Adam step only", GEMMS)]
        flop_s = parts["flops"] / parts["peak_flops"]
        rows.append(
            [
                f"the step's {parts['flops'] / 1e6:.1f} MFLOP of matrix products at the {HP['peak_gemm']}² GEMM rate "
                f"({parts['peak_flops'] / 1e9:.0f} GFLOP/s)",
                f"{flop_s * 1e6:.0f}",
            ]
        )
        for r in rows:
            r.append(f"{float(r[1]) / (ref * 1e6):.0%}")
        print(
            f"\n## 4. One optimizer step of the {HP['bench_model']} MLP, batch {tr['batch_size']}, 1 thread "
            f"(median of {HP['step_repeats']} interleaved timings of {HP[q + 'step_iters']} steps each)\n"
        )
        print(table(["what", "µs per step", "of the bare step"], rows))
        pre, gemm = parts[PREALLOC], parts[GEMMS]
        print(
            f"\nOne bare step dispatches {parts['ops']} ATen kernels (forward, backward, Adam): "
            f"({pre * 1e6:.0f} − {gemm * 1e6:.0f} µs of GEMMs) / {parts['ops']} = "
            f"{(pre - gemm) / parts['ops'] * 1e6:.1f} µs per kernel besides the GEMMs."
        )
    if "5" in items:
        # ---------------------------------------------------------------- 5
        print(
            f"\n## 5. Seeds fused vs one by one (1 thread; median of {HP[q + 'fused_repeats']} interleaved runs): the "
            "seeds of one cell as one worker task trained stacked (engine/fused.py) vs one run_job per seed\n"
        )
        rows = [
            [
                f["label"],
                f["seeds"],
                f["epochs"],
                f"{f['separate']:.2f}",
                f"{f['fused']:.2f}",
                f"{f['seeds'] / f['separate'] * 60:.1f}",
                f"{f['seeds'] / f['fused'] * 60:.1f}",
                f"{f['separate'] / f['fused']:.2f}x",
                "yes (bitwise)" if f["same"] else "NO",
            ]
            for f in fusion
        ]
        print(
            table(
                [
                    "cell",
                    "seeds",
                    "epochs",
                    "one by one s",
                    "fused s",
                    "jobs/min",
                    "jobs/min fused",
                    "speed-up",
                    "same",
                ],
                rows,
            )
        )
    print(
        f"\n# load average {load_text(load1)} at the end; this run took {fmt_s(time.perf_counter() - t_start)} "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in took.items())})"
    )


if __name__ == "__main__":
    main()
