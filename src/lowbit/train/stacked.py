"""Train K same-shape models as one: their Linear layers run as one batched matmul, everything else as ``fit``.

``fit_stacked(models, data, cfgs, run_dirs=...)`` trains ``models[k]`` with ``cfgs[k]`` exactly as K separate
``fit`` calls would (same batches: each model keeps its own shuffle order (seed, epoch); same optimizer, schedule,
regularisers, calibration, hooks; the same ``checkpoints/last.safetensors`` and ``metrics.jsonl`` per model), but
each step runs one forward and one backward for all K: the input batches are concatenated to (K·B, ...) and every
``nn.Linear`` (float or its quantized twin) becomes a ``torch.baddbmm`` over the K weight matrices, each model's
own quantizers applied to its own weight and input slice. On a CPU a tiny MLP's step is dominated by per-op
overhead (kernel dispatch, autograd bookkeeping), which is then paid once for K models instead of K times.

Equal to separate training: on PyTorch's CPU build the batched matmul computes each slice with the same GEMM
as ``F.linear`` once a block has 16 or more rows (measured: bitwise for every layer shape of the spirals MLPs;
blocks of 1-8 rows can differ by float rounding, ~1e-6, as the BLAS picks another kernel); the losses,
gradients and optimizer steps are per model and unchanged. tests/train/test_train_stacked.py compares the final
weights of stacked and separate training bitwise (float, W2, PACT A2, W2A2, INQ). A model can be stacked when
``stack_problem(models)`` is None: its parameters and buffers live only in ``nn.Linear`` layers (and their
quantizers), it has no dropout, and its forward treats rows independently — checked directly: the stacked forward
of a probe batch must equal the K separate forwards up to float rounding, else the models are trained one by one.

A checkpoint written here is the checkpoint ``fit`` writes, so a stacked run resumes separately and vice versa;
models that stopped at different epochs (a run killed between two models' checkpoint writes) each resume from
their own epoch: a model joins the stack when the loop reaches it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ..fileio import atomic_append_lines, atomic_write_text
from .checkpoint import CheckpointClock, load_checkpoint
from .config import TrainConfig
from .loop import (
    LossFn,
    _load_optimizer,
    calibrate_before_training,
    classification_loss,
    epoch_batches,
    make_optimizer,
    place,
    save_train_state,
)
from .param_groups import param_groups
from .precision import autocast
from .regularizers import lipschitz, step_terms
from .schedules import PER_STEP, lr_factor


class StackedLinear(nn.Module):
    """K Linear layers (float or quantized twins) applied to the K row blocks of a (K·B, in) input."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.layers = list(layers)  # not registered: the parameters stay the models' own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.layers)
        xs = x.reshape(k, x.shape[0] // k, x.shape[-1])
        quant = [getattr(m, "quantize_input", None) for m in self.layers]
        if any(q is not None for q in quant):
            xs = torch.stack([q(xs[i]) if q is not None else xs[i] for i, q in enumerate(quant)])
        w = torch.stack([m.quantized_weight() if hasattr(m, "quantized_weight") else m.weight for m in self.layers])
        if self.layers[0].bias is None:
            out = torch.bmm(xs, w.transpose(1, 2))
        else:
            b = torch.stack([m.bias for m in self.layers]).unsqueeze(1)
            out = torch.baddbmm(b, xs, w.transpose(1, 2))
        return out.reshape(x.shape[0], out.shape[-1])


def _shell(mods: list[nn.Module]) -> nn.Module:
    """Model 0's module tree with every Linear replaced by a StackedLinear over the K models' layers."""
    if isinstance(mods[0], nn.Linear):
        return StackedLinear(mods)
    s = copy.copy(mods[0])
    s.__dict__ = dict(mods[0].__dict__)
    kids = mods[0]._modules.items()
    s._modules = {n: (None if c is None else _shell([m._modules[n] for m in mods])) for n, c in kids}
    return s


def _structure_problem(models: Sequence[nn.Module]) -> str | None:
    types = [[type(m) for m in model.modules()] for model in models]
    if any(t != types[0] for t in types):
        return "the models differ in structure"
    for name, m in models[0].named_modules():
        if isinstance(m, nn.Linear):
            continue
        if isinstance(m, nn.modules.dropout._DropoutNd):
            return f"{name or 'the model'} is dropout (random per model)"
        inside_linear = any(
            name.startswith(p + ".") for p, q in models[0].named_modules() if isinstance(q, nn.Linear) and p
        )
        if not inside_linear and (list(m.parameters(recurse=False)) or list(m.buffers(recurse=False))):
            return f"{name or 'the model'} ({type(m).__name__}) holds parameters or buffers outside a Linear layer"
    shapes = [[tuple(p.shape) for p in model.parameters()] for model in models]
    if any(s != shapes[0] for s in shapes):
        return "the models' parameter shapes differ"
    return None


def stack_problem(models: Sequence[nn.Module], probe: torch.Tensor) -> str | None:
    """Why these models cannot be trained stacked (None: they can). ``probe``: a few training inputs."""
    if len(models) < 2:
        return "fewer than two models"
    why = _structure_problem(models)
    if why is not None:
        return why
    modes = [m.training for m in models]
    try:
        with torch.no_grad():
            for m in models:
                m.train()
            sep = torch.cat([m(probe) for m in models])
            both = _shell(list(models))(torch.cat([probe] * len(models)))
    except Exception as e:  # a forward that does not take the stacked layout: train one by one
        return f"the stacked forward failed ({type(e).__name__}: {e})"
    finally:
        for m, t in zip(models, modes):
            m.train(t)
    # rows independent: equal up to float rounding (GEMM kernels for blocks of a few rows may sum differently)
    if not isinstance(sep, torch.Tensor) or sep.shape != both.shape or not torch.allclose(sep, both, 1e-4, 1e-5):
        return "the stacked forward differs from the separate ones (rows are not independent)"
    return None


class _Outputs:
    """Stands in for a model inside ``loss_fn(model, batch)``: returns one model's slice of the stacked output."""

    def __init__(self, out: torch.Tensor):
        self.out = out

    def __call__(self, x):
        return self.out


def fit_stacked(
    models: Sequence[nn.Module],
    train_data: Dataset,
    cfgs: Sequence[TrainConfig],
    *,
    loss_fn: LossFn = classification_loss,
    collate: Callable | None = None,
    run_dirs: Sequence[str | Path | None] | None = None,
    resume: bool = False,
    on_optimizer: Sequence[Callable[[torch.optim.Optimizer], None] | None] | None = None,
) -> list[list[dict]]:
    """``fit(models[k], train_data, cfgs[k], run_dir=run_dirs[k], ...)`` for every k, trained stacked.

    The configs may differ only in ``seed`` (the schedule, batch size and epochs are shared). Returns each
    model's per-epoch history. Call ``stack_problem`` first: this function trusts that the models stack.
    """
    k_all = len(models)
    base = {**cfgs[0].to_dict(), "seed": 0}
    if any({**c.to_dict(), "seed": 0} != base for c in cfgs):
        raise ValueError("fit_stacked: the TrainConfigs may differ only in seed")
    cfg0 = cfgs[0]
    if cfg0.device != "cpu":
        raise ValueError(f"fit_stacked: device {cfg0.device!r} is not supported; train on 'cpu' or one by one")
    if cfg0.amp not in ("off", "bf16"):  # fp16 needs a gradient scaler per model: one by one
        raise ValueError(f"fit_stacked: amp {cfg0.amp!r} is not supported; use 'off', 'bf16' or train one by one")
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * k_all
    hooks = list(on_optimizer) if on_optimizer is not None else [None] * k_all
    opts, ckpts, metrics, histories, starts, rngs = [], [], [], [], [], []
    for model, cfg, rd, hook in zip(models, cfgs, run_dirs, hooks):
        place(model, cfg.device)
        opt = make_optimizer(param_groups(model, cfg), cfg)
        if hook is not None:
            hook(opt)
        ckpt = Path(rd) / "checkpoints" / "last.safetensors" if rd else None
        met = Path(rd) / "metrics.jsonl" if rd else None
        torch.manual_seed(cfg.seed)  # what fit does; training draws nothing from it (no dropout: stack_problem)
        rng = torch.get_rng_state()
        history: list[dict] = []
        start = 0
        if resume and ckpt is not None and ckpt.exists():
            tensors, meta = load_checkpoint(ckpt)
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            _load_optimizer(opt, tensors, meta["optimizer"])
            rng = tensors["rng.torch"]
            start, history = meta["epoch"] + 1, meta["history"]
        if start == 0 and cfg.calibrate_batches > 0:
            calibrate_before_training(model, train_data, cfg, loss_fn, collate)
        if met is not None and history:
            atomic_write_text(met, "".join(json.dumps(h) + "\n" for h in history))
        elif met is not None:
            met.unlink(missing_ok=True)
        opts.append(opt)
        ckpts.append(ckpt)
        metrics.append(met)
        histories.append(history)
        starts.append(start)
        rngs.append(rng)
    per_epoch = math.ceil(len(train_data) / cfg0.batch_size)
    shells: dict[tuple[int, ...], nn.Module] = {}

    def set_lr(opt: torch.optim.Optimizer, epoch: int, step: int) -> float:
        c = cfg0
        f = lr_factor(c.schedule, epoch, c.epochs, c.milestones, c.gamma, c.cycle_stage, step, per_epoch)
        for g in opt.param_groups:
            g["lr"] = c.lr * f * g.get("lr_scale", 1.0)
        return c.lr * f

    clock, unwritten = CheckpointClock(), [[] for _ in models]  # rows not yet written, per model
    terms = [step_terms(m) for m in models]  # each model's quantizer loss terms and weight constraints
    for epoch in range(min(starts, default=cfg0.epochs), cfg0.epochs):
        active = tuple(i for i in range(k_all) if starts[i] <= epoch)
        if active not in shells:
            shells[active] = _shell([models[i] for i in active]) if len(active) > 1 else models[active[0]]
        net = shells[active]
        for i in active:
            lr = set_lr(opts[i], epoch, 0)
            models[i].train()
        t0 = time.perf_counter()
        totals = dict.fromkeys(active, 0.0)
        count = 0
        streams = [epoch_batches(train_data, cfg0.batch_size, cfgs[i].seed, epoch, collate) for i in active]
        for step, batches in enumerate(zip(*streams)):
            if step > 0 and cfg0.schedule in PER_STEP:
                for i in active:
                    set_lr(opts[i], epoch, step)
            x = torch.cat([b[0] for b in batches])
            with autocast(cfg0.amp, "cpu"):  # as fit: bf16 matmuls, fake quantization in float32 (precision.py)
                out = net(x)
            out = out.float()  # the loss in float32, as autocast computes fit's (a no-op without amp)
            outs = out.reshape(len(active), -1, *out.shape[1:])
            full = None
            losses = []
            for j, i in enumerate(active):
                loss = loss_fn(_Outputs(outs[j]), batches[j])
                losses.append(loss)
                reg = terms[i][0]()
                f = loss if reg is None else loss + reg
                if cfg0.lipschitz > 0:
                    f = f + cfg0.lipschitz * lipschitz(models[i])
                full = f if full is None else full + f
            for i in active:
                opts[i].zero_grad(set_to_none=True)
            full.backward()
            for i in active:
                if cfg0.grad_clip > 0:
                    nn.utils.clip_grad_norm_(models[i].parameters(), cfg0.grad_clip)
                opts[i].step()
                terms[i][1]()
            for i, v in zip(active, torch.stack(losses).detach().tolist()):
                totals[i] += v
            count += 1
        seconds = time.perf_counter() - t0
        write = clock.due(epoch == cfg0.epochs - 1)  # all at once (CheckpointClock: the epochs written change nothing)
        for i in active:
            row = {"epoch": epoch, "lr": lr, "loss": totals[i] / max(1, count), "seconds": seconds}
            histories[i].append(row)
            unwritten[i].append(row)
            if ckpts[i] is not None and write:
                torch.set_rng_state(rngs[i])  # the state fit would save (nothing was drawn from it)
                save_train_state(ckpts[i], models[i], opts[i], epoch, histories[i])
                atomic_append_lines(metrics[i], [json.dumps(r) for r in unwritten[i]])
                unwritten[i].clear()
    for m in models:
        m.eval()
    return histories
