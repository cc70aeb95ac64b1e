"""Deployed = simulated, measured: the *output step* of a quantized model and an exported file's distance to it.

What the exported graph is allowed to differ by. Every form computes the fake-quantized model's values except that
an activation lying within rounding noise of a rounding boundary of its grid (float summation order; the int32
bias, rounded to units of Δx·Δw, in the integer forms; an exact tie, which ONNX rounds to even and lowbit's
uniform quantizer rounds up) can come out one step of its grid away. The output step turns that budget into a
bound on each output:

    output step of output y_i:   δ_i = Σ_a Σ_j |∂y_i/∂a_j| · Δ_a

over the activation tensors a the model quantizes last on the way to y (the outputs of activation quantizers from
which y is reached without passing another activation quantizer), with Δ_a the step of a's grid: the first-order
change of y_i when every element of those activations moves by one step, each in the direction that moves y_i
most. Two cases:

    quantized last layer   y = W·x_q + b with x_q on a grid of step Δx:  δ_i = Δx · Σ_j |W_ij|  (exactly)
    float last layer       (``keep_float=("last",)``, or float ops after the last quantizer: pooling, a float
                           residual path, a float head) the same sum through that float tail, by autograd.

A model with no activation quantizer (weights only) has δ = 0: its graph differs from PyTorch by float rounding
only. ``compare`` therefore allows ``δ + FLOAT_RTOL·max|y|`` per output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .onnx_front import activation_quantizers, model_forward, u8_grid

FLOAT_RTOL = 1e-4  # float summation order in another runtime (relative to the largest output)


def output_step(model: nn.Module, example, max_outputs: int = 64) -> torch.Tensor:
    """δ (see the module docstring) for each sample of ``example`` (a tensor, or a tuple of the model's inputs),
    as a (batch, outputs) tensor over the first ``max_outputs`` outputs of each sample (flattened)."""
    xs = example if isinstance(example, (tuple, list)) else (example,)
    leaves: list[tuple[torch.Tensor, float]] = []

    def hook_for(step: float):
        def hook(_m, _inputs, out):
            leaf = out.detach().requires_grad_(True)  # the gradient stops here: only the last quantizers count
            leaves.append((leaf, step))
            return leaf

        return hook

    hooks = []
    for _, _, _, q in activation_quantizers(model):
        g = u8_grid(q)
        if g is not None:
            hooks.append(q.register_forward_hook(hook_for(g.scale)))
    was_training = model.training
    model.eval()
    rows = []
    try:
        for i in range(xs[0].shape[0]):
            leaves.clear()
            with torch.enable_grad(), model_forward():
                y = model(*(x[i : i + 1] for x in xs)).reshape(-1)
                k = min(y.numel(), max_outputs)
                row = torch.zeros(k)
                live = [(leaf, s) for leaf, s in leaves if leaf.requires_grad]
                for j in range(k if live else 0):
                    grads = torch.autograd.grad(y[j], [leaf for leaf, _ in live], retain_graph=True, allow_unused=True)
                    row[j] = sum(float(gr.abs().sum()) * s for gr, (_, s) in zip(grads, live) if gr is not None)
            rows.append(row)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return torch.stack(rows)


@dataclass
class Agreement:
    """An exported file against the fake-quantized model on one batch."""

    max_abs: float  # max |onnx - torch| over the compared outputs
    max_ratio: float  # max of |onnx - torch| / (δ + FLOAT_RTOL·max|y|): <= 1 is within one output step
    top1: float  # fraction of samples with the same argmax (over each sample's flattened output)
    max_output: float  # max |torch output|

    @property
    def within_one_step(self) -> bool:
        return self.max_ratio <= 1.0


def compare(model: nn.Module, path: str | Path, example, max_outputs: int = 64, max_samples: int = 16) -> Agreement:
    """Run ``path`` with ONNX Runtime on ``example`` and compare it with ``model`` (frozen, eval) output by output
    (the model's own forward: PyTorch's attention fast paths, which skip quantizers, off). The output step is
    computed for the first ``max_samples`` samples and ``max_outputs`` outputs of each (one backward pass each);
    ``max_ratio`` covers those, ``max_abs`` and ``top1`` the whole batch."""
    from .onnx_graph import run_onnx

    xs = example if isinstance(example, (tuple, list)) else (example,)
    with torch.no_grad(), model_forward():
        y = model.eval()(*xs).reshape(xs[0].shape[0], -1).to(torch.float32).numpy()
    yo = run_onnx(path, tuple(xs))[0].reshape(y.shape)
    d = np.abs(yo - y)
    step = output_step(model, tuple(x[:max_samples] for x in xs), max_outputs).numpy()
    n, k = step.shape
    allowed = step + FLOAT_RTOL * float(np.abs(y).max()) + 1e-12
    return Agreement(
        max_abs=float(d.max()),
        max_ratio=float((d[:n, :k] / allowed).max()),
        top1=float((yo.argmax(1) == y.argmax(1)).mean()),
        max_output=float(np.abs(y).max()),
    )
