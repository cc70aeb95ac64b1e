"""``lowbit.sensitivity``: how much each layer suffers from fewer bits, measured one layer at a time.

For every layer the base config quantizes and every candidate bit width b, two roles are measured separately:
the layer's weights (``role = "weight"``) and the activation point before it, the layer's input (``"act"``).

- Single-layer drop (the first-order criterion; AIMET's per-layer analysis): only that layer's weights (or only its
  input) are quantized to b bits on a copy of the model, calibrated with ``lowbit.calibrate`` on the data (no
  retraining), and the change of the mean loss (``loss_delta``) and of the metric (``metric_delta``, accuracy points
  by default) against the float model is recorded.
- Second-order estimate (HAWQ-V2, Dong et al. 2020): ``hutchinson = ½ · Tr(H)/n · ‖Δ‖²``, the loss change a
  second-order Taylor expansion predicts when the perturbation Δ spreads evenly over the n entries (at a trained
  minimum the gradient term vanishes). Tr(H) is Hutchinson's estimate (``hutchinson.py``). For weights
  Δ = Q_b(W) − W with the calibrated quantizer of the single-layer drop; for activations Δ = Q_b(a) − a over the
  layer's float inputs a on every sample of the data (‖Δa‖² summed over the batch tensor, Tr(H_a) of the same
  batch tensor, n its element count): the expected perturbation over the calibration batch.

Everything runs on the data given (a Dataset or an iterable of (inputs, targets) batches), in eval mode;
deterministic for ``seed`` (the Rademacher vectors). ``Sensitivity`` holds the rows, prints a table, draws a
layers × bits heat map (``report.py``) and round-trips through JSON.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..api import calibrate, plan, quantize_
from ..config import LayerRule, QuantConfig
from ..progress import progress_bar
from ..quantizers import Quantizer
from ..quantizers import get as get_quantizer
from .hutchinson import hutchinson_traces, weight_tensors
from .result import Sensitivity

CRITERIA = ("first_order", "hutchinson", "random")
ROLES = ("weight", "act")


def exact_selector(name: str) -> str:
    """A rules/keep_float selector that matches exactly the layer ``name`` (fnmatch's special characters escaped)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def with_bits(template: Quantizer | dict | str | None, bits: int, default: dict) -> Quantizer:
    """The quantizer ``template`` at ``bits`` bits (``default`` when there is no template)."""
    d = dict(default) if template is None else get_quantizer(template).to_dict()
    if template is not None and "bits" not in d:
        raise ValueError(f"quantizer {d.get('name')!r} has no bit width; expected one with bits (uniform, lsq, pact)")
    d["bits"] = int(bits)
    return get_quantizer(d)


def check_candidates(candidates: Sequence[int]) -> tuple[int, ...]:
    out = tuple(candidates)
    if not out or any(not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 16 for b in out):
        raise ValueError(f"candidates={candidates!r} is not accepted; expected bit widths, whole numbers 1..16")
    if len(set(out)) != len(out):
        raise ValueError(f"candidates={candidates!r} repeats a bit width")
    return tuple(sorted(out))


def allocatable_layers(model: nn.Module, config: QuantConfig) -> list[str]:
    """The layers whose weight precision the config leaves to choose: every layer ``plan`` gives a weight quantizer
    (kept-float layers, and layers a rule sends to float, keep their precision), leaving out the quantizable modules
    without weights (the activation points of lowbit's CNNs)."""
    mods = dict(model.named_modules())
    return [
        n
        for n, r in plan(model, config).items()
        if r is not None and r.weight is not None and weight_tensors(mods[n])  # activation points hold no weights
    ]


def as_batches(data: Dataset | Iterable, batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The data as a list of (inputs, targets) batches, in order."""
    if isinstance(data, Dataset) and not isinstance(data, DataLoader) and hasattr(data, "__len__"):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    out = []
    for b in data:
        if not isinstance(b, (tuple, list)) or len(b) < 2:
            raise ValueError("sensitivity: data must give (inputs, targets) batches (a Dataset of pairs or a loader)")
        out.append((b[0], b[1]))
    if not out:
        raise ValueError("sensitivity: the data is empty; expected at least one (inputs, targets) batch")
    return out


def accuracy_points(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy in % of one batch of class scores."""
    return (out.argmax(dim=-1) == y).double().mean() * 100


@torch.no_grad()
def evaluate(model: nn.Module, batches, loss_fn, metric) -> tuple[float, float | None]:
    """(mean loss, mean metric) over every sample of the batches (eval mode; the mode is restored)."""
    was = model.training
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    n, loss, met = 0, 0.0, 0.0
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            out = model(x)
            k = int(x.shape[0])
            loss += float(loss_fn(out, y)) * k
            if metric is not None:
                met += float(metric(out, y)) * k
            n += k
    finally:
        model.train(was)
    return loss / n, (met / n if metric is not None else None)


def _one_layer(model: nn.Module, name: str, role: str, q: Quantizer, batches) -> nn.Module:
    """A copy of ``model`` with only layer ``name``'s weights or input quantized by ``q``, calibrated."""
    rule = LayerRule(weight=q, act=None) if role == "weight" else LayerRule(weight=None, act=q)
    cfg = QuantConfig(rules={exact_selector(name): rule})
    m = copy.deepcopy(model)
    with warnings.catch_warnings():  # one layer quantized: coverage warnings are the point, not a problem
        warnings.simplefilter("ignore")
        m = quantize_(m, cfg)
        calibrate(m, batches)
    return m


def _layer_inputs(model: nn.Module, names: list[str], batches) -> dict[str, list[torch.Tensor]]:
    """Every float input each layer gets over the batches (a layer called several times: each call's)."""
    mods = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hs = [mods[n].register_forward_pre_hook(lambda _m, a, n=n: seen[n].append(a[0].detach().cpu())) for n in names]
    try:
        evaluate(model, batches, lambda out, y: torch.zeros(()), None)
    finally:
        for h in hs:
            h.remove()
    return seen


def sensitivity(
    model: nn.Module,
    data: Dataset | Iterable,
    candidates: Sequence[int] = (2, 3, 4, 8),
    *,
    config: QuantConfig | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str | None = "accuracy",
    acts: bool = True,
    samples: int = 64,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> Sensitivity:
    """Per-layer, per-bit-width sensitivity of a float ``model`` on ``data`` (see the module docstring).

    config: which layers are allocatable and the quantizer families: its ``weight`` (default uniform, L2-optimal
        step) and ``act`` (default: unsigned uniform for a non-negative input, signed uniform for one with negative
        values), each taken at every candidate bit width; ``keep_float`` layers are left out. Default: every
        quantizable layer.
    loss_fn(outputs, targets): the mean loss (default cross-entropy). metric(outputs, targets): a batch mean
        ("accuracy": top-1 in %, None: no metric).
    acts: also measure each layer's input. samples: Rademacher vectors per batch. seed: their generator's seed.
    """
    cands = check_candidates(candidates)
    config = config or QuantConfig(weight={"name": "uniform", "bits": cands[0]})
    if config.weight is None:
        raise ValueError("sensitivity: config.weight is None; expected a weight quantizer family (e.g. uniform)")
    loss_fn = loss_fn or nn.functional.cross_entropy
    metric_name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    if metric == "accuracy":
        metric = accuracy_points
    elif isinstance(metric, str):
        raise ValueError(f"sensitivity: metric={metric!r} is not accepted; expected 'accuracy', a callable or None")
    batches = as_batches(data, batch_size)
    layers = allocatable_layers(model, config)
    if not layers:
        raise ValueError("sensitivity: the config quantizes no layer's weights; nothing to measure")
    base_loss, base_metric = evaluate(model, batches, loss_fn, metric)
    act_layers = layers if acts else []
    inputs = _layer_inputs(model, act_layers, batches) if acts else {}
    tasks = len(layers) * len(cands) + len(act_layers) * len(cands)
    bar = progress_bar(total=tasks + samples * len(batches), enabled=progress, desc="sensitivity", leave=False)
    try:
        est = hutchinson_traces(model, batches, loss_fn, layers, act_layers, samples, seed, on_sample=bar.update)
        rows: list[dict[str, Any]] = []
        for name in layers:
            for role in ("weight", "act") if name in act_layers else ("weight",):
                key = name if role == "weight" else f"{name}:act"
                signed = role == "act" and any(bool((x < 0).any()) for x in inputs[name])
                for b in cands:
                    if role == "weight":
                        q = with_bits(config.weight, b, {"name": "uniform"})
                    else:
                        q = with_bits(config.act, b, {"name": "uniform", "signed": signed})
                    m = _one_layer(model, name, role, q, batches)
                    loss, met = evaluate(m, batches, loss_fn, metric)
                    twin = m.get_submodule(name)
                    if role == "weight":
                        with torch.no_grad():
                            pert = sum(
                                float(((twin.quantized_weight(w) - getattr(twin, w)) ** 2).sum())
                                for w in twin.quant_weight_names
                            )
                    else:
                        aq = twin.act_quant.eval()
                        with torch.no_grad():
                            pert = sum(float(((aq(x) - x) ** 2).sum()) for x in inputs[name])
                    n = est.numel[key]
                    rows.append(
                        {
                            "layer": name,
                            "role": role,
                            "bits": b,
                            "numel": n,
                            "loss_delta": loss - base_loss,
                            "metric_delta": None if met is None else met - base_metric,
                            "trace": est.trace[key],
                            "trace_stderr": est.stderr[key],
                            "perturbation": pert,
                            "hutchinson": 0.5 * est.trace[key] / n * pert if n else 0.0,
                        }
                    )
                    bar.update(1)
    finally:
        bar.close()
    return Sensitivity(
        layers=layers,
        candidates=list(cands),
        rows=rows,
        base_loss=base_loss,
        base_metric=base_metric,
        metric_name=None if metric is None else metric_name,
        samples=samples,
        seed=seed,
        num_samples=sum(int(x.shape[0]) for x, _ in batches),
        input_shape=list(batches[0][0].shape[1:]),
        weight_quantizer=config.weight.to_dict(),
        act_quantizer=None if config.act is None else config.act.to_dict(),
    )
