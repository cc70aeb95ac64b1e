"""Hessian traces by Hutchinson's method (HAWQ-V2, Dong et al. 2020): Tr(H) = E[vᵀHv] over Rademacher vectors v
(entries ±1 with probability ½), each Hessian-vector product Hv computed by double backpropagation (the gradient of
gᵀv, where g = ∂L/∂θ was taken with ``create_graph=True``), so the Hessian itself is never formed.

One v drawn over every tracked tensor at once gives every layer's block trace in the same product: for the block of
layer l, E[v_lᵀ(Hv)_l] = Σ_k E[v_lᵀ H_lk v_k] = Tr(H_ll), as the cross terms have mean zero.

Tracked tensors are each layer's weights and, for activations, the layer's input: a forward pre-hook adds a zero
tensor δ that requires grad to the input (x + δ), so ∂L/∂δ = ∂L/∂x and the trace of the Hessian with respect to the
whole input batch is read off δ. ``L`` is the mean loss over every sample of the batches (each batch weighted by its
share of the samples), so the traces are those of the same loss that the single-layer drop measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TraceEstimate:
    """Per tracked tensor group: the trace estimate, its standard error over the samples, and the element count."""

    trace: dict[str, float]
    stderr: dict[str, float]
    numel: dict[str, int]


def weight_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The weight parameters of one layer a weight quantizer reads: ``weight`` (``weight_ih_l0`` ... for recurrent
    layers); biases stay float and are not traced."""
    return [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight") and p.requires_grad]


def rademacher(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.randint(0, 2, like.shape, generator=gen, dtype=torch.int64) * 2 - 1).to(like.dtype).to(like.device)


def hutchinson_traces(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    weight_layers: Sequence[str],
    act_layers: Sequence[str],
    samples: int = 64,
    seed: int = 0,
    on_sample: Callable[[], None] | None = None,
) -> TraceEstimate:
    """Hutchinson estimates of Tr(∂²L/∂W_l²) for ``weight_layers`` (keys ``"<layer>"``) and of Tr(∂²L/∂a_l²) for
    the inputs a_l of ``act_layers`` (keys ``"<layer>:act"``), with ``samples`` Rademacher vectors per batch drawn
    from ``torch.Generator().manual_seed(seed)`` (deterministic). The model runs in eval mode; its state is kept."""
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"hutchinson samples={samples!r} is not accepted; expected a whole number >= 1")
    mods = dict(model.named_modules())
    total = sum(int(x.shape[0]) for x, _ in batches)
    gen = torch.Generator().manual_seed(seed)
    keys = [*weight_layers, *(f"{n}:act" for n in act_layers)]
    sums = {k: torch.zeros(samples, dtype=torch.float64) for k in keys}
    numel: dict[str, int] = {n: sum(p.numel() for p in weight_tensors(mods[n])) for n in weight_layers}
    for n in act_layers:
        numel[f"{n}:act"] = 0
    probes: dict[str, list[torch.Tensor]] = {n: [] for n in act_layers}

    def probe(name: str):
        def pre(_mod, args):
            x = args[0]
            d = torch.zeros_like(x, requires_grad=True)
            probes[name].append(d)
            return (x + d, *args[1:])

        return pre

    handles = [mods[n].register_forward_pre_hook(probe(n)) for n in act_layers]
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        for x, y in batches:
            for v in probes.values():
                v.clear()
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y) * (x.shape[0] / total)
            groups: list[tuple[str, torch.Tensor]] = [(n, p) for n in weight_layers for p in weight_tensors(mods[n])]
            groups += [(f"{n}:act", d) for n in act_layers for d in probes[n]]
            for n in act_layers:
                numel[f"{n}:act"] += sum(d.numel() for d in probes[n])
            tensors = [t for _, t in groups]
            grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
            live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]  # others: Hessian block 0
            for s in range(samples):
                vs = [rademacher(tensors[i], gen) for i in live]
                hv = torch.autograd.grad(
                    [grads[i] for i in live],
                    [tensors[i] for i in live],
                    grad_outputs=vs,
                    retain_graph=True,
                    allow_unused=True,
                )
                for i, v, h in zip(live, vs, hv):
                    if h is not None:
                        sums[groups[i][0]][s] += float((v * h).sum())
                if on_sample is not None:
                    on_sample()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    trace = {k: float(v.mean()) for k, v in sums.items()}
    stderr = {k: float(v.std() / samples**0.5) if samples > 1 else float("nan") for k, v in sums.items()}
    return TraceEstimate(trace, stderr, numel)
