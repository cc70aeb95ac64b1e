"""``lowbit.calibrate``: every quantizer's data-derived range or step from one pass over calibration batches (spec
§2.3), and what it checks around the quantizers' own ``calibrate``: the statistics it feeds them are those training
will see, and a degenerate tensor is named instead of silently giving a meaningless range.

Untrained BatchNorm. ``calibrate`` runs the model in eval mode (no dropout, no running-statistics update). A
BatchNorm whose running statistics are still their initial values (mean 0, variance 1: it has never seen a batch,
as in any randomly initialised torchvision/timm model) does not normalise in eval mode; a deep network's eval
activations then shrink (or grow) layer after layer, by 1e-10 after a dozen blocks of mobilenet_v3_small, while
training (batch statistics) keeps them O(1). Steps calibrated on them are 1e-10 of the training activations:
every activation is clipped to about zero, the BatchNorm after each such layer amplifies the gradient by
1/sqrt(eps), and training is NaN within two steps. Such a BatchNorm is therefore run with its batch statistics
while calibrating (what the first training step will do; a call with one value per channel, a batch of one
after global pooling, keeps the running ones, as training mode would refuse it), and its running buffers are
restored afterwards, so calibration still leaves the model's state unchanged. A BatchNorm that has seen data (a
pretrained or trained model) stays in eval mode.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .finite import non_finite
from .nn import QuantMixin
from .quantizers import Quantizer


def untrained_batch_norms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers whose running statistics are still exactly their initial mean 0 / variance 1."""
    out = []
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m.running_mean is not None and m.running_var is not None:
            if not bool(m.running_mean.any()) and bool((m.running_var == 1).all()):
                out.append(m)
    return out


@contextlib.contextmanager
def batch_statistics_for_untrained_norms(model: nn.Module) -> Iterator[list[_BatchNorm]]:
    """Within the block, untrained BatchNorms (above) normalise with the batch statistics; their buffers
    (running mean/var, batch count) are put back on exit. Call it after ``model.eval()``."""
    norms = untrained_batch_norms(model)
    saved = [{k: b.detach().clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    modes = [m.training for m in norms]
    hooks = [m.register_forward_pre_hook(_batch_statistics_when_possible) for m in norms]
    try:
        yield norms
    finally:
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for m, bufs, mode in zip(norms, saved, modes):
                for k, v in bufs.items():
                    getattr(m, k).copy_(v)
                m.training = mode


def _batch_statistics_when_possible(m: _BatchNorm, args: tuple) -> None:
    """Batch statistics for this call, unless it has one value per channel (a batch of one after pooling: training
    mode would raise; the placeholder statistics are all there is). Sets this module's flag only: a BatchNorm with
    children (timm's BatchNormAct2d: its activation and dropout) keeps them in eval mode."""
    x = args[0] if args else None
    per_channel = x.numel() // x.shape[1] if isinstance(x, torch.Tensor) and x.dim() > 1 and x.shape[1] else 0
    m.training = per_channel > 1


def degenerate(x: torch.Tensor) -> str | None:
    """Why ``x`` gives a quantizer no range to calibrate (empty, all zero, constant), or None when it has one."""
    if x.numel() == 0:
        return "no values"
    lo, hi = float(x.min()), float(x.max())
    if lo == hi == 0.0:
        return "all zero"
    if lo == hi:
        return f"constant {lo:.4g}"
    return None


CALIBRATION_SAMPLE = 2**20  # values kept per quantizer and batch (a fixed-seed sample of larger inputs)


def _weight_quantizers(model: nn.Module) -> list[tuple[Quantizer, torch.Tensor]]:
    return [(q, w) for q, w, _ in _named_weight_quantizers(model)]


def _named_weight_quantizers(model: nn.Module) -> list[tuple[Quantizer, torch.Tensor, str]]:
    """(quantizer, the tensor it reads, "layer.weight name") of every weight quantizer."""
    out, seen = [], set()
    for lname, m in model.named_modules():
        if isinstance(m, QuantMixin) and m.weight_quant is not None:
            for n in m.quant_weight_names:
                q = m.weight_quantizer(n)
                if isinstance(q, Quantizer) and (id(q), n) not in seen:
                    seen.add((id(q), n))
                    # what the quantizer reads (BN-folded: W·s)
                    out.append((q, m.latent_weight(n), f"{lname}.{n}" if lname else n))
    return out


def _act_quantizers(model: nn.Module) -> dict[Quantizer, str]:
    """Every quantizer module that is not a weight quantizer (layer inputs, recurrent x_t/h_t roles), by name."""
    wq = {id(q) for q, _ in _weight_quantizers(model)}
    out: dict[Quantizer, str] = {}
    for name, q in model.named_modules():
        if isinstance(q, Quantizer) and id(q) not in wq and q not in out:
            out[q] = name
    return out


def _sample(x: torch.Tensor, cap: int | None, gen: torch.Generator) -> torch.Tensor:
    v = x.detach().reshape(-1)
    if cap is None or v.numel() <= cap:
        return v.clone()
    idx = torch.randint(v.numel(), (cap,), generator=gen).to(v.device)
    return v[idx]


@torch.no_grad()
def calibrate(
    model: nn.Module,
    batches: Iterable[Any],
    forward=None,
    *,
    only_uncalibrated: bool = False,
    sample: int | None = CALIBRATION_SAMPLE,
) -> nn.Module:
    """Set every quantizer's data-derived ranges and steps, in one pass over ``batches`` (spec §2.3).

    Weight quantizers calibrate from their weights (LSQ step, TTQ scales, uniform Δ). Activation quantizers
    (every other quantizer in the model) see all the inputs they got over the batches at once, flattened and
    concatenated, with activation quantization switched off during these passes (each layer's input is that of
    the model with quantized weights and float activations): PACT α, LSQ step, unsigned uniform Δ, HWGQ
    scale, log2 FSR. Each quantizer's ``calibrate(x)`` says what it sets.

    only_uncalibrated: touch only quantizers whose ``needs_calibration()`` is True (what ``fit`` does, so a
        trained or loaded model keeps its learned ranges); False recalibrates everything calibratable.
    sample: keep at most this many values per quantizer and batch (a fixed-seed random sample; None: all).
    ``forward(model, batch)`` defaults to ``model(batch[0])`` for (x, y) batches, else ``model(batch)``, with the
        input moved to the model's device.

    Warns once when more than half of the values reaching an unsigned quantizer (PACT, HWGQ, unsigned
    uniform/LSQ/log2) are negative: it maps all of them to 0 (e.g. a normalised image fed to PACT); and once,
    naming the layers, when a quantizer's tensor has no range (empty, all zero or constant: a dead ReLU, a
    zero-initialised head), whose step then means nothing. A NaN or inf in a tensor is an error naming the layer.

    A BatchNorm that has never seen a batch (running mean 0, variance 1: a randomly initialised model) normalises
    with the calibration batches' own statistics, as training will, instead of its placeholder running ones; its
    buffers are restored afterwards (``lowbit.calibration`` says why: eval-mode activations of such a model are
    1e-10 of the training ones, and steps calibrated on them make training NaN).
    """
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        raise ValueError(f"calibrate: sample={sample!r} is not accepted; expected a whole number >= 1 or None")

    def wanted(q: Quantizer) -> bool:
        return q.needs_calibration() if only_uncalibrated else True

    flat: list[str] = []  # "layer (why)" of every tensor without a range
    for q, w, wname in _named_weight_quantizers(model):
        if wanted(q):
            _check_tensor(w.detach(), wname, q, flat)
            q.calibrate(w.detach())
    acts = {q: name for q, name in _act_quantizers(model).items() if wanted(q)}
    if not acts:
        _warn_flat(flat)
        return model
    seen: dict[Quantizer, list[torch.Tensor]] = {q: [] for q in acts}
    gen = torch.Generator().manual_seed(0)

    def observer(q: Quantizer):
        def observe(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            seen[q].append(_sample(x, sample, gen))
            return x  # float activations while calibrating

        return observe

    for q in acts:
        q.forward = observer(q)  # instance attribute: shadows the class's forward for these passes only
    was_training = model.training
    model.eval()
    # the default forward feeds each batch on the model's own device (a model already on the GPU calibrates there)
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        with batch_statistics_for_untrained_norms(model):
            for batch in batches:
                if forward is not None:
                    forward(model, batch)
                else:
                    model((batch[0] if isinstance(batch, (tuple, list)) else batch).to(device))
    finally:
        for q in acts:
            del q.forward
        model.train(was_training)
    negative = []
    for q, xs in seen.items():
        if not xs:
            continue
        x = torch.cat(xs)
        if not q.signed_input and x.numel() and float((x < 0).float().mean()) > 0.5:
            negative.append(f"{acts[q] or '<model>'} ({q.name}: {float((x < 0).float().mean()):.0%} negative)")
        _check_tensor(x, f"{acts[q] or '<model>'} input", q, flat)
        q.calibrate(x)
    if negative:
        warnings.warn(
            "lowbit.calibrate: more than half of the values reaching these unsigned activation quantizers are "
            f"negative, and they all become 0: {', '.join(negative)}. Keep that input float "
            "(QuantConfig.quantize_input=False keeps the model input float) or use a signed quantizer.",
            stacklevel=2,
        )
    _warn_flat(flat)
    return model


def _check_tensor(x: torch.Tensor, where: str, q: Quantizer, flat: list[str]) -> None:
    """Raise on NaN/inf in what ``q`` calibrates from; note a tensor without a range in ``flat``."""
    bad = non_finite(x)
    if bad is not None:
        raise ValueError(
            f"lowbit.calibrate: {where} ({q.name}) holds non-finite values ({bad}); a step calibrated on it "
            "would be NaN. Check the model and the calibration data for NaN/inf before quantizing."
        )
    why = degenerate(x)
    if why is not None:
        flat.append(f"{where} ({q.name}: {why})")


def _warn_flat(flat: list[str]) -> None:
    if flat:
        warnings.warn(
            "lowbit.calibrate: these tensors have no spread (empty, all zero or constant), so the step or range "
            "calibrated from them says nothing about the values the layer will see (all zero: a placeholder such "
            f"as uniform Δ = 1, LSQ s = 0, PACT α = 10): {'; '.join(flat)}. Calibrate on data that reaches them "
            "(a dead ReLU or a zero-initialised layer gets none), or keep those layers float (keep_float).",
            stacklevel=3,
        )
